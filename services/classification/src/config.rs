//! Every setting of the classification service, as flags with `RAPPORT_*`
//! environment fallbacks.

use std::path::PathBuf;
use std::time::Duration;

use rapport_kit::config::ServerArgs;

use crate::policy::PolicySource;

/// Default limit on `ClassifyRequest.text`: 16 KiB.
pub const DEFAULT_MAX_TEXT_BYTES: u64 = 16 * 1024;

/// Largest accepted `--max-text-bytes`: the gRPC message limit is 4 MiB.
const MAX_TEXT_BYTES_LIMIT: u64 = 4 * 1024 * 1024;

/// Classification service configuration.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "rapport-classification",
    version,
    about = "Rapport classification service"
)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Classification policy file (TOML). Without it, the default policy
    /// compiled into the binary (policy/classification.toml) is used. An
    /// invalid file stops startup with the problem and its line.
    #[arg(long = "policy", env = "RAPPORT_CLASSIFICATION_POLICY")]
    pub policy: Option<PathBuf>,

    /// Longest `text` accepted in a Classify request, in bytes; longer text
    /// is refused with INVALID_ARGUMENT.
    #[arg(
        long = "max-text-bytes",
        env = "RAPPORT_MAX_TEXT_BYTES",
        default_value_t = DEFAULT_MAX_TEXT_BYTES,
        value_parser = clap::value_parser!(u64).range(1..=MAX_TEXT_BYTES_LIMIT)
    )]
    pub max_text_bytes: u64,

    /// Text model file (JSON written by `make train`). Without it, the model
    /// compiled into the binary (data/classification/model.json) is used.
    /// An invalid file stops startup.
    #[arg(long = "model", env = "RAPPORT_CLASSIFICATION_MODEL")]
    pub model: Option<PathBuf>,

    /// How often the policy (and model) files are checked for changes; a
    /// changed file is reloaded, an invalid one is logged with its line and
    /// the policy in force is kept. SIGHUP reloads at once. `0s` disables
    /// polling (SIGHUP still works).
    #[arg(
        long = "policy-poll",
        env = "RAPPORT_CLASSIFICATION_POLICY_POLL",
        default_value = "2s",
        value_parser = parse_duration
    )]
    pub policy_poll: Duration,
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("invalid duration {value:?}: {e}"))
}

impl AsRef<ServerArgs> for Config {
    fn as_ref(&self) -> &ServerArgs {
        &self.server
    }
}

impl Config {
    /// A config for tests: ephemeral loopback port, built-in policy.
    pub fn for_tests() -> Self {
        Self {
            server: ServerArgs::ephemeral(),
            policy: None,
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
            model: None,
            policy_poll: Duration::from_secs(2),
        }
    }

    /// Where the policy is read from.
    pub fn policy_source(&self) -> PolicySource {
        match &self.policy {
            Some(path) => PolicySource::File(path.clone()),
            None => PolicySource::BuiltIn,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn flags_parse_with_defaults() {
        let config = Config::try_parse_from(["rapport-classification"]).expect("parses");
        assert_eq!(config.max_text_bytes, DEFAULT_MAX_TEXT_BYTES);
        assert_eq!(config.policy_source(), PolicySource::BuiltIn);

        let config = Config::try_parse_from([
            "rapport-classification",
            "--policy",
            "/etc/rapport/classification.toml",
            "--max-text-bytes",
            "1024",
        ])
        .expect("parses");
        assert_eq!(config.max_text_bytes, 1024);
        assert_eq!(
            config.policy_source(),
            PolicySource::File("/etc/rapport/classification.toml".into())
        );
    }

    #[test]
    fn a_zero_or_huge_text_limit_is_refused() {
        for bad in ["0", "999999999", "lots"] {
            assert!(
                Config::try_parse_from(["rapport-classification", "--max-text-bytes", bad])
                    .is_err(),
                "{bad}"
            );
        }
    }
}
