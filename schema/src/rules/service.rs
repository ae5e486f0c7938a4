//! Rules on a Service: ports (present, in range, uniquely named), target ports, node ports only
//! where the type allows them, and `externalName` for ExternalName services.

use std::collections::HashSet;

use serde_json::Value;

use super::Findings;
use super::names::{dns1123_label, iana_service_name};
use super::pod::port_range;
use crate::pointer::JsonPointer;

/// Checks a Service's spec.
pub fn check(spec: &Value, path: &JsonPointer, out: &mut Findings) {
    if !spec.is_object() {
        return;
    }
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    let headless = spec["clusterIP"].as_str() == Some("None");
    let ports = spec["ports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if ty == "ExternalName" {
        if spec["externalName"].as_str().is_none_or(str::is_empty) {
            out.add(
                path.join("externalName"),
                "externalName is required for type ExternalName",
            );
        }
    } else if ports.is_empty() && !headless {
        out.add(path.join("ports"), "at least one port is required");
    }
    let node_ports_allowed = matches!(ty, "NodePort" | "LoadBalancer");
    let mut names = HashSet::new();
    let mut port_protocols = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = path.join("ports").join_index(i);
        port_range(&port["port"], at.join("port"), false, out);
        port_range(&port["nodePort"], at.join("nodePort"), true, out);
        if port["nodePort"].as_i64().is_some_and(|n| n != 0) && !node_ports_allowed {
            out.add(
                at.join("nodePort"),
                format!("may not be used when type is {ty}"),
            );
        }
        match &port["targetPort"] {
            Value::Number(_) => port_range(&port["targetPort"], at.join("targetPort"), true, out),
            Value::String(name) => {
                if let Some(problem) = iana_service_name(name) {
                    out.add(at.join("targetPort"), problem);
                }
            }
            _ => {}
        }
        match port["name"].as_str() {
            Some(name) => {
                if let Some(problem) = dns1123_label(name) {
                    out.add(at.join("name"), format!("invalid port name: {problem}"));
                } else if !names.insert(name) {
                    out.add(at.join("name"), format!("duplicate port name {name:?}"));
                }
            }
            None if ports.len() > 1 => out.add(
                at.join("name"),
                "every port needs a name when a Service has more than one port",
            ),
            None => {}
        }
        if let Some(number) = port["port"].as_i64() {
            let protocol = port["protocol"].as_str().unwrap_or("TCP");
            if !port_protocols.insert((number, protocol)) {
                out.add(
                    at.join("port"),
                    format!("duplicate port {number}/{protocol}"),
                );
            }
        }
    }
}
