//! Black-box tests of the Slack side of the incident lifecycle: the real `incd` binary against
//! the fake Slack, over a real websocket and real HTTP.

mod common;

use std::time::Duration;

use common::*;
use incd_fakes::slack::{Fault, SlashCommand, BOT_USER_ID, DEFAULT_USER, GENERAL_CHANNEL};
use serde_json::Value;

fn text_of(m: &incd_fakes::slack::Message) -> String {
    format!("{} {}", m.text, m.blocks.clone().unwrap_or_default())
}

/// The bot scopes `incd manifest` requests.
fn manifest_scopes() -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_incd"))
        .arg("manifest")
        .output()
        .unwrap();
    assert!(out.status.success());
    let yaml = String::from_utf8(out.stdout).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&yaml).unwrap();
    docs[0]["oauth_config"]["scopes"]["bot"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declare_creates_one_channel_with_reporter_summary_and_announcements() {
    let mut w = World::new().await;
    // Grant exactly what the manifest asks for: a method used without its scope is refused.
    let scopes = manifest_scopes();
    w.slack
        .set_scopes(&scopes.iter().map(String::as_str).collect::<Vec<_>>());
    let _incd = w.start(2).await;

    let view = w
        .open_declare_form(DEFAULT_USER, GENERAL_CHANNEL, "Checkout returns 500s")
        .await;
    // The form carries the typed text as the title.
    let inputs = view.inputs();
    assert!(inputs.iter().any(|(b, _, _)| b == "title_block"));
    assert!(view.json.to_string().contains("Checkout returns 500s"));

    let d = w
        .slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[
                ("title", "Checkout returns 500s"),
                ("severity", "sev1"),
                ("commander", BOB),
            ],
        )
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    assert!(
        ack.payload.is_none()
            || ack
                .payload
                .as_ref()
                .unwrap()
                .get("response_action")
                .is_none()
    );
    let before: Vec<String> = vec![];
    let ch = w.wait_new_incident_channel(&before).await;
    assert!(is_incident_channel_name(&ch.name), "bad name {}", ch.name);

    // Reporter, commander and the configured responders are invited; summary posted and pinned.
    w.until("members invited", || {
        let m = w.slack.members(&ch.id);
        [DEFAULT_USER, BOB, CAROL]
            .iter()
            .all(|u| m.iter().any(|x| x == u))
    })
    .await;
    w.until("summary pinned", || !w.slack.pins(&ch.id).is_empty())
        .await;
    let msgs = w.slack.messages(&ch.id);
    let summary = msgs
        .iter()
        .find(|m| w.slack.pins(&ch.id).contains(&m.ts))
        .expect("pinned summary");
    let st = text_of(summary);
    assert!(st.contains("Checkout returns 500s") && st.contains("SEV1"));
    assert!(st.contains(&format!("<@{DEFAULT_USER}>")) && st.contains(&format!("<@{BOB}>")));
    let topic = w.slack.topic(&ch.id);
    assert!(
        topic.contains("SEV1") && topic.contains("Investigating") && topic.contains("Checkout")
    );

    // One announcement per broadcast channel, linking the incident channel.
    for b in &w.broadcast {
        w.until("announcement", || !w.slack.top_level_messages(b).is_empty())
            .await;
        let ann = w.slack.top_level_messages(b);
        assert_eq!(ann.len(), 1, "exactly one announcement in {b}");
        let t = text_of(&ann[0]);
        assert!(
            t.contains(&format!("<#{}>", ch.id)),
            "announcement must link the channel: {t}"
        );
        assert!(t.contains("SEV1") && t.contains("Checkout returns 500s"));
    }
    // The reporter is told where the incident lives.
    w.until("reporter told", || {
        w.slack.response_url_posts().iter().any(|p| {
            p.violation.is_none()
                && p.body["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("<#{}>", ch.id))
        }) || w.slack.im_channel(DEFAULT_USER).is_some_and(|im| {
            w.slack
                .messages(&im.id)
                .iter()
                .any(|m| m.text.contains(&ch.id))
        })
    })
    .await;

    // Exactly one incident channel; nothing real Slack would reject; every ack in time.
    let incident_channels = w
        .slack
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("incd-"))
        .count();
    assert_eq!(incident_channels, 1);
    w.slack.assert_no_violations();
    assert!(w.slack.ack_timeouts().is_empty());
    for a in w.slack.acks() {
        assert!(
            a.latency < Duration::from_millis(500),
            "slow ack {:?}",
            a.latency
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_title_is_refused_inside_the_modal_and_nothing_is_created() {
    let mut w = World::new().await;
    let _incd = w.start(2).await;
    let view = w.open_declare_form(DEFAULT_USER, GENERAL_CHANNEL, "").await;
    // A whitespace-only title passes Slack's required check but not ours.
    let d = w
        .slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[("title", "   "), ("severity", "sev2")],
        )
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    assert!(ack.violation.is_none(), "{ack:?}");
    let payload = ack.payload.expect("errors payload");
    assert_eq!(payload["response_action"], "errors");
    assert!(payload["errors"]["title_block"]
        .as_str()
        .unwrap()
        .contains("title"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.slack.calls_to("conversations.create").is_empty());
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_outside_an_incident_channel_is_refused() {
    let mut w = World::new().await;
    let _incd = w.start(2).await;
    let d = w
        .slack
        .send_slash_command(SlashCommand::new(
            "/resolve-incident",
            "done",
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    assert!(ack.violation.is_none());
    let p = ack.payload.expect("an ephemeral answer in the ack");
    assert_eq!(p["response_type"], "ephemeral");
    assert!(p["text"].as_str().unwrap().contains("incident channel"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(w.slack.views().is_empty(), "no modal for a refused resolve");
    assert!(w.slack.calls_to("conversations.rename").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_renames_the_channel_updates_every_announcement_and_only_once() {
    let mut w = World::new().await;
    let _incd = w.start(2).await;
    let ch = w.declare(DEFAULT_USER, "Search is slow", "sev2").await;
    w.until("announced", || {
        w.broadcast
            .iter()
            .all(|b| !w.slack.top_level_messages(b).is_empty())
    })
    .await;
    w.until("declared", || !w.slack.pins(&ch.id).is_empty())
        .await;

    let d = w
        .slack
        .send_slash_command(SlashCommand::new(
            "/resolve-incident",
            "Rolled back the index",
            BOB,
            &ch.id,
        ))
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    assert!(
        ack.payload.as_ref().is_none_or(|p| p.get("text").is_none()),
        "{ack:?}"
    );
    let view = w.slack.wait_view_opened(WAIT).await.unwrap();
    assert!(
        view.json.to_string().contains("Rolled back the index"),
        "summary prefilled"
    );
    let s = w.slack.submit_view_with(&view.id, BOB, &[]).await.unwrap();
    w.slack.wait_ack(&s.envelope_id, WAIT).await.unwrap();

    let resolved_name = format!("{}-resolved", ch.name);
    w.until("renamed", || {
        w.slack
            .channel(&ch.id)
            .is_some_and(|c| c.name == resolved_name)
    })
    .await;
    let c = w.slack.channel(&ch.id).unwrap();
    assert!(!c.is_archived, "the channel stays open");
    w.until("resolution posted", || {
        w.slack.messages(&ch.id).iter().any(|m| {
            text_of(m).contains("Incident resolved") && text_of(m).contains("Rolled back the index")
        })
    })
    .await;
    for b in &w.broadcast {
        w.until("announcement updated", || {
            let top = w.slack.top_level_messages(b);
            top.len() == 1 && text_of(&top[0]).contains("RESOLVED") && top[0].edited.is_some()
        })
        .await;
        let top = w.slack.top_level_messages(b);
        w.until("thread reply", || {
            !w.slack.thread_replies(b, &top[0].ts).is_empty()
        })
        .await;
    }
    w.until("topic resolved", || {
        w.slack.topic(&ch.id).contains("Resolved")
    })
    .await;

    // A second /resolve-incident is refused and changes nothing.
    let renames = w.slack.calls_to("conversations.rename").len();
    let d = w
        .slack
        .send_slash_command(SlashCommand::new(
            "/resolve-incident",
            "",
            DEFAULT_USER,
            &ch.id,
        ))
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    let p = ack.payload.expect("ephemeral refusal");
    assert!(p["text"].as_str().unwrap().contains("already resolved"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.slack.calls_to("conversations.rename").len(), renames);
    assert_eq!(w.slack.open_views().len(), 0);
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_channel_name_draws_another_name() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    w.slack
        .inject_fault("conversations.create", Fault::Error("name_taken".into()));
    let ch = w.declare(DEFAULT_USER, "Queue backlog", "sev3").await;
    let creates = w.slack.calls_to("conversations.create");
    assert_eq!(creates.len(), 2);
    assert_ne!(
        creates[0].arg("name"),
        creates[1].arg("name"),
        "a new name was drawn"
    );
    assert_eq!(Some(ch.name.as_str()), creates[1].arg("name"));
    assert!(is_incident_channel_name(&ch.name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_channel_the_bot_is_not_in_is_joined_then_announced() {
    let mut w = World::new().await;
    w.set_env("INCD_BROADCAST_CHANNELS", GENERAL_CHANNEL);
    let _incd = w.start(1).await;
    let ch = w.declare(DEFAULT_USER, "Login fails", "sev2").await;
    w.until("announced in #general", || {
        w.slack
            .top_level_messages(GENERAL_CHANNEL)
            .iter()
            .any(|m| text_of(m).contains(&ch.id))
    })
    .await;
    assert!(w
        .slack
        .members(GENERAL_CHANNEL)
        .iter()
        .any(|m| m == BOT_USER_ID));
    // incd joined before announcing, so Slack never had to refuse a post.
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modal_that_cannot_open_is_explained_to_the_person() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    w.slack
        .inject_fault("views.open", Fault::Error("expired_trigger_id".into()));
    let d = w
        .slack
        .send_slash_command(SlashCommand::new(
            "/incident",
            "",
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    w.until("ephemeral explanation", || {
        w.slack.response_url_posts().iter().any(|p| {
            p.body["response_type"] == "ephemeral"
                && p.body["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("could not open the form")
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_opens_when_slack_hiccups_twice_within_the_trigger_window() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    w.slack
        .inject_faults("views.open", [Fault::Status(503), Fault::Status(503)]);
    let d = w
        .slack
        .send_slash_command(SlashCommand::new(
            "/incident",
            "db down",
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    w.until("the declare form is open", || {
        w.slack.open_views().len() == 1
    })
    .await;
    let tries = w.slack.calls_to("views.open").len();
    assert_eq!(
        tries, 3,
        "two refused attempts, then the one that opened it"
    );
    assert!(
        w.slack.response_url_posts().is_empty(),
        "nobody is told about a hiccup that was overcome"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_acked_at_once_and_change_nothing() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    let d = w
        .slack
        .send_event(
            serde_json::json!({"type": "reaction_added", "user": DEFAULT_USER,
            "reaction": "pushpin", "item": {"type": "message", "channel": GENERAL_CHANNEL,
            "ts": "1700000000.000100"}, "event_ts": "1700000001.000100"}),
        )
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    assert!(ack.payload.is_none());
    assert!(w
        .slack
        .calls()
        .iter()
        .all(|c| c.method != "chat.postMessage"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_commands_and_envelopes_are_acked_and_the_service_keeps_serving() {
    let mut w = World::new().await;
    let mut incd = w.start(1).await;
    let d = w
        .slack
        .send_slash_command(SlashCommand::new(
            "/bogus",
            "",
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    assert!(ack.payload.unwrap()["text"]
        .as_str()
        .unwrap()
        .contains("/incident"));
    w.slack
        .send_raw(incd_fakes::slack::Target::Any, "{not json")
        .await
        .unwrap();
    w.slack
        .send_raw(
            incd_fakes::slack::Target::Any,
            r#"{"type":"mystery","envelope_id":"env-mystery","payload":{}}"#,
        )
        .await
        .unwrap();
    let ch = w.declare(DEFAULT_USER, "Still works", "sev4").await;
    assert!(is_incident_channel_name(&ch.name));
    assert!(incd.running());
    w.until("unknown envelope acked", || {
        w.slack
            .frames_received()
            .iter()
            .filter_map(|f| serde_json::from_str::<Value>(&f.text).ok())
            .any(|f| f["envelope_id"] == "env-mystery")
    })
    .await;
}
