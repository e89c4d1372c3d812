//! Sessions in PostgreSQL, so that any replica serves any logged-in user.
//!
//! The cookie holds a random 256-bit token; the table holds only its SHA-256. A session
//! ends after `idle_timeout` without requests, `absolute_timeout` after login, at logout,
//! or as soon as its user is no longer an active staff member.

use std::net::IpAddr;

use tokio_postgres::GenericClient;

use super::security::{random_token, token_hash};
use super::state::Policy;

/// The logged-in user, as every page needs them.
#[derive(Debug, Clone)]
pub(crate) struct SessionUser {
    pub id: i64,
    pub username: String,
    pub is_superuser: bool,
}

/// The user of a live session, refreshing its idle timer; None when it is over.
pub(crate) async fn load(
    client: &deadpool_postgres::ClientWrapper,
    token: &str,
    policy: &Policy,
) -> Result<Option<SessionUser>, tokio_postgres::Error> {
    // One round trip: check both timeouts and the user's flags, and refresh the idle
    // timer only when it is older than a thirtieth of the idle timeout (a minute by
    // default). Writing on every page view cost a WAL flush per request: p99 spikes of
    // hundreds of milliseconds under load, for a timestamp nobody needs to the second.
    // Every admin request runs it: prepared once per pooled connection, as planning the
    // join cost ~6 times what running it costs (src/admin/listing.rs, `List`).
    let statement = client
        .prepare_cached(
            "WITH live AS (
                 SELECT s.token_hash, s.last_seen_at, u.id, u.username, u.is_superuser
                 FROM admin_sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1
                   AND s.last_seen_at > now() - make_interval(secs => $2)
                   AND s.created_at > now() - make_interval(secs => $3)
                   AND u.is_active AND u.is_staff
             ), touched AS (
                 UPDATE admin_sessions s SET last_seen_at = now()
                 FROM live
                 WHERE s.token_hash = live.token_hash
                   AND live.last_seen_at < now() - make_interval(secs => $4)
             )
             SELECT id, username, is_superuser FROM live",
        )
        .await?;
    let row = client
        .query_opt(
            &statement,
            &[
                &token_hash(token),
                &policy.idle_timeout.as_secs_f64(),
                &policy.absolute_timeout.as_secs_f64(),
                &(policy.idle_timeout.as_secs_f64() / 30.0),
            ],
        )
        .await?;
    Ok(row.map(|r| SessionUser {
        id: r.get(0),
        username: r.get(1),
        is_superuser: r.get(2),
    }))
}

/// Where a session was started from, as its owner sees it in the sessions list.
pub(crate) struct Origin<'a> {
    pub client_addr: Option<IpAddr>,
    pub headers: &'a http::HeaderMap,
}

/// The longest `User-Agent` kept (real ones are ~150 characters).
const MAX_USER_AGENT_CHARS: usize = 256;

impl Origin<'_> {
    fn user_agent(&self) -> Option<String> {
        let raw = self.headers.get(http::header::USER_AGENT)?;
        let text = String::from_utf8_lossy(raw.as_bytes());
        Some(
            text.chars()
                .filter(|c| !c.is_control())
                .take(MAX_USER_AGENT_CHARS)
                .collect(),
        )
    }
}

/// Start a new session for `user_id` and return its token (for the cookie).
pub(crate) async fn create(
    client: &impl GenericClient,
    user_id: i64,
    origin: &Origin<'_>,
) -> Result<String, tokio_postgres::Error> {
    let token = random_token();
    client
        .execute(
            "INSERT INTO admin_sessions (token_hash, user_id, client_addr, user_agent)
             VALUES ($1, $2, $3, $4)",
            &[
                &token_hash(&token),
                &user_id,
                &origin.client_addr.map(|a| a.to_string()),
                &origin.user_agent(),
            ],
        )
        .await?;
    Ok(token)
}

/// One live session of a user, for the sessions list.
pub(crate) struct Listed {
    pub id: i64,
    pub created: String,
    pub last_seen: String,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    /// The session of the request that lists them.
    pub current: bool,
}

/// The live sessions of `user_id` (within both timeouts), newest first.
pub(crate) async fn list_for_user(
    client: &impl GenericClient,
    user_id: i64,
    current: &str,
    policy: &Policy,
) -> Result<Vec<Listed>, tokio_postgres::Error> {
    let time = |column: &str| {
        format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC'")
    };
    let rows = client
        .query(
            &format!(
                "SELECT id, {}, {}, client_addr, user_agent, token_hash = $2
                 FROM admin_sessions
                 WHERE user_id = $1
                   AND last_seen_at > now() - make_interval(secs => $3)
                   AND created_at > now() - make_interval(secs => $4)
                 ORDER BY created_at DESC, id DESC",
                time("created_at"),
                time("last_seen_at")
            ),
            &[
                &user_id,
                &token_hash(current),
                &policy.idle_timeout.as_secs_f64(),
                &policy.absolute_timeout.as_secs_f64(),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Listed {
            id: r.get(0),
            created: r.get(1),
            last_seen: r.get(2),
            client_addr: r.get(3),
            user_agent: r.get(4),
            current: r.get(5),
        })
        .collect())
}

/// End one of `user_id`'s sessions other than `current`; whether there was one.
pub(crate) async fn delete_by_id(
    client: &impl GenericClient,
    user_id: i64,
    id: i64,
    current: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "DELETE FROM admin_sessions WHERE user_id = $1 AND id = $2 AND token_hash <> $3",
            &[&user_id, &id, &token_hash(current)],
        )
        .await?;
    Ok(n > 0)
}

pub(crate) async fn delete(
    client: &impl GenericClient,
    token: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM admin_sessions WHERE token_hash = $1",
            &[&token_hash(token)],
        )
        .await?;
    Ok(())
}

/// End every session of `user_id` except `keep` (after a password change, or "end all
/// my other sessions"); returns how many ended.
pub(crate) async fn delete_for_user(
    client: &impl GenericClient,
    user_id: i64,
    keep: Option<&str>,
) -> Result<u64, tokio_postgres::Error> {
    let keep = keep.map(token_hash).unwrap_or_default();
    client
        .execute(
            "DELETE FROM admin_sessions WHERE user_id = $1 AND token_hash <> $2",
            &[&user_id, &keep],
        )
        .await
}

/// Remove sessions that can no longer be used (run at each login; cheap with the indexes).
pub(crate) async fn sweep(
    client: &impl GenericClient,
    policy: &Policy,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM admin_sessions
             WHERE last_seen_at <= now() - make_interval(secs => $1)
                OR created_at <= now() - make_interval(secs => $2)",
            &[
                &policy.idle_timeout.as_secs_f64(),
                &policy.absolute_timeout.as_secs_f64(),
            ],
        )
        .await?;
    Ok(())
}
