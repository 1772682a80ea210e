//! The verbs of the command line.

pub mod bench;
pub mod build;
pub mod capture;
pub mod project;
pub mod sign_url;
pub mod up;
pub mod verify;

use std::process::ExitCode;

/// `livesnap keygen`: 32 random bytes as 64 hex characters.
pub fn keygen() -> anyhow::Result<ExitCode> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    println!("{}", hex::encode(key));
    Ok(ExitCode::SUCCESS)
}
