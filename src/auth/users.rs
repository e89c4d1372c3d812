//! The `users` table: creating superusers for the migrator and `createsuperuser`.

use secrecy::SecretString;
use tokio_postgres::GenericClient;

use super::password;

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("a user named {0:?} already exists")]
    AlreadyExists(String),
    #[error("invalid username {0:?}: use 1-150 letters, digits and @ . + - _")]
    InvalidUsername(String),
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
}

pub fn username_is_valid(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= 150
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.+-_".contains(c))
}

/// Create an active superuser (staff too, so it can log in to the admin). Never touches
/// an existing user: an existing name is [`CreateUserError::AlreadyExists`].
pub async fn create_superuser(
    client: &impl GenericClient,
    username: &str,
    password: SecretString,
) -> Result<i64, CreateUserError> {
    if !username_is_valid(username) {
        return Err(CreateUserError::InvalidUsername(username.to_owned()));
    }
    let hash = password::hash_async(password).await;
    let row = client
        .query_opt(
            "INSERT INTO users (username, password_hash, is_active, is_staff, is_superuser)
             VALUES ($1, $2, TRUE, TRUE, TRUE)
             ON CONFLICT (lower(username)) DO NOTHING
             RETURNING id",
            &[&username, &hash],
        )
        .await?;
    row.map(|r| r.get(0))
        .ok_or_else(|| CreateUserError::AlreadyExists(username.to_owned()))
}
