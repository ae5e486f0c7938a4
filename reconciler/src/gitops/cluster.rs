//! The GitOps engine's view of the cluster, through the `kube` client: objects by kind and
//! name, objects a source applied (by label), the multi-object transaction, and ferry's own
//! `Source` and `Revision` objects.

use ferry_schema::kinds::{self, KINDS, KindInfo};
use http::{Request, header};
use serde_json::{Value, json};

use super::manifests::{ObjectId, SOURCE_LABEL};

/// Where ferry keeps its `Source` and `Revision` objects.
pub const FERRY_NAMESPACE: &str = "ferry-system";
/// The field manager of everything the GitOps engine writes.
pub const FIELD_MANAGER: &str = "ferry-gitops";

/// Why a cluster call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The apiserver refused (a Status); the causes name the fields.
    #[error("{message}")]
    Refused {
        /// HTTP code.
        code: u16,
        /// Kubernetes reason.
        reason: String,
        /// Message.
        message: String,
        /// `(field, message)` pairs.
        causes: Vec<(String, String)>,
    },
    /// The apiserver could not be reached or answered nonsense.
    #[error("the apiserver is unavailable: {0}")]
    Unavailable(String),
}

impl ClusterError {
    /// Whether the error is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClusterError::Refused { code: 404, .. })
    }
}

impl From<kube::Error> for ClusterError {
    fn from(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => {
                let causes = status
                    .details
                    .as_ref()
                    .map(|d| {
                        d.causes
                            .iter()
                            .map(|c| (c.field.clone(), c.message.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                ClusterError::Refused {
                    code: status.code,
                    reason: status.reason.clone(),
                    message: status.message.clone(),
                    causes,
                }
            }
            other => ClusterError::Unavailable(other.to_string()),
        }
    }
}

/// The path of a kind's collection (in `namespace` if namespaced).
pub fn collection_path(kind: &KindInfo, namespace: &str) -> String {
    let base = if kind.group.is_empty() {
        format!("/api/{}", kind.version)
    } else {
        format!("/apis/{}/{}", kind.group, kind.version)
    };
    if kind.namespaced && !namespace.is_empty() {
        format!("{base}/namespaces/{namespace}/{}", kind.plural)
    } else {
        format!("{base}/{}", kind.plural)
    }
}

/// Where a kind is served: built-in kinds from the kind table, custom ones from the
/// apiserver's discovery.
#[derive(Debug, Clone)]
struct Served {
    base: String,
    plural: String,
    namespaced: bool,
}

impl Served {
    fn collection(&self, namespace: &str) -> String {
        if self.namespaced && !namespace.is_empty() {
            format!("{}/namespaces/{namespace}/{}", self.base, self.plural)
        } else {
            format!("{}/{}", self.base, self.plural)
        }
    }
}

/// Objects per page when the live objects of a source are read.
const LIVE_PAGE: usize = 250;

/// The items of a list response, taken out of it.
fn items_of(mut list: Value) -> Vec<Value> {
    match list.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

/// The kinds a source may apply: every kind but ferry's own.
fn applied_kinds() -> Vec<(String, String)> {
    KINDS
        .iter()
        .filter(|k| k.group != ferry_schema::ferry::GROUP)
        .map(|k| (k.api_version(), k.kind.to_owned()))
        .collect()
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The cluster, as the engine uses it.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

impl Cluster {
    /// Wraps a client.
    pub fn new(client: kube::Client) -> Cluster {
        Cluster { client }
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value, ClusterError> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT, "application/json")
            .body(body)
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        Ok(self.client.request::<Value>(request).await?)
    }

    /// Where `kind` of `api_version` is served; `None` when it is not (a custom kind whose CRD
    /// is not installed).
    async fn served(&self, api_version: &str, kind: &str) -> Result<Option<Served>, ClusterError> {
        if let Some(info) = kinds::find(api_version, kind) {
            let base = collection_path(info, "");
            let base = base
                .trim_end_matches(info.plural)
                .trim_end_matches('/')
                .to_owned();
            return Ok(Some(Served {
                base,
                plural: info.plural.to_owned(),
                namespaced: info.namespaced,
            }));
        }
        if !api_version.contains('/') {
            return Ok(None);
        }
        let base = format!("/apis/{api_version}");
        let list = match self
            .call("GET", &base, "application/json", Vec::new())
            .await
        {
            Ok(list) => list,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(list["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["kind"] == kind && r["name"].as_str().is_some_and(|n| !n.contains('/')))
            .map(|r| Served {
                base: base.clone(),
                plural: r["name"].as_str().unwrap_or_default().to_owned(),
                namespaced: r["namespaced"].as_bool().unwrap_or(true),
            }))
    }

    /// Reads an object; `None` when it does not exist.
    pub async fn get(&self, id: &ObjectId) -> Result<Option<Value>, ClusterError> {
        let Some(served) = self.served(&id.api_version, &id.kind).await? else {
            return Ok(None);
        };
        let uri = format!("{}/{}", served.collection(&id.namespace), id.name);
        match self.call("GET", &uri, "application/json", Vec::new()).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists a kind (in one namespace or all) with a label selector.
    pub async fn list(
        &self,
        kind: &KindInfo,
        namespace: &str,
        selector: &str,
    ) -> Result<Vec<Value>, ClusterError> {
        self.list_at(&collection_path(kind, namespace), selector, "")
            .await
    }

    async fn list_at(
        &self,
        collection: &str,
        selector: &str,
        fields: &str,
    ) -> Result<Vec<Value>, ClusterError> {
        let mut uri = format!("{collection}?labelSelector={}", encode(selector));
        if !fields.is_empty() {
            uri.push_str(&format!("&fieldSelector={}", encode(fields)));
        }
        let list = self
            .call("GET", &uri, "application/json", Vec::new())
            .await?;
        Ok(items_of(list))
    }

    /// Every object carrying `source`'s label (ferry's own kinds excepted), by identity.
    pub async fn applied_by(&self, source: &str) -> Result<Vec<(ObjectId, Value)>, ClusterError> {
        let mut out = Vec::new();
        self.visit_live(source, &applied_kinds(), |id, object| {
            out.push((id, object))
        })
        .await?;
        Ok(out)
    }

    /// The identities of the objects carrying `source`'s label (ferry's own kinds excepted).
    pub async fn inventory(&self, source: &str) -> Result<Vec<ObjectId>, ClusterError> {
        let mut out = Vec::new();
        self.visit_live(source, &applied_kinds(), |id, _| out.push(id))
            .await?;
        Ok(out)
    }

    /// Hands every live object of the given kinds that carries `source`'s label to `visit`,
    /// read [`LIVE_PAGE`] at a time: a caller that keeps only what it derives from an object
    /// holds one page, not every object of the source at once (3,000 objects parsed at once
    /// were the largest part of the appliance's memory while a rollout settled).
    pub async fn visit_live(
        &self,
        source: &str,
        kinds: &[(String, String)],
        mut visit: impl FnMut(ObjectId, Value),
    ) -> Result<(), ClusterError> {
        let selector = format!("{SOURCE_LABEL}={source}");
        let unique: std::collections::BTreeSet<&(String, String)> = kinds.iter().collect();
        for (api_version, kind_name) in unique {
            let Some(served) = self.served(api_version, kind_name).await? else {
                continue;
            };
            let collection = served.collection("");
            let mut token = String::new();
            loop {
                let mut uri = format!(
                    "{collection}?labelSelector={}&limit={LIVE_PAGE}",
                    encode(&selector)
                );
                if !token.is_empty() {
                    uri.push_str(&format!("&continue={}", encode(&token)));
                }
                let mut page = self
                    .call("GET", &uri, "application/json", Vec::new())
                    .await?;
                token = page["metadata"]["continue"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                for object in items_of(page.take()) {
                    let id = ObjectId {
                        api_version: api_version.clone(),
                        kind: kind_name.clone(),
                        namespace: object["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        name: object["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    };
                    visit(id, object);
                }
                if token.is_empty() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Runs a transaction (see the apiserver's `transaction` module): `operations` are
    /// `{"apply": object}`, `{"create": object}` or `{"delete": reference}`. Returns the
    /// per-operation results.
    pub async fn transaction(
        &self,
        operations: Vec<Value>,
        dry_run: bool,
    ) -> Result<Vec<Value>, ClusterError> {
        // The operations move into the body (no copy), and the body is freed once it is bytes:
        // a big commit is held once, not three times, while the apiserver applies it.
        let mut body = serde_json::Map::new();
        body.insert("apiVersion".into(), json!("ferry.dev/v1"));
        body.insert("kind".into(), json!("Transaction"));
        body.insert("operations".into(), Value::Array(operations));
        let mut uri = format!("/apis/ferry.dev/v1/transactions?fieldManager={FIELD_MANAGER}");
        if dry_run {
            uri.push_str("&dryRun=All");
        }
        let bytes = serde_json::to_vec(&Value::Object(body))
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        let answer = self.call("POST", &uri, "application/json", bytes).await?;
        Ok(answer["status"]["results"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    fn ferry_kind(kind: &str) -> Result<&'static KindInfo, ClusterError> {
        kinds::find(ferry_schema::ferry::API_VERSION, kind)
            .ok_or_else(|| ClusterError::Unavailable(format!("ferry.dev/v1 {kind} is not served")))
    }

    /// A `Source` by name.
    pub async fn source(&self, name: &str) -> Result<Option<Value>, ClusterError> {
        let kind = Self::ferry_kind("Source")?;
        let uri = format!("{}/{name}", collection_path(kind, FERRY_NAMESPACE));
        match self.call("GET", &uri, "application/json", Vec::new()).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every `Source`.
    pub async fn sources(&self) -> Result<Vec<Value>, ClusterError> {
        self.list(Self::ferry_kind("Source")?, FERRY_NAMESPACE, "")
            .await
    }

    /// Creates or replaces a `Source`'s spec (server-side apply by `manager`).
    pub async fn apply_source(&self, source: &Value, manager: &str) -> Result<Value, ClusterError> {
        let kind = Self::ferry_kind("Source")?;
        let name = source["metadata"]["name"].as_str().unwrap_or_default();
        let uri = format!(
            "{}/{name}?fieldManager={}&force=true",
            collection_path(kind, FERRY_NAMESPACE),
            encode(manager)
        );
        let bytes =
            serde_json::to_vec(source).map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        self.call("PATCH", &uri, "application/apply-patch+yaml", bytes)
            .await
    }

    /// Merges `patch` into a `Source` (`status`: into its status subresource).
    pub async fn patch_source(
        &self,
        name: &str,
        patch: &Value,
        status: bool,
    ) -> Result<Value, ClusterError> {
        let kind = Self::ferry_kind("Source")?;
        let uri = format!(
            "{}/{name}{}",
            collection_path(kind, FERRY_NAMESPACE),
            if status { "/status" } else { "" }
        );
        let bytes =
            serde_json::to_vec(patch).map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        self.call("PATCH", &uri, "application/merge-patch+json", bytes)
            .await
    }

    /// The `Revision`s of a source (all sources when `None`), oldest first.
    pub async fn revisions(&self, source: Option<&str>) -> Result<Vec<Value>, ClusterError> {
        let selector = source
            .map(|s| format!("{REVISION_LABEL}={s}"))
            .unwrap_or_default();
        let mut items = self
            .list(Self::ferry_kind("Revision")?, FERRY_NAMESPACE, &selector)
            .await?;
        items.sort_by_key(|r| {
            (
                r["spec"]["source"].as_str().unwrap_or_default().to_owned(),
                sequence(r),
            )
        });
        Ok(items)
    }

    /// The `Revision`s matching a label selector and a field selector (see
    /// `ferry_schema::selector::REVISION_OBJECT_FIELD`), answered by the apiserver, in the
    /// same order as [`Cluster::revisions`].
    pub async fn revisions_selected(
        &self,
        labels: &str,
        fields: &str,
    ) -> Result<Vec<Value>, ClusterError> {
        let kind = Self::ferry_kind("Revision")?;
        let mut items = self
            .list_at(&collection_path(kind, FERRY_NAMESPACE), labels, fields)
            .await?;
        items.sort_by_key(|r| {
            (
                r["spec"]["source"].as_str().unwrap_or_default().to_owned(),
                sequence(r),
            )
        });
        Ok(items)
    }

    /// Creates a `Revision`.
    pub async fn create_revision(&self, revision: &Value) -> Result<Value, ClusterError> {
        let kind = Self::ferry_kind("Revision")?;
        let bytes =
            serde_json::to_vec(revision).map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        self.call(
            "POST",
            &collection_path(kind, FERRY_NAMESPACE),
            "application/json",
            bytes,
        )
        .await
    }

    /// Merges `patch` into a `Revision`.
    pub async fn patch_revision(&self, name: &str, patch: &Value) -> Result<Value, ClusterError> {
        let kind = Self::ferry_kind("Revision")?;
        let uri = format!("{}/{name}", collection_path(kind, FERRY_NAMESPACE));
        let bytes =
            serde_json::to_vec(patch).map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        self.call("PATCH", &uri, "application/merge-patch+json", bytes)
            .await
    }
}

/// The label on a `Revision` naming its source (not [`SOURCE_LABEL`], so that the audit is
/// never pruned).
pub const REVISION_LABEL: &str = "ferry.dev/revision-of";

/// The sequence number of a revision within its source (from its name, `{source}-{n}`).
pub fn sequence(revision: &Value) -> u64 {
    revision["metadata"]["name"]
        .as_str()
        .and_then(|n| n.rsplit('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
