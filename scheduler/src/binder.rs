//! The API side effects of scheduling decisions, run as spawned tasks bounded by a
//! semaphore owned by the run loop: binding through `pods/binding`, the PodScheduled
//! condition and nominatedNodeName, `Scheduled`/`FailedScheduling`/`Preempted` events, and
//! graceful deletion of preemption victims.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Binding, Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::snapshot::PodInfo;

pub const COMPONENT: &str = "default-scheduler";

static EVENT_SEQ: AtomicU64 = AtomicU64::new(0);

/// Posts the v1 Binding for a pod.
pub async fn bind(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
    node: &str,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: (!uid.is_empty()).then(|| uid.into()),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            api_version: Some("v1".into()),
            name: Some(node.into()),
            ..Default::default()
        },
    };
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        name,
        &PostParams::default(),
        &binding,
    )
    .await?;
    Ok(())
}

/// Records a core/v1 Event about a pod, logging (not returning) failures.
pub async fn event(
    client: &kube::Client,
    pod: &PodRef,
    type_: &str,
    reason: &str,
    action: &str,
    message: &str,
) {
    let now = jiff::Timestamp::now();
    let seq = EVENT_SEQ.fetch_add(1, Ordering::Relaxed);
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                pod.name,
                now.as_nanosecond() as u64 ^ seq
            )),
            namespace: Some(pod.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()),
            resource_version: pod.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(type_.into()),
        action: Some(action.into()),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(COMPONENT.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &pod.namespace);
    if let Err(e) = api.create(&PostParams::default(), &ev).await {
        tracing::debug!(pod = %pod.name, error = %e, "recording event");
    }
}

/// Events written in the background by a few writers through a bounded queue, dropped
/// when the queue is full, as client-go's event broadcaster does (1,000 queued,
/// `DropIfChannelFull`): a burst of bindings is not slowed down by one event write per pod.
#[derive(Clone)]
pub struct EventQueue {
    tx: tokio::sync::mpsc::Sender<QueuedEvent>,
}

struct QueuedEvent {
    pod: PodRef,
    type_: &'static str,
    reason: &'static str,
    action: &'static str,
    message: String,
}

impl EventQueue {
    /// Starts the writers; they stop when every clone of the queue is dropped.
    pub fn start(client: kube::Client, capacity: usize, writers: usize) -> EventQueue {
        use futures::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::channel::<QueuedEvent>(capacity.max(1));
        let events =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        tokio::spawn(events.for_each_concurrent(writers.max(1), move |e| {
            let client = client.clone();
            async move {
                event(&client, &e.pod, e.type_, e.reason, e.action, &e.message).await;
            }
        }));
        EventQueue { tx }
    }

    /// Queues an event; drops it when the queue is full.
    pub fn post(
        &self,
        pod: PodRef,
        type_: &'static str,
        reason: &'static str,
        action: &'static str,
        message: String,
    ) {
        let e = QueuedEvent {
            pod,
            type_,
            reason,
            action,
            message,
        };
        if let Err(e) = self.tx.try_send(e) {
            tracing::debug!(error = %e, "event queue full, dropping event");
        }
    }
}

/// What the side-effect tasks need to know about a pod.
#[derive(Debug, Clone)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: Option<String>,
}

impl PodRef {
    pub fn of(pod: &Pod) -> PodRef {
        PodRef {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            resource_version: pod.metadata.resource_version.clone(),
        }
    }

    pub fn of_info(p: &PodInfo) -> PodRef {
        PodRef {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
            resource_version: None,
        }
    }
}

/// Conditions of `pod` with `PodScheduled` replaced, or `None` when it is already so.
pub fn scheduled_condition(pod: &Pod, reason: &str, message: &str) -> Option<serde_json::Value> {
    let conds = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let existing = conds.iter().find(|c| c.type_ == "PodScheduled");
    if existing.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
    }) {
        return None;
    }
    let now = jiff::Timestamp::now();
    let transition = match existing {
        Some(c) if c.status == "False" => c.last_transition_time.clone().unwrap_or(Time(now)),
        _ => Time(now),
    };
    let mut out: Vec<serde_json::Value> = conds
        .iter()
        .filter(|c| c.type_ != "PodScheduled")
        .map(|c| serde_json::to_value(c).unwrap_or_default())
        .collect();
    out.push(json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": reason,
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": transition,
    }));
    Some(serde_json::Value::Array(out))
}

/// Marks a pod unschedulable (condition, nominatedNodeName) and emits FailedScheduling.
pub async fn record_failure(
    client: kube::Client,
    pod: Arc<Pod>,
    reason: &'static str,
    message: String,
    nominate: Option<String>,
) {
    let pr = PodRef::of(&pod);
    let mut status = serde_json::Map::new();
    if let Some(c) = scheduled_condition(&pod, reason, &message) {
        status.insert("conditions".into(), c);
    }
    let current_nom = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.clone());
    if let Some(n) = &nominate {
        if current_nom.as_ref() != Some(n) {
            status.insert("nominatedNodeName".into(), json!(n));
        }
    }
    if !status.is_empty() {
        let api: Api<Pod> = Api::namespaced(client.clone(), &pr.namespace);
        let patch = json!({ "status": status });
        if let Err(e) = api
            .patch_status(&pr.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(pod = %pr.name, error = %e, "updating pod status");
        }
    }
    event(
        &client,
        &pr,
        "Warning",
        "FailedScheduling",
        "Scheduling",
        &message,
    )
    .await;
}

/// Gracefully deletes a preemption victim after marking it with DisruptionTarget and
/// emitting a `Preempted` event.
pub async fn evict(
    client: kube::Client,
    victim: Arc<PodInfo>,
    preemptor_uid: String,
    node: String,
    scheduler: String,
) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &victim.namespace);
    let now = jiff::Timestamp::now();
    let patch = json!({"status": {"conditions": [{
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "PreemptionByScheduler",
        "message": format!("{scheduler}: preempting to accommodate a higher priority pod"),
        "lastTransitionTime": Time(now),
    }]}});
    // Strategic merge keeps other conditions (conditions merge by type).
    let _ = api
        .patch_status(
            &victim.name,
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await;
    match api.delete(&victim.name, &DeleteParams::default()).await {
        Ok(_) => {
            let msg = format!("Preempted by pod {preemptor_uid} on node {node}");
            event(
                &client,
                &PodRef::of_info(&victim),
                "Normal",
                "Preempted",
                "Preempting",
                &msg,
            )
            .await;
        }
        Err(e) => tracing::debug!(pod = %victim.name, error = %e, "deleting preemption victim"),
    }
}
