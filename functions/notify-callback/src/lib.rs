//! The default notifier: Huawei Live's snapshot callback, signed with
//! HMAC-SHA256 when the template has an auth key.

use serde_json::json;

wit_bindgen::generate!({ path: "../wit", world: "notifier" });

struct NotifyCallback;

impl Guest for NotifyCallback {
    fn notify(s: Snapshot, t: Template, now: u64) -> Result<Option<CallbackRequest>, String> {
        if !t.call_back_enable || t.call_back_url.is_empty() {
            return Ok(None);
        }
        let body = callback_body(&s, &t, now);
        Ok(Some(CallbackRequest {
            url: t.call_back_url.clone(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into_bytes(),
        }))
    }
}

export!(NotifyCallback);

/// The JSON callback body; `auth_timestamp` is when the signature expires.
pub fn callback_body(s: &Snapshot, t: &Template, now: u64) -> String {
    let mut body = json!({
        "domain": s.id.domain,
        "app": s.id.app,
        "stream_name": s.id.stream,
        "snapshot_url": s.stored.url,
        "width": s.image_width,
        "height": s.image_height,
        "obs_addr": { "bucket": s.stored.bucket, "location": s.stored.location, "object": s.stored.object },
    });
    if !t.auth_key.is_empty() {
        let expires = now + u64::from(t.auth_validity_secs);
        body["auth_timestamp"] = json!(expires);
        body["auth_sign"] = json!(sign(&t.auth_key, s, expires));
    }
    body.to_string()
}

/// auth_sign over the snapshot's fields and the expiry.
pub fn sign(key: &str, s: &Snapshot, expires: u64) -> String {
    let fields = [
        s.id.domain.clone(),
        s.id.app.clone(),
        s.id.stream.clone(),
        s.stored.url.clone(),
        s.image_width.to_string(),
        s.image_height.to_string(),
        s.stored.bucket.clone(),
        s.stored.location.clone(),
        s.stored.object.clone(),
    ];
    callback_sign::sign(key, &fields, expires)
}

#[cfg(test)]
mod tests {
    use super::*;
    use livesnap::snapshot::types::{CaptureTime, StoredObject, StreamId, WriteMode};

    // The independently computed vector from DEVELOPERS.md.
    #[test]
    fn signature_matches_reference_vector() {
        let s = Snapshot {
            id: StreamId { domain: "push.example.com".into(), app: "live".into(), stream: "test001".into() },
            image_width: 1280,
            image_height: 720,
            captured_at: CaptureTime { unix_ms: 1_764_070_000_000, utc_offset_secs: 0 },
            stored: StoredObject {
                bucket: "snapshots".into(),
                location: "region-local".into(),
                object: "snapshot/push.example.com/live/test001/1764070000.jpg".into(),
                url: "http://127.0.0.1:8080/obs/snapshots/snapshot/push.example.com/live/test001/1764070000.jpg".into(),
            },
        };
        let t = Template {
            domain: "push.example.com".into(),
            app_name: "live".into(),
            time_interval: 5,
            object_write_mode: WriteMode::Full,
            bucket: "snapshots".into(),
            location: "region-local".into(),
            object_prefix: "snapshot".into(),
            call_back_enable: true,
            call_back_url: "http://127.0.0.1:9000/cb".into(),
            auth_key: "k3y-for-snapshot-callback-0123456789abcdef".into(),
            auth_validity_secs: 300,
            image_object_format: None,
            image_access_protocol: None,
            image_access_domain: None,
        };
        let body: serde_json::Value = serde_json::from_str(&callback_body(&s, &t, 1_764_070_000)).unwrap();
        assert_eq!(body["auth_timestamp"], 1_764_070_300);
        assert_eq!(body["auth_sign"], "f7a97b11c5043d7125b4cd0c50c1d9f9afe86104fc23f1f91dff2bd2c213be0f");
        assert_eq!(body["stream_name"], "test001");

        let unsigned = Template { auth_key: String::new(), ..t };
        let body: serde_json::Value = serde_json::from_str(&callback_body(&s, &unsigned, 1_764_070_000)).unwrap();
        assert!(body.get("auth_sign").is_none() && body.get("auth_timestamp").is_none());
    }
}
