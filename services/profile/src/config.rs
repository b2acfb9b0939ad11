//! Every setting of the profile service, as flags with `RAPPORT_*`
//! environment fallbacks.

use std::time::Duration;

use rapport_kit::config::ServerArgs;

use rapport_kit::phone::Region;

/// Profile service configuration.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "rapport-profile",
    version,
    about = "Rapport profile service: the personalized customer database"
)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Where profiles live: `sqlite://PATH` (an embedded file, created with
    /// its schema on first start) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
    /// The schema is migrated at startup either way.
    #[arg(
        long = "database-url",
        env = "RAPPORT_DATABASE_URL",
        default_value = "sqlite://rapport-profile.db",
        // The URL may hold a password; keep it out of --help.
        hide_env_values = true
    )]
    pub database_url: String,

    /// Region used to parse phone numbers written without a leading `+`
    /// (ISO 3166-1 alpha-2, e.g. CN, US).
    #[arg(
        long = "default-region",
        env = "RAPPORT_DEFAULT_REGION",
        default_value = "CN"
    )]
    pub default_region: Region,

    /// Most database connections this replica holds: on PostgreSQL in all;
    /// on SQLite in each of its two read pools (point reads, scans), which
    /// open connections only as they are needed, beside its one writer.
    #[arg(
        long = "db-max-connections",
        env = "RAPPORT_DB_MAX_CONNECTIONS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub db_max_connections: u32,

    /// How long the change feed (WatchChanges) keeps a change, e.g. `7d`,
    /// `36h`. Older changes are pruned every minute; a consumer resuming
    /// from a token older than this gets OUT_OF_RANGE and must rebuild
    /// from ExportProfiles.
    #[arg(
        long = "change-retention",
        env = "RAPPORT_CHANGE_RETENTION",
        default_value = "7d",
        value_parser = rapport_kit::config::parse_duration
    )]
    pub change_retention: Duration,
}

impl AsRef<ServerArgs> for Config {
    fn as_ref(&self) -> &ServerArgs {
        &self.server
    }
}

impl Config {
    /// A config for tests: ephemeral loopback port, the given database
    /// (e.g. `sqlite:///tmp/x/profile.db`), region CN.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        Self {
            server: ServerArgs::ephemeral(),
            database_url: database_url.into(),
            default_region: Region::CN,
            db_max_connections: 4,
            change_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn defaults_are_an_embedded_sqlite_file_and_region_cn() {
        let config = Config::try_parse_from(["rapport-profile"]).expect("defaults parse");
        assert_eq!(config.database_url, "sqlite://rapport-profile.db");
        assert_eq!(config.default_region, Region::CN);
        assert_eq!(config.db_max_connections, 10);
        assert_eq!(config.change_retention, Duration::from_secs(7 * 24 * 3600));
    }

    #[test]
    fn flags_override_and_bad_values_are_refused_clearly() {
        let config = Config::try_parse_from([
            "rapport-profile",
            "--database-url",
            "postgres://rapport@db/rapport",
            "--default-region",
            "us",
            "--db-max-connections",
            "32",
            "--change-retention",
            "36h",
        ])
        .expect("parses");
        assert_eq!(config.default_region.code(), "US");
        assert_eq!(config.db_max_connections, 32);
        assert_eq!(config.change_retention, Duration::from_secs(36 * 3600));

        let err = Config::try_parse_from(["rapport-profile", "--default-region", "XX"])
            .expect_err("unknown region");
        assert!(err.to_string().contains("ISO 3166-1"), "{err}");
        assert!(Config::try_parse_from(["rapport-profile", "--db-max-connections", "0"]).is_err());
    }
}
