//! HTTPS and RTMPS with the operator's certificate: Huawei's SDK signs and
//! calls over HTTPS trusting a custom CA, ffmpeg publishes over RTMPS, and a
//! renewed certificate is picked up on SIGHUP.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::service::*;
use crate::support::*;

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it
/// (openssl): returns the CA's PEM path; the pair goes to `server.pem` and
/// `server.key` in `dir`.
fn issue(dir: &Path, ca_name: &str) -> std::path::PathBuf {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl (scripts/setup installs it)");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let (ca_key, ca_pem) = (format!("{ca_name}.key"), format!("{ca_name}.pem"));
    openssl(
        &[&["req", "-x509"], &ec[..], &["-keyout", &ca_key, "-out", &ca_pem, "-days", "2", "-subj", &format!("/CN={ca_name}")]].concat(),
    );
    openssl(&[&["req"], &ec[..], &["-keyout", "server.key.new", "-out", "server.csr", "-subj", "/CN=localhost"]].concat());
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        "server.pem.new",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    std::fs::rename(dir.join("server.key.new"), dir.join("server.key")).unwrap();
    std::fs::rename(dir.join("server.pem.new"), dir.join("server.pem")).unwrap();
    dir.join(ca_pem)
}

/// Huawei's SDK over HTTPS trusting `ca`: the script's JSON, or None when
/// the call failed below HTTP (the certificate was not trusted).
fn sdk_over_https(endpoint: &str, c: &Api, ca: &Path, args: &[&str]) -> Option<Value> {
    let python = std::env::var("LIVESNAP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sdk/live_api.py");
    let out = Command::new(&python)
        .arg(script)
        .args([endpoint, &c.access_key, &c.secret_key, &c.project])
        .args(args)
        .env("LIVESNAP_TEST_CA", ca)
        .output()
        .expect("python for the Huawei SDK (scripts/setup --test installs it)");
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).ok()
}

#[test]
fn huawei_sdk_over_https_rtmps_ingest_and_a_renewed_certificate_on_sighup() {
    let dir = tempdir();
    let first_ca = issue(dir.path(), "first-ca");
    let rc = dir.path().join("runtime-config.toml");
    std::fs::write(&rc, "[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\nrtmps_listen = \"127.0.0.1:0\"\n").unwrap();
    let mut service = Service::start(dir.path(), &["--runtime-config", rc.to_str().unwrap()]);
    let up = service.log_text();
    let rtmps = up.split_whitespace().find_map(|w| w.strip_prefix("rtmps=")).expect("the RTMPS address is logged").to_string();
    let https = service.http.replacen("http://", "https://", 1);
    let c = service.api();
    let template = |app: &str| {
        json!({"domain": "127.0.0.1", "app_name": app, "time_interval": 5, "obs_location": {"bucket": "snapshots", "location": "local"}})
            .to_string()
    };
    let created = sdk_over_https(&https, &c, &first_ca, &["create", &template("tls")]).expect("the SDK trusts the operator's CA");
    assert_eq!((created["ok"].as_bool(), created["status"].as_u64()), (Some(true), Some(201)), "{created}");

    // RTMPS ingest with the same certificate.
    let mut ffmpeg = ffmpeg_publish(&small_baseline_flv(), &format!("rtmps://{rtmps}/tls/cam"), false, &["-t", "2"]);
    assert!(ffmpeg.wait().unwrap().success(), "ffmpeg published over RTMPS");
    service.wait_for_log("127.0.0.1/tls/cam");

    // Renewed by another CA: after SIGHUP only the new CA is trusted.
    let second_ca = issue(dir.path(), "second-ca");
    service.hangup();
    service.wait_for_log("TLS certificate reloaded");
    assert!(sdk_over_https(&https, &c, &first_ca, &["list", "127.0.0.1"]).is_none(), "the old certificate is no longer served");
    let listed = sdk_over_https(&https, &c, &second_ca, &["list", "127.0.0.1"]).expect("the renewed certificate is served");
    let apps: Vec<&str> =
        listed["body"]["snapshot_config_list"].as_array().unwrap().iter().map(|t| t["app_name"].as_str().unwrap()).collect();
    assert!(apps.contains(&"tls"), "{listed}");

    // A broken renewal keeps the running certificate.
    std::fs::write(dir.path().join("server.pem"), "not a certificate").unwrap();
    service.hangup();
    service.wait_for_log("TLS reload failed, keeping the running certificate");
    assert!(sdk_over_https(&https, &c, &second_ca, &["list", "127.0.0.1"]).is_some());
}
