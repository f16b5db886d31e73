//! Fault injection: slow Web API, disconnects, drops, silence, connection-open failures,
//! duplicate delivery, SIGKILL mid-workflow, 429s, 5xx bursts, a burst under rate tiers, hostile
//! input, health and shutdown. The real binary against the fake Slack.

mod common;

use std::time::{Duration, Instant};

use common::*;
use incd_fakes::slack::{Fault, SlashCommand, Target, DEFAULT_USER, GENERAL_CHANNEL};

fn text_of(m: &incd_fakes::slack::Message) -> String {
    format!("{} {}", m.text, m.blocks.clone().unwrap_or_default())
}

fn incident_channels(w: &World) -> Vec<incd_fakes::slack::Channel> {
    w.slack
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("incd-"))
        .collect()
}

/// Wait for a fully declared incident: summary pinned, every announcement posted.
async fn wait_declared(w: &World, channel: &str) {
    w.until("summary pinned", || !w.slack.pins(channel).is_empty())
        .await;
    for b in &w.broadcast {
        w.until("announced", || {
            w.slack
                .top_level_messages(b)
                .iter()
                .any(|m| text_of(m).contains(channel))
        })
        .await;
    }
}

fn assert_one_summary(w: &World, channel: &str) {
    let summaries = w
        .slack
        .top_level_messages(channel)
        .into_iter()
        .filter(|m| text_of(m).contains("Description"))
        .count();
    assert_eq!(summaries, 1, "one summary in the incident channel");
}

fn assert_exactly_once(w: &World, channel: &str) {
    let summaries = w
        .slack
        .top_level_messages(channel)
        .into_iter()
        .filter(|m| text_of(m).contains("Description"))
        .count();
    assert_eq!(summaries, 1, "one summary in the incident channel");
    for b in &w.broadcast {
        let n = w
            .slack
            .top_level_messages(b)
            .iter()
            .filter(|m| text_of(m).contains(channel))
            .count();
        assert_eq!(n, 1, "one announcement in {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_stay_fast_while_every_web_api_call_takes_two_seconds() {
    let mut w = World::new().await;
    let _incd = w.start(2).await;
    w.slack.set_latency(Duration::from_secs(2));
    let mut ids = Vec::new();
    for i in 0..20 {
        let d = w
            .slack
            .send_slash_command(SlashCommand::new(
                "/incident",
                &format!("t{i}"),
                DEFAULT_USER,
                GENERAL_CHANNEL,
            ))
            .await
            .unwrap();
        ids.push(d.envelope_id);
    }
    let mut lat = Vec::new();
    for id in &ids {
        lat.push(w.slack.wait_ack(id, WAIT).await.unwrap().latency);
    }
    lat.sort();
    let max = *lat.last().unwrap();
    eprintln!(
        "ack latency with 2 s Web API: p50 {:?} max {:?}",
        lat[lat.len() / 2],
        max
    );
    assert!(
        max < Duration::from_secs(1),
        "acks must not wait for the Web API: {max:?}"
    );
    assert!(w.slack.ack_timeouts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_requested_and_warning_lose_no_envelope() {
    let mut w = World::new().await;
    let _incd = w.start(2).await;
    let opens_before = w.slack.connection_opens().len();
    w.slack.disconnect_all("warning");
    w.slack.disconnect_all("refresh_requested");
    // Keep sending while the connections are replaced.
    let mut ids = Vec::new();
    for i in 0..30 {
        if let Ok(d) = w
            .slack
            .send_slash_command(SlashCommand::new(
                "/resolve-incident",
                &format!("{i}"),
                DEFAULT_USER,
                GENERAL_CHANNEL,
            ))
            .await
        {
            ids.push(d.envelope_id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in &ids {
        let ack = w.slack.wait_ack(id, WAIT).await.unwrap();
        assert!(!ack.late);
    }
    assert!(
        ids.len() >= 25,
        "the fake always had a live connection to deliver to"
    );
    w.slack.wait_for_connections(2, WAIT).await.unwrap();
    assert!(
        w.slack.connection_opens().len() >= opens_before + 2,
        "replacements opened"
    );
    assert!(
        w.slack.ack_timeouts().is_empty(),
        "{:?}",
        w.slack.ack_timeouts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abrupt_drop_reconnects_within_seconds() {
    let mut w = World::new().await;
    let _incd = w.start(2).await;
    let t0 = Instant::now();
    let opens = w.slack.connection_opens().len();
    let old: Vec<usize> = w.slack.live_connections().iter().map(|c| c.idx).collect();
    w.slack.drop_all();
    until("two new connections", Duration::from_secs(5), &mut || {
        w.slack.connection_opens().len() >= opens + 2
            && w.slack
                .live_connections()
                .iter()
                .filter(|c| !old.contains(&c.idx))
                .count()
                == 2
    })
    .await;
    eprintln!("reconnected in {:?}", t0.elapsed());
    let ch = w.declare(DEFAULT_USER, "After the drop", "sev3").await;
    wait_declared(&w, &ch.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_open_failures_back_off_and_recover() {
    let mut w = World::new().await;
    w.set_env("INCD_SOCKET_CONNECTIONS", "1");
    for f in [
        Fault::Status(500),
        Fault::Error("internal_error".into()),
        Fault::Status(503),
    ] {
        w.slack.inject_connections_open_fault(f);
    }
    let incd = w.spawn();
    w.slack
        .wait_for_connections(1, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", incd.log_text()));
    let opens = w.slack.calls_to("apps.connections.open");
    assert!(opens.len() >= 4);
    let gaps: Vec<Duration> = opens.windows(2).map(|p| p[1].at - p[0].at).collect();
    eprintln!("connections.open gaps: {gaps:?}");
    assert!(gaps[1] > gaps[0], "backoff grows: {gaps:?}");
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(300)),
        "no hammering: {gaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_noticed_and_replaced() {
    let mut w = World::new().await;
    w.set_env("INCD_SOCKET_CONNECTIONS", "1");
    w.set_env("INCD_SOCKET_PING_MS", "200");
    w.set_env("INCD_SOCKET_SILENCE_MS", "1000");
    let _incd = w.start(1).await;
    let idx = w.slack.live_connections()[0].idx;
    let opens = w.slack.connection_opens().len();
    w.slack.go_silent_connection(idx);
    w.until("replacement opened", || {
        w.slack.connection_opens().len() > opens
            && w.slack.live_connections().iter().any(|c| c.idx != idx)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_delivery_on_two_connections_makes_one_incident() {
    let mut w = World::new().await;
    let _incd = w.start(2).await;
    let view = w.open_declare_form(DEFAULT_USER, GENERAL_CHANNEL, "").await;
    w.slack.set_default_target(Target::TwoConnections);
    let d = w
        .slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[("title", "Double delivery"), ("severity", "sev2")],
        )
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    // And Slack's own retry under a new envelope id, on one connection twice.
    w.slack.set_default_target(Target::TwiceOnOne);
    let r = w
        .slack
        .redeliver(&d, "timeout", Target::TwiceOnOne)
        .await
        .unwrap();
    w.slack.wait_ack(&r.envelope_id, WAIT).await.unwrap();
    let ch = w.wait_new_incident_channel(&[]).await;
    wait_declared(&w, &ch.id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(incident_channels(&w).len(), 1);
    assert_eq!(w.slack.calls_to("conversations.create").len(), 1);
    assert_exactly_once(&w, &ch.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_slack_created_the_channel_resumes_without_duplicates() {
    let mut w = World::new().await;
    let mut incd = w.start(1).await;
    // Slack creates the channel, then the answer never comes: the worst moment to die.
    w.slack
        .inject_fault("conversations.create", Fault::ApplyThenHang);
    let ch = w.declare(DEFAULT_USER, "Killed mid-create", "sev1").await;
    incd.kill9();

    let _incd2 = w.start(1).await;
    wait_declared(&w, &ch.id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(incident_channels(&w).len(), 1, "no second channel");
    assert_exactly_once(&w, &ch.id);
    w.until("members", || {
        w.slack.members(&ch.id).iter().any(|m| m == DEFAULT_USER)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_slack_posted_the_summary_does_not_post_it_twice() {
    let mut w = World::new().await;
    w.set_env("INCD_BROADCAST_CHANNELS", "");
    let mut incd = w.start(1).await;
    w.slack
        .inject_fault("chat.postMessage", Fault::ApplyThenHang);
    let ch = w.declare(DEFAULT_USER, "Killed mid-post", "sev2").await;
    w.until("summary posted", || {
        !w.slack.top_level_messages(&ch.id).is_empty()
    })
    .await;
    incd.kill9();

    let _incd2 = w.start(1).await;
    w.until("summary pinned", || !w.slack.pins(&ch.id).is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_one_summary(&w, &ch.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_a_post_and_recording_its_ts_loses_nothing() {
    let mut w = World::new().await;
    let mut incd = w.start(1).await;
    let ch = w
        .declare(DEFAULT_USER, "Killed before recording", "sev2")
        .await;
    wait_declared(&w, &ch.id).await;
    incd.kill9();
    // Rewind the store to the moment after Slack answered the summary and announcement posts
    // (their steps are done) but before their ts were recorded and the summary was pinned.
    let db = rusqlite::Connection::open(w.data_dir().join("incd.db")).unwrap();
    db.execute_batch(
        "UPDATE incidents SET status = 'declaring', summary_ts = NULL; \
         DELETE FROM announcements; DELETE FROM steps WHERE step = 'pin';",
    )
    .unwrap();
    drop(db);

    let _incd2 = w.start(1).await;
    let reopened = rusqlite::Connection::open(w.data_dir().join("incd.db")).unwrap();
    let recorded = || -> (String, Option<String>, i64) {
        reopened
            .query_row(
                "SELECT status, summary_ts, (SELECT COUNT(*) FROM announcements) FROM incidents",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };
    let n = w.broadcast.len() as i64;
    w.until("declare resumed and recorded", || {
        let (status, summary, announcements) = recorded();
        status == "open" && summary.is_some() && announcements == n
    })
    .await;
    let (_, summary_ts, _) = recorded();
    assert_eq!(
        w.slack.pins(&ch.id),
        vec![summary_ts.unwrap()],
        "the one summary is the pinned one"
    );
    assert_exactly_once(&w, &ch.id);

    // With the ts recovered, resolving edits every announcement in place.
    let d = w
        .slack
        .send_slash_command(SlashCommand::new(
            "/resolve-incident",
            "Restarted the workers",
            DEFAULT_USER,
            &ch.id,
        ))
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    let view = w.slack.wait_view_opened(WAIT).await.unwrap();
    w.slack
        .submit_view_with(&view.id, DEFAULT_USER, &[])
        .await
        .unwrap();
    for b in &w.broadcast {
        w.until("announcement edited", || {
            let top = w.slack.top_level_messages(b);
            top.len() == 1 && text_of(&top[0]).contains("RESOLVED")
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_never_before_retry_after() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    w.slack.inject_faults(
        "conversations.create",
        [
            Fault::RateLimited {
                retry_after_secs: 1,
            },
            Fault::RateLimited {
                retry_after_secs: 1,
            },
        ],
    );
    w.slack
        .inject_faults("chat.postMessage", [Fault::Status(500), Fault::Status(503)]);
    let t0 = Instant::now();
    let ch = w.declare(DEFAULT_USER, "Throttled", "sev3").await;
    wait_declared(&w, &ch.id).await;
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "waited for both Retry-Afters"
    );
    assert!(
        w.slack.early_retries().is_empty(),
        "{:?}",
        w.slack.early_retries()
    );
    assert_eq!(incident_channels(&w).len(), 1);
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_thirty_declarations_completes_under_rate_tiers() {
    let mut w = World::new().await;
    w.set_env("INCD_BROADCAST_CHANNELS", w.broadcast[0].clone());
    w.set_env("INCD_SLACK_RATE_SCALE", "10");
    let _incd = w.start(2).await;
    // Tier windows 10x shorter than Slack's (a Tier 2 minute lasts 6 s); 1 msg/s/channel scaled;
    // incd's budgets on the same clock (INCD_SLACK_RATE_SCALE above).
    w.slack.enforce_rate_limits(10.0);
    // Thirty people declare within seconds; each submit returns at once while the
    // declarations run concurrently.
    for i in 0..30 {
        let v = w
            .open_declare_form(DEFAULT_USER, GENERAL_CHANNEL, &format!("burst {i}"))
            .await;
        let d = w
            .slack
            .submit_view_with(&v.id, DEFAULT_USER, &[("severity", "sev4")])
            .await
            .unwrap();
        w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    }
    let b = w.broadcast[0].clone();
    until("30 announcements", Duration::from_secs(120), &mut || {
        w.slack.top_level_messages(&b).len() >= 30
    })
    .await;
    until("30 pinned summaries", Duration::from_secs(60), &mut || {
        incident_channels(&w)
            .iter()
            .filter(|c| !w.slack.pins(&c.id).is_empty())
            .count()
            == 30
    })
    .await;
    assert_eq!(
        incident_channels(&w).len(),
        30,
        "nothing dropped, nothing doubled"
    );
    assert_eq!(w.slack.top_level_messages(&b).len(), 30);
    assert!(
        w.slack.early_retries().is_empty(),
        "{:?}",
        w.slack.early_retries()
    );
    // Calls within budget go together; only a call over budget goes alone, so Slack's refusals
    // stay about one per rate-limit key and window, never a storm of calls already on their way.
    let limited = w.slack.rate_limited();
    eprintln!("429s answered: {}", limited.len());
    assert!(limited.len() <= 12, "a 429 storm: {limited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_never_becomes_a_mention_link_or_oversized_request() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    let title = "<!channel> <!here> <@U0BOB> <https://evil.example|click> & 🔥 שלום";
    let description = format!("{} ünïcödé", "<!everyone> <#C0GENERAL> ".repeat(110));
    let view = w
        .open_declare_form(DEFAULT_USER, GENERAL_CHANNEL, title)
        .await;
    let d = w
        .slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[
                ("title", title),
                ("description", &description[..description.len().min(2990)]),
                ("severity", "sev1"),
            ],
        )
        .await
        .unwrap();
    w.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
    let ch = w.wait_new_incident_channel(&[]).await;
    wait_declared(&w, &ch.id).await;
    let mut all = Vec::new();
    for c in w.slack.channels() {
        for m in w.slack.messages(&c.id) {
            all.push(text_of(&m));
        }
    }
    all.push(w.slack.topic(&ch.id));
    for t in &all {
        for bad in [
            "<!channel>",
            "<!here>",
            "<!everyone>",
            "<@U0BOB>",
            "<https://evil.example",
            "<#C0GENERAL>",
        ] {
            assert!(!t.contains(bad), "raw {bad} reached Slack: {t}");
        }
    }
    assert!(
        all.iter().any(|t| t.contains("🔥") && t.contains("שלום")),
        "unicode survives"
    );
    w.slack.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_follows_the_connection_state() {
    let mut w = World::new().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    w.set_env("INCD_HTTP_ADDR", format!("127.0.0.1:{port}"));
    w.set_env("INCD_SOCKET_CONNECTIONS", "1");
    let _incd = w.start(1).await;
    let url = format!("http://127.0.0.1:{port}/healthz");
    let http = reqwest::Client::new();
    let status = || async {
        http.get(&url)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + WAIT;
    while status().await != 200 {
        assert!(Instant::now() < deadline, "never healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Slack goes away: the socket drops and reconnecting fails for a while.
    for _ in 0..6 {
        w.slack.inject_connections_open_fault(Fault::Status(503));
    }
    w.slack.drop_all();
    let deadline = Instant::now() + WAIT;
    while status().await != 503 {
        assert!(Instant::now() < deadline, "never unhealthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while status().await != 200 {
        assert!(Instant::now() < deadline, "never healthy again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("incd_socket_connections 1"));
    assert!(metrics.contains("incd_socket_connection_opens_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_a_restart_serves_again() {
    let mut w = World::new().await;
    let mut incd = w.start(2).await;
    let code = incd.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0), "clean exit\n{}", incd.log_text());
    let _incd = w.start(2).await;
    let ch = w.declare(DEFAULT_USER, "After restart", "sev4").await;
    wait_declared(&w, &ch.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_websockets_backs_off_instead_of_hammering() {
    let mut w = World::with_config(incd_fakes::slack::FakeSlackConfig {
        max_connections: 1,
        ..Default::default()
    })
    .await;
    let _incd = w.start(1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let opens = w.slack.calls_to("apps.connections.open").len();
    assert!(
        opens <= 4,
        "the refused slot must back off, saw {opens} opens in 3 s"
    );
    // The one connection Slack allows keeps serving.
    let ch = w.declare(DEFAULT_USER, "Crowded", "sev4").await;
    wait_declared(&w, &ch.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_connection_open_times_out_and_is_retried() {
    let mut w = World::new().await;
    w.set_env("INCD_SOCKET_CONNECTIONS", "1");
    w.set_env("INCD_SOCKET_CONNECT_TIMEOUT_MS", "500");
    w.slack.inject_connections_open_fault(Fault::Hang);
    w.slack.inject_connections_open_fault(Fault::Hang);
    let t0 = Instant::now();
    let incd = w.spawn();
    w.slack
        .wait_for_connections(1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", incd.log_text()));
    let opens = w.slack.calls_to("apps.connections.open");
    assert!(opens.len() >= 3, "two hung opens, then a good one");
    assert!(
        t0.elapsed() >= Duration::from_millis(1000),
        "each hang waited out its timeout"
    );
}

/// `/resolve-incident` in `channel`, confirmed in the modal by `user`.
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

/// `(status, steps not finished)` of the one incident in the store.
fn stored_progress(w: &World) -> (String, Vec<String>) {
    let db = rusqlite::Connection::open(w.data_dir().join("incd.db")).unwrap();
    let status: String = db
        .query_row("SELECT status FROM incidents", [], |r| r.get(0))
        .unwrap();
    let mut stmt = db
        .prepare("SELECT step FROM steps WHERE state IN ('started', 'failed') ORDER BY step")
        .unwrap();
    let open = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (status, open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_whose_channel_lookup_fails_once_still_adopts_the_channel() {
    let mut w = World::new().await;
    let mut incd = w.start(1).await;
    // Slack creates the channel and the answer never comes; incd dies right then.
    w.slack
        .inject_fault("conversations.create", Fault::ApplyThenHang);
    let ch = w.declare(DEFAULT_USER, "Killed mid-create", "sev1").await;
    incd.kill9();
    // After the restart the first look for the channel gets an HTTP 500.
    w.slack
        .inject_fault("users.conversations", Fault::Status(500));

    let _incd2 = w.start(1).await;
    wait_declared(&w, &ch.id).await;
    assert!(
        w.slack.calls_to("users.conversations").len() >= 2,
        "the failed lookup was retried"
    );
    assert_eq!(incident_channels(&w).len(), 1, "the channel was adopted");
    assert_exactly_once(&w, &ch.id);
    w.until("declared in the store", || stored_progress(&w).0 == "open")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_and_fatal_errors_from_conversations_create_are_retried() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    w.slack.inject_faults(
        "conversations.create",
        [
            Fault::Error("internal_error".into()),
            Fault::Error("fatal_error".into()),
        ],
    );
    let ch = w.declare(DEFAULT_USER, "Slack hiccup", "sev2").await;
    wait_declared(&w, &ch.id).await;
    assert_eq!(w.slack.calls_to("conversations.create").len(), 3);
    assert!(
        !w.slack.calls_to("users.conversations").is_empty(),
        "looked for the channel before creating it again"
    );
    assert_eq!(incident_channels(&w).len(), 1);
    assert_exactly_once(&w, &ch.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_during_a_declare_then_a_crash_finishes_both_workflows() {
    let mut w = World::new().await;
    w.set_env("INCD_BROADCAST_CHANNELS", "");
    let mut incd = w.start(1).await;
    // The summary post hangs: the declare is still running when the resolution comes.
    w.slack.inject_fault("chat.postMessage", Fault::Hang);
    let ch = w
        .declare(DEFAULT_USER, "Resolved mid-declare", "sev2")
        .await;
    resolve(&w, &ch.id, DEFAULT_USER, "False alarm").await;
    w.until("resolution recorded", || {
        stored_progress(&w).0 == "resolving"
    })
    .await;
    incd.kill9();

    let _incd2 = w.start(1).await;
    w.until("resolved in the store with no step left unfinished", || {
        stored_progress(&w) == ("resolved".to_string(), vec![])
    })
    .await;
    w.until("summary pinned", || !w.slack.pins(&ch.id).is_empty())
        .await;
    assert_one_summary(&w, &ch.id);
    let renamed = w
        .slack
        .channels()
        .into_iter()
        .find(|c| c.id == ch.id)
        .unwrap();
    assert_ne!(renamed.name, ch.name, "the resolve renamed the channel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_answer_was_lost_is_withdrawn_when_the_incident_resolves() {
    use incd_fakes::pagerduty::{AlertStatus, FakePagerDuty, Fault as PdFault};
    let mut w = World::new().await;
    let pd = FakePagerDuty::start().await;
    w.set_env("PAGERDUTY_ROUTING_KEY", pd.routing_key());
    w.set_env("PAGERDUTY_EVENTS_URL", pd.url());
    // PagerDuty opens the alert (someone is paged) and the answer is lost.
    pd.push_fault(PdFault::LoseResponse);
    let _incd = w.start(1).await;
    let ch = w.declare(DEFAULT_USER, "Lost page", "sev1").await;
    let name = ch.name.strip_prefix("incd-").unwrap().to_string();
    w.until("paged", || pd.alerts().contains_key(&name)).await;
    resolve(&w, &ch.id, DEFAULT_USER, "Fixed").await;
    until("page withdrawn", Duration::from_secs(30), &mut || {
        pd.alerts()
            .get(&name)
            .is_some_and(|a| a.status == AlertStatus::Resolved)
    })
    .await;
    assert_eq!(pd.alerts()[&name].opened, 1, "one page, then withdrawn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_pins_and_thread_replies_whose_answers_were_lost_are_looked_for_not_repeated() {
    let mut w = World::new().await;
    let _incd = w.start(1).await;
    // Slack performs the invite and the pin, and the answers are lost.
    w.slack
        .inject_fault("conversations.invite", Fault::ApplyThenReset);
    w.slack
        .inject_fault("pins.add", Fault::ApplyThenStatus(500));
    let ch = w.declare(DEFAULT_USER, "Lost answers", "sev2").await;
    wait_declared(&w, &ch.id).await;
    // The resolution and the thread reply under each announcement: posted, answers lost.
    w.slack.inject_faults(
        "chat.postMessage",
        std::iter::repeat_n(Fault::ApplyThenReset, 1 + w.broadcast.len()),
    );
    resolve(&w, &ch.id, DEFAULT_USER, "Rolled back").await;
    w.until("resolved in the store with no step left unfinished", || {
        stored_progress(&w) == ("resolved".to_string(), vec![])
    })
    .await;
    for b in &w.broadcast {
        let announcement = w
            .slack
            .top_level_messages(b)
            .into_iter()
            .find(|m| text_of(m).contains(&ch.id))
            .expect("announced");
        let replies = w.slack.thread_replies(b, &announcement.ts);
        assert_eq!(replies.len(), 1, "one resolve reply in {b}: {replies:?}");
    }
    assert_eq!(w.slack.pins(&ch.id).len(), 1);
    assert!(
        !w.slack.calls_to("conversations.replies").is_empty(),
        "the thread was searched for the reply"
    );
    let violations = w.slack.violations();
    assert!(
        violations.is_empty(),
        "no already_in_channel, already_pinned or other refusal: {violations:?}"
    );
}
