//! Routing every `/admin/...` request, and what comes before any page: the trailing
//! slash, Fetch Metadata, the login requirement and CSRF on every POST.
//!
//! One warp filter takes every `/admin/...` request and [`route`] dispatches it by hand:
//! that keeps these rules in one place instead of repeating them on each of ~25 routes.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::forms::{self, CsrfField, parse_id, safe_next, urlencode};
use super::page::{self, Page};
use super::request::{AdminRequest, Ctx, Db, Result};
use super::state::AdminState;
use super::{auth_views, greetings, pages, security, session, sessions_list, users};
use crate::error::AdminError;
use crate::server::ClientAddr;

/// Largest accepted form body: the biggest form (a greeting) is far below this.
const MAX_FORM_BYTES: u64 = 64 * 1024;

/// The body of a POST, at most [`MAX_FORM_BYTES`] (checked before reading): too large
/// is a 413, chunked (no length given) a 411, unreadable a 400. A POST without any body
/// (no Content-Length, not chunked) is an empty form, so CSRF checking answers it with a
/// 403. Other methods' bodies are never read. Never rejects: every failure is the
/// admin's own error page.
fn form_body() -> BoxedFilter<(std::result::Result<Bytes, AdminError>,)> {
    let sized = warp::post()
        .and(warp::body::content_length_limit(MAX_FORM_BYTES))
        .and(warp::body::bytes())
        .map(Ok);
    let refused = warp::method()
        .and(warp::header::optional::<String>("content-length"))
        .and(warp::header::optional::<String>("transfer-encoding"))
        .map(
            |method: Method, length: Option<String>, chunked: Option<String>| {
                if method != Method::POST {
                    return Ok(Bytes::new());
                }
                match (length.map(|l| l.trim().parse::<u64>()), chunked) {
                    (Some(Ok(n)), _) if n > MAX_FORM_BYTES => Err(AdminError::PayloadTooLarge),
                    (Some(_), _) => Err(AdminError::BadRequest("The form could not be read.")),
                    (None, Some(_)) => Err(AdminError::LengthRequired),
                    (None, None) => Ok(Bytes::new()),
                }
            },
        );
    sized.or(refused).unify().boxed()
}

/// Every `/admin` request: once the path starts with `/admin`, this answers it (with a
/// page or the admin's error page) and never hands it on to the JSON routes.
pub fn routes(admin: Arc<AdminState>) -> BoxedFilter<(Response,)> {
    warp::path("admin")
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<ClientAddr>())
        .and(warp::any().map(move || admin.clone()))
        .and(warp::method())
        .and(form_body())
        .then(
            |path: warp::path::FullPath,
             query: String,
             headers: HeaderMap,
             addr: Option<ClientAddr>,
             admin: Arc<AdminState>,
             method: Method,
             body: std::result::Result<Bytes, AdminError>| async move {
                let (body, refused) = match body {
                    Ok(body) => (body, None),
                    Err(e) => (Bytes::new(), Some(e)),
                };
                let request = AdminRequest {
                    segments: path
                        .as_str()
                        .strip_prefix("/admin")
                        .unwrap_or_default()
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    path: path.as_str().to_owned(),
                    query,
                    cookies: security::parse_cookies(&headers),
                    headers,
                    client_addr: addr.map(|a| a.0.ip()),
                    method,
                    body,
                };
                respond(&admin, request, refused).await
            },
        )
        .boxed()
}

/// Handle one admin request and add the headers that every admin response carries.
async fn respond(admin: &AdminState, req: AdminRequest, refused: Option<AdminError>) -> Response {
    let outcome = match refused {
        Some(error) => Err(error),
        None => route(admin, &req).await,
    };
    let (page, busy) = match outcome {
        Ok(page) => (page, false),
        Err(error) => {
            let busy = matches!(error, AdminError::Busy);
            (page::error_page(admin, error.failure(&req.path)), busy)
        }
    };
    let had_flash = req.cookie(admin.cookies.flash).is_some();
    let mut response = page::finish(admin, had_flash, page);
    if busy {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

async fn route(admin: &AdminState, req: &AdminRequest) -> Result<Page> {
    if ![Method::GET, Method::HEAD, Method::POST].contains(&req.method) {
        return Err(AdminError::MethodNotAllowed);
    }
    let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    if let ["static", name] = segments.as_slice() {
        return Ok(Page::static_file(name));
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
    if forms::has_nul(req.query.as_bytes()) || (req.is_post() && forms::has_nul(&req.body)) {
        return Err(AdminError::BadRequest(
            "The form contained a character that cannot be stored (a NUL byte).",
        ));
    }
    if segments.as_slice() == ["login"] {
        return if req.is_post() {
            auth_views::login_submit(admin, req).await
        } else {
            auth_views::login_form(admin, req).await
        };
    }

    // No session cookie: to the login page without touching the database, so anonymous
    // traffic never waits for (or takes) a pooled connection.
    let Some(token) = req
        .cookie(admin.cookies.session)
        .filter(|t| security::looks_like_token(t))
    else {
        return Ok(login_redirect(admin, req, false));
    };
    let db = admin.pool.get().await?;
    let Some(user) = session::load(&db, token, &admin.policy()).await? else {
        return Ok(login_redirect(admin, req, true));
    };
    if req.is_post() {
        // A body that is no form carries no token either: refused like a wrong one.
        let given = forms::parse::<CsrfField>(&req.body).map_or(String::new(), |f| f.csrf_token);
        if !admin.keys.csrf_valid("session", token, &given) {
            return Err(AdminError::Csrf);
        }
    }
    let mut ctx = Ctx {
        admin,
        req,
        user,
        session_token: token.to_owned(),
        db: Db(Some(db)),
        flash: req.flash(admin),
    };
    dispatch(&mut ctx, &segments).await
}

/// The logged-in pages.
async fn dispatch(ctx: &mut Ctx<'_>, segments: &[&str]) -> Result<Page> {
    let post = ctx.req.is_post();
    let get = !post;
    match segments {
        [] if get => pages::index(ctx).await,
        ["logout"] if post => auth_views::logout(ctx).await,
        ["password_change"] => auth_views::password_change(ctx).await,
        ["sessions", "end_others"] if post => sessions_list::end_others(ctx).await,
        ["sessions", id, "end"] if post => sessions_list::end_one(ctx, parse_id(id)?).await,
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
        ["tokens"] if get => super::tokens::list(ctx).await,
        ["tokens", "add"] if post => super::tokens::add(ctx).await,
        ["tokens", id, "revoke"] if post => super::tokens::revoke(ctx, parse_id(id)?).await,
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
        page = page.with_status(StatusCode::SEE_OTHER);
    }
    if stale_cookie {
        page = page.with_cookie(admin.cookies.clear(admin.cookies.session));
    }
    page
}
