//! Service allocation through the real HTTPS server on 127.0.0.1:0 over the embedded
//! store: dynamic and static ClusterIPs, 422 conflicts, release on delete, type changes,
//! the system Services, and a restart on the same data directory.

use apiserver::pki::Pki;
use apiserver::server::{self, App};
use apiserver::services::{
    self, ServiceAllocator, ServiceAllocatorConfig, ServiceCidr, SystemServicesConfig,
};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

const CIDR: &str = "10.43.0.0/16";
const SVCS: &str = "/api/v1/namespaces/default/services";

struct TestServer {
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    app: Arc<App>,
    allocator: Arc<ServiceAllocator>,
    desired: Vec<services::SystemService>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn connector(pki: &Pki) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pki.ca_cert_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pki.admin_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut pki.admin_key_pem.as_bytes())
            .unwrap()
            .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// Starts a server over `dir` the way `minik8s server` does: namespaces, the startup
/// repair, then the system Services.
async fn start(dir: &Path, node_ports: &str) -> TestServer {
    let pki = Pki::load_or_create(&dir.join("tls"), &["127.0.0.1".to_string()]).unwrap();
    let backend: Arc<dyn store::Backend> =
        Arc::new(store::SqliteBackend::open(&dir.join("state.db")).unwrap());
    let cached: Arc<dyn store::Backend> = store::WatchCache::new(backend);
    let app = App::new(cached.clone(), "s3cret", "127.0.0.1:0".into());
    let cidr = ServiceCidr::parse(CIDR).unwrap();
    let desired = services::system_services(&SystemServicesConfig {
        kubernetes_ip: cidr.first().unwrap(),
        apiserver_ip: Ipv4Addr::new(192, 0, 2, 10),
        apiserver_port: 6443,
        cluster_dns: Some(Ipv4Addr::new(10, 43, 0, 10)),
        dns_ip: Ipv4Addr::new(192, 0, 2, 10),
    });
    let allocator = Arc::new(
        ServiceAllocator::new(
            cached,
            ServiceAllocatorConfig {
                service_cidr: CIDR.into(),
                node_port_range: node_ports.into(),
                reserved: services::reservations(&desired),
            },
        )
        .unwrap(),
    );
    assert!(app.registry.services.set(allocator.clone()).is_ok());
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (a2, p2) = (app.clone(), pki.clone());
    let task = tokio::spawn(async move {
        let _ = server::serve(listener, a2, &p2).await;
    });
    let ts = TestServer {
        addr,
        tls: connector(&pki),
        app,
        allocator,
        desired,
        task,
    };
    for ns in ["default", "kube-system"] {
        let (code, body) = ts
            .req(
                "POST",
                "/api/v1/namespaces",
                Some(json!({"metadata": {"name": ns}})),
            )
            .await;
        assert!(code == 201 || code == 409, "{code} {body}");
    }
    ts.allocator.repair(true).await.unwrap();
    ts.reconcile().await;
    ts
}

impl TestServer {
    async fn reconcile(&self) {
        services::reconcile_system_services(&self.app.registry, &self.desired)
            .await
            .unwrap();
    }

    async fn req(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let ct = if method == "PATCH" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let tls = self
            .tls
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("content-type", ct)
            .body(Full::new(bytes::Bytes::from(
                body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            )))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (code, v)
    }

    async fn create(&self, svc: Value) -> (u16, Value) {
        self.req("POST", SVCS, Some(svc)).await
    }
}

fn svc(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn web(name: &str) -> Value {
    svc(
        name,
        json!({"selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}),
    )
}

fn cluster_ip(v: &Value) -> Ipv4Addr {
    v["spec"]["clusterIP"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no clusterIP in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_and_static_allocation_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), services::DEFAULT_NODE_PORT_RANGE).await;
    let cidr = ServiceCidr::parse(CIDR).unwrap();

    let (code, a) = s.create(web("a")).await;
    assert_eq!(code, 201, "{a}");
    let ip = cluster_ip(&a);
    assert!(
        cidr.index_of(ip).unwrap() >= cidr.static_band(),
        "{ip} is in the static band"
    );
    assert_eq!(a["spec"]["clusterIPs"], json!([ip.to_string()]));
    assert_eq!(a["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(a["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(a["spec"]["internalTrafficPolicy"], "Cluster");
    assert_eq!(a["spec"]["ports"][0]["targetPort"], 80);

    let mut st = web("static");
    st["spec"]["clusterIP"] = json!("10.43.0.50");
    let (code, b) = s.create(st).await;
    assert_eq!(code, 201, "{b}");
    assert_eq!(b["spec"]["clusterIPs"], json!(["10.43.0.50"]));

    let mut dup = web("dup");
    dup["spec"]["clusterIP"] = json!("10.43.0.50");
    let (code, e) = s.create(dup.clone()).await;
    assert_eq!(code, 422, "{e}");
    assert_eq!(
        e["message"],
        "Service \"dup\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.0.50\"}: failed to allocate IP 10.43.0.50: provided IP is already allocated"
    );
    assert_eq!(e["details"]["causes"][0]["field"], "spec.clusterIPs");
    assert_eq!(e["reason"], "Invalid");

    let mut out = web("out");
    out["spec"]["clusterIP"] = json!("10.99.0.1");
    let (code, e) = s.create(out).await;
    assert_eq!(code, 422);
    assert_eq!(
        e["message"],
        "Service \"out\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.99.0.1\"}: failed to allocate IP 10.99.0.1: the provided IP (10.99.0.1) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
    );

    // The kubernetes and kube-dns addresses are not for others.
    let mut k = web("k");
    k["spec"]["clusterIP"] = json!("10.43.0.1");
    let (code, e) = s.create(k).await;
    assert_eq!(code, 422, "{e}");

    // Node ports: static, taken, out of range; a failed create leaves its IP free.
    let np = |name: &str, port: i64| {
        svc(
            name,
            json!({"type": "NodePort", "clusterIP": "10.43.0.60", "selector": {"app": "x"},
                "ports": [{"port": 80, "nodePort": port}]}),
        )
    };
    let (code, n1) = s.create(np("n1", 30080)).await;
    assert_eq!(code, 201, "{n1}");
    assert_eq!(n1["spec"]["externalTrafficPolicy"], "Cluster");
    let mut n2 = np("n2", 30080);
    n2["spec"]["clusterIP"] = json!("10.43.0.61");
    let (code, e) = s.create(n2).await;
    assert_eq!(code, 422);
    assert_eq!(
        e["message"],
        "Service \"n2\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    let mut n3 = np("n3", 80);
    n3["spec"]["clusterIP"] = json!("10.43.0.61");
    let (code, e) = s.create(n3).await;
    assert_eq!(code, 422);
    assert_eq!(
        e["message"],
        "Service \"n3\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    let mut free = web("free");
    free["spec"]["clusterIP"] = json!("10.43.0.61");
    let (code, body) = s.create(free).await;
    assert_eq!(
        code, 201,
        "10.43.0.61 stayed claimed after failed creates: {body}"
    );

    // Validation happens before allocation and allocates nothing.
    let (code, e) = s
        .create(svc(
            "bad",
            json!({"clusterIP": "10.43.0.70", "ports": [{"port": 80, "nodePort": 30090}]}),
        ))
        .await;
    assert_eq!(code, 422);
    assert_eq!(
        e["message"],
        "Service \"bad\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    );
    let (code, e) = s
        .create(svc(
            "two",
            json!({"ports": [{"port": 80}, {"port": 80, "name": "b"}]}),
        ))
        .await;
    assert_eq!(code, 422);
    assert_eq!(
        e["message"],
        "Service \"two\" is invalid: [spec.ports[0].name: Required value, spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}]"
    );
    let mut ok = web("ok70");
    ok["spec"]["clusterIP"] = json!("10.43.0.70");
    let (code, body) = s.create(ok).await;
    assert_eq!(code, 201, "{body}");

    // Headless and ExternalName.
    let (code, h) = s
        .create(svc(
            "headless",
            json!({"clusterIP": "None", "selector": {"app": "h"}, "ports": [{"port": 80}]}),
        ))
        .await;
    assert_eq!(code, 201, "{h}");
    assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
    let (code, x) = s
        .create(svc(
            "ext",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ))
        .await;
    assert_eq!(code, 201, "{x}");
    assert!(x["spec"].get("clusterIP").is_none(), "{x}");

    // The clusterIP is immutable.
    let (code, e) = s
        .req(
            "PATCH",
            &format!("{SVCS}/a"),
            Some(json!({"spec": {"clusterIP": "10.43.0.99", "clusterIPs": ["10.43.0.99"]}})),
        )
        .await;
    assert_eq!(code, 422);
    assert_eq!(
        e["message"],
        "Service \"a\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.99\"}: may not change once set"
    );

    // A create that loses on the name gives its IP back.
    let mut again = web("static");
    again["spec"]["clusterIP"] = json!("10.43.0.51");
    let (code, e) = s.create(again).await;
    assert_eq!(code, 409, "{e}");
    let mut other = web("other51");
    other["spec"]["clusterIP"] = json!("10.43.0.51");
    let (code, body) = s.create(other).await;
    assert_eq!(code, 201, "10.43.0.51 kept by a failed create: {body}");

    // Dry run allocates nothing.
    let (code, d) = s
        .req("POST", &format!("{SVCS}?dryRun=All"), Some(web("dry")))
        .await;
    assert_eq!(code, 201, "{d}");
    let dry_ip = cluster_ip(&d);
    let mut take = web("take");
    take["spec"]["clusterIP"] = json!(dry_ip.to_string());
    let (code, body) = s.create(take).await;
    assert_eq!(code, 201, "dry run kept {dry_ip}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_releases_and_type_changes() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), services::DEFAULT_NODE_PORT_RANGE).await;

    let mut st = web("first");
    st["spec"]["clusterIP"] = json!("10.43.0.80");
    let (code, _) = s.create(st.clone()).await;
    assert_eq!(code, 201);
    let (code, body) = s.req("DELETE", &format!("{SVCS}/first"), None).await;
    assert_eq!(code, 200, "{body}");
    let mut again = web("second");
    again["spec"]["clusterIP"] = json!("10.43.0.80");
    let (code, body) = s.create(again).await;
    assert_eq!(code, 201, "IP not released on delete: {body}");

    // ClusterIP -> NodePort -> ClusterIP.
    let (code, t) = s.create(web("t")).await;
    assert_eq!(code, 201);
    let ip = cluster_ip(&t);
    let (code, np) = s
        .req(
            "PATCH",
            &format!("{SVCS}/t"),
            Some(json!({"spec": {"type": "NodePort"}})),
        )
        .await;
    assert_eq!(code, 200, "{np}");
    assert_eq!(cluster_ip(&np), ip);
    let port = np["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000 + 86..=32767).contains(&port), "{port}");
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    let (code, back) = s
        .req(
            "PATCH",
            &format!("{SVCS}/t"),
            Some(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await;
    assert_eq!(code, 200, "{back}");
    assert!(back["spec"]["ports"][0].get("nodePort").is_none(), "{back}");
    assert!(
        back["spec"].get("externalTrafficPolicy").is_none(),
        "{back}"
    );
    assert_eq!(cluster_ip(&back), ip);
    // The node port is free again.
    let (code, body) = s
        .create(svc(
            "reuse",
            json!({"type": "NodePort", "ports": [{"port": 81, "nodePort": port}]}),
        ))
        .await;
    assert_eq!(code, 201, "node port {port} not released: {body}");

    // A PUT that leaves out the allocated values keeps them.
    let (code, cur) = s.req("GET", &format!("{SVCS}/reuse"), None).await;
    assert_eq!(code, 200);
    let mut put = svc(
        "reuse",
        json!({"type": "NodePort", "ports": [{"port": 81}]}),
    );
    put["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
    let (code, after) = s.req("PUT", &format!("{SVCS}/reuse"), Some(put)).await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(after["spec"]["ports"][0]["nodePort"], port);
    assert_eq!(after["spec"]["clusterIP"], cur["spec"]["clusterIP"]);

    // To ExternalName frees the IP.
    let (code, x) = s
        .req(
            "PATCH",
            &format!("{SVCS}/t"),
            Some(json!({"spec": {"type": "ExternalName", "externalName": "example.com"}})),
        )
        .await;
    assert_eq!(code, 200, "{x}");
    assert!(x["spec"].get("clusterIP").is_none(), "{x}");
    let mut take = web("take");
    take["spec"]["clusterIP"] = json!(ip.to_string());
    let (code, body) = s.create(take).await;
    assert_eq!(code, 201, "IP not released by ExternalName: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_services_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), services::DEFAULT_NODE_PORT_RANGE).await;

    let (code, k) = s.req("GET", &format!("{SVCS}/kubernetes"), None).await;
    assert_eq!(code, 200, "{k}");
    assert_eq!(k["spec"]["clusterIP"], "10.43.0.1");
    assert_eq!(k["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(
        k["metadata"]["labels"],
        json!({"component": "apiserver", "provider": "kubernetes"})
    );
    assert_eq!(
        k["spec"]["ports"],
        json!([{"name": "https", "protocol": "TCP", "port": 443, "targetPort": 6443}])
    );
    assert!(k["spec"].get("selector").is_none());
    let (code, ep) = s
        .req(
            "GET",
            "/api/v1/namespaces/default/endpoints/kubernetes",
            None,
        )
        .await;
    assert_eq!(code, 200, "{ep}");
    assert_eq!(
        ep["subsets"],
        json!([{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
    );
    let slice_path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes";
    let (code, sl) = s.req("GET", slice_path, None).await;
    assert_eq!(code, 200, "{sl}");
    assert_eq!(
        sl["metadata"]["labels"],
        json!({"kubernetes.io/service-name": "kubernetes"})
    );
    assert_eq!(sl["addressType"], "IPv4");
    assert_eq!(
        sl["endpoints"],
        json!([{"addresses": ["192.0.2.10"], "conditions": {"ready": true}}])
    );

    let (code, dns) = s
        .req(
            "GET",
            "/api/v1/namespaces/kube-system/services/kube-dns",
            None,
        )
        .await;
    assert_eq!(code, 200, "{dns}");
    assert_eq!(dns["spec"]["clusterIP"], "10.43.0.10");
    assert_eq!(dns["metadata"]["labels"]["k8s-app"], "kube-dns");
    let (code, dep) = s
        .req(
            "GET",
            "/api/v1/namespaces/kube-system/endpoints/kube-dns",
            None,
        )
        .await;
    assert_eq!(code, 200, "{dep}");
    assert_eq!(dep["subsets"][0]["ports"].as_array().unwrap().len(), 2);

    // Deleted objects come back, drift is put back, and a quiet pass writes nothing.
    let (code, _) = s.req("DELETE", &format!("{SVCS}/kubernetes"), None).await;
    assert_eq!(code, 200);
    let (code, _) = s.req("DELETE", slice_path, None).await;
    assert_eq!(code, 200);
    let (code, _) = s
        .req(
            "PATCH",
            "/api/v1/namespaces/kube-system/services/kube-dns",
            Some(json!({"spec": {"type": "NodePort"}})),
        )
        .await;
    assert_eq!(code, 200);
    s.reconcile().await;
    let (code, k2) = s.req("GET", &format!("{SVCS}/kubernetes"), None).await;
    assert_eq!(code, 200);
    assert_eq!(k2["spec"]["clusterIP"], "10.43.0.1");
    let (code, _) = s.req("GET", slice_path, None).await;
    assert_eq!(code, 200);
    let (_, dns2) = s
        .req(
            "GET",
            "/api/v1/namespaces/kube-system/services/kube-dns",
            None,
        )
        .await;
    assert_eq!(dns2["spec"]["type"], "ClusterIP");
    assert!(dns2["spec"]["ports"][0].get("nodePort").is_none(), "{dns2}");
    let before = dns2["metadata"]["resourceVersion"].clone();
    s.reconcile().await;
    let (_, dns3) = s
        .req(
            "GET",
            "/api/v1/namespaces/kube-system/services/kube-dns",
            None,
        )
        .await;
    assert_eq!(
        dns3["metadata"]["resourceVersion"], before,
        "reconcile wrote without drift"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_allocations() {
    let dir = tempfile::tempdir().unwrap();
    // A small node port range makes a double allocation likely if claims were lost.
    let range = "30000-30039";
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    {
        let s = start(dir.path(), range).await;
        for i in 0..20 {
            let (code, v) = s
                .create(svc(
                    &format!("before-{i}"),
                    json!({"type": "NodePort", "ports": [{"port": 80}]}),
                ))
                .await;
            assert_eq!(code, 201, "{v}");
            assert!(ips.insert(cluster_ip(&v)));
            assert!(ports.insert(v["spec"]["ports"][0]["nodePort"].as_i64().unwrap()));
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let s = start(dir.path(), range).await;
    let (code, k) = s.req("GET", &format!("{SVCS}/kubernetes"), None).await;
    assert_eq!(code, 200);
    assert_eq!(k["spec"]["clusterIP"], "10.43.0.1");
    for i in 0..20 {
        let (code, v) = s
            .create(svc(
                &format!("after-{i}"),
                json!({"type": "NodePort", "ports": [{"port": 80}]}),
            ))
            .await;
        assert_eq!(code, 201, "{v}");
        assert!(ips.insert(cluster_ip(&v)), "IP given twice after restart");
        let p = v["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
        assert!(ports.insert(p), "node port {p} given twice after restart");
    }
    // The range is now full.
    let (code, e) = s
        .create(svc(
            "one-too-many",
            json!({"type": "NodePort", "ports": [{"port": 80}]}),
        ))
        .await;
    assert_eq!(code, 500, "{e}");
    assert_eq!(
        e["message"],
        "Internal error occurred: failed to allocate a nodePort: range is full"
    );
    // And a restart's repair pass finds nothing to fix.
    let report = s.allocator.repair(true).await.unwrap();
    assert_eq!((report.claimed, report.released), (0, 0), "{report:?}");
}
