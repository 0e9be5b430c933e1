-- What each connection's OpenAI rate budget learned from 429s (requests a second per endpoint
-- template, or per concrete path where the limit was the path's own), so that a restart or
-- another replica starts from it instead of drawing the same 429s again. The newest wins.
CREATE TABLE learned_rates (
    connection_id TEXT NOT NULL REFERENCES connections (connection_id) ON DELETE CASCADE,
    scope         TEXT NOT NULL,
    per_path      BOOLEAN NOT NULL,
    per_second    REAL NOT NULL,
    learned_at_ms BIGINT NOT NULL,
    PRIMARY KEY (connection_id, scope, per_path)
);
