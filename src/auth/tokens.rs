//! API tokens: `grt_` + 256 random bits (base64url), stored only as their SHA-256.
//!
//! The token is shown exactly once, when it is created (by `greeter createtoken` or the
//! admin's token page). The prefix lets secret scanners recognise a leaked token. Lookups
//! hash the presented token and compare hashes in constant time, so neither the stored
//! table nor the lookup's timing gives the token away.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_postgres::GenericClient;

/// Every token starts with this, so scanners (and people) can recognise one.
pub const PREFIX: &str = "grt_";
/// `grt_` and 43 base64url characters (32 bytes).
pub const TOKEN_LEN: usize = PREFIX.len() + 43;
/// How many characters of a token are kept in clear, to tell tokens apart in lists.
const SHOWN_PREFIX_LEN: usize = PREFIX.len() + 6;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_EXPIRY_DAYS: u32 = 3650;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// List and read greetings.
    GreetingsRead,
    /// Create, change, activate and delete greetings (and read them).
    GreetingsWrite,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::GreetingsRead, Scope::GreetingsWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::GreetingsRead => "greetings:read",
            Scope::GreetingsWrite => "greetings:write",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// The set of scopes a token holds. `greetings:write` includes reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    read: bool,
    write: bool,
}

impl Scopes {
    pub fn from_list(scopes: &[Scope]) -> Self {
        Self {
            read: scopes.contains(&Scope::GreetingsRead),
            write: scopes.contains(&Scope::GreetingsWrite),
        }
    }

    /// From the database's `TEXT[]` (unknown names, which a later version might add, are
    /// ignored: they grant nothing here).
    pub fn from_names(names: &[String]) -> Self {
        let parsed: Vec<Scope> = names.iter().filter_map(|n| Scope::parse(n)).collect();
        Self::from_list(&parsed)
    }

    pub fn is_empty(&self) -> bool {
        !self.read && !self.write
    }

    pub fn allows(&self, needed: Scope) -> bool {
        match needed {
            Scope::GreetingsRead => self.read || self.write,
            Scope::GreetingsWrite => self.write,
        }
    }

    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.read {
            names.push(Scope::GreetingsRead.as_str().to_owned());
        }
        if self.write {
            names.push(Scope::GreetingsWrite.as_str().to_owned());
        }
        names
    }
}

/// The SHA-256 of a token: what the database stores and the in-memory cache is keyed by.
pub type TokenHash = [u8; 32];

pub fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// Constant-time equality of two hashes.
pub fn hashes_equal(a: &TokenHash, b: &TokenHash) -> bool {
    bool::from(a.ct_eq(b))
}

/// Whether `value` has the shape of one of our tokens (anything else is refused unhashed).
pub fn looks_like_token(value: &str) -> bool {
    value.len() == TOKEN_LEN
        && value.starts_with(PREFIX)
        && value[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh token: `grt_` + 32 bytes from the OS-seeded CSPRNG.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Why a token cannot be created as asked.
#[derive(Debug, thiserror::Error)]
pub enum CreateTokenError {
    #[error("the token name must be 1-{MAX_NAME_CHARS} characters, without control characters")]
    InvalidName,
    #[error("at least one scope is required (greetings:read, greetings:write)")]
    NoScope,
    #[error("the expiry must be 1-{MAX_EXPIRY_DAYS} days")]
    InvalidExpiry,
    #[error("no active admin (staff) user named {0:?}")]
    NoSuchOwner(String),
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// What to create.
pub struct NewToken<'a> {
    pub name: &'a str,
    pub scopes: Scopes,
    pub expires_in_days: Option<u32>,
}

/// A token just created: the only time its secret exists outside the client.
pub struct CreatedToken {
    pub id: i64,
    pub token: String,
    pub owner_id: i64,
    pub owner_username: String,
}

pub fn name_is_valid(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&count)
        && !name.chars().any(char::is_control)
        && !name.trim().is_empty()
}

/// Check what [`create`] would refuse without a database (for exit status 2 in the CLI).
pub fn validate(new: &NewToken<'_>) -> Result<(), CreateTokenError> {
    if !name_is_valid(new.name) {
        return Err(CreateTokenError::InvalidName);
    }
    if new.scopes.is_empty() {
        return Err(CreateTokenError::NoScope);
    }
    if new
        .expires_in_days
        .is_some_and(|d| !(1..=MAX_EXPIRY_DAYS).contains(&d))
    {
        return Err(CreateTokenError::InvalidExpiry);
    }
    Ok(())
}

/// Create a token owned by the active staff user `owner` (matched case-insensitively,
/// like logins). The caller writes the audit entry in the same transaction if it has one.
pub async fn create(
    client: &impl GenericClient,
    owner: &str,
    new: &NewToken<'_>,
) -> Result<CreatedToken, CreateTokenError> {
    validate(new)?;
    let token = generate();
    let days = new.expires_in_days.map(|d| d as i32);
    let row = client
        .query_opt(
            "WITH owner AS (
                 SELECT id, username FROM users
                 WHERE lower(username) = lower($6) AND is_active AND (is_staff OR is_superuser)
             ), created AS (
                 INSERT INTO api_tokens (name, token_hash, token_prefix, owner_id, scopes, expires_at)
                 SELECT $1, $2, $3, owner.id, $4, now() + make_interval(days => $5)
                 FROM owner
                 RETURNING id
             )
             SELECT created.id, owner.id, owner.username FROM created, owner",
            &[
                &new.name,
                &hash(&token).as_slice(),
                &&token[..SHOWN_PREFIX_LEN],
                &new.scopes.names(),
                &days,
                &owner,
            ],
        )
        .await?
        .ok_or_else(|| CreateTokenError::NoSuchOwner(owner.to_owned()))?;
    Ok(CreatedToken {
        id: row.get(0),
        owner_id: row.get(1),
        owner_username: row.get(2),
        token,
    })
}

/// A token as the management pages list it (never its secret).
pub struct TokenSummary {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub owner_id: i64,
    pub owner_username: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub expired: bool,
}

fn time_text(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC'")
}

/// The tokens of `owner_id`, or every token when `None`; newest first.
pub async fn list(
    client: &impl GenericClient,
    owner_id: Option<i64>,
) -> Result<Vec<TokenSummary>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT t.id, t.name, t.token_prefix, t.owner_id, u.username, t.scopes,
                        {}, {}, {}, {}, t.expires_at IS NOT NULL AND t.expires_at <= now()
                 FROM api_tokens t JOIN users u ON u.id = t.owner_id
                 WHERE $1::BIGINT IS NULL OR t.owner_id = $1
                 ORDER BY t.revoked_at IS NOT NULL, t.id DESC
                 LIMIT 500",
                time_text("t.created_at"),
                time_text("t.expires_at"),
                time_text("t.last_used_at"),
                time_text("t.revoked_at"),
            ),
            &[&owner_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TokenSummary {
            id: r.get(0),
            name: r.get(1),
            prefix: r.get(2),
            owner_id: r.get(3),
            owner_username: r.get(4),
            scopes: r.get(5),
            created_at: r.get(6),
            expires_at: r.get(7),
            last_used_at: r.get(8),
            revoked_at: r.get(9),
            expired: r.get(10),
        })
        .collect())
}

/// Revoke token `id` (of `owner_id` unless `None`): every replica stops accepting it as
/// soon as the change notification arrives. Returns the token's name and owner's id if a
/// token was revoked now (not when unknown, someone else's or already revoked).
pub async fn revoke(
    client: &impl GenericClient,
    id: i64,
    owner_id: Option<i64>,
) -> Result<Option<(String, i64)>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "UPDATE api_tokens SET revoked_at = now()
             WHERE id = $1 AND revoked_at IS NULL AND ($2::BIGINT IS NULL OR owner_id = $2)
             RETURNING name, owner_id",
            &[&id, &owner_id],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_prefix_length_and_alphabet() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(looks_like_token(&a), "{a}");
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(!looks_like_token(&a[1..]));
        assert!(!looks_like_token(&format!("xrt_{}", &a[4..])));
        assert!(!looks_like_token(&format!("{}!", &a[..a.len() - 1])));
    }

    #[test]
    fn write_includes_read_but_not_the_other_way_round() {
        let read = Scopes::from_list(&[Scope::GreetingsRead]);
        let write = Scopes::from_names(&["greetings:write".to_owned()]);
        assert!(read.allows(Scope::GreetingsRead) && !read.allows(Scope::GreetingsWrite));
        assert!(write.allows(Scope::GreetingsRead) && write.allows(Scope::GreetingsWrite));
        assert!(Scopes::from_names(&["admin:all".to_owned()]).is_empty());
    }

    #[test]
    fn hashes_compare_equal_only_for_the_same_token() {
        let token = generate();
        assert!(hashes_equal(&hash(&token), &hash(&token)));
        assert!(!hashes_equal(&hash(&token), &hash(&generate())));
    }
}
