//! The upload form reader (`likes_images::form`) on arbitrary headers and bodies, fed in
//! arbitrary chunks, and on forms built from arbitrary parts.
//!
//! Properties: the result does not depend on how the body is split into chunks; the body
//! limit holds exactly (a body at the limit is read, one byte more is refused); a body stream
//! that fails never yields a different form; a form built from an image and a caption reads back
//! as exactly those; an accepted caption is within its byte limit and, once validated, within the
//! caption rules.

use futures::executor::block_on;
use likes_core::api::{Caption, MAX_CAPTION_CHARS};
use likes_images::form::{self, CAPTION_MAX_BYTES, Form, FormError};

use crate::input::Input;

/// The body limit of the raw mode: small, so the fuzzer reaches it.
const MAX_BODY: u64 = 2048;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let chunk = usize::from(input.u8() % 64) + 1;
    if mode & 1 == 0 {
        raw(chunk, input.rest());
    } else {
        built(mode >> 1, chunk, input);
    }
}

/// `Content-Type` value, a line feed, then the body.
fn raw(chunk: usize, data: &[u8]) {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let boundary = match form::boundary(Some(content_type)) {
        Ok(b) => b,
        Err(e) => {
            assert_eq!(e, FormError::NotMultipart);
            return;
        }
    };
    let whole = read(vec![body.to_vec()], &boundary, MAX_BODY, false);
    let over = body.len() as u64 > MAX_BODY;
    assert_eq!(
        matches!(whole, Err(FormError::TooLarge(MAX_BODY))),
        over,
        "a {}-byte body in one chunk against a limit of {MAX_BODY}: {whole:?}",
        body.len()
    );
    if !over {
        let chunked = read(split(body, chunk), &boundary, MAX_BODY, false);
        assert_eq!(chunked, whole, "chunks of {chunk} bytes changed the result");
    }
    let failing = read(split(body, chunk), &boundary, MAX_BODY, true);
    if !over {
        assert!(
            failing == whole || matches!(failing, Err(FormError::ReadFailed(_))),
            "a failing stream gave {failing:?}, the whole body {whole:?}"
        );
    }
    if let Ok(form) = &whole {
        check_form(form, body.len());
    }
}

/// A well-formed form from arbitrary parts: `flags` choose whether a caption is sent and in
/// which order; the caption's length comes first in the input, the image is the rest.
fn built(flags: u8, chunk: usize, mut input: Input<'_>) {
    let caption = input.prefixed().to_vec();
    let image = input.rest().to_vec();
    let boundary = format!("fuzz{chunk:02x}{flags:02x}b0undary");
    // A part holding the delimiter ends there: such a form is not the one we meant to build.
    let delimiter = format!("\r\n--{boundary}");
    if contains(&image, delimiter.as_bytes()) || contains(&caption, delimiter.as_bytes()) {
        return;
    }
    let send_caption = flags & 1 == 1;
    let caption_first = flags & 2 == 2;
    let mut parts: Vec<(&str, &[u8])> = vec![("image", &image)];
    if send_caption {
        let part = ("caption", &caption[..]);
        if caption_first {
            parts.insert(0, part);
        } else {
            parts.push(part);
        }
    }
    let body = encode(&boundary, &parts);
    let len = body.len() as u64;
    let got = read(split(&body, chunk), &boundary, len, false);
    let expected = if !send_caption {
        Ok(Form {
            image,
            caption: String::new(),
        })
    } else if caption.len() as u64 > CAPTION_MAX_BYTES {
        Err(FormError::CaptionTooLong)
    } else {
        match String::from_utf8(caption) {
            Ok(caption) => Ok(Form { image, caption }),
            Err(_) => Err(FormError::CaptionNotUtf8),
        }
    };
    assert_eq!(got, expected, "the form did not read back as sent");
    // One byte over the limit is refused, however the form ends.
    assert_eq!(
        read(vec![body], &boundary, len - 1, false),
        Err(FormError::TooLarge(len - 1))
    );
}

fn check_form(form: &Form, body_len: usize) {
    assert!(form.image.len() + form.caption.len() <= body_len);
    assert!(form.caption.len() as u64 <= CAPTION_MAX_BYTES);
    if let Ok(caption) = Caption::parse(&form.caption) {
        let text = caption.as_str();
        assert!(text.chars().count() <= MAX_CAPTION_CHARS);
        assert_eq!(text, text.trim());
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
        assert_eq!(
            Caption::parse(text).as_ref(),
            Ok(&caption),
            "parsing is idempotent"
        );
    }
}

/// Reads `chunks` as the body, optionally followed by a failing read.
fn read(
    chunks: Vec<Vec<u8>>,
    boundary: &str,
    max_body: u64,
    fail: bool,
) -> Result<Form, FormError> {
    let mut items: Vec<Result<Vec<u8>, &'static str>> = chunks.into_iter().map(Ok).collect();
    if fail {
        items.push(Err("connection reset"));
    }
    block_on(form::read(
        futures::stream::iter(items),
        boundary.to_owned(),
        max_body,
    ))
}

fn split(body: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    body.chunks(chunk).map(<[u8]>::to_vec).collect()
}

fn encode(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = if *name == "image" {
            "form-data; name=\"image\"; filename=\"upload.jpg\"\r\nContent-Type: image/jpeg"
        } else {
            "form-data; name=\"caption\""
        };
        body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
