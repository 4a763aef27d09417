//! Per-post coalescing of count changes, as a pure state machine (no clock, no I/O) so its rules
//! are unit-tested exactly.
//!
//! Rules (the contract's): the first change of a post after a quiet window goes out at once;
//! after an emit, further changes within the window are held and only the newest is emitted
//! when the window ends; the last change is always emitted. A post liked 100,000 times a second
//! therefore costs `1 s / window` emits a second per room.
//!
//! Because the window is constant and time only moves forward, the deadlines of emitted posts
//! are appended in order: a `VecDeque` is a sorted timer queue, and every operation is O(1)
//! amortised, whatever the number of hot posts.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use likes_core::PostId;

/// What the coalescer knows about one post that emitted within the last window.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The newest count not yet emitted, if any.
    pending: Option<u64>,
}

/// Coalesces count changes per post; see the module docs.
#[derive(Debug)]
pub struct Coalescer {
    window: Duration,
    /// Posts that emitted within the last window. A post absent here is quiet.
    slots: HashMap<PostId, Slot>,
    /// `(end of window, post)`, oldest first; exactly one entry per slot.
    deadlines: VecDeque<(Instant, PostId)>,
}

impl Coalescer {
    /// A coalescer with the given window (zero disables coalescing).
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            slots: HashMap::new(),
            deadlines: VecDeque::new(),
        }
    }

    /// Offers the count `likes` of `post` at `now`. Returns the count to emit right away, or
    /// `None` when it is held until the post's window ends (see [`Coalescer::due`]).
    pub fn offer(&mut self, post: PostId, likes: u64, now: Instant) -> Option<u64> {
        if self.window.is_zero() {
            return Some(likes);
        }
        // Expire windows that already ended, so a quiet post emits at once.
        self.expire(now);
        match self.slots.get_mut(&post) {
            Some(slot) => {
                slot.pending = Some(likes);
                None
            }
            None => {
                self.slots.insert(post, Slot { pending: None });
                self.deadlines.push_back((now + self.window, post));
                Some(likes)
            }
        }
    }

    /// When the next held count becomes due, if any window is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|(at, _)| *at)
    }

    /// The held counts whose window ended by `now`, newest count per post. Each emitted post
    /// opens a new window; posts with nothing held become quiet.
    pub fn due(&mut self, now: Instant) -> Vec<(PostId, u64)> {
        let mut out = Vec::new();
        while let Some(&(at, post)) = self.deadlines.front() {
            if at > now {
                break;
            }
            self.deadlines.pop_front();
            let pending = self.slots.get_mut(&post).and_then(|s| s.pending.take());
            match pending {
                Some(likes) => {
                    out.push((post, likes));
                    self.deadlines.push_back((now + self.window, post));
                }
                None => {
                    self.slots.remove(&post);
                }
            }
        }
        out
    }

    /// Drops windows that ended with nothing held, keeping held counts for [`Coalescer::due`].
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, post)) = self.deadlines.front() {
            if at > now {
                break;
            }
            if self.slots.get(&post).is_some_and(|s| s.pending.is_some()) {
                // A held count is due: leave it for `due`, which the caller runs at this deadline.
                break;
            }
            self.deadlines.pop_front();
            self.slots.remove(&post);
        }
    }

    /// Posts with an open window (for metrics and tests).
    pub fn open_windows(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_millis(100);

    fn p(n: u64) -> PostId {
        PostId::new(n).expect("nonzero")
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_change_after_quiet_goes_out_at_once() {
        let t = Instant::now();
        let mut c = Coalescer::new(W);
        assert_eq!(c.offer(p(1), 1, t), Some(1));
        assert_eq!(c.next_deadline(), Some(t + W));
        // Nothing held: the window closes quietly.
        assert!(c.due(t + W).is_empty());
        assert_eq!(c.open_windows(), 0);
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.offer(p(1), 2, t + ms(150)), Some(2));
    }

    #[test]
    fn burst_is_held_and_only_newest_count_is_emitted() {
        let t = Instant::now();
        let mut c = Coalescer::new(W);
        assert_eq!(c.offer(p(1), 1, t), Some(1));
        for n in 2..=200 {
            assert_eq!(c.offer(p(1), n, t + ms(n / 4)), None);
        }
        assert!(c.due(t + ms(99)).is_empty());
        assert_eq!(c.due(t + W), vec![(p(1), 200)]);
        // The emit opened a new window.
        assert_eq!(c.next_deadline(), Some(t + W + W));
        assert_eq!(c.offer(p(1), 201, t + ms(150)), None);
        assert_eq!(c.due(t + ms(200)), vec![(p(1), 201)]);
        assert!(c.due(t + ms(300)).is_empty());
        assert_eq!(c.open_windows(), 0);
    }

    #[test]
    fn at_most_one_emit_per_window_under_steady_load() {
        let t = Instant::now();
        let mut c = Coalescer::new(W);
        let mut emits = 0;
        let mut last = None;
        // 10,000 changes over one second, due() run at every change as the hub's loop would.
        for i in 0..10_000u64 {
            let now = t + Duration::from_micros(i * 100);
            emits += c.due(now).len();
            if c.offer(p(7), i + 1, now).is_some() {
                emits += 1;
            }
            last = Some(now);
        }
        let end = last.expect("ran") + W;
        let tail = c.due(end);
        emits += tail.len();
        assert_eq!(
            tail,
            vec![(p(7), 10_000)],
            "the last change is always emitted"
        );
        assert!((10..=12).contains(&emits), "{emits} emits");
    }

    #[test]
    fn posts_are_independent() {
        let t = Instant::now();
        let mut c = Coalescer::new(W);
        assert_eq!(c.offer(p(1), 1, t), Some(1));
        assert_eq!(c.offer(p(2), 5, t + ms(10)), Some(5));
        assert_eq!(c.offer(p(1), 2, t + ms(20)), None);
        assert_eq!(c.offer(p(2), 6, t + ms(30)), None);
        assert_eq!(c.due(t + ms(100)), vec![(p(1), 2)]);
        assert_eq!(c.due(t + ms(110)), vec![(p(2), 6)]);
    }

    #[test]
    fn held_count_survives_a_late_offer_after_its_deadline() {
        // The loop may be late to run due(): a new offer must not lose the held count.
        let t = Instant::now();
        let mut c = Coalescer::new(W);
        assert_eq!(c.offer(p(1), 1, t), Some(1));
        assert_eq!(c.offer(p(1), 2, t + ms(50)), None);
        assert_eq!(c.offer(p(1), 3, t + ms(130)), None);
        assert_eq!(c.due(t + ms(130)), vec![(p(1), 3)]);
    }

    #[test]
    fn zero_window_disables_coalescing() {
        let t = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO);
        assert_eq!(c.offer(p(1), 1, t), Some(1));
        assert_eq!(c.offer(p(1), 2, t), Some(2));
        assert_eq!(c.next_deadline(), None);
    }
}
