//! Application and component variable resolution, following Spin's rules.
//!
//! Application variables come from `[variables]` (a `default`, or `required = true`), overridden
//! by `SPIN_VARIABLE_<NAME>` values; component variables are templates over them. Everything is
//! resolved once at startup so a missing or misspelled variable stops the host before it serves.

use std::collections::{BTreeMap, HashMap};

use crate::manifest::Variable;
use crate::template::{Template, TemplateError};

/// The environment prefix Spin reads variable overrides from.
pub const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// A variable declaration or value could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    /// The name breaks Spin's naming rules.
    #[error("invalid variable name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A `[variables]` entry is neither required nor defaulted, or is both.
    #[error("variable {name:?}: {reason}")]
    Declaration {
        /// The variable.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A required variable has no value.
    #[error(
        "required variable {name:?} has no value: set {env} (or pass it as an override)",
        env = env_name(name)
    )]
    RequiredMissing {
        /// The variable.
        name: String,
    },
    /// A component template is malformed or names an unknown application variable.
    #[error("component {component:?}, {field}: {source}")]
    Template {
        /// The component id.
        component: String,
        /// Which value holds the template (`variables.x`, `allowed_outbound_hosts[0]`).
        field: String,
        /// The template error.
        source: TemplateError,
    },
}

/// The environment variable that overrides `name` (`redis_host` → `SPIN_VARIABLE_REDIS_HOST`).
pub fn env_name(name: &str) -> String {
    format!("{ENV_PREFIX}{}", name.to_ascii_uppercase())
}

/// Checks a variable name like Spin's `Key::validate`: lowercase ASCII letters, digits and
/// single underscores, starting with a letter and ending with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return Err("must not be empty".to_owned());
    };
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "invalid character {bad:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ));
    }
    if !first.is_ascii_lowercase() {
        return Err("must start with a lowercase ASCII letter".to_owned());
    }
    if !last.is_ascii_alphanumeric() {
        return Err("must end with a lowercase ASCII letter or digit".to_owned());
    }
    if name.contains("__") {
        return Err("must not contain multiple consecutive underscores".to_owned());
    }
    Ok(())
}

/// Collects overrides from `SPIN_VARIABLE_<NAME>` pairs (e.g. `std::env::vars_os()`), keyed by
/// the lowercase variable name. Spin's environment provider looks up exactly
/// `SPIN_VARIABLE_<NAME in upper case>`, so a mixed-case suffix names no variable, and an entry
/// that is not Unicode is skipped rather than fatal.
pub fn overrides_from_env(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> HashMap<String, String> {
    vars.into_iter()
        .filter_map(|(key, value)| {
            let (key, value) = (key.into_string().ok()?, value.into_string().ok()?);
            let name = key.strip_prefix(ENV_PREFIX)?;
            let upper = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
            (!name.is_empty() && name.chars().all(upper))
                .then(|| (name.to_ascii_lowercase(), value))
        })
        .collect()
}

/// Resolves every application variable: override, else default, else an error if required.
///
/// Overrides for undeclared names are ignored (Spin only asks providers about declared ones).
pub fn resolve_app(
    declared: &BTreeMap<String, Variable>,
    overrides: &HashMap<String, String>,
) -> Result<HashMap<String, String>, VariableError> {
    let mut values = HashMap::with_capacity(declared.len());
    for (name, decl) in declared {
        validate_name(name).map_err(|reason| VariableError::InvalidName {
            name: name.clone(),
            reason,
        })?;
        match (decl.required, &decl.default) {
            (true, Some(_)) => {
                return Err(VariableError::Declaration {
                    name: name.clone(),
                    reason: "a required variable must not have a default".to_owned(),
                });
            }
            (false, None) => {
                return Err(VariableError::Declaration {
                    name: name.clone(),
                    reason: "must either be `required = true` or have a `default`".to_owned(),
                });
            }
            _ => {}
        }
        let value = overrides
            .get(&name.to_ascii_lowercase())
            .or(decl.default.as_ref())
            .cloned()
            .ok_or_else(|| VariableError::RequiredMissing { name: name.clone() })?;
        values.insert(name.clone(), value);
    }
    Ok(values)
}

/// Renders one component template against the resolved application variables.
pub fn render(
    component: &str,
    field: &str,
    source: &str,
    app_values: &HashMap<String, String>,
) -> Result<String, VariableError> {
    let template_error = |source| VariableError::Template {
        component: component.to_owned(),
        field: field.to_owned(),
        source,
    };
    Template::parse(source)
        .and_then(|t| t.render(app_values))
        .map_err(template_error)
}

/// Resolves a component's `[component.<id>.variables]` table.
pub fn resolve_component(
    component: &str,
    templates: &HashMap<String, String>,
    app_values: &HashMap<String, String>,
) -> Result<HashMap<String, String>, VariableError> {
    templates
        .iter()
        .map(|(name, template)| {
            validate_name(name).map_err(|reason| VariableError::InvalidName {
                name: name.clone(),
                reason,
            })?;
            let value = render(
                component,
                &format!("variables.{name}"),
                template,
                app_values,
            )?;
            Ok((name.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(default: Option<&str>, required: bool) -> Variable {
        Variable {
            default: default.map(str::to_owned),
            required,
            ..Variable::default()
        }
    }

    fn declared() -> BTreeMap<String, Variable> {
        BTreeMap::from([
            ("redis_host".to_owned(), decl(Some("127.0.0.1:6380"), false)),
            ("session_secret".to_owned(), decl(None, true)),
        ])
    }

    #[test]
    fn names_follow_spin_rules() {
        for good in ["a", "abc", "a1b2c3", "a_1", "a_1_b_3"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "aX", "1bc", "_x", "x.y", "x_", "a__b", "x-y"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let overrides = HashMap::from([("session_secret".to_owned(), "s3cret".to_owned())]);
        let values = resolve_app(&declared(), &overrides).expect("resolves");
        assert_eq!(values["redis_host"], "127.0.0.1:6380");
        assert_eq!(values["session_secret"], "s3cret");

        let overrides = HashMap::from([
            ("session_secret".to_owned(), "x".to_owned()),
            ("redis_host".to_owned(), "10.0.0.1:6379".to_owned()),
            ("undeclared".to_owned(), "ignored".to_owned()),
        ]);
        let values = resolve_app(&declared(), &overrides).expect("resolves");
        assert_eq!(values["redis_host"], "10.0.0.1:6379");
        assert!(!values.contains_key("undeclared"));
    }

    #[test]
    fn env_overrides_are_lowercased_like_spin() {
        use std::os::unix::ffi::OsStringExt;
        let env = [
            ("SPIN_VARIABLE_SESSION_SECRET", "from-env"),
            ("SPIN_VARIABLE_", "empty name"),
            ("SPIN_VARIABLE_Redis_Host", "not a name Spin looks up"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.into(), v.into()))
        .into_iter()
        .chain([(
            "SPIN_VARIABLE_NOT_UNICODE".into(),
            std::ffi::OsString::from_vec(vec![0xff, 0xfe]),
        )]);
        let overrides = overrides_from_env(env);
        assert_eq!(overrides.len(), 1);
        assert_eq!(overrides["session_secret"], "from-env");
        let values = resolve_app(&declared(), &overrides).expect("resolves");
        assert_eq!(values["session_secret"], "from-env");
        assert_eq!(env_name("redis_host"), "SPIN_VARIABLE_REDIS_HOST");
    }

    #[test]
    fn a_required_variable_without_value_is_a_clear_error() {
        let err = resolve_app(&declared(), &HashMap::new()).expect_err("missing");
        assert_eq!(
            err,
            VariableError::RequiredMissing {
                name: "session_secret".to_owned()
            }
        );
        assert!(
            err.to_string().contains("SPIN_VARIABLE_SESSION_SECRET"),
            "{err}"
        );
    }

    #[test]
    fn bad_declarations_are_rejected() {
        let both = BTreeMap::from([("x".to_owned(), decl(Some("1"), true))]);
        assert!(matches!(
            resolve_app(&both, &HashMap::new()),
            Err(VariableError::Declaration { .. })
        ));
        let neither = BTreeMap::from([("x".to_owned(), decl(None, false))]);
        assert!(matches!(
            resolve_app(&neither, &HashMap::new()),
            Err(VariableError::Declaration { .. })
        ));
        let bad_name = BTreeMap::from([("Bad".to_owned(), decl(Some("1"), false))]);
        assert!(matches!(
            resolve_app(&bad_name, &HashMap::new()),
            Err(VariableError::InvalidName { .. })
        ));
    }

    #[test]
    fn component_templates_resolve_and_unknown_references_fail() {
        let app = HashMap::from([("redis_host".to_owned(), "h:1".to_owned())]);
        let templates = HashMap::from([
            (
                "redis_address".to_owned(),
                "redis://{{ redis_host }}".to_owned(),
            ),
            ("plain".to_owned(), "literal".to_owned()),
        ]);
        let values = resolve_component("likes", &templates, &app).expect("resolves");
        assert_eq!(values["redis_address"], "redis://h:1");
        assert_eq!(values["plain"], "literal");

        let unknown = HashMap::from([("x".to_owned(), "{{ nope }}".to_owned())]);
        let err = resolve_component("likes", &unknown, &app).expect_err("unknown");
        assert!(
            matches!(err, VariableError::Template { ref component, .. } if component == "likes")
        );
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
