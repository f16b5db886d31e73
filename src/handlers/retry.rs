//! *Retry now* under an integration notice: run the failed PagerDuty or Notion step again.

use std::sync::Arc;

use super::Outcome;
use crate::app::App;
use crate::incident::Status;
use crate::slack::inbound::BlockActions;
use crate::slack::meta::RetryButton;
use crate::slack::socket::Handled;
use crate::slack::ui::RETRY_ACTION;

/// Buttons pressed: each *Retry now* restarts its step unless the incident is gone or failed.
pub fn on_actions(app: &Arc<App>, a: BlockActions) -> Outcome {
    for action in &a.actions {
        if action.action_id != RETRY_ACTION {
            continue;
        }
        let button = match RetryButton::decode(action.value.as_deref().unwrap_or_default()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "retry button ignored");
                continue;
            }
        };
        let id = button.incident.0;
        let status = app.store.incident(id).ok().flatten().map(|i| i.status);
        if status.is_none() || status == Some(Status::Failed) {
            continue;
        }
        let started = crate::workflow::integrations::retry_now(app, id, &button.step);
        tracing::info!(incident_id = id, step = %button.step, started, user = %a.user.id, "retry requested");
    }
    Ok(Handled::default())
}
