//! Starts a whole mesh locally: a private redis-server and the four real
//! service binaries as separate processes, wired together with the same
//! `RAPPORT_*` variables the Helm chart sets. Used by `rapportctl demo` and
//! the end-to-end tests.
//!
//! The binaries must be built first (`make demo` and `make test` run
//! `cargo build --bins`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rapport_proto::classification_service_client::ClassificationServiceClient;
use rapport_proto::outreach_service_client::OutreachServiceClient;
use rapport_proto::profile_service_client::ProfileServiceClient;
use rapport_proto::routing_service_client::RoutingServiceClient;
use rapport_testkit::process::{Child, workspace_binary};
use rapport_testkit::redis::TestRedis;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// One running service process.
pub struct Service {
    pub name: &'static str,
    pub addr: String,
    /// The admin HTTP address (/metrics, /healthz, /readyz).
    pub admin: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Service {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Prometheus text of the service's admin `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(&self.admin)
            .await
            .with_context(|| format!("failed to connect to {}", self.admin))?;
        stream
            .write_all(
                format!(
                    "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.admin
                )
                .as_bytes(),
            )
            .await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        Ok(body)
    }

    /// The service's log so far (JSON lines).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// How to start the mesh.
#[derive(Debug, Clone)]
pub struct MeshOptions {
    /// How many routing replicas to run.
    pub routing_replicas: usize,
    /// Where logs and the SQLite file go; a temporary directory when None.
    pub workdir: Option<PathBuf>,
    /// Extra environment for every service (e.g. OTEL_* settings).
    pub env: Vec<(String, String)>,
}

impl Default for MeshOptions {
    fn default() -> Self {
        Self {
            routing_replicas: 1,
            workdir: None,
            env: Vec::new(),
        }
    }
}

/// The mesh's working directory: kept (the demo's) or temporary (tests').
pub enum Workdir {
    Kept(PathBuf),
    Temp(tempfile::TempDir),
}

impl Workdir {
    pub fn path(&self) -> &Path {
        match self {
            Self::Kept(p) => p,
            Self::Temp(t) => t.path(),
        }
    }
}

/// The whole mesh: Redis, profile (SQLite), classification, routing
/// replica(s) and outreach.
pub struct Mesh {
    pub redis: TestRedis,
    pub dir: Workdir,
    pub profile: Service,
    pub classification: Service,
    pub routing: Vec<Service>,
    pub outreach: Service,
}

impl Mesh {
    /// Starts everything and waits until every service reports SERVING.
    pub async fn start(options: MeshOptions) -> anyhow::Result<Self> {
        let redis = TestRedis::start()?;
        let dir = match &options.workdir {
            Some(path) => {
                std::fs::create_dir_all(path)
                    .with_context(|| format!("failed to create {}", path.display()))?;
                // Children run inside the directory, so paths handed to them
                // must not be relative to ours.
                let path = path
                    .canonicalize()
                    .with_context(|| format!("failed to resolve {}", path.display()))?;
                Workdir::Kept(path)
            }
            None => {
                Workdir::Temp(tempfile::tempdir().context("failed to create the mesh temp dir")?)
            }
        };
        let db = format!("sqlite://{}", dir.path().join("profile.db").display());
        // Every service gets the extra variables, then its own.
        let with = |own: &[(&str, &str)]| -> Vec<(String, String)> {
            options
                .env
                .iter()
                .cloned()
                .chain(own.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
                .collect()
        };
        // Each service is started and waited for in turn, so a port taken
        // between choosing it and binding it is retried on a fresh one.
        let profile = spawn_healthy(
            dir.path(),
            "profile",
            &with(&[("RAPPORT_DATABASE_URL", db.as_str())]),
        )
        .await?;
        let classification = spawn_healthy(dir.path(), "classification", &with(&[])).await?;
        let (profile_url, classification_url) = (profile.url(), classification.url());
        // Routing hands accepted callbacks to outreach and outreach reserves
        // agents through routing, so outreach's address is chosen before
        // routing starts. If another process takes it before outreach binds
        // it, routing and outreach are started again on a fresh one.
        let mut attempt = 0;
        let (routing, outreach) = loop {
            attempt += 1;
            let outreach_addr = format!("127.0.0.1:{}", rapport_testkit::free_port());
            let outreach_url = format!("http://{outreach_addr}");
            let mut routing = Vec::new();
            for _ in 0..options.routing_replicas.max(1) {
                routing.push(
                    spawn_healthy(
                        dir.path(),
                        "routing",
                        &with(&[
                            ("RAPPORT_REDIS_URL", redis.url()),
                            ("RAPPORT_PROFILE_URL", profile_url.as_str()),
                            ("RAPPORT_CLASSIFICATION_URL", classification_url.as_str()),
                            ("RAPPORT_OUTREACH_URL", outreach_url.as_str()),
                        ]),
                    )
                    .await?,
                );
            }
            let routing_url = routing.first().map(Service::url).unwrap_or_default();
            let mut outreach = spawn_at(
                dir.path(),
                "outreach",
                &with(&[
                    ("RAPPORT_REDIS_URL", redis.url()),
                    ("RAPPORT_PROFILE_URL", profile_url.as_str()),
                    ("RAPPORT_ROUTING_URL", routing_url.as_str()),
                ]),
                Some(outreach_addr),
            )?;
            match wait_serving(&mut outreach, Duration::from_secs(30)).await {
                Ok(()) => break (routing, outreach),
                Err(_) if attempt < 3 && outreach.log_text().contains("Address already in use") => {
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        let mesh = Self {
            redis,
            dir,
            profile,
            classification,
            routing,
            outreach,
        };
        Ok(mesh)
    }

    /// Stops every service with SIGTERM (graceful drain) and waits for them
    /// to exit; any still running after `grace` are killed.
    pub fn shutdown(&mut self, grace: Duration) {
        let all = self.services_mut();
        for service in &all {
            let _ = service.child.signal(nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        for service in all {
            while Instant::now() < deadline {
                match service.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    fn services_mut(&mut self) -> Vec<&mut Service> {
        let mut all: Vec<&mut Service> = vec![&mut self.profile, &mut self.classification];
        all.extend(self.routing.iter_mut());
        all.push(&mut self.outreach);
        all
    }

    /// Every service process.
    pub fn services(&self) -> Vec<&Service> {
        let mut all = vec![&self.profile, &self.classification];
        all.extend(self.routing.iter());
        all.push(&self.outreach);
        all
    }

    pub async fn profile_client(&self) -> anyhow::Result<ProfileServiceClient<Channel>> {
        Ok(ProfileServiceClient::new(
            connect(&self.profile.url()).await?,
        ))
    }

    pub async fn classification_client(
        &self,
    ) -> anyhow::Result<ClassificationServiceClient<Channel>> {
        Ok(ClassificationServiceClient::new(
            connect(&self.classification.url()).await?,
        ))
    }

    /// A client of routing replica `i`.
    pub async fn routing_client(&self, i: usize) -> anyhow::Result<RoutingServiceClient<Channel>> {
        Ok(RoutingServiceClient::new(
            connect(&self.routing[i].url()).await?,
        ))
    }

    pub async fn outreach_client(&self) -> anyhow::Result<OutreachServiceClient<Channel>> {
        Ok(OutreachServiceClient::new(
            connect(&self.outreach.url()).await?,
        ))
    }
}

/// Connects a channel, retrying briefly while the server starts.
pub async fn connect(url: &str) -> anyhow::Result<Channel> {
    let endpoint = Channel::from_shared(url.to_owned())?.timeout(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) if Instant::now() > deadline => {
                return Err(e).context(format!("failed to connect to {url}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Spawns `rapport-<name>` on a free loopback port, logging to a file.
pub fn spawn<K: AsRef<str>, V: AsRef<str>>(
    dir: &Path,
    name: &'static str,
    env: &[(K, V)],
) -> anyhow::Result<Service> {
    spawn_at(dir, name, env, None)
}

/// As [`spawn`], on the given gRPC address (`host:port`) when one is given.
pub fn spawn_at<K: AsRef<str>, V: AsRef<str>>(
    dir: &Path,
    name: &'static str,
    env: &[(K, V)],
    addr: Option<String>,
) -> anyhow::Result<Service> {
    let bin = workspace_binary(&format!("rapport-{name}"))?;
    let addr = addr.unwrap_or_else(|| format!("127.0.0.1:{}", rapport_testkit::free_port()));
    let admin = format!("127.0.0.1:{}", rapport_testkit::free_port());
    let log = dir.join(format!("{name}-{}.log", addr.replace([':', '.'], "_")));
    let file = std::fs::File::create(&log).context("failed to create a log file")?;
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("RAPPORT_LISTEN", &addr)
        .env("RAPPORT_ADMIN_LISTEN", &admin)
        // A local mesh on loopback: plaintext and no auth, chosen explicitly
        // as the services require (callers may override through `env`).
        .env("RAPPORT_TLS_MODE", "plaintext")
        .env("RAPPORT_AUTH_MODE", "none")
        .env("RAPPORT_SHUTDOWN_GRACE", "3s")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file);
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    cmd.envs(vars);
    let child = Child::spawn(&format!("rapport-{name}"), &mut cmd)?;
    Ok(Service {
        name,
        addr,
        admin,
        child,
        log,
    })
}

/// Spawns a service and waits until it is healthy. Free ports are chosen
/// before the child binds them, so another process can take one in
/// between; when the child exits because its address is in use, it is
/// started again on fresh ports.
pub async fn spawn_healthy<K: AsRef<str>, V: AsRef<str>>(
    dir: &Path,
    name: &'static str,
    env: &[(K, V)],
) -> anyhow::Result<Service> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut service = spawn(dir, name, env)?;
        match wait_serving(&mut service, Duration::from_secs(30)).await {
            Ok(()) => return Ok(service),
            Err(e) if attempt < 3 && service.log_text().contains("Address already in use") => {
                let _ = e;
                continue;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits until the service reports SERVING on grpc.health.v1; fails at
/// once, with the service's log, if the process exits first.
pub async fn wait_serving(service: &mut Service, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = service.child.try_wait()? {
            bail!(
                "rapport-{} exited ({status}) before becoming healthy; its log:\n{}",
                service.name,
                service.log_text()
            );
        }
        if let Ok(channel) = Channel::from_shared(service.url())?.connect().await {
            let mut health = HealthClient::new(channel);
            if let Ok(reply) = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                && reply.into_inner().status == ServingStatus::Serving as i32
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "rapport-{} did not become healthy within {timeout:?}; its log:\n{}",
                service.name,
                service.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
