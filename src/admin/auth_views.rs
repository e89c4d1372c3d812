//! Login, logout and password change.

use http::StatusCode;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use super::audit::{self, Actor, Change};
use super::forms::{self, CsrfField, LoginForm, LoginQuery, PasswordChangeForm, safe_next};
use super::page::{Errors, Flash, Page, View};
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
const OLD_PASSWORD_WRONG: &str =
    "Your old password was entered incorrectly. Please enter it again.";

/// Re-authentication for changes to one's own account (password, username): the
/// logged-in user's password, checked like the login form's (the same throttle keys, a
/// place in the bounded argon2 queue, no pooled connection held while argon2 runs).
/// Returns the form error when refused, None when the password is right.
pub(crate) async fn reauthenticate(
    ctx: &mut Ctx<'_>,
    password: &str,
    wrong: &'static str,
) -> Result<Option<&'static str>> {
    if password.is_empty() {
        return Ok(Some(REQUIRED));
    }
    let phc: String = ctx
        .db
        .query_one(
            "SELECT password_hash FROM users WHERE id = $1",
            &[&ctx.user.id],
        )
        .await?
        .get(0);
    let admin = ctx.admin;
    let Some(_permit) = admin.login_permit() else {
        return Err(AdminError::Busy);
    };
    // The old password is a password oracle too: throttled like the login form.
    let policy = admin.policy();
    let keys = throttle::Keys::new(&ctx.user.username, ctx.req.client_addr);
    let reservation = throttle::reserve(&**ctx.db, &keys, &policy).await?;
    if !reservation.allowed {
        return Ok(Some(LOCKED_OUT));
    }
    let verified = ctx
        .without_db(admin.verify_password(SecretString::from(password.to_owned()), phc))
        .await?;
    if verified {
        throttle::succeeded(&**ctx.db, &keys, &policy).await?;
        Ok(None)
    } else {
        throttle::record_failure(&**ctx.db, &reservation, &policy).await?;
        Ok(Some(wrong))
    }
}

/// The pre-login CSRF cookie the browser sent, if it looks like one of ours.
fn login_csrf_cookie(admin: &AdminState, req: &AdminRequest) -> Option<String> {
    req.cookie(admin.cookies.csrf)
        .filter(|v| security::looks_like_token(v))
        .map(str::to_owned)
}

/// The session cookie the browser sent, if it looks like one of ours.
fn session_token<'r>(admin: &AdminState, req: &'r AdminRequest) -> Option<&'r str> {
    req.cookie(admin.cookies.session)
        .filter(|t| security::looks_like_token(t))
}

/// `GET /admin/login/`: the form, with the pre-login CSRF cookie (reused, or issued
/// with this page); a logged-in user goes straight on to `next`.
pub(crate) async fn login_form(admin: &AdminState, req: &AdminRequest) -> Result<Page> {
    let query: LoginQuery = forms::parse(req.query.as_bytes())?;
    let next = safe_next(&query.next).unwrap_or("/admin/");
    if let Some(token) = session_token(admin, req) {
        let db = admin.pool.get().await?;
        if session::load(&db, token, &admin.policy()).await?.is_some() {
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
    let mut page = login_page(admin, &csrf_basis, flash.as_ref(), next, "", Errors::new())?;
    if let Some(cookie) = new_cookie {
        page = page.with_cookie(cookie);
    }
    Ok(page)
}

/// `POST /admin/login/`: check the form, [`authenticate`], then start a session.
pub(crate) async fn login_submit(admin: &AdminState, req: &AdminRequest) -> Result<Page> {
    // The token must match the CSRF cookie that came with the login page; checked
    // before anything else of the form.
    let Some(csrf_basis) = login_csrf_cookie(admin, req) else {
        return Err(AdminError::Csrf);
    };
    let given = forms::parse::<CsrfField>(&req.body).map_or(String::new(), |f| f.csrf_token);
    if !admin.keys.csrf_valid("login", &csrf_basis, &given) {
        return Err(AdminError::Csrf);
    }
    let form: LoginForm = forms::parse(&req.body)?;
    let next = safe_next(&form.next).unwrap_or("/admin/");
    let username = form.username.trim();
    let password = form.password.as_str();
    // The form again, with what was typed (never the password) and the errors.
    let again = |errors: Errors| login_page(admin, &csrf_basis, None, next, username, errors);
    let mut errors = Errors::new();
    if username.is_empty() {
        errors.insert("username".into(), json!([REQUIRED]));
    }
    if password.is_empty() {
        errors.insert("password".into(), json!([REQUIRED]));
    }
    if !errors.is_empty() {
        return again(errors);
    }
    match authenticate(admin, req, username, password).await? {
        Authentication::LockedOut => Ok(again(Errors::from_iter([(
            "form".into(),
            json!([LOCKED_OUT]),
        )]))?
        .with_status(StatusCode::TOO_MANY_REQUESTS)),
        Authentication::Failed => {
            again(Errors::from_iter([("form".into(), json!([LOGIN_FAILED]))]))
        }
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
    let origin = session::Origin {
        client_addr: req.client_addr,
        headers: &req.headers,
    };
    let token = session::create(&**db, user_id, &origin).await?;
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

pub(crate) fn session_cookie(admin: &AdminState, token: &str) -> String {
    admin.cookies.set(
        admin.cookies.session,
        token,
        Some(admin.policy().absolute_timeout.as_secs()),
    )
}

#[derive(Serialize)]
struct LoginData<'a> {
    next: &'a str,
    username: &'a str,
    errors: Errors,
}

fn login_page(
    admin: &AdminState,
    csrf_basis: &str,
    flash: Option<&Flash>,
    next: &str,
    username: &str,
    errors: Errors,
) -> Result<Page> {
    let csrf = admin.keys.csrf_token("login", csrf_basis);
    Ok(View {
        template: "login",
        title: "Log in | Greeter administration",
        user: None,
        csrf_token: &csrf,
        flash,
        data: LoginData {
            next,
            username,
            errors,
        },
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
        let data = super::sessions_list::for_page(ctx, Errors::new()).await?;
        return ctx.render("password_change", TITLE, data);
    }
    let form: PasswordChangeForm = ctx.form()?;
    let old = form.old_password.as_str();
    let new1 = form.new_password1.as_str();
    let new2 = form.new_password2.as_str();
    let mut errors = Errors::new();
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
        if let Some(problem) = reauthenticate(ctx, old, OLD_PASSWORD_WRONG).await? {
            errors.insert("old_password".into(), json!([problem]));
        }
        let problems = password::validate_new(new1, new2, &ctx.user.username);
        if !problems.is_empty() {
            errors.insert("new_password2".into(), json!(problems));
        }
    }
    if !errors.is_empty() {
        let data = super::sessions_list::for_page(ctx, errors).await?;
        return ctx.render("password_change", TITLE, data);
    }
    let admin = ctx.admin;
    let hash = ctx
        .without_db(admin.hash_password(SecretString::from(new1.to_owned())))
        .await?;
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
    let origin = session::Origin {
        client_addr,
        headers: &ctx.req.headers,
    };
    let token = session::create(&*tx, user_id, &origin).await?;
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
