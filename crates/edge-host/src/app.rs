//! The application as the host runs it: the manifest, resolved and validated once at startup.
//!
//! Loading turns `spin.toml` into a route table and one [`ComponentSpec`] per component with its
//! variables, allow-list, environment and file mounts already resolved, so serving never
//! re-reads or re-parses configuration.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::files::{self, Mounts};
use crate::manifest::{Manifest, ManifestError};
use crate::outbound::{AllowedHosts, OutboundError};
use crate::routes::{RouteError, Router};
use crate::variables::{self, VariableError};

/// The application could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Reading or parsing the manifest failed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A variable could not be resolved.
    #[error(transparent)]
    Variable(#[from] VariableError),
    /// A route is invalid.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// An `allowed_outbound_hosts` entry is invalid.
    #[error("component {component:?}: allowed_outbound_hosts: {source}")]
    Outbound {
        /// The component id.
        component: String,
        /// The parse error.
        source: OutboundError,
    },
    /// A component is misconfigured or unsupported.
    #[error("component {component:?}: {message}")]
    Component {
        /// The component id.
        component: String,
        /// What is wrong.
        message: String,
    },
    /// Staging `files` failed.
    #[error("component {component:?}: {source:#}")]
    Files {
        /// The component id.
        component: String,
        /// The staging error.
        source: anyhow::Error,
    },
}

/// One component, fully resolved.
#[derive(Debug)]
pub struct ComponentSpec {
    /// The component id (`[component.<id>]`).
    pub id: String,
    /// Absolute or manifest-relative path to the `.wasm`.
    pub source: PathBuf,
    /// Resolved component variables (what `fermyon:spin/variables.get` returns).
    pub variables: HashMap<String, String>,
    /// Environment variables for the guest.
    pub environment: Vec<(String, String)>,
    /// Outbound allow-list with templates expanded.
    pub allowed_hosts: AllowedHosts,
    /// Directories to preopen.
    pub mounts: Mounts,
}

/// A loaded application.
#[derive(Debug)]
pub struct App {
    /// `[application] name`.
    pub name: String,
    /// `[application] version`.
    pub version: Option<String>,
    /// The HTTP route table.
    pub router: Router,
    /// Components referenced by at least one HTTP trigger, by id.
    pub components: BTreeMap<String, ComponentSpec>,
}

impl App {
    /// Loads `manifest_path`, applying variable `overrides` (lowercase names).
    pub fn load(
        manifest_path: &Path,
        overrides: &HashMap<String, String>,
    ) -> Result<Self, AppError> {
        let manifest = Manifest::from_file(manifest_path)?;
        let base = manifest_path.parent().unwrap_or_else(|| Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        let app_values = variables::resolve_app(&manifest.variables, overrides)?;

        let triggers = manifest.http_triggers(manifest_path)?;
        let mut referenced = Vec::new();
        for trigger in &triggers {
            let component = |message: String| AppError::Component {
                component: trigger.component.to_string(),
                message,
            };
            let id = trigger.component_id().map_err(component)?;
            trigger.check_executor().map_err(|m| AppError::Component {
                component: id.to_owned(),
                message: m,
            })?;
            if !manifest.component.contains_key(id) {
                return Err(AppError::Component {
                    component: id.to_owned(),
                    message:
                        "[[trigger.http]] refers to a component that has no [component.<id>] table"
                            .to_owned(),
                });
            }
            referenced.push((id, &trigger.route));
        }
        let router = Router::build(referenced.iter().map(|(id, route)| (*id, *route)))?;

        let mut components = BTreeMap::new();
        for (id, _) in &referenced {
            if components.contains_key(*id) {
                continue;
            }
            let Some(component) = manifest.component.get(*id) else {
                continue;
            };
            let spec = resolve_component(id, component, base, &app_values)?;
            components.insert((*id).to_owned(), spec);
        }
        Ok(Self {
            name: manifest.application.name,
            version: manifest.application.version,
            router,
            components,
        })
    }
}

/// Refuses to start a component whose `session_secret` variable would sign guessable tokens
/// (under 32 bytes, or the published dev secret without `dev_mode=true`). The components refuse
/// it too, per request, since Spin has no start-up hook; here it fails once, at start-up, with
/// one line saying why.
fn check_session_secret(id: &str, variables: &HashMap<String, String>) -> Result<(), AppError> {
    let Some(secret) = variables.get("session_secret") else {
        return Ok(());
    };
    let dev_mode = variables
        .get("dev_mode")
        .is_some_and(|v| v.trim() == "true");
    likes_core::session::SessionSecret::parse(secret, dev_mode)
        .map(drop)
        .map_err(|e| AppError::Component {
            component: id.to_owned(),
            message: e.to_string(),
        })
}

fn resolve_component(
    id: &str,
    component: &crate::manifest::Component,
    base: &Path,
    app_values: &HashMap<String, String>,
) -> Result<ComponentSpec, AppError> {
    let fail = |message: String| AppError::Component {
        component: id.to_owned(),
        message,
    };
    if !component.allowed_http_hosts.is_empty() {
        return Err(fail(
            "`allowed_http_hosts` is a v1 key; list the hosts in `allowed_outbound_hosts` instead"
                .to_owned(),
        ));
    }
    for (key, values) in [
        ("key_value_stores", &component.key_value_stores),
        ("sqlite_databases", &component.sqlite_databases),
        ("ai_models", &component.ai_models),
    ] {
        if !values.is_empty() {
            tracing::warn!(
                component = id,
                key,
                "not provided by edge-host: ignored (a component importing that interface will fail to link)"
            );
        }
    }
    let source = base.join(component.source_path().map_err(fail)?);
    let variables = variables::resolve_component(id, &component.variables, app_values)?;
    check_session_secret(id, &variables)?;

    let expanded = component
        .allowed_outbound_hosts
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            variables::render(
                id,
                &format!("allowed_outbound_hosts[{i}]"),
                entry,
                app_values,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_hosts = AllowedHosts::parse(&expanded).map_err(|source| AppError::Outbound {
        component: id.to_owned(),
        source,
    })?;

    let mut environment: Vec<(String, String)> = component
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    environment.sort();

    let mounts =
        files::stage(base, &component.files, &component.exclude_files).map_err(|source| {
            AppError::Files {
                component: id.to_owned(),
                source,
            }
        })?;

    Ok(ComponentSpec {
        id: id.to_owned(),
        source,
        variables,
        environment,
        allowed_hosts,
        mounts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace_manifest() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml")
    }

    #[test]
    fn loads_the_real_spin_toml() {
        let overrides = HashMap::from([
            ("session_secret".to_owned(), SECRET.to_owned()),
            ("redis_host".to_owned(), "127.0.0.1:7777".to_owned()),
            ("redis_user".to_owned(), "likes-edge".to_owned()),
            ("redis_password".to_owned(), "pw".to_owned()),
        ]);
        let app = App::load(&workspace_manifest(), &overrides).expect("loads");
        assert_eq!(app.name, "likes");
        let likes = &app.components["likes"];
        assert!(
            likes
                .source
                .ends_with("target/wasm32-wasip2/component/likes.wasm")
        );
        assert_eq!(
            likes.variables["redis_address"],
            "redis://likes-edge:pw@127.0.0.1:7777"
        );
        assert_eq!(likes.variables["session_secret"], SECRET);
        assert!(
            likes
                .allowed_hosts
                .allows("redis://127.0.0.1:7777", "redis")
        );
        assert!(
            !likes
                .allowed_hosts
                .allows("redis://127.0.0.1:6380", "redis")
        );
        let m = app.router.route("/api/posts/p_1/like").expect("routed");
        assert_eq!(m.component, "likes");
        assert_eq!(m.params, vec![("id", "p_1".to_owned())]);
        assert_eq!(
            app.router.route("/api/session").map(|m| m.component),
            Some("session")
        );
        // Everything that is not an API route belongs to the web app.
        assert_eq!(
            app.router.route("/p/42").map(|m| m.component),
            Some("static-app")
        );
    }

    const SECRET: &str = "edge-host-unit-test-secret-32-bytes-or-more";

    #[test]
    fn a_weak_session_secret_is_a_startup_error() {
        let load = |pairs: &[(&str, &str)]| {
            let mut overrides: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            overrides.insert("redis_host".to_owned(), "127.0.0.1:7777".to_owned());
            App::load(&workspace_manifest(), &overrides)
        };
        let err = load(&[("session_secret", "short")]).expect_err("5 bytes");
        assert!(err.to_string().contains("at least 32"), "{err}");
        let dev = likes_core::session::DEV_SECRET;
        let err = load(&[("session_secret", dev)]).expect_err("dev secret");
        assert!(err.to_string().contains("dev_mode=true"), "{err}");
        assert!(load(&[("session_secret", dev), ("dev_mode", "true")]).is_ok());
        assert!(load(&[("session_secret", SECRET)]).is_ok());
    }

    #[test]
    fn the_real_spin_toml_needs_the_session_secret() {
        let err = App::load(&workspace_manifest(), &HashMap::new()).expect_err("secret missing");
        assert!(
            err.to_string().contains("SPIN_VARIABLE_SESSION_SECRET"),
            "{err}"
        );
    }

    #[test]
    fn unknown_template_variables_and_components_are_startup_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("spin.toml");
        let write = |text: &str| std::fs::write(&path, text).expect("write");
        let head = "spin_manifest_version = 2\n[application]\nname = \"t\"\n[variables]\nhost = { default = \"h:1\" }\n";

        write(&format!(
            "{head}[[trigger.http]]\nroute = \"/\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\nallowed_outbound_hosts = [\"redis://{{{{ hots }}}}\"]\n"
        ));
        let err = App::load(&path, &HashMap::new()).expect_err("unknown variable");
        assert!(err.to_string().contains("hots"), "{err}");

        write(&format!(
            "{head}[[trigger.http]]\nroute = \"/\"\ncomponent = \"missing\"\n"
        ));
        let err = App::load(&path, &HashMap::new()).expect_err("unknown component");
        assert!(err.to_string().contains("missing"), "{err}");

        write(&format!(
            "{head}[[trigger.http]]\nroute = \"/\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n[component.c.variables]\naddr = \"redis://{{{{ host }}}}\"\n"
        ));
        let app = App::load(&path, &HashMap::new()).expect("loads");
        assert_eq!(app.components["c"].variables["addr"], "redis://h:1");
        assert_eq!(app.components["c"].source, dir.path().join("c.wasm"));
    }
}
