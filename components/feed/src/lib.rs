//! Reading posts: `GET /api/feed?sort=new|top&limit&cursor` and `GET /api/posts/{id}`.
//!
//! A page is two Redis round trips whatever its size on one Redis: one call of the core crate's
//! `feed` script (indexes, records, counts, `liked_by_me`, recent likers' ids) and one `HMGET`
//! for the recent likers' names. On a Redis Cluster the script is called once per node and the
//! parts merged (`likes_core::scripts::FeedRead`).

// `#[http_component]` expands to the unsafe export glue of the wasi:http handler.
#![allow(unsafe_code)]

use std::collections::HashMap;

use edge_kit::redis::{Arg, Redis, text_at};
use edge_kit::wire::{self, Head};
use edge_kit::{EdgeError, auth, respond};
use likes_core::api::{FeedCursor, FeedPage, FeedQuery};
use likes_core::scripts::{self, FeedCall, FeedError, FeedReply};
use likes_core::{PostId, UserId};
use spin_sdk::http::{IncomingRequest, Method, Response, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    wire::send(out, &respond::finish(route(&Head::read(&req))));
}

fn route(req: &Head) -> Result<Response, EdgeError> {
    match req.segments().as_slice() {
        ["api", "feed"] => match req.method {
            Method::Get => feed(req),
            _ => Err(respond::method_not_allowed(&req.method, "GET")),
        },
        ["api", "posts", id] => {
            let post: PostId = id.parse().map_err(|_| not_found(id))?;
            match req.method {
                Method::Get => one(req, post),
                _ => Err(respond::method_not_allowed(&req.method, "GET")),
            }
        }
        _ => Err(EdgeError::NotFound("no such route".into())),
    }
}

fn not_found(id: &str) -> EdgeError {
    EdgeError::NotFound(format!(
        "there is no post `{}`",
        id.chars().take(64).collect::<String>()
    ))
}

/// The caller, if signed in; a present but invalid token is a 401.
fn viewer(req: &Head) -> Result<Option<UserId>, EdgeError> {
    let secret = edge_kit::session_secret()?;
    let claims = auth::from_header(
        req.authorization.as_deref(),
        secret.as_bytes(),
        edge_kit::now().0,
    )?;
    Ok(claims.map(|c| c.sub))
}

fn feed(req: &Head) -> Result<Response, EdgeError> {
    let query = FeedQuery::parse(&req.query).map_err(|e| EdgeError::BadRequest(e.to_string()))?;
    let sort = query.sort;
    let viewer = viewer(req)?;
    let (reply, names) = load(&FeedCall::Page(query), viewer)?;
    let next_cursor = FeedCursor::encode(sort, &reply.next);
    let posts = reply
        .posts
        .into_iter()
        .map(|p| p.into_post(&|u| names.get(&u).cloned()))
        .collect();
    Ok(respond::json(200, &FeedPage { posts, next_cursor }))
}

fn one(req: &Head, post: PostId) -> Result<Response, EdgeError> {
    let viewer = viewer(req)?;
    let (reply, names) = load(&FeedCall::One(post), viewer)?;
    let post = reply
        .posts
        .into_iter()
        .next()
        .ok_or_else(|| not_found(&post.to_string()))?;
    Ok(respond::json(
        200,
        &post.into_post(&|u| names.get(&u).cloned()),
    ))
}

/// Runs the feed script (one call per Redis node), then names the recent likers it returned.
fn load(
    call: &FeedCall,
    viewer: Option<UserId>,
) -> Result<(FeedReply, HashMap<UserId, String>), EdgeError> {
    let redis = Redis::open()?;
    let reply = call
        .start(viewer)
        .run(|keys, args| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let args: Vec<Arg<'_>> = args.iter().map(|a| Arg::Str(a)).collect();
            let raw = redis.eval(&scripts::FEED, &keys, &args)?;
            Ok::<_, EdgeError>((0..raw.len()).map(|i| text_at(&raw, i)).collect())
        })?
        .map_err(|e| match e {
            FeedError::Unreached(_) => EdgeError::Unavailable(anyhow::anyhow!("feed: {e}")),
            FeedError::Malformed(_) => EdgeError::Internal(anyhow::anyhow!("feed script: {e}")),
        })?;
    let ids = reply.recent_likers();
    let names: HashMap<UserId, String> = ids
        .iter()
        .zip(redis.user_names(&ids)?)
        .filter_map(|(id, name)| Some((*id, name?)))
        .collect();
    Ok((reply, names))
}
