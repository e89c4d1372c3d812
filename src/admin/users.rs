//! Users: list, add, change, set password, delete. Superusers only.
//!
//! Nobody can lock themself out: a user cannot deactivate, un-staff, un-superuser or
//! delete their own account, and the last active superuser always remains.

use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_postgres::GenericClient;

use super::audit::{self, Change};
use super::auth_views::new_password_problems;
use super::forms::query_string;
use super::listing::{List, Seek, SortKey};
use super::page::Page;
use super::request::{Ctx, Result};
use super::session;
use super::sql::{is_unique_violation, like_pattern, sql_time};
use crate::auth::users::username_is_valid;
use crate::error::AdminError;

const MANAGE_USERS: &str = "Only superusers may manage users.";
const REQUIRED: &str = "This field is required.";
const TAKEN: &str = "A user with that username already exists.";
const BAD_USERNAME: &str =
    "Enter a valid username: up to 150 letters, digits and @ . + - _ characters.";

/// Serialises changes to superuser flags, so two superusers demoting each other at the
/// same moment cannot leave nobody in charge. An arbitrary constant: "users\0\0\0".
const USERS_LOCK: i64 = 0x7573_6572_7300_0000;

/// The orderings the `o` parameter may pick (never raw input in SQL). Each has an index
/// on `(expression, id)` (migrations/V4): a NULL last login sorts first, as -infinity.
const ORDERINGS: &[(&str, SortKey)] = &[
    ("username", by_name(false)),
    ("-username", by_name(true)),
    ("date_joined", by_date_joined(false)),
    ("-date_joined", by_date_joined(true)),
    ("last_login", by_last_login(false)),
    ("-last_login", by_last_login(true)),
];

const fn by_name(descending: bool) -> SortKey {
    SortKey {
        expr: "lower(username)",
        token: "lower(username)",
        param: "{}::text",
        nullable: false,
        descending,
    }
}

const fn by_date_joined(descending: bool) -> SortKey {
    SortKey {
        expr: "date_joined",
        token: "date_joined::text",
        param: "{}::text::timestamptz",
        nullable: false,
        descending,
    }
}

const fn by_last_login(descending: bool) -> SortKey {
    SortKey {
        expr: "COALESCE(last_login, '-infinity'::timestamptz)",
        token: "last_login::text",
        param: "COALESCE({}::text::timestamptz, '-infinity'::timestamptz)",
        nullable: true,
        descending,
    }
}

struct UserRow {
    id: i64,
    username: String,
    is_active: bool,
    is_staff: bool,
    is_superuser: bool,
    date_joined: String,
    last_login: String,
}

impl UserRow {
    fn summary(&self) -> Value {
        json!({
            "username": self.username,
            "is_active": self.is_active,
            "is_staff": self.is_staff,
            "is_superuser": self.is_superuser,
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "username": self.username,
            "is_active": self.is_active,
            "is_staff": self.is_staff,
            "is_superuser": self.is_superuser,
            "date_joined": self.date_joined,
            "last_login": self.last_login,
        })
    }
}

fn user_columns() -> String {
    format!(
        "id, username, is_active, is_staff, is_superuser, {}, {}",
        sql_time("date_joined"),
        sql_time("last_login")
    )
}

fn select_users() -> String {
    format!("SELECT {} FROM users", user_columns())
}

fn user_row(r: &tokio_postgres::Row) -> UserRow {
    UserRow {
        id: r.get(0),
        username: r.get(1),
        is_active: r.get(2),
        is_staff: r.get(3),
        is_superuser: r.get(4),
        date_joined: r.get(5),
        last_login: r.get(6),
    }
}

async fn find(client: &impl GenericClient, id: i64) -> Result<UserRow> {
    client
        .query_opt(&format!("{} WHERE id = $1", select_users()), &[&id])
        .await?
        .map(|r| user_row(&r))
        .ok_or(AdminError::NotFound)
}

/// `GET /admin/users/?q=&o=&after=|before=|last=1`: keyset pages (src/admin/listing.rs);
/// the search is served by a trigram index.
pub(crate) async fn list(ctx: &mut Ctx<'_>) -> Result<Page> {
    ctx.require_superuser(MANAGE_USERS)?;
    let query = ctx.query();
    let search = query.get("q").trim().to_owned();
    let (order_key, sort) = ORDERINGS
        .iter()
        .find(|(k, _)| *k == query.get("o"))
        .unwrap_or(&ORDERINGS[0]);
    let order_key = *order_key;
    let pattern = like_pattern(&search);
    let (filters, params): (Vec<String>, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>) =
        if search.is_empty() {
            (vec![], vec![])
        } else {
            (
                vec!["username ILIKE $1 ESCAPE '\\'".to_owned()],
                vec![&pattern],
            )
        };
    let columns = user_columns();
    let list = List {
        columns: &columns,
        table: "users",
        filters: &filters,
        params: &params,
        sort,
    };
    let seek = Seek::from_query(
        query.get("after"),
        query.get("before"),
        query.get("last"),
        sort,
    );
    let (window, total) =
        futures_util::try_join!(list.page(&**ctx.db, seek), list.count(&**ctx.db))?;
    let rows = &window.rows;
    let users: Vec<Value> = rows.iter().map(|r| user_row(r).to_json()).collect();
    // Column headers sort by their column, and flip the direction when already sorted.
    let sort_link = |column: &str| {
        let next = if order_key == column {
            format!("-{column}")
        } else {
            column.to_owned()
        };
        query_string(&[("q", &search), ("o", &next)])
    };
    let sort = |column: &str| {
        json!({
            "url": sort_link(column),
            "active": order_key.trim_start_matches('-') == column,
            "descending": order_key.starts_with('-') && order_key.trim_start_matches('-') == column,
        })
    };
    ctx.render(
        "users_list",
        "Select user to change | Greeter administration",
        json!({
            "users": users,
            "q": search,
            "o": order_key,
            "paging": window.links(&total, "/admin/users/", &[("q", &search), ("o", order_key)]),
            "sort": {
                "username": sort("username"),
                "date_joined": sort("date_joined"),
                "last_login": sort("last_login"),
            },
        }),
    )
}

/// `GET`/`POST /admin/users/add/`: a username and a password typed twice.
pub(crate) async fn add(ctx: &mut Ctx<'_>) -> Result<Page> {
    ctx.require_superuser(MANAGE_USERS)?;
    const TITLE: &str = "Add user | Greeter administration";
    if !ctx.req.is_post() {
        return ctx.render("user_add", TITLE, json!({"username": "", "errors": {}}));
    }
    let form = ctx.form();
    let username = form.get("username").trim().to_owned();
    let (password1, password2) = (form.get("password1"), form.get("password2"));
    let mut errors = serde_json::Map::new();
    if username.is_empty() {
        errors.insert("username".into(), json!([REQUIRED]));
    } else if !username_is_valid(&username) {
        errors.insert("username".into(), json!([BAD_USERNAME]));
    }
    if password1.is_empty() {
        errors.insert("password1".into(), json!([REQUIRED]));
    }
    if password2.is_empty() {
        errors.insert("password2".into(), json!([REQUIRED]));
    } else if let Some(problems) = new_password_problems(password1, password2, &username) {
        errors.insert("password2".into(), problems);
    }
    if !errors.is_empty() {
        return ctx.render(
            "user_add",
            TITLE,
            json!({"username": username, "errors": errors}),
        );
    }
    let hash = ctx
        .admin
        .hash_password(SecretString::from(password1.to_owned()))
        .await;
    let actor = ctx.actor();
    let tx = ctx.db.transaction().await?;
    let inserted = tx
        .query_one(
            "INSERT INTO users (username, password_hash) VALUES ($1, $2) RETURNING id",
            &[&username, &hash],
        )
        .await;
    let id: i64 = match inserted {
        Ok(row) => row.get(0),
        Err(e) if is_unique_violation(&e) => {
            drop(tx);
            return ctx.render(
                "user_add",
                TITLE,
                json!({"username": username, "errors": {"username": [TAKEN]}}),
            );
        }
        Err(e) => return Err(e.into()),
    };
    let created = find(&*tx, id).await?;
    audit::record(
        &*tx,
        &actor,
        Change {
            action: "create",
            object_type: "user",
            object_id: Some(id),
            object_repr: &username,
            before: None,
            after: Some(created.summary()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ctx.redirect_with(
        &format!("/admin/users/{id}/"),
        "success",
        &format!("The user “{username}” was added successfully. You may edit it again below."),
    ))
}

/// `GET`/`POST /admin/users/<id>/`: username and the active/staff/superuser flags.
pub(crate) async fn change(ctx: &mut Ctx<'_>, id: i64) -> Result<Page> {
    ctx.require_superuser(MANAGE_USERS)?;
    let before = find(&**ctx.db, id).await?;
    let title = format!("{} | Change user | Greeter administration", before.username);
    if !ctx.req.is_post() {
        return ctx.render(
            "user_change",
            &title,
            json!({"target": before.to_json(), "is_self": id == ctx.user.id, "errors": {}}),
        );
    }
    let form = ctx.form();
    let username = form.get("username").trim().to_owned();
    let wanted = UserRow {
        username: username.clone(),
        is_active: form.checked("is_active"),
        is_staff: form.checked("is_staff"),
        is_superuser: form.checked("is_superuser"),
        ..before
    };
    let mut errors = serde_json::Map::new();
    if username.is_empty() {
        errors.insert("username".into(), json!([REQUIRED]));
    } else if !username_is_valid(&username) {
        errors.insert("username".into(), json!([BAD_USERNAME]));
    }
    if id == ctx.user.id {
        for (field, on, what) in [
            ("is_active", wanted.is_active, "active"),
            ("is_staff", wanted.is_staff, "staff"),
            ("is_superuser", wanted.is_superuser, "superuser"),
        ] {
            if !on {
                errors.insert(
                    field.into(),
                    json!([format!(
                        "You cannot remove your own {what} status: you would lock yourself out."
                    )]),
                );
            }
        }
    }
    let actor = ctx.actor();
    let result = if errors.is_empty() {
        let tx = ctx.db.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&USERS_LOCK])
            .await?;
        let before = find(&*tx, id).await?;
        let updated = tx
            .execute(
                "UPDATE users SET username = $2, is_active = $3, is_staff = $4, is_superuser = $5
                 WHERE id = $1",
                &[
                    &id,
                    &wanted.username,
                    &wanted.is_active,
                    &wanted.is_staff,
                    &wanted.is_superuser,
                ],
            )
            .await;
        match updated {
            Err(e) if is_unique_violation(&e) => {
                errors.insert("username".into(), json!([TAKEN]));
                None
            }
            Err(e) => return Err(e.into()),
            Ok(_) if !superuser_remains(&*tx).await? => {
                errors.insert(
                    "is_superuser".into(),
                    json!(["At least one active staff superuser must remain."]),
                );
                None
            }
            Ok(_) => {
                audit::record(
                    &*tx,
                    &actor,
                    Change {
                        action: "update",
                        object_type: "user",
                        object_id: Some(id),
                        object_repr: &wanted.username,
                        before: Some(before.summary()),
                        after: Some(wanted.summary()),
                    },
                )
                .await?;
                tx.commit().await?;
                Some(())
            }
        }
    } else {
        None
    };
    if result.is_some() {
        return Ok(ctx.redirect_with(
            "/admin/users/",
            "success",
            &format!("The user “{username}” was changed successfully."),
        ));
    }
    ctx.render(
        "user_change",
        &title,
        json!({"target": wanted.to_json(), "is_self": id == ctx.user.id, "errors": errors}),
    )
}

async fn superuser_remains(client: &impl GenericClient) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE is_active AND is_staff AND is_superuser)",
            &[],
        )
        .await?
        .get(0))
}

/// `GET`/`POST /admin/users/<id>/password/`: set a user's password (no old one needed).
pub(crate) async fn set_password(ctx: &mut Ctx<'_>, id: i64) -> Result<Page> {
    ctx.require_superuser(MANAGE_USERS)?;
    let target = find(&**ctx.db, id).await?;
    let title = format!(
        "Change password: {} | Greeter administration",
        target.username
    );
    if !ctx.req.is_post() {
        return ctx.render(
            "user_password",
            &title,
            json!({"target": target.to_json(), "errors": {}}),
        );
    }
    let form = ctx.form();
    let (password1, password2) = (form.get("password1"), form.get("password2"));
    let mut errors = serde_json::Map::new();
    if password1.is_empty() {
        errors.insert("password1".into(), json!([REQUIRED]));
    }
    if password2.is_empty() {
        errors.insert("password2".into(), json!([REQUIRED]));
    } else if let Some(problems) = new_password_problems(password1, password2, &target.username) {
        errors.insert("password2".into(), problems);
    }
    if !errors.is_empty() {
        return ctx.render(
            "user_password",
            &title,
            json!({"target": target.to_json(), "errors": errors}),
        );
    }
    let hash = ctx
        .admin
        .hash_password(SecretString::from(password1.to_owned()))
        .await;
    let keep = (id == ctx.user.id).then(|| ctx.session_token.clone());
    let actor = ctx.actor();
    let tx = ctx.db.transaction().await?;
    tx.execute(
        "UPDATE users SET password_hash = $2 WHERE id = $1",
        &[&id, &hash],
    )
    .await?;
    // Whoever is logged in with the old password is logged out.
    session::delete_for_user(&*tx, id, keep.as_deref()).await?;
    audit::record(
        &*tx,
        &actor,
        Change {
            action: "set_password",
            object_type: "user",
            object_id: Some(id),
            object_repr: &target.username,
            before: None,
            after: Some(json!({"password": "changed"})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ctx.redirect_with(
        &format!("/admin/users/{id}/"),
        "success",
        "Password changed successfully.",
    ))
}

/// `GET` (confirmation) and `POST /admin/users/<id>/delete/`.
pub(crate) async fn delete(ctx: &mut Ctx<'_>, id: i64) -> Result<Page> {
    ctx.require_superuser(MANAGE_USERS)?;
    let target = find(&**ctx.db, id).await?;
    if id == ctx.user.id {
        return Ok(ctx.redirect_with(
            &format!("/admin/users/{id}/"),
            "error",
            "You cannot delete your own account.",
        ));
    }
    if !ctx.req.is_post() {
        return ctx.render(
            "user_delete",
            &format!("Delete user {} | Greeter administration", target.username),
            json!({"target": target.to_json()}),
        );
    }
    let actor = ctx.actor();
    let tx = ctx.db.transaction().await?;
    // Sessions go with the user (ON DELETE CASCADE); audit entries stay.
    tx.execute("DELETE FROM users WHERE id = $1", &[&id])
        .await?;
    audit::record(
        &*tx,
        &actor,
        Change {
            action: "delete",
            object_type: "user",
            object_id: Some(id),
            object_repr: &target.username,
            before: Some(target.summary()),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ctx.redirect_with(
        "/admin/users/",
        "success",
        &format!("The user “{}” was deleted successfully.", target.username),
    ))
}
