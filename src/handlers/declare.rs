//! `/incident` opens the declare form; its submission records the incident (the intent) before
//! the ack, and the declare workflow starts once the ack is written.

use std::sync::Arc;

use anyhow::anyhow;
use chrono::Utc;
use tokio::time::Instant;

use super::{open_modal, Failure, Outcome};
use crate::app::App;
use crate::incident::naming::draw_name;
use crate::incident::Declaration;
use crate::slack::inbound::{SlashCommand, ViewSubmission};
use crate::slack::meta::DeclareFormMeta;
use crate::slack::socket::Handled;
use crate::slack::ui::{self, *};
use crate::store::{NewIncident, Recorded};

/// Names drawn before giving up on finding an unused one in the store.
const NAME_DRAWS: usize = 200;

/// `/incident [title]`: open the declare form, remembering where it was typed.
pub fn on_command(app: &Arc<App>, c: SlashCommand, received: Instant) -> Outcome {
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
pub fn on_submit(app: &Arc<App>, v: ViewSubmission) -> Outcome {
    let settings = &app.settings.incidents;
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
    let reporter = v.user.id.as_str();
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
    let now = Utc::now();
    let date = now.with_timezone(&settings.timezone).date_naive();
    for _ in 0..5 {
        let Some(name) = draw_name(
            date,
            &settings.adjectives,
            &settings.animals,
            &mut rand::rng(),
            NAME_DRAWS,
            |n| app.store.name_used(n).unwrap_or(true),
        ) else {
            break;
        };
        let rec = app.store.record_declaration(&NewIncident {
            name: &name,
            submission_key: &submission_key,
            title: &decl.title,
            description: &decl.description,
            severity: &decl.severity,
            reporter,
            commander: decl.commander.as_deref(),
            origin_channel: meta.origin.as_ref().map(|c| c.as_str()),
            response_url: meta.response_url.as_deref(),
            declared_at: now,
        });
        match rec {
            Ok(Recorded::New(id)) => {
                tracing::info!(incident = %name, "incident recorded; declaring once acked");
                let app = app.clone();
                return Ok(Handled::default().then(move || app.spawn_declare(id)));
            }
            Ok(Recorded::Duplicate(id)) => {
                tracing::info!(incident_id = id, "duplicate submission ignored");
                return Ok(Handled::default());
            }
            Ok(Recorded::NameTaken) => continue,
            Err(e) => {
                return Err(Failure::new(
                    anyhow!(e).context("could not record the incident"),
                    Some(ui::declare_not_saved()),
                ))
            }
        }
    }
    Ok(Handled::reply(Some(ui::no_unused_name())))
}
