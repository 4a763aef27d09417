//! `cargo xtask vendor-check`: keeps `vendor/engineioxide` honest. It fails when the
//! `[patch.crates-io]` entry is not used (socketioxide moved to another engineioxide and Cargo
//! only warns), when `vendor/engineioxide.patch` no longer turns the crates.io release into the
//! vendored tree, or when upstream's own test suite fails on the patched crate.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};

use crate::tools::{self, cargo, root};

/// The crate `[patch.crates-io]` replaces, and the crate that depends on it.
const CRATE: &str = "engineioxide";
const DEPENDENT: &str = "socketioxide";
/// The applied tree the build uses and the patch that describes it, relative to the root.
const VENDORED: &str = "vendor/engineioxide";
const PATCH: &str = "vendor/engineioxide.patch";
/// Files of the vendored tree that are ours, not upstream's (the crates.io package has no
/// license file).
const OURS: &[&str] = &["LICENSE"];
/// Scratch space: the download, the pristine and patched trees, the test build.
const WORK: &str = "target/vendor-check";
/// The upstream release the patch is against, and the SHA-256 of its `.crate` file as the
/// crates.io index lists it (`cksum` of 0.17.9 in https://index.crates.io/en/gi/engineioxide).
/// Pinned so that a changed download fails; update both with the vendored version.
const UPSTREAM_VERSION: &str = "0.17.9";
const UPSTREAM_SHA256: &str = "0615980857185ecc33fed6ec417ec64fe3e427bf1de0471bb3594132f453bdbe";
/// Every hunk of the patch adds a line with this mark, so the changes can be found in the code.
const MARK: &str = "Patched (see vendor/README.md)";

/// The default runs every check, upstream's test suite included (what CI runs).
#[derive(clap::Args, Default)]
pub struct Args {
    /// Only check Cargo.lock and the patch; skip building and running upstream's test suite.
    #[arg(long)]
    no_tests: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let version = vendored_version()?;
    ensure!(
        version == UPSTREAM_VERSION,
        "{VENDORED} is {CRATE} {version} but vendor-check pins {UPSTREAM_VERSION}: update \
         UPSTREAM_VERSION and UPSTREAM_SHA256 in xtask/src/cmd/vendor_check.rs"
    );
    check_lock(&version)?;
    eprintln!("Cargo.lock: {DEPENDENT} uses the vendored {CRATE} {version}");
    check_marks()?;

    let work = root().join(WORK);
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let archive = upstream_crate(&work, &version)?;
    let patched = extract(&archive, &work.join("patched"), &version)?;
    apply_patch(&patched)?;
    compare(&patched)?;
    eprintln!("{PATCH} turns the crates.io {CRATE} {version} into {VENDORED}");

    if !args.no_tests {
        upstream_tests(&archive, &work, &version)?;
    }
    Ok(())
}

/// The `[package]` version of the vendored crate's manifest.
fn vendored_version() -> anyhow::Result<String> {
    let path = root().join(VENDORED).join("Cargo.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut in_package = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_package = line.trim() == "[package]";
        } else if in_package && let Some(value) = key_value(line, "version") {
            return Ok(value.to_owned());
        }
    }
    bail!("{} has no [package] version", path.display())
}

/// `value` of a `key = "value"` line.
fn key_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix('=')?
        .trim();
    rest.strip_prefix('"')?.strip_suffix('"')
}

/// One `[[package]]` (or `[[patch.unused]]`) entry of Cargo.lock.
#[derive(Debug, Default)]
struct LockEntry {
    table: String,
    name: String,
    version: String,
    source: Option<String>,
    dependencies: Vec<String>,
}

/// The entries of a Cargo.lock, read line by line: the format cargo writes is regular enough
/// that no TOML parser is needed.
fn parse_lock(text: &str) -> Vec<LockEntry> {
    let mut entries: Vec<LockEntry> = Vec::new();
    let mut in_dependencies = false;
    for line in text.lines() {
        if line.starts_with('[') {
            entries.push(LockEntry {
                table: line.trim().trim_matches(['[', ']']).to_owned(),
                ..LockEntry::default()
            });
            in_dependencies = false;
            continue;
        }
        let Some(entry) = entries.last_mut() else {
            continue;
        };
        if in_dependencies {
            match line.trim().trim_end_matches(',') {
                "]" => in_dependencies = false,
                dep => entry.dependencies.push(dep.trim_matches('"').to_owned()),
            }
        } else if line.starts_with("dependencies = [") {
            in_dependencies = !line.trim_end().ends_with(']');
        } else if let Some(v) = key_value(line, "name") {
            entry.name = v.to_owned();
        } else if let Some(v) = key_value(line, "version") {
            entry.version = v.to_owned();
        } else if let Some(v) = key_value(line, "source") {
            entry.source = Some(v.to_owned());
        }
    }
    entries
}

/// (a) The patch is in use: Cargo.lock has exactly one engineioxide, a path package of the
/// vendored version, no unused-patch entry for it, and socketioxide depends on that one.
/// `cargo xtask` has just resolved the workspace (it is `cargo run`), so the lock is current.
fn check_lock(version: &str) -> anyhow::Result<()> {
    let path = root().join("Cargo.lock");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let entries = parse_lock(&text);
    if entries
        .iter()
        .any(|e| e.table == "patch.unused" && e.name == CRATE)
    {
        bail!(
            "Cargo.lock lists the vendored {CRATE} under [[patch.unused]]: the build uses the \
             crates.io release, not {VENDORED}"
        );
    }
    let packages: Vec<&LockEntry> = entries
        .iter()
        .filter(|e| e.table == "package" && e.name == CRATE)
        .collect();
    let [package] = packages.as_slice() else {
        let found: Vec<String> = packages
            .iter()
            .map(|p| format!("{} ({})", p.version, p.source.as_deref().unwrap_or("path")))
            .collect();
        bail!(
            "Cargo.lock has {} {CRATE} packages ({}), not exactly the vendored one",
            packages.len(),
            found.join(", ")
        );
    };
    if let Some(source) = &package.source {
        bail!(
            "Cargo.lock takes {CRATE} {} from {source}, not from {VENDORED}",
            package.version
        );
    }
    ensure!(
        package.version == version,
        "Cargo.lock has {CRATE} {} but {VENDORED} is {version}",
        package.version
    );
    let dependent = entries
        .iter()
        .find(|e| e.table == "package" && e.name == DEPENDENT)
        .with_context(|| format!("Cargo.lock has no {DEPENDENT} package"))?;
    // A dependency is written `name`, `name version` or `name version (source)`, the longer
    // forms only when the name alone is ambiguous.
    let dep = dependent
        .dependencies
        .iter()
        .find(|d| d.split(' ').next() == Some(CRATE))
        .with_context(|| {
            format!(
                "Cargo.lock: {DEPENDENT} {} does not depend on {CRATE}",
                dependent.version
            )
        })?;
    let mut parts = dep.split(' ').skip(1);
    let dep_version = parts.next().unwrap_or(package.version.as_str());
    ensure!(
        dep_version == version && parts.next().is_none(),
        "Cargo.lock: {DEPENDENT} {} depends on {CRATE} `{dep}`, not the vendored {version}",
        dependent.version
    );
    Ok(())
}

/// Every hunk of the patch carries the mark, so each change is findable in the vendored code.
fn check_marks() -> anyhow::Result<()> {
    let path = root().join(PATCH);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut file = "";
    let mut lines = text.lines();
    let mut hunks = 0;
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("+++ ") {
            file = name.strip_prefix("b/").unwrap_or(name);
            continue;
        }
        let Some(range) = line.strip_prefix("@@ ") else {
            continue;
        };
        hunks += 1;
        let (mut old, mut new) = hunk_lengths(range)
            .with_context(|| format!("{PATCH}: cannot read the hunk header `{line}`"))?;
        let mut marked = false;
        while old > 0 || new > 0 {
            let body = lines
                .next()
                .with_context(|| format!("{PATCH}: the hunk `{line}` of {file} is cut short"))?;
            match body.as_bytes().first() {
                Some(b'+') => {
                    new = new.saturating_sub(1);
                    marked |= body.contains(MARK);
                }
                Some(b'-') => old = old.saturating_sub(1),
                Some(b'\\') => {}
                _ => {
                    old = old.saturating_sub(1);
                    new = new.saturating_sub(1);
                }
            }
        }
        ensure!(
            marked,
            "{PATCH}: the hunk `{line}` of {file} adds no `{MARK}` comment"
        );
    }
    ensure!(hunks > 0, "{PATCH} has no hunks");
    Ok(())
}

/// The old and new line counts of a hunk header's `-a,b +c,d @@` (a missing count is 1).
fn hunk_lengths(range: &str) -> Option<(usize, usize)> {
    let mut it = range.split(' ');
    let count = |s: Option<&str>, sign: char| -> Option<usize> {
        let s = s?.strip_prefix(sign)?;
        match s.split_once(',') {
            Some((_, n)) => n.parse().ok(),
            None => Some(1),
        }
    };
    Some((count(it.next(), '-')?, count(it.next(), '+')?))
}

/// The upstream `.crate` of `version`, from cargo's download cache or crates.io (kept in
/// `work`), checked against the pinned SHA-256.
fn upstream_crate(work: &Path, version: &str) -> anyhow::Result<PathBuf> {
    let name = format!("{CRATE}-{version}.crate");
    let kept = work.join(&name);
    for candidate in registry_cache(&name).into_iter().chain([kept.clone()]) {
        if candidate.is_file() && sha256(&candidate)? == UPSTREAM_SHA256 {
            eprintln!("upstream: {}", candidate.display());
            return Ok(candidate);
        }
    }
    if !tools::on_path("curl") {
        tools::apt_install("curl", &["curl"])?;
    }
    let url = format!("https://static.crates.io/crates/{CRATE}/{name}");
    let partial = kept.with_extension("partial");
    tools::run(
        Command::new("curl")
            .args([
                "--fail",
                "--silent",
                "--show-error",
                "--location",
                "--output",
            ])
            .arg(&partial)
            .arg(&url),
    )?;
    let sum = sha256(&partial)?;
    ensure!(
        sum == UPSTREAM_SHA256,
        "{url} has SHA-256 {sum}, not the pinned {UPSTREAM_SHA256}"
    );
    fs::rename(&partial, &kept).with_context(|| format!("renaming to {}", kept.display()))?;
    Ok(kept)
}

/// Where cargo keeps a downloaded `.crate` of that name, for each registry it knows.
fn registry_cache(name: &str) -> Vec<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(Ok(registries)) = home.map(|h| fs::read_dir(h.join("registry/cache"))) else {
        return Vec::new();
    };
    registries
        .filter_map(Result::ok)
        .map(|r| r.path().join(name))
        .collect()
}

fn sha256(path: &Path) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Unpacks the `.crate` (a .tar.gz of `<name>-<version>/`) into a fresh `into`; returns the
/// crate's directory.
fn extract(archive: &Path, into: &Path, version: &str) -> anyhow::Result<PathBuf> {
    if into.exists() {
        fs::remove_dir_all(into).with_context(|| format!("removing {}", into.display()))?;
    }
    fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
    tools::run(
        Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(into),
    )?;
    let dir = into.join(format!("{CRATE}-{version}"));
    ensure!(
        dir.is_dir(),
        "{} did not unpack into {}",
        archive.display(),
        dir.display()
    );
    Ok(dir)
}

/// (b) Applies the patch to the pristine tree, exactly (no fuzz), leaving no backup files.
fn apply_patch(dir: &Path) -> anyhow::Result<()> {
    if !tools::on_path("patch") {
        tools::apt_install("patch", &["patch"])?;
    }
    tools::run(
        Command::new("patch")
            .args([
                "--batch",
                "--forward",
                "--fuzz=0",
                "--no-backup-if-mismatch",
                "--quiet",
            ])
            .args(["-p1", "-d"])
            .arg(dir)
            .arg("-i")
            .arg(root().join(PATCH)),
    )
    .with_context(|| {
        format!(
            "{PATCH} no longer applies to the crates.io {CRATE} (rejects in {})",
            dir.display()
        )
    })
}

/// (b) Every file of the vendored tree equals the patched upstream one, and every upstream
/// source file is vendored.
fn compare(patched: &Path) -> anyhow::Result<()> {
    let vendored = root().join(VENDORED);
    let mut files = files_under(&vendored, &vendored)?;
    files.retain(|f| !OURS.contains(&f.as_str()));
    files.extend(files_under(patched, &patched.join("src"))?);
    files.insert("Cargo.toml".to_owned());
    for file in &files {
        let ours = fs::read(vendored.join(file)).ok();
        let theirs = fs::read(patched.join(file)).ok();
        match (ours, theirs) {
            (Some(ours), Some(theirs)) if ours == theirs => {}
            (Some(ours), Some(theirs)) => {
                let line = first_difference(&ours, &theirs);
                bail!(
                    "{VENDORED}/{file} differs at line {line} from the crates.io {CRATE} with \
                     {PATCH} applied: regenerate the patch (vendor/README.md)"
                );
            }
            (Some(_), None) => {
                bail!("{VENDORED}/{file} is neither in the crates.io {CRATE} nor added by {PATCH}")
            }
            (None, _) => bail!(
                "{VENDORED}/{file} is missing (the crates.io {CRATE} with {PATCH} applied has it)"
            ),
        }
    }
    Ok(())
}

/// Paths of the files under `dir`, relative to `base`, with `/` separators.
fn files_under(base: &Path, dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(rel) = path.strip_prefix(base) {
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    Ok(out)
}

/// The 1-based number of the first line where `a` and `b` differ.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    1 + a[..at].iter().filter(|&&c| c == b'\n').count()
}

/// (c) Upstream's tests on the patched crate: the upstream package's `tests/`, the vendored
/// `src/` and manifest, with upstream's `[[test]]` targets and dev-dependencies put back
/// (not its benches, nor criterion, which only they use), as a workspace of its own, built
/// with the root Cargo.lock so dependencies are the versions the hub builds with.
fn upstream_tests(archive: &Path, work: &Path, version: &str) -> anyhow::Result<()> {
    let dir = extract(archive, &work.join("test"), version)?;
    let upstream_manifest = fs::read_to_string(dir.join("Cargo.toml"))
        .with_context(|| format!("reading {}", dir.join("Cargo.toml").display()))?;
    let vendored = root().join(VENDORED);
    let mut manifest = fs::read_to_string(vendored.join("Cargo.toml"))
        .with_context(|| format!("reading {VENDORED}/Cargo.toml"))?;
    manifest.push_str(&tables(&upstream_manifest, |header| {
        header == "[[test]]"
            || (header.starts_with("[dev-dependencies") && header != "[dev-dependencies.criterion]")
    }));
    manifest.push_str("\n[workspace]\n");
    fs::write(dir.join("Cargo.toml"), manifest).context("writing the test manifest")?;
    fs::remove_dir_all(dir.join("src")).context("removing the upstream src/")?;
    copy_dir(&vendored.join("src"), &dir.join("src"))?;
    fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).context("copying Cargo.lock")?;

    for features in ["__test_harness", "__test_harness,v3"] {
        tools::run(
            cargo()
                .env("CARGO_TARGET_DIR", work.join("target"))
                .args([
                    "test",
                    "--release",
                    "--features",
                    features,
                    "--manifest-path",
                ])
                .arg(dir.join("Cargo.toml")),
        )
        .with_context(|| {
            format!("upstream's tests fail on the patched {CRATE} (features {features})")
        })?;
    }
    eprintln!("upstream's test suite passes on the patched {CRATE} {version}");
    Ok(())
}

/// The tables of a TOML manifest whose header line passes `keep`, each with the lines up to the
/// next header (cargo's normalized manifests start every header at the start of a line).
fn tables(manifest: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    let mut keeping = false;
    for line in manifest.lines() {
        if line.starts_with('[') {
            keeping = keep(line.trim());
            if keeping {
                out.push('\n');
            }
        }
        if keeping && !line.trim().is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    for file in files_under(from, from)? {
        let target = to.join(&file);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::copy(from.join(&file), &target)
            .with_context(|| format!("copying {} to {}", file, target.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_lock_with_a_used_and_an_unused_patch() {
        let lock = r#"
version = 4

[[package]]
name = "engineioxide"
version = "0.18.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "00"
dependencies = [
 "bytes",
]

[[package]]
name = "socketioxide"
version = "0.19.0"
dependencies = [
 "engineioxide 0.18.0 (registry+https://github.com/rust-lang/crates.io-index)",
 "tokio",
]

[[patch.unused]]
name = "engineioxide"
version = "0.17.9"
"#;
        let entries = parse_lock(lock);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].dependencies, ["bytes"]);
        assert!(entries[0].source.is_some());
        assert_eq!(
            entries[1].dependencies[0],
            "engineioxide 0.18.0 (registry+https://github.com/rust-lang/crates.io-index)"
        );
        assert_eq!(entries[2].table, "patch.unused");
        assert_eq!(entries[2].version, "0.17.9");
    }

    #[test]
    fn reads_hunk_headers() {
        assert_eq!(hunk_lengths("-71,7 +71,7 @@"), Some((7, 7)));
        assert_eq!(hunk_lengths("-3 +3,2 @@ fn x()"), Some((1, 2)));
        assert_eq!(hunk_lengths("nonsense"), None);
    }

    #[test]
    fn keeps_only_the_chosen_tables() {
        let manifest = "[package]\nname = \"x\"\n\n[[bench]]\nname = \"b\"\n\n[[test]]\nname = \"t\"\n\n[dev-dependencies.tokio]\nfeatures = [\n    \"macros\",\n]\n";
        let kept = tables(manifest, |h| h == "[[test]]" || h.starts_with("[dev-"));
        assert_eq!(
            kept,
            "\n[[test]]\nname = \"t\"\n\n[dev-dependencies.tokio]\nfeatures = [\n    \"macros\",\n]\n"
        );
    }

    #[test]
    fn finds_the_first_differing_line() {
        assert_eq!(first_difference(b"a\nb\nc\n", b"a\nb\nd\n"), 3);
        assert_eq!(first_difference(b"a\n", b"b\n"), 1);
    }
}
