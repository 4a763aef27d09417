//! Request and response bodies of the edge HTTP API (`shared/api.md`), shared by the edge
//! components, the app and the load generator so no DTO is written twice.

use serde::{Deserialize, Serialize};

use crate::ids::{PostId, UserId};

/// Longest display name, in characters after trimming.
pub const MAX_NAME_CHARS: usize = 32;
/// Default and maximum page size of `GET /api/posts/{id}/likers`.
pub const LIKERS_PAGE_DEFAULT: u32 = 50;
pub const LIKERS_PAGE_MAX: u32 = 200;

/// Default and maximum page size of `GET /api/feed`.
pub const FEED_PAGE_DEFAULT: u32 = 20;
pub const FEED_PAGE_MAX: u32 = 50;
/// Longest caption, in characters after trimming.
pub const MAX_CAPTION_CHARS: usize = 280;

/// Largest JSON request body (`POST /api/session`), in bytes: a name of 32 characters needs
/// far less, and the limit holds on every runtime, whatever body limit the host has (Spin has
/// none of its own).
pub const MAX_JSON_BODY_BYTES: usize = 16 * 1024;
/// How many recent likers' names a post carries.
pub const RECENT_LIKERS_SHOWN: u32 = 3;

/// `POST /api/session` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRequest {
    pub name: String,
}

/// A user as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: String,
}

/// `POST /api/session` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionResponse {
    pub token: String,
    pub user: User,
}

/// `PUT`/`DELETE /api/posts/{id}/like` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LikeResponse {
    pub post_id: PostId,
    pub likes: u64,
    pub liked: bool,
}

/// `GET /api/posts/{id}/likers` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LikersPage {
    pub users: Vec<User>,
    pub next_cursor: Option<String>,
}

/// A post as clients see it (`GET /api/posts/{id}`, the feed, `posts:created`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    pub id: PostId,
    pub author: User,
    pub caption: String,
    pub image: PostImage,
    pub likes: u64,
    /// Whether the caller likes the post; absent in `posts:created`, which goes to everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liked_by_me: Option<bool>,
    /// Display names of up to [`RECENT_LIKERS_SHOWN`] recent likers, newest first.
    pub recent_likers: Vec<String>,
    pub created_at: String,
}

/// The image of a post: the `full` variant's size and where to fetch each variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostImage {
    pub id: String,
    pub width: u32,
    pub height: u32,
    pub thumb_url: String,
    pub full_url: String,
}

impl PostImage {
    /// The image `id` of `width`×`height`, with the URLs this API serves it at.
    pub fn new(id: String, width: u32, height: u32) -> Self {
        Self {
            thumb_url: image_url(&id, ImageSize::Thumb),
            full_url: image_url(&id, ImageSize::Full),
            id,
            width,
            height,
        }
    }
}

/// `GET /api/feed` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPage {
    pub posts: Vec<Post>,
    pub next_cursor: Option<String>,
}

/// A variant of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSize {
    Thumb,
    Full,
}

impl ImageSize {
    /// Parses `size=thumb|full` from a raw query string (default `full`).
    pub fn parse_query(query: &str) -> Result<Self, QueryError> {
        let mut size = Self::Full;
        for (key, value) in query_pairs(query) {
            if key == "size" {
                size = match value {
                    "thumb" => Self::Thumb,
                    "full" => Self::Full,
                    _ => return Err(QueryError::Size),
                };
            }
        }
        Ok(size)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thumb => "thumb",
            Self::Full => "full",
        }
    }
}

/// Where the API serves a variant of an image.
pub fn image_url(image_id: &str, size: ImageSize) -> String {
    format!("/api/images/{image_id}?size={}", size.as_str())
}

/// Whether `raw` could be an image id (the hex content hash the pipeline produces), checked
/// before it goes into a Redis key.
pub fn is_image_id(raw: &str) -> bool {
    (16..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The order of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedSort {
    /// Newest first. The cursor is the last post id, so inserts never shift a page.
    New,
    /// Most liked first. Counts move, so a post may move between pages; clients drop repeats.
    Top,
}

impl FeedSort {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Top => "top",
        }
    }
}

/// A parsed `GET /api/feed` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedQuery {
    pub sort: FeedSort,
    pub limit: u32,
    pub cursor: FeedCursor,
}

/// Where a feed page starts. Cursors are opaque to clients: `n<id>` for `new`, `t<o0>.<o1>…`
/// (the offset reached in each shard's index) for `top`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedCursor {
    /// From the first post.
    Start,
    /// `new`: posts with ids strictly below this.
    Before(PostId),
    /// `top`: the offset already consumed in each shard's index.
    Offsets(Vec<u32>),
}

impl FeedCursor {
    /// The wire form of a cursor of `sort`, from the script's `next` value (`''` = the end).
    pub fn encode(sort: FeedSort, next: &str) -> Option<String> {
        (!next.is_empty()).then(|| match sort {
            FeedSort::New => format!("n{next}"),
            FeedSort::Top => format!("t{next}"),
        })
    }

    /// The cursor argument of the feed script.
    pub fn script_arg(&self) -> String {
        match self {
            Self::Start => String::new(),
            Self::Before(id) => id.get().to_string(),
            Self::Offsets(offsets) => offsets
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("."),
        }
    }

    fn parse(sort: FeedSort, raw: &str) -> Result<Self, QueryError> {
        match (sort, raw.split_at_checked(1)) {
            (FeedSort::New, Some(("n", id))) => id
                .parse::<u64>()
                .ok()
                .and_then(PostId::new)
                .map(Self::Before)
                .ok_or(QueryError::Cursor),
            (FeedSort::Top, Some(("t", offsets))) => {
                let offsets: Vec<u32> = offsets
                    .split('.')
                    .map(|o| o.parse().map_err(|_| QueryError::Cursor))
                    .collect::<Result<_, _>>()?;
                if offsets.len() == usize::from(crate::keys::SHARDS) {
                    Ok(Self::Offsets(offsets))
                } else {
                    Err(QueryError::Cursor)
                }
            }
            _ => Err(QueryError::Cursor),
        }
    }
}

impl FeedQuery {
    /// Parses `sort`, `limit` and `cursor` from a raw query string; unknown parameters are
    /// ignored. A cursor is only valid with the sort that produced it.
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let mut sort = FeedSort::New;
        let mut limit = FEED_PAGE_DEFAULT;
        let mut cursor = None;
        for (key, value) in query_pairs(query) {
            match key {
                "sort" => {
                    sort = match value {
                        "new" => FeedSort::New,
                        "top" => FeedSort::Top,
                        _ => return Err(QueryError::Sort),
                    }
                }
                "limit" => {
                    limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=FEED_PAGE_MAX).contains(n))
                        .ok_or(QueryError::Limit(FEED_PAGE_MAX))?;
                }
                "cursor" if !value.is_empty() => cursor = Some(value),
                _ => {}
            }
        }
        let cursor = match cursor {
            None => FeedCursor::Start,
            Some(raw) => FeedCursor::parse(sort, raw)?,
        };
        Ok(Self {
            sort,
            limit,
            cursor,
        })
    }
}

/// A caption: at most [`MAX_CAPTION_CHARS`] characters after trimming; may be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption(String);

/// Why a caption was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptionError {
    #[error("the caption is longer than {MAX_CAPTION_CHARS} characters")]
    TooLong,
    #[error("the caption contains control characters (only line breaks are allowed)")]
    Control,
    #[error("the caption contains bidirectional override characters")]
    Bidi,
}

impl Caption {
    /// Trims and validates `raw`: line breaks are kept, any other control character (a NUL,
    /// an escape) or a bidirectional override is refused rather than silently dropped, as in a
    /// display name.
    pub fn parse(raw: &str) -> Result<Self, CaptionError> {
        let text = raw.trim();
        if text.chars().count() > MAX_CAPTION_CHARS {
            return Err(CaptionError::TooLong);
        }
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(CaptionError::Control);
        }
        if text.chars().any(is_bidi_control) {
            return Err(CaptionError::Bidi);
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `GET /api/config` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientConfig {
    pub realtime_url: String,
    /// Where the load lab's control endpoint is; absent unless the deployment enables the lab
    /// (on in `cargo xtask up`, off by default elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab_url: Option<String>,
    /// The key a Socket.IO connection to the lab presents (`auth: { key }`); given only with
    /// `lab_url`. Served without CORS, so only the app's own pages can read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab_key: Option<String>,
}

/// The Socket.IO contract between the realtime hub and its clients (namespace `/`).
pub mod realtime {
    use serde::{Deserialize, Serialize};

    use crate::ids::PostId;

    /// Client → hub: join the rooms of `{"posts": [ids]}`; the ack carries current counts.
    pub const SUBSCRIBE: &str = "subscribe";
    /// Client → hub: leave the rooms of `{"posts": [ids]}`.
    pub const UNSUBSCRIBE: &str = "unsubscribe";
    /// Hub → subscribed clients: a post's newest count ([`LikesUpdated`]).
    pub const LIKES_UPDATED: &str = "likes:updated";
    /// Hub → every client: a new post.
    pub const POSTS_CREATED: &str = "posts:created";
    /// Most posts one socket may subscribe to.
    pub const MAX_POSTS_PER_SOCKET: usize = 500;

    /// Payload of [`LIKES_UPDATED`].
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LikesUpdated {
        pub post_id: PostId,
        pub likes: u64,
    }

    /// Payload of [`SUBSCRIBE`] and [`UNSUBSCRIBE`]: `{"posts": [ids]}`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PostsRequest {
        pub posts: Vec<PostId>,
    }

    /// The posts of a [`PostsRequest`] payload, deduplicated in their first-seen order: what
    /// the hub joins or leaves.
    pub fn parse_posts(payload: serde_json::Value) -> Result<Vec<PostId>, serde_json::Error> {
        let req: PostsRequest = serde_json::from_value(payload)?;
        let mut seen = std::collections::HashSet::with_capacity(req.posts.len());
        Ok(req.posts.into_iter().filter(|p| seen.insert(*p)).collect())
    }
}

/// The Socket.IO contract of the load lab (`load-lab`, namespace `/`): the app's Load lab page
/// starts and stops one load run at a time and every connected page watches it live.
pub mod lab {
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

    /// Payload of [`PROGRESS`]: the load generator's progress events, tagged by `type`.
    /// Kinds this version does not know decode as [`Progress::Other`].
    #[derive(Debug, Clone, PartialEq, Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Progress {
        /// A phase started: `users`, `posts`, `sockets`, `load`, `repair`, `drain`, `report`.
        Phase { phase: String },
        /// Setup progress of a phase.
        Setup {
            phase: String,
            done: u64,
            total: u64,
        },
        /// Once a second during the load phase.
        Tick(Tick),
        /// The drain wait: posts whose PostgreSQL count already matches.
        Drain { matching: u64, total: u64 },
        /// A warning worth showing.
        Note { message: String },
        /// A kind this version does not know.
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
                phase: String,
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
            Ok(match f.kind.as_str() {
                "phase" => Self::Phase { phase: f.phase },
                "setup" => Self::Setup {
                    phase: f.phase,
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

    /// The load phase's last second: what the generator reports (`likes_load` sends it as is)
    /// and the page plots.
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
        pub phase: Option<String>,
        /// The running run's ticks so far (the last ones when it is long).
        pub ticks: Vec<Tick>,
        /// The last finished run.
        pub last: Option<Done>,
        /// Most users a run may have here.
        pub max_users: u64,
    }
}

/// A display name: 1 to [`MAX_NAME_CHARS`] characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

/// Why a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("the name contains control characters")]
    Control,
    #[error("the name contains bidirectional override characters")]
    Bidi,
    #[error("the name has no visible character")]
    Invisible,
}

impl DisplayName {
    /// Trims and validates `raw`. A name must show something: one made only of spaces and
    /// invisible format characters (zero-width space, joiners, …) is refused, and so is any
    /// bidirectional override, which would let a name display as another.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::Control);
        }
        if name.chars().any(is_bidi_control) {
            return Err(NameError::Bidi);
        }
        if name
            .chars()
            .all(|c| c.is_whitespace() || is_invisible_format(c))
        {
            return Err(NameError::Invisible);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The bidirectional embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069)
/// and the implicit marks (U+200E, U+200F, U+061C): text that uses them can display as other
/// text.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Format characters that draw nothing on their own (Unicode category Cf, the ones a name may
/// meet): soft hyphen, zero-width space and joiners, word joiner and invisible operators, the
/// byte-order mark, and the tag characters. They may sit in a name (a joiner inside an emoji),
/// but cannot be all of it.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{E0000}'..='\u{E007F}'
    ) || is_bidi_control(c)
}

/// A page request for likers: ids strictly after `after` (0 = from the start), at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikersQuery {
    pub after: u64,
    pub limit: u32,
}

/// Why a query string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("`limit` must be an integer from 1 to {0}")]
    Limit(u32),
    #[error("`cursor` is not a cursor this API returned")]
    Cursor,
    #[error("`sort` must be `new` or `top`")]
    Sort,
    #[error("`size` must be `thumb` or `full`")]
    Size,
}

impl LikersQuery {
    /// Parses `limit` and `cursor` from a raw query string; unknown parameters are ignored.
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let mut out = Self {
            after: 0,
            limit: LIKERS_PAGE_DEFAULT,
        };
        for (key, value) in query_pairs(query) {
            match key {
                "limit" => {
                    out.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=LIKERS_PAGE_MAX).contains(n))
                        .ok_or(QueryError::Limit(LIKERS_PAGE_MAX))?;
                }
                "cursor" => {
                    out.after = value
                        .parse::<UserId>()
                        .map_err(|_| QueryError::Cursor)?
                        .get()
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The cursor that continues after `last` (the last user of a full page).
pub fn likers_cursor(last: UserId) -> String {
    last.to_string()
}

/// Splits `a=1&b=2` into pairs. Values in this API are ids and integers, which never need
/// percent-decoding, so none is done: an encoded value simply fails validation.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_progress_round_trips_and_unknown_kinds_are_other() {
        use lab::{Progress, Tick};
        let tick = Progress::Tick(Tick {
            elapsed_s: 2.0,
            p99_ms: 4.5,
            requests: 9,
            sync_lag_s: Some(0.25),
            ..Tick::default()
        });
        for p in [
            tick,
            Progress::Phase {
                phase: "load".into(),
            },
            Progress::Setup {
                phase: "users".into(),
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

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  ann ").expect("valid").as_str(), "ann");
        assert_eq!(DisplayName::parse("   "), Err(NameError::Empty));
        assert_eq!(
            DisplayName::parse(&"é".repeat(32)).map(|n| n.as_str().chars().count()),
            Ok(32)
        );
        assert_eq!(DisplayName::parse(&"x".repeat(33)), Err(NameError::TooLong));
        assert_eq!(DisplayName::parse("a\u{7}b"), Err(NameError::Control));
        assert_eq!(DisplayName::parse("\u{202E}\u{200B}"), Err(NameError::Bidi));
        assert_eq!(
            DisplayName::parse("\u{200B}\u{2060}\u{FEFF}"),
            Err(NameError::Invisible)
        );
        assert_eq!(DisplayName::parse("ann\u{202E}nimda"), Err(NameError::Bidi));
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(
            DisplayName::parse(family).map(|n| n.as_str().to_owned()),
            Ok(family.to_owned()),
            "a joiner inside an emoji is part of a visible name"
        );
    }

    #[test]
    fn feed_query_round_trips_its_cursors() {
        let q = FeedQuery::parse("").expect("defaults");
        assert_eq!(
            (q.sort, q.limit, q.cursor),
            (FeedSort::New, 20, FeedCursor::Start)
        );
        let next = FeedCursor::encode(FeedSort::New, "42").expect("more");
        let q = FeedQuery::parse(&format!("sort=new&limit=50&cursor={next}")).expect("valid");
        assert_eq!(
            q.cursor,
            FeedCursor::Before(PostId::new(42).expect("nonzero"))
        );
        assert_eq!(q.cursor.script_arg(), "42");
        let offsets = vec!["3"; 16].join(".");
        let next = FeedCursor::encode(FeedSort::Top, &offsets).expect("more");
        let q = FeedQuery::parse(&format!("sort=top&cursor={next}")).expect("valid");
        assert_eq!(q.cursor, FeedCursor::Offsets(vec![3; 16]));
        assert_eq!(q.cursor.script_arg(), offsets);
        assert_eq!(FeedCursor::encode(FeedSort::Top, ""), None);
    }

    #[test]
    fn feed_query_refuses_what_it_did_not_issue() {
        assert_eq!(FeedQuery::parse("sort=old"), Err(QueryError::Sort));
        assert_eq!(FeedQuery::parse("limit=51"), Err(QueryError::Limit(50)));
        // A `new` cursor under `top`, and the reverse, are refused rather than misread.
        assert_eq!(
            FeedQuery::parse("sort=top&cursor=n5"),
            Err(QueryError::Cursor)
        );
        assert_eq!(
            FeedQuery::parse("sort=new&cursor=t1.2"),
            Err(QueryError::Cursor)
        );
        assert_eq!(
            FeedQuery::parse("sort=top&cursor=t1.2"),
            Err(QueryError::Cursor)
        );
        assert_eq!(FeedQuery::parse("cursor=n0"), Err(QueryError::Cursor));
        assert_eq!(FeedQuery::parse("cursor=nx"), Err(QueryError::Cursor));
    }

    #[test]
    fn captions_images_and_sizes() {
        assert_eq!(
            Caption::parse("  first light\nover the bay ")
                .expect("valid")
                .as_str(),
            "first light\nover the bay"
        );
        assert_eq!(Caption::parse("hi\u{7} there"), Err(CaptionError::Control));
        assert_eq!(Caption::parse("a\0b"), Err(CaptionError::Control));
        assert_eq!(Caption::parse("evil\u{202E}gpj"), Err(CaptionError::Bidi));
        assert!(Caption::parse(&"x".repeat(280)).is_ok());
        assert_eq!(Caption::parse(&"x".repeat(281)), Err(CaptionError::TooLong));
        assert_eq!(ImageSize::parse_query(""), Ok(ImageSize::Full));
        assert_eq!(ImageSize::parse_query("size=thumb"), Ok(ImageSize::Thumb));
        assert_eq!(ImageSize::parse_query("size=huge"), Err(QueryError::Size));
        assert!(is_image_id("0123456789abcdef0123456789abcdef"));
        assert!(!is_image_id("../../etc/passwd"));
        assert!(!is_image_id("0123456789ABCDEF0123456789ABCDEF"));
        let img = PostImage::new("ab".repeat(16), 1080, 720);
        assert_eq!(
            img.thumb_url,
            format!("/api/images/{}?size=thumb", "ab".repeat(16))
        );
    }

    #[test]
    fn posts_for_everyone_carry_no_liked_by_me() {
        let mut post = Post {
            id: PostId::new(1).expect("nonzero"),
            author: User {
                id: UserId::new(2).expect("nonzero"),
                name: "ann".into(),
            },
            caption: String::new(),
            image: PostImage::new("ab".repeat(16), 10, 10),
            likes: 0,
            liked_by_me: None,
            recent_likers: vec![],
            created_at: "2026-01-01T00:00:00.000Z".into(),
        };
        let json = serde_json::to_value(&post).expect("serialize");
        assert!(json.get("liked_by_me").is_none());
        post.liked_by_me = Some(false);
        let json = serde_json::to_value(&post).expect("serialize");
        assert_eq!(json["liked_by_me"], serde_json::json!(false));
    }

    #[test]
    fn likers_query_defaults_and_limits() {
        assert_eq!(
            LikersQuery::parse(""),
            Ok(LikersQuery {
                after: 0,
                limit: 50
            })
        );
        assert_eq!(
            LikersQuery::parse("limit=200&cursor=u_9"),
            Ok(LikersQuery {
                after: 9,
                limit: 200
            })
        );
        assert_eq!(LikersQuery::parse("limit=0"), Err(QueryError::Limit(200)));
        assert_eq!(LikersQuery::parse("limit=201"), Err(QueryError::Limit(200)));
        assert_eq!(LikersQuery::parse("cursor=zz"), Err(QueryError::Cursor));
        assert_eq!(
            LikersQuery::parse("x=1&limit=5"),
            Ok(LikersQuery { after: 0, limit: 5 })
        );
    }
}
