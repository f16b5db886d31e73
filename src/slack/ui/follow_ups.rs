//! Follow-ups: the post in the incident channel, the owner's DM with *Done* / *Won't do*, the
//! ephemeral list, the answers to `/incident follow-up|done|wontdo`, and the line on the pinned
//! summary.

use serde_json::{json, Value};
use slack_morphism::prelude::*;

use super::*;
use crate::incident::follow_up::{FollowUp, FollowUpState};
use crate::incident::text::{clamp, escape_and_clamp, escape_mrkdwn, one_line};
use crate::incident::{Incident, IncidentId};
use crate::slack::meta::FollowUpButton;

/// Action ids of the follow-up buttons.
pub const FOLLOW_UP_DONE_ACTION: &str = "incd_follow_up_done";
pub const FOLLOW_UP_WONTDO_ACTION: &str = "incd_follow_up_wontdo";

fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": clamp(text, FALLBACK_MAX)})
}

fn title(f: &FollowUp) -> String {
    escape_and_clamp(&one_line(&f.title), 300)
}

/// `owner <@U…> · due 2027-01-15`, or what is missing.
fn details(f: &FollowUp) -> String {
    let owner = f
        .owner
        .as_ref()
        .map(|o| format!("<@{o}>"))
        .unwrap_or_else(|| "_no owner_".into());
    let due = f
        .due
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "_no due date_".into());
    format!("Owner: {owner} · Due: {due}")
}

fn buttons(incident: IncidentId, f: &FollowUp) -> SlackBlock {
    let value = FollowUpButton {
        incident,
        follow_up: f.reference(),
    }
    .encode();
    SlackActionsBlock::new(vec![
        SlackBlockButtonElement::new(pt("Done"))
            .with_action_id(FOLLOW_UP_DONE_ACTION.into())
            .with_value(value.clone())
            .into(),
        SlackBlockButtonElement::new(pt("Won't do"))
            .with_action_id(FOLLOW_UP_WONTDO_ACTION.into())
            .with_value(value)
            .into(),
    ])
    .into()
}

/// Ack of `/incident follow-up`: the number it got.
pub fn follow_up_added(f: &FollowUp) -> Value {
    ephemeral(&format!(
        "Added follow-up *{}*: {}. {}",
        f.reference(),
        title(f),
        details(f)
    ))
}

/// The post in the incident channel for a new follow-up.
pub fn follow_up_post(f: &FollowUp) -> (String, Value) {
    let text = format!(
        ":memo: New follow-up *{}*: {}\n{}",
        f.reference(),
        title(f),
        details(f)
    );
    let blocks = vec![
        section(text.clone()),
        context("Close it with `/incident done F-<n>` or `/incident wontdo F-<n>`; list them with `/incident follow-ups`."),
    ];
    (clamp(&text, FALLBACK_MAX), to_json(&blocks))
}

/// The DM to a follow-up's owner, with *Done* / *Won't do*.
pub fn follow_up_dm(incident: &Incident, f: &FollowUp) -> (String, Value) {
    let text = format!(
        ":memo: You own follow-up *{}* of incident `{}` ({}): {}\n{}",
        f.reference(),
        incident.name,
        escape_and_clamp(&one_line(&incident.title), 200),
        title(f),
        details(f)
    );
    let blocks = vec![section(text.clone()), buttons(incident.id, f)];
    (clamp(&text, FALLBACK_MAX), to_json(&blocks))
}

/// `/incident follow-ups`: every follow-up with its state, open ones with their buttons.
pub fn follow_up_list(incident: &Incident, follow_ups: &[FollowUp]) -> Value {
    if follow_ups.is_empty() {
        return ephemeral(&format!(
            "Incident `{}` has no follow-ups yet. Add one with `/incident follow-up <title> [owner @user] [due YYYY-MM-DD]`.",
            incident.name
        ));
    }
    let open = follow_ups.iter().filter(|f| f.is_open()).count();
    let head = format!(
        "*Follow-ups of `{}`*: {open} open of {}",
        incident.name,
        follow_ups.len()
    );
    let mut blocks = vec![section(head.clone())];
    // A message holds at most 50 blocks: the header, then two per follow-up.
    for f in follow_ups.iter().take(24) {
        blocks.push(section(format!(
            "*{}* · {} · {}\n{}",
            f.reference(),
            state_label(f.state),
            title(f),
            details(f)
        )));
        if f.is_open() {
            blocks.push(buttons(incident.id, f));
        }
    }
    if follow_ups.len() > 24 {
        blocks.push(context(format!(
            "{} more not shown.",
            follow_ups.len() - 24
        )));
    }
    json!({"response_type": "ephemeral", "text": clamp(&head, FALLBACK_MAX), "blocks": to_json(&blocks)})
}

fn state_label(s: FollowUpState) -> &'static str {
    match s {
        FollowUpState::Open => ":white_circle: Open",
        FollowUpState::Done => ":white_check_mark: Done",
        FollowUpState::WontDo => ":no_entry_sign: Won't do",
    }
}

/// Answer to closing a follow-up (command or button).
pub fn follow_up_closed(incident: &Incident, f: &FollowUp, changed: bool) -> Value {
    let verb = match f.state {
        FollowUpState::Done => "done",
        FollowUpState::WontDo => "won't do",
        FollowUpState::Open => "open",
    };
    if changed {
        ephemeral(&format!(
            "Marked *{}* of `{}` {verb}: {}",
            f.reference(),
            incident.name,
            title(f)
        ))
    } else {
        ephemeral(&format!(
            "*{}* of `{}` was already marked {verb}. Nothing changed.",
            f.reference(),
            incident.name
        ))
    }
}

/// A refused follow-up change or a command that could not be read: the reason, as is.
pub fn follow_up_refused(reason: &str) -> Value {
    ephemeral(&format!(":warning: {}", escape_mrkdwn(reason)))
}

/// An `/incident` subcommand typed outside an incident channel.
pub fn subcommand_outside_incident(name: &str) -> Value {
    ephemeral(&format!(
        "`/incident {name}` only works inside an incident channel (one named `#incd-…`). Open the incident's channel and run it there."
    ))
}

/// The line on the pinned summary.
pub fn follow_ups_line(open: usize, total: usize) -> SlackBlock {
    section(format!("*Follow-ups*\n{open} open of {total}"))
}

/// App Home's "Awaiting review": resolved, not closed incidents with their open follow-ups
/// (blocks to append to the home view; at most `max_blocks`).
pub fn home_awaiting_review(
    rows: &[crate::store::AwaitingReview],
    max_blocks: usize,
) -> Vec<Value> {
    let mut blocks = vec![to_json(&section("*Awaiting review*".to_string()))];
    if rows.is_empty() {
        blocks.push(to_json(&context(
            "No resolved incident is waiting for its review.",
        )));
        return blocks;
    }
    let room = max_blocks.saturating_sub(2).max(1);
    for r in rows.iter().take(room) {
        let channel = r
            .channel
            .as_ref()
            .map(|c| format!("<#{c}>"))
            .unwrap_or_else(|| format!("`{}`", r.name));
        blocks.push(to_json(&section(format!(
            "{channel} · {} · {} open follow-up(s)",
            escape_and_clamp(&one_line(&r.title), 200),
            r.open_follow_ups
        ))));
    }
    if rows.len() > room {
        blocks.push(to_json(&context(format!("and {} more", rows.len() - room))));
    }
    blocks
}

/// App Home's "Your open follow-ups", with *Done* / *Won't do* (the same buttons as the DM).
pub fn home_your_follow_ups(rows: &[crate::store::OwnedFollowUp], max_blocks: usize) -> Vec<Value> {
    let mut blocks = vec![to_json(&section("*Your open follow-ups*".to_string()))];
    if rows.is_empty() {
        blocks.push(to_json(&context("You own no open follow-up.")));
        return blocks;
    }
    // Two blocks per follow-up, one kept for "and N more".
    let room = (max_blocks.saturating_sub(2) / 2).max(1);
    for r in rows.iter().take(room) {
        blocks.push(to_json(&section(format!(
            "*{}* of `{}`: {}\n{}",
            r.follow_up.reference(),
            r.name,
            title(&r.follow_up),
            details(&r.follow_up)
        ))));
        blocks.push(to_json(&buttons(r.incident, &r.follow_up)));
    }
    if rows.len() > room {
        blocks.push(to_json(&context(format!("and {} more", rows.len() - room))));
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::incident;
    use super::*;
    use chrono::NaiveDate;

    fn follow_ups() -> Vec<FollowUp> {
        let mut done = FollowUp::new(2, "Write the runbook", None, None);
        done.state = FollowUpState::Done;
        vec![
            FollowUp::new(
                1,
                "<!channel> add an alert & a <https://evil|dashboard>",
                Some("U2".into()),
                NaiveDate::from_ymd_opt(2027, 1, 15),
            ),
            done,
        ]
    }

    #[test]
    fn follow_up_surfaces() {
        let inc = incident();
        let fs = follow_ups();
        insta::assert_json_snapshot!(
            "follow_up_surfaces",
            json!({
                "added": follow_up_added(&fs[0]),
                "post": follow_up_post(&fs[0]),
                "dm": follow_up_dm(&inc, &fs[0]),
                "list": follow_up_list(&inc, &fs),
                "empty_list": follow_up_list(&inc, &[]),
                "closed": follow_up_closed(&inc, &fs[1], true),
                "closed_again": follow_up_closed(&inc, &fs[1], false),
                "refused": follow_up_refused("No follow-up F-9 in this incident."),
                "outside": subcommand_outside_incident("follow-up"),
                "summary_line": to_json(&follow_ups_line(1, 2)),
            })
        );
    }

    #[test]
    fn typed_text_never_becomes_a_mention_or_a_link() {
        let inc = incident();
        let fs = follow_ups();
        for v in [
            follow_up_post(&fs[0]).1,
            follow_up_dm(&inc, &fs[0]).1,
            follow_up_list(&inc, &fs),
        ] {
            let s = v.to_string();
            assert!(!s.contains("<!channel>"), "{s}");
            assert!(!s.contains("<https://evil"), "{s}");
        }
    }

    #[test]
    fn app_home_sections() {
        use crate::store::{AwaitingReview, OwnedFollowUp};
        let fs = follow_ups();
        let awaiting = vec![AwaitingReview {
            incident: IncidentId(7),
            name: "20261121-calm-otter".into(),
            title: "<!channel> DB down".into(),
            channel: Some("C123".into()),
            resolved_at: None,
            open_follow_ups: 1,
        }];
        let mine = vec![OwnedFollowUp {
            incident: IncidentId(7),
            name: "20261121-calm-otter".into(),
            follow_up: fs[0].clone(),
        }];
        insta::assert_json_snapshot!(
            "app_home_sections",
            json!({
                "awaiting": home_awaiting_review(&awaiting, 10),
                "awaiting_none": home_awaiting_review(&[], 10),
                "mine": home_your_follow_ups(&mine, 10),
                "mine_none": home_your_follow_ups(&[], 10),
            })
        );
        let many: Vec<OwnedFollowUp> = (0..30).map(|_| mine[0].clone()).collect();
        let blocks = home_your_follow_ups(&many, 10);
        assert!(blocks.len() <= 10, "{}", blocks.len());
        assert!(blocks.last().unwrap().to_string().contains("more"));
    }

    #[test]
    fn only_open_follow_ups_get_buttons_in_the_list() {
        let inc = incident();
        let list = follow_up_list(&inc, &follow_ups());
        let actions = list["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "actions")
            .count();
        assert_eq!(actions, 1);
    }
}
