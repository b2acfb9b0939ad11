-- The profile schema (SQLite). Keep it in step with ../postgres: same
-- tables, columns, constraints and indexes; only the types differ.
--
-- Timestamps are INTEGER microseconds since the Unix epoch (UTC), so they
-- compare and index as plain integers. Booleans are 0/1. Enumerations are
-- short lowercase names (see src/store/codec.rs), checked here too.
-- Every table below customers references it with ON DELETE CASCADE, so
-- erasing a customer removes all their rows.

CREATE TABLE customers (
    customer_id                TEXT    NOT NULL PRIMARY KEY,
    name                       TEXT    NOT NULL DEFAULT '',
    form_of_address            TEXT    NOT NULL DEFAULT '',
    locale                     TEXT    NOT NULL DEFAULT '',
    language                   TEXT    NOT NULL DEFAULT '',
    dialect                    TEXT    NOT NULL DEFAULT '',
    region                     TEXT    NOT NULL DEFAULT '',
    city                       TEXT    NOT NULL DEFAULT '',
    time_zone                  TEXT    NOT NULL DEFAULT '',
    age_band                   TEXT    NOT NULL DEFAULT '',
    occupation                 TEXT    NOT NULL DEFAULT '',
    assets                     INTEGER NOT NULL DEFAULT 0,
    contribution               INTEGER NOT NULL DEFAULT 0,
    potential_value            INTEGER NOT NULL DEFAULT 0,
    segment                    TEXT    NOT NULL DEFAULT '',
    social_followers           INTEGER NOT NULL DEFAULT 0 CHECK (social_followers >= 0),
    media_presence             BOOLEAN NOT NULL DEFAULT 0,
    -- Preferences.
    preferred_agent_id         TEXT    NOT NULL DEFAULT '',
    dedicated_field_manager_id TEXT    NOT NULL DEFAULT '',
    preferred_channel          TEXT    CHECK (preferred_channel IN
                                   ('voice', 'chat', 'email', 'social', 'video', 'field_visit')),
    -- JSON array of {"days":[1..7],"start":minute,"end":minute}.
    contact_windows            TEXT    NOT NULL DEFAULT '[]',
    preferred_language         TEXT    NOT NULL DEFAULT '',
    -- Consent.
    care_calls_consent         BOOLEAN NOT NULL DEFAULT 0,
    do_not_call                BOOLEAN NOT NULL DEFAULT 0,
    do_not_call_source         TEXT    NOT NULL DEFAULT '',
    do_not_call_at             INTEGER,
    -- Optimistic concurrency: +1 on every write to the record.
    version                    INTEGER NOT NULL CHECK (version >= 1),
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
);

-- CRM searches by segment (paginated by customer_id).
CREATE INDEX customers_by_segment ON customers (segment, customer_id);

-- Declared needs, one row per need, so customers can be searched by need.
CREATE TABLE customer_needs (
    customer_id TEXT    NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    need        TEXT    NOT NULL CHECK (need IN ('recognition', 'soothing', 'compensation',
                    'improvement_measures', 'concrete_plan', 'just_talk')),
    weight      REAL    NOT NULL CHECK (weight >= 0 AND weight <= 1),
    position    INTEGER NOT NULL,
    PRIMARY KEY (customer_id, need)
);
CREATE INDEX customer_needs_by_need ON customer_needs (need, customer_id);

-- A number belongs to at most one customer: the primary key is the E.164
-- number itself, which is also the lookup-by-phone index.
CREATE TABLE phones (
    number      TEXT    NOT NULL PRIMARY KEY,
    customer_id TEXT    NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    label       TEXT    NOT NULL DEFAULT '',
    position    INTEGER NOT NULL
);
CREATE INDEX phones_by_customer ON phones (customer_id, position);

CREATE TABLE tags (
    tag_id      TEXT    NOT NULL PRIMARY KEY,
    customer_id TEXT    NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL CHECK (kind IN ('address_form', 'call_pattern',
                    'handling_habit', 'caution', 'interest', 'other')),
    text        TEXT    NOT NULL CHECK (length(text) > 0),
    author      TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    -- NULL: never expires.
    expires_at  INTEGER
);
CREATE INDEX tags_by_customer ON tags (customer_id, created_at, tag_id);
CREATE INDEX tags_by_kind ON tags (kind, customer_id);

CREATE TABLE contacts (
    customer_id          TEXT    NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    -- Caller-chosen (e.g. the routing call id): recording is idempotent.
    contact_id           TEXT    NOT NULL,
    channel              TEXT    NOT NULL CHECK (channel IN
                             ('voice', 'chat', 'email', 'social', 'video', 'field_visit')),
    direction            TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    started_at           INTEGER NOT NULL,
    ivr_selection        TEXT    NOT NULL DEFAULT '',
    queue_wait_s         INTEGER NOT NULL DEFAULT 0 CHECK (queue_wait_s >= 0),
    handle_s             INTEGER NOT NULL DEFAULT 0 CHECK (handle_s >= 0),
    agent_id             TEXT    NOT NULL DEFAULT '',
    -- NULL: not reported.
    outcome              TEXT    CHECK (outcome IN
                             ('resolved', 'unresolved', 'escalated', 'abandoned', 'callback')),
    complaint            BOOLEAN NOT NULL DEFAULT 0,
    escalation_threat    BOOLEAN NOT NULL DEFAULT 0,
    -- NULL: not given.
    csat                 INTEGER CHECK (csat BETWEEN 1 AND 5),
    solutions_offered    INTEGER NOT NULL DEFAULT 0 CHECK (solutions_offered >= 0),
    solutions_rejected   INTEGER NOT NULL DEFAULT 0 CHECK (solutions_rejected >= 0),
    compensation_asked   BOOLEAN NOT NULL DEFAULT 0,
    compensation_granted BOOLEAN NOT NULL DEFAULT 0,
    notes                TEXT    NOT NULL DEFAULT '',
    recorded_at          INTEGER NOT NULL,
    PRIMARY KEY (customer_id, contact_id)
);
-- History newest first: the summary's windows and recent contacts, and
-- paginated listing (contact_id breaks ties for a stable cursor).
CREATE INDEX contacts_by_customer_recent
    ON contacts (customer_id, started_at DESC, contact_id DESC);
-- Only the contacts that are evidence of a customer's patience.
CREATE INDEX contacts_wait_evidence
    ON contacts (customer_id, started_at DESC, contact_id DESC)
    WHERE queue_wait_s > 0 AND (complaint OR outcome = 'abandoned');
-- Only the contacts that make an agent a customer's affinity agent.
CREATE INDEX contacts_affinity
    ON contacts (customer_id, agent_id, started_at)
    WHERE outcome = 'resolved' AND csat >= 4;

-- Life and product events (moments of truth).
CREATE TABLE events (
    customer_id TEXT    NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    event_id    TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '',
    occurred_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (customer_id, event_id)
);
CREATE INDEX events_by_customer_recent
    ON events (customer_id, occurred_at DESC, event_id DESC);

-- Campaigns sent to a customer.
CREATE TABLE campaign_exposures (
    customer_id TEXT    NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    campaign_id TEXT    NOT NULL,
    channel     TEXT    NOT NULL CHECK (channel IN
                    ('voice', 'chat', 'email', 'social', 'video', 'field_visit')),
    title       TEXT    NOT NULL DEFAULT '',
    sent_at     INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (customer_id, campaign_id, channel, sent_at)
);
CREATE INDEX campaign_exposures_by_customer_recent
    ON campaign_exposures (customer_id, sent_at DESC, campaign_id DESC);
