//! Users and their passwords, shared by the admin, the migrator and `createsuperuser`.

pub mod password;
pub mod users;
