//! An in-process fake Slack: Web API (`POST /api/{method}`) and Socket Mode (`ws://…/link/`) on
//! one random `127.0.0.1` port. It behaves like Slack **including its refusals** (see
//! `shared/docs/platform-contracts.md` §1, §2, §8) and records everything for assertions.
//!
//! # Starting
//! ```no_run
//! # async fn demo() {
//! use incd_fakes::slack::*;
//! let slack = FakeSlack::start().await;            // or FakeSlack::start_with(FakeSlackConfig { .. })
//! // spawn incd with SLACK_API_URL=slack.api_url(), SLACK_BOT_TOKEN=slack.bot_token(),
//! // SLACK_APP_TOKEN=slack.app_token()
//! slack.wait_for_connections(1, std::time::Duration::from_secs(10)).await.unwrap();
//! let d = slack
//!     .send_slash_command(SlashCommand::new("/incident", "", DEFAULT_USER, GENERAL_CHANNEL))
//!     .await
//!     .unwrap();
//! let ack = slack.wait_ack(&d.envelope_id, std::time::Duration::from_secs(3)).await.unwrap();
//! assert!(ack.violation.is_none());
//! let view = slack.wait_view_opened(std::time::Duration::from_secs(5)).await.unwrap();
//! let sub = slack
//!     .submit_view_with(&view.id, DEFAULT_USER, &[("title", "DB down"), ("severity", "sev1")])
//!     .await
//!     .unwrap();
//! slack.wait_ack(&sub.envelope_id, std::time::Duration::from_secs(3)).await.unwrap();
//! slack.assert_no_violations();
//! # }
//! ```
//!
//! # Workspace
//! Team `T0FAKE`, bot user [`BOT_USER_ID`] (`U0BOT`), bot id `B0BOT`, app `A0FAKEAPP`. By default
//! (`FakeSlackConfig::default_workspace`) there is also a human [`DEFAULT_USER`] (`U0ALICE`) and
//! a public `#general` ([`GENERAL_CHANNEL`], created by alice, the bot **not** a member).
//! Setup: [`FakeSlack::add_user`], [`FakeSlack::add_channel`], [`FakeSlack::add_private_channel`],
//! [`FakeSlack::archive_channel`], [`FakeSlack::post_user_message`], [`FakeSlack::set_scopes`] /
//! [`FakeSlack::grant_scopes`] / [`FakeSlack::revoke_scopes`], [`FakeSlack::set_bot_token`],
//! [`FakeSlack::set_app_token`].
//!
//! # Web API rules enforced
//! * Transport: `POST` with `application/json` (token **only** in `Authorization: Bearer`) or
//!   `application/x-www-form-urlencoded` (header or `token` field; apps.connections.open: header
//!   only). Other content types → `invalid_post_type`, body without content type →
//!   `missing_post_type`, bad charset → `invalid_charset`, bad JSON → `invalid_json`, bad form →
//!   `invalid_form_data`. `GET` with query args is accepted for the read methods (`auth.test`,
//!   `conversations.info`, `conversations.history`, `users.conversations`, `users.info`);
//!   apps.connections.open via non-POST → `insecure_request`; any other verb/method combination →
//!   [`FAKE_VERB_REFUSED`] (a deliberately fake code). Tokens in the query string are ignored.
//!   Unknown method → `unknown_method`.
//! * Tokens: `apps.connections.open` needs the app token, everything else the bot token
//!   (`not_authed` / `invalid_auth` / `not_allowed_token_type`).
//! * Scopes: any-of per method (table in `spec.rs`, from the 2026-05 method docs), plus the
//!   channel-type scope (public vs private) where Slack distinguishes them → `missing_scope` with
//!   `needed`/`provided`. Bot-token answers carry `x-oauth-scopes` and `x-accepted-oauth-scopes`.
//!   [`DEFAULT_SCOPES`] deliberately lacks `chat:write.public`.
//! * Semantics and errors of: `auth.test`, `apps.connections.open`, `views.open|update|push`,
//!   `conversations.create|rename|invite|setTopic|join|info|history`, `users.conversations`,
//!   `users.info`, `chat.postMessage|update|postEphemeral`, `pins.add`, `bookmarks.add`
//!   (see the method functions in `methods.rs` for the exact order of checks).
//! * Block Kit / modal limits of platform-contracts §2.5 (`invalid_blocks` for messages,
//!   `invalid_arguments` + `response_metadata.messages` for views).
//! * trigger ids (issued with every slash command, block action and view submission) are valid
//!   for 3 s (`trigger_ttl`) and single use: `invalid_trigger_id` / `exchanged_trigger_id` /
//!   `expired_trigger_id`. A trigger is only consumed by a **successful** views.open/push.
//! * Rate limits: off by default; [`FakeSlack::enforce_rate_limits`]. Windows are divided by the
//!   time scale; `Retry-After` is an integer number of real seconds, at least 1 (see
//!   `ratelimit.rs`). While a Retry-After is running for a key, further calls get 429 again.
//!   Calls arriving before a Retry-After elapsed are recorded as [`EarlyRetry`] (also for
//!   injected 429s, and even when limits are off).
//! * Faults: [`FakeSlack::inject_fault`] (per method FIFO of [`Fault`]), [`FakeSlack::set_latency`]
//!   (every Web API call), [`FakeSlack::set_chaos`] (a seeded random schedule, [`crate::chaos`],
//!   for calls no scripted fault answers; its 429s count early retries like any other).
//!
//! # Call log
//! [`FakeSlack::calls`], [`FakeSlack::calls_to`], [`FakeSlack::wait_for_calls`],
//! [`FakeSlack::clear_calls`], [`FakeSlack::rejected`] (contract rejections, never injected faults), [`FakeSlack::early_retries`], [`FakeSlack::rate_limited`],
//! [`FakeSlack::violations`] / [`FakeSlack::assert_no_violations`] (rejections other than 429,
//! early retries, bad acks/frames/tickets, bad response_url posts).
//!
//! # Socket Mode driver
//! * Connections: [`FakeSlack::wait_for_connections`], [`FakeSlack::live_connections`],
//!   [`FakeSlack::connections`], [`FakeSlack::connection_opens`]. Tickets are single use; max 10
//!   connections (the 11th gets `disconnect` `too_many_websockets`); `hello` on connect; pings every
//!   `ping_interval`; client pings answered.
//! * Delivery: [`FakeSlack::send_slash_command`], [`FakeSlack::submit_view`],
//!   [`FakeSlack::submit_view_with`], [`FakeSlack::click_button`], [`FakeSlack::click_view_button`],
//!   [`FakeSlack::send_event`], [`FakeSlack::send_envelope`] (any [`Target`]),
//!   [`FakeSlack::send_envelope_duplicated`], [`FakeSlack::redeliver`], [`FakeSlack::send_raw`].
//!   High-level senders use [`FakeSlack::set_default_target`] (round robin by default).
//! * Acks: [`FakeSlack::wait_ack`], [`FakeSlack::acks`], [`FakeSlack::unknown_acks`],
//!   [`FakeSlack::ack_timeouts`]. Ack payloads are validated per envelope type (§1.4); a bad one is
//!   recorded in [`Ack::violation`] and in [`FakeSlack::socket_violations`] and has no effect.
//!   Valid `view_submission` acks act on the modal stack (close / errors / update / push / clear);
//!   slash-command ack payloads land in [`FakeSlack::command_responses`]. Missing acks after
//!   `ack_deadline` (3 s) are [`AckTimeout`]s; events_api envelopes are then redelivered with
//!   `retry_attempt+1`, `retry_reason:"timeout"` (up to `max_event_retries`). Late acks are
//!   recorded (`late: true`) but have no effect.
//! * Views: [`FakeSlack::wait_view_opened`] (each view once, in open order), [`FakeSlack::open_views`],
//!   [`FakeSlack::views`], [`FakeSlack::view`].
//! * Connection faults: [`FakeSlack::disconnect`], [`FakeSlack::disconnect_all`] (`disconnect`
//!   frame, socket closed `disconnect_close_delay` later unless the reason is `warning`),
//!   [`FakeSlack::drop_all`] / [`FakeSlack::drop_connection`] (TCP close without close frame),
//!   [`FakeSlack::go_silent`] (nothing sent or read, not even pongs), and
//!   [`FakeSlack::inject_connections_open_fault`]; [`FakeSlack::shutdown`] stops the whole fake.
//!
//! Generic waits: [`FakeSlack::wait_for`] (any predicate over the fake), [`FakeSlack::wait_for_channel`],
//! [`FakeSlack::wait_for_message`], [`FakeSlack::wait_for_call`]. Every wait takes a timeout. Set `FAKE_SLACK_LOG=1` to print traffic to stderr.

mod blocks;
mod http;
mod methods;
mod model;
mod ratelimit;
pub use ratelimit::DEFAULT_POST_BURST;
mod socket;
mod spec;
mod state;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

pub use http::FAKE_VERB_REFUSED;
pub use model::*;
pub use spec::DEFAULT_SCOPES;

use socket::EnvelopeMeta;
use state::{ConnCmd, State};

/// Team id.
pub const TEAM_ID: &str = "T0FAKE";
/// Team domain.
pub const TEAM_DOMAIN: &str = "fake-workspace";
/// The bot user's id.
pub const BOT_USER_ID: &str = "U0BOT";
/// The bot id.
pub const BOT_ID: &str = "B0BOT";
/// The app id.
pub const APP_ID: &str = "A0FAKEAPP";
/// A human user present by default.
pub const DEFAULT_USER: &str = "U0ALICE";
/// `#general`, present by default (bot not a member).
pub const GENERAL_CHANNEL: &str = "C0GENERAL";
/// The verification `token` field put in payloads (deprecated by Slack, still sent).
const PAYLOAD_TOKEN: &str = "fakeverificationtoken";

/// Configuration for [`FakeSlack::start_with`].
#[derive(Debug, Clone)]
pub struct FakeSlackConfig {
    /// The one bot token (`xoxb-…`).
    pub bot_token: String,
    /// The one app-level token (`xapp-…`).
    pub app_token: String,
    /// Granted bot scopes.
    pub scopes: Vec<String>,
    /// Add alice ([`DEFAULT_USER`]) and `#general` ([`GENERAL_CHANNEL`]).
    pub default_workspace: bool,
    /// trigger_id lifetime (3 s in Slack).
    pub trigger_ttl: Duration,
    /// Ack deadline (3 s in Slack).
    pub ack_deadline: Duration,
    /// Redeliver unacked events_api envelopes.
    pub redeliver_events_on_timeout: bool,
    /// Max events_api redeliveries.
    pub max_event_retries: u32,
    /// Server ping interval (`None` = never ping).
    pub ping_interval: Option<Duration>,
    /// Delay between a `disconnect` frame and closing the socket.
    pub disconnect_close_delay: Duration,
    /// Max concurrent Socket Mode connections (10 in Slack).
    pub max_connections: usize,
    /// Max users per conversations.invite (docs conflict: 100 vs 1000; 100 is the stricter).
    pub max_invite_users: usize,
    /// The app's Messages tab (`features.app_home.messages_tab_enabled`): when off,
    /// `chat.postMessage` to a user id fails with `messages_tab_disabled`.
    pub messages_tab_enabled: bool,
}

impl Default for FakeSlackConfig {
    fn default() -> Self {
        FakeSlackConfig {
            bot_token: "xoxb-1000000001-2000000002-fakebottokenxxxxxxxx".into(),
            app_token: "xapp-1-A0FAKEAPP-3000000003-fakeapptokenxxxxxxxxxxxxxxxx".into(),
            scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            default_workspace: true,
            trigger_ttl: Duration::from_secs(3),
            ack_deadline: Duration::from_secs(3),
            redeliver_events_on_timeout: true,
            max_event_retries: 3,
            ping_interval: Some(Duration::from_secs(5)),
            disconnect_close_delay: Duration::from_secs(1),
            max_connections: 10,
            max_invite_users: 100,
            messages_tab_enabled: true,
        }
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

struct ServerGuard(tokio::task::JoinHandle<()>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The fake. Cheap to clone; the server stops when the last clone is dropped.
#[derive(Clone)]
pub struct FakeSlack {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Arc<ServerGuard>,
}

impl std::fmt::Debug for FakeSlack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSlack")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeSlack {
    /// Start with [`FakeSlackConfig::default`].
    pub async fn start() -> FakeSlack {
        Self::start_with(FakeSlackConfig::default()).await
    }

    /// Start on a random `127.0.0.1` port.
    pub async fn start_with(cfg: FakeSlackConfig) -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake slack: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let log = std::env::var("FAKE_SLACK_LOG").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut st = State::new(cfg, log);
        st.port = addr.port();
        let (changed, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
            changed,
        });
        let app = Router::new()
            .route("/api/{method}", any(http::api_handler))
            .route("/link/", get(socket::link_handler))
            .route("/link", get(socket::link_handler))
            .route("/response/{team}/{id}", post(http::response_url_handler))
            .with_state(shared.clone());
        let handle = tokio::spawn(async move {
            // Like Slack's edge, answer without Nagle delays.
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        FakeSlack {
            shared,
            addr,
            server: Arc::new(ServerGuard(handle)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    fn bump(&self) {
        self.shared.bump();
    }

    /// Stop serving: drop every socket (no close frame) and stop accepting connections. Models
    /// Slack becoming unreachable; the fake cannot be restarted on the same port.
    pub fn shutdown(&self) {
        self.drop_all();
        self.server.0.abort();
    }

    /// `http://127.0.0.1:PORT/api` — pass as `SLACK_API_URL`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bot token.
    pub fn bot_token(&self) -> String {
        self.lock().cfg.bot_token.clone()
    }

    /// The app-level token.
    pub fn app_token(&self) -> String {
        self.lock().cfg.app_token.clone()
    }

    // ------------------------------------------------------------------------------------------
    // Setup

    /// Replace the bot token (the old one becomes `invalid_auth`).
    pub fn set_bot_token(&self, token: &str) {
        self.lock().cfg.bot_token = token.to_string();
    }

    /// Replace the app-level token.
    pub fn set_app_token(&self, token: &str) {
        self.lock().cfg.app_token = token.to_string();
    }

    /// Set the granted bot scopes exactly.
    pub fn set_scopes(&self, scopes: &[&str]) {
        self.lock().scopes = scopes.iter().map(|s| s.to_string()).collect();
    }

    /// Add bot scopes.
    pub fn grant_scopes(&self, scopes: &[&str]) {
        let mut st = self.lock();
        for s in scopes {
            if !st.has_scope(s) {
                st.scopes.push(s.to_string());
            }
        }
    }

    /// Remove bot scopes.
    pub fn revoke_scopes(&self, scopes: &[&str]) {
        self.lock().scopes.retain(|s| !scopes.contains(&s.as_str()));
    }

    /// Granted bot scopes.
    pub fn scopes(&self) -> Vec<String> {
        self.lock().scopes.clone()
    }

    /// Add (or rename) a human user.
    pub fn add_user(&self, id: &str, name: &str) {
        let mut st = self.lock();
        st.users.retain(|u| u.id != id);
        st.users.push(User {
            id: id.to_string(),
            name: name.to_string(),
            real_name: name.to_string(),
            is_bot: false,
            deleted: false,
        });
    }

    /// Deactivate a user (invites then fail with `cant_invite`).
    pub fn deactivate_user(&self, id: &str) {
        if let Some(u) = self.lock().users.iter_mut().find(|u| u.id == id) {
            u.deleted = true;
        }
    }

    fn add_channel_inner(&self, name: &str, members: &[&str], private: bool) -> String {
        let mut st = self.lock();
        let id = st.new_channel_id('C');
        let creator = members
            .iter()
            .find(|m| **m != BOT_USER_ID)
            .or(members.first())
            .map(|s| s.to_string())
            .unwrap_or_else(|| DEFAULT_USER.to_string());
        st.insert_channel(
            id,
            name,
            private,
            &creator,
            members.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// Add a public channel created by a human (the first non-bot member, else alice), with these
    /// members (include [`BOT_USER_ID`] to make the bot a member). Returns its id.
    /// No name validation: tests may set up any state.
    pub fn add_channel(&self, name: &str, members: &[&str]) -> String {
        self.add_channel_inner(name, members, false)
    }

    /// Add a private channel (see [`FakeSlack::add_channel`]).
    pub fn add_private_channel(&self, name: &str, members: &[&str]) -> String {
        self.add_channel_inner(name, members, true)
    }

    /// Archive a channel.
    pub fn archive_channel(&self, channel_id: &str) {
        if let Some(c) = self.lock().channels.iter_mut().find(|c| c.id == channel_id) {
            c.is_archived = true;
        }
        self.bump();
    }

    /// Add a member to a channel (as if they joined).
    pub fn join_channel(&self, channel_id: &str, user_id: &str) {
        if let Some(c) = self.lock().channels.iter_mut().find(|c| c.id == channel_id) {
            if !c.members.iter().any(|m| m == user_id) {
                c.members.push(user_id.to_string());
            }
        }
        self.bump();
    }

    /// Post a message as a human user (top level, or a reply when `thread_ts` is given).
    /// Returns its ts.
    pub fn post_user_message(
        &self,
        channel_id: &str,
        user_id: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> Result<String, FakeError> {
        let mut st = self.lock();
        let i = st
            .channel_idx(channel_id)
            .ok_or_else(|| FakeError::NotFound(format!("channel {channel_id}")))?;
        let ts = st.next_ts();
        st.channels[i].messages.push(Message {
            ts: ts.clone(),
            thread_ts: thread_ts.map(String::from),
            user: user_id.to_string(),
            bot_id: None,
            text: text.to_string(),
            blocks: None,
            attachments: None,
            metadata: None,
            edited: None,
            edit_count: 0,
            reply_broadcast: false,
        });
        drop(st);
        self.bump();
        Ok(ts)
    }

    // ------------------------------------------------------------------------------------------
    // Faults and rate limits

    /// Queue a fault for the next call to `method` (FIFO, one consumed per call).
    pub fn inject_fault(&self, method: &str, fault: Fault) {
        self.lock()
            .faults
            .entry(method.to_string())
            .or_default()
            .push_back(fault);
    }

    /// Queue several faults for `method`.
    pub fn inject_faults(&self, method: &str, faults: impl IntoIterator<Item = Fault>) {
        for f in faults {
            self.inject_fault(method, f);
        }
    }

    /// Queue a fault for `apps.connections.open` (e.g. `Fault::Error("link_disabled".into())`,
    /// `Fault::Status(500)`, `Fault::Hang`, `Fault::RateLimited{..}`).
    pub fn inject_connections_open_fault(&self, fault: Fault) {
        self.inject_fault("apps.connections.open", fault);
    }

    /// Draw random faults from `chaos` for every Web API call no scripted fault answers
    /// (`None` stops). See [`crate::chaos`].
    pub fn set_chaos(&self, chaos: Option<Arc<crate::chaos::Chaos>>) {
        self.lock().chaos = chaos;
    }

    /// Faults still queued for `method`.
    pub fn pending_faults(&self, method: &str) -> usize {
        self.lock().faults.get(method).map_or(0, |q| q.len())
    }

    /// Drop all queued faults.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Delay every Web API answer by `latency` (before anything else happens).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Enforce Slack's rate limits, windows divided by `time_scale` (1.0 = real time).
    pub fn enforce_rate_limits(&self, time_scale: f64) {
        let mut st = self.lock();
        st.rate.scale = Some(time_scale.max(0.001));
    }

    /// Stop enforcing rate limits (early retries are still recorded).
    pub fn disable_rate_limits(&self) {
        self.lock().rate.scale = None;
    }

    /// chat.postMessage burst per channel (default [`DEFAULT_POST_BURST`]), refilled
    /// one per (scaled) second.
    pub fn set_post_message_burst(&self, n: u32) {
        self.lock().rate.post_message_burst = n.max(1);
    }

    // ------------------------------------------------------------------------------------------
    // Call log

    /// Every Web API call, in arrival order.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.lock().calls.clone()
    }

    /// Calls to `method`.
    pub fn calls_to(&self, method: &str) -> Vec<ApiCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Calls real Slack would have refused (ok:false or non-200 by the fake's rules, including
    /// 429s from enforced rate limits; never calls shaped by an injected fault).
    pub fn rejected(&self) -> Vec<ApiCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.is_contract_rejection())
            .cloned()
            .collect()
    }

    /// Forget recorded Web API calls, 429s and early retries (e.g. after test setup). Pending
    /// Retry-After promises stay in force.
    pub fn clear_calls(&self) {
        let mut st = self.lock();
        st.calls.clear();
        st.early_retries.clear();
        st.rate_limit_events.clear();
    }

    /// Calls that arrived before a Retry-After the fake gave had elapsed.
    pub fn early_retries(&self) -> Vec<EarlyRetry> {
        self.lock().early_retries.clone()
    }

    /// Every 429 sent.
    pub fn rate_limited(&self) -> Vec<RateLimitEvent> {
        self.lock().rate_limit_events.clone()
    }

    /// Everything the app did that real Slack would refuse or that breaks the contract:
    /// rejected calls (except 429s), early retries, socket violations, bad response_url posts.
    pub fn violations(&self) -> Vec<String> {
        let st = self.lock();
        let mut out = Vec::new();
        for c in st.calls.iter().filter(|c| c.is_contract_rejection()) {
            if c.status == 429 {
                continue;
            }
            out.push(format!(
                "web api {} answered {} {} (args {})",
                c.method, c.status, c.response, c.args
            ));
        }
        for e in &st.early_retries {
            out.push(format!(
                "early retry of {}: {:?} before Retry-After elapsed",
                e.key,
                e.allowed_at.duration_since(e.at)
            ));
        }
        for v in &st.violations {
            out.push(format!(
                "socket mode (conn {:?}, envelope {:?}): {}",
                v.connection, v.envelope_id, v.reason
            ));
        }
        for p in &st.response_posts {
            if let Some(v) = &p.violation {
                out.push(format!("response_url {}: {v}", p.id));
            }
        }
        out
    }

    /// Panic listing [`FakeSlack::violations`] if there are any.
    #[track_caller]
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "fake slack saw violations:\n  {}",
            v.join("\n  ")
        );
    }

    // ------------------------------------------------------------------------------------------
    // Workspace state

    /// All users.
    pub fn users(&self) -> Vec<User> {
        self.lock().users.clone()
    }

    /// All conversations (channels and IMs) in creation order.
    pub fn channels(&self) -> Vec<Channel> {
        self.lock().channels.clone()
    }

    /// A conversation by id.
    pub fn channel(&self, channel_id: &str) -> Option<Channel> {
        self.lock().channel(channel_id).cloned()
    }

    /// A channel by current name.
    pub fn channel_by_name(&self, name: &str) -> Option<Channel> {
        self.lock()
            .channels
            .iter()
            .find(|c| !c.is_im && c.name == name)
            .cloned()
    }

    /// The IM between the bot and `user_id`, if the bot has written there.
    pub fn im_channel(&self, user_id: &str) -> Option<Channel> {
        self.lock()
            .channels
            .iter()
            .find(|c| c.is_im && c.name == user_id)
            .cloned()
    }

    /// All messages of a channel (top level and thread replies) in post order, edits applied.
    pub fn messages(&self, channel_id: &str) -> Vec<Message> {
        self.channel(channel_id)
            .map(|c| c.messages)
            .unwrap_or_default()
    }

    /// Top-level messages in post order.
    pub fn top_level_messages(&self, channel_id: &str) -> Vec<Message> {
        self.messages(channel_id)
            .into_iter()
            .filter(Message::is_top_level)
            .collect()
    }

    /// Replies in the thread of `thread_ts`.
    pub fn thread_replies(&self, channel_id: &str, thread_ts: &str) -> Vec<Message> {
        self.messages(channel_id)
            .into_iter()
            .filter(|m| m.thread_ts.as_deref() == Some(thread_ts))
            .collect()
    }

    /// One message.
    pub fn message(&self, channel_id: &str, ts: &str) -> Option<Message> {
        self.messages(channel_id).into_iter().find(|m| m.ts == ts)
    }

    /// The Home tab last published for `user_id` (`views.publish`).
    pub fn home_view(&self, user_id: &str) -> Option<Value> {
        self.lock()
            .home_views
            .iter()
            .rev()
            .find(|(u, _)| u == user_id)
            .map(|(_, v)| v.clone())
    }

    /// Ephemeral messages in a channel.
    pub fn ephemerals(&self, channel_id: &str) -> Vec<Ephemeral> {
        self.channel(channel_id)
            .map(|c| c.ephemerals)
            .unwrap_or_default()
    }

    /// Pinned message timestamps.
    pub fn pins(&self, channel_id: &str) -> Vec<String> {
        self.channel(channel_id).map(|c| c.pins).unwrap_or_default()
    }

    /// Bookmarks.
    pub fn bookmarks(&self, channel_id: &str) -> Vec<Bookmark> {
        self.channel(channel_id)
            .map(|c| c.bookmarks)
            .unwrap_or_default()
    }

    /// Member ids.
    pub fn members(&self, channel_id: &str) -> Vec<String> {
        self.channel(channel_id)
            .map(|c| c.members)
            .unwrap_or_default()
    }

    /// Topic text (`""` when unset or unknown channel).
    pub fn topic(&self, channel_id: &str) -> String {
        self.channel(channel_id)
            .map(|c| c.topic.value)
            .unwrap_or_default()
    }

    // ------------------------------------------------------------------------------------------
    // Views

    /// Every view ever opened, in open order (current content).
    pub fn views(&self) -> Vec<View> {
        self.lock().views.clone()
    }

    /// Views currently on screen.
    pub fn open_views(&self) -> Vec<View> {
        self.lock()
            .views
            .iter()
            .filter(|v| v.is_open)
            .cloned()
            .collect()
    }

    /// A view by id.
    pub fn view(&self, view_id: &str) -> Option<View> {
        self.lock().views.iter().find(|v| v.id == view_id).cloned()
    }

    /// The next view not yet returned by this method (views.open, views.push or a pushed
    /// response_action), in open order; current content.
    pub async fn wait_view_opened(&self, timeout: Duration) -> Result<View, FakeError> {
        self.wait_state(timeout, "a view to be opened", |st| {
            let v = st.views.get(st.view_cursor).cloned()?;
            st.view_cursor += 1;
            Some(v)
        })
        .await
    }

    // ------------------------------------------------------------------------------------------
    // Waiting

    async fn wait_state<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T, FakeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.shared.changed.subscribe();
        loop {
            if let Some(v) = f(&mut self.lock()) {
                return Ok(v);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => {
                    // One last look: a change may have landed together with the deadline.
                    return f(&mut self.lock()).ok_or_else(|| FakeError::Timeout(what.into()));
                }
            }
        }
    }

    /// Wait until `f` returns `Some`, re-checking on every change in the fake.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&FakeSlack) -> Option<T>,
    ) -> Result<T, FakeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.shared.changed.subscribe();
        loop {
            if let Some(v) = f(self) {
                return Ok(v);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return f(self).ok_or_else(|| FakeError::Timeout(what.into())),
            }
        }
    }

    /// Wait until at least `n` calls to `method` were recorded; returns all of them.
    pub async fn wait_for_calls(
        &self,
        method: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ApiCall>, FakeError> {
        self.wait_state(timeout, &format!("{n} call(s) to {method}"), |st| {
            let v: Vec<ApiCall> = st
                .calls
                .iter()
                .filter(|c| c.method == method)
                .cloned()
                .collect();
            (v.len() >= n).then_some(v)
        })
        .await
    }

    /// Wait for the first call to `method`.
    pub async fn wait_for_call(
        &self,
        method: &str,
        timeout: Duration,
    ) -> Result<ApiCall, FakeError> {
        let mut v = self.wait_for_calls(method, 1, timeout).await?;
        Ok(v.remove(0))
    }

    /// Wait for a channel with this name.
    pub async fn wait_for_channel(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Channel, FakeError> {
        self.wait_state(timeout, &format!("channel #{name}"), |st| {
            st.channels
                .iter()
                .find(|c| !c.is_im && c.name == name)
                .cloned()
        })
        .await
    }

    /// Wait for a message in `channel_id` matching `pred`.
    pub async fn wait_for_message(
        &self,
        channel_id: &str,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Result<Message, FakeError> {
        self.wait_state(
            timeout,
            &format!("a matching message in {channel_id}"),
            |st| {
                st.channel(channel_id)?
                    .messages
                    .iter()
                    .find(|m| pred(m))
                    .cloned()
            },
        )
        .await
    }

    // ------------------------------------------------------------------------------------------
    // Socket Mode: connections

    /// Connections that can receive envelopes (open or silent).
    pub fn live_connections(&self) -> Vec<ConnectionInfo> {
        let st = self.lock();
        let live = st.live_conn_indices();
        st.conns
            .iter()
            .filter(|c| live.contains(&c.idx))
            .cloned()
            .collect()
    }

    /// Every connection ever made.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.lock().conns.clone()
    }

    /// When each successful `apps.connections.open` happened.
    pub fn connection_opens(&self) -> Vec<Instant> {
        self.lock().connection_opens.clone()
    }

    /// Wait until at least `n` connections are live; returns them.
    pub async fn wait_for_connections(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ConnectionInfo>, FakeError> {
        self.wait_state(timeout, &format!("{n} live socket connection(s)"), |st| {
            let live = st.live_conn_indices();
            (live.len() >= n).then(|| {
                st.conns
                    .iter()
                    .filter(|c| live.contains(&c.idx))
                    .cloned()
                    .collect()
            })
        })
        .await
    }

    /// Send `{"type":"disconnect","reason":…}` on one connection; the socket is closed
    /// `disconnect_close_delay` later unless the client closes first. `warning` only sends the
    /// frame (the connection stays usable).
    pub fn disconnect(&self, conn_idx: usize, reason: &str) {
        let mut st = self.lock();
        let warning = reason == "warning";
        let delay = st.cfg.disconnect_close_delay;
        if !warning {
            if let Some(c) = st.conn_mut(conn_idx) {
                if c.state != ConnState::Closed {
                    c.state = ConnState::Closing;
                }
            }
        }
        if let Some(tx) = st.conn_tx.get(&conn_idx) {
            let _ = tx.send(ConnCmd::Disconnect {
                reason: reason.to_string(),
                close_after: (!warning).then_some(delay),
            });
        }
        drop(st);
        self.bump();
    }

    /// [`FakeSlack::disconnect`] every live connection.
    pub fn disconnect_all(&self, reason: &str) {
        for c in self.live_connections() {
            self.disconnect(c.idx, reason);
        }
    }

    /// Close one connection abruptly (no close frame).
    pub fn drop_connection(&self, conn_idx: usize) {
        if let Some(tx) = self.lock().conn_tx.get(&conn_idx) {
            let _ = tx.send(ConnCmd::Drop);
        }
    }

    /// Close every connection abruptly (no close frame).
    pub fn drop_all(&self) {
        let idxs: Vec<usize> = self.lock().conn_tx.keys().copied().collect();
        for i in idxs {
            self.drop_connection(i);
        }
    }

    /// Close one connection with a close frame.
    pub fn close_connection(&self, conn_idx: usize) {
        if let Some(tx) = self.lock().conn_tx.get(&conn_idx) {
            let _ = tx.send(ConnCmd::Close);
        }
    }

    /// Make one connection silent: nothing more is sent (envelopes to it are lost) or read (so
    /// no pongs either); TCP stays open.
    pub fn go_silent_connection(&self, conn_idx: usize) {
        let mut st = self.lock();
        if let Some(c) = st.conn_mut(conn_idx) {
            if matches!(c.state, ConnState::Open | ConnState::Closing) {
                c.state = ConnState::Silent;
            }
        }
        if let Some(tx) = st.conn_tx.get(&conn_idx) {
            let _ = tx.send(ConnCmd::Silent);
        }
        drop(st);
        self.bump();
    }

    /// Make every current connection silent (see [`FakeSlack::go_silent_connection`]).
    pub fn go_silent(&self) {
        let idxs: Vec<usize> = self.lock().conn_tx.keys().copied().collect();
        for i in idxs {
            self.go_silent_connection(i);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Socket Mode: delivery

    /// Where high-level senders deliver (default [`Target::Any`], round robin).
    pub fn set_default_target(&self, target: Target) {
        self.lock().default_target = target;
    }

    fn deliver_and_watch(
        &self,
        st: MutexGuard<'_, State>,
        kind: EnvelopeType,
        payload: Value,
        accepts: bool,
        target: Option<Target>,
        meta: EnvelopeMeta,
    ) -> Result<Delivery, FakeError> {
        let mut st = st;
        let target = target.unwrap_or(st.default_target);
        let d = socket::deliver(&mut st, kind, payload, accepts, target, meta)?;
        drop(st);
        socket::spawn_ack_watch(self.shared.clone(), d.envelope_id.clone());
        self.bump();
        Ok(d)
    }

    /// Deliver a `slash_commands` envelope (`accepts_response_payload: true`) with a fresh
    /// trigger_id and response_url.
    pub async fn send_slash_command(&self, cmd: SlashCommand) -> Result<Delivery, FakeError> {
        let mut st = self.lock();
        let user = st
            .user(&cmd.user_id)
            .cloned()
            .ok_or_else(|| FakeError::NotFound(format!("user {}", cmd.user_id)))?;
        let ch = st
            .channel(&cmd.channel_id)
            .cloned()
            .ok_or_else(|| FakeError::NotFound(format!("channel {}", cmd.channel_id)))?;
        let trigger = st.issue_trigger(&user.id, None);
        let response_url = st.issue_response_url(Some(ch.id.clone()));
        let payload = json!({
            "token": PAYLOAD_TOKEN,
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": ch.id,
            "channel_name": if ch.is_im { "directmessage".to_string() } else { ch.name.clone() },
            "user_id": user.id,
            "user_name": user.name,
            "command": cmd.command,
            "text": cmd.text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger,
        });
        let meta = EnvelopeMeta {
            trigger_id: Some(trigger),
            command_ctx: Some((ch.id, user.id)),
            ..Default::default()
        };
        self.deliver_and_watch(st, EnvelopeType::SlashCommands, payload, true, None, meta)
    }

    /// Build `view.state.values` for `view_id` from simple `(key, value)` pairs, where key is an
    /// input's `action_id` or `block_id`. Values by element type: text inputs → `value`;
    /// `static_select`/`radio_buttons` → the option with that `value` (`selected_option`);
    /// multi selects/checkboxes → comma-separated values; `users_select` → `selected_user`
    /// (must exist); `conversations_select`/`channels_select` → `selected_conversation` /
    /// `selected_channel`; date/time pickers → `selected_date`/`selected_time`/
    /// `selected_date_time`. Inputs not given keep their initial value (or null). Refuses what the
    /// Slack client would not submit: an empty required input, text outside min/max_length, an
    /// option that is not offered, an unknown key.
    pub fn view_state_values(
        &self,
        view_id: &str,
        inputs: &[(&str, &str)],
    ) -> Result<Value, FakeError> {
        let st = self.lock();
        let view = st
            .views
            .iter()
            .find(|v| v.id == view_id)
            .ok_or_else(|| FakeError::NotFound(format!("view {view_id}")))?;
        build_state_values(&st, view, inputs)
    }

    /// Submit an open modal with a raw `state.values` object (`block_id → action_id → value`).
    /// Delivers an `interactive` `view_submission` envelope (`accepts_response_payload: true`)
    /// with a fresh trigger_id. Only the top view of a stack, by its user, can be submitted.
    pub async fn submit_view(
        &self,
        view_id: &str,
        user_id: &str,
        state_values: Value,
    ) -> Result<Delivery, FakeError> {
        let mut st = self.lock();
        let view = st
            .views
            .iter()
            .find(|v| v.id == view_id)
            .cloned()
            .ok_or_else(|| FakeError::NotFound(format!("view {view_id}")))?;
        if !view.is_open {
            return Err(FakeError::Invalid(format!("view {view_id} is not open")));
        }
        if view.user_id != user_id {
            return Err(FakeError::Invalid(format!(
                "view {view_id} is shown to {}, not {user_id}",
                view.user_id
            )));
        }
        let top = st
            .stack_of(view_id)
            .and_then(|si| st.stacks[si].last().cloned());
        if top.as_deref() != Some(view_id) {
            return Err(FakeError::Invalid(format!(
                "view {view_id} is not the top of its stack"
            )));
        }
        let trigger = st.issue_trigger(user_id, Some(view_id.to_string()));
        let mut vj = view.json.clone();
        vj["state"] = json!({ "values": state_values });
        let payload = json!({
            "type": "view_submission",
            "team": st.team_json(),
            "user": st.user_ref_json(user_id),
            "api_app_id": APP_ID,
            "token": PAYLOAD_TOKEN,
            "trigger_id": trigger,
            "view": vj,
            "response_urls": [],
            "is_enterprise_install": false,
            "enterprise": null,
        });
        let meta = EnvelopeMeta {
            trigger_id: Some(trigger),
            view_id: Some(view_id.to_string()),
            ..Default::default()
        };
        self.deliver_and_watch(st, EnvelopeType::Interactive, payload, true, None, meta)
    }

    /// [`FakeSlack::view_state_values`] + [`FakeSlack::submit_view`].
    pub async fn submit_view_with(
        &self,
        view_id: &str,
        user_id: &str,
        inputs: &[(&str, &str)],
    ) -> Result<Delivery, FakeError> {
        let values = self.view_state_values(view_id, inputs)?;
        self.submit_view(view_id, user_id, values).await
    }

    /// Click the button `action_id` on a stored message: delivers `block_actions` with a fresh
    /// trigger_id, `container`, `channel`, `message`, `response_url` and the button's
    /// `action_id`/`block_id`/`value`/`text`.
    pub async fn click_button(
        &self,
        channel_id: &str,
        message_ts: &str,
        action_id: &str,
        user_id: &str,
    ) -> Result<Delivery, FakeError> {
        let mut st = self.lock();
        if st.user(user_id).is_none() {
            return Err(FakeError::NotFound(format!("user {user_id}")));
        }
        let ch = st
            .channel(channel_id)
            .cloned()
            .ok_or_else(|| FakeError::NotFound(format!("channel {channel_id}")))?;
        let msg = ch
            .messages
            .iter()
            .find(|m| m.ts == message_ts)
            .cloned()
            .ok_or_else(|| FakeError::NotFound(format!("message {message_ts} in {channel_id}")))?;
        let blocks = msg
            .blocks
            .as_ref()
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let (block_id, el) = find_button(&blocks, action_id)?;
        let trigger = st.issue_trigger(user_id, None);
        let response_url = st.issue_response_url(Some(channel_id.to_string()));
        let action_ts = st.next_ts();
        let mut mj = msg.to_json(false);
        mj["team"] = json!(TEAM_ID);
        let payload = json!({
            "type": "block_actions",
            "user": st.user_ref_json(user_id),
            "api_app_id": APP_ID,
            "token": PAYLOAD_TOKEN,
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": false,
            },
            "trigger_id": trigger,
            "team": st.team_json(),
            "enterprise": null,
            "is_enterprise_install": false,
            "channel": {"id": ch.id, "name": ch.name},
            "message": mj,
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [action_json(&el, &block_id, &action_ts)],
        });
        let meta = EnvelopeMeta {
            trigger_id: Some(trigger),
            ..Default::default()
        };
        self.deliver_and_watch(st, EnvelopeType::Interactive, payload, false, None, meta)
    }

    /// Click a button inside an open modal (`container.type: "view"`); the trigger_id can be used
    /// for views.push onto that modal's stack.
    pub async fn click_view_button(
        &self,
        view_id: &str,
        action_id: &str,
        user_id: &str,
    ) -> Result<Delivery, FakeError> {
        let mut st = self.lock();
        let view = st
            .views
            .iter()
            .find(|v| v.id == view_id && v.is_open)
            .cloned()
            .ok_or_else(|| FakeError::NotFound(format!("open view {view_id}")))?;
        let (block_id, el) = find_button(&view.blocks, action_id)?;
        let trigger = st.issue_trigger(user_id, Some(view_id.to_string()));
        let action_ts = st.next_ts();
        let payload = json!({
            "type": "block_actions",
            "user": st.user_ref_json(user_id),
            "api_app_id": APP_ID,
            "token": PAYLOAD_TOKEN,
            "container": {"type": "view", "view_id": view_id},
            "trigger_id": trigger,
            "team": st.team_json(),
            "enterprise": null,
            "is_enterprise_install": false,
            "view": view.json,
            "actions": [action_json(&el, &block_id, &action_ts)],
        });
        let meta = EnvelopeMeta {
            trigger_id: Some(trigger),
            ..Default::default()
        };
        self.deliver_and_watch(st, EnvelopeType::Interactive, payload, false, None, meta)
    }

    /// Deliver an `events_api` envelope wrapping `event` in an `event_callback` (fresh
    /// `event_id`, `retry_attempt: 0`, `retry_reason: ""`).
    pub async fn send_event(&self, event: Value) -> Result<Delivery, FakeError> {
        let mut st = self.lock();
        let n = st.next_seq();
        let event_id = format!("Ev0{:08}", 10_000 + n);
        let payload = json!({
            "token": PAYLOAD_TOKEN,
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": state::unix_now(),
            "authorizations": [{
                "enterprise_id": null,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": true,
                "is_enterprise_install": false,
            }],
            "is_ext_shared_channel": false,
            "event_context": format!("4-fake-{n}"),
        });
        let meta = EnvelopeMeta {
            event_id: Some(event_id),
            ..Default::default()
        };
        self.deliver_and_watch(st, EnvelopeType::EventsApi, payload, false, None, meta)
    }

    /// Deliver an arbitrary envelope to `target`.
    pub async fn send_envelope(
        &self,
        kind: EnvelopeType,
        payload: Value,
        accepts_response_payload: bool,
        target: Target,
    ) -> Result<Delivery, FakeError> {
        let st = self.lock();
        let meta = envelope_meta_for(&payload);
        self.deliver_and_watch(
            st,
            kind,
            payload,
            accepts_response_payload,
            Some(target),
            meta,
        )
    }

    /// The same envelope (same `envelope_id`) to two different live connections.
    pub async fn send_envelope_duplicated(
        &self,
        kind: EnvelopeType,
        payload: Value,
        accepts_response_payload: bool,
    ) -> Result<Delivery, FakeError> {
        self.send_envelope(
            kind,
            payload,
            accepts_response_payload,
            Target::TwoConnections,
        )
        .await
    }

    /// Deliver `d`'s payload again under a new envelope_id (what Slack does on retry); for
    /// events_api with `retry_attempt + 1` and `retry_reason`.
    pub async fn redeliver(
        &self,
        d: &Delivery,
        retry_reason: &str,
        target: Target,
    ) -> Result<Delivery, FakeError> {
        let st = self.lock();
        let rec = st
            .envelopes
            .get(&d.envelope_id)
            .cloned()
            .ok_or_else(|| FakeError::NotFound(format!("envelope {}", d.envelope_id)))?;
        let mut meta = envelope_meta_for(&rec.payload);
        meta.view_id = rec.view_id.clone();
        meta.command_ctx = rec.command_ctx.clone();
        meta.event_id = d.event_id.clone();
        if d.kind == EnvelopeType::EventsApi {
            meta.retry_attempt = d.retry_attempt + 1;
            meta.retry_reason = retry_reason.to_string();
        }
        self.deliver_and_watch(
            st,
            d.kind,
            rec.payload.clone(),
            rec.accepts_response_payload,
            Some(target),
            meta,
        )
    }

    /// Write a raw text frame (malformed or unknown frames) to `target`.
    pub async fn send_raw(&self, target: Target, frame: &str) -> Result<(), FakeError> {
        let mut st = self.lock();
        let live = st.live_conn_indices();
        if live.is_empty() {
            return Err(FakeError::NoConnection);
        }
        let conns = match target {
            Target::Connection(i) if live.contains(&i) => vec![i],
            Target::Connection(i) => {
                return Err(FakeError::NotFound(format!("live connection {i}")))
            }
            Target::TwoConnections => live.iter().take(2).copied().collect(),
            Target::TwiceOnOne => vec![live[0], live[0]],
            Target::Any => {
                let c = live[st.rr % live.len()];
                st.rr += 1;
                vec![c]
            }
        };
        for c in conns {
            if let Some(tx) = st.conn_tx.get(&c) {
                let _ = tx.send(ConnCmd::Frame(frame.to_string()));
            }
            st.frames_sent.push(Frame {
                connection: c,
                at: Instant::now(),
                text: frame.to_string(),
            });
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------------------
    // Socket Mode: acks and records

    /// Wait for the first ack of `envelope_id`.
    pub async fn wait_ack(&self, envelope_id: &str, timeout: Duration) -> Result<Ack, FakeError> {
        self.wait_state(timeout, &format!("ack of {envelope_id}"), |st| {
            st.acks
                .iter()
                .find(|a| a.envelope_id == envelope_id)
                .cloned()
        })
        .await
    }

    /// Acks of known envelopes, in arrival order.
    pub fn acks(&self) -> Vec<Ack> {
        self.lock().acks.clone()
    }

    /// Acks naming an envelope_id the fake never sent (ignored, as Slack does).
    pub fn unknown_acks(&self) -> Vec<Ack> {
        self.lock().unknown_acks.clone()
    }

    /// Envelopes not acked within the deadline.
    pub fn ack_timeouts(&self) -> Vec<AckTimeout> {
        self.lock().ack_timeouts.clone()
    }

    /// Bad acks, bad frames, bad tickets.
    pub fn socket_violations(&self) -> Vec<SocketViolation> {
        self.lock().violations.clone()
    }

    /// Every envelope delivered (including redeliveries).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.clone()
    }

    /// Frames written to sockets.
    pub fn frames_sent(&self) -> Vec<Frame> {
        self.lock().frames_sent.clone()
    }

    /// Text frames received from the app.
    pub fn frames_received(&self) -> Vec<Frame> {
        self.lock().frames_received.clone()
    }

    /// Immediate responses carried in slash-command acks.
    pub fn command_responses(&self) -> Vec<CommandResponse> {
        self.lock().command_responses.clone()
    }

    /// POSTs to response_urls.
    pub fn response_url_posts(&self) -> Vec<ResponseUrlPost> {
        self.lock().response_posts.clone()
    }
}

fn envelope_meta_for(payload: &Value) -> EnvelopeMeta {
    EnvelopeMeta {
        trigger_id: payload
            .get("trigger_id")
            .and_then(Value::as_str)
            .map(String::from),
        event_id: payload
            .get("event_id")
            .and_then(Value::as_str)
            .map(String::from),
        view_id: payload
            .pointer("/view/id")
            .and_then(Value::as_str)
            .map(String::from),
        ..Default::default()
    }
}

fn find_button(blocks: &[Value], action_id: &str) -> Result<(String, Value), FakeError> {
    for b in blocks {
        let block_id = b
            .get("block_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut els: Vec<&Value> = Vec::new();
        if let Some(a) = b.get("elements").and_then(Value::as_array) {
            els.extend(a.iter());
        }
        if let Some(acc) = b.get("accessory") {
            els.push(acc);
        }
        for el in els {
            if el.get("action_id").and_then(Value::as_str) == Some(action_id) {
                if el.get("type").and_then(Value::as_str) != Some("button") {
                    return Err(FakeError::Invalid(format!("`{action_id}` is not a button")));
                }
                return Ok((block_id, el.clone()));
            }
        }
    }
    Err(FakeError::NotFound(format!("button `{action_id}`")))
}

fn action_json(el: &Value, block_id: &str, action_ts: &str) -> Value {
    let mut a = json!({
        "action_id": el.get("action_id").cloned().unwrap_or(Value::Null),
        "block_id": block_id,
        "text": el.get("text").cloned().unwrap_or(Value::Null),
        "type": "button",
        "action_ts": action_ts,
    });
    if let Some(v) = el.get("value") {
        a["value"] = v.clone();
    }
    if let Some(s) = el.get("style") {
        a["style"] = s.clone();
    }
    a
}

fn build_state_values(
    st: &State,
    view: &View,
    inputs: &[(&str, &str)],
) -> Result<Value, FakeError> {
    let given: HashMap<&str, &str> = inputs.iter().copied().collect();
    let mut used: HashSet<&str> = HashSet::new();
    let mut values = Map::new();
    for b in &view.blocks {
        if b.get("type").and_then(Value::as_str) != Some("input") {
            continue;
        }
        let block_id = b
            .get("block_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(el) = b.get("element") else { continue };
        let action_id = el
            .get("action_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let optional = b.get("optional").and_then(Value::as_bool).unwrap_or(false);
        let ty = el.get("type").and_then(Value::as_str).unwrap_or_default();
        let val = match (given.get(action_id), given.get(block_id)) {
            (Some(v), _) => {
                used.insert(action_id);
                Some(*v)
            }
            (None, Some(v)) => {
                used.insert(block_id);
                Some(*v)
            }
            _ => None,
        };
        let empty_required = || {
            FakeError::Invalid(format!(
                "required input `{block_id}` is empty; the Slack client would not submit"
            ))
        };
        let options: Vec<Value> = el
            .get("options")
            .and_then(Value::as_array)
            .cloned()
            .or_else(|| {
                el.get("option_groups").and_then(Value::as_array).map(|gs| {
                    gs.iter()
                        .filter_map(|g| g.get("options").and_then(Value::as_array))
                        .flatten()
                        .cloned()
                        .collect()
                })
            })
            .unwrap_or_default();
        let find_opt = |v: &str| -> Result<Value, FakeError> {
            options
                .iter()
                .find(|o| o.get("value").and_then(Value::as_str) == Some(v))
                .cloned()
                .ok_or_else(|| {
                    FakeError::Invalid(format!("`{v}` is not an option of `{action_id}`"))
                })
        };
        let split = |v: &str| -> Vec<String> {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let mut entry = json!({ "type": ty });
        match ty {
            "plain_text_input" | "email_text_input" | "url_text_input" | "number_input" => {
                let v = val
                    .map(String::from)
                    .or_else(|| {
                        el.get("initial_value")
                            .and_then(Value::as_str)
                            .map(String::from)
                    })
                    .filter(|s| !s.is_empty());
                if v.is_none() && !optional {
                    return Err(empty_required());
                }
                if let Some(s) = &v {
                    let l = s.chars().count() as u64;
                    let min = el.get("min_length").and_then(Value::as_u64).unwrap_or(0);
                    let max = el.get("max_length").and_then(Value::as_u64).unwrap_or(3000);
                    if l < min || l > max {
                        return Err(FakeError::Invalid(format!(
                            "`{action_id}` length {l} outside {min}..={max}"
                        )));
                    }
                }
                entry["value"] = json!(v);
            }
            "static_select" | "radio_buttons" | "external_select" => {
                let o = match val {
                    Some(v) if ty == "external_select" => {
                        Some(json!({"text": {"type": "plain_text", "text": v}, "value": v}))
                    }
                    Some(v) => Some(find_opt(v)?),
                    None => el.get("initial_option").cloned(),
                };
                if o.is_none() && !optional {
                    return Err(empty_required());
                }
                entry["selected_option"] = o.unwrap_or(Value::Null);
            }
            "multi_static_select" | "checkboxes" | "multi_external_select" => {
                let os: Vec<Value> = match val {
                    Some(v) => split(v)
                        .iter()
                        .map(|x| find_opt(x))
                        .collect::<Result<_, _>>()?,
                    None => el
                        .get("initial_options")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                };
                if os.is_empty() && !optional {
                    return Err(empty_required());
                }
                entry["selected_options"] = json!(os);
            }
            "users_select" | "multi_users_select" => {
                let us: Vec<String> = match val {
                    Some(v) => split(v),
                    None => el
                        .get("initial_user")
                        .and_then(Value::as_str)
                        .map(|s| vec![s.to_string()])
                        .or_else(|| {
                            el.get("initial_users").and_then(Value::as_array).map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(String::from)
                                    .collect()
                            })
                        })
                        .unwrap_or_default(),
                };
                for u in &us {
                    if st.user(u).is_none() {
                        return Err(FakeError::NotFound(format!("user {u}")));
                    }
                }
                if us.is_empty() && !optional {
                    return Err(empty_required());
                }
                if ty == "users_select" {
                    entry["selected_user"] = json!(us.first());
                } else {
                    entry["selected_users"] = json!(us);
                }
            }
            "conversations_select"
            | "channels_select"
            | "multi_conversations_select"
            | "multi_channels_select" => {
                let init_key = if ty.contains("channels") {
                    "initial_channel"
                } else {
                    "initial_conversation"
                };
                let cs: Vec<String> = match val {
                    Some(v) => split(v),
                    None => el
                        .get(init_key)
                        .and_then(Value::as_str)
                        .map(|s| vec![s.to_string()])
                        .unwrap_or_default(),
                };
                if cs.is_empty() && !optional {
                    return Err(empty_required());
                }
                let key = match ty {
                    "conversations_select" => "selected_conversation",
                    "channels_select" => "selected_channel",
                    "multi_conversations_select" => "selected_conversations",
                    _ => "selected_channels",
                };
                entry[key] = if ty.starts_with("multi_") {
                    json!(cs)
                } else {
                    json!(cs.first())
                };
            }
            "datepicker" | "timepicker" | "datetimepicker" => {
                let (key, init) = match ty {
                    "datepicker" => ("selected_date", "initial_date"),
                    "timepicker" => ("selected_time", "initial_time"),
                    _ => ("selected_date_time", "initial_date_time"),
                };
                let v = match val {
                    Some(v) if ty == "datetimepicker" => Some(json!(v.parse::<u64>().map_err(
                        |_| FakeError::Invalid(format!("`{v}` is not a unix timestamp"))
                    )?)),
                    Some(v) => Some(json!(v)),
                    None => el.get(init).cloned(),
                };
                if v.is_none() && !optional {
                    return Err(empty_required());
                }
                entry[key] = v.unwrap_or(Value::Null);
            }
            "rich_text_input" => {
                let v = val.filter(|s| !s.is_empty());
                if v.is_none() && !optional {
                    return Err(empty_required());
                }
                entry["rich_text_value"] = match v {
                    Some(t) => json!({"type": "rich_text", "elements": [
                        {"type": "rich_text_section", "elements": [{"type": "text", "text": t}]}
                    ]}),
                    None => Value::Null,
                };
            }
            _ => {
                if val.is_some() {
                    return Err(FakeError::Invalid(format!(
                        "cannot fill `{action_id}` of type `{ty}`"
                    )));
                }
                if !optional {
                    return Err(empty_required());
                }
            }
        }
        let mut inner = Map::new();
        inner.insert(action_id.to_string(), entry);
        values.insert(block_id.to_string(), Value::Object(inner));
    }
    if let Some((k, _)) = inputs.iter().find(|(k, _)| !used.contains(k)) {
        return Err(FakeError::NotFound(format!(
            "no input with action_id or block_id `{k}` in view {}",
            view.id
        )));
    }
    Ok(Value::Object(values))
}
