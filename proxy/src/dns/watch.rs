//! Fills the DNS index from the API: list-watch of Services, EndpointSlices and Namespace
//! metadata (CoreDNS watches the same three), each object converted to its compact record
//! on arrival; a relist replaces its kind atomically at `InitDone` and marks it synced.

use std::time::{SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{watcher as watch_objects, WatchStreamExt};
use kube::ResourceExt;

use super::convert::{service_record, slice_record};
use super::index::{DnsIndex, Resource, ServiceRecord, SliceRecord};
use super::server::SharedIndex;
use super::DnsError;

/// One watched kind: how its objects become records and go into the index.
pub trait Indexed {
    type Record;
    const RESOURCE: Resource;
    const NAME: &'static str;
    fn record(&self) -> Option<Self::Record>;
    /// (namespace, name); namespace empty for cluster-scoped objects.
    fn key(&self) -> (String, String);
    fn apply(index: &mut DnsIndex, rec: Self::Record);
    fn delete(index: &mut DnsIndex, namespace: &str, name: &str);
    fn replace(index: &mut DnsIndex, recs: Vec<Self::Record>);
}

impl Indexed for Service {
    type Record = ServiceRecord;
    const RESOURCE: Resource = Resource::Services;
    const NAME: &'static str = "services";
    fn record(&self) -> Option<ServiceRecord> {
        service_record(self)
    }
    fn key(&self) -> (String, String) {
        (self.namespace().unwrap_or_default(), self.name_any())
    }
    fn apply(index: &mut DnsIndex, rec: ServiceRecord) {
        index.apply_service(rec);
    }
    fn delete(index: &mut DnsIndex, namespace: &str, name: &str) {
        index.delete_service(namespace, name);
    }
    fn replace(index: &mut DnsIndex, recs: Vec<ServiceRecord>) {
        index.replace_services(recs);
    }
}

impl Indexed for EndpointSlice {
    type Record = SliceRecord;
    const RESOURCE: Resource = Resource::EndpointSlices;
    const NAME: &'static str = "endpointslices";
    fn record(&self) -> Option<SliceRecord> {
        slice_record(self)
    }
    fn key(&self) -> (String, String) {
        (self.namespace().unwrap_or_default(), self.name_any())
    }
    fn apply(index: &mut DnsIndex, rec: SliceRecord) {
        index.apply_slice(rec);
    }
    fn delete(index: &mut DnsIndex, namespace: &str, name: &str) {
        index.delete_slice(namespace, name);
    }
    fn replace(index: &mut DnsIndex, recs: Vec<SliceRecord>) {
        index.replace_slices(recs);
    }
}

impl Indexed for PartialObjectMeta<Namespace> {
    type Record = String;
    const RESOURCE: Resource = Resource::Namespaces;
    const NAME: &'static str = "namespaces";
    fn record(&self) -> Option<String> {
        self.metadata.name.clone()
    }
    fn key(&self) -> (String, String) {
        (String::new(), self.name_any())
    }
    fn apply(index: &mut DnsIndex, rec: String) {
        index.apply_namespace(&rec);
    }
    fn delete(index: &mut DnsIndex, _namespace: &str, name: &str) {
        index.delete_namespace(name);
    }
    fn replace(index: &mut DnsIndex, recs: Vec<String>) {
        index.replace_namespaces(recs);
    }
}

fn now_serial() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Applies one watch event; `buffer` holds the records of a relist until `InitDone`.
/// Returns whether the index changed.
pub fn apply_event<K: Indexed>(
    index: &SharedIndex,
    buffer: &mut Vec<K::Record>,
    event: Event<K>,
    serial: u32,
) -> bool {
    let write = || {
        index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    match event {
        Event::Init => {
            buffer.clear();
            false
        }
        Event::InitApply(obj) => {
            if let Some(rec) = obj.record() {
                buffer.push(rec);
            }
            false
        }
        Event::InitDone => {
            let recs = std::mem::take(buffer);
            let mut ix = write();
            K::replace(&mut ix, recs);
            ix.set_synced(K::RESOURCE);
            ix.set_serial(serial);
            true
        }
        Event::Apply(obj) => {
            let rec = obj.record();
            let mut ix = write();
            match rec {
                Some(rec) => K::apply(&mut ix, rec),
                None => {
                    let (ns, name) = obj.key();
                    K::delete(&mut ix, &ns, &name);
                }
            }
            ix.set_serial(serial);
            true
        }
        Event::Delete(obj) => {
            let (ns, name) = obj.key();
            let mut ix = write();
            K::delete(&mut ix, &ns, &name);
            ix.set_serial(serial);
            true
        }
    }
}

async fn follow<K, S>(index: SharedIndex, stream: S) -> DnsError
where
    K: Indexed,
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut buffer = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                apply_event(&index, &mut buffer, event, now_serial());
            }
            Err(e) => tracing::warn!(resource = K::NAME, error = %e, "dns watch failed"),
        }
    }
    DnsError::WatchEnded { resource: K::NAME }
}

/// Keeps `index` in step with the API until a watch stream ends (they retry with backoff,
/// so in practice never).
pub async fn fill(client: kube::Client, index: SharedIndex) -> Result<(), DnsError> {
    let cfg = watcher::Config::default();
    let services = follow::<Service, _>(
        index.clone(),
        watch_objects(Api::<Service>::all(client.clone()), cfg.clone()).default_backoff(),
    );
    let slices = follow::<EndpointSlice, _>(
        index.clone(),
        watch_objects(Api::<EndpointSlice>::all(client.clone()), cfg.clone()).default_backoff(),
    );
    let namespaces = follow::<PartialObjectMeta<Namespace>, _>(
        index,
        watch_objects(Api::<PartialObjectMeta<Namespace>>::all(client), cfg).default_backoff(),
    );
    let err = tokio::select! {
        e = services => e,
        e = slices => e,
        e = namespaces => e,
    };
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::{Name, RecordType};
    use std::sync::{Arc, RwLock};

    fn service(ns: &str, name: &str, ip: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": ip, "ports": [{"port": 80}]}
        }))
        .unwrap()
    }

    fn namespace(name: &str) -> PartialObjectMeta<Namespace> {
        let mut m = PartialObjectMeta::<Namespace>::default();
        m.metadata.name = Some(name.to_string());
        m
    }

    #[test]
    fn relist_is_applied_at_init_done_and_marks_synced() {
        let index: SharedIndex = Arc::new(RwLock::new(DnsIndex::new("cluster.local", 30).unwrap()));
        let mut nsbuf = Vec::new();
        apply_event::<PartialObjectMeta<Namespace>>(&index, &mut nsbuf, Event::Init, 1);
        apply_event(
            &index,
            &mut nsbuf,
            Event::InitApply(namespace("default")),
            1,
        );
        apply_event::<PartialObjectMeta<Namespace>>(&index, &mut nsbuf, Event::InitDone, 1);
        let mut buf = Vec::new();
        apply_event::<Service>(&index, &mut buf, Event::Init, 2);
        apply_event(
            &index,
            &mut buf,
            Event::InitApply(service("default", "web", "10.43.0.20")),
            2,
        );
        let name = Name::from_ascii("web.default.svc.cluster.local.").unwrap();
        // Not visible before InitDone.
        assert_eq!(
            index.read().unwrap().lookup(&name, RecordType::A).rcode,
            ResponseCode::ServFail
        );
        apply_event::<Service>(&index, &mut buf, Event::InitDone, 3);
        assert_eq!(
            index
                .read()
                .unwrap()
                .lookup(&name, RecordType::A)
                .answers
                .len(),
            1
        );
        assert!(!index.read().unwrap().is_synced(), "slices not listed yet");
        let mut sbuf = Vec::new();
        apply_event::<EndpointSlice>(&index, &mut sbuf, Event::Init, 4);
        apply_event::<EndpointSlice>(&index, &mut sbuf, Event::InitDone, 4);
        assert!(index.read().unwrap().is_synced());

        apply_event(
            &index,
            &mut buf,
            Event::Delete(service("default", "web", "10.43.0.20")),
            5,
        );
        assert_eq!(
            index.read().unwrap().lookup(&name, RecordType::A).rcode,
            ResponseCode::NXDomain
        );
        apply_event(
            &index,
            &mut buf,
            Event::Apply(service("default", "web", "10.43.0.21")),
            6,
        );
        let a = index.read().unwrap().lookup(&name, RecordType::A);
        assert_eq!(a.answers[0].data().to_string(), "10.43.0.21");
        // A relist without the service drops it.
        apply_event::<Service>(&index, &mut buf, Event::Init, 7);
        apply_event::<Service>(&index, &mut buf, Event::InitDone, 7);
        assert_eq!(index.read().unwrap().len().1, 0);
    }
}
