//! The lifecycle subcommands of `/incident`: help, list, status updates, severity, roles, notes
//! and the timeline. A change is applied and recorded (with its timeline entry) inside the ack,
//! keyed by the command's trigger id so that a redelivered command changes nothing twice; the
//! workflow that shows it everywhere starts once the ack is written.

use std::sync::Arc;

use tokio::time::Instant;

use super::{open_modal, Failure, Outcome};
use crate::incident::command::{RoleTarget, UpdateStatus};
use crate::incident::roles::Role;
use crate::incident::timeline::EntryKind;
use crate::incident::{Incident, Severity};
use crate::slack::inbound::{BlockActions, SlashCommand, ViewSubmission};
use crate::slack::meta::UpdateFormMeta;
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

/// `/incident update` alone: open the update form.
pub fn update_form(
    app: &Arc<Runner>,
    c: &SlashCommand,
    inc: Incident,
    received: Instant,
) -> Outcome {
    let meta = UpdateFormMeta { incident: inc.id }.encode();
    let work = open_modal(
        app,
        c.trigger_id.clone(),
        c.response_url.clone(),
        received,
        move |ctx| ui::lifecycle::update_modal(&inc, &ctx.settings.incidents.severities, &meta),
    );
    Ok(Handled::default().then(work))
}

/// The update form submitted: a severity change when the level changed, and the status
/// update; each recorded once per submission (keyed by the view id).
pub async fn on_update_submit(app: &Arc<Runner>, v: ViewSubmission) -> Outcome {
    use ui::lifecycle::*;
    let ctx = app.ctx();
    let Ok(meta) = UpdateFormMeta::decode(&v.view.private_metadata) else {
        tracing::warn!("update form without incident id");
        return Ok(Handled::default());
    };
    let message = v
        .view
        .input(UPDATE_MESSAGE_BLOCK, UPDATE_MESSAGE_ACTION)
        .unwrap_or_default();
    let message = message.trim().to_string();
    let status = v
        .view
        .input(UPDATE_STATUS_BLOCK, UPDATE_STATUS_ACTION)
        .and_then(|s| s.parse::<UpdateStatus>().ok());
    let (Some(status), false) = (status, message.is_empty()) else {
        return Ok(Handled::reply(Some(serde_json::json!({
            "response_action": "errors",
            "errors": {UPDATE_MESSAGE_BLOCK: "Say what changed, and pick a status."}
        }))));
    };
    let inc = ctx
        .store
        .incident(meta.incident)
        .await
        .map_err(store_failed)?;
    let Some(inc) = inc else {
        return Ok(Handled::default());
    };
    let key = format!("view:{}", v.view.id);
    let mut requests = Vec::new();
    if let Some(level) = v
        .view
        .input(UPDATE_SEVERITY_BLOCK, UPDATE_SEVERITY_ACTION)
        .filter(|l| ctx.settings.incidents.severity(l).is_some() && *l != inc.severity.as_str())
    {
        requests.push((
            format!("{key}:severity"),
            ChangeRequest::Severity(Severity::new(level)),
        ));
    }
    requests.push((
        format!("{key}:status"),
        ChangeRequest::Status { status, message },
    ));
    let mut started = Vec::new();
    for (key, request) in requests {
        let settings = ctx.settings.clone();
        let r = ctx
            .store
            .record_change(
                NewChange {
                    incident: inc.id,
                    key,
                    by: v.user.id.clone(),
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
            .map_err(|e| Failure::new(e.context("could not record the update"), None))?;
        if let ChangeRecorded::Started(rec) = r {
            started.push(rec.seq);
        }
    }
    let app = app.clone();
    let id = inc.id;
    Ok(Handled::default().then(move || {
        for seq in started {
            app.start(id, Workflow::Change(seq));
        }
    }))
}

/// Whether any pressed button is a nudge's.
pub fn is_nudge(a: &BlockActions) -> bool {
    a.actions.iter().any(|x| {
        x.action_id == ui::lifecycle::NUDGE_UPDATE_ACTION
            || x.action_id == ui::lifecycle::NUDGE_SNOOZE_ACTION
    })
}

/// A nudge's buttons: open the update form, or snooze.
pub fn on_nudge_actions(app: &Arc<Runner>, a: BlockActions) -> Outcome {
    let received = Instant::now();
    let Some(action) = a.actions.into_iter().find(|x| {
        x.action_id == ui::lifecycle::NUDGE_UPDATE_ACTION
            || x.action_id == ui::lifecycle::NUDGE_SNOOZE_ACTION
    }) else {
        return Ok(Handled::default());
    };
    let Some(id) = action
        .value
        .as_deref()
        .and_then(|v| v.parse::<i64>().ok())
        .map(crate::incident::IncidentId)
    else {
        tracing::warn!("nudge button without an incident id");
        return Ok(Handled::default());
    };
    let app = app.clone();
    let trigger = a.trigger_id;
    let response_url = a.response_url.unwrap_or_default();
    Ok(Handled::default().then(move || {
        let r = app.clone();
        app.spawn_tracked(async move {
            let store = &r.ctx().store;
            let inc = match store.incident(id).await {
                Ok(Some(inc)) => inc,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "nudge button: store unavailable");
                    return;
                }
            };
            if action.action_id == ui::lifecycle::NUDGE_SNOOZE_ACTION {
                if let Err(e) = crate::workflow::nudges::snooze(&r, id).await {
                    tracing::error!(error = format!("{e:#}"), "could not snooze the nudges");
                }
                return;
            }
            let meta = UpdateFormMeta { incident: id }.encode();
            open_modal(&r, trigger, response_url, received, move |ctx| {
                ui::lifecycle::update_modal(&inc, &ctx.settings.incidents.severities, &meta)
            })();
        });
    }))
}

/// Whether the Home tab's Declare button was pressed.
pub fn is_home_declare(a: &BlockActions) -> bool {
    a.actions
        .iter()
        .any(|x| x.action_id == ui::lifecycle::HOME_DECLARE_ACTION)
}

/// The Home tab's Declare button: the declare form (the reply then goes by DM).
pub fn on_home_declare(app: &Arc<Runner>, a: BlockActions) -> Outcome {
    let meta = crate::slack::meta::DeclareFormMeta {
        origin: None,
        response_url: None,
    }
    .encode();
    let work = open_modal(
        app,
        a.trigger_id,
        a.response_url.unwrap_or_default(),
        Instant::now(),
        move |ctx| {
            ui::declare_modal(
                "",
                &ctx.settings.incidents.severities,
                &ctx.settings.incidents.default_severity,
                &meta,
            )
        },
    );
    Ok(Handled::default().then(work))
}

/// `/incident roles`: open the form with one user picker per role.
pub fn roles_form(
    app: &Arc<Runner>,
    c: &SlashCommand,
    inc: Incident,
    received: Instant,
) -> Outcome {
    let meta = UpdateFormMeta { incident: inc.id }.encode();
    let work = open_modal(
        app,
        c.trigger_id.clone(),
        c.response_url.clone(),
        received,
        move |ctx| ui::lifecycle::roles_modal(&inc, &ctx.settings.roles, &meta),
    );
    Ok(Handled::default().then(work))
}

/// The roles form submitted: each role whose picker changed is assigned (or cleared), once per
/// submission and role.
pub async fn on_roles_submit(app: &Arc<Runner>, v: ViewSubmission) -> Outcome {
    let ctx = app.ctx();
    let Ok(meta) = UpdateFormMeta::decode(&v.view.private_metadata) else {
        tracing::warn!("roles form without incident id");
        return Ok(Handled::default());
    };
    let Some(inc) = ctx
        .store
        .incident(meta.incident)
        .await
        .map_err(store_failed)?
    else {
        return Ok(Handled::default());
    };
    let mut started = Vec::new();
    for role in Role::ALL {
        let picked = v
            .view
            .input(
                &ui::lifecycle::role_block(role),
                ui::lifecycle::ROLE_USER_ACTION,
            )
            .map(crate::incident::UserId::from);
        if picked.as_ref() == inc.roles.holder(role) {
            continue;
        }
        let settings = ctx.settings.clone();
        let r = ctx
            .store
            .record_change(
                NewChange {
                    incident: inc.id,
                    key: format!("view:{}:{}", v.view.id, role.slug()),
                    by: v.user.id.clone(),
                    request: ChangeRequest::Role { role, user: picked },
                    at: ctx.clock.now(),
                },
                move |applied| {
                    let s = &settings.incidents;
                    ui::lifecycle::change_entry(applied, &|id: &str| s.severity(id))
                },
                |seq| StepKey::of(Workflow::Change(seq)).to_string(),
            )
            .await
            .map_err(|e| Failure::new(e.context("could not record the roles"), None))?;
        if let ChangeRecorded::Started(rec) = r {
            started.push(rec.seq);
        }
    }
    let app = app.clone();
    let id = inc.id;
    Ok(Handled::default().then(move || {
        for seq in started {
            app.start(id, Workflow::Change(seq));
        }
    }))
}
