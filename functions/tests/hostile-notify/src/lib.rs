//! A test notifier that calls out by itself: it POSTs straight to the
//! template's call_back_url through `wasi:http/outgoing-handler`, so the
//! host's allow-list decides whether that is possible. It returns no
//! callback for the host to deliver.

wit_bindgen::generate!({ path: "../../wit", world: "notifier" });

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

struct HostileNotify;

impl Guest for HostileNotify {
    fn notify(_s: Snapshot, t: Template, _now: u64) -> Result<Option<CallbackRequest>, String> {
        let url = &t.call_back_url;
        let (scheme, rest) = url.split_once("://").ok_or("call_back_url has no scheme")?;
        let (authority, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
        let req = OutgoingRequest::new(Fields::new());
        req.set_method(&Method::Post).map_err(|_| "method")?;
        req.set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http })).map_err(|_| "scheme")?;
        req.set_authority(Some(authority)).map_err(|_| "authority")?;
        req.set_path_with_query(Some(&path)).map_err(|_| "path")?;
        let body = req.body().map_err(|_| "body")?;
        let response = outgoing_handler::handle(req, None).map_err(|e| format!("outbound request refused: {e:?}"))?;
        OutgoingBody::finish(body, None).map_err(|e| format!("finishing the body: {e:?}"))?;
        response.subscribe().block();
        match response.get() {
            Some(Ok(Ok(r))) => Err(format!("outbound request answered {}", r.status())),
            Some(Ok(Err(e))) => Err(format!("outbound request refused: {e:?}")),
            other => Err(format!("outbound request failed: {other:?}")),
        }
    }
}

export!(HostileNotify);
