//! API tokens in the admin: list, create (shown once), revoke. Superusers see and revoke
//! every token; staff users their own. The token model is the API's
//! ([`crate::auth::tokens`]); revoking NOTIFYs every replica, which drops the token at once.

use serde_json::{Value, json};

use super::audit::{self, Change};
use super::forms::TokenForm;
use super::page::Page;
use super::request::{Ctx, Result};
use crate::auth::tokens::{self, CreateTokenError, NewToken, Scope, Scopes};
use crate::error::AdminError;

const TITLE: &str = "API tokens | Greeter administration";

/// The expiry choices the form offers, in days (`None`: never).
const EXPIRY_CHOICES: &[(&str, Option<u32>)] = &[
    ("30", Some(30)),
    ("90", Some(90)),
    ("365", Some(365)),
    ("7", Some(7)),
    ("never", None),
];

/// Whose tokens this user may see and revoke: everyone's (`None`) or their own.
fn scope_of(ctx: &Ctx<'_>) -> Option<i64> {
    (!ctx.user.is_superuser).then_some(ctx.user.id)
}

async fn render_list(
    ctx: &mut Ctx<'_>,
    form: Value,
    errors: Value,
    created: Value,
) -> Result<Page> {
    let rows = tokens::list(&**ctx.db, scope_of(ctx)).await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "prefix": t.prefix,
                "owner": t.owner_username,
                "scopes": t.scopes.join(", "),
                "created_at": t.created_at,
                "expires_at": t.expires_at,
                "last_used_at": t.last_used_at,
                "revoked_at": t.revoked_at,
                "expired": t.expired,
                "active": t.revoked_at.is_none() && !t.expired,
            })
        })
        .collect();
    let expiry: Vec<Value> = EXPIRY_CHOICES
        .iter()
        .map(|(value, days)| {
            json!({
                "value": value,
                "label": days.map_or("Never".to_owned(), |d| format!("{d} days")),
                "selected": form["expiry"] == *value,
            })
        })
        .collect();
    ctx.render(
        "tokens",
        TITLE,
        json!({
            "tokens": list,
            "all_users": ctx.user.is_superuser,
            "form": form,
            "expiry_choices": expiry,
            "errors": errors,
            "created": created,
        }),
    )
}

/// `GET /admin/tokens/`: the list and the form.
pub(crate) async fn list(ctx: &mut Ctx<'_>) -> Result<Page> {
    let form = json!({"name": "", "read": true, "write": false, "expiry": "90"});
    render_list(ctx, form, json!({}), Value::Null).await
}

/// `POST /admin/tokens/add/`: create a token owned by the logged-in user and show it
/// once, on this response only (never in a redirect, a cookie or the log).
pub(crate) async fn add(ctx: &mut Ctx<'_>) -> Result<Page> {
    let submitted: TokenForm = ctx.form()?;
    let name = submitted.name.trim().to_owned();
    let read = submitted.scope_read;
    let write = submitted.scope_write;
    let expiry = submitted.expiry;
    let form = json!({"name": name, "read": read, "write": write, "expiry": expiry});
    let mut scopes = Vec::new();
    if read {
        scopes.push(Scope::GreetingsRead);
    }
    if write {
        scopes.push(Scope::GreetingsWrite);
    }
    let mut errors = serde_json::Map::new();
    let expires_in_days = match EXPIRY_CHOICES.iter().find(|(v, _)| *v == expiry) {
        Some((_, days)) => *days,
        None => {
            errors.insert("expiry".into(), json!(["Select a valid choice."]));
            None
        }
    };
    let new = NewToken {
        name: &name,
        scopes: Scopes::from_list(&scopes),
        expires_in_days,
    };
    match tokens::validate(&new) {
        Err(CreateTokenError::InvalidName) => {
            errors.insert(
                "name".into(),
                json!(["Give the token a name of 1-100 characters."]),
            );
        }
        Err(CreateTokenError::NoScope) => {
            errors.insert("scopes".into(), json!(["Select at least one scope."]));
        }
        _ => {}
    }
    if !errors.is_empty() {
        return render_list(ctx, form, Value::Object(errors), Value::Null).await;
    }
    let actor = ctx.actor();
    let owner = ctx.user.username.clone();
    let tx = ctx.db.transaction().await?;
    let created = match tokens::create(&*tx, &owner, &new).await {
        Ok(created) => created,
        Err(CreateTokenError::Database(e)) => return Err(AdminError::Database(e)),
        Err(_) => {
            return Err(AdminError::Forbidden(
                "Only active staff users may own API tokens.",
            ));
        }
    };
    audit::record(
        &*tx,
        &actor,
        Change {
            action: "create",
            object_type: "api_token",
            object_id: Some(created.id),
            object_repr: &name,
            before: None,
            after: Some(json!({
                "name": name,
                "scopes": new.scopes.names(),
                "expires_in_days": expires_in_days,
                "owner": created.owner_username,
            })),
        },
    )
    .await?;
    tx.commit().await?;
    let fresh = json!({"name": "", "read": true, "write": false, "expiry": "90"});
    render_list(
        ctx,
        fresh,
        json!({}),
        json!({"name": name, "token": created.token}),
    )
    .await
}

/// `POST /admin/tokens/<id>/revoke/`.
pub(crate) async fn revoke(ctx: &mut Ctx<'_>, id: i64) -> Result<Page> {
    let actor = ctx.actor();
    let owner_filter = scope_of(ctx);
    let tx = ctx.db.transaction().await?;
    let Some((name, _owner)) = tokens::revoke(&*tx, id, owner_filter).await? else {
        // Unknown, someone else's (for staff) or already revoked: nothing to do here.
        return Err(AdminError::NotFound);
    };
    audit::record(
        &*tx,
        &actor,
        Change {
            action: "revoke",
            object_type: "api_token",
            object_id: Some(id),
            object_repr: &name,
            before: None,
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ctx.redirect_with(
        "/admin/tokens/",
        "success",
        &format!("The token “{name}” was revoked: no replica accepts it any more."),
    ))
}
