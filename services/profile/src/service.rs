//! The gRPC surface of the profile service: validate the request, call the
//! store once (one transaction), convert the answer.
//!
//! The RPCs of the mesh issue are implemented; the rest of the contract
//! belongs to the profile-service issue and answers UNIMPLEMENTED until it
//! lands, never a made-up result. Logs name customers by id only, never by
//! phone number or name.

use std::pin::Pin;

use chrono::Utc;
use rapport_proto as pb;
use tonic::{Request, Response, Status};

use crate::store::Store;
use crate::{convert, validate};
use rapport_kit::phone::Region;

/// The ProfileService implementation over any [`Store`].
pub(crate) struct ProfileApi<S> {
    store: S,
    region: Region,
}

impl<S: Store> ProfileApi<S> {
    pub(crate) fn new(store: S, region: Region) -> Self {
        Self { store, region }
    }
}

fn pending(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "ProfileService.{rpc} is not implemented yet (profile service issue)"
    ))
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl<S: Store> pb::profile_service_server::ProfileService for ProfileApi<S> {
    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::ProfileView>, Status> {
        let req = request.into_inner();
        validate::customer_id(&req.customer_id)?;
        let profile = self.store.get_profile(&req.customer_id, Utc::now()).await?;
        Ok(Response::new(convert::profile(profile)))
    }

    async fn lookup_by_phone(
        &self,
        request: Request<pb::LookupByPhoneRequest>,
    ) -> Result<Response<pb::ProfileView>, Status> {
        let req = request.into_inner();
        let phone = validate::lookup_phone(&req.phone, self.region)?;
        let profile = self.store.lookup_by_phone(&phone, Utc::now()).await?;
        Ok(Response::new(convert::profile(profile)))
    }

    async fn upsert_customer(
        &self,
        request: Request<pb::UpsertCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let now = Utc::now();
        let input = validate::customer(request.get_ref().customer.as_ref(), self.region, now)?;
        let customer = self.store.upsert_customer(&input, now).await?;
        tracing::debug!(
            customer_id = %customer.customer_id,
            version = customer.version,
            "customer upserted"
        );
        Ok(Response::new(convert::customer(customer)))
    }

    async fn create_customer(
        &self,
        request: Request<pb::CreateCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let now = Utc::now();
        let input = validate::customer(request.get_ref().customer.as_ref(), self.region, now)?;
        let customer = self.store.create_customer(&input, now).await?;
        tracing::debug!(customer_id = %customer.customer_id, "customer created");
        Ok(Response::new(convert::customer(customer)))
    }

    async fn update_customer(
        &self,
        _: Request<pb::UpdateCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        Err(pending("UpdateCustomer"))
    }

    async fn add_tags(
        &self,
        request: Request<pb::AddTagsRequest>,
    ) -> Result<Response<pb::AddTagsResponse>, Status> {
        let now = Utc::now();
        let req = request.into_inner();
        validate::customer_id(&req.customer_id)?;
        let tags = validate::new_tags(&req.tags, now)?;
        let stored = self.store.add_tags(&req.customer_id, &tags, now).await?;
        Ok(Response::new(pb::AddTagsResponse {
            tags: stored.into_iter().map(convert::tag).collect(),
        }))
    }

    async fn remove_tag(
        &self,
        request: Request<pb::RemoveTagRequest>,
    ) -> Result<Response<pb::RemoveTagResponse>, Status> {
        let req = request.into_inner();
        validate::customer_id(&req.customer_id)?;
        validate::tag_id(&req.tag_id)?;
        self.store
            .remove_tag(&req.customer_id, &req.tag_id, Utc::now())
            .await?;
        Ok(Response::new(pb::RemoveTagResponse {}))
    }

    async fn record_contact(
        &self,
        request: Request<pb::RecordContactRequest>,
    ) -> Result<Response<pb::RecordContactResponse>, Status> {
        let now = Utc::now();
        let req = request.into_inner();
        validate::customer_id(&req.customer_id)?;
        let contact = validate::contact(req.contact.as_ref(), now)?;
        let created = self
            .store
            .record_contact(&req.customer_id, &contact, now)
            .await?;
        tracing::debug!(
            customer_id = %req.customer_id,
            contact_id = %contact.contact_id,
            created,
            "contact recorded"
        );
        Ok(Response::new(pb::RecordContactResponse { created }))
    }

    async fn list_contacts(
        &self,
        _: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        Err(pending("ListContacts"))
    }

    async fn add_care_note(
        &self,
        _: Request<pb::AddCareNoteRequest>,
    ) -> Result<Response<pb::CareNote>, Status> {
        Err(pending("AddCareNote"))
    }

    async fn set_preferences(
        &self,
        _: Request<pb::SetPreferencesRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        Err(pending("SetPreferences"))
    }

    async fn set_consent(
        &self,
        _: Request<pb::SetConsentRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        Err(pending("SetConsent"))
    }

    async fn record_event(
        &self,
        _: Request<pb::RecordEventRequest>,
    ) -> Result<Response<pb::CustomerEvent>, Status> {
        Err(pending("RecordEvent"))
    }

    async fn record_campaign_exposure(
        &self,
        _: Request<pb::RecordCampaignExposureRequest>,
    ) -> Result<Response<pb::CampaignExposure>, Status> {
        Err(pending("RecordCampaignExposure"))
    }

    async fn search_customers(
        &self,
        _: Request<pb::SearchCustomersRequest>,
    ) -> Result<Response<pb::SearchCustomersResponse>, Status> {
        Err(pending("SearchCustomers"))
    }

    type ExportProfilesStream = Stream<pb::ProfileView>;

    async fn export_profiles(
        &self,
        _: Request<pb::ExportProfilesRequest>,
    ) -> Result<Response<Self::ExportProfilesStream>, Status> {
        Err(pending("ExportProfiles"))
    }

    type WatchChangesStream = Stream<pb::ProfileChange>;

    async fn watch_changes(
        &self,
        _: Request<pb::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        Err(pending("WatchChanges"))
    }

    async fn erase_customer(
        &self,
        _: Request<pb::EraseCustomerRequest>,
    ) -> Result<Response<pb::EraseCustomerResponse>, Status> {
        Err(pending("EraseCustomer"))
    }

    async fn export_customer(
        &self,
        _: Request<pb::ExportCustomerRequest>,
    ) -> Result<Response<pb::CustomerExport>, Status> {
        Err(pending("ExportCustomer"))
    }
}
