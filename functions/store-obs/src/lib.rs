//! The default storer: names the object as Huawei Live does and writes it
//! through the host's object store.
//!
//! Without `image_object_format`:
//! - full mode: `{prefix}/{domain}/{app}/{stream}/{unix_seconds}.jpg`
//! - instant mode: `{prefix}/{domain}/{app}/{stream}.jpg` (overwritten)
//!
//! With it, the placeholders `{obs_object}` `{domain}` `{app}` `{stream}`
//! `{unix_time}` `{unix_time_milli}` `{fmt_time_utc}` `{fmt_time_local}` are
//! replaced and `.jpg` is appended unless the result already ends with it.

wit_bindgen::generate!({ path: "../wit", world: "storer" });

use livesnap::snapshot::object_store;
use livesnap::snapshot::types::WriteMode;

struct StoreObs;

impl Guest for StoreObs {
    fn store(id: StreamId, t: Template, img: Image, captured_at: CaptureTime) -> Result<StoredObject, String> {
        let object = object_name(&id, &t, &captured_at);
        let mut stored = object_store::put(&t.bucket, &object, &img.content_type, &img.data)?;
        if let Some(url) = access_url(&t, &stored.object) {
            stored.url = url;
        }
        Ok(stored)
    }
}

export!(StoreObs);

/// The object name for a snapshot of `id` taken at `at`.
pub fn object_name(id: &StreamId, t: &Template, at: &CaptureTime) -> String {
    let name = match &t.image_object_format {
        Some(format) if !format.is_empty() => expand(format, id, t, at),
        _ => {
            let stream_path = format!("{}/{}/{}", id.domain, id.app, id.stream);
            match t.object_write_mode {
                WriteMode::Full => format!("{stream_path}/{}", at.unix_ms / 1000),
                WriteMode::Instant => stream_path,
            }
        }
    };
    let name = join(&t.object_prefix, &name, t.image_object_format.as_deref().is_some_and(|f| !f.is_empty()));
    if name.ends_with(".jpg") { name } else { format!("{name}.jpg") }
}

// The prefix goes in front of the default layout; a format string places it
// itself with {obs_object}.
fn join(prefix: &str, name: &str, formatted: bool) -> String {
    let prefix = prefix.trim_matches('/');
    if formatted || prefix.is_empty() { name.trim_start_matches('/').to_string() } else { format!("{prefix}/{name}") }
}

fn expand(format: &str, id: &StreamId, t: &Template, at: &CaptureTime) -> String {
    let secs = at.unix_ms / 1000;
    let local = secs as i64 + i64::from(at.utc_offset_secs);
    format
        .replace("{obs_object}", t.object_prefix.trim_matches('/'))
        .replace("{domain}", &id.domain)
        .replace("{app}", &id.app)
        .replace("{stream}", &id.stream)
        .replace("{unix_time_milli}", &at.unix_ms.to_string())
        .replace("{unix_time}", &secs.to_string())
        .replace("{fmt_time_utc}", &fmt_time(secs as i64))
        .replace("{fmt_time_local}", &fmt_time(local))
}

/// `YYYYMMDDhhmmss` for a unix time (proleptic Gregorian, UTC).
pub fn fmt_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}{:02}{:02}{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The `snapshot_url` when the template names an access domain (a CDN).
fn access_url(t: &Template, object: &str) -> Option<String> {
    let domain = t.image_access_domain.as_deref().filter(|d| !d.is_empty())?;
    let protocol = t.image_access_protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("http");
    Some(format!("{protocol}://{}/{object}", domain.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(mode: WriteMode, format: Option<&str>) -> Template {
        Template {
            domain: "push.example.com".into(),
            app_name: "live".into(),
            time_interval: 5,
            object_write_mode: mode,
            bucket: "snapshots".into(),
            location: "region-local".into(),
            object_prefix: "snapshot".into(),
            call_back_enable: false,
            call_back_url: String::new(),
            auth_key: String::new(),
            auth_validity_secs: 300,
            image_object_format: format.map(Into::into),
            image_access_protocol: None,
            image_access_domain: None,
        }
    }

    fn id() -> StreamId {
        StreamId { domain: "push.example.com".into(), app: "live".into(), stream: "test001".into() }
    }

    const AT: CaptureTime = CaptureTime { unix_ms: 1_764_070_000_123, utc_offset_secs: 8 * 3600 };

    #[test]
    fn default_names() {
        assert_eq!(object_name(&id(), &template(WriteMode::Full, None), &AT), "snapshot/push.example.com/live/test001/1764070000.jpg");
        assert_eq!(object_name(&id(), &template(WriteMode::Instant, None), &AT), "snapshot/push.example.com/live/test001.jpg");
    }

    #[test]
    fn format_placeholders() {
        let t = template(WriteMode::Full, Some("{obs_object}/{app}-{stream}/{fmt_time_utc}_{fmt_time_local}_{unix_time_milli}"));
        assert_eq!(object_name(&id(), &t, &AT), "snapshot/live-test001/20251125112640_20251125192640_1764070000123.jpg");
    }
}
