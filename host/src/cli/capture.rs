//! `livesnap capture`: one run over a file, stdin or a pulled live URL
//! (RTSP, RTMP, HTTP-FLV) through the same session, runtime and pipeline as
//! the service.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use livesnap::config::runtime::{Backend, BucketConfig};
use livesnap::config::{Config, ConfigError, SnapshotConfig, Stored, Template};
use livesnap::delivery::{Delivery, DeliveryConfig, DeliveryStats};
use livesnap::ingest::annexb::AnnexBReader;
use livesnap::ingest::flv::FlvReader;
use livesnap::ingest::{Demuxer, IngestError, VideoEvent};
use livesnap::pipeline::Pipeline;
use livesnap::pull;
use livesnap::runtime::Runtime;
use livesnap::runtime::bindings::types::StreamId;
use livesnap::snapshot::{Snapshot, StreamCapture};
use livesnap::storage::Buckets;

/// Arguments of `livesnap capture`.
#[derive(Args)]
pub struct CaptureArgs {
    /// Input: an .flv file, a raw Annex-B .h264 file, `-` for stdin, or a live URL to pull
    /// (rtsp://[user:pass@]host/path — append #udp for RTP over UDP —, rtmp://host/app/stream,
    /// http(s)://host/stream.flv).
    input: PathBuf,
    /// Application manifest [default: ./spin.toml if present, else the embedded default].
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Runtime config (buckets, region) [default: embedded].
    #[arg(long)]
    runtime_config: Option<PathBuf>,
    /// Ingest domain: selects the template.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// Application name: selects the template.
    #[arg(long, default_value = "live")]
    app: String,
    /// Stream name [default: the input file's stem, `stdin` for -, a URL's last path segment].
    #[arg(long)]
    stream: Option<String>,
    /// Override time_interval (seconds, 5-3600).
    #[arg(long)]
    interval: Option<i64>,
    /// Override object_write_mode.
    #[arg(long, value_enum)]
    mode: Option<WriteModeArg>,
    /// Override snapshot_mode.
    #[arg(long, value_parser = ["keyframe", "nokeyframe", "random"])]
    snapshot_mode: Option<String>,
    /// Write into a folder: the template's bucket becomes an fs bucket rooted here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Send callbacks here (turns callbacks on).
    #[arg(long)]
    callback_url: Option<String>,
    /// Sign callbacks with this key (32-128 characters).
    #[arg(long, env = "LIVESNAP_AUTH_KEY", hide_env_values = true)]
    auth_key: Option<String>,
    /// JPEG quality 1-100.
    #[arg(long)]
    quality: Option<i64>,
    /// Input format [default: by extension, then by content].
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Frame rate of Annex-B input (it carries no timestamps).
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Unix time (seconds) of the stream's first picture [default: now]; object names derive from it.
    #[arg(long)]
    start_time: Option<u64>,
    /// Print one JSON line per snapshot and a JSON summary on stdout.
    #[arg(long)]
    json: bool,
    /// Stop after this much stream time (seconds) and finish as at the input's end.
    #[arg(long)]
    duration: Option<f64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum WriteModeArg {
    /// Keep every snapshot (object_write_mode 0).
    Full,
    /// Keep only the latest (object_write_mode 1).
    Instant,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum FormatArg {
    /// FLV (what RTMP carries).
    Flv,
    /// Raw H.264 Annex-B.
    H264,
}

/// Runs the verb.
pub fn run(args: CaptureArgs) -> anyhow::Result<ExitCode> {
    if !(args.fps > 0.0 && args.fps <= 1000.0) {
        bail!("--fps must be in (0, 1000]");
    }
    if args.duration.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
        bail!("--duration must be a positive number of seconds");
    }
    let url = args.input.to_str().filter(|s| pull::is_pull_url(s)).map(str::to_string);
    let config = load_config(&args)?;
    let template = config
        .template(&args.domain, &args.app)
        .with_context(|| {
            let known: Vec<String> = config.templates.iter().map(|t| format!("{}/{}", t.domain, t.app_name)).collect();
            format!("no snapshot template for domain '{}' app '{}' (templates: {})", args.domain, args.app, known.join(", "))
        })?
        .clone();
    let stream = match &args.stream {
        Some(s) => s.clone(),
        None if args.input.as_os_str() == "-" => "stdin".into(),
        None if url.is_some() => url_stream_name(url.as_deref().unwrap_or_default()),
        None => args.input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "stream".into()),
    };
    let (mut demuxer, size): (Box<dyn Demuxer>, Option<u64>) = match &url {
        Some(url) => (open_url(&config, url)?, None),
        None => open_input(&args)?,
    };
    let input_name = url.as_deref().map_or_else(|| args.input.display().to_string(), pull::redact);
    let pipeline = one_off_pipeline(&config, &template, args.callback_url.as_deref())?;
    let id = StreamId { domain: template.domain.clone(), app: template.app_name.clone(), stream: stream.clone() };
    tracing::info!(
        stream = %format!("{}/{}/{}", id.domain, id.app, id.stream),
        interval_s = template.interval.as_secs(),
        snapshot_mode = %template.snapshot_mode,
        bucket = %template.bucket,
        callbacks = template.callback_url.is_some(),
        "capturing"
    );
    let start_ms = args.start_time.map_or_else(livesnap::time::unix_ms, |s| s * 1000);
    let mut capture = StreamCapture::new(id, template, start_ms);
    let mut report = Report { stream, json: args.json, progress: progress_bar(size, args.json), totals: Totals::default() };
    let mut limit = args.duration.map(|d| StreamTimeLimit { ms: (d * 1000.0).round() as u64, first_dts: None });
    let fatal = loop {
        let event = match demuxer.next_event() {
            Ok(Some(event)) => event,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        if limit.as_mut().is_some_and(|l| l.reached(&event)) {
            tracing::info!(stream = %report.stream, "--duration reached; stopping");
            break None;
        }
        report.skipped(demuxer.take_warnings());
        report.progress.set_position(demuxer.position());
        if let Some(job) = capture.push(event) {
            report.snapshot(&mut capture, job.run(&pipeline, &mut |_| {}));
        }
    };
    if let Some(job) = capture.finish() {
        report.snapshot(&mut capture, job.run(&pipeline, &mut |_| {}));
    }
    report.skipped(demuxer.take_warnings());
    report.progress.finish_and_clear();
    report.summary(capture.pictures(), pipeline.finish(), fatal.as_ref());
    match fatal {
        Some(e) => Err(anyhow::Error::new(e).context(format!("reading {input_name}"))),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Opens a live URL: the runtime config's egress policy, plus the URL's
/// host, which the operator typed (cloud metadata addresses stay refused).
fn open_url(config: &Config, url: &str) -> anyhow::Result<Box<dyn Demuxer>> {
    let mut egress = config.runtime.egress.clone();
    egress.allow_url_host(url);
    let options = pull::PullOptions::new(Arc::new(egress));
    tracing::info!(url = %pull::redact(url), "pulling");
    Ok(pull::open(url, &options)?)
}

/// A URL's stream name: its last path segment without a `.flv` extension.
fn url_stream_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let path = path.split_once("://").map_or(path, |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
    let last = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("stream");
    last.strip_suffix(".flv").filter(|s| !s.is_empty()).unwrap_or(last).to_string()
}

/// `--duration`: stream time counted from the first picture's decode time.
struct StreamTimeLimit {
    ms: u64,
    first_dts: Option<u64>,
}

impl StreamTimeLimit {
    /// Whether `event` lies at or past the limit (and is not to be fed).
    fn reached(&mut self, event: &VideoEvent) -> bool {
        let VideoEvent::Unit(unit) = event else { return false };
        let first = *self.first_dts.get_or_insert(unit.dts_ms);
        unit.dts_ms.saturating_sub(first) >= self.ms
    }
}

/// The functions and a callback outbox for one run: kept in memory, with
/// short retries, waited for at the end.
fn one_off_pipeline(config: &Config, template: &Arc<Template>, callback_url: Option<&str>) -> anyhow::Result<Arc<Pipeline>> {
    let buckets = Arc::new(Buckets::open(&config.runtime.buckets, &config.runtime.public_url())?);
    let runtime = Arc::new(Runtime::new(buckets, Some(config.runtime.state_dir.join("cache")))?);
    let outbox = Arc::new(livesnap::state::SqliteState::in_memory()?);
    let delivery_config = DeliveryConfig {
        max_attempts: 3,
        backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(2),
        ..DeliveryConfig::default()
    };
    // A --callback-url typed on the command line is the operator's own choice.
    let mut egress = config.runtime.egress.clone();
    if let Some(url) = callback_url {
        egress.allow_url_host(url);
    }
    let egress = Arc::new(egress);
    runtime.set_egress(egress.clone());
    let delivery = Delivery::start(outbox, "capture", delivery_config, egress);
    let pipeline = Arc::new(Pipeline::new(config, runtime, delivery, livesnap::builtins::get)?);
    let weak = Arc::downgrade(&pipeline);
    let resign_template = template.clone();
    pipeline.delivery().set_resigner(Arc::new(move |json: &str| weak.upgrade()?.resign(&resign_template, json)));
    Ok(pipeline)
}

/// What a run tells: a log line (and with `--json` a JSON line) per
/// snapshot, and the totals at the end.
struct Report {
    stream: String,
    json: bool,
    progress: ProgressBar,
    totals: Totals,
}

impl Report {
    fn snapshot(&mut self, capture: &mut StreamCapture, snapshot: Snapshot) {
        let stream = &self.stream;
        match snapshot {
            Snapshot::Undecodable { take, error } => {
                capture.retry(take);
                self.totals.errors += 1;
                self.progress
                    .suspend(|| tracing::warn!(%stream, due_ms = take.due_ms, "snapshot skipped: {error}; trying the next picture"));
            }
            Snapshot::Stored { take, pts_ms, stream_time_ms, outcome: o } => {
                self.totals.snapshots += 1;
                self.totals.bytes += o.bytes as u64;
                self.progress.suspend(|| {
                    tracing::info!(%stream, seq = take.seq, stream_time_ms, object = %o.stored.object, bytes = o.bytes, "snapshot stored")
                });
                if self.json {
                    println!(
                        "{}",
                        json!({"seq": take.seq, "pts_ms": pts_ms, "stream_time_ms": stream_time_ms, "due_ms": take.due_ms,
                               "bucket": o.stored.bucket, "object": o.stored.object, "url": o.stored.url,
                               "width": o.width, "height": o.height, "bytes": o.bytes, "callback": o.callback})
                    );
                }
            }
            Snapshot::Failed { take, pts_ms, stream_time_ms, error } => {
                self.totals.errors += 1;
                self.progress.suspend(|| tracing::error!(%stream, seq = take.seq, stream_time_ms, "snapshot failed: {error}"));
                if self.json {
                    println!(
                        "{}",
                        json!({"seq": take.seq, "pts_ms": pts_ms, "stream_time_ms": stream_time_ms, "error": error.to_string()})
                    );
                }
            }
        }
    }

    fn skipped(&mut self, warnings: Vec<IngestError>) {
        for w in warnings {
            self.totals.skipped += 1;
            self.progress.suspend(|| tracing::warn!(stream = %self.stream, "{w}; skipped"));
        }
    }

    fn summary(&self, pictures: u64, delivered: DeliveryStats, fatal: Option<&IngestError>) {
        let (t, cpu) = (&self.totals, cpu_seconds());
        if self.json {
            println!(
                "{}",
                json!({"summary": {"pictures": pictures, "snapshots": t.snapshots, "bytes": t.bytes,
                       "errors": t.errors, "skipped": t.skipped, "callbacks_ok": delivered.ok,
                       "callbacks_failed": delivered.failed, "cpu_seconds": cpu,
                       "error": fatal.map(ToString::to_string)}})
            );
        } else {
            println!(
                "{} snapshots ({} bytes) from {pictures} pictures; callbacks: {} ok, {} failed; {} snapshot errors, {} damaged parts skipped; CPU {cpu:.2} s",
                t.snapshots, t.bytes, delivered.ok, delivered.failed, t.errors, t.skipped
            );
        }
    }
}

#[derive(Default)]
struct Totals {
    snapshots: u64,
    bytes: u64,
    errors: u64,
    skipped: u64,
}

/// The manifest and runtime config with the command line's overrides
/// applied to the selected template, validated like any template.
fn load_config(args: &CaptureArgs) -> anyhow::Result<Config> {
    let base = Config::load(args.manifest.as_deref(), args.runtime_config.as_deref())?;
    let (mut manifest, mut runtime) = (base.manifest, base.runtime);
    let selected = |t: &SnapshotConfig| t.domain.eq_ignore_ascii_case(&args.domain) && t.app() == args.app;
    if !manifest.templates.iter().any(selected) {
        // A file has no publisher to refuse: capture it under the identity
        // asked for, with the default template's settings (or the first's).
        let base = manifest.templates.iter().find(|t| t.domain == "localhost" && t.app() == "live").or(manifest.templates.first());
        let Some(base) = base.cloned() else {
            return Ok(Config::new(manifest, runtime, &Stored::default())?);
        };
        tracing::info!(
            "no template for domain '{}' app '{}': capturing with the settings of {}/{}",
            args.domain,
            args.app,
            base.domain,
            base.app()
        );
        manifest.templates.push(SnapshotConfig { domain: args.domain.clone(), app_name: Some(args.app.clone()), ..base });
    }
    let raw = manifest.templates.iter_mut().find(|t| selected(t)).expect("added above");
    if let Some(i) = args.interval {
        raw.time_interval = i;
    }
    if let Some(m) = args.mode {
        raw.object_write_mode = match m {
            WriteModeArg::Full => 0,
            WriteModeArg::Instant => 1,
        };
    }
    if let Some(m) = &args.snapshot_mode {
        raw.snapshot_mode = Some(m.clone());
    }
    if let Some(url) = &args.callback_url {
        raw.call_back_enable = Some("on".into());
        raw.call_back_url = Some(url.clone());
    }
    if let Some(key) = &args.auth_key {
        raw.auth_key = Some(key.clone());
    }
    if let Some(q) = args.quality {
        raw.image_quality = Some(q);
    }
    if let Some(dir) = &args.out {
        let bucket = raw.obs_location.bucket.clone();
        let location = raw.obs_location.location.clone();
        livesnap::config::runtime::check_bucket_folder(&bucket, dir, &runtime.state_dir)?;
        runtime.buckets.retain(|b| b.name != bucket);
        runtime.buckets.push(BucketConfig { name: bucket, location, backend: Backend::Fs { path: dir.clone() }, projects: None });
    }
    Config::new(manifest, runtime, &Stored::default()).map_err(|e| match e {
        ConfigError::Template { field, .. } => anyhow::anyhow!("invalid value: {field}"),
        other => other.into(),
    })
}

fn open_input(args: &CaptureArgs) -> anyhow::Result<(Box<dyn Demuxer>, Option<u64>)> {
    let (reader, size): (Box<dyn Read>, Option<u64>) = if args.input.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let file = std::fs::File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let format = match args.format {
        Some(f) => f,
        None => match extension(&args.input).as_deref() {
            Some("flv") => FormatArg::Flv,
            Some("h264" | "264" | "avc" | "annexb") => FormatArg::H264,
            _ => {
                let head = reader.fill_buf().context("reading the input")?;
                if head.starts_with(b"FLV") { FormatArg::Flv } else { FormatArg::H264 }
            }
        },
    };
    let demuxer: Box<dyn Demuxer> = match format {
        FormatArg::Flv => Box::new(FlvReader::new(reader)),
        FormatArg::H264 => Box::new(AnnexBReader::new(reader, args.fps)),
    };
    Ok((demuxer, size))
}

fn extension(p: &Path) -> Option<String> {
    p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase())
}

fn progress_bar(size: Option<u64>, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match size {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").expect("valid progress template"),
        ),
        None => {
            let pb = ProgressBar::new_spinner();
            pb.set_style(ProgressStyle::with_template("{spinner} {bytes} read").expect("valid progress template"));
            pb.enable_steady_tick(Duration::from_millis(200));
            pb
        }
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes only into `usage`.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
