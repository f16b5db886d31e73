//! Background steps for PagerDuty and Notion: page, post-mortem, and their resolve updates.
//!
//! Each runs in its own task with bounded retries (backoff with jitter, never sooner than
//! `Retry-After`), so a slow or broken integration never delays the Slack side. The first failure
//! posts a notice with a *Retry now* button in the incident channel; success posts the link (and
//! says so if it had failed); giving up says so too.

use std::sync::Arc;

use chrono::Utc;

use crate::app::App;
use crate::incident::ids::ChannelId;
use crate::incident::{Incident, Status};
use crate::integrations::notion::PostMortem;
use crate::integrations::pagerduty::PageRef;
use crate::integrations::{IncidentFacts, IntegrationError, TimelineEntry};
use crate::slack::ui::{self, Integration};
use crate::slack::web::Bookmark;
use crate::store::{Field, StepState};
use crate::workflow::{post_step, slack_step, summary, wait_for_channel};

/// How long a finished integration step waits for the incident channel (declare may still be
/// creating it, with retries) before it leaves the link in the store only.
const CHANNEL_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// The four background steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Page,
    PostMortem,
    PageResolve,
    PostMortemResolve,
}

impl Kind {
    pub fn step(self) -> &'static str {
        match self {
            Kind::Page => "page",
            Kind::PostMortem => "postmortem",
            Kind::PageResolve => "page_resolve",
            Kind::PostMortemResolve => "postmortem_resolve",
        }
    }

    pub fn from_step(s: &str) -> Option<Kind> {
        Some(match s {
            "page" => Kind::Page,
            "postmortem" => Kind::PostMortem,
            "page_resolve" => Kind::PageResolve,
            "postmortem_resolve" => Kind::PostMortemResolve,
            _ => return None,
        })
    }

    fn integration(self) -> Integration {
        match self {
            Kind::Page | Kind::PageResolve => Integration::PagerDuty,
            Kind::PostMortem | Kind::PostMortemResolve => Integration::Notion,
        }
    }

    fn configured(self, app: &App) -> bool {
        match self.integration() {
            Integration::PagerDuty => app.pager.is_some(),
            Integration::Notion => app.notion.is_some(),
        }
    }
}

/// Start paging and the post-mortem for a freshly declared incident.
pub fn start_declare(app: &Arc<App>, inc: &Incident) {
    for kind in [Kind::Page, Kind::PostMortem] {
        spawn(app, inc.id, kind);
    }
}

/// Start resolving the page and updating the post-mortem.
pub fn start_resolve(app: &Arc<App>, inc: &Incident) {
    for kind in [Kind::PageResolve, Kind::PostMortemResolve] {
        spawn(app, inc.id, kind);
    }
}

/// Declaring failed for good (no channel): withdraw a page that already went out, so the
/// reporter's next `/incident` leaves exactly one open page. Steps still retrying stop by
/// themselves (see `skip_reason`).
pub fn declare_failed(app: &Arc<App>, id: i64) {
    let paged = matches!(
        app.store
            .step(id, Kind::Page.step())
            .ok()
            .flatten()
            .map(|s| s.state),
        Some(StepState::Done)
    );
    if paged {
        spawn(app, id, Kind::PageResolve);
    }
}

/// Resume background steps left unfinished by a previous process.
pub fn resume(app: &Arc<App>, inc: &Incident) {
    for step in app.store.pending_steps(inc.id).unwrap_or_default() {
        if let Some(kind) = Kind::from_step(&step) {
            spawn(app, inc.id, kind);
        }
    }
}

/// A person pressed *Retry now*: forget the give-up and run the step again.
pub fn retry_now(app: &Arc<App>, id: i64, step: &str) -> bool {
    let Some(kind) = Kind::from_step(step) else {
        return false;
    };
    match app.store.step(id, step) {
        Ok(Some(s)) if s.state == StepState::Done => return false,
        Ok(_) => {}
        Err(_) => return false,
    }
    let _ = app.store.reset_step(id, step);
    let _ = app.store.reset_step(id, &format!("notice:{step}"));
    let _ = app.store.reset_step(id, &format!("gave_up:{step}"));
    spawn(app, id, kind);
    true
}

fn spawn(app: &Arc<App>, id: i64, kind: Kind) {
    if !kind.configured(app) {
        return;
    }
    let a = app.clone();
    app.spawn_tracked(async move {
        if !a.claim_background(id, kind.step()) {
            return; // already running in this process
        }
        run_step(&a, id, kind).await;
        a.release_background(id, kind.step());
    });
}

enum Outcome {
    Paged(PageRef),
    Created(PostMortem),
    Updated,
}

async fn run_step(app: &Arc<App>, id: i64, kind: Kind) {
    let step = kind.step();
    // An earlier attempt (in this process or one that died) may have taken effect.
    let mut maybe_applied = true;
    let first_at = match app.store.step(id, step) {
        Ok(Some(s))
            if matches!(
                s.state,
                StepState::Done | StepState::Skipped | StepState::GaveUp
            ) =>
        {
            return
        }
        Ok(Some(s)) => s.first_at,
        Ok(None) => {
            maybe_applied = false;
            Utc::now()
        }
        Err(e) => {
            tracing::error!(error = %e, "store unavailable");
            return;
        }
    };
    let retry = app.settings.retry.clone();
    let mut delay = retry.initial_delay;
    let mut noticed = app
        .store
        .step(id, &format!("notice:{step}"))
        .ok()
        .flatten()
        .is_some();
    loop {
        let Ok(Some(inc)) = app.store.incident(id) else {
            return;
        };
        if let Some(skip) = skip_reason(app, &inc, kind) {
            tracing::info!(incident = %inc.name, step, skip, "step not needed");
            let _ = app.store.set_step(id, step, StepState::Skipped, Some(skip));
            return;
        }
        let _ = app.store.set_step(id, step, StepState::Started, None);
        let facts = facts(app, &inc);
        let t0 = std::time::Instant::now();
        let result = attempt(app, &inc, kind, &facts, maybe_applied).await;
        let service = match kind.integration() {
            Integration::PagerDuty => "pagerduty",
            Integration::Notion => "notion",
        };
        app.metrics
            .external_call(service, step, t0.elapsed(), result.is_ok());
        maybe_applied = true;
        match result {
            Ok(outcome) => {
                app.metrics.step(step, "done");
                after_success(app, &inc, kind, outcome, noticed).await;
                let _ = app.store.set_step(id, step, StepState::Done, None);
                return;
            }
            Err(e) => {
                app.metrics.step(step, "failed");
                app.metrics.retry(kind.integration().name(), "failure");
                let reason = e.human();
                tracing::warn!(incident = %inc.name, step, error = %e, "integration step failed");
                let _ = app
                    .store
                    .set_step(id, step, StepState::Failed, Some(&reason));
                let elapsed = (Utc::now() - first_at).to_std().unwrap_or_default();
                if !e.is_retryable() || elapsed >= retry.give_up_after {
                    let _ = app
                        .store
                        .set_step(id, step, StepState::GaveUp, Some(&reason));
                    app.metrics.step(step, "gave_up");
                    post_notice(app, &inc, kind, &reason, true).await;
                    return;
                }
                if !noticed {
                    post_notice(app, &inc, kind, &reason, false).await;
                    noticed = true;
                }
                let wait = match e.retry_after() {
                    Some(ra) => ra.max(delay),
                    None => delay,
                };
                delay = (delay * 2).min(retry.max_delay);
                let wait = crate::slack::api::jitter(wait);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Why a step is not needed any more, if it is not.
fn skip_reason(app: &App, inc: &Incident, kind: Kind) -> Option<&'static str> {
    let resolved = matches!(inc.status, Status::Resolving | Status::Resolved);
    if inc.status == Status::Failed && matches!(kind, Kind::Page | Kind::PostMortem) {
        return Some("declaring failed: no incident channel could be created");
    }
    match kind {
        Kind::Page => {
            let pages = app
                .settings
                .incidents
                .severity(&inc.severity)
                .is_none_or(|l| l.page);
            if !pages {
                Some("severity does not page")
            } else if resolved {
                Some("incident resolved before the page went out")
            } else {
                None
            }
        }
        Kind::PostMortem => None,
        Kind::PageResolve => inc.pagerduty_key.is_none().then_some("nobody was paged"),
        Kind::PostMortemResolve => inc
            .notion_page_id
            .is_none()
            .then_some("no post-mortem page yet"),
    }
}

async fn attempt(
    app: &App,
    inc: &Incident,
    kind: Kind,
    facts: &IncidentFacts,
    maybe_applied: bool,
) -> Result<Outcome, IntegrationError> {
    match kind {
        Kind::Page => {
            let pager = app.pager.as_ref().expect("configured");
            pager.trigger(facts).await.map(Outcome::Paged)
        }
        Kind::PageResolve => {
            let pager = app.pager.as_ref().expect("configured");
            let page = PageRef {
                dedup_key: inc.pagerduty_key.clone().unwrap_or_default(),
                incident_id: inc.pagerduty_id.clone(),
                html_url: inc.pagerduty_url.clone(),
            };
            pager.resolve(facts, &page).await.map(|_| Outcome::Updated)
        }
        Kind::PostMortem => {
            let notion = app.notion.as_ref().expect("configured");
            let created = if maybe_applied {
                notion.create_postmortem(facts).await
            } else {
                notion.create_postmortem_first(facts).await
            };
            created.map(Outcome::Created)
        }
        Kind::PostMortemResolve => {
            let notion = app.notion.as_ref().expect("configured");
            let page = PostMortem {
                page_id: inc.notion_page_id.clone().unwrap_or_default(),
                url: inc.notion_url.clone().unwrap_or_default(),
            };
            let done = if maybe_applied {
                notion.record_resolution(&page, facts).await
            } else {
                notion.record_resolution_first(&page, facts).await
            };
            done.map(|_| Outcome::Updated)
        }
    }
}

async fn after_success(
    app: &Arc<App>,
    inc: &Incident,
    kind: Kind,
    outcome: Outcome,
    noticed: bool,
) {
    let id = inc.id;
    let url = match outcome {
        Outcome::Paged(page) => {
            let _ = app
                .store
                .set_field(id, Field::PagerDutyKey, &page.dedup_key);
            if let Some(pid) = &page.incident_id {
                let _ = app.store.set_field(id, Field::PagerDutyId, pid);
            }
            if let Some(u) = &page.html_url {
                let _ = app.store.set_field(id, Field::PagerDutyUrl, u);
            }
            let _ = app.store.add_timeline(id, Utc::now(), ui::TIMELINE_PAGED);
            page.html_url
        }
        Outcome::Created(pm) => {
            let _ = app.store.set_field(id, Field::NotionPageId, &pm.page_id);
            let _ = app.store.set_field(id, Field::NotionUrl, &pm.url);
            let _ = app
                .store
                .add_timeline(id, Utc::now(), ui::TIMELINE_POSTMORTEM);
            Some(pm.url)
        }
        Outcome::Updated => {
            tracing::info!(incident = %inc.name, step = kind.step(), "integration updated");
            return;
        }
    };
    let Some(channel) = wait_for_channel(app, inc.id, CHANNEL_WAIT).await else {
        // No channel will come: the declaration failed. Withdraw a page that got through.
        if kind == Kind::Page {
            let _ = app.store.set_step(id, kind.step(), StepState::Done, None);
            declare_failed(app, id);
        }
        return;
    };
    let title = ui::bookmark_title(kind.integration());
    let bookmark = async {
        if let Some(link) = url
            .as_deref()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        {
            let step = format!("bookmark:{}", kind.step());
            let channel = ChannelId::from(channel.as_str());
            slack_step(app, id, &step, |_| {
                let b = Bookmark {
                    channel: &channel,
                    title,
                    link,
                };
                async move { app.slack.bookmark(b).await }
            })
            .await;
        }
    };
    let recovered = async {
        if noticed {
            let text = ui::integration_recovered(kind.integration(), url.as_deref());
            let step = format!("recovered:{}", kind.step());
            post_step(app, inc, &step, &channel, || (text.clone(), None), None).await;
        }
    };
    tokio::join!(bookmark, summary::refresh(app, id), recovered);
    // The incident may have been resolved while this was pending.
    if let Ok(Some(now)) = app.store.incident(id) {
        if matches!(now.status, Status::Resolving | Status::Resolved) {
            let follow = match kind {
                Kind::Page => Kind::PageResolve,
                _ => Kind::PostMortemResolve,
            };
            if app.store.step(id, follow.step()).ok().flatten().is_none()
                || matches!(
                    app.store
                        .step(id, follow.step())
                        .ok()
                        .flatten()
                        .map(|s| s.state),
                    Some(StepState::Skipped)
                )
            {
                let _ = app.store.reset_step(id, follow.step());
                spawn(app, id, follow);
            }
        }
    }
}

async fn post_notice(app: &App, inc: &Incident, kind: Kind, reason: &str, gave_up: bool) {
    let Some(channel) = wait_for_channel(app, inc.id, CHANNEL_WAIT).await else {
        return;
    };
    let step = kind.step();
    let minutes = app.settings.retry.give_up_after.as_secs().div_ceil(60);
    let (text, blocks) = if gave_up {
        ui::integration_gave_up(kind.integration(), reason, inc.id, step)
    } else {
        ui::integration_failing(kind.integration(), reason, minutes, inc.id, step)
    };
    let notice_step = if gave_up {
        format!("gave_up:{step}")
    } else {
        format!("notice:{step}")
    };
    post_step(
        app,
        inc,
        &notice_step,
        &channel,
        || (text.clone(), Some(blocks.clone())),
        None,
    )
    .await;
}

/// Snapshot of an incident for the integrations.
pub fn facts(app: &App, inc: &Incident) -> IncidentFacts {
    let level = app.settings.incidents.severity(&inc.severity);
    let channel_id = inc.channel_id.clone().unwrap_or_default();
    let channel_url = if channel_id.is_empty() {
        format!(
            "https://slack.com/app_redirect?channel={}",
            inc.name.channel_name()
        )
    } else {
        format!("https://slack.com/app_redirect?channel={channel_id}")
    };
    let timeline = app
        .store
        .timeline(inc.id)
        .unwrap_or_default()
        .into_iter()
        .map(|(at, text)| TimelineEntry { at, text })
        .collect();
    IncidentFacts {
        name: inc.name.as_str().to_string(),
        title: inc.title.clone(),
        description: inc.description.clone(),
        severity_id: inc.severity.clone(),
        severity_label: level
            .map(|l| l.label.clone())
            .unwrap_or_else(|| inc.severity.to_uppercase()),
        pagerduty_severity: level
            .map(|l| l.pagerduty_severity.clone())
            .unwrap_or_else(|| "error".into()),
        resolved: matches!(inc.status, Status::Resolving | Status::Resolved),
        reporter: inc.reporter.clone(),
        commander: inc.commander.clone(),
        channel_id,
        channel_name: inc.channel_name(),
        channel_url,
        declared_at: inc.declared_at,
        resolved_at: inc.resolved_at,
        resolved_by: inc.resolved_by.clone(),
        resolution_summary: inc.resolution.clone(),
        timeline,
        notion_url: inc.notion_url.clone(),
        pagerduty_url: inc.pagerduty_url.clone(),
    }
}
