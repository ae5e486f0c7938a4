//! Test fixtures shared by ferry's test suites.
//!
//! [`TempPostgres`] starts a throwaway PostgreSQL server in a temporary directory (with
//! `initdb` and `pg_ctl`, as the `postgres` user when running as root), on a free loopback
//! port, with fsync on, and stops it when dropped. Where PostgreSQL is not installed it returns
//! `None` so a developer's run can go on; under `CI=true` that is a failure instead. The same
//! rule finds the outside tools ([`tools`]). [`appliance::Appliance`] is `ferry up` as the
//! end-to-end suites start it.

pub mod appliance;
pub mod cri;
pub mod ferry;
pub mod git;
pub mod tools;

use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A PostgreSQL server for one test run.
#[derive(Debug)]
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn find_bindir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn postgres_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(54329)
}

impl TempPostgres {
    /// Starts a server; `None` when PostgreSQL is not installed and `CI` is not `true`.
    pub fn start() -> Option<TempPostgres> {
        let Some(bindir) = find_bindir() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL (initdb) is required under CI=true; install the postgresql package"
            );
            eprintln!(
                "testkit: PostgreSQL not installed; skipping the PostgreSQL half of this test"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("ferry-pg-")
            .tempdir()
            .expect("temporary directory for PostgreSQL");
        let as_postgres = is_root();
        if as_postgres {
            let (uid, gid) = postgres_ids().expect("a postgres user exists when running as root");
            chown(dir.path(), Some(uid), Some(gid)).expect("hand the data directory to postgres");
        }
        let server = TempPostgres {
            dir,
            bindir,
            port: free_port(),
            as_postgres,
        };
        let data = server.data_dir();
        let data = data.to_str().expect("UTF-8 temp path");
        server.run(
            "initdb",
            &[
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                "ferry",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        server.start_server();
        Some(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bindir.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_server(&self) {
        let data = self.data_dir();
        let socket_dir = self.dir.path();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200",
            self.port,
            socket_dir.display()
        );
        let log = self.dir.path().join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once (as a crash would), keeping its data.
    pub fn kill(&self) {
        self.run(
            "pg_ctl",
            &["-D", path_str(&self.data_dir()), "-m", "immediate", "stop"],
        );
    }

    /// Starts the server again after [`TempPostgres::kill`].
    pub fn restart(&self) {
        self.start_server();
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a database and returns its URL.
    pub fn database(&self, name: &str) -> String {
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "ferry",
                name,
            ],
        );
        format!("postgres://ferry@127.0.0.1:{}/{name}", self.port)
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let program = self.bindir.join("pg_ctl");
        let args = ["-D", path_str(&data), "-m", "immediate", "stop"];
        let stopped = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        };
        if let Err(e) = stopped {
            eprintln!("stopping the throwaway PostgreSQL server: {e}");
        }
    }
}
