-- The audit trail as a hash chain: each entry carries a dense sequence number, the hash of the
-- previous entry and its own hash (computed by the service over the stored columns), so
-- `openai-governor audit verify` finds any gap or edit, even one made by the table's owner.
-- Entries appended before this migration have no `seq`: they are reported as unchained.
ALTER TABLE audit_events
    ADD COLUMN seq       BIGINT,
    ADD COLUMN prev_hash TEXT,
    ADD COLUMN hash      TEXT;
CREATE UNIQUE INDEX audit_events_seq ON audit_events (seq);

-- The chain's head: the last entry's seq and hash (and the hash before it). Appending locks this one row, which
-- serializes appenders (inside the caller's transaction) and makes `seq` dense.
-- `legacy_through` is the last entry that existed before the chain began.
CREATE TABLE audit_chain_head (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    seq            BIGINT NOT NULL,
    hash           TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    legacy_through BIGINT NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash, prev_hash, legacy_through)
SELECT 1, 0, repeat('0', 64), repeat('0', 64), COALESCE(MAX(event_id), 0) FROM audit_events;

-- TRUNCATE skips row triggers: refuse it with a statement trigger.
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- The head only moves forward; it is never deleted and `legacy_through` never changes.
CREATE FUNCTION audit_chain_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.id <> OLD.id OR NEW.seq < OLD.seq
       OR NEW.legacy_through <> OLD.legacy_through THEN
        RAISE EXCEPTION 'audit_chain_head only moves forward';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_chain_head_forward BEFORE UPDATE OR DELETE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward_only();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Whatever a deployment granted on the trail (for example default privileges giving the
-- service's role every table right), no role but the owner keeps more than reading and
-- appending (and moving the head forward). The migrations' own record is the owner's too.
DO $$
DECLARE r record;
BEGIN
    FOR r IN
        SELECT DISTINCT c.relname, a.grantee
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid IN (to_regclass('audit_events'), to_regclass('audit_chain_head'),
                        to_regclass('_sqlx_migrations'))
          AND a.grantee <> c.relowner
    LOOP
        EXECUTE format(
            'REVOKE %s ON %I FROM %s',
            CASE r.relname
                WHEN 'audit_events' THEN 'UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'
                WHEN 'audit_chain_head' THEN 'INSERT, DELETE, TRUNCATE, REFERENCES, TRIGGER'
                ELSE 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER' END,
            r.relname,
            CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.grantee)) END);
    END LOOP;
END;
$$;
