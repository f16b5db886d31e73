//! `/incident` opens the declare form; its submission records the incident (the intent) before
//! the ack, and the declare workflow starts once the ack is written.

use std::sync::Arc;

use tokio::time::Instant;

use super::{open_modal, Failure, Outcome};
use crate::incident::naming::draw_name;
use crate::incident::{Declaration, UserId};
use crate::slack::inbound::{SlashCommand, ViewSubmission};
use crate::slack::meta::DeclareFormMeta;
use crate::slack::socket::Handled;
use crate::slack::ui::{self, *};
use crate::store::{NewIncident, Recorded};
use crate::workflow::runner::Runner;
use crate::workflow::steps::Workflow;

/// Names drawn before giving up on finding an unused one in the store.
const NAME_DRAWS: usize = 200;

/// `/incident [title]`: open the declare form, remembering where it was typed.
pub fn on_command(app: &Arc<Runner>, c: SlashCommand, received: Instant) -> Outcome {
    let meta = DeclareFormMeta {
        origin: Some(c.channel_id.clone()).filter(|ch| !ch.as_str().is_empty()),
        response_url: Some(c.response_url.clone()).filter(|r| !r.is_empty()),
    }
    .encode();
    let text = c.text;
    let work = open_modal(app, c.trigger_id, c.response_url, received, move |app| {
        ui::declare_modal(
            &text,
            &app.settings.incidents.severities,
            &app.settings.incidents.default_severity,
            &meta,
        )
    });
    Ok(Handled::default().then(work))
}

/// The declare form submitted: validate, record the incident, then start declaring.
pub async fn on_submit(app: &Arc<Runner>, v: ViewSubmission) -> Outcome {
    let ctx = app.ctx();
    let settings = &ctx.settings.incidents;
    let view = &v.view;
    let decl = match Declaration::validate(
        view.input(TITLE_BLOCK, TITLE_ACTION).as_deref(),
        view.input(DESCRIPTION_BLOCK, DESCRIPTION_ACTION).as_deref(),
        view.input(SEVERITY_BLOCK, SEVERITY_ACTION).as_deref(),
        view.input(COMMANDER_BLOCK, COMMANDER_ACTION).as_deref(),
        |id| settings.severity(id).is_some(),
        &settings.default_severity,
    ) {
        Ok(d) => d,
        Err(errors) => return Ok(Handled::reply(Some(ui::declare_form_errors(&errors)))),
    };
    let reporter: UserId = v.user.id.clone();
    // The view id is stable across redeliveries of the same submission.
    let submission_key = if view.id.is_empty() {
        format!("{reporter}:{}", view.hash)
    } else {
        view.id.clone()
    };
    // Without readable metadata the incident is still declared; only the reply goes by DM.
    let meta = DeclareFormMeta::decode(&view.private_metadata).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "declare form metadata unreadable; replying by DM");
        DeclareFormMeta {
            origin: None,
            response_url: None,
        }
    });
    let now = ctx.clock.now();
    let date = now.with_timezone(&settings.timezone).date_naive();
    for _ in 0..5 {
        let used = ctx
            .store
            .names_used_on(&date.format("%Y%m%d").to_string())
            .await
            .map_err(|e| {
                Failure::new(
                    e.context("could not read the names in use"),
                    Some(ui::declare_not_saved()),
                )
            })?;
        let Some(name) = draw_name(
            date,
            &settings.adjectives,
            &settings.animals,
            &mut rand::rng(),
            NAME_DRAWS,
            |n| used.contains(n.as_str()),
        ) else {
            break;
        };
        let rec = ctx
            .store
            .record_declaration(NewIncident {
                name: name.clone(),
                submission_key: submission_key.clone(),
                title: decl.title.clone(),
                description: decl.description.clone(),
                severity: decl.severity.clone(),
                reporter: reporter.clone(),
                commander: decl.commander.clone(),
                origin_channel: meta.origin.clone(),
                response_url: meta.response_url.clone(),
                declared_at: now,
            })
            .await;
        match rec {
            Ok(Recorded::New(id)) => {
                tracing::info!(incident = %name, "incident recorded; declaring once acked");
                let app = app.clone();
                return Ok(Handled::default().then(move || app.start(id, Workflow::Declare)));
            }
            Ok(Recorded::Duplicate(id)) => {
                tracing::info!(incident_id = %id, "duplicate submission ignored");
                return Ok(Handled::default());
            }
            Ok(Recorded::NameTaken) => continue,
            Err(e) => {
                return Err(Failure::new(
                    e.context("could not record the incident"),
                    Some(ui::declare_not_saved()),
                ))
            }
        }
    }
    Ok(Handled::reply(Some(ui::no_unused_name())))
}
