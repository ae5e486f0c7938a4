//! Rules on workloads: Deployment, ReplicaSet, DaemonSet, StatefulSet (a non-empty selector that
//! matches the template's labels, non-negative counts, a consistent update strategy), Job and
//! CronJob (restart policy, counts, schedule).

use serde_json::Value;

use super::metadata::labels;
use super::pod::{RestartRule, check_pod_spec};
use super::{Findings, at_least, selector};
use crate::cron;
use crate::pointer::JsonPointer;

/// Checks the spec of a Deployment, ReplicaSet, DaemonSet or StatefulSet.
pub fn check(kind: &str, spec: &Value, path: &JsonPointer, out: &mut Findings) {
    if !spec.is_object() {
        return;
    }
    for field in [
        "replicas",
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ] {
        at_least(&spec[field], 0, path.join(field), out);
    }
    selector_and_template(spec, path, true, out);
    check_pod_spec(
        &spec["template"]["spec"],
        &path.join("template").join("spec"),
        RestartRule::Always,
        out,
    );
    if kind == "Deployment" {
        deployment_strategy(spec, path, out);
    }
}

fn selector_and_template(spec: &Value, path: &JsonPointer, required: bool, out: &mut Findings) {
    let sel = &spec["selector"];
    let template_labels = &spec["template"]["metadata"]["labels"];
    labels(
        template_labels,
        &path.join("template").join("metadata").join("labels"),
        out,
    );
    if !sel.is_object() {
        return;
    }
    selector::check(sel, &path.join("selector"), out);
    if selector::is_empty(sel) {
        if required {
            out.add(
                path.join("selector"),
                "selector must not be empty: it would select every pod",
            );
        }
    } else if !selector::matches(sel, template_labels) {
        out.add(
            path.join("selector"),
            "selector does not match the template's labels (spec.template.metadata.labels)",
        );
    }
}

fn deployment_strategy(spec: &Value, path: &JsonPointer, out: &mut Findings) {
    let strategy = &spec["strategy"];
    let at = path.join("strategy");
    if strategy["type"].as_str() == Some("Recreate") && strategy["rollingUpdate"].is_object() {
        out.add(
            at.join("rollingUpdate"),
            "may not be set when strategy type is Recreate",
        );
    }
    let rolling = &strategy["rollingUpdate"];
    let is_zero = |v: &Value| match v {
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s == "0%" || s == "0",
        _ => false,
    };
    if is_zero(&rolling["maxSurge"]) && is_zero(&rolling["maxUnavailable"]) {
        out.add(
            at.join("rollingUpdate").join("maxUnavailable"),
            "maxUnavailable may not be 0 when maxSurge is 0: the rollout could never progress",
        );
    }
    for field in ["maxSurge", "maxUnavailable"] {
        match &rolling[field] {
            Value::Number(n) if n.as_i64().is_some_and(|n| n < 0) => out.add(
                at.join("rollingUpdate").join(field),
                "must be greater than or equal to 0",
            ),
            Value::String(s) => {
                let percent = s.strip_suffix('%').and_then(|p| p.parse::<u32>().ok());
                match percent {
                    None => out.add(
                        at.join("rollingUpdate").join(field),
                        format!("{s:?} must be an integer or a percentage (e.g. 25%)"),
                    ),
                    Some(p) if field == "maxUnavailable" && p > 100 => out.add(
                        at.join("rollingUpdate").join(field),
                        "must not be greater than 100%",
                    ),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// Checks a Job's spec.
pub fn check_job(spec: &Value, path: &JsonPointer, out: &mut Findings) {
    if !spec.is_object() {
        return;
    }
    for field in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        at_least(&spec[field], 0, path.join(field), out);
    }
    at_least(
        &spec["activeDeadlineSeconds"],
        1,
        path.join("activeDeadlineSeconds"),
        out,
    );
    if spec["manualSelector"].as_bool() == Some(true) {
        selector_and_template(spec, path, true, out);
    } else {
        labels(
            &spec["template"]["metadata"]["labels"],
            &path.join("template").join("metadata").join("labels"),
            out,
        );
    }
    check_pod_spec(
        &spec["template"]["spec"],
        &path.join("template").join("spec"),
        RestartRule::OnFailureOrNever,
        out,
    );
}

/// Checks a CronJob's spec.
pub fn check_cron_job(spec: &Value, path: &JsonPointer, out: &mut Findings) {
    if !spec.is_object() {
        return;
    }
    if let Some(schedule) = spec["schedule"].as_str()
        && let Some(problem) = cron::check(schedule)
    {
        out.add(
            path.join("schedule"),
            format!("invalid schedule {schedule:?}: {problem}"),
        );
    }
    for field in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        at_least(&spec[field], 0, path.join(field), out);
    }
    check_job(
        &spec["jobTemplate"]["spec"],
        &path.join("jobTemplate").join("spec"),
        out,
    );
}
