//! The Socket Mode transport on its own, with handlers that misbehave: a panic is contained and
//! acked, a slow handler never delays other envelopes nor misses Slack's 3-second window.

use std::sync::Arc;
use std::time::Duration;

use incd::config::Secret;
use incd::metrics::Metrics;
use incd::slack::api::SlackApi;
use incd::slack::socket::{
    Envelope, EnvelopeHandler, Handled, HandlerFuture, KeepAlive, SocketMode,
};
use incd_fakes::slack::{FakeSlack, SlashCommand, Target, DEFAULT_USER, GENERAL_CHANNEL};
use serde_json::{json, Value};

struct Misbehaving;

impl EnvelopeHandler for Misbehaving {
    fn handle(&self, envelope: Envelope) -> HandlerFuture {
        Box::pin(async move {
            let text = envelope.payload["text"].as_str().unwrap_or("").to_string();
            Handled::reply(match text.as_str() {
                "panic" => panic!("handler bug"),
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Some(json!({"text": "too late"}))
                }
                other => Some(json!({"text": format!("ok {other}")})),
            })
        })
    }
}

async fn start(slack: &FakeSlack) -> tokio::sync::watch::Sender<bool> {
    let metrics = Arc::new(Metrics::new());
    let api = Arc::new(SlackApi::new(
        incd::net::http_client().unwrap(),
        &slack.api_url(),
        Secret::new(slack.bot_token()),
        Secret::new(slack.app_token()),
        metrics.clone(),
    ));
    let sm = Arc::new(SocketMode::new(
        api,
        Arc::new(Misbehaving),
        metrics,
        1,
        KeepAlive::default(),
    ));
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(sm.run(rx));
    slack
        .wait_for_connections(1, Duration::from_secs(10))
        .await
        .unwrap();
    tx
}

async fn command(slack: &FakeSlack, text: &str) -> String {
    slack
        .send_slash_command(SlashCommand::new(
            "/incident",
            text,
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap()
        .envelope_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_acked_and_the_connection_keeps_serving() {
    let slack = FakeSlack::start().await;
    let _stop = start(&slack).await;
    slack.set_default_target(Target::Any);
    let bad = command(&slack, "panic").await;
    let ack = slack.wait_ack(&bad, Duration::from_secs(3)).await.unwrap();
    assert!(ack.payload.is_none(), "bare ack after a panic");
    assert!(ack.latency < Duration::from_millis(500));
    let good = command(&slack, "after").await;
    let ack = slack.wait_ack(&good, Duration::from_secs(3)).await.unwrap();
    assert_eq!(ack.payload.unwrap()["text"], "ok after");
    assert_eq!(
        slack.live_connections().len(),
        1,
        "same connection, still alive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_gets_a_bare_ack_in_time_and_blocks_nothing() {
    let slack = FakeSlack::start().await;
    let _stop = start(&slack).await;
    let slow = command(&slack, "slow").await;
    let fast = command(&slack, "fast").await;
    let fast_ack = slack.wait_ack(&fast, Duration::from_secs(3)).await.unwrap();
    assert!(
        fast_ack.latency < Duration::from_millis(500),
        "no head-of-line blocking"
    );
    let slow_ack = slack.wait_ack(&slow, Duration::from_secs(3)).await.unwrap();
    assert!(!slow_ack.late, "acked inside Slack's 3 s window");
    assert!(slow_ack.payload.is_none());
    assert!(slack.ack_timeouts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_envelope_id_is_acked_but_handled_once() {
    let slack = FakeSlack::start().await;
    let _stop = start(&slack).await;
    let d = slack
        .send_envelope(
            incd_fakes::slack::EnvelopeType::SlashCommands,
            json!({"command": "/incident", "text": "dup", "user_id": DEFAULT_USER, "channel_id": GENERAL_CHANNEL}),
            true,
            Target::TwiceOnOne,
        )
        .await
        .unwrap();
    slack
        .wait_ack(&d.envelope_id, Duration::from_secs(3))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let acks: Vec<Value> = slack
        .acks()
        .iter()
        .filter(|a| a.envelope_id == d.envelope_id)
        .map(|a| a.payload.clone().unwrap_or(Value::Null))
        .collect();
    assert_eq!(acks.len(), 2, "both deliveries acked");
    assert_eq!(
        acks.iter().filter(|p| p["text"] == "ok dup").count(),
        1,
        "handled once"
    );
}

/// The transport started without waiting for a connection.
async fn start_unconnected(slack: &FakeSlack) -> tokio::sync::watch::Sender<bool> {
    let metrics = Arc::new(Metrics::new());
    let api = Arc::new(SlackApi::new(
        incd::net::http_client().unwrap(),
        &slack.api_url(),
        Secret::new(slack.bot_token()),
        Secret::new(slack.app_token()),
        metrics.clone(),
    ));
    let sm = Arc::new(SocketMode::new(
        api,
        Arc::new(Misbehaving),
        metrics,
        1,
        KeepAlive::default(),
    ));
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(sm.run(rx));
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_connection_open_is_retried_only_after_its_retry_after() {
    use incd_fakes::slack::Fault;
    let slack = FakeSlack::start().await;
    // First connect: 429 with Retry-After 2 s (the exponential backoff alone would retry at ~0.5 s).
    slack.inject_connections_open_fault(Fault::RateLimited {
        retry_after_secs: 2,
    });
    let _stop = start_unconnected(&slack).await;
    slack
        .wait_for_connections(1, Duration::from_secs(10))
        .await
        .unwrap();
    let opens = slack.calls_to("apps.connections.open");
    assert_eq!(opens.len(), 2, "one 429, then one success: {opens:?}");
    assert!(
        opens[1].at.duration_since(opens[0].at) >= Duration::from_secs(2),
        "retried {:?} after a 2 s Retry-After",
        opens[1].at.duration_since(opens[0].at)
    );
    // A refresh whose replacement open is rate limited: the replacement waits too.
    slack.inject_connections_open_fault(Fault::RateLimited {
        retry_after_secs: 2,
    });
    let before = slack.connection_opens().len();
    slack.disconnect_all("refresh_requested");
    slack
        .wait_for(Duration::from_secs(10), "a replacement connection", |s| {
            (s.connection_opens().len() > before).then_some(())
        })
        .await
        .unwrap();
    assert!(
        slack.early_retries().is_empty(),
        "apps.connections.open came back inside a Retry-After window: {:?}",
        slack.early_retries()
    );
}
