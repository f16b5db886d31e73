//! The workspace and recording state behind one mutex. Never held across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::model::*;
use super::ratelimit::RateLimiter;
use super::{FakeSlackConfig, APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID};

/// Commands to a connection task.
#[derive(Debug)]
pub(crate) enum ConnCmd {
    /// Write a text frame (ignored while silent).
    Frame(String),
    /// Write a `disconnect` frame; close after the delay if given.
    Disconnect {
        reason: String,
        close_after: Option<Duration>,
    },
    /// Send a close frame and end.
    Close,
    /// End without a close frame (abrupt TCP close).
    Drop,
    /// Stop sending and reading anything; keep TCP open.
    Silent,
}

/// A trigger id the fake handed out.
#[derive(Debug, Clone)]
pub(crate) struct Trigger {
    pub user_id: String,
    pub issued_at: Instant,
    pub used: bool,
    /// Set when issued from inside a modal (block action in a view, view submission).
    pub view_id: Option<String>,
}

/// An envelope that was sent and may be acked.
#[derive(Debug, Clone)]
pub(crate) struct EnvelopeRecord {
    pub kind: EnvelopeType,
    /// `payload.type` for interactive envelopes (`view_submission`, `block_actions`, …).
    pub payload_type: Option<String>,
    pub accepts_response_payload: bool,
    pub sent_at: Instant,
    pub acked: bool,
    pub timed_out: bool,
    /// The submitted view, for view_submission.
    pub view_id: Option<String>,
    pub retry_attempt: u32,
    pub payload: Value,
    /// Slash command context (channel, user) for immediate responses.
    pub command_ctx: Option<(String, String)>,
}

/// Where a response_url came from.
#[derive(Debug, Clone)]
pub(crate) struct ResponseUrlCtx {
    #[allow(dead_code)]
    pub channel_id: Option<String>,
}

pub(crate) struct State {
    pub cfg: FakeSlackConfig,
    pub port: u16,
    pub log: bool,
    pub scopes: Vec<String>,
    pub users: Vec<User>,
    pub channels: Vec<Channel>,
    pub views: Vec<View>,
    /// The Home tab published for each user (`views.publish`), latest last.
    pub home_views: Vec<(String, Value)>,
    /// Index into `views` of the next view `wait_view_opened` returns.
    pub view_cursor: usize,
    /// Open modal stacks: each a list of view ids, bottom first.
    pub stacks: Vec<Vec<String>>,
    pub triggers: HashMap<String, Trigger>,
    pub calls: Vec<ApiCall>,
    pub faults: HashMap<String, VecDeque<Fault>>,
    /// Random faults for calls no scripted fault answers (`crate::chaos`).
    pub chaos: Option<std::sync::Arc<crate::chaos::Chaos>>,
    pub latency: Duration,
    pub rate: RateLimiter,
    pub early_retries: Vec<EarlyRetry>,
    pub rate_limit_events: Vec<RateLimitEvent>,
    /// ticket → used
    pub tickets: HashMap<String, bool>,
    pub connection_opens: Vec<Instant>,
    pub conns: Vec<ConnectionInfo>,
    pub conn_tx: HashMap<usize, UnboundedSender<ConnCmd>>,
    pub rr: usize,
    pub default_target: Target,
    pub envelopes: HashMap<String, EnvelopeRecord>,
    pub deliveries: Vec<Delivery>,
    pub acks: Vec<Ack>,
    pub unknown_acks: Vec<Ack>,
    pub ack_timeouts: Vec<AckTimeout>,
    pub violations: Vec<SocketViolation>,
    pub frames_sent: Vec<Frame>,
    pub frames_received: Vec<Frame>,
    pub command_responses: Vec<CommandResponse>,
    pub response_urls: HashMap<String, ResponseUrlCtx>,
    pub response_posts: Vec<ResponseUrlPost>,
    seq: u64,
    last_ts_us: u128,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parse a Slack ts `"1700000000.000100"` into microseconds; `None` when malformed.
pub(crate) fn parse_ts(ts: &str) -> Option<u128> {
    let (s, f) = match ts.split_once('.') {
        Some((s, f)) => (s, f),
        None => (ts, ""),
    };
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) || s.len() > 12 {
        return None;
    }
    if !f.bytes().all(|c| c.is_ascii_digit()) || f.len() > 6 {
        return None;
    }
    let secs: u128 = s.parse().ok()?;
    let frac: u128 = if f.is_empty() {
        0
    } else {
        format!("{f:0<6}").parse().ok()?
    };
    Some(secs * 1_000_000 + frac)
}

impl State {
    pub fn new(cfg: FakeSlackConfig, log: bool) -> State {
        let scopes = cfg.scopes.clone();
        let mut st = State {
            cfg,
            port: 0,
            log,
            scopes,
            users: Vec::new(),
            channels: Vec::new(),
            views: Vec::new(),
            home_views: Vec::new(),
            view_cursor: 0,
            stacks: Vec::new(),
            triggers: HashMap::new(),
            calls: Vec::new(),
            faults: HashMap::new(),
            chaos: None,
            latency: Duration::ZERO,
            rate: RateLimiter::default(),
            early_retries: Vec::new(),
            rate_limit_events: Vec::new(),
            tickets: HashMap::new(),
            connection_opens: Vec::new(),
            conns: Vec::new(),
            conn_tx: HashMap::new(),
            rr: 0,
            default_target: Target::Any,
            envelopes: HashMap::new(),
            deliveries: Vec::new(),
            acks: Vec::new(),
            unknown_acks: Vec::new(),
            ack_timeouts: Vec::new(),
            violations: Vec::new(),
            frames_sent: Vec::new(),
            frames_received: Vec::new(),
            command_responses: Vec::new(),
            response_urls: HashMap::new(),
            response_posts: Vec::new(),
            seq: 0,
            last_ts_us: 0,
        };
        st.users.push(User {
            id: BOT_USER_ID.into(),
            name: "incd".into(),
            real_name: "incd".into(),
            is_bot: true,
            deleted: false,
        });
        if st.cfg.default_workspace {
            st.users.push(User {
                id: super::DEFAULT_USER.into(),
                name: "alice".into(),
                real_name: "Alice Example".into(),
                is_bot: false,
                deleted: false,
            });
            st.insert_channel(
                super::GENERAL_CHANNEL.into(),
                "general",
                false,
                super::DEFAULT_USER,
                vec![super::DEFAULT_USER.to_string()],
            );
        }
        st
    }

    pub fn log(&self, msg: impl FnOnce() -> String) {
        if self.log {
            eprintln!("[fake-slack] {}", msg());
        }
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A fresh message timestamp, strictly increasing.
    pub fn next_ts(&mut self) -> String {
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let v = now_us.max(self.last_ts_us + 1);
        self.last_ts_us = v;
        format!("{}.{:06}", v / 1_000_000, v % 1_000_000)
    }

    pub fn new_channel_id(&mut self, prefix: char) -> String {
        let n = self.next_seq();
        format!("{prefix}0{:08}", 10_000 + n)
    }

    pub fn new_view_id(&mut self) -> String {
        let n = self.next_seq();
        format!("V0{:08}", 10_000 + n)
    }

    pub fn new_hash(&mut self) -> String {
        let r: u32 = rand::rng().random();
        format!("{}.{:08x}", unix_now(), r)
    }

    /// A short random id like Slack assigns to blocks/actions lacking one.
    pub fn short_id(&mut self) -> String {
        const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut r = rand::rng();
        let n = self.next_seq();
        let s: String = (0..4)
            .map(|_| ALPHA[r.random_range(0..ALPHA.len())] as char)
            .collect();
        format!("{s}{n}")
    }

    pub fn new_envelope_id(&mut self) -> String {
        let mut r = rand::rng();
        let n = self.next_seq();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            r.random::<u32>(),
            r.random::<u16>(),
            r.random::<u16>() & 0xfff,
            r.random::<u16>() & 0xfff,
            n
        )
    }

    /// Issue a trigger id (`"<n>.<n>.<hex>"`) for `user_id`.
    pub fn issue_trigger(&mut self, user_id: &str, view_id: Option<String>) -> String {
        let n = self.next_seq();
        let hex: u128 = rand::rng().random();
        let id = format!("{}.{}.{:032x}", 1_000_000_000 + n, 2_000_000_000u64, hex);
        self.triggers.insert(
            id.clone(),
            Trigger {
                user_id: user_id.to_string(),
                issued_at: Instant::now(),
                used: false,
                view_id,
            },
        );
        id
    }

    pub fn issue_response_url(&mut self, channel_id: Option<String>) -> String {
        let n = self.next_seq();
        let hex: u64 = rand::rng().random();
        let id = format!("{n}-{hex:016x}");
        self.response_urls
            .insert(id.clone(), ResponseUrlCtx { channel_id });
        format!("http://127.0.0.1:{}/response/{TEAM_ID}/{id}", self.port)
    }

    pub fn has_scope(&self, s: &str) -> bool {
        self.scopes.iter().any(|x| x == s)
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn channel_idx(&self, id: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.id == id)
    }

    pub fn channel(&self, id: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }

    pub fn insert_channel(
        &mut self,
        id: String,
        name: &str,
        is_private: bool,
        creator: &str,
        members: Vec<String>,
    ) -> String {
        self.channels.push(Channel {
            id: id.clone(),
            name: name.to_string(),
            is_private,
            is_im: false,
            creator: creator.to_string(),
            created: unix_now(),
            members,
            topic: Topic::default(),
            purpose: String::new(),
            is_archived: false,
            previous_names: Vec::new(),
            messages: Vec::new(),
            pins: Vec::new(),
            bookmarks: Vec::new(),
            ephemerals: Vec::new(),
        });
        id
    }

    /// The IM channel between the bot and `user`, created on first use.
    pub fn im_with(&mut self, user: &str) -> usize {
        if let Some(i) = self.channels.iter().position(|c| c.is_im && c.name == user) {
            return i;
        }
        let id = self.new_channel_id('D');
        self.channels.push(Channel {
            id,
            name: user.to_string(),
            is_private: true,
            is_im: true,
            creator: BOT_USER_ID.into(),
            created: unix_now(),
            members: vec![BOT_USER_ID.into(), user.to_string()],
            topic: Topic::default(),
            purpose: String::new(),
            is_archived: false,
            previous_names: Vec::new(),
            messages: Vec::new(),
            pins: Vec::new(),
            bookmarks: Vec::new(),
            ephemerals: Vec::new(),
        });
        self.channels.len() - 1
    }

    /// The channel object Slack returns from conversations.* methods.
    pub fn channel_json(&self, c: &Channel, num_members: bool) -> Value {
        let mut v = json!({
            "id": c.id,
            "name": c.name,
            "is_channel": !c.is_private && !c.is_im,
            "is_group": c.is_private && !c.is_im,
            "is_im": c.is_im,
            "is_mpim": false,
            "is_private": c.is_private,
            "created": c.created,
            "is_archived": c.is_archived,
            "is_general": c.id == super::GENERAL_CHANNEL,
            "unlinked": 0,
            "name_normalized": c.name,
            "is_shared": false,
            "is_org_shared": false,
            "is_ext_shared": false,
            "is_pending_ext_shared": false,
            "pending_shared": [],
            "context_team_id": TEAM_ID,
            "updated": c.created * 1000,
            "creator": c.creator,
            "is_member": c.members.iter().any(|m| m == BOT_USER_ID),
            "topic": {"value": c.topic.value, "creator": c.topic.creator, "last_set": c.topic.last_set},
            "purpose": {"value": c.purpose, "creator": "", "last_set": 0},
            "previous_names": c.previous_names,
        });
        if c.is_im {
            v["user"] = json!(c.name);
        }
        if num_members {
            v["num_members"] = json!(c.members.len());
        }
        v
    }

    pub fn user_json(&self, u: &User) -> Value {
        let mut v = json!({
            "id": u.id,
            "team_id": TEAM_ID,
            "name": u.name,
            "deleted": u.deleted,
            "real_name": u.real_name,
            "tz": "Europe/London",
            "tz_label": "British Summer Time",
            "tz_offset": 3600,
            "is_admin": false,
            "is_owner": false,
            "is_bot": u.is_bot,
            "is_app_user": false,
            "updated": 1_700_000_000u64,
            "profile": {
                "real_name": u.real_name,
                "display_name": u.name,
                "team": TEAM_ID,
            },
        });
        if u.is_bot && u.id == BOT_USER_ID {
            v["profile"]["bot_id"] = json!(BOT_ID);
            v["profile"]["api_app_id"] = json!(APP_ID);
        }
        v
    }

    pub fn team_json(&self) -> Value {
        json!({"id": TEAM_ID, "domain": TEAM_DOMAIN})
    }

    pub fn user_ref_json(&self, user_id: &str) -> Value {
        let name = self
            .user(user_id)
            .map(|u| u.name.clone())
            .unwrap_or_default();
        json!({"id": user_id, "username": name, "name": name, "team_id": TEAM_ID})
    }

    /// Index of the open modal stack containing `view_id`.
    pub fn stack_of(&self, view_id: &str) -> Option<usize> {
        self.stacks
            .iter()
            .position(|s| s.iter().any(|v| v == view_id))
    }

    pub fn view_mut(&mut self, id: &str) -> Option<&mut View> {
        self.views.iter_mut().find(|v| v.id == id)
    }

    pub fn close_stack(&mut self, si: usize) {
        let ids = self.stacks.remove(si);
        for id in ids {
            if let Some(v) = self.view_mut(&id) {
                v.is_open = false;
            }
        }
    }

    /// Pop `view_id` (and anything above it) off its stack.
    pub fn pop_view(&mut self, view_id: &str) {
        let Some(si) = self.stack_of(view_id) else {
            return;
        };
        let pos = self.stacks[si]
            .iter()
            .position(|v| v == view_id)
            .unwrap_or(0);
        let removed: Vec<String> = self.stacks[si].drain(pos..).collect();
        for id in removed {
            if let Some(v) = self.view_mut(&id) {
                v.is_open = false;
            }
        }
        if self.stacks[si].is_empty() {
            self.stacks.remove(si);
        }
    }

    /// Connections that can receive envelopes (open or silent), by index.
    pub fn live_conn_indices(&self) -> Vec<usize> {
        self.conns
            .iter()
            .filter(|c| matches!(c.state, ConnState::Open | ConnState::Silent) && !c.over_cap)
            .map(|c| c.idx)
            .collect()
    }

    pub fn conn_mut(&mut self, idx: usize) -> Option<&mut ConnectionInfo> {
        self.conns.iter_mut().find(|c| c.idx == idx)
    }
}
