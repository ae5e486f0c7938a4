//! What a fresh cluster has: the `default`, `kube-system`, `kube-public` and `kube-node-lease`
//! namespaces, `ferry-system` for ferry's own `Source` and `Revision` objects, and the
//! `kubernetes` Service in `default` (the first address of the service range, port 443, with
//! Endpoints at the apiserver). Idempotent: what exists is left alone (the Endpoints follow the
//! port the apiserver listens on), and a concurrent creator is not an error.

use std::net::SocketAddr;

use serde_json::json;

use crate::api::admission::{Admission, FieldValidation};
use crate::api::allocator::{self, Ranges};
use crate::storage::{ObjectKey, Storage, StorageError, WriteOp};

/// Namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "ferry-system",
];

/// Creates the system namespaces that are missing.
pub async fn system_namespaces(
    storage: &Storage,
    admission: &Admission,
) -> Result<(), StorageError> {
    let kind = ferry_schema::kinds::find("v1", "Namespace")
        .ok_or_else(|| StorageError::Unavailable("the Namespace kind is not in scope".into()))?;
    for name in SYSTEM_NAMESPACES {
        let key = ObjectKey::new("namespaces", "", *name);
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        ensure(storage, admission, kind, key, object).await?;
    }
    Ok(())
}

/// Creates `object` at `key` (admitted as `kind`) unless something is there already.
async fn ensure(
    storage: &Storage,
    admission: &Admission,
    kind: &ferry_schema::kinds::KindInfo,
    key: ObjectKey,
    object: serde_json::Value,
) -> Result<(), StorageError> {
    if storage.get(&key).await?.is_some() {
        return Ok(());
    }
    let (object, _) = admission
        .create(kind, None, object, FieldValidation::Strict)
        .map_err(|e| StorageError::Unavailable(e.message))?;
    match storage.write(vec![WriteOp::Create { key, object }]).await {
        Ok(_) | Err(StorageError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the system PriorityClasses (`system-node-critical`, `system-cluster-critical`) that
/// are missing.
pub async fn system_priority_classes(
    storage: &Storage,
    admission: &Admission,
) -> Result<(), StorageError> {
    let kind =
        ferry_schema::kinds::find("scheduling.k8s.io/v1", "PriorityClass").ok_or_else(|| {
            StorageError::Unavailable("the PriorityClass kind is not in scope".into())
        })?;
    for (name, value, description) in crate::api::priority::SYSTEM_CLASSES {
        let key = ObjectKey::new("scheduling.k8s.io/priorityclasses", "", *name);
        let object = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description,
            "preemptionPolicy": "PreemptLowerPriority"});
        ensure(storage, admission, kind, key, object).await?;
    }
    Ok(())
}

/// Creates the `kubernetes` Service in `default` when missing (ClusterIP: the first address of
/// the service range; port 443 named `https`), and points its Endpoints at `serving`.
pub async fn kubernetes_service(
    storage: &Storage,
    admission: &Admission,
    ranges: &Ranges,
    serving: SocketAddr,
) -> Result<(), StorageError> {
    let unavailable =
        |what: &str| StorageError::Unavailable(format!("the {what} kind is not in scope"));
    let service_kind =
        ferry_schema::kinds::find("v1", "Service").ok_or_else(|| unavailable("Service"))?;
    let endpoints_kind =
        ferry_schema::kinds::find("v1", "Endpoints").ok_or_else(|| unavailable("Endpoints"))?;
    let key = ObjectKey::new("services", "default", "kubernetes");
    if storage.get(&key).await?.is_none() {
        let object = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": ranges.first_ip().to_string(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": serving.port()}],
            },
        });
        let (mut object, _) = admission
            .create(
                service_kind,
                Some("default"),
                object,
                FieldValidation::Strict,
            )
            .map_err(|e| StorageError::Unavailable(e.message))?;
        let mut ops = allocator::allocate(ranges, &mut object)
            .map_err(|e| StorageError::Unavailable(e.message))?;
        ops.push(WriteOp::Create { key, object });
        match storage.write(ops).await {
            Ok(_) | Err(StorageError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let endpoints_key = ObjectKey::new("endpoints", "default", "kubernetes");
    let subsets = json!([{
        "addresses": [{"ip": serving.ip().to_string()}],
        "ports": [{"name": "https", "port": serving.port(), "protocol": "TCP"}],
    }]);
    let existing = storage.get(&endpoints_key).await?;
    if existing
        .as_ref()
        .is_some_and(|e| e.object["subsets"] == subsets)
    {
        return Ok(());
    }
    let object = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": subsets,
    });
    let (object, _) = admission
        .create(
            endpoints_kind,
            Some("default"),
            object,
            FieldValidation::Strict,
        )
        .map_err(|e| StorageError::Unavailable(e.message))?;
    let op = match existing {
        None => WriteOp::Create {
            key: endpoints_key,
            object,
        },
        Some(found) => {
            let mut object = object;
            object["metadata"] = found.object["metadata"].clone();
            WriteOp::Update {
                key: endpoints_key,
                object,
                expected: Some(found.revision),
            }
        }
    };
    match storage.write(vec![op]).await {
        Ok(_) | Err(StorageError::AlreadyExists(_)) | Err(StorageError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
