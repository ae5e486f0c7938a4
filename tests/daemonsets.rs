//! The DaemonSet controller driven with the real kubectl against `ferry up --nodes 3` (hollow
//! nodes) and a fourth `ferry node` joining: one pod per node, following the node in and
//! out, node selectors following labels, a rolling update with its ControllerRevisions, and
//! `kubectl rollout status|history|undo`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ferry_testkit::appliance::Appliance;
use ferry_testkit::ferry::{Kubectl, wait_for};

fn ferry_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}

fn daemonset(name: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {name}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n{extra}      containers:\n      - name: c\n        image: {image}\n"
    )
}

/// `node image` of the DaemonSet's running pods.
fn placed(k: &Kubectl, app: &str) -> BTreeSet<String> {
    k.ok(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "--field-selector",
        "status.phase=Running",
        "-o",
        "jsonpath={range .items[*]}{.spec.nodeName} {.spec.containers[0].image} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ])
    .lines()
    // Pods being deleted are on their way out.
    .filter_map(|l| {
        let mut f = l.split(' ');
        let (node, image, deleting) = (f.next()?, f.next()?, f.next().unwrap_or_default());
        deleting.is_empty().then(|| format!("{node} {image}"))
    })
    .collect()
}

fn expect_placed(k: &Kubectl, app: &str, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(|s| (*s).to_owned()).collect();
    wait_for(
        Duration::from_secs(60),
        &format!("{app} on {want:?}"),
        || (placed(k, app) == want).then_some(()),
    );
}

#[test]
fn daemons_follow_nodes_labels_and_templates() {
    let Some(a) = Appliance::with_hollow_nodes(ferry_binary(), 3) else {
        return;
    };
    let k = &a.kubectl;
    k.ok_stdin(&["apply", "-f", "-"], &daemonset("agent", "agent:1", ""));
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    expect_placed(
        k,
        "agent",
        &["sim-0 agent:1", "sim-1 agent:1", "sim-2 agent:1"],
    );
    // (the counters settle with the pods' last status writes)
    wait_for(
        Duration::from_secs(30),
        "the status counts every daemon",
        || {
            let counts = k.jsonpath(&["daemonset", "agent"], "{.status.desiredNumberScheduled} {.status.currentNumberScheduled} {.status.numberReady} {.status.updatedNumberScheduled} {.status.numberAvailable}");
            (counts == "3 3 3 3 3").then_some(())
        },
    );

    // A fourth node joins: it gets its daemon.
    let mut late = a.node(&["--name", "late"]);
    a.wait_nodes_ready(&["late"]);
    expect_placed(
        k,
        "agent",
        &[
            "late agent:1",
            "sim-0 agent:1",
            "sim-1 agent:1",
            "sim-2 agent:1",
        ],
    );

    // A node selector follows labels.
    k.ok_stdin(
        &["apply", "-f", "-"],
        &daemonset("ssd", "probe:1", "      nodeSelector: {disk: ssd}\n"),
    );
    k.ok(&["label", "node", "sim-1", "disk=ssd"]);
    expect_placed(k, "ssd", &["sim-1 probe:1"]);
    k.ok(&["label", "node", "sim-1", "disk-"]);
    expect_placed(k, "ssd", &[]);

    // A rolling update (maxUnavailable 1 by default) replaces every daemon; the history has
    // both templates, and undo brings the first back.
    k.ok(&["set", "image", "daemonset/agent", "c=agent:2"]);
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    expect_placed(
        k,
        "agent",
        &[
            "late agent:2",
            "sim-0 agent:2",
            "sim-1 agent:2",
            "sim-2 agent:2",
        ],
    );
    let history = k.ok(&["rollout", "history", "daemonset/agent"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    let revisions = k.jsonpath(
        &["controllerrevisions", "-l", "app=agent"],
        "{range .items[*]}{.revision}{\"\\n\"}{end}",
    );
    let mut revisions: Vec<&str> = revisions.lines().collect();
    revisions.sort_unstable();
    assert_eq!(revisions, ["1", "2"]);
    k.ok(&["rollout", "undo", "daemonset/agent"]);
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    expect_placed(
        k,
        "agent",
        &[
            "late agent:1",
            "sim-0 agent:1",
            "sim-1 agent:1",
            "sim-2 agent:1",
        ],
    );

    // The node leaves: its daemon goes with it.
    late.kill();
    k.ok(&["delete", "node", "late"]);
    expect_placed(
        k,
        "agent",
        &["sim-0 agent:1", "sim-1 agent:1", "sim-2 agent:1"],
    );
}
