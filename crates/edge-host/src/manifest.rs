//! Serde types for the Spin application manifest, version 2 (`spin.toml`).
//!
//! Only what the host needs is modelled; anything Spin would reject (unknown keys, inline
//! components, remote sources) is rejected here too, with an error that names the problem.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The manifest could not be read or is not a manifest this host can run.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {path}: {source}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML does not match the v2 schema.
    #[error("invalid manifest {path}: {message}")]
    Parse {
        /// The manifest path.
        path: PathBuf,
        /// The parser's explanation.
        message: String,
    },
    /// The manifest is well-formed but uses something the host does not support.
    #[error("unsupported manifest {path}: {message}")]
    Unsupported {
        /// The manifest path.
        path: PathBuf,
        /// What is unsupported.
        message: String,
    },
}

/// A parsed `spin.toml` (manifest version 2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Must be 2.
    pub spin_manifest_version: u32,
    /// `[application]`.
    pub application: Application,
    /// `[variables]`: application variables, by name.
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    /// `[[trigger.<type>]]` tables, by trigger type; only `http` is run.
    #[serde(default)]
    pub trigger: BTreeMap<String, Vec<toml::Value>>,
    /// `[component.<id>]` tables, by component id.
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
}

/// `[application]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Application name.
    pub name: String,
    /// Application version.
    #[serde(default)]
    pub version: Option<String>,
    /// Human description.
    #[serde(default)]
    pub description: Option<String>,
    /// Authors (informational).
    #[serde(default)]
    pub authors: Vec<String>,
    /// Deployment targets (informational).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Application-level trigger settings (accepted, ignored).
    #[serde(default)]
    pub trigger: Option<toml::Value>,
}

/// An application variable declaration (`name = { default = "..." }`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// Value used when nothing overrides it.
    #[serde(default)]
    pub default: Option<String>,
    /// Startup fails unless an override supplies a value.
    #[serde(default)]
    pub required: bool,
    /// Never logged.
    #[serde(default)]
    pub secret: bool,
    /// Human description.
    #[serde(default)]
    pub description: Option<String>,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    /// Optional trigger id.
    #[serde(default)]
    pub id: Option<String>,
    /// The route pattern, or `{ private = true }`.
    pub route: RouteConfig,
    /// The component id (inline component tables are not supported).
    pub component: toml::Value,
    /// Executor; only the default `http` executor is supported.
    #[serde(default)]
    pub executor: Option<toml::Value>,
}

/// `route = "/x"` or `route = { private = true }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RouteConfig {
    /// A route pattern.
    Route(String),
    /// A private endpoint, reachable only through service chaining.
    Private(PrivateEndpoint),
}

/// `{ private = true }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateEndpoint {
    /// Must be true.
    pub private: bool,
}

/// `[component.<id>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Path to the `.wasm`, relative to the manifest directory.
    pub source: toml::Value,
    /// Human description.
    #[serde(default)]
    pub description: Option<String>,
    /// Component variables: name → template over application variables.
    #[serde(default)]
    pub variables: HashMap<String, String>,
    /// Environment variables seen by the guest.
    #[serde(default)]
    pub environment: HashMap<String, String>,
    /// Files to mount.
    #[serde(default)]
    pub files: Vec<FileMount>,
    /// Glob patterns removed from `files` matches.
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// Outbound network allow-list (templated).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Deprecated v1 key; rejected with a hint.
    #[serde(default)]
    pub allowed_http_hosts: Vec<String>,
    /// Key-value stores (not provided by this host).
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// SQLite databases (not provided by this host).
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    /// AI models (not provided by this host).
    #[serde(default)]
    pub ai_models: Vec<String>,
    /// Build settings, used by `spin build` only.
    #[serde(default)]
    pub build: Option<toml::Value>,
    /// Tool-specific settings (ignored).
    #[serde(default)]
    pub tool: Option<toml::Value>,
}

/// One `files` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FileMount {
    /// A path or glob relative to the manifest directory, mounted at the same relative path.
    Pattern(String),
    /// A directory mounted at `destination`.
    Placement {
        /// Directory relative to the manifest directory.
        source: String,
        /// Absolute guest path.
        destination: String,
    },
}

impl Manifest {
    /// Reads and parses the manifest at `path`.
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses manifest text; `path` is used in error messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if manifest.spin_manifest_version != 2 {
            return Err(ManifestError::Unsupported {
                path: path.to_owned(),
                message: format!(
                    "spin_manifest_version = {} (only version 2 is supported)",
                    manifest.spin_manifest_version
                ),
            });
        }
        Ok(manifest)
    }

    /// The `[[trigger.http]]` entries; any other trigger type is an error.
    pub fn http_triggers(&self, path: &Path) -> Result<Vec<HttpTrigger>, ManifestError> {
        let unsupported = |message: String| ManifestError::Unsupported {
            path: path.to_owned(),
            message,
        };
        let mut out = Vec::new();
        for (kind, entries) in &self.trigger {
            if kind != "http" {
                return Err(unsupported(format!(
                    "trigger type {kind:?} (this host runs only [[trigger.http]])"
                )));
            }
            for entry in entries {
                let trigger: HttpTrigger =
                    entry.clone().try_into().map_err(|e: toml::de::Error| {
                        ManifestError::Parse {
                            path: path.to_owned(),
                            message: format!("[[trigger.http]]: {e}"),
                        }
                    })?;
                out.push(trigger);
            }
        }
        Ok(out)
    }
}

impl HttpTrigger {
    /// The component id this trigger points at.
    pub fn component_id(&self) -> Result<&str, String> {
        match &self.component {
            toml::Value::String(id) => Ok(id),
            _ => Err(
                "inline component tables in [[trigger.http]] are not supported; \
                      use `component = \"<id>\"` and a [component.<id>] table"
                    .to_owned(),
            ),
        }
    }

    /// Rejects executors other than the default `http` one.
    pub fn check_executor(&self) -> Result<(), String> {
        match &self.executor {
            None => Ok(()),
            Some(value) => match value.get("type").and_then(toml::Value::as_str) {
                Some("http") => Ok(()),
                Some(other) => Err(format!(
                    "executor type {other:?} is not supported (only \"http\")"
                )),
                None => Err("executor must be a table with a `type`".to_owned()),
            },
        }
    }
}

impl Component {
    /// The local source path, relative to the manifest directory.
    pub fn source_path(&self) -> Result<&str, String> {
        match &self.source {
            toml::Value::String(path) => Ok(path),
            _ => Err(
                "only local `source = \"path.wasm\"` is supported (no URL or registry sources)"
                    .to_owned(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace_manifest() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml")
    }

    #[test]
    fn parses_the_real_spin_toml() {
        let path = workspace_manifest();
        let m = Manifest::from_file(&path).expect("spin.toml parses");
        assert_eq!(m.spin_manifest_version, 2);
        assert_eq!(m.application.name, "likes");
        assert!(m.variables["session_secret"].required);
        assert!(m.variables["session_secret"].secret);
        assert_eq!(
            m.variables["redis_host"].default.as_deref(),
            Some("127.0.0.1:6380")
        );
        let triggers = m.http_triggers(&path).expect("http triggers");
        assert!(!triggers.is_empty());
        for t in &triggers {
            let id = t.component_id().expect("component id");
            assert!(
                m.component.contains_key(id),
                "trigger points at unknown component {id}"
            );
            t.check_executor().expect("default executor");
        }
        let likes = &m.component["likes"];
        assert_eq!(
            likes.source_path(),
            Ok("target/wasm32-wasip2/component/likes.wasm")
        );
        assert_eq!(likes.allowed_outbound_hosts, ["redis://{{ redis_host }}"]);
        assert!(likes.build.is_some());
    }

    #[test]
    fn parses_routes_files_and_private_endpoints() {
        let text = r#"
            spin_manifest_version = 2
            [application]
            name = "t"
            [[trigger.http]]
            route = "/a/..."
            component = "c"
            [[trigger.http]]
            route = { private = true }
            component = "c"
            [component.c]
            source = "c.wasm"
            files = ["static/*.txt", { source = "assets", destination = "/assets" }]
            key_value_stores = ["default"]
            environment = { MODE = "test" }
        "#;
        let path = Path::new("t.toml");
        let m = Manifest::parse(text, path).expect("parse");
        let triggers = m.http_triggers(path).expect("triggers");
        assert_eq!(triggers[0].route, RouteConfig::Route("/a/...".into()));
        assert_eq!(
            triggers[1].route,
            RouteConfig::Private(PrivateEndpoint { private: true })
        );
        let c = &m.component["c"];
        assert_eq!(c.files[0], FileMount::Pattern("static/*.txt".into()));
        assert_eq!(
            c.files[1],
            FileMount::Placement {
                source: "assets".into(),
                destination: "/assets".into()
            }
        );
        assert_eq!(c.environment["MODE"], "test");
    }

    #[test]
    fn rejects_unknown_keys_versions_and_trigger_types() {
        let path = Path::new("t.toml");
        let bad_key = "spin_manifest_version = 2\n[application]\nname = \"t\"\n[component.c]\nsource = \"c.wasm\"\nsorce = 1\n";
        assert!(matches!(
            Manifest::parse(bad_key, path),
            Err(ManifestError::Parse { .. })
        ));
        let v1 = "spin_manifest_version = 1\n[application]\nname = \"t\"\n";
        assert!(matches!(
            Manifest::parse(v1, path),
            Err(ManifestError::Unsupported { .. })
        ));
        let redis = "spin_manifest_version = 2\n[application]\nname = \"t\"\n[[trigger.redis]]\nchannel = \"x\"\ncomponent = \"c\"\n";
        let m = Manifest::parse(redis, path).expect("parse");
        assert!(matches!(
            m.http_triggers(path),
            Err(ManifestError::Unsupported { .. })
        ));
    }
}
