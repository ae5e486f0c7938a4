//! What a fresh cluster has: the `default`, `kube-system`, `kube-public` and `kube-node-lease`
//! namespaces, and `ferry-system` for ferry's own `Source` and `Revision` objects.
//! Idempotent: existing namespaces are left alone, and a concurrent creator is not an error.

use serde_json::json;

use crate::api::admission::{Admission, FieldValidation};
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
        if storage.get(&key).await?.is_some() {
            continue;
        }
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let (object, _) = admission
            .create(kind, None, object, FieldValidation::Strict)
            .map_err(|e| StorageError::Unavailable(e.message))?;
        match storage.write(vec![WriteOp::Create { key, object }]).await {
            Ok(_) | Err(StorageError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
