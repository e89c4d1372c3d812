//! Integration tests: the real application against a real PostgreSQL.
//! One test binary (like zero2prod) so the crate is linked once.

mod helpers;
mod postgres;
mod tls_certs;

mod config_errors;
mod createsuperuser;
mod database_outage;
mod greeting;
mod health;
mod http_hygiene;
mod logging;
mod metrics;
mod migrations;
mod notify;
mod shutdown;
mod tls;

mod accept_backoff;
mod account_security;
mod api_admin_tokens;
mod api_createtoken;
mod api_greetings;
mod api_openapi;
mod api_support;
mod api_tokens;

mod admin_auth;
mod admin_errors;
mod admin_greetings;
mod admin_pages;
mod admin_pool;
mod admin_scale;
mod admin_support;
mod admin_throttle;
mod admin_users;
mod connections;
mod h2c;
mod login_burst;
mod low_findings;
