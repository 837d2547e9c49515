//! The legacy Endpoints controller (upstream `pkg/controller/endpoint`): for every Service
//! with a selector (any type but ExternalName) it keeps the core/v1 Endpoints object of the
//! same name: the selected pods with an IP, not terminal and (unless the Service publishes
//! not-ready addresses) not terminating, as `addresses` (ready) or `notReadyAddresses`, with
//! target reference, node name and hostname, one subset per distinct set of addresses
//! after upstream's `RepackSubsets`. Labels are the Service's (plus
//! `service.kubernetes.io/headless` for a Service without cluster IP); more than
//! [`MAX_CAPACITY`] addresses are truncated and annotated `over-capacity: truncated`. The
//! object is only written when its subsets, labels or capacity annotation would change, and
//! deleted with its Service (also, at start, when left over from a Service deleted while the
//! controller was down).
//!
//! Deviation: upstream orders the repacked subsets and ports by an MD5 hash of Go's object
//! dump; here they are ordered by their contents, which is as deterministic (unchanged
//! input, unchanged object) but not byte-identical to upstream's order.

use crate::cachedpod::CachedPod;
use crate::endpointslice::util::{self, KeyQueue, Members, RetryPolicy, RvTracker, TriggerTimes};
use crate::endpointslice::{api_message, namespace_terminating};
use crate::recorder::{Recorder, WARNING};
use crate::{Ctx, Error};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Event source of this controller.
pub const COMPONENT: &str = "endpoint-controller";
/// Most addresses an Endpoints object holds.
pub const MAX_CAPACITY: usize = 1000;
/// Annotation set when addresses were truncated.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// Its value.
pub const TRUNCATED: &str = "truncated";
/// Endpoints holding a leader-election record are not leftovers.
pub const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// Upstream's default `--concurrent-endpoint-syncs`.
const WORKERS: usize = 5;

// ---------------------------------------------------------------------------------------
// Desired state (pure)

/// The address of a pod for the Service (upstream `podToEndpointAddressForService`): the
/// first pod IP of the Service's (first) family; none when the pod has no such IP.
pub fn pod_address(svc: &Service, pod: &CachedPod) -> Option<EndpointAddress> {
    let spec = svc.spec.as_ref();
    let want_v6 = match spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
    {
        Some(f) => f == "IPv6",
        None if util::is_service_ip_set(svc) => {
            util::is_ipv6(spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or(""))
        }
        None => pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .is_some_and(util::is_ipv6),
    };
    let ip = pod
        .pod_ips()
        .into_iter()
        .find(|ip| util::is_ipv6(ip) == want_v6)?;
    Some(EndpointAddress {
        ip: ip.to_string(),
        node_name: Some(
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
        ),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        hostname: None,
    })
}

/// The Service's subsets before repacking, one per pod and port (upstream `syncService`'s
/// loop with `addEndpointSubset`), and the names of the pods listed.
pub fn pod_subsets(
    svc: &Service,
    pods: &[Arc<CachedPod>],
) -> (Vec<EndpointSubset>, HashSet<Box<str>>) {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let ports = spec.ports.unwrap_or_default();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let mut subsets = vec![];
    let mut members = HashSet::new();
    for pod in pods {
        if !util::should_pod_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(mut epa) = pod_address(svc, pod) else {
            continue;
        };
        if util::should_set_hostname(pod, svc) {
            epa.hostname = util::pod_hostname(pod).map(str::to_string);
        }
        let ready = publish || util::is_pod_ready(pod);
        let subset = |port: Option<EndpointPort>| {
            let (addresses, not_ready) = if ready {
                (Some(vec![epa.clone()]), None)
            } else {
                (None, Some(vec![epa.clone()]))
            };
            EndpointSubset {
                addresses,
                not_ready_addresses: not_ready,
                ports: port.map(|p| vec![p]),
            }
        };
        if ports.is_empty() {
            if headless {
                subsets.push(subset(None));
                members.insert(pod.name_any().into());
            }
            continue;
        }
        for sp in &ports {
            let Some(n) = util::find_port(pod, sp) else {
                continue;
            };
            subsets.push(subset(Some(EndpointPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port: n,
                protocol: Some(util::port_protocol(sp).to_string()),
                app_protocol: sp.app_protocol.clone(),
            })));
            members.insert(pod.name_any().into());
        }
    }
    (subsets, members)
}

/// A port as a map key; `port == -1` is the sentinel for addresses without ports.
type PortKey = (String, i32, String, String);
/// An address's identity: IP and target uid.
type AddrKey = (String, Option<String>);

fn port_key(p: &EndpointPort) -> PortKey {
    (
        p.name.clone().unwrap_or_default(),
        p.port,
        p.protocol.clone().unwrap_or_default(),
        p.app_protocol.clone().unwrap_or_default(),
    )
}

fn addr_key(a: &EndpointAddress) -> AddrKey {
    (
        a.ip.clone(),
        a.target_ref
            .as_ref()
            .map(|r| r.uid.clone().unwrap_or_default()),
    )
}

fn port_of(k: &PortKey) -> EndpointPort {
    let opt = |s: &String| (!s.is_empty()).then(|| s.clone());
    EndpointPort {
        name: opt(&k.0),
        port: k.1,
        protocol: opt(&k.2),
        app_protocol: opt(&k.3),
    }
}

/// Upstream `RepackSubsets`: maps every port to the addresses offering it (an address not
/// ready on any subset for a port is not ready for it), then builds one subset per distinct
/// set of addresses with all the ports they share, in canonical order.
pub fn repack_subsets(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let sentinel: PortKey = (String::new(), -1, String::new(), String::new());
    let mut all: BTreeMap<AddrKey, EndpointAddress> = BTreeMap::new();
    let mut by_port: BTreeMap<PortKey, BTreeMap<AddrKey, bool>> = BTreeMap::new();
    for ss in subsets {
        let ports: Vec<PortKey> = match ss.ports.as_deref() {
            Some(p) if !p.is_empty() => p.iter().map(port_key).collect(),
            _ => vec![sentinel.clone()],
        };
        let addrs = ss
            .addresses
            .iter()
            .flatten()
            .map(|a| (a, true))
            .chain(ss.not_ready_addresses.iter().flatten().map(|a| (a, false)));
        let addrs: Vec<(&EndpointAddress, bool)> = addrs.collect();
        for port in &ports {
            for (a, ready) in &addrs {
                let k = addr_key(a);
                all.entry(k.clone()).or_insert_with(|| (*a).clone());
                let set = by_port.entry(port.clone()).or_default();
                // Not ready wins over ready.
                if set.get(&k).is_none_or(|was| *was) {
                    set.insert(k, *ready);
                }
            }
        }
    }
    let mut by_addrs: BTreeMap<Vec<(AddrKey, bool)>, Vec<PortKey>> = BTreeMap::new();
    for (port, addrs) in by_port {
        let key: Vec<(AddrKey, bool)> = addrs.into_iter().collect();
        let ports = by_addrs.entry(key).or_default();
        if port.1 > 0 {
            ports.push(port);
        }
    }
    by_addrs
        .into_iter()
        .map(|(addrs, mut ports)| {
            ports.sort();
            let pick = |ready: bool| -> Option<Vec<EndpointAddress>> {
                let v: Vec<EndpointAddress> = addrs
                    .iter()
                    .filter(|(_, r)| *r == ready)
                    .map(|(k, _)| all[k].clone())
                    .collect();
                (!v.is_empty()).then_some(v)
            };
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: (!ports.is_empty()).then(|| ports.iter().map(port_of).collect()),
            }
        })
        .collect()
}

fn count(subsets: &[EndpointSubset]) -> (usize, usize) {
    subsets.iter().fold((0, 0), |(r, n), s| {
        (
            r + s.addresses.as_ref().map_or(0, Vec::len),
            n + s.not_ready_addresses.as_ref().map_or(0, Vec::len),
        )
    })
}

/// Upstream `truncateEndpoints`: above [`MAX_CAPACITY`] addresses, keeps ready ones first,
/// spread over the subsets in proportion to their size. Returns whether it truncated.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let (ready, not_ready) = count(subsets);
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut can_add = max;
    for s in subsets.iter_mut() {
        let field = if truncate_ready {
            &mut s.addresses
        } else {
            &mut s.not_ready_addresses
        };
        let n = field.as_ref().map_or(0, Vec::len);
        let share = ((n as f64 / total as f64) * max as f64).ceil() as usize;
        let keep = share.min(can_add);
        if let Some(v) = field.as_mut() {
            v.truncate(keep);
        }
        can_add -= field.as_ref().map_or(0, Vec::len);
        if truncate_ready {
            s.not_ready_addresses = None;
        }
    }
    true
}

/// Whether the capacity annotation matches the subsets (upstream
/// `capacityAnnotationSetCorrectly`).
fn capacity_annotation_ok(ep: &Endpoints) -> bool {
    let subsets = ep.subsets.as_deref().unwrap_or_default();
    let (r, n) = count(subsets);
    if r + n > MAX_CAPACITY {
        return false;
    }
    !ep.annotations().contains_key(OVER_CAPACITY_ANNOTATION)
}

/// Subsets as the API's encoding leaves them: empty lists absent, empty hostnames
/// absent, target resourceVersions ignored.
fn normalize(subsets: Option<&[EndpointSubset]>) -> Vec<EndpointSubset> {
    let addrs = |v: &Option<Vec<EndpointAddress>>| -> Option<Vec<EndpointAddress>> {
        let v: Vec<EndpointAddress> = v
            .iter()
            .flatten()
            .map(|a| {
                let mut a = a.clone();
                a.hostname = a.hostname.filter(|h| !h.is_empty());
                if let Some(r) = a.target_ref.as_mut() {
                    r.resource_version = None;
                }
                a
            })
            .collect();
        (!v.is_empty()).then_some(v)
    };
    subsets
        .unwrap_or_default()
        .iter()
        .map(|s| EndpointSubset {
            addresses: addrs(&s.addresses),
            not_ready_addresses: addrs(&s.not_ready_addresses),
            ports: s
                .ports
                .clone()
                .filter(|p| !p.is_empty())
                .map(|ps| ps.iter().map(|p| port_of(&port_key(p))).collect()),
        })
        .collect()
}

/// Whether two subset lists say the same (upstream
/// `endpointSubsetsEqualIgnoreResourceVersion`).
pub fn subsets_equal(a: Option<&[EndpointSubset]>, b: Option<&[EndpointSubset]>) -> bool {
    normalize(a) == normalize(b)
}

/// The Endpoints object to write for the Service given the current one and the repacked
/// subsets, with whether it is a create; `None` when nothing would change.
pub fn endpoints_to_write(
    svc: &Service,
    current: Option<&Endpoints>,
    subsets: Vec<EndpointSubset>,
    trigger: Option<jiff::Timestamp>,
) -> Option<(Endpoints, bool)> {
    let svc_labels = svc.metadata.labels.clone().unwrap_or_default();
    let current = current.filter(|c| c.metadata.resource_version.is_some());
    if let Some(cur) = current {
        let mut labels = cur.metadata.labels.clone().unwrap_or_default();
        labels.remove(util::LABEL_HEADLESS);
        if subsets_equal(cur.subsets.as_deref(), Some(&subsets))
            && labels == svc_labels
            && capacity_annotation_ok(cur)
        {
            return None;
        }
    }
    let mut ep = current.cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            ..Default::default()
        },
        subsets: None,
    });
    let mut subsets = subsets;
    let truncated = truncate(&mut subsets);
    ep.subsets = (!subsets.is_empty()).then_some(subsets);
    util::set_trigger_time(&mut ep.metadata.annotations, trigger);
    let ann = ep.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if truncated {
        ann.insert(OVER_CAPACITY_ANNOTATION.into(), TRUNCATED.into());
    } else {
        ann.remove(OVER_CAPACITY_ANNOTATION);
    }
    let mut labels = svc_labels;
    if util::is_service_ip_set(svc) {
        labels.remove(util::LABEL_HEADLESS);
    } else {
        labels.insert(util::LABEL_HEADLESS.into(), String::new());
    }
    ep.metadata.labels = Some(labels);
    Some((ep, current.is_none()))
}

// ---------------------------------------------------------------------------------------
// The controller

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("Endpoints informer cache is out of date")]
    StaleCache,
    #[error("deleting endpoints: {0}")]
    Delete(String),
    #[error("{0}")]
    Write(String),
}

struct EpCtx {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<CachedPod>,
    endpoints: Store<Endpoints>,
    written: RvTracker,
    triggers: TriggerTimes,
    members: Members,
    rec: Recorder,
}

/// Runs the endpoints controller.
pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let inf = &ctx.informers;
    let c = Arc::new(EpCtx {
        client: ctx.client.clone(),
        services: inf.services.store(),
        pods: inf.pods.store(),
        endpoints: inf.endpoints.store(),
        written: RvTracker::default(),
        triggers: TriggerTimes::default(),
        members: Members::default(),
        rec: Recorder::new(ctx.client.clone(), COMPONENT),
    });
    let q = KeyQueue::new(RetryPolicy::DEFAULT);

    let q2 = q.clone();
    util::spawn_feed(inf.services.subscribe(), move |s: Arc<Service>| {
        q2.add(crate::meta::key(s.as_ref()));
    });
    let (q2, c2) = (q.clone(), c.clone());
    util::spawn_feed(inf.pods.subscribe(), move |p: Arc<CachedPod>| {
        let services = c2.services.state();
        for k in util::services_for_pod(&services, &c2.members, &p) {
            q2.add(k);
        }
    });
    let (q2, c2, informers) = (q.clone(), c.clone(), ctx.informers.clone());
    util::spawn_feed(inf.endpoints.subscribe(), move |e: Arc<Endpoints>| {
        if informers.endpoints.is_gone(&e) {
            let k = crate::meta::key(e.as_ref());
            c2.written.forget(&k);
            q2.add(k);
        }
    });

    util::wait_ready(&c.services).await;
    util::wait_ready(&c.pods).await;
    util::wait_ready(&c.endpoints).await;
    // Endpoints left from Services deleted while the controller was down.
    for e in c.endpoints.state() {
        if !e.annotations().contains_key(LEADER_ANNOTATION) {
            q.add(crate::meta::key(e.as_ref()));
        }
    }
    q.run(WORKERS, |key| {
        let c = c.clone();
        async move { sync(&c, &key).await.map(|()| None) }
    })
    .await;
    Ok(())
}

async fn sync(c: &EpCtx, key: &str) -> Result<(), SyncError> {
    let (ns, name) = util::split_key(key);
    let api: Api<Endpoints> = Api::namespaced(c.client.clone(), ns);
    let Some(svc) = c.services.get(&ObjectRef::new(name).within(ns)) else {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(SyncError::Delete(api_message(&e))),
        }
        c.written.forget(key);
        c.triggers.forget(key);
        c.members.forget(key);
        return Ok(());
    };
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some(util::EXTERNAL_NAME) {
        c.members.forget(key);
        return Ok(());
    }
    let Some(selector) = util::service_selector(&svc) else {
        c.members.forget(key);
        return Ok(());
    };
    let pods = util::selected_pods(&c.pods, ns, selector);
    let trigger = c.triggers.compute(key, &svc, &pods);
    let (subsets, members) = pod_subsets(&svc, &pods);
    let subsets = repack_subsets(&subsets);
    c.members.set(key, members);
    let current = c.endpoints.get(&ObjectRef::new(name).within(ns));
    let current_rv = current
        .as_ref()
        .and_then(|e| e.metadata.resource_version.as_deref());
    if c.written.is_stale(key, current_rv) {
        return Err(SyncError::StaleCache);
    }
    let Some((ep, create)) = endpoints_to_write(&svc, current.as_deref(), subsets, trigger) else {
        return Ok(());
    };
    let pp = PostParams::default();
    let res = if create {
        api.create(&pp, &ep).await
    } else {
        api.replace(name, &pp, &ep).await
    };
    match res {
        Ok(written) => {
            c.written
                .wrote(key, written.metadata.resource_version.as_deref());
            Ok(())
        }
        Err(e) if create && namespace_terminating(&e) => Ok(()),
        Err(e) => {
            let msg = api_message(&e);
            if create {
                c.rec.event(
                    &ep,
                    WARNING,
                    "FailedToCreateEndpoint",
                    format!("Failed to create endpoint for service {ns}/{name}: {msg}"),
                );
            } else {
                c.rec.event(
                    &ep,
                    WARNING,
                    "FailedToUpdateEndpoint",
                    format!("Failed to update endpoint {ns}/{name}: {msg}"),
                );
            }
            Err(SyncError::Write(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, Pod, PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn svc(ports: Vec<ServicePort>, cluster_ip: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("svc-uid".into()),
                labels: Some([("team".to_string(), "a".to_string())].into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(cluster_ip.into()),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(ports),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn sp(name: &str, port: i32, target: IntOrString) -> ServicePort {
        ServicePort {
            name: Some(name.into()),
            port,
            target_port: Some(target),
            protocol: Some("TCP".into()),
            ..Default::default()
        }
    }

    fn pod(i: usize, http: Option<i32>, ready: bool) -> Arc<CachedPod> {
        Arc::new(CachedPod::from_pod(&Pod {
            metadata: ObjectMeta {
                name: Some(format!("web-{i}")),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{i:04}")),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: http.map(|p| {
                        vec![ContainerPort {
                            name: Some("http".into()),
                            container_port: p,
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(format!("10.42.{}.{}", i / 200, i % 200 + 1)),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }))
    }

    fn ips(v: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        v.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn subsets_are_repacked_by_address_set() {
        let s = svc(
            vec![
                sp("http", 80, IntOrString::String("http".into())),
                sp("metrics", 9100, IntOrString::Int(9100)),
            ],
            "10.43.0.10",
        );
        let pods = vec![
            pod(0, Some(8080), true),
            pod(1, Some(8080), false),
            pod(2, None, true),
        ];
        let (raw, members) = pod_subsets(&s, &pods);
        assert_eq!(raw.len(), 5);
        assert_eq!(members.len(), 3);
        let subsets = repack_subsets(&raw);
        // http: pods 0 (ready) and 1 (not ready); metrics: all three.
        assert_eq!(subsets.len(), 2);
        let http = subsets
            .iter()
            .find(|s| s.ports.as_ref().unwrap()[0].name.as_deref() == Some("http"))
            .unwrap();
        assert_eq!(ips(&http.addresses), ["10.42.0.1"]);
        assert_eq!(ips(&http.not_ready_addresses), ["10.42.0.2"]);
        assert_eq!(http.ports.as_ref().unwrap()[0].port, 8080);
        let metrics = subsets
            .iter()
            .find(|s| s.ports.as_ref().unwrap()[0].name.as_deref() == Some("metrics"))
            .unwrap();
        assert_eq!(ips(&metrics.addresses), ["10.42.0.1", "10.42.0.3"]);
        assert_eq!(ips(&metrics.not_ready_addresses), ["10.42.0.2"]);
        let a = &metrics.addresses.as_ref().unwrap()[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        let r = a.target_ref.as_ref().unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.name.as_deref()),
            (Some("Pod"), Some("web-0"))
        );
        // Deterministic: repacking again, or from shuffled input, gives the same.
        assert_eq!(repack_subsets(&subsets), subsets);
        let mut rev = raw.clone();
        rev.reverse();
        assert_eq!(repack_subsets(&rev), subsets);
    }

    #[test]
    fn shared_address_sets_share_a_subset() {
        let s = svc(
            vec![
                sp("a", 80, IntOrString::Int(8080)),
                sp("b", 81, IntOrString::Int(8081)),
            ],
            "10.43.0.10",
        );
        let pods = vec![pod(0, None, true), pod(1, None, true)];
        let subsets = repack_subsets(&pod_subsets(&s, &pods).0);
        assert_eq!(subsets.len(), 1);
        let ports: Vec<i32> = subsets[0].ports.iter().flatten().map(|p| p.port).collect();
        assert_eq!(ports, [8080, 8081]);
        assert_eq!(ips(&subsets[0].addresses), ["10.42.0.1", "10.42.0.2"]);
    }

    #[test]
    fn terminating_and_headless_without_ports() {
        let mut s = svc(vec![], "None");
        let mut t = (*pod(0, None, true)).clone();
        t.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        let pods = vec![Arc::new(t), pod(1, None, false)];
        let subsets = repack_subsets(&pod_subsets(&s, &pods).0);
        // The terminating pod is left out; the headless Service keeps port-less addresses.
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].ports.is_none());
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.42.0.2"]);
        // Publishing not-ready addresses: both, as ready.
        s.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let subsets = repack_subsets(&pod_subsets(&s, &pods).0);
        assert_eq!(ips(&subsets[0].addresses), ["10.42.0.1", "10.42.0.2"]);
        assert!(subsets[0].not_ready_addresses.is_none());
        // A ClusterIP Service without ports lists nothing.
        let plain = svc(vec![], "10.43.0.1");
        assert!(pod_subsets(&plain, &pods).0.is_empty());
    }

    #[test]
    fn write_only_on_change() {
        let s = svc(vec![sp("http", 80, IntOrString::Int(8080))], "10.43.0.10");
        let pods = vec![pod(0, None, true), pod(1, None, true)];
        let subsets = repack_subsets(&pod_subsets(&s, &pods).0);
        let (ep, create) = endpoints_to_write(&s, None, subsets.clone(), None).unwrap();
        assert!(create);
        assert_eq!(ep.metadata.name.as_deref(), Some("web"));
        assert_eq!(ep.labels()["team"], "a");
        assert!(!ep.labels().contains_key(util::LABEL_HEADLESS));
        // As stored (with a resourceVersion): unchanged input writes nothing.
        let mut stored = ep.clone();
        stored.metadata.resource_version = Some("5".into());
        assert!(endpoints_to_write(&s, Some(&stored), subsets.clone(), None).is_none());
        // A readiness change does.
        let pods2 = vec![pod(0, None, true), pod(1, None, false)];
        let subsets2 = repack_subsets(&pod_subsets(&s, &pods2).0);
        let (ep2, create) = endpoints_to_write(
            &s,
            Some(&stored),
            subsets2,
            Some(jiff::Timestamp::UNIX_EPOCH),
        )
        .unwrap();
        assert!(!create);
        assert_eq!(ep2.metadata.resource_version.as_deref(), Some("5"));
        assert_eq!(
            ep2.annotations()[util::TRIGGER_TIME_ANNOTATION],
            "1970-01-01T00:00:00Z"
        );
        // So does a label change; a headless Service gets the headless label.
        let mut s2 = svc(vec![sp("http", 80, IntOrString::Int(8080))], "None");
        s2.metadata.labels = None;
        let (ep3, _) = endpoints_to_write(&s2, Some(&stored), subsets, None).unwrap();
        assert_eq!(ep3.labels()[util::LABEL_HEADLESS], "");
        assert!(!ep3.labels().contains_key("team"));
    }

    #[test]
    fn over_capacity_is_truncated_and_annotated() {
        let s = svc(vec![sp("http", 80, IntOrString::Int(8080))], "10.43.0.10");
        let pods: Vec<_> = (0..1100).map(|i| pod(i, None, i % 2 == 0)).collect();
        let subsets = repack_subsets(&pod_subsets(&s, &pods).0);
        let (ep, _) = endpoints_to_write(&s, None, subsets, None).unwrap();
        let (r, n) = count(ep.subsets.as_deref().unwrap());
        // All 550 ready addresses kept, not-ready ones cut to fit.
        assert_eq!((r, n), (550, 450));
        assert_eq!(ep.annotations()[OVER_CAPACITY_ANNOTATION], TRUNCATED);
        // Many ready addresses: only ready ones, 1000 of them.
        let pods: Vec<_> = (0..1100).map(|i| pod(i, None, i != 5)).collect();
        let mut subsets = repack_subsets(&pod_subsets(&s, &pods).0);
        assert!(truncate(&mut subsets));
        assert_eq!(count(&subsets), (1000, 0));
        // Under capacity, the annotation goes away.
        let small = repack_subsets(&pod_subsets(&s, &pods[..3]).0);
        let mut stored = ep.clone();
        stored.metadata.resource_version = Some("1".into());
        let (ep2, _) = endpoints_to_write(&s, Some(&stored), small, None).unwrap();
        assert!(!ep2.annotations().contains_key(OVER_CAPACITY_ANNOTATION));
    }

    #[test]
    fn equality_ignores_encoding_details() {
        let a = vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: "10.42.0.1".into(),
                hostname: Some(String::new()),
                target_ref: Some(ObjectReference {
                    name: Some("p".into()),
                    resource_version: Some("7".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            not_ready_addresses: Some(vec![]),
            ports: Some(vec![EndpointPort {
                port: 80,
                name: Some(String::new()),
                ..Default::default()
            }]),
        }];
        let b = vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: "10.42.0.1".into(),
                target_ref: Some(ObjectReference {
                    name: Some("p".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            not_ready_addresses: None,
            ports: Some(vec![EndpointPort {
                port: 80,
                ..Default::default()
            }]),
        }];
        assert!(subsets_equal(Some(&a), Some(&b)));
        assert!(subsets_equal(None, Some(&[])));
        assert!(!subsets_equal(Some(&a), None));
    }
}
