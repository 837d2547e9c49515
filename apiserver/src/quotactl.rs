//! The ResourceQuota usage recalculation (upstream's resourcequota controller): every few
//! seconds each quota's `status.hard` is set from `spec.hard` and `status.used` recomputed
//! from the namespace's objects, so admission (which charges usage at create) sees usage
//! fall when objects go away and new quotas get their first status. It runs inside the API
//! server because the pure usage evaluators live here (the controllers crate does not
//! depend on the API server).

use crate::admission::quota;
use crate::registry::{decode, encode, key, prefix, Registry};
use crate::resources::{self, ResourceInfo};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use store::{ListOptions, StoreError};

/// How often usage is recomputed.
pub const RESYNC: Duration = Duration::from_secs(5);

fn quotas() -> &'static ResourceInfo {
    resources::find("", "v1", "resourcequotas").expect("resourcequotas served")
}

/// `pods` or `deployments.apps` → the served resource.
fn resource_named(name: &str) -> Option<&'static ResourceInfo> {
    let (plural, group) = name.split_once('.').unwrap_or((name, ""));
    resources::all()
        .iter()
        .find(|r| r.plural == plural && r.group == group)
}

async fn list_all(reg: &Registry, res: &ResourceInfo, ns: Option<&str>) -> Vec<(Value, i64)> {
    match reg
        .store
        .list(&ListOptions {
            prefix: prefix(res, ns),
            ..Default::default()
        })
        .await
    {
        Ok(page) => page
            .kvs
            .iter()
            .filter_map(|kv| decode(res, kv).ok().map(|v| (v, kv.mod_revision)))
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "quota: list failed");
            Vec::new()
        }
    }
}

/// One pass over every quota; returns how many statuses were written.
pub async fn sync_once(reg: &Registry) -> usize {
    let qres = quotas();
    let mut written = 0;
    for (q, rev) in list_all(reg, qres, None).await {
        let ns = crate::meta::namespace(&q).to_string();
        let mut objects: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for r in quota::resources_for_quota(&q) {
            if let Some(res) = resource_named(&r) {
                let items = list_all(reg, res, Some(&ns))
                    .await
                    .into_iter()
                    .map(|(v, _)| v)
                    .collect();
                objects.insert(r, items);
            }
        }
        let status = quota::quota_status(&q, &objects);
        if q.get("status") == Some(&status) {
            continue;
        }
        let mut next = q.clone();
        next["status"] = status;
        let name = crate::meta::name(&q).to_string();
        match reg
            .store
            .update(&key(qres, &ns, &name), encode(qres, &next), rev)
            .await
        {
            Ok(_) => written += 1,
            // Admission or a user changed it meanwhile: the next pass recomputes.
            Err(StoreError::Conflict { .. } | StoreError::NotFound) => {}
            Err(e) => tracing::debug!(error = %e, quota = %name, "quota: status write failed"),
        }
    }
    written
}

/// Runs `sync_once` every `every` until the task is dropped.
pub async fn run(reg: Arc<Registry>, every: Duration) {
    loop {
        sync_once(&reg).await;
        tokio::time::sleep(every).await;
    }
}
