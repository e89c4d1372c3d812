//! The greetings as the API reads them, kept in memory so that `GET /api/v1/greetings`
//! and `GET /api/v1/greetings/{id}` cost no database round trip (like `GET /`).
//!
//! It is reloaded by the token listener's connection, which also LISTENs on the
//! greetings' channel (`greeting_changed`, the admin's NOTIFY path), and by every API write
//! on this replica right after its commit, so a client reads its own writes. While the
//! listener is disconnected the API refuses every request anyway (fail closed), so a
//! stale snapshot is never served. Above [`MAX_CACHED`] greetings the snapshot is dropped
//! and reads go to PostgreSQL, which bounds the memory it takes.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use serde::Serialize;
use tokio_postgres::GenericClient;
use utoipa::ToSchema;

/// At most this many greetings (of at most 500 characters each) are kept in memory.
pub const MAX_CACHED: i64 = 1000;

#[derive(Default)]
pub struct GreetingSnapshot {
    /// Sorted by id; `None` before the first load, above `MAX_CACHED`, or when forgotten.
    current: ArcSwapOption<Vec<Greeting>>,
    /// One reload at a time, so the last one stored is the last one read.
    reloading: tokio::sync::Mutex<()>,
}

impl GreetingSnapshot {
    pub fn get(&self) -> Option<Arc<Vec<Greeting>>> {
        self.current.load_full()
    }

    pub async fn reload(&self, client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
        let _one_at_a_time = self.reloading.lock().await;
        let rows = client
            .query(
                &format!("{} ORDER BY id LIMIT $1", select()),
                &[&(MAX_CACHED + 1)],
            )
            .await?;
        let items: Vec<Greeting> = rows.iter().map(row).collect();
        self.current.store(if items.len() as i64 > MAX_CACHED {
            None
        } else {
            Some(Arc::new(items))
        });
        Ok(())
    }

    pub fn forget(&self) {
        self.current.store(None);
    }
}

/// One page after `after`, from a sorted snapshot: (items, next_after).
pub fn page(items: &[Greeting], after: i64, limit: i64) -> (Vec<Greeting>, Option<i64>) {
    let start = items.partition_point(|g| g.id <= after);
    let rest = &items[start..];
    let taken: Vec<Greeting> = rest.iter().take(limit as usize).cloned().collect();
    let next = (rest.len() as i64 > limit)
        .then(|| taken.last().map(|g| g.id))
        .flatten();
    (taken, next)
}

/// The greeting `id`, from a sorted snapshot.
pub fn find(items: &[Greeting], id: i64) -> Option<&Greeting> {
    items
        .binary_search_by_key(&id, |g| g.id)
        .ok()
        .map(|i| &items[i])
}

/// A greeting that `GET /` can serve.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Greeting {
    #[schema(minimum = 1)]
    pub id: i64,
    pub message: String,
    /// Exactly one greeting is active: the one `GET /` serves.
    pub is_active: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

pub(crate) fn select() -> &'static str {
    "SELECT id, message, is_active,
            to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
            to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
     FROM greetings"
}

pub(crate) fn row(r: &tokio_postgres::Row) -> Greeting {
    Greeting {
        id: r.get(0),
        message: r.get(1),
        is_active: r.get(2),
        created_at: r.get(3),
        updated_at: r.get(4),
    }
}
