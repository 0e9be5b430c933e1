-- What each connection's OpenAI rate budget learned from 429s: so many requests per window,
-- per endpoint template or, where the limit was the path's own, per concrete path. Kept so a
-- restart or another replica starts from it instead of drawing the same 429s again; the
-- newest wins.
CREATE TABLE learned_rates (
    connection_id TEXT NOT NULL REFERENCES connections (connection_id) ON DELETE CASCADE,
    scope         TEXT NOT NULL,
    per_path      BOOLEAN NOT NULL,
    requests      BIGINT NOT NULL,
    window_ms     BIGINT NOT NULL,
    learned_at_ms BIGINT NOT NULL,
    PRIMARY KEY (connection_id, scope, per_path)
);
