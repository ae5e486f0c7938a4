//! `ferry apiserver` driven by the real, unmodified kubectl, on SQLite and on PostgreSQL:
//! the everyday commands, their errors, watch, durability across `kill -9`, and shutdown.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_testkit::TempPostgres;
use ferry_testkit::ferry::{FerryProcess, Kubectl, Watching, text};

fn kubectl_binary() -> Option<PathBuf> {
    ferry_testkit::tools::kubectl()
}

/// An apiserver and a kubectl for it (the spawner and the runner live in the testkit).
struct Apiserver {
    server: FerryProcess,
    k: Kubectl,
    dir: tempfile::TempDir,
}

impl Apiserver {
    fn start(kubectl: &Path, db: Option<String>) -> Apiserver {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = vec![
            "apiserver".to_owned(),
            "--data-dir".to_owned(),
            dir.path().join("data").display().to_string(),
        ];
        if let Some(db) = db {
            args.push("--db".into());
            args.push(db);
        }
        let ferry = Path::new(env!("CARGO_BIN_EXE_ferry"));
        let server = FerryProcess::start(ferry, &args);
        let k = Kubectl::new(kubectl, ferry, &server.url, dir.path());
        Apiserver { server, k, dir }
    }

    /// Kills the server at once (SIGKILL) and starts it again on the same port and database.
    fn crash_and_restart(&mut self) {
        self.server.crash_and_restart();
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.k.run(args)
    }

    fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        self.k.run_stdin(args, input)
    }

    /// Starts a long-running kubectl (a watch).
    fn watch(&self, args: &[&str]) -> Watching {
        self.k.watch(args)
    }

    /// Runs kubectl and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.k.ok(args)
    }

    /// `kubectl get <target...> -o jsonpath=<path>`, expected to succeed.
    fn jsonpath(&self, target: &[&str], path: &str) -> String {
        self.k.jsonpath(target, path)
    }

    /// Runs kubectl and expects failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        self.k.fails(args)
    }
}

/// Reads a running `kubectl get -w` until a line contains `needle` (10 s at most); returns
/// every line read.
fn read_watch_until(watch: &mut Watching, needle: &str) -> String {
    watch.until(Duration::from_secs(10), |line| line.contains(needle));
    watch.seen.join("\n")
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 80, name: http}]
";

fn everyday(api: &Apiserver) {
    let version = api.ok(&["version"]);
    assert!(version.contains("Server Version: v1.33"), "{version}");
    let resources = api.ok(&["api-resources"]);
    for expected in [
        "deployments",
        "deploy",
        "apps/v1",
        "sources",
        "ferry.dev/v1",
        "leases",
        "coordination.k8s.io/v1",
    ] {
        assert!(
            resources.contains(expected),
            "{expected} missing from api-resources:\n{resources}"
        );
    }
    let namespaces = api.ok(&["get", "namespaces"]);
    for ns in ["default", "kube-system", "kube-node-lease"] {
        assert!(namespaces.contains(ns), "{namespaces}");
    }

    // create, then the same again: AlreadyExists.
    let out = api.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = api.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    );
    assert!(
        text(&out.stderr).contains("AlreadyExists"),
        "{}",
        text(&out.stderr)
    );

    // apply creates, apply of a change configures.
    let out = api.kubectl_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    assert!(
        text(&out.stdout).contains("deployment.apps/web created"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = api.kubectl_stdin(
        &["apply", "-f", "-"],
        &DEPLOYMENT.replace("replicas: 2", "replicas: 3"),
    );
    assert!(
        text(&out.stdout).contains("deployment.apps/web configured"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        api.jsonpath(
            &["deploy", "web", "-n", "shop"],
            "{.spec.replicas} {.metadata.generation}"
        ),
        "3 2"
    );

    // apply --server-side: field ownership, a conflict after someone else scaled, and force.
    let ssa = DEPLOYMENT
        .replace("name: web", "name: ssa")
        .replace("app: web", "app: ssa");
    let out = api.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &ssa);
    assert!(
        text(&out.stdout).contains("serverside-applied"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    api.ok(&["scale", "deploy", "ssa", "-n", "shop", "--replicas=4"]);
    let changed = ssa.replace("nginx:1.27", "nginx:1.28");
    let out = api.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &changed);
    let err = text(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("Apply failed with 1 conflict")
            && err.contains(".spec.replicas"),
        "{err}"
    );
    let out = api.kubectl_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &changed,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        api.jsonpath(&["deploy", "ssa", "-n", "shop"], "{.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.managedFields[*].manager}"),
        "2 nginx:1.28 kubectl"
    );
    api.ok(&["delete", "deploy", "ssa", "-n", "shop"]);

    // The binding subresource assigns a pod to a node, once.
    let out = api.kubectl_stdin(&["create", "-f", "-"], "apiVersion: v1\nkind: Pod\nmetadata: {name: p1, namespace: shop}\nspec:\n  containers: [{name: c, image: busybox}]\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let binding = r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p1"},"target":{"kind":"Node","name":"node-1"}}"#;
    let bind = |api: &Apiserver| {
        api.kubectl_stdin(
            &[
                "create",
                "--raw",
                "/api/v1/namespaces/shop/pods/p1/binding",
                "-f",
                "-",
            ],
            binding,
        )
    };
    let out = bind(api);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        api.jsonpath(&["pod", "p1", "-n", "shop"], "{.spec.nodeName}"),
        "node-1"
    );
    let out = bind(api);
    assert!(
        text(&out.stderr).contains("already assigned"),
        "{}",
        text(&out.stderr)
    );

    // get prints kubectl's Table columns.
    let table = api.ok(&["get", "deployments", "-n", "shop"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("web ") && l.contains("0/3")),
        "{table}"
    );

    // label, scale, and the three patch types.
    api.ok(&["label", "deploy", "web", "-n", "shop", "tier=front"]);
    api.ok(&["scale", "deploy", "web", "-n", "shop", "--replicas=5"]);
    api.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "shop",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/minReadySeconds","value":5}]"#,
    ]);
    api.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"metadata":{"annotations":{"owner":"team-a"}}}"#,
    ]);
    api.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "shop",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}"#,
    ]);
    let got = api.jsonpath(&["deploy", "web", "-n", "shop"], "{.metadata.labels.tier} {.spec.replicas} {.spec.minReadySeconds} {.metadata.annotations.owner} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}");
    assert_eq!(got, "front 5 5 team-a nginx:1.28 80");

    // Invalid objects: 422 with the field; unknown fields: refused by kubectl's default strict validation.
    let out = api.kubectl_stdin(&["create", "-f", "-"], "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: shop}\nspec:\n  ports: [{port: 70000}]\n");
    let err = text(&out.stderr);
    assert!(
        err.contains("is invalid") && err.contains("spec.ports[0].port"),
        "{err}"
    );
    let out = api.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo, namespace: shop}\ndatta: {a: b}\n",
    );
    assert!(
        text(&out.stderr).contains("unknown field \"datta\""),
        "{}",
        text(&out.stderr)
    );

    // Optimistic concurrency: a replace with a stale resourceVersion is a Conflict.
    let stale = api.ok(&["get", "deploy", "web", "-n", "shop", "-o", "json"]);
    api.ok(&["label", "deploy", "web", "-n", "shop", "moved=on"]);
    let out = api.kubectl_stdin(&["replace", "-f", "-"], &stale);
    assert!(
        text(&out.stderr).contains("the object has been modified"),
        "{}",
        text(&out.stderr)
    );

    // get -w --output-watch-events sees ADDED, MODIFIED and DELETED, in order.
    let mut watch = api.watch(&[
        "get",
        "configmaps",
        "-n",
        "shop",
        "-w",
        "--output-watch-events",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let out = api.kubectl_stdin(&["create", "-f", "-"], "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched, namespace: shop}\ndata: {a: b}\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    api.ok(&["label", "cm", "watched", "-n", "shop", "x=y"]);
    api.ok(&["delete", "cm", "watched", "-n", "shop"]);
    let events = read_watch_until(&mut watch, "DELETED");
    let kinds: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("watched"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(kinds, vec!["ADDED", "MODIFIED", "DELETED"], "{events}");

    // Services get a ClusterIP from the service CIDR; a NodePort is held until the Service goes.
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: front, namespace: shop}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, nodePort: 30080}]\n";
    let out = api.kubectl_stdin(&["apply", "-f", "-"], svc);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ip = api.jsonpath(&["svc", "front", "-n", "shop"], "{.spec.clusterIP}");
    let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    assert!(
        octets.len() == 4 && octets[0] == 10 && (96..112).contains(&octets[1]),
        "{ip} is in 10.96.0.0/12"
    );
    let clash = svc.replace("name: front", "name: clash");
    let out = api.kubectl_stdin(&["apply", "-f", "-"], &clash);
    assert!(
        text(&out.stderr).contains("30080 is already allocated"),
        "{}",
        text(&out.stderr)
    );
    let out = api.kubectl_stdin(
        &["replace", "-f", "-"],
        &svc.replace("port: 80,", "port: 80, targetPort: 8080,"),
    );
    assert!(
        out.status.success(),
        "replace without clusterIP keeps it: {}",
        text(&out.stderr)
    );
    assert_eq!(
        api.jsonpath(&["svc", "front", "-n", "shop"], "{.spec.clusterIP}"),
        ip
    );
    api.ok(&["delete", "svc", "front", "-n", "shop"]);
    let out = api.kubectl_stdin(&["apply", "-f", "-"], &clash);
    assert!(
        out.status.success(),
        "the NodePort was released: {}",
        text(&out.stderr)
    );

    // delete (which waits), then NotFound.
    let out = api.ok(&["delete", "deploy", "web", "-n", "shop"]);
    assert!(out.contains("deleted"), "{out}");
    let err = api.fails(&["get", "deploy", "web", "-n", "shop"]);
    assert!(
        err.contains("NotFound") && err.contains("\"web\" not found"),
        "{err}"
    );
    // Objects in a missing namespace: 404.
    let out = api.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nowhere}\n",
    );
    assert!(
        text(&out.stderr).contains("namespaces \"nowhere\" not found"),
        "{}",
        text(&out.stderr)
    );
    // Deleting a namespace takes what is in it.
    let out = api.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: inside, namespace: shop}\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    api.ok(&["delete", "namespace", "shop"]);
    assert!(
        api.fails(&["get", "cm", "inside", "-n", "shop"])
            .contains("not found")
    );

    // A namespace whose content a finalizer holds stays Terminating, refuses new content, and
    // goes once the finalizer is removed.
    api.ok(&["create", "namespace", "held"]);
    assert_eq!(
        api.jsonpath(&["ns", "held"], "{.spec.finalizers}"),
        r#"["kubernetes"]"#
    );
    let out = api.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, namespace: held, finalizers: [example.com/hold]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: free, namespace: held}\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    api.ok(&["delete", "namespace", "held", "--wait=false"]);
    assert_eq!(
        api.jsonpath(&["ns", "held"], "{.status.phase}"),
        "Terminating"
    );
    assert_eq!(
        api.ok(&[
            "get",
            "ns",
            "held",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="NamespaceFinalizersRemaining")].message}"#
        ]),
        "Some content in the namespace has finalizers remaining: example.com/hold"
    );
    assert!(
        api.fails(&["get", "cm", "free", "-n", "held"])
            .contains("not found")
    );
    assert!(
        !api.jsonpath(
            &["cm", "kept", "-n", "held"],
            "{.metadata.deletionTimestamp}"
        )
        .is_empty()
    );
    let out = api.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, namespace: held}\n",
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("Forbidden")
            && err.contains(
                "unable to create new content in namespace held because it is being terminated"
            ),
        "{err}"
    );
    api.ok(&[
        "patch",
        "cm",
        "kept",
        "-n",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    api.ok(&["wait", "--for=delete", "namespace/held", "--timeout=20s"]);
    // A protected namespace stays.
    assert!(
        api.fails(&["delete", "namespace", "default"])
            .contains("Forbidden")
    );
}

/// kubectl's typed-client commands send `application/vnd.kubernetes.protobuf` bodies.
fn typed_clients(api: &Apiserver) {
    let out = api.ok(&["create", "namespace", "typed"]);
    assert_eq!(out.trim(), "namespace/typed created");
    assert_eq!(api.jsonpath(&["ns", "typed"], "{.status.phase}"), "Active");
    let err = api.fails(&["create", "namespace", "typed"]);
    assert!(err.contains("AlreadyExists"), "{err}");
    let err = api.fails(&["create", "namespace", "Bad_Name"]);
    assert!(err.contains("Invalid") || err.contains("invalid"), "{err}");
    let n = ["-n", "typed"];
    // The namespace goes first: what follows `--` is the container command.
    let run = |args: &[&str]| api.ok(&[&n[..], args].concat());

    run(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=0",
        "--port=8080",
    ]);
    let deploy: serde_json::Value =
        serde_json::from_str(&run(&["get", "deploy", "web", "-o", "json"])).expect("json");
    assert_eq!(
        deploy["spec"]["replicas"], 0,
        "an explicit zero survives: {deploy}"
    );
    assert_eq!(deploy["spec"]["selector"]["matchLabels"]["app"], "web");
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    // Defaults land where a JSON client's would: the empty strings protobuf carries are unset.
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(deploy["spec"]["strategy"]["type"], "RollingUpdate");
    assert!(
        deploy["metadata"]["creationTimestamp"].is_string(),
        "{deploy}"
    );

    run(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
        "--from-literal=empty=",
    ]);
    assert_eq!(
        run(&["get", "cm", "settings", "-o", "jsonpath={.data}"]),
        r#"{"empty":"","mode":"fast"}"#
    );
    run(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=s3cr3t",
    ]);
    assert_eq!(
        run(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]),
        "czNjcjN0"
    );
    assert_eq!(
        run(&["get", "secret", "db", "-o", "jsonpath={.type}"]),
        "Opaque"
    );

    run(&[
        "create",
        "job",
        "once",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ]);
    assert_eq!(
        run(&[
            "get",
            "job",
            "once",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].command}"
        ]),
        r#"["echo","hi"]"#
    );
    run(&[
        "create",
        "cronjob",
        "nightly",
        "--image=busybox",
        "--schedule=0 3 * * *",
        "--",
        "true",
    ]);
    run(&["create", "job", "from-cron", "--from=cronjob/nightly"]);
    let job: serde_json::Value =
        serde_json::from_str(&run(&["get", "job", "from-cron", "-o", "json"])).expect("json");
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["kind"], "CronJob",
        "{job}"
    );
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );

    run(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let table = run(&["get", "svc", "web"]);
    assert!(
        table.contains(" 80/TCP "),
        "no node port on a ClusterIP service:\n{table}"
    );
    assert_eq!(
        run(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}"
        ]),
        "8080"
    );
    run(&["create", "service", "nodeport", "edge", "--tcp=80:8080"]);
    let port = run(&[
        "get",
        "svc",
        "edge",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let port: u16 = port
        .parse()
        .unwrap_or_else(|_| panic!("allocated node port: {port:?}"));
    assert!((30000..=32767).contains(&port), "{port}");

    run(&["create", "serviceaccount", "robot"]);
    run(&[
        "create",
        "poddisruptionbudget",
        "web",
        "--selector=app=web",
        "--min-available=1",
    ]);
    assert_eq!(
        run(&["get", "pdb", "web", "-o", "jsonpath={.spec.minAvailable}"]),
        "1"
    );
    run(&[
        "create",
        "ingress",
        "web",
        "--rule=shop.example/cart*=web:80",
    ]);
    assert_eq!(
        run(&[
            "get",
            "ingress",
            "web",
            "-o",
            "jsonpath={.spec.rules[0].http.paths[0].backend.service.name}"
        ]),
        "web"
    );
    // Kinds whose status carries counters from the start (JSON bodies).
    let template = "selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: a, image: busybox}]}\n";
    for kind in ["DaemonSet", "StatefulSet", "ReplicaSet"] {
        let manifest = format!(
            "apiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: a, namespace: typed}}\nspec:\n  {template}"
        );
        let out = api.kubectl_stdin(&["create", "-f", "-"], &manifest);
        assert!(out.status.success(), "{kind}: {}", text(&out.stderr));
    }
    assert_eq!(
        run(&["get", "ds", "a", "-o", "jsonpath={.status.numberReady}"]),
        "0"
    );
    run(&["delete", "namespace", "typed"]);
}

fn durability(api: &mut Apiserver) {
    let out = api.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: durable}\ndata: {k: v}\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    api.crash_and_restart();
    assert_eq!(api.jsonpath(&["cm", "durable"], "{.data.k}"), "v");
}

#[test]
fn kubectl_everyday_on_sqlite() {
    let Some(kubectl) = kubectl_binary() else {
        return;
    };
    let mut api = Apiserver::start(&kubectl, None);
    everyday(&api);
    typed_clients(&api);
    durability(&mut api);
}

#[test]
fn kubectl_everyday_on_postgres() {
    let Some(kubectl) = kubectl_binary() else {
        return;
    };
    let Some(pg) = TempPostgres::start() else {
        return;
    };
    let mut api = Apiserver::start(&kubectl, Some(pg.database("kubectl")));
    everyday(&api);
    typed_clients(&api);
    durability(&mut api);
}

#[test]
fn two_apiservers_on_one_postgres_a_watch_on_one_sees_writes_through_the_other() {
    let Some(kubectl) = kubectl_binary() else {
        return;
    };
    let Some(pg) = TempPostgres::start() else {
        return;
    };
    let url = pg.database("shared");
    let a = Apiserver::start(&kubectl, Some(url.clone()));
    let b = Apiserver::start(&kubectl, Some(url));
    let mut watch = a.watch(&[
        "get",
        "configmaps",
        "-w",
        "--output-watch-events",
        "--watch-only",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..10 {
        b.ok(&[
            "create",
            "configmap",
            &format!("through-b-{i}"),
            "--from-literal=i=x",
        ]);
    }
    b.ok(&["label", "cm", "through-b-3", "seen=yes"]);
    b.ok(&["delete", "cm", "through-b-7"]);
    // Written through A as well: both servers hand out revisions from one sequence.
    a.ok(&["create", "configmap", "through-a"]);
    let events = read_watch_until(&mut watch, "through-a");
    let seen: Vec<(String, String)> = events
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .filter(|(_, name)| name.starts_with("through-"))
        .collect();
    let mut expected: Vec<(String, String)> = (0..10)
        .map(|i| ("ADDED".to_owned(), format!("through-b-{i}")))
        .collect();
    expected.push(("MODIFIED".into(), "through-b-3".into()));
    expected.push(("DELETED".into(), "through-b-7".into()));
    expected.push(("ADDED".into(), "through-a".into()));
    assert_eq!(seen, expected, "{events}");
    // Both servers agree on the state and its revision.
    let names = |api: &Apiserver| api.ok(&["get", "cm", "-o", "name"]);
    assert_eq!(names(&a), names(&b));
}

#[test]
fn sigterm_drains_with_a_watch_open() {
    let Some(kubectl) = kubectl_binary() else {
        return;
    };
    let mut api = Apiserver::start(&kubectl, None);
    let watch = api
        .k
        .command()
        .args(["get", "pods", "-w"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch starts");
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let pid = api.server.pid().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    let status = loop {
        if let Some(status) = api.server.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the apiserver did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    let mut watch = watch;
    if let Err(e) = watch.kill().and_then(|()| watch.wait().map(|_| ())) {
        eprintln!("stopping the watch: {e}");
    }
    assert!(api.dir.path().join("data/ferry.db").exists());
}

#[test]
fn refuses_to_listen_beyond_loopback_without_tls() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "apiserver",
            "--listen",
            "0.0.0.0:16444",
            "--data-dir",
            "/tmp/ferry-refused",
        ])
        .output()
        .expect("ferry runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("refusing to listen on 0.0.0.0:16444 without TLS"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn postgres_outage_is_a_503_then_the_apiserver_recovers() {
    let Some(kubectl) = kubectl_binary() else {
        return;
    };
    let Some(pg) = TempPostgres::start() else {
        return;
    };
    let api = Apiserver::start(&kubectl, Some(pg.database("outage")));
    api.ok(&["create", "configmap", "--dry-run=client", "-o", "name", "x"]);
    let out = api.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: before}\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    pg.kill();
    let err = api.fails(&["get", "configmap", "before"]);
    assert!(err.contains("ServiceUnavailable"), "{err}");
    api.fails(&["get", "--raw", "/readyz"]);
    assert_eq!(api.ok(&["get", "--raw", "/livez"]), "ok");
    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = api.kubectl(&[
            "get",
            "configmap",
            "before",
            "-o",
            "jsonpath={.metadata.name}",
        ]);
        if out.status.success() {
            assert_eq!(text(&out.stdout), "before");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the apiserver did not recover: {}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = api.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after}\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(api.ok(&["get", "--raw", "/readyz"]), "ok");
    let metrics = api.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains("apiserver_request_total{verb=\"create\",code=\"201\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("apiserver_request_total{verb=\"get\",code=\"503\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("ferry_storage_revision "), "{metrics}");
    // The allocator's account of the process: it holds something, and what is resident
    // covers the pages holding it.
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let allocated = gauge("ferry_heap_allocated_bytes");
    let active = gauge("ferry_heap_active_bytes");
    let resident = gauge("ferry_heap_resident_bytes");
    assert!(allocated > 1 << 20, "{allocated}");
    assert!(active >= allocated && resident >= active, "{metrics}");
    gauge("ferry_heap_metadata_bytes");
    gauge("ferry_heap_retained_bytes");
}
