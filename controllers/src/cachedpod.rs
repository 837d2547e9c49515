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
//! `status.conditions` and the containers' restart counts (ReplicaSet ranking).

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
}

/// An init container: its name and whether it is a sidecar (`restartPolicy: Always`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedContainer {
    pub name: String,
    #[serde(default)]
    pub restart_policy: Option<String>,
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
                "containers": [{"name": "c", "image": "img", "env": [{"name": "A", "value": "1"}]}],
                "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always"}],
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute"}],
                "volumes": [{"name": "v", "emptyDir": {}}]
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True",
                                "lastTransitionTime": "2026-01-01T00:00:05Z"}],
                "containerStatuses": [{"name": "c", "restartCount": 3, "ready": true,
                                       "image": "img", "imageID": ""}],
                "podIP": "10.0.0.1"
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
        // An empty object decodes too.
        let e: CachedPod = serde_json::from_str(r#"{"metadata":null}"#).unwrap();
        assert_eq!(e, CachedPod::default());
    }
}
