//! Helpers shared by the job, cronjob, daemonset and statefulset controllers: pod readiness,
//! creation/deletion expectations (upstream's `ControllerExpectations`) and ControllerRevision
//! history (hashing, finding or creating the current revision, truncation).

use crate::cachedpod::CachedPod;
use crate::meta;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pods in the informer cache controlled by `owner` (same namespace, controller reference).
pub fn owned_pods<K: Resource<DynamicType = ()>>(
    store: &kube::runtime::reflector::Store<CachedPod>,
    owner: &K,
) -> Vec<std::sync::Arc<CachedPod>> {
    let ns = owner.namespace();
    let uid = owner.uid().unwrap_or_default();
    store
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace == ns && meta::is_controlled_by(&p.metadata, &uid))
        .collect()
}

/// The pod's Ready condition is True.
pub fn pod_ready(pod: &CachedPod) -> bool {
    pod_ready_since(pod).is_some()
}

/// When the pod became Ready, if it is Ready (epoch if the transition time is unknown).
pub fn pod_ready_since(pod: &CachedPod) -> Option<jiff::Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| {
            c.last_transition_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        })
}

/// Ready for at least `min_ready_seconds` at `now` (upstream's `IsPodAvailable`).
pub fn pod_available(pod: &CachedPod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    match pod_ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => since + jiff::SignedDuration::from_secs(min_ready_seconds as i64) <= now,
    }
}

/// The pod phase, "" when unknown.
pub fn phase(pod: &CachedPod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn is_terminating(pod: &CachedPod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The `Failed`/`Succeeded` phases.
pub fn is_finished(pod: &CachedPod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Pending creations and deletions per controller key, so a reconcile does not act on a cache
/// that has not yet seen its own previous writes (upstream's `ControllerExpectations`).
/// Entries expire after 30 s (upstream: five minutes, but it also observes deletions of pods it
/// never saw, which a kube-runtime trigger stream cannot report).
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Pending>>,
}

struct Pending {
    adds: HashSet<String>,
    dels: HashSet<String>,
    since: Instant,
}

const EXPECTATIONS_TTL: Duration = Duration::from_secs(30);

impl Expectations {
    /// Remembers a pod this controller created (by name).
    pub fn expect_create(&self, key: &str, name: String) {
        self.entry(key, |p| {
            p.adds.insert(name);
        });
    }

    /// Remembers a pod this controller deleted (by uid).
    pub fn expect_delete(&self, key: &str, uid: String) {
        self.entry(key, |p| {
            p.dels.insert(uid);
        });
    }

    fn entry(&self, key: &str, f: impl FnOnce(&mut Pending)) {
        let mut m = self.inner.lock().expect("expectations lock");
        let p = m.entry(key.to_string()).or_insert_with(|| Pending {
            adds: HashSet::new(),
            dels: HashSet::new(),
            since: Instant::now(),
        });
        p.since = Instant::now();
        f(p);
    }

    /// Whether the cache has caught up: every created name is present (`seen`) and every
    /// deleted uid is gone or terminating (`deleted`). Observed entries are dropped.
    pub fn satisfied(
        &self,
        key: &str,
        seen: impl Fn(&str) -> bool,
        deleted: impl Fn(&str) -> bool,
    ) -> bool {
        let mut m = self.inner.lock().expect("expectations lock");
        let Some(p) = m.get_mut(key) else { return true };
        p.adds.retain(|n| !seen(n));
        p.dels.retain(|u| !deleted(u));
        if (p.adds.is_empty() && p.dels.is_empty()) || p.since.elapsed() > EXPECTATIONS_TTL {
            m.remove(key);
            return true;
        }
        false
    }

    /// [`Expectations::satisfied`] against the controller's pods from the cache: every
    /// created name is among them, every deleted uid is absent or terminating.
    pub fn satisfied_by_pods(&self, key: &str, pods: &[std::sync::Arc<CachedPod>]) -> bool {
        let names: HashSet<&str> = pods
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let live: HashSet<&str> = pods
            .iter()
            .filter(|p| !is_terminating(p))
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        self.satisfied(key, |n| names.contains(n), |u| !live.contains(u))
    }

    /// Forgets a controller (deleted).
    pub fn forget(&self, key: &str) {
        self.inner.lock().expect("expectations lock").remove(key);
    }
}

/// fnv-1a 32-bit.
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// Upstream's `rand.SafeEncodeString`: maps characters onto an alphabet without vowels or
/// look-alike digits, so hashes never spell words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// The ControllerRevision hash of revision data and a collision count, as upstream's
/// `controller_history.HashControllerRevision` renders it.
pub fn revision_hash(data: &serde_json::Value, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(data).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&c.to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// A JSON merge patch turning `old` into `new` at the top level: keys of `old` that are absent
/// from `new` are set to null.
pub fn merge_replace(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    let mut out = new.clone();
    if let (Some(o), Some(n)) = (old.as_object(), out.as_object_mut()) {
        for k in o.keys() {
            n.entry(k.clone()).or_insert(serde_json::Value::Null);
        }
    }
    out
}

/// Whether an API error is a 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether an API error is a 409 AlreadyExists/Conflict.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// The revision data of a DaemonSet or StatefulSet template, as upstream's `getPatch`:
/// `{"spec":{"template":{..., "$patch":"replace"}}}`.
pub fn revision_data(template: &PodTemplateSpec) -> serde_json::Value {
    let mut t = serde_json::to_value(template).unwrap_or_default();
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), "replace".into());
    }
    serde_json::json!({"spec": {"template": t}})
}

/// The pod template stored in a revision.
pub fn revision_template(cr: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = cr.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// Revisions owned by `owner`, oldest first.
pub fn owned_revisions<K: Resource<DynamicType = ()>>(
    store: &kube::runtime::reflector::Store<ControllerRevision>,
    owner: &K,
) -> Vec<std::sync::Arc<ControllerRevision>> {
    let ns = owner.namespace();
    let uid = owner.uid().unwrap_or_default();
    let mut v: Vec<_> = store
        .state()
        .into_iter()
        .filter(|r| r.metadata.namespace == ns && meta::is_controlled_by(&r.metadata, &uid))
        .collect();
    v.sort_by_key(|r| r.revision);
    v
}

/// Finds or creates the revision for `template` (upstream's history handling in
/// `constructHistory`/`getStatefulSetRevisions`): an equal revision is reused and, if older,
/// renumbered to be the newest; a hash collision with different data bumps `collision_count`.
/// Returns the revision.
pub async fn ensure_revision<K>(
    client: &kube::Client,
    revisions: &[std::sync::Arc<ControllerRevision>],
    owner: &K,
    template: &PodTemplateSpec,
    collision_count: &mut i32,
) -> Result<ControllerRevision, kube::Error>
where
    K: Resource<DynamicType = ()>,
{
    let ns = owner.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let data = revision_data(template);
    let max = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    if let Some(r) = revisions
        .iter()
        .rev()
        .find(|r| r.data.as_ref().map(|d| &d.0) == Some(&data))
    {
        if r.revision == max {
            return Ok((**r).clone());
        }
        let patch = serde_json::json!({"revision": max + 1});
        return api
            .patch(&r.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await;
    }
    loop {
        let cc = (*collision_count > 0).then_some(*collision_count);
        let hash = revision_hash(&data, cc);
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(REVISION_HASH_LABEL.into(), hash.clone());
        let cr = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", owner.name_any())),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                owner_references: Some(vec![meta::new_controller_ref(owner)]),
                ..Default::default()
            },
            data: Some(RawExtension(data.clone())),
            revision: max + 1,
        };
        match api.create(&PostParams::default(), &cr).await {
            Ok(cr) => return Ok(cr),
            Err(e) if is_conflict(&e) => {
                let existing = api.get(&cr.name_any()).await?;
                if existing.data.as_ref().map(|d| &d.0) == Some(&data)
                    && existing
                        .owner_references()
                        .iter()
                        .any(|o| Some(&o.uid) == owner.uid().as_ref())
                {
                    return Ok(existing);
                }
                *collision_count += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Deletes the oldest revisions beyond `limit` that no live pod uses (by hash label) and that
/// are not in `keep`.
pub async fn truncate_history(
    client: &kube::Client,
    revisions: &[std::sync::Arc<ControllerRevision>],
    limit: i32,
    keep: &HashSet<String>,
) -> Result<(), kube::Error> {
    let candidates: Vec<_> = revisions
        .iter()
        .filter(|r| {
            let h = r
                .labels()
                .get(REVISION_HASH_LABEL)
                .cloned()
                .unwrap_or_default();
            !keep.contains(&h) && !keep.contains(&r.name_any())
        })
        .collect();
    let excess = candidates.len().saturating_sub(limit.max(0) as usize);
    for r in candidates.into_iter().take(excess) {
        let api: Api<ControllerRevision> =
            Api::namespaced(client.clone(), &r.namespace().unwrap_or_default());
        match api.delete(&r.name_any(), &Default::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// Scales an int-or-percent against `total` (upstream's `GetScaledValueFromIntOrPercent`).
pub fn scaled(v: Option<&IntOrString>, total: i32, round_up: bool, default: i32) -> i32 {
    match v {
        None => default,
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let x = p * total as i64;
            (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_safe() {
        let h = revision_hash(&serde_json::json!({"a": 1}), None);
        assert!(h
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
        assert_ne!(h, revision_hash(&serde_json::json!({"a": 1}), Some(1)));
    }

    #[test]
    fn expectations() {
        let e = Expectations::default();
        assert!(e.satisfied("a", |_| false, |_| false));
        e.expect_create("a", "p1".into());
        assert!(!e.satisfied("a", |_| false, |_| false));
        assert!(e.satisfied("a", |n| n == "p1", |_| false));
    }
}
