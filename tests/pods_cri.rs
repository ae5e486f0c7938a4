//! Pods run by containerd through CRI v1 (`ferry up --runtime cri`), against a containerd the
//! test starts with its own config and socket (`ferry_testkit::cri`), the project's local
//! busybox image and a registry on loopback with basic auth. Driven with the real kubectl:
//! init containers before the others, logs (also followed), attach, exec with exit codes, port-forward, a pod IP
//! that answers, a configMap volume updated in place, a crashing container's back-off, a
//! liveness failure restarting its container, an OOM kill, pulls with and without a pull
//! secret, a missing image (`ErrImagePull`, `ImagePullBackOff`, `ErrImageNeverPull`),
//! graceful deletion removing the containers, and a node agent killed with SIGKILL that finds
//! its running containers again instead of starting them twice.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferry_testkit::appliance::Appliance;
use ferry_testkit::cri::Containerd;
use ferry_testkit::ferry::{Kubectl, wait_for};

fn ferry_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}

/// A pod CIDR of the test's own.
fn pod_cidr(test: u32) -> String {
    format!("10.{}.{}.0/24", 230 + test, std::process::id() % 250)
}

/// `ferry up --runtime cri` against `containerd`, once its node `local` is Ready.
fn cri_appliance(containerd: &Containerd, test: u32) -> Option<Appliance> {
    let socket = containerd.socket().display().to_string();
    let cidr = pod_cidr(test);
    let a = Appliance::up(
        ferry_binary(),
        &[
            "--runtime",
            "cri",
            "--cri-socket",
            &socket,
            "--node-name",
            "local",
            "--pod-cidr",
            &cidr,
            // Small, so that a chatty container's log is rotated within the test.
            "--container-log-max-size",
            "16Ki",
            "--container-log-max-files",
            "3",
        ],
    )?;
    wait_for(Duration::from_secs(60), "the node registered", || {
        a.kubectl
            .run(&["get", "node", "local"])
            .status
            .success()
            .then_some(())
    });
    a.kubectl.ok(&[
        "wait",
        "--for=condition=Ready",
        "node/local",
        "--timeout=60s",
    ]);
    Some(a)
}

fn waiting_reason(k: &Kubectl, pod: &str) -> String {
    k.jsonpath(
        &["pod", pod],
        "{.status.containerStatuses[0].state.waiting.reason}",
    )
}

fn curl(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "2", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main_yaml(registry: &str) -> String {
    let auth = format!(
        "{{\"auths\":{{\"{registry}\":{{\"username\":\"ferry\",\"password\":\"sekret-123\"}}}}}}"
    );
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: site}}
data: {{index.html: "v1"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: pull}}
type: kubernetes.io/dockerconfigjson
stringData: {{.dockerconfigjson: '{auth}'}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: init
    image: ferry.local/busybox:1
    command: [sh, -c, "echo init ran > /work/init.txt"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: web
    image: ferry.local/busybox:1
    command: [httpd, -f, -p, "8080", -h, /site]
    volumeMounts: [{{name: site, mountPath: /site}}]
    readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
  - name: talker
    image: ferry.local/busybox:1
    # No command: the image's entrypoint (sh) runs with these args.
    args: [-c, 'cat /work/init.txt; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done']
    volumeMounts: [{{name: work, mountPath: /work}}]
  volumes:
  - {{name: work, emptyDir: {{}}}}
  - {{name: site, configMap: {{name: site}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: crashy}}
spec:
  containers:
  - name: c
    image: ferry.local/busybox:1
    command: [sh, -c, "echo crashing; exit 3"]
---
apiVersion: v1
kind: Pod
metadata: {{name: live}}
spec:
  containers:
  - name: c
    image: ferry.local/busybox:1
    command: [sh, -c, "touch /tmp/alive; sleep 2; rm /tmp/alive; sleep 3600"]
    livenessProbe: {{exec: {{command: [cat, /tmp/alive]}}, periodSeconds: 1, failureThreshold: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: oom}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: ferry.local/busybox:1
    command: [sh, -c, 'x=$(head -c 200000000 /dev/zero | tr "\0" a); echo ${{#x}}']
    resources: {{limits: {{memory: 32Mi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: pulled}}
spec:
  imagePullSecrets: [{{name: pull}}]
  containers:
  - name: c
    image: {registry}/ferry/busybox:2
    command: [sleep, "3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: denied}}
spec:
  containers:
  - name: c
    image: {registry}/ferry/busybox:2
    imagePullPolicy: Always
    command: [sleep, "3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: missing}}
spec:
  imagePullSecrets: [{{name: pull}}]
  containers:
  - name: c
    image: {registry}/ferry/nothere:1
    command: [sleep, "3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: hostnet}}
spec:
  hostNetwork: true
  containers:
  - name: c
    image: ferry.local/busybox:1
    command: [sleep, "3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: chatty}}
spec:
  containers:
  - name: c
    image: ferry.local/busybox:1
    command: [sh, -c, 'i=0; while [ $i -lt 600 ]; do echo "line $i of a chatty container"; i=$((i+1)); done; exec sleep 3600']
---
apiVersion: v1
kind: Pod
metadata: {{name: never}}
spec:
  containers:
  - name: c
    image: ferry.local/nothere:1
    imagePullPolicy: Never
    command: [sleep, "3600"]
"#
    )
}

#[test]
fn pods_run_on_containerd() {
    let Some(mut containerd) = Containerd::start() else {
        return;
    };
    let registry = containerd.registry("sekret-123");
    let Some(mut a) = cri_appliance(&containerd, 0) else {
        return;
    };
    let k = &a.kubectl;
    k.ok_stdin(&["apply", "-f", "-"], &main_yaml(&registry));

    // Init container first, then the others; the pod is Ready once httpd answers its probe.
    k.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=90s"]);
    let id = k.jsonpath(
        &["pod", "web"],
        "{.status.containerStatuses[?(@.name==\"web\")].containerID}",
    );
    assert!(id.starts_with("containerd://"), "{id}");
    let init = k.jsonpath(
        &["pod", "web"],
        "{.status.initContainerStatuses[0].state.terminated.reason}",
    );
    assert_eq!(init, "Completed");

    // Logs, read back and followed; the image's entrypoint ran the args.
    let mut follow = k.watch(&["logs", "-f", "web", "-c", "talker"]);
    follow.until(Duration::from_secs(30), |l| l == "init ran");
    follow.until(Duration::from_secs(30), |l| l == "tick 2");
    drop(follow);

    // Attach joins the container's own output (the runtime's Attach stream).
    let mut attached = k.watch(&["attach", "web", "-c", "talker"]);
    attached.until(Duration::from_secs(30), |l| l.starts_with("tick "));
    drop(attached);

    // Exec: output and exit code, as kubectl reports them.
    let out = k.run(&[
        "exec",
        "web",
        "-c",
        "talker",
        "--",
        "sh",
        "-c",
        "cat /work/init.txt; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "init ran\n");

    // The pod's IP answers from the node, with the configMap's file, updated in place.
    let ip = k.jsonpath(&["pod", "web"], "{.status.podIP}");
    assert!(ip.starts_with(pod_cidr(0).trim_end_matches("0/24")), "{ip}");
    let url = format!("http://{ip}:8080/index.html");
    assert_eq!(curl(&url).as_deref(), Some("v1"));
    k.ok(&[
        "patch",
        "configmap",
        "site",
        "-p",
        r#"{"data":{"index.html":"v2"}}"#,
    ]);
    // (Within the periodic refresh's minute: the ConfigMap's watch brings it.)
    wait_for(
        Duration::from_secs(30),
        "the configMap file updated",
        || (curl(&url).as_deref() == Some("v2")).then_some(()),
    );

    // kubectl port-forward reaches the port inside the sandbox's network namespace.
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut forwarding = k.watch(&["port-forward", "pod/web", &format!("{local}:8080")]);
    forwarding.until(Duration::from_secs(30), |l| {
        l.starts_with(&format!("Forwarding from 127.0.0.1:{local}"))
    });
    let forwarded = format!("http://127.0.0.1:{local}/index.html");
    wait_for(Duration::from_secs(30), "port-forward answers", || {
        (curl(&forwarded).as_deref() == Some("v2")).then_some(())
    });
    drop(forwarding);

    // A crashing container backs off with its exit code kept.
    wait_for(Duration::from_secs(60), "CrashLoopBackOff", || {
        let text = k.jsonpath(&["pod", "crashy"], "{.status.containerStatuses[0].state.waiting.reason} {.status.containerStatuses[0].lastState.terminated.exitCode}");
        (text == "CrashLoopBackOff 3").then_some(())
    });
    assert_eq!(k.ok(&["logs", "crashy", "--tail=1"]), "crashing\n");
    // `--previous` is the start before the latest: there is one once a second start has run
    // (after the first back-off).
    wait_for(Duration::from_secs(60), "crashy started again", || {
        let n = k.jsonpath(
            &["pod", "crashy"],
            "{.status.containerStatuses[0].restartCount}",
        );
        (n.parse::<u32>().unwrap_or(0) >= 2).then_some(())
    });
    assert_eq!(k.ok(&["logs", "crashy", "--previous"]), "crashing\n");

    // A failing liveness probe restarts its container.
    wait_for(Duration::from_secs(60), "the liveness restart", || {
        let n = k.jsonpath(
            &["pod", "live"],
            "{.status.containerStatuses[0].restartCount}",
        );
        (n.parse::<u32>().unwrap_or(0) >= 1).then_some(())
    });
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=live",
    ]);
    assert!(events.contains("failed liveness probe"), "{events}");

    // Over its memory limit: OOMKilled.
    wait_for(Duration::from_secs(60), "the OOM kill", || {
        let reason = k.jsonpath(
            &["pod", "oom"],
            "{.status.containerStatuses[0].state.terminated.reason}",
        );
        (reason == "OOMKilled").then_some(())
    });

    // A pod in the node's network has the node's address.
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/hostnet",
        "--timeout=90s",
    ]);
    assert_eq!(
        k.jsonpath(&["pod", "hostnet"], "{.status.podIP}"),
        k.jsonpath(&["pod", "hostnet"], "{.status.hostIP}")
    );

    // Pulled from the registry with the pod's pull secret; refused without it.
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/pulled",
        "--timeout=90s",
    ]);
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=pulled",
    ]);
    assert!(events.contains("Successfully pulled image"), "{events}");
    for (pod, says) in [("denied", "401"), ("missing", "not found")] {
        let message = wait_for(Duration::from_secs(60), "a failed pull", || {
            let reason = waiting_reason(k, pod);
            let message = k.jsonpath(
                &["pod", pod],
                "{.status.containerStatuses[0].state.waiting.message}",
            );
            matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff").then_some(message)
        });
        assert!(message.to_lowercase().contains(says), "{pod}: {message}");
        let events = k.ok(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod}"),
        ]);
        assert!(events.contains("Failed to pull image"), "{events}");
    }
    wait_for(Duration::from_secs(30), "ErrImageNeverPull", || {
        (waiting_reason(k, "never") == "ErrImageNeverPull").then_some(())
    });

    // A log past the size limit is rotated: the runtime reopens a new file, the old one is
    // kept beside it.
    let uid = k.jsonpath(&["pod", "chatty"], "{.metadata.uid}");
    let dir = a
        .dir
        .path()
        .join("data/nodes/local/pods")
        .join(format!("default_chatty_{uid}"))
        .join("c");
    let rotated = wait_for(Duration::from_secs(60), "the chatty log rotated", || {
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("0.log.2"))
    });
    let old = std::fs::read_to_string(&rotated).expect("the rotated log");
    assert!(old.contains("line 599 of a chatty container"), "{old}");
    let current = std::fs::metadata(dir.join("0.log"))
        .expect("a new log file")
        .len();
    assert!(current < 16 * 1024, "{current}");

    // Graceful deletion stops and removes the pod's containers.
    let ids: Vec<String> = k
        .jsonpath(
            &["pod", "web"],
            "{.status.containerStatuses[*].containerID}",
        )
        .split_whitespace()
        .map(|id| id.trim_start_matches("containerd://").to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    k.ok(&["delete", "pod", "web", "--timeout=60s"]);
    wait_for(Duration::from_secs(30), "the containers removed", || {
        ids.iter()
            .all(|id| !containerd.ctr(&["containers", "info", id]).status.success())
            .then_some(())
    });
    assert!(
        matches!(a.server.try_wait(), Ok(None)),
        "ferry up stays up through every bad pod"
    );
}

/// The tasks containerd runs, as `ctr tasks ls` prints them (`ID PID STATUS`).
fn tasks(containerd: &Containerd) -> Vec<String> {
    let out = containerd.ctr(&["tasks", "ls"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_node_agent_killed_with_sigkill_finds_its_containers_again() {
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let Some(mut a) = cri_appliance(&containerd, 1) else {
        return;
    };
    let steady = "apiVersion: v1\nkind: Pod\nmetadata: {name: steady}\nspec:\n  containers:\n  - name: c\n    image: ferry.local/busybox:1\n    command: [sh, -c, 'echo up; exec sleep 3600']\n";
    a.kubectl.ok_stdin(&["apply", "-f", "-"], steady);
    a.kubectl.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/steady",
        "--timeout=90s",
    ]);
    let id = a.kubectl.jsonpath(
        &["pod", "steady"],
        "{.status.containerStatuses[0].containerID}",
    );
    let before = tasks(&containerd);
    // The sandbox and the container.
    assert_eq!(before.len(), 2, "{before:?}");

    // The agent (inside ferry up) dies without a word; containerd runs on.
    a.server.crash_and_restart();
    wait_for(Duration::from_secs(60), "the agent back", || {
        a.kubectl
            .run(&[
                "wait",
                "--for=condition=Ready",
                "node/local",
                "--timeout=5s",
            ])
            .status
            .success()
            .then_some(())
    });
    // A pod created now runs, so the restarted agent has taken over what it found first.
    let next = steady.replace("steady", "next");
    a.kubectl.ok_stdin(&["apply", "-f", "-"], &next);
    a.kubectl
        .ok(&["wait", "--for=condition=Ready", "pod/next", "--timeout=90s"]);
    let k = &a.kubectl;
    assert_eq!(
        k.jsonpath(
            &["pod", "steady"],
            "{.status.containerStatuses[0].containerID}"
        ),
        id,
        "the container was found again, not started anew"
    );
    assert_eq!(
        k.jsonpath(
            &["pod", "steady"],
            "{.status.containerStatuses[0].restartCount}"
        ),
        "0"
    );
    let after = tasks(&containerd);
    for task in &before {
        assert!(
            after.contains(task),
            "{task} still runs with its pid: {after:?}"
        );
    }
    assert_eq!(
        after.len(),
        4,
        "only the new pod's sandbox and container were added: {after:?}"
    );
    assert_eq!(k.ok(&["logs", "steady"]), "up\n");
}
