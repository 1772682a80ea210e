//! The store contract: SQLite (one node) and PostgreSQL (several nodes)
//! answer every table's calls alike. Each check runs against both; the
//! PostgreSQL one against a real server (`postgres.rs`).

use std::sync::Arc;
use std::time::Duration;

use livesnap::domain::Domain;
use livesnap::ingest::url_auth::{AuthType, KeyChain};
use livesnap::project::{Keys, Project, token_hash};
use livesnap::source::Source;
use livesnap::state::{ModuleRecord, OutboxItem, OutboxStatus, SqliteState, StateDb, StateError, StateSettings, StreamLease};
use livesnap::template::{ObsLocation, SnapshotConfig};

use crate::postgres::Postgres;

fn sqlite() -> Arc<dyn StateDb> {
    Arc::new(SqliteState::in_memory().unwrap())
}

fn postgres() -> Arc<dyn StateDb> {
    let url = Postgres::get().database();
    let settings = StateSettings::from_config(Some(&url), None, Some(4), std::path::Path::new(".")).unwrap();
    livesnap::state::open(&settings, std::path::Path::new("/nonexistent")).unwrap()
}

/// One contract check, as a test per backend.
macro_rules! contract {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&*super::sqlite());
            }
            #[test]
            fn postgres() {
                super::$name(&*super::postgres());
            }
        }
    };
}

contract!(templates_are_unique_per_domain_and_app);
contract!(callbacks_are_claimed_by_one_node_at_a_time);
contract!(projects_are_found_by_key_and_token_and_keep_their_resources_apart);
contract!(a_stream_is_leased_to_one_node_until_its_lease_expires);
contract!(configuration_changes_move_the_revision_and_snapshots_do_not);
contract!(key_values_key_chains_sources_and_usage_round_trip);
contract!(a_signature_is_used_once_until_it_expires);
contract!(console_sessions_last_while_used_and_are_capped_per_token);
contract!(on_demand_requests_reach_their_node_and_carry_the_answer_back);

fn on_demand_requests_reach_their_node_and_carry_the_answer_back(db: &dyn StateDb) {
    let now = now_ms();
    db.ask("r1", "node-c", "default", ("a.example.com", "live", "cam"), now).unwrap();
    db.ask("r2", "node-c", "default", ("a.example.com", "live", "other"), now + 1).unwrap();
    assert!(db.asked("node-b").unwrap().is_empty(), "not node b's");
    let asked = db.asked("node-c").unwrap();
    assert_eq!(asked.iter().map(|r| (r.id.as_str(), r.stream.2.as_str())).collect::<Vec<_>>(), [("r1", "cam"), ("r2", "other")]);
    assert_eq!(db.answer_of("r1").unwrap(), None, "not answered yet");
    db.answer("r1", Ok(r#"{"size":1}"#)).unwrap();
    db.answer("r2", Err("not_found\tgone")).unwrap();
    assert!(db.asked("node-c").unwrap().is_empty(), "answered ones are not asked again");
    assert_eq!(db.answer_of("r1").unwrap(), Some(Ok(r#"{"size":1}"#.to_string())));
    assert_eq!(db.answer_of("r2").unwrap(), Some(Err("not_found\tgone".to_string())));
    db.forget("r1", now - 1000).unwrap();
    assert_eq!(db.answer_of("r1").unwrap(), None);
    assert!(db.answer_of("r2").unwrap().is_some(), "kept until its asker forgets it or it is old");
    db.forget("none", now + 10).unwrap();
    assert_eq!(db.answer_of("r2").unwrap(), None, "old ones go with any forget");
}

fn console_sessions_last_while_used_and_are_capped_per_token(db: &dyn StateDb) {
    let now = now_ms();
    db.open_session("s1", "tok-a", now, now - 1000, 2).unwrap();
    db.open_session("s2", "tok-a", now + 1, now - 1000, 2).unwrap();
    db.open_session("s3", "tok-b", now + 2, now - 1000, 2).unwrap();
    assert_eq!(db.session("s1", now + 10, now - 1000).unwrap().as_deref(), Some("tok-a"));
    // A third session of tok-a pushes out its least recently seen one (s2: s1 was just used).
    db.open_session("s4", "tok-a", now + 20, now - 1000, 2).unwrap();
    assert_eq!(db.session("s2", now + 21, now - 1000).unwrap(), None);
    assert_eq!(db.session("s1", now + 22, now - 1000).unwrap().as_deref(), Some("tok-a"));
    assert_eq!(db.session("s3", now + 23, now - 1000).unwrap().as_deref(), Some("tok-b"), "another token's are kept");
    // Idle sessions end; closed ones too.
    assert_eq!(db.session("s4", now + 5000, now + 21).unwrap(), None, "s4 was last seen at +20");
    db.close_session("s1").unwrap();
    assert_eq!(db.session("s1", now + 30, now - 1000).unwrap(), None);
}

fn a_signature_is_used_once_until_it_expires(db: &dyn StateDb) {
    let now = now_ms();
    assert!(db.first_use("sig-a", now + 1000, now).unwrap());
    assert!(!db.first_use("sig-a", now + 1000, now + 999).unwrap(), "a replay");
    assert!(db.first_use("sig-b", now + 1000, now).unwrap());
    assert!(db.first_use("sig-a", now + 5000, now + 1000).unwrap(), "forgotten once expired");
    let threads: Vec<bool> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..4).map(|_| s.spawn(|| db.first_use("sig-race", now + 9000, now).unwrap())).collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(threads.iter().filter(|first| **first).count(), 1, "one of racing nodes wins: {threads:?}");
}

fn template(domain: &str, interval: i64) -> SnapshotConfig {
    SnapshotConfig {
        domain: domain.into(),
        time_interval: interval,
        obs_location: ObsLocation { bucket: "b".into(), location: "local".into(), object: None },
        ..Default::default()
    }
}

fn templates_are_unique_per_domain_and_app(db: &dyn StateDb) {
    db.insert_template(&template("b.example.com", 10)).unwrap();
    db.insert_template(&template("a.example.com", 10)).unwrap();
    assert!(matches!(db.insert_template(&template("a.example.com", 5)), Err(StateError::Exists { .. })));
    assert!(db.update_template(&template("a.example.com", 20)).unwrap());
    assert!(!db.update_template(&template("c.example.com", 20)).unwrap());
    let all = db.templates().unwrap();
    assert_eq!(
        all.iter().map(|t| (t.domain.as_str(), t.time_interval)).collect::<Vec<_>>(),
        [("a.example.com", 20), ("b.example.com", 10)]
    );
    assert!(!db.delete_template("a.example.com", "other").unwrap());
    assert!(db.delete_template("a.example.com", "live").unwrap());
    assert_eq!(db.templates().unwrap().len(), 1);
}

fn callback(id: &str) -> OutboxItem {
    OutboxItem {
        id: id.into(),
        destination: "http://127.0.0.1:9".into(),
        url: "http://127.0.0.1:9/cb".into(),
        headers: vec![("x-a".into(), "1".into())],
        body: b"{}".to_vec(),
        resign: None,
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: 0,
        last_error: None,
        created_at: 0,
        updated_at: 0,
        project: "default".into(),
    }
}

fn now_ms() -> i64 {
    livesnap::time::unix_ms() as i64
}

fn callbacks_are_claimed_by_one_node_at_a_time(db: &dyn StateDb) {
    assert!(db.enqueue(&callback("cb-1")).unwrap());
    assert!(!db.enqueue(&callback("cb-1")).unwrap(), "an id is recorded once");
    assert!(db.enqueue(&callback("cb-2")).unwrap());
    let now = now_ms() + 1;
    assert_eq!(db.due(now, 10).unwrap().len(), 2);

    // Node a claims cb-1: b cannot, and cb-1 is not due for anyone meanwhile.
    assert!(db.claim("cb-1", "a", now, now + 60_000).unwrap());
    assert!(!db.claim("cb-1", "b", now, now + 60_000).unwrap());
    assert_eq!(db.due(now, 10).unwrap().iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["cb-2"]);

    // An expired claim (its node died) is free again.
    assert!(db.claim("cb-2", "a", now, now + 1000).unwrap());
    assert!(!db.claim("cb-2", "b", now + 999, now + 60_000).unwrap());
    assert!(db.claim("cb-2", "b", now + 1000, now + 60_000).unwrap());

    // Recording the attempt ends the claim; a retry later is anyone's.
    let mut attempt = db.due(now + 60_000, 10).unwrap().into_iter().find(|i| i.id == "cb-1").unwrap();
    attempt.attempts = 1;
    attempt.next_attempt_at = now + 5;
    attempt.last_error = Some("HTTP 503".into());
    db.record_attempt(&attempt).unwrap();
    assert!(db.claim("cb-1", "b", now + 5, now + 60_000).unwrap());
    db.release_claims("b").unwrap();
    let due: Vec<_> = db.due(now + 5, 10).unwrap();
    assert_eq!(due.len(), 2, "released claims are due again: {due:?}");
    assert_eq!(due.iter().find(|i| i.id == "cb-1").unwrap().attempts, 1);
    assert_eq!(db.next_due().unwrap().map(|t| t <= now + 5), Some(true));

    // Delivered and failed ones are listed per project and counted.
    attempt.status = OutboxStatus::Failed;
    db.record_attempt(&attempt).unwrap();
    assert!(!db.claim("cb-1", "a", now + 5, now + 60_000).unwrap(), "a failed callback is not claimed");
    assert_eq!(db.counts().unwrap(), (1, 1));
    assert_eq!(db.list("default", Some(OutboxStatus::Failed), 10, 0).unwrap().0, 1);
    assert_eq!(db.list("other", None, 10, 0).unwrap().0, 0);
    assert!(!db.redeliver("other", "cb-1").unwrap());
    assert!(db.redeliver("default", "cb-1").unwrap());
    assert_eq!(db.counts().unwrap(), (2, 0));

    // Many claimers racing for the same callbacks: each is claimed once.
    for i in 0..40 {
        db.enqueue(&callback(&format!("race-{i}"))).unwrap();
    }
    let now = now_ms() + 1;
    let won: Vec<Vec<String>> = std::thread::scope(|s| {
        let claimers: Vec<_> = (0..4)
            .map(|n| {
                s.spawn(move || {
                    (0..40)
                        .map(|i| format!("race-{i}"))
                        .filter(|id| db.claim(id, &format!("node-{n}"), now, now + 60_000).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        claimers.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut all: Vec<&String> = won.iter().flatten().collect();
    all.sort();
    let claimed = all.len();
    all.dedup();
    assert_eq!((claimed, all.len()), (40, 40), "every callback claimed exactly once: {won:?}");
}

fn projects_are_found_by_key_and_token_and_keep_their_resources_apart(db: &dyn StateDb) {
    let (a, keys) = Project::generate("a").unwrap();
    db.insert_project(&a).unwrap();
    let (mut again, _) = Project::generate("a").unwrap();
    assert!(matches!(db.insert_project(&again), Err(StateError::Conflict(_))), "names are unique");
    again.name = "b".into();
    db.insert_project(&again).unwrap();
    assert_eq!(db.project_by_access_key(&keys.access_key).unwrap().unwrap().id, a.id);
    assert_eq!(db.project_by_token(&token_hash(keys.token.expose())).unwrap().unwrap().id, a.id);
    assert!(db.project_by_token(keys.token.expose()).unwrap().is_none(), "the token itself is not stored");
    assert_eq!(db.project("a").unwrap().unwrap().id, a.id);
    assert_eq!(db.project(&a.id).unwrap().unwrap().name, "a");
    assert_eq!(db.projects().unwrap().len(), 2);

    db.count_snapshot(&a.id, "a.example.com", 0).unwrap();
    assert!(db.snapshot_counts(&again.id, None, 0, 0).unwrap().is_empty());
    db.set_bucket_authorized(&a.id, "shots", true).unwrap();
    db.set_bucket_authorized(&a.id, "shots", true).unwrap();
    db.set_bucket_authorized(&again.id, "shots", false).unwrap();
    assert_eq!(db.authorized_buckets().unwrap(), [(a.id.clone(), "shots".to_string())]);
    let module = ModuleRecord {
        project: a.id.clone(),
        name: "enc".into(),
        sha256: "h".into(),
        bytes: vec![0, 1, 2],
        allowed_outbound_hosts: vec!["https://x.example.com".into()],
        environment: vec![("K".into(), "V".into())],
        uploaded_at: 0,
    };
    assert!(!db.put_module(&module).unwrap());
    assert!(db.put_module(&ModuleRecord { sha256: "h2".into(), ..module.clone() }).unwrap(), "a second upload replaces");
    let stored = db.module(&a.id, "enc").unwrap().unwrap();
    assert_eq!((stored.sha256.as_str(), stored.bytes.as_slice(), &stored.environment), ("h2", &[0u8, 1, 2][..], &module.environment));
    assert!(db.module(&again.id, "enc").unwrap().is_none());
    assert!(!db.delete_module(&again.id, "enc").unwrap());
    assert_eq!(db.module_summaries(&a.id).unwrap()[0].size, 3);
    let versions = db.module_versions().unwrap();
    assert_eq!(
        versions.iter().map(|(p, m)| (p.as_str(), m.name.as_str(), m.sha256.as_str(), m.size)).collect::<Vec<_>>(),
        [(a.id.as_str(), "enc", "h2", 3)]
    );

    let fresh = Keys::generate();
    assert!(db.set_project_keys(&a.id, &fresh.access_key, &fresh.secret_key, "t2").unwrap());
    assert!(db.project_by_access_key(&keys.access_key).unwrap().is_none());
    let domain = Domain {
        name: "a.example.com".into(),
        domain_type: "push".into(),
        region: "r".into(),
        status: "on".into(),
        service_area: String::new(),
        created_at: 0,
        project: a.id.clone(),
    };
    db.insert_domain(&domain).unwrap();
    assert!(matches!(db.insert_domain(&domain), Err(StateError::Exists { .. })));
    assert!(db.set_domain_status("a.example.com", "off").unwrap());
    assert_eq!(db.domains().unwrap()[0].status, "off");
    assert!(matches!(db.delete_project(&a.id), Err(StateError::Conflict(_))));
    assert!(db.delete_domain("a.example.com").unwrap());
    assert!(db.delete_project(&a.id).unwrap());
    assert!(db.module(&a.id, "enc").unwrap().is_none(), "its modules go with it");
    assert!(db.authorized_buckets().unwrap().is_empty(), "and its authorizations");
}

fn lease(stream: &str, node: &str, expires_at: i64) -> StreamLease {
    StreamLease {
        domain: "a.example.com".into(),
        app: "live".into(),
        stream: stream.into(),
        node: node.into(),
        owner: "default".into(),
        info: "{}".into(),
        expires_at,
    }
}

fn a_stream_is_leased_to_one_node_until_its_lease_expires(db: &dyn StateDb) {
    let now = now_ms();
    assert!(db.acquire_stream(&lease("s1", "a", now + 1000), now).unwrap());
    assert!(!db.acquire_stream(&lease("s1", "b", now + 1000), now).unwrap(), "live on a");
    assert!(db.acquire_stream(&lease("s1", "a", now + 1000), now).unwrap(), "a node takes over its own lease (a restart)");
    assert!(db.acquire_stream(&lease("s2", "b", now + 1000), now).unwrap());

    // Renewal extends only the node's own leases and updates what it says.
    let renewed = db
        .renew_streams(
            "a",
            &[
                ("a.example.com".into(), "live".into(), "s1".into(), r#"{"frames":7}"#.into()),
                ("a.example.com".into(), "live".into(), "s2".into(), "{}".into()),
            ],
            now + 5000,
        )
        .unwrap();
    assert_eq!(renewed, 1, "s2 is b's");
    let leases = db.stream_leases(now + 2000).unwrap();
    assert_eq!(leases.iter().map(|l| (l.stream.as_str(), l.node.as_str())).collect::<Vec<_>>(), [("s1", "a")], "s2 expired at +1 s");
    assert_eq!(leases[0].info, r#"{"frames":7}"#);

    // An expired lease is anyone's; a released one at once.
    assert!(db.acquire_stream(&lease("s2", "c", now + 9000), now + 2000).unwrap());
    assert!(!db.release_stream("a", "a.example.com", "live", "s2").unwrap(), "not a's to free");
    assert!(db.release_stream("c", "a.example.com", "live", "s2").unwrap());
    assert!(db.acquire_stream(&lease("s2", "b", now + 9000), now + 2000).unwrap());
    assert_eq!(db.release_node("a").unwrap(), 1);
    assert!(db.acquire_stream(&lease("s1", "b", now + 9000), now + 2000).unwrap());
    assert_eq!(db.stream_leases(now + 2000).unwrap().len(), 2);
}

fn configuration_changes_move_the_revision_and_snapshots_do_not(db: &dyn StateDb) {
    let mut last = db.revision().unwrap();
    let mut moved = |what: &str| {
        let now = db.revision().unwrap();
        assert!(now > last, "{what} moves the revision ({last} → {now})");
        last = now;
    };
    db.insert_template(&template("r.example.com", 10)).unwrap();
    moved("a new template");
    db.update_template(&template("r.example.com", 20)).unwrap();
    moved("a changed template");
    db.set_bucket_authorized("default", "shots", true).unwrap();
    moved("a bucket authorization");
    db.put_key_chain("r.example.com", &KeyChain { key: "k".repeat(32), auth_type: AuthType::DSha256, timeout: Duration::from_secs(60) })
        .unwrap();
    moved("a key chain");
    db.put_source(&Source { domain: "r.example.com".into(), app: "live".into(), stream: "s".into(), url: "rtmp://127.0.0.1/x".into() })
        .unwrap();
    moved("a pull source");
    db.delete_template("r.example.com", "live").unwrap();
    moved("a deleted template");
    let before = db.revision().unwrap();
    db.count_snapshot("default", "r.example.com", 0).unwrap();
    db.enqueue(&callback("rev")).unwrap();
    db.kv_set("s", "k", b"v").unwrap();
    db.acquire_stream(&lease("rev", "a", now_ms() + 1000), now_ms()).unwrap();
    assert_eq!(db.revision().unwrap(), before, "snapshots, callbacks, key-values and leases are not configuration");
}

fn key_values_key_chains_sources_and_usage_round_trip(db: &dyn StateDb) {
    db.kv_set("store", "b", b"2").unwrap();
    db.kv_set("store", "a", b"1").unwrap();
    db.kv_set("store", "a", b"one").unwrap();
    db.kv_set("other", "c", b"3").unwrap();
    assert_eq!(db.kv_get("store", "a").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(db.kv_keys("store").unwrap(), ["a", "b"]);
    db.kv_delete("store", "a").unwrap();
    db.kv_delete("store", "absent").unwrap();
    assert_eq!(db.kv_get("store", "a").unwrap(), None);

    let chain = KeyChain { key: "k".repeat(32), auth_type: AuthType::BMd5, timeout: Duration::from_secs(300) };
    db.put_key_chain("k.example.com", &chain).unwrap();
    db.put_key_chain("k.example.com", &KeyChain { auth_type: AuthType::AMd5, ..chain.clone() }).unwrap();
    let chains = db.key_chains().unwrap();
    assert_eq!(chains.len(), 1);
    assert_eq!((chains[0].1.auth_type, chains[0].1.timeout), (AuthType::AMd5, Duration::from_secs(300)));
    assert!(db.delete_key_chain("k.example.com").unwrap());
    assert!(!db.delete_key_chain("k.example.com").unwrap());

    let source = Source { domain: "s.example.com".into(), app: "live".into(), stream: "cam".into(), url: "rtmp://127.0.0.1/a".into() };
    assert!(!db.put_source(&source).unwrap());
    assert!(db.put_source(&Source { url: "rtmp://127.0.0.1/b".into(), ..source.clone() }).unwrap(), "replaced");
    assert_eq!(db.sources().unwrap()[0].url, "rtmp://127.0.0.1/b");
    assert!(db.delete_source("s.example.com", "live", "cam").unwrap());

    for (domain, hour) in [("u.example.com", 3600), ("u.example.com", 3600), ("v.example.com", 3600), ("u.example.com", 7200)] {
        db.count_snapshot("default", domain, hour).unwrap();
    }
    assert_eq!(db.snapshot_counts("default", None, 0, 7200).unwrap(), [(3600, 3), (7200, 1)]);
    assert_eq!(db.snapshot_counts("default", Some("u.example.com"), 3600, 3600).unwrap(), [(3600, 2)]);
}
