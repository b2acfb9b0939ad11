//! The SQL both backends share, written once so they cannot drift apart.
//!
//! [`sql_store!`] expands to the [`Store`](super::Store) implementation and
//! its helpers inside a backend module. The module provides the few things
//! that differ between SQLite and PostgreSQL:
//!
//! - `Db`: the sqlx database type;
//! - `Ts`, `ts(DateTime<Utc>) -> Ts`, `from_ts(Ts) -> Result<DateTime<Utc>,
//!   StoreError>`: how a timestamp is stored (integer microseconds in
//!   SQLite, TIMESTAMPTZ in PostgreSQL);
//! - `begin_read()` / `begin_write()` on the store type: how a transaction
//!   starts (SQLite writers take the write lock up front; PostgreSQL readers
//!   use one snapshot).
//!
//! The statements use only what both dialects accept: `$N` parameters,
//! `ON CONFLICT`, `COUNT(*) FILTER (WHERE ..)`, `CAST(.. AS BIGINT)`. Every
//! value is a bound parameter; the only literals are enumeration names that
//! partial indexes must see verbatim. Integers are BIGINT/i64 everywhere.
//!
//! A summary is a handful of index range scans over one customer's rows:
//! windowed counters read only the last 90 days, lists stop at a LIMIT,
//! wait evidence and affinity agents come from partial indexes, and the
//! all-time total and last contact are maintained on the customer row by
//! every recorded contact. Nothing loads the history into Rust.
//!
//! Every write that changes something appends to the `changes` outbox as
//! its last statement (`record_change`), in the same transaction.

/// Columns of `contacts`, in the order `contact_from_row` expects them.
macro_rules! contact_columns {
    () => {
        "contact_id, channel, direction, started_at, ivr_selection, queue_wait_s, handle_s, \
         agent_id, outcome, complaint, escalation_threat, csat, solutions_offered, \
         solutions_rejected, compensation_asked, compensation_granted, notes"
    };
}
pub(crate) use contact_columns;

/// Expands to `impl Store for $store` and its helpers, in a backend module.
macro_rules! sql_store {
    ($store:ident) => {
        use sqlx::Row as _;

        use $crate::model::{
            CampaignExposure, Contact, Customer, CustomerInput, Event, HistorySummary, NewEvent,
            NewTag, NeedWeight, Phone, Preferences, Consent, Profile, PublicInfluence, Tag,
            WaitEvidence, limits, tier, ChangeKind, CareNote, Change, ContactCursor, CustomerExport,
            CustomerPatch, ImportCustomer, NewCareNote, SearchFilter, PhoneInput,
        };
        use rapport_kit::phone::E164;
        use $crate::store::codec;

        type Conn = <Db as sqlx::Database>::Connection;
        type DbRow = <Db as sqlx::Database>::Row;

        impl $crate::store::Store for $store {
            async fn get_profile(
                &self,
                customer_id: &str,
                now: DateTime<Utc>,
            ) -> Result<Profile, StoreError> {
                let mut tx = self.begin_read().await?;
                let profile = load_profile(&mut tx, customer_id, now).await?;
                tx.commit().await?;
                Ok(profile)
            }

            async fn lookup_by_phone(
                &self,
                phone: &E164,
                now: DateTime<Utc>,
            ) -> Result<Profile, StoreError> {
                let mut tx = self.begin_read().await?;
                let owner: Option<String> =
                    sqlx::query_scalar("SELECT customer_id FROM phones WHERE number = $1")
                        .bind(phone.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                let customer_id = owner.ok_or(StoreError::CustomerNotFound)?;
                let profile = load_profile(&mut tx, &customer_id, now).await?;
                tx.commit().await?;
                Ok(profile)
            }

            async fn upsert_customer(
                &self,
                input: &CustomerInput,
                now: DateTime<Utc>,
            ) -> Result<Customer, StoreError> {
                let mut tx = self.begin_write().await?;
                write_customer(&mut tx, input, now, WriteMode::Upsert).await?;
                let customer = load_customer(&mut tx, &input.customer_id, now)
                    .await?
                    .ok_or(StoreError::CustomerNotFound)?;
                record_change(&mut tx, &input.customer_id, ChangeKind::CustomerUpserted, "", now)
                    .await?;
                tx.commit().await?;
                Ok(customer)
            }

            async fn create_customer(
                &self,
                input: &CustomerInput,
                now: DateTime<Utc>,
            ) -> Result<Customer, StoreError> {
                let mut tx = self.begin_write().await?;
                write_customer(&mut tx, input, now, WriteMode::Create).await?;
                let customer = load_customer(&mut tx, &input.customer_id, now)
                    .await?
                    .ok_or(StoreError::CustomerNotFound)?;
                record_change(&mut tx, &input.customer_id, ChangeKind::CustomerUpserted, "", now)
                    .await?;
                tx.commit().await?;
                Ok(customer)
            }

            async fn add_tags(
                &self,
                customer_id: &str,
                tags: &[NewTag],
                now: DateTime<Utc>,
            ) -> Result<Vec<Tag>, StoreError> {
                let mut tx = self.begin_write().await?;
                bump_version(&mut tx, customer_id, now).await?;
                let stored = insert_tags(&mut tx, customer_id, tags, now).await?;
                record_change(&mut tx, customer_id, ChangeKind::CustomerUpserted, "", now).await?;
                tx.commit().await?;
                Ok(stored)
            }

            async fn remove_tag(
                &self,
                customer_id: &str,
                tag_id: &str,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                // Bumping first also tells an unknown customer from an
                // unknown tag; on TagNotFound the bump is rolled back.
                bump_version(&mut tx, customer_id, now).await?;
                let deleted = sqlx::query("DELETE FROM tags WHERE customer_id = $1 AND tag_id = $2")
                    .bind(customer_id)
                    .bind(tag_id)
                    .execute(&mut *tx)
                    .await?;
                if deleted.rows_affected() == 0 {
                    return Err(StoreError::TagNotFound);
                }
                record_change(&mut tx, customer_id, ChangeKind::CustomerUpserted, "", now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_contact(
                &self,
                customer_id: &str,
                contact: &Contact,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                ensure_customer(&mut tx, customer_id).await?;
                let inserted = sqlx::query(
                    "INSERT INTO contacts (customer_id, contact_id, channel, direction, \
                     started_at, ivr_selection, queue_wait_s, handle_s, agent_id, outcome, \
                     complaint, escalation_threat, csat, solutions_offered, solutions_rejected, \
                     compensation_asked, compensation_granted, notes, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $17, $18, $19) \
                     ON CONFLICT (customer_id, contact_id) DO NOTHING",
                )
                .bind(customer_id)
                .bind(&contact.contact_id)
                .bind(codec::channel(contact.channel))
                .bind(codec::direction(contact.direction))
                .bind(ts(contact.started_at))
                .bind(&contact.ivr_selection)
                .bind(i64::from(contact.queue_wait_s))
                .bind(i64::from(contact.handle_s))
                .bind(&contact.agent_id)
                .bind(contact.outcome.map(codec::outcome))
                .bind(contact.complaint)
                .bind(contact.escalation_threat)
                .bind(contact.csat.map(i64::from))
                .bind(i64::from(contact.solutions_offered))
                .bind(i64::from(contact.solutions_rejected))
                .bind(contact.compensation_asked)
                .bind(contact.compensation_granted)
                .bind(&contact.notes)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
                let created = inserted.rows_affected() == 1;
                if created {
                    // The maintained aggregate the hot path reads instead of
                    // counting the history.
                    sqlx::query(
                        "UPDATE customers SET total_contacts = total_contacts + 1, \
                         last_contact_at = CASE WHEN last_contact_at IS NULL \
                         OR last_contact_at < $2 THEN $2 ELSE last_contact_at END \
                         WHERE customer_id = $1",
                    )
                    .bind(customer_id)
                    .bind(ts(contact.started_at))
                    .execute(&mut *tx)
                    .await?;
                    let kind = if contact.complaint {
                        ChangeKind::Complaint
                    } else {
                        ChangeKind::ContactRecorded
                    };
                    record_change(&mut tx, customer_id, kind, &contact.contact_id, now).await?;
                }
                tx.commit().await?;
                Ok(created)
            }

            async fn record_event(
                &self,
                customer_id: &str,
                event: &NewEvent,
                now: DateTime<Utc>,
            ) -> Result<Event, StoreError> {
                let mut tx = self.begin_write().await?;
                ensure_customer(&mut tx, customer_id).await?;
                let event_id = event
                    .event_id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
                let inserted = sqlx::query(
                    "INSERT INTO events (customer_id, event_id, kind, detail, occurred_at, \
                     recorded_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (customer_id, event_id) DO NOTHING",
                )
                .bind(customer_id)
                .bind(&event_id)
                .bind(&event.kind)
                .bind(&event.detail)
                .bind(ts(event.occurred_at))
                .bind(ts(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // Read it back: on a repeat, the first recording wins.
                let row = sqlx::query(
                    "SELECT event_id, kind, detail, occurred_at FROM events \
                     WHERE customer_id = $1 AND event_id = $2",
                )
                .bind(customer_id)
                .bind(&event_id)
                .fetch_one(&mut *tx)
                .await?;
                let stored = event_from_row(&row)?;
                if inserted == 1 {
                    record_change(&mut tx, customer_id, ChangeKind::EventRecorded, &event_id, now)
                        .await?;
                }
                tx.commit().await?;
                Ok(stored)
            }

            async fn record_campaign_exposure(
                &self,
                customer_id: &str,
                exposure: &CampaignExposure,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                ensure_customer(&mut tx, customer_id).await?;
                let inserted = sqlx::query(
                    "INSERT INTO campaign_exposures (customer_id, campaign_id, channel, title, \
                     sent_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (customer_id, campaign_id, channel, sent_at) DO NOTHING",
                )
                .bind(customer_id)
                .bind(&exposure.campaign_id)
                .bind(codec::channel(exposure.channel))
                .bind(&exposure.title)
                .bind(ts(exposure.sent_at))
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 1 {
                    record_change(
                        &mut tx,
                        customer_id,
                        ChangeKind::CampaignRecorded,
                        &exposure.campaign_id,
                        now,
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn update_customer(
                &self,
                customer_id: &str,
                expected_version: i64,
                patch: &CustomerPatch,
                now: DateTime<Utc>,
            ) -> Result<Customer, StoreError> {
                let mut tx = self.begin_write().await?;
                // Compare-and-set on the version. In PostgreSQL a second
                // writer with the same expected version waits for the row
                // lock, then re-checks the condition against the committed
                // version and updates nothing: exactly one of them wins.
                let bumped = sqlx::query(
                    "UPDATE customers SET version = version + 1, updated_at = $3 \
                     WHERE customer_id = $1 AND version = $2",
                )
                .bind(customer_id)
                .bind(expected_version)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
                if bumped.rows_affected() == 0 {
                    let current: Option<i64> =
                        sqlx::query_scalar("SELECT version FROM customers WHERE customer_id = $1")
                            .bind(customer_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    return Err(match current {
                        None => StoreError::CustomerNotFound,
                        Some(current) => StoreError::StaleVersion { current },
                    });
                }
                let stored = load_customer(&mut tx, customer_id, now)
                    .await?
                    .ok_or(StoreError::CustomerNotFound)?;
                let mut input = input_of(&stored)?;
                patch.apply(&mut input);
                write_customer(&mut tx, &input, now, WriteMode::Patch).await?;
                let customer = load_customer(&mut tx, customer_id, now)
                    .await?
                    .ok_or(StoreError::CustomerNotFound)?;
                record_change(&mut tx, customer_id, ChangeKind::CustomerUpserted, "", now).await?;
                tx.commit().await?;
                Ok(customer)
            }

            async fn list_contacts(
                &self,
                customer_id: &str,
                after: Option<&ContactCursor>,
                limit: u32,
            ) -> Result<Vec<Contact>, StoreError> {
                let mut tx = self.begin_read().await?;
                ensure_customer(&mut tx, customer_id).await?;
                let rows = match after {
                    None => {
                        sqlx::query(concat!(
                            "SELECT ",
                            $crate::store::sql::contact_columns!(),
                            " FROM contacts WHERE customer_id = $1 \
                             ORDER BY started_at DESC, contact_id DESC LIMIT $2"
                        ))
                        .bind(customer_id)
                        .bind(i64::from(limit))
                        .fetch_all(&mut *tx)
                        .await?
                    }
                    Some(cursor) => {
                        // Keyset pagination on the index order: stable while
                        // contacts are added (newer ones land before the
                        // cursor, never shift later pages).
                        sqlx::query(concat!(
                            "SELECT ",
                            $crate::store::sql::contact_columns!(),
                            " FROM contacts WHERE customer_id = $1 \
                             AND (started_at < $2 OR (started_at = $2 AND contact_id < $3)) \
                             ORDER BY started_at DESC, contact_id DESC LIMIT $4"
                        ))
                        .bind(customer_id)
                        .bind(ts(cursor.started_at))
                        .bind(&cursor.contact_id)
                        .bind(i64::from(limit))
                        .fetch_all(&mut *tx)
                        .await?
                    }
                };
                let contacts = rows
                    .iter()
                    .map(contact_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                tx.commit().await?;
                Ok(contacts)
            }

            async fn add_care_note(
                &self,
                note: &NewCareNote,
                now: DateTime<Utc>,
            ) -> Result<CareNote, StoreError> {
                let mut tx = self.begin_write().await?;
                ensure_customer(&mut tx, &note.customer_id).await?;
                if let Some(note_id) = &note.note_id {
                    // A repeat (e.g. a retried outcome) returns the first
                    // note and adds no tags twice.
                    if let Some(existing) = load_note(&mut tx, &note.customer_id, note_id).await? {
                        tx.commit().await?;
                        return Ok(existing);
                    }
                }
                let note_id = note
                    .note_id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
                let added_tags = if note.added_tags.is_empty() {
                    Vec::new()
                } else {
                    bump_version(&mut tx, &note.customer_id, now).await?;
                    insert_tags(&mut tx, &note.customer_id, &note.added_tags, now).await?
                };
                sqlx::query(
                    "INSERT INTO care_notes (customer_id, note_id, contact_id, author, text, \
                     topics, added_tags, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&note.customer_id)
                .bind(&note_id)
                .bind(&note.contact_id)
                .bind(&note.author)
                .bind(&note.text)
                .bind(codec::topics(&note.topics)?)
                .bind(codec::note_tags(&added_tags)?)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
                let stored = load_note(&mut tx, &note.customer_id, &note_id)
                    .await?
                    .ok_or(StoreError::CustomerNotFound)?;
                record_change(&mut tx, &note.customer_id, ChangeKind::CareNoteAdded, &note_id, now)
                    .await?;
                tx.commit().await?;
                Ok(stored)
            }

            async fn set_preferences(
                &self,
                customer_id: &str,
                preferences: &Preferences,
                now: DateTime<Utc>,
            ) -> Result<Customer, StoreError> {
                let mut tx = self.begin_write().await?;
                let updated = sqlx::query(
                    "UPDATE customers SET preferred_agent_id = $2, \
                     dedicated_field_manager_id = $3, preferred_channel = $4, \
                     contact_windows = $5, preferred_language = $6, \
                     version = version + 1, updated_at = $7 WHERE customer_id = $1",
                )
                .bind(customer_id)
                .bind(&preferences.preferred_agent_id)
                .bind(&preferences.dedicated_field_manager_id)
                .bind(preferences.preferred_channel.map(codec::channel))
                .bind(codec::windows(&preferences.contact_windows)?)
                .bind(&preferences.language)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    return Err(StoreError::CustomerNotFound);
                }
                let customer = load_customer(&mut tx, customer_id, now)
                    .await?
                    .ok_or(StoreError::CustomerNotFound)?;
                record_change(&mut tx, customer_id, ChangeKind::PreferencesChanged, "", now)
                    .await?;
                tx.commit().await?;
                Ok(customer)
            }

            async fn set_consent(
                &self,
                customer_id: &str,
                consent: &Consent,
                now: DateTime<Utc>,
            ) -> Result<Customer, StoreError> {
                let mut tx = self.begin_write().await?;
                let updated = sqlx::query(
                    "UPDATE customers SET care_calls_consent = $2, do_not_call = $3, \
                     do_not_call_source = $4, do_not_call_at = $5, \
                     version = version + 1, updated_at = $6 WHERE customer_id = $1",
                )
                .bind(customer_id)
                .bind(consent.care_calls)
                .bind(consent.do_not_call)
                .bind(&consent.do_not_call_source)
                .bind(consent.do_not_call_at.map(ts))
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    return Err(StoreError::CustomerNotFound);
                }
                let customer = load_customer(&mut tx, customer_id, now)
                    .await?
                    .ok_or(StoreError::CustomerNotFound)?;
                record_change(&mut tx, customer_id, ChangeKind::ConsentChanged, "", now).await?;
                tx.commit().await?;
                Ok(customer)
            }

            async fn search_customers(
                &self,
                filter: &SearchFilter,
                after: Option<&str>,
                limit: u32,
                now: DateTime<Utc>,
            ) -> Result<Vec<Customer>, StoreError> {
                let mut tx = self.begin_read().await?;
                // Keyset on customer_id: each criterion is an indexed
                // lookup ((segment|tier, customer_id), (need, customer_id),
                // (kind, customer_id)), so a page costs its size, not the
                // number of customers before it.
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "SELECT c.customer_id FROM customers c WHERE 1 = 1",
                );
                if let Some(segment) = &filter.segment {
                    q.push(" AND c.segment = ").push_bind(segment.as_str());
                }
                if let Some(tier) = filter.tier {
                    q.push(" AND c.tier = ").push_bind(codec::tier(tier));
                }
                if let Some(need) = filter.need {
                    q.push(
                        " AND EXISTS (SELECT 1 FROM customer_needs n \
                         WHERE n.customer_id = c.customer_id AND n.need = ",
                    )
                    .push_bind(codec::need(need))
                    .push(")");
                }
                if let Some(kind) = filter.tag_kind {
                    q.push(
                        " AND EXISTS (SELECT 1 FROM tags t \
                         WHERE t.customer_id = c.customer_id AND t.kind = ",
                    )
                    .push_bind(codec::tag_kind(kind))
                    .push(" AND (t.expires_at IS NULL OR t.expires_at > ")
                    .push_bind(ts(now))
                    .push("))");
                }
                if let Some(after) = after {
                    q.push(" AND c.customer_id > ").push_bind(after);
                }
                q.push(" ORDER BY c.customer_id LIMIT ")
                    .push_bind(i64::from(limit));
                let ids: Vec<String> = q.build_query_scalar().fetch_all(&mut *tx).await?;
                let mut customers = Vec::with_capacity(ids.len());
                for id in &ids {
                    if let Some(c) = load_customer(&mut tx, id, now).await? {
                        customers.push(c);
                    }
                }
                tx.commit().await?;
                Ok(customers)
            }

            async fn export_profiles(
                &self,
                after: Option<&str>,
                limit: u32,
                now: DateTime<Utc>,
            ) -> Result<Vec<Profile>, StoreError> {
                let mut tx = self.begin_read().await?;
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT customer_id FROM customers WHERE customer_id > $1 \
                     ORDER BY customer_id LIMIT $2",
                )
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                let mut profiles = Vec::with_capacity(ids.len());
                for id in &ids {
                    profiles.push(load_profile(&mut tx, id, now).await?);
                }
                tx.commit().await?;
                Ok(profiles)
            }

            async fn changes_after(
                &self,
                after: i64,
                limit: u32,
            ) -> Result<Vec<Change>, StoreError> {
                let rows = sqlx::query(
                    "SELECT change_id, customer_id, kind, ref_id, at FROM changes \
                     WHERE change_id > $1 ORDER BY change_id LIMIT $2",
                )
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(Change {
                            change_id: r.try_get("change_id")?,
                            customer_id: r.try_get("customer_id")?,
                            kind: codec::parse_change_kind(&r.try_get::<String, _>("kind")?)?,
                            ref_id: r.try_get("ref_id")?,
                            at: from_ts(r.try_get::<Ts, _>("at")?)?,
                        })
                    })
                    .collect()
            }

            async fn erase_customer(
                &self,
                customer_id: &str,
                now: DateTime<Utc>,
            ) -> Result<u64, StoreError> {
                let mut tx = self.begin_write().await?;
                ensure_customer(&mut tx, customer_id).await?;
                // Child tables one by one (rather than relying on the
                // cascade) to count what was removed; the outbox has no
                // foreign key and is cleared the same way.
                let mut removed = 0;
                for table in CUSTOMER_TABLES {
                    removed += sqlx::query(&format!("DELETE FROM {table} WHERE customer_id = $1"))
                        .bind(customer_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                // Consumers must learn of the erasure to drop what they
                // derived; the marker carries the id only.
                record_change(&mut tx, customer_id, ChangeKind::Erased, "", now).await?;
                tx.commit().await?;
                Ok(removed)
            }

            async fn export_customer(
                &self,
                customer_id: &str,
                _now: DateTime<Utc>,
            ) -> Result<CustomerExport, StoreError> {
                let mut tx = self.begin_read().await?;
                // Expired tags are still stored, so they are exported too:
                // read as of the epoch, before any tag can expire.
                let customer = load_customer(&mut tx, customer_id, DateTime::<Utc>::UNIX_EPOCH)
                    .await?
                    .ok_or(StoreError::CustomerNotFound)?;
                let contacts = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql::contact_columns!(),
                    " FROM contacts WHERE customer_id = $1 \
                     ORDER BY started_at DESC, contact_id DESC"
                ))
                .bind(customer_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(contact_from_row)
                .collect::<Result<Vec<_>, _>>()?;
                let care_notes = sqlx::query(
                    "SELECT customer_id, note_id, contact_id, author, text, topics, added_tags, \
                     created_at FROM care_notes WHERE customer_id = $1 \
                     ORDER BY created_at DESC, note_id DESC",
                )
                .bind(customer_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(note_from_row)
                .collect::<Result<Vec<_>, _>>()?;
                let events = sqlx::query(
                    "SELECT event_id, kind, detail, occurred_at FROM events \
                     WHERE customer_id = $1 ORDER BY occurred_at DESC, event_id DESC",
                )
                .bind(customer_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(event_from_row)
                .collect::<Result<Vec<_>, _>>()?;
                let campaigns = sqlx::query(
                    "SELECT campaign_id, title, channel, sent_at FROM campaign_exposures \
                     WHERE customer_id = $1 ORDER BY sent_at DESC, campaign_id DESC",
                )
                .bind(customer_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(campaign_from_row)
                .collect::<Result<Vec<_>, _>>()?;
                tx.commit().await?;
                Ok(CustomerExport {
                    customer,
                    contacts,
                    care_notes,
                    events,
                    campaigns,
                })
            }

            async fn customer_rows(
                &self,
                customer_id: &str,
            ) -> Result<Vec<(&'static str, u64)>, StoreError> {
                let mut tx = self.begin_read().await?;
                let mut counts = Vec::with_capacity(CUSTOMER_TABLES.len());
                for table in CUSTOMER_TABLES {
                    let n: i64 = sqlx::query_scalar(&format!(
                        "SELECT COUNT(*) FROM {table} WHERE customer_id = $1"
                    ))
                    .bind(customer_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    counts.push((table, u64::try_from(n).unwrap_or(0)));
                }
                tx.commit().await?;
                Ok(counts)
            }

            async fn import_batch(
                &self,
                batch: &[ImportCustomer],
                now: DateTime<Utc>,
            ) -> Result<u64, StoreError> {
                let mut tx = self.begin_write().await?;
                let contacts = import_rows(&mut tx, batch, now).await?;
                tx.commit().await?;
                Ok(contacts)
            }
        }

        #[derive(Clone, Copy, PartialEq, Eq)]
        enum WriteMode {
            /// Refuse an existing id.
            Create,
            /// Replace an existing customer, keeping its creation time.
            Upsert,
            /// Replace an existing customer whose version the caller has
            /// already bumped (compare-and-set in `update_customer`).
            Patch,
        }

        /// NOT_FOUND unless the customer exists. Foreign keys would refuse
        /// the write anyway; checking first gives a clear answer.
        async fn ensure_customer(conn: &mut Conn, customer_id: &str) -> Result<(), StoreError> {
            let found = sqlx::query("SELECT 1 FROM customers WHERE customer_id = $1")
                .bind(customer_id)
                .fetch_optional(&mut *conn)
                .await?;
            match found {
                Some(_) => Ok(()),
                None => Err(StoreError::CustomerNotFound),
            }
        }

        /// Marks a write to the customer record. Also locks the row (in
        /// PostgreSQL), serializing writers of one customer.
        async fn bump_version(
            conn: &mut Conn,
            customer_id: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            let updated = sqlx::query(
                "UPDATE customers SET version = version + 1, updated_at = $2 \
                 WHERE customer_id = $1",
            )
            .bind(customer_id)
            .bind(ts(now))
            .execute(&mut *conn)
            .await?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::CustomerNotFound);
            }
            Ok(())
        }

        async fn write_customer(
            conn: &mut Conn,
            c: &CustomerInput,
            now: DateTime<Utc>,
            mode: WriteMode,
        ) -> Result<(), StoreError> {
            const INSERT: &str = "INSERT INTO customers (customer_id, name, form_of_address, \
                locale, language, dialect, region, city, time_zone, age_band, occupation, assets, \
                contribution, potential_value, segment, social_followers, media_presence, \
                preferred_agent_id, dedicated_field_manager_id, preferred_channel, \
                contact_windows, preferred_language, care_calls_consent, do_not_call, \
                do_not_call_source, do_not_call_at, version, created_at, updated_at, tier) \
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, 1, $27, $27, $28) ";
            const ON_CONFLICT_REPLACE: &str = "ON CONFLICT (customer_id) DO UPDATE SET \
                name = excluded.name, form_of_address = excluded.form_of_address, \
                locale = excluded.locale, language = excluded.language, \
                dialect = excluded.dialect, region = excluded.region, city = excluded.city, \
                time_zone = excluded.time_zone, age_band = excluded.age_band, \
                occupation = excluded.occupation, assets = excluded.assets, \
                contribution = excluded.contribution, potential_value = excluded.potential_value, \
                segment = excluded.segment, social_followers = excluded.social_followers, \
                media_presence = excluded.media_presence, \
                preferred_agent_id = excluded.preferred_agent_id, \
                dedicated_field_manager_id = excluded.dedicated_field_manager_id, \
                preferred_channel = excluded.preferred_channel, \
                contact_windows = excluded.contact_windows, \
                preferred_language = excluded.preferred_language, \
                care_calls_consent = excluded.care_calls_consent, \
                do_not_call = excluded.do_not_call, \
                do_not_call_source = excluded.do_not_call_source, \
                do_not_call_at = excluded.do_not_call_at, tier = excluded.tier, \
                updated_at = excluded.updated_at";
            const BUMP: &str = ", version = customers.version + 1";
            const ON_CONFLICT_REFUSE: &str = "ON CONFLICT (customer_id) DO NOTHING";

            let followers = i64::try_from(c.public_influence.social_followers).map_err(|_| {
                StoreError::Corrupt("social_followers exceeds the storable range".into())
            })?;
            let windows = codec::windows(&c.preferences.contact_windows)?;
            let sql = match mode {
                WriteMode::Create => [INSERT, ON_CONFLICT_REFUSE].concat(),
                WriteMode::Upsert => [INSERT, ON_CONFLICT_REPLACE, BUMP].concat(),
                WriteMode::Patch => [INSERT, ON_CONFLICT_REPLACE].concat(),
            };
            let written = sqlx::query(&sql)
                .bind(&c.customer_id)
                .bind(&c.name)
                .bind(&c.form_of_address)
                .bind(&c.locale)
                .bind(&c.language)
                .bind(&c.dialect)
                .bind(&c.region)
                .bind(&c.city)
                .bind(&c.time_zone)
                .bind(&c.age_band)
                .bind(&c.occupation)
                .bind(c.assets)
                .bind(c.contribution)
                .bind(c.potential_value)
                .bind(&c.segment)
                .bind(followers)
                .bind(c.public_influence.media_presence)
                .bind(&c.preferences.preferred_agent_id)
                .bind(&c.preferences.dedicated_field_manager_id)
                .bind(c.preferences.preferred_channel.map(codec::channel))
                .bind(windows)
                .bind(&c.preferences.language)
                .bind(c.consent.care_calls)
                .bind(c.consent.do_not_call)
                .bind(&c.consent.do_not_call_source)
                .bind(c.consent.do_not_call_at.map(ts))
                .bind(ts(now))
                .bind(codec::tier(tier::of(c.assets, c.contribution, c.potential_value)))
                .execute(&mut *conn)
                .await?;
            if written.rows_affected() == 0 {
                return Err(StoreError::CustomerExists);
            }

            // The customer row is written (and, in PostgreSQL, locked)
            // first, so concurrent writers of one customer queue up here
            // instead of interleaving their child rows.
            sqlx::query("DELETE FROM phones WHERE customer_id = $1")
                .bind(&c.customer_id)
                .execute(&mut *conn)
                .await?;
            for (index, phone) in c.phones.iter().enumerate() {
                // The number is the primary key: a conflict now can only be
                // another customer's number (validation refused duplicates
                // within the request).
                let inserted = sqlx::query(
                    "INSERT INTO phones (number, customer_id, label, position) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (number) DO NOTHING",
                )
                .bind(phone.number.as_str())
                .bind(&c.customer_id)
                .bind(&phone.label)
                .bind(position(index))
                .execute(&mut *conn)
                .await?;
                if inserted.rows_affected() == 0 {
                    return Err(StoreError::PhoneTaken { index });
                }
            }

            sqlx::query("DELETE FROM customer_needs WHERE customer_id = $1")
                .bind(&c.customer_id)
                .execute(&mut *conn)
                .await?;
            for (index, need) in c.declared_needs.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO customer_needs (customer_id, need, weight, position) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&c.customer_id)
                .bind(codec::need(need.need))
                .bind(need.weight)
                .bind(position(index))
                .execute(&mut *conn)
                .await?;
            }

            if let Some(tags) = &c.tags {
                sqlx::query("DELETE FROM tags WHERE customer_id = $1")
                    .bind(&c.customer_id)
                    .execute(&mut *conn)
                    .await?;
                insert_tags(conn, &c.customer_id, tags, now).await?;
            }
            Ok(())
        }

        fn position(index: usize) -> i64 {
            i64::try_from(index).unwrap_or(i64::MAX)
        }

        async fn insert_tags(
            conn: &mut Conn,
            customer_id: &str,
            tags: &[NewTag],
            now: DateTime<Utc>,
        ) -> Result<Vec<Tag>, StoreError> {
            let mut stored = Vec::with_capacity(tags.len());
            for tag in tags {
                // Time-ordered ids: tags created in one request keep their
                // order when sorted by (created_at, tag_id).
                let tag_id = uuid::Uuid::now_v7().to_string();
                sqlx::query(
                    "INSERT INTO tags (tag_id, customer_id, kind, text, author, created_at, \
                     expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&tag_id)
                .bind(customer_id)
                .bind(codec::tag_kind(tag.kind))
                .bind(&tag.text)
                .bind(&tag.author)
                .bind(ts(now))
                .bind(tag.expires_at.map(ts))
                .execute(&mut *conn)
                .await?;
                stored.push(Tag {
                    tag_id,
                    kind: tag.kind,
                    text: tag.text.clone(),
                    author: tag.author.clone(),
                    // As stored: both backends keep microseconds.
                    created_at: from_ts(ts(now))?,
                    expires_at: tag.expires_at.map(|t| from_ts(ts(t))).transpose()?,
                });
            }
            Ok(stored)
        }

        async fn load_profile(
            conn: &mut Conn,
            customer_id: &str,
            now: DateTime<Utc>,
        ) -> Result<Profile, StoreError> {
            let (customer, totals) = load_customer_with_totals(conn, customer_id, now)
                .await?
                .ok_or(StoreError::CustomerNotFound)?;
            let summary = load_summary(conn, customer_id, totals, now).await?;
            Ok(Profile { customer, summary })
        }

        async fn load_customer(
            conn: &mut Conn,
            customer_id: &str,
            now: DateTime<Utc>,
        ) -> Result<Option<Customer>, StoreError> {
            Ok(load_customer_with_totals(conn, customer_id, now)
                .await?
                .map(|(customer, _)| customer))
        }

        /// The customer and its maintained contact totals (count, last
        /// contact), read with the customer row itself.
        async fn load_customer_with_totals(
            conn: &mut Conn,
            customer_id: &str,
            now: DateTime<Utc>,
        ) -> Result<Option<(Customer, (u32, Option<DateTime<Utc>>))>, StoreError> {
            let Some(row) = sqlx::query(
                "SELECT customer_id, name, form_of_address, locale, language, dialect, region, \
                 city, time_zone, age_band, occupation, assets, contribution, potential_value, \
                 segment, social_followers, media_presence, preferred_agent_id, \
                 dedicated_field_manager_id, preferred_channel, contact_windows, \
                 preferred_language, care_calls_consent, do_not_call, do_not_call_source, \
                 do_not_call_at, version, created_at, updated_at, total_contacts, \
                 last_contact_at FROM customers WHERE customer_id = $1",
            )
            .bind(customer_id)
            .fetch_optional(&mut *conn)
            .await?
            else {
                return Ok(None);
            };

            let phones = sqlx::query(
                "SELECT number, label FROM phones WHERE customer_id = $1 ORDER BY position",
            )
            .bind(customer_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok(Phone {
                    number: r.try_get("number")?,
                    label: r.try_get("label")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;

            let declared_needs = sqlx::query(
                "SELECT need, weight FROM customer_needs WHERE customer_id = $1 ORDER BY position",
            )
            .bind(customer_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok(NeedWeight {
                    need: codec::parse_need(&r.try_get::<String, _>("need")?)?,
                    weight: r.try_get("weight")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;

            let tags = sqlx::query(
                "SELECT tag_id, kind, text, author, created_at, expires_at FROM tags \
                 WHERE customer_id = $1 AND (expires_at IS NULL OR expires_at > $2) \
                 ORDER BY created_at, tag_id",
            )
            .bind(customer_id)
            .bind(ts(now))
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok(Tag {
                    tag_id: r.try_get("tag_id")?,
                    kind: codec::parse_tag_kind(&r.try_get::<String, _>("kind")?)?,
                    text: r.try_get("text")?,
                    author: r.try_get("author")?,
                    created_at: from_ts(r.try_get::<Ts, _>("created_at")?)?,
                    expires_at: r
                        .try_get::<Option<Ts>, _>("expires_at")?
                        .map(from_ts)
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;

            let followers: i64 = row.try_get("social_followers")?;
            let totals = (
                codec::count(row.try_get::<i64, _>("total_contacts")?),
                row.try_get::<Option<Ts>, _>("last_contact_at")?
                    .map(from_ts)
                    .transpose()?,
            );
            Ok(Some((Customer {
                customer_id: row.try_get("customer_id")?,
                name: row.try_get("name")?,
                form_of_address: row.try_get("form_of_address")?,
                locale: row.try_get("locale")?,
                language: row.try_get("language")?,
                dialect: row.try_get("dialect")?,
                region: row.try_get("region")?,
                city: row.try_get("city")?,
                time_zone: row.try_get("time_zone")?,
                age_band: row.try_get("age_band")?,
                occupation: row.try_get("occupation")?,
                assets: row.try_get("assets")?,
                contribution: row.try_get("contribution")?,
                potential_value: row.try_get("potential_value")?,
                segment: row.try_get("segment")?,
                declared_needs,
                public_influence: PublicInfluence {
                    social_followers: u64::try_from(followers).map_err(|_| {
                        StoreError::Corrupt("negative social_followers".into())
                    })?,
                    media_presence: row.try_get("media_presence")?,
                },
                phones,
                tags,
                preferences: Preferences {
                    preferred_agent_id: row.try_get("preferred_agent_id")?,
                    dedicated_field_manager_id: row.try_get("dedicated_field_manager_id")?,
                    preferred_channel: row
                        .try_get::<Option<String>, _>("preferred_channel")?
                        .map(|c| codec::parse_channel(&c))
                        .transpose()?,
                    contact_windows: codec::parse_windows(
                        &row.try_get::<String, _>("contact_windows")?,
                    )?,
                    language: row.try_get("preferred_language")?,
                },
                consent: Consent {
                    care_calls: row.try_get("care_calls_consent")?,
                    do_not_call: row.try_get("do_not_call")?,
                    do_not_call_source: row.try_get("do_not_call_source")?,
                    do_not_call_at: row
                        .try_get::<Option<Ts>, _>("do_not_call_at")?
                        .map(from_ts)
                        .transpose()?,
                },
                version: row.try_get("version")?,
                created_at: from_ts(row.try_get::<Ts, _>("created_at")?)?,
                updated_at: from_ts(row.try_get::<Ts, _>("updated_at")?)?,
            }, totals)))
        }

        async fn load_summary(
            conn: &mut Conn,
            customer_id: &str,
            (total_contacts, last_contact_at): (u32, Option<DateTime<Utc>>),
            now: DateTime<Utc>,
        ) -> Result<HistorySummary, StoreError> {
            let since_7d = ts(now - chrono::Duration::days(7));
            let since_30d = ts(now - chrono::Duration::days(30));
            let since_90d = ts(now - chrono::Duration::days(90));

            // Totals over the whole history are maintained on the customer
            // row by every recorded contact (and recounted by the bulk
            // import), so nothing here grows with the history's length.

            // Every windowed counter in one pass over the last 90 days of
            // the customer's index range.
            let counts = sqlx::query(
                "SELECT COUNT(*) AS c90, \
                 COUNT(*) FILTER (WHERE started_at >= $2) AS c7, \
                 COUNT(*) FILTER (WHERE started_at >= $3) AS c30, \
                 COUNT(*) FILTER (WHERE complaint) AS complaints, \
                 COUNT(*) FILTER (WHERE escalation_threat) AS threats, \
                 COUNT(*) FILTER (WHERE outcome = 'abandoned') AS abandoned, \
                 CAST(COALESCE(SUM(solutions_rejected), 0) AS BIGINT) AS rejected, \
                 COUNT(*) FILTER (WHERE compensation_asked) AS compensation, \
                 CAST(COALESCE(SUM(handle_s) FILTER (WHERE handle_s > 0), 0) AS BIGINT) \
                      AS handle_sum, \
                 COUNT(*) FILTER (WHERE handle_s > 0) AS handled \
                 FROM contacts WHERE customer_id = $1 AND started_at >= $4",
            )
            .bind(customer_id)
            .bind(since_7d)
            .bind(since_30d)
            .bind(since_90d)
            .fetch_one(&mut *conn)
            .await?;
            let get = |column: &str| -> Result<u32, StoreError> {
                Ok(codec::count(counts.try_get::<i64, _>(column)?))
            };
            let handle_sum: i64 = counts.try_get("handle_sum")?;
            let handled: i64 = counts.try_get("handled")?;
            // Rounded to the nearest second.
            let mean_handle = if handled > 0 {
                codec::count((handle_sum + handled / 2) / handled)
            } else {
                0
            };

            // Matches the partial index `contacts_wait_evidence` verbatim.
            let waits = sqlx::query(
                "SELECT queue_wait_s, complaint, outcome, started_at FROM contacts \
                 WHERE customer_id = $1 AND queue_wait_s > 0 \
                 AND (complaint OR outcome = 'abandoned') \
                 ORDER BY started_at DESC, contact_id DESC LIMIT $2",
            )
            .bind(customer_id)
            .bind(limits::WAIT_EVIDENCE)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok(WaitEvidence {
                    wait_s: codec::count(r.try_get::<i64, _>("queue_wait_s")?),
                    complaint: r.try_get("complaint")?,
                    abandoned: r.try_get::<Option<String>, _>("outcome")?.as_deref()
                        == Some(codec::ABANDONED),
                    at: from_ts(r.try_get::<Ts, _>("started_at")?)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;

            let recent_contacts = sqlx::query(concat!(
                "SELECT ",
                $crate::store::sql::contact_columns!(),
                " FROM contacts WHERE customer_id = $1 \
                 ORDER BY started_at DESC, contact_id DESC LIMIT $2"
            ))
            .bind(customer_id)
            .bind(limits::RECENT_CONTACTS)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(contact_from_row)
            .collect::<Result<Vec<_>, StoreError>>()?;

            let recent_events = sqlx::query(
                "SELECT event_id, kind, detail, occurred_at FROM events \
                 WHERE customer_id = $1 AND occurred_at >= $2 \
                 ORDER BY occurred_at DESC, event_id DESC LIMIT $3",
            )
            .bind(customer_id)
            .bind(since_30d)
            .bind(limits::RECENT_EVENTS)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, StoreError>>()?;

            let recent_campaigns = sqlx::query(
                "SELECT campaign_id, title, channel, sent_at FROM campaign_exposures \
                 WHERE customer_id = $1 AND sent_at >= $2 \
                 ORDER BY sent_at DESC, campaign_id DESC LIMIT $3",
            )
            .bind(customer_id)
            .bind(since_30d)
            .bind(limits::RECENT_EVENTS)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok(CampaignExposure {
                    campaign_id: r.try_get("campaign_id")?,
                    title: r.try_get("title")?,
                    channel: codec::parse_channel(&r.try_get::<String, _>("channel")?)?,
                    sent_at: from_ts(r.try_get::<Ts, _>("sent_at")?)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;

            // Most resolved-and-well-rated contacts first; the most recent
            // such contact breaks ties, then the id for a stable order.
            // Matches the partial index `contacts_affinity` verbatim.
            let affinity_agent_ids = sqlx::query(
                "SELECT agent_id, COUNT(*) AS n, MAX(started_at) AS last_at FROM contacts \
                 WHERE customer_id = $1 AND outcome = 'resolved' AND csat >= 4 \
                 AND agent_id <> '' \
                 GROUP BY agent_id ORDER BY n DESC, last_at DESC, agent_id LIMIT $2",
            )
            .bind(customer_id)
            .bind(limits::AFFINITY_AGENTS)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("agent_id"))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;

            Ok(HistorySummary {
                contacts_7d: get("c7")?,
                contacts_30d: get("c30")?,
                contacts_90d: get("c90")?,
                total_contacts,
                complaints_90d: get("complaints")?,
                escalation_threats_90d: get("threats")?,
                abandoned_90d: get("abandoned")?,
                solutions_rejected_90d: get("rejected")?,
                compensation_asked_90d: get("compensation")?,
                mean_handle_s_90d: mean_handle,
                waits_before_complaints: waits,
                last_contact_at,
                recent_contacts,
                recent_events,
                recent_campaigns,
                affinity_agent_ids,
            })
        }

        /// Every table holding a customer's rows, children first; the order
        /// erase deletes in.
        const CUSTOMER_TABLES: [&str; 9] = [
            "contacts",
            "events",
            "campaign_exposures",
            "care_notes",
            "tags",
            "phones",
            "customer_needs",
            "changes",
            "customers",
        ];

        /// Appends one change to the outbox. Called last in a write
        /// transaction: the backend's `lock_outbox` makes change ids become
        /// visible in id order (see the backend module), and holding that
        /// lock only until the commit right after keeps writers flowing.
        async fn record_change(
            conn: &mut Conn,
            customer_id: &str,
            kind: ChangeKind,
            ref_id: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            lock_outbox(conn).await?;
            sqlx::query("INSERT INTO changes (customer_id, kind, ref_id, at) VALUES ($1, $2, $3, $4)")
                .bind(customer_id)
                .bind(codec::change_kind(kind))
                .bind(ref_id)
                .bind(ts(now))
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        /// The stored customer as a write input (tags kept), for patching.
        fn input_of(c: &Customer) -> Result<CustomerInput, StoreError> {
            let phones = c
                .phones
                .iter()
                .map(|p| {
                    // Stored numbers are E.164 already; re-parsing only
                    // restores the type.
                    rapport_kit::phone::normalize(&p.number, rapport_kit::phone::Region::CN)
                        .map(|number| PhoneInput {
                            number,
                            label: p.label.clone(),
                        })
                        .map_err(|_| StoreError::Corrupt("a stored phone is not E.164".into()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(CustomerInput {
                customer_id: c.customer_id.clone(),
                name: c.name.clone(),
                form_of_address: c.form_of_address.clone(),
                locale: c.locale.clone(),
                language: c.language.clone(),
                dialect: c.dialect.clone(),
                region: c.region.clone(),
                city: c.city.clone(),
                time_zone: c.time_zone.clone(),
                age_band: c.age_band.clone(),
                occupation: c.occupation.clone(),
                assets: c.assets,
                contribution: c.contribution,
                potential_value: c.potential_value,
                segment: c.segment.clone(),
                declared_needs: c.declared_needs.clone(),
                public_influence: c.public_influence,
                phones,
                tags: None,
                preferences: c.preferences.clone(),
                consent: c.consent.clone(),
            })
        }

        async fn load_note(
            conn: &mut Conn,
            customer_id: &str,
            note_id: &str,
        ) -> Result<Option<CareNote>, StoreError> {
            sqlx::query(
                "SELECT customer_id, note_id, contact_id, author, text, topics, added_tags, \
                 created_at FROM care_notes WHERE customer_id = $1 AND note_id = $2",
            )
            .bind(customer_id)
            .bind(note_id)
            .fetch_optional(&mut *conn)
            .await?
            .as_ref()
            .map(note_from_row)
            .transpose()
        }

        fn note_from_row(r: &DbRow) -> Result<CareNote, StoreError> {
            Ok(CareNote {
                note_id: r.try_get("note_id")?,
                customer_id: r.try_get("customer_id")?,
                contact_id: r.try_get("contact_id")?,
                author: r.try_get("author")?,
                text: r.try_get("text")?,
                topics: codec::parse_topics(&r.try_get::<String, _>("topics")?)?,
                added_tags: codec::parse_note_tags(&r.try_get::<String, _>("added_tags")?)?,
                created_at: from_ts(r.try_get::<Ts, _>("created_at")?)?,
            })
        }

        fn campaign_from_row(r: &DbRow) -> Result<CampaignExposure, StoreError> {
            Ok(CampaignExposure {
                campaign_id: r.try_get("campaign_id")?,
                title: r.try_get("title")?,
                channel: codec::parse_channel(&r.try_get::<String, _>("channel")?)?,
                sent_at: from_ts(r.try_get::<Ts, _>("sent_at")?)?,
            })
        }

        /// Rows per multi-row INSERT: below SQLite's 32,766 and
        /// PostgreSQL's 65,535 bound parameters for the widest table.
        const CUSTOMERS_PER_INSERT: usize = 500;
        const ROWS_PER_INSERT: usize = 1_000;

        /// Writes a batch of whole customers with set-based statements
        /// (one multi-row statement per table and chunk, instead of several
        /// per customer). Same effect as an upsert of each customer plus
        /// recording its contacts: contacts are idempotent on their ids,
        /// and the maintained totals are recounted for the batch, so
        /// replaying a batch after a crash changes nothing. A phone owned
        /// by another customer fails the whole batch with the row named.
        /// Returns how many contacts were new.
        async fn import_rows(
            conn: &mut Conn,
            batch: &[ImportCustomer],
            now: DateTime<Utc>,
        ) -> Result<u64, StoreError> {
            if batch.is_empty() {
                return Ok(0);
            }
            let windows = batch
                .iter()
                .map(|ic| codec::windows(&ic.customer.preferences.contact_windows))
                .collect::<Result<Vec<_>, _>>()?;
            let followers = batch
                .iter()
                .map(|ic| {
                    i64::try_from(ic.customer.public_influence.social_followers).map_err(|_| {
                        StoreError::Corrupt("social_followers exceeds the storable range".into())
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let rows: Vec<(usize, &ImportCustomer)> = batch.iter().enumerate().collect();
            for chunk in rows.chunks(CUSTOMERS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO customers (customer_id, name, form_of_address, locale, \
                     language, dialect, region, city, time_zone, age_band, occupation, assets, \
                     contribution, potential_value, segment, social_followers, media_presence, \
                     preferred_agent_id, dedicated_field_manager_id, preferred_channel, \
                     contact_windows, preferred_language, care_calls_consent, do_not_call, \
                     do_not_call_source, do_not_call_at, version, created_at, updated_at, tier) ",
                );
                q.push_values(chunk, |mut b, (i, ic)| {
                    let c = &ic.customer;
                    b.push_bind(c.customer_id.as_str())
                        .push_bind(c.name.as_str())
                        .push_bind(c.form_of_address.as_str())
                        .push_bind(c.locale.as_str())
                        .push_bind(c.language.as_str())
                        .push_bind(c.dialect.as_str())
                        .push_bind(c.region.as_str())
                        .push_bind(c.city.as_str())
                        .push_bind(c.time_zone.as_str())
                        .push_bind(c.age_band.as_str())
                        .push_bind(c.occupation.as_str())
                        .push_bind(c.assets)
                        .push_bind(c.contribution)
                        .push_bind(c.potential_value)
                        .push_bind(c.segment.as_str())
                        .push_bind(followers[*i])
                        .push_bind(c.public_influence.media_presence)
                        .push_bind(c.preferences.preferred_agent_id.as_str())
                        .push_bind(c.preferences.dedicated_field_manager_id.as_str())
                        .push_bind(c.preferences.preferred_channel.map(codec::channel))
                        .push_bind(windows[*i].as_str())
                        .push_bind(c.preferences.language.as_str())
                        .push_bind(c.consent.care_calls)
                        .push_bind(c.consent.do_not_call)
                        .push_bind(c.consent.do_not_call_source.as_str())
                        .push_bind(c.consent.do_not_call_at.map(ts))
                        .push_bind(1_i64)
                        .push_bind(ts(now))
                        .push_bind(ts(now))
                        .push_bind(codec::tier(tier::of(
                            c.assets,
                            c.contribution,
                            c.potential_value,
                        )));
                });
                q.push(
                    " ON CONFLICT (customer_id) DO UPDATE SET \
                    name = excluded.name, form_of_address = excluded.form_of_address, \
                    locale = excluded.locale, language = excluded.language, \
                    dialect = excluded.dialect, region = excluded.region, city = excluded.city, \
                    time_zone = excluded.time_zone, age_band = excluded.age_band, \
                    occupation = excluded.occupation, assets = excluded.assets, \
                    contribution = excluded.contribution, \
                    potential_value = excluded.potential_value, segment = excluded.segment, \
                    social_followers = excluded.social_followers, \
                    media_presence = excluded.media_presence, \
                    preferred_agent_id = excluded.preferred_agent_id, \
                    dedicated_field_manager_id = excluded.dedicated_field_manager_id, \
                    preferred_channel = excluded.preferred_channel, \
                    contact_windows = excluded.contact_windows, \
                    preferred_language = excluded.preferred_language, \
                    care_calls_consent = excluded.care_calls_consent, \
                    do_not_call = excluded.do_not_call, \
                    do_not_call_source = excluded.do_not_call_source, \
                    do_not_call_at = excluded.do_not_call_at, tier = excluded.tier, \
                    updated_at = excluded.updated_at, version = customers.version + 1",
                );
                q.build().execute(&mut *conn).await?;
            }

            // Children are replaced whole, like an upsert does.
            let ids: Vec<&str> = batch.iter().map(|ic| ic.customer.customer_id.as_str()).collect();
            let with_tags: Vec<&str> = batch
                .iter()
                .filter(|ic| ic.customer.tags.is_some())
                .map(|ic| ic.customer.customer_id.as_str())
                .collect();
            for (table, ids) in [("phones", &ids), ("customer_needs", &ids), ("tags", &with_tags)] {
                for chunk in ids.chunks(ROWS_PER_INSERT) {
                    let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                        "DELETE FROM {table} WHERE customer_id IN ("
                    ));
                    let mut list = q.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    q.push(")");
                    q.build().execute(&mut *conn).await?;
                }
            }

            // (row, phone index, phone)
            let phones: Vec<(usize, usize, &PhoneInput)> = batch
                .iter()
                .enumerate()
                .flat_map(|(row, ic)| {
                    ic.customer
                        .phones
                        .iter()
                        .enumerate()
                        .map(move |(index, p)| (row, index, p))
                })
                .collect();
            for chunk in phones.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO phones (number, customer_id, label, position) ",
                );
                q.push_values(chunk, |mut b, (row, index, p)| {
                    b.push_bind(p.number.as_str())
                        .push_bind(batch[*row].customer.customer_id.as_str())
                        .push_bind(p.label.as_str())
                        .push_bind(position(*index));
                });
                q.push(" ON CONFLICT (number) DO NOTHING");
                let inserted = q.build().execute(&mut *conn).await?.rows_affected();
                if usize::try_from(inserted).ok() != Some(chunk.len()) {
                    return Err(taken_phone(conn, batch, chunk).await);
                }
            }

            let needs: Vec<(&str, usize, &NeedWeight)> = batch
                .iter()
                .flat_map(|ic| {
                    ic.customer
                        .declared_needs
                        .iter()
                        .enumerate()
                        .map(move |(i, n)| (ic.customer.customer_id.as_str(), i, n))
                })
                .collect();
            for chunk in needs.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO customer_needs (customer_id, need, weight, position) ",
                );
                q.push_values(chunk, |mut b, (id, i, n)| {
                    b.push_bind(*id)
                        .push_bind(codec::need(n.need))
                        .push_bind(n.weight)
                        .push_bind(position(*i));
                });
                q.build().execute(&mut *conn).await?;
            }

            let tags: Vec<(&str, String, &NewTag)> = batch
                .iter()
                .flat_map(|ic| {
                    ic.customer.tags.iter().flatten().map(move |t| {
                        (
                            ic.customer.customer_id.as_str(),
                            uuid::Uuid::now_v7().to_string(),
                            t,
                        )
                    })
                })
                .collect();
            for chunk in tags.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO tags (tag_id, customer_id, kind, text, author, created_at, \
                     expires_at) ",
                );
                q.push_values(chunk, |mut b, (id, tag_id, t)| {
                    b.push_bind(tag_id.as_str())
                        .push_bind(*id)
                        .push_bind(codec::tag_kind(t.kind))
                        .push_bind(t.text.as_str())
                        .push_bind(t.author.as_str())
                        .push_bind(ts(now))
                        .push_bind(t.expires_at.map(ts));
                });
                q.build().execute(&mut *conn).await?;
            }

            let contacts: Vec<(&str, &Contact)> = batch
                .iter()
                .flat_map(|ic| {
                    ic.contacts
                        .iter()
                        .map(move |c| (ic.customer.customer_id.as_str(), c))
                })
                .collect();
            let mut new_contacts = 0;
            for chunk in contacts.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO contacts (customer_id, contact_id, channel, direction, \
                     started_at, ivr_selection, queue_wait_s, handle_s, agent_id, outcome, \
                     complaint, escalation_threat, csat, solutions_offered, solutions_rejected, \
                     compensation_asked, compensation_granted, notes, recorded_at) ",
                );
                q.push_values(chunk, |mut b, (id, c)| {
                    b.push_bind(*id)
                        .push_bind(c.contact_id.as_str())
                        .push_bind(codec::channel(c.channel))
                        .push_bind(codec::direction(c.direction))
                        .push_bind(ts(c.started_at))
                        .push_bind(c.ivr_selection.as_str())
                        .push_bind(i64::from(c.queue_wait_s))
                        .push_bind(i64::from(c.handle_s))
                        .push_bind(c.agent_id.as_str())
                        .push_bind(c.outcome.map(codec::outcome))
                        .push_bind(c.complaint)
                        .push_bind(c.escalation_threat)
                        .push_bind(c.csat.map(i64::from))
                        .push_bind(i64::from(c.solutions_offered))
                        .push_bind(i64::from(c.solutions_rejected))
                        .push_bind(c.compensation_asked)
                        .push_bind(c.compensation_granted)
                        .push_bind(c.notes.as_str())
                        .push_bind(ts(now));
                });
                q.push(" ON CONFLICT (customer_id, contact_id) DO NOTHING");
                new_contacts += q.build().execute(&mut *conn).await?.rows_affected();
            }

            // Recount rather than add: exact even when the batch replays
            // contacts that were already stored.
            for chunk in ids.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "UPDATE customers SET \
                     total_contacts = (SELECT COUNT(*) FROM contacts c \
                                       WHERE c.customer_id = customers.customer_id), \
                     last_contact_at = (SELECT MAX(started_at) FROM contacts c \
                                        WHERE c.customer_id = customers.customer_id) \
                     WHERE customer_id IN (",
                );
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                q.push(")");
                q.build().execute(&mut *conn).await?;
            }

            lock_outbox(conn).await?;
            for chunk in ids.chunks(ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO changes (customer_id, kind, ref_id, at) ",
                );
                q.push_values(chunk, |mut b, id| {
                    b.push_bind(*id)
                        .push_bind(codec::change_kind(ChangeKind::CustomerUpserted))
                        .push_bind("")
                        .push_bind(ts(now));
                });
                q.build().execute(&mut *conn).await?;
            }
            Ok(new_contacts)
        }

        /// Which row of the batch lost a phone to another customer (or to
        /// an earlier row of the same batch).
        async fn taken_phone(
            conn: &mut Conn,
            batch: &[ImportCustomer],
            chunk: &[(usize, usize, &PhoneInput)],
        ) -> StoreError {
            for (row, index, phone) in chunk {
                let owner: Result<Option<String>, sqlx::Error> =
                    sqlx::query_scalar("SELECT customer_id FROM phones WHERE number = $1")
                        .bind(phone.number.as_str())
                        .fetch_optional(&mut *conn)
                        .await;
                match owner {
                    Err(e) => return e.into(),
                    Ok(Some(owner)) if owner != batch[*row].customer.customer_id => {
                        return StoreError::BatchRow {
                            row: *row,
                            source: Box::new(StoreError::PhoneTaken { index: *index }),
                        };
                    }
                    Ok(_) => {}
                }
            }
            StoreError::Corrupt("a phone insert was refused without a conflict".into())
        }

        fn contact_from_row(r: &DbRow) -> Result<Contact, StoreError> {
            let csat = r
                .try_get::<Option<i64>, _>("csat")?
                .map(|v| u8::try_from(v).map_err(|_| StoreError::Corrupt(format!("csat {v}"))))
                .transpose()?;
            Ok(Contact {
                contact_id: r.try_get("contact_id")?,
                channel: codec::parse_channel(&r.try_get::<String, _>("channel")?)?,
                direction: codec::parse_direction(&r.try_get::<String, _>("direction")?)?,
                started_at: from_ts(r.try_get::<Ts, _>("started_at")?)?,
                ivr_selection: r.try_get("ivr_selection")?,
                queue_wait_s: codec::count(r.try_get::<i64, _>("queue_wait_s")?),
                handle_s: codec::count(r.try_get::<i64, _>("handle_s")?),
                agent_id: r.try_get("agent_id")?,
                outcome: r
                    .try_get::<Option<String>, _>("outcome")?
                    .map(|o| codec::parse_outcome(&o))
                    .transpose()?,
                complaint: r.try_get("complaint")?,
                escalation_threat: r.try_get("escalation_threat")?,
                csat,
                solutions_offered: codec::count(r.try_get::<i64, _>("solutions_offered")?),
                solutions_rejected: codec::count(r.try_get::<i64, _>("solutions_rejected")?),
                compensation_asked: r.try_get("compensation_asked")?,
                compensation_granted: r.try_get("compensation_granted")?,
                notes: r.try_get("notes")?,
            })
        }

        fn event_from_row(r: &DbRow) -> Result<Event, StoreError> {
            Ok(Event {
                event_id: r.try_get("event_id")?,
                kind: r.try_get("kind")?,
                detail: r.try_get("detail")?,
                occurred_at: from_ts(r.try_get::<Ts, _>("occurred_at")?)?,
            })
        }
    };
}
pub(crate) use sql_store;
