//! Tenant modules: uploaded through the API, checked against the stage they
//! serve, swapped live, and contained when hostile — while another tenant's
//! stream keeps its snapshots on schedule.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::service::*;
use crate::support::*;

/// Tenant-side helpers on top of the shared API client.
trait TenantApi {
    fn upload(&self, name: &str, file: &str, query: &str) -> (u16, Value);
    fn template(&self, app: &str, callback: &str, functions: Value) -> (u16, Value);
}

impl TenantApi for Api {
    fn upload(&self, name: &str, file: &str, query: &str) -> (u16, Value) {
        let bytes = std::fs::read(functions_dir().join(file)).unwrap();
        self.call("PUT", &format!("/functions/{name}{query}"), Some(&bytes))
    }

    fn template(&self, app: &str, callback: &str, functions: Value) -> (u16, Value) {
        let body = json!({"domain": "localhost", "app_name": app, "time_interval": 5,
            "obs_location": {"bucket": "snapshots", "location": "local"},
            "call_back_enable": "on", "call_back_url": callback, "functions": functions,
            "function_timeout_ms": 300, "function_memory_mb": 64});
        self.call("POST", "/stream/snapshot", Some(body.to_string().as_bytes()))
    }
}

fn object_secs(object: &str) -> u64 {
    object.rsplit('/').next().unwrap().trim_end_matches(".jpg").parse().unwrap()
}

#[test]
fn hostile_modules_are_refused_or_contained_while_another_tenant_keeps_its_schedule() {
    let dir = tempdir();
    let mut service = Service::start(dir.path(), &[]);
    let api = service.api();
    let good = Listener::start(vec![]);
    let target = Listener::start(vec![]); // what the hostile notifier tries to reach

    // Refused at upload: not a component at all, and a component that fits no stage world.
    let (status, answer) = api.call("PUT", "/functions/junk", Some(b"MZ\x90\x00 definitely not wasm"));
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error_msg"].as_str().unwrap().contains("not a WebAssembly component"), "{answer}");
    let (status, answer) = api.upload("receiver", "callback_receiver.wasm", "");
    assert_eq!(status, 400);
    assert!(answer["error_msg"].as_str().unwrap().contains("fits none of the worlds"), "{answer}");

    // Accepted, but refused for a stage whose world it does not export.
    assert_eq!(api.upload("spinner", "hostile_encode.wasm", "").0, 201);
    let (status, answer) = api.template("wrongworld", &good.url, json!({"notify": "spinner"}));
    assert_eq!(status, 400);
    assert!(answer["error_msg"].as_str().unwrap().contains("'spinner' cannot be used to notify"), "{answer}");

    // Tenant A: an encoder that loops or allocates 1 GiB, a notifier that
    // calls a host outside its allow-list. Tenant B: the defaults.
    assert_eq!(api.upload("caller", "hostile_notify.wasm", "?allowed_outbound_hosts=http://127.0.0.1:1").0, 201);
    let (_, inspected) = api.call("GET", "/functions/caller", None);
    assert_eq!(inspected["worlds"], json!(["notifier"]));
    assert!(
        inspected["imports"].as_array().unwrap().iter().any(|i| i.as_str().unwrap().starts_with("wasi:http/outgoing-handler")),
        "{inspected}"
    );
    assert_eq!(api.template("tenant-a", &target.url, json!({"encode": "spinner", "notify": "caller"})).0, 201);
    assert_eq!(api.template("tenant-b", &good.url, json!({})).0, 201);
    let video = long_baseline_flv();
    let _a = KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("localhost", "tenant-a/cam"), true, &["-t", "21"]));
    let _b = KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("localhost", "tenant-b/cam"), true, &["-t", "21"]));

    service.wait_for_log("encode function 'spinner' exceeded its deadline of 300ms");
    service.wait_for_log("encode function 'spinner' exceeded its memory cap of 64 MiB");
    let denied = service.wait_for_log("notify function 'caller' failed");
    assert!(denied.contains("HttpRequestDenied"), "{denied}");
    let times: Vec<u64> = (0..4)
        .map(|_| {
            object_secs(
                serde_json::from_slice::<Value>(&good.requests.recv_timeout(WAIT).unwrap().body).unwrap()["obs_addr"]["object"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(times.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>(), [5, 5, 5], "tenant B on schedule: {times:?}");
    assert!(target.drain().is_empty(), "the hostile notifier reached nothing");

    let (_, metrics) = service.get("/metrics");
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("livesnap_component_errors_total{stage=\"encode\",component=\"spinner\",kind=\"deadline\"}"));
    assert!(metrics.contains("livesnap_component_errors_total{stage=\"encode\",component=\"spinner\",kind=\"memory\"}"));
    let (_, list) = api.call("GET", "/functions", None);
    let spinner = list["functions"].as_array().unwrap().iter().find(|f| f["name"] == "spinner").unwrap().clone();
    assert!(spinner["failures"].as_u64().unwrap() >= 2, "{spinner}");
    let (status, _) = api.call("DELETE", "/functions/spinner", None);
    assert_eq!(status, 400, "in use by tenant-a");
}

#[test]
fn a_module_swapped_while_live_is_used_from_the_next_snapshot_with_none_lost_or_doubled() {
    let dir = tempdir();
    let service = Service::start(dir.path(), &[]);
    let api = service.api();
    let listener = Listener::start(vec![]);
    assert_eq!(api.upload("tenant-notify", "notify_callback.wasm", "").0, 201);
    assert_eq!(api.template("swap", &listener.url, json!({"notify": "tenant-notify"})).0, 201);
    let _ffmpeg = KillOnDrop(ffmpeg_publish(&long_baseline_flv(), &service.rtmp_url("localhost", "swap/cam"), true, &["-t", "26"]));

    let object_of = |b: &Value| -> String {
        match b.get("obs_addr") {
            Some(addr) => addr["object"].as_str().unwrap().to_string(),
            None => b["attachments"][0]["image_url"].as_str().unwrap().split("/obs/snapshots/").nth(1).unwrap().to_string(),
        }
    };
    let mut seen: BTreeMap<String, &'static str> = BTreeMap::new();
    let first: Value = serde_json::from_slice(&listener.requests.recv_timeout(WAIT).unwrap().body).unwrap();
    seen.insert(object_of(&first), "huawei");
    // Swap to the chat webhook notifier while the stream is live.
    let (status, answer) = api.upload("tenant-notify", "chat_webhook.wasm", "");
    assert_eq!(status, 200, "{answer}");
    let mut formats = vec!["huawei"];
    while seen.len() < 5 {
        let body: Value = serde_json::from_slice(&listener.requests.recv_timeout(WAIT).unwrap().body).unwrap();
        let format = if body.get("text").is_some() { "chat" } else { "huawei" };
        assert!(seen.insert(object_of(&body), format).is_none(), "a snapshot notified twice: {body}");
        formats.push(format);
    }
    let secs: Vec<u64> = seen.keys().map(|o| object_secs(o)).collect();
    assert_eq!(secs.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>(), [5, 5, 5, 5], "none lost: {secs:?}");
    let first_chat = formats.iter().position(|f| *f == "chat").expect("the new module is used");
    assert!(formats[first_chat..].iter().all(|f| *f == "chat"), "never back to the old module: {formats:?}");
    assert!(first_chat <= 2, "used from the next snapshot on: {formats:?}");
}

#[test]
fn the_scale_watermark_example_scales_to_the_width_it_is_given() {
    let dir = tempdir();
    let service = Service::start(dir.path(), &[]);
    let api = service.api();
    let listener = Listener::start(vec![]);
    let (status, answer) = api.upload("small", "scale_watermark.wasm", "?env=WIDTH=160");
    assert_eq!(status, 201, "{answer}");
    assert_eq!(api.template("small", &listener.url, json!({"encode": "small"})).0, 201);
    let mut ffmpeg = ffmpeg_publish(&small_baseline_flv(), &service.rtmp_url("localhost", "small/cam"), false, &["-t", "3"]);
    assert!(ffmpeg.wait().unwrap().success());
    let body: Value = serde_json::from_slice(&listener.requests.recv_timeout(WAIT).unwrap().body).unwrap();
    assert_eq!((body["width"].as_u64(), body["height"].as_u64()), (Some(160), Some(120)), "{body}");
    let (px, w, h) = decode_jpeg(&dir.path().join(".livesnap/snapshots").join(body["obs_addr"]["object"].as_str().unwrap()));
    assert_eq!((w, h), (160, 120));
    assert!(px.chunks(3).take(160 * 4).any(|p| p[0] > 200), "the stamped time is drawn in the corner");
}

#[test]
fn outbound_calls_need_the_allow_list_and_wildcards_never_reach_loopback() {
    let dir = tempdir();
    let mut service = Service::start(dir.path(), &[]);
    let api = service.api();
    let target = Listener::start(vec![]);
    let port = target.url.split(':').nth(2).unwrap().split('/').next().unwrap().to_string();
    let rtmp = service.rtmp_url("localhost", "");
    let run_once = |app: &str| {
        let mut ffmpeg = ffmpeg_publish(&small_baseline_flv(), &format!("{rtmp}{app}/cam"), false, &["-t", "3"]);
        assert!(ffmpeg.wait().unwrap().success());
    };
    // A wildcard allows public hosts; "localhost" resolves to loopback: refused after DNS.
    assert_eq!(api.upload("wild", "hostile_notify.wasm", "?allowed_outbound_hosts=http://*:*").0, 201);
    let url = format!("http://localhost:{port}/callback");
    assert_eq!(api.template("wild", &url, json!({"notify": "wild"})).0, 201);
    run_once("wild");
    let line = service.wait_for_log("notify function 'wild' failed");
    assert!(line.contains("DestinationIpProhibited"), "{line}");
    assert!(target.drain().is_empty());
    // Named explicitly, loopback is allowed.
    assert_eq!(api.upload("named", "hostile_notify.wasm", &format!("?allowed_outbound_hosts=http://127.0.0.1:{port}")).0, 201);
    assert_eq!(api.template("named", &target.url, json!({"notify": "named"})).0, 201);
    run_once("named");
    let line = service.wait_for_log("notify function 'named' failed");
    assert!(line.contains("outbound request answered 200"), "{line}");
    assert_eq!(target.drain().len(), 1, "the explicitly allowed call went through");
}

#[test]
fn a_storer_writes_only_into_its_templates_bucket_and_cannot_claim_what_it_did_not_store() {
    let dir = tempdir();
    let rc = dir.path().join("rc.toml");
    std::fs::write(&rc, "[[bucket]]\nname = \"other\"\nbackend = \"fs\"\npath = \"other\"\n").unwrap();
    let mut service = Service::start(dir.path(), &["--runtime-config", rc.to_str().unwrap()]);
    let api = service.api();
    assert_eq!(api.upload("forger", "forging_store.wasm", "").0, 201);
    for app in ["elsewhere", "forge"] {
        let body = json!({"domain": "localhost", "app_name": app, "time_interval": 5,
            "obs_location": {"bucket": "snapshots", "location": "local"}, "functions": {"store": "forger"}});
        let (status, answer) = api.call("POST", "/stream/snapshot", Some(body.to_string().as_bytes()));
        assert_eq!(status, 201, "{answer}");
    }
    let video = small_baseline_flv();
    let _a = KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("localhost", "elsewhere/cam"), true, &[]));
    service.wait_for_log("bucket 'other' is not this template's bucket");
    let _b = KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("localhost", "forge/cam"), true, &[]));
    service.wait_for_log("it returned other/snapshot/victim/live/cam/1764070000.jpg, which it did not store");
    assert!(!dir.path().join("other").join("stolen.jpg").exists(), "nothing written into the other bucket");
    // No snapshot was recorded for either stream, so nothing points at the forged object.
    let (status, _, _) = api.get_raw("/streams/localhost/forge/cam/latest.jpg", None);
    assert_eq!(status, 404);
}
