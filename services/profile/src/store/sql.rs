//! The SQL both backends share, written once so they cannot drift apart.
//!
//! [`sql_store!`] expands to the [`Store`](super::Store) implementation and
//! its helpers inside a backend module. The module provides the few things
//! that differ between SQLite and PostgreSQL:
//!
//! - `Db`: the sqlx database type, and `DbRow`, its row type named
//!   concretely (the trait checks cannot see through `<Db as
//!   Database>::Row` when SQLite also decodes rusqlite rows);
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
//! A point read (GetProfile, LookupByPhone) is all of that in one
//! statement, the parts after the customer row packed as JSON arrays
//! (`one_profile_sql`, decoded by `store::packed`): one round trip instead
//! of eight. Exports keep the batch statements, which cover a whole page
//! of customers at once; a contract test holds the two to the same result.
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

/// The customer columns `customer_from_row` reads, the maintained totals,
/// and the newest outbound contact and complaint: each of those a seek on
/// its partial index (`contacts_outbound`, `contacts_complaints`), the
/// WHERE terms matching them verbatim. Selected from `customers c`.
macro_rules! customer_columns {
    () => {
        "SELECT c.customer_id, c.name, c.form_of_address, \
         c.locale, c.language, c.dialect, c.region, c.city, c.time_zone, c.age_band, \
         c.occupation, c.assets, c.contribution, c.potential_value, c.segment, \
         c.social_followers, c.media_presence, c.preferred_agent_id, \
         c.dedicated_field_manager_id, c.preferred_channel, c.contact_windows, \
         c.preferred_language, c.care_calls_consent, c.do_not_call, c.do_not_call_source, \
         c.do_not_call_at, c.version, c.created_at, c.updated_at, c.total_contacts, \
         c.last_contact_at, \
         (SELECT k.started_at FROM contacts k WHERE k.customer_id = c.customer_id \
          AND k.direction = 'outbound' ORDER BY k.started_at DESC LIMIT 1) \
          AS last_outbound_at, \
         (SELECT k.started_at FROM contacts k WHERE k.customer_id = c.customer_id \
          AND k.complaint ORDER BY k.started_at DESC, k.contact_id DESC LIMIT 1) \
          AS last_complaint_at, \
         (SELECT k.outcome FROM contacts k WHERE k.customer_id = c.customer_id \
          AND k.complaint ORDER BY k.started_at DESC, k.contact_id DESC LIMIT 1) \
          AS last_complaint_outcome"
    };
}
pub(crate) use customer_columns;

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
        use $crate::store::SummaryParts;

        type Conn = <Db as sqlx::Database>::Connection;

        /// The typed cells of a result row that the decoders below read
        /// (`customer_from_row`, `row_summary`, `profile_from_row`), so one
        /// decoder serves sqlx's rows and, on SQLite, the rows of the
        /// direct point readers (`store::direct`).
        trait Cells {
            fn text(&self, column: &str) -> Result<String, StoreError>;
            fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
            fn int(&self, column: &str) -> Result<i64, StoreError>;
            fn flag(&self, column: &str) -> Result<bool, StoreError>;
            fn ts(&self, column: &str) -> Result<Ts, StoreError>;
            fn opt_ts(&self, column: &str) -> Result<Option<Ts>, StoreError>;
        }

        impl Cells for DbRow {
            fn text(&self, column: &str) -> Result<String, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn int(&self, column: &str) -> Result<i64, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn flag(&self, column: &str) -> Result<bool, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn ts(&self, column: &str) -> Result<Ts, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_ts(&self, column: &str) -> Result<Option<Ts>, StoreError> {
                Ok(self.try_get(column)?)
            }
        }

        impl $store {
            /// Profiles of one selection, in one read transaction (one
            /// snapshot per page of an export).
            async fn read_profiles(
                &self,
                select: Select<'_>,
                parts: SummaryParts,
                now: DateTime<Utc>,
            ) -> Result<Vec<Profile>, StoreError> {
                let mut tx = self.begin_read().await?;
                let profiles = load_profiles(&mut tx, select, parts, now).await?;
                tx.commit().await?;
                Ok(profiles)
            }
        }

        impl $crate::store::Store for $store {
            async fn get_profile(
                &self,
                customer_id: &str,
                now: DateTime<Utc>,
            ) -> Result<Profile, StoreError> {
                self.point_read(Select::Id(customer_id), now).await
            }

            async fn lookup_by_phone(
                &self,
                phone: &E164,
                now: DateTime<Utc>,
            ) -> Result<Profile, StoreError> {
                self.point_read(Select::Phone(phone.as_str()), now).await
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
                // SQLite's one writer commits contacts in groups (see
                // `store::group`); PostgreSQL takes concurrent writers.
                if let Some(group) = self.group_commit() {
                    return group.record_contact(customer_id, contact, now).await;
                }
                let mut tx = self.begin_write().await?;
                let created = record_contact_in(&mut tx, customer_id, contact, now).await?;
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
                let select = Select::Page {
                    after: after.unwrap_or(""),
                    limit,
                };
                self.read_profiles(select, SummaryParts::Full, now).await
            }

            async fn export_range(
                &self,
                after: Option<&str>,
                through: Option<&str>,
                parts: SummaryParts,
                now: DateTime<Utc>,
            ) -> Result<Vec<Profile>, StoreError> {
                let select = Select::Range {
                    after: after.unwrap_or(""),
                    through,
                };
                self.read_profiles(select, parts, now).await
            }

            async fn page_end(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Option<String>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                let end: Option<String> = sqlx::query_scalar(
                    "SELECT customer_id FROM customers WHERE customer_id > $1 \
                     ORDER BY customer_id LIMIT 1 OFFSET $2",
                )
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit.max(1)) - 1)
                .fetch_optional(&mut *conn)
                .await?;
                Ok(end)
            }

            async fn changes_after(
                &self,
                after: i64,
                limit: u32,
            ) -> Result<Vec<Change>, StoreError> {
                // The horizon and the page from one snapshot: a prune that
                // commits in between cannot slip past the check.
                let mut tx = self.begin_read().await?;
                if after > 0 {
                    let horizon: i64 = sqlx::query_scalar(
                        "SELECT pruned_through FROM change_horizon WHERE id = 1",
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    if after < horizon {
                        return Err(StoreError::ChangesPruned { horizon });
                    }
                }
                let rows = sqlx::query(
                    "SELECT change_id, customer_id, kind, ref_id, at FROM changes \
                     WHERE change_id > $1 ORDER BY change_id LIMIT $2",
                )
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
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

            async fn prune_changes(
                &self,
                before: DateTime<Utc>,
                limit: u32,
            ) -> Result<u64, StoreError> {
                let mut tx = self.begin_write().await?;
                // The oldest `limit` changes by time (index changes_by_at),
                // so one call holds the write lock briefly however much is
                // due; the caller repeats until less than a chunk goes.
                let top: Option<i64> = sqlx::query_scalar(
                    "SELECT MAX(change_id) FROM (SELECT change_id FROM changes \
                     WHERE at < $1 ORDER BY at LIMIT $2) AS due",
                )
                .bind(ts(before))
                .bind(i64::from(limit))
                .fetch_one(&mut *tx)
                .await?;
                let Some(top) = top else {
                    tx.commit().await?;
                    return Ok(0);
                };
                let removed = sqlx::query("DELETE FROM changes WHERE at < $1 AND change_id <= $2")
                    .bind(ts(before))
                    .bind(top)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                // Every pruned id is at most `top`: a token at or above the
                // horizon has missed nothing.
                sqlx::query(
                    "UPDATE change_horizon SET pruned_through = $1 \
                     WHERE id = 1 AND pruned_through < $1",
                )
                .bind(top)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(removed)
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

        /// A row iff customer $1 exists.
        const CUSTOMER_EXISTS_SQL: &str = "SELECT 1 FROM customers WHERE customer_id = $1";

        /// NOT_FOUND unless the customer exists. Foreign keys would refuse
        /// the write anyway; checking first gives a clear answer.
        async fn ensure_customer(conn: &mut Conn, customer_id: &str) -> Result<(), StoreError> {
            let found = sqlx::query(CUSTOMER_EXISTS_SQL)
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

        /// Which customers a profile read covers.
        #[derive(Clone, Copy)]
        enum Select<'a> {
            /// One customer by id.
            Id(&'a str),
            /// The customer owning this (E.164) number.
            Phone(&'a str),
            /// Up to `limit` customers with ids above `after`, by id.
            Page { after: &'a str, limit: u32 },
            /// Every customer with an id above `after` and, when given, at
            /// most `through`, by id.
            Range { after: &'a str, through: Option<&'a str> },
        }

        /// The customer rows of `load_profiles` (see `customer_columns!`).
        const CUSTOMER_SELECT: &str =
            concat!($crate::store::sql::customer_columns!(), " FROM customers c ");

        /// The earliest instant a bound may need: year 1, which both
        /// backends can store (PostgreSQL refuses timestamps before 4713 BC).
        fn floor_ts() -> Ts {
            ts(DateTime::<Utc>::from_timestamp(-62_135_596_800, 0).unwrap_or_default())
        }

        /// Profiles of the selected customers, in customer id order, with a
        /// constant number of statements whatever their number (one
        /// customer for GetProfile, a page for ExportProfiles):
        ///
        /// 1. the customer rows with totals and the newest outbound contact
        ///    and complaint;
        /// 2. phones, needs and live tags (one UNION ALL);
        /// 3. the windowed counters over the last 90 days;
        /// 4. the 5 newest contacts and the 20 newest wait evidences (one
        ///    UNION ALL);
        /// 5. events and campaigns of the last 30 days (one UNION ALL);
        /// 6. affinity agents.
        ///
        /// Statements 2–6 cover the id range of the rows of 1 and join
        /// from `customers`, so each customer's history is reached by an
        /// index seek on (customer_id, ...) bounded by a window or by the
        /// N-th newest row, never by reading it all.
        async fn load_profiles(
            conn: &mut Conn,
            select: Select<'_>,
            parts: SummaryParts,
            now: DateTime<Utc>,
        ) -> Result<Vec<Profile>, StoreError> {
            let rows = match select {
                Select::Id(id) => {
                    sqlx::query(&[CUSTOMER_SELECT, "WHERE c.customer_id = $1"].concat())
                        .bind(id)
                        .fetch_all(&mut *conn)
                        .await?
                }
                Select::Phone(number) => {
                    sqlx::query(
                        &[
                            CUSTOMER_SELECT,
                            "WHERE c.customer_id = \
                             (SELECT p.customer_id FROM phones p WHERE p.number = $1)",
                        ]
                        .concat(),
                    )
                    .bind(number)
                    .fetch_all(&mut *conn)
                    .await?
                }
                Select::Page { after, limit } => {
                    sqlx::query(
                        &[
                            CUSTOMER_SELECT,
                            "WHERE c.customer_id > $1 ORDER BY c.customer_id LIMIT $2",
                        ]
                        .concat(),
                    )
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await?
                }
                Select::Range { after, through: Some(through) } => {
                    sqlx::query(
                        &[
                            CUSTOMER_SELECT,
                            "WHERE c.customer_id > $1 AND c.customer_id <= $2 \
                             ORDER BY c.customer_id",
                        ]
                        .concat(),
                    )
                    .bind(after)
                    .bind(through)
                    .fetch_all(&mut *conn)
                    .await?
                }
                Select::Range { after, through: None } => {
                    sqlx::query(
                        &[CUSTOMER_SELECT, "WHERE c.customer_id > $1 ORDER BY c.customer_id"].concat(),
                    )
                    .bind(after)
                    .fetch_all(&mut *conn)
                    .await?
                }
            };
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                return Ok(Vec::new());
            };
            let lo: String = first.try_get("customer_id")?;
            let hi: String = last.try_get("customer_id")?;
            let mut children = load_children(conn, &lo, &hi, now).await?;
            let mut parts = load_summary_parts(conn, &lo, &hi, parts, now).await?;

            let mut profiles = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: String = row.try_get("customer_id")?;
                let (phones, needs, tags) = children.remove(&id).unwrap_or_default();
                let customer = customer_from_row(row, phones, needs, tags)?;
                let mut summary = parts.remove(&id).unwrap_or_default();
                row_summary(row, &mut summary)?;
                profiles.push(Profile { customer, summary });
            }
            Ok(profiles)
        }

        /// The summary fields read with the customer row
        /// (`customer_columns!`).
        fn row_summary<R: Cells + ?Sized>(
            row: &R,
            summary: &mut HistorySummary,
        ) -> Result<(), StoreError> {
            summary.total_contacts = codec::count(row.int("total_contacts")?);
            summary.last_contact_at = row.opt_ts("last_contact_at")?.map(from_ts).transpose()?;
            summary.last_outbound_at = row.opt_ts("last_outbound_at")?.map(from_ts).transpose()?;
            summary.last_complaint_at =
                row.opt_ts("last_complaint_at")?.map(from_ts).transpose()?;
            summary.last_complaint_resolved =
                row.opt_text("last_complaint_outcome")?.as_deref() == Some(codec::RESOLVED);
            Ok(())
        }

        /// The point read as one statement: the customer row of
        /// `customer_columns!` followed by every other part of the profile
        /// packed as a JSON array per column (decoded by `store::packed`),
        /// each part a bounded index seek like its counterpart in
        /// `load_profiles`. Parameters: $1 the id or phone, $2 now (live
        /// tags), $3/$4/$5 the 90/7/30-day window starts, $6..$9 the list
        /// limits.
        ///
        /// One statement is one round trip, and it sees one snapshot
        /// without an explicit transaction (PostgreSQL takes a snapshot
        /// per statement, subqueries included; SQLite reads a statement in
        /// one implicit read transaction). The batch read instead needs six
        /// statements inside BEGIN/COMMIT: eight round trips, which on
        /// PostgreSQL made a point read miss its 2 ms p99 target.
        fn one_profile_sql(filter: &str) -> String {
            format!(
                concat!(
                    $crate::store::sql::customer_columns!(),
                    ", CAST((SELECT {g}({a}(p.number, p.label) ORDER BY p.position) \
                     FROM phones p WHERE p.customer_id = c.customer_id) AS TEXT) AS j_phones, \
                     CAST((SELECT {g}({a}(n.need, n.weight) ORDER BY n.position) \
                     FROM customer_needs n WHERE n.customer_id = c.customer_id) AS TEXT) \
                     AS j_needs, \
                     CAST((SELECT {g}({a}(t.tag_id, t.kind, t.text, t.author, t.created_at, \
                     t.expires_at) ORDER BY t.created_at, t.tag_id) FROM tags t \
                     WHERE t.customer_id = c.customer_id \
                     AND (t.expires_at IS NULL OR t.expires_at > $2)) AS TEXT) AS j_tags, \
                     CAST((SELECT {a}(COUNT(*), \
                     COUNT(*) FILTER (WHERE k.started_at >= $4), \
                     COUNT(*) FILTER (WHERE k.started_at >= $5), \
                     COUNT(*) FILTER (WHERE k.complaint), \
                     COUNT(*) FILTER (WHERE k.escalation_threat), \
                     COUNT(*) FILTER (WHERE k.outcome = 'abandoned'), \
                     CAST(COALESCE(SUM(k.solutions_rejected), 0) AS BIGINT), \
                     COUNT(*) FILTER (WHERE k.compensation_asked), \
                     CAST(COALESCE(SUM(k.handle_s) FILTER (WHERE k.handle_s > 0), 0) AS BIGINT), \
                     COUNT(*) FILTER (WHERE k.handle_s > 0), \
                     COUNT(*) FILTER (WHERE k.started_at >= $5 AND k.direction = 'outbound')) \
                     FROM contacts k WHERE k.customer_id = c.customer_id \
                     AND k.started_at >= $3) AS TEXT) AS j_counts, \
                     CAST((SELECT {g}({a}(",
                    $crate::store::sql::contact_columns!(),
                    ") ORDER BY started_at DESC, contact_id DESC) FROM (SELECT ",
                    $crate::store::sql::contact_columns!(),
                    " FROM contacts k WHERE k.customer_id = c.customer_id \
                     ORDER BY k.started_at DESC, k.contact_id DESC LIMIT $6) r) AS TEXT) \
                     AS j_recent, \
                     CAST((SELECT {g}({a}(queue_wait_s, complaint, outcome, started_at) \
                     ORDER BY started_at DESC, contact_id DESC) FROM (SELECT queue_wait_s, \
                     complaint, outcome, started_at, contact_id FROM contacts k \
                     WHERE k.customer_id = c.customer_id \
                     AND k.queue_wait_s > 0 AND (k.complaint OR k.outcome = 'abandoned') \
                     ORDER BY k.started_at DESC, k.contact_id DESC LIMIT $7) w) AS TEXT) \
                     AS j_waits, \
                     CAST((SELECT {g}({a}(event_id, kind, detail, occurred_at) \
                     ORDER BY occurred_at DESC, event_id DESC) FROM (SELECT event_id, kind, \
                     detail, occurred_at FROM events e WHERE e.customer_id = c.customer_id \
                     AND e.occurred_at >= $5 \
                     ORDER BY e.occurred_at DESC, e.event_id DESC LIMIT $8) v) AS TEXT) \
                     AS j_events, \
                     CAST((SELECT {g}({a}(campaign_id, title, channel, sent_at) \
                     ORDER BY sent_at DESC, campaign_id DESC) FROM (SELECT campaign_id, title, \
                     channel, sent_at FROM campaign_exposures x \
                     WHERE x.customer_id = c.customer_id AND x.sent_at >= $5 \
                     ORDER BY x.sent_at DESC, x.campaign_id DESC LIMIT $8) x) AS TEXT) \
                     AS j_campaigns, \
                     CAST((SELECT {g}(agent_id ORDER BY n DESC, last_at DESC, agent_id) \
                     FROM (SELECT k.agent_id, COUNT(*) AS n, MAX(k.started_at) AS last_at \
                     FROM contacts k WHERE k.customer_id = c.customer_id \
                     AND k.outcome = 'resolved' AND k.csat >= 4 AND k.agent_id <> '' \
                     GROUP BY k.agent_id ORDER BY n DESC, last_at DESC, k.agent_id \
                     LIMIT $9) a) AS TEXT) AS j_affinity \
                     FROM customers c {filter}"
                ),
                a = JSON_ARRAY,
                g = JSON_AGG,
                filter = filter,
            )
        }

        static ONE_BY_ID: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| one_profile_sql("WHERE c.customer_id = $1"));
        static ONE_BY_PHONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            one_profile_sql(
                "WHERE c.customer_id = (SELECT p.customer_id FROM phones p WHERE p.number = $1)",
            )
        });

        /// The statement of a point read and its key ($1).
        fn point_statement<'a>(select: Select<'a>) -> (&'static str, &'a str) {
            match select {
                Select::Id(id) => (ONE_BY_ID.as_str(), id),
                Select::Phone(number) => (ONE_BY_PHONE.as_str(), number),
                _ => unreachable!("a point read selects one customer"),
            }
        }

        /// Parameters $2..$9 of a point read: now, the 90/7/30-day window
        /// starts, then the list limits.
        fn point_params(now: DateTime<Utc>) -> ([Ts; 4], [i64; 4]) {
            (
                [
                    ts(now),
                    ts(now - chrono::Duration::days(90)),
                    ts(now - chrono::Duration::days(7)),
                    ts(now - chrono::Duration::days(30)),
                ],
                [
                    limits::RECENT_CONTACTS,
                    limits::WAIT_EVIDENCE,
                    limits::RECENT_EVENTS,
                    limits::AFFINITY_AGENTS,
                ],
            )
        }

        /// One customer's profile by id or phone, in one statement (see
        /// `one_profile_sql`), through sqlx.
        async fn load_one(
            pool: &sqlx::Pool<Db>,
            select: Select<'_>,
            now: DateTime<Utc>,
        ) -> Result<Profile, StoreError> {
            let (sql, key) = point_statement(select);
            let ([now, since_90d, since_7d, since_30d], limits) = point_params(now);
            let mut query = sqlx::query(sql)
                .bind(key)
                .bind(now)
                .bind(since_90d)
                .bind(since_7d)
                .bind(since_30d);
            for limit in limits {
                query = query.bind(limit);
            }
            let row = query
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::CustomerNotFound)?;
            profile_from_row(&row)
        }

        /// The profile in a row of `one_profile_sql`.
        fn profile_from_row<R: Cells + ?Sized>(row: &R) -> Result<Profile, StoreError> {
            let packed = $crate::store::packed::Packed {
                phones: row.opt_text("j_phones")?,
                needs: row.opt_text("j_needs")?,
                tags: row.opt_text("j_tags")?,
                counts: row.opt_text("j_counts")?,
                recent: row.opt_text("j_recent")?,
                waits: row.opt_text("j_waits")?,
                events: row.opt_text("j_events")?,
                campaigns: row.opt_text("j_campaigns")?,
                affinity: row.opt_text("j_affinity")?,
            };
            let (phones, needs, tags) = packed.children()?;
            let customer = customer_from_row(row, phones, needs, tags)?;
            let mut summary = HistorySummary::default();
            packed.fill(&mut summary)?;
            row_summary(row, &mut summary)?;
            Ok(Profile { customer, summary })
        }

        /// The stored customer (no summary): the row and its children, two
        /// statements.
        async fn load_customer(
            conn: &mut Conn,
            customer_id: &str,
            now: DateTime<Utc>,
        ) -> Result<Option<Customer>, StoreError> {
            let Some(row) = sqlx::query(
                "SELECT customer_id, name, form_of_address, locale, language, dialect, region, \
                 city, time_zone, age_band, occupation, assets, contribution, potential_value, \
                 segment, social_followers, media_presence, preferred_agent_id, \
                 dedicated_field_manager_id, preferred_channel, contact_windows, \
                 preferred_language, care_calls_consent, do_not_call, do_not_call_source, \
                 do_not_call_at, version, created_at, updated_at FROM customers \
                 WHERE customer_id = $1",
            )
            .bind(customer_id)
            .fetch_optional(&mut *conn)
            .await?
            else {
                return Ok(None);
            };
            let (phones, needs, tags) = load_children(conn, customer_id, customer_id, now)
                .await?
                .remove(customer_id)
                .unwrap_or_default();
            Ok(Some(customer_from_row(&row, phones, needs, tags)?))
        }

        type Children = (Vec<Phone>, Vec<NeedWeight>, Vec<Tag>);

        /// Phones (by position), declared needs (by position) and the tags
        /// live at `now` (by creation, then id) of the customers with ids in
        /// `lo..=hi`, in one statement.
        async fn load_children(
            conn: &mut Conn,
            lo: &str,
            hi: &str,
            now: DateTime<Utc>,
        ) -> Result<std::collections::HashMap<String, Children>, StoreError> {
            // Columns: customer_id, part, ord, s1..s4 (text), w (weight),
            // t1, t2 (timestamps); each part fills what it has. The first
            // branch types every column: PostgreSQL resolves a UNION's
            // types pair by pair, and two bare NULLs would become text.
            let rows = sqlx::query(
                "SELECT customer_id, CAST(2 AS BIGINT) AS part, CAST(0 AS BIGINT) AS ord, \
                 tag_id AS s1, kind AS s2, text AS s3, author AS s4, \
                 CAST(NULL AS DOUBLE PRECISION) AS w, created_at AS t1, expires_at AS t2 \
                 FROM tags WHERE customer_id >= $1 AND customer_id <= $2 \
                 AND (expires_at IS NULL OR expires_at > $3) \
                 UNION ALL \
                 SELECT customer_id, CAST(0 AS BIGINT), position, number, label, NULL, NULL, \
                 NULL, NULL, NULL \
                 FROM phones WHERE customer_id >= $1 AND customer_id <= $2 \
                 UNION ALL \
                 SELECT customer_id, CAST(1 AS BIGINT), position, need, NULL, NULL, NULL, \
                 weight, NULL, NULL \
                 FROM customer_needs WHERE customer_id >= $1 AND customer_id <= $2 \
                 ORDER BY 1, 2, 3, 9, 4",
            )
            .bind(lo)
            .bind(hi)
            .bind(ts(now))
            .fetch_all(&mut *conn)
            .await?;
            let mut out: std::collections::HashMap<String, Children> =
                std::collections::HashMap::new();
            for r in &rows {
                let entry = out.entry(r.try_get("customer_id")?).or_default();
                match r.try_get::<i64, _>("part")? {
                    0 => entry.0.push(Phone {
                        number: r.try_get("s1")?,
                        label: r.try_get("s2")?,
                    }),
                    1 => entry.1.push(NeedWeight {
                        need: codec::parse_need(&r.try_get::<String, _>("s1")?)?,
                        weight: r.try_get("w")?,
                    }),
                    _ => entry.2.push(Tag {
                        tag_id: r.try_get("s1")?,
                        kind: codec::parse_tag_kind(&r.try_get::<String, _>("s2")?)?,
                        text: r.try_get("s3")?,
                        author: r.try_get("s4")?,
                        created_at: from_ts(r.try_get::<Ts, _>("t1")?)?,
                        expires_at: r
                            .try_get::<Option<Ts>, _>("t2")?
                            .map(from_ts)
                            .transpose()?,
                    }),
                }
            }
            Ok(out)
        }

        fn customer_from_row<R: Cells + ?Sized>(
            row: &R,
            phones: Vec<Phone>,
            declared_needs: Vec<NeedWeight>,
            tags: Vec<Tag>,
        ) -> Result<Customer, StoreError> {
            let followers = row.int("social_followers")?;
            Ok(Customer {
                customer_id: row.text("customer_id")?,
                name: row.text("name")?,
                form_of_address: row.text("form_of_address")?,
                locale: row.text("locale")?,
                language: row.text("language")?,
                dialect: row.text("dialect")?,
                region: row.text("region")?,
                city: row.text("city")?,
                time_zone: row.text("time_zone")?,
                age_band: row.text("age_band")?,
                occupation: row.text("occupation")?,
                assets: row.int("assets")?,
                contribution: row.int("contribution")?,
                potential_value: row.int("potential_value")?,
                segment: row.text("segment")?,
                declared_needs,
                public_influence: PublicInfluence {
                    social_followers: u64::try_from(followers).map_err(|_| {
                        StoreError::Corrupt("negative social_followers".into())
                    })?,
                    media_presence: row.flag("media_presence")?,
                },
                phones,
                tags,
                preferences: Preferences {
                    preferred_agent_id: row.text("preferred_agent_id")?,
                    dedicated_field_manager_id: row.text("dedicated_field_manager_id")?,
                    preferred_channel: row
                        .opt_text("preferred_channel")?
                        .map(|c| codec::parse_channel(&c))
                        .transpose()?,
                    contact_windows: codec::parse_windows(&row.text("contact_windows")?)?,
                    language: row.text("preferred_language")?,
                },
                consent: Consent {
                    care_calls: row.flag("care_calls_consent")?,
                    do_not_call: row.flag("do_not_call")?,
                    do_not_call_source: row.text("do_not_call_source")?,
                    do_not_call_at: row.opt_ts("do_not_call_at")?.map(from_ts).transpose()?,
                },
                version: row.int("version")?,
                created_at: from_ts(row.ts("created_at")?)?,
                updated_at: from_ts(row.ts("updated_at")?)?,
            })
        }

        /// Everything of the summary but the fields read with the customer
        /// row, for the customers with ids in `lo..=hi` (see
        /// `load_profiles`).
        async fn load_summary_parts(
            conn: &mut Conn,
            lo: &str,
            hi: &str,
            parts: SummaryParts,
            now: DateTime<Utc>,
        ) -> Result<std::collections::HashMap<String, HistorySummary>, StoreError> {
            let since_7d = ts(now - chrono::Duration::days(7));
            let since_30d = ts(now - chrono::Duration::days(30));
            let since_90d = ts(now - chrono::Duration::days(90));
            let mut out: std::collections::HashMap<String, HistorySummary> =
                std::collections::HashMap::new();

            // Every windowed counter in one pass over the last 90 days of
            // each customer's index range. Each statement here goes from
            // `customers` to the history with CROSS JOIN, which SQLite
            // takes as the loop order (PostgreSQL plans it like any inner
            // join): one index seek per customer, bounded by the window or
            // by the N-th newest row. With the join order left to SQLite
            // it scans the id range of the history index instead, the
            // whole history of every customer in the batch.
            let counts = sqlx::query(
                "SELECT k.customer_id, COUNT(*) AS c90, \
                 COUNT(*) FILTER (WHERE k.started_at >= $4) AS c7, \
                 COUNT(*) FILTER (WHERE k.started_at >= $5) AS c30, \
                 COUNT(*) FILTER (WHERE k.complaint) AS complaints, \
                 COUNT(*) FILTER (WHERE k.escalation_threat) AS threats, \
                 COUNT(*) FILTER (WHERE k.outcome = 'abandoned') AS abandoned, \
                 CAST(COALESCE(SUM(k.solutions_rejected), 0) AS BIGINT) AS rejected, \
                 COUNT(*) FILTER (WHERE k.compensation_asked) AS compensation, \
                 CAST(COALESCE(SUM(k.handle_s) FILTER (WHERE k.handle_s > 0), 0) AS BIGINT) \
                      AS handle_sum, \
                 COUNT(*) FILTER (WHERE k.handle_s > 0) AS handled, \
                 COUNT(*) FILTER (WHERE k.started_at >= $5 AND k.direction = 'outbound') \
                      AS outbound30 \
                 FROM customers c CROSS JOIN contacts k WHERE k.customer_id = c.customer_id \
                 AND k.started_at >= $3 \
                 AND c.customer_id >= $1 AND c.customer_id <= $2 \
                 GROUP BY k.customer_id",
            )
            .bind(lo)
            .bind(hi)
            .bind(since_90d)
            .bind(since_7d)
            .bind(since_30d)
            .fetch_all(&mut *conn)
            .await?;
            for r in &counts {
                let get = |column: &str| -> Result<u32, StoreError> {
                    Ok(codec::count(r.try_get::<i64, _>(column)?))
                };
                let handle_sum: i64 = r.try_get("handle_sum")?;
                let handled: i64 = r.try_get("handled")?;
                let s = out.entry(r.try_get("customer_id")?).or_default();
                s.contacts_7d = get("c7")?;
                s.contacts_30d = get("c30")?;
                s.contacts_90d = get("c90")?;
                s.complaints_90d = get("complaints")?;
                s.escalation_threats_90d = get("threats")?;
                s.abandoned_90d = get("abandoned")?;
                s.solutions_rejected_90d = get("rejected")?;
                s.compensation_asked_90d = get("compensation")?;
                s.outbound_30d = get("outbound30")?;
                // Rounded to the nearest second.
                s.mean_handle_s_90d = if handled > 0 {
                    codec::count((handle_sum + handled / 2) / handled)
                } else {
                    0
                };
            }

            // Compound SELECTs are ordered by column position (SQLite
            // matches only result aliases by name).
            // The newest contacts (part 0) and wait evidence (part 1): each
            // bounded below by the start of the customer's N-th newest such
            // row (one seek), so a customer's rows are read from the newest
            // down to that bound only. Ties at the bound can add rows; the
            // order is exact, so the extra ones are cut below. The wait
            // terms match the partial index `contacts_wait_evidence`.
            let contacts = if parts == SummaryParts::Lean {
                sqlx::query(concat!(
                    "SELECT CAST(0 AS BIGINT) AS part, k.customer_id, ",
                    $crate::store::sql::contact_columns!(),
                    " FROM customers c CROSS JOIN contacts k WHERE k.customer_id = c.customer_id \
                     AND k.started_at >= COALESCE((SELECT k2.started_at FROM contacts k2 \
                         WHERE k2.customer_id = c.customer_id \
                         ORDER BY k2.started_at DESC, k2.contact_id DESC LIMIT 1 OFFSET $4), $3) \
                     AND c.customer_id >= $1 AND c.customer_id <= $2 \
                     ORDER BY 2, 1, 6 DESC, 3 DESC"
                ))
                .bind(lo)
                .bind(hi)
                .bind(floor_ts())
                .bind(limits::RECENT_CONTACTS - 1)
                .fetch_all(&mut *conn)
                .await?
            } else {
                sqlx::query(concat!(
                "SELECT CAST(0 AS BIGINT) AS part, k.customer_id, ",
                $crate::store::sql::contact_columns!(),
                " FROM customers c CROSS JOIN contacts k WHERE k.customer_id = c.customer_id \
                 AND k.started_at >= COALESCE((SELECT k2.started_at FROM contacts k2 \
                     WHERE k2.customer_id = c.customer_id \
                     ORDER BY k2.started_at DESC, k2.contact_id DESC LIMIT 1 OFFSET $4), $3) \
                 AND c.customer_id >= $1 AND c.customer_id <= $2 \
                 UNION ALL \
                 SELECT CAST(1 AS BIGINT), k.customer_id, ",
                $crate::store::sql::contact_columns!(),
                " FROM customers c CROSS JOIN contacts k WHERE k.customer_id = c.customer_id \
                 AND k.queue_wait_s > 0 AND (k.complaint OR k.outcome = 'abandoned') \
                 AND k.started_at >= COALESCE((SELECT k2.started_at FROM contacts k2 \
                     WHERE k2.customer_id = c.customer_id AND k2.queue_wait_s > 0 \
                     AND (k2.complaint OR k2.outcome = 'abandoned') \
                     ORDER BY k2.started_at DESC, k2.contact_id DESC LIMIT 1 OFFSET $5), $3) \
                 AND c.customer_id >= $1 AND c.customer_id <= $2 \
                 ORDER BY 2, 1, 6 DESC, 3 DESC"
            ))
            .bind(lo)
            .bind(hi)
            .bind(floor_ts())
            .bind(limits::RECENT_CONTACTS - 1)
            .bind(limits::WAIT_EVIDENCE - 1)
            .fetch_all(&mut *conn)
            .await?
            };
            for r in &contacts {
                let s = out.entry(r.try_get("customer_id")?).or_default();
                if r.try_get::<i64, _>("part")? == 0 {
                    if s.recent_contacts.len() < limit(limits::RECENT_CONTACTS) {
                        s.recent_contacts.push(contact_from_row(r)?);
                    }
                } else if s.waits_before_complaints.len() < limit(limits::WAIT_EVIDENCE) {
                    s.waits_before_complaints.push(WaitEvidence {
                        wait_s: codec::count(r.try_get::<i64, _>("queue_wait_s")?),
                        complaint: r.try_get("complaint")?,
                        abandoned: r.try_get::<Option<String>, _>("outcome")?.as_deref()
                            == Some(codec::ABANDONED),
                        at: from_ts(r.try_get::<Ts, _>("started_at")?)?,
                    });
                }
            }

            // Events (part 0) and campaigns (part 1) of the last 30 days.
            let recent = sqlx::query(
                "SELECT CAST(0 AS BIGINT) AS part, e.customer_id, e.event_id AS id, \
                 e.kind AS s1, e.detail AS s2, e.occurred_at AS at \
                 FROM customers c CROSS JOIN events e WHERE e.customer_id = c.customer_id \
                 AND e.occurred_at >= $3 \
                 AND c.customer_id >= $1 AND c.customer_id <= $2 \
                 UNION ALL \
                 SELECT CAST(1 AS BIGINT), x.customer_id, x.campaign_id, x.title, x.channel, \
                 x.sent_at \
                 FROM customers c CROSS JOIN campaign_exposures x WHERE x.customer_id = c.customer_id \
                 AND x.sent_at >= $3 \
                 AND c.customer_id >= $1 AND c.customer_id <= $2 \
                 ORDER BY 2, 1, 6 DESC, 3 DESC",
            )
            .bind(lo)
            .bind(hi)
            .bind(since_30d)
            .fetch_all(&mut *conn)
            .await?;
            for r in &recent {
                let s = out.entry(r.try_get("customer_id")?).or_default();
                if r.try_get::<i64, _>("part")? == 0 {
                    if s.recent_events.len() < limit(limits::RECENT_EVENTS) {
                        s.recent_events.push(Event {
                            event_id: r.try_get("id")?,
                            kind: r.try_get("s1")?,
                            detail: r.try_get("s2")?,
                            occurred_at: from_ts(r.try_get::<Ts, _>("at")?)?,
                        });
                    }
                } else if s.recent_campaigns.len() < limit(limits::RECENT_EVENTS) {
                    s.recent_campaigns.push(CampaignExposure {
                        campaign_id: r.try_get("id")?,
                        title: r.try_get("s1")?,
                        channel: codec::parse_channel(&r.try_get::<String, _>("s2")?)?,
                        sent_at: from_ts(r.try_get::<Ts, _>("at")?)?,
                    });
                }
            }

            if parts == SummaryParts::Lean {
                return Ok(out);
            }
            // Most resolved-and-well-rated contacts first; the most recent
            // such contact breaks ties, then the id for a stable order.
            // The terms match the partial index `contacts_affinity`.
            let affinity = sqlx::query(
                "SELECT k.customer_id, k.agent_id, COUNT(*) AS n, MAX(k.started_at) AS last_at \
                 FROM customers c CROSS JOIN contacts k WHERE k.customer_id = c.customer_id \
                 AND k.outcome = 'resolved' AND k.csat >= 4 AND k.agent_id <> '' \
                 AND c.customer_id >= $1 AND c.customer_id <= $2 \
                 GROUP BY k.customer_id, k.agent_id \
                 ORDER BY k.customer_id, n DESC, last_at DESC, k.agent_id",
            )
            .bind(lo)
            .bind(hi)
            .fetch_all(&mut *conn)
            .await?;
            for r in &affinity {
                let s = out.entry(r.try_get("customer_id")?).or_default();
                if s.affinity_agent_ids.len() < limit(limits::AFFINITY_AGENTS) {
                    s.affinity_agent_ids.push(r.try_get("agent_id")?);
                }
            }
            Ok(out)
        }

        fn limit(n: i64) -> usize {
            usize::try_from(n).unwrap_or(0)
        }

        /// A contact's row; `record_contact_in` binds its parameters (and
        /// so does SQLite's contact writer, `record_contact_direct` in
        /// `store::sqlite`).
        const INSERT_CONTACT_SQL: &str =
            "INSERT INTO contacts (customer_id, contact_id, channel, direction, \
             started_at, ivr_selection, queue_wait_s, handle_s, agent_id, outcome, \
             complaint, escalation_threat, csat, solutions_offered, solutions_rejected, \
             compensation_asked, compensation_granted, notes, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16, $17, $18, $19) \
             ON CONFLICT (customer_id, contact_id) DO NOTHING";

        /// The maintained aggregate the hot path reads instead of counting
        /// the history: $1 the customer, $2 the new contact's start.
        const COUNT_CONTACT_SQL: &str =
            "UPDATE customers SET total_contacts = total_contacts + 1, \
             last_contact_at = CASE WHEN last_contact_at IS NULL \
             OR last_contact_at < $2 THEN $2 ELSE last_contact_at END \
             WHERE customer_id = $1";

        /// The change a newly recorded contact appends to the outbox.
        fn contact_change(contact: &Contact) -> ChangeKind {
            if contact.complaint {
                ChangeKind::Complaint
            } else {
                ChangeKind::ContactRecorded
            }
        }

        /// Records one contact inside the caller's transaction; true when
        /// it was new.
        async fn record_contact_in(
            tx: &mut Conn,
            customer_id: &str,
            contact: &Contact,
            now: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            ensure_customer(&mut *tx, customer_id).await?;
            let inserted = sqlx::query(INSERT_CONTACT_SQL)
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
                sqlx::query(COUNT_CONTACT_SQL)
                    .bind(customer_id)
                    .bind(ts(contact.started_at))
                    .execute(&mut *tx)
                    .await?;
                let kind = contact_change(contact);
                record_change(&mut *tx, customer_id, kind, &contact.contact_id, now).await?;
            }
            Ok(created)
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
        /// One change of the outbox: customer, kind, reference, time.
        const INSERT_CHANGE_SQL: &str =
            "INSERT INTO changes (customer_id, kind, ref_id, at) VALUES ($1, $2, $3, $4)";

        async fn record_change(
            conn: &mut Conn,
            customer_id: &str,
            kind: ChangeKind,
            ref_id: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            lock_outbox(conn).await?;
            sqlx::query(INSERT_CHANGE_SQL)
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
        /// Contacts (19 columns) per INSERT: 1,700 × 19 = 32,300 parameters.
        /// Fewer, larger statements: each one costs the building of its
        /// SQL and a round trip to the database thread.
        const CONTACTS_PER_INSERT: usize = 1_700;

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
            for chunk in contacts.chunks(CONTACTS_PER_INSERT) {
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
