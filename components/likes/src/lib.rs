//! Likes: `PUT`/`DELETE /api/posts/{id}/like` (idempotent) and `GET /api/posts/{id}/likers`.
//!
//! Each like or unlike is one call of the core crate's `like` script, which does the dedupe,
//! the count, the stream entry and the PUBLISH atomically.

// `#[http_component]` expands to the unsafe export glue of the wasi:http handler.
#![allow(unsafe_code)]

use edge_kit::redis::{Arg, Redis, ScriptError, int_at};
use edge_kit::wire::{self, Head};
use edge_kit::{EdgeError, auth, rate, respond};
use likes_core::api::{LikeResponse, LikersPage, LikersQuery, User, likers_cursor};
use likes_core::rate::{Scope, Subject};
use likes_core::scripts::{LikeCall, LikeDurability, LikersCall};
use likes_core::{PostId, UserId, scripts, time};
use spin_sdk::http::{IncomingRequest, Method, Response, ResponseOutparam};
use spin_sdk::http_component;

/// A like on a post that was never created is a 404 (the script checks, atomically with the
/// like, so a post cannot vanish between the check and the write).
const REQUIRE_POST: bool = true;

/// Reads only the request head and writes the response directly: this is the hot path, and
/// the SDK's `Request`/`Response` conversion would cost more host calls than the like itself.
#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let head = Head::read(&req);
    wire::send(out, &respond::finish(route(&head)));
}

fn route(req: &Head) -> Result<Response, EdgeError> {
    match req.segments().as_slice() {
        ["api", "posts", id, "like"] => {
            let post = parse_post(id)?;
            match req.method {
                Method::Put => like(req, post, true),
                Method::Delete => like(req, post, false),
                _ => Err(respond::method_not_allowed(&req.method, "PUT, DELETE")),
            }
        }
        ["api", "posts", id, "likers"] => {
            let post = parse_post(id)?;
            match req.method {
                Method::Get => likers(req, post),
                _ => Err(respond::method_not_allowed(&req.method, "GET")),
            }
        }
        _ => Err(EdgeError::NotFound("no such route".into())),
    }
}

fn parse_post(raw: &str) -> Result<PostId, EdgeError> {
    raw.parse().map_err(|_| {
        EdgeError::NotFound(format!(
            "there is no post `{}`",
            raw.chars().take(64).collect::<String>()
        ))
    })
}

/// The like and likers scripts' `NOPOST` as the contract's 404; any other failure as itself.
fn no_post_is_404(e: ScriptError, post: PostId) -> EdgeError {
    match e {
        ScriptError::Script(msg) if scripts::is_no_post(&msg) => {
            EdgeError::NotFound(format!("there is no post `{post}`"))
        }
        e => e.into(),
    }
}

/// Likes and unlikes one user may send per minute unless `likes_per_minute` says otherwise;
/// far above any person's tapping, far below what a script can send.
const DEFAULT_LIKES_PER_MINUTE: u64 = 300;

/// How long a `replicated` like waits for a replica before it is a 503.
const DEFAULT_REPLICA_WAIT_MS: u64 = 200;

/// Under `like_durability=replicated`, waits (`WAIT 1`, on the connection that ran the script)
/// until a replica has the like; none in `replica_wait_ms` is a 503, never a false 200. The
/// like may then still be on the primary: a retry is idempotent.
fn confirm_durable(redis: &Redis) -> Result<(), EdgeError> {
    let raw = edge_kit::var("like_durability")?;
    let durability = LikeDurability::parse(&raw).ok_or_else(|| {
        EdgeError::Internal(anyhow::anyhow!(
            "variable `like_durability` is `{raw}`, not memory or replicated"
        ))
    })?;
    let timeout = edge_kit::var_or("replica_wait_ms", DEFAULT_REPLICA_WAIT_MS)?;
    let Some([replicas, ms]) = durability.wait_args(timeout) else {
        return Ok(());
    };
    let acked = int_at(&redis.cmd("WAIT", &[Arg::Int(replicas), Arg::Int(ms)])?, 0)?;
    if acked < replicas {
        return Err(EdgeError::Unavailable(anyhow::anyhow!(
            "{acked} of {replicas} replicas confirmed the like within {ms} ms"
        )));
    }
    Ok(())
}

fn like(req: &Head, post: PostId, on: bool) -> Result<Response, EdgeError> {
    let secret = edge_kit::session_secret()?;
    let (now, now_ms) = edge_kit::now();
    let claims = auth::required_header(req.authorization.as_deref(), secret.as_bytes(), now)?;
    let redis = Redis::open()?;
    rate::check(
        &redis,
        Scope::Like,
        Subject::User(claims.sub),
        edge_kit::var_or("likes_per_minute", DEFAULT_LIKES_PER_MINUTE)?,
    )?;
    let call = LikeCall {
        post,
        user: claims.sub,
        on,
        ts: time::rfc3339_ms(now_ms),
        require_post: REQUIRE_POST,
    };
    let reply = redis
        .eval_owned(&scripts::LIKE, call.keys().into_iter(), call.args())
        .map_err(|e| no_post_is_404(e, post))?;
    let likes = u64::try_from(int_at(&reply, 0)?).unwrap_or(0);
    confirm_durable(&redis)?;
    Ok(respond::json(
        200,
        &LikeResponse {
            post_id: post,
            likes,
            liked: on,
        },
    ))
}

fn likers(req: &Head, post: PostId) -> Result<Response, EdgeError> {
    let secret = edge_kit::session_secret()?;
    auth::from_header(
        req.authorization.as_deref(),
        secret.as_bytes(),
        edge_kit::now().0,
    )?;
    let query = LikersQuery::parse(&req.query).map_err(|e| EdgeError::BadRequest(e.to_string()))?;
    let redis = Redis::open()?;
    // One more than the page tells whether another page exists.
    let call = LikersCall {
        post,
        after: query.after,
        limit: query.limit + 1,
    };
    let reply = redis
        .eval_owned(&scripts::LIKERS, call.keys().into_iter(), call.args())
        .map_err(|e| no_post_is_404(e, post))?;
    let mut ids = Vec::with_capacity(reply.len());
    for i in 0..reply.len() {
        let raw = int_at(&reply, i)?;
        ids.extend(u64::try_from(raw).ok().and_then(UserId::new));
    }
    let more = ids.len() > query.limit as usize;
    ids.truncate(query.limit as usize);

    let names = redis.user_names(&ids)?;
    let users: Vec<User> = ids
        .iter()
        .zip(names)
        .map(|(id, name)| User {
            id: *id,
            name: name.unwrap_or_default(),
        })
        .collect();
    let next_cursor = if more {
        ids.last().map(|u| likers_cursor(*u))
    } else {
        None
    };
    Ok(respond::json(200, &LikersPage { users, next_cursor }))
}
