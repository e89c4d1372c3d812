//! Small SQL helpers shared by the admin's pages.

/// Escape `%`, `_` and `\` for a LIKE pattern.
pub(crate) fn like_pattern(search: &str) -> String {
    let mut out = String::from("%");
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A unique index said no.
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// SQL for a timestamp column as text in the templates (UTC, to the minute).
pub(crate) fn sql_time(column: &str) -> String {
    format!("COALESCE(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC', '')")
}
