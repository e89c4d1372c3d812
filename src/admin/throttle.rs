//! Login throttling, shared by all replicas through PostgreSQL.
//!
//! Every attempt is *reserved* before its password is checked: one statement increments
//! the attempt counts of its keys and returns them, and an attempt over any key's limit
//! (or against a locked key) is refused without hashing. So a burst of any size, sent at
//! once, gets at most the limit's checks per key and window.
//!
//! Three keys per attempt (see DOCS.md, "The admin"):
//! - `pair:<username>|<address>`: the soft lockout. Past `slowdown_after` attempts each
//!   answer is delayed a little more; at `pair_failure_limit` this address may not try
//!   this username for `lockout`. Other addresses still can.
//! - `user:<username>`: the hard lock, at a much higher count (`username_failure_limit`),
//!   against a distributed guess of one account.
//! - `addr:<address>`: one address trying many usernames (`address_failure_limit`). IPv6
//!   addresses count per /64, as one client usually owns a whole /64.
//!
//! A successful login forgives its username and pair keys, never the address's count (that
//! would let a password sprayer who owns one account reset it): the success's own
//! reservation is given back instead.

use std::net::IpAddr;
use std::time::Duration;

use tokio_postgres::GenericClient;

use super::state::Policy;

/// The keys one attempt counts against, in their one canonical form.
pub(crate) struct Keys {
    /// None when the username cannot exist (too long, outside the schema's alphabet): then
    /// only the address is counted and no password is checked.
    pub username: Option<String>,
    pub pair: Option<String>,
    pub address: Option<String>,
}

/// The address as throttled: IPv4 as is, IPv6 per /64 (IPv4-mapped IPv6 as IPv4).
pub(crate) fn address_key(address: IpAddr) -> String {
    match address.to_canonical() {
        IpAddr::V4(v4) => format!("addr:{v4}"),
        IpAddr::V6(v6) => {
            let net = ipnet::Ipv6Net::new(v6, 64).expect("64 is a valid prefix");
            format!("addr:{}", net.trunc())
        }
    }
}

impl Keys {
    pub fn new(username: &str, address: Option<IpAddr>) -> Self {
        let address = address.map(address_key);
        let username =
            crate::auth::users::username_is_valid(username).then(|| username.to_ascii_lowercase());
        Self {
            pair: username
                .as_ref()
                .map(|u| format!("pair:{u}|{}", address.as_deref().unwrap_or("addr:unknown"))),
            username: username.map(|u| format!("user:{u}")),
            address,
        }
    }

    /// (key, limit), sorted by key: concurrent reservations lock rows in one global order.
    fn with_limits(&self, policy: &Policy) -> Vec<(&str, i32)> {
        let mut keys = Vec::new();
        if let Some(a) = &self.address {
            keys.push((a.as_str(), policy.address_failure_limit));
        }
        if let Some(p) = &self.pair {
            keys.push((p.as_str(), policy.pair_failure_limit));
        }
        if let Some(u) = &self.username {
            keys.push((u.as_str(), policy.username_failure_limit));
        }
        keys.sort();
        keys
    }
}

/// The outcome of a reservation.
pub(crate) struct Reservation {
    /// Whether the password may be checked at all.
    pub allowed: bool,
    /// The (key, count) pairs that reached their limit with this attempt.
    at_limit: Vec<String>,
    /// How long to wait before answering if the attempt fails.
    pub delay: Duration,
}

/// Reserve one attempt against every key, atomically (a single statement): count it,
/// and refuse it if any key is locked or over its limit.
pub(crate) async fn reserve(
    client: &impl GenericClient,
    keys: &Keys,
    policy: &Policy,
) -> Result<Reservation, tokio_postgres::Error> {
    let with_limits = keys.with_limits(policy);
    let names: Vec<&str> = with_limits.iter().map(|(k, _)| *k).collect();
    // A count restarts when its window has passed or its lockout has expired; a locked
    // key is not counted further (its lock already refuses).
    let rows = client
        .query(
            "INSERT INTO admin_login_failures AS f (key, failures, first_at, last_at)
             SELECT k, 1, now(), now() FROM unnest($1::text[]) WITH ORDINALITY AS t(k, i)
             ORDER BY i
             ON CONFLICT (key) DO UPDATE SET
               failures = CASE WHEN f.locked_until <= now()
                                 OR (f.locked_until IS NULL
                                     AND f.first_at <= now() - make_interval(secs => $2))
                               THEN 1
                               WHEN f.locked_until > now() THEN f.failures
                               ELSE f.failures + 1 END,
               first_at = CASE WHEN f.locked_until <= now()
                                 OR (f.locked_until IS NULL
                                     AND f.first_at <= now() - make_interval(secs => $2))
                               THEN now() ELSE f.first_at END,
               locked_until = CASE WHEN f.locked_until <= now() THEN NULL
                                   ELSE f.locked_until END,
               last_at = now()
             RETURNING key, failures, coalesce(locked_until > now(), false)",
            &[&names, &policy.failure_window.as_secs_f64()],
        )
        .await?;
    let mut allowed = true;
    let mut at_limit = Vec::new();
    let mut pair_count = 0;
    for row in rows {
        let key: String = row.get(0);
        let count: i32 = row.get(1);
        let locked: bool = row.get(2);
        let limit = with_limits
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(i32::MAX, |(_, l)| *l);
        if locked || count > limit {
            allowed = false;
        } else if count == limit {
            at_limit.push(key.clone());
        }
        if key.starts_with("pair:") {
            pair_count = count;
        }
    }
    let over = u32::try_from(pair_count - policy.slowdown_after).unwrap_or(0);
    let delay = policy
        .slowdown_step
        .saturating_mul(over)
        .min(policy.slowdown_max);
    Ok(Reservation {
        allowed,
        at_limit,
        delay,
    })
}

/// A reserved attempt failed: lock the keys it brought to their limit. Returns the keys
/// this locked (each is locked once, however many replicas race).
pub(crate) async fn record_failure(
    client: &impl GenericClient,
    reservation: &Reservation,
    policy: &Policy,
) -> Result<Vec<String>, tokio_postgres::Error> {
    if reservation.at_limit.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "UPDATE admin_login_failures
             SET locked_until = now() + make_interval(secs => $2)
             WHERE key = ANY($1) AND locked_until IS NULL
             RETURNING key",
            &[&reservation.at_limit, &policy.lockout.as_secs_f64()],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A successful login forgives its username and pair, gives the address back this
/// attempt's reservation (not its earlier failures), and forgets stale entries of anyone.
pub(crate) async fn succeeded(
    client: &impl GenericClient,
    keys: &Keys,
    policy: &Policy,
) -> Result<(), tokio_postgres::Error> {
    let forgiven: Vec<&str> = [&keys.username, &keys.pair]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    client
        .execute(
            "DELETE FROM admin_login_failures
             WHERE key = ANY($1)
                OR (last_at <= now() - make_interval(secs => $2)
                    AND (locked_until IS NULL OR locked_until <= now()))",
            &[&forgiven, &policy.failure_window.as_secs_f64()],
        )
        .await?;
    if let Some(address) = &keys.address {
        client
            .execute(
                "UPDATE admin_login_failures SET failures = greatest(failures - 1, 0)
                 WHERE key = $1 AND locked_until IS NULL",
                &[address],
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        assert_eq!(address_key(a), "addr:2001:db8:1:2::/64");
        assert_eq!(address_key(a), address_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "addr:192.0.2.7");
    }

    #[test]
    fn keys_are_ascii_lowercase_and_impossible_names_have_none() {
        let k = Keys::new("AdMiN", Some("127.0.0.1".parse().unwrap()));
        assert_eq!(k.username.as_deref(), Some("user:admin"));
        assert_eq!(k.pair.as_deref(), Some("pair:admin|addr:127.0.0.1"));
        for name in ["İadmin", "ad min", &"a".repeat(151), ""] {
            let k = Keys::new(name, None);
            assert!(k.username.is_none() && k.pair.is_none(), "{name}");
        }
    }
}
