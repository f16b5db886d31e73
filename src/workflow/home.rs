//! The App Home tab: published (`views.publish`) for the person who opens it, with a Declare
//! button and the open incidents, most severe first, then oldest first.

use anyhow::Result;

use crate::incident::UserId;
use crate::slack::ui;
use crate::workflow::runner::Runner;

/// Publish the Home tab for `user`.
pub async fn publish(runner: &Runner, user: &UserId) -> Result<()> {
    let ctx = runner.ctx();
    let open = ctx.store.open_incidents().await?;
    let levels = &ctx.settings.incidents.severities;
    let rank = |id: &str| {
        levels
            .iter()
            .position(|l| l.id.eq_ignore_ascii_case(id))
            .unwrap_or(levels.len())
    };
    let level_of = |id: &str| ctx.settings.incidents.severity(id);
    let view = ui::lifecycle::home(&open, ctx.clock.now(), &rank, &level_of);
    ctx.slack.publish_home(user, view).await?;
    tracing::info!(user = %user, open = open.len(), "Home tab published");
    Ok(())
}
