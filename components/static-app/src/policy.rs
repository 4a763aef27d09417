//! The pure decisions of the static server: which paths are safe, their MIME type, their
//! caching. No I/O, so every rule is easy to read and to test end to end.

/// Turns a request path into a path relative to the mount, or `None` when it is not safe.
///
/// The path is percent-decoded exactly once; any segment that is empty-after-decoding, `.`,
/// `..`, or contains a slash, backslash, NUL or control character is refused, so neither
/// `/../x`, `/%2e%2e/x`, `/%2F..`, `//etc/passwd` nor `\..\` can leave the mount.
pub fn safe_relative_path(path: &str) -> Option<String> {
    let mut out = Vec::new();
    let trimmed = path.strip_prefix('/')?;
    if trimmed.is_empty() {
        return Some("index.html".to_owned());
    }
    let segments: Vec<&str> = trimmed.split('/').collect();
    for (i, raw) in segments.iter().enumerate() {
        if raw.is_empty() {
            // Only a trailing slash (`/dir/`) is allowed; `//` anywhere else is refused.
            if i + 1 == segments.len() {
                continue;
            }
            return None;
        }
        let decoded = percent_decode(raw)?;
        if decoded == "."
            || decoded == ".."
            || decoded
                .chars()
                .any(|c| c == '/' || c == '\\' || c.is_control())
        {
            return None;
        }
        out.push(decoded);
    }
    Some(out.join("/"))
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A path without a file extension in its last segment is an app route (`/p/42`), served the
/// app shell; a missing `app.js` is a real 404.
pub fn is_app_route(relative: &str) -> bool {
    // `/api/…` belongs to the API: a path there that no component claims is a 404, never the
    // app shell (a client must not mistake HTML for an API answer).
    if relative == "api" || relative.starts_with("api/") {
        return false;
    }
    let last = relative.rsplit('/').next().unwrap_or("");
    !last.contains('.')
}

/// The `Content-Type` for a file name.
pub fn mime_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `index.html` must be revalidated so a deploy is picked up at once; files whose names carry
/// a content hash (`app-3f9a1c2e.wasm`) never change and are cached for a year.
pub fn cache_control(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".html") {
        return "no-cache";
    }
    let stem = name.split('.').next().unwrap_or(name);
    let hashed = stem
        .rsplit_once(['-', '_'])
        .is_some_and(|(_, h)| h.len() >= 8 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if hashed {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    }
}
