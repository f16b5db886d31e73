//! Web API method semantics. Every function runs under the state lock, performs the effect and
//! returns the fields of the `ok:true` body, or the error real Slack would answer.

use std::time::Instant;

use serde_json::{json, Map, Value};

use super::blocks::{self, BlocksProblem};
use super::model::*;
use super::state::{parse_ts, unix_now, State};
use super::{APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID};

/// Max `text` of chat.postMessage / postEphemeral (Slack truncates beyond; the fake refuses).
pub(crate) const MAX_POST_TEXT: usize = 40_000;
/// Max `text` of chat.update ("The text field cannot exceed 4,000 characters").
pub(crate) const MAX_UPDATE_TEXT: usize = 4_000;
/// Max `markdown_text`.
pub(crate) const MAX_MARKDOWN_TEXT: usize = 12_000;
/// Max topic length.
pub(crate) const MAX_TOPIC: usize = 250;
/// Max channel-name length.
pub(crate) const MAX_CHANNEL_NAME: usize = 80;
/// Max bookmarks per channel.
pub(crate) const MAX_BOOKMARKS: usize = 100;
/// Max pins per channel.
pub(crate) const MAX_PINS: usize = 100;
/// Max modal stack depth.
pub(crate) const MAX_VIEW_STACK: usize = 3;
/// Max serialized view size (`view_too_large`).
pub(crate) const MAX_VIEW_BYTES: usize = 250 * 1024;
/// Max attachments per message.
pub(crate) const MAX_ATTACHMENTS: usize = 100;

/// An `ok:false` answer.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: String,
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(code: &str) -> ApiError {
        ApiError {
            code: code.to_string(),
            extra: Map::new(),
        }
    }

    pub fn with(mut self, k: &str, v: Value) -> ApiError {
        self.extra.insert(k.to_string(), v);
        self
    }

    pub fn messages(code: &str, msgs: Vec<String>) -> ApiError {
        ApiError::new(code).with("response_metadata", json!({ "messages": msgs }))
    }

    pub fn invalid_args(msg: impl Into<String>) -> ApiError {
        ApiError::messages("invalid_arguments", vec![msg.into()])
    }

    pub fn missing(field: &str) -> ApiError {
        ApiError::invalid_args(format!("[ERROR] missing required field: {field}"))
    }

    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("ok".into(), Value::Bool(false));
        m.insert("error".into(), Value::String(self.code.clone()));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

pub(crate) type Reply = Result<Value, ApiError>;

fn e(code: &str) -> ApiError {
    ApiError::new(code)
}

/// Typed access to normalised arguments.
pub(crate) struct Args<'a>(pub &'a Map<String, Value>);

impl<'a> Args<'a> {
    pub fn raw(&self, k: &str) -> Option<&'a Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    /// A string argument; other JSON types → `invalid_arguments`.
    pub fn string(&self, k: &str) -> Result<Option<&'a str>, ApiError> {
        match self.raw(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid_args(format!(
                "[ERROR] must be a string [json-pointer:/{k}]"
            ))),
        }
    }

    /// A string argument where `""` means absent.
    pub fn nonempty(&self, k: &str) -> Result<Option<&'a str>, ApiError> {
        Ok(self.string(k)?.filter(|s| !s.is_empty()))
    }

    pub fn boolean(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.raw(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "1" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" || s == "0" || s.is_empty() => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid_args(format!(
                "[ERROR] must be a boolean [json-pointer:/{k}]"
            ))),
        }
    }

    pub fn uint(&self, k: &str, err: &str) -> Result<Option<u64>, ApiError> {
        match self.raw(k) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| e(err)),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.parse().map(Some).map_err(|_| e(err)),
            Some(_) => Err(e(err)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Channel helpers

/// Validate a channel name for create/rename.
pub(crate) fn check_channel_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(e("invalid_name_required"));
    }
    if name.chars().count() > MAX_CHANNEL_NAME {
        return Err(e("invalid_name_maxlength"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(e("invalid_name_specials"));
    }
    if name.chars().all(|c| c == '-' || c == '_') {
        return Err(e("invalid_name_punctuation"));
    }
    Ok(())
}

fn is_member(c: &Channel, user: &str) -> bool {
    c.members.iter().any(|m| m == user)
}

/// A channel the bot can see: exists, and (public or the bot is a member).
fn visible(st: &State, id: Option<&str>) -> Result<usize, ApiError> {
    let id = id.ok_or_else(|| e("channel_not_found"))?;
    let i = st.channel_idx(id).ok_or_else(|| e("channel_not_found"))?;
    let c = &st.channels[i];
    if c.is_private && !is_member(c, BOT_USER_ID) {
        return Err(e("channel_not_found"));
    }
    Ok(i)
}

fn require_member(st: &State, i: usize) -> Result<(), ApiError> {
    if is_member(&st.channels[i], BOT_USER_ID) {
        Ok(())
    } else {
        Err(e("not_in_channel"))
    }
}

fn require_not_archived(st: &State, i: usize, code: &str) -> Result<(), ApiError> {
    if st.channels[i].is_archived {
        Err(e(code))
    } else {
        Ok(())
    }
}

/// Channel-type-specific scope check (public vs private vs IM).
fn require_type_scope(
    st: &State,
    c: &Channel,
    public: &[&str],
    private: &[&str],
    im: &[&str],
) -> Result<(), ApiError> {
    let need = if c.is_im {
        im
    } else if c.is_private {
        private
    } else {
        public
    };
    if need.is_empty() || need.iter().any(|s| st.has_scope(s)) {
        Ok(())
    } else {
        Err(missing_scope(st, need[0]))
    }
}

pub(crate) fn missing_scope(st: &State, needed: &str) -> ApiError {
    e("missing_scope")
        .with("needed", json!(needed))
        .with("provided", json!(st.scopes.join(",")))
}

/// Can the bot post into channel `i`?
fn can_post(st: &State, i: usize) -> Result<(), ApiError> {
    let c = &st.channels[i];
    if c.is_archived {
        return Err(e("is_archived"));
    }
    if is_member(c, BOT_USER_ID) {
        return Ok(());
    }
    if c.is_private {
        return Err(e("channel_not_found"));
    }
    if st.has_scope("chat:write.public") {
        return Ok(());
    }
    Err(e("not_in_channel"))
}

fn encode_cursor(offset: usize) -> String {
    format!("offset:{offset}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_cursor(c: &str) -> Option<usize> {
    if !c.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..c.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(c.get(i..i + 2)?, 16).ok())
        .collect();
    let s = String::from_utf8(bytes?).ok()?;
    s.strip_prefix("offset:")?.parse().ok()
}

fn limit_arg(a: &Args) -> Result<usize, ApiError> {
    let l = a.uint("limit", "invalid_limit")?.unwrap_or(100);
    Ok(match l {
        0 => 100,
        n => n.min(999) as usize,
    })
}

fn cursor_arg(a: &Args) -> Result<usize, ApiError> {
    match a.nonempty("cursor")? {
        None => Ok(0),
        Some(c) => decode_cursor(c).ok_or_else(|| e("invalid_cursor")),
    }
}

// ---------------------------------------------------------------------------------------------
// Message content

struct Content {
    text: Option<String>,
    blocks: Option<Value>,
    attachments: Option<Value>,
    /// `Some(None)` = remove (update with `{}`), `Some(Some(v))` = set.
    metadata: Option<Option<Value>>,
    has_markdown: bool,
}

fn parse_json_arg(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) => serde_json::from_str(s).ok(),
        other => Some(other.clone()),
    }
}

fn parse_content(a: &Args, text_max: usize) -> Result<Content, ApiError> {
    let text = a.string("text")?.map(str::to_string);
    let markdown = a.string("markdown_text")?;
    let blocks_raw = a.raw("blocks");
    if let Some(m) = markdown {
        if text.is_some() || blocks_raw.is_some() {
            return Err(e("markdown_text_conflict"));
        }
        if m.chars().count() > MAX_MARKDOWN_TEXT {
            return Err(e("msg_too_long"));
        }
    }
    if let Some(t) = &text {
        if t.chars().count() > text_max {
            return Err(e("msg_too_long"));
        }
    }
    let blocks = match blocks_raw {
        None => None,
        Some(b) => {
            let v = parse_json_arg(b).ok_or_else(|| {
                ApiError::messages(
                    "invalid_blocks_format",
                    vec!["[ERROR] blocks is not valid JSON [json-pointer:/blocks]".into()],
                )
            })?;
            match blocks::check_message_blocks(&v, "/blocks") {
                Ok(()) => Some(v),
                Err(BlocksProblem::Format(m)) => {
                    return Err(ApiError::messages("invalid_blocks_format", vec![m]))
                }
                Err(BlocksProblem::Invalid(ms)) => {
                    return Err(ApiError::messages("invalid_blocks", ms))
                }
            }
        }
    };
    let attachments = match a.raw("attachments") {
        None => None,
        Some(x) => {
            let v = parse_json_arg(x).ok_or_else(|| e("invalid_attachments"))?;
            let arr = v.as_array().ok_or_else(|| e("invalid_attachments"))?;
            if arr.len() > MAX_ATTACHMENTS {
                return Err(e("too_many_attachments"));
            }
            if arr.iter().any(|x| !x.is_object()) {
                return Err(e("invalid_attachments"));
            }
            Some(v)
        }
    };
    let metadata = match a.raw("metadata") {
        None => None,
        Some(x) => {
            let v = parse_json_arg(x).ok_or_else(|| e("invalid_metadata_format"))?;
            let o = v.as_object().ok_or_else(|| e("invalid_metadata_format"))?;
            if o.is_empty() {
                Some(None)
            } else {
                let et_ok = o
                    .get("event_type")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                let ep_ok = o.get("event_payload").is_some_and(Value::is_object);
                if !et_ok || !ep_ok {
                    return Err(e("invalid_metadata_schema"));
                }
                if serde_json::to_string(&v).map(|s| s.len()).unwrap_or(0) > 8_000 {
                    return Err(e("metadata_too_large"));
                }
                Some(Some(v))
            }
        }
    };
    Ok(Content {
        text: match markdown {
            Some(m) => Some(m.to_string()),
            None => text,
        },
        blocks,
        attachments,
        metadata,
        has_markdown: markdown.is_some(),
    })
}

impl Content {
    fn has_body(&self) -> bool {
        self.text.as_deref().is_some_and(|t| !t.is_empty())
            || self
                .blocks
                .as_ref()
                .and_then(Value::as_array)
                .is_some_and(|b| !b.is_empty())
            || self
                .attachments
                .as_ref()
                .and_then(Value::as_array)
                .is_some_and(|b| !b.is_empty())
            || self.has_markdown
    }
}

fn assign_block_ids(st: &mut State, blocks: &mut Option<Value>) {
    if let Some(b) = blocks {
        blocks::assign_ids(b, || st.short_id());
    }
}

fn find_msg(c: &Channel, ts: &str) -> Option<usize> {
    c.messages.iter().position(|m| m.ts == ts)
}

// ---------------------------------------------------------------------------------------------
// Methods

pub(crate) fn dispatch(st: &mut State, method: &str, a: &Args, now: Instant) -> Reply {
    match method {
        "auth.test" => Ok(json!({
            "url": format!("https://{TEAM_DOMAIN}.slack.com/"),
            "team": "Fake Workspace",
            "user": "incd",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "is_enterprise_install": false,
        })),
        "apps.connections.open" => {
            let hex: u128 = rand::Rng::random(&mut rand::rng());
            let ticket = format!("{:032x}", hex);
            st.tickets.insert(ticket.clone(), false);
            st.connection_opens.push(now);
            Ok(json!({
                "url": format!("ws://127.0.0.1:{}/link/?ticket={ticket}&app_id={APP_ID}", st.port)
            }))
        }
        "users.info" => users_info(st, a),
        "conversations.create" => conv_create(st, a),
        "conversations.rename" => conv_rename(st, a),
        "conversations.archive" => conv_archive(st, a),
        "conversations.invite" => conv_invite(st, a),
        "conversations.setTopic" => conv_set_topic(st, a),
        "conversations.join" => conv_join(st, a),
        "conversations.info" => conv_info(st, a),
        "conversations.history" => conv_history(st, a),
        "conversations.replies" => conv_replies(st, a),
        "chat.getPermalink" => chat_get_permalink(st, a),
        "conversations.members" => conv_members(st, a),
        "users.conversations" => users_conversations(st, a),
        "chat.postMessage" => chat_post_message(st, a),
        "chat.update" => chat_update(st, a),
        "chat.postEphemeral" => chat_post_ephemeral(st, a),
        "pins.add" => pins_add(st, a),
        "bookmarks.add" => bookmarks_add(st, a),
        "views.open" => views_open_or_push(st, a, now, false),
        "views.push" => views_open_or_push(st, a, now, true),
        "views.update" => views_update(st, a),
        "views.publish" => views_publish(st, a),
        other => Err(e("unknown_method").with("req_method", json!(other))),
    }
}

fn users_info(st: &mut State, a: &Args) -> Reply {
    let id = a.nonempty("user")?.ok_or_else(|| e("user_not_found"))?;
    let u = st.user(id).ok_or_else(|| e("user_not_found"))?;
    Ok(json!({ "user": st.user_json(u) }))
}

fn conv_create(st: &mut State, a: &Args) -> Reply {
    let name = a.string("name")?.ok_or_else(|| e("missing_argument"))?;
    check_channel_name(name)?;
    let is_private = a.boolean("is_private")?.unwrap_or(false);
    let need: &[&str] = if is_private {
        &["groups:write"]
    } else {
        &["channels:manage", "channels:write"]
    };
    if !need.iter().any(|s| st.has_scope(s)) {
        return Err(missing_scope(st, need[0]));
    }
    if st.channels.iter().any(|c| !c.is_im && c.name == name) {
        return Err(e("name_taken"));
    }
    let id = st.new_channel_id('C');
    st.insert_channel(
        id.clone(),
        name,
        is_private,
        BOT_USER_ID,
        vec![BOT_USER_ID.to_string()],
    );
    let c = st.channel(&id).expect("just inserted");
    Ok(json!({ "channel": st.channel_json(c, false) }))
}

const WRITE_PUBLIC: &[&str] = &["channels:manage", "channels:write"];
const WRITE_PRIVATE: &[&str] = &["groups:write"];
const WRITE_IM: &[&str] = &["im:write"];

fn conv_rename(st: &mut State, a: &Args) -> Reply {
    let i = visible(st, a.nonempty("channel")?)?;
    let name = a
        .string("name")?
        .ok_or_else(|| e("invalid_name_required"))?;
    if st.channels[i].is_im {
        return Err(e("method_not_supported_for_channel_type"));
    }
    require_type_scope(st, &st.channels[i], WRITE_PUBLIC, WRITE_PRIVATE, WRITE_IM)?;
    require_not_archived(st, i, "is_archived")?;
    require_member(st, i)?;
    if st.channels[i].creator != BOT_USER_ID {
        return Err(e("not_authorized"));
    }
    check_channel_name(name)?;
    let id = st.channels[i].id.clone();
    if st
        .channels
        .iter()
        .any(|c| !c.is_im && c.name == name && c.id != id)
    {
        return Err(e("name_taken"));
    }
    let c = &mut st.channels[i];
    if c.name != name {
        let old = std::mem::replace(&mut c.name, name.to_string());
        c.previous_names.push(old);
    }
    let c = &st.channels[i];
    Ok(json!({ "channel": st.channel_json(c, false) }))
}

/// `conversations.archive`: the caller must be a member; `#general` (and required channels)
/// cannot be archived; an archived channel answers `already_archived`. Workspaces that let only
/// admins archive answer `restricted_action` (inject it with a fault).
fn conv_archive(st: &mut State, a: &Args) -> Reply {
    let i = visible(st, a.nonempty("channel")?)?;
    if st.channels[i].is_im {
        return Err(e("method_not_supported_for_channel_type"));
    }
    require_type_scope(st, &st.channels[i], WRITE_PUBLIC, WRITE_PRIVATE, WRITE_IM)?;
    if st.channels[i].id == super::GENERAL_CHANNEL {
        return Err(e("cant_archive_general"));
    }
    require_not_archived(st, i, "already_archived")?;
    require_member(st, i)?;
    st.channels[i].is_archived = true;
    Ok(json!({}))
}

fn conv_invite(st: &mut State, a: &Args) -> Reply {
    let chan = a.nonempty("channel")?;
    let users: Vec<String> = match a.raw("users") {
        None => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect(),
        // slack-morphism serialises `users` as a JSON array; accepted (unverified against real Slack).
        Some(Value::Array(xs)) => {
            let mut out = Vec::new();
            for x in xs {
                match x.as_str() {
                    Some(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
                    _ => {
                        return Err(ApiError::invalid_args(
                            "[ERROR] must be a list of user ids [json-pointer:/users]",
                        ))
                    }
                }
            }
            out
        }
        Some(_) => {
            return Err(ApiError::invalid_args(
                "[ERROR] must be a string [json-pointer:/users]",
            ))
        }
    };
    let i = visible(st, chan)?;
    if users.is_empty() {
        return Err(e("no_user"));
    }
    if users.len() > st.cfg.max_invite_users {
        return Err(ApiError::invalid_args(format!(
            "[ERROR] no more than {} users allowed [json-pointer:/users]",
            st.cfg.max_invite_users
        )));
    }
    let force = a.boolean("force")?.unwrap_or(false);
    if st.channels[i].is_im {
        return Err(e("method_not_supported_for_channel_type"));
    }
    require_type_scope(
        st,
        &st.channels[i],
        &["channels:manage", "channels:write.invites"],
        &["groups:write", "groups:write.invites"],
        WRITE_IM,
    )?;
    require_not_archived(st, i, "is_archived")?;
    require_member(st, i)?;
    let mut errors = Vec::new();
    let mut ok_users: Vec<String> = Vec::new();
    for u in &users {
        if ok_users.contains(u) {
            continue;
        }
        let err = match st.user(u) {
            None => Some("user_not_found"),
            Some(_) if u == BOT_USER_ID => Some("cant_invite_self"),
            Some(usr) if usr.deleted => Some("cant_invite"),
            Some(_) if is_member(&st.channels[i], u) => Some("already_in_channel"),
            Some(_) => None,
        };
        match err {
            Some(code) => errors.push(json!({"user": u, "ok": false, "error": code})),
            None => ok_users.push(u.clone()),
        }
    }
    if !errors.is_empty() && (!force || ok_users.is_empty()) {
        let first = errors[0]["error"]
            .as_str()
            .unwrap_or("user_not_found")
            .to_string();
        return Err(e(&first).with("errors", Value::Array(errors)));
    }
    st.channels[i].members.extend(ok_users);
    let c = &st.channels[i];
    let mut out = json!({ "channel": st.channel_json(c, false) });
    if !errors.is_empty() {
        out["errors"] = Value::Array(errors);
    }
    Ok(out)
}

fn conv_set_topic(st: &mut State, a: &Args) -> Reply {
    let i = visible(st, a.nonempty("channel")?)?;
    let topic = a
        .string("topic")?
        .ok_or_else(|| ApiError::missing("topic"))?;
    require_type_scope(
        st,
        &st.channels[i],
        &["channels:manage", "channels:write.topic"],
        &["groups:write", "groups:write.topic"],
        &["im:write", "im:write.topic"],
    )?;
    require_not_archived(st, i, "is_archived")?;
    require_member(st, i)?;
    if topic.chars().count() > MAX_TOPIC {
        return Err(e("too_long"));
    }
    st.channels[i].topic = Topic {
        value: topic.to_string(),
        creator: BOT_USER_ID.into(),
        last_set: unix_now(),
    };
    let c = &st.channels[i];
    Ok(json!({ "channel": st.channel_json(c, false) }))
}

fn conv_join(st: &mut State, a: &Args) -> Reply {
    let i = visible(st, a.nonempty("channel")?)?;
    let c = &st.channels[i];
    if c.is_im || c.is_private {
        return Err(e("method_not_supported_for_channel_type"));
    }
    require_not_archived(st, i, "is_archived")?;
    let already = is_member(&st.channels[i], BOT_USER_ID);
    if !already {
        st.channels[i].members.push(BOT_USER_ID.into());
    }
    let c = &st.channels[i];
    let mut out = json!({ "channel": st.channel_json(c, false) });
    if already {
        out["warning"] = json!("already_in_channel");
        out["response_metadata"] = json!({"warnings": ["already_in_channel"]});
    }
    Ok(out)
}

fn conv_info(st: &mut State, a: &Args) -> Reply {
    let i = visible(st, a.nonempty("channel")?)?;
    let num = a.boolean("include_num_members")?.unwrap_or(false);
    a.boolean("include_locale")?;
    require_type_scope(
        st,
        &st.channels[i],
        &["channels:read"],
        &["groups:read"],
        &["im:read"],
    )?;
    let c = &st.channels[i];
    Ok(json!({ "channel": st.channel_json(c, num) }))
}

fn conv_history(st: &mut State, a: &Args) -> Reply {
    let i = visible(st, a.nonempty("channel")?)?;
    require_type_scope(
        st,
        &st.channels[i],
        &["channels:history"],
        &["groups:history"],
        &["im:history"],
    )?;
    require_member(st, i)?;
    let oldest = match a.nonempty("oldest")? {
        None => None,
        Some(s) => Some(parse_ts(s).ok_or_else(|| e("invalid_ts_oldest"))?),
    };
    let latest = match a.nonempty("latest")? {
        None => None,
        Some(s) => Some(parse_ts(s).ok_or_else(|| e("invalid_ts_latest"))?),
    };
    let inclusive = a.boolean("inclusive")?.unwrap_or(false);
    let with_md = a.boolean("include_all_metadata")?.unwrap_or(false);
    let limit = limit_arg(a)?;
    let offset = cursor_arg(a)?;
    let c = &st.channels[i];
    let mut msgs: Vec<&Message> = c
        .messages
        .iter()
        .filter(|m| m.thread_ts.is_none() || m.reply_broadcast)
        .filter(|m| {
            let t = parse_ts(&m.ts).unwrap_or(0);
            let lo = oldest.is_none_or(|o| if inclusive { t >= o } else { t > o });
            let hi = latest.is_none_or(|l| if inclusive { t <= l } else { t < l });
            lo && hi
        })
        .collect();
    msgs.reverse();
    let total = msgs.len();
    let page: Vec<Value> = msgs
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|m| {
            let mut j = m.to_json(with_md);
            let replies: Vec<&Message> = c
                .messages
                .iter()
                .filter(|r| r.thread_ts.as_deref() == Some(&m.ts))
                .collect();
            if m.thread_ts.is_none() && !replies.is_empty() {
                j["thread_ts"] = json!(m.ts);
                j["reply_count"] = json!(replies.len());
                j["latest_reply"] = json!(replies.last().map(|r| r.ts.clone()));
                let mut users: Vec<&str> = replies.iter().map(|r| r.user.as_str()).collect();
                users.dedup();
                j["reply_users"] = json!(users);
                j["reply_users_count"] = json!(users.len());
            }
            if c.pins.contains(&m.ts) {
                j["pinned_to"] = json!([c.id]);
            }
            j
        })
        .collect();
    let has_more = offset + page.len() < total;
    let next = if has_more {
        encode_cursor(offset + page.len())
    } else {
        String::new()
    };
    let mut out = json!({
        "messages": page,
        "has_more": has_more,
        "pin_count": c.pins.len(),
    });
    if has_more {
        out["response_metadata"] = json!({ "next_cursor": next });
    }
    Ok(out)
}

/// At most this many messages per `conversations.replies` call for non-Marketplace apps.
const REPLIES_MAX: usize = 15;

/// `conversations.replies`: the ts of a reply gives that reply alone; a parent (or an unthreaded
/// message) gives itself followed by its replies, oldest first, within `oldest`/`latest`.
fn conv_replies(st: &mut State, a: &Args) -> Reply {
    let i = visible(st, a.nonempty("channel")?)?;
    require_type_scope(
        st,
        &st.channels[i],
        &["channels:history"],
        &["groups:history"],
        &["im:history"],
    )?;
    require_member(st, i)?;
    let ts = a.nonempty("ts")?.ok_or_else(|| e("invalid_arguments"))?;
    if parse_ts(ts).is_none() {
        return Err(e("invalid_ts"));
    }
    let oldest = match a.nonempty("oldest")? {
        None => None,
        Some(s) => Some(parse_ts(s).ok_or_else(|| e("invalid_ts_oldest"))?),
    };
    let latest = match a.nonempty("latest")? {
        None => None,
        Some(s) => Some(parse_ts(s).ok_or_else(|| e("invalid_ts_latest"))?),
    };
    let inclusive = a.boolean("inclusive")?.unwrap_or(false);
    let limit = limit_arg(a)?.min(REPLIES_MAX);
    let offset = cursor_arg(a)?;
    let with_md = a.boolean("include_all_metadata")?.unwrap_or(false);
    let c = &st.channels[i];
    let m = c
        .messages
        .iter()
        .find(|m| m.ts == ts)
        .ok_or_else(|| e("thread_not_found"))?;
    let replies: Vec<&Message> = c
        .messages
        .iter()
        .filter(|r| r.ts != m.ts && r.thread_ts.as_deref() == Some(&m.ts))
        .collect();
    let in_range = |m: &&Message| {
        let t = parse_ts(&m.ts).unwrap_or(0);
        let lo = oldest.is_none_or(|o| if inclusive { t >= o } else { t > o });
        let hi = latest.is_none_or(|l| if inclusive { t <= l } else { t < l });
        lo && hi
    };
    let msgs: Vec<&Message> = match &m.thread_ts {
        Some(parent) if parent != &m.ts => vec![m],
        _ => std::iter::once(m)
            .chain(replies.iter().copied())
            .filter(in_range)
            .collect(),
    };
    let thread_of = m.thread_ts.clone().unwrap_or_else(|| m.ts.clone());
    let total = msgs.len();
    let page: Vec<Value> = msgs
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|msg| {
            let mut j = msg.to_json(with_md);
            if !replies.is_empty() || msg.ts != thread_of {
                j["thread_ts"] = json!(thread_of);
            }
            if msg.ts == thread_of && !replies.is_empty() {
                j["reply_count"] = json!(replies.len());
            }
            j
        })
        .collect();
    let has_more = offset + page.len() < total;
    let mut out = json!({ "messages": page, "has_more": has_more });
    if has_more {
        out["response_metadata"] = json!({ "next_cursor": encode_cursor(offset + page.len()) });
    }
    Ok(out)
}

fn chat_get_permalink(st: &mut State, a: &Args) -> Reply {
    let i = visible(st, a.nonempty("channel")?)?;
    let ts = a
        .nonempty("message_ts")?
        .ok_or_else(|| e("message_not_found"))?;
    let c = &st.channels[i];
    let m = c
        .messages
        .iter()
        .find(|m| m.ts == ts)
        .ok_or_else(|| e("message_not_found"))?;
    let mut link = format!(
        "https://{TEAM_DOMAIN}.slack.com/archives/{}/p{}",
        c.id,
        m.ts.replace('.', "")
    );
    if let Some(parent) = m.thread_ts.as_ref().filter(|p| **p != m.ts) {
        link.push_str(&format!("?thread_ts={parent}&cid={}", c.id));
    }
    Ok(json!({ "channel": c.id, "permalink": link }))
}

/// `conversations.members`: member ids, paginated.
fn conv_members(st: &mut State, a: &Args) -> Reply {
    let i = visible(st, a.nonempty("channel")?)?;
    require_type_scope(
        st,
        &st.channels[i],
        &["channels:read"],
        &["groups:read"],
        &["im:read"],
    )?;
    let limit = limit_arg(a)?;
    let offset = cursor_arg(a)?;
    let members = &st.channels[i].members;
    let page: Vec<&String> = members.iter().skip(offset).take(limit).collect();
    let more = offset + page.len() < members.len();
    let next = if more {
        encode_cursor(offset + page.len())
    } else {
        String::new()
    };
    Ok(json!({ "members": page, "response_metadata": { "next_cursor": next } }))
}

fn users_conversations(st: &mut State, a: &Args) -> Reply {
    let types_s = a.nonempty("types")?.unwrap_or("public_channel");
    let mut types = Vec::new();
    for t in types_s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match t {
            "public_channel" | "private_channel" | "mpim" | "im" => types.push(t),
            _ => return Err(e("invalid_types")),
        }
    }
    let user = a.nonempty("user")?.unwrap_or(BOT_USER_ID);
    if st.user(user).is_none() {
        return Err(e("user_not_found"));
    }
    let exclude_archived = a.boolean("exclude_archived")?.unwrap_or(false);
    let limit = limit_arg(a)?;
    let offset = cursor_arg(a)?;
    let all: Vec<&Channel> = st
        .channels
        .iter()
        .filter(|c| is_member(c, user))
        .filter(|c| !(exclude_archived && c.is_archived))
        .filter(|c| {
            let t = if c.is_im {
                "im"
            } else if c.is_private {
                "private_channel"
            } else {
                "public_channel"
            };
            types.contains(&t)
        })
        .filter(|c| !c.is_private || is_member(c, BOT_USER_ID))
        .collect();
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|c| st.channel_json(c, false))
        .collect();
    let more = offset + page.len() < all.len();
    let next = if more {
        encode_cursor(offset + page.len())
    } else {
        String::new()
    };
    Ok(json!({ "channels": page, "response_metadata": { "next_cursor": next } }))
}

/// Resolve chat.postMessage's `channel`: an id, a user id (→ IM), or a channel name.
fn resolve_post_channel(st: &mut State, arg: &str) -> Result<usize, ApiError> {
    if let Some(i) = st.channel_idx(arg) {
        return Ok(i);
    }
    if arg.starts_with('U') || arg.starts_with('W') {
        if !st.cfg.messages_tab_enabled {
            return Err(e("messages_tab_disabled"));
        }
        if st.user(arg).is_some_and(|u| !u.deleted) {
            return Ok(st.im_with(arg));
        }
        return Err(e("channel_not_found"));
    }
    let name = arg.strip_prefix('#').unwrap_or(arg);
    st.channels
        .iter()
        .position(|c| !c.is_im && c.name == name)
        .ok_or_else(|| e("channel_not_found"))
}

fn thread_parent(c: &Channel, ts: &str) -> Result<String, ApiError> {
    if parse_ts(ts).is_none() {
        return Err(ApiError::messages(
            "invalid_thread_ts",
            vec![format!("[ERROR] {ts} is not a valid thread_ts")],
        ));
    }
    let m = c
        .messages
        .iter()
        .find(|m| m.ts == ts)
        .ok_or_else(|| e("thread_not_found"))?;
    Ok(m.thread_ts.clone().unwrap_or_else(|| m.ts.clone()))
}

fn chat_post_message(st: &mut State, a: &Args) -> Reply {
    let arg = a
        .nonempty("channel")?
        .ok_or_else(|| e("channel_not_found"))?;
    let i = resolve_post_channel(st, arg)?;
    can_post(st, i)?;
    let mut content = parse_content(a, MAX_POST_TEXT)?;
    if !content.has_body() {
        return Err(e("no_text"));
    }
    let thread_ts = match a.nonempty("thread_ts")? {
        None => None,
        Some(t) => Some(thread_parent(&st.channels[i], t)?),
    };
    let reply_broadcast = a.boolean("reply_broadcast")?.unwrap_or(false) && thread_ts.is_some();
    for k in ["mrkdwn", "unfurl_links", "unfurl_media", "link_names"] {
        a.boolean(k)?;
    }
    if a.boolean("as_user")? == Some(true) {
        return Err(e("as_user_not_supported"));
    }
    assign_block_ids(st, &mut content.blocks);
    let ts = st.next_ts();
    let msg = Message {
        ts: ts.clone(),
        thread_ts,
        user: BOT_USER_ID.into(),
        bot_id: Some(BOT_ID.into()),
        text: content.text.unwrap_or_default(),
        blocks: content.blocks,
        attachments: content.attachments,
        metadata: content.metadata.flatten(),
        edited: None,
        edit_count: 0,
        reply_broadcast,
    };
    let mut j = msg.to_json(true);
    j["team"] = json!(TEAM_ID);
    let ch = &mut st.channels[i];
    ch.messages.push(msg);
    Ok(json!({ "channel": ch.id, "ts": ts, "message": j }))
}

fn chat_update(st: &mut State, a: &Args) -> Reply {
    let i = visible(st, a.nonempty("channel")?)?;
    let ts = a.nonempty("ts")?.ok_or_else(|| e("message_not_found"))?;
    if st.channels[i].is_archived {
        return Err(e("is_inactive"));
    }
    let mi = find_msg(&st.channels[i], ts).ok_or_else(|| e("message_not_found"))?;
    if st.channels[i].messages[mi].bot_id.as_deref() != Some(BOT_ID) {
        return Err(e("cant_update_message"));
    }
    can_post(st, i)?;
    let mut content = parse_content(a, MAX_UPDATE_TEXT)?;
    if content.text.is_none()
        && content.blocks.is_none()
        && content.attachments.is_none()
        && content.metadata.is_none()
    {
        return Err(e("no_text"));
    }
    if a.boolean("as_user")? == Some(true) {
        return Err(e("as_user_not_supported"));
    }
    assign_block_ids(st, &mut content.blocks);
    let edit_ts = st.next_ts();
    let m = &mut st.channels[i].messages[mi];
    let text_given = content.text.is_some();
    if let Some(t) = content.text {
        m.text = t;
    }
    match content.blocks {
        Some(b) if b.as_array().is_some_and(Vec::is_empty) => m.blocks = None,
        Some(b) => m.blocks = Some(b),
        None if text_given => m.blocks = None,
        None => {}
    }
    match content.attachments {
        Some(x) => m.attachments = Some(x),
        None if text_given => m.attachments = None,
        None => {}
    }
    if let Some(md) = content.metadata {
        m.metadata = md;
    }
    m.edited = Some(Edited {
        user: BOT_USER_ID.into(),
        ts: edit_ts,
    });
    m.edit_count += 1;
    let mut mj = m.to_json(true);
    mj.as_object_mut().map(|o| o.remove("ts"));
    let text = m.text.clone();
    let ch = st.channels[i].id.clone();
    Ok(json!({ "channel": ch, "ts": ts, "text": text, "message": mj }))
}

fn chat_post_ephemeral(st: &mut State, a: &Args) -> Reply {
    let i = visible(st, a.nonempty("channel")?)?;
    let user = a
        .nonempty("user")?
        .ok_or_else(|| ApiError::missing("user"))?;
    can_post(st, i)?;
    if st.user(user).is_none() || !is_member(&st.channels[i], user) {
        return Err(e("user_not_in_channel"));
    }
    let mut content = parse_content(a, MAX_POST_TEXT)?;
    if !content.has_body() {
        return Err(e("no_text"));
    }
    let thread_ts = match a.nonempty("thread_ts")? {
        None => None,
        Some(t) => Some(thread_parent(&st.channels[i], t)?),
    };
    assign_block_ids(st, &mut content.blocks);
    let ts = st.next_ts();
    let channel = st.channels[i].id.clone();
    st.channels[i].ephemerals.push(Ephemeral {
        channel,
        user: user.to_string(),
        message_ts: ts.clone(),
        thread_ts,
        text: content.text.unwrap_or_default(),
        blocks: content.blocks,
    });
    Ok(json!({ "message_ts": ts }))
}

fn pins_add(st: &mut State, a: &Args) -> Reply {
    let i = visible(st, a.nonempty("channel")?)?;
    let ts = a
        .nonempty("timestamp")?
        .ok_or_else(|| e("no_item_specified"))?;
    if parse_ts(ts).is_none() {
        return Err(e("bad_timestamp"));
    }
    require_not_archived(st, i, "is_archived")?;
    require_member(st, i)?;
    let c = &st.channels[i];
    if find_msg(c, ts).is_none() {
        return Err(e("message_not_found"));
    }
    if c.pins.iter().any(|p| p == ts) {
        return Err(e("already_pinned"));
    }
    if c.pins.len() >= MAX_PINS {
        return Err(e("too_many_pins"));
    }
    st.channels[i].pins.push(ts.to_string());
    Ok(json!({}))
}

fn bookmarks_add(st: &mut State, a: &Args) -> Reply {
    let chan = a
        .nonempty("channel_id")?
        .ok_or_else(|| ApiError::missing("channel_id"))?;
    let title = a
        .nonempty("title")?
        .ok_or_else(|| ApiError::missing("title"))?;
    let ty = a
        .nonempty("type")?
        .ok_or_else(|| ApiError::missing("type"))?;
    if ty != "link" {
        return Err(e("invalid_bookmark_type"));
    }
    let i = visible(st, Some(chan))?;
    require_not_archived(st, i, "is_archived")?;
    require_member(st, i)?;
    let link = a.nonempty("link")?.ok_or_else(|| e("invalid_link"))?;
    if !(link.starts_with("http://") || link.starts_with("https://")) {
        return Err(e("invalid_link"));
    }
    let emoji = a.nonempty("emoji")?;
    if let Some(em) = emoji {
        let inner = em.strip_prefix(':').and_then(|x| x.strip_suffix(':'));
        let ok = inner.is_some_and(|x| {
            !x.is_empty()
                && x.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_+-'".contains(c))
        });
        if !ok {
            return Err(e("invalid_emoji"));
        }
    }
    if let Some(al) = a.nonempty("access_level")? {
        if al != "read" && al != "write" {
            return Err(ApiError::invalid_args(
                "[ERROR] must be one of read, write [json-pointer:/access_level]",
            ));
        }
    }
    if st.channels[i].bookmarks.len() >= MAX_BOOKMARKS {
        return Err(e("too_many_bookmarks"));
    }
    let n = st.next_seq();
    let b = Bookmark {
        id: format!("Bk0{:08}", 10_000 + n),
        channel_id: st.channels[i].id.clone(),
        title: title.to_string(),
        link: link.to_string(),
        emoji: emoji.map(str::to_string),
        kind: "link".into(),
        created_by: BOT_USER_ID.into(),
    };
    let now = unix_now();
    let rank = st.channels[i].bookmarks.len();
    let j = json!({
        "id": b.id,
        "channel_id": b.channel_id,
        "title": b.title,
        "link": b.link,
        "emoji": b.emoji,
        "icon_url": null,
        "type": "link",
        "entity_id": null,
        "date_created": now,
        "date_updated": 0,
        "rank": format!("{rank}"),
        "last_updated_by_user_id": BOT_USER_ID,
        "last_updated_by_team_id": TEAM_ID,
        "shortcut_id": null,
        "app_id": APP_ID,
    });
    st.channels[i].bookmarks.push(b);
    Ok(json!({ "bookmark": j }))
}

// ---------------------------------------------------------------------------------------------
// Views

/// Parse and validate the `view` argument; `ptr` is the json-pointer prefix (`/view`).
pub(crate) fn parse_view(raw: Option<&Value>, ptr: &str) -> Result<Value, ApiError> {
    let v = match raw {
        None => return Err(ApiError::missing("view")),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| {
            ApiError::invalid_args(format!(
                "[ERROR] failed to parse view JSON [json-pointer:{ptr}]"
            ))
        })?,
        Some(v) => v.clone(),
    };
    if serde_json::to_string(&v).map(|s| s.len()).unwrap_or(0) > MAX_VIEW_BYTES {
        return Err(e("view_too_large"));
    }
    let errs = blocks::check_modal(&v, ptr);
    if !errs.is_empty() {
        return Err(ApiError::messages("invalid_arguments", errs));
    }
    Ok(v)
}

fn check_trigger(st: &State, a: &Args, now: Instant) -> Result<String, ApiError> {
    let t = match a.nonempty("trigger_id")? {
        Some(t) => t,
        None => a
            .nonempty("interactivity_pointer")?
            .ok_or_else(|| ApiError::missing("trigger_id"))?,
    };
    let parts: Vec<&str> = t.split('.').collect();
    let well_formed = parts.len() == 3
        && parts[..2]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
        && !parts[2].is_empty()
        && parts[2].bytes().all(|c| c.is_ascii_hexdigit());
    if !well_formed {
        return Err(e("invalid_trigger_id"));
    }
    let tr = st.triggers.get(t).ok_or_else(|| e("invalid_trigger_id"))?;
    if tr.used {
        return Err(e("exchanged_trigger_id"));
    }
    if now.duration_since(tr.issued_at) > st.cfg.trigger_ttl {
        return Err(e("expired_trigger_id"));
    }
    Ok(t.to_string())
}

fn external_id_taken(st: &State, ext: &str, except: Option<&str>) -> bool {
    !ext.is_empty()
        && st
            .views
            .iter()
            .any(|v| v.external_id == ext && Some(v.id.as_str()) != except)
}

/// Build the stored view + the JSON Slack returns.
pub(crate) fn make_view(
    st: &mut State,
    input: Value,
    id: String,
    user_id: &str,
    root: Option<String>,
    previous: Option<String>,
    opened_by: &str,
) -> View {
    let mut input = input;
    if let Some(b) = input.get_mut("blocks") {
        blocks::assign_ids(b, || st.short_id());
    }
    let hash = st.new_hash();
    let root = root.unwrap_or_else(|| id.clone());
    let s = |k: &str| {
        input
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut j = json!({
        "id": id,
        "team_id": TEAM_ID,
        "type": "modal",
        "title": input.get("title").cloned().unwrap_or(Value::Null),
        "close": input.get("close").cloned().unwrap_or(Value::Null),
        "submit": input.get("submit").cloned().unwrap_or(Value::Null),
        "blocks": input.get("blocks").cloned().unwrap_or(json!([])),
        "private_metadata": s("private_metadata"),
        "callback_id": s("callback_id"),
        "external_id": s("external_id"),
        "state": {"values": {}},
        "hash": hash,
        "clear_on_close": input.get("clear_on_close").and_then(Value::as_bool).unwrap_or(false),
        "notify_on_close": input.get("notify_on_close").and_then(Value::as_bool).unwrap_or(false),
        "root_view_id": root,
        "previous_view_id": previous,
        "app_id": APP_ID,
        "app_installed_team_id": TEAM_ID,
        "bot_id": BOT_ID,
    });
    if let Some(sd) = input.get("submit_disabled") {
        j["submit_disabled"] = sd.clone();
    }
    View {
        id,
        user_id: user_id.to_string(),
        callback_id: s("callback_id"),
        private_metadata: s("private_metadata"),
        external_id: s("external_id"),
        hash,
        title: input
            .pointer("/title/text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        blocks: input
            .get("blocks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        root_view_id: root,
        previous_view_id: previous,
        opened_by: opened_by.to_string(),
        is_open: true,
        update_count: 0,
        errors: None,
        json: j,
    }
}

/// Replace a stored view's content (views.update / response_action update).
pub(crate) fn replace_view(st: &mut State, view_id: &str, input: Value) -> Option<Value> {
    let idx = st.views.iter().position(|v| v.id == view_id)?;
    let (user, root, prev, opened_by, count) = {
        let v = &st.views[idx];
        (
            v.user_id.clone(),
            v.root_view_id.clone(),
            v.previous_view_id.clone(),
            v.opened_by.clone(),
            v.update_count,
        )
    };
    let mut nv = make_view(
        st,
        input,
        view_id.to_string(),
        &user,
        Some(root),
        prev,
        &opened_by,
    );
    nv.update_count = count + 1;
    let j = nv.json.clone();
    st.views[idx] = nv;
    Some(j)
}

/// Push `input` on the stack holding `below`. Caller checked depth.
pub(crate) fn push_view(st: &mut State, below: &str, input: Value, opened_by: &str) -> Value {
    let si = st.stack_of(below).expect("caller checked the stack");
    let root = st.stacks[si][0].clone();
    let top = st.stacks[si].last().cloned();
    let user = st
        .views
        .iter()
        .find(|v| v.id == root)
        .map(|v| v.user_id.clone())
        .unwrap_or_default();
    let id = st.new_view_id();
    let v = make_view(st, input, id.clone(), &user, Some(root), top, opened_by);
    let j = v.json.clone();
    st.views.push(v);
    st.stacks[si].push(id);
    j
}

fn views_open_or_push(st: &mut State, a: &Args, now: Instant, push: bool) -> Reply {
    let view_raw = a.raw("view");
    if view_raw.is_none() {
        return Err(ApiError::missing("view"));
    }
    let trigger = check_trigger(st, a, now)?;
    let view = parse_view(view_raw, "/view")?;
    let ext = view
        .get("external_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    if external_id_taken(st, ext, None) {
        return Err(e("duplicate_external_id"));
    }
    let tr = st.triggers.get(&trigger).cloned().expect("checked");
    if push {
        // The stack the trigger came from, else the user's open stack.
        let below = tr
            .view_id
            .clone()
            .filter(|v| st.stack_of(v).is_some())
            .or_else(|| {
                st.stacks
                    .iter()
                    .rev()
                    .find(|s| {
                        st.views
                            .iter()
                            .any(|v| v.id == s[0] && v.user_id == tr.user_id)
                    })
                    .map(|s| s[0].clone())
            })
            .ok_or_else(|| e("not_found"))?;
        let si = st.stack_of(&below).expect("found");
        if st.stacks[si].len() >= MAX_VIEW_STACK {
            return Err(e("push_limit_reached"));
        }
        st.triggers.get_mut(&trigger).expect("checked").used = true;
        let j = push_view(st, &below, view, "views.push");
        return Ok(json!({ "view": j }));
    }
    st.triggers.get_mut(&trigger).expect("checked").used = true;
    // One modal on screen per user: a new views.open replaces the user's open stack.
    let user_stacks: Vec<usize> = st
        .stacks
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            st.views
                .iter()
                .any(|v| v.id == s[0] && v.user_id == tr.user_id)
        })
        .map(|(i, _)| i)
        .collect();
    for si in user_stacks.into_iter().rev() {
        st.close_stack(si);
    }
    let id = st.new_view_id();
    let v = make_view(st, view, id.clone(), &tr.user_id, None, None, "views.open");
    let j = v.json.clone();
    st.views.push(v);
    st.stacks.push(vec![id]);
    Ok(json!({ "view": j }))
}

fn views_publish(st: &mut State, a: &Args) -> Reply {
    let user = a
        .nonempty("user_id")?
        .ok_or_else(|| ApiError::missing("user_id"))?
        .to_string();
    if st.user(&user).is_none_or(|u| u.deleted) {
        return Err(e("user_not_found"));
    }
    let v = match a.raw("view") {
        None => return Err(ApiError::missing("view")),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| {
            ApiError::invalid_args("[ERROR] failed to parse view JSON [json-pointer:/view]")
        })?,
        Some(v) => v.clone(),
    };
    if serde_json::to_string(&v).map(|s| s.len()).unwrap_or(0) > MAX_VIEW_BYTES {
        return Err(e("view_too_large"));
    }
    let errs = blocks::check_home(&v, "/view");
    if !errs.is_empty() {
        return Err(ApiError::messages("invalid_arguments", errs));
    }
    let id = format!("V{}", st.short_id());
    let mut j = v.clone();
    j["id"] = json!(id);
    j["team_id"] = json!(TEAM_ID);
    st.home_views.push((user, v));
    Ok(json!({ "view": j }))
}

fn views_update(st: &mut State, a: &Args) -> Reply {
    let view_raw = a.raw("view");
    if view_raw.is_none() {
        return Err(ApiError::missing("view"));
    }
    let view_id = a.nonempty("view_id")?;
    let external_id = a.nonempty("external_id")?;
    let target = match (view_id, external_id) {
        (Some(id), _) => st.views.iter().find(|v| v.id == id),
        (None, Some(ext)) => st.views.iter().find(|v| v.external_id == ext),
        (None, None) => return Err(ApiError::missing("view_id")),
    };
    let target = target.filter(|v| v.is_open).ok_or_else(|| e("not_found"))?;
    let id = target.id.clone();
    if let Some(h) = a.nonempty("hash")? {
        if h != target.hash {
            return Err(e("hash_conflict"));
        }
    }
    let view = parse_view(view_raw, "/view")?;
    let ext = view
        .get("external_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    if external_id_taken(st, ext, Some(&id)) {
        return Err(e("duplicate_external_id"));
    }
    let j = replace_view(st, &id, view).expect("exists");
    Ok(json!({ "view": j }))
}
