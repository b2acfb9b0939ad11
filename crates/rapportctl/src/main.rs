//! `rapportctl`: operator CLI.

#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use rapportctl::import;

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
        /// CA certificate (PEM) to verify the service with; enables TLS.
        #[arg(long = "tls-ca", env = "RAPPORT_TLS_CA")]
        tls_ca: Option<std::path::PathBuf>,
        /// Client certificate (PEM) for mTLS.
        #[arg(long = "tls-cert", env = "RAPPORT_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// Client key (PEM) for mTLS.
        #[arg(long = "tls-key", env = "RAPPORT_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
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
                tls_ca,
                tls_cert,
                tls_key,
            } => {
                let tls = match tls_ca {
                    Some(ca) => Some(client_tls(&ca, tls_cert.zip(tls_key))?),
                    None => None,
                };
                health(&addr, &service, timeout, tls).await
            }
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

/// TLS settings for probing a service that requires mTLS.
fn client_tls(
    ca: &std::path::Path,
    identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
    use anyhow::Context as _;
    let read = |p: &std::path::Path| {
        std::fs::read(p).with_context(|| format!("failed to read {}", p.display()))
    };
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
    if let Some((cert, key)) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            read(&cert)?,
            read(&key)?,
        ));
    }
    Ok(tls)
}

async fn health(
    addr: &str,
    service: &str,
    timeout: Duration,
    tls: Option<tonic::transport::ClientTlsConfig>,
) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    // With TLS the same address is reached over https.
    let addr = match (&tls, addr.strip_prefix("http://")) {
        (Some(_), Some(rest)) => format!("https://{rest}"),
        _ => addr.to_owned(),
    };
    let addr = addr.as_str();
    let mut endpoint = tonic::transport::Endpoint::from_shared(addr.to_owned())?
        .connect_timeout(timeout)
        .timeout(timeout);
    if let Some(tls) = tls {
        let _ = rustls::crypto::ring::default_provider().install_default();
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint.connect().await?;
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
