//! The statefulset controller (upstream `pkg/controller/statefulset`): pods `<name>-<ordinal>`
//! with stable names and hostnames, created in order (OrderedReady: next only when the
//! previous ones are Running and Ready; scale down from the highest ordinal, one at a time) or
//! all at once (Parallel). volumeClaimTemplates become PVCs `<claim>-<name>-<ordinal>` (created
//! only; no provisioning, always retained). Templates are versioned by ControllerRevisions;
//! RollingUpdate replaces pods from the highest ordinal down to the partition, one at a time;
//! OnDelete replaces pods only when they are deleted.
//!
//! Not implemented: maxUnavailable (alpha), PVC retention policy `Delete`, orphan adoption.

use crate::cachedpod::CachedPod;
use crate::meta;
use crate::podctl::{self, Expectations, REVISION_HASH_LABEL};
use crate::recorder::Recorder;
use crate::{Ctx, Error};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::ResourceExt;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const COMPONENT: &str = "statefulset-controller";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

struct State {
    ctx: Arc<Ctx>,
    rec: Recorder,
    exp: Expectations,
}

pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let sts = ctx.informers.statefulsets.subscribe();
    let pods = ctx.informers.pods.subscribe();
    let crs = ctx.informers.controllerrevisions.subscribe();
    let state = Arc::new(State {
        rec: Recorder::new(ctx.client.clone(), COMPONENT),
        exp: Expectations::default(),
        ctx: ctx.clone(),
    });
    Controller::for_shared_stream(sts, ctx.informers.statefulsets.store())
        .owns_shared_stream(pods)
        .owns_shared_stream(crs)
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(_s: Arc<StatefulSet>, err: &Error, _st: Arc<State>) -> Action {
    tracing::debug!(error = %err, "statefulset sync failed");
    Action::requeue(Duration::from_secs(5))
}

/// The ordinal of a pod named `<set>-<ordinal>`.
pub fn ordinal(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

fn running_ready(p: &CachedPod) -> bool {
    podctl::phase(p) == "Running" && podctl::pod_ready(p)
}

/// One step of the plan for a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the pod of this ordinal.
    Create(i32),
    /// Delete this pod (by ordinal): failed, condemned, or outdated.
    Delete(i32),
}

/// What a pod looks like to the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodView {
    pub ordinal: i32,
    pub healthy: bool,
    pub terminating: bool,
    pub failed: bool,
    pub updated: bool,
}

/// Upstream's `updateStatefulSet` decisions, pure: which pods to create or delete now.
/// `start` is `spec.ordinals.start`; `partition` is None for OnDelete.
pub fn plan(
    pods: &[PodView],
    start: i32,
    replicas: i32,
    ordered: bool,
    partition: Option<i32>,
) -> Vec<Step> {
    let by_ord: BTreeMap<i32, &PodView> = pods.iter().map(|p| (p.ordinal, p)).collect();
    let end = start + replicas;
    let mut steps = Vec::new();
    for o in start..end {
        match by_ord.get(&o) {
            None => {
                steps.push(Step::Create(o));
                if ordered {
                    return steps;
                }
            }
            Some(p) if p.failed && !p.terminating => {
                steps.push(Step::Delete(o));
                if ordered {
                    return steps;
                }
            }
            Some(p) if ordered && (p.terminating || !p.healthy) => return steps,
            _ => {}
        }
    }
    // Condemned: highest first.
    let condemned: Vec<&PodView> = by_ord
        .values()
        .rev()
        .filter(|p| p.ordinal >= end || p.ordinal < start)
        .copied()
        .collect();
    for p in condemned {
        if p.terminating {
            if ordered {
                return steps;
            }
            continue;
        }
        steps.push(Step::Delete(p.ordinal));
        if ordered {
            return steps;
        }
    }
    if !steps.is_empty() {
        return steps;
    }
    // Rolling update: highest ordinal first, down to the partition, one at a time.
    if let Some(partition) = partition {
        for o in (start.max(start + partition)..end).rev() {
            let Some(p) = by_ord.get(&o) else { continue };
            if !p.updated && !p.terminating {
                steps.push(Step::Delete(o));
                return steps;
            }
            if !p.healthy || p.terminating {
                return steps;
            }
        }
    }
    steps
}

async fn reconcile(set: Arc<StatefulSet>, s: Arc<State>) -> Result<Action, Error> {
    let ctx = &s.ctx;
    crate::informers::wait_ready(&ctx.informers.pods.store()).await;
    crate::informers::wait_ready(&ctx.informers.controllerrevisions.store()).await;
    let key = meta::key(set.as_ref());
    if set.metadata.deletion_timestamp.is_some() {
        s.exp.forget(&key);
        return Ok(Action::await_change());
    }
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods = podctl::owned_pods(&ctx.informers.pods.store(), set.as_ref());
    if !s.exp.satisfied_by_pods(&key, &pods) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let spec = set.spec.clone().unwrap_or_default();
    let old_status = set.status.clone().unwrap_or_default();
    let mut collision = old_status.collision_count.unwrap_or(0);
    let revisions =
        podctl::owned_revisions(&ctx.informers.controllerrevisions.store(), set.as_ref());
    let update = podctl::ensure_revision(
        &ctx.client,
        &revisions,
        set.as_ref(),
        &spec.template,
        &mut collision,
    )
    .await?;
    let update_name = update.name_any();
    let current: ControllerRevision = old_status
        .current_revision
        .as_ref()
        .and_then(|c| revisions.iter().find(|r| r.name_any() == *c))
        .map(|r| (**r).clone())
        .unwrap_or_else(|| update.clone());
    let current_name = current.name_any();
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let replicas = spec.replicas.unwrap_or(1);
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate";
    let partition = rolling.then(|| {
        strategy
            .rolling_update
            .as_ref()
            .and_then(|r| r.partition)
            .unwrap_or(0)
    });
    let now = jiff::Timestamp::now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let revision_of = |p: &CachedPod| {
        p.labels()
            .get(REVISION_HASH_LABEL)
            .cloned()
            .unwrap_or_default()
    };
    let mut by_ord: BTreeMap<i32, &Arc<CachedPod>> = BTreeMap::new();
    for p in &pods {
        if let Some(o) = ordinal(&name, &p.name_any()) {
            by_ord.insert(o, p);
        }
    }
    let views: Vec<PodView> = by_ord
        .iter()
        .map(|(o, p)| PodView {
            ordinal: *o,
            healthy: running_ready(p),
            terminating: podctl::is_terminating(p),
            failed: podctl::is_finished(p),
            updated: revision_of(p) == update_name,
        })
        .collect();
    let steps = plan(&views, start, replicas, ordered, partition);
    for step in &steps {
        match step {
            Step::Create(o) => {
                let use_current =
                    current_name != update_name && partition.is_some_and(|p| *o < start + p);
                let (tmpl, rev) = if use_current {
                    (
                        podctl::revision_template(&current)
                            .unwrap_or_else(|| spec.template.clone()),
                        current_name.as_str(),
                    )
                } else {
                    (spec.template.clone(), update_name.as_str())
                };
                create_claims(&s, &set, *o).await?;
                let pod = pod_for(&set, &tmpl, rev, *o);
                match pod_api.create(&PostParams::default(), &pod).await {
                    Ok(p) => {
                        s.exp.expect_create(&key, p.name_any());
                        s.rec
                            .record(
                                set.as_ref(),
                                "Normal",
                                "SuccessfulCreate",
                                format!(
                                    "create Pod {} in StatefulSet {name} successful",
                                    p.name_any()
                                ),
                            )
                            .await;
                    }
                    Err(e) if podctl::is_conflict(&e) => {}
                    Err(e) => {
                        s.rec
                            .record(
                                set.as_ref(),
                                "Warning",
                                "FailedCreate",
                                format!(
                                    "create Pod {} in StatefulSet {name} failed error: {e}",
                                    pod.name_any()
                                ),
                            )
                            .await;
                        return Err(e.into());
                    }
                }
            }
            Step::Delete(o) => {
                let Some(p) = by_ord.get(o) else { continue };
                s.exp.expect_delete(&key, p.uid().unwrap_or_default());
                match pod_api
                    .delete(&p.name_any(), &DeleteParams::default())
                    .await
                {
                    Ok(_) => {
                        s.rec
                            .record(
                                set.as_ref(),
                                "Normal",
                                "SuccessfulDelete",
                                format!(
                                    "delete Pod {} in StatefulSet {name} successful",
                                    p.name_any()
                                ),
                            )
                            .await
                    }
                    Err(e) if podctl::is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    // Status.
    let (mut n, mut ready, mut avail, mut cur, mut upd) = (0, 0, 0, 0, 0);
    for p in &pods {
        n += 1;
        if running_ready(p) {
            ready += 1;
            if podctl::pod_available(p, min_ready, now) {
                avail += 1;
            }
        }
        if !podctl::is_terminating(p) {
            let r = revision_of(p);
            if r == current_name {
                cur += 1;
            }
            if r == update_name {
                upd += 1;
            }
        }
    }
    let mut status = StatefulSetStatus {
        available_replicas: Some(avail),
        collision_count: (collision > 0).then_some(collision),
        conditions: old_status.conditions.clone(),
        current_replicas: Some(cur),
        current_revision: Some(current_name.clone()),
        observed_generation: set.metadata.generation,
        ready_replicas: Some(ready),
        replicas: n,
        update_revision: Some(update_name.clone()),
        updated_replicas: Some(upd),
    };
    if rolling && upd == n && ready == n && n == replicas {
        status.current_replicas = Some(upd);
        status.current_revision = Some(update_name.clone());
    }
    if status != old_status {
        let patch = podctl::merge_replace(
            &serde_json::to_value(&old_status).unwrap_or_default(),
            &serde_json::to_value(&status).unwrap_or_default(),
        );
        Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": patch})),
            )
            .await?;
    }
    let keep: HashSet<String> = pods
        .iter()
        .map(|p| revision_of(p))
        .chain([current_name, update_name])
        .collect();
    podctl::truncate_history(
        &ctx.client,
        &revisions,
        spec.revision_history_limit.unwrap_or(10),
        &keep,
    )
    .await?;
    Ok(if min_ready > 0 && avail < ready {
        Action::requeue(Duration::from_secs(min_ready as u64))
    } else {
        Action::await_change()
    })
}

/// The PVC name for a claim template and ordinal.
pub fn claim_name(claim: &str, set: &str, ordinal: i32) -> String {
    format!("{claim}-{set}-{ordinal}")
}

async fn create_claims(s: &State, set: &StatefulSet, o: i32) -> Result<(), Error> {
    let ns = set.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(s.ctx.client.clone(), &ns);
    let spec = set.spec.clone().unwrap_or_default();
    let sel = spec.selector.match_labels.clone().unwrap_or_default();
    for t in spec.volume_claim_templates.iter().flatten() {
        let cname = claim_name(&t.name_any(), &set.name_any(), o);
        let mut labels = t.metadata.labels.clone().unwrap_or_default();
        labels.extend(sel.clone());
        let pvc = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(cname.clone()),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                annotations: t.metadata.annotations.clone(),
                ..Default::default()
            },
            spec: t.spec.clone(),
            status: None,
        };
        match api.create(&PostParams::default(), &pvc).await {
            Ok(_) => {
                s.rec
                    .record(
                        set,
                        "Normal",
                        "SuccessfulCreate",
                        format!(
                            "create Claim {cname} Pod {}-{o} in StatefulSet {} success",
                            set.name_any(),
                            set.name_any()
                        ),
                    )
                    .await
            }
            Err(e) if podctl::is_conflict(&e) => {}
            Err(e) => {
                s.rec
                    .record(set, "Warning", "FailedCreate", format!("create Claim {cname} for Pod {}-{o} in StatefulSet {} failed error: {e}", set.name_any(), set.name_any()))
                    .await;
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// The pod of an ordinal from a template and revision (upstream's `newVersionedStatefulSetPod`).
pub fn pod_for(set: &StatefulSet, tmpl: &PodTemplateSpec, revision: &str, o: i32) -> Pod {
    let name = set.name_any();
    let pod_name = format!("{name}-{o}");
    let tm = tmpl.metadata.clone().unwrap_or_default();
    let mut labels = tm.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), pod_name.clone());
    labels.insert(POD_INDEX_LABEL.into(), o.to_string());
    labels.insert(REVISION_HASH_LABEL.into(), revision.into());
    let mut spec = tmpl.spec.clone().unwrap_or_default();
    spec.hostname = Some(pod_name.clone());
    if let Some(svc) = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty())
    {
        spec.subdomain = Some(svc);
    }
    for t in set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .into_iter()
        .flatten()
    {
        let vname = t.name_any();
        let vol = Volume {
            name: vname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&vname, &name, o),
                read_only: None,
            }),
            ..Default::default()
        };
        let vols = spec.volumes.get_or_insert_with(Vec::new);
        vols.retain(|v| v.name != vname);
        vols.push(vol);
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![meta::new_controller_ref(set)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ordinal: i32, healthy: bool, updated: bool) -> PodView {
        PodView {
            ordinal,
            healthy,
            terminating: false,
            failed: false,
            updated,
        }
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal("web", "web-3"), Some(3));
        assert_eq!(ordinal("web", "web-x"), None);
        assert_eq!(ordinal("web", "webby-1"), None);
    }

    #[test]
    fn ordered_scale_up_waits() {
        assert_eq!(plan(&[], 0, 3, true, Some(0)), vec![Step::Create(0)]);
        assert_eq!(plan(&[v(0, false, true)], 0, 3, true, Some(0)), vec![]);
        assert_eq!(
            plan(&[v(0, true, true)], 0, 3, true, Some(0)),
            vec![Step::Create(1)]
        );
        assert_eq!(
            plan(&[], 0, 3, false, Some(0)),
            vec![Step::Create(0), Step::Create(1), Step::Create(2)]
        );
        assert_eq!(
            plan(&[], 5, 2, false, None),
            vec![Step::Create(5), Step::Create(6)]
        );
    }

    #[test]
    fn ordered_scale_down_highest_first() {
        let pods = [v(0, true, true), v(1, true, true), v(2, true, true)];
        assert_eq!(plan(&pods, 0, 1, true, Some(0)), vec![Step::Delete(2)]);
        assert_eq!(
            plan(&pods, 0, 1, false, Some(0)),
            vec![Step::Delete(2), Step::Delete(1)]
        );
        let mut terminating = pods;
        terminating[2].terminating = true;
        assert_eq!(plan(&terminating, 0, 1, true, Some(0)), vec![]);
    }

    #[test]
    fn rolling_update_with_partition() {
        let pods = [v(0, true, false), v(1, true, false), v(2, true, false)];
        assert_eq!(plan(&pods, 0, 3, true, Some(0)), vec![Step::Delete(2)]);
        let pods = [v(0, true, false), v(1, true, false), v(2, true, true)];
        assert_eq!(plan(&pods, 0, 3, true, Some(0)), vec![Step::Delete(1)]);
        assert_eq!(plan(&pods, 0, 3, true, Some(2)), vec![]);
        // Waits for the updated pod to become healthy.
        let pods = [v(0, true, false), v(1, true, false), v(2, false, true)];
        assert_eq!(plan(&pods, 0, 3, false, Some(0)), vec![]);
        // OnDelete never deletes for an update.
        let pods = [v(0, true, false)];
        assert_eq!(plan(&pods, 0, 1, true, None), vec![]);
    }

    #[test]
    fn failed_pods_are_replaced() {
        let mut p = v(0, false, true);
        p.failed = true;
        assert_eq!(plan(&[p], 0, 1, true, Some(0)), vec![Step::Delete(0)]);
    }

    #[test]
    fn pod_shape() {
        let mut set = StatefulSet::default();
        set.metadata.name = Some("web".into());
        set.metadata.uid = Some("u".into());
        let p = pod_for(&set, &PodTemplateSpec::default(), "web-abc", 1);
        assert_eq!(p.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(p.labels()[POD_INDEX_LABEL], "1");
        assert_eq!(p.labels()[REVISION_HASH_LABEL], "web-abc");
        assert_eq!(claim_name("www", "web", 1), "www-web-1");
    }
}
