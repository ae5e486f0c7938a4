//! JSON pointers (RFC 6901), the way findings name the field they are about
//! (`/spec/template/spec/containers/0/ports/0/containerPort`).

use std::fmt;

/// A JSON pointer being built or taken apart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPointer(String);

impl JsonPointer {
    /// The pointer to the whole document (the empty string).
    pub fn root() -> Self {
        JsonPointer(String::new())
    }

    /// Wraps a pointer string as it is.
    pub fn from_string(pointer: String) -> Self {
        JsonPointer(pointer)
    }

    /// Appends an object member.
    pub fn push(&mut self, key: &str) {
        self.0.push('/');
        for c in key.chars() {
            match c {
                '~' => self.0.push_str("~0"),
                '/' => self.0.push_str("~1"),
                c => self.0.push(c),
            }
        }
    }

    /// Appends an array index.
    pub fn push_index(&mut self, index: usize) {
        use std::fmt::Write;
        let _ = write!(self.0, "/{index}");
    }

    /// A new pointer with a member appended.
    pub fn join(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.push(key);
        p
    }

    /// A new pointer with an index appended.
    pub fn join_index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.push_index(index);
        p
    }

    /// The pointer as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pointer as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The unescaped segments of the pointer.
    pub fn segments(&self) -> Vec<String> {
        segments(&self.0)
    }
}

/// The unescaped segments of a pointer string.
pub fn segments(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let mut p = JsonPointer::root();
        p.push("metadata");
        p.push("annotations");
        p.push("example.com/a~b");
        p.push_index(3);
        assert_eq!(p.as_str(), "/metadata/annotations/example.com~1a~0b/3");
        assert_eq!(
            p.segments(),
            vec!["metadata", "annotations", "example.com/a~b", "3"]
        );
        assert!(JsonPointer::root().segments().is_empty());
    }
}
