//! `spin.toml` (Spin manifest v2): components, their build commands, Spin
//! variables, and livesnap's `[[trigger.snapshot]]` templates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::template::SnapshotConfig;

/// A loaded manifest.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    /// Where it came from (`None` for the embedded default).
    pub path: Option<PathBuf>,
    /// Templates, in file order, variables substituted.
    pub templates: Vec<SnapshotConfig>,
    /// Components by name.
    pub components: BTreeMap<String, ComponentDecl>,
    /// `[[trigger.http]]` routes, in file order.
    pub http_routes: Vec<HttpRoute>,
    /// Pull sources: `[[trigger.snapshot.source]]` tables (`stream`, `url`)
    /// under a template, captured with it.
    pub sources: Vec<crate::source::Source>,
}

/// A `[[trigger.http]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRoute {
    /// `/path`, or `/prefix/...` for everything under a prefix.
    pub route: String,
    /// The component that handles it.
    pub component: String,
}

impl HttpRoute {
    /// How well this route matches `path`: `None` if not at all, else the
    /// length of what it matched (the longest match wins).
    pub fn matches(&self, path: &str) -> Option<usize> {
        match self.route.strip_suffix("/...") {
            Some(prefix) if path == prefix || path.starts_with(&format!("{prefix}/")) || prefix.is_empty() => Some(prefix.len()),
            Some(_) => None,
            None => (path == self.route || path.trim_end_matches('/') == self.route.trim_end_matches('/')).then_some(self.route.len() + 1),
        }
    }
}

/// A `[component.NAME]` entry.
#[derive(Clone, Debug)]
pub struct ComponentDecl {
    /// The Wasm file, resolved against the manifest's folder.
    pub source: PathBuf,
    /// `[component.NAME.build]`.
    pub build: Option<BuildDecl>,
    /// Spin's `allowed_outbound_hosts`.
    pub allowed_outbound_hosts: Vec<String>,
    /// Spin's `key_value_stores`.
    pub key_value_stores: Vec<String>,
    /// `[component.X.variables]`, application variables substituted.
    pub variables: BTreeMap<String, String>,
    /// Spin's `environment`: WASI environment variables.
    pub environment: BTreeMap<String, String>,
}

/// How to build a component.
#[derive(Clone, Debug)]
pub struct BuildDecl {
    /// A shell command.
    pub command: String,
    /// Its working directory, resolved against the manifest's folder.
    pub workdir: PathBuf,
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: Option<toml::Value>,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize, Default)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    snapshot: Vec<toml::Value>,
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    stream: String,
    url: String,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: String,
    component: String,
}

#[derive(Deserialize)]
struct RawComponent {
    source: toml::Value,
    build: Option<RawBuild>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawBuild {
    command: String,
    workdir: Option<String>,
}

/// Reads and parses a manifest; Spin variables come from `SPIN_VARIABLE_*`.
pub fn load(path: &Path) -> Result<Manifest, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let mut m =
        parse(&text, &dir, &|name| std::env::var(format!("SPIN_VARIABLE_{}", name.to_uppercase())).ok()).map_err(|e| e.in_file(path))?;
    m.path = Some(path.to_owned());
    Ok(m)
}

/// Parses manifest text; relative paths resolve against `dir`.
pub fn parse(text: &str, dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Manifest, ConfigError> {
    let raw: RawManifest = toml::from_str(text).map_err(|e| ConfigError::Parse { path: None, message: e.to_string() })?;
    match raw.spin_manifest_version.as_ref().and_then(toml::Value::as_integer) {
        Some(2) => {}
        _ => {
            return Err(ConfigError::Invalid("spin_manifest_version must be 2".into()));
        }
    }
    let resolve = |name: &str| -> Result<String, ConfigError> {
        let decl = raw
            .variables
            .get(name)
            .ok_or_else(|| ConfigError::Variable { name: name.into(), message: "is used but not declared in [variables]".into() })?;
        match env(name).or_else(|| decl.default.clone()) {
            Some(v) => Ok(v),
            None if decl.required => {
                Err(ConfigError::Variable { name: name.into(), message: format!("is required: set SPIN_VARIABLE_{}", name.to_uppercase()) })
            }
            None => Ok(String::new()),
        }
    };
    let mut templates = Vec::new();
    let mut sources = Vec::new();
    for (i, value) in raw.trigger.snapshot.into_iter().enumerate() {
        let mut value = substitute(value, &resolve)?;
        let declared = value.as_table_mut().and_then(|t| t.remove("source"));
        let config: SnapshotConfig = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(format!("[[trigger.snapshot]] #{}: {}", i + 1, e.message())))?;
        if let Some(declared) = declared {
            let list: Vec<RawSource> = declared.try_into().map_err(|e: toml::de::Error| {
                ConfigError::Invalid(format!("[[trigger.snapshot.source]] of #{}: {}", i + 1, e.message()))
            })?;
            for s in list {
                let source = crate::source::Source {
                    domain: config.domain.to_ascii_lowercase(),
                    app: config.app().into(),
                    stream: s.stream,
                    url: s.url,
                };
                source.validate().map_err(|e| ConfigError::Invalid(format!("[[trigger.snapshot.source]] {}: {e}", source.label())))?;
                sources.push(source);
            }
        }
        templates.push(config);
    }
    let mut components = BTreeMap::new();
    for (name, c) in raw.component {
        let source = match c.source {
            toml::Value::String(s) => dir.join(s),
            _ => {
                return Err(ConfigError::Invalid(format!("component '{name}': only a local file path is supported as source")));
            }
        };
        let build = c.build.map(|b| BuildDecl { command: b.command, workdir: dir.join(b.workdir.unwrap_or_default()) });
        let mut variables = BTreeMap::new();
        for (k, v) in c.variables {
            variables.insert(k, expand(&v, &resolve)?);
        }
        components.insert(
            name,
            ComponentDecl {
                source,
                build,
                allowed_outbound_hosts: c.allowed_outbound_hosts,
                key_value_stores: c.key_value_stores,
                variables,
                environment: c.environment,
            },
        );
    }
    let mut http_routes = Vec::new();
    for t in raw.trigger.http {
        if !t.route.starts_with('/') {
            return Err(ConfigError::Invalid(format!("[[trigger.http]] route '{}' must start with '/'", t.route)));
        }
        if !components.contains_key(&t.component) {
            return Err(ConfigError::Invalid(format!(
                "[[trigger.http]] route '{}' names component '{}', which the manifest does not declare",
                t.route, t.component
            )));
        }
        http_routes.push(HttpRoute { route: t.route, component: t.component });
    }
    Ok(Manifest { path: None, templates, components, http_routes, sources })
}

/// Replaces `{{ name }}` in every string with the variable's value.
fn substitute(value: toml::Value, resolve: &dyn Fn(&str) -> Result<String, ConfigError>) -> Result<toml::Value, ConfigError> {
    Ok(match value {
        toml::Value::String(s) => toml::Value::String(expand(&s, resolve)?),
        toml::Value::Array(items) => toml::Value::Array(items.into_iter().map(|v| substitute(v, resolve)).collect::<Result<_, _>>()?),
        toml::Value::Table(table) => {
            toml::Value::Table(table.into_iter().map(|(k, v)| Ok((k, substitute(v, resolve)?))).collect::<Result<_, ConfigError>>()?)
        }
        other => other,
    })
}

fn expand(s: &str, resolve: &dyn Fn(&str) -> Result<String, ConfigError>) -> Result<String, ConfigError> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let close = rest[open..]
            .find("}}")
            .ok_or_else(|| ConfigError::Variable { name: rest[open..].to_string(), message: "has no closing '}}'".into() })?
            + open;
        out.push_str(&rest[..open]);
        out.push_str(&resolve(rest[open + 2..close].trim())?);
        rest = &rest[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_routes_match_exactly_or_by_prefix() {
        let r = |route: &str| HttpRoute { route: route.into(), component: "c".into() };
        assert!(r("/callback").matches("/callback").is_some());
        assert!(r("/callback").matches("/callback/x").is_none());
        assert!(r("/hooks/...").matches("/hooks/a/b").is_some());
        assert!(r("/hooks/...").matches("/hooksx").is_none());
        assert!(r("/...").matches("/anything").is_some());
        assert!(r("/hooks/a").matches("/hooks/a") > r("/hooks/...").matches("/hooks/a"));
    }

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
key = { default = "" , secret = true }
[[trigger.snapshot]]
domain = "localhost"
time_interval = 5
obs_location = { bucket = "snapshots", location = "local" }
auth_key = "{{ key }}"
[component.encode-jpeg]
source = "functions/encode.wasm"
[component.encode-jpeg.build]
command = "cargo build"
workdir = "functions"
"#;

    #[test]
    fn variables_come_from_the_environment() {
        let m = parse(MANIFEST, Path::new("/app"), &|n| (n == "key").then(|| "s3cret".repeat(6))).unwrap();
        assert_eq!(m.templates[0].auth_key.as_deref(), Some("s3cret".repeat(6).as_str()));
        assert_eq!(m.components["encode-jpeg"].source, Path::new("/app/functions/encode.wasm"));
        assert_eq!(m.components["encode-jpeg"].build.as_ref().unwrap().workdir, Path::new("/app/functions"));
    }

    #[test]
    fn unknown_template_fields_and_undeclared_variables_are_errors() {
        let typo = MANIFEST.replace("time_interval", "time_intervall");
        let err = parse(&typo, Path::new("."), &|_| None).unwrap_err().to_string();
        assert!(err.contains("time_intervall"), "{err}");
        let undeclared = MANIFEST.replace("{{ key }}", "{{ nokey }}");
        let err = parse(&undeclared, Path::new("."), &|_| None).unwrap_err().to_string();
        assert!(err.contains("nokey"), "{err}");
    }
}
