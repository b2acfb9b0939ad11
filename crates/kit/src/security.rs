//! Transport security and caller identity for every service.
//!
//! - **mTLS** (rustls, ring): servers present a certificate and require
//!   client certificates signed by the configured CA; clients present
//!   theirs. Plaintext is allowed only when configured explicitly
//!   (`RAPPORT_TLS_MODE=plaintext`), for local runs.
//! - **Bearer tokens → roles**: a tokens file (a Kubernetes Secret) maps
//!   each token to a role (`ivr`, `crm`, `agent-desktop`, `dialer`, `mesh`,
//!   `admin`) and, for agent desktops, the agent it acts for. Tokens are
//!   compared in constant time. Services call each other with their own
//!   `mesh` token. Disabling auth also has to be explicit
//!   (`RAPPORT_AUTH_MODE=none`).
//!
//! Per-RPC authorization is in [`crate::authz`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use subtle::ConstantTimeEq as _;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// How connections are protected.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS: local runs only.
    Plaintext,
    /// Mutual TLS with certificates from files.
    Mtls,
}

/// How callers are authenticated.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Everyone may call everything: local runs only.
    None,
    /// Bearer tokens from a file, mapped to roles.
    Tokens,
}

/// A caller role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Ivr,
    Crm,
    AgentDesktop,
    Dialer,
    Mesh,
    Admin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Ivr,
        Role::Crm,
        Role::AgentDesktop,
        Role::Dialer,
        Role::Mesh,
        Role::Admin,
    ];
}

/// Who is calling, as established by the auth layer and placed in the
/// request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name in the tokens file (for logs; never the token).
    pub name: String,
    pub role: Role,
    /// For agent desktops: the only agent they may act for.
    pub agent_id: Option<String>,
}

impl Caller {
    /// Whether this caller may act for `agent_id`: agent desktops only for
    /// their own agent; other roles allowed by the RPC's policy act for any.
    pub fn may_act_for(&self, agent_id: &str) -> bool {
        match self.role {
            Role::AgentDesktop => self.agent_id.as_deref() == Some(agent_id),
            _ => true,
        }
    }
}

/// The authenticated caller of a request, if auth is on.
pub fn caller<T>(request: &tonic::Request<T>) -> Option<Caller> {
    request.extensions().get::<Caller>().cloned()
}

/// Refuses a request whose caller is an agent desktop acting for another
/// agent. Without auth (no caller) everything passes.
pub fn require_agent(caller: Option<&Caller>, agent_id: &str) -> Result<(), tonic::Status> {
    match caller {
        Some(caller) if !caller.may_act_for(agent_id) => Err(tonic::Status::permission_denied(
            "an agent desktop may only act for its own agent",
        )),
        _ => Ok(()),
    }
}

/// A security configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(
        "TLS mode mtls needs --tls-cert, --tls-key and --tls-ca (RAPPORT_TLS_CERT, RAPPORT_TLS_KEY, RAPPORT_TLS_CA); for local runs set RAPPORT_TLS_MODE=plaintext explicitly"
    )]
    MissingTlsFiles,
    #[error(
        "auth mode tokens needs --auth-tokens (RAPPORT_AUTH_TOKENS); for local runs set RAPPORT_AUTH_MODE=none explicitly"
    )]
    MissingTokens,
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid tokens file {path}: {problem}")]
    Tokens { path: PathBuf, problem: String },
}

fn read(path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Read {
        path: path.to_owned(),
        source,
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: std::collections::BTreeMap<String, TokenEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    token: String,
    role: Role,
    #[serde(default)]
    agent_id: Option<String>,
}

/// The known tokens. Lookup compares against every token in constant time
/// per comparison and does not stop at the first match, so timing does not
/// reveal which prefix matched or where in the table it sits.
#[derive(Clone)]
pub struct Tokens {
    entries: Arc<Vec<(Vec<u8>, Caller)>>,
}

/// Shortest token accepted: guessing must be hopeless.
const MIN_TOKEN_LEN: usize = 24;

impl Tokens {
    /// Parses a tokens file:
    ///
    /// ```toml
    /// [tokens.ivr-main]
    /// token = "…"
    /// role = "ivr"
    ///
    /// [tokens.desk-lin]
    /// token = "…"
    /// role = "agent-desktop"
    /// agent_id = "lin"
    /// ```
    pub fn parse(text: &str, path: &Path) -> Result<Self, SecurityError> {
        let invalid = |problem: String| SecurityError::Tokens {
            path: path.to_owned(),
            problem,
        };
        let file: TokensFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut entries = Vec::new();
        for (name, entry) in file.tokens {
            if entry.token.len() < MIN_TOKEN_LEN {
                return Err(invalid(format!(
                    "tokens.{name}.token must be at least {MIN_TOKEN_LEN} characters"
                )));
            }
            match (entry.role, &entry.agent_id) {
                (Role::AgentDesktop, None) => {
                    return Err(invalid(format!(
                        "tokens.{name}: an agent-desktop token needs agent_id"
                    )));
                }
                (Role::AgentDesktop, Some(id)) => {
                    crate::validate::id("agent_id", id)
                        .map_err(|e| invalid(format!("tokens.{name}.{e}")))?;
                }
                (_, Some(_)) => {
                    return Err(invalid(format!(
                        "tokens.{name}: only agent-desktop tokens carry agent_id"
                    )));
                }
                _ => {}
            }
            entries.push((
                entry.token.into_bytes(),
                Caller {
                    name,
                    role: entry.role,
                    agent_id: entry.agent_id,
                },
            ));
        }
        Ok(Self {
            entries: Arc::new(entries),
        })
    }

    /// Loads a tokens file.
    pub fn load(path: &Path) -> Result<Self, SecurityError> {
        let bytes = read(path)?;
        let text = String::from_utf8(bytes).map_err(|_| SecurityError::Tokens {
            path: path.to_owned(),
            problem: "not UTF-8".into(),
        })?;
        Self::parse(&text, path)
    }

    /// The caller a presented token belongs to.
    pub fn identify(&self, presented: &[u8]) -> Option<Caller> {
        let mut found = None;
        for (token, caller) in self.entries.iter() {
            if bool::from(token.as_slice().ct_eq(presented)) {
                found = Some(caller.clone());
            }
        }
        found
    }
}

/// The security settings of one process, built from its [`ServerArgs`].
///
/// [`ServerArgs`]: crate::config::ServerArgs
#[derive(Clone)]
pub struct Security {
    server_tls: Option<ServerTlsConfig>,
    client_tls: Option<ClientTlsConfig>,
    tokens: Option<Tokens>,
    outgoing: Option<http::HeaderValue>,
}

impl Security {
    /// Reads certificates and tokens as configured; refuses incomplete
    /// configurations with a message that says what to set.
    pub fn from_args(args: &crate::config::ServerArgs) -> Result<Self, SecurityError> {
        install_crypto_provider();
        let (server_tls, client_tls) = match args.tls_mode {
            TlsMode::Plaintext => (None, None),
            TlsMode::Mtls => {
                let (Some(cert), Some(key), Some(ca)) =
                    (&args.tls_cert, &args.tls_key, &args.tls_ca)
                else {
                    return Err(SecurityError::MissingTlsFiles);
                };
                let identity = Identity::from_pem(read(cert)?, read(key)?);
                let ca = Certificate::from_pem(read(ca)?);
                (
                    Some(
                        ServerTlsConfig::new()
                            .identity(identity.clone())
                            .client_ca_root(ca.clone()),
                    ),
                    Some(ClientTlsConfig::new().identity(identity).ca_certificate(ca)),
                )
            }
        };
        let (tokens, outgoing) = match args.auth_mode {
            AuthMode::None => (None, None),
            AuthMode::Tokens => {
                let path = args
                    .auth_tokens
                    .as_ref()
                    .ok_or(SecurityError::MissingTokens)?;
                let tokens = Tokens::load(path)?;
                let outgoing = match &args.service_token {
                    Some(path) => {
                        let token = String::from_utf8_lossy(&read(path)?).trim().to_owned();
                        let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
                            .map_err(|_| SecurityError::Tokens {
                                path: path.clone(),
                                problem: "the service token is not a valid header value".into(),
                            })?;
                        Some(value)
                    }
                    None => None,
                };
                (Some(tokens), outgoing)
            }
        };
        Ok(Self {
            server_tls,
            client_tls,
            tokens,
            outgoing,
        })
    }

    /// No TLS, no auth: in-process tests.
    pub fn insecure() -> Self {
        Self {
            server_tls: None,
            client_tls: None,
            tokens: None,
            outgoing: None,
        }
    }

    pub(crate) fn server_tls(&self) -> Option<ServerTlsConfig> {
        self.server_tls.clone()
    }

    pub(crate) fn client_tls(&self) -> Option<ClientTlsConfig> {
        self.client_tls.clone()
    }

    pub(crate) fn tokens(&self) -> Option<Tokens> {
        self.tokens.clone()
    }

    /// The `authorization` value this service sends on its own calls.
    pub(crate) fn outgoing_token(&self) -> Option<http::HeaderValue> {
        self.outgoing.clone()
    }
}

/// Selects ring as the process's rustls provider, once. Only ring is
/// compiled in; being explicit keeps a future dependency from silently
/// making the choice ambiguous.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[tokens.ivr-main]
token = "ivr-0123456789abcdefghijklmnop"
role = "ivr"

[tokens.desk-lin]
token = "desk-0123456789abcdefghijklmnop"
role = "agent-desktop"
agent_id = "lin"
"#;

    #[test]
    fn tokens_map_to_roles() {
        let tokens = Tokens::parse(FILE, Path::new("t.toml")).expect("valid");
        let ivr = tokens
            .identify(b"ivr-0123456789abcdefghijklmnop")
            .expect("known");
        assert_eq!(ivr.role, Role::Ivr);
        assert_eq!(ivr.name, "ivr-main");
        let desk = tokens
            .identify(b"desk-0123456789abcdefghijklmnop")
            .expect("known");
        assert!(desk.may_act_for("lin"));
        assert!(!desk.may_act_for("wang"));
        assert!(ivr.may_act_for("wang"));
        assert!(
            tokens.identify(b"ivr-0123456789abcdefghijklmno").is_none(),
            "prefix"
        );
        assert!(tokens.identify(b"").is_none());
    }

    #[test]
    fn bad_token_files_are_refused_with_the_entry_named() {
        let short = FILE.replace("ivr-0123456789abcdefghijklmnop", "short");
        let err = Tokens::parse(&short, Path::new("t.toml"))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("tokens.ivr-main.token"), "{err}");
        let no_agent = FILE.replace("agent_id = \"lin\"\n", "");
        assert!(Tokens::parse(&no_agent, Path::new("t.toml")).is_err());
        let unknown_role = FILE.replace("role = \"ivr\"", "role = \"root\"");
        assert!(Tokens::parse(&unknown_role, Path::new("t.toml")).is_err());
        let unknown_key = FILE.replace("role = \"ivr\"", "role = \"ivr\"\nscope = 1");
        assert!(Tokens::parse(&unknown_key, Path::new("t.toml")).is_err());
    }
}
