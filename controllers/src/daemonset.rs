//! The daemonset controller (upstream `pkg/controller/daemon`): one pod per eligible node.
//!
//! A node is eligible when the pod template's nodeName, nodeSelector and required node
//! affinity match it and its NoSchedule/NoExecute taints are tolerated (a running pod stays
//! unless a NoExecute taint is untolerated). Pods get upstream's automatic daemon tolerations
//! and a required node affinity `matchFields metadata.name In [node]`, so the scheduler binds
//! them. Templates are versioned by ControllerRevisions; pods carry `controller-revision-hash`
//! and are replaced by RollingUpdate (maxUnavailable, or maxSurge) or, with OnDelete, when
//! deleted. Not implemented: failed-pod back-off, orphan adoption.

use crate::cachedpod::CachedPod;
use crate::meta;
use crate::nodelifecycle::tolerates;
use crate::podctl::{self, Expectations, REVISION_HASH_LABEL};
use crate::recorder::Recorder;
use crate::{Ctx, Error};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const COMPONENT: &str = "daemonset-controller";

struct State {
    ctx: Arc<Ctx>,
    rec: Recorder,
    exp: Expectations,
}

pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let dss = ctx.informers.daemonsets.subscribe();
    let pods = ctx.informers.pods.subscribe();
    let nodes = ctx.informers.nodes.subscribe();
    let crs = ctx.informers.controllerrevisions.subscribe();
    let state = Arc::new(State {
        rec: Recorder::new(ctx.client.clone(), COMPONENT),
        exp: Expectations::default(),
        ctx: ctx.clone(),
    });
    let ds_store = ctx.informers.daemonsets.store();
    Controller::for_shared_stream(dss, ds_store.clone())
        .owns_shared_stream(pods)
        .owns_shared_stream(crs)
        .watches_shared_stream(nodes, move |_node: Arc<Node>| {
            ds_store
                .state()
                .iter()
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(_ds: Arc<DaemonSet>, err: &Error, _s: Arc<State>) -> Action {
    tracing::debug!(error = %err, "daemonset sync failed");
    Action::requeue(Duration::from_secs(5))
}

/// Upstream's `AddOrUpdateDaemonPodTolerations`.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut add = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        add.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tols = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in add {
        let t = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Default::default()
        };
        if !tols.contains(&t) {
            tols.push(t);
        }
    }
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let vals = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| vals.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !vals.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(x)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                vals.first().and_then(|x| x.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > x
            } else {
                v < x
            }
        }
        _ => false,
    }
}

fn term_matches(t: &NodeSelectorTerm, node: &Node) -> bool {
    let labels = node.labels();
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let v = (r.key == "metadata.name").then(|| node.name_any());
            requirement_matches(r, v.as_deref())
        })
}

/// (should run, should continue running) for a daemon pod spec on a node, as upstream's
/// `NodeShouldRunDaemonPod`.
pub fn eligibility(spec: &PodSpec, node: &Node) -> (bool, bool) {
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        if n != node.name_any() {
            return (false, false);
        }
    }
    let labels = node.labels();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let affinity_ok = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|sel| {
            sel.node_selector_terms
                .iter()
                .any(|t| term_matches(t, node))
        });
    if !selector_ok || !affinity_ok {
        return (false, false);
    }
    let mut spec = spec.clone();
    add_daemon_tolerations(&mut spec);
    let tols = spec.tolerations.unwrap_or_default();
    let untolerated = |effect: &str| {
        node.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .any(|t| t.effect == effect && !tols.iter().any(|tol| tolerates(tol, t)))
    };
    let no_exec = untolerated("NoExecute");
    (!no_exec && !untolerated("NoSchedule"), !no_exec)
}

/// Upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let sel = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
        }],
    };
    let aff = spec.affinity.get_or_insert_with(Affinity::default);
    let na = aff.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(sel);
}

/// The node a daemon pod is for: its nodeName or the node of its matchFields affinity.
pub fn target_node(pod: &CachedPod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// A node that should run the daemon, with its oldest outdated and up-to-date pods.
type NodePods<'a> = (
    String,
    Option<&'a Arc<CachedPod>>,
    Option<&'a Arc<CachedPod>>,
);

fn hash_of(p: &CachedPod) -> &str {
    p.labels()
        .get(REVISION_HASH_LABEL)
        .map(String::as_str)
        .unwrap_or("")
}

async fn reconcile(ds: Arc<DaemonSet>, s: Arc<State>) -> Result<Action, Error> {
    let ctx = &s.ctx;
    crate::informers::wait_ready(&ctx.informers.pods.store()).await;
    crate::informers::wait_ready(&ctx.informers.nodes.store()).await;
    crate::informers::wait_ready(&ctx.informers.controllerrevisions.store()).await;
    let key = meta::key(ds.as_ref());
    if ds.metadata.deletion_timestamp.is_some() {
        s.exp.forget(&key);
        return Ok(Action::await_change());
    }
    let ns = ds.namespace().unwrap_or_default();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let all_pods = podctl::owned_pods(&ctx.informers.pods.store(), ds.as_ref());
    if !s.exp.satisfied_by_pods(&key, &all_pods) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let spec = ds.spec.clone().unwrap_or_default();
    let old_status = ds.status.clone().unwrap_or_default();
    let mut collision = old_status.collision_count.unwrap_or(0);
    let revisions =
        podctl::owned_revisions(&ctx.informers.controllerrevisions.store(), ds.as_ref());
    let cur = podctl::ensure_revision(
        &ctx.client,
        &revisions,
        ds.as_ref(),
        &spec.template,
        &mut collision,
    )
    .await?;
    let hash = cur
        .labels()
        .get(REVISION_HASH_LABEL)
        .cloned()
        .unwrap_or_default();
    let now = jiff::Timestamp::now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let tspec = spec.template.spec.clone().unwrap_or_default();
    let nodes = ctx.informers.nodes.store().state();
    let pods: Vec<&Arc<CachedPod>> = all_pods
        .iter()
        .filter(|p| !podctl::is_terminating(p))
        .collect();
    let mut by_node: BTreeMap<String, Vec<&Arc<CachedPod>>> = BTreeMap::new();
    for p in &pods {
        if let Some(n) = target_node(p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let mut create_on: Vec<String> = Vec::new();
    let mut delete: Vec<&Arc<CachedPod>> = Vec::new();
    let (mut desired, mut current, mut mis, mut ready, mut avail, mut updated) = (0, 0, 0, 0, 0, 0);
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let ru = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.rolling_update.clone())
        .unwrap_or_default();
    // (node, old pod, new pod) on nodes that should run the daemon.
    let mut rollout: Vec<NodePods> = Vec::new();
    for node in &nodes {
        let name = node.name_any();
        let (run, keep) = eligibility(&tspec, node);
        let mut here: Vec<&Arc<CachedPod>> = by_node.get(&name).cloned().unwrap_or_default();
        // Failed pods are deleted and replaced.
        let (failed, live): (Vec<_>, Vec<_>) =
            here.drain(..).partition(|p| podctl::phase(p) == "Failed");
        delete.extend(failed);
        let mut live = live;
        if run {
            desired += 1;
        }
        if !keep {
            if !live.is_empty() {
                mis += 1;
            }
            delete.extend(live);
            continue;
        }
        if !run {
            if !live.is_empty() {
                mis += 1;
            }
            continue;
        }
        if live.is_empty() {
            create_on.push(name);
            continue;
        }
        current += 1;
        live.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let new: Vec<&Arc<CachedPod>> = live
            .iter()
            .copied()
            .filter(|p| hash_of(p) == hash)
            .collect();
        let old: Vec<&Arc<CachedPod>> = live
            .iter()
            .copied()
            .filter(|p| hash_of(p) != hash)
            .collect();
        // Duplicates: keep the oldest of each kind.
        delete.extend(new.iter().skip(1));
        delete.extend(old.iter().skip(1));
        if new.first().is_some_and(|p| podctl::pod_ready(p))
            || old.first().is_some_and(|p| podctl::pod_ready(p))
        {
            ready += 1;
        }
        let avail_here = new
            .first()
            .is_some_and(|p| podctl::pod_available(p, min_ready, now))
            || old
                .first()
                .is_some_and(|p| podctl::pod_available(p, min_ready, now));
        if avail_here {
            avail += 1;
        }
        if !new.is_empty() {
            updated += 1;
        }
        rollout.push((name, old.first().copied(), new.first().copied()));
    }
    if rolling {
        let max_surge = podctl::scaled(ru.max_surge.as_ref(), desired, true, 0);
        let mut max_unavail = podctl::scaled(ru.max_unavailable.as_ref(), desired, true, 1);
        if max_surge == 0 && max_unavail == 0 {
            max_unavail = 1;
        }
        let mut unavailable = desired - avail;
        if max_surge == 0 {
            let mut candidates = Vec::new();
            for (_, old, new) in &rollout {
                let (Some(old), None) = (old, new) else {
                    continue;
                };
                if !podctl::pod_available(old, min_ready, now) {
                    delete.push(old);
                } else {
                    candidates.push(*old);
                }
            }
            for old in candidates {
                if unavailable >= max_unavail {
                    break;
                }
                delete.push(old);
                unavailable += 1;
            }
        } else {
            let mut surging = rollout
                .iter()
                .filter(|(_, o, n)| o.is_some() && n.is_some())
                .count() as i32;
            for (node, old, new) in &rollout {
                match (old, new) {
                    (Some(old), None) if !podctl::pod_available(old, min_ready, now) => {
                        delete.push(old)
                    }
                    (Some(_), None) if surging < max_surge => {
                        create_on.push(node.clone());
                        surging += 1;
                    }
                    (Some(old), Some(new)) if podctl::pod_available(new, min_ready, now) => {
                        delete.push(old)
                    }
                    _ => {}
                }
            }
        }
    }
    // Act.
    for p in &delete {
        s.exp.expect_delete(&key, p.uid().unwrap_or_default());
        match pod_api
            .delete(&p.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {
                s.rec
                    .record(
                        ds.as_ref(),
                        "Normal",
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", p.name_any()),
                    )
                    .await
            }
            Err(e) if podctl::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for node in &create_on {
        let pod = pod_for(&ds, &hash, node);
        match pod_api.create(&PostParams::default(), &pod).await {
            Ok(p) => {
                s.exp.expect_create(&key, p.name_any());
                s.rec
                    .record(
                        ds.as_ref(),
                        "Normal",
                        "SuccessfulCreate",
                        format!("Created pod: {}", p.name_any()),
                    )
                    .await;
            }
            Err(e) => {
                s.rec
                    .record(
                        ds.as_ref(),
                        "Warning",
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    )
                    .await;
                return Err(e.into());
            }
        }
    }
    // History.
    let keep: HashSet<String> = all_pods
        .iter()
        .map(|p| hash_of(p).to_string())
        .chain([hash.clone()])
        .collect();
    podctl::truncate_history(
        &ctx.client,
        &revisions,
        spec.revision_history_limit.unwrap_or(10),
        &keep,
    )
    .await?;
    let status = DaemonSetStatus {
        collision_count: (collision > 0).then_some(collision),
        conditions: old_status.conditions.clone(),
        current_number_scheduled: current,
        desired_number_scheduled: desired,
        number_available: (avail > 0).then_some(avail),
        number_misscheduled: mis,
        number_ready: ready,
        number_unavailable: (desired - avail > 0).then_some(desired - avail),
        observed_generation: ds.metadata.generation,
        updated_number_scheduled: (updated > 0).then_some(updated),
    };
    if status != old_status {
        let patch = podctl::merge_replace(
            &serde_json::to_value(&old_status).unwrap_or_default(),
            &serde_json::to_value(&status).unwrap_or_default(),
        );
        Api::<DaemonSet>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &ds.name_any(),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": patch})),
            )
            .await?;
    }
    // Availability depends on time when minReadySeconds is set.
    Ok(if min_ready > 0 && avail < ready {
        Action::requeue(Duration::from_secs(min_ready as u64))
    } else {
        Action::await_change()
    })
}

/// The daemon pod for a node.
pub fn pod_for(ds: &DaemonSet, hash: &str, node: &str) -> Pod {
    let tmpl = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tm = tmpl.metadata.unwrap_or_default();
    let mut labels = tm.labels.unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), hash.into());
    labels.insert(
        "pod-template-generation".into(),
        ds.metadata.generation.unwrap_or(1).to_string(),
    );
    let mut spec = tmpl.spec.unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    pin_to_node(&mut spec, node);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.name_any())),
            namespace: ds.namespace(),
            labels: Some(labels),
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![meta::new_controller_ref(ds)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, Taint};

    fn node(name: &str, labels: &[(&str, &str)], taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Default::default()
        }
    }

    #[test]
    fn selector_and_affinity() {
        let mut spec = PodSpec {
            node_selector: Some(
                [("disk".to_string(), "ssd".to_string())]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        };
        assert_eq!(
            eligibility(&spec, &node("a", &[("disk", "ssd")], vec![])),
            (true, true)
        );
        assert_eq!(eligibility(&spec, &node("b", &[], vec![])), (false, false));
        spec.node_selector = None;
        pin_to_node(&mut spec, "a");
        assert!(eligibility(&spec, &node("a", &[], vec![])).0);
        assert!(!eligibility(&spec, &node("b", &[], vec![])).0);
    }

    #[test]
    fn taints_and_tolerations() {
        let spec = PodSpec::default();
        // Automatic tolerations cover the node condition taints.
        let n = node(
            "a",
            &[],
            vec![
                taint("node.kubernetes.io/not-ready", "NoExecute"),
                taint("node.kubernetes.io/unschedulable", "NoSchedule"),
            ],
        );
        assert_eq!(eligibility(&spec, &n), (true, true));
        // A custom NoSchedule taint: do not start, but keep running.
        let n = node("a", &[], vec![taint("dedicated", "NoSchedule")]);
        assert_eq!(eligibility(&spec, &n), (false, true));
        let n = node("a", &[], vec![taint("dedicated", "NoExecute")]);
        assert_eq!(eligibility(&spec, &n), (false, false));
        let tolerant = PodSpec {
            tolerations: Some(vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Exists".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(eligibility(&tolerant, &n), (true, true));
    }

    #[test]
    fn pods_are_pinned() {
        let mut ds = DaemonSet::default();
        ds.metadata.name = Some("fluentd".into());
        ds.metadata.uid = Some("u".into());
        let p = pod_for(&ds, "abc", "node1");
        assert_eq!(
            target_node(&CachedPod::from_pod(&p)).as_deref(),
            Some("node1")
        );
        assert_eq!(p.labels()[REVISION_HASH_LABEL], "abc");
        assert_eq!(p.spec.unwrap().tolerations.unwrap().len(), 6);
    }
}
