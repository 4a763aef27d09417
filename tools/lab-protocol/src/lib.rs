//! The Socket.IO contract of the load lab (`load-lab`, namespace `/`): the app's Load lab page
//! starts and stops one load run at a time and every connected page watches it live.
//!
//! One set of types for the whole path: the load generator (`likes-load`) emits [`Progress`],
//! the lab broadcasts it as is, and the page decodes it. It lives with the tools, not in the
//! product's core, and depends on serde only so the browser app can build it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Client → lab: start a run ([`StartRequest`]); the ack is [`Ack`].
pub const START: &str = "lab:start";
/// Client → lab: end the running load phase early (the verdict still runs); ack [`Ack`].
pub const STOP: &str = "lab:stop";
/// Lab → every client: one [`Progress`] event of the running run.
pub const PROGRESS: &str = "lab:progress";
/// Lab → every client: the run ended ([`Done`]).
pub const DONE: &str = "lab:done";
/// Lab → a client on connect, and to every client when a run starts: [`LabState`].
pub const STATE: &str = "lab:state";

/// Payload of [`START`]: a preset (`10k`, `100k`, `1m`) and/or explicit settings, which
/// override what the preset sets. Absent fields keep the lab's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posts: Option<u32>,
    /// Target like/unlike requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Steady part of the load phase, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    /// Linear ramp before the steady part, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_secs: Option<f64>,
    /// Socket.IO connections held on the realtime hub during the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sockets: Option<u64>,
    /// `uniform`, `zipf` or `viral`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popularity: Option<String>,
}

/// Why the lab refused a request, as in every Socket.IO error ack of this system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub title: String,
    pub detail: String,
}

/// The ack of [`START`] and [`STOP`]: `{"ok": true, "run": …}` or `{"error": {…}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ok: bool,
    /// The settings the started run uses (after the preset and the lab's caps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// The settings of a run, as the page shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub users: u64,
    pub posts: u32,
    pub sockets: u64,
    pub rate: f64,
    pub ramp_secs: f64,
    pub duration_secs: f64,
    pub popularity: String,
}

/// Where a run is, in the order a run goes through them. On the wire, the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Users,
    Posts,
    Sockets,
    Load,
    Repair,
    Drain,
    Report,
    /// A phase this version does not know (a newer generator's): the event or state carrying
    /// it still decodes.
    #[serde(other)]
    Other,
}

impl Phase {
    /// The wire name, e.g. `load`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Posts => "posts",
            Self::Sockets => "sockets",
            Self::Load => "load",
            Self::Repair => "repair",
            Self::Drain => "drain",
            Self::Report => "report",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phase equals its wire name, so a page or a test can match one by name.
impl PartialEq<str> for Phase {
    fn eq(&self, name: &str) -> bool {
        self.as_str() == name
    }
}

/// Payload of [`PROGRESS`]: the load generator's progress events, tagged by `type`.
/// Kinds this version does not know decode as [`Progress::Other`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Progress {
    /// A phase started.
    Phase { phase: Phase },
    /// Setup progress of a phase (users, posts, sockets).
    Setup { phase: Phase, done: u64, total: u64 },
    /// Once a second during the load phase.
    Tick(Tick),
    /// The drain wait: posts whose PostgreSQL count already matches.
    Drain { matching: u64, total: u64 },
    /// A warning worth showing (e.g. fewer sockets than asked).
    Note { message: String },
    /// A kind this version does not know; the generator never emits it.
    Other,
}

/// Decoded through one flat struct rather than serde's internally tagged support, which
/// buffers every object first and costs the browser app about 10 KB of gzipped wasm.
impl<'de> Deserialize<'de> for Progress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct Flat {
            #[serde(rename = "type")]
            kind: String,
            phase: Option<Phase>,
            done: u64,
            total: u64,
            matching: u64,
            message: String,
            elapsed_s: f64,
            total_s: f64,
            target_rate: f64,
            achieved_rate: f64,
            p50_ms: f64,
            p99_ms: f64,
            requests: u64,
            errors: u64,
            sockets: u64,
            delivery_frames: u64,
            delivery_p99_ms: f64,
            sync_lag_s: Option<f64>,
            sync_lag_entries: Option<f64>,
            in_flight: u64,
        }
        let f = Flat::deserialize(d)?;
        let phase = f.phase.unwrap_or(Phase::Other);
        Ok(match f.kind.as_str() {
            "phase" => Self::Phase { phase },
            "setup" => Self::Setup {
                phase,
                done: f.done,
                total: f.total,
            },
            "tick" => Self::Tick(Tick {
                elapsed_s: f.elapsed_s,
                total_s: f.total_s,
                target_rate: f.target_rate,
                achieved_rate: f.achieved_rate,
                p50_ms: f.p50_ms,
                p99_ms: f.p99_ms,
                requests: f.requests,
                errors: f.errors,
                sockets: f.sockets,
                delivery_frames: f.delivery_frames,
                delivery_p99_ms: f.delivery_p99_ms,
                sync_lag_s: f.sync_lag_s,
                sync_lag_entries: f.sync_lag_entries,
                in_flight: f.in_flight,
            }),
            "drain" => Self::Drain {
                matching: f.matching,
                total: f.total,
            },
            "note" => Self::Note { message: f.message },
            _ => Self::Other,
        })
    }
}

/// The load phase's last second: what the generator reports and the page plots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tick {
    pub elapsed_s: f64,
    pub total_s: f64,
    pub target_rate: f64,
    /// 2xx answers per second.
    pub achieved_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    pub errors: u64,
    pub sockets: u64,
    /// `likes:updated` frames the sockets received in that second.
    pub delivery_frames: u64,
    pub delivery_p99_ms: f64,
    /// Seconds the sync daemon is behind Redis; absent when not sampled.
    pub sync_lag_s: Option<f64>,
    pub sync_lag_entries: Option<f64>,
    /// Requests sent and not answered yet.
    pub in_flight: u64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// The generator, Redis and PostgreSQL agree on every post.
    Pass,
    /// Some count disagrees, or PostgreSQL was not compared.
    Fail,
    /// The run could not finish (see [`Done::error`]).
    Error,
}

/// Payload of [`DONE`]: the verdict and the report's key figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

/// A finished run's verdict counts and headline measurements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub posts: u64,
    /// Unique likers the generator left, summed over the posts.
    pub expected_total: u64,
    pub redis_total: u64,
    pub pg_total: u64,
    pub mismatch_count: u64,
    /// Why PostgreSQL was not compared, when it was not.
    pub note: Option<String>,
    pub scheduled: u64,
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub delivery_p99_ms: f64,
    pub sync_lag_max_s: Option<f64>,
    /// The whole report in Markdown.
    pub markdown: String,
}

/// Payload of [`STATE`]: what a page that just connected needs to draw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LabState {
    /// Whether this lab accepts runs (`--enable-lab`).
    pub enabled: bool,
    pub running: bool,
    /// The running (or last) run's settings.
    pub run: Option<RunInfo>,
    /// The running run's phase.
    pub phase: Option<Phase>,
    /// The running run's ticks so far (the last ones when it is long).
    pub ticks: Vec<Tick>,
    /// The last finished run.
    pub last: Option<Done>,
    /// Most users a run may have here.
    pub max_users: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_progress_round_trips_and_unknown_kinds_are_other() {
        let tick = Progress::Tick(Tick {
            elapsed_s: 2.0,
            p99_ms: 4.5,
            requests: 9,
            sync_lag_s: Some(0.25),
            ..Tick::default()
        });
        for p in [
            tick,
            Progress::Phase { phase: Phase::Load },
            Progress::Setup {
                phase: Phase::Users,
                done: 1,
                total: 3,
            },
            Progress::Drain {
                matching: 2,
                total: 3,
            },
            Progress::Note {
                message: "hi".into(),
            },
        ] {
            let json = serde_json::to_string(&p).expect("serialises");
            assert_eq!(
                serde_json::from_str::<Progress>(&json).ok(),
                Some(p),
                "{json}"
            );
        }
        let later: Progress =
            serde_json::from_str(r#"{"type":"chart","x":1}"#).expect("an unknown kind decodes");
        assert_eq!(later, Progress::Other);
        assert!(serde_json::from_str::<Progress>(r#"{"phase":"load"}"#).is_ok());
    }

    /// The generator's events on the wire, byte for byte: the lab sends them as they are and
    /// the page decodes exactly this.
    #[test]
    fn every_generator_event_has_its_wire_form() {
        let tick = Tick {
            elapsed_s: 3.0,
            total_s: 10.0,
            target_rate: 100.0,
            achieved_rate: 98.0,
            p50_ms: 1.5,
            p99_ms: 7.25,
            requests: 300,
            errors: 2,
            sockets: 5,
            delivery_frames: 40,
            delivery_p99_ms: 20.0,
            sync_lag_s: Some(0.4),
            sync_lag_entries: None,
            in_flight: 3,
        };
        let cases = [
            (
                Progress::Tick(tick),
                r#"{"type":"tick","elapsed_s":3.0,"total_s":10.0,"target_rate":100.0,"achieved_rate":98.0,"p50_ms":1.5,"p99_ms":7.25,"requests":300,"errors":2,"sockets":5,"delivery_frames":40,"delivery_p99_ms":20.0,"sync_lag_s":0.4,"sync_lag_entries":null,"in_flight":3}"#,
            ),
            (
                Progress::Phase { phase: Phase::Load },
                r#"{"type":"phase","phase":"load"}"#,
            ),
            (
                Progress::Setup {
                    phase: Phase::Users,
                    done: 1,
                    total: 2,
                },
                r#"{"type":"setup","phase":"users","done":1,"total":2}"#,
            ),
            (
                Progress::Drain {
                    matching: 1,
                    total: 2,
                },
                r#"{"type":"drain","matching":1,"total":2}"#,
            ),
            (
                Progress::Note {
                    message: "hi".into(),
                },
                r#"{"type":"note","message":"hi"}"#,
            ),
        ];
        for (event, wire) in cases {
            assert_eq!(serde_json::to_string(&event).ok().as_deref(), Some(wire));
            assert_eq!(serde_json::from_str::<Progress>(wire).ok(), Some(event));
        }
    }

    #[test]
    fn phases_go_by_their_wire_names_and_unknown_ones_still_decode() {
        for phase in [
            Phase::Users,
            Phase::Posts,
            Phase::Sockets,
            Phase::Load,
            Phase::Repair,
            Phase::Drain,
            Phase::Report,
        ] {
            let wire = format!("\"{phase}\"");
            assert_eq!(serde_json::to_string(&phase).ok(), Some(wire.clone()));
            assert_eq!(serde_json::from_str::<Phase>(&wire).ok(), Some(phase));
            assert!(phase == *phase.as_str());
        }
        let later: Progress = serde_json::from_str(r#"{"type":"phase","phase":"warmup"}"#)
            .expect("an unknown phase decodes");
        assert_eq!(
            later,
            Progress::Phase {
                phase: Phase::Other
            }
        );
        let state: LabState =
            serde_json::from_str(r#"{"running":true,"phase":"warmup"}"#).expect("decodes");
        assert_eq!(state.phase, Some(Phase::Other));
    }
}
