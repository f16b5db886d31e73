//! Routes Socket Mode envelopes to handlers and produces their acks.
//!
//! Everything that must answer inside the ack is fast and local: form validation, a store lookup
//! by channel id, recording a submission's intent. Everything else (opening modals, workflows) is
//! spawned. The router never sees a websocket; the domain never sees an envelope.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Value};

use crate::app::App;
use crate::incident::naming::draw_name;
use crate::incident::{Declaration, Status};
use crate::slack::manifest::{DECLARE_COMMAND, RESOLVE_COMMAND};
use crate::slack::messages::{self, *};
use crate::slack::socket::{Envelope, EnvelopeHandler, HandlerFuture};
use crate::store::{NewIncident, Recorded, ResolveRecorded};

/// Names drawn before giving up on finding an unused one in the store.
const NAME_DRAWS: usize = 200;

/// The envelope router.
pub struct Router {
    app: Arc<App>,
}

impl EnvelopeHandler for Router {
    fn handle(&self, envelope: Envelope) -> HandlerFuture {
        let app = self.app.clone();
        Box::pin(async move { route(&app, envelope) })
    }
}

impl Router {
    pub fn new(app: Arc<App>) -> Router {
        Router { app }
    }
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Produce the ack payload for an envelope (synchronously: nothing here waits on the network).
fn route(app: &Arc<App>, env: Envelope) -> Option<Value> {
    let span = tracing::info_span!("envelope", id = %env.envelope_id, kind = %env.kind);
    let _e = span.enter();
    match env.kind.as_str() {
        "slash_commands" => on_command(app, &env.payload),
        "interactive" => match s(&env.payload, &["type"]) {
            Some("view_submission") => on_view_submission(app, &env.payload),
            Some("block_actions") => {
                on_block_actions(app, &env.payload);
                None
            }
            other => {
                tracing::debug!(?other, "interaction ignored");
                None
            }
        },
        "events_api" => {
            tracing::debug!(event = ?s(&env.payload, &["event", "type"]), "event ignored");
            None
        }
        other => {
            tracing::info!(kind = other, "unknown envelope type acked and ignored");
            None
        }
    }
}

fn on_command(app: &Arc<App>, p: &Value) -> Option<Value> {
    let command = s(p, &["command"]).unwrap_or_default();
    let text = s(p, &["text"]).unwrap_or_default().to_string();
    let user = s(p, &["user_id"]).unwrap_or_default().to_string();
    let channel = s(p, &["channel_id"]).unwrap_or_default().to_string();
    let trigger = s(p, &["trigger_id"]).unwrap_or_default().to_string();
    let response_url = s(p, &["response_url"]).unwrap_or_default().to_string();
    tracing::info!(command, user = %user, channel = %channel, "slash command");
    if app.is_shutting_down() {
        return Some(
            json!({"response_type": "ephemeral", "text": "incd is restarting; please run the command again in a few seconds."}),
        );
    }
    match command {
        DECLARE_COMMAND => {
            let meta = json!({"c": channel, "r": response_url}).to_string();
            open_modal(app, trigger, response_url, move |app| {
                messages::declare_modal(
                    &text,
                    &app.settings.incidents.severities,
                    &app.settings.incidents.default_severity,
                    &meta,
                )
            });
            None
        }
        RESOLVE_COMMAND => {
            let incident = match app.store.incident_by_channel(&channel) {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!(error = %e, "store unavailable");
                    return Some(messages::internal_error());
                }
            };
            match incident {
                None => Some(messages::resolve_outside_incident()),
                Some(inc) if !inc.status.can_resolve() => {
                    Some(messages::resolve_already_resolved(&inc))
                }
                Some(inc) => {
                    let meta = json!({"i": inc.id}).to_string();
                    open_modal(app, trigger, response_url, move |_| {
                        messages::resolve_modal(&inc, &text, &meta)
                    });
                    None
                }
            }
        }
        other => Some(messages::unknown_command(other)),
    }
}

/// `views.open` right away (the trigger expires 3 s after the command); on failure tell the
/// person ephemerally.
/// The view is rendered in the spawned task, off the ack path.
fn open_modal(
    app: &Arc<App>,
    trigger: String,
    response_url: String,
    view: impl FnOnce(&App) -> Value + Send + 'static,
) {
    let a = app.clone();
    app.spawn_tracked(async move {
        let view = view(&a);
        let r = a
            .slack
            .call("views.open", json!({"trigger_id": trigger, "view": view}))
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not open the modal");
            let reason = match e.code() {
                Some("expired_trigger_id") => "Slack's 3-second window passed".to_string(),
                _ => e.human(),
            };
            if let Err(e) = a
                .slack
                .respond(&response_url, &messages::modal_failed(&reason))
                .await
            {
                tracing::warn!(error = %e, "could not tell the person either");
            }
        }
    });
}

fn values(p: &Value) -> &Value {
    &p["view"]["state"]["values"]
}

fn input(p: &Value, block: &str, action: &str) -> Option<String> {
    let v = &values(p)[block][action];
    v.get("value")
        .and_then(Value::as_str)
        .or_else(|| s(v, &["selected_option", "value"]))
        .or_else(|| v.get("selected_user").and_then(Value::as_str))
        .map(String::from)
}

fn on_view_submission(app: &Arc<App>, p: &Value) -> Option<Value> {
    match s(p, &["view", "callback_id"]) {
        Some(DECLARE_CALLBACK) => on_declare_submit(app, p),
        Some(RESOLVE_CALLBACK) => on_resolve_submit(app, p),
        other => {
            tracing::info!(?other, "unknown view submitted; closing it");
            None
        }
    }
}

fn on_declare_submit(app: &Arc<App>, p: &Value) -> Option<Value> {
    let settings = &app.settings.incidents;
    let decl = match Declaration::validate(
        input(p, TITLE_BLOCK, TITLE_ACTION).as_deref(),
        input(p, DESCRIPTION_BLOCK, DESCRIPTION_ACTION).as_deref(),
        input(p, SEVERITY_BLOCK, SEVERITY_ACTION).as_deref(),
        input(p, COMMANDER_BLOCK, COMMANDER_ACTION).as_deref(),
        |id| settings.severity(id).is_some(),
        &settings.default_severity,
    ) {
        Ok(d) => d,
        Err(errors) => return Some(messages::declare_form_errors(&errors)),
    };
    let reporter = s(p, &["user", "id"]).unwrap_or_default().to_string();
    let view_id = s(p, &["view", "id"]).unwrap_or_default();
    // The view id is stable across redeliveries of the same submission.
    let submission_key = if view_id.is_empty() {
        format!("{reporter}:{}", s(p, &["view", "hash"]).unwrap_or_default())
    } else {
        view_id.to_string()
    };
    let meta: Value = s(p, &["view", "private_metadata"])
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null);
    let origin = meta["c"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(String::from);
    let response_url = meta["r"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(String::from);
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
            reporter: &reporter,
            commander: decl.commander.as_deref(),
            origin_channel: origin.as_deref(),
            response_url: response_url.as_deref(),
            declared_at: now,
        });
        match rec {
            Ok(Recorded::New(id)) => {
                tracing::info!(incident = %name, "incident recorded; declaring");
                app.spawn_declare(id);
                return None;
            }
            Ok(Recorded::Duplicate(id)) => {
                tracing::info!(incident_id = id, "duplicate submission ignored");
                return None;
            }
            Ok(Recorded::NameTaken) => continue,
            Err(e) => {
                tracing::error!(error = %e, "could not record the incident");
                return Some(
                    json!({"response_action": "errors", "errors": {TITLE_BLOCK: "incd could not save the incident (storage error). Nothing was created; please submit again."}}),
                );
            }
        }
    }
    Some(
        json!({"response_action": "errors", "errors": {TITLE_BLOCK: "incd found no unused incident name for today. Add words to the word lists, then submit again."}}),
    )
}

fn on_resolve_submit(app: &Arc<App>, p: &Value) -> Option<Value> {
    let meta: Value = s(p, &["view", "private_metadata"])
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null);
    let Some(id) = meta["i"].as_i64() else {
        tracing::warn!("resolve form without incident id");
        return None;
    };
    let user = s(p, &["user", "id"]).unwrap_or_default();
    let summary = input(p, SUMMARY_BLOCK, SUMMARY_ACTION).unwrap_or_default();
    let summary = summary.trim();
    let key = s(p, &["view", "id"]).unwrap_or_default();
    let key = if key.is_empty() {
        format!("{user}:{id}")
    } else {
        key.to_string()
    };
    match app
        .store
        .record_resolution(id, &key, user, summary, Utc::now())
    {
        Ok(ResolveRecorded::Started) => {
            app.spawn_resolve(id);
            None
        }
        Ok(ResolveRecorded::Duplicate) => None,
        Ok(ResolveRecorded::AlreadyResolved) => Some(messages::resolve_form_already_resolved()),
        Ok(ResolveRecorded::NotFound) => None,
        Err(e) => {
            tracing::error!(error = %e, "could not record the resolution");
            Some(
                json!({"response_action": "errors", "errors": {SUMMARY_BLOCK: "incd could not save the resolution (storage error). Nothing changed; please submit again."}}),
            )
        }
    }
}

fn on_block_actions(app: &Arc<App>, p: &Value) {
    for action in p["actions"].as_array().into_iter().flatten() {
        if action["action_id"] != RETRY_ACTION {
            continue;
        }
        let value = action["value"].as_str().unwrap_or_default();
        let Some((id, step)) = value.split_once(':') else {
            continue;
        };
        let Ok(id) = id.parse::<i64>() else { continue };
        let status = app.store.incident(id).ok().flatten().map(|i| i.status);
        if status.is_none() || status == Some(Status::Failed) {
            continue;
        }
        let started = crate::workflow::integrations::retry_now(app, id, step);
        tracing::info!(incident_id = id, step, started, user = ?s(p, &["user", "id"]), "retry requested");
    }
}
