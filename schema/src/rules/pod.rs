//! Rules on a pod spec, shared by Pods and every workload's template: containers (present,
//! uniquely and validly named), ports (ranges, names), volumes and the mounts that refer to
//! them, environment variable names, requests within limits, and the restart policy a
//! controller allows.

use std::collections::HashSet;

use serde_json::Value;

use super::names::{dns1123_label, iana_service_name};
use super::{Findings, at_least};
use crate::pointer::JsonPointer;
use crate::quantity::Quantity;

/// The restart policies the owner of a pod template allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartRule {
    /// A bare Pod: any policy.
    Any,
    /// Deployments, ReplicaSets, DaemonSets, StatefulSets: `Always` only.
    Always,
    /// Jobs and CronJobs: `OnFailure` or `Never`.
    OnFailureOrNever,
}

/// Checks a pod spec found at `path`.
pub fn check_pod_spec(spec: &Value, path: &JsonPointer, restart: RestartRule, out: &mut Findings) {
    if !spec.is_object() {
        return;
    }
    let policy = spec["restartPolicy"].as_str();
    match (restart, policy) {
        (RestartRule::Always, Some(p)) if p != "Always" => out.add(
            path.join("restartPolicy"),
            format!("unsupported value {p:?}: this controller's pods must use Always"),
        ),
        (RestartRule::OnFailureOrNever, Some("Always")) => out.add(
            path.join("restartPolicy"),
            "unsupported value \"Always\": a Job's pods must use OnFailure or Never",
        ),
        (RestartRule::OnFailureOrNever, None) => out.add(
            path.join("restartPolicy"),
            "a Job's pod template must set restartPolicy to OnFailure or Never (the default, Always, is not allowed)",
        ),
        _ => {}
    }
    at_least(
        &spec["terminationGracePeriodSeconds"],
        0,
        path.join("terminationGracePeriodSeconds"),
        out,
    );
    at_least(
        &spec["activeDeadlineSeconds"],
        1,
        path.join("activeDeadlineSeconds"),
        out,
    );

    let volumes = volume_names(spec, path, out);
    let containers = spec["containers"].as_array();
    if containers.is_none_or(|c| c.is_empty()) && spec.get("containers").is_some() {
        out.add(
            path.join("containers"),
            "at least one container is required",
        );
    }
    let mut names = HashSet::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, container) in spec[list].as_array().into_iter().flatten().enumerate() {
            let at = path.join(list).join_index(i);
            check_container(container, &at, &volumes, out);
            if let Some(name) = container["name"].as_str()
                && !names.insert(name)
            {
                out.add(
                    at.join("name"),
                    format!("duplicate container name {name:?}: names must be unique within a pod"),
                );
            }
        }
    }
}

fn volume_names<'a>(spec: &'a Value, path: &JsonPointer, out: &mut Findings) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, volume) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let Some(name) = volume["name"].as_str() else {
            continue;
        };
        let at = path.join("volumes").join_index(i).join("name");
        if let Some(problem) = dns1123_label(name) {
            out.add(at.clone(), format!("invalid volume name: {problem}"));
        }
        if !names.insert(name) {
            out.add(at, format!("duplicate volume name {name:?}"));
        }
    }
    names
}

fn check_container(
    container: &Value,
    at: &JsonPointer,
    volumes: &HashSet<&str>,
    out: &mut Findings,
) {
    if let Some(name) = container["name"].as_str()
        && let Some(problem) = dns1123_label(name)
    {
        out.add(
            at.join("name"),
            format!("invalid container name: {problem}"),
        );
    }
    if container
        .get("image")
        .is_some_and(|i| i.as_str().is_some_and(|s| s.trim().is_empty()))
    {
        out.add(at.join("image"), "image must not be empty");
    }
    let mut port_names = HashSet::new();
    for (j, port) in container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = at.join("ports").join_index(j);
        port_range(&port["containerPort"], p.join("containerPort"), false, out);
        port_range(&port["hostPort"], p.join("hostPort"), true, out);
        if let Some(name) = port["name"].as_str() {
            if let Some(problem) = iana_service_name(name) {
                out.add(p.join("name"), problem);
            } else if !port_names.insert(name) {
                out.add(p.join("name"), format!("duplicate port name {name:?}"));
            }
        }
    }
    let mut mount_paths = HashSet::new();
    for (j, mount) in container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let m = at.join("volumeMounts").join_index(j);
        if let Some(name) = mount["name"].as_str()
            && !volumes.contains(name)
        {
            out.add(
                m.join("name"),
                format!("volume {name:?} is not defined in the pod's volumes"),
            );
        }
        if let Some(mount_path) = mount["mountPath"].as_str()
            && !mount_paths.insert(mount_path)
        {
            out.add(
                m.join("mountPath"),
                format!("mountPath {mount_path:?} is used twice in this container"),
            );
        }
    }
    for (j, env) in container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(name) = env["name"].as_str()
            && (name.is_empty()
                || name.contains('=')
                || !name.bytes().all(|b| (0x20..0x7f).contains(&b)))
        {
            out.add(
                at.join("env").join_index(j).join("name"),
                format!("invalid environment variable name {name:?}: printable ASCII without '='"),
            );
        }
    }
    let resources = &container["resources"];
    if let (Some(requests), Some(limits)) = (
        resources["requests"].as_object(),
        resources["limits"].as_object(),
    ) {
        for (resource, request) in requests {
            let (Ok(req), Some(Ok(lim))) = (
                Quantity::from_value(request),
                limits.get(resource).map(Quantity::from_value),
            ) else {
                continue;
            };
            if req > lim {
                out.add(
                    at.join("resources").join("requests").join(resource),
                    format!(
                        "request {} is greater than the limit {}",
                        show(request),
                        show(&limits[resource])
                    ),
                );
            }
        }
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks a port number is within 1-65535 (0 allowed when `zero_ok`, meaning unset).
pub fn port_range(value: &Value, path: JsonPointer, zero_ok: bool, out: &mut Findings) {
    let Some(n) = value.as_i64() else { return };
    if (zero_ok && n == 0) || (1..=65535).contains(&n) {
        return;
    }
    out.add(
        path,
        format!("port {n} is out of range: must be between 1 and 65535"),
    );
}
