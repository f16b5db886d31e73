//! Closing and reopening: the close form, the posts in the incident channel, and the refusals.

use chrono::NaiveDate;
use serde_json::{json, Value};
use slack_morphism::prelude::*;

use super::*;
use crate::incident::text::{clamp, escape_and_clamp, one_line};
use crate::incident::{Incident, Status, UserId};

/// Callback id of the close form, and its inputs.
pub const CLOSE_CALLBACK: &str = "incd_close";
pub const REVIEW_DATE_BLOCK: &str = "review_date_block";
pub const REVIEW_DATE_ACTION: &str = "review_date";
pub const REVIEW_NOTES_BLOCK: &str = "review_notes_block";
pub const REVIEW_NOTES_ACTION: &str = "review_notes";
/// Longest review notes accepted (they go into the post-mortem and one Slack section).
pub const MAX_REVIEW_NOTES_CHARS: usize = 2500;

fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": clamp(text, FALLBACK_MAX)})
}

/// The close form: when the review was held (today by default) and its notes.
pub fn close_modal(incident: &Incident, today: NaiveDate, private_metadata: &str) -> Value {
    let date = SlackBlockDatePickerElement::new()
        .with_action_id(REVIEW_DATE_ACTION.into())
        .with_initial_date(today.format("%Y-%m-%d").to_string());
    let notes = SlackBlockPlainTextInputElement::new()
        .with_action_id(REVIEW_NOTES_ACTION.into())
        .with_multiline(true)
        .with_max_length(MAX_REVIEW_NOTES_CHARS as u64)
        .with_placeholder(pt("What did the review decide?"));
    let blocks: Vec<SlackBlock> = vec![
        section(format!(
            "Close *{}*: {}?\nThe post-mortem records the review, the announcements say closed, and the channel is archived. Follow-ups stay open until they are done.",
            incident.name,
            escape_and_clamp(&one_line(&incident.title), 200),
        )),
        SlackInputBlock::new(pt("Review held on"), date.into())
            .with_block_id(REVIEW_DATE_BLOCK.into())
            .into(),
        SlackInputBlock::new(pt("Review notes"), notes.into())
            .with_block_id(REVIEW_NOTES_BLOCK.into())
            .with_optional(true)
            .into(),
    ];
    let view = SlackView::Modal(
        SlackModalView::new(pt("Close incident"), blocks)
            .with_submit(pt("Close"))
            .with_close(pt("Cancel"))
            .with_callback_id(CLOSE_CALLBACK.into())
            .with_private_metadata(private_metadata.to_string()),
    );
    to_json(&view)
}

/// The post in the incident channel when it is closed.
pub fn close_post(by: &UserId, review_date: Option<NaiveDate>, notes: &str) -> (String, Value) {
    let date = review_date
        .map(|d| format!(" The review was held on {}.", d.format("%Y-%m-%d")))
        .unwrap_or_default();
    let text = format!(":lock: Incident closed by <@{by}>.{date} This channel is archived next; open follow-ups stay tracked.");
    let mut blocks = vec![section(text.clone())];
    if !notes.trim().is_empty() {
        blocks.push(section(format!(
            "*Review notes*\n{}",
            escape_and_clamp(notes, SECTION_MAX - 20)
        )));
    }
    (clamp(&text, FALLBACK_MAX), to_json(&blocks))
}

/// Slack refused to archive the channel (e.g. only admins may archive in this workspace).
pub fn archive_refused(code: &str) -> String {
    format!(
        ":warning: The incident is closed, but Slack would not let incd archive this channel ({}). Please ask a workspace admin to archive it.",
        escape_and_clamp(code, 60)
    )
}

/// The post in the incident channel when it is reopened.
pub fn reopened_post() -> String {
    ":rotating_light: Incident reopened: back to investigating. Run `/resolve-incident` here when it is over again.".to_string()
}

/// `/incident close` in an incident that cannot be closed now.
pub fn close_refused(incident: &Incident) -> Value {
    ephemeral(&match incident.status {
        Status::Closed => format!("Incident `{}` is already closed.", incident.name),
        Status::Resolving => format!(
            "Incident `{}` is still being resolved; try `/incident close` again in a moment.",
            incident.name
        ),
        _ => format!(
            "Incident `{}` is not resolved yet. Resolve it with `/resolve-incident` first; close it after the review.",
            incident.name
        ),
    })
}

/// `/incident reopen` in an incident that is not resolved (or is closed).
pub fn reopen_refused(incident: &Incident) -> Value {
    ephemeral(&match incident.status {
        Status::Resolving => format!(
            "Incident `{}` is still being resolved; try `/incident reopen` again in a moment.",
            incident.name
        ),
        Status::Closed => format!(
            "Incident `{}` is closed and cannot be reopened. Declare a new incident with `/incident <title>`.",
            incident.name
        ),
        _ => format!(
            "Incident `{}` is not resolved, so there is nothing to reopen.",
            incident.name
        ),
    })
}

/// Ack of `/incident reopen`.
pub fn reopened_ack(incident: &Incident) -> Value {
    ephemeral(&format!(
        "Reopening `{}`: back to investigating.",
        incident.name
    ))
}

/// A change refused because the incident is closed (only its follow-ups still change).
pub fn closed_refuses(incident: &Incident, what: &str) -> Value {
    ephemeral(&format!(
        "Incident `{}` is closed: `{}` changes nothing any more. Its follow-ups can still be marked done or won't do.",
        incident.name,
        escape_and_clamp(what, 60)
    ))
}

/// The close form submitted for an incident that can no longer be closed.
pub fn close_form_refused() -> Value {
    json!({"response_action": "errors", "errors": {
        REVIEW_DATE_BLOCK: "This incident cannot be closed now (it is already closed or was reopened)."
    }})
}

/// The impact given in the resolve form, as a section for the resolution post.
pub fn impact_section(impact: &str) -> Value {
    to_json(&section(format!(
        "*Impact:* {}",
        escape_and_clamp(impact, SECTION_MAX - 20)
    )))
}

/// Action id of the *Close* button on a review reminder (value: the incident id).
pub const REVIEW_CLOSE_ACTION: &str = "incd_review_close";

/// A review reminder: the open follow-ups with their owners, and while the incident is
/// resolved but not closed, a *Close* button (in the channel).
pub fn review_reminder(
    incident: &Incident,
    open: &[crate::incident::follow_up::FollowUp],
    tz: chrono_tz::Tz,
    in_channel: bool,
) -> (String, Value) {
    let since = incident
        .resolved_at
        .map(|at| format!(" (resolved {})", slack_time(at, tz)))
        .unwrap_or_default();
    let head = if incident.status == Status::Closed {
        format!(
            ":alarm_clock: Review reminder for incident `{}`{since}: it is closed, but {} follow-up(s) are still open.",
            incident.name,
            open.len()
        )
    } else {
        format!(
            ":alarm_clock: Review reminder for incident `{}`{since}: hold the post-incident review, then close it with `/incident close`. Open follow-ups: {}.",
            incident.name,
            open.len()
        )
    };
    let mut blocks = vec![section(head.clone())];
    let lines: Vec<String> = open
        .iter()
        .take(40)
        .map(|f| {
            let owner = f
                .owner
                .as_ref()
                .map(|o| format!("<@{o}>"))
                .unwrap_or_else(|| "_no owner_".into());
            let due = f
                .due
                .map(|d| format!(" · due {}", d.format("%Y-%m-%d")))
                .unwrap_or_default();
            format!(
                "• *{}* {} · {owner}{due}",
                f.reference(),
                escape_and_clamp(&one_line(&f.title), 200)
            )
        })
        .collect();
    if !lines.is_empty() {
        blocks.push(section(lines.join("\n")));
    }
    if in_channel && incident.status == Status::Resolved {
        blocks.push(
            SlackActionsBlock::new(vec![SlackBlockButtonElement::new(pt("Close incident"))
                .with_action_id(REVIEW_CLOSE_ACTION.into())
                .with_value(incident.id.to_string())
                .into()])
            .into(),
        );
    }
    (clamp(&head, FALLBACK_MAX), to_json(&blocks))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::incident;
    use super::*;

    #[test]
    fn close_surfaces() {
        let mut inc = incident();
        inc.status = Status::Resolved;
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let mut closed = inc.clone();
        closed.status = Status::Closed;
        let mut open = inc.clone();
        open.status = Status::Open;
        insta::assert_json_snapshot!(
            "close_surfaces",
            json!({
                "modal": close_modal(&inc, today, r#"{"i":7}"#),
                "post": close_post(&"U3".into(), Some(today), "<!channel> we agreed & moved on"),
                "archive_refused": archive_refused("restricted_action"),
                "reopened": reopened_post(),
                "close_refused_open": close_refused(&open),
                "close_refused_closed": close_refused(&closed),
                "reopen_refused_closed": reopen_refused(&closed),
                "reopen_refused_open": reopen_refused(&open),
                "reopened_ack": reopened_ack(&inc),
                "closed_refuses": closed_refuses(&closed, "/resolve-incident"),
                "form_refused": close_form_refused(),
            "reminder": review_reminder(&inc, &[crate::incident::follow_up::FollowUp::new(1, "<!here> canary", Some("U2".into()), None)], chrono_tz::UTC, true),
            "reminder_closed_dm": review_reminder(&closed, &[], chrono_tz::UTC, false),
            })
        );
    }

    #[test]
    fn review_notes_cannot_mention_anyone() {
        let (_, blocks) = close_post(&"U3".into(), None, "<!channel> <@U9>");
        assert!(!blocks.to_string().contains("<!channel>"));
        assert!(!blocks.to_string().contains("<@U9>"));
    }
}
