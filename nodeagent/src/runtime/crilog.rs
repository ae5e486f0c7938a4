//! Container log files in the CRI format the kubelet reads: one line per record,
//! `<RFC 3339 nano time> <stdout|stderr> <F|P> <text>`, `P` marking a piece of a line longer
//! than [`MAX_LINE`] that the next record continues, `F` its end. A file that grows past
//! [`Rotation::max_bytes`] is renamed `<n>.log.<UTC time>` and a new one begun, keeping at most
//! [`Rotation::max_files`] files per container, as the kubelet's `containerLogMaxSize` and
//! `containerLogMaxFiles` do (`kubectl logs` reads the current file).

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

/// How container log files are rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// A file this large is rotated (the kubelet's 10 MiB).
    pub max_bytes: u64,
    /// Files kept per container, the current one included (the kubelet's 5; at least 2).
    pub max_files: usize,
}

impl Default for Rotation {
    fn default() -> Rotation {
        Rotation {
            max_bytes: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Renames the log file at `path` to `path.<UTC time>` and removes the oldest rotated files
/// beyond what `rotation` keeps; returns the new name. The caller begins a new file.
pub fn rotate(path: &Path, rotation: &Rotation) -> std::io::Result<PathBuf> {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S.%6f");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rotated = path.with_file_name(format!("{name}.{stamp}"));
    std::fs::rename(path, &rotated)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let prefix = format!("{name}.");
    let mut old: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    // The time in the names sorts them oldest first.
    old.sort();
    let keep = rotation.max_files.max(2) - 1;
    for gone in old.iter().take(old.len().saturating_sub(keep)) {
        std::fs::remove_file(gone)?;
    }
    Ok(rotated)
}

/// A container's current log file, rotated as it grows.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: tokio::fs::File,
    size: u64,
    rotation: Rotation,
}

impl LogFile {
    /// Opens (creating or appending to) the log at `path`.
    pub async fn open(path: &Path, rotation: Rotation) -> std::io::Result<LogFile> {
        let file = open(path).await?;
        let size = file.metadata().await?.len();
        Ok(LogFile {
            path: path.to_owned(),
            file,
            size,
            rotation,
        })
    }

    /// Appends whole records, rotating the file once it has grown past the limit.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.file.write_all(bytes).await?;
        self.file.flush().await?;
        self.size += bytes.len() as u64;
        if self.size >= self.rotation.max_bytes {
            rotate(&self.path, &self.rotation)?;
            self.file = open(&self.path).await?;
            self.size = 0;
        }
        Ok(())
    }
}

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

    #[tokio::test]
    async fn files_rotate_by_size_and_old_ones_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c").join("0.log");
        let rotation = Rotation {
            max_bytes: 100,
            max_files: 3,
        };
        let mut file = LogFile::open(&path, rotation).await.expect("open");
        for i in 0..20 {
            file.write(&records(
                "stdout",
                format!("line {i:02} of the log").as_bytes(),
                true,
            ))
            .await
            .expect("write");
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("c"))
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // The current file and the two newest rotated ones.
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[0], "0.log");
        assert!(
            names[1].starts_with("0.log.2") && names[2] > names[1],
            "{names:?}"
        );
        let current = std::fs::read_to_string(&path).expect("read");
        assert!(current.len() < 100 + 60, "{current}");
        let newest = std::fs::read_to_string(dir.path().join("c").join(&names[2])).expect("read");
        assert!(newest.contains("line 1"), "{newest}");
    }

    #[test]
    fn an_unfinished_last_line_is_partial() {
        let out = String::from_utf8(records("stdout", b"no newline", false)).expect("utf-8");
        assert_eq!(parse(out.trim_end()).map(|p| p.2), Some(false));
    }
}
