//! Loading manifest files: multi-document YAML and JSON into JSON values.
//!
//! A file is split into documents at `---` lines, and each document is parsed on its own, so a
//! broken document is reported without hiding the ones around it. Each document is built from
//! the YAML event stream with an explicit stack (no recursion) and hard budgets: a size limit,
//! a nesting limit, and a node budget that alias expansion is charged against *before* any
//! copying, so an alias bomb ("billion laughs") is refused at once with bounded memory.
//!
//! Scalars resolve as Kubernetes resolves them (see [`crate::scalar`]). Duplicate mapping keys
//! are kept last-wins, as kubectl does, and reported so that strict validation can refuse them.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Map, Value};

use crate::events::{EventStream, YamlEvent, mark_position, terminated};
use crate::pointer::JsonPointer;
use crate::scalar::{Resolved, key_text, resolve_bool, resolve_plain, resolve_plain_owned};

/// Limits that keep hostile input from costing unbounded time or memory.
#[derive(Debug, Clone, Copy)]
pub struct LoadLimits {
    /// Largest file read, in bytes.
    pub max_file_bytes: u64,
    /// Largest single document, in bytes (the apiserver refuses requests over 3 MiB).
    pub max_document_bytes: usize,
    /// Most nodes one document may expand to, aliases included.
    pub max_nodes: usize,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            max_file_bytes: 64 << 20,
            max_document_bytes: 3 << 20,
            max_nodes: 1_000_000,
            max_depth: 100,
        }
    }
}

/// A position in a file: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// Why a file or a document could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The file is larger than [`LoadLimits::max_file_bytes`].
    #[error("file is {size} bytes, over the limit of {limit} bytes")]
    FileTooLarge {
        /// Size of the file.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file holds NUL bytes.
    #[error("binary file (NUL byte at offset {offset}); manifests are text")]
    Binary {
        /// Offset of the first NUL byte.
        offset: usize,
    },
    /// The file is not valid UTF-8.
    #[error("not valid UTF-8 at byte {offset} (line {line}); manifests must be UTF-8 text")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
        /// Line of that byte.
        line: usize,
    },
    /// A document is larger than [`LoadLimits::max_document_bytes`].
    #[error("document is {size} bytes, over the limit of {limit} bytes")]
    DocumentTooLarge {
        /// Size of the document.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The YAML or JSON syntax is broken.
    #[error("malformed YAML: {0}")]
    Syntax(String),
    /// Aliases expand past the node budget.
    #[error("document expands to more than {limit} nodes (alias bomb?); refused")]
    TooManyNodes {
        /// The node budget.
        limit: usize,
    },
    /// Mappings and sequences nest too deeply.
    #[error("document nests deeper than {limit} levels; refused")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
    },
    /// An alias names no anchor defined before it.
    #[error("alias refers to an unknown anchor")]
    UnknownAnchor,
    /// A mapping key is itself a mapping or a sequence.
    #[error("mapping keys must be scalars")]
    ComplexKey,
    /// A value JSON cannot hold (`.inf`, `.nan`).
    #[error("{0:?} cannot be represented in JSON")]
    NotRepresentable(String),
}

/// A mapping key given twice in one mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateKey {
    /// Pointer to the key (its mapping plus the key).
    pub pointer: String,
    /// Where the second occurrence is.
    pub position: Position,
}

/// One document of a file, parsed.
#[derive(Debug, Clone)]
pub struct Document {
    /// 0-based index among the documents of the file that hold content.
    pub index: usize,
    /// Where the document starts.
    pub start: Position,
    /// The byte range of the document's text within the file.
    pub range: Range<usize>,
    /// The document as JSON; `Err` when it could not be parsed.
    pub value: Result<Value, Located<LoadError>>,
    /// Keys given twice (kept last-wins in `value`).
    pub duplicate_keys: Vec<DuplicateKey>,
}

/// An error with the position it was found at.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<E> {
    /// The error.
    pub error: E,
    /// Where in the file.
    pub position: Position,
}

/// Checks a file's bytes and returns its text, without a UTF-8 byte order mark.
pub fn decode_text<'a>(bytes: &'a [u8], limits: &LoadLimits) -> Result<&'a str, LoadError> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(LoadError::FileTooLarge {
            size: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    if let Some(offset) = memchr_nul(bytes) {
        return Err(LoadError::Binary { offset });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let line = 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count();
        LoadError::NotUtf8 { offset, line }
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

fn memchr_nul(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == 0)
}

/// The byte ranges of the document chunks of a text, split at `---` lines, with the 0-based
/// line each chunk starts on.
fn chunks(text: &str) -> Vec<(Range<usize>, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut start_line = 0;
    let mut offset = 0;
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        let is_separator = line.starts_with("---")
            && line[3..]
                .chars()
                .next()
                .is_none_or(|c| c == ' ' || c == '\t' || c == '\n' || c == '\r');
        if is_separator && offset > start {
            out.push((start..offset, start_line));
        }
        if is_separator {
            start = offset;
            start_line = line_no;
        }
        offset += line.len();
    }
    if offset > start {
        out.push((start..offset, start_line));
    }
    out
}

/// True when the chunk holds something other than blank lines, comments, markers and directives.
fn has_content(chunk: &str) -> bool {
    chunk.lines().any(|line| {
        let trimmed = line.trim();
        let body = trimmed
            .strip_prefix("---")
            .map(str::trim_start)
            .unwrap_or(trimmed);
        !(body.is_empty() || body.starts_with('#') || body == "..." || line.starts_with('%'))
    })
}

/// Parses every document of a file's text.
pub fn load_documents(text: &str, limits: &LoadLimits) -> Vec<Document> {
    let mut docs = Vec::new();
    for (range, start_line) in chunks(text) {
        let chunk = &text[range.clone()];
        if !has_content(chunk) {
            continue;
        }
        let start = Position {
            line: start_line + 1,
            column: 1,
        };
        if chunk.len() > limits.max_document_bytes {
            docs.push(Document {
                index: docs.len(),
                start,
                range,
                value: Err(Located {
                    error: LoadError::DocumentTooLarge {
                        size: chunk.len(),
                        limit: limits.max_document_bytes,
                    },
                    position: start,
                }),
                duplicate_keys: Vec::new(),
            });
            continue;
        }
        let mut builder = Builder::new(limits, start_line);
        let value = builder.build(chunk);
        docs.push(Document {
            index: docs.len(),
            start,
            range,
            value,
            duplicate_keys: builder.duplicates,
        });
    }
    docs
}

/// A node under construction.
enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: Option<String>,
        nodes_at_start: usize,
    },
    Map {
        entries: Map<String, Value>,
        anchor: Option<String>,
        nodes_at_start: usize,
        key: Option<String>,
        merges: Vec<Value>,
        merge_pending: bool,
    },
}

struct Builder<'l> {
    limits: &'l LoadLimits,
    line_offset: usize,
    nodes: usize,
    anchors: HashMap<String, (Value, usize)>,
    stack: Vec<Frame>,
    duplicates: Vec<DuplicateKey>,
}

impl<'l> Builder<'l> {
    fn new(limits: &'l LoadLimits, line_offset: usize) -> Self {
        Builder {
            limits,
            line_offset,
            nodes: 0,
            anchors: HashMap::new(),
            stack: Vec::new(),
            duplicates: Vec::new(),
        }
    }

    fn build(&mut self, chunk: &str) -> Result<Value, Located<LoadError>> {
        let mut root: Option<Value> = None;
        let input = terminated(chunk);
        let mut bytes = input.as_bytes();
        for event in EventStream::new(&mut bytes, chunk.len()) {
            let (event, mark) = event.map_err(|e| Located {
                error: LoadError::Syntax(e.message),
                position: Position {
                    line: e.line + 1 + self.line_offset,
                    column: e.column + 1,
                },
            })?;
            let position = mark_position(&mark, self.line_offset);
            let at = |error| Located { error, position };
            let finished: Option<Value> = match event {
                YamlEvent::Boundary => None,
                YamlEvent::Scalar {
                    value: text,
                    plain,
                    tag,
                    anchor,
                } => {
                    self.charge(1).map_err(at)?;
                    let is_merge = plain && tag.is_none() && text == "<<";
                    let value = scalar_value(text, plain, tag.as_deref()).map_err(at)?;
                    if self.is_key_position() {
                        self.set_key(key_text(value), is_merge, position);
                        None
                    } else {
                        if let Some(anchor) = anchor {
                            self.anchors.insert(anchor, (value.clone(), 1));
                        }
                        Some(value)
                    }
                }
                YamlEvent::Alias(name) => {
                    let size = match self.anchors.get(&name) {
                        Some((_, size)) => *size,
                        None => return Err(at(LoadError::UnknownAnchor)),
                    };
                    // Charge first: a bomb fails here without a byte copied.
                    self.charge(size).map_err(at)?;
                    let value = self
                        .anchors
                        .get(&name)
                        .map(|(v, _)| v.clone())
                        .unwrap_or_default();
                    if self.is_key_position() {
                        if value.is_object() || value.is_array() {
                            return Err(at(LoadError::ComplexKey));
                        }
                        self.set_key(key_text(value), false, position);
                        None
                    } else {
                        Some(value)
                    }
                }
                YamlEvent::SequenceStart(anchor) => {
                    self.open(position, |nodes| Frame::Seq {
                        items: Vec::new(),
                        anchor,
                        nodes_at_start: nodes,
                    })?;
                    None
                }
                YamlEvent::MappingStart(anchor) => {
                    self.open(position, |nodes| Frame::Map {
                        entries: Map::new(),
                        anchor,
                        nodes_at_start: nodes,
                        key: None,
                        merges: Vec::new(),
                        merge_pending: false,
                    })?;
                    None
                }
                YamlEvent::SequenceEnd | YamlEvent::MappingEnd => {
                    let (value, anchor, nodes_at_start) = match self.stack.pop() {
                        Some(Frame::Seq {
                            items,
                            anchor,
                            nodes_at_start,
                        }) => (Value::Array(items), anchor, nodes_at_start),
                        Some(Frame::Map {
                            mut entries,
                            anchor,
                            nodes_at_start,
                            merges,
                            ..
                        }) => {
                            apply_merges(&mut entries, merges);
                            (Value::Object(entries), anchor, nodes_at_start)
                        }
                        None => continue,
                    };
                    if let Some(anchor) = anchor {
                        let size = self.nodes - nodes_at_start;
                        self.anchors.insert(anchor, (value.clone(), size));
                    }
                    Some(value)
                }
            };
            if let Some(value) = finished {
                match self.stack.last_mut() {
                    None => {
                        if root.is_none() {
                            root = Some(value);
                        }
                    }
                    Some(Frame::Seq { items, .. }) => items.push(value),
                    Some(Frame::Map { .. }) => self.insert(value).map_err(at)?,
                }
            }
        }
        Ok(root.unwrap_or(Value::Null))
    }

    fn charge(&mut self, nodes: usize) -> Result<(), LoadError> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > self.limits.max_nodes {
            return Err(LoadError::TooManyNodes {
                limit: self.limits.max_nodes,
            });
        }
        Ok(())
    }

    fn open(
        &mut self,
        position: Position,
        frame: impl FnOnce(usize) -> Frame,
    ) -> Result<(), Located<LoadError>> {
        let at = |error| Located { error, position };
        if self.is_key_position() {
            return Err(at(LoadError::ComplexKey));
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(at(LoadError::TooDeep {
                limit: self.limits.max_depth,
            }));
        }
        let nodes = self.nodes;
        self.charge(1).map_err(at)?;
        self.stack.push(frame(nodes));
        Ok(())
    }

    fn is_key_position(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                key: None,
                merge_pending: false,
                ..
            })
        )
    }

    fn set_key(&mut self, key: String, is_merge: bool, position: Position) {
        let duplicate = match self.stack.last() {
            Some(Frame::Map { entries, .. }) => !is_merge && entries.contains_key(&key),
            _ => false,
        };
        if duplicate {
            let pointer = self.pointer_here().join(&key);
            self.duplicates.push(DuplicateKey {
                pointer: pointer.into_string(),
                position,
            });
        }
        if let Some(Frame::Map {
            key: slot,
            merge_pending,
            ..
        }) = self.stack.last_mut()
        {
            if is_merge {
                *merge_pending = true;
            } else {
                *slot = Some(key);
            }
        }
    }

    fn insert(&mut self, value: Value) -> Result<(), LoadError> {
        if let Some(Frame::Map {
            entries,
            key,
            merges,
            merge_pending,
            ..
        }) = self.stack.last_mut()
        {
            if *merge_pending {
                *merge_pending = false;
                match value {
                    Value::Object(_) => merges.push(value),
                    Value::Array(items) if items.iter().all(Value::is_object) => {
                        merges.extend(items)
                    }
                    _ => {
                        return Err(LoadError::Syntax(
                            "a merge key (<<) needs a mapping or a list of mappings".into(),
                        ));
                    }
                }
            } else if let Some(key) = key.take() {
                entries.insert(key, value);
            }
        }
        Ok(())
    }

    /// The pointer of the mapping at the top of the stack.
    fn pointer_here(&self) -> JsonPointer {
        let mut pointer = JsonPointer::root();
        let depth = self.stack.len().saturating_sub(1);
        for frame in &self.stack[..depth] {
            match frame {
                Frame::Seq { items, .. } => pointer.push_index(items.len()),
                Frame::Map { key, .. } => pointer.push(key.as_deref().unwrap_or("<<")),
            }
        }
        pointer
    }
}

fn apply_merges(entries: &mut Map<String, Value>, merges: Vec<Value>) {
    for merged in merges {
        if let Value::Object(map) = merged {
            for (k, v) in map {
                entries.entry(k).or_insert(v);
            }
        }
    }
}

const YAML_TAG_PREFIX: &str = "tag:yaml.org,2002:";

fn scalar_value(text: String, plain: bool, tag: Option<&str>) -> Result<Value, LoadError> {
    if let Some(kind) = tag.and_then(|t| t.strip_prefix(YAML_TAG_PREFIX)) {
        return match kind {
            "null" => Ok(Value::Null),
            "bool" => resolve_bool(&text)
                .map(Value::Bool)
                .ok_or_else(|| LoadError::Syntax(format!("{text:?} is not a !!bool"))),
            "int" | "float" => match resolve_plain(&text) {
                Resolved::Value(v @ Value::Number(_)) => Ok(v),
                Resolved::NotRepresentable => Err(LoadError::NotRepresentable(text)),
                _ => Err(LoadError::Syntax(format!("{text:?} is not a !!{kind}"))),
            },
            _ => Ok(Value::String(text)),
        };
    }
    if !plain || tag.is_some() {
        return Ok(Value::String(text));
    }
    match resolve_plain_owned(text) {
        Resolved::Value(v) => Ok(v),
        Resolved::NotRepresentable => Err(LoadError::NotRepresentable(
            "a non-finite float (.inf or .nan)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(text: &str) -> Vec<Document> {
        load_documents(text, &LoadLimits::default())
    }

    fn values(text: &str) -> Vec<Value> {
        load(text)
            .into_iter()
            .map(|d| d.value.expect("document loads"))
            .collect()
    }

    #[test]
    fn multi_document_with_empty_and_comment_only_documents() {
        let text = "# leading comment\n---\na: 1\n---\n# only a comment\n---\n\n---\nb: [x, 'y', \"z\"]\n...\n";
        let docs = load(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value, Ok(json!({"a": 1})));
        assert_eq!(docs[0].start.line, 2);
        assert_eq!(docs[1].index, 1);
        assert_eq!(docs[1].value, Ok(json!({"b": ["x", "y", "z"]})));
    }

    #[test]
    fn json_documents_load() {
        assert_eq!(
            values("{\"kind\": \"Pod\", \"spec\": {\"n\": [1, 2.5, true, null]}}"),
            vec![json!({"kind": "Pod", "spec": {"n": [1, 2.5, true, null]}})]
        );
    }

    #[test]
    fn broken_document_does_not_hide_its_neighbours() {
        let docs = load("a: 1\n---\nb: [unclosed\n---\nc: 3\n");
        assert_eq!(docs.len(), 3);
        assert!(docs[0].value.is_ok());
        let err = docs[1].value.as_ref().expect_err("broken");
        assert!(matches!(err.error, LoadError::Syntax(_)));
        assert!(err.position.line >= 3);
        assert_eq!(docs[2].value, Ok(json!({"c": 3})));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let text = "base: &b {x: 1, z: 2}\nuse: *b\nmerged:\n  <<: *b\n  z: 3\n";
        assert_eq!(
            values(text),
            vec![
                json!({"base": {"x": 1, "z": 2}, "use": {"x": 1, "z": 2}, "merged": {"z": 3, "x": 1}})
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_last_wins_and_reported() {
        let docs = load("metadata:\n  name: a\n  name: b\n");
        assert_eq!(docs[0].value, Ok(json!({"metadata": {"name": "b"}})));
        assert_eq!(
            docs[0].duplicate_keys,
            vec![DuplicateKey {
                pointer: "/metadata/name".into(),
                position: Position { line: 3, column: 3 }
            }]
        );
    }

    #[test]
    fn block_scalar_at_end_of_input_without_newline() {
        // Found by the fuzzer: the YAML library's scanner panicked here.
        assert_eq!(values("a: |\n  x"), vec![json!({"a": "x"})]);
        assert_eq!(values("a: |\n  x\n"), vec![json!({"a": "x\n"})]);
        assert_eq!(values("a: |+\n  x\n\n"), vec![json!({"a": "x\n\n"})]);
        assert_eq!(values("a: >-\n  x\n  y"), vec![json!({"a": "x y"})]);
        assert_eq!(values("a: x"), vec![json!({"a": "x"})]);
    }

    #[test]
    fn tags_and_quoting() {
        assert_eq!(
            values("a: !!str 123\nb: '123'\nc: !!int \"7\"\nd: |\n  text\n"),
            vec![json!({"a": "123", "b": "123", "c": 7, "d": "text\n"})]
        );
    }

    #[test]
    fn billion_laughs_is_refused_fast() {
        let mut text = String::from(
            "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(",");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let started = std::time::Instant::now();
        let docs = load(&text);
        let err = docs[0].value.as_ref().expect_err("bomb refused");
        assert!(matches!(err.error, LoadError::TooManyNodes { .. }));
        // Not a timing assertion on performance: a guard against the bomb being expanded.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let flow = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(
            load(&flow)[0].value.is_err(),
            "deep flow nesting is refused"
        );
        let block: String = (0..500)
            .map(|i| format!("{}a:\n", "  ".repeat(i)))
            .collect();
        let err = load(&block)[0].value.clone().expect_err("too deep");
        assert!(
            matches!(err.error, LoadError::TooDeep { limit: 100 }),
            "{err:?}"
        );
    }

    #[test]
    fn oversized_document_is_refused() {
        let limits = LoadLimits {
            max_document_bytes: 100,
            ..LoadLimits::default()
        };
        let text = format!("a: {}\n---\nb: 1\n", "x".repeat(200));
        let docs = load_documents(&text, &limits);
        assert!(matches!(
            docs[0].value.as_ref().expect_err("too large").error,
            LoadError::DocumentTooLarge { .. }
        ));
        assert_eq!(docs[1].value, Ok(json!({"b": 1})));
    }

    #[test]
    fn binary_and_non_utf8_are_refused() {
        let limits = LoadLimits::default();
        assert_eq!(
            decode_text(b"a: 1\n\0\x01", &limits),
            Err(LoadError::Binary { offset: 5 })
        );
        assert_eq!(
            decode_text(b"a: 1\nb: \xff\n", &limits),
            Err(LoadError::NotUtf8 { offset: 8, line: 2 })
        );
        assert_eq!(decode_text("\u{feff}a: 1".as_bytes(), &limits), Ok("a: 1"));
    }

    #[test]
    fn infinity_is_not_json() {
        let err = load("a: .inf\n")[0].value.clone().expect_err("inf");
        assert!(matches!(err.error, LoadError::NotRepresentable(_)));
    }
}
