//! Forms and query strings: parsing them, ids from URLs, safe redirect targets, links
//! that keep the current filters.

use std::collections::HashMap;

use crate::error::AdminError;

/// A parsed `application/x-www-form-urlencoded` body or query string.
pub(crate) struct Form(HashMap<String, String>);

impl Form {
    pub fn parse(bytes: &[u8]) -> Self {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).unwrap_or_default();
        // The first value of a repeated field wins.
        let mut map = HashMap::new();
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
        Self(map)
    }

    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    /// Checkboxes send their value, `on`, when ticked and nothing otherwise; any other
    /// value is not a tick.
    pub fn checked(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| v == "on")
    }

    /// Whether any field's name or value holds a NUL (PostgreSQL text cannot).
    pub fn has_nul(&self) -> bool {
        self.0
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    }
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
