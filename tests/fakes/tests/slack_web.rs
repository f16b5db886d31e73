//! The fake Slack Web API refuses what real Slack refuses.

use std::time::Duration;

use futures_util::StreamExt;
use incd_fakes::slack::*;
use serde_json::{json, Value};

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Resp {
    fn ok(&self) -> bool {
        self.body["ok"] == json!(true)
    }
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

async fn raw(req: reqwest::RequestBuilder) -> Resp {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    Resp {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// POST JSON with the bot token in the header.
async fn api(slack: &FakeSlack, method: &str, body: Value) -> Resp {
    raw(client()
        .post(format!("{}/{method}", slack.api_url()))
        .bearer_auth(slack.bot_token())
        .json(&body))
    .await
}

async fn api_err(slack: &FakeSlack, method: &str, body: Value) -> String {
    let r = api(slack, method, body).await;
    assert!(!r.ok(), "{method} unexpectedly ok: {}", r.body);
    r.error().to_string()
}

async fn create(slack: &FakeSlack, name: &str) -> String {
    let r = api(slack, "conversations.create", json!({ "name": name })).await;
    assert!(r.ok(), "create {name}: {}", r.body);
    r.body["channel"]["id"].as_str().unwrap().to_string()
}

async fn post(slack: &FakeSlack, channel: &str, text: &str) -> String {
    let r = api(
        slack,
        "chat.postMessage",
        json!({ "channel": channel, "text": text }),
    )
    .await;
    assert!(r.ok(), "post: {}", r.body);
    r.body["ts"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn auth_test_returns_identity_and_granted_scopes_header() {
    let slack = FakeSlack::start().await;
    let r = api(&slack, "auth.test", json!({})).await;
    assert!(r.ok());
    assert_eq!(r.body["user_id"], BOT_USER_ID);
    assert_eq!(r.body["team_id"], TEAM_ID);
    assert_eq!(r.body["bot_id"], BOT_ID);
    let scopes = r.headers["x-oauth-scopes"].to_str().unwrap();
    assert!(scopes.contains("chat:write") && scopes.contains("channels:manage"));
    // GET with a header token works for read methods.
    let r = raw(client()
        .get(format!("{}/auth.test", slack.api_url()))
        .bearer_auth(slack.bot_token()))
    .await;
    assert!(r.ok(), "{}", r.body);
    assert!(slack.rejected().is_empty());
}

#[tokio::test]
async fn token_rules_are_enforced() {
    let slack = FakeSlack::start().await;
    let url = |m: &str| format!("{}/{m}", slack.api_url());
    // JSON body with the token in the body, not the header.
    let r = raw(client()
        .post(url("auth.test"))
        .json(&json!({"token": slack.bot_token()})))
    .await;
    assert_eq!(r.error(), "not_authed");
    // Form with the token field is fine.
    let r = raw(client()
        .post(url("auth.test"))
        .form(&[("token", slack.bot_token())]))
    .await;
    assert!(r.ok(), "{}", r.body);
    // Unknown token.
    let r = raw(client()
        .post(url("auth.test"))
        .bearer_auth("xoxb-nope")
        .json(&json!({})))
    .await;
    assert_eq!(r.error(), "invalid_auth");
    // App token on a bot method.
    let r = raw(client()
        .post(url("chat.postMessage"))
        .bearer_auth(slack.app_token())
        .json(&json!({"channel": GENERAL_CHANNEL, "text": "x"})))
    .await;
    assert_eq!(r.error(), "not_allowed_token_type");
    // apps.connections.open: bot token, no token, token only in the form, GET.
    let r = raw(client()
        .post(url("apps.connections.open"))
        .bearer_auth(slack.bot_token()))
    .await;
    assert_eq!(r.error(), "not_allowed_token_type");
    let r = raw(client().post(url("apps.connections.open"))).await;
    assert_eq!(r.error(), "not_authed");
    let r = raw(client()
        .post(url("apps.connections.open"))
        .form(&[("token", slack.app_token())]))
    .await;
    assert_eq!(r.error(), "not_authed");
    let r = raw(client()
        .get(url("apps.connections.open"))
        .bearer_auth(slack.app_token()))
    .await;
    assert_eq!(r.error(), "insecure_request");
    let r = raw(client()
        .post(url("apps.connections.open"))
        .bearer_auth(slack.app_token()))
    .await;
    assert!(r.ok());
    assert!(r.body["url"]
        .as_str()
        .unwrap()
        .starts_with("ws://127.0.0.1:"));
    assert_eq!(slack.connection_opens().len(), 1);
}

#[tokio::test]
async fn transport_rules_are_enforced() {
    let slack = FakeSlack::start().await;
    let url = format!("{}/auth.test", slack.api_url());
    let r = raw(client()
        .post(&url)
        .bearer_auth(slack.bot_token())
        .header("content-type", "text/xml")
        .body("<x/>"))
    .await;
    assert_eq!(r.error(), "invalid_post_type");
    let r = raw(client()
        .post(&url)
        .bearer_auth(slack.bot_token())
        .body("a=b"))
    .await;
    assert_eq!(r.error(), "missing_post_type");
    let r = raw(client()
        .post(&url)
        .bearer_auth(slack.bot_token())
        .header("content-type", "application/json")
        .body("{nope"))
    .await;
    assert_eq!(r.error(), "invalid_json");
    let r = raw(client()
        .post(&url)
        .bearer_auth(slack.bot_token())
        .header("content-type", "application/json; charset=koi8-r")
        .body("{}"))
    .await;
    assert_eq!(r.error(), "invalid_charset");
    let r = api(&slack, "chat.scheduleMessage", json!({})).await;
    assert_eq!(r.error(), "unknown_method");
    // GET on a write method is refused by the fake.
    let r = raw(client()
        .get(format!(
            "{}/chat.postMessage?channel=C1&text=x",
            slack.api_url()
        ))
        .bearer_auth(slack.bot_token()))
    .await;
    assert_eq!(r.error(), FAKE_VERB_REFUSED);
    assert_eq!(slack.rejected().len(), 6);
}

#[tokio::test]
async fn missing_scope_reports_needed_and_provided() {
    let slack = FakeSlack::start().await;
    slack.set_scopes(&["chat:write", "users:read"]);
    let r = api(&slack, "conversations.create", json!({"name": "inc-1"})).await;
    assert_eq!(r.error(), "missing_scope");
    assert_eq!(r.body["needed"], "channels:manage");
    assert_eq!(r.body["provided"], "chat:write,users:read");
    // Private channel needs groups:write even with channels:manage.
    slack.set_scopes(&["channels:manage"]);
    let r = api(
        &slack,
        "conversations.create",
        json!({"name": "inc-2", "is_private": true}),
    )
    .await;
    assert_eq!(r.error(), "missing_scope");
    assert_eq!(r.body["needed"], "groups:write");
    slack.grant_scopes(&["groups:write"]);
    assert!(api(
        &slack,
        "conversations.create",
        json!({"name": "inc-2", "is_private": true})
    )
    .await
    .ok());
}

#[tokio::test]
async fn channel_names_follow_slack_rules() {
    let slack = FakeSlack::start().await;
    for (name, err) in [
        ("Incident", "invalid_name_specials"),
        ("inc 1", "invalid_name_specials"),
        ("inc.1", "invalid_name_specials"),
        ("", "invalid_name_required"),
        ("---", "invalid_name_punctuation"),
        ("__", "invalid_name_punctuation"),
    ] {
        assert_eq!(
            api_err(&slack, "conversations.create", json!({ "name": name })).await,
            err,
            "{name:?}"
        );
    }
    let long = "a".repeat(81);
    assert_eq!(
        api_err(&slack, "conversations.create", json!({ "name": long })).await,
        "invalid_name_maxlength"
    );
    assert!(api(
        &slack,
        "conversations.create",
        json!({ "name": "a".repeat(80) })
    )
    .await
    .ok());
    assert_eq!(
        api_err(&slack, "conversations.create", json!({})).await,
        "missing_argument"
    );
    assert_eq!(
        api_err(&slack, "conversations.create", json!({"name": 5})).await,
        "invalid_arguments"
    );
    // name_taken, including archived channels and channels created by others.
    let id = create(&slack, "inc-db-down").await;
    assert_eq!(
        api_err(
            &slack,
            "conversations.create",
            json!({"name": "inc-db-down"})
        )
        .await,
        "name_taken"
    );
    slack.archive_channel(&id);
    assert_eq!(
        api_err(
            &slack,
            "conversations.create",
            json!({"name": "inc-db-down"})
        )
        .await,
        "name_taken"
    );
    assert_eq!(
        api_err(&slack, "conversations.create", json!({"name": "general"})).await,
        "name_taken"
    );
    let c = slack.channel_by_name("a".repeat(80).as_str()).unwrap();
    assert_eq!(c.creator, BOT_USER_ID);
    assert_eq!(c.members, vec![BOT_USER_ID.to_string()]);
}

#[tokio::test]
async fn rename_requires_creator_membership_and_free_name() {
    let slack = FakeSlack::start().await;
    let mine = create(&slack, "inc-a").await;
    create(&slack, "inc-b").await;
    let theirs = slack.add_channel("human-made", &[DEFAULT_USER, BOT_USER_ID]);
    let outside = slack.add_channel("not-joined", &[DEFAULT_USER]);
    assert_eq!(
        api_err(
            &slack,
            "conversations.rename",
            json!({"channel": theirs, "name": "x"})
        )
        .await,
        "not_authorized"
    );
    assert_eq!(
        api_err(
            &slack,
            "conversations.rename",
            json!({"channel": outside, "name": "x"})
        )
        .await,
        "not_in_channel"
    );
    assert_eq!(
        api_err(
            &slack,
            "conversations.rename",
            json!({"channel": mine, "name": "inc-b"})
        )
        .await,
        "name_taken"
    );
    assert_eq!(
        api_err(
            &slack,
            "conversations.rename",
            json!({"channel": mine, "name": "Inc"})
        )
        .await,
        "invalid_name_specials"
    );
    assert_eq!(
        api_err(
            &slack,
            "conversations.rename",
            json!({"channel": "C404", "name": "x"})
        )
        .await,
        "channel_not_found"
    );
    let r = api(
        &slack,
        "conversations.rename",
        json!({"channel": mine, "name": "inc-a-resolved"}),
    )
    .await;
    assert!(r.ok());
    assert_eq!(r.body["channel"]["name"], "inc-a-resolved");
    let c = slack.channel(&mine).unwrap();
    assert_eq!(c.previous_names, vec!["inc-a".to_string()]);
    slack.archive_channel(&mine);
    assert_eq!(
        api_err(
            &slack,
            "conversations.rename",
            json!({"channel": mine, "name": "y"})
        )
        .await,
        "is_archived"
    );
}

#[tokio::test]
async fn set_topic_limits() {
    let slack = FakeSlack::start().await;
    let id = create(&slack, "inc-topic").await;
    assert_eq!(
        api_err(
            &slack,
            "conversations.setTopic",
            json!({"channel": id, "topic": "x".repeat(251)})
        )
        .await,
        "too_long"
    );
    assert!(api(
        &slack,
        "conversations.setTopic",
        json!({"channel": id, "topic": "x".repeat(250)})
    )
    .await
    .ok());
    let r = api(&slack, "conversations.setTopic", json!({"channel": id})).await;
    assert_eq!(r.error(), "invalid_arguments");
    assert!(r.body["response_metadata"]["messages"][0]
        .as_str()
        .unwrap()
        .contains("topic"));
    assert_eq!(
        api_err(
            &slack,
            "conversations.setTopic",
            json!({"channel": GENERAL_CHANNEL, "topic": "t"})
        )
        .await,
        "not_in_channel"
    );
    assert_eq!(slack.topic(&id), "x".repeat(250));
}

#[tokio::test]
async fn invite_reports_per_user_errors() {
    let slack = FakeSlack::start().await;
    slack.add_user("U0BOB", "bob");
    let id = create(&slack, "inc-invite").await;
    let r = api(
        &slack,
        "conversations.invite",
        json!({"channel": id, "users": "U0BOB,U0NOPE"}),
    )
    .await;
    assert_eq!(r.error(), "user_not_found");
    assert_eq!(r.body["errors"][0]["user"], "U0NOPE");
    assert_eq!(
        slack.members(&id),
        vec![BOT_USER_ID.to_string()],
        "nothing invited without force"
    );
    assert_eq!(
        api_err(
            &slack,
            "conversations.invite",
            json!({"channel": id, "users": BOT_USER_ID})
        )
        .await,
        "cant_invite_self"
    );
    assert_eq!(
        api_err(&slack, "conversations.invite", json!({"channel": id})).await,
        "no_user"
    );
    let many: Vec<String> = (0..101).map(|i| format!("U{i}")).collect();
    assert_eq!(
        api_err(
            &slack,
            "conversations.invite",
            json!({"channel": id, "users": many.join(",")})
        )
        .await,
        "invalid_arguments"
    );
    assert!(api(
        &slack,
        "conversations.invite",
        json!({"channel": id, "users": "U0BOB"})
    )
    .await
    .ok());
    assert_eq!(
        api_err(
            &slack,
            "conversations.invite",
            json!({"channel": id, "users": "U0BOB"})
        )
        .await,
        "already_in_channel"
    );
    // force invites the valid ones.
    let r = api(
        &slack,
        "conversations.invite",
        json!({"channel": id, "users": format!("{DEFAULT_USER},U0NOPE"), "force": true}),
    )
    .await;
    assert!(r.ok(), "{}", r.body);
    assert_eq!(r.body["errors"][0]["error"], "user_not_found");
    assert!(slack.members(&id).contains(&DEFAULT_USER.to_string()));
    assert_eq!(
        api_err(
            &slack,
            "conversations.invite",
            json!({"channel": GENERAL_CHANNEL, "users": "U0BOB"})
        )
        .await,
        "not_in_channel"
    );
}

#[tokio::test]
async fn post_message_needs_membership_and_content() {
    let slack = FakeSlack::start().await;
    // Public channel the bot has not joined.
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({"channel": GENERAL_CHANNEL, "text": "hi"})
        )
        .await,
        "not_in_channel"
    );
    let private = slack.add_private_channel("secret", &[DEFAULT_USER]);
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({"channel": private, "text": "hi"})
        )
        .await,
        "channel_not_found"
    );
    slack.grant_scopes(&["chat:write.public"]);
    assert!(api(
        &slack,
        "chat.postMessage",
        json!({"channel": GENERAL_CHANNEL, "text": "hi"})
    )
    .await
    .ok());
    slack.revoke_scopes(&["chat:write.public"]);
    assert!(api(
        &slack,
        "conversations.join",
        json!({"channel": GENERAL_CHANNEL})
    )
    .await
    .ok());
    let ts = post(&slack, GENERAL_CHANNEL, "joined").await;
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({"channel": GENERAL_CHANNEL})
        )
        .await,
        "no_text"
    );
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({"channel": GENERAL_CHANNEL, "text": ""})
        )
        .await,
        "no_text"
    );
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({"channel": GENERAL_CHANNEL, "text": "x".repeat(40_001)})
        )
        .await,
        "msg_too_long"
    );
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({"channel": "C404", "text": "x"})
        )
        .await,
        "channel_not_found"
    );
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({"channel": GENERAL_CHANNEL, "text": "x", "thread_ts": "1.000001"})
        )
        .await,
        "thread_not_found"
    );
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({"channel": GENERAL_CHANNEL, "text": "x", "thread_ts": "nope"})
        )
        .await,
        "invalid_thread_ts"
    );
    let r = api(
        &slack,
        "chat.postMessage",
        json!({"channel": GENERAL_CHANNEL, "text": "reply", "thread_ts": ts}),
    )
    .await;
    assert!(r.ok());
    assert_eq!(slack.thread_replies(GENERAL_CHANNEL, &ts).len(), 1);
    slack.archive_channel(GENERAL_CHANNEL);
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({"channel": GENERAL_CHANNEL, "text": "x"})
        )
        .await,
        "is_archived"
    );
}

#[tokio::test]
async fn block_kit_limits_are_enforced_in_messages() {
    let slack = FakeSlack::start().await;
    let id = create(&slack, "inc-blocks").await;
    let section =
        |n: usize| json!({"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(n)}});
    let button = |text: usize, value: usize| json!({"type": "button", "action_id": format!("b{text}{value}"), "text": {"type": "plain_text", "text": "x".repeat(text)}, "value": "v".repeat(value)});
    let cases: Vec<(&str, Value)> = vec![
        (
            "51 blocks",
            Value::Array((0..51).map(|_| section(1)).collect()),
        ),
        ("section 3001", json!([section(3001)])),
        (
            "header 151",
            json!([{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]),
        ),
        (
            "header mrkdwn",
            json!([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]),
        ),
        (
            "button text 76",
            json!([{"type": "actions", "elements": [button(76, 1)]}]),
        ),
        (
            "button value 2001",
            json!([{"type": "actions", "elements": [button(5, 2001)]}]),
        ),
        (
            "context 11",
            json!([{"type": "context", "elements": (0..11).map(|_| json!({"type": "mrkdwn", "text": "c"})).collect::<Vec<_>>()}]),
        ),
        (
            "actions 26",
            json!([{"type": "actions", "elements": (0..26).map(|i| json!({"type": "button", "action_id": format!("a{i}"), "text": {"type": "plain_text", "text": "b"}})).collect::<Vec<_>>()}]),
        ),
        (
            "duplicate block_id",
            json!([{"type": "divider", "block_id": "d"}, {"type": "divider", "block_id": "d"}]),
        ),
        ("unknown block", json!([{"type": "carousel"}])),
        ("empty text", json!([section(0)])),
    ];
    for (what, blocks) in cases {
        let r = api(
            &slack,
            "chat.postMessage",
            json!({"channel": id, "text": "fallback", "blocks": blocks}),
        )
        .await;
        assert_eq!(r.error(), "invalid_blocks", "{what}: {}", r.body);
    }
    let r = api(
        &slack,
        "chat.postMessage",
        json!({"channel": id, "blocks": "not json"}),
    )
    .await;
    assert_eq!(r.error(), "invalid_blocks_format");
    // Limits exactly at the edge are fine; blocks without text are fine; form-encoded blocks work.
    let ok_blocks = json!([section(3000), {"type": "actions", "elements": [button(75, 2000)]}]);
    assert!(api(
        &slack,
        "chat.postMessage",
        json!({"channel": id, "blocks": ok_blocks})
    )
    .await
    .ok());
    let r = raw(client()
        .post(format!("{}/chat.postMessage", slack.api_url()))
        .form(&[
            ("token", slack.bot_token()),
            ("channel", id.clone()),
            ("blocks", ok_blocks.to_string()),
        ]))
    .await;
    assert!(r.ok(), "{}", r.body);
    assert_eq!(
        slack.calls_to("chat.postMessage").last().unwrap().args["blocks"],
        ok_blocks,
        "form blocks are parsed in the log"
    );
}

#[tokio::test]
async fn update_only_own_existing_messages() {
    let slack = FakeSlack::start().await;
    let id = slack.add_channel("incidents", &[DEFAULT_USER, BOT_USER_ID]);
    let theirs = slack
        .post_user_message(&id, DEFAULT_USER, "human", None)
        .unwrap();
    let mine = post(&slack, &id, "v1").await;
    assert_eq!(
        api_err(
            &slack,
            "chat.update",
            json!({"channel": id, "ts": theirs, "text": "x"})
        )
        .await,
        "cant_update_message"
    );
    assert_eq!(
        api_err(
            &slack,
            "chat.update",
            json!({"channel": id, "ts": "1.000001", "text": "x"})
        )
        .await,
        "message_not_found"
    );
    assert_eq!(
        api_err(&slack, "chat.update", json!({"channel": id, "text": "x"})).await,
        "message_not_found"
    );
    assert_eq!(
        api_err(
            &slack,
            "chat.update",
            json!({"channel": id, "ts": mine, "text": "x".repeat(4001)})
        )
        .await,
        "msg_too_long"
    );
    assert_eq!(
        api_err(&slack, "chat.update", json!({"channel": id, "ts": mine})).await,
        "no_text"
    );
    let r = api(
        &slack,
        "chat.update",
        json!({"channel": id, "ts": mine, "text": "v2"}),
    )
    .await;
    assert!(r.ok(), "{}", r.body);
    let m = slack.message(&id, &mine).unwrap();
    assert_eq!(m.text, "v2");
    assert!(m.edited.is_some());
    assert_eq!(m.edit_count, 1);
}

#[tokio::test]
async fn ephemeral_pins_and_bookmarks() {
    let slack = FakeSlack::start().await;
    slack.add_user("U0BOB", "bob");
    let id = slack.add_channel("incidents", &[DEFAULT_USER, BOT_USER_ID]);
    assert_eq!(
        api_err(
            &slack,
            "chat.postEphemeral",
            json!({"channel": id, "user": "U0BOB", "text": "x"})
        )
        .await,
        "user_not_in_channel"
    );
    let r = api(
        &slack,
        "chat.postEphemeral",
        json!({"channel": id, "user": DEFAULT_USER, "text": "psst"}),
    )
    .await;
    assert!(r.ok());
    assert_eq!(slack.ephemerals(&id).len(), 1);
    assert_eq!(
        api_err(
            &slack,
            "chat.postEphemeral",
            json!({"channel": GENERAL_CHANNEL, "user": DEFAULT_USER, "text": "x"})
        )
        .await,
        "not_in_channel"
    );

    let ts = post(&slack, &id, "pin me").await;
    assert_eq!(
        api_err(
            &slack,
            "pins.add",
            json!({"channel": id, "timestamp": "1.000001"})
        )
        .await,
        "message_not_found"
    );
    assert_eq!(
        api_err(&slack, "pins.add", json!({"channel": id})).await,
        "no_item_specified"
    );
    assert!(
        api(&slack, "pins.add", json!({"channel": id, "timestamp": ts}))
            .await
            .ok()
    );
    assert_eq!(
        api_err(&slack, "pins.add", json!({"channel": id, "timestamp": ts})).await,
        "already_pinned"
    );
    assert_eq!(slack.pins(&id), vec![ts]);

    let bm =
        |link: &str| json!({"channel_id": id, "title": "Runbook", "type": "link", "link": link});
    assert_eq!(
        api_err(&slack, "bookmarks.add", bm("ftp://x")).await,
        "invalid_link"
    );
    assert_eq!(
        api_err(
            &slack,
            "bookmarks.add",
            json!({"channel_id": id, "title": "t", "type": "file", "link": "https://x"})
        )
        .await,
        "invalid_bookmark_type"
    );
    assert_eq!(
        api_err(
            &slack,
            "bookmarks.add",
            json!({"title": "t", "type": "link", "link": "https://x"})
        )
        .await,
        "invalid_arguments"
    );
    for i in 0..100 {
        let r = api(
            &slack,
            "bookmarks.add",
            bm(&format!("https://example.com/{i}")),
        )
        .await;
        assert!(r.ok(), "{}", r.body);
    }
    assert_eq!(
        api_err(&slack, "bookmarks.add", bm("https://example.com/101")).await,
        "too_many_bookmarks"
    );
    assert_eq!(slack.bookmarks(&id).len(), 100);
}

#[tokio::test]
async fn history_is_newest_first_with_metadata_on_request() {
    let slack = FakeSlack::start().await;
    let id = create(&slack, "inc-history").await;
    let md = json!({"event_type": "incident_declared", "event_payload": {"id": "42"}});
    let r = api(
        &slack,
        "chat.postMessage",
        json!({"channel": id, "text": "one", "metadata": md}),
    )
    .await;
    assert!(r.ok());
    let t1 = r.body["ts"].as_str().unwrap().to_string();
    let t2 = post(&slack, &id, "two").await;
    let t3 = post(&slack, &id, "three").await;
    post_reply(&slack, &id, &t1).await;
    let r = api(&slack, "conversations.history", json!({"channel": id})).await;
    let texts: Vec<&str> = r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["three", "two", "one"]);
    assert!(r.body["messages"][2].get("metadata").is_none());
    assert_eq!(r.body["messages"][2]["reply_count"], 1);
    let r = api(
        &slack,
        "conversations.history",
        json!({"channel": id, "include_all_metadata": true}),
    )
    .await;
    assert_eq!(r.body["messages"][2]["metadata"], md);
    let r = api(
        &slack,
        "conversations.history",
        json!({"channel": id, "oldest": t2}),
    )
    .await;
    assert_eq!(r.body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["messages"][0]["ts"], json!(t3));
    let r = api(
        &slack,
        "conversations.history",
        json!({"channel": id, "limit": 2}),
    )
    .await;
    assert_eq!(r.body["has_more"], true);
    let cursor = r.body["response_metadata"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api(
        &slack,
        "conversations.history",
        json!({"channel": id, "limit": 2, "cursor": cursor}),
    )
    .await;
    assert_eq!(r.body["messages"][0]["text"], "one");
    assert_eq!(
        api_err(
            &slack,
            "conversations.history",
            json!({"channel": id, "cursor": "zz"})
        )
        .await,
        "invalid_cursor"
    );
    assert_eq!(
        api_err(
            &slack,
            "conversations.history",
            json!({"channel": id, "oldest": "abc"})
        )
        .await,
        "invalid_ts_oldest"
    );
    assert_eq!(
        api_err(
            &slack,
            "conversations.history",
            json!({"channel": GENERAL_CHANNEL})
        )
        .await,
        "not_in_channel"
    );
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({"channel": id, "text": "x", "metadata": {"event_payload": {}}})
        )
        .await,
        "invalid_metadata_schema"
    );
}

async fn post_reply(slack: &FakeSlack, channel: &str, ts: &str) {
    let r = api(
        slack,
        "chat.postMessage",
        json!({"channel": channel, "text": "reply", "thread_ts": ts}),
    )
    .await;
    assert!(r.ok());
}

#[tokio::test]
async fn users_conversations_paginates_member_channels() {
    let slack = FakeSlack::start().await;
    for i in 0..5 {
        create(&slack, &format!("inc-{i}")).await;
    }
    slack.add_private_channel("priv", &[DEFAULT_USER, BOT_USER_ID]);
    let mut names = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = api(
            &slack,
            "users.conversations",
            json!({"limit": 2, "cursor": cursor}),
        )
        .await;
        assert!(r.ok(), "{}", r.body);
        for c in r.body["channels"].as_array().unwrap() {
            names.push(c["name"].as_str().unwrap().to_string());
        }
        cursor = r.body["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_string();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(
        names,
        vec!["inc-0", "inc-1", "inc-2", "inc-3", "inc-4"],
        "general is not joined; private not asked for"
    );
    let r = api(
        &slack,
        "users.conversations",
        json!({"types": "public_channel,private_channel"}),
    )
    .await;
    assert_eq!(r.body["channels"].as_array().unwrap().len(), 6);
    assert_eq!(
        api_err(&slack, "users.conversations", json!({"types": "dm"})).await,
        "invalid_types"
    );
    // GET with query arguments.
    let r = raw(client()
        .get(format!(
            "{}/conversations.info?channel={GENERAL_CHANNEL}&include_num_members=true",
            slack.api_url()
        ))
        .bearer_auth(slack.bot_token()))
    .await;
    assert!(r.ok(), "{}", r.body);
    assert_eq!(r.body["channel"]["num_members"], 1);
    let r = api(&slack, "users.info", json!({"user": DEFAULT_USER})).await;
    assert_eq!(r.body["user"]["name"], "alice");
    assert_eq!(
        api_err(&slack, "users.info", json!({"user": "U0NOPE"})).await,
        "user_not_found"
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_record_early_retries() {
    let slack = FakeSlack::start().await;
    // Scale 20: a Tier 2 "minute" (20 calls) lasts three seconds.
    slack.enforce_rate_limits(20.0);
    for i in 0..20 {
        create(&slack, &format!("rl-{i}")).await;
    }
    let r = api(&slack, "conversations.create", json!({"name": "rl-20"})).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.error(), "ratelimited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "{retry}");
    // Retrying immediately is early (and refused again).
    let r = api(&slack, "conversations.create", json!({"name": "rl-20"})).await;
    assert_eq!(r.status, 429);
    assert_eq!(slack.early_retries().len(), 1);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert!(
        api(&slack, "conversations.create", json!({"name": "rl-20"}))
            .await
            .ok()
    );
    assert_eq!(slack.early_retries().len(), 1);
    assert_eq!(slack.rate_limited().len(), 2);
    // chat.postMessage: a burst, then 1 per (here: 2 s) per channel; other channels are
    // independent.
    slack.enforce_rate_limits(0.5);
    let a = slack.channel_by_name("rl-1").unwrap().id;
    let b = slack.channel_by_name("rl-2").unwrap().id;
    for i in 0..DEFAULT_POST_BURST {
        post(&slack, &a, &format!("burst {i}")).await;
    }
    let r = api(
        &slack,
        "chat.postMessage",
        json!({"channel": a, "text": "2"}),
    )
    .await;
    assert_eq!(r.status, 429);
    // One token per 2 s: 2 s to wait, or 1 when the loaded machine took over a second to send
    // the burst (the bucket refilled part of a token meanwhile).
    let retry = r.headers["retry-after"].to_str().unwrap();
    assert!(retry == "2" || retry == "1", "{retry}");
    post(&slack, &b, "1").await;
    assert!(
        !slack.violations().iter().any(|v| v.contains("429")),
        "429s alone are not violations"
    );
    assert!(slack.violations().iter().any(|v| v.contains("early retry")));
}

#[tokio::test]
async fn injected_faults_are_consumed_in_order_and_not_rejections() {
    let slack = FakeSlack::start().await;
    slack.inject_faults(
        "conversations.create",
        [
            Fault::Status(503),
            Fault::Error("internal_error".into()),
            Fault::RateLimited {
                retry_after_secs: 7,
            },
            Fault::Delay(Duration::from_millis(200)),
            Fault::ApplyThenHang,
        ],
    );
    let r = api(&slack, "conversations.create", json!({"name": "f-1"})).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        api_err(&slack, "conversations.create", json!({"name": "f-1"})).await,
        "internal_error"
    );
    let r = api(&slack, "conversations.create", json!({"name": "f-1"})).await;
    assert_eq!(
        (r.status, r.headers["retry-after"].to_str().unwrap()),
        (429, "7")
    );
    let t = std::time::Instant::now();
    assert!(api(&slack, "conversations.create", json!({"name": "f-1"}))
        .await
        .ok());
    assert!(t.elapsed() >= Duration::from_millis(200));
    // ApplyThenHang: the channel exists but the client never hears back.
    let req = client()
        .post(format!("{}/conversations.create", slack.api_url()))
        .bearer_auth(slack.bot_token())
        .timeout(Duration::from_millis(300))
        .json(&json!({"name": "f-2"}))
        .send()
        .await;
    assert!(req.is_err(), "no answer");
    assert!(slack.channel_by_name("f-2").is_some());
    assert_eq!(slack.pending_faults("conversations.create"), 0);
    // The early call after the injected 429 (Retry-After 7) was recorded.
    assert_eq!(slack.early_retries().len(), 2);
    assert!(slack.rejected().is_empty(), "{:?}", slack.rejected());
    // Global latency.
    slack.set_latency(Duration::from_millis(150));
    let t = std::time::Instant::now();
    assert!(api(&slack, "auth.test", json!({})).await.ok());
    assert!(t.elapsed() >= Duration::from_millis(150));
    // Hang never answers.
    slack.set_latency(Duration::ZERO);
    slack.inject_fault("users.info", Fault::Hang);
    let req = client()
        .post(format!("{}/users.info", slack.api_url()))
        .bearer_auth(slack.bot_token())
        .timeout(Duration::from_millis(200))
        .json(&json!({"user": DEFAULT_USER}))
        .send()
        .await;
    assert!(req.is_err());
    assert_eq!(slack.calls_to("users.info")[0].status, 0);
}

fn modal(title: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": "declare_incident",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Declare"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": "{\"channel\":\"C0GENERAL\"}",
        "blocks": [
            {"type": "input", "block_id": "title_block", "label": {"type": "plain_text", "text": "Title"},
             "element": {"type": "plain_text_input", "action_id": "title", "max_length": 150}},
            {"type": "input", "block_id": "severity_block", "label": {"type": "plain_text", "text": "Severity"},
             "element": {"type": "static_select", "action_id": "severity", "options": [
                {"text": {"type": "plain_text", "text": "SEV1"}, "value": "sev1"},
                {"text": {"type": "plain_text", "text": "SEV2"}, "value": "sev2"}]}},
        ]
    })
}

async fn trigger(slack: &FakeSlack) -> String {
    // Trigger ids are only issued with deliveries; a connection is needed.
    let (mut ws, _) = connect(slack).await;
    tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    slack
        .wait_for_connections(1, Duration::from_secs(5))
        .await
        .unwrap();
    slack
        .send_slash_command(SlashCommand::new(
            "/incident",
            "",
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap()
        .trigger_id
        .unwrap()
}

async fn connect(
    slack: &FakeSlack,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    String,
) {
    let r = raw(client()
        .post(format!("{}/apps.connections.open", slack.api_url()))
        .bearer_auth(slack.app_token()))
    .await;
    let url = r.body["url"].as_str().unwrap().to_string();
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    (ws, url)
}

#[tokio::test]
async fn views_open_checks_trigger_ids() {
    let slack = FakeSlack::start_with(FakeSlackConfig {
        // Long enough that the checks below never race it on a loaded 2-core machine.
        trigger_ttl: Duration::from_millis(1500),
        ..Default::default()
    })
    .await;
    let t = trigger(&slack).await;
    for bad in ["", "abc", "123.456", "123.456.xyz!"] {
        let r = api(
            &slack,
            "views.open",
            json!({"trigger_id": bad, "view": modal("Declare")}),
        )
        .await;
        assert!(
            matches!(r.error(), "invalid_trigger_id" | "invalid_arguments"),
            "{bad}: {}",
            r.body
        );
    }
    assert_eq!(
        api_err(
            &slack,
            "views.open",
            json!({"trigger_id": "12345.67890.abcdef", "view": modal("Declare")})
        )
        .await,
        "invalid_trigger_id"
    );
    // A bad view does not consume the trigger.
    let r = api(
        &slack,
        "views.open",
        json!({"trigger_id": t, "view": modal("A title that is far too long")}),
    )
    .await;
    assert_eq!(r.error(), "invalid_arguments");
    assert!(r.body["response_metadata"]["messages"][0]
        .as_str()
        .unwrap()
        .contains("/view/title/text"));
    let r = api(
        &slack,
        "views.open",
        json!({"trigger_id": t, "view": modal("Declare")}),
    )
    .await;
    assert!(r.ok(), "{}", r.body);
    let view_id = r.body["view"]["id"].as_str().unwrap().to_string();
    assert!(view_id.starts_with('V'));
    assert_eq!(
        api_err(
            &slack,
            "views.open",
            json!({"trigger_id": t, "view": modal("Declare")})
        )
        .await,
        "exchanged_trigger_id"
    );
    let v = slack.view(&view_id).unwrap();
    assert_eq!(
        (v.user_id.as_str(), v.callback_id.as_str()),
        (DEFAULT_USER, "declare_incident")
    );
    // Expired.
    let t2 = slack
        .send_slash_command(SlashCommand::new(
            "/incident",
            "",
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap()
        .trigger_id
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        api_err(
            &slack,
            "views.open",
            json!({"trigger_id": t2, "view": modal("Declare")})
        )
        .await,
        "expired_trigger_id"
    );
    // Form-encoded view string works too.
    let t3 = slack
        .send_slash_command(SlashCommand::new(
            "/incident",
            "",
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap()
        .trigger_id
        .unwrap();
    let r = raw(client()
        .post(format!("{}/views.open", slack.api_url()))
        .bearer_auth(slack.bot_token())
        .form(&[("trigger_id", t3), ("view", modal("Declare").to_string())]))
    .await;
    assert!(r.ok(), "{}", r.body);
}

#[tokio::test]
async fn modal_limits_are_enforced() {
    let slack = FakeSlack::start().await;
    let t = trigger(&slack).await;
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut v = modal("Declare");
    v.as_object_mut().unwrap().remove("submit");
    cases.push(("input without submit", v));
    let mut v = modal("Declare");
    v["type"] = json!("home");
    cases.push(("home type", v));
    let mut v = modal("Declare");
    v["submit"]["text"] = json!("s".repeat(25));
    cases.push(("submit 25", v));
    let mut v = modal("Declare");
    v["private_metadata"] = json!("m".repeat(3001));
    cases.push(("private_metadata 3001", v));
    let mut v = modal("Declare");
    v["callback_id"] = json!("c".repeat(256));
    cases.push(("callback_id 256", v));
    let mut v = modal("Declare");
    v["blocks"] = json!([]);
    cases.push(("no blocks", v));
    let mut v = modal("Declare");
    v["blocks"] = Value::Array((0..101).map(|_| json!({"type": "divider"})).collect());
    cases.push(("101 blocks", v));
    let mut v = modal("Declare");
    v["blocks"][1]["block_id"] = json!("title_block");
    cases.push(("duplicate block_id", v));
    let mut v = modal("Declare");
    v["blocks"][0]["label"]["text"] = json!("l".repeat(2001));
    cases.push(("label 2001", v));
    let mut v = modal("Declare");
    v["blocks"][0]["element"]["max_length"] = json!(3001);
    cases.push(("max_length 3001", v));
    let mut v = modal("Declare");
    v["blocks"][0]["element"]["max_length"] = json!(0);
    cases.push(("max_length 0", v));
    let mut v = modal("Declare");
    v["blocks"][0]["element"]["min_length"] = json!(3001);
    cases.push(("min_length 3001", v));
    let mut v = modal("Declare");
    v["blocks"][0]["element"]["initial_value"] = json!("i".repeat(151));
    cases.push(("initial_value over max_length", v));
    let mut v = modal("Declare");
    v["blocks"][0]["element"]["placeholder"] =
        json!({"type": "plain_text", "text": "p".repeat(151)});
    cases.push(("placeholder 151", v));
    let mut v = modal("Declare");
    v["blocks"][1]["element"]["options"] = json!([]);
    cases.push(("no options", v));
    let mut v = modal("Declare");
    v["blocks"][1]["element"]["options"][0]["text"]["text"] = json!("o".repeat(76));
    cases.push(("option text 76", v));
    let mut v = modal("Declare");
    v["blocks"][1]["element"]["options"][0]["value"] = json!("o".repeat(151));
    cases.push(("option value 151", v));
    let mut v = modal("Declare");
    v["blocks"][1]["element"]["initial_option"] =
        json!({"text": {"type": "plain_text", "text": "SEV9"}, "value": "sev9"});
    cases.push(("initial_option not offered", v));
    let mut v = modal("Declare");
    v["blocks"][1]["element"]["options"] = Value::Array(
        (0..101)
            .map(|i| json!({"text": {"type": "plain_text", "text": "o"}, "value": format!("{i}")}))
            .collect(),
    );
    cases.push(("101 options", v));
    let mut v = modal("Declare");
    v["blocks"][0]["element"]["action_id"] = json!("a".repeat(256));
    cases.push(("action_id 256", v));
    for (what, view) in cases {
        let r = api(&slack, "views.open", json!({"trigger_id": t, "view": view})).await;
        assert_eq!(r.error(), "invalid_arguments", "{what}: {}", r.body);
        assert!(!r.body["response_metadata"]["messages"]
            .as_array()
            .unwrap()
            .is_empty());
    }
    let r = api(
        &slack,
        "views.open",
        json!({"trigger_id": t, "view": modal("Declare")}),
    )
    .await;
    assert!(r.ok(), "{}", r.body);
}

#[tokio::test]
async fn views_update_and_push_follow_stack_rules() {
    let slack = FakeSlack::start().await;
    let t = trigger(&slack).await;
    let r = api(
        &slack,
        "views.open",
        json!({"trigger_id": t, "view": modal("Declare")}),
    )
    .await;
    let view = r.body["view"].clone();
    let id = view["id"].as_str().unwrap();
    assert_eq!(
        api_err(
            &slack,
            "views.update",
            json!({"view_id": id, "hash": "1.bad", "view": modal("New")})
        )
        .await,
        "hash_conflict"
    );
    assert_eq!(
        api_err(
            &slack,
            "views.update",
            json!({"view_id": "V404", "view": modal("New")})
        )
        .await,
        "not_found"
    );
    let r = api(
        &slack,
        "views.update",
        json!({"view_id": id, "hash": view["hash"], "view": modal("New")}),
    )
    .await;
    assert!(r.ok(), "{}", r.body);
    assert_ne!(r.body["view"]["hash"], view["hash"]);
    assert_eq!(slack.view(id).unwrap().title, "New");
    // Push twice (stack of 3), then push_limit_reached.
    let mut v2 = modal("Step");
    v2["blocks"][0]["element"]["action_id"] = json!("title2");
    v2["blocks"][0]["block_id"] = json!("tb2");
    v2["blocks"][1] = json!({"type": "actions", "elements": [{"type": "button", "action_id": "more", "text": {"type": "plain_text", "text": "More"}}]});
    let r = api(&slack, "views.update", json!({"view_id": id, "view": v2})).await;
    assert!(r.ok(), "{}", r.body);
    for _ in 0..2 {
        let top = slack.open_views().last().unwrap().id.clone();
        let d = slack
            .click_view_button(&top, "more", DEFAULT_USER)
            .await
            .unwrap();
        let r = api(
            &slack,
            "views.push",
            json!({"trigger_id": d.trigger_id, "view": v2}),
        )
        .await;
        assert!(r.ok(), "{}", r.body);
    }
    let top = slack.open_views().last().unwrap().id.clone();
    let d = slack
        .click_view_button(&top, "more", DEFAULT_USER)
        .await
        .unwrap();
    assert_eq!(
        api_err(
            &slack,
            "views.push",
            json!({"trigger_id": d.trigger_id, "view": v2})
        )
        .await,
        "push_limit_reached"
    );
    assert_eq!(slack.open_views().len(), 3);
}

#[tokio::test]
async fn clear_calls_and_shutdown() {
    let slack = FakeSlack::start().await;
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({"channel": "C404", "text": "x"})
        )
        .await,
        "channel_not_found"
    );
    assert_eq!(slack.violations().len(), 1);
    slack.clear_calls();
    assert!(slack.calls().is_empty() && slack.violations().is_empty());
    slack.shutdown();
    tokio::task::yield_now().await;
    let r = client()
        .post(format!("{}/auth.test", slack.api_url()))
        .bearer_auth(slack.bot_token())
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");
}

// ---- chaos faults --------------------------------------------------------------------------

/// Send one call and report whether a usable answer (status and full body) came back.
async fn answered(slack: &FakeSlack, method: &str, body: Value) -> Option<u16> {
    let r = client()
        .post(format!("{}/{method}", slack.api_url()))
        .bearer_auth(slack.bot_token())
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    r.bytes().await.ok()?;
    Some(status)
}

#[tokio::test]
async fn a_reset_loses_the_call_and_a_lost_response_keeps_its_effect() {
    let slack = FakeSlack::start().await;
    slack.inject_faults(
        "conversations.create",
        [
            Fault::Reset,
            Fault::ApplyThenReset,
            Fault::ApplyThenStatus(500),
        ],
    );
    // Reset: no answer, no channel.
    assert_eq!(
        answered(&slack, "conversations.create", json!({"name": "r-1"})).await,
        None
    );
    assert!(slack.channel_by_name("r-1").is_none());
    // Performed, then the connection drops: the channel exists, the client saw nothing usable.
    assert_eq!(
        answered(&slack, "conversations.create", json!({"name": "r-2"})).await,
        None
    );
    assert!(slack.channel_by_name("r-2").is_some());
    // Performed, then a 500.
    assert_eq!(
        answered(&slack, "conversations.create", json!({"name": "r-3"})).await,
        Some(500)
    );
    assert!(slack.channel_by_name("r-3").is_some());
    // The calls are logged with their fault; none counts as a contract rejection.
    let faults: Vec<_> = slack
        .calls_to("conversations.create")
        .into_iter()
        .map(|c| c.fault)
        .collect();
    assert_eq!(
        faults,
        vec![
            Some(Fault::Reset),
            Some(Fault::ApplyThenReset),
            Some(Fault::ApplyThenStatus(500))
        ]
    );
    assert!(slack.rejected().is_empty(), "{:?}", slack.rejected());
    // A performed-then-lost call that Slack itself would refuse is still a rejection.
    slack.inject_fault("conversations.create", Fault::ApplyThenReset);
    answered(&slack, "conversations.create", json!({"name": "r-2"})).await;
    assert_eq!(
        slack.rejected().len(),
        1,
        "name_taken is judged on its body"
    );
}

#[tokio::test]
async fn a_chaos_schedule_faults_every_method_and_its_429s_count_early_retries() {
    use incd_fakes::chaos::{Chaos, ChaosConfig, FaultClass};
    let slack = FakeSlack::start().await;
    let mut cfg = ChaosConfig::all(11, 1.0);
    cfg.classes = vec![FaultClass::RateLimited];
    cfg.retry_after_secs = 5;
    let chaos = Chaos::new(cfg);
    slack.set_chaos(Some(chaos.clone()));
    for method in ["auth.test", "chat.postMessage", "views.open"] {
        assert_eq!(answered(&slack, method, json!({})).await, Some(429));
    }
    // A second call inside the 5 s window is an early retry, for each method.
    assert_eq!(answered(&slack, "auth.test", json!({})).await, Some(429));
    assert_eq!(slack.early_retries().len(), 1);
    assert_eq!(chaos.injected().len(), 4);
    // Transient ok:false codes, when drawn.
    let mut cfg = ChaosConfig::all(12, 1.0);
    cfg.classes = vec![FaultClass::TransientCode];
    slack.set_chaos(Some(Chaos::new(cfg)));
    let r = api(
        &slack,
        "conversations.info",
        json!({"channel": GENERAL_CHANNEL}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        incd_fakes::chaos::SLACK_TRANSIENT_CODES.contains(&r.error()),
        "{}",
        r.body
    );
    // Disabled: served normally.
    slack.set_chaos(None);
    assert!(api(&slack, "auth.test", json!({})).await.ok());
}

#[tokio::test]
async fn conversations_archive_archives_once_and_an_archived_channel_refuses_posts() {
    let slack = FakeSlack::start().await;
    let ch = create(&slack, "incd-archive-me").await;
    post(&slack, &ch, "before").await;
    let r = api(&slack, "conversations.archive", json!({ "channel": ch })).await;
    assert!(r.ok(), "{}", r.body);
    assert!(slack.channel(&ch).unwrap().is_archived);
    assert_eq!(
        api_err(&slack, "conversations.archive", json!({ "channel": ch })).await,
        "already_archived"
    );
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({ "channel": ch, "text": "after" })
        )
        .await,
        "is_archived"
    );
    assert_eq!(
        api_err(
            &slack,
            "conversations.archive",
            json!({ "channel": GENERAL_CHANNEL })
        )
        .await,
        "cant_archive_general"
    );
    assert_eq!(
        api_err(
            &slack,
            "conversations.archive",
            json!({ "channel": "C0NOPE" })
        )
        .await,
        "channel_not_found"
    );
}

#[tokio::test]
async fn conversations_archive_needs_membership_and_can_be_restricted_to_admins() {
    let slack = FakeSlack::start().await;
    let other = slack.add_channel("not-ours", &[DEFAULT_USER]);
    assert_eq!(
        api_err(&slack, "conversations.archive", json!({ "channel": other })).await,
        "not_in_channel"
    );
    let ch = create(&slack, "incd-restricted").await;
    slack.inject_fault(
        "conversations.archive",
        Fault::Error("restricted_action".into()),
    );
    assert_eq!(
        api_err(&slack, "conversations.archive", json!({ "channel": ch })).await,
        "restricted_action"
    );
    assert!(!slack.channel(&ch).unwrap().is_archived);
    slack.revoke_scopes(&["channels:manage", "channels:write"]);
    assert_eq!(
        api_err(&slack, "conversations.archive", json!({ "channel": ch })).await,
        "missing_scope"
    );
}

#[tokio::test]
async fn replies_read_a_thread_reply_itself_and_permalinks_point_at_it() {
    let slack = FakeSlack::start().await;
    let c = create(&slack, "inc-replies").await;
    let parent = slack
        .post_user_message(&c, DEFAULT_USER, "parent", None)
        .unwrap();
    let reply = slack
        .post_user_message(&c, DEFAULT_USER, "the reply", Some(&parent))
        .unwrap();
    // A reply's ts gives that reply alone.
    let r = api(
        &slack,
        "conversations.replies",
        json!({"channel": c, "ts": reply, "limit": 1}),
    )
    .await;
    assert!(r.ok(), "{}", r.body);
    let msgs = r.body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["text"], "the reply");
    assert_eq!(msgs[0]["thread_ts"], json!(parent));
    // A parent's ts gives the parent then its replies.
    let r = api(
        &slack,
        "conversations.replies",
        json!({"channel": c, "ts": parent}),
    )
    .await;
    assert_eq!(r.body["messages"].as_array().unwrap().len(), 2);
    assert_eq!(
        api_err(
            &slack,
            "conversations.replies",
            json!({"channel": c, "ts": "1.000001"})
        )
        .await,
        "thread_not_found"
    );
    assert_eq!(
        api_err(&slack, "conversations.replies", json!({"channel": c})).await,
        "invalid_arguments"
    );
    slack.revoke_scopes(&["channels:history"]);
    assert_eq!(
        api_err(
            &slack,
            "conversations.replies",
            json!({"channel": c, "ts": parent})
        )
        .await,
        "missing_scope"
    );

    let r = api(
        &slack,
        "chat.getPermalink",
        json!({"channel": c, "message_ts": reply}),
    )
    .await;
    assert!(r.ok(), "{}", r.body);
    let link = r.body["permalink"].as_str().unwrap();
    assert!(link.contains(&format!("/archives/{c}/p{}", reply.replace('.', ""))));
    assert!(link.contains(&format!("thread_ts={parent}")));
    assert_eq!(
        api_err(
            &slack,
            "chat.getPermalink",
            json!({"channel": c, "message_ts": "1.000001"})
        )
        .await,
        "message_not_found"
    );
}

#[tokio::test]
async fn replies_are_limited_to_one_call_a_minute_for_non_marketplace_apps() {
    let slack = FakeSlack::start().await;
    let c = create(&slack, "inc-replies-rate").await;
    let ts = slack
        .post_user_message(&c, DEFAULT_USER, "hello", None)
        .unwrap();
    slack.enforce_rate_limits(1.0);
    let body = json!({"channel": c, "ts": ts});
    assert!(api(&slack, "conversations.replies", body.clone())
        .await
        .ok());
    let r = api(&slack, "conversations.replies", body).await;
    assert_eq!(r.status, 429);
    assert!(r.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn views_publish_takes_a_home_view_of_at_most_100_blocks_for_a_known_user() {
    let slack = FakeSlack::start().await;
    let section = json!({"type": "section", "text": {"type": "mrkdwn", "text": "x"}});
    let home = |n: usize| json!({"type": "home", "blocks": vec![section.clone(); n]});
    let r = api(
        &slack,
        "views.publish",
        json!({"user_id": DEFAULT_USER, "view": home(100)}),
    )
    .await;
    assert!(r.ok(), "{}", r.body);
    assert_eq!(
        slack.home_view(DEFAULT_USER).unwrap()["blocks"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
    assert_eq!(
        api_err(
            &slack,
            "views.publish",
            json!({"user_id": DEFAULT_USER, "view": home(101)})
        )
        .await,
        "invalid_arguments"
    );
    let mut modal = home(1);
    modal["type"] = json!("modal");
    assert_eq!(
        api_err(
            &slack,
            "views.publish",
            json!({"user_id": DEFAULT_USER, "view": modal})
        )
        .await,
        "invalid_arguments"
    );
    assert_eq!(
        api_err(
            &slack,
            "views.publish",
            json!({"user_id": "U0NOBODY", "view": home(1)})
        )
        .await,
        "user_not_found"
    );
}

#[tokio::test]
async fn a_dm_is_refused_while_the_messages_tab_is_off() {
    let slack = FakeSlack::start_with(FakeSlackConfig {
        messages_tab_enabled: false,
        ..Default::default()
    })
    .await;
    assert_eq!(
        api_err(
            &slack,
            "chat.postMessage",
            json!({"channel": DEFAULT_USER, "text": "hi"})
        )
        .await,
        "messages_tab_disabled"
    );
    let on = FakeSlack::start().await;
    let r = api(
        &on,
        "chat.postMessage",
        json!({"channel": DEFAULT_USER, "text": "hi"}),
    )
    .await;
    assert!(r.ok(), "{}", r.body);
    assert!(on.im_channel(DEFAULT_USER).is_some());
}
