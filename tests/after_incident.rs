//! Black-box tests of issue 12, "After the incident": follow-ups, close, reopen, review
//! reminders and the post-mortem, driven from outside through the real `incd` binary against
//! the fakes.

mod common;

use common::*;
use incd_fakes::slack::{Channel, SlashCommand, DEFAULT_USER, GENERAL_CHANNEL};
use serde_json::Value;

fn text_of(m: &incd_fakes::slack::Message) -> String {
    format!("{} {}", m.text, m.blocks.clone().unwrap_or_default())
}

/// `/incident <text>` typed by `user` in `channel`; returns the ack's payload (ephemeral answer).
async fn incident_command(w: &World, user: &str, channel: &str, text: &str) -> Value {
    let d = w
        .slack
        .send_slash_command(SlashCommand::new("/incident", text, user, channel))
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    assert!(ack.violation.is_none(), "bad ack: {ack:?}");
    ack.payload.unwrap_or(Value::Null)
}

/// The pinned summary's text and blocks.
fn summary_text(w: &World, ch: &Channel) -> String {
    let pins = w.slack.pins(&ch.id);
    pins.first()
        .and_then(|ts| w.slack.message(&ch.id, ts))
        .map(|m| text_of(&m))
        .unwrap_or_default()
}

async fn declared(w: &World, title: &str) -> Channel {
    let ch = w.declare(DEFAULT_USER, title, "sev2").await;
    w.until("summary pinned", || !w.slack.pins(&ch.id).is_empty())
        .await;
    ch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ups_are_added_with_owners_and_due_dates_listed_and_closed_by_command_and_by_button()
{
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    let ch = declared(&w, "Disk full on db-3").await;

    // Owner and due in either order; the ack names the number it got.
    let a = incident_command(
        &w,
        DEFAULT_USER,
        &ch.id,
        &format!("follow-up Add a disk alert owner <@{BOB}> due 2027-01-15"),
    )
    .await;
    assert!(a["text"].as_str().unwrap().contains("F-1"), "{a}");
    let a = incident_command(
        &w,
        DEFAULT_USER,
        &ch.id,
        &format!("follow-up Write the runbook due 2027-02-01 owner <@{CAROL}>"),
    )
    .await;
    assert!(a["text"].as_str().unwrap().contains("F-2"), "{a}");

    // A post in the channel for each, a DM to each owner with the buttons, the count on the
    // pinned summary.
    w.until("both follow-ups posted in the channel", || {
        let all: String = w.slack.messages(&ch.id).iter().map(text_of).collect();
        all.contains("F-1") && all.contains("Add a disk alert") && all.contains("F-2")
    })
    .await;
    let dm_of = |user: &str| {
        w.slack
            .im_channel(user)
            .map(|c| w.slack.messages(&c.id))
            .unwrap_or_default()
    };
    w.until("the owners got a DM each", || {
        dm_of(BOB)
            .iter()
            .any(|m| text_of(m).contains("F-1") && text_of(m).contains("incd_follow_up_done"))
            && dm_of(CAROL).iter().any(|m| text_of(m).contains("F-2"))
    })
    .await;
    w.until("the summary counts two open follow-ups", || {
        summary_text(&w, &ch).contains("2 open of 2")
    })
    .await;

    // The list: id, title, owner, due date, state, buttons.
    let list = incident_command(&w, DEFAULT_USER, &ch.id, "follow-ups").await;
    assert_eq!(list["response_type"], "ephemeral");
    let shown = list.to_string();
    for want in [
        "F-1",
        "Add a disk alert",
        &format!("<@{BOB}>"),
        "2027-01-15",
        "F-2",
        "2027-02-01",
        "Open",
        "incd_follow_up_done",
        "incd_follow_up_wontdo",
    ] {
        assert!(shown.contains(want), "{want} missing from {shown}");
    }

    // Closed by command.
    let a = incident_command(&w, BOB, &ch.id, "done F-1").await;
    assert!(a["text"].as_str().unwrap().contains("Marked *F-1*"), "{a}");
    w.until("the summary counts one open follow-up", || {
        summary_text(&w, &ch).contains("1 open of 2")
    })
    .await;
    let again = incident_command(&w, BOB, &ch.id, "done F-1").await;
    assert!(
        again["text"].as_str().unwrap().contains("already"),
        "{again}"
    );
    let other = incident_command(&w, BOB, &ch.id, "wontdo F-1").await;
    assert!(
        other["text"]
            .as_str()
            .unwrap()
            .contains("already marked done"),
        "{other}"
    );

    // Closed by the button in the owner's DM.
    let dm = w.slack.im_channel(CAROL).unwrap();
    let msg = dm_of(CAROL)
        .into_iter()
        .find(|m| text_of(m).contains("F-2"))
        .unwrap();
    let d = w
        .slack
        .click_button(&dm.id, &msg.ts, "incd_follow_up_wontdo", CAROL)
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    w.until("the presser is told", || {
        w.slack
            .response_url_posts()
            .iter()
            .any(|p| p.body.to_string().contains("won't do") && p.body.to_string().contains("F-2"))
    })
    .await;
    w.until("the summary counts no open follow-up", || {
        summary_text(&w, &ch).contains("0 open of 2")
    })
    .await;
    let list = incident_command(&w, DEFAULT_USER, &ch.id, "follow-ups").await;
    assert!(list.to_string().contains("Won't do"), "{list}");
    assert!(
        !list.to_string().contains("incd_follow_up_done"),
        "no buttons on closed follow-ups: {list}"
    );

    // Unknown numbers, unreadable dates and other channels are refused ephemerally.
    let a = incident_command(&w, BOB, &ch.id, "done F-9").await;
    assert!(
        a["text"].as_str().unwrap().contains("No follow-up F-9"),
        "{a}"
    );
    let a = incident_command(&w, BOB, &ch.id, "follow-up Fix it due soon").await;
    assert!(a["text"].as_str().unwrap().contains("not a date"), "{a}");
    let a = incident_command(&w, BOB, GENERAL_CHANNEL, "follow-up Fix it").await;
    assert!(
        a["text"].as_str().unwrap().contains("only works inside"),
        "{a}"
    );
    assert_eq!(
        w.slack
            .messages(&ch.id)
            .iter()
            .filter(|m| text_of(m).contains("New follow-up"))
            .count(),
        2,
        "one post per follow-up"
    );
    w.slack.assert_no_violations();
}
