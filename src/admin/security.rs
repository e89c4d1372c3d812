//! Keys derived from `SECRET_KEY`, random tokens, CSRF tokens, signed flash messages, and
//! cookies (parsed, built and signed by the `cookie` crate).
//!
//! CSRF tokens are HMACs, so the server stores nothing for them:
//! - logged in, the token is bound to the session (HMAC of the session token);
//! - before login, it is bound to a random `csrf` cookie (a signed double-submit cookie):
//!   a cross-site page can neither read that cookie nor compute the HMAC without the key.

use cookie::time::Duration;
use cookie::{Cookie, CookieJar, Key, SameSite};
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
    /// The flash cookie's key: its signed jar (HMAC-SHA256) takes the first 32 bytes.
    flash: Key,
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
        // `Key::from` wants 64 bytes (signing and encryption halves).
        let mut flash = [0u8; 64];
        flash[..32].copy_from_slice(&mac(secret_key, &[b"greeter.admin.flash"]));
        flash[32..].copy_from_slice(&mac(secret_key, &[b"greeter.admin.flash.2"]));
        Self {
            csrf: mac(secret_key, &[b"greeter.admin.csrf"]),
            flash: Key::from(&flash),
        }
    }

    /// The CSRF token for a form: `kind` is "session" or "login", `basis` the token of
    /// the session or of the pre-login `csrf` cookie.
    pub fn csrf_token(&self, kind: &str, basis: &str) -> String {
        hex::encode(mac(&self.csrf, &[kind.as_bytes(), basis.as_bytes()]))
    }

    /// Whether `given` is the CSRF token for (`kind`, `basis`), compared in constant time.
    pub fn csrf_valid(&self, kind: &str, basis: &str, given: &str) -> bool {
        let expected = self.csrf_token(kind, basis);
        expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }

    /// The value of a flash cookie `name` holding (`level`, `text`), signed.
    pub fn sign_flash(&self, name: &str, level: &str, text: &str) -> String {
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.flash)
            .add(Cookie::new(name.to_owned(), format!("{level}\n{text}")));
        jar.get(name)
            .map(|c| c.value().to_owned())
            .unwrap_or_default()
    }

    /// The (level, text) of the flash cookie `name` in `jar`, if it was signed by us.
    pub fn verify_flash(&self, jar: &CookieJar, name: &str) -> Option<(String, String)> {
        let cookie = jar.signed(&self.flash).get(name)?;
        let (level, text) = cookie.value().split_once('\n')?;
        Some((level.to_owned(), text.to_owned()))
    }
}

/// 256 random bits as 64 hex digits: session tokens and the pre-login CSRF cookie.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
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
    hex::encode(Sha256::digest(secret.as_bytes()))[..12].to_owned()
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

    /// A `Set-Cookie` value (percent-encoded); `max_age` None makes a browser-session
    /// cookie.
    pub fn set(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        let mut cookie = Cookie::build((name.to_owned(), value.to_owned()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure);
        if let Some(seconds) = max_age {
            cookie = cookie.max_age(Duration::seconds(
                i64::try_from(seconds).unwrap_or(i64::MAX),
            ));
        }
        cookie.build().encoded().to_string()
    }

    pub fn clear(&self, name: &str) -> String {
        self.set(name, "", Some(0))
    }
}

/// Every cookie of the request (HTTP/2 may split them over several headers), decoded.
/// For a repeated name the first wins, as browsers send the most specific first;
/// malformed pairs are skipped.
pub(crate) fn parse_cookies(headers: &HeaderMap) -> CookieJar {
    let mut jar = CookieJar::new();
    for value in headers.get_all(http::header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for cookie in Cookie::split_parse_encoded(value.to_owned()).flatten() {
            if jar.get(cookie.name()).is_none() {
                jar.add_original(cookie);
            }
        }
    }
    jar
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
        let names = CookieNames::for_env(AppEnv::Local);
        let text = "Saved “é”; <b> = 100%";
        let set = names.set("f", &keys.sign_flash("f", "success", text), None);
        // Through a browser: the Set-Cookie's pair comes back in a Cookie header.
        let pair = set.split(';').next().unwrap().to_owned();
        let jar = |pair: &str| {
            let mut headers = HeaderMap::new();
            headers.append("cookie", pair.parse().unwrap());
            parse_cookies(&headers)
        };
        assert_eq!(
            keys.verify_flash(&jar(&pair), "f"),
            Some(("success".into(), text.into()))
        );
        let forged = pair.replace("success", "error");
        assert_ne!(forged, pair);
        assert_eq!(keys.verify_flash(&jar(&forged), "f"), None);
        assert_eq!(keys.verify_flash(&jar("f=garbage"), "f"), None);
        let other = Keys::derive(b"x".repeat(40).as_slice());
        assert_eq!(other.verify_flash(&jar(&pair), "f"), None);
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
        headers.append("cookie", "a=9; broken; d=%41".parse().unwrap());
        let c = parse_cookies(&headers);
        let value = |name| c.get(name).map(|c| c.value());
        assert_eq!(
            (value("a"), value("b"), value("c"), value("d")),
            (Some("1"), Some("2"), Some("3"), Some("A"))
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
