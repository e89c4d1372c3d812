//! Greetings: list, add, change, activate, delete.
//!
//! Exactly one greeting is active. Activation happens in one transaction (deactivate the
//! others, activate this one); the table's trigger then NOTIFYs every replica, which
//! reloads the message that `GET /` serves.

use serde::Serialize;
use serde_json::{Value, json};
use tokio_postgres::GenericClient;

use super::audit::{self, Change};
use super::forms::{GreetingForm, PageQuery};
use super::listing::{List, Paging, Plan, Seek, SortKey};
use super::page::{Errors, Page};
use super::request::{Ctx, Result};
use super::sql::sql_time;
use crate::error::AdminError;
use crate::greeting::store::{self, Previous, short, validate_message};

#[derive(Serialize, Clone, Default)]
struct GreetingRow {
    id: i64,
    message: String,
    is_active: bool,
    created_at: String,
    updated_at: String,
}

impl GreetingRow {
    fn summary(&self) -> Value {
        json!({"message": self.message, "is_active": self.is_active})
    }

    /// How the greeting is named in messages and the audit log.
    fn repr(&self) -> String {
        short(&self.message)
    }
}

/// The add and change page.
#[derive(Serialize)]
struct FormData {
    adding: bool,
    greeting: GreetingRow,
    errors: Errors,
}

#[derive(Serialize)]
struct DeleteData {
    greeting: GreetingRow,
}

fn greeting_columns() -> String {
    format!(
        "id, message, is_active, {}, {}",
        sql_time("created_at"),
        sql_time("updated_at")
    )
}

fn select_greetings() -> String {
    format!("SELECT {} FROM greetings", greeting_columns())
}

/// The active greeting first, then the newest (index `greetings_list`, migrations/V4).
const LIST_ORDER: SortKey = SortKey {
    expr: "is_active",
    token: "is_active::text",
    param: "{}::text::boolean",
    nullable: false,
    descending: true,
};

fn greeting_row(r: &tokio_postgres::Row) -> GreetingRow {
    GreetingRow {
        id: r.get(0),
        message: r.get(1),
        is_active: r.get(2),
        created_at: r.get(3),
        updated_at: r.get(4),
    }
}

async fn find(client: &impl GenericClient, id: i64) -> Result<GreetingRow> {
    client
        .query_opt(&format!("{} WHERE id = $1", select_greetings()), &[&id])
        .await?
        .map(|r| greeting_row(&r))
        .ok_or(AdminError::NotFound)
}

/// Deactivate every other greeting and activate `id`, returning the one that was active.
async fn make_active(client: &impl GenericClient, id: i64) -> Result<Option<Previous>> {
    Ok(store::activate(client, id).await?)
}

/// `GET /admin/greetings/?after=|before=|last=1`: keyset pages (src/admin/listing.rs).
pub(crate) async fn list(ctx: &mut Ctx<'_>) -> Result<Page> {
    let query: PageQuery = ctx.query()?;
    let columns = greeting_columns();
    let list = List {
        columns: &columns,
        table: "greetings",
        filters: &[],
        params: &[],
        sort: &LIST_ORDER,
        plan: Plan::Generic,
    };
    let seek = Seek::from_query(&query.after, &query.before, &query.last, &LIST_ORDER);
    let (window, total) = list.page_and_count(&ctx.db, seek).await?;
    ctx.render(
        "greetings_list",
        "Select greeting to change | Greeter administration",
        ListData {
            greetings: window.rows.iter().map(greeting_row).collect(),
            paging: window.links(&total, "/admin/greetings/", &[]),
        },
    )
}

/// The list page's values (typed: serialised once, straight into the template's data).
#[derive(Serialize)]
struct ListData {
    greetings: Vec<GreetingRow>,
    paging: Paging,
}

/// `GET`/`POST /admin/greetings/add/`.
pub(crate) async fn add(ctx: &mut Ctx<'_>) -> Result<Page> {
    const TITLE: &str = "Add greeting | Greeter administration";
    if !ctx.req.is_post() {
        return ctx.render(
            "greeting_form",
            TITLE,
            FormData {
                adding: true,
                greeting: GreetingRow::default(),
                errors: Errors::new(),
            },
        );
    }
    let form: GreetingForm = ctx.form()?;
    let message = form.message.trim().to_owned();
    let is_active = form.is_active;
    if let Some(problem) = validate_message(&message) {
        return ctx.render(
            "greeting_form",
            TITLE,
            FormData {
                adding: true,
                greeting: GreetingRow {
                    message,
                    is_active,
                    ..GreetingRow::default()
                },
                errors: Errors::from_iter([("message".into(), json!([problem]))]),
            },
        );
    }
    let actor = ctx.actor();
    let tx = ctx.db.transaction().await?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO greetings (message) VALUES ($1) RETURNING id",
            &[&message],
        )
        .await?
        .get(0);
    if is_active {
        make_active(&*tx, id).await?;
    }
    let created = find(&*tx, id).await?;
    audit::record(
        &*tx,
        &actor,
        Change {
            action: "create",
            object_type: "greeting",
            object_id: Some(id),
            object_repr: &created.repr(),
            before: None,
            after: Some(created.summary()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ctx.redirect_with(
        "/admin/greetings/",
        "success",
        &format!("The greeting “{}” was added successfully.", created.repr()),
    ))
}

/// `GET`/`POST /admin/greetings/<id>/`.
pub(crate) async fn change(ctx: &mut Ctx<'_>, id: i64) -> Result<Page> {
    let current = find(&**ctx.db, id).await?;
    let title = format!(
        "{} | Change greeting | Greeter administration",
        current.repr()
    );
    if !ctx.req.is_post() {
        return ctx.render(
            "greeting_form",
            &title,
            FormData {
                adding: false,
                greeting: current,
                errors: Errors::new(),
            },
        );
    }
    let form: GreetingForm = ctx.form()?;
    let message = form.message.trim().to_owned();
    let is_active = form.is_active;
    let mut errors = Errors::new();
    if let Some(problem) = validate_message(&message) {
        errors.insert("message".into(), json!([problem]));
    }
    if current.is_active && !is_active {
        errors.insert(
            "is_active".into(),
            json!([
                "Exactly one greeting is active. To change which one, activate another greeting."
            ]),
        );
    }
    if !errors.is_empty() {
        let shown = GreetingRow {
            message,
            is_active,
            ..current
        };
        return ctx.render(
            "greeting_form",
            &title,
            FormData {
                adding: false,
                greeting: shown,
                errors,
            },
        );
    }
    let actor = ctx.actor();
    let tx = ctx.db.transaction().await?;
    let before = find(&*tx, id).await?;
    tx.execute(
        "UPDATE greetings SET message = $2, updated_at = now() WHERE id = $1",
        &[&id, &message],
    )
    .await?;
    if is_active && !before.is_active {
        make_active(&*tx, id).await?;
    }
    let after = find(&*tx, id).await?;
    audit::record(
        &*tx,
        &actor,
        Change {
            action: "update",
            object_type: "greeting",
            object_id: Some(id),
            object_repr: &after.repr(),
            before: Some(before.summary()),
            after: Some(after.summary()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ctx.redirect_with(
        "/admin/greetings/",
        "success",
        &format!("The greeting “{}” was changed successfully.", after.repr()),
    ))
}

/// `POST /admin/greetings/<id>/activate/`: the list's "Make active" button.
pub(crate) async fn activate(ctx: &mut Ctx<'_>, id: i64) -> Result<Page> {
    let actor = ctx.actor();
    let tx = ctx.db.transaction().await?;
    let target = find(&*tx, id).await?;
    let previous = make_active(&*tx, id).await?;
    audit::record(
        &*tx,
        &actor,
        Change {
            action: "activate",
            object_type: "greeting",
            object_id: Some(id),
            object_repr: &target.repr(),
            before: Some(json!({
                "active_greeting": previous.map(|p| json!({"id": p.id, "message": p.message})),
            })),
            after: Some(json!({"active_greeting": {"id": id, "message": target.message}})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ctx.redirect_with(
        "/admin/greetings/",
        "success",
        &format!(
            "The greeting “{}” is now active: GET / serves it.",
            target.repr()
        ),
    ))
}

/// `GET` (confirmation) and `POST /admin/greetings/<id>/delete/`.
pub(crate) async fn delete(ctx: &mut Ctx<'_>, id: i64) -> Result<Page> {
    let target = find(&**ctx.db, id).await?;
    if target.is_active {
        return Ok(ctx.redirect_with(
            &format!("/admin/greetings/{id}/"),
            "error",
            "The active greeting cannot be deleted. Activate another greeting first.",
        ));
    }
    if !ctx.req.is_post() {
        return ctx.render(
            "greeting_delete",
            &format!("Delete greeting {} | Greeter administration", target.repr()),
            DeleteData { greeting: target },
        );
    }
    let actor = ctx.actor();
    let tx = ctx.db.transaction().await?;
    // Checked again under the lock: it may have been activated in the meantime.
    if !store::delete_inactive(&*tx, id).await? {
        return Err(AdminError::NotFound);
    }
    audit::record(
        &*tx,
        &actor,
        Change {
            action: "delete",
            object_type: "greeting",
            object_id: Some(id),
            object_repr: &target.repr(),
            before: Some(target.summary()),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ctx.redirect_with(
        "/admin/greetings/",
        "success",
        &format!("The greeting “{}” was deleted successfully.", target.repr()),
    ))
}
