//! The upload's `multipart/form-data` body, parsed with `multer` while it streams in.

use bytes::Bytes;
use edge_kit::EdgeError;
use futures::{Stream, StreamExt};
use multer::{Constraints, Multipart, SizeLimit};

/// The multipart fields of an upload; any other field is refused.
const IMAGE: &str = "image";
const CAPTION: &str = "caption";
/// A caption is at most 280 characters of up to 4 bytes; more is not a caption.
const CAPTION_MAX_BYTES: u64 = 280 * 4 + 64;

/// What the upload form carried.
pub struct Form {
    pub image: Vec<u8>,
    pub caption: String,
}

/// The multipart boundary from the `Content-Type` header; anything but `multipart/form-data`
/// is a 415, since the route accepts no other representation.
pub fn boundary(content_type: Option<&[u8]>) -> Result<String, EdgeError> {
    let value = content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("");
    multer::parse_boundary(value).map_err(|_| {
        EdgeError::UnsupportedMediaType(
            "send the post as multipart/form-data with an `image` part".into(),
        )
    })
}

/// Reads the form from `body`, stopping with a 413 as soon as more than `max_body` bytes have
/// arrived (counted on the bytes received, whatever `Content-Length` said).
pub async fn read<S, E>(body: S, boundary: String, max_body: u64) -> Result<Form, EdgeError>
where
    S: Stream<Item = Result<Vec<u8>, E>> + Send + 'static,
    E: std::fmt::Debug + Send + 'static,
{
    let body = body.map(|chunk| {
        chunk
            .map(Bytes::from)
            .map_err(|e| std::io::Error::other(format!("reading the body: {e:?}")))
    });
    let constraints = Constraints::new()
        .allowed_fields(vec![IMAGE, CAPTION])
        .size_limit(
            SizeLimit::new()
                .whole_stream(max_body)
                .for_field(CAPTION, CAPTION_MAX_BYTES),
        );
    let mut multipart = Multipart::with_constraints(body, boundary, constraints);
    let mut image = None;
    let mut caption = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| refuse(e, max_body))?
    {
        match field.name() {
            Some(IMAGE) if image.is_none() => {
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| refuse(e, max_body))? {
                    bytes.extend_from_slice(&chunk);
                }
                image = Some(bytes);
            }
            // A second `caption` is as malformed as a second `image`: one of each, at most.
            Some(CAPTION) if caption.is_none() => {
                let bytes = field.bytes().await.map_err(|e| refuse(e, max_body))?;
                caption =
                    Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
                        EdgeError::BadRequest("the caption is not UTF-8 text".into())
                    })?);
            }
            _ => {
                return Err(EdgeError::BadRequest(
                    "the form may carry one `image` part and one `caption` part".into(),
                ));
            }
        }
    }
    let image =
        image.ok_or_else(|| EdgeError::BadRequest("the form has no `image` part".into()))?;
    Ok(Form {
        image,
        caption: caption.unwrap_or_default(),
    })
}

fn refuse(e: multer::Error, max_body: u64) -> EdgeError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => EdgeError::PayloadTooLarge(max_body),
        multer::Error::FieldSizeExceeded { .. } => EdgeError::Unprocessable(format!(
            "the caption is longer than {} characters",
            likes_core::api::MAX_CAPTION_CHARS
        )),
        multer::Error::UnknownField { .. } => EdgeError::BadRequest(
            "the form may carry one `image` part and one `caption` part".into(),
        ),
        multer::Error::StreamReadFailed(cause) => {
            EdgeError::BadRequest(format!("the body could not be read: {cause}"))
        }
        e => EdgeError::BadRequest(format!("malformed multipart body: {e}")),
    }
}
