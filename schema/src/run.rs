//! Validating many inputs as a whole: files, directories (walked recursively for `.yaml`,
//! `.yml` and `.json`) and standard input, in parallel, with results delivered in input order.
//!
//! The inputs are streamed: a walker feeds a bounded queue, workers read and validate one file
//! at a time, and the caller receives each file's report as soon as every earlier file's report
//! has been delivered. Memory holds the files in flight, not the corpus; the only state that
//! grows with the corpus is the duplicate detector's 24 bytes per named object.
//!
//! Duplicates (the same group, kind, namespace and name defined twice anywhere in the inputs)
//! are detected in input order, so the first definition stays valid and each later one is
//! reported, naming where the first is.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::bounded;

use crate::validate::{Finding, ObjectKey, ResourceReport, Status, Validator, file_error};

/// One input: a file on disk or bytes already read (standard input).
#[derive(Debug)]
pub enum Input {
    /// A file.
    File(PathBuf),
    /// Bytes with a display name.
    Bytes(String, Vec<u8>),
    /// A path that could not be used, and why.
    Unusable(String, String),
}

impl Input {
    fn name(&self) -> String {
        match self {
            Input::File(path) => path.display().to_string(),
            Input::Bytes(name, _) | Input::Unusable(name, _) => name.clone(),
        }
    }
}

/// The reports of one file.
#[derive(Debug)]
pub struct FileReport {
    /// The file's name, as given or found.
    pub filename: String,
    /// One report per resource (a file-level failure is one `error` report).
    pub resources: Vec<ResourceReport>,
}

/// Totals over a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Resources seen.
    pub resources: usize,
    /// Files read.
    pub files: usize,
    /// Valid resources.
    pub valid: usize,
    /// Invalid resources.
    pub invalid: usize,
    /// Resources that could not be checked.
    pub errors: usize,
    /// Skipped resources.
    pub skipped: usize,
}

impl Summary {
    fn add(&mut self, file: &FileReport) {
        self.files += 1;
        for r in &file.resources {
            self.resources += 1;
            match r.status {
                Status::Valid => self.valid += 1,
                Status::Invalid => self.invalid += 1,
                Status::Error => self.errors += 1,
                Status::Skipped => self.skipped += 1,
            }
        }
    }

    /// True when nothing was invalid or an error.
    pub fn passed(&self) -> bool {
        self.invalid == 0 && self.errors == 0
    }
}

/// Is this a manifest file by its extension?
pub fn is_manifest(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json"))
}

/// Expands paths into inputs, lazily: a directory yields its manifest files in name order;
/// a file named explicitly is read whatever its extension.
pub fn expand(paths: Vec<PathBuf>) -> impl Iterator<Item = Input> + Send {
    paths
        .into_iter()
        .flat_map(|path| -> Box<dyn Iterator<Item = Input> + Send> {
            if path.is_dir() {
                let walk = walkdir::WalkDir::new(&path)
                    .sort_by_file_name()
                    .into_iter()
                    .filter_entry(|e| e.depth() == 0 || e.file_name() != ".git")
                    .filter_map(|entry| match entry {
                        Ok(e) if e.file_type().is_file() && is_manifest(e.path()) => {
                            Some(Input::File(e.into_path()))
                        }
                        Ok(_) => None,
                        Err(e) => Some(Input::Unusable(
                            e.path()
                                .map(|p| p.display().to_string())
                                .unwrap_or_default(),
                            format!("cannot read: {e}"),
                        )),
                    });
                Box::new(walk)
            } else if path.exists() {
                Box::new(std::iter::once(Input::File(path)))
            } else {
                let name = path.display().to_string();
                Box::new(std::iter::once(Input::Unusable(
                    name,
                    "no such file or directory".into(),
                )))
            }
        })
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("file is over the limit of {limit} bytes"));
    }
    Ok(bytes)
}

fn validate_input(validator: &Validator, input: Input) -> FileReport {
    let filename = input.name();
    let resources = match input {
        Input::File(path) => match read_limited(&path, validator.options().limits.max_file_bytes) {
            Ok(bytes) => validator.validate_bytes(&filename, &bytes),
            Err(message) => vec![file_error(&filename, message)],
        },
        Input::Bytes(_, bytes) => validator.validate_bytes(&filename, &bytes),
        Input::Unusable(_, message) => vec![file_error(&filename, message)],
    };
    FileReport {
        filename,
        resources,
    }
}

/// Finds objects defined more than once, in input order.
#[derive(Debug, Default)]
pub struct DuplicateDetector {
    files: Vec<String>,
    seen: HashMap<u128, (u32, u32, u32)>,
}

fn key_hash(key: &ObjectKey) -> u128 {
    let mut a = DefaultHasher::new();
    key.hash(&mut a);
    let mut b = DefaultHasher::new();
    0x9e37_79b9_7f4a_7c15_u64.hash(&mut b);
    key.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

impl DuplicateDetector {
    /// Records a file's objects; a later definition of an earlier object becomes invalid.
    pub fn observe(&mut self, file: &mut FileReport) {
        let file_index = self.files.len() as u32;
        let mut recorded = false;
        for r in &mut file.resources {
            let Some(key) = &r.key else { continue };
            let here = (file_index, r.document as u32, r.start.line as u32);
            match self.seen.get(&key_hash(key)) {
                Some(&(first_file, doc, line)) => {
                    let first = self
                        .files
                        .get(first_file as usize)
                        .unwrap_or(&file.filename);
                    r.status = Status::Invalid;
                    r.errors.push(Finding {
                        path: "/metadata/name".into(),
                        line: r.start.line,
                        column: r.start.column,
                        message: format!(
                            "{} {} is defined more than once: first in {first} (document {doc}, line {line})",
                            r.kind,
                            object_name(&key.namespace, &key.name)
                        ),
                    });
                }
                None => {
                    self.seen.insert(key_hash(key), here);
                    recorded = true;
                }
            }
        }
        // Keep a file's name only if something refers to it.
        if recorded {
            self.files.push(file.filename.clone());
        } else {
            self.files.push(String::new());
        }
    }
}

/// `namespace/name`, or just `name`.
pub fn object_name(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

/// Validates every input with `workers` threads, handing each file's report to `deliver` in
/// input order. `deliver` may stop the run early by returning `ControlFlow::Break`.
pub fn run(
    validator: &Validator,
    inputs: impl Iterator<Item = Input> + Send,
    workers: usize,
    mut deliver: impl FnMut(&FileReport) -> ControlFlow<()>,
) -> Summary {
    let workers = workers.max(1);
    let stop = AtomicBool::new(false);
    let (work_tx, work_rx) = bounded::<(usize, Input)>(workers * 4);
    let (done_tx, done_rx) = bounded::<(usize, FileReport)>(workers * 4);
    let mut summary = Summary::default();
    let mut duplicates = DuplicateDetector::default();
    std::thread::scope(|scope| {
        let stop = &stop;
        scope.spawn(move || {
            for (i, input) in inputs.enumerate() {
                if stop.load(Ordering::Relaxed) || work_tx.send((i, input)).is_err() {
                    break;
                }
            }
        });
        for _ in 0..workers {
            let work_rx = work_rx.clone();
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                for (i, input) in work_rx {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if done_tx.send((i, validate_input(validator, input))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(work_rx);
        drop(done_tx);
        let mut pending = BTreeMap::new();
        let mut next = 0;
        for (i, report) in &done_rx {
            pending.insert(i, report);
            while let Some(mut report) = pending.remove(&next) {
                next += 1;
                duplicates.observe(&mut report);
                summary.add(&report);
                if deliver(&report).is_break() {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        // Unblock workers still sending, so the scope can end.
        drop(done_rx);
    });
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Options;

    fn cm(name: &str, ns: &str) -> String {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n---\n"
        )
    }

    #[test]
    fn duplicates_across_files_in_input_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.yaml"), cm("one", "x") + &cm("two", "x")).expect("write");
        std::fs::write(
            dir.path().join("b.yml"),
            cm("one", "other") + &cm("one", "x"),
        )
        .expect("write");
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").expect("write");
        let validator = Validator::new(Options::default(), Vec::new());
        let mut files = Vec::new();
        let summary = run(&validator, expand(vec![dir.path().to_path_buf()]), 2, |f| {
            files.push((
                f.filename.clone(),
                f.resources.iter().map(|r| r.status).collect::<Vec<_>>(),
            ));
            ControlFlow::Continue(())
        });
        assert_eq!(files.len(), 2);
        assert!(files[0].0.ends_with("a.yaml"));
        assert_eq!(files[0].1, vec![Status::Valid, Status::Valid]);
        assert_eq!(files[1].1, vec![Status::Valid, Status::Invalid]);
        assert_eq!(
            summary,
            Summary {
                resources: 4,
                files: 2,
                valid: 3,
                invalid: 1,
                errors: 0,
                skipped: 0
            }
        );
    }

    #[test]
    fn stops_early_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..50 {
            std::fs::write(dir.path().join(format!("{i:02}.yaml")), "kind: [").expect("write");
        }
        let validator = Validator::new(Options::default(), Vec::new());
        let mut delivered = 0;
        run(
            &validator,
            expand(vec![dir.path().to_path_buf()]),
            2,
            |_| {
                delivered += 1;
                ControlFlow::Break(())
            },
        );
        assert_eq!(delivered, 1);
    }

    #[test]
    fn missing_paths_are_errors() {
        let validator = Validator::new(Options::default(), Vec::new());
        let summary = run(
            &validator,
            expand(vec!["/nonexistent/x.yaml".into()]),
            1,
            |f| {
                assert!(f.resources[0].errors[0].message.contains("no such file"));
                ControlFlow::Continue(())
            },
        );
        assert_eq!(summary.errors, 1);
    }
}
