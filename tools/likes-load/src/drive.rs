//! The load phase: an open-loop scheduler at a constant arrival rate (after a linear ramp).
//! Arrival `k` has an intended send time fixed in advance; latency counts from it, so a slow
//! server makes latency grow instead of making the generator send less (no coordinated
//! omission).
//!
//! The scheduler alone decides every user's next action and keeps each user's final liked
//! posts, which is what the verdict compares with. A user has at most one request in flight,
//! so the order the server applies a user's requests is the order they were decided in; a
//! request whose effect is unknown (no answer, or an error) is replayed at the end with the
//! user's final intent, which is idempotent.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use likes_core::PostId;
use likes_core::api::LikeResponse;
use tokio::sync::{Semaphore, watch};

use crate::config::Config;
use crate::edge::{Edge, Outcome};
use crate::ledger::{Ledger, LedgerPhase, Op};
use crate::observe::{LagProbe, LagSample, Memory};
use crate::pick::{PostPicker, Rng};
use crate::progress::{ProgressEvent, ProgressSink, Tick};
use crate::setup::Users;
use crate::sockets::{Delivery, Fleet};
use crate::stats::{Endpoint, Recorder, lock};

/// Requests waiting for a slot beyond this many per user make the generator drop arrivals
/// (counted as errors "dropped") rather than grow without bound.
const BACKLOG_PER_IN_FLIGHT: u64 = 64;

/// Everything the request tasks share.
struct Shared {
    edge: Edge,
    users: Arc<Users>,
    posts: Arc<Vec<PostId>>,
    recorder: Arc<Recorder>,
    delivery: Arc<Delivery>,
    busy: Vec<AtomicBool>,
    uncertain: Mutex<Vec<(u32, u32)>>,
    slots: Semaphore,
    outstanding: AtomicU64,
    ledger: Option<Arc<Ledger>>,
}

impl Shared {
    /// Records a request in the ledger (when there is one); returns its seq.
    fn log_sent(&self, user: u32, post: Option<u32>, op: Op, phase: LedgerPhase) -> u64 {
        self.ledger.as_ref().map_or(0, |l| {
            l.sent(
                self.users.ids[user as usize].get(),
                post.map(|p| self.posts[p as usize].get()),
                op,
                phase,
            )
        })
    }

    /// Records the answer to request `seq`.
    fn log_answer(&self, seq: u64, outcome: Outcome, likes: Option<u64>, post: Option<u64>) {
        if let Some(l) = &self.ledger {
            l.answer(seq, outcome, likes, post);
        }
    }
}

/// What the load phase leaves behind.
pub struct LoadResult {
    pub recorder: Arc<Recorder>,
    /// Unique likers per post (generator order) the generator left.
    pub expected: Vec<u64>,
    pub scheduled: u64,
    pub dropped: u64,
    /// Requests replayed at the end because their effect was unknown.
    pub replayed: u64,
    /// Replays that still failed (their posts will fail the verdict).
    pub replay_failures: u64,
    pub uploads: u64,
    pub load_secs: f64,
    pub lag: Vec<LagSample>,
    pub memory: Memory,
}

/// Handles the periodic observers need.
pub struct Observers {
    pub lag: Option<Arc<LagProbe>>,
    pub fleet: Option<Arc<Fleet>>,
    /// Where every request and answer is recorded, if anywhere.
    pub ledger: Option<Arc<Ledger>>,
}

/// Intended offset of arrival `k` from the start, for a linear ramp then a constant rate.
pub fn arrival_time(k: u64, rate: f64, ramp: Duration) -> Duration {
    let ramp_s = ramp.as_secs_f64();
    let in_ramp = rate * ramp_s / 2.0;
    let k = k as f64;
    let t = if k < in_ramp {
        (2.0 * k * ramp_s / rate).sqrt()
    } else {
        ramp_s + (k - in_ramp) / rate
    };
    Duration::from_secs_f64(t)
}

/// Runs the load phase.
#[allow(clippy::too_many_arguments)]
pub async fn load(
    cfg: &Config,
    edge: Edge,
    users: Arc<Users>,
    posts: Arc<Vec<PostId>>,
    delivery: Arc<Delivery>,
    observers: Observers,
    progress: Arc<dyn ProgressSink>,
    mut stop: watch::Receiver<bool>,
) -> LoadResult {
    let start = Instant::now();
    let recorder = Arc::new(Recorder::new(start));
    let shared = Arc::new(Shared {
        edge,
        users: users.clone(),
        posts: posts.clone(),
        recorder: recorder.clone(),
        delivery: delivery.clone(),
        busy: (0..users.len()).map(|_| AtomicBool::new(false)).collect(),
        uncertain: Mutex::default(),
        slots: Semaphore::new(cfg.max_in_flight),
        outstanding: AtomicU64::new(0),
        ledger: observers.ledger.clone(),
    });

    let done = Arc::new(AtomicBool::new(false));
    let observer = tokio::spawn(observe(
        cfg.clone(),
        start,
        shared.clone(),
        observers,
        progress.clone(),
        done.clone(),
    ));
    let uploader = (cfg.uploads_per_sec > 0.0).then(|| {
        tokio::spawn(uploads(
            cfg.uploads_per_sec,
            cfg.load_time(),
            start,
            shared.clone(),
            done.clone(),
        ))
    });

    let n_users = users.len();
    let picker = PostPicker::new(cfg.popularity, posts.len() as u32, cfg.viral_share);
    let mut rng = Rng::new(cfg.seed);
    let mut liked: Vec<Vec<u32>> = vec![Vec::new(); n_users];
    let mut expected = vec![0u64; posts.len()];
    let backlog_cap = cfg.max_in_flight as u64 * BACKLOG_PER_IN_FLIGHT;
    let (mut k, mut cursor, mut dropped) = (0u64, 0usize, 0u64);
    let max = cfg.max_requests.unwrap_or(u64::MAX);
    while k < max && !*stop.borrow() {
        let offset = arrival_time(k, cfg.rate, cfg.ramp);
        if offset >= cfg.load_time() {
            break;
        }
        let intended = start + offset;
        if intended > Instant::now() {
            tokio::select! {
                () = tokio::time::sleep_until(intended.into()) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        k += 1;
        if k.is_multiple_of(64) {
            // Behind schedule the loop never sleeps; let the request tasks run.
            tokio::task::yield_now().await;
        }
        recorder.scheduled(intended);
        // Pick the next idle user, round robin, so every user gets turns.
        let mut user = None;
        for step in 0..n_users.min(256) {
            let u = (cursor + step) % n_users;
            if !shared.busy[u].load(Ordering::Acquire) {
                user = Some(u);
                break;
            }
        }
        let Some(u) = user.filter(|_| shared.outstanding.load(Ordering::Relaxed) < backlog_cap)
        else {
            dropped += 1;
            recorder.finished(Endpoint::Like, intended, Outcome::Dropped);
            continue;
        };
        cursor = (u + 1) % n_users;
        let mine = &mut liked[u];
        let (post, like) = if !mine.is_empty() && rng.unit() < cfg.unlike_ratio {
            let i = rng.below(mine.len() as u64) as usize;
            let p = mine.swap_remove(i);
            expected[p as usize] -= 1;
            (p, false)
        } else {
            // A few tries for a post the user does not like yet; else an idempotent re-like.
            let mut p = picker.pick(&mut rng);
            for _ in 0..3 {
                if !mine.contains(&p) {
                    break;
                }
                p = picker.pick(&mut rng);
            }
            if !mine.contains(&p) {
                mine.push(p);
                expected[p as usize] += 1;
            }
            (p, true)
        };
        shared.busy[u].store(true, Ordering::Release);
        shared.outstanding.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(request(shared.clone(), u as u32, post, like, intended));
    }
    let load_secs = start.elapsed().as_secs_f64();
    // Let every answer arrive (each request times out on its own).
    let wait_until = Instant::now() + crate::edge::REQUEST_TIMEOUT + Duration::from_secs(5);
    while shared.outstanding.load(Ordering::Relaxed) > 0 && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.store(true, Ordering::Relaxed);
    let uploads = match uploader {
        Some(h) => h.await.unwrap_or(0),
        None => 0,
    };
    let (lag, memory) = observer.await.unwrap_or_default();

    // Replay, with each user's final intent, every request whose effect is unknown.
    progress.event(ProgressEvent::Phase {
        phase: crate::progress::Phase::Repair,
    });
    // Pairs are independent (a user's requests on different posts commute), so several are
    // replayed at once; each pair's own retries stay in order.
    let mut uncertain = std::mem::take(&mut *lock(&shared.uncertain));
    uncertain.sort_unstable();
    uncertain.dedup();
    let replayed = uncertain.len() as u64;
    let deadline = Instant::now() + cfg.replay_timeout;
    let settled: Vec<bool> = {
        use futures::StreamExt;
        let (shared, liked) = (&shared, &liked);
        futures::stream::iter(uncertain)
            .map(|(u, p)| replay(shared, u, p, liked[u as usize].contains(&p), deadline))
            .buffer_unordered(REPLAY_CONCURRENCY)
            .collect()
            .await
    };
    let replay_failures = settled.iter().filter(|ok| !**ok).count() as u64;
    LoadResult {
        recorder,
        expected,
        scheduled: k,
        dropped,
        replayed,
        replay_failures,
        uploads,
        load_secs,
        lag,
        memory,
    }
}

/// Pairs replayed at once at the end.
const REPLAY_CONCURRENCY: usize = 16;

/// Sends a pair's final intent until it is answered 2xx or `deadline` passes (a service may
/// still be coming back); whether it was.
async fn replay(shared: &Shared, user: u32, post: u32, like: bool, deadline: Instant) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        let seq = shared.log_sent(user, Some(post), op_of(like), LedgerPhase::Replay);
        let (outcome, body) = send_like(shared, user, post, like).await;
        let likes = serde_json::from_slice::<LikeResponse>(&body)
            .ok()
            .map(|r| r.likes);
        shared.log_answer(seq, outcome, likes, None);
        if outcome.is_success() {
            return true;
        }
        if Instant::now() + backoff > deadline {
            return false;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

fn op_of(like: bool) -> Op {
    if like { Op::Like } else { Op::Unlike }
}

async fn send_like(shared: &Shared, user: u32, post: u32, like: bool) -> (Outcome, bytes::Bytes) {
    let method = if like { Method::PUT } else { Method::DELETE };
    let path = format!("/api/posts/{}/like", shared.posts[post as usize]);
    let token = shared.users.token(user as usize);
    shared.edge.send(method, &path, Some(&token), None).await
}

/// One like/unlike: wait for a slot (the wait counts as latency), send, record.
async fn request(shared: Arc<Shared>, user: u32, post: u32, like: bool, intended: Instant) {
    let permit = shared.slots.acquire().await;
    let seq = shared.log_sent(user, Some(post), op_of(like), LedgerPhase::Load);
    let (outcome, body) = send_like(&shared, user, post, like).await;
    drop(permit);
    let endpoint = if like {
        Endpoint::Like
    } else {
        Endpoint::Unlike
    };
    shared.recorder.finished(endpoint, intended, outcome);
    let answer = serde_json::from_slice::<LikeResponse>(&body).ok();
    shared.log_answer(seq, outcome, answer.as_ref().map(|r| r.likes), None);
    match answer {
        Some(r) if outcome.is_success() => shared.delivery.sent(post as usize, r.likes, intended),
        _ => lock(&shared.uncertain).push((user, post)),
    }
    shared.busy[user as usize].store(false, Ordering::Release);
    shared.outstanding.fetch_sub(1, Ordering::Relaxed);
}

/// Uploads at a constant rate alongside the likes; returns how many succeeded.
async fn uploads(
    rate: f64,
    until: Duration,
    start: Instant,
    shared: Arc<Shared>,
    done: Arc<AtomicBool>,
) -> u64 {
    let ok = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut k = 0u64;
    loop {
        let offset = Duration::from_secs_f64(k as f64 / rate);
        if offset >= until || done.load(Ordering::Relaxed) {
            break;
        }
        let intended = start + offset;
        tokio::time::sleep_until(intended.into()).await;
        k += 1;
        let (shared, ok) = (shared.clone(), ok.clone());
        tasks.spawn(async move {
            let author = (k as usize * 7_919) % shared.users.len();
            let Ok(jpeg) = crate::edge::jpeg(1_000_000 + k) else {
                return;
            };
            let seq = shared.log_sent(author as u32, None, Op::Upload, LedgerPhase::Load);
            let (outcome, post) = shared
                .edge
                .create_post(
                    &shared.users.token(author),
                    &jpeg,
                    &format!("likes-load upload {k}"),
                )
                .await;
            shared.log_answer(seq, outcome, None, post.map(|p| p.id.get()));
            shared
                .recorder
                .finished(Endpoint::Upload, intended, outcome);
            if outcome.is_success() {
                ok.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    ok.load(Ordering::Relaxed)
}

/// Once a second: sync lag, memory, and a progress tick.
async fn observe(
    cfg: Config,
    start: Instant,
    shared: Arc<Shared>,
    observers: Observers,
    progress: Arc<dyn ProgressSink>,
    done: Arc<AtomicBool>,
) -> (Vec<LagSample>, Memory) {
    let mut lag = Vec::new();
    let mut memory = Memory::default();
    let mut next = tokio::time::Instant::now();
    while !done.load(Ordering::Relaxed) {
        next += Duration::from_secs(1);
        tokio::time::sleep_until(next).await;
        let now = Instant::now();
        let t_s = now.duration_since(start).as_secs_f64();
        let sample = match &observers.lag {
            Some(probe) => probe.sample().await,
            None => None,
        };
        if let Some(s) = sample {
            lag.push(LagSample { t_s, ..s });
        }
        memory.sample(&cfg.watch);
        shared
            .delivery
            .settle(now.checked_sub(crate::sockets::SETTLE));
        let (requests, errors) = shared.recorder.totals();
        let last = shared.recorder.last_second(now);
        let (achieved, p50, p99) = last.map_or((0.0, 0.0, 0.0), |(_, s)| {
            (s.ok as f64, s.p50_ms(), s.p99_ms())
        });
        progress.event(ProgressEvent::Tick(Tick {
            elapsed_s: t_s,
            total_s: cfg.load_time().as_secs_f64(),
            target_rate: cfg.rate_at(Duration::from_secs_f64((t_s - 1.0).max(0.0))),
            achieved_rate: achieved,
            p50_ms: p50,
            p99_ms: p99,
            requests,
            errors,
            sockets: observers
                .fleet
                .as_ref()
                .map_or(0, |f| f.subscribed.load(Ordering::Relaxed)),
            delivery_frames: shared.delivery.frames(),
            delivery_p99_ms: shared.delivery.p99_ms(),
            sync_lag_s: sample.map(|s| s.lag_s),
            sync_lag_entries: sample.map(|s| s.entries),
            in_flight: shared.outstanding.load(Ordering::Relaxed),
        }));
    }
    (lag, memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_ramp_linearly_then_keep_a_constant_rate() {
        let ramp = Duration::from_secs(10);
        // 1,000/s ramped over 10 s: 5,000 arrivals in the ramp, the 5,000th at 10 s.
        assert_eq!(arrival_time(0, 1_000.0, ramp), Duration::ZERO);
        let t = arrival_time(5_000, 1_000.0, ramp).as_secs_f64();
        assert!((t - 10.0).abs() < 1e-9, "{t}");
        let t = arrival_time(6_000, 1_000.0, ramp).as_secs_f64();
        assert!((t - 11.0).abs() < 1e-9, "{t}");
        // Half of the ramp's arrivals come in its last 29%.
        let t = arrival_time(2_500, 1_000.0, ramp).as_secs_f64();
        assert!((t - 50f64.sqrt()).abs() < 1e-9, "{t}");
        let flat = arrival_time(300, 100.0, Duration::ZERO).as_secs_f64();
        assert!((flat - 3.0).abs() < 1e-9);
    }
}
