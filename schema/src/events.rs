//! The YAML event stream, the one place ferry touches its YAML parser.
//!
//! The parser is `libyaml-safer`, a memory-safe port of libyaml, the C library that go-yaml
//! (and through it kubectl and the apiserver) is itself a port of, so documents tokenize the way
//! Kubernetes tokenizes them. It is a pull parser with an explicit state stack: no recursion,
//! and nothing is parsed beyond the event the caller asks for.

use libyaml_safer::{EventData, Mark, Parser};

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

/// Pulls events from a text.
pub struct EventStream<'a> {
    parser: Parser<'a>,
    done: bool,
}

impl<'a> EventStream<'a> {
    /// Starts parsing `text` (held by the caller for the stream's lifetime).
    pub fn new(text: &'a mut &'a [u8]) -> Self {
        let mut parser = Parser::new();
        parser.set_input_string(text);
        EventStream {
            parser,
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
        let event = match self.parser.parse() {
            Ok(event) => event,
            Err(error) => {
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
                value,
                style,
                ..
            } => YamlEvent::Scalar {
                value,
                plain: style == libyaml_safer::ScalarStyle::Plain,
                tag,
                anchor,
            },
            EventData::SequenceStart { anchor, .. } => YamlEvent::SequenceStart(anchor),
            EventData::SequenceEnd => YamlEvent::SequenceEnd,
            EventData::MappingStart { anchor, .. } => YamlEvent::MappingStart(anchor),
            EventData::MappingEnd => YamlEvent::MappingEnd,
        };
        Some(Ok((yaml, event.start_mark)))
    }
}
