//! `cargo xtask fuzz`: the `cargo fuzz` targets in `tools/fuzz/`, one after another (one process, one
//! job: the machine is shared), each for `--seconds` from its committed corpus, with each
//! target's executions, speed and libFuzzer coverage printed at the end. What a run finds goes
//! to `tools/fuzz/target/corpus/<target>/`; `--minimize` then merges it into the committed corpus,
//! keeping only inputs that add edge coverage. `cargo test` replays the committed corpora on stable
//! (`tools/fuzz/targets/tests/corpus.rs`); this command is the real, nightly-only fuzzing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::tools::{self, root};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds of fuzzing per target.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Only this target (repeatable); all of tools/fuzz/fuzz_targets/ by default.
    #[arg(long = "target")]
    targets: Vec<String>,
    /// Afterwards, shrink each committed corpus to the inputs that keep its coverage,
    /// including what this run found.
    #[arg(long)]
    minimize: bool,
    /// Largest input libFuzzer generates, in bytes.
    #[arg(long, default_value_t = 4096)]
    max_len: usize,
    /// `address` (catches memory errors in the decoders' unsafe code) or `none` (faster).
    #[arg(long, default_value = "address")]
    sanitizer: String,
}

/// What libFuzzer reported at the end of one target's run.
#[derive(Debug, Default)]
struct Stats {
    runs: u64,
    exec_per_sec: u64,
    cov: u64,
    ft: u64,
    new_units: u64,
    peak_rss_mb: u64,
}

/// cargo fuzz's own workspace, relative to the root.
const FUZZ_DIR: &str = "tools/fuzz";

pub fn run(args: Args) -> anyhow::Result<()> {
    ensure_nightly()?;
    ensure_cargo_fuzz()?;
    let fuzz = root().join(FUZZ_DIR);
    let mut targets = list_targets(&fuzz)?;
    if !args.targets.is_empty() {
        for t in &args.targets {
            if !targets.contains(t) {
                bail!("no fuzz target `{t}`; there are: {}", targets.join(", "));
            }
        }
        targets.retain(|t| args.targets.contains(t));
    }
    // Debug assertions on: integer overflow in a parser is a finding, not a wrap-around.
    tools::run(
        nightly_cargo()
            .args([
                "fuzz",
                "build",
                "--fuzz-dir",
                FUZZ_DIR,
                "--debug-assertions",
            ])
            .args(["--sanitizer", &args.sanitizer]),
    )?;
    let bin_dir = fuzz.join("target").join(host_triple()?).join("release");

    let mut rows = Vec::new();
    let mut crashed = Vec::new();
    for target in &targets {
        let work = fuzz.join("target/corpus").join(target);
        let artifacts = fuzz.join("artifacts").join(target);
        let logs = fuzz.join("target/logs");
        for dir in [&work, &artifacts, &logs] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let log = logs.join(format!("{target}.log"));
        eprintln!(
            "fuzzing `{target}` for {} s (log: {})",
            args.seconds,
            log.display()
        );
        let status = Command::new(bin_dir.join(target))
            .arg(&work)
            .arg(fuzz.join("corpus").join(target))
            .arg(format!("-max_total_time={}", args.seconds))
            .arg(format!("-max_len={}", args.max_len))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args(["-timeout=20", "-print_final_stats=1"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log)?)
            .status()
            .with_context(|| format!("starting the `{target}` fuzzer"))?;
        let text = fs::read_to_string(&log).unwrap_or_default();
        if !status.success() {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            for line in tail.into_iter().rev() {
                eprintln!("  {line}");
            }
            crashed.push(target.clone());
        }
        rows.push((target.clone(), parse_stats(&text)));
    }

    if args.minimize {
        for target in targets.iter().filter(|t| !crashed.contains(t)) {
            minimize(&fuzz, &bin_dir, target)?;
        }
    }

    println!(
        "\n{:<14} {:>12} {:>9} {:>7} {:>7} {:>6} {:>8} {:>10}",
        "target", "executions", "exec/s", "cov", "ft", "new", "rss MB", "corpus"
    );
    let mut total = 0;
    for (target, s) in &rows {
        let (files, bytes) = corpus_size(&fuzz.join("corpus").join(target));
        println!(
            "{target:<14} {:>12} {:>9} {:>7} {:>7} {:>6} {:>8} {:>10}",
            s.runs,
            s.exec_per_sec,
            s.cov,
            s.ft,
            s.new_units,
            s.peak_rss_mb,
            format!("{files}/{}K", bytes.div_ceil(1024))
        );
        total += s.runs;
    }
    println!("total executions: {total}");
    if !crashed.is_empty() {
        bail!(
            "{} failed; the inputs are in tools/fuzz/artifacts/<target>/: {}",
            crashed.len(),
            crashed.join(", ")
        );
    }
    Ok(())
}

/// `cargo` of the nightly toolchain, without the variables the stable `cargo xtask` set.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

fn ensure_nightly() -> anyhow::Result<()> {
    let have = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if have {
        return Ok(());
    }
    eprintln!("installing the nightly toolchain, which cargo fuzz needs (rustup, ~100 MB)");
    tools::run(Command::new("rustup").args([
        "toolchain",
        "install",
        "nightly",
        "--profile",
        "minimal",
    ]))
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    if tools::on_path("cargo-fuzz") {
        return Ok(());
    }
    eprintln!("installing cargo-fuzz from crates.io (cargo install, about 2 minutes)");
    tools::run(tools::cargo().args(["install", "cargo-fuzz", "--locked"]))
}

/// The fuzz targets: every `tools/fuzz/fuzz_targets/<name>.rs`.
fn list_targets(fuzz: &Path) -> anyhow::Result<Vec<String>> {
    let dir = fuzz.join("fuzz_targets");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    names.sort();
    Ok(names)
}

fn host_triple() -> anyhow::Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV names no host")
}

/// The figures of libFuzzer's last status line (`#N DONE cov: C ft: F …`) and final stats.
fn parse_stats(log: &str) -> Stats {
    let field = |line: &str, name: &str| -> Option<u64> {
        let mut words = line.split_whitespace();
        words.find(|w| *w == name)?;
        words.next()?.trim_end_matches("Mb").parse().ok()
    };
    let stat = |name: &str| -> u64 {
        log.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let last = log
        .lines()
        .rev()
        .find(|l| l.starts_with('#') && l.contains(" cov: "))
        .unwrap_or("");
    Stats {
        runs: stat("stat::number_of_executed_units:"),
        exec_per_sec: stat("stat::average_exec_per_sec:"),
        cov: field(last, "cov:").unwrap_or(0),
        ft: field(last, "ft:").unwrap_or(0),
        new_units: stat("stat::new_units_added:"),
        peak_rss_mb: stat("stat::peak_rss_mb:"),
    }
}

/// Replaces `tools/fuzz/corpus/<target>` by a small set of its inputs and this run's that still covers
/// every edge they cover: libFuzzer's greedy set cover on edges alone, without hit counts,
/// which keeps the committed corpora about half the size a plain `-merge=1` leaves.
fn minimize(fuzz: &Path, bin_dir: &Path, target: &str) -> anyhow::Result<()> {
    let corpus = fuzz.join("corpus").join(target);
    let merged: PathBuf = fuzz.join("target/corpus-min").join(target);
    if merged.exists() {
        fs::remove_dir_all(&merged)?;
    }
    fs::create_dir_all(&merged)?;
    let status = Command::new(bin_dir.join(target))
        .args(["-set_cover_merge=1", "-use_counters=0", "-timeout=20"])
        .arg(&merged)
        .arg(&corpus)
        .arg(fuzz.join("target/corpus").join(target))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("minimising the `{target}` corpus"))?;
    if !status.success() {
        bail!("minimising the `{target}` corpus failed ({status})");
    }
    for entry in fs::read_dir(&corpus)? {
        fs::remove_file(entry?.path())?;
    }
    for entry in fs::read_dir(&merged)? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            fs::copy(&path, corpus.join(name))?;
        }
    }
    let (files, bytes) = corpus_size(&corpus);
    eprintln!("`{target}` corpus minimised: {files} files, {bytes} bytes");
    Ok(())
}

fn corpus_size(dir: &Path) -> (usize, u64) {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
        })
        .unwrap_or((0, 0))
}
