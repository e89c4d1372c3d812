//! Users: list, add, change, set password, delete. Superusers only.
//!
//! Nobody can lock themself out: a user cannot deactivate, un-staff, un-superuser or
//! delete their own account, and the last active superuser always remains.

use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_postgres::GenericClient;

use super::audit::{self, Change};
use super::auth_views::{reauthenticate, session_cookie};
use super::forms::{SetPasswordForm, UserAddForm, UserChangeForm, UsersQuery, query_string};
use super::listing::{List, Paging, Plan, Seek, SortKey};
use super::page::{Errors, Page};
use super::request::{Ctx, Result};
use super::session;
use super::sql::{is_unique_violation, like_pattern, sql_time};
use crate::auth::password;
use crate::auth::users::username_is_valid;
use crate::error::AdminError;

const MANAGE_USERS: &str = "Only superusers may manage users.";
const REQUIRED: &str = "This field is required.";
const TAKEN: &str = "A user with that username already exists.";
const OLD_PASSWORD_WRONG: &str = "Your password was entered incorrectly. Please enter it again.";
const LAST_SUPERUSER: &str = "At least one active staff superuser must remain.";
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

#[derive(Serialize)]
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
}

#[derive(Serialize)]
struct AddData {
    username: String,
    errors: Errors,
}

#[derive(Serialize)]
struct ChangeData {
    target: UserRow,
    is_self: bool,
    errors: Errors,
}

#[derive(Serialize)]
struct PasswordData<'a> {
    target: &'a UserRow,
    is_self: bool,
    errors: Errors,
}

#[derive(Serialize)]
struct DeleteData<'a> {
    target: &'a UserRow,
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
    let query: UsersQuery = ctx.query()?;
    let search = query.q.trim().to_owned();
    let (order_key, sort) = ORDERINGS
        .iter()
        .find(|(k, _)| *k == query.o)
        .unwrap_or(&ORDERINGS[0]);
    let order_key = *order_key;
    let pattern = like_pattern(&search);
    let (filters, params): (Vec<String>, Vec<&str>) = if search.is_empty() {
        (vec![], vec![])
    } else {
        (
            vec!["username ILIKE $1 ESCAPE '\\'".to_owned()],
            vec![pattern.as_str()],
        )
    };
    let columns = user_columns();
    let list = List {
        columns: &columns,
        table: "users",
        filters: &filters,
        params: &params,
        sort,
        // A search's best plan depends on its pattern (src/admin/listing.rs).
        plan: if search.is_empty() {
            Plan::Generic
        } else {
            Plan::PerValue
        },
    };
    let seek = Seek::from_query(&query.after, &query.before, &query.last, sort);
    let (window, total) = list.page_and_count(&ctx.db, seek).await?;
    // Column headers sort by their column, and flip the direction when already sorted.
    let sort_link = |column: &str| {
        let next = if order_key == column {
            format!("-{column}")
        } else {
            column.to_owned()
        };
        query_string(&[("q", &search), ("o", &next)])
    };
    let sort = |column: &str| SortLink {
        url: sort_link(column),
        active: order_key.trim_start_matches('-') == column,
        descending: order_key.starts_with('-') && order_key.trim_start_matches('-') == column,
    };
    let paging = window.links(&total, "/admin/users/", &[("q", &search), ("o", order_key)]);
    ctx.render(
        "users_list",
        "Select user to change | Greeter administration",
        ListData {
            users: window.rows.iter().map(user_row).collect(),
            q: &search,
            o: order_key,
            paging,
            sort: SortLinks {
                username: sort("username"),
                date_joined: sort("date_joined"),
                last_login: sort("last_login"),
            },
        },
    )
}

/// The list page's values (typed: serialised once, straight into the template's data).
#[derive(Serialize)]
struct ListData<'a> {
    users: Vec<UserRow>,
    q: &'a str,
    o: &'a str,
    paging: Paging,
    sort: SortLinks,
}

/// The sortable column headers.
#[derive(Serialize)]
struct SortLinks {
    username: SortLink,
    date_joined: SortLink,
    last_login: SortLink,
}

#[derive(Serialize)]
struct SortLink {
    url: String,
    active: bool,
    descending: bool,
}

/// `GET`/`POST /admin/users/add/`: a username and a password typed twice.
pub(crate) async fn add(ctx: &mut Ctx<'_>) -> Result<Page> {
    ctx.require_superuser(MANAGE_USERS)?;
    const TITLE: &str = "Add user | Greeter administration";
    if !ctx.req.is_post() {
        return ctx.render(
            "user_add",
            TITLE,
            AddData {
                username: String::new(),
                errors: Errors::new(),
            },
        );
    }
    let form: UserAddForm = ctx.form()?;
    let username = form.username.trim().to_owned();
    let (password1, password2) = (form.password1.as_str(), form.password2.as_str());
    let mut errors = Errors::new();
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
    } else {
        let problems = password::validate_new(password1, password2, &username);
        if !problems.is_empty() {
            errors.insert("password2".into(), json!(problems));
        }
    }
    if !errors.is_empty() {
        return ctx.render("user_add", TITLE, AddData { username, errors });
    }
    let admin = ctx.admin;
    let hash = ctx
        .without_db(admin.hash_password(SecretString::from(password1.to_owned())))
        .await?;
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
            let errors = Errors::from_iter([("username".into(), json!([TAKEN]))]);
            return ctx.render("user_add", TITLE, AddData { username, errors });
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
            ChangeData {
                is_self: id == ctx.user.id,
                target: before,
                errors: Errors::new(),
            },
        );
    }
    let form: UserChangeForm = ctx.form()?;
    let username = form.username.trim().to_owned();
    let before_username = before.username.clone();
    let wanted = UserRow {
        username: username.clone(),
        is_active: form.is_active,
        is_staff: form.is_staff,
        is_superuser: form.is_superuser,
        ..before
    };
    let mut errors = Errors::new();
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
    // Renaming one's own account changes what one logs in with: confirm with the password.
    if id == ctx.user.id && errors.is_empty() && wanted.username != before_username {
        let password = form.current_password.as_str();
        if let Some(problem) = reauthenticate(ctx, password, OLD_PASSWORD_WRONG).await? {
            errors.insert("current_password".into(), json!([problem]));
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
                errors.insert("is_superuser".into(), json!([LAST_SUPERUSER]));
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
                // The database's own guard (V3) has the last word, at commit: a delete or
                // demotion that committed meanwhile makes this one the one refused.
                match tx.commit().await {
                    Err(e) if is_last_superuser_violation(&e) => {
                        errors.insert("is_superuser".into(), json!([LAST_SUPERUSER]));
                        None
                    }
                    Err(e) => return Err(e.into()),
                    Ok(()) => Some(()),
                }
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
        ChangeData {
            is_self: id == ctx.user.id,
            target: wanted,
            errors,
        },
    )
}

/// The error of the database's "one active staff superuser" guard (migration V3).
fn is_last_superuser_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION)
        && e.as_db_error()
            .is_some_and(|d| d.constraint() == Some("users_one_active_superuser"))
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

/// `GET`/`POST /admin/users/<id>/password/`: set a user's password. Another user's needs
/// no old password (a superuser may reset it); one's own does, as on the password-change
/// page: whoever finds a superuser's browser unattended cannot take the account over.
pub(crate) async fn set_password(ctx: &mut Ctx<'_>, id: i64) -> Result<Page> {
    ctx.require_superuser(MANAGE_USERS)?;
    let target = find(&**ctx.db, id).await?;
    let is_self = id == ctx.user.id;
    let title = format!(
        "Change password: {} | Greeter administration",
        target.username
    );
    if !ctx.req.is_post() {
        return ctx.render(
            "user_password",
            &title,
            PasswordData {
                target: &target,
                is_self,
                errors: Errors::new(),
            },
        );
    }
    let form: SetPasswordForm = ctx.form()?;
    let (password1, password2) = (form.password1.as_str(), form.password2.as_str());
    let mut errors = Errors::new();
    if password1.is_empty() {
        errors.insert("password1".into(), json!([REQUIRED]));
    }
    if password2.is_empty() {
        errors.insert("password2".into(), json!([REQUIRED]));
    } else {
        let problems = password::validate_new(password1, password2, &target.username);
        if !problems.is_empty() {
            errors.insert("password2".into(), json!(problems));
        }
    }
    if is_self && errors.is_empty() {
        let old = form.old_password.as_str();
        if let Some(problem) = reauthenticate(ctx, old, OLD_PASSWORD_WRONG).await? {
            errors.insert("old_password".into(), json!([problem]));
        }
    }
    if !errors.is_empty() {
        return ctx.render(
            "user_password",
            &title,
            PasswordData {
                target: &target,
                is_self,
                errors,
            },
        );
    }
    let admin = ctx.admin;
    let hash = ctx
        .without_db(admin.hash_password(SecretString::from(password1.to_owned())))
        .await?;
    let actor = ctx.actor();
    let client_addr = ctx.req.client_addr;
    let tx = ctx.db.transaction().await?;
    tx.execute(
        "UPDATE users SET password_hash = $2 WHERE id = $1",
        &[&id, &hash],
    )
    .await?;
    // Whoever is logged in with the old password is logged out; one's own browser gets a
    // new session (as after a password change), another user's sessions all end.
    let rotated = if is_self {
        let origin = session::Origin {
            client_addr,
            headers: &ctx.req.headers,
        };
        Some(session::create(&*tx, id, &origin).await?)
    } else {
        None
    };
    session::delete_for_user(&*tx, id, rotated.as_deref()).await?;
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
    let page = ctx.redirect_with(
        &format!("/admin/users/{id}/"),
        "success",
        "Password changed successfully.",
    );
    Ok(match rotated {
        Some(token) => page.with_cookie(session_cookie(ctx.admin, &token)),
        None => page,
    })
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
            DeleteData { target: &target },
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
    match tx.commit().await {
        Err(e) if is_last_superuser_violation(&e) => {
            return Ok(ctx.redirect_with(&format!("/admin/users/{id}/"), "error", LAST_SUPERUSER));
        }
        other => other?,
    }
    Ok(ctx.redirect_with(
        "/admin/users/",
        "success",
        &format!("The user “{}” was deleted successfully.", target.username),
    ))
}
