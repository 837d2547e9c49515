//! The deployment controller (upstream `pkg/controller/deployment`): owns ReplicaSets named
//! `<deployment>-<pod-template-hash>`, rolls templates out with the RollingUpdate or
//! Recreate strategy, keeps revision and replica annotations for `kubectl rollout`, scales
//! proportionally, cleans up old ReplicaSets and reports conditions and status.

#[path = "deploy_util.rs"]
pub mod util;

use crate::cachedpod::CachedPod;
use crate::meta;
use crate::recorder::Recorder;
use crate::replicaset::util as rsu;
use crate::{Ctx, Error};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use kube::{Api, ResourceExt};
use rsu::{Backoff, Claim};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use util::*;

struct DCtx {
    ctx: Arc<Ctx>,
    pods: Store<CachedPod>,
    rss: Store<ReplicaSet>,
    rec: Recorder,
    backoff: Backoff,
}

/// Runs the deployment controller.
pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let d_sub = ctx.informers.deployments.subscribe();
    let rs_sub = ctx.informers.replicasets.subscribe();
    let pod_sub = ctx.informers.pods.subscribe();
    let ds = ctx.informers.deployments.store();
    let rss = ctx.informers.replicasets.store();
    let dctx = Arc::new(DCtx {
        pods: ctx.informers.pods.store(),
        rss: rss.clone(),
        rec: Recorder::new(ctx.client.clone(), "deployment-controller"),
        backoff: Backoff::default(),
        ctx: ctx.clone(),
    });

    let ds1 = ds.clone();
    let rs_mapper = move |rs: Arc<ReplicaSet>| -> Vec<ObjectRef<Deployment>> {
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        if let Some(r) = meta::controller_of(&rs.metadata) {
            if r.kind != "Deployment" {
                return vec![];
            }
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        let labels = rs.metadata.labels.clone().unwrap_or_default();
        ds1.state()
            .iter()
            .filter(|d| d.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|d| {
                d.spec
                    .as_ref()
                    .is_some_and(|s| meta::selector_matches(&s.selector, &labels))
            })
            .map(|d| ObjectRef::from_obj(d.as_ref()))
            .collect()
    };
    // Pods matter only to Recreate deployments (no new pods while old ones run).
    let (ds2, rss2) = (ds.clone(), rss.clone());
    let pod_mapper = move |p: Arc<CachedPod>| -> Option<ObjectRef<Deployment>> {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let r = meta::controller_of(&p.metadata).filter(|r| r.kind == "ReplicaSet")?;
        let rs = rss2.get(&ObjectRef::new(&r.name).within(&ns))?;
        let dr = meta::controller_of(&rs.metadata).filter(|r| r.kind == "Deployment")?;
        let d = ds2.get(&ObjectRef::new(&dr.name).within(&ns))?;
        (!is_rolling(&d)).then(|| ObjectRef::from_obj(d.as_ref()))
    };
    Controller::for_shared_stream(d_sub, ds)
        .watches_shared_stream(rs_sub, rs_mapper)
        .watches_shared_stream(pod_sub, pod_mapper)
        .run(reconcile, error_policy, dctx)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(d: Arc<Deployment>, err: &Error, c: Arc<DCtx>) -> Action {
    let key = meta::key_of(&d.metadata);
    tracing::debug!(deployment = %key, error = %err, "sync failed, retrying");
    Action::requeue(c.backoff.fail(&key))
}

async fn reconcile(d: Arc<Deployment>, c: Arc<DCtx>) -> Result<Action, Error> {
    let key = meta::key_of(&d.metadata);
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let mut s = Sync {
        d: d.as_ref().clone(),
        rs_api: Api::namespaced(c.ctx.client.clone(), &ns),
        d_api: Api::namespaced(c.ctx.client.clone(), &ns),
        c: &c,
        requeue: None,
    };
    s.run().await?;
    c.backoff.reset(&key);
    Ok(match s.requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// One sync of one Deployment; `d` is refreshed with every write.
struct Sync<'a> {
    d: Deployment,
    rs_api: Api<ReplicaSet>,
    d_api: Api<Deployment>,
    c: &'a DCtx,
    requeue: Option<Duration>,
}

fn refs(v: &[ReplicaSet]) -> Vec<&ReplicaSet> {
    v.iter().collect()
}

impl Sync<'_> {
    async fn run(&mut self) -> Result<(), Error> {
        let Some(spec) = self.d.spec.clone() else {
            return Ok(());
        };
        if meta::selector_is_empty(&spec.selector) {
            self.c.rec.event(
                &self.d,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            let st = self.d.status.clone().unwrap_or_default();
            if st.observed_generation < self.d.metadata.generation {
                let mut st = st;
                st.observed_generation = self.d.metadata.generation;
                self.update_status(st).await?;
            }
            return Ok(());
        }
        let rs_list = self.claim_replicasets().await?;
        if self.d.metadata.deletion_timestamp.is_some() {
            let (new_rs, olds) = self.all_rss_and_sync_revision(rs_list, false).await?;
            return self.sync_status(&olds, new_rs.as_ref()).await;
        }
        self.check_paused_conditions().await?;
        if spec.paused == Some(true) {
            return self.sync_scale(rs_list).await;
        }
        if self.is_scaling_event(rs_list.clone()).await? {
            return self.sync_scale(rs_list).await;
        }
        if is_rolling(&self.d) {
            self.rollout_rolling(rs_list).await
        } else {
            self.rollout_recreate(rs_list).await
        }
    }

    /// ReplicaSets of this Deployment, adopting orphans and releasing non-matching ones.
    async fn claim_replicasets(&mut self) -> Result<Vec<ReplicaSet>, Error> {
        let ns = self.d.metadata.namespace.clone();
        let uid = self.d.metadata.uid.clone().unwrap_or_default();
        let deleting = self.d.metadata.deletion_timestamp.is_some();
        let sel = self.d.spec.clone().unwrap_or_default().selector;
        let mut out = vec![];
        for rs in self.c.rss.state() {
            if rs.metadata.namespace != ns {
                continue;
            }
            match rsu::claim_decision(&uid, deleting, &sel, &rs.metadata) {
                Claim::Keep => out.push(rs.as_ref().clone()),
                Claim::Adopt => match rsu::adopt(&self.rs_api, &self.d, rs.as_ref()).await {
                    Ok(r) => out.push(r),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                },
                Claim::Release => rsu::release(&self.rs_api, &uid, rs.as_ref()).await?,
                Claim::Ignore => {}
            }
        }
        Ok(out)
    }

    async fn update_status(
        &mut self,
        st: k8s_openapi::api::apps::v1::DeploymentStatus,
    ) -> Result<(), Error> {
        let mut d = self.d.clone();
        d.status = Some(st);
        self.d = self
            .d_api
            .replace_status(&d.name_any(), &PostParams::default(), &d)
            .await?;
        Ok(())
    }

    /// Sets the Deployment's revision annotation (a metadata write on the main resource;
    /// upstream folds it into the status update, which this API server does not allow).
    async fn set_deployment_revision(&mut self, rev: &str) -> Result<(), Error> {
        let cur = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .cloned();
        if cur.as_deref() == Some(rev) {
            return Ok(());
        }
        let patch = serde_json::json!({"metadata": {"annotations": {REVISION: rev}}});
        self.d = self
            .d_api
            .patch(
                &self.d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    async fn check_paused_conditions(&mut self) -> Result<(), Error> {
        if progress_deadline(&self.d).is_none() {
            return Ok(());
        }
        let mut st = self.d.status.clone().unwrap_or_default();
        let reason = get_condition(&st, "Progressing").and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(TIMED_OUT) {
            return Ok(());
        }
        let paused_cond = reason.as_deref() == Some(PAUSED);
        let paused = self.d.spec.as_ref().and_then(|s| s.paused) == Some(true);
        let now = jiff::Timestamp::now();
        if paused && !paused_cond {
            set_condition(
                &mut st,
                new_condition(
                    "Progressing",
                    "Unknown",
                    PAUSED,
                    "Deployment is paused".into(),
                    now,
                ),
            );
        } else if !paused && paused_cond {
            set_condition(
                &mut st,
                new_condition(
                    "Progressing",
                    "Unknown",
                    RESUMED,
                    "Deployment is resumed".into(),
                    now,
                ),
            );
        } else {
            return Ok(());
        }
        self.update_status(st).await
    }

    /// Upstream `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created when asked
    /// and missing) and the old ones.
    async fn all_rss_and_sync_revision(
        &mut self,
        mut rs_list: Vec<ReplicaSet>,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
        rs_list.sort_by(by_creation);
        let tmpl = self
            .d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let idx = rs_list
            .iter()
            .position(|rs| equal_ignore_hash(&rs_template(rs), &tmpl));
        let existing = idx.map(|i| rs_list.remove(i));
        let olds = rs_list;
        let new_rs = self.new_replicaset(existing, &olds, create).await?;
        Ok((new_rs, olds))
    }

    async fn new_replicaset(
        &mut self,
        existing: Option<ReplicaSet>,
        olds: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>, Error> {
        let new_revision = max_revision(&refs(olds)) + 1;
        let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let now = jiff::Timestamp::now();
        if let Some(rs) = existing {
            let mut copy = rs.clone();
            let ann_changed = set_new_rs_annotations(&self.d, &mut copy, new_revision, true);
            let spec = copy.spec.get_or_insert_with(Default::default);
            let mrs_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0);
            spec.min_ready_seconds = min_ready;
            let rs = if ann_changed || mrs_changed {
                self.rs_api
                    .replace(&copy.name_any(), &PostParams::default(), &copy)
                    .await?
            } else {
                rs
            };
            let rev = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .cloned()
                .unwrap_or_default();
            self.set_deployment_revision(&rev).await?;
            let st = self.d.status.clone().unwrap_or_default();
            if get_condition(&st, "Progressing").is_none() && progress_deadline(&self.d).is_some() {
                let mut st = st;
                set_condition(
                    &mut st,
                    new_condition(
                        "Progressing",
                        "True",
                        FOUND_NEW_RS,
                        format!("Found new replica set \"{}\"", rs.name_any()),
                        now,
                    ),
                );
                self.update_status(st).await?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        let spec = self.d.spec.clone().unwrap_or_default();
        let collision = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&spec.template, collision);
        let mut tmpl = spec.template.clone();
        tmpl.metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let name = format!("{}-{}", self.d.name_any(), hash);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                owner_references: Some(vec![meta::new_controller_ref(&self.d)]),
                labels: tmpl.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: min_ready,
                selector,
                template: Some(tmpl),
            }),
            status: None,
        };
        let mut all = refs(olds);
        all.push(&rs);
        let count = new_rs_new_replicas(&self.d, &all, 0);
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(count);
        }
        set_new_rs_annotations(&self.d, &mut rs, new_revision, false);
        let created = match self.rs_api.create(&PostParams::default(), &rs).await {
            Ok(r) => {
                if count > 0 {
                    self.c.rec.event(
                        &self.d,
                        "Normal",
                        "ScalingReplicaSet",
                        format!("Scaled up replica set {name} from 0 to {count}"),
                    );
                }
                Some(r)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Ours with the same template: a stale cache; otherwise a hash collision.
                let cur = self.rs_api.get(&name).await?;
                let ours = meta::controller_of(&cur.metadata)
                    .is_some_and(|r| Some(&r.uid) == self.d.metadata.uid.as_ref());
                if ours && equal_ignore_hash(&rs_template(&cur), &spec.template) {
                    return Ok(Some(cur));
                }
                let mut st = self.d.status.clone().unwrap_or_default();
                st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                self.update_status(st).await?;
                return Err(Error::Invalid(format!(
                    "hash collision for replica set {name}, collision count raised"
                )));
            }
            Err(e) => {
                let msg = match &e {
                    kube::Error::Api(s) => s.message.clone(),
                    e => e.to_string(),
                };
                let text = format!("Failed to create new replica set \"{name}\": {msg}");
                self.c
                    .rec
                    .event(&self.d, "Warning", "FailedCreate", text.clone());
                if progress_deadline(&self.d).is_some() {
                    let mut st = self.d.status.clone().unwrap_or_default();
                    set_condition(
                        &mut st,
                        new_condition("Progressing", "False", FAILED_RS_CREATE, text, now),
                    );
                    let _ = self.update_status(st).await;
                }
                return Err(e.into());
            }
        };
        self.set_deployment_revision(&new_revision.to_string())
            .await?;
        if progress_deadline(&self.d).is_some() {
            let mut st = self.d.status.clone().unwrap_or_default();
            set_condition(
                &mut st,
                new_condition(
                    "Progressing",
                    "True",
                    NEW_RS_CREATED,
                    format!("Created new replica set \"{name}\""),
                    now,
                ),
            );
            self.update_status(st).await?;
        }
        Ok(created)
    }

    async fn is_scaling_event(&mut self, rs_list: Vec<ReplicaSet>) -> Result<bool, Error> {
        let (new_rs, olds) = self.all_rss_and_sync_revision(rs_list, false).await?;
        let want = replicas(&self.d);
        Ok(olds
            .iter()
            .chain(new_rs.iter())
            .filter(|r| rs_replicas(r) > 0)
            .filter_map(desired_annotation)
            .any(|v| v != want))
    }

    /// Scales one ReplicaSet (and refreshes its replica annotations), with an event.
    async fn scale_rs(&mut self, rs: &ReplicaSet, to: i32) -> Result<(bool, ReplicaSet), Error> {
        let from = rs_replicas(rs);
        let want = replicas(&self.d);
        let max = want + max_surge(&self.d);
        let size_change = from != to;
        if !size_change && !replicas_annotations_need_update(rs, want, max) {
            return Ok((false, rs.clone()));
        }
        let mut copy = rs.clone();
        copy.spec.get_or_insert_with(Default::default).replicas = Some(to);
        set_replicas_annotations(&mut copy, want, max);
        let out = self
            .rs_api
            .replace(&copy.name_any(), &PostParams::default(), &copy)
            .await?;
        if size_change {
            let op = if from < to { "up" } else { "down" };
            self.c.rec.event(
                &self.d,
                "Normal",
                "ScalingReplicaSet",
                format!(
                    "Scaled {op} replica set {} from {from} to {to}",
                    rs.name_any()
                ),
            );
        }
        Ok((size_change, out))
    }

    /// Upstream `sync`: scaling only (paused deployments and scaling events).
    async fn sync_scale(&mut self, rs_list: Vec<ReplicaSet>) -> Result<(), Error> {
        let (new_rs, olds) = self.all_rss_and_sync_revision(rs_list, false).await?;
        self.scale(new_rs.as_ref(), &olds).await?;
        let paused = self.d.spec.as_ref().and_then(|s| s.paused) == Some(true);
        // Re-read what the scaling wrote.
        let (new_rs, olds) = self.refresh(new_rs, olds);
        if paused {
            self.cleanup(&olds).await?;
        }
        self.sync_status(&olds, new_rs.as_ref()).await
    }

    /// The freshest copies of these ReplicaSets from the cache (never older than given).
    fn refresh(
        &self,
        new_rs: Option<ReplicaSet>,
        olds: Vec<ReplicaSet>,
    ) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
        let fresh = |rs: ReplicaSet| -> ReplicaSet {
            let cached = self.c.rss.get(&ObjectRef::from_obj(&rs));
            match cached {
                Some(c)
                    if c.metadata
                        .resource_version
                        .as_ref()
                        .and_then(|v| v.parse::<u64>().ok())
                        >= rs
                            .metadata
                            .resource_version
                            .as_ref()
                            .and_then(|v| v.parse::<u64>().ok()) =>
                {
                    c.as_ref().clone()
                }
                _ => rs,
            }
        };
        (new_rs.map(fresh), olds.into_iter().map(fresh).collect())
    }

    async fn scale(
        &mut self,
        new_rs: Option<&ReplicaSet>,
        olds: &[ReplicaSet],
    ) -> Result<(), Error> {
        let want = replicas(&self.d);
        let mut sorted: Vec<&ReplicaSet> = refs(olds);
        sorted.sort_by(|a, b| by_creation(b, a));
        let active: Vec<&ReplicaSet> = sorted
            .iter()
            .copied()
            .chain(new_rs)
            .filter(|r| rs_replicas(r) > 0)
            .collect();
        let active_or_latest = match active.len() {
            0 => new_rs.or(sorted.first().copied()),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(rs) = active_or_latest {
            if rs_replicas(rs) != want {
                let rs = rs.clone();
                self.scale_rs(&rs, want).await?;
            }
            return Ok(());
        }
        let saturated = new_rs.is_some_and(|rs| {
            desired_annotation(rs) == Some(want)
                && rs_replicas(rs) == want
                && rs_available(rs) == want
        });
        if saturated {
            for old in olds.iter().filter(|r| rs_replicas(r) > 0) {
                self.scale_rs(old, 0).await?;
            }
            return Ok(());
        }
        if is_rolling(&self.d) {
            let plan = proportional_plan(&self.d, &active);
            for (name, size) in plan {
                let Some(rs) = active
                    .iter()
                    .find(|r| r.metadata.name.as_deref() == Some(&name))
                else {
                    continue;
                };
                let rs = (*rs).clone();
                self.scale_rs(&rs, size).await?;
            }
        }
        Ok(())
    }

    async fn rollout_rolling(&mut self, rs_list: Vec<ReplicaSet>) -> Result<(), Error> {
        let (new_rs, olds) = self.all_rss_and_sync_revision(rs_list, true).await?;
        let Some(new_rs) = new_rs else {
            return Ok(());
        };
        // Scale up, if we can.
        let want = replicas(&self.d);
        let cur = rs_replicas(&new_rs);
        let target = if cur > want {
            want
        } else {
            let mut all = refs(&olds);
            all.push(&new_rs);
            new_rs_new_replicas(&self.d, &all, cur)
        };
        if target != cur {
            let (scaled, updated) = self.scale_rs(&new_rs, target).await?;
            if scaled {
                return self.sync_rollout_status(&olds, Some(&updated)).await;
            }
        }
        // Scale down, if we can.
        let (new_rs, olds) = self.refresh(Some(new_rs), olds);
        let new_rs = new_rs.expect("new replica set");
        if self.reconcile_old(&olds, &new_rs).await? {
            let (new_rs, olds) = self.refresh(Some(new_rs), olds);
            return self.sync_rollout_status(&olds, new_rs.as_ref()).await;
        }
        let st = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &st) {
            self.cleanup(&olds).await?;
        }
        self.sync_rollout_status(&olds, Some(&new_rs)).await
    }

    /// Upstream `reconcileOldReplicaSets`; returns whether anything was scaled down.
    async fn reconcile_old(
        &mut self,
        olds: &[ReplicaSet],
        new_rs: &ReplicaSet,
    ) -> Result<bool, Error> {
        let old_pods: i32 = olds.iter().map(rs_replicas).sum();
        if old_pods == 0 {
            return Ok(false);
        }
        let mut all = refs(olds);
        all.push(new_rs);
        let max_down = max_scaled_down(&self.d, &all, new_rs);
        if max_down <= 0 {
            return Ok(false);
        }
        // Unhealthy old replicas go first, so they never block the rollout.
        let mut olds: Vec<ReplicaSet> = olds
            .iter()
            .filter(|r| rs_replicas(r) > 0)
            .cloned()
            .collect();
        olds.sort_by(by_creation);
        let mut cleaned = 0;
        for rs in olds.iter_mut() {
            if cleaned >= max_down {
                break;
            }
            let unhealthy = rs_replicas(rs) - rs_available(rs);
            if rs_replicas(rs) == 0 || unhealthy <= 0 {
                continue;
            }
            let n = (max_down - cleaned).min(unhealthy);
            let (_, updated) = self.scale_rs(rs, rs_replicas(rs) - n).await?;
            *rs = updated;
            cleaned += n;
        }
        // Then healthy ones, keeping minimum availability.
        let min_available = replicas(&self.d) - max_unavailable(&self.d);
        let available: i32 = olds.iter().map(rs_available).sum::<i32>() + rs_available(new_rs);
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for rs in olds.iter() {
                if scaled >= total {
                    break;
                }
                if rs_replicas(rs) == 0 {
                    continue;
                }
                let n = rs_replicas(rs).min(total - scaled);
                self.scale_rs(rs, rs_replicas(rs) - n).await?;
                scaled += n;
            }
        }
        Ok(cleaned + scaled > 0)
    }

    async fn rollout_recreate(&mut self, rs_list: Vec<ReplicaSet>) -> Result<(), Error> {
        let (new_rs, olds) = self
            .all_rss_and_sync_revision(rs_list.clone(), false)
            .await?;
        let mut scaled_down = false;
        for old in olds.iter().filter(|r| rs_replicas(r) > 0) {
            let (s, _) = self.scale_rs(old, 0).await?;
            scaled_down |= s;
        }
        if scaled_down {
            let (new_rs, olds) = self.refresh(new_rs, olds);
            return self.sync_rollout_status(&olds, new_rs.as_ref()).await;
        }
        if self.old_pods_running(new_rs.as_ref(), &olds) {
            return self.sync_rollout_status(&olds, new_rs.as_ref()).await;
        }
        let (new_rs, olds) = match new_rs {
            Some(n) => (Some(n), olds),
            None => {
                let rs_list = self.claim_replicasets().await?;
                self.all_rss_and_sync_revision(rs_list, true).await?
            }
        };
        let mut new_rs = new_rs;
        if let Some(n) = new_rs.clone() {
            let (_, updated) = self.scale_rs(&n, replicas(&self.d)).await?;
            new_rs = Some(updated);
        }
        let st = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &st) {
            self.cleanup(&olds).await?;
        }
        self.sync_rollout_status(&olds, new_rs.as_ref()).await
    }

    /// Upstream `oldPodsRunning`.
    fn old_pods_running(&self, new_rs: Option<&ReplicaSet>, olds: &[ReplicaSet]) -> bool {
        if olds.iter().map(rs_status_replicas).sum::<i32>() > 0 {
            return true;
        }
        let old_uids: HashSet<String> = olds
            .iter()
            .filter_map(|r| r.metadata.uid.clone())
            .filter(|u| new_rs.and_then(|n| n.metadata.uid.as_ref()) != Some(u))
            .collect();
        self.c.pods.state().iter().any(|p| {
            p.metadata.namespace == self.d.metadata.namespace
                && meta::controller_of(&p.metadata).is_some_and(|r| old_uids.contains(&r.uid))
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Failed") | Some("Succeeded")
                )
        })
    }

    /// Upstream `cleanupDeployment`: deletes the oldest zero-size ReplicaSets beyond
    /// `revisionHistoryLimit`.
    async fn cleanup(&mut self, olds: &[ReplicaSet]) -> Result<(), Error> {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = olds
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i32 - limit;
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| by_revision(a, b));
        for rs in cleanable.into_iter().take(diff as usize) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            match self
                .rs_api
                .delete(&rs.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Upstream `syncDeploymentStatus`.
    async fn sync_status(
        &mut self,
        olds: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<(), Error> {
        let mut all = refs(olds);
        all.extend(new_rs);
        let st = calculate_status(&all, new_rs, &self.d, jiff::Timestamp::now());
        if status_eq(&self.d.status.clone().unwrap_or_default(), &st) {
            return Ok(());
        }
        self.update_status(st).await
    }

    /// Upstream `syncRolloutStatus`: status plus the Progressing and ReplicaFailure
    /// conditions, and a requeue at the progress deadline.
    async fn sync_rollout_status(
        &mut self,
        olds: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<(), Error> {
        let now = jiff::Timestamp::now();
        let mut all = refs(olds);
        all.extend(new_rs);
        let mut st = calculate_status(&all, new_rs, &self.d, now);
        let deadline = progress_deadline(&self.d);
        if deadline.is_none() {
            remove_condition(&mut st, "Progressing");
        }
        let old_st = self.d.status.clone().unwrap_or_default();
        let cur = get_condition(&old_st, "Progressing").cloned();
        let complete_before = st.replicas == st.updated_replicas
            && cur.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
        let name = self.d.name_any();
        if deadline.is_some() && !complete_before {
            if deployment_complete(&self.d, &st) {
                let msg = match new_rs {
                    Some(rs) => format!(
                        "ReplicaSet \"{}\" has successfully progressed.",
                        rs.name_any()
                    ),
                    None => format!("Deployment \"{name}\" has successfully progressed."),
                };
                set_condition(
                    &mut st,
                    new_condition("Progressing", "True", NEW_RS_AVAILABLE, msg, now),
                );
            } else if deployment_progressing(&self.d, &st) {
                let msg = match new_rs {
                    Some(rs) => format!("ReplicaSet \"{}\" is progressing.", rs.name_any()),
                    None => format!("Deployment \"{name}\" is progressing."),
                };
                let mut c = new_condition("Progressing", "True", RS_UPDATED, msg, now);
                if let Some(cur) = &cur {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    remove_condition(&mut st, "Progressing");
                }
                set_condition(&mut st, c);
            } else if deployment_timed_out(&self.d, &st, now) {
                let msg = match new_rs {
                    Some(rs) => format!(
                        "ReplicaSet \"{}\" has timed out progressing.",
                        rs.name_any()
                    ),
                    None => format!("Deployment \"{name}\" has timed out progressing."),
                };
                set_condition(
                    &mut st,
                    new_condition("Progressing", "False", TIMED_OUT, msg, now),
                );
            }
        }
        // Replica failures of the ReplicaSets surface on the Deployment.
        let failure = new_rs
            .into_iter()
            .chain(olds.iter())
            .filter_map(|rs| {
                rs.status
                    .as_ref()?
                    .conditions
                    .iter()
                    .flatten()
                    .find(|c| c.type_ == "ReplicaFailure")
                    .cloned()
            })
            .next();
        match failure {
            Some(f) => set_condition(
                &mut st,
                k8s_openapi::api::apps::v1::DeploymentCondition {
                    type_: "ReplicaFailure".into(),
                    status: f.status,
                    reason: f.reason,
                    message: f.message,
                    last_update_time: f.last_transition_time.clone(),
                    last_transition_time: f.last_transition_time,
                },
            ),
            None => remove_condition(&mut st, "ReplicaFailure"),
        }
        if status_eq(&old_st, &st) {
            self.requeue = self.stuck_requeue(&st, now);
            return Ok(());
        }
        self.update_status(st).await
    }

    /// Upstream `requeueStuckDeployment`: when to look again for a progress deadline.
    fn stuck_requeue(
        &self,
        st: &k8s_openapi::api::apps::v1::DeploymentStatus,
        now: jiff::Timestamp,
    ) -> Option<Duration> {
        let secs = progress_deadline(&self.d)?;
        let cur = get_condition(st, "Progressing")?;
        if deployment_complete(&self.d, st) || cur.reason.as_deref() == Some(TIMED_OUT) {
            return None;
        }
        let last = cur.last_update_time.as_ref()?.0;
        let at = last + jiff::SignedDuration::from_secs(secs as i64);
        let after = now.duration_until(at);
        if after < jiff::SignedDuration::from_secs(1) {
            return Some(Duration::from_millis(100));
        }
        Some(after.unsigned_abs() + Duration::from_secs(1))
    }
}
