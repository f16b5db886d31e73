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
    // Declared (open) once every declare step is done: `help` shows its state.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, ack) = command(w, DEFAULT_USER, &ch.id, "help").await;
        if ephemeral_text(&ack).contains("· Investigating ·") {
            return ch;
        }
        assert!(std::time::Instant::now() < deadline, "never declared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
            ephemeral_text(&ack).contains("only works inside an incident channel"),
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

/// Ask for the timeline until `cond` holds on its text (each ask is a new command).
async fn timeline_until(
    w: &World,
    ch: &Channel,
    what: &str,
    cond: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, ack) = command(w, DEFAULT_USER, &ch.id, "timeline").await;
        let t = ephemeral_text(&ack);
        if cond(&t) {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}\n{t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn reaction(kind: &str, user: &str, channel: &str, ts: &str, author: &str) -> Value {
    serde_json::json!({
        "type": kind, "user": user, "reaction": "pushpin",
        "item": {"type": "message", "channel": channel, "ts": ts},
        "item_user": author, "event_ts": "1700000001.000100"
    })
}

fn pin(
    kind: &str,
    user: &str,
    channel: &str,
    ts: &str,
    thread: Option<&str>,
    author: &str,
    text: &str,
) -> Value {
    serde_json::json!({
        "type": kind, "user": user, "channel_id": channel,
        "item": {"type": "message", "channel": channel, "created": 1700000002, "created_by": user,
                 "message": {"type": "message", "text": text, "user": author, "ts": ts,
                             "thread_ts": thread, "permalink": format!("https://fake.slack.com/archives/{channel}/p{}", ts.replace('.', "")),
                             "pinned_to": [channel]}},
        "item_user": author, "pin_count": 2, "event_ts": "1700000003.000100"
    })
}

async fn event(w: &World, e: Value) -> Delivery {
    let d = w.slack.send_event(e).await.unwrap();
    let ack = w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    assert!(ack.violation.is_none() && ack.payload.is_none(), "{ack:?}");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pushpins_and_a_pin_on_a_thread_reply_make_one_entry_until_all_are_removed() {
    let mut w = World::new().await;
    let _incd = w.start(2).await;
    let ch = declared(&w, "Payments failing", "sev2").await;
    let parent = w
        .slack
        .post_user_message(&ch.id, common::CAROL, "looking at the logs", None)
        .unwrap();
    let reply = w
        .slack
        .post_user_message(&ch.id, BOB, "Rolled back payments to 7.1", Some(&parent))
        .unwrap();
    let original = {
        let secs: i64 = reply.split('.').next().unwrap().parse().unwrap();
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .format("%Y-%m-%d %H:%M UTC")
            .to_string()
    };

    // incd's own pin of its summary is not an entry.
    let summary = w.slack.pins(&ch.id)[0].clone();
    event(
        &w,
        pin(
            "pin_added",
            incd_fakes::slack::BOT_USER_ID,
            &ch.id,
            &summary,
            None,
            incd_fakes::slack::BOT_USER_ID,
            "summary",
        ),
    )
    .await;

    let first = event(
        &w,
        reaction("reaction_added", DEFAULT_USER, &ch.id, &reply, BOB),
    )
    .await;
    event(&w, reaction("reaction_added", BOB, &ch.id, &reply, BOB)).await;
    event(
        &w,
        reaction("reaction_added", common::CAROL, &ch.id, &reply, BOB),
    )
    .await;
    event(
        &w,
        pin(
            "pin_added",
            DEFAULT_USER,
            &ch.id,
            &reply,
            Some(&parent),
            BOB,
            "Rolled back payments to 7.1",
        ),
    )
    .await;
    // A redelivered event changes nothing twice.
    let again = w
        .slack
        .redeliver(&first, "timeout", Target::Any)
        .await
        .unwrap();
    w.slack.wait_ack(&again.envelope_id, WAIT).await.unwrap();

    let t = timeline_until(&w, &ch, "the reply on the timeline", |t| {
        t.contains("Rolled back payments to 7.1")
    })
    .await;
    assert_eq!(
        t.matches("Rolled back payments").count(),
        1,
        "one entry: {t}"
    );
    let line = t.lines().find(|l| l.contains("Rolled back")).unwrap();
    assert!(
        line.contains(&original),
        "stamped with the reply's own time: {line}"
    );
    assert!(line.contains(&format!("<@{BOB}>")), "its author: {line}");
    assert!(
        line.contains(&format!("/archives/{}/p", ch.id)),
        "a permalink: {line}"
    );
    assert!(!t.contains("summary"), "{t}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        w.slack.calls_to("conversations.replies").len() <= 1,
        "read at most once"
    );
    assert!(
        w.slack.calls_to("conversations.history").is_empty(),
        "never history for a reply"
    );

    // Removing all but the last mark keeps it; removing the last takes it off.
    event(
        &w,
        reaction("reaction_removed", DEFAULT_USER, &ch.id, &reply, BOB),
    )
    .await;
    event(&w, reaction("reaction_removed", BOB, &ch.id, &reply, BOB)).await;
    event(
        &w,
        pin(
            "pin_removed",
            DEFAULT_USER,
            &ch.id,
            &reply,
            Some(&parent),
            BOB,
            "Rolled back payments to 7.1",
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, ack) = command(&w, DEFAULT_USER, &ch.id, "timeline").await;
    assert!(
        ephemeral_text(&ack).contains("Rolled back"),
        "one mark is left"
    );
    event(
        &w,
        reaction("reaction_removed", common::CAROL, &ch.id, &reply, BOB),
    )
    .await;
    timeline_until(&w, &ch, "the reply off the timeline", |t| {
        !t.contains("Rolled back")
    })
    .await;
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushpin_alone_reads_the_thread_reply_with_conversations_replies() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    let ch = declared(&w, "DNS flapping", "sev3").await;
    let parent = w
        .slack
        .post_user_message(&ch.id, BOB, "resolver errors", None)
        .unwrap();
    let reply = w
        .slack
        .post_user_message(&ch.id, BOB, "Switched resolvers to 10.0.0.2", Some(&parent))
        .unwrap();
    event(
        &w,
        reaction("reaction_added", DEFAULT_USER, &ch.id, &reply, BOB),
    )
    .await;
    let t = timeline_until(&w, &ch, "the read reply", |t| {
        t.contains("Switched resolvers")
    })
    .await;
    assert!(t.contains(&format!("<@{BOB}>")), "{t}");
    assert_eq!(w.slack.calls_to("conversations.replies").len(), 1);
    // Another emoji is not a mark.
    let mut other = reaction("reaction_added", BOB, &ch.id, &parent, BOB);
    other["reaction"] = "eyes".into();
    event(&w, other).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, ack) = command(&w, DEFAULT_USER, &ch.id, "timeline").await;
    assert!(!ephemeral_text(&ack).contains("resolver errors"));
    w.slack.assert_no_violations();
}

/// The nudges the commander received so far, as message times in seconds.
fn nudges(w: &World, user: &str) -> Vec<f64> {
    w.slack
        .im_channel(user)
        .map(|im| {
            im.messages
                .iter()
                .filter(|m| m.text.contains("No status update"))
                .map(|m| m.ts.parse::<f64>().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commander_is_nudged_once_per_interval_not_twice_across_a_restart_and_not_after_resolve(
) {
    let mut w = World::new().await;
    w.set_env("INCD_NUDGE_AFTER", "2s");
    let mut incd = w.start(1).await;
    let ch = declared(&w, "Disk full", "sev3").await;
    w.until("first nudge", || !nudges(&w, DEFAULT_USER).is_empty())
        .await;
    let im = w.slack.im_channel(DEFAULT_USER).unwrap();
    let nudge = im
        .messages
        .iter()
        .find(|m| m.text.contains("No status update"))
        .unwrap();
    let buttons = nudge.blocks.clone().unwrap().to_string();
    assert!(
        buttons.contains("Post an update") && buttons.contains("Snooze"),
        "{buttons}"
    );

    // Killed right after a nudge and started again: the next one still waits its interval.
    incd.kill9();
    let mut incd = w.start(1).await;
    common::until("second nudge", Duration::from_secs(20), &mut || {
        nudges(&w, DEFAULT_USER).len() >= 2
    })
    .await;
    // An update resets the clock.
    command(&w, DEFAULT_USER, &ch.id, "update monitoring Freed 20 GB").await;
    let after_update = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    common::until("third nudge", Duration::from_secs(20), &mut || {
        nudges(&w, DEFAULT_USER).len() >= 3
    })
    .await;
    let n = nudges(&w, DEFAULT_USER);
    for pair in n.windows(2) {
        assert!(
            pair[1] - pair[0] >= 1.9,
            "nudges {n:?} closer than the interval"
        );
    }
    assert!(
        n[2] - after_update >= 1.9,
        "the update reset the clock: {n:?} vs {after_update}"
    );

    // Resolved: no more nudges.
    let d = w
        .slack
        .send_slash_command(SlashCommand::new(
            "/resolve-incident",
            "freed space",
            DEFAULT_USER,
            &ch.id,
        ))
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    let view = w.slack.wait_view_opened(WAIT).await.unwrap();
    let s = w
        .slack
        .submit_view_with(&view.id, DEFAULT_USER, &[])
        .await
        .unwrap();
    w.slack.wait_ack(&s.envelope_id, WAIT).await.unwrap();
    w.until("resolved", || w.slack.topic(&ch.id).contains("Resolved"))
        .await;
    // Resolving stops them: the timer that fires next finds the incident no longer open.
    let count = nudges(&w, DEFAULT_USER).len();
    tokio::time::sleep(Duration::from_secs(4)).await; // two intervals: a nudge would be due
    assert_eq!(nudges(&w, DEFAULT_USER).len(), count, "none after resolve");
    assert!(incd.running());
    incd.terminate(Duration::from_secs(10));
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_the_home_tab_publishes_the_open_incidents_most_severe_first() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    let minor = declared(&w, "Slow thumbnails", "sev3").await;
    let major = declared(&w, "Checkout down", "sev1").await;
    event(
        &w,
        serde_json::json!({"type": "app_home_opened", "user": BOB, "channel": "D0BOB",
                           "tab": "home", "event_ts": "1700000004.000100"}),
    )
    .await;
    w.until("home published", || w.slack.home_view(BOB).is_some())
        .await;
    let home = w.slack.home_view(BOB).unwrap();
    let blocks = home["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 100);
    let text = home.to_string();
    assert!(text.contains("Declare an incident"), "{text}");
    let a = text.find(&format!("<#{}>", major.id)).expect("sev1 listed");
    let b = text.find(&format!("<#{}>", minor.id)).expect("sev3 listed");
    assert!(a < b, "most severe first");
    assert!(text.contains("Investigating") && text.contains(&format!("<@{DEFAULT_USER}>")));
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_update_and_roles_forms_change_the_incident_like_the_commands() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    let ch = declared(&w, "Replica lag", "sev3").await;

    command(&w, DEFAULT_USER, &ch.id, "update").await;
    let view = w.slack.wait_view_opened(WAIT).await.unwrap();
    let s = w
        .slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[
                ("update_status", "identified"),
                ("update_severity", "sev1"),
                ("update_message", "Failover to the standby"),
            ],
        )
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&s.envelope_id, WAIT).await.unwrap();
    assert!(ack.violation.is_none(), "{ack:?}");
    w.until("topic shows both", || {
        let t = w.slack.topic(&ch.id);
        t.starts_with("SEV1 | Identified")
    })
    .await;
    w.until("status posted", || {
        w.slack
            .messages(&ch.id)
            .iter()
            .any(|m| text_of(m).contains("Failover to the standby"))
    })
    .await;

    command(&w, DEFAULT_USER, &ch.id, "roles").await;
    let view = w.slack.wait_view_opened(WAIT).await.unwrap();
    let s = w
        .slack
        .submit_view_with(&view.id, DEFAULT_USER, &[("role_comms", BOB)])
        .await
        .unwrap();
    w.slack.wait_ack(&s.envelope_id, WAIT).await.unwrap();
    w.until("comms posted", || {
        w.slack
            .messages(&ch.id)
            .iter()
            .any(|m| text_of(m).contains(&format!("<@{BOB}> is now Communications")))
    })
    .await;
    w.until("comms DM", || {
        w.slack.im_channel(BOB).is_some_and(|im| {
            im.messages
                .iter()
                .any(|m| m.text.contains("Communications"))
        })
    })
    .await;
    // Only the changed role was recorded: the commander stayed.
    assert!(w
        .slack
        .topic(&ch.id)
        .contains(&format!("IC <@{DEFAULT_USER}>")));
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_holder_who_cannot_get_a_dm_gets_the_duties_ephemerally_in_the_channel() {
    let mut w = World::with_config(incd_fakes::slack::FakeSlackConfig {
        messages_tab_enabled: false,
        ..Default::default()
    })
    .await;
    let _incd = w.start(1).await;
    let ch = declared(&w, "Mail delayed", "sev3").await;
    // Carol is a member of every incident channel (INCD_INVITE_USERS).
    command(&w, DEFAULT_USER, &ch.id, "role planning <@U0CAROL|carol>").await;
    w.until("the duties reach the holder in the channel", || {
        w.slack
            .ephemerals(&ch.id)
            .iter()
            .any(|e| e.user == common::CAROL && e.text.contains("Planning"))
    })
    .await;
    assert!(
        w.slack.im_channel(common::CAROL).is_none(),
        "no DM went out"
    );
}
