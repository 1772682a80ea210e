//! The Huawei-compatible snapshot config API: Huawei's own Python SDK and
//! raw HTTP against `livesnap up`.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::service::*;
use crate::support::*;

fn manifest(dir: &Path, callback: &str) {
    std::fs::write(
        dir.join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2
[application]
name = "api-test"
[[trigger.snapshot]]
domain = "localhost"
app_name = "clock"
time_interval = 5
obs_location = {{ bucket = "snapshots", location = "local" }}
call_back_enable = "on"
call_back_url = "{callback}"
"#
        ),
    )
    .unwrap();
}

fn object_time(cb: &Value) -> u64 {
    let object = cb["obs_addr"]["object"].as_str().unwrap();
    object.rsplit('/').next().unwrap().trim_end_matches(".jpg").parse().unwrap()
}

#[test]
fn huawei_sdk_create_list_modify_delete_and_restart() {
    let dir = tempdir();
    let listener = Listener::start(vec![]);
    manifest(dir.path(), &listener.url);
    let mut service = Service::start(dir.path(), &[]);
    let c = service.api();
    let template = |interval: u32| {
        json!({"domain": "127.0.0.1", "app_name": "live", "time_interval": interval, "object_write_mode": 0,
               "obs_location": {"bucket": "snapshots", "location": "local", "object": "snapshot"},
               "call_back_enable": "on", "call_back_url": listener.url,
               "auth_key": "0123456789abcdef0123456789abcdef", "snapshot_mode": "keyframe"})
        .to_string()
    };
    let created = sdk(&service, &c, &["create", &template(10)]);
    assert_eq!((created["ok"].as_bool(), created["status"].as_u64()), (Some(true), Some(201)), "{created}");
    let keep = json!({"domain": "127.0.0.1", "app_name": "keep", "time_interval": 60,
                      "obs_location": {"bucket": "snapshots", "location": "local"}});
    assert_eq!(sdk(&service, &c, &["create", &keep.to_string()])["ok"], true);
    // Same domain/app, not the same request: an identical signed POST within
    // the same second (X-Sdk-Date resolution) is refused as a replay.
    let again = sdk(&service, &c, &["create", &template(11)]);
    assert_eq!((again["status"].as_u64(), again["error_code"].as_str()), (Some(400), Some("LIVE.103011018")));

    let listed = sdk(&service, &c, &["list", "127.0.0.1", "live"]);
    assert_eq!(listed["body"]["total"], 1);
    let item = &listed["body"]["snapshot_config_list"][0];
    assert_eq!((item["time_interval"].as_u64(), item["auth_key"].as_str()), (Some(10), Some("******")));

    // A live stream under the new template, and a clock stream under the manifest's.
    let video = long_baseline_flv();
    let _cam = KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("127.0.0.1", "live/cam"), true, &[]));
    let _clock = KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("localhost", "clock/tick"), true, &[]));
    let next = |name: &str| loop {
        let r = listener.requests.recv_timeout(WAIT).expect("a callback");
        let cb: Value = serde_json::from_slice(&r.body).unwrap();
        if cb["stream_name"] == name {
            return cb;
        }
    };
    let first = next("cam");
    assert!(first["auth_sign"].is_string(), "the template's key signs the callbacks");

    // Modify: 10 s -> 5 s applies from the next snapshot on.
    let modified = sdk(&service, &c, &["update", &template(5)]);
    assert_eq!(modified["ok"], true, "{modified}");
    service.wait_for_log("template modified through the API");
    let (a, b) = (next("cam"), next("cam"));
    let (t0, ta, tb) = (object_time(&first), object_time(&a), object_time(&b));
    assert_eq!((ta - t0, tb - ta), (10, 5), "the due time already set stays; then every 5 s");

    // Delete: the stream stops capturing while the clock stream goes on.
    assert_eq!(sdk(&service, &c, &["delete", "127.0.0.1", "live"])["ok"], true);
    service.wait_for_log("template removed; snapshots stop for this stream");
    let cam_snapshots = |service: &Service| {
        let (_, body) = service.api_get("/streams");
        let streams: Value = serde_json::from_slice(&body).unwrap();
        streams["streams"].as_array().unwrap().iter().find(|s| s["stream"] == "cam").expect("cam is still live")["snapshots"]
            .as_u64()
            .unwrap()
    };
    let before = cam_snapshots(&service);
    listener.drain();
    for _ in 0..2 {
        next("tick");
    }
    assert!(listener.drain().iter().all(|r| !String::from_utf8_lossy(&r.body).contains("\"cam\"")));
    assert_eq!(cam_snapshots(&service), before, "no snapshot after the delete");
    let gone = sdk(&service, &c, &["delete", "127.0.0.1", "live"]);
    assert_eq!((gone["status"].as_u64(), gone["error_code"].as_str()), (Some(404), Some("LIVE.103011019")));

    // Restart: what the API created is still there.
    assert!(service.stop().success());
    let service = Service::start(dir.path(), &[]);
    let listed = sdk(&service, &c, &["list", "127.0.0.1"]);
    let apps: Vec<&str> =
        listed["body"]["snapshot_config_list"].as_array().unwrap().iter().map(|t| t["app_name"].as_str().unwrap()).collect();
    assert_eq!(apps, ["keep"]);
}

#[test]
fn every_invalid_value_is_refused_with_its_field_and_nothing_is_stored() {
    let dir = tempdir();
    let service = Service::start(dir.path(), &[]);
    let c = service.api();
    let valid = json!({"domain": "127.0.0.1", "app_name": "t", "time_interval": 5,
                       "obs_location": {"bucket": "snapshots", "location": "local"}});
    let with = |path: &[&str], v: Value| {
        let mut b = valid.clone();
        let mut x = &mut b;
        for p in &path[..path.len() - 1] {
            x = &mut x[*p];
        }
        x[path[path.len() - 1]] = v;
        b.to_string()
    };
    let cases: Vec<(String, u16, &str)> = vec![
        (with(&["domain"], json!("")), 400, "domain"),
        (with(&["domain"], json!("not served.example")), 400, "domain"),
        (with(&["domain"], json!("unserved.example")), 400, "is not a domain this host serves"),
        (with(&["domain"], json!(5)), 400, "domain: invalid type"),
        (with(&["app_name"], json!("")), 400, "app_name"),
        (with(&["app_name"], json!("a".repeat(129))), 400, "app_name"),
        (with(&["app_name"], json!("bad/app")), 400, "app_name"),
        (with(&["time_interval"], json!(4)), 400, "time_interval"),
        (with(&["time_interval"], json!(3601)), 400, "time_interval"),
        (with(&["time_interval"], json!("5")), 400, "time_interval: invalid type"),
        (with(&["time_interval"], json!(5.5)), 400, "time_interval"),
        (with(&["object_write_mode"], json!(2)), 400, "object_write_mode"),
        (with(&["snapshot_mode"], json!("sometimes")), 400, "snapshot_mode"),
        (with(&["obs_location", "bucket"], json!("unknown-bucket")), 400, "obs_location.bucket"),
        (with(&["obs_location", "location"], json!("cn-north-4")), 400, "obs_location.location"),
        (with(&["obs_location", "object"], json!("../up")), 400, "obs_location.object"),
        (with(&["call_back_enable"], json!("yes")), 400, "call_back_enable"),
        (with(&["call_back_enable"], json!("on")), 400, "call_back_url: required"),
        (with(&["call_back_url"], json!("ftp://x/y")), 400, "call_back_url"),
        (with(&["call_back_url"], json!("http://x/y?q=1")), 400, "call_back_url"),
        (with(&["call_back_url"], json!("http://x/y#f")), 400, "call_back_url"),
        (with(&["auth_key"], json!("short")), 400, "auth_key"),
        (with(&["auth_key"], json!("k".repeat(129))), 400, "auth_key"),
        (with(&["image_object_format"], json!("{stream}")), 400, "image_object_format"),
        (with(&["image_object_format"], json!("{nope}/{unix_time}")), 400, "image_object_format"),
        (with(&["image_access_protocol"], json!("ftp")), 400, "image_access_protocol"),
        (with(&["image_access_domain"], json!("bad domain")), 400, "image_access_domain"),
        (with(&["functions"], json!({"encode": "no-such-component"})), 400, "no-such-component"),
        (with(&["image_quality"], json!(101)), 400, "image_quality"),
        ("{not json".into(), 400, "not a valid snapshot config"),
        ("[]".into(), 400, "not a valid snapshot config"),
        ("{}".into(), 400, "missing field"),
        (format!("{{\"domain\":\"{}\"}}", "x".repeat(100_000)), 413, "larger than"),
    ];
    for (body, status, needle) in &cases {
        let (got, answer) = c.call("POST", "/stream/snapshot", Some(body.as_bytes()));
        assert_eq!(got, *status, "{}: {answer}", &body[..body.len().min(200)]);
        let code = "LIVE.100011001";
        assert_eq!(answer["error_code"], code, "{answer}");
        assert!(answer["error_msg"].as_str().unwrap().contains(needle), "{needle:?} not in {answer}");
    }
    let (status, list) = c.call("GET", "/stream/snapshot?domain=127.0.0.1", None);
    assert_eq!(status, 200);
    assert_eq!(list["total"], 1, "only the manifest's template; nothing invalid was stored: {list}");

    for (query, needle) in [
        ("", "domain: required"),
        ("?domain=127.0.0.1&limit=0", "limit: 0 is outside 1-100"),
        ("?domain=127.0.0.1&limit=101", "limit: 101 is outside 1-100"),
        ("?domain=127.0.0.1&limit=abc", "limit: 'abc' is not an integer"),
        ("?domain=127.0.0.1&offset=-1", "offset: must be at least 0"),
    ] {
        let (status, answer) = c.call("GET", &format!("/stream/snapshot{query}"), None);
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(answer["error_msg"].as_str().unwrap().contains(needle), "{query}: {answer}");
    }
    let (status, answer) = c.call("DELETE", "/stream/snapshot?domain=127.0.0.1", None);
    assert_eq!((status, answer["error_msg"].as_str()), (400, Some("app_name: required")));
    let (status, _) = c.call("PUT", "/stream/snapshot", Some(valid.to_string().as_bytes()));
    assert_eq!(status, 404, "modify of a template that does not exist");
    let manifest_one = json!({"domain": "127.0.0.1", "app_name": "live", "time_interval": 9,
                              "obs_location": {"bucket": "snapshots", "location": "local"}});
    let (status, answer) = c.call("PUT", "/stream/snapshot", Some(manifest_one.to_string().as_bytes()));
    assert_eq!((status, answer["error_code"].as_str()), (400, Some("LIVE.103011022")), "{answer}");
    let (status, answer) = c.call("POST", "/stream/snapshot", Some(manifest_one.to_string().as_bytes()));
    assert_eq!((status, answer["error_code"].as_str()), (400, Some("LIVE.103011018")), "{answer}");

    // Fields Huawei's API does not know are ignored, as it does, not stored.
    let (status, answer) = c.call("POST", "/stream/snapshot", Some(with(&["obs_location", "extra"], json!(1)).as_bytes()));
    assert_eq!(status, 201, "{answer}");
    let mut extra = valid.clone();
    extra["app_name"] = json!("t2");
    extra["unknown_field"] = json!(1);
    let (status, answer) = c.call("POST", "/stream/snapshot", Some(extra.to_string().as_bytes()));
    assert_eq!(status, 201, "{answer}");
    let (_, list) = c.call("GET", "/stream/snapshot?domain=127.0.0.1", None);
    assert_eq!(list["total"], 3, "{list}");
    assert!(!list.to_string().contains("unknown_field") && !list.to_string().contains("extra"), "{list}");
}

#[test]
fn unauthenticated_wrong_stale_and_tampered_requests_get_401() {
    let dir = tempdir();
    let service = Service::start(dir.path(), &[]);
    let c = service.api();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let path = format!("/v1/{}/stream/snapshot", c.project);
    let url = format!("{}{path}?domain=127.0.0.1", service.http);
    let host = service.http.trim_start_matches("http://").to_string();
    let expect_401 = |mut r: ureq::http::Response<ureq::Body>, why: &str| {
        assert_eq!(r.status().as_u16(), 401, "{why}");
        let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(body["error_code"], "APIGW.0301", "{why}");
    };
    expect_401(agent.get(&url).call().unwrap(), "no credentials");
    expect_401(agent.get(&url).header("X-Auth-Token", "wrong").call().unwrap(), "wrong token");

    // Signed by this test's own signer, as huaweicloudsdkcore does it.
    let sign = |date: &str, sk: &str, query: &str| {
        use hmac::Mac;
        use sha2::Digest;
        let canonical =
            format!("GET\n{path}/\n{query}\nhost:{host}\nx-sdk-date:{date}\n\nhost;x-sdk-date\n{}", hex::encode(sha2::Sha256::digest(b"")));
        let to_sign = format!("SDK-HMAC-SHA256\n{date}\n{}", hex::encode(sha2::Sha256::digest(canonical.as_bytes())));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(sk.as_bytes()).unwrap();
        mac.update(to_sign.as_bytes());
        format!(
            "SDK-HMAC-SHA256 Access={}, SignedHeaders=host;x-sdk-date, Signature={}",
            c.access_key,
            hex::encode(mac.finalize().into_bytes())
        )
    };
    let date = |secs_ago: u64| {
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago);
        let out = Command::new("date")
            .args(["-u", "-d", &format!("@{}", t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()), "+%Y%m%dT%H%M%SZ"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let now = date(0);
    let good =
        agent.get(&url).header("X-Sdk-Date", &now).header("Authorization", &sign(&now, &c.secret_key, "domain=127.0.0.1")).call().unwrap();
    assert_eq!(good.status().as_u16(), 200, "a correctly signed request passes");
    expect_401(
        agent.get(&url).header("X-Sdk-Date", &now).header("Authorization", &sign(&now, "not-the-sk", "domain=127.0.0.1")).call().unwrap(),
        "wrong secret",
    );
    let stale = date(20 * 60);
    expect_401(
        agent
            .get(&url)
            .header("X-Sdk-Date", &stale)
            .header("Authorization", &sign(&stale, &c.secret_key, "domain=127.0.0.1"))
            .call()
            .unwrap(),
        "20 minutes old",
    );
    let tampered = format!("{}{path}?domain=localhost", service.http);
    expect_401(
        agent
            .get(&tampered)
            .header("X-Sdk-Date", &now)
            .header("Authorization", &sign(&now, &c.secret_key, "domain=127.0.0.1"))
            .call()
            .unwrap(),
        "query changed after signing",
    );
    // The secret is never in a response or the log.
    assert!(!service.log_text().contains(&c.secret_key) && !service.log_text().contains(&c.token));
}

#[test]
fn concurrent_creates_of_one_template_leave_exactly_one() {
    let dir = tempdir();
    let service = Service::start(dir.path(), &[]);
    let c = service.api();
    let body = json!({"domain": "localhost", "app_name": "race", "time_interval": 5,
                      "obs_location": {"bucket": "snapshots", "location": "local"}})
    .to_string();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12).map(|_| s.spawn(|| c.call("POST", "/stream/snapshot", Some(body.as_bytes())).0)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 11, "{statuses:?}");
    let (_, list) = c.call("GET", "/stream/snapshot?domain=localhost&app_name=race", None);
    assert_eq!(list["total"], 1);
    let (status, doc) = {
        let (s, b) = service.get("/openapi.json");
        (s, serde_json::from_slice::<Value>(&b).unwrap())
    };
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/{project_id}/stream/snapshot"]["post"].is_object());
    // Every route of the API is described.
    let routes = include_str!("../../host/server/src/api/mod.rs");
    for route in routes.split(".route(\"").skip(1).filter_map(|r| r.split('"').next()).filter(|r| r.starts_with("/v")) {
        assert!(doc["paths"][route].is_object(), "{route} is not in /openapi.json");
    }
}

#[test]
fn a_template_in_both_the_manifest_and_the_database_is_a_startup_error() {
    let dir = tempdir();
    let service = Service::start(dir.path(), &[]);
    let c = service.api();
    let body = json!({"domain": "localhost", "app_name": "dup", "time_interval": 5,
                      "obs_location": {"bucket": "snapshots", "location": "local"}});
    assert_eq!(c.call("POST", "/stream/snapshot", Some(body.to_string().as_bytes())).0, 201);
    assert!(service.stop().success());
    std::fs::write(
        dir.path().join("spin.toml"),
        "spin_manifest_version = 2\n[[trigger.snapshot]]\ndomain = \"localhost\"\napp_name = \"dup\"\ntime_interval = 5\nobs_location = { bucket = \"snapshots\", location = \"local\" }\n",
    )
    .unwrap();
    let out = run(livesnap().current_dir(dir.path()).args(["up", "--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("two templates for domain 'localhost' app 'dup' (in the manifest and the API state database)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_sdk_update_keeps_livesnaps_extension_fields() {
    let dir = tempdir();
    let service = Service::start(dir.path(), &[]);
    let c = service.api();
    let obs = json!({"bucket": "snapshots", "location": "local"});
    let full = json!({"domain": "127.0.0.1", "app_name": "ext", "time_interval": 5, "obs_location": obs,
                      "functions": {"encode": "encode-jpeg"}});
    let (status, answer) = c.call("POST", "/stream/snapshot", Some(full.to_string().as_bytes()));
    assert_eq!(status, 201, "{answer}");
    // Huawei's SDK sends only Huawei's fields.
    let huawei = json!({"domain": "127.0.0.1", "app_name": "ext", "time_interval": 10, "obs_location": obs});
    let updated = sdk(&service, &c, &["update", &huawei.to_string()]);
    assert_eq!(updated["ok"], true, "{updated}");
    let (_, list) = c.call("GET", "/stream/snapshot?domain=127.0.0.1&app_name=ext", None);
    let t = &list["snapshot_config_list"][0];
    assert_eq!((t["time_interval"].as_u64(), t["functions"]["encode"].as_str()), (Some(10), Some("encode-jpeg")), "{list}");

    // Every answer has its own X-Request-Id, errors too.
    let ids: Vec<String> = ["/stream/snapshot?domain=127.0.0.1", "/stream/snapshot"]
        .iter()
        .map(|path| c.get_raw(path, None).1.get("x-request-id").cloned().expect("an X-Request-Id"))
        .collect();
    assert!(ids.iter().all(|id| id.len() == 32 && id.chars().all(|ch| ch.is_ascii_hexdigit())), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn health_and_readiness_answer_without_credentials() {
    let dir = tempdir();
    let service = Service::start(dir.path(), &[]);
    assert_eq!(service.get("/healthz"), (200, b"ok".to_vec()));
    let (status, body) = service.get("/readyz");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}
