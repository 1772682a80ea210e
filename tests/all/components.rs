//! The functions in the real runtime: the reference signature through the
//! default notifier, and hostile components contained per snapshot.

use std::sync::Arc;

use livesnap::config::runtime::RuntimeConfig;
use livesnap::runtime::bindings::types::*;
use livesnap::runtime::{CallLimits, Runtime};
use livesnap::storage::Buckets;

use crate::support::*;

fn runtime() -> Runtime {
    let dir = tempdir();
    let buckets = Arc::new(Buckets::open(&RuntimeConfig::embedded(dir.path()).buckets, "http://127.0.0.1:8080").unwrap());
    Runtime::new(buckets, None).unwrap()
}

const LIMITS: CallLimits = CallLimits { timeout: std::time::Duration::from_secs(5), memory: 64 << 20 };

#[test]
fn default_notifier_signs_the_reference_vector() {
    let rt = runtime();
    rt.load("notify-callback", livesnap::runtime::Source::Bytes(livesnap::builtins::NOTIFY_CALLBACK), Default::default()).unwrap();
    let snapshot = Snapshot {
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
    let template = Template {
        domain: "push.example.com".into(),
        app_name: "live".into(),
        time_interval: 5,
        object_write_mode: WriteMode::Full,
        bucket: "snapshots".into(),
        location: "region-local".into(),
        object_prefix: "snapshot".into(),
        call_back_enable: true,
        call_back_url: "http://127.0.0.1:9/cb".into(),
        auth_key: "k3y-for-snapshot-callback-0123456789abcdef".into(),
        auth_validity_secs: 300,
        image_object_format: None,
        image_access_protocol: None,
        image_access_domain: None,
    };
    let request = rt.notify("notify-callback", &snapshot, &template, 1_764_070_000, LIMITS).unwrap().unwrap();
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["auth_timestamp"], 1_764_070_300);
    assert_eq!(body["auth_sign"], "f7a97b11c5043d7125b4cd0c50c1d9f9afe86104fc23f1f91dff2bd2c213be0f");

    let off = Template { call_back_enable: false, ..template };
    assert!(rt.notify("notify-callback", &snapshot, &off, 0, LIMITS).unwrap().is_none());
}

#[test]
fn a_component_of_the_wrong_world_or_not_wasm_is_refused_by_name() {
    let rt = runtime();
    rt.load("encode-jpeg", livesnap::runtime::Source::Bytes(livesnap::builtins::ENCODE_JPEG), Default::default()).unwrap();
    let err = rt.prepare("encode-jpeg", livesnap::runtime::Stage::Notify).err().unwrap().to_string();
    assert!(err.contains("'encode-jpeg' cannot be used to notify"), "{err}");
    let err = rt.load("junk", livesnap::runtime::Source::Bytes(b"not wasm at all"), Default::default()).unwrap_err().to_string();
    assert!(err.contains("'junk' is not a valid WebAssembly component"), "{err}");
}

#[test]
fn traps_cost_only_their_own_snapshot() {
    let video = small_baseline_flv();
    let dir = tempdir();
    let hostile = functions_dir().join("hostile_encode.wasm");
    std::fs::write(
        dir.path().join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2
[application]
name = "hostile"
[[trigger.snapshot]]
domain = "localhost"
time_interval = 5
obs_location = {{ bucket = "snapshots", location = "local" }}
functions = {{ encode = "hostile" }}
function_timeout_ms = 300
function_memory_mb = 64
[component.hostile]
source = "{}"
"#,
            hostile.display()
        ),
    )
    .unwrap();
    let (lines, summary, output) = capture(dir.path(), &video, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(lines.len(), 4, "{lines:?}");
    let err0 = lines[0]["error"].as_str().unwrap_or_default();
    assert!(err0.contains("encode function 'hostile' exceeded its deadline of 300ms"), "{err0}");
    let err1 = lines[1]["error"].as_str().unwrap_or_default();
    assert!(err1.contains("encode function 'hostile' exceeded its memory cap of 64 MiB"), "{err1}");
    for line in &lines[2..] {
        assert!(line.get("error").is_none(), "{line}");
        assert!(dir.path().join(".livesnap/snapshots").join(line["object"].as_str().unwrap()).is_file());
    }
    assert_eq!((summary["snapshots"].as_u64(), summary["errors"].as_u64()), (Some(2), Some(2)));
}

#[test]
fn build_runs_the_manifest_build_commands() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("spin.toml"),
        r#"spin_manifest_version = 2
[application]
name = "b"
[component.one]
source = "out/one.wasm"
[component.one.build]
command = "mkdir -p ../out && printf built > ../out/one.wasm"
workdir = "src"
"#,
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let out = run(livesnap().current_dir(dir.path()).arg("build"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dir.path().join("out/one.wasm")).unwrap(), "built");
}

#[test]
fn keygen_prints_fresh_64_character_keys() {
    let a = run(livesnap().arg("keygen"));
    let b = run(livesnap().arg("keygen"));
    let (a, b) = (String::from_utf8(a.stdout).unwrap(), String::from_utf8(b.stdout).unwrap());
    assert_eq!(a.trim().len(), 64);
    assert!(a.trim().chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}
