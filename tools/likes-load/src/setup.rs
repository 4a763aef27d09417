//! The setup phase: virtual users (through the API, or registered in Redis with the edge's own
//! `session.lua` and given locally minted tokens), and the posts they will like.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::StreamExt;
use http::StatusCode;
use likes_core::scripts::{self, SessionCall};
use likes_core::{PostId, UserId, keys, session, time};
use serde::Serialize;

use crate::edge::{Edge, Outcome};
use crate::progress::{Phase, ProgressEvent, ProgressSink};

/// Tokens minted here live one day: longer than any run.
const MINTED_TTL_SECS: u64 = 24 * 3600;
/// Requests in flight while creating users or posts through the API.
const SETUP_CONCURRENCY: usize = 64;
/// `session.lua` calls per Redis pipeline when registering users directly.
const REGISTER_BATCH: usize = 2_000;

/// Seconds since the Unix epoch.
pub fn unix_now() -> (u64, u64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.as_millis() as u64)
}

/// The virtual users and how to authenticate as each.
pub struct Users {
    pub ids: Vec<UserId>,
    /// Tokens from `POST /api/session` (API mode).
    tokens: Vec<String>,
    /// The secret tokens are minted with (mint mode).
    secret: Option<Vec<u8>>,
}

impl Users {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// User `i`'s bearer token (minted on the fly in mint mode: ~2 µs, and no 1M-token table).
    pub fn token(&self, i: usize) -> Cow<'_, str> {
        match &self.secret {
            Some(secret) => Cow::Owned(session::issue(
                secret,
                self.ids[i],
                &name(i as u64),
                unix_now().0,
                MINTED_TTL_SECS,
            )),
            None => Cow::Borrowed(&self.tokens[i]),
        }
    }
}

fn name(i: u64) -> String {
    format!("load-{i}")
}

/// How the setup phase created what it created, for the report.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SetupInfo {
    /// `api` (POST /api/session) or `minted` (session.lua in Redis + local HS256 tokens).
    pub users_via: String,
    pub users_secs: f64,
    /// `api` (POST /api/posts) or `reserved` (ids from `{posts}:seq`: an edge without uploads).
    pub posts_via: String,
    pub posts_secs: f64,
}

/// Creates `count` users.
pub async fn users(
    edge: &Edge,
    redis: &service_kit::redis::Redis,
    count: u64,
    secret: Option<&str>,
    progress: &dyn ProgressSink,
) -> anyhow::Result<(Users, String, f64)> {
    let started = Instant::now();
    let report = |done: u64| {
        progress.event(ProgressEvent::Setup {
            phase: Phase::Users,
            done,
            total: count,
        });
    };
    let users = match secret {
        Some(secret) => {
            let mut conn = crate::reads::connect(redis).await?;
            let _: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(scripts::SESSION.source)
                .query_async(&mut conn)
                .await
                .context("loading session.lua")?;
            let mut ids = Vec::with_capacity(count as usize);
            let (_, now_ms) = unix_now();
            let ts = time::rfc3339_ms(now_ms);
            while (ids.len() as u64) < count {
                let n = (count - ids.len() as u64).min(REGISTER_BATCH as u64);
                let mut pipe = redis::pipe();
                for k in 0..n {
                    let name = name(ids.len() as u64 + k);
                    let call = SessionCall {
                        name: &name,
                        ts: &ts,
                    };
                    let keys = call.keys();
                    pipe.cmd("EVALSHA")
                        .arg(scripts::SESSION.sha1)
                        .arg(keys.len())
                        .arg(&keys)
                        .arg(&call.args());
                }
                let got: Vec<u64> = pipe
                    .query_async(&mut conn)
                    .await
                    .context("registering users with session.lua")?;
                for raw in got {
                    ids.push(UserId::new(raw).context("session.lua returned user id 0")?);
                }
                report(ids.len() as u64);
            }
            Users {
                ids,
                tokens: Vec::new(),
                secret: Some(secret.as_bytes().to_vec()),
            }
        }
        None => {
            let done = AtomicU64::new(0);
            let created: Vec<anyhow::Result<(UserId, String)>> = futures::stream::iter(0..count)
                .map(|i| {
                    let done = &done;
                    async move {
                        let s = edge.create_session(&name(i)).await?;
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_multiple_of(1_000) || n == count {
                            report(n);
                        }
                        Ok((s.user.id, s.token))
                    }
                })
                .buffered(SETUP_CONCURRENCY)
                .collect()
                .await;
            let mut ids = Vec::with_capacity(count as usize);
            let mut tokens = Vec::with_capacity(count as usize);
            for c in created {
                let (id, token) = c?;
                ids.push(id);
                tokens.push(token);
            }
            Users {
                ids,
                tokens,
                secret: None,
            }
        }
    };
    let via = if secret.is_some() { "minted" } else { "api" };
    Ok((users, via.into(), started.elapsed().as_secs_f64()))
}

/// Creates `count` posts through `POST /api/posts`, authored by the first users. An edge that
/// has no upload route yet (404/405 on the first upload) gets fresh ids reserved from
/// `{posts}:seq` instead, so no run ever likes a post it did not start from zero.
pub async fn posts(
    edge: &Edge,
    redis: &service_kit::redis::Redis,
    users: &Users,
    count: u32,
    progress: &dyn ProgressSink,
) -> anyhow::Result<(Vec<PostId>, String, f64)> {
    let started = Instant::now();
    let jpeg = Arc::new(crate::edge::jpeg(0)?);
    let (first, post) = edge
        .create_post(&users.token(0), &jpeg, "likes-load post 0")
        .await;
    if matches!(
        first,
        Outcome::Status(StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED)
    ) {
        let mut conn = crate::reads::connect(redis).await?;
        let last: u64 = redis::cmd("INCRBY")
            .arg(keys::POST_SEQ)
            .arg(count)
            .query_async(&mut conn)
            .await
            .context("reserving post ids")?;
        let ids = (last + 1 - u64::from(count)..=last)
            .map(|raw| PostId::new(raw).context("post id 0"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        return Ok((ids, "reserved".into(), started.elapsed().as_secs_f64()));
    }
    let first = post.with_context(|| format!("POST /api/posts answered {}", first.label()))?;
    let done = AtomicU64::new(1);
    let rest: Vec<anyhow::Result<PostId>> = futures::stream::iter(1..count)
        .map(|i| {
            let done = &done;
            async move {
                let author = i as usize % users.len().min(100);
                let jpeg = crate::edge::jpeg(u64::from(i))?;
                let (outcome, post) = edge
                    .create_post(&users.token(author), &jpeg, &format!("likes-load post {i}"))
                    .await;
                let post =
                    post.with_context(|| format!("POST /api/posts answered {}", outcome.label()))?;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress.event(ProgressEvent::Setup {
                    phase: Phase::Posts,
                    done: n,
                    total: u64::from(count),
                });
                Ok(post.id)
            }
        })
        .buffered(SETUP_CONCURRENCY / 4)
        .collect()
        .await;
    let mut ids = vec![first.id];
    for p in rest {
        ids.push(p?);
    }
    Ok((ids, "api".into(), started.elapsed().as_secs_f64()))
}
