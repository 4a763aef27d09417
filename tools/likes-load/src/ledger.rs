//! The append-only ledger (`--ledger PATH`): one JSON line when each like, unlike, upload or
//! end-of-run replay is sent, and one when its answer (or the lack of one) comes back. It is
//! what the chaos audit judges every acknowledged like against, so it is written by one thread
//! fed by a channel: a request only sends a small struct, never takes a lock or touches a file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::edge::Outcome;

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Like,
    Unlike,
    Upload,
}

/// When in the run a request was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerPhase {
    Load,
    /// The end-of-run replay of requests whose effect was unknown.
    Replay,
}

/// One line of the ledger. `seq` ties an answer to its request; `t_ms` is Unix time in ms, so
/// lines can be laid beside the chaos run's fault log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Entry {
    Sent {
        seq: u64,
        t_ms: u64,
        /// User id (`u_42` is 42).
        user: u64,
        /// Post id; absent for an upload (its answer names the post it created).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        post: Option<u64>,
        op: Op,
        phase: LedgerPhase,
    },
    Answer {
        seq: u64,
        t_ms: u64,
        /// HTTP status, absent when no answer came.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// Why there is no status (`no_answer`: refused, reset or timed out).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The `likes` count in a like/unlike answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        likes: Option<u64>,
        /// The post an upload created.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        post: Option<u64>,
    },
}

/// What the writer thread receives.
enum Msg {
    Line(Entry),
    /// Flush and stop; lines sent later are dropped.
    Close,
}

/// The sending side, shared by every request task.
pub struct Ledger {
    tx: mpsc::Sender<Msg>,
    seq: AtomicU64,
    path: PathBuf,
}

/// Unix time in ms.
fn now_ms() -> u64 {
    crate::setup::unix_now().1
}

impl Ledger {
    /// Creates (truncates) `path` and starts its writer thread.
    pub fn create(path: &Path) -> anyhow::Result<(Self, LedgerWriter)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = std::fs::File::create(path)
            .with_context(|| format!("creating the ledger {}", path.display()))?;
        let (tx, rx) = mpsc::channel::<Msg>();
        let thread = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || write_all(rx, file))
            .context("starting the ledger writer")?;
        Ok((
            Self {
                tx,
                seq: AtomicU64::new(0),
                path: path.to_path_buf(),
            },
            LedgerWriter { thread },
        ))
    }

    /// Where the ledger is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a request about to be sent; returns its `seq` for [`Self::answer`].
    pub fn sent(&self, user: u64, post: Option<u64>, op: Op, phase: LedgerPhase) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = self.tx.send(Msg::Line(Entry::Sent {
            seq,
            t_ms: now_ms(),
            user,
            post,
            op,
            phase,
        }));
        seq
    }

    /// Records what became of request `seq`.
    pub fn answer(&self, seq: u64, outcome: Outcome, likes: Option<u64>, post: Option<u64>) {
        let (status, error) = match outcome {
            Outcome::Status(s) => (Some(s.as_u16()), None),
            Outcome::NoAnswer => (None, Some("no_answer".to_owned())),
            Outcome::Dropped => (None, Some("dropped".to_owned())),
        };
        let _ = self.tx.send(Msg::Line(Entry::Answer {
            seq,
            t_ms: now_ms(),
            status,
            error,
            likes,
            post,
        }));
    }

    /// Tells the writer to flush and stop (see [`LedgerWriter::finish`]); requests still in
    /// flight after this are not recorded.
    pub fn close(&self) {
        let _ = self.tx.send(Msg::Close);
    }
}

/// The writer thread; [`LedgerWriter::finish`] waits until every line is on disk.
pub struct LedgerWriter {
    thread: std::thread::JoinHandle<std::io::Result<u64>>,
}

impl LedgerWriter {
    /// Waits for the writer to flush everything sent before [`Ledger::close`] (or before the
    /// last [`Ledger`] was dropped); returns the number of lines written.
    pub fn finish(self) -> anyhow::Result<u64> {
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the ledger writer panicked"))?
            .context("writing the ledger")
    }
}

/// Writes lines as they come, flushing at least twice a second so a watcher (the chaos
/// command) sees the run progress, and everything once every sender is gone.
fn write_all(rx: mpsc::Receiver<Msg>, file: std::fs::File) -> std::io::Result<u64> {
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut lines = 0u64;
    'run: loop {
        let first = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                out.flush()?;
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // Whatever else is queued goes out before the next flush.
        for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match msg {
                Msg::Line(entry) => {
                    serde_json::to_writer(&mut out, &entry)?;
                    out.write_all(b"\n")?;
                    lines += 1;
                }
                Msg::Close => break 'run,
            }
        }
        out.flush()?;
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    Ok(lines)
}

/// Reads a ledger back; a torn last line (a killed generator) is ignored.
pub fn read(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the ledger {}", path.display()))?;
    parse(&text)
}

/// Parses ledger text: one [`Entry`] per line; only the last line may be torn.
pub fn parse(text: &str) -> anyhow::Result<Vec<Entry>> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => anyhow::bail!("ledger line {}: {e}", i + 1),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_through_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/ledger.jsonl");
        let (ledger, writer) = Ledger::create(&path).expect("ledger");
        let a = ledger.sent(7, Some(3), Op::Like, LedgerPhase::Load);
        let b = ledger.sent(8, None, Op::Upload, LedgerPhase::Load);
        ledger.answer(
            b,
            Outcome::Status(http::StatusCode::CREATED),
            None,
            Some(11),
        );
        ledger.answer(a, Outcome::NoAnswer, None, None);
        ledger.close();
        ledger.sent(9, Some(1), Op::Unlike, LedgerPhase::Replay);
        assert_eq!(writer.finish().expect("flushed"), 4);
        let entries = read(&path).expect("parses");
        assert_eq!(entries.len(), 4);
        assert!(matches!(
            entries[0],
            Entry::Sent {
                seq: 1,
                user: 7,
                post: Some(3),
                op: Op::Like,
                ..
            }
        ));
        assert!(matches!(
            &entries[3],
            Entry::Answer { seq: 1, status: None, error: Some(e), .. } if e == "no_answer"
        ));
        let text = std::fs::read_to_string(&path).expect("text");
        assert!(
            text.lines()
                .next()
                .is_some_and(|l| l.contains(r#""ev":"sent""#)),
            "{text}"
        );
        // A torn last line is ignored; a torn line in the middle is an error.
        assert_eq!(
            parse(&format!("{text}{{\"ev\":\"se"))
                .expect("torn tail")
                .len(),
            4
        );
        assert!(parse(&format!("{{\"ev\n{text}")).is_err());
    }
}
