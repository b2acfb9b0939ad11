-- Outbound and complaint facts of the history summary, and change-feed
-- retention (PostgreSQL). Keep it in step with ../sqlite.
--
-- - contacts_outbound / contacts_complaints: partial indexes, so
--   last_outbound_at and the newest complaint (with its outcome) are one
--   index seek each, whatever the length of the history. outbound_30d is
--   counted in the 90-day range scan the other windowed counters use.
-- - changes_by_at: pruning finds the changes older than the retention
--   without scanning the outbox.
-- - change_horizon: the highest change id pruned so far. A resume token
--   below it may have missed changes, so WatchChanges refuses it
--   (OUT_OF_RANGE) and the consumer rebuilds from ExportProfiles.

CREATE INDEX contacts_outbound
    ON contacts (customer_id, started_at DESC)
    WHERE direction = 'outbound';
CREATE INDEX contacts_complaints
    ON contacts (customer_id, started_at DESC, contact_id DESC)
    WHERE complaint;

CREATE INDEX changes_by_at ON changes (at);

CREATE TABLE change_horizon (
    id             INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    pruned_through BIGINT  NOT NULL
);
INSERT INTO change_horizon (id, pruned_through) VALUES (1, 0);
