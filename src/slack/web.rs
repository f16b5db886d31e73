//! Typed Slack Web API calls, on top of the rate-limited transport in [`super::api`].
//!
//! Every Web API method incd calls is a [`Method`] and a typed function here: arguments are
//! domain values and ids, results are ids or small structs, and the request bodies are exactly
//! the ones Slack documents. Method names and `serde_json::Value` bodies stay inside `slack/`;
//! the manifest's scope table is checked against [`Method::ALL`].

use serde_json::{json, Value};

use super::api::{SlackApi, SlackError};
use crate::incident::ids::{ChannelId, MessageTs, UserId};

/// Every Web API method incd calls with the bot token (plus `apps.connections.open` with the app
/// token, which needs no bot scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    AuthTest,
    ViewsOpen,
    ViewsPublish,
    ConversationsCreate,
    ConversationsInvite,
    ConversationsSetTopic,
    ConversationsRename,
    ConversationsJoin,
    ConversationsInfo,
    UsersConversations,
    ConversationsHistory,
    ConversationsReplies,
    ChatGetPermalink,
    ConversationsMembers,
    ChatPostMessage,
    ChatUpdate,
    ChatPostEphemeral,
    PinsAdd,
    BookmarksAdd,
    ConversationsArchive,
}

impl Method {
    /// Every method, for the manifest's scope check.
    pub const ALL: &'static [Method] = &[
        Method::AuthTest,
        Method::ViewsOpen,
        Method::ViewsPublish,
        Method::ConversationsCreate,
        Method::ConversationsInvite,
        Method::ConversationsSetTopic,
        Method::ConversationsRename,
        Method::ConversationsJoin,
        Method::ConversationsInfo,
        Method::UsersConversations,
        Method::ConversationsHistory,
        Method::ConversationsReplies,
        Method::ChatGetPermalink,
        Method::ConversationsMembers,
        Method::ChatPostMessage,
        Method::ChatUpdate,
        Method::ChatPostEphemeral,
        Method::PinsAdd,
        Method::BookmarksAdd,
        Method::ConversationsArchive,
    ];

    /// The method's name in the Web API.
    pub fn name(self) -> &'static str {
        match self {
            Method::AuthTest => "auth.test",
            Method::ViewsOpen => "views.open",
            Method::ViewsPublish => "views.publish",
            Method::ConversationsCreate => "conversations.create",
            Method::ConversationsInvite => "conversations.invite",
            Method::ConversationsSetTopic => "conversations.setTopic",
            Method::ConversationsRename => "conversations.rename",
            Method::ConversationsJoin => "conversations.join",
            Method::ConversationsInfo => "conversations.info",
            Method::UsersConversations => "users.conversations",
            Method::ConversationsHistory => "conversations.history",
            Method::ConversationsReplies => "conversations.replies",
            Method::ChatGetPermalink => "chat.getPermalink",
            Method::ConversationsMembers => "conversations.members",
            Method::ChatPostMessage => "chat.postMessage",
            Method::ChatUpdate => "chat.update",
            Method::ChatPostEphemeral => "chat.postEphemeral",
            Method::PinsAdd => "pins.add",
            Method::BookmarksAdd => "bookmarks.add",
            Method::ConversationsArchive => "conversations.archive",
        }
    }
}

/// A message read back from Slack.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadMessage {
    pub text: String,
    /// The author (absent for messages from bots without a user and from webhooks).
    pub user: Option<UserId>,
    pub bot_id: Option<String>,
}

/// `event_type` of the metadata incd attaches to its messages, to find them again.
pub const MESSAGE_MARKER: &str = "incd_step";

/// Why `conversations.create` did not create the channel.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CreateChannelError {
    /// A channel (or user group) already has this name.
    #[error("channel name taken")]
    NameTaken,
    /// Slack said `ok` but sent no channel id.
    #[error("Slack returned no channel id")]
    NoChannelId,
    #[error(transparent)]
    Slack(SlackError),
}

/// Who the bot token belongs to (`auth.test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub user_id: Option<UserId>,
    /// Bot user name.
    pub user: String,
    /// Workspace name.
    pub team: String,
    /// The `x-oauth-scopes` header: the scopes the token was granted, comma-separated.
    pub scopes: Option<String>,
}

/// What incd needs to know of a channel (`conversations.info`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelInfo {
    pub name: Option<String>,
    pub is_member: bool,
    pub is_private: bool,
    pub is_archived: bool,
}

/// A message incd posts (`chat.postMessage`), marked so it can be found again.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub channel: &'a ChannelId,
    /// Fallback text (notifications, screen readers).
    pub text: String,
    pub blocks: Option<Value>,
    pub thread_ts: Option<&'a MessageTs>,
    /// `(incident name, step)` in the message's metadata (see [`MESSAGE_MARKER`]).
    pub marker: (&'a str, &'a str),
}

/// What `conversations.archive` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Archived {
    /// Archived now or before.
    Archived,
    /// Slack refuses for a reason retrying cannot fix (its error code), e.g.
    /// `restricted_action` where only admins may archive.
    Refused(String),
}

/// Bookmark a link in a channel's header.
#[derive(Debug, Clone)]
pub struct Bookmark<'a> {
    pub channel: &'a ChannelId,
    pub title: &'a str,
    pub link: &'a str,
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

impl SlackApi {
    async fn json(&self, method: Method, args: Value) -> Result<Value, SlackError> {
        self.call(method.name(), args).await
    }

    async fn form(&self, method: Method, args: &[(&str, &str)]) -> Result<Value, SlackError> {
        self.call_form(method.name(), args).await
    }

    /// `auth.test`: who the bot is, and the scopes its token carries.
    pub async fn whoami(&self) -> Result<BotIdentity, SlackError> {
        let (body, scopes) = self.auth_test().await?;
        Ok(BotIdentity {
            user_id: str_of(&body, &["user_id"]).map(UserId::from),
            user: str_of(&body, &["user"]).unwrap_or_default().to_string(),
            team: str_of(&body, &["team"]).unwrap_or_default().to_string(),
            scopes,
        })
    }

    /// `views.open` with a rendered view.
    pub async fn open_view(&self, trigger_id: &str, view: Value) -> Result<(), SlackError> {
        self.json(
            Method::ViewsOpen,
            json!({"trigger_id": trigger_id, "view": view}),
        )
        .await
        .map(|_| ())
    }

    /// `conversations.create` of a public channel.
    pub async fn create_channel(&self, name: &str) -> Result<ChannelId, CreateChannelError> {
        match self
            .json(
                Method::ConversationsCreate,
                json!({"name": name, "is_private": false}),
            )
            .await
        {
            Ok(resp) => str_of(&resp, &["channel", "id"])
                .map(ChannelId::from)
                .ok_or(CreateChannelError::NoChannelId),
            Err(e) if e.is_code("name_taken") => Err(CreateChannelError::NameTaken),
            Err(e) => Err(CreateChannelError::Slack(e)),
        }
    }

    /// Find a public channel named `name` among the bot's own (`users.conversations`, every
    /// page): one the bot created (`creator` is the bot, or unknown). For adopting a channel an
    /// earlier attempt created.
    pub async fn find_own_channel(
        &self,
        name: &str,
        bot: Option<&UserId>,
    ) -> Result<Option<ChannelId>, SlackError> {
        let mut cursor = String::new();
        for _ in 0..50 {
            let mut args: Vec<(&str, &str)> = vec![
                ("types", "public_channel"),
                ("exclude_archived", "false"),
                ("limit", "200"),
            ];
            if !cursor.is_empty() {
                args.push(("cursor", &cursor));
            }
            let resp = self.form(Method::UsersConversations, &args).await?;
            let bot = bot.map(UserId::as_str);
            let found = resp["channels"].as_array().into_iter().flatten().find(|c| {
                c["name"] == name
                    && (bot.is_none() || c.get("creator").is_none() || c["creator"].as_str() == bot)
            });
            if let Some(c) = found {
                return Ok(c["id"].as_str().map(ChannelId::from));
            }
            match str_of(&resp, &["response_metadata", "next_cursor"]) {
                Some(c) if !c.is_empty() => cursor = c.to_string(),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// `conversations.invite` of one or more users (comma-separated in one request).
    pub async fn invite(&self, channel: &ChannelId, users: &[UserId]) -> Result<(), SlackError> {
        let users: Vec<&str> = users.iter().map(UserId::as_str).collect();
        self.json(
            Method::ConversationsInvite,
            json!({"channel": channel, "users": users.join(",")}),
        )
        .await
        .map(|_| ())
    }

    /// `conversations.setTopic`.
    pub async fn set_topic(&self, channel: &ChannelId, topic: &str) -> Result<(), SlackError> {
        self.json(
            Method::ConversationsSetTopic,
            json!({"channel": channel, "topic": topic}),
        )
        .await
        .map(|_| ())
    }

    /// `conversations.rename`.
    pub async fn rename(&self, channel: &ChannelId, name: &str) -> Result<(), SlackError> {
        self.json(
            Method::ConversationsRename,
            json!({"channel": channel, "name": name}),
        )
        .await
        .map(|_| ())
    }

    /// `conversations.join` of a public channel.
    pub async fn join(&self, channel: &ChannelId) -> Result<(), SlackError> {
        self.json(Method::ConversationsJoin, json!({"channel": channel}))
            .await
            .map(|_| ())
    }

    /// `conversations.info`.
    pub async fn info(&self, channel: &ChannelId) -> Result<ChannelInfo, SlackError> {
        let v = self
            .form(Method::ConversationsInfo, &[("channel", channel.as_str())])
            .await?;
        let ch = &v["channel"];
        Ok(ChannelInfo {
            name: ch["name"].as_str().map(String::from),
            is_member: ch["is_member"].as_bool() == Some(true),
            is_private: ch["is_private"].as_bool() == Some(true),
            is_archived: ch["is_archived"].as_bool() == Some(true),
        })
    }

    /// `chat.postMessage` of a marked message, unfurls off. Returns its ts.
    pub async fn post(&self, m: Message<'_>) -> Result<MessageTs, SlackError> {
        let mut args = json!({
            "channel": m.channel,
            "text": m.text,
            "unfurl_links": false,
            "unfurl_media": false,
            "metadata": {
                "event_type": MESSAGE_MARKER,
                "event_payload": {"incident": m.marker.0, "step": m.marker.1}
            }
        });
        if let Some(b) = m.blocks {
            args["blocks"] = b;
        }
        if let Some(t) = m.thread_ts {
            args["thread_ts"] = json!(t);
        }
        let resp = self.json(Method::ChatPostMessage, args).await?;
        Ok(MessageTs::from(str_of(&resp, &["ts"]).unwrap_or_default()))
    }

    /// `chat.postMessage` of plain text to a user: the app's DM with them.
    pub async fn direct_message(&self, user: &UserId, text: &str) -> Result<(), SlackError> {
        self.json(
            Method::ChatPostMessage,
            json!({"channel": user, "text": text, "unfurl_links": false}),
        )
        .await
        .map(|_| ())
    }

    /// One message, whether top level or a reply in a thread: `conversations.replies` with the
    /// message's own ts (`conversations.history` only sees top-level messages). `None` when Slack
    /// says the message is gone (`thread_not_found`).
    pub async fn read_message(
        &self,
        channel: &ChannelId,
        ts: &MessageTs,
    ) -> Result<Option<ReadMessage>, SlackError> {
        let resp = match self
            .form(
                Method::ConversationsReplies,
                &[
                    ("channel", channel.as_str()),
                    ("ts", ts.as_str()),
                    ("limit", "1"),
                    ("inclusive", "true"),
                ],
            )
            .await
        {
            Err(e) if e.is_code("thread_not_found") => return Ok(None),
            r => r?,
        };
        let found = resp
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|m| m.get("ts").and_then(Value::as_str) == Some(ts.as_str()))
            .map(|m| ReadMessage {
                text: str_of(m, &["text"]).unwrap_or_default().to_string(),
                user: str_of(m, &["user"]).map(UserId::from),
                bot_id: str_of(m, &["bot_id"]).map(String::from),
            });
        Ok(found)
    }

    /// `chat.getPermalink` of a message.
    pub async fn permalink(
        &self,
        channel: &ChannelId,
        ts: &MessageTs,
    ) -> Result<String, SlackError> {
        let resp = self
            .form(
                Method::ChatGetPermalink,
                &[("channel", channel.as_str()), ("message_ts", ts.as_str())],
            )
            .await?;
        Ok(str_of(&resp, &["permalink"])
            .unwrap_or_default()
            .to_string())
    }

    /// `views.publish`: a person's Home tab.
    pub async fn publish_home(&self, user: &UserId, view: Value) -> Result<(), SlackError> {
        self.json(Method::ViewsPublish, json!({"user_id": user, "view": view}))
            .await
            .map(|_| ())
    }

    /// `chat.postEphemeral`: text only `user` sees in `channel` (they must be a member).
    pub async fn post_ephemeral(
        &self,
        channel: &ChannelId,
        user: &UserId,
        text: &str,
    ) -> Result<(), SlackError> {
        self.json(
            Method::ChatPostEphemeral,
            json!({"channel": channel, "user": user, "text": text}),
        )
        .await
        .map(|_| ())
    }

    /// `chat.update` of a message's text and blocks.
    pub async fn update(
        &self,
        channel: &ChannelId,
        ts: &MessageTs,
        text: &str,
        blocks: &Value,
    ) -> Result<(), SlackError> {
        self.json(
            Method::ChatUpdate,
            json!({"channel": channel, "ts": ts, "text": text, "blocks": blocks}),
        )
        .await
        .map(|_| ())
    }

    /// `pins.add`; a message already pinned counts as pinned.
    pub async fn pin(&self, channel: &ChannelId, ts: &MessageTs) -> Result<(), SlackError> {
        match self
            .json(
                Method::PinsAdd,
                json!({"channel": channel, "timestamp": ts}),
            )
            .await
        {
            Err(e) if e.is_code("already_pinned") => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// `conversations.archive`. A channel already archived counts as archived; a workspace that
    /// lets only admins archive answers [`Archived::Refused`] with Slack's code.
    pub async fn archive(&self, channel: &ChannelId) -> Result<Archived, SlackError> {
        match self
            .json(Method::ConversationsArchive, json!({"channel": channel}))
            .await
        {
            Ok(_) => Ok(Archived::Archived),
            Err(e) if e.is_code("already_archived") => Ok(Archived::Archived),
            Err(e)
                if e.is_code("restricted_action")
                    || e.is_code("cant_archive_required")
                    || e.is_code("cant_archive_general") =>
            {
                Ok(Archived::Refused(e.code().unwrap_or_default().to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// `bookmarks.add` of a link.
    pub async fn bookmark(&self, b: Bookmark<'_>) -> Result<(), SlackError> {
        self.json(
            Method::BookmarksAdd,
            json!({"channel_id": b.channel, "title": b.title, "type": "link", "link": b.link}),
        )
        .await
        .map(|_| ())
    }

    /// The channel's members (`conversations.members`, every page): to invite only who is
    /// missing after an invite whose outcome is unknown.
    pub async fn members(&self, channel: &ChannelId) -> Result<Vec<UserId>, SlackError> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _ in 0..50 {
            let mut args: Vec<(&str, &str)> = vec![("channel", channel.as_str()), ("limit", "200")];
            if !cursor.is_empty() {
                args.push(("cursor", &cursor));
            }
            let resp = self.form(Method::ConversationsMembers, &args).await?;
            out.extend(
                resp["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(UserId::from),
            );
            match str_of(&resp, &["response_metadata", "next_cursor"]) {
                Some(c) if !c.is_empty() => cursor = c.to_string(),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Whether message `ts` is pinned in `channel` (its `pinned_to` in `conversations.history`):
    /// to pin only what is not pinned after a `pins.add` whose outcome is unknown.
    pub async fn is_pinned(&self, channel: &ChannelId, ts: &MessageTs) -> Result<bool, SlackError> {
        let resp = self
            .form(
                Method::ConversationsHistory,
                &[
                    ("channel", channel.as_str()),
                    ("oldest", ts.as_str()),
                    ("latest", ts.as_str()),
                    ("inclusive", "true"),
                    ("limit", "1"),
                ],
            )
            .await?;
        Ok(resp["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["ts"] == ts.as_str())
            .any(|m| {
                m["pinned_to"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|c| c == channel.as_str()))
            }))
    }

    /// Find a thread reply incd posted with marker `(incident, step)` under `thread_ts`
    /// (`conversations.replies`, first 200 messages of the thread).
    pub async fn find_own_reply(
        &self,
        channel: &ChannelId,
        thread_ts: &MessageTs,
        incident: &str,
        step: &str,
    ) -> Result<Option<MessageTs>, SlackError> {
        let resp = self
            .form(
                Method::ConversationsReplies,
                &[
                    ("channel", channel.as_str()),
                    ("ts", thread_ts.as_str()),
                    ("limit", "200"),
                    ("include_all_metadata", "true"),
                ],
            )
            .await?;
        Ok(marked(&resp, incident, step))
    }

    /// Find a message incd posted with marker `(incident, step)` in `channel` since `oldest`
    /// (`conversations.history`, newest 200 messages).
    pub async fn find_own_message(
        &self,
        channel: &ChannelId,
        incident: &str,
        step: &str,
        oldest: &str,
    ) -> Result<Option<MessageTs>, SlackError> {
        let resp = self
            .form(
                Method::ConversationsHistory,
                &[
                    ("channel", channel.as_str()),
                    ("oldest", oldest),
                    ("limit", "200"),
                    ("include_all_metadata", "true"),
                ],
            )
            .await?;
        Ok(marked(&resp, incident, step))
    }
}

/// The `ts` of the message in a `messages` answer marked `(incident, step)`.
fn marked(resp: &Value, incident: &str, step: &str) -> Option<MessageTs> {
    resp.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|m| {
            let md = &m["metadata"];
            md["event_type"] == MESSAGE_MARKER
                && md["event_payload"]["incident"] == incident
                && md["event_payload"]["step"] == step
        })
        .and_then(|m| m.get("ts").and_then(Value::as_str))
        .map(MessageTs::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_is_listed_once_with_its_wire_name() {
        let names: std::collections::BTreeSet<&str> =
            Method::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Method::ALL.len());
        // An exhaustive match: a new variant fails to compile until it is listed here and in ALL.
        for m in Method::ALL {
            let listed = match m {
                Method::AuthTest
                | Method::ViewsOpen
                | Method::ViewsPublish
                | Method::ConversationsCreate
                | Method::ConversationsInvite
                | Method::ConversationsSetTopic
                | Method::ConversationsRename
                | Method::ConversationsJoin
                | Method::ConversationsInfo
                | Method::UsersConversations
                | Method::ConversationsHistory
                | Method::ConversationsReplies
                | Method::ChatGetPermalink
                | Method::ConversationsMembers
                | Method::ChatPostMessage
                | Method::ChatUpdate
                | Method::ChatPostEphemeral
                | Method::PinsAdd
                | Method::BookmarksAdd
                | Method::ConversationsArchive => true,
            };
            assert!(listed);
        }
        assert_eq!(Method::ALL.len(), 20);
        assert_eq!(Method::ChatPostMessage.name(), "chat.postMessage");
    }
}
