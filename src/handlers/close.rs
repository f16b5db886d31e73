//! `/incident close` (the close form, only in a resolved incident), its submission, and
//! `/incident reopen` (only in a resolved, not closed incident). Each records its intent inside
//! the ack; the close and reopen workflows start once the ack is written.

use std::sync::Arc;

use chrono::NaiveDate;
use tokio::time::Instant;

use super::{open_modal, Failure, Outcome};
use crate::incident::lifecycle::can_close;
use crate::incident::{Incident, Status};
use crate::slack::inbound::{SlashCommand, ViewSubmission};
use crate::slack::meta::ResolveFormMeta;
use crate::slack::socket::Handled;
use crate::slack::ui::{
    self, REVIEW_DATE_ACTION, REVIEW_DATE_BLOCK, REVIEW_NOTES_ACTION, REVIEW_NOTES_BLOCK,
};
use crate::store::{CloseRecorded, NewClose};
use crate::workflow::runner::Runner;
use crate::workflow::steps::{StepKey, Workflow};

/// `/incident close`: the close form, or why not.
pub fn on_close(app: &Arc<Runner>, c: SlashCommand, inc: Incident, received: Instant) -> Outcome {
    if !can_close(inc.status) {
        return Ok(Handled::reply(Some(ui::close_refused(&inc))));
    }
    // The close form carries the incident id like the resolve form.
    let meta = ResolveFormMeta { incident: inc.id }.encode();
    let today = app.ctx().clock.now().date_naive();
    let work = open_modal(app, c.trigger_id, c.response_url, received, move |_| {
        ui::close_modal(&inc, today, &meta)
    });
    Ok(Handled::default().then(work))
}

/// The close form submitted: record the close, then start closing.
pub async fn on_submit(app: &Arc<Runner>, v: ViewSubmission) -> Outcome {
    let ctx = app.ctx();
    let meta = match ResolveFormMeta::decode(&v.view.private_metadata) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "close form without incident id");
            return Ok(Handled::default());
        }
    };
    let review_date = v
        .view
        .input(REVIEW_DATE_BLOCK, REVIEW_DATE_ACTION)
        .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
    let notes = v
        .view
        .input(REVIEW_NOTES_BLOCK, REVIEW_NOTES_ACTION)
        .unwrap_or_default();
    let key = if v.view.id.is_empty() {
        format!("{}:{}:close", v.user.id, meta.incident)
    } else {
        v.view.id.clone()
    };
    let recorded = ctx
        .store
        .record_close(NewClose {
            incident: meta.incident,
            close_key: key,
            by: v.user.id.clone(),
            review_date,
            notes: notes.trim().to_string(),
            at: ctx.clock.now(),
            marker: StepKey::of(Workflow::Close).to_string(),
        })
        .await;
    match recorded {
        Ok(CloseRecorded::Started) => {
            let app = app.clone();
            let id = meta.incident;
            Ok(Handled::default().then(move || app.start(id, Workflow::Close)))
        }
        Ok(CloseRecorded::Duplicate) | Ok(CloseRecorded::NotFound) => Ok(Handled::default()),
        Ok(CloseRecorded::Refused(_)) => Ok(Handled::reply(Some(ui::close_form_refused()))),
        Err(e) => Err(Failure::new(
            e.context("could not record the close"),
            Some(ui::internal_error()),
        )),
    }
}

/// `/incident reopen`: back to investigating, or why not.
pub async fn on_reopen(app: &Arc<Runner>, c: SlashCommand, inc: Incident) -> Outcome {
    if inc.status != Status::Resolved {
        return Ok(Handled::reply(Some(ui::reopen_refused(&inc))));
    }
    let ctx = app.ctx();
    let changed = ctx
        .store
        .record_reopen(
            inc.id,
            &c.user_id,
            ctx.clock.now(),
            &StepKey::of(Workflow::Reopen).to_string(),
        )
        .await
        .map_err(|e| {
            Failure::new(
                e.context("could not record the reopen"),
                Some(ui::internal_error()),
            )
        })?;
    if changed.is_none() {
        return Ok(Handled::reply(Some(ui::reopen_refused(&inc))));
    }
    let app = app.clone();
    let id = inc.id;
    Ok(Handled::reply(Some(ui::reopened_ack(&inc))).then(move || app.start(id, Workflow::Reopen)))
}

/// *Close incident* pressed on a review reminder: the close form, or why not (to the presser,
/// through the action's `response_url`).
pub async fn on_review_button(
    app: &Arc<Runner>,
    a: crate::slack::inbound::BlockActions,
    received: Instant,
) -> Outcome {
    let Some(id) = a
        .actions
        .iter()
        .find(|x| x.action_id == ui::REVIEW_CLOSE_ACTION)
        .and_then(|x| x.value.as_deref())
        .and_then(|v| v.parse::<i64>().ok())
    else {
        tracing::warn!("review close button without an incident id");
        return Ok(Handled::default());
    };
    let inc = app
        .ctx()
        .store
        .incident(crate::incident::IncidentId(id))
        .await
        .map_err(|e| Failure::new(e.context("store unavailable"), None))?;
    let Some(inc) = inc else {
        return Ok(Handled::default());
    };
    let url = a.response_url.clone().unwrap_or_default();
    if !can_close(inc.status) {
        let text = ui::close_refused(&inc)["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let r = app.clone();
        return Ok(Handled::default().then(move || {
            let r2 = r.clone();
            r.spawn_tracked(async move {
                if let Err(e) = r2.ctx().slack.respond(&url, &text).await {
                    tracing::warn!(error = %e, "could not answer the button press");
                }
            });
        }));
    }
    let meta = ResolveFormMeta { incident: inc.id }.encode();
    let today = app.ctx().clock.now().date_naive();
    let work = open_modal(app, a.trigger_id, url, received, move |_| {
        ui::close_modal(&inc, today, &meta)
    });
    Ok(Handled::default().then(work))
}
