//! *Retry now* under an integration notice: run the failed PagerDuty or Notion step again.

use std::sync::Arc;

use super::Outcome;
use crate::incident::{IncidentId, Status, UserId};
use crate::slack::inbound::BlockActions;
use crate::slack::meta::RetryButton;
use crate::slack::socket::Handled;
use crate::slack::ui::RETRY_ACTION;
use crate::workflow::runner::Runner;
use crate::workflow::steps::{Background, StepKey};

/// Buttons pressed: each *Retry now* restarts its step (after the ack) unless the incident is
/// gone or failed.
pub fn on_actions(app: &Arc<Runner>, a: BlockActions) -> Outcome {
    let mut retries = Vec::new();
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
        match button.step.parse::<StepKey>() {
            Ok(StepKey::Background(b)) => retries.push((button.incident, b)),
            _ => {
                tracing::warn!(step = %button.step, "retry button for a step that cannot be retried")
            }
        }
    }
    if retries.is_empty() {
        return Ok(Handled::default());
    }
    let runner = app.clone();
    let user = a.user.id.clone();
    Ok(Handled::default().then(move || {
        let r = runner.clone();
        runner.spawn_tracked(async move {
            for (id, b) in retries {
                retry(&r, id, b, &user).await;
            }
        });
    }))
}

async fn retry(runner: &Arc<Runner>, id: IncidentId, b: Background, user: &UserId) {
    let status = match runner.ctx().store.status(id).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "retry button: store unavailable");
            return;
        }
    };
    if status.is_none() || status == Some(Status::Failed) {
        return;
    }
    match crate::workflow::integrations::retry_now(runner, id, b).await {
        Ok(started) => {
            tracing::info!(incident_id = %id, step = b.as_str(), started, user = %user, "retry requested")
        }
        Err(e) => tracing::error!(
            error = format!("{e:#}"),
            "retry button: could not restart the step"
        ),
    }
}
