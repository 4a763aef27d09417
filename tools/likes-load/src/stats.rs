//! Measurements of the load phase: latency per endpoint (from the *intended* send time, so a
//! stalled server cannot hide its queueing: no coordinated omission), errors by status, and a
//! per-second timeline for the charts and the live progress.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::edge::Outcome;

/// Histogram of microseconds from 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| unreachable!("constant, valid histogram bounds"))
}

/// Locks a mutex; a panicked holder leaves counts that are still worth reporting.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The endpoints the generator measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Endpoint {
    #[serde(rename = "PUT /api/posts/{id}/like")]
    Like,
    #[serde(rename = "DELETE /api/posts/{id}/like")]
    Unlike,
    #[serde(rename = "POST /api/posts")]
    Upload,
}

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Self::Like => "PUT /api/posts/{id}/like",
            Self::Unlike => "DELETE /api/posts/{id}/like",
            Self::Upload => "POST /api/posts",
        }
    }
}

/// One second of the load phase, by intended send time.
#[derive(Debug, Clone)]
pub struct Second {
    /// Like/unlike arrivals scheduled in this second.
    pub scheduled: u64,
    /// ...of which answered with a 2xx.
    pub ok: u64,
    pub errors: u64,
    /// Like/unlike latency of this second's arrivals; `None` once the second is
    /// [`KEEP_SECONDS`] old and only its quantiles are kept (a histogram is ~160 KB, which
    /// over a 30-minute soak would be the generator's own memory growth).
    latency: Option<Histogram<u64>>,
    /// p50 and p99 in µs, kept when the histogram is dropped.
    quantiles: (u64, u64),
}

/// Seconds whose latency histogram is kept whole: longer than any request may take.
pub const KEEP_SECONDS: usize = 30;

impl Default for Second {
    fn default() -> Self {
        Self {
            scheduled: 0,
            ok: 0,
            errors: 0,
            latency: Some(histogram()),
            quantiles: (0, 0),
        }
    }
}

impl Second {
    /// Median latency in ms.
    pub fn p50_ms(&self) -> f64 {
        self.quantile_us(0.5, self.quantiles.0) as f64 / 1000.0
    }

    /// 99th percentile latency in ms.
    pub fn p99_ms(&self) -> f64 {
        self.quantile_us(0.99, self.quantiles.1) as f64 / 1000.0
    }

    fn quantile_us(&self, q: f64, kept: u64) -> u64 {
        self.latency
            .as_ref()
            .map_or(kept, |h| h.value_at_quantile(q))
    }

    fn record(&mut self, us: u64) {
        if let Some(h) = &mut self.latency {
            let _ = h.record(us);
        }
    }

    /// Keeps the quantiles, drops the histogram.
    fn compact(&mut self) {
        if let Some(h) = self.latency.take() {
            self.quantiles = (h.value_at_quantile(0.5), h.value_at_quantile(0.99));
        }
    }
}

#[derive(Default)]
struct Inner {
    endpoints: BTreeMap<Endpoint, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
    seconds: Vec<Second>,
    completed: u64,
}

/// Shared by the scheduler and every request task.
pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

impl Recorder {
    /// A recorder whose second 0 starts at `start`.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            inner: Mutex::default(),
        }
    }

    fn second(inner: &mut Inner, idx: usize) -> &mut Second {
        if inner.seconds.len() <= idx {
            inner.seconds.resize_with(idx + 1, Second::default);
            let old = inner.seconds.len().saturating_sub(KEEP_SECONDS);
            for s in inner.seconds[..old].iter_mut().rev() {
                if s.latency.is_none() {
                    break;
                }
                s.compact();
            }
        }
        &mut inner.seconds[idx]
    }

    fn index(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.start).as_secs() as usize
    }

    /// A like/unlike arrival was scheduled for `intended`.
    pub fn scheduled(&self, intended: Instant) {
        let idx = self.index(intended);
        Self::second(&mut lock(&self.inner), idx).scheduled += 1;
    }

    /// A request scheduled for `intended` finished now with `outcome`.
    pub fn finished(&self, endpoint: Endpoint, intended: Instant, outcome: Outcome) {
        let us = intended.elapsed().as_micros().max(1) as u64;
        let idx = self.index(intended);
        let mut inner = lock(&self.inner);
        inner.completed += 1;
        let ok = outcome.is_success();
        if !ok {
            *inner
                .errors
                .entry(format!("{} {}", endpoint.name(), outcome.label()))
                .or_default() += 1;
        }
        if ok {
            let _ = inner
                .endpoints
                .entry(endpoint)
                .or_insert_with(histogram)
                .record(us);
        }
        if endpoint != Endpoint::Upload {
            let s = Self::second(&mut inner, idx);
            if ok {
                s.ok += 1;
                s.record(us);
            } else {
                s.errors += 1;
            }
        }
    }

    /// Requests completed so far and errors so far.
    pub fn totals(&self) -> (u64, u64) {
        let inner = lock(&self.inner);
        (inner.completed, inner.errors.values().sum())
    }

    /// The most recent complete-enough second before `now`: (index, scheduled, ok, p50 µs, p99 µs).
    pub fn last_second(&self, now: Instant) -> Option<(usize, Second)> {
        let idx = self.index(now).checked_sub(1)?;
        let inner = lock(&self.inner);
        inner.seconds.get(idx).map(|s| (idx, s.clone()))
    }

    /// Everything recorded, for the report.
    pub fn finish(&self) -> Recorded {
        let inner = lock(&self.inner);
        Recorded {
            endpoints: inner.endpoints.clone(),
            errors: inner.errors.clone(),
            seconds: inner.seconds.clone(),
        }
    }
}

/// The recorder's contents at the end of the run.
pub struct Recorded {
    pub endpoints: BTreeMap<Endpoint, Histogram<u64>>,
    pub errors: BTreeMap<String, u64>,
    pub seconds: Vec<Second>,
}

/// Summary of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn latency_counts_from_the_intended_time() {
        let start = Instant::now();
        let r = Recorder::new(start);
        let intended = Instant::now() - Duration::from_millis(40);
        r.scheduled(intended);
        r.finished(
            Endpoint::Like,
            intended,
            Outcome::Status(http::StatusCode::OK),
        );
        r.finished(Endpoint::Like, intended, Outcome::NoAnswer);
        let rec = r.finish();
        let h = &rec.endpoints[&Endpoint::Like];
        assert!(h.min() >= 40_000, "{}", h.min());
        assert!(rec.seconds[0].p50_ms() >= 40.0);
        assert_eq!(
            rec.errors.get("PUT /api/posts/{id}/like no answer"),
            Some(&1)
        );
        assert_eq!(r.totals(), (2, 1));
    }

    #[test]
    fn old_seconds_keep_their_quantiles_not_their_histograms() {
        let start = Instant::now() - Duration::from_secs(100);
        let r = Recorder::new(start);
        let ok = Outcome::Status(http::StatusCode::OK);
        r.finished(Endpoint::Like, start, ok);
        let p99 = r.finish().seconds[0].p99_ms();
        assert!(p99 >= 100_000.0, "{p99}");
        r.scheduled(start + Duration::from_secs(90));
        let rec = r.finish();
        assert_eq!(rec.seconds.len(), 91);
        assert!(rec.seconds[0].latency.is_none() && rec.seconds[90].latency.is_some());
        assert_eq!(rec.seconds[0].p99_ms(), p99);
    }
}
