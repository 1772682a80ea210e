//! Domains and OBS bucket authorization through Huawei's own Python SDK:
//! the Snapshot Capturing guide's steps, from adding a domain to deleting
//! it, with a real ffmpeg publisher in between.

use std::path::Path;

use serde_json::{Value, json};

use crate::service::*;
use crate::support::*;

fn runtime_config(dir: &Path) -> String {
    let path = dir.join("runtime-config.toml");
    std::fs::write(
        &path,
        "region = \"cn-north-4\"\ndomain_cname = \"push.cdn.example\"\n[[bucket]]\nname = \"shots\"\nbackend = \"fs\"\npath = \"shots\"\n",
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

fn refused(answer: &Value, code: &str, needle: &str) {
    assert_eq!((answer["status"].as_u64(), answer["error_code"].as_str()), (Some(400), Some(code)), "{answer}");
    assert!(answer["error_msg"].as_str().unwrap().contains(needle), "{needle:?} not in {answer}");
}

#[test]
fn add_a_domain_authorize_a_bucket_capture_a_stream_and_take_it_all_down_through_huaweis_sdk() {
    let dir = tempdir();
    let rc = runtime_config(dir.path());
    let mut service = Service::start(dir.path(), &["--runtime-config", &rc]);
    let c = service.api();
    let domain = |fields: Value| fields.to_string();

    let created = sdk(
        &service,
        &c,
        &["domain-create", &domain(json!({"domain": "live.example.com", "domain_type": "push", "region": "cn-north-4"}))],
    );
    assert_eq!((created["ok"].as_bool(), created["status"].as_u64()), (Some(true), Some(201)), "{created}");
    let body = &created["body"];
    assert_eq!((body["domain_cname"].as_str(), body["status"].as_str()), (Some("push.cdn.example"), Some("on")), "{created}");
    refused(
        &sdk(
            &service,
            &c,
            &["domain-create", &domain(json!({"domain": "play.example.com", "domain_type": "pull", "region": "cn-north-4"}))],
        ),
        "LIVE.100011001",
        "not supported",
    );
    refused(
        &sdk(&service, &c, &["domain-create", &domain(json!({"domain": "eu.example.com", "domain_type": "push", "region": "eu-west-0"}))]),
        "LIVE.100011001",
        "region",
    );
    refused(
        // (Not byte-identical to the first: a repeated signed write within its second is refused as a replay.)
        &sdk(
            &service,
            &c,
            &["domain-create", &domain(json!({"domain": "LIVE.example.com", "domain_type": "push", "region": "cn-north-4"}))],
        ),
        "LIVE.103011018",
        "already exists",
    );
    let shown = sdk(&service, &c, &["domain-show", "live.example.com"]);
    assert_eq!(shown["body"]["domain_info"][0]["domain"].as_str(), Some("live.example.com"), "{shown}");

    // A template on a bucket not yet authorized is refused; authorized, it is accepted.
    let template = json!({"domain": "live.example.com", "app_name": "live", "time_interval": 5, "object_write_mode": 0,
                          "obs_location": {"bucket": "shots", "location": "cn-north-4"}})
    .to_string();
    let early = template.replace("\"time_interval\":5", "\"time_interval\":10"); // not a replay of the next one
    refused(&sdk(&service, &c, &["create", &early]), "LIVE.100011001", "obs_location.bucket");
    assert_eq!(sdk(&service, &c, &["obs-authority", "shots", "1"])["ok"], true);
    let made = sdk(&service, &c, &["create", &template]);
    assert_eq!(made["ok"], true, "{made}");

    // A publisher on that domain (tcUrl): snapshots land in the authorized bucket.
    let video = small_baseline_flv();
    let tc_url = ["-rtmp_tcurl", "rtmp://live.example.com/live"];
    let mut publisher = KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("127.0.0.1", "live/cam"), true, &tc_url));
    let line = service.wait_for_log("snapshot stored");
    let object = line.split_whitespace().find_map(|w| w.strip_prefix("object=")).unwrap();
    assert!(object.starts_with("snapshot/live.example.com/live/cam/"), "{line}");
    assert!(dir.path().join("shots").join(object).is_file());
    let online = sdk(&service, &c, &["online", "live.example.com"]);
    assert_eq!(online["body"]["streams"][0]["stream"].as_str(), Some("cam"), "{online}");
    assert!(sdk(&service, &c, &["usage", "live.example.com"])["body"]["total"].as_u64().unwrap() >= 1);

    // Revoking a bucket in use, or deleting a domain with templates, is refused.
    refused(&sdk(&service, &c, &["obs-authority", "shots", "0"]), "LIVE.103011022", "live.example.com/live");
    refused(&sdk(&service, &c, &["domain-delete", "live.example.com"]), "LIVE.103011022", "has templates");

    // Off: its publishes are refused.
    publisher.0.kill().unwrap();
    service.wait_for_log("publisher disconnected");
    let off = sdk(&service, &c, &["domain-update", &domain(json!({"domain": "live.example.com", "status": "off"}))]);
    assert_eq!(off["body"]["status"].as_str(), Some("off"), "{off}");
    let mut again = ffmpeg_publish(&video, &service.rtmp_url("127.0.0.1", "live/cam"), false, &[&tc_url[..], &["-t", "1"]].concat());
    assert!(!again.wait().unwrap().success());
    service.wait_for_log("domain 'live.example.com' is off");

    // It survives a restart, then comes down in order.
    assert!(service.stop().success());
    let service = Service::start(dir.path(), &["--runtime-config", &rc]);
    let shown = sdk(&service, &c, &["domain-show", "live.example.com"]);
    assert_eq!(shown["body"]["domain_info"][0]["status"].as_str(), Some("off"), "{shown}");
    assert_eq!(sdk(&service, &c, &["delete", "live.example.com", "live"])["ok"], true);
    assert_eq!(sdk(&service, &c, &["obs-authority", "shots", "0"])["ok"], true);
    let deleted = sdk(&service, &c, &["domain-delete", "live.example.com"]);
    assert_eq!((deleted["ok"].as_bool(), deleted["status"].as_u64()), (Some(true), Some(204)), "{deleted}");
    let gone = sdk(&service, &c, &["domain-show", "live.example.com"]);
    assert_eq!((gone["status"].as_u64(), gone["error_code"].as_str()), (Some(404), Some("LIVE.103011019")), "{gone}");
}
