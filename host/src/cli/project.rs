//! `livesnap project`: create, list, rotate and delete projects (tenants)
//! in the state database `up` uses — also while it runs: it looks projects
//! up at each request.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use livesnap::config::credentials;
use livesnap::config::runtime::RuntimeConfig;
use livesnap::project::{Keys, Project, token_hash};
use livesnap::state::{StateDb, StateError};

/// Arguments of `livesnap project`.
#[derive(Args)]
pub struct ProjectArgs {
    /// Runtime config (its `state_dir` holds the state database) [default: embedded].
    #[arg(long, global = true)]
    runtime_config: Option<PathBuf>,
    #[command(subcommand)]
    command: ProjectCommand,
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Create a project with its own project_id, AK/SK and token (shown once).
    Create {
        /// A name for people (1-64 letters, digits, '-', '_', '.').
        name: String,
        /// Print {"project_id","access_key","secret_key","token"}.
        #[arg(long)]
        json: bool,
    },
    /// List the projects (the default one first); no secrets.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Give a project new keys (shown once); the old ones stop working at once.
    Rotate {
        /// Its project_id or name.
        project: String,
        /// Print {"project_id","access_key","secret_key","token"}.
        #[arg(long)]
        json: bool,
    },
    /// Delete a project with its bucket authorizations and modules (refused while it owns domains).
    Delete {
        /// Its project_id or name.
        project: String,
    },
}

/// Runs `livesnap project …`.
pub fn run(args: ProjectArgs) -> anyhow::Result<ExitCode> {
    let runtime = match &args.runtime_config {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::embedded(std::path::Path::new(".")),
    };
    let db = livesnap::state::open(&runtime.state, &runtime.state_dir)
        .with_context(|| format!("opening the state database ({})", runtime.state.describe(&runtime.state_dir)))?;
    let db = &*db;
    match args.command {
        ProjectCommand::Create { name, json } => {
            let (project, keys) = Project::generate(&name).map_err(anyhow::Error::msg)?;
            db.insert_project(&project)?;
            print_keys(&project.id, &keys, json);
        }
        ProjectCommand::List { json } => list(&runtime, db, json)?,
        ProjectCommand::Rotate { project, json } => {
            let project = find(db, &project)?;
            let keys = Keys::generate();
            db.set_project_keys(&project.id, &keys.access_key, &keys.secret_key, &token_hash(keys.token.expose()))?;
            print_keys(&project.id, &keys, json);
        }
        ProjectCommand::Delete { project } => {
            let project = find(db, &project)?;
            match db.delete_project(&project.id) {
                Ok(_) => println!("deleted project {} ({})", project.name, project.id),
                Err(StateError::Conflict(why)) => bail!("project {} ({}) is not deleted: {why}", project.name, project.id),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn find(db: &dyn StateDb, id_or_name: &str) -> anyhow::Result<Project> {
    match db.project(id_or_name)? {
        Some(p) => Ok(p),
        None => bail!(
            "no project '{id_or_name}' in the state database (the default project's keys come from the runtime config, the environment or the generated credentials file)"
        ),
    }
}

fn print_keys(project_id: &str, keys: &Keys, json: bool) {
    let (ak, sk, token) = (&keys.access_key, keys.secret_key.expose(), keys.token.expose());
    if json {
        println!("{}", serde_json::json!({"project_id": project_id, "access_key": ak, "secret_key": sk, "token": token}));
    } else {
        println!("project_id  {project_id}\naccess_key  {ak}\nsecret_key  {sk}\ntoken       {token}");
        println!("(the secret key and token are shown this once)");
    }
}

fn list(runtime: &RuntimeConfig, db: &dyn StateDb, json: bool) -> anyhow::Result<()> {
    let (default, _) = credentials::resolve(runtime)?;
    let mut rows = vec![(default.project_id, "(default)".to_string(), default.access_key, None)];
    for p in db.projects()? {
        rows.push((p.id, p.name, p.access_key, Some(p.created_at)));
    }
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(id, name, ak, at)| {
                serde_json::json!({"project_id": id, "name": name, "access_key": ak,
                                   "created_at": at.map(livesnap::time::iso_utc)})
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for (id, name, ak, at) in rows {
            let at = at.map(livesnap::time::iso_utc).unwrap_or_default();
            println!("{id}  {name:<20}  {ak}  {at}");
        }
    }
    Ok(())
}
