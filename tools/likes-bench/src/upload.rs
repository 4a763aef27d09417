//! `likes-bench upload`: the upload pipeline end to end through the edge (multipart POST into
//! the wasm `posts` component, which decodes, resizes, re-encodes and stores in Redis) next to
//! the same `likes_images::process` call natively, on the same 12 MP JPEG in the same run. Their
//! ratio is the wasm tax on pixel work.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use likes_core::{UserId, session};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    edge: crate::workload::EdgeTarget,
    /// Uploads (and native runs) to time.
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Width and height of the generated photo (default 4000×3000 = 12 MP).
    #[arg(long, default_value_t = 4000)]
    width: u32,
    #[arg(long, default_value_t = 3000)]
    height: u32,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let photo = likes_images::samples::encode(
        &likes_images::samples::gradient(args.width, args.height),
        image::ImageFormat::Jpeg,
    );

    let mut native = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let started = Instant::now();
        let out = likes_images::process(&photo, &likes_images::Limits::default())
            .context("the native pipeline refused the photo")?;
        native.push(started.elapsed());
        std::hint::black_box(out);
    }

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let user = UserId::new(1).context("user id")?;
    let token = session::issue(args.edge.secret.as_bytes(), user, "bench", now, 3600);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = format!("http://{}/api/posts", args.edge.addr);
    let mut edge = Vec::with_capacity(args.runs);
    // One untimed upload warms the component's compiled code and the Redis connection.
    for i in 0..=args.runs {
        let form = reqwest::multipart::Form::new().part(
            "image",
            reqwest::multipart::Part::bytes(photo.clone()).file_name("photo.jpg"),
        );
        let started = Instant::now();
        let resp = client
            .post(&url)
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if status != reqwest::StatusCode::CREATED {
            bail!(
                "upload answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        if i > 0 {
            edge.push(started.elapsed());
        }
    }

    let (np50, np90) = percentiles(&mut native);
    let (ep50, ep90) = percentiles(&mut edge);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{}",
        serde_json::json!({
            "target": "upload",
            "megapixels": f64::from(args.width) * f64::from(args.height) / 1e6,
            "jpeg_bytes": photo.len(),
            "runs": args.runs,
            "native_p50_ms": ms(np50),
            "native_p90_ms": ms(np90),
            "edge_p50_ms": ms(ep50),
            "edge_p90_ms": ms(ep90),
            "edge_over_native_p50": ms(ep50) / ms(np50),
        })
    );
    Ok(())
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).copied().unwrap_or_default()
    };
    (at(0.5), at(0.9))
}
