//! The cronjob controller (upstream `pkg/controller/cronjob`, the v2 controller): creates a
//! Job per schedule activation, named `<cronjob>-<scheduled time in minutes since the epoch>`
//! and annotated with `batch.kubernetes.io/cronjob-scheduled-timestamp`; honours
//! concurrencyPolicy, startingDeadlineSeconds, suspend and the history limits; keeps
//! status.active / lastScheduleTime / lastSuccessfulTime. The next activation is a timer
//! (`Action::requeue`), not a poll.

use crate::cronsched::{self, Schedule};
use crate::meta;
use crate::podctl;
use crate::recorder::Recorder;
use crate::{Ctx, Error};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::ResourceExt;
use std::sync::Arc;
use std::time::Duration;

pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
const COMPONENT: &str = "cronjob-controller";

struct State {
    ctx: Arc<Ctx>,
    rec: Recorder,
}

pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let cjs = ctx.informers.cronjobs.subscribe();
    let jobs = ctx.informers.jobs.subscribe();
    let state = Arc::new(State {
        rec: Recorder::new(ctx.client.clone(), COMPONENT),
        ctx: ctx.clone(),
    });
    Controller::for_shared_stream(cjs, ctx.informers.cronjobs.store())
        .owns_shared_stream(jobs)
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(_cj: Arc<CronJob>, err: &Error, _s: Arc<State>) -> Action {
    tracing::debug!(error = %err, "cronjob sync failed");
    Action::requeue(Duration::from_secs(5))
}

/// The job name for an activation: minutes since the epoch, as upstream's `getJobName`.
pub fn job_name(cj_name: &str, scheduled: jiff::Timestamp) -> String {
    format!("{cj_name}-{}", scheduled.as_second().div_euclid(60))
}

/// The finished condition of a job ("Complete" or "Failed"), if any.
pub fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

/// The activation to run now, as upstream's `nextScheduleTime`: the most recent one after the
/// last schedule (or creation), limited by the starting deadline. Returns it and how many were
/// missed.
pub fn due(
    sched: &Schedule,
    tz: &jiff::tz::TimeZone,
    created: jiff::Timestamp,
    last_schedule: Option<jiff::Timestamp>,
    starting_deadline: Option<i64>,
    now: jiff::Timestamp,
) -> (Option<jiff::Timestamp>, usize) {
    let mut earliest = last_schedule.unwrap_or(created);
    if let Some(d) = starting_deadline {
        let deadline = now - jiff::SignedDuration::from_secs(d);
        if deadline > earliest {
            earliest = deadline;
        }
    }
    cronsched::most_recent(sched, tz, earliest, now, 100)
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn job_start(job: &Job) -> jiff::Timestamp {
    job.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(job.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

async fn reconcile(cj: Arc<CronJob>, s: Arc<State>) -> Result<Action, Error> {
    let ctx = &s.ctx;
    let jobs_store = ctx.informers.jobs.store();
    crate::informers::wait_ready(&jobs_store).await;
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = cj.namespace().unwrap_or_default();
    let name = cj.name_any();
    let uid = cj.uid().unwrap_or_default();
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let cj_api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = cj.spec.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let old_status = cj.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let mut jobs: Vec<Arc<Job>> = jobs_store
        .state()
        .into_iter()
        .filter(|j| j.metadata.namespace.as_deref() == Some(&ns))
        .filter(|j| meta::is_controlled_by(&j.metadata, &uid))
        .collect();
    jobs.sort_by_key(|j| job_start(j));

    // Reconcile status.active with the jobs that exist.
    let mut active: Vec<ObjectReference> = status.active.take().unwrap_or_default();
    let mut events: Vec<(&str, &str, String)> = Vec::new();
    for j in &jobs {
        let in_active = active.iter().any(|r| r.uid == j.metadata.uid);
        match finished(j) {
            None if !in_active => active.push(job_ref(j)),
            Some(cond) if in_active => {
                active.retain(|r| r.uid != j.metadata.uid);
                events.push((
                    "Normal",
                    "SawCompletedJob",
                    format!("Saw completed job: {}, condition: {cond}", j.name_any()),
                ));
            }
            _ => {}
        }
        if finished(j) == Some("Complete") {
            if let Some(ct) = j.status.as_ref().and_then(|s| s.completion_time.as_ref()) {
                if status
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|l| l.0 < ct.0)
                {
                    status.last_successful_time = Some(ct.clone());
                }
            }
        }
    }
    active.retain(|r| {
        let exists = jobs.iter().any(|j| j.metadata.uid == r.uid);
        if !exists {
            events.push((
                "Normal",
                "MissingJob",
                format!(
                    "Active job went missing: {}",
                    r.name.clone().unwrap_or_default()
                ),
            ));
        }
        exists
    });

    // History limits.
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let done: Vec<&Arc<Job>> = jobs.iter().filter(|j| finished(j) == Some(kind)).collect();
        let excess = done.len().saturating_sub(limit.max(0) as usize);
        for j in done.into_iter().take(excess) {
            if j.metadata.deletion_timestamp.is_some() {
                continue;
            }
            delete_job(&job_api, &j.name_any()).await?;
            events.push((
                "Normal",
                "SuccessfulDelete",
                format!("Deleted job {}", j.name_any()),
            ));
        }
    }

    // Schedule.
    let mut requeue = None;
    let tz = match spec.time_zone.as_deref() {
        None => jiff::tz::TimeZone::system(),
        Some(z) => match jiff::tz::TimeZone::get(z) {
            Ok(tz) => tz,
            Err(_) => {
                s.rec
                    .record(
                        cj.as_ref(),
                        "Warning",
                        "UnknownTimeZone",
                        format!("invalid timeZone: {z:?}"),
                    )
                    .await;
                return Ok(Action::await_change());
            }
        },
    };
    match Schedule::parse(&spec.schedule) {
        Err(e) => {
            events.push((
                "Warning",
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            ));
        }
        Ok(sched) => {
            if let Some(next) = sched.next_after(now, &tz) {
                if let Ok(d) = Duration::try_from(next.duration_since(now)) {
                    requeue = Some(d + Duration::from_millis(100));
                }
            }
            let created = cj
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(now);
            let (scheduled, missed) = due(
                &sched,
                &tz,
                created,
                status.last_schedule_time.as_ref().map(|t| t.0),
                spec.starting_deadline_seconds,
                now,
            );
            if missed > 100 {
                events.push(("Warning", "TooManyMissedTimes", format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew")));
            }
            if let (Some(t), false) = (scheduled, spec.suspend == Some(true)) {
                let jname = job_name(&name, t);
                let exists = jobs.iter().any(|j| j.name_any() == jname);
                if exists {
                    // Already ran this activation.
                } else if spec.concurrency_policy.as_deref() == Some("Forbid") && !active.is_empty()
                {
                    events.push(("Normal", "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid".into()));
                } else {
                    if spec.concurrency_policy.as_deref() == Some("Replace") {
                        for r in std::mem::take(&mut active) {
                            let n = r.name.unwrap_or_default();
                            delete_job(&job_api, &n).await?;
                            events.push(("Normal", "SuccessfulDelete", format!("Deleted job {n}")));
                        }
                    }
                    let job = build_job(&cj, t, &tz);
                    match job_api.create(&PostParams::default(), &job).await {
                        Ok(j) => {
                            events.push((
                                "Normal",
                                "SuccessfulCreate",
                                format!("Created job {jname}"),
                            ));
                            active.push(job_ref(&j));
                        }
                        Err(e) if podctl::is_conflict(&e) => {}
                        Err(e) => {
                            s.rec
                                .record(
                                    cj.as_ref(),
                                    "Warning",
                                    "FailedCreate",
                                    format!("Error creating job: {e}"),
                                )
                                .await;
                            return Err(e.into());
                        }
                    }
                    status.last_schedule_time = Some(Time(t));
                }
            }
        }
    }
    status.active = (!active.is_empty()).then_some(active);
    if status != old_status {
        let patch = podctl::merge_replace(
            &serde_json::to_value(&old_status).unwrap_or_default(),
            &serde_json::to_value(&status).unwrap_or_default(),
        );
        cj_api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": patch })),
            )
            .await?;
    }
    for (t, r, m) in events {
        s.rec.record(cj.as_ref(), t, r, m).await;
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

async fn delete_job(api: &Api<Job>, name: &str) -> Result<(), Error> {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if podctl::is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The Job for one activation (upstream's `getJobFromTemplate2`).
pub fn build_job(cj: &CronJob, scheduled: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> Job {
    let tmpl = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tm = tmpl.metadata.unwrap_or_default();
    let mut annotations = tm.annotations.unwrap_or_default();
    let stamp = scheduled.to_zoned(tz.clone());
    annotations.insert(
        SCHEDULED_TIMESTAMP.into(),
        stamp
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
            .replace("+00:00", "Z"),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cj.name_any(), scheduled)),
            namespace: cj.namespace(),
            labels: tm.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![meta::new_controller_ref(cj)]),
            ..Default::default()
        },
        spec: tmpl.spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn names() {
        assert_eq!(
            job_name("hello", ts("2024-01-01T00:05:00Z")),
            "hello-28401125"
        );
    }

    #[test]
    fn due_times() {
        let utc = jiff::tz::TimeZone::UTC;
        let s = Schedule::parse("*/5 * * * *").unwrap();
        let created = ts("2024-01-01T00:00:30Z");
        // Nothing yet.
        assert_eq!(
            due(&s, &utc, created, None, None, ts("2024-01-01T00:04:00Z")).0,
            None
        );
        // First activation.
        assert_eq!(
            due(&s, &utc, created, None, None, ts("2024-01-01T00:05:01Z")).0,
            Some(ts("2024-01-01T00:05:00Z"))
        );
        // Missed three: the latest runs.
        let (t, n) = due(&s, &utc, created, None, None, ts("2024-01-01T00:16:00Z"));
        assert_eq!((t, n), (Some(ts("2024-01-01T00:15:00Z")), 3));
        // Already scheduled that one.
        let last = Some(ts("2024-01-01T00:15:00Z"));
        assert_eq!(
            due(&s, &utc, created, last, None, ts("2024-01-01T00:16:00Z")).0,
            None
        );
        // Starting deadline: missed by more than 30 s, nothing runs.
        assert_eq!(
            due(
                &s,
                &utc,
                created,
                None,
                Some(30),
                ts("2024-01-01T00:16:00Z")
            )
            .0,
            None
        );
        assert_eq!(
            due(
                &s,
                &utc,
                created,
                None,
                Some(90),
                ts("2024-01-01T00:16:00Z")
            )
            .0,
            Some(ts("2024-01-01T00:15:00Z"))
        );
    }

    #[test]
    fn job_from_template() {
        let mut cj = CronJob::default();
        cj.metadata.name = Some("hello".into());
        cj.metadata.namespace = Some("default".into());
        cj.metadata.uid = Some("u".into());
        let j = build_job(&cj, ts("2024-01-01T00:05:00Z"), &jiff::tz::TimeZone::UTC);
        assert_eq!(j.metadata.name.as_deref(), Some("hello-28401125"));
        assert_eq!(
            j.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP],
            "2024-01-01T00:05:00Z"
        );
    }
}
