//! The admin at `/admin/`: server-rendered pages for users, greetings, the audit log and
//! the settings, in the spirit of Django's admin, working without JavaScript.
//!
//! The request pipeline: [`router`] (routing, the login requirement, CSRF) hands a
//! [`request::Ctx`] to the pages (`auth_views`, `pages`, `users`, `greetings`), which
//! answer with a [`page::Page`]; `page` adds the security headers and renders errors.

pub(crate) mod audit;
mod auth_views;
mod forms;
mod greetings;
mod listing;
mod page;
mod pages;
mod render;
mod request;
mod router;
mod security;
mod session;
mod sessions_list;
mod sql;
mod state;
mod throttle;
mod tokens;
mod users;

pub use page::error_response;
pub use router::routes;
pub use security::fingerprint;
pub use state::{AdminState, Policy};
