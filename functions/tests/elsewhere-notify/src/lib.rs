//! A test notifier that asks the host to deliver its callback somewhere other
//! than the template's call_back_url: to `TARGET_URL` from its environment.
//! The host must hold that URL to the module's `allowed_outbound_hosts`.

wit_bindgen::generate!({ path: "../../wit", world: "notifier" });

struct ElsewhereNotify;

impl Guest for ElsewhereNotify {
    fn notify(_s: Snapshot, _t: Template, _now: u64) -> Result<Option<CallbackRequest>, String> {
        let url = std::env::var("TARGET_URL").map_err(|_| "TARGET_URL is not set".to_string())?;
        Ok(Some(CallbackRequest { url, headers: vec![("content-type".into(), "application/json".into())], body: b"{}".to_vec() }))
    }
}

export!(ElsewhereNotify);
