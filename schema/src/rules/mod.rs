//! The semantic rules the apiserver enforces and a JSON Schema cannot say: name syntax per kind,
//! label syntax, a workload's selector matching its template, unique container names, port
//! ranges, cron schedules, and so on. Each rule reads the object as JSON and adds findings with
//! the JSON pointer of the offending field; none of them assumes the schema already passed.

pub mod config;
pub mod metadata;
pub mod names;
pub mod pod;
pub mod policy;
pub mod selector;
pub mod service;
pub mod workload;

use serde_json::Value;

use crate::kinds::KindInfo;
use crate::pointer::JsonPointer;
use crate::position::Anchor;

/// One problem a rule found.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFinding {
    /// The field.
    pub path: JsonPointer,
    /// What is wrong.
    pub message: String,
    /// Point at the field's key or its value.
    pub anchor: Anchor,
}

/// The findings of the rules on one object.
#[derive(Debug, Default)]
pub struct Findings {
    items: Vec<RuleFinding>,
}

impl Findings {
    /// Adds a finding about a field's value.
    pub fn add(&mut self, path: JsonPointer, message: impl Into<String>) {
        self.items.push(RuleFinding {
            path,
            message: message.into(),
            anchor: Anchor::Value,
        });
    }

    /// Adds a finding about a field's key.
    pub fn add_key(&mut self, path: JsonPointer, message: impl Into<String>) {
        self.items.push(RuleFinding {
            path,
            message: message.into(),
            anchor: Anchor::Key,
        });
    }

    /// The findings so far.
    pub fn into_vec(self) -> Vec<RuleFinding> {
        self.items
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Runs every rule that applies to an object of `kind`.
pub fn check(kind: &KindInfo, object: &Value, out: &mut Findings) {
    metadata::check(kind, object, out);
    let root = JsonPointer::root();
    let spec = root.join("spec");
    match (kind.group, kind.kind) {
        ("", "Pod") => {
            pod::check_pod_spec(&object["spec"], &spec, pod::RestartRule::Any, out);
        }
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet") => {
            workload::check(kind.kind, &object["spec"], &spec, out);
        }
        ("batch", "Job") => workload::check_job(&object["spec"], &spec, out),
        ("batch", "CronJob") => workload::check_cron_job(&object["spec"], &spec, out),
        ("", "Service") => service::check(&object["spec"], &spec, out),
        ("", "ConfigMap") => config::check_config_map(object, out),
        ("", "Secret") => config::check_secret(object, out),
        ("policy", "PodDisruptionBudget") => policy::check_pdb(&object["spec"], &spec, out),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            policy::check_hpa(&object["spec"], &spec, out)
        }
        ("networking.k8s.io", "NetworkPolicy") => selector::check(
            &object["spec"]["podSelector"],
            &spec.join("podSelector"),
            out,
        ),
        _ => {}
    }
}

/// Reads an integer field, if it is one.
pub(crate) fn int(value: &Value) -> Option<i64> {
    value.as_i64()
}

/// Adds a finding when an integer field is set and below `min`.
pub(crate) fn at_least(value: &Value, min: i64, path: JsonPointer, out: &mut Findings) {
    if let Some(n) = int(value)
        && n < min
    {
        out.add(
            path,
            format!("must be greater than or equal to {min} (is {n})"),
        );
    }
}
