//! What deleting one object writes, as the kube-apiserver decides it: an object that
//! finalizers hold, or a pod that must stop on its node first, is only marked (its
//! `deletionTimestamp` and `deletionGracePeriodSeconds` set); anything else is removed.
//!
//! Pods are deleted gracefully: a pod bound to a node and not finished gets the grace period
//! the request asks for (`gracePeriodSeconds`), else its `terminationGracePeriodSeconds`; its
//! node agent stops it within that time and then deletes it with a grace period of 0, which
//! removes it. An unbound or finished pod goes at once. A second delete may shorten the grace
//! period, never lengthen it. Used by DELETE, deletecollection and the eviction subresource.

use ferry_schema::kinds::KindInfo;
use serde_json::{Value, json};

use super::admission::has_finalizers;

/// What the request asks of the deletion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The finalizer the propagation policy adds (`foregroundDeletion` or `orphan`).
    pub finalizer: Option<&'static str>,
    /// `gracePeriodSeconds`, when given.
    pub grace: Option<i64>,
}

/// What the deletion writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The object is already marked as this request would mark it: nothing to write.
    Keep,
    /// The object stays, marked for deletion (this is the new object).
    Mark(Value),
    /// The object goes now.
    Remove,
}

/// The grace period a pod's deletion gets (`None` for other kinds: they have none).
fn pod_grace(kind: &KindInfo, object: &Value, requested: Option<i64>) -> Option<i64> {
    if !(kind.group.is_empty() && kind.kind == "Pod") {
        return None;
    }
    let bound = object["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        object["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !bound || finished {
        return Some(0);
    }
    let grace = requested
        .or_else(|| object["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(0);
    // A negative grace period means "as soon as possible", as Kubernetes reads it.
    Some(if grace < 0 { 1 } else { grace })
}

/// The timestamp `seconds` after `now`, as Kubernetes writes it.
fn stamp(now: jiff::Timestamp, seconds: i64) -> String {
    let at = now
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or(now);
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// What deleting `object` (of `kind`) as `request` asks writes, at `now`.
pub fn plan(kind: &KindInfo, object: &Value, request: &Request, now: jiff::Timestamp) -> Plan {
    let grace = pod_grace(kind, object, request.grace).unwrap_or(0);
    let mut marked = object.clone();
    if let Some(finalizer) = request.finalizer {
        let list = super::admission::meta(&mut marked)
            .entry("finalizers")
            .or_insert_with(|| json!([]));
        if let Some(list) = list.as_array_mut()
            && !list.iter().any(|x| x == finalizer)
        {
            list.push(json!(finalizer));
        }
    }
    let held = has_finalizers(&marked);
    let meta = &marked["metadata"];
    if meta["deletionTimestamp"].is_string() {
        // Already being deleted: a shorter grace period moves the deadline closer; a grace of
        // 0 removes the object unless finalizers hold it.
        let current = meta["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
        if grace == 0 && !held {
            return Plan::Remove;
        }
        if grace < current {
            marked["metadata"]["deletionTimestamp"] = json!(stamp(now, grace));
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        }
        return if marked == *object {
            Plan::Keep
        } else {
            Plan::Mark(marked)
        };
    }
    if grace == 0 && !held {
        return Plan::Remove;
    }
    marked["metadata"]["deletionTimestamp"] = json!(stamp(now, grace));
    marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    Plan::Mark(marked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_schema::kinds::KINDS;

    fn kind(name: &str) -> &'static KindInfo {
        KINDS
            .iter()
            .find(|k| k.group.is_empty() && k.kind == name)
            .expect("kind")
    }

    fn at(second: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(second).unwrap_or_default()
    }

    fn pod(node: Option<&str>, phase: &str) -> Value {
        json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 30},
            "status": {"phase": phase}
        })
    }

    fn marks(plan: &Plan) -> (String, i64) {
        match plan {
            Plan::Mark(o) => (
                o["metadata"]["deletionTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                o["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(-1),
            ),
            other => panic!("not a mark: {other:?}"),
        }
    }

    #[test]
    fn bound_running_pods_are_marked_with_their_grace_period() {
        let running = pod(Some("n1"), "Running");
        let plan = plan(kind("Pod"), &running, &Request::default(), at(0));
        assert_eq!(marks(&plan), ("1970-01-01T00:00:30Z".into(), 30));
        let asked = Request {
            grace: Some(5),
            ..Request::default()
        };
        assert_eq!(
            marks(&super::plan(kind("Pod"), &running, &asked, at(0))),
            ("1970-01-01T00:00:05Z".into(), 5)
        );
        let negative = Request {
            grace: Some(-3),
            ..Request::default()
        };
        assert_eq!(
            marks(&super::plan(kind("Pod"), &running, &negative, at(0))).1,
            1
        );
    }

    #[test]
    fn unbound_finished_and_other_kinds_go_at_once() {
        let none = Request::default();
        assert_eq!(
            plan(kind("Pod"), &pod(None, "Pending"), &none, at(0)),
            Plan::Remove
        );
        assert_eq!(
            plan(kind("Pod"), &pod(Some("n1"), "Succeeded"), &none, at(0)),
            Plan::Remove
        );
        let cm = json!({"metadata": {"name": "c"}});
        assert_eq!(plan(kind("ConfigMap"), &cm, &none, at(0)), Plan::Remove);
        let foreground = Request {
            finalizer: Some("foregroundDeletion"),
            grace: None,
        };
        let Plan::Mark(held) = plan(kind("ConfigMap"), &cm, &foreground, at(0)) else {
            panic!("a finalizer holds it");
        };
        assert_eq!(
            held["metadata"]["finalizers"],
            json!(["foregroundDeletion"])
        );
    }

    #[test]
    fn a_second_delete_only_shortens_and_zero_removes() {
        let Plan::Mark(marked) = plan(
            kind("Pod"),
            &pod(Some("n1"), "Running"),
            &Request::default(),
            at(0),
        ) else {
            panic!("marked");
        };
        let again = |grace: Option<i64>| {
            plan(
                kind("Pod"),
                &marked,
                &Request {
                    grace,
                    ..Request::default()
                },
                at(10),
            )
        };
        assert_eq!(again(None), Plan::Keep);
        assert_eq!(again(Some(60)), Plan::Keep);
        assert_eq!(marks(&again(Some(2))), ("1970-01-01T00:00:12Z".into(), 2));
        assert_eq!(again(Some(0)), Plan::Remove);
        // Finalizers keep a pod whose node has finished with it.
        let mut held = marked.clone();
        held["metadata"]["finalizers"] = json!(["example.com/keep"]);
        let done = plan(
            kind("Pod"),
            &held,
            &Request {
                grace: Some(0),
                ..Request::default()
            },
            at(10),
        );
        assert_eq!(marks(&done).1, 0);
    }
}
