//! The columns `kubectl get -o wide` adds (priority 1), and the few priority-0 columns that
//! Kubernetes prints after AGE (a Node's VERSION), per kind.

use serde_json::{Value, json};

use super::{or_none, selector_text, text};

/// A column after AGE: name, type, priority.
type Column = (&'static str, &'static str, u8);

/// The columns after AGE for `kind`.
pub fn columns(kind: &str) -> Vec<Column> {
    match kind {
        "Pod" => vec![
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        "Deployment" | "ReplicaSet" | "ReplicationController" | "DaemonSet" | "Job" | "CronJob" => {
            vec![
                ("Containers", "string", 1),
                ("Images", "string", 1),
                ("Selector", "string", 1),
            ]
        }
        "StatefulSet" => vec![("Containers", "string", 1), ("Images", "string", 1)],
        "Service" => vec![("Selector", "string", 1)],
        "PriorityClass" => vec![("PreemptionPolicy", "string", 0)],
        "ResourceQuota" => vec![("Request", "string", 0), ("Limit", "string", 0)],
        "Node" => vec![
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        _ => vec![],
    }
}

/// The pod template of a workload (a CronJob's is one level deeper).
fn template<'a>(kind: &str, o: &'a Value) -> &'a Value {
    match kind {
        "CronJob" => &o["spec"]["jobTemplate"]["spec"]["template"],
        _ => &o["spec"]["template"],
    }
}

fn containers_and_images(template: &Value) -> (String, String) {
    let containers = template["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = containers.iter().map(|c| text(&c["name"])).collect();
    let images: Vec<String> = containers.iter().map(|c| text(&c["image"])).collect();
    (names.join(","), images.join(","))
}

fn map_selector(map: &Value) -> String {
    ferry_schema::selector::LabelSelector::from_map(map).to_string()
}

fn node_address(status: &Value, ty: &str) -> String {
    status["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == ty)
        .map(|a| text(&a["address"]))
        .unwrap_or_else(|| "<none>".into())
}

/// The cells of [`columns`].
pub fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let spec = &o["spec"];
    let status = &o["status"];
    match kind {
        "Pod" => {
            let gates = spec["readinessGates"].as_array().map(|gates| {
                let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
                let ready = gates
                    .iter()
                    .filter(|g| {
                        conditions
                            .iter()
                            .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
                    })
                    .count();
                format!("{ready}/{}", gates.len())
            });
            vec![
                json!(or_none(text(&status["podIP"]))),
                json!(or_none(text(&spec["nodeName"]))),
                json!(or_none(text(&status["nominatedNodeName"]))),
                json!(gates.unwrap_or_else(|| "<none>".into())),
            ]
        }
        "Deployment" | "ReplicaSet" | "DaemonSet" | "Job" | "CronJob" => {
            let (names, images) = containers_and_images(template(kind, o));
            let selector = match kind {
                "CronJob" => &spec["jobTemplate"]["spec"]["selector"],
                _ => &spec["selector"],
            };
            vec![
                json!(names),
                json!(images),
                json!(or_none(selector_text(selector))),
            ]
        }
        "ReplicationController" => {
            let (names, images) = containers_and_images(&spec["template"]);
            vec![
                json!(names),
                json!(images),
                json!(or_none(map_selector(&spec["selector"]))),
            ]
        }
        "StatefulSet" => {
            let (names, images) = containers_and_images(&spec["template"]);
            vec![json!(names), json!(images)]
        }
        "Service" => vec![json!(or_none(map_selector(&spec["selector"])))],
        "PriorityClass" => vec![json!(
            o["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority")
        )],
        "ResourceQuota" => {
            // `requests.cpu: 0/1, pods: 2/10` for the requests and the limits.
            let (mut requests, mut limits) = (Vec::new(), Vec::new());
            for (name, hard) in status["hard"]
                .as_object()
                .or(spec["hard"].as_object())
                .into_iter()
                .flatten()
            {
                let used = status["used"]
                    .get(name)
                    .map(text)
                    .unwrap_or_else(|| "0".into());
                let entry = format!("{name}: {used}/{}", text(hard));
                if name.starts_with("limits.") {
                    limits.push(entry);
                } else {
                    requests.push(entry);
                }
            }
            vec![json!(requests.join(", ")), json!(limits.join(", "))]
        }
        "Node" => {
            let info = &status["nodeInfo"];
            vec![
                json!(or_none(text(&info["kubeletVersion"]))),
                json!(node_address(status, "InternalIP")),
                json!(node_address(status, "ExternalIP")),
                json!(or_none(text(&info["osImage"]))),
                json!(or_none(text(&info["kernelVersion"]))),
                json!(or_none(text(&info["containerRuntimeVersion"]))),
            ]
        }
        _ => vec![],
    }
}
