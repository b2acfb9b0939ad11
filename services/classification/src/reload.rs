//! Policy hot reload: on SIGHUP, and when the policy or model file changes
//! (polled, which also sees Kubernetes ConfigMap symlink swaps that file
//! notifications miss). A new policy is validated completely before it
//! replaces the one in force; an invalid one is logged with its line and
//! the old one stays, so a bad edit never takes classification down.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::model::{ModelError, TextModel};
use crate::policy::{Policy, PolicyError, PolicySource, SharedPolicy};

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The error is part of the message rather than its source, so a
    /// cause chain (`{:#}`) names the problem once.
    #[error("{source_name}: {error}")]
    Policy {
        source_name: String,
        error: PolicyError,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl ReloadError {
    /// The policy line at fault, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Policy { error, .. } => error.line(),
            Self::Model(_) => None,
        }
    }
}

/// Loads the policy and model, and swaps them into a [`SharedPolicy`].
#[derive(Debug, Clone)]
pub struct Reloader {
    source: PolicySource,
    model: Option<PathBuf>,
    shared: SharedPolicy,
}

/// What a file looked like when last loaded; a difference means a reload.
type Fingerprint = Vec<Option<(SystemTime, u64)>>;

impl Reloader {
    pub fn new(source: PolicySource, model: Option<PathBuf>, shared: SharedPolicy) -> Self {
        Self {
            source,
            model,
            shared,
        }
    }

    /// Loads both files as they are now, without installing them.
    pub fn load(source: &PolicySource, model: Option<&PathBuf>) -> Result<Policy, ReloadError> {
        let policy = source.load().map_err(|error| ReloadError::Policy {
            source_name: source.to_string(),
            error,
        })?;
        Ok(match model {
            Some(path) => policy.with_model(Arc::new(TextModel::load(path)?)),
            None => policy,
        })
    }

    /// Reloads now; on success the new policy is in force and its version
    /// is returned, on failure the old one stays.
    pub fn reload(&self) -> Result<String, ReloadError> {
        let policy = Self::load(&self.source, self.model.as_ref())?;
        let version = policy.version().to_owned();
        self.shared.replace(policy);
        Ok(version)
    }

    fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(version) => tracing::info!(version, why, "classification policy reloaded"),
            Err(e) => tracing::error!(
                error = %e,
                line = e.line(),
                why,
                "classification policy reload refused; the policy in force is kept"
            ),
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut files = Vec::new();
        if let PolicySource::File(path) = &self.source {
            files.push(path);
        }
        files.extend(self.model.as_ref());
        files
            .into_iter()
            .map(|path| {
                let meta = std::fs::metadata(path).ok()?;
                Some((meta.modified().ok()?, meta.len()))
            })
            .collect()
    }

    /// Watches for SIGHUP and file changes until the task is aborted.
    /// The SIGHUP handler is installed before this returns, so a signal
    /// sent right after startup is never the default (terminate).
    pub fn spawn(self, poll: Duration) -> std::io::Result<tokio::task::JoinHandle<()>> {
        #[cfg(unix)]
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let watched = matches!(self.source, PolicySource::File(_)) || self.model.is_some();
        Ok(tokio::spawn(async move {
            let mut seen = self.fingerprint();
            let mut interval = tokio::time::interval(if poll.is_zero() {
                Duration::from_secs(3600)
            } else {
                poll
            });
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                #[cfg(unix)]
                let hup = hangup.recv();
                #[cfg(not(unix))]
                let hup = std::future::pending::<Option<()>>();
                tokio::select! {
                    _ = hup => {
                        self.reload_logged("SIGHUP");
                        seen = self.fingerprint();
                    }
                    _ = interval.tick(), if watched && !poll.is_zero() => {
                        let now = self.fingerprint();
                        if now != seen {
                            seen = now;
                            self.reload_logged("file changed");
                        }
                    }
                }
            }
        }))
    }
}
