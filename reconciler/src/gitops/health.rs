//! Health of applied objects, judged from the status their controllers write.
//!
//! - Deployment, StatefulSet, ReplicaSet, ReplicationController: the controller has seen the latest generation and
//!   all replicas are updated and available (ready for StatefulSets), and no old replica of a
//!   Deployment is left; `Progressing=False` with
//!   reason `ProgressDeadlineExceeded` is Degraded.
//! - DaemonSet: every scheduled pod is updated and available.
//! - Job: `Complete` is Healthy, `Failed` is Degraded.
//! - Pod: `Ready` (or `Succeeded`) is Healthy, `Failed` is Degraded.
//! - PersistentVolumeClaim: `Bound`. Service of type LoadBalancer: has an ingress address.
//! - Everything else is Healthy once stored.

use serde_json::Value;

use super::manifest::Manifest;

/// The health of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Ready, available or complete.
    Healthy,
    /// Not yet: why.
    Progressing(String),
    /// Failed: why.
    Degraded(String),
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn observed(object: &Value) -> bool {
    int(&object["status"]["observedGeneration"]) >= int(&object["metadata"]["generation"])
}

/// Whether an object's kind has a health rule worth following (everything else is Healthy
/// as soon as it is stored). The manifest is read only for a Service.
pub fn is_followed(kind: &str, object: &Manifest) -> bool {
    matches!(
        kind,
        "Deployment"
            | "StatefulSet"
            | "ReplicaSet"
            | "ReplicationController"
            | "DaemonSet"
            | "Job"
            | "Pod"
            | "PersistentVolumeClaim"
    ) || (kind == "Service" && object.value()["spec"]["type"] == "LoadBalancer")
}

/// Judges one live object.
pub fn assess(object: &Value) -> Health {
    let kind = object["kind"].as_str().unwrap_or_default();
    let status = &object["status"];
    match kind {
        "Deployment" | "ReplicaSet" | "ReplicationController" | "StatefulSet" => {
            if let Some(c) = condition(object, "Progressing")
                && c["status"] == "False"
                && c["reason"] == "ProgressDeadlineExceeded"
            {
                return Health::Degraded(format!(
                    "{kind} exceeded its progress deadline: {}",
                    c["message"].as_str().unwrap_or_default()
                ));
            }
            let want = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready_field = if kind == "StatefulSet" {
                "readyReplicas"
            } else {
                "availableReplicas"
            };
            let updated = if matches!(kind, "ReplicaSet" | "ReplicationController") {
                int(&status["replicas"])
            } else {
                int(&status["updatedReplicas"])
            };
            let ready = int(&status[ready_field]);
            if !observed(object) {
                Health::Progressing(format!("{kind} generation not yet observed"))
            } else if updated < want || ready < want {
                Health::Progressing(format!(
                    "{ready} of {want} replicas available, {updated} updated"
                ))
            } else if kind == "Deployment" && int(&status["replicas"]) > updated {
                Health::Progressing(format!(
                    "{} old replicas are pending termination",
                    int(&status["replicas"]) - updated
                ))
            } else {
                Health::Healthy
            }
        }
        "DaemonSet" => {
            let want = int(&status["desiredNumberScheduled"]);
            if !observed(object) || status.is_null() {
                Health::Progressing("DaemonSet not yet observed".into())
            } else if int(&status["updatedNumberScheduled"]) < want
                || int(&status["numberAvailable"]) < want
            {
                Health::Progressing(format!(
                    "{} of {want} pods available",
                    int(&status["numberAvailable"])
                ))
            } else {
                Health::Healthy
            }
        }
        "Job" => {
            if condition(object, "Failed").is_some_and(|c| c["status"] == "True") {
                Health::Degraded("the Job failed".into())
            } else if condition(object, "Complete").is_some_and(|c| c["status"] == "True") {
                Health::Healthy
            } else {
                Health::Progressing("the Job has not completed".into())
            }
        }
        "Pod" => match status["phase"].as_str() {
            Some("Succeeded") => Health::Healthy,
            Some("Failed") => Health::Degraded("the Pod failed".into()),
            _ if condition(object, "Ready").is_some_and(|c| c["status"] == "True") => {
                Health::Healthy
            }
            _ => Health::Progressing("the Pod is not ready".into()),
        },
        "PersistentVolumeClaim" => match status["phase"].as_str() {
            Some("Bound") => Health::Healthy,
            Some("Lost") => Health::Degraded("the claim lost its volume".into()),
            _ => Health::Progressing("the claim is not bound".into()),
        },
        "Service" if object["spec"]["type"] == "LoadBalancer" => {
            if status["loadBalancer"]["ingress"]
                .as_array()
                .is_some_and(|i| !i.is_empty())
            {
                Health::Healthy
            } else {
                Health::Progressing("no load-balancer address yet".into())
            }
        }
        _ => Health::Healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployments() {
        let mut d = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": {}});
        assert!(matches!(assess(&d), Health::Progressing(_)));
        d["status"] =
            json!({"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2});
        assert_eq!(assess(&d), Health::Healthy);
        // An old pod still counted among the available ones: not done yet.
        d["status"]["replicas"] = json!(3);
        assert!(matches!(assess(&d), Health::Progressing(m) if m.contains("pending termination")));
        d["status"]["replicas"] = json!(2);
        d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
        assert!(matches!(assess(&d), Health::Degraded(_)));
    }

    #[test]
    fn jobs_pods_and_the_rest() {
        let job = json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        assert!(matches!(assess(&job), Health::Degraded(_)));
        let job = json!({"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(assess(&job), Health::Healthy);
        let pod = json!({"kind": "Pod", "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(assess(&pod), Health::Healthy);
        assert_eq!(assess(&json!({"kind": "ConfigMap"})), Health::Healthy);
    }
}
