//! The Job rules that need no apiserver: how a finished pod counts (`podFailurePolicy`), how
//! long a failed pod's replacement waits (10 s doubling to 10 min), how many pods should be
//! running, and the `completedIndexes` notation (`1,3-5`).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::controllers::cached_pod::CachedPod;
use k8s_openapi::api::batch::v1::{
    PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::ContainerStatus;
use kube::ResourceExt;

/// The label and annotation that carry an Indexed Job pod's index.
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";

/// The first wait before a failed pod is replaced.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(10);
/// The longest wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// How a pod that ended counts for its Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Succeeded: counts toward completions.
    Succeeded,
    /// Failed: counts toward `backoffLimit`.
    Failed,
    /// Failed, but a rule says to ignore it: not counted, replaced.
    Ignored,
    /// Failed, and a rule fails the whole Job with this message.
    FailJob(String),
}

/// How the ended (or deleted) `pod` counts under `policy`.
pub fn judge(pod: &CachedPod, policy: Option<&PodFailurePolicy>) -> Verdict {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    if phase == Some("Succeeded") {
        return Verdict::Succeeded;
    }
    // A pod deleted before it ended counts as failed; the rules read only pods that failed.
    let (Some(policy), Some("Failed")) = (policy, phase) else {
        return Verdict::Failed;
    };
    for (index, rule) in policy.rules.iter().enumerate() {
        let Some(why) = matches(pod, rule) else {
            continue;
        };
        return match rule.action.as_str() {
            "FailJob" => Verdict::FailJob(format!("{why} matching FailJob rule at index {index}")),
            "Ignore" => Verdict::Ignored,
            // Count, and FailIndex (per-index limits are not supported: it counts).
            _ => Verdict::Failed,
        };
    }
    Verdict::Failed
}

/// Why `rule` matches the failed `pod` (as the Job's condition message says it), if it does.
fn matches(pod: &CachedPod, rule: &PodFailurePolicyRule) -> Option<String> {
    let who = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
    let status = pod.status.as_ref()?;
    if let Some(codes) = &rule.on_exit_codes {
        let lists = [&status.container_statuses, &status.init_container_statuses];
        for statuses in lists.into_iter().flatten() {
            if let Some((name, code)) = exit_matching(statuses, codes) {
                return Some(format!(
                    "Container {name} for pod {who} failed with exit code {code}"
                ));
            }
        }
        return None;
    }
    for pattern in rule.on_pod_conditions.iter().flatten() {
        let found = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == pattern.type_ && c.status == pattern.status);
        if found {
            return Some(format!("Pod {who} has condition {}", pattern.type_));
        }
    }
    None
}

/// The first container (named as the requirement says, if it names one) that ended with a
/// non-zero code the operator accepts.
fn exit_matching(
    statuses: &[ContainerStatus],
    codes: &PodFailurePolicyOnExitCodesRequirement,
) -> Option<(String, i32)> {
    statuses.iter().find_map(|c| {
        if codes.container_name.as_ref().is_some_and(|n| *n != c.name) {
            return None;
        }
        let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
        let listed = codes.values.contains(&code);
        let accepted = match codes.operator.as_str() {
            "In" => listed,
            "NotIn" => !listed,
            _ => false,
        };
        (code != 0 && accepted).then(|| (c.name.clone(), code))
    })
}

/// The wait before the replacement of a Job's `failures`-th failed pod.
pub fn backoff(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let doublings = (failures - 1).min(16) as u32;
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// How many pods of a NonIndexed Job should be active: `parallelism`, but never more than
/// the completions still missing; with no `completions` (a work queue), none once one pod
/// has succeeded.
pub fn wanted_active(parallelism: i32, completions: Option<i32>, succeeded: i32) -> i32 {
    let parallelism = parallelism.max(0);
    match completions {
        Some(c) => parallelism.min((c - succeeded).max(0)),
        None if succeeded > 0 => 0,
        None => parallelism,
    }
}

/// `completedIndexes` as Kubernetes writes it: ascending, consecutive indexes as one range
/// (`0-2,4,6-7`).
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        out.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// Reads `completedIndexes`, keeping the indexes below `completions` (the rest, and anything
/// unreadable, are dropped as Kubernetes drops them).
pub fn parse_indexes(text: &str, completions: i32) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (low, high) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(low), Ok(high)) = (low, high) {
            set.extend((low.max(0)..=high.min(completions - 1)).filter(|i| *i >= low));
        }
    }
    set
}

/// The index of an Indexed Job's pod, from its label.
pub fn index_of(pod: &CachedPod) -> Option<i32> {
    pod.labels().get(INDEX_KEY)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::PodFailurePolicyOnPodConditionsPattern;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, Pod, PodCondition, PodStatus,
    };

    fn failed(code: i32, conditions: &[&str]) -> CachedPod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("job-abc".into());
        pod.metadata.namespace = Some("ns".into());
        pod.status = Some(PodStatus {
            phase: Some("Failed".into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "main".into(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: code,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            conditions: Some(
                conditions
                    .iter()
                    .map(|t| PodCondition {
                        type_: (*t).into(),
                        status: "True".into(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        CachedPod::of(&pod)
    }

    fn rule(action: &str, op: &str, codes: &[i32]) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: None,
                operator: op.into(),
                values: codes.to_vec(),
            }),
            on_pod_conditions: None,
        }
    }

    #[test]
    fn rules_apply_in_order_and_only_to_failed_pods() {
        let policy = PodFailurePolicy {
            rules: vec![
                rule("FailJob", "In", &[42]),
                rule("Ignore", "NotIn", &[1]),
                PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_exit_codes: None,
                    on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                        type_: "DisruptionTarget".into(),
                        status: "True".into(),
                    }]),
                },
            ],
        };
        assert_eq!(
            judge(&failed(42, &[]), Some(&policy)),
            Verdict::FailJob(
                "Container main for pod ns/job-abc failed with exit code 42 matching FailJob rule at index 0"
                    .into()
            )
        );
        assert_eq!(judge(&failed(3, &[]), Some(&policy)), Verdict::Ignored);
        assert_eq!(judge(&failed(1, &[]), Some(&policy)), Verdict::Failed);
        assert_eq!(
            judge(&failed(1, &["DisruptionTarget"]), Some(&policy)),
            Verdict::Ignored
        );
        assert_eq!(judge(&failed(42, &[]), None), Verdict::Failed);
        let mut ok = failed(0, &[]);
        if let Some(s) = ok.status.as_mut() {
            s.phase = Some("Succeeded".into());
        }
        assert_eq!(judge(&ok, Some(&policy)), Verdict::Succeeded);
        // Exit code 0 never matches NotIn.
        let zero = failed(0, &[]);
        assert_eq!(
            judge(
                &zero,
                Some(&PodFailurePolicy {
                    rules: vec![rule("FailJob", "NotIn", &[1])]
                })
            ),
            Verdict::Failed
        );
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_to_ten_minutes() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(4), Duration::from_secs(80));
        assert_eq!(backoff(7), Duration::from_secs(600));
        assert_eq!(backoff(1000), Duration::from_secs(600));
    }

    #[test]
    fn active_pods_wanted() {
        assert_eq!(wanted_active(3, Some(5), 0), 3);
        assert_eq!(wanted_active(3, Some(5), 4), 1);
        assert_eq!(wanted_active(3, Some(5), 5), 0);
        assert_eq!(wanted_active(3, None, 0), 3);
        assert_eq!(wanted_active(3, None, 1), 0);
    }

    #[test]
    fn indexes_round_trip() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7", 10), set);
        assert_eq!(
            parse_indexes("0-2,4,6-7", 5),
            [0, 1, 2, 4].into_iter().collect()
        );
        assert_eq!(parse_indexes("x,3", 5), [3].into_iter().collect());
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }
}
