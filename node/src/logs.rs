//! CRI container logs: parsing the runtime's log format, serving `kubectl logs` with
//! upstream's semantics (pkg/kubelet/kuberuntime/logs), and planning log rotation like
//! upstream's container log manager.
//!
//! A CRI log file holds one record per line:
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\n`, where `P` marks a partial
//! record whose content continues in the next record (the runtime splits long lines).
//! Rotated files sit next to the log as `<path>.<YYYYMMDD-HHMMSS>`; the caller renames the
//! file and calls ReopenContainerLog, this module only decides.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::io::{self, BufRead};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt, BufReader};

/// How often a follower looks for appended data and for rotation.
pub const FOLLOW_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Upstream kubelet defaults (containerLogMaxSize, containerLogMaxFiles).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
pub const DEFAULT_MAX_FILES: usize = 5;

const FLUSH_THRESHOLD: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A malformed record; the message is upstream's parseCRILog text.
    #[error("{0}")]
    Parse(String),
    #[error("failed to try resolving symlinks in path {path:?}: {source}")]
    Resolve {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to open log file {path:?}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read log file {path:?}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to tail log file {path:?}: {source}")]
    Tail {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to write logs: {0}")]
    Write(#[source] io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub time: Timestamp,
    pub stream: Stream,
    /// A `P` record: the line continues in the next record.
    pub partial: bool,
    /// As upstream: everything after the tag, including the record's trailing newline for
    /// full records; a partial record's trailing newline is removed.
    pub content: &'a [u8],
}

/// Parses one record as read from the file (with its trailing newline).
pub fn parse_line(line: &[u8]) -> Result<LogLine<'_>, LogError> {
    let err = |m: String| LogError::Parse(m);
    let sp = |b: &[u8]| b.iter().position(|c| *c == b' ');
    let idx = sp(line).ok_or_else(|| err("timestamp is not found".into()))?;
    let ts_text = std::str::from_utf8(&line[..idx])
        .map_err(|_| err("unexpected timestamp format: not utf-8".into()))?;
    let time: Timestamp = ts_text
        .parse()
        .map_err(|e| err(format!("unexpected timestamp format {ts_text:?}: {e}")))?;
    let rest = &line[idx + 1..];
    let idx = sp(rest).ok_or_else(|| err("stream type is not found".into()))?;
    let stream = match &rest[..idx] {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => {
            return Err(err(format!(
                "unexpected stream type {:?}",
                String::from_utf8_lossy(other)
            )))
        }
    };
    let rest = &rest[idx + 1..];
    let idx = sp(rest).ok_or_else(|| err("log tag is not found".into()))?;
    // Tags are ':'-separated for forward compatibility; the first one is P or F.
    let partial = rest[..idx].split(|c| *c == b':').next() == Some(b"P");
    let mut content = &rest[idx + 1..];
    if partial {
        content = content.strip_suffix(b"\n").unwrap_or(content);
    }
    Ok(LogLine {
        time,
        stream,
        partial,
        content,
    })
}

/// Whether a raw record is a partial one (cheap: no timestamp parsing).
fn record_is_partial(raw: &[u8]) -> bool {
    let mut fields = raw.splitn(4, |c| *c == b' ');
    let (_, _, tag) = (fields.next(), fields.next(), fields.next());
    matches!(tag, Some(t) if t.split(|c| *c == b':').next() == Some(b"P"))
}

/// Upstream's output timestamp format (RFC3339NanoFixed), in UTC.
pub fn format_timestamp(t: Timestamp) -> String {
    let z = t.to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        "{}.{:09}Z",
        z.strftime("%Y-%m-%dT%H:%M:%S"),
        z.subsec_nanosecond()
    )
}

/// `kubectl logs` options, as the kubelet derives them from PodLogOptions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    /// The last N lines (a line being a run of partial records and the full record that
    /// ends it); negative or `None` means all. With a tail, rotated predecessors of the file
    /// are read too when the current file has fewer lines.
    pub tail_lines: Option<i64>,
    /// Skip records older than this (sinceSeconds/sinceTime, already resolved).
    pub since: Option<Timestamp>,
    /// Prefix each line with `<RFC3339Nano> `.
    pub timestamps: bool,
    /// Stop after this many bytes of output (the last line is cut).
    pub limit_bytes: Option<i64>,
}

/// Streams the container log at `path` to `out`.
///
/// Without `follow` it writes what is in the file and returns. With `follow` it keeps
/// polling for appended data and for rotation (the file replaced by a new one, whose content
/// is read from its start after the old one is drained); once `stop` resolves (the container
/// has exited) it drains what is left and returns. A write error ends it with
/// [`LogError::Write`]; dropping the future cancels it.
pub async fn read_logs<W, F>(
    path: &Path,
    opts: &LogOptions,
    out: W,
    stop: F,
) -> Result<(), LogError>
where
    W: AsyncWrite + Unpin,
    F: Future<Output = ()>,
{
    read_logs_with_interval(path, opts, out, stop, FOLLOW_POLL_INTERVAL).await
}

/// [`read_logs`] with a custom poll interval.
pub async fn read_logs_with_interval<W, F>(
    path: &Path,
    opts: &LogOptions,
    mut out: W,
    stop: F,
    interval: Duration,
) -> Result<(), LogError>
where
    W: AsyncWrite + Unpin,
    F: Future<Output = ()>,
{
    let path = tokio::fs::canonicalize(path)
        .await
        .map_err(|source| LogError::Resolve {
            path: path.to_path_buf(),
            source,
        })?;
    let tail = opts.tail_lines.filter(|n| *n >= 0).map(|n| n as u64);
    let (chain, mut idx, start) = match tail {
        Some(n) => {
            let mut chain = rotated_predecessors(&path).await;
            chain.push(path.clone());
            let c = chain.clone();
            let (i, off) = tokio::task::spawn_blocking(move || tail_start(&c, n))
                .await
                .map_err(|e| LogError::Tail {
                    path: path.clone(),
                    source: io::Error::other(e),
                })?
                .map_err(|source| LogError::Tail {
                    path: path.clone(),
                    source,
                })?;
            (chain, i, off)
        }
        None => (vec![path.clone()], 0, 0),
    };
    // Like upstream, a tail without follow stops after that many lines.
    let mut limited = tail.filter(|_| !opts.follow);
    if limited == Some(0) {
        return Ok(());
    }

    let mut writer = LogWriter::new(opts);
    let (mut reader, mut ident) = open_at(&chain[idx], start).await?;
    let mut buf = Vec::new();
    let mut stopped = false;
    let mut switch_pending = false;
    tokio::pin!(stop);

    loop {
        reader
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|source| LogError::Read {
                path: chain[idx].clone(),
                source,
            })?;
        if buf.ends_with(b"\n") {
            let done = process(&buf, &mut writer, &mut limited);
            buf.clear();
            if done {
                return writer.flush(&mut out).await;
            }
            if writer.batch.len() >= FLUSH_THRESHOLD {
                writer.flush(&mut out).await?;
            }
            continue;
        }
        // End of file; `buf` may hold an incomplete record.
        if idx + 1 < chain.len() {
            // A rotated predecessor never grows: take it as is and go on.
            if !buf.is_empty() && process(&buf, &mut writer, &mut limited) {
                return writer.flush(&mut out).await;
            }
            buf.clear();
            idx += 1;
            (reader, ident) = open_at(&chain[idx], 0).await?;
            continue;
        }
        if !opts.follow {
            if !buf.is_empty() {
                process(&buf, &mut writer, &mut limited);
            }
            return writer.flush(&mut out).await;
        }
        writer.flush(&mut out).await?;
        if switch_pending {
            // The old file is drained (read once more after the new one appeared).
            switch_pending = false;
            match open_at(&path, 0).await {
                Ok((r, i)) => {
                    buf.clear();
                    (reader, ident) = (r, i);
                    continue;
                }
                Err(e) => tracing::debug!(error = %e, "cannot open the rotated-in log file"),
            }
        } else if let Ok(meta) = tokio::fs::metadata(&path).await {
            if (meta.dev(), meta.ino()) != ident {
                switch_pending = true;
                continue;
            }
        }
        if stopped {
            if !buf.is_empty() {
                process(&buf, &mut writer, &mut limited);
            }
            return writer.flush(&mut out).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = &mut stop, if !stopped => { stopped = true; }
        }
    }
}

/// Parses and writes one record; true when output must end (byte limit or tail count).
fn process(raw: &[u8], writer: &mut LogWriter, limited: &mut Option<u64>) -> bool {
    let line = match parse_line(raw) {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %e, "skipping malformed log record");
            return false;
        }
    };
    if writer.write(&line) {
        return true;
    }
    if let Some(n) = limited.as_mut() {
        if !line.partial {
            *n = n.saturating_sub(1);
            if *n == 0 {
                return true;
            }
        }
    }
    false
}

/// upstream logWriter: since filter, timestamp prefix at line starts, byte limit.
struct LogWriter {
    since: Option<Timestamp>,
    timestamps: bool,
    remain: i64,
    is_new_line: bool,
    batch: Vec<u8>,
}

impl LogWriter {
    fn new(opts: &LogOptions) -> Self {
        LogWriter {
            since: opts.since,
            timestamps: opts.timestamps,
            remain: opts.limit_bytes.filter(|b| *b >= 0).unwrap_or(i64::MAX),
            is_new_line: true,
            batch: Vec::new(),
        }
    }

    /// Buffers one record; true when the byte limit is reached.
    fn write(&mut self, line: &LogLine<'_>) -> bool {
        let add_prefix = self.is_new_line;
        self.is_new_line = line.content.last().is_none_or(|c| *c == b'\n');
        if self.since.is_some_and(|s| line.time < s) {
            return false;
        }
        let start = self.batch.len();
        if self.timestamps && add_prefix {
            self.batch
                .extend_from_slice(format_timestamp(line.time).as_bytes());
            self.batch.push(b' ');
        }
        self.batch.extend_from_slice(line.content);
        let written = (self.batch.len() - start) as i64;
        if written > self.remain {
            self.batch.truncate(start + self.remain.max(0) as usize);
        }
        self.remain -= written.min(self.remain);
        self.remain <= 0
    }

    async fn flush<W: AsyncWrite + Unpin>(&mut self, out: &mut W) -> Result<(), LogError> {
        if !self.batch.is_empty() {
            out.write_all(&self.batch).await.map_err(LogError::Write)?;
            self.batch.clear();
        }
        out.flush().await.map_err(LogError::Write)
    }
}

type FileIdent = (u64, u64);

async fn open_at(
    path: &Path,
    offset: u64,
) -> Result<(BufReader<tokio::fs::File>, FileIdent), LogError> {
    let open_err = |source| LogError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut f = tokio::fs::File::open(path).await.map_err(open_err)?;
    let meta = f.metadata().await.map_err(open_err)?;
    if offset > 0 {
        f.seek(io::SeekFrom::Start(offset))
            .await
            .map_err(open_err)?;
    }
    Ok((BufReader::new(f), (meta.dev(), meta.ino())))
}

/// Whether `name` is `<base>.<YYYYMMDD-HHMMSS>` (an uncompressed rotated file).
fn is_rotated_name(name: &str, base: &str) -> bool {
    let Some(suffix) = name.strip_prefix(base).and_then(|s| s.strip_prefix('.')) else {
        return false;
    };
    let b = suffix.as_bytes();
    b.len() == 15
        && b[8] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit())
}

/// The uncompressed rotated files of `path`, oldest first.
async fn rotated_predecessors(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(base)) = (path.parent(), path.file_name().and_then(|b| b.to_str())) else {
        return Vec::new();
    };
    let mut found = BTreeSet::new();
    if let Ok(mut rd) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            if let Some(name) = e.file_name().to_str() {
                if is_rotated_name(name, base) {
                    found.insert(dir.join(name));
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Where to start reading to show the last `n` lines of the files in `chain` (oldest
/// first): (file index, byte offset).
fn tail_start(chain: &[PathBuf], n: u64) -> io::Result<(usize, u64)> {
    let last = chain.len().saturating_sub(1);
    if n == 0 {
        return Ok((last, std::fs::metadata(&chain[last])?.len()));
    }
    let mut need = n;
    for i in (0..chain.len()).rev() {
        let (starts, total) = match line_starts(&chain[i], need) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound && i != last => continue,
            Err(e) => return Err(e),
        };
        if total >= need {
            return Ok((i, starts[starts.len() - need as usize]));
        }
        need -= total;
    }
    Ok((0, 0))
}

/// The offsets where the last `keep` lines of a file start, and the file's line count.
/// Continuation records at the very start of a file count as a line of their own.
fn line_starts(path: &Path, keep: u64) -> io::Result<(VecDeque<u64>, u64)> {
    let mut r = io::BufReader::with_capacity(64 * 1024, std::fs::File::open(path)?);
    let mut starts = VecDeque::new();
    let mut total = 0u64;
    let mut pos = 0u64;
    let mut at_start = true;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        if at_start {
            starts.push_back(pos);
            total += 1;
            if starts.len() as u64 > keep {
                starts.pop_front();
            }
        }
        at_start = !record_is_partial(&buf);
        pos += n as u64;
    }
    Ok((starts, total))
}

/// What to do with a container's logs now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RotationPlan {
    /// Rename the log to [`rotated_name`] and call ReopenContainerLog.
    pub rotate: bool,
    /// Files to delete first (oldest rotated files beyond the limit, leftovers).
    pub remove: Vec<PathBuf>,
}

/// upstream containerLogManager.rotateLog's decisions. `existing` lists files in the log's
/// directory with their sizes (the log itself and its `<log>.*` siblings; others are
/// ignored). Nothing happens until the log reaches `max_size`; then `.tmp` leftovers and
/// uncompressed files that have a `.gz` twin go, and the oldest rotated files go until
/// `max_files - 2` remain (the live log and the one about to be rotated make `max_files`).
pub fn rotation_plan(
    current: &Path,
    existing: &[(PathBuf, u64)],
    max_size: u64,
    max_files: usize,
) -> RotationPlan {
    let size = existing.iter().find(|(p, _)| p == current).map(|(_, s)| *s);
    let Some(size) = size else {
        return RotationPlan::default();
    };
    if max_size == 0 || size < max_size {
        return RotationPlan::default();
    }
    let Some(base) = current.file_name().and_then(|b| b.to_str()) else {
        return RotationPlan::default();
    };
    let prefix = format!("{base}.");
    let rotated: BTreeSet<&PathBuf> = existing
        .iter()
        .map(|(p, _)| p)
        .filter(|p| p.parent() == current.parent())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    let names: BTreeSet<String> = rotated
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut remove = Vec::new();
    let mut kept = Vec::new();
    for p in rotated {
        let s = p.to_string_lossy();
        if s.ends_with(".tmp") || (!s.ends_with(".gz") && names.contains(&format!("{s}.gz"))) {
            remove.push(p.clone());
        } else {
            kept.push(p.clone());
        }
    }
    // BTreeSet order is oldest first (timestamps sort as text).
    let max_rotated = max_files.saturating_sub(2);
    let excess = kept.len().saturating_sub(max_rotated);
    remove.extend(kept.into_iter().take(excess));
    RotationPlan {
        rotate: true,
        remove,
    }
}

/// `<path>.<YYYYMMDD-HHMMSS>` (UTC).
pub fn rotated_name(path: &Path, now: Timestamp) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".");
    s.push(now.strftime("%Y%m%d-%H%M%S").to_string());
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parse_records() {
        let l = parse_line(b"2016-10-06T00:17:09.669794202Z stdout F log content 1\n").unwrap();
        assert_eq!(l.time, ts("2016-10-06T00:17:09.669794202Z"));
        assert_eq!(l.stream, Stream::Stdout);
        assert!(!l.partial);
        assert_eq!(l.content, b"log content 1\n");

        let l = parse_line(b"2016-10-06T00:17:09.669794203+02:00 stderr P part\n").unwrap();
        assert_eq!(l.stream, Stream::Stderr);
        assert!(l.partial);
        assert_eq!(l.content, b"part");
        assert_eq!(l.time, ts("2016-10-05T22:17:09.669794203Z"));

        let l = parse_line(b"2016-10-06T00:17:09Z stdout F:x \n").unwrap();
        assert_eq!(l.content, b"\n");
        assert!(!l.partial);

        let e = |b: &[u8]| parse_line(b).unwrap_err().to_string();
        assert_eq!(e(b"nospace"), "timestamp is not found");
        assert!(e(b"notatime stdout F x\n").starts_with("unexpected timestamp format"));
        assert_eq!(
            e(b"2016-10-06T00:17:09Z stdout"),
            "stream type is not found"
        );
        assert_eq!(
            e(b"2016-10-06T00:17:09Z stdin F x\n"),
            "unexpected stream type \"stdin\""
        );
        assert_eq!(e(b"2016-10-06T00:17:09Z stdout F"), "log tag is not found");
        assert!(record_is_partial(b"t stdout P x\n"));
        assert!(!record_is_partial(b"t stdout F x\n"));
        assert!(!record_is_partial(b"garbage"));
    }

    #[test]
    fn timestamp_format_is_fixed_nanos() {
        assert_eq!(
            format_timestamp(ts("2024-01-02T03:04:05.1Z")),
            "2024-01-02T03:04:05.100000000Z"
        );
        assert_eq!(
            format_timestamp(ts("2024-01-02T03:04:05+01:00")),
            "2024-01-02T02:04:05.000000000Z"
        );
    }

    const SAMPLE: &str = "\
2024-01-01T00:00:01Z stdout F one\n\
2024-01-01T00:00:02Z stderr P two-a\n\
2024-01-01T00:00:03Z stderr P two-b\n\
2024-01-01T00:00:04Z stderr F two-c\n\
2024-01-01T00:00:05Z stdout F three\n\
garbage line\n\
2024-01-01T00:00:06Z stdout F four\n";

    fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    async fn read_all(path: &Path, opts: LogOptions) -> String {
        let mut out = Vec::new();
        read_logs(path, &opts, &mut out, std::future::ready(()))
            .await
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn read_whole_file_joins_partials() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write_file(tmp.path(), "0.log", SAMPLE);
        assert_eq!(
            read_all(&p, LogOptions::default()).await,
            "one\ntwo-atwo-btwo-c\nthree\nfour\n"
        );
    }

    #[tokio::test]
    async fn tail_counts_whole_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write_file(tmp.path(), "0.log", SAMPLE);
        let tail = |n| LogOptions {
            tail_lines: Some(n),
            ..Default::default()
        };
        assert_eq!(read_all(&p, tail(0)).await, "");
        // The garbage record counts as a line of the file but is not output.
        assert_eq!(read_all(&p, tail(1)).await, "four\n");
        assert_eq!(read_all(&p, tail(2)).await, "four\n");
        assert_eq!(read_all(&p, tail(3)).await, "three\nfour\n");
        assert_eq!(
            read_all(&p, tail(4)).await,
            "two-atwo-btwo-c\nthree\nfour\n"
        );
        assert_eq!(
            read_all(&p, tail(100)).await,
            "one\ntwo-atwo-btwo-c\nthree\nfour\n"
        );
        assert_eq!(
            read_all(&p, tail(-1)).await,
            "one\ntwo-atwo-btwo-c\nthree\nfour\n"
        );
    }

    #[tokio::test]
    async fn since_timestamps_and_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write_file(tmp.path(), "0.log", SAMPLE);
        let opts = LogOptions {
            since: Some(ts("2024-01-01T00:00:03Z")),
            ..Default::default()
        };
        assert_eq!(read_all(&p, opts).await, "two-btwo-c\nthree\nfour\n");

        let opts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            read_all(&p, opts).await,
            "2024-01-01T00:00:01.000000000Z one\n\
             2024-01-01T00:00:02.000000000Z two-atwo-btwo-c\n\
             2024-01-01T00:00:05.000000000Z three\n\
             2024-01-01T00:00:06.000000000Z four\n"
        );

        let opts = LogOptions {
            limit_bytes: Some(10),
            ..Default::default()
        };
        assert_eq!(read_all(&p, opts).await, "one\ntwo-at");
        let opts = LogOptions {
            limit_bytes: Some(10),
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(read_all(&p, opts).await, "2024-01-01");
        let opts = LogOptions {
            limit_bytes: Some(4),
            ..Default::default()
        };
        assert_eq!(read_all(&p, opts).await, "one\n");
    }

    #[tokio::test]
    async fn tail_reads_rotated_predecessors_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        write_file(
            tmp.path(),
            "0.log.20240101-000000",
            "2024-01-01T00:00:01Z stdout F a\n2024-01-01T00:00:02Z stdout F b\n",
        );
        write_file(
            tmp.path(),
            "0.log.20240101-000100",
            "2024-01-01T00:00:03Z stdout F c\n2024-01-01T00:00:04Z stdout P d1\n",
        );
        write_file(tmp.path(), "0.log.20231231-000000.gz", "not read");
        let p = write_file(
            tmp.path(),
            "0.log",
            "2024-01-01T00:00:05Z stdout F d2\n2024-01-01T00:00:06Z stdout F e\n",
        );
        let link = tmp.path().join("link.log");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let tail = |n| LogOptions {
            tail_lines: Some(n),
            ..Default::default()
        };
        assert_eq!(read_all(&link, tail(2)).await, "d2\ne\n");
        assert_eq!(read_all(&p, tail(3)).await, "d1d2\ne\n");
        assert_eq!(read_all(&p, tail(4)).await, "c\nd1d2\ne\n");
        assert_eq!(read_all(&p, tail(50)).await, "a\nb\nc\nd1d2\ne\n");
        // Without a tail only the current file, like upstream.
        assert_eq!(read_all(&p, LogOptions::default()).await, "d2\ne\n");
    }

    #[tokio::test]
    async fn incomplete_last_record() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write_file(
            tmp.path(),
            "0.log",
            "2024-01-01T00:00:01Z stdout F a\n2024-01-01T00:00:02Z stdout F b-no-newline",
        );
        assert_eq!(read_all(&p, LogOptions::default()).await, "a\nb-no-newline");
    }

    /// An AsyncWrite that fails on the first write.
    struct Broken;
    impl AsyncWrite for Broken {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::task::Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn follow_ends_on_writer_error() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write_file(tmp.path(), "0.log", SAMPLE);
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            read_logs(&p, &opts, Broken, std::future::pending()),
        )
        .await
        .expect("must not hang");
        assert!(matches!(r, Err(LogError::Write(_))));
    }

    #[tokio::test]
    async fn missing_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let r = read_logs(
            &tmp.path().join("nope"),
            &LogOptions::default(),
            &mut out,
            std::future::ready(()),
        )
        .await;
        assert!(matches!(r, Err(LogError::Resolve { .. })));
    }

    async fn read_until(r: &mut tokio::io::DuplexStream, want: &str, got: &mut String) {
        let mut chunk = [0u8; 4096];
        while !got.contains(want) {
            let n = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::io::AsyncReadExt::read(r, &mut chunk),
            )
            .await
            .expect("timed out waiting for log output")
            .unwrap();
            assert!(n > 0, "stream ended early: {got:?}");
            got.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
        }
    }

    #[tokio::test]
    async fn follow_appends_rotation_and_stop() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write_file(tmp.path(), "0.log", "2024-01-01T00:00:01Z stdout F old\n");
        let (tx, mut rx) = tokio::sync::watch::channel(true);
        let (w, mut r) = tokio::io::duplex(1 << 16);
        let opts = LogOptions {
            follow: true,
            tail_lines: Some(0),
            ..Default::default()
        };
        let path = p.clone();
        let reader = tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|running| !*running).await;
            };
            read_logs_with_interval(&path, &opts, w, stop, Duration::from_millis(20)).await
        });

        let append = |text: &str| {
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        let mut got = String::new();
        tokio::time::sleep(Duration::from_millis(50)).await;
        append("2024-01-01T00:00:02Z stdout P hel");
        tokio::time::sleep(Duration::from_millis(60)).await;
        append("lo\n2024-01-01T00:00:03Z stdout F world\n");
        read_until(&mut r, "world\n", &mut got).await;
        assert_eq!(got, "helloworld\n");

        // Rotation: a last line lands in the old file, then a new file appears.
        let rotated = rotated_name(&p, ts("2024-01-01T00:00:04Z"));
        std::fs::rename(&p, &rotated).unwrap();
        {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&rotated)
                .unwrap();
            f.write_all(b"2024-01-01T00:00:04Z stdout F late\n")
                .unwrap();
        }
        write_file(tmp.path(), "0.log", "2024-01-01T00:00:05Z stdout F new\n");
        read_until(&mut r, "new\n", &mut got).await;
        assert_eq!(got, "helloworld\nlate\nnew\n");

        // The container exits right after a last write: it is drained, then the stream ends.
        append("2024-01-01T00:00:06Z stderr F bye\n");
        tx.send(false).unwrap();
        let res = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("reader must end after stop")
            .unwrap();
        res.unwrap();
        let mut rest = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut r, &mut rest)
            .await
            .unwrap();
        got.push_str(&rest);
        assert_eq!(got, "helloworld\nlate\nnew\nbye\n");
    }

    #[tokio::test]
    async fn follow_with_tail_shows_last_lines_then_new_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write_file(tmp.path(), "0.log", SAMPLE);
        let opts = LogOptions {
            follow: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut out = Vec::new();
        let path = p.clone();
        let task = async {
            read_logs_with_interval(
                &path,
                &opts,
                &mut out,
                async {
                    let _ = rx.await;
                },
                Duration::from_millis(10),
            )
            .await
        };
        let writer = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(b"2024-01-01T00:00:07Z stdout F five\n")
                .unwrap();
            let _ = tx.send(());
        };
        let (res, ()) = tokio::join!(task, writer);
        res.unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "four\nfive\n");
    }

    #[test]
    fn rotation_plans() {
        let d = Path::new("/logs/web");
        let cur = d.join("0.log");
        let f = |n: &str, s| (d.join(n), s);
        // Small file: nothing.
        let plan = rotation_plan(&cur, &[f("0.log", 100)], 1000, 5);
        assert_eq!(plan, RotationPlan::default());
        // Missing file: nothing.
        assert_eq!(rotation_plan(&cur, &[], 1000, 5), RotationPlan::default());
        // Big file, few rotated: rotate only.
        let plan = rotation_plan(
            &cur,
            &[
                f("0.log", 1000),
                f("0.log.20240101-000000", 1000),
                f("1.log", 5000),
            ],
            1000,
            5,
        );
        assert_eq!(
            plan,
            RotationPlan {
                rotate: true,
                remove: vec![]
            }
        );
        // Too many rotated files: keep max_files-2 newest; leftovers go.
        let plan = rotation_plan(
            &cur,
            &[
                f("0.log", 2000),
                f("0.log.20240101-000300", 1000),
                f("0.log.20240101-000100", 1000),
                f("0.log.20240101-000200.gz", 10),
                f("0.log.20240101-000200", 1000),
                f("0.log.20240101-000000.gz", 10),
                f("0.log.20240101-000400.tmp", 10),
                f("1.log.20230101-000000", 10),
            ],
            1000,
            4,
        );
        assert_eq!(
            plan,
            RotationPlan {
                rotate: true,
                remove: vec![
                    d.join("0.log.20240101-000200"),
                    d.join("0.log.20240101-000400.tmp"),
                    d.join("0.log.20240101-000000.gz"),
                    d.join("0.log.20240101-000100"),
                ]
            }
        );
        // max_files 2: all rotated files go.
        let plan = rotation_plan(
            &cur,
            &[f("0.log", 2000), f("0.log.20240101-000000", 1)],
            1000,
            2,
        );
        assert_eq!(plan.remove, vec![d.join("0.log.20240101-000000")]);
    }

    #[test]
    fn rotated_names() {
        assert_eq!(
            rotated_name(Path::new("/l/0.log"), ts("2024-03-04T05:06:07.9Z")),
            PathBuf::from("/l/0.log.20240304-050607")
        );
        assert!(is_rotated_name("0.log.20240304-050607", "0.log"));
        assert!(!is_rotated_name("0.log.20240304-050607.gz", "0.log"));
        assert!(!is_rotated_name("10.log.20240304-050607", "0.log"));
    }
}
