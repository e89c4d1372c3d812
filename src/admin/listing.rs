//! The admin's lists at any size: keyset ("seek") pagination and estimated counts.
//!
//! `LIMIT 25 OFFSET n` makes PostgreSQL read and throw away `n` rows, so the last page of
//! a million audit entries reads all of them, and `count(*)` reads the whole table on
//! every view. Instead a page here starts with an index seek to the row just after (or
//! before) the one its link names: the sort key and the id of that row travel in the query
//! string (`?after=…`, `?before=…`, or `?last=1` for the end), and page 40,000 costs what
//! page 1 costs. The price is that pages have no numbers. The total is the planner's
//! estimate once it reaches [`EXACT_BELOW`] rows, or 1,000 matches of a search or filter
//! ("about 1,000,000"), and an exact count, which reads at most [`EXACT_BELOW`] rows,
//! below that.

use deadpool_postgres::ClientWrapper;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

/// Rows per page.
pub(crate) const PER_PAGE: usize = 25;

/// Totals of at least this many rows are estimated; below it they are counted exactly.
pub(crate) const EXACT_BELOW: i64 = 10_000;

/// The same for a search or filter, whose count reads every match through an index (a
/// whole table's small count is a quick sequential scan): exact when the estimate is
/// below this.
const EXACT_FILTERED_BELOW: i64 = 1_000;

/// One ordering of a list: by `expr`, ties broken by `id`, so every row has one place.
/// An index on `(expr, id)` (in this direction or the reverse) serves both the order and
/// the seek.
pub(crate) struct SortKey {
    /// What the rows are ordered by, e.g. `lower(username)`.
    pub expr: &'static str,
    /// The sort key as text for the cursor, e.g. `date_joined::text` (a timestamp's text
    /// form keeps its microseconds; NULL when the key is NULL).
    pub token: &'static str,
    /// The cursor's text back as the sort key; `{}` is the placeholder,
    /// e.g. `{}::text::timestamptz`.
    pub param: &'static str,
    /// Whether the cursor may carry no key (the `token` is NULL for some rows).
    pub nullable: bool,
    pub descending: bool,
}

/// A position in a list: the sort key (as text) and the id of one row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cursor {
    id: i64,
    key: Option<String>,
}

impl Cursor {
    /// `<id>.<key>`, or `<id>` alone when the key is NULL.
    fn encode(&self) -> String {
        match &self.key {
            Some(key) => format!("{}.{key}", self.id),
            None => self.id.to_string(),
        }
    }

    /// A cursor from the query string; `None` (the first page is shown) if malformed.
    fn decode(token: &str, sort: &SortKey) -> Option<Self> {
        let (id, key) = match token.split_once('.') {
            Some((id, key)) => (id, Some(key)),
            None => (token, None),
        };
        let valid_id = !id.is_empty() && id.len() <= 18 && id.bytes().all(|b| b.is_ascii_digit());
        let valid_key = match key {
            None => sort.nullable,
            Some(key) => !key.is_empty() && key.len() <= 300 && !key.contains('\0'),
        };
        if !(valid_id && valid_key) {
            return None;
        }
        Some(Self {
            id: id.parse().ok()?,
            key: key.map(str::to_owned),
        })
    }

    fn from_row(row: &Row) -> Self {
        let n = row.len();
        Self {
            id: row.get(n - 2),
            key: row.get(n - 1),
        }
    }
}

/// Which page of a list to show.
#[derive(Debug, PartialEq)]
pub(crate) enum Seek {
    First,
    After(Cursor),
    Before(Cursor),
    Last,
}

impl Seek {
    /// From the `after`, `before` and `last` query parameters; a malformed cursor is
    /// ignored (like a junk page number, it shows the first page instead of failing).
    pub fn from_query(after: &str, before: &str, last: &str, sort: &SortKey) -> Self {
        if !after.is_empty() {
            Cursor::decode(after, sort).map_or(Seek::First, Seek::After)
        } else if !before.is_empty() {
            Cursor::decode(before, sort).map_or(Seek::First, Seek::Before)
        } else if last == "1" {
            Seek::Last
        } else {
            Seek::First
        }
    }
}

/// A list query: `SELECT columns FROM table WHERE filters`, with `$1`… of the filters
/// bound to `params` (text) in order.
///
/// How PostgreSQL plans it ([`Plan`]): planning costs more than running one of these
/// index seeks (pgbench on the session query: 8,000 queries/s planned anew each time,
/// 52,000 with a kept plan).
pub(crate) struct List<'a> {
    pub columns: &'a str,
    pub table: &'a str,
    pub filters: &'a [String],
    pub params: &'a [&'a str],
    pub sort: &'a SortKey,
    pub plan: Plan,
}

/// Whether one plan serves every value of a list's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Plan {
    /// Yes: no filter, or one equality whose index leads with its column (the cursor's
    /// values only move the seek). A statement prepared once per pooled connection
    /// (deadpool's statement cache), whose generic plan PostgreSQL keeps after five
    /// executions.
    Generic,
    /// No: planned again for its values every time (the unnamed statement, in one round
    /// trip). The best plan for `username ILIKE '%an%'` is not the one for a name that
    /// matches nothing, nor is the index for `action = 'login' AND username = 'x'` the
    /// one for `action = 'login_locked' AND username = 'admin'`.
    PerValue,
}

/// One page of rows and where the links around it lead.
pub(crate) struct Window {
    /// The rows, with two extra columns at the end (id and sort key) for the cursors.
    pub rows: Vec<Row>,
    has_prev: bool,
    has_next: bool,
}

/// A total: exact, or PostgreSQL's estimate for a large table.
#[derive(Debug, PartialEq)]
pub(crate) enum Count {
    Exact(i64),
    About(i64),
}

impl Count {
    /// `33`, `about 1,000,000`.
    pub fn display(&self) -> String {
        match self {
            Count::Exact(n) => thousands(*n),
            Count::About(n) => format!("about {}", thousands(round_estimate(*n))),
        }
    }
}

impl List<'_> {
    fn where_clause(&self, extra: Option<String>) -> String {
        let conditions: Vec<String> = self.filters.iter().cloned().chain(extra).collect();
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        }
    }

    /// The page `seek` names. A cursor PostgreSQL cannot read (a timestamp that is not
    /// one) shows the first page, as a malformed one does.
    async fn page(&self, db: &ClientWrapper, seek: Seek) -> Result<Window, tokio_postgres::Error> {
        let mut seek = seek;
        loop {
            let (backward, cursor) = match &seek {
                Seek::First => (false, None),
                Seek::After(c) => (false, Some(c)),
                Seek::Before(c) => (true, Some(c)),
                Seek::Last => (true, None),
            };
            let mut rows = match self.fetch(db, backward, cursor).await {
                Ok(rows) => rows,
                Err(e) if cursor.is_some() && is_data_exception(&e) => {
                    seek = Seek::First;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let more = rows.len() > PER_PAGE;
            rows.truncate(PER_PAGE);
            let (has_prev, has_next) = match seek {
                Seek::First => (false, more),
                // Past the end (a stale or hand-made link): the last page instead.
                Seek::After(_) if rows.is_empty() => {
                    seek = Seek::Last;
                    continue;
                }
                Seek::After(_) => (true, more),
                // Back at the start: the first page, full.
                Seek::Before(_) if !more => {
                    seek = Seek::First;
                    continue;
                }
                Seek::Before(_) => (true, true),
                Seek::Last => (more, false),
            };
            if backward {
                rows.reverse();
            }
            return Ok(Window {
                rows,
                has_prev,
                has_next,
            });
        }
    }

    /// Up to `PER_PAGE + 1` rows from the cursor (or an end) in the list's order, or in
    /// the reverse order when `backward`.
    async fn fetch(
        &self,
        db: &ClientWrapper,
        backward: bool,
        cursor: Option<&Cursor>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let sort = self.sort;
        let descending = sort.descending != backward;
        let (dir, op) = if descending {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        let n = self.params.len();
        let seek = cursor.map(|_| {
            let key = sort.param.replace("{}", &format!("${}", n + 1));
            format!("({}, id) {op} ({key}, ${})", sort.expr, n + 2)
        });
        let sql = format!(
            "SELECT {}, id AS cursor_id, {} AS cursor_key FROM {}{} \
             ORDER BY {} {dir}, id {dir} LIMIT {}",
            self.columns,
            sort.token,
            self.table,
            self.where_clause(seek),
            sort.expr,
            PER_PAGE + 1
        );
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> = self.typed_params();
        if let Some(cursor) = cursor {
            params.push((&cursor.key, Type::TEXT));
            params.push((&cursor.id, Type::INT8));
        }
        self.query(db, &sql, &params).await
    }

    fn typed_params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.params
            .iter()
            .map(|p| (p as &(dyn ToSql + Sync), Type::TEXT))
            .collect()
    }

    /// Run `sql`: prepared once per connection, or planned for the values ([`Plan`]).
    /// EXPLAIN is planned for the bound values either way.
    async fn query(
        &self,
        db: &ClientWrapper,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        if self.plan == Plan::Generic {
            let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
            db.query(&db.prepare_cached(sql).await?, &values).await
        } else {
            db.query_typed(sql, params).await
        }
    }

    /// The first column of the first row (an EXPLAIN or an aggregate: there is one).
    async fn scalar<T>(
        &self,
        db: &ClientWrapper,
        sql: &str,
    ) -> Result<Option<T>, tokio_postgres::Error>
    where
        T: for<'r> tokio_postgres::types::FromSql<'r>,
    {
        let rows = self.query(db, sql, &self.typed_params()).await?;
        rows.first().map(|r| r.try_get(0)).transpose()
    }

    /// The page `seek` names and the list's total. A page with no link before or after it
    /// holds every match, so its rows are the exact total: a search that finds a few
    /// names costs one query, not three (the count's EXPLAIN and `count(*)` planned for
    /// its pattern cost more than the page itself).
    pub async fn page_and_count(
        &self,
        db: &ClientWrapper,
        seek: Seek,
    ) -> Result<(Window, Count), tokio_postgres::Error> {
        // A page after or before a cursor has a link back: it needs the count, so both
        // share the connection's pipeline.
        if matches!(seek, Seek::After(_) | Seek::Before(_)) {
            return futures_util::try_join!(self.page(db, seek), self.count(db));
        }
        let window = self.page(db, seek).await?;
        if !window.has_prev && !window.has_next {
            let n = window.rows.len() as i64;
            return Ok((window, Count::Exact(n)));
        }
        let count = self.count(db).await?;
        Ok((window, count))
    }

    /// How many rows match: the planner's estimate from the table's statistics when that
    /// is [`EXACT_BELOW`] or more (with filters [`EXACT_FILTERED_BELOW`]), else `count(*)`,
    /// which reads at most [`EXACT_BELOW`] rows in case the statistics are stale.
    pub async fn count(&self, db: &ClientWrapper) -> Result<Count, tokio_postgres::Error> {
        let from = format!("{}{}", self.table, self.where_clause(None));
        // EXPLAIN is planned on every execution, prepared or not: the estimate is always
        // the one for these values and the table's current size.
        let plan: Value = self
            .scalar(db, &format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM {from}"))
            .await?
            .unwrap_or_default();
        let estimate = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64;
        let exact_below = if self.filters.is_empty() {
            EXACT_BELOW
        } else {
            EXACT_FILTERED_BELOW
        };
        if estimate >= exact_below {
            return Ok(Count::About(estimate));
        }
        let exact: i64 = self
            .scalar(
                db,
                &format!("SELECT count(*) FROM (SELECT 1 FROM {from} LIMIT {EXACT_BELOW}) AS t"),
            )
            .await?
            .unwrap_or_default();
        Ok(if exact < EXACT_BELOW {
            Count::Exact(exact)
        } else {
            Count::About(estimate.max(exact))
        })
    }
}

impl Window {
    /// The paginator's template values. `path` is the list's URL and `base` its current
    /// filters and ordering, which every link keeps.
    pub fn links(&self, count: &Count, path: &str, base: &[(&str, &str)]) -> Paging {
        let link = |extra: Option<(&str, String)>| {
            let mut pairs: Vec<(&str, String)> = base
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (*k, (*v).to_owned()))
                .collect();
            pairs.extend(extra);
            match serde_urlencoded::to_string(&pairs) {
                Ok(query) if !query.is_empty() => format!("{path}?{query}"),
                _ => path.to_owned(),
            }
        };
        let first = self.rows.first().map(|r| Cursor::from_row(r).encode());
        let last = self.rows.last().map(|r| Cursor::from_row(r).encode());
        Paging {
            total: count.display(),
            first: self.has_prev.then(|| link(None)),
            prev: first
                .filter(|_| self.has_prev)
                .map(|c| link(Some(("before", c)))),
            next: last
                .filter(|_| self.has_next)
                .map(|c| link(Some(("after", c)))),
            last: self.has_next.then(|| link(Some(("last", "1".to_owned())))),
        }
    }
}

/// The paginator (`_paging.hbs`): the total and the links that exist.
#[derive(Serialize)]
pub(crate) struct Paging {
    total: String,
    first: Option<String>,
    prev: Option<String>,
    next: Option<String>,
    last: Option<String>,
}

/// Invalid input for a type (class 22), e.g. a cursor that is not a timestamp.
fn is_data_exception(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|code| code.code().starts_with("22"))
}

/// Two significant digits: an estimate is no more precise than that.
fn round_estimate(n: i64) -> i64 {
    let mut unit = 1;
    while n / unit >= 100 {
        unit *= 10;
    }
    (n + unit / 2) / unit * unit
}

/// `1234567` as `1,234,567`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BY_NAME: SortKey = SortKey {
        expr: "lower(username)",
        token: "lower(username)",
        param: "{}::text",
        nullable: false,
        descending: false,
    };
    const BY_LOGIN: SortKey = SortKey {
        expr: "COALESCE(last_login, '-infinity'::timestamptz)",
        token: "last_login::text",
        param: "COALESCE({}::text::timestamptz, '-infinity'::timestamptz)",
        nullable: true,
        descending: false,
    };

    #[test]
    fn cursors_round_trip_and_malformed_ones_are_ignored() {
        let cursor = Cursor {
            id: 42,
            key: Some("a.b@c".into()),
        };
        assert_eq!(cursor.encode(), "42.a.b@c");
        assert_eq!(
            Seek::from_query("42.a.b@c", "", "", &BY_NAME),
            Seek::After(cursor)
        );
        let no_key = Cursor { id: 7, key: None };
        assert_eq!(no_key.encode(), "7");
        assert_eq!(
            Seek::from_query("", "7", "", &BY_LOGIN),
            Seek::Before(no_key)
        );
        for junk in [
            "7",
            "x.alice",
            "-1.alice",
            ".alice",
            "1.",
            "12345678901234567890.a",
            "99999999999999999999",
        ] {
            assert_eq!(
                Seek::from_query(junk, "", "", &BY_NAME),
                Seek::First,
                "{junk}"
            );
        }
        assert_eq!(Seek::from_query("", "", "1", &BY_NAME), Seek::Last);
        assert_eq!(Seek::from_query("", "", "yes", &BY_NAME), Seek::First);
    }

    #[test]
    fn counts_read_like_a_person_would_write_them() {
        assert_eq!(Count::Exact(33).display(), "33");
        assert_eq!(Count::Exact(9_999).display(), "9,999");
        assert_eq!(Count::About(1_000_347).display(), "about 1,000,000");
        assert_eq!(Count::About(103_456).display(), "about 100,000");
        assert_eq!(Count::About(12_651).display(), "about 13,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-1_000), "-1,000");
    }
}
