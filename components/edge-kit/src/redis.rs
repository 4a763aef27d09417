//! Calling the core crate's scripts through `fermyon:spin/redis`.

use likes_core::scripts::{self, Script};
use likes_core::{UserId, keys};
use spin_sdk::redis::{Connection, Error, RedisParameter, RedisResult};

use crate::EdgeError;

/// One Redis connection for the request.
pub struct Redis(Connection);

impl Redis {
    /// Opens the component's Redis (`redis_address` variable).
    pub fn open() -> Result<Self, EdgeError> {
        let address = crate::var("redis_address")?;
        Connection::open(&address)
            .map(Self)
            .map_err(|e| unavailable("open", e))
    }

    /// Runs `script` with `EVALSHA`, falling back to `EVAL` (which also caches it) when Redis
    /// does not know it yet. Script errors come back as `Err(ScriptError::Script(message))`.
    pub fn eval(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Vec<RedisResult>, ScriptError> {
        let keys = keys
            .iter()
            .map(|k| RedisParameter::Binary(k.as_bytes().to_vec()));
        self.eval_params(script, keys, args.iter().map(Arg::param))
    }

    /// [`eval`](Self::eval) with keys and arguments the caller gives away: each string becomes
    /// its parameter without a copy, which the like path, called for every like, is built on.
    pub fn eval_owned(
        &self,
        script: &Script,
        keys: impl ExactSizeIterator<Item = String>,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Vec<RedisResult>, ScriptError> {
        let binary = |s: String| RedisParameter::Binary(s.into_bytes());
        self.eval_params(script, keys.map(binary), args.into_iter().map(binary))
    }

    fn eval_params(
        &self,
        script: &Script,
        keys: impl ExactSizeIterator<Item = RedisParameter>,
        args: impl Iterator<Item = RedisParameter>,
    ) -> Result<Vec<RedisResult>, ScriptError> {
        let mut params = Vec::with_capacity(2 + keys.len() + args.size_hint().0);
        params.push(RedisParameter::Binary(script.sha1.as_bytes().to_vec()));
        params.push(RedisParameter::Int64(keys.len() as i64));
        params.extend(keys);
        params.extend(args);
        match self.0.execute("EVALSHA", &params) {
            Err(Error::Other(msg)) if scripts::is_noscript(&msg) => {
                params[0] = RedisParameter::Binary(script.source.as_bytes().to_vec());
                self.0.execute("EVAL", &params).map_err(ScriptError::from)
            }
            other => other.map_err(ScriptError::from),
        }
    }

    /// Runs a command whose arguments are raw bytes (image data).
    pub fn cmd_bytes(&self, command: &str, args: &[&[u8]]) -> Result<Vec<RedisResult>, EdgeError> {
        let params: Vec<_> = args
            .iter()
            .map(|a| RedisParameter::Binary(a.to_vec()))
            .collect();
        self.0
            .execute(command, &params)
            .map_err(|e| unavailable(command, e))
    }

    /// Runs a plain command.
    pub fn cmd(&self, command: &str, args: &[Arg<'_>]) -> Result<Vec<RedisResult>, EdgeError> {
        let params: Vec<_> = args.iter().map(Arg::param).collect();
        self.0
            .execute(command, &params)
            .map_err(|e| unavailable(command, e))
    }

    /// The display names of `users`, in their order, with one `HMGET` of the names hash; a name
    /// missing from a partly rebuilt Redis is `None`, and its user still counts.
    pub fn user_names(&self, users: &[UserId]) -> Result<Vec<Option<String>>, EdgeError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let fields: Vec<String> = users.iter().map(|u| keys::user_field(*u)).collect();
        let mut args = Vec::with_capacity(1 + fields.len());
        args.push(Arg::Str(keys::USER_NAMES));
        args.extend(fields.iter().map(|f| Arg::Str(f)));
        let found = self.cmd("HMGET", &args)?;
        Ok((0..users.len()).map(|i| text_at(&found, i)).collect())
    }
}

/// A script or command argument.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Str(&'a str),
    Int(i64),
}

impl Arg<'_> {
    fn param(&self) -> RedisParameter {
        match self {
            Arg::Str(s) => RedisParameter::Binary(s.as_bytes().to_vec()),
            Arg::Int(i) => RedisParameter::Int64(*i),
        }
    }
}

/// A failed script call: either the script itself refused (its error reply), or Redis failed.
#[derive(Debug)]
pub enum ScriptError {
    Script(String),
    Redis(EdgeError),
}

impl From<Error> for ScriptError {
    fn from(e: Error) -> Self {
        match e {
            // Script error replies (`redis.error_reply`), connection failures and Redis's own
            // "not now" replies all arrive as `other`; only the first are the script's answer.
            Error::Other(msg) if !looks_unavailable(&msg) => ScriptError::Script(msg),
            e => ScriptError::Redis(unavailable("EVALSHA", e)),
        }
    }
}

impl From<ScriptError> for EdgeError {
    fn from(e: ScriptError) -> Self {
        match e {
            ScriptError::Script(msg) => EdgeError::Internal(anyhow::anyhow!("script error: {msg}")),
            ScriptError::Redis(e) => e,
        }
    }
}

/// Whether an error means Redis cannot serve right now (a 503 worth retrying), not that the
/// script refused: a broken transport, or Redis still loading its data after a restart
/// (`LOADING`), busy with a long script (`BUSY`), or a cluster mid-failover (`TRYAGAIN`,
/// `CLUSTERDOWN`, `MASTERDOWN`, or a `MOVED` the host's cluster client could not follow yet).
fn looks_unavailable(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "connection",
        "broken pipe",
        "timed out",
        "refused",
        "io error",
        "unreachable",
        "loading",
        "busy",
        "tryagain",
        "clusterdown",
        "masterdown",
        "moved",
    ]
    .iter()
    .any(|t| m.contains(t))
}

fn unavailable(what: &str, e: Error) -> EdgeError {
    EdgeError::Unavailable(anyhow::anyhow!("redis {what}: {e:?}"))
}

/// The integer at `i` of a script reply.
pub fn int_at(reply: &[RedisResult], i: usize) -> Result<i64, EdgeError> {
    match reply.get(i) {
        Some(RedisResult::Int64(n)) => Ok(*n),
        Some(RedisResult::Binary(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                EdgeError::Internal(anyhow::anyhow!("reply item {i} is not an integer"))
            }),
        other => Err(EdgeError::Internal(anyhow::anyhow!(
            "reply item {i} is {other:?}, expected an integer"
        ))),
    }
}

/// A text item of a reply (`None` for nil).
pub fn text_at(reply: &[RedisResult], i: usize) -> Option<String> {
    match reply.get(i) {
        Some(RedisResult::Binary(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(RedisResult::Status(s)) => Some(s.clone()),
        Some(RedisResult::Int64(n)) => Some(n.to_string()),
        _ => None,
    }
}
