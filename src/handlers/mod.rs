//! Handlers: one file per input, fed typed [`Inbound`] values by the dispatch here.
//!
//! Everything that must answer inside the ack is fast and local: form validation, a store lookup
//! by channel id, recording a submission's intent. Everything slow (opening modals, workflows)
//! is returned as work that the transport starts once the ack frame is written
//! ([`Handled::then`]). Handlers never see a websocket or JSON; the domain never sees an
//! envelope.
//!
//! A handler that fails returns a [`Failure`]: the one root handler ([`Dispatcher`]) logs its
//! error chain once and acks with the plain words the failure carries for the person.

pub mod close;
pub mod command;
pub mod declare;
pub mod events;
pub mod follow_up;
pub mod lifecycle;
pub mod resolve;
pub mod retry;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument;

use crate::context::Ctx;
use crate::slack::api::SlackError;
use crate::slack::inbound::{Inbound, RecentEventIds};
use crate::slack::manifest::{DECLARE_COMMAND, RESOLVE_COMMAND};
use crate::slack::socket::{Envelope, EnvelopeHandler, Handled, HandlerFuture};
use crate::slack::ui;
use crate::workflow::runner::Runner;

/// What a handler answers: the ack and the work to start after it, or a [`Failure`].
pub type Outcome = Result<Handled, Failure>;

/// A handler that could not do what was asked: the cause (logged once, with its chain) and what
/// to tell the person in the ack (`None`: a bare ack).
#[derive(Debug)]
pub struct Failure {
    pub error: anyhow::Error,
    pub tell: Option<Value>,
}

impl Failure {
    pub fn new(error: impl Into<anyhow::Error>, tell: Option<Value>) -> Failure {
        Failure {
            error: error.into(),
            tell,
        }
    }
}

/// The envelope handler the socket calls. Handlers get the runner (which carries the context
/// and starts workflows), never the composition root.
pub struct Dispatcher {
    runner: Arc<Runner>,
    events: Arc<Mutex<RecentEventIds>>,
}

impl Dispatcher {
    pub fn new(runner: Arc<Runner>) -> Dispatcher {
        Dispatcher {
            runner,
            events: Arc::new(Mutex::new(RecentEventIds::default())),
        }
    }
}

/// Type the envelope, hand it to its handler, and answer failures in one place. Store calls
/// made here (inside the ack) use the store's intent lane.
async fn dispatch(
    runner: Arc<Runner>,
    events: Arc<Mutex<RecentEventIds>>,
    env: Envelope,
) -> Handled {
    let span = tracing::info_span!("envelope", id = %env.envelope_id, kind = %env.kind);
    async move {
        let received = Instant::now();
        let inbound = match Inbound::parse(&env.kind, env.payload) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "envelope acked and ignored");
                return Handled::default();
            }
        };
        let app = &runner;
        let outcome = match inbound {
            Inbound::Command(c) => {
                tracing::info!(command = %c.command, user = %c.user_id, channel = %c.channel_id, "slash command");
                if app.is_shutting_down() {
                    return Handled::reply(Some(ui::restarting()));
                }
                if !first_delivery(app, "command", &c.trigger_id).await {
                    tracing::info!("redelivered command dropped");
                    return Handled::default();
                }
                match c.command.as_str() {
                    DECLARE_COMMAND => command::on_command(app, c, received).await,
                    RESOLVE_COMMAND => resolve::on_command(app, c, received).await,
                    other => Ok(Handled::reply(Some(ui::unknown_command(other)))),
                }
            }
            Inbound::ViewSubmission(v) => match v.view.callback_id.as_str() {
                ui::DECLARE_CALLBACK => declare::on_submit(app, v).await,
                ui::RESOLVE_CALLBACK => resolve::on_submit(app, v).await,
                ui::lifecycle::UPDATE_CALLBACK => lifecycle::on_update_submit(app, v).await,
                ui::lifecycle::ROLES_CALLBACK => lifecycle::on_roles_submit(app, v).await,
                ui::CLOSE_CALLBACK => close::on_submit(app, v).await,
                other => {
                    tracing::info!(callback_id = other, "unknown view submitted; closing it");
                    Ok(Handled::default())
                }
            },
            // A button press redelivered (to this or another replica) is dropped.
            Inbound::BlockAction(a) if !first_delivery(app, "action", &a.trigger_id).await => {
                tracing::info!("redelivered button press dropped");
                Ok(Handled::default())
            }
            Inbound::BlockAction(a) if lifecycle::is_nudge(&a) => lifecycle::on_nudge_actions(app, a),
            Inbound::BlockAction(a) if lifecycle::is_home_declare(&a) => {
                lifecycle::on_home_declare(app, a)
            }
            Inbound::BlockAction(a)
                if a
                    .actions
                    .iter()
                    .any(|x| follow_up::is_follow_up_action(&x.action_id)) =>
            {
                follow_up::on_actions(app, a).await
            }
            Inbound::BlockAction(a)
                if a.actions.iter().any(|x| x.action_id == ui::REVIEW_CLOSE_ACTION) =>
            {
                close::on_review_button(app, a, received).await
            }
            Inbound::BlockAction(a) => retry::on_actions(app, a),
            Inbound::Event(e) => {
                // This process's memory answers most redeliveries; the store answers for
                // deliveries that went to another replica.
                let first = events
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .first_time(&e.event_id)
                    && first_delivery(app, "event", &e.event_id).await;
                events::on_event(app, e, first)
            }
            Inbound::Shortcut(s) => {
                tracing::debug!(callback_id = %s.callback_id, "shortcut ignored");
                Ok(Handled::default())
            }
            Inbound::Other { kind, detail } => {
                tracing::info!(kind, ?detail, "envelope acked and ignored");
                Ok(Handled::default())
            }
        };
        outcome.unwrap_or_else(|f| {
            tracing::error!(
                error = format!("{:#}", f.error),
                "could not handle the envelope"
            );
            Handled::reply(f.tell)
        })
    }
    .instrument(span)
    .await
}

/// Whether this is the first delivery of `kind:key` that any process (or replica) took, by the
/// store's record. Slack redelivers to any open connection of the app, so process memory alone
/// cannot tell. An empty key cannot be recognised (first). When the store cannot say, the
/// delivery is handled: what it records is keyed again (submission and resolve keys), and a
/// form opened twice is harmless.
async fn first_delivery(app: &Arc<Runner>, kind: &str, key: &str) -> bool {
    if key.is_empty() {
        return true;
    }
    let ctx = app.ctx();
    match ctx
        .store
        .first_delivery(&format!("{kind}:{key}"), ctx.clock.now())
        .await
    {
        Ok(first) => first,
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "could not check for a redelivery; handling it"
            );
            true
        }
    }
}

/// An after-the-incident `/incident` subcommand: refused when it cannot be read or is typed
/// outside an incident channel, else handled by its command's handler.
async fn after_incident(
    app: &Arc<Runner>,
    c: crate::slack::inbound::SlashCommand,
    parsed: Result<crate::incident::command::IncidentCommand, String>,
    received: Instant,
) -> Outcome {
    use crate::incident::command::IncidentCommand;
    let cmd = match parsed {
        Ok(cmd) => cmd,
        Err(reason) => return Ok(Handled::reply(Some(ui::follow_up_refused(&reason)))),
    };
    let inc = match follow_up::incident_here(app, &c, &cmd).await? {
        Ok(inc) => inc,
        Err(refusal) => return Ok(refusal),
    };
    match cmd {
        IncidentCommand::FollowUp { .. }
        | IncidentCommand::FollowUps
        | IncidentCommand::Done(_)
        | IncidentCommand::WontDo(_) => follow_up::on_command(app, &c, inc, cmd).await,
        IncidentCommand::Close => close::on_close(app, c, inc, received),
        IncidentCommand::Reopen => close::on_reopen(app, c, inc).await,
        other => Ok(Handled::reply(Some(ui::follow_up_refused(&format!(
            "`/incident {}` is not available yet.",
            other.name()
        ))))),
    }
}

impl EnvelopeHandler for Dispatcher {
    fn handle(&self, envelope: Envelope) -> HandlerFuture {
        Box::pin(dispatch(self.runner.clone(), self.events.clone(), envelope))
    }
}

/// A trigger id opens a modal for this long after the command.
pub const TRIGGER_LIFE: Duration = Duration::from_secs(3);
/// Most `views.open` attempts within the trigger's life; none starts after the deadline. Under a
/// Slack hiccup three failures in a row happen (the chaos run lost forms with three attempts).
pub const OPEN_VIEW_ATTEMPTS: u32 = 6;
/// Pause between attempts (plus jitter up to a quarter: 300 to 376 ms).
pub const OPEN_VIEW_SPACING: Duration = Duration::from_millis(300);
/// No attempt starts later than this before the trigger expires: the request needs time too.
pub const OPEN_VIEW_MARGIN: Duration = Duration::from_millis(500);

/// Work that opens a modal: `views.open` right away (the trigger expires [`TRIGGER_LIFE`] after
/// the command arrived at `received`), again on a transient failure while the trigger lives;
/// when it cannot, the person is told ephemerally. The view is rendered in the work, off the
/// ack path.
pub(crate) fn open_modal(
    runner: &Arc<Runner>,
    trigger: String,
    response_url: String,
    received: Instant,
    view: impl FnOnce(&Ctx) -> Value + Send + 'static,
) -> impl FnOnce() + Send + 'static {
    let r = runner.clone();
    move || {
        let app = r.ctx().clone();
        r.spawn_tracked(async move {
            let view = view(&app);
            let deadline = received + TRIGGER_LIFE - OPEN_VIEW_MARGIN;
            let r = open_view_retried(OPEN_VIEW_ATTEMPTS, OPEN_VIEW_SPACING, deadline, || {
                app.slack.open_view(&trigger, view.clone())
            })
            .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not open the modal");
                let reason = match e.code() {
                    Some("expired_trigger_id") => ui::trigger_expired_reason(),
                    _ => e.human(),
                };
                if let Err(e) = app
                    .slack
                    .respond(&response_url, &ui::modal_failed(&reason))
                    .await
                {
                    tracing::warn!(error = %e, "could not tell the person either");
                }
            }
        });
    }
}

/// `views.open` through [`retry_transient`]. A transient failure may hide a form that did open
/// (Slack performed the call, the answer was lost), and a trigger opens one form only: a retry
/// answered `exchanged_trigger_id` after such a failure means the form is open in front of the
/// person, so it counts as opened and nobody is told it failed.
pub(crate) async fn open_view_retried<F, Fut>(
    attempts: u32,
    spacing: Duration,
    deadline: Instant,
    mut open: F,
) -> Result<(), SlackError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), SlackError>>,
{
    let uncertain = std::sync::atomic::AtomicBool::new(false);
    retry_transient(attempts, spacing, deadline, || {
        let call = open();
        let uncertain = &uncertain;
        async move {
            let r = call.await;
            match &r {
                Err(e)
                    if e.is_code("exchanged_trigger_id")
                        && uncertain.load(std::sync::atomic::Ordering::SeqCst) =>
                {
                    tracing::info!("the form opened on an attempt whose answer was lost");
                    return Ok(());
                }
                Err(e) if e.is_transient() => {
                    uncertain.store(true, std::sync::atomic::Ordering::SeqCst)
                }
                _ => {}
            }
            r
        }
    })
    .await
}

/// Call `f` up to `attempts` times while it fails transiently, `spacing` (jittered) apart, never
/// starting an attempt after `deadline`. Returns the last result.
pub(crate) async fn retry_transient<T, F, Fut>(
    attempts: u32,
    spacing: Duration,
    deadline: Instant,
    mut f: F,
) -> Result<T, SlackError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SlackError>>,
{
    let mut n = 1;
    loop {
        match f().await {
            Err(e) if e.is_transient() && n < attempts => {
                let wait = crate::slack::api::jitter(spacing);
                if Instant::now() + wait > deadline {
                    return Err(e);
                }
                tracing::info!(error = %e, attempt = n, "Slack hiccuped; trying again");
                tokio::time::sleep(wait).await;
                n += 1;
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::web::Method;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transient() -> SlackError {
        SlackError::Transport {
            method: Method::ViewsOpen.name().into(),
            detail: "HTTP 503".into(),
        }
    }

    fn permanent() -> SlackError {
        SlackError::Api {
            method: Method::ViewsOpen.name().into(),
            code: "expired_trigger_id".into(),
            needed: None,
            response: Value::Null,
        }
    }

    async fn run(
        results: Vec<Result<u32, SlackError>>,
        deadline: Instant,
    ) -> (Result<u32, SlackError>, u32) {
        let calls = AtomicU32::new(0);
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            retry_transient(3, Duration::from_millis(10), deadline, || {
                let i = calls.fetch_add(1, Ordering::SeqCst) as usize;
                let r = results[i.min(results.len() - 1)].clone();
                async move { r }
            }),
        )
        .await
        .expect("retries end in time");
        (r, calls.load(Ordering::SeqCst))
    }

    fn code(c: &str) -> SlackError {
        SlackError::Api {
            method: Method::ViewsOpen.name().into(),
            code: c.into(),
            needed: None,
            response: Value::Null,
        }
    }

    async fn open(results: Vec<Result<(), SlackError>>) -> (Result<(), SlackError>, u32) {
        let calls = AtomicU32::new(0);
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            open_view_retried(3, Duration::from_millis(10), later(), || {
                let i = calls.fetch_add(1, Ordering::SeqCst) as usize;
                let r = results[i.min(results.len() - 1)].clone();
                async move { r }
            }),
        )
        .await
        .expect("retries end in time");
        (r, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn exchanged_trigger_id_after_a_lost_answer_means_the_form_is_open() {
        let (r, calls) = open(vec![Err(transient()), Err(code("exchanged_trigger_id"))]).await;
        assert!(r.is_ok(), "the form is open: {r:?}");
        assert_eq!(calls, 2);
    }

    #[tokio::test]
    async fn exchanged_trigger_id_on_a_first_attempt_is_still_an_error() {
        let (r, calls) = open(vec![Err(code("exchanged_trigger_id"))]).await;
        assert!(r.unwrap_err().is_code("exchanged_trigger_id"));
        assert_eq!(calls, 1);
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(3)
    }

    mod on_a_context_of_fakes {
        //! Handlers against a context built from an in-memory store and a test clock: no network
        //! (the Slack client points at a closed port and these inputs never reach it; the work
        //! after the ack is not run), no database file, no wall clock.
        use super::super::*;
        use crate::clock::Clock;
        use crate::incident::UserId;
        use crate::workflow::runner::tests::test_runner;
        use serde_json::json;

        async fn handle(runner: &Arc<Runner>, kind: &str, payload: Value) -> Handled {
            let env = Envelope {
                envelope_id: "E1".into(),
                kind: kind.into(),
                payload,
                accepts_response_payload: true,
                retry_attempt: None,
            };
            dispatch(
                runner.clone(),
                Arc::new(Mutex::new(RecentEventIds::default())),
                env,
            )
            .await
        }

        fn declare_submission(view_id: &str, title: &str) -> Value {
            json!({
                "type": "view_submission",
                "team": {"id": "T0"},
                "user": {"id": "U0ALICE"},
                "view": {
                    "id": view_id,
                    "hash": "h1",
                    "callback_id": ui::DECLARE_CALLBACK,
                    "private_metadata": json!({"c": "C0GENERAL", "r": ""}).to_string(),
                    "state": {"values": {
                        ui::TITLE_BLOCK: {ui::TITLE_ACTION: {"type": "plain_text_input", "value": title}},
                        ui::SEVERITY_BLOCK: {ui::SEVERITY_ACTION: {"type": "static_select", "selected_option": {"value": "sev2"}}}
                    }}
                }
            })
        }

        #[tokio::test]
        async fn resolve_outside_an_incident_channel_is_refused_inside_the_ack() {
            let (runner, _clock) = test_runner();
            let h = handle(
                &runner,
                "slash_commands",
                json!({"command": RESOLVE_COMMAND, "user_id": "U0ALICE", "channel_id": "C0GENERAL",
                       "trigger_id": "T1", "text": "", "response_url": "https://hooks.slack.test/r",
                       "team_id": "T0", "user_name": "alice", "channel_name": "general",
                       "api_app_id": "A0"}),
            )
            .await;
            assert_eq!(h.ack, Some(ui::resolve_outside_incident()));
            assert!(h.then.is_none(), "no modal opens");
        }

        #[tokio::test]
        async fn a_whitespace_title_is_refused_and_nothing_is_recorded() {
            let (runner, _clock) = test_runner();
            let h = handle(&runner, "interactive", declare_submission("V1", "   ")).await;
            assert_eq!(h.ack.expect("field errors")["response_action"], "errors");
            assert!(h.then.is_none());
            assert!(runner.ctx().store.unfinished().await.unwrap().is_empty());
        }

        #[tokio::test]
        async fn a_declaration_is_recorded_once_with_the_context_clock_before_the_ack() {
            let (runner, clock) = test_runner();
            let ctx = runner.ctx().clone();
            let h = handle(
                &runner,
                "interactive",
                declare_submission("V1", "Checkout down"),
            )
            .await;
            assert_eq!(h.ack, None);
            assert!(h.then.is_some(), "the declare starts after the ack");
            // The same submission delivered again (another connection, a Slack retry).
            let again = handle(
                &runner,
                "interactive",
                declare_submission("V1", "Checkout down"),
            )
            .await;
            assert!(again.ack.is_none() && again.then.is_none());
            let recorded = ctx.store.unfinished().await.unwrap();
            assert_eq!(recorded.len(), 1, "one incident");
            let inc = &recorded[0];
            assert_eq!(inc.title, "Checkout down");
            assert_eq!(inc.reporter, UserId::from("U0ALICE"));
            assert_eq!(inc.declared_at, clock.now());
            assert!(inc.name.as_str().starts_with("20261201-"), "{}", inc.name);
        }
    }

    #[tokio::test]
    async fn a_form_opens_after_two_transient_failures() {
        let (r, calls) = run(vec![Err(transient()), Err(transient()), Ok(1)], later()).await;
        assert_eq!(r.unwrap(), 1);
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn three_transient_failures_give_up_with_the_last_error() {
        let (r, calls) = run(vec![Err(transient())], later()).await;
        assert!(r.unwrap_err().is_transient());
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_not_repeated() {
        let (r, calls) = run(vec![Err(permanent()), Ok(1)], later()).await;
        assert!(r.unwrap_err().is_code("expired_trigger_id"));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn no_attempt_starts_after_the_trigger_deadline() {
        let (r, calls) = run(vec![Err(transient()), Ok(1)], Instant::now()).await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
