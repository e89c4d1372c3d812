//! The request pipeline shared by every admin page: routing, the login requirement, CSRF
//! checks, flash messages, error pages, and the security headers on every response.

use std::collections::HashMap;

use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use warp::Reply as _;
use warp::reply::Response;

use super::session::SessionUser;
use super::{AdminRequest, AdminState, render, security, session};
use crate::state::AppState;

/// No inline script or style anywhere: the stylesheet is a file, and there is no script.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// What went wrong while handling an admin request.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("not found")]
    NotFound,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("CSRF verification failed")]
    Csrf,
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("template error: {0}")]
    Template(#[from] handlebars::RenderError),
    /// A form or query PostgreSQL could not store (a NUL byte): 400.
    #[error("bad request")]
    BadRequest,
    /// Too many password checks are queued: answered at once with 503 and `Retry-After`.
    #[error("too many password checks in progress")]
    Busy,
}

impl AdminError {
    /// PostgreSQL cannot be reached right now (refused, timed out, connection lost, server
    /// shutting down): a 503 the user can retry, not a server bug.
    fn is_database_unavailable(&self) -> bool {
        match self {
            AdminError::Pool(_) => true,
            AdminError::Database(e) => {
                e.is_closed()
                    || e.code().is_some_and(|code| {
                        // Class 08 connection exception, 57 operator intervention
                        // (admin_shutdown, cannot_connect_now).
                        code.code().starts_with("08") || code.code().starts_with("57")
                    })
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            _ => false,
        }
    }
}

pub(crate) type Result<T, E = AdminError> = std::result::Result<T, E>;

pub(crate) enum Body {
    Html(String),
    Static(std::borrow::Cow<'static, [u8]>, &'static str),
}

/// An admin response before it becomes HTTP: a page or a redirect, plus cookies.
pub(crate) struct Page {
    status: StatusCode,
    body: Option<Body>,
    location: Option<String>,
    cookies: Vec<String>,
    /// Whether the flash messages of the request were shown (then their cookie goes).
    shows_flash: bool,
}

impl Page {
    pub fn redirect(location: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FOUND,
            body: None,
            location: Some(location.into()),
            cookies: Vec::new(),
            shows_flash: false,
        }
    }

    pub fn with_cookie(mut self, cookie: String) -> Self {
        self.cookies.push(cookie);
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

/// A parsed `application/x-www-form-urlencoded` body or query string.
pub(crate) struct Form(HashMap<String, String>);

impl Form {
    pub fn parse(bytes: &[u8]) -> Self {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).unwrap_or_default();
        // The first value of a repeated field wins, as in Django's QueryDict.get.
        let mut map = HashMap::new();
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
        Self(map)
    }

    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    /// Checkboxes send their value, `on`, when ticked and nothing otherwise; any other
    /// value is not a tick.
    pub fn checked(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| v == "on")
    }

    /// Whether any field's name or value holds a NUL (PostgreSQL text cannot).
    fn has_nul(&self) -> bool {
        self.0
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    }
}

/// A logged-in request: the user, their session, and a database connection.
pub(crate) struct Ctx<'a> {
    pub admin: &'a AdminState,
    pub app: &'a AppState,
    pub req: &'a AdminRequest,
    pub user: SessionUser,
    pub session_token: String,
    pub db: deadpool_postgres::Object,
    flash: Option<(String, String)>,
}

impl Ctx<'_> {
    /// The submitted form (POST body) or the query string (GET).
    pub fn form(&self) -> Form {
        Form::parse(&self.req.body)
    }

    pub fn query(&self) -> Form {
        Form::parse(self.req.query.as_bytes())
    }

    /// The logged-in user as the author of audit entries.
    pub fn actor(&self) -> super::audit::Actor {
        super::audit::Actor::user(&self.user, self.req.client_addr)
    }

    pub fn require_superuser(&self) -> Result<()> {
        if self.user.is_superuser {
            Ok(())
        } else {
            Err(AdminError::Forbidden("Only superusers may manage users."))
        }
    }

    /// Render `template` inside the layout, with the values every page needs.
    pub fn render(&self, template: &str, title: &str, data: Value) -> Result<Page> {
        let csrf = self.admin.keys.csrf_token("session", &self.session_token);
        let user = json!({
            "id": self.user.id,
            "username": self.user.username,
            "is_superuser": self.user.is_superuser,
        });
        render_page(
            self.admin,
            self.app,
            template,
            title,
            Some(user),
            &csrf,
            self.flash.as_ref(),
            data,
        )
    }

    /// Redirect after a successful POST, with a message for the next page.
    pub fn redirect_with(&self, location: &str, level: &str, text: &str) -> Page {
        Page::redirect(location).with_cookie(flash_cookie(self.admin, level, text))
    }
}

pub(crate) fn flash_cookie(admin: &AdminState, level: &str, text: &str) -> String {
    admin.cookies.set(
        admin.cookies.flash,
        &admin.keys.sign_flash(level, text),
        None,
    )
}

/// Render a full page. `user` is None on the login page and on logged-out errors.
#[allow(clippy::too_many_arguments)]
pub(crate) fn render_page(
    admin: &AdminState,
    app: &AppState,
    template: &str,
    title: &str,
    user: Option<Value>,
    csrf_token: &str,
    flash: Option<&(String, String)>,
    mut data: Value,
) -> Result<Page> {
    if let Value::Object(map) = &mut data {
        map.insert("title".into(), json!(title));
        map.insert("user".into(), user.unwrap_or(Value::Null));
        map.insert("csrf_token".into(), json!(csrf_token));
        map.insert("css_url".into(), json!(admin.templates.css_url()));
        map.insert("environment".into(), json!(app.settings.app_env.as_str()));
        map.insert(
            "messages".into(),
            json!(
                flash
                    .map(|(level, text)| vec![json!({"level": level, "text": text})])
                    .unwrap_or_default()
            ),
        );
    }
    let body = admin.templates.render(template, &data)?;
    Ok(Page {
        status: StatusCode::OK,
        body: Some(Body::Html(body)),
        location: None,
        cookies: Vec::new(),
        shows_flash: true,
    })
}

/// Whether `next` is a path on this site that is safe to redirect to after login:
/// absolute path, not protocol-relative (`//evil`, `/\evil`), no control characters.
pub(crate) fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 2000
        && !next.chars().any(|c| c.is_control() || c == ' ')
        && !next.starts_with("/admin/login/")
        && !next.starts_with("/admin/logout/");
    ok.then_some(next)
}

/// Percent-encode a value for a query string.
pub(crate) fn urlencode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// Parse an id from a URL: a positive decimal number, nothing else.
pub(crate) fn parse_id(segment: &str) -> Result<i64> {
    if segment.is_empty() || segment.len() > 18 || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AdminError::NotFound);
    }
    match segment.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(AdminError::NotFound),
    }
}

/// Handle one admin request and add the headers that every admin response carries.
pub(crate) async fn respond(app: &AppState, req: AdminRequest) -> Response {
    let admin = &*app.admin;
    let (page, busy) = match route(app, &req).await {
        Ok(page) => (page, false),
        Err(error) => {
            let busy = matches!(error, AdminError::Busy);
            (error_page(admin, app, &req, error), busy)
        }
    };
    let mut response = finish(admin, &req, page);
    if busy {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

async fn route(app: &AppState, req: &AdminRequest) -> Result<Page> {
    let admin = &*app.admin;
    let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    if let ["static", name] = segments.as_slice() {
        return Ok(static_page(name));
    }
    // Like Django's APPEND_SLASH: every admin URL ends with a slash.
    if !req.path.ends_with('/') {
        if req.method == Method::GET || req.method == Method::HEAD {
            let mut location = format!("{}/", req.path);
            if !req.query.is_empty() {
                location = format!("{location}?{}", req.query);
            }
            return Ok(Page::redirect(location).with_status(StatusCode::MOVED_PERMANENTLY));
        }
        return Err(AdminError::NotFound);
    }
    if cross_site(req) {
        return Err(AdminError::Csrf);
    }
    if Form::parse(req.query.as_bytes()).has_nul()
        || (req.is_post() && Form::parse(&req.body).has_nul())
    {
        return Err(AdminError::BadRequest);
    }
    if segments.as_slice() == ["login"] {
        return super::auth_views::login(app, req).await;
    }

    // No session cookie: to the login page without touching the database, so anonymous
    // traffic never waits for (or takes) a pooled connection.
    let Some(token) = req
        .cookies
        .get(admin.cookies.session)
        .filter(|t| security::looks_like_token(t))
    else {
        return Ok(login_redirect(admin, req, false));
    };
    let db = app.pool.get().await?;
    let Some(user) = session::load(&**db, token, &admin.policy()).await? else {
        return Ok(login_redirect(admin, req, true));
    };
    if req.is_post() {
        let form = Form::parse(&req.body);
        if !admin
            .keys
            .csrf_valid("session", token, form.get("csrf_token"))
        {
            return Err(AdminError::Csrf);
        }
    }
    let mut ctx = Ctx {
        admin,
        app,
        req,
        user,
        session_token: token.clone(),
        db,
        flash: req
            .cookies
            .get(admin.cookies.flash)
            .and_then(|v| admin.keys.verify_flash(v)),
    };
    dispatch(&mut ctx, &segments).await
}

/// The logged-in pages.
async fn dispatch(ctx: &mut Ctx<'_>, segments: &[&str]) -> Result<Page> {
    use super::{auth_views, greetings, pages, users};
    let post = ctx.req.is_post();
    let get = !post;
    match segments {
        [] if get => pages::index(ctx).await,
        ["logout"] if post => auth_views::logout(ctx).await,
        ["password_change"] => auth_views::password_change(ctx).await,
        ["settings"] if get => pages::settings(ctx),
        ["users"] if get => users::list(ctx).await,
        ["users", "add"] => users::add(ctx).await,
        ["users", id] => users::change(ctx, parse_id(id)?).await,
        ["users", id, "password"] => users::set_password(ctx, parse_id(id)?).await,
        ["users", id, "delete"] => users::delete(ctx, parse_id(id)?).await,
        ["greetings"] if get => greetings::list(ctx).await,
        ["greetings", "add"] => greetings::add(ctx).await,
        ["greetings", id] => greetings::change(ctx, parse_id(id)?).await,
        ["greetings", id, "activate"] if post => greetings::activate(ctx, parse_id(id)?).await,
        ["greetings", id, "delete"] => greetings::delete(ctx, parse_id(id)?).await,
        ["audit"] if get => pages::audit_list(ctx).await,
        ["audit", id] if get => pages::audit_detail(ctx, parse_id(id)?).await,
        _ => Err(AdminError::NotFound),
    }
}

/// A browser that says the request came from another site (Fetch Metadata) is refused
/// before anything else, as a second line of defence behind the CSRF tokens.
fn cross_site(req: &AdminRequest) -> bool {
    req.is_post()
        && req
            .headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
}

/// Logged out: to the login page, remembering where the user wanted to go.
fn login_redirect(admin: &AdminState, req: &AdminRequest, stale_cookie: bool) -> Page {
    // A POST cannot be replayed after login; come back to the page instead.
    let wanted = if req.is_post() {
        req.path.clone()
    } else {
        req.path_and_query()
    };
    let next = safe_next(&wanted).unwrap_or("/admin/");
    let location = format!("/admin/login/?next={}", urlencode(next));
    let mut page = Page::redirect(location);
    if req.is_post() {
        page.status = StatusCode::SEE_OTHER;
    }
    if stale_cookie {
        page = page.with_cookie(admin.cookies.clear(admin.cookies.session));
    }
    page
}

fn static_page(name: &str) -> Page {
    match render::static_file(name) {
        Some((bytes, content_type)) => Page {
            status: StatusCode::OK,
            body: Some(Body::Static(bytes, content_type)),
            location: None,
            cookies: Vec::new(),
            shows_flash: false,
        },
        None => Page {
            status: StatusCode::NOT_FOUND,
            body: Some(Body::Html("Not found".into())),
            location: None,
            cookies: Vec::new(),
            shows_flash: false,
        },
    }
}

fn error_page(admin: &AdminState, app: &AppState, req: &AdminRequest, error: AdminError) -> Page {
    let (status, heading, detail) = match &error {
        AdminError::NotFound => (
            StatusCode::NOT_FOUND,
            "Page not found",
            "The page you asked for does not exist.",
        ),
        AdminError::Forbidden(why) => (StatusCode::FORBIDDEN, "Permission denied", *why),
        AdminError::BadRequest => (
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The form contained a character that cannot be stored (a NUL byte).",
        ),
        AdminError::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "Too many logins are being checked right now. Please try again in a moment.",
        ),
        AdminError::Csrf => (
            StatusCode::FORBIDDEN,
            "Forbidden (CSRF verification failed)",
            "The form was not submitted from this site, or it is too old. Reload the page \
             and try again. Cookies must be enabled.",
        ),
        AdminError::Pool(_) | AdminError::Database(_) if error.is_database_unavailable() => {
            tracing::warn!(error = %error, path = %req.path, "admin request: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                "The database is unavailable, try again in a moment.",
            )
        }
        AdminError::Database(_) | AdminError::Pool(_) | AdminError::Template(_) => {
            tracing::error!(error = %error, path = %req.path, "admin request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Server error",
                "Something went wrong on our side. Please try again.",
            )
        }
    };
    let data = json!({"heading": heading, "detail": detail, "status": status.as_u16()});
    match render_page(admin, app, "error", heading, None, "", None, data) {
        Ok(page) => Page {
            status,
            shows_flash: false,
            ..page
        },
        Err(e) => {
            tracing::error!(error = %e, "the error page failed to render");
            Page {
                status,
                body: Some(Body::Html(heading.to_owned())),
                location: None,
                cookies: Vec::new(),
                shows_flash: false,
            }
        }
    }
}

/// Turn a page into a response with the admin's security headers.
fn finish(admin: &AdminState, req: &AdminRequest, page: Page) -> Response {
    let mut response = match page.body {
        Some(Body::Html(html)) => warp::reply::html(html).into_response(),
        Some(Body::Static(bytes, content_type)) => {
            let mut r = Response::new(bytes.into_owned().into());
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            // The URL carries a content hash (`?v=`), so a long cache is safe.
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            r
        }
        None => warp::reply().into_response(),
    };
    *response.status_mut() = page.status;
    let headers = response.headers_mut();
    if let Some(location) = page
        .location
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    // Pages may show private data: never store them (also keeps Back after logout blank).
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    let mut cookies = page.cookies;
    let flash_prefix = format!("{}=", admin.cookies.flash);
    let has_flash = req.cookies.contains_key(admin.cookies.flash);
    let sets_flash = cookies.iter().any(|c| c.starts_with(&flash_prefix));
    if page.shows_flash && has_flash && !sets_flash {
        cookies.push(admin.cookies.clear(admin.cookies.flash));
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// A query string from the non-empty pairs, for links that keep the current filters.
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let encoded = serde_urlencoded::to_string(kept).unwrap_or_default();
    if encoded.is_empty() {
        String::new()
    } else {
        format!("?{encoded}")
    }
}

/// Escape `%`, `_` and `\` for a LIKE pattern.
pub(crate) fn like_pattern(search: &str) -> String {
    let mut out = String::from("%");
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A unique index said no.
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// SQL for a timestamp column as text in the templates (UTC, to the minute).
pub(crate) fn sql_time(column: &str) -> String {
    format!("COALESCE(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC', '')")
}
