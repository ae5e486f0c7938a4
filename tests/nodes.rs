//! Nodes and the scheduler, driven with the real kubectl: hollow nodes in `ferry up` and in
//! separate `ferry node` processes, pods placed by requests, selectors, taints and
//! affinity, an unschedulable pod explained and placed when a node joins, cordons, a node
//! process killed (Unknown, tainted, its pods evicted), two `ferry controller`s electing one
//! leader, and bad input.

use std::path::Path;
use std::time::Duration;

use ferry_testkit::appliance::Appliance;
use ferry_testkit::ferry::{Background, FerryProcess, Kubectl, wait_for};

fn ferry_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}

/// `ferry up` on an empty directory source with `extra` flags.
fn up(extra: &[&str]) -> Option<Appliance> {
    Appliance::up(ferry_binary(), extra)
}

fn pod(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\nspec:\n{extra}  containers:\n  - name: c\n    image: busybox\n"
    )
}

#[test]
fn pods_land_where_their_rules_say() {
    let Some(a) = up(&["--nodes", "3", "--node-name", "sim"]) else {
        return;
    };
    let k = &a.kubectl;
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "node/sim-0",
        "node/sim-1",
        "node/sim-2",
        "--timeout=60s",
    ]);
    let nodes = k.ok(&[
        "get",
        "nodes",
        "-o",
        "custom-columns=NAME:.metadata.name,CPU:.status.capacity.cpu,PODS:.status.allocatable.pods",
    ]);
    assert!(nodes.contains("sim-0   4     110"), "{nodes}");
    // A GPU node with a taint, and a big node, each its own `ferry node` process.
    let _gpu = a.node(&[
        "--name",
        "gpu",
        "--labels",
        "accel=gpu",
        "--taints",
        "dedicated=gpu:NoSchedule",
        "--capacity",
        "nvidia.com/gpu=2",
    ]);
    a.wait_nodes_ready(&["gpu"]);

    k.ok_stdin(&["apply", "-f", "-"], &pod("plain", ""));
    k.ok_stdin(
        &["apply", "-f", "-"],
        &pod("wants-gpu", "  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]\n  nodeSelector: {accel: gpu}\n"),
    );
    k.ok_stdin(
        &["apply", "-f", "-"],
        &pod("affine", "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms: [{matchFields: [{key: metadata.name, operator: In, values: [sim-2]}]}]\n"),
    );
    for p in ["plain", "wants-gpu", "affine"] {
        a.wait_ready(p);
    }
    assert!(
        a.node_of("plain").starts_with("sim-"),
        "the tainted node is avoided"
    );
    assert_eq!(a.node_of("wants-gpu"), "gpu");
    assert_eq!(a.node_of("affine"), "sim-2");
    let wide = k.ok(&["get", "pods", "-o", "wide"]);
    assert!(
        wide.contains("Running") && wide.contains("10.128."),
        "{wide}"
    );

    // An extended resource is never overcommitted: 3 GPUs asked on a 2-GPU node.
    let gpu_pod = |name: &str, n: u32| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  tolerations: [{{operator: Exists}}]\n  containers:\n  - name: c\n    image: cuda\n    resources: {{limits: {{nvidia.com/gpu: {n}}}}}\n"
        )
    };
    k.ok_stdin(&["apply", "-f", "-"], &gpu_pod("two-gpus", 2));
    a.wait_ready("two-gpus");
    k.ok_stdin(&["apply", "-f", "-"], &gpu_pod("one-more", 1));
    let described = wait_for(Duration::from_secs(30), "a FailedScheduling event", || {
        let d = k.ok(&["describe", "pod", "one-more"]);
        d.contains("FailedScheduling").then_some(d)
    });
    assert!(
        described.contains("0/4 nodes are available: 4 Insufficient nvidia.com/gpu."),
        "{described}"
    );

    // Unschedulable until a fitting node joins; then it lands at once.
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: huge\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources: {requests: {cpu: \"64\"}}\n",
    );
    let described = wait_for(Duration::from_secs(30), "huge to be unschedulable", || {
        let d = k.ok(&["describe", "pod", "huge"]);
        d.contains("Insufficient cpu").then_some(d)
    });
    assert!(described.contains("PodScheduled   False"), "{described}");
    let _big = a.node(&["--name", "big", "--capacity", "cpu=128"]);
    a.wait_ready("huge");
    assert_eq!(a.node_of("huge"), "big");

    // A cordoned node gets no new pod; uncordoned it does again.
    for n in ["sim-0", "sim-1", "sim-2", "gpu"] {
        k.ok(&["cordon", n]);
    }
    let nodes = k.ok(&["get", "node", "sim-0"]);
    assert!(nodes.contains("Ready,SchedulingDisabled"), "{nodes}");
    for i in 0..4 {
        k.ok_stdin(
            &["apply", "-f", "-"],
            &pod(&format!("after-cordon-{i}"), ""),
        );
    }
    for i in 0..4 {
        a.wait_ready(&format!("after-cordon-{i}"));
        assert_eq!(a.node_of(&format!("after-cordon-{i}")), "big");
    }
    // Node lifecycle taints a cordoned node, as Kubernetes does.
    wait_for(Duration::from_secs(30), "the cordon taint", || {
        let t = k.jsonpath(&["node", "sim-0"], "{.spec.taints[*].key}");
        t.contains("node.kubernetes.io/unschedulable").then_some(())
    });
    k.ok(&["uncordon", "sim-0"]);
    wait_for(Duration::from_secs(30), "the cordon taint to go", || {
        let t = k.jsonpath(&["node", "sim-0"], "{.spec.taints}");
        (!t.contains("unschedulable")).then_some(())
    });

    // A hollow pod that ends: Succeeded, or Failed with the annotated exit code.
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: fails\n  annotations: {sim.ferry.dev/exit-code: \"3\"}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: busybox\n",
    );
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Failed",
        "pod/fails",
        "--timeout=60s",
    ]);
    let code = k.jsonpath(
        &["pod", "fails"],
        "{.status.containerStatuses[0].state.terminated.exitCode}",
    );
    assert_eq!(code, "3");

    // Events as kube-scheduler writes them.
    let events = k.ok(&["get", "events", "--field-selector", "reason=Scheduled"]);
    assert!(
        events.contains("Successfully assigned default/huge to big"),
        "{events}"
    );
    let metrics = text_of(&a.server.url);
    assert!(
        metrics.contains("scheduler_schedule_attempts_total{result=\"scheduled\""),
        "{metrics}"
    );
}

fn text_of(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("{url}/metrics")])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_killed_node_process_goes_unknown_and_its_pods_are_evicted() {
    let Some(a) = up(&[
        "--nodes",
        "1",
        "--node-name",
        "stays",
        "--node-monitor-grace-period",
        "3s",
        "--node-monitor-period",
        "500ms",
        "--node-lease-renew-interval",
        "500ms",
    ]) else {
        return;
    };
    let k = &a.kubectl;
    let mut doomed = a.node(&[
        "--name",
        "doomed",
        "--count",
        "2",
        "--labels",
        "pool=doomed",
        "--node-lease-renew-interval",
        "500ms",
    ]);
    a.wait_nodes_ready(&["doomed-0", "doomed-1"]);
    // Two pods on the doomed pool: one tolerates unreachability for 2 s, one for an hour.
    let tolerating = |name: &str, seconds: u32| {
        pod(
            name,
            &format!(
                "  nodeSelector: {{pool: doomed}}\n  tolerations: [{{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: {seconds}}}]\n"
            ),
        )
    };
    k.ok_stdin(&["apply", "-f", "-"], &tolerating("brief", 2));
    k.ok_stdin(&["apply", "-f", "-"], &tolerating("patient", 3600));
    a.wait_ready("brief");
    a.wait_ready("patient");
    doomed.kill();
    // Unknown within the grace period, with the unreachable taint.
    k.ok(&[
        "wait",
        "--for=condition=Ready=Unknown",
        "node/doomed-0",
        "node/doomed-1",
        "--timeout=30s",
    ]);
    let nodes = k.ok(&["get", "nodes"]);
    assert!(nodes.contains("doomed-0   NotReady"), "{nodes}");
    let taints = k.jsonpath(&["node", "doomed-0"], "{.spec.taints[*].key}");
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
    // The brief pod is evicted after its 2 s: marked for deletion, it stays Terminating while
    // no agent can stop it (as on Kubernetes); the patient one stays as it was.
    wait_for(Duration::from_secs(30), "brief marked for deletion", || {
        let at = k.jsonpath(&["pod", "brief"], "{.metadata.deletionTimestamp}");
        (!at.is_empty()).then_some(())
    });
    assert_eq!(
        k.jsonpath(&["pod", "patient"], "{.metadata.deletionTimestamp}"),
        ""
    );
    let events = k.ok(&["get", "events"]);
    assert!(events.contains("NodeNotReady"), "{events}");
    // The node comes back: Ready again, the taints gone.
    let _back = a.node(&[
        "--name",
        "doomed",
        "--count",
        "2",
        "--labels",
        "pool=doomed",
        "--node-lease-renew-interval",
        "500ms",
    ]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "node/doomed-0",
        "--timeout=60s",
    ]);
    // Its agent back, the evicted pod is stopped and deleted for good.
    k.ok(&["wait", "--for=delete", "pod/brief", "--timeout=30s"]);
    wait_for(
        Duration::from_secs(30),
        "the unreachable taint to go",
        || {
            let t = k.jsonpath(&["node", "doomed-0"], "{.spec.taints}");
            (!t.contains("unreachable")).then_some(())
        },
    );
}

#[test]
fn two_controllers_elect_one_leader_and_the_other_takes_over() {
    let Some(kubectl) = ferry_testkit::tools::kubectl() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = FerryProcess::start(
        ferry_binary(),
        &[
            "apiserver".to_owned(),
            "--data-dir".to_owned(),
            dir.path().join("data").display().to_string(),
        ],
    );
    let k = Kubectl::new(&kubectl, ferry_binary(), &server.url, dir.path());
    let log = |name: &str| dir.path().join(name);
    let _nodes = Background::start(
        ferry_binary(),
        &["node", "--server", &server.url, "--name", "n"],
        &log("node.log"),
    );
    let mut first = Background::start(
        ferry_binary(),
        &["controller", "--server", &server.url, "--identity", "first"],
        &log("first.log"),
    );
    // The Lease's holder ("" while there is none).
    let holder = || {
        let out = k.run(&[
            "get",
            "lease",
            "-n",
            "kube-system",
            "ferry-controller-manager",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first_holder = wait_for(Duration::from_secs(30), "a leader", || {
        Some(holder()).filter(|h| !h.is_empty())
    });
    assert_eq!(first_holder, "first");
    let _second = Background::start(
        ferry_binary(),
        &[
            "controller",
            "--server",
            &server.url,
            "--identity",
            "second",
        ],
        &log("second.log"),
    );
    k.ok_stdin(&["apply", "-f", "-"], &pod("before", ""));
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/before",
        "--timeout=60s",
    ]);
    first.kill();
    k.ok_stdin(&["apply", "-f", "-"], &pod("after", ""));
    // Within the 15 s lease (plus a retry period and the hollow start delay).
    k.ok(&[
        "wait",
        "--for=condition=PodScheduled",
        "pod/after",
        "--timeout=25s",
    ]);
    assert_eq!(holder(), "second");
    assert!(first.log().contains("became the leader"), "{}", first.log());
}

#[test]
fn bad_input_is_refused_or_explained() {
    let Some(a) = up(&["--nodes", "1", "--node-name", "only"]) else {
        return;
    };
    let k = &a.kubectl;
    let out = k.run_stdin(
        &["apply", "-f", "-"],
        &pod("bad", "  tolerations: [{key: a, operator: Maybe}]\n"),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.tolerations[0].operator: Unsupported value: \"Maybe\""),
        "{stderr}"
    );
    // A pod naming a node that does not exist stays Pending, and says why.
    k.ok_stdin(&["apply", "-f", "-"], &pod("astray", "  nodeName: ghost\n"));
    let described = wait_for(Duration::from_secs(30), "the NodeNotFound event", || {
        let d = k.ok(&["describe", "pod", "astray"]);
        d.contains("NodeNotFound").then_some(d)
    });
    assert!(
        described.contains("node \"ghost\" does not exist"),
        "{described}"
    );
    assert!(described.contains("Pending"), "{described}");
    // A node flag that does not parse names the flag.
    let out = std::process::Command::new(ferry_binary())
        .args([
            "node",
            "--server",
            &a.server.url,
            "--name",
            "x",
            "--taints",
            "a=b:Sometimes",
        ])
        .output()
        .expect("ferry node");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--taints: \"a=b:Sometimes\""));
    // An unreachable apiserver: the agent retries with back-off and says so.
    let mut lonely = Background::start(
        ferry_binary(),
        &["node", "--server", "http://127.0.0.1:9", "--name", "lonely"],
        &a.dir.path().join("lonely.log"),
    );
    let said = wait_for(
        Duration::from_secs(20),
        "the agent to report the unreachable apiserver",
        || {
            let log = lonely.log();
            log.contains("the apiserver cannot be reached")
                .then_some(log)
        },
    );
    assert!(said.contains("retry_in_ms"), "{said}");
    lonely.kill();
}
