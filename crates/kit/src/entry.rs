//! The entry point shared by every service binary, so `main.rs` stays a few
//! lines and every service starts, logs and fails the same way.

use std::future::Future;
use std::process::ExitCode;

/// A Rapport service as a library: build binds the listener and connects
/// dependencies; run serves until the shutdown future resolves.
pub trait Service: Sized {
    /// The service's whole configuration, parsed from flags and `RAPPORT_*`
    /// environment variables.
    type Config: clap::Parser + Send;

    /// Name used in logs, e.g. `routing`.
    const NAME: &'static str;

    /// Validates the config, binds the listener and prepares dependencies.
    fn build(config: Self::Config) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Serves until `shutdown` resolves, then drains.
    fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Parses the config (exiting with clap's message on bad flags), sets up
/// logging, builds and runs the service until SIGTERM/SIGINT. Startup
/// failures are printed with their cause chain and exit non-zero.
pub fn main<S: Service>() -> ExitCode {
    let config = <S::Config as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rapport-{}: failed to start the runtime: {e}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // The OTLP exporter needs the runtime, so telemetry starts inside it
        // and is flushed after the server has drained.
        let telemetry = rapport_telemetry::init(S::NAME);
        let result = match S::build(config).await {
            Ok(app) => app.run(crate::shutdown::signal()).await,
            Err(e) => Err(e),
        };
        telemetry.shutdown().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            eprintln!("rapport-{}: {e:#}", S::NAME);
            ExitCode::FAILURE
        }
    }
}
