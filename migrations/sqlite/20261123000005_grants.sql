-- Grants: the whole record is `data` (JSON); the columns beside it are what queries filter,
-- claim and lock on, rewritten with it on every change.
CREATE TABLE grants (
    grant_id      TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (connection_id) ON DELETE CASCADE,
    status        TEXT NOT NULL,
    email         TEXT,
    user_id       TEXT,
    project_id    TEXT,
    expires_at    TEXT,
    access_key    TEXT NOT NULL,
    -- Set to access_key while a write on that access is in flight: the unique index lets one
    -- write at a time touch a membership, across requests and replicas.
    lock_key      TEXT UNIQUE,
    -- Who works on the grant until when: a request, the expiry worker or the reconciler. A
    -- pending grant whose lease ran out was interrupted and is reconciled.
    lease_owner   TEXT,
    lease_until   TEXT,
    created_at    TEXT NOT NULL,
    data          TEXT NOT NULL
);
CREATE INDEX grants_connection ON grants (connection_id, grant_id);
CREATE INDEX grants_status ON grants (status, expires_at);
CREATE INDEX grants_email ON grants (email);
CREATE INDEX grants_access ON grants (access_key);

-- Idempotency-Key: the first request's fingerprint and answer, per caller and key.
CREATE TABLE idempotency_keys (
    subject     TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    operation   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_code INTEGER,         -- NULL while the first request is in progress
    response    TEXT,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (subject, idem_key)
);
