//! PagerDuty paging and Notion post-mortems driven end to end: the real binary against fake
//! Slack, PagerDuty and Notion, including outages, 429s, the retry button and `incd doctor`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use incd_fakes::notion::{FakeNotion, Schema};
use incd_fakes::pagerduty::{AlertStatus, FakePagerDuty, Fault as PdFault};
use incd_fakes::slack::{SlashCommand, DEFAULT_USER};

fn text_of(m: &incd_fakes::slack::Message) -> String {
    format!("{} {}", m.text, m.blocks.clone().unwrap_or_default())
}

struct Full {
    w: World,
    pd: FakePagerDuty,
    notion: FakeNotion,
    db: String,
}

async fn full_world() -> Full {
    let mut w = World::new().await;
    let pd = FakePagerDuty::start().await;
    let notion = FakeNotion::start().await;
    let db = notion.add_database("Incident", Schema::incident_default());
    w.set_env("PAGERDUTY_ROUTING_KEY", pd.routing_key());
    w.set_env("PAGERDUTY_EVENTS_URL", pd.url());
    w.set_env("NOTION_TOKEN", notion.token());
    w.set_env("NOTION_DATABASE_ID", db.clone());
    w.set_env("NOTION_API_URL", notion.url());
    Full { w, pd, notion, db }
}

async fn resolve(w: &World, channel: &str, user: &str, summary: &str) {
    let d = w
        .slack
        .send_slash_command(SlashCommand::new(
            "/resolve-incident",
            summary,
            user,
            channel,
        ))
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    let view = w.slack.wait_view_opened(WAIT).await.unwrap();
    let s = w.slack.submit_view_with(&view.id, user, &[]).await.unwrap();
    w.slack.wait_ack(&s.envelope_id, WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declare_pages_once_creates_the_post_mortem_and_links_both_then_resolve_closes_them() {
    let mut f = full_world().await;
    let _incd = f.w.start(2).await;
    let ch = f.w.declare(DEFAULT_USER, "Payments failing", "sev1").await;
    let name = ch.name.strip_prefix("incd-").unwrap().to_string();

    // One trigger, dedup_key = incident name, mapped severity, summary, links to Slack.
    f.w.until("paged", || f.pd.alerts().contains_key(&name))
        .await;
    let alert = f.pd.alerts()[&name].clone();
    assert_eq!(alert.status, AlertStatus::Triggered);
    assert_eq!(alert.opened, 1);
    assert_eq!(alert.severity, "critical");
    assert_eq!(alert.source, "incd");
    assert!(
        alert.summary.starts_with("[SEV1] Payments failing"),
        "{}",
        alert.summary
    );
    assert!(alert.links.iter().any(|l| {
        let href = l["href"].as_str().unwrap_or("");
        href.starts_with("https://slack.com/app_redirect?channel=")
            && (href.contains(&ch.id) || href.contains(&ch.name))
    }));

    // The post-mortem page lives in the database with the skeleton sections.
    f.w.until("post-mortem", || !f.notion.pages().is_empty())
        .await;
    let page = f.notion.pages()[0].clone();
    assert!(page.title.contains(&name), "{}", page.title);
    let headings = page.headings().join("|").to_lowercase();
    for section in [
        "description",
        "impact",
        "timeline",
        "root cause",
        "mitigation",
        "lessons",
    ] {
        assert!(headings.contains(section), "missing {section}: {headings}");
    }
    assert!(
        !page.blocks_of("to_do").is_empty(),
        "follow-up tasks as to-dos"
    );
    assert!(
        page.blocks.iter().any(|b| {
            let v = b.value.to_string();
            v.contains(&ch.id) || v.contains(&ch.name)
        }),
        "description links the Slack channel"
    );
    assert_eq!(page.option("Severity").as_deref(), Some("SEV1"));

    // Both links show in the channel: pinned summary and bookmark.
    f.w.until("summary shows the post-mortem link", || {
        f.w.slack
            .pins(&ch.id)
            .iter()
            .filter_map(|ts| f.w.slack.message(&ch.id, ts))
            .any(|m| text_of(&m).contains(&page.url) && text_of(&m).contains("paged"))
    })
    .await;
    f.w.until("bookmark", || {
        f.w.slack
            .bookmarks(&ch.id)
            .iter()
            .any(|b| b.link == page.url)
    })
    .await;

    resolve(&f.w, &ch.id, BOB, "Restarted the payment workers").await;
    f.w.until("page resolved", || {
        f.pd.alerts()[&name].status == AlertStatus::Resolved
    })
    .await;
    let resolves: Vec<_> =
        f.pd.events()
            .into_iter()
            .filter(|e| e["event_action"] == "resolve")
            .collect();
    assert_eq!(resolves.len(), 1);
    assert_eq!(resolves[0]["dedup_key"], name.as_str());
    f.w.until("post-mortem resolved", || {
        f.notion.page(&page.id).is_some_and(|p| {
            p.option("Status").as_deref() == Some("Resolved")
                && p.text().contains("Restarted the payment workers")
        })
    })
    .await;
    let triggers =
        f.pd.events()
            .iter()
            .filter(|e| e["event_action"] == "trigger")
            .count();
    assert_eq!(triggers, 1, "one trigger per incident");
    assert!(f.pd.rejected().is_empty(), "{:?}", f.pd.rejected());
    assert!(f.notion.rejected().is_empty(), "{:?}", f.notion.rejected());
    f.w.slack.assert_no_violations();
    let _ = &f.db;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_down_never_holds_up_slack_and_the_channel_is_told() {
    let mut f = full_world().await;
    f.pd.set_down(true);
    let _incd = f.w.start(1).await;
    let t0 = Instant::now();
    let ch = f.w.declare(DEFAULT_USER, "DB latency", "sev2").await;
    f.w.until("summary pinned", || !f.w.slack.pins(&ch.id).is_empty())
        .await;
    for b in &f.w.broadcast {
        f.w.until("announced", || !f.w.slack.top_level_messages(b).is_empty())
            .await;
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "Slack side at full speed"
    );
    f.w.until("failure notice", || {
        f.w.slack.messages(&ch.id).iter().any(|m| {
            let t = text_of(m);
            t.contains("PagerDuty") && t.contains("keeps trying") && t.contains("incd_retry")
        })
    })
    .await;
    // The post-mortem was unaffected.
    f.w.until("post-mortem", || !f.notion.pages().is_empty())
        .await;
    // PagerDuty comes back: incd pages and says so.
    f.pd.set_down(false);
    let name = ch.name.strip_prefix("incd-").unwrap().to_string();
    until("paged after recovery", Duration::from_secs(30), &mut || {
        f.pd.alerts().contains_key(&name)
    })
    .await;
    f.w.until("recovered notice", || {
        f.w.slack
            .messages(&ch.id)
            .iter()
            .any(|m| text_of(m).contains("paged after all"))
    })
    .await;
    assert!(f.pd.early_retries().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notion_rate_limits_are_honoured_and_the_page_is_created_once() {
    let mut f = full_world().await;
    f.notion.push_fault(PdFault::RateLimited {
        retry_after_secs: 1,
    });
    f.notion.push_fault(PdFault::LoseResponse);
    let _incd = f.w.start(1).await;
    let ch = f.w.declare(DEFAULT_USER, "Slow search", "sev3").await;
    until("post-mortem linked", Duration::from_secs(30), &mut || {
        f.w.slack
            .bookmarks(&ch.id)
            .iter()
            .any(|b| b.title.contains("Post-mortem"))
    })
    .await;
    assert_eq!(
        f.notion.pages().len(),
        1,
        "a lost response never makes a second page"
    );
    assert!(
        f.notion.early_retries().is_empty(),
        "{:?}",
        f.notion.early_retries()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_is_announced_and_the_retry_button_pages() {
    let mut f = full_world().await;
    f.w.set_env("INCD_RETRY_GIVE_UP_SECS", "1");
    f.pd.set_down(true);
    let _incd = f.w.start(1).await;
    let ch = f.w.declare(DEFAULT_USER, "Cache stampede", "sev1").await;
    until("gave-up notice", Duration::from_secs(20), &mut || {
        f.w.slack
            .messages(&ch.id)
            .iter()
            .any(|m| text_of(m).contains("gave up"))
    })
    .await;
    let msg =
        f.w.slack
            .messages(&ch.id)
            .into_iter()
            .find(|m| text_of(m).contains("gave up"))
            .unwrap();
    f.pd.set_down(false);
    let d =
        f.w.slack
            .click_button(&ch.id, &msg.ts, "incd_retry", BOB)
            .await
            .unwrap();
    f.w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    let name = ch.name.strip_prefix("incd-").unwrap().to_string();
    f.w.until("paged by the button", || f.pd.alerts().contains_key(&name))
        .await;
    assert_eq!(f.pd.alerts()[&name].opened, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_pagerduty_call_is_retried_and_pages_once() {
    let mut f = full_world().await;
    f.pd.push_fault(PdFault::LoseResponse);
    let _incd = f.w.start(1).await;
    let ch = f.w.declare(DEFAULT_USER, "Lost ack", "sev2").await;
    let name = ch.name.strip_prefix("incd-").unwrap().to_string();
    until("paged", Duration::from_secs(40), &mut || {
        f.pd.alerts()
            .get(&name)
            .is_some_and(|a| a.trigger_count >= 2)
    })
    .await;
    assert_eq!(
        f.pd.alerts()[&name].opened,
        1,
        "the dedup key made the retry harmless"
    );
}

// -------------------------------------------------------------------------------------------
// incd doctor

fn grant_manifest_scopes(w: &World) {
    let scopes = incd::slack::manifest::bot_scopes();
    w.slack.set_scopes(&scopes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_good_setup() {
    let f = full_world().await;
    grant_manifest_scopes(&f.w);
    let env = f.w.env.clone();
    let dir = f.w.dir.path().to_path_buf();
    let (code, out) = tokio::task::spawn_blocking(move || run_doctor(&env, &dir, &[]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("All checks passed"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_a_bad_token_a_missing_scope_and_an_unreachable_database() {
    let f = full_world().await;
    grant_manifest_scopes(&f.w);
    let env = f.w.env.clone();
    let dir = f.w.dir.path().to_path_buf();

    let e = env.clone();
    let d = dir.clone();
    let (code, out) = tokio::task::spawn_blocking(move || {
        run_doctor(&e, &d, &[("SLACK_BOT_TOKEN", "xoxb-not-a-real-token")])
    })
    .await
    .unwrap();
    assert_ne!(code, 0);
    assert!(
        out.contains("SLACK_BOT_TOKEN") && out.contains("fix:"),
        "{out}"
    );

    f.w.slack.revoke_scopes(&["pins:write"]);
    let e = env.clone();
    let d = dir.clone();
    let (code, out) = tokio::task::spawn_blocking(move || run_doctor(&e, &d, &[]))
        .await
        .unwrap();
    assert_ne!(code, 0);
    assert!(out.contains("pins:write"), "{out}");
    grant_manifest_scopes(&f.w);

    f.notion.set_shared(&f.db, false);
    let (code, out) = tokio::task::spawn_blocking(move || run_doctor(&env, &dir, &[]))
        .await
        .unwrap();
    assert_ne!(code, 0);
    assert!(out.to_lowercase().contains("notion"), "{out}");
    assert!(out.contains("[FAIL]"), "{out}");
}

fn run_doctor(
    env: &[(String, String)],
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> (i32, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_incd"));
    cmd.arg("doctor").env_clear();
    std::fs::write(dir.join("none.toml"), "").unwrap();
    cmd.env("INCD_CONFIG", dir.join("none.toml"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_mode_opens_a_pagerduty_incident_links_it_and_resolves_it() {
    let mut w = World::new().await;
    let pd = FakePagerDuty::start().await;
    w.set_env("PAGERDUTY_API_TOKEN", pd.api_token());
    w.set_env("PAGERDUTY_SERVICE_ID", pd.service_id());
    w.set_env("PAGERDUTY_FROM_EMAIL", pd.from_email());
    w.set_env("PAGERDUTY_API_URL", pd.url());
    let _incd = w.start(1).await;
    let ch = w.declare(DEFAULT_USER, "Disk full on db-1", "sev2").await;
    let name = ch.name.strip_prefix("incd-").unwrap().to_string();
    w.until("incident opened", || !pd.incidents().is_empty())
        .await;
    let inc = pd.incidents()[0].clone();
    assert_eq!(inc.incident_key.as_deref(), Some(name.as_str()));
    assert!(inc.title.contains("Disk full on db-1"));
    w.until("html_url bookmarked", || {
        w.slack
            .bookmarks(&ch.id)
            .iter()
            .any(|b| b.link == inc.html_url)
    })
    .await;
    w.until("summary links it", || {
        w.slack
            .pins(&ch.id)
            .iter()
            .filter_map(|ts| w.slack.message(&ch.id, ts))
            .any(|m| text_of(&m).contains(&inc.html_url))
    })
    .await;
    resolve(&w, &ch.id, DEFAULT_USER, "Freed space").await;
    w.until("PagerDuty incident resolved", || {
        pd.incidents()[0].status == "resolved"
    })
    .await;
    assert_eq!(pd.incidents().len(), 1);
    assert!(pd.rejected().is_empty(), "{:?}", pd.rejected());
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declaration_that_cannot_get_a_channel_is_withdrawn_and_explained() {
    let mut f = full_world().await;
    let _incd = f.w.start(1).await;
    // Slack is slow and then refuses: PagerDuty answers first.
    f.w.slack.set_latency(Duration::from_millis(300));
    f.w.slack.inject_fault(
        "conversations.create",
        incd_fakes::slack::Fault::Error("restricted_action".into()),
    );
    let view =
        f.w.open_declare_form(DEFAULT_USER, incd_fakes::slack::GENERAL_CHANNEL, "")
            .await;
    let d =
        f.w.slack
            .submit_view_with(
                &view.id,
                DEFAULT_USER,
                &[("title", "No channel"), ("severity", "sev1")],
            )
            .await
            .unwrap();
    f.w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    f.w.until("reporter told", || {
        f.w.slack.response_url_posts().iter().any(|p| {
            p.body["text"]
                .as_str()
                .unwrap_or("")
                .contains("could not create the channel")
        })
    })
    .await;
    // Paging started beside the (slow) channel creation and got through; with no incident it
    // is withdrawn.
    f.w.until("the page went out and was withdrawn", || {
        let alerts = f.pd.alerts();
        !alerts.is_empty() && alerts.values().all(|a| a.status == AlertStatus::Resolved)
    })
    .await;
    assert!(f
        .w
        .slack
        .channels()
        .iter()
        .all(|c| !c.name.starts_with("incd-")));
    for b in &f.w.broadcast {
        assert!(
            f.w.slack.top_level_messages(b).is_empty(),
            "nothing announced"
        );
    }
}
