//! The edge HTTP API client. Bodies are the core crate's types; every failure becomes an
//! [`ApiError`] carrying the status and the server's problem+json, which `text` turns into
//! words. Uploads go through `XMLHttpRequest`, the one browser API that reports upload progress.

use gloo_net::http::{Request, RequestBuilder, Response};
use likes_core::PostId;
use likes_core::api::{
    ClientConfig, FeedPage, FeedSort, LikeResponse, Post, SessionRequest, SessionResponse, User,
};
use likes_core::problem::Problem;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{FormData, ProgressEvent, XmlHttpRequest};

/// A failed call: `status` 0 means the network failed before any answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub problem: Option<Problem>,
    pub retry_after: Option<String>,
}

impl ApiError {
    fn network() -> Self {
        Self {
            status: 0,
            problem: None,
            retry_after: None,
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Posts per feed page: a few screens of a phone, so the first page arrives quickly; the
/// next one is fetched well before the end is reached.
const FEED_PAGE: u32 = 12;

fn authorized(builder: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(t) => builder.header("authorization", &format!("Bearer {t}")),
        None => builder,
    }
}

async fn decode<T: DeserializeOwned>(response: Response) -> ApiResult<T> {
    let status = response.status();
    if (200..300).contains(&status) {
        // A 2xx body that is not the contract's is as useless as no answer.
        return response.json::<T>().await.map_err(|_| ApiError {
            status,
            problem: None,
            retry_after: None,
        });
    }
    let retry_after = response.headers().get("retry-after");
    let problem = response.json::<Problem>().await.ok();
    Err(ApiError {
        status,
        problem,
        retry_after,
    })
}

async fn send<T: DeserializeOwned>(request: Result<Request, gloo_net::Error>) -> ApiResult<T> {
    let request = request.map_err(|_| ApiError::network())?;
    let response = request.send().await.map_err(|_| ApiError::network())?;
    decode(response).await
}

/// `GET /api/config`: where the realtime hub is.
pub async fn config() -> ApiResult<ClientConfig> {
    send(Request::get("/api/config").build()).await
}

/// `POST /api/session`: a new user named `name` and their token.
pub async fn sign_in(name: &str) -> ApiResult<SessionResponse> {
    send(Request::post("/api/session").json(&SessionRequest {
        name: name.to_owned(),
    }))
    .await
}

/// `GET /api/me`: whether a stored token is still good.
pub async fn me(token: &str) -> ApiResult<User> {
    send(authorized(Request::get("/api/me"), Some(token)).build()).await
}

/// `GET /api/feed`: one page of `sort`, continuing at `cursor`.
pub async fn feed(
    token: Option<&str>,
    sort: FeedSort,
    cursor: Option<&str>,
) -> ApiResult<FeedPage> {
    let mut url = format!("/api/feed?sort={}&limit={FEED_PAGE}", sort.as_str());
    if let Some(c) = cursor {
        url.push_str("&cursor=");
        url.push_str(&String::from(js_sys::encode_uri_component(c)));
    }
    send(authorized(Request::get(&url), token).build()).await
}

/// `PUT` (like) or `DELETE` (unlike) `/api/posts/{id}/like`.
pub async fn set_like(token: &str, post: PostId, liked: bool) -> ApiResult<LikeResponse> {
    let url = format!("/api/posts/{post}/like");
    let builder = if liked {
        Request::put(&url)
    } else {
        Request::delete(&url)
    };
    send(authorized(builder, Some(token)).build()).await
}

/// `POST /api/posts` with `image` and `caption`, calling `progress` with the fraction of the
/// body sent so far.
pub async fn upload(
    token: &str,
    image: &web_sys::File,
    caption: &str,
    progress: impl Fn(f64) + 'static,
) -> ApiResult<Post> {
    let form = FormData::new().map_err(|_| ApiError::network())?;
    form.append_with_blob("image", image)
        .map_err(|_| ApiError::network())?;
    form.append_with_str("caption", caption)
        .map_err(|_| ApiError::network())?;
    let xhr = XmlHttpRequest::new().map_err(|_| ApiError::network())?;
    xhr.open("POST", "/api/posts")
        .map_err(|_| ApiError::network())?;
    xhr.set_request_header("authorization", &format!("Bearer {token}"))
        .map_err(|_| ApiError::network())?;

    let on_progress = Closure::<dyn Fn(ProgressEvent)>::new(move |e: ProgressEvent| {
        if e.length_computable() && e.total() > 0.0 {
            progress(e.loaded() / e.total());
        }
    });
    if let Ok(upload) = xhr.upload() {
        upload.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
    }
    // The request settles once: `loadend` fires after load, error, abort and timeout alike.
    let mut resolve = None;
    let done = js_sys::Promise::new(&mut |res, _reject| resolve = Some(res));
    let on_end = resolve.map(|resolve| {
        Closure::<dyn FnMut()>::new(move || {
            let _ = resolve.call0(&JsValue::NULL);
        })
    });
    if let Some(on_end) = &on_end {
        xhr.set_onloadend(Some(on_end.as_ref().unchecked_ref()));
    }
    xhr.send_with_opt_form_data(Some(&form))
        .map_err(|_| ApiError::network())?;
    let _ = JsFuture::from(done).await;
    drop(on_progress);
    drop(on_end);

    let status = xhr.status().unwrap_or(0);
    let body = xhr.response_text().ok().flatten().unwrap_or_default();
    if status == 201 || status == 200 {
        return serde_json::from_str(&body).map_err(|_| ApiError {
            status,
            problem: None,
            retry_after: None,
        });
    }
    Err(ApiError {
        status,
        problem: serde_json::from_str(&body).ok(),
        retry_after: xhr.get_response_header("retry-after").ok().flatten(),
    })
}
