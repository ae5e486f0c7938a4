//! The `process` runtime against real processes of this host: output lands in CRI-format log
//! files, an ended container is reported with its exit code and wakes its watcher, a container
//! that ignores SIGTERM is killed after its grace period together with what it started, and a
//! command that does not exist is a StartError.

use std::time::Duration;

use ferry_nodeagent::runtime::process::ProcessRuntime;
use ferry_nodeagent::runtime::{ContainerConfig, ContainerState, Runtime, SandboxConfig, crilog};

fn sandbox(uid: &str) -> SandboxConfig {
    SandboxConfig {
        name: "p".into(),
        namespace: "default".into(),
        uid: uid.into(),
        annotations: Default::default(),
        restart_policy: "Never".into(),
        host_network: false,
    }
}

fn container(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        image: "busybox".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        image_entrypoint: false,
        stdin: false,
        stdin_once: false,
        tty: false,
        init: false,
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("WHO".into(), "world".into()),
        ],
        working_dir: None,
        mounts: Vec::new(),
        limits: Default::default(),
    }
}

async fn exited(runtime: &ProcessRuntime, id: &str) -> (i32, String) {
    tokio::time::timeout(Duration::from_secs(20), runtime.changed(id))
        .await
        .expect("the container ended in time");
    match runtime.container_status(id).await.expect("status").state {
        ContainerState::Exited {
            exit_code, reason, ..
        } => (exit_code, reason),
        other => panic!("not ended: {other:?}"),
    }
}

#[tokio::test]
async fn output_goes_to_a_cri_log_and_the_exit_code_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = ProcessRuntime::new(dir.path(), "127.0.0.1");
    let sb = runtime
        .run_pod_sandbox(sandbox("u1"))
        .await
        .expect("sandbox");
    assert_eq!(sb.ip, "127.0.0.1");
    let id = runtime
        .create_container(
            &sb.id,
            container("c", "echo hello $WHO; echo oops >&2; exit 3"),
        )
        .await
        .expect("created");
    runtime.start_container(&id).await.expect("started");
    assert_eq!(exited(&runtime, &id).await, (3, "Error".into()));
    let status = runtime.container_status(&id).await.expect("status");
    let log = std::fs::read_to_string(status.log_path.expect("a log")).expect("log");
    let records: Vec<_> = log
        .lines()
        .map(|l| crilog::parse(l).expect("CRI line"))
        .collect();
    let mut seen: Vec<(&str, &str)> = records.iter().map(|r| (r.1, r.3)).collect();
    seen.sort();
    assert_eq!(seen, [("stderr", "oops"), ("stdout", "hello world")]);
    assert!(records.iter().all(|r| r.2), "every record is a full line");

    // The sandbox goes with its directory.
    runtime.stop_pod_sandbox(&sb.id).await.expect("stopped");
    runtime.remove_pod_sandbox(&sb.id).await.expect("removed");
    assert!(
        std::fs::read_dir(dir.path().join("pods"))
            .expect("pods dir")
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn stop_kills_after_the_grace_period_with_everything_the_container_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = ProcessRuntime::new(dir.path(), "127.0.0.1");
    let sb = runtime
        .run_pod_sandbox(sandbox("u2"))
        .await
        .expect("sandbox");
    // The shell ignores SIGTERM and leaves a grandchild behind it.
    let marker = dir.path().join("child.pid");
    let script = format!(
        "trap '' TERM; sleep 300 & echo $! > {}; echo started; wait",
        marker.display()
    );
    let id = runtime
        .create_container(&sb.id, container("stubborn", &script))
        .await
        .expect("created");
    runtime.start_container(&id).await.expect("started");
    let child: i32 = loop {
        if let Ok(text) = std::fs::read_to_string(&marker)
            && let Ok(pid) = text.trim().parse()
        {
            break pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let started = std::time::Instant::now();
    runtime
        .stop_container(&id, Duration::from_millis(500))
        .await
        .expect("stopped");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the grace period was given"
    );
    let (code, _) = exited(&runtime, &id).await;
    assert_eq!(code, 137, "killed by SIGKILL");
    // The grandchild went with the process group.
    let alive = std::path::Path::new(&format!("/proc/{child}")).exists()
        && !std::fs::read_to_string(format!("/proc/{child}/stat"))
            .unwrap_or_default()
            .contains(") Z");
    assert!(!alive, "the container's child {child} outlived it");
}

#[tokio::test]
async fn a_missing_command_is_a_start_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = ProcessRuntime::new(dir.path(), "127.0.0.1");
    let sb = runtime
        .run_pod_sandbox(sandbox("u3"))
        .await
        .expect("sandbox");
    let mut config = container("missing", "");
    config.command = vec!["/no/such/program".into()];
    let id = runtime
        .create_container(&sb.id, config)
        .await
        .expect("created");
    let err = runtime.start_container(&id).await.expect_err("refused");
    assert!(err.to_string().contains("/no/such/program"), "{err}");
    assert_eq!(exited(&runtime, &id).await, (128, "StartError".into()));

    // An exec needs a running container: it runs in its environment and reports its exit
    // code.
    let refused = runtime
        .exec_sync(&id, vec!["true".into()], Duration::from_secs(5))
        .await
        .expect_err("not running");
    assert!(refused.to_string().contains("is not running"), "{refused}");
    let running = runtime
        .create_container(&sb.id, container("running", "exec sleep 30"))
        .await
        .expect("created");
    runtime.start_container(&running).await.expect("started");
    let (code, out) = runtime
        .exec_sync(
            &running,
            vec!["sh".into(), "-c".into(), "echo $WHO; exit 4".into()],
            Duration::from_secs(5),
        )
        .await
        .expect("exec");
    assert_eq!((code, out.as_str()), (4, "world\n"));
    runtime
        .stop_container(&running, Duration::from_secs(2))
        .await
        .expect("stopped");
}
