//! The service-account controller and the root-CA publisher: every active namespace gets a
//! `default` ServiceAccount (recreated if deleted) and a `kube-root-ca.crt` ConfigMap carrying
//! the cluster CA (kept in sync), as upstream's `serviceaccount-controller` and
//! `root-ca-cert-publisher` do.

use crate::{Ctx, Error};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Name of the ServiceAccount every namespace gets.
pub const DEFAULT_SA: &str = crate::informers::DEFAULT_SERVICE_ACCOUNT;
/// Name of the ConfigMap carrying the cluster CA.
pub const ROOT_CA_CONFIGMAP: &str = crate::informers::ROOT_CA_CONFIGMAP;
/// Key of the CA bundle in the ConfigMap.
pub const ROOT_CA_KEY: &str = "ca.crt";
/// Annotation upstream puts on the ConfigMap.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Its value (verbatim from upstream).
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

struct State {
    ctx: Arc<Ctx>,
    accounts: Store<ServiceAccount>,
    configmaps: Store<ConfigMap>,
}

pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let ns_sub = ctx.informers.namespaces.subscribe();
    let sa_sub = ctx.informers.serviceaccounts.subscribe();
    let cm_sub = ctx.informers.configmaps.subscribe();
    let state = Arc::new(State {
        accounts: ctx.informers.serviceaccounts.store(),
        configmaps: ctx.informers.configmaps.store(),
        ctx: ctx.clone(),
    });
    // Both informers are field-selected to the one name per namespace, and pass deletions
    // on: a deleted ServiceAccount or ConfigMap is recreated.
    Controller::for_shared_stream(ns_sub, ctx.informers.namespaces.store())
        .watches_shared_stream(sa_sub, |sa: Arc<ServiceAccount>| owner_ns(&*sa, DEFAULT_SA))
        .watches_shared_stream(cm_sub, |cm: Arc<ConfigMap>| {
            owner_ns(&*cm, ROOT_CA_CONFIGMAP)
        })
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
    Ok(())
}

/// The namespace to reconcile when the named object changes.
fn owner_ns<K: kube::Resource>(o: &K, name: &str) -> Option<ObjectRef<Namespace>> {
    (o.meta().name.as_deref() == Some(name))
        .then(|| {
            o.meta()
                .namespace
                .as_deref()
                .map(ObjectRef::<Namespace>::new)
        })
        .flatten()
}

fn error_policy(_: Arc<Namespace>, e: &Error, _: Arc<State>) -> Action {
    tracing::debug!(error = %e, "serviceaccount reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// The ConfigMap data upstream publishes.
pub fn desired_configmap_data(ca: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(ROOT_CA_KEY.to_string(), ca.to_string())])
}

async fn reconcile(ns: Arc<Namespace>, st: Arc<State>) -> Result<Action, Error> {
    let active = ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating");
    if !active {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let client = st.ctx.client.clone();
    let pp = PostParams {
        field_manager: Some("kube-controller-manager".into()),
        ..Default::default()
    };

    if st
        .accounts
        .get(&ObjectRef::new(DEFAULT_SA).within(&name))
        .is_none()
    {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT_SA.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&pp, &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
            Err(e) => return Err(e.into()),
        }
    }

    let data = desired_configmap_data(&st.ctx.config.root_ca_pem);
    let api: Api<ConfigMap> = Api::namespaced(client, &name);
    match st
        .configmaps
        .get(&ObjectRef::new(ROOT_CA_CONFIGMAP).within(&name))
    {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(ROOT_CA_CONFIGMAP.into()),
                    annotations: Some(BTreeMap::from([(
                        DESCRIPTION_ANNOTATION.to_string(),
                        DESCRIPTION.to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            match api.create(&pp, &cm).await {
                Ok(_) => {}
                // Already there (cache lag) or the namespace is terminating.
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(cm) => {
            let annotated = cm
                .annotations()
                .get(DESCRIPTION_ANNOTATION)
                .map(String::as_str)
                == Some(DESCRIPTION);
            if cm.data.as_ref() != Some(&data) || !annotated {
                let mut new = (*cm).clone();
                new.data = Some(data);
                new.binary_data = None;
                new.annotations_mut()
                    .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
                match api.replace(ROOT_CA_CONFIGMAP, &pp, &new).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
                        return Ok(Action::requeue(Duration::from_millis(500)))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configmap_data_has_ca() {
        let d = desired_configmap_data("PEM");
        assert_eq!(d.get("ca.crt").map(String::as_str), Some("PEM"));
        assert_eq!(d.len(), 1);
    }
}
