//! Login, logout and password change.

use http::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::audit::{self, Actor, Change};
use super::forms::{Form, safe_next};
use super::page::{Flash, Page, View};
use super::request::{AdminRequest, Ctx, Result, flash_cookie};
use super::state::AdminState;
use super::{security, session, throttle};
use crate::auth::password;
use crate::error::AdminError;

/// The same words for a wrong password, an unknown user, and a user who may not log in,
/// so the page reveals nothing about which usernames exist.
const LOGIN_FAILED: &str = "Please enter the correct username and password for a staff \
                            account. Note that both fields may be case-sensitive.";
const LOCKED_OUT: &str = "Too many failed login attempts. Please try again later.";
const REQUIRED: &str = "This field is required.";

/// The pre-login CSRF cookie the browser sent, if it looks like one of ours.
fn login_csrf_cookie(admin: &AdminState, req: &AdminRequest) -> Option<String> {
    req.cookies
        .get(admin.cookies.csrf)
        .filter(|v| security::looks_like_token(v))
        .cloned()
}

/// The session cookie the browser sent, if it looks like one of ours.
fn session_token<'r>(admin: &AdminState, req: &'r AdminRequest) -> Option<&'r String> {
    req.cookies
        .get(admin.cookies.session)
        .filter(|t| security::looks_like_token(t))
}

/// `GET /admin/login/`: the form, with the pre-login CSRF cookie (reused, or issued
/// with this page); a logged-in user goes straight on to `next`.
pub(crate) async fn login_form(admin: &AdminState, req: &AdminRequest) -> Result<Page> {
    let query = Form::parse(req.query.as_bytes());
    let next = safe_next(query.get("next")).unwrap_or("/admin/");
    if let Some(token) = session_token(admin, req) {
        let db = admin.pool.get().await?;
        if session::load(&**db, token, &admin.policy())
            .await?
            .is_some()
        {
            return Ok(Page::redirect(next));
        }
    }
    let (csrf_basis, new_cookie) = match login_csrf_cookie(admin, req) {
        Some(v) => (v, None),
        None => {
            let v = security::random_token();
            let cookie = admin.cookies.set(admin.cookies.csrf, &v, None);
            (v, Some(cookie))
        }
    };
    let flash = req.flash(admin);
    let mut page = login_page(admin, &csrf_basis, flash.as_ref(), next, "", json!({}))?;
    if let Some(cookie) = new_cookie {
        page = page.with_cookie(cookie);
    }
    Ok(page)
}

/// `POST /admin/login/`: check the form, [`authenticate`], then start a session.
pub(crate) async fn login_submit(admin: &AdminState, req: &AdminRequest) -> Result<Page> {
    let form = Form::parse(&req.body);
    let next = safe_next(form.get("next")).unwrap_or("/admin/");
    // The token must match the CSRF cookie that came with the login page.
    let Some(csrf_basis) = login_csrf_cookie(admin, req) else {
        return Err(AdminError::Csrf);
    };
    if !admin
        .keys
        .csrf_valid("login", &csrf_basis, form.get("csrf_token"))
    {
        return Err(AdminError::Csrf);
    }
    let username = form.get("username").trim();
    let password = form.get("password");
    // The form again, with what was typed (never the password) and the errors.
    let again = |errors: Value| login_page(admin, &csrf_basis, None, next, username, errors);
    let mut errors = serde_json::Map::new();
    if username.is_empty() {
        errors.insert("username".into(), json!([REQUIRED]));
    }
    if password.is_empty() {
        errors.insert("password".into(), json!([REQUIRED]));
    }
    if !errors.is_empty() {
        return again(Value::Object(errors));
    }
    match authenticate(admin, req, username, password).await? {
        Authentication::LockedOut => {
            Ok(again(json!({"form": [LOCKED_OUT]}))?.with_status(StatusCode::TOO_MANY_REQUESTS))
        }
        Authentication::Failed => again(json!({"form": [LOGIN_FAILED]})),
        Authentication::Verified { id, username } => {
            let token = start_session(admin, req, id, &username).await?;
            Ok(Page::redirect(next).with_cookie(session_cookie(admin, &token)))
        }
    }
}

/// What a username and password turned out to be.
enum Authentication {
    /// An active staff user with this password (their canonical username).
    Verified { id: i64, username: String },
    /// Wrong password, unknown user, or a user who may not log in: the same to the client.
    Failed,
    /// Too many recent failures for this username, address or pair.
    LockedOut,
}

/// Check a username and password under the login throttle: the attempt is reserved
/// first (a burst gets at most the limits), a failure is recorded (and may lock the
/// username out, in the audit log) and answered after the throttle's delay.
async fn authenticate(
    admin: &AdminState,
    req: &AdminRequest,
    username: &str,
    password: &str,
) -> Result<Authentication> {
    let policy = admin.policy();
    // One canonical form for the throttle keys; a username the schema cannot hold (too
    // long, outside its ASCII alphabet) counts only against the address, and no password
    // is checked for it.
    let keys = throttle::Keys::new(username, req.client_addr);
    let logged_name = log_safe(username);
    // A bounded queue for argon2: beyond it, 503 at once (nothing counted) rather than
    // a 30 s wait holding the request and its body.
    let Some(_permit) = admin.login_permit() else {
        tracing::warn!(client_addr = ?req.client_addr, "admin login refused: too many in progress");
        return Err(AdminError::Busy);
    };
    let reservation = {
        let db = admin.pool.get().await?;
        throttle::reserve(&**db, &keys, &policy).await?
    };
    if !reservation.allowed {
        tracing::warn!(username = %logged_name, client_addr = ?req.client_addr,
            "admin login refused: locked out after repeated failures");
        return Ok(Authentication::LockedOut);
    }

    let row = match &keys.username {
        Some(_) => {
            let db = admin.pool.get().await?;
            db.query_opt(
                "SELECT id, username, password_hash, is_active AND is_staff
                 FROM users WHERE lower(username) = $1",
                &[&username.to_ascii_lowercase()],
            )
            .await?
        }
        None => None,
    };
    // No connection is held while argon2 queues and runs: a login flood cannot exhaust
    // the pool that every other request needs. Unknown users are checked against a dummy
    // hash, so both take the same time.
    let verified = if keys.username.is_some() {
        let phc = match &row {
            Some(r) => r.get::<_, String>(2),
            None => admin.dummy_hash().await,
        };
        admin
            .verify_password(SecretString::from(password.to_owned()), phc)
            .await
    } else {
        false
    };
    if let Some(user) = row.filter(|r| verified && r.get::<_, bool>(3)) {
        let db = admin.pool.get().await?;
        throttle::succeeded(&**db, &keys, &policy).await?;
        return Ok(Authentication::Verified {
            id: user.get(0),
            username: user.get(1),
        });
    }
    {
        let db = admin.pool.get().await?;
        let newly_locked = throttle::record_failure(&**db, &reservation, &policy).await?;
        tracing::info!(username = %logged_name, client_addr = ?req.client_addr, "admin login failed");
        for key in &newly_locked {
            tracing::warn!(key = %log_safe(key), lockout_s = policy.lockout.as_secs(),
                "admin login locked out after repeated failures");
            audit::record(
                &**db,
                &Actor {
                    user_id: None,
                    // Whatever was typed, not an account: marked, and at most 64 chars.
                    username: format!("{logged_name} (unverified)"),
                    client_addr: req.client_addr,
                },
                Change {
                    action: "login_locked",
                    object_type: "session",
                    object_id: None,
                    object_repr: key,
                    before: None,
                    after: Some(json!({"locked_for_seconds": policy.lockout.as_secs()})),
                },
            )
            .await?;
        }
    }
    // The connection went back to the pool before the slowdown.
    tokio::time::sleep(reservation.delay).await;
    Ok(Authentication::Failed)
}

/// A new session for a verified user (the one the browser had, if any, ends), audited;
/// returns its token.
async fn start_session(
    admin: &AdminState,
    req: &AdminRequest,
    user_id: i64,
    username: &str,
) -> Result<String> {
    let db = admin.pool.get().await?;
    session::sweep(&**db, &admin.policy()).await?;
    // A new token at every login: a session id planted before login is worthless.
    if let Some(old) = session_token(admin, req) {
        session::delete(&**db, old).await?;
    }
    let token = session::create(&**db, user_id, req.client_addr).await?;
    db.execute(
        "UPDATE users SET last_login = now() WHERE id = $1",
        &[&user_id],
    )
    .await?;
    audit::record(
        &**db,
        &Actor {
            user_id: Some(user_id),
            username: username.to_owned(),
            client_addr: req.client_addr,
        },
        Change {
            action: "login",
            object_type: "session",
            object_id: Some(user_id),
            object_repr: username,
            before: None,
            after: None,
        },
    )
    .await?;
    tracing::info!(username = %username, "admin login");
    Ok(token)
}

/// A username as it may be logged: at most 64 characters, control characters escaped
/// (a password typed into the username field, or a 60 KB name, is not logged whole).
fn log_safe(username: &str) -> String {
    let mut out: String = username
        .chars()
        .take(64)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if username.chars().count() > 64 {
        out.push('…');
    }
    out
}

fn session_cookie(admin: &AdminState, token: &str) -> String {
    admin.cookies.set(
        admin.cookies.session,
        token,
        Some(admin.policy().absolute_timeout.as_secs()),
    )
}

fn login_page(
    admin: &AdminState,
    csrf_basis: &str,
    flash: Option<&Flash>,
    next: &str,
    username: &str,
    errors: Value,
) -> Result<Page> {
    let csrf = admin.keys.csrf_token("login", csrf_basis);
    Ok(View {
        template: "login",
        title: "Log in | Greeter administration",
        user: None,
        csrf_token: &csrf,
        flash,
        data: json!({"next": next, "username": username, "errors": errors}),
    }
    .render(admin)?)
}

/// `POST /admin/logout/`.
pub(crate) async fn logout(ctx: &mut Ctx<'_>) -> Result<Page> {
    session::delete(&**ctx.db, &ctx.session_token).await?;
    audit::record(
        &**ctx.db,
        &ctx.actor(),
        Change {
            action: "logout",
            object_type: "session",
            object_id: Some(ctx.user.id),
            object_repr: &ctx.user.username,
            before: None,
            after: None,
        },
    )
    .await?;
    let admin = ctx.admin;
    Ok(Page::redirect("/admin/login/")
        .with_cookie(admin.cookies.clear(admin.cookies.session))
        .with_cookie(flash_cookie(admin, "info", "You have been logged out.")))
}

/// `GET` and `POST /admin/password_change/`: old password, new one twice.
pub(crate) async fn password_change(ctx: &mut Ctx<'_>) -> Result<Page> {
    const TITLE: &str = "Password change | Greeter administration";
    if !ctx.req.is_post() {
        return ctx.render("password_change", TITLE, json!({"errors": {}}));
    }
    let form = ctx.form();
    let old = form.get("old_password");
    let new1 = form.get("new_password1");
    let new2 = form.get("new_password2");
    let mut errors = serde_json::Map::new();
    for (field, value) in [
        ("old_password", old),
        ("new_password1", new1),
        ("new_password2", new2),
    ] {
        if value.is_empty() {
            errors.insert(field.into(), json!([REQUIRED]));
        }
    }
    if errors.is_empty() {
        let phc: String = ctx
            .db
            .query_one(
                "SELECT password_hash FROM users WHERE id = $1",
                &[&ctx.user.id],
            )
            .await?
            .get(0);
        // The old password is a password oracle too: throttled like the login form.
        let policy = ctx.admin.policy();
        let keys = throttle::Keys::new(&ctx.user.username, ctx.req.client_addr);
        let reservation = throttle::reserve(&**ctx.db, &keys, &policy).await?;
        if !reservation.allowed {
            errors.insert("old_password".into(), json!([LOCKED_OUT]));
        } else if ctx
            .admin
            .verify_password(SecretString::from(old.to_owned()), phc)
            .await
        {
            throttle::succeeded(&**ctx.db, &keys, &policy).await?;
        } else {
            throttle::record_failure(&**ctx.db, &reservation, &policy).await?;
            errors.insert(
                "old_password".into(),
                json!(["Your old password was entered incorrectly. Please enter it again."]),
            );
        }
        if let Some(problems) = new_password_problems(new1, new2, &ctx.user.username) {
            errors.insert("new_password2".into(), problems);
        }
    }
    if !errors.is_empty() {
        return ctx.render("password_change", TITLE, json!({"errors": errors}));
    }
    let hash = ctx
        .admin
        .hash_password(SecretString::from(new1.to_owned()))
        .await;
    let user_id = ctx.user.id;
    let client_addr = ctx.req.client_addr;
    let actor = ctx.actor();
    let tx = ctx.db.transaction().await?;
    tx.execute(
        "UPDATE users SET password_hash = $2 WHERE id = $1",
        &[&user_id, &hash],
    )
    .await?;
    // Rotate this session and end every other one: whoever knew the old password
    // (and may have logged in with it) is out.
    let token = session::create(&*tx, user_id, client_addr).await?;
    session::delete_for_user(&*tx, user_id, Some(&token)).await?;
    audit::record(
        &*tx,
        &actor,
        Change {
            action: "password_change",
            object_type: "user",
            object_id: Some(user_id),
            object_repr: &actor.username,
            before: None,
            after: Some(json!({"password": "changed"})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ctx
        .redirect_with("/admin/", "success", "Your password was changed.")
        .with_cookie(session_cookie(ctx.admin, &token)))
}

/// The problems with a new password typed twice, as a JSON list; None when acceptable.
pub(crate) fn new_password_problems(new1: &str, new2: &str, username: &str) -> Option<Value> {
    if new1 != new2 {
        return Some(json!(["The two password fields didn’t match."]));
    }
    let problems = password::validate(new1, username);
    (!problems.is_empty()).then(|| json!(problems))
}
