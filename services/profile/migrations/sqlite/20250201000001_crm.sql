-- CRM completion (SQLite). Keep it in step with ../postgres.
--
-- - customers.tier: the value tier, stored so CRM can search by it through
--   an index. Computed on every write from assets, contribution and
--   potential value with the thresholds of policy/classification.toml
--   (src/model.rs `tier` mirrors them, and a unit test checks they agree).
-- - customers.total_contacts / last_contact_at: maintained by every
--   recorded contact, so the hot path never counts a customer's history.
-- - care_notes: written after each care contact.
-- - changes: the outbox behind WatchChanges, written in the same
--   transaction as the change it announces; change_id only grows.

ALTER TABLE customers ADD COLUMN tier TEXT NOT NULL DEFAULT 'standard'
    CHECK (tier IN ('standard', 'preferred', 'vip'));
UPDATE customers SET tier = CASE
    WHEN assets >= 5000000 OR contribution >= 500000 OR potential_value >= 20000000 THEN 'vip'
    WHEN assets >= 500000 OR contribution >= 50000 OR potential_value >= 2000000 THEN 'preferred'
    ELSE 'standard' END;
CREATE INDEX customers_by_tier ON customers (tier, customer_id);

ALTER TABLE customers ADD COLUMN total_contacts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE customers ADD COLUMN last_contact_at INTEGER;
UPDATE customers SET
    total_contacts = (SELECT COUNT(*) FROM contacts c WHERE c.customer_id = customers.customer_id),
    last_contact_at = (SELECT MAX(started_at) FROM contacts c
                       WHERE c.customer_id = customers.customer_id);

CREATE TABLE care_notes (
    customer_id TEXT    NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    note_id     TEXT    NOT NULL,
    -- The care task or contact the note was written after ('' if none).
    contact_id  TEXT    NOT NULL DEFAULT '',
    author      TEXT    NOT NULL DEFAULT '',
    text        TEXT    NOT NULL,
    -- JSON array of strings.
    topics      TEXT    NOT NULL DEFAULT '[]',
    -- JSON array of the tags the note added, as they were added: the note
    -- keeps its history even after a tag is removed or expires.
    added_tags  TEXT    NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (customer_id, note_id)
);
CREATE INDEX care_notes_by_customer ON care_notes (customer_id, created_at DESC, note_id DESC);

CREATE TABLE changes (
    -- AUTOINCREMENT: ids are never reused, even after the newest rows are
    -- deleted, so a resume token never points at a different change.
    change_id   INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    -- No foreign key: the ERASED change outlives the customer.
    customer_id TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('customer_upserted', 'contact_recorded',
                    'complaint', 'preferences_changed', 'consent_changed', 'event_recorded',
                    'erased', 'care_note_added', 'campaign_recorded')),
    -- The contact, event or note id the change is about ('' if none).
    ref_id      TEXT    NOT NULL DEFAULT '',
    at          INTEGER NOT NULL
);
CREATE INDEX changes_by_customer ON changes (customer_id);
