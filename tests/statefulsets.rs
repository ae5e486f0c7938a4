//! The StatefulSet controller driven with the real kubectl against `ferry up --nodes 3`
//! (hollow nodes): ordinal pods created in order with stable hostnames and a claim each, a
//! partitioned rolling update that touches only ordinals at or above the partition, a pod
//! below it coming back at the old revision, and scaling down from the top with the claims
//! kept.

use std::path::Path;
use std::time::Duration;

use ferry_testkit::appliance::Appliance;
use ferry_testkit::ferry::{Kubectl, wait_for};

fn ferry_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}

const DB: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\nspec:\n  clusterIP: None\n  selector: {app: db}\n  ports:\n  - {port: 5432}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  serviceName: db\n  replicas: 4\n  selector:\n    matchLabels: {app: db}\n  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate: {partition: 2}\n  template:\n    metadata:\n      labels: {app: db}\n    spec:\n      containers:\n      - name: c\n        image: db:1\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources:\n        requests: {storage: 1Gi}\n";

/// `name image hostname.subdomain claim` of the set's pods, by name.
fn pods(k: &Kubectl) -> Vec<String> {
    let text = k.jsonpath(&["pods", "-l", "app=db"], "{range .items[*]}{.metadata.name} {.spec.containers[0].image} {.spec.hostname}.{.spec.subdomain} {.spec.volumes[?(@.name==\"data\")].persistentVolumeClaim.claimName} {.metadata.deletionTimestamp}{\"\\n\"}{end}");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.split(' ').nth(4).is_none_or(str::is_empty))
        .map(|l| l.split(' ').take(4).collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

#[test]
fn ordinals_in_order_a_partitioned_update_and_claims_kept() {
    let Some(a) = Appliance::with_hollow_nodes(ferry_binary(), 3) else {
        return;
    };
    let k = &a.kubectl;
    let mut added = k.watch(&[
        "get",
        "pods",
        "-l",
        "app=db",
        "--watch",
        "--output-watch-events",
        "-o",
        "jsonpath={.type} {.object.metadata.name}{\"\\n\"}",
    ]);
    k.ok_stdin(&["apply", "-f", "-"], DB);
    k.ok(&["rollout", "status", "statefulset/db", "--timeout=90s"]);
    // OrderedReady: each pod only once the one before it is up.
    let mut order = Vec::new();
    while order.len() < 4 {
        let line = added.until(Duration::from_secs(30), |l| l.starts_with("ADDED"));
        order.push(line.trim_start_matches("ADDED ").to_owned());
    }
    assert_eq!(order, ["db-0", "db-1", "db-2", "db-3"]);
    assert_eq!(
        pods(k),
        [
            "db-0 db:1 db-0.db data-db-0",
            "db-1 db:1 db-1.db data-db-1",
            "db-2 db:1 db-2.db data-db-2",
            "db-3 db:1 db-3.db data-db-3"
        ]
    );
    let claims = k.ok(&["get", "pvc", "-o", "name"]);
    assert_eq!(claims.lines().count(), 4, "{claims}");

    // partition: 2: only db-3 and db-2 move to the new template, the highest first.
    k.ok(&["set", "image", "statefulset/db", "c=db:2"]);
    k.ok(&["rollout", "status", "statefulset/db", "--timeout=90s"]);
    wait_for(Duration::from_secs(60), "db-2 and db-3 updated", || {
        (pods(k)
            == [
                "db-0 db:1 db-0.db data-db-0",
                "db-1 db:1 db-1.db data-db-1",
                "db-2 db:2 db-2.db data-db-2",
                "db-3 db:2 db-3.db data-db-3",
            ])
        .then_some(())
    });
    let revisions = k.jsonpath(&["statefulset", "db"], "{.status.currentRevision} {.status.updateRevision} {.status.updatedReplicas} {.status.currentReplicas}");
    let fields: Vec<&str> = revisions.split(' ').collect();
    assert_ne!(fields[0], fields[1], "{revisions}");
    assert_eq!(&fields[2..], ["2", "2"], "{revisions}");

    // A pod below the partition comes back at the old revision, with the same claim.
    k.ok(&["delete", "pod", "db-0", "--wait=true", "--timeout=60s"]);
    wait_for(Duration::from_secs(60), "db-0 back", || {
        pods(k)
            .first()
            .is_some_and(|p| p == "db-0 db:1 db-0.db data-db-0")
            .then_some(())
    });

    // Scaled down: db-3 then db-2 go; their claims stay.
    k.ok(&["scale", "statefulset/db", "--replicas=2"]);
    wait_for(Duration::from_secs(60), "two pods left", || {
        (pods(k).len() == 2).then_some(())
    });
    let claims = k.ok(&["get", "pvc", "-o", "name"]);
    assert_eq!(claims.lines().count(), 4, "{claims}");
}
