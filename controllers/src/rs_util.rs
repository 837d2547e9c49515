//! Helpers shared by the replicaset and deployment controllers: claiming children
//! (adoption and release, upstream's `ControllerRefManager`) and per-key error back-off.

use crate::meta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

/// What a controller should do with a candidate child (upstream `ControllerRefManager`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours and matching: keep it.
    Keep,
    /// An orphan that matches: adopt it.
    Adopt,
    /// Ours but no longer matching: release it.
    Release,
    /// Not ours (owned by someone else, or not matching).
    Ignore,
}

/// Decides the claim for one child, as upstream's `ClaimObject`.
pub fn claim_decision(
    owner_uid: &str,
    owner_deleting: bool,
    sel: &LabelSelector,
    child: &ObjectMeta,
) -> Claim {
    let matches = meta::selector_matches(sel, child.labels.as_ref().unwrap_or(&BTreeMap::new()));
    match meta::controller_of(child) {
        Some(r) if r.uid != owner_uid => Claim::Ignore,
        Some(_) if matches => Claim::Keep,
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if owner_deleting || !matches || child.deletion_timestamp.is_some() => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// Adds the controller reference to an orphan (optimistic on its resourceVersion). `child`
/// may be a cached projection of a `K` (such as a `CachedPod`).
pub async fn adopt<K, C, O>(api: &Api<K>, owner: &O, child: &C) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    C: Resource,
    O: Resource<DynamicType = ()>,
{
    let mut refs: Vec<OwnerReference> = child
        .meta()
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| Some(&r.uid) != owner.meta().uid.as_ref())
        .collect();
    refs.push(meta::new_controller_ref(owner));
    let patch = serde_json::json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": child.meta().resource_version,
    }});
    api.patch(
        &child.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
}

/// Removes `owner_uid` from a child's owner references. A child that is gone is fine.
pub async fn release<K, C>(api: &Api<K>, owner_uid: &str, child: &C) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    C: Resource,
{
    let refs: Vec<OwnerReference> = child
        .meta()
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.uid != owner_uid)
        .collect();
    let refs = (!refs.is_empty()).then_some(refs);
    let patch = serde_json::json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": child.meta().resource_version,
    }});
    match api
        .patch(
            &child.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Per-key exponential back-off for failed syncs (upstream's default controller rate
/// limiter: 5 ms doubling up to 1000 s), reset by a successful sync.
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<String, u32>>);

impl Backoff {
    /// Records one more failure of `key` and returns how long to wait before retrying.
    pub fn fail(&self, key: &str) -> Duration {
        let mut m = self.0.lock().expect("backoff lock");
        let n = m.entry(key.to_string()).or_insert(0);
        let d = backoff_delay(*n);
        *n = n.saturating_add(1);
        d
    }

    pub fn reset(&self, key: &str) {
        self.0.lock().expect("backoff lock").remove(key);
    }
}

/// 5 ms * 2^failures, capped at 1000 s.
pub fn backoff_delay(failures: u32) -> Duration {
    let ms = 5u64.saturating_mul(1u64 << failures.min(30));
    Duration::from_millis(ms.min(1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn claims() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        };
        let mut child = ObjectMeta {
            labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        };
        assert_eq!(claim_decision("u1", false, &sel, &child), Claim::Adopt);
        assert_eq!(claim_decision("u1", true, &sel, &child), Claim::Ignore);
        child.owner_references = Some(vec![OwnerReference {
            uid: "u1".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        assert_eq!(claim_decision("u1", false, &sel, &child), Claim::Keep);
        assert_eq!(claim_decision("u2", false, &sel, &child), Claim::Ignore);
        child.labels = Some(labels(&[("app", "other")]));
        assert_eq!(claim_decision("u1", false, &sel, &child), Claim::Release);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_delay(0), Duration::from_millis(5));
        assert_eq!(backoff_delay(3), Duration::from_millis(40));
        assert_eq!(backoff_delay(40), Duration::from_secs(1000));
    }
}
