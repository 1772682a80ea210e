//! The HTTP server and API under attack from loopback: bodies sent before
//! authenticating, swapped and replayed signed requests, weak configured
//! secrets, slowloris and connection floods, password guessing. The
//! attacker uses 127.0.0.2 where its address matters; the operator 127.0.0.1.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::Mac;
use serde_json::{Value, json};
use sha2::Digest;

use crate::service::*;
use crate::support::*;

const ATTACKER: &str = "127.0.0.2";

/// A runtime config with `http` as its `[http]` section (and `extra` after it).
fn runtime_config(dir: &Path, http: &str, extra: &str) -> PathBuf {
    let path = dir.join("runtime-config.toml");
    std::fs::write(&path, format!("[http]\n{http}\n{extra}")).unwrap();
    path
}

fn start(dir: &Path, http: &str) -> Service {
    let rc = runtime_config(dir, http, "");
    Service::start(dir, &["--runtime-config", rc.to_str().unwrap()])
}

fn http_addr(service: &Service) -> SocketAddr {
    service.http.trim_start_matches("http://").parse().unwrap()
}

/// A blocking connection to the service's HTTP port from `source`.
fn connect_from(source: &str, service: &Service) -> TcpStream {
    crate::service::connect_from(source, &http_addr(service).to_string())
}

fn closed_error(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe)
}

/// Reads one response: (status, headers, body), or None when the server
/// closed the connection without answering.
pub fn read_response(s: &mut TcpStream) -> Option<(u16, String, Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return None,
            Ok(0) => panic!("the response ended in its headers: {}", String::from_utf8_lossy(&buf)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() && closed_error(&e) => return None,
            Err(e) => panic!("no response ({e}); got {:?}", String::from_utf8_lossy(&buf)),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        match s.read(&mut chunk) {
            Ok(0) => panic!("the response body ended early"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading the response body: {e}"),
        }
    }
    let body = &buf[head_end..head_end + length];
    Some((status, head, serde_json::from_slice(body).unwrap_or(Value::Null)))
}

/// Waits for the server to close `s` (reading and dropping whatever it
/// still sends, such as a 408); fails if it does not within [`WAIT`].
fn assert_closed_by_server(s: &mut TcpStream, why: &str) {
    let mut sink = [0u8; 4096];
    loop {
        match s.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if closed_error(&e) => return,
            Err(e) => panic!("{why}: the server did not close the connection ({e})"),
        }
    }
}

/// `X-Sdk-Date` for `t`.
pub fn sdk_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// An SDK-HMAC-SHA256 Authorization over `headers` (lowercase names, sorted)
/// with `payload` as the payload hash, as huaweicloudsdkcore builds it.
pub fn authorization(ak: &str, sk: &str, method: &str, path: &str, query: &str, headers: &[(&str, &str)], payload: &str) -> String {
    let date = headers.iter().find(|(k, _)| *k == "x-sdk-date").map_or("", |(_, v)| v);
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let names: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let canonical = format!("{method}\n{path}/\n{query}\n{canonical_headers}\n{}\n{payload}", names.join(";"));
    let to_sign = format!("SDK-HMAC-SHA256\n{date}\n{}", hex::encode(sha2::Sha256::digest(canonical.as_bytes())));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(sk.as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    format!("SDK-HMAC-SHA256 Access={ak}, SignedHeaders={}, Signature={}", names.join(";"), hex::encode(mac.finalize().into_bytes()))
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut r = r.unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[test]
fn bodies_are_read_only_after_authentication_with_the_routes_limit_and_in_time() {
    let dir = tempdir();
    let service = start(dir.path(), "body_read_timeout_secs = 2");
    let c = service.api();
    let host = http_addr(&service).to_string();
    let path = format!("/v1/{}/functions/big", c.project);
    let date = sdk_date(SystemTime::now());
    let forged = authorization("NOT-THE-AK", "x", "PUT", &path, "", &[("host", &host), ("x-sdk-date", &date)], "UNSIGNED");
    let stale_date = sdk_date(SystemTime::now() - std::time::Duration::from_secs(20 * 60));
    let stale = authorization(&c.access_key, &c.secret_key, "PUT", &path, "", &[("host", &host), ("x-sdk-date", &stale_date)], "x");
    let credentials = [
        String::new(),
        "X-Auth-Token: not-the-token-at-all\r\n".to_string(),
        format!("X-Sdk-Date: {date}\r\nAuthorization: {forged}\r\n"),
        format!("X-Sdk-Date: {stale_date}\r\nAuthorization: {stale}\r\n"),
    ];
    // Unauthenticated 30 MB uploads, all held at once: each is refused from
    // its headers, before the server waits for (or buffers) the body.
    let mut held: Vec<TcpStream> = credentials
        .iter()
        .map(|creds| {
            let mut s = connect_from(ATTACKER, &service);
            let head = format!("PUT {path} HTTP/1.1\r\nHost: {host}\r\n{creds}Content-Length: {}\r\n\r\n", 30 << 20);
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(b"\0asm-a-few-bytes").unwrap();
            s
        })
        .collect();
    for (s, creds) in held.iter_mut().zip(&credentials) {
        let (status, _, body) = read_response(s).unwrap_or_else(|| panic!("closed without an answer ({creds})"));
        assert_eq!((status, body["error_code"].as_str()), (401, Some("APIGW.0301")), "{creds}: {body}");
        assert_closed_by_server(s, "after refusing an unread body");
    }

    // Authenticated: declared over the module limit is refused at once ...
    let mut s = connect_from("127.0.0.1", &service);
    let head = format!("PUT {path} HTTP/1.1\r\nHost: {host}\r\nX-Auth-Token: {}\r\nContent-Length: {}\r\n\r\n", c.token, 33 << 20);
    s.write_all(head.as_bytes()).unwrap();
    let (status, _, body) = read_response(&mut s).unwrap();
    assert_eq!((status, body["error_code"].as_str()), (413, Some("LIVE.100011001")), "{body}");

    // ... a body that stops coming is answered 408 and the connection closed,
    // while the API keeps answering.
    let mut stalled = connect_from("127.0.0.1", &service);
    let head = format!("PUT {path} HTTP/1.1\r\nHost: {host}\r\nX-Auth-Token: {}\r\nContent-Length: {}\r\n\r\n", c.token, 1 << 20);
    stalled.write_all(head.as_bytes()).unwrap();
    stalled.write_all(b"\0asm-a-few-bytes").unwrap();
    assert_eq!(c.call("GET", "/streams", None).0, 200, "the API answers meanwhile");
    let (status, _, body) = read_response(&mut stalled).unwrap();
    assert_eq!((status, body["error_code"].as_str()), (408, Some("LIVE.100011001")), "{body}");
    assert_closed_by_server(&mut stalled, "after a body timeout");

    // A module over axum's default 2 MB is read and judged on its content.
    let mut big = b"\0asm".to_vec();
    big.resize(3 << 20, 0x5a);
    let (status, body) = c.call("PUT", "/functions/big", Some(&big));
    assert_eq!(status, 400, "{body}");
    assert!(body["error_msg"].as_str().unwrap().contains("not a WebAssembly component"), "{body}");
    // Other routes keep the 64 KiB limit.
    let (status, _) = c.call("POST", "/stream/snapshot", Some(&vec![b' '; 100 << 10]));
    assert_eq!(status, 413);
}

#[test]
fn signed_bodies_cannot_be_swapped_replayed_or_left_unsigned() {
    let dir = tempdir();
    let service = start(dir.path(), "");
    let c = service.api();
    let host = http_addr(&service).to_string();
    let path = format!("/v1/{}/stream/snapshot", c.project);
    let url = format!("{}{path}", service.http);
    let template = |app: &str| {
        json!({"domain": "localhost", "app_name": app, "time_interval": 5,
               "obs_location": {"bucket": "snapshots", "location": "local"}})
        .to_string()
    };
    let (original, swapped) = (template("original"), template("swapped"));
    let date = sdk_date(SystemTime::now());
    let headers = [("content-type", "application/json"), ("host", host.as_str()), ("x-sdk-date", date.as_str())];
    let auth = authorization(&c.access_key, &c.secret_key, "POST", &path, "", &headers, &sha256_hex(original.as_bytes()));
    let post = |auth: &str, content_sha: Option<&str>, body: &str| {
        let mut r = agent().post(&url).header("content-type", "application/json").header("X-Sdk-Date", &date).header("Authorization", auth);
        if let Some(h) = content_sha {
            r = r.header("X-Sdk-Content-Sha256", h);
        }
        answer(r.send(body.as_bytes()))
    };
    let refused = |(status, body): (u16, Value), why: &str| {
        assert_eq!((status, body["error_code"].as_str()), (401, Some("APIGW.0301")), "{why}: {body}");
        body["error_msg"].as_str().unwrap().to_string()
    };

    // The captured request's body swapped, with its hash in an unsigned header, or without.
    let swap = refused(post(&auth, Some(&sha256_hex(original.as_bytes())), &swapped), "swapped body, original hash");
    refused(post(&auth, None, &swapped), "swapped body");
    // UNSIGNED-PAYLOAD is off unless the operator allows it.
    let unsigned = authorization(&c.access_key, &c.secret_key, "POST", &path, "", &headers, "UNSIGNED-PAYLOAD");
    let msg = refused(post(&unsigned, Some("UNSIGNED-PAYLOAD"), &swapped), "unsigned payload");
    assert!(msg.contains("UNSIGNED-PAYLOAD"), "{msg}");
    // host must be signed.
    let no_host = [headers[0], headers[2]];
    let auth_no_host = authorization(&c.access_key, &c.secret_key, "POST", &path, "", &no_host, &sha256_hex(swapped.as_bytes()));
    let msg = refused(post(&auth_no_host, None, &swapped), "host not signed");
    assert!(msg.contains("host"), "{msg}");
    // An unknown access key reads exactly like a wrong signature.
    let unknown = authorization("NOSUCHKEY", &c.secret_key, "POST", &path, "", &headers, &sha256_hex(original.as_bytes()));
    assert_eq!(refused(post(&unknown, None, &original), "unknown AK"), swap);
    let wrong_sk = authorization(&c.access_key, "not-the-secret-key", "POST", &path, "", &headers, &sha256_hex(original.as_bytes()));
    assert_eq!(refused(post(&wrong_sk, None, &original), "wrong SK"), swap);

    // The genuine request works once (its hash may be sent along); a replay does not.
    let (status, body) = post(&auth, Some(&sha256_hex(original.as_bytes())), &original);
    assert_eq!(status, 201, "{body}");
    let msg = refused(post(&auth, Some(&sha256_hex(original.as_bytes())), &original), "replayed");
    assert!(msg.contains("already received"), "{msg}");
    let (_, list) = c.call("GET", "/stream/snapshot?domain=localhost", None);
    let apps: Vec<&str> = list["snapshot_config_list"].as_array().unwrap().iter().map(|t| t["app_name"].as_str().unwrap()).collect();
    assert!(apps.contains(&"original") && !apps.contains(&"swapped"), "{list}");
    // Reads may be repeated.
    let get_headers = [("host", host.as_str()), ("x-sdk-date", date.as_str())];
    let get_auth = authorization(&c.access_key, &c.secret_key, "GET", &path, "domain=localhost", &get_headers, &sha256_hex(b""));
    for _ in 0..2 {
        let r = agent().get(format!("{url}?domain=localhost")).header("X-Sdk-Date", &date).header("Authorization", &get_auth).call();
        assert_eq!(answer(r).0, 200);
    }
}

#[test]
fn empty_or_short_configured_secrets_are_a_startup_error() {
    for (api, needle) in [
        ("access_key = \"AK123\"\nsecret_key = \"\"", "[api] secret_key is empty"),
        ("access_key = \"AK123\"\nsecret_key = \"short-secret\"", "[api] secret_key is 12 characters long; use at least 16"),
        ("token = \"\"", "[api] token is empty"),
        ("token = \"tok\"", "[api] token is 3 characters long"),
    ] {
        let dir = tempdir();
        let rc = runtime_config(dir.path(), "", &format!("[api]\n{api}\n"));
        let out = run(livesnap().current_dir(dir.path()).arg("up").arg("--runtime-config").arg(&rc).args([
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ]));
        assert!(!out.status.success(), "{api}");
        let err = stderr(&out);
        assert!(err.contains(needle), "{api}: {err}");
        assert!(!err.contains("short-secret"), "the secret itself is never printed: {err}");
    }
}

#[test]
fn slowloris_and_idle_connections_are_closed_after_the_header_timeout() {
    let dir = tempdir();
    let service = start(dir.path(), "header_read_timeout_secs = 1");
    let c = service.api();
    // Headers never finished, nothing sent at all, and a keep-alive
    // connection that goes quiet after one request.
    let mut slow: Vec<TcpStream> = (0..10)
        .map(|i| {
            let mut s = connect_from(ATTACKER, &service);
            if i % 2 == 0 {
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: a").unwrap();
            }
            s
        })
        .collect();
    let mut quiet = connect_from(ATTACKER, &service);
    quiet.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut quiet).map(|r| r.0), Some(200));
    assert_eq!(c.call("GET", "/streams", None).0, 200, "the API answers meanwhile");
    for (i, s) in slow.iter_mut().enumerate() {
        assert_closed_by_server(s, &format!("slowloris connection {i}"));
    }
    assert_closed_by_server(&mut quiet, "idle keep-alive connection");
    // Headers larger than the connection buffer are refused, not buffered.
    let mut big = connect_from(ATTACKER, &service);
    let mut head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    head.resize(100 << 10, b'a');
    let _ = big.write_all(&head); // the server may close before taking it all
    assert_eq!(read_response(&mut big).map(|r| r.0), Some(431));
    assert_closed_by_server(&mut big, "after oversized headers");
}

#[test]
fn connections_over_the_per_address_cap_are_closed_and_others_still_served() {
    const CAP: usize = 8;
    let dir = tempdir();
    // Held connections must outlive the test's steps.
    let service = start(dir.path(), &format!("max_connections_per_ip = {CAP}\nheader_read_timeout_secs = 300\nidle_timeout_secs = 300"));
    let c = service.api();
    let mut held: Vec<TcpStream> = (0..CAP + 5).map(|_| connect_from(ATTACKER, &service)).collect();
    assert_eq!(c.call("GET", "/streams", None).0, 200, "another address is served");
    // Each held connection now asks for something: those within the cap
    // are answered, the rest were closed on accept.
    let mut answered = 0;
    let mut closed = 0;
    for s in &mut held {
        let sent = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        match sent.map(|_| read_response(s)) {
            Ok(Some((200, _, _))) => answered += 1,
            Ok(Some((status, head, _))) => panic!("unexpected {status}: {head}"),
            Ok(None) => closed += 1,
            Err(e) if closed_error(&e) => closed += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((answered, closed), (CAP, 5));
}

#[test]
fn failed_authentications_from_one_address_get_429_while_others_are_served() {
    let dir = tempdir();
    let service = start(dir.path(), "max_auth_failures = 20\nauth_failure_window_secs = 600");
    let c = service.api();
    let host = http_addr(&service).to_string();
    let attempt = |token: &str| {
        let mut s = connect_from(ATTACKER, &service);
        let head = format!("GET /v1/{}/streams HTTP/1.1\r\nHost: {host}\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n", c.project);
        s.write_all(head.as_bytes()).unwrap();
        read_response(&mut s).expect("an answer")
    };
    for i in 0..20 {
        let (status, _, body) = attempt(&format!("guess-number-{i:04}-of-many"));
        assert_eq!(status, 401, "guess {i}: {body}");
    }
    let (status, head, body) = attempt("guess-number-0020-of-many");
    assert_eq!((status, body["error_code"].as_str()), (429, Some("APIGW.0308")), "{body}");
    assert!(head.contains("retry-after:"), "{head}");
    assert_eq!(attempt(&c.token).0, 429, "even the right token, from that address, until the window passes");
    assert_eq!(c.call("GET", "/streams", None).0, 200, "another address is not affected");
    let mut s = connect_from(ATTACKER, &service);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).map(|r| r.0), Some(200), "only the API is throttled");
}

#[test]
fn the_open_file_limit_is_raised_and_the_http_cap_fits_half_of_it() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let dir = tempdir();
    let mut cmd = livesnap();
    cmd.current_dir(dir.path()).args(["up", "--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]);
    // SAFETY: setrlimit is async-signal-safe; it only reads the struct.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 256, rlim_max: 512 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = KillOnDrop(cmd.stdin(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap());
    let stderr = std::io::BufReader::new(child.0.stderr.take().unwrap());
    let line = stderr.lines().map_while(Result::ok).find(|l| l.contains("HTTP connection limits")).expect("the limits are logged");
    // Raised to the hard limit 512: (512 - 64) / 2 per listener.
    assert!(line.contains("fd_budget=224") && line.contains("max_connections=224"), "{line}");
}
