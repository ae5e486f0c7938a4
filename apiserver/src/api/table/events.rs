//! Events as `kubectl get events` prints them: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, and with
//! `-o wide` SUBOBJECT, SOURCE, FIRST SEEN, COUNT, NAME.

use serde_json::{Value, json};

use super::{human_duration, int, text};

/// The age of the first of these timestamps that is set.
fn since(times: &[&Value]) -> String {
    for time in times {
        if let Some(t) = time
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        {
            return human_duration(jiff::Timestamp::now().as_second() - t.as_second());
        }
    }
    "<unknown>".into()
}

fn row(e: &Value) -> Value {
    let involved = &e["involvedObject"];
    let object = format!(
        "{}/{}",
        text(&involved["kind"]).to_lowercase(),
        text(&involved["name"])
    );
    let source = {
        let component = text(&e["source"]["component"]);
        let host = text(&e["source"]["host"]);
        match (component.is_empty(), host.is_empty()) {
            (true, _) => text(&e["reportingComponent"]),
            (false, true) => component,
            (false, false) => format!("{component}, {host}"),
        }
    };
    let count = match int(&e["count"]) {
        0 => int(&e["series"]["count"]).max(1),
        n => n,
    };
    let cells = vec![
        json!(since(&[
            &e["series"]["lastObservedTime"],
            &e["lastTimestamp"],
            &e["eventTime"],
            &e["metadata"]["creationTimestamp"]
        ])),
        json!(text(&e["type"])),
        json!(text(&e["reason"])),
        json!(object),
        json!(text(&involved["fieldPath"])),
        json!(source),
        json!(text(&e["message"])),
        json!(since(&[
            &e["firstTimestamp"],
            &e["eventTime"],
            &e["metadata"]["creationTimestamp"]
        ])),
        json!(count),
        json!(text(&e["metadata"]["name"])),
    ];
    json!({
        "cells": cells,
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": e["metadata"].clone()},
    })
}

/// The Table of events.
pub fn table(events: &[Value], resource_version: &str, continue_token: Option<&str>) -> Value {
    let columns = [
        ("Last Seen", "string", 0),
        ("Type", "string", 0),
        ("Reason", "string", 0),
        ("Object", "string", 0),
        ("Subobject", "string", 1),
        ("Source", "string", 1),
        ("Message", "string", 0),
        ("First Seen", "string", 1),
        ("Count", "integer", 1),
        ("Name", "string", 1),
    ];
    let definitions: Vec<Value> = columns
        .iter()
        .map(|(name, ty, priority)| json!({"name": name, "type": ty, "format": if *name == "Name" { "name" } else { "" }, "description": "", "priority": priority}))
        .collect();
    super::assemble(
        definitions,
        events.iter().map(row).collect(),
        resource_version,
        continue_token,
    )
}
