//! What a StatefulSet does next, decided without the apiserver: pods `<set>-<ordinal>` for
//! each ordinal in `[start, start + replicas)`, created in order and each only once the ones
//! before it are Running and Ready (OrderedReady) or all at once (Parallel); ordinals past the
//! end deleted from the highest down; RollingUpdate replacing pods of an old revision from the
//! highest ordinal down to `partition`, `maxUnavailable` at a time; OnDelete replacing only
//! deleted pods.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;

use super::super::history::HASH_LABEL;
use crate::controllers::cached_pod::CachedPod;

/// The set's shape and strategy.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The first ordinal (`spec.ordinals.start`).
    pub start: i32,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `podManagementPolicy: Parallel`.
    pub parallel: bool,
    /// RollingUpdate's partition (ordinals below `start + partition` stay at the current
    /// revision); `None` for OnDelete.
    pub partition: Option<i32>,
    /// RollingUpdate's maxUnavailable, resolved.
    pub max_unavailable: i32,
    /// The current revision's hash.
    pub current: String,
    /// The update revision's hash.
    pub update: String,
}

/// One step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create the pod of this ordinal from the revision with this hash.
    Create(i32, String),
    /// Delete this pod.
    Delete(Arc<CachedPod>),
}

/// Running and Ready, not being deleted.
pub fn healthy(pod: &CachedPod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && super::super::pods::is_ready(pod)
}

fn failed(pod: &CachedPod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed" | "Succeeded")
    )
}

fn revision(pod: &CachedPod) -> Option<&String> {
    pod.labels().get(HASH_LABEL)
}

/// The steps to take now, given the pods by ordinal.
pub fn plan(pods: &BTreeMap<i32, Arc<CachedPod>>, inputs: &Inputs) -> Vec<Step> {
    let mut steps = Vec::new();
    let end = inputs.start + inputs.replicas.max(0);
    let in_range = |o: i32| o >= inputs.start && o < end;
    // The revision a new pod of an ordinal gets.
    let revision_for = |o: i32| match inputs.partition {
        Some(p) if o < inputs.start + p => inputs.current.clone(),
        _ => inputs.update.clone(),
    };
    let mut waiting = false;
    for ordinal in inputs.start..end {
        match pods.get(&ordinal) {
            None => {
                steps.push(Step::Create(ordinal, revision_for(ordinal)));
                if !inputs.parallel {
                    waiting = true;
                    break;
                }
            }
            Some(pod) if failed(pod) && pod.metadata.deletion_timestamp.is_none() => {
                steps.push(Step::Delete(pod.clone()));
                if !inputs.parallel {
                    waiting = true;
                    break;
                }
            }
            Some(pod) if !healthy(pod) && !inputs.parallel => {
                // OrderedReady: nothing past a pod that is not up.
                waiting = true;
                break;
            }
            Some(_) => {}
        }
    }
    // Ordinals past the end, the highest first; in order, one at a time and only on a
    // healthy set.
    let condemned: Vec<&Arc<CachedPod>> = pods
        .iter()
        .rev()
        .filter(|(o, _)| !in_range(**o))
        .map(|(_, p)| p)
        .collect();
    let all_up = (inputs.start..end).all(|o| pods.get(&o).is_some_and(|p| healthy(p)));
    for pod in condemned {
        if pod.metadata.deletion_timestamp.is_some() {
            if !inputs.parallel {
                return steps;
            }
            continue;
        }
        if inputs.parallel {
            steps.push(Step::Delete(pod.clone()));
        } else if all_up && !waiting {
            steps.push(Step::Delete(pod.clone()));
            return steps;
        } else {
            return steps;
        }
    }
    // The rolling update, from the highest ordinal down to the partition.
    let Some(partition) = inputs.partition else {
        return steps;
    };
    if waiting {
        return steps;
    }
    let unavailable = (inputs.start..end)
        .filter(|o| pods.get(o).is_none_or(|p| !healthy(p)))
        .count() as i32;
    let mut budget = inputs.max_unavailable.max(1) - unavailable;
    for ordinal in (inputs.start + partition.max(0)..end).rev() {
        if budget <= 0 {
            break;
        }
        let Some(pod) = pods.get(&ordinal) else {
            continue;
        };
        if revision(pod) != Some(&inputs.update) && pod.metadata.deletion_timestamp.is_none() {
            steps.push(Step::Delete(pod.clone()));
            budget -= 1;
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::pods::tests::pod;

    fn at(name: &str, revision: &str, up: bool) -> Arc<CachedPod> {
        let p = pod(
            name,
            true,
            if up { "Running" } else { "Pending" },
            up.then_some(1),
            1,
        );
        let mut p = (*p).clone();
        p.metadata
            .labels
            .get_or_insert_default()
            .insert(HASH_LABEL.into(), revision.into());
        Arc::new(p)
    }

    fn inputs(replicas: i32, partition: Option<i32>) -> Inputs {
        Inputs {
            start: 0,
            replicas,
            parallel: false,
            partition,
            max_unavailable: 1,
            current: "old".into(),
            update: "new".into(),
        }
    }

    fn names(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Create(o, r) => format!("create {o}@{r}"),
                Step::Delete(p) => format!("delete {}", p.name_any()),
            })
            .collect()
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time_in_order() {
        let mut pods = BTreeMap::new();
        assert_eq!(names(&plan(&pods, &inputs(3, Some(0)))), ["create 0@new"]);
        pods.insert(0, at("s-0", "new", false));
        assert!(
            plan(&pods, &inputs(3, Some(0))).is_empty(),
            "0 is not ready yet"
        );
        pods.insert(0, at("s-0", "new", true));
        assert_eq!(names(&plan(&pods, &inputs(3, Some(0)))), ["create 1@new"]);
        let mut parallel = inputs(3, Some(0));
        parallel.parallel = true;
        assert_eq!(
            names(&plan(&BTreeMap::new(), &parallel)),
            ["create 0@new", "create 1@new", "create 2@new"]
        );
    }

    #[test]
    fn scale_down_goes_from_the_highest_ordinal() {
        let pods: BTreeMap<i32, Arc<CachedPod>> = (0..4)
            .map(|o| (o, at(&format!("s-{o}"), "new", true)))
            .collect();
        assert_eq!(names(&plan(&pods, &inputs(2, Some(0)))), ["delete s-3"]);
        let mut parallel = inputs(2, Some(0));
        parallel.parallel = true;
        assert_eq!(names(&plan(&pods, &parallel)), ["delete s-3", "delete s-2"]);
    }

    #[test]
    fn a_partition_updates_only_ordinals_at_or_above_it() {
        let mut pods: BTreeMap<i32, Arc<CachedPod>> = (0..4)
            .map(|o| (o, at(&format!("s-{o}"), "old", true)))
            .collect();
        assert_eq!(names(&plan(&pods, &inputs(4, Some(2)))), ["delete s-3"]);
        // s-3 is back at the new revision: s-2 next, and never s-1 or s-0.
        pods.insert(3, at("s-3", "new", true));
        assert_eq!(names(&plan(&pods, &inputs(4, Some(2)))), ["delete s-2"]);
        pods.insert(2, at("s-2", "new", true));
        assert!(plan(&pods, &inputs(4, Some(2))).is_empty());
        // A deleted pod below the partition comes back at the current revision.
        pods.remove(&1);
        assert_eq!(names(&plan(&pods, &inputs(4, Some(2)))), ["create 1@old"]);
        // OnDelete: nothing is replaced by itself; a deleted pod comes back updated.
        pods.insert(1, at("s-1", "old", true));
        assert!(plan(&pods, &inputs(4, None)).is_empty());
        pods.remove(&0);
        assert_eq!(names(&plan(&pods, &inputs(4, None))), ["create 0@new"]);
    }
}
