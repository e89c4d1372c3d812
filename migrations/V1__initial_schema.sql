-- Users of the admin (the Django auth_user equivalent). Passwords are argon2id PHC strings.
CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_active     BOOLEAN NOT NULL DEFAULT TRUE,
    is_staff      BOOLEAN NOT NULL DEFAULT FALSE,
    is_superuser  BOOLEAN NOT NULL DEFAULT FALSE,
    date_joined   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login    TIMESTAMPTZ,
    CONSTRAINT users_username_valid CHECK (username ~ '^[A-Za-z0-9@.+_-]{1,150}$')
);
-- Usernames are unique regardless of case, so "Admin" cannot shadow "admin".
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

-- The greetings that GET / can serve; exactly one is active at a time.
CREATE TABLE greetings (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message    TEXT NOT NULL CHECK (length(message) BETWEEN 1 AND 500),
    is_active  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- At most one active greeting, enforced by the database rather than by every caller.
CREATE UNIQUE INDEX greetings_one_active ON greetings (is_active) WHERE is_active;

INSERT INTO greetings (message, is_active) VALUES ('Hello, World!', TRUE);

-- Every replica LISTENs on this channel and reloads its in-memory greeting when it fires,
-- whatever wrote the change (the admin, psql, a later migration).
CREATE FUNCTION notify_greeting_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('greeting_changed', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER greetings_notify
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON greetings
FOR EACH STATEMENT EXECUTE FUNCTION notify_greeting_changed();
