//! The post-mortem document of an incident, built from what incd recorded: the facts, the
//! timeline, the follow-ups, the close, and the people by role label. The Notion steps
//! (`workflow/integrations.rs`) write it; this module only gathers it from the store.

use anyhow::Result;

use crate::context::Ctx;
use crate::incident::postmortem::{Names, PostMortem, PostMortemFacts};
use crate::incident::roles::{PeopleLabels, Role, RoleHolding};
use crate::incident::timeline::{people_in_order, EntryKind, TimelineEntry};
use crate::incident::{Incident, Status};

/// The timeline as the post-mortem shows it: every stored entry (system entries for the
/// declaration, changes and the resolution, notes, captured messages with their permalinks), in
/// time order, with who made it. Entries from before the lifecycle migration have no kind: they
/// were incd's own, so they read as status entries.
async fn timeline(ctx: &Ctx, inc: &Incident) -> Result<Vec<TimelineEntry>> {
    Ok(ctx
        .store
        .timeline_entries(inc.id)
        .await?
        .into_iter()
        .map(|e| TimelineEntry {
            at: e.at,
            author: e.author,
            kind: e.kind.unwrap_or(EntryKind::StatusChanged),
            text: e.text,
        })
        .collect())
}

/// Build the whole document of `inc` as it stands now.
pub async fn document(ctx: &Ctx, inc: &Incident) -> Result<PostMortem> {
    let level = ctx.settings.incidents.severity(inc.severity.as_str());
    let timeline = timeline(ctx, inc).await?;
    let follow_ups = ctx.store.follow_ups(inc.id).await?;
    let closing = if inc.status == Status::Closed {
        ctx.store.closing(inc.id).await?
    } else {
        None
    };
    let mut history = Vec::new();
    if let Some(c) = &inc.commander {
        history.push(RoleHolding {
            role: Role::Commander,
            user: c.clone(),
        });
    }
    let mut participants = vec![inc.reporter.clone()];
    participants.extend(people_in_order(&timeline));
    participants.extend(follow_ups.iter().filter_map(|f| f.owner.clone()));
    if let Some(by) = &inc.resolved_by {
        participants.push(by.clone());
    }
    if let Some(c) = &closing {
        participants.push(c.by.clone());
    }
    let labels = PeopleLabels::build(&history, &participants);
    let channel_url = inc
        .channel_id
        .as_ref()
        .map(|c| format!("https://slack.com/app_redirect?channel={c}"));
    let status = match inc.status {
        Status::Closed => "Closed",
        Status::Resolving | Status::Resolved => "Resolved",
        _ => "Open",
    };
    let facts = PostMortemFacts {
        title: inc.title.clone(),
        description: inc.description.clone(),
        severity: inc.severity.label(level),
        status: status.into(),
        resolution: inc.resolution.clone(),
        impact: ctx.store.impact(inc.id).await?,
        declared_at: inc.declared_at,
        resolved_at: inc.resolved_at,
        closed_at: closing.as_ref().map(|c| c.at),
        review_held_on: closing.as_ref().and_then(|c| c.review_date),
        review_notes: closing
            .as_ref()
            .map(|c| c.notes.clone())
            .filter(|n| !n.trim().is_empty()),
        channel_name: inc.channel_name(),
        channel_url,
        page_url: inc.notion_url.clone(),
        pagerduty_url: inc.pagerduty_url.clone(),
    };
    // incd knows people by Slack user id only: the people table names them by id.
    Ok(PostMortem::build(
        &facts,
        &timeline,
        &follow_ups,
        &labels,
        &Names::new(),
    ))
}
