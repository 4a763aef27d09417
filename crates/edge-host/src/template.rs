//! `{{ name }}` templates, as Spin's `spin-expressions` parses them.
//!
//! A template is literal text with expressions in double curly braces; an expression is a
//! variable name (whitespace around it is trimmed). There is no escaping, exactly like Spin.

use std::collections::HashMap;

/// A template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` without a matching `}}`.
    #[error("unmatched '{{{{' in template {0:?}")]
    Unmatched(String),
    /// An expression names a variable that has no value.
    #[error("unknown variable {name:?} in template {template:?}")]
    UnknownVariable {
        /// The variable the template refers to.
        name: String,
        /// The template text.
        template: String,
    },
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Expr(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `source`, failing on an unmatched `{{`.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            if let Some(after_open) = rest.strip_prefix("{{") {
                let (expr, after) = after_open
                    .split_once("}}")
                    .ok_or_else(|| TemplateError::Unmatched(source.to_owned()))?;
                parts.push(Part::Expr(expr.trim().to_owned()));
                rest = after;
            } else {
                let end = rest.find("{{").unwrap_or(rest.len());
                parts.push(Part::Lit(rest[..end].to_owned()));
                rest = &rest[end..];
            }
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// True when the template has no expressions.
    #[cfg(test)]
    fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// The variable names the template refers to, in order.
    #[cfg(test)]
    fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(name) => Some(name.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Substitutes every expression from `values`.
    pub fn render(&self, values: &HashMap<String, String>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Lit(lit) => out.push_str(lit),
                Part::Expr(name) => {
                    let value = values
                        .get(name)
                        .ok_or_else(|| TemplateError::UnknownVariable {
                            name: name.clone(),
                            template: self.source.clone(),
                        })?;
                    out.push_str(value);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses and renders `source` in one step.
    fn expand(source: &str, values: &HashMap<String, String>) -> Result<String, TemplateError> {
        Template::parse(source)?.render(values)
    }

    fn values() -> HashMap<String, String> {
        HashMap::from([
            ("redis_host".to_owned(), "127.0.0.1:6379".to_owned()),
            ("x".to_owned(), "1".to_owned()),
        ])
    }

    #[test]
    fn literal_text_is_unchanged() {
        assert_eq!(
            expand("redis://a:1", &values()).as_deref(),
            Ok("redis://a:1")
        );
        assert_eq!(expand("", &values()).as_deref(), Ok(""));
        assert!(Template::parse("plain").expect("parse").is_literal());
    }

    #[test]
    fn expressions_are_substituted_and_trimmed() {
        assert_eq!(
            expand("redis://{{ redis_host }}", &values()).as_deref(),
            Ok("redis://127.0.0.1:6379")
        );
        assert_eq!(
            expand("{{x}}{{  x  }}-{{x}}", &values()).as_deref(),
            Ok("11-1")
        );
        let t = Template::parse("a{{ x }}b{{redis_host}}").expect("parse");
        assert_eq!(t.variables().collect::<Vec<_>>(), ["x", "redis_host"]);
        assert!(!t.is_literal());
    }

    #[test]
    fn unmatched_braces_are_an_error() {
        assert!(matches!(
            Template::parse("{{ x }} {{ y"),
            Err(TemplateError::Unmatched(_))
        ));
    }

    #[test]
    fn unknown_variables_are_an_error() {
        let err = expand("{{ nope }}", &values()).expect_err("unknown");
        assert!(matches!(err, TemplateError::UnknownVariable { ref name, .. } if name == "nope"));
    }

    #[test]
    fn single_closing_braces_are_literal() {
        assert_eq!(expand("a}}b}", &values()).as_deref(), Ok("a}}b}"));
    }
}
