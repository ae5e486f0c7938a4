//! ResourceQuota admission and usage driven with the real kubectl against `ferry up --nodes 3`
//! (hollow nodes): a ReplicaSet whose pods pass the quota shows `ReplicaFailure` with the
//! apiserver's reason, a pod created by hand is refused naming the quota, and usage follows
//! pods as they go (`kubectl describe quota`); object-count quotas (`count/configmaps`,
//! `count/deployments.apps`, `services.nodeports`) refuse the create past their limit and give
//! the unit back when such an object is deleted; a scoped quota (`BestEffort`) counts only the
//! pods in its scope; a LimitRange fills in missing requests and
//! limits and refuses pods outside its bounds.

use std::path::Path;
use std::time::Duration;

use ferry_testkit::appliance::Appliance;
use ferry_testkit::ferry::{Kubectl, wait_for};

fn ferry_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}

const QUOTA: &str = "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: compute\nspec:\n  hard:\n    pods: \"2\"\n    requests.cpu: \"1\"\n";

const WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: c\n        image: web:1\n        resources:\n          requests: {cpu: 300m}\n";

const LONE: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lone\nspec:\n  containers:\n  - name: c\n    image: web:1\n";

fn used(k: &Kubectl) -> String {
    k.jsonpath(
        &["resourcequota", "compute"],
        "{.status.used.pods} {.status.used.requests\\.cpu}",
    )
}

#[test]
fn quota_refuses_pods_past_its_limits_and_counts_them() {
    let Some(a) = Appliance::with_hollow_nodes(ferry_binary(), 3) else {
        return;
    };
    let k = &a.kubectl;
    k.ok_stdin(&["apply", "-f", "-"], QUOTA);
    wait_for(Duration::from_secs(30), "the quota counted", || {
        (used(k) == "0 0").then_some(())
    });

    // Three replicas asked, two allowed: the set says why the third is missing.
    k.ok_stdin(&["apply", "-f", "-"], WEB);
    let reason = wait_for(Duration::from_secs(60), "ReplicaFailure", || {
        let text = k.jsonpath(
            &["rs", "-l", "app=web"],
            "{.items[0].status.conditions[?(@.type==\"ReplicaFailure\")].message}",
        );
        (!text.is_empty()).then_some(text)
    });
    assert!(
        reason.contains("exceeded quota: compute") && reason.contains("limited: pods=2"),
        "{reason}"
    );
    wait_for(Duration::from_secs(30), "two pods charged", || {
        (used(k) == "2 600m").then_some(())
    });
    let described = k.ok(&["describe", "quota", "compute"]);
    assert!(
        described.contains("pods") && described.contains("600m"),
        "{described}"
    );

    // A pod by hand is refused, naming the quota.
    let refused = k.fails_stdin(&["apply", "-f", "-"], LONE);
    assert!(
        refused.contains("forbidden") && refused.contains("exceeded quota: compute"),
        "{refused}"
    );

    // Scaled down, the units come back.
    k.ok(&["scale", "deployment/web", "--replicas=1"]);
    wait_for(Duration::from_secs(60), "one pod charged", || {
        (used(k) == "1 300m").then_some(())
    });
    k.ok_stdin(&["apply", "-f", "-"], LONE);
}

#[test]
fn object_count_quota_refuses_creates_past_its_limit_and_gives_units_back() {
    let Some(a) = Appliance::with_hollow_nodes(ferry_binary(), 1) else {
        return;
    };
    let k = &a.kubectl;
    k.ok(&["create", "namespace", "counted"]);
    let k_ns = |args: &[&str]| {
        let mut all = vec!["-n", "counted"];
        all.extend_from_slice(args);
        k.ok(&all)
    };
    k_ns(&[
        "create",
        "quota",
        "objects",
        "--hard=count/configmaps=2,count/deployments.apps=1,services.nodeports=1,secrets=5",
    ]);
    let used = || {
        k.jsonpath(
            &["-n", "counted", "resourcequota", "objects"],
            "{.status.used.count/configmaps} {.status.used.count/deployments\\.apps} {.status.used.services\\.nodeports}",
        )
    };
    // The namespace's existing objects counted before the first create.
    let before = wait_for(Duration::from_secs(30), "the quota counted", || {
        let text = used();
        (text.split(' ').count() == 3 && !text.starts_with(' ')).then_some(text)
    });
    let existing: u32 = before
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(existing <= 2, "{before}");
    for i in existing..2 {
        k_ns(&[
            "create",
            "configmap",
            &format!("c{i}"),
            "--from-literal=a=b",
        ]);
    }
    let refused = k.fails(&["-n", "counted", "create", "configmap", "extra"]);
    assert!(
        refused.contains("configmaps \"extra\" is forbidden: exceeded quota: objects")
            && refused.contains("requested: count/configmaps=1")
            && refused.contains("limited: count/configmaps=2"),
        "{refused}"
    );
    // A server-side dry run is refused the same way, and charges nothing.
    let refused = k.fails(&[
        "-n",
        "counted",
        "create",
        "configmap",
        "extra",
        "--dry-run=server",
    ]);
    assert!(refused.contains("exceeded quota: objects"), "{refused}");
    let described = k_ns(&["describe", "quota", "objects"]);
    assert!(described.contains("count/configmaps"), "{described}");

    // One deployment, one node port.
    k_ns(&["create", "deployment", "one", "--image=web:1"]);
    let refused = k.fails(&[
        "-n",
        "counted",
        "create",
        "deployment",
        "two",
        "--image=web:1",
    ]);
    assert!(
        refused.contains("exceeded quota: objects")
            && refused.contains("limited: count/deployments.apps=1"),
        "{refused}"
    );
    k_ns(&["create", "service", "nodeport", "np", "--tcp=80"]);
    let refused = k.fails(&[
        "-n", "counted", "create", "service", "nodeport", "np2", "--tcp=80",
    ]);
    assert!(
        refused.contains("limited: services.nodeports=1"),
        "{refused}"
    );
    // A ClusterIP Service uses no node port.
    k_ns(&["create", "service", "clusterip", "plain", "--tcp=80"]);

    // A deleted ConfigMap's unit comes back with the controller's recount.
    let names = k_ns(&["get", "configmaps", "-o", "name"]);
    let first = names.lines().next().unwrap_or_default().to_owned();
    k_ns(&["delete", &first]);
    wait_for(Duration::from_secs(30), "the unit given back", || {
        used().starts_with("1 ").then_some(())
    });
    k_ns(&["create", "configmap", "extra", "--from-literal=a=b"]);
    wait_for(Duration::from_secs(30), "charged again", || {
        used().starts_with("2 ").then_some(())
    });
}

const SCOPED: &str = "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: besteffort\n  namespace: scoped\nspec:\n  hard:\n    pods: \"1\"\n  scopes: [BestEffort]\n";

fn pod_in(name: &str, resources: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: scoped\nspec:\n  containers:\n  - name: c\n    image: web:1\n    resources: {resources}\n"
    )
}

#[test]
fn scoped_quota_counts_only_pods_in_its_scope() {
    let Some(a) = Appliance::with_hollow_nodes(ferry_binary(), 1) else {
        return;
    };
    let k = &a.kubectl;
    k.ok(&["create", "namespace", "scoped"]);
    k.ok_stdin(&["apply", "-f", "-"], SCOPED);
    let used = || {
        k.jsonpath(
            &["-n", "scoped", "resourcequota", "besteffort"],
            "{.status.used.pods}",
        )
    };
    wait_for(Duration::from_secs(30), "the quota counted", || {
        (used() == "0").then_some(())
    });
    k.ok_stdin(&["apply", "-f", "-"], &pod_in("first", "{}"));
    let refused = k.fails_stdin(&["apply", "-f", "-"], &pod_in("second", "{}"));
    assert!(
        refused.contains("pods \"second\" is forbidden: exceeded quota: besteffort"),
        "{refused}"
    );
    // A pod that asks for cpu is outside the scope: neither refused nor counted.
    k.ok_stdin(
        &["apply", "-f", "-"],
        &pod_in("burstable", "{requests: {cpu: 100m}}"),
    );
    wait_for(
        Duration::from_secs(30),
        "only the BestEffort pod counted",
        || (used() == "1").then_some(()),
    );
    k.ok(&["-n", "scoped", "delete", "pod", "burstable", "--wait=false"]);
    k.ok(&[
        "-n",
        "scoped",
        "delete",
        "pod",
        "first",
        "--grace-period=0",
        "--force",
    ]);
    wait_for(Duration::from_secs(30), "the unit given back", || {
        (used() == "0").then_some(())
    });
    k.ok_stdin(&["apply", "-f", "-"], &pod_in("second", "{}"));
}

const RANGE: &str = "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: bounds\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m, memory: 128Mi}\n    defaultRequest: {cpu: 100m}\n    max: {cpu: \"1\"}\n    min: {memory: 16Mi}\n";

const BIG: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n  containers:\n  - name: c\n    image: web:1\n    resources:\n      limits: {cpu: \"2\", memory: 8Mi}\n";

const WIDE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: wide\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: wide}\n  template:\n    metadata:\n      labels: {app: wide}\n    spec:\n      containers:\n      - name: c\n        image: web:1\n        resources:\n          limits: {cpu: 1500m}\n";

#[test]
fn limit_range_defaults_containers_and_refuses_pods_outside_it() {
    let Some(a) = Appliance::with_hollow_nodes(ferry_binary(), 1) else {
        return;
    };
    let k = &a.kubectl;
    k.ok_stdin(&["apply", "-f", "-"], RANGE);
    // The range's own defaults: the request defaults to the default limit.
    assert_eq!(
        k.jsonpath(
            &["limitrange", "bounds"],
            "{.spec.limits[0].defaultRequest.memory}"
        ),
        "128Mi"
    );

    // A pod without resources gets the range's defaults, noted in its annotation.
    k.ok_stdin(&["apply", "-f", "-"], LONE);
    assert_eq!(
        k.jsonpath(&["pod", "lone"], "{.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.limits.cpu} {.spec.containers[0].resources.requests.memory}"),
        "100m 500m 128Mi"
    );
    let described = k.ok(&["describe", "pod", "lone"]);
    assert!(
        described.contains("LimitRanger plugin set: cpu, memory request for container c"),
        "{described}"
    );

    // Outside the range: refused, naming every bound it breaks.
    let refused = k.fails_stdin(&["apply", "-f", "-"], BIG);
    assert!(
        refused.contains("pods \"big\" is forbidden")
            && refused.contains("maximum cpu usage per Container is 1, but limit is 2")
            && refused.contains("minimum memory usage per Container is 16Mi, but request is 8Mi"),
        "{refused}"
    );

    // A workload whose template breaks it: the ReplicaSet says why it has no pods.
    k.ok_stdin(&["apply", "-f", "-"], WIDE);
    let reason = wait_for(Duration::from_secs(60), "ReplicaFailure", || {
        let text = k.jsonpath(
            &["rs", "-l", "app=wide"],
            "{.items[0].status.conditions[?(@.type==\"ReplicaFailure\")].message}",
        );
        (!text.is_empty()).then_some(text)
    });
    assert!(
        reason.contains("maximum cpu usage per Container is 1, but limit is 1500m"),
        "{reason}"
    );
}
