//! S3 storage against a real S3-compatible server process (s3s-fs, SigV4
//! authentication and presigned URLs enforced).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use rusty_s3::S3Action;
use serde_json::Value;

use crate::service::*;
use crate::support::*;

const AK: &str = "AKLIVESNAPTEST";
const SK: &str = "sk-livesnap-test-secret";

pub struct S3Server {
    child: Child,
    port: u16,
    root: PathBuf,
}

impl S3Server {
    /// Starts s3s-fs over `root` with bucket `shots`, on `port` (0: any free one).
    pub fn start(root: &Path, port: u16) -> Self {
        std::fs::create_dir_all(root.join("shots")).unwrap();
        let port = if port == 0 { std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port() } else { port };
        let mut child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", AK, "--secret-key", SK])
            .arg(root)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs (scripts/setup --test installs it)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("server is running") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(WAIT).expect("s3s-fs did not start");
        Self { child, port, root: root.to_owned() }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A `[[bucket]]` section naming this server's bucket `shots` as
    /// `name`, its secret key in the file `write_secret` writes.
    pub fn bucket_section(&self, name: &str) -> String {
        format!(
            "[[bucket]]\nname = \"{name}\"\nbackend = \"s3\"\nendpoint = \"{}\"\nbucket = \"shots\"\naccess_key = \"{AK}\"\nsecret_key_file = \"s3-secret\"\n",
            self.endpoint()
        )
    }

    /// Writes the secret key file of [`S3Server::bucket_section`] into `dir`.
    pub fn write_secret(&self, dir: &Path) {
        std::fs::write(dir.join("s3-secret"), SK).unwrap();
    }

    /// Reads an object back over S3 (a SigV4-presigned GET).
    pub fn get(&self, key: &str) -> (u16, Vec<u8>) {
        let bucket = rusty_s3::Bucket::new(self.endpoint().parse().unwrap(), rusty_s3::UrlStyle::Path, "shots", "local").unwrap();
        let creds = rusty_s3::Credentials::new(AK, SK);
        let url = bucket.get_object(Some(&creds), key).sign(Duration::from_secs(60));
        http_get(url.as_str())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn http_get(url: &str) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent.get(url).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_vec().unwrap())
}

fn runtime_config(dir: &Path, s3: &S3Server, extra: &str) -> PathBuf {
    let path = dir.join("runtime-config.toml");
    std::fs::write(&path, format!("region = \"local\"\n{}{extra}\n", s3.bucket_section("snapshots"))).unwrap();
    s3.write_secret(dir);
    path
}

#[test]
fn full_and_instant_modes_write_the_expected_keys_with_the_encoded_bytes() {
    let dir = tempdir();
    let s3 = S3Server::start(&dir.path().join("s3"), 0);
    let rc = runtime_config(dir.path(), &s3, "");
    let video = small_baseline_flv();
    let local = dir.path().join("local");
    let (reference, _, out) = capture(dir.path(), &video, &["--stream", "cam", "--out", local.to_str().unwrap()]);
    assert!(out.status.success());

    let (lines, summary, out) = capture(dir.path(), &video, &["--stream", "cam", "--runtime-config", rc.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary["snapshots"], 4);
    for (line, local_line) in lines.iter().zip(&reference) {
        let key = line["object"].as_str().unwrap();
        assert_eq!(line["url"], format!("{}/shots/{key}", s3.endpoint()));
        let (status, bytes) = s3.get(key);
        assert_eq!(status, 200, "{key}");
        assert_eq!(bytes, std::fs::read(local.join(local_line["object"].as_str().unwrap())).unwrap(), "{key}: the bytes encoded");
    }
    assert!(s3.root.join("shots/snapshot/localhost/live/cam/1764070015.jpg").is_file());
    // A stream's folder lists back in time order (what the console's grid shows).
    let runtime = livesnap::config::runtime::RuntimeConfig::load(&rc).unwrap();
    let buckets = livesnap::storage::Buckets::open(&runtime.buckets, "http://127.0.0.1").unwrap();
    let keys = buckets.list("snapshots", "snapshot/localhost/live/cam", 3).unwrap();
    let written: Vec<&str> = lines.iter().map(|l| l["object"].as_str().unwrap()).collect();
    assert_eq!(keys, written[1..], "the newest 3 of the folder, oldest first");

    let (lines, _, out) =
        capture(dir.path(), &video, &["--stream", "latest", "--mode", "instant", "--runtime-config", rc.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(lines.iter().all(|l| l["object"] == "snapshot/localhost/live/latest.jpg"));
    let (status, bytes) = s3.get("snapshot/localhost/live/latest.jpg");
    assert_eq!(status, 200);
    assert_eq!(bytes, std::fs::read(local.join(reference[3]["object"].as_str().unwrap())).unwrap(), "the latest snapshot");
    let objects = std::fs::read_dir(s3.root.join("shots/snapshot/localhost/live")).unwrap().count();
    assert_eq!(objects, 2, "the cam folder and the one instant object");
}

#[test]
fn presigned_urls_download_with_plain_http_and_expire() {
    let dir = tempdir();
    let s3 = S3Server::start(&dir.path().join("s3"), 0);
    let rc = runtime_config(dir.path(), &s3, "presign_expiry_secs = 2");
    let (lines, _, out) = capture(dir.path(), &small_baseline_flv(), &["--interval", "3600", "--runtime-config", rc.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let url = lines[0]["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let (status, bytes) = http_get(url);
    assert_eq!((status, bytes.len() as u64), (200, lines[0]["bytes"].as_u64().unwrap()));
    // Past X-Amz-Date + X-Amz-Expires the same URL is refused.
    let param = |k: &str| url.split(&format!("{k}=")).nth(1).unwrap().split('&').next().unwrap().to_string();
    let t = param("X-Amz-Date"); // YYYYMMDDTHHMMSSZ
    let iso = format!("{}-{}-{} {}:{}:{}", &t[0..4], &t[4..6], &t[6..8], &t[9..11], &t[11..13], &t[13..15]);
    let out = Command::new("date").args(["-u", "-d", &iso, "+%s"]).output().unwrap();
    let signed_at: u64 = String::from_utf8(out.stdout).unwrap().trim().parse().unwrap();
    let expires = signed_at + param("X-Amz-Expires").parse::<u64>().unwrap();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    // Waiting for wall-clock time itself (nothing to await instead).
    std::thread::sleep(Duration::from_secs(expires.saturating_sub(now) + 1));
    let (status, body) = http_get(url);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("expired"));
}

#[test]
fn buckets_outside_the_region_or_undeclared_are_refused() {
    let dir = tempdir();
    let s3 = S3Server::start(&dir.path().join("s3"), 0);
    let rc = runtime_config(dir.path(), &s3, "location = \"cn-north-4\"");
    let out = run(livesnap().current_dir(dir.path()).arg("capture").arg(small_baseline_flv()).arg("--runtime-config").arg(&rc));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bucket 'snapshots' is in 'cn-north-4' but the service region is 'local'"), "{}", stderr(&out));

    std::fs::write(dir.path().join("spin.toml"), "spin_manifest_version = 2\n[[trigger.snapshot]]\ndomain = \"localhost\"\ntime_interval = 5\nobs_location = { bucket = \"elsewhere\", location = \"local\" }\n").unwrap();
    let out = run(livesnap().current_dir(dir.path()).args(["up", "--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bucket 'elsewhere' is not authorized"), "{}", stderr(&out));
}

#[test]
fn capture_goes_on_while_s3_is_down_and_storing_resumes() {
    let dir = tempdir();
    let s3_root = dir.path().join("s3");
    let mut s3 = S3Server::start(&s3_root, 0);
    let rc = runtime_config(dir.path(), &s3, "timeout_secs = 2");
    let listener = Listener::start(vec![]);
    std::fs::write(
        dir.path().join("spin.toml"),
        format!("spin_manifest_version = 2\n[[trigger.snapshot]]\ndomain = \"localhost\"\ntime_interval = 5\nobs_location = {{ bucket = \"snapshots\", location = \"local\" }}\ncall_back_enable = \"on\"\ncall_back_url = \"{}\"\n", listener.url),
    )
    .unwrap();
    let mut service = Service::start(dir.path(), &["--runtime-config", rc.to_str().unwrap()]);
    let _ffmpeg = KillOnDrop(ffmpeg_publish(&long_baseline_flv(), &service.rtmp_url("localhost", "live/cam"), true, &[]));
    let first: Value = serde_json::from_slice(&listener.requests.recv_timeout(WAIT).unwrap().body).unwrap();
    assert_eq!(s3.get(first["obs_addr"]["object"].as_str().unwrap()).0, 200);

    let port = s3.port;
    s3.stop();
    let failed = service.wait_for_log("snapshot failed: store function 'store-obs' failed");
    assert!(failed.contains("PUT failed") || failed.contains("connection"), "{failed}");
    let (_, metrics) = service.get("/metrics");
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("livesnap_component_errors_total{stage=\"store\",component=\"store-obs\",kind=\"error\"}"), "{metrics}");

    let s3 = S3Server::start(&s3_root, port);
    service.wait_for_log("snapshot stored");
    // Every callback sent is for a stored object: none for the failed ones.
    let mut callbacks: Vec<Value> = vec![first];
    callbacks.push(serde_json::from_slice(&listener.requests.recv_timeout(WAIT).unwrap().body).unwrap());
    callbacks.extend(listener.drain().iter().map(|r| serde_json::from_slice(&r.body).unwrap()));
    let log = service.log_text();
    let failed_keys: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("snapshot failed"))
        .filter_map(|l| l.split("writing snapshots/").nth(1)?.split(':').next())
        .collect();
    assert!(!failed_keys.is_empty());
    for cb in &callbacks {
        let key = cb["obs_addr"]["object"].as_str().unwrap();
        assert_eq!(s3.get(key).0, 200, "{cb}");
        assert!(!failed_keys.contains(&key), "a callback for a snapshot that was not stored: {key}");
    }
}
