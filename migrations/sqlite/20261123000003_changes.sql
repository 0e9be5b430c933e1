-- The changes feed: what differs between a connection's previous and new snapshot, written by
-- the transaction that publishes the new one (so a failed sync records nothing). Cost items
-- are not compared (each day brings new ones).
CREATE TABLE inventory_changes (
    change_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id TEXT NOT NULL REFERENCES connections (connection_id) ON DELETE CASCADE,
    sync_id       TEXT NOT NULL,
    seen_at       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    item_key      TEXT NOT NULL,
    change        TEXT NOT NULL,   -- added | removed | changed
    parent_id     TEXT,
    subject_id    TEXT,
    email         TEXT,
    role_before   TEXT,
    role_after    TEXT,
    status_before TEXT,
    status_after  TEXT,
    data_before   TEXT,            -- the item's data in the previous snapshot (JSON)
    data_after    TEXT,            -- and in the new one
    by_governor   BOOLEAN NOT NULL DEFAULT 0
);
CREATE INDEX inventory_changes_connection ON inventory_changes (connection_id, change_id);
CREATE INDEX inventory_changes_seen ON inventory_changes (seen_at);

-- Changes openai-governor is about to make itself: the diff that observes one (same item,
-- change and, when given, new role/status, before until_at) marks it by_governor, not drift.
CREATE TABLE expected_changes (
    expected_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id TEXT NOT NULL REFERENCES connections (connection_id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    item_key      TEXT NOT NULL,
    change        TEXT NOT NULL,
    role          TEXT,
    status        TEXT,
    until_at      TEXT NOT NULL
);
CREATE INDEX expected_changes_item ON expected_changes (connection_id, kind, item_key);
