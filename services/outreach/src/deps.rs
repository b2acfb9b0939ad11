//! Clients for the services the scheduler depends on: profile (profiles,
//! consent, the change feed, outcomes written back) and, when configured,
//! routing (blending and agent reservation).

use std::time::Duration;

use rapport_kit::client::Channel;
use rapport_kit::resilience::{Retries, RetryConfig};
use rapport_kit::security::Security;
use rapport_proto as pb;
use rapport_proto::profile_service_client::ProfileServiceClient;
use rapport_proto::routing_service_client::RoutingServiceClient;
use tonic::{Code, Status};

/// Clients of the downstream services. Cheap to clone.
#[derive(Clone)]
pub struct Deps {
    profile: ProfileServiceClient<Channel>,
    /// A second channel without a short deadline: exports and the change
    /// feed are long streams.
    streams: ProfileServiceClient<Channel>,
    routing: Option<RoutingServiceClient<Channel>>,
    /// GetProfile is an idempotent read: retried on UNAVAILABLE within a
    /// budget, like routing's.
    profile_reads: Retries,
    /// For readiness checks.
    pub(crate) profile_channel: Channel,
    pub(crate) routing_channel: Option<Channel>,
}

impl Deps {
    pub fn new(
        profile_url: &str,
        routing_url: &str,
        timeout: Duration,
        security: &Security,
    ) -> anyhow::Result<Self> {
        let profile_channel =
            rapport_kit::client::channel("profile", profile_url, timeout, security)?;
        let streams = rapport_kit::client::channel(
            "profile",
            profile_url,
            Duration::from_secs(24 * 3600),
            security,
        )?;
        let routing_channel = if routing_url.trim().is_empty() {
            None
        } else {
            Some(rapport_kit::client::channel(
                "routing",
                routing_url,
                timeout,
                security,
            )?)
        };
        Ok(Self {
            profile: ProfileServiceClient::new(profile_channel.clone()),
            streams: ProfileServiceClient::new(streams).max_decoding_message_size(16 * 1024 * 1024),
            routing: routing_channel.clone().map(RoutingServiceClient::new),
            profile_reads: Retries::new("profile", RetryConfig::default()),
            profile_channel,
            routing_channel,
        })
    }

    /// Whether agent reservation and blending go through routing.
    pub fn has_routing(&self) -> bool {
        self.routing.is_some()
    }

    /// A customer's profile; `None` when profile does not know them.
    pub async fn profile(&self, customer_id: &str) -> Result<Option<pb::ProfileView>, Status> {
        let client = self.profile.clone();
        let request = pb::GetProfileRequest {
            customer_id: customer_id.to_owned(),
        };
        match self
            .profile_reads
            .read(request, move |request| {
                let mut client = client.clone();
                async move { client.get_profile(request).await }
            })
            .await
        {
            Ok(view) => Ok(Some(view.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(s),
        }
    }

    /// Records the care contact in the customer's history (idempotent on
    /// the contact id).
    pub async fn record_contact(
        &self,
        customer_id: &str,
        contact: pb::ContactRecord,
    ) -> Result<(), Status> {
        let mut client = self.profile.clone();
        client
            .record_contact(pb::RecordContactRequest {
                customer_id: customer_id.to_owned(),
                contact: Some(contact),
            })
            .await?;
        Ok(())
    }

    /// Adds the care note and its tags (idempotent on the note id).
    pub async fn add_care_note(&self, note: pb::CareNote) -> Result<(), Status> {
        let mut client = self.profile.clone();
        client
            .add_care_note(pb::AddCareNoteRequest { note: Some(note) })
            .await?;
        Ok(())
    }

    /// Sets the customer's consent.
    pub async fn set_consent(&self, customer_id: &str, consent: pb::Consent) -> Result<(), Status> {
        let mut client = self.profile.clone();
        client
            .set_consent(pb::SetConsentRequest {
                customer_id: customer_id.to_owned(),
                consent: Some(consent),
            })
            .await?;
        Ok(())
    }

    /// Streams every profile.
    pub async fn export(
        &self,
        batch_size: u32,
    ) -> Result<tonic::Streaming<pb::ProfileView>, Status> {
        let mut client = self.streams.clone();
        Ok(client
            // The rebuild reads no routing evidence (waits, affinity).
            .export_profiles(pb::ExportProfilesRequest {
                batch_size,
                lean: true,
            })
            .await?
            .into_inner())
    }

    /// Follows profile changes after `resume_token`.
    pub async fn watch(
        &self,
        resume_token: &str,
        stop_at_end: bool,
    ) -> Result<tonic::Streaming<pb::ProfileChange>, Status> {
        let mut client = self.streams.clone();
        Ok(client
            .watch_changes(pb::WatchChangesRequest {
                resume_token: resume_token.to_owned(),
                stop_at_end,
            })
            .await?
            .into_inner())
    }

    /// The center's queue statistics, or `None` without routing.
    pub async fn queue_stats(
        &self,
        center: &str,
    ) -> Result<Option<pb::QueueStatsResponse>, Status> {
        let Some(mut client) = self.routing.clone() else {
            return Ok(None);
        };
        Ok(Some(
            client
                .queue_stats(pb::QueueStatsRequest {
                    center_id: center.to_owned(),
                })
                .await?
                .into_inner(),
        ))
    }

    /// Reserves an agent for a care call, or `None` without routing.
    pub async fn route_outbound(
        &self,
        request: pb::RouteOutboundRequest,
    ) -> Result<Option<pb::RouteDecision>, Status> {
        let Some(mut client) = self.routing.clone() else {
            return Ok(None);
        };
        Ok(Some(client.route_outbound(request).await?.into_inner()))
    }
}
