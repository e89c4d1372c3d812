//! Forms and query strings: their typed structs and parsing, ids from URLs, safe redirect targets, links
//! that keep the current filters.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::AdminError;

/// Parse a form body or a query string into its typed struct, once. A missing required
/// field, a repeated one, or a body that is no form is a 400, never a silent "".
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    serde_urlencoded::from_bytes(bytes).map_err(|e| {
        tracing::debug!(error = %e, "admin form refused");
        AdminError::BadRequest("The form was incomplete or malformed.")
    })
}

/// Whether a form or query would decode to text holding a NUL (PostgreSQL text cannot):
/// a raw NUL byte, or `%00`.
pub(crate) fn has_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0)
        || bytes
            .windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

/// A checkbox: ticked when it sent its value `on`, unticked when absent; any other value
/// is not a tick.
fn checkbox<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<String>::deserialize(d)?.is_some_and(|v| v == "on"))
}

/// The CSRF token of any POST (a missing one is checked as "", so refused).
#[derive(Deserialize)]
pub(crate) struct CsrfField {
    #[serde(default)]
    pub csrf_token: String,
}

/// `?next=` of the login page.
#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    pub next: String,
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub next: String,
}

#[derive(Deserialize)]
pub(crate) struct PasswordChangeForm {
    pub old_password: String,
    pub new_password1: String,
    pub new_password2: String,
}

#[derive(Deserialize)]
pub(crate) struct UserAddForm {
    pub username: String,
    pub password1: String,
    pub password2: String,
}

#[derive(Deserialize)]
pub(crate) struct UserChangeForm {
    pub username: String,
    #[serde(default, deserialize_with = "checkbox")]
    pub is_active: bool,
    #[serde(default, deserialize_with = "checkbox")]
    pub is_staff: bool,
    #[serde(default, deserialize_with = "checkbox")]
    pub is_superuser: bool,
    /// Asked for only when the account is one's own (renaming it needs the password).
    #[serde(default)]
    pub current_password: String,
}

#[derive(Deserialize)]
pub(crate) struct SetPasswordForm {
    /// Asked for only when the account is one's own.
    #[serde(default)]
    pub old_password: String,
    pub password1: String,
    pub password2: String,
}

#[derive(Deserialize)]
pub(crate) struct GreetingForm {
    pub message: String,
    #[serde(default, deserialize_with = "checkbox")]
    pub is_active: bool,
}

/// The API token form of `/admin/tokens/`.
#[derive(Deserialize)]
pub(crate) struct TokenForm {
    pub name: String,
    #[serde(default, deserialize_with = "checkbox")]
    pub scope_read: bool,
    #[serde(default, deserialize_with = "checkbox")]
    pub scope_write: bool,
    pub expiry: String,
}

/// `?q=&o=&after=|before=|last=1` of the users list.
#[derive(Deserialize)]
pub(crate) struct UsersQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub o: String,
    /// Keyset paging (src/admin/listing.rs): `?after=`, `?before=` or `?last=1`.
    #[serde(default)]
    pub after: String,
    #[serde(default)]
    pub before: String,
    #[serde(default)]
    pub last: String,
}

/// `?action=&object_type=&user=&after=|before=|last=1` of the audit log.
#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub object_type: String,
    #[serde(default)]
    pub user: String,
    /// Keyset paging (src/admin/listing.rs): `?after=`, `?before=` or `?last=1`.
    #[serde(default)]
    pub after: String,
    #[serde(default)]
    pub before: String,
    #[serde(default)]
    pub last: String,
}

/// `?after=|before=|last=1` of a list.
#[derive(Deserialize)]
pub(crate) struct PageQuery {
    /// Keyset paging (src/admin/listing.rs): `?after=`, `?before=` or `?last=1`.
    #[serde(default)]
    pub after: String,
    #[serde(default)]
    pub before: String,
    #[serde(default)]
    pub last: String,
}

/// Whether `next` is a path on this site that is safe to redirect to after login:
/// absolute path, not protocol-relative (`//evil`, `/\evil`), no control characters.
pub(crate) fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 2000
        && !next.chars().any(|c| c.is_control() || c == ' ')
        && !next.starts_with("/admin/login/")
        && !next.starts_with("/admin/logout/");
    ok.then_some(next)
}

/// Percent-encode a value for a query string.
pub(crate) fn urlencode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// Parse an id from a URL: a positive decimal number, nothing else.
pub(crate) fn parse_id(segment: &str) -> Result<i64, AdminError> {
    if segment.is_empty() || segment.len() > 18 || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AdminError::NotFound);
    }
    match segment.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(AdminError::NotFound),
    }
}

/// A query string from the non-empty pairs, for links that keep the current filters.
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let encoded = serde_urlencoded::to_string(kept).unwrap_or_default();
    if encoded.is_empty() {
        String::new()
    } else {
        format!("?{encoded}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_typed_and_a_missing_field_is_an_error() {
        let f: GreetingForm = parse(b"message=Hi+%3C%3E&is_active=on&csrf_token=x").unwrap();
        assert_eq!((f.message.as_str(), f.is_active), ("Hi <>", true));
        let f: GreetingForm = parse(b"message=Hi&is_active=yes").unwrap();
        assert!(!f.is_active);
        assert!(matches!(
            parse::<GreetingForm>(b"is_active=on"),
            Err(AdminError::BadRequest(_))
        ));
        assert!(parse::<GreetingForm>(b"message=a&message=b").is_err());
        let q: UsersQuery = parse(b"").unwrap();
        assert_eq!((q.q.as_str(), q.o.as_str(), q.after.as_str()), ("", "", ""));
    }

    #[test]
    fn nul_bytes_are_found_raw_and_percent_encoded() {
        assert!(has_nul(b"a=%00") && has_nul(b"a\0=b") && has_nul(b"%00=b"));
        assert!(!has_nul(b"a=%0A%20") && !has_nul(b"a=100"));
    }
}
