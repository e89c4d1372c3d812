-- The admin's server-side state: sessions, the audit log, and login throttling.

-- Sessions live in PostgreSQL so any replica serves any user. Only a SHA-256 of the
-- cookie's token is stored: a leaked table (backup, replica) gives no usable sessions.
CREATE TABLE admin_sessions (
    token_hash   BYTEA PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    client_addr  TEXT
);
CREATE INDEX admin_sessions_user_id ON admin_sessions (user_id);
-- Expired sessions are swept by age; these make the sweep an index range scan.
CREATE INDEX admin_sessions_last_seen_at ON admin_sessions (last_seen_at);
CREATE INDEX admin_sessions_created_at ON admin_sessions (created_at);

-- Who changed what in the admin, and how. `username` is a snapshot and `user_id` has no
-- foreign key, so entries outlive the users they mention.
CREATE TABLE admin_audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    user_id     BIGINT,
    username    TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   BIGINT,
    object_repr TEXT NOT NULL DEFAULT '',
    before      JSONB,
    after       JSONB,
    client_addr TEXT
);
CREATE INDEX admin_audit_log_at ON admin_audit_log (at DESC, id DESC);
CREATE INDEX admin_audit_log_user_id ON admin_audit_log (user_id, at DESC);

-- Append-only: the application never changes history, and neither can a bug in it.
-- (An operator who must purge old entries can DISABLE TRIGGER for that one statement.)
CREATE FUNCTION admin_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit_log is append-only';
END;
$$;

CREATE TRIGGER admin_audit_log_no_changes
BEFORE UPDATE OR DELETE ON admin_audit_log
FOR EACH ROW EXECUTE FUNCTION admin_audit_log_append_only();

-- Failed logins per key ('user:<lowercased name>' or 'addr:<ip>'), shared by replicas.
CREATE TABLE admin_login_failures (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL DEFAULT 0,
    first_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_until TIMESTAMPTZ
);
