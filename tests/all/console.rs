//! The web console in a real headless Chromium (Selenium): the Snapshot
//! Capturing guide's steps done in a browser by a new project, against a
//! live ffmpeg stream (`tests/console/console_test.py` drives the browser).

use std::path::Path;
use std::process::Command;

use crate::service::*;
use crate::support::*;

#[test]
fn a_customer_runs_the_guide_in_the_console_in_a_real_chromium() {
    let dir = tempdir();
    let rc = dir.path().join("runtime-config.toml");
    std::fs::write(&rc, "[[bucket]]\nname = \"shots\"\nbackend = \"fs\"\npath = \"shots\"\n").unwrap();
    let rc = rc.to_str().unwrap();
    let service = Service::start(dir.path(), &["--runtime-config", rc]);
    let out = run(livesnap().current_dir(dir.path()).args(["project", "--runtime-config", rc, "create", "console-user", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let video = long_baseline_flv();
    let wasm = functions_dir().join("notify_callback.wasm");
    let python = std::env::var("LIVESNAP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/console/console_test.py");
    let mut browser = Command::new(python);
    browser.arg(script).args([
        service.http.as_str(),
        keys["project_id"].as_str().unwrap(),
        keys["token"].as_str().unwrap(),
        &format!("rtmp://{}", service.rtmp),
        video.to_str().unwrap(),
        wasm.to_str().unwrap(),
    ]);
    // `LIVESNAP_CONSOLE_SCREENSHOTS=docs/console` refreshes the README's screenshots.
    if let Ok(folder) = std::env::var("LIVESNAP_CONSOLE_SCREENSHOTS") {
        std::fs::create_dir_all(&folder).unwrap();
        browser.arg(Path::new(&folder).canonicalize().unwrap());
    }
    let out = run(&mut browser);
    assert!(
        out.status.success(),
        "the browser test failed (scripts/setup --test installs chromium, chromium-driver and selenium):\n{}\n{}\nservice log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out),
        service.log_text()
    );
    // What the browser did is in the state the API reads.
    let api = service.api().for_project(&keys);
    let (_, templates) = api.call("GET", "/stream/snapshot?domain=cam.example.com", None);
    assert_eq!(templates["snapshot_config_list"][0]["time_interval"], 5, "{templates}");
    assert!(dir.path().join("shots/snapshot/cam.example.com/live/cam").is_dir());
}

#[test]
fn the_console_needs_a_session_and_refuses_cross_site_posts() {
    let dir = tempdir();
    let service = Service::start(dir.path(), &[]);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let url = |path: &str| format!("{}{path}", service.http);
    let r = agent.get(&url("/console/domains")).call().unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/console/login"));
    let r = agent
        .post(&url("/console/domains"))
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .send("domain=x.example.com")
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "a cross-site form post");
    // A wrong token signs nobody in; the right one sets an HttpOnly, SameSite=Strict session cookie.
    let c = service.api();
    let form = |token: &str| format!("project_id={}&token={token}", c.project);
    let post = |path: &str| {
        agent.post(&url(path)).header("origin", service.http.as_str()).header("content-type", "application/x-www-form-urlencoded")
    };
    let r = agent.post(&url("/console/login")).header("content-type", "application/x-www-form-urlencoded").send(form(&c.token)).unwrap();
    assert_eq!(r.status().as_u16(), 403, "a sign-in without an Origin (or Referer)");
    let r = post("/console/login").send(form("wrong")).unwrap();
    assert!(r.headers().get("set-cookie").is_none() && r.status().as_u16() == 200);
    let r = post("/console/login").send(form(&c.token)).unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains(&c.token), "{cookie}");
    let session = cookie.split(';').next().unwrap();
    let mut r = agent.get(&url("/console/domains")).header("cookie", session).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.body_mut().read_to_string().unwrap().contains("localhost"), "the default project's domains");
    // A message in a link made elsewhere is not shown.
    let mut r = agent.get(&url("/console/domains?ok=Call+support+at+evil.example")).header("cookie", session).call().unwrap();
    assert!(!r.body_mut().read_to_string().unwrap().contains("evil.example"));
}
