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
use redis::streams::{StreamId, StreamReadReply};
use service_kit::redis::Conn;
use tokio::sync::watch;

use std::sync::atomic::Ordering;

use crate::apply::{self, BadEntry, Entry};
use crate::checkpoint::StreamPos;
use crate::config::{Config, FAULT_EXIT_CODE, Fault};

/// Shared by every stream's consumer.
pub struct Shared {
    pub config: Config,
    pub pool: Pool,
    pub redis: service_kit::redis::Redis,
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

/// Why a step of the consumer loop failed. Every failure goes through one handler,
/// [`Consumer::fail`]; the kind decides what it marks unhealthy, counts, logs and waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Connecting, creating the group or the first claim.
    Connect,
    /// Reading a batch.
    Read,
    /// Applying a batch failed on Redis (the contiguity check).
    ApplyRedis,
    /// Applying a batch failed on PostgreSQL.
    ApplyPostgres,
    /// Acknowledging a committed batch.
    Ack,
    /// Adopting entries other consumers left pending; the next step reconnects, and backs off
    /// if that fails, so this one neither counts nor waits.
    Claim,
}

impl Failure {
    /// An apply error is Redis's when a Redis error is anywhere in its chain.
    fn of_apply(e: &anyhow::Error) -> Self {
        if e.chain().any(|c| c.is::<redis::RedisError>()) {
            Self::ApplyRedis
        } else {
            Self::ApplyPostgres
        }
    }

    /// The `/healthz` flag this failure clears, if it says anything about a dependency's
    /// reachability.
    fn unhealthy(self, health: &crate::admin::Health) -> Option<&std::sync::atomic::AtomicBool> {
        match self {
            Self::Connect | Self::Read | Self::ApplyRedis => Some(&health.redis),
            Self::ApplyPostgres => Some(&health.postgres),
            Self::Ack | Self::Claim => None,
        }
    }

    /// The `kind` label of `sync_errors_total`, if the failure is counted.
    fn counted_as(self) -> Option<&'static str> {
        match self {
            Self::Connect | Self::Read | Self::ApplyRedis | Self::Ack => Some("redis"),
            Self::ApplyPostgres => Some("postgres"),
            Self::Claim => None,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Connect => "redis unavailable; retrying",
            Self::Read => "reading the stream failed; reconnecting",
            Self::ApplyRedis => "redis failed mid-batch; reconnecting",
            Self::ApplyPostgres => "applying a batch failed; retrying",
            Self::Ack => "XACK failed; retrying",
            Self::Claim => "XAUTOCLAIM failed",
        }
    }

    /// Whether the Redis connection is dropped (and made again by the next step). PostgreSQL's
    /// failures leave it: the batch is retried on it.
    fn drops_connection(self) -> bool {
        self != Self::ApplyPostgres
    }

    fn backs_off(self) -> bool {
        self != Self::Claim
    }
}

/// One stream's consumer: the state its failure path acts on.
struct Consumer<'a> {
    shared: &'a Shared,
    stream: &'a str,
    conn: Option<Conn>,
    backoff: Backoff,
    shutdown: watch::Receiver<bool>,
}

/// Consumes `stream` until shutdown. Errors are retried forever with backoff; the batch in hand
/// is kept (and re-applied, idempotently) until it is committed and acknowledged.
pub async fn run_stream(shared: Arc<Shared>, stream: String, shutdown: watch::Receiver<bool>) {
    let mut consumer = Consumer {
        shared: &shared,
        stream: &stream,
        conn: None,
        backoff: Backoff::new(&shared.config),
        shutdown,
    };
    consumer.run().await;
    tracing::info!(%stream, "consumer stopped");
}

impl Consumer<'_> {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The one failure path: marks the dependency unhealthy, counts and logs the error, drops
    /// the connection and backs off, each as `failure` calls for. False when shutdown came
    /// during the backoff.
    async fn fail(&mut self, failure: Failure, error: &anyhow::Error) -> bool {
        if let Some(flag) = failure.unhealthy(&self.shared.health) {
            flag.store(false, Ordering::Relaxed);
        }
        if let Some(kind) = failure.counted_as() {
            metrics::counter!("sync_errors_total", "kind" => kind).increment(1);
        }
        tracing::warn!(stream = %self.stream, error = format!("{error:#}"), "{}", failure.message());
        if failure.drops_connection() {
            self.conn = None;
        }
        !failure.backs_off() || self.backoff.wait(&mut self.shutdown).await
    }

    /// Adopts what other consumers left pending, at most once per `claim_idle`; true when it
    /// did, so our pending entries (now including theirs) are re-read first.
    async fn claim_if_due(&mut self, last_claim: &mut Instant) -> bool {
        if last_claim.elapsed() < self.shared.config.claim_idle {
            return false;
        }
        *last_claim = Instant::now();
        let Some(c) = self.conn.as_mut() else {
            return false;
        };
        match claim(c, &self.shared.config, self.stream).await {
            Ok(()) => true,
            Err(e) => {
                self.fail(Failure::Claim, &e).await;
                false
            }
        }
    }

    async fn run(&mut self) {
        let (shared, stream) = (self.shared, self.stream);
        let cfg = &shared.config;
        let mut phase = Phase::Pending(StreamPos::default());
        let mut last_claim = Instant::now();
        while !self.stopping() {
            // 1. Connected, group present, in-doubt entries reclaimed.
            if self.conn.is_none() {
                match connect(shared, stream).await {
                    Ok(c) => {
                        phase = Phase::Pending(StreamPos::default());
                        self.conn = Some(c);
                    }
                    Err(e) => {
                        if !self.fail(Failure::Connect, &e).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            let Some(c) = self.conn.as_mut() else {
                continue;
            };
            // 2. A batch.
            let batch = match read_batch(c, cfg, stream, &mut phase).await {
                Ok(b) => b,
                Err(e) => {
                    if !self.fail(Failure::Read, &e).await {
                        break;
                    }
                    continue;
                }
            };
            shared.health.redis.store(true, Ordering::Relaxed);
            self.backoff.reset();
            if batch.is_empty() {
                // Idle: adopt what a dead consumer left pending, so it is not stranded until
                // newer traffic reveals the gap.
                if self.claim_if_due(&mut last_claim).await {
                    phase = Phase::Pending(StreamPos::default());
                }
                continue;
            }
            // 3. Commit it, however long PostgreSQL takes to come back.
            let applied = loop {
                let Some(c) = self.conn.as_mut() else {
                    break None;
                };
                let reader = Some((cfg.group.as_str(), cfg.consumer.as_str()));
                match apply::apply_batch(&shared.pool, c, stream, reader, &batch).await {
                    Ok(a) => {
                        shared.health.postgres.store(true, Ordering::Relaxed);
                        break Some(a);
                    }
                    // On Redis's failure the batch is re-read from our pending list after
                    // reconnecting; on PostgreSQL's it is retried as it is.
                    Err(e) => {
                        if !self.fail(Failure::of_apply(&e), &e).await {
                            break None;
                        }
                    }
                }
            };
            let Some(applied) = applied else {
                if self.stopping() {
                    // The batch stays pending in Redis and is re-read on the next start.
                    break;
                }
                continue;
            };
            if applied.gap {
                // An older entry is pending at another consumer. What we applied is acknowledged
                // below; the rest is re-read from our pending list after the holder commits, or
                // after we take the missing entry over once the holder looks dead.
                metrics::counter!("sync_gaps_total", "stream" => stream.to_owned()).increment(1);
                tracing::debug!(%stream, "an entry in this batch's range is pending elsewhere");
                phase = Phase::Pending(StreamPos::default());
                if applied.applied == 0 && applied.skipped == 0 {
                    if !self.backoff.wait(&mut self.shutdown).await {
                        break;
                    }
                    self.claim_if_due(&mut last_claim).await;
                    continue;
                }
            }
            self.backoff.reset();
            record(stream, &batch, applied);
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
            fault_hook(shared);
            // 4. Acknowledge. Failing here loses nothing: the entries are at or below the
            //    checkpoint, so a re-read skips them.
            let ids: Vec<String> = batch
                .iter()
                .filter(|e| e.pos <= applied.upto)
                .map(|e| e.pos.to_string())
                .collect();
            loop {
                let acked = match self.conn.as_mut() {
                    Some(c) => ack(c, cfg, stream, &ids).await,
                    None => match connect(shared, stream).await {
                        Ok(c) => ack(self.conn.insert(c), cfg, stream, &ids).await,
                        Err(e) => Err(e),
                    },
                };
                match acked {
                    Ok(()) => break,
                    Err(e) => {
                        if !self.fail(Failure::Ack, &e).await {
                            return;
                        }
                    }
                }
            }
            self.backoff.reset();
        }
    }
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

/// A dedicated connection per stream (on a cluster, to every node): a blocking `XREADGROUP`
/// holds its connection.
async fn connect(shared: &Shared, stream: &str) -> anyhow::Result<Conn> {
    let cfg = &shared.config;
    let options = service_kit::redis::Options::default()
        .with_response_timeout(cfg.idle_block.max(cfg.batch_wait) + Duration::from_secs(5));
    let mut c = shared
        .redis
        .connect(&options)
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
async fn claim(c: &mut Conn, cfg: &Config, stream: &str) -> anyhow::Result<()> {
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
    c: &mut Conn,
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
    c: &mut Conn,
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

async fn ack(c: &mut Conn, cfg: &Config, stream: &str, ids: &[String]) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apply_error_is_redis_s_when_redis_is_anywhere_in_its_chain() {
        let lost = redis::RedisError::from((redis::ErrorKind::Io, "connection lost"));
        let redis = anyhow::Error::from(lost).context("XRANGE contiguity check");
        assert_eq!(Failure::of_apply(&redis), Failure::ApplyRedis);
        let postgres = anyhow::anyhow!("connection refused").context("BEGIN");
        assert_eq!(Failure::of_apply(&postgres), Failure::ApplyPostgres);
    }

    #[test]
    fn each_failure_is_handled_as_its_step_always_was() {
        let health = crate::admin::Health::default();
        let redis = std::ptr::from_ref(&health.redis);
        let postgres = std::ptr::from_ref(&health.postgres);
        let flag = |f: Failure| f.unhealthy(&health).map(std::ptr::from_ref);
        // (failure, flag cleared, counted as, drops the connection, backs off)
        let table = [
            (Failure::Connect, Some(redis), Some("redis"), true, true),
            (Failure::Read, Some(redis), Some("redis"), true, true),
            (Failure::ApplyRedis, Some(redis), Some("redis"), true, true),
            (
                Failure::ApplyPostgres,
                Some(postgres),
                Some("postgres"),
                false,
                true,
            ),
            (Failure::Ack, None, Some("redis"), true, true),
            (Failure::Claim, None, None, true, false),
        ];
        for (f, cleared, kind, drops, waits) in table {
            assert_eq!(flag(f), cleared, "{f:?}");
            assert_eq!(f.counted_as(), kind, "{f:?}");
            assert_eq!(f.drops_connection(), drops, "{f:?}");
            assert_eq!(f.backs_off(), waits, "{f:?}");
        }
    }
}
