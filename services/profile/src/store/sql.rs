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
//! windowed counters read only the last 90 days, lists stop at a LIMIT, and
//! the all-time total, wait evidence and affinity agents are answered from
//! the index or a partial index. Nothing loads the history into Rust.

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
            WaitEvidence, limits,
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
                tx.commit().await?;
                Ok(inserted.rows_affected() == 1)
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
                sqlx::query(
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
                .await?;
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
                sqlx::query(
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
                tx.commit().await?;
                Ok(())
            }
        }

        #[derive(Clone, Copy, PartialEq, Eq)]
        enum WriteMode {
            /// Refuse an existing id.
            Create,
            /// Replace an existing customer, keeping its creation time.
            Upsert,
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
                do_not_call_source, do_not_call_at, version, created_at, updated_at) \
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, 1, $27, $27) ";
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
                do_not_call_at = excluded.do_not_call_at, \
                version = customers.version + 1, updated_at = excluded.updated_at";
            const ON_CONFLICT_REFUSE: &str = "ON CONFLICT (customer_id) DO NOTHING";

            let followers = i64::try_from(c.public_influence.social_followers).map_err(|_| {
                StoreError::Corrupt("social_followers exceeds the storable range".into())
            })?;
            let windows = codec::windows(&c.preferences.contact_windows)?;
            let sql = match mode {
                WriteMode::Create => [INSERT, ON_CONFLICT_REFUSE].concat(),
                WriteMode::Upsert => [INSERT, ON_CONFLICT_REPLACE].concat(),
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
            let customer = load_customer(conn, customer_id, now)
                .await?
                .ok_or(StoreError::CustomerNotFound)?;
            let summary = load_summary(conn, customer_id, now).await?;
            Ok(Profile { customer, summary })
        }

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
                 do_not_call_at, version, created_at, updated_at \
                 FROM customers WHERE customer_id = $1",
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
            Ok(Some(Customer {
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
            }))
        }

        async fn load_summary(
            conn: &mut Conn,
            customer_id: &str,
            now: DateTime<Utc>,
        ) -> Result<HistorySummary, StoreError> {
            let since_7d = ts(now - chrono::Duration::days(7));
            let since_30d = ts(now - chrono::Duration::days(30));
            let since_90d = ts(now - chrono::Duration::days(90));

            // Totals over the whole history come from the index alone
            // (customer_id, started_at), without reading contact rows.
            let totals = sqlx::query(
                "SELECT COUNT(*) AS total, MAX(started_at) AS last_at \
                 FROM contacts WHERE customer_id = $1",
            )
            .bind(customer_id)
            .fetch_one(&mut *conn)
            .await?;

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
                total_contacts: codec::count(totals.try_get::<i64, _>("total")?),
                complaints_90d: get("complaints")?,
                escalation_threats_90d: get("threats")?,
                abandoned_90d: get("abandoned")?,
                solutions_rejected_90d: get("rejected")?,
                compensation_asked_90d: get("compensation")?,
                mean_handle_s_90d: mean_handle,
                waits_before_complaints: waits,
                last_contact_at: totals
                    .try_get::<Option<Ts>, _>("last_at")?
                    .map(from_ts)
                    .transpose()?,
                recent_contacts,
                recent_events,
                recent_campaigns,
                affinity_agent_ids,
            })
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
