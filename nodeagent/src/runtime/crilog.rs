//! Container log files in the CRI format the kubelet reads: one line per record,
//! `<RFC 3339 nano time> <stdout|stderr> <F|P> <text>`, `P` marking a piece of a line longer
//! than [`MAX_LINE`] that the next record continues, `F` its end.

use std::path::Path;

/// The longest piece of a line one record holds (the kubelet's 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// One record, as written.
fn record(stream: &str, tag: char, text: &[u8]) -> Vec<u8> {
    let time = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%9fZ");
    let mut out = format!("{time} {stream} {tag} ").into_bytes();
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// The records for one line read from a stream (without its newline; `complete` when a
/// newline ended it).
pub fn records(stream: &str, line: &[u8], complete: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pieces = line.chunks(MAX_LINE).peekable();
    if line.is_empty() {
        return record(stream, if complete { 'F' } else { 'P' }, b"");
    }
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        let tag = if last && complete { 'F' } else { 'P' };
        out.extend(record(stream, tag, piece));
    }
    out
}

/// A parsed record: `(time, stream, complete, text)`.
pub fn parse(line: &str) -> Option<(&str, &str, bool, &str)> {
    let (time, rest) = line.split_once(' ')?;
    let (stream, rest) = rest.split_once(' ')?;
    let (tag, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let complete = match tag {
        "F" => true,
        "P" => false,
        _ => return None,
    };
    Some((time, stream, complete, text))
}

/// Cuts one stream's bytes, as they arrive, into records: complete lines as they end, a
/// line longer than [`MAX_LINE`] in partial pieces, and what is left at the end as a partial
/// record.
#[derive(Debug)]
pub struct Lines {
    stream: &'static str,
    pending: Vec<u8>,
}

impl Lines {
    /// A splitter for `stream` (`stdout` or `stderr`).
    pub fn new(stream: &'static str) -> Lines {
        Lines {
            stream,
            pending: Vec::new(),
        }
    }

    /// The records `bytes` complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            self.pending.extend_from_slice(chunk);
            if self.pending.last() == Some(&b'\n') {
                self.pending.pop();
                out.extend(records(self.stream, &self.pending, true));
                self.pending.clear();
            } else if self.pending.len() >= MAX_LINE {
                let rest = self.pending.split_off(MAX_LINE);
                out.extend(records(self.stream, &self.pending, false));
                self.pending = rest;
            }
        }
        out
    }

    /// The last unfinished line, as a partial record (nothing when there is none).
    pub fn finish(&mut self) -> Vec<u8> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let out = records(self.stream, &self.pending, false);
        self.pending.clear();
        out
    }
}

/// Opens (creating or appending to) the log file at `path`.
pub async fn open(path: &Path) -> std::io::Result<tokio::fs::File> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_full_record() {
        let out = String::from_utf8(records("stdout", b"hello", true)).expect("utf-8");
        let (time, stream, complete, text) = parse(out.trim_end()).expect("parsed");
        assert!(time.ends_with('Z') && time.len() == 30, "{time}");
        assert_eq!((stream, complete, text), ("stdout", true, "hello"));
    }

    #[test]
    fn a_long_line_is_split_into_partial_records() {
        let long = vec![b'x'; MAX_LINE + 10];
        let out = String::from_utf8(records("stderr", &long, true)).expect("utf-8");
        let lines: Vec<_> = out.lines().map(|l| parse(l).expect("parsed")).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].2, lines[0].3.len()), (false, MAX_LINE));
        assert_eq!((lines[1].2, lines[1].3.len()), (true, 10));
    }

    #[test]
    fn lines_split_where_the_bytes_end_them() {
        let mut lines = Lines::new("stdout");
        assert!(lines.push(b"hel").is_empty());
        let out = String::from_utf8(lines.push(b"lo\nwor")).expect("utf-8");
        assert_eq!(
            parse(out.trim_end()).map(|p| (p.2, p.3)),
            Some((true, "hello"))
        );
        let rest = String::from_utf8(lines.finish()).expect("utf-8");
        assert_eq!(
            parse(rest.trim_end()).map(|p| (p.2, p.3)),
            Some((false, "wor"))
        );
        assert!(lines.finish().is_empty());
    }

    #[test]
    fn an_unfinished_last_line_is_partial() {
        let out = String::from_utf8(records("stdout", b"no newline", false)).expect("utf-8");
        assert_eq!(parse(out.trim_end()).map(|p| p.2), Some(false));
    }
}
