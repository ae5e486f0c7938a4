//! Finding the line and column of a JSON pointer in a document's YAML text.
//!
//! The loader does not record a position for every node (that would slow the common case, where
//! every document is valid); when a finding needs a position, the document's text is parsed once
//! more and the events are walked with the path tracked until the pointer is reached. A pointer
//! to a field that is absent (a missing required field) resolves to its deepest present parent.

use crate::events::{EventStream, YamlEvent, mark_position, terminated};
use crate::loader::Position;
use crate::pointer::segments;

/// Which end of a mapping member to point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The value (for a scalar value); the key for a mapping or sequence value.
    Value,
    /// The key itself (for unknown or duplicate fields).
    Key,
}

enum Container {
    Seq { next: usize },
    Map { key: Option<String> },
}

/// The position of `pointer` in `text` (one document), whose first line is `line_offset` + 1.
pub fn locate(text: &str, line_offset: usize, pointer: &str, anchor: Anchor) -> Position {
    let target = segments(pointer);
    let mut path: Vec<String> = Vec::new();
    let mut stack: Vec<Container> = Vec::new();
    let mut best = Position {
        line: line_offset + 1,
        column: 1,
    };
    let input = terminated(text);
    let mut bytes = input.as_bytes();
    for event in EventStream::new(&mut bytes, text.len()) {
        let Ok((event, mark)) = event else { break };
        let here = mark_position(&mark, line_offset);
        let is_container = match event {
            YamlEvent::Boundary => continue,
            YamlEvent::SequenceEnd | YamlEvent::MappingEnd => {
                stack.pop();
                finish_value(&mut stack, &mut path);
                continue;
            }
            YamlEvent::SequenceStart(_) | YamlEvent::MappingStart(_) => true,
            YamlEvent::Scalar { .. } | YamlEvent::Alias(_) => false,
        };
        // A scalar in key position names the next member.
        if let Some(Container::Map { key }) = stack.last_mut()
            && key.is_none()
        {
            if let YamlEvent::Scalar { value, .. } = &event {
                *key = Some(value.clone());
                path.push(value.clone());
                if is_prefix(&path, &target) {
                    best = here;
                    if path.len() == target.len() && anchor == Anchor::Key {
                        return best;
                    }
                }
            }
            continue;
        }
        if let Some(Container::Seq { next }) = stack.last_mut() {
            path.push(next.to_string());
            *next += 1;
            if is_prefix(&path, &target) {
                best = here;
            }
        }
        if path == target {
            return if !is_container || path.is_empty() {
                here
            } else {
                best
            };
        }
        if is_container {
            stack.push(match event {
                YamlEvent::SequenceStart(_) => Container::Seq { next: 0 },
                _ => Container::Map { key: None },
            });
        } else {
            finish_value(&mut stack, &mut path);
        }
    }
    best
}

/// Called when a value has been read completely: leaves its member or item.
fn finish_value(stack: &mut [Container], path: &mut Vec<String>) {
    match stack.last_mut() {
        Some(Container::Map { key }) => {
            let had_key = key.take().is_some();
            if had_key {
                path.pop();
            }
        }
        Some(Container::Seq { .. }) => {
            path.pop();
        }
        None => {}
    }
}

fn is_prefix(path: &[String], target: &[String]) -> bool {
    path.len() <= target.len() && path.iter().zip(target).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: nginx\n    ports:\n    - containerPort: 70000\n  - name: side\n    image: busybox\n";

    fn pos(line: usize, column: usize) -> Position {
        Position { line, column }
    }

    #[test]
    fn finds_scalar_values() {
        assert_eq!(locate(POD, 0, "/metadata/name", Anchor::Value), pos(4, 9));
        assert_eq!(
            locate(
                POD,
                0,
                "/spec/containers/0/ports/0/containerPort",
                Anchor::Value
            ),
            pos(10, 22)
        );
        assert_eq!(
            locate(POD, 0, "/spec/containers/1/image", Anchor::Value),
            pos(12, 12)
        );
    }

    #[test]
    fn finds_keys_and_containers() {
        assert_eq!(locate(POD, 0, "/metadata/name", Anchor::Key), pos(4, 3));
        assert_eq!(locate(POD, 0, "/spec/containers", Anchor::Value), pos(6, 3));
    }

    #[test]
    fn missing_fields_resolve_to_their_parent() {
        assert_eq!(locate(POD, 0, "/spec/selector", Anchor::Value), pos(5, 1));
        assert_eq!(
            locate(POD, 0, "/spec/containers/1/ports", Anchor::Value),
            pos(11, 5)
        );
    }

    #[test]
    fn line_offset_and_flow_style() {
        let text = "---\n{\"a\": {\"b\": [1, 2, {\"c\": true}]}}\n";
        assert_eq!(locate(text, 10, "/a/b/2/c", Anchor::Value), pos(12, 26));
    }
}
