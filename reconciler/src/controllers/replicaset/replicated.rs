//! The kinds the ReplicaSet controller keeps at their replica count: the ReplicaSet and the
//! ReplicationController it succeeded. As in kube-controller-manager, one controller drives
//! both; a ReplicationController is read through a ReplicaSet-shaped view (its plain-map
//! selector as `matchLabels`, defaulting to the template's labels) and its status, which has
//! the same fields, is written back to it.

use std::fmt::Debug;

use ferry_schema::selector::LabelSelector;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as TypedSelector;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::controllers::error::ControllerError;
use crate::controllers::owner::key_of;
use crate::controllers::runner;

/// A kind whose objects keep `replicas` pods made from a template.
pub trait Replicated:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The component named on the events it records.
    const COMPONENT: &'static str;

    /// The object as a ReplicaSet: its metadata, spec and status.
    fn view(&self) -> Result<ReplicaSet, ControllerError>;

    /// Its selector, parsed.
    fn selector(&self) -> Result<LabelSelector, ControllerError>;
}

impl Replicated for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";

    fn view(&self) -> Result<ReplicaSet, ControllerError> {
        Ok(self.clone())
    }

    fn selector(&self) -> Result<LabelSelector, ControllerError> {
        runner::parse_selector(self, self.spec.as_ref().map(|s| &s.selector))
    }
}

impl Replicated for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";

    fn view(&self) -> Result<ReplicaSet, ControllerError> {
        let spec = self.spec.clone().unwrap_or_default();
        let status = match &self.status {
            None => None,
            Some(s) => Some(convert::<ReplicaSetStatus>(self, s)?),
        };
        Ok(ReplicaSet {
            metadata: self.metadata.clone(),
            spec: Some(ReplicaSetSpec {
                replicas: spec.replicas,
                min_ready_seconds: spec.min_ready_seconds,
                selector: typed_selector(self),
                template: spec.template,
            }),
            status,
        })
    }

    fn selector(&self) -> Result<LabelSelector, ControllerError> {
        let typed = typed_selector(self);
        runner::parse_selector(self, Some(&typed))
    }
}

/// A ReplicationController's selector as a LabelSelector: its map, or when that is empty the
/// template's labels (the default the apiserver also writes).
fn typed_selector(rc: &ReplicationController) -> TypedSelector {
    let spec = rc.spec.as_ref();
    let labels = spec
        .and_then(|s| s.selector.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| {
            spec.and_then(|s| s.template.as_ref())
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
        });
    TypedSelector {
        match_labels: labels,
        match_expressions: None,
    }
}

/// One status type read as another of the same fields.
fn convert<T: DeserializeOwned>(
    owner: &impl Resource<DynamicType = ()>,
    status: &impl Serialize,
) -> Result<T, ControllerError> {
    serde_json::to_value(status)
        .and_then(serde_json::from_value)
        .map_err(|e| ControllerError::Invalid {
            what: key_of(owner),
            message: format!("status does not read as a ReplicaSet's: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PodTemplateSpec, ReplicationControllerSpec, ReplicationControllerStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rc(selector: Option<&[(&str, &str)]>) -> ReplicationController {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        ReplicationController {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                generation: Some(2),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicationControllerSpec {
                replicas: Some(3),
                min_ready_seconds: Some(5),
                selector: selector.map(map),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(map(&[("app", "web"), ("tier", "front")])),
                        ..ObjectMeta::default()
                    }),
                    spec: None,
                }),
            }),
            status: Some(ReplicationControllerStatus {
                replicas: 2,
                ready_replicas: Some(1),
                observed_generation: Some(1),
                ..ReplicationControllerStatus::default()
            }),
        }
    }

    #[test]
    fn a_replication_controller_reads_as_a_replica_set() {
        let view = rc(Some(&[("app", "web")])).view().expect("converts");
        let spec = view.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.min_ready_seconds, Some(5));
        let status = view.status.as_ref().expect("status");
        assert_eq!(
            (
                status.replicas,
                status.ready_replicas,
                status.observed_generation
            ),
            (2, Some(1), Some(1))
        );
        let s = rc(Some(&[("app", "web")])).selector().expect("parses");
        assert!(s.matches_labels(&[("app".to_owned(), "web".to_owned())].into()));
        assert!(!s.matches_labels(&[("app".to_owned(), "db".to_owned())].into()));
    }

    #[test]
    fn an_empty_selector_is_the_templates_labels() {
        let s = rc(None).selector().expect("parses");
        let only_app = [("app".to_owned(), "web".to_owned())].into();
        let both = [
            ("app".to_owned(), "web".to_owned()),
            ("tier".to_owned(), "front".to_owned()),
        ]
        .into();
        assert!(!s.matches_labels(&only_app));
        assert!(s.matches_labels(&both));
        assert!(!rc(Some(&[])).selector().expect("parses").is_empty());
    }
}
