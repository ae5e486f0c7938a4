//! Server-side printing: `meta.k8s.io/v1` Table objects, which `kubectl get` asks for
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with the columns kubectl users
//! know for each kind and Kubernetes' human-readable ages.

use serde_json::{Value, json};

mod events;
mod more;
mod wide;

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

fn or_na(s: String) -> String {
    if s.is_empty() { "N/A".into() } else { s }
}

fn or_unset(s: String) -> String {
    if s.is_empty() { "<unset>".into() } else { s }
}

/// Up to three items, then `+ N more...`, as kubectl prints lists in a cell.
fn join_limited(items: &[String]) -> String {
    let mut out = items.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if items.len() > 3 {
        out.push_str(&format!(" + {} more...", items.len() - 3));
    }
    out
}

/// `RWO,ROX`: access modes as kubectl abbreviates them.
fn access_modes(modes: &Value) -> String {
    modes
        .as_array()
        .map(|m| {
            m.iter()
                .map(|mode| match mode.as_str().unwrap_or_default() {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// A label selector as text: `app=web,tier in (a,b)`.
fn selector_text(selector: &Value) -> String {
    ferry_schema::selector::LabelSelector::from_object(selector)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// An HPA's TARGETS: `cpu: 45%/80%` per resource metric (`<unknown>` before a measurement).
fn hpa_targets(spec: &Value, status: &Value) -> String {
    let current = status["currentMetrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let targets: Vec<String> = spec["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let name = text(&m["resource"]["name"]);
            let target = &m["resource"]["target"];
            let (now, want) = match text(&target["type"]).as_str() {
                "Utilization" => {
                    let now = current
                        .iter()
                        .find(|c| c["resource"]["name"] == m["resource"]["name"])
                        .and_then(|c| c["resource"]["current"]["averageUtilization"].as_i64())
                        .map_or("<unknown>".to_owned(), |v| format!("{v}%"));
                    (now, format!("{}%", int(&target["averageUtilization"])))
                }
                _ => {
                    let want = text(&target["averageValue"]) + &text(&target["value"]);
                    ("<unknown>".to_owned(), want)
                }
            };
            if name.is_empty() {
                format!("{now}/{want}")
            } else {
                format!("{name}: {now}/{want}")
            }
        })
        .collect();
    if targets.is_empty() {
        "<none>".into()
    } else {
        join_limited(&targets)
    }
}

type Column = (&'static str, &'static str);

/// A Job's DURATION: start to completion, or to now while it runs.
fn job_duration(status: &Value) -> String {
    let time = |v: &Value| v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let Some(start) = time(&status["startTime"]) else {
        return String::new();
    };
    let end = time(&status["completionTime"]).unwrap_or_else(jiff::Timestamp::now);
    human_duration(end.as_second() - start.as_second())
}

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
            ("Node Selector", "string"),
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
        "Job" => vec![
            ("Status", "string"),
            ("Completions", "string"),
            ("Duration", "string"),
        ],
        "CronJob" => vec![
            ("Schedule", "string"),
            ("Timezone", "string"),
            ("Suspend", "boolean"),
            ("Active", "integer"),
            ("Last Schedule", "string"),
        ],
        "HorizontalPodAutoscaler" => vec![
            ("Reference", "string"),
            ("Targets", "string"),
            ("MinPods", "string"),
            ("MaxPods", "integer"),
            ("Replicas", "integer"),
        ],
        "PodDisruptionBudget" => vec![
            ("Min Available", "string"),
            ("Max Unavailable", "string"),
            ("Allowed Disruptions", "integer"),
        ],
        "Ingress" => vec![
            ("Class", "string"),
            ("Hosts", "string"),
            ("Address", "string"),
            ("Ports", "string"),
        ],
        "ServiceAccount" => vec![("Secrets", "string")],
        "Lease" => vec![("Holder", "string")],
        "Endpoints" => vec![("Endpoints", "string")],
        "EndpointSlice" => vec![
            ("AddressType", "string"),
            ("Ports", "string"),
            ("Endpoints", "string"),
        ],
        "PersistentVolumeClaim" => vec![
            ("Status", "string"),
            ("Volume", "string"),
            ("Capacity", "string"),
            ("Access Modes", "string"),
            ("StorageClass", "string"),
        ],
        "NetworkPolicy" => vec![("Pod-Selector", "string")],
        "ControllerRevision" => vec![("Controller", "string"), ("Revision", "integer")],
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
        other => more::columns(other),
    });
    cols.push(if created_at(kind) {
        ("Created At", "date")
    } else {
        ("Age", "string")
    });
    cols
}

/// Kinds kubectl prints with CREATED AT (a timestamp) where others have AGE.
fn created_at(kind: &str) -> bool {
    matches!(
        kind,
        "Role" | "ClusterRole" | "LimitRange" | "CustomResourceDefinition"
    )
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
            json!(or_none(
                ferry_schema::selector::LabelSelector::from_map(
                    &spec["template"]["spec"]["nodeSelector"]
                )
                .to_string()
            )),
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
            let mut external: Vec<String> = status["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| text(&i["ip"]) + &text(&i["hostname"]))
                .collect();
            external.extend(
                spec["externalIPs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text),
            );
            let external = if external.is_empty() && spec["type"] == "LoadBalancer" {
                "<pending>".to_owned()
            } else {
                external.join(",")
            };
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
            let mut state = match ready {
                Some(true) => "Ready",
                Some(false) => "NotReady",
                None => "Unknown",
            }
            .to_owned();
            if o["spec"]["unschedulable"] == true {
                state.push_str(",SchedulingDisabled");
            }
            // Roles: the `node-role.kubernetes.io/ROLE` labels (and `kubernetes.io/role`).
            let mut roles: Vec<String> = o["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
                    Some(role) if !role.is_empty() => Some(role.to_owned()),
                    _ if k == "kubernetes.io/role" => v.as_str().map(str::to_owned),
                    _ => None,
                })
                .collect();
            roles.sort();
            vec![
                json!(state),
                json!(if roles.is_empty() {
                    "<none>".to_owned()
                } else {
                    roles.join(",")
                }),
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
            let completions = match spec["completions"].as_i64() {
                Some(n) => format!("{}/{n}", int(&status["succeeded"])),
                None => format!(
                    "{}/1 of {}",
                    int(&status["succeeded"]),
                    int(&spec["parallelism"])
                ),
            };
            vec![
                json!(done.unwrap_or_else(|| "Running".into())),
                json!(completions),
                json!(job_duration(status)),
            ]
        }
        "CronJob" => vec![
            json!(text(&spec["schedule"])),
            json!(or_none(text(&spec["timeZone"]))),
            json!(spec["suspend"].as_bool().unwrap_or(false)),
            json!(status["active"].as_array().map_or(0, Vec::len)),
            json!(or_none(text(&status["lastScheduleTime"]))),
        ],
        "HorizontalPodAutoscaler" => vec![
            json!(format!(
                "{}/{}",
                text(&spec["scaleTargetRef"]["kind"]),
                text(&spec["scaleTargetRef"]["name"])
            )),
            json!(hpa_targets(spec, status)),
            json!(text(&json!(spec["minReplicas"].as_i64().unwrap_or(1)))),
            json!(int(&spec["maxReplicas"])),
            json!(int(&status["currentReplicas"])),
        ],
        "PodDisruptionBudget" => vec![
            json!(or_na(text(&spec["minAvailable"]))),
            json!(or_na(text(&spec["maxUnavailable"]))),
            json!(int(&status["disruptionsAllowed"])),
        ],
        "Ingress" => {
            let rules = spec["rules"].as_array().cloned().unwrap_or_default();
            let hosts: Vec<String> = rules.iter().map(|r| text(&r["host"])).collect();
            let hosts = if hosts.iter().all(String::is_empty) {
                "*".to_owned()
            } else {
                join_limited(
                    &hosts
                        .into_iter()
                        .filter(|h| !h.is_empty())
                        .collect::<Vec<_>>(),
                )
            };
            let addresses: Vec<String> = status["loadBalancer"]["ingress"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|i| text(&i["ip"]) + &text(&i["hostname"]))
                        .collect()
                })
                .unwrap_or_default();
            let ports = if spec["tls"].as_array().is_some_and(|t| !t.is_empty()) {
                "80, 443"
            } else {
                "80"
            };
            vec![
                json!(or_none(text(&spec["ingressClassName"]))),
                json!(hosts),
                json!(join_limited(&addresses)),
                json!(ports),
            ]
        }
        "ServiceAccount" => vec![json!(
            o["secrets"].as_array().map_or(0, Vec::len).to_string()
        )],
        "Lease" => vec![json!(or_none(text(&spec["holderIdentity"])))],
        "Endpoints" => {
            let mut endpoints = Vec::new();
            for subset in o["subsets"].as_array().into_iter().flatten() {
                for address in subset["addresses"].as_array().into_iter().flatten() {
                    for port in subset["ports"].as_array().into_iter().flatten() {
                        endpoints.push(format!("{}:{}", text(&address["ip"]), int(&port["port"])));
                    }
                }
            }
            vec![json!(or_none(join_limited(&endpoints)))]
        }
        "EndpointSlice" => {
            let ports: Vec<String> = o["ports"]
                .as_array()
                .map(|p| p.iter().map(|p| int(&p["port"]).to_string()).collect())
                .unwrap_or_default();
            let addresses: Vec<String> = o["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                .map(|a| text(&a))
                .collect();
            vec![
                json!(text(&o["addressType"])),
                json!(or_unset(ports.join(","))),
                json!(or_unset(join_limited(&addresses))),
            ]
        }
        "PersistentVolumeClaim" => vec![
            json!(text(&status["phase"])),
            json!(text(&spec["volumeName"])),
            json!(text(&status["capacity"]["storage"])),
            json!(access_modes(&status["accessModes"])),
            json!(or_unset(text(&spec["storageClassName"]))),
        ],
        "NetworkPolicy" => vec![json!(or_none(selector_text(&spec["podSelector"])))],
        "ControllerRevision" => {
            let owner = o["metadata"]["ownerReferences"]
                .as_array()
                .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
                .map(|r| format!("{}/{}", text(&r["kind"]).to_lowercase(), text(&r["name"])))
                .unwrap_or_else(|| "<none>".into());
            vec![json!(owner), json!(int(&o["revision"]))]
        }
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
        other => more::cells(other, o),
    };
    cells.extend(more);
    cells.push(if created_at(kind) {
        json!(text(&o["metadata"]["creationTimestamp"]))
    } else {
        json!(age(o))
    });
    cells.extend(wide::cells(kind, o));
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
    if kind == "Event" {
        return events::table(objects, resource_version, continue_token);
    }
    let wide = wide::columns(kind)
        .into_iter()
        .map(|(name, ty, priority)| ((name, ty), priority));
    let definitions: Vec<Value> = columns(kind)
        .into_iter()
        .map(|c| (c, 0))
        .chain(wide)
        .enumerate()
        .map(|(i, ((name, ty), priority))| json!({"name": name, "type": ty, "format": if i == 0 { "name" } else { "" }, "description": "", "priority": priority}))
        .collect();
    let rows = objects.iter().map(|o| row(kind, o)).collect();
    assemble(definitions, rows, resource_version, continue_token)
}

/// A Table from its column definitions and rows, with the list's metadata.
pub fn assemble(
    definitions: Vec<Value>,
    rows: Vec<Value>,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
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

    fn cells_of(kind: &str, object: Value) -> Value {
        table(kind, &[object], "1", None)["rows"][0]["cells"].clone()
    }

    #[test]
    fn autoscaler_budget_ingress_and_policy_rows() {
        let hpa = json!({"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]},
            "status": {"currentReplicas": 2, "desiredReplicas": 2}});
        assert_eq!(
            cells_of("HorizontalPodAutoscaler", hpa),
            json!([
                "web",
                "Deployment/web",
                "cpu: <unknown>/80%",
                "2",
                5,
                2,
                "<unknown>"
            ])
        );
        let pdb = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 1}, "status": {"disruptionsAllowed": 0}});
        assert_eq!(
            cells_of("PodDisruptionBudget", pdb),
            json!(["web", "1", "N/A", 0, "<unknown>"])
        );
        let ingress = json!({"metadata": {"name": "web"}, "spec": {"rules": [{"host": "shop.example"}, {"host": "a.example"}],
            "tls": [{"hosts": ["shop.example"]}]}});
        assert_eq!(
            cells_of("Ingress", ingress),
            json!([
                "web",
                "<none>",
                "shop.example,a.example",
                "",
                "80, 443",
                "<unknown>"
            ])
        );
        let policy = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}}});
        assert_eq!(
            cells_of("NetworkPolicy", policy),
            json!(["deny", "app=web,tier in (a,b)", "<unknown>"])
        );
        let slice = json!({"metadata": {"name": "web-1"}, "addressType": "IPv4", "ports": [{"port": 80}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
        assert_eq!(
            cells_of("EndpointSlice", slice),
            json!([
                "web-1",
                "IPv4",
                "80",
                "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
                "<unknown>"
            ])
        );
    }

    #[test]
    fn deployment_row() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = table("Deployment", &[d], "7", None);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "2/3",
                3,
                2,
                "<unknown>",
                "web,log",
                "nginx:1,busybox",
                "app=web"
            ])
        );
        let wide: Vec<i64> = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["priority"].as_i64())
            .collect();
        assert_eq!(wide, [0, 0, 0, 0, 0, 1, 1, 1]);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(
            names,
            vec![
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
    }
}
