//! ferry's verdicts on the parity corpus (`fixtures/parity/`) match what each case's name says.
//! `ops/bench/parity.py` runs the same corpus through kubernetes-validate for comparison.

use std::path::Path;
use std::process::Command;

fn expected(name: &str) -> &'static str {
    if name.starts_with("valid-") {
        "valid"
    } else if name.starts_with("invalid-") || name.starts_with("ferry-only-") {
        "invalid"
    } else if name.starts_with("error-") {
        "error"
    } else {
        panic!("parity case {name} has no verdict prefix")
    }
}

#[test]
fn ferry_verdicts_match_the_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/parity");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).expect("parity corpus exists") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !(name.ends_with(".yaml") || name.ends_with(".json")) {
            continue;
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(["validate", "-o", "json"]);
        if name.contains("-strict-") {
            cmd.arg("--strict");
        }
        let out = cmd.arg(&path).output().expect("ferry runs");
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("ferry prints one JSON object");
        let statuses: Vec<&str> = report["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|r| r["status"].as_str().unwrap_or_default())
            .collect();
        let want = expected(&name);
        let got = if statuses.contains(&"error") {
            "error"
        } else if statuses.contains(&"invalid") {
            "invalid"
        } else {
            "valid"
        };
        assert_eq!(
            got,
            want,
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            out.status.code(),
            Some(if want == "valid" { 0 } else { 1 }),
            "{name}"
        );
        cases += 1;
    }
    assert!(cases >= 25, "the parity corpus has {cases} cases");
}
