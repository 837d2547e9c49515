//! The kubelet's event recorder: core/v1 Events about pods (source component `kubelet`,
//! host = the node), with repeats of the same reason and message folded into one Event
//! whose `count` grows, as upstream's correlator does.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;

pub struct Recorder {
    client: kube::Client,
    node: String,
    seen: Mutex<HashMap<String, (String, i32)>>,
}

/// What an event is about: the pod, optionally a field path such as `spec.containers{app}`.
pub fn pod_ref(pod: &Pod, field_path: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path,
    }
}

/// The Node as an event subject (upstream records node events in the default namespace).
pub fn node_ref(node: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.to_string()),
        namespace: Some("default".into()),
        uid: Some(node.to_string()),
        ..Default::default()
    }
}

impl Recorder {
    pub fn new(client: kube::Client, node: String) -> Recorder {
        Recorder {
            client,
            node,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event in the background; failures are logged, never returned.
    pub fn event(&self, obj: ObjectReference, type_: &str, reason: &str, message: String) {
        let ns = obj.namespace.clone().unwrap_or_else(|| "default".into());
        let key = format!(
            "{}/{}/{}/{reason}/{message}",
            obj.uid.as_deref().unwrap_or(""),
            obj.field_path.as_deref().unwrap_or(""),
            type_
        );
        // The event's name, and its new count when it repeats an earlier one.
        let (name, repeat) = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() > 4096 {
                seen.clear();
            }
            match seen.get_mut(&key) {
                Some((name, count)) => {
                    *count += 1;
                    (name.clone(), Some(*count))
                }
                None => {
                    let name = format!(
                        "{}.{:016x}",
                        obj.name.as_deref().unwrap_or("x"),
                        rand::random::<u64>()
                    );
                    seen.insert(key, (name.clone(), 1));
                    (name, None)
                }
            }
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let now = jiff::Timestamp::now();
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns),
                ..Default::default()
            },
            involved_object: obj,
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            ..Default::default()
        };
        tokio::spawn(async move {
            let r = match repeat {
                None => api.create(&PostParams::default(), &ev).await.map(|_| ()),
                Some(count) => {
                    let patch = json!({"count": count, "lastTimestamp": Time(now)});
                    match api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => Ok(()),
                        Err(_) => api.create(&PostParams::default(), &ev).await.map(|_| ()),
                    }
                }
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "recording event");
            }
        });
    }
}
