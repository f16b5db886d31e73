//! Routes Socket Mode envelopes to handlers and produces their acks.
//!
//! Everything that must answer inside the ack is fast and local: form validation, a store lookup
//! by channel id, recording a submission's intent. Everything else (opening modals, workflows) is
//! spawned. The router never sees a websocket; the domain never sees an envelope.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::context::Ctx;
use crate::incident::naming::draw_name;
use crate::incident::{ChannelId, Declaration, IncidentId, Status, UserId};
use crate::slack::messages::{self, *};
use crate::slack::socket::{Envelope, EnvelopeHandler, HandlerFuture};
use crate::store::{NewIncident, NewResolution, Recorded, ResolveRecorded};
use crate::workflow::runner::Runner;
use crate::workflow::steps::{Background, StepKey, Workflow};

/// Slash commands incd answers (the manifest registers exactly these).
pub const DECLARE_COMMAND: &str = "/incident";
pub const RESOLVE_COMMAND: &str = "/resolve-incident";
/// Names drawn before giving up on finding an unused one in the store.
const NAME_DRAWS: usize = 200;

/// The envelope router.
pub struct Router {
    runner: Arc<Runner>,
}

impl EnvelopeHandler for Router {
    fn handle(&self, envelope: Envelope) -> HandlerFuture {
        let runner = self.runner.clone();
        Box::pin(async move { route(&runner, envelope).await })
    }
}

impl Router {
    pub fn new(runner: Arc<Runner>) -> Router {
        Router { runner }
    }
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Produce the ack payload for an envelope. Nothing here waits on the network; the store calls
/// made inside the ack use its intent lane.
async fn route(app: &Arc<Runner>, env: Envelope) -> Option<Value> {
    let span = tracing::info_span!("envelope", id = %env.envelope_id, kind = %env.kind);
    tracing::Instrument::instrument(route_in_span(app, env), span).await
}

async fn route_in_span(app: &Arc<Runner>, env: Envelope) -> Option<Value> {
    match env.kind.as_str() {
        "slash_commands" => on_command(app, &env.payload).await,
        "interactive" => match s(&env.payload, &["type"]) {
            Some("view_submission") => on_view_submission(app, &env.payload).await,
            Some("block_actions") => {
                on_block_actions(app, &env.payload).await;
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

async fn on_command(app: &Arc<Runner>, p: &Value) -> Option<Value> {
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
            open_modal(app, trigger, response_url, move |ctx| {
                messages::declare_modal(
                    &text,
                    &ctx.settings.incidents.severities,
                    &ctx.settings.incidents.default_severity,
                    &meta,
                )
            });
            None
        }
        RESOLVE_COMMAND => {
            let incident = match app
                .ctx()
                .store
                .incident_by_channel(&ChannelId::from(channel.as_str()))
                .await
            {
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
    app: &Arc<Runner>,
    trigger: String,
    response_url: String,
    view: impl FnOnce(&Ctx) -> Value + Send + 'static,
) {
    let a = app.ctx().clone();
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

async fn on_view_submission(app: &Arc<Runner>, p: &Value) -> Option<Value> {
    match s(p, &["view", "callback_id"]) {
        Some(DECLARE_CALLBACK) => on_declare_submit(app, p).await,
        Some(RESOLVE_CALLBACK) => on_resolve_submit(app, p).await,
        other => {
            tracing::info!(?other, "unknown view submitted; closing it");
            None
        }
    }
}

async fn on_declare_submit(app: &Arc<Runner>, p: &Value) -> Option<Value> {
    let ctx = app.ctx();
    let settings = &ctx.settings.incidents;
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
    let reporter = UserId::from(s(p, &["user", "id"]).unwrap_or_default());
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
        .map(ChannelId::from);
    let response_url = meta["r"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(String::from);
    let now = ctx.clock.now();
    let date = now.with_timezone(&settings.timezone).date_naive();
    for _ in 0..5 {
        let used = match ctx
            .store
            .names_used_on(&date.format("%Y%m%d").to_string())
            .await
        {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "could not read the names in use");
                return Some(storage_error_on_declare());
            }
        };
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
                origin_channel: origin.clone(),
                response_url: response_url.clone(),
                declared_at: now,
            })
            .await;
        match rec {
            Ok(Recorded::New(id)) => {
                tracing::info!(incident = %name, "incident recorded; declaring");
                app.start(id, Workflow::Declare);
                return None;
            }
            Ok(Recorded::Duplicate(id)) => {
                tracing::info!(incident_id = %id, "duplicate submission ignored");
                return None;
            }
            Ok(Recorded::NameTaken) => continue,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "could not record the incident");
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

fn storage_error_on_declare() -> Value {
    json!({"response_action": "errors", "errors": {TITLE_BLOCK: "incd could not save the incident (storage error). Nothing was created; please submit again."}})
}

async fn on_resolve_submit(app: &Arc<Runner>, p: &Value) -> Option<Value> {
    let ctx = app.ctx();
    let meta: Value = s(p, &["view", "private_metadata"])
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null);
    let Some(id) = meta["i"].as_i64().map(IncidentId) else {
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
    let recorded = ctx
        .store
        .record_resolution(NewResolution {
            incident: id,
            resolve_key: key,
            resolved_by: UserId::from(user),
            summary: summary.to_string(),
            at: ctx.clock.now(),
        })
        .await;
    match recorded {
        Ok(ResolveRecorded::Started) => {
            app.start(id, Workflow::Resolve);
            None
        }
        Ok(ResolveRecorded::Duplicate) => None,
        Ok(ResolveRecorded::AlreadyResolved) => Some(messages::resolve_form_already_resolved()),
        Ok(ResolveRecorded::NotFound) => None,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "could not record the resolution");
            Some(
                json!({"response_action": "errors", "errors": {SUMMARY_BLOCK: "incd could not save the resolution (storage error). Nothing changed; please submit again."}}),
            )
        }
    }
}

async fn on_block_actions(app: &Arc<Runner>, p: &Value) {
    for action in p["actions"].as_array().into_iter().flatten() {
        if action["action_id"] != RETRY_ACTION {
            continue;
        }
        let value = action["value"].as_str().unwrap_or_default();
        let Some((id, step)) = value.split_once(':') else {
            continue;
        };
        let Ok(id) = id.parse::<i64>().map(IncidentId) else {
            continue;
        };
        let Ok(StepKey::Background(b)) = step.parse::<StepKey>() else {
            tracing::warn!(step, "retry button for a step that cannot be retried");
            continue;
        };
        // Off the ack path: resetting the step and starting it take several writes.
        let runner = app.clone();
        let user = s(p, &["user", "id"]).map(String::from);
        app.spawn_tracked(async move { retry(&runner, id, b, user).await });
    }
}

async fn retry(runner: &Arc<Runner>, id: IncidentId, b: Background, user: Option<String>) {
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
            tracing::info!(incident_id = %id, step = b.as_str(), started, ?user, "retry requested")
        }
        Err(e) => tracing::error!(
            error = format!("{e:#}"),
            "retry button: could not restart the step"
        ),
    }
}

#[cfg(test)]
mod tests {
    //! Handlers against a context built from an in-memory store and a test clock: no network
    //! (the Slack client points at a closed port and these inputs never reach it, except the
    //! declare workflow started in the background, which is not awaited), no database file, no
    //! wall clock.
    use super::*;
    use crate::clock::Clock;
    use crate::workflow::runner::tests::test_runner;

    fn envelope(kind: &str, payload: Value) -> Envelope {
        Envelope {
            envelope_id: "E1".into(),
            kind: kind.into(),
            payload,
            accepts_response_payload: true,
            retry_attempt: None,
        }
    }

    fn declare_submission(view_id: &str, title: &str) -> Value {
        json!({
            "type": "view_submission",
            "user": {"id": "U0ALICE"},
            "view": {
                "id": view_id,
                "callback_id": DECLARE_CALLBACK,
                "private_metadata": json!({"c": "C0GENERAL", "r": ""}).to_string(),
                "state": {"values": {
                    TITLE_BLOCK: {TITLE_ACTION: {"type": "plain_text_input", "value": title}},
                    SEVERITY_BLOCK: {SEVERITY_ACTION: {"type": "static_select", "selected_option": {"value": "sev2"}}}
                }}
            }
        })
    }

    #[tokio::test]
    async fn resolve_outside_an_incident_channel_is_refused_inside_the_ack() {
        let (runner, _clock) = test_runner();
        let ack = route(
            &runner,
            envelope(
                "slash_commands",
                json!({"command": RESOLVE_COMMAND, "user_id": "U0ALICE", "channel_id": "C0GENERAL",
                       "trigger_id": "T1", "text": "", "response_url": ""}),
            ),
        )
        .await;
        assert_eq!(ack, Some(messages::resolve_outside_incident()));
    }

    #[tokio::test]
    async fn a_whitespace_title_is_refused_and_nothing_is_recorded() {
        let (runner, _clock) = test_runner();
        let ack = route(
            &runner,
            envelope("interactive", declare_submission("V1", "   ")),
        )
        .await
        .expect("field errors");
        assert_eq!(ack["response_action"], "errors");
        assert!(runner.ctx().store.unfinished().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_declaration_is_recorded_once_with_the_context_clock_and_acked_bare() {
        let (runner, clock) = test_runner();
        let ctx = runner.ctx().clone();
        let ack = route(
            &runner,
            envelope("interactive", declare_submission("V1", "Checkout down")),
        )
        .await;
        assert_eq!(ack, None);
        // The same submission delivered again (another connection, a Slack retry).
        let again = route(
            &runner,
            envelope("interactive", declare_submission("V1", "Checkout down")),
        )
        .await;
        assert_eq!(again, None);
        let recorded = ctx.store.unfinished().await.unwrap();
        assert_eq!(recorded.len(), 1, "one incident");
        let inc = &recorded[0];
        assert_eq!(inc.title, "Checkout down");
        assert_eq!(inc.reporter, UserId::from("U0ALICE"));
        assert_eq!(inc.declared_at, clock.now());
        assert!(inc.name.as_str().starts_with("20261201-"), "{}", inc.name);
    }
}
