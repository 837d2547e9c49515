//! The namespace controller: when a namespace is being deleted, delete everything in it
//! (every namespaced resource type found by discovery, deletecollection per type), report
//! progress in the namespace's status conditions as upstream does, and once it is empty
//! remove the `kubernetes` finalizer through `PUT /api/v1/namespaces/NAME/finalize`.

use crate::{Ctx, Error};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::controller::{Action, Controller};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The spec finalizer this controller owns.
pub const FINALIZER: &str = "kubernetes";

/// What one deletion pass found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pass {
    /// Discovery failed for these group versions.
    pub discovery_failures: Vec<String>,
    /// Deleting or listing failed, one message per resource.
    pub content_failures: Vec<String>,
    /// "resource.group" → remaining instances.
    pub remaining: BTreeMap<String, usize>,
    /// finalizer → instances still carrying it.
    pub finalizers: BTreeMap<String, usize>,
}

impl Pass {
    pub fn done(&self) -> bool {
        self.discovery_failures.is_empty()
            && self.content_failures.is_empty()
            && self.remaining.is_empty()
    }
}

fn cond(ty: &str, status: bool, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: ty.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: None,
    }
}

/// The status conditions upstream reports for a pass.
pub fn conditions(p: &Pass) -> Vec<NamespaceCondition> {
    let mut out = Vec::new();
    out.push(if p.discovery_failures.is_empty() {
        cond(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        )
    } else {
        cond(
            "NamespaceDeletionDiscoveryFailure",
            true,
            "DiscoveryFailed",
            format!(
                "Discovery failed for some groups, {} failing: {}",
                p.discovery_failures.len(),
                p.discovery_failures.join(", ")
            ),
        )
    });
    out.push(cond(
        "NamespaceDeletionGroupVersionParsingFailure",
        false,
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed".into(),
    ));
    out.push(if p.content_failures.is_empty() {
        cond(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        )
    } else {
        cond(
            "NamespaceDeletionContentFailure",
            true,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                p.content_failures.len(),
                p.content_failures.join(", ")
            ),
        )
    });
    out.push(if p.remaining.is_empty() {
        cond(
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".into(),
        )
    } else {
        let parts: Vec<String> = p
            .remaining
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        cond(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", parts.join(", ")),
        )
    });
    out.push(if p.finalizers.is_empty() {
        cond(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        )
    } else {
        let parts: Vec<String> = p
            .finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        cond(
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                parts.join(", ")
            ),
        )
    });
    out
}

/// Merges freshly computed conditions into the existing ones, keeping transition times of
/// conditions whose status did not change. Returns None when nothing changed.
pub fn merge_conditions(
    old: &[NamespaceCondition],
    new: Vec<NamespaceCondition>,
    now: Timestamp,
) -> Option<Vec<NamespaceCondition>> {
    let mut out: Vec<NamespaceCondition> = old.to_vec();
    let mut changed = false;
    for mut c in new {
        match out.iter_mut().find(|o| o.type_ == c.type_) {
            Some(o) => {
                if o.status != c.status || o.reason != c.reason || o.message != c.message {
                    c.last_transition_time = if o.status == c.status {
                        o.last_transition_time.clone()
                    } else {
                        Some(Time(now))
                    };
                    *o = c;
                    changed = true;
                }
            }
            None => {
                c.last_transition_time = Some(Time(now));
                out.push(c);
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let sub = ctx.informers.namespaces.subscribe();
    Controller::for_shared_stream(sub, ctx.informers.namespaces.store())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(_: Arc<Namespace>, e: &Error, _: Arc<Ctx>) -> Action {
    tracing::debug!(error = %e, "namespace reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Every namespaced resource type that can be listed and deleted.
async fn namespaced_resources(ctx: &Ctx, pass: &mut Pass) -> Vec<(ApiResource, bool)> {
    let discovery = match Discovery::new(ctx.client.clone()).run().await {
        Ok(d) => d,
        Err(e) => {
            pass.discovery_failures.push(e.to_string());
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for g in discovery.groups() {
        for (ar, caps) in g.recommended_resources() {
            if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::LIST) {
                continue;
            }
            let collection = caps.supports_operation(verbs::DELETE_COLLECTION);
            if collection || caps.supports_operation(verbs::DELETE) {
                out.push((ar, collection));
            }
        }
    }
    out
}

/// One pass deleting the namespace's content.
async fn delete_content(ctx: &Ctx, ns: &str) -> Pass {
    let mut pass = Pass::default();
    for (ar, collection) in namespaced_resources(ctx, &mut pass).await {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
        let label = format!("{}.{}", ar.plural, ar.group);
        let dp = DeleteParams::background();
        if collection {
            if let Err(e) = api.delete_collection(&dp, &ListParams::default()).await {
                if !matches!(&e, kube::Error::Api(a) if a.code == 404 || a.code == 405) {
                    pass.content_failures.push(format!("{label}: {e}"));
                }
            }
        }
        let list = match api.list_metadata(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                pass.content_failures.push(format!("{label}: {e}"));
                continue;
            }
        };
        if list.items.is_empty() {
            continue;
        }
        if !collection {
            for item in &list.items {
                if item.metadata.deletion_timestamp.is_none() {
                    let _ = api.delete(&item.name_any(), &dp).await;
                }
            }
        }
        pass.remaining.insert(label, list.items.len());
        for item in &list.items {
            for f in item.metadata.finalizers.iter().flatten() {
                *pass.finalizers.entry(f.clone()).or_default() += 1;
            }
        }
    }
    pass
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let pass = delete_content(&ctx, &name).await;
    let old = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if let Some(conds) = merge_conditions(&old, conditions(&pass), Timestamp::now()) {
        let patch = json!({"status": {"conditions": conds}});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if !pass.done() {
        tracing::debug!(namespace = %name, remaining = ?pass.remaining, "namespace content remaining");
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    // Empty: release the namespace.
    let Some(mut live) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    if let Some(spec) = live.spec.as_mut() {
        spec.finalizers = Some(
            spec.finalizers
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != FINALIZER)
                .collect(),
        );
    }
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &live)
        .await
    {
        Ok(_) => {
            tracing::info!(namespace = %name, "namespace content removed, finalized");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_report_remaining_content() {
        let mut p = Pass::default();
        p.remaining.insert("pods.".into(), 2);
        p.finalizers.insert("example.com/x".into(), 1);
        let c = conditions(&p);
        let get = |t: &str| c.iter().find(|c| c.type_ == t).unwrap().clone();
        let r = get("NamespaceContentRemaining");
        assert_eq!(r.status, "True");
        assert_eq!(
            r.message.as_deref(),
            Some("Some resources are remaining: pods. has 2 resource instances")
        );
        assert_eq!(get("NamespaceFinalizersRemaining").message.as_deref(), Some("Some content in the namespace has finalizers remaining: example.com/x in 1 resource instances"));
        assert_eq!(get("NamespaceDeletionDiscoveryFailure").status, "False");
        assert!(!p.done());
        assert!(Pass::default().done());
    }

    #[test]
    fn merge_keeps_transition_times() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let later = now + jiff::SignedDuration::from_secs(5);
        let first = merge_conditions(&[], conditions(&Pass::default()), now).unwrap();
        assert_eq!(first.len(), 5);
        assert!(merge_conditions(&first, conditions(&Pass::default()), later).is_none());
        let mut p = Pass::default();
        p.remaining.insert("pods.".into(), 1);
        let second = merge_conditions(&first, conditions(&p), later).unwrap();
        let r = second
            .iter()
            .find(|c| c.type_ == "NamespaceContentRemaining")
            .unwrap();
        assert_eq!(r.last_transition_time, Some(Time(later)));
        let d = second
            .iter()
            .find(|c| c.type_ == "NamespaceDeletionDiscoveryFailure")
            .unwrap();
        assert_eq!(d.last_transition_time, Some(Time(now)));
    }
}
