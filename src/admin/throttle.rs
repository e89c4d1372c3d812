//! Login throttling, shared by all replicas through PostgreSQL.
//!
//! Failures are counted per username and per client address within a window. Past
//! `slowdown_after` failures each answer is delayed a little more; at the limit the key
//! is locked for `lockout`, during which no password is even checked (so a locked-out
//! attacker learns nothing, and costs no argon2 time). A successful login clears both.

use std::net::IpAddr;
use std::time::Duration;

use tokio_postgres::GenericClient;

use super::Policy;

/// The keys one attempt counts against.
pub(crate) struct Keys {
    pub username: String,
    pub address: Option<String>,
}

impl Keys {
    pub fn new(username: &str, address: Option<IpAddr>) -> Self {
        Self {
            username: format!("user:{}", username.to_lowercase()),
            address: address.map(|a| format!("addr:{a}")),
        }
    }

    fn all(&self) -> Vec<&str> {
        let mut keys = vec![self.username.as_str()];
        if let Some(a) = &self.address {
            keys.push(a);
        }
        keys
    }
}

/// Whether any key is locked out right now.
pub(crate) async fn is_locked(
    client: &impl GenericClient,
    keys: &Keys,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM admin_login_failures
                            WHERE key = ANY($1) AND locked_until > now())",
            &[&keys.all()],
        )
        .await?;
    Ok(row.get(0))
}

/// What a failure led to.
pub(crate) struct Failure {
    /// How long to wait before answering.
    pub delay: Duration,
    /// The keys that this failure locked (empty unless a limit was just reached).
    pub newly_locked: Vec<String>,
}

/// Count a failed attempt against every key.
pub(crate) async fn record_failure(
    client: &impl GenericClient,
    keys: &Keys,
    policy: &Policy,
) -> Result<Failure, tokio_postgres::Error> {
    let mut most = 0;
    let mut newly_locked = Vec::new();
    let mut limits = vec![(keys.username.as_str(), policy.username_failure_limit)];
    if let Some(a) = &keys.address {
        limits.push((a.as_str(), policy.address_failure_limit));
    }
    for (key, limit) in limits {
        // A count restarts when its window has passed or its lockout has expired.
        let row = client
            .query_one(
                "INSERT INTO admin_login_failures AS f (key, failures, first_at, last_at)
                 VALUES ($1, 1, now(), now())
                 ON CONFLICT (key) DO UPDATE SET
                   failures = CASE WHEN f.first_at <= now() - make_interval(secs => $2)
                                     OR f.locked_until <= now()
                                   THEN 1 ELSE f.failures + 1 END,
                   first_at = CASE WHEN f.first_at <= now() - make_interval(secs => $2)
                                     OR f.locked_until <= now()
                                   THEN now() ELSE f.first_at END,
                   locked_until = CASE WHEN f.locked_until <= now() THEN NULL
                                       ELSE f.locked_until END,
                   last_at = now()
                 RETURNING failures",
                &[&key, &policy.failure_window.as_secs_f64()],
            )
            .await?;
        let failures: i32 = row.get(0);
        most = most.max(failures);
        if failures >= limit {
            let locked = client
                .execute(
                    "UPDATE admin_login_failures
                     SET locked_until = now() + make_interval(secs => $2)
                     WHERE key = $1 AND locked_until IS NULL",
                    &[&key, &policy.lockout.as_secs_f64()],
                )
                .await?;
            if locked > 0 {
                newly_locked.push(key.to_owned());
            }
        }
    }
    let over = u32::try_from(most - policy.slowdown_after).unwrap_or(0);
    let delay = policy
        .slowdown_step
        .saturating_mul(over)
        .min(policy.slowdown_max);
    Ok(Failure {
        delay,
        newly_locked,
    })
}

/// A successful login forgives earlier failures of this username and address, and
/// forgets stale entries of anyone.
pub(crate) async fn reset(
    client: &impl GenericClient,
    keys: &Keys,
    policy: &Policy,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM admin_login_failures
             WHERE key = ANY($1)
                OR (last_at <= now() - make_interval(secs => $2)
                    AND (locked_until IS NULL OR locked_until <= now()))",
            &[&keys.all(), &policy.failure_window.as_secs_f64()],
        )
        .await?;
    Ok(())
}
