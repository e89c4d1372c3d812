//! The index, the settings page, and the (read-only) audit log.

use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Value, json};

use super::audit::{ACTIONS, OBJECT_TYPES};
use super::forms::AuditQuery;
use super::listing::{Count, List, Paging, Plan, Seek, SortKey};
use super::page::Page;
use super::request::{Ctx, Result};
use super::security::fingerprint;
use super::sql::sql_time;
use crate::error::AdminError;

/// The audit log names every user and the addresses they came from.
const READ_AUDIT: &str = "Only superusers may read the audit log.";

/// The audit log, newest first: index `admin_audit_log_at` (migrations/V2), and with a
/// filter the filter's index (V4).
const AUDIT_ORDER: SortKey = SortKey {
    expr: "at",
    token: "at::text",
    param: "{}::text::timestamptz",
    nullable: false,
    descending: true,
};

fn audit_columns() -> String {
    format!(
        "id, {}, username, action, object_type, object_id, object_repr",
        sql_time("at")
    )
}

/// One audit entry as the lists show it.
#[derive(Serialize)]
struct AuditRow {
    id: i64,
    at: String,
    username: String,
    action: String,
    object_type: String,
    object_id: Option<i64>,
    object_repr: String,
    /// The object's page, for the kinds that have one.
    object_url: Option<String>,
}

fn audit_row(r: &tokio_postgres::Row) -> AuditRow {
    let object_type: String = r.get(4);
    let object_id: Option<i64> = r.get(5);
    // A link to the object while it is a kind that has a page.
    let object_url = match (object_type.as_str(), object_id) {
        ("user", Some(id)) => Some(format!("/admin/users/{id}/")),
        ("greeting", Some(id)) => Some(format!("/admin/greetings/{id}/")),
        _ => None,
    };
    AuditRow {
        id: r.get(0),
        at: r.get(1),
        username: r.get(2),
        action: r.get(3),
        object_type,
        object_id,
        object_repr: r.get(6),
        object_url,
    }
}

/// The size of a whole table, estimated when large (src/admin/listing.rs).
async fn table_count(db: &deadpool_postgres::ClientWrapper, table: &str) -> Result<Count> {
    let list = List {
        columns: "",
        table,
        filters: &[],
        params: &[],
        sort: &AUDIT_ORDER,
        plan: Plan::Generic,
    };
    Ok(list.count(db).await?)
}

/// `GET /admin/`: the models with their counts, and the user's recent actions. The
/// queries share the connection's pipeline; users and the audit log are only counted for
/// superusers, the only ones shown them.
pub(crate) async fn index(ctx: &mut Ctx<'_>) -> Result<Page> {
    let db: &deadpool_postgres::ClientWrapper = &ctx.db;
    let superuser = ctx.user.is_superuser;
    let superuser_count = |table: &'static str| async move {
        if superuser {
            table_count(db, table).await.map(Some)
        } else {
            Ok(None)
        }
    };
    // Served by the partial index admin_audit_log_recent (migrations/V4).
    let recent_sql = format!(
        "SELECT {} FROM admin_audit_log WHERE user_id = $1
         AND action NOT IN ('login', 'logout')
         ORDER BY at DESC, id DESC LIMIT 10",
        audit_columns()
    );
    let (users, greetings, audit, recent) = futures_util::try_join!(
        superuser_count("users"),
        table_count(db, "greetings"),
        superuser_count("admin_audit_log"),
        async {
            let recent = db.prepare_cached(&recent_sql).await?;
            Ok::<_, AdminError>(db.query(&recent, &[&ctx.user.id]).await?)
        },
    )?;
    let shown = |count: Option<Count>| count.map(|c| c.display());
    ctx.render(
        "index",
        "Site administration | Greeter administration",
        IndexData {
            users_count: shown(users),
            greetings_count: greetings.display(),
            audit_count: shown(audit),
            recent: recent.iter().map(audit_row).collect(),
        },
    )
}

/// The index page's values; the counts the user may not see are None.
#[derive(Serialize)]
struct IndexData {
    users_count: Option<String>,
    greetings_count: String,
    audit_count: Option<String>,
    recent: Vec<AuditRow>,
}

#[derive(Serialize)]
struct SettingsData {
    app_env: &'static str,
    version: &'static str,
    /// None when PAYMENT_API_KEY is not set.
    payment_fingerprint: Option<String>,
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
        SettingsData {
            app_env: settings.app_env.as_str(),
            version: env!("CARGO_PKG_VERSION"),
            payment_fingerprint: payment,
        },
    )
}

/// `GET /admin/audit/?action=&object_type=&user=&after=|before=|last=1`: keyset pages
/// (src/admin/listing.rs). Superusers only: it names every user and the addresses they
/// came from.
pub(crate) async fn audit_list(ctx: &mut Ctx<'_>) -> Result<Page> {
    ctx.require_superuser(READ_AUDIT)?;
    let query: AuditQuery = ctx.query()?;
    // Unknown filter values are ignored rather than passed on.
    let action = Some(query.action.as_str())
        .filter(|a| ACTIONS.contains(a))
        .unwrap_or("");
    let object_type = Some(query.object_type.as_str())
        .filter(|t| OBJECT_TYPES.contains(t))
        .unwrap_or("");
    let user = query.user.trim();
    // Only the filters in use, so that each is an index condition (migrations/V4).
    let mut filters = Vec::new();
    let mut params: Vec<&str> = Vec::new();
    for (condition, value) in [
        ("action = {}", &action),
        ("object_type = {}", &object_type),
        ("lower(username) = lower({})", &user),
    ] {
        if !value.is_empty() {
            params.push(value);
            filters.push(condition.replace("{}", &format!("${}", params.len())));
        }
    }
    let columns = audit_columns();
    let list = List {
        columns: &columns,
        table: "admin_audit_log",
        filters: &filters,
        params: &params,
        sort: &AUDIT_ORDER,
        // One filter: its own index (V4) serves every value. Two or three: which index
        // is best depends on the values.
        plan: if filters.len() <= 1 {
            Plan::Generic
        } else {
            Plan::PerValue
        },
    };
    let seek = Seek::from_query(&query.after, &query.before, &query.last, &AUDIT_ORDER);
    let db: &deadpool_postgres::ClientWrapper = &ctx.db;
    let (window, total) = list.page_and_count(db, seek).await?;
    let options = |all: &'static [&'static str], chosen: &str| -> Vec<Choice> {
        all.iter()
            .map(|value| Choice {
                value,
                selected: *value == chosen,
            })
            .collect()
    };
    let base = [
        ("action", action),
        ("object_type", object_type),
        ("user", user),
    ];
    ctx.render(
        "audit_list",
        "Audit log | Greeter administration",
        AuditListData {
            entries: window.rows.iter().map(audit_row).collect(),
            actions: options(ACTIONS, action),
            object_types: options(OBJECT_TYPES, object_type),
            filter_user: user,
            filtered: !(action.is_empty() && object_type.is_empty() && user.is_empty()),
            paging: window.links(&total, "/admin/audit/", &base),
        },
    )
}

/// The audit list's values.
#[derive(Serialize)]
struct AuditListData<'a> {
    entries: Vec<AuditRow>,
    actions: Vec<Choice>,
    object_types: Vec<Choice>,
    filter_user: &'a str,
    filtered: bool,
    paging: Paging,
}

/// One option of a filter's select.
#[derive(Serialize)]
struct Choice {
    value: &'static str,
    selected: bool,
}

/// `GET /admin/audit/<id>/`: one entry with its before/after summary.
pub(crate) async fn audit_detail(ctx: &mut Ctx<'_>, id: i64) -> Result<Page> {
    ctx.require_superuser(READ_AUDIT)?;
    let row = ctx
        .db
        .query_opt(
            &format!(
                "SELECT {}, before, after, COALESCE(client_addr, ''), api_token_name FROM admin_audit_log
                 WHERE id = $1",
                audit_columns()
            ),
            &[&id],
        )
        .await?
        .ok_or(AdminError::NotFound)?;
    let pretty = |v: Option<Value>| v.map(|v| serde_json::to_string_pretty(&v).unwrap_or_default());
    let entry = AuditDetail {
        row: audit_row(&row),
        before: pretty(row.get(7)),
        after: pretty(row.get(8)),
        client_addr: row.get(9),
        api_token: row.get(10),
    };
    ctx.render(
        "audit_detail",
        &format!("Audit entry {id} | Greeter administration"),
        json!({"entry": entry}),
    )
}

/// One entry in full: the list's columns, the change and where it came from.
#[derive(Serialize)]
struct AuditDetail {
    #[serde(flatten)]
    row: AuditRow,
    before: Option<String>,
    after: Option<String>,
    client_addr: String,
    api_token: Option<String>,
}
