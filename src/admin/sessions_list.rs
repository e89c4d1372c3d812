//! The sessions list on the password-change page (OWASP ASVS 3.3.4): a user sees their
//! live sessions (started, last seen, address, browser) and ends one or all the others.
//! An ended session's row is gone, so its next request is logged out at once.

use serde::Serialize;

use super::audit::{self, Change};
use super::page::{Errors, Page};
use super::request::{Ctx, Result};
use super::session;
use crate::error::AdminError;

const BACK: &str = "/admin/password_change/";

/// One live session of the logged-in user, as the template shows it.
#[derive(Serialize)]
pub(crate) struct SessionRow {
    id: i64,
    created: String,
    last_seen: String,
    client_addr: Option<String>,
    user_agent: Option<String>,
    current: bool,
}

/// The password-change page: its form problems and the user's live sessions.
#[derive(Serialize)]
pub(crate) struct PasswordChangeData {
    errors: Errors,
    sessions: Vec<SessionRow>,
    other_sessions: usize,
}

/// The logged-in user's live sessions, with the form's `errors`, for the template.
pub(crate) async fn for_page(ctx: &Ctx<'_>, errors: Errors) -> Result<PasswordChangeData> {
    let policy = ctx.admin.policy();
    let listed =
        session::list_for_user(&**ctx.db, ctx.user.id, &ctx.session_token, &policy).await?;
    let sessions: Vec<SessionRow> = listed
        .into_iter()
        .map(|s| SessionRow {
            id: s.id,
            created: s.created,
            last_seen: s.last_seen,
            client_addr: s.client_addr,
            user_agent: s.user_agent,
            current: s.current,
        })
        .collect();
    Ok(PasswordChangeData {
        other_sessions: sessions.iter().filter(|s| !s.current).count(),
        errors,
        sessions,
    })
}

/// `POST /admin/sessions/<id>/end/`: end one of one's own other sessions.
pub(crate) async fn end_one(ctx: &mut Ctx<'_>, id: i64) -> Result<Page> {
    // Only the user's own, and never the current one (that is what "Log out" is for).
    if !session::delete_by_id(&**ctx.db, ctx.user.id, id, &ctx.session_token).await? {
        return Err(AdminError::NotFound);
    }
    record(ctx, Some(id), "one other session").await?;
    Ok(ctx.redirect_with(BACK, "success", "The session was ended."))
}

/// `POST /admin/sessions/end_others/`: end every session but this one.
pub(crate) async fn end_others(ctx: &mut Ctx<'_>) -> Result<Page> {
    let ended = session::delete_for_user(&**ctx.db, ctx.user.id, Some(&ctx.session_token)).await?;
    record(ctx, None, &format!("{ended} other sessions")).await?;
    Ok(ctx.redirect_with(
        BACK,
        "success",
        &match ended {
            1 => "Your other session was ended.".to_owned(),
            n => format!("Your {n} other sessions were ended."),
        },
    ))
}

async fn record(ctx: &Ctx<'_>, session_id: Option<i64>, what: &str) -> Result<()> {
    audit::record(
        &**ctx.db,
        &ctx.actor(),
        Change {
            action: "end_session",
            object_type: "session",
            object_id: session_id,
            object_repr: what,
            before: None,
            after: None,
        },
    )
    .await?;
    Ok(())
}
