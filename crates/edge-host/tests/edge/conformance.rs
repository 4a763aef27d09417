//! Our host against the real Spin, response by response: one fixed sequence of requests goes to
//! each runtime (each with its own fresh Redis, the same `spin.toml` and `.wasm` files), and
//! every answer must match in status, body and the headers a client relies on, after the
//! normalisation below. The differences we intend are listed in `differences::INTENDED`, each
//! with its reason; each one listed for a step here must still be seen, so the list cannot go
//! stale.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::Digest;
use testkit::TestRedis;

use crate::differences::INTENDED;
use crate::support::{Runtime, TEST_SECRET, TestEdge, image_part, small_jpeg};

/// The response headers a client relies on; the rest (`date`, `transfer-encoding`, …) are the
/// transport's and may differ.
const COMPARED_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "etag",
    "retry-after",
    "allow",
    "content-encoding",
    "location",
    "vary",
];

/// One request of the fixed sequence. `as_user` signs the request with the token that the
/// earlier `POST /api/session` for that name returned.
struct Step {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    as_user: Option<&'static str>,
    body: Body,
    headers: &'static [(&'static str, &'static str)],
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
    Image(u32, &'static str),
}

fn step(name: &'static str, method: &'static str, path: &'static str) -> Step {
    Step {
        name,
        method,
        path,
        as_user: None,
        body: Body::None,
        headers: &[],
    }
}

impl Step {
    fn by(mut self, user: &'static str) -> Self {
        self.as_user = Some(user);
        self
    }
    fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }
    fn raw(mut self, content_type: &'static str, body: Vec<u8>) -> Self {
        self.body = Body::Raw(content_type, body);
        self
    }
    fn image(mut self, seed: u32, caption: &'static str) -> Self {
        self.body = Body::Image(seed, caption);
        self
    }
    fn header(mut self, headers: &'static [(&'static str, &'static str)]) -> Self {
        self.headers = headers;
        self
    }
}

/// The fixed sequence: the whole contract once, its errors included.
fn sequence() -> Vec<Step> {
    vec![
        step("health", "GET", "/api/health"),
        step("config", "GET", "/api/config"),
        step("sign in ann", "POST", "/api/session").json(json!({"name": "ann"})),
        step("sign in bob", "POST", "/api/session").json(json!({"name": " bob "})),
        step("a blank name", "POST", "/api/session").json(json!({"name": "  "})),
        step("malformed session json", "POST", "/api/session")
            .raw("application/json", b"{\"name\":".to_vec()),
        step("a session body as text", "POST", "/api/session")
            .raw("text/plain", br#"{"name":"ann"}"#.to_vec()),
        step("a session body over the JSON limit", "POST", "/api/session").raw(
            "application/json",
            vec![b' '; likes_core::api::MAX_JSON_BODY_BYTES + 1],
        ),
        step("an oversized session body", "POST", "/api/session")
            .raw("application/json", vec![b' '; 11 * 1024 * 1024]),
        step("session by GET", "GET", "/api/session"),
        step("me", "GET", "/api/me").by("ann"),
        step("me without a token", "GET", "/api/me"),
        step("me with a forged token", "GET", "/api/me").header(&[(
            "authorization",
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1XzEifQ.AAAA",
        )]),
        step("an empty feed", "GET", "/api/feed"),
        step("ann posts", "POST", "/api/posts")
            .by("ann")
            .image(1, "first light"),
        step("bob posts", "POST", "/api/posts")
            .by("bob")
            .image(2, "second"),
        step("an upload that is no image", "POST", "/api/posts")
            .by("ann")
            .raw("multipart/form-data; boundary=x", {
                b"--x\r\ncontent-disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\nnot an image\r\n--x--\r\n".to_vec()
            }),
        step("an upload without a token", "POST", "/api/posts").image(3, "nobody"),
        step("a post", "GET", "/api/posts/p_1"),
        step("an unknown post", "GET", "/api/posts/p_999"),
        step("a malformed post id", "GET", "/api/posts/nope"),
        step("ann likes p_1", "PUT", "/api/posts/p_1/like").by("ann"),
        step("ann likes p_1 again", "PUT", "/api/posts/p_1/like").by("ann"),
        step("bob likes p_1", "PUT", "/api/posts/p_1/like").by("bob"),
        step("a like without a token", "PUT", "/api/posts/p_1/like"),
        step("a like by POST", "POST", "/api/posts/p_1/like").by("ann"),
        step("likers", "GET", "/api/posts/p_1/likers"),
        step("likers, one per page", "GET", "/api/posts/p_1/likers?limit=1"),
        step("likers, too many per page", "GET", "/api/posts/p_1/likers?limit=500"),
        step("likers of an unknown post", "GET", "/api/posts/p_999/likers"),
        step("a like by a user beyond the id range", "PUT", "/api/posts/p_1/like").header(&[(
            "authorization",
            "Bearer {beyond_range_token}",
        )]),
        step("bob unlikes p_1", "DELETE", "/api/posts/p_1/like").by("bob"),
        step("the post as ann", "GET", "/api/posts/p_1").by("ann"),
        step("the new feed", "GET", "/api/feed?sort=new"),
        step("the top feed", "GET", "/api/feed?sort=top&limit=1"),
        step("an unknown sort", "GET", "/api/feed?sort=old"),
        step("a feed page too large", "GET", "/api/feed?limit=51"),
        step("a bad cursor", "GET", "/api/feed?sort=top&cursor=n5"),
        step("a thumbnail", "GET", "/api/images/{image}?size=thumb"),
        step("the full image by HEAD", "HEAD", "/api/images/{image}?size=full"),
        step("a thumbnail revalidated", "GET", "/api/images/{image}?size=thumb")
            .header(&[("if-none-match", "{thumb_etag}")]),
        step("an unknown image", "GET", "/api/images/0123456789abcdef"),
        step("the app", "GET", "/"),
        step("an app route", "GET", "/p/1"),
        step("a missing asset", "GET", "/assets/missing.js"),
        step("an unknown api path", "GET", "/api/nope"),
    ]
}

/// What a client sees of one answer, normalised.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Value,
}

/// Runs the sequence against `edge` and returns each step's normalised answer.
async fn run_sequence(edge: &TestEdge) -> Vec<(&'static str, Seen)> {
    let mut tokens: BTreeMap<&str, String> = BTreeMap::new();
    let mut placeholders: BTreeMap<&str, String> = BTreeMap::new();
    // Correctly signed, for a user id above 2^53 − 1 (which the scripts' doubles cannot tell
    // from its neighbour): refused at the boundary.
    let far_future = r#"{"sub":"u_9007199254740993","name":"eve","iat":1,"exp":99999999999}"#;
    placeholders.insert(
        "beyond_range_token",
        likes_core::session::sign(TEST_SECRET.as_bytes(), far_future.as_bytes()),
    );
    let mut seen = Vec::new();
    for step in sequence() {
        let fill = |s: &str| {
            placeholders
                .iter()
                .fold(s.to_owned(), |s, (k, v)| s.replace(&format!("{{{k}}}"), v))
        };
        let method = reqwest::Method::from_bytes(step.method.as_bytes()).expect("method");
        let mut req = edge.client().request(method, edge.url(&fill(step.path)));
        if let Some(user) = step.as_user {
            req = req.bearer_auth(&tokens[user]);
        }
        for (name, value) in step.headers {
            req = req.header(*name, fill(value));
        }
        req = match step.body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw(content_type, bytes) => req.header("content-type", content_type).body(bytes),
            Body::Image(seed, caption) => req.multipart(
                reqwest::multipart::Form::new()
                    .part("image", image_part(small_jpeg(seed)))
                    .text("caption", caption),
            ),
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", step.name));
        let status = resp.status().as_u16();
        let headers: BTreeMap<String, String> = COMPARED_HEADERS
            .iter()
            .filter_map(|h| {
                let v = resp.headers().get(*h)?.to_str().ok()?;
                Some(((*h).to_owned(), v.to_owned()))
            })
            .collect();
        let bytes = resp.bytes().await.expect("body");
        let mut body = match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => v,
            // Not JSON (images, the app): compared by length and digest.
            Err(_) => json!({
                "bytes": bytes.len(),
                "sha256": format!("{:x}", sha2::Sha256::digest(&bytes)),
            }),
        };
        if let Some(token) = body["token"].as_str() {
            let user = body["user"]["name"].as_str().expect("user name");
            let name = if user == "ann" { "ann" } else { "bob" };
            tokens.insert(name, token.to_owned());
        }
        if step.name == "ann posts" {
            let id = body["image"]["id"].as_str().expect("image id").to_owned();
            placeholders.insert("image", id);
        }
        if step.name == "a thumbnail"
            && let Some(etag) = headers.get("etag")
        {
            placeholders.insert("thumb_etag", etag.clone());
        }
        normalise(&mut body);
        seen.push((
            step.name,
            Seen {
                status,
                headers,
                body,
            },
        ));
    }
    seen
}

/// Tokens carry their issue time, and posts their creation time: both become placeholders.
fn normalise(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match k.as_str() {
                    "token" => *v = json!("<token>"),
                    "created_at" => *v = json!("<timestamp>"),
                    _ => normalise(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_spin_answer_the_same_sequence_alike() {
    let (host_redis, spin_redis) = (TestRedis::start(), TestRedis::start());
    let Some(spin) = TestEdge::app_on(Runtime::Spin, &spin_redis).await else {
        return;
    };
    let host = TestEdge::app_on(Runtime::Host, &host_redis)
        .await
        .expect("the host always runs");
    let (ours, theirs) = (run_sequence(&host).await, run_sequence(&spin).await);

    let mut found = Vec::new();
    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        if a.status != b.status {
            found.push((
                *name,
                "status".to_owned(),
                format!("{} vs {}", a.status, b.status),
            ));
        }
        if a.body != b.body {
            found.push((
                *name,
                "body".to_owned(),
                format!("{} vs {}", a.body, b.body),
            ));
        }
        for h in COMPARED_HEADERS {
            if a.headers.get(*h) != b.headers.get(*h) {
                found.push((
                    *name,
                    (*h).to_owned(),
                    format!("{:?} vs {:?}", a.headers.get(*h), b.headers.get(*h)),
                ));
            }
        }
    }
    let unexpected: Vec<_> = found
        .iter()
        .filter(|(step, part, _)| {
            !INTENDED
                .iter()
                .any(|i| i.case == *step && i.part == part.as_str())
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "host and Spin differ where no intended difference is listed (host vs spin):\n{unexpected:#?}"
    );
    let steps: Vec<&str> = sequence().iter().map(|s| s.name).collect();
    for intended in INTENDED.iter().filter(|i| steps.contains(&i.case)) {
        assert!(
            found
                .iter()
                .any(|(step, part, _)| *step == intended.case && part == intended.part),
            "listed difference no longer seen: {} / {} ({})",
            intended.case,
            intended.part,
            intended.reason
        );
    }
}
