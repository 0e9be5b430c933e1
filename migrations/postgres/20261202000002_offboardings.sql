-- Offboarding requests, recorded before anything is sent to OpenAI and finished by a task
-- that outlives the request: a caller that goes away never leaves a half-done offboarding
-- without a record. The whole record is `data` (JSON). The task holds a lease it renews; a
-- running request whose lease ran out (its process died) is resumed by the worker.
CREATE TABLE offboardings (
    offboarding_id TEXT PRIMARY KEY,
    status         TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    lease_owner    TEXT,
    lease_until    TIMESTAMPTZ,
    data           JSONB NOT NULL
);
CREATE INDEX offboardings_status ON offboardings (status, lease_until);
