//! The PagerDuty fake refuses what PagerDuty refuses, driven with raw HTTP.

use std::time::{Duration, Instant};

use incd_fakes::pagerduty::{AlertStatus, FakePagerDuty, Fault, ROUTING_KEY};
use serde_json::{json, Value};

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn enqueue(pd: &FakePagerDuty, body: &Value) -> (u16, Value) {
    let r = http()
        .post(format!("{}/v2/enqueue", pd.url()))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn trigger(key: &str) -> Value {
    json!({
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {"summary": "[SEV1] Database down", "source": "incd", "severity": "critical"},
    })
}

#[tokio::test]
async fn a_repeated_trigger_is_deduplicated_and_resolve_closes_the_alert() {
    let pd = FakePagerDuty::start().await;
    let (status, body) = enqueue(&pd, &trigger("inc-1")).await;
    assert_eq!(status, 202);
    assert_eq!(
        body,
        json!({"status": "success", "message": "Event processed", "dedup_key": "inc-1"})
    );
    assert_eq!(enqueue(&pd, &trigger("inc-1")).await.0, 202);
    let alert = &pd.alerts()["inc-1"];
    assert_eq!(
        (alert.status, alert.trigger_count, alert.opened),
        (AlertStatus::Triggered, 2, 1)
    );

    let resolve =
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "inc-1"});
    assert_eq!(enqueue(&pd, &resolve).await.0, 202);
    assert_eq!(pd.alerts()["inc-1"].status, AlertStatus::Resolved);

    // A trigger after the resolve opens a new alert: it pages again.
    enqueue(&pd, &trigger("inc-1")).await;
    assert_eq!(pd.alerts()["inc-1"].opened, 2);
    assert_eq!(pd.events().len(), 4);
    assert!(pd.rejected().is_empty());
}

#[tokio::test]
async fn a_trigger_without_dedup_key_gets_one() {
    let pd = FakePagerDuty::start().await;
    let mut e = trigger("x");
    e.as_object_mut().unwrap().remove("dedup_key");
    let (status, body) = enqueue(&pd, &e).await;
    assert_eq!(status, 202);
    let key = body["dedup_key"].as_str().unwrap();
    assert_eq!(key.len(), 32);
    assert!(pd.alerts().contains_key(key));
}

#[tokio::test]
async fn invalid_events_are_refused_with_the_reason() {
    let pd = FakePagerDuty::start().await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"event_action": "trigger", "routing_key": "short", "payload": trigger("k")["payload"]}),
            "Length of 'routing_key' is incorrect",
        ),
        (
            json!({"event_action": "trigger", "payload": trigger("k")["payload"]}),
            "'routing_key' is missing",
        ),
        (
            json!({"routing_key": ROUTING_KEY, "dedup_key": "k"}),
            "'event_action' is missing",
        ),
        (
            json!({"routing_key": ROUTING_KEY, "event_action": "page", "dedup_key": "k"}),
            "'event_action' is invalid",
        ),
        (
            json!({"routing_key": ROUTING_KEY, "event_action": "trigger"}),
            "'payload' is missing",
        ),
        (
            json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"source": "s", "severity": "info"}}),
            "'payload.summary' is missing",
        ),
        (
            json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "s", "severity": "info"}}),
            "'payload.source' is missing",
        ),
        (
            json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "s", "source": "s"}}),
            "'payload.severity' is missing",
        ),
        (
            json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "s", "source": "s", "severity": "fatal"}}),
            "'payload.severity' is invalid",
        ),
        (
            json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "s".repeat(1025), "source": "s", "severity": "info"}}),
            "'payload.summary' is too long",
        ),
        (
            json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": "k".repeat(256), "payload": trigger("k")["payload"]}),
            "'dedup_key' is too long",
        ),
        (
            json!({"routing_key": ROUTING_KEY, "event_action": "resolve"}),
            "'dedup_key' is missing",
        ),
        (
            json!({"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": ""}),
            "'dedup_key' is missing",
        ),
        (
            json!({"routing_key": ROUTING_KEY, "event_action": "trigger", "payload": trigger("k")["payload"], "links": [{"text": "x"}]}),
            "'links[0].href'",
        ),
    ];
    for (event, expected) in &cases {
        let (status, body) = enqueue(&pd, event).await;
        assert_eq!(status, 400, "{event}");
        assert_eq!(body["status"], "invalid event");
        assert_eq!(body["message"], "Event object is invalid");
        let errors = body["errors"].to_string();
        assert!(errors.contains(expected), "{expected} not in {errors}");
    }
    // A summary of exactly 1024 characters and a key of 255 are fine.
    let mut edge = trigger(&"k".repeat(255));
    edge["payload"]["summary"] = json!("é".repeat(1024));
    assert_eq!(enqueue(&pd, &edge).await.0, 202);
    assert_eq!(pd.rejected().len(), cases.len());
    assert!(pd.events().len() == 1);
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused() {
    let pd = FakePagerDuty::start().await;
    let url = format!("{}/v2/enqueue", pd.url());
    let r = http().post(&url).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "invalid event");

    let mut big = trigger("k");
    big["payload"]["custom_details"] = json!({"blob": "x".repeat(600_000)});
    let (status, body) = enqueue(&pd, &big).await;
    assert_eq!(status, 400);
    assert!(body["errors"][0].as_str().unwrap().contains("too large"));
    assert!(pd.events().is_empty());
}

fn rest(pd: &FakePagerDuty, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    rest_from(pd, method, path, pd.from_email())
}

fn rest_from(
    pd: &FakePagerDuty,
    method: reqwest::Method,
    path: &str,
    from: &str,
) -> reqwest::RequestBuilder {
    http()
        .request(method, format!("{}{path}", pd.url()))
        .header("Authorization", format!("Token token={}", pd.api_token()))
        .header("Accept", "application/vnd.pagerduty+json;version=2")
        .header("From", from)
}

fn incident(pd: &FakePagerDuty, key: &str) -> Value {
    json!({"incident": {
        "type": "incident", "title": "[SEV1] Database down",
        "service": {"id": pd.service_id(), "type": "service_reference"},
        "urgency": "high", "incident_key": key,
        "body": {"type": "incident_body", "details": "Payments fail"},
        "escalation_policy": {"id": pd.escalation_policy_id(), "type": "escalation_policy_reference"},
    }})
}

#[tokio::test]
async fn rest_incidents_are_created_deduplicated_found_and_resolved() {
    let pd = FakePagerDuty::start().await;
    let r = rest(&pd, reqwest::Method::POST, "/incidents")
        .json(&incident(&pd, "inc-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["incident"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["incident"]["status"], "triggered");
    assert!(created["incident"]["html_url"]
        .as_str()
        .unwrap()
        .ends_with(&id));

    let dup = rest(&pd, reqwest::Method::POST, "/incidents")
        .json(&incident(&pd, "inc-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 400);
    let body: Value = dup.json().await.unwrap();
    assert_eq!(body["error"]["code"], 2001);
    assert_eq!(
        body["error"]["errors"][0],
        "Open incident with matching dedup key already exists on this service"
    );

    let found: Value = rest(&pd, reqwest::Method::GET, "/incidents")
        .query(&[
            ("incident_key", "inc-1"),
            ("service_ids[]", pd.service_id()),
            ("statuses[]", "triggered"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(found["incidents"][0]["id"], json!(id));

    let resolve = json!({"incident": {"type": "incident_reference", "status": "resolved"}});
    let r = rest(&pd, reqwest::Method::PUT, &format!("/incidents/{id}"))
        .json(&resolve)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(pd.incidents()[0].status, "resolved");
    assert_eq!(
        pd.incidents()[0].resolved_by.as_deref(),
        Some(pd.from_email())
    );
    let again = rest(&pd, reqwest::Method::PUT, &format!("/incidents/{id}"))
        .json(&resolve)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    assert!(again
        .text()
        .await
        .unwrap()
        .contains("Incident Already Resolved"));

    // With the first one resolved, the key may be used again.
    let r = rest(&pd, reqwest::Method::POST, "/incidents")
        .json(&incident(&pd, "inc-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(pd.incidents().len(), 2);
}

#[tokio::test]
async fn rest_calls_without_the_required_headers_are_refused() {
    let pd = FakePagerDuty::start().await;
    let url = format!("{}/incidents", pd.url());
    let body = incident(&pd, "k");

    let r = http().post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].is_string() && v["error"]["code"].is_number());

    let wrong_token = http()
        .post(&url)
        .header("Authorization", "Token token=nope")
        .header("Accept", "application/vnd.pagerduty+json;version=2")
        .header("From", pd.from_email())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_token.status(), 401);

    let no_accept = http()
        .post(&url)
        .header("Authorization", format!("Token token={}", pd.api_token()))
        .header("From", pd.from_email())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_accept.status(), 400);

    let no_from = http()
        .post(&url)
        .header("Authorization", format!("Token token={}", pd.api_token()))
        .header("Accept", "application/vnd.pagerduty+json;version=2")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_from.status(), 400);
    assert_eq!(
        no_from.json::<Value>().await.unwrap()["error"]["code"],
        2011
    );

    let stranger = rest_from(
        &pd,
        reqwest::Method::POST,
        "/incidents",
        "stranger@example.com",
    )
    .json(&body)
    .send()
    .await
    .unwrap();
    assert_eq!(stranger.status(), 400);

    let not_json = rest(&pd, reqwest::Method::POST, "/incidents")
        .header("Content-Type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert!(pd.incidents().is_empty());
    assert_eq!(pd.rejected().len(), 6);
}

#[tokio::test]
async fn rest_incident_bodies_are_validated() {
    let pd = FakePagerDuty::start().await;
    let mut cases = Vec::new();
    let base = incident(&pd, "k");
    let mut v = base.clone();
    v["incident"]["urgency"] = json!("urgent");
    cases.push((v, "Urgency"));
    let mut v = base.clone();
    v["incident"]["service"] = json!({"id": pd.service_id()});
    cases.push((v, "service_reference"));
    let mut v = base.clone();
    v["incident"].as_object_mut().unwrap().remove("title");
    cases.push((v, "title"));
    let mut v = base.clone();
    v["incident"]["type"] = json!("incident_reference");
    cases.push((v, "type"));
    let mut v = base.clone();
    v["incident"]["escalation_policy"] = json!({"id": "PX"});
    cases.push((v, "escalation_policy_reference"));
    let mut v = base.clone();
    v["incident"]["assignments"] = json!([{"assignee": {"id": "PU", "type": "user_reference"}}]);
    cases.push((v, "Assignments"));
    let mut v = base.clone();
    v["incident"]["body"] = json!({"details": "x"});
    cases.push((v, "incident_body"));
    cases.push((json!({"title": "no wrapper"}), "Incident is required"));
    for (body, expected) in cases {
        let r = rest(&pd, reqwest::Method::POST, "/incidents")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let text = r.text().await.unwrap();
        assert!(text.contains(expected), "{expected} not in {text}");
    }
    let mut v = base.clone();
    v["incident"]["service"]["id"] = json!("PNOPE");
    let r = rest(&pd, reqwest::Method::POST, "/incidents")
        .json(&v)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(pd.incidents().is_empty());
}

#[tokio::test]
async fn services_can_be_looked_up() {
    let pd = FakePagerDuty::start().await;
    let ok = rest(
        &pd,
        reqwest::Method::GET,
        &format!("/services/{}", pd.service_id()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.json::<Value>().await.unwrap()["service"]["id"],
        pd.service_id()
    );
    let missing = rest(&pd, reqwest::Method::GET, "/services/PNOPE")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        2100
    );
}

#[tokio::test]
async fn scripted_faults_are_served_in_order() {
    let pd = FakePagerDuty::start().await;
    pd.push_fault(Fault::Status(500));
    pd.push_fault(Fault::RateLimited {
        retry_after_secs: 30,
    });
    let (s1, _) = enqueue(&pd, &trigger("k")).await;
    assert_eq!(s1, 500);
    let r = http()
        .post(format!("{}/v2/enqueue", pd.url()))
        .json(&trigger("k"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "throttle event");
    // Coming back at once is an early retry, still served.
    assert_eq!(enqueue(&pd, &trigger("k")).await.0, 202);
    let early = pd.early_retries();
    assert_eq!(early.len(), 1);
    assert!(early[0].early_by() > Duration::from_secs(25));
    assert_eq!(pd.pending_faults(), 0);
    let statuses: Vec<u16> = pd.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [500, 429, 202]);
}

#[tokio::test]
async fn hang_delay_latency_and_down() {
    let pd = FakePagerDuty::start().await;
    pd.push_fault(Fault::Hang);
    let r = http()
        .post(format!("{}/v2/enqueue", pd.url()))
        .timeout(Duration::from_millis(200))
        .json(&trigger("k"))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());

    pd.push_fault(Fault::Delay(Duration::from_millis(150)));
    let t = Instant::now();
    assert_eq!(enqueue(&pd, &trigger("k")).await.0, 202);
    assert!(t.elapsed() >= Duration::from_millis(150));

    pd.set_latency(Duration::from_millis(100));
    let t = Instant::now();
    enqueue(&pd, &trigger("k")).await;
    assert!(t.elapsed() >= Duration::from_millis(100));
    pd.set_latency(Duration::ZERO);

    pd.set_down(true);
    assert_eq!(enqueue(&pd, &trigger("k")).await.0, 503);
    let r = rest(&pd, reqwest::Method::GET, "/services/PFAKESV")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());
    pd.set_down(false);
    assert_eq!(enqueue(&pd, &trigger("k")).await.0, 202);
}

// ---- chaos faults --------------------------------------------------------------------------

#[tokio::test]
async fn a_reset_loses_the_event_and_a_lost_response_still_pages() {
    let pd = FakePagerDuty::start().await;
    pd.push_fault(Fault::Reset);
    pd.push_fault(Fault::ApplyThenReset);
    pd.push_fault(Fault::ApplyThenStatus(500));
    let send = |key: &'static str| {
        let pd = pd.clone();
        async move {
            let r = http()
                .post(format!("{}/v2/enqueue", pd.url()))
                .json(&trigger(key))
                .send()
                .await
                .ok()?;
            let status = r.status().as_u16();
            r.bytes().await.ok()?;
            Some(status)
        }
    };
    assert_eq!(send("k-reset").await, None);
    assert!(!pd.alerts().contains_key("k-reset"), "a reset pages nobody");
    assert_eq!(send("k-lost").await, None);
    assert_eq!(pd.alerts()["k-lost"].opened, 1, "performed, answer lost");
    assert_eq!(send("k-500").await, Some(500));
    assert_eq!(pd.alerts()["k-500"].opened, 1, "performed, then a 500");
    assert_eq!(pd.pending_faults(), 0);
}

#[tokio::test]
async fn a_chaos_schedule_faults_pagerduty_and_its_429s_count_early_retries() {
    use incd_fakes::chaos::{Chaos, ChaosConfig, FaultClass};
    let pd = FakePagerDuty::start().await;
    let mut cfg = ChaosConfig::all(5, 1.0);
    cfg.classes = vec![FaultClass::RateLimited];
    cfg.retry_after_secs = 5;
    let chaos = Chaos::new(cfg);
    pd.set_chaos(Some(chaos.clone()));
    let (status, _) = enqueue(&pd, &trigger("c-1")).await;
    assert_eq!(status, 429);
    let (status, _) = enqueue(&pd, &trigger("c-1")).await;
    assert_eq!(status, 429);
    assert_eq!(
        pd.early_retries().len(),
        1,
        "second call inside Retry-After"
    );
    assert_eq!(chaos.injected().len(), 2);
    chaos.set_enabled(false);
    pd.clear_faults();
    let (status, _) = enqueue(&pd, &trigger("c-1")).await;
    assert_eq!(status, 202);
}
