//! The greeting rules and writes shared by the admin and the API: one place decides what a
//! valid message is, how activation keeps exactly one greeting active, and that the active
//! greeting cannot be deleted. Every write goes through the `greetings` table, whose
//! trigger NOTIFYs every replica (see [`crate::greeting`]).

use tokio_postgres::GenericClient;

/// Serialises activations and deletions: under READ COMMITTED two concurrent activations
/// could otherwise both miss each other's row and trip the one-active index. "greet\0\0\0".
const GREETINGS_LOCK: i64 = 0x6772_6565_7400_0000;

/// The longest message, in characters (the table's CHECK says the same).
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Why a message cannot be stored, in the admin's (Django's) words; `None` if it can.
pub fn validate_message(message: &str) -> Option<&'static str> {
    if message.is_empty() {
        Some("This field is required.")
    } else if message.chars().count() > MAX_MESSAGE_CHARS {
        Some("Ensure this value has at most 500 characters.")
    } else if message.contains('\0') {
        // PostgreSQL text cannot hold NUL (the admin refuses such forms before this).
        Some("Null characters are not allowed.")
    } else {
        None
    }
}

/// How a greeting is named in the audit log and messages: its first 60 characters.
pub fn short(message: &str) -> String {
    let mut s: String = message.chars().take(60).collect();
    if message.chars().count() > 60 {
        s.push('…');
    }
    s
}

/// The greeting that was active before an activation.
pub struct Previous {
    pub id: i64,
    pub message: String,
}

/// Deactivate every other greeting and activate `id` (in the caller's transaction),
/// returning the one that was active before.
pub async fn activate(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<Previous>, tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&GREETINGS_LOCK])
        .await?;
    let previous = client
        .query_opt(
            "SELECT id, message FROM greetings WHERE is_active AND id <> $1",
            &[&id],
        )
        .await?
        .map(|r| Previous {
            id: r.get(0),
            message: r.get(1),
        });
    client
        .execute(
            "UPDATE greetings SET is_active = FALSE, updated_at = now()
             WHERE is_active AND id <> $1",
            &[&id],
        )
        .await?;
    client
        .execute(
            "UPDATE greetings SET is_active = TRUE, updated_at = now() WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(previous)
}

/// Delete `id` unless it is active (checked under the lock, in the caller's transaction:
/// it may have been activated since the caller looked). Whether a row was deleted.
pub async fn delete_inactive(
    client: &impl GenericClient,
    id: i64,
) -> Result<bool, tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&GREETINGS_LOCK])
        .await?;
    let deleted = client
        .execute(
            "DELETE FROM greetings WHERE id = $1 AND NOT is_active",
            &[&id],
        )
        .await?;
    Ok(deleted > 0)
}
