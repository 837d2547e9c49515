//! The core/v1 Event recorder (upstream's `record.EventRecorder`) every controller uses: an
//! event is posted in the involved object's namespace (`default` for cluster-scoped
//! objects); an identical event (same object, type, reason, message and source) within ten
//! minutes of the last one increments the existing Event's `count` and `lastTimestamp`
//! instead of creating a new object, as upstream's event correlator does. Writes are best
//! effort: failures are logged, never returned.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `Normal` event type.
pub const NORMAL: &str = "Normal";
/// `Warning` event type.
pub const WARNING: &str = "Warning";

/// Identical events closer than this are folded into one Event.
pub const AGGREGATION_WINDOW: Duration = Duration::from_secs(600);
/// Most distinct events remembered for aggregation (upstream's LRU holds 4096).
const CACHE_SIZE: usize = 4096;

/// An Event already written: its name, namespace and state.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    namespace: String,
    count: i32,
    first: jiff::Timestamp,
    last: Instant,
}

/// What the recorder does for one event.
#[derive(Debug, Clone, PartialEq)]
enum Write {
    Create {
        name: String,
        namespace: String,
    },
    Bump {
        name: String,
        namespace: String,
        count: i32,
        first: jiff::Timestamp,
    },
}

/// The aggregation state (upstream's `eventLogger`), keyed by everything that makes two
/// events identical.
#[derive(Default)]
struct Cache(HashMap<String, Seen>);

impl Cache {
    fn next(
        &mut self,
        key: String,
        ns: &str,
        obj_name: &str,
        now: jiff::Timestamp,
        at: Instant,
    ) -> Write {
        if let Some(s) = self.0.get_mut(&key) {
            if at.duration_since(s.last) <= AGGREGATION_WINDOW {
                s.count += 1;
                s.last = at;
                return Write::Bump {
                    name: s.name.clone(),
                    namespace: s.namespace.clone(),
                    count: s.count,
                    first: s.first,
                };
            }
        }
        if self.0.len() >= CACHE_SIZE {
            self.0
                .retain(|_, s| at.duration_since(s.last) <= AGGREGATION_WINDOW);
            if self.0.len() >= CACHE_SIZE {
                self.0.clear();
            }
        }
        let name = format!(
            "{obj_name}.{:x}",
            now.as_nanosecond() as u64 ^ rand::random::<u32>() as u64
        );
        self.0.insert(
            key,
            Seen {
                name: name.clone(),
                namespace: ns.to_string(),
                count: 1,
                first: now,
                last: at,
            },
        );
        Write::Create {
            name,
            namespace: ns.to_string(),
        }
    }
}

/// Posts events on behalf of one component (e.g. `node-controller`). Clones share the
/// aggregation state.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: &'static str,
    cache: Arc<Mutex<Cache>>,
}

/// The reference to `obj` an Event carries.
pub fn object_reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: Some(obj.name_any()),
        namespace: obj.namespace(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        ..Default::default()
    }
}

impl Recorder {
    pub fn new(client: Client, component: &'static str) -> Self {
        Recorder {
            client,
            component,
            cache: Arc::default(),
        }
    }

    /// Records an event about `obj` (`type_` is [`NORMAL`] or [`WARNING`]) without waiting
    /// for the write.
    pub fn event<K>(&self, obj: &K, type_: &str, reason: &str, message: impl Into<String>)
    where
        K: Resource<DynamicType = ()>,
    {
        let this = self.clone();
        let (involved, type_, reason, message) = (
            object_reference(obj),
            type_.to_string(),
            reason.to_string(),
            message.into(),
        );
        tokio::spawn(async move { this.record_ref(involved, &type_, &reason, message).await });
    }

    /// Records an event about `obj` and waits for the write.
    pub async fn record<K>(&self, obj: &K, type_: &str, reason: &str, message: impl Into<String>)
    where
        K: Resource<DynamicType = ()>,
    {
        self.record_ref(object_reference(obj), type_, reason, message.into())
            .await
    }

    /// Records an event about the referenced object and waits for the write.
    pub async fn record_ref(
        &self,
        involved: ObjectReference,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        let ns = involved
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let key = serde_json::to_string(&(
            self.component,
            &involved.kind,
            &involved.namespace,
            &involved.name,
            &involved.uid,
            &involved.api_version,
            &involved.field_path,
            type_,
            reason,
            &message,
        ))
        .unwrap_or_default();
        let now = jiff::Timestamp::now();
        let obj_name = involved.name.as_deref().unwrap_or("unknown").to_string();
        let write = self.cache.lock().expect("recorder lock").next(
            key,
            &ns,
            &obj_name,
            now,
            Instant::now(),
        );
        let (name, count, first) = match write {
            Write::Create { name, .. } => (name, 1, now),
            Write::Bump {
                name, count, first, ..
            } => {
                let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
                let patch = serde_json::json!({"count": count, "lastTimestamp": Time(now)});
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => return,
                    // The Event expired or was deleted: write it anew.
                    Err(kube::Error::Api(s)) if s.code == 404 => (name, count, first),
                    Err(e) => {
                        tracing::debug!(error = %e, reason, "recording event failed");
                        return;
                    }
                }
            }
        };
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: involved,
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            count: Some(count),
            first_timestamp: Some(Time(first)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            source: Some(EventSource {
                component: Some(self.component.into()),
                host: None,
            }),
            reporting_component: Some(self.component.into()),
            reporting_instance: Some(self.component.into()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::debug!(error = %e, reason, "recording event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_events_within_the_window_are_aggregated() {
        let mut c = Cache::default();
        let now = jiff::Timestamp::now();
        let t0 = Instant::now();
        let Write::Create { name, namespace } = c.next("k".into(), "ns", "pod", now, t0) else {
            panic!("first event must be created");
        };
        assert!(name.starts_with("pod."));
        assert_eq!(namespace, "ns");
        let w = c.next("k".into(), "ns", "pod", now, t0 + Duration::from_secs(60));
        assert_eq!(
            w,
            Write::Bump {
                name: name.clone(),
                namespace: "ns".into(),
                count: 2,
                first: now
            }
        );
        // Another message is another Event.
        assert!(matches!(
            c.next("k2".into(), "ns", "pod", now, t0),
            Write::Create { .. }
        ));
        // Ten minutes after the last occurrence, a new Event starts.
        let late = t0 + Duration::from_secs(60) + AGGREGATION_WINDOW + Duration::from_secs(1);
        assert!(matches!(
            c.next("k".into(), "ns", "pod", now, late),
            Write::Create { .. }
        ));
    }
}
