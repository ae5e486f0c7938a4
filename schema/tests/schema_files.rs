//! The checked-in JSON Schemas in `schema/jsonschema/` must be exactly what the generator
//! produces from the types. Regenerate them with `just schemas` (which runs this test with
//! `FERRY_BLESS=1`, or `ferry schema export schema/jsonschema`).

use std::path::Path;

#[test]
fn checked_in_schemas_match_the_generator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("jsonschema");
    let files = ferry_schema::generate::all_schema_files().expect("schemas generate");
    let bless = std::env::var_os("FERRY_BLESS").is_some();
    let mut stale = Vec::new();
    for (relative, contents) in &files {
        let path = root.join(relative);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != *contents {
            if bless {
                std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
                std::fs::write(&path, contents).expect("write schema");
            } else {
                stale.push(relative.clone());
            }
        }
    }
    // No leftovers: every file on disk is one the generator makes.
    for dir in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let relative = format!(
                "{}/{}",
                dir.file_name().to_string_lossy(),
                file.file_name().to_string_lossy()
            );
            if !files.contains_key(&relative) {
                if bless {
                    std::fs::remove_file(file.path()).expect("remove stale schema");
                } else {
                    stale.push(format!("{relative} (not generated)"));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "schema files differ from the generator; run `just schemas`:\n{}",
        stale.join("\n")
    );
    assert_eq!(files.len(), 2 * ferry_schema::kinds::KINDS.len());
}
