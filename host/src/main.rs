//! The `livesnap` command line.

mod cli;

use clap::{Parser, Subcommand};

/// Snapshots of live H.264 streams, encoded, stored and announced by
/// sandboxed WebAssembly components (Huawei Live compatible).
#[derive(Parser)]
#[command(name = "livesnap", version, propagate_version = true)]
struct Cli {
    /// Log only warnings and errors (RUST_LOG overrides).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: RTMP ingest and the HTTP server (API, /obs objects, /metrics).
    Up(cli::up::UpArgs),
    /// Capture snapshots from a file (.flv, Annex-B .h264), stdin or a live URL (rtsp://, rtmp://, http(s):// FLV)
    /// with the same pipeline as the service.
    Capture(Box<cli::capture::CaptureArgs>),
    /// Run each component's `[component.X.build] command` from the manifest.
    Build(cli::build::BuildArgs),
    /// Create, list, rotate and delete projects (tenants with their own AK/SK, token and resources).
    Project(cli::project::ProjectArgs),
    /// Print a new random auth key (64 characters).
    Keygen,
    /// Check a callback body's auth_sign and expiry.
    Verify(cli::verify::VerifyArgs),
    /// Sign an ingest URL for a domain with URL validation (key chain).
    SignUrl(cli::sign_url::SignUrlArgs),
    /// Measure the JPEG encoder in WebAssembly against native, and instantiation (scripts/bench).
    BenchEncode(cli::bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    // Like other command-line tools, end quietly when the reader of our
    // output goes away (`livesnap capture … --json | head`).
    // SAFETY: restoring the default disposition of a signal; malloc tuning.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        // Each snapshot allocates and frees decoder pictures and frames of a
        // few MB. glibc would hand such blocks back to the kernel (mmap) and
        // fault fresh zeroed pages in every time (profiled: ~10% of capture
        // CPU); keep them in the heap for reuse instead.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
    let cli = Cli::parse();
    let default_level = if cli.quiet { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Up(args) => cli::up::run(args),
        Command::Capture(args) => cli::capture::run(*args),
        Command::Build(args) => cli::build::run(args),
        Command::Project(args) => cli::project::run(args),
        Command::Keygen => cli::keygen(),
        Command::Verify(args) => cli::verify::run(args),
        Command::SignUrl(args) => cli::sign_url::run(args),
        Command::BenchEncode(args) => cli::bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
