//! What real clients found wrong with the apiserver, each driven with the client that found it
//! (the unmodified kubectl; the official Python `kubernetes` client), on SQLite and PostgreSQL:
//! lists of more than one chunk, selector watches that objects stop matching, server-side dry
//! runs, unknown fields, writes Kubernetes refuses, writes that change nothing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferry_testkit::TempPostgres;
use ferry_testkit::ferry::{FerryProcess, Kubectl, text};

struct Cluster {
    kubectl: Kubectl,
    _server: FerryProcess,
    _dir: tempfile::TempDir,
}

fn ferry_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}

fn apiserver(kubectl: &Path, db: Option<String>) -> Cluster {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec![
        "apiserver".to_owned(),
        "--data-dir".to_owned(),
        dir.path().join("data").display().to_string(),
    ];
    if let Some(db) = db {
        args.extend(["--db".to_owned(), db]);
    }
    let server = FerryProcess::start(ferry_binary(), &args);
    let kubectl = Kubectl::new(kubectl, ferry_binary(), &server.url, dir.path());
    Cluster {
        kubectl,
        _server: server,
        _dir: dir,
    }
}

/// Runs `check` against an apiserver on SQLite, then on a throwaway PostgreSQL.
fn on_both(check: impl Fn(&Kubectl)) {
    let Some(kubectl) = ferry_testkit::tools::kubectl() else {
        return;
    };
    let cluster = apiserver(&kubectl, None);
    check(&cluster.kubectl);
    if let Some(pg) = TempPostgres::start() {
        let cluster = apiserver(&kubectl, Some(pg.database("clients")));
        check(&cluster.kubectl);
    }
}

/// `count` ConfigMaps in namespace `ns` as one List, every other one labelled `parity=odd`.
fn config_maps(ns: &str, count: usize) -> String {
    let items: Vec<String> = (0..count)
        .map(|i| {
            let parity = if i % 2 == 1 { "odd" } else { "even" };
            format!(
                "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"cm-{i:04}\",\"namespace\":\"{ns}\",\"labels\":{{\"parity\":\"{parity}\"}}}},\"data\":{{\"v\":\"1\"}}}}"
            )
        })
        .collect();
    format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{}]}}",
        items.join(",")
    )
}

fn lines(out: &str) -> usize {
    out.lines().filter(|l| !l.trim().is_empty()).count()
}

fn rv(k: &Kubectl, what: &[&str]) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend(["-o", "jsonpath={.metadata.resourceVersion}"]);
    k.ok(&args)
}

#[test]
fn kubectl_get_pages_through_every_chunk_with_selectors() {
    on_both(|k| {
        k.ok(&["create", "namespace", "paging"]);
        k.ok_stdin(&["create", "-f", "-"], &config_maps("paging", 1_200));
        // kubectl get asks for Tables, 500 at a time by default.
        assert_eq!(
            lines(&k.ok(&["get", "cm", "-n", "paging", "--no-headers"])),
            1_200
        );
        assert_eq!(
            lines(&k.ok(&[
                "get",
                "cm",
                "-n",
                "paging",
                "-l",
                "parity=odd",
                "--no-headers",
                "--chunk-size=100"
            ])),
            600
        );
        assert_eq!(
            lines(&k.ok(&[
                "get",
                "cm",
                "-n",
                "paging",
                "-l",
                "parity=odd",
                "-o",
                "name"
            ])),
            600
        );
        assert_eq!(
            lines(&k.ok(&[
                "get",
                "cm",
                "-A",
                "--field-selector",
                "metadata.namespace=paging",
                "-o",
                "name",
                "--chunk-size=250",
            ])),
            1_200
        );
        // The raw pages: a selector page carries continue but no remainingItemCount.
        let page = k.ok(&[
            "get",
            "--raw",
            "/api/v1/namespaces/paging/configmaps?limit=100&labelSelector=parity%3Dodd",
        ]);
        let page: serde_json::Value = serde_json::from_str(&page).expect("json");
        assert!(
            page["metadata"]["continue"].is_string(),
            "{}",
            page["metadata"]
        );
        assert!(page["metadata"].get("remainingItemCount").is_none());
        let plain = k.ok(&[
            "get",
            "--raw",
            "/api/v1/namespaces/paging/configmaps?limit=100",
        ]);
        let plain: serde_json::Value = serde_json::from_str(&plain).expect("json");
        assert_eq!(plain["metadata"]["remainingItemCount"], 1_100);
        // A token that is not one answers 400.
        let bad = k.fails(&[
            "get",
            "--raw",
            "/api/v1/namespaces/paging/configmaps?limit=10&continue=nonsense",
        ]);
        assert!(bad.contains("continue key is not valid"), "{bad}");
    });
}

#[test]
fn kubectl_watch_with_a_selector_sees_objects_arrive_and_leave() {
    on_both(|k| {
        k.ok(&["create", "configmap", "a", "--from-literal=v=1"]);
        k.ok(&["label", "configmap", "a", "app=web"]);
        k.ok(&["create", "configmap", "b", "--from-literal=v=1"]);
        k.ok(&["label", "configmap", "b", "app=db"]);
        let mut watch = k.watch(&[
            "get",
            "cm",
            "-l",
            "app=web",
            "-w",
            "--output-watch-events",
            "--no-headers",
        ]);
        watch.until(Duration::from_secs(10), |l| {
            l.starts_with("ADDED") && l.contains(" a ")
        });
        k.ok(&["label", "configmap", "a", "app=db", "--overwrite"]);
        watch.until(Duration::from_secs(10), |l| {
            l.starts_with("DELETED") && l.contains(" a ")
        });
        k.ok(&["label", "configmap", "b", "app=web", "--overwrite"]);
        watch.until(Duration::from_secs(10), |l| {
            l.starts_with("ADDED") && l.contains(" b ")
        });
        assert!(
            !watch.seen.iter().any(|l| l.starts_with("MODIFIED")),
            "no MODIFIED for objects entering or leaving the selection: {:#?}",
            watch.seen
        );
    });
}

#[test]
fn server_side_dry_runs_change_nothing() {
    on_both(|k| {
        k.ok(&["create", "namespace", "dry"]);
        k.ok_stdin(&["create", "-f", "-"], &config_maps("dry", 6));
        k.ok(&[
            "create",
            "deployment",
            "web",
            "-n",
            "dry",
            "--image=nginx:1.27",
            "--replicas=2",
        ]);
        let before_cm = rv(k, &["cm", "cm-0001", "-n", "dry"]);
        let before_deploy = rv(k, &["deploy", "web", "-n", "dry"]);
        let out = k.ok(&["delete", "cm", "cm-0001", "-n", "dry", "--dry-run=server"]);
        assert!(out.contains("deleted (server dry run)"), "{out}");
        k.ok(&[
            "delete",
            "cm",
            "-n",
            "dry",
            "-l",
            "parity=odd",
            "--dry-run=server",
        ]);
        assert_eq!(lines(&k.ok(&["get", "cm", "-n", "dry", "-o", "name"])), 6);
        assert_eq!(rv(k, &["cm", "cm-0001", "-n", "dry"]), before_cm);
        let out = k.ok(&[
            "scale",
            "deploy",
            "web",
            "-n",
            "dry",
            "--replicas=5",
            "--dry-run=server",
        ]);
        assert!(out.contains("scaled (server dry run)"), "{out}");
        k.ok(&[
            "label",
            "deploy",
            "web",
            "-n",
            "dry",
            "tier=front",
            "--dry-run=server",
        ]);
        k.ok(&[
            "annotate",
            "deploy",
            "web",
            "-n",
            "dry",
            "note=x",
            "--dry-run=server",
        ]);
        k.ok(&[
            "set",
            "image",
            "deploy/web",
            "-n",
            "dry",
            "nginx=nginx:1.28",
            "--dry-run=server",
        ]);
        assert_eq!(
            k.jsonpath(
                &["deploy", "web", "-n", "dry"],
                "{.spec.replicas} {.spec.template.spec.containers[0].image}"
            ),
            "2 nginx:1.27"
        );
        assert_eq!(rv(k, &["deploy", "web", "-n", "dry"]), before_deploy);
        k.ok(&["delete", "namespace", "dry", "--dry-run=server"]);
        k.ok(&["get", "namespace", "dry"]);
    });
}

const DEPLOYMENT_WITH_A_BOGUS_FIELD: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: loose, namespace: default}
spec:
  replicas: 1
  bogusField: 42
  selector: {matchLabels: {app: loose}}
  template:
    metadata: {labels: {app: loose}}
    spec:
      containers: [{name: web, image: nginx:1.27}]
";

#[test]
fn unknown_fields_are_dropped_not_stored() {
    on_both(|k| {
        let out = k.run_stdin(
            &["apply", "--validate=false", "-f", "-"],
            DEPLOYMENT_WITH_A_BOGUS_FIELD,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        // (kubectl keeps its own copy of what it applied in an annotation; the object does not
        // have the field.)
        let spec = k.jsonpath(&["deploy", "loose"], "{.spec}");
        assert!(!spec.contains("bogusField"), "{spec}");
        // A strict write afterwards works (the stored object has nothing unknown).
        k.ok(&["scale", "deploy", "loose", "--replicas=3"]);
        // Warn drops the field and says so; Strict refuses it.
        let also = DEPLOYMENT_WITH_A_BOGUS_FIELD.replace("bogusField: 42", "alsoBogus: 1");
        let out = k.run_stdin(&["apply", "--validate=warn", "-f", "-"], &also);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("unknown field"),
            "{}",
            text(&out.stderr)
        );
        let spec = k.jsonpath(&["deploy", "loose"], "{.spec}");
        assert!(!spec.contains("alsoBogus"), "{spec}");
        let out = k.run_stdin(&["apply", "--validate=strict", "-f", "-"], &also);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("unknown field \"spec.alsoBogus\""),
            "{}",
            text(&out.stderr)
        );
        // A merge patch through the API's default (Warn) drops it too.
        k.ok(&[
            "patch",
            "deploy",
            "loose",
            "--type=merge",
            "-p",
            "{\"spec\":{\"third\":1}}",
        ]);
        let spec = k.jsonpath(&["deploy", "loose"], "{.spec}");
        assert!(!spec.contains("third"), "{spec}");
    });
}

const IMMUTABLE: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: frozen}
immutable: true
data: {k: v}
";

const STRING_DATA: &str = "apiVersion: v1
kind: Secret
metadata: {name: plain}
stringData: {password: hunter2}
";

const TLS_WITHOUT_KEYS: &str = "apiVersion: v1
kind: Secret
metadata: {name: tls}
type: kubernetes.io/tls
data: {tls.crt: eA==}
";

#[test]
fn writes_kubernetes_refuses_are_refused() {
    on_both(|k| {
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let err = k.fails(&["delete", "namespace", ns]);
            assert!(
                err.contains("Forbidden") || err.contains("forbidden"),
                "{err}"
            );
            assert!(err.contains("this namespace may not be deleted"), "{err}");
            k.ok(&["get", "namespace", ns]);
        }
        k.ok_stdin(&["create", "-f", "-"], IMMUTABLE);
        let err = k.fails(&[
            "patch",
            "cm",
            "frozen",
            "--type=merge",
            "-p",
            "{\"data\":{\"k\":\"w\"}}",
        ]);
        assert!(
            err.contains("data: Forbidden: field is immutable when `immutable` is set"),
            "{err}"
        );
        let err = k.fails(&[
            "patch",
            "cm",
            "frozen",
            "--type=merge",
            "-p",
            "{\"immutable\":false}",
        ]);
        assert!(err.contains("immutable: Forbidden"), "{err}");
        assert_eq!(k.jsonpath(&["cm", "frozen"], "{.data.k}"), "v");
        // Labels may still change.
        k.ok(&["label", "cm", "frozen", "tier=front"]);

        k.ok_stdin(&["create", "-f", "-"], STRING_DATA);
        assert_eq!(
            k.jsonpath(&["secret", "plain"], "{.data.password}"),
            "aHVudGVyMg=="
        );
        assert!(
            !k.ok(&["get", "secret", "plain", "-o", "json"])
                .contains("stringData")
        );
        let err = k.fails(&[
            "patch",
            "secret",
            "plain",
            "--type=merge",
            "-p",
            "{\"type\":\"kubernetes.io/tls\"}",
        ]);
        assert!(
            err.contains("type: Invalid value: \"kubernetes.io/tls\": field is immutable"),
            "{err}"
        );

        let err = k.run_stdin(&["create", "-f", "-"], TLS_WITHOUT_KEYS);
        assert!(!err.status.success());
        assert!(
            text(&err.stderr).contains("data[tls.key]: Required value"),
            "{}",
            text(&err.stderr)
        );
    });
}

#[test]
fn writes_that_change_nothing_keep_the_resource_version() {
    on_both(|k| {
        k.ok(&["create", "configmap", "same", "--from-literal=k=v"]);
        k.ok(&["label", "cm", "same", "app=web"]);
        let before = rv(k, &["cm", "same"]);
        let out = k.ok(&[
            "patch",
            "cm",
            "same",
            "--type=merge",
            "-p",
            "{\"data\":{\"k\":\"v\"}}",
        ]);
        assert!(out.contains("(no change)"), "{out}");
        k.ok(&["label", "cm", "same", "app=web", "--overwrite"]);
        k.ok(&["annotate", "cm", "same", "--overwrite", "note-"]);
        assert_eq!(rv(k, &["cm", "same"]), before);
        // A replace of what was read before those no-ops does not conflict.
        let read = k
            .ok(&["get", "cm", "same", "-o", "yaml"])
            .replace("k: v", "k: w");
        k.ok_stdin(&["replace", "-f", "-"], &read);
        assert_eq!(k.jsonpath(&["cm", "same"], "{.data.k}"), "w");
    });
}

#[test]
fn every_cluster_has_the_kubernetes_service() {
    on_both(|k| {
        let out = k.ok(&["get", "svc", "kubernetes", "-n", "default", "--no-headers"]);
        assert!(
            out.contains("10.96.0.1") && out.contains("443/TCP"),
            "{out}"
        );
        let endpoints = k.jsonpath(
            &["endpoints", "kubernetes", "-n", "default"],
            "{.subsets[0].addresses[0].ip}",
        );
        assert_eq!(endpoints, "127.0.0.1");
        assert_eq!(
            k.jsonpath(
                &["ns", "default"],
                "{.metadata.labels.kubernetes\\.io/metadata\\.name}"
            ),
            "default"
        );
    });
}

fn python_client() -> Option<std::path::PathBuf> {
    ferry_testkit::tools::python_client()
}

#[test]
fn the_python_client_pages_a_selector_list_to_the_end_and_reads_statuses() {
    let Some(python) = python_client() else {
        return;
    };
    on_both(|k| {
        k.ok(&["create", "namespace", "py"]);
        k.ok_stdin(&["create", "-f", "-"], &config_maps("py", 700));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/python_client.py");
        let out = Command::new(&python)
            .arg(&script)
            .env("KUBECONFIG", k.kubeconfig())
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let report = text(&out.stdout);
        assert!(report.contains("odd: 350 in 4 pages"), "{report}");
        assert!(report.contains("status bytes: ok"), "{report}");
    });
}

const LIST_WITH_A_DEPLOYMENT: &str = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: listed}
  data: {a: b}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: listed}
  spec:
    selector: {matchLabels: {app: listed}}
    template:
      metadata: {labels: {app: listed}}
      spec:
        containers:
        - name: c
          image: nginx:1.27
          ports: [{containerPort: 80}]
          resources: {requests: {cpu: 1, memory: 1Gi}}
";

#[test]
fn kubectl_explain_and_client_side_validation_read_the_openapi_documents() {
    on_both(|k| {
        // OpenAPI v3: explain with and without --recursive.
        let out = k.ok(&["explain", "deployment.spec.strategy"]);
        assert!(
            out.contains("FIELD: strategy <DeploymentStrategy>"),
            "{out}"
        );
        assert!(
            out.contains("rollingUpdate\t<RollingUpdateDeployment>"),
            "{out}"
        );
        let out = k.ok(&["explain", "pods", "--recursive"]);
        assert!(
            out.contains("containers\t<[]Container> -required-"),
            "{out}"
        );
        assert!(out.contains("livenessProbe\t<Probe>"), "{out}");
        let out = k.ok(&["explain", "svc.spec.ports.targetPort"]);
        assert!(out.contains("<IntOrString>"), "{out}");
        // OpenAPI v2 in protobuf: kubectl validates a List on the client with it.
        k.ok_stdin(&["create", "-f", "-"], LIST_WITH_A_DEPLOYMENT);
        k.ok(&["get", "deploy", "listed"]);
        let bad = LIST_WITH_A_DEPLOYMENT
            .replace(
                "name: listed}\n  data",
                "name: listed2}\n  bogus: 1\n  data",
            )
            .replace("name: listed}\n  spec", "name: listed2}\n  spec");
        let out = k.run_stdin(&["create", "-f", "-"], &bad);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("unknown field \"bogus\" in io.k8s.api.core.v1.ConfigMap"),
            "{}",
            text(&out.stderr)
        );
    });
}

const TWO_PRUNABLE: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: keep-me, labels: {set: p}}
data: {a: b}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: prune-me, labels: {set: p}}
data: {a: b}
";

const EVENT: &str = "apiVersion: v1
kind: Event
metadata: {name: e1}
involvedObject: {kind: Pod, name: p, namespace: default}
reason: Scheduled
message: Successfully assigned default/p to node-1
type: Normal
source: {component: default-scheduler}
count: 3
firstTimestamp: \"2026-01-01T00:00:00Z\"
lastTimestamp: \"2026-01-01T00:05:00Z\"
";

#[test]
fn cluster_kinds_priority_prune_and_wide_output() {
    on_both(|k| {
        k.ok(&[
            "create",
            "clusterrole",
            "reader",
            "--verb=get,list",
            "--resource=pods",
        ]);
        k.ok(&["create", "role", "r", "--verb=get", "--resource=configmaps"]);
        k.ok(&["create", "rolebinding", "rb", "--role=r", "--user=alice"]);
        k.ok(&[
            "create",
            "clusterrolebinding",
            "crb",
            "--clusterrole=reader",
            "--group=devs",
        ]);
        let out = k.ok(&["get", "rolebinding,clusterrolebinding"]);
        assert!(
            out.contains("Role/r") && out.contains("ClusterRole/reader"),
            "{out}"
        );
        assert!(
            k.ok(&["get", "clusterrole", "reader"])
                .contains("CREATED AT")
        );
        k.ok(&["create", "quota", "q", "--hard=pods=10,requests.cpu=2"]);
        assert!(k.ok(&["get", "quota", "q"]).contains("pods: 0/10"));

        // PriorityClass admission: the class's value lands in spec.priority.
        k.ok(&["create", "priorityclass", "high", "--value=1000"]);
        let pcs = k.ok(&["get", "pc", "--no-headers"]);
        assert!(
            pcs.contains("system-cluster-critical") && pcs.contains("system-node-critical"),
            "{pcs}"
        );
        k.ok(&[
            "run",
            "p",
            "--image=nginx:1.27",
            "--overrides={\"spec\":{\"priorityClassName\":\"high\"}}",
        ]);
        assert_eq!(k.jsonpath(&["pod", "p"], "{.spec.priority}"), "1000");
        let err = k.fails(&[
            "run",
            "p2",
            "--image=nginx:1.27",
            "--overrides={\"spec\":{\"priorityClassName\":\"nope\"}}",
        ]);
        assert!(
            err.contains("no PriorityClass with name nope was found"),
            "{err}"
        );

        // -o wide and the columns kubectl users know.
        let pods = k.ok(&["get", "pods", "-o", "wide"]);
        assert!(
            pods.contains("NODE") && pods.contains("NOMINATED NODE"),
            "{pods}"
        );
        k.ok(&["create", "deployment", "web", "--image=nginx:1.27"]);
        let deploy = k.ok(&["get", "deploy", "web", "-o", "wide"]);
        assert!(
            deploy.contains("CONTAINERS")
                && deploy.contains("nginx:1.27")
                && deploy.contains("app=web"),
            "{deploy}"
        );
        k.ok(&[
            "expose",
            "deployment",
            "web",
            "--port=80",
            "--type=LoadBalancer",
        ]);
        let svc = k.ok(&["get", "svc", "web", "-o", "wide"]);
        assert!(
            svc.contains("<pending>") && svc.contains("SELECTOR"),
            "{svc}"
        );
        k.ok(&["create", "job", "j", "--image=busybox"]);
        assert!(k.ok(&["get", "job", "j"]).contains("DURATION"));
        k.ok_stdin(&["create", "-f", "-"], EVENT);
        let events = k.ok(&["get", "events"]);
        assert!(
            events.contains("LAST SEEN")
                && events.contains("pod/p")
                && events.contains("Successfully assigned"),
            "{events}"
        );

        // kubectl apply --prune: its default allowlist names every kind ferry now serves.
        k.ok_stdin(
            &["apply", "--prune", "-l", "set=p", "-f", "-"],
            TWO_PRUNABLE,
        );
        let one = TWO_PRUNABLE.split("---").next().unwrap_or_default();
        let out = k.ok_stdin(&["apply", "--prune", "-l", "set=p", "-f", "-"], one);
        assert!(out.contains("configmap/prune-me pruned"), "{out}");
        k.ok(&["get", "cm", "keep-me"]);
    });
}

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              replicas: {type: integer}
              color: {type: string, enum: [red, blue], default: red}
          status:
            type: object
            properties:
              replicas: {type: integer}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
";

#[test]
fn custom_resource_definitions_serve_their_kinds_while_running() {
    on_both(|k| {
        k.ok_stdin(&["apply", "-f", "-"], WIDGET_CRD);
        k.ok(&[
            "wait",
            "--for",
            "condition=established",
            "crd/widgets.example.com",
            "--timeout=10s",
        ]);
        assert!(
            k.ok(&["api-resources", "--api-group=example.com"])
                .contains("widgets")
        );
        k.ok_stdin(
            &["apply", "-f", "-"],
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, replicas: 1}\n",
        );
        // Printer columns, the default from the schema, short names.
        let out = k.ok(&["get", "wd"]);
        assert!(
            out.contains("SIZE") && out.contains("COLOR") && out.contains("red"),
            "{out}"
        );
        // Scale and status subresources.
        k.ok(&["scale", "widget", "w1", "--replicas=4"]);
        assert_eq!(k.jsonpath(&["widget", "w1"], "{.spec.replicas}"), "4");
        k.ok(&[
            "patch",
            "widget",
            "w1",
            "--subresource=status",
            "--type=merge",
            "-p",
            "{\"status\":{\"replicas\":4}}",
        ]);
        assert_eq!(k.jsonpath(&["widget", "w1"], "{.status.replicas}"), "4");
        // A status written through the main resource is ignored.
        k.ok(&[
            "patch",
            "widget",
            "w1",
            "--type=merge",
            "-p",
            "{\"status\":{\"replicas\":9}}",
        ]);
        assert_eq!(k.jsonpath(&["widget", "w1"], "{.status.replicas}"), "4");
        // The other served version (conversion None).
        assert_eq!(
            k.jsonpath(&["widgets.v1beta1.example.com", "w1"], "{.apiVersion}"),
            "example.com/v1beta1"
        );
        // kubectl explain reads the CRD's schema.
        let out = k.ok(&["explain", "widget.spec.color"]);
        assert!(
            out.contains("FIELD: color <string>") && out.contains("blue"),
            "{out}"
        );
        // The structural schema refuses, in Kubernetes' words; unknown fields fail strict.
        let out = k.run_stdin(
            &["apply", "-f", "-"],
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {size: 0, color: green}\n",
        );
        let err = text(&out.stderr);
        assert!(err.contains("spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"), "{err}");
        assert!(
            err.contains(
                "spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\""
            ),
            "{err}"
        );
        let out = k.run_stdin(
            &["apply", "-f", "-"],
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: loose}\nspec: {size: 1, bogus: 1}\n",
        );
        assert!(
            text(&out.stderr).contains("unknown field \"spec.bogus\""),
            "{}",
            text(&out.stderr)
        );
        // A List of custom resources is validated on the client with the v2 document too.
        k.ok_stdin(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: example.com/v1\n  kind: Widget\n  metadata: {name: w2}\n  spec: {size: 2}\n",
        );
        // Deleting the CRD deletes its objects and stops serving the kind.
        k.ok(&["delete", "crd", "widgets.example.com"]);
        // (kubectl's discovery cache may still name the kind; the server has no such resource.)
        let err = k.fails(&["get", "widgets"]);
        assert!(
            err.contains("the server doesn't have a resource type")
                || err.contains("the server could not find the requested resource"),
            "{err}"
        );
        k.ok_stdin(&["apply", "-f", "-"], WIDGET_CRD);
        assert!(
            k.ok(&["get", "widgets", "-o", "name"]).trim().is_empty(),
            "the old objects went with their CRD"
        );
    });
}

const TWO_CONTAINERS_ONE_NAME: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: twins}
spec:
  selector: {matchLabels: {app: twins}}
  template:
    metadata: {labels: {app: twins}}
    spec:
      containers:
      - {name: web, image: nginx:1.27}
      - {name: web, image: nginx:1.27}
";

#[test]
fn stored_objects_and_refusals_read_as_kubernetes_writes_them() {
    on_both(|k| {
        // Refusals in Kubernetes' words.
        let err = k.fails(&[
            "create",
            "deployment",
            "x",
            "--image=nginx:1.27",
            "--replicas=-1",
        ]);
        assert!(err.contains("Deployment.apps \"x\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"), "{err}");
        let out = k.run_stdin(&["create", "-f", "-"], TWO_CONTAINERS_ONE_NAME);
        assert!(
            text(&out.stderr)
                .contains("spec.template.spec.containers[1].name: Duplicate value: \"web\""),
            "{}",
            text(&out.stderr)
        );

        // Defaults as Kubernetes 1.33 stores them.
        k.ok(&["run", "p", "--image=nginx:1.27"]);
        let pod: serde_json::Value =
            serde_json::from_str(&k.ok(&["get", "pod", "p", "-o", "json"])).expect("json");
        assert_eq!(pod["spec"]["enableServiceLinks"], true);
        assert_eq!(pod["spec"]["priority"], 0);
        assert_eq!(pod["status"]["qosClass"], "BestEffort");
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            serde_json::json!({})
        );
        assert!(
            pod["spec"].get("initContainers").is_none(),
            "{}",
            pod["spec"]
        );
        assert!(pod["spec"]["containers"][0].get("ports").is_none());
        let tolerations = pod["spec"]["tolerations"].to_string();
        assert!(
            tolerations.contains("node.kubernetes.io/unreachable") && tolerations.contains("300"),
            "{tolerations}"
        );
        assert!(pod["metadata"].get("generation").is_none());
        k.ok(&["create", "configmap", "plain", "--from-literal=k=v"]);
        assert_eq!(k.jsonpath(&["cm", "plain"], "{.metadata.generation}"), "");
        k.ok(&["create", "job", "j", "--image=busybox"]);
        let job: serde_json::Value =
            serde_json::from_str(&k.ok(&["get", "job", "j", "-o", "json"])).expect("json");
        let uid = job["metadata"]["uid"].as_str().unwrap_or_default();
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            uid
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["job-name"],
            "j"
        );
        assert!(
            job["spec"]["template"]["metadata"]
                .get("generation")
                .is_none()
        );
        k.ok(&["create", "service", "nodeport", "np", "--tcp=80:8080"]);
        let svc: serde_json::Value =
            serde_json::from_str(&k.ok(&["get", "svc", "np", "-o", "json"])).expect("json");
        assert_eq!(svc["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
    });
}

fn two_container_deployment(first: (&str, u16), second: (&str, u16)) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: order\nspec:\n  selector:\n    matchLabels: {{app: order}}\n  template:\n    metadata:\n      labels: {{app: order}}\n    spec:\n      containers:\n      - name: {}\n        image: busybox\n        ports:\n        - containerPort: {}\n      - name: {}\n        image: busybox\n        ports:\n        - containerPort: {}\n",
        first.0, first.1, second.0, second.1
    )
}

#[test]
fn strategic_merge_follows_the_merge_keys_of_each_type() {
    on_both(|k| {
        // kubectl apply's three-way patch: containers merge by name, ports by containerPort,
        // and a reordering arrives as `$setElementOrder/containers`.
        k.ok_stdin(
            &["apply", "-f", "-"],
            &two_container_deployment(("a", 80), ("b", 81)),
        );
        k.ok_stdin(
            &["apply", "-f", "-"],
            &two_container_deployment(("b", 81), ("a", 8080)),
        );
        assert_eq!(
            k.jsonpath(&["deployment", "order"], "{.spec.template.spec.containers[*].name} {.spec.template.spec.containers[*].ports[*].containerPort}"),
            "b a 81 8080"
        );
        // Service ports merge by `port`; a scalar list (args) is replaced, not merged.
        k.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
        k.ok(&[
            "patch",
            "service",
            "web",
            "-p",
            "{\"spec\":{\"ports\":[{\"port\":443,\"targetPort\":8443,\"name\":\"https\"}]}}",
        ]);
        assert_eq!(
            k.jsonpath(&["svc", "web"], "{.spec.ports[*].port}"),
            "80 443"
        );
        k.ok(&[
            "patch",
            "deployment",
            "order",
            "-p",
            "{\"metadata\":{\"finalizers\":[\"x.dev/one\"]}}",
        ]);
        k.ok(&[
            "patch",
            "deployment",
            "order",
            "-p",
            "{\"metadata\":{\"finalizers\":[\"x.dev/two\"]}}",
        ]);
        assert_eq!(
            k.jsonpath(&["deployment", "order"], "{.metadata.finalizers}"),
            "[\"x.dev/one\",\"x.dev/two\"]"
        );
        k.ok(&[
            "patch",
            "deployment",
            "order",
            "--type=json",
            "-p",
            "[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]",
        ]);
    });
}
