//! `rapportctl`: operator CLI.

#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod import;

#[derive(Parser)]
#[command(name = "rapportctl", version, about = "Rapport operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start Redis and the four services locally, seed the reference
    /// scenario and route calls through the gRPC API; stops everything on
    /// exit or Ctrl-C.
    Demo,
    /// Bulk-load customers, phones, tags and contacts (JSONL or CSV) into
    /// the profile database, in resumable batches.
    Import(import::Args),
    /// Check grpc.health.v1 of a service; exits non-zero unless SERVING.
    Health {
        /// Service address, e.g. http://127.0.0.1:50051.
        #[arg(long, env = "RAPPORT_HEALTH_ADDR")]
        addr: String,
        /// Service name to check; empty checks the whole server.
        #[arg(long, default_value = "")]
        service: String,
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rapportctl: failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo => rapportctl::demo::run().await,
            Command::Import(args) => import::run(args).await,
            Command::Health {
                addr,
                service,
                timeout,
            } => health(&addr, &service, timeout).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rapportctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn health(addr: &str, service: &str, timeout: Duration) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let channel = tonic::transport::Endpoint::from_shared(addr.to_owned())?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await?;
    let reply = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner();
    let status = ServingStatus::try_from(reply.status).unwrap_or(ServingStatus::Unknown);
    println!("{addr} {service:?}: {}", status.as_str_name());
    anyhow::ensure!(status == ServingStatus::Serving, "not serving");
    Ok(())
}
