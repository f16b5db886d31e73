//! The Notion fake refuses what Notion refuses, driven with raw HTTP.

use std::time::Duration;

use incd_fakes::notion::{FakeNotion, FakeParent, Fault, Schema};
use serde_json::{json, Value};

struct Api {
    fake: FakeNotion,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        Api {
            fake: FakeNotion::start().await,
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.fake.url()))
            .bearer_auth(self.fake.token())
            .header("Notion-Version", "2022-06-28");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, "pages", Some(body)).await
    }
}

fn text(s: &str) -> Value {
    json!([{ "type": "text", "text": { "content": s } }])
}

fn paragraph(s: &str) -> Value {
    json!({ "object": "block", "type": "paragraph", "paragraph": { "rich_text": text(s) } })
}

fn page_in(db: &str, title: &str) -> Value {
    json!({
        "parent": { "database_id": db },
        "properties": { "Name": { "title": text(title) } },
    })
}

fn assert_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["object"], "error");
    assert_eq!(body["status"], want_status);
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string() && body["request_id"].is_string());
}

#[tokio::test]
async fn requests_need_the_bearer_token_and_a_version() {
    let api = Api::start().await;
    let db = api.fake.add_database("Name", Schema::incident_default());
    let url = format!("{}/v1/databases/{db}", api.fake.url());

    let r = api
        .http
        .get(&url)
        .header("Notion-Version", "2022-06-28")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_error(status, &r.json().await.unwrap(), 401, "unauthorized");

    let r = api
        .http
        .get(&url)
        .bearer_auth("ntn_wrong")
        .header("Notion-Version", "2022-06-28")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = api
        .http
        .get(&url)
        .bearer_auth(api.fake.token())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_error(status, &r.json().await.unwrap(), 400, "missing_version");

    let (status, v) = api
        .call(reqwest::Method::GET, &format!("databases/{db}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["properties"]["Name"]["type"], "title");
    assert_eq!(
        v["properties"]["Status"]["status"]["options"][2]["name"],
        "Resolved"
    );
    assert_eq!(api.fake.rejected().len(), 3);
}

#[tokio::test]
async fn unknown_or_unshared_objects_are_not_found() {
    let api = Api::start().await;
    let db = api.fake.add_database("Name", Schema::new());
    let (s, v) = api
        .call(
            reqwest::Method::GET,
            "databases/00000000000040008000000000000000",
            None,
        )
        .await;
    assert_error(s, &v, 404, "object_not_found");
    let (s, v) = api
        .call(reqwest::Method::GET, "databases/not-a-uuid", None)
        .await;
    assert_error(s, &v, 400, "validation_error");

    api.fake.set_shared(&db, false);
    let (s, v) = api
        .call(reqwest::Method::GET, &format!("databases/{db}"), None)
        .await;
    assert_error(s, &v, 404, "object_not_found");
    let (s, v) = api.create(page_in(&db, "x")).await;
    assert_error(s, &v, 404, "object_not_found");
    api.fake.set_shared(&db, true);

    // Dashes are optional in ids.
    let (s, _) = api
        .call(
            reqwest::Method::GET,
            &format!("databases/{}", db.replace('-', "")),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = api
        .create(
            json!({"parent": {"page_id": "00000000000040008000000000000000"}, "properties": {}}),
        )
        .await;
    assert_error(s, &v, 404, "object_not_found");
}

#[tokio::test]
async fn pages_are_created_queried_and_updated_in_a_database() {
    let api = Api::start().await;
    let db = api.fake.add_database("Name", Schema::incident_default());
    let mut body = page_in(&db, "20250314-brave-otter");
    body["properties"]["Severity"] = json!({ "select": { "name": "SEV1" } });
    body["properties"]["Status"] = json!({ "status": { "name": "Investigating" } });
    body["properties"]["Declared"] = json!({ "date": { "start": "2025-03-14T09:26:53Z" } });
    body["properties"]["Slack channel"] =
        json!({ "url": "https://slack.com/app_redirect?channel=C1" });
    body["children"] = json!([paragraph("hello")]);
    body["icon"] = json!({ "type": "emoji", "emoji": "📝" });
    let (s, page) = api.create(body).await;
    assert_eq!(s, 200, "{page}");
    let id = page["id"].as_str().unwrap().to_string();
    assert_eq!(page["object"], "page");
    assert!(page["url"]
        .as_str()
        .unwrap()
        .starts_with("https://www.notion.so/"));
    assert_eq!(
        page["properties"]["Name"]["title"][0]["plain_text"],
        "20250314-brave-otter"
    );

    let filter =
        json!({ "filter": { "property": "Name", "title": { "equals": "20250314-brave-otter" } } });
    let (s, q) = api
        .call(
            reqwest::Method::POST,
            &format!("databases/{db}/query"),
            Some(filter),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(q["results"].as_array().unwrap().len(), 1);
    assert_eq!(q["results"][0]["id"], json!(id));
    let other =
        json!({ "filter": { "property": "Name", "title": { "equals": "20250314-brave" } } });
    let (_, q) = api
        .call(
            reqwest::Method::POST,
            &format!("databases/{db}/query"),
            Some(other),
        )
        .await;
    assert!(q["results"].as_array().unwrap().is_empty());

    let patch = json!({ "properties": {
        "Status": { "status": { "name": "Resolved" } },
        "Resolved": { "date": { "start": "2025-03-14T10:31:53Z" } },
    }});
    let (s, _) = api
        .call(reqwest::Method::PATCH, &format!("pages/{id}"), Some(patch))
        .await;
    assert_eq!(s, 200);
    let stored = api.fake.page(&id).unwrap();
    assert_eq!(stored.option("Status").as_deref(), Some("Resolved"));
    assert_eq!(stored.option("Severity").as_deref(), Some("SEV1"));
    assert_eq!(stored.date("Resolved").unwrap().0, "2025-03-14T10:31:53Z");
    assert_eq!(
        stored.url_property("Slack channel").as_deref(),
        Some("https://slack.com/app_redirect?channel=C1")
    );
    assert_eq!(stored.title, "20250314-brave-otter");
    assert_eq!(stored.text(), "hello");
    assert_eq!(stored.parent, FakeParent::Database(db.clone()));
    assert_eq!(api.fake.pages().len(), 1);
    assert!(api.fake.rejected().is_empty());

    // An unknown select option is created, as Notion does.
    let mut body = page_in(&db, "second");
    body["properties"]["Severity"] = json!({ "select": { "name": "SEV0" } });
    assert_eq!(api.create(body).await.0, 200);
    let schema = api.fake.database(&db).unwrap();
    assert_eq!(
        schema["properties"]["Severity"]["select"]["options"][4]["name"],
        "SEV0"
    );
}

#[tokio::test]
async fn invalid_pages_are_refused_with_validation_errors() {
    let api = Api::start().await;
    let schema = Schema::incident_default()
        .formula("Score")
        .created_time("Created")
        .people("Owner");
    let db = api.fake.add_database("Name", schema);
    let parent = api.fake.add_page("Incidents");
    let with = |key: &str, value: Value| {
        let mut b = page_in(&db, "x");
        b["properties"][key] = value;
        b
    };
    let with_children = |children: Value| {
        let mut b = page_in(&db, "x");
        b["children"] = children;
        b
    };
    let many_items: Vec<Value> = (0..101)
        .map(|_| json!({ "type": "text", "text": { "content": "a" } }))
        .collect();
    let leaf = paragraph("deep");
    let nested3 = json!([{ "type": "toggle", "toggle": { "rich_text": text("1"), "children": [
        { "type": "toggle", "toggle": { "rich_text": text("2"), "children": [leaf] } }
    ] } }]);
    let cases: Vec<(Value, &str)> = vec![
        (
            with("Name", json!({ "title": text(&"a".repeat(2001)) })),
            "text.content.length should be ≤ `2000`",
        ),
        (
            with("Name", json!({ "title": text(&"😀".repeat(1001)) })),
            "instead was `2002`",
        ),
        (
            with("Name", json!({ "title": many_items })),
            "length should be ≤ `100`",
        ),
        (
            with("Nope", json!({ "rich_text": text("x") })),
            "Nope is not a property that exists",
        ),
        (
            with("Severity", json!({ "rich_text": text("x") })),
            "Severity is expected to be select",
        ),
        (
            with("Status", json!({ "status": { "name": "Done" } })),
            "Status option \"Done\" does not exist",
        ),
        (
            with("Severity", json!({ "select": { "name": "a,b" } })),
            "commas",
        ),
        (with("Score", json!({ "formula": {} })), "cannot be set"),
        (
            with("Created", json!({ "created_time": "2025-01-01" })),
            "cannot be set",
        ),
        (
            with("Declared", json!({ "date": { "start": "yesterday" } })),
            "ISO 8601",
        ),
        (
            with(
                "Slack channel",
                json!({ "url": format!("https://x/{}", "a".repeat(2000)) }),
            ),
            "≤ `2000`",
        ),
        (
            with(
                "Owner",
                json!({ "people": vec![json!({ "object": "user", "id": "u" }); 101] }),
            ),
            "≤ `100`",
        ),
        (
            with_children(Value::Array(vec![paragraph("x"); 101])),
            "body.children.length should be ≤ `100`",
        ),
        (with_children(nested3), "nested too deeply"),
        (
            with_children(
                json!([{ "type": "paragraph", "paragraph": { "text": text("old field") } }]),
            ),
            "rich_text should be defined",
        ),
        (
            with_children(json!([{ "type": "hologram", "hologram": {} }])),
            "type should be one of",
        ),
        (
            with_children(
                json!([{ "type": "paragraph", "paragraph": { "rich_text": [{ "type": "text", "text": { "content": "x", "link": { "url": "not a url" } } }] } }]),
            ),
            "Invalid URL",
        ),
        (
            with_children(
                json!([{ "type": "paragraph", "paragraph": { "rich_text": text("x"), "color": "sparkly" } }]),
            ),
            "valid color",
        ),
        (
            json!({ "parent": { "page_id": parent }, "properties": { "title": { "title": text("x") }, "Status": { "select": { "name": "Open" } } } }),
            "only valid property is title",
        ),
        (json!({ "properties": {} }), "body.parent should be defined"),
    ];
    for (body, expected) in &cases {
        let (s, v) = api.create(body.clone()).await;
        assert_error(s, &v, 400, "validation_error");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(expected), "{expected:?} not in {msg:?}");
    }
    assert_eq!(api.fake.rejected().len(), cases.len());
    assert!(api.fake.pages().is_empty());

    // Not JSON at all.
    let r = api
        .http
        .post(format!("{}/v1/pages", api.fake.url()))
        .bearer_auth(api.fake.token())
        .header("Notion-Version", "2022-06-28")
        .header("Content-Type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    assert_error(s, &r.json().await.unwrap(), 400, "invalid_json");

    // Over 500 KB, even when each piece is valid.
    let big: Vec<Value> = (0..100).map(|_| paragraph(&"b".repeat(2000))).collect();
    let mut body = page_in(&db, "x");
    body["children"] = json!(big);
    body["properties"]["Name"]["title"] = json!((0..100)
        .map(|_| json!({ "text": { "content": "t".repeat(2000) } }))
        .collect::<Vec<_>>());
    let mut extra = body.clone();
    extra["children"][0]["paragraph"]["rich_text"] = json!((0..100)
        .map(|_| json!({ "text": { "content": "c".repeat(2000) } }))
        .collect::<Vec<_>>());
    let (s, v) = api.create(extra).await;
    assert_error(s, &v, 400, "validation_error");
    assert!(v["message"].as_str().unwrap().contains("too large"));
}

#[tokio::test]
async fn more_than_1000_blocks_in_one_request_are_refused() {
    let api = Api::start().await;
    let parent = api.fake.add_page("Incidents");
    let toggle = |n: usize| json!({ "type": "toggle", "toggle": { "rich_text": [], "children": vec![json!({ "paragraph": { "rich_text": [] } }); n] } });
    let ok: Vec<Value> = (0..9).map(|_| toggle(99)).collect(); // 9 + 891 = 900 blocks
    let (s, _) = api
        .create(json!({ "parent": { "page_id": parent }, "properties": {}, "children": ok }))
        .await;
    assert_eq!(s, 200);
    let too_many: Vec<Value> = (0..11).map(|_| toggle(99)).collect(); // 1100 blocks
    let (s, v) = api
        .create(json!({ "parent": { "page_id": parent }, "properties": {}, "children": too_many }))
        .await;
    assert_error(s, &v, 400, "validation_error");
    assert!(v["message"].as_str().unwrap().contains("1000"));
}

#[tokio::test]
async fn pages_under_a_page_appear_as_child_pages_and_blocks_page_through() {
    let api = Api::start().await;
    let parent = api.fake.add_page("Incidents");
    let (s, page) = api
        .create(json!({ "parent": { "page_id": parent }, "properties": { "title": { "title": text("20250314-brave-otter") } } }))
        .await;
    assert_eq!(s, 200);
    let id = page["id"].as_str().unwrap().to_string();
    let (_, kids) = api
        .call(
            reqwest::Method::GET,
            &format!("blocks/{parent}/children"),
            None,
        )
        .await;
    assert_eq!(kids["results"][0]["type"], "child_page");
    assert_eq!(
        kids["results"][0]["child_page"]["title"],
        "20250314-brave-otter"
    );
    assert_eq!(kids["results"][0]["id"], json!(id));

    // Append 150 blocks in two requests, then read them back 100 at a time.
    for chunk in [100, 50] {
        let children: Vec<Value> = (0..chunk).map(|i| paragraph(&format!("p{i}"))).collect();
        let (s, v) = api
            .call(
                reqwest::Method::PATCH,
                &format!("blocks/{id}/children"),
                Some(json!({ "children": children })),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["results"].as_array().unwrap().len(), chunk);
    }
    let (_, first) = api
        .call(
            reqwest::Method::GET,
            &format!("blocks/{id}/children?page_size=100"),
            None,
        )
        .await;
    assert_eq!(first["results"].as_array().unwrap().len(), 100);
    assert_eq!(first["has_more"], true);
    assert_eq!(
        first["results"][0]["paragraph"]["rich_text"][0]["plain_text"],
        "p0"
    );
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = api
        .call(
            reqwest::Method::GET,
            &format!("blocks/{id}/children?page_size=100&start_cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(second["results"].as_array().unwrap().len(), 50);
    assert_eq!(second["has_more"], false);
    assert_eq!(api.fake.page(&id).unwrap().block_count(), 150);

    // `after` inserts in place; it must name a child.
    let first_id = first["results"][0]["id"].as_str().unwrap();
    let (s, _) = api
        .call(
            reqwest::Method::PATCH,
            &format!("blocks/{id}/children"),
            Some(json!({ "children": [paragraph("inserted")], "after": first_id })),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(api.fake.page(&id).unwrap().blocks[1].text, "inserted");
    let (s, v) = api
        .call(
            reqwest::Method::PATCH,
            &format!("blocks/{id}/children"),
            Some(json!({ "children": [paragraph("x")], "after": parent })),
        )
        .await;
    assert_error(s, &v, 400, "validation_error");

    // A page parent cannot take non-title properties on update either.
    let (s, v) = api
        .call(
            reqwest::Method::PATCH,
            &format!("pages/{id}"),
            Some(json!({ "properties": { "Status": { "select": { "name": "x" } } } })),
        )
        .await;
    assert_error(s, &v, 400, "validation_error");
}

#[tokio::test]
async fn rate_limit_mode_answers_429_with_retry_after() {
    let api = Api::start().await;
    let db = api.fake.add_database("Name", Schema::new());
    api.fake.set_rate_limit(true);
    let mut limited = None;
    for _ in 0..20 {
        let r = api
            .http
            .get(format!("{}/v1/databases/{db}", api.fake.url()))
            .bearer_auth(api.fake.token())
            .header("Notion-Version", "2022-06-28")
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            limited = Some((
                r.headers()["retry-after"].to_str().unwrap().to_string(),
                r.json::<Value>().await.unwrap(),
            ));
            break;
        }
    }
    let (retry_after, body) = limited.expect("a burst of 20 is rate limited");
    assert!(retry_after.parse::<u64>().unwrap() >= 1);
    assert_eq!(body["code"], "rate_limited");
    // Coming straight back is recorded as an early retry.
    api.call(reqwest::Method::GET, &format!("databases/{db}"), None)
        .await;
    assert!(!api.fake.early_retries().is_empty());
}

#[tokio::test]
async fn faults_down_and_hang() {
    let api = Api::start().await;
    let db = api.fake.add_database("Name", Schema::new());
    let path = format!("databases/{db}");
    api.fake.push_fault(Fault::Status(502));
    api.fake.push_fault(Fault::RateLimited {
        retry_after_secs: 2,
    });
    let (s, v) = api.call(reqwest::Method::GET, &path, None).await;
    assert_eq!(s, 502);
    assert_eq!(v["object"], "error");
    let (s, v) = api.call(reqwest::Method::GET, &path, None).await;
    assert_eq!((s, v["code"].as_str()), (429, Some("rate_limited")));
    api.fake.set_down(true);
    let (s, v) = api.call(reqwest::Method::GET, &path, None).await;
    assert_eq!((s, v["code"].as_str()), (503, Some("service_unavailable")));
    api.fake.set_down(false);
    api.fake.push_fault(Fault::Hang);
    let r = api
        .http
        .get(format!("{}/v1/{path}", api.fake.url()))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    let statuses: Vec<u16> = api.fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [502, 429, 503, 0]);
}

#[tokio::test]
async fn a_targeted_fault_waits_for_a_request_with_its_method_and_path() {
    let api = Api::start().await;
    let db = api.fake.add_database("Name", Schema::new());
    let (_, page) = api.create(page_in(&db, "p")).await;
    let id = page["id"].as_str().unwrap().to_string();
    let children = format!("blocks/{id}/children");
    api.fake
        .push_fault_on("PATCH", "/children", Fault::Status(502));
    assert_eq!(api.fake.pending_faults(), 1);
    // Other requests pass untouched.
    let (s, _) = api.call(reqwest::Method::GET, &children, None).await;
    assert_eq!(s, 200);
    let (s, _) = api
        .call(reqwest::Method::GET, &format!("databases/{db}"), None)
        .await;
    assert_eq!(s, 200);
    let append = || {
        api.call(
            reqwest::Method::PATCH,
            &children,
            Some(json!({ "children": [paragraph("x")] })),
        )
    };
    let (s, _) = append().await;
    assert_eq!(s, 502);
    assert_eq!(api.fake.page(&id).unwrap().block_count(), 0);
    let (s, _) = append().await;
    assert_eq!(s, 200);
    assert_eq!(api.fake.pending_faults(), 0);
}

// ---- chaos faults --------------------------------------------------------------------------

#[tokio::test]
async fn notion_transient_codes_and_lost_responses_are_shaped_like_notion() {
    let api = Api::start().await;
    let db = api.fake.add_database("Name", Schema::incident_default());
    for (status, code) in [
        (409, "conflict_error"),
        (503, "service_unavailable"),
        (500, "internal_server_error"),
    ] {
        api.fake.push_fault(Fault::Status(status));
        let (s, body) = api.create(page_in(&db, "x")).await;
        assert_error(s, &body, status, code);
    }
    assert!(api.fake.pages().is_empty(), "no fault above creates a page");
    // Performed, then a 500: the page exists although the client got an error.
    api.fake.push_fault(Fault::ApplyThenStatus(500));
    let (s, body) = api.create(page_in(&db, "lost-500")).await;
    assert_error(s, &body, 500, "internal_server_error");
    assert_eq!(api.fake.pages().len(), 1);
    // Performed, then the connection drops.
    api.fake.push_fault(Fault::ApplyThenReset);
    let r = api
        .http
        .post(format!("{}/v1/pages", api.fake.url()))
        .bearer_auth(api.fake.token())
        .header("Notion-Version", "2022-06-28")
        .json(&page_in(&db, "lost-reset"))
        .send()
        .await;
    let usable = match r {
        Ok(r) => r.bytes().await.is_ok(),
        Err(_) => false,
    };
    assert!(!usable, "the client never gets the answer");
    assert_eq!(api.fake.pages().len(), 2);
    // Reset: nothing happens.
    api.fake.push_fault(Fault::Reset);
    let r = api
        .http
        .post(format!("{}/v1/pages", api.fake.url()))
        .bearer_auth(api.fake.token())
        .header("Notion-Version", "2022-06-28")
        .json(&page_in(&db, "reset"))
        .send()
        .await;
    assert!(r.is_err() || r.unwrap().bytes().await.is_err());
    assert_eq!(api.fake.pages().len(), 2);
}

#[tokio::test]
async fn a_chaos_schedule_rate_limits_notion_like_notion() {
    use incd_fakes::chaos::{Chaos, ChaosConfig, FaultClass};
    let api = Api::start().await;
    let db = api.fake.add_database("Name", Schema::incident_default());
    let mut cfg = ChaosConfig::all(9, 1.0);
    cfg.classes = vec![FaultClass::RateLimited];
    cfg.retry_after_secs = 5;
    api.fake.set_chaos(Some(Chaos::new(cfg)));
    let (s, body) = api.create(page_in(&db, "x")).await;
    assert_error(s, &body, 429, "rate_limited");
    let (s, _) = api.create(page_in(&db, "x")).await;
    assert_eq!(s, 429);
    assert_eq!(api.fake.early_retries().len(), 1);
    api.fake.set_chaos(None);
    api.fake.clear_faults();
    let (s, body) = api.create(page_in(&db, "x")).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn a_to_do_block_can_be_checked_and_rewritten_within_the_limits() {
    let api = Api::start().await;
    let db = api.fake.add_database("Name", Schema::new());
    let (_, page) = api.create(page_in(&db, "p")).await;
    let id = page["id"].as_str().unwrap().to_string();
    let todo = json!({ "object": "block", "type": "to_do", "to_do": { "rich_text": text("F-1 a"), "checked": false } });
    let (_, v) = api
        .call(
            reqwest::Method::PATCH,
            &format!("blocks/{id}/children"),
            Some(json!({ "children": [todo] })),
        )
        .await;
    let block = v["results"][0]["id"].as_str().unwrap().to_string();
    let path = format!("blocks/{block}");
    let (s, v) = api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({ "to_do": { "rich_text": text("F-1 b"), "checked": true } })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["to_do"]["checked"], true);
    let stored = &api.fake.page(&id).unwrap().blocks[0];
    assert_eq!(
        (stored.text.as_str(), &stored.value["checked"]),
        ("F-1 b", &json!(true))
    );
    // Over 2000 characters, or another type's content: refused.
    let (s, v) = api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({ "to_do": { "rich_text": text(&"x".repeat(2001)) } })),
        )
        .await;
    assert_error(s, &v, 400, "validation_error");
    let (s, v) = api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({ "paragraph": { "rich_text": text("x") } })),
        )
        .await;
    assert_error(s, &v, 400, "validation_error");
    assert_eq!(api.fake.page(&id).unwrap().blocks[0].text, "F-1 b");
}
