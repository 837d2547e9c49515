//! The labels and annotations the kubelet puts on CRI sandboxes and containers (the same
//! keys upstream uses), so that the pod a runtime object belongs to, and the spec it was
//! created from, can be recovered after a restart from the runtime alone.

use sha2::Digest;

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Set on containers; value "POD" marks the sandbox in upstream's dockershim days.
pub const CONTAINER_TYPE_LABEL: &str = "io.kubernetes.container.type";

pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
pub const CONTAINER_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const CONTAINER_TERMINATION_MESSAGE_PATH: &str =
    "io.kubernetes.container.terminationMessagePath";
pub const CONTAINER_TERMINATION_MESSAGE_POLICY: &str =
    "io.kubernetes.container.terminationMessagePolicy";
pub const CONTAINER_PRESTOP_HANDLER: &str = "io.kubernetes.container.preStopHandler";
pub const CONTAINER_PORTS: &str = "io.kubernetes.container.ports";
pub const POD_TERMINATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
/// minik8s: "init" for init containers, "app" for regular ones.
pub const CONTAINER_KIND: &str = "io.minik8s.container.kind";

/// A short, stable hash of a container spec: a change means the container must be
/// recreated (upstream hashes the Go struct; this hashes the JSON form).
pub fn container_hash(c: &k8s_openapi::api::core::v1::Container) -> String {
    let json = serde_json::to_vec(c).unwrap_or_default();
    let d = sha2::Sha256::digest(&json);
    d.iter().take(4).map(|b| format!("{b:02x}")).collect()
}
