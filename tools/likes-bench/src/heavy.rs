//! `likes-bench heavy`: the latency of a light request (`GET /api/health`, open loop) while
//! `--uploaders` clients keep uploading a tiny JPEG that declares 7000×7000 pixels, the shape of
//! the issue-19 report ("a 691-byte JPEG takes 1.26 s to decode"). `--uploaders 0` is the
//! baseline. `cargo xtask bench heavy` alternates both and tabulates.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;

use crate::http1::Connection;
use crate::workload;

#[derive(clap::Args)]
pub struct Args {
    /// The edge, `host:port`.
    #[arg(long)]
    addr: String,
    /// Seconds of health requests.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Health requests per second, sent on schedule whether or not earlier ones answered.
    #[arg(long, default_value_t = 40)]
    rate: u32,
    /// Clients uploading the heavy JPEG back to back meanwhile (0: the baseline).
    #[arg(long, default_value_t = 4)]
    uploaders: usize,
    /// Width and height the JPEG declares.
    #[arg(long, default_value_t = 7000)]
    side: u16,
    /// Also time the same JPEG through `likes_images::process` natively, once, before the run.
    #[arg(long)]
    native: bool,
}

/// Keep-alive connections opened before the clock starts; more are opened only when all of
/// them are waiting for an answer.
const HEALTH_CONNECTIONS: usize = 4;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let jpeg = heavy_jpeg(args.side)?;
    let native_ms = if args.native {
        let started = Instant::now();
        let outcome = likes_images::process(&jpeg, &likes_images::Limits::default());
        let ms = started.elapsed().as_secs_f64() * 1e3;
        outcome.context("the native pipeline refused the heavy JPEG")?;
        Some(ms)
    } else {
        None
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let token = sign_in(&client, &args.addr).await?;

    let health = format!(
        "GET /api/health HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\n\r\n",
        args.addr
    )
    .into_bytes();
    let pool = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..HEALTH_CONNECTIONS {
        let mut conn = Connection::open(&args.addr).await?;
        let status = conn.exchange(&health).await?;
        if status != 200 {
            bail!("/api/health answered {status} before the run");
        }
        pool.lock()
            .map_err(|_| anyhow::anyhow!("poisoned pool"))?
            .push(conn);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let uploaders: Vec<_> = (0..args.uploaders)
        .map(|_| {
            let (stop, jpeg, token) = (stop.clone(), jpeg.clone(), token.clone());
            let url = format!("http://{}/api/posts", args.addr);
            tokio::spawn(async move { upload_loop(&url, &token, jpeg, &stop).await })
        })
        .collect();
    // Let every uploader get its first upload into the guest before health is measured.
    if args.uploaders > 0 {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let request = Arc::new(health);
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let count = u32::try_from(args.seconds)
        .unwrap_or(u32::MAX)
        .saturating_mul(args.rate.max(1));
    let start = tokio::time::Instant::now();
    let mut sent = Vec::new();
    for i in 0..count {
        let at = start + interval * i;
        tokio::time::sleep_until(at).await;
        let (pool, request, addr) = (pool.clone(), request.clone(), args.addr.clone());
        sent.push(tokio::spawn(async move {
            let taken = pool.lock().ok().and_then(|mut p| p.pop());
            let mut conn = match taken {
                Some(conn) => conn,
                None => Connection::open(&addr).await?,
            };
            let status = conn.exchange(&request).await?;
            // From when the request was due, not when it went out: a stall delays the
            // requests behind it, and that wait is part of their latency.
            let latency = at.elapsed();
            if let Ok(mut p) = pool.lock() {
                p.push(conn);
            }
            anyhow::Ok((latency, status))
        }));
    }
    let mut hist = workload::histogram();
    let (mut errors, mut statuses) = (0u64, BTreeMap::<u16, u64>::new());
    for task in sent {
        match task.await? {
            Ok((latency, status)) => {
                *statuses.entry(status).or_default() += 1;
                hist.record(micros(latency))?;
            }
            Err(e) => {
                errors += 1;
                tracing::warn!(error = %e, "health request failed");
            }
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);

    // Uploads still running finish and count: the next measurement starts on an idle edge.
    let mut uploads = workload::histogram();
    let mut upload_statuses = BTreeMap::<u16, u64>::new();
    let mut upload_errors = 0u64;
    for task in uploaders {
        let (hist, statuses, errors) = task.await??;
        uploads.add(hist)?;
        for (status, n) in statuses {
            *upload_statuses.entry(status).or_default() += n;
        }
        upload_errors += errors;
    }

    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
    println!(
        "{}",
        serde_json::json!({
            "uploaders": args.uploaders,
            "seconds": elapsed.as_secs_f64(),
            "jpeg_bytes": jpeg.len(),
            "jpeg_side": args.side,
            "native_ms": native_ms,
            "health_rate": args.rate,
            "health_requests": hist.len(),
            "health_errors": errors,
            "health_statuses": statuses,
            "health_p50_ms": ms(&hist, 0.5),
            "health_p99_ms": ms(&hist, 0.99),
            "health_max_ms": hist.max() as f64 / 1e3,
            "uploads": uploads.len(),
            "upload_errors": upload_errors,
            "upload_statuses": upload_statuses,
            "upload_p50_ms": ms(&uploads, 0.5),
            "upload_max_ms": uploads.max() as f64 / 1e3,
        })
    );
    Ok(())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// A new user's token, through `POST /api/session` like the app's sign-in.
async fn sign_in(client: &reqwest::Client, addr: &str) -> anyhow::Result<String> {
    let resp = client
        .post(format!("http://{addr}/api/session"))
        .json(&serde_json::json!({ "name": "heavy bench" }))
        .send()
        .await
        .context("POST /api/session")?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.context("session body")?;
    if status != reqwest::StatusCode::CREATED {
        bail!("POST /api/session answered {status}: {body}");
    }
    body["token"]
        .as_str()
        .map(str::to_owned)
        .context("session response without a token")
}

/// Uploads `jpeg` back to back until `stop`; the latencies of those answered, their statuses
/// and the number that got no answer.
async fn upload_loop(
    url: &str,
    token: &str,
    jpeg: Vec<u8>,
    stop: &AtomicBool,
) -> anyhow::Result<(Histogram<u64>, BTreeMap<u16, u64>, u64)> {
    // A client of its own: one keep-alive connection per uploader, as separate users have.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let (mut hist, mut statuses, mut errors) = (workload::histogram(), BTreeMap::new(), 0);
    while !stop.load(Ordering::Relaxed) {
        let part = reqwest::multipart::Part::bytes(jpeg.clone())
            .file_name("heavy.jpg")
            .mime_str("image/jpeg")?;
        let form = reqwest::multipart::Form::new().part("image", part);
        let started = Instant::now();
        let answered = async {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .multipart(form)
                .send()
                .await?;
            let status = resp.status().as_u16();
            resp.bytes().await?;
            anyhow::Ok(status)
        }
        .await;
        match answered {
            Ok(status) => {
                hist.record(micros(started.elapsed()))?;
                *statuses.entry(status).or_default() += 1;
            }
            Err(e) => {
                errors += 1;
                tracing::warn!(error = %e, "heavy upload failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok((hist, statuses, errors))
}

/// A baseline JPEG of a few hundred bytes whose frame header declares `side`×`side` pixels: a
/// 16×16 image, encoded, with its SOF0 dimensions rewritten. The scan ends after the first
/// blocks and the decoder fills the rest of the frame, so the edge does the full-size work
/// (decode, resize, encode) for a body smaller than this comment.
pub fn heavy_jpeg(side: u16) -> anyhow::Result<Vec<u8>> {
    let small = likes_images::samples::encode(
        &likes_images::samples::gradient(16, 16),
        image::ImageFormat::Jpeg,
    );
    let mut jpeg = small;
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .context("the encoder wrote no baseline frame header")?;
    // FF C0, length (2), precision (1), then height and width, big-endian.
    let dims = sof + 5;
    jpeg.get_mut(dims..dims + 4)
        .context("truncated frame header")?
        .copy_from_slice(&[side.to_be_bytes(), side.to_be_bytes()].concat());
    Ok(jpeg)
}

#[cfg(test)]
mod tests {
    use super::heavy_jpeg;

    #[test]
    fn the_heavy_jpeg_is_small_and_declares_its_side() {
        let jpeg = heavy_jpeg(7000).expect("jpeg");
        assert!(jpeg.len() < 2048, "{} bytes", jpeg.len());
        let probe = likes_images::probe(&jpeg, &likes_images::Limits::default()).expect("probe");
        assert_eq!((probe.width, probe.height), (7000, 7000));
    }
}
