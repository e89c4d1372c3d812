//! Password hashing with argon2id (OWASP parameters) and the password rule: at least 12
//! characters and a zxcvbn strength estimate of 3 or more.

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
/// at a time; the rest wait in its queue. mimalloc (Cargo.toml) gives a buffer back to
/// the operating system when its hash is done.
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

/// The shortest password accepted (OWASP ASVS 2.1.1 asks for at least 12).
pub const MIN_LENGTH: usize = 12;

/// The lowest zxcvbn score accepted: 3 of 4, "safely unguessable: moderate protection
/// from offline slow-hash scenario" (at least 10^10 guesses).
pub const MIN_SCORE: u8 = 3;

/// Words zxcvbn should treat as guessable for every account, besides its own dictionaries.
const SITE_WORDS: &[&str] = &["greeter", "admin", "administrator"];

/// The one password rule, for the admin forms, `createsuperuser` and the bootstrap admin
/// (`ADMIN_PASSWORD`): at least [`MIN_LENGTH`] characters, and a zxcvbn strength estimate
/// of at least [`MIN_SCORE`] with the username as a user input (so a password built
/// from it is weak). Returns the problems (zxcvbn's feedback included), empty when
/// acceptable; they never quote the password.
pub fn validate(password: &str, username: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if password.chars().count() < MIN_LENGTH {
        problems.push(format!(
            "This password is too short. It must contain at least {MIN_LENGTH} characters."
        ));
    }
    let mut inputs: Vec<&str> = SITE_WORDS.to_vec();
    if !username.is_empty() {
        inputs.push(username);
    }
    let estimate = zxcvbn::zxcvbn(password, &inputs);
    let score = u8::from(estimate.score());
    if score < MIN_SCORE {
        problems.push(format!(
            "This password is too easy to guess (strength {score} of 4; at least {MIN_SCORE} \
             is required)."
        ));
        if let Some(feedback) = estimate.feedback() {
            problems.extend(feedback.warning().map(|w| w.to_string()));
            problems.extend(feedback.suggestions().iter().map(|s| s.to_string()));
        }
    }
    problems
}

/// A new password typed twice into a form: the two must match, then [`validate`].
pub fn validate_new(new1: &str, new2: &str, username: &str) -> Vec<String> {
    if new1 != new2 {
        return vec!["The two password fields didn’t match.".to_owned()];
    }
    validate(new1, username)
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

    fn rejected(password: &str, username: &str) -> Vec<String> {
        let problems = validate(password, username);
        assert!(!problems.is_empty(), "{password:?} was accepted");
        problems
    }

    /// The pen test's examples, and the old rules' gaps: short, common, predictable.
    #[test]
    fn weak_passwords_are_refused_with_zxcvbn_feedback() {
        for weak in ["aaaaaaaa", "P@ssw0rd", "Summer2024"] {
            assert!(
                rejected(weak, "bob")
                    .iter()
                    .any(|p| p.contains("too short"))
            );
        }
        // Long enough, still guessable: zxcvbn's warning is the form error.
        let problems = rejected("aaaaaaaaaaaaaaaa", "bob");
        assert!(
            problems.iter().any(|p| p.contains("too easy to guess")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("Repeats like")),
            "{problems:?}"
        );
        rejected("Password12345!", "bob");
        rejected("qwertyuiop1234", "bob");
        // The username (and the site's name) are guessable inputs.
        rejected("elizabethtaylor99", "elizabethtaylor99");
        rejected("greeteradmin1", "bob");
    }

    #[test]
    fn strong_passwords_pass() {
        for strong in [
            "correct horse battery staple",
            "a much newer passphrase 42",
            "Xq7-vLm2-Rt9w-Kp4z",
        ] {
            assert_eq!(validate(strong, "bob"), Vec::<String>::new(), "{strong}");
        }
    }

    #[test]
    fn a_mismatch_is_reported_first() {
        assert_eq!(
            validate_new("correct horse battery staple", "other", "bob"),
            vec!["The two password fields didn’t match."]
        );
    }
}
