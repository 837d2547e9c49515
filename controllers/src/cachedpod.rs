//! The pod as the controllers' shared informer keeps it: only the fields some controller
//! reads, decoded straight from the API's JSON.
//!
//! A typed k8s-openapi `Pod` is ~2 KiB inline plus hundreds of small heap allocations
//! (containers, env, probes, volumes, `managedFields`); with 10,000 pods the full objects
//! cost over 100 MiB (BENCHMARKS.md, figure 8). Serde skips every field this type does
//! not name without allocating it, so neither the cache nor the decoding of watch events
//! pays for the rest. The fields keep the shape (and names) they have in `Pod`, so reading
//! `pod.spec.node_name` or `pod.status.conditions` looks the same as on a full object.
//!
//! What the controllers read: metadata (names, uid, labels, annotations, owners,
//! finalizers, timestamps, resourceVersion); `spec.nodeName`, `spec.tolerations` (taint
//! eviction), `spec.affinity` (the DaemonSet's node of a daemon pod), the init containers'
//! names and restart policies (sidecars, for ReplicaSet ranking); `status.phase`,
//! `status.conditions` and the containers' restart counts (ReplicaSet ranking). For the
//! endpoint controllers: `spec.hostname`, `spec.subdomain`, the *named* ports of the
//! containers and sidecars (a Service's named `targetPort`; unnamed ports are skipped at
//! decoding), `status.podIP`, and `status.podIPs` only when it holds more than that one IP.

use k8s_openapi::api::core::v1::{Affinity, Pod, PodCondition, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::sync::{Arc, Mutex};

/// The pod annotations some controller reads; the cache keeps no others.
pub const ANNOTATIONS_READ: &[&str] = &[
    crate::replicaset::POD_DELETION_COST,
    crate::job::INDEX_ANNOTATION,
];

struct AnnotationsRead;
impl lean_meta::KeepAnnotation for AnnotationsRead {
    fn keep(key: &str) -> bool {
        ANNOTATIONS_READ.contains(&key)
    }
}

/// Pod metadata without `managedFields` and with only [`ANNOTATIONS_READ`].
fn pod_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    lean_meta::deserialize_keeping::<D, AnnotationsRead>(d)
}

/// Recently decoded distinct toleration lists, reused for equal ones.
static TOLERATIONS: Mutex<Vec<Arc<Vec<Toleration>>>> = Mutex::new(Vec::new());
/// How many distinct toleration lists are remembered.
const TOLERATION_SETS: usize = 16;

fn shared_tolerations<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Arc<Vec<Toleration>>>, D::Error> {
    let Some(t) = Option::<Vec<Toleration>>::deserialize(d)? else {
        return Ok(None);
    };
    let mut seen = TOLERATIONS.lock().expect("tolerations lock");
    if let Some(i) = seen.iter().position(|s| **s == t) {
        // Most recently used first.
        let s = seen.remove(i);
        seen.insert(0, s.clone());
        return Ok(Some(s));
    }
    let t = Arc::new(t);
    seen.insert(0, t.clone());
    seen.truncate(TOLERATION_SETS);
    Ok(Some(t))
}

/// A pod as the controllers' informer caches it (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct CachedPod {
    #[serde(default, deserialize_with = "pod_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<CachedPodSpec>,
    #[serde(default)]
    pub status: Option<CachedPodStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedPodSpec {
    #[serde(default)]
    pub node_name: Option<String>,
    /// Shared between pods with equal tolerations (most pods carry the same two defaults).
    #[serde(default, deserialize_with = "shared_tolerations")]
    pub tolerations: Option<Arc<Vec<Toleration>>>,
    #[serde(default)]
    pub affinity: Option<Box<Affinity>>,
    #[serde(default)]
    pub init_containers: Option<Vec<CachedContainer>>,
    /// The named ports of all (regular) containers, in order; `None` when there are none.
    #[serde(
        default,
        rename = "containers",
        deserialize_with = "containers_named_ports"
    )]
    pub named_ports: Option<Box<[NamedPort]>>,
    #[serde(default)]
    pub hostname: Option<Box<str>>,
    #[serde(default)]
    pub subdomain: Option<Box<str>>,
}

/// An init container: its name, whether it is a sidecar (`restartPolicy: Always`) and its
/// named ports.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedContainer {
    pub name: String,
    #[serde(default)]
    pub restart_policy: Option<String>,
    #[serde(default, rename = "ports", deserialize_with = "named_ports")]
    pub named_ports: Option<Box<[NamedPort]>>,
}

/// A container port that has a name (what a Service's named `targetPort` refers to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedPort {
    pub name: Box<str>,
    pub container_port: i32,
    /// `TCP` (the default), `UDP` or `SCTP`.
    pub protocol: Cow<'static, str>,
}

/// A container port as the API spells it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePort {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    container_port: i32,
    #[serde(default)]
    protocol: Option<String>,
}

impl WirePort {
    fn named(self) -> Option<NamedPort> {
        let name = self.name.filter(|n| !n.is_empty())?;
        let protocol = match self.protocol.as_deref() {
            None | Some("") | Some("TCP") => Cow::Borrowed("TCP"),
            Some("UDP") => Cow::Borrowed("UDP"),
            Some("SCTP") => Cow::Borrowed("SCTP"),
            Some(p) => Cow::Owned(p.to_string()),
        };
        Some(NamedPort {
            name: name.into_boxed_str(),
            container_port: self.container_port,
            protocol,
        })
    }
}

fn collect_named(ports: impl Iterator<Item = WirePort>) -> Option<Box<[NamedPort]>> {
    let v: Vec<NamedPort> = ports.filter_map(WirePort::named).collect();
    (!v.is_empty()).then(|| v.into_boxed_slice())
}

/// One container's `ports`, keeping the named ones.
fn named_ports<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<[NamedPort]>>, D::Error> {
    let ports = Option::<Vec<WirePort>>::deserialize(d)?;
    Ok(ports.and_then(|p| collect_named(p.into_iter())))
}

/// The containers' named ports; everything else about a container is skipped unallocated.
fn containers_named_ports<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Box<[NamedPort]>>, D::Error> {
    #[derive(Deserialize)]
    struct PortsOnly {
        #[serde(default)]
        ports: Option<Vec<WirePort>>,
    }
    let cs = Option::<Vec<PortsOnly>>::deserialize(d)?;
    Ok(cs.and_then(|cs| collect_named(cs.into_iter().flat_map(|c| c.ports.into_iter().flatten()))))
}

/// `status.podIPs`, kept only when it says more than `status.podIP` (dual stack).
fn extra_pod_ips<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<[String]>>, D::Error> {
    #[derive(Deserialize)]
    struct Ip {
        #[serde(default)]
        ip: String,
    }
    let ips = Option::<Vec<Ip>>::deserialize(d)?.unwrap_or_default();
    Ok((ips.len() > 1).then(|| ips.into_iter().map(|i| i.ip).collect()))
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedPodStatus {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub conditions: Option<Vec<PodCondition>>,
    #[serde(default)]
    pub container_statuses: Option<Vec<CachedContainerStatus>>,
    #[serde(default)]
    pub init_container_statuses: Option<Vec<CachedContainerStatus>>,
    #[serde(default, rename = "podIP")]
    pub pod_ip: Option<Box<str>>,
    /// `status.podIPs` when it lists more than one IP; see [`CachedPod::pod_ips`].
    #[serde(default, rename = "podIPs", deserialize_with = "extra_pod_ips")]
    pub pod_ips: Option<Box<[String]>>,
}

/// A container status: its name and restart count.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedContainerStatus {
    pub name: String,
    #[serde(default)]
    pub restart_count: i32,
}

impl CachedPod {
    /// The pod's IPs as `status.podIPs` lists them (`status.podIP` first).
    pub fn pod_ips(&self) -> Vec<&str> {
        let Some(st) = self.status.as_ref() else {
            return vec![];
        };
        match &st.pod_ips {
            Some(ips) => ips.iter().map(String::as_str).collect(),
            None => st
                .pod_ip
                .as_deref()
                .filter(|ip| !ip.is_empty())
                .into_iter()
                .collect(),
        }
    }

    /// The projection of a full pod (what the informer would cache for it).
    pub fn from_pod(pod: &Pod) -> CachedPod {
        serde_json::to_value(pod)
            .and_then(serde_json::from_value)
            .expect("a pod projects onto CachedPod")
    }
}

impl From<Pod> for CachedPod {
    fn from(pod: Pod) -> Self {
        CachedPod::from_pod(&pod)
    }
}

impl kube::Resource for CachedPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Pod")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn api_version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("pods")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Decoding `metadata` without `managedFields`: serde skips that (often largest) part of an
/// object instead of building it and dropping it afterwards.
pub mod lean_meta {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
    use serde::{Deserialize, Deserializer};
    use std::collections::BTreeMap;

    /// `ObjectMeta` less `managedFields` (and `selfLink`), as JSON spells it; `F` picks the
    /// annotations kept.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[serde(bound = "")]
    struct LeanMeta<F: KeepAnnotation> {
        #[serde(default)]
        annotations: Annotations<F>,
        creation_timestamp: Option<Time>,
        deletion_grace_period_seconds: Option<i64>,
        deletion_timestamp: Option<Time>,
        finalizers: Option<Vec<String>>,
        generate_name: Option<String>,
        generation: Option<i64>,
        labels: Option<BTreeMap<String, String>>,
        name: Option<String>,
        namespace: Option<String>,
        owner_references: Option<Vec<OwnerReference>>,
        resource_version: Option<String>,
        uid: Option<String>,
    }

    /// Which annotations to keep.
    pub trait KeepAnnotation {
        fn keep(key: &str) -> bool;
    }

    /// Every annotation.
    pub struct All;
    impl KeepAnnotation for All {
        fn keep(_: &str) -> bool {
            true
        }
    }

    /// The annotations a [`KeepAnnotation`] keeps; the values of the others are skipped
    /// without being allocated.
    struct Annotations<F>(
        Option<BTreeMap<String, String>>,
        std::marker::PhantomData<F>,
    );

    impl<F> Default for Annotations<F> {
        fn default() -> Self {
            Annotations(None, std::marker::PhantomData)
        }
    }

    impl<'de, F: KeepAnnotation> Deserialize<'de> for Annotations<F> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<F>(std::marker::PhantomData<F>);
            impl<'de, F: KeepAnnotation> serde::de::Visitor<'de> for V<F> {
                type Value = Option<BTreeMap<String, String>>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a map of annotations")
                }
                fn visit_unit<E>(self) -> Result<Self::Value, E> {
                    Ok(None)
                }
                fn visit_none<E>(self) -> Result<Self::Value, E> {
                    Ok(None)
                }
                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                    d.deserialize_map(self)
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Self::Value, A::Error> {
                    let mut out = BTreeMap::new();
                    while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                        if F::keep(&k) {
                            out.insert(k.into_owned(), m.next_value::<String>()?);
                        } else {
                            m.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                    Ok(Some(out))
                }
            }
            d.deserialize_option(V::<F>(std::marker::PhantomData))
                .map(|a| Annotations(a, std::marker::PhantomData))
        }
    }

    /// Deserializes an `ObjectMeta`, leaving `managedFields` out.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
        deserialize_keeping::<D, All>(d)
    }

    /// As [`deserialize`], keeping only the annotations `F` keeps.
    pub fn deserialize_keeping<'de, D: Deserializer<'de>, F: KeepAnnotation>(
        d: D,
    ) -> Result<ObjectMeta, D::Error> {
        let m = Option::<LeanMeta<F>>::deserialize(d)?;
        Ok(m.map(|m| ObjectMeta {
            annotations: m.annotations.0,
            creation_timestamp: m.creation_timestamp,
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            deletion_timestamp: m.deletion_timestamp,
            finalizers: m.finalizers,
            generate_name: m.generate_name,
            generation: m.generation,
            labels: m.labels,
            name: m.name,
            namespace: m.namespace,
            owner_references: m.owner_references,
            resource_version: m.resource_version,
            uid: m.uid,
            managed_fields: None,
            self_link: None,
        })
        .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_what_controllers_read_and_skips_the_rest() {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                "labels": {"app": "a"},
                "annotations": {"x": "y", "controller.kubernetes.io/pod-deletion-cost": "5"},
                "finalizers": ["f"],
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                     "name": "rs", "uid": "o1", "controller": true}],
                "managedFields": [{"manager": "m", "operation": "Update",
                                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]
            },
            "spec": {
                "nodeName": "n1",
                "containers": [{"name": "c", "image": "img", "env": [{"name": "A", "value": "1"}],
                                "ports": [{"containerPort": 80},
                                          {"name": "http", "containerPort": 8080}]}],
                "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always",
                                    "ports": [{"name": "dns", "containerPort": 53,
                                               "protocol": "UDP"}]}],
                "hostname": "h", "subdomain": "sub",
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute"}],
                "volumes": [{"name": "v", "emptyDir": {}}]
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True",
                                "lastTransitionTime": "2026-01-01T00:00:05Z"}],
                "containerStatuses": [{"name": "c", "restartCount": 3, "ready": true,
                                       "image": "img", "imageID": ""}],
                "podIP": "10.0.0.1",
                "podIPs": [{"ip": "10.0.0.1"}]
            }
        }))
        .unwrap();
        let c = CachedPod::from_pod(&pod);
        assert_eq!(c.metadata.managed_fields, None);
        assert_eq!(c.metadata.name.as_deref(), Some("p"));
        assert_eq!(c.metadata.owner_references.as_ref().unwrap()[0].uid, "o1");
        assert_eq!(c.metadata.finalizers.as_ref().unwrap(), &["f"]);
        // Only the annotations some controller reads.
        let ann = c.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann.len(), 1);
        assert_eq!(ann[crate::replicaset::POD_DELETION_COST], "5");
        assert!(c.metadata.creation_timestamp.is_some());
        let spec = c.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(
            spec.tolerations.as_ref().unwrap()[0].key.as_deref(),
            Some("k")
        );
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(
            (init.name.as_str(), init.restart_policy.as_deref()),
            ("side", Some("Always"))
        );
        let st = c.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert_eq!(st.conditions.as_ref().unwrap()[0].type_, "Ready");
        assert_eq!(st.container_statuses.as_ref().unwrap()[0].restart_count, 3);
        // Only named ports, hostname and subdomain; one pod IP is kept once.
        let np = spec.named_ports.as_ref().unwrap();
        assert_eq!(np.len(), 1);
        assert_eq!(
            (&*np[0].name, np[0].container_port, &*np[0].protocol),
            ("http", 8080, "TCP")
        );
        let side = init.named_ports.as_ref().unwrap();
        assert_eq!((&*side[0].name, &*side[0].protocol), ("dns", "UDP"));
        assert_eq!(spec.hostname.as_deref(), Some("h"));
        assert_eq!(spec.subdomain.as_deref(), Some("sub"));
        assert_eq!(st.pod_ip.as_deref(), Some("10.0.0.1"));
        assert!(st.pod_ips.is_none());
        assert_eq!(c.pod_ips(), ["10.0.0.1"]);
        // The same straight from the wire (what the watch decodes).
        let wire = serde_json::to_string(&pod).unwrap();
        let d: CachedPod = serde_json::from_str(&wire).unwrap();
        assert_eq!(d, c);
        // Equal tolerations are shared.
        let d2: CachedPod = serde_json::from_str(&wire).unwrap();
        assert!(Arc::ptr_eq(
            d.spec.as_ref().unwrap().tolerations.as_ref().unwrap(),
            d2.spec.as_ref().unwrap().tolerations.as_ref().unwrap()
        ));
        // Dual stack: podIPs is kept.
        let mut ds = pod.clone();
        ds.status.as_mut().unwrap().pod_ips = Some(vec![
            k8s_openapi::api::core::v1::PodIP {
                ip: "10.0.0.1".into(),
            },
            k8s_openapi::api::core::v1::PodIP {
                ip: "fd00::1".into(),
            },
        ]);
        assert_eq!(CachedPod::from_pod(&ds).pod_ips(), ["10.0.0.1", "fd00::1"]);
        // An empty object decodes too.
        let e: CachedPod = serde_json::from_str(r#"{"metadata":null}"#).unwrap();
        assert_eq!(e, CachedPod::default());
    }
}
