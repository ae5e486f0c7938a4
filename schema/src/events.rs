//! The YAML event stream, the one place ferry touches its YAML parser.
//!
//! The parser is `libyaml-safer`, a memory-safe port of libyaml, the C library that go-yaml
//! (and through it kubectl and the apiserver) is itself a port of, so documents tokenize the way
//! Kubernetes tokenizes them. It is a pull parser with an explicit state stack: no recursion,
//! and nothing is parsed beyond the event the caller asks for.
//!
//! Two guards around it. Its scanner panics when a block scalar runs into the end of input
//! (C libyaml pads its buffer with NULs there; the port does not), so the text is always given
//! a final newline ([`terminated`]) and a block scalar that consumed that added newline gets it
//! taken off again: values are exactly what Kubernetes reads. And should the parser panic on
//! some other input, the panic is caught and reported as a syntax error of that document.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use libyaml_safer::{EventData, Mark, Parser, ScalarStyle};

use crate::loader::Position;

/// One parse event, reduced to what ferry needs.
#[derive(Debug)]
pub enum YamlEvent {
    /// A scalar: its text, whether it was plain (unquoted, not a block scalar), its tag.
    Scalar {
        /// The scalar's text.
        value: String,
        /// Plain style (subject to implicit typing).
        plain: bool,
        /// The resolved tag, e.g. `tag:yaml.org,2002:str`.
        tag: Option<String>,
        /// Anchor name.
        anchor: Option<String>,
    },
    /// An alias to an earlier anchor.
    Alias(String),
    /// Start of a sequence.
    SequenceStart(Option<String>),
    /// End of a sequence.
    SequenceEnd,
    /// Start of a mapping.
    MappingStart(Option<String>),
    /// End of a mapping.
    MappingEnd,
    /// Stream or document boundaries.
    Boundary,
}

/// A syntax error from the parser.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    /// What went wrong.
    pub message: String,
    /// Where, 0-based line and column within the parsed text.
    pub line: usize,
    /// 0-based column.
    pub column: usize,
}

/// Is this panic one of the YAML library's own (caught by [`EventStream`] and reported as a
/// syntax error)? Panic hooks use it to keep those quiet while every other panic stays loud.
pub fn is_yaml_library_panic(info: &std::panic::PanicHookInfo<'_>) -> bool {
    info.location()
        .is_some_and(|l| l.file().contains("libyaml-safer") || l.file().contains("libyaml_safer"))
}

/// The text to hand to [`EventStream::new`]: `text` with a final newline.
pub fn terminated(text: &str) -> Cow<'_, str> {
    if text.ends_with('\n') {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("{text}\n"))
    }
}

/// Pulls events from a text.
pub struct EventStream<'a> {
    parser: Parser<'a>,
    original_len: u64,
    last_mark: Mark,
    done: bool,
}

impl<'a> EventStream<'a> {
    /// Starts parsing `input`, which [`terminated`] made from a text of `original_len` bytes
    /// (the caller holds it for the stream's lifetime).
    pub fn new(input: &'a mut &'a [u8], original_len: usize) -> Self {
        let mut parser = Parser::new();
        parser.set_input_string(input);
        EventStream {
            parser,
            original_len: original_len as u64,
            last_mark: Mark::default(),
            done: false,
        }
    }
}

/// Converts a 0-based mark of the parsed text into a file position.
pub fn mark_position(mark: &Mark, line_offset: usize) -> Position {
    Position {
        line: mark.line as usize + 1 + line_offset,
        column: mark.column as usize + 1,
    }
}

impl Iterator for EventStream<'_> {
    type Item = Result<(YamlEvent, Mark), SyntaxError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let parsed = catch_unwind(AssertUnwindSafe(|| self.parser.parse()));
        let event = match parsed {
            Ok(Ok(event)) => event,
            Err(_panic) => {
                self.done = true;
                return Some(Err(SyntaxError {
                    message: "the YAML parser failed on this document".into(),
                    line: self.last_mark.line as usize,
                    column: self.last_mark.column as usize,
                }));
            }
            Ok(Err(error)) => {
                self.done = true;
                let mark = error.problem_mark().unwrap_or_default();
                let message = match error.context() {
                    Some(context) => format!("{}, {}", error.problem(), context),
                    None => error.problem().to_owned(),
                };
                return Some(Err(SyntaxError {
                    message,
                    line: mark.line as usize,
                    column: mark.column as usize,
                }));
            }
        };
        self.last_mark = event.start_mark;
        let yaml = match event.data {
            EventData::StreamEnd => {
                self.done = true;
                YamlEvent::Boundary
            }
            EventData::StreamStart { .. }
            | EventData::DocumentStart { .. }
            | EventData::DocumentEnd { .. } => YamlEvent::Boundary,
            EventData::Alias { anchor } => YamlEvent::Alias(anchor),
            EventData::Scalar {
                anchor,
                tag,
                mut value,
                style,
                ..
            } => {
                let block = matches!(style, ScalarStyle::Literal | ScalarStyle::Folded);
                if block && event.end_mark.index > self.original_len && value.ends_with('\n') {
                    // The newline `terminated` added is not part of the document.
                    value.pop();
                }
                YamlEvent::Scalar {
                    value,
                    plain: style == ScalarStyle::Plain,
                    tag,
                    anchor,
                }
            }
            EventData::SequenceStart { anchor, .. } => YamlEvent::SequenceStart(anchor),
            EventData::SequenceEnd => YamlEvent::SequenceEnd,
            EventData::MappingStart { anchor, .. } => YamlEvent::MappingStart(anchor),
            EventData::MappingEnd => YamlEvent::MappingEnd,
        };
        Some(Ok((yaml, event.start_mark)))
    }
}
