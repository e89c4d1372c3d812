-- The JSON API's bearer tokens (/api/v1/). Only a SHA-256 of each token is stored: the
-- token itself (grt_ + 256 random bits) is shown once, at creation. Old replicas never
-- read these tables, so they keep working while new ones roll out.
CREATE TABLE api_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash   BYTEA NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    -- The first characters of the token, so an owner can tell their tokens apart.
    token_prefix TEXT NOT NULL,
    owner_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scopes       TEXT[] NOT NULL CHECK (
        cardinality(scopes) >= 1
        AND scopes <@ ARRAY['greetings:read', 'greetings:write']::TEXT[]
    ),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_tokens_owner_id ON api_tokens (owner_id, created_at DESC);

-- Every replica keeps the valid tokens in memory and reloads them when this fires: a
-- revocation (or a new token, an expiry change, an owner losing admin rights) is seen by
-- all replicas at once. last_used_at is not in the column list, so the throttled
-- last-use writes never make the replicas reload.
CREATE FUNCTION notify_api_tokens_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('api_tokens_changed', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_tokens_notify
AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF name, token_hash, owner_id, scopes, expires_at, revoked_at
ON api_tokens
FOR EACH STATEMENT EXECUTE FUNCTION notify_api_tokens_changed();

-- A token is only as good as its owner: deactivating or demoting a user ends their tokens.
CREATE TRIGGER users_notify_api_tokens
AFTER DELETE OR UPDATE OF is_active, is_staff, is_superuser ON users
FOR EACH STATEMENT EXECUTE FUNCTION notify_api_tokens_changed();

-- Changes made through the API name the token as well as its owner (user_id, username).
ALTER TABLE admin_audit_log ADD COLUMN api_token_id BIGINT;
ALTER TABLE admin_audit_log ADD COLUMN api_token_name TEXT;
