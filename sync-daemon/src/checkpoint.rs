//! Stream positions and the per-stream checkpoint row: the last entry applied, written in the
//! batch's own transaction so "applied" and "recorded as applied" can never disagree.

use std::fmt;
use std::str::FromStr;

use anyhow::Context;
use deadpool_postgres::Transaction;

/// A Redis stream entry id (`<ms>-<seq>`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamPos {
    pub ms: u64,
    pub seq: u64,
}

/// A stream id that is not `<u64>-<u64>`.
#[derive(Debug, thiserror::Error)]
#[error("malformed stream id `{0}`")]
pub struct BadStreamId(String);

impl FromStr for StreamPos {
    type Err = BadStreamId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadStreamId(s.chars().take(64).collect());
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for StreamPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

fn to_sql(v: u64) -> anyhow::Result<i64> {
    i64::try_from(v).context("stream id component exceeds BIGINT")
}

fn from_sql(v: i64) -> anyhow::Result<u64> {
    u64::try_from(v).context("negative stream id component in checkpoint")
}

/// Reads the stream's checkpoint and locks its row until the transaction ends, so two
/// transactions for one stream (two daemons, or a retry racing a slow commit) serialize and the
/// second sees what the first applied. `None` when the stream was never applied.
pub async fn lock(tx: &Transaction<'_>, stream: &str) -> anyhow::Result<Option<StreamPos>> {
    let ensure = tx
        .prepare_cached(
            "INSERT INTO stream_checkpoints (stream, last_ms, last_seq) VALUES ($1, -1, -1) \
             ON CONFLICT (stream) DO NOTHING",
        )
        .await?;
    tx.execute(&ensure, &[&stream])
        .await
        .context("creating checkpoint row")?;
    let select = tx
        .prepare_cached(
            "SELECT last_ms, last_seq FROM stream_checkpoints WHERE stream = $1 FOR UPDATE",
        )
        .await?;
    let row = tx
        .query_one(&select, &[&stream])
        .await
        .context("locking checkpoint row")?;
    let (ms, seq): (i64, i64) = (row.get(0), row.get(1));
    if ms < 0 {
        return Ok(None);
    }
    Ok(Some(StreamPos {
        ms: from_sql(ms)?,
        seq: from_sql(seq)?,
    }))
}

/// Records `pos` as the last applied entry of `stream` (the row is locked by [`lock`]).
pub async fn write(tx: &Transaction<'_>, stream: &str, pos: StreamPos) -> anyhow::Result<()> {
    let update = tx
        .prepare_cached(
            "UPDATE stream_checkpoints SET last_ms = $2, last_seq = $3, updated_at = now() \
             WHERE stream = $1",
        )
        .await?;
    tx.execute(&update, &[&stream, &to_sql(pos.ms)?, &to_sql(pos.seq)?])
        .await
        .context("writing checkpoint")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_like_redis() {
        let a: StreamPos = "1700000000000-9".parse().expect("valid");
        let b: StreamPos = "1700000000000-10".parse().expect("valid");
        let c: StreamPos = "1700000000001-0".parse().expect("valid");
        assert!(a < b && b < c);
        assert_eq!(b.to_string(), "1700000000000-10");
        assert!("12".parse::<StreamPos>().is_err());
        assert!("a-1".parse::<StreamPos>().is_err());
    }
}
