//! Image garbage collection, after upstream pkg/kubelet/images/image_gc_manager.go: the
//! kubelet remembers when it first saw each image and when it last saw a container use
//! it; when the image filesystem is at or above the high threshold (85 %), it removes
//! unused images, least recently used first, until usage would be back under the low
//! threshold (80 %). Images used by any container (running or not), the sandbox image and
//! images the runtime pins are never removed, nor images younger than the minimum age
//! (2 min). Also owns [`Filesystems`], the statvfs/du boundary that image GC and the
//! eviction manager read filesystem usage through.
//!
//! The decisions are pure functions ([`images_in_use`], [`update_records`],
//! [`eviction_order`], [`bytes_to_free`], [`plan`]); [`ImageGc`] drives them against a
//! [`Runtime`].

use crate::cri::{normalize_image_ref, CriError, Runtime};
use jiff::Timestamp;
use k8s_cri::v1::{Container, Image};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `imageGCHighThresholdPercent` default.
pub const DEFAULT_HIGH_THRESHOLD_PERCENT: u8 = 85;
/// `imageGCLowThresholdPercent` default.
pub const DEFAULT_LOW_THRESHOLD_PERCENT: u8 = 80;
/// `imageMinimumGCAge` default.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(120);
/// How often the kubelet runs image GC (upstream ImageGCPeriod).
pub const GC_PERIOD: Duration = Duration::from_secs(300);

/// Node event reasons (upstream pkg/kubelet/events).
pub const INVALID_DISK_CAPACITY: &str = "InvalidDiskCapacity";
pub const FREE_DISK_SPACE_FAILED: &str = "FreeDiskSpaceFailed";

#[derive(Debug, thiserror::Error)]
pub enum ImageGcError {
    #[error("invalid image gc policy: {0}")]
    Policy(String),
    #[error("listing images: {0}")]
    ListImages(#[source] CriError),
    #[error("listing containers: {0}")]
    ListContainers(#[source] CriError),
}

/// An event about the Node the caller should record (type is always Warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    pub reason: String,
    pub message: String,
}

// ---------------------------------------------------------------------------------------
// Filesystems
// ---------------------------------------------------------------------------------------

/// One filesystem as statvfs sees it, plus the device of the path that was asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStat {
    pub capacity_bytes: u64,
    pub available_bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
    pub device: u64,
}

/// Disk space and inodes used under a directory (on its own filesystem only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirUsage {
    pub bytes: u64,
    pub inodes: u64,
}

/// Filesystem facts: statvfs of a path and du of a directory.
pub trait Filesystems: Send + Sync {
    fn stat(&self, path: &Path) -> Option<FsStat>;
    fn usage(&self, path: &Path) -> Option<DirUsage>;
}

/// [`Filesystems`] over statvfs(2) and a directory walk.
pub struct SysFilesystems;

impl Filesystems for SysFilesystems {
    fn stat(&self, path: &Path) -> Option<FsStat> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::MetadataExt;
        let device = std::fs::metadata(path).ok()?.dev();
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs writes into the zeroed struct; the path is NUL-terminated.
        let s = unsafe {
            let mut s: libc::statvfs = std::mem::zeroed();
            if libc::statvfs(c.as_ptr(), &mut s) != 0 {
                return None;
            }
            s
        };
        let bs = s.f_frsize;
        Some(FsStat {
            capacity_bytes: s.f_blocks * bs,
            available_bytes: s.f_bavail * bs,
            inodes: s.f_files,
            inodes_free: s.f_ffree,
            device,
        })
    }

    fn usage(&self, path: &Path) -> Option<DirUsage> {
        use std::os::unix::fs::MetadataExt;
        let root = std::fs::symlink_metadata(path).ok()?;
        let dev = root.dev();
        let mut seen: BTreeSet<u64> = BTreeSet::new();
        let mut total = DirUsage::default();
        let mut stack = vec![path.to_path_buf()];
        while let Some(p) = stack.pop() {
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.dev() != dev || !seen.insert(md.ino()) {
                continue;
            }
            total.bytes += md.blocks() * 512;
            total.inodes += 1;
            if md.is_dir() {
                if let Ok(entries) = std::fs::read_dir(&p) {
                    stack.extend(entries.flatten().map(|e| e.path()));
                }
            }
        }
        Some(total)
    }
}

/// An in-memory [`Filesystems`] for tests: stats and usages are set per path; every
/// question is recorded. A path can be given a sequence of stats: each `stat` takes the
/// next one and the last one stays.
#[derive(Default)]
pub struct FakeFilesystems {
    stats: Mutex<BTreeMap<PathBuf, VecDeque<FsStat>>>,
    usages: Mutex<BTreeMap<PathBuf, DirUsage>>,
    calls: Mutex<Vec<String>>,
}

impl FakeFilesystems {
    pub fn new() -> FakeFilesystems {
        FakeFilesystems::default()
    }

    pub fn set_stat(&self, path: impl Into<PathBuf>, stat: FsStat) {
        lock(&self.stats).insert(path.into(), VecDeque::from([stat]));
    }

    /// Adds a stat the path reports after the ones already set.
    pub fn queue_stat(&self, path: impl Into<PathBuf>, stat: FsStat) {
        lock(&self.stats)
            .entry(path.into())
            .or_default()
            .push_back(stat);
    }

    pub fn set_usage(&self, path: impl Into<PathBuf>, usage: DirUsage) {
        lock(&self.usages).insert(path.into(), usage);
    }

    /// `"stat <path>"` / `"usage <path>"` in order.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Filesystems for FakeFilesystems {
    fn stat(&self, path: &Path) -> Option<FsStat> {
        lock(&self.calls).push(format!("stat {}", path.display()));
        let mut stats = lock(&self.stats);
        let q = stats.get_mut(path)?;
        if q.len() > 1 {
            q.pop_front()
        } else {
            q.front().copied()
        }
    }

    fn usage(&self, path: &Path) -> Option<DirUsage> {
        lock(&self.calls).push(format!("usage {}", path.display()));
        lock(&self.usages).get(path).copied()
    }
}

/// The image filesystem: the mount point the runtime reports in ImageFsInfo, statted;
/// `fallback` (e.g. the containerd root) when the runtime reports none or the call fails.
pub async fn image_fs_stat(
    runtime: &dyn Runtime,
    fs: &dyn Filesystems,
    fallback: &Path,
) -> Option<FsStat> {
    let mountpoint = runtime
        .image_fs_info()
        .await
        .ok()
        .and_then(|v| {
            v.into_iter()
                .filter_map(|u| u.fs_id.map(|f| f.mountpoint))
                .find(|m| !m.is_empty())
        })
        .map(PathBuf::from);
    match mountpoint {
        Some(m) => fs.stat(&m).or_else(|| fs.stat(fallback)),
        None => fs.stat(fallback),
    }
}

// ---------------------------------------------------------------------------------------
// Pure policy
// ---------------------------------------------------------------------------------------

/// The kubelet's image GC settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageGcPolicy {
    /// At or above this much of the image filesystem used, GC runs.
    pub high_threshold_percent: u8,
    /// GC frees down to this much used.
    pub low_threshold_percent: u8,
    /// Images first seen more recently than this are never removed.
    pub min_age: Duration,
    /// `imageMaximumGCAge`: unused this long, an image goes regardless of disk usage.
    pub max_age: Option<Duration>,
}

impl Default for ImageGcPolicy {
    fn default() -> Self {
        ImageGcPolicy {
            high_threshold_percent: DEFAULT_HIGH_THRESHOLD_PERCENT,
            low_threshold_percent: DEFAULT_LOW_THRESHOLD_PERCENT,
            min_age: DEFAULT_MIN_AGE,
            max_age: None,
        }
    }
}

impl ImageGcPolicy {
    /// Upstream's NewImageGCManager checks.
    pub fn validate(&self) -> Result<(), ImageGcError> {
        if self.high_threshold_percent > 100 {
            return Err(ImageGcError::Policy(format!(
                "invalid HighThresholdPercent {}, must be in range [0-100]",
                self.high_threshold_percent
            )));
        }
        if self.low_threshold_percent > 100 {
            return Err(ImageGcError::Policy(format!(
                "invalid LowThresholdPercent {}, must be in range [0-100]",
                self.low_threshold_percent
            )));
        }
        if self.low_threshold_percent > self.high_threshold_percent {
            return Err(ImageGcError::Policy(format!(
                "LowThresholdPercent {} can not be higher than HighThresholdPercent {}",
                self.low_threshold_percent, self.high_threshold_percent
            )));
        }
        Ok(())
    }
}

/// What the kubelet remembers about one image (by image id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub first_detected: Timestamp,
    /// None: never seen in use.
    pub last_used: Option<Timestamp>,
    pub size: u64,
    pub pinned: bool,
}

/// True when `reference` (an id, a tag, a digest reference, or a short name) names `image`.
pub fn image_matches(image: &Image, reference: &str) -> bool {
    if reference.is_empty() {
        return false;
    }
    if image.id == reference {
        return true;
    }
    let names = || image.repo_tags.iter().chain(image.repo_digests.iter());
    if names().any(|n| n == reference) {
        return true;
    }
    if reference.starts_with("sha256:") {
        return false;
    }
    let norm = normalize_image_ref(reference);
    names().any(|n| *n == norm)
}

/// The ids of the images that must stay: used by any container the runtime knows
/// (running or exited), or the sandbox image.
pub fn images_in_use(
    images: &[Image],
    containers: &[Container],
    sandbox_image: &str,
) -> BTreeSet<String> {
    let mut refs: BTreeSet<&str> = BTreeSet::new();
    for c in containers {
        refs.insert(c.image_ref.as_str());
        refs.insert(c.image_id.as_str());
        if let Some(spec) = &c.image {
            refs.insert(spec.image.as_str());
        }
    }
    refs.insert(sandbox_image);
    images
        .iter()
        .filter(|i| refs.iter().any(|r| image_matches(i, r)))
        .map(|i| i.id.clone())
        .collect()
}

/// Upstream detectImages: new images are first detected `now`, images in use were last
/// used `now`, sizes and pins follow the runtime, vanished images are forgotten.
pub fn update_records(
    records: &mut BTreeMap<String, ImageRecord>,
    images: &[Image],
    in_use: &BTreeSet<String>,
    now: Timestamp,
) {
    let mut present: BTreeSet<&str> = BTreeSet::new();
    for i in images {
        present.insert(i.id.as_str());
        let r = records.entry(i.id.clone()).or_insert(ImageRecord {
            first_detected: now,
            last_used: None,
            size: 0,
            pinned: false,
        });
        if in_use.contains(&i.id) {
            r.last_used = Some(now);
        }
        r.size = i.size;
        r.pinned = i.pinned;
    }
    records.retain(|id, _| present.contains(id.as_str()));
}

/// Images that may go, least recently used first (never-used before used, then oldest
/// first detected): in-use and pinned images are left out.
pub fn eviction_order(
    records: &BTreeMap<String, ImageRecord>,
    in_use: &BTreeSet<String>,
) -> Vec<String> {
    let mut v: Vec<(&String, &ImageRecord)> = records
        .iter()
        .filter(|(id, r)| !in_use.contains(*id) && !r.pinned)
        .collect();
    v.sort_by(|a, b| {
        a.1.last_used
            .cmp(&b.1.last_used)
            .then(a.1.first_detected.cmp(&b.1.first_detected))
    });
    v.into_iter().map(|(id, _)| id.clone()).collect()
}

/// Nanoseconds from `t` to `now`.
fn elapsed(t: Timestamp, now: Timestamp) -> i128 {
    now.as_nanosecond() - t.as_nanosecond()
}

fn older_than(t: Timestamp, now: Timestamp, d: Duration) -> bool {
    elapsed(t, now) >= d.as_nanos() as i128
}

/// Of `order`, the images old enough to remove (first detected at least `min_age` ago)
/// and not used at or after `now`, in the same order.
pub fn eligible(
    order: &[String],
    records: &BTreeMap<String, ImageRecord>,
    now: Timestamp,
    min_age: Duration,
) -> Vec<String> {
    order
        .iter()
        .filter(|id| {
            records.get(*id).is_some_and(|r| {
                r.last_used.is_none_or(|u| u < now) && older_than(r.first_detected, now, min_age)
            })
        })
        .cloned()
        .collect()
}

/// How full the image filesystem is and how much to free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcTarget {
    /// `100 - available*100/capacity`, as upstream rounds it.
    pub usage_percent: u64,
    /// Bytes to free to get down to the low threshold; 0 below the high threshold.
    pub bytes_to_free: u64,
}

/// Upstream GarbageCollect's arithmetic; `Err` with upstream's message for capacity 0.
pub fn bytes_to_free(
    capacity: u64,
    available: u64,
    policy: &ImageGcPolicy,
) -> Result<GcTarget, String> {
    if capacity == 0 {
        return Err("invalid capacity 0 on image filesystem".into());
    }
    let available = available.min(capacity) as i128;
    let capacity = capacity as i128;
    let usage_percent = 100 - available * 100 / capacity;
    let bytes = if usage_percent >= policy.high_threshold_percent as i128 {
        (capacity * (100 - policy.low_threshold_percent as i128) / 100 - available).max(0)
    } else {
        0
    };
    Ok(GcTarget {
        usage_percent: usage_percent as u64,
        bytes_to_free: bytes as u64,
    })
}

/// What a GC pass would remove, assuming every removal succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcPlan {
    pub usage_percent: u64,
    pub bytes_to_free: u64,
    /// Image ids, in removal order.
    pub remove: Vec<String>,
    /// What removing them frees.
    pub freed_bytes: u64,
}

/// The images to delete to get the image filesystem below the low threshold: LRU among
/// the unused, unpinned images old enough; stops as soon as enough would be freed.
pub fn plan(
    records: &BTreeMap<String, ImageRecord>,
    in_use: &BTreeSet<String>,
    capacity: u64,
    available: u64,
    policy: &ImageGcPolicy,
    now: Timestamp,
) -> Result<GcPlan, String> {
    let p = bytes_to_free(capacity, available, policy)?;
    let mut out = GcPlan {
        usage_percent: p.usage_percent,
        bytes_to_free: p.bytes_to_free,
        remove: Vec::new(),
        freed_bytes: 0,
    };
    if p.bytes_to_free == 0 {
        return Ok(out);
    }
    let order = eviction_order(records, in_use);
    for id in eligible(&order, records, now, policy.min_age) {
        out.freed_bytes += records.get(&id).map_or(0, |r| r.size);
        out.remove.push(id);
        if out.freed_bytes >= p.bytes_to_free {
            break;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The manager
// ---------------------------------------------------------------------------------------

/// What one GC pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageGcReport {
    /// Image filesystem usage when it could be read.
    pub usage_percent: Option<u64>,
    pub bytes_to_free: u64,
    pub freed_bytes: u64,
    /// Image ids removed, in order.
    pub removed: Vec<String>,
    /// Failed removals (`"<id>: <error>"`); the pass went on with the next image.
    pub errors: Vec<String>,
    /// Warnings to record on the Node.
    pub events: Vec<NodeEvent>,
}

/// The kubelet's image garbage collector: holds the image records between passes.
pub struct ImageGc {
    policy: ImageGcPolicy,
    sandbox_image: String,
    fs: Arc<dyn Filesystems>,
    image_fs_fallback: PathBuf,
    records: BTreeMap<String, ImageRecord>,
    began: Option<Timestamp>,
}

impl ImageGc {
    /// `image_fs_fallback` is statted when the runtime's ImageFsInfo names no mount point
    /// (e.g. the containerd root directory).
    pub fn new(
        policy: ImageGcPolicy,
        sandbox_image: &str,
        fs: Arc<dyn Filesystems>,
        image_fs_fallback: PathBuf,
    ) -> Result<ImageGc, ImageGcError> {
        policy.validate()?;
        Ok(ImageGc {
            policy,
            sandbox_image: sandbox_image.to_string(),
            fs,
            image_fs_fallback,
            records: BTreeMap::new(),
            began: None,
        })
    }

    pub fn policy(&self) -> &ImageGcPolicy {
        &self.policy
    }

    pub fn records(&self) -> &BTreeMap<String, ImageRecord> {
        &self.records
    }

    /// Records a use of an image the kubelet knows about (e.g. when it starts a container
    /// from it); unknown ids are ignored until the next detection adds them.
    pub fn mark_used(&mut self, image_id: &str, now: Timestamp) {
        if let Some(r) = self.records.get_mut(image_id) {
            r.last_used = Some(now);
        }
    }

    /// Lists images and containers, updates the records, and returns the ids in use.
    pub async fn detect(
        &mut self,
        runtime: &dyn Runtime,
        now: Timestamp,
    ) -> Result<BTreeSet<String>, ImageGcError> {
        let images = runtime
            .list_images()
            .await
            .map_err(ImageGcError::ListImages)?;
        let containers = runtime
            .list_containers()
            .await
            .map_err(ImageGcError::ListContainers)?;
        let in_use = images_in_use(&images, &containers, &self.sandbox_image);
        update_records(&mut self.records, &images, &in_use, now);
        self.began.get_or_insert(now);
        Ok(in_use)
    }

    /// One periodic pass (every [`GC_PERIOD`]): images unused for longer than the maximum
    /// age go first, then, if the image filesystem is at or over the high threshold,
    /// unused images in LRU order until usage is back at the low threshold.
    pub async fn run_once(
        &mut self,
        runtime: &dyn Runtime,
        now: Timestamp,
    ) -> Result<ImageGcReport, ImageGcError> {
        let in_use = self.detect(runtime, now).await?;
        let mut report = ImageGcReport::default();
        let mut order = eviction_order(&self.records, &in_use);
        if let (Some(max_age), Some(began)) = (self.policy.max_age, self.began) {
            // Upstream waits until the maximum age has passed since GC began, then removes
            // images unused for longer than it.
            if elapsed(began, now) > max_age.as_nanos() as i128 {
                let old: Vec<String> = order
                    .iter()
                    .filter(|id| {
                        self.records.get(*id).is_some_and(|r| {
                            r.last_used
                                .is_none_or(|u| elapsed(u, now) > max_age.as_nanos() as i128)
                        })
                    })
                    .cloned()
                    .collect();
                for id in old {
                    if self.remove(runtime, &id, &mut report).await {
                        order.retain(|x| *x != id);
                    }
                }
            }
        }
        let Some(fs) = image_fs_stat(runtime, self.fs.as_ref(), &self.image_fs_fallback).await
        else {
            report.events.push(NodeEvent {
                reason: INVALID_DISK_CAPACITY.into(),
                message: "invalid capacity 0 on image filesystem".into(),
            });
            return Ok(report);
        };
        let pressure = match bytes_to_free(fs.capacity_bytes, fs.available_bytes, &self.policy) {
            Ok(p) => p,
            Err(message) => {
                report.events.push(NodeEvent {
                    reason: INVALID_DISK_CAPACITY.into(),
                    message,
                });
                return Ok(report);
            }
        };
        report.usage_percent = Some(pressure.usage_percent);
        report.bytes_to_free = pressure.bytes_to_free;
        if pressure.bytes_to_free == 0 {
            return Ok(report);
        }
        tracing::info!(
            usage = pressure.usage_percent,
            high_threshold = self.policy.high_threshold_percent,
            amount_to_free = pressure.bytes_to_free,
            low_threshold = self.policy.low_threshold_percent,
            "disk usage on image filesystem is over the high threshold, trying to free bytes down to the low threshold"
        );
        let before = report.freed_bytes;
        self.free_space(runtime, &order, pressure.bytes_to_free, now, &mut report)
            .await;
        let freed = report.freed_bytes - before;
        if freed < pressure.bytes_to_free {
            report.events.push(NodeEvent {
                reason: FREE_DISK_SPACE_FAILED.into(),
                message: format!(
                    "Failed to garbage collect required amount of images. Attempted to free {} bytes, but only found {} bytes eligible to free.",
                    pressure.bytes_to_free, freed
                ),
            });
        }
        Ok(report)
    }

    /// Upstream DeleteUnusedImages (the eviction manager's node-level reclaim under disk
    /// pressure): every unused image old enough, whatever the usage.
    pub async fn delete_unused(
        &mut self,
        runtime: &dyn Runtime,
        now: Timestamp,
    ) -> Result<ImageGcReport, ImageGcError> {
        let in_use = self.detect(runtime, now).await?;
        let order = eviction_order(&self.records, &in_use);
        let mut report = ImageGcReport::default();
        self.free_space(runtime, &order, u64::MAX, now, &mut report)
            .await;
        Ok(report)
    }

    async fn free_space(
        &mut self,
        runtime: &dyn Runtime,
        order: &[String],
        bytes: u64,
        now: Timestamp,
        report: &mut ImageGcReport,
    ) {
        let mut freed = 0u64;
        for id in eligible(order, &self.records, now, self.policy.min_age) {
            let size = self.records.get(&id).map_or(0, |r| r.size);
            if self.remove(runtime, &id, report).await {
                freed = freed.saturating_add(size);
                if freed >= bytes {
                    break;
                }
            }
        }
    }

    async fn remove(
        &mut self,
        runtime: &dyn Runtime,
        id: &str,
        report: &mut ImageGcReport,
    ) -> bool {
        let size = self.records.get(id).map_or(0, |r| r.size);
        tracing::info!(image_id = %id, size, "removing image to free bytes");
        match runtime.remove_image(id).await {
            Ok(()) => {
                self.records.remove(id);
                report.removed.push(id.to_string());
                report.freed_bytes = report.freed_bytes.saturating_add(size);
                true
            }
            Err(e) => {
                report.errors.push(format!("{id}: {e}"));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::FakeRuntime;
    use k8s_cri::v1::{
        ContainerConfig, ContainerMetadata, ImageSpec, PodSandboxConfig, PodSandboxMetadata,
    };

    const MIB: u64 = 1 << 20;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn image(id: &str, tag: &str, size: u64) -> Image {
        Image {
            id: id.into(),
            repo_tags: vec![tag.into()],
            size,
            ..Default::default()
        }
    }

    fn record(first: i64, last: Option<i64>, size: u64) -> ImageRecord {
        ImageRecord {
            first_detected: ts(first),
            last_used: last.map(ts),
            size,
            pinned: false,
        }
    }

    #[test]
    fn policy_validation() {
        assert!(ImageGcPolicy::default().validate().is_ok());
        let bad = ImageGcPolicy {
            low_threshold_percent: 90,
            ..Default::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("LowThresholdPercent 90 can not be higher than HighThresholdPercent 85"));
        let bad = ImageGcPolicy {
            high_threshold_percent: 101,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn threshold_arithmetic_matches_upstream() {
        let p = ImageGcPolicy::default();
        // 84 % used: nothing to do.
        let r = bytes_to_free(100 * MIB, 16 * MIB, &p).unwrap();
        assert_eq!(r.bytes_to_free, 0);
        assert_eq!(r.usage_percent, 84);
        // 90 % used: free down to 80 % used = 20 MiB available.
        let r = bytes_to_free(100 * MIB, 10 * MIB, &p).unwrap();
        assert_eq!(r.usage_percent, 90);
        assert_eq!(r.bytes_to_free, 10 * MIB);
        // Exactly at the high threshold counts.
        let r = bytes_to_free(100, 15, &p).unwrap();
        assert_eq!((r.usage_percent, r.bytes_to_free), (85, 5));
        // Available above capacity is clamped.
        assert_eq!(bytes_to_free(100, 200, &p).unwrap().usage_percent, 0);
        assert_eq!(
            bytes_to_free(0, 0, &p).unwrap_err(),
            "invalid capacity 0 on image filesystem"
        );
    }

    #[test]
    fn in_use_covers_ids_tags_short_names_and_sandbox() {
        let images = vec![
            image("sha256:a", "docker.io/library/busybox:1.35", MIB),
            image("sha256:b", "docker.io/library/nginx:1.25", MIB),
            image("sha256:p", "localhost/pause:3.6", MIB),
            image("sha256:c", "docker.io/library/redis:7", MIB),
            image("sha256:d", "docker.io/library/alpine:3", MIB),
        ];
        let containers = vec![
            Container {
                image_ref: "sha256:a".into(),
                ..Default::default()
            },
            Container {
                image: Some(ImageSpec {
                    image: "nginx:1.25".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Container {
                image_id: "sha256:c".into(),
                ..Default::default()
            },
        ];
        let used = images_in_use(&images, &containers, "localhost/pause:3.6");
        let want: BTreeSet<String> = ["sha256:a", "sha256:b", "sha256:c", "sha256:p"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(used, want);
    }

    #[test]
    fn records_track_first_detection_and_last_use() {
        let mut recs = BTreeMap::new();
        let imgs = vec![image("a", "x:1", 5), image("b", "y:1", 7)];
        let used: BTreeSet<String> = ["a".to_string()].into();
        update_records(&mut recs, &imgs, &used, ts(100));
        assert_eq!(recs["a"], record(100, Some(100), 5));
        assert_eq!(recs["b"], record(100, None, 7));
        // Later: a no longer used keeps its last use; b vanished.
        update_records(&mut recs, &imgs[..1], &BTreeSet::new(), ts(200));
        assert_eq!(recs.len(), 1);
        assert_eq!(recs["a"], record(100, Some(100), 5));
    }

    #[test]
    fn plan_is_lru_and_skips_in_use_young_and_pinned() {
        let now = ts(10_000);
        let mut recs = BTreeMap::new();
        recs.insert(
            "used-recently".to_string(),
            record(0, Some(9_000), 30 * MIB),
        );
        recs.insert(
            "used-long-ago".to_string(),
            record(0, Some(1_000), 10 * MIB),
        );
        recs.insert("never-used".to_string(), record(500, None, 5 * MIB));
        recs.insert("young".to_string(), record(9_950, None, 50 * MIB));
        recs.insert("in-use".to_string(), record(0, Some(0), 50 * MIB));
        let mut pinned = record(0, None, 50 * MIB);
        pinned.pinned = true;
        recs.insert("pinned".to_string(), pinned);
        let in_use: BTreeSet<String> = ["in-use".to_string()].into();

        let order = eviction_order(&recs, &in_use);
        assert_eq!(
            order,
            vec!["never-used", "young", "used-long-ago", "used-recently"]
        );

        let p = ImageGcPolicy::default();
        // 90 % used of 100 MiB: free 10 MiB -> never-used (5) + used-long-ago (10).
        let plan1 = plan(&recs, &in_use, 100 * MIB, 10 * MIB, &p, now).unwrap();
        assert_eq!(plan1.bytes_to_free, 10 * MIB);
        assert_eq!(plan1.remove, vec!["never-used", "used-long-ago"]);
        assert_eq!(plan1.freed_bytes, 15 * MIB);
        // 99 % used: everything eligible, still never the young, in-use or pinned ones.
        let plan2 = plan(&recs, &in_use, 100 * MIB, MIB, &p, now).unwrap();
        assert_eq!(
            plan2.remove,
            vec!["never-used", "used-long-ago", "used-recently"]
        );
        // Under the high threshold: nothing.
        let plan3 = plan(&recs, &in_use, 100 * MIB, 50 * MIB, &p, now).unwrap();
        assert!(plan3.remove.is_empty());
    }

    fn sandbox_config(name: &str) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            ..Default::default()
        }
    }

    async fn run_container(rt: &FakeRuntime, pod: &str, image: &str) -> String {
        let sb = rt.run_pod_sandbox(sandbox_config(pod)).await.unwrap();
        let cfg = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "c".into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = rt
            .create_container(&sb, cfg, sandbox_config(pod))
            .await
            .unwrap();
        rt.start_container(&id).await.unwrap();
        id
    }

    fn gc_with(fs: Arc<FakeFilesystems>, policy: ImageGcPolicy) -> ImageGc {
        ImageGc::new(
            policy,
            "localhost/pause:3.6",
            fs,
            PathBuf::from("/fallback"),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn run_once_removes_lru_unused_images_only() {
        let rt = FakeRuntime::new();
        let pause = rt.add_image("localhost/pause:3.6");
        let busybox = rt.add_image("localhost/busybox:1.35");
        let old = rt.add_image("docker.io/library/old:1");
        let newer = rt.add_image("docker.io/library/newer:1");
        let exited = rt.add_image("docker.io/library/exited:1");
        run_container(&rt, "web", "localhost/busybox:1.35").await;
        let cid = run_container(&rt, "job", "docker.io/library/exited:1").await;
        rt.exit_container(&cid, 0, "");

        let fs = Arc::new(FakeFilesystems::new());
        // The fake reports /fake/snapshots as its image filesystem; its images are 1 MiB.
        fs.set_stat(
            "/fake/snapshots",
            FsStat {
                capacity_bytes: 10 * MIB,
                available_bytes: MIB,
                ..Default::default()
            },
        );
        let mut gc = gc_with(fs.clone(), ImageGcPolicy::default());
        // First sight at t=0; `newer` was used at t=100 by a container since removed.
        gc.detect(&rt, ts(0)).await.unwrap();
        gc.mark_used(&newer, ts(100));
        rt.clear_calls();

        // 90 % used: must free 1 MiB (images are 1 MiB each): the LRU one goes.
        let r = gc.run_once(&rt, ts(1_000)).await.unwrap();
        assert_eq!(r.usage_percent, Some(90));
        assert_eq!(r.bytes_to_free, MIB);
        assert_eq!(r.removed, vec![old.clone()]);
        assert_eq!(r.freed_bytes, MIB);
        assert!(r.events.is_empty(), "{:?}", r.events);
        assert_eq!(
            rt.calls_to("remove_image"),
            vec![format!("remove_image {old}")]
        );
        assert!(!gc.records().contains_key(&old));

        // 99 % used: asks for more than is eligible; newer goes, in-use ones never.
        fs.set_stat(
            "/fake/snapshots",
            FsStat {
                capacity_bytes: 100 * MIB,
                available_bytes: MIB,
                ..Default::default()
            },
        );
        let r = gc.run_once(&rt, ts(2_000)).await.unwrap();
        assert_eq!(r.removed, vec![newer.clone()]);
        assert_eq!(r.bytes_to_free, 19 * MIB);
        assert_eq!(
            r.events,
            vec![NodeEvent {
                reason: FREE_DISK_SPACE_FAILED.into(),
                message: format!(
                    "Failed to garbage collect required amount of images. Attempted to free {} bytes, but only found {} bytes eligible to free.",
                    19 * MIB,
                    MIB
                ),
            }]
        );
        for kept in [&pause, &busybox, &exited] {
            assert!(gc.records().contains_key(kept.as_str()));
        }
        let left: Vec<String> = rt
            .list_images()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(left.len(), 3);
    }

    #[tokio::test]
    async fn young_images_and_low_usage_are_left_alone() {
        let rt = FakeRuntime::new();
        rt.add_image("docker.io/library/fresh:1");
        let fs = Arc::new(FakeFilesystems::new());
        fs.set_stat(
            "/fake/snapshots",
            FsStat {
                capacity_bytes: 10 * MIB,
                available_bytes: MIB,
                ..Default::default()
            },
        );
        let mut gc = gc_with(fs.clone(), ImageGcPolicy::default());
        // First seen now: younger than the 2 minute minimum age.
        let r = gc.run_once(&rt, ts(0)).await.unwrap();
        assert!(r.removed.is_empty());
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].reason, FREE_DISK_SPACE_FAILED);
        // 119 s later still young; at 120 s it may go.
        assert!(gc.run_once(&rt, ts(119)).await.unwrap().removed.is_empty());
        assert_eq!(gc.run_once(&rt, ts(120)).await.unwrap().removed.len(), 1);

        // Low usage: no removals, no events.
        rt.add_image("docker.io/library/other:1");
        fs.set_stat(
            "/fake/snapshots",
            FsStat {
                capacity_bytes: 10 * MIB,
                available_bytes: 9 * MIB,
                ..Default::default()
            },
        );
        let r = gc.run_once(&rt, ts(10_000)).await.unwrap();
        assert_eq!(r.usage_percent, Some(10));
        assert!(r.removed.is_empty() && r.events.is_empty());
    }

    #[tokio::test]
    async fn unknown_capacity_is_an_event_and_fallback_is_used() {
        let rt = FakeRuntime::new();
        rt.add_image("docker.io/library/x:1");
        let fs = Arc::new(FakeFilesystems::new());
        let mut gc = gc_with(fs.clone(), ImageGcPolicy::default());
        let r = gc.run_once(&rt, ts(0)).await.unwrap();
        assert_eq!(
            r.events,
            vec![NodeEvent {
                reason: INVALID_DISK_CAPACITY.into(),
                message: "invalid capacity 0 on image filesystem".into(),
            }]
        );
        assert_eq!(
            fs.calls(),
            vec![
                "stat /fake/snapshots".to_string(),
                "stat /fallback".to_string()
            ]
        );
        // The runtime reports no image filesystem: the fallback path is read.
        rt.fail_next("image_fs_info", "boom");
        fs.set_stat(
            "/fallback",
            FsStat {
                capacity_bytes: 100,
                available_bytes: 50,
                ..Default::default()
            },
        );
        let r = gc.run_once(&rt, ts(10)).await.unwrap();
        assert_eq!(r.usage_percent, Some(50));
    }

    #[tokio::test]
    async fn removal_errors_are_reported_and_skipped() {
        let rt = FakeRuntime::new();
        let a = rt.add_image("docker.io/library/a:1");
        let b = rt.add_image("docker.io/library/b:1");
        let fs = Arc::new(FakeFilesystems::new());
        fs.set_stat(
            "/fake/snapshots",
            FsStat {
                capacity_bytes: 10 * MIB,
                available_bytes: MIB,
                ..Default::default()
            },
        );
        let mut gc = gc_with(fs, ImageGcPolicy::default());
        gc.detect(&rt, ts(0)).await.unwrap();
        gc.mark_used(&b, ts(50));
        rt.fail_next("remove_image", "image is busy");
        let r = gc.run_once(&rt, ts(1_000)).await.unwrap();
        // a (never used) is tried first and fails; b goes instead.
        assert_eq!(r.errors.len(), 1);
        assert!(r.errors[0].starts_with(&a), "{:?}", r.errors);
        assert_eq!(r.removed, vec![b]);
        assert!(gc.records().contains_key(&a));
    }

    #[tokio::test]
    async fn delete_unused_and_max_age() {
        let rt = FakeRuntime::new();
        rt.add_image("localhost/pause:3.6");
        let a = rt.add_image("docker.io/library/a:1");
        let b = rt.add_image("docker.io/library/b:1");
        let fs = Arc::new(FakeFilesystems::new());
        let mut gc = gc_with(fs.clone(), ImageGcPolicy::default());
        gc.detect(&rt, ts(0)).await.unwrap();
        let r = gc.delete_unused(&rt, ts(600)).await.unwrap();
        let mut removed = r.removed.clone();
        removed.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(removed, want);
        assert_eq!(rt.list_images().await.unwrap().len(), 1, "pause stays");

        // Maximum age: unused for over an hour goes even with plenty of space.
        let c = rt.add_image("docker.io/library/c:1");
        fs.set_stat(
            "/fake/snapshots",
            FsStat {
                capacity_bytes: 100 * MIB,
                available_bytes: 90 * MIB,
                ..Default::default()
            },
        );
        let mut gc = gc_with(
            fs,
            ImageGcPolicy {
                max_age: Some(Duration::from_secs(3600)),
                ..Default::default()
            },
        );
        gc.detect(&rt, ts(0)).await.unwrap();
        gc.mark_used(&c, ts(10));
        assert!(gc
            .run_once(&rt, ts(3_000))
            .await
            .unwrap()
            .removed
            .is_empty());
        let r = gc.run_once(&rt, ts(3_700)).await.unwrap();
        assert_eq!(r.removed, vec![c]);
        assert!(r.events.is_empty());
    }

    #[test]
    fn sys_filesystems_read_a_tempdir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), vec![7u8; 10_000]).unwrap();
        let st = SysFilesystems.stat(dir.path()).unwrap();
        assert!(st.capacity_bytes > 0 && st.capacity_bytes >= st.available_bytes);
        let u = SysFilesystems.usage(dir.path()).unwrap();
        assert_eq!(u.inodes, 3);
        assert!(u.bytes >= 10_000, "{u:?}");
        assert!(SysFilesystems.stat(Path::new("/nonexistent/x")).is_none());
    }
}
