-- The read model (src/store/read_model.rs): every replica holds each connection's current
-- snapshot in memory. A write-through bumps the head's version and logs which items it
-- touched, so the other replicas re-read just those items instead of the whole snapshot.
ALTER TABLE inventory_heads ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

CREATE TABLE head_patches (
    connection_id TEXT NOT NULL REFERENCES connections (connection_id) ON DELETE CASCADE,
    version       BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    item_key      TEXT NOT NULL,
    PRIMARY KEY (connection_id, version, kind, item_key)
);
