-- Idempotency keys expire (OG_IDEMPOTENCY_TTL): the purge finds old ones by creation time.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
