//! The audit log: every change made through the admin, written in the same transaction
//! as the change itself. The table is append-only (a trigger refuses UPDATE and DELETE)
//! and the admin has no page that could change it.

use std::net::IpAddr;

use serde_json::Value;
use tokio_postgres::GenericClient;

use super::session::SessionUser;

/// Who did it: a logged-in user, or (for login events) whoever claimed a username.
pub(crate) struct Actor {
    pub user_id: Option<i64>,
    pub username: String,
    pub client_addr: Option<IpAddr>,
}

impl Actor {
    pub fn user(user: &SessionUser, client_addr: Option<IpAddr>) -> Self {
        Self {
            user_id: Some(user.id),
            username: user.username.clone(),
            client_addr,
        }
    }
}

/// One change: what kind, to which object, and a before/after summary (never secrets).
pub(crate) struct Change<'a> {
    pub action: &'a str,
    pub object_type: &'a str,
    pub object_id: Option<i64>,
    pub object_repr: &'a str,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

pub(crate) async fn record(
    client: &impl GenericClient,
    actor: &Actor,
    change: Change<'_>,
) -> Result<(), tokio_postgres::Error> {
    insert(
        client,
        actor.user_id,
        &actor.username,
        actor.client_addr,
        None,
        change,
    )
    .await
}

/// An API token acting for its owner: its entries name both (see `crate::api`).
pub(crate) struct TokenActor<'a> {
    pub token_id: i64,
    pub token_name: &'a str,
    pub owner_id: i64,
    pub owner_username: &'a str,
    pub client_addr: Option<IpAddr>,
}

/// Like [`record`], for a change made through the API with a token.
pub(crate) async fn record_via_token(
    client: &impl GenericClient,
    actor: &TokenActor<'_>,
    change: Change<'_>,
) -> Result<(), tokio_postgres::Error> {
    insert(
        client,
        Some(actor.owner_id),
        actor.owner_username,
        actor.client_addr,
        Some((actor.token_id, actor.token_name)),
        change,
    )
    .await
}

/// The one INSERT of an audit entry; `token` is the API token that acted, if any.
async fn insert(
    client: &impl GenericClient,
    user_id: Option<i64>,
    username: &str,
    client_addr: Option<IpAddr>,
    token: Option<(i64, &str)>,
    change: Change<'_>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO admin_audit_log
               (user_id, username, action, object_type, object_id, object_repr, before, after,
                client_addr, api_token_id, api_token_name)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &user_id,
                &username,
                &change.action,
                &change.object_type,
                &change.object_id,
                &change.object_repr,
                &change.before,
                &change.after,
                &client_addr.map(|a| a.to_string()),
                &token.map(|(id, _)| id),
                &token.map(|(_, name)| name),
            ],
        )
        .await?;
    Ok(())
}

/// The actions that the audit log's filter offers.
pub(crate) const ACTIONS: &[&str] = &[
    "create",
    "update",
    "delete",
    "activate",
    "set_password",
    "password_change",
    "login",
    "logout",
    "login_locked",
    "revoke",
];

/// The object types that the audit log's filter offers.
pub(crate) const OBJECT_TYPES: &[&str] = &["user", "greeting", "session", "api_token"];
