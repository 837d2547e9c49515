//! Helpers shared by the replicaset and deployment controllers: label selector matching,
//! controller references and adoption, event recording, per-key error back-off, and a
//! deletion feed (the shared informers only announce additions and updates).

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, MicroTime, ObjectMeta, OwnerReference, Time,
};
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

/// Whether `labels` satisfy `sel` (an empty selector matches everything, as upstream's
/// `LabelSelectorAsSelector`).
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &sel.match_labels {
        if ml.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    for req in sel.match_expressions.iter().flatten() {
        let values = req.values.as_deref().unwrap_or_default();
        let got = labels.get(&req.key);
        let ok = match req.operator.as_str() {
            "In" => got.is_some_and(|v| values.contains(v)),
            "NotIn" => got.is_none_or(|v| !values.contains(v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a selector selects everything (no requirements at all).
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty())
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// A controller reference (controller and blockOwnerDeletion true) pointing at `owner`.
pub fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What a controller should do with a candidate child (upstream `ControllerRefManager`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours and matching: keep it.
    Keep,
    /// An orphan that matches: adopt it.
    Adopt,
    /// Ours but no longer matching: release it.
    Release,
    /// Not ours (owned by someone else, or not matching).
    Ignore,
}

/// Decides the claim for one child, as upstream's `ClaimObject`.
pub fn claim_decision(
    owner_uid: &str,
    owner_deleting: bool,
    sel: &LabelSelector,
    child: &ObjectMeta,
) -> Claim {
    let matches = selector_matches(sel, child.labels.as_ref().unwrap_or(&BTreeMap::new()));
    match controller_ref(child) {
        Some(r) if r.uid != owner_uid => Claim::Ignore,
        Some(_) if matches => Claim::Keep,
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if owner_deleting || !matches || child.deletion_timestamp.is_some() => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// Adds the controller reference to an orphan (optimistic on its resourceVersion).
pub async fn adopt<K, O>(api: &Api<K>, owner: &O, child: &K) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    O: Resource<DynamicType = ()>,
{
    let mut refs: Vec<OwnerReference> = child
        .meta()
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| Some(&r.uid) != owner.meta().uid.as_ref())
        .collect();
    refs.push(owner_ref(owner));
    let patch = serde_json::json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": child.meta().resource_version,
    }});
    api.patch(
        &child.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
}

/// Removes `owner_uid` from a child's owner references. A child that is gone is fine.
pub async fn release<K>(api: &Api<K>, owner_uid: &str, child: &K) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let refs: Vec<OwnerReference> = child
        .meta()
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.uid != owner_uid)
        .collect();
    let refs = (!refs.is_empty()).then_some(refs);
    let patch = serde_json::json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": child.meta().resource_version,
    }});
    match api
        .patch(
            &child.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Records core/v1 Events for one controller (upstream's legacy event recorder, without
/// aggregation). Writes are fire-and-forget: a lost event never fails a sync.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: &'static str,
}

impl Recorder {
    pub fn new(client: Client, component: &'static str) -> Self {
        Recorder { client, component }
    }

    /// Records an event about `obj` (`type_` is "Normal" or "Warning").
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        let meta = obj.meta();
        let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let now = jiff::Timestamp::now();
        let name = format!(
            "{}.{:x}",
            meta.name.as_deref().unwrap_or_default(),
            now.as_nanosecond()
        );
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(K::api_version(&()).into_owned()),
                kind: Some(K::kind(&()).into_owned()),
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some(self.component.into()),
                host: None,
            }),
            reporting_component: Some(self.component.into()),
            reporting_instance: Some(self.component.into()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!(error = %e, "could not record event");
            }
        });
    }
}

/// Per-key exponential back-off for failed syncs (upstream's default controller rate
/// limiter: 5 ms doubling up to 1000 s), reset by a successful sync.
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<String, u32>>);

impl Backoff {
    /// Records one more failure of `key` and returns how long to wait before retrying.
    pub fn fail(&self, key: &str) -> Duration {
        let mut m = self.0.lock().expect("backoff lock");
        let n = m.entry(key.to_string()).or_insert(0);
        let d = backoff_delay(*n);
        *n = n.saturating_add(1);
        d
    }

    pub fn reset(&self, key: &str) {
        self.0.lock().expect("backoff lock").remove(key);
    }
}

/// 5 ms * 2^failures, capped at 1000 s.
pub fn backoff_delay(failures: u32) -> Duration {
    let ms = 5u64.saturating_mul(1u64 << failures.min(30));
    Duration::from_millis(ms.min(1_000_000))
}

/// Objects of kind `K` as they are deleted, from a metadata-only watch: the shared
/// informers wake subscribers on additions and updates only, and a controller must also
/// notice a child that vanished (upstream handlers get `OnDelete`).
pub fn deletions<K>(client: Client) -> impl Stream<Item = PartialObjectMeta<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    use kube::runtime::WatchStreamExt;
    let api: Api<PartialObjectMeta<K>> = Api::all(client);
    watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .filter_map(|ev| async move {
            match ev {
                Ok(watcher::Event::Delete(obj)) => Some(obj),
                _ => None,
            }
        })
}

/// `namespace/name` of an object.
pub fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_matching() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert!(selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "a")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "c")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "a"), ("canary", "1")])
        ));
        assert!(!selector_matches(&sel, &labels(&[("tier", "a")])));
        assert!(selector_matches(&LabelSelector::default(), &labels(&[])));
    }

    #[test]
    fn claims() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        };
        let mut child = ObjectMeta {
            labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        };
        assert_eq!(claim_decision("u1", false, &sel, &child), Claim::Adopt);
        assert_eq!(claim_decision("u1", true, &sel, &child), Claim::Ignore);
        child.owner_references = Some(vec![OwnerReference {
            uid: "u1".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        assert_eq!(claim_decision("u1", false, &sel, &child), Claim::Keep);
        assert_eq!(claim_decision("u2", false, &sel, &child), Claim::Ignore);
        child.labels = Some(labels(&[("app", "other")]));
        assert_eq!(claim_decision("u1", false, &sel, &child), Claim::Release);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_delay(0), Duration::from_millis(5));
        assert_eq!(backoff_delay(3), Duration::from_millis(40));
        assert_eq!(backoff_delay(40), Duration::from_secs(1000));
    }
}
