//! A tiny hand-built schema arena for the patch tests: just the Kubernetes types the tests
//! touch, with upstream's patch metadata (from k8s.io/api struct tags / OpenAPI extensions).

use std::collections::HashMap;

use crate::schema::{FieldMeta, ListType, NodeId, NodeKind, SchemaLookup};

enum TestNode {
    Object(Vec<(String, FieldMeta, NodeId)>),
    Array(NodeId),
    Map(NodeId),
    Scalar,
    Any,
}

#[derive(Default)]
pub(crate) struct TestSchema {
    nodes: Vec<TestNode>,
    roots: HashMap<String, NodeId>,
}

impl SchemaLookup for TestSchema {
    fn root(&self, schema_name: &str) -> Option<NodeId> {
        self.roots.get(schema_name).copied()
    }

    fn kind(&self, node: NodeId) -> NodeKind {
        match &self.nodes[node] {
            TestNode::Object(_) => NodeKind::Object,
            TestNode::Array(_) => NodeKind::Array,
            TestNode::Map(_) => NodeKind::Map,
            TestNode::Scalar => NodeKind::Scalar,
            TestNode::Any => NodeKind::Any,
        }
    }

    fn field(&self, node: NodeId, name: &str) -> Option<(FieldMeta, NodeId)> {
        match &self.nodes[node] {
            TestNode::Object(fields) => fields
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, meta, child)| (meta.clone(), *child)),
            _ => None,
        }
    }

    fn elem(&self, node: NodeId) -> Option<NodeId> {
        match &self.nodes[node] {
            TestNode::Array(e) | TestNode::Map(e) => Some(*e),
            _ => None,
        }
    }
}

/// Field metadata shorthands.
pub(crate) fn plain() -> FieldMeta {
    FieldMeta::default()
}

pub(crate) fn strategies(s: &[&str]) -> FieldMeta {
    FieldMeta {
        patch_strategies: s.iter().map(|x| x.to_string()).collect(),
        ..FieldMeta::default()
    }
}

/// `patchStrategy:"merge" patchMergeKey:"<key>"` plus `listType=map` on `<map_keys>`.
pub(crate) fn merge_by(key: &str, map_keys: &[&str]) -> FieldMeta {
    FieldMeta {
        patch_strategies: vec!["merge".into()],
        patch_merge_key: Some(key.into()),
        list_type: Some(ListType::Map),
        list_map_keys: map_keys.iter().map(|x| x.to_string()).collect(),
        map_atomic: false,
    }
}

impl TestSchema {
    fn add(&mut self, n: TestNode) -> NodeId {
        self.nodes.push(n);
        self.nodes.len() - 1
    }
    pub(crate) fn scalar(&mut self) -> NodeId {
        self.add(TestNode::Scalar)
    }
    pub(crate) fn any(&mut self) -> NodeId {
        self.add(TestNode::Any)
    }
    pub(crate) fn array(&mut self, elem: NodeId) -> NodeId {
        self.add(TestNode::Array(elem))
    }
    pub(crate) fn map(&mut self, elem: NodeId) -> NodeId {
        self.add(TestNode::Map(elem))
    }
    pub(crate) fn object(&mut self, fields: Vec<(&str, FieldMeta, NodeId)>) -> NodeId {
        let fields = fields
            .into_iter()
            .map(|(n, m, c)| (n.to_string(), m, c))
            .collect();
        self.add(TestNode::Object(fields))
    }
    pub(crate) fn set_root(&mut self, name: &str, node: NodeId) {
        self.roots.insert(name.to_string(), node);
    }

    /// Deployment, Node and Service (apps/v1, core/v1), trimmed to what the tests use.
    pub(crate) fn kube() -> TestSchema {
        let mut s = TestSchema::default();
        let str_ = s.scalar();
        let any = s.any();
        let str_list = s.array(str_);
        let str_map = s.map(str_);

        // metav1.ObjectMeta
        let owner_ref = s.object(vec![
            ("uid", plain(), str_),
            ("name", plain(), str_),
            ("kind", plain(), str_),
        ]);
        let owner_refs = s.array(owner_ref);
        let object_meta = s.object(vec![
            ("name", plain(), str_),
            ("namespace", plain(), str_),
            ("labels", plain(), str_map),
            ("annotations", plain(), str_map),
            (
                "finalizers",
                FieldMeta {
                    list_type: Some(ListType::Set),
                    ..strategies(&["merge"])
                },
                str_list,
            ),
            ("ownerReferences", merge_by("uid", &["uid"]), owner_refs),
        ]);

        // core/v1 Container
        let env_var = s.object(vec![
            ("name", plain(), str_),
            ("value", plain(), str_),
            ("valueFrom", plain(), any),
        ]);
        let env = s.array(env_var);
        let port = s.object(vec![
            ("name", plain(), str_),
            ("containerPort", plain(), str_),
            ("protocol", plain(), str_),
        ]);
        let ports = s.array(port);
        let mount = s.object(vec![("name", plain(), str_), ("mountPath", plain(), str_)]);
        let mounts = s.array(mount);
        let resources = s.object(vec![
            ("limits", plain(), str_map),
            ("requests", plain(), str_map),
        ]);
        let container = s.object(vec![
            ("name", plain(), str_),
            ("image", plain(), str_),
            ("args", plain(), str_list),
            ("command", plain(), str_list),
            ("env", merge_by("name", &["name"]), env),
            (
                "ports",
                merge_by("containerPort", &["containerPort", "protocol"]),
                ports,
            ),
            (
                "volumeMounts",
                merge_by("mountPath", &["mountPath"]),
                mounts,
            ),
            ("resources", plain(), resources),
        ]);
        let containers = s.array(container);

        // core/v1 Volume (VolumeSource inlined)
        let cm_source = s.object(vec![("name", plain(), str_)]);
        let empty_dir = s.object(vec![("medium", plain(), str_)]);
        let secret_source = s.object(vec![("secretName", plain(), str_)]);
        let volume = s.object(vec![
            ("name", plain(), str_),
            ("configMap", plain(), cm_source),
            ("emptyDir", plain(), empty_dir),
            ("secret", plain(), secret_source),
        ]);
        let volumes = s.array(volume);
        let toleration = s.object(vec![
            ("key", plain(), str_),
            ("operator", plain(), str_),
            ("effect", plain(), str_),
        ]);
        let tolerations = s.array(toleration);
        let pod_spec = s.object(vec![
            ("containers", merge_by("name", &["name"]), containers),
            ("initContainers", merge_by("name", &["name"]), containers),
            (
                "volumes",
                FieldMeta {
                    patch_strategies: vec!["merge".into(), "retainKeys".into()],
                    ..merge_by("name", &["name"])
                },
                volumes,
            ),
            ("nodeSelector", plain(), str_map),
            ("tolerations", plain(), tolerations),
            ("serviceAccountName", plain(), str_),
        ]);
        let pod_template = s.object(vec![
            ("metadata", plain(), object_meta),
            ("spec", plain(), pod_spec),
        ]);

        // apps/v1 Deployment
        let selector = s.object(vec![("matchLabels", plain(), str_map)]);
        let rolling = s.object(vec![
            ("maxSurge", plain(), str_),
            ("maxUnavailable", plain(), str_),
        ]);
        let strategy = s.object(vec![
            ("type", plain(), str_),
            ("rollingUpdate", plain(), rolling),
        ]);
        let deployment_spec = s.object(vec![
            ("replicas", plain(), str_),
            (
                "selector",
                FieldMeta {
                    map_atomic: true,
                    ..plain()
                },
                selector,
            ),
            ("template", plain(), pod_template),
            ("strategy", strategies(&["retainKeys"]), strategy),
        ]);
        let deployment = s.object(vec![
            ("apiVersion", plain(), str_),
            ("kind", plain(), str_),
            ("metadata", plain(), object_meta),
            ("spec", plain(), deployment_spec),
            ("status", plain(), any),
        ]);
        s.set_root("io.k8s.api.apps.v1.Deployment", deployment);

        // core/v1 Node
        let taint = s.object(vec![
            ("key", plain(), str_),
            ("value", plain(), str_),
            ("effect", plain(), str_),
        ]);
        let taints = s.array(taint);
        let node_spec = s.object(vec![
            ("unschedulable", plain(), str_),
            ("taints", plain(), taints),
            ("podCIDR", plain(), str_),
        ]);
        let node = s.object(vec![
            ("metadata", plain(), object_meta),
            ("spec", plain(), node_spec),
        ]);
        s.set_root("io.k8s.api.core.v1.Node", node);

        // core/v1 Service
        let svc_port = s.object(vec![
            ("name", plain(), str_),
            ("port", plain(), str_),
            ("protocol", plain(), str_),
            ("targetPort", plain(), str_),
        ]);
        let svc_ports = s.array(svc_port);
        let svc_spec = s.object(vec![
            ("ports", merge_by("port", &["port", "protocol"]), svc_ports),
            (
                "selector",
                FieldMeta {
                    map_atomic: true,
                    ..plain()
                },
                str_map,
            ),
            ("type", plain(), str_),
        ]);
        let service = s.object(vec![
            ("metadata", plain(), object_meta),
            ("spec", plain(), svc_spec),
        ]);
        s.set_root("io.k8s.api.core.v1.Service", service);

        // The upstream patch_test.go MergeItem, for porting its table tests.
        let int_list = s.array(str_);
        let merge_item = s.add(TestNode::Object(Vec::new()));
        let merge_items = s.array(merge_item);
        let retain_item = s.object(vec![
            ("name", plain(), str_),
            ("value", plain(), str_),
            ("other", plain(), str_),
            ("simpleMap", plain(), str_map),
            ("mergingIntList", strategies(&["merge"]), int_list),
            ("mergingList", merge_by("name", &[]), merge_items),
            ("nonMergingList", plain(), merge_items),
        ]);
        let fields = vec![
            ("name".to_string(), plain(), str_),
            ("value".to_string(), plain(), str_),
            ("other".to_string(), plain(), str_),
            (
                "mergingList".to_string(),
                merge_by("name", &[]),
                merge_items,
            ),
            ("nonMergingList".to_string(), plain(), merge_items),
            (
                "mergingIntList".to_string(),
                strategies(&["merge"]),
                int_list,
            ),
            ("nonMergingIntList".to_string(), plain(), int_list),
            (
                "mergeItemPtr".to_string(),
                merge_by("name", &[]),
                merge_item,
            ),
            ("simpleMap".to_string(), plain(), str_map),
            ("replacingItem".to_string(), strategies(&["replace"]), any),
            (
                "retainKeysMap".to_string(),
                strategies(&["retainKeys"]),
                retain_item,
            ),
            (
                "retainKeysMergingList".to_string(),
                FieldMeta {
                    patch_strategies: vec!["merge".into(), "retainKeys".into()],
                    ..merge_by("name", &[])
                },
                merge_items,
            ),
        ];
        s.nodes[merge_item] = TestNode::Object(fields);
        s.set_root("mergeItem", merge_item);
        s
    }
}
