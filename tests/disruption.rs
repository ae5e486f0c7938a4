//! Evictions and PodDisruptionBudgets driven with the real kubectl against `ferry up --nodes
//! 3` (hollow nodes): the budget's status, `kubectl drain` refused while the budget has no
//! disruption to spare (the pod stays), and done once it has (the pod is evicted and its
//! replacement runs elsewhere); a direct eviction answered 429.

use std::path::Path;
use std::time::Duration;

use ferry_testkit::appliance::Appliance;
use ferry_testkit::ferry::{Kubectl, wait_for};

fn ferry_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}

const WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: c\n        image: web:1\n";

fn budget(min: u32) -> String {
    format!(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  minAvailable: {min}\n  selector:\n    matchLabels: {{app: web}}\n"
    )
}

fn pdb(k: &Kubectl) -> String {
    k.jsonpath(&["pdb", "web"], "{.status.expectedPods} {.status.currentHealthy} {.status.desiredHealthy} {.status.disruptionsAllowed}")
}

/// `pod node` of web's running pods.
fn placement(k: &Kubectl) -> Vec<(String, String)> {
    k.jsonpath(
        &["pods", "-l", "app=web"],
        "{range .items[*]}{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}",
    )
    .lines()
    .filter_map(|l| {
        let (p, n) = l.split_once(' ')?;
        Some((p.to_owned(), n.to_owned()))
    })
    .collect()
}

#[test]
fn drain_respects_the_disruption_budget() {
    let Some(a) = Appliance::with_hollow_nodes(ferry_binary(), 3) else {
        return;
    };
    let k = &a.kubectl;
    k.ok_stdin(&["apply", "-f", "-"], WEB);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    k.ok_stdin(&["apply", "-f", "-"], &budget(3));
    wait_for(Duration::from_secs(30), "the budget counted", || {
        (pdb(k) == "3 3 3 0").then_some(())
    });
    let (victim, node) = placement(k).into_iter().next().expect("a web pod");

    // No disruption to spare: drain gives up, the pod stays.
    let refused = k.run(&[
        "drain",
        &node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=8s",
    ]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(said.contains("disruption budget"), "{said}");
    assert!(placement(k).iter().any(|(p, _)| *p == victim));

    // A direct eviction is answered 429.
    let eviction = format!(
        "{{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{{\"name\":\"{victim}\",\"namespace\":\"default\"}}}}"
    );
    let direct = k.fails_stdin(
        &[
            "create",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/{victim}/eviction"),
            "-f",
            "-",
        ],
        &eviction,
    );
    assert!(
        direct.contains("TooManyRequests")
            || direct.contains("429")
            || direct.contains("disruption budget"),
        "{direct}"
    );

    // One disruption allowed: the drain evicts the pod; its replacement runs elsewhere.
    k.ok_stdin(&["apply", "-f", "-"], &budget(2));
    wait_for(Duration::from_secs(30), "one disruption allowed", || {
        (pdb(k) == "3 3 2 1").then_some(())
    });
    k.ok(&[
        "drain",
        &node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=60s",
    ]);
    wait_for(
        Duration::from_secs(60),
        "web back to three pods elsewhere",
        || {
            let now = placement(k);
            (now.len() == 3 && now.iter().all(|(p, n)| *p != victim && *n != node)).then_some(())
        },
    );
    let cordoned = k.ok(&["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"]);
    assert_eq!(cordoned, "true");
    wait_for(Duration::from_secs(30), "the budget healthy again", || {
        (pdb(k) == "3 3 2 1").then_some(())
    });
}
