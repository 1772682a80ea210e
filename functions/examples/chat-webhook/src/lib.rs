//! Example tenant notifier: posts a chat-style webhook message (Slack,
//! Mattermost, Feishu/Lark and WeCom bots take this shape) with the
//! snapshot's link, instead of Huawei Live's callback body. The host
//! delivers it through the durable outbox like any callback.

wit_bindgen::generate!({ path: "../../wit", world: "notifier" });

struct ChatWebhook;

impl Guest for ChatWebhook {
    fn notify(s: Snapshot, t: Template, _now: u64) -> Result<Option<CallbackRequest>, String> {
        if !t.call_back_enable || t.call_back_url.is_empty() {
            return Ok(None);
        }
        Ok(Some(CallbackRequest {
            url: t.call_back_url,
            headers: vec![("content-type".into(), "application/json".into())],
            body: message(&s).into_bytes(),
        }))
    }
}

export!(ChatWebhook);

/// The message: one line of text, and the image as an attachment.
pub fn message(s: &Snapshot) -> String {
    let id = &s.id;
    let text = format!("New snapshot of {}/{}/{} ({}x{}): {}", id.domain, id.app, id.stream, s.image_width, s.image_height, s.stored.url);
    serde_json::json!({
        "text": text,
        "attachments": [{ "image_url": s.stored.url, "fallback": text }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use livesnap::snapshot::types::{CaptureTime, StoredObject, StreamId};

    #[test]
    fn message_links_the_image() {
        let s = Snapshot {
            id: StreamId { domain: "d".into(), app: "live".into(), stream: "cam".into() },
            image_width: 640,
            image_height: 360,
            captured_at: CaptureTime { unix_ms: 0, utc_offset_secs: 0 },
            stored: StoredObject { bucket: "b".into(), location: "l".into(), object: "o.jpg".into(), url: "http://x/o.jpg".into() },
        };
        let m: serde_json::Value = serde_json::from_str(&message(&s)).unwrap();
        assert_eq!(m["attachments"][0]["image_url"], "http://x/o.jpg");
        assert!(m["text"].as_str().unwrap().contains("d/live/cam (640x360)"));
    }
}
