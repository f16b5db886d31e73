//! The incident channel: the pinned summary, the topic and the resolution message.

use chrono::Utc;
use chrono_tz::Tz;
use serde_json::Value;
use slack_morphism::prelude::*;

use super::*;
use crate::incident::roles::Role;
use crate::incident::text::{clamp, escape_and_clamp, escape_mrkdwn, one_line};
use crate::incident::SeverityLevel;
use crate::incident::{human_duration, Incident};

/// Channel topic: severity, status, commander, title; one line, at most 250 characters, the
/// title escaped like any other text Slack stores.
pub fn topic(incident: &Incident, level: Option<&SeverityLevel>, resolved: bool) -> String {
    let status = if incident.status == crate::incident::Status::Closed {
        "Closed"
    } else if resolved {
        "Resolved"
    } else {
        incident.phase.label()
    };
    let commander = incident
        .roles
        .holder(Role::Commander)
        .map(|c| format!(" | IC <@{c}>"))
        .unwrap_or_default();
    let head = format!(
        "{} | {status}{commander} | ",
        escape_mrkdwn(&severity_label(level, incident.severity.as_str())),
    );
    let room = TOPIC_MAX.saturating_sub(head.chars().count()).max(1);
    format!(
        "{head}{}",
        escape_and_clamp(&one_line(&incident.title), room)
    )
}

/// Links the summary and bookmarks show.
fn links_line(incident: &Incident) -> String {
    let pd = match &incident.pagerduty_url {
        Some(u) => format!("<{u}|PagerDuty incident>"),
        None => match &incident.pagerduty_key {
            Some(key) => format!("PagerDuty: on-call paged (dedup key `{key}`)"),
            None => "PagerDuty: _not paged yet_".to_string(),
        },
    };
    let notion = match &incident.notion_url {
        Some(u) => format!("<{u}|Post-mortem in Notion>"),
        None => "Post-mortem: _not created yet_".to_string(),
    };
    format!("{pd}  ·  {notion}")
}

/// The pinned summary in the incident channel (`text`, `blocks`).
pub fn summary(
    incident: &Incident,
    level: Option<&SeverityLevel>,
    tz: Tz,
    show_pagerduty: bool,
    show_notion: bool,
) -> (String, Value) {
    let closed = incident.status == crate::incident::Status::Closed;
    let resolved = closed
        || matches!(
            incident.status,
            crate::incident::Status::Resolved | crate::incident::Status::Resolving
        );
    let sev = severity_label(level, incident.severity.as_str());
    let emoji = if closed {
        ":lock:"
    } else if resolved {
        ":white_check_mark:"
    } else {
        ":rotating_light:"
    };
    let header = clamp(
        &format!("{sev}: {}", one_line(&incident.title)),
        HEADER_MAX - 4,
    );
    let status = if resolved {
        let closed_word = if closed { "Closed after review. " } else { "" };
        match (incident.resolved_at, &incident.resolved_by) {
            (Some(at), Some(by)) => format!(
                "{closed_word}Resolved by <@{by}> {} (lasted {})",
                slack_time(at, tz),
                human_duration(at - incident.declared_at)
            ),
            _ if closed => "Closed".to_string(),
            _ => "Resolved".to_string(),
        }
    } else {
        let last = incident
            .last_update_at
            .map(|at| format!(" (last update {})", slack_time(at, tz)))
            .unwrap_or_default();
        format!("{}{last}", incident.phase.label())
    };
    let sev_text = match level {
        Some(l) => format!("{} · {}", l.label, escape_mrkdwn(&l.description)),
        None => sev.clone(),
    };
    let commander = incident
        .roles
        .holder(Role::Commander)
        .map(|c| format!("<@{c}>"))
        .unwrap_or_else(|| "_nobody yet_".into());
    let fields = vec![
        md(clamp(&format!("*Status*\n{status}"), FIELD_MAX)),
        md(clamp(&format!("*Severity*\n{sev_text}"), FIELD_MAX)),
        md(format!("*Reporter*\n<@{}>", incident.reporter)),
        md(format!("*Commander*\n{commander}")),
        md(format!(
            "*Declared*\n{}",
            slack_time(incident.declared_at, tz)
        )),
        md(format!("*Incident*\n`{}`", incident.name)),
    ];
    let description = if incident.description.trim().is_empty() {
        "_No description given._".to_string()
    } else {
        escape_and_clamp(&incident.description, SECTION_MAX - 20)
    };
    let mut blocks: Vec<SlackBlock> = vec![
        section(format!("{emoji} *{}*", escape_mrkdwn(&header))),
        SlackSectionBlock::new().with_fields(fields).into(),
        section(format!("*Description*\n{description}")),
    ];
    let roles: Vec<String> = Role::ALL
        .into_iter()
        .filter(|r| *r != Role::Commander)
        .map(|r| {
            let who = incident
                .roles
                .holder(r)
                .map(|u| format!("<@{u}>"))
                .unwrap_or_else(|| "_incident command_".into());
            format!("{}: {who}", r.label())
        })
        .collect();
    blocks.push(section(format!("*Roles*\n{}", roles.join("  ·  "))));
    if let Some(r) = incident
        .resolution
        .as_deref()
        .filter(|r| !r.trim().is_empty())
    {
        blocks.push(section(format!(
            "*Resolution*\n{}",
            escape_and_clamp(r, SECTION_MAX - 20)
        )));
    }
    if show_pagerduty || show_notion {
        let mut line = links_line(incident);
        if !show_pagerduty {
            line = line.split("  ·  ").nth(1).unwrap_or_default().to_string();
        } else if !show_notion {
            line = line.split("  ·  ").next().unwrap_or_default().to_string();
        }
        blocks.push(section(format!("*Links*\n{line}")));
    }
    if !resolved {
        blocks.push(context(
            "Post updates in this channel. When it is over, run `/resolve-incident` here.",
        ));
    }
    let text = clamp(
        &format!(
            "{emoji} {sev} incident {}: {} ({})",
            incident.name,
            escape_mrkdwn(&one_line(&incident.title)),
            if closed {
                "closed"
            } else if resolved {
                "resolved"
            } else {
                incident.phase.as_str()
            }
        ),
        FALLBACK_MAX,
    );
    (text, to_json(&blocks))
}

/// The resolution message posted in the incident channel.
pub fn resolution_post(incident: &Incident, tz: Tz) -> (String, Value) {
    let by = incident
        .resolved_by
        .as_ref()
        .map(|u| u.as_str())
        .unwrap_or("someone");
    let at = incident.resolved_at.unwrap_or_else(Utc::now);
    let lasted = human_duration(at - incident.declared_at);
    let mut text = format!(
        ":white_check_mark: *Incident resolved* by <@{by}> {}. It lasted *{lasted}*.",
        slack_time(at, tz)
    );
    match incident
        .resolution
        .as_deref()
        .filter(|r| !r.trim().is_empty())
    {
        Some(r) => text.push_str(&format!(
            "\n*Summary:* {}",
            escape_and_clamp(r, SECTION_MAX - 200)
        )),
        None => text.push_str("\n_No resolution summary was given._"),
    }
    text.push_str(&format!(
        "\nThe channel is now `#{}` and stays open for follow-up.",
        incident.name.resolved_channel_name()
    ));
    let fallback = clamp(
        &format!("Incident resolved by <@{by}> after {lasted}"),
        FALLBACK_MAX,
    );
    (fallback, to_json(&vec![section(text)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_severities;
    use crate::incident::Status;
    use crate::slack::ui::fixtures::incident;
    #[test]
    fn topic_fits_slack_limit() {
        let mut inc = incident();
        inc.title = "x".repeat(400);
        let t = topic(&inc, None, false);
        assert!(t.chars().count() <= TOPIC_MAX);
        assert!(t.ends_with('…'));
    }

    #[test]
    fn the_channel_surfaces_match_their_snapshots() {
        let mut inc = incident();
        let levels = default_severities();
        insta::assert_json_snapshot!(
            "summary_open",
            summary(&inc, levels.first(), Tz::UTC, true, true).1
        );
        insta::assert_snapshot!("topic_open", topic(&inc, levels.first(), false));
        inc.status = Status::Resolved;
        inc.resolved_at = Some(inc.declared_at + chrono::Duration::minutes(65));
        inc.resolved_by = Some("U3".into());
        inc.resolution = Some("Rolled back <!here> v42".into());
        insta::assert_json_snapshot!("resolution_post", resolution_post(&inc, Tz::UTC));
    }
}
