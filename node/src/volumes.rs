//! Pod volumes: materialises a pod's emptyDir, hostPath, configMap, secret, downwardAPI and
//! projected volumes on the host, the way upstream's pkg/volume plugins do, and tears them
//! down again.
//!
//! Every volume except hostPath lives in `<pod_dir>/volumes/<plugin>/<name>` with upstream's
//! plugin directory names (`kubernetes.io~empty-dir`, `kubernetes.io~configmap`, ...). The
//! caller bind-mounts the returned host paths into containers. Memory-backed volumes (emptyDir
//! with `medium: Memory`, and the tmpfs that upstream wraps around secret, downwardAPI and
//! projected volumes) are mounted through the [`Mounter`] trait.
//!
//! File-backed volumes are written with an atomic writer like upstream's
//! `pkg/volume/util/atomic_writer.go`: the files go to a fresh timestamped directory
//! `..<ts>`, a `..data` symlink is swapped to it with a rename, and the user-visible
//! top-level names are symlinks `name -> ..data/name`. Calling [`setup_volumes`] again (the
//! kubelet's periodic resync) refreshes configMap, secret, downwardAPI and token content in
//! place, removes files that disappeared, and leaves unchanged volumes untouched.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, PodSpec, ResourceFieldSelector,
    Secret, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub const EMPTY_DIR_PLUGIN: &str = "kubernetes.io~empty-dir";
pub const CONFIG_MAP_PLUGIN: &str = "kubernetes.io~configmap";
pub const SECRET_PLUGIN: &str = "kubernetes.io~secret";
pub const PROJECTED_PLUGIN: &str = "kubernetes.io~projected";
pub const DOWNWARD_API_PLUGIN: &str = "kubernetes.io~downward-api";

/// The directory under the pod directory that holds all volumes.
pub const VOLUMES_DIR: &str = "volumes";

/// Default file modes, as the API server defaults them (0644 for all four sources).
pub const CONFIG_MAP_DEFAULT_MODE: u32 = 0o644;
pub const SECRET_DEFAULT_MODE: u32 = 0o644;
pub const DOWNWARD_API_DEFAULT_MODE: u32 = 0o644;
pub const PROJECTED_DEFAULT_MODE: u32 = 0o644;
/// Default lifetime of a projected service account token (API defaulting).
pub const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;

const EMPTY_DIR_PERM: u32 = 0o777;
const DATA_DIR_NAME: &str = "..data";
const NEW_DATA_DIR_NAME: &str = "..data_tmp";
const MAX_FILE_NAME_LENGTH: usize = 255;
const MAX_PATH_LENGTH: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// One volume of the pod failed; the message is upstream's kubelet event text.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
    SetUp {
        volume: String,
        #[source]
        source: Box<VolumeError>,
    },
    /// The [`ObjectSource`] could not fetch an object or a token.
    #[error("{0}")]
    Fetch(String),
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("configmap references non-existent config key: {0}")]
    ConfigMapKey(String),
    #[error("references non-existent secret key: {0}")]
    SecretKey(String),
    #[error("invalid HostPath `{0}`: must not contain '..'")]
    HostPathBacksteps(String),
    #[error("hostPath {0} doesn't exist")]
    HostPathMissing(String),
    #[error("hostPath type check failed: {path} is not a {expected}, it's a {actual}")]
    HostPathType {
        path: String,
        expected: &'static str,
        actual: &'static str,
    },
    #[error("hostPath type check failed, {path} is not a {expected}, unable to determine its type: only recognise file, directory, socket, block device and character device")]
    HostPathUnknownType {
        path: String,
        expected: &'static str,
    },
    #[error("{0} is an invalid volume type")]
    HostPathInvalidType(String),
    #[error("unsupported fieldPath: {0}")]
    FieldPath(String),
    #[error("fieldPath \"{0}\" does not support subscript")]
    FieldPathSubscript(String),
    #[error("container {0} not found")]
    ResourceContainer(String),
    #[error("unsupported container resource : {0}")]
    ResourceName(String),
    #[error("invalid quantity {0:?}")]
    Quantity(String),
    #[error("{0}")]
    InvalidPayloadPath(String),
    #[error("emptyDir medium {0:?} is not supported")]
    EmptyDirMedium(String),
    #[error("{0} volumes are not supported")]
    Unsupported(String),
    #[error("clusterTrustBundle projections are not supported")]
    ClusterTrustBundle,
    /// Several errors of one volume, formatted like upstream's aggregate errors.
    #[error("[{}]", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "))]
    Aggregate(Vec<VolumeError>),
    #[error("mount tmpfs on {path}: {source}")]
    MountTmpfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unmount {path}: {source}")]
    Unmount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is still mounted after unmount")]
    StillMounted { path: PathBuf },
    #[error("check mount point {path}: {source}")]
    MountPointCheck {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Where the kubelet gets the API objects that volumes project. The kubelet implements it
/// over the API server (with its own caching: a token should only be re-requested when the
/// cached one nears expiry, or every resync rewrites the token file).
#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// `Ok(None)` when the ConfigMap does not exist.
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, VolumeError>;
    /// `Ok(None)` when the Secret does not exist.
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, VolumeError>;
    /// A TokenRequest for `service_account`, bound to the pod. Empty `audiences` means the
    /// API server's default audiences.
    async fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: Vec<String>,
        expiration_seconds: i64,
        pod_name: &str,
        pod_uid: &str,
    ) -> Result<String, VolumeError>;
}

/// Mount side effects of volumes.
pub trait Mounter: Send + Sync {
    /// Mounts a tmpfs on `target` (with `size=<bytes>` when given).
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> io::Result<()>;
    /// Detaches the mount on `target`.
    fn unmount(&self, target: &Path) -> io::Result<()>;
    /// Whether `p` is itself a mount point; `Ok(false)` when it does not exist.
    fn is_mount_point(&self, p: &Path) -> io::Result<bool>;
}

/// The real mounter: mount(2) and umount2(2) with MNT_DETACH, mount points read from
/// /proc/self/mountinfo.
#[derive(Debug, Default, Clone, Copy)]
pub struct SysMounter;

fn c_path(p: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl Mounter for SysMounter {
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> io::Result<()> {
        let target_c = c_path(target)?;
        let source = c"tmpfs";
        let data = size_bytes.map(|s| format!("size={s}"));
        let data_c = data
            .map(std::ffi::CString::new)
            .transpose()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let data_ptr = data_c
            .as_ref()
            .map_or(std::ptr::null(), |d| d.as_ptr() as *const libc::c_void);
        // SAFETY: all pointers are valid NUL-terminated strings (or null for data) that
        // outlive the call.
        let rc = unsafe {
            libc::mount(
                source.as_ptr(),
                target_c.as_ptr(),
                source.as_ptr(),
                0,
                data_ptr,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        let target_c = c_path(target)?;
        // SAFETY: target_c is a valid NUL-terminated string.
        let rc = unsafe { libc::umount2(target_c.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn is_mount_point(&self, p: &Path) -> io::Result<bool> {
        let real = match fs::canonicalize(p) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let info = fs::read_to_string("/proc/self/mountinfo")?;
        let found = mountinfo_mount_points(&info).any(|m| m == real);
        Ok(found)
    }
}

/// The mount points (5th field, octal escapes decoded) of a mountinfo text.
fn mountinfo_mount_points(info: &str) -> impl Iterator<Item = PathBuf> + '_ {
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_octal(m)))
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One call recorded by [`FakeMounter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountCall {
    Tmpfs { target: PathBuf, size: Option<u64> },
    Unmount { target: PathBuf },
}

/// A mounter that records calls and tracks which paths are "mounted".
#[derive(Debug, Default)]
pub struct FakeMounter {
    pub calls: Mutex<Vec<MountCall>>,
    pub mounted: Mutex<BTreeSet<PathBuf>>,
}

impl FakeMounter {
    pub fn calls(&self) -> Vec<MountCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Mounter for FakeMounter {
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> io::Result<()> {
        if let Ok(mut c) = self.calls.lock() {
            c.push(MountCall::Tmpfs {
                target: target.to_path_buf(),
                size: size_bytes,
            });
        }
        if let Ok(mut m) = self.mounted.lock() {
            m.insert(target.to_path_buf());
        }
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        if let Ok(mut c) = self.calls.lock() {
            c.push(MountCall::Unmount {
                target: target.to_path_buf(),
            });
        }
        let removed = self
            .mounted
            .lock()
            .map(|mut m| m.remove(target))
            .unwrap_or(false);
        if removed {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        }
    }

    fn is_mount_point(&self, p: &Path) -> io::Result<bool> {
        Ok(self.mounted.lock().map(|m| m.contains(p)).unwrap_or(false))
    }
}

/// What volumes need to know about the node.
#[derive(Debug, Clone, Default)]
pub struct NodeInfoForVolumes {
    pub node_name: String,
    pub host_ip: String,
    /// The node's allocatable resources (as in `Node.status.allocatable`): the value of unset
    /// container limits in downward API `resourceFieldRef`s, and the cap for memory-backed
    /// volume sizes.
    pub allocatable: BTreeMap<String, Quantity>,
}

/// Where a volume is on the host, for the caller to bind-mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMountSource {
    pub host_path: PathBuf,
    /// The volume must be mounted read-only whatever the volumeMount says (configMap,
    /// secret, downwardAPI and projected volumes, as upstream).
    pub read_only: bool,
}

/// The directory of a volume: `<pod_dir>/volumes/<plugin>/<name>`.
pub fn volume_dir(pod_dir: &Path, plugin: &str, name: &str) -> PathBuf {
    pod_dir.join(VOLUMES_DIR).join(plugin).join(name)
}

/// Sets up (or refreshes) all volumes of `pod` and returns where each one is on the host.
/// Every volume is attempted; the first failure is returned as a
/// [`VolumeError::SetUp`] naming the volume.
pub async fn setup_volumes(
    pod_dir: &Path,
    pod: &Pod,
    node: &NodeInfoForVolumes,
    src: &dyn ObjectSource,
    mounter: &dyn Mounter,
) -> Result<BTreeMap<String, VolumeMountSource>, VolumeError> {
    let mut out = BTreeMap::new();
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(out);
    };
    let mut first_err = None;
    for vol in spec.volumes.iter().flatten() {
        match setup_volume(pod_dir, pod, spec, vol, node, src, mounter).await {
            Ok(m) => {
                out.insert(vol.name.clone(), m);
            }
            Err(e) => {
                tracing::warn!(volume = %vol.name, error = %e, "volume setup failed");
                if first_err.is_none() {
                    first_err = Some(VolumeError::SetUp {
                        volume: vol.name.clone(),
                        source: Box::new(e),
                    });
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

struct Ctx<'a> {
    pod: &'a Pod,
    spec: &'a PodSpec,
    namespace: &'a str,
    node: &'a NodeInfoForVolumes,
    src: &'a dyn ObjectSource,
    mounter: &'a dyn Mounter,
    fs_group: Option<i64>,
}

async fn setup_volume(
    pod_dir: &Path,
    pod: &Pod,
    spec: &PodSpec,
    vol: &Volume,
    node: &NodeInfoForVolumes,
    src: &dyn ObjectSource,
    mounter: &dyn Mounter,
) -> Result<VolumeMountSource, VolumeError> {
    let ctx = Ctx {
        pod,
        spec,
        namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
        node,
        src,
        mounter,
        fs_group: spec.security_context.as_ref().and_then(|s| s.fs_group),
    };
    let rw = |host_path: PathBuf| VolumeMountSource {
        host_path,
        read_only: false,
    };
    let ro = |host_path: PathBuf| VolumeMountSource {
        host_path,
        read_only: true,
    };
    if let Some(ed) = &vol.empty_dir {
        let dir = volume_dir(pod_dir, EMPTY_DIR_PLUGIN, &vol.name);
        let medium = ed.medium.as_deref().unwrap_or("");
        let size_limit = ed
            .size_limit
            .as_ref()
            .map(|q| quantity_value(&q.0))
            .transpose()?;
        match medium {
            "" => setup_disk_dir(&dir, ctx.fs_group)?,
            "Memory" => setup_tmpfs_dir(&ctx, &dir, size_limit)?,
            other => return Err(VolumeError::EmptyDirMedium(other.to_string())),
        }
        return Ok(rw(dir));
    }
    if let Some(hp) = &vol.host_path {
        setup_host_path(&hp.path, hp.type_.as_deref().unwrap_or(""))?;
        return Ok(rw(PathBuf::from(&hp.path)));
    }
    if let Some(cm) = &vol.config_map {
        let dir = volume_dir(pod_dir, CONFIG_MAP_PLUGIN, &vol.name);
        setup_disk_dir(&dir, ctx.fs_group)?;
        let optional = cm.optional.unwrap_or(false);
        let object = fetch_config_map(&ctx, &cm.name, optional).await?;
        let mode = mode_or(cm.default_mode, CONFIG_MAP_DEFAULT_MODE);
        let payload = config_map_payload(cm.items.as_deref(), &object, mode, optional)?;
        write_volume(&dir, &payload, ctx.fs_group)?;
        return Ok(ro(dir));
    }
    if let Some(s) = &vol.secret {
        let dir = volume_dir(pod_dir, SECRET_PLUGIN, &vol.name);
        setup_tmpfs_dir(&ctx, &dir, None)?;
        let optional = s.optional.unwrap_or(false);
        let name = s.secret_name.as_deref().unwrap_or("");
        let object = fetch_secret(&ctx, name, optional).await?;
        let mode = mode_or(s.default_mode, SECRET_DEFAULT_MODE);
        let payload = secret_payload(s.items.as_deref(), &object, mode, optional)?;
        write_volume(&dir, &payload, ctx.fs_group)?;
        return Ok(ro(dir));
    }
    if let Some(d) = &vol.downward_api {
        let dir = volume_dir(pod_dir, DOWNWARD_API_PLUGIN, &vol.name);
        setup_tmpfs_dir(&ctx, &dir, None)?;
        let mode = mode_or(d.default_mode, DOWNWARD_API_DEFAULT_MODE);
        let payload = downward_api_payload(d.items.as_deref().unwrap_or(&[]), &ctx, mode)?;
        write_volume(&dir, &payload, ctx.fs_group)?;
        return Ok(ro(dir));
    }
    if let Some(p) = &vol.projected {
        let dir = volume_dir(pod_dir, PROJECTED_PLUGIN, &vol.name);
        setup_tmpfs_dir(&ctx, &dir, None)?;
        let mode = mode_or(p.default_mode, PROJECTED_DEFAULT_MODE);
        let payload = projected_payload(p.sources.as_deref().unwrap_or(&[]), &ctx, mode).await?;
        write_volume(&dir, &payload, ctx.fs_group)?;
        return Ok(ro(dir));
    }
    Err(VolumeError::Unsupported(volume_kind(vol)))
}

/// The JSON name of the (first) source set on a volume, e.g. "persistentVolumeClaim".
fn volume_kind(vol: &Volume) -> String {
    serde_json::to_value(vol)
        .ok()
        .and_then(|v| {
            v.as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        })
        .unwrap_or_else(|| "empty".to_string())
}

fn mode_or(mode: Option<i32>, default: u32) -> u32 {
    mode.map(|m| (m as u32) & 0o7777).unwrap_or(default)
}

/// upstream emptyDir's setupDir: create the directory with mode 0777 (chmod past the umask).
/// Returns whether the directory was created now.
fn ensure_dir_0777(dir: &Path) -> Result<bool, VolumeError> {
    let created = !dir.exists();
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let meta = fs::symlink_metadata(dir).map_err(io_err("stat", dir))?;
    if meta.mode() & 0o777 != EMPTY_DIR_PERM {
        let perm = fs::Permissions::from_mode((meta.mode() & 0o7000) | EMPTY_DIR_PERM);
        fs::set_permissions(dir, perm).map_err(io_err("chmod", dir))?;
    }
    Ok(created)
}

/// A disk-backed emptyDir (also the wrapper of configMap volumes).
fn setup_disk_dir(dir: &Path, fs_group: Option<i64>) -> Result<(), VolumeError> {
    if ensure_dir_0777(dir)? {
        set_volume_ownership(dir, fs_group, false)?;
    }
    Ok(())
}

/// A memory-backed emptyDir (also the wrapper of secret, downwardAPI and projected volumes):
/// a 0777 directory with a tmpfs on it, sized like upstream's calculateEmptyDirMemorySize.
fn setup_tmpfs_dir(ctx: &Ctx<'_>, dir: &Path, size_limit: Option<i64>) -> Result<(), VolumeError> {
    ensure_dir_0777(dir)?;
    let mounted =
        ctx.mounter
            .is_mount_point(dir)
            .map_err(|source| VolumeError::MountPointCheck {
                path: dir.to_path_buf(),
                source,
            })?;
    if mounted {
        return Ok(());
    }
    let node_mem = ctx
        .node
        .allocatable
        .get("memory")
        .and_then(|q| quantity_value(&q.0).ok());
    let size = memory_volume_size(node_mem, pod_memory_limit(ctx.spec)?, size_limit);
    ctx.mounter
        .mount_tmpfs(dir, size.map(|s| s as u64))
        .map_err(|source| VolumeError::MountTmpfs {
            path: dir.to_path_buf(),
            source,
        })?;
    set_volume_ownership(dir, ctx.fs_group, false)
}

/// upstream calculateEmptyDirMemorySize: node allocatable memory, lowered to the pod's memory
/// limit, lowered to the volume's sizeLimit (each only when positive and not larger).
fn memory_volume_size(
    node_allocatable: Option<i64>,
    pod_limit: Option<i64>,
    size_limit: Option<i64>,
) -> Option<i64> {
    let mut size = node_allocatable.filter(|s| *s > 0);
    for candidate in [pod_limit, size_limit].into_iter().flatten() {
        if candidate > 0 && size.is_none_or(|s| candidate <= s) {
            size = Some(candidate);
        }
    }
    size
}

/// The pod's memory limit as the pod cgroup would get it: only when every container has one;
/// the larger of (app containers + sidecars) and any regular init container, plus overhead.
fn pod_memory_limit(spec: &PodSpec) -> Result<Option<i64>, VolumeError> {
    let limit = |c: &Container| -> Result<Option<i64>, VolumeError> {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .map(|q| quantity_value(&q.0))
            .transpose()
    };
    let mut sum = 0i64;
    let mut init_max = 0i64;
    for c in &spec.containers {
        match limit(c)? {
            Some(v) => sum = sum.saturating_add(v),
            None => return Ok(None),
        }
    }
    for c in spec.init_containers.iter().flatten() {
        let Some(v) = limit(c)? else {
            return Ok(None);
        };
        if c.restart_policy.as_deref() == Some("Always") {
            sum = sum.saturating_add(v);
        } else {
            init_max = init_max.max(v);
        }
    }
    let mut total = sum.max(init_max);
    if let Some(o) = spec.overhead.as_ref().and_then(|o| o.get("memory")) {
        total = total.saturating_add(quantity_value(&o.0)?);
    }
    Ok(Some(total))
}

/// upstream SetVolumeOwnership: with an fsGroup, every entry under `dir` gets group fsGroup
/// and group permissions (rw, or r when read-only; directories also setgid and x); symlinks
/// are only chowned.
fn set_volume_ownership(
    dir: &Path,
    fs_group: Option<i64>,
    read_only: bool,
) -> Result<(), VolumeError> {
    let Some(gid) = fs_group else {
        return Ok(());
    };
    let mask = if read_only { 0o440 } else { 0o660 };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = fs::symlink_metadata(&p).map_err(io_err("stat", &p))?;
        if let Err(e) = std::os::unix::fs::lchown(&p, None, Some(gid as u32)) {
            tracing::warn!(path = %p.display(), error = %e, "lchown failed");
        }
        if meta.file_type().is_symlink() {
            continue;
        }
        let mut m = mask;
        if meta.is_dir() {
            m |= 0o2000 | 0o110;
            for entry in fs::read_dir(&p).map_err(io_err("read directory", &p))? {
                let entry = entry.map_err(io_err("read directory", &p))?;
                stack.push(entry.path());
            }
        }
        let perm = fs::Permissions::from_mode((meta.mode() & 0o7777) | m);
        if let Err(e) = fs::set_permissions(&p, perm) {
            tracing::warn!(path = %p.display(), error = %e, "chmod failed");
        }
    }
    Ok(())
}

/// Writes a payload with the atomic writer, applying fsGroup ownership (read-only masks)
/// before the new data becomes visible.
fn write_volume(
    dir: &Path,
    payload: &BTreeMap<String, FileProjection>,
    fs_group: Option<i64>,
) -> Result<bool, VolumeError> {
    let set_perms = || set_volume_ownership(dir, fs_group, true);
    AtomicWriter::new(dir).write(payload, &set_perms)
}

fn setup_host_path(path: &str, type_: &str) -> Result<(), VolumeError> {
    if Path::new(path)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(VolumeError::HostPathBacksteps(path.to_string()));
    }
    let p = Path::new(path);
    let exists = p.exists();
    let check = |expected_type: &'static str, description: &'static str| {
        let meta = fs::metadata(p).map_err(|_| VolumeError::HostPathMissing(path.to_string()))?;
        match file_type_name(&meta) {
            Some(t) if t == expected_type => Ok(()),
            Some(t) => Err(VolumeError::HostPathType {
                path: path.to_string(),
                expected: description,
                actual: t,
            }),
            None => Err(VolumeError::HostPathUnknownType {
                path: path.to_string(),
                expected: description,
            }),
        }
    };
    match type_ {
        "" => Ok(()),
        "DirectoryOrCreate" if !exists => {
            let mut b = fs::DirBuilder::new();
            b.recursive(true).mode(0o755);
            b.create(p).map_err(io_err("create directory", p))
        }
        "DirectoryOrCreate" | "Directory" => check("Directory", "directory"),
        "FileOrCreate" if !exists => fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(p)
            .map(|_| ())
            .map_err(io_err("create file", p)),
        "FileOrCreate" | "File" => check("File", "file"),
        "Socket" => check("Socket", "socket file"),
        "CharDevice" => check("CharDevice", "character device"),
        "BlockDevice" => check("BlockDevice", "block device"),
        other => Err(VolumeError::HostPathInvalidType(other.to_string())),
    }
}

/// upstream hostutil GetFileType names.
fn file_type_name(meta: &fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_socket() {
        Some("Socket")
    } else if t.is_block_device() {
        Some("BlockDevice")
    } else if t.is_char_device() {
        Some("CharDevice")
    } else if t.is_dir() {
        Some("Directory")
    } else if t.is_file() {
        Some("File")
    } else {
        None
    }
}

async fn fetch_config_map(
    ctx: &Ctx<'_>,
    name: &str,
    optional: bool,
) -> Result<ConfigMap, VolumeError> {
    match ctx.src.config_map(ctx.namespace, name).await? {
        Some(cm) => Ok(cm),
        None if optional => Ok(ConfigMap::default()),
        None => Err(VolumeError::ConfigMapNotFound(name.to_string())),
    }
}

async fn fetch_secret(ctx: &Ctx<'_>, name: &str, optional: bool) -> Result<Secret, VolumeError> {
    match ctx.src.secret(ctx.namespace, name).await? {
        Some(s) => Ok(s),
        None if optional => Ok(Secret::default()),
        None => Err(VolumeError::SecretNotFound(name.to_string())),
    }
}

/// One file of a volume payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// upstream configmap.MakePayload: all keys (data and binaryData) or the listed items.
pub fn config_map_payload(
    items: Option<&[KeyToPath]>,
    cm: &ConfigMap,
    default_mode: u32,
    optional: bool,
) -> Result<BTreeMap<String, FileProjection>, VolumeError> {
    let mut all: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (k, v) in cm.data.iter().flatten() {
        all.insert(k, v.as_bytes());
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        all.entry(k).or_insert(&v.0);
    }
    key_payload(
        items,
        &all,
        default_mode,
        optional,
        VolumeError::ConfigMapKey,
    )
}

/// upstream secret.MakePayload: all keys or the listed items. `stringData` is merged in case
/// the object did not go through the API server's conversion.
pub fn secret_payload(
    items: Option<&[KeyToPath]>,
    secret: &Secret,
    default_mode: u32,
    optional: bool,
) -> Result<BTreeMap<String, FileProjection>, VolumeError> {
    let mut all: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        all.insert(k, &v.0);
    }
    for (k, v) in secret.string_data.iter().flatten() {
        all.insert(k, v.as_bytes());
    }
    key_payload(items, &all, default_mode, optional, VolumeError::SecretKey)
}

fn key_payload(
    items: Option<&[KeyToPath]>,
    all: &BTreeMap<&str, &[u8]>,
    default_mode: u32,
    optional: bool,
    missing: fn(String) -> VolumeError,
) -> Result<BTreeMap<String, FileProjection>, VolumeError> {
    let mut payload = BTreeMap::new();
    match items {
        Some(items) if !items.is_empty() => {
            for ktp in items {
                let Some(data) = all.get(ktp.key.as_str()) else {
                    if optional {
                        continue;
                    }
                    return Err(missing(ktp.key.clone()));
                };
                payload.insert(
                    ktp.path.clone(),
                    FileProjection {
                        data: data.to_vec(),
                        mode: mode_or(ktp.mode, default_mode),
                    },
                );
            }
        }
        _ => {
            for (k, data) in all {
                payload.insert(
                    k.to_string(),
                    FileProjection {
                        data: data.to_vec(),
                        mode: default_mode,
                    },
                );
            }
        }
    }
    Ok(payload)
}

/// upstream downwardapi.CollectData.
fn downward_api_payload(
    items: &[DownwardAPIVolumeFile],
    ctx: &Ctx<'_>,
    default_mode: u32,
) -> Result<BTreeMap<String, FileProjection>, VolumeError> {
    let mut payload = BTreeMap::new();
    let mut errs = Vec::new();
    for item in items {
        let mut data = Vec::new();
        if let Some(f) = &item.field_ref {
            match extract_field_path(ctx.pod, &f.field_path) {
                Ok(v) => data = v.into_bytes(),
                Err(e) => errs.push(e),
            }
        } else if let Some(r) = &item.resource_field_ref {
            match extract_resource_value(r, ctx.spec, &ctx.node.allocatable) {
                Ok(v) => data = v.into_bytes(),
                Err(e) => errs.push(e),
            }
        }
        payload.insert(
            clean_path(&item.path),
            FileProjection {
                data,
                mode: mode_or(item.mode, default_mode),
            },
        );
    }
    aggregate(errs)?;
    Ok(payload)
}

fn aggregate(mut errs: Vec<VolumeError>) -> Result<(), VolumeError> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(errs.remove(0)),
        _ => Err(VolumeError::Aggregate(errs)),
    }
}

/// upstream projected collectData.
async fn projected_payload(
    sources: &[k8s_openapi::api::core::v1::VolumeProjection],
    ctx: &Ctx<'_>,
    default_mode: u32,
) -> Result<BTreeMap<String, FileProjection>, VolumeError> {
    let mut payload = BTreeMap::new();
    let mut errs = Vec::new();
    for source in sources {
        if let Some(cm) = &source.config_map {
            let optional = cm.optional.unwrap_or(false);
            let object = match fetch_config_map(ctx, &cm.name, optional).await {
                Ok(o) => o,
                Err(e) => {
                    errs.push(e);
                    continue;
                }
            };
            match config_map_payload(cm.items.as_deref(), &object, default_mode, optional) {
                Ok(p) => payload.extend(p),
                Err(e) => errs.push(e),
            }
        } else if let Some(s) = &source.secret {
            let optional = s.optional.unwrap_or(false);
            let object = match fetch_secret(ctx, &s.name, optional).await {
                Ok(o) => o,
                Err(e) => {
                    errs.push(e);
                    continue;
                }
            };
            match secret_payload(s.items.as_deref(), &object, default_mode, optional) {
                Ok(p) => payload.extend(p),
                Err(e) => errs.push(e),
            }
        } else if let Some(d) = &source.downward_api {
            match downward_api_payload(d.items.as_deref().unwrap_or(&[]), ctx, default_mode) {
                Ok(p) => payload.extend(p),
                Err(e) => errs.push(e),
            }
        } else if let Some(t) = &source.service_account_token {
            // With an fsGroup the token starts at 0600 and ownership makes it 0640.
            let mode = if ctx.fs_group.is_some() {
                0o600
            } else {
                default_mode
            };
            let audiences = t
                .audience
                .iter()
                .filter(|a| !a.is_empty())
                .cloned()
                .collect();
            let sa = ctx
                .spec
                .service_account_name
                .as_deref()
                .or(ctx.spec.service_account.as_deref())
                .filter(|s| !s.is_empty())
                .unwrap_or("default");
            let token = ctx
                .src
                .service_account_token(
                    ctx.namespace,
                    sa,
                    audiences,
                    t.expiration_seconds
                        .unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS),
                    ctx.pod.metadata.name.as_deref().unwrap_or(""),
                    ctx.pod.metadata.uid.as_deref().unwrap_or(""),
                )
                .await;
            match token {
                Ok(tok) => {
                    payload.insert(
                        t.path.clone(),
                        FileProjection {
                            data: tok.into_bytes(),
                            mode,
                        },
                    );
                }
                Err(e) => errs.push(e),
            }
        } else if source.cluster_trust_bundle.is_some() {
            errs.push(VolumeError::ClusterTrustBundle);
        }
    }
    aggregate(errs)?;
    Ok(payload)
}

/// upstream fieldpath.ExtractFieldPathAsString for the paths downward API volumes allow.
pub fn extract_field_path(pod: &Pod, field_path: &str) -> Result<String, VolumeError> {
    let meta = &pod.metadata;
    if let Some((path, key)) = split_subscript(field_path) {
        return match path {
            "metadata.annotations" => Ok(meta
                .annotations
                .as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default()),
            "metadata.labels" => Ok(meta
                .labels
                .as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default()),
            _ => Err(VolumeError::FieldPathSubscript(field_path.to_string())),
        };
    }
    match field_path {
        "metadata.annotations" => Ok(format_map(meta.annotations.as_ref())),
        "metadata.labels" => Ok(format_map(meta.labels.as_ref())),
        "metadata.name" => Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Ok(meta.uid.clone().unwrap_or_default()),
        _ => Err(VolumeError::FieldPath(field_path.to_string())),
    }
}

/// `metadata.labels['key']` -> ("metadata.labels", "key").
fn split_subscript(field_path: &str) -> Option<(&str, &str)> {
    let s = field_path.strip_suffix("']")?;
    let (path, key) = s.split_once("['")?;
    if path.is_empty() {
        return None;
    }
    Some((path, key))
}

/// upstream fieldpath.FormatMap: `key="value"` lines (Go %q quoting), sorted by key, joined
/// with newlines, no trailing newline.
pub fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's strconv.Quote (what fmt's %q does with a string).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if go_is_print(c) => out.push(c),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's unicode.IsPrint: no controls, no spaces other than ' ', no
/// format characters.
fn go_is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
        | 0x202a..=0x202e | 0x2060..=0x206f | 0xfeff | 0xfff9..=0xfffb
        | 0xe000..=0xf8ff | 0xf0000..=0x10ffff)
}

/// upstream ExtractResourceValueByContainerNameAndNodeAllocatable.
pub fn extract_resource_value(
    sel: &ResourceFieldSelector,
    spec: &PodSpec,
    allocatable: &BTreeMap<String, Quantity>,
) -> Result<String, VolumeError> {
    let name = sel.container_name.as_deref().unwrap_or("");
    let container = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .ok_or_else(|| VolumeError::ResourceContainer(name.to_string()))?;
    let res = container.resources.as_ref();
    let mut limits = res.and_then(|r| r.limits.clone()).unwrap_or_default();
    let mut requests = res.and_then(|r| r.requests.clone()).unwrap_or_default();
    // API defaulting: a request defaults to the limit.
    for (k, v) in &limits {
        requests.entry(k.clone()).or_insert_with(|| v.clone());
    }
    // MergeContainerResourceLimits: unset or zero limits become the node allocatable.
    for r in ["cpu", "memory", "ephemeral-storage"] {
        let unset = match limits.get(r) {
            None => true,
            Some(q) => quantity_nanos(&q.0).map(|n| n == 0).unwrap_or(false),
        };
        if unset {
            if let Some(a) = allocatable.get(r) {
                limits.insert(r.to_string(), a.clone());
            }
        }
    }
    let divisor = match &sel.divisor {
        Some(q) => {
            let n = quantity_nanos(&q.0).ok_or_else(|| VolumeError::Quantity(q.0.clone()))?;
            if n == 0 {
                NANOS
            } else {
                n
            }
        }
        None => NANOS,
    };
    let (list, resource) = if let Some(r) = sel.resource.strip_prefix("limits.") {
        (&limits, r)
    } else if let Some(r) = sel.resource.strip_prefix("requests.") {
        (&requests, r)
    } else {
        return Err(VolumeError::ResourceName(sel.resource.clone()));
    };
    let value = match list.get(resource) {
        Some(q) => quantity_nanos(&q.0).ok_or_else(|| VolumeError::Quantity(q.0.clone()))?,
        None => 0,
    };
    let out = match resource {
        "cpu" => div_ceil(ceil_div(value, 1_000_000), ceil_div(divisor, 1_000_000)),
        "memory" | "ephemeral-storage" => {
            div_ceil(ceil_div(value, NANOS), ceil_div(divisor, NANOS))
        }
        r if r.starts_with("hugepages-") => {
            div_ceil(ceil_div(value, NANOS), ceil_div(divisor, NANOS))
        }
        _ => return Err(VolumeError::ResourceName(sel.resource.clone())),
    };
    Ok(out.to_string())
}

fn div_ceil(a: i128, b: i128) -> i128 {
    if b == 0 {
        return 0;
    }
    ceil_div(a, b)
}

const NANOS: i128 = 1_000_000_000;

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && ((a < 0) == (b < 0)) {
        q + 1
    } else {
        q
    }
}

/// Parses a Kubernetes resource quantity ("100m", "1.5Gi", "2e3", "512") into nano-units,
/// rounding any finer fraction up like upstream. `None` when it is not a valid quantity or
/// overflows.
pub fn quantity_nanos(s: &str) -> Option<i128> {
    crate::quantity::Quantity::parse(s).ok().map(|q| q.nanos())
}

/// A quantity's integer value (upstream Quantity.Value(): rounded up).
pub fn quantity_value(s: &str) -> Result<i64, VolumeError> {
    let n = quantity_nanos(s).ok_or_else(|| VolumeError::Quantity(s.to_string()))?;
    i64::try_from(ceil_div(n, NANOS)).map_err(|_| VolumeError::Quantity(s.to_string()))
}

/// Go's path.Clean for the relative paths of payloads.
fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// upstream validatePath for payload paths.
fn validate_payload_path(p: &str) -> Result<(), VolumeError> {
    let bad = |m: String| Err(VolumeError::InvalidPayloadPath(m));
    if p.is_empty() {
        return bad(format!("invalid path: must not be empty: {p:?}"));
    }
    if p.starts_with('/') {
        return bad(format!("invalid path: must be relative path: {p}"));
    }
    if p.len() > MAX_PATH_LENGTH {
        return bad(format!(
            "invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters"
        ));
    }
    let items: Vec<&str> = p.split('/').collect();
    for item in &items {
        if *item == ".." {
            return bad(format!("invalid path: must not contain '..': {p}"));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return bad(format!(
                "invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
            ));
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return bad(format!("invalid path: must not start with '..': {p}"));
    }
    Ok(())
}

/// Atomically projects a set of files into a target directory (upstream AtomicWriter).
/// Names starting with `..` are reserved for the writer; it must not run concurrently on
/// the same directory.
pub struct AtomicWriter<'a> {
    target: &'a Path,
}

static TS_COUNTER: AtomicU64 = AtomicU64::new(0);

impl<'a> AtomicWriter<'a> {
    pub fn new(target: &'a Path) -> Self {
        AtomicWriter { target }
    }

    /// Writes `payload` (relative path -> file). `set_perms` runs after the new timestamped
    /// directory is written and before it becomes visible. Returns whether anything changed.
    pub fn write(
        &self,
        payload: &BTreeMap<String, FileProjection>,
        set_perms: &dyn Fn() -> Result<(), VolumeError>,
    ) -> Result<bool, VolumeError> {
        let mut clean = BTreeMap::new();
        for (k, v) in payload {
            validate_payload_path(k)?;
            clean.insert(clean_path(k), v);
        }
        let data_dir = self.target.join(DATA_DIR_NAME);
        let old_ts = match fs::read_link(&data_dir) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("read link", &data_dir)(e)),
        };
        let mut to_remove = BTreeSet::new();
        if let Some(old) = &old_ts {
            let old_path = self.target.join(old);
            to_remove = self.paths_to_remove(&clean, &old_path)?;
            let changed = clean.iter().any(|(p, f)| {
                let file = old_path.join(p);
                match fs::read(&file) {
                    Ok(on_disk) => on_disk != f.data,
                    Err(_) => true,
                }
            });
            if !changed && to_remove.is_empty() {
                return Ok(false);
            }
        }

        let ts_dir = self.new_timestamp_dir()?;
        let result = self
            .write_payload_to_dir(&clean, &ts_dir)
            .and_then(|_| set_perms());
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&ts_dir);
            return Err(e);
        }
        let ts_name = ts_dir.file_name().map(PathBuf::from).unwrap_or_default();
        let new_data_dir = self.target.join(NEW_DATA_DIR_NAME);
        match fs::remove_file(&new_data_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &new_data_dir)(e)),
        }
        if let Err(e) = std::os::unix::fs::symlink(&ts_name, &new_data_dir) {
            let _ = fs::remove_dir_all(&ts_dir);
            return Err(io_err("symlink", &new_data_dir)(e));
        }
        if let Err(e) = fs::rename(&new_data_dir, &data_dir) {
            let _ = fs::remove_file(&new_data_dir);
            let _ = fs::remove_dir_all(&ts_dir);
            return Err(io_err("rename", &new_data_dir)(e));
        }
        self.create_user_visible_files(&clean)?;
        for p in &to_remove {
            if p.contains('/') {
                continue;
            }
            let path = self.target.join(p);
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(io_err("remove", &path)(e));
                }
            }
        }
        if let Some(old) = old_ts {
            let old_path = self.target.join(old);
            if old_path != ts_dir {
                fs::remove_dir_all(&old_path).map_err(io_err("remove", &old_path))?;
            }
        }
        Ok(true)
    }

    /// All paths in the old data directory that are neither a new file nor one of its
    /// parent directories.
    fn paths_to_remove(
        &self,
        payload: &BTreeMap<String, &FileProjection>,
        old: &Path,
    ) -> Result<BTreeSet<String>, VolumeError> {
        let mut existing = BTreeSet::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = old.join(&rel);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read directory", &dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io_err("read directory", &dir))?;
                let child = rel.join(entry.file_name());
                existing.insert(child.to_string_lossy().into_owned());
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(child);
                }
            }
        }
        let mut keep = BTreeSet::new();
        for p in payload.keys() {
            let mut sub = p.as_str();
            loop {
                keep.insert(sub.to_string());
                match sub.rfind('/') {
                    Some(i) => sub = &sub[..i],
                    None => break,
                }
            }
        }
        Ok(existing.difference(&keep).cloned().collect())
    }

    fn new_timestamp_dir(&self) -> Result<PathBuf, VolumeError> {
        let ts = jiff::Timestamp::now()
            .strftime("..%Y_%m_%d_%H_%M_%S.")
            .to_string();
        let mut last_err = None;
        for _ in 0..100 {
            let n = TS_COUNTER.fetch_add(1, Ordering::Relaxed);
            let suffix = (u64::from(std::process::id()) << 32)
                ^ u64::from(jiff::Timestamp::now().subsec_nanosecond() as u32)
                ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let dir = self.target.join(format!("{ts}{}", suffix % 10_000_000_000));
            match fs::create_dir(&dir) {
                Ok(()) => {
                    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                        .map_err(io_err("chmod", &dir))?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => return Err(io_err("create directory", &dir)(e)),
            }
        }
        let e = last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists));
        Err(io_err("create directory", self.target)(e))
    }

    fn write_payload_to_dir(
        &self,
        payload: &BTreeMap<String, &FileProjection>,
        dir: &Path,
    ) -> Result<(), VolumeError> {
        for (p, f) in payload {
            let full = dir.join(p);
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
            }
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(f.mode)
                .open(&full)
                .and_then(|mut file| io::Write::write_all(&mut file, &f.data))
                .map_err(io_err("write file", &full))?;
            fs::set_permissions(&full, fs::Permissions::from_mode(f.mode))
                .map_err(io_err("chmod", &full))?;
        }
        Ok(())
    }

    /// `name -> ..data/name` for the first component of every payload path.
    fn create_user_visible_files(
        &self,
        payload: &BTreeMap<String, &FileProjection>,
    ) -> Result<(), VolumeError> {
        for p in payload.keys() {
            let first = p.split('/').next().unwrap_or(p);
            let visible = self.target.join(first);
            match fs::read_link(&visible) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let to = Path::new(DATA_DIR_NAME).join(first);
                    std::os::unix::fs::symlink(&to, &visible)
                        .map_err(io_err("symlink", &visible))?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Unmounts every mount under `<pod_dir>/volumes/<plugin>/<name>` and removes
/// `<pod_dir>/volumes`. Refuses to remove anything while a volume is still mounted.
pub fn teardown_volumes(pod_dir: &Path, mounter: &dyn Mounter) -> Result<(), VolumeError> {
    let root = pod_dir.join(VOLUMES_DIR);
    let plugins = match fs::read_dir(&root) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read directory", &root)(e)),
    };
    let check = |p: &Path| {
        mounter
            .is_mount_point(p)
            .map_err(|source| VolumeError::MountPointCheck {
                path: p.to_path_buf(),
                source,
            })
    };
    for plugin in plugins {
        let plugin = plugin.map_err(io_err("read directory", &root))?;
        if !plugin.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let plugin_dir = plugin.path();
        for vol in fs::read_dir(&plugin_dir).map_err(io_err("read directory", &plugin_dir))? {
            let vol = vol.map_err(io_err("read directory", &plugin_dir))?;
            let vol_dir = vol.path();
            // Stacked mounts are unmounted one by one.
            for _ in 0..8 {
                if !check(&vol_dir)? {
                    break;
                }
                mounter
                    .unmount(&vol_dir)
                    .map_err(|source| VolumeError::Unmount {
                        path: vol_dir.clone(),
                        source,
                    })?;
            }
            if check(&vol_dir)? {
                return Err(VolumeError::StillMounted { path: vol_dir });
            }
        }
    }
    fs::remove_dir_all(&root).map_err(io_err("remove", &root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection, DownwardAPIVolumeSource,
        EmptyDirVolumeSource, HostPathVolumeSource, ObjectFieldSelector, PodSecurityContext,
        ProjectedVolumeSource, ResourceRequirements, SecretVolumeSource,
        ServiceAccountTokenProjection, VolumeProjection,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;

    /// (namespace, service account, audiences, expiration, pod name, pod uid)
    type TokenCall = (String, String, Vec<String>, i64, String, String);

    #[derive(Default)]
    struct FakeSource {
        config_maps: Mutex<BTreeMap<String, ConfigMap>>,
        secrets: Mutex<BTreeMap<String, Secret>>,
        token: Mutex<String>,
        token_calls: Mutex<Vec<TokenCall>>,
    }

    #[async_trait]
    impl ObjectSource for FakeSource {
        async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, VolumeError> {
            Ok(self
                .config_maps
                .lock()
                .unwrap()
                .get(&format!("{ns}/{name}"))
                .cloned())
        }
        async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, VolumeError> {
            Ok(self
                .secrets
                .lock()
                .unwrap()
                .get(&format!("{ns}/{name}"))
                .cloned())
        }
        async fn service_account_token(
            &self,
            ns: &str,
            sa: &str,
            audiences: Vec<String>,
            exp: i64,
            pod_name: &str,
            pod_uid: &str,
        ) -> Result<String, VolumeError> {
            self.token_calls.lock().unwrap().push((
                ns.into(),
                sa.into(),
                audiences,
                exp,
                pod_name.into(),
                pod_uid.into(),
            ));
            Ok(self.token.lock().unwrap().clone())
        }
    }

    impl FakeSource {
        fn put_cm(&self, name: &str, data: &[(&str, &str)]) {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some("ns".into()),
                    ..Default::default()
                },
                data: Some(
                    data.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            };
            self.config_maps
                .lock()
                .unwrap()
                .insert(format!("ns/{name}"), cm);
        }
        fn put_secret(&self, name: &str, data: &[(&str, &[u8])]) {
            let s = Secret {
                data: Some(
                    data.iter()
                        .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                        .collect(),
                ),
                ..Default::default()
            };
            self.secrets.lock().unwrap().insert(format!("ns/{name}"), s);
        }
    }

    fn pod(volumes: Vec<Volume>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("uid-1".into()),
                labels: Some(
                    [("app", "web"), ("tier", "a\"b")]
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some(
                            [("memory".to_string(), Quantity("64Mi".into()))]
                                .into_iter()
                                .collect(),
                        ),
                        requests: Some(
                            [("cpu".to_string(), Quantity("250m".into()))]
                                .into_iter()
                                .collect(),
                        ),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                volumes: Some(volumes),
                service_account_name: Some("builder".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn vol(name: &str) -> Volume {
        Volume {
            name: name.into(),
            ..Default::default()
        }
    }

    fn node() -> NodeInfoForVolumes {
        NodeInfoForVolumes {
            node_name: "n1".into(),
            host_ip: "127.0.0.1".into(),
            allocatable: [
                ("cpu".to_string(), Quantity("2".into())),
                ("memory".to_string(), Quantity("1Gi".into())),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o7777
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap()
    }

    fn link(p: &Path) -> String {
        fs::read_link(p).unwrap().to_string_lossy().into_owned()
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity_nanos("1"), Some(NANOS));
        assert_eq!(quantity_nanos("100m"), Some(100_000_000));
        assert_eq!(quantity_nanos("1.5Gi"), Some(3 * (1 << 29) * NANOS));
        assert_eq!(quantity_nanos("2e3"), Some(2000 * NANOS));
        assert_eq!(quantity_nanos("1E-3"), Some(1_000_000));
        assert_eq!(quantity_nanos("64Mi"), Some(64 * 1024 * 1024 * NANOS));
        assert_eq!(quantity_nanos("1k"), Some(1000 * NANOS));
        assert_eq!(quantity_nanos("0.1n"), Some(1), "sub-nano rounds up");
        assert_eq!(quantity_nanos(".5"), Some(NANOS / 2));
        assert_eq!(quantity_nanos("-1"), Some(-NANOS));
        assert_eq!(quantity_nanos("1Xi"), None);
        assert_eq!(quantity_nanos(""), None);
        assert_eq!(quantity_nanos("1.2.3"), None);
        assert_eq!(quantity_value("1500m").unwrap(), 2);
        assert_eq!(quantity_value("1Gi").unwrap(), 1 << 30);
    }

    #[test]
    fn go_quote_and_format_map() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
        let m: BTreeMap<String, String> = [("z", "1"), ("a", "x y")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(format_map(Some(&m)), "a=\"x y\"\nz=\"1\"");
        assert_eq!(format_map(None), "");
    }

    #[test]
    fn clean_and_validate_paths() {
        assert_eq!(clean_path("a//b/./c/"), "a/b/c");
        assert_eq!(clean_path("a/../b"), "b");
        assert!(validate_payload_path("/abs").is_err());
        assert!(validate_payload_path("a/../b").is_err());
        assert!(validate_payload_path("..data").is_err());
        assert!(validate_payload_path("").is_err());
        assert!(validate_payload_path("..").is_err());
        assert!(validate_payload_path("a/..b").is_ok());
    }

    #[test]
    fn atomic_writer_layout_and_updates() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let w = AtomicWriter::new(dir);
        let fp = |d: &str, m| FileProjection {
            data: d.as_bytes().to_vec(),
            mode: m,
        };
        let mut payload = BTreeMap::new();
        payload.insert("a".to_string(), fp("1", 0o644));
        payload.insert("sub/b".to_string(), fp("2", 0o600));
        payload.insert("gone".to_string(), fp("3", 0o644));
        assert!(w.write(&payload, &|| Ok(())).unwrap());

        let ts1 = link(&dir.join("..data"));
        assert!(ts1.starts_with(".."), "{ts1}");
        assert_ne!(ts1, "..data");
        assert_eq!(link(&dir.join("a")), "..data/a");
        assert_eq!(link(&dir.join("sub")), "..data/sub");
        assert_eq!(read(&dir.join("sub/b")), "2");
        assert_eq!(mode(&dir.join(&ts1).join("sub/b")), 0o600);
        assert_eq!(mode(&dir.join(&ts1).join("a")), 0o644);
        assert_eq!(mode(&dir.join(&ts1)), 0o755);

        // Unchanged data: no rewrite.
        assert!(!w.write(&payload, &|| Ok(())).unwrap());
        assert_eq!(link(&dir.join("..data")), ts1);

        // Changed data and a removed key.
        payload.insert("a".to_string(), fp("1b", 0o644));
        payload.remove("gone");
        assert!(w.write(&payload, &|| Ok(())).unwrap());
        let ts2 = link(&dir.join("..data"));
        assert_ne!(ts1, ts2);
        assert!(!dir.join(&ts1).exists(), "old ts dir removed");
        assert_eq!(read(&dir.join("a")), "1b");
        assert!(fs::symlink_metadata(dir.join("gone")).is_err());
        assert!(!dir.join("..data_tmp").exists());

        // Removing a key alone (same content otherwise) is still a write.
        payload.remove("sub/b");
        assert!(w.write(&payload, &|| Ok(())).unwrap());
        assert!(fs::symlink_metadata(dir.join("sub")).is_err());
        let names: BTreeSet<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}"); // a, ..data, one ts dir

        // Invalid paths are rejected before anything is written.
        let mut bad = BTreeMap::new();
        bad.insert("../x".to_string(), fp("x", 0o644));
        assert!(matches!(
            w.write(&bad, &|| Ok(())),
            Err(VolumeError::InvalidPayloadPath(_))
        ));
    }

    #[tokio::test]
    async fn config_map_volume_and_resync() {
        let tmp = tempfile::tempdir().unwrap();
        let src = FakeSource::default();
        src.put_cm("cfg", &[("app.conf", "x=1"), ("other", "o")]);
        let mut v = vol("cfg");
        v.config_map = Some(ConfigMapVolumeSource {
            name: "cfg".into(),
            ..Default::default()
        });
        let p = pod(vec![v]);
        let m = FakeMounter::default();
        let out = setup_volumes(tmp.path(), &p, &node(), &src, &m)
            .await
            .unwrap();
        let dir = tmp.path().join("volumes/kubernetes.io~configmap/cfg");
        assert_eq!(
            out["cfg"],
            VolumeMountSource {
                host_path: dir.clone(),
                read_only: true
            }
        );
        assert_eq!(read(&dir.join("app.conf")), "x=1");
        assert_eq!(mode(&dir.join("app.conf")), 0o644);
        assert_eq!(mode(&dir), 0o777);
        assert!(m.calls().is_empty(), "configMap volumes are disk-backed");
        let ts1 = link(&dir.join("..data"));

        // Resync without change keeps the same data dir.
        setup_volumes(tmp.path(), &p, &node(), &src, &m)
            .await
            .unwrap();
        assert_eq!(link(&dir.join("..data")), ts1);

        // The ConfigMap changes: content updated, stale key removed.
        src.put_cm("cfg", &[("app.conf", "x=2")]);
        setup_volumes(tmp.path(), &p, &node(), &src, &m)
            .await
            .unwrap();
        assert_ne!(link(&dir.join("..data")), ts1);
        assert_eq!(read(&dir.join("app.conf")), "x=2");
        assert!(fs::symlink_metadata(dir.join("other")).is_err());
    }

    #[tokio::test]
    async fn config_map_items_binary_missing_and_optional() {
        let tmp = tempfile::tempdir().unwrap();
        let src = FakeSource::default();
        src.put_cm("cfg", &[("k", "v")]);
        src.config_maps
            .lock()
            .unwrap()
            .get_mut("ns/cfg")
            .unwrap()
            .binary_data = Some([("bin".to_string(), ByteString(vec![0, 1, 2]))].into());
        let mut v = vol("cfg");
        v.config_map = Some(ConfigMapVolumeSource {
            name: "cfg".into(),
            default_mode: Some(0o600),
            items: Some(vec![
                KeyToPath {
                    key: "k".into(),
                    path: "dir/renamed".into(),
                    mode: Some(0o400),
                },
                KeyToPath {
                    key: "bin".into(),
                    path: "b.bin".into(),
                    mode: None,
                },
            ]),
            ..Default::default()
        });
        let m = FakeMounter::default();
        setup_volumes(tmp.path(), &pod(vec![v]), &node(), &src, &m)
            .await
            .unwrap();
        let dir = tmp.path().join("volumes/kubernetes.io~configmap/cfg");
        assert_eq!(read(&dir.join("dir/renamed")), "v");
        assert_eq!(mode(&dir.join("dir/renamed")), 0o400);
        assert_eq!(fs::read(dir.join("b.bin")).unwrap(), vec![0, 1, 2]);
        assert_eq!(mode(&dir.join("b.bin")), 0o600);
        assert!(fs::symlink_metadata(dir.join("k")).is_err());

        // Missing object, not optional.
        let mut v = vol("miss");
        v.config_map = Some(ConfigMapVolumeSource {
            name: "nope".into(),
            ..Default::default()
        });
        let err = setup_volumes(tmp.path(), &pod(vec![v.clone()]), &node(), &src, &m)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "MountVolume.SetUp failed for volume \"miss\" : configmap \"nope\" not found"
        );
        // Missing key, not optional.
        let mut v2 = vol("key");
        v2.config_map = Some(ConfigMapVolumeSource {
            name: "cfg".into(),
            items: Some(vec![KeyToPath {
                key: "absent".into(),
                path: "x".into(),
                mode: None,
            }]),
            ..Default::default()
        });
        let err = setup_volumes(tmp.path(), &pod(vec![v2]), &node(), &src, &m)
            .await
            .unwrap_err();
        assert!(err
            .to_string()
            .ends_with("configmap references non-existent config key: absent"));
        // Optional: an empty volume.
        v.config_map.as_mut().unwrap().optional = Some(true);
        let out = setup_volumes(tmp.path(), &pod(vec![v]), &node(), &src, &m)
            .await
            .unwrap();
        assert!(out["miss"].host_path.join("..data").exists());
    }

    #[tokio::test]
    async fn secret_volume_is_tmpfs_and_read_only() {
        let tmp = tempfile::tempdir().unwrap();
        let src = FakeSource::default();
        src.put_secret("s", &[("token", b"abc")]);
        let mut v = vol("sec");
        v.secret = Some(SecretVolumeSource {
            secret_name: Some("s".into()),
            ..Default::default()
        });
        let m = FakeMounter::default();
        let out = setup_volumes(tmp.path(), &pod(vec![v.clone()]), &node(), &src, &m)
            .await
            .unwrap();
        let dir = tmp.path().join("volumes/kubernetes.io~secret/sec");
        assert!(out["sec"].read_only);
        assert_eq!(read(&dir.join("token")), "abc");
        assert_eq!(mode(&dir.join("token")), 0o644);
        // Sized to the pod's memory limit (64Mi < 1Gi allocatable).
        assert_eq!(
            m.calls(),
            vec![MountCall::Tmpfs {
                target: dir.clone(),
                size: Some(64 << 20)
            }]
        );
        // A resync does not mount again.
        setup_volumes(tmp.path(), &pod(vec![v.clone()]), &node(), &src, &m)
            .await
            .unwrap();
        assert_eq!(m.calls().len(), 1);

        v.secret.as_mut().unwrap().secret_name = Some("absent".into());
        let err = setup_volumes(tmp.path(), &pod(vec![v]), &node(), &src, &m)
            .await
            .unwrap_err();
        assert!(
            err.to_string().ends_with(": secret \"absent\" not found"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn empty_dir_disk_and_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = vol("scratch");
        a.empty_dir = Some(EmptyDirVolumeSource::default());
        let mut b = vol("mem");
        b.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("16Mi".into())),
        });
        let mut c = vol("mem-big");
        c.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("10Gi".into())),
        });
        let m = FakeMounter::default();
        let out = setup_volumes(
            tmp.path(),
            &pod(vec![a, b, c]),
            &node(),
            &FakeSource::default(),
            &m,
        )
        .await
        .unwrap();
        let base = tmp.path().join("volumes/kubernetes.io~empty-dir");
        assert_eq!(out["scratch"].host_path, base.join("scratch"));
        assert!(!out["scratch"].read_only);
        assert_eq!(mode(&base.join("scratch")), 0o777);
        let calls = m.calls();
        assert!(calls.contains(&MountCall::Tmpfs {
            target: base.join("mem"),
            size: Some(16 << 20)
        }));
        // A sizeLimit larger than the pod limit is ignored.
        assert!(calls.contains(&MountCall::Tmpfs {
            target: base.join("mem-big"),
            size: Some(64 << 20)
        }));
        assert_eq!(calls.len(), 2);

        let mut bad = vol("huge");
        bad.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("HugePages".into()),
            size_limit: None,
        });
        assert!(setup_volumes(
            tmp.path(),
            &pod(vec![bad]),
            &node(),
            &FakeSource::default(),
            &m
        )
        .await
        .is_err());
    }

    #[test]
    fn memory_size_calculation() {
        assert_eq!(memory_volume_size(Some(100), Some(50), Some(20)), Some(20));
        assert_eq!(memory_volume_size(Some(100), Some(50), Some(80)), Some(50));
        assert_eq!(memory_volume_size(Some(100), None, None), Some(100));
        assert_eq!(memory_volume_size(None, None, None), None);
        assert_eq!(memory_volume_size(None, None, Some(5)), Some(5));
        assert_eq!(memory_volume_size(Some(100), Some(0), Some(0)), Some(100));
        let spec = PodSpec {
            containers: vec![Container::default()],
            ..Default::default()
        };
        assert_eq!(pod_memory_limit(&spec).unwrap(), None);
    }

    #[tokio::test]
    async fn host_path_types() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        fs::write(t.join("file"), "x").unwrap();
        let hp = |name: &str, path: PathBuf, ty: Option<&str>| {
            let mut v = vol(name);
            v.host_path = Some(HostPathVolumeSource {
                path: path.to_string_lossy().into_owned(),
                type_: ty.map(String::from),
            });
            v
        };
        let m = FakeMounter::default();
        let src = FakeSource::default();
        let pod_dir = t.join("pod");
        let ok = vec![
            hp("a", t.join("new/dir"), Some("DirectoryOrCreate")),
            hp("b", t.join("newfile"), Some("FileOrCreate")),
            hp("c", t.join("file"), Some("File")),
            hp("d", t.to_path_buf(), Some("Directory")),
            hp("e", t.join("whatever"), None),
            hp("f", PathBuf::from("/dev/null"), Some("CharDevice")),
        ];
        let out = setup_volumes(&pod_dir, &pod(ok), &node(), &src, &m)
            .await
            .unwrap();
        assert_eq!(out["a"].host_path, t.join("new/dir"));
        assert!(t.join("new/dir").is_dir());
        assert_eq!(mode(&t.join("new/dir")), 0o755);
        assert!(t.join("newfile").is_file());
        assert!(!t.join("whatever").exists());

        let cases = [
            (
                hp("x", t.join("file"), Some("Directory")),
                format!(
                    "hostPath type check failed: {} is not a directory, it's a File",
                    t.join("file").display()
                ),
            ),
            (
                hp("x", t.to_path_buf(), Some("FileOrCreate")),
                format!(
                    "hostPath type check failed: {} is not a file, it's a Directory",
                    t.display()
                ),
            ),
            (
                hp("x", t.join("nothing"), Some("Socket")),
                format!("hostPath {} doesn't exist", t.join("nothing").display()),
            ),
            (
                hp("x", t.join("file"), Some("Bogus")),
                "Bogus is an invalid volume type".to_string(),
            ),
            (
                hp("x", PathBuf::from("/a/../b"), None),
                "invalid HostPath `/a/../b`: must not contain '..'".to_string(),
            ),
        ];
        for (v, want) in cases {
            let err = setup_volumes(&pod_dir, &pod(vec![v]), &node(), &src, &m)
                .await
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("MountVolume.SetUp failed for volume \"x\" : {want}")
            );
        }
    }

    #[tokio::test]
    async fn downward_api_volume() {
        let tmp = tempfile::tempdir().unwrap();
        let fref = |path: &str, fp: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: fp.into(),
            }),
            ..Default::default()
        };
        let rref = |path: &str, res: &str, div: Option<&str>| DownwardAPIVolumeFile {
            path: path.into(),
            resource_field_ref: Some(ResourceFieldSelector {
                container_name: Some("c".into()),
                resource: res.into(),
                divisor: div.map(|d| Quantity(d.into())),
            }),
            ..Default::default()
        };
        let mut v = vol("info");
        v.downward_api = Some(DownwardAPIVolumeSource {
            default_mode: None,
            items: Some(vec![
                fref("labels", "metadata.labels"),
                fref("name", "metadata.name"),
                fref("ns", "metadata.namespace"),
                fref("uid", "metadata.uid"),
                fref("app", "metadata.labels['app']"),
                fref("./sub/annotations", "metadata.annotations"),
                rref("mem_limit", "limits.memory", Some("1Mi")),
                rref("cpu_limit", "limits.cpu", Some("1m")),
                rref("cpu_request", "requests.cpu", None),
                rref("cpu_request_m", "requests.cpu", Some("1m")),
            ]),
        });
        let m = FakeMounter::default();
        let mut p = pod(vec![v.clone()]);
        setup_volumes(tmp.path(), &p, &node(), &FakeSource::default(), &m)
            .await
            .unwrap();
        let dir = tmp.path().join("volumes/kubernetes.io~downward-api/info");
        assert_eq!(read(&dir.join("labels")), "app=\"web\"\ntier=\"a\\\"b\"");
        assert_eq!(read(&dir.join("name")), "web");
        assert_eq!(read(&dir.join("ns")), "ns");
        assert_eq!(read(&dir.join("uid")), "uid-1");
        assert_eq!(read(&dir.join("app")), "web");
        assert_eq!(read(&dir.join("sub/annotations")), "");
        assert_eq!(read(&dir.join("mem_limit")), "64");
        // No cpu limit: the node allocatable (2 cores) in millicores.
        assert_eq!(read(&dir.join("cpu_limit")), "2000");
        assert_eq!(read(&dir.join("cpu_request")), "1", "250m rounds up to 1");
        assert_eq!(read(&dir.join("cpu_request_m")), "250");
        assert_eq!(m.calls().len(), 1, "downwardAPI volumes are tmpfs-backed");

        // Labels change: the file is refreshed on resync.
        p.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("new".into(), "1".into());
        setup_volumes(tmp.path(), &p, &node(), &FakeSource::default(), &m)
            .await
            .unwrap();
        assert_eq!(
            read(&dir.join("labels")),
            "app=\"web\"\nnew=\"1\"\ntier=\"a\\\"b\""
        );

        // Unsupported paths.
        v.downward_api.as_mut().unwrap().items = Some(vec![
            fref("x", "spec.nodeName"),
            fref("y", "metadata.name['x']"),
        ]);
        let err = setup_volumes(
            tmp.path(),
            &pod(vec![v]),
            &node(),
            &FakeSource::default(),
            &m,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().ends_with(
            ": [unsupported fieldPath: spec.nodeName, fieldPath \"metadata.name['x']\" does not support subscript]"
        ), "{err}");
    }

    #[tokio::test]
    async fn projected_volume_with_token() {
        let tmp = tempfile::tempdir().unwrap();
        let src = FakeSource::default();
        src.put_cm("kube-root-ca.crt", &[("ca.crt", "CA")]);
        *src.token.lock().unwrap() = "tok1".into();
        let mut v = vol("kube-api-access");
        v.projected = Some(ProjectedVolumeSource {
            default_mode: Some(0o644),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: None,
                        expiration_seconds: Some(3607),
                        path: "token".into(),
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: Some("v1".into()),
                                field_path: "metadata.namespace".into(),
                            }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some("vault".into()),
                        expiration_seconds: None,
                        path: "vault/token".into(),
                    }),
                    ..Default::default()
                },
            ]),
        });
        let m = FakeMounter::default();
        let p = pod(vec![v]);
        let out = setup_volumes(tmp.path(), &p, &node(), &src, &m)
            .await
            .unwrap();
        let dir = tmp
            .path()
            .join("volumes/kubernetes.io~projected/kube-api-access");
        assert_eq!(out["kube-api-access"].host_path, dir);
        assert!(out["kube-api-access"].read_only);
        assert_eq!(read(&dir.join("token")), "tok1");
        assert_eq!(read(&dir.join("ca.crt")), "CA");
        assert_eq!(read(&dir.join("namespace")), "ns");
        assert_eq!(read(&dir.join("vault/token")), "tok1");
        let calls = src.token_calls.lock().unwrap().clone();
        assert_eq!(
            calls[0],
            (
                "ns".into(),
                "builder".into(),
                vec![],
                3607,
                "web".into(),
                "uid-1".into()
            )
        );
        assert_eq!(calls[1].2, vec!["vault".to_string()]);
        assert_eq!(calls[1].3, 3600);
        let ts1 = link(&dir.join("..data"));

        // Token rotation: the resync rewrites the files.
        *src.token.lock().unwrap() = "tok2".into();
        setup_volumes(tmp.path(), &p, &node(), &src, &m)
            .await
            .unwrap();
        assert_eq!(read(&dir.join("token")), "tok2");
        assert_ne!(link(&dir.join("..data")), ts1);
        assert_eq!(m.calls().len(), 1);
    }

    #[tokio::test]
    async fn fs_group_ownership() {
        let tmp = tempfile::tempdir().unwrap();
        let src = FakeSource::default();
        src.put_secret("s", &[("key", b"k")]);
        *src.token.lock().unwrap() = "t".into();
        let mut s = vol("sec");
        s.secret = Some(SecretVolumeSource {
            secret_name: Some("s".into()),
            default_mode: Some(0o400),
            ..Default::default()
        });
        let mut pr = vol("proj");
        pr.projected = Some(ProjectedVolumeSource {
            default_mode: Some(0o644),
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: None,
                    expiration_seconds: None,
                    path: "token".into(),
                }),
                ..Default::default()
            }]),
        });
        let mut p = pod(vec![s, pr]);
        p.spec.as_mut().unwrap().security_context = Some(PodSecurityContext {
            fs_group: Some(4321),
            ..Default::default()
        });
        let m = FakeMounter::default();
        setup_volumes(tmp.path(), &p, &node(), &src, &m)
            .await
            .unwrap();
        let sdir = tmp.path().join("volumes/kubernetes.io~secret/sec");
        let f = sdir.join("..data/key");
        assert_eq!(mode(&f), 0o440);
        assert_eq!(fs::metadata(&f).unwrap().gid(), 4321);
        assert_eq!(mode(&sdir) & 0o2000, 0o2000);
        let tok = tmp
            .path()
            .join("volumes/kubernetes.io~projected/proj/token");
        assert_eq!(mode(&tok), 0o640, "token 0600 plus group read");
    }

    #[tokio::test]
    async fn unsupported_volume_and_teardown() {
        let tmp = tempfile::tempdir().unwrap();
        let mut pvc = vol("data");
        pvc.persistent_volume_claim = Some(Default::default());
        let m = FakeMounter::default();
        let err = setup_volumes(
            tmp.path(),
            &pod(vec![pvc]),
            &node(),
            &FakeSource::default(),
            &m,
        )
        .await
        .unwrap_err();
        assert!(err
            .to_string()
            .ends_with("persistentVolumeClaim volumes are not supported"));

        let mut a = vol("mem");
        a.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: None,
        });
        let mut b = vol("disk");
        b.empty_dir = Some(EmptyDirVolumeSource::default());
        setup_volumes(
            tmp.path(),
            &pod(vec![a, b]),
            &node(),
            &FakeSource::default(),
            &m,
        )
        .await
        .unwrap();
        let mem = tmp.path().join("volumes/kubernetes.io~empty-dir/mem");
        fs::write(tmp.path().join("keep"), "x").unwrap();
        teardown_volumes(tmp.path(), &m).unwrap();
        assert!(m.calls().contains(&MountCall::Unmount { target: mem }));
        assert!(!tmp.path().join("volumes").exists());
        assert!(tmp.path().join("keep").exists());
        // Idempotent.
        teardown_volumes(tmp.path(), &m).unwrap();
    }

    /// A mounter whose unmount never takes effect: teardown must not delete the data.
    struct StuckMounter(FakeMounter);
    impl Mounter for StuckMounter {
        fn mount_tmpfs(&self, t: &Path, s: Option<u64>) -> io::Result<()> {
            self.0.mount_tmpfs(t, s)
        }
        fn unmount(&self, _: &Path) -> io::Result<()> {
            Ok(())
        }
        fn is_mount_point(&self, p: &Path) -> io::Result<bool> {
            self.0.is_mount_point(p)
        }
    }

    #[tokio::test]
    async fn teardown_refuses_to_remove_mounted_volume() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = vol("mem");
        a.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: None,
        });
        let m = StuckMounter(FakeMounter::default());
        setup_volumes(
            tmp.path(),
            &pod(vec![a]),
            &node(),
            &FakeSource::default(),
            &m,
        )
        .await
        .unwrap();
        let err = teardown_volumes(tmp.path(), &m).unwrap_err();
        assert!(matches!(err, VolumeError::StillMounted { .. }));
        assert!(tmp
            .path()
            .join("volumes/kubernetes.io~empty-dir/mem")
            .exists());
    }

    #[test]
    fn mountinfo_parsing() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    40 22 0:40 / /tmp/a\\040b rw - tmpfs tmpfs rw\n";
        let points: Vec<PathBuf> = mountinfo_mount_points(info).collect();
        assert_eq!(points, vec![PathBuf::from("/"), PathBuf::from("/tmp/a b")]);
    }

    #[test]
    fn sys_mounter_tmpfs_roundtrip() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("t");
        fs::create_dir(&target).unwrap();
        let m = SysMounter;
        assert!(!m.is_mount_point(&target).unwrap());
        m.mount_tmpfs(&target, Some(1 << 20)).unwrap();
        let mounted = m.is_mount_point(&target).unwrap();
        m.unmount(&target).unwrap();
        assert!(mounted);
        assert!(!m.is_mount_point(&target).unwrap());
        assert!(!m.is_mount_point(&tmp.path().join("missing")).unwrap());
    }
}
