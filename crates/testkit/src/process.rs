//! Child processes that never outlive their test.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context as _;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// A spawned process, killed (SIGKILL) and reaped when dropped.
pub struct Child {
    name: String,
    inner: Option<std::process::Child>,
}

impl Child {
    /// Spawns `cmd`, naming it for error messages.
    pub fn spawn(name: &str, cmd: &mut Command) -> anyhow::Result<Self> {
        let inner = cmd
            .spawn()
            .with_context(|| format!("failed to spawn {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            inner: Some(inner),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.inner.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal (SIGTERM to test graceful shutdown, SIGKILL to test
    /// crash safety, SIGSTOP/SIGCONT to test pauses).
    pub fn signal(&self, sig: Signal) -> anyhow::Result<()> {
        let pid = Pid::from_raw(self.pid() as i32);
        signal::kill(pid, sig).with_context(|| format!("failed to signal {}", self.name))
    }

    /// Waits for the process to exit and returns its exit status.
    pub fn wait(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let child = self.inner.as_mut().context("process already reaped")?;
        let status = child.wait().context("failed to wait for process")?;
        self.inner = None;
        Ok(status)
    }

    /// Whether the process has exited, without blocking.
    pub fn try_wait(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let child = self.inner.as_mut().context("process already reaped")?;
        Ok(child.try_wait()?)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut child) = self.inner.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Path of a workspace binary (e.g. `rapport-routing`) built into the same
/// target directory as the running executable (a test or `rapportctl`). `make test` builds the binaries
/// first; running a single test by hand needs `cargo build --bins`.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("failed to locate the running executable")?;
    // A binary runs from target/<profile>/, a test from target/<profile>/deps/.
    let dir = exe.parent().context("unexpected executable location")?;
    let candidates = [Some(dir), dir.parent()];
    for dir in candidates.into_iter().flatten() {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    anyhow::bail!(
        "{name} is missing next to {}; build the binaries first (`cargo build --bins` or `make build`)",
        exe.display()
    )
}
