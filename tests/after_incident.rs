//! Black-box tests of issue 12, "After the incident": follow-ups, close, reopen, review
//! reminders and the post-mortem, driven from outside through the real `incd` binary against
//! the fakes.

mod common;

use common::*;
use incd_fakes::pagerduty::{AlertStatus, FakePagerDuty};
use incd_fakes::slack::{Channel, Fault, SlashCommand, DEFAULT_USER, GENERAL_CHANNEL};
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

/// `/incident <text>` again while incd answers that the resolution is still being finished
/// ("in a moment"); returns the first other answer.
async fn settled_command(w: &World, user: &str, channel: &str, text: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let a = incident_command(w, user, channel, text).await;
        let busy = a["text"]
            .as_str()
            .is_some_and(|t| t.contains("in a moment"));
        if !busy {
            return a;
        }
        assert!(std::time::Instant::now() < deadline, "still resolving: {a}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
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

/// `/resolve-incident` with its form submitted.
async fn resolve(w: &World, ch: &Channel, user: &str, summary: &str) {
    resolve_with_impact(w, ch, user, summary, "").await
}

/// `/resolve-incident` with its form submitted, the impact field filled when not empty.
async fn resolve_with_impact(w: &World, ch: &Channel, user: &str, summary: &str, impact: &str) {
    let d = w
        .slack
        .send_slash_command(SlashCommand::new(
            "/resolve-incident",
            summary,
            user,
            &ch.id,
        ))
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    let view = w.slack.wait_view_opened(WAIT).await.unwrap();
    let inputs: Vec<(&str, &str)> = if impact.is_empty() {
        vec![]
    } else {
        vec![("impact", impact)]
    };
    let s = w
        .slack
        .submit_view_with(&view.id, user, &inputs)
        .await
        .unwrap();
    w.slack.wait_ack(&s.envelope_id, WAIT).await.unwrap();
    let resolved = format!("{}-resolved", ch.name);
    w.until("renamed -resolved", || {
        w.slack.channel(&ch.id).is_some_and(|c| c.name == resolved)
    })
    .await;
}

/// `/incident close` with its form submitted (review date and notes).
async fn close(w: &World, ch: &Channel, user: &str, notes: &str) {
    let before = w.slack.views().len();
    let a = settled_command(w, user, &ch.id, "close").await;
    assert!(a.get("text").is_none(), "no refusal: {a}");
    w.until("the close form opened", || w.slack.views().len() > before)
        .await;
    let view = w.slack.views().last().cloned().unwrap();
    assert!(
        view.json.to_string().contains("datepicker"),
        "{}",
        view.json
    );
    let s = w
        .slack
        .submit_view_with(
            &view.id,
            user,
            &[("review_date", "2026-12-01"), ("review_notes", notes)],
        )
        .await
        .unwrap();
    let ack = w.slack.wait_ack(&s.envelope_id, WAIT).await.unwrap();
    assert!(ack.payload.is_none(), "{ack:?}");
}

fn announcements_say(w: &World, word: &str) -> bool {
    w.broadcast.iter().all(|b| {
        w.slack
            .top_level_messages(b)
            .first()
            .is_some_and(|m| text_of(m).contains(word))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_is_refused_before_resolve_then_archives_the_channel_and_a_closed_incident_refuses_changes(
) {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    let ch = declared(&w, "Login outage").await;

    let a = incident_command(&w, DEFAULT_USER, &ch.id, "close").await;
    assert_eq!(a["response_type"], "ephemeral");
    assert!(a["text"].as_str().unwrap().contains("not resolved"), "{a}");
    let a = incident_command(&w, DEFAULT_USER, &ch.id, "reopen").await;
    assert!(
        a["text"].as_str().unwrap().contains("nothing to reopen"),
        "{a}"
    );
    assert!(w
        .slack
        .views()
        .iter()
        .all(|v| !v.json.to_string().contains("incd_close")));

    incident_command(
        &w,
        DEFAULT_USER,
        &ch.id,
        &format!("follow-up Add login canary owner <@{BOB}>"),
    )
    .await;
    resolve_with_impact(
        &w,
        &ch,
        DEFAULT_USER,
        "Restarted the auth pods",
        "No one could log in for 12 minutes",
    )
    .await;
    w.until("the resolution post states the impact", || {
        w.slack
            .messages(&ch.id)
            .iter()
            .any(|m| text_of(m).contains("Impact:") && text_of(m).contains("No one could log in"))
    })
    .await;
    close(&w, &ch, DEFAULT_USER, "Reviewed on Monday").await;

    w.until("the channel is archived", || {
        w.slack.channel(&ch.id).is_some_and(|c| c.is_archived)
    })
    .await;
    let all: String = w.slack.messages(&ch.id).iter().map(text_of).collect();
    assert!(all.contains("Incident closed by"), "{all}");
    assert!(
        all.contains("2026-12-01") && all.contains("Reviewed on Monday"),
        "{all}"
    );
    assert!(
        summary_text(&w, &ch).contains("closed"),
        "{}",
        summary_text(&w, &ch)
    );
    w.until("every announcement says closed", || {
        announcements_say(&w, "CLOSED")
    })
    .await;

    // A closed incident refuses further changes, ephemerally.
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
    assert!(p["text"].as_str().unwrap().contains("is closed"), "{p}");
    let a = incident_command(&w, DEFAULT_USER, &ch.id, "close").await;
    assert!(
        a["text"].as_str().unwrap().contains("already closed"),
        "{a}"
    );
    let a = incident_command(&w, DEFAULT_USER, &ch.id, "reopen").await;
    assert!(
        a["text"].as_str().unwrap().contains("cannot be reopened"),
        "{a}"
    );
    assert_eq!(
        w.slack.calls_to("conversations.rename").len(),
        1,
        "nothing renamed after close"
    );

    // Follow-ups can still be closed, from the owner's DM.
    let dm = w.slack.im_channel(BOB).unwrap();
    let msg = w
        .slack
        .messages(&dm.id)
        .into_iter()
        .find(|m| text_of(m).contains("F-1"))
        .unwrap();
    let d = w
        .slack
        .click_button(&dm.id, &msg.ts, "incd_follow_up_done", BOB)
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    w.until("the follow-up is done", || {
        w.slack
            .response_url_posts()
            .iter()
            .any(|p| p.body.to_string().contains("Marked *F-1*"))
    })
    .await;
    assert_eq!(w.slack.calls_to("conversations.archive").len(), 1);
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_that_lets_only_admins_archive_gets_asked_to_and_the_incident_is_still_closed()
{
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    let ch = declared(&w, "Search index stale").await;
    resolve(&w, &ch, DEFAULT_USER, "Reindexed").await;
    w.slack.inject_fault(
        "conversations.archive",
        Fault::Error("restricted_action".into()),
    );
    close(&w, &ch, DEFAULT_USER, "").await;
    w.until("the channel is told to ask an admin", || {
        w.slack
            .messages(&ch.id)
            .iter()
            .any(|m| text_of(m).contains("ask a workspace admin"))
    })
    .await;
    assert!(!w.slack.channel(&ch.id).unwrap().is_archived);
    w.until("every announcement says closed", || {
        announcements_say(&w, "CLOSED")
    })
    .await;
    let a = incident_command(&w, DEFAULT_USER, &ch.id, "reopen").await;
    assert!(
        a["text"].as_str().unwrap().contains("cannot be reopened"),
        "{a}"
    );
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_restores_the_channel_name_pages_again_with_the_same_key_and_the_incident_resolves_again(
) {
    let mut w = World::new().await;
    let pd = FakePagerDuty::start().await;
    w.set_env("PAGERDUTY_ROUTING_KEY", pd.routing_key());
    w.set_env("PAGERDUTY_EVENTS_URL", pd.url());
    let _incd = w.start(1).await;
    let ch = w.declare(DEFAULT_USER, "Payments failing", "sev1").await;
    w.until("summary pinned", || !w.slack.pins(&ch.id).is_empty())
        .await;
    let key = ch.name.strip_prefix("incd-").unwrap().to_string();
    w.until("paged", || pd.alerts().contains_key(&key)).await;
    resolve(&w, &ch, DEFAULT_USER, "Rolled back").await;
    w.until("page resolved", || {
        pd.alerts()[&key].status == AlertStatus::Resolved
    })
    .await;

    let a = settled_command(&w, BOB, &ch.id, "reopen").await;
    assert!(a["text"].as_str().unwrap().contains("Reopening"), "{a}");
    w.until("the -resolved suffix is gone", || {
        w.slack.channel(&ch.id).is_some_and(|c| c.name == ch.name)
    })
    .await;
    w.until("the topic says investigating", || {
        w.slack.topic(&ch.id).contains("Investigating")
    })
    .await;
    w.until("the summary says investigating", || {
        summary_text(&w, &ch).contains("investigating")
    })
    .await;
    w.until("the announcements are back to declared", || {
        announcements_say(&w, "incident declared")
    })
    .await;
    w.until("paged again with the same dedup key", || {
        pd.alerts()[&key].status == AlertStatus::Triggered
    })
    .await;
    assert_eq!(pd.alerts().len(), 1, "one dedup key");
    w.until("the channel is told", || {
        w.slack
            .messages(&ch.id)
            .iter()
            .any(|m| text_of(m).contains("Incident reopened"))
    })
    .await;

    // It resolves again, from scratch: renamed, the page resolved again.
    resolve(&w, &ch, DEFAULT_USER, "Fixed for real").await;
    w.until("page resolved again", || {
        pd.alerts()[&key].status == AlertStatus::Resolved
    })
    .await;
    w.until("announcements say resolved again", || {
        announcements_say(&w, "RESOLVED")
    })
    .await;
    assert!(pd.rejected().is_empty(), "{:?}", pd.rejected());
    w.slack.assert_no_violations();
}

/// The review reminders incd posted in `channel`, by the step each was posted for.
fn reminders_in(w: &World, channel: &str) -> Vec<String> {
    w.slack
        .messages(channel)
        .iter()
        .filter(|m| m.text.contains("Review reminder"))
        .map(|m| {
            m.metadata
                .as_ref()
                .map(|md| md["event_payload"]["step"].to_string())
                .unwrap_or_default()
        })
        .collect()
}

fn dm_reminders(w: &World, user: &str) -> Vec<String> {
    w.slack
        .im_channel(user)
        .map(|c| reminders_in(w, &c.id))
        .unwrap_or_default()
}

fn assert_unique(what: &str, steps: &[String]) {
    let mut seen = std::collections::HashSet::new();
    for s in steps {
        assert!(
            seen.insert(s),
            "{what}: reminder {s} sent twice in {steps:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_reminders_list_open_follow_ups_survive_a_restart_unrepeated_and_stop_once_closed_and_done(
) {
    let mut w = World::new().await;
    w.set_env("INCD_REVIEW_AFTER", "3s");
    w.set_env("INCD_REVIEW_EVERY", "3s");
    let mut incd = w.start(1).await;
    // Declared with CAROL as commander.
    let before: Vec<String> = w.slack.channels().into_iter().map(|c| c.id).collect();
    let view = w.open_declare_form(DEFAULT_USER, GENERAL_CHANNEL, "").await;
    let d = w
        .slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[
                ("title", "Queue backlog"),
                ("severity", "sev3"),
                ("commander", CAROL),
            ],
        )
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    let ch = w.wait_new_incident_channel(&before).await;
    w.until("summary pinned", || !w.slack.pins(&ch.id).is_empty())
        .await;
    incident_command(
        &w,
        DEFAULT_USER,
        &ch.id,
        &format!("follow-up Add a queue depth alert owner <@{BOB}>"),
    )
    .await;
    resolve(&w, &ch, DEFAULT_USER, "Scaled the consumers").await;

    // The first reminder: in the channel, listing the open follow-up with its owner and a
    // Close button; and a DM to the commander.
    w.until("a reminder in the channel", || {
        !reminders_in(&w, &ch.id).is_empty()
    })
    .await;
    let post = w
        .slack
        .messages(&ch.id)
        .into_iter()
        .find(|m| m.text.contains("Review reminder"))
        .unwrap();
    let shown = text_of(&post);
    assert!(
        shown.contains("F-1") && shown.contains("Add a queue depth alert"),
        "{shown}"
    );
    assert!(shown.contains(&format!("<@{BOB}>")), "{shown}");
    assert!(shown.contains("incd_review_close"), "{shown}");
    // Its Close button opens the close form.
    let views = w.slack.views().len();
    let d = w
        .slack
        .click_button(&ch.id, &post.ts, "incd_review_close", DEFAULT_USER)
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    w.until("the close form opened from the reminder", || {
        w.slack.views().len() > views
            && w.slack
                .views()
                .last()
                .is_some_and(|v| v.json.to_string().contains("incd_close"))
    })
    .await;
    w.until("a reminder to the commander", || {
        !dm_reminders(&w, CAROL).is_empty()
    })
    .await;

    // Killed and restarted: reminders go on, none repeated.
    incd.kill9();
    let seen = reminders_in(&w, &ch.id).len();
    let _incd = w.start(1).await;
    w.until("a reminder after the restart", || {
        reminders_in(&w, &ch.id).len() > seen
    })
    .await;
    assert_unique("channel", &reminders_in(&w, &ch.id));
    assert_unique("commander", &dm_reminders(&w, CAROL));

    // Closed (archived) with F-1 still open: reminders go by DM to the commander and the owner.
    close(&w, &ch, DEFAULT_USER, "Reviewed").await;
    w.until("archived", || {
        w.slack.channel(&ch.id).is_some_and(|c| c.is_archived)
    })
    .await;
    w.until("the owner of the open follow-up is reminded", || {
        !dm_reminders(&w, BOB).is_empty()
    })
    .await;

    // F-1 done: closed and nothing open, the reminders stop.
    let dm = w.slack.im_channel(BOB).unwrap();
    let msg = w
        .slack
        .messages(&dm.id)
        .into_iter()
        .find(|m| text_of(m).contains("incd_follow_up_done"))
        .unwrap();
    let d = w
        .slack
        .click_button(&dm.id, &msg.ts, "incd_follow_up_done", BOB)
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    w.until("F-1 is done", || {
        w.slack
            .response_url_posts()
            .iter()
            .any(|p| p.body.to_string().contains("Marked *F-1*"))
    })
    .await;
    let count = |w: &World| dm_reminders(w, BOB).len() + dm_reminders(w, CAROL).len();
    // A reminder already due when F-1 closed may still be on its way: let the count settle
    // for one period, then watch two more periods in which none may arrive.
    let mut settled = count(&w);
    let quiet_from = std::time::Instant::now();
    let deadline = quiet_from + std::time::Duration::from_secs(12);
    let mut last_change = quiet_from;
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let n = count(&w);
        if n != settled {
            settled = n;
            last_change = std::time::Instant::now();
        }
    }
    assert!(
        last_change < quiet_from + std::time::Duration::from_secs(4),
        "reminders kept coming after the incident was closed and every follow-up done"
    );
    assert_unique("owner", &dm_reminders(&w, BOB));
    assert_unique("commander", &dm_reminders(&w, CAROL));
    w.slack.assert_no_violations();
}

// ---- the post-mortem ------------------------------------------------------------------------

/// The texts of the blocks under the post-mortem section `heading` (one of incd's blue section
/// headings), up to the next one.
fn section(
    page: &incd_fakes::notion::FakePage,
    heading: &str,
) -> Vec<incd_fakes::notion::FakeBlock> {
    let is_marked =
        |b: &incd_fakes::notion::FakeBlock| b.kind == "heading_2" && b.value["color"] == "blue";
    page.blocks
        .iter()
        .skip_while(|b| !(is_marked(b) && b.text == heading))
        .skip(1)
        .take_while(|b| !is_marked(b))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_post_mortem_is_written_once_from_what_incd_recorded_even_with_a_kill_9_while_writing()
{
    use incd_fakes::notion::{FakeNotion, Fault as NotionFault, Schema};
    let mut w = World::new().await;
    let notion = FakeNotion::start().await;
    let db = notion.add_database("Incident", Schema::incident_default());
    w.set_env("NOTION_TOKEN", notion.token());
    w.set_env("NOTION_DATABASE_ID", db);
    w.set_env("NOTION_API_URL", notion.url());
    let mut incd = w.start(1).await;
    let ch = declared(&w, "Checkout down").await;
    w.until("the page is created", || !notion.pages().is_empty())
        .await;
    let page_id = notion.pages()[0].id.clone();
    let a = incident_command(
        &w,
        DEFAULT_USER,
        &ch.id,
        &format!("follow-up Canary deploys owner <@{BOB}> due 2027-01-15"),
    )
    .await;
    assert!(a["text"].as_str().unwrap().contains("F-1"), "{a}");
    incident_command(&w, BOB, &ch.id, "note Rolled back deploy 4512").await;

    // The first append at resolve is the resolution section; the second one, the post-mortem,
    // is applied but its answer never comes: incd is killed while waiting for it.
    notion.push_fault_on("PATCH", "/children", NotionFault::Delay(Default::default()));
    notion.push_fault_on("PATCH", "/children", NotionFault::LoseResponse);
    resolve_with_impact(
        &w,
        &ch,
        DEFAULT_USER,
        "Rolled back the deploy",
        "EU customers could not pay for an hour",
    )
    .await;
    w.until("the post-mortem sections are on the page", || {
        notion
            .page(&page_id)
            .is_some_and(|p| p.headings().iter().any(|h| h == "Follow-ups"))
    })
    .await;
    assert_eq!(notion.pending_faults(), 0);
    incd.kill9();
    let _incd = w.start(1).await;

    // Follow-ups keep changing after resolve: the to-dos follow, nothing is added twice.
    let a = incident_command(&w, DEFAULT_USER, &ch.id, "follow-up Rewrite checkout").await;
    assert!(a["text"].as_str().unwrap().contains("F-2"), "{a}");
    incident_command(&w, DEFAULT_USER, &ch.id, "done F-1").await;
    incident_command(&w, DEFAULT_USER, &ch.id, "wontdo F-2").await;
    w.until("the to-dos follow the follow-ups", || {
        let Some(page) = notion.page(&page_id) else {
            return false;
        };
        let todos = section(&page, "Follow-ups");
        todos.len() == 2
            && todos[0].value["checked"] == true
            && todos[1].value["checked"] == false
            && todos[1].text == "F-2 Rewrite checkout (won't do)"
            && todos[1].value["rich_text"][0]["annotations"]["strikethrough"] == true
    })
    .await;

    // Close: the review section is added, with the notes.
    close(&w, &ch, DEFAULT_USER, "All follow-ups tracked").await;
    w.until("the review section is on the page", || {
        notion
            .page(&page_id)
            .is_some_and(|p| p.headings().iter().any(|h| h == "Review and close"))
    })
    .await;

    let page = notion.page(&page_id).unwrap();
    let marked: Vec<String> = page
        .blocks
        .iter()
        .filter(|b| b.kind == "heading_2" && b.value["color"] == "blue")
        .map(|b| b.text.clone())
        .collect();
    assert_eq!(
        marked,
        [
            "Abstract",
            "Key facts",
            "People",
            "Timeline",
            "Impact",
            "What went wrong",
            "What went well",
            "Where we got lucky",
            "Follow-ups",
            "Review and close"
        ],
        "every section once, in order"
    );
    let texts =
        |h: &str| -> Vec<String> { section(&page, h).iter().map(|b| b.text.clone()).collect() };

    let abs = texts("Abstract");
    assert!(abs.iter().any(|t| t == "Rolled back the deploy"), "{abs:?}");
    assert!(
        abs.iter()
            .any(|t| t.starts_with("Severity SEV2 · Duration ") && t.ends_with("Resolved")),
        "{abs:?}"
    );
    let facts = texts("Key facts").join("\n");
    assert!(
        facts.contains("Declared: ") && facts.contains("Resolved: "),
        "{facts}"
    );
    assert!(facts.contains(&format!("Channel: #{}", ch.name)), "{facts}");

    let people = section(&page, "People");
    assert!(people.iter().all(|b| b.kind == "bulleted_list_item"));
    let people: Vec<String> = people.iter().map(|b| b.text.clone()).collect();
    let label_of = |user: &str| -> String {
        people
            .iter()
            .find(|p| p.ends_with(&format!(": {user}")))
            .and_then(|p| p.split(": ").next())
            .unwrap_or_else(|| panic!("{user} is labelled: {people:?}"))
            .to_string()
    };
    let (alice_label, bob_label) = (label_of(DEFAULT_USER), label_of(BOB));
    assert_ne!(alice_label, bob_label);

    let timeline = texts("Timeline");
    let stamp = regex_lite_stamp();
    assert!(timeline.len() >= 3, "{timeline:?}");
    for line in &timeline {
        assert!(stamp(line), "date and UTC time first: {line}");
        for who in [DEFAULT_USER, BOB, "Alice"] {
            assert!(!line.contains(who), "{who} named in the timeline: {line}");
        }
    }
    assert!(
        timeline[0].ends_with(&format!(
            " UTC · {alice_label}: Incident declared by {alice_label}"
        )),
        "{timeline:?}"
    );
    assert!(timeline
        .iter()
        .any(|l| l.contains("Post-mortem page created in Notion")));
    assert!(
        timeline
            .iter()
            .any(|l| l.ends_with(&format!(" UTC · {bob_label}: Rolled back deploy 4512"))),
        "the note is on the post-mortem's timeline by its author's label: {timeline:?}"
    );
    assert!(
        timeline
            .last()
            .unwrap()
            .ends_with(&format!(": Resolved by {alice_label}")),
        "{timeline:?}"
    );

    assert_eq!(texts("Impact"), ["EU customers could not pay for an hour"]);
    let todos = section(&page, "Follow-ups");
    assert_eq!(todos.len(), 2, "{todos:?}");
    assert!(todos.iter().all(|t| t.kind == "to_do"));
    assert_eq!(todos[0].value["checked"], true);
    assert_eq!(
        todos[0].text,
        format!("F-1 Canary deploys · owner {bob_label} · due 2027-01-15")
    );
    let review = texts("Review and close").join("\n");
    assert!(review.contains("Closed: ") && review.contains("Review held on: 2026-12-01"));
    assert!(review.contains("All follow-ups tracked"), "{review}");

    assert!(notion.rejected().is_empty(), "{:?}", notion.rejected());
    w.slack.assert_no_violations();
}

/// `2026-12-02 14:05 UTC · …`
fn regex_lite_stamp() -> impl Fn(&str) -> bool {
    |line: &str| {
        let b = line.as_bytes();
        line.len() > 22
            && line.is_char_boundary(20)
            && line[..20].chars().enumerate().all(|(i, c)| match i {
                4 | 7 => c == '-',
                10 | 16 => c == ' ',
                13 => c == ':',
                17..=19 => true,
                _ => c.is_ascii_digit(),
            })
            && &line[16..20] == " UTC"
            && b[20] == b' '
    }
}
