//! `files` mounts: what each component sees of the host filesystem, read-only.
//!
//! Glob or path entries are copied once at startup into a per-component staging directory that is
//! preopened at `/` (each file keeps its path relative to the manifest directory, as in Spin);
//! `{ source, destination }` directories are preopened directly at `destination`.

use std::path::{Component as PathComponent, Path, PathBuf};

use anyhow::{Context, bail};

use crate::manifest::FileMount;

/// A directory preopened for a component: host path → guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// Directory on the host.
    pub host: PathBuf,
    /// Absolute path in the guest.
    pub guest: String,
}

/// The staged mounts of one component; the staging directory lives as long as this value.
#[derive(Debug, Default)]
pub struct Mounts {
    /// Directories to preopen for every instance.
    pub preopens: Vec<Preopen>,
    _staging: Option<tempfile::TempDir>,
}

/// Resolves and stages `files` for a component whose manifest lives in `base`.
pub fn stage(base: &Path, files: &[FileMount], exclude: &[String]) -> anyhow::Result<Mounts> {
    let mut preopens = Vec::new();
    let mut staging: Option<tempfile::TempDir> = None;
    let excluded = exclude
        .iter()
        .map(|p| {
            glob::Pattern::new(p).with_context(|| format!("invalid exclude_files pattern {p:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    for mount in files {
        match mount {
            FileMount::Placement {
                source,
                destination,
            } => {
                if !destination.starts_with('/') {
                    bail!("files: destination {destination:?} must be an absolute path");
                }
                // Spin copies a placement's files and applies `exclude_files` to them; we
                // mount the directory itself, as `spin up --direct-mounts` does, and refuse the
                // combination as that mode does rather than serve files Spin would hide.
                if !excluded.is_empty() {
                    bail!(
                        "files: {{ source = {source:?}, destination = {destination:?} }} is mounted \
                         directly, which cannot apply exclude_files (as `spin up --direct-mounts`)"
                    );
                }
                let host = base.join(source);
                if !host.is_dir() {
                    bail!("files: source {} is not a directory", host.display());
                }
                preopens.push(Preopen {
                    host,
                    guest: destination.clone(),
                });
            }
            FileMount::Pattern(pattern) => {
                let root = match &staging {
                    Some(dir) => dir.path().to_owned(),
                    None => {
                        let dir = tempfile::Builder::new()
                            .prefix("edge-host-files-")
                            .tempdir()
                            .context("cannot create a staging directory for files")?;
                        let root = dir.path().to_owned();
                        staging = Some(dir);
                        root
                    }
                };
                for relative in expand_pattern(base, pattern)? {
                    if excluded.iter().any(|p| p.matches_path(&relative)) {
                        continue;
                    }
                    let target = root.join(&relative);
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)
                            .with_context(|| format!("cannot create {}", parent.display()))?;
                    }
                    std::fs::copy(base.join(&relative), &target).with_context(|| {
                        format!(
                            "cannot stage {} for mounting",
                            base.join(&relative).display()
                        )
                    })?;
                }
            }
        }
    }
    if let Some(dir) = &staging {
        preopens.insert(
            0,
            Preopen {
                host: dir.path().to_owned(),
                guest: "/".to_owned(),
            },
        );
    }
    Ok(Mounts {
        preopens,
        _staging: staging,
    })
}

/// The files (relative to `base`) an entry names: a file, every file under a directory, or the
/// files a glob matches. Entries escaping `base` are refused.
fn expand_pattern(base: &Path, pattern: &str) -> anyhow::Result<Vec<PathBuf>> {
    let relative = Path::new(pattern);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, PathComponent::ParentDir))
    {
        bail!("files: {pattern:?} must be a relative path inside the application directory");
    }
    let literal = base.join(relative);
    let full_pattern = if literal.is_dir() {
        literal.join("**/*")
    } else if literal.is_file() {
        return Ok(vec![relative.to_owned()]);
    } else {
        literal
    };
    let pattern_text = full_pattern
        .to_str()
        .with_context(|| format!("files: {pattern:?} is not valid UTF-8"))?;
    let mut out = Vec::new();
    for entry in
        glob::glob(pattern_text).with_context(|| format!("files: invalid glob {pattern:?}"))?
    {
        let path = entry.with_context(|| format!("files: cannot read a match of {pattern:?}"))?;
        if path.is_file() {
            let rel = path
                .strip_prefix(base)
                .with_context(|| format!("files: {} is outside the application", path.display()))?;
            out.push(rel.to_owned());
        }
    }
    if out.is_empty() {
        tracing::warn!(pattern, "files: pattern matched no files");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_globs_files_and_directories() {
        let app = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(app.path().join("static/sub")).expect("mkdir");
        std::fs::write(app.path().join("static/a.txt"), "a").expect("write");
        std::fs::write(app.path().join("static/b.md"), "b").expect("write");
        std::fs::write(app.path().join("static/sub/c.txt"), "c").expect("write");
        std::fs::write(app.path().join("top.txt"), "top").expect("write");
        std::fs::create_dir_all(app.path().join("assets")).expect("mkdir");

        let files = vec![
            FileMount::Pattern("static/*.txt".into()),
            FileMount::Pattern("top.txt".into()),
            FileMount::Placement {
                source: "assets".into(),
                destination: "/assets".into(),
            },
        ];
        let mounts = stage(app.path(), &files, &[]).expect("stage");
        assert_eq!(mounts.preopens.len(), 2);
        let root = &mounts.preopens[0];
        assert_eq!(root.guest, "/");
        assert_eq!(
            std::fs::read_to_string(root.host.join("static/a.txt")).expect("a"),
            "a"
        );
        assert_eq!(
            std::fs::read_to_string(root.host.join("top.txt")).expect("top"),
            "top"
        );
        assert!(!root.host.join("static/b.md").exists());
        assert!(
            !root.host.join("static/sub/c.txt").exists(),
            "* does not cross directories"
        );
        assert_eq!(mounts.preopens[1].guest, "/assets");

        let whole_dir = vec![FileMount::Pattern("static".into())];
        let mounts = stage(app.path(), &whole_dir, &["static/*.md".to_owned()]).expect("stage");
        let root = &mounts.preopens[0].host;
        assert!(root.join("static/sub/c.txt").exists());
        assert!(!root.join("static/b.md").exists(), "excluded");
    }

    #[test]
    fn refuses_escapes_and_missing_directories() {
        let app = tempfile::tempdir().expect("tempdir");
        assert!(
            stage(
                app.path(),
                &[FileMount::Pattern("../etc/passwd".into())],
                &[]
            )
            .is_err()
        );
        assert!(stage(app.path(), &[FileMount::Pattern("/etc/passwd".into())], &[]).is_err());
        let missing = FileMount::Placement {
            source: "nope".into(),
            destination: "/x".into(),
        };
        assert!(stage(app.path(), &[missing], &[]).is_err());
        let relative = FileMount::Placement {
            source: ".".into(),
            destination: "x".into(),
        };
        assert!(stage(app.path(), &[relative], &[]).is_err());
    }

    #[test]
    fn a_placement_with_exclude_files_is_refused_not_served_whole() {
        let app = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(app.path().join("site")).expect("mkdir");
        let placement = FileMount::Placement {
            source: "site".into(),
            destination: "/".into(),
        };
        let error = stage(app.path(), &[placement], &["site/secret.txt".into()])
            .expect_err("refused")
            .to_string();
        assert!(error.contains("exclude_files"), "{error}");
    }
}
