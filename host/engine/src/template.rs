//! Snapshot templates: Huawei Live's `LiveSnapshotConfig`, validated, and
//! the resolved form the pipeline runs with.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::capture::SnapshotMode;
use crate::stage::Stage;

/// A template as written in `[[trigger.snapshot]]` (and later the API),
/// with Huawei's field names and livesnap's extensions.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Ingest domain.
    pub domain: String,
    /// Application name; `live` when absent.
    #[serde(default)]
    pub app_name: Option<String>,
    /// Seconds between snapshots, 5–3600.
    pub time_interval: i64,
    /// 0 full (keep every snapshot), 1 instant (keep the latest).
    #[serde(default)]
    pub object_write_mode: i64,
    /// Where snapshots go.
    pub obs_location: ObsLocation,
    /// `on` / `off`.
    #[serde(default)]
    pub call_back_enable: Option<String>,
    /// Callback receiver.
    #[serde(default)]
    pub call_back_url: Option<String>,
    /// Empty, or 32–128 characters.
    #[serde(default)]
    pub auth_key: Option<String>,
    /// `keyframe` (default), `nokeyframe` or `random`.
    #[serde(default)]
    pub snapshot_mode: Option<String>,
    /// Object naming template.
    #[serde(default)]
    pub image_object_format: Option<String>,
    /// `http` or `https`, for `snapshot_url`.
    #[serde(default)]
    pub image_access_protocol: Option<String>,
    /// A domain (e.g. a CDN) for `snapshot_url`.
    #[serde(default)]
    pub image_access_domain: Option<String>,
    /// livesnap: the functions for each stage (component names).
    #[serde(default)]
    pub functions: Option<FunctionNames>,
    /// livesnap: JPEG quality 1–100 (default 80).
    #[serde(default)]
    pub image_quality: Option<i64>,
    /// livesnap: seconds a callback signature stays valid (default 300).
    #[serde(default)]
    pub auth_validity: Option<i64>,
    /// livesnap: wall-clock limit per function call in ms (default 2000).
    #[serde(default)]
    pub function_timeout_ms: Option<i64>,
    /// livesnap: memory cap per function call in MiB (default 128).
    #[serde(default)]
    pub function_memory_mb: Option<i64>,
}

impl SnapshotConfig {
    /// Every field's name, as written.
    pub const FIELDS: &[&str] = &[
        "domain",
        "app_name",
        "time_interval",
        "object_write_mode",
        "obs_location",
        "call_back_enable",
        "call_back_url",
        "auth_key",
        "snapshot_mode",
        "image_object_format",
        "image_access_protocol",
        "image_access_domain",
        "functions",
        "image_quality",
        "auth_validity",
        "function_timeout_ms",
        "function_memory_mb",
    ];

    /// Takes livesnap's extension fields (functions, limits, quality) that
    /// this config leaves unset from `stored`: Huawei's SDK cannot send them,
    /// so a PUT through it must not reset them.
    pub fn keep_extensions_of(&mut self, stored: &SnapshotConfig) {
        self.functions = self.functions.take().or_else(|| stored.functions.clone());
        self.image_quality = self.image_quality.or(stored.image_quality);
        self.auth_validity = self.auth_validity.or(stored.auth_validity);
        self.function_timeout_ms = self.function_timeout_ms.or(stored.function_timeout_ms);
        self.function_memory_mb = self.function_memory_mb.or(stored.function_memory_mb);
    }
}

/// Huawei's `obs_location`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObsLocation {
    /// An authorized bucket.
    pub bucket: String,
    /// The bucket's region; must be the service's.
    pub location: String,
    /// Object-name prefix; `snapshot` when absent.
    #[serde(default)]
    pub object: Option<String>,
}

impl ObsLocation {
    /// Every field's name, as written.
    pub const FIELDS: &[&str] = &["bucket", "location", "object"];
}

/// Component names for the three stages; unset stages use the defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FunctionNames {
    /// Encoder (world `encoder`).
    #[serde(default)]
    pub encode: Option<String>,
    /// Storer (world `storer`).
    #[serde(default)]
    pub store: Option<String>,
    /// Notifier (world `notifier`).
    #[serde(default)]
    pub notify: Option<String>,
}

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's name as the user wrote it.
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

fn field_error(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError { field, message: message.into() }
}

/// What validation needs to know about the host.
#[derive(Debug, Clone)]
pub struct HostFacts<'a> {
    /// The service region.
    pub region: &'a str,
    /// Authorized buckets and their locations.
    pub buckets: &'a [(String, String)],
    /// Domains the host serves; `None` accepts any (manifest templates
    /// declare their domains).
    pub domains: Option<&'a [String]>,
}

/// Where a template is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `[[trigger.snapshot]]` in the manifest: read-only through the API.
    Manifest,
    /// Created through the API, kept in the state database.
    Api,
}

/// Object write mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Keep every snapshot.
    Full,
    /// Keep only the latest.
    Instant,
}

/// A validated template, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// Where it is defined.
    pub origin: Origin,
    /// The owner key of the project it belongs to (its domain's).
    pub owner: String,
    /// The fields as given (what the API shows back, secrets masked).
    pub raw: SnapshotConfig,
    /// Ingest domain.
    pub domain: String,
    /// Application.
    pub app_name: String,
    /// Time between snapshots.
    pub interval: Duration,
    /// Full or instant.
    pub write_mode: WriteMode,
    /// Bucket name.
    pub bucket: String,
    /// Bucket region.
    pub location: String,
    /// Object-name prefix.
    pub object_prefix: String,
    /// Callback receiver, when callbacks are on.
    pub callback_url: Option<String>,
    /// Signing key; empty for unsigned callbacks. Never logged.
    pub auth_key: String,
    /// Signature validity.
    pub auth_validity: Duration,
    /// Which picture each snapshot takes.
    pub snapshot_mode: SnapshotMode,
    /// Naming template.
    pub image_object_format: Option<String>,
    /// `snapshot_url` protocol override.
    pub image_access_protocol: Option<String>,
    /// `snapshot_url` domain override.
    pub image_access_domain: Option<String>,
    /// JPEG quality.
    pub image_quality: u8,
    /// Component names per stage.
    pub encode: String,
    /// Storer component.
    pub store: String,
    /// Notifier component.
    pub notify: String,
    /// Wall-clock limit per function call.
    pub function_timeout: Duration,
    /// Memory cap per function call, bytes.
    pub function_memory: usize,
}

impl Template {
    /// The component of each snapshot stage, in the order they run.
    pub fn components(&self) -> [(Stage, &str); 3] {
        [(Stage::Encode, &self.encode), (Stage::Store, &self.store), (Stage::Notify, &self.notify)]
    }
}

const PLACEHOLDERS: [&str; 8] = ["obs_object", "domain", "app", "stream", "unix_time", "unix_time_milli", "fmt_time_utc", "fmt_time_local"];
const TIME_PLACEHOLDERS: [&str; 4] = ["unix_time", "unix_time_milli", "fmt_time_utc", "fmt_time_local"];

impl SnapshotConfig {
    /// The application name, `live` when absent.
    pub fn app(&self) -> &str {
        self.app_name.as_deref().unwrap_or("live")
    }

    /// Checks every field against Huawei's rules and resolves defaults.
    pub fn validate(&self, host: &HostFacts<'_>) -> Result<Template, FieldError> {
        validate_domain(&self.domain).map_err(|m| field_error("domain", m))?;
        if let Some(served) = host.domains
            && !served.iter().any(|d| d.eq_ignore_ascii_case(&self.domain))
        {
            return Err(field_error("domain", format!("'{}' is not a domain this host serves ({})", self.domain, served.join(", "))));
        }
        let app_name = self.app().to_string();
        if app_name.is_empty() || app_name.len() > 128 || !app_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(field_error("app_name", "1-128 characters of letters, digits, '_' and '-'"));
        }
        if !(5..=3600).contains(&self.time_interval) {
            return Err(field_error("time_interval", format!("{} is outside 5-3600 seconds", self.time_interval)));
        }
        let write_mode = match self.object_write_mode {
            0 => WriteMode::Full,
            1 => WriteMode::Instant,
            other => return Err(field_error("object_write_mode", format!("{other} is not 0 (full) or 1 (instant)"))),
        };
        let obs = &self.obs_location;
        let object_prefix = self.check_location(host)?;
        let callback_url = self.check_callback()?;
        let auth_key = self.auth_key.clone().unwrap_or_default();
        if !auth_key.is_empty() && !(32..=128).contains(&auth_key.chars().count()) {
            return Err(field_error("auth_key", "empty, or 32-128 characters"));
        }
        let snapshot_mode = match self.snapshot_mode.as_deref() {
            None | Some("") => SnapshotMode::Keyframe,
            Some(m) => m.parse().map_err(|e| field_error("snapshot_mode", e))?,
        };
        let format = self.image_object_format.clone().filter(|f| !f.is_empty());
        if let Some(f) = &format {
            validate_format(f, write_mode).map_err(|m| field_error("image_object_format", m))?;
        }
        let (protocol, access_domain) = self.check_access()?;
        let image_quality = range("image_quality", self.image_quality, 80, 1, 100)? as u8;
        let auth_validity = range("auth_validity", self.auth_validity, 300, 1, 7 * 86_400)?;
        let timeout_ms = range("function_timeout_ms", self.function_timeout_ms, 2000, 10, 600_000)?;
        let memory_mb = range("function_memory_mb", self.function_memory_mb, 128, 16, 1024)?;
        let names = self.functions.clone().unwrap_or_default();
        let name = |n: Option<String>, default: &str| n.filter(|n| !n.is_empty()).unwrap_or_else(|| default.to_string());
        Ok(Template {
            origin: Origin::Manifest,
            owner: crate::project::DEFAULT.into(),
            raw: self.clone(),
            domain: self.domain.clone(),
            app_name,
            interval: Duration::from_secs(self.time_interval as u64),
            write_mode,
            bucket: obs.bucket.clone(),
            location: obs.location.clone(),
            object_prefix,
            callback_url,
            auth_key,
            auth_validity: Duration::from_secs(auth_validity as u64),
            snapshot_mode,
            image_object_format: format,
            image_access_protocol: protocol,
            image_access_domain: access_domain,
            image_quality,
            encode: name(names.encode, Stage::Encode.default_component()),
            store: name(names.store, Stage::Store.default_component()),
            notify: name(names.notify, Stage::Notify.default_component()),
            function_timeout: Duration::from_millis(timeout_ms as u64),
            function_memory: memory_mb as usize * 1024 * 1024,
        })
    }

    /// `obs_location`: an authorized bucket in the service region; the
    /// object prefix (default `snapshot`).
    fn check_location(&self, host: &HostFacts<'_>) -> Result<String, FieldError> {
        let obs = &self.obs_location;
        if obs.bucket.is_empty() {
            return Err(field_error("obs_location.bucket", "required"));
        }
        let Some((_, bucket_location)) = host.buckets.iter().find(|(name, _)| *name == obs.bucket) else {
            let known: Vec<&str> = host.buckets.iter().map(|(n, _)| n.as_str()).collect();
            return Err(field_error(
                "obs_location.bucket",
                format!("bucket '{}' is not authorized (authorized: {})", obs.bucket, known.join(", ")),
            ));
        };
        if obs.location != host.region || *bucket_location != obs.location {
            return Err(field_error(
                "obs_location.location",
                format!(
                    "'{}' must be the service region '{}' (bucket '{}' is in '{bucket_location}')",
                    obs.location, host.region, obs.bucket
                ),
            ));
        }
        let object_prefix = obs.object.clone().unwrap_or_else(|| "snapshot".into());
        if object_prefix.len() > 512 || object_prefix.split('/').any(|s| s == ".." || s == ".") {
            return Err(field_error("obs_location.object", "at most 512 characters, no '.' or '..' segments"));
        }
        Ok(object_prefix)
    }

    /// `call_back_enable` and `call_back_url`: the receiver when callbacks are on.
    fn check_callback(&self) -> Result<Option<String>, FieldError> {
        let callback_on = match self.call_back_enable.as_deref().unwrap_or("off") {
            "on" => true,
            "off" => false,
            other => return Err(field_error("call_back_enable", format!("'{other}' is not 'on' or 'off'"))),
        };
        let url = self.call_back_url.clone().unwrap_or_default();
        if !url.is_empty() {
            validate_callback_url(&url).map_err(|m| field_error("call_back_url", m))?;
        } else if callback_on {
            return Err(field_error("call_back_url", "required when call_back_enable is 'on'"));
        }
        Ok(callback_on.then_some(url))
    }

    /// `image_access_protocol` and `image_access_domain`, when set.
    fn check_access(&self) -> Result<(Option<String>, Option<String>), FieldError> {
        let protocol = self.image_access_protocol.clone().filter(|p| !p.is_empty());
        if let Some(p) = &protocol
            && p != "http"
            && p != "https"
        {
            return Err(field_error("image_access_protocol", format!("'{p}' is not 'http' or 'https'")));
        }
        let access_domain = self.image_access_domain.clone().filter(|d| !d.is_empty());
        if let Some(d) = &access_domain {
            validate_domain(d.split(':').next().unwrap_or(d)).map_err(|m| field_error("image_access_domain", m))?;
        }
        Ok((protocol, access_domain))
    }
}

fn range(field: &'static str, value: Option<i64>, default: i64, min: i64, max: i64) -> Result<i64, FieldError> {
    let v = value.unwrap_or(default);
    if (min..=max).contains(&v) { Ok(v) } else { Err(field_error(field, format!("{v} is outside {min}-{max}"))) }
}

/// A DNS name or IPv4 address, 1–255 characters.
pub fn validate_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() || domain.len() > 255 {
        return Err("1-255 characters".into());
    }
    let ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if ok { Ok(()) } else { Err(format!("'{domain}' is not a valid domain name")) }
}

fn validate_callback_url(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).ok_or("must start with http:// or https://")?;
    if url.contains('?') || url.contains('#') {
        return Err("must not have a query string or fragment".into());
    }
    let host_port = rest.split('/').next().unwrap_or("");
    if host_port.contains('@') {
        // Credentials in a URL would be shown wherever the URL is.
        return Err("must not carry credentials (user:password@); use auth_key to sign callbacks".into());
    }
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    if host.is_empty() || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) || url::Url::parse(url).is_err() {
        return Err("is not a valid URL".into());
    }
    Ok(())
}

fn validate_format(format: &str, mode: WriteMode) -> Result<(), String> {
    let mut rest = format;
    let mut has_time = false;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or("unclosed '{'")? + open;
        let name = &rest[open + 1..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("unknown placeholder {{{name}}} (known: {})", PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(" ")));
        }
        has_time |= TIME_PLACEHOLDERS.contains(&name);
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err("unmatched '}'".into());
    }
    if mode == WriteMode::Full && !has_time {
        return Err("in object_write_mode 0 it needs one of {unix_time} {unix_time_milli} {fmt_time_utc} {fmt_time_local}".into());
    }
    if format.split('/').any(|s| s == ".." || s == ".") || format.len() > 1024 {
        return Err("at most 1024 characters, no '.' or '..' segments".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_lists_are_the_structs_fields() {
        let keys = |v: serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<std::collections::BTreeSet<_>>();
        let fields = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<std::collections::BTreeSet<_>>();
        assert_eq!(keys(serde_json::to_value(SnapshotConfig::default()).unwrap()), fields(SnapshotConfig::FIELDS));
        assert_eq!(keys(serde_json::to_value(ObsLocation::default()).unwrap()), fields(ObsLocation::FIELDS));
    }

    fn buckets() -> Vec<(String, String)> {
        vec![("snapshots".into(), "local".into())]
    }

    fn base() -> SnapshotConfig {
        SnapshotConfig {
            domain: "localhost".into(),
            time_interval: 5,
            obs_location: ObsLocation { bucket: "snapshots".into(), location: "local".into(), object: None },
            ..Default::default()
        }
    }

    fn check(c: SnapshotConfig) -> Result<Template, FieldError> {
        let b = buckets();
        c.validate(&HostFacts { region: "local", buckets: &b, domains: None })
    }

    #[test]
    fn defaults_resolve() {
        let t = check(base()).unwrap();
        assert_eq!((t.app_name.as_str(), t.object_prefix.as_str()), ("live", "snapshot"));
        assert_eq!((t.snapshot_mode, t.image_quality, t.callback_url.clone()), (SnapshotMode::Keyframe, 80, None));
        assert_eq!(t.encode, "encode-jpeg");
    }

    #[test]
    fn each_invalid_field_is_named() {
        type Mutation = Box<dyn Fn(&mut SnapshotConfig)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("domain", Box::new(|c| c.domain = "bad domain".into())),
            ("app_name", Box::new(|c| c.app_name = Some("a/b".into()))),
            ("time_interval", Box::new(|c| c.time_interval = 4)),
            ("time_interval", Box::new(|c| c.time_interval = 3601)),
            ("object_write_mode", Box::new(|c| c.object_write_mode = 2)),
            ("obs_location.bucket", Box::new(|c| c.obs_location.bucket = "other".into())),
            ("obs_location.location", Box::new(|c| c.obs_location.location = "cn-north-4".into())),
            ("call_back_enable", Box::new(|c| c.call_back_enable = Some("yes".into()))),
            ("call_back_url", Box::new(|c| c.call_back_enable = Some("on".into()))),
            ("call_back_url", Box::new(|c| c.call_back_url = Some("ftp://x/y".into()))),
            ("call_back_url", Box::new(|c| c.call_back_url = Some("http://x/y?a=1".into()))),
            ("call_back_url", Box::new(|c| c.call_back_url = Some("http://user:pw@x/y".into()))),
            ("auth_key", Box::new(|c| c.auth_key = Some("short".into()))),
            ("snapshot_mode", Box::new(|c| c.snapshot_mode = Some("sometimes".into()))),
            ("image_object_format", Box::new(|c| c.image_object_format = Some("{stream}".into()))),
            ("image_object_format", Box::new(|c| c.image_object_format = Some("{nope}/{unix_time}".into()))),
            ("image_access_protocol", Box::new(|c| c.image_access_protocol = Some("ftp".into()))),
            ("image_quality", Box::new(|c| c.image_quality = Some(0))),
        ];
        for (field, mutate) in cases {
            let mut c = base();
            mutate(&mut c);
            assert_eq!(check(c.clone()).unwrap_err().field, field, "{c:?}");
        }
    }

    #[test]
    fn instant_mode_format_needs_no_time() {
        let mut c = base();
        c.object_write_mode = 1;
        c.image_object_format = Some("{obs_object}/{stream}".into());
        assert!(check(c).is_ok());
    }
}
