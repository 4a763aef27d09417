//! The Load lab page's state and the arithmetic of its plots: what the lab's Socket.IO events
//! (`lab_protocol`) make of the page, and the SVG polyline of a series. Pure, so it is
//! tested natively.

use std::fmt::Write as _;

use lab_protocol::{Done, LabState, Outcome, Progress, RunInfo, Summary, Tick};

/// Width and height of every plot's SVG view box.
pub const PLOT_W: f64 = 300.0;
pub const PLOT_H: f64 = 80.0;
/// Ticks kept on the page (the lab keeps as many).
const TICKS_KEPT: usize = 600;

/// Everything the page shows about the lab.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabView {
    /// Whether the socket is connected to the lab.
    pub connected: bool,
    /// Whether the lab accepts runs; unknown until its first `lab:state`.
    pub enabled: Option<bool>,
    pub running: bool,
    pub run: Option<RunInfo>,
    pub phase: Option<String>,
    /// The current setup or drain step: what, done, total.
    pub step: Option<(String, u64, u64)>,
    pub notes: Vec<String>,
    pub ticks: Vec<Tick>,
    pub last: Option<Done>,
    /// Why the lab refused the last request.
    pub refused: Option<String>,
    pub max_users: u64,
}

/// Everything that can happen to the page.
#[derive(Debug, Clone, PartialEq)]
pub enum LabAction {
    Connected(bool),
    State(LabState),
    Progress(Progress),
    Done(Done),
    /// The lab refused a start or stop, with its words.
    Refused(String),
}

impl LabView {
    /// The view after `action`.
    pub fn reduce(mut self, action: LabAction) -> Self {
        match action {
            LabAction::Connected(c) => self.connected = c,
            LabAction::State(s) => {
                if s.running && !self.running {
                    self.refused = None;
                }
                self.enabled = Some(s.enabled);
                self.running = s.running;
                self.run = s.run;
                self.phase = s.phase.map(|p| p.as_str().to_owned());
                self.ticks = s.ticks;
                self.last = s.last;
                self.max_users = s.max_users;
                self.step = None;
                if s.running {
                    self.notes.clear();
                }
            }
            LabAction::Progress(p) => match p {
                Progress::Phase { phase } => {
                    self.running = true;
                    self.phase = Some(phase.as_str().to_owned());
                    self.step = None;
                }
                Progress::Setup { phase, done, total } => {
                    self.step = Some((format!("setting up {phase}"), done, total));
                }
                Progress::Drain { matching, total } => {
                    self.step = Some(("posts matching in PostgreSQL".into(), matching, total));
                }
                Progress::Tick(t) => {
                    if self.ticks.len() >= TICKS_KEPT {
                        self.ticks.remove(0);
                    }
                    self.ticks.push(t);
                }
                Progress::Note { message } => self.notes.push(message),
                Progress::Other => {}
            },
            LabAction::Done(d) => {
                self.running = false;
                self.phase = None;
                self.step = None;
                self.last = Some(d);
            }
            LabAction::Refused(why) => self.refused = Some(why),
        }
        self
    }

    /// The x range of the plots: the run's planned load time, or further if it ran over.
    pub fn x_max(&self) -> f64 {
        let planned = self
            .ticks
            .last()
            .map(|t| t.total_s)
            .or_else(|| self.run.as_ref().map(|r| r.ramp_secs + r.duration_secs))
            .unwrap_or(0.0);
        let elapsed = self.ticks.last().map_or(0.0, |t| t.elapsed_s);
        planned.max(elapsed).max(1.0)
    }

    /// `(elapsed, value)` of every tick where `f` has a value.
    pub fn series(&self, f: impl Fn(&Tick) -> Option<f64>) -> Vec<(f64, f64)> {
        self.ticks
            .iter()
            .filter_map(|t| f(t).map(|v| (t.elapsed_s, v)))
            .collect()
    }
}

/// A round ceiling for a plot's y axis: 1, 2 or 5 times a power of ten, at least `v`.
pub fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    // By multiplication, not `log10`/`powf`: smaller wasm, and exact for the usual ranges.
    let mut magnitude = 1.0;
    while magnitude * 10.0 <= v {
        magnitude *= 10.0;
    }
    while magnitude > v {
        magnitude /= 10.0;
    }
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

/// The `points` of an SVG polyline for `series` in a [`PLOT_W`]×[`PLOT_H`] box, x from 0 to
/// `x_max`, y from 0 (bottom) to `y_max` (top); values outside are clamped to the box.
pub fn polyline(series: &[(f64, f64)], x_max: f64, y_max: f64) -> String {
    let mut out = String::new();
    for (x, y) in series {
        let px = (x / x_max).clamp(0.0, 1.0) * PLOT_W;
        let py = PLOT_H - (y / y_max).clamp(0.0, 1.0) * PLOT_H;
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{},{}", fixed(px, 1), fixed(py, 1));
    }
    out
}

/// `v` with `decimals` digits after the point, by integer arithmetic: Rust's float
/// formatting with a precision adds tens of KB to the app's wasm.
pub fn fixed(v: f64, decimals: u32) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let scale = 10u64.pow(decimals);
    let n = (v.abs() * scale as f64).round() as u64;
    let sign = if v < 0.0 && n > 0 { "-" } else { "" };
    if decimals == 0 {
        format!("{sign}{n}")
    } else {
        let width = decimals as usize;
        format!("{sign}{}.{:0width$}", n / scale, n % scale)
    }
}

/// A figure with as many decimals as its size deserves: `20`, `3.5`, `0.05`.
pub fn figure(v: f64) -> String {
    let a = v.abs();
    fixed(
        v,
        if a >= 10.0 {
            0
        } else if a >= 1.0 {
            1
        } else {
            2
        },
    )
}

/// The verdict's one line: how the three counts compare.
pub fn verdict_line(s: &Summary) -> String {
    let mut line = format!(
        "{} posts: expected {} likes, Redis {}, PostgreSQL {}",
        s.posts, s.expected_total, s.redis_total, s.pg_total
    );
    if s.mismatch_count > 0 {
        let _ = write!(line, " ({} posts disagree)", s.mismatch_count);
    }
    if let Some(note) = &s.note {
        let _ = write!(line, "; {note}");
    }
    line
}

/// PASS, FAIL or ERROR.
pub fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "PASS",
        Outcome::Fail => "FAIL",
        Outcome::Error => "ERROR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_protocol::Phase;

    fn tick(elapsed_s: f64, rate: f64, lag: Option<f64>) -> Tick {
        Tick {
            elapsed_s,
            total_s: 10.0,
            achieved_rate: rate,
            sync_lag_s: lag,
            ..Tick::default()
        }
    }

    #[test]
    fn polylines_fit_the_box_with_y_up() {
        assert_eq!(
            polyline(&[(0.0, 0.0), (5.0, 50.0), (10.0, 100.0)], 10.0, 100.0),
            "0.0,80.0 150.0,40.0 300.0,0.0"
        );
        // Out of range values stay inside the box.
        assert_eq!(polyline(&[(20.0, -5.0)], 10.0, 100.0), "300.0,80.0");
        assert_eq!(polyline(&[], 10.0, 100.0), "");
    }

    #[test]
    fn figures_are_rounded_without_float_formatting() {
        assert_eq!(fixed(4.56789, 2), "4.57");
        assert_eq!(fixed(2.5, 0), "3");
        assert_eq!(fixed(0.05, 1), "0.1");
        assert_eq!(fixed(-1.25, 1), "-1.3");
        assert_eq!(fixed(-0.01, 1), "0.0");
        assert_eq!(fixed(7.0, 3), "7.000");
        assert_eq!(fixed(f64::NAN, 1), "–");
        assert_eq!(figure(1234.5), "1235");
        assert_eq!(figure(12.34), "12");
        assert_eq!(figure(2.5), "2.5");
        assert_eq!(figure(0.05), "0.05");
    }

    #[test]
    fn axis_ceilings_are_round() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(7.2), 10.0);
        assert_eq!(nice_max(180.0), 200.0);
        assert_eq!(nice_max(1_000.0), 1_000.0);
        assert_eq!(nice_max(0.03), 0.05);
    }

    #[test]
    fn a_run_goes_from_state_through_ticks_to_a_verdict() {
        let run = RunInfo {
            users: 20,
            posts: 5,
            sockets: 0,
            rate: 20.0,
            ramp_secs: 0.0,
            duration_secs: 4.0,
            popularity: "zipf".into(),
        };
        let mut v = LabView::default().reduce(LabAction::Refused("busy".into()));
        v = v.reduce(LabAction::State(LabState {
            enabled: true,
            running: true,
            run: Some(run),
            max_users: 1_000,
            ..LabState::default()
        }));
        assert_eq!(
            (v.enabled, v.running, v.refused.clone()),
            (Some(true), true, None)
        );
        assert_eq!(v.x_max(), 4.0);
        v = v.reduce(LabAction::Progress(Progress::Setup {
            phase: Phase::Users,
            done: 3,
            total: 20,
        }));
        assert_eq!(v.step, Some(("setting up users".into(), 3, 20)));
        v = v.reduce(LabAction::Progress(Progress::Phase { phase: Phase::Load }));
        assert_eq!((v.phase.as_deref(), v.step.clone()), (Some("load"), None));
        for t in [tick(1.0, 18.0, None), tick(2.0, 20.0, Some(0.5))] {
            v = v.reduce(LabAction::Progress(Progress::Tick(t)));
        }
        assert_eq!(v.x_max(), 10.0);
        assert_eq!(
            v.series(|t| Some(t.achieved_rate)),
            [(1.0, 18.0), (2.0, 20.0)]
        );
        assert_eq!(v.series(|t| t.sync_lag_s), [(2.0, 0.5)]);
        v = v.reduce(LabAction::Progress(Progress::Other));
        let done = Done {
            outcome: Outcome::Pass,
            error: None,
            summary: None,
        };
        v = v.reduce(LabAction::Done(done.clone()));
        assert!(!v.running);
        assert_eq!(v.last, Some(done));
        // The plot of the finished run stays up.
        assert_eq!(v.ticks.len(), 2);
    }

    #[test]
    fn the_verdict_line_names_every_count_and_why_it_failed() {
        let s = Summary {
            posts: 5,
            expected_total: 40,
            redis_total: 40,
            pg_total: 0,
            mismatch_count: 0,
            note: Some("no --database-url: PostgreSQL not compared".into()),
            ..Summary::default()
        };
        assert_eq!(
            verdict_line(&s),
            "5 posts: expected 40 likes, Redis 40, PostgreSQL 0; no --database-url: PostgreSQL not compared"
        );
        let bad = Summary {
            mismatch_count: 2,
            note: None,
            ..s
        };
        assert!(verdict_line(&bad).ends_with("(2 posts disagree)"));
        assert_eq!(outcome_word(Outcome::Fail), "FAIL");
    }
}
