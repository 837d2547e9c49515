//! The IO around dynamic admission webhooks: a list-watch cache of the Mutating- and
//! ValidatingWebhookConfigurations, service references resolved to a ready endpoint
//! (upstream's endpoint routing: the API server talks to the pod, not the ClusterIP), and
//! the calls made from admission with the request's attributes.

use crate::admission::webhook::{
    self, AdmissionAttributes, AdmissionRejection, GroupVersionKind, GroupVersionResource,
    Operation, Webhook, WebhookTransport,
};
use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::registry::{decode, prefix, Registry};
use crate::resources::{self, ResourceInfo};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use store::{Backend, Event, ListOptions};

const GROUP: &str = "admissionregistration.k8s.io";

/// The webhooks in force, rebuilt from the configurations on every change.
#[derive(Default)]
struct Hooks {
    mutating: BTreeMap<String, Value>,
    validating: BTreeMap<String, Value>,
    mutating_hooks: Arc<Vec<Webhook>>,
    validating_hooks: Arc<Vec<Webhook>>,
}

/// The webhook dispatcher: configuration cache plus the HTTPS transport.
pub struct Webhooks {
    hooks: RwLock<Hooks>,
    transport: Box<dyn WebhookTransport>,
}

fn config_res(plural: &str) -> &'static ResourceInfo {
    resources::find(GROUP, "v1", plural).expect("webhook configurations served")
}

impl Webhooks {
    /// Starts the configuration list-watches; webhooks are called through `transport`.
    pub fn start(store: Arc<dyn Backend>, transport: Box<dyn WebhookTransport>) -> Arc<Self> {
        let w = Arc::new(Webhooks {
            hooks: RwLock::new(Hooks::default()),
            transport,
        });
        for mutating in [true, false] {
            let (w, store) = (w.clone(), store.clone());
            tokio::spawn(async move {
                loop {
                    if let Err(e) = w.sync(store.as_ref(), mutating).await {
                        tracing::debug!(error = %e, "webhook configurations: re-listing");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
        w
    }

    fn set(&self, mutating: bool, f: impl FnOnce(&mut BTreeMap<String, Value>)) {
        let mut h = self.hooks.write().unwrap_or_else(PoisonError::into_inner);
        if mutating {
            f(&mut h.mutating);
            let all: Vec<Value> = h.mutating.values().cloned().collect();
            h.mutating_hooks = Arc::new(webhook::collect_webhooks(&all));
        } else {
            f(&mut h.validating);
            let all: Vec<Value> = h.validating.values().cloned().collect();
            h.validating_hooks = Arc::new(webhook::collect_webhooks(&all));
        }
    }

    async fn sync(&self, store: &dyn Backend, mutating: bool) -> Result<(), store::StoreError> {
        let res = config_res(if mutating {
            "mutatingwebhookconfigurations"
        } else {
            "validatingwebhookconfigurations"
        });
        let base = prefix(res, None);
        let page = store
            .list(&ListOptions {
                prefix: base.clone(),
                ..Default::default()
            })
            .await?;
        let fresh: BTreeMap<String, Value> = page
            .kvs
            .iter()
            .filter_map(|kv| decode(res, kv).ok())
            .map(|v| (crate::meta::name(&v).to_string(), v))
            .collect();
        self.set(mutating, |m| *m = fresh);
        let mut watch = store.watch(&base, page.revision).await?;
        while let Some(batch) = watch.recv().await {
            for ev in batch? {
                match &ev {
                    Event::Create { kv } | Event::Update { kv, .. } => {
                        if let Ok(v) = decode(res, kv) {
                            self.set(mutating, |m| {
                                m.insert(crate::meta::name(&v).to_string(), v);
                            });
                        }
                    }
                    Event::Delete { prev, .. } => {
                        if let Ok(v) = decode(res, prev) {
                            self.set(mutating, |m| {
                                m.remove(crate::meta::name(&v));
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> (Arc<Vec<Webhook>>, Arc<Vec<Webhook>>) {
        let h = self.hooks.read().unwrap_or_else(PoisonError::into_inner);
        (h.mutating_hooks.clone(), h.validating_hooks.clone())
    }
}

/// A ready endpoint address of a Service port: the Service's port → targetPort (number or
/// named), then the first ready endpoint of its EndpointSlices.
async fn resolve_service(reg: &Registry, ns: &str, name: &str, port: u16) -> Option<SocketAddr> {
    let svc = reg
        .get(resources::find("", "v1", "services")?, ns, name)
        .await
        .ok()?;
    let sp = svc
        .pointer("/spec/ports")?
        .as_array()?
        .iter()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(port as u64))?
        .clone();
    let port_name = sp.get("name").and_then(Value::as_str).unwrap_or("");
    let slices_res = resources::find("discovery.k8s.io", "v1", "endpointslices")?;
    let page = reg
        .store
        .list(&ListOptions {
            prefix: prefix(slices_res, Some(ns)),
            ..Default::default()
        })
        .await
        .ok()?;
    for kv in &page.kvs {
        let Ok(slice) = decode(slices_res, kv) else {
            continue;
        };
        let owner = slice
            .pointer("/metadata/labels/kubernetes.io~1service-name")
            .and_then(Value::as_str);
        if owner != Some(name) {
            continue;
        }
        let target = slice
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_u64));
        let Some(target) = target else {
            continue;
        };
        for ep in slice
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if ep.pointer("/conditions/ready").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            if let Some(ip) = ep
                .get("addresses")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<std::net::IpAddr>().ok())
            {
                return Some(SocketAddr::new(ip, target as u16));
            }
        }
    }
    None
}

fn rejection_error(r: AdmissionRejection) -> ApiError {
    ApiError::new(r.code, &r.reason, r.message)
}

/// One admission request, as the webhooks see it.
pub struct Request<'a> {
    pub res: &'a ResourceInfo,
    pub subresource: &'a str,
    pub operation: Operation,
    pub namespace: &'a str,
    pub name: &'a str,
    pub user: &'a UserInfo,
    pub dry_run: bool,
}

impl Registry {
    /// Runs the mutating (when `mutating`) or validating webhooks for a request; the
    /// object is patched in place by mutating ones. Returns the webhooks' warnings.
    pub async fn call_webhooks(
        &self,
        r: &Request<'_>,
        object: Option<&mut Value>,
        old: Option<&Value>,
        mutating: bool,
    ) -> ApiResult<Vec<String>> {
        let Some(w) = self.webhooks.get() else {
            return Ok(Vec::new());
        };
        let (m, v) = w.snapshot();
        let hooks = if mutating { m } else { v };
        if hooks.is_empty() {
            return Ok(Vec::new());
        }
        let mut req = AdmissionAttributes {
            kind: GroupVersionKind {
                group: r.res.group.to_string(),
                version: r.res.version.to_string(),
                kind: r.res.kind.to_string(),
            },
            resource: GroupVersionResource {
                group: r.res.group.to_string(),
                version: r.res.version.to_string(),
                resource: r.res.plural.to_string(),
            },
            subresource: r.subresource.to_string(),
            name: r.name.to_string(),
            namespace: if r.res.group.is_empty() && r.res.plural == "namespaces" {
                r.name.to_string()
            } else {
                r.namespace.to_string()
            },
            operation: r.operation,
            user: r.user.clone(),
            object: object.as_deref().cloned(),
            old_object: old.cloned(),
            dry_run: r.dry_run,
            options: None,
        };
        let labels: Option<BTreeMap<String, String>> = if req.namespace.is_empty() {
            None
        } else {
            self.namespaces
                .labels(&req.namespace)
                .map(|l| l.as_ref().clone())
        };
        let called: Vec<&Webhook> = hooks
            .iter()
            .filter(|h| h.matches(&req, labels.as_ref()))
            .collect();
        if called.is_empty() {
            return Ok(Vec::new());
        }
        // Resolve the service references of the webhooks that will be called.
        let mut addrs: HashMap<(String, String, u16), SocketAddr> = HashMap::new();
        for h in &called {
            if let Some(s) = &h.client_config.service {
                if let Some(a) = resolve_service(self, &s.namespace, &s.name, s.port).await {
                    addrs.insert((s.namespace.clone(), s.name.clone(), s.port), a);
                }
            }
        }
        let resolve = move |ns: &str, name: &str, port: u16| {
            addrs
                .get(&(ns.to_string(), name.to_string(), port))
                .copied()
        };
        if mutating {
            let out = webhook::run_mutating(
                &hooks,
                &mut req,
                labels.as_ref(),
                w.transport.as_ref(),
                &resolve,
            )
            .await
            .map_err(rejection_error)?;
            if let (Some(obj), Some(new)) = (object, req.object) {
                *obj = new;
            }
            Ok(out)
        } else {
            webhook::run_validating(
                &hooks,
                &req,
                labels.as_ref(),
                w.transport.as_ref(),
                &resolve,
            )
            .await
            .map_err(rejection_error)
        }
    }
}
