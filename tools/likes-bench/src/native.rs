//! The like path as a plain native axum server: same token check, same script, same keys as
//! the wasm component. It is the reference the wasm host is measured against.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use likes_core::api::LikeResponse;
use likes_core::problem::Problem;
use likes_core::scripts::{self, LikeCall};
use likes_core::{PostId, session, time};
use redis::aio::MultiplexedConnection;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    listen: String,
    #[arg(long)]
    redis: String,
    #[arg(long)]
    secret: String,
    /// Multiplexed Redis connections, used round-robin (the edge host's default is the same).
    #[arg(long, default_value_t = 4)]
    redis_connections: usize,
}

/// A small round-robin pool of multiplexed connections.
#[derive(Clone)]
pub struct Pool {
    conns: Arc<Vec<MultiplexedConnection>>,
    next: Arc<AtomicUsize>,
}

impl Pool {
    pub async fn connect(url: &str, n: usize) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("redis url")?;
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            conns.push(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .context("connecting to redis")?,
            );
        }
        Ok(Self {
            conns: Arc::new(conns),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn get(&self) -> MultiplexedConnection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }
}

/// Runs the like script for (`post`, `user`); returns the count after.
pub async fn like(
    conn: &mut MultiplexedConnection,
    script: &redis::Script,
    call: &LikeCall,
) -> redis::RedisResult<i64> {
    let mut invocation = script.prepare_invoke();
    for key in call.keys() {
        invocation.key(key);
    }
    for arg in call.args() {
        invocation.arg(arg);
    }
    let reply: (i64, i64) = invocation.invoke_async(conn).await?;
    Ok(reply.0)
}

struct App {
    pool: Pool,
    secret: Vec<u8>,
    script: redis::Script,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let app = Arc::new(App {
        pool: Pool::connect(&args.redis, args.redis_connections).await?,
        secret: args.secret.into_bytes(),
        script: redis::Script::new(scripts::LIKE.source),
    });
    let router = Router::new()
        .route("/api/posts/{id}/like", put(put_like).delete(delete_like))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .context("binding")?;
    axum::serve(listener, router).await.context("serving")
}

async fn put_like(state: State<Arc<App>>, id: Path<String>, headers: HeaderMap) -> Response {
    handle(state, id, headers, true).await
}

async fn delete_like(state: State<Arc<App>>, id: Path<String>, headers: HeaderMap) -> Response {
    handle(state, id, headers, false).await
}

async fn handle(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    on: bool,
) -> Response {
    let Ok(post) = id.parse::<PostId>() else {
        return problem(Problem::not_found("no such post"));
    };
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let claims = match token.map(|t| session::verify(&app.secret, t, d.as_secs())) {
        Some(Ok(c)) => c,
        Some(Err(e)) => return problem(Problem::unauthorized(e.to_string())),
        None => return problem(Problem::unauthorized("missing token")),
    };
    let ts = time::rfc3339_ms(d.as_millis() as u64);
    let call = LikeCall {
        post,
        user: claims.sub,
        on,
        ts,
        require_post: true,
    };
    match like(&mut app.pool.get(), &app.script, &call).await {
        Ok(n) => Json(LikeResponse {
            post_id: post,
            likes: u64::try_from(n).unwrap_or(0),
            liked: on,
        })
        .into_response(),
        Err(e) => {
            tracing::warn!("redis: {e}");
            problem(Problem::unavailable("redis"))
        }
    }
}

fn problem(p: Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [("content-type", likes_core::problem::CONTENT_TYPE)],
        p.to_json(),
    )
        .into_response()
}
