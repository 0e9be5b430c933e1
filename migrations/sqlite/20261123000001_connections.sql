-- Connections to OpenAI organizations. The admin key is stored only sealed (AES-256-GCM,
-- bound to connection_id and key_version); key_hint is the only readable trace of it.
CREATE TABLE connections (
    connection_id            TEXT PRIMARY KEY NOT NULL,
    name                     TEXT NOT NULL UNIQUE,
    base_url                 TEXT NOT NULL,
    expected_organization_id TEXT,
    key_hint                 TEXT NOT NULL,
    key_version              INTEGER NOT NULL,
    key_ciphertext           BLOB NOT NULL,
    last_test_report         TEXT,
    created_at               TEXT NOT NULL,
    created_by               TEXT NOT NULL,
    updated_at               TEXT NOT NULL,
    updated_by               TEXT NOT NULL
);
CREATE INDEX connections_key_version ON connections (key_version);
