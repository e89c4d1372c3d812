//! The sessions list on the password-change page (OWASP ASVS 3.3.4): a user sees their
//! live sessions (started, last seen, address, browser) and ends one or all the others.
//! An ended session's row is gone, so its next request is logged out at once.

use serde_json::{Value, json};

use super::audit::{self, Change};
use super::page::Page;
use super::request::{Ctx, Result};
use super::session;
use crate::error::AdminError;

const BACK: &str = "/admin/password_change/";

/// The logged-in user's live sessions, for the template.
pub(crate) async fn for_page(ctx: &Ctx<'_>) -> Result<Value> {
    let policy = ctx.admin.policy();
    let listed =
        session::list_for_user(&**ctx.db, ctx.user.id, &ctx.session_token, &policy).await?;
    Ok(json!({
        "sessions": listed
            .iter()
            .map(|s| json!({
                "id": s.id,
                "created": s.created,
                "last_seen": s.last_seen,
                "client_addr": s.client_addr,
                "user_agent": s.user_agent,
                "current": s.current,
            }))
            .collect::<Vec<_>>(),
        "other_sessions": listed.iter().filter(|s| !s.current).count(),
    }))
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
