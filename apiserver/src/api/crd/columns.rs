//! Tables of custom resources: NAME, the CRD's `additionalPrinterColumns` (priority 0, then the
//! `-o wide` ones), and AGE unless the CRD names a column for it.

use ferry_schema::structural::{CrdVersion, json_path};
use serde_json::{Value, json};

use super::super::table::human_duration;

fn cell(column_type: &str, value: Option<&Value>) -> Value {
    match (column_type, value) {
        (_, None | Some(Value::Null)) => json!("<none>"),
        ("date", Some(Value::String(t))) => match t.parse::<jiff::Timestamp>() {
            Ok(at) => json!(human_duration(
                jiff::Timestamp::now().as_second() - at.as_second()
            )),
            Err(_) => json!(t),
        },
        ("integer" | "number" | "boolean", Some(v)) => v.clone(),
        (_, Some(Value::String(s))) => json!(s),
        (_, Some(other)) => json!(other.to_string()),
    }
}

/// The Table of `objects` of a custom kind.
pub fn table(
    v: &CrdVersion,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let mut columns: Vec<(String, String, String, i64)> =
        vec![("Name".into(), "string".into(), ".metadata.name".into(), 0)];
    for c in &v.columns {
        columns.push((
            c.name.clone(),
            c.type_.clone(),
            c.json_path.clone(),
            c.priority,
        ));
    }
    if !v
        .columns
        .iter()
        .any(|c| c.json_path == ".metadata.creationTimestamp")
    {
        let at = columns
            .iter()
            .position(|c| c.3 > 0)
            .unwrap_or(columns.len());
        columns.insert(
            at,
            (
                "Age".into(),
                "date".into(),
                ".metadata.creationTimestamp".into(),
                0,
            ),
        );
    }
    let definitions: Vec<Value> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, ty, _, priority))| {
            json!({"name": name, "type": ty, "format": if i == 0 { "name" } else { "" },
                "description": "", "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = columns
                .iter()
                .map(|(_, ty, path, _)| cell(ty, json_path(o, path)))
                .collect();
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()}})
        })
        .collect();
    super::super::table::assemble(definitions, rows, resource_version, continue_token)
}
