//! hyper's own answers to requests it cannot parse (400 on a malformed or duplicate
//! `Content-Length`, 414 on an over-long URI, 431 on too many or too large headers), rewritten
//! as problem+json like every other error.
//!
//! hyper writes those answers itself, before any service runs, as a bare head
//! (`content-length: 0`, `date`, `connection: close`, nothing else) and then closes the
//! connection; it offers no hook to give them a body (hyperium/hyper#3844). So the connection's
//! writer recognises exactly that head — one whole head of one of those statuses, with only
//! hyper's headers and nothing after it — and sends a problem document in its place. Every response our service
//! produces has a `content-type`, so none of them can match. Remove this once hyper lets a
//! server shape its parse-error responses.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use likes_core::problem::{CONTENT_TYPE, Problem};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream whose writes pass through unchanged, except hyper's bare parse-error answers.
#[derive(Debug)]
pub struct ProblemStream<S> {
    inner: S,
    /// The replacement being written, and how much of it is out.
    replacing: Option<(Vec<u8>, usize)>,
}

impl<S> ProblemStream<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            replacing: None,
        }
    }
}

/// The problem response that stands for hyper's bare `head`, if `head` is one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let head = text.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let (status, detail) = match status_line.strip_prefix("HTTP/1.1 ")?.get(..3)? {
        "400" => (
            400,
            "the request is not valid HTTP/1.1 (e.g. a malformed or repeated Content-Length)",
        ),
        "414" => (414, "the request's path and query are too long"),
        "431" => (
            431,
            "the request has too many headers, or they are too large",
        ),
        _ => return None,
    };
    let mut names: Vec<String> = lines
        .map(|l| l.split(':').next().unwrap_or("").to_ascii_lowercase())
        .collect();
    names.sort();
    let bare_length = text
        .to_ascii_lowercase()
        .contains("\r\ncontent-length: 0\r\n");
    // hyper's answer: `content-length: 0`, `date`, and `connection: close` when it closes.
    let hypers =
        names == ["content-length", "date"] || names == ["connection", "content-length", "date"];
    if !hypers || !bare_length {
        return None;
    }
    let title = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Bad Request");
    let body = Problem::new(status, title, detail).to_json();
    let mut out = format!(
        "{status_line}\r\ncontent-type: {CONTENT_TYPE}\r\ncache-control: no-store\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl<S: AsyncRead + Unpin> AsyncRead for ProblemStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProblemStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            // Cheap first test: only a head that starts like hyper's answers is looked at.
            let candidate = buf.starts_with(b"HTTP/1.1 4") && buf.len() < 512;
            match candidate.then(|| replacement(buf)).flatten() {
                Some(out) => this.replacing = Some((out, 0)),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        // hyper retries the same buffer after `Pending`: keep writing the replacement, and
        // report the original as written once all of it is out.
        while let Some((out, done)) = this.replacing.as_mut() {
            if *done == out.len() {
                this.replacing = None;
                return Poll::Ready(Ok(buf.len()));
            }
            match Pin::new(&mut this.inner).poll_write(cx, &out[*done..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *done += n,
                other => return other,
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // A bare head is always one buffer; anything else goes out as it came. Counted
        // without collecting: this runs for every response the edge writes.
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(one), None) = (non_empty.next(), non_empty.next())
            && (self.replacing.is_some() || one.starts_with(b"HTTP/1.1 4"))
        {
            return self.poll_write(cx, one);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "date: Wed, 02 Dec 2026 03:00:00 GMT";

    #[test]
    fn hypers_bare_answers_become_problems() {
        for (status, reason) in [
            (400, "Bad Request"),
            (414, "URI Too Long"),
            (431, "Request Header Fields Too Large"),
        ] {
            let bare = format!(
                "HTTP/1.1 {status} {reason}\r\nconnection: close\r\ncontent-length: 0\r\n{DATE}\r\n\r\n"
            );
            let out =
                String::from_utf8(replacement(bare.as_bytes()).expect("replaced")).expect("utf-8");
            let (head, body) = out.split_once("\r\n\r\n").expect("a head");
            assert!(head.starts_with(&format!("HTTP/1.1 {status} {reason}\r\n")));
            assert!(head.contains("content-type: application/problem+json"));
            assert!(head.contains(&format!("content-length: {}", body.len())));
            let problem: serde_json::Value = serde_json::from_str(body).expect("json");
            assert_eq!(problem["status"], status);
            assert_eq!(problem["title"], reason);
        }
    }

    #[test]
    fn responses_the_service_made_pass_unchanged() {
        for head in [
            // Our own problems carry a content type.
            format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n{DATE}\r\n\r\n"
            ),
            // A body follows the head.
            format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n{DATE}\r\n\r\nx"),
            // Another status.
            format!("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n{DATE}\r\n\r\n"),
            format!(
                "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 3\r\n{DATE}\r\n\r\n"
            ),
            // Not a head at all.
            "HTTP/1.1 400 is the start of this body, not a head".to_owned(),
        ] {
            assert_eq!(replacement(head.as_bytes()), None, "{head:?}");
        }
    }

    #[tokio::test]
    async fn a_replacement_is_written_whole_however_the_writes_split() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(7);
        let mut stream = ProblemStream::new(server);
        let bare = format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n{DATE}\r\n\r\n"
        );
        let reader = tokio::spawn(async move {
            let mut out = String::new();
            let mut client = client;
            client.read_to_string(&mut out).await.expect("read");
            out
        });
        stream.write_all(bare.as_bytes()).await.expect("write");
        stream.shutdown().await.expect("shutdown");
        drop(stream);
        let out = reader.await.expect("reader");
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out.ends_with('}'), "{out}");
    }
}
