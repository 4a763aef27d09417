//! A minimal keep-alive HTTP/1.1 client connection for the closed-loop driver.
//!
//! The load generator shares the machine's two cores with the server under test, so every µs
//! it spends is taken from the server. With a hyper client connection (a connection task and a
//! request task per connection, woken in turn) the generator used ~19 µs of CPU per request,
//! with this one 16–19 (`docs/BENCHMARKS.md`, run 6): it writes a prebuilt request and parses
//! the answer with `httparse` (hyper's own parser) on the calling task. It understands exactly what the targets send: a status line, headers and
//! a `content-length` body.

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most headers a response may carry.
const MAX_HEADERS: usize = 32;

/// One keep-alive connection and its read buffer.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    /// Connects to `addr` with Nagle off.
    pub async fn open(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends one complete request (head and body, already encoded) and reads the response
    /// through its body; returns the status code.
    pub async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            if let Some((status, head, body)) = parse(&self.buf)? {
                while self.buf.len() < head + body {
                    self.fill().await?;
                }
                // Responses never run ahead of requests, so nothing follows the body.
                self.buf.clear();
                return Ok(status);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }
}

/// The status, head length and body length of a complete response head in `buf`, or `None`
/// when the head is not all there yet.
fn parse(buf: &[u8]) -> anyhow::Result<Option<(u16, usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = response.parse(buf)? else {
        return Ok(None);
    };
    let status = response.code.context("a response without a status")?;
    let mut length = None;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(std::str::from_utf8(h.value)?.trim().parse::<usize>()?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked responses are not supported by the benchmark client");
        }
    }
    Ok(Some((status, head, length.unwrap_or(0))))
}

/// Encodes a request with an empty body.
pub fn request(method: &str, path: &str, host: &str, authorization: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: {authorization}\r\ncontent-length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_complete_head_and_its_body_length() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{\"liked\":1}\n";
        let (status, head, body) = parse(raw).expect("a valid head").expect("a complete head");
        assert_eq!((status, body), (200, 12));
        assert_eq!(&raw[head..], b"{\"liked\":1}\n");
    }

    #[test]
    fn waits_for_the_rest_of_a_head() {
        assert!(
            parse(b"HTTP/1.1 200 OK\r\ncontent-le")
                .expect("a valid prefix")
                .is_none()
        );
    }

    #[test]
    fn refuses_chunked_bodies() {
        assert!(parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
    }
}
