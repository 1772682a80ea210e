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

    // A second publisher of cam-a, on another node, is refused as on one node.
    let mut duplicate = ffmpeg_publish(&video, &nodes[1].rtmp_url("localhost", "live/cam-a"), true, &[]);
    let refused = nodes[1].wait_for_log("publish refused");
    assert!(refused.contains("live/cam-a") && refused.contains("on another node"), "{refused}");
    assert!(!duplicate.wait().unwrap().success(), "ffmpeg's publish of a live name fails");

    // A template created through node A serves a stream pushed to node C,
    // and a change made through node A reaches that stream's next snapshot.
    let second = Listener::start(vec![]);
    let template = json!({"domain": "localhost", "app_name": "shared", "time_interval": 5,
                          "obs_location": {"bucket": "snapshots", "location": "local"},
                          "call_back_enable": "on", "call_back_url": listener.url});
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
