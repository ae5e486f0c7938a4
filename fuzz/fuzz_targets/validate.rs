//! Fuzzes the manifest loader and validator on arbitrary bytes: decoding, document splitting,
//! YAML parsing, value building with its budgets, schema and rule checks, and the position
//! lookup every finding does. Nothing may panic, hang or blow up memory.
#![no_main]

use ferry_schema::validate::{Options, Validator};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static NORMAL: OnceLock<Validator> = OnceLock::new();
static STRICT: OnceLock<Validator> = OnceLock::new();

static HOOK: OnceLock<()> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // Panics raised inside the YAML library are caught by the loader and reported as syntax
    // errors (see ferry_schema::events); any other panic is a crash.
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !ferry_schema::events::is_yaml_library_panic(info) {
                previous(info);
                std::process::abort();
            }
        }));
    });
    let normal = NORMAL.get_or_init(|| Validator::new(Options::default(), Vec::new()));
    let strict = STRICT.get_or_init(|| {
        Validator::new(Options { strict: true, ..Options::default() }, Vec::new())
    });
    let validator = if data.first().is_some_and(|b| b & 1 == 1) { strict } else { normal };
    for report in validator.validate_bytes("fuzz.yaml", data) {
        for finding in &report.errors {
            assert!(finding.line >= 1 && finding.column >= 1);
        }
    }
});
