//! Pods run for real on the `process` runtime (`ferry up --runtime process`), driven with the
//! real kubectl: a container's command runs with its environment, its output lands in the
//! node's CRI-format log files, a crashing container backs off (`CrashLoopBackOff`, its last
//! exit code kept), a command that does not exist is a StartError, a pod with
//! `restartPolicy: Never` that exits 0 Succeeds, a deleted pod's processes end, and SIGTERM to
//! `ferry up` ends every process it started. Probes: HTTP and exec readiness, a TCP startup
//! gate, an exec liveness probe that restarts its container, and the Service's endpoints.
//! Streams: exec, cp, attach, port-forward (kubectl's SPDY, tunnelled and plain, and the
//! Python client's WebSocket channels) and `nodes/NAME/proxy`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferry_testkit::appliance::Appliance;
use ferry_testkit::ferry::wait_for;

fn ferry_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}

/// A marker no other process of the machine (nor the other test) has in its command line.
fn marker(test: u32) -> String {
    format!("{}", 40_000 + (std::process::id() % 10_000) * 2 + test)
}

/// A pod CIDR of the test's own, so that parallel appliances never share a bridge or an address.
fn pod_cidr(test: u32) -> String {
    format!("10.{}.{}.0/24", 200 + test, std::process::id() % 250)
}

/// Whether pods get network namespaces of their own here (root, with the CNI plugins); CI
/// runs as root and installs them.
fn own_network() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let plugins = Path::new("/usr/lib/cni/bridge").exists();
    if std::env::var_os("CI").is_some() {
        assert!(
            root && plugins,
            "CI runs as root with containernetworking-plugins installed"
        );
    }
    root && plugins
}

/// The network namespaces left on the host for the pods `uids`.
fn namespaces_left(uids: &[String]) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| uids.iter().any(|u| l.contains(u.as_str())))
        .map(str::to_owned)
        .collect()
}

/// `ferry up --runtime process` with a node named `local` and a pod CIDR of the test's own,
/// once the node is registered, with that CIDR.
fn process_appliance(test: u32) -> Option<(Appliance, String)> {
    let cidr = pod_cidr(test);
    let a = Appliance::up(
        ferry_binary(),
        &[
            "--runtime",
            "process",
            "--node-name",
            "local",
            "--pod-cidr",
            &cidr,
        ],
    )?;
    wait_for(Duration::from_secs(60), "the node registered", || {
        a.kubectl
            .run(&["get", "node", "local"])
            .status
            .success()
            .then_some(())
    });
    Some((a, cidr))
}

/// Stops the appliance as an operator does (SIGTERM) and waits until it has exited.
fn stop(a: &mut Appliance) {
    a.server.terminate();
    assert!(
        matches!(a.server.try_wait(), Ok(Some(_))),
        "ferry up did not stop after SIGTERM"
    );
}

fn running(pattern: &str) -> bool {
    Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Every `*.log` under `dir`.
fn logs_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(logs_under(&path));
        } else if path.extension().is_some_and(|e| e == "log") {
            out.push(path);
        }
    }
    out
}

fn pod_yaml(seconds: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  containers:
  - name: web
    image: busybox
    command: [sh, -c, 'echo hello $(WHO) from $MY_NAME; echo warning >&2; exec sleep {seconds}']
    env:
    - {{name: WHO, value: world}}
    - name: MY_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
  - name: crash
    image: busybox
    command: [sh, -c, 'echo crashing; exit 3']
  - name: missing
    image: busybox
    command: [/no/such/program]
"#
    )
}

const ENVY: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: envy
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'echo $MODE $APP_mode; exec sleep 600']
    envFrom: [{configMapRef: {name: settings}, prefix: APP_}]
    env:
    - name: MODE
      valueFrom: {configMapKeyRef: {name: settings, key: mode}}
"#;

const ONCE: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: once
spec:
  restartPolicy: Never
  containers:
  - name: job
    image: busybox
    command: [sh, -c, 'echo done']
"#;

#[test]
fn pods_run_as_host_processes() {
    let Some((mut a, cidr)) = process_appliance(0) else {
        return;
    };
    let k = &a.kubectl;
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "node/local",
        "--timeout=60s",
    ]);
    let seconds = marker(0);
    k.ok_stdin(&["apply", "-f", "-"], &pod_yaml(&seconds));
    let pattern = format!("sleep {seconds}");

    // The container runs, with its environment, and its output is in the node's log files.
    wait_for(Duration::from_secs(60), "the container running", || {
        let state = k.jsonpath(
            &["pod", "hello"],
            "{.status.containerStatuses[?(@.name==\"web\")].state.running.startedAt}",
        );
        (!state.is_empty() && running(&pattern)).then_some(())
    });
    // Its own network namespace and an address of the node's pod CIDR (as root), else the
    // host's network.
    let ip = k.jsonpath(&["pod", "hello"], "{.status.podIP}");
    let uid = k.jsonpath(&["pod", "hello"], "{.metadata.uid}");
    if own_network() {
        let prefix = cidr.trim_end_matches("0/24");
        assert!(ip.starts_with(prefix), "{ip} is not in {cidr}");
        assert_eq!(namespaces_left(std::slice::from_ref(&uid)).len(), 1);
    } else {
        assert_eq!(ip, "127.0.0.1");
    }
    let nodes = a.dir.path().join("data").join("nodes").join("local");
    let log = wait_for(Duration::from_secs(30), "the web container's log", || {
        logs_under(&nodes)
            .into_iter()
            .find(|p| p.parent().is_some_and(|d| d.ends_with("web")))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .filter(|t| t.contains("hello world from hello"))
    });
    assert!(log.contains(" stdout F hello world from hello"), "{log}");
    assert!(log.contains(" stderr F warning"), "{log}");

    // The crashing container backs off and keeps its last exit code; the missing program is
    // a StartError.
    let crash = wait_for(Duration::from_secs(60), "CrashLoopBackOff", || {
        let text = k.jsonpath(&["pod", "hello"], "{.status.containerStatuses[?(@.name==\"crash\")].state.waiting.reason} {.status.containerStatuses[?(@.name==\"crash\")].lastState.terminated.exitCode}");
        (text == "CrashLoopBackOff 3").then_some(text)
    });
    assert_eq!(crash, "CrashLoopBackOff 3");
    assert_eq!(
        k.jsonpath(
            &["pod", "hello"],
            "{.status.containerStatuses[?(@.name==\"missing\")].lastState.terminated.reason}"
        ),
        "StartError"
    );
    // kubectl logs reads them back through the apiserver and the node's endpoint.
    // (stdout and stderr are two pipes: their lines may interleave either way)
    let logs = k.ok(&["logs", "hello", "-c", "web"]);
    let mut lines: Vec<&str> = logs.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["hello world from hello", "warning"], "{logs}");
    assert_eq!(
        k.ok(&["logs", "hello", "-c", "crash", "--tail=1"]),
        "crashing\n"
    );
    let stamped = k.ok(&[
        "logs",
        "hello",
        "-c",
        "web",
        "--timestamps",
        "--limit-bytes=60",
    ]);
    // Two stamped lines are longer than 60 bytes: the answer is cut at exactly 60.
    assert!(
        stamped.len() == 60 && stamped.starts_with("20") && stamped.contains("Z "),
        "{stamped}"
    );
    // kubectl picks the first container itself; the API asks for one.
    let err = k.fails(&["get", "--raw", "/api/v1/namespaces/default/pods/hello/log"]);
    assert!(
        err.contains(
            "a container name must be specified for pod hello, choose one of: [web crash missing]"
        ),
        "{err}"
    );
    let err = k.fails(&["logs", "hello", "-c", "nope"]);
    assert!(
        err.contains("container nope is not valid for pod hello"),
        "{err}"
    );
    let described = k.ok(&["describe", "pod", "hello"]);
    assert!(described.contains("/no/such/program"), "{described}");

    // An environment from a ConfigMap that does not exist yet: CreateContainerConfigError
    // until it does.
    k.ok_stdin(&["apply", "-f", "-"], ENVY);
    let reason = wait_for(
        Duration::from_secs(30),
        "CreateContainerConfigError",
        || {
            let text = k.jsonpath(&["pod", "envy"], "{.status.containerStatuses[0].state.waiting.reason}: {.status.containerStatuses[0].state.waiting.message}");
            text.starts_with("CreateContainerConfigError")
                .then_some(text)
        },
    );
    assert_eq!(
        reason,
        "CreateContainerConfigError: configmap \"settings\" not found"
    );
    k.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ]);
    let out = wait_for(
        Duration::from_secs(30),
        "the environment from the ConfigMap",
        || {
            let text = String::from_utf8_lossy(&k.run(&["logs", "envy"]).stdout).into_owned();
            (!text.is_empty()).then_some(text)
        },
    );
    assert_eq!(out, "fast fast\n");

    // Run once, to completion.
    k.ok_stdin(&["apply", "-f", "-"], ONCE);
    wait_for(Duration::from_secs(60), "the pod Succeeded", || {
        (k.jsonpath(&["pod", "once"], "{.status.phase}") == "Succeeded").then_some(())
    });
    // Following the log of a container that has ended returns once it is read.
    assert_eq!(k.ok(&["logs", "-f", "once"]), "done\n");
    // A finished pod gives its network back (its IP stays in its status), as on a kubelet.
    let once = k.jsonpath(&["pod", "once"], "{.metadata.uid}");
    wait_for(
        Duration::from_secs(30),
        "the finished pod's namespace gone",
        || {
            namespaces_left(std::slice::from_ref(&once))
                .is_empty()
                .then_some(())
        },
    );
    assert!(!k.jsonpath(&["pod", "once"], "{.status.podIP}").is_empty());

    // A deleted pod's processes end, and its network namespace goes.
    k.ok(&["delete", "pod", "hello", "envy", "--timeout=60s"]);
    wait_for(Duration::from_secs(30), "the pod's process ended", || {
        (!running(&pattern) && namespaces_left(std::slice::from_ref(&uid)).is_empty()).then_some(())
    });

    // SIGTERM to the appliance ends what it started.
    k.ok_stdin(&["apply", "-f", "-"], &pod_yaml(&seconds));
    wait_for(
        Duration::from_secs(60),
        "the container running again",
        || running(&pattern).then_some(()),
    );
    let again = k.jsonpath(&["pod", "hello"], "{.metadata.uid}");
    stop(&mut a);
    assert!(!running(&pattern), "a pod's process outlived ferry up");
    assert_eq!(namespaces_left(&[again]), Vec::<String>::new());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn probed(port: u16, seconds: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {{app: web}}
spec:
  containers:
  - name: server
    image: python
    command: [python3, -m, http.server, "{port}"]
    ports: [{{name: http, containerPort: {port}}}]
    readinessProbe:
      httpGet: {{path: /, port: http}}
      periodSeconds: 1
  - name: gated
    image: busybox
    command: [sh, -c, 'sleep 2; touch ready; exec sleep {seconds}']
    startupProbe:
      tcpSocket: {{port: {port}}}
      periodSeconds: 1
      failureThreshold: 30
    readinessProbe:
      exec: {{command: [test, -f, ready]}}
      periodSeconds: 1
  - name: mortal
    image: busybox
    command: [sh, -c, 'touch alive; sleep 2; rm alive; exec sleep {seconds}']
    livenessProbe:
      exec: {{command: [test, -f, alive]}}
      periodSeconds: 1
      failureThreshold: 2
"#
    )
}

#[test]
fn probes_decide_readiness_and_restart_containers() {
    let Some((mut a, _)) = process_appliance(1) else {
        return;
    };
    let k = &a.kubectl;
    let port = free_port();
    let seconds = marker(1);
    k.ok_stdin(&["apply", "-f", "-"], &probed(port, &seconds));

    // Not ready until the exec readiness probe finds its file (after 2 s); the HTTP server's
    // readiness and the startup gate pass before.
    let ready = |name: &str| {
        k.ok(&[
            "get",
            "pod",
            "web",
            "-o",
            &format!("jsonpath={{.status.containerStatuses[?(@.name==\"{name}\")].ready}}"),
        ])
    };
    wait_for(Duration::from_secs(30), "the server ready", || {
        (ready("server") == "true").then_some(())
    });
    k.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=30s"]);
    assert_eq!(ready("gated"), "true");
    // Ready, it is an address of its Service.
    let ip = k.jsonpath(&["pod", "web"], "{.status.podIP}");
    wait_for(
        Duration::from_secs(30),
        "the pod in its Service's endpoints",
        || {
            let listed = k.jsonpath(&["endpoints", "web"], "{.subsets[0].addresses[0].ip}");
            (listed == ip).then_some(())
        },
    );
    // The host reaches the server at the pod's IP.
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import urllib.request; print(urllib.request.urlopen('http://{ip}:{port}/', timeout=5).status)"),
        ])
        .output()
        .expect("python3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The liveness probe fails once its file is gone: the container is killed and restarted.
    wait_for(
        Duration::from_secs(30),
        "the mortal container restarted",
        || {
            let restarts = k.jsonpath(
                &["pod", "web"],
                "{.status.containerStatuses[?(@.name==\"mortal\")].restartCount}",
            );
            (restarts.parse::<u32>().unwrap_or(0) >= 1).then_some(())
        },
    );
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
    ]);
    assert!(
        events.contains("Liveness probe failed")
            && events.contains("failed liveness probe, will be restarted"),
        "{events}"
    );

    // Lifecycle hooks: postStart after the start, preStop before the stop; a failing
    // postStart kills the container and its restart policy restarts it.
    let marks = a.dir.path().join("hooks");
    std::fs::create_dir_all(&marks).expect("hooks dir");
    k.ok_stdin(
        &["apply", "-f", "-"],
        &hooked_yaml(&marks.display().to_string(), &seconds),
    );
    wait_for(Duration::from_secs(30), "the postStart hook ran", || {
        marks.join("post").exists().then_some(())
    });
    wait_for(
        Duration::from_secs(30),
        "the failing postStart restarts its container",
        || {
            let events = k.ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=hooked",
            ]);
            let restarts = k.jsonpath(
                &["pod", "hooked"],
                "{.status.containerStatuses[?(@.name==\"bad\")].restartCount}",
            );
            (events.contains("FailedPostStartHook") && restarts.parse::<u32>().unwrap_or(0) >= 1)
                .then_some(())
        },
    );
    assert!(!marks.join("pre").exists());
    k.ok(&["delete", "pod", "hooked", "--timeout=60s"]);
    wait_for(Duration::from_secs(30), "the preStop hook ran", || {
        marks.join("pre").exists().then_some(())
    });

    // Graceful deletion: the pod shows Terminating with its grace period while its node stops
    // it; a container that handles SIGTERM ends on it, one that ignores it is killed when the
    // grace period is over; then the node agent deletes the pod for good.
    k.ok_stdin(
        &["apply", "-f", "-"],
        &graceful_yaml(&marks.display().to_string(), &seconds),
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/graceful",
        "--timeout=30s",
    ]);
    k.ok(&["delete", "pod", "graceful", "--wait=false"]);
    let shown = k.ok(&["get", "pod", "graceful", "--no-headers"]);
    assert!(shown.contains("Terminating"), "{shown}");
    assert!(
        running(&format!("stubborn {seconds}")),
        "the stubborn container runs on within its grace period"
    );
    assert_eq!(
        k.jsonpath(
            &["pod", "graceful"],
            "{.metadata.deletionGracePeriodSeconds}"
        ),
        "3"
    );
    k.ok(&["wait", "--for=delete", "pod/graceful", "--timeout=30s"]);
    assert_eq!(
        std::fs::read_to_string(marks.join("term")).unwrap_or_default(),
        "TERM\n",
        "the polite container saw SIGTERM"
    );
    assert!(!running(&format!("stubborn {seconds}")));

    k.ok(&["delete", "pod", "web", "--timeout=60s"]);
    let pattern = format!("sleep {seconds}");
    wait_for(Duration::from_secs(30), "the pod's processes ended", || {
        (!running(&pattern) && !running(&format!("http.server {port}"))).then_some(())
    });
    stop(&mut a);
}

fn graceful_yaml(marks: &str, seconds: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: polite
    image: busybox
    command: [sh, -c, 'trap "echo TERM > {marks}/term; exit 0" TERM; while :; do sleep 0.2; done']
  - name: stubborn
    image: busybox
    command: [sh, -c, 'trap "" TERM; while :; do sleep 0.2; done', stubborn, "{seconds}"]
"#
    )
}

fn hooked_yaml(marks: &str, seconds: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: good
    image: busybox
    command: [sleep, "{seconds}"]
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, 'echo started > {marks}/post']}}}}
      preStop: {{exec: {{command: [sh, -c, 'echo stopping > {marks}/pre']}}}}
  - name: bad
    image: busybox
    command: [sleep, "{seconds}"]
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, 'exit 1']}}}}
"#
    )
}

fn volumes_yaml(mnt: &str, seconds: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg}}
data: {{greeting: hello}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sec}}
stringData: {{token: s3cr3t}}
---
apiVersion: v1
kind: Pod
metadata: {{name: vols}}
spec:
  containers:
  - name: reader
    image: busybox
    command: [sh, -c, 'cat {mnt}/config/greeting; echo; cat {mnt}/secret/tok; echo; stat -L -c %a {mnt}/secret/tok; cat {mnt}/info/name; echo; echo shared > {mnt}/scratch/file; pwd; exec sleep {seconds}']
    workingDir: {mnt}/scratch
    volumeMounts:
    - {{name: config, mountPath: {mnt}/config}}
    - {{name: secret, mountPath: {mnt}/secret}}
    - {{name: info, mountPath: {mnt}/info}}
    - {{name: scratch, mountPath: {mnt}/scratch}}
  - name: peer
    image: busybox
    command: [sh, -c, 'while [ ! -f {mnt}/other/file ]; do sleep 0.2; done; cat {mnt}/other/file; exec sleep {seconds}']
    volumeMounts:
    - {{name: scratch, mountPath: {mnt}/other}}
  - name: watcher
    image: busybox
    command: [sh, -c, 'last=; while :; do g=$(cat {mnt}/config/greeting); if [ "$g" != "$last" ]; then echo "$g"; last=$g; fi; sleep 0.2; done']
    volumeMounts:
    - {{name: config, mountPath: {mnt}/config}}
  volumes:
  - name: config
    configMap: {{name: cfg}}
  - name: secret
    secret:
      secretName: sec
      items: [{{key: token, path: tok, mode: 0400}}]
  - name: info
    downwardAPI:
      items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}]
  - name: scratch
    emptyDir: {{}}
"#
    )
}

const HOG: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: python
    command: [python3, -c, 'x = bytearray(256 * 1024 * 1024); print(len(x))']
    resources:
      limits: {memory: 64Mi, cpu: 500m}
"#;

fn waiting_yaml(mnt: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: waiting}}
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'echo started; exec sleep 600']
    volumeMounts: [{{name: late, mountPath: {mnt}/late}}]
  volumes:
  - name: late
    configMap: {{name: late}}
"#
    )
}

#[test]
fn volumes_are_mounted_and_limits_enforced() {
    let Some((mut a, _)) = process_appliance(2) else {
        return;
    };
    if !own_network() {
        // Mount namespaces need root (CI runs as root; own_network asserts it there).
        return;
    }
    let k = &a.kubectl;
    let mnt = a.dir.path().join("mnt").display().to_string();
    let seconds = marker(2);
    k.ok_stdin(&["apply", "-f", "-"], &volumes_yaml(&mnt, &seconds));
    let reader = wait_for(Duration::from_secs(60), "the reader's output", || {
        let out = k.run(&["logs", "vols", "-c", "reader"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.lines().count() >= 5).then_some(text)
    });
    assert_eq!(
        reader,
        format!("hello\ns3cr3t\n400\nvols\n{mnt}/scratch\n"),
        "configMap, secret item with its mode, downwardAPI, and the working directory on a volume"
    );
    let peer = wait_for(Duration::from_secs(30), "the peer's output", || {
        let text = k.ok(&["logs", "vols", "-c", "peer"]);
        (!text.is_empty()).then_some(text)
    });
    assert_eq!(
        peer, "shared\n",
        "an emptyDir is shared by the pod's containers"
    );
    // A ConfigMap changed in place: the files of the mounted volume follow it.
    k.ok(&[
        "patch",
        "configmap",
        "cfg",
        "-p",
        r#"{"data":{"greeting":"bonjour"}}"#,
    ]);
    wait_for(Duration::from_secs(40), "the volume's file updated", || {
        let text = k.ok(&["logs", "vols", "-c", "watcher"]);
        (text == "hello\nbonjour\n").then_some(())
    });
    // The mounts are the pod's own: the host sees none of them.
    assert!(!Path::new(&mnt).join("config").join("greeting").exists());

    // A volume whose ConfigMap is missing holds the pod until the ConfigMap exists.
    k.ok_stdin(&["apply", "-f", "-"], &waiting_yaml(&mnt));
    wait_for(Duration::from_secs(30), "FailedMount", || {
        let events = k.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=waiting",
        ]);
        events
            .contains("MountVolume.SetUp failed for volume \"late\" : configmap \"late\" not found")
            .then_some(())
    });
    assert_eq!(
        k.jsonpath(
            &["pod", "waiting"],
            "{.status.containerStatuses[0].state.waiting.reason}"
        ),
        "ContainerCreating"
    );
    k.ok(&["create", "configmap", "late", "--from-literal=k=v"]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/waiting",
        "--timeout=30s",
    ]);

    // Over its memory limit, a container is OOM-killed inside its own cgroup, and says so.
    k.ok_stdin(&["apply", "-f", "-"], HOG);
    let ended = wait_for(Duration::from_secs(60), "the hog OOM-killed", || {
        let text = k.jsonpath(&["pod", "hog"], "{.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}");
        (!text.trim().is_empty()).then_some(text)
    });
    assert_eq!(ended, "OOMKilled 137");
    assert_eq!(k.jsonpath(&["pod", "hog"], "{.status.phase}"), "Failed");

    k.ok(&["delete", "pod", "vols", "waiting", "hog", "--timeout=60s"]);
    stop(&mut a);
    assert!(!running(&format!("sleep {seconds}")));
}

fn shell_yaml(mnt: &str, seconds: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: shell-config}}
data: {{greeting: hello}}
---
apiVersion: v1
kind: Pod
metadata: {{name: shell}}
spec:
  containers:
  - name: sh
    image: busybox
    command: [sh, -c, 'exec sleep {seconds}']
    env: [{{name: GREETING, value: hi}}]
    workingDir: {mnt}/scratch
    volumeMounts:
    - {{name: config, mountPath: {mnt}/config}}
    - {{name: scratch, mountPath: {mnt}/scratch}}
    - {{name: cache, mountPath: {mnt}/cache}}
  volumes:
  - name: config
    configMap: {{name: shell-config}}
  - name: scratch
    emptyDir: {{}}
  - name: cache
    emptyDir: {{medium: Memory, sizeLimit: 8Mi}}
"#
    )
}

#[test]
fn kubectl_exec_and_cp_reach_into_containers() {
    let Some((mut a, _)) = process_appliance(3) else {
        return;
    };
    let k = &a.kubectl;
    let mnt = a.dir.path().join("mnt").display().to_string();
    let seconds = marker(3);
    k.ok_stdin(&["apply", "-f", "-"], &shell_yaml(&mnt, &seconds));
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/shell",
        "--timeout=60s",
    ]);

    // Output, errors and the exit code come back as kubectl exec's own (WebSocket, v5).
    let out = k.run(&[
        "exec",
        "shell",
        "--",
        "sh",
        "-c",
        "echo out $GREETING; echo err >&2; exit 3",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out hi\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("err\n"), "{stderr}");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    // Stdin to its end: kubectl closes it (the v5 close signal) and the command finishes.
    assert_eq!(
        k.ok_stdin(
            &["exec", "-i", "shell", "--", "sh", "-c", "cat; echo done"],
            "piped\n"
        ),
        "piped\ndone\n"
    );
    if own_network() {
        // The command runs where the container runs: its mounts, working directory and network.
        assert_eq!(
            k.ok(&[
                "exec",
                "shell",
                "--",
                "cat",
                &format!("{mnt}/config/greeting")
            ]),
            "hello"
        );
        assert_eq!(
            k.ok(&["exec", "shell", "--", "pwd"]),
            format!("{mnt}/scratch\n")
        );
        // Its own /etc/hosts, naming the pod at its IP; a memory-backed emptyDir is a tmpfs.
        let ip = k.jsonpath(&["pod", "shell"], "{.status.podIP}");
        let hosts = k.ok(&["exec", "shell", "--", "cat", "/etc/hosts"]);
        assert!(hosts.contains(&format!("{ip}\tshell\n")), "{hosts}");
        assert_eq!(
            k.ok(&[
                "exec",
                "shell",
                "--",
                "stat",
                "-f",
                "-c",
                "%T",
                &format!("{mnt}/cache")
            ]),
            "tmpfs\n"
        );
        let inside = k.ok(&["exec", "shell", "--", "readlink", "/proc/self/ns/net"]);
        let host = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        assert_ne!(inside.trim(), host.display().to_string());

        // kubectl cp, both ways (tar through exec).
        let local = a.dir.path().join("local.txt");
        std::fs::write(&local, "copied across\n").expect("write");
        let target = format!("shell:{mnt}/scratch/copied.txt");
        k.ok(&["cp", &local.display().to_string(), &target]);
        assert_eq!(
            k.ok(&[
                "exec",
                "shell",
                "--",
                "cat",
                &format!("{mnt}/scratch/copied.txt")
            ]),
            "copied across\n"
        );
        let back = a.dir.path().join("back.txt");
        k.ok(&["cp", &target, &back.display().to_string()]);
        assert_eq!(
            std::fs::read_to_string(&back).expect("copied back"),
            "copied across\n"
        );
    }
    // A terminal (kubectl exec -it, given one by script(1)): the command's controlling tty.
    let program = k.command().get_program().to_string_lossy().into_owned();
    let out = Command::new("script")
        .args([
            "-qec",
            &format!(
                "{program} exec -it shell -- sh -c 'tty; echo cols=$(stty size | cut -d\" \" -f2)'"
            ),
            "/dev/null",
        ])
        .env("KUBECONFIG", k.kubeconfig())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("cols="), "{text}");

    // The official Python client's exec (v4.channel.k8s.io).
    if let Some(python) = ferry_testkit::tools::python_client() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/python_exec.py");
        let out = Command::new(python)
            .arg(&script)
            .arg("shell")
            .env("KUBECONFIG", k.kubeconfig())
            .output()
            .expect("python runs");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(report.contains("output: from python hi"), "{report}");
        assert!(report.contains("stdout: got this"), "{report}");
        assert!(report.contains("exit: 4"), "{report}");
    }

    // Bad input: a container the pod has not, a program the host has not.
    let err = k.fails(&["exec", "shell", "-c", "nope", "--", "true"]);
    assert!(
        err.contains("container nope is not valid for pod shell"),
        "{err}"
    );
    let out = k.run(&["exec", "shell", "--", "/no/such/program"]);
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/no/such/program"), "{stderr}");

    // kubectl attach: the container's own output, from its log as it is written.
    let ticker = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: ticker}}\nspec:\n  containers:\n  - name: t\n    image: busybox\n    command: [sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done', '{seconds}']\n"
    );
    k.ok_stdin(&["apply", "-f", "-"], &ticker);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/ticker",
        "--timeout=60s",
    ]);
    let mut attached = k.watch(&["attach", "ticker"]);
    let first = attached.until(Duration::from_secs(30), |l| l.starts_with("tick "));
    let number = |l: &str| l.trim_start_matches("tick ").parse::<u32>().unwrap_or(0);
    let later = attached.until(Duration::from_secs(30), |l| l.starts_with("tick "));
    assert!(number(&later) > number(&first), "{first} then {later}");
    drop(attached);

    // Stdin through attach: `kubectl run -i --rm` (stdinOnce: the end of kubectl's stdin is
    // the end of the command's), a container keeping its stdin across attaches, and
    // `kubectl run -it` (a terminal of its own, the exit code returned).
    let out = k.ok_stdin(
        &[
            "run",
            "-i",
            "--rm",
            "once",
            "--image=busybox",
            "--restart=Never",
            "--",
            "sh",
            "-c",
            &format!("cat; echo done $? {seconds}"),
        ],
        "piped line\n",
    );
    assert!(
        out.contains(&format!("piped line\ndone 0 {seconds}\n")),
        "{out}"
    );
    let reader = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: reader}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: r\n    image: busybox\n    stdin: true\n    command: [sh, -c, 'read a; read b; echo \"got $a $b\"', '{seconds}']\n"
    );
    k.ok_stdin(&["apply", "-f", "-"], &reader);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/reader",
        "--timeout=60s",
    ]);
    let out = k.ok_stdin(&["attach", "-i", "reader"], "one\ntwo\n");
    assert!(out.contains("got one two"), "{out}");
    let err = k.fails_stdin(&["attach", "-i", "ticker"], "x\n");
    assert!(err.contains("without stdin"), "{err}");
    let out = Command::new("script")
        .args([
            "-qec",
            // (Output before the attach is not shown, as on Kubernetes: the command waits
            // for its input before it speaks.)
            &format!("{program} run -it --rm tty --image=busybox --restart=Never -- sh -c 'read line; tty; echo typed $line; exit 3'"),
            "/dev/null",
        ])
        .env("KUBECONFIG", k.kubeconfig())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            // Typed at once: the terminal keeps it until kubectl has attached and reads it.
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(b"words\n")?;
            }
            child.wait_with_output()
        })
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("typed words"), "{text}");
    assert_eq!(out.status.code(), Some(3), "{text}");

    k.ok(&["delete", "pod", "shell", "ticker", "--timeout=60s"]);
    stop(&mut a);
    assert!(!running(&format!("sleep {seconds}")));
}

fn steady_yaml(seconds: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: steady}}
spec:
  containers:
  - name: tick
    image: busybox
    command: [sh, -c, 'i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done', steady, "{seconds}"]
---
apiVersion: v1
kind: Pod
metadata: {{name: finished}}
spec:
  restartPolicy: Never
  containers:
  - name: once
    image: busybox
    command: [sh, -c, 'echo done once']
"#
    )
}

fn pids_of(pattern: &str) -> String {
    let out = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_node_agent_killed_with_sigkill_adopts_its_running_pods() {
    let Some((mut a, _)) = process_appliance(4) else {
        return;
    };
    let k = &a.kubectl;
    let seconds = marker(4);
    k.ok_stdin(&["apply", "-f", "-"], &steady_yaml(&seconds));
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/steady",
        "--timeout=60s",
    ]);
    wait_for(
        Duration::from_secs(60),
        "the finished pod Succeeded",
        || (k.jsonpath(&["pod", "finished"], "{.status.phase}") == "Succeeded").then_some(()),
    );
    let pattern = format!("steady {seconds}");
    let before = pids_of(&pattern);
    assert!(!before.is_empty(), "the container runs");
    let id = k.jsonpath(
        &["pod", "steady"],
        "{.status.containerStatuses[0].containerID}",
    );
    let ticks_before = k.ok(&["logs", "steady"]).lines().count();

    // SIGKILL to the whole appliance (its node agent included), then it starts again.
    a.server.crash_and_restart();
    assert_eq!(
        pids_of(&pattern),
        before,
        "the container ran on while no agent was there"
    );
    let k = &a.kubectl;
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "node/local",
        "--timeout=60s",
    ]);
    // The pod is taken over: the same container, not started again, still Ready.
    wait_for(Duration::from_secs(30), "the log going on", || {
        (k.ok(&["logs", "steady"]).lines().count() > ticks_before + 10).then_some(())
    });
    assert_eq!(
        pids_of(&pattern),
        before,
        "the container was not started twice"
    );
    assert_eq!(
        k.jsonpath(
            &["pod", "steady"],
            "{.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].ready}"
        ),
        format!("{id} 0 true")
    );
    // The log runs on without a gap: every tick is there once, in order.
    let logs = k.ok(&["logs", "steady"]);
    let numbers: Vec<u64> = logs
        .lines()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{logs}");
    assert_eq!(
        k.ok(&["exec", "steady", "--", "echo", "still here"]),
        "still here\n"
    );
    // A pod that had finished is not run again.
    assert_eq!(
        k.jsonpath(&["pod", "finished"], "{.status.phase}"),
        "Succeeded"
    );
    assert_eq!(k.ok(&["logs", "finished"]), "done once\n");

    k.ok(&["delete", "pod", "steady", "finished", "--timeout=60s"]);
    wait_for(
        Duration::from_secs(30),
        "the adopted container stopped",
        || pids_of(&pattern).is_empty().then_some(()),
    );
    stop(&mut a);
}

fn sleeper(name: &str, seconds: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, 'exec sleep {seconds}', {name}]\n"
    )
}

#[test]
fn pods_deleted_while_their_agent_was_away_go_when_it_returns() {
    // The appliance runs no node; a `ferry node --runtime process` of its own runs the pods.
    let Some(a) = Appliance::up(ferry_binary(), &["--nodes", "0"]) else {
        return;
    };
    let k = &a.kubectl;
    let root = a.dir.path().join("agent").display().to_string();
    let cidr = pod_cidr(5);
    let args = [
        "--name",
        "away",
        "--runtime",
        "process",
        "--root-dir",
        &root,
        "--pod-cidr",
        &cidr,
        "--endpoint-listen",
        "127.0.0.1:0",
    ];
    let mut node = a.node(&args);
    a.wait_nodes_ready(&["away"]);
    // (markers of one length: neither is a part of the other)
    let (gone, kept) = (format!("{}7", marker(5)), format!("{}1", marker(5)));
    k.ok_stdin(&["apply", "-f", "-"], &sleeper("gone", &gone));
    k.ok_stdin(&["apply", "-f", "-"], &sleeper("kept", &kept));
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/gone",
        "pod/kept",
        "--timeout=60s",
    ]);
    let kept_pids = pids_of(&format!("sleep {kept}"));

    // The agent is killed; its pods run on. One is deleted for good meanwhile.
    node.kill();
    assert!(
        running(&format!("sleep {gone}")),
        "the pod outlived its agent"
    );
    k.ok(&["delete", "pod", "gone", "--force", "--grace-period=0"]);

    // Back, the agent stops and removes the deleted pod, and keeps the other as it was.
    let mut node = a.node(&args);
    wait_for(
        Duration::from_secs(30),
        "the deleted pod's process stopped",
        || (!running(&format!("sleep {gone}"))).then_some(()),
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "node/away",
        "--timeout=60s",
    ]);
    assert_eq!(pids_of(&format!("sleep {kept}")), kept_pids);
    assert_eq!(
        k.jsonpath(
            &["pod", "kept"],
            "{.status.containerStatuses[0].restartCount}"
        ),
        "0"
    );
    // Only the kept pod's directory stays (the other's goes once its sandbox is removed).
    wait_for(
        Duration::from_secs(30),
        "the deleted pod's directory gone",
        || {
            let left = std::fs::read_dir(Path::new(&root).join("away").join("pods"))
                .map(|d| d.count())
                .unwrap_or(0);
            (left == 1).then_some(())
        },
    );

    k.ok(&["delete", "pod", "kept", "--timeout=60s"]);
    assert!(!running(&format!("sleep {kept}")));
    node.terminate();
}

/// A pod whose HTTP server listens on its own loopback only (reachable by port-forward, which
/// dials inside the pod's network namespace, and by nothing else), serving a known file.
fn served_yaml(mnt: &str, port: u16, seconds: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: served}}
spec:
  containers:
  - name: http
    image: python
    command: [sh, -c, 'seq 1 400000 > {mnt}/www/big; exec python3 -m http.server --bind 127.0.0.1 --directory {mnt}/www {port}', '{seconds}']
    volumeMounts:
    - {{name: www, mountPath: {mnt}/www}}
  volumes:
  - name: www
    emptyDir: {{}}
"#
    )
}

/// What `served` serves at `/big`.
fn big_file() -> Vec<u8> {
    (1..=400_000)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// `GET path` over HTTP/1.0 at `127.0.0.1:port`: the body of a 200.
fn fetch(port: u16, path: &str) -> Result<Vec<u8>, String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {:?}", String::from_utf8_lossy(&answer)))?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    if !head.starts_with("HTTP/1.0 200") {
        return Err(head);
    }
    Ok(answer[split + 4..].to_vec())
}

#[test]
fn kubectl_port_forward_and_node_proxy_reach_the_node() {
    let Some((mut a, _)) = process_appliance(6) else {
        return;
    };
    let k = &a.kubectl;
    let mnt = a.dir.path().join("mnt").display().to_string();
    let seconds = marker(6);
    let port = free_port();
    k.ok_stdin(&["apply", "-f", "-"], &served_yaml(&mnt, port, &seconds));
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/served",
        "--timeout=60s",
    ]);
    let want = big_file();

    // kubectl 1.31+ tunnels SPDY through a WebSocket first; then the plain SPDY upgrade.
    for (env, what) in [
        (vec![], "SPDY through a WebSocket"),
        (vec![("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")], "SPDY"),
    ] {
        let local = free_port();
        let mut forwarding = k.watch_env(
            &["port-forward", "pod/served", &format!("{local}:{port}")],
            &env,
        );
        forwarding.until(Duration::from_secs(30), |l| {
            l.starts_with(&format!("Forwarding from 127.0.0.1:{local}"))
        });
        let body = wait_for(Duration::from_secs(30), "the pod's server answers", || {
            fetch(local, "/big").ok()
        });
        assert!(
            body == want,
            "{what}: {} bytes of {} came back intact",
            body.len(),
            want.len()
        );
        // Connections side by side, each its own pair of streams.
        let fetches: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || fetch(local, "/big")))
            .collect();
        for f in fetches {
            let body = f.join().expect("joins").expect("fetched");
            assert!(body == want, "{what}: a parallel fetch came back intact");
        }
        drop(forwarding);
    }

    if own_network() {
        // The server listens on the pod's loopback: from the node, its IP does not answer.
        let ip = k.jsonpath(&["pod", "served"], "{.status.podIP}");
        let direct = std::net::TcpStream::connect_timeout(
            &format!("{ip}:{port}").parse().expect("an address"),
            Duration::from_secs(2),
        );
        assert!(
            direct.is_err(),
            "the server is not reachable at {ip}:{port}"
        );
    }

    // A port nothing listens on: the error comes back on the error stream, as a kubelet's.
    let local = free_port();
    let log = a.dir.path().join("port-forward.err");
    let mut closed = k
        .command()
        .args(["port-forward", "pod/served", &format!("{local}:1")])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("kubectl starts");
    let refused = wait_for(Duration::from_secs(30), "the refusal is reported", || {
        // Each connection attempt makes one forward; the first may precede the listener.
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", local)) {
            use std::io::Read;
            let mut sink = Vec::new();
            if let Err(e) = s.read_to_end(&mut sink) {
                eprintln!("reading a refused forward: {e}");
            }
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("error forwarding port 1 to pod default/served")
            .then_some(text)
    });
    assert!(
        refused.contains("failed to connect to localhost:1"),
        "{refused}"
    );
    let ended = wait_for(Duration::from_secs(30), "kubectl gives up", || {
        closed.try_wait().ok().flatten()
    });
    assert!(!ended.success(), "kubectl port-forward exits with an error");

    // The official Python client (the kubelet's WebSocket channel protocol).
    if let Some(python) = ferry_testkit::tools::python_client() {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/python_portforward.py");
        let out = Command::new(python)
            .arg(&script)
            .args(["served", "default", &port.to_string(), "/big"])
            .env("KUBECONFIG", k.kubeconfig())
            .output()
            .expect("python runs");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = a.dir.path().join("big.expected");
        std::fs::write(&expected, &want).expect("write");
        let sum = Command::new("sha256sum")
            .arg(&expected)
            .output()
            .expect("sha256sum");
        let sum = String::from_utf8_lossy(&sum.stdout);
        let sum = sum.split_whitespace().next().unwrap_or_default();
        assert!(report.contains("status: HTTP/1.0 200 OK"), "{report}");
        assert!(
            report.contains(&format!("body: {} bytes sha256 {sum}", want.len())),
            "{report}"
        );
        assert!(report.contains("error: None"), "{report}");
        assert!(
            report.contains("closed port error: error forwarding port 1 to pod default/served"),
            "{report}"
        );
    }

    // nodes/proxy: the node endpoint, through the apiserver (the server's request log).
    assert_eq!(
        k.ok(&["get", "--raw", "/api/v1/nodes/local/proxy/healthz"]),
        "ok"
    );
    let log = k.ok(&[
        "get",
        "--raw",
        "/api/v1/nodes/local/proxy/containerLogs/default/served/http?tailLines=50",
    ]);
    assert!(log.contains("\"GET /big HTTP/1.0\" 200"), "{log}");
    let err = k.fails(&["get", "--raw", "/api/v1/nodes/nosuch/proxy/healthz"]);
    assert!(err.contains("not found"), "{err}");

    // Bad input: a pod that does not exist.
    let err = k.fails(&["port-forward", "pod/nosuch", "18089:80"]);
    assert!(err.contains("not found"), "{err}");

    k.ok(&["delete", "pod", "served", "--timeout=60s"]);
    stop(&mut a);
    assert!(!running(&seconds));
}
