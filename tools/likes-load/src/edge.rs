//! The edge HTTP API as the generator calls it: one shared HTTP/1.1 keep-alive pool, and the
//! few requests a virtual user makes (sign in, upload, like, unlike).

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use likes_core::api::{Post, SessionRequest, SessionResponse};

/// Longest a single request may take before it counts as an error (status 0 in the report).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What became of one request: a status, or no answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(StatusCode),
    /// Connection failure or timeout: the request may or may not have been applied.
    NoAnswer,
    /// Never sent: the generator's backlog was full (the server is far behind the rate).
    Dropped,
}

impl Outcome {
    pub fn is_success(self) -> bool {
        matches!(self, Self::Status(s) if s.is_success())
    }

    /// The label errors are grouped by in the report.
    pub fn label(self) -> String {
        match self {
            Self::Status(s) => s.as_u16().to_string(),
            Self::NoAnswer => "no answer".into(),
            Self::Dropped => "dropped (generator backlog full)".into(),
        }
    }
}

/// A pooled client for one edge.
#[derive(Clone)]
pub struct Edge {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    authority: String,
}

impl Edge {
    /// A client for `base` (`http://host:port`), keeping up to `pool` idle connections.
    pub fn new(base: &str, pool: usize) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().with_context(|| format!("edge URL `{base}`"))?;
        let authority = uri
            .authority()
            .with_context(|| format!("edge URL `{base}` has no host"))?
            .to_string();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            client,
            base,
            authority,
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Bytes)>,
    ) -> (Outcome, Bytes) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(http::header::HOST, &self.authority);
        if let Some(t) = token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some((content_type, bytes)) => {
                req = req.header(http::header::CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let Ok(req) = req.body(body) else {
            return (Outcome::NoAnswer, Bytes::new());
        };
        let call = async {
            let resp = self.client.request(req).await.ok()?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.ok()?.to_bytes();
            Some((status, bytes))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
            Ok(Some((status, bytes))) => (Outcome::Status(status), bytes),
            _ => (Outcome::NoAnswer, Bytes::new()),
        }
    }

    /// `POST /api/session`: a new user and its token.
    pub async fn create_session(&self, name: &str) -> anyhow::Result<SessionResponse> {
        let body = serde_json::to_vec(&SessionRequest { name: name.into() })?;
        let (outcome, bytes) = self
            .send(
                Method::POST,
                "/api/session",
                None,
                Some(("application/json", body.into())),
            )
            .await;
        anyhow::ensure!(
            outcome == Outcome::Status(StatusCode::CREATED),
            "POST /api/session: {} {}",
            outcome.label(),
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).context("POST /api/session body")
    }

    /// `POST /api/posts` with a multipart `image` and `caption`: the outcome and, on 201, the post.
    pub async fn create_post(
        &self,
        token: &str,
        jpeg: &[u8],
        caption: &str,
    ) -> (Outcome, Option<Post>) {
        let (content_type, body) = multipart(jpeg, caption);
        let (outcome, bytes) = self
            .send(
                Method::POST,
                "/api/posts",
                Some(token),
                Some((&content_type, body)),
            )
            .await;
        let post = if outcome == Outcome::Status(StatusCode::CREATED) {
            serde_json::from_slice(&bytes).ok()
        } else {
            None
        };
        (outcome, post)
    }
}

/// A `multipart/form-data` body with the two parts of an upload.
fn multipart(jpeg: &[u8], caption: &str) -> (String, Bytes) {
    const BOUNDARY: &str = "likes-load-7c1f0b2e";
    let mut body = Vec::with_capacity(jpeg.len() + 512);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\n{caption}\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"load.jpg\"\r\n\
             Content-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(jpeg);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={BOUNDARY}"),
        body.into(),
    )
}

/// A small JPEG whose pixels depend on `n`, so every upload is a distinct image.
pub fn jpeg(n: u64) -> anyhow::Result<Vec<u8>> {
    let img = image::RgbImage::from_fn(96, 64, |x, y| {
        let v = n.wrapping_mul(2_654_435_761);
        image::Rgb([
            (x as u64 * 2 + v) as u8,
            (y as u64 * 3 + (v >> 8)) as u8,
            ((x + y) as u64 + (v >> 16)) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&img)
        .context("encoding a JPEG")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_images_are_distinct_jpegs() {
        let a = jpeg(1).expect("jpeg");
        let b = jpeg(2).expect("jpeg");
        assert_eq!(&a[..3], &[0xFF, 0xD8, 0xFF]);
        assert_ne!(a, b);
        let (ct, body) = multipart(&a, "hi");
        assert!(ct.starts_with("multipart/form-data; boundary="));
        assert!(body.len() > a.len());
    }
}
