//! greeter: a greeting API with a Django-style admin, on PostgreSQL.

pub mod admin;
pub mod api;
pub mod auth;
pub mod command;
pub mod config;
pub mod createsuperuser;
pub mod db;
pub mod error;
pub mod greeting;
pub mod listen;
pub mod metrics;
pub mod migrations;
pub mod routes;
pub mod server;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod timestamp;
