-- Inventory snapshots. Each sync writes its items under its own sync_id; readers only see the
-- snapshot named by inventory_heads, which a successful sync switches in one transaction, so
-- a sync that fails midway is never visible.
CREATE TABLE inventory_syncs (
    sync_id       TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (connection_id) ON DELETE CASCADE,
    status        TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    stats         JSONB NOT NULL,
    error         TEXT
);
CREATE INDEX inventory_syncs_connection ON inventory_syncs (connection_id, sync_id);

CREATE TABLE inventory_heads (
    connection_id TEXT PRIMARY KEY REFERENCES connections (connection_id) ON DELETE CASCADE,
    sync_id       TEXT NOT NULL,
    synced_at     TIMESTAMPTZ NOT NULL
);

-- One sync per connection at a time, also across replicas: a lease taken by a conditional
-- upsert and renewed while the sync runs (expires_at in Unix milliseconds).
CREATE TABLE sync_leases (
    connection_id TEXT PRIMARY KEY REFERENCES connections (connection_id) ON DELETE CASCADE,
    sync_id       TEXT NOT NULL,
    expires_at    BIGINT NOT NULL
);

CREATE TABLE inventory_items (
    sync_id    TEXT NOT NULL REFERENCES inventory_syncs (sync_id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    item_key   TEXT NOT NULL,
    parent_id  TEXT,
    subject_id TEXT,
    email      TEXT,
    role       TEXT,
    status     TEXT,
    data       JSONB NOT NULL,
    PRIMARY KEY (sync_id, kind, item_key)
);
CREATE INDEX inventory_items_parent ON inventory_items (sync_id, kind, parent_id, item_key);
CREATE INDEX inventory_items_subject ON inventory_items (subject_id) WHERE subject_id IS NOT NULL;
CREATE INDEX inventory_items_email ON inventory_items (email) WHERE email IS NOT NULL;
