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

/// A raised severity that pages: page now, unless a page step already ran (the same dedup key
/// as at declare, so PagerDuty never gets two incidents). A page step that was skipped because
/// the old severity did not page starts over.
pub async fn page_if_never_paged(runner: &Arc<Runner>, id: IncidentId) -> Result<()> {
    let ctx = runner.ctx();
    if !configured(ctx, Background::Page) {
        return Ok(());
    }
    let key = StepKey::Background(Background::Page).to_string();
    match ctx.store.step(id, &key).await? {
        Some(s) if s.state == StepState::Skipped && s.attempts == 0 => {
            ctx.store.reset_step(id, &key).await?;
        }
        Some(_) => return Ok(()),
        None => {}
    }
    spawn(runner, id, Background::Page);
    Ok(())
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
    /// Paged; `true` when adopted from an earlier run's record (nothing was sent).
    Paged(PageRef, bool),
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
        // The same holds for Notion's create and its resolution update. The guard is kept
        // through `after_success`, which records the page (or post-mortem) and starts the
        // resolution update a resolve left waiting: the update can never read the incident
        // between the effect and its record.
        let guard = match integration(b) {
            Integration::PagerDuty => runner.lock_pager(id).await,
            Integration::Notion => runner.lock_notion(id).await,
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
                run.done(None).await?;
                drop(guard);
                return Ok(());
            }
            Err(e) => {
                drop(guard);
                ctx.metrics.retry(integration(b).name(), "failure");
                let reason = e.human();
                tracing::warn!(incident = %inc.name, step = b.as_str(), error = %e, "integration step failed");
                match run.record_failure(&e).await? {
                    Next::GiveUp => {
                        // A trigger or create whose answer was lost may still have taken
                        // effect: the resolution update decides from what it finds.
                        if matches!(b, Background::Page | Background::PostMortem) {
                            start_waiting_update(runner, id, b).await?;
                        }
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
    if inc.status == Status::Failed && matches!(b, Background::Page | Background::PostMortem) {
        return Ok(Some(
            "declaring failed: no incident channel could be created",
        ));
    }
    Ok(match b {
        // A resolve that came first does not cancel the page: the incident must reach the same
        // end state as without faults (paged, then resolved). The page's success starts the
        // resolve it left waiting (`after_success`).
        Background::Page => {
            let level = ctx.settings.incidents.severity(inc.severity.as_str());
            (!inc.severity.pages(level)).then_some("severity does not page")
        }
        Background::PostMortem => None,
        Background::PageResolve => {
            if inc.pagerduty_key.is_some() {
                None
            } else if inc.status != Status::Failed
                && still_running(ctx, inc.id, Background::Page).await?
            {
                // The trigger is still being retried: it resolves the page when it succeeds.
                Some("the page has not gone out yet; it is resolved when it does")
            } else {
                (!page_may_have_gone_out(ctx, inc.id).await?).then_some("nobody was paged")
            }
        }
        Background::PostMortemResolve => {
            if inc.notion_page_id.is_some() {
                None
            } else if still_running(ctx, inc.id, Background::PostMortem).await? {
                Some("the post-mortem is not created yet; it is updated when it is")
            } else {
                Some("no post-mortem page")
            }
        }
        Background::PostMortemClose | Background::PostMortemFollowUps => inc
            .notion_page_id
            .is_none()
            .then_some("no post-mortem page yet"),
    })
}

/// Whether background step `b` is still to finish (never run, started, or failed and retrying).
async fn still_running(ctx: &Ctx, id: IncidentId, b: Background) -> Result<bool> {
    if !configured(ctx, b) {
        return Ok(false);
    }
    let state = ctx
        .store
        .step(id, &StepKey::Background(b).to_string())
        .await?
        .map(|s| s.state);
    Ok(!matches!(
        state,
        Some(StepState::Done | StepState::Skipped | StepState::GaveUp)
    ))
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
            if let (true, Some(key)) = (maybe_applied, &inc.pagerduty_key) {
                // The trigger went through and was recorded; the process stopped before the
                // step was. Sending it again could page anew after the resolve (Events v2
                // opens a new alert for a resolved key).
                return Ok(Outcome::Paged(
                    PageRef {
                        dedup_key: key.clone(),
                        incident_id: inc.pagerduty_id.clone(),
                        html_url: inc.pagerduty_url.clone(),
                    },
                    true,
                ));
            }
            let paged = if maybe_applied {
                pager.trigger_again(facts).await
            } else {
                pager.trigger(facts).await
            };
            paged.map(|p| Outcome::Paged(p, false))
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
            let resolved = if maybe_applied {
                pager.resolve_again(facts, &page).await
            } else {
                pager.resolve(facts, &page).await
            };
            resolved.map(|_| Outcome::Updated)
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
        Outcome::Paged(page, adopted) => {
            store
                .set_field(id, Field::PagerDutyKey, &page.dedup_key)
                .await?;
            if let Some(pid) = &page.incident_id {
                store.set_field(id, Field::PagerDutyId, pid).await?;
            }
            if let Some(u) = &page.html_url {
                store.set_field(id, Field::PagerDutyUrl, u).await?;
            }
            // Once: a page adopted from an earlier run's record is in the timeline already.
            if !adopted {
                store
                    .add_timeline(id, ctx.clock.now(), ui::TIMELINE_PAGED)
                    .await?;
            }
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
    start_waiting_update(runner, id, b).await
}

/// After the page or post-mortem step ended: when the incident was resolved meanwhile, start its
/// resolution update, which skipped itself to wait for this step.
async fn start_waiting_update(runner: &Arc<Runner>, id: IncidentId, b: Background) -> Result<()> {
    let store = &runner.ctx().store;
    let Some(now) = store.incident(id).await? else {
        return Ok(());
    };
    if matches!(
        now.status,
        Status::Resolving | Status::Resolved | Status::Closed
    ) {
        let follow = match b {
            Background::Page | Background::PageResolve => Background::PageResolve,
            Background::PostMortem | Background::PostMortemResolve => Background::PostMortemResolve,
            Background::PostMortemClose | Background::PostMortemFollowUps => return Ok(()),
        };
        let key = StepKey::Background(follow).to_string();
        let state = store.step(id, &key).await?.map(|s| s.state);
        if matches!(state, None | Some(StepState::Skipped)) {
            store.reset_step(id, &key).await?;
            spawn(runner, id, follow);
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
    use crate::workflow::runner::tests::{incident, test_runner, test_runner_paging};

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
    }

    #[tokio::test]
    async fn a_resolve_before_the_page_went_out_still_pages_then_resolves() {
        let (runner, clock) = test_runner_paging();
        let ctx = runner.ctx();
        let id = resolving(ctx, "20261201-quick-lynx").await;
        // The trigger failed transiently (a 502) and is being retried when the resolve comes.
        ctx.store
            .set_step(id, "page", StepState::Started, None, clock.now())
            .await
            .unwrap();
        ctx.store
            .set_step(id, "page", StepState::Failed, Some("HTTP 502"), clock.now())
            .await
            .unwrap();
        let inc = ctx.store.incident(id).await.unwrap().unwrap();
        assert_eq!(
            skip_reason(ctx, &inc, Background::Page).await.unwrap(),
            None,
            "a transient failure never drops the page"
        );
        assert!(
            skip_reason(ctx, &inc, Background::PageResolve)
                .await
                .unwrap()
                .is_some(),
            "the resolve waits for the page instead of resolving what is not there yet"
        );
        // The page gives up for good after an attempt whose outcome is unknown: withdraw by key.
        ctx.store
            .set_step(id, "page", StepState::GaveUp, Some("HTTP 502"), clock.now())
            .await
            .unwrap();
        assert_eq!(
            skip_reason(ctx, &inc, Background::PageResolve)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn a_page_recorded_before_a_crash_is_adopted_not_sent_again() {
        // PagerDuty is at a closed port here: any call would fail.
        let (runner, clock) = test_runner_paging();
        let ctx = runner.ctx();
        let id = resolving(ctx, "20261201-proud-wren").await;
        // The trigger went through and its key was recorded; the process died before the step
        // was marked done, and the resolve came after the restart.
        ctx.store
            .set_step(id, "page", StepState::Started, None, clock.now())
            .await
            .unwrap();
        ctx.store
            .set_field(id, Field::PagerDutyKey, "20261201-proud-wren")
            .await
            .unwrap();
        let inc = ctx.store.incident(id).await.unwrap().unwrap();
        let facts = facts(ctx, &inc).await.unwrap();
        let r = attempt(ctx, &inc, Background::Page, &facts, None, true).await;
        assert!(
            matches!(&r, Ok(Outcome::Paged(p, true)) if p.dedup_key == "20261201-proud-wren"),
            "adopted without a call"
        );
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
