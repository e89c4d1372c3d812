-- "At least one active staff superuser" kept by the database, not only by the admin's
-- handlers: two superusers deleting or demoting each other at the same moment (or any
-- psql session) cannot leave nobody who can manage users.

-- One row that every transaction removing a superuser updates before it checks. Two such
-- transactions therefore queue on its row lock: under READ COMMITTED the second one's
-- check runs after the first committed and sees its change; under REPEATABLE READ or
-- SERIALIZABLE the second one fails with a serialization error (40001) instead.
CREATE TABLE admin_superuser_guard (
    id         BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO admin_superuser_guard DEFAULT VALUES;

CREATE FUNCTION users_keep_one_superuser() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE admin_superuser_guard SET changed_at = now();
    -- A statement of its own: under READ COMMITTED it sees whatever committed while the
    -- UPDATE above waited.
    IF NOT EXISTS (SELECT 1 FROM users WHERE is_active AND is_staff AND is_superuser) THEN
        RAISE EXCEPTION 'at least one active staff superuser must remain'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'users_one_active_superuser';
    END IF;
    RETURN NULL;
END;
$$;

-- Deferred to COMMIT, so one transaction may demote one superuser and promote another
-- in either order. They fire only for a row that stops being an active staff superuser
-- (not for a superuser's login updating last_login).
CREATE CONSTRAINT TRIGGER users_one_active_superuser_update
AFTER UPDATE ON users
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW
WHEN (OLD.is_active AND OLD.is_staff AND OLD.is_superuser
      AND NOT (NEW.is_active AND NEW.is_staff AND NEW.is_superuser))
EXECUTE FUNCTION users_keep_one_superuser();

CREATE CONSTRAINT TRIGGER users_one_active_superuser_delete
AFTER DELETE ON users
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW
WHEN (OLD.is_active AND OLD.is_staff AND OLD.is_superuser)
EXECUTE FUNCTION users_keep_one_superuser();

-- The sessions list on the password-change page: an id to name a session in a form
-- (never its token hash), and the browser it was started from.
ALTER TABLE admin_sessions
    ADD COLUMN id BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    ADD COLUMN user_agent TEXT;
