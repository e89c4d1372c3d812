//! Keys derived from `SECRET_KEY`, random tokens, CSRF tokens, signed flash messages, and
//! cookies.
//!
//! CSRF tokens are HMACs, so the server stores nothing for them:
//! - logged in, the token is bound to the session (HMAC of the session token);
//! - before login, it is bound to a random `csrf` cookie (a signed double-submit cookie):
//!   a cross-site page can neither read that cookie nor compute the HMAC without the key.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::AppEnv;

type HmacSha256 = Hmac<Sha256>;

/// Independent keys per purpose, so a value signed for one use is useless for another.
pub(crate) struct Keys {
    csrf: [u8; 32],
    flash: [u8; 32],
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") sign differently.
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

impl Keys {
    pub fn derive(secret_key: &[u8]) -> Self {
        Self {
            csrf: mac(secret_key, &[b"greeter.admin.csrf"]),
            flash: mac(secret_key, &[b"greeter.admin.flash"]),
        }
    }

    /// The CSRF token for a form: `kind` is "session" or "login", `basis` the token of
    /// the session or of the pre-login `csrf` cookie.
    pub fn csrf_token(&self, kind: &str, basis: &str) -> String {
        hex(&mac(&self.csrf, &[kind.as_bytes(), basis.as_bytes()]))
    }

    /// Whether `given` is the CSRF token for (`kind`, `basis`), compared in constant time.
    pub fn csrf_valid(&self, kind: &str, basis: &str, given: &str) -> bool {
        let expected = self.csrf_token(kind, basis);
        expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }

    /// A flash message as a cookie value: hex text, a dot, and its HMAC.
    pub fn sign_flash(&self, level: &str, text: &str) -> String {
        let payload = hex(format!("{level}\n{text}").as_bytes());
        let tag = hex(&mac(&self.flash, &[payload.as_bytes()]));
        format!("{payload}.{tag}")
    }

    /// The (level, text) of a flash cookie value, if it was signed by us.
    pub fn verify_flash(&self, value: &str) -> Option<(String, String)> {
        let (payload, tag) = value.split_once('.')?;
        let expected = hex(&mac(&self.flash, &[payload.as_bytes()]));
        if expected.len() != tag.len() || !bool::from(expected.as_bytes().ct_eq(tag.as_bytes())) {
            return None;
        }
        let text = String::from_utf8(unhex(payload)?).ok()?;
        let (level, text) = text.split_once('\n')?;
        Some((level.to_owned(), text.to_owned()))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// 256 random bits as 64 hex digits: session tokens and the pre-login CSRF cookie.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// Whether a cookie claims to be one of our tokens (anything else is ignored unread).
pub(crate) fn looks_like_token(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What the database stores instead of the session token.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The first 12 hex digits of a secret's SHA-256: enough to tell two values apart, far
/// too little to recover it.
pub fn fingerprint(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))[..12].to_owned()
}

/// Cookie names and flags for this environment. With TLS (anything but `local`) cookies
/// are `Secure` and use the `__Host-` prefix, which also forbids `Domain` and requires
/// `Path=/`: a sibling subdomain cannot plant or overwrite them.
pub(crate) struct CookieNames {
    pub session: &'static str,
    pub csrf: &'static str,
    pub flash: &'static str,
    pub secure: bool,
}

impl CookieNames {
    pub fn for_env(env: AppEnv) -> Self {
        match env {
            AppEnv::Local => Self {
                session: "greeter_session",
                csrf: "greeter_csrf",
                flash: "greeter_flash",
                secure: false,
            },
            AppEnv::Production => Self {
                session: "__Host-greeter_session",
                csrf: "__Host-greeter_csrf",
                flash: "__Host-greeter_flash",
                secure: true,
            },
        }
    }

    /// A `Set-Cookie` value; `max_age` None makes a browser-session cookie.
    pub fn set(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if let Some(seconds) = max_age {
            cookie.push_str(&format!("; Max-Age={seconds}"));
        }
        if self.secure {
            cookie.push_str("; Secure");
        }
        cookie
    }

    pub fn clear(&self, name: &str) -> String {
        self.set(name, "", Some(0))
    }
}

/// Every cookie of the request (HTTP/2 may split them over several headers).
/// For a repeated name the first wins, as browsers send the most specific first.
pub(crate) fn parse_cookies(headers: &HeaderMap) -> HashMap<String, String> {
    let mut cookies = HashMap::new();
    for value in headers.get_all(http::header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                cookies
                    .entry(name.trim().to_owned())
                    .or_insert_with(|| value.trim().to_owned());
            }
        }
    }
    cookies
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_kind_and_basis() {
        let keys = Keys::derive(b"k".repeat(40).as_slice());
        let token = keys.csrf_token("login", "abc");
        assert!(keys.csrf_valid("login", "abc", &token));
        assert!(!keys.csrf_valid("session", "abc", &token));
        assert!(!keys.csrf_valid("login", "abd", &token));
        assert!(!keys.csrf_valid("login", "abc", ""));
        let other = Keys::derive(b"x".repeat(40).as_slice());
        assert!(!other.csrf_valid("login", "abc", &token));
    }

    #[test]
    fn flash_messages_round_trip_and_reject_tampering() {
        let keys = Keys::derive(b"k".repeat(40).as_slice());
        let value = keys.sign_flash("success", "Saved “é” <b>");
        assert_eq!(
            keys.verify_flash(&value),
            Some(("success".into(), "Saved “é” <b>".into()))
        );
        let forged = format!("{}.{}", hex(b"error\nhacked"), "00".repeat(32));
        assert_eq!(keys.verify_flash(&forged), None);
        assert_eq!(keys.verify_flash("garbage"), None);
    }

    #[test]
    fn fingerprints_are_short_and_stable() {
        assert_eq!(fingerprint("abc"), "ba7816bf8f01");
    }

    #[test]
    fn cookies_are_parsed_from_every_header() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", "a=1; b=2".parse().unwrap());
        headers.append("cookie", "c=3".parse().unwrap());
        let c = parse_cookies(&headers);
        assert_eq!(
            (c["a"].as_str(), c["b"].as_str(), c["c"].as_str()),
            ("1", "2", "3")
        );
    }

    #[test]
    fn secure_cookies_have_the_host_prefix_attributes() {
        let names = CookieNames::for_env(AppEnv::Production);
        let cookie = names.set(names.session, "v", Some(60));
        assert!(names.session.starts_with("__Host-"));
        assert!(cookie.contains("; Secure") && cookie.contains("Path=/"));
        assert!(!cookie.contains("Domain"));
        let local = CookieNames::for_env(AppEnv::Local);
        assert!(!local.set(local.session, "v", None).contains("Secure"));
    }
}
