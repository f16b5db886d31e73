//! Socket Mode envelopes as typed values: the edge where Slack's JSON stops.
//!
//! [`Inbound::parse`] turns an envelope's `type` and `payload` into one [`Inbound`] value; the
//! handlers match on it and never index JSON. Fields Slack may leave out are `Option`s or empty
//! (a slash command typed without text has `text: ""`), so a surprising payload degrades into
//! empty fields the handlers already check, never into a panic.
//!
//! Events API deliveries carry an `event_id` that stays the same when Slack redelivers the event
//! in a new envelope; [`RecentEventIds`] remembers the latest ones so an event is handled once.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Deserialize;
use serde_json::Value;

use crate::incident::ids::{ChannelId, MessageTs, UserId};

/// One envelope, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// `slash_commands`.
    Command(SlashCommand),
    /// `interactive` with `type: view_submission`.
    ViewSubmission(ViewSubmission),
    /// `interactive` with `type: block_actions`.
    BlockAction(BlockActions),
    /// `events_api` with `type: event_callback`.
    Event(EventCallback),
    /// `interactive` with `type: shortcut` (global) or `message_action` (on a message).
    Shortcut(Shortcut),
    /// Anything else: acked and ignored. `kind` is the envelope type, `detail` the payload type.
    Other {
        kind: String,
        detail: Option<String>,
    },
}

/// A payload that does not have the shape its type promises.
#[derive(Debug, thiserror::Error)]
#[error("malformed {kind} payload: {source}")]
pub struct InboundError {
    kind: String,
    #[source]
    source: serde_json::Error,
}

impl Inbound {
    /// Type an envelope of type `kind` (`slash_commands`, `interactive`, `events_api`, ...).
    pub fn parse(kind: &str, payload: Value) -> Result<Inbound, InboundError> {
        let err = |kind: &str| {
            let kind = kind.to_string();
            move |source| InboundError { kind, source }
        };
        let payload_type = payload
            .get("type")
            .and_then(Value::as_str)
            .map(String::from);
        Ok(match (kind, payload_type.as_deref()) {
            ("slash_commands", _) => {
                Inbound::Command(serde_json::from_value(payload).map_err(err(kind))?)
            }
            ("interactive", Some("view_submission")) => {
                Inbound::ViewSubmission(serde_json::from_value(payload).map_err(err(kind))?)
            }
            ("interactive", Some("block_actions")) => {
                Inbound::BlockAction(serde_json::from_value(payload).map_err(err(kind))?)
            }
            ("interactive", Some("shortcut" | "message_action")) => {
                Inbound::Shortcut(serde_json::from_value(payload).map_err(err(kind))?)
            }
            ("events_api", Some("event_callback")) => {
                Inbound::Event(EventCallback::parse(payload).map_err(err(kind))?)
            }
            _ => Inbound::Other {
                kind: kind.to_string(),
                detail: payload_type,
            },
        })
    }
}

/// A slash command invocation.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct SlashCommand {
    /// `/incident`.
    pub command: String,
    /// What was typed after the command (may be empty).
    pub text: String,
    pub user_id: UserId,
    pub channel_id: ChannelId,
    /// Opens a modal within 3 s of the command.
    pub trigger_id: String,
    /// Ephemeral replies for 30 minutes, 5 uses.
    pub response_url: String,
}

/// `{ "id": "U…", ... }` as Slack sends a user in interaction payloads.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct UserRef {
    pub id: UserId,
}

/// A modal submitted.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ViewSubmission {
    pub user: UserRef,
    pub view: SubmittedView,
}

/// The submitted view.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct SubmittedView {
    /// Stable across redeliveries of one submission.
    pub id: String,
    pub hash: String,
    pub callback_id: String,
    pub private_metadata: String,
    pub state: ViewState,
}

/// `view.state`: `values[block_id][action_id]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ViewState {
    pub values: HashMap<String, HashMap<String, InputValue>>,
}

/// One input's state: a text value, a selected option or a selected user, by element type.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct InputValue {
    pub value: Option<String>,
    pub selected_option: Option<SelectedOption>,
    pub selected_user: Option<String>,
    /// A date picker's `YYYY-MM-DD`.
    pub selected_date: Option<String>,
}

/// A static select's chosen option.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct SelectedOption {
    pub value: String,
}

impl SubmittedView {
    /// What the person entered in input `action` of block `block`: the text, the option's value
    /// or the user's id; `None` when left empty.
    pub fn input(&self, block: &str, action: &str) -> Option<String> {
        let v = self.state.values.get(block)?.get(action)?;
        v.value
            .clone()
            .or_else(|| v.selected_option.as_ref().map(|o| o.value.clone()))
            .or_else(|| v.selected_user.clone())
            .or_else(|| v.selected_date.clone())
    }
}

/// Buttons (or other block elements) pressed.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct BlockActions {
    pub user: UserRef,
    pub channel: Option<ChannelRef>,
    /// The message the buttons are on (absent for buttons in a modal).
    pub message: Option<ContainerMessage>,
    pub actions: Vec<Action>,
    pub trigger_id: String,
    pub response_url: Option<String>,
}

/// `{ "id": "C…", "name": "…" }`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ChannelRef {
    pub id: ChannelId,
}

/// The message holding the pressed element.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ContainerMessage {
    pub ts: MessageTs,
}

/// One pressed element.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Action {
    pub action_id: String,
    pub block_id: String,
    /// A button's `value` (absent when the button has none).
    pub value: Option<String>,
}

/// A global or message shortcut.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Shortcut {
    pub callback_id: String,
    pub trigger_id: String,
    pub user: UserRef,
}

/// An Events API `event_callback`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventCallback {
    /// Globally unique; the same in a redelivery.
    pub event_id: String,
    /// When Slack dispatched it (epoch seconds).
    pub event_time: i64,
    pub event: Event,
}

#[derive(Deserialize)]
struct RawCallback {
    #[serde(default)]
    event_id: String,
    #[serde(default)]
    event_time: i64,
    event: Value,
}

impl EventCallback {
    fn parse(payload: Value) -> Result<EventCallback, serde_json::Error> {
        let raw: RawCallback = serde_json::from_value(payload)?;
        Ok(EventCallback {
            event_id: raw.event_id,
            event_time: raw.event_time,
            event: Event::parse(raw.event)?,
        })
    }
}

/// The events incd understands; everything else is [`Event::Unknown`] with its type.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    ReactionAdded(Reaction),
    ReactionRemoved(Reaction),
    PinAdded(Pin),
    PinRemoved(Pin),
    AppHomeOpened(AppHomeOpened),
    Message(MessageEvent),
    Unknown(String),
}

impl Event {
    fn parse(event: Value) -> Result<Event, serde_json::Error> {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(match kind.as_str() {
            "reaction_added" => Event::ReactionAdded(serde_json::from_value(event)?),
            "reaction_removed" => Event::ReactionRemoved(serde_json::from_value(event)?),
            "pin_added" => Event::PinAdded(serde_json::from_value(event)?),
            "pin_removed" => Event::PinRemoved(serde_json::from_value(event)?),
            "app_home_opened" => Event::AppHomeOpened(serde_json::from_value(event)?),
            "message" => Event::Message(serde_json::from_value(event)?),
            _ => Event::Unknown(kind),
        })
    }

    /// The event's `type`, for logs.
    pub fn kind(&self) -> &str {
        match self {
            Event::ReactionAdded(_) => "reaction_added",
            Event::ReactionRemoved(_) => "reaction_removed",
            Event::PinAdded(_) => "pin_added",
            Event::PinRemoved(_) => "pin_removed",
            Event::AppHomeOpened(_) => "app_home_opened",
            Event::Message(_) => "message",
            Event::Unknown(k) => k,
        }
    }
}

/// `reaction_added` / `reaction_removed`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Reaction {
    /// Who reacted.
    pub user: UserId,
    /// The emoji name without colons (`pushpin`).
    pub reaction: String,
    pub item: ReactionItem,
    /// The reacted-to message's author; absent for messages from webhooks.
    pub item_user: Option<UserId>,
}

/// The reacted-to message.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ReactionItem {
    pub channel: ChannelId,
    pub ts: MessageTs,
}

/// `pin_added` / `pin_removed`: the pinned message comes inline.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Pin {
    pub channel_id: ChannelId,
    /// Who pinned (or unpinned).
    pub user: UserId,
    pub item: PinItem,
}

/// The pinned item.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct PinItem {
    pub message: Option<PinnedMessage>,
}

/// The pinned message.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct PinnedMessage {
    pub ts: MessageTs,
    pub text: String,
    /// Absent for bot messages.
    pub user: Option<UserId>,
    /// Set when the message is a reply in a thread.
    pub thread_ts: Option<MessageTs>,
    /// The message's link, when Slack includes it.
    pub permalink: Option<String>,
}

/// `app_home_opened`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct AppHomeOpened {
    pub user: UserId,
    /// `home` or `messages`.
    pub tab: String,
}

/// `message` (only what incd may ever need).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct MessageEvent {
    pub channel: ChannelId,
    pub user: Option<UserId>,
    pub ts: MessageTs,
    pub subtype: Option<String>,
}

/// Event ids remembered to drop redeliveries (about a day's events for a busy workspace; a
/// redelivery comes within minutes).
pub const RECENT_EVENT_IDS: usize = 4096;

/// The most recent [`RECENT_EVENT_IDS`] event ids; the oldest is forgotten first.
#[derive(Debug, Default)]
pub struct RecentEventIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentEventIds {
    /// True when `id` was not seen yet (and remembers it). An empty id is always new: there is
    /// nothing to recognise it by.
    pub fn first_time(&mut self, id: &str) -> bool {
        if id.is_empty() {
            return true;
        }
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= RECENT_EVENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wrap(event: Value) -> Value {
        // The wrapper as the lifecycle research documents it (Socket Mode, reaction_added).
        json!({
            "token": "XXYYZZ", "team_id": "T123ABC456", "api_app_id": "A123ABC456",
            "event": event,
            "type": "event_callback",
            "event_id": "Ev123ABC456", "event_time": 1360782804,
            "authorizations": [{"enterprise_id": null, "team_id": "T123ABC456",
                "user_id": "U0BOTUSER", "is_bot": true, "is_enterprise_install": false}],
            "is_ext_shared_channel": false, "event_context": "4-eyJldCI6"
        })
    }

    fn event(e: Value) -> EventCallback {
        match Inbound::parse("events_api", wrap(e)).unwrap() {
            Inbound::Event(ev) => ev,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn a_slash_command_becomes_a_command_with_every_field() {
        let p = json!({
            "token": "x", "team_id": "T1", "team_domain": "acme", "channel_id": "C0GENERAL",
            "channel_name": "general", "user_id": "U1", "user_name": "ana",
            "command": "/incident", "text": "db down", "api_app_id": "A1",
            "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/T1/1/abc",
            "trigger_id": "13345224609.738474920.8088930838d88f008e0"
        });
        let Inbound::Command(c) = Inbound::parse("slash_commands", p).unwrap() else {
            panic!()
        };
        assert_eq!(c.command, "/incident");
        assert_eq!(c.text, "db down");
        assert_eq!(c.user_id.as_str(), "U1");
        assert_eq!(c.channel_id.as_str(), "C0GENERAL");
        assert_eq!(c.trigger_id, "13345224609.738474920.8088930838d88f008e0");
        assert_eq!(c.response_url, "https://hooks.slack.com/commands/T1/1/abc");
    }

    #[test]
    fn a_command_without_text_has_empty_text() {
        let p = json!({"command": "/resolve-incident", "user_id": "U1", "channel_id": "C1"});
        let Inbound::Command(c) = Inbound::parse("slash_commands", p).unwrap() else {
            panic!()
        };
        assert_eq!(c.text, "");
        assert_eq!(c.trigger_id, "");
    }

    #[test]
    fn a_view_submission_reads_text_select_and_user_inputs() {
        let p = json!({
            "type": "view_submission",
            "team": {"id": "T1", "domain": "acme"},
            "user": {"id": "U1", "username": "ana", "name": "ana", "team_id": "T1"},
            "api_app_id": "A1", "token": "x", "trigger_id": "1.2.3",
            "view": {
                "id": "V123", "hash": "156772938.1827394", "callback_id": "incd_declare",
                "private_metadata": "{\"c\":\"C0\",\"r\":\"\"}",
                "type": "modal",
                "state": {"values": {
                    "title_block": {"title": {"type": "plain_text_input", "value": "DB down"}},
                    "description_block": {"description": {"type": "plain_text_input", "value": null}},
                    "severity_block": {"severity": {"type": "static_select",
                        "selected_option": {"text": {"type": "plain_text", "text": "SEV2"}, "value": "sev2"}}},
                    "commander_block": {"commander": {"type": "users_select", "selected_user": "U2"}}
                }}
            },
            "response_urls": [], "is_enterprise_install": false, "enterprise": null
        });
        let Inbound::ViewSubmission(v) = Inbound::parse("interactive", p).unwrap() else {
            panic!()
        };
        assert_eq!(v.user.id.as_str(), "U1");
        assert_eq!(v.view.id, "V123");
        assert_eq!(v.view.callback_id, "incd_declare");
        assert_eq!(v.view.private_metadata, "{\"c\":\"C0\",\"r\":\"\"}");
        assert_eq!(
            v.view.input("title_block", "title").as_deref(),
            Some("DB down")
        );
        assert_eq!(v.view.input("description_block", "description"), None);
        assert_eq!(
            v.view.input("severity_block", "severity").as_deref(),
            Some("sev2")
        );
        assert_eq!(
            v.view.input("commander_block", "commander").as_deref(),
            Some("U2")
        );
        assert_eq!(v.view.input("nope", "nope"), None);
    }

    #[test]
    fn a_button_press_carries_action_user_channel_and_message() {
        let p = json!({
            "type": "block_actions",
            "user": {"id": "U1", "username": "ana", "name": "ana", "team_id": "T1"},
            "api_app_id": "A1", "token": "x",
            "container": {"type": "message", "message_ts": "1700000000.000100",
                "channel_id": "C9", "is_ephemeral": false},
            "trigger_id": "1.2.3", "team": {"id": "T1"},
            "channel": {"id": "C9", "name": "incd-x"},
            "message": {"type": "message", "ts": "1700000000.000100", "text": "x"},
            "state": {"values": {}},
            "response_url": "https://hooks.slack.com/actions/T1/1/abc",
            "actions": [{"action_id": "incd_retry", "block_id": "b1",
                "text": {"type": "plain_text", "text": "Retry now"},
                "value": "7:page", "type": "button", "action_ts": "1700000001.000"}]
        });
        let Inbound::BlockAction(a) = Inbound::parse("interactive", p).unwrap() else {
            panic!()
        };
        assert_eq!(a.user.id.as_str(), "U1");
        assert_eq!(a.channel.unwrap().id.as_str(), "C9");
        assert_eq!(a.message.unwrap().ts.as_str(), "1700000000.000100");
        assert_eq!(a.actions.len(), 1);
        assert_eq!(a.actions[0].action_id, "incd_retry");
        assert_eq!(a.actions[0].value.as_deref(), Some("7:page"));
    }

    #[test]
    fn a_button_in_a_modal_has_no_channel_or_message() {
        let p = json!({"type": "block_actions", "user": {"id": "U1"},
            "container": {"type": "view", "view_id": "V1"},
            "actions": [{"action_id": "x", "block_id": "b", "type": "button"}]});
        let Inbound::BlockAction(a) = Inbound::parse("interactive", p).unwrap() else {
            panic!()
        };
        assert!(a.channel.is_none() && a.message.is_none());
        assert_eq!(a.actions[0].value, None);
    }

    #[test]
    fn a_reaction_added_event_is_typed_with_its_wrapper() {
        let ev = event(json!({"type": "reaction_added", "user": "U123ABC456",
            "reaction": "pushpin", "item_user": "U222222222",
            "item": {"type": "message", "channel": "C123ABC456", "ts": "1360782400.498405",
                "channel_type": "channel"},
            "event_ts": "1360782804.083113"}));
        assert_eq!(ev.event_id, "Ev123ABC456");
        assert_eq!(ev.event_time, 1360782804);
        let Event::ReactionAdded(r) = ev.event else {
            panic!()
        };
        assert_eq!(r.user.as_str(), "U123ABC456");
        assert_eq!(r.reaction, "pushpin");
        assert_eq!(r.item.channel.as_str(), "C123ABC456");
        assert_eq!(r.item.ts.as_str(), "1360782400.498405");
        assert_eq!(r.item_user.unwrap().as_str(), "U222222222");
    }

    #[test]
    fn a_reaction_on_a_webhook_message_has_no_item_user() {
        let ev = event(
            json!({"type": "reaction_removed", "user": "U1", "reaction": "eyes",
            "item": {"type": "message", "channel": "C1", "ts": "1.2"}, "event_ts": "3.4"}),
        );
        let Event::ReactionRemoved(r) = ev.event else {
            panic!()
        };
        assert_eq!(r.item_user, None);
    }

    #[test]
    fn a_pin_added_event_carries_the_message_inline() {
        let ev = event(
            json!({"type": "pin_added", "user": "U1", "channel_id": "C1",
            "item": {"type": "message", "channel": "C1", "created": 1700000100,
                "created_by": "U1",
                "message": {"type": "message", "user": "U2", "text": "rolled back v42",
                    "ts": "1700000000.000200", "thread_ts": "1700000000.000100",
                    "permalink": "https://acme.slack.com/archives/C1/p1700000000000200",
                    "pinned_to": ["C1"]}},
            "item_user": "U2", "pin_count": 2,
            "pinned_info": {"channel": "C1", "pinned_by": "U1", "pinned_ts": 1700000100},
            "event_ts": "1700000100.000300"}),
        );
        let Event::PinAdded(p) = ev.event else {
            panic!()
        };
        assert_eq!(p.channel_id.as_str(), "C1");
        assert_eq!(p.user.as_str(), "U1");
        let m = p.item.message.unwrap();
        assert_eq!(m.ts.as_str(), "1700000000.000200");
        assert_eq!(m.text, "rolled back v42");
        assert_eq!(m.user.unwrap().as_str(), "U2");
        assert_eq!(m.thread_ts.unwrap().as_str(), "1700000000.000100");
    }

    #[test]
    fn a_pin_removed_event_is_typed_too() {
        let ev = event(
            json!({"type": "pin_removed", "user": "U1", "channel_id": "C1",
            "item": {"type": "message", "message": {"ts": "1.2", "text": "t"}},
            "has_pins": false, "event_ts": "3.4"}),
        );
        assert!(
            matches!(ev.event, Event::PinRemoved(ref p) if p.item.message.as_ref().unwrap().user.is_none())
        );
    }

    #[test]
    fn app_home_opened_and_message_events_are_typed() {
        let ev = event(
            json!({"type": "app_home_opened", "user": "U1", "channel": "D1",
            "tab": "home", "event_ts": "1.2"}),
        );
        assert_eq!(
            ev.event,
            Event::AppHomeOpened(AppHomeOpened {
                user: "U1".into(),
                tab: "home".into()
            })
        );
        let ev = event(
            json!({"type": "message", "channel": "C1", "user": "U1", "text": "hi",
            "ts": "1.2", "event_ts": "1.2", "channel_type": "channel"}),
        );
        let Event::Message(m) = ev.event else {
            panic!()
        };
        assert_eq!(m.channel.as_str(), "C1");
        assert_eq!(m.ts.as_str(), "1.2");
    }

    #[test]
    fn an_event_incd_does_not_know_keeps_its_type() {
        let ev = event(json!({"type": "member_joined_channel", "user": "U1",
            "channel": "C1", "event_ts": "1.2"}));
        assert_eq!(ev.event, Event::Unknown("member_joined_channel".into()));
        assert_eq!(ev.event.kind(), "member_joined_channel");
    }

    #[test]
    fn an_event_with_the_wrong_shape_is_an_error_not_a_default() {
        let bad = wrap(json!({"type": "reaction_added", "user": 42, "event_ts": "1"}));
        assert!(Inbound::parse("events_api", bad).is_err());
        let bad = json!({"type": "view_submission", "view": "not an object"});
        assert!(Inbound::parse("interactive", bad).is_err());
    }

    #[test]
    fn unknown_envelopes_and_interactions_are_other() {
        assert_eq!(
            Inbound::parse("interactive", json!({"type": "view_closed"})).unwrap(),
            Inbound::Other {
                kind: "interactive".into(),
                detail: Some("view_closed".into())
            }
        );
        assert!(matches!(
            Inbound::parse("options", json!({})).unwrap(),
            Inbound::Other { .. }
        ));
        let Inbound::Shortcut(s) = Inbound::parse(
            "interactive",
            json!({"type": "shortcut", "callback_id": "declare", "trigger_id": "1.2",
                "user": {"id": "U1"}}),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(s.callback_id, "declare");
    }

    #[test]
    fn a_redelivered_event_id_is_recognised_and_memory_stays_bounded() {
        let mut seen = RecentEventIds::default();
        assert!(seen.first_time("Ev1"));
        assert!(!seen.first_time("Ev1"));
        assert!(seen.first_time(""), "no id: cannot be recognised");
        for i in 0..RECENT_EVENT_IDS {
            seen.first_time(&format!("Ev-{i}"));
        }
        assert_eq!(seen.len(), RECENT_EVENT_IDS);
        assert!(seen.first_time("Ev1"), "the oldest ids are forgotten");
    }
}
