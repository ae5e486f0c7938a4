//! The Job controller driven with the real kubectl against `ferry up --nodes 3` (hollow
//! nodes, whose pods end after `--sim-run-time` with the exit code of their
//! `sim.ferry.dev/exit-code` annotation): completions with parallelism and `kubectl wait
//! --for=condition=complete`, Indexed Jobs, `backoffLimit` (a Job whose pods exit 1 fails
//! after backoffLimit + 1 pods), a `FailJob` pod failure policy, suspend and resume,
//! `ttlSecondsAfterFinished`, and the tracking finalizers released so that deleting a Job
//! removes its pods.

use std::path::Path;
use std::time::Duration;

use ferry_testkit::appliance::Appliance;
use ferry_testkit::ferry::{Kubectl, wait_for};

fn ferry_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}

fn job(name: &str, spec: &str, exit_code: u8) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{spec}  template:\n    metadata:\n      annotations:\n        sim.ferry.dev/exit-code: \"{exit_code}\"\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: busybox:1\n"
    )
}

fn field(k: &Kubectl, name: &str, path: &str) -> String {
    k.jsonpath(&["job", name], &format!("{{{path}}}"))
}

fn pods_of(k: &Kubectl, job: &str) -> Vec<String> {
    k.ok(&[
        "get",
        "pods",
        "-l",
        &format!("job-name={job}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.finalizers}{\"\\n\"}{end}",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

#[test]
fn jobs_complete_fail_and_clean_up() {
    let Some(a) = Appliance::with_hollow_nodes(ferry_binary(), 3) else {
        return;
    };
    let k = &a.kubectl;
    // Started together: the backoff Job takes 10 s + 20 s of back-off between its pods.
    k.ok_stdin(
        &["apply", "-f", "-"],
        &job("doomed", "  backoffLimit: 2\n", 1),
    );
    k.ok_stdin(
        &["apply", "-f", "-"],
        &job("work", "  completions: 5\n  parallelism: 2\n", 0),
    );
    k.ok_stdin(
        &["apply", "-f", "-"],
        &job(
            "indexed",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n",
            0,
        ),
    );
    k.ok_stdin(
        &["apply", "-f", "-"],
        &job(
            "policy",
            "  backoffLimit: 6\n  podFailurePolicy:\n    rules:\n    - action: FailJob\n      onExitCodes: {operator: In, values: [42]}\n",
            42,
        ),
    );

    // Completions with parallelism: five successes, five pods, each freed of its finalizer
    // once counted.
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/work",
        "--timeout=60s",
    ]);
    assert_eq!(field(k, "work", ".status.succeeded"), "5");
    assert_eq!(field(k, "work", ".status.failed"), "");
    assert!(!field(k, "work", ".status.completionTime").is_empty());
    let pods = pods_of(k, "work");
    assert_eq!(pods.len(), 5, "{pods:?}");
    assert!(
        pods.iter().all(|p| !p.contains("job-tracking")),
        "finalizers left: {pods:?}"
    );

    // Indexed: one pod per index, each told its index.
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/indexed",
        "--timeout=60s",
    ]);
    assert_eq!(field(k, "indexed", ".status.completedIndexes"), "0-2");
    let indexes = k.jsonpath(&["pods", "-l", "job-name=indexed"], "{range .items[*]}{.metadata.labels.batch\\.kubernetes\\.io/job-completion-index}={.spec.containers[0].env[0].name}/{.spec.hostname}{\"\\n\"}{end}");
    let mut indexes: Vec<&str> = indexes.lines().collect();
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        [
            "0=JOB_COMPLETION_INDEX/indexed-0",
            "1=JOB_COMPLETION_INDEX/indexed-1",
            "2=JOB_COMPLETION_INDEX/indexed-2"
        ]
    );

    // A FailJob rule ends the Job at the first pod exiting 42, backoffLimit notwithstanding.
    k.ok(&[
        "wait",
        "--for=condition=failed",
        "job/policy",
        "--timeout=60s",
    ]);
    assert_eq!(
        field(
            k,
            "policy",
            ".status.conditions[?(@.type==\"Failed\")].reason"
        ),
        "PodFailurePolicy"
    );
    let message = field(
        k,
        "policy",
        ".status.conditions[?(@.type==\"Failed\")].message",
    );
    assert!(
        message.contains("failed with exit code 42 matching FailJob rule at index 0"),
        "{message}"
    );
    assert_eq!(pods_of(k, "policy").len(), 1);

    // backoffLimit 2: the third failed pod fails the Job, and no fourth is made.
    k.ok(&[
        "wait",
        "--for=condition=failed",
        "job/doomed",
        "--timeout=90s",
    ]);
    assert_eq!(
        field(
            k,
            "doomed",
            ".status.conditions[?(@.type==\"Failed\")].reason"
        ),
        "BackoffLimitExceeded"
    );
    assert_eq!(field(k, "doomed", ".status.failed"), "3");
    assert_eq!(pods_of(k, "doomed").len(), 3);
    let events = k.jsonpath(
        &["events", "--field-selector", "involvedObject.name=doomed"],
        "{range .items[*]}{.reason}{\"\\n\"}{end}",
    );
    assert!(events.contains("BackoffLimitExceeded"), "{events}");

    // Deleting a Job takes its pods with it (their finalizers are gone).
    k.ok(&["delete", "job", "work", "--timeout=60s"]);
    wait_for(Duration::from_secs(30), "work's pods collected", || {
        pods_of(k, "work").is_empty().then_some(())
    });
}

#[test]
fn suspend_resume_and_ttl() {
    let Some(a) = Appliance::with_hollow_nodes(ferry_binary(), 3) else {
        return;
    };
    let k = &a.kubectl;
    // Created suspended: no pod, the Suspended condition, no start time.
    k.ok_stdin(
        &["apply", "-f", "-"],
        &job(
            "later",
            "  suspend: true\n  completions: 2\n  ttlSecondsAfterFinished: 2\n",
            0,
        ),
    );
    k.ok(&[
        "wait",
        "--for=condition=suspended",
        "job/later",
        "--timeout=30s",
    ]);
    assert!(pods_of(k, "later").is_empty());
    assert_eq!(field(k, "later", ".status.startTime"), "");

    // Resumed: it runs, completes, and its TTL deletes it with its pods.
    k.ok(&[
        "patch",
        "job",
        "later",
        "--type=merge",
        "-p",
        "{\"spec\":{\"suspend\":false}}",
    ]);
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/later",
        "--timeout=60s",
    ]);
    assert_eq!(
        field(
            k,
            "later",
            ".status.conditions[?(@.type==\"Suspended\")].reason"
        ),
        "JobResumed"
    );
    assert!(!field(k, "later", ".status.startTime").is_empty());
    k.ok(&["wait", "--for=delete", "job/later", "--timeout=30s"]);
    wait_for(Duration::from_secs(30), "later's pods collected", || {
        pods_of(k, "later").is_empty().then_some(())
    });

    // Bad input: a Job whose template's restartPolicy is Always is refused, naming the field.
    let bad = job("always", "", 0).replace("restartPolicy: Never", "restartPolicy: Always");
    let refused = k.fails_stdin(&["apply", "-f", "-"], &bad);
    assert!(
        refused.contains("spec.template.spec.restartPolicy"),
        "{refused}"
    );
}

fn cronjob(name: &str, schedule: &str, policy: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\nspec:\n  schedule: \"{schedule}\"\n  concurrencyPolicy: {policy}\n  successfulJobsHistoryLimit: 10\n  jobTemplate:\n    spec:\n      template:\n        metadata:\n          annotations:\n            sim.ferry.dev/run-time: 4s\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: main\n            image: busybox:1\n"
    )
}

/// `name start completion` of the CronJob's Jobs, in schedule order.
fn runs_of(k: &Kubectl, cronjob: &str) -> Vec<(String, String, String)> {
    let text = k.jsonpath(&["jobs"], "{range .items[*]}{.metadata.ownerReferences[0].name} {.metadata.name} {.status.startTime} {.status.completionTime}{\"\\n\"}{end}");
    let mut runs: Vec<(String, String, String)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            (f.next() == Some(cronjob)).then(|| {
                let mut next = || f.next().unwrap_or_default().to_owned();
                (next(), next(), next())
            })
        })
        .collect();
    // Names carry the schedule time (`tick-<seconds>`), so they sort in the order run.
    runs.sort();
    runs
}

#[test]
fn cronjobs_run_on_schedule_without_overlap_when_forbidden() {
    let Some(a) = Appliance::with_hollow_nodes(ferry_binary(), 3) else {
        return;
    };
    let k = &a.kubectl;
    // Due every 2 s, each run takes 4 s: Forbid makes them wait for one another.
    k.ok_stdin(
        &["apply", "-f", "-"],
        &cronjob("tick", "@every 2s", "Forbid"),
    );
    let runs = wait_for(Duration::from_secs(60), "three finished runs", || {
        let runs = runs_of(k, "tick");
        (runs.iter().filter(|r| !r.2.is_empty()).count() >= 3).then_some(runs)
    });
    // A Job just created may not have started yet: it has nothing to compare.
    for pair in runs.windows(2).filter(|p| !p[1].1.is_empty()) {
        let (before, after) = (&pair[0], &pair[1]);
        assert!(
            !before.2.is_empty() && after.1 >= before.2,
            "{} started at {} before {} completed at {}",
            after.0,
            after.1,
            before.0,
            before.2
        );
    }
    let last = k.jsonpath(
        &["cronjob", "tick"],
        "{.status.lastScheduleTime} {.status.lastSuccessfulTime}",
    );
    assert!(
        last.split(' ').all(|t| t.ends_with('Z') && t.len() == 20),
        "{last}"
    );

    // Suspended, it starts nothing; a run by hand still works.
    k.ok(&[
        "patch",
        "cronjob",
        "tick",
        "--type=merge",
        "-p",
        "{\"spec\":{\"suspend\":true}}",
    ]);
    let active = wait_for(Duration::from_secs(30), "no run active", || {
        let active = k.jsonpath(&["cronjob", "tick"], "{.status.active}");
        active.is_empty().then_some(active)
    });
    assert!(active.is_empty());
    let settled = runs_of(k, "tick").len();
    // The by-hand run takes 4 s, several due times of the schedule: none of them starts a Job.
    k.ok(&["create", "job", "by-hand", "--from=cronjob/tick"]);
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/by-hand",
        "--timeout=60s",
    ]);
    assert_eq!(
        runs_of(k, "tick").len(),
        settled + 1,
        "a suspended CronJob started a Job"
    );

    // Bad input: an impossible schedule is refused, naming the field.
    let refused = k.fails_stdin(
        &["apply", "-f", "-"],
        &cronjob("bad", "61 * * * *", "Allow"),
    );
    assert!(
        refused.contains("spec.schedule") && refused.contains("out of range"),
        "{refused}"
    );
}
