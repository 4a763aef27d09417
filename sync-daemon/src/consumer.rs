//! One consumer per stream: read a batch from the consumer group, apply it in one PostgreSQL
//! transaction, and only then `XACK` it.
//!
//! Order matters for the checkpoint: a stream is applied strictly in id order by one consumer,
//! so "at or below the checkpoint" means "applied". On every (re)connect the consumer first
//! re-reads its own pending entries (delivered earlier but never acknowledged, e.g. because we
//! crashed after COMMIT, or a reply was lost with the connection) before asking for new ones.
//! Several consumers (daemons) may read one stream at once: the batch transaction locks the
//! checkpoint row and refuses a batch that does not continue right after it (an older entry is
//! still pending elsewhere — `apply::apply_batch`'s gap check), so nothing is applied twice or
//! skipped; entries left pending by a consumer that died are claimed after `claim_idle`.
//! Splitting streams between daemons (`--streams`) avoids the contention altogether.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use deadpool_postgres::Pool;
use likes_core::events::StreamEvent;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamReadReply};
use tokio::sync::watch;

use std::sync::atomic::Ordering;

use crate::apply::{self, BadEntry, Entry};
use crate::checkpoint::StreamPos;
use crate::config::{Config, FAULT_EXIT_CODE, Fault};

/// Shared by every stream's consumer.
pub struct Shared {
    pub config: Config,
    pub pool: Pool,
    pub redis: redis::Client,
    /// Batches committed by this process (drives the fault hook).
    pub commits: std::sync::atomic::AtomicU64,
    /// Reachability of Redis and PostgreSQL, for `/healthz`.
    pub health: Arc<crate::admin::Health>,
    /// Posts touched by committed batches since the last reconciliation.
    pub recent: std::sync::Mutex<std::collections::HashSet<likes_core::PostId>>,
}

/// Exponential backoff between retries.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(config: &Config) -> Self {
        Self {
            min: config.backoff_min,
            max: config.backoff_max,
            next: config.backoff_min,
        }
    }
    fn reset(&mut self) {
        self.next = self.min;
    }
    /// Sleeps for the next delay unless shutdown comes first; false on shutdown.
    async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            () = tokio::time::sleep(d) => !*shutdown.borrow(),
            _ = shutdown.changed() => false,
        }
    }
}

/// Where reads come from next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Our own pending entries after this id (`0` = from the start).
    Pending(StreamPos),
    /// New entries (`>`).
    Live,
}

/// Consumes `stream` until shutdown. Errors are retried forever with backoff; the batch in hand
/// is kept (and re-applied, idempotently) until it is committed and acknowledged.
pub async fn run_stream(shared: Arc<Shared>, stream: String, mut shutdown: watch::Receiver<bool>) {
    let cfg = &shared.config;
    let mut backoff = Backoff::new(cfg);
    let mut conn: Option<MultiplexedConnection> = None;
    let mut phase = Phase::Pending(StreamPos::default());
    let mut last_claim = Instant::now();
    while !*shutdown.borrow() {
        // 1. Connected, group present, in-doubt entries reclaimed.
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&shared, &stream).await {
                Ok(c) => {
                    phase = Phase::Pending(StreamPos::default());
                    conn.insert(c)
                }
                Err(e) => {
                    shared.health.redis.store(false, Ordering::Relaxed);
                    metrics::counter!("sync_errors_total", "kind" => "redis").increment(1);
                    tracing::warn!(%stream, error = format!("{e:#}"), "redis unavailable; retrying");
                    if !backoff.wait(&mut shutdown).await {
                        break;
                    }
                    continue;
                }
            },
        };
        // 2. A batch.
        let batch = match read_batch(c, cfg, &stream, &mut phase).await {
            Ok(b) => b,
            Err(e) => {
                shared.health.redis.store(false, Ordering::Relaxed);
                metrics::counter!("sync_errors_total", "kind" => "redis").increment(1);
                tracing::warn!(%stream, error = format!("{e:#}"), "reading the stream failed; reconnecting");
                conn = None;
                if !backoff.wait(&mut shutdown).await {
                    break;
                }
                continue;
            }
        };
        shared.health.redis.store(true, Ordering::Relaxed);
        backoff.reset();
        if batch.is_empty() {
            // Idle: adopt what a dead consumer left pending, so it is not stranded until
            // newer traffic reveals the gap.
            if last_claim.elapsed() >= cfg.claim_idle {
                last_claim = Instant::now();
                if let Some(c) = conn.as_mut() {
                    match claim(c, cfg, &stream).await {
                        Ok(()) => phase = Phase::Pending(StreamPos::default()),
                        Err(e) => {
                            tracing::warn!(%stream, error = format!("{e:#}"), "XAUTOCLAIM failed");
                            conn = None;
                        }
                    }
                }
            }
            continue;
        }
        // 3. Commit it, however long PostgreSQL takes to come back.
        let applied = loop {
            let Some(c) = conn.as_mut() else { break None };
            let reader = Some((cfg.group.as_str(), cfg.consumer.as_str()));
            match apply::apply_batch(&shared.pool, c, &stream, reader, &batch).await {
                Ok(a) => {
                    shared.health.postgres.store(true, Ordering::Relaxed);
                    break Some(a);
                }
                Err(e) if e.chain().any(|c| c.is::<redis::RedisError>()) => {
                    // The gap check lost Redis: reconnect, then re-read this batch from our
                    // pending list.
                    shared.health.redis.store(false, Ordering::Relaxed);
                    metrics::counter!("sync_errors_total", "kind" => "redis").increment(1);
                    tracing::warn!(%stream, error = format!("{e:#}"), "redis failed mid-batch; reconnecting");
                    conn = None;
                    if !backoff.wait(&mut shutdown).await {
                        break None;
                    }
                }
                Err(e) => {
                    shared.health.postgres.store(false, Ordering::Relaxed);
                    metrics::counter!("sync_errors_total", "kind" => "postgres").increment(1);
                    tracing::warn!(%stream, error = format!("{e:#}"), "applying a batch failed; retrying");
                    if !backoff.wait(&mut shutdown).await {
                        break None;
                    }
                }
            }
        };
        let Some(applied) = applied else {
            if *shutdown.borrow() {
                // The batch stays pending in Redis and is re-read on the next start.
                break;
            }
            continue;
        };
        if applied.gap {
            // An older entry is pending at another consumer. What we applied is acknowledged
            // below; the rest is re-read from our pending list after the holder commits, or
            // after we take the missing entry over once the holder looks dead.
            metrics::counter!("sync_gaps_total", "stream" => stream.clone()).increment(1);
            tracing::debug!(%stream, "an entry in this batch's range is pending elsewhere");
            phase = Phase::Pending(StreamPos::default());
            if applied.applied == 0 && applied.skipped == 0 {
                if !backoff.wait(&mut shutdown).await {
                    break;
                }
                if last_claim.elapsed() >= cfg.claim_idle {
                    last_claim = Instant::now();
                    if let Some(c) = conn.as_mut()
                        && let Err(e) = claim(c, cfg, &stream).await
                    {
                        tracing::warn!(%stream, error = format!("{e:#}"), "XAUTOCLAIM failed");
                        conn = None;
                    }
                }
                continue;
            }
        }
        backoff.reset();
        record(&stream, &batch, applied);
        if cfg.reconcile_every.is_some()
            && let Ok(mut recent) = shared.recent.lock()
        {
            recent.extend(batch.iter().filter_map(|e| match &e.event {
                Ok(StreamEvent::Like { post, .. } | StreamEvent::Unlike { post, .. }) => {
                    Some(*post)
                }
                _ => None,
            }));
        }
        fault_hook(&shared);
        // 4. Acknowledge. Failing here loses nothing: the entries are at or below the
        //    checkpoint, so a re-read skips them.
        let ids: Vec<String> = batch
            .iter()
            .filter(|e| e.pos <= applied.upto)
            .map(|e| e.pos.to_string())
            .collect();
        loop {
            let acked = match conn.as_mut() {
                Some(c) => ack(c, cfg, &stream, &ids).await,
                None => match connect(&shared, &stream).await {
                    Ok(c) => ack(conn.insert(c), cfg, &stream, &ids).await,
                    Err(e) => Err(e),
                },
            };
            match acked {
                Ok(()) => break,
                Err(e) => {
                    metrics::counter!("sync_errors_total", "kind" => "redis").increment(1);
                    tracing::warn!(%stream, error = format!("{e:#}"), "XACK failed; retrying");
                    conn = None;
                    if !backoff.wait(&mut shutdown).await {
                        return;
                    }
                }
            }
        }
        backoff.reset();
    }
    tracing::info!(%stream, "consumer stopped");
}

fn record(stream: &str, batch: &[Entry], a: apply::Applied) {
    let s = stream.to_owned();
    metrics::counter!("sync_events_applied_total", "stream" => s.clone())
        .increment(a.applied as u64);
    metrics::counter!("sync_events_skipped_total", "stream" => s.clone())
        .increment(a.skipped as u64);
    metrics::counter!("sync_events_parked_total", "stream" => s.clone()).increment(a.parked as u64);
    metrics::counter!("sync_batches_total", "stream" => s).increment(1);
    metrics::histogram!("sync_batch_size").record(batch.len() as f64);
    if let Some(last) = batch.iter().map(|e| e.pos).max() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let lag = now_ms.saturating_sub(last.ms) as f64 / 1000.0;
        metrics::gauge!("sync_lag_seconds", "stream" => stream.to_owned()).set(lag);
    }
    tracing::debug!(%stream, entries = batch.len(), ?a, "batch committed");
}

fn fault_hook(shared: &Shared) {
    let n = shared.commits.fetch_add(1, Ordering::SeqCst) + 1;
    if let Fault::ExitAfterCommitBeforeAck(after) = shared.config.fault
        && n >= after
    {
        tracing::error!(
            commits = n,
            "fault injection: exiting after COMMIT, before XACK"
        );
        std::process::exit(FAULT_EXIT_CODE);
    }
}

/// A dedicated connection per stream: a blocking `XREADGROUP` holds its connection.
async fn connect(shared: &Shared, stream: &str) -> anyhow::Result<MultiplexedConnection> {
    let cfg = &shared.config;
    let conn_cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(
            cfg.idle_block.max(cfg.batch_wait) + Duration::from_secs(5),
        ));
    let mut c = shared
        .redis
        .get_multiplexed_async_connection_with_config(&conn_cfg)
        .await
        .context("connecting to redis")?;
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(&cfg.group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut c)
        .await;
    if let Err(e) = created
        && e.code() != Some("BUSYGROUP")
    {
        return Err(e).context("creating the consumer group");
    }
    claim(&mut c, cfg, stream).await?;
    Ok(c)
}

/// Takes over entries another consumer of the group left pending for `claim_idle` (it died,
/// or ran under another name), so they are re-read in order before anything new.
async fn claim(c: &mut MultiplexedConnection, cfg: &Config, stream: &str) -> anyhow::Result<()> {
    let mut start = "0-0".to_owned();
    loop {
        let (next, _claimed, _deleted): (String, Vec<String>, Vec<String>) =
            redis::cmd("XAUTOCLAIM")
                .arg(stream)
                .arg(&cfg.group)
                .arg(&cfg.consumer)
                .arg(cfg.claim_idle.as_millis() as u64)
                .arg(&start)
                .arg("COUNT")
                .arg(1000)
                .arg("JUSTID")
                .query_async(c)
                .await
                .context("XAUTOCLAIM")?;
        if next == "0-0" {
            return Ok(());
        }
        start = next;
    }
}

/// Reads the next batch: pending entries while there are any, then new ones, up to
/// `batch_max` entries or `batch_wait` after the first.
async fn read_batch(
    c: &mut MultiplexedConnection,
    cfg: &Config,
    stream: &str,
    phase: &mut Phase,
) -> anyhow::Result<Vec<Entry>> {
    if let Phase::Pending(after) = *phase {
        let ids = xreadgroup(c, cfg, stream, &after.to_string(), cfg.batch_max, None).await?;
        match ids.last() {
            Some(last) => *phase = Phase::Pending(last.pos),
            None => *phase = Phase::Live,
        }
        if !ids.is_empty() {
            tracing::info!(%stream, entries = ids.len(), "re-reading pending entries");
        }
        return Ok(ids);
    }
    let mut batch = Vec::new();
    let mut deadline: Option<Instant> = None;
    while batch.len() < cfg.batch_max {
        let block = match deadline {
            None => cfg.idle_block,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                left
            }
        };
        let got = xreadgroup(
            c,
            cfg,
            stream,
            ">",
            cfg.batch_max - batch.len(),
            Some(block),
        )
        .await?;
        if got.is_empty() {
            break;
        }
        if deadline.is_none() {
            deadline = Some(Instant::now() + cfg.batch_wait);
        }
        batch.extend(got);
    }
    Ok(batch)
}

async fn xreadgroup(
    c: &mut MultiplexedConnection,
    cfg: &Config,
    stream: &str,
    id: &str,
    count: usize,
    block: Option<Duration>,
) -> anyhow::Result<Vec<Entry>> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(&cfg.group)
        .arg(&cfg.consumer)
        .arg("COUNT")
        .arg(count.max(1));
    if let Some(b) = block {
        // BLOCK 0 would wait forever.
        cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
    }
    cmd.arg("STREAMS").arg(stream).arg(id);
    let reply: Option<StreamReadReply> = cmd.query_async(c).await.context("XREADGROUP")?;
    let mut out = Vec::new();
    for key in reply.map(|r| r.keys).unwrap_or_default() {
        for entry in key.ids {
            out.push(decode(entry)?);
        }
    }
    Ok(out)
}

/// Decodes with the one decoder in `likes-core`; a bad entry is kept for parking.
fn decode(entry: StreamId) -> anyhow::Result<Entry> {
    let pos: StreamPos = entry.id.parse()?;
    let fields: Vec<(String, Vec<u8>)> = entry
        .map
        .into_iter()
        .map(|(k, v)| {
            let bytes = match v {
                redis::Value::BulkString(b) => b,
                redis::Value::SimpleString(s) => s.into_bytes(),
                redis::Value::Int(i) => i.to_string().into_bytes(),
                other => format!("{other:?}").into_bytes(),
            };
            (k, bytes)
        })
        .collect();
    let event =
        StreamEvent::decode(&fields).map_err(|e| BadEntry::new(&sorted(fields.clone()), &e));
    Ok(Entry { pos, event })
}

fn sorted(mut fields: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    fields.sort();
    fields
}

async fn ack(
    c: &mut MultiplexedConnection,
    cfg: &Config,
    stream: &str,
    ids: &[String],
) -> anyhow::Result<()> {
    for chunk in ids.chunks(1000) {
        let _: i64 = redis::cmd("XACK")
            .arg(stream)
            .arg(&cfg.group)
            .arg(chunk)
            .query_async(c)
            .await
            .context("XACK")?;
    }
    Ok(())
}
