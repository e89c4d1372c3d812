//! Users, their passwords and their API tokens, shared by the admin, the API, the migrator
//! and the `createsuperuser`/`createtoken` commands.

pub mod password;
pub mod tokens;
pub mod users;
