//! Three `livesnap up` nodes sharing one PostgreSQL database and one S3
//! bucket (real server processes), as behind an L4 load balancer: streams
//! spread over the nodes, a template made through one node serving a stream
//! on another, one publisher per stream name across nodes, the online list
//! from any node, and a killed node's pending callbacks delivered by the
//! others, each Idempotency-Key once.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use crate::http_security::{authorization, read_response, sdk_date, sha256_hex};
use crate::postgres::Postgres;
use crate::s3::S3Server;
use crate::service::*;
use crate::support::*;

const KEYS: [(&str, &str); 4] = [
    ("LIVESNAP_ACCESS_KEY", "AKCLUSTERTEST"),
    ("LIVESNAP_SECRET_KEY", "cluster-secret-key-0123456789"),
    ("LIVESNAP_PROJECT_ID", "clusterproject"),
    ("LIVESNAP_TOKEN", "cluster-token-0123456789abcdef"),
];

/// The API client of a node, with the keys every node shares.
fn api(node: &Service) -> Api {
    let keys: HashMap<&str, &str> = KEYS.into_iter().collect();
    node.api_with(&json!({"project_id": keys["LIVESNAP_PROJECT_ID"], "access_key": keys["LIVESNAP_ACCESS_KEY"],
                          "secret_key": keys["LIVESNAP_SECRET_KEY"], "token": keys["LIVESNAP_TOKEN"]}))
}

/// A node's folder: its own state folder (the compiled component cache),
/// the shared runtime config and manifest.
fn node_dir(root: &Path, name: &str, database: &str, s3: &S3Server, callback: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    s3.write_secret(&dir);
    std::fs::write(
        dir.join("runtime-config.toml"),
        format!(
            "region = \"local\"\nstate = \"{database}\"\nnode_id = \"{name}\"\n\
             [delivery]\nbackoff_ms = 200\nmax_backoff_ms = 1000\nmax_attempts = 100\n\
             {}",
            s3.bucket_section("snapshots")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("spin.toml"),
        format!(
            "spin_manifest_version = 2\n[[trigger.snapshot]]\ndomain = \"localhost\"\ntime_interval = 5\n\
             obs_location = {{ bucket = \"snapshots\", location = \"local\" }}\ncall_back_enable = \"on\"\ncall_back_url = \"{callback}\"\n"
        ),
    )
    .unwrap();
    dir
}

fn start(dir: &Path) -> Service {
    Service::start_with_env(dir, &["--runtime-config", "runtime-config.toml"], &KEYS)
}

/// Callbacks until one has arrived for each of `streams`; their bodies.
fn callbacks_for(listener: &Listener, streams: &[&str]) -> Vec<Value> {
    let mut seen = HashSet::new();
    let mut bodies = Vec::new();
    while seen.len() < streams.len() {
        let r = listener.requests.recv_timeout(WAIT).unwrap_or_else(|_| panic!("callbacks only for {seen:?} of {streams:?}"));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        if let Some(s) = streams.iter().find(|s| body["stream_name"] == **s) {
            seen.insert(*s);
        }
        bodies.push(body);
    }
    bodies
}

/// Prints every node's log if the test fails (which node did what is the
/// first question then).
struct LogsOnFailure(Vec<std::sync::Arc<std::sync::Mutex<Vec<String>>>>);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, log) in self.0.iter().enumerate() {
                eprintln!("--- node {} ---\n{}", ["a", "b", "c"][i], log.lock().unwrap().join("\n"));
            }
        }
    }
}

#[test]
fn three_nodes_share_streams_templates_and_callbacks_and_survive_losing_one() {
    let root = tempdir();
    let pg = Postgres::get();
    let database = pg.database();
    let s3 = S3Server::start(&root.path().join("s3"), 0);
    let listener = Listener::start(vec![]);
    let dirs: Vec<PathBuf> =
        ["node-a", "node-b", "node-c"].iter().map(|n| node_dir(root.path(), n, &database, &s3, &listener.url)).collect();
    let mut nodes: Vec<Service> = dirs.iter().map(|d| start(d)).collect();
    let _logs = LogsOnFailure(nodes.iter().map(|n| n.log.clone()).collect());

    // Publishers spread over the nodes: each stream's snapshots land in S3
    // and its callbacks arrive.
    let video = long_baseline_flv();
    let _publishers: Vec<KillOnDrop> = ["cam-a", "cam-b", "cam-c"]
        .iter()
        .zip(&nodes)
        .map(|(stream, node)| KillOnDrop(ffmpeg_publish(&video, &node.rtmp_url("localhost", &format!("live/{stream}")), true, &[])))
        .collect();
    for body in callbacks_for(&listener, &["cam-a", "cam-b", "cam-c"]) {
        let object = body["obs_addr"]["object"].as_str().unwrap();
        assert_eq!(s3.get(object).0, 200, "{object} is in the shared bucket");
    }

    // Every node lists every node's streams.
    for node in &nodes {
        let (status, online) = api(node).call("GET", "/realtime/streams?publish_domain=localhost&app=live", None);
        assert_eq!(status, 200, "{online}");
        let names: Vec<&str> = online["streams"].as_array().unwrap().iter().map(|s| s["stream"].as_str().unwrap()).collect();
        assert_eq!(names, ["cam-a", "cam-b", "cam-c"], "{online}");
    }
    let (_, streams) = api(&nodes[2]).call("GET", "/streams", None);
    assert_eq!(streams["total"], 3, "{streams}");

    // An on-demand snapshot of a stream on node C, asked through node B,
    // is taken by C; the latest snapshot of a stream on B reads through A.
    let (status, taken) = api(&nodes[1]).call("POST", "/streams/localhost/live/cam-c/snapshot", None);
    assert_eq!(status, 200, "{taken}");
    let object = taken["obs_addr"]["object"].as_str().unwrap();
    assert!(object.contains("/cam-c/") && s3.get(object).0 == 200, "{taken}");
    // (B tells the others its latest snapshot with its 3 s heartbeat: a
    // snapshot interval, 5 s, after one callback has seen one.)
    callbacks_for(&listener, &["cam-b"]);
    callbacks_for(&listener, &["cam-b"]);
    let (status, _, jpeg) = api(&nodes[0]).get_raw("/streams/localhost/live/cam-b/latest.jpg", None);
    assert_eq!((status, &jpeg[..2]), (200, &[0xff, 0xd8][..]), "a JPEG");
    let (status, _) = api(&nodes[0]).call("POST", "/streams/localhost/live/absent/snapshot", None);
    assert_eq!(status, 404, "a stream live nowhere");

    // A second publisher of cam-a, on another node, is refused as on one node.
    let mut duplicate = ffmpeg_publish(&video, &nodes[1].rtmp_url("localhost", "live/cam-a"), true, &[]);
    let refused = nodes[1].wait_for_log("publish refused");
    assert!(refused.contains("live/cam-a") && refused.contains("on another node"), "{refused}");
    assert!(!duplicate.wait().unwrap().success(), "ffmpeg's publish of a live name fails");

    // A template created through node A serves a stream pushed to node C,
    // and a change made through node A reaches that stream's next snapshot.
    // Its notifier is a tenant module uploaded through A too: C loads it
    // from the shared state.
    let module = std::fs::read(functions_dir().join("notify_callback.wasm")).unwrap();
    let (status, answer) = api(&nodes[0]).call("PUT", "/functions/tenant-notify", Some(&module));
    assert_eq!(status, 201, "{answer}");
    nodes[2].wait_for_log("tenant module loaded (changed on another node)");
    nodes[2].wait_for_log("applied configuration changes from the shared state");
    let second = Listener::start(vec![]);
    let template = json!({"domain": "localhost", "app_name": "shared", "time_interval": 5,
                          "obs_location": {"bucket": "snapshots", "location": "local"},
                          "call_back_enable": "on", "call_back_url": listener.url,
                          "functions": {"notify": "tenant-notify"}});
    let (status, answer) = api(&nodes[0]).call("POST", "/stream/snapshot", Some(template.to_string().as_bytes()));
    assert_eq!(status, 201, "{answer}");
    nodes[2].wait_for_log("applied configuration changes from the shared state");
    let _on_c = KillOnDrop(ffmpeg_publish(&video, &nodes[2].rtmp_url("localhost", "shared/cam-s"), true, &[]));
    callbacks_for(&listener, &["cam-s"]);
    let mut changed = template.clone();
    changed["call_back_url"] = json!(second.url);
    let sent = Instant::now();
    let (status, answer) = api(&nodes[0]).call("PUT", "/stream/snapshot", Some(changed.to_string().as_bytes()));
    assert_eq!(status, 200, "{answer}");
    nodes[2].wait_for_log("applied configuration changes from the shared state");
    eprintln!("a template change through node A applied on node C after {} ms", sent.elapsed().as_millis());
    let moved = callbacks_for(&second, &["cam-s"]);
    assert!(moved.iter().all(|b| b["stream_name"] == "cam-s"), "only cam-s uses the changed template: {moved:?}");

    // A signed write captured on its way to node A is refused by node B
    // (the nodes share the record of used signatures).
    let body = json!({"domain": "localhost", "app_name": "signed", "time_interval": 5,
                      "obs_location": {"bucket": "snapshots", "location": "local"}})
    .to_string();
    let keys: HashMap<&str, &str> = KEYS.into_iter().collect();
    let path = format!("/v1/{}/stream/snapshot", keys["LIVESNAP_PROJECT_ID"]);
    let date = sdk_date(std::time::SystemTime::now());
    let headers = [("content-type", "application/json"), ("host", "live.example.com"), ("x-sdk-date", date.as_str())];
    let auth =
        authorization(keys["LIVESNAP_ACCESS_KEY"], keys["LIVESNAP_SECRET_KEY"], "POST", &path, "", &headers, &sha256_hex(body.as_bytes()));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: live.example.com\r\nContent-Type: application/json\r\nX-Sdk-Date: {date}\r\n\
         Authorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let send = |node: &Service| {
        let mut s = std::net::TcpStream::connect(node.http.trim_start_matches("http://")).unwrap();
        std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
        let (status, _, answer) = read_response(&mut s).unwrap();
        (status, answer)
    };
    assert_eq!(send(&nodes[0]).0, 201, "the signed write works once");
    let (status, answer) = send(&nodes[1]);
    assert_eq!((status, answer["error_code"].as_str()), (401, Some("APIGW.0301")), "and not again on another node: {answer}");

    // A console sign-in on node A holds on node B (the sessions are shared).
    let no_redirects: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let signed_in = no_redirects
        .post(&format!("{}/console/login", nodes[0].http))
        .header("Origin", &nodes[0].http)
        .send_form([("project_id", keys["LIVESNAP_PROJECT_ID"]), ("token", keys["LIVESNAP_TOKEN"])])
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 303, "signed in");
    let cookie = signed_in.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
    let mut page = no_redirects.get(&format!("{}/console/streams", nodes[1].http)).header("Cookie", &cookie).call().unwrap();
    assert_eq!(page.status().as_u16(), 200, "node B knows the session");
    assert!(page.body_mut().read_to_string().unwrap().contains("cam-c"), "and lists every node's streams");

    // Node A's callbacks fail while their receiver is down; A is killed
    // with them pending; once the receiver is back, B and C deliver each
    // of them, once.
    let port = free_port();
    let kill = json!({"domain": "localhost", "app_name": "kill", "time_interval": 5,
                      "obs_location": {"bucket": "snapshots", "location": "local"},
                      "call_back_enable": "on", "call_back_url": format!("http://127.0.0.1:{port}/callback")});
    let (status, answer) = api(&nodes[0]).call("POST", "/stream/snapshot", Some(kill.to_string().as_bytes()));
    assert_eq!(status, 201, "{answer}");
    let mut on_a = KillOnDrop(ffmpeg_publish(&video, &nodes[0].rtmp_url("localhost", "kill/cam-k"), true, &[]));
    for _ in 0..2 {
        nodes[0].wait_for_log("callback failed; retrying");
    }
    drop(nodes.remove(0)); // SIGKILL
    let _ = on_a.0.kill();
    let pending = pg.psql(
        database.rsplit('/').next().unwrap(),
        &format!("SELECT id FROM outbox WHERE url LIKE '%:{port}/%' AND status = 'pending' ORDER BY id"),
    );
    let pending: HashSet<String> = pending.lines().map(str::to_string).collect();
    assert!(!pending.is_empty(), "node A left callbacks pending");
    let receiver = Listener::start_on(port, vec![]);
    let mut keys: HashMap<String, usize> = HashMap::new();
    while !pending.iter().all(|id| keys.contains_key(id)) {
        let r = receiver.requests.recv_timeout(WAIT).unwrap_or_else(|_| panic!("delivered {keys:?} of {pending:?}"));
        *keys.entry(r.headers["idempotency-key"].clone()).or_default() += 1;
    }
    assert!(keys.values().all(|n| *n == 1), "each Idempotency-Key once: {keys:?}");
    let database_name = database.rsplit('/').next().unwrap();
    let left = pg.psql(database_name, &format!("SELECT COUNT(*) FROM outbox WHERE url LIKE '%:{port}/%' AND status <> 'delivered'"));
    assert_eq!(left, "0", "the outbox records them delivered");
    for r in receiver.drain() {
        *keys.entry(r.headers["idempotency-key"].clone()).or_default() += 1;
    }
    assert!(keys.values().all(|n| *n == 1), "and nothing was sent twice: {keys:?}");

    // SIGTERM hands a node's work back: its leases and claims are freed.
    for (node, name) in nodes.into_iter().zip(["node-b", "node-c"]) {
        assert!(node.stop().success(), "a node stops cleanly on SIGTERM");
        let held = pg.psql(
            database_name,
            &format!(
                "SELECT (SELECT COUNT(*) FROM stream_leases WHERE node = '{name}') + (SELECT COUNT(*) FROM outbox WHERE claimed_by = '{name}')"
            ),
        );
        assert_eq!(held, "0", "{name} left no lease or claim behind");
    }
}

#[test]
fn a_node_sharing_state_refuses_keys_of_its_own_and_a_node_local_bucket() {
    let dir = tempdir();
    let database = Postgres::get().database();
    std::fs::write(dir.path().join("runtime-config.toml"), format!("state = \"{database}\"\n")).unwrap();
    let out = run(livesnap().current_dir(dir.path()).args(["up", "--runtime-config", "runtime-config.toml"]).envs(KEYS));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("the embedded fs bucket is not offered"), "{}", stderr(&out));
    let bucket = "[[bucket]]\nname = \"snapshots\"\nbackend = \"fs\"\nshared = true\npath = \"shots\"\n";
    std::fs::write(dir.path().join("runtime-config.toml"), format!("state = \"{database}\"\n{bucket}")).unwrap();
    let up = |env: &[(&str, &str)]| {
        run(livesnap().current_dir(dir.path()).envs(env.iter().copied()).args([
            "up",
            "--runtime-config",
            "runtime-config.toml",
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ]))
    };
    // Generated keys, or a generated token, would differ from node to node.
    for env in [&[][..], &KEYS[..2]] {
        let out = up(env);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("every node needs the same default project keys"), "{}", stderr(&out));
        assert!(!dir.path().join(".livesnap/api-credentials.toml").exists(), "nothing generated");
    }
}
