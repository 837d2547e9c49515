//! The HTTPS listener: rustls with optional client certificates (verified against the
//! cluster CA), HTTP/2 and HTTP/1.1 (with upgrades, for connections that offer no ALPN),
//! and the shared application state behind every request.

use crate::auth::{
    AuthorizerChain, JoinAuthorizer, MastersAuthorizer, PeerCertificate, TokenAuthenticator,
};
use crate::openapi::OpenApi;
use crate::pki::Pki;
use crate::registry::Registry;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::Backend;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The Kubernetes version served (kubectl's dispatcher picks its minor from this).
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";
pub const KUBE_GIT_VERSION: &str = "v1.33.0+minik8s";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("configuring tls: {0}")]
    Tls(String),
}

/// The client's address, attached to each request of the connection.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// State shared by all requests.
pub struct App {
    pub registry: Arc<Registry>,
    pub openapi: Arc<OpenApi>,
    pub bearer: crate::authn::BearerAuthenticator,
    pub authz: AuthorizerChain,
    /// The RBAC index (also in the authorizer chain), for rules reviews.
    pub rbac: crate::rbac::SharedRbacIndex,
    pub version: Value,
    pub advertise_address: String,
    /// The cluster CA, for `/cacerts` and node credentials (absent in some tests).
    pub pki: std::sync::OnceLock<Arc<Pki>>,
    /// How the API server reaches kubelets (logs, exec, attach, port-forward).
    pub kubelet_client: std::sync::OnceLock<crate::streaming::KubeletClient>,
    /// `metrics.k8s.io`: the per-node summary cache.
    pub metrics: crate::metrics::MetricsApi,
    /// Signs service account tokens (`serviceaccounts/token`); unset, that subresource is
    /// not served.
    pub sa_signer: std::sync::OnceLock<Arc<crate::tokens::ServiceAccountSigner>>,
    /// Open watches per user.
    pub watches: Arc<crate::watch::WatchLimiter>,
    /// The audit log (`--audit-log-path`); unset, nothing is audited.
    pub audit: std::sync::OnceLock<Arc<crate::audit::Auditor>>,
}

impl App {
    pub fn new(store: Arc<dyn Backend>, join_token: &str, advertise_address: String) -> Arc<App> {
        let openapi = Arc::new(OpenApi::new());
        let oa = openapi.clone();
        let rbac = crate::rbac::SharedRbacIndex::default();
        let graph = crate::nodegraph::SharedGraph::default();
        let (caches, store) = crate::objcache::AdmissionCaches::start(store);
        let registry = Arc::new(Registry {
            namespaces: crate::nscache::NamespaceCache::start(store.clone()),
            caches,
            store,
            schema: openapi.clone(),
            unknown_fields: Arc::new(move |schema: &str, obj: &Value| {
                oa.unknown_fields(schema, obj)
            }),
            services: std::sync::OnceLock::new(),
            disabled_admission: std::sync::OnceLock::new(),
            rbac: rbac.clone(),
            nodes: graph.clone(),
            webhooks: std::sync::OnceLock::new(),
        });
        crate::nodegraph::start(registry.store.clone(), graph.clone());
        let aggregate = crate::rbacsync::start_aggregation(registry.clone(), rbac.clone());
        crate::rbacsync::start(registry.store.clone(), rbac.clone(), aggregate);
        Arc::new(App {
            registry,
            openapi,
            bearer: crate::authn::BearerAuthenticator::new(TokenAuthenticator::with_join_token(
                join_token,
            )),
            authz: AuthorizerChain(vec![
                Box::new(MastersAuthorizer),
                Box::new(crate::nodegraph::NodeAuthorizer::new(graph, rbac.clone())),
                Box::new(rbac.clone()),
                Box::new(JoinAuthorizer),
            ]),
            rbac,
            version: json!({
                "major": KUBE_MAJOR,
                "minor": KUBE_MINOR,
                "gitVersion": KUBE_GIT_VERSION,
                "gitCommit": env!("CARGO_PKG_VERSION"),
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.24.0",
                "compiler": "gc",
                "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
            }),
            advertise_address,
            pki: std::sync::OnceLock::new(),
            kubelet_client: std::sync::OnceLock::new(),
            metrics: crate::metrics::MetricsApi::default(),
            sa_signer: std::sync::OnceLock::new(),
            audit: std::sync::OnceLock::new(),
            watches: crate::watch::WatchLimiter::new(crate::watch::DEFAULT_MAX_WATCHES_PER_USER),
        })
    }

    /// `SelfSubjectRulesReview` status for a user in a namespace (from RBAC; members of
    /// `system:masters` see cluster-admin's rules through its bootstrap binding).
    pub fn rules_review(&self, user: &crate::auth::UserInfo, namespace: &str) -> Value {
        let r = self.rbac.read().rules_for(user, namespace);
        let resource_rules: Vec<Value> = r
            .resource_rules
            .iter()
            .map(|p| {
                let mut v = json!({"verbs": p.verbs, "apiGroups": p.api_groups.clone().unwrap_or_default(),
                    "resources": p.resources.clone().unwrap_or_default()});
                if let Some(n) = p.resource_names.as_ref().filter(|n| !n.is_empty()) {
                    v["resourceNames"] = json!(n);
                }
                v
            })
            .collect();
        let non_resource_rules: Vec<Value> = r
            .non_resource_rules
            .iter()
            .map(|p| json!({"verbs": p.verbs, "nonResourceURLs": p.non_resource_urls.clone().unwrap_or_default()}))
            .collect();
        let mut v = json!({
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": r.incomplete,
        });
        if !r.evaluation_error.is_empty() {
            v["evaluationError"] = json!(r.evaluation_error);
        }
        v
    }

    /// Writes the bootstrap RBAC policy (at start, after the store is ready).
    pub async fn bootstrap_rbac(&self) -> Result<(), crate::rbacsync::RbacSyncError> {
        crate::rbacsync::reconcile_bootstrap(&self.registry).await
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .fallback(crate::handler::handle)
            .with_state(self.clone())
    }
}

fn tls_config(pki: &Pki) -> Result<rustls::ServerConfig, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pki.serving_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| ServerError::Tls(e.to_string()))?;
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut pki.serving_key_pem.as_bytes())
            .map_err(|e| ServerError::Tls(e.to_string()))?
            .ok_or_else(|| ServerError::Tls("no serving key".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pki.ca_cert_pem.as_bytes()) {
        let c = c.map_err(|e| ServerError::Tls(e.to_string()))?;
        roots.add(c).map_err(|e| ServerError::Tls(e.to_string()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| ServerError::Tls(e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Binds the listener (so a port in use fails early with a clear error).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Serves HTTPS on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, app: Arc<App>, pki: &Pki) -> Result<(), ServerError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(pki)?));
    let router = app.router();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "tls handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec());
            let peer_cert = PeerCertificate(cert);
            let peer_addr = PeerAddr(peer);
            let svc =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(peer_cert.clone());
                    req.extensions_mut().insert(peer_addr);
                    router.clone().oneshot(req.map(axum::body::Body::new))
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}
