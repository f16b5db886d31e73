//! Issue 11: the incident lifecycle in the channel, driven from outside through the fakes with
//! the real binary: subcommands, changes shown everywhere, role DMs, the timeline.

mod common;

use std::time::Duration;

use common::{World, BOB, WAIT};
use incd_fakes::slack::{Channel, Delivery, SlashCommand, Target, DEFAULT_USER, GENERAL_CHANNEL};
use serde_json::Value;

fn text_of(m: &incd_fakes::slack::Message) -> String {
    format!("{} {}", m.text, m.blocks.clone().unwrap_or_default())
}

/// `/incident <text>` by `user` in `channel`: the delivery and the ack's payload.
async fn command(w: &World, user: &str, channel: &str, text: &str) -> (Delivery, Option<Value>) {
    let d = w
        .slack
        .send_slash_command(SlashCommand::new("/incident", text, user, channel))
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    assert!(ack.violation.is_none(), "bad ack: {ack:?}");
    (d, ack.payload)
}

fn ephemeral_text(p: &Option<Value>) -> String {
    let p = p.as_ref().expect("an ephemeral answer in the ack");
    assert_eq!(p["response_type"], "ephemeral", "{p}");
    p["text"].as_str().unwrap_or_default().to_string()
}

/// Declare and wait until the summary is pinned and every announcement is out.
async fn declared(w: &World, title: &str, severity: &str) -> Channel {
    let ch = w.declare(DEFAULT_USER, title, severity).await;
    w.until("summary pinned", || !w.slack.pins(&ch.id).is_empty())
        .await;
    w.until("announced", || {
        w.broadcast
            .iter()
            .all(|b| !w.slack.top_level_messages(b).is_empty())
    })
    .await;
    ch
}

fn summary_text(w: &World, ch: &Channel) -> String {
    let pinned = w.slack.pins(&ch.id);
    w.slack
        .message(&ch.id, &pinned[0])
        .map(|m| text_of(&m))
        .unwrap_or_default()
}

fn announcement_and_replies(w: &World, b: &str) -> (String, Vec<String>) {
    let top = w.slack.top_level_messages(b);
    let replies = w
        .slack
        .thread_replies(b, &top[0].ts)
        .iter()
        .map(text_of)
        .collect();
    (text_of(&top[0]), replies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_update_reaches_the_channel_topic_summary_and_every_announcement_once() {
    let mut w = World::new().await;
    let _incd = w.start(2).await;
    let ch = declared(&w, "Checkout errors", "sev2").await;
    assert!(w.slack.topic(&ch.id).contains("Investigating"));

    let (d, ack) = command(
        &w,
        BOB,
        &ch.id,
        "UPDATE identified Bad deploy of checkout 4.2",
    )
    .await;
    assert!(ack.is_none_or(|p| p.get("text").is_none()), "bare ack");
    w.until("status posted", || {
        w.slack.messages(&ch.id).iter().any(|m| {
            text_of(m).contains("Status update")
                && text_of(m).contains("Bad deploy of checkout 4.2")
        })
    })
    .await;
    w.until("topic shows the status", || {
        w.slack.topic(&ch.id).contains("Identified")
    })
    .await;
    w.until("summary shows the status", || {
        summary_text(&w, &ch).contains("Identified")
    })
    .await;
    for b in &w.broadcast {
        w.until("announcement edited and replied to", || {
            let (top, replies) = announcement_and_replies(&w, b);
            top.contains("Identified") && replies.iter().any(|r| r.contains("Bad deploy"))
        })
        .await;
    }

    // The same command delivered again changes nothing twice.
    let posts = w.slack.calls_to("chat.postMessage").len();
    let topics = w.slack.calls_to("conversations.setTopic").len();
    let again = w.slack.redeliver(&d, "", Target::Any).await.unwrap();
    w.slack.wait_ack(&again.envelope_id, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.slack.calls_to("chat.postMessage").len(), posts);
    assert_eq!(w.slack.calls_to("conversations.setTopic").len(), topics);
    for b in &w.broadcast {
        assert_eq!(announcement_and_replies(&w, b).1.len(), 1, "one reply");
    }

    // The timeline lists it with its date, UTC time and author.
    let (_, ack) = command(&w, DEFAULT_USER, &ch.id, "timeline").await;
    let t = ephemeral_text(&ack);
    let line = t
        .lines()
        .find(|l| l.contains("Identified"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        line.contains(" UTC") && line.contains(&format!("<@{BOB}>")),
        "{line}"
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(line.contains(&today), "{line}");
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_severity_change_is_shown_everywhere_and_bad_values_change_nothing() {
    let mut w = World::new().await;
    let _incd = w.start(2).await;
    let ch = declared(&w, "Search slow", "sev3").await;
    assert!(w.slack.topic(&ch.id).starts_with("SEV3"));

    // Bad values: refused ephemerally, naming the valid ones, and nothing changes.
    let calls = w.slack.calls().len();
    for bad in [
        "severity sev9",
        "severity",
        "update resolved all good",
        "update identified",
        "role boss <@U0BOB|bob>",
        "role ops bob",
        "note",
    ] {
        let (_, ack) = command(&w, DEFAULT_USER, &ch.id, bad).await;
        let t = ephemeral_text(&ack);
        assert!(t.contains("Nothing was changed"), "{bad}: {t}");
    }
    let (_, ack) = command(&w, DEFAULT_USER, &ch.id, "severity sev9").await;
    assert!(ephemeral_text(&ack).contains("sev1, sev2, sev3, sev4"));
    let (_, ack) = command(&w, DEFAULT_USER, &ch.id, "update resolved x").await;
    assert!(ephemeral_text(&ack).contains("investigating, identified, monitoring"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.slack.calls().len(), calls, "no Slack call for a refusal");

    let (_, ack) = command(&w, DEFAULT_USER, &ch.id, "severity SEV1").await;
    assert!(ack.is_none_or(|p| p.get("text").is_none()));
    w.until("topic shows the new severity", || {
        w.slack.topic(&ch.id).starts_with("SEV1")
    })
    .await;
    w.until("severity posted", || {
        w.slack
            .messages(&ch.id)
            .iter()
            .any(|m| text_of(m).contains("Severity SEV3 → SEV1"))
    })
    .await;
    w.until("summary shows it", || {
        summary_text(&w, &ch).contains("SEV1")
    })
    .await;
    for b in &w.broadcast {
        w.until("announcement edited and replied to", || {
            let (top, replies) = announcement_and_replies(&w, b);
            top.contains("SEV1") && replies.iter().any(|r| r.contains("SEV3 → SEV1"))
        })
        .await;
    }
    // The same level again is no change.
    let (_, ack) = command(&w, DEFAULT_USER, &ch.id, "severity sev1").await;
    assert!(ephemeral_text(&ack).contains("already"));
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_role_holder_is_announced_listed_and_told_their_duties_in_a_dm() {
    let mut w = World::new().await;
    let _incd = w.start(2).await;
    let ch = declared(&w, "Queue backlog", "sev2").await;
    assert!(
        w.slack
            .topic(&ch.id)
            .contains(&format!("<@{DEFAULT_USER}>")),
        "the reporter commands: {}",
        w.slack.topic(&ch.id)
    );

    command(&w, DEFAULT_USER, &ch.id, "role operations <@U0BOB|bob>").await;
    w.until("role posted", || {
        w.slack
            .messages(&ch.id)
            .iter()
            .any(|m| text_of(m).contains(&format!("<@{BOB}> is now Operations")))
    })
    .await;
    w.until("summary lists the holder", || {
        summary_text(&w, &ch).contains(&format!("Operations: <@{BOB}>"))
    })
    .await;
    w.until("the holder got a DM with the duties", || {
        w.slack.im_channel(BOB).is_some_and(|im| {
            im.messages
                .iter()
                .any(|m| m.text.contains("Operations") && m.text.contains("Checklist"))
        })
    })
    .await;

    // Handing over command: recorded as such, and the topic shows the new commander.
    command(&w, DEFAULT_USER, &ch.id, "role ic <@U0BOB|bob>").await;
    w.until("topic shows the new commander", || {
        w.slack.topic(&ch.id).contains(&format!("IC <@{BOB}>"))
    })
    .await;
    w.until("hand-over posted", || {
        w.slack.messages(&ch.id).iter().any(|m| {
            text_of(m).contains(&format!(
                "<@{DEFAULT_USER}> handed incident command over to <@{BOB}>"
            ))
        })
    })
    .await;
    let (_, ack) = command(&w, BOB, &ch.id, "help").await;
    let t = ephemeral_text(&ack);
    assert!(
        t.contains("/incident role") && t.contains(&format!("commander <@{BOB}>")),
        "{t}"
    );
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subcommands_outside_an_incident_channel_are_refused_but_help_and_list_work() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    let ch = declared(&w, "Login broken", "sev2").await;
    let calls = w.slack.calls().len();
    let views = w.slack.views().len();
    for sub in [
        "update identified found it",
        "severity sev1",
        "role ops me",
        "note hello",
        "timeline",
        "roles",
    ] {
        let (_, ack) = command(&w, DEFAULT_USER, GENERAL_CHANNEL, sub).await;
        assert!(
            ephemeral_text(&ack).contains("only inside an incident channel"),
            "{sub}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.slack.calls().len(), calls);
    assert_eq!(w.slack.views().len(), views, "no form opened");

    let (_, ack) = command(&w, DEFAULT_USER, GENERAL_CHANNEL, "help").await;
    assert!(ephemeral_text(&ack).contains("/incident severity <level>"));
    let (_, ack) = command(&w, DEFAULT_USER, GENERAL_CHANNEL, "LIST").await;
    let t = ephemeral_text(&ack);
    assert!(
        t.contains(&format!("<#{}>", ch.id)) && t.contains("SEV2") && t.contains("Investigating"),
        "{t}"
    );
    // Free text still declares.
    let view = w
        .open_declare_form(DEFAULT_USER, GENERAL_CHANNEL, "payments down")
        .await;
    assert!(view.json.to_string().contains("payments down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_go_on_the_timeline_once() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    let ch = declared(&w, "Cache stampede", "sev3").await;
    let (d, ack) = command(
        &w,
        BOB,
        &ch.id,
        "note Restarted <@U0CAROL|carol>'s cache node",
    )
    .await;
    assert!(ephemeral_text(&ack).contains("timeline"));
    let again = w.slack.redeliver(&d, "", Target::Any).await.unwrap();
    w.slack.wait_ack(&again.envelope_id, WAIT).await.unwrap();
    let (_, ack) = command(&w, BOB, &ch.id, "timeline").await;
    let t = ephemeral_text(&ack);
    assert_eq!(t.matches("Restarted").count(), 1, "{t}");
    assert!(t.contains("Incident declared"), "{t}");
}
