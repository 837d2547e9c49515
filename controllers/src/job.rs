//! The job controller (upstream `pkg/controller/job`): runs pods to completion.
//!
//! Pods are created from the template with `generateName: <job>-` (Indexed: `<job>-<index>-`),
//! a controller reference and the `batch.kubernetes.io/job-tracking` finalizer. Finished pods
//! are accounted as upstream does: their uids go to `status.uncountedTerminatedPods`, the
//! finalizer is removed, then they move to `status.succeeded`/`status.failed`, so deleted pods
//! are never lost or double counted. With `podReplacementPolicy: TerminatingOrFailed` (the
//! default) a terminating pod that has not succeeded counts as failed and is replaced at once.
//!
//! Terminal conditions are delayed as in 1.33: `SuccessCriteriaMet` / `FailureTarget` first,
//! then `Complete` / `Failed` once no pod is active or terminating any more. Pod creation after
//! failures backs off 10 s doubling up to 6 min (in memory, per job, like upstream's
//! backoff record store).
//!
//! Not implemented: podFailurePolicy, successPolicy, backoffLimitPerIndex, managedBy, pod
//! adoption of orphans matching the selector.

use crate::cachedpod::CachedPod;
use crate::meta;
use crate::podctl::{self, Expectations};
use crate::recorder::Recorder;
use crate::{Ctx, Error};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
pub const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
const COMPONENT: &str = "job-controller";
/// Upstream's `DefaultJobPodFailureBackOff` and the documented six-minute cap.
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(360);

struct State {
    ctx: Arc<Ctx>,
    rec: Recorder,
    exp: Expectations,
    /// job uid -> (consecutive failures, when the last one was counted).
    backoff: Mutex<HashMap<String, (u32, tokio::time::Instant)>>,
}

pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let jobs = ctx.informers.jobs.subscribe();
    let pods = ctx.informers.pods.subscribe();
    let orphan_pods = ctx.informers.pods.subscribe();
    let state = Arc::new(State {
        rec: Recorder::new(ctx.client.clone(), COMPONENT),
        exp: Expectations::default(),
        backoff: Mutex::new(HashMap::new()),
        ctx: ctx.clone(),
    });
    tokio::spawn(release_orphans(ctx.clone(), orphan_pods));
    Controller::for_shared_stream(jobs, ctx.informers.jobs.store())
        .owns_shared_stream(pods)
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
    Ok(())
}

/// Removes the tracking finalizer from pods whose job is gone (upstream's orphan pod handling).
async fn release_orphans(ctx: Arc<Ctx>, pods: crate::informers::Subscription<CachedPod>) {
    let jobs = ctx.informers.jobs.store();
    crate::informers::wait_ready(&jobs).await;
    let mut pods = std::pin::pin!(pods);
    while let Some(pod) = pods.next().await {
        if !has_finalizer(&pod) {
            continue;
        }
        let owner = pod
            .owner_references()
            .iter()
            .find(|r| r.controller == Some(true) && r.kind == "Job")
            .cloned();
        let orphan = match owner {
            None => true,
            Some(r) => {
                let key = ObjectRef::new(&r.name).within(&pod.namespace().unwrap_or_default());
                jobs.get(&key)
                    .is_none_or(|j| j.uid().as_deref() != Some(r.uid.as_str()))
            }
        };
        if orphan {
            let api: Api<Pod> =
                Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
            if let Err(e) = remove_finalizer(&api, &pod).await {
                tracing::debug!(error = %e, pod = %pod.name_any(), "releasing orphan pod");
            }
        }
    }
}

fn error_policy(_job: Arc<Job>, err: &Error, _s: Arc<State>) -> Action {
    tracing::debug!(error = %err, "job sync failed");
    Action::requeue(Duration::from_secs(5))
}

fn has_finalizer(pod: &CachedPod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

async fn remove_finalizer(api: &Api<Pod>, pod: &CachedPod) -> Result<(), kube::Error> {
    let rest: Vec<&String> = pod
        .finalizers()
        .iter()
        .filter(|f| *f != TRACKING_FINALIZER)
        .collect();
    let patch = serde_json::json!({"metadata": {
        "finalizers": rest, "resourceVersion": pod.resource_version()}});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if podctl::is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// How a pod counts for its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodOutcome {
    Active,
    Terminating,
    Succeeded,
    Failed,
}

/// Classifies a pod as upstream does with `podReplacementPolicy: TerminatingOrFailed`: a
/// deleted pod that has not succeeded is a failure.
pub fn outcome(pod: &CachedPod, only_failed_replaced: bool) -> PodOutcome {
    match podctl::phase(pod) {
        "Succeeded" => PodOutcome::Succeeded,
        "Failed" => PodOutcome::Failed,
        _ if podctl::is_terminating(pod) && !only_failed_replaced => PodOutcome::Failed,
        _ if podctl::is_terminating(pod) => PodOutcome::Terminating,
        _ => PodOutcome::Active,
    }
}

/// Pods that should be running at most: `min(parallelism, completions - succeeded)`, or for
/// work-queue jobs (no completions) parallelism until one succeeds.
pub fn want_active(parallelism: i32, completions: Option<i32>, succeeded: i32, active: i32) -> i32 {
    match completions {
        None if succeeded > 0 => active.min(parallelism),
        None => parallelism,
        Some(c) => (c - succeeded).clamp(0, parallelism.max(0)),
    }
}

/// Whether the job has met its success criteria.
pub fn complete(completions: Option<i32>, succeeded: i32, active: i32) -> bool {
    match completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active == 0,
    }
}

/// The delay before creating pods after `failures` consecutive failures.
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(16);
    (BACKOFF_BASE * (1u32 << shift)).min(BACKOFF_MAX)
}

/// The reason and message of a job failure, if it has failed.
pub fn failure(
    backoff_limit: i32,
    failed: i32,
    start: Option<jiff::Timestamp>,
    active_deadline: Option<i64>,
    now: jiff::Timestamp,
) -> Option<(&'static str, String)> {
    if failed > backoff_limit {
        return Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".into(),
        ));
    }
    if let (Some(s), Some(d)) = (start, active_deadline) {
        if s + jiff::SignedDuration::from_secs(d) <= now {
            return Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline".into(),
            ));
        }
    }
    None
}

/// Parses `completedIndexes` ("1,3-5").
pub fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    out.insert(a);
                }
            }
        }
    }
    out
}

/// Formats indexes as upstream's interval list ("1,3-5").
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end = it.next().unwrap_or(end);
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

fn pod_index(pod: &CachedPod) -> Option<i32> {
    pod.annotations().get(INDEX_ANNOTATION)?.parse().ok()
}

fn cond(type_: &str, reason: &str, message: &str, now: jiff::Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn has_cond(status: &JobStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Sets a condition, keeping the transition time if the status did not change.
fn set_cond(status: &mut JobStatus, c: JobCondition) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    match conds.iter_mut().find(|x| x.type_ == c.type_) {
        Some(x) if x.status == c.status => {
            x.reason = c.reason;
            x.message = c.message;
        }
        Some(x) => *x = c,
        None => conds.push(c),
    }
}

fn job_finished(status: &JobStatus) -> bool {
    has_cond(status, "Complete") || has_cond(status, "Failed")
}

async fn reconcile(job: Arc<Job>, s: Arc<State>) -> Result<Action, Error> {
    let ctx = &s.ctx;
    let pods_store = ctx.informers.pods.store();
    crate::informers::wait_ready(&pods_store).await;
    let key = meta::key(job.as_ref());
    let ns = job.namespace().unwrap_or_default();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = job.uid().unwrap_or_default();
    let pods = podctl::owned_pods(&pods_store, job.as_ref());
    if job.metadata.deletion_timestamp.is_some() {
        for p in pods.iter().filter(|p| has_finalizer(p)) {
            remove_finalizer(&pod_api, p).await?;
        }
        s.exp.forget(&key);
        return Ok(Action::await_change());
    }
    if !s.exp.satisfied_by_pods(&key, &pods) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let spec = job.spec.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let mut status = job.status.clone().unwrap_or_default();
    let old_status = status.clone();
    let only_failed = spec.pod_replacement_policy.as_deref() == Some("Failed");
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");

    // Finished job: only release pods still holding the finalizer.
    if job_finished(&status) {
        for p in pods.iter().filter(|p| has_finalizer(p)) {
            remove_finalizer(&pod_api, p).await?;
        }
        return Ok(Action::await_change());
    }

    // 1. Newly finished pods holding the finalizer go to uncountedTerminatedPods.
    let mut unc = status.uncounted_terminated_pods.take().unwrap_or_default();
    let mut unc_s: BTreeSet<String> = unc
        .succeeded
        .take()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut unc_f: BTreeSet<String> = unc.failed.take().unwrap_or_default().into_iter().collect();
    let mut newly = false;
    let mut new_failures = 0u32;
    let mut new_success = false;
    let mut completed = parse_indexes(status.completed_indexes.as_deref().unwrap_or(""));
    for p in pods.iter().filter(|p| has_finalizer(p)) {
        let u = p.uid().unwrap_or_default();
        if unc_s.contains(&u) || unc_f.contains(&u) {
            continue;
        }
        match outcome(p, only_failed) {
            PodOutcome::Succeeded => {
                unc_s.insert(u);
                newly = true;
                new_success = true;
            }
            PodOutcome::Failed => {
                unc_f.insert(u);
                newly = true;
                new_failures += 1;
            }
            _ => {}
        }
    }
    let set_unc = |st: &mut JobStatus, sset: &BTreeSet<String>, fset: &BTreeSet<String>| {
        st.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: (!sset.is_empty()).then(|| sset.iter().cloned().collect()),
            failed: (!fset.is_empty()).then(|| fset.iter().cloned().collect()),
        });
    };
    let mut rv_job = (*job).clone();
    if newly {
        set_unc(&mut status, &unc_s, &unc_f);
        rv_job.status = Some(status.clone());
        rv_job = job_api
            .replace_status(&job.name_any(), &PostParams::default(), &rv_job)
            .await?;
    }
    // 2. Remove the finalizer of every uncounted pod, then 3. count them.
    for p in pods.iter().filter(|p| has_finalizer(p)) {
        let u = p.uid().unwrap_or_default();
        if unc_s.contains(&u) || unc_f.contains(&u) {
            remove_finalizer(&pod_api, p).await?;
        }
    }
    if indexed {
        for p in pods.iter() {
            if p.uid().is_some_and(|u| unc_s.contains(&u)) {
                if let Some(i) = pod_index(p) {
                    if i < spec.completions.unwrap_or(0) {
                        completed.insert(i);
                    }
                }
            }
        }
        status.completed_indexes = Some(format_indexes(&completed));
        status.succeeded = Some(completed.len() as i32);
    } else {
        status.succeeded = Some(status.succeeded.unwrap_or(0) + unc_s.len() as i32);
    }
    status.failed = Some(status.failed.unwrap_or(0) + unc_f.len() as i32);
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    {
        let mut b = s.backoff.lock().expect("backoff lock");
        if new_success {
            b.remove(&uid);
        }
        if new_failures > 0 {
            let e = b
                .entry(uid.clone())
                .or_insert((0, tokio::time::Instant::now()));
            e.0 += new_failures;
            e.1 = tokio::time::Instant::now();
        }
    }

    let counted: Vec<&Arc<CachedPod>> = pods
        .iter()
        .filter(|p| {
            let u = p.uid().unwrap_or_default();
            !unc_s.contains(&u) && !unc_f.contains(&u)
        })
        .collect();
    let active: Vec<&Arc<CachedPod>> = counted
        .iter()
        .copied()
        .filter(|p| outcome(p, only_failed) == PodOutcome::Active)
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| podctl::is_terminating(p) && !podctl::is_finished(p))
        .count() as i32;
    let succeeded = status.succeeded.unwrap_or(0);
    let failed = status.failed.unwrap_or(0);
    let suspended = spec.suspend == Some(true);
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(Time(now));
    }

    let mut requeue: Option<Duration> = None;
    let mut active_n = active.len() as i32;
    // Conditions.
    let failed_target = has_cond(&status, "FailureTarget");
    let success_target = has_cond(&status, "SuccessCriteriaMet");
    if !failed_target && !success_target {
        if let Some((reason, msg)) = failure(
            spec.backoff_limit.unwrap_or(6),
            failed,
            status.start_time.as_ref().map(|t| t.0),
            spec.active_deadline_seconds,
            now,
        ) {
            set_cond(&mut status, cond("FailureTarget", reason, &msg, now));
        } else if complete(spec.completions, succeeded, active_n) {
            set_cond(
                &mut status,
                cond(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    now,
                ),
            );
        }
    }
    let finishing = has_cond(&status, "FailureTarget") || has_cond(&status, "SuccessCriteriaMet");
    if finishing {
        // Terminate whatever still runs.
        for p in &active {
            delete_pod(&s, &key, &pod_api, p).await?;
        }
        active_n = 0;
    } else if suspended {
        for p in &active {
            delete_pod(&s, &key, &pod_api, p).await?;
        }
        active_n = 0;
        if !has_cond(&status, "Suspended") {
            set_cond(
                &mut status,
                cond("Suspended", "JobSuspended", "Job suspended", now),
            );
            s.rec
                .record(job.as_ref(), "Normal", "Suspended", "Job suspended")
                .await;
        }
    } else {
        if has_cond(&status, "Suspended") {
            let mut c = cond("Suspended", "JobResumed", "Job resumed", now);
            c.status = "False".into();
            set_cond(&mut status, c);
            status.start_time = Some(Time(now));
            s.rec
                .record(job.as_ref(), "Normal", "Resumed", "Job resumed")
                .await;
        }
        // Deadline timer.
        if let (Some(st), Some(d)) = (&status.start_time, spec.active_deadline_seconds) {
            let left = (st.0 + jiff::SignedDuration::from_secs(d)).duration_since(now);
            if let Ok(left) = Duration::try_from(left) {
                requeue = Some(left + Duration::from_millis(100));
            }
        }
        let parallelism = spec.parallelism.unwrap_or(1);
        let want = want_active(parallelism, spec.completions, succeeded, active_n);
        if active_n > want {
            // Delete the least progressed pods first: not ready before ready, pending first.
            let mut victims = active.clone();
            victims.sort_by_key(|p| (podctl::pod_ready(p), podctl::phase(p) == "Running"));
            for p in victims.iter().take((active_n - want) as usize) {
                delete_pod(&s, &key, &pod_api, p).await?;
            }
            active_n = want;
        } else if active_n < want {
            let delay = {
                let b = s.backoff.lock().expect("backoff lock");
                b.get(&uid).and_then(|(n, at)| {
                    (*at + backoff_delay(*n)).checked_duration_since(tokio::time::Instant::now())
                })
            };
            match delay {
                Some(d) if !d.is_zero() => {
                    requeue = Some(requeue.map_or(d, |r| r.min(d)));
                }
                _ => {
                    let mut indexes: Vec<Option<i32>> = Vec::new();
                    if indexed {
                        let busy: BTreeSet<i32> =
                            active.iter().filter_map(|p| pod_index(p)).collect();
                        indexes = (0..spec.completions.unwrap_or(0))
                            .filter(|i| !completed.contains(i) && !busy.contains(i))
                            .take((want - active_n) as usize)
                            .map(Some)
                            .collect();
                    } else {
                        indexes.resize((want - active_n) as usize, None);
                    }
                    let n = create_pods(&s, &key, &job, &pod_api, &indexes).await?;
                    active_n += n;
                }
            }
        }
    }

    // Terminal conditions once nothing runs any more.
    let ready = active.iter().filter(|p| podctl::pod_ready(p)).count() as i32;
    let mut events: Vec<(&str, &str, String)> = Vec::new();
    if finishing && active_n == 0 && terminating == 0 {
        if let Some(c) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "FailureTarget" && c.status == "True")
            .cloned()
        {
            let reason = c.reason.clone().unwrap_or_default();
            let msg = c.message.clone().unwrap_or_default();
            set_cond(&mut status, cond("Failed", &reason, &msg, now));
            events.push((
                "Warning",
                if reason == "DeadlineExceeded" {
                    "DeadlineExceeded"
                } else {
                    "BackoffLimitExceeded"
                },
                msg,
            ));
        } else {
            set_cond(
                &mut status,
                cond(
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    now,
                ),
            );
            status.completion_time = Some(Time(now));
            events.push(("Normal", "Completed", "Job completed".into()));
        }
    }
    status.active = (active_n > 0).then_some(active_n);
    status.ready = Some(if finishing || suspended { 0 } else { ready });
    status.terminating = Some(terminating);
    status.succeeded = (succeeded > 0).then_some(succeeded);
    status.failed = (failed > 0).then_some(failed);
    if indexed && status.completed_indexes.as_deref() == Some("") {
        status.completed_indexes = None;
    }
    if status != old_status || newly {
        rv_job.status = Some(status);
        job_api
            .replace_status(&job.name_any(), &PostParams::default(), &rv_job)
            .await?;
    }
    for (t, r, m) in events {
        s.rec.record(job.as_ref(), t, r, m).await;
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

async fn delete_pod(s: &State, key: &str, api: &Api<Pod>, pod: &CachedPod) -> Result<(), Error> {
    let uid = pod.uid().unwrap_or_default();
    s.exp.expect_delete(key, uid);
    match api.delete(&pod.name_any(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if podctl::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The pod for one slot (index for Indexed jobs).
pub fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let tmpl = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tm = tmpl.metadata.unwrap_or_default();
    let mut labels = tm.labels.unwrap_or_default();
    let mut annotations = tm.annotations.unwrap_or_default();
    let mut spec = tmpl.spec.unwrap_or_default();
    let name = job.name_any();
    let mut generate_name = format!("{name}-");
    if let Some(i) = index {
        generate_name = format!("{name}-{i}-");
        labels.insert(INDEX_ANNOTATION.into(), i.to_string());
        annotations.insert(INDEX_ANNOTATION.into(), i.to_string());
        if spec.hostname.is_none() {
            spec.hostname = Some(format!("{name}-{i}"));
        }
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            let env = c.env.get_or_insert_with(Vec::new);
            if !env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
                env.push(EnvVar {
                    name: "JOB_COMPLETION_INDEX".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: None,
                            field_path: format!("metadata.labels['{INDEX_ANNOTATION}']"),
                        }),
                        ..Default::default()
                    }),
                });
            }
        }
    }
    let mut finalizers = tm.finalizers.unwrap_or_default();
    finalizers.push(TRACKING_FINALIZER.into());
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![meta::new_controller_ref(job)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Creates pods in slow-start batches (1, 2, 4, ...) as upstream does; returns how many were made.
async fn create_pods(
    s: &State,
    key: &str,
    job: &Job,
    api: &Api<Pod>,
    slots: &[Option<i32>],
) -> Result<i32, Error> {
    let mut made = 0;
    let mut batch = 1usize;
    let mut rest = slots;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        rest = later;
        let results = futures::future::join_all(now.iter().map(|i| {
            let pod = pod_for(job, *i);
            async move { api.create(&PostParams::default(), &pod).await }
        }))
        .await;
        let mut err = None;
        for r in results {
            match r {
                Ok(p) => {
                    made += 1;
                    s.exp.expect_create(key, p.name_any());
                    s.rec
                        .record(
                            job,
                            "Normal",
                            "SuccessfulCreate",
                            format!("Created pod: {}", p.name_any()),
                        )
                        .await;
                }
                Err(e) => err = Some(e),
            }
        }
        if let Some(e) = err {
            s.rec
                .record(
                    job,
                    "Warning",
                    "FailedCreate",
                    format!("Error creating: {e}"),
                )
                .await;
            return Err(e.into());
        }
        batch *= 2;
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_wanted() {
        assert_eq!(want_active(2, Some(5), 0, 0), 2);
        assert_eq!(want_active(2, Some(5), 4, 1), 1);
        assert_eq!(want_active(2, Some(5), 5, 0), 0);
        assert_eq!(want_active(3, None, 0, 0), 3);
        assert_eq!(want_active(3, None, 1, 2), 2);
    }

    #[test]
    fn completion() {
        assert!(complete(Some(3), 3, 0));
        assert!(!complete(Some(3), 2, 1));
        assert!(complete(None, 1, 0));
        assert!(!complete(None, 1, 1));
    }

    #[test]
    fn backoff() {
        assert_eq!(backoff_delay(0), Duration::ZERO);
        assert_eq!(backoff_delay(1), Duration::from_secs(10));
        assert_eq!(backoff_delay(2), Duration::from_secs(20));
        assert_eq!(backoff_delay(3), Duration::from_secs(40));
        assert_eq!(backoff_delay(6), Duration::from_secs(320));
        assert_eq!(backoff_delay(7), BACKOFF_MAX);
        assert_eq!(backoff_delay(40), BACKOFF_MAX);
    }

    #[test]
    fn failures() {
        let now = jiff::Timestamp::from_second(1000).unwrap();
        assert!(failure(6, 6, None, None, now).is_none());
        assert_eq!(
            failure(6, 7, None, None, now).unwrap().0,
            "BackoffLimitExceeded"
        );
        let start = jiff::Timestamp::from_second(900).unwrap();
        assert_eq!(
            failure(6, 0, Some(start), Some(100), now).unwrap().0,
            "DeadlineExceeded"
        );
        assert!(failure(6, 0, Some(start), Some(101), now).is_none());
    }

    #[test]
    fn outcomes() {
        let mut p = Pod::default();
        assert_eq!(outcome(&CachedPod::from_pod(&p), false), PodOutcome::Active);
        p.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(outcome(&CachedPod::from_pod(&p), false), PodOutcome::Failed);
        assert_eq!(
            outcome(&CachedPod::from_pod(&p), true),
            PodOutcome::Terminating
        );
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert_eq!(
            outcome(&CachedPod::from_pod(&p), false),
            PodOutcome::Succeeded
        );
    }

    #[test]
    fn indexes() {
        let s = parse_indexes("0,2-4,7");
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![0, 2, 3, 4, 7]);
        assert_eq!(format_indexes(&s), "0,2-4,7");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn pod_template() {
        let mut job = Job::default();
        job.metadata.name = Some("pi".into());
        job.metadata.uid = Some("u1".into());
        let p = pod_for(&job, Some(2));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-2-"));
        assert_eq!(p.spec.unwrap().hostname.as_deref(), Some("pi-2"));
        assert!(p
            .metadata
            .finalizers
            .unwrap()
            .contains(&TRACKING_FINALIZER.to_string()));
    }
}
