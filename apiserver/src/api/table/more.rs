//! Columns of the cluster-administration kinds (RBAC, PriorityClass, storage, quotas,
//! ReplicationController, APIService), as kubectl prints them: those before AGE here, those
//! after it in [`super::wide`].

use serde_json::{Value, json};

use super::{access_modes, int, or_none, or_unset, text};

/// Columns before AGE.
pub fn columns(kind: &str) -> Vec<super::Column> {
    match kind {
        "RoleBinding" | "ClusterRoleBinding" => vec![("Role", "string")],
        "PriorityClass" => vec![("Value", "integer"), ("Global-Default", "boolean")],
        "ReplicationController" => vec![
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
        ],
        "PersistentVolume" => vec![
            ("Capacity", "string"),
            ("Access Modes", "string"),
            ("Reclaim Policy", "string"),
            ("Status", "string"),
            ("Claim", "string"),
            ("StorageClass", "string"),
            ("VolumeAttributesClass", "string"),
            ("Reason", "string"),
        ],
        "PodTemplate" => vec![
            ("Containers", "string"),
            ("Images", "string"),
            ("Pod Labels", "string"),
        ],
        "StorageClass" => vec![
            ("Provisioner", "string"),
            ("ReclaimPolicy", "string"),
            ("VolumeBindingMode", "string"),
            ("AllowVolumeExpansion", "string"),
        ],
        "APIService" => vec![("Service", "string"), ("Available", "string")],
        _ => vec![],
    }
}

/// Cells of [`columns`].
pub fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let spec = &o["spec"];
    let status = &o["status"];
    match kind {
        "RoleBinding" | "ClusterRoleBinding" => vec![json!(format!(
            "{}/{}",
            text(&o["roleRef"]["kind"]),
            text(&o["roleRef"]["name"])
        ))],
        "PriorityClass" => vec![
            json!(int(&o["value"])),
            json!(o["globalDefault"].as_bool().unwrap_or(false)),
        ],
        "ReplicationController" => vec![
            json!(spec["replicas"].as_i64().unwrap_or(1)),
            json!(int(&status["replicas"])),
            json!(int(&status["readyReplicas"])),
        ],
        "PersistentVolume" => {
            let claim = &spec["claimRef"];
            let claim = if claim.is_object() {
                format!("{}/{}", text(&claim["namespace"]), text(&claim["name"]))
            } else {
                String::new()
            };
            vec![
                json!(text(&spec["capacity"]["storage"])),
                json!(access_modes(&spec["accessModes"])),
                json!(text(&spec["persistentVolumeReclaimPolicy"])),
                json!(text(&status["phase"])),
                json!(claim),
                json!(text(&spec["storageClassName"])),
                json!(or_unset(text(&spec["volumeAttributesClassName"]))),
                json!(text(&status["reason"])),
            ]
        }
        "PodTemplate" => {
            let containers = o["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let names: Vec<String> = containers.iter().map(|c| text(&c["name"])).collect();
            let images: Vec<String> = containers.iter().map(|c| text(&c["image"])).collect();
            let labels = ferry_schema::selector::LabelSelector::from_map(
                &o["template"]["metadata"]["labels"],
            )
            .to_string();
            vec![
                json!(names.join(",")),
                json!(images.join(",")),
                json!(or_none(labels)),
            ]
        }
        "StorageClass" => vec![
            json!(text(&o["provisioner"])),
            json!(o["reclaimPolicy"].as_str().unwrap_or("Delete")),
            json!(o["volumeBindingMode"].as_str().unwrap_or("Immediate")),
            json!(
                o["allowVolumeExpansion"]
                    .as_bool()
                    .unwrap_or(false)
                    .to_string()
            ),
        ],
        "APIService" => {
            let service = &spec["service"];
            let service = if service.is_object() {
                format!("{}/{}", text(&service["namespace"]), text(&service["name"]))
            } else {
                "Local".to_owned()
            };
            let available = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Available")
                .map(|c| {
                    if c["status"] == "True" {
                        "True".to_owned()
                    } else {
                        format!("False ({})", text(&c["reason"]))
                    }
                })
                .unwrap_or_else(|| "True".into());
            vec![json!(service), json!(available)]
        }
        _ => vec![],
    }
}
