//! The PagerDuty and Notion clients against the fakes: idempotent paging and post-mortems,
//! failure classification, and doctor checks.

use std::time::Duration;

use incd::config::{NotionParent, NotionSettings, PagerDutySettings, Secret};
use incd::integrations::notion::Notion;
use incd::integrations::pagerduty::{PageRef, Pager};
use incd::integrations::{IncidentFacts, IntegrationError, TimelineEntry};
use incd_fakes::notion::{FakeNotion, FakeParent, Fault as NotionFault, Schema};
use incd_fakes::pagerduty::{AlertStatus, FakePagerDuty, Fault};

/// Short enough that hung calls fail fast in tests.
const TEST_TIMEOUT: Duration = Duration::from_millis(500);

fn facts() -> IncidentFacts {
    IncidentFacts {
        commander: None,
        ..IncidentFacts::example()
    }
}

fn resolved(mut f: IncidentFacts) -> IncidentFacts {
    f.resolved = true;
    f.resolved_at = Some(f.declared_at + chrono::Duration::minutes(65));
    f.resolved_by = Some("U0COMMANDR".into());
    f.resolution_summary = Some("Rolled back the payment gateway deploy.".into());
    f.timeline.push(TimelineEntry {
        at: f.declared_at + chrono::Duration::minutes(40),
        text: "Mitigated: deploy rolled back".into(),
    });
    f
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn events_pager(pd: &FakePagerDuty, key: &str) -> Pager {
    Pager::new(
        http(),
        PagerDutySettings::Events {
            routing_key: Secret::new(key),
            events_url: pd.url(),
        },
    )
    .with_timeout(TEST_TIMEOUT)
}

fn rest_pager(pd: &FakePagerDuty, token: &str, service: &str) -> Pager {
    Pager::new(
        http(),
        PagerDutySettings::Rest {
            api_token: Secret::new(token),
            service_id: service.into(),
            from_email: pd.from_email().into(),
            escalation_policy_id: Some(pd.escalation_policy_id().into()),
            api_url: pd.url(),
        },
    )
    .with_timeout(TEST_TIMEOUT)
}

fn notion_client(fake: &FakeNotion, parent: NotionParent, token: &str) -> Notion {
    Notion::new(
        http(),
        NotionSettings {
            token: Secret::new(token),
            parent,
            api_url: fake.url(),
        },
    )
    .with_timeout(TEST_TIMEOUT)
}

async fn notion_with_database() -> (FakeNotion, Notion, String) {
    let fake = FakeNotion::start().await;
    let db = fake.add_database("Incident", Schema::incident_default());
    let client = notion_client(&fake, NotionParent::Database(db.clone()), fake.token());
    (fake, client, db)
}

// ---------------------------------------------------------------------------------------------
// PagerDuty

#[tokio::test]
async fn trigger_and_resolve_use_one_dedup_key_and_leave_one_resolved_alert() {
    let pd = FakePagerDuty::start().await;
    let pager = events_pager(&pd, pd.routing_key());
    let f = facts();
    let page = pager.trigger(&f).await.unwrap();
    assert_eq!(page.dedup_key, "20250314-brave-otter");
    assert_eq!(page.incident_id, None);
    pager.resolve(&resolved(f), &page).await.unwrap();

    let alerts = pd.alerts();
    assert_eq!(alerts.len(), 1);
    let alert = &alerts["20250314-brave-otter"];
    assert_eq!((alert.status, alert.opened), (AlertStatus::Resolved, 1));
    assert_eq!(alert.summary, "[SEV1] Checkout fails for EU customers");
    assert_eq!(
        (alert.severity.as_str(), alert.source.as_str()),
        ("critical", "incd")
    );
    assert_eq!(
        alert.links[0]["href"],
        "https://slack.com/app_redirect?channel=C0INCIDENT"
    );
    assert_eq!(alert.custom_details["reporter"], "U0REPORTER");
    assert!(pd.rejected().is_empty());
}

#[tokio::test]
async fn a_retried_trigger_pages_once() {
    let pd = FakePagerDuty::start().await;
    let pager = events_pager(&pd, pd.routing_key());
    // The first attempt reaches PagerDuty but its answer is lost: the runner retries.
    pd.push_fault(Fault::LoseResponse);
    let first = pager.trigger(&facts()).await.unwrap_err();
    assert!(
        matches!(first, IntegrationError::Unavailable { .. }),
        "{first:?}"
    );
    let page = pager.trigger(&facts()).await.unwrap();
    pager.trigger(&facts()).await.unwrap();
    let alert = &pd.alerts()[&page.dedup_key];
    assert_eq!((alert.trigger_count, alert.opened), (3, 1));
}

#[tokio::test]
async fn rest_incident_is_created_and_resolved() {
    let pd = FakePagerDuty::start().await;
    let pager = rest_pager(&pd, pd.api_token(), pd.service_id());
    let page = pager.trigger(&facts()).await.unwrap();
    let incident = &pd.incidents()[0];
    assert_eq!(page.incident_id.as_deref(), Some(incident.id.as_str()));
    assert_eq!(page.html_url.as_deref(), Some(incident.html_url.as_str()));
    assert_eq!(
        incident.incident_key.as_deref(),
        Some("20250314-brave-otter")
    );
    assert_eq!(incident.title, "[SEV1] Checkout fails for EU customers");
    assert_eq!(incident.urgency, "high");
    assert_eq!(
        incident.escalation_policy_id.as_deref(),
        Some(pd.escalation_policy_id())
    );
    assert_eq!(incident.created_by, pd.from_email());
    assert!(incident
        .details
        .as_deref()
        .unwrap()
        .contains("Payments time out"));

    let done = resolved(facts());
    pager.resolve(&done, &page).await.unwrap();
    let incident = &pd.incidents()[0];
    assert_eq!(incident.status, "resolved");
    assert_eq!(
        incident.resolution.as_deref(),
        Some("Rolled back the payment gateway deploy.")
    );
    // Resolving twice (a retried step) is not an error.
    pager.resolve(&done, &page).await.unwrap();
}

#[tokio::test]
async fn a_rest_trigger_after_a_lost_answer_looks_first_and_is_never_refused() {
    let pd = FakePagerDuty::start().await;
    let pager = rest_pager(&pd, pd.api_token(), pd.service_id());
    pd.push_fault(Fault::LoseResponse);
    assert!(pager.trigger(&facts()).await.is_err());
    let page = pager.trigger_again(&facts()).await.unwrap();
    assert_eq!(pd.incidents().len(), 1);
    assert_eq!(
        page.incident_id.as_deref(),
        Some(pd.incidents()[0].id.as_str())
    );
    // The resolve's answer is lost too: the repeat reads the status instead of resolving again.
    let done = resolved(facts());
    pd.push_fault(Fault::LoseResponse);
    assert!(pager.resolve(&done, &page).await.is_err());
    pager.resolve_again(&done, &page).await.unwrap();
    assert_eq!(pd.incidents()[0].status, "resolved");
    assert!(
        pd.rejected().is_empty(),
        "no duplicate create, no resolve of a resolved incident: {:?}",
        pd.rejected()
    );
}

#[tokio::test]
async fn a_retried_rest_create_returns_the_open_incident() {
    let pd = FakePagerDuty::start().await;
    let pager = rest_pager(&pd, pd.api_token(), pd.service_id());
    pd.push_fault(Fault::LoseResponse);
    assert!(pager.trigger(&facts()).await.is_err());
    let page = pager.trigger(&facts()).await.unwrap();
    let again = pager.trigger(&facts()).await.unwrap();
    assert_eq!(page, again);
    assert_eq!(pd.incidents().len(), 1);
    assert_eq!(
        page.incident_id.as_deref(),
        Some(pd.incidents()[0].id.as_str())
    );
    let duplicates = pd
        .rejected()
        .iter()
        .filter(|r| r.reason.contains("already exists"))
        .count();
    assert_eq!(duplicates, 2);

    // Resolving with only the key (the id was never stored) finds the incident.
    let by_key = PageRef {
        dedup_key: page.dedup_key.clone(),
        incident_id: None,
        html_url: None,
    };
    pager.resolve(&resolved(facts()), &by_key).await.unwrap();
    assert_eq!(pd.incidents()[0].status, "resolved");
}

#[tokio::test]
async fn pagerduty_failures_are_classified() {
    let pd = FakePagerDuty::start().await;
    let pager = events_pager(&pd, pd.routing_key());

    pd.push_fault(Fault::RateLimited {
        retry_after_secs: 7,
    });
    let err = pager.trigger(&facts()).await.unwrap_err();
    assert!(
        matches!(err, IntegrationError::RateLimited { .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));

    pd.push_fault(Fault::Status(502));
    let err = pager.trigger(&facts()).await.unwrap_err();
    assert!(matches!(err, IntegrationError::Unavailable { .. }) && err.is_retryable());

    pd.set_down(true);
    assert!(matches!(
        pager.trigger(&facts()).await,
        Err(IntegrationError::Unavailable { .. })
    ));
    pd.set_down(false);

    pd.push_fault(Fault::Hang);
    match pager.trigger(&facts()).await {
        Err(IntegrationError::Unavailable { detail, .. }) => assert_eq!(detail, "timed out"),
        other => panic!("{other:?}"),
    }

    // A routing key of the wrong length: refused with PagerDuty's reason, without the key.
    let bad_key = "x".repeat(31);
    let err = events_pager(&pd, &bad_key)
        .trigger(&facts())
        .await
        .unwrap_err();
    match &err {
        IntegrationError::Refused { status, detail, .. } => {
            assert_eq!(*status, Some(400));
            assert!(detail.contains("routing_key"), "{detail}");
            assert!(!detail.contains(&bad_key));
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());

    let err = rest_pager(&pd, "wrong-token", pd.service_id())
        .trigger(&facts())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IntegrationError::Refused {
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.human().contains("wrong-token"));
    assert!(pd.alerts().is_empty());
}

#[tokio::test]
async fn an_unreachable_service_is_unavailable() {
    let pd = FakePagerDuty::start().await;
    let pager = Pager::new(
        http(),
        PagerDutySettings::Events {
            routing_key: Secret::new(pd.routing_key()),
            events_url: "http://127.0.0.1:9".into(),
        },
    );
    assert!(matches!(
        pager.trigger(&facts()).await,
        Err(IntegrationError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn pagerduty_doctor_checks_pass_and_fail() {
    let pd = FakePagerDuty::start().await;
    let checks = events_pager(&pd, pd.routing_key()).check().await;
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    assert!(pd.alerts().is_empty(), "doctor must never page");

    let checks = events_pager(&pd, "short").check().await;
    let key = checks
        .iter()
        .find(|c| c.name.contains("routing key"))
        .unwrap();
    assert!(
        !key.ok
            && key
                .fix
                .as_deref()
                .unwrap()
                .contains("PAGERDUTY_ROUTING_KEY")
    );

    let checks = rest_pager(&pd, pd.api_token(), pd.service_id())
        .check()
        .await;
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");

    for (token, service, fix) in [
        ("wrong-token", pd.service_id(), "PAGERDUTY_API_TOKEN"),
        (pd.api_token(), "PNOPE", "PAGERDUTY_SERVICE_ID"),
    ] {
        let checks = rest_pager(&pd, token, service).check().await;
        let failed: Vec<_> = checks.iter().filter(|c| !c.ok).collect();
        assert_eq!(failed.len(), 1, "{checks:?}");
        assert!(
            failed[0].fix.as_deref().unwrap().contains(fix),
            "{:?}",
            failed[0]
        );
    }

    pd.set_down(true);
    let checks = events_pager(&pd, pd.routing_key()).check().await;
    assert!(checks.iter().any(|c| !c.ok && c.fix.is_some()));
}

// ---------------------------------------------------------------------------------------------
// Notion

#[tokio::test]
async fn the_postmortem_is_created_in_the_database_with_sections_and_properties() {
    let (fake, notion, db) = notion_with_database().await;
    let mut f = facts();
    f.pagerduty_url = Some("https://acme.pagerduty.com/incidents/PT4KHLK".into());
    let pm = notion.create_postmortem(&f).await.unwrap();
    let pages = fake.pages();
    assert_eq!(pages.len(), 1);
    let page = &pages[0];
    assert_eq!(page.id, pm.page_id);
    assert_eq!(page.url, pm.url);
    assert_eq!(page.parent, FakeParent::Database(db));
    assert_eq!(page.title, "20250314-brave-otter");
    assert_eq!(page.option("Severity").as_deref(), Some("SEV1"));
    assert_eq!(page.option("Status").as_deref(), Some("Investigating"));
    assert_eq!(page.date("Declared").unwrap().0, "2025-03-14T09:26:53Z");
    assert_eq!(page.date("Resolved"), None);
    assert_eq!(
        page.url_property("Slack channel").as_deref(),
        Some("https://slack.com/app_redirect?channel=C0INCIDENT")
    );
    assert_eq!(
        page.headings(),
        [
            "Description",
            "Impact",
            "Timeline",
            "Root cause analysis",
            "Mitigation",
            "Follow-up tasks",
            "Lessons learned"
        ]
    );
    assert_eq!(page.blocks_of("to_do").len(), 2);
    let text = page.text();
    assert!(text.contains("Payments time out after 30 s."));
    assert!(text.contains("Declared by U0REPORTER"));
    let link = page
        .blocks_of("paragraph")
        .into_iter()
        .find(|b| b.text.starts_with("Slack channel"))
        .unwrap();
    assert_eq!(
        link.value["rich_text"][1]["href"],
        "https://slack.com/app_redirect?channel=C0INCIDENT"
    );
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
}

#[tokio::test]
async fn creating_the_postmortem_twice_returns_the_same_page() {
    let (fake, notion, db) = notion_with_database().await;
    let first = notion.create_postmortem(&facts()).await.unwrap();
    let second = notion.create_postmortem(&facts()).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(fake.pages().len(), 1);
    // A fresh client (a restarted incd, nothing cached) finds it too.
    let other = notion_client(&fake, NotionParent::Database(db), fake.token());
    assert_eq!(other.create_postmortem(&facts()).await.unwrap(), first);
    assert_eq!(fake.pages().len(), 1);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_not_repeated() {
    let (fake, notion, _) = notion_with_database().await;
    // Schema read, query, then the create succeeds but its answer never arrives.
    fake.push_fault(NotionFault::Delay(Duration::ZERO));
    fake.push_fault(NotionFault::Delay(Duration::ZERO));
    fake.push_fault(NotionFault::LoseResponse);
    let err = notion.create_postmortem(&facts()).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(fake.pages().len(), 1);
    let pm = notion.create_postmortem(&facts()).await.unwrap();
    assert_eq!(fake.pages().len(), 1);
    assert_eq!(pm.page_id, fake.pages()[0].id);
}

#[tokio::test]
async fn a_long_timeline_is_appended_in_chunks_of_100() {
    let (fake, notion, _) = notion_with_database().await;
    let mut f = facts();
    f.description = "😀".repeat(3000); // 6000 UTF-16 units: several rich-text items
    for i in 0..250 {
        f.timeline.push(TimelineEntry {
            at: f.declared_at + chrono::Duration::seconds(i),
            text: format!("update {i}"),
        });
    }
    notion.create_postmortem(&f).await.unwrap();
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
    let page = &fake.pages()[0];
    assert!(page.text().contains("update 249"));
    assert!(page.text().contains(&"😀".repeat(3000)));
    let appends = fake
        .calls()
        .iter()
        .filter(|c| c.method == "PATCH" && c.path.contains("/children"))
        .count();
    assert_eq!(appends, page.block_count().div_ceil(100) - 1);
    assert!(appends >= 2);
}

#[tokio::test]
async fn record_resolution_updates_the_status_and_appends_once() {
    let (fake, notion, _) = notion_with_database().await;
    let pm = notion.create_postmortem(&facts()).await.unwrap();
    let done = resolved(facts());
    notion.record_resolution(&pm, &done).await.unwrap();
    notion.record_resolution(&pm, &done).await.unwrap();
    let page = fake.page(&pm.page_id).unwrap();
    assert_eq!(page.option("Status").as_deref(), Some("Resolved"));
    assert_eq!(page.date("Resolved").unwrap().0, "2025-03-14T10:31:53Z");
    assert_eq!(
        page.headings()
            .iter()
            .filter(|h| *h == "Resolution")
            .count(),
        1
    );
    let text = page.text();
    assert!(text.contains("after 1h 05m"), "{text}");
    assert!(text.contains("Rolled back the payment gateway deploy."));
    assert!(text.contains("Mitigated: deploy rolled back"));
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
}

#[tokio::test]
async fn properties_are_filled_only_where_the_database_has_them() {
    let fake = FakeNotion::start().await;
    // A team's own database: another title name, a select "Status" without a resolved option,
    // a rich-text "Severity", a number "Duration".
    let schema = Schema::new()
        .select("Status", &["Open", "In review"])
        .rich_text("Severity")
        .number("Duration (min)")
        .people("Owner");
    let db = fake.add_database("Post-mortem", schema);
    let notion = notion_client(
        &fake,
        NotionParent::Database(db.replace('-', "")),
        fake.token(),
    );
    let pm = notion.create_postmortem(&facts()).await.unwrap();
    notion
        .record_resolution(&pm, &resolved(facts()))
        .await
        .unwrap();
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
    let page = fake.page(&pm.page_id).unwrap();
    assert_eq!(page.title, "20250314-brave-otter");
    assert_eq!(page.option("Status").as_deref(), Some("Open"));
    assert_eq!(page.text_property("Severity").as_deref(), Some(""));
    assert_eq!(page.property("Duration (min)").unwrap()["number"], 65);
}

#[tokio::test]
async fn under_a_parent_page_the_postmortem_is_a_child_page_found_again_on_retry() {
    let fake = FakeNotion::start().await;
    let parent = fake.add_page("Incidents");
    let notion = notion_client(&fake, NotionParent::Page(parent.clone()), fake.token());
    let first = notion.create_postmortem(&facts()).await.unwrap();
    let second = notion.create_postmortem(&facts()).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(fake.pages().len(), 1);
    let parent_page = fake.page(&parent).unwrap();
    assert_eq!(parent_page.blocks_of("child_page").len(), 1);
    notion
        .record_resolution(&first, &resolved(facts()))
        .await
        .unwrap();
    assert!(fake
        .page(&first.page_id)
        .unwrap()
        .headings()
        .contains(&"Resolution".to_string()));
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
}

#[tokio::test]
async fn notion_failures_are_classified() {
    let (fake, notion, db) = notion_with_database().await;
    fake.push_fault(NotionFault::RateLimited {
        retry_after_secs: 2,
    });
    let err = notion.create_postmortem(&facts()).await.unwrap_err();
    assert!(matches!(err, IntegrationError::RateLimited { .. }));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));

    fake.push_fault(NotionFault::Status(500));
    assert!(matches!(
        notion.create_postmortem(&facts()).await,
        Err(IntegrationError::Unavailable { .. })
    ));
    fake.set_down(true);
    assert!(matches!(
        notion.create_postmortem(&facts()).await,
        Err(IntegrationError::Unavailable { .. })
    ));
    fake.set_down(false);
    fake.push_fault(NotionFault::Hang);
    assert!(matches!(
        notion.create_postmortem(&facts()).await,
        Err(IntegrationError::Unavailable { .. })
    ));

    let wrong = notion_client(&fake, NotionParent::Database(db.clone()), "ntn_wrong_token");
    let err = wrong.create_postmortem(&facts()).await.unwrap_err();
    assert!(
        matches!(
            err,
            IntegrationError::Refused {
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.human().contains("ntn_wrong_token"));

    fake.set_shared(&db, false);
    let fresh = notion_client(&fake, NotionParent::Database(db), fake.token());
    let err = fresh.create_postmortem(&facts()).await.unwrap_err();
    match err {
        IntegrationError::Refused {
            status: Some(404),
            detail,
            ..
        } => assert!(detail.contains("object_not_found")),
        other => panic!("{other:?}"),
    }
    assert!(fake.pages().is_empty());
}

#[tokio::test]
async fn notion_doctor_checks_pass_and_fail() {
    let (fake, notion, db) = notion_with_database().await;
    let checks = notion.check().await;
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    assert!(
        checks[1].detail.contains("'Incident'"),
        "{}",
        checks[1].detail
    );

    let wrong = notion_client(&fake, NotionParent::Database(db.clone()), "ntn_wrong")
        .check()
        .await;
    assert!(!wrong[0].ok && wrong[0].fix.as_deref().unwrap().contains("NOTION_TOKEN"));

    fake.set_shared(&db, false);
    let unshared = notion.check().await;
    assert!(!unshared[0].ok && unshared[0].fix.as_deref().unwrap().contains("Connections"));

    let parent = fake.add_page("Incidents");
    let page_checks = notion_client(&fake, NotionParent::Page(parent), fake.token())
        .check()
        .await;
    assert!(page_checks.iter().all(|c| c.ok), "{page_checks:?}");
    let missing = notion_client(&fake, NotionParent::Page("not-an-id".into()), fake.token())
        .check()
        .await;
    assert!(!missing[0].ok && missing[0].fix.is_some());
}

#[tokio::test]
async fn the_notion_schema_is_read_once_when_start_up_and_the_first_declare_race() {
    let (fake, client, _db) = notion_with_database().await;
    // Slow enough that the two reads would overlap.
    fake.set_latency(Duration::from_millis(300));
    let f = facts();
    let (_, created) = tokio::join!(client.warm_up(), client.create_postmortem_first(&f));
    created.unwrap();
    let schema_reads = fake
        .calls()
        .into_iter()
        .filter(|c| c.method == "GET" && c.path.starts_with("/v1/databases/"))
        .count();
    assert_eq!(
        schema_reads, 1,
        "one schema read in flight; the other waited for it"
    );
}
