//! Projects (tenants): two customers drive the whole Snapshot Capturing flow
//! through Huawei's own SDK on one service, each with its own project_id and
//! AK/SK, and neither can see or touch the other's domains, templates,
//! streams, usage, callbacks or modules.

use std::path::Path;

use serde_json::{Value, json};

use crate::service::*;
use crate::support::*;

/// `livesnap project …` against the service's state, as JSON.
fn project(dir: &Path, rc: &str, args: &[&str]) -> Value {
    let out = run(livesnap().current_dir(dir).args(["project", "--runtime-config", rc]).args(args));
    assert!(out.status.success(), "livesnap project {args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&out.stdout).into()))
}

/// A count the SDK returns (its models may turn integers into floats).
fn count(v: &Value) -> u64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) as u64
}

/// Writes the runtime config; its path.
fn runtime_config(dir: &Path, text: &str) -> String {
    let path = dir.join("runtime-config.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn status(answer: &Value) -> (Option<u64>, Option<&str>) {
    (answer["status"].as_u64(), answer["error_code"].as_str())
}

#[test]
fn two_projects_run_the_whole_flow_through_huaweis_sdk_and_neither_sees_the_others() {
    let dir = tempdir();
    // Project A exists before the service starts; its bucket is offered to it alone.
    let rc = runtime_config(dir.path(), "region = \"cn-north-4\"\n");
    let keys_a = project(dir.path(), &rc, &["create", "customer-a", "--json"]);
    let a_id = keys_a["project_id"].as_str().unwrap().to_string();
    runtime_config(
        dir.path(),
        &format!(
            "region = \"cn-north-4\"\n[[bucket]]\nname = \"a-shots\"\nbackend = \"fs\"\npath = \"a-shots\"\nprojects = [\"{a_id}\"]\n\
             [[bucket]]\nname = \"shared\"\nbackend = \"fs\"\npath = \"shared\"\n"
        ),
    );
    let mut service = Service::start(dir.path(), &["--runtime-config", &rc]);
    let default = service.api();
    let a = default.for_project(&keys_a);
    // Project B is created while the service runs.
    let keys_b = project(dir.path(), &rc, &["create", "customer-b", "--json"]);
    let b = default.for_project(&keys_b);
    assert_ne!(a.project, b.project);

    // A: domain, refused template, authorization, template (with a callback).
    let domain = json!({"domain": "a.example.com", "domain_type": "push", "region": "cn-north-4"}).to_string();
    let created = sdk(&service, &a, &["domain-create", &domain]);
    assert_eq!(created["status"].as_u64(), Some(201), "{created}");
    let shown = sdk(&service, &a, &["domain-show"]);
    assert_eq!(count(&shown["body"]["total"]), 1, "only A's own domain, not the operator's: {shown}");
    let receiver = Listener::start(vec![]);
    let template = json!({"domain": "a.example.com", "app_name": "live", "time_interval": 5, "object_write_mode": 0,
                          "obs_location": {"bucket": "a-shots", "location": "cn-north-4"},
                          "call_back_enable": "on", "call_back_url": receiver.url})
    .to_string();
    let early = template.replace("\"time_interval\":5", "\"time_interval\":10");
    let refused = sdk(&service, &a, &["create", &early]);
    assert_eq!(status(&refused), (Some(400), Some("LIVE.100011001")), "{refused}");
    assert!(refused["error_msg"].as_str().unwrap().contains("obs_location.bucket"), "{refused}");
    assert_eq!(sdk(&service, &a, &["obs-authority", "a-shots", "1"])["ok"], true);
    let made = sdk(&service, &a, &["create", &template]);
    assert_eq!(made["ok"], true, "{made}");

    // A's publisher: online with what was measured, snapshots in A's bucket, counted.
    // (60 s: still live when the domain changes hands below.)
    let video = long_baseline_flv();
    let tc_url = ["-rtmp_tcurl", "rtmp://a.example.com/live"];
    let _publisher = KillOnDrop(ffmpeg_publish(&video, &service.rtmp_url("127.0.0.1", "live/cam"), true, &tc_url));
    let line = service.wait_for_log("snapshot stored");
    let object = line.split_whitespace().find_map(|w| w.strip_prefix("object=")).unwrap();
    assert!(dir.path().join("a-shots").join(object).is_file(), "{line}");
    receiver.requests.recv_timeout(WAIT).expect("A's callback");
    // The second snapshot (stream time 5 s): a full measuring window has passed.
    service.wait_for_log("snapshot stored");
    let online = sdk(&service, &a, &["online", "a.example.com"]);
    let stream = &online["body"]["streams"][0];
    assert_eq!((stream["stream"].as_str(), stream["video_codec"].as_str()), (Some("cam"), Some("H264")), "{online}");
    assert_eq!(stream["resolution"].as_str(), Some("320x240"), "{online}");
    assert!(count(&stream["video_frame_rate"]) > 0 && count(&stream["video_bitrate"]) > 0, "{online}");
    let usage = sdk(&service, &a, &["usage", "a.example.com"]);
    assert!(count(&usage["body"]["total"]) >= 1, "{usage}");

    // (Not the same second as the revoke below: that would be refused as a replay.)
    let in_use = sdk(&service, &a, &["obs-authority", "a-shots", "0"]);
    assert_eq!(status(&in_use), (Some(400), Some("LIVE.103011022")), "revoking a bucket in use: {in_use}");

    // A's module: A lists it and can use it.
    let module = std::fs::read(functions_dir().join("notify_callback.wasm")).unwrap();
    assert_eq!(a.call("PUT", "/functions/a-notify", Some(&module)).0, 201);
    let own_module = json!({"domain": "a.example.com", "app_name": "mod", "time_interval": 5,
                            "obs_location": {"bucket": "a-shots", "location": "cn-north-4"},
                            "functions": {"notify": "a-notify"}});
    let (code, answer) = a.call("POST", "/stream/snapshot", Some(own_module.to_string().as_bytes()));
    assert_eq!(code, 201, "{answer}");

    // B sees none of it and changes none of it.
    let not_found = sdk(&service, &b, &["domain-show", "a.example.com"]);
    assert_eq!(status(&not_found), (Some(404), Some("LIVE.103011019")), "{not_found}");
    assert_eq!(count(&sdk(&service, &b, &["domain-show"])["body"]["total"]), 0);
    assert_eq!(count(&sdk(&service, &b, &["list", "a.example.com"])["body"]["total"]), 0);
    assert_eq!(count(&sdk(&service, &b, &["online", "a.example.com"])["body"]["total_num"]), 0);
    assert_eq!(count(&sdk(&service, &b, &["usage"])["body"]["total"]), 0);
    assert_eq!(count(&sdk(&service, &b, &["usage", "a.example.com"])["body"]["total"]), 0);
    let off = json!({"domain": "a.example.com", "status": "off"}).to_string();
    assert_eq!(status(&sdk(&service, &b, &["domain-update", &off])).0, Some(404));
    assert_eq!(status(&sdk(&service, &b, &["domain-delete", "a.example.com"])).0, Some(404));
    assert_eq!(status(&sdk(&service, &b, &["delete", "a.example.com", "live"])).0, Some(404));
    let hijack = template.replace("\"time_interval\":5", "\"time_interval\":20");
    let update = sdk(&service, &b, &["update", &hijack]);
    assert_eq!(status(&update).0, Some(404), "{update}");
    let create = sdk(&service, &b, &["create", &hijack.replace("a-shots", "shared")]);
    assert_eq!(status(&create), (Some(400), Some("LIVE.100011001")), "{create}");
    assert!(create["error_msg"].as_str().unwrap().contains("domain"), "{create}");
    let bucket = sdk(&service, &b, &["obs-authority", "a-shots", "1"]);
    assert_eq!(status(&bucket), (Some(400), Some("LIVE.100011001")), "A's bucket is not offered to B: {bucket}");
    let (_, streams) = b.call("GET", "/streams", None);
    assert_eq!(streams["total"].as_u64(), Some(0), "{streams}");
    let (code, _, _) = b.get_raw("/streams/a.example.com/live/cam/latest.jpg", None);
    assert_eq!(code, 404);
    let (code, _) = b.call("POST", "/streams/a.example.com/live/cam/snapshot", Some(b"{}"));
    assert_eq!(code, 404);
    let (_, callbacks) = b.call("GET", "/callbacks", None);
    assert_eq!(callbacks["total"].as_u64(), Some(0), "{callbacks}");
    let (_, callbacks) = a.call("GET", "/callbacks", None);
    assert!(callbacks["total"].as_u64().unwrap() >= 1, "{callbacks}");
    let (_, functions) = b.call("GET", "/functions", None);
    assert!(!functions.to_string().contains("a-notify"), "{functions}");
    assert_eq!(b.call("GET", "/functions/a-notify", None).0, 404);
    assert_eq!(b.call("DELETE", "/functions/a-notify", None).0, 404);
    // B's own domain cannot reach A's module by its name.
    let b_domain = json!({"domain": "b.example.com", "domain_type": "push", "region": "cn-north-4"}).to_string();
    assert_eq!(sdk(&service, &b, &["domain-create", &b_domain])["status"].as_u64(), Some(201));
    // (The embedded bucket is the default project's; a bucket is one project's at a time.)
    assert_eq!(status(&sdk(&service, &b, &["obs-authority", "snapshots", "1"])).0, Some(400));
    assert_eq!(sdk(&service, &b, &["obs-authority", "shared", "1"])["ok"], true);
    let borrow = json!({"domain": "b.example.com", "app_name": "live", "time_interval": 5,
                        "obs_location": {"bucket": "shared", "location": "cn-north-4"},
                        "functions": {"notify": "a-notify"}});
    let (code, answer) = b.call("POST", "/stream/snapshot", Some(borrow.to_string().as_bytes()));
    assert_eq!(code, 400, "{answer}");
    let why = answer["error_msg"].as_str().unwrap();
    assert!(why.contains("'a-notify'") && !why.contains(&a.project), "{answer}");
    // B's keys on A's path: refused as the gateway refuses credentials of another project.
    let mut crossed = b.for_project(&keys_b);
    crossed.project = a.project.clone();
    let cross = sdk(&service, &crossed, &["domain-show", "a.example.com"]);
    assert_eq!(status(&cross), (Some(401), Some("APIGW.0301")), "{cross}");
    assert_eq!(crossed.call("GET", "/domain", None).0, 401, "B's token on A's path");
    // The default project does not see A's either.
    assert_eq!(status(&sdk(&service, &default, &["domain-show", "a.example.com"])).0, Some(404));

    // A takes it down in order: template, bucket, domain.
    assert_eq!(sdk(&service, &a, &["delete", "a.example.com", "live"])["ok"], true);
    assert_eq!(sdk(&service, &a, &["delete", "a.example.com", "mod"])["ok"], true);
    assert_eq!(sdk(&service, &a, &["obs-authority", "a-shots", "0"])["ok"], true);
    assert_eq!(sdk(&service, &a, &["domain-delete", "a.example.com"])["status"].as_u64(), Some(204));
    // B takes the domain while A's publisher is still connected: the stream stays A's.
    assert!(!service.log_text().contains("publisher disconnected"), "A's publisher is still live");
    let taken = json!({"domain": "a.example.com", "domain_type": "push", "region": "cn-north-4", "service_area": "x"}).to_string();
    assert_eq!(sdk(&service, &b, &["domain-create", &taken])["status"].as_u64(), Some(201));
    assert_eq!(count(&sdk(&service, &b, &["online", "a.example.com"])["body"]["total_num"]), 0);
    assert_eq!(b.get_raw("/streams/a.example.com/live/cam/latest.jpg", None).0, 404);
    assert_eq!(sdk(&service, &b, &["domain-delete", "a.example.com"])["status"].as_u64(), Some(204));

    // Rotation: the old keys stop at once, the new ones work; a project with domains is not deleted.
    let rotated = project(dir.path(), &rc, &["rotate", "customer-a", "--json"]);
    assert_eq!(rotated["project_id"], keys_a["project_id"]);
    assert_eq!(status(&sdk(&service, &a, &["domain-show"])).0, Some(401));
    assert_eq!(sdk(&service, &default.for_project(&rotated), &["domain-show"])["ok"], true);
    let out = run(livesnap().current_dir(dir.path()).args(["project", "--runtime-config", &rc, "delete", "customer-b"]));
    assert!(!out.status.success() && stderr(&out).contains("owns 1 domain"), "{}", stderr(&out));
    let listed = project(dir.path(), &rc, &["list", "--json"]);
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["(default)", "customer-a", "customer-b"]);
    assert!(!listed.to_string().contains(keys_b["secret_key"].as_str().unwrap()), "no secrets in the list");
    project(dir.path(), &rc, &["delete", "customer-a"]);
    assert_eq!(status(&sdk(&service, &default.for_project(&rotated), &["domain-show"])).0, Some(401));
    assert!(!service.log_text().contains(keys_b["secret_key"].as_str().unwrap()), "no secret in the log");
}

#[test]
fn quotas_are_per_project() {
    let dir = tempdir();
    let buckets = "[[bucket]]\nname = \"a-b\"\nbackend = \"fs\"\n[[bucket]]\nname = \"b-b\"\nbackend = \"fs\"\n";
    let rc = runtime_config(dir.path(), &format!("[quotas]\nmax_domains = 1\nmax_templates = 1\nmax_modules = 1\n{buckets}"));
    let service = Service::start(dir.path(), &["--runtime-config", &rc]);
    let default = service.api();
    let a = default.for_project(&project(dir.path(), &rc, &["create", "a", "--json"]));
    let b = default.for_project(&project(dir.path(), &rc, &["create", "b", "--json"]));
    let module = std::fs::read(functions_dir().join("notify_callback.wasm")).unwrap();
    for (who, c) in [("a", &a), ("b", &b)] {
        let domain = json!({"domain": format!("{who}.example.com"), "domain_type": "push", "region": "local"});
        let (code, answer) = c.call("POST", "/domain", Some(domain.to_string().as_bytes()));
        assert_eq!(code, 201, "{who}'s first domain: {answer}");
        let authority = json!({"bucket": format!("{who}-b"), "operation": 1});
        assert_eq!(c.call("PUT", "/obs/authority", Some(authority.to_string().as_bytes())).0, 200);
        let template = json!({"domain": format!("{who}.example.com"), "app_name": "live", "time_interval": 5,
                              "obs_location": {"bucket": format!("{who}-b"), "location": "local"}});
        let (code, answer) = c.call("POST", "/stream/snapshot", Some(template.to_string().as_bytes()));
        assert_eq!(code, 201, "{who}'s first template: {answer}");
        let (code, answer) = c.call("PUT", "/functions/notify", Some(&module));
        assert_eq!(code, 201, "{who}'s first module (the same name as the other's): {answer}");
    }
    let quota = |(code, answer): (u16, Value)| {
        assert_eq!((code, answer["error_code"].as_str()), (400, Some("LIVE.103011020")), "{answer}");
    };
    let second = json!({"domain": "a2.example.com", "domain_type": "push", "region": "local"});
    quota(a.call("POST", "/domain", Some(second.to_string().as_bytes())));
    let template = json!({"domain": "a.example.com", "app_name": "other", "time_interval": 5,
                          "obs_location": {"bucket": "a-b", "location": "local"}});
    quota(a.call("POST", "/stream/snapshot", Some(template.to_string().as_bytes())));
    quota(a.call("PUT", "/functions/second", Some(&module)));
}
