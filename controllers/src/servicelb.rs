//! The built-in service load balancer (k3s `pkg/cloudprovider/servicelb`, without its svclb
//! DaemonSet: the proxy on every node serves the addresses itself). For every Service of
//! type LoadBalancer without `spec.loadBalancerClass` it writes
//! `status.loadBalancer.ingress` (through `services/status`): the addresses of the eligible
//! nodes, as k3s lists the nodes running its svclb pods: Ready and schedulable nodes (only
//! those labelled `svccontroller.k3s.cattle.io/enablelb=true` once any node carries that
//! label, and of the Service's `lbpool` when it names one); with
//! `externalTrafficPolicy: Local`, only nodes with a ready endpoint of the Service. The
//! ExternalIPs of those nodes when any has one, else their InternalIPs, ordered by the
//! Service's IP families and sorted, each with `ipMode: VIP`. A Service that stops being a
//! LoadBalancer has its ingress cleared. Events as k3s: `UpdatedLoadBalancer`,
//! `UnAvailableLoadBalancer` (and the service controller's `DeletedLoadBalancer` when the
//! ingress is cleared).
//!
//! Deviation: a Service without `spec.ipFamilies` (an API server that does not default them)
//! is treated as IPv4, where k3s would list no address at all.

use crate::endpointslice::util::{self, KeyQueue, RetryPolicy, RvTracker};
use crate::endpointslice::{api_message, LABEL_SERVICE_NAME};
use crate::recorder::{Recorder, NORMAL, WARNING};
use crate::{Ctx, Error};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// Event source of this controller.
pub const COMPONENT: &str = "service-lb-controller";
/// Node label: once any node has it, only nodes with `true` serve load balancers.
pub const LABEL_ENABLE_LB: &str = "svccontroller.k3s.cattle.io/enablelb";
/// Node and Service label: the pool of nodes serving the Service.
pub const LABEL_LB_POOL: &str = "svccontroller.k3s.cattle.io/lbpool";
/// `status.loadBalancer.ingress[].ipMode` written.
pub const IP_MODE_VIP: &str = "VIP";
const WORKERS: usize = 2;

// ---------------------------------------------------------------------------------------
// Desired state (pure)

fn spec_type(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

/// Whether the Service has a `loadBalancerClass` (another implementation's Service).
pub fn has_class(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_deref())
        .is_some_and(|c| !c.is_empty())
}

/// A LoadBalancer Service this controller serves.
pub fn wants_load_balancer(svc: &Service) -> bool {
    spec_type(svc) == "LoadBalancer" && !has_class(svc)
}

/// `externalTrafficPolicy: Local` on a Service with node ports (upstream
/// `RequestsOnlyLocalTraffic`).
pub fn requests_only_local_traffic(svc: &Service) -> bool {
    matches!(spec_type(svc), "LoadBalancer" | "NodePort")
        && svc
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
            == Some("Local")
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The nodes that serve the Service's load balancer (see the module docs).
pub fn eligible_nodes<'a>(svc: &Service, nodes: &'a [Arc<Node>]) -> Vec<&'a Node> {
    let selective = nodes
        .iter()
        .any(|n| n.labels().contains_key(LABEL_ENABLE_LB));
    let pool = svc.labels().get(LABEL_LB_POOL).filter(|p| !p.is_empty());
    nodes
        .iter()
        .map(|n| n.as_ref())
        .filter(|n| node_ready(n))
        .filter(|n| {
            !n.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
        })
        .filter(|n| {
            if !selective {
                return true;
            }
            let l = n.labels();
            l.get(LABEL_ENABLE_LB).map(String::as_str) == Some("true")
                && pool.is_none_or(|p| l.get(LABEL_LB_POOL) == Some(p))
        })
        .collect()
}

/// Nodes with a ready pod endpoint in the Service's slices.
pub fn nodes_with_ready_endpoints(slices: &[Arc<EndpointSlice>]) -> HashSet<String> {
    slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.target_ref.as_ref().and_then(|r| r.kind.as_deref()) == Some("Pod"))
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .filter_map(|e| e.node_name.clone())
        .collect()
}

/// The ingress addresses (k3s `podIPs` + `filterByIPFamily`): ExternalIPs of the eligible
/// nodes when any has one, else their InternalIPs; by the Service's IP families in order,
/// each family sorted. `local` restricts the nodes (for `externalTrafficPolicy: Local`).
pub fn ingress_ips(
    svc: &Service,
    nodes: &[Arc<Node>],
    local: Option<&HashSet<String>>,
) -> Vec<String> {
    let mut external = BTreeSet::new();
    let mut internal = BTreeSet::new();
    for n in eligible_nodes(svc, nodes) {
        if local.is_some_and(|l| !l.contains(&n.name_any())) {
            continue;
        }
        for a in n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
        {
            match a.type_.as_str() {
                "ExternalIP" => external.insert(a.address.clone()),
                "InternalIP" => internal.insert(a.address.clone()),
                _ => false,
            };
        }
    }
    let ips = if external.is_empty() {
        internal
    } else {
        external
    };
    let mut families: Vec<&str> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if families.is_empty() {
        families.push("IPv4");
    }
    let mut out = vec![];
    for f in families {
        let want_v6 = match f {
            "IPv4" => false,
            "IPv6" => true,
            _ => continue,
        };
        out.extend(
            ips.iter()
                .filter(|ip| {
                    ip.parse::<std::net::IpAddr>()
                        .is_ok_and(|a| a.is_ipv6() == want_v6)
                })
                .cloned(),
        );
    }
    out
}

/// The ingress list for addresses.
pub fn ingress_for(ips: &[String]) -> Vec<LoadBalancerIngress> {
    ips.iter()
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip.clone()),
            ip_mode: Some(IP_MODE_VIP.into()),
            ..Default::default()
        })
        .collect()
}

/// The Service's current ingress.
pub fn current_ingress(svc: &Service) -> Vec<LoadBalancerIngress> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.clone())
        .unwrap_or_default()
}

/// Upstream `LoadBalancerStatusEqual` on the ingress lists.
pub fn ingress_equal(a: &[LoadBalancerIngress], b: &[LoadBalancerIngress]) -> bool {
    let norm = |v: &[LoadBalancerIngress]| -> Vec<LoadBalancerIngress> {
        v.iter()
            .map(|i| LoadBalancerIngress {
                ip: i.ip.clone().filter(|s| !s.is_empty()),
                hostname: i.hostname.clone().filter(|s| !s.is_empty()),
                ip_mode: i.ip_mode.clone(),
                ports: i.ports.clone().filter(|p| !p.is_empty()),
            })
            .collect()
    };
    norm(a) == norm(b)
}

/// k3s `ingressToString` as Go's `%v` prints it: `[10.0.0.1 10.0.0.2]`.
pub fn ingress_string(v: &[LoadBalancerIngress]) -> String {
    let parts: Vec<&str> = v
        .iter()
        .map(|i| {
            i.ip.as_deref()
                .filter(|s| !s.is_empty())
                .or(i.hostname.as_deref())
                .unwrap_or("")
        })
        .collect();
    format!("[{}]", parts.join(" "))
}

/// What a sync should do with a Service's ingress.
#[derive(Debug, Clone, PartialEq)]
pub enum IngressChange {
    /// Leave it.
    Keep,
    /// Write this ingress.
    Set(Vec<LoadBalancerIngress>),
    /// The Service is no longer a LoadBalancer: clear the ingress.
    Clear,
}

/// Decides the ingress change for a Service whose current ingress is `current`.
pub fn ingress_change(
    svc: &Service,
    current: &[LoadBalancerIngress],
    nodes: &[Arc<Node>],
    slices: &[Arc<EndpointSlice>],
) -> IngressChange {
    if has_class(svc) {
        return IngressChange::Keep;
    }
    if !wants_load_balancer(svc) {
        return if current.is_empty() {
            IngressChange::Keep
        } else {
            IngressChange::Clear
        };
    }
    let local = requests_only_local_traffic(svc).then(|| nodes_with_ready_endpoints(slices));
    let want = ingress_for(&ingress_ips(svc, nodes, local.as_ref()));
    if ingress_equal(current, &want) {
        IngressChange::Keep
    } else {
        IngressChange::Set(want)
    }
}

// ---------------------------------------------------------------------------------------
// The controller

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("Service informer cache is out of date")]
    StaleCache,
    #[error("error updating LoadBalancer Status for {0}: {1}")]
    PatchStatus(String, String),
}

struct LbCtx {
    client: kube::Client,
    services: Store<Service>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    written: RvTracker,
    rec: Recorder,
}

/// Runs the service load balancer.
pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let inf = &ctx.informers;
    let c = Arc::new(LbCtx {
        client: ctx.client.clone(),
        services: inf.services.store(),
        nodes: inf.nodes.store(),
        slices: inf.endpointslices.store(),
        written: RvTracker::default(),
        rec: Recorder::new(ctx.client.clone(), COMPONENT),
    });
    let q = KeyQueue::new(RetryPolicy::DEFAULT);

    let q2 = q.clone();
    util::spawn_feed(inf.services.subscribe(), move |s: Arc<Service>| {
        q2.add(crate::meta::key(s.as_ref()));
    });
    let (q2, c2) = (q.clone(), c.clone());
    util::spawn_feed(inf.nodes.subscribe(), move |_n: Arc<Node>| {
        for s in c2.services.state() {
            if wants_load_balancer(&s) {
                q2.add(crate::meta::key(s.as_ref()));
            }
        }
    });
    let q2 = q.clone();
    util::spawn_feed(
        inf.endpointslices.subscribe(),
        move |s: Arc<EndpointSlice>| {
            if let (Some(ns), Some(svc)) = (
                s.metadata.namespace.as_deref(),
                s.labels().get(LABEL_SERVICE_NAME),
            ) {
                q2.add(util::key(ns, svc));
            }
        },
    );

    util::wait_ready(&c.services).await;
    util::wait_ready(&c.nodes).await;
    util::wait_ready(&c.slices).await;
    q.run(WORKERS, |key| {
        let c = c.clone();
        async move { sync(&c, &key).await.map(|()| None) }
    })
    .await;
    Ok(())
}

async fn sync(c: &LbCtx, key: &str) -> Result<(), SyncError> {
    let (ns, name) = util::split_key(key);
    let Some(svc) = c.services.get(&ObjectRef::new(name).within(ns)) else {
        c.written.forget(key);
        return Ok(());
    };
    if c.written
        .is_stale(key, svc.metadata.resource_version.as_deref())
    {
        return Err(SyncError::StaleCache);
    }
    let current = current_ingress(&svc);
    let slices: Vec<Arc<EndpointSlice>> = c
        .slices
        .state()
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
        .filter(|s| s.labels().get(LABEL_SERVICE_NAME).map(String::as_str) == Some(name))
        .collect();
    let change = ingress_change(&svc, &current, &c.nodes.state(), &slices);
    let want = match &change {
        IngressChange::Keep => return Ok(()),
        IngressChange::Set(v) => Some(v.clone()),
        IngressChange::Clear => None,
    };
    let api: Api<Service> = Api::namespaced(c.client.clone(), ns);
    let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": want}}});
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(s) => c.written.wrote(key, s.metadata.resource_version.as_deref()),
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(SyncError::PatchStatus(key.to_string(), api_message(&e))),
    }
    match want {
        None => c.rec.event(
            svc.as_ref(),
            NORMAL,
            "DeletedLoadBalancer",
            "Deleted load balancer",
        ),
        Some(v) if v.is_empty() => c.rec.event(
            svc.as_ref(),
            WARNING,
            "UnAvailableLoadBalancer",
            "There are no available nodes for LoadBalancer",
        ),
        Some(v) => c.rec.event(
            svc.as_ref(),
            NORMAL,
            "UpdatedLoadBalancer",
            format!(
                "Updated LoadBalancer with new IPs: {} -> {}",
                ingress_string(&current),
                ingress_string(&v)
            ),
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        NodeAddress, NodeCondition, NodeSpec, NodeStatus, ObjectReference, ServiceSpec,
        ServiceStatus,
    };
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, ready: bool, addrs: &[(&str, &str)], labels: &[(&str, &str)]) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                addresses: Some(
                    addrs
                        .iter()
                        .map(|(t, a)| NodeAddress {
                            type_: t.to_string(),
                            address: a.to_string(),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
        })
    }

    fn lb() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn ips(v: &[LoadBalancerIngress]) -> Vec<&str> {
        v.iter().map(|i| i.ip.as_deref().unwrap()).collect()
    }

    #[test]
    fn ingress_lists_ready_schedulable_nodes_sorted() {
        let mut cordoned = (*node("c", true, &[("InternalIP", "10.0.0.4")], &[])).clone();
        cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
        let nodes = vec![
            node(
                "b",
                true,
                &[("InternalIP", "10.0.0.9"), ("Hostname", "b")],
                &[],
            ),
            node("a", true, &[("InternalIP", "10.0.0.10")], &[]),
            node("d", false, &[("InternalIP", "10.0.0.5")], &[]),
            Arc::new(cordoned),
        ];
        let s = lb();
        // Sorted as strings, as k3s does.
        assert_eq!(ingress_ips(&s, &nodes, None), ["10.0.0.10", "10.0.0.9"]);
        let IngressChange::Set(v) = ingress_change(&s, &[], &nodes, &[]) else {
            panic!("expected a change");
        };
        assert_eq!(ips(&v), ["10.0.0.10", "10.0.0.9"]);
        assert!(v.iter().all(|i| i.ip_mode.as_deref() == Some("VIP")));
        // Already there: nothing to do.
        assert_eq!(ingress_change(&s, &v, &nodes, &[]), IngressChange::Keep);
    }

    #[test]
    fn external_ips_win_and_families_order() {
        let nodes = vec![
            node(
                "a",
                true,
                &[("InternalIP", "10.0.0.1"), ("ExternalIP", "203.0.113.1")],
                &[],
            ),
            node(
                "b",
                true,
                &[("InternalIP", "10.0.0.2"), ("InternalIP", "fd00::2")],
                &[],
            ),
        ];
        let mut s = lb();
        assert_eq!(ingress_ips(&s, &nodes, None), ["203.0.113.1"]);
        let nodes = vec![node(
            "b",
            true,
            &[("InternalIP", "10.0.0.2"), ("InternalIP", "fd00::2")],
            &[],
        )];
        s.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
        assert_eq!(ingress_ips(&s, &nodes, None), ["fd00::2", "10.0.0.2"]);
        s.spec.as_mut().unwrap().ip_families = Some(vec!["IPv4".into()]);
        assert_eq!(ingress_ips(&s, &nodes, None), ["10.0.0.2"]);
    }

    #[test]
    fn enablelb_labels_and_pools() {
        let nodes = vec![
            node(
                "a",
                true,
                &[("InternalIP", "10.0.0.1")],
                &[(LABEL_ENABLE_LB, "true")],
            ),
            node(
                "b",
                true,
                &[("InternalIP", "10.0.0.2")],
                &[(LABEL_ENABLE_LB, "true"), (LABEL_LB_POOL, "p1")],
            ),
            node("c", true, &[("InternalIP", "10.0.0.3")], &[]),
            node(
                "d",
                true,
                &[("InternalIP", "10.0.0.4")],
                &[(LABEL_ENABLE_LB, "false")],
            ),
        ];
        let mut s = lb();
        assert_eq!(ingress_ips(&s, &nodes, None), ["10.0.0.1", "10.0.0.2"]);
        s.metadata.labels = Some([(LABEL_LB_POOL.to_string(), "p1".to_string())].into());
        assert_eq!(ingress_ips(&s, &nodes, None), ["10.0.0.2"]);
    }

    #[test]
    fn local_traffic_only_nodes_with_ready_endpoints() {
        let nodes = vec![
            node("a", true, &[("InternalIP", "10.0.0.1")], &[]),
            node("b", true, &[("InternalIP", "10.0.0.2")], &[]),
        ];
        let mut s = lb();
        s.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
        let ep = |node: &str, ready: bool| Endpoint {
            addresses: vec!["10.42.0.1".into()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                ..Default::default()
            }),
            node_name: Some(node.into()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let slice = Arc::new(EndpointSlice {
            endpoints: vec![ep("b", true), ep("a", false)],
            ..Default::default()
        });
        let IngressChange::Set(v) = ingress_change(&s, &[], &nodes, &[slice]) else {
            panic!("expected a change");
        };
        assert_eq!(ips(&v), ["10.0.0.2"]);
    }

    #[test]
    fn non_load_balancers_are_cleared_and_classes_left_alone() {
        let nodes = vec![node("a", true, &[("InternalIP", "10.0.0.1")], &[])];
        let have = ingress_for(&["10.0.0.1".to_string()]);
        let mut s = lb();
        s.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert_eq!(ingress_change(&s, &have, &nodes, &[]), IngressChange::Clear);
        assert_eq!(ingress_change(&s, &[], &nodes, &[]), IngressChange::Keep);
        let mut c = lb();
        c.spec.as_mut().unwrap().load_balancer_class = Some("example.com/lb".into());
        assert_eq!(ingress_change(&c, &[], &nodes, &[]), IngressChange::Keep);
        // No eligible node: an empty ingress is written over a stale one.
        let none: Vec<Arc<Node>> = vec![];
        assert_eq!(
            ingress_change(&lb(), &have, &none, &[]),
            IngressChange::Set(vec![])
        );
        let mut with_status = lb();
        with_status.status = Some(ServiceStatus::default());
        assert!(current_ingress(&with_status).is_empty());
        assert_eq!(ingress_string(&have), "[10.0.0.1]");
        assert_eq!(ingress_string(&[]), "[]");
    }
}
