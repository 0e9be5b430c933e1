-- The audit trail as a hash chain: each entry carries a dense sequence number, the hash of the
-- previous entry and its own hash (computed by the service over the stored columns), so
-- `openai-governor audit verify` finds any gap or edit, even one made by whoever can write
-- the file. Entries appended before this migration have no `seq`: they are reported as
-- unchained. (SQLite has no TRUNCATE; DELETE is refused by the existing trigger.)
ALTER TABLE audit_events ADD COLUMN seq INTEGER;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_events_seq ON audit_events (seq);

-- The chain's head: the last entry's seq and hash (and the hash before it). Appending writes this row first, which
-- (with SQLite's single writer) serializes appenders and makes `seq` dense.
-- `legacy_through` is the last entry that existed before the chain began.
CREATE TABLE audit_chain_head (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    seq            INTEGER NOT NULL,
    hash           TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    legacy_through INTEGER NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash, prev_hash, legacy_through)
SELECT 1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
       '0000000000000000000000000000000000000000000000000000000000000000', COALESCE(MAX(event_id), 0) FROM audit_events;

CREATE TRIGGER audit_chain_head_forward BEFORE UPDATE ON audit_chain_head
WHEN NEW.id <> OLD.id OR NEW.seq < OLD.seq OR NEW.legacy_through <> OLD.legacy_through
BEGIN
    SELECT RAISE(ABORT, 'audit_chain_head only moves forward');
END;
CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
BEGIN
    SELECT RAISE(ABORT, 'audit_chain_head only moves forward');
END;
