//! A private redis-server per test (or the one named by `TEST_REDIS_URL`).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::process::Child;

/// A Redis server for one test. With `TEST_REDIS_URL` set, the external
/// server is used and nothing is spawned; tests then isolate themselves by
/// using their own contact-center ids (every key carries the center's hash
/// tag).
pub struct TestRedis {
    url: String,
    port: u16,
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    persistent: bool,
}

impl TestRedis {
    /// Starts a throwaway redis-server on a free port, persistence off.
    pub fn start() -> anyhow::Result<Self> {
        if let Ok(url) = std::env::var("TEST_REDIS_URL") {
            return Ok(Self {
                url,
                port: 0,
                child: None,
                dir: None,
                persistent: false,
            });
        }
        Self::spawn_on(crate::free_port())
    }

    /// Starts a private redis-server on the given port (used to restart one
    /// on the same address).
    pub fn spawn_on(port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("failed to create a temp dir for redis")?;
        Self::spawn_in(port, dir, false)
    }

    /// Starts a private redis-server on a free port that writes every
    /// change to an append-only file synced before each reply, so a
    /// [`TestRedis::restart`] keeps every acknowledged write (as a
    /// production Redis with AOF does). Always private: `TEST_REDIS_URL`
    /// is ignored, because the test means to restart it.
    pub fn start_persistent() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("failed to create a temp dir for redis")?;
        Self::spawn_in(crate::free_port(), dir, true)
    }

    fn spawn_in(port: u16, dir: tempfile::TempDir, persistent: bool) -> anyhow::Result<Self> {
        let child = Self::launch(port, dir.path(), persistent)?;
        Ok(Self {
            url: format!("redis://127.0.0.1:{port}/"),
            port,
            child: Some(child),
            dir: Some(dir),
            persistent,
        })
    }

    fn launch(port: u16, dir: &Path, persistent: bool) -> anyhow::Result<Child> {
        let bin = which("redis-server").context(
            "redis-server not found: install it with `apt-get install redis-server` (or set TEST_REDIS_URL)",
        )?;
        let (appendonly, fsync) = if persistent {
            ("yes", "always")
        } else {
            ("no", "everysec")
        };
        let mut cmd = Command::new(bin);
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            appendonly,
            "--appendfsync",
            fsync,
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = Child::spawn("redis-server", &mut cmd)?;
        wait_for_ping(port, Duration::from_secs(10))?;
        Ok(child)
    }

    /// Kills the private server (SIGKILL, as in a crash) and starts it
    /// again on the same port and data directory after `down_for`. A
    /// persistent server comes back with its data; another comes back
    /// empty.
    pub fn restart(&mut self, down_for: Duration) -> anyhow::Result<()> {
        self.stop();
        std::thread::sleep(down_for);
        self.start_again()
    }

    /// Starts a stopped private server again, on the same port and data
    /// directory.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        let dir = self
            .dir
            .as_ref()
            .context("an external TEST_REDIS_URL server cannot be restarted")?;
        if self.child.is_none() {
            self.child = Some(Self::launch(self.port, dir.path(), self.persistent)?);
        }
        Ok(())
    }

    /// The connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port (0 when an external server is used).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True when this harness owns the server (and may stop or restart it).
    pub fn is_private(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the private server (simulates Redis going away).
    pub fn stop(&mut self) {
        self.child.take();
    }
}

fn wait_for_ping(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            if s.write_all(b"PING\r\n").is_ok() {
                let mut buf = [0u8; 7];
                if s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("redis-server on port {port} did not answer PING within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Finds an executable on PATH (and in the usual sbin/lib locations that are
/// not always on a non-root PATH).
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin"].map(Into::into))
        .map(|dir: std::path::PathBuf| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
