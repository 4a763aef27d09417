//! The upload's `multipart/form-data` body: read by `likes_images::form` (shared with the
//! native fuzz targets), its refusals turned into this route's problem responses.

use edge_kit::EdgeError;
use futures::Stream;
use likes_images::form::FormError;

pub use likes_images::form::Form;

/// The multipart boundary from the `Content-Type` header; anything but `multipart/form-data`
/// is a 415, since the route accepts no other representation.
pub fn boundary(content_type: Option<&[u8]>) -> Result<String, EdgeError> {
    likes_images::form::boundary(content_type).map_err(refuse)
}

/// Reads the form from `body`, stopping with a 413 as soon as more than `max_body` bytes have
/// arrived (counted on the bytes received, whatever `Content-Length` said).
pub async fn read<S, E>(body: S, boundary: String, max_body: u64) -> Result<Form, EdgeError>
where
    S: Stream<Item = Result<Vec<u8>, E>> + Send + 'static,
    E: std::fmt::Debug + Send + 'static,
{
    likes_images::form::read(body, boundary, max_body)
        .await
        .map_err(refuse)
}

fn refuse(e: FormError) -> EdgeError {
    match e {
        FormError::NotMultipart => EdgeError::UnsupportedMediaType(e.to_string()),
        FormError::TooLarge(max_body) => EdgeError::PayloadTooLarge(max_body),
        FormError::CaptionTooLong => EdgeError::Unprocessable(format!(
            "the caption is longer than {} characters",
            likes_core::api::MAX_CAPTION_CHARS
        )),
        e => EdgeError::BadRequest(e.to_string()),
    }
}
