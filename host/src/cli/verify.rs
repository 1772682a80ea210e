//! `livesnap verify`: checks a callback body as a receiver would.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

/// Arguments of `livesnap verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The template's auth_key.
    #[arg(long, env = "LIVESNAP_AUTH_KEY", hide_env_values = true)]
    key: String,
    /// The callback body (JSON); `-` or nothing for stdin.
    file: Option<PathBuf>,
    /// Check expiry against this unix time instead of now.
    #[arg(long, hide = true)]
    now: Option<u64>,
}

/// Runs the verb: exit 0 when valid, 1 when not.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut body = Vec::new();
    match args.file.as_deref() {
        None => std::io::stdin().read_to_end(&mut body).map(|_| ()),
        Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_end(&mut body).map(|_| ()),
        Some(p) => std::fs::read(p).map(|b| body = b),
    }
    .context("reading the callback body")?;
    let now = args.now.unwrap_or_else(livesnap::time::unix_secs);
    match livesnap::verify::verify_callback(&body, &args.key, now) {
        Ok(expires) => {
            println!("valid: signature matches, expires at {expires} (in {} s)", expires - now);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("invalid: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
