//! The index, the settings page, and the (read-only) audit log.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::audit::{ACTIONS, OBJECT_TYPES};
use super::forms::{PER_PAGE, Paging, query_string};
use super::page::Page;
use super::request::{Ctx, Result};
use super::security::fingerprint;
use super::sql::sql_time;
use crate::error::AdminError;

/// The audit log names every user and the addresses they came from.
const READ_AUDIT: &str = "Only superusers may read the audit log.";

fn audit_columns() -> String {
    format!(
        "id, {}, username, action, object_type, object_id, object_repr",
        sql_time("at")
    )
}

fn audit_row(r: &tokio_postgres::Row) -> Value {
    let object_type: String = r.get(4);
    let object_id: Option<i64> = r.get(5);
    // A link to the object while it is a kind that has a page.
    let object_url = match (object_type.as_str(), object_id) {
        ("user", Some(id)) => Some(format!("/admin/users/{id}/")),
        ("greeting", Some(id)) => Some(format!("/admin/greetings/{id}/")),
        _ => None,
    };
    json!({
        "id": r.get::<_, i64>(0),
        "at": r.get::<_, String>(1),
        "username": r.get::<_, String>(2),
        "action": r.get::<_, String>(3),
        "object_type": object_type,
        "object_id": object_id,
        "object_repr": r.get::<_, String>(6),
        "object_url": object_url,
    })
}

/// `GET /admin/`: the models with their counts, and the user's recent actions.
pub(crate) async fn index(ctx: &mut Ctx<'_>) -> Result<Page> {
    let counts = ctx
        .db
        .query_one(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM greetings),
                    (SELECT count(*) FROM admin_audit_log)",
            &[],
        )
        .await?;
    let recent = ctx
        .db
        .query(
            &format!(
                "SELECT {} FROM admin_audit_log WHERE user_id = $1
                 AND action NOT IN ('login', 'logout')
                 ORDER BY at DESC, id DESC LIMIT 10",
                audit_columns()
            ),
            &[&ctx.user.id],
        )
        .await?;
    let recent: Vec<Value> = recent.iter().map(audit_row).collect();
    ctx.render(
        "index",
        "Site administration | Greeter administration",
        json!({
            "users_count": counts.get::<_, i64>(0),
            "greetings_count": counts.get::<_, i64>(1),
            "audit_count": counts.get::<_, i64>(2),
            "recent": recent,
        }),
    )
}

/// `GET /admin/settings/`: what this deployment runs, never a secret's value.
pub(crate) fn settings(ctx: &mut Ctx<'_>) -> Result<Page> {
    let settings = &ctx.admin.settings;
    let payment = settings
        .payment_api_key
        .as_ref()
        .map(|key| fingerprint(key.expose_secret()));
    ctx.render(
        "settings",
        "Settings | Greeter administration",
        json!({
            "app_env": settings.app_env.as_str(),
            "version": env!("CARGO_PKG_VERSION"),
            "payment_fingerprint": payment,
        }),
    )
}

/// `GET /admin/audit/?action=&object_type=&user=&p=`. Superusers only: it names every
/// user and the addresses they came from.
pub(crate) async fn audit_list(ctx: &mut Ctx<'_>) -> Result<Page> {
    ctx.require_superuser(READ_AUDIT)?;
    let query = ctx.query();
    // Unknown filter values are ignored rather than passed on.
    let action = Some(query.get("action"))
        .filter(|a| ACTIONS.contains(a))
        .unwrap_or("");
    let object_type = Some(query.get("object_type"))
        .filter(|t| OBJECT_TYPES.contains(t))
        .unwrap_or("");
    let user = query.get("user").trim();
    const FILTER: &str = "($1 = '' OR action = $1) AND ($2 = '' OR object_type = $2)
                          AND ($3 = '' OR lower(username) = lower($3))";
    let total: i64 = ctx
        .db
        .query_one(
            &format!("SELECT count(*) FROM admin_audit_log WHERE {FILTER}"),
            &[&action, &object_type, &user],
        )
        .await?
        .get(0);
    let paging = Paging::new(query.get("p"), total);
    let rows = ctx
        .db
        .query(
            &format!(
                "SELECT {} FROM admin_audit_log WHERE {FILTER}
                 ORDER BY at DESC, id DESC LIMIT $4 OFFSET $5",
                audit_columns()
            ),
            &[&action, &object_type, &user, &PER_PAGE, &paging.offset()],
        )
        .await?;
    let entries: Vec<Value> = rows.iter().map(audit_row).collect();
    let options = |all: &[&str], chosen: &str| -> Vec<Value> {
        all.iter()
            .map(|v| json!({"value": v, "selected": *v == chosen}))
            .collect()
    };
    let page_link = |p: i64| {
        query_string(&[
            ("action", action),
            ("object_type", object_type),
            ("user", user),
            ("p", &p.to_string()),
        ])
    };
    ctx.render(
        "audit_list",
        "Audit log | Greeter administration",
        json!({
            "entries": entries,
            "actions": options(ACTIONS, action),
            "object_types": options(OBJECT_TYPES, object_type),
            "filter_user": user,
            "filtered": !(action.is_empty() && object_type.is_empty() && user.is_empty()),
            "paging": paging.to_json(page_link),
        }),
    )
}

/// `GET /admin/audit/<id>/`: one entry with its before/after summary.
pub(crate) async fn audit_detail(ctx: &mut Ctx<'_>, id: i64) -> Result<Page> {
    ctx.require_superuser(READ_AUDIT)?;
    let row = ctx
        .db
        .query_opt(
            &format!(
                "SELECT {}, before, after, COALESCE(client_addr, '') FROM admin_audit_log
                 WHERE id = $1",
                audit_columns()
            ),
            &[&id],
        )
        .await?
        .ok_or(AdminError::NotFound)?;
    let mut entry = audit_row(&row);
    let pretty = |v: Option<Value>| v.map(|v| serde_json::to_string_pretty(&v).unwrap_or_default());
    entry["before"] = json!(pretty(row.get(7)));
    entry["after"] = json!(pretty(row.get(8)));
    entry["client_addr"] = json!(row.get::<_, String>(9));
    ctx.render(
        "audit_detail",
        &format!("Audit entry {id} | Greeter administration"),
        json!({"entry": entry}),
    )
}
