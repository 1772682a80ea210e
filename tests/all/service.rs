//! Running `livesnap up` and real RTMP publishers for tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use livesnap::ingest::rtmp::amf0::{self, Value, object, string};
use livesnap::ingest::rtmp::chunk::{Message, encode_message};

use crate::support::*;

/// How long any awaited event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// A running `livesnap up` on ephemeral ports; killed on drop.
pub struct Service {
    child: Child,
    pub rtmp: String,
    pub http: String,
    lines: Receiver<String>,
    pub log: Arc<Mutex<Vec<String>>>,
    dir: std::path::PathBuf,
}

impl Service {
    /// Starts the service in `dir` (its working folder) with extra arguments.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(dir, extra, &[])
    }

    /// The same with extra environment variables for the service.
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = livesnap()
            .current_dir(dir)
            .envs(env.iter().copied())
            .args(["up", "--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting livesnap up");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut s = Self { child, rtmp: String::new(), http: String::new(), lines, log, dir: dir.to_owned() };
        let up = s.wait_for_log("livesnap is up");
        let field = |name: &str| up.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))).unwrap().to_string();
        s.rtmp = field("rtmp");
        s.http = format!("http://{}", field("http"));
        s
    }

    /// Waits for a log line containing `needle` (lines already read are not
    /// searched again) and returns it.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?}; log:\n{}", self.log.lock().unwrap().join("\n")),
            }
        }
    }

    /// Everything logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// An RTMP URL for app/stream on this service's port, with `host` as the domain.
    pub fn rtmp_url(&self, host: &str, path: &str) -> String {
        let port = self.rtmp.rsplit(':').next().unwrap();
        format!("rtmp://{host}:{port}/{path}")
    }

    /// GET on the HTTP server: (status, body).
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut r = agent.get(&format!("{}{path}", self.http)).call().unwrap();
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_vec().unwrap())
    }

    /// A client of this service's API, with the credentials it generated.
    pub fn api(&self) -> Api {
        let text = std::fs::read_to_string(self.dir.join(".livesnap/api-credentials.toml")).unwrap();
        let keys: toml::Table = toml::from_str(&text).unwrap();
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Api::new(&self.http, agent, &serde_json::to_value(keys).unwrap())
    }

    /// A client of this service's API with the given keys (`project_id`,
    /// `access_key`, `secret_key`, `token`).
    pub fn api_with(&self, keys: &serde_json::Value) -> Api {
        Api::new(&self.http, ureq::Agent::config_builder().http_status_as_error(false).build().into(), keys)
    }

    /// GET `/v1/{project_id}{path}` with the generated X-Auth-Token.
    pub fn api_get(&self, path: &str) -> (u16, Vec<u8>) {
        let (status, body) = self.api().call("GET", path, None);
        (status, body.to_string().into_bytes())
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }

    /// The service's resident memory in bytes (from /proc).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
        kb * 1024
    }

    /// Sends SIGHUP (reload).
    pub fn hangup(&self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The management API with `X-Auth-Token` (and the AK/SK, for SDK calls).
pub struct Api {
    pub http: String,
    pub project: String,
    pub access_key: String,
    pub secret_key: String,
    pub token: String,
    agent: ureq::Agent,
}

impl Api {
    /// A client of the same service for the project whose keys `keys` holds
    /// (as `livesnap project create --json` prints them).
    pub fn for_project(&self, keys: &serde_json::Value) -> Api {
        Api::new(&self.http, self.agent.clone(), keys)
    }

    fn new(http: &str, agent: ureq::Agent, keys: &serde_json::Value) -> Api {
        let s = |k: &str| keys[k].as_str().unwrap().to_string();
        Api {
            http: http.to_string(),
            project: s("project_id"),
            access_key: s("access_key"),
            secret_key: s("secret_key"),
            token: s("token"),
            agent,
        }
    }

    /// `method /v1/{project_id}{path}`: (status, JSON body, or the text as a JSON string).
    pub fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, serde_json::Value) {
        let url = format!("{}/v1/{}{path}", self.http, self.project);
        let token = self.token.as_str();
        let r = match method {
            "GET" => self.agent.get(&url).header("X-Auth-Token", token).call(),
            "DELETE" => self.agent.delete(&url).header("X-Auth-Token", token).call(),
            "PUT" => {
                self.agent.put(&url).header("X-Auth-Token", token).header("content-type", "application/json").send(body.unwrap_or_default())
            }
            "POST" => self
                .agent
                .post(&url)
                .header("X-Auth-Token", token)
                .header("content-type", "application/json")
                .send(body.unwrap_or_default()),
            other => panic!("method {other}"),
        };
        let mut r = r.unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    /// GET `/v1/{project_id}{path}` (optionally `If-None-Match`): status,
    /// headers (lower-case names) and the body's bytes.
    pub fn get_raw(&self, path: &str, if_none_match: Option<&str>) -> (u16, std::collections::HashMap<String, String>, Vec<u8>) {
        let url = format!("{}/v1/{}{path}", self.http, self.project);
        let mut request = self.agent.get(&url).header("X-Auth-Token", self.token.as_str());
        if let Some(tag) = if_none_match {
            request = request.header("If-None-Match", tag);
        }
        let mut r = request.call().unwrap();
        let headers = r.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
        (r.status().as_u16(), headers, r.body_mut().read_to_vec().unwrap())
    }
}

/// ffmpeg publishing `file` (stream copy) to `url`; in real time with `realtime`.
pub fn ffmpeg_publish(file: &Path, url: &str, realtime: bool, extra: &[&str]) -> Child {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error"]);
    if realtime {
        c.arg("-re");
    }
    c.arg("-i").arg(file).args(["-c", "copy"]).args(extra).args(["-f", "flv", url]);
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("starting ffmpeg")
}

/// Kills a child on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A blocking TCP connection to `to` from the loopback address `source`
/// (127.0.0.2 plays another client), with the tests' read timeout.
pub fn connect_from(source: &str, to: &str) -> TcpStream {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let rt = RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap());
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(to.parse().unwrap()).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// A minimal RTMP publisher for misbehaving on purpose.
pub struct RawPublisher {
    pub socket: TcpStream,
}

impl RawPublisher {
    /// Connects and completes the handshake.
    pub fn connect(addr: &str) -> Self {
        Self::handshake(TcpStream::connect(addr).unwrap())
    }

    /// Completes the handshake on a connected socket.
    pub fn handshake(mut socket: TcpStream) -> Self {
        socket.set_read_timeout(Some(WAIT)).unwrap();
        let mut c0c1 = vec![3u8];
        c0c1.extend(std::iter::repeat_n(7u8, 1536));
        socket.write_all(&c0c1).unwrap();
        let mut s = vec![0u8; 1 + 2 * 1536];
        socket.read_exact(&mut s).unwrap();
        socket.write_all(&s[1..1537]).unwrap(); // C2 echoes S1
        Self { socket }
    }

    /// Reads until the server closes the connection (true), or until
    /// `limit` bytes or the read timeout passed with it still open (false).
    pub fn closed_by_server(&mut self, limit: usize) -> bool {
        let mut seen = 0;
        let mut buf = [0u8; 4096];
        loop {
            match self.socket.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => {
                    seen += n;
                    if seen > limit {
                        return false;
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return false,
                Err(_) => return true,
            }
        }
    }

    /// Reads the server's replies until `needle` appears in them.
    pub fn wait_for_reply(&mut self, needle: &[u8]) {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(needle.len()).any(|w| w == needle) {
            let n = self.socket.read(&mut buf).expect("the server answers");
            assert!(n > 0, "the server closed the connection before answering {}", String::from_utf8_lossy(needle));
            seen.extend_from_slice(&buf[..n]);
        }
    }

    fn command(&mut self, stream_id: u32, values: &[Value]) {
        let m = Message { csid: 3, timestamp: 0, type_id: 20, stream_id, payload: amf0::encode(values) };
        self.socket.write_all(&encode_message(128, &m)).unwrap();
    }

    /// connect, createStream, publish (without waiting for replies).
    pub fn publish(&mut self, tc_url: &str, app: &str, name: &str) {
        self.command(0, &[string("connect"), Value::Number(1.0), object(&[("app", string(app)), ("tcUrl", string(tc_url))])]);
        self.command(0, &[string("createStream"), Value::Number(2.0), Value::Null]);
        self.command(1, &[string("publish"), Value::Number(3.0), Value::Null, string(name), string("live")]);
    }

    /// Sends one FLV video tag body as a video message.
    pub fn video(&mut self, timestamp: u32, body: &[u8]) -> std::io::Result<()> {
        let m = Message { csid: 6, timestamp, type_id: 9, stream_id: 1, payload: body.to_vec() };
        self.socket.write_all(&encode_message(128, &m))
    }
}

/// The video tags of an FLV file: (timestamp, body).
pub fn flv_video_tags(path: &Path) -> Vec<(u32, Vec<u8>)> {
    let data = std::fs::read(path).unwrap();
    let mut pos = 13;
    let mut out = Vec::new();
    while pos + 11 <= data.len() {
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        if data[pos] == 9 {
            out.push((ts, data[pos + 11..pos + 11 + size].to_vec()));
        }
        pos += 11 + size + 4;
    }
    out
}

/// Whether `s` looks like `YYYY-MM-DDThh:mm:ssZ`.
pub fn iso_utc_like(s: &str) -> bool {
    s.len() == 20
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

/// One call through Huawei's SDK (tests/sdk/live_api.py).
pub fn sdk(service: &Service, c: &Api, args: &[&str]) -> serde_json::Value {
    let python = std::env::var("LIVESNAP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sdk/live_api.py");
    let out = Command::new(&python)
        .arg(script)
        .args([&service.http, &c.access_key, &c.secret_key, &c.project])
        .args(args)
        .output()
        .expect("python for the Huawei SDK (scripts/setup --test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!("the SDK script failed (is huaweicloudsdklive installed? run scripts/setup --test):\n{stdout}\n{}", stderr(&out))
    })
}
