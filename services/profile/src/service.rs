//! The gRPC surface of the profile service: validate the request, call the
//! store once (one transaction), convert the answer.
//!
//! Every RPC is one store call, so one transaction: on any error nothing of
//! it remains. The two streams (ExportProfiles, WatchChanges) read page by
//! page with keyset cursors, each page its own read transaction. Logs name
//! customers by id only, never by phone number or name.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rapport_proto as pb;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::store::Store;
use crate::{convert, validate};
use rapport_kit::phone::Region;

/// Changes read from the outbox per query of a WatchChanges stream.
const CHANGE_BATCH: u32 = 500;
/// Export pages loaded at the same time, each on its own connection.
const EXPORT_PAGES_IN_FLIGHT: usize = 2;
/// How often an idle WatchChanges stream looks for changes written by
/// other replicas (its own replica's writes wake it at once).
const CHANGE_POLL: Duration = Duration::from_millis(200);

/// The ProfileService implementation over any [`Store`].
pub(crate) struct ProfileApi<S> {
    store: S,
    region: Region,
    /// Woken after every write, so change streams of this replica need not
    /// wait for their next poll.
    changed: Arc<Notify>,
}

impl<S: Store + Clone> ProfileApi<S> {
    pub(crate) fn new(store: S, region: Region) -> Self {
        Self {
            store,
            region,
            changed: Arc::new(Notify::new()),
        }
    }
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl<S: Store + Clone> pb::profile_service_server::ProfileService for ProfileApi<S> {
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
        self.changed.notify_waiters();
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
        self.changed.notify_waiters();
        tracing::debug!(customer_id = %customer.customer_id, "customer created");
        Ok(Response::new(convert::customer(customer)))
    }

    async fn update_customer(
        &self,
        request: Request<pb::UpdateCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let now = Utc::now();
        let req = request.into_inner();
        let patch = validate::update(&req, self.region, now)?;
        let customer = self
            .store
            .update_customer(&patch.values.customer_id, req.expected_version, &patch, now)
            .await?;
        self.changed.notify_waiters();
        tracing::debug!(
            customer_id = %customer.customer_id,
            version = customer.version,
            fields = patch.fields.len(),
            "customer updated"
        );
        Ok(Response::new(convert::customer(customer)))
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
        self.changed.notify_waiters();
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
        self.changed.notify_waiters();
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
        self.changed.notify_waiters();
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
        request: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let req = request.into_inner();
        validate::customer_id(&req.customer_id)?;
        let size = validate::page_size(req.page_size)?;
        let after = validate::contact_cursor(&req.page_token)?;
        // One more than the page tells whether another page follows.
        let mut contacts = self
            .store
            .list_contacts(&req.customer_id, after.as_ref(), size + 1)
            .await?;
        let more = contacts.len() > size as usize;
        contacts.truncate(size as usize);
        let next_page_token = match contacts.last() {
            Some(last) if more => validate::contact_token(last),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListContactsResponse {
            contacts: contacts.into_iter().map(convert::contact).collect(),
            next_page_token,
        }))
    }

    async fn add_care_note(
        &self,
        request: Request<pb::AddCareNoteRequest>,
    ) -> Result<Response<pb::CareNote>, Status> {
        let now = Utc::now();
        let note = validate::care_note(request.get_ref().note.as_ref(), now)?;
        let stored = self.store.add_care_note(&note, now).await?;
        self.changed.notify_waiters();
        tracing::debug!(
            customer_id = %stored.customer_id,
            note_id = %stored.note_id,
            tags = stored.added_tags.len(),
            "care note added"
        );
        Ok(Response::new(convert::care_note(stored)))
    }

    async fn set_preferences(
        &self,
        request: Request<pb::SetPreferencesRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let req = request.into_inner();
        validate::customer_id(&req.customer_id)?;
        let Some(given) = req.preferences.as_ref() else {
            return Err(
                rapport_kit::validate::FieldError::new("preferences", "must be set").into(),
            );
        };
        let preferences = validate::preferences("preferences", Some(given))?;
        let customer = self
            .store
            .set_preferences(&req.customer_id, &preferences, Utc::now())
            .await?;
        self.changed.notify_waiters();
        Ok(Response::new(convert::customer(customer)))
    }

    async fn set_consent(
        &self,
        request: Request<pb::SetConsentRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let now = Utc::now();
        let req = request.into_inner();
        validate::customer_id(&req.customer_id)?;
        let Some(given) = req.consent.as_ref() else {
            return Err(rapport_kit::validate::FieldError::new("consent", "must be set").into());
        };
        let consent = validate::consent("consent", Some(given), now)?;
        let customer = self
            .store
            .set_consent(&req.customer_id, &consent, now)
            .await?;
        self.changed.notify_waiters();
        Ok(Response::new(convert::customer(customer)))
    }

    async fn record_event(
        &self,
        request: Request<pb::RecordEventRequest>,
    ) -> Result<Response<pb::CustomerEvent>, Status> {
        let now = Utc::now();
        let req = request.into_inner();
        validate::customer_id(&req.customer_id)?;
        let event = validate::event(req.event.as_ref(), now)?;
        let stored = self
            .store
            .record_event(&req.customer_id, &event, now)
            .await?;
        self.changed.notify_waiters();
        Ok(Response::new(convert::event(stored)))
    }

    async fn record_campaign_exposure(
        &self,
        request: Request<pb::RecordCampaignExposureRequest>,
    ) -> Result<Response<pb::CampaignExposure>, Status> {
        let now = Utc::now();
        let req = request.into_inner();
        validate::customer_id(&req.customer_id)?;
        let exposure = validate::exposure(req.exposure.as_ref(), now)?;
        self.store
            .record_campaign_exposure(&req.customer_id, &exposure, now)
            .await?;
        self.changed.notify_waiters();
        Ok(Response::new(convert::campaign(exposure)))
    }

    async fn search_customers(
        &self,
        request: Request<pb::SearchCustomersRequest>,
    ) -> Result<Response<pb::SearchCustomersResponse>, Status> {
        let req = request.into_inner();
        let filter = validate::search(&req)?;
        let size = validate::page_size(req.page_size)?;
        let after = validate::customer_cursor(&req.page_token)?;
        let mut customers = self
            .store
            .search_customers(&filter, after.as_deref(), size + 1, Utc::now())
            .await?;
        let more = customers.len() > size as usize;
        customers.truncate(size as usize);
        let next_page_token = match customers.last() {
            Some(last) if more => validate::customer_token(&last.customer_id),
            _ => String::new(),
        };
        Ok(Response::new(pb::SearchCustomersResponse {
            customers: customers.into_iter().map(convert::customer).collect(),
            next_page_token,
        }))
    }

    type ExportProfilesStream = Stream<pb::ProfileView>;

    async fn export_profiles(
        &self,
        request: Request<pb::ExportProfilesRequest>,
    ) -> Result<Response<Self::ExportProfilesStream>, Status> {
        let batch = validate::export_batch(request.get_ref().batch_size)?;
        let parts = if request.get_ref().lean {
            crate::store::SummaryParts::Lean
        } else {
            crate::store::SummaryParts::Full
        };
        let store = self.store.clone();
        // Pages are found by a walk over the id index (cheap) and loaded
        // EXPORT_PAGES_IN_FLIGHT at a time on separate connections, then
        // sent in order: loading a page is most of the cost, and one at a
        // time left a core idle. The channel holds two pages, so a slow
        // client slows the reads instead of filling memory.
        let (tx, rx) = tokio::sync::mpsc::channel(2 * batch as usize);
        tokio::spawn(async move {
            // The start of the next page to find; `None` once the last
            // page (everything after its start, so customers inserted
            // meanwhile are not missed) is on its way.
            let mut next: Option<Option<String>> = Some(None);
            let mut loading = std::collections::VecDeque::new();
            loop {
                while loading.len() < EXPORT_PAGES_IN_FLIGHT
                    && let Some(after) = next.take()
                {
                    let through = match store.page_end(after.as_deref(), batch).await {
                        Ok(end) => end,
                        Err(e) => {
                            let _ = tx.send(Err(Status::from(e))).await;
                            return;
                        }
                    };
                    next = through.clone().map(Some);
                    let store = store.clone();
                    loading.push_back(tokio::spawn(async move {
                        store
                            .export_range(after.as_deref(), through.as_deref(), parts, Utc::now())
                            .await
                    }));
                }
                let Some(load) = loading.pop_front() else {
                    return;
                };
                let page = match load.await {
                    Ok(Ok(page)) => page,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(rapport_kit::status::internal("export page failed", &e)))
                            .await;
                        return;
                    }
                };
                for profile in page {
                    if tx.send(Ok(convert::profile(profile))).await.is_err() {
                        return; // The client went away.
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    type WatchChangesStream = Stream<pb::ProfileChange>;

    async fn watch_changes(
        &self,
        request: Request<pb::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let req = request.into_inner();
        let mut after = validate::resume_token(&req.resume_token)?;
        let stop_at_end = req.stop_at_end;
        let store = self.store.clone();
        let changed = std::sync::Arc::clone(&self.changed);
        let (tx, rx) = tokio::sync::mpsc::channel(CHANGE_BATCH as usize);
        tokio::spawn(async move {
            loop {
                // Registered before reading, so a write that lands between
                // the read and the wait still wakes us.
                let notified = changed.notified();
                let batch = match store.changes_after(after, CHANGE_BATCH).await {
                    Ok(batch) => batch,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        return;
                    }
                };
                if batch.is_empty() {
                    if stop_at_end {
                        return;
                    }
                    // Writes through this replica wake us at once; those of
                    // other replicas are seen on the next poll.
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep(CHANGE_POLL) => {}
                        () = tx.closed() => return,
                    }
                    continue;
                }
                for change in batch {
                    after = change.change_id;
                    if tx.send(Ok(convert::change(change))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn erase_customer(
        &self,
        request: Request<pb::EraseCustomerRequest>,
    ) -> Result<Response<pb::EraseCustomerResponse>, Status> {
        let req = request.into_inner();
        validate::customer_id(&req.customer_id)?;
        let rows_removed = self
            .store
            .erase_customer(&req.customer_id, Utc::now())
            .await?;
        self.changed.notify_waiters();
        tracing::info!(customer_id = %req.customer_id, rows_removed, "customer erased");
        Ok(Response::new(pb::EraseCustomerResponse { rows_removed }))
    }

    async fn export_customer(
        &self,
        request: Request<pb::ExportCustomerRequest>,
    ) -> Result<Response<pb::CustomerExport>, Status> {
        let req = request.into_inner();
        validate::customer_id(&req.customer_id)?;
        let export = self
            .store
            .export_customer(&req.customer_id, Utc::now())
            .await?;
        tracing::info!(customer_id = %req.customer_id, "customer data exported");
        Ok(Response::new(convert::export(export)))
    }
}
