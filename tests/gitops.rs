//! `ferry up` following real Git repositories with real commits: good, broken, fixed, pruned,
//! duplicated, emptied, rolled back, force-pushed and killed mid-apply; checked through the real
//! kubectl and `ferry history -o json`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_testkit::ferry::{FerryProcess, Kubectl};
use ferry_testkit::git::Repo;
use serde_json::Value;

fn configmap(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: shop\ndata:\n  value: \"{value}\"\n"
    )
}

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n";

/// `ferry up` on a source, with a kubectl pointed at it.
struct Ferry {
    process: FerryProcess,
    client: Kubectl,
    url: String,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

/// A Deployment whose pods the hollow node never makes ready, with a 3 s progress deadline.
fn never_ready_deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 1\n  progressDeadlineSeconds: 3\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n      annotations: {{sim.ferry.dev/ready: \"false\"}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n"
    )
}

impl Ferry {
    fn up(kubectl: &Path, source: &str, extra: &[&str]) -> Ferry {
        Ferry::up_with_env(kubectl, source, extra, &[])
    }

    /// `ferry up` with extra environment variables.
    fn up_with_env(kubectl: &Path, source: &str, extra: &[&str], env: &[(&str, &str)]) -> Ferry {
        let mut args: Vec<String> = vec![
            "up".into(),
            "--source".into(),
            source.to_owned(),
            "--name".into(),
            "shop".into(),
        ];
        // Hollow nodes: these suites follow rollouts, not processes.
        if !extra.contains(&"--runtime") {
            args.extend(["--runtime".to_owned(), "sim".to_owned()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Ferry::start(kubectl, args, env)
    }

    /// `ferry ARGS --data-dir TEMP` with `env`.
    fn start(kubectl: &Path, mut args: Vec<String>, env: &[(&str, &str)]) -> Ferry {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        args.extend([
            "--data-dir".to_owned(),
            dir.path().join("data").display().to_string(),
        ]);
        let ferry_bin = Path::new(env!("CARGO_BIN_EXE_ferry"));
        let process = FerryProcess::start_with_env(ferry_bin, &args, &env);
        let client = Kubectl::new(kubectl, ferry_bin, &process.url, dir.path());
        Ferry {
            url: process.url.clone(),
            args: process.args().to_vec(),
            process,
            client,
            _dir: dir,
        }
    }

    /// `kill -9`, then `args` on the same port and data (no extra environment).
    fn crash_and_restart(&mut self, args: Vec<String>) {
        self.process.crash_and_restart_as(args, Vec::new());
    }

    fn ferry(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .args(["--server", &self.url])
            .env("FERRY_USER", "grace")
            .output()
            .expect("ferry runs")
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.client.run(args)
    }

    fn history(&self) -> Vec<Value> {
        let out = self.ferry(&["history", "-o", "json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .expect("history is JSON")
            .as_array()
            .cloned()
            .expect("an array")
    }

    /// Waits until the history has `n` records; returns the last.
    fn wait_records(&self, n: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let h = self.history();
            if h.len() >= n {
                let brief: Vec<String> = h
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} {} {}",
                            r["revision"], r["trigger"], r["result"], r["message"]
                        )
                    })
                    .collect();
                assert_eq!(h.len(), n, "more records than expected: {brief:#?}");
                return h[n - 1].clone();
            }
            assert!(Instant::now() < deadline, "no record {n}: {h:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls `ferry status` until the source's status satisfies `done` (20 s at most); returns
    /// that status.
    fn wait_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.ferry(&["status", "-o", "json"]);
            let s: Value = serde_json::from_slice(&out.stdout).expect("status json");
            if done(&s[0]["status"]) {
                return s[0]["status"].clone();
            }
            assert!(Instant::now() < deadline, "{what}: {s:#}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the source's status message contains `needle`; returns the message.
    fn wait_message(&self, needle: &str) -> String {
        let status = self.wait_status(&format!("no message with {needle:?}"), |s| {
            s["message"].as_str().is_some_and(|m| m.contains(needle))
        });
        status["message"].as_str().unwrap_or_default().to_owned()
    }

    /// Changes ConfigMap `name`'s value to "off" behind the source's back (drift).
    fn drift(&self, name: &str) {
        let out = self.kubectl(&[
            "patch",
            "configmap",
            name,
            "-n",
            "shop",
            "--type=merge",
            "-p",
            r#"{"data":{"value":"off"}}"#,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn value(&self, name: &str) -> Option<String> {
        let out = self.kubectl(&[
            "get",
            "configmap",
            name,
            "-n",
            "shop",
            "-o",
            "jsonpath={.data.value}",
        ]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn commit_of(&self, name: &str) -> String {
        let out = self.kubectl(&[
            "get",
            "configmap",
            name,
            "-n",
            "shop",
            "-o",
            "jsonpath={.metadata.annotations.ferry\\.dev/commit}",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn tools() -> Option<(PathBuf, PathBuf)> {
    Some((
        ferry_testkit::tools::git()?,
        ferry_testkit::tools::kubectl()?,
    ))
}

#[test]
fn commits_are_applied_whole_refused_whole_audited_and_rolled_back() {
    let Some((git, kubectl)) = tools() else {
        return;
    };
    let repo = Repo::new(&git);
    repo.write("namespace.yaml", NAMESPACE);
    repo.write("apps/a.yaml", &configmap("a", "1"));
    repo.write("apps/b.yaml", &configmap("b", "1"));
    repo.write("README.md", "not a manifest\n");
    let first = repo.commit("Add the shop");
    let ferry = Ferry::up(
        &kubectl,
        &repo.path().display().to_string(),
        &["--drift-interval", "1h"],
    );

    // 1. The first commit is applied, audited with author, message and per-object changes.
    let r = ferry.wait_records(1);
    assert_eq!(r["commit"], first.as_str());
    assert_eq!(r["result"], "Applied");
    assert_eq!(r["trigger"], "watch");
    assert_eq!(r["author"]["name"], "Ada Lovelace");
    assert_eq!(r["author"]["email"], "ada@example.org");
    assert_eq!(r["committer"]["name"], "CI Bot");
    assert_eq!(r["message"], "Add the shop");
    assert_eq!(r["health"], "Healthy");
    assert!(r["started"].is_string() && r["finished"].is_string());
    assert_eq!(r["changes"].as_array().map(Vec::len), Some(3), "{r:#}");
    assert_eq!(ferry.value("a").as_deref(), Some("1"));
    assert_eq!(ferry.commit_of("a"), first);
    let labels = ferry.kubectl(&[
        "get",
        "configmaps",
        "-n",
        "shop",
        "-l",
        "ferry.dev/source=shop",
        "-o",
        "name",
    ]);
    assert_eq!(String::from_utf8_lossy(&labels.stdout).lines().count(), 2);

    // 2. A broken commit is refused whole: nothing applied, reasons with file, line, field.
    repo.write("apps/a.yaml", &configmap("a", "2"));
    repo.write(
        "apps/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: many\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx\n",
    );
    let broken = repo.commit("Break it");
    let r = ferry.wait_records(2);
    assert_eq!(r["commit"], broken.as_str());
    assert_eq!(r["result"], "Rejected");
    let errors = r["errors"].as_array().expect("errors");
    let e = errors
        .iter()
        .find(|e| e["file"] == "apps/web.yaml")
        .unwrap_or_else(|| panic!("{errors:#?}"));
    assert_eq!(e["line"], 7);
    assert_eq!(e["path"], "/spec/replicas");
    assert_eq!(e["object"], "Deployment shop/web");
    assert!(r["changes"].as_array().is_none_or(Vec::is_empty));
    assert_eq!(
        ferry.value("a").as_deref(),
        Some("1"),
        "the cluster stays on the good commit"
    );
    let status = ferry.ferry(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains(&first[..12]) && status.contains("Rejected"),
        "{status}"
    );

    // 3. Admission refuses what the schema allows: a dry run catches it, nothing is applied.
    repo.write(
        "apps/web.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  clusterIP: 10.96.0.10\n  ports:\n  - port: 80\n",
    );
    repo.write(
        "apps/web2.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web2\n  namespace: shop\nspec:\n  clusterIP: 10.96.0.10\n  ports:\n  - port: 80\n",
    );
    repo.commit("Two services, one IP");
    let r = ferry.wait_records(3);
    assert_eq!(r["result"], "Rejected", "{r:#}");
    assert_eq!(ferry.value("a").as_deref(), Some("1"));
    assert!(
        !ferry
            .kubectl(&["get", "service", "web", "-n", "shop"])
            .status
            .success()
    );

    // 4. The fix: applied, b pruned, a updated, the commit recorded on what changed.
    repo.remove("apps/web2.yaml");
    repo.remove("apps/b.yaml");
    let fixed = repo.commit("Fix it, drop b");
    let r = ferry.wait_records(4);
    assert_eq!(r["result"], "Applied", "{r:#}");
    assert_eq!(ferry.value("a").as_deref(), Some("2"));
    assert_eq!(ferry.value("b"), None, "b is pruned");
    assert_eq!(ferry.commit_of("a"), fixed);
    let actions: Vec<String> = r["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            format!(
                "{} {}/{}",
                c["action"].as_str().unwrap_or_default(),
                c["kind"].as_str().unwrap_or_default(),
                c["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        actions.contains(&"Update ConfigMap/a".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"Delete ConfigMap/b".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"Create Service/web".to_owned()),
        "{actions:?}"
    );
    let diff = r["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["name"] == "a")
        .expect("a")["diff"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        diff.contains("-    \"value\": \"1\"") && diff.contains("+    \"value\": \"2\""),
        "{diff}"
    );

    // "Which commits changed this object?"
    let out = ferry.ferry(&["history", "--object", "ConfigMap/shop/b", "-o", "json"]);
    let touched: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    let commits: Vec<&str> = touched
        .iter()
        .filter_map(|r| r["commit"].as_str())
        .collect();
    assert_eq!(commits, vec![first.as_str(), fixed.as_str()]);
    // The apiserver answers it: the same question through kubectl's field selector.
    let out = ferry.kubectl(&[
        "get",
        "revisions",
        "-n",
        "ferry-system",
        "--field-selector",
        "status.changes.object=configmap/shop/b",
        "-o",
        "name",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let out = ferry.ferry(&["history", "--object", "b"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("KIND/NAMESPACE/NAME or KIND/NAME"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 5. Diff of a commit against the live state, and of two commits.
    let out = ferry.ferry(&["diff", &first[..10]]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ConfigMap/shop/b") && text.contains("ConfigMap/shop/a"),
        "{text}"
    );
    let out = ferry.ferry(&["diff", &first, &fixed]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("+++ b/Service/shop/web"), "{text}");
    let out = ferry.ferry(&["diff", &fixed]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // 6. Rollback: one command, recorded with who, why, from and to; the source is pinned.
    let out = ferry.ferry(&["rollback", &first[..8], "--reason", "a=2 broke checkout"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = ferry.wait_records(5);
    assert_eq!(r["trigger"], "rollback");
    assert_eq!(r["result"], "Applied");
    assert_eq!(r["commit"], first.as_str());
    assert_eq!(r["rollbackFrom"], fixed.as_str());
    assert_eq!(r["requestedBy"], "grace");
    assert_eq!(r["reason"], "a=2 broke checkout");
    assert_eq!(ferry.value("a").as_deref(), Some("1"));
    assert_eq!(ferry.value("b").as_deref(), Some("1"));
    assert!(
        !ferry
            .kubectl(&["get", "service", "web", "-n", "shop"])
            .status
            .success()
    );
    // Pinned: the watch and drift checks do not undo the rollback.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ferry.history().len(), 5);
    let sources = ferry.kubectl(&["get", "sources", "-n", "ferry-system", "shop", "-o", "json"]);
    let source: Value = serde_json::from_slice(&sources.stdout).expect("source");
    assert_eq!(source["status"]["pinnedCommit"], first.as_str());

    // 7. Drift is seen (and, without self-heal, left alone).
    let out = ferry.kubectl(&[
        "patch",
        "configmap",
        "a",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"data":{"value":"hand-edited"}}"#,
    ]);
    assert!(out.status.success());
    let status = ferry.wait_status("no drift seen", |s| s["sync"] == "OutOfSync");
    assert_eq!(status["drift"][0]["name"], "a");
    assert_eq!(status["drift"][0]["fields"][0], "/data/value");

    // 8. A newer commit ends the pin and is applied on its own merits.
    repo.write("apps/c.yaml", &configmap("c", "3"));
    let newer = repo.commit("Add c");
    let r = ferry.wait_records(6);
    assert_eq!(r["commit"], newer.as_str());
    assert_eq!(r["result"], "Applied");
    assert_eq!(ferry.value("c").as_deref(), Some("3"));
    assert_eq!(ferry.value("a").as_deref(), Some("2"));

    // 9. Two files defining one object: refused, naming both files.
    repo.write("apps/c-again.yaml", &configmap("c", "4"));
    repo.commit("Duplicate c");
    let r = ferry.wait_records(7);
    assert_eq!(r["result"], "Rejected");
    let message = r["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("more than once") && message.contains("apps/c-again.yaml"),
        "{r:#}"
    );
    assert_eq!(r["errors"][0]["file"], "apps/c.yaml");

    // 10. A commit that empties the source is refused.
    for f in [
        "apps/a.yaml",
        "apps/c.yaml",
        "apps/c-again.yaml",
        "apps/web.yaml",
        "namespace.yaml",
    ] {
        repo.remove(f);
    }
    repo.commit("Delete everything");
    let r = ferry.wait_records(8);
    assert_eq!(r["result"], "Rejected");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("every object"),
        "{r:#}"
    );
    assert_eq!(ferry.value("c").as_deref(), Some("3"));

    // 11. Force-push: history rewritten to a new commit; it is applied like any other.
    // (Built with plumbing so that the branch moves once, as a force-push moves it.)
    let tree = repo.run(&["rev-parse", &format!("{newer}^{{tree}}")]);
    let rewritten = repo.run(&[
        "commit-tree",
        &tree,
        "-p",
        &format!("{newer}^"),
        "-m",
        "Add c, reworded",
    ]);
    repo.run(&["reset", "-q", "--hard", &rewritten]);
    let r = ferry.wait_records(9);
    assert_eq!(r["commit"], rewritten.as_str());
    assert_eq!(r["result"], "Applied");
    assert_eq!(
        ferry.commit_of("c"),
        newer,
        "unchanged objects keep the commit that changed them"
    );

    // `ferry sync` asks for the head now and reports the outcome.
    let out = ferry.ferry(&["sync"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = ferry.wait_records(10);
    assert_eq!(r["trigger"], "manual");
    assert_eq!(r["requestedBy"], "grace");

    // `ferry show` finds a revision by commit prefix.
    let out = ferry.ferry(&["show", &fixed[..12]]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Fix it, drop b") && text.contains("delete ConfigMap shop/b"),
        "{text}"
    );
    let out = ferry.ferry(&["show", "nope"]);
    assert!(!out.status.success());
}

#[test]
fn a_kill_mid_apply_leaves_a_whole_commit_and_recovers() {
    kill_mid_apply(None);
}

#[test]
fn a_kill_mid_apply_on_postgres() {
    if tools().is_none() {
        return;
    }
    let Some(pg) = ferry_testkit::TempPostgres::start() else {
        return;
    };
    kill_mid_apply(Some(pg.database("gitops")));
}

fn kill_mid_apply(db: Option<String>) {
    let Some((git, kubectl)) = tools() else {
        return;
    };
    let repo = Repo::new(&git);
    repo.write("namespace.yaml", NAMESPACE);
    repo.write("apps/seed.yaml", &configmap("seed", "0"));
    let first = repo.commit("Seed");
    let db_args: Vec<&str> = match &db {
        Some(url) => vec!["--db", url.as_str()],
        None => Vec::new(),
    };
    // The fault point: the writer stops inside the transaction of any batch of 1,000 changes
    // or more (written, not committed) and says so by creating the marker file.
    let marker_dir = tempfile::tempdir().expect("tempdir");
    let marker = marker_dir.path().join("paused");
    let fault = format!("1000:{}", marker.display());
    let mut ferry = Ferry::up_with_env(
        &kubectl,
        &repo.path().display().to_string(),
        &db_args,
        &[("FERRY_FAULT_PAUSE_BEFORE_COMMIT", &fault)],
    );
    ferry.wait_records(1);

    // A commit of 2,000 objects; ferry is killed while it is inside its transaction.
    let mut big = String::new();
    for i in 0..2000 {
        big.push_str("---\n");
        big.push_str(&configmap(&format!("bulk-{i:04}"), "x"));
    }
    repo.write("apps/bulk.yaml", &big);
    let second = repo.commit("Bulk");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the writer never reached the fault point"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let paused_at: usize = std::fs::read_to_string(&marker)
        .expect("marker")
        .trim()
        .parse()
        .expect("a change count");
    assert!(
        paused_at >= 2000,
        "paused in a batch of {paused_at} changes"
    );
    let plain: Vec<String> = {
        let mut a = ferry.args.clone();
        a[0] = "apiserver".into();
        let source = a.iter().position(|x| x == "--source").expect("source");
        a.drain(source..source + 4);
        // The runtime is a node's flag, not the apiserver's.
        if let Some(runtime) = a.iter().position(|x| x == "--runtime") {
            a.drain(runtime..runtime + 2);
        }
        a
    };
    ferry.crash_and_restart(plain);
    // Only the apiserver now: the kill landed inside the transaction, so none of it is there.
    let out = ferry.kubectl(&["get", "configmaps", "-n", "shop", "-o", "name"]);
    let count = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("bulk-"))
        .count();
    assert_eq!(count, 0, "part of a killed transaction is visible");
    let applied = ferry
        .history()
        .iter()
        .filter(|r| r["result"] == "Applied")
        .count();
    assert_eq!(applied, 1);

    // Back with the engine: it converges on the new commit.
    let args = ferry.args.clone();
    ferry.crash_and_restart(args);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = ferry.history();
        if h.last()
            .is_some_and(|r| r["commit"] == second.as_str() && r["result"] == "Applied")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{h:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = ferry.kubectl(&["get", "configmaps", "-n", "shop", "-o", "name"]);
    let count = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("bulk-"))
        .count();
    assert_eq!(count, 2000);
    assert_eq!(ferry.commit_of("seed"), first);
}

#[test]
fn a_directory_source_and_webhooks() {
    let Some((_, kubectl)) = tools() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ns.yaml"), NAMESPACE).expect("write");
    std::fs::write(dir.path().join("a.yaml"), configmap("a", "1")).expect("write");
    let secret = dir.path().join(".secret");
    std::fs::write(&secret, "hush\n").expect("write");
    let secret_arg = secret.display().to_string();
    let ferry = Ferry::up(
        &kubectl,
        &dir.path().display().to_string(),
        &["--webhook-secret-file", &secret_arg],
    );
    let r = ferry.wait_records(1);
    assert_eq!(r["result"], "Applied");
    assert_eq!(
        r["commit"].as_str().map(str::len),
        Some(40),
        "a content hash"
    );
    std::fs::write(dir.path().join("a.yaml"), configmap("a", "2")).expect("write");
    let r = ferry.wait_records(2);
    assert_eq!(r["result"], "Applied");
    assert_eq!(ferry.value("a").as_deref(), Some("2"));

    // Webhooks: a wrong or missing token is refused; the right one triggers a fetch.
    let post = |token: Option<&str>, source: &str| -> String {
        use std::io::{Read, Write};
        let addr = ferry.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        let header = token
            .map(|t| format!("X-Gitlab-Token: {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "POST /hooks/git/{source} HTTP/1.1\r\nHost: {addr}\r\n{header}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        )
        .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(post(None, "shop"), "401");
    assert_eq!(post(Some("wrong"), "shop"), "401");
    assert_eq!(post(Some("hush"), "nosuch"), "404");
    assert_eq!(post(Some("hush"), "shop"), "202");
}

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n"
    )
}

impl Ferry {
    /// Waits until record `n` (1-based) satisfies `check`.
    fn wait_for(&self, n: usize, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let h = self.history();
            if let Some(r) = h.get(n - 1)
                && check(r)
            {
                return r.clone();
            }
            assert!(Instant::now() < deadline, "{what}: {h:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn health_is_followed_degraded_rolls_back_and_drift_self_heals() {
    let Some((git, kubectl)) = tools() else {
        return;
    };
    let repo = Repo::new(&git);
    repo.write("namespace.yaml", NAMESPACE);
    repo.write("web.yaml", &deployment("nginx:1.27"));
    repo.write("config.yaml", &configmap("settings", "on"));
    let good = repo.commit("web 1.27");
    let ferry = Ferry::up(
        &kubectl,
        &repo.path().display().to_string(),
        &[
            "--auto-rollback",
            "--self-heal",
            "--drift-interval",
            "1h",
            "--health-timeout",
            "30s",
        ],
    );
    let r = ferry.wait_records(1);
    assert_eq!(r["result"], "Applied");

    // The Deployment controller rolls the pod out on the appliance's hollow node: Healthy.
    let r = ferry.wait_for(1, "healthy", |r| r["health"] == "Healthy");
    assert!(r["healthChanged"].is_string());

    // A bad rollout (its pods never become ready): past its progress deadline it is
    // Degraded, and rolled back by itself to the last healthy commit.
    repo.write("web.yaml", &never_ready_deployment("nginx:does-not-exist"));
    let bad = repo.commit("web: a broken image");
    let r = ferry.wait_for(2, "applied", |r| r["result"] == "Applied");
    assert_eq!(r["commit"], bad.as_str());
    let r = ferry.wait_for(2, "degraded", |r| r["health"] == "Degraded");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("progress deadline"),
        "{r:#}"
    );
    let r = ferry.wait_for(3, "auto-rollback", |r| r["result"] == "Applied");
    assert_eq!(r["trigger"], "rollback");
    assert_eq!(r["commit"], good.as_str());
    assert_eq!(r["rollbackFrom"], bad.as_str());
    assert_eq!(r["requestedBy"], "ferry (auto-rollback)");
    let image = ferry.kubectl(&[
        "get",
        "deployment",
        "web",
        "-n",
        "shop",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(String::from_utf8_lossy(&image.stdout), "nginx:1.27");

    // Drift is reverted, and the revert is audited.
    ferry.drift("settings");
    let r = ferry.wait_for(4, "self-heal", |r| r["trigger"] == "self-heal");
    assert_eq!(r["result"], "Applied");
    assert_eq!(r["commit"], good.as_str());
    let change = &r["changes"][0];
    assert_eq!(change["name"], "settings");
    let diff = change["diff"].as_str().unwrap_or_default();
    assert!(
        diff.contains("-    \"value\": \"off\"") && diff.contains("+    \"value\": \"on\""),
        "{diff}"
    );
    assert_eq!(ferry.value("settings").as_deref(), Some("on"));
}

/// More objects of a kind than the engine reads to a page (250): drift on the second page is
/// found by the full check and healed, and the restarted engine's inventory (what it prunes)
/// spans every page.
#[test]
fn drift_past_the_first_page_is_found_and_healed() {
    let Some((git, kubectl)) = tools() else {
        return;
    };
    let repo = Repo::new(&git);
    repo.write("namespace.yaml", NAMESPACE);
    for i in 0..300 {
        repo.write(
            &format!("config/c{i:03}.yaml"),
            &configmap(&format!("c{i:03}"), "on"),
        );
    }
    repo.commit("300 config maps");
    let mut ferry = Ferry::up(
        &kubectl,
        &repo.path().display().to_string(),
        &["--self-heal", "--drift-interval", "1h"],
    );
    let r = ferry.wait_for(1, "healthy", |r| r["health"] == "Healthy");
    assert_eq!(r["result"], "Applied");

    // c290 sorts past the first page of 250.
    ferry.drift("c290");
    let r = ferry.wait_for(2, "self-heal", |r| r["trigger"] == "self-heal");
    assert_eq!(r["result"], "Applied");
    let changes = r["changes"].as_array().cloned().unwrap_or_default();
    assert_eq!(changes.len(), 1, "{r:#}");
    assert_eq!(changes[0]["name"], "c290");
    assert_eq!(ferry.value("c290").as_deref(), Some("on"));

    // After a crash the engine rebuilds its inventory from the live objects; a commit that
    // drops the last 60 then prunes exactly those, including the ones past the first page.
    let args = ferry.args.clone();
    ferry.crash_and_restart(args);
    for i in 240..300 {
        repo.remove(&format!("config/c{i:03}.yaml"));
    }
    repo.commit("240 config maps");
    let r = ferry.wait_for(3, "pruned", |r| r["result"] == "Applied");
    let deleted = r["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["action"] == "Delete")
        .count();
    assert_eq!(deleted, 60, "{r:#}");
    assert_eq!(ferry.value("c299"), None);
    assert_eq!(ferry.value("c239").as_deref(), Some("on"));
}

/// An empty bare repository `shop.git` (branch `main`) under `dir`, as a Git host keeps one.
fn bare_repository(git: &Path, dir: &Path) -> PathBuf {
    let bare = dir.join("shop.git");
    let out = Command::new(git)
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&bare)
        .output()
        .expect("git init --bare");
    assert!(out.status.success());
    bare
}

/// A server process a test started (git daemon, a Git host over HTTPS, sshd), killed on drop.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        if let Err(e) = self.0.kill() {
            eprintln!("stopping a test server: {e}");
        }
        if let Err(e) = self.0.wait() {
            eprintln!("reaping a test server: {e}");
        }
    }
}

/// A loopback port nobody listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn a_remote_repository_is_fetched_polled_and_force_pushed() {
    let Some((git, kubectl)) = tools() else {
        return;
    };
    let served = tempfile::tempdir().expect("tempdir");
    let bare = bare_repository(&git, served.path());
    let port = free_port();
    // git-daemon itself (the `git daemon` wrapper would leave it running when killed).
    let exec_path = Command::new(&git)
        .arg("--exec-path")
        .output()
        .expect("git --exec-path");
    let exec_path = PathBuf::from(String::from_utf8_lossy(&exec_path.stdout).trim());
    let daemon = Served(
        Command::new(exec_path.join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", served.path().display()))
            .arg(served.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon"),
    );
    let url = format!("git://127.0.0.1:{port}/shop.git");
    // Wait for the daemon to answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new(&git)
        .args(["ls-remote", &url])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "git daemon did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let work = Repo::new(&git);
    work.run(&["remote", "add", "origin", &url]);
    // git daemon refuses pushes unless enabled; push through the file system instead.
    work.run(&[
        "remote",
        "set-url",
        "--push",
        "origin",
        &bare.display().to_string(),
    ]);
    work.write("ns.yaml", NAMESPACE);
    work.write("a.yaml", &configmap("a", "1"));
    let first = work.commit("First");
    work.run(&["push", "-q", "origin", "main"]);

    let secret = served.path().join("secret");
    std::fs::write(&secret, "hush").expect("secret");
    let secret_arg = secret.display().to_string();
    let ferry = Ferry::up(
        &kubectl,
        &url,
        &[
            "--poll-interval",
            "1h",
            "--webhook-secret-file",
            &secret_arg,
        ],
    );
    let r = ferry.wait_records(1);
    assert_eq!(r["commit"], first.as_str());
    assert_eq!(r["result"], "Applied");
    assert_eq!(r["trigger"], "poll");

    // A push, then the Git host's webhook (GitHub style, signed): fetched at once.
    work.write("a.yaml", &configmap("a", "2"));
    work.commit("Second");
    work.run(&["push", "-q", "origin", "main"]);
    let body = r#"{"ref":"refs/heads/main"}"#;
    let signature = {
        use std::io::Write;
        let out = Command::new("openssl")
            .args(["dgst", "-sha256", "-hmac", "hush", "-hex"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().expect("stdin").write_all(body.as_bytes())?;
                c.wait_with_output()
            });
        out.ok().and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .last()
                .map(str::to_owned)
        })
    };
    let post = |headers: &str| -> String {
        use std::io::{Read, Write};
        let addr = ferry.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        write!(
            stream,
            "POST /hooks/git/shop HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    };
    let header = match &signature {
        Some(hex) => format!("X-Hub-Signature-256: sha256={hex}\r\n"),
        None => "X-Gitlab-Token: hush\r\n".to_owned(),
    };
    assert_eq!(post("X-Hub-Signature-256: sha256=00\r\n"), "401");
    assert_eq!(post(&header), "202");
    let r = ferry.wait_records(2);
    assert_eq!(r["trigger"], "webhook");
    assert_eq!(r["result"], "Applied");
    assert_eq!(ferry.value("a").as_deref(), Some("2"));

    // A force-push that rewrites history back to a different third commit.
    work.run(&["reset", "-q", "--hard", &first]);
    work.write("b.yaml", &configmap("b", "1"));
    let rewritten = work.commit("Rewritten");
    work.run(&["push", "-q", "--force", "origin", "main"]);
    assert_eq!(post(&header), "202");
    let r = ferry.wait_records(3);
    assert_eq!(r["commit"], rewritten.as_str());
    assert_eq!(r["result"], "Applied");
    assert_eq!(ferry.value("a").as_deref(), Some("1"));
    assert_eq!(ferry.value("b").as_deref(), Some("1"));

    // The remote goes away: the cluster stays on its commit and the status says why.
    drop(daemon);
    assert_eq!(post(&header), "202");
    let status = ferry.wait_status("no unreadable-source message", |s| {
        s["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be read"))
    });
    assert_eq!(status["appliedCommit"], rewritten.as_str());
    assert_eq!(ferry.value("b").as_deref(), Some("1"));
    assert_eq!(
        ferry.history().len(),
        3,
        "an unreachable remote is not a sync attempt"
    );
}

#[test]
fn ferry_up_follows_the_demo_by_default() {
    let Some((_, kubectl)) = tools() else { return };
    // No --source: the demo repository in fixtures/ (the tests run in the crate's folder).
    let ferry = Ferry::start(&kubectl, vec!["up".into()], &[]);
    let line = &ferry.process.startup_line;
    assert!(line.contains("source demo"), "{line}");
    let r = ferry.wait_records(1);
    assert_eq!(r["result"], "Applied", "{r:#}");
    let out = ferry.kubectl(&[
        "get",
        "deployment,service,configmap,cronjob",
        "-n",
        "demo",
        "-o",
        "name",
    ]);
    let names = String::from_utf8_lossy(&out.stdout);
    for want in [
        "deployment.apps/web",
        "service/web",
        "configmap/web-content",
        "cronjob.batch/cleanup",
    ] {
        assert!(
            names.lines().any(|l| l == want),
            "{want} missing from {names}"
        );
    }
    // The demo runs on the process runtime, `ferry up`'s default: its web pods are real
    // Python servers, Ready through their HTTP probe, serving the ConfigMap mounted at /srv.
    let out = ferry.kubectl(&[
        "rollout",
        "status",
        "deployment/web",
        "-n",
        "demo",
        "--timeout=90s",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ferry.kubectl(&[
        "get",
        "pods",
        "-n",
        "demo",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].status.podIP}",
    ]);
    let ips = String::from_utf8_lossy(&out.stdout).into_owned();
    let ips: Vec<&str> = ips.split_whitespace().collect();
    assert_eq!(ips.len(), 2, "{ips:?}");
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        // Own network namespaces: two servers on one port, each at its own IP, with the
        // page from the ConfigMap.
        assert_ne!(ips[0], ips[1]);
        for ip in &ips {
            let out = std::process::Command::new("python3")
                .args([
                    "-c",
                    &format!("import urllib.request; print(urllib.request.urlopen('http://{ip}:8080/index.html', timeout=5).read().decode())"),
                ])
                .output()
                .expect("python3");
            let page = String::from_utf8_lossy(&out.stdout);
            assert!(
                page.contains("Hello from ferry"),
                "{ip}: {page} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The servers' own log lines, through kubectl logs.
        let out = ferry.kubectl(&["logs", "-n", "demo", "deployment/web"]);
        let logs = String::from_utf8_lossy(&out.stdout);
        assert!(logs.contains("\"GET / HTTP/1.1\" 200"), "{logs}");
    }
}

#[test]
fn hostile_repositories_are_refused_with_reasons() {
    let Some((git, kubectl)) = tools() else {
        return;
    };
    let repo = Repo::new(&git);
    repo.write("namespace.yaml", NAMESPACE);
    repo.write("a.yaml", &configmap("a", "1"));
    repo.commit("Good");
    let ferry = Ferry::up(&kubectl, &repo.path().display().to_string(), &[]);
    assert_eq!(ferry.wait_records(1)["result"], "Applied");

    // A symlink out of the repository.
    std::os::unix::fs::symlink("/etc/passwd", repo.path().join("passwd.yaml")).expect("symlink");
    repo.commit("Link out");
    let r = ferry.wait_records(2);
    assert_eq!(r["result"], "Rejected");
    assert_eq!(r["errors"][0]["file"], "passwd.yaml");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("outside the repository"),
        "{r:#}"
    );
    std::fs::remove_file(repo.path().join("passwd.yaml")).expect("rm");

    // A file over 5 MiB.
    let mut big = configmap("big", "1");
    big.push_str(&format!("  padding: \"{}\"\n", "x".repeat(6 * 1024 * 1024)));
    repo.write("big.yaml", &big);
    repo.commit("Too big");
    let r = ferry.wait_records(3);
    assert_eq!(r["result"], "Rejected");
    assert_eq!(r["errors"][0]["file"], "big.yaml");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("over the limit"),
        "{r:#}"
    );
    repo.remove("big.yaml");

    // A billion-laughs YAML bomb.
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n  namespace: shop\na0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    repo.write("bomb.yaml", &bomb);
    repo.commit("Bomb");
    let r = ferry.wait_records(4);
    assert_eq!(r["result"], "Rejected");
    assert_eq!(r["errors"][0]["file"], "bomb.yaml");

    // Nothing of it reached the cluster; a clean commit still goes through.
    assert_eq!(ferry.value("a").as_deref(), Some("1"));
    assert_eq!(ferry.value("big"), None);
    repo.remove("bomb.yaml");
    repo.write("a.yaml", &configmap("a", "2"));
    repo.commit("Clean again");
    assert_eq!(ferry.wait_records(5)["result"], "Applied");
    assert_eq!(ferry.value("a").as_deref(), Some("2"));
}

/// A remote source as the HTTPS and SSH tests drive it: `bare` is the repository the host
/// serves at `url` (pushed to through the file system).
struct Remote<'a> {
    git: &'a Path,
    kubectl: &'a Path,
    bare: &'a Path,
    url: &'a str,
}

impl Remote<'_> {
    /// `ferry up` on the remote with `env`: the first commit is applied, a second one pushed is
    /// applied on `ferry sync`.
    fn followed_with(&self, env: &[(&str, &str)]) {
        let work = Repo::new(self.git);
        work.run(&["remote", "add", "origin", &self.bare.display().to_string()]);
        work.write("ns.yaml", NAMESPACE);
        work.write("a.yaml", &configmap("a", "1"));
        let first = work.commit("First");
        work.run(&["push", "-q", "origin", "main"]);
        let ferry = Ferry::up_with_env(self.kubectl, self.url, &["--poll-interval", "1h"], env);
        let r = ferry.wait_records(1);
        assert_eq!(r["commit"], first.as_str());
        assert_eq!(r["result"], "Applied");
        assert_eq!(ferry.value("a").as_deref(), Some("1"));
        work.write("a.yaml", &configmap("a", "2"));
        let second = work.commit("Second");
        work.run(&["push", "-q", "origin", "main"]);
        let out = ferry.ferry(&["sync", "shop"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let r = ferry.wait_records(2);
        assert_eq!(r["commit"], second.as_str());
        assert_eq!(r["trigger"], "manual");
        assert_eq!(ferry.value("a").as_deref(), Some("2"));
    }

    /// `ferry up` on the remote with `env` cannot fetch: nothing is attempted, and the status
    /// message names the URL and says `why`.
    fn refused_with(&self, env: &[(&str, &str)], why: &str) {
        let ferry = Ferry::up_with_env(self.kubectl, self.url, &["--poll-interval", "1h"], env);
        let message = ferry.wait_message(why);
        assert!(message.contains(self.url), "{message}");
        assert!(ferry.history().is_empty());
    }
}

/// A Git host on loopback: `git http-backend` behind TLS (tests/support/git_https_server.py),
/// with a certificate signed by a throwaway CA. Killed on drop.
struct GitHttps {
    _server: Served,
    url: String,
    ca: PathBuf,
}

impl GitHttps {
    fn serve(root: &Path, python: &Path, openssl: &Path) -> GitHttps {
        let run = |args: &[&str]| {
            let out = Command::new(openssl)
                .args(args)
                .current_dir(root)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                text(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ferry test CA",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            root.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .expect("ext.cnf");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/git_https_server.py");
        let mut server = Command::new(python)
            .arg(script)
            .arg(root)
            .arg(root.join("cert.pem"))
            .arg(root.join("key.pem"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("git https server starts");
        let mut port = String::new();
        BufReader::new(server.stdout.take().expect("stdout"))
            .read_line(&mut port)
            .expect("port line");
        GitHttps {
            _server: Served(server),
            url: format!("https://127.0.0.1:{}/shop.git", port.trim()),
            ca: root.join("ca.pem"),
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_https_remote_is_followed_and_an_untrusted_certificate_is_refused() {
    let Some((git, kubectl)) = tools() else {
        return;
    };
    let (Some(python), Some(openssl)) = (
        ferry_testkit::tools::python3(),
        ferry_testkit::tools::openssl(),
    ) else {
        return;
    };
    let served = tempfile::tempdir().expect("tempdir");
    let bare = bare_repository(&git, served.path());
    let host = GitHttps::serve(served.path(), &python, &openssl);
    // Trusting the host's CA (as an operator would with SSL_CERT_FILE): followed. Without that
    // trust the certificate is refused.
    let ca = host.ca.display().to_string();
    let remote = Remote {
        git: &git,
        kubectl: &kubectl,
        bare: &bare,
        url: &host.url,
    };
    remote.followed_with(&[("SSL_CERT_FILE", &ca)]);
    remote.refused_with(&[("SSL_CERT_FILE", "/nonexistent/ca.pem")], "certificate");
}

/// OpenSSH's server on a loopback port, letting in one key of the test's own; killed on drop.
struct GitSsh {
    _server: Served,
    port: u16,
    dir: PathBuf,
}

impl GitSsh {
    fn serve(dir: &Path, sshd: &Path, keygen: &Path) -> GitSsh {
        for key in ["host_key", "client_key", "stranger_key"] {
            let out = Command::new(keygen)
                .args(["-q", "-t", "ed25519", "-N", ""])
                .arg("-f")
                .arg(dir.join(key))
                .output()
                .expect("ssh-keygen");
            assert!(out.status.success(), "ssh-keygen: {}", text(&out.stderr));
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).expect("keys");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).expect("sshd_config");
        // sshd wants its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let server = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        GitSsh {
            _server: Served(server),
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// `GIT_SSH_COMMAND` for logging in with `key`, without asking about the host.
    fn ssh_command(&self, key: &str) -> String {
        format!(
            "ssh -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes",
            self.dir.join(key).display()
        )
    }
}

#[test]
fn an_ssh_remote_is_followed_and_a_refused_key_is_reported() {
    let Some((git, kubectl)) = tools() else {
        return;
    };
    let (Some(sshd), Some(keygen)) = (
        ferry_testkit::tools::sshd(),
        ferry_testkit::tools::ssh_keygen(),
    ) else {
        return;
    };
    let user = Command::new("id").arg("-un").output().expect("id -un");
    let user = text(&user.stdout).trim().to_owned();
    if user != "root" {
        // sshd serves other users only when started by root.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the ssh:// test needs root under CI=true"
        );
        eprintln!("not root: the ssh:// test does not run");
        return;
    }
    let served = tempfile::tempdir().expect("tempdir");
    let bare = bare_repository(&git, served.path());
    let host = GitSsh::serve(served.path(), &sshd, &keygen);
    let url = format!("ssh://{user}@127.0.0.1:{}{}", host.port, bare.display());
    let remote = Remote {
        git: &git,
        kubectl: &kubectl,
        bare: &bare,
        url: &url,
    };
    remote.followed_with(&[("GIT_SSH_COMMAND", &host.ssh_command("client_key"))]);
    // A key the host does not know: nothing is applied, and the status says the fetch failed.
    remote.refused_with(
        &[("GIT_SSH_COMMAND", &host.ssh_command("stranger_key"))],
        "cannot fetch",
    );
}

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              color: {type: string, default: red}
";

fn widget(name: &str, size: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  size: {size}\n"
    )
}

#[test]
fn a_commit_with_a_crd_and_its_custom_resources_is_applied_as_one() {
    let Some((git, kubectl)) = tools() else {
        return;
    };
    let repo = Repo::new(&git);
    repo.write("namespace.yaml", NAMESPACE);
    // The custom resource comes first in file order; the CRD is applied before it.
    repo.write("a-widgets/w1.yaml", &widget("w1", "2"));
    repo.write("crds/widget.yaml", WIDGET_CRD);
    let first = repo.commit("Widgets and their CRD");
    let ferry = Ferry::up(
        &kubectl,
        &repo.path().display().to_string(),
        &["--drift-interval", "1h"],
    );
    let r = ferry.wait_records(1);
    assert_eq!(r["commit"], first.as_str());
    assert_eq!(r["result"], "Applied", "{r:#}");
    let out = ferry.kubectl(&[
        "get",
        "widget",
        "w1",
        "-n",
        "shop",
        "-o",
        "jsonpath={.spec.size} {.spec.color}",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 red");

    // A custom resource that breaks its CRD's schema (from the same commit's CRD) is refused
    // at validation, with the file, the object and the field.
    repo.write("a-widgets/w2.yaml", &widget("w2", "0"));
    repo.commit("A widget too small");
    let r = ferry.wait_records(2);
    assert_eq!(r["result"], "Rejected", "{r:#}");
    let errors = r["errors"].as_array().cloned().unwrap_or_default();
    let e = errors
        .iter()
        .find(|e| e["file"] == "a-widgets/w2.yaml")
        .unwrap_or_else(|| panic!("{errors:#?}"));
    assert_eq!(e["path"], "/spec/size");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("greater than or equal to 1")),
        "{e:#}"
    );

    // A kind that neither the cluster nor the commit defines is refused with that reason.
    repo.write("a-widgets/w2.yaml", "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g1\n  namespace: shop\nspec: {}\n");
    repo.commit("A gadget nobody defines");
    let r = ferry.wait_records(3);
    assert_eq!(r["result"], "Rejected", "{r:#}");
    let text = r.to_string();
    assert!(
        text.contains("no CustomResourceDefinition in the cluster or in this commit defines it"),
        "{r:#}"
    );
    assert!(
        !ferry
            .kubectl(&["get", "widget", "w2", "-n", "shop"])
            .status
            .success(),
        "nothing of a refused commit is applied"
    );

    // Removing a custom resource from the repository prunes it.
    repo.remove("a-widgets/w2.yaml");
    repo.remove("a-widgets/w1.yaml");
    repo.write("a-widgets/w3.yaml", &widget("w3", "5"));
    repo.commit("Replace w1 with w3");
    let r = ferry.wait_records(4);
    assert_eq!(r["result"], "Applied", "{r:#}");
    assert!(
        ferry
            .kubectl(&["get", "widget", "w3", "-n", "shop"])
            .status
            .success()
    );
    assert!(
        !ferry
            .kubectl(&["get", "widget", "w1", "-n", "shop"])
            .status
            .success()
    );
}
