//! Shared test helpers: generated media, running the binary, a callback
//! listener, image comparison.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// The binary under test.
pub fn livesnap() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_livesnap"));
    // The test receivers listen on loopback, which the egress policy refuses
    // unless the operator allows it; tests of the refusals clear this.
    c.env("RUST_LOG", "info").env_remove("LIVESNAP_AUTH_KEY").env("LIVESNAP_EGRESS_ALLOW", "127.0.0.1");
    c
}

/// Folder of the built WebAssembly components (built by livesnap-test-programs).
pub fn functions_dir() -> PathBuf {
    livesnap_test_programs::dir().to_path_buf()
}

/// Runs a command; panics with its output if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("running the command");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "the process panicked:\n{stderr}");
    out
}

/// Runs `livesnap capture --json` and returns (snapshot lines, summary, output).
pub fn capture(dir: &Path, input: &Path, extra: &[&str]) -> (Vec<Value>, Value, Output) {
    let mut cmd = livesnap();
    cmd.current_dir(dir).arg("capture").arg(input).args(["--json", "--start-time", "1764070000"]).args(extra);
    let out = run(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\nstderr: {}", stderr(&out))))
        .collect();
    let summary = lines.pop().and_then(|s| s.get("summary").cloned()).unwrap_or_else(|| {
        panic!("no summary line; stdout: {stdout}\nstderr: {}", stderr(&out));
    });
    (lines, summary, out)
}

/// A command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A temporary folder kept for the test's duration.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("livesnap-test").tempdir().unwrap()
}

static MEDIA_DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
static MEDIA: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());

/// A media file made once per test run with ffmpeg: `args` go between
/// `ffmpeg -y` and the output path.
pub fn media(name: &str, args: &[&str]) -> PathBuf {
    let mut made = MEDIA.lock().unwrap();
    if let Some((_, p)) = made.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let dir = MEDIA_DIR.get_or_init(|| tempfile::Builder::new().prefix("livesnap-media").tempdir().unwrap());
    let path = dir.path().join(name);
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&path)
        .output()
        .expect("ffmpeg must be installed (scripts/setup installs it)");
    assert!(out.status.success(), "ffmpeg failed: {}", stderr(&out));
    made.push((name.into(), path.clone()));
    path
}

/// 20 s of 1280x720 30 fps x264 High profile with B-frames, an IDR every
/// second, as FLV.
pub fn high_profile_flv() -> PathBuf {
    high_profile_clip("high720.flv", 20)
}

/// `seconds` of 1280x720 30 fps x264 High profile with B-frames, an IDR
/// every second, as FLV (made once per name).
pub fn high_profile_clip(name: &str, seconds: u32) -> PathBuf {
    high_profile_clip_with(name, seconds, None)
}

/// As [`high_profile_clip`], with `-x264-params` too.
pub fn high_profile_clip_with(name: &str, seconds: u32, x264_params: Option<&str>) -> PathBuf {
    let seconds = seconds.to_string();
    let mut args = vec!["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-t", &seconds, "-c:v", "libx264"];
    args.extend(["-profile:v", "high", "-bf", "2", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0"]);
    if let Some(params) = x264_params {
        args.extend(["-x264-params", params]);
    }
    args.extend(["-pix_fmt", "yuv420p", "-f", "flv"]);
    media(name, &args)
}

/// 20 s of 320x240 30 fps Baseline (no B-frames), IDR every second, FLV.
pub fn small_baseline_flv() -> PathBuf {
    media(
        "base240.flv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "flv",
        ],
    )
}

/// 60 s of 320x240 30 fps Baseline, IDR every second, FLV: for streams that
/// must outlast a test's steps.
pub fn long_baseline_flv() -> PathBuf {
    media(
        "base240-60s.flv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "60",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-preset",
            "veryfast",
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "flv",
        ],
    )
}

/// Frame `n` (display order) of `video` decoded by ffmpeg to RGB24.
pub fn reference_frame(video: &Path, n: u64) -> (Vec<u8>, u32, u32) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(video)
        .args(["-vf", &format!("select=eq(n\\,{n})"), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(video)
        .output()
        .unwrap();
    let dims = String::from_utf8_lossy(&probe.stdout);
    let mut it = dims.trim().split(',').map(|x| x.parse::<u32>().unwrap());
    (out.stdout, it.next().unwrap(), it.next().unwrap())
}

/// Decodes a JPEG to RGB24.
pub fn decode_jpeg(path: &Path) -> (Vec<u8>, u32, u32) {
    let mut d = jpeg_decoder::Decoder::new(std::fs::File::open(path).unwrap());
    let pixels = d.decode().unwrap_or_else(|e| panic!("{} is not a JPEG: {e}", path.display()));
    let info = d.info().unwrap();
    assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
    (pixels, u32::from(info.width), u32::from(info.height))
}

/// Peak signal-to-noise ratio of two same-size 8-bit images.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum::<f64>() / a.len() as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

/// A received HTTP request.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The status the listener answered with.
    pub status: u16,
}

/// An HTTP listener on 127.0.0.1 that records requests and answers each with
/// the next status of `statuses` (200 once they run out).
pub struct Listener {
    pub url: String,
    pub requests: Receiver<Received>,
    _server: std::sync::Arc<tiny_http::Server>,
}

impl Listener {
    pub fn start(statuses: Vec<u16>) -> Self {
        Self::start_on(0, statuses)
    }

    /// The same on a given port.
    pub fn start_on(port: u16, statuses: Vec<u16>) -> Self {
        let server = std::sync::Arc::new(tiny_http::Server::http(("127.0.0.1", port)).unwrap());
        let url = format!("http://{}/callback", server.server_addr().to_ip().unwrap());
        let (tx, rx) = channel();
        let s = server.clone();
        std::thread::spawn(move || {
            let mut statuses = statuses.into_iter();
            for mut req in s.incoming_requests() {
                let mut body = Vec::new();
                std::io::Read::read_to_end(req.as_reader(), &mut body).unwrap();
                let headers =
                    req.headers().iter().map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string())).collect();
                let status = statuses.next().unwrap_or(200);
                let _ = tx.send(Received { path: req.url().to_string(), headers, body, status });
                let _ = req.respond(tiny_http::Response::empty(status));
            }
        });
        Self { url, requests: rx, _server: server }
    }

    /// Everything received so far.
    pub fn drain(&self) -> Vec<Received> {
        self.requests.try_iter().collect()
    }
}
