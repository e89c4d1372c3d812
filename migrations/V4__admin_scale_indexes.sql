-- greeter:no-transaction
-- The indexes behind the admin's lists at scale (a million audit entries, 100,000 users):
-- every list page is an index seek to where the page starts (keyset pagination on the sort
-- key plus `id`), the user search is served by a trigram index, the audit filters and the
-- index page's "recent actions" by one index each.
--
-- The marker on the first line makes greeter-migrate run this file outside a transaction,
-- one statement at a time (src/migrations.rs; refinery 0.10 itself always wraps a migration
-- in a transaction), so that CREATE INDEX CONCURRENTLY builds each index without blocking
-- writes to a large table: the admin keeps working while it runs. Statements end with `;`
-- at the end of a line; a DO block's body is quoted with $$.
--
-- Safe to re-run after an interruption (a killed job, a lost connection, a failed build):
-- a concurrent build that did not finish leaves an INVALID index behind, which CREATE INDEX
-- ... IF NOT EXISTS would keep. So the first DO block drops any invalid index of these
-- names (a plain DROP INDEX: a DO block runs in a transaction, where DROP INDEX
-- CONCURRENTLY cannot; it only happens after an interrupted run and takes the table's lock
-- for the moment the drop needs), IF NOT EXISTS then skips the indexes that were built,
-- and the last DO block fails the migration unless all of them exist and are valid.

-- A trusted extension (PostgreSQL 13+): the database owner may create it, no superuser
-- needed.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

DO $$
DECLARE
    invalid text;
BEGIN
    FOR invalid IN
        SELECT format('%I.%I', n.nspname, c.relname)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema()
          AND NOT i.indisvalid
          AND c.relname IN ('users_username_trgm', 'users_lower_username_id',
                            'users_date_joined_id', 'users_last_login_id', 'greetings_list',
                            'admin_audit_log_action_at', 'admin_audit_log_object_type_at',
                            'admin_audit_log_username_at', 'admin_audit_log_recent')
    LOOP
        RAISE NOTICE 'dropping the invalid index % left by an interrupted build', invalid;
        EXECUTE 'DROP INDEX ' || invalid;
    END LOOP;
END
$$;

-- Users: `ILIKE '%q%'` searches (pg_trgm lowercases, so it serves ILIKE), and one index
-- per ordering of the list. fastupdate = off: new users go straight into the trigram
-- index instead of a pending list that every search would scan until the next vacuum. A NULL last_login sorts as -infinity, so that column's keyset
-- comparison needs no special case for NULLs.
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_username_trgm
    ON users USING gin (username gin_trgm_ops) WITH (fastupdate = off);
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_lower_username_id
    ON users (lower(username), id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_date_joined_id
    ON users (date_joined, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_last_login_id
    ON users ((COALESCE(last_login, '-infinity'::timestamptz)), id);

-- Greetings: the list shows the active one first, then the newest.
CREATE INDEX CONCURRENTLY IF NOT EXISTS greetings_list
    ON greetings (is_active, id);

-- The audit log, newest first, filtered by action, object type or user (V2 has the
-- unfiltered (at, id) index).
CREATE INDEX CONCURRENTLY IF NOT EXISTS admin_audit_log_action_at
    ON admin_audit_log (action, at DESC, id DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS admin_audit_log_object_type_at
    ON admin_audit_log (object_type, at DESC, id DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS admin_audit_log_username_at
    ON admin_audit_log (lower(username), at DESC, id DESC);
-- The index page's "my actions": logins and logouts never show there.
CREATE INDEX CONCURRENTLY IF NOT EXISTS admin_audit_log_recent
    ON admin_audit_log (user_id, at DESC, id DESC) WHERE action NOT IN ('login', 'logout');

DO $$
DECLARE
    valid integer;
BEGIN
    SELECT count(*) INTO valid
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema()
      AND i.indisvalid
      AND c.relname IN ('users_username_trgm', 'users_lower_username_id',
                        'users_date_joined_id', 'users_last_login_id', 'greetings_list',
                        'admin_audit_log_action_at', 'admin_audit_log_object_type_at',
                        'admin_audit_log_username_at', 'admin_audit_log_recent');
    IF valid <> 9 THEN
        RAISE EXCEPTION 'only % of the 9 admin indexes are valid; run greeter-migrate again', valid;
    END IF;
END
$$;
