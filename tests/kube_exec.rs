//! The kube crate (the client ferry's own components use, and many operators) as the judge of
//! `pods/exec`, `pods/attach` and `pods/portforward` on a `process` node: its `Api::exec`
//! speaks the remote-command protocol over WebSocket (stdin and its end, stdout, stderr, the
//! final status with the exit code), `Api::attach` joins a running container's output, and
//! `Api::portforward` (the kubelet's WebSocket channel protocol) reaches a server listening on
//! the pod's own loopback, or reports a port nothing listens on.

use std::path::Path;
use std::time::Duration;

use ferry_testkit::appliance::Appliance;
use ferry_testkit::ferry::wait_for;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ferry_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}

/// A marker no other process of the machine has in its command line.
fn marker() -> String {
    format!("{}", 60_000 + std::process::id() % 5_000)
}

const POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: target}
spec:
  containers:
  - name: sh
    image: busybox
    command: [sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done', 'MARKER']
";

/// A pod serving `DIR/hello` on its own loopback at `PORT`.
const SERVED: &str = "apiVersion: v1
kind: Pod
metadata: {name: served}
spec:
  containers:
  - name: http
    image: python
    command: [sh, -c, 'mkdir -p DIR; echo forwarded > DIR/hello; exec python3 -m http.server --bind 127.0.0.1 --directory DIR PORT', 'MARKER']
";

/// `GET /hello` through the kube crate's port-forward: the answer, whole.
async fn get_hello(pods: &Api<Pod>, port: u16) -> Result<String, String> {
    let mut forwarder = pods
        .portforward("served", &[port])
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = forwarder.take_stream(port).ok_or("no stream")?;
    let error = forwarder.take_error(port).ok_or("no error channel")?;
    stream
        .write_all(b"GET /hello HTTP/1.0\r\nHost: pod\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let answer = read_all(stream).await;
    if let Some(message) = error.await {
        return Err(message);
    }
    // The node closes the socket once the pod's connection has ended (as a kubelet does); the
    // crate's own close after it is refused, so its `join` is not asked.
    forwarder.abort();
    Ok(answer)
}

async fn read_all(mut reader: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut out = String::new();
    reader.read_to_string(&mut out).await.expect("read");
    out
}

#[test]
fn the_kube_crate_execs_attaches_and_forwards_ports() {
    let cidr = format!("10.{}.{}.0/24", 226, std::process::id() % 250);
    let Some(a) = Appliance::up(
        ferry_binary(),
        &[
            "--runtime",
            "process",
            "--node-name",
            "local",
            "--pod-cidr",
            &cidr,
        ],
    ) else {
        return;
    };
    let seconds = marker();
    a.kubectl
        .ok_stdin(&["apply", "-f", "-"], &POD.replace("MARKER", &seconds));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let www = a.dir.path().join("www").display().to_string();
    let served = SERVED
        .replace("MARKER", &seconds)
        .replace("DIR", &www)
        .replace("PORT", &port.to_string());
    a.kubectl.ok_stdin(&["apply", "-f", "-"], &served);
    a.kubectl.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/target",
        "--timeout=60s",
    ]);
    let url = a.server.url.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let config = kube::Config::new(url.parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let pods: Api<Pod> = Api::default_namespaced(client);

        // Exec with stdin: what is written arrives, its end ends `cat`, the exit code comes
        // back in the final status.
        let params = AttachParams::default().stdin(true).stderr(true);
        let mut process = pods
            .exec(
                "target",
                ["sh", "-c", "echo to-err >&2; cat; exit 5"],
                &params,
            )
            .await
            .expect("exec");
        let mut stdin = process.stdin().expect("stdin");
        let stdout = process.stdout().expect("stdout");
        let stderr = process.stderr().expect("stderr");
        let status = process.take_status().expect("status");
        stdin
            .write_all(b"from the kube crate\n")
            .await
            .expect("write");
        // The kube crate closes stdin (v5's close message) when its writer shuts down.
        stdin.shutdown().await.expect("stdin closed");
        let (out, err) = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::join!(read_all(stdout), read_all(stderr))
        })
        .await
        .expect("the command ended once its stdin did");
        assert_eq!(out, "from the kube crate\n");
        assert_eq!(err, "to-err\n");
        let status = tokio::time::timeout(Duration::from_secs(30), status)
            .await
            .expect("a status in time")
            .expect("a status");
        let code = status
            .details
            .and_then(|d| d.causes)
            .and_then(|c| {
                c.into_iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
            })
            .and_then(|c| c.message);
        assert_eq!(code.as_deref(), Some("5"));
        process.join().await.expect("the exec ends cleanly");

        // A command that does not exist fails with a status, not a hang.
        let mut missing = pods
            .exec("target", ["/no/such/program"], &AttachParams::default())
            .await
            .expect("exec");
        let status = tokio::time::timeout(
            Duration::from_secs(30),
            missing.take_status().expect("status"),
        )
        .await
        .expect("a status in time")
        .expect("a status");
        assert_ne!(status.status.as_deref(), Some("Success"), "{status:?}");

        // Attach: the container's own output, as it comes.
        let params = AttachParams::default().stdin(false).stderr(false);
        let mut attached = pods.attach("target", &params).await.expect("attach");
        let mut stdout = attached.stdout().expect("stdout");
        let mut seen = String::new();
        let mut buf = [0u8; 256];
        tokio::time::timeout(Duration::from_secs(30), async {
            while seen.matches("tick ").count() < 2 {
                let n = stdout.read(&mut buf).await.expect("read");
                assert!(n > 0, "attach ended early: {seen}");
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
        .await
        .expect("two ticks in time");
        attached.abort();

        // Port-forward: the server on the pod's loopback answers (once it listens).
        a.kubectl.ok(&[
            "wait",
            "--for=condition=Ready",
            "pod/served",
            "--timeout=60s",
        ]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let answer = loop {
            match tokio::time::timeout(Duration::from_secs(30), get_hello(&pods, port)).await {
                Ok(Ok(answer)) => break answer,
                Ok(Err(e)) if tokio::time::Instant::now() < deadline => {
                    eprintln!("not yet: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => panic!("port-forward never answered: {other:?}"),
            }
        };
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nforwarded\n"), "{answer}");
        // A port nothing listens on: the error channel says so.
        let mut closed = pods.portforward("served", &[1]).await.expect("portforward");
        let error = closed.take_error(1).expect("error channel");
        let message = tokio::time::timeout(Duration::from_secs(30), error)
            .await
            .expect("an error in time")
            .expect("an error message");
        assert!(
            message.starts_with("error forwarding port 1 to pod default/served:"),
            "{message}"
        );
        closed.abort();
    });
    a.kubectl
        .ok(&["delete", "pod", "target", "served", "--timeout=60s"]);
    wait_for(Duration::from_secs(30), "the pod's process gone", || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &seconds])
            .output()
            .ok()?;
        (!out.status.success()).then_some(())
    });
}
