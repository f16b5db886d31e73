//! Background steps for PagerDuty and Notion: page, post-mortem, and their resolve updates.
//!
//! Each runs as its own workflow through the runner (backoff with jitter, never sooner than
//! `Retry-After`, until the configured give-up time), so a slow or broken integration never
//! delays the Slack side. The first failure posts a notice with a *Retry now* button in the
//! incident channel; success posts the link (and says so if it had failed); giving up says so
//! too.
//!
//! A trigger whose answer was lost may still have paged someone: once the page step has made an
//! attempt, resolving the incident (or declaring failing) withdraws the page with the same dedup
//! key, whatever the step's state.

use std::sync::Arc;

use anyhow::Result;

use crate::context::Ctx;
use crate::incident::{ChannelId, Incident, IncidentId, Status};
use crate::integrations::notion::PostMortem;
use crate::integrations::pagerduty::PageRef;
use crate::integrations::{IncidentFacts, IntegrationError, TimelineEntry};
use crate::slack::ui::{self, Integration};
use crate::slack::web::Bookmark;
use crate::store::{Field, StepState};
use crate::workflow::runner::{run_step, Next, Runner, StepRun};
use crate::workflow::steps::{Background, StepKey, Workflow};
use crate::workflow::{post_step, summary, wait_for_channel};

/// How long a finished integration step waits for the incident channel (declare may still be
/// creating it, with retries) before it leaves the link in the store only.
const CHANNEL_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

fn integration(b: Background) -> Integration {
    match b {
        Background::Page | Background::PageResolve => Integration::PagerDuty,
        Background::PostMortem
        | Background::PostMortemResolve
        | Background::PostMortemClose
        | Background::PostMortemFollowUps => Integration::Notion,
    }
}

fn configured(ctx: &Ctx, b: Background) -> bool {
    match integration(b) {
        Integration::PagerDuty => ctx.pager.is_some(),
        Integration::Notion => ctx.notion.is_some(),
    }
}

/// Start paging and the post-mortem for a freshly declared incident.
pub fn start_declare(runner: &Arc<Runner>, id: IncidentId) {
    for b in [Background::Page, Background::PostMortem] {
        spawn(runner, id, b);
    }
}

/// Start resolving the page and updating the post-mortem.
pub fn start_resolve(runner: &Arc<Runner>, id: IncidentId) {
    for b in [Background::PageResolve, Background::PostMortemResolve] {
        spawn(runner, id, b);
    }
}

/// Whether a trigger may have reached PagerDuty: the page step made at least one attempt,
/// whatever its outcome (an answer that was lost counts).
async fn page_may_have_gone_out(ctx: &Ctx, id: IncidentId) -> Result<bool> {
    let page = ctx
        .store
        .step(id, &StepKey::Background(Background::Page).to_string())
        .await?;
    Ok(page.is_some_and(|s| s.attempts > 0))
}

/// Declaring failed for good (no channel): withdraw a page that may have gone out, so the
/// reporter's next `/incident` leaves exactly one open page. Steps still retrying stop by
/// themselves (see `skip_reason`).
pub async fn declare_failed(runner: &Arc<Runner>, id: IncidentId) -> Result<()> {
    if page_may_have_gone_out(runner.ctx(), id).await? {
        spawn(runner, id, Background::PageResolve);
    }
    Ok(())
}

/// A person pressed *Retry now*: forget the give-up and run the step again. False when the step
/// is done already.
pub async fn retry_now(runner: &Arc<Runner>, id: IncidentId, b: Background) -> Result<bool> {
    let store = &runner.ctx().store;
    let key = StepKey::Background(b).to_string();
    if let Some(s) = store.step(id, &key).await? {
        if s.state == StepState::Done {
            return Ok(false);
        }
    }
    store.reset_step(id, &key).await?;
    store
        .reset_step(id, &StepKey::Notice(b).to_string())
        .await?;
    store
        .reset_step(id, &StepKey::GaveUp(b).to_string())
        .await?;
    spawn(runner, id, b);
    Ok(true)
}

/// The incident was closed: add the review section to the post-mortem.
pub fn start_close(runner: &Arc<Runner>, id: IncidentId) {
    spawn(runner, id, Background::PostMortemClose);
}

/// A follow-up was added or closed: once the incident is resolved (its post-mortem written or
/// being written), keep the post-mortem's to-dos current. The step runs anew at every change.
pub async fn sync_follow_ups(runner: &Arc<Runner>, id: IncidentId) -> Result<()> {
    let ctx = runner.ctx();
    if !configured(ctx, Background::PostMortemFollowUps) {
        return Ok(());
    }
    let resolved = matches!(
        ctx.store.status(id).await?,
        Some(Status::Resolved | Status::Closed)
    );
    if !resolved {
        // Resolving writes the whole section with the follow-ups as they are then.
        return Ok(());
    }
    let b = Background::PostMortemFollowUps;
    for key in [
        StepKey::Background(b),
        StepKey::Notice(b),
        StepKey::GaveUp(b),
    ] {
        ctx.store.reset_step(id, &key.to_string()).await?;
    }
    spawn(runner, id, b);
    Ok(())
}

/// A reopened incident pages again, with the same dedup key (its page steps were forgotten).
pub fn page_again(runner: &Arc<Runner>, id: IncidentId) {
    spawn(runner, id, Background::Page);
}

fn spawn(runner: &Arc<Runner>, id: IncidentId, b: Background) {
    if configured(runner.ctx(), b) {
        runner.start(id, Workflow::Background(b));
    }
}

enum Outcome {
    Paged(PageRef),
    Created(PostMortem),
    Updated,
}

/// Run one background step to its end (the runner calls this under the step's lease).
pub async fn run(runner: &Arc<Runner>, id: IncidentId, b: Background) -> Result<()> {
    let ctx: &Ctx = runner.ctx();
    let mut run = StepRun::load(ctx, id, StepKey::Background(b)).await?;
    if !configured(ctx, b) {
        // Left unfinished while the integration was configured: not needed any more.
        if run.prior().is_some_and(|s| s.state.is_unfinished()) {
            return run.skip("the integration is not configured any more").await;
        }
        return Ok(());
    }
    if run.prior().is_some_and(|s| {
        matches!(
            s.state,
            StepState::Done | StepState::Skipped | StepState::GaveUp
        )
    }) {
        return Ok(());
    }
    let mut noticed = ctx
        .store
        .step(id, &StepKey::Notice(b).to_string())
        .await?
        .is_some();
    loop {
        // PagerDuty steps of one incident never overlap: a withdrawal waits for a trigger in
        // flight, and a trigger sees the resolution that came first.
        let pager_guard = match b {
            Background::Page | Background::PageResolve => Some(runner.lock_pager(id).await),
            Background::PostMortemResolve
            | Background::PostMortemClose
            | Background::PostMortemFollowUps => Some(runner.lock_postmortem(id).await),
            Background::PostMortem => None,
        };
        let Some(inc) = ctx.store.incident(id).await? else {
            return Ok(());
        };
        if let Some(skip) = skip_reason(ctx, &inc, b).await? {
            tracing::info!(incident = %inc.name, step = b.as_str(), skip, "step not needed");
            return run.skip(skip).await;
        }
        let a = run.attempt().await?;
        let facts = facts(ctx, &inc).await?;
        let doc = match b {
            Background::PostMortemResolve
            | Background::PostMortemClose
            | Background::PostMortemFollowUps => {
                Some(super::postmortem::document(ctx, &inc).await?)
            }
            _ => None,
        };
        let t0 = std::time::Instant::now();
        let result = attempt(ctx, &inc, b, &facts, doc.as_ref(), a.maybe_applied).await;
        drop(pager_guard);
        let service = match integration(b) {
            Integration::PagerDuty => "pagerduty",
            Integration::Notion => "notion",
        };
        ctx.metrics
            .external_call(service, b.as_str(), t0.elapsed(), result.is_ok());
        match result {
            Ok(outcome) => {
                if b == Background::PostMortemFollowUps {
                    // A follow-up changed while this attempt wrote an older list: again.
                    let now = super::postmortem::document(ctx, &inc).await?;
                    let section = crate::incident::postmortem::SectionId::FollowUps;
                    if doc.as_ref().and_then(|d| d.section(section)) != now.section(section) {
                        continue;
                    }
                }
                after_success(runner, &inc, b, outcome, noticed).await?;
                return run.done(None).await;
            }
            Err(e) => {
                ctx.metrics.retry(integration(b).name(), "failure");
                let reason = e.human();
                tracing::warn!(incident = %inc.name, step = b.as_str(), error = %e, "integration step failed");
                match run.record_failure(&e).await? {
                    Next::GiveUp => {
                        post_notice(ctx, &inc, b, &reason, true).await?;
                        return Ok(());
                    }
                    Next::Retry(wait) => {
                        if !noticed {
                            post_notice(ctx, &inc, b, &reason, false).await?;
                            noticed = true;
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }
}

/// Why a step is not needed any more, if it is not.
async fn skip_reason(ctx: &Ctx, inc: &Incident, b: Background) -> Result<Option<&'static str>> {
    let resolved = matches!(
        inc.status,
        Status::Resolving | Status::Resolved | Status::Closed
    );
    if inc.status == Status::Failed && matches!(b, Background::Page | Background::PostMortem) {
        return Ok(Some(
            "declaring failed: no incident channel could be created",
        ));
    }
    Ok(match b {
        Background::Page => {
            let level = ctx.settings.incidents.severity(inc.severity.as_str());
            if !inc.severity.pages(level) {
                Some("severity does not page")
            } else if resolved {
                Some("incident resolved before the page went out")
            } else {
                None
            }
        }
        Background::PostMortem => None,
        Background::PageResolve => {
            let paged = inc.pagerduty_key.is_some() || page_may_have_gone_out(ctx, inc.id).await?;
            (!paged).then_some("nobody was paged")
        }
        Background::PostMortemResolve
        | Background::PostMortemClose
        | Background::PostMortemFollowUps => inc
            .notion_page_id
            .is_none()
            .then_some("no post-mortem page yet"),
    })
}

async fn attempt(
    ctx: &Ctx,
    inc: &Incident,
    b: Background,
    facts: &IncidentFacts,
    doc: Option<&crate::incident::postmortem::PostMortem>,
    maybe_applied: bool,
) -> Result<Outcome, IntegrationError> {
    let unconfigured = || IntegrationError::Refused {
        service: integration(b).name(),
        status: None,
        detail: "not configured".into(),
    };
    match b {
        Background::Page => {
            let pager = ctx.pager.as_ref().ok_or_else(unconfigured)?;
            pager.trigger(facts).await.map(Outcome::Paged)
        }
        Background::PageResolve => {
            let pager = ctx.pager.as_ref().ok_or_else(unconfigured)?;
            // Without a recorded key (the trigger's answer was lost) the client uses the
            // incident's name: the dedup key every trigger of this incident carried.
            let page = PageRef {
                dedup_key: inc.pagerduty_key.clone().unwrap_or_default(),
                incident_id: inc.pagerduty_id.clone(),
                html_url: inc.pagerduty_url.clone(),
            };
            pager.resolve(facts, &page).await.map(|_| Outcome::Updated)
        }
        Background::PostMortem => {
            let notion = ctx.notion.as_ref().ok_or_else(unconfigured)?;
            let created = if maybe_applied {
                notion.create_postmortem(facts).await
            } else {
                notion.create_postmortem_first(facts).await
            };
            created.map(Outcome::Created)
        }
        Background::PostMortemResolve => {
            let notion = ctx.notion.as_ref().ok_or_else(unconfigured)?;
            let page = PostMortem {
                page_id: inc.notion_page_id.clone().unwrap_or_default(),
                url: inc.notion_url.clone().unwrap_or_default(),
            };
            if maybe_applied {
                notion.record_resolution(&page, facts).await?;
            } else {
                notion.record_resolution_first(&page, facts).await?;
            }
            // Then the post-mortem proper, from what incd recorded (reads the page first).
            if let Some(doc) = doc {
                notion.write_postmortem(&page, doc).await?;
            }
            Ok(Outcome::Updated)
        }
        Background::PostMortemFollowUps => {
            let notion = ctx.notion.as_ref().ok_or_else(unconfigured)?;
            let page = PostMortem {
                page_id: inc.notion_page_id.clone().unwrap_or_default(),
                url: inc.notion_url.clone().unwrap_or_default(),
            };
            if let Some(doc) = doc {
                notion.sync_follow_ups(&page, doc).await?;
            }
            Ok(Outcome::Updated)
        }
        Background::PostMortemClose => {
            let notion = ctx.notion.as_ref().ok_or_else(unconfigured)?;
            let page = PostMortem {
                page_id: inc.notion_page_id.clone().unwrap_or_default(),
                url: inc.notion_url.clone().unwrap_or_default(),
            };
            if let Some(doc) = doc {
                notion.write_postmortem(&page, doc).await?;
            }
            Ok(Outcome::Updated)
        }
    }
}

async fn after_success(
    runner: &Arc<Runner>,
    inc: &Incident,
    b: Background,
    outcome: Outcome,
    noticed: bool,
) -> Result<()> {
    let ctx: &Ctx = runner.ctx();
    let store = &ctx.store;
    let id = inc.id;
    let url = match outcome {
        Outcome::Paged(page) => {
            store
                .set_field(id, Field::PagerDutyKey, &page.dedup_key)
                .await?;
            if let Some(pid) = &page.incident_id {
                store.set_field(id, Field::PagerDutyId, pid).await?;
            }
            if let Some(u) = &page.html_url {
                store.set_field(id, Field::PagerDutyUrl, u).await?;
            }
            store
                .add_timeline(id, ctx.clock.now(), ui::TIMELINE_PAGED)
                .await?;
            page.html_url
        }
        Outcome::Created(pm) => {
            store
                .set_field(id, Field::NotionPageId, &pm.page_id)
                .await?;
            store.set_field(id, Field::NotionUrl, &pm.url).await?;
            store
                .add_timeline(id, ctx.clock.now(), ui::TIMELINE_POSTMORTEM)
                .await?;
            Some(pm.url)
        }
        Outcome::Updated => {
            tracing::info!(incident = %inc.name, step = b.as_str(), "integration updated");
            return Ok(());
        }
    };
    let Some(channel) = wait_for_channel(ctx, inc.id, CHANNEL_WAIT).await? else {
        // No channel will come: the declaration failed. Withdraw a page that got through.
        if b == Background::Page {
            declare_failed(runner, id).await?;
        }
        return Ok(());
    };
    let (bookmarked, refreshed, recovered) = tokio::join!(
        bookmark(ctx, inc, b, &channel, url.as_deref()),
        summary::refresh(ctx, id),
        async {
            if noticed {
                let text = ui::integration_recovered(integration(b), url.as_deref());
                post_step(
                    ctx,
                    inc,
                    StepKey::Recovered(b),
                    &channel,
                    || (text.clone(), None),
                    None,
                )
                .await?;
            }
            Ok::<(), anyhow::Error>(())
        }
    );
    bookmarked?;
    refreshed?;
    recovered?;
    // The incident may have been resolved while this was pending.
    if let Some(now) = store.incident(id).await? {
        if matches!(
            now.status,
            Status::Resolving | Status::Resolved | Status::Closed
        ) {
            let follow = match b {
                Background::Page => Background::PageResolve,
                _ => Background::PostMortemResolve,
            };
            let key = StepKey::Background(follow).to_string();
            let state = store.step(id, &key).await?.map(|s| s.state);
            if matches!(state, None | Some(StepState::Skipped)) {
                store.reset_step(id, &key).await?;
                spawn(runner, id, follow);
            }
        }
    }
    Ok(())
}

async fn bookmark(
    ctx: &Ctx,
    inc: &Incident,
    b: Background,
    channel: &ChannelId,
    url: Option<&str>,
) -> Result<()> {
    let Some(link) = url.filter(|u| u.starts_with("https://") || u.starts_with("http://")) else {
        return Ok(());
    };
    let title = ui::bookmark_title(integration(b));
    run_step(
        ctx,
        inc.id,
        StepKey::Bookmark(b),
        |_| {
            ctx.slack.bookmark(Bookmark {
                channel,
                title,
                link,
            })
        },
        |_| None,
    )
    .await?;
    Ok(())
}

async fn post_notice(
    ctx: &Ctx,
    inc: &Incident,
    b: Background,
    reason: &str,
    gave_up: bool,
) -> Result<()> {
    let Some(channel) = wait_for_channel(ctx, inc.id, CHANNEL_WAIT).await? else {
        return Ok(());
    };
    let step = b.as_str();
    let minutes = ctx.settings.retry.give_up_after.as_secs().div_ceil(60);
    let (text, blocks) = if gave_up {
        ui::integration_gave_up(integration(b), reason, inc.id, step)
    } else {
        ui::integration_failing(integration(b), reason, minutes, inc.id, step)
    };
    let key = if gave_up {
        StepKey::GaveUp(b)
    } else {
        StepKey::Notice(b)
    };
    post_step(
        ctx,
        inc,
        key,
        &channel,
        || (text.clone(), Some(blocks.clone())),
        None,
    )
    .await?;
    Ok(())
}

/// Snapshot of an incident for the integrations.
pub async fn facts(ctx: &Ctx, inc: &Incident) -> Result<IncidentFacts> {
    let level = ctx.settings.incidents.severity(inc.severity.as_str());
    let channel_id = inc
        .channel_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let channel_url = if channel_id.is_empty() {
        format!(
            "https://slack.com/app_redirect?channel={}",
            inc.name.channel_name()
        )
    } else {
        format!("https://slack.com/app_redirect?channel={channel_id}")
    };
    let timeline = ctx
        .store
        .timeline(inc.id)
        .await?
        .into_iter()
        .map(|(at, text)| TimelineEntry { at, text })
        .collect();
    Ok(IncidentFacts {
        name: inc.name.as_str().to_string(),
        title: inc.title.clone(),
        description: inc.description.clone(),
        severity_id: inc.severity.to_string(),
        severity_label: inc.severity.label(level),
        pagerduty_severity: level
            .map(|l| l.pagerduty_severity.clone())
            .unwrap_or_else(|| "error".into()),
        resolved: matches!(
            inc.status,
            Status::Resolving | Status::Resolved | Status::Closed
        ),
        reporter: inc.reporter.to_string(),
        commander: inc.commander.as_ref().map(|c| c.to_string()),
        channel_id,
        channel_name: inc.channel_name(),
        channel_url,
        declared_at: inc.declared_at,
        resolved_at: inc.resolved_at,
        resolved_by: inc.resolved_by.as_ref().map(|u| u.to_string()),
        resolution_summary: inc.resolution.clone(),
        timeline,
        notion_url: inc.notion_url.clone(),
        pagerduty_url: inc.pagerduty_url.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::incident::lifecycle::Transition;
    use crate::store::ResolveRecorded;
    use crate::workflow::runner::tests::{incident, test_runner};

    async fn resolving(ctx: &Ctx, name: &str) -> IncidentId {
        let id = incident(ctx, name).await;
        ctx.store
            .transition(id, Transition::Declared)
            .await
            .unwrap();
        let r = ctx
            .store
            .record_resolution(crate::store::NewResolution {
                incident: id,
                resolve_key: name.into(),
                resolved_by: crate::incident::UserId::from("U2"),
                summary: "fixed".into(),
                at: ctx.clock.now(),
            })
            .await
            .unwrap();
        assert_eq!(r, ResolveRecorded::Started);
        id
    }

    #[tokio::test]
    async fn a_trigger_whose_answer_was_lost_is_withdrawn_on_resolve() {
        let (runner, clock) = test_runner();
        let ctx = runner.ctx();
        let lost = resolving(ctx, "20261201-calm-otter").await;
        // The trigger went out (attempt recorded), its answer never came: no key recorded.
        ctx.store
            .set_step(lost, "page", StepState::Started, None, clock.now())
            .await
            .unwrap();
        let inc = ctx.store.incident(lost).await.unwrap().unwrap();
        assert_eq!(inc.pagerduty_key, None);
        assert_eq!(
            skip_reason(ctx, &inc, Background::PageResolve)
                .await
                .unwrap(),
            None
        );
        // And the page step itself stops: the incident is resolved.
        assert!(skip_reason(ctx, &inc, Background::Page)
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn nothing_is_withdrawn_when_no_trigger_was_ever_sent() {
        let (runner, _clock) = test_runner();
        let ctx = runner.ctx();
        let never = resolving(ctx, "20261201-brisk-heron").await;
        let inc = ctx.store.incident(never).await.unwrap().unwrap();
        assert_eq!(
            skip_reason(ctx, &inc, Background::PageResolve)
                .await
                .unwrap(),
            Some("nobody was paged")
        );
    }
}
