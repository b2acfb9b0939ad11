//! The entry point shared by every service binary, so `main.rs` stays a few
//! lines and every service starts, logs and fails the same way.

use std::future::Future;
use std::process::ExitCode;

/// A Rapport service as a library: build binds the listener and connects
/// dependencies; run serves until the shutdown future resolves.
pub trait Service: Sized {
    /// The service's whole configuration, parsed from flags and `RAPPORT_*`
    /// environment variables; the settings every server shares are its
    /// flattened [`ServerArgs`](crate::config::ServerArgs).
    type Config: clap::Parser + Send + AsRef<crate::config::ServerArgs>;

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
    let runtime = match runtime(config.as_ref()) {
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
        tracing::info!(
            workers = tokio::runtime::Handle::current().metrics().num_workers(),
            "runtime started"
        );
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

/// The multi-threaded runtime a service runs on, with `--worker-threads`
/// workers when set and tokio's default (one per usable CPU) otherwise.
fn runtime(args: &crate::config::ServerArgs) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.worker_threads {
        builder.worker_threads(n.get());
    }
    builder.enable_all().build()
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::runtime;
    use crate::config::ServerArgs;

    #[test]
    fn the_runtime_has_the_configured_workers() {
        let mut args = ServerArgs::ephemeral();
        for n in [1, 3] {
            args.worker_threads = NonZeroUsize::new(n);
            let rt = runtime(&args).expect("runtime");
            assert_eq!(rt.metrics().num_workers(), n);
        }
        // Unset, tokio picks one worker per CPU the process may use (and
        // honours TOKIO_WORKER_THREADS, which tests do not set).
        args.worker_threads = None;
        let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(
            runtime(&args).expect("runtime").metrics().num_workers(),
            cpus
        );
    }
}
