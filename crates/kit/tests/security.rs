//! mTLS and per-RPC authorization against real servers: a client without a
//! certificate, with one from another CA, or in plaintext is refused; every
//! RPC × every role is allowed or denied exactly as the policy says.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use rapport_kit::authz::{POLICY, allowed};
use rapport_kit::config::ServerArgs;
use rapport_kit::security::{AuthMode, Role, Security, TlsMode};
use rapport_kit::server::GrpcServer;
use rapport_proto as pb;
use rapport_proto::classification_service_client::ClassificationServiceClient;
use rapport_proto::classification_service_server::{
    ClassificationService, ClassificationServiceServer,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};
use tonic::{Request, Response, Status};

struct Echo;

#[tonic::async_trait]
impl ClassificationService for Echo {
    async fn classify(
        &self,
        _: Request<pb::ClassifyRequest>,
    ) -> Result<Response<pb::Classification>, Status> {
        Ok(Response::new(pb::Classification::default()))
    }
    type ClassifyStreamStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::Classification, Status>> + Send>>;
    async fn classify_stream(
        &self,
        _: Request<tonic::Streaming<pb::ClassifyStreamRequest>>,
    ) -> Result<Response<Self::ClassifyStreamStream>, Status> {
        Err(Status::unimplemented("test double"))
    }
}

/// A CA and a leaf certificate it signed, written as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn pki(dir: &Path, name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    let write = |suffix: &str, pem: String| {
        let path = dir.join(format!("{name}-{suffix}.pem"));
        std::fs::write(&path, pem).expect("write pem");
        path
    };
    Pki {
        ca: write("ca", ca_cert.pem()),
        cert: write("cert", leaf.pem()),
        key: write("key", leaf_key.serialize_pem()),
    }
}

fn mtls_args(p: &Pki) -> ServerArgs {
    let mut args = ServerArgs::ephemeral();
    args.tls_mode = TlsMode::Mtls;
    args.tls_cert = Some(p.cert.clone());
    args.tls_key = Some(p.key.clone());
    args.tls_ca = Some(p.ca.clone());
    args
}

async fn start(args: ServerArgs) -> (String, tokio::sync::oneshot::Sender<()>) {
    let server = GrpcServer::bind(&args, 0)
        .await
        .expect("binds")
        .add_service(ClassificationServiceServer::new(Echo));
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    (format!("127.0.0.1:{}", addr.port()), stop)
}

async fn classify_with(tls: Option<ClientTlsConfig>, url: String) -> Result<(), String> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| e.to_string())?
        .timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    ClassificationServiceClient::new(channel)
        .classify(pb::ClassifyRequest::default())
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_refuses_clients_without_a_certificate_from_our_ca() {
    rapport_kit::security::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = pki(dir.path(), "ours");
    let theirs = pki(dir.path(), "theirs");
    let (addr, _stop) = start(mtls_args(&ours)).await;
    let ca = || Certificate::from_pem(std::fs::read(&ours.ca).expect("ca"));
    let identity = |p: &Pki| {
        Identity::from_pem(
            std::fs::read(&p.cert).expect("cert"),
            std::fs::read(&p.key).expect("key"),
        )
    };

    // The kit's own client, configured like a service, gets through.
    let security = Security::from_args(&mtls_args(&ours)).expect("security");
    let channel = rapport_kit::client::channel(
        "test",
        &format!("http://{addr}"),
        Duration::from_secs(5),
        &security,
    )
    .expect("channel");
    ClassificationServiceClient::new(channel)
        .classify(pb::ClassifyRequest::default())
        .await
        .expect("a client with our certificate is served");

    let no_cert = classify_with(
        Some(ClientTlsConfig::new().ca_certificate(ca())),
        format!("https://{addr}"),
    )
    .await;
    assert!(no_cert.is_err(), "client without a certificate was served");

    let foreign = classify_with(
        Some(
            ClientTlsConfig::new()
                .ca_certificate(ca())
                .identity(identity(&theirs)),
        ),
        format!("https://{addr}"),
    )
    .await;
    assert!(
        foreign.is_err(),
        "client with another CA's certificate was served"
    );

    let plaintext = classify_with(None, format!("http://{addr}")).await;
    assert!(plaintext.is_err(), "plaintext client was served");
}

#[test]
fn mtls_without_certificates_fails_with_a_clear_message() {
    let mut args = ServerArgs::ephemeral();
    args.tls_mode = TlsMode::Mtls;
    let err = Security::from_args(&args).err().expect("refused");
    assert!(
        err.to_string().contains("RAPPORT_TLS_MODE=plaintext"),
        "{err}"
    );
    let mut args = ServerArgs::ephemeral();
    args.auth_mode = AuthMode::Tokens;
    let err = Security::from_args(&args).err().expect("refused");
    assert!(err.to_string().contains("RAPPORT_AUTH_MODE=none"), "{err}");
}

fn token(role: Role) -> String {
    format!("{role:?}-token-0123456789abcdefghij").to_lowercase()
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Ivr => "ivr",
        Role::Crm => "crm",
        Role::AgentDesktop => "agent-desktop",
        Role::Dialer => "dialer",
        Role::Mesh => "mesh",
        Role::Admin => "admin",
    }
}

/// Calls `path` with an empty unary message; the auth layer decides before
/// any handler runs, and unhosted services answer UNIMPLEMENTED.
async fn raw_call(
    channel: tonic::transport::Channel,
    path: &'static str,
    bearer: Option<&str>,
) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    if grpc.ready().await.is_err() {
        return tonic::Code::Unavailable;
    }
    let mut request = Request::new(());
    if let Some(token) = bearer {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc
        .unary(request, http::uri::PathAndQuery::from_static(path), codec)
        .await
    {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_times_every_role_is_allowed_or_denied_by_the_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = String::new();
    for role in Role::ALL {
        file.push_str(&format!(
            "[tokens.{name}]\ntoken = \"{token}\"\nrole = \"{name}\"\n{agent}\n",
            name = role_name(role),
            token = token(role),
            agent = if role == Role::AgentDesktop {
                "agent_id = \"lin\""
            } else {
                ""
            },
        ));
    }
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, file).expect("write tokens");
    let mut args = ServerArgs::ephemeral();
    args.auth_mode = AuthMode::Tokens;
    args.auth_tokens = Some(tokens);
    let (addr, _stop) = start(args).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connects");

    let mut checked = 0;
    for (path, _) in POLICY {
        for role in Role::ALL {
            let code = raw_call(channel.clone(), path, Some(&token(role))).await;
            if allowed(path, role) {
                assert!(
                    !matches!(
                        code,
                        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
                    ),
                    "{role:?} must be allowed to call {path}, got {code:?}"
                );
            } else {
                assert_eq!(code, tonic::Code::PermissionDenied, "{role:?} → {path}");
            }
            checked += 1;
        }
        assert_eq!(
            raw_call(channel.clone(), path, None).await,
            tonic::Code::Unauthenticated,
            "no token → {path}"
        );
        assert_eq!(
            raw_call(channel.clone(), path, Some("not-a-known-token-0123456789")).await,
            tonic::Code::Unauthenticated,
            "bad token → {path}"
        );
    }
    assert_eq!(checked, POLICY.len() * Role::ALL.len());

    // Health stays open to probes without a token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health needs no token");
}
