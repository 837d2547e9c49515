//! Pure parts of the deployment controller (upstream `pkg/controller/deployment/util`):
//! surge and unavailability math, the pod-template hash, revision and replica annotations,
//! proportional scaling, rolling-update step planning, conditions and status.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::cmp::Ordering;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";

pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";

/// Annotations never copied from a Deployment to its ReplicaSets.
pub fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

/// Upstream `GetScaledValueFromIntOrPercent`.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let p: i64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let prod = p * total as i64;
            let v = if round_up {
                (prod + 99).div_euclid(100)
            } else {
                prod.div_euclid(100)
            };
            Ok(v as i32)
        }
    }
}

/// Upstream `ResolveFenceposts`: surge rounds up, unavailable rounds down, and both zero
/// means one unavailable.
pub fn resolve_fenceposts(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let quarter = IntOrString::String("25%".into());
    let s = scaled_value(surge.unwrap_or(&quarter), desired, true).unwrap_or(0);
    let u = scaled_value(unavailable.unwrap_or(&quarter), desired, false).unwrap_or(0);
    if s == 0 && u == 0 {
        return (0, 1);
    }
    (s, u)
}

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        replicas(d),
    )
}

/// Upstream `MaxSurge`.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

/// Upstream `MaxUnavailable`.
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// Upstream `SafeEncodeString`: maps each byte onto a vowel-free alphabet.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// FNV-32a.
pub fn fnv32a(data: &[u8], mut h: u32) -> u32 {
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(16_777_619);
    }
    h
}

/// The `pod-template-hash`: FNV-32a of the template (its canonical JSON; upstream hashes
/// the Go struct dump) and the collision count, rendered like upstream.
pub fn compute_hash(t: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(&serde_json::to_value(t).unwrap_or_default()).unwrap_or_default();
    let mut h = fnv32a(&json, 2_166_136_261);
    if let Some(c) = collision_count {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a(&b, h);
    }
    safe_encode(&h.to_string())
}

fn without_hash(t: &PodTemplateSpec) -> serde_json::Value {
    let mut t = t.clone();
    if let Some(m) = t.metadata.as_mut() {
        if let Some(l) = m.labels.as_mut() {
            l.remove(POD_TEMPLATE_HASH);
            if l.is_empty() {
                m.labels = None;
            }
        }
    }
    serde_json::to_value(&t).unwrap_or_default()
}

/// Upstream `EqualIgnoreHash`.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

pub fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

fn annotation(rs: &ReplicaSet, key: &str) -> Option<String> {
    rs.metadata.annotations.as_ref()?.get(key).cloned()
}

/// The revision of a ReplicaSet (0 when absent or invalid).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn max_revision(rss: &[&ReplicaSet]) -> i64 {
    rss.iter().map(|r| revision(r)).max().unwrap_or(0)
}

pub fn desired_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, DESIRED_REPLICAS)?.parse().ok()
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, MAX_REPLICAS)?.parse().ok()
}

/// Upstream `ReplicasAnnotationsNeedUpdate`.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string())
        || annotation(rs, MAX_REPLICAS) != Some(max.to_string())
}

/// Upstream `SetReplicasAnnotations`; returns whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let changed = replicas_annotations_need_update(rs, desired, max);
    let a = rs.metadata.annotations.get_or_insert_with(Default::default);
    a.insert(DESIRED_REPLICAS.into(), desired.to_string());
    a.insert(MAX_REPLICAS.into(), max.to_string());
    changed
}

/// Upstream `SetNewReplicaSetAnnotations`: copies the Deployment's annotations, raises the
/// revision (keeping the old one in the revision history) and, for a new ReplicaSet, sets
/// the replica annotations. Returns whether anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    let da = d.metadata.annotations.clone().unwrap_or_default();
    let a = rs.metadata.annotations.get_or_insert_with(Default::default);
    for (k, v) in da.iter().filter(|(k, _)| !skip_copy(k)) {
        if a.get(k) != Some(v) {
            a.insert(k.clone(), v.clone());
            changed = true;
        }
    }
    let old = a.get(REVISION).cloned().unwrap_or_default();
    let old_int: i64 = match old.parse() {
        Ok(v) => v,
        Err(_) if old.is_empty() => 0,
        Err(_) => return changed,
    };
    if old_int < new_revision {
        a.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if !old.is_empty() {
            let hist = match a.get(REVISION_HISTORY) {
                Some(h) if !h.is_empty() => format!("{h},{old}"),
                _ => old.clone(),
            };
            a.insert(REVISION_HISTORY.into(), hist);
        }
    }
    if !exists {
        let r = replicas(d);
        if set_replicas_annotations(rs, r, r + max_surge(d)) {
            changed = true;
        }
    }
    changed
}

/// Upstream `NewRSNewReplicas`: how big the new ReplicaSet may be now.
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs_replicas: i32) -> i32 {
    let want = replicas(d);
    if !is_rolling(d) {
        return want;
    }
    let current: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let max_total = want + max_surge(d);
    if current >= max_total {
        return new_rs_replicas;
    }
    let up = (max_total - current).min(want - new_rs_replicas);
    new_rs_replicas + up
}

/// How many old pods a rolling update may remove now, given all ReplicaSets' sizes and
/// availability (upstream `reconcileOldReplicaSets`' `maxScaledDown`).
pub fn max_scaled_down(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let all_pods: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let min_available = replicas(d) - max_unavailable(d);
    let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
    all_pods - min_available - new_unavailable
}

/// Upstream `getReplicaSetFraction`.
pub fn rs_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let max_now = replicas(d) + max_surge(d);
    let before = match max_replicas_annotation(rs) {
        Some(v) if v != 0 => v,
        _ => d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
    };
    if before == 0 {
        return 0;
    }
    let size = (rs_replicas(rs) as f64 * max_now as f64) / before as f64;
    size.round() as i32 - rs_replicas(rs)
}

/// Upstream `GetProportion`.
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let f = rs_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        f.min(allowed)
    } else {
        f.max(allowed)
    }
}

fn created(rs: &ReplicaSet) -> Option<jiff::Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Oldest first, then by name (upstream `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Upstream `ReplicaSetsByRevision`.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    revision(a)
        .cmp(&revision(b))
        .then_with(|| by_creation(a, b))
}

/// Proportional scaling plan: new sizes for the active ReplicaSets (upstream `scale`'s
/// rolling branch). Returns (name, new size) in the order to apply.
pub fn proportional_plan(d: &Deployment, active: &[&ReplicaSet]) -> Vec<(String, i32)> {
    let mut rss: Vec<&ReplicaSet> = active.to_vec();
    let total: i32 = rss.iter().map(|r| rs_replicas(r)).sum();
    let allowed = if replicas(d) > 0 {
        replicas(d) + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - total;
    if to_add > 0 {
        // Larger first; newer first on ties.
        rss.sort_by(|a, b| {
            rs_replicas(b)
                .cmp(&rs_replicas(a))
                .then_with(|| created(b).cmp(&created(a)))
        });
    } else if to_add < 0 {
        // Larger first; older first on ties.
        rss.sort_by(|a, b| {
            rs_replicas(b)
                .cmp(&rs_replicas(a))
                .then_with(|| created(a).cmp(&created(b)))
        });
    }
    let mut added = 0;
    let mut sizes: Vec<(String, i32)> = rss
        .iter()
        .map(|rs| {
            let p = if to_add != 0 {
                proportion(rs, d, to_add, added)
            } else {
                0
            };
            added += p;
            (
                rs.metadata.name.clone().unwrap_or_default(),
                rs_replicas(rs) + p,
            )
        })
        .collect();
    if to_add != 0 {
        if let Some(first) = sizes.first_mut() {
            first.1 = (first.1 + to_add - added).max(0);
        }
    }
    sizes
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn get_condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.iter().flatten().find(|c| c.type_ == type_)
}

/// Upstream `SetDeploymentCondition`: same status and reason is a no-op; same status keeps
/// the transition time.
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get_condition(s, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    let conds = s.conditions.get_or_insert_with(Vec::new);
    conds.retain(|x| x.type_ != c.type_);
    conds.push(c);
}

pub fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = s.conditions.as_mut() {
        c.retain(|x| x.type_ != type_);
        if c.is_empty() {
            s.conditions = None;
        }
    }
}

/// Upstream `calculateStatus`.
pub fn calculate_status(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let available: i32 = all.iter().map(|r| rs_available(r)).sum();
    let total: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let old = d.status.clone().unwrap_or_default();
    // Zero counts are omitted on the wire, as upstream's `omitempty`.
    let nz = |v: i32| (v != 0).then_some(v);
    let mut s = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nz(all.iter().map(|r| rs_status_replicas(r)).sum()),
        updated_replicas: nz(new_rs.map_or(0, rs_status_replicas)),
        ready_replicas: nz(all.iter().map(|r| rs_ready(r)).sum()),
        available_replicas: nz(available),
        unavailable_replicas: nz((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    };
    if available >= replicas(d) - max_unavailable(d) {
        set_condition(
            &mut s,
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut s,
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    s
}

/// Status equality ignoring the zero-versus-absent distinction.
pub fn status_eq(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    let n = |s: &DeploymentStatus| {
        (
            s.observed_generation.unwrap_or(0),
            s.replicas.unwrap_or(0),
            s.updated_replicas.unwrap_or(0),
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
            s.unavailable_replicas.unwrap_or(0),
            s.collision_count,
            s.conditions.clone().unwrap_or_default(),
        )
    };
    n(a) == n(b)
}

/// Upstream `DeploymentComplete`.
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = replicas(d);
    s.updated_replicas.unwrap_or(0) == r
        && s.replicas.unwrap_or(0) == r
        && s.available_replicas.unwrap_or(0) == r
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Upstream `DeploymentProgressing`.
pub fn deployment_progressing(d: &Deployment, s: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = s.replicas.unwrap_or(0) - s.updated_replicas.unwrap_or(0);
    s.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || s.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || s.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

/// `spec.progressDeadlineSeconds` when set and not MaxInt32.
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|v| *v != i32::MAX)
}

/// Upstream `DeploymentTimedOut`.
pub fn deployment_timed_out(d: &Deployment, s: &DeploymentStatus, now: jiff::Timestamp) -> bool {
    let Some(secs) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = get_condition(s, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0 + jiff::SignedDuration::from_secs(secs as i64) < now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn dep(replicas: i32, surge: IntOrString, unavail: IntOrString) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavail),
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn rs(name: &str, spec: i32, avail: i32, created: i64, max: Option<i32>) -> ReplicaSet {
        let mut a = BTreeMap::new();
        if let Some(m) = max {
            a.insert(MAX_REPLICAS.to_string(), m.to_string());
        }
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(
                    jiff::Timestamp::from_second(1_700_000_000 + created).unwrap(),
                )),
                annotations: Some(a),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(spec),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas: spec,
                available_replicas: Some(avail),
                ready_replicas: Some(avail),
                ..Default::default()
            }),
        }
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn fenceposts_round_like_upstream() {
        assert_eq!(
            resolve_fenceposts(Some(&pct("25%")), Some(&pct("25%")), 10),
            (3, 2)
        );
        assert_eq!(
            resolve_fenceposts(Some(&pct("25%")), Some(&pct("25%")), 1),
            (1, 0)
        );
        assert_eq!(
            resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 3),
            (0, 1)
        );
        assert_eq!(
            resolve_fenceposts(Some(&pct("0%")), Some(&pct("10%")), 5),
            (0, 1)
        );
        assert_eq!(resolve_fenceposts(None, None, 4), (1, 1));
        let d = dep(3, IntOrString::Int(1), IntOrString::Int(5));
        assert_eq!(max_unavailable(&d), 3);
        assert_eq!(max_surge(&d), 1);
    }

    #[test]
    fn hash_is_stable_and_safe() {
        let t = PodTemplateSpec::default();
        let h1 = compute_hash(&t, None);
        assert_eq!(h1, compute_hash(&t, None));
        assert_ne!(h1, compute_hash(&t, Some(1)));
        assert!(h1
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_eq!(safe_encode("0123"), "4567");
        assert_eq!(fnv32a(b"", 2_166_136_261), 2_166_136_261);
        assert_eq!(fnv32a(b"a", 2_166_136_261), 0xe40c292c);
    }

    #[test]
    fn rolling_update_steps() {
        // 3 replicas, surge 1, unavailable 0: new RS may go to 1 while old has 3.
        let d = dep(3, IntOrString::Int(1), IntOrString::Int(0));
        let old = rs("old", 3, 3, 0, None);
        let new = rs("new", 0, 0, 10, None);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], 0), 1);
        let new1 = rs("new", 1, 0, 10, None);
        // Nothing can go down until the new pod is available.
        assert_eq!(max_scaled_down(&d, &[&old, &new1], &new1), 0);
        let new1a = rs("new", 1, 1, 10, None);
        assert_eq!(max_scaled_down(&d, &[&old, &new1a], &new1a), 1);
        // Surge exhausted: new RS stays.
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new1a], 1), 1);
    }

    #[test]
    fn proportional_scaling() {
        // 10 replicas with surge 3 (13 max) scaled to 15 (max 19): +6 spread 8:5.
        let mut d = dep(15, pct("25%"), pct("25%"));
        d.status = Some(DeploymentStatus {
            replicas: Some(13),
            ..Default::default()
        });
        let a = rs("a", 8, 8, 0, Some(13));
        let b = rs("b", 5, 0, 10, Some(13));
        let plan = proportional_plan(&d, &[&a, &b]);
        assert_eq!(plan, vec![("a".into(), 12), ("b".into(), 7)]);
        let total: i32 = plan.iter().map(|p| p.1).sum();
        assert_eq!(total, 15 + 4);
    }

    #[test]
    fn revision_annotations() {
        let mut d = dep(3, pct("25%"), pct("25%"));
        d.metadata.annotations = Some(BTreeMap::from([
            ("kubernetes.io/change-cause".to_string(), "v2".to_string()),
            (REVISION.to_string(), "1".to_string()),
        ]));
        let mut r = rs("r", 0, 0, 0, None);
        assert!(set_new_rs_annotations(&d, &mut r, 2, false));
        let a = r.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION], "2");
        assert_eq!(a["kubernetes.io/change-cause"], "v2");
        assert_eq!(a[DESIRED_REPLICAS], "3");
        assert_eq!(a[MAX_REPLICAS], "4");
        assert!(!set_new_rs_annotations(&d, &mut r, 2, true));
        assert!(set_new_rs_annotations(&d, &mut r, 5, true));
        let a = r.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION], "5");
        assert_eq!(a[REVISION_HISTORY], "2");
    }

    #[test]
    fn status_and_conditions() {
        let d = dep(3, IntOrString::Int(1), IntOrString::Int(0));
        let old = rs("old", 2, 2, 0, None);
        let new = rs("new", 2, 1, 10, None);
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let s = calculate_status(&[&old, &new], Some(&new), &d, now);
        assert_eq!(s.replicas, Some(4));
        assert_eq!(s.updated_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(3));
        assert_eq!(s.unavailable_replicas, Some(1));
        let empty = calculate_status(&[], None, &d, now);
        assert_eq!(empty.replicas, None);
        let c = get_condition(&s, "Available").unwrap();
        assert_eq!(c.reason.as_deref(), Some("MinimumReplicasAvailable"));
        assert!(!deployment_complete(&d, &s));
        let new3 = rs("new", 3, 3, 10, None);
        let s = calculate_status(&[&new3], Some(&new3), &d, now);
        assert!(deployment_complete(&d, &s));
        let mut s2 = s.clone();
        let c0 = get_condition(&s, "Available").unwrap().clone();
        set_condition(
            &mut s2,
            new_condition(
                "Available",
                "True",
                "Other",
                "x".into(),
                now + jiff::SignedDuration::from_secs(5),
            ),
        );
        let c1 = get_condition(&s2, "Available").unwrap();
        assert_eq!(c1.last_transition_time, c0.last_transition_time);
    }
}
