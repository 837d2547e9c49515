//! The disruption controller: keeps each PodDisruptionBudget's status (expectedPods,
//! currentHealthy, desiredHealthy, disruptionsAllowed, the DisruptionAllowed condition,
//! observedGeneration) up to date, and prunes `disruptedPods` entries whose pod is gone or
//! whose eviction did not happen within two minutes, as upstream's `disruption` controller.

use crate::cachedpod::CachedPod;
use crate::recorder::{Recorder, NORMAL, WARNING};
use crate::{Ctx, Error};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How long an eviction may take before its disruptedPods entry is dropped.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// Resolves an int-or-percent against `total`, rounding percentages up (upstream's
/// GetScaledValueFromIntOrPercent with roundUp=true).
pub fn scaled(v: &IntOrString, total: i32) -> Result<i32, Error> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let p: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| Error::Invalid(format!("invalid value for IntOrString: {s:?}")))?;
            Ok(((p * total as i64 + 99) / 100) as i32)
        }
    }
}

/// (expectedPods, desiredHealthy) from the PDB spec. `pod_count` is the number of matching
/// pods, `scale` the sum of the owning controllers' replicas (for percentages and
/// maxUnavailable).
pub fn expected_and_desired(
    min_available: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    pod_count: i32,
    scale: i32,
) -> Result<(i32, i32), Error> {
    if let Some(mu) = max_unavailable {
        let mu = scaled(mu, scale)?;
        return Ok((scale, (scale - mu).max(0)));
    }
    match min_available {
        Some(IntOrString::Int(i)) => Ok((pod_count, *i)),
        Some(v) => Ok((scale, scaled(v, scale)?)),
        None => Ok((pod_count, 0)),
    }
}

/// disruptionsAllowed as upstream computes it.
pub fn disruptions_allowed(current_healthy: i32, desired_healthy: i32, expected: i32) -> i32 {
    let d = current_healthy - desired_healthy;
    if expected <= 0 || d <= 0 {
        0
    } else {
        d
    }
}

/// Prunes disruptedPods: keeps entries whose pod still exists, is not being deleted and whose
/// eviction is younger than the timeout. Returns the kept map and the earliest expiry.
pub fn prune_disrupted(
    disrupted: &BTreeMap<String, Time>,
    live: &HashMap<String, bool>, // pod name → being deleted
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let timeout = jiff::SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or_default();
    for (name, t) in disrupted {
        match live.get(name) {
            Some(false) => {}
            _ => continue,
        }
        let expiry = t.0 + timeout;
        if expiry < now {
            continue;
        }
        recheck = Some(recheck.map_or(expiry, |r| r.min(expiry)));
        kept.insert(name.clone(), t.clone());
    }
    (kept, recheck)
}

fn is_ready(p: &CachedPod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

struct State {
    ctx: Arc<Ctx>,
    pods: Store<CachedPod>,
    rs: Store<ReplicaSet>,
    deploy: Store<Deployment>,
    sts: Store<StatefulSet>,
    recorder: Recorder,
}

fn pdbs_in(
    store: &Store<PodDisruptionBudget>,
    ns: Option<String>,
) -> Vec<ObjectRef<PodDisruptionBudget>> {
    store
        .state()
        .iter()
        .filter(|p| p.namespace() == ns)
        .map(|p| ObjectRef::from(p.as_ref()))
        .collect()
}

pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let pdb_sub = ctx.informers.pdbs.subscribe();
    let pod_sub = ctx.informers.pods.subscribe();
    let rs_sub = ctx.informers.replicasets.subscribe();
    let deploy_sub = ctx.informers.deployments.subscribe();
    let sts_sub = ctx.informers.statefulsets.subscribe();
    let pdbs = ctx.informers.pdbs.store();
    let state = Arc::new(State {
        pods: ctx.informers.pods.store(),
        rs: ctx.informers.replicasets.store(),
        deploy: ctx.informers.deployments.store(),
        sts: ctx.informers.statefulsets.store(),
        recorder: Recorder::new(ctx.client.clone(), "controllermanager"),
        ctx: ctx.clone(),
    });
    let (p1, p2, p3, p4) = (pdbs.clone(), pdbs.clone(), pdbs.clone(), pdbs.clone());
    Controller::for_shared_stream(pdb_sub, pdbs)
        .watches_shared_stream(pod_sub, move |o: Arc<CachedPod>| {
            pdbs_in(&p1, o.namespace())
        })
        .watches_shared_stream(rs_sub, move |o: Arc<ReplicaSet>| {
            pdbs_in(&p2, o.namespace())
        })
        .watches_shared_stream(deploy_sub, move |o: Arc<Deployment>| {
            pdbs_in(&p3, o.namespace())
        })
        .watches_shared_stream(sts_sub, move |o: Arc<StatefulSet>| {
            pdbs_in(&p4, o.namespace())
        })
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(_: Arc<PodDisruptionBudget>, e: &Error, _: Arc<State>) -> Action {
    tracing::debug!(error = %e, "disruption reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Sum of the scales of the controllers owning `pods` (each controller counted once).
/// Pods of kinds without a known scale count one each; unmanaged pods are listed.
fn expected_scale(st: &State, ns: &str, pods: &[Arc<CachedPod>]) -> (i32, Vec<String>) {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut unmanaged = Vec::new();
    for p in pods {
        let Some(c) = p
            .owner_references()
            .iter()
            .find(|r| r.controller == Some(true))
        else {
            unmanaged.push(p.name_any());
            continue;
        };
        let replicas = match c.kind.as_str() {
            "ReplicaSet" => st
                .rs
                .get(&ObjectRef::new(&c.name).within(ns))
                .filter(|r| r.uid() == Some(c.uid.clone()))
                .map(|rs| {
                    // A ReplicaSet owned by a Deployment scales with the Deployment.
                    if let Some(d) = rs
                        .owner_references()
                        .iter()
                        .find(|r| r.controller == Some(true) && r.kind == "Deployment")
                    {
                        if let Some(dep) = st.deploy.get(&ObjectRef::new(&d.name).within(ns)) {
                            return (
                                dep.uid().unwrap_or_default(),
                                dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                            );
                        }
                    }
                    (
                        c.uid.clone(),
                        rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                }),
            "StatefulSet" => st
                .sts
                .get(&ObjectRef::new(&c.name).within(ns))
                .filter(|s| s.uid() == Some(c.uid.clone()))
                .map(|s| {
                    (
                        c.uid.clone(),
                        s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                }),
            "Deployment" => st.deploy.get(&ObjectRef::new(&c.name).within(ns)).map(|d| {
                (
                    c.uid.clone(),
                    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                )
            }),
            _ => None,
        };
        match replicas {
            Some((uid, n)) => {
                if seen.insert(uid) {
                    total += n;
                }
            }
            // Fallback: the matching pods themselves.
            None => total += 1,
        }
    }
    (total, unmanaged)
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, st: Arc<State>) -> Result<Action, Error> {
    let ns = pdb.namespace().unwrap_or_default();
    let name = pdb.name_any();
    let now = Timestamp::now();
    let spec = pdb.spec.clone().unwrap_or_default();
    let pods: Vec<Arc<CachedPod>> = st
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| crate::meta::selector_matches_opt(spec.selector.as_ref(), p.labels()))
        .collect();
    let old = pdb.status.clone().unwrap_or_default();

    let needs_scale = spec.max_unavailable.is_some()
        || matches!(spec.min_available, Some(IntOrString::String(_)));
    let (scale, unmanaged) = if needs_scale {
        expected_scale(&st, &ns, &pods)
    } else {
        (pods.len() as i32, Vec::new())
    };
    if !unmanaged.is_empty() && needs_scale {
        st.recorder
            .record(&*pdb, WARNING, "UnmanagedPods", &format!(
                "Pods selected by this PodDisruptionBudget (selector: {:?}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
                spec.selector
            ))
            .await;
    }
    let (expected, desired) = match expected_and_desired(
        spec.min_available.as_ref(),
        spec.max_unavailable.as_ref(),
        pods.len() as i32,
        scale,
    ) {
        Ok(v) => v,
        Err(e) => {
            st.recorder
                .record(
                    &*pdb,
                    WARNING,
                    "CalculateExpectedPodCountFailed",
                    &format!("Failed to calculate the number of expected pods: {e}"),
                )
                .await;
            return Err(e);
        }
    };

    let live: HashMap<String, bool> = pods
        .iter()
        .map(|p| (p.name_any(), p.metadata.deletion_timestamp.is_some()))
        .collect();
    let (disrupted, recheck) =
        prune_disrupted(&old.disrupted_pods.clone().unwrap_or_default(), &live, now);
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(&p.name_any()))
        .filter(|p| is_ready(p))
        .count() as i32;
    let allowed = disruptions_allowed(healthy, desired, expected);

    let generation = pdb.metadata.generation;
    let (status, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let mut conditions = old.conditions.clone().unwrap_or_default();
    match conditions
        .iter_mut()
        .find(|c| c.type_ == "DisruptionAllowed")
    {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status.into();
            c.reason = reason.into();
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: "DisruptionAllowed".into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time(now),
            observed_generation: generation,
        }),
    }
    let new = PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        disruptions_allowed: allowed,
        expected_pods: expected,
        observed_generation: generation,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted.clone()),
        conditions: Some(conditions),
    };
    let old_norm = PodDisruptionBudgetStatus {
        disrupted_pods: old.disrupted_pods.clone().filter(|d| !d.is_empty()),
        ..old.clone()
    };
    if new != old_norm {
        let dropped = old
            .disrupted_pods
            .iter()
            .flatten()
            .filter(|(k, _)| !disrupted.contains_key(*k) && live.get(*k) == Some(&false))
            .count();
        let mut obj = (*pdb).clone();
        obj.status = Some(new);
        let api: Api<PodDisruptionBudget> = Api::namespaced(st.ctx.client.clone(), &ns);
        match api
            .replace_status(&name, &PostParams::default(), &obj)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
                return Ok(Action::requeue(Duration::from_millis(200)))
            }
            Err(e) => return Err(e.into()),
        }
        if dropped > 0 {
            st.recorder
                .record(
                    &*pdb,
                    NORMAL,
                    "NotDeleted",
                    "Pod was expected by PDB to be deleted but it wasn't",
                )
                .await;
        }
    }
    // Pod changes and deletions wake the PDB; only a pending eviction's timeout needs a timer.
    Ok(match recheck {
        Some(t) => {
            Action::requeue(t.duration_since(now).unsigned_abs() + Duration::from_millis(100))
        }
        None => Action::await_change(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdb_math() {
        let int = IntOrString::Int;
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(
            expected_and_desired(Some(&int(2)), None, 3, 0).unwrap(),
            (3, 2)
        );
        assert_eq!(
            expected_and_desired(Some(&pct("50%")), None, 3, 5).unwrap(),
            (5, 3)
        );
        assert_eq!(
            expected_and_desired(None, Some(&int(1)), 3, 4).unwrap(),
            (4, 3)
        );
        assert_eq!(
            expected_and_desired(None, Some(&pct("30%")), 3, 10).unwrap(),
            (10, 7)
        );
        assert_eq!(
            expected_and_desired(None, Some(&int(5)), 3, 2).unwrap(),
            (2, 0)
        );
        assert!(expected_and_desired(None, Some(&pct("x")), 3, 2).is_err());
        assert_eq!(disruptions_allowed(3, 2, 3), 1);
        assert_eq!(disruptions_allowed(1, 2, 3), 0);
        assert_eq!(disruptions_allowed(3, 0, 0), 0);
    }

    #[test]
    fn disrupted_pods_pruned() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let at = |s: i64| Time(now + jiff::SignedDuration::from_secs(s));
        let d: BTreeMap<String, Time> = [
            ("fresh".to_string(), at(-10)),
            ("old".to_string(), at(-121)),
            ("gone".to_string(), at(-1)),
            ("deleting".to_string(), at(-1)),
        ]
        .into();
        let live: HashMap<String, bool> = [
            ("fresh".to_string(), false),
            ("old".to_string(), false),
            ("deleting".to_string(), true),
        ]
        .into();
        let (kept, recheck) = prune_disrupted(&d, &live, now);
        assert_eq!(kept.keys().collect::<Vec<_>>(), vec!["fresh"]);
        assert_eq!(recheck, Some(now + jiff::SignedDuration::from_secs(110)));
    }
}
