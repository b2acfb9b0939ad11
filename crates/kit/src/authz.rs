//! Per-RPC authorization: which roles may call which method, enforced by a
//! tower layer on every server. The table is the single place the rules
//! live; a test checks it covers every RPC in the contracts, so a new RPC
//! is never open by accident. Unknown methods are denied.
//!
//! Highlights: the IVR routes calls but cannot read profiles; agent
//! desktops act on agent RPCs (and only for their own agent, checked by the
//! handler with [`crate::security::require_agent`]); dialers only see dial
//! requests; `mesh` is service-to-service; `admin` may call everything.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;

use crate::security::{Caller, Role, Tokens};

use Role::{AgentDesktop as Desk, Crm, Dialer, Ivr, Mesh};

/// `(full method path, roles allowed besides admin)`.
pub const POLICY: &[(&str, &[Role])] = &[
    // Routing: the IVR side.
    ("/rapport.v1.RoutingService/RouteCall", &[Ivr]),
    ("/rapport.v1.RoutingService/GetCall", &[Ivr, Desk]),
    ("/rapport.v1.RoutingService/WatchCall", &[Ivr]),
    ("/rapport.v1.RoutingService/AbandonCall", &[Ivr]),
    ("/rapport.v1.RoutingService/AcceptCallback", &[Ivr]),
    ("/rapport.v1.RoutingService/CompleteCall", &[Ivr, Desk]),
    // Routing: the agent desktop side.
    ("/rapport.v1.RoutingService/LoginAgent", &[Desk]),
    ("/rapport.v1.RoutingService/SetAgentStatus", &[Desk]),
    ("/rapport.v1.RoutingService/GetAgent", &[Desk]),
    ("/rapport.v1.RoutingService/Heartbeat", &[Desk]),
    ("/rapport.v1.RoutingService/WatchAgent", &[Desk]),
    ("/rapport.v1.RoutingService/AcceptOffer", &[Desk]),
    ("/rapport.v1.RoutingService/RejectOffer", &[Desk]),
    // Routing: supervisors and the scheduler.
    ("/rapport.v1.RoutingService/QueueStats", &[Mesh]),
    ("/rapport.v1.RoutingService/RouteOutbound", &[Mesh]),
    ("/rapport.v1.RoutingService/ListFollowUps", &[Mesh, Crm]),
    // Profile: the hot path is for the mesh; the record is CRM's.
    ("/rapport.v1.ProfileService/GetProfile", &[Crm, Mesh]),
    ("/rapport.v1.ProfileService/LookupByPhone", &[Crm, Mesh]),
    ("/rapport.v1.ProfileService/UpsertCustomer", &[Crm]),
    ("/rapport.v1.ProfileService/CreateCustomer", &[Crm]),
    ("/rapport.v1.ProfileService/UpdateCustomer", &[Crm]),
    ("/rapport.v1.ProfileService/AddTags", &[Crm, Mesh]),
    ("/rapport.v1.ProfileService/RemoveTag", &[Crm]),
    ("/rapport.v1.ProfileService/RecordContact", &[Crm, Mesh]),
    ("/rapport.v1.ProfileService/ListContacts", &[Crm]),
    ("/rapport.v1.ProfileService/AddCareNote", &[Crm, Mesh]),
    ("/rapport.v1.ProfileService/SetPreferences", &[Crm]),
    ("/rapport.v1.ProfileService/SetConsent", &[Crm, Mesh]),
    ("/rapport.v1.ProfileService/RecordEvent", &[Crm]),
    ("/rapport.v1.ProfileService/RecordCampaignExposure", &[Crm]),
    ("/rapport.v1.ProfileService/SearchCustomers", &[Crm]),
    ("/rapport.v1.ProfileService/ExportProfiles", &[Mesh]),
    ("/rapport.v1.ProfileService/WatchChanges", &[Mesh]),
    ("/rapport.v1.ProfileService/EraseCustomer", &[Crm]),
    ("/rapport.v1.ProfileService/ExportCustomer", &[Crm]),
    // Classification is called by the other services.
    ("/rapport.v1.ClassificationService/Classify", &[Mesh]),
    ("/rapport.v1.ClassificationService/ClassifyStream", &[Mesh]),
    // Outreach.
    ("/rapport.v1.OutreachService/ScheduleCallback", &[Mesh]),
    ("/rapport.v1.OutreachService/ScheduleCare", &[Crm]),
    ("/rapport.v1.OutreachService/CancelCare", &[Crm]),
    ("/rapport.v1.OutreachService/GetCarePlan", &[Crm]),
    ("/rapport.v1.OutreachService/ListDue", &[Crm]),
    ("/rapport.v1.OutreachService/WatchOutbound", &[Dialer]),
    ("/rapport.v1.OutreachService/AckDial", &[Dialer]),
    ("/rapport.v1.OutreachService/RecordOutcome", &[Dialer, Desk]),
    ("/rapport.v1.OutreachService/GetForecast", &[Crm]),
    ("/rapport.v1.OutreachService/RebuildDueIndex", &[]),
];

/// Whether `role` may call the method at `path`.
pub fn allowed(path: &str, role: Role) -> bool {
    if role == Role::Admin {
        return POLICY.iter().any(|(p, _)| *p == path);
    }
    POLICY
        .iter()
        .find(|(p, _)| *p == path)
        .is_some_and(|(_, roles)| roles.contains(&role))
}

fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

/// Authenticates the bearer token and authorizes the method; the
/// [`Caller`] is placed in the request's extensions for handlers.
#[derive(Clone)]
pub struct AuthLayer {
    tokens: Tokens,
}

impl AuthLayer {
    pub fn new(tokens: Tokens) -> Self {
        Self { tokens }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    tokens: Tokens,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        if is_open(&path) {
            return Box::pin(self.inner.call(request));
        }
        let presented = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        let refusal = match presented.and_then(|t| self.tokens.identify(t)) {
            None => Some(tonic::Status::unauthenticated(
                "missing or unknown bearer token",
            )),
            Some(caller) if !allowed(&path, caller.role) => {
                tracing::warn!(caller = %caller.name, role = ?caller.role, method = %path, "permission denied");
                Some(tonic::Status::permission_denied(format!(
                    "role {:?} may not call {path}",
                    caller.role
                )))
            }
            Some(caller) => {
                request.extensions_mut().insert::<Caller>(caller);
                None
            }
        };
        match refusal {
            Some(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
            None => Box::pin(self.inner.call(request)),
        }
    }
}

/// Adds this service's own bearer token to every outgoing call.
#[derive(Debug, Clone)]
pub struct BearerLayer {
    value: Option<http::HeaderValue>,
}

impl BearerLayer {
    pub fn new(value: Option<http::HeaderValue>) -> Self {
        Self { value }
    }
}

impl<S> tower::Layer<S> for BearerLayer {
    type Service = Bearer<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Bearer {
            inner,
            value: self.value.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Bearer<S> {
    inner: S,
    value: Option<http::HeaderValue>,
}

impl<S, B> tower::Service<http::Request<B>> for Bearer<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(value) = &self.value {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    /// Every RPC in the contracts has a rule, and every rule names an RPC
    /// that exists.
    #[test]
    fn the_policy_covers_exactly_the_contracts() {
        let set = prost_types::FileDescriptorSet::decode(rapport_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set decodes");
        let mut methods = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    methods.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        for method in &methods {
            assert!(
                POLICY.iter().any(|(p, _)| p == method),
                "{method} has no authorization rule"
            );
        }
        for (path, _) in POLICY {
            assert!(methods.iter().any(|m| m == path), "{path} is not an RPC");
        }
    }

    #[test]
    fn key_rules_hold() {
        let route = "/rapport.v1.RoutingService/RouteCall";
        let profile = "/rapport.v1.ProfileService/GetProfile";
        assert!(allowed(route, Ivr));
        assert!(!allowed(profile, Ivr), "the IVR cannot read full profiles");
        assert!(allowed(profile, Mesh));
        assert!(allowed("/rapport.v1.OutreachService/WatchOutbound", Dialer));
        for path in [route, profile, "/rapport.v1.ClassificationService/Classify"] {
            assert!(!allowed(path, Dialer), "a dialer only sees dial requests");
        }
        assert!(!allowed("/rapport.v1.RoutingService/QueueStats", Desk));
        assert!(allowed(
            "/rapport.v1.OutreachService/RebuildDueIndex",
            Role::Admin
        ));
        assert!(
            !allowed("/rapport.v1.Nope/Nothing", Role::Admin),
            "unknown methods denied"
        );
    }
}
