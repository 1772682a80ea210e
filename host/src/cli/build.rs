//! `livesnap build`: runs the manifest's component build commands.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use clap::Args;

/// Arguments of `livesnap build`.
#[derive(Args)]
pub struct BuildArgs {
    /// The application manifest.
    #[arg(long, short = 'f', default_value = "spin.toml")]
    manifest: PathBuf,
    /// Build only these components (all by default).
    #[arg(long = "component-id", short = 'c')]
    components: Vec<String>,
}

/// Runs each `[component.X.build] command` with `sh -c` in its workdir.
pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let manifest = livesnap::config::manifest::load(&args.manifest)?;
    for name in &args.components {
        if !manifest.components.contains_key(name) {
            bail!("the manifest has no component '{name}'");
        }
    }
    let mut built = 0;
    for (name, decl) in &manifest.components {
        if !args.components.is_empty() && !args.components.contains(name) {
            continue;
        }
        let Some(build) = &decl.build else {
            tracing::info!(component = %name, "no build command; skipped");
            continue;
        };
        tracing::info!(component = %name, command = %build.command, workdir = %build.workdir.display(), "building");
        let status = Command::new("sh")
            .arg("-c")
            .arg(&build.command)
            .current_dir(&build.workdir)
            .status()
            .with_context(|| format!("running the build command of '{name}'"))?;
        if !status.success() {
            bail!("building component '{name}' failed ({status})");
        }
        if !decl.source.exists() {
            bail!("component '{name}' built, but its source {} does not exist", decl.source.display());
        }
        built += 1;
    }
    println!("built {built} component(s)");
    Ok(ExitCode::SUCCESS)
}
