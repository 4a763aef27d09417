//! The consistency verdict: for every post a run touched, the likers the generator knows it
//! left (its own record of each user's final state), the Redis count, and PostgreSQL's count
//! and like rows once the sync daemon has drained. PASS only when all of them agree exactly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use likes_core::PostId;
use likes_core::keys::{PostKeys, post_field};
use serde::{Deserialize, Serialize};

use crate::progress::{ProgressEvent, ProgressSink};

/// One post's counts from every source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostCheck {
    pub post: PostId,
    /// Unique likers the generator left on the post.
    pub expected: u64,
    /// The post hash's `likes` field.
    pub redis: Option<u64>,
    /// `post_like_counts.likes` (absent row = 0).
    pub pg_count: Option<u64>,
    /// `count(*)` of the post's rows in `likes`.
    pub pg_rows: Option<u64>,
}

impl PostCheck {
    fn agrees(&self) -> bool {
        // PostgreSQL is `None` only when it was not compared at all, which fails the verdict
        // by itself (see `Verdict::judge`); the post is judged on the sources that were read.
        let e = self.expected;
        self.redis == Some(e)
            && self.pg_count.is_none_or(|v| v == e)
            && self.pg_rows.is_none_or(|v| v == e)
    }
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Generator, Redis and PostgreSQL agree on every post.
    Pass,
    /// Some post disagrees.
    Fail,
}

/// The verdict of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub status: Status,
    pub posts: u64,
    pub expected_total: u64,
    pub redis_total: u64,
    pub pg_total: u64,
    /// Posts that disagree (the first 20).
    pub mismatches: Vec<PostCheck>,
    pub mismatch_count: u64,
    /// Why PostgreSQL was not compared, when it was not (that alone fails the verdict).
    pub note: Option<String>,
    /// Seconds from the end of the load until PostgreSQL matched (or the timeout).
    pub drain_secs: f64,
}

impl Verdict {
    /// Judges a set of checks.
    pub fn judge(checks: &[PostCheck], note: Option<String>, drain_secs: f64) -> Self {
        let bad: Vec<&PostCheck> = checks.iter().filter(|c| !c.agrees()).collect();
        let sum = |f: fn(&PostCheck) -> Option<u64>| checks.iter().filter_map(f).sum();
        Self {
            status: if bad.is_empty() && note.is_none() {
                Status::Pass
            } else {
                Status::Fail
            },
            posts: checks.len() as u64,
            expected_total: checks.iter().map(|c| c.expected).sum(),
            redis_total: sum(|c| c.redis),
            pg_total: sum(|c| c.pg_count),
            mismatch_count: bad.len() as u64,
            mismatches: bad.into_iter().take(20).cloned().collect(),
            note,
            drain_secs,
        }
    }
}

/// Reads every post's `likes` from Redis (per slot on a cluster).
pub async fn redis_counts(
    redis: &service_kit::redis::Redis,
    posts: &[PostId],
) -> anyhow::Result<Vec<Option<u64>>> {
    let conn = crate::reads::connect(redis).await?;
    let mut out = Vec::with_capacity(posts.len());
    for chunk in posts.chunks(1_000) {
        let mut reads = crate::reads::Reads::for_conn(&conn);
        for p in chunk {
            let key = PostKeys::new(*p).post;
            let mut cmd = redis::cmd("HGET");
            cmd.arg(&key).arg(post_field::LIKES);
            reads.add(&key, cmd);
        }
        let got = reads.query(&conn).await.context("reading counts")?;
        for v in got {
            out.push(redis::from_redis_value(v).context("a post's likes field")?);
        }
    }
    Ok(out)
}

/// Reads every post's count and like rows from PostgreSQL.
async fn pg_counts(
    client: &tokio_postgres::Client,
    posts: &[PostId],
) -> anyhow::Result<(HashMap<u64, u64>, HashMap<u64, u64>)> {
    let ids: Vec<i64> = posts.iter().map(|p| p.get() as i64).collect();
    let counts = client
        .query(
            "SELECT post_id, likes FROM post_like_counts WHERE post_id = ANY($1)",
            &[&ids],
        )
        .await
        .context("reading post_like_counts")?;
    let rows = client
        .query(
            "SELECT post_id, count(*) FROM likes WHERE post_id = ANY($1) GROUP BY post_id",
            &[&ids],
        )
        .await
        .context("counting likes rows")?;
    let map = |rows: Vec<tokio_postgres::Row>| -> HashMap<u64, u64> {
        rows.iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1).max(0) as u64))
            .collect()
    };
    Ok((map(counts), map(rows)))
}

/// Compares `expected` (post → unique likers) with Redis and, after waiting up to `timeout`
/// for the sync daemon to drain, with PostgreSQL.
pub async fn check(
    redis: &service_kit::redis::Redis,
    database_url: Option<&str>,
    expected: &[(PostId, u64)],
    timeout: Duration,
    progress: &dyn ProgressSink,
) -> anyhow::Result<Verdict> {
    let posts: Vec<PostId> = expected.iter().map(|(p, _)| *p).collect();
    let redis_now = redis_counts(redis, &posts).await?;
    let mut checks: Vec<PostCheck> = expected
        .iter()
        .zip(&redis_now)
        .map(|((post, e), r)| PostCheck {
            post: *post,
            expected: *e,
            // A post nobody ever liked may have no `likes` field yet.
            redis: Some(r.unwrap_or(0)),
            pg_count: None,
            pg_rows: None,
        })
        .collect();
    let Some(url) = database_url else {
        return Ok(Verdict::judge(
            &checks,
            Some("no --database-url: PostgreSQL not compared".into()),
            0.0,
        ));
    };
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(connection);
    let started = Instant::now();
    loop {
        let (counts, rows) = pg_counts(&client, &posts).await?;
        for c in &mut checks {
            c.pg_count = Some(counts.get(&c.post.get()).copied().unwrap_or(0));
            c.pg_rows = Some(rows.get(&c.post.get()).copied().unwrap_or(0));
        }
        let matching = checks
            .iter()
            .filter(|c| c.pg_count == c.redis && c.pg_rows == c.redis)
            .count() as u64;
        progress.event(ProgressEvent::Drain {
            matching,
            total: checks.len() as u64,
        });
        // PostgreSQL converges on Redis; once it has (or time is up), judge against expected.
        if matching == checks.len() as u64 || started.elapsed() >= timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Re-read Redis last: a count that moved during the drain must show up too.
    let redis_end = redis_counts(redis, &posts).await?;
    for (c, r) in checks.iter_mut().zip(redis_end) {
        c.redis = Some(r.unwrap_or(0));
    }
    Ok(Verdict::judge(
        &checks,
        None,
        started.elapsed().as_secs_f64(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expected: u64, redis: u64, pg: u64, rows: u64) -> PostCheck {
        PostCheck {
            post: PostId::new(expected + 1).expect("nonzero"),
            expected,
            redis: Some(redis),
            pg_count: Some(pg),
            pg_rows: Some(rows),
        }
    }

    #[test]
    fn passes_only_when_every_source_agrees_on_every_post() {
        let good = [check(3, 3, 3, 3), check(0, 0, 0, 0)];
        let v = Verdict::judge(&good, None, 1.0);
        assert_eq!(
            (v.status, v.expected_total, v.mismatch_count),
            (Status::Pass, 3, 0)
        );
        for bad in [
            check(3, 4, 3, 3),
            check(3, 3, 2, 3),
            check(3, 3, 3, 4),
            check(3, 2, 2, 2),
        ] {
            let v = Verdict::judge(&[good[0].clone(), bad.clone()], None, 1.0);
            assert_eq!((v.status, v.mismatch_count), (Status::Fail, 1), "{bad:?}");
            assert_eq!(v.mismatches, vec![bad]);
        }
        let unchecked = Verdict::judge(&good, Some("no PostgreSQL".into()), 0.0);
        assert_eq!(unchecked.status, Status::Fail);
    }
}
