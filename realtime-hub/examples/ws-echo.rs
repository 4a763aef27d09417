//! The reference server of `cargo xtask bench realtime`: a bare tokio-tungstenite WebSocket echo
//! server, one task per connection, so the hub's memory per socket has something to be compared
//! with in the same run. `ws-echo --listen HOST:PORT`.

use std::net::SocketAddr;

use anyhow::Context;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let listen: SocketAddr = match (argv.next().as_deref(), argv.next()) {
        (Some("--listen"), Some(addr)) => addr.parse().context("--listen HOST:PORT")?,
        _ => anyhow::bail!("usage: ws-echo --listen HOST:PORT"),
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    // The same read buffer as the hub's, so both sides pay the same for it.
    let config = WebSocketConfig::default()
        .read_buffer_size(realtime_hub::WS_READ_BUFFER_BYTES)
        .write_buffer_size(0);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
            else {
                return;
            };
            let (tx, rx) = ws.split();
            let _ = rx
                .filter(|m| std::future::ready(m.as_ref().is_ok_and(|m| m.is_text())))
                .forward(tx)
                .await;
        });
    }
}
