//! Server-side printing: `meta.k8s.io/v1` Table objects, which `kubectl get` asks for
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with the columns kubectl users
//! know for each kind and Kubernetes' human-readable ages.

use serde_json::{Value, json};

/// Does the Accept header ask for a Table?
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

/// Age as Kubernetes prints it: `45s`, `5m30s`, `3h`, `2d5h`, `400d`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else if d < 365 * 8 {
        format!("{}y{}d", d / 365, d % 365)
    } else {
        format!("{}y", d / 365)
    }
}

fn age(object: &Value) -> String {
    let Some(created) = object["metadata"]["creationTimestamp"].as_str() else {
        return "<unknown>".into();
    };
    match created.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

type Column = (&'static str, &'static str);

/// The columns (name, type) and cells of an object of `kind`.
fn columns(kind: &str) -> Vec<Column> {
    let mut cols: Vec<Column> = vec![("Name", "string")];
    cols.extend(match kind {
        "Pod" => vec![
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "string"),
        ],
        "Deployment" => vec![
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
        ],
        "ReplicaSet" => vec![
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
        ],
        "StatefulSet" => vec![("Ready", "string")],
        "DaemonSet" => vec![
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
        ],
        "Service" => vec![
            ("Type", "string"),
            ("Cluster-IP", "string"),
            ("External-IP", "string"),
            ("Port(s)", "string"),
        ],
        "Namespace" => vec![("Status", "string")],
        "ConfigMap" => vec![("Data", "integer")],
        "Secret" => vec![("Type", "string"), ("Data", "integer")],
        "Node" => vec![("Status", "string"), ("Roles", "string")],
        "Job" => vec![("Status", "string"), ("Completions", "string")],
        "CronJob" => vec![
            ("Schedule", "string"),
            ("Suspend", "boolean"),
            ("Active", "integer"),
            ("Last Schedule", "string"),
        ],
        "Source" => vec![
            ("Applied", "string"),
            ("Sync", "string"),
            ("Health", "string"),
        ],
        "Revision" => vec![
            ("Source", "string"),
            ("Commit", "string"),
            ("Result", "string"),
            ("Health", "string"),
        ],
        _ => vec![],
    });
    cols.push(("Age", "string"));
    cols
}

fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let spec = &o["spec"];
    let status = &o["status"];
    let mut cells = vec![json!(text(&o["metadata"]["name"]))];
    let more: Vec<Value> = match kind {
        "Pod" => {
            let statuses = status["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = spec["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c["ready"].as_bool() == Some(true))
                .count();
            let restarts: i64 = statuses.iter().map(|c| int(&c["restartCount"])).sum();
            let phase = if o["metadata"]["deletionTimestamp"].is_string() {
                "Terminating".to_owned()
            } else {
                or_none(text(&status["phase"]))
            };
            vec![
                json!(format!("{ready}/{total}")),
                json!(phase),
                json!(restarts.to_string()),
            ]
        }
        "Deployment" => vec![
            json!(format!(
                "{}/{}",
                int(&status["readyReplicas"]),
                int(&spec["replicas"])
            )),
            json!(int(&status["updatedReplicas"])),
            json!(int(&status["availableReplicas"])),
        ],
        "ReplicaSet" => vec![
            json!(int(&spec["replicas"])),
            json!(int(&status["replicas"])),
            json!(int(&status["readyReplicas"])),
        ],
        "StatefulSet" => vec![json!(format!(
            "{}/{}",
            int(&status["readyReplicas"]),
            int(&spec["replicas"])
        ))],
        "DaemonSet" => vec![
            json!(int(&status["desiredNumberScheduled"])),
            json!(int(&status["currentNumberScheduled"])),
            json!(int(&status["numberReady"])),
            json!(int(&status["updatedNumberScheduled"])),
            json!(int(&status["numberAvailable"])),
        ],
        "Service" => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| match p["nodePort"].as_i64() {
                    Some(n) => format!("{}:{n}/{}", int(&p["port"]), text(&p["protocol"])),
                    None => format!("{}/{}", int(&p["port"]), text(&p["protocol"])),
                })
                .collect();
            let external = spec["externalIPs"]
                .as_array()
                .map(|ips| ips.iter().map(text).collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            vec![
                json!(text(&spec["type"])),
                json!(or_none(text(&spec["clusterIP"]))),
                json!(or_none(external)),
                json!(or_none(ports.join(","))),
            ]
        }
        "Namespace" => vec![json!(text(&status["phase"]))],
        "ConfigMap" => vec![json!(
            o["data"].as_object().map_or(0, |d| d.len())
                + o["binaryData"].as_object().map_or(0, |d| d.len())
        )],
        "Secret" => vec![
            json!(text(&o["type"])),
            json!(o["data"].as_object().map_or(0, |d| d.len())),
        ],
        "Node" => {
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .map(|c| c["status"] == "True");
            vec![
                json!(match ready {
                    Some(true) => "Ready",
                    Some(false) => "NotReady",
                    None => "Unknown",
                }),
                json!("<none>"),
            ]
        }
        "Job" => {
            let done = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| {
                    c["status"] == "True" && (c["type"] == "Complete" || c["type"] == "Failed")
                })
                .map(|c| text(&c["type"]));
            vec![
                json!(done.unwrap_or_else(|| "Running".into())),
                json!(format!(
                    "{}/{}",
                    int(&status["succeeded"]),
                    int(&spec["completions"])
                )),
            ]
        }
        "CronJob" => vec![
            json!(text(&spec["schedule"])),
            json!(spec["suspend"].as_bool().unwrap_or(false)),
            json!(status["active"].as_array().map_or(0, Vec::len)),
            json!(or_none(text(&status["lastScheduleTime"]))),
        ],
        "Source" => vec![
            json!(or_none(text(&status["appliedCommit"]))),
            json!(text(&status["sync"])),
            json!(text(&status["health"])),
        ],
        "Revision" => vec![
            json!(text(&spec["source"])),
            json!(text(&spec["commit"])),
            json!(text(&status["result"])),
            json!(text(&status["health"])),
        ],
        _ => vec![],
    };
    cells.extend(more);
    cells.push(json!(age(o)));
    cells
}

fn row(kind: &str, object: &Value) -> Value {
    json!({
        "cells": cells(kind, object),
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"].clone()},
    })
}

/// A Table of `objects` of `kind`.
pub fn table(
    kind: &str,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let definitions: Vec<Value> = columns(kind)
        .into_iter()
        .enumerate()
        .map(|(i, (name, ty))| json!({"name": name, "type": ty, "format": if i == 0 { "name" } else { "" }, "description": "", "priority": 0}))
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": objects.iter().map(|o| row(kind, o)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_like_kubectl() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(330), "5m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 600), "3h10m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 5 * 3600), "3d5h");
        assert_eq!(human_duration(400 * 86400), "400d");
    }

    #[test]
    fn deployment_row() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = table("Deployment", &[d], "7", None);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web", "2/3", 3, 2, "<unknown>"])
        );
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(
            names,
            vec!["Name", "Ready", "Up-to-date", "Available", "Age"]
        );
    }
}
