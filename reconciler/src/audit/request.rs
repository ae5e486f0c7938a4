//! `ferry sync` and `ferry rollback`: a request left on the Source as an annotation, and the
//! wait for the `Revision` that answers it (labelled with the request's id).

use std::time::Duration;

use serde_json::{Value, json};

use super::{AuditError, AuditRecord};
use crate::gitops::cluster::{Cluster, REVISION_LABEL};
use crate::gitops::worker::REQUEST_LABEL;

/// How often the answer is looked for.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// A fresh request id: unique per process and moment.
pub fn request_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{nanos:x}-{}", std::process::id())
}

/// Leaves `request` (with a fresh id) under the annotation `annotation` of `source`, then
/// waits up to `timeout` for the `Revision` that answers it.
pub async fn request_and_wait(
    cluster: &Cluster,
    source: &str,
    annotation: &str,
    mut request: Value,
    timeout: Duration,
) -> Result<AuditRecord, AuditError> {
    let id = request_id();
    request["id"] = json!(id);
    let patch = json!({"metadata": {"annotations": {annotation: request.to_string()}}});
    cluster.patch_source(source, &patch, false).await?;
    wait_for_answer(cluster, source, &id, timeout).await
}

/// Waits up to `timeout` for the `Revision` of `source` labelled with request `id` (the
/// apiserver selects it by label; nothing else is listed).
pub async fn wait_for_answer(
    cluster: &Cluster,
    source: &str,
    id: &str,
    timeout: Duration,
) -> Result<AuditRecord, AuditError> {
    let labels = format!("{REVISION_LABEL}={source},{REQUEST_LABEL}={id}");
    let look = async {
        let mut every = tokio::time::interval(LOOK_EVERY);
        loop {
            every.tick().await;
            let found = cluster.revisions_selected(&labels, "").await?;
            if let Some(r) = found.first() {
                return Ok::<_, AuditError>(AuditRecord::of(r));
            }
        }
    };
    match tokio::time::timeout(timeout, look).await {
        Ok(answer) => answer,
        Err(_) => Err(AuditError::NoAnswer {
            source_name: source.to_owned(),
            seconds: timeout.as_secs(),
        }),
    }
}
