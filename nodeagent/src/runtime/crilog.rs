//! Container log files in the CRI format the kubelet reads: one line per record,
//! `<RFC 3339 nano time> <stdout|stderr> <F|P> <text>`, `P` marking a piece of a line longer
//! than [`MAX_LINE`] that the next record continues, `F` its end.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

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

/// Copies `from` (a container's stdout or stderr) into the log file `file`, line by line,
/// until the stream ends. Both streams of a container share the file through `file`'s lock.
pub async fn copy(
    stream: &'static str,
    from: impl AsyncRead + Unpin,
    file: &Mutex<tokio::fs::File>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(());
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
        }
        let bytes = records(stream, &line, complete);
        let mut file = file.lock().await;
        file.write_all(&bytes).await?;
        file.flush().await?;
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
    fn an_unfinished_last_line_is_partial() {
        let out = String::from_utf8(records("stdout", b"no newline", false)).expect("utf-8");
        assert_eq!(parse(out.trim_end()).map(|p| p.2), Some(false));
    }
}
