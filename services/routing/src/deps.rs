//! Clients for the services routing depends on: profile and classification.
//! Failures are turned into a short reason so the contact can still be
//! routed (degraded) instead of failing the IVR.
//!
//! Each channel has the kit's circuit breaker, so a dependency that keeps
//! failing or hanging is refused at once and RouteCall degrades without
//! waiting for its share of the budget. The idempotent reads (GetProfile,
//! LookupByPhone, Classify) are retried on UNAVAILABLE within a retry
//! budget; RecordContact is a write and is never retried here.

use std::time::Duration;

use rapport_kit::client::Channel;
use rapport_kit::resilience::{Retries, RetryConfig, is_circuit_open};
use rapport_proto::classification_service_client::ClassificationServiceClient;
use rapport_proto::profile_service_client::ProfileServiceClient;
use rapport_proto::{
    Classification, ClassifyRequest, ContactRecord, GetProfileRequest, LookupByPhoneRequest,
    ProfileView, RecordContactRequest,
};

/// The outcome of resolving a caller to a profile.
#[derive(Debug)]
pub enum Resolved {
    Found(Box<ProfileView>),
    /// Nobody owns the number (or id): route with a default profile.
    Unknown,
    /// Profile could not answer; the reason is reported as degraded.
    Failed(String),
}

/// Clients of the downstream services.
#[derive(Clone)]
pub struct Deps {
    profile: ProfileServiceClient<Channel>,
    classification: ClassificationServiceClient<Channel>,
    profile_reads: Retries,
    classification_reads: Retries,
}

impl Deps {
    pub fn new(
        profile_url: &str,
        classification_url: &str,
        timeout: Duration,
        security: &rapport_kit::security::Security,
    ) -> anyhow::Result<Self> {
        let profile = rapport_kit::client::channel("profile", profile_url, timeout, security)?;
        let classification =
            rapport_kit::client::channel("classification", classification_url, timeout, security)?;
        Ok(Self {
            profile: ProfileServiceClient::new(profile),
            classification: ClassificationServiceClient::new(classification),
            profile_reads: Retries::new("profile", RetryConfig::default()),
            classification_reads: Retries::new("classification", RetryConfig::default()),
        })
    }

    /// Resolves a caller by customer id, else by E.164 phone.
    pub async fn resolve(&self, customer_id: Option<&str>, phone: Option<&str>) -> Resolved {
        let client = self.profile.clone();
        let result = match (customer_id, phone) {
            (Some(id), _) => {
                let request = GetProfileRequest {
                    customer_id: id.to_owned(),
                };
                self.profile_reads
                    .read(request, move |request| {
                        let mut client = client.clone();
                        async move { client.get_profile(request).await }
                    })
                    .await
            }
            (None, Some(phone)) => {
                let request = LookupByPhoneRequest {
                    phone: phone.to_owned(),
                };
                self.profile_reads
                    .read(request, move |request| {
                        let mut client = client.clone();
                        async move { client.lookup_by_phone(request).await }
                    })
                    .await
            }
            (None, None) => return Resolved::Unknown,
        };
        match result {
            Ok(view) => Resolved::Found(Box::new(view.into_inner())),
            Err(status) if status.code() == tonic::Code::NotFound => Resolved::Unknown,
            Err(status) if is_circuit_open(&status) => {
                // The breaker logged when it opened; one line per refused
                // call would only repeat it.
                Resolved::Failed(describe("profile", &status))
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "profile lookup failed");
                Resolved::Failed(describe("profile", &status))
            }
        }
    }

    /// Classifies a contact; the error is a short degraded reason.
    pub async fn classify(&self, request: ClassifyRequest) -> Result<Classification, String> {
        let client = self.classification.clone();
        let result = self
            .classification_reads
            .read(request, move |request| {
                let mut client = client.clone();
                async move { client.classify(request).await }
            })
            .await;
        match result {
            Ok(c) => Ok(c.into_inner()),
            Err(status) if is_circuit_open(&status) => Err(describe("classification", &status)),
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "classification failed");
                Err(describe("classification", &status))
            }
        }
    }

    /// Records a finished contact in the customer's history.
    pub async fn record_contact(
        &self,
        customer_id: &str,
        contact: ContactRecord,
    ) -> Result<(), tonic::Status> {
        let mut client = self.profile.clone();
        client
            .record_contact(RecordContactRequest {
                customer_id: customer_id.to_owned(),
                contact: Some(contact),
            })
            .await
            .map(|_| ())
    }
}

fn describe(dependency: &str, status: &tonic::Status) -> String {
    if is_circuit_open(status) {
        return format!("{dependency} unavailable (circuit open)");
    }
    match status.code() {
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => format!("{dependency} timed out"),
        tonic::Code::Unavailable => format!("{dependency} unavailable"),
        code => format!("{dependency} failed ({code:?})"),
    }
}
