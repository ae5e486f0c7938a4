//! `ferry validate` end to end: the binary as a CI pipeline runs it, on files, directories and
//! stdin, in every output format, with every option, and on hostile input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .expect("ferry runs")
}

fn ferry_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferry runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("ferry exits")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", stdout(out)))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, text).expect("write");
    path
}

fn repo_path(relative: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(relative)
        .display()
        .to_string()
}

const GOOD: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
";

const BAD: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
    targetPort: 8080
  - name: admin
    port: 99999
";

#[test]
fn the_demo_repository_is_strictly_valid() {
    let out = ferry(&["validate", "--strict", &repo_path("fixtures/demo")]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).ends_with(
            "Summary: 5 resources found in 5 files - Valid: 5, Invalid: 0, Errors: 0, Skipped: 0\n"
        ),
        "{}",
        stdout(&out)
    );
}

#[test]
fn text_output_names_file_line_column_object_and_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(dir.path(), "svc.yaml", BAD);
    let out = ferry(&["validate", bad.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let expected = format!(
        "{}:7:5: Service web (document 0) is invalid: /spec/ports/0/name: every port needs a name when a Service has more than one port",
        bad.display()
    );
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains(":10:11: Service web (document 0) is invalid: /spec/ports/1/port: port 99999 is out of range"), "{text}");
    assert!(
        text.ends_with(
            "Summary: 1 resource found in 1 file - Valid: 0, Invalid: 1, Errors: 0, Skipped: 0\n"
        ),
        "{text}"
    );
}

#[test]
fn json_output_has_the_documented_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a/good.yaml", GOOD);
    write(
        dir.path(),
        "b/bad.yml",
        &format!("{BAD}---\n# only a comment\n---\nkind: [\n"),
    );
    write(dir.path(), "c/ignored.txt", "not a manifest");
    let out = ferry(&[
        "validate",
        "-o",
        "json",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let resources = report["resources"].as_array().expect("resources");
    assert_eq!(resources.len(), 3);
    let keys: Vec<&str> = resources[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "filename",
        "document",
        "apiVersion",
        "kind",
        "namespace",
        "name",
        "status",
        "errors",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert_eq!(resources[0]["status"], "valid");
    assert_eq!(resources[0]["namespace"], "shop");
    assert_eq!(resources[1]["status"], "invalid");
    let error = &resources[1]["errors"][0];
    assert_eq!(error["path"], "/spec/ports/0/name");
    assert_eq!(error["line"], 7);
    assert_eq!(error["column"], 5);
    assert_eq!(resources[2]["status"], "error");
    assert_eq!(resources[2]["document"], 1);
    assert!(
        resources[2]["errors"][0]["message"]
            .as_str()
            .expect("message")
            .starts_with("malformed YAML")
    );
    assert_eq!(
        report["summary"],
        serde_json::json!({"resources": 3, "files": 2, "valid": 1, "invalid": 1, "errors": 1, "skipped": 0})
    );
}

#[test]
fn junit_output_is_well_formed_xml() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "good.yaml", GOOD);
    write(dir.path(), "bad <&> \"name\".yaml", BAD);
    let out = ferry(&[
        "validate",
        "-o",
        "junit",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let xml = stdout(&out);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut testcases, mut failures, mut depth) = (0, 0, 0i32);
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("malformed XML: {e}\n{xml}"))
        {
            quick_xml::events::Event::Start(e) => {
                depth += 1;
                match e.name().as_ref() {
                    "testcase" => testcases += 1,
                    "failure" => failures += 1,
                    _ => {}
                }
            }
            quick_xml::events::Event::Empty(e) if e.name().as_ref() == "testcase" => testcases += 1,
            quick_xml::events::Event::End(_) => depth -= 1,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unbalanced XML");
    assert_eq!((testcases, failures), (2, 1), "{xml}");
}

#[test]
fn tap_output_counts_every_resource() {
    let out = ferry_stdin(
        &["validate", "-o", "tap", "--summary", "-"],
        format!("{GOOD}---\n{BAD}").as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    let tap = stdout(&out);
    let lines: Vec<&str> = tap.lines().collect();
    assert_eq!(lines[0], "TAP version 13");
    assert_eq!(lines[1], "ok 1 - stdin Service shop/web (document 0)");
    assert_eq!(lines[2], "not ok 2 - stdin Service web (document 1)");
    assert!(
        tap.contains("1..2\n# Summary: 2 resources found in 1 file"),
        "{tap}"
    );
}

#[test]
fn stdin_and_files_mix_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(dir.path(), "good.yaml", GOOD);
    let out = ferry_stdin(
        &["validate", "-o", "json", "-", good.to_str().expect("utf-8")],
        GOOD.replace("name: web", "name: api").as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report = json(&out);
    assert_eq!(report["resources"][0]["filename"], "stdin");
    assert_eq!(report["resources"][1]["name"], "web");
}

#[test]
fn duplicates_across_files_are_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "one.yaml", GOOD);
    write(dir.path(), "two.yaml", GOOD);
    let out = ferry(&[
        "validate",
        "-o",
        "json",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["resources"][0]["status"], "valid");
    assert_eq!(report["resources"][1]["status"], "invalid");
    let message = report["resources"][1]["errors"][0]["message"]
        .as_str()
        .expect("message");
    assert!(
        message.contains("defined more than once: first in"),
        "{message}"
    );
    assert!(message.contains("one.yaml"), "{message}");
}

#[test]
fn skip_reject_and_missing_schemas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crd = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 3}\n";
    let input = write(dir.path(), "mixed.yaml", &format!("{GOOD}---\n{crd}"));
    let input = input.to_str().expect("utf-8");

    let out = ferry(&["validate", "-o", "json", input]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["resources"][1]["status"], "error");

    let out = ferry(&["validate", "-o", "json", "--ignore-missing-schemas", input]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["summary"]["skipped"], 1);

    let out = ferry(&[
        "validate",
        "-o",
        "json",
        "--skip",
        "Widget,v1/Service",
        input,
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["summary"]["skipped"], 2);

    let out = ferry(&[
        "validate",
        "-o",
        "json",
        "--ignore-missing-schemas",
        "--reject",
        "Service",
        input,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["resources"][0]["status"], "invalid");
}

#[test]
fn schema_location_validates_custom_resources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schemas = dir.path().join("schemas");
    write(
        &schemas,
        "widget-example-v1.json",
        r#"{"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer", "maximum": 10}}, "required": ["size"]}}}"#,
    );
    let good = write(
        dir.path(),
        "good.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 3}\n",
    );
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 30}\n",
    );
    let loc = schemas.to_str().expect("utf-8");
    let out = ferry(&[
        "validate",
        "--schema-location",
        loc,
        good.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = ferry(&[
        "validate",
        "-o",
        "json",
        "--schema-location",
        loc,
        bad.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let error = &json(&out)["resources"][0]["errors"][0];
    assert_eq!(error["path"], "/spec/size");
    assert_eq!(error["line"], 4);
    // A location that is not a directory is a usage error.
    let out = ferry(&[
        "validate",
        "--schema-location",
        "/nonexistent",
        good.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn strict_mode_refuses_unknown_fields_and_duplicate_keys() {
    let text =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n  lables: {x: y}\n";
    let out = ferry_stdin(&["validate", "-"], text.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = ferry_stdin(
        &["validate", "--strict", "-o", "json", "-"],
        text.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    let errors = json(&out)["resources"][0]["errors"].clone();
    assert_eq!(errors[0]["path"], "/metadata/name");
    assert_eq!(errors[0]["line"], 5);
    assert_eq!(errors[1]["path"], "/metadata/lables");
    assert_eq!(errors[1]["message"], "unknown field \"lables\"");
}

#[test]
fn exit_on_error_stops_at_the_first_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..20 {
        write(dir.path(), &format!("{i:02}.yaml"), BAD);
    }
    let out = ferry(&[
        "validate",
        "-o",
        "json",
        "--exit-on-error",
        "-n",
        "2",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["summary"]["files"], 1);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(ferry(&["validate"]).status.code(), Some(2));
    assert_eq!(
        ferry(&["validate", "-o", "yaml", "x"]).status.code(),
        Some(2)
    );
    assert_eq!(ferry(&["validate", "-n", "0", "x"]).status.code(), Some(2));
    assert_eq!(ferry(&["validate", "-", "-"]).status.code(), Some(2));
}

#[test]
fn hostile_input_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    write(dir.path(), "bomb.yaml", &bomb);
    std::fs::write(dir.path().join("binary.yaml"), b"\x7fELF\x02\x01\x01\0\0\0").expect("write");
    std::fs::write(
        dir.path().join("latin1.yaml"),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n",
    )
    .expect("write");
    write(
        dir.path(),
        "deep.yaml",
        &format!("{}x{}", "[".repeat(5000), "]".repeat(5000)),
    );
    let block: String = (0..300)
        .map(|i| format!("{}k:\n", "  ".repeat(i)))
        .collect();
    write(dir.path(), "deep-block.yaml", &block);
    write(
        dir.path(),
        "huge.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n  blob: \"{}\"\n",
            "x".repeat(4 << 20)
        ),
    );
    // Found by fuzzing: the YAML library panics on a tag before ',' in a flow collection.
    write(
        dir.path(),
        "flow-tag.yaml",
        "apiVersion: v1\nkind: ConfigMap\ndata: [!foo, x]\n",
    );
    let out = ferry(&[
        "validate",
        "-o",
        "json",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let by_file = |name: &str| -> String {
        let r = report["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["filename"].as_str().is_some_and(|f| f.ends_with(name)))
            .unwrap_or_else(|| panic!("{name} reported"));
        assert_eq!(r["status"], "error", "{name}: {r}");
        r["errors"][0]["message"]
            .as_str()
            .expect("message")
            .to_owned()
    };
    assert!(by_file("bomb.yaml").contains("alias bomb"));
    assert!(by_file("binary.yaml").contains("binary file"));
    assert!(by_file("latin1.yaml").contains("not valid UTF-8 at byte"));
    assert!(!by_file("/deep.yaml").is_empty());
    assert!(by_file("deep-block.yaml").contains("nests deeper than"));
    assert!(by_file("huge.yaml").contains("over the limit"));
    assert!(by_file("flow-tag.yaml").contains("malformed YAML"));
}

#[test]
fn schema_export_writes_the_checked_in_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ferry(&["schema", "export", dir.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0));
    let exported = std::fs::read_to_string(
        dir.path()
            .join("v1.33.0-standalone-strict/deployment-apps-v1.json"),
    )
    .expect("exported");
    let checked_in = std::fs::read_to_string(repo_path(
        "schema/jsonschema/v1.33.0-standalone-strict/deployment-apps-v1.json",
    ))
    .expect("checked in");
    assert_eq!(exported, checked_in);
}
