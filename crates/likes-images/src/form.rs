//! The upload's `multipart/form-data` body, parsed with `multer` while it streams in.
//!
//! Pure (no `wasi:http`, no edge types) so the `posts` component and the native fuzz targets run
//! the same parser; the component maps [`FormError`] to its problem responses.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use multer::{Constraints, Multipart, SizeLimit};

/// The multipart fields of an upload; any other field is refused.
pub const IMAGE: &str = "image";
pub const CAPTION: &str = "caption";
/// A caption is at most 280 characters of up to 4 bytes; more is not a caption.
pub const CAPTION_MAX_BYTES: u64 = 280 * 4 + 64;

/// What the upload form carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub image: Vec<u8>,
    pub caption: String,
}

/// Why a form was refused; every message is safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The `Content-Type` is not `multipart/form-data` with a boundary (415).
    #[error("send the post as multipart/form-data with an `image` part")]
    NotMultipart,
    /// More bytes arrived than the body limit (carried here) allows (413).
    #[error("the body is over the limit of {0} bytes")]
    TooLarge(u64),
    /// The `caption` part is over [`CAPTION_MAX_BYTES`] (422).
    #[error("the caption is over {CAPTION_MAX_BYTES} bytes")]
    CaptionTooLong,
    /// A part other than one `image` and one `caption`; this and the rest are 400s.
    #[error("the form may carry one `image` part and one `caption` part")]
    UnexpectedPart,
    #[error("the caption is not UTF-8 text")]
    CaptionNotUtf8,
    #[error("the form has no `image` part")]
    NoImage,
    /// The body stream itself failed; holds the cause.
    #[error("the body could not be read: {0}")]
    ReadFailed(String),
    /// Not a well-formed multipart body; holds `multer`'s description.
    #[error("malformed multipart body: {0}")]
    Malformed(String),
}

/// The multipart boundary from the `Content-Type` header; anything but `multipart/form-data`
/// is [`FormError::NotMultipart`], since the route accepts no other representation.
pub fn boundary(content_type: Option<&[u8]>) -> Result<String, FormError> {
    let value = content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("");
    multer::parse_boundary(value).map_err(|_| FormError::NotMultipart)
}

/// Reads the form from `body`, stopping with [`FormError::TooLarge`] as soon as more than
/// `max_body` bytes have arrived (counted on the bytes received, whatever `Content-Length` said).
pub async fn read<S, E>(body: S, boundary: String, max_body: u64) -> Result<Form, FormError>
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
                    Some(String::from_utf8(bytes.to_vec()).map_err(|_| FormError::CaptionNotUtf8)?);
            }
            _ => return Err(FormError::UnexpectedPart),
        }
    }
    let image = image.ok_or(FormError::NoImage)?;
    Ok(Form {
        image,
        caption: caption.unwrap_or_default(),
    })
}

fn refuse(e: multer::Error, max_body: u64) -> FormError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => FormError::TooLarge(max_body),
        multer::Error::FieldSizeExceeded { .. } => FormError::CaptionTooLong,
        multer::Error::UnknownField { .. } => FormError::UnexpectedPart,
        multer::Error::StreamReadFailed(cause) => FormError::ReadFailed(cause.to_string()),
        e => FormError::Malformed(e.to_string()),
    }
}
