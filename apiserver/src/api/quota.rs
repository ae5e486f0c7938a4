//! ResourceQuota admission of creates: an object that would take a namespace past a quota's
//! `spec.hard` (object counts such as `count/configmaps` or `count/deployments.apps`, pods'
//! compute requests and limits, claims' storage, Services' node ports and load balancers) is
//! refused with 403 as Kubernetes words it (`exceeded quota: NAME, requested: pods=1, used:
//! pods=2, limited: pods=2`); otherwise each quota that limits it has its `status.used` grown
//! in the same transaction as the create, guarded by the quota's revision, so two creates never
//! both take the last unit. The quota controller keeps `status.used` true as objects come
//! and go.

use std::collections::BTreeMap;

use ferry_schema::quota;
use serde_json::Value;

use super::catalog::storage_name;
use super::quota_registry::RESOURCE;
use super::resource::Call;
use super::status::ApiError;
use crate::storage::{ObjectKey, WriteOp};

/// Whether `key` is a quota's (a conflict there means another create took units first).
pub fn is_quota(key: &ObjectKey) -> bool {
    key.resource == RESOURCE
}

/// The quota updates that go with creating `object` at `call`'s path, or the refusal.
pub async fn charge(call: &Call<'_>, object: &Value) -> Result<Vec<WriteOp>, ApiError> {
    if !call.kind.namespaced {
        return Ok(Vec::new());
    }
    let ns = object["metadata"]["namespace"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| call.path.namespace.clone())
        .unwrap_or_default();
    let limits = call.state.admission.quotas();
    if !limits.any_in(&ns) {
        return Ok(Vec::new());
    }
    let requested = quota::usage(call.kind.group, call.kind.plural, object);
    if !limits.limits_any(&ns, &requested) {
        return Ok(Vec::new());
    }
    let quotas = call
        .state
        .storage
        .list(RESOURCE, Some(&ns), None, 0)
        .await
        .map_err(|e| call.storage_error(e))?;
    // Usage the controller has not written yet is counted from the objects themselves, read
    // once per counted resource.
    let mut listed: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut ops = Vec::new();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    for q in &quotas.items {
        let spec = &q.object["spec"];
        let hard = &spec["hard"];
        if !quota::limits_any(hard, &requested) || !quota::in_scope(spec, call.kind.plural, object)
        {
            continue;
        }
        let mut used = quota::parse_used(&q.object["status"]["used"]);
        // Every tracked key the status lacks (the controller has not counted yet), so that
        // the status this write leaves holds no guessed zero.
        let unknown: Vec<&String> = hard
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .filter(|k| !used.contains_key(*k))
            .collect();
        for key in unknown {
            let Some((group, resource)) = quota::source(key) else {
                continue;
            };
            let store = storage_name(group, resource);
            if !listed.contains_key(&store) {
                let objects = call
                    .state
                    .storage
                    .list(&store, Some(&ns), None, 0)
                    .await
                    .map_err(|e| call.storage_error(e))?;
                let objects = objects.items.into_iter().map(|o| o.object).collect();
                listed.insert(store.clone(), objects);
            }
            let objects = listed.get(&store).into_iter().flatten();
            let total = quota::total(
                group,
                resource,
                objects.filter(|o| quota::in_scope(spec, resource, o)),
            );
            let amount = total.get(key).copied().unwrap_or_default();
            used.insert(key.clone(), amount);
        }
        let over = quota::exceeded(hard, &used, &requested);
        if !over.is_empty() {
            let quota_name = q.object["metadata"]["name"].as_str().unwrap_or_default();
            let list = |f: &dyn Fn(&quota::Exceeded) -> String| {
                over.iter().map(f).collect::<Vec<_>>().join(",")
            };
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
                    call.kind.plural,
                    list(&|e| format!("{}={}", e.resource, e.requested)),
                    list(&|e| format!("{}={}", e.resource, e.used)),
                    list(&|e| format!("{}={}", e.resource, e.limited)),
                ),
            ));
        }
        for (k, v) in &requested {
            if !hard[k.as_str()].is_null() {
                *used.entry(k.clone()).or_default() += *v;
            }
        }
        let mut updated = q.object.clone();
        updated["status"]["hard"] = hard.clone();
        updated["status"]["used"] = quota::used_status(hard, &used);
        ops.push(WriteOp::Update {
            key: ObjectKey::new(
                RESOURCE,
                &ns,
                q.object["metadata"]["name"].as_str().unwrap_or_default(),
            ),
            object: updated,
            expected: Some(q.revision),
        });
    }
    Ok(ops)
}
