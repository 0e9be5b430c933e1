-- Trust (issue 11): a connection is pinned to the organization its key reached first, a new
-- key or base URL must be tested before use, and the sealed key is bound to the base URL
-- (key_binding 2; rows still at 1 are re-sealed at start-up, see service::rekey).
ALTER TABLE connections ADD COLUMN organization_id TEXT;
ALTER TABLE connections ADD COLUMN test_required INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN key_binding INTEGER NOT NULL DEFAULT 1;

-- Grants outlive their connection: deleting one (refused while grants are live) keeps every
-- grant record, with the column cleared; `data` still names the connection. SQLite cannot
-- change a foreign key in place, so the table is rebuilt (nothing references it).
CREATE TABLE grants_new (
    grant_id      TEXT PRIMARY KEY,
    connection_id TEXT REFERENCES connections (connection_id) ON DELETE SET NULL,
    status        TEXT NOT NULL,
    email         TEXT,
    user_id       TEXT,
    project_id    TEXT,
    expires_at    TEXT,
    access_key    TEXT NOT NULL,
    lock_key      TEXT UNIQUE,
    lease_owner   TEXT,
    lease_until   TEXT,
    created_at    TEXT NOT NULL,
    data          TEXT NOT NULL
);
INSERT INTO grants_new (grant_id, connection_id, status, email, user_id, project_id, expires_at,
    access_key, lock_key, lease_owner, lease_until, created_at, data)
SELECT grant_id, connection_id, status, email, user_id, project_id, expires_at,
    access_key, lock_key, lease_owner, lease_until, created_at, data FROM grants;
DROP TABLE grants;
ALTER TABLE grants_new RENAME TO grants;
CREATE INDEX grants_connection ON grants (connection_id, grant_id);
CREATE INDEX grants_status ON grants (status, expires_at);
CREATE INDEX grants_email ON grants (email);
CREATE INDEX grants_access ON grants (access_key);
