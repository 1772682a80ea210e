//! A real PostgreSQL server for the tests that need one: Debian's server
//! binaries, a cluster made with `initdb` in a temporary folder (as user
//! `postgres` when the tests run as root: the server refuses root), on a
//! free loopback port, started once per test binary and stopped when the
//! binary exits. Each test gets a database of its own.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::free_port;

/// The running server.
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    /// (uid, gid) the server and its tools run as.
    user: Option<(u32, u32)>,
}

static SERVER: OnceLock<Postgres> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// The server binaries of the newest PostgreSQL installed.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries in /usr/lib/postgresql (scripts/setup --test installs them)")
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb under /usr/lib/postgresql/*/bin").1
}

/// The `postgres` account's ids when running as root.
fn server_user() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "the tests run as root and there is no 'postgres' user to run the server as");
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

impl Postgres {
    /// The shared server, started on first use.
    pub fn get() -> &'static Postgres {
        SERVER.get_or_init(Self::start)
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.user {
            c.uid(uid).gid(gid);
        }
        c.env_remove("PGPASSWORD").env("LC_ALL", "C");
        c
    }

    fn start() -> Self {
        let bin = bin_dir();
        let user = server_user();
        let base = std::env::temp_dir();
        // Folders of earlier runs whose process is gone.
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(pid) = name.strip_prefix("livesnap-test-pg-")
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = base.join(format!("livesnap-test-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let server = Self { port: free_port(), bin, user };
        let data = dir.join("data");
        let out = server
            .command("initdb")
            .args(["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("running initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        // The server is the child of a thread that lives as long as the
        // process, and dies with it (PR_SET_PDEATHSIG follows the thread).
        let (tx, rx) = std::sync::mpsc::channel();
        let mut command = server.command("postgres");
        command
            .args(["-D", data.to_str().unwrap(), "-p", &server.port.to_string(), "-k", dir.to_str().unwrap()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
                Ok(())
            });
        }
        std::thread::spawn(move || {
            let mut child = match command.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(format!("starting postgres: {e}")));
                    return;
                }
            };
            let mut log = Vec::new();
            for line in BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok) {
                if line.contains("ready to accept connections") {
                    let _ = tx.send(Ok(()));
                }
                log.push(line);
            }
            let _ = tx.send(Err(format!("postgres exited: {}", log.join("\n"))));
            loop {
                std::thread::park();
            }
        });
        rx.recv_timeout(crate::service::WAIT).expect("postgres did not start in time").unwrap();
        server
    }

    /// SQL through psql as the superuser, in `database`; its output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = self
            .command("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", database, "-tA", "-v", "ON_ERROR_STOP=1"])
            .args(["-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new, empty database; its URL (trust authentication: no password).
    pub fn database(&self) -> String {
        let name = format!("t{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}
