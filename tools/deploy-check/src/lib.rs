//! The Kubernetes manifests under `deploy/k8s`, read with just the fields the checks need, and
//! the rewriting that lets a test run a container's command line on this machine (its
//! `tests/k8s.rs` starts the real release binaries with them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub name: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(u16),
    Str(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGet {
    pub path: String,
    pub port: IntOrString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub http_get: Option<HttpGet>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    pub field_path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvSource {
    pub secret_key_ref: Option<KeyRef>,
    pub field_ref: Option<FieldRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvSource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: u16,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    #[serde(default)]
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    pub run_as_non_root: Option<bool>,
    pub read_only_root_filesystem: Option<bool>,
    pub allow_privilege_escalation: Option<bool>,
    pub capabilities: Option<Capabilities>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    pub readiness_probe: Option<Probe>,
    pub liveness_probe: Option<Probe>,
    pub startup_probe: Option<Probe>,
    pub security_context: Option<SecurityContext>,
    pub resources: Option<serde_norway::Value>,
}

impl Container {
    /// The container port a probe or Service names (by name or number).
    pub fn port(&self, port: &IntOrString) -> Option<u16> {
        match port {
            IntOrString::Int(n) => self
                .ports
                .iter()
                .find(|p| p.container_port == *n)
                .map(|p| p.container_port),
            IntOrString::Str(name) => self
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port),
        }
    }

    /// Every HTTP probe, with its kind.
    pub fn http_probes(&self) -> Vec<(&'static str, &HttpGet)> {
        [
            ("readiness", &self.readiness_probe),
            ("liveness", &self.liveness_probe),
            ("startup", &self.startup_probe),
        ]
        .into_iter()
        .filter_map(|(kind, p)| p.as_ref()?.http_get.as_ref().map(|h| (kind, h)))
        .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Vec<Container>,
    pub automount_service_account_token: Option<bool>,
    pub security_context: Option<SecurityContext>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(default)]
    pub metadata: Meta,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    pub replicas: Option<u32>,
    pub selector: Option<Selector>,
    pub template: PodTemplate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target_port: Option<IntOrString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePort>,
    pub session_affinity: Option<String>,
}

/// One document of a manifest file.
#[derive(Debug, Clone)]
pub enum Object {
    /// A Deployment or a Job: a pod template.
    Workload {
        kind: String,
        meta: Meta,
        spec: WorkloadSpec,
    },
    Service {
        meta: Meta,
        spec: ServiceSpec,
    },
    Secret {
        meta: Meta,
        string_data: BTreeMap<String, String>,
    },
    Kustomization {
        resources: Vec<String>,
    },
    Other {
        kind: String,
    },
}

/// A manifest file's documents.
#[derive(Debug, Clone)]
pub struct File {
    pub path: PathBuf,
    pub objects: Vec<Object>,
}

fn field<T: serde::de::DeserializeOwned>(v: &serde_norway::Value, name: &str) -> anyhow::Result<T> {
    let value = v.get(name).cloned().unwrap_or(serde_norway::Value::Null);
    serde_norway::from_value(value).with_context(|| format!("field `{name}`"))
}

/// Parses one YAML document into an [`Object`]; fails on a missing `kind` or on a field of
/// the wrong shape.
pub fn object(v: &serde_norway::Value) -> anyhow::Result<Object> {
    let kind: String = field(v, "kind")?;
    Ok(match kind.as_str() {
        "Deployment" | "Job" => Object::Workload {
            meta: field(v, "metadata")?,
            spec: field(v, "spec")?,
            kind,
        },
        "Service" => Object::Service {
            meta: field(v, "metadata")?,
            spec: field(v, "spec")?,
        },
        "Secret" => Object::Secret {
            meta: field(v, "metadata")?,
            string_data: field::<Option<_>>(v, "stringData")?.unwrap_or_default(),
        },
        "Kustomization" => Object::Kustomization {
            resources: field::<Option<_>>(v, "resources")?.unwrap_or_default(),
        },
        _ => Object::Other { kind },
    })
}

/// Every `.yaml` file under `dir`, parsed, sorted by path.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<File>> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        let mut objects = Vec::new();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v = serde_norway::Value::deserialize(doc)
                .with_context(|| format!("parsing {}", path.display()))?;
            if v.is_null() {
                continue;
            }
            objects.push(object(&v).with_context(|| format!("in {}", path.display()))?);
        }
        if objects.is_empty() {
            bail!("{} holds no object", path.display());
        }
        files.push(File { path, objects });
    }
    Ok(files)
}

/// `value` with every bind address `0.0.0.0:<from>` or `[::]:<from>` (the whole port number)
/// replaced by `127.0.0.1:<to>`; the count of replacements beside it. A manifest that binds a
/// port on 127.0.0.1 is not rewritten, so a probe from outside the pod (the test's, the
/// kubelet's) finds nothing there.
pub fn rebind(value: &str, from: u16, to: u16) -> (String, usize) {
    let mut out = value.to_owned();
    let mut count = 0;
    for host in ["0.0.0.0", "[::]"] {
        let needle = format!("{host}:{from}");
        let mut rest = out.as_str();
        let mut next = String::new();
        while let Some(i) = rest.find(&needle) {
            let after = &rest[i + needle.len()..];
            next.push_str(&rest[..i]);
            if after.starts_with(|c: char| c.is_ascii_digit()) {
                next.push_str(&needle);
            } else {
                next.push_str(&format!("127.0.0.1:{to}"));
                count += 1;
            }
            rest = after;
        }
        next.push_str(rest);
        out = next;
    }
    (out, count)
}

/// The environment variable names a binary's `--help` lists (clap's `[env: NAME=]`).
pub fn env_names_in_help(help: &str) -> Vec<String> {
    help.match_indices("[env: ")
        .filter_map(|(i, m)| {
            let rest = &help[i + m.len()..];
            rest.find('=').map(|end| rest[..end].to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebind_replaces_whole_ports_on_wildcard_hosts_only() {
        assert_eq!(
            rebind("--listen=0.0.0.0:3001", 3001, 40000),
            ("--listen=127.0.0.1:40000".to_owned(), 1)
        );
        assert_eq!(rebind("[::]:3001", 3001, 5), ("127.0.0.1:5".to_owned(), 1));
        assert_eq!(rebind("0.0.0.0:30011", 3001, 5).1, 0);
        assert_eq!(rebind("127.0.0.1:3001", 3001, 5).1, 0);
    }

    #[test]
    fn env_names_are_read_from_clap_help() {
        let help =
            "  --listen <LISTEN>  Address [env: HUB_LISTEN=] [default: x]\n  --a [env: A_B=]";
        assert_eq!(env_names_in_help(help), ["HUB_LISTEN", "A_B"]);
    }
}
