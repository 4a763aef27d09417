//! PNG charts of a report, drawn with plotters into a memory buffer and encoded by `image`.
//! Text needs a TrueType font: the first of a few common system fonts is loaded at run time
//! (plotters' `ab_glyph` backend), so nothing is bundled; without one, no charts are drawn.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::report::Report;

const W: u32 = 1000;
const H: u32 = 640;

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers a system font as `sans-serif` once; false when none was found.
fn font() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        FONTS.iter().any(|path| {
            std::fs::read(path).ok().is_some_and(|bytes| {
                // plotters keeps fonts for the process's life.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

fn save(buf: Vec<u8>, path: &Path) -> anyhow::Result<()> {
    image::RgbImage::from_raw(W, H, buf)
        .context("chart buffer size")?
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e}")
}

/// Draws one `W`×`H` chart on a white bitmap and saves it as the PNG `path`.
fn draw_png(
    path: &Path,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    save(buf, path)
}

/// One labelled line of a chart, with its legend entry.
fn line<'a, DB: DrawingBackend + 'a>(
    c: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    label: &str,
    color: RGBColor,
    points: impl IntoIterator<Item = (f64, f64)>,
) -> anyhow::Result<()> {
    c.draw_series(LineSeries::new(points, color.stroke_width(2)))
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    Ok(())
}

/// The series legend, drawn the same way on every chart.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    c: &mut ChartContext<'a, DB, CT>,
) -> anyhow::Result<()> {
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// Draws every chart the report has data for; returns the file names.
pub fn draw(report: &Report, dir: &Path) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(
        font(),
        "no TrueType font found (looked for {})",
        FONTS.join(", ")
    );
    let mut files = Vec::new();
    if !report.timeline.is_empty() {
        throughput(report, &dir.join("throughput.png"))?;
        files.push("throughput.png".to_owned());
    }
    if !report.sockets.delivery_buckets.is_empty() {
        delivery(report, &dir.join("delivery.png"))?;
        files.push("delivery.png".to_owned());
    }
    if !report.sync_lag.is_empty() {
        sync_lag(report, &dir.join("sync_lag.png"))?;
        files.push("sync_lag.png".to_owned());
    }
    Ok(files)
}

/// Target vs achieved rate, and p50/p99 latency, per second.
fn throughput(r: &Report, path: &Path) -> anyhow::Result<()> {
    draw_png(path, |root| {
        let (top, bottom) = root.split_vertically(H / 2);
        let xmax = r.timeline.len().max(1) as f64;
        let ymax = r
            .timeline
            .iter()
            .map(|s| s.target_rate.max(s.ok as f64))
            .fold(1.0, f64::max)
            * 1.15;
        let mut c = ChartBuilder::on(&top)
            .caption("likes + unlikes per second", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("s")
            .y_desc("per second")
            .draw()
            .map_err(err)?;
        c.draw_series(LineSeries::new(
            r.timeline.iter().map(|s| (s.t_s as f64, s.target_rate)),
            BLACK,
        ))
        .map_err(err)?
        .label("target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        c.draw_series(LineSeries::new(
            r.timeline.iter().map(|s| (s.t_s as f64, s.ok as f64)),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?
        .label("achieved (2xx)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        c.draw_series(LineSeries::new(
            r.timeline.iter().map(|s| (s.t_s as f64, s.errors as f64)),
            RED,
        ))
        .map_err(err)?
        .label("errors")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        legend(&mut c)?;

        let lmax = r.timeline.iter().map(|s| s.p99_ms).fold(1.0, f64::max) * 1.15;
        let mut c = ChartBuilder::on(&bottom)
            .caption(
                "like latency per second (from intended send time)",
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, 0f64..lmax)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("s")
            .y_desc("ms")
            .draw()
            .map_err(err)?;
        for (label, color, f) in [
            (
                "p50",
                GREEN,
                (|s| s.p50_ms) as fn(&crate::report::SecondRow) -> f64,
            ),
            ("p99", MAGENTA, |s| s.p99_ms),
        ] {
            line(
                &mut c,
                label,
                color,
                r.timeline.iter().map(|s| (s.t_s as f64, f(s))),
            )?;
        }
        legend(&mut c)?;
        Ok(())
    })
}

/// Histogram of like → `likes:updated` delivery latency.
fn delivery(r: &Report, path: &Path) -> anyhow::Result<()> {
    draw_png(path, |root| {
        let b = &r.sockets.delivery_buckets;
        let xmax = b.last().map_or(1.0, |l| l.0);
        let width = xmax / b.len().max(1) as f64;
        let ymax = b.iter().map(|x| x.1).max().unwrap_or(1).max(1) as f64 * 1.1;
        let d = &r.sockets.delivery;
        let mut c = ChartBuilder::on(root)
            .caption(
                format!(
                    "like → likes:updated at the sockets: p50 {:.1} ms, p99 {:.1} ms ({} frames)",
                    d.p50_ms, d.p99_ms, d.count
                ),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("ms")
            .y_desc("frames")
            .draw()
            .map_err(err)?;
        c.draw_series(b.iter().map(|(upper, count)| {
            Rectangle::new(
                [(upper - width, 0.0), (*upper, *count as f64)],
                BLUE.mix(0.7).filled(),
            )
        }))
        .map_err(err)?;
        Ok(())
    })
}

/// The sync daemon's lag over the run.
fn sync_lag(r: &Report, path: &Path) -> anyhow::Result<()> {
    draw_png(path, |root| {
        let (top, bottom) = root.split_vertically(H / 2);
        let xmax = r.sync_lag.last().map_or(1.0, |s| s.t_s).max(1.0);
        type Series = (
            &'static str,
            fn(&crate::observe::LagSample) -> f64,
            RGBColor,
        );
        let panels: [(_, &str, &str, Vec<Series>); 2] = [
            (
                &top,
                "sync lag: age of the newest committed entry at commit",
                "s",
                vec![
                    ("like streams (max)", |s| s.lag_s, RED),
                    ("users stream", |s| s.users_lag_s, GREEN),
                ],
            ),
            (
                &bottom,
                "sync backlog: undelivered + unacknowledged entries",
                "entries",
                vec![("all streams", |s| s.entries, BLUE)],
            ),
        ];
        for (area, title, unit, series) in panels {
            let ymax = series
                .iter()
                .flat_map(|(_, f, _)| r.sync_lag.iter().map(f))
                .fold(0.001, f64::max)
                * 1.15;
            let mut c = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 20))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..xmax, 0f64..ymax)
                .map_err(err)?;
            c.configure_mesh()
                .x_desc("s")
                .y_desc(unit)
                .draw()
                .map_err(err)?;
            for (label, f, color) in series {
                line(
                    &mut c,
                    label,
                    color,
                    r.sync_lag.iter().map(|s| (s.t_s, f(s))),
                )?;
            }
            legend(&mut c)?;
        }
        Ok(())
    })
}
