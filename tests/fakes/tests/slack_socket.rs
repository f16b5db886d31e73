//! The fake Slack Socket Mode side: hello, tickets, acks and their validation, redelivery,
//! disconnects, pings.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use incd_fakes::slack::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as Ws;

type Sock =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const T: Duration = Duration::from_secs(5);

async fn open_url(slack: &FakeSlack) -> String {
    let r: Value = reqwest::Client::new()
        .post(format!("{}/apps.connections.open", slack.api_url()))
        .bearer_auth(slack.app_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["url"].as_str().unwrap().to_string()
}

async fn connect(slack: &FakeSlack) -> Sock {
    let url = open_url(slack).await;
    tokio_tungstenite::connect_async(&url).await.unwrap().0
}

/// Next text frame as JSON (skipping pings/pongs).
async fn next_json(ws: &mut Sock) -> Value {
    loop {
        let m = tokio::time::timeout(T, ws.next())
            .await
            .expect("frame within timeout")
            .expect("stream open")
            .expect("frame ok");
        if let Ws::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn hello(slack: &FakeSlack) -> Sock {
    let mut ws = connect(slack).await;
    let h = next_json(&mut ws).await;
    assert_eq!(h["type"], "hello");
    ws
}

async fn ack(ws: &mut Sock, v: Value) {
    ws.send(Ws::Text(v.to_string().into())).await.unwrap();
}

fn declare_modal() -> Value {
    json!({
        "type": "modal",
        "callback_id": "declare_incident",
        "title": {"type": "plain_text", "text": "Declare incident"},
        "submit": {"type": "plain_text", "text": "Declare"},
        "private_metadata": "{\"channel\":\"C0GENERAL\"}",
        "blocks": [
            {"type": "section", "block_id": "intro", "text": {"type": "mrkdwn", "text": "Tell us"}},
            {"type": "input", "block_id": "title_block", "label": {"type": "plain_text", "text": "Title"},
             "element": {"type": "plain_text_input", "action_id": "title"}},
            {"type": "input", "block_id": "severity_block", "label": {"type": "plain_text", "text": "Severity"},
             "element": {"type": "static_select", "action_id": "severity", "options": [
                {"text": {"type": "plain_text", "text": "SEV1"}, "value": "sev1"},
                {"text": {"type": "plain_text", "text": "SEV2"}, "value": "sev2"}]}},
            {"type": "input", "block_id": "commander_block", "optional": true,
             "label": {"type": "plain_text", "text": "Commander"},
             "element": {"type": "users_select", "action_id": "commander"}},
        ]
    })
}

#[tokio::test]
async fn hello_then_slash_command_ack_is_recorded() {
    let slack = FakeSlack::start().await;
    let mut ws = connect(&slack).await;
    let h = next_json(&mut ws).await;
    assert_eq!(h["type"], "hello");
    assert_eq!(h["num_connections"], 1);
    assert_eq!(h["connection_info"]["app_id"], APP_ID);
    assert!(
        h["debug_info"]["approximate_connection_time"]
            .as_u64()
            .unwrap()
            > 0
    );
    slack.wait_for_connections(1, T).await.unwrap();

    let d = slack
        .send_slash_command(SlashCommand::new(
            "/incident",
            "db is down",
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap();
    let env = next_json(&mut ws).await;
    assert_eq!(env["type"], "slash_commands");
    assert_eq!(env["envelope_id"], json!(d.envelope_id));
    assert_eq!(env["accepts_response_payload"], true);
    assert_eq!(env["payload"]["text"], "db is down");
    assert_eq!(env["payload"]["trigger_id"], json!(d.trigger_id));
    ack(
        &mut ws,
        json!({"envelope_id": d.envelope_id, "payload": {}}),
    )
    .await;
    let a = slack.wait_ack(&d.envelope_id, T).await.unwrap();
    assert!(a.payload.as_ref().is_some_and(|p| p == &json!({})));
    assert!(a.violation.is_none());
    assert!(a.latency < Duration::from_secs(3));

    // Immediate response in the ack.
    let d = slack
        .send_slash_command(SlashCommand::new(
            "/incident",
            "help",
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap();
    next_json(&mut ws).await;
    ack(&mut ws, json!({"envelope_id": d.envelope_id, "payload": {"text": "usage: …", "response_type": "ephemeral"}})).await;
    slack.wait_ack(&d.envelope_id, T).await.unwrap();
    assert_eq!(slack.command_responses().len(), 1);
    slack.assert_no_violations();
}

#[tokio::test]
async fn tickets_are_single_use() {
    let slack = FakeSlack::start().await;
    let url = open_url(&slack).await;
    let (_ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert!(tokio_tungstenite::connect_async(&url).await.is_err());
    let bogus = url.replace("ticket=", "ticket=00");
    assert!(tokio_tungstenite::connect_async(&bogus).await.is_err());
    assert_eq!(slack.socket_violations().len(), 2);
}

#[tokio::test]
async fn bad_ack_payloads_are_violations() {
    let slack = FakeSlack::start().await;
    let mut ws = hello(&slack).await;
    slack.wait_for_connections(1, T).await.unwrap();
    // response_action on a slash command.
    let d = slack
        .send_slash_command(SlashCommand::new(
            "/incident",
            "",
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap();
    next_json(&mut ws).await;
    ack(
        &mut ws,
        json!({"envelope_id": d.envelope_id, "payload": {"response_action": "clear"}}),
    )
    .await;
    let a = slack.wait_ack(&d.envelope_id, T).await.unwrap();
    assert!(a.violation.unwrap().contains("response_action"));
    // response_type typo.
    let d = slack
        .send_slash_command(SlashCommand::new(
            "/incident",
            "",
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap();
    next_json(&mut ws).await;
    ack(
        &mut ws,
        json!({"envelope_id": d.envelope_id, "payload": {"text": "x", "response_type": "channel"}}),
    )
    .await;
    assert!(slack
        .wait_ack(&d.envelope_id, T)
        .await
        .unwrap()
        .violation
        .is_some());
    // events must be bare.
    let d = slack
        .send_event(json!({"type": "app_mention", "text": "hi"}))
        .await
        .unwrap();
    let env = next_json(&mut ws).await;
    assert_eq!(env["retry_attempt"], 0);
    assert_eq!(env["retry_reason"], "");
    ack(
        &mut ws,
        json!({"envelope_id": d.envelope_id, "payload": {"text": "hello"}}),
    )
    .await;
    assert!(slack
        .wait_ack(&d.envelope_id, T)
        .await
        .unwrap()
        .violation
        .is_some());
    // Unknown envelope ids are recorded but not violations; junk frames are.
    ack(&mut ws, json!({"envelope_id": "nope"})).await;
    ws.send(Ws::Text("not json".into())).await.unwrap();
    slack
        .wait_for(T, "junk recorded", |s| {
            (s.socket_violations().len() == 4).then_some(())
        })
        .await
        .unwrap();
    assert_eq!(slack.unknown_acks().len(), 1);
    assert_eq!(slack.violations().len(), 4);
}

#[tokio::test]
async fn modal_flow_with_errors_update_and_close() {
    let slack = FakeSlack::start().await;
    let mut ws = hello(&slack).await;
    slack.wait_for_connections(1, T).await.unwrap();
    let d = slack
        .send_slash_command(SlashCommand::new(
            "/incident",
            "",
            DEFAULT_USER,
            GENERAL_CHANNEL,
        ))
        .await
        .unwrap();
    next_json(&mut ws).await;
    ack(&mut ws, json!({"envelope_id": d.envelope_id})).await;
    let r: Value = reqwest::Client::new()
        .post(format!("{}/views.open", slack.api_url()))
        .bearer_auth(slack.bot_token())
        .json(&json!({"trigger_id": d.trigger_id, "view": declare_modal()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ok"], true, "{r}");
    let view = slack.wait_view_opened(T).await.unwrap();
    assert_eq!(view.callback_id, "declare_incident");
    assert_eq!(view.private_metadata, "{\"channel\":\"C0GENERAL\"}");

    // The UI refuses to submit with a required input empty or a bogus option.
    assert!(matches!(
        slack
            .submit_view_with(&view.id, DEFAULT_USER, &[("title", "DB down")])
            .await,
        Err(FakeError::Invalid(_))
    ));
    assert!(slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[("title", "DB down"), ("severity", "sev9")]
        )
        .await
        .is_err());

    let sub = slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[("title", "DB down"), ("severity", "sev1")],
        )
        .await
        .unwrap();
    let env = next_json(&mut ws).await;
    let values = &env["payload"]["view"]["state"]["values"];
    assert_eq!(values["title_block"]["title"]["value"], "DB down");
    assert_eq!(
        values["severity_block"]["severity"]["selected_option"]["value"],
        "sev1"
    );
    assert_eq!(
        values["commander_block"]["commander"]["selected_user"],
        Value::Null
    );
    assert_eq!(env["payload"]["view"]["callback_id"], "declare_incident");
    // errors keyed by a non-input block → violation, view stays open.
    ack(&mut ws, json!({"envelope_id": sub.envelope_id, "payload": {"response_action": "errors", "errors": {"intro": "bad"}}})).await;
    assert!(slack
        .wait_ack(&sub.envelope_id, T)
        .await
        .unwrap()
        .violation
        .unwrap()
        .contains("intro"));
    assert!(slack.view(&view.id).unwrap().is_open);

    // Valid errors.
    let sub = slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[("title", "x"), ("severity", "sev2")],
        )
        .await
        .unwrap();
    next_json(&mut ws).await;
    ack(&mut ws, json!({"envelope_id": sub.envelope_id, "payload": {"response_action": "errors", "errors": {"title_block": "Too short"}}})).await;
    let a = slack.wait_ack(&sub.envelope_id, T).await.unwrap();
    assert!(a.violation.is_none(), "{:?}", a.violation);
    assert_eq!(
        slack.view(&view.id).unwrap().errors.unwrap()["title_block"],
        "Too short"
    );

    // Update with an invalid view (title too long) → violation.
    let sub = slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[("title", "DB down"), ("severity", "sev1")],
        )
        .await
        .unwrap();
    next_json(&mut ws).await;
    let mut bad = declare_modal();
    bad["title"]["text"] = json!("This title is definitely too long");
    ack(&mut ws, json!({"envelope_id": sub.envelope_id, "payload": {"response_action": "update", "view": bad}})).await;
    assert!(slack
        .wait_ack(&sub.envelope_id, T)
        .await
        .unwrap()
        .violation
        .is_some());

    // Bare ack closes the view.
    let sub = slack
        .submit_view_with(
            &view.id,
            DEFAULT_USER,
            &[("title", "DB down"), ("severity", "sev1")],
        )
        .await
        .unwrap();
    next_json(&mut ws).await;
    ack(&mut ws, json!({"envelope_id": sub.envelope_id})).await;
    slack.wait_ack(&sub.envelope_id, T).await.unwrap();
    assert!(!slack.view(&view.id).unwrap().is_open);
    assert!(slack.open_views().is_empty());
    assert!(matches!(
        slack
            .submit_view_with(
                &view.id,
                DEFAULT_USER,
                &[("title", "again"), ("severity", "sev1")]
            )
            .await,
        Err(FakeError::Invalid(_))
    ));
}

#[tokio::test]
async fn click_button_builds_block_actions_from_the_message() {
    let slack = FakeSlack::start().await;
    let mut ws = hello(&slack).await;
    slack.wait_for_connections(1, T).await.unwrap();
    let ch = slack.add_channel("inc-x", &[DEFAULT_USER, BOT_USER_ID]);
    let r: Value = reqwest::Client::new()
        .post(format!("{}/chat.postMessage", slack.api_url()))
        .bearer_auth(slack.bot_token())
        .json(&json!({"channel": ch, "text": "Incident", "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Incident*"}},
            {"type": "actions", "elements": [
                {"type": "button", "action_id": "resolve", "value": "inc-1", "style": "primary",
                 "text": {"type": "plain_text", "text": "Resolve"}}]}
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ts = r["ts"].as_str().unwrap();
    assert!(matches!(
        slack.click_button(&ch, ts, "nope", DEFAULT_USER).await,
        Err(FakeError::NotFound(_))
    ));
    let d = slack
        .click_button(&ch, ts, "resolve", DEFAULT_USER)
        .await
        .unwrap();
    let env = next_json(&mut ws).await;
    let p = &env["payload"];
    assert_eq!(env["type"], "interactive");
    assert_eq!(p["type"], "block_actions");
    assert_eq!(p["container"]["message_ts"], ts);
    assert_eq!(p["channel"]["id"], json!(ch));
    assert_eq!(p["actions"][0]["action_id"], "resolve");
    assert_eq!(p["actions"][0]["value"], "inc-1");
    assert_eq!(p["actions"][0]["type"], "button");
    assert!(
        p["actions"][0]["block_id"]
            .as_str()
            .is_some_and(|b| !b.is_empty()),
        "Slack assigns block ids"
    );
    assert_eq!(p["trigger_id"], json!(d.trigger_id));
    ack(
        &mut ws,
        json!({"envelope_id": d.envelope_id, "payload": {"response_action": "update"}}),
    )
    .await;
    assert!(slack
        .wait_ack(&d.envelope_id, T)
        .await
        .unwrap()
        .violation
        .is_some());
}

#[tokio::test]
async fn unacked_events_time_out_and_are_redelivered() {
    let slack = FakeSlack::start_with(FakeSlackConfig {
        ack_deadline: Duration::from_millis(300),
        max_event_retries: 1,
        ..Default::default()
    })
    .await;
    let mut ws = hello(&slack).await;
    slack.wait_for_connections(1, T).await.unwrap();
    let d = slack
        .send_event(json!({"type": "app_mention", "text": "hi"}))
        .await
        .unwrap();
    let first = next_json(&mut ws).await;
    let second = next_json(&mut ws).await;
    assert_eq!(second["retry_attempt"], 1);
    assert_eq!(second["retry_reason"], "timeout");
    assert_ne!(second["envelope_id"], first["envelope_id"]);
    assert_eq!(second["payload"]["event_id"], first["payload"]["event_id"]);
    ack(&mut ws, json!({"envelope_id": second["envelope_id"]})).await;
    slack
        .wait_ack(second["envelope_id"].as_str().unwrap(), T)
        .await
        .unwrap();
    let timeouts = slack.ack_timeouts();
    assert_eq!(timeouts.len(), 1);
    assert_eq!(timeouts[0].envelope_id, d.envelope_id);
    assert!(timeouts[0].redelivered);
    // A late ack of the first one is recorded as late.
    ack(&mut ws, json!({"envelope_id": d.envelope_id})).await;
    assert!(slack.wait_ack(&d.envelope_id, T).await.unwrap().late);
}

#[tokio::test]
async fn duplicated_delivery_reaches_two_connections() {
    let slack = FakeSlack::start().await;
    let mut a = hello(&slack).await;
    let mut b = hello(&slack).await;
    slack.wait_for_connections(2, T).await.unwrap();
    let d = slack
        .send_envelope_duplicated(
            EnvelopeType::EventsApi,
            json!({"type": "event_callback", "event_id": "Ev1"}),
            false,
        )
        .await
        .unwrap();
    assert_eq!(d.connections.len(), 2);
    assert_eq!(next_json(&mut a).await["envelope_id"], json!(d.envelope_id));
    assert_eq!(next_json(&mut b).await["envelope_id"], json!(d.envelope_id));
    // Round robin alternates.
    let x = slack
        .send_event(json!({"type": "app_mention"}))
        .await
        .unwrap();
    let y = slack
        .send_event(json!({"type": "app_mention"}))
        .await
        .unwrap();
    assert_ne!(x.connections, y.connections);
}

#[tokio::test]
async fn disconnect_sends_frame_then_closes() {
    let slack = FakeSlack::start_with(FakeSlackConfig {
        disconnect_close_delay: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let mut ws = hello(&slack).await;
    let conns = slack.wait_for_connections(1, T).await.unwrap();
    slack.disconnect(conns[0].idx, "refresh_requested");
    let f = next_json(&mut ws).await;
    assert_eq!(f["type"], "disconnect");
    assert_eq!(f["reason"], "refresh_requested");
    // Then a close frame.
    let mut saw_close = false;
    while let Ok(Some(m)) = tokio::time::timeout(T, ws.next()).await {
        if matches!(m, Ok(Ws::Close(_))) {
            saw_close = true;
        }
        if m.is_err() {
            break;
        }
    }
    assert!(saw_close);
    slack
        .wait_for(T, "closed", |s| {
            s.live_connections().is_empty().then_some(())
        })
        .await
        .unwrap();
    assert!(matches!(
        slack.send_event(json!({"type": "app_mention"})).await,
        Err(FakeError::NoConnection)
    ));
}

#[tokio::test]
async fn drop_all_closes_without_close_frame() {
    let slack = FakeSlack::start().await;
    let mut ws = hello(&slack).await;
    slack.wait_for_connections(1, T).await.unwrap();
    slack.drop_all();
    let m = tokio::time::timeout(T, ws.next()).await.unwrap();
    assert!(
        !matches!(m, Some(Ok(Ws::Close(_)))),
        "no close frame: {m:?}"
    );
}

#[tokio::test]
async fn eleventh_connection_gets_too_many_websockets() {
    let slack = FakeSlack::start().await;
    let mut socks = Vec::new();
    for _ in 0..10 {
        socks.push(hello(&slack).await);
    }
    slack.wait_for_connections(10, T).await.unwrap();
    let mut extra = connect(&slack).await;
    let f = next_json(&mut extra).await;
    assert_eq!(f["type"], "disconnect");
    assert_eq!(f["reason"], "too_many_websockets");
    assert_eq!(slack.live_connections().len(), 10);
}

#[tokio::test]
async fn pings_are_answered_and_sent_until_silent() {
    let slack = FakeSlack::start_with(FakeSlackConfig {
        ping_interval: Some(Duration::from_millis(100)),
        ..Default::default()
    })
    .await;
    let mut ws = hello(&slack).await;
    let conns = slack.wait_for_connections(1, T).await.unwrap();
    ws.send(Ws::Ping(b"hi".to_vec().into())).await.unwrap();
    let mut got_pong = false;
    let mut got_ping = false;
    while !(got_pong && got_ping) {
        match tokio::time::timeout(T, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Ws::Pong(p) if p.as_ref() == b"hi" => got_pong = true,
            Ws::Ping(_) => got_ping = true,
            _ => {}
        }
    }
    // tungstenite queues the pong for the server's ping; flushing writes it.
    ws.flush().await.unwrap();
    slack
        .wait_for(T, "a pong", |s| {
            (s.connections()[conns[0].idx].pongs_received > 0).then_some(())
        })
        .await
        .unwrap();
    slack.go_silent();
    // Drain whatever was in flight, then nothing more arrives — not even a pong.
    tokio::time::sleep(Duration::from_millis(150)).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), ws.next()).await {}
    ws.send(Ws::Ping(b"again".to_vec().into())).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(500), ws.next())
        .await
        .is_err());
    assert!(
        slack
            .send_event(json!({"type": "app_mention"}))
            .await
            .is_ok(),
        "silent connections still take (and lose) envelopes"
    );
}
