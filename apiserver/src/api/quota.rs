//! ResourceQuota admission of new pods: a pod that would take a namespace past a quota's
//! `spec.hard` (pods, cpu and memory requests and limits) is refused with 403 as Kubernetes
//! words it (`exceeded quota: NAME, requested: pods=1, used: pods=2, limited: pods=2`);
//! otherwise each quota's `status.used` grows by the pod in the same transaction as its
//! creation, guarded by the quota's revision, so two creates never both take the last unit.
//! The quota controller keeps `status.used` true as pods come and go.

use std::collections::BTreeMap;

use ferry_schema::kinds::KINDS;
use ferry_schema::quantity::Quantity;
use ferry_schema::quota;
use serde_json::Value;

use super::catalog::storage_resource;
use super::resource::Call;
use super::status::ApiError;
use crate::storage::{ObjectKey, WriteOp};

/// Whether `key` is a quota's (a conflict there means another create took units first).
pub fn is_quota(key: &ObjectKey) -> bool {
    key.resource == "resourcequotas"
}

/// The quota updates that go with creating `pod`, or the refusal.
pub async fn charge(call: &Call<'_>, pod: &Value) -> Result<Vec<WriteOp>, ApiError> {
    let Some(kind) = KINDS
        .iter()
        .find(|k| k.group.is_empty() && k.kind == "ResourceQuota")
    else {
        return Ok(Vec::new());
    };
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| call.path.namespace.clone())
        .unwrap_or_default();
    let resource = storage_resource(kind);
    let quotas = call
        .state
        .storage
        .list(&resource, Some(&ns), None, 0)
        .await
        .map_err(|e| call.storage_error(e))?;
    if quotas.items.is_empty() {
        return Ok(Vec::new());
    }
    let requested = quota::pod_usage(pod);
    // Usage the controller has not written yet is counted from the pods themselves.
    let mut counted: Option<BTreeMap<&'static str, Quantity>> = None;
    let mut ops = Vec::new();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    for q in &quotas.items {
        let hard = &q.object["spec"]["hard"];
        let used = match q.object["status"]["used"].as_object() {
            Some(used) => quota::TRACKED
                .iter()
                .filter_map(|r| Some((*r, Quantity::from_value(used.get(*r)?).ok()?)))
                .collect(),
            None => match &counted {
                Some(c) => c.clone(),
                None => {
                    let pods = call
                        .state
                        .storage
                        .list("pods", Some(&ns), None, 0)
                        .await
                        .map_err(|e| call.storage_error(e))?;
                    let c = quota::total(pods.items.iter().map(|p| &p.object));
                    counted = Some(c.clone());
                    c
                }
            },
        };
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
                    "pods \"{name}\" is forbidden: exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
                    list(&|e| format!("{}={}", e.resource, e.requested)),
                    list(&|e| format!("{}={}", e.resource, e.used)),
                    list(&|e| format!("{}={}", e.resource, e.limited)),
                ),
            ));
        }
        let mut after = used.clone();
        for (k, v) in &requested {
            *after.entry(k).or_default() += *v;
        }
        let mut object = q.object.clone();
        object["status"]["hard"] = hard.clone();
        object["status"]["used"] = quota::used_status(hard, &after);
        ops.push(WriteOp::Update {
            key: ObjectKey::new(
                &resource,
                &ns,
                q.object["metadata"]["name"].as_str().unwrap_or_default(),
            ),
            object,
            expected: Some(q.revision),
        });
    }
    Ok(ops)
}
