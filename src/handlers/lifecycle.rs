//! The lifecycle subcommands of `/incident`: help, list, status updates, severity, roles, notes
//! and the timeline. A change is applied and recorded (with its timeline entry) inside the ack,
//! keyed by the command's trigger id so that a redelivered command changes nothing twice; the
//! workflow that shows it everywhere starts once the ack is written.

use std::sync::Arc;

use super::{Failure, Outcome};
use crate::incident::command::{RoleTarget, UpdateStatus};
use crate::incident::roles::Role;
use crate::incident::timeline::EntryKind;
use crate::incident::{Incident, Severity};
use crate::slack::inbound::SlashCommand;
use crate::slack::socket::Handled;
use crate::slack::ui;
use crate::store::{ChangeRecorded, ChangeRequest, NewChange};
use crate::workflow::runner::Runner;
use crate::workflow::steps::{StepKey, Workflow};

fn store_failed(e: anyhow::Error) -> Failure {
    Failure::new(e.context("store unavailable"), Some(ui::internal_error()))
}

/// `/incident help`.
pub fn help(app: &Arc<Runner>, inc: Option<&Incident>) -> Outcome {
    let s = &app.ctx().settings.incidents;
    let level_of = |id: &str| s.severity(id);
    Ok(Handled::reply(Some(ui::lifecycle::help(inc, &level_of))))
}

/// `/incident list`.
pub async fn list(app: &Arc<Runner>) -> Outcome {
    let ctx = app.ctx();
    let open = ctx.store.open_incidents().await.map_err(store_failed)?;
    let s = &ctx.settings.incidents;
    let level_of = |id: &str| s.severity(id);
    Ok(Handled::reply(Some(ui::lifecycle::list(
        &open,
        ctx.clock.now(),
        &level_of,
    ))))
}

/// A subcommand this build does not run.
pub fn not_available(name: &str) -> Outcome {
    Ok(Handled::reply(Some(ui::lifecycle::not_available(name))))
}

/// `/incident update <status> <message>`.
pub async fn update(
    app: &Arc<Runner>,
    c: &SlashCommand,
    inc: Incident,
    status: UpdateStatus,
    message: String,
) -> Outcome {
    change(
        app,
        c,
        inc,
        "update",
        ChangeRequest::Status { status, message },
    )
    .await
}

/// `/incident severity <level>`.
pub async fn severity(
    app: &Arc<Runner>,
    c: &SlashCommand,
    inc: Incident,
    level: String,
) -> Outcome {
    change(
        app,
        c,
        inc,
        "severity",
        ChangeRequest::Severity(Severity::new(level)),
    )
    .await
}

/// `/incident role <role> <@user|me|none>`.
pub async fn role(
    app: &Arc<Runner>,
    c: &SlashCommand,
    inc: Incident,
    role: Role,
    target: RoleTarget,
) -> Outcome {
    let user = match target {
        RoleTarget::User(u) => Some(u),
        RoleTarget::Me => Some(c.user_id.clone()),
        RoleTarget::Nobody => None,
    };
    change(app, c, inc, "role", ChangeRequest::Role { role, user }).await
}

/// Apply and record a change (intent), then show it everywhere after the ack.
pub async fn change(
    app: &Arc<Runner>,
    c: &SlashCommand,
    inc: Incident,
    name: &'static str,
    request: ChangeRequest,
) -> Outcome {
    let ctx = app.ctx();
    let settings = ctx.settings.clone();
    let recorded = ctx
        .store
        .record_change(
            NewChange {
                incident: inc.id,
                key: command_key(c),
                by: c.user_id.clone(),
                request,
                at: ctx.clock.now(),
            },
            move |applied| {
                let s = &settings.incidents;
                ui::lifecycle::change_entry(applied, &|id: &str| s.severity(id))
            },
            |seq| StepKey::of(Workflow::Change(seq)).to_string(),
        )
        .await
        .map_err(|e| {
            Failure::new(
                e.context("could not record the change"),
                Some(ui::internal_error()),
            )
        })?;
    Ok(match recorded {
        ChangeRecorded::Started(rec) => {
            let app = app.clone();
            let id = inc.id;
            Handled::default().then(move || app.start(id, Workflow::Change(rec.seq)))
        }
        ChangeRecorded::Duplicate => Handled::default(),
        ChangeRecorded::Unchanged => Handled::reply(Some(ui::lifecycle::unchanged(name))),
        ChangeRecorded::NotOpen(status) => {
            Handled::reply(Some(ui::lifecycle::not_open(name, status)))
        }
        ChangeRecorded::NotFound => Handled::reply(Some(ui::lifecycle::outside_incident(name))),
    })
}

/// What identifies one typed command across redeliveries: its trigger id (Slack sends the same
/// payload again when it retries).
fn command_key(c: &SlashCommand) -> String {
    format!("cmd:{}", c.trigger_id)
}

/// `/incident note <text>`: a timeline entry stamped now, once per command.
pub async fn note(app: &Arc<Runner>, c: &SlashCommand, inc: Incident, text: String) -> Outcome {
    let ctx = app.ctx();
    let added = ctx
        .store
        .add_entry(
            inc.id,
            format!("note:{}", c.trigger_id),
            ctx.clock.now(),
            Some(c.user_id.clone()),
            EntryKind::Note,
            text,
        )
        .await
        .map_err(store_failed)?;
    Ok(if added {
        Handled::reply(Some(ui::lifecycle::note_added()))
    } else {
        Handled::default()
    })
}

/// `/incident timeline`.
pub async fn timeline(app: &Arc<Runner>, inc: Incident) -> Outcome {
    let entries = app
        .ctx()
        .store
        .timeline_entries(inc.id)
        .await
        .map_err(store_failed)?;
    Ok(Handled::reply(Some(ui::lifecycle::timeline(
        &inc, &entries,
    ))))
}
