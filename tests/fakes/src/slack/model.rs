//! Public data types of the fake Slack: workspace objects (users, channels, messages, views),
//! the Web API call log, scripted faults, and the Socket Mode delivery/ack records.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Which kind of token authenticated a Web API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// The fake's bot token (`xoxb-…`).
    Bot,
    /// The fake's app-level token (`xapp-…`).
    App,
    /// A token was sent but it is not one the fake issued.
    Unknown,
    /// No token where the transport requires one (see the module docs).
    None,
}

/// A scripted fault, consumed one per call from a per-method FIFO queue
/// ([`FakeSlack::inject_fault`](super::FakeSlack::inject_fault)).
///
/// Calls answered by a fault are never counted as contract rejections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and a non-JSON body; no effect is applied.
    Status(u16),
    /// Answer HTTP 429 with `Retry-After: retry_after_secs` and `{"ok":false,"error":"ratelimited"}`;
    /// no effect is applied. Calls arriving before the Retry-After elapsed are recorded as early retries.
    RateLimited {
        /// Seconds put in the `Retry-After` header.
        retry_after_secs: u64,
    },
    /// Answer HTTP 200 `{"ok":false,"error":<code>}`; no effect is applied.
    Error(String),
    /// Never answer (the request stays open until the client gives up); no effect is applied.
    Hang,
    /// Perform the call normally (channel created, message posted, …) and then never answer.
    /// Models "Slack acted, but the app never learned the result".
    ApplyThenHang,
    /// Perform the call normally and answer after this delay.
    Delay(Duration),
    // ---- chaos faults (see `crate::chaos`) ----
    /// Drop the connection without an answer; no effect is applied.
    Reset,
    /// Perform the call normally, then drop the connection: Slack acted, the answer is lost.
    ApplyThenReset,
    /// Perform the call normally, then answer this HTTP status (non-JSON body) instead.
    ApplyThenStatus(u16),
}

/// One Web API request as the fake saw it.
#[derive(Debug, Clone)]
pub struct ApiCall {
    /// Method name from the URL, e.g. `chat.postMessage`.
    pub method: String,
    /// HTTP verb (`POST`, `GET`, …).
    pub http_method: String,
    /// Which token authenticated it.
    pub token_kind: TokenKind,
    /// Arguments normalised to a JSON object: form fields become strings, except the JSON-encoded
    /// arguments `view`, `blocks`, `attachments` and `metadata`, which are parsed when they parse.
    pub args: Value,
    /// When the request arrived.
    pub at: Instant,
    /// When the fake had applied it (recorded right after the effect, before the answer leaves;
    /// after the injected latency).
    pub applied_at: Instant,
    /// HTTP status sent; `0` when the fake never answered ([`Fault::Hang`], [`Fault::ApplyThenHang`]).
    pub status: u16,
    /// The JSON body sent (or, for `ApplyThenHang`, the body that would have been sent).
    /// `Value::Null` when the body was not JSON (injected [`Fault::Status`]).
    pub response: Value,
    /// `Retry-After` seconds when the answer was a 429.
    pub retry_after: Option<u64>,
    /// The injected fault that shaped this answer, if any.
    pub fault: Option<Fault>,
}

impl ApiCall {
    /// `true` when answered HTTP 200 with `"ok": true`.
    pub fn is_ok(&self) -> bool {
        self.status == 200 && self.response.get("ok") == Some(&Value::Bool(true))
    }

    /// The `error` code of an `ok:false` answer.
    pub fn error(&self) -> Option<&str> {
        self.response.get("error").and_then(Value::as_str)
    }

    /// `true` when real Slack would have refused this request: answered `ok:false` (or 429) by
    /// the fake's own rules. Never true for answers shaped by an injected fault (`Status`,
    /// `RateLimited`, `Error`, `Hang`); `Delay`/`ApplyThenHang` calls are judged on their body.
    /// Includes 429s from enforced rate limits.
    pub fn is_contract_rejection(&self) -> bool {
        match &self.fault {
            // Calls processed normally (possibly delayed or unanswered) are judged on their body.
            None
            | Some(Fault::Delay(_))
            | Some(Fault::ApplyThenHang)
            | Some(Fault::ApplyThenReset)
            | Some(Fault::ApplyThenStatus(_)) => {
                self.response.get("ok") != Some(&Value::Bool(true))
            }
            _ => false,
        }
    }

    /// String argument `name`, if present as a string.
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args.get(name).and_then(Value::as_str)
    }
}

/// A call that arrived before a `Retry-After` the fake had given for that method (or, for
/// `chat.postMessage`, that channel) had elapsed.
#[derive(Debug, Clone)]
pub struct EarlyRetry {
    /// Method name.
    pub method: String,
    /// Rate-limit key: the method name, or `chat.postMessage:<channel>`.
    pub key: String,
    /// When the early call arrived.
    pub at: Instant,
    /// When the client was allowed to call again.
    pub allowed_at: Instant,
}

/// A 429 the fake sent (from enforced rate limits or an injected [`Fault::RateLimited`]).
#[derive(Debug, Clone)]
pub struct RateLimitEvent {
    /// Method name.
    pub method: String,
    /// Rate-limit key (method, or `chat.postMessage:<channel>`).
    pub key: String,
    /// When it was sent.
    pub at: Instant,
    /// The `Retry-After` value given.
    pub retry_after_secs: u64,
    /// `true` when it came from an injected fault.
    pub injected: bool,
}

/// A workspace member.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// `U…` id.
    pub id: String,
    /// Handle (`name`).
    pub name: String,
    /// Display/real name.
    pub real_name: String,
    /// Bot users (the app's own bot user is one).
    pub is_bot: bool,
    /// Deactivated users cannot be invited (`cant_invite`).
    pub deleted: bool,
}

/// The channel topic.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Topic {
    /// Topic text (`""` when unset).
    pub value: String,
    /// Who set it (`""` when unset).
    pub creator: String,
    /// Unix seconds when set (0 when unset).
    pub last_set: u64,
}

/// An edit marker on a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Edited {
    /// Who edited.
    pub user: String,
    /// The `ts` of the edit.
    pub ts: String,
}

/// A message in a channel (top level or thread reply), with edits applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Message timestamp id.
    pub ts: String,
    /// Parent `ts` for thread replies (`None` for top-level messages).
    pub thread_ts: Option<String>,
    /// Author user id (`U0BOT`-style bot user for the app's own messages).
    pub user: String,
    /// Set on messages posted by the app.
    pub bot_id: Option<String>,
    /// Current `text` (`""` when only blocks were sent).
    pub text: String,
    /// Current blocks (with Slack-assigned `block_id`/`action_id` filled in).
    pub blocks: Option<Value>,
    /// Current attachments.
    pub attachments: Option<Value>,
    /// Message metadata `{event_type, event_payload}`.
    pub metadata: Option<Value>,
    /// Set after a `chat.update`.
    pub edited: Option<Edited>,
    /// Number of `chat.update` calls applied.
    pub edit_count: u32,
    /// A thread reply also shown in the channel.
    pub reply_broadcast: bool,
}

impl Message {
    /// `true` for top-level messages (not a thread reply).
    pub fn is_top_level(&self) -> bool {
        self.thread_ts.is_none()
    }

    /// The message as Slack serialises it; `metadata` only when `include_metadata`.
    pub fn to_json(&self, include_metadata: bool) -> Value {
        let mut m = json!({
            "type": "message",
            "user": self.user,
            "text": self.text,
            "ts": self.ts,
        });
        let o = m.as_object_mut().expect("object");
        if let Some(b) = &self.bot_id {
            o.insert("bot_id".into(), json!(b));
            o.insert("app_id".into(), json!(super::APP_ID));
        }
        if let Some(b) = &self.blocks {
            o.insert("blocks".into(), b.clone());
        }
        if let Some(a) = &self.attachments {
            o.insert("attachments".into(), a.clone());
        }
        if let Some(t) = &self.thread_ts {
            o.insert("thread_ts".into(), json!(t));
            o.insert("parent_user_id".into(), Value::Null);
        }
        if let Some(e) = &self.edited {
            o.insert("edited".into(), json!({"user": e.user, "ts": e.ts}));
        }
        if include_metadata {
            if let Some(md) = &self.metadata {
                o.insert("metadata".into(), md.clone());
            }
        }
        m
    }
}

/// An ephemeral message (`chat.postEphemeral`), visible to one user only.
#[derive(Debug, Clone, PartialEq)]
pub struct Ephemeral {
    /// Channel id.
    pub channel: String,
    /// The only user who sees it.
    pub user: String,
    /// The `message_ts` returned.
    pub message_ts: String,
    /// Optional thread.
    pub thread_ts: Option<String>,
    /// Text.
    pub text: String,
    /// Blocks.
    pub blocks: Option<Value>,
}

/// A channel bookmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Bookmark {
    /// `Bk…` id.
    pub id: String,
    /// Channel id.
    pub channel_id: String,
    /// Title.
    pub title: String,
    /// The http(s) link.
    pub link: String,
    /// Emoji, e.g. `:book:`.
    pub emoji: Option<String>,
    /// Always `link` in this fake.
    pub kind: String,
    /// Who added it.
    pub created_by: String,
}

/// A conversation (public/private channel or IM).
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// `C…` (channels) or `D…` (IMs).
    pub id: String,
    /// Name (IMs: the other user's id).
    pub name: String,
    /// Private channel.
    pub is_private: bool,
    /// Direct message with one user.
    pub is_im: bool,
    /// Creator user id (only the creator, among non-admins, may rename).
    pub creator: String,
    /// Unix seconds.
    pub created: u64,
    /// Member user ids, in join order.
    pub members: Vec<String>,
    /// Topic.
    pub topic: Topic,
    /// Purpose text.
    pub purpose: String,
    /// Archived channels keep their name (`name_taken`) and refuse writes.
    pub is_archived: bool,
    /// Names before renames, oldest first.
    pub previous_names: Vec<String>,
    /// Messages in post order (top level and thread replies interleaved), edits applied.
    pub messages: Vec<Message>,
    /// Pinned message timestamps in pin order.
    pub pins: Vec<String>,
    /// Bookmarks in creation order.
    pub bookmarks: Vec<Bookmark>,
    /// Ephemeral messages sent in this channel.
    pub ephemerals: Vec<Ephemeral>,
}

/// A modal view opened by the app (`views.open`, `views.push`, or `response_action: push`).
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// `V…` id.
    pub id: String,
    /// The user the modal is shown to.
    pub user_id: String,
    /// `callback_id` (`""` when unset, as Slack returns it).
    pub callback_id: String,
    /// `private_metadata` (`""` when unset).
    pub private_metadata: String,
    /// `external_id` (`""` when unset).
    pub external_id: String,
    /// Current `hash` (changes on every update).
    pub hash: String,
    /// Title text.
    pub title: String,
    /// Blocks with Slack-assigned `block_id`/`action_id` filled in.
    pub blocks: Vec<Value>,
    /// First view of this stack.
    pub root_view_id: String,
    /// The view below this one on the stack.
    pub previous_view_id: Option<String>,
    /// How it was opened: `views.open`, `views.push`, `response_action:push`.
    pub opened_by: String,
    /// Still on screen.
    pub is_open: bool,
    /// Number of updates applied (`views.update` / `response_action: update`).
    pub update_count: u32,
    /// Last `response_action: errors` map shown on this view, if any.
    pub errors: Option<Value>,
    /// The full view object as Slack would return it (without `state`).
    pub json: Value,
}

impl View {
    /// `(block_id, action_id, element)` of every `input` block.
    pub fn inputs(&self) -> Vec<(String, String, Value)> {
        self.blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("input"))
            .filter_map(|b| {
                let el = b.get("element")?;
                Some((
                    b.get("block_id")?.as_str()?.to_string(),
                    el.get("action_id")?.as_str()?.to_string(),
                    el.clone(),
                ))
            })
            .collect()
    }
}

/// Envelope `type` in Socket Mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvelopeType {
    /// Slash command.
    SlashCommands,
    /// Block actions, view submissions, shortcuts…
    Interactive,
    /// Events API callbacks.
    EventsApi,
}

impl EnvelopeType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvelopeType::SlashCommands => "slash_commands",
            EnvelopeType::Interactive => "interactive",
            EnvelopeType::EventsApi => "events_api",
        }
    }
}

/// Which live connection(s) get an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// One live connection, round robin by connection index.
    #[default]
    Any,
    /// The connection with this index (see [`ConnectionInfo::idx`]).
    Connection(usize),
    /// The same envelope (same `envelope_id`) to two different live connections.
    TwoConnections,
    /// The same envelope twice on one connection.
    TwiceOnOne,
}

/// What the fake sent: returned by every driver `send_*`/`submit_*`/`click_*` call.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The envelope id to wait for an ack on.
    pub envelope_id: String,
    /// Envelope type.
    pub kind: EnvelopeType,
    /// The `trigger_id` issued with this payload (slash commands, block actions, view submissions).
    pub trigger_id: Option<String>,
    /// `event_id` for events_api envelopes.
    pub event_id: Option<String>,
    /// Connection indices it was written to.
    pub connections: Vec<usize>,
    /// The payload sent.
    pub payload: Value,
    /// `retry_attempt` (events_api redeliveries count up from 0).
    pub retry_attempt: u32,
    /// When it was written.
    pub sent_at: Instant,
}

/// An acknowledgement the app sent over Socket Mode.
#[derive(Debug, Clone)]
pub struct Ack {
    /// The acked envelope id.
    pub envelope_id: String,
    /// Connection it arrived on.
    pub connection: usize,
    /// `payload`, `None` when omitted or `null`.
    pub payload: Option<Value>,
    /// Time from sending the envelope to receiving this ack.
    pub latency: Duration,
    /// When it arrived.
    pub at: Instant,
    /// The raw frame.
    pub raw: String,
    /// Why real Slack would not accept this ack payload (`None` = fine).
    pub violation: Option<String>,
    /// Arrived after the ack deadline (3 s by default).
    pub late: bool,
}

/// An envelope that was not acked within the deadline.
#[derive(Debug, Clone)]
pub struct AckTimeout {
    /// Envelope id.
    pub envelope_id: String,
    /// Envelope type.
    pub kind: EnvelopeType,
    /// When the deadline passed.
    pub at: Instant,
    /// `true` when an events_api redelivery followed.
    pub redelivered: bool,
}

/// Something the app did over Socket Mode that real Slack would not accept.
#[derive(Debug, Clone)]
pub struct SocketViolation {
    /// When.
    pub at: Instant,
    /// Connection index, when known.
    pub connection: Option<usize>,
    /// Envelope id, when relevant.
    pub envelope_id: Option<String>,
    /// Human-readable reason.
    pub reason: String,
}

/// State of a Socket Mode connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Receiving envelopes.
    Open,
    /// [`FakeSlack::go_silent`](super::FakeSlack::go_silent): nothing is sent or read, TCP stays open.
    Silent,
    /// A `disconnect` was sent; no more envelopes; closing soon.
    Closing,
    /// Gone.
    Closed,
}

/// A Socket Mode connection (current or past).
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Stable index in connect order (0, 1, 2, … for the fake's lifetime).
    pub idx: usize,
    /// The ticket it connected with.
    pub ticket: String,
    /// Connected at.
    pub opened_at: Instant,
    /// Closed at.
    pub closed_at: Option<Instant>,
    /// Current state.
    pub state: ConnState,
    /// Refused for exceeding the connection cap (`too_many_websockets`).
    pub over_cap: bool,
    /// Pings the app sent.
    pub pings_received: u32,
    /// Pongs the app sent (answers to the fake's pings).
    pub pongs_received: u32,
    /// Who ended it: `client`, `server`, `drop`.
    pub closed_by: Option<String>,
}

/// A frame written to or read from a socket (for debugging).
#[derive(Debug, Clone)]
pub struct Frame {
    /// Connection index.
    pub connection: usize,
    /// When.
    pub at: Instant,
    /// Text.
    pub text: String,
}

/// An immediate response carried in a slash-command ack payload.
#[derive(Debug, Clone)]
pub struct CommandResponse {
    /// The acked envelope.
    pub envelope_id: String,
    /// Channel the command was run in.
    pub channel_id: String,
    /// Invoking user.
    pub user_id: String,
    /// `ephemeral` (default) or `in_channel`.
    pub response_type: String,
    /// The payload as sent.
    pub payload: Value,
}

/// A POST the app made to a `response_url` the fake handed out.
#[derive(Debug, Clone)]
pub struct ResponseUrlPost {
    /// The response_url path id.
    pub id: String,
    /// Body.
    pub body: Value,
    /// When.
    pub at: Instant,
    /// Refusal reason, if the body would be refused.
    pub violation: Option<String>,
}

/// A slash command invocation to deliver (`send_slash_command`).
#[derive(Debug, Clone)]
pub struct SlashCommand {
    /// E.g. `/incident`.
    pub command: String,
    /// Everything after the command.
    pub text: String,
    /// Invoking user (must exist in the workspace).
    pub user_id: String,
    /// Channel it was run in (must exist).
    pub channel_id: String,
}

impl SlashCommand {
    /// Build a command invocation.
    pub fn new(command: &str, text: &str, user_id: &str, channel_id: &str) -> Self {
        SlashCommand {
            command: command.to_string(),
            text: text.to_string(),
            user_id: user_id.to_string(),
            channel_id: channel_id.to_string(),
        }
    }
}

/// Errors of the driver API (test-side misuse or timeouts, never Slack errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeError {
    /// A wait ran out; the string says what was awaited.
    Timeout(String),
    /// No live Socket Mode connection to deliver to.
    NoConnection,
    /// Unknown id (user, channel, message, view, action…).
    NotFound(String),
    /// The request is impossible in the real Slack UI (e.g. submitting a modal with a required
    /// input empty).
    Invalid(String),
}

impl std::fmt::Display for FakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FakeError::Timeout(w) => write!(f, "fake slack: timed out waiting for {w}"),
            FakeError::NoConnection => write!(f, "fake slack: no live socket mode connection"),
            FakeError::NotFound(w) => write!(f, "fake slack: not found: {w}"),
            FakeError::Invalid(w) => write!(f, "fake slack: invalid: {w}"),
        }
    }
}

impl std::error::Error for FakeError {}
