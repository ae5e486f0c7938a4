//! Kubernetes' defaults per kind, as the kube-apiserver fills them in (what `kubectl get -o
//! yaml` shows for an object that gave only the essentials): pod specs (also inside workload
//! templates), workloads' update strategies, Services, Jobs, Secrets, Namespaces; the initial
//! status of kinds whose status is a subresource; the allocations a Service update keeps.
//!
//! Missing lists and maps are never written as `null`: fields are reached with `get_mut`, not
//! indexing (which would insert nulls).

use ferry_schema::kinds::KindInfo;
use serde_json::{Map, Value, json};

use super::admission::meta;
use super::registry_rules;

fn set_default(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.entry(key.to_owned()).or_insert(value);
    }
}

/// A workload's update strategy, defaulted field by field as Kubernetes does: `type`
/// RollingUpdate, and then each missing `rollingUpdate` field (an empty `strategy: {}`, which
/// protobuf clients always send, gets them all).
fn default_update_strategy(spec: &mut Value, key: &str, rolling: Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, key, json!({}));
    let strategy = &mut spec[key];
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        set_default(strategy, "rollingUpdate", json!({}));
        if let Value::Object(fields) = rolling {
            for (k, v) in fields {
                set_default(&mut strategy["rollingUpdate"], &k, v);
            }
        }
    }
}

fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let image = c["image"].as_str().unwrap_or_default().to_owned();
            let tag = image
                .rsplit('/')
                .next()
                .and_then(|last| last.split_once(':'))
                .map(|(_, t)| t.to_owned());
            let policy = if image.contains('@') || tag.as_deref().is_some_and(|t| t != "latest") {
                "IfNotPresent"
            } else {
                "Always"
            };
            set_default(c, "imagePullPolicy", json!(policy));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// A pod's container that limits a resource but does not request it requests its limit (as
/// Kubernetes defaults pods, not templates).
pub fn requests_from_limits(spec: &mut Value) {
    for list in ["initContainers", "containers"] {
        let containers = spec.get_mut(list).and_then(Value::as_array_mut);
        for c in containers.into_iter().flatten() {
            let Some(limits) = c["resources"]["limits"].as_object().cloned() else {
                continue;
            };
            if limits.is_empty() || !c["resources"].is_object() {
                continue;
            }
            if !c["resources"]["requests"].is_object() {
                c["resources"]["requests"] = json!({});
            }
            for (resource, value) in limits {
                set_default(&mut c["resources"]["requests"], &resource, value);
            }
        }
    }
}

/// Kinds whose metadata carries a `generation` (bumped when the spec changes), as in
/// Kubernetes; custom resources have one too.
pub fn has_generation(kind: &KindInfo) -> bool {
    matches!(
        kind.kind,
        "Deployment"
            | "ReplicaSet"
            | "DaemonSet"
            | "StatefulSet"
            | "ReplicationController"
            | "Job"
            | "CronJob"
            | "HorizontalPodAutoscaler"
            | "PodDisruptionBudget"
            | "Ingress"
            | "NetworkPolicy"
            | "CustomResourceDefinition"
            | "Source"
    ) || ferry_schema::kinds::find(&kind.api_version(), kind.kind).is_none()
}

/// The QoS class of a pod from its containers' requests and limits: Guaranteed when every
/// container limits cpu and memory and requests equal limits, BestEffort when none requests or
/// limits anything, Burstable otherwise.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| spec[*l].as_array().into_iter().flatten())
        .collect();
    let resource_set = |c: &Value, what: &str| {
        c["resources"][what]
            .as_object()
            .is_some_and(|m| m.keys().any(|k| k == "cpu" || k == "memory"))
    };
    if containers
        .iter()
        .all(|c| !resource_set(c, "requests") && !resource_set(c, "limits"))
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = &c["resources"]["limits"][*r];
            let request = &c["resources"]["requests"][*r];
            !limit.is_null() && (request.is_null() || request == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// What a new pod gets besides its spec's defaults: the `not-ready` and `unreachable`
/// NoExecute tolerations of 300 s (the DefaultTolerationSeconds admission), and its QoS class.
pub fn new_pod(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    let tolerations = spec
        .as_object_mut()
        .map(|m| m.entry("tolerations").or_insert_with(|| json!([])));
    if let Some(Value::Array(tolerations)) = tolerations {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let tolerated = tolerations.iter().any(|t| {
                (t["key"] == key || (t["key"].is_null() && t["operator"] == "Exists"))
                    && (t["effect"] == "NoExecute" || t["effect"].is_null())
            });
            if !tolerated {
                tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    let qos = qos_class(&pod["spec"]);
    if let Some(map) = pod.as_object_mut() {
        let status = map.entry("status").or_insert_with(|| json!({}));
        if status.is_object() {
            status["qosClass"] = json!(qos);
        }
    }
}

/// A Job's selector and the labels of its pods, from its uid, as the Job registry sets them
/// (unless `manualSelector`).
fn default_job_selector(job: &mut Value) {
    let uid = job["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if uid.is_empty() || job["spec"]["manualSelector"] == json!(true) {
        return;
    }
    let Some(spec) = job.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    set_default(
        spec,
        "selector",
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = spec
        .as_object_mut()
        .map(|m| m.entry("template").or_insert_with(|| json!({})));
    let Some(template) = template.filter(|t| t.is_object()) else {
        return;
    };
    let labels = meta(template).entry("labels").or_insert_with(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            labels.entry(k).or_insert_with(|| json!(v));
        }
    }
}

/// Applies Kubernetes' defaults for the kind.
pub fn default(kind: &KindInfo, object: &mut Value) {
    let had_spec = object.get("spec").is_some();
    default_fields(kind, object);
    // Defaulting reads `spec` through indexing, which makes a null one: not a field the
    // object has (a ConfigMap has no spec).
    if !had_spec
        && object.get("spec").is_some_and(Value::is_null)
        && let Some(map) = object.as_object_mut()
    {
        map.remove("spec");
    }
    // Empty metadata maps and lists are "not set" (Go's omitempty): a merge patch that removes
    // the last annotation leaves none, not `{}`, so the write is a no-op when nothing else
    // changed.
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|key, value| {
            let empty = value.is_null()
                || value.as_object().is_some_and(Map::is_empty)
                || value.as_array().is_some_and(Vec::is_empty);
            !(empty
                && matches!(
                    key.as_str(),
                    "labels" | "annotations" | "finalizers" | "ownerReferences" | "managedFields"
                ))
        });
    }
}

fn default_fields(kind: &KindInfo, object: &mut Value) {
    if (kind.group, kind.kind) == ("", "Secret") {
        set_default(object, "type", json!("Opaque"));
    }
    registry_rules::normalize(kind, object);
    if (kind.group, kind.kind) == ("", "Namespace")
        && let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned)
    {
        // Every namespace carries its name as a label, for namespace selectors.
        let labels = &mut meta(object).entry("labels").or_insert_with(|| json!({}));
        if labels.is_object() {
            labels["kubernetes.io/metadata.name"] = json!(name);
        }
        // The namespace controller's finalizer: content goes before the namespace does.
        if object["spec"].is_null() {
            object["spec"] = json!({});
        }
        set_default(
            &mut object["spec"],
            "finalizers",
            json!([super::namespace::FINALIZER]),
        );
    }
    if (kind.group, kind.kind) == ("", "LimitRange") {
        super::limitrange::default_range(object);
    }
    if (kind.group, kind.kind) == ("", "ReplicationController") {
        // A ReplicationController without labels carries its template's.
        let labels = object["spec"]["template"]["metadata"]["labels"].clone();
        let own = meta(object).entry("labels").or_insert_with(|| json!({}));
        if own.as_object().is_some_and(Map::is_empty) && labels.is_object() {
            *own = labels;
        }
    }
    let spec = &mut object["spec"];
    match (kind.group, kind.kind) {
        ("", "Pod") => {
            default_pod_spec(spec);
            requests_from_limits(spec);
        }
        ("apps", "Deployment") => {
            set_default(spec, "replicas", json!(1));
            default_update_strategy(
                spec,
                "strategy",
                json!({"maxSurge": "25%", "maxUnavailable": "25%"}),
            );
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("apps", "ReplicaSet") => {
            set_default(spec, "replicas", json!(1));
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("", "ReplicationController") => {
            set_default(spec, "replicas", json!(1));
            let labels = spec["template"]["metadata"]["labels"].clone();
            // An empty selector is the template's labels.
            if labels.as_object().is_some_and(|l| !l.is_empty())
                && spec["selector"].as_object().is_none_or(Map::is_empty)
            {
                spec["selector"] = labels;
            }
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("apps", "DaemonSet") => {
            default_update_strategy(
                spec,
                "updateStrategy",
                json!({"maxUnavailable": 1, "maxSurge": 0}),
            );
            set_default(spec, "revisionHistoryLimit", json!(10));
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("apps", "StatefulSet") => {
            set_default(spec, "replicas", json!(1));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            default_update_strategy(spec, "updateStrategy", json!({"partition": 0}));
            set_default(spec, "revisionHistoryLimit", json!(10));
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("batch", "Job") => {
            // Completions default to 1 only when parallelism is unset too: a Job with only
            // parallelism is a work queue, done when one pod succeeds and the rest finish.
            if spec["completions"].is_null() && spec["parallelism"].is_null() {
                set_default(spec, "completions", json!(1));
            }
            set_default(spec, "parallelism", json!(1));
            set_default(spec, "backoffLimit", json!(6));
            set_default(spec, "completionMode", json!("NonIndexed"));
            set_default(spec, "suspend", json!(false));
            if spec["podFailurePolicy"].is_null() {
                set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            }
            default_pod_spec(&mut spec["template"]["spec"]);
            default_job_selector(object);
        }
        ("batch", "CronJob") => {
            set_default(spec, "concurrencyPolicy", json!("Allow"));
            set_default(spec, "suspend", json!(false));
            set_default(spec, "successfulJobsHistoryLimit", json!(3));
            set_default(spec, "failedJobsHistoryLimit", json!(1));
            default_pod_spec(&mut spec["jobTemplate"]["spec"]["template"]["spec"]);
        }
        ("", "Service") if spec.is_object() => {
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            if spec["type"] != "ExternalName" {
                set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer")) {
                set_default(spec, "externalTrafficPolicy", json!("Cluster"));
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    set_default(p, "protocol", json!("TCP"));
                    // Go's zero values are "not set" (protobuf clients always send them):
                    // `nodePort: 0`, and 0 or "" for the IntOrString `targetPort`.
                    if let Some(map) = p.as_object_mut() {
                        map.retain(|k, v| match k.as_str() {
                            "nodePort" => *v != json!(0),
                            "targetPort" => *v != json!(0) && *v != json!(""),
                            _ => true,
                        });
                    }
                    let port = p["port"].clone();
                    set_default(p, "targetPort", port);
                }
            }
        }
        _ => {}
    }
}

/// An update that leaves out a Service's allocated values keeps them, as Kubernetes does (so
/// `kubectl replace` of a manifest without `clusterIP` works).
pub(crate) fn carry_allocations(old: &Value, new: &mut Value) {
    for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        let missing = new["spec"][field].is_null() || new["spec"][field].as_str() == Some("");
        if missing && !old["spec"][field].is_null() {
            new["spec"][field] = old["spec"][field].clone();
        }
    }
    let old_ports = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
    if let Some(ports) = new["spec"]["ports"].as_array_mut() {
        for port in ports {
            if port["nodePort"].is_null()
                && let Some(before) = old_ports
                    .iter()
                    .find(|p| p["port"] == port["port"] && p["protocol"] == port["protocol"])
                && !before["nodePort"].is_null()
            {
                port["nodePort"] = before["nodePort"].clone();
            }
        }
    }
}

/// Fresh status for a created object whose status is a subresource.
/// The status a new object starts with: Kubernetes' zero values, which include the counters
/// its status must always carry (a DaemonSet's `numberReady`, a PDB's `expectedPods`, ...).
pub(crate) fn initial_status(kind: &KindInfo) -> Value {
    match (kind.group, kind.kind) {
        ("", "Namespace") => json!({"phase": "Active"}),
        ("", "Pod") => json!({"phase": "Pending"}),
        ("apps", "DaemonSet") => json!({
            "currentNumberScheduled": 0, "desiredNumberScheduled": 0,
            "numberMisscheduled": 0, "numberReady": 0,
        }),
        ("apps", "ReplicaSet") | ("", "ReplicationController") => json!({"replicas": 0}),
        ("apps", "StatefulSet") => json!({"replicas": 0, "availableReplicas": 0}),
        ("autoscaling", "HorizontalPodAutoscaler") => json!({"desiredReplicas": 0}),
        ("policy", "PodDisruptionBudget") => json!({
            "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0,
        }),
        _ => json!({}),
    }
}
