//! Every setting of the outreach scheduler, as flags with `RAPPORT_*`
//! environment fallbacks.

use rapport_kit::config::ServerArgs;

/// Outreach scheduler configuration.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "rapport-outreach",
    version,
    about = "Rapport outreach scheduler"
)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,
}

impl Config {
    /// A config for tests: ephemeral loopback port.
    pub fn for_tests() -> Self {
        Self {
            server: ServerArgs::ephemeral(),
        }
    }
}
