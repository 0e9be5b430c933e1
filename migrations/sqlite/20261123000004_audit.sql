-- The audit trail: every change openai-governor makes or attempts, appended and never changed.
-- No foreign keys: an entry outlives the connection or grant it names. The triggers make the
-- table append-only for every writer, not just for our API.
CREATE TABLE audit_events (
    event_id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at                  TEXT NOT NULL,
    actor               TEXT NOT NULL,
    client_id           TEXT,
    action              TEXT NOT NULL,
    outcome             TEXT NOT NULL,
    connection_id       TEXT,
    grant_id            TEXT,
    user_id             TEXT,
    email               TEXT,
    project_id          TEXT,
    group_id            TEXT,
    reason              TEXT,
    ticket              TEXT,
    upstream_request_id TEXT,
    before_state        TEXT,   -- JSON
    after_state         TEXT,   -- JSON
    detail              TEXT    -- JSON
);
CREATE INDEX audit_events_connection ON audit_events (connection_id, event_id);
CREATE INDEX audit_events_actor ON audit_events (actor, event_id);
CREATE INDEX audit_events_email ON audit_events (email, event_id);
CREATE INDEX audit_events_user ON audit_events (user_id, event_id);
CREATE INDEX audit_events_project ON audit_events (project_id, event_id);
CREATE INDEX audit_events_grant ON audit_events (grant_id, event_id);
CREATE INDEX audit_events_at ON audit_events (at);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
