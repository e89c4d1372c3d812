//! What an admin handler answers: a [`Page`] (HTML, a static file or a redirect, plus
//! cookies), rendered inside the layout by [`View`]; the error page; and the security
//! headers every admin response carries.

use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use warp::Reply as _;
use warp::reply::Response;

use super::render::{Layout, LayoutUser, Message};
use super::session::SessionUser;
use super::state::AdminState;
use crate::error::Failure;

/// No inline script or style anywhere: the stylesheet is a file, and there is no script.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

pub(crate) enum Body {
    Html(String),
    Static(std::borrow::Cow<'static, [u8]>, &'static str),
}

/// An admin response before it becomes HTTP: a page or a redirect, plus cookies.
pub(crate) struct Page {
    pub status: StatusCode,
    body: Option<Body>,
    location: Option<String>,
    cookies: Vec<String>,
    /// Whether the flash messages of the request were shown (then their cookie goes).
    shows_flash: bool,
}

impl Page {
    fn new(status: StatusCode, body: Option<Body>) -> Self {
        Self {
            status,
            body,
            location: None,
            cookies: Vec::new(),
            shows_flash: false,
        }
    }

    pub fn redirect(location: impl Into<String>) -> Self {
        Self {
            location: Some(location.into()),
            ..Self::new(StatusCode::FOUND, None)
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

    /// A file of `static/admin/`, or a plain 404.
    pub fn static_file(name: &str) -> Self {
        match super::render::static_file(name) {
            Some((bytes, content_type)) => {
                Self::new(StatusCode::OK, Some(Body::Static(bytes, content_type)))
            }
            None => Self::new(StatusCode::NOT_FOUND, Some(Body::Html("Not found".into()))),
        }
    }
}

/// A form's problems: field name (or "form") to its messages. Templates only test and
/// list them, so a field without problems is simply absent.
pub(crate) type Errors = serde_json::Map<String, serde_json::Value>;

/// A flash message: shown once, on the next page.
pub(crate) type Flash = (String, String);

/// One page to render: a template inside the layout, and what the layout shows.
pub(crate) struct View<'a, T> {
    pub template: &'a str,
    pub title: &'a str,
    /// The logged-in user (None on the login and error pages).
    pub user: Option<&'a SessionUser>,
    /// The token for the page's forms (empty where there is none).
    pub csrf_token: &'a str,
    pub flash: Option<&'a Flash>,
    /// The template's own values.
    pub data: T,
}

impl<T: Serialize> View<'_, T> {
    pub fn render(&self, admin: &AdminState) -> Result<Page, handlebars::RenderError> {
        let layout = Layout {
            title: self.title,
            user: self.user.map(|u| LayoutUser {
                id: u.id,
                username: &u.username,
                is_superuser: u.is_superuser,
            }),
            csrf_token: self.csrf_token,
            css_url: admin.templates.css_url(),
            environment: admin.settings.app_env.as_str(),
            messages: self
                .flash
                .iter()
                .map(|(level, text)| Message { level, text })
                .collect(),
        };
        let html = admin
            .templates
            .render_page(self.template, &layout, &self.data)?;
        Ok(Page {
            shows_flash: true,
            ..Page::new(StatusCode::OK, Some(Body::Html(html)))
        })
    }
}

#[derive(Serialize)]
struct ErrorData {
    heading: &'static str,
    detail: &'static str,
    status: u16,
}

/// The admin's error page for `failure`.
pub(crate) fn error_page(admin: &AdminState, failure: Failure) -> Page {
    let view = View {
        template: "error",
        title: failure.heading,
        user: None,
        csrf_token: "",
        flash: None,
        data: ErrorData {
            heading: failure.heading,
            detail: failure.detail,
            status: failure.status.as_u16(),
        },
    };
    let page = view.render(admin).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the error page failed to render");
        Page::new(StatusCode::OK, Some(Body::Html(failure.heading.to_owned())))
    });
    Page {
        status: failure.status,
        shows_flash: false,
        ..page
    }
}

/// The error page for a failure outside any handler (a panic, a timeout), as a response.
pub fn error_response(admin: &AdminState, failure: Failure) -> Response {
    finish(admin, false, error_page(admin, failure))
}

/// Turn a page into a response with the admin's security headers. `had_flash`: the
/// request carried a flash cookie (removed once a page showed it).
pub(crate) fn finish(admin: &AdminState, had_flash: bool, page: Page) -> Response {
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
    let sets_flash = cookies.iter().any(|c| c.starts_with(&flash_prefix));
    if page.shows_flash && had_flash && !sets_flash {
        cookies.push(admin.cookies.clear(admin.cookies.flash));
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}
