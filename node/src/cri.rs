//! The CRI boundary: the [`Runtime`] trait the kubelet drives (CRI v1 runtime and image
//! services), [`GrpcRuntime`] that speaks it to containerd over a unix socket, and
//! [`FakeRuntime`], an in-memory runtime that records every call for the kubelet's tests.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    AttachRequest, Container, ContainerAttributes, ContainerConfig, ContainerState, ContainerStats,
    ContainerStatus, CpuUsage, ExecRequest, ExecSyncResponse, FilesystemIdentifier,
    FilesystemUsage, Image, ImageSpec, MemoryUsage, NamespaceMode, PodSandbox, PodSandboxConfig,
    PodSandboxMetadata, PodSandboxNetworkStatus, PodSandboxState, PodSandboxStatus,
    PortForwardRequest, RuntimeCondition, RuntimeStatus, StatusResponse, UInt64Value,
    VersionResponse,
};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The CRI API version the kubelet asks for.
pub const CRI_API_VERSION: &str = "v1";

/// Runtime condition types (upstream `RuntimeReady` / `NetworkReady`).
pub const RUNTIME_READY: &str = "RuntimeReady";
pub const NETWORK_READY: &str = "NetworkReady";

/// A failed CRI call, or a failure to reach the runtime at all.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("connect to cri socket {}: {}", .socket.display(), error_chain(.source))]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("{op}: {message}")]
    Call {
        op: &'static str,
        code: tonic::Code,
        message: String,
    },
}

impl CriError {
    /// True when the runtime says the object (sandbox, container, image) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            CriError::Call {
                code: tonic::Code::NotFound,
                ..
            }
        )
    }

    /// The gRPC code of a failed call (`Unavailable` when the socket could not be reached).
    pub fn code(&self) -> tonic::Code {
        match self {
            CriError::Connect { .. } => tonic::Code::Unavailable,
            CriError::Call { code, .. } => *code,
        }
    }

    /// The runtime's own message, without the operation prefix.
    pub fn message(&self) -> String {
        match self {
            CriError::Connect { .. } => self.to_string(),
            CriError::Call { message, .. } => message.clone(),
        }
    }

    fn from_status(op: &'static str, status: tonic::Status) -> CriError {
        let mut message = status.message().to_string();
        let chain = error_chain_sources(&status);
        if !chain.is_empty() && !message.contains(&chain) {
            if message.is_empty() {
                message = chain;
            } else {
                message = format!("{message}: {chain}");
            }
        }
        CriError::Call {
            op,
            code: status.code(),
            message,
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let rest = error_chain_sources(err);
    if rest.is_empty() {
        err.to_string()
    } else {
        format!("{err}: {rest}")
    }
}

fn error_chain_sources(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = err.source();
    while let Some(e) = next {
        let s = e.to_string();
        if parts.last() != Some(&s) {
            parts.push(s);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The CRI v1 runtime and image services, as the kubelet uses them.
#[async_trait]
pub trait Runtime: Send + Sync {
    async fn version(&self) -> Result<VersionResponse, CriError>;
    async fn status(&self) -> Result<StatusResponse, CriError>;

    async fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String, CriError>;
    async fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError>;
    async fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError>;
    async fn pod_sandbox_status(&self, id: &str) -> Result<PodSandboxStatus, CriError>;
    async fn list_pod_sandboxes(&self) -> Result<Vec<PodSandbox>, CriError>;

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String, CriError>;
    async fn start_container(&self, id: &str) -> Result<(), CriError>;
    async fn stop_container(&self, id: &str, timeout_secs: i64) -> Result<(), CriError>;
    async fn remove_container(&self, id: &str) -> Result<(), CriError>;
    async fn list_containers(&self) -> Result<Vec<Container>, CriError>;
    async fn container_status(&self, id: &str) -> Result<ContainerStatus, CriError>;

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout_secs: i64,
    ) -> Result<ExecSyncResponse, CriError>;
    /// Returns the streaming URL for the exec session.
    async fn exec(&self, req: ExecRequest) -> Result<String, CriError>;
    /// Returns the streaming URL for the attach session.
    async fn attach(&self, req: AttachRequest) -> Result<String, CriError>;
    /// Returns the streaming URL for the port-forward session.
    async fn port_forward(&self, req: PortForwardRequest) -> Result<String, CriError>;
    async fn list_container_stats(&self) -> Result<Vec<ContainerStats>, CriError>;
    async fn reopen_container_log(&self, id: &str) -> Result<(), CriError>;

    /// `None` when the image is not present on the node.
    async fn image_status(&self, image: &str) -> Result<Option<Image>, CriError>;
    /// Returns the image reference (the image id) the runtime resolved.
    async fn pull_image(
        &self,
        image: &str,
        sandbox: Option<PodSandboxConfig>,
    ) -> Result<String, CriError>;
    async fn list_images(&self) -> Result<Vec<Image>, CriError>;
    async fn remove_image(&self, image: &str) -> Result<(), CriError>;
    async fn image_fs_info(&self) -> Result<Vec<FilesystemUsage>, CriError>;
}

/// Per-call deadlines of [`GrpcRuntime`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Status, list and other quick calls.
    pub quick: Duration,
    /// Sandbox/container creation, stops, removals and image pulls.
    pub long: Duration,
    /// Added to the command's own timeout for `exec_sync` (`stop_container` waits `long`
    /// plus the grace period).
    pub slack: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            quick: Duration::from_secs(10),
            long: Duration::from_secs(120),
            slack: Duration::from_secs(10),
        }
    }
}

/// Largest message accepted from the runtime (exec output may be up to 16 MiB per stream).
const MAX_MESSAGE_BYTES: usize = 40 << 20;

/// A CRI client over a unix socket. Cloning is cheap (the channel is shared); the channel
/// reconnects by itself when the runtime restarts.
#[derive(Clone)]
pub struct GrpcRuntime {
    channel: Channel,
    socket: PathBuf,
    timeouts: Timeouts,
}

impl std::fmt::Debug for GrpcRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcRuntime")
            .field("socket", &self.socket)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl GrpcRuntime {
    /// Connects to the runtime's socket now (fails if nothing listens there).
    pub async fn connect(socket: &Path) -> Result<GrpcRuntime, CriError> {
        let path = socket.to_path_buf();
        let channel = endpoint()
            .connect_with_connector(unix_connector(path.clone()))
            .await
            .map_err(|source| CriError::Connect {
                socket: path.clone(),
                source,
            })?;
        Ok(GrpcRuntime {
            channel,
            socket: path,
            timeouts: Timeouts::default(),
        })
    }

    /// A client whose first connection is made by the first call (never fails here).
    pub fn connect_lazy(socket: &Path) -> GrpcRuntime {
        let path = socket.to_path_buf();
        let channel = endpoint().connect_with_connector_lazy(unix_connector(path.clone()));
        GrpcRuntime {
            channel,
            socket: path,
            timeouts: Timeouts::default(),
        }
    }

    pub fn with_timeouts(mut self, timeouts: Timeouts) -> GrpcRuntime {
        self.timeouts = timeouts;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn rt(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn img(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn endpoint() -> Endpoint {
    // The URI is only a placeholder: the connector below always dials the unix socket.
    Endpoint::from_static("http://[::1]:50051").connect_timeout(Duration::from_secs(5))
}

type ConnectFuture =
    std::pin::Pin<Box<dyn Future<Output = std::io::Result<TokioIo<UnixStream>>> + Send>>;

fn unix_connector(
    path: PathBuf,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<UnixStream>,
    Error = std::io::Error,
    Future = ConnectFuture,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |_: Uri| -> ConnectFuture {
        let path = path.clone();
        Box::pin(async move { Ok(TokioIo::new(UnixStream::connect(path).await?)) })
    })
}

/// Builds a request carrying a deadline (sent to the server as `grpc-timeout`).
fn request<T>(msg: T, deadline: Option<Duration>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(d) = deadline {
        req.set_timeout(d);
    }
    req
}

/// Runs one call, enforcing the deadline locally too, and maps the failure.
async fn call<T, F>(op: &'static str, deadline: Option<Duration>, fut: F) -> Result<T, CriError>
where
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let result = match deadline {
        Some(d) => match tokio::time::timeout(d, fut).await {
            Ok(r) => r,
            Err(_) => {
                return Err(CriError::Call {
                    op,
                    code: tonic::Code::DeadlineExceeded,
                    message: format!("no answer within {}s", d.as_secs_f64()),
                })
            }
        },
        None => fut.await,
    };
    result
        .map(tonic::Response::into_inner)
        .map_err(|s| CriError::from_status(op, s))
}

fn image_spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap_or(0))
}

#[async_trait]
impl Runtime for GrpcRuntime {
    async fn version(&self) -> Result<VersionResponse, CriError> {
        use k8s_cri::v1::VersionRequest;
        let d = Some(self.timeouts.quick);
        let msg = VersionRequest {
            version: CRI_API_VERSION.to_string(),
        };
        call("version", d, self.rt().version(request(msg, d))).await
    }

    async fn status(&self) -> Result<StatusResponse, CriError> {
        use k8s_cri::v1::StatusRequest;
        let d = Some(self.timeouts.quick);
        let msg = StatusRequest { verbose: false };
        call("status", d, self.rt().status(request(msg, d))).await
    }

    async fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String, CriError> {
        use k8s_cri::v1::RunPodSandboxRequest;
        let d = Some(self.timeouts.long);
        let msg = RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        let r = call(
            "runpodsandbox",
            d,
            self.rt().run_pod_sandbox(request(msg, d)),
        )
        .await?;
        Ok(r.pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        use k8s_cri::v1::StopPodSandboxRequest;
        let d = Some(self.timeouts.long);
        let msg = StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        call(
            "stoppodsandbox",
            d,
            self.rt().stop_pod_sandbox(request(msg, d)),
        )
        .await?;
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        use k8s_cri::v1::RemovePodSandboxRequest;
        let d = Some(self.timeouts.long);
        let msg = RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        call(
            "removepodsandbox",
            d,
            self.rt().remove_pod_sandbox(request(msg, d)),
        )
        .await?;
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<PodSandboxStatus, CriError> {
        use k8s_cri::v1::PodSandboxStatusRequest;
        let d = Some(self.timeouts.quick);
        let msg = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: false,
        };
        let r = call(
            "podsandboxstatus",
            d,
            self.rt().pod_sandbox_status(request(msg, d)),
        )
        .await?;
        r.status.ok_or_else(|| CriError::Call {
            op: "podsandboxstatus",
            code: tonic::Code::Internal,
            message: format!("runtime returned no status for sandbox {id:?}"),
        })
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<PodSandbox>, CriError> {
        use k8s_cri::v1::ListPodSandboxRequest;
        let d = Some(self.timeouts.quick);
        let msg = ListPodSandboxRequest { filter: None };
        let r = call(
            "listpodsandbox",
            d,
            self.rt().list_pod_sandbox(request(msg, d)),
        )
        .await?;
        Ok(r.items)
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String, CriError> {
        use k8s_cri::v1::CreateContainerRequest;
        let d = Some(self.timeouts.long);
        let msg = CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let r = call(
            "createcontainer",
            d,
            self.rt().create_container(request(msg, d)),
        )
        .await?;
        Ok(r.container_id)
    }

    async fn start_container(&self, id: &str) -> Result<(), CriError> {
        use k8s_cri::v1::StartContainerRequest;
        let d = Some(self.timeouts.long);
        let msg = StartContainerRequest {
            container_id: id.to_string(),
        };
        call(
            "startcontainer",
            d,
            self.rt().start_container(request(msg, d)),
        )
        .await?;
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout_secs: i64) -> Result<(), CriError> {
        use k8s_cri::v1::StopContainerRequest;
        let d = Some(self.timeouts.long + secs(timeout_secs));
        let msg = StopContainerRequest {
            container_id: id.to_string(),
            timeout: timeout_secs.max(0),
        };
        call(
            "stopcontainer",
            d,
            self.rt().stop_container(request(msg, d)),
        )
        .await?;
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), CriError> {
        use k8s_cri::v1::RemoveContainerRequest;
        let d = Some(self.timeouts.long);
        let msg = RemoveContainerRequest {
            container_id: id.to_string(),
        };
        call(
            "removecontainer",
            d,
            self.rt().remove_container(request(msg, d)),
        )
        .await?;
        Ok(())
    }

    async fn list_containers(&self) -> Result<Vec<Container>, CriError> {
        use k8s_cri::v1::ListContainersRequest;
        let d = Some(self.timeouts.quick);
        let msg = ListContainersRequest { filter: None };
        let r = call(
            "listcontainers",
            d,
            self.rt().list_containers(request(msg, d)),
        )
        .await?;
        Ok(r.containers)
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus, CriError> {
        use k8s_cri::v1::ContainerStatusRequest;
        let d = Some(self.timeouts.quick);
        let msg = ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        };
        let r = call(
            "containerstatus",
            d,
            self.rt().container_status(request(msg, d)),
        )
        .await?;
        r.status.ok_or_else(|| CriError::Call {
            op: "containerstatus",
            code: tonic::Code::Internal,
            message: format!("runtime returned no status for container {id:?}"),
        })
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout_secs: i64,
    ) -> Result<ExecSyncResponse, CriError> {
        use k8s_cri::v1::ExecSyncRequest;
        // As upstream: no deadline when the command itself has none.
        let d = (timeout_secs > 0).then(|| secs(timeout_secs) + self.timeouts.slack);
        let msg = ExecSyncRequest {
            container_id: id.to_string(),
            cmd,
            timeout: timeout_secs.max(0),
        };
        call("execsync", d, self.rt().exec_sync(request(msg, d))).await
    }

    async fn exec(&self, req: ExecRequest) -> Result<String, CriError> {
        let d = Some(self.timeouts.quick);
        let r = call("exec", d, self.rt().exec(request(req, d))).await?;
        Ok(r.url)
    }

    async fn attach(&self, req: AttachRequest) -> Result<String, CriError> {
        let d = Some(self.timeouts.quick);
        let r = call("attach", d, self.rt().attach(request(req, d))).await?;
        Ok(r.url)
    }

    async fn port_forward(&self, req: PortForwardRequest) -> Result<String, CriError> {
        let d = Some(self.timeouts.quick);
        let r = call("portforward", d, self.rt().port_forward(request(req, d))).await?;
        Ok(r.url)
    }

    async fn list_container_stats(&self) -> Result<Vec<ContainerStats>, CriError> {
        use k8s_cri::v1::ListContainerStatsRequest;
        let d = Some(self.timeouts.quick);
        let msg = ListContainerStatsRequest { filter: None };
        let r = call(
            "listcontainerstats",
            d,
            self.rt().list_container_stats(request(msg, d)),
        )
        .await?;
        Ok(r.stats)
    }

    async fn reopen_container_log(&self, id: &str) -> Result<(), CriError> {
        use k8s_cri::v1::ReopenContainerLogRequest;
        let d = Some(self.timeouts.quick);
        let msg = ReopenContainerLogRequest {
            container_id: id.to_string(),
        };
        call(
            "reopencontainerlog",
            d,
            self.rt().reopen_container_log(request(msg, d)),
        )
        .await?;
        Ok(())
    }

    async fn image_status(&self, image: &str) -> Result<Option<Image>, CriError> {
        use k8s_cri::v1::ImageStatusRequest;
        let d = Some(self.timeouts.quick);
        let msg = ImageStatusRequest {
            image: image_spec(image),
            verbose: false,
        };
        let r = call("imagestatus", d, self.img().image_status(request(msg, d))).await?;
        Ok(r.image.filter(|i| !i.id.is_empty()))
    }

    async fn pull_image(
        &self,
        image: &str,
        sandbox: Option<PodSandboxConfig>,
    ) -> Result<String, CriError> {
        use k8s_cri::v1::PullImageRequest;
        let d = Some(self.timeouts.long);
        let msg = PullImageRequest {
            image: image_spec(image),
            auth: None,
            sandbox_config: sandbox,
        };
        let r = call("pullimage", d, self.img().pull_image(request(msg, d))).await?;
        Ok(r.image_ref)
    }

    async fn list_images(&self) -> Result<Vec<Image>, CriError> {
        use k8s_cri::v1::ListImagesRequest;
        let d = Some(self.timeouts.quick);
        let msg = ListImagesRequest { filter: None };
        let r = call("listimages", d, self.img().list_images(request(msg, d))).await?;
        Ok(r.images)
    }

    async fn remove_image(&self, image: &str) -> Result<(), CriError> {
        use k8s_cri::v1::RemoveImageRequest;
        let d = Some(self.timeouts.long);
        let msg = RemoveImageRequest {
            image: image_spec(image),
        };
        call("removeimage", d, self.img().remove_image(request(msg, d))).await?;
        Ok(())
    }

    async fn image_fs_info(&self) -> Result<Vec<FilesystemUsage>, CriError> {
        use k8s_cri::v1::ImageFsInfoRequest;
        let d = Some(self.timeouts.quick);
        let r = call(
            "imagefsinfo",
            d,
            self.img().image_fs_info(request(ImageFsInfoRequest {}, d)),
        )
        .await?;
        Ok(r.image_filesystems)
    }
}

/// Normalizes an image reference the way containerd's CRI plugin does (docker reference
/// rules): `busybox` -> `docker.io/library/busybox:latest`, `localhost/x` ->
/// `localhost/x:latest`; references with a digest keep it.
pub fn normalize_image_ref(image: &str) -> String {
    let (name, suffix) = match image.find('@') {
        Some(i) => (&image[..i], Some(&image[i..])),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    let first = repo.split('/').next().unwrap_or("");
    let has_domain =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let repo = if has_domain {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    match (tag, suffix) {
        (Some(t), Some(d)) => format!("{repo}:{t}{d}"),
        (Some(t), None) => format!("{repo}:{t}"),
        (None, Some(d)) => format!("{repo}{d}"),
        (None, None) => format!("{repo}:latest"),
    }
}

// ---------------------------------------------------------------------------------------
// FakeRuntime
// ---------------------------------------------------------------------------------------

/// A sandbox as the fake keeps it.
#[derive(Debug, Clone)]
pub struct FakeSandbox {
    pub id: String,
    pub config: PodSandboxConfig,
    pub ready: bool,
    pub created_at: i64,
    /// Empty for host-network sandboxes.
    pub ip: String,
}

/// A container as the fake keeps it.
#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub id: String,
    pub sandbox_id: String,
    pub config: ContainerConfig,
    pub state: ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image_ref: String,
}

struct Failure {
    method: String,
    code: tonic::Code,
    message: String,
}

struct FakeState {
    calls: Vec<String>,
    failures: Vec<Failure>,
    seq: u64,
    sandboxes: Vec<FakeSandbox>,
    containers: Vec<FakeContainer>,
    /// Normalized reference -> image.
    images: BTreeMap<String, Image>,
    /// Normalized reference -> pull error message.
    unpullable: BTreeMap<String, String>,
    exec_results: HashMap<String, ExecSyncResponse>,
    stats: HashMap<String, (u64, u64)>,
    runtime_ready: bool,
    network_ready: bool,
    now: Option<i64>,
    next_ip: u32,
    ip_prefix: String,
    stop_exit_code: i32,
}

impl Default for FakeState {
    fn default() -> Self {
        FakeState {
            calls: Vec::new(),
            failures: Vec::new(),
            seq: 0,
            sandboxes: Vec::new(),
            containers: Vec::new(),
            images: BTreeMap::new(),
            unpullable: BTreeMap::new(),
            exec_results: HashMap::new(),
            stats: HashMap::new(),
            runtime_ready: true,
            network_ready: true,
            now: None,
            next_ip: 2,
            ip_prefix: "10.42.0.".to_string(),
            stop_exit_code: 137,
        }
    }
}

impl FakeState {
    fn now(&self) -> i64 {
        self.now.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(1)
                .max(1)
        })
    }

    fn next_id(&mut self, kind: &str) -> String {
        self.seq += 1;
        format!("{kind}-{}", self.seq)
    }

    /// Records the call and consumes an injected failure for it, if any.
    fn enter(&mut self, method: &str, op: &'static str, record: String) -> Result<(), CriError> {
        self.calls.push(record);
        if let Some(i) = self.failures.iter().position(|f| f.method == method) {
            let f = self.failures.remove(i);
            return Err(CriError::Call {
                op,
                code: f.code,
                message: f.message,
            });
        }
        Ok(())
    }

    fn sandbox(&self, op: &'static str, id: &str) -> Result<&FakeSandbox, CriError> {
        self.sandboxes
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| not_found(op, "sandbox", id))
    }

    fn container_mut(
        &mut self,
        op: &'static str,
        id: &str,
    ) -> Result<&mut FakeContainer, CriError> {
        self.containers
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found(op, "container", id))
    }

    fn find_image(&self, image: &str) -> Option<&Image> {
        let norm = normalize_image_ref(image);
        self.images.get(&norm).or_else(|| {
            self.images
                .values()
                .find(|i| i.id == image || i.repo_tags.iter().any(|t| t == image))
        })
    }

    fn add_image(&mut self, image: &str) -> Image {
        let norm = normalize_image_ref(image);
        if let Some(existing) = self.images.get(&norm) {
            return existing.clone();
        }
        let id = fake_image_id(&norm);
        let img = Image {
            id: id.clone(),
            repo_tags: vec![norm.clone()],
            repo_digests: Vec::new(),
            size: 1 << 20,
            spec: Some(ImageSpec {
                image: id,
                ..Default::default()
            }),
            ..Default::default()
        };
        self.images.insert(norm, img.clone());
        img
    }

    fn stop_container_now(&mut self, id: &str) {
        let now = self.now();
        let code = self.stop_exit_code;
        if let Some(c) = self.containers.iter_mut().find(|c| c.id == id) {
            if c.state == ContainerState::ContainerRunning {
                c.state = ContainerState::ContainerExited;
                c.finished_at = now;
                c.exit_code = code;
                c.reason = exit_reason(code).to_string();
            } else if c.state == ContainerState::ContainerCreated {
                c.state = ContainerState::ContainerExited;
                c.finished_at = now;
                c.exit_code = 0;
            }
        }
    }
}

fn not_found(op: &'static str, kind: &str, id: &str) -> CriError {
    CriError::Call {
        op,
        code: tonic::Code::NotFound,
        message: format!("an error occurred when try to find {kind} {id:?}: not found"),
    }
}

fn unknown(op: &'static str, message: String) -> CriError {
    CriError::Call {
        op,
        code: tonic::Code::Unknown,
        message,
    }
}

fn exit_reason(code: i32) -> &'static str {
    if code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

fn fake_image_id(norm: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(norm.as_bytes());
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn sandbox_name(c: &PodSandboxConfig) -> String {
    c.metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default()
}

fn sandbox_key(m: Option<&PodSandboxMetadata>) -> String {
    m.map(|m| format!("{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt))
        .unwrap_or_default()
}

fn container_name(c: &ContainerConfig) -> String {
    c.metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default()
}

fn is_host_network(c: &PodSandboxConfig) -> bool {
    c.linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .map(|n| n.network == NamespaceMode::Node as i32)
        .unwrap_or(false)
}

/// An in-memory [`Runtime`] for tests: it records every call (`"<method> <args>"`), keeps
/// sandboxes and containers with their states, hands out pod IPs, and lets a test inject
/// images, exits, exec results and failures. Clones share the same state.
///
/// Behaviour mirrors containerd 1.6 where it matters to a kubelet: unknown ids give
/// `NotFound` (except removals, which succeed), removing a sandbox removes its containers
/// even if it is still ready, duplicate names are refused, creating a container needs its image present, stopping a sandbox
/// kills its containers (exit code 137).
#[derive(Clone, Default)]
pub struct FakeRuntime {
    state: Arc<Mutex<FakeState>>,
}

impl std::fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRuntime").finish_non_exhaustive()
    }
}

impl FakeRuntime {
    pub fn new() -> FakeRuntime {
        FakeRuntime::default()
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every call so far, e.g. `"run_pod_sandbox web"`, `"create_container sandbox-1 app"`,
    /// `"stop_container container-2 30"`, `"exec_sync container-2 cat /tmp/ready"`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The calls whose method is `method`.
    pub fn calls_to(&self, method: &str) -> Vec<String> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.split(' ').next() == Some(method))
            .cloned()
            .collect()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Makes the next call to `method` (e.g. `"run_pod_sandbox"`) fail with code `Unknown`.
    pub fn fail_next(&self, method: &str, message: &str) {
        self.fail_next_with(method, tonic::Code::Unknown, message);
    }

    pub fn fail_next_with(&self, method: &str, code: tonic::Code, message: &str) {
        self.lock().failures.push(Failure {
            method: method.to_string(),
            code,
            message: message.to_string(),
        });
    }

    /// Makes an image present (as if imported). Returns its id.
    pub fn add_image(&self, image: &str) -> String {
        self.lock().add_image(image).id
    }

    /// Makes pulls of `image` fail with `message` (a registry error).
    pub fn set_unpullable(&self, image: &str, message: &str) {
        self.lock()
            .unpullable
            .insert(normalize_image_ref(image), message.to_string());
    }

    /// Fixes the clock (nanoseconds since the epoch); `None` goes back to wall time.
    pub fn set_now(&self, nanos: Option<i64>) {
        self.lock().now = nanos;
    }

    /// The first three octets plus dot of the pod IPs handed out (default `"10.42.0."`).
    pub fn set_ip_prefix(&self, prefix: &str) {
        self.lock().ip_prefix = prefix.to_string();
    }

    pub fn set_network_ready(&self, ready: bool) {
        self.lock().network_ready = ready;
    }

    pub fn set_runtime_ready(&self, ready: bool) {
        self.lock().runtime_ready = ready;
    }

    /// Exit code given to running containers stopped by `stop_container`/`stop_pod_sandbox`.
    pub fn set_stop_exit_code(&self, code: i32) {
        self.lock().stop_exit_code = code;
    }

    /// The result `exec_sync` returns for this container (default: exit 0, no output).
    pub fn set_exec_result(&self, container_id: &str, result: ExecSyncResponse) {
        self.lock()
            .exec_results
            .insert(container_id.to_string(), result);
    }

    /// Usage reported by `list_container_stats` for a container.
    pub fn set_stats(&self, container_id: &str, cpu_core_nanos: u64, memory_working_set: u64) {
        self.lock().stats.insert(
            container_id.to_string(),
            (cpu_core_nanos, memory_working_set),
        );
    }

    /// Makes a created or running container exit, as its process would. An empty reason
    /// becomes "Completed" (code 0) or "Error"; use "OOMKilled" for an OOM kill.
    /// Returns false when there is no such container.
    pub fn exit_container(&self, id: &str, exit_code: i32, reason: &str) -> bool {
        let mut st = self.lock();
        let now = st.now();
        match st.containers.iter_mut().find(|c| c.id == id) {
            Some(c) => {
                c.state = ContainerState::ContainerExited;
                if c.started_at == 0 {
                    c.started_at = now;
                }
                c.finished_at = now;
                c.exit_code = exit_code;
                c.reason = if reason.is_empty() {
                    exit_reason(exit_code).to_string()
                } else {
                    reason.to_string()
                };
                true
            }
            None => false,
        }
    }

    /// Sets the message a container status carries (e.g. a termination message).
    pub fn set_container_message(&self, id: &str, message: &str) -> bool {
        let mut st = self.lock();
        match st.containers.iter_mut().find(|c| c.id == id) {
            Some(c) => {
                c.message = message.to_string();
                true
            }
            None => false,
        }
    }

    /// Makes a sandbox not ready (its pause process died) and its containers exit.
    pub fn kill_sandbox(&self, id: &str) -> bool {
        let mut st = self.lock();
        let Some(sb) = st.sandboxes.iter_mut().find(|s| s.id == id) else {
            return false;
        };
        sb.ready = false;
        let ids: Vec<String> = st
            .containers
            .iter()
            .filter(|c| c.sandbox_id == id)
            .map(|c| c.id.clone())
            .collect();
        for c in ids {
            st.stop_container_now(&c);
        }
        true
    }

    pub fn sandboxes(&self) -> Vec<FakeSandbox> {
        self.lock().sandboxes.clone()
    }

    pub fn containers(&self) -> Vec<FakeContainer> {
        self.lock().containers.clone()
    }

    /// The container of that name in that sandbox with the highest attempt, if any.
    pub fn container_named(&self, sandbox_id: &str, name: &str) -> Option<FakeContainer> {
        self.lock()
            .containers
            .iter()
            .filter(|c| c.sandbox_id == sandbox_id && container_name(&c.config) == name)
            .max_by_key(|c| c.config.metadata.as_ref().map(|m| m.attempt).unwrap_or(0))
            .cloned()
    }

    /// The sandbox of a pod (by name), the newest first.
    pub fn sandbox_named(&self, pod_name: &str) -> Option<FakeSandbox> {
        self.lock()
            .sandboxes
            .iter()
            .rev()
            .find(|s| sandbox_name(&s.config) == pod_name)
            .cloned()
    }
}

fn sandbox_view(s: &FakeSandbox) -> PodSandbox {
    PodSandbox {
        id: s.id.clone(),
        metadata: s.config.metadata.clone(),
        state: sandbox_state(s) as i32,
        created_at: s.created_at,
        labels: s.config.labels.clone(),
        annotations: s.config.annotations.clone(),
        runtime_handler: String::new(),
    }
}

fn sandbox_state(s: &FakeSandbox) -> PodSandboxState {
    if s.ready {
        PodSandboxState::SandboxReady
    } else {
        PodSandboxState::SandboxNotready
    }
}

fn container_view(c: &FakeContainer) -> Container {
    Container {
        id: c.id.clone(),
        pod_sandbox_id: c.sandbox_id.clone(),
        metadata: c.config.metadata.clone(),
        image: c.config.image.clone(),
        image_ref: c.image_ref.clone(),
        state: c.state as i32,
        created_at: c.created_at,
        labels: c.config.labels.clone(),
        annotations: c.config.annotations.clone(),
        image_id: c.image_ref.clone(),
    }
}

fn container_status_view(c: &FakeContainer, log_dir: &str) -> ContainerStatus {
    let log_path = if c.config.log_path.is_empty() {
        String::new()
    } else {
        Path::new(log_dir)
            .join(&c.config.log_path)
            .to_string_lossy()
            .into_owned()
    };
    ContainerStatus {
        id: c.id.clone(),
        metadata: c.config.metadata.clone(),
        state: c.state as i32,
        created_at: c.created_at,
        started_at: c.started_at,
        finished_at: c.finished_at,
        exit_code: c.exit_code,
        image: c.config.image.clone(),
        image_ref: c.image_ref.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        labels: c.config.labels.clone(),
        annotations: c.config.annotations.clone(),
        mounts: c.config.mounts.clone(),
        log_path,
        image_id: c.image_ref.clone(),
        ..Default::default()
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn version(&self) -> Result<VersionResponse, CriError> {
        let mut st = self.lock();
        st.enter("version", "version", "version".into())?;
        Ok(VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "0.1.0".into(),
            runtime_api_version: CRI_API_VERSION.into(),
        })
    }

    async fn status(&self) -> Result<StatusResponse, CriError> {
        let mut st = self.lock();
        st.enter("status", "status", "status".into())?;
        let cond = |t: &str, ok: bool, reason: &str| RuntimeCondition {
            r#type: t.to_string(),
            status: ok,
            reason: if ok {
                String::new()
            } else {
                reason.to_string()
            },
            message: String::new(),
        };
        Ok(StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![
                    cond(RUNTIME_READY, st.runtime_ready, "RuntimeNotReady"),
                    cond(NETWORK_READY, st.network_ready, "NetworkPluginNotReady"),
                ],
            }),
            ..Default::default()
        })
    }

    async fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String, CriError> {
        const OP: &str = "runpodsandbox";
        let mut st = self.lock();
        st.enter(
            "run_pod_sandbox",
            OP,
            format!("run_pod_sandbox {}", sandbox_name(&config)),
        )?;
        let key = sandbox_key(config.metadata.as_ref());
        if let Some(other) = st
            .sandboxes
            .iter()
            .find(|s| sandbox_key(s.config.metadata.as_ref()) == key)
        {
            return Err(unknown(
                OP,
                format!(
                    "failed to reserve sandbox name {key:?}: name {key:?} is reserved for {:?}",
                    other.id
                ),
            ));
        }
        let host = is_host_network(&config);
        if !host && !st.network_ready {
            return Err(unknown(
                OP,
                "failed to setup network for sandbox: cni plugin not initialized".into(),
            ));
        }
        let ip = if host {
            String::new()
        } else {
            let ip = format!("{}{}", st.ip_prefix, st.next_ip);
            st.next_ip += 1;
            ip
        };
        let id = st.next_id("sandbox");
        let created_at = st.now();
        st.sandboxes.push(FakeSandbox {
            id: id.clone(),
            config,
            ready: true,
            created_at,
            ip,
        });
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        const OP: &str = "stoppodsandbox";
        let mut st = self.lock();
        st.enter("stop_pod_sandbox", OP, format!("stop_pod_sandbox {id}"))?;
        st.sandbox(OP, id)?;
        let ids: Vec<String> = st
            .containers
            .iter()
            .filter(|c| c.sandbox_id == id)
            .map(|c| c.id.clone())
            .collect();
        for c in ids {
            st.stop_container_now(&c);
        }
        if let Some(sb) = st.sandboxes.iter_mut().find(|s| s.id == id) {
            sb.ready = false;
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        const OP: &str = "removepodsandbox";
        let mut st = self.lock();
        st.enter("remove_pod_sandbox", OP, format!("remove_pod_sandbox {id}"))?;
        // containerd 1.6 stops a ready sandbox (and its containers) before removing it.
        st.sandboxes.retain(|s| s.id != id);
        st.containers.retain(|c| c.sandbox_id != id);
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<PodSandboxStatus, CriError> {
        const OP: &str = "podsandboxstatus";
        let mut st = self.lock();
        st.enter("pod_sandbox_status", OP, format!("pod_sandbox_status {id}"))?;
        let sb = st.sandbox(OP, id)?;
        Ok(PodSandboxStatus {
            id: sb.id.clone(),
            metadata: sb.config.metadata.clone(),
            state: sandbox_state(sb) as i32,
            created_at: sb.created_at,
            network: Some(PodSandboxNetworkStatus {
                ip: sb.ip.clone(),
                additional_ips: Vec::new(),
            }),
            linux: None,
            labels: sb.config.labels.clone(),
            annotations: sb.config.annotations.clone(),
            runtime_handler: String::new(),
        })
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<PodSandbox>, CriError> {
        let mut st = self.lock();
        st.enter(
            "list_pod_sandboxes",
            "listpodsandbox",
            "list_pod_sandboxes".into(),
        )?;
        Ok(st.sandboxes.iter().map(sandbox_view).collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        _sandbox_config: PodSandboxConfig,
    ) -> Result<String, CriError> {
        const OP: &str = "createcontainer";
        let mut st = self.lock();
        st.enter(
            "create_container",
            OP,
            format!("create_container {sandbox_id} {}", container_name(&config)),
        )?;
        if st.sandboxes.iter().all(|s| s.id != sandbox_id) {
            return Err(CriError::Call {
                op: OP,
                code: tonic::Code::NotFound,
                message: format!("failed to find sandbox id {sandbox_id:?}: not found"),
            });
        }
        let image = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let image_ref = match st.find_image(&image) {
            Some(i) => i.id.clone(),
            None => {
                return Err(CriError::Call {
                    op: OP,
                    code: tonic::Code::NotFound,
                    message: format!("failed to resolve image {image:?}: not found"),
                })
            }
        };
        let name = container_name(&config);
        let attempt = config.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
        if let Some(other) = st.containers.iter().find(|c| {
            c.sandbox_id == sandbox_id
                && container_name(&c.config) == name
                && c.config.metadata.as_ref().map(|m| m.attempt).unwrap_or(0) == attempt
        }) {
            return Err(unknown(
                OP,
                format!(
                    "failed to reserve container name \"{name}_{attempt}\": name is reserved for {:?}",
                    other.id
                ),
            ));
        }
        let id = st.next_id("container");
        let created_at = st.now();
        st.containers.push(FakeContainer {
            id: id.clone(),
            sandbox_id: sandbox_id.to_string(),
            config,
            state: ContainerState::ContainerCreated,
            created_at,
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image_ref,
        });
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<(), CriError> {
        const OP: &str = "startcontainer";
        let mut st = self.lock();
        st.enter("start_container", OP, format!("start_container {id}"))?;
        let now = st.now();
        let sandbox_id = st.container_mut(OP, id)?.sandbox_id.clone();
        let sandbox_ready = st.sandboxes.iter().any(|s| s.id == sandbox_id && s.ready);
        let c = st.container_mut(OP, id)?;
        if c.state != ContainerState::ContainerCreated {
            return Err(unknown(
                OP,
                format!("container {id:?} is in {} state", c.state.as_str_name()),
            ));
        }
        if !sandbox_ready {
            return Err(unknown(
                OP,
                format!("sandbox container {sandbox_id:?} is not running"),
            ));
        }
        c.state = ContainerState::ContainerRunning;
        c.started_at = now;
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout_secs: i64) -> Result<(), CriError> {
        const OP: &str = "stopcontainer";
        let mut st = self.lock();
        st.enter(
            "stop_container",
            OP,
            format!("stop_container {id} {timeout_secs}"),
        )?;
        st.container_mut(OP, id)?;
        st.stop_container_now(id);
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), CriError> {
        let mut st = self.lock();
        st.enter(
            "remove_container",
            "removecontainer",
            format!("remove_container {id}"),
        )?;
        st.containers.retain(|c| c.id != id);
        st.exec_results.remove(id);
        st.stats.remove(id);
        Ok(())
    }

    async fn list_containers(&self) -> Result<Vec<Container>, CriError> {
        let mut st = self.lock();
        st.enter(
            "list_containers",
            "listcontainers",
            "list_containers".into(),
        )?;
        Ok(st.containers.iter().map(container_view).collect())
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus, CriError> {
        const OP: &str = "containerstatus";
        let mut st = self.lock();
        st.enter("container_status", OP, format!("container_status {id}"))?;
        let c = st
            .containers
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found(OP, "container", id))?;
        let log_dir = st
            .sandboxes
            .iter()
            .find(|s| s.id == c.sandbox_id)
            .map(|s| s.config.log_directory.clone())
            .unwrap_or_default();
        Ok(container_status_view(c, &log_dir))
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        _timeout_secs: i64,
    ) -> Result<ExecSyncResponse, CriError> {
        const OP: &str = "execsync";
        let mut st = self.lock();
        st.enter("exec_sync", OP, format!("exec_sync {id} {}", cmd.join(" ")))?;
        let c = st.container_mut(OP, id)?;
        if c.state != ContainerState::ContainerRunning {
            return Err(unknown(
                OP,
                format!("container {id:?} is in {} state", c.state.as_str_name()),
            ));
        }
        Ok(st.exec_results.get(id).cloned().unwrap_or_default())
    }

    async fn exec(&self, req: ExecRequest) -> Result<String, CriError> {
        const OP: &str = "exec";
        let mut st = self.lock();
        let id = req.container_id.clone();
        st.enter("exec", OP, format!("exec {id} {}", req.cmd.join(" ")))?;
        st.container_mut(OP, &id)?;
        let token = st.next_id("exec");
        Ok(format!("http://127.0.0.1:10010/exec/{token}"))
    }

    async fn attach(&self, req: AttachRequest) -> Result<String, CriError> {
        const OP: &str = "attach";
        let mut st = self.lock();
        let id = req.container_id.clone();
        st.enter("attach", OP, format!("attach {id}"))?;
        st.container_mut(OP, &id)?;
        let token = st.next_id("attach");
        Ok(format!("http://127.0.0.1:10010/attach/{token}"))
    }

    async fn port_forward(&self, req: PortForwardRequest) -> Result<String, CriError> {
        const OP: &str = "portforward";
        let mut st = self.lock();
        let id = req.pod_sandbox_id.clone();
        st.enter("port_forward", OP, format!("port_forward {id}"))?;
        st.sandbox(OP, &id)?;
        let token = st.next_id("portforward");
        Ok(format!("http://127.0.0.1:10010/portforward/{token}"))
    }

    async fn list_container_stats(&self) -> Result<Vec<ContainerStats>, CriError> {
        let mut st = self.lock();
        st.enter(
            "list_container_stats",
            "listcontainerstats",
            "list_container_stats".into(),
        )?;
        let now = st.now();
        let value = |v: u64| Some(UInt64Value { value: v });
        Ok(st
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::ContainerRunning)
            .map(|c| {
                let (cpu, mem) = st.stats.get(&c.id).copied().unwrap_or((0, 0));
                ContainerStats {
                    attributes: Some(ContainerAttributes {
                        id: c.id.clone(),
                        metadata: c.config.metadata.clone(),
                        labels: c.config.labels.clone(),
                        annotations: c.config.annotations.clone(),
                    }),
                    cpu: Some(CpuUsage {
                        timestamp: now,
                        usage_core_nano_seconds: value(cpu),
                        usage_nano_cores: None,
                    }),
                    memory: Some(MemoryUsage {
                        timestamp: now,
                        working_set_bytes: value(mem),
                        usage_bytes: value(mem),
                        ..Default::default()
                    }),
                    writable_layer: Some(FilesystemUsage {
                        timestamp: now,
                        fs_id: Some(FilesystemIdentifier {
                            mountpoint: "/fake/snapshots".into(),
                        }),
                        used_bytes: value(4096),
                        inodes_used: value(1),
                    }),
                    swap: None,
                }
            })
            .collect())
    }

    async fn reopen_container_log(&self, id: &str) -> Result<(), CriError> {
        const OP: &str = "reopencontainerlog";
        let mut st = self.lock();
        st.enter(
            "reopen_container_log",
            OP,
            format!("reopen_container_log {id}"),
        )?;
        let c = st.container_mut(OP, id)?;
        if c.state != ContainerState::ContainerRunning {
            return Err(unknown(OP, format!("container {id:?} is not running")));
        }
        Ok(())
    }

    async fn image_status(&self, image: &str) -> Result<Option<Image>, CriError> {
        let mut st = self.lock();
        st.enter(
            "image_status",
            "imagestatus",
            format!("image_status {image}"),
        )?;
        Ok(st.find_image(image).cloned())
    }

    async fn pull_image(
        &self,
        image: &str,
        _sandbox: Option<PodSandboxConfig>,
    ) -> Result<String, CriError> {
        const OP: &str = "pullimage";
        let mut st = self.lock();
        st.enter("pull_image", OP, format!("pull_image {image}"))?;
        let norm = normalize_image_ref(image);
        if let Some(msg) = st.unpullable.get(&norm) {
            return Err(unknown(
                OP,
                format!("failed to pull and unpack image {norm:?}: {msg}"),
            ));
        }
        Ok(st.add_image(image).id)
    }

    async fn list_images(&self) -> Result<Vec<Image>, CriError> {
        let mut st = self.lock();
        st.enter("list_images", "listimages", "list_images".into())?;
        Ok(st.images.values().cloned().collect())
    }

    async fn remove_image(&self, image: &str) -> Result<(), CriError> {
        let mut st = self.lock();
        st.enter(
            "remove_image",
            "removeimage",
            format!("remove_image {image}"),
        )?;
        let id = st.find_image(image).map(|i| i.id.clone());
        if let Some(id) = id {
            st.images.retain(|_, i| i.id != id);
        }
        Ok(())
    }

    async fn image_fs_info(&self) -> Result<Vec<FilesystemUsage>, CriError> {
        let mut st = self.lock();
        st.enter("image_fs_info", "imagefsinfo", "image_fs_info".into())?;
        let used: u64 = st.images.values().map(|i| i.size).sum();
        Ok(vec![FilesystemUsage {
            timestamp: st.now(),
            fs_id: Some(FilesystemIdentifier {
                mountpoint: "/fake/snapshots".into(),
            }),
            used_bytes: Some(UInt64Value { value: used }),
            inodes_used: Some(UInt64Value {
                value: st.images.len() as u64,
            }),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::{
        ContainerMetadata, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceOption,
    };

    fn container_metadata(name: &str, attempt: u32) -> Option<ContainerMetadata> {
        Some(ContainerMetadata {
            name: name.to_string(),
            attempt,
        })
    }

    fn pod(name: &str, host_network: bool) -> PodSandboxConfig {
        let mut labels = HashMap::new();
        labels.insert("io.kubernetes.pod.name".to_string(), name.to_string());
        let mut annotations = HashMap::new();
        annotations.insert("note".to_string(), "kept".to_string());
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            log_directory: format!("/var/log/pods/default_{name}"),
            labels,
            annotations,
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: if host_network {
                            NamespaceMode::Node as i32
                        } else {
                            NamespaceMode::Pod as i32
                        },
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ctr(name: &str, image: &str, attempt: u32) -> ContainerConfig {
        let mut labels = HashMap::new();
        labels.insert("io.kubernetes.container.name".to_string(), name.to_string());
        ContainerConfig {
            metadata: container_metadata(name, attempt),
            image: image_spec(image),
            log_path: format!("{name}/{attempt}.log"),
            labels,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn fake_sandbox_container_lifecycle() {
        let rt = FakeRuntime::new();
        rt.add_image("busybox:1.35");
        let sb = rt.run_pod_sandbox(pod("web", false)).await.unwrap();
        let st = rt.pod_sandbox_status(&sb).await.unwrap();
        assert_eq!(st.state, PodSandboxState::SandboxReady as i32);
        assert_eq!(st.network.unwrap().ip, "10.42.0.2");
        assert_eq!(st.annotations.get("note").map(String::as_str), Some("kept"));
        assert_eq!(st.metadata.unwrap().name, "web");

        let c = rt
            .create_container(
                &sb,
                ctr("app", "docker.io/library/busybox:1.35", 0),
                pod("web", false),
            )
            .await
            .unwrap();
        let s = rt.container_status(&c).await.unwrap();
        assert_eq!(s.state, ContainerState::ContainerCreated as i32);
        assert_eq!(s.log_path, "/var/log/pods/default_web/app/0.log");
        assert_eq!(
            s.labels
                .get("io.kubernetes.container.name")
                .map(String::as_str),
            Some("app")
        );
        rt.start_container(&c).await.unwrap();
        let s = rt.container_status(&c).await.unwrap();
        assert_eq!(s.state, ContainerState::ContainerRunning as i32);
        assert!(s.started_at > 0);

        // Starting twice is refused, as in containerd.
        assert!(rt.start_container(&c).await.is_err());

        rt.stop_container(&c, 30).await.unwrap();
        let s = rt.container_status(&c).await.unwrap();
        assert_eq!(s.state, ContainerState::ContainerExited as i32);
        assert_eq!(s.exit_code, 137);
        assert_eq!(s.reason, "Error");

        rt.stop_pod_sandbox(&sb).await.unwrap();
        assert_eq!(
            rt.pod_sandbox_status(&sb).await.unwrap().state,
            PodSandboxState::SandboxNotready as i32
        );
        rt.remove_pod_sandbox(&sb).await.unwrap();
        assert!(rt.list_containers().await.unwrap().is_empty());
        assert!(rt.list_pod_sandboxes().await.unwrap().is_empty());
        assert!(rt.container_status(&c).await.unwrap_err().is_not_found());
        assert!(rt.pod_sandbox_status(&sb).await.unwrap_err().is_not_found());
        // Removals of unknown ids succeed (containerd 1.6 behaviour).
        rt.remove_pod_sandbox(&sb).await.unwrap();
        rt.remove_container(&c).await.unwrap();

        let calls = rt.calls();
        assert_eq!(calls[0], "run_pod_sandbox web");
        assert!(calls.contains(&format!("create_container {sb} app")));
        assert!(calls.contains(&format!("stop_container {c} 30")));
        assert_eq!(rt.calls_to("start_container").len(), 2);
    }

    #[tokio::test]
    async fn fake_host_network_gets_no_ip_and_ips_increase() {
        let rt = FakeRuntime::new();
        let h = rt.run_pod_sandbox(pod("host", true)).await.unwrap();
        let a = rt.run_pod_sandbox(pod("a", false)).await.unwrap();
        let b = rt.run_pod_sandbox(pod("b", false)).await.unwrap();
        let ip = |id: String| {
            let rt = rt.clone();
            async move {
                rt.pod_sandbox_status(&id)
                    .await
                    .unwrap()
                    .network
                    .unwrap()
                    .ip
            }
        };
        assert_eq!(ip(h).await, "");
        assert_eq!(ip(a).await, "10.42.0.2");
        assert_eq!(ip(b).await, "10.42.0.3");
        // Same metadata twice is refused.
        let err = rt.run_pod_sandbox(pod("a", false)).await.unwrap_err();
        assert!(
            err.to_string().contains("failed to reserve sandbox name"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn fake_network_not_ready_only_blocks_pod_network() {
        let rt = FakeRuntime::new();
        rt.set_network_ready(false);
        let st = rt.status().await.unwrap().status.unwrap();
        let net = st
            .conditions
            .iter()
            .find(|c| c.r#type == NETWORK_READY)
            .unwrap();
        assert!(!net.status);
        assert!(rt.run_pod_sandbox(pod("p", false)).await.is_err());
        assert!(rt.run_pod_sandbox(pod("h", true)).await.is_ok());
    }

    #[tokio::test]
    async fn fake_exit_container_and_failures() {
        let rt = FakeRuntime::new();
        rt.add_image("localhost/busybox:1.35");
        let sb = rt.run_pod_sandbox(pod("job", false)).await.unwrap();
        let c = rt
            .create_container(
                &sb,
                ctr("main", "localhost/busybox:1.35", 0),
                pod("job", false),
            )
            .await
            .unwrap();
        rt.start_container(&c).await.unwrap();
        assert!(rt.exit_container(&c, 3, ""));
        let s = rt.container_status(&c).await.unwrap();
        assert_eq!(
            (s.state, s.exit_code),
            (ContainerState::ContainerExited as i32, 3)
        );
        assert_eq!(s.reason, "Error");
        assert!(s.finished_at >= s.started_at);
        assert!(rt.exit_container(&c, 137, "OOMKilled"));
        assert_eq!(rt.container_status(&c).await.unwrap().reason, "OOMKilled");
        assert!(!rt.exit_container("nope", 0, ""));

        // Same name and attempt is refused; the next attempt is fine.
        assert!(rt
            .create_container(
                &sb,
                ctr("main", "localhost/busybox:1.35", 0),
                pod("job", false)
            )
            .await
            .is_err());
        let c2 = rt
            .create_container(
                &sb,
                ctr("main", "localhost/busybox:1.35", 1),
                pod("job", false),
            )
            .await
            .unwrap();
        assert_eq!(rt.container_named(&sb, "main").unwrap().id, c2);

        rt.fail_next("start_container", "boom");
        let err = rt.start_container(&c2).await.unwrap_err();
        assert_eq!(err.to_string(), "startcontainer: boom");
        assert!(!err.is_not_found());
        // Only the next call fails.
        rt.start_container(&c2).await.unwrap();

        rt.fail_next_with("container_status", tonic::Code::NotFound, "gone");
        assert!(rt.container_status(&c2).await.unwrap_err().is_not_found());

        // Removing a ready sandbox takes its containers with it.
        rt.remove_pod_sandbox(&sb).await.unwrap();
        assert!(rt.containers().is_empty() && rt.sandboxes().is_empty());
    }

    #[tokio::test]
    async fn fake_images_pull_and_status() {
        let rt = FakeRuntime::new();
        assert!(rt.image_status("busybox").await.unwrap().is_none());
        let id = rt.pull_image("busybox", None).await.unwrap();
        assert!(id.starts_with("sha256:"));
        let img = rt
            .image_status("docker.io/library/busybox:latest")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(img.id, id);
        assert_eq!(img.repo_tags, vec!["docker.io/library/busybox:latest"]);
        // By id too.
        assert!(rt.image_status(&id).await.unwrap().is_some());

        rt.set_unpullable("nope:1", "not found");
        let err = rt.pull_image("nope:1", None).await.unwrap_err();
        assert!(
            err.to_string().starts_with("pullimage: failed to pull"),
            "{err}"
        );

        // Creating from a missing image fails with NotFound.
        let sb = rt.run_pod_sandbox(pod("x", false)).await.unwrap();
        let err = rt
            .create_container(&sb, ctr("c", "other:1", 0), pod("x", false))
            .await
            .unwrap_err();
        assert!(err.is_not_found());

        assert_eq!(rt.list_images().await.unwrap().len(), 1);
        assert_eq!(
            rt.image_fs_info().await.unwrap()[0].used_bytes,
            Some(UInt64Value { value: 1 << 20 })
        );
        rt.remove_image("busybox").await.unwrap();
        assert!(rt.list_images().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn fake_exec_stats_and_sandbox_death() {
        let rt = FakeRuntime::new();
        rt.add_image("busybox");
        rt.set_now(Some(42));
        let sb = rt.run_pod_sandbox(pod("p", false)).await.unwrap();
        let c = rt
            .create_container(&sb, ctr("app", "busybox", 0), pod("p", false))
            .await
            .unwrap();
        // Exec into a container that is not running fails.
        assert!(rt.exec_sync(&c, vec!["true".into()], 1).await.is_err());
        rt.start_container(&c).await.unwrap();
        assert_eq!(
            rt.exec_sync(&c, vec!["true".into()], 1)
                .await
                .unwrap()
                .exit_code,
            0
        );
        rt.set_exec_result(
            &c,
            ExecSyncResponse {
                stdout: b"no".to_vec(),
                stderr: Vec::new(),
                exit_code: 1,
            },
        );
        let r = rt
            .exec_sync(&c, vec!["cat".into(), "/tmp/ready".into()], 1)
            .await
            .unwrap();
        assert_eq!((r.exit_code, r.stdout.as_slice()), (1, &b"no"[..]));
        assert!(rt
            .calls()
            .contains(&format!("exec_sync {c} cat /tmp/ready")));

        rt.set_stats(&c, 5_000, 1 << 20);
        let stats = rt.list_container_stats().await.unwrap();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].attributes.as_ref().unwrap().id, c);
        assert_eq!(
            stats[0].memory.as_ref().unwrap().working_set_bytes,
            Some(UInt64Value { value: 1 << 20 })
        );
        assert_eq!(stats[0].cpu.as_ref().unwrap().timestamp, 42);

        assert!(rt
            .exec(ExecRequest {
                container_id: c.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .starts_with("http://127.0.0.1"));
        assert!(rt
            .port_forward(PortForwardRequest {
                pod_sandbox_id: "nope".into(),
                port: vec![80]
            })
            .await
            .unwrap_err()
            .is_not_found());

        assert!(rt.kill_sandbox(&sb));
        let st = rt.pod_sandbox_status(&sb).await.unwrap();
        assert_eq!(st.state, PodSandboxState::SandboxNotready as i32);
        assert_eq!(
            rt.container_status(&c).await.unwrap().state,
            ContainerState::ContainerExited as i32
        );
        assert!(rt.list_container_stats().await.unwrap().is_empty());
    }

    #[test]
    fn normalize_refs() {
        assert_eq!(
            normalize_image_ref("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize_image_ref("busybox:1.35"),
            "docker.io/library/busybox:1.35"
        );
        assert_eq!(normalize_image_ref("me/app"), "docker.io/me/app:latest");
        assert_eq!(
            normalize_image_ref("localhost/pause:3.6"),
            "localhost/pause:3.6"
        );
        assert_eq!(
            normalize_image_ref("localhost/busybox"),
            "localhost/busybox:latest"
        );
        assert_eq!(
            normalize_image_ref("registry:5000/x/y"),
            "registry:5000/x/y:latest"
        );
        assert_eq!(
            normalize_image_ref("quay.io/a/b@sha256:abc"),
            "quay.io/a/b@sha256:abc"
        );
    }

    #[test]
    fn error_display_and_not_found() {
        let e = CriError::from_status("runpodsandbox", tonic::Status::not_found("no such pod"));
        assert_eq!(e.to_string(), "runpodsandbox: no such pod");
        assert!(e.is_not_found());
        assert_eq!(e.code(), tonic::Code::NotFound);
        let e = CriError::from_status("status", tonic::Status::unavailable("down"));
        assert!(!e.is_not_found());
        assert_eq!(e.message(), "down");
    }

    #[tokio::test]
    async fn grpc_connect_to_missing_socket_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("none.sock");
        let err = GrpcRuntime::connect(&sock).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("connect to cri socket "), "{msg}");
        assert!(msg.contains("none.sock"), "{msg}");
        // A lazy client fails at the call, as Unavailable.
        let lazy = GrpcRuntime::connect_lazy(&sock);
        let err = lazy.version().await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(err.to_string().starts_with("version: "), "{err}");
    }
}
