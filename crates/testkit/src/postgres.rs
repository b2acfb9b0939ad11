//! A private PostgreSQL cluster per test (or a fresh database on the server
//! named by `TEST_POSTGRES_URL`).
//!
//! `initdb` refuses to run as root, so when the tests run as root the
//! cluster is created and run as the `postgres` user (`runuser -u postgres`)
//! in a temporary directory that user owns.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// A PostgreSQL database for one test, dropped (or its whole private
/// cluster stopped) when this value is dropped.
pub struct TestPostgres {
    url: String,
    kind: Kind,
}

enum Kind {
    /// A private cluster we started.
    Private {
        pg_ctl: PathBuf,
        data: PathBuf,
        as_postgres: bool,
        _dir: tempfile::TempDir,
    },
    /// A database we created on an external server.
    External { admin_url: String, db: String },
}

impl TestPostgres {
    /// Starts a private cluster on a free port, or creates a database on
    /// `TEST_POSTGRES_URL`.
    pub fn start() -> anyhow::Result<Self> {
        if let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") {
            let db = crate::unique("rapport_test_");
            psql(&admin_url, &format!("CREATE DATABASE {db}"))?;
            let url = replace_database(&admin_url, &db);
            return Ok(Self {
                url,
                kind: Kind::External { admin_url, db },
            });
        }
        Self::start_private()
    }

    fn start_private() -> anyhow::Result<Self> {
        let bin_dir = pg_bin_dir().context(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install them with \
             `apt-get install postgresql` (or set TEST_POSTGRES_URL)",
        )?;
        let as_postgres = nix::unistd::Uid::effective().is_root();
        let dir = tempfile::Builder::new()
            .prefix("rapport-pg-")
            .tempdir()
            .context("failed to create a temp dir for PostgreSQL")?;
        let data = dir.path().join("data");
        let socket_dir = dir.path().to_path_buf();
        if as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path()))?;
        }
        let initdb = bin_dir.join("initdb");
        run(pg_command(as_postgres, &initdb).arg("-D").arg(&data).args([
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--no-sync",
        ]))?;
        let port = crate::free_port();
        let pg_ctl = bin_dir.join("pg_ctl");
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            socket_dir.display()
        );
        run(pg_command(as_postgres, &pg_ctl)
            .arg("-D")
            .arg(&data)
            .args(["-o", &opts, "-w", "-t", "30", "-l"])
            .arg(dir.path().join("log"))
            .arg("start"))?;
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        Ok(Self {
            url,
            kind: Kind::Private {
                pg_ctl,
                data,
                as_postgres,
                _dir: dir,
            },
        })
    }

    /// The connection URL of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        match &self.kind {
            Kind::Private {
                pg_ctl,
                data,
                as_postgres,
                ..
            } => {
                let _ = pg_command(*as_postgres, pg_ctl)
                    .arg("-D")
                    .arg(data)
                    .args(["-m", "immediate", "-w", "stop"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            Kind::External { admin_url, db } => {
                let _ = psql(
                    admin_url,
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                );
            }
        }
    }
}

fn pg_command(as_postgres: bool, bin: &Path) -> Command {
    if as_postgres {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin);
        cmd
    } else {
        Command::new(bin)
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    run(Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql]))
}

fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // postgres://user@host:port/dbname → keep everything up to the last '/'
    // after the authority.
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// The directory holding initdb and pg_ctl: Debian keeps them under
/// /usr/lib/postgresql/<version>/bin, off the PATH.
fn pg_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .or_else(|| crate::redis::which("initdb").and_then(|p| p.parent().map(Path::to_path_buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            replace_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h:5432/test?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
    }
}
