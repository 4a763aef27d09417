//! Sign-in: `POST /api/session` creates a user and returns a session token; `GET /api/me`
//! tells the caller who the token says they are.

// `#[http_component]` expands to the unsafe export glue of the wasi:http handler.
#![allow(unsafe_code)]

use edge_kit::redis::{Redis, int_at};
use edge_kit::{EdgeError, auth, rate, respond};
use likes_core::api::{DisplayName, SessionRequest, SessionResponse, User};
use likes_core::rate::{Scope, Subject};
use likes_core::scripts::{self, SessionCall};
use likes_core::{UserId, session, time};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond::finish(route(&req))
}

fn route(req: &Request) -> Result<Response, EdgeError> {
    match (req.method(), req.path()) {
        (Method::Post, "/api/session") => create(req),
        (_, "/api/session") => Err(respond::not_allowed(req, "POST")),
        (Method::Get, "/api/me") => me(req),
        (_, "/api/me") => Err(respond::not_allowed(req, "GET")),
        _ => Err(EdgeError::NotFound("no such route".into())),
    }
}

/// New sessions one client network may create per minute unless `sessions_per_minute` says
/// otherwise: each is a new user, so this also bounds how fast one address can mint identities.
const DEFAULT_SESSIONS_PER_MINUTE: u64 = 20;

fn create(req: &Request) -> Result<Response, EdgeError> {
    let body: SessionRequest = respond::json_body(req)?;
    let name = DisplayName::parse(&body.name)
        .map_err(|e| EdgeError::Unprocessable(format!("`name`: {e}")))?;
    let secret = edge_kit::session_secret()?;
    let ttl = edge_kit::var("session_ttl_secs")?
        .parse::<u64>()
        .map_err(|e| EdgeError::Internal(anyhow::anyhow!("session_ttl_secs: {e}")))?;
    let (now, now_ms) = edge_kit::now();

    let redis = Redis::open()?;
    let forwarded: Vec<&[u8]> = req
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, v)| v.as_bytes())
        .collect();
    let client = rate::client(
        req.header("spin-client-addr").map(|v| v.as_bytes()),
        &forwarded,
    )?;
    rate::check(
        &redis,
        Scope::Session,
        Subject::Client(client),
        edge_kit::var_or("sessions_per_minute", DEFAULT_SESSIONS_PER_MINUTE)?,
    )?;
    let call = SessionCall {
        name: name.as_str(),
        ts: &time::rfc3339_ms(now_ms),
    };
    let reply = redis.eval_owned(&scripts::SESSION, call.keys().into_iter(), call.args())?;
    let raw = int_at(&reply, 0)?;
    let id = u64::try_from(raw)
        .ok()
        .and_then(UserId::new)
        .ok_or_else(|| EdgeError::Internal(anyhow::anyhow!("session script returned id {raw}")))?;
    let token = session::issue(secret.as_bytes(), id, name.as_str(), now, ttl);
    Ok(respond::json(
        201,
        &SessionResponse {
            token,
            user: User {
                id,
                name: name.as_str().to_owned(),
            },
        },
    ))
}

fn me(req: &Request) -> Result<Response, EdgeError> {
    let secret = edge_kit::session_secret()?;
    let claims = auth::required(req, secret.as_bytes(), edge_kit::now().0)?;
    Ok(respond::json(
        200,
        &User {
            id: claims.sub,
            name: claims.name,
        },
    ))
}
