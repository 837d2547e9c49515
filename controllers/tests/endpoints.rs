//! In-process integration test of the endpointslice, endpoints and servicelb controllers:
//! the real API server (HTTPS on 127.0.0.1:0 over the embedded store) and the controllers
//! talking to it through a kube client with the admin certificate.

use apiserver::pki::Pki;
use apiserver::server::{self, App};
use controllers::{endpoints, endpointslice, informers::Informers, servicelb, Config, Ctx};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

struct Cluster {
    client: Client,
    _dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn start() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(&dir.path().join("tls"), &["127.0.0.1".to_string()]).unwrap();
    let backend: Arc<dyn store::Backend> =
        Arc::new(store::SqliteBackend::open(&dir.path().join("state.db")).unwrap());
    let cached: Arc<dyn store::Backend> = store::WatchCache::new(backend);
    let app = App::new(cached, "s3cret", "127.0.0.1:0".into());
    // No service account controller runs here to create `default` accounts.
    let _ = app
        .registry
        .disabled_admission
        .set(vec!["ServiceAccount".into()]);
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let p2 = pki.clone();
    let mut tasks = vec![tokio::spawn(async move {
        let _ = server::serve(listener, app, &p2).await;
    })];
    let yaml = pki.admin_kubeconfig(&format!("https://{addr}"));
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(cfg).unwrap();
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = ns
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap(),
        )
        .await;

    let ctx = Arc::new(Ctx {
        informers: Arc::new(Informers::new(&client)),
        client: client.clone(),
        config: Config::default(),
    });
    for which in 0..3 {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let r = match which {
                0 => endpointslice::run(ctx).await,
                1 => endpoints::run(ctx).await,
                _ => servicelb::run(ctx).await,
            };
            r.unwrap();
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    ctx.informers.start_all();
    Cluster {
        client,
        _dir: dir,
        tasks,
    }
}

async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > T {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

async fn set_node(c: &Client, name: &str, ip: &str, ready: bool) {
    let nodes: Api<Node> = Api::all(c.clone());
    if nodes.get_opt(name).await.unwrap().is_none() {
        nodes
            .create(
                &PostParams::default(),
                &from(json!({"metadata": {"name": name}})),
            )
            .await
            .unwrap();
    }
    let st = json!({"status": {
        "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                        "reason": "KubeletReady", "message": "",
                        "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "addresses": [{"type": "InternalIP", "address": ip},
                      {"type": "Hostname", "address": name}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
}

async fn set_pod_ready(c: &Client, name: &str, ip: &str, ready: bool) {
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let st = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                        "lastTransitionTime": jiff_now()}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
}

fn jiff_now() -> Value {
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::now(),
    ))
    .unwrap()
}

async fn slices_of(c: &Client, svc: &str) -> Vec<EndpointSlice> {
    let api: Api<EndpointSlice> = Api::namespaced(c.clone(), "default");
    api.list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await
        .unwrap()
        .items
}

/// (pod name, ready, serving, terminating) of every endpoint of the Service, sorted.
async fn endpoint_states(c: &Client, svc: &str) -> Vec<(String, bool, bool, bool)> {
    let mut v: Vec<_> = slices_of(c, svc)
        .await
        .iter()
        .flat_map(|s| s.endpoints.clone())
        .map(|e| {
            let cond = e.conditions.unwrap_or_default();
            (
                e.target_ref.unwrap().name.unwrap(),
                cond.ready.unwrap(),
                cond.serving.unwrap(),
                cond.terminating.unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// (ready IPs, not-ready IPs) of the Endpoints object.
async fn endpoints_ips(c: &Client, svc: &str) -> Option<(Vec<String>, Vec<String>)> {
    let api: Api<Endpoints> = Api::namespaced(c.clone(), "default");
    let ep = api.get_opt(svc).await.unwrap()?;
    let mut ready = vec![];
    let mut not_ready = vec![];
    for s in ep.subsets.unwrap_or_default() {
        ready.extend(s.addresses.unwrap_or_default().into_iter().map(|a| a.ip));
        not_ready.extend(
            s.not_ready_addresses
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.ip),
        );
    }
    ready.sort();
    not_ready.sort();
    Some((ready, not_ready))
}

async fn ingress(c: &Client, svc: &str) -> Vec<(String, String)> {
    let api: Api<Service> = Api::namespaced(c.clone(), "default");
    let s = api.get(svc).await.unwrap();
    s.status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress)
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.ip.unwrap_or_default(), i.ip_mode.unwrap_or_default()))
        .collect()
}

fn own(v: &[(&str, bool, bool, bool)]) -> Vec<(String, bool, bool, bool)> {
    v.iter()
        .map(|(n, a, b, c)| (n.to_string(), *a, *b, *c))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoints_follow_pods_and_load_balancers_get_node_ips() {
    let cl = start().await;
    let c = &cl.client;
    set_node(c, "n1", "192.168.7.10", true).await;
    set_node(c, "n2", "192.168.7.11", true).await;

    let services: Api<Service> = Api::namespaced(c.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "web", "labels": {"team": "a"}},
                "spec": {"selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})),
        )
        .await
        .unwrap();
    services
        .create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": "lb"},
                "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                    "ports": [{"port": 8080, "targetPort": 8080}]}})),
        )
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    for i in 0..3 {
        let name = format!("web-{i}");
        pods.create(
            &PostParams::default(),
            &from(json!({"metadata": {"name": name, "labels": {"app": "web"}},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx:1",
                    "ports": [{"name": "http", "containerPort": 8080}]}]}})),
        )
        .await
        .unwrap();
        set_pod_ready(c, &name, &format!("10.42.0.{}", i + 10), true).await;
    }

    // Slices for a Service with 3 pods.
    let want = own(&[
        ("web-0", true, true, false),
        ("web-1", true, true, false),
        ("web-2", true, true, false),
    ]);
    wait_for("3 ready endpoints", || async {
        (endpoint_states(c, "web").await == want).then_some(())
    })
    .await;
    let slices = slices_of(c, "web").await;
    assert_eq!(slices.len(), 1);
    let slice = &slices[0];
    let slice_name = slice.name_any();
    assert!(slice_name.starts_with("web-"));
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.labels();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(labels["team"], "a");
    let ports = slice.ports.clone().unwrap();
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].port),
        (Some("http"), Some(8080))
    );
    let owner = &slice.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Service", "web")
    );
    assert_eq!(owner.controller, Some(true));
    assert!(slice
        .annotations()
        .contains_key("endpoints.kubernetes.io/last-change-trigger-time"));
    let ep0 = slice
        .endpoints
        .iter()
        .find(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some("web-0"))
        .unwrap();
    assert_eq!(ep0.addresses, ["10.42.0.10"]);
    assert_eq!(ep0.node_name.as_deref(), Some("n1"));

    // The Endpoints object matches.
    let ips = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    wait_for("Endpoints with 3 ready addresses", || async {
        (endpoints_ips(c, "web").await
            == Some((ips(&["10.42.0.10", "10.42.0.11", "10.42.0.12"]), vec![])))
        .then_some(())
    })
    .await;
    let ep_api: Api<Endpoints> = Api::namespaced(c.clone(), "default");
    let ep = ep_api.get("web").await.unwrap();
    let subset = &ep.subsets.as_ref().unwrap()[0];
    let port = &subset.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
    assert_eq!(ep.labels()["team"], "a");

    // A LoadBalancer Service gets the nodes' IPs.
    let vip = |v: &[&str]| {
        v.iter()
            .map(|s| (s.to_string(), "VIP".to_string()))
            .collect::<Vec<_>>()
    };
    wait_for("ingress of both nodes", || async {
        (ingress(c, "lb").await == vip(&["192.168.7.10", "192.168.7.11"])).then_some(())
    })
    .await;

    // Readiness flips update the condition (and the Endpoints' not-ready list).
    set_pod_ready(c, "web-1", "10.42.0.11", false).await;
    let want = own(&[
        ("web-0", true, true, false),
        ("web-1", false, false, false),
        ("web-2", true, true, false),
    ]);
    wait_for("web-1 not ready", || async {
        (endpoint_states(c, "web").await == want).then_some(())
    })
    .await;
    wait_for("Endpoints with web-1 not ready", || async {
        (endpoints_ips(c, "web").await
            == Some((ips(&["10.42.0.10", "10.42.0.12"]), ips(&["10.42.0.11"]))))
        .then_some(())
    })
    .await;
    assert_eq!(slices_of(c, "web").await[0].name_any(), slice_name);

    // A pod change that does not matter writes nothing.
    let rv = slices_of(c, "web").await[0].resource_version();
    let ep_rv = ep_api.get("web").await.unwrap().resource_version();
    pods.patch(
        "web-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(slices_of(c, "web").await[0].resource_version(), rv);
    assert_eq!(ep_api.get("web").await.unwrap().resource_version(), ep_rv);

    // A node going NotReady leaves the load balancer.
    set_node(c, "n2", "192.168.7.11", false).await;
    wait_for("ingress of n1 only", || async {
        (ingress(c, "lb").await == vip(&["192.168.7.10"])).then_some(())
    })
    .await;

    // A pod whose labels change leaves the Service.
    pods.patch(
        "web-2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    let want = own(&[("web-0", true, true, false), ("web-1", false, false, false)]);
    wait_for("web-2 gone", || async {
        (endpoint_states(c, "web").await == want).then_some(())
    })
    .await;
    wait_for("Endpoints without web-2", || async {
        (endpoints_ips(c, "web").await == Some((ips(&["10.42.0.10"]), ips(&["10.42.0.11"]))))
            .then_some(())
    })
    .await;

    // A terminating pod: terminating, not ready, still serving; out of the Endpoints.
    pods.delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = pods.get_opt("web-0").await.unwrap();
    assert!(
        terminating.is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
        "a bound pod is deleted gracefully"
    );
    {
        let want = own(&[("web-0", false, true, true), ("web-1", false, false, false)]);
        wait_for("web-0 terminating", || async {
            (endpoint_states(c, "web").await == want).then_some(())
        })
        .await;
        wait_for("Endpoints without web-0", || async {
            (endpoints_ips(c, "web").await == Some((vec![], ips(&["10.42.0.11"])))).then_some(())
        })
        .await;
    }

    // Scaling to zero leaves one empty slice (the same object) and an empty Endpoints.
    for p in ["web-0", "web-1"] {
        let _ = pods
            .delete(p, &DeleteParams::default().grace_period(0))
            .await;
    }
    wait_for("an empty slice", || async {
        let s = slices_of(c, "web").await;
        (s.len() == 1 && s[0].endpoints.is_empty()).then_some(())
    })
    .await;
    let s = slices_of(c, "web").await;
    assert_eq!(s[0].name_any(), slice_name);
    assert!(s[0].ports.clone().unwrap_or_default().is_empty());
    wait_for("empty Endpoints", || async {
        (endpoints_ips(c, "web").await == Some((vec![], vec![]))).then_some(())
    })
    .await;

    // A Service that stops being a LoadBalancer loses its ingress.
    services
        .patch(
            "lb",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await
        .unwrap();
    wait_for("ingress cleared", || async {
        ingress(c, "lb").await.is_empty().then_some(())
    })
    .await;

    // Deleting the Service deletes its Endpoints.
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("Endpoints deleted", || async {
        endpoints_ips(c, "web").await.is_none().then_some(())
    })
    .await;

    // No failure events were recorded.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.clone(), "default");
    let failures: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| format!("{:?}: {:?}", e.reason, e.message))
        .collect();
    assert!(failures.is_empty(), "warning events: {failures:?}");
}
