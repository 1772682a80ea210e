//! `livesnap up`: the service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Arguments of `livesnap up`.
#[derive(Args)]
pub struct UpArgs {
    /// Application manifest [default: ./spin.toml if present, else the embedded default].
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Runtime config (listen addresses, region, buckets) [default: embedded].
    #[arg(long)]
    runtime_config: Option<PathBuf>,
    /// RTMP listen address [default: runtime config, else 127.0.0.1:1935].
    #[arg(long)]
    rtmp_listen: Option<SocketAddr>,
    /// HTTP listen address [default: runtime config, else 127.0.0.1:8080].
    #[arg(long)]
    http_listen: Option<SocketAddr>,
}

/// Runs the service until SIGINT/SIGTERM.
pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(livesnap::service::run(livesnap::service::Options {
        manifest: args.manifest,
        runtime_config: args.runtime_config,
        rtmp_listen: args.rtmp_listen,
        http_listen: args.http_listen,
        builtins: livesnap::builtins::get,
    }))?;
    Ok(ExitCode::SUCCESS)
}
