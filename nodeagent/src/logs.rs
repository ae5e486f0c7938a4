//! Container logs as the kubelet serves them: the node's CRI-format files
//! (`pods/<namespace>_<pod>_<uid>/<container>/<attempt>.log` under each node's root) read back
//! as plain text, with `tailLines`, `sinceSeconds`/`sinceTime`, `timestamps`, `limitBytes`,
//! `previous` (the attempt before the current one) and `follow` (new lines as they are
//! written, until the container is restarted or its pod removed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::runtime::crilog;

/// How often a followed log is read again for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Why logs cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// No such pod or container on this node.
    #[error("{0}")]
    NotFound(String),
    /// The container has not started yet (or, for `previous`, never restarted).
    #[error("{0}")]
    NotStarted(String),
    /// A query parameter is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// Reading the file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// What a log request asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    /// Keep the stream open for new lines.
    pub follow: bool,
    /// The previous attempt's log.
    pub previous: bool,
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<jiff::Timestamp>,
    /// Each line prefixed with its RFC 3339 time.
    pub timestamps: bool,
    /// At most this many bytes.
    pub limit_bytes: Option<usize>,
}

fn flag(query: &HashMap<String, String>, name: &str) -> Result<bool, LogError> {
    match query.get(name).map(String::as_str) {
        None | Some("false" | "0" | "") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(LogError::BadRequest(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

fn number(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, LogError> {
    query
        .get(name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| LogError::BadRequest(format!("{name} must be an integer, not {v:?}")))
        })
        .transpose()
}

impl LogOptions {
    /// Reads the options from the query of a `pods/log` request (the names kubectl sends).
    pub fn from_query(query: &HashMap<String, String>) -> Result<LogOptions, LogError> {
        let tail_lines = match number(query, "tailLines")? {
            Some(n) if n < 0 => None,
            Some(n) => Some(n as usize),
            None => None,
        };
        let limit_bytes = match number(query, "limitBytes")? {
            Some(n) if n <= 0 => {
                return Err(LogError::BadRequest(
                    "limitBytes must be greater than zero".into(),
                ));
            }
            Some(n) => Some(n as usize),
            None => None,
        };
        let since = match (number(query, "sinceSeconds")?, query.get("sinceTime")) {
            (Some(_), Some(_)) => {
                return Err(LogError::BadRequest(
                    "at most one of sinceTime or sinceSeconds may be specified".into(),
                ));
            }
            (Some(s), None) if s <= 0 => {
                return Err(LogError::BadRequest(
                    "sinceSeconds must be greater than zero".into(),
                ));
            }
            (Some(s), None) => jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_secs(s))
                .ok(),
            (None, Some(t)) => Some(t.parse::<jiff::Timestamp>().map_err(|e| {
                LogError::BadRequest(format!("sinceTime {t:?} is not an RFC 3339 time: {e}"))
            })?),
            (None, None) => None,
        };
        Ok(LogOptions {
            follow: flag(query, "follow")?,
            previous: flag(query, "previous")?,
            tail_lines,
            since,
            timestamps: flag(query, "timestamps")?,
            limit_bytes,
        })
    }
}

/// The log files of the nodes of this process.
#[derive(Debug, Clone, Default)]
pub struct LogFiles {
    roots: Vec<PathBuf>,
}

/// The attempts of a container that have a log file, oldest first.
fn attempts(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let n = path.file_stem()?.to_str()?.parse().ok()?;
            (path.extension()? == "log").then_some((n, path))
        })
        .collect();
    found.sort();
    found
}

impl LogFiles {
    /// The logs under these node roots.
    pub fn new(roots: Vec<PathBuf>) -> LogFiles {
        LogFiles { roots }
    }

    /// The directory of the pod `namespace/name` (the newest, if a pod of that name ran
    /// before).
    fn pod_dir(&self, namespace: &str, name: &str) -> Option<PathBuf> {
        let prefix = format!("{namespace}_{name}_");
        self.roots
            .iter()
            .flat_map(|root| std::fs::read_dir(root.join("pods")).into_iter().flatten())
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
            .map(|e| e.path())
    }

    /// The log file of `container` in `namespace/pod`: its current attempt, or the one before
    /// with `previous`.
    pub fn find(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<PathBuf, LogError> {
        let dir = self.pod_dir(namespace, pod).ok_or_else(|| {
            LogError::NotFound(format!("pod {namespace}/{pod} is not on this node"))
        })?;
        let mut found = attempts(&dir.join(container));
        if previous {
            found.pop();
            return found.pop().map(|(_, p)| p).ok_or_else(|| {
                LogError::NotStarted(format!(
                    "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                ))
            });
        }
        found.pop().map(|(_, p)| p).ok_or_else(|| {
            LogError::NotStarted(format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            ))
        })
    }
}

/// Turns CRI records into the text a client reads, honouring the options; carries partial
/// lines and the byte budget from one chunk to the next.
#[derive(Debug)]
pub struct Renderer {
    options: LogOptions,
    partial: String,
    left: Option<usize>,
}

impl Renderer {
    /// A renderer for `options`.
    pub fn new(options: LogOptions) -> Renderer {
        Renderer {
            left: options.limit_bytes,
            options,
            partial: String::new(),
        }
    }

    /// Whether the byte limit is spent.
    pub fn spent(&self) -> bool {
        self.left == Some(0)
    }

    /// The complete lines of `records` (whole CRI lines), rendered; `tail` keeps only the
    /// last lines (the first read).
    pub fn render(&mut self, records: &str, tail: Option<usize>) -> Vec<u8> {
        let mut lines: Vec<String> = Vec::new();
        for record in records.lines() {
            let Some((time, _stream, complete, text)) = crilog::parse(record) else {
                continue;
            };
            if let Some(since) = self.options.since
                && time.parse::<jiff::Timestamp>().is_ok_and(|t| t < since)
            {
                continue;
            }
            if self.partial.is_empty() && self.options.timestamps {
                self.partial.push_str(time);
                self.partial.push(' ');
            }
            self.partial.push_str(text);
            if complete {
                let mut line = std::mem::take(&mut self.partial);
                line.push('\n');
                lines.push(line);
            }
        }
        if let Some(n) = tail {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        let mut out: Vec<u8> = lines.concat().into_bytes();
        if let Some(left) = self.left.as_mut() {
            out.truncate(*left);
            *left -= out.len();
        }
        out
    }
}

/// Reads `path` from `offset` to its end; the complete lines read and the new offset.
/// The whole records of the log at `path` from `offset` on, and the offset after them (from
/// the start again when the file was rotated and begun anew).
pub(crate) async fn read_from(path: &Path, offset: u64) -> Result<(String, u64), LogError> {
    let io = |source| LogError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    // A file shorter than what was read of it is a new one (the old was rotated away).
    let len = file.metadata().await.map_err(io)?.len();
    let offset = if len < offset { 0 } else { offset };
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).await.map_err(io)?;
    // Only whole records: a line still being written is read next time.
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(whole);
    Ok((
        String::from_utf8_lossy(&bytes).into_owned(),
        offset + whole as u64,
    ))
}

/// Tells whether a container is still writing the log at a path (it runs).
pub type Writing = std::sync::Arc<dyn Fn(&Path) -> bool + Send + Sync>;

/// Whether a followed log has ended: its container stopped, restarted (a newer attempt has a
/// file) or its pod is gone.
fn superseded(path: &Path, writing: &Writing) -> bool {
    let Some(dir) = path.parent() else {
        return true;
    };
    if !path.exists() || !writing(path) {
        return true;
    }
    let current = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse::<u64>().ok());
    attempts(dir).last().map(|(n, _)| *n) != current
}

/// The log at `path` as a stream of text chunks, per `options`.
pub fn stream(
    path: PathBuf,
    options: LogOptions,
    writing: Writing,
) -> impl Stream<Item = Result<Bytes, LogError>> + Send {
    struct State {
        writing: Writing,
        path: PathBuf,
        offset: u64,
        renderer: Renderer,
        first: bool,
        follow: bool,
        tail: Option<usize>,
        ended: bool,
    }
    let state = State {
        writing,
        path,
        offset: 0,
        follow: options.follow,
        tail: options.tail_lines,
        renderer: Renderer::new(options),
        first: true,
        ended: false,
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            if !state.first {
                if !state.follow || state.renderer.spent() || state.ended {
                    return None;
                }
                tokio::time::sleep(FOLLOW_EVERY).await;
                // Seen ended before this read: what it read is the last of it.
                state.ended = superseded(&state.path, &state.writing);
            }
            let tail = if state.first { state.tail } else { None };
            let first = std::mem::replace(&mut state.first, false);
            let (records, offset) = match read_from(&state.path, state.offset).await {
                Ok(read) => read,
                // The pod was removed while followed: the stream ends.
                Err(_) if !first => return None,
                Err(e) => return Some((Err(e), None)),
            };
            state.offset = offset;
            let out = state.renderer.render(&records, tail);
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), Some(state)));
            }
            if state.ended {
                return None;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(lines: &[(&str, &str, char, &str)]) -> String {
        lines
            .iter()
            .map(|(time, stream, tag, text)| format!("{time} {stream} {tag} {text}\n"))
            .collect()
    }

    fn options(pairs: &[(&str, &str)]) -> LogOptions {
        let query: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        LogOptions::from_query(&query).expect("options")
    }

    const T1: &str = "2026-01-01T00:00:01.000000000Z";
    const T2: &str = "2026-01-01T00:00:02.000000000Z";
    const T3: &str = "2026-01-01T00:00:03.000000000Z";

    #[test]
    fn partial_records_join_and_timestamps_prefix_lines() {
        let text = records(&[
            (T1, "stdout", 'P', "hel"),
            (T1, "stdout", 'F', "lo"),
            (T2, "stderr", 'F', "oops"),
        ]);
        let mut r = Renderer::new(options(&[]));
        assert_eq!(r.render(&text, None), b"hello\noops\n");
        let mut r = Renderer::new(options(&[("timestamps", "true")]));
        assert_eq!(
            String::from_utf8(r.render(&text, None)).expect("utf-8"),
            format!("{T1} hello\n{T2} oops\n")
        );
    }

    #[test]
    fn tail_since_and_limit_cut_the_output() {
        let text = records(&[
            (T1, "stdout", 'F', "one"),
            (T2, "stdout", 'F', "two"),
            (T3, "stdout", 'F', "three"),
        ]);
        assert_eq!(
            Renderer::new(options(&[])).render(&text, Some(2)),
            b"two\nthree\n"
        );
        let mut since = Renderer::new(options(&[("sinceTime", T2)]));
        assert_eq!(since.render(&text, None), b"two\nthree\n");
        let mut limited = Renderer::new(options(&[("limitBytes", "6")]));
        assert_eq!(limited.render(&text, None), b"one\ntw");
        assert!(limited.spent());
        assert_eq!(limited.render(&text, None), b"");
    }

    #[test]
    fn bad_options_are_refused() {
        let query = |k: &str, v: &str| HashMap::from([(k.to_owned(), v.to_owned())]);
        for (k, v) in [
            ("tailLines", "x"),
            ("limitBytes", "0"),
            ("sinceSeconds", "-1"),
            ("follow", "maybe"),
            ("sinceTime", "yesterday"),
        ] {
            assert!(
                matches!(
                    LogOptions::from_query(&query(k, v)),
                    Err(LogError::BadRequest(_))
                ),
                "{k}={v}"
            );
        }
    }

    #[tokio::test]
    async fn files_are_found_by_attempt_and_streamed() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("pods").join("ns_web_uid1").join("c");
        std::fs::create_dir_all(&dir).expect("dirs");
        std::fs::write(
            dir.join("0.log"),
            records(&[(T1, "stdout", 'F', "first run")]),
        )
        .expect("write");
        std::fs::write(
            dir.join("1.log"),
            records(&[(T2, "stdout", 'F', "second run")]),
        )
        .expect("write");
        let files = LogFiles::new(vec![root.path().to_owned()]);
        let current = files.find("ns", "web", "c", false).expect("current");
        assert!(current.ends_with("1.log"));
        let previous = files.find("ns", "web", "c", true).expect("previous");
        assert!(previous.ends_with("0.log"));
        assert!(matches!(
            files.find("ns", "other", "c", false),
            Err(LogError::NotFound(_))
        ));
        assert!(matches!(
            files.find("ns", "web", "d", false),
            Err(LogError::NotStarted(_))
        ));
        use futures::StreamExt;
        let writing: Writing = std::sync::Arc::new(|_: &Path| false);
        let chunks: Vec<_> = stream(current, LogOptions::default(), writing)
            .collect()
            .await;
        let text: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.expect("chunk").to_vec())
            .collect();
        assert_eq!(text, b"second run\n");
    }
}
