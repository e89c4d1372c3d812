//! One admin request as the handlers see it: [`AdminRequest`] for every request, and
//! [`Ctx`] once its session is known.

use std::collections::HashMap;
use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::Serialize;

use super::audit::Actor;
use super::forms::Form;
use super::page::{Flash, Page, View};
use super::session::SessionUser;
use super::state::AdminState;
use crate::error::AdminError;

pub(crate) type Result<T, E = AdminError> = std::result::Result<T, E>;

/// What the router knows about one request.
pub(crate) struct AdminRequest {
    pub method: Method,
    /// The path below `/admin/`, split at `/`; a trailing slash leaves no empty segment.
    pub segments: Vec<String>,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub cookies: HashMap<String, String>,
    pub client_addr: Option<IpAddr>,
    pub body: Bytes,
}

impl AdminRequest {
    /// `path?query`, as the browser asked for it.
    pub fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    pub fn is_post(&self) -> bool {
        self.method == Method::POST
    }

    /// The flash message the request's cookie carries, if we signed it.
    pub fn flash(&self, admin: &AdminState) -> Option<Flash> {
        self.cookies
            .get(admin.cookies.flash)
            .and_then(|v| admin.keys.verify_flash(v))
    }
}

/// A logged-in request: the user, their session, and a database connection.
pub(crate) struct Ctx<'a> {
    pub admin: &'a AdminState,
    pub req: &'a AdminRequest,
    pub user: SessionUser,
    pub session_token: String,
    pub db: deadpool_postgres::Object,
    pub flash: Option<Flash>,
}

impl Ctx<'_> {
    /// The submitted form (POST body).
    pub fn form(&self) -> Form {
        Form::parse(&self.req.body)
    }

    /// The query string.
    pub fn query(&self) -> Form {
        Form::parse(self.req.query.as_bytes())
    }

    /// The logged-in user as the author of audit entries.
    pub fn actor(&self) -> Actor {
        Actor::user(&self.user, self.req.client_addr)
    }

    /// Pages that name every user (users, the audit log) are for superusers.
    pub fn require_superuser(&self, why: &'static str) -> Result<()> {
        if self.user.is_superuser {
            Ok(())
        } else {
            Err(AdminError::Forbidden(why))
        }
    }

    /// Render `template` inside the layout, with the values every page needs.
    pub fn render(&self, template: &str, title: &str, data: impl Serialize) -> Result<Page> {
        let csrf = self.admin.keys.csrf_token("session", &self.session_token);
        Ok(View {
            template,
            title,
            user: Some(&self.user),
            csrf_token: &csrf,
            flash: self.flash.as_ref(),
            data,
        }
        .render(self.admin)?)
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
