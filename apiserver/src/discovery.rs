//! Discovery documents: `/api`, `/apis` (aggregated v2 and v2beta1, or legacy), and the
//! per-group-version `APIResourceList`s, all derived from the resource table.

use crate::resources::{self, ResourceInfo, Subresource};
use serde_json::{json, Value};

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Discovery's single verb for the review resources.
const CREATE: &[&str] = &["create"];

/// The resources of one group version with their verbs: the stored ones, then the reviews.
fn served(group: &str, version: &str) -> Vec<(&'static ResourceInfo, &'static [&'static str])> {
    let stored = resources::all().iter().map(|r| (r, VERBS));
    let reviews = resources::reviews().iter().map(|r| (r, CREATE));
    stored
        .chain(reviews)
        .filter(|(r, _)| r.group == group && r.version == version)
        .collect()
}

fn sub_entries(
    r: &ResourceInfo,
) -> Vec<(
    String,
    &'static str,
    &'static str,
    &'static str,
    Vec<&'static str>,
)> {
    // (name, group, version, kind, verbs)
    let mut out = Vec::new();
    for s in r.subresources {
        match s {
            Subresource::Status => out.push((
                "status".to_string(),
                r.group,
                r.version,
                r.kind,
                vec!["get", "patch", "update"],
            )),
            Subresource::Scale => out.push((
                "scale".to_string(),
                "autoscaling",
                "v1",
                "Scale",
                vec!["get", "patch", "update"],
            )),
            Subresource::Binding => {
                out.push(("binding".to_string(), "", "v1", "Binding", vec!["create"]))
            }
            Subresource::Eviction => out.push((
                "eviction".to_string(),
                "policy",
                "v1",
                "Eviction",
                vec!["create"],
            )),
            Subresource::Finalize => out.push((
                "finalize".to_string(),
                r.group,
                r.version,
                r.kind,
                vec!["update"],
            )),
            Subresource::Log => out.push(("log".to_string(), "", "v1", "Pod", vec!["get"])),
            Subresource::Exec => out.push((
                "exec".to_string(),
                "",
                "v1",
                "PodExecOptions",
                vec!["create", "get"],
            )),
            Subresource::Attach => out.push((
                "attach".to_string(),
                "",
                "v1",
                "PodAttachOptions",
                vec!["create", "get"],
            )),
            Subresource::PortForward => out.push((
                "portforward".to_string(),
                "",
                "v1",
                "PodPortForwardOptions",
                vec!["create", "get"],
            )),
            Subresource::Token => out.push((
                "token".to_string(),
                "authentication.k8s.io",
                "v1",
                "TokenRequest",
                vec!["create"],
            )),
        }
    }
    out
}

/// Legacy `APIResourceList` for one group version.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if group == crate::metrics::GROUP {
        return (version == crate::metrics::VERSION).then(crate::metrics::resource_list);
    }
    let rs = served(group, version);
    if rs.is_empty() {
        return None;
    }
    let mut items = Vec::new();
    for (r, verbs) in rs {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs,
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        items.push(e);
        for (name, g, v, kind, verbs) in sub_entries(r) {
            let mut e = json!({
                "name": format!("{}/{}", r.plural, name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if g != r.group || v != r.version {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            items.push(e);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}),
    )
}

/// Legacy `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    let reviews = resources::reviews().iter().map(|r| (r.group, r.version));
    for (g, v) in resources::group_versions().into_iter().chain(reviews) {
        if g.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(x, _)| *x == g) {
            Some((_, vs)) if vs.contains(&v) => {}
            Some((_, vs)) => vs.push(v),
            None => out.push((g, vec![v])),
        }
    }
    out
}

fn api_group(g: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
}

/// Legacy `/apis`.
pub fn api_group_list() -> Value {
    let mut gs: Vec<Value> = groups().iter().map(|(g, vs)| api_group(g, vs)).collect();
    gs.push(crate::metrics::api_group_entry());
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

/// Legacy `/apis/<group>`.
pub fn api_group_doc(group: &str) -> Option<Value> {
    if group == crate::metrics::GROUP {
        return Some(crate::metrics::api_group());
    }
    groups().iter().find(|(g, _)| *g == group).map(|(g, vs)| {
        let mut v = api_group(g, vs);
        v["kind"] = json!("APIGroup");
        v["apiVersion"] = json!("v1");
        v
    })
}

/// Aggregated discovery (`apidiscovery.k8s.io/<version>`, v2 or v2beta1) for `/api`
/// (core = true) or `/apis`.
pub fn aggregated(core: bool, version: &str) -> Value {
    let mut items = Vec::new();
    let gvs: Vec<(&str, Vec<&str>)> = if core {
        vec![("", vec!["v1"])]
    } else {
        groups()
    };
    for (g, versions) in gvs {
        let mut vlist = Vec::new();
        for v in versions {
            let mut rs = Vec::new();
            for (r, verbs) in served(g, v) {
                let subs: Vec<Value> = sub_entries(r)
                    .into_iter()
                    .map(|(name, sg, sv, kind, verbs)| {
                        json!({"subresource": name, "responseKind": {"group": sg, "version": sv, "kind": kind}, "verbs": verbs})
                    })
                    .collect();
                let mut e = json!({
                    "resource": r.plural,
                    "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                    "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": r.singular,
                    "verbs": verbs,
                });
                if !r.short_names.is_empty() {
                    e["shortNames"] = json!(r.short_names);
                }
                if !r.categories.is_empty() {
                    e["categories"] = json!(r.categories);
                }
                if !subs.is_empty() {
                    e["subresources"] = json!(subs);
                }
                rs.push(e);
            }
            vlist.push(json!({"version": v, "resources": rs, "freshness": "Current"}));
        }
        items.push(json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vlist}));
    }
    if !core {
        items.push(crate::metrics::aggregated_entry());
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items
    })
}

/// Picks the aggregated discovery version from an Accept header: v2, then v2beta1.
pub fn negotiate_aggregated(accept: &str) -> Option<&'static str> {
    let offers: Vec<&str> = accept.split(',').map(str::trim).collect();
    let has = |v: &str| {
        offers.iter().any(|o| {
            o.contains("g=apidiscovery.k8s.io")
                && o.contains("as=APIGroupDiscoveryList")
                && o.split(';').any(|p| p.trim() == format!("v={v}"))
        })
    };
    if has("v2") {
        Some("v2")
    } else if has("v2beta1") {
        Some("v2beta1")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let a = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate_aggregated(a), Some("v2"));
        let b = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate_aggregated(b), Some("v2beta1"));
        assert_eq!(negotiate_aggregated("application/json, */*"), None);
    }

    #[test]
    fn core_list_has_pods_with_short_names_and_scale_group() {
        let l = resource_list("", "v1").unwrap();
        let pods = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        let apps = resource_list("apps", "v1").unwrap();
        let scale = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
    }

    #[test]
    fn aggregated_apis_has_groups() {
        let a = aggregated(false, "v2");
        let names: Vec<&str> = a["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"apps") && names.contains(&"batch"));
    }
}
