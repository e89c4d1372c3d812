//! Password hashing with argon2id (OWASP parameters) and Django-style password rules.

use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

/// OWASP's recommended argon2id configuration: 19 MiB memory, 2 iterations, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hash a password into a PHC string. CPU-heavy: call from `spawn_blocking` in handlers.
pub fn hash(password: &SecretString) -> String {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .expect("argon2 hashing cannot fail with valid parameters")
        .to_string()
}

/// Check a password against a stored PHC string; a malformed hash never matches.
pub fn verify(password: &SecretString, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// How many hashes run at once: all cores but one, which stays with the async runtime so
/// a login flood cannot stall `GET /`.
pub fn hash_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1)
}

/// argon2 runs on a small pool of its own threads rather than tokio's blocking pool
/// (up to 512 threads): each hash takes 19 MiB and a core for tens of milliseconds, so
/// a fixed pool bounds a login flood to `hash_threads()` hashes, and as many buffers,
/// at a time; the rest wait in its queue. See also `tune_allocator` in the server.
fn pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(hash_threads())
            .thread_name(|i| format!("argon2-{i}"))
            // The default handler aborts the process; a failed hash only fails its request.
            .panic_handler(|_| tracing::error!("a password hashing task panicked"))
            .build()
            .expect("the hashing threads start")
    })
}

async fn on_hash_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = tokio::sync::oneshot::channel();
    pool().spawn(move || {
        let _ = done.send(work());
    });
    result.await.expect("the hashing task completes")
}

/// Hash off the async runtime, on the bounded hashing pool.
pub async fn hash_async(password: SecretString) -> String {
    on_hash_pool(move || hash(&password)).await
}

/// Verify off the async runtime, on the bounded hashing pool.
pub async fn verify_async(password: SecretString, phc: String) -> bool {
    on_hash_pool(move || verify(&password, &phc)).await
}

pub const MIN_LENGTH: usize = 8;

/// Django's default validators in spirit: minimum length, not all digits, not the
/// username, not a well-known password. Returns the problems, empty when acceptable.
pub fn validate(password: &str, username: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if password.chars().count() < MIN_LENGTH {
        problems.push(format!(
            "This password is too short. It must contain at least {MIN_LENGTH} characters."
        ));
    }
    if !password.is_empty() && password.chars().all(|c| c.is_ascii_digit()) {
        problems.push("This password is entirely numeric.".to_owned());
    }
    if !username.is_empty() && password.eq_ignore_ascii_case(username) {
        problems.push("The password is too similar to the username.".to_owned());
    }
    if is_common(password) {
        problems.push("This password is too common.".to_owned());
    }
    problems
}

/// A short list of the most used passwords (from public breach-frequency lists).
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwerty123",
    "qwertyuiop",
    "iloveyou",
    "admin123",
    "administrator",
    "welcome1",
    "letmein1",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "dragon123",
    "monkey123",
    "abc12345",
    "changeme",
    "passw0rd",
    "trustno1",
    "superman",
    "whatever",
    "starwars",
    "11111111",
    "00000000",
    "88888888",
    "1q2w3e4r",
    "1qaz2wsx",
    "zaq12wsx",
    "qwerty12",
    "asdfghjkl",
    "secret123",
    "hello123",
    "computer",
    "michael1",
    "jennifer",
    "master123",
];

fn is_common(password: &str) -> bool {
    let lower = password.to_ascii_lowercase();
    COMMON_PASSWORDS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verifiable() {
        let pw = SecretString::from("correct horse battery staple".to_owned());
        let a = hash(&pw);
        let b = hash(&pw);
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salts must differ");
        assert!(verify(&pw, &a));
        assert!(!verify(&SecretString::from("wrong".to_owned()), &a));
        assert!(!verify(&pw, "not-a-phc-string"));
    }

    #[test]
    fn weak_passwords_are_explained() {
        assert!(
            validate("short", "bob")
                .iter()
                .any(|p| p.contains("too short"))
        );
        assert!(
            validate("1234567890", "bob")
                .iter()
                .any(|p| p.contains("numeric"))
        );
        assert!(
            validate("Password123", "bob")
                .iter()
                .any(|p| p.contains("common"))
        );
        assert!(
            validate("alicealice", "alicealice")
                .iter()
                .any(|p| p.contains("similar"))
        );
        assert!(validate("a long unusual passphrase", "bob").is_empty());
    }
}
