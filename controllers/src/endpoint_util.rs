//! What the endpointslice and endpoints controllers and the service load balancer share:
//!
//! * [`KeyQueue`]: a de-duplicating, rate-limited work queue of Service keys
//!   (`namespace/name`), as upstream's `workqueue.RateLimitingInterface`: a key added while
//!   it is being synced runs once more afterwards, never twice at once; failures back off
//!   exponentially per key and are dropped after `max_retries`. Keys outlive their objects,
//!   so a sync sees a deleted Service (kube-runtime's `Controller` only reconciles objects
//!   still in the cache).
//! * [`Members`]: the pods each Service's endpoints last listed, so a pod whose labels
//!   changed also wakes the Services it left (upstream compares the old and new pod; the
//!   shared informer only hands over the new one).
//! * [`TriggerTimes`]: upstream's `TriggerTimeTracker` (the
//!   `endpoints.kubernetes.io/last-change-trigger-time` annotation).
//! * [`RvTracker`]: the resourceVersions this controller wrote, to tell a lagging informer
//!   cache from a real change (upstream's endpoint(slice) trackers).
//! * The pod helpers of upstream's `k8s.io/endpointslice/util` (`ShouldPodBeInEndpoints`,
//!   `ShouldSetHostname`, `FindPort`, `GetPodServiceMemberships`).

use crate::cachedpod::CachedPod;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::reflector::Store;
use kube::runtime::scheduler::{scheduler, ScheduleRequest};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// `spec.type` of a Service whose endpoints nobody computes.
pub const EXTERNAL_NAME: &str = "ExternalName";
/// Label marking the endpoints of a Service without a cluster IP.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Annotation with the time of the change that caused the last endpoints update.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

// ---------------------------------------------------------------------------------------
// Work queue

/// Per-key retry back-off of a [`KeyQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure; doubled after each further one.
    pub base: Duration,
    pub max: Duration,
    /// Failures after which a key is dropped (until something adds it again).
    pub max_retries: u32,
}

impl RetryPolicy {
    /// Upstream's default controller rate limiter (5 ms doubling up to 1000 s) with the
    /// endpoint controllers' 15 retries.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(5),
        max: Duration::from_secs(1000),
        max_retries: 15,
    };

    /// The delay after `failures` earlier consecutive failures.
    pub fn delay(&self, failures: u32) -> Duration {
        let d = self.base.saturating_mul(1u32 << failures.min(30));
        d.min(self.max)
    }
}

#[derive(Default)]
struct QueueState {
    /// Keys being synced; `true` when added again meanwhile.
    inflight: HashMap<String, bool>,
    failures: HashMap<String, u32>,
}

/// A de-duplicating delay queue of keys with per-key back-off (see the module docs).
pub struct KeyQueue {
    tx: mpsc::UnboundedSender<ScheduleRequest<String>>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<ScheduleRequest<String>>>>,
    state: Mutex<QueueState>,
    policy: RetryPolicy,
}

impl KeyQueue {
    pub fn new(policy: RetryPolicy) -> Arc<KeyQueue> {
        let (tx, rx) = mpsc::unbounded_channel();
        Arc::new(KeyQueue {
            tx,
            rx: Mutex::new(Some(rx)),
            state: Mutex::default(),
            policy,
        })
    }

    /// Queues `key` now (a key already queued runs once).
    pub fn add(&self, key: impl Into<String>) {
        self.add_after(key, Duration::ZERO);
    }

    /// Queues `key` after `after` (the earliest time wins while it waits).
    pub fn add_after(&self, key: impl Into<String>, after: Duration) {
        let _ = self.tx.send(ScheduleRequest {
            message: key.into(),
            run_at: Instant::now() + after,
        });
    }

    /// Marks `key` in flight; false when it already is (it will run again afterwards).
    fn begin(&self, key: &str) -> bool {
        let mut st = self.state.lock().expect("queue lock");
        if let Some(dirty) = st.inflight.get_mut(key) {
            *dirty = true;
            return false;
        }
        st.inflight.insert(key.to_string(), false);
        true
    }

    /// Ends a sync of `key`: `Ok(requeue)` or a failure. Returns when to run it again.
    fn finish(&self, key: &str, res: Result<Option<Duration>, ()>) -> Option<Duration> {
        let mut st = self.state.lock().expect("queue lock");
        let dirty = st.inflight.remove(key).unwrap_or(false);
        let again = match res {
            Ok(requeue) => {
                st.failures.remove(key);
                requeue
            }
            Err(()) => {
                let n = st.failures.entry(key.to_string()).or_insert(0);
                if *n >= self.policy.max_retries {
                    st.failures.remove(key);
                    tracing::info!(key, "retry budget exceeded, dropping key from the queue");
                    None
                } else {
                    let d = self.policy.delay(*n);
                    *n += 1;
                    Some(d)
                }
            }
        };
        match (dirty, again) {
            (true, _) => Some(Duration::ZERO),
            (false, d) => d,
        }
    }

    /// Runs `sync` on due keys with up to `workers` at once, never one key twice at once,
    /// until the queue's senders are gone. A sync returns when to look again, or an error
    /// (logged, retried with back-off). Only the first call runs anything.
    pub async fn run<F, Fut, E>(self: Arc<Self>, workers: usize, sync: F)
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<Option<Duration>, E>>,
        E: Display,
    {
        let Some(mut rx) = self.rx.lock().expect("queue lock").take() else {
            return;
        };
        let requests = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let sync = &sync;
        scheduler(requests)
            .for_each_concurrent(workers, |key| {
                let q = self.clone();
                async move {
                    if !q.begin(&key) {
                        return;
                    }
                    let res = sync(key.clone()).await.map_err(|e| {
                        tracing::debug!(key = %key, error = %e, "sync failed, retrying");
                    });
                    if let Some(d) = q.finish(&key, res) {
                        q.add_after(key, d);
                    }
                }
            })
            .await;
    }
}

/// Feeds a shared informer subscription into `f` until the informer stops.
pub fn spawn_feed<K, F>(mut sub: crate::informers::Subscription<K>, mut f: F)
where
    K: Send + Sync + 'static,
    F: FnMut(Arc<K>) + Send + 'static,
{
    tokio::spawn(async move {
        while let Some(o) = sub.next().await {
            f(o);
        }
    });
}

pub use crate::informers::wait_ready;

/// `namespace/name`.
pub fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// Splits `namespace/name`.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

// ---------------------------------------------------------------------------------------
// Pod → Service memberships

/// The pods (by name) each Service's endpoints last listed, keyed by Service key.
#[derive(Default)]
pub struct Members(Mutex<HashMap<String, HashSet<Box<str>>>>);

impl Members {
    /// Records the pods `svc_key` now lists.
    pub fn set(&self, svc_key: &str, pods: HashSet<Box<str>>) {
        let mut m = self.0.lock().expect("members lock");
        if pods.is_empty() {
            m.remove(svc_key);
        } else {
            m.insert(svc_key.to_string(), pods);
        }
    }

    pub fn forget(&self, svc_key: &str) {
        self.0.lock().expect("members lock").remove(svc_key);
    }

    /// Keys of the Services in `ns` whose endpoints list pod `name`.
    pub fn services_of(&self, ns: &str, name: &str) -> Vec<String> {
        let m = self.0.lock().expect("members lock");
        m.iter()
            .filter(|(k, pods)| split_key(k).0 == ns && pods.contains(name))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// `spec.selector` as upstream's controllers see it: an empty map does not survive the
/// API's encoding (`omitempty`), so it selects nothing, like a missing one.
pub fn service_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
}

/// Whether `labels` carry every `selector` pair.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The Services a pod event must wake (upstream `GetPodServiceMemberships` over the old and
/// the new pod): those in its namespace whose selector matches it, plus those whose
/// endpoints still list it.
pub fn services_for_pod(
    services: &[Arc<Service>],
    members: &Members,
    pod: &CachedPod,
) -> BTreeSet<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let mut out: BTreeSet<String> = members.services_of(ns, name).into_iter().collect();
    for svc in services {
        if svc.metadata.namespace.as_deref() != Some(ns) {
            continue;
        }
        if service_selector(svc)
            .is_some_and(|sel| selector_matches(sel, pod.metadata.labels.as_ref()))
        {
            out.insert(crate::meta::key_of(&svc.metadata));
        }
    }
    out
}

/// The pods of `ns` that `selector` matches.
pub fn selected_pods(
    pods: &Store<CachedPod>,
    ns: &str,
    selector: &BTreeMap<String, String>,
) -> Vec<Arc<CachedPod>> {
    let mut out: Vec<Arc<CachedPod>> = pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| selector_matches(selector, p.metadata.labels.as_ref()))
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

// ---------------------------------------------------------------------------------------
// Pods

/// The pod's Ready condition is True (upstream `podutil.IsPodReady`).
pub fn is_pod_ready(p: &CachedPod) -> bool {
    crate::replicaset::is_pod_ready(p)
}

/// `Succeeded` or `Failed` (upstream `IsPodTerminal`).
pub fn is_pod_terminal(p: &CachedPod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// Upstream `ShouldPodBeInEndpoints`: not terminal, has an IP, and (unless
/// `include_terminating`) not being deleted.
pub fn should_pod_be_in_endpoints(p: &CachedPod, include_terminating: bool) -> bool {
    if is_pod_terminal(p) || p.pod_ips().is_empty() {
        return false;
    }
    include_terminating || p.metadata.deletion_timestamp.is_none()
}

/// Upstream `ShouldSetHostname`: the pod names a hostname and this Service as subdomain.
pub fn should_set_hostname(p: &CachedPod, svc: &Service) -> bool {
    let Some(spec) = p.spec.as_ref() else {
        return false;
    };
    spec.hostname.as_deref().is_some_and(|h| !h.is_empty())
        && spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && p.metadata.namespace == svc.metadata.namespace
}

/// The pod's hostname.
pub fn pod_hostname(p: &CachedPod) -> Option<&str> {
    p.spec.as_ref().and_then(|s| s.hostname.as_deref())
}

/// `spec.ports[].protocol`, `TCP` when unset.
pub fn port_protocol(sp: &ServicePort) -> &str {
    sp.protocol
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("TCP")
}

/// Upstream `FindPort`: a numeric `targetPort` as is (the port itself when unset, as the
/// API defaults it); a named one looked up among the containers' ports, then the sidecars'
/// (init containers with `restartPolicy: Always`), by name and protocol.
pub fn find_port(p: &CachedPod, sp: &ServicePort) -> Option<i32> {
    let name = match &sp.target_port {
        None => return Some(sp.port),
        Some(IntOrString::Int(n)) => return Some(*n),
        Some(IntOrString::String(name)) => name,
    };
    let proto = port_protocol(sp);
    let spec = p.spec.as_ref()?;
    let containers = spec.named_ports.iter().flat_map(|ps| ps.iter());
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .flat_map(|c| c.named_ports.iter().flat_map(|ps| ps.iter()));
    containers
        .chain(sidecars)
        .find(|np| &*np.name == name.as_str() && np.protocol == proto)
        .map(|np| np.container_port)
}

/// Whether `ip` is an IPv6 address.
pub fn is_ipv6(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_ipv6())
}

/// `spec.clusterIP` is set and not `None` (upstream `IsServiceIPSet`).
pub fn is_service_ip_set(svc: &Service) -> bool {
    let ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("");
    !ip.is_empty() && ip != "None"
}

// ---------------------------------------------------------------------------------------
// Trigger times

#[derive(Default)]
struct TriggerState {
    service: Option<jiff::Timestamp>,
    pods: HashMap<Box<str>, jiff::Timestamp>,
}

/// Upstream's `TriggerTimeTracker`, keyed by Service key.
#[derive(Default)]
pub struct TriggerTimes(Mutex<HashMap<String, TriggerState>>);

/// A pod's trigger time: its Ready condition's last transition.
fn pod_trigger_time(p: &CachedPod) -> Option<jiff::Timestamp> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

impl TriggerTimes {
    /// Updates the state of `svc_key` and returns the time to export: the Service's
    /// creation for a Service seen the first time, else the earliest trigger time that
    /// changed since the last call (none when nothing did).
    pub fn compute(
        &self,
        svc_key: &str,
        svc: &Service,
        pods: &[Arc<CachedPod>],
    ) -> Option<jiff::Timestamp> {
        let mut m = self.0.lock().expect("trigger lock");
        let known = m.contains_key(svc_key);
        let state = m.entry(svc_key.to_string()).or_default();
        let mut min_changed: Option<jiff::Timestamp> = None;
        let mut bump = |t: jiff::Timestamp| {
            min_changed = Some(min_changed.map_or(t, |m| m.min(t)));
        };
        let mut now_pods = HashMap::new();
        for p in pods {
            let Some(t) = pod_trigger_time(p) else {
                continue;
            };
            let name = p.metadata.name.as_deref().unwrap_or_default();
            if state.pods.get(name).is_none_or(|old| t > *old) {
                bump(t);
            }
            now_pods.insert(Box::from(name), t);
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(c) = created {
            if state.service.is_none_or(|old| c > old) {
                bump(c);
            }
        }
        state.pods = now_pods;
        state.service = created;
        if !known {
            return created;
        }
        min_changed
    }

    pub fn forget(&self, svc_key: &str) {
        self.0.lock().expect("trigger lock").remove(svc_key);
    }
}

/// A time as Go's `time.RFC3339Nano` prints it in UTC (fraction without trailing zeros).
pub fn rfc3339_nano(t: jiff::Timestamp) -> String {
    let secs = t.as_second();
    let nanos = t.subsec_nanosecond();
    let whole = jiff::Timestamp::from_second(secs).unwrap_or(t);
    let base = whole.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// Sets or clears the trigger-time annotation (upstream `addTriggerTimeAnnotation`).
pub fn set_trigger_time(
    annotations: &mut Option<BTreeMap<String, String>>,
    t: Option<jiff::Timestamp>,
) {
    let a = annotations.get_or_insert_with(BTreeMap::new);
    match t {
        Some(t) => {
            a.insert(TRIGGER_TIME_ANNOTATION.to_string(), rfc3339_nano(t));
        }
        None => {
            a.remove(TRIGGER_TIME_ANNOTATION);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Written versions

/// A resourceVersion as a number (the store's revisions are numbers).
pub fn rv_number(rv: Option<&str>) -> Option<u64> {
    rv?.parse().ok()
}

/// The resourceVersion of the last write of each object (by key), until the informer
/// cache catches up with it.
#[derive(Default)]
pub struct RvTracker(Mutex<HashMap<String, u64>>);

impl RvTracker {
    /// Records a write that returned `rv`.
    pub fn wrote(&self, key: &str, rv: Option<&str>) {
        if let Some(n) = rv_number(rv) {
            self.0.lock().expect("rv lock").insert(key.to_string(), n);
        }
    }

    /// Whether the cache (holding the object at `cached_rv`, or not at all) predates the
    /// last write. Once it has caught up the record is dropped.
    pub fn is_stale(&self, key: &str, cached_rv: Option<&str>) -> bool {
        let mut m = self.0.lock().expect("rv lock");
        let Some(&written) = m.get(key) else {
            return false;
        };
        match cached_rv {
            None => true,
            Some(rv) => match rv_number(Some(rv)) {
                Some(n) if n < written => true,
                _ => {
                    m.remove(key);
                    false
                }
            },
        }
    }

    pub fn forget(&self, key: &str) {
        self.0.lock().expect("rv lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cachedpod::CachedPod;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, Pod, PodCondition, PodSpec, PodStatus, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn pod(name: &str, labels: &[(&str, &str)], ready_at: Option<i64>) -> Arc<CachedPod> {
        Arc::new(CachedPod::from_pod(&Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![
                        ContainerPort {
                            name: Some("http".into()),
                            container_port: 8080,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        },
                        ContainerPort {
                            name: Some("dns".into()),
                            container_port: 53,
                            protocol: Some("UDP".into()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some("10.42.0.5".into()),
                conditions: ready_at.map(|t| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(ts(t))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }))
    }

    fn svc(name: &str, selector: &[(&str, &str)]) -> Arc<Service> {
        Arc::new(Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                creation_timestamp: Some(Time(ts(0))),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(
                    selector
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        })
    }

    #[test]
    fn queue_runs_a_key_added_while_in_flight_once_more() {
        let q = KeyQueue::new(RetryPolicy::DEFAULT);
        assert!(q.begin("ns/a"));
        assert!(!q.begin("ns/a"));
        assert!(!q.begin("ns/a"));
        assert_eq!(q.finish("ns/a", Ok(None)), Some(Duration::ZERO));
        assert!(q.begin("ns/a"));
        assert_eq!(q.finish("ns/a", Ok(None)), None);
        assert!(q.begin("ns/a"));
        assert_eq!(
            q.finish("ns/a", Ok(Some(Duration::from_secs(3)))),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn queue_backs_off_and_gives_up() {
        let policy = RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(5),
            max_retries: 4,
        };
        let q = KeyQueue::new(policy);
        let mut delays = vec![];
        for _ in 0..5 {
            assert!(q.begin("k"));
            delays.push(q.finish("k", Err(())));
        }
        let s = |n| Some(Duration::from_secs(n));
        assert_eq!(delays, vec![s(1), s(2), s(4), s(5), None]);
        // A success resets the count.
        assert!(q.begin("k"));
        q.finish("k", Err(()));
        assert!(q.begin("k"));
        q.finish("k", Ok(None));
        assert!(q.begin("k"));
        assert_eq!(q.finish("k", Err(())), s(1));
    }

    #[tokio::test]
    async fn queue_deduplicates_and_syncs() {
        let q = KeyQueue::new(RetryPolicy::DEFAULT);
        q.add("ns/a");
        q.add("ns/a");
        q.add("ns/b");
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let s2 = seen.clone();
        let run = q.clone().run(2, move |k| {
            let s = s2.clone();
            async move {
                s.lock().unwrap().push(k);
                Ok::<_, String>(None)
            }
        });
        let _ = tokio::time::timeout(Duration::from_millis(200), run).await;
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, ["ns/a", "ns/b"]);
    }

    #[test]
    fn pod_memberships_cover_old_and_new_services() {
        let members = Members::default();
        let web = svc("web", &[("app", "web")]);
        let api = svc("api", &[("app", "api")]);
        let all = svc("all", &[]);
        let services = vec![web, api, all];
        let p = pod("p1", &[("app", "web")], None);
        let got = services_for_pod(&services, &members, &p);
        assert_eq!(got.into_iter().collect::<Vec<_>>(), ["ns/web"]);
        // The pod was listed by web; its labels change to api: both are woken.
        members.set("ns/web", [Box::from("p1")].into_iter().collect());
        let p = pod("p1", &[("app", "api")], None);
        let got = services_for_pod(&services, &members, &p);
        assert_eq!(got.into_iter().collect::<Vec<_>>(), ["ns/api", "ns/web"]);
        assert!(members.services_of("other", "p1").is_empty());
        members.set("ns/web", HashSet::new());
        assert!(members.services_of("ns", "p1").is_empty());
    }

    #[test]
    fn pod_inclusion_hostname_and_ports() {
        let p = pod("p", &[], Some(0));
        assert!(should_pod_be_in_endpoints(&p, false));
        let mut t = (*p).clone();
        t.metadata.deletion_timestamp = Some(Time(ts(5)));
        assert!(!should_pod_be_in_endpoints(&t, false));
        assert!(should_pod_be_in_endpoints(&t, true));
        t.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!should_pod_be_in_endpoints(&t, true));
        let mut noip = (*p).clone();
        noip.status.as_mut().unwrap().pod_ip = None;
        assert!(!should_pod_be_in_endpoints(&noip, true));

        let s = svc("web", &[]);
        let mut h = (*p).clone();
        assert!(!should_set_hostname(&h, &s));
        let spec = h.spec.as_mut().unwrap();
        spec.hostname = Some("h0".into());
        spec.subdomain = Some("web".into());
        assert!(should_set_hostname(&h, &s));
        h.spec.as_mut().unwrap().subdomain = Some("other".into());
        assert!(!should_set_hostname(&h, &s));

        let sp = |tp: Option<IntOrString>, proto: Option<&str>| ServicePort {
            port: 80,
            target_port: tp,
            protocol: proto.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(find_port(&p, &sp(None, None)), Some(80));
        assert_eq!(find_port(&p, &sp(Some(IntOrString::Int(9)), None)), Some(9));
        let named = |n: &str| Some(IntOrString::String(n.into()));
        assert_eq!(find_port(&p, &sp(named("http"), Some("TCP"))), Some(8080));
        assert_eq!(find_port(&p, &sp(named("dns"), Some("UDP"))), Some(53));
        // Name and protocol must both match.
        assert_eq!(find_port(&p, &sp(named("dns"), Some("TCP"))), None);
        assert_eq!(find_port(&p, &sp(named("nope"), None)), None);
    }

    #[test]
    fn trigger_times_follow_upstream() {
        let t = TriggerTimes::default();
        let s = svc("web", &[]);
        let p1 = pod("p1", &[], Some(10));
        let p2 = pod("p2", &[], Some(20));
        // First sight: the Service's creation.
        assert_eq!(
            t.compute("ns/web", &s, &[p1.clone(), p2.clone()]),
            Some(ts(0))
        );
        // Nothing changed: no time.
        assert_eq!(t.compute("ns/web", &s, &[p1.clone(), p2.clone()]), None);
        // p2 changed: its new transition time.
        let p2b = pod("p2", &[], Some(30));
        assert_eq!(
            t.compute("ns/web", &s, &[p1.clone(), p2b.clone()]),
            Some(ts(30))
        );
        // A new pod and a changed one: the earlier.
        let p3 = pod("p3", &[], Some(25));
        let p1b = pod("p1", &[], Some(40));
        assert_eq!(t.compute("ns/web", &s, &[p1b, p2b, p3]), Some(ts(25)));
        t.forget("ns/web");
        assert_eq!(t.compute("ns/web", &s, &[]), Some(ts(0)));
    }

    #[test]
    fn rfc3339_nano_like_go() {
        let t = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20Z");
        let t = jiff::Timestamp::new(1_700_000_000, 120_000_000).unwrap();
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.12Z");
        let mut a = None;
        set_trigger_time(&mut a, Some(t));
        assert_eq!(
            a.as_ref().unwrap()[TRIGGER_TIME_ANNOTATION],
            "2023-11-14T22:13:20.12Z"
        );
        set_trigger_time(&mut a, None);
        assert!(a.unwrap().is_empty());
    }

    #[test]
    fn rv_tracker_waits_for_the_cache() {
        let t = RvTracker::default();
        assert!(!t.is_stale("ns/a", None));
        t.wrote("ns/a", Some("10"));
        assert!(t.is_stale("ns/a", None));
        assert!(t.is_stale("ns/a", Some("9")));
        assert!(!t.is_stale("ns/a", Some("10")));
        // Caught up: forgotten.
        assert!(!t.is_stale("ns/a", Some("3")));
        t.wrote("ns/a", Some("20"));
        t.forget("ns/a");
        assert!(!t.is_stale("ns/a", None));
    }
}
