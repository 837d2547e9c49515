//! Node-side admission (pure): does a pod fit in what the admitted pods leave of the
//! node's allocatable? Mirrors upstream's predicate admit handler for cpu, memory and
//! the pod count.

use crate::nodestatus::parse_quantity;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// A pod's effective request of `resource` in base units (millicores for cpu): the larger
/// of the sum over containers and the largest init container, plus overhead.
pub fn effective_request(pod: &Pod, resource: &str) -> i128 {
    let millis = resource == "cpu";
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let req = |c: &k8s_openapi::api::core::v1::Container| -> i128 {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource))
            .and_then(|q| parse_quantity(&q.0, millis))
            .unwrap_or(0)
    };
    let sum: i128 = spec.containers.iter().map(req).sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(req)
        .max()
        .unwrap_or(0);
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get(resource))
        .and_then(|q| parse_quantity(&q.0, millis))
        .unwrap_or(0);
    sum.max(init) + overhead
}

/// `Some((resource, requested, used, capacity))` for the first resource that does not fit.
pub fn does_not_fit(
    pod: &Pod,
    admitted: &[Pod],
    allocatable: &BTreeMap<String, Quantity>,
) -> Option<(String, i128, i128, i128)> {
    let cap = |r: &str| {
        allocatable
            .get(r)
            .and_then(|q| parse_quantity(&q.0, r == "cpu"))
            .unwrap_or(i128::MAX)
    };
    let pods_cap = cap("pods");
    if admitted.len() as i128 + 1 > pods_cap {
        return Some(("pods".into(), 1, admitted.len() as i128, pods_cap));
    }
    for r in ["cpu", "memory"] {
        let requested = effective_request(pod, r);
        if requested == 0 {
            continue;
        }
        let used: i128 = admitted.iter().map(|p| effective_request(p, r)).sum();
        let capacity = cap(r);
        if used + requested > capacity {
            return Some((r.into(), requested, used, capacity));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu: &str, mem: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}],
                     "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "3"}}}]}
        }))
        .unwrap()
    }

    fn alloc() -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_string(), Quantity("4".into())),
            ("memory".to_string(), Quantity("1Gi".into())),
            ("pods".to_string(), Quantity("3".into())),
        ])
    }

    #[test]
    fn init_containers_count_by_max() {
        assert_eq!(effective_request(&pod("500m", "1Mi"), "cpu"), 3000);
        assert_eq!(effective_request(&pod("500m", "1Mi"), "memory"), 1 << 20);
    }

    #[test]
    fn rejects_what_does_not_fit() {
        assert_eq!(does_not_fit(&pod("1", "100Mi"), &[], &alloc()), None);
        let r = does_not_fit(&pod("1", "100Mi"), &[pod("1", "1Mi")], &alloc()).unwrap();
        assert_eq!(r, ("cpu".to_string(), 3000, 3000, 4000));
        let r = does_not_fit(&pod("1", "2Gi"), &[], &alloc()).unwrap();
        assert_eq!(r.0, "memory");
        let many = vec![pod("0", "0"), pod("0", "0"), pod("0", "0")];
        assert_eq!(
            does_not_fit(&pod("0", "0"), &many, &alloc()).unwrap().0,
            "pods"
        );
    }
}
