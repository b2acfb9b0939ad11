//! Clients for the services routing depends on: profile and classification.
//! Failures are turned into a short reason so the contact can still be
//! routed (degraded) instead of failing the IVR.

use std::time::Duration;

use rapport_kit::client::Channel;
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
        })
    }

    /// Resolves a caller by customer id, else by E.164 phone.
    pub async fn resolve(&self, customer_id: Option<&str>, phone: Option<&str>) -> Resolved {
        let mut client = self.profile.clone();
        let result = match (customer_id, phone) {
            (Some(id), _) => {
                client
                    .get_profile(GetProfileRequest {
                        customer_id: id.to_owned(),
                    })
                    .await
            }
            (None, Some(phone)) => {
                client
                    .lookup_by_phone(LookupByPhoneRequest {
                        phone: phone.to_owned(),
                    })
                    .await
            }
            (None, None) => return Resolved::Unknown,
        };
        match result {
            Ok(view) => Resolved::Found(Box::new(view.into_inner())),
            Err(status) if status.code() == tonic::Code::NotFound => Resolved::Unknown,
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "profile lookup failed");
                Resolved::Failed(describe("profile", &status))
            }
        }
    }

    /// Classifies a contact; the error is a short degraded reason.
    pub async fn classify(&self, request: ClassifyRequest) -> Result<Classification, String> {
        let mut client = self.classification.clone();
        match client.classify(request).await {
            Ok(c) => Ok(c.into_inner()),
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
    match status.code() {
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => format!("{dependency} timed out"),
        tonic::Code::Unavailable => format!("{dependency} unavailable"),
        code => format!("{dependency} failed ({code:?})"),
    }
}
