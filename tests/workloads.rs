//! The workload controllers driven with the real kubectl against `ferry up --nodes 3` (hollow
//! nodes): a rolling update watched pod by pod within its bounds, `kubectl rollout
//! status|history|undo|pause|resume`, `kubectl scale`, Recreate, a ReplicaSet adopting an
//! orphan and replacing a deleted pod, a ReplicationController, every namespace's default ServiceAccount, and bad input.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ferry_testkit::appliance::Appliance;
use ferry_testkit::ferry::{Kubectl, wait_for};

fn ferry_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}

fn up() -> Option<Appliance> {
    Appliance::with_hollow_nodes(ferry_binary(), 3)
}

fn deployment(name: &str, replicas: u32, image: &str, strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  strategy:\n{strategy}  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: c\n        image: {image}\n"
    )
}

const ROLLING_2_1: &str =
    "    type: RollingUpdate\n    rollingUpdate: {maxSurge: 2, maxUnavailable: 1}\n";

fn image_of(k: &Kubectl, deployment: &str) -> String {
    k.ok(&[
        "get",
        "deployment",
        deployment,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])
}

fn pods_of(k: &Kubectl, app: &str) -> Vec<String> {
    k.ok(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.containers[0].image} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ])
    .lines()
    // Pods being deleted (their node is stopping them) are not the set's any more.
    .filter(|l| l.split(' ').nth(2).is_none_or(str::is_empty))
    .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
    .collect()
}

/// (revision, change-cause) rows of `kubectl rollout history`.
fn revisions(history: &str) -> Vec<(String, String)> {
    history
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .filter_map(|l| {
            let (number, cause) = l.split_once(' ')?;
            Some((number.to_owned(), cause.trim().to_owned()))
        })
        .collect()
}

#[test]
fn a_rolling_update_keeps_its_bounds_and_kubectl_rollout_drives_it() {
    let Some(a) = up() else {
        return;
    };
    let k = &a.kubectl;
    k.ok_stdin(
        &["apply", "-f", "-"],
        &deployment("web", 10, "busybox:1", ROLLING_2_1),
    );
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_eq!(pods_of(k, "web").len(), 10);

    // Every pod event of the update, as a watch sees them.
    let mut watch = k.watch(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--watch",
        "--output-watch-events",
        "-o",
        "jsonpath={.type} {.object.metadata.name} ready={.object.status.conditions[?(@.type==\"Ready\")].status} deleting={.object.metadata.deletionTimestamp}{\"\\n\"}",
    ]);
    k.ok(&[
        "annotate",
        "deployment/web",
        "kubernetes.io/change-cause=busybox 2",
    ]);
    k.ok(&["set", "image", "deployment/web", "c=busybox:2"]);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let pods = pods_of(k, "web");
    assert_eq!(pods.len(), 10, "{pods:?}");
    assert!(pods.iter().all(|p| p.ends_with("busybox:2")), "{pods:?}");
    // Replay the watch up to the point where only new pods are left.
    let mut state: BTreeMap<String, bool> = BTreeMap::new();
    let (mut most, mut fewest_ready) = (0, usize::MAX);
    let finished = |state: &BTreeMap<String, bool>| {
        state.len() == 10
            && state.values().all(|r| *r)
            && state
                .keys()
                .all(|n| pods.iter().any(|p| p.starts_with(&format!("{n} "))))
    };
    let mut events = 0;
    while !(events > 10 && finished(&state)) {
        let line = watch.until(Duration::from_secs(30), |_| true);
        events += 1;
        let mut words = line.split_whitespace();
        let (Some(kind), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        let rest: Vec<&str> = words.collect();
        // A pod being deleted is outside the rollout's bounds, as on Kubernetes (its node is
        // stopping it; it is no replica any more).
        let deleting = rest
            .iter()
            .any(|w| w.len() > "deleting=".len() && w.starts_with("deleting="));
        if kind == "DELETED" || deleting {
            state.remove(name);
        } else {
            state.insert(name.to_owned(), rest.contains(&"ready=True"));
        }
        if events > 10 {
            most = most.max(state.len());
            fewest_ready = fewest_ready.min(state.values().filter(|r| **r).count());
        }
    }
    assert!(most <= 12, "{most} pods at once: {:#?}", watch.seen);
    assert!(
        fewest_ready >= 9,
        "{fewest_ready} ready at once: {:#?}",
        watch.seen
    );
    assert!(most > 10, "the update surged: {most}");

    // History, undo, and the revisions they show.
    let history = k.ok(&["rollout", "history", "deployment/web"]);
    assert_eq!(
        revisions(&history),
        [
            ("1".to_owned(), "<none>".to_owned()),
            ("2".to_owned(), "busybox 2".to_owned())
        ],
        "{history}"
    );
    k.ok(&["rollout", "undo", "deployment/web"]);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_eq!(image_of(k, "web"), "busybox:1");
    let history = k.ok(&["rollout", "history", "deployment/web"]);
    let numbers: Vec<String> = revisions(&history).into_iter().map(|r| r.0).collect();
    assert_eq!(numbers, ["2", "3"], "revision 1 became 3: {history}");
    wait_for(Duration::from_secs(30), "pods back on busybox:1", || {
        let pods = pods_of(k, "web");
        (pods.len() == 10 && pods.iter().all(|p| p.ends_with("busybox:1"))).then_some(())
    });

    // Scale.
    k.ok(&["scale", "deployment/web", "--replicas=4"]);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    wait_for(Duration::from_secs(30), "four pods", || {
        (pods_of(k, "web").len() == 4).then_some(())
    });
    let ready = k.jsonpath(
        &["deployment", "web"],
        "{.status.readyReplicas}/{.status.availableReplicas}/{.status.updatedReplicas}",
    );
    assert_eq!(ready, "4/4/4");

    // Pause: a template change makes no new ReplicaSet until resumed.
    k.ok(&["rollout", "pause", "deployment/web"]);
    k.ok(&["set", "image", "deployment/web", "c=busybox:3"]);
    wait_for(Duration::from_secs(30), "paused condition", || {
        let reason = k.jsonpath(
            &["deployment", "web"],
            "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        );
        (reason == "DeploymentPaused").then_some(())
    });
    let sets = k.ok(&["get", "rs", "-l", "app=web", "-o", "name"]);
    assert_eq!(sets.lines().count(), 2, "no new set while paused: {sets}");
    k.ok(&["rollout", "resume", "deployment/web"]);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    wait_for(Duration::from_secs(30), "pods on busybox:3", || {
        let pods = pods_of(k, "web");
        (pods.len() == 4 && pods.iter().all(|p| p.ends_with("busybox:3"))).then_some(())
    });

    // A restart rolls every pod.
    let before = pods_of(k, "web");
    k.ok(&["rollout", "restart", "deployment/web"]);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    wait_for(Duration::from_secs(30), "fresh pods", || {
        let now = pods_of(k, "web");
        (now.len() == 4 && now.iter().all(|p| !before.contains(p))).then_some(())
    });
    let events = k.jsonpath(
        &["events", "--field-selector", "involvedObject.name=web"],
        "{.items[*].reason}",
    );
    assert!(events.contains("ScalingReplicaSet"), "{events}");
}

#[test]
fn recreate_replica_sets_and_service_accounts() {
    let Some(a) = up() else {
        return;
    };
    let k = &a.kubectl;
    // Recreate: the old pods are gone before any new one exists.
    k.ok_stdin(
        &["apply", "-f", "-"],
        &deployment("batch", 3, "busybox:1", "    type: Recreate\n"),
    );
    k.ok(&["rollout", "status", "deployment/batch", "--timeout=60s"]);
    let mut watch = k.watch(&[
        "get",
        "pods",
        "-l",
        "app=batch",
        "--watch",
        "--output-watch-events",
        "-o",
        "jsonpath={.type} {.object.metadata.name} {.object.spec.containers[0].image}{\"\\n\"}",
    ]);
    k.ok(&["set", "image", "deployment/batch", "c=busybox:2"]);
    k.ok(&["rollout", "status", "deployment/batch", "--timeout=60s"]);
    let mut live: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let line = watch.until(Duration::from_secs(30), |_| true);
        let words: Vec<&str> = line.split_whitespace().collect();
        let [kind, name, image] = words[..] else {
            continue;
        };
        if kind == "DELETED" {
            live.remove(name);
        } else {
            live.insert(name.to_owned(), image.to_owned());
        }
        let images: std::collections::BTreeSet<&String> = live.values().collect();
        assert!(images.len() <= 1, "old and new pods at once: {live:?}");
        if live.len() == 3 && live.values().all(|i| i == "busybox:2") {
            break;
        }
    }

    // A ReplicaSet adopts a matching orphan and replaces a deleted pod.
    k.ok_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: Pod\nmetadata:\n  name: stray\n  labels: {app: rs}\nspec:\n  containers:\n  - name: c\n    image: busybox\n");
    k.ok_stdin(&["apply", "-f", "-"], "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: rs\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: rs}\n  template:\n    metadata:\n      labels: {app: rs}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n");
    wait_for(Duration::from_secs(30), "two ready replicas", || {
        let s = k.jsonpath(&["rs", "rs"], "{.status.replicas}/{.status.readyReplicas}");
        (s == "2/2").then_some(())
    });
    let owner = k.jsonpath(&["pod", "stray"], "{.metadata.ownerReferences[0].name}");
    assert_eq!(owner, "rs", "the orphan was adopted");
    assert_eq!(pods_of(k, "rs").len(), 2);
    k.ok(&["delete", "pod", "stray", "--wait=false"]);
    wait_for(Duration::from_secs(30), "a replacement", || {
        let pods = pods_of(k, "rs");
        (pods.len() == 2 && !pods.iter().any(|p| p.starts_with("stray "))).then_some(())
    });
    // A pod relabelled out of the selector is released, and replaced.
    let victim = pods_of(k, "rs")[0]
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    k.ok(&["label", "pod", &victim, "app=gone", "--overwrite"]);
    wait_for(Duration::from_secs(30), "released", || {
        let owner = k.ok(&[
            "get",
            "pod",
            &victim,
            "-o",
            "jsonpath={.metadata.ownerReferences}",
        ]);
        (owner.is_empty() && pods_of(k, "rs").len() == 2).then_some(())
    });
    k.ok(&["scale", "rs/rs", "--replicas=0"]);
    wait_for(Duration::from_secs(30), "scaled to zero", || {
        pods_of(k, "rs").is_empty().then_some(())
    });

    // A ReplicationController without a selector selects its template's labels, keeps its
    // replicas, scales, and its pods go with it.
    k.ok_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: rc\nspec:\n  replicas: 3\n  template:\n    metadata:\n      labels: {app: rc}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n");
    let selector = k.jsonpath(&["rc", "rc"], "{.spec.selector.app}");
    assert_eq!(
        selector, "rc",
        "the selector defaults to the template's labels"
    );
    wait_for(Duration::from_secs(30), "three ready replicas", || {
        let row = k.ok(&["get", "rc", "rc", "--no-headers"]);
        let cols: Vec<&str> = row.split_whitespace().collect();
        (cols.get(1..4) == Some(&["3", "3", "3"][..])).then_some(())
    });
    let owner = pods_of(k, "rc")[0]
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    let kind = k.ok(&[
        "get",
        "pod",
        &owner,
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}",
    ]);
    assert_eq!(kind, "ReplicationController");
    k.ok(&["scale", "rc/rc", "--replicas=1"]);
    wait_for(Duration::from_secs(30), "scaled to one", || {
        (pods_of(k, "rc").len() == 1).then_some(())
    });
    k.ok(&["delete", "rc", "rc"]);
    wait_for(Duration::from_secs(30), "its pods collected", || {
        pods_of(k, "rc").is_empty().then_some(())
    });

    // Every namespace gets its default ServiceAccount.
    k.ok(&["create", "namespace", "team-a"]);
    wait_for(Duration::from_secs(30), "default service account", || {
        k.run(&["get", "serviceaccount", "default", "-n", "team-a"])
            .status
            .success()
            .then_some(())
    });
    k.ok(&["delete", "serviceaccount", "default", "-n", "team-a"]);
    wait_for(
        Duration::from_secs(30),
        "default service account again",
        || {
            k.run(&["get", "serviceaccount", "default", "-n", "team-a"])
                .status
                .success()
                .then_some(())
        },
    );

    // Bad input: a selector that does not match the template is refused, naming the field.
    let err = k.fails_stdin(&["apply", "-f", "-"], "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\nspec:\n  selector:\n    matchLabels: {app: one}\n  template:\n    metadata:\n      labels: {app: two}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n");
    assert!(err.contains("spec.template.metadata.labels"), "{err}");
}

/// The resourceVersion of the last `DELETED` event a watch printed as `TYPE RV` lines.
fn last_deletion(lines: &[String]) -> Option<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("DELETED "))
        .filter_map(|rv| rv.trim().parse().ok())
        .max()
}

#[test]
fn deletion_cascades_in_the_background_the_foreground_or_not_at_all() {
    let Some(a) = up() else {
        return;
    };
    let k = &a.kubectl;
    for name in ["bg", "fg", "or"] {
        k.ok_stdin(
            &["apply", "-f", "-"],
            &deployment(name, 3, "busybox:1", ROLLING_2_1),
        );
    }
    for name in ["bg", "fg", "or"] {
        k.ok(&[
            "rollout",
            "status",
            &format!("deployment/{name}"),
            "--timeout=60s",
        ]);
    }
    let none_left = |app: &str| {
        let sets = k.ok(&["get", "rs", "-l", &format!("app={app}"), "-o", "name"]);
        (sets.is_empty() && pods_of(k, app).is_empty()).then_some(())
    };

    // Background (kubectl's default): the Deployment goes at once, then its sets and pods.
    k.ok(&["delete", "deployment", "bg"]);
    wait_for(
        Duration::from_secs(30),
        "bg's sets and pods collected",
        || none_left("bg"),
    );

    // Foreground: the pods go before the Deployment, as the resourceVersions of the
    // deletions show.
    let jsonpath = "jsonpath={.type} {.object.metadata.resourceVersion}{\"\\n\"}";
    let mut pods = k.watch(&[
        "get",
        "pods",
        "-l",
        "app=fg",
        "--watch",
        "--output-watch-events",
        "-o",
        jsonpath,
    ]);
    let mut owner = k.watch(&[
        "get",
        "deployment",
        "fg",
        "--watch",
        "--output-watch-events",
        "-o",
        jsonpath,
    ]);
    // Both watches have listed before the deletion, or one could start after it and see
    // nothing.
    owner.until(Duration::from_secs(30), |l| l.starts_with("ADDED"));
    for _ in 0..3 {
        pods.until(Duration::from_secs(30), |l| l.starts_with("ADDED"));
    }
    k.ok(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    owner.until(Duration::from_secs(30), |l| l.starts_with("DELETED"));
    let mut gone = 0;
    while gone < 3 {
        if pods
            .until(Duration::from_secs(30), |l| l.starts_with("DELETED"))
            .starts_with("DELETED")
        {
            gone += 1;
        }
    }
    let (last_pod, deployment) = (last_deletion(&pods.seen), last_deletion(&owner.seen));
    assert!(
        last_pod < deployment,
        "pods deleted at {last_pod:?}, the Deployment at {deployment:?}"
    );
    wait_for(Duration::from_secs(30), "fg's sets collected", || {
        none_left("fg")
    });

    // Orphan: the Deployment goes, its set and pods stay, without the reference.
    k.ok(&[
        "delete",
        "deployment",
        "or",
        "--cascade=orphan",
        "--timeout=60s",
    ]);
    let refs = k.jsonpath(
        &["rs", "-l", "app=or"],
        "{.items[*].metadata.ownerReferences}",
    );
    assert!(refs.is_empty(), "orphaned: {refs}");
    assert_eq!(pods_of(k, "or").len(), 3);
    // An orphaned set still owns its pods: deleting it collects them.
    k.ok(&["delete", "rs", "-l", "app=or"]);
    wait_for(Duration::from_secs(30), "or's pods collected", || {
        none_left("or")
    });
}
