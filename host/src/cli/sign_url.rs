//! `livesnap sign-url`: signs an ingest URL for a domain with URL validation
//! (what a publisher appends to `rtmp://DOMAIN/APP/STREAM`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use livesnap::ingest::url_auth::{AuthType, KeyChain};

/// Arguments of `livesnap sign-url`.
#[derive(Args)]
pub struct SignUrlArgs {
    /// The domain's key chain key.
    #[arg(long, env = "LIVESNAP_KEY_CHAIN_KEY", hide_env_values = true)]
    key: String,
    /// d_sha256 (default), b_md5 or a_md5.
    #[arg(long, default_value = "d_sha256")]
    auth_type: String,
    /// Sign as of this unix time instead of now.
    #[arg(long)]
    time: Option<u64>,
    /// The ingest URL, `rtmp://HOST[:PORT]/APP/STREAM[?…]`.
    url: String,
}

/// Runs the verb: prints the signed URL.
pub fn run(args: SignUrlArgs) -> anyhow::Result<ExitCode> {
    let auth_type: AuthType = args.auth_type.parse().map_err(anyhow::Error::msg)?;
    let (base, query) = args.url.split_once('?').unwrap_or((&args.url, ""));
    let path = base.split_once("://").map(|(_, rest)| rest).context("the URL has no scheme (rtmp://…)")?;
    let mut parts = path.split('/').skip(1);
    let (Some(app), Some(stream)) = (parts.next(), parts.next()) else {
        bail!("the URL needs an app and a stream: rtmp://HOST/APP/STREAM");
    };
    let chain = KeyChain { key: args.key, auth_type, timeout: Duration::ZERO };
    let now = args.time.unwrap_or_else(livesnap::time::unix_secs);
    let signed: Vec<String> = chain.sign(app, stream, now).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let sep = if query.is_empty() { "?" } else { "&" };
    let query = if query.is_empty() { String::new() } else { format!("?{query}") };
    println!("{base}{query}{sep}{}", signed.join("&"));
    Ok(ExitCode::SUCCESS)
}
