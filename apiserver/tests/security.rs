//! In-process integration tests of the API server's security pipeline: the real HTTPS
//! server on 127.0.0.1:0 over the embedded store (as tests/http.rs), driven as the admin
//! (client certificate), as static-token users, as service accounts, as a node (client
//! certificate for `system:node:n1`), through impersonation headers, with admission
//! (ServiceAccount, LimitRanger, ResourceQuota, PodSecurity, webhooks), encryption at rest,
//! audit, and hostile input.

use apiserver::audit::{AuditSink, Auditor, Event, Policy, RecordingSink};
use apiserver::authn::TokenFile;
use apiserver::pki::Pki;
use apiserver::registry::{FieldValidation, WriteOptions};
use apiserver::server::{self, App};
use apiserver::tokens::{self, ServiceAccountSigner, API_AUDIENCE};
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// `--token-auth-file` users of every test server.
const TOKENS: &str = "bob-token,bob,1001\nalice-token,alice,1002\n";

struct TestServer {
    addr: SocketAddr,
    pki: Pki,
    app: Arc<App>,
    admin: Client,
    anon: tokio_rustls::TlsConnector,
    /// The sqlite backend under everything (below encryption, when configured).
    sqlite: Arc<dyn store::Backend>,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Who a request is made as: a TLS connector (with or without client certificate) and
/// an optional bearer token.
#[derive(Clone)]
struct Client {
    tls: tokio_rustls::TlsConnector,
    bearer: Option<String>,
}

#[derive(Debug)]
struct Resp {
    code: u16,
    headers: http::HeaderMap,
    body: Value,
}

impl Resp {
    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

fn roots(ca_pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

fn connector(ca_pem: &str, client: Option<(&str, &str)>) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca_pem));
    let cfg = match client {
        Some((cert, key)) => {
            let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key.as_bytes())
                .unwrap()
                .unwrap();
            b.with_client_auth_cert(certs, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

fn system_opts() -> WriteOptions {
    WriteOptions {
        dry_run: false,
        field_manager: "test".into(),
        field_validation: FieldValidation::Strict,
        force: false,
        user: Default::default(),
    }
}

async fn start() -> TestServer {
    start_with(None).await
}

/// Starts a server; with `encryption`, an EncryptionConfiguration applied by an
/// `EncryptedBackend` between the sqlite store and the watch cache.
async fn start_with(encryption: Option<&str>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(&dir.path().join("tls"), &["127.0.0.1".to_string()]).unwrap();
    let raw: Arc<dyn store::Backend> =
        Arc::new(store::SqliteBackend::open(&dir.path().join("state.db")).unwrap());
    let below: Arc<dyn store::Backend> = match encryption {
        Some(cfg) => Arc::new(apiserver::encstore::EncryptedBackend::new(
            raw.clone(),
            apiserver::encryption::Transformers::load(cfg.as_bytes()).unwrap(),
        )),
        None => raw.clone(),
    };
    let cached: Arc<dyn store::Backend> = store::WatchCache::new(below);
    let app = App::new(cached, "s3cret", "127.0.0.1:0".into());
    assert!(app
        .bearer
        .file
        .set(TokenFile::parse("tokens.csv", TOKENS).unwrap())
        .is_ok());
    let signer =
        ServiceAccountSigner::from_pem(&tokens::generate_key_pem().unwrap(), API_AUDIENCE).unwrap();
    assert!(app.sa_signer.set(Arc::new(signer)).is_ok());
    assert!(app.pki.set(Arc::new(pki.clone())).is_ok());
    let ns_res = apiserver::resources::find("", "v1", "namespaces").unwrap();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        app.registry
            .create(ns_res, "", obj, &system_opts())
            .await
            .unwrap();
    }
    app.bootstrap_rbac().await.unwrap();
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (p2, a2) = (pki.clone(), app.clone());
    let task = tokio::spawn(async move {
        let _ = server::serve(listener, a2, &p2).await;
    });
    let admin = Client {
        tls: connector(
            &pki.ca_cert_pem,
            Some((&pki.admin_cert_pem, &pki.admin_key_pem)),
        ),
        bearer: None,
    };
    let anon = connector(&pki.ca_cert_pem, None);
    TestServer {
        addr,
        pki,
        app,
        admin,
        anon,
        sqlite: raw,
        dir,
        task,
    }
}

impl TestServer {
    fn token(&self, token: &str) -> Client {
        Client {
            tls: self.anon.clone(),
            bearer: Some(token.to_string()),
        }
    }

    /// A client presenting a certificate issued by the cluster CA.
    fn cert(&self, user: &str, groups: &[&str]) -> Client {
        let (cert, key) = self.pki.issue_client_cert(user, groups).unwrap();
        Client {
            tls: connector(&self.pki.ca_cert_pem, Some((&cert, &key))),
            bearer: None,
        }
    }

    async fn raw(
        &self,
        c: &Client,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let tls = c
            .tls
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1");
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            b = b.header("content-type", "application/json");
        }
        if let Some(t) = &c.bearer {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = send
            .send_request(b.body(Full::new(bytes::Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let code = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Resp {
            code,
            headers,
            body,
        }
    }

    async fn call(
        &self,
        c: &Client,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.raw(c, method, path, body, headers).await
    }

    async fn as_(&self, c: &Client, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.call(c, method, path, body, &[]).await
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.call(&self.admin, method, path, body, &[]).await
    }

    /// Repeats a request until it answers `want` (RBAC, the node graph and the webhook
    /// configurations reach their caches through watches); panics after 15 s.
    async fn until(
        &self,
        c: &Client,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
        want: u16,
    ) -> Resp {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let r = self.call(c, method, path, body.clone(), headers).await;
            if r.code == want {
                return r;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{method} {path}: wanted {want}, last answer {r:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn namespace(&self, name: &str, labels: Value) {
        let r = self
            .admin(
                "POST",
                "/api/v1/namespaces",
                Some(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels}})),
            )
            .await;
        assert_eq!(r.code, 201, "{r:?}");
    }

    async fn service_account(&self, ns: &str, name: &str) -> Value {
        let r = self
            .admin(
                "POST",
                &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
                Some(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": name}})),
            )
            .await;
        assert_eq!(r.code, 201, "{r:?}");
        r.body
    }

    async fn bind(&self, ns: &str, name: &str, cluster_role: &str, subject: Value) {
        let r = self
            .admin(
                "POST",
                &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
                Some(role_binding(name, cluster_role, subject)),
            )
            .await;
        assert_eq!(r.code, 201, "{r:?}");
    }
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

fn role_binding(name: &str, cluster_role: &str, subject: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [subject],
    })
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn cm_labelled(name: &str, labels: Value) -> Value {
    let mut c = cm(name);
    c["metadata"]["labels"] = labels;
    c
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    })
}

fn str_list(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

const BOB_LIST_PODS_DEFAULT: &str = "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"";

// ---------------------------------------------------------------------------------------
// 1. Static token users and RBAC
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_token_users_and_rbac() {
    let s = start().await;
    s.namespace("team-a", json!({})).await;
    s.bind("team-a", "bob-edit", "edit", user("bob")).await;
    let bob = s.token("bob-token");
    // `edit` is aggregated, and the binding reaches the RBAC index through a watch.
    let r = s
        .until(
            &bob,
            "POST",
            "/apis/apps/v1/namespaces/team-a/deployments",
            Some(deployment("web")),
            &[],
            201,
        )
        .await;
    assert_eq!(r.body["metadata"]["name"], "web");

    let r = s
        .as_(&bob, "GET", "/api/v1/namespaces/default/pods", None)
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(r.body["reason"], "Forbidden");
    assert_eq!(r.message(), BOB_LIST_PODS_DEFAULT);

    // Edit in team-a does not reach the RBAC objects themselves.
    let r = s
        .as_(
            &bob,
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings",
            None,
        )
        .await;
    assert_eq!(r.code, 403, "{r:?}");

    let r = s
        .as_(
            &s.token("no-such-token"),
            "GET",
            "/api/v1/namespaces/default/pods",
            None,
        )
        .await;
    assert_eq!(r.code, 401, "{r:?}");
    assert_eq!(r.body["reason"], "Unauthorized");
    // A malformed Authorization header is 401 too, never anonymous.
    let r = s
        .call(
            &Client {
                tls: s.anon.clone(),
                bearer: None,
            },
            "GET",
            "/api/v1/namespaces/default/pods",
            None,
            &[("authorization", "Basic Ym9iOmJvYg==")],
        )
        .await;
    assert_eq!(r.code, 401, "{r:?}");
}

// ---------------------------------------------------------------------------------------
// 2. Reviews and their discovery
// ---------------------------------------------------------------------------------------

fn ssar(ns: &str, verb: &str, group: &str, resource: &str) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "group": group, "resource": resource}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_and_discovery() {
    let s = start().await;
    s.namespace("team-a", json!({})).await;
    s.bind("team-a", "bob-edit", "edit", user("bob")).await;
    let bob = s.token("bob-token");

    let r = s
        .as_(
            &bob,
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    assert_eq!(r.body["kind"], "SelfSubjectReview");
    assert_eq!(r.body["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(
        r.body["status"]["userInfo"],
        json!({"username": "bob", "uid": "1001", "groups": ["system:authenticated"]})
    );

    // Allowed once the binding (and edit's aggregated rules) are in the index.
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = s
            .as_(
                &bob,
                "POST",
                path,
                Some(ssar("team-a", "create", "apps", "deployments")),
            )
            .await;
        assert_eq!(r.code, 201, "{r:?}");
        if r.body["status"]["allowed"] == true {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never allowed: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = s
        .as_(
            &bob,
            "POST",
            path,
            Some(ssar("default", "list", "", "pods")),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    assert_eq!(r.body["status"]["allowed"], false, "{r:?}");
    // The spec is echoed.
    assert_eq!(r.body["spec"]["resourceAttributes"]["resource"], "pods");
    // Neither resource nor non-resource attributes: 422.
    let r = s
        .as_(
            &bob,
            "POST",
            path,
            Some(json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}})),
        )
        .await;
    assert_eq!(r.code, 422, "{r:?}");

    let r = s
        .as_(
            &bob,
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            Some(
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                "spec": {"namespace": "team-a"}}),
            ),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let rules = r.body["status"]["resourceRules"].as_array().unwrap();
    let has = |group: &str, resource: &str, verb: &str| {
        rules.iter().any(|rule| {
            str_list(&rule["apiGroups"]).contains(&group)
                && str_list(&rule["resources"]).contains(&resource)
                && str_list(&rule["verbs"]).contains(&verb)
        })
    };
    assert!(has("apps", "deployments", "create"), "{rules:?}");
    assert!(has("", "configmaps", "delete"), "{rules:?}");
    // system:basic-user, bound to every authenticated user.
    assert!(
        has("authorization.k8s.io", "selfsubjectaccessreviews", "create"),
        "{rules:?}"
    );
    assert!(!has("rbac.authorization.k8s.io", "rolebindings", "create"));
    assert_eq!(r.body["status"]["incomplete"], false);

    // SubjectAccessReview: the admin asks about bob; bob may not ask.
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "bob", "groups": ["system:authenticated"],
            "resourceAttributes": {"namespace": "team-a", "verb": "create", "group": "apps", "resource": "deployments"}}});
    let sar_path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let r = s.admin("POST", sar_path, Some(sar.clone())).await;
    assert_eq!(r.code, 201, "{r:?}");
    assert_eq!(r.body["status"]["allowed"], true, "{r:?}");
    let mut other = sar.clone();
    other["spec"]["resourceAttributes"]["namespace"] = json!("default");
    let r = s.admin("POST", sar_path, Some(other)).await;
    assert_eq!(r.body["status"]["allowed"], false, "{r:?}");
    let r = s.as_(&bob, "POST", sar_path, Some(sar)).await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "subjectaccessreviews.authorization.k8s.io is forbidden: User \"bob\" cannot create resource \"subjectaccessreviews\" in API group \"authorization.k8s.io\" at the cluster scope"
    );
    // Reviews are create-only.
    let r = s.admin("GET", sar_path, None).await;
    assert_eq!(r.code, 405, "{r:?}");

    for (gv, want) in [
        (
            "/apis/authorization.k8s.io/v1",
            vec![
                "localsubjectaccessreviews",
                "selfsubjectaccessreviews",
                "selfsubjectrulesreviews",
                "subjectaccessreviews",
            ],
        ),
        (
            "/apis/authentication.k8s.io/v1",
            vec!["selfsubjectreviews", "tokenreviews"],
        ),
    ] {
        // Discovery is open to every authenticated user (system:discovery).
        let r = s.as_(&bob, "GET", gv, None).await;
        assert_eq!(r.code, 200, "{r:?}");
        let resources = r.body["resources"].as_array().unwrap();
        for name in want {
            let res = resources
                .iter()
                .find(|x| x["name"] == name)
                .unwrap_or_else(|| panic!("{name} missing from {gv}: {resources:?}"));
            assert_eq!(res["verbs"], json!(["create"]), "{name}");
        }
    }
}

/// Upstream's union authorizer answers NoOpinion when no authorizer has an opinion, and a
/// SubjectAccessReview then has `allowed: false` without `denied: true` (`kubectl auth
/// can-i` prints "no", not "no - denied"). `denied` is only set on an explicit Deny.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_review_without_opinion_is_not_denied() {
    let s = start().await;
    let r = s
        .as_(
            &s.token("bob-token"),
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            Some(ssar("default", "list", "", "pods")),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    assert_eq!(r.body["status"], json!({"allowed": false}), "{r:?}");
}

// ---------------------------------------------------------------------------------------
// 3. RBAC escalation checks
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_escalation_is_refused() {
    let s = start().await;
    s.namespace("team-a", json!({})).await;
    s.bind("team-a", "bob-admin", "admin", user("bob")).await;
    let bob = s.token("bob-token");
    let path = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings";
    s.until(
        &bob,
        "POST",
        path,
        Some(role_binding("alice-view", "view", user("alice"))),
        &[],
        201,
    )
    .await;
    let r = s
        .as_(
            &bob,
            "POST",
            path,
            Some(role_binding("alice-root", "cluster-admin", user("alice"))),
        )
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    let prefix = "rolebindings.rbac.authorization.k8s.io \"alice-root\" is forbidden: user \"bob\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n";
    assert!(r.message().starts_with(prefix), "{}", r.message());
    assert!(
        r.message()
            .contains("{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"),
        "{}",
        r.message()
    );
    // Nothing was stored.
    let r = s.admin("GET", &format!("{path}/alice-root"), None).await;
    assert_eq!(r.code, 404);
    // A Role granting more than bob holds is refused the same way.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "nodes-reader"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]});
    let r = s
        .as_(
            &bob,
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/roles",
            Some(role),
        )
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert!(
        r.message()
            .contains("is attempting to grant RBAC permissions not currently held"),
        "{}",
        r.message()
    );
    // Nor can a Role bob may write be widened by an update.
    let roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/roles";
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
    let r = s.as_(&bob, "POST", roles, Some(role)).await;
    assert_eq!(r.code, 201, "{r:?}");
    let mut wider = r.body.clone();
    wider["rules"] = json!([{"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get"]}]);
    let r = s
        .as_(&bob, "PUT", &format!("{roles}/reader"), Some(wider))
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "roles.rbac.authorization.k8s.io \"reader\" is forbidden: user \"bob\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Impersonation
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_headers() {
    let s = start().await;
    let bob = s.token("bob-token");
    let whoami = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let r = s
        .call(
            &bob,
            "POST",
            whoami,
            Some(review.clone()),
            &[("Impersonate-User", "alice")],
        )
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "users \"alice\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );

    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "impersonator"},
        "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}]});
    let r = s
        .admin(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            Some(role),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "bob-impersonates"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "impersonator"},
        "subjects": [user("bob")]});
    let r = s
        .admin(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            Some(crb),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let r = s
        .until(
            &bob,
            "POST",
            whoami,
            Some(review.clone()),
            &[("Impersonate-User", "alice")],
            201,
        )
        .await;
    assert_eq!(
        r.body["status"]["userInfo"],
        json!({"username": "alice", "groups": ["system:authenticated"]})
    );
    // Alice's rights, not bob's: she may not impersonate.
    let r = s
        .call(
            &bob,
            "GET",
            "/api/v1/namespaces/default/pods",
            None,
            &[("Impersonate-User", "alice")],
        )
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    // Groups need their own permission.
    let r = s
        .call(
            &bob,
            "POST",
            whoami,
            Some(review.clone()),
            &[
                ("Impersonate-User", "alice"),
                ("Impersonate-Group", "system:masters"),
            ],
        )
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "groups \"system:masters\" is forbidden: User \"bob\" cannot impersonate resource \"groups\" in API group \"\" at the cluster scope"
    );

    let r = s
        .call(
            &bob,
            "POST",
            whoami,
            Some(review),
            &[("Impersonate-Group", "devs")],
        )
        .await;
    assert_eq!(r.code, 400, "{r:?}");
    assert_eq!(
        r.message(),
        "requested [{\"\" \"groups\" \"\" \"devs\"}] without impersonating a user"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Service account tokens and OIDC discovery
// ---------------------------------------------------------------------------------------

async fn token_request(s: &TestServer, ns: &str, sa: &str, audiences: &[&str]) -> String {
    let mut body =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}});
    if !audiences.is_empty() {
        body["spec"]["audiences"] = json!(audiences);
    }
    let r = s
        .admin(
            "POST",
            &format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"),
            Some(body),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    assert_eq!(r.body["kind"], "TokenRequest");
    r.body["status"]["token"].as_str().unwrap().to_string()
}

/// A TokenRequest for `robot` bound to the pod `runner` of team-a.
async fn token_request_bound(s: &TestServer, pod_uid: &str) -> String {
    let r = s
        .admin(
            "POST",
            "/api/v1/namespaces/team-a/serviceaccounts/robot/token",
            Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "runner", "uid": pod_uid}}})),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    r.body["status"]["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens() {
    let s = start().await;
    s.namespace("team-a", json!({})).await;
    let sa = s.service_account("team-a", "robot").await;
    let sa_uid = sa["metadata"]["uid"].as_str().unwrap().to_string();
    let tok = token_request(&s, "team-a", "robot", &[]).await;
    let robot = s.token(&tok);
    let pods = "/api/v1/namespaces/team-a/pods";
    let r = s.as_(&robot, "GET", pods, None).await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "pods is forbidden: User \"system:serviceaccount:team-a:robot\" cannot list resource \"pods\" in API group \"\" in the namespace \"team-a\""
    );
    s.bind(
        "team-a",
        "robot-view",
        "view",
        json!({"kind": "ServiceAccount", "name": "robot", "namespace": "team-a"}),
    )
    .await;
    let r = s.until(&robot, "GET", pods, None, &[], 200).await;
    assert_eq!(r.body["kind"], "PodList");

    // TokenReview as the admin.
    let tr_path = "/apis/authentication.k8s.io/v1/tokenreviews";
    let r = s
        .admin(
            "POST",
            tr_path,
            Some(
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": tok}}),
            ),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let st = &r.body["status"];
    assert_eq!(st["authenticated"], true, "{r:?}");
    assert_eq!(st["user"]["username"], "system:serviceaccount:team-a:robot");
    assert_eq!(st["user"]["uid"], sa_uid.as_str());
    assert_eq!(
        st["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:team-a",
            "system:authenticated"
        ])
    );
    assert_eq!(st["audiences"], json!([API_AUDIENCE]));
    assert!(r.body["spec"].get("token").is_none(), "token echoed: {r:?}");
    let r = s
        .admin(
            "POST",
            tr_path,
            Some(
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": "garbage"}}),
            ),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    assert_ne!(r.body["status"]["authenticated"], true, "{r:?}");

    // Signed with the right key but expired an hour ago.
    let signer = s.app.sa_signer.get().unwrap().clone();
    let now = jiff::Timestamp::now().as_second();
    let claims = tokens::claims(tokens::ClaimInputs {
        issuer: API_AUDIENCE,
        namespace: "team-a",
        service_account: tokens::ClaimRef {
            name: "robot".into(),
            uid: sa_uid.clone(),
        },
        bound: None,
        audiences: vec![API_AUDIENCE.into()],
        expiration_seconds: 600,
        warn_after_seconds: 0,
        now: now - 3600,
        jti: "expired-1".into(),
    });
    let expired = signer.sign(&claims).unwrap();
    let r = s.as_(&s.token(&expired), "GET", pods, None).await;
    assert_eq!(r.code, 401, "{r:?}");
    // The same claims, still valid, authenticate (so the 401 above is the expiry).
    let fresh = tokens::claims(tokens::ClaimInputs {
        issuer: API_AUDIENCE,
        namespace: "team-a",
        service_account: tokens::ClaimRef {
            name: "robot".into(),
            uid: sa_uid.clone(),
        },
        bound: None,
        audiences: vec![API_AUDIENCE.into()],
        expiration_seconds: 600,
        warn_after_seconds: 0,
        now,
        jti: "fresh-1".into(),
    });
    let r = s
        .as_(&s.token(&signer.sign(&fresh).unwrap()), "GET", pods, None)
        .await;
    assert_eq!(r.code, 200, "{r:?}");
    // Another key's signature is refused.
    let other =
        ServiceAccountSigner::from_pem(&tokens::generate_key_pem().unwrap(), API_AUDIENCE).unwrap();
    let r = s
        .as_(&s.token(&other.sign(&fresh).unwrap()), "GET", pods, None)
        .await;
    assert_eq!(r.code, 401, "{r:?}");

    // Another audience.
    let vault = token_request(&s, "team-a", "robot", &["vault"]).await;
    let r = s.as_(&s.token(&vault), "GET", pods, None).await;
    assert_eq!(r.code, 401, "{r:?}");

    // OIDC discovery.
    let r = s
        .admin("GET", "/.well-known/openid-configuration", None)
        .await;
    assert_eq!(r.code, 200, "{r:?}");
    assert_eq!(r.body["issuer"], API_AUDIENCE);
    assert_eq!(
        r.body["jwks_uri"],
        format!("{API_AUDIENCE}/openid/v1/jwks").as_str()
    );
    assert_eq!(
        r.body["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    let r = s.admin("GET", "/openid/v1/jwks", None).await;
    assert_eq!(r.code, 200, "{r:?}");
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/jwk-set+json"
    );
    let key = &r.body["keys"][0];
    assert_eq!(key["kid"], signer.key_id());
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let x = b64.decode(key["x"].as_str().unwrap()).unwrap();
    let y = b64.decode(key["y"].as_str().unwrap()).unwrap();
    assert_eq!(&signer.public_key_sec1()[1..33], x.as_slice());
    assert_eq!(&signer.public_key_sec1()[33..65], y.as_slice());
    // Not for anonymous users.
    let anon = Client {
        tls: s.anon.clone(),
        bearer: None,
    };
    let r = s
        .as_(&anon, "GET", "/.well-known/openid-configuration", None)
        .await;
    assert_eq!(r.code, 401, "{r:?}");

    // Only those allowed to create tokenreviews may ask.
    let r = s
        .as_(
            &s.token("bob-token"),
            "POST",
            tr_path,
            Some(
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": tok}}),
            ),
        )
        .await;
    assert_eq!(r.code, 403, "{r:?}");

    // A token bound to a pod names it, and dies with it.
    let mut runner = pod("runner");
    runner["spec"]["serviceAccountName"] = json!("robot");
    let r = s.admin("POST", pods, Some(runner)).await;
    assert_eq!(r.code, 201, "{r:?}");
    let pod_uid = r.body["metadata"]["uid"].as_str().unwrap().to_string();
    let bound = token_request_bound(&s, &pod_uid).await;
    let bound_unused = token_request_bound(&s, &pod_uid).await;
    let r = s
        .admin(
            "POST",
            tr_path,
            Some(
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": bound}}),
            ),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let extra = &r.body["status"]["user"]["extra"];
    assert_eq!(
        extra["authentication.kubernetes.io/pod-name"],
        json!(["runner"]),
        "{r:?}"
    );
    assert_eq!(
        extra["authentication.kubernetes.io/pod-uid"],
        json!([pod_uid]),
        "{r:?}"
    );
    let r = s.as_(&s.token(&bound), "GET", pods, None).await;
    assert_eq!(r.code, 200, "{r:?}");
    let r = s
        .admin(
            "DELETE",
            &format!("{pods}/runner?gracePeriodSeconds=0"),
            None,
        )
        .await;
    assert_eq!(r.code, 200, "{r:?}");
    let r = s.as_(&s.token(&bound_unused), "GET", pods, None).await;
    assert_eq!(r.code, 401, "pod-bound token after the pod is gone: {r:?}");

    // Deleting the account invalidates its tokens: use one never presented before, so
    // the 10 s cache of successful lookups cannot answer for it.
    let unused = token_request(&s, "team-a", "robot", &[]).await;
    let r = s
        .admin(
            "DELETE",
            "/api/v1/namespaces/team-a/serviceaccounts/robot",
            None,
        )
        .await;
    assert_eq!(r.code, 200, "{r:?}");
    let r = s.as_(&s.token(&unused), "GET", pods, None).await;
    assert_eq!(r.code, 401, "{r:?}");
    // A new account with the same name has another uid: the old token stays refused.
    s.service_account("team-a", "robot").await;
    let r = s.as_(&s.token(&unused), "GET", pods, None).await;
    assert_eq!(r.code, 401, "{r:?}");
}

// ---------------------------------------------------------------------------------------
// 6. ServiceAccount admission
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_admission() {
    let s = start().await;
    s.namespace("apps", json!({})).await;
    s.service_account("apps", "default").await;
    let r = s
        .admin("POST", "/api/v1/namespaces/apps/pods", Some(pod("p1")))
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let spec = &r.body["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    let vols = spec["volumes"].as_array().unwrap();
    assert_eq!(vols.len(), 1, "{vols:?}");
    let vname = vols[0]["name"].as_str().unwrap();
    assert!(vname.starts_with("kube-api-access-"), "{vname}");
    assert_eq!(vname.len(), "kube-api-access-".len() + 5, "{vname}");
    let sources = vols[0]["projected"]["sources"].as_array().unwrap();
    assert_eq!(
        sources[0]["serviceAccountToken"],
        json!({"expirationSeconds": 3607, "path": "token"})
    );
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(vols[0]["projected"]["defaultMode"], 420);
    assert_eq!(
        spec["containers"][0]["volumeMounts"],
        json!([{"name": vname, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}])
    );

    let mut p = pod("p2");
    p["spec"]["automountServiceAccountToken"] = json!(false);
    let r = s
        .admin("POST", "/api/v1/namespaces/apps/pods", Some(p))
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    assert!(r.body["spec"].get("volumes").is_none(), "{r:?}");
    assert!(
        r.body["spec"]["containers"][0]
            .get("volumeMounts")
            .is_none(),
        "{r:?}"
    );

    // The account's own automountServiceAccountToken: false is honoured too.
    let r = s
        .admin(
            "POST",
            "/api/v1/namespaces/apps/serviceaccounts",
            Some(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "quiet"}, "automountServiceAccountToken": false})),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let mut p = pod("p3");
    p["spec"]["serviceAccountName"] = json!("quiet");
    let r = s
        .admin("POST", "/api/v1/namespaces/apps/pods", Some(p))
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    assert!(r.body["spec"].get("volumes").is_none(), "{r:?}");

    s.namespace("empty", json!({})).await;
    let started = std::time::Instant::now();
    let r = s
        .admin("POST", "/api/v1/namespaces/empty/pods", Some(pod("p4")))
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "pods \"p4\" is forbidden: error looking up service account empty/default: serviceaccount \"default\" not found"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
}

// ---------------------------------------------------------------------------------------
// 7. LimitRanger and ResourceQuota
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_ranges_and_quota() {
    let s = start().await;
    s.namespace("lr", json!({})).await;
    s.service_account("lr", "default").await;
    let r = s
        .admin(
            "POST",
            "/api/v1/namespaces/lr/limitranges",
            Some(
                json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
                "spec": {"limits": [{"type": "Container",
                    "default": {"cpu": "500m", "memory": "256Mi"},
                    "defaultRequest": {"cpu": "200m", "memory": "128Mi"},
                    "min": {"cpu": "100m"}}]}}),
            ),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let r = s
        .admin("POST", "/api/v1/namespaces/lr/pods", Some(pod("defaulted")))
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    assert_eq!(
        r.body["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
    );
    assert_eq!(
        r.body["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "200m", "memory": "128Mi"}})
    );
    let mut small = pod("small");
    small["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "50m"}});
    let r = s
        .admin("POST", "/api/v1/namespaces/lr/pods", Some(small))
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "pods \"small\" is forbidden: minimum cpu usage per Container is 100m, but request is 50m"
    );

    s.namespace("q", json!({})).await;
    s.service_account("q", "default").await;
    let r = s
        .admin(
            "POST",
            "/api/v1/namespaces/q/resourcequotas",
            Some(
                json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "pq"},
                "spec": {"hard": {"pods": "1"}}}),
            ),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    // The recalculation gives the new quota its status (hard and used).
    assert!(apiserver::quotactl::sync_once(&s.app.registry).await >= 1);
    let r = s
        .admin("GET", "/api/v1/namespaces/q/resourcequotas/pq", None)
        .await;
    assert_eq!(r.body["status"]["hard"], json!({"pods": "1"}), "{r:?}");
    assert_eq!(r.body["status"]["used"], json!({"pods": "0"}), "{r:?}");

    let r = s
        .admin("POST", "/api/v1/namespaces/q/pods", Some(pod("p1")))
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let r = s
        .admin("GET", "/api/v1/namespaces/q/resourcequotas/pq", None)
        .await;
    assert_eq!(
        r.body["status"]["used"],
        json!({"pods": "1"}),
        "charged: {r:?}"
    );
    let r = s
        .admin("POST", "/api/v1/namespaces/q/pods", Some(pod("p2")))
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "pods \"p2\" is forbidden: exceeded quota: pq, requested: pods=1, used: pods=1, limited: pods=1"
    );
    let r = s
        .admin(
            "DELETE",
            "/api/v1/namespaces/q/pods/p1?gracePeriodSeconds=0",
            None,
        )
        .await;
    assert!(r.code == 200 || r.code == 202, "{r:?}");
    let r = s.admin("GET", "/api/v1/namespaces/q/pods/p1", None).await;
    assert_eq!(r.code, 404, "pod gone: {r:?}");
    apiserver::quotactl::sync_once(&s.app.registry).await;
    let r = s
        .admin("POST", "/api/v1/namespaces/q/pods", Some(pod("p3")))
        .await;
    assert_eq!(r.code, 201, "{r:?}");
}

// ---------------------------------------------------------------------------------------
// 8. PodSecurity
// ---------------------------------------------------------------------------------------

fn privileged_pod(name: &str) -> Value {
    let mut p = pod(name);
    p["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_admission() {
    let s = start().await;
    s.namespace(
        "locked",
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    )
    .await;
    s.service_account("locked", "default").await;
    let r = s
        .admin(
            "POST",
            "/api/v1/namespaces/locked/pods",
            Some(privileged_pod("priv")),
        )
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "pods \"priv\" is forbidden: violates PodSecurity \"restricted:latest\": privileged (container \"c\" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
    // A pod that meets restricted is admitted.
    let mut ok = pod("fine");
    ok["spec"]["securityContext"] =
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}});
    ok["spec"]["containers"][0]["securityContext"] =
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
    let r = s
        .admin("POST", "/api/v1/namespaces/locked/pods", Some(ok))
        .await;
    assert_eq!(r.code, 201, "{r:?}");

    s.namespace(
        "warned",
        json!({"pod-security.kubernetes.io/warn": "baseline"}),
    )
    .await;
    s.service_account("warned", "default").await;
    let r = s
        .admin(
            "POST",
            "/api/v1/namespaces/warned/pods",
            Some(privileged_pod("priv")),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let warnings: Vec<&str> = r
        .headers
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        ["299 - \"would violate PodSecurity \\\"baseline:latest\\\": privileged (container \\\"c\\\" must not set securityContext.privileged=true)\""],
        "{r:?}"
    );

    let r = s
        .admin(
            "POST",
            "/api/v1/namespaces",
            Some(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "bad", "labels": {"pod-security.kubernetes.io/enforce": "bogus"}}})),
        )
        .await;
    assert_eq!(r.code, 422, "{r:?}");
    assert_eq!(r.body["reason"], "Invalid");
    assert!(
        r.message().contains(
            "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"bogus\": must be one of privileged, baseline, restricted"
        ),
        "{}",
        r.message()
    );
    let r = s.admin("GET", "/api/v1/namespaces/bad", None).await;
    assert_eq!(r.code, 404);
}

// ---------------------------------------------------------------------------------------
// 9. Admission webhooks over real HTTPS
// ---------------------------------------------------------------------------------------

/// The webhook: `/validate` refuses objects labelled `deny=true`; `/mutate` adds the
/// label `mutated=by-webhook`.
async fn review_handler(
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<bytes::Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let uid = review["request"]["uid"].clone();
    let labels = &review["request"]["object"]["metadata"]["labels"];
    let response = match path.as_str() {
        "/validate" if labels["deny"] == "true" => json!({"uid": uid, "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": "configmaps labelled deny=true are not allowed"}}),
        "/mutate" => {
            let patch =
                json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "by-webhook"}]);
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch",
                "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string())})
        }
        _ => json!({"uid": uid, "allowed": true}),
    };
    let out = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
    Ok(http::Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(out.to_string())))
        .unwrap())
}

/// Serves the webhook on 127.0.0.1:0 with a certificate from its own CA; returns the
/// port, the CA (PEM) and the accept loop (abort it to take the server away).
async fn webhook_server(dir: &std::path::Path) -> (u16, String, tokio::task::JoinHandle<()>) {
    let pki = Pki::load_or_create(dir, &["127.0.0.1".to_string()]).unwrap();
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pki.serving_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut pki.serving_key_pem.as_bytes())
            .unwrap()
            .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        TokioIo::new(tls),
                        hyper::service::service_fn(review_handler),
                    )
                    .await;
            });
        }
    });
    (port, pki.ca_cert_pem.clone(), task)
}

fn webhook_config(
    kind: &str,
    name: &str,
    hook: &str,
    url: &str,
    ca_pem: &str,
    failure_policy: &str,
    object_selector: Value,
) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
        "metadata": {"name": name},
        "webhooks": [{
            "name": hook,
            "clientConfig": {"url": url,
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem)},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["configmaps"]}],
            "objectSelector": object_selector,
            "failurePolicy": failure_policy,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_webhooks() {
    let s = start().await;
    let (port, ca, server) = webhook_server(&s.dir.path().join("webhook-tls")).await;
    assert!(s
        .app
        .registry
        .webhooks
        .set(apiserver::webhooks::Webhooks::start(
            s.app.registry.store.clone(),
            Box::new(apiserver::admission::webhook::HttpsTransport::new(
                s.pki.ca_cert_pem.as_bytes(),
            )),
        ))
        .is_ok());
    let base = format!("https://127.0.0.1:{port}");
    let vpath = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
    let mpath = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
    let r = s
        .admin(
            "POST",
            vpath,
            Some(webhook_config(
                "ValidatingWebhookConfiguration",
                "deny-cm",
                "deny.example.com",
                &format!("{base}/validate"),
                &ca,
                "Fail",
                json!({}),
            )),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let cms = "/api/v1/namespaces/default/configmaps";
    let r = s
        .until(
            &s.admin,
            "POST",
            cms,
            Some(cm_labelled("refused", json!({"deny": "true"}))),
            &[],
            403,
        )
        .await;
    assert_eq!(
        r.message(),
        "admission webhook \"deny.example.com\" denied the request: configmaps labelled deny=true are not allowed"
    );
    assert_eq!(r.body["reason"], "Forbidden");
    assert_eq!(
        s.admin("GET", &format!("{cms}/refused"), None).await.code,
        404
    );
    let r = s.admin("POST", cms, Some(cm("plain"))).await;
    assert_eq!(r.code, 201, "{r:?}");

    let r = s
        .admin(
            "POST",
            mpath,
            Some(webhook_config(
                "MutatingWebhookConfiguration",
                "label-cm",
                "label.example.com",
                &format!("{base}/mutate"),
                &ca,
                "Fail",
                json!({"matchLabels": {"mutate": "yes"}}),
            )),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    loop {
        n += 1;
        let name = format!("mutated-{n}");
        let r = s
            .admin(
                "POST",
                cms,
                Some(cm_labelled(&name, json!({"mutate": "yes"}))),
            )
            .await;
        assert_eq!(r.code, 201, "{r:?}");
        let stored = s.admin("GET", &format!("{cms}/{name}"), None).await;
        if stored.body["metadata"]["labels"]["mutated"] == "by-webhook" {
            assert_eq!(r.body["metadata"]["labels"]["mutated"], "by-webhook");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never mutated: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Objects the selector leaves out are not sent.
    let r = s.admin("POST", cms, Some(cm("unlabelled"))).await;
    assert_eq!(r.code, 201, "{r:?}");
    assert!(r.body["metadata"].get("labels").is_none(), "{r:?}");

    // The server goes away: Fail refuses, Ignore lets the request through.
    server.abort();
    let _ = server.await;
    for (path, name) in [(vpath, "deny-cm"), (mpath, "label-cm")] {
        let r = s.admin("DELETE", &format!("{path}/{name}"), None).await;
        assert_eq!(r.code, 200, "{r:?}");
    }
    let r = s
        .admin(
            "POST",
            vpath,
            Some(webhook_config(
                "ValidatingWebhookConfiguration",
                "gone-ignore",
                "ignore.example.com",
                &format!("{base}/validate"),
                &ca,
                "Ignore",
                json!({"matchLabels": {"mode": "ignore"}}),
            )),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let r = s
        .admin(
            "POST",
            vpath,
            Some(webhook_config(
                "ValidatingWebhookConfiguration",
                "gone-fail",
                "fail.example.com",
                &format!("{base}/validate"),
                &ca,
                "Fail",
                json!({"matchLabels": {"mode": "fail"}}),
            )),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let r = s
        .until(
            &s.admin,
            "POST",
            cms,
            Some(cm_labelled("failing", json!({"mode": "fail"}))),
            &[],
            500,
        )
        .await;
    assert_eq!(r.body["reason"], "InternalError");
    assert_eq!(
        r.message(),
        format!("Internal error occurred: failed calling webhook \"fail.example.com\": failed to call webhook: Post \"{base}/validate?timeout=10s\": dial tcp 127.0.0.1:{port}: connect: connection refused")
    );
    let r = s
        .admin(
            "POST",
            cms,
            Some(cm_labelled("ignored", json!({"mode": "ignore"}))),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
}

// ---------------------------------------------------------------------------------------
// 10. Encryption at rest
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_encrypted_at_rest() {
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let config = format!(
        r#"{{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1",
            "resources":[{{"resources":["secrets"],
            "providers":[{{"aescbc":{{"keys":[{{"name":"key1","secret":"{key}"}}]}}}},{{"identity":{{}}}}]}}]}}"#
    );
    let s = start_with(Some(&config)).await;
    let value = base64::engine::general_purpose::STANDARD.encode("hunter2-plaintext");
    let r = s
        .admin(
            "POST",
            "/api/v1/namespaces/default/secrets",
            Some(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"},
                "data": {"password": value}}),
            ),
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let (kv, _) = s
        .sqlite
        .get("/registry/core/secrets/default/s1", 0)
        .await
        .unwrap();
    let stored = kv.expect("secret stored").value;
    assert!(
        stored.starts_with(b"k8s:enc:aescbc:v1:key1:"),
        "{:?}",
        String::from_utf8_lossy(&stored[..stored.len().min(40)])
    );
    for needle in [&b"hunter2"[..], value.as_bytes(), b"password"] {
        assert!(
            !stored.windows(needle.len()).any(|w| w == needle),
            "plaintext in store"
        );
    }
    let r = s
        .admin("GET", "/api/v1/namespaces/default/secrets/s1", None)
        .await;
    assert_eq!(r.code, 200, "{r:?}");
    assert_eq!(r.body["data"]["password"], value.as_str());
    let r = s
        .admin("GET", "/api/v1/namespaces/default/secrets", None)
        .await;
    assert_eq!(r.body["items"][0]["data"]["password"], value.as_str());
    // Resources outside the configuration stay plaintext.
    assert_eq!(
        s.admin(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some(cm("c1"))
        )
        .await
        .code,
        201
    );
    let (kv, _) = s
        .sqlite
        .get("/registry/core/configmaps/default/c1", 0)
        .await
        .unwrap();
    assert!(kv.unwrap().value.starts_with(b"{"));
}

// ---------------------------------------------------------------------------------------
// 11. Audit
// ---------------------------------------------------------------------------------------

/// Forwards to a shared RecordingSink so the test can read the events.
struct SharedSink(Arc<RecordingSink>);

impl AuditSink for SharedSink {
    fn write(&self, events: &[Event]) {
        self.0.write(events)
    }
}

fn events_json(sink: &RecordingSink) -> Vec<Value> {
    sink.events()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events() {
    let s = start().await;
    let policy = Policy::parse(
        br#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[
            {"level":"RequestResponse","resources":[{"group":"","resources":["configmaps"]}]},
            {"level":"Metadata"}]}"#,
    )
    .unwrap();
    let sink = Arc::new(RecordingSink::default());
    assert!(s
        .app
        .audit
        .set(Arc::new(Auditor {
            policy,
            sink: Box::new(SharedSink(sink.clone())),
        }))
        .is_ok());
    let r = s
        .call(
            &s.admin,
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some(cm("audited")),
            &[("user-agent", "audit-test/1.0")],
        )
        .await;
    assert_eq!(r.code, 201, "{r:?}");
    let uid = r.body["metadata"]["uid"].as_str().unwrap().to_string();
    let evs = events_json(&sink);
    let create: Vec<&Value> = evs
        .iter()
        .filter(|e| e["verb"] == "create" && e["objectRef"]["resource"] == "configmaps")
        .collect();
    let stages: Vec<&str> = create.iter().filter_map(|e| e["stage"].as_str()).collect();
    assert_eq!(
        stages,
        ["RequestReceived", "ResponseComplete"],
        "{create:?}"
    );
    let ev = create[1];
    assert_eq!(ev["kind"], "Event");
    assert_eq!(ev["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(ev["level"], "RequestResponse");
    assert_eq!(ev["auditID"], create[0]["auditID"]);
    assert_eq!(ev["requestURI"], "/api/v1/namespaces/default/configmaps");
    assert_eq!(ev["user"]["username"], "system:admin");
    assert_eq!(
        ev["user"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
    assert_eq!(ev["userAgent"], "audit-test/1.0");
    assert_eq!(ev["sourceIPs"], json!(["127.0.0.1"]));
    assert_eq!(ev["objectRef"]["namespace"], "default");
    assert_eq!(ev["objectRef"]["name"], "audited");
    assert_eq!(ev["objectRef"]["apiVersion"], "v1");
    assert_eq!(ev["responseStatus"]["code"], 201);
    assert_eq!(ev["requestObject"]["metadata"]["name"], "audited");
    assert_eq!(ev["requestObject"]["data"], json!({"k": "v"}));
    assert_eq!(ev["responseObject"]["metadata"]["uid"], uid.as_str());
    assert_eq!(
        ev["annotations"]["authorization.k8s.io/decision"], "allow",
        "{ev}"
    );

    // Metadata level: no objects recorded.
    let r = s
        .admin("GET", "/api/v1/namespaces/default/pods", None)
        .await;
    assert_eq!(r.code, 200);
    let evs = events_json(&sink);
    let list = evs
        .iter()
        .find(|e| {
            e["verb"] == "list"
                && e["objectRef"]["resource"] == "pods"
                && e["stage"] == "ResponseComplete"
        })
        .expect("list event");
    assert_eq!(list["level"], "Metadata");
    assert_eq!(list["responseStatus"]["code"], 200);
    assert!(list.get("requestObject").is_none() && list.get("responseObject").is_none());

    // A forbidden request.
    let r = s
        .as_(
            &s.token("bob-token"),
            "GET",
            "/api/v1/namespaces/default/pods",
            None,
        )
        .await;
    assert_eq!(r.code, 403);
    let evs = events_json(&sink);
    let denied = evs
        .iter()
        .find(|e| e["user"]["username"] == "bob" && e["stage"] == "ResponseComplete")
        .expect("bob's event");
    assert_eq!(
        denied["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(denied["annotations"]["authorization.k8s.io/reason"], "");
    assert_eq!(denied["responseStatus"]["code"], 403);
    assert_eq!(denied["responseStatus"]["reason"], "Forbidden");
    assert_eq!(denied["responseStatus"]["message"], BOB_LIST_PODS_DEFAULT);
    assert_eq!(denied["verb"], "list");

    // Impersonated requests record both users.
    let r = s
        .call(
            &s.admin,
            "GET",
            "/api/v1/namespaces/default/configmaps/audited",
            None,
            &[("Impersonate-User", "alice")],
        )
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    let evs = events_json(&sink);
    let imp = evs
        .iter()
        .find(|e| e["impersonatedUser"]["username"] == "alice" && e["stage"] == "ResponseComplete")
        .expect("impersonated event");
    assert_eq!(imp["user"]["username"], "system:admin");
    assert_eq!(imp["verb"], "get");
    assert_eq!(imp["objectRef"]["name"], "audited");
    assert_eq!(
        imp["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
}

// ---------------------------------------------------------------------------------------
// 12. Node identity: node authorizer and NodeRestriction
// ---------------------------------------------------------------------------------------

fn pod_on(name: &str, node: &str, secret: &str) -> Value {
    let mut p = pod(name);
    p["spec"]["nodeName"] = json!(node);
    p["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": secret}}]);
    p["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "s", "mountPath": "/s"}]);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_identity() {
    let s = start().await;
    s.service_account("default", "default").await;
    for n in ["n1", "n2"] {
        let r = s
            .admin(
                "POST",
                "/api/v1/nodes",
                Some(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}})),
            )
            .await;
        assert_eq!(r.code, 201, "{r:?}");
    }
    for sec in ["s1", "s2"] {
        let r = s
            .admin(
                "POST",
                "/api/v1/namespaces/default/secrets",
                Some(
                    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": sec},
                    "stringData": {"k": "v"}}),
                ),
            )
            .await;
        assert_eq!(r.code, 201, "{r:?}");
    }
    for (p, n, sec) in [("p1", "n1", "s1"), ("p2", "n2", "s2")] {
        let r = s
            .admin(
                "POST",
                "/api/v1/namespaces/default/pods",
                Some(pod_on(p, n, sec)),
            )
            .await;
        assert_eq!(r.code, 201, "{r:?}");
    }
    let n1 = s.cert("system:node:n1", &["system:nodes"]);
    let r = s
        .until(
            &n1,
            "GET",
            "/api/v1/namespaces/default/secrets/s1",
            None,
            &[],
            200,
        )
        .await;
    assert_eq!(r.body["metadata"]["name"], "s1");
    let r = s
        .as_(&n1, "GET", "/api/v1/namespaces/default/secrets/s2", None)
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "secrets \"s2\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object"
    );
    let r = s
        .as_(&n1, "GET", "/api/v1/namespaces/default/secrets", None)
        .await;
    assert_eq!(r.code, 403, "{r:?}");

    let patch = br#"{"metadata":{"annotations":{"example.com/touched":"yes"}}}"#.to_vec();
    let mp = [("content-type", "application/merge-patch+json")];
    let r = s
        .raw(&n1, "PATCH", "/api/v1/nodes/n2", patch.clone(), &mp)
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
    );
    let r = s.raw(&n1, "PATCH", "/api/v1/nodes/n1", patch, &mp).await;
    assert_eq!(r.code, 200, "{r:?}");
    assert_eq!(
        r.body["metadata"]["annotations"]["example.com/touched"],
        "yes"
    );

    let r = s
        .as_(&n1, "GET", "/api/v1/namespaces/default/pods", None)
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    let r = s.as_(&n1, "GET", "/api/v1/pods", None).await;
    assert_eq!(r.code, 403, "{r:?}");
    let r = s
        .as_(
            &n1,
            "GET",
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1",
            None,
        )
        .await;
    assert_eq!(r.code, 200, "{r:?}");
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["p1"]);
    let r = s
        .as_(
            &n1,
            "GET",
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dn2",
            None,
        )
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    // NodeRestriction: a kubelet creates mirror pods only.
    let mut own = pod("own");
    own["spec"]["nodeName"] = json!("n1");
    let r = s
        .as_(&n1, "POST", "/api/v1/namespaces/default/pods", Some(own))
        .await;
    assert_eq!(r.code, 403, "{r:?}");
    assert_eq!(
        r.message(),
        "pods \"own\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods"
    );
}

// ---------------------------------------------------------------------------------------
// 13. Hostile input
// ---------------------------------------------------------------------------------------

impl TestServer {
    /// Posts a body over the 3 MiB limit by hand: the server answers before reading it
    /// all, so write errors are expected and ignored; returns the status code.
    async fn oversized_post(&self, path: &str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let mut tls = self
            .admin
            .tls
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let n = 3 * 1024 * 1024 + 10;
        let head = format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {n}\r\n\r\n");
        tls.write_all(head.as_bytes()).await.unwrap();
        let _ = tls.write_all(&vec![b' '; n]).await;
        let mut buf = vec![0u8; 64];
        let got = tls.read(&mut buf).await.unwrap();
        let line = String::from_utf8_lossy(&buf[..got]).to_string();
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input() {
    let s = start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    assert_eq!(s.oversized_post(cms).await, 413);
    // Chunked (no content-length) over the limit too.
    let big = vec![b' '; 3 * 1024 * 1024 + 10];
    let r = s
        .raw(
            &s.admin,
            "POST",
            cms,
            big,
            &[("transfer-encoding", "chunked")],
        )
        .await;
    assert_eq!(r.code, 413, "{r:?}");

    let depth = 10_000;
    let mut deep = String::from(
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"data":{"k":"#,
    );
    deep.push_str(&"[".repeat(depth));
    deep.push_str(&"]".repeat(depth));
    deep.push_str("}}");
    let r = s.raw(&s.admin, "POST", cms, deep.into_bytes(), &[]).await;
    assert!((400..500).contains(&r.code), "{r:?}");
    let r = s
        .as_(
            &Client {
                tls: s.anon.clone(),
                bearer: None,
            },
            "GET",
            "/readyz",
            None,
        )
        .await;
    assert_eq!((r.code, r.body), (200, Value::String("ok".into())));
    // Deep nesting in a strategic merge patch as well.
    assert_eq!(s.admin("POST", cms, Some(cm("target"))).await.code, 201);
    let mut deep_patch = String::from(r#"{"data":{"k":"#);
    deep_patch.push_str(&"{\"a\":".repeat(depth));
    deep_patch.push('1');
    deep_patch.push_str(&"}".repeat(depth));
    deep_patch.push_str("}}");
    let r = s
        .raw(
            &s.admin,
            "PATCH",
            &format!("{cms}/target"),
            deep_patch.into_bytes(),
            &[("content-type", "application/strategic-merge-patch+json")],
        )
        .await;
    assert!((400..500).contains(&r.code), "{r:?}");
    assert_eq!(s.admin("GET", "/readyz", None).await.code, 200);

    let long = "v".repeat(70);
    let r = s
        .admin("POST", cms, Some(cm_labelled("long", json!({"k": long}))))
        .await;
    assert_eq!(r.code, 422, "{r:?}");
    assert_eq!(
        r.message(),
        format!("ConfigMap \"long\" is invalid: metadata.labels: Invalid value: \"{long}\": must be no more than 63 characters")
    );
    let r = s.admin("POST", cms, Some(cm("a_b"))).await;
    assert_eq!(r.code, 422, "{r:?}");
    assert_eq!(
        r.message(),
        "ConfigMap \"a_b\" is invalid: metadata.name: Invalid value: \"a_b\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );

    let r = s
        .admin(
            "POST",
            "/api/v1/namespaces/default/secrets",
            Some(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hidden"},
                "stringData": {"k": "v"}}),
            ),
        )
        .await;
    assert_eq!(r.code, 201);
    for path in [
        "/api/v1/namespaces/default/configmaps/..%2f..%2fsecrets",
        "/api/v1/namespaces/default/configmaps/..%2fsecrets/hidden",
        "/api/v1/namespaces/default/configmaps/../secrets/hidden",
        "/api/v1/namespaces/default/configmaps/%2e%2e",
        "/api/v1/namespaces/..%2fkube-system/configmaps",
    ] {
        let r = s.admin("GET", path, None).await;
        assert_eq!(r.code, 404, "{path}: {r:?}");
    }
    // A name with a NUL or a slash escape in a create body is invalid, not a path.
    let r = s.admin("POST", cms, Some(cm("x\u{0}y"))).await;
    assert_eq!(r.code, 422, "{r:?}");
    let r = s.admin("POST", cms, Some(cm("../secrets"))).await;
    assert_eq!(r.code, 422, "{r:?}");
}
