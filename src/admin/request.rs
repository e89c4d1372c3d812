//! One admin request as the handlers see it: [`AdminRequest`] for every request, and
//! [`Ctx`] once its session is known.

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::audit::Actor;
use super::forms;
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
    pub cookies: cookie::CookieJar,
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

    /// The value of the request's cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(|c| c.value())
    }

    /// The flash message the request's cookie carries, if we signed it.
    pub fn flash(&self, admin: &AdminState) -> Option<Flash> {
        admin.keys.verify_flash(&self.cookies, admin.cookies.flash)
    }
}

/// A logged-in request's pooled connection, which [`Ctx::without_db`] gives back to the
/// pool while argon2 runs.
pub(crate) struct Db(pub Option<deadpool_postgres::Object>);

impl std::ops::Deref for Db {
    type Target = deadpool_postgres::ClientWrapper;

    fn deref(&self) -> &Self::Target {
        self.0
            .as_ref()
            .expect("the connection is only released inside without_db")
    }
}

impl std::ops::DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0
            .as_mut()
            .expect("the connection is only released inside without_db")
    }
}

/// A logged-in request: the user, their session, and a database connection.
pub(crate) struct Ctx<'a> {
    pub admin: &'a AdminState,
    pub req: &'a AdminRequest,
    pub user: SessionUser,
    pub session_token: String,
    pub db: Db,
    pub flash: Option<Flash>,
}

impl Ctx<'_> {
    /// Run `work` (an argon2 hash or check) with the connection back in the pool, then
    /// take one again: a queue of password forms waiting for the hashing threads must not
    /// hold the connections every other page needs (as the login form never does).
    pub async fn without_db<T>(&mut self, work: impl std::future::Future<Output = T>) -> Result<T> {
        self.db.0 = None;
        let out = work.await;
        self.db.0 = Some(self.admin.pool.get().await?);
        Ok(out)
    }

    /// The submitted form (POST body) as its typed struct.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T> {
        forms::parse(&self.req.body)
    }

    /// The query string as its typed struct.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T> {
        forms::parse(self.req.query.as_bytes())
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
        &admin.keys.sign_flash(admin.cookies.flash, level, text),
        None,
    )
}
