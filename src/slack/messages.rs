//! Every word incd says in Slack: modals, messages, topics and ephemeral replies.
//!
//! Pure functions from domain values to Block Kit JSON (built with slack-morphism's models). All
//! user-typed text is escaped and clamped here ([`crate::incident::text`]), so nothing a person
//! types can become a mention or a disguised link, and no field exceeds Slack's limits.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};
use slack_morphism::prelude::*;

use crate::config::SeverityLevel;
use crate::incident::text::{clamp, escape_and_clamp, escape_mrkdwn, one_line};
use crate::incident::{
    human_duration, Incident, MAX_DESCRIPTION_CHARS, MAX_SUMMARY_CHARS, MAX_TITLE_CHARS,
};

/// Callback ids of our modals.
pub const DECLARE_CALLBACK: &str = "incd_declare";
pub const RESOLVE_CALLBACK: &str = "incd_resolve";
/// Block and action ids of the declare form.
pub const TITLE_BLOCK: &str = "title_block";
pub const TITLE_ACTION: &str = "title";
pub const DESCRIPTION_BLOCK: &str = "description_block";
pub const DESCRIPTION_ACTION: &str = "description";
pub const SEVERITY_BLOCK: &str = "severity_block";
pub const SEVERITY_ACTION: &str = "severity";
pub const COMMANDER_BLOCK: &str = "commander_block";
pub const COMMANDER_ACTION: &str = "commander";
/// Block and action ids of the resolve form.
pub const SUMMARY_BLOCK: &str = "summary_block";
pub const SUMMARY_ACTION: &str = "summary";
/// Action id of the "Retry now" button under an integration failure.
pub const RETRY_ACTION: &str = "incd_retry";

/// Slack limits used when rendering.
pub const TOPIC_MAX: usize = 250;
pub const SECTION_MAX: usize = 3000;
pub const FIELD_MAX: usize = 2000;
pub const HEADER_MAX: usize = 200;
pub const OPTION_TEXT_MAX: usize = 75;
/// Fallback `text` of a message; Slack truncates beyond 40,000 and `chat.update` refuses > 4,000.
pub const FALLBACK_MAX: usize = 3000;

fn pt(text: impl Into<String>) -> SlackBlockPlainTextOnly {
    SlackBlockPlainText::new(text.into()).into()
}

fn md(text: impl Into<String>) -> SlackBlockText {
    SlackBlockText::MarkDown(SlackBlockMarkDownText::new(text.into()))
}

fn section(text: impl Into<String>) -> SlackBlock {
    SlackSectionBlock::new()
        .with_text(md(clamp(&text.into(), SECTION_MAX)))
        .into()
}

fn context(text: impl Into<String>) -> SlackBlock {
    SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
        SlackBlockMarkDownText::new(clamp(&text.into(), SECTION_MAX)),
    )])
    .into()
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Slack date token: every reader sees their own time zone; `fallback` is shown in
/// `INCD_TIMEZONE` where the token cannot render.
pub fn slack_time(at: DateTime<Utc>, tz: Tz) -> String {
    let fallback = at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z");
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{fallback}>",
        at.timestamp()
    )
}

fn severity_label(level: Option<&SeverityLevel>, id: &str) -> String {
    level
        .map(|l| l.label.clone())
        .unwrap_or_else(|| id.to_uppercase())
}

fn severity_option(level: &SeverityLevel) -> SlackBlockChoiceItem<SlackBlockPlainTextOnly> {
    let text = clamp(
        &format!("{} · {}", level.label, level.description),
        OPTION_TEXT_MAX,
    );
    SlackBlockChoiceItem::new(pt(text), level.id.clone())
}

// ---------------------------------------------------------------------------------------------
// Modals

/// The declare form. `prefill` is the text typed after `/incident`.
pub fn declare_modal(
    prefill: &str,
    severities: &[SeverityLevel],
    default_severity: &str,
    private_metadata: &str,
) -> Value {
    let options: Vec<_> = severities.iter().map(severity_option).collect();
    let mut select = SlackBlockStaticSelectElement::new()
        .with_action_id(SEVERITY_ACTION.into())
        .with_options(options);
    if let Some(level) = severities.iter().find(|s| s.id == default_severity) {
        select = select.with_initial_option(severity_option(level));
    }
    let mut title_input = SlackBlockPlainTextInputElement::new()
        .with_action_id(TITLE_ACTION.into())
        .with_max_length(MAX_TITLE_CHARS as u64)
        .with_placeholder(pt("What is broken? e.g. Checkout returns errors"));
    let prefill = one_line(prefill);
    if !prefill.is_empty() {
        title_input = title_input.with_initial_value(clamp(&prefill, MAX_TITLE_CHARS));
    }
    let blocks: Vec<SlackBlock> = vec![
        SlackInputBlock::new(pt("Title"), title_input.into())
            .with_block_id(TITLE_BLOCK.into())
            .into(),
        SlackInputBlock::new(
            pt("Description"),
            SlackBlockPlainTextInputElement::new()
                .with_action_id(DESCRIPTION_ACTION.into())
                .with_multiline(true)
                .with_max_length(MAX_DESCRIPTION_CHARS as u64)
                .with_placeholder(pt("What do you see? Who is affected? Since when?"))
                .into(),
        )
        .with_block_id(DESCRIPTION_BLOCK.into())
        .with_optional(true)
        .into(),
        SlackInputBlock::new(pt("Severity"), select.into())
            .with_block_id(SEVERITY_BLOCK.into())
            .into(),
        SlackInputBlock::new(
            pt("Incident commander"),
            SlackBlockUsersSelectElement::new()
                .with_action_id(COMMANDER_ACTION.into())
                .with_placeholder(pt("Who leads the response?"))
                .into(),
        )
        .with_block_id(COMMANDER_BLOCK.into())
        .with_optional(true)
        .with_hint(pt("Leave empty if nobody has taken the lead yet."))
        .into(),
        context(
            "incd creates a channel for the incident, invites you and the responders, pages on-call and announces it.",
        ),
    ];
    let view = SlackView::Modal(
        SlackModalView::new(pt("Declare an incident"), blocks)
            .with_submit(pt("Declare"))
            .with_close(pt("Cancel"))
            .with_callback_id(DECLARE_CALLBACK.into())
            .with_private_metadata(private_metadata.to_string()),
    );
    to_json(&view)
}

/// The resolve confirmation.
pub fn resolve_modal(incident: &Incident, prefill: &str, private_metadata: &str) -> Value {
    let mut input = SlackBlockPlainTextInputElement::new()
        .with_action_id(SUMMARY_ACTION.into())
        .with_multiline(true)
        .with_max_length(MAX_SUMMARY_CHARS as u64)
        .with_placeholder(pt("What fixed it? What is left to do?"));
    let prefill = prefill.trim();
    if !prefill.is_empty() {
        input = input.with_initial_value(clamp(prefill, MAX_SUMMARY_CHARS));
    }
    let blocks: Vec<SlackBlock> = vec![
        section(format!(
            "Resolve *{}*: {}?\nThe channel is renamed to `#{}` and stays open; the announcements and the page are updated.",
            incident.name.channel_name(),
            escape_and_clamp(&incident.title, MAX_TITLE_CHARS),
            incident.name.resolved_channel_name(),
        )),
        SlackInputBlock::new(pt("Resolution summary"), input.into())
            .with_block_id(SUMMARY_BLOCK.into())
            .with_optional(true)
            .into(),
    ];
    let view = SlackView::Modal(
        SlackModalView::new(pt("Resolve incident"), blocks)
            .with_submit(pt("Resolve"))
            .with_close(pt("Cancel"))
            .with_callback_id(RESOLVE_CALLBACK.into())
            .with_private_metadata(private_metadata.to_string()),
    );
    to_json(&view)
}

/// Field errors for a refused declare form (`response_action: errors`).
pub fn declare_form_errors(errors: &[crate::incident::FormError]) -> Value {
    use crate::incident::FormError::*;
    let mut map = serde_json::Map::new();
    for e in errors {
        let (block, msg) = match e {
            TitleEmpty => (
                TITLE_BLOCK,
                "Give the incident a title: one line saying what is broken.",
            ),
            TitleTooLong => (
                TITLE_BLOCK,
                "Keep the title under 150 characters; put details in the description.",
            ),
            DescriptionTooLong => (
                DESCRIPTION_BLOCK,
                "The description is limited to 3000 characters.",
            ),
            UnknownSeverity => (SEVERITY_BLOCK, "Pick one of the listed severities."),
        };
        map.insert(block.to_string(), Value::String(msg.to_string()));
    }
    json!({"response_action": "errors", "errors": map})
}

/// Field error on the declare form when the store refused the incident.
pub fn declare_not_saved() -> Value {
    json!({"response_action": "errors", "errors": {TITLE_BLOCK: "incd could not save the incident (storage error). Nothing was created; please submit again."}})
}

/// Field error on the declare form when every name for today is used.
pub fn no_unused_name() -> Value {
    json!({"response_action": "errors", "errors": {TITLE_BLOCK: "incd found no unused incident name for today. Add words to the word lists, then submit again."}})
}

/// Field error on the resolve form when the store refused the resolution.
pub fn resolution_not_saved() -> Value {
    json!({"response_action": "errors", "errors": {SUMMARY_BLOCK: "incd could not save the resolution (storage error). Nothing changed; please submit again."}})
}

/// Field error on the resolve form when someone else resolved first.
pub fn resolve_form_already_resolved() -> Value {
    json!({"response_action": "errors", "errors": {SUMMARY_BLOCK: "This incident has already been resolved."}})
}

// ---------------------------------------------------------------------------------------------
// Incident channel

/// Channel topic: severity, status, title; one line, at most 250 characters, escaped like any
/// other text Slack stores.
pub fn topic(incident: &Incident, level: Option<&SeverityLevel>, resolved: bool) -> String {
    let status = if resolved {
        "Resolved"
    } else {
        "Investigating"
    };
    escape_and_clamp(
        &format!(
            "{} | {} | {}",
            severity_label(level, &incident.severity),
            status,
            one_line(&incident.title)
        ),
        TOPIC_MAX,
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
    let resolved = matches!(
        incident.status,
        crate::incident::Status::Resolved | crate::incident::Status::Resolving
    );
    let sev = severity_label(level, &incident.severity);
    let emoji = if resolved {
        ":white_check_mark:"
    } else {
        ":rotating_light:"
    };
    let header = clamp(
        &format!("{sev}: {}", one_line(&incident.title)),
        HEADER_MAX - 4,
    );
    let status = if resolved {
        match (incident.resolved_at, &incident.resolved_by) {
            (Some(at), Some(by)) => format!(
                "Resolved by <@{by}> {} (lasted {})",
                slack_time(at, tz),
                human_duration(at - incident.declared_at)
            ),
            _ => "Resolved".to_string(),
        }
    } else {
        "Investigating".to_string()
    };
    let sev_text = match level {
        Some(l) => format!("{} · {}", l.label, escape_mrkdwn(&l.description)),
        None => sev.clone(),
    };
    let commander = incident
        .commander
        .as_ref()
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
            if resolved {
                "resolved"
            } else {
                "investigating"
            }
        ),
        FALLBACK_MAX,
    );
    (text, to_json(&blocks))
}

/// The resolution message posted in the incident channel.
pub fn resolution_post(incident: &Incident, tz: Tz) -> (String, Value) {
    let by = incident.resolved_by.as_deref().unwrap_or("someone");
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

// ---------------------------------------------------------------------------------------------
// Broadcast channels

/// The announcement in a broadcast channel; `resolved` renders the edited version.
pub fn announcement(incident: &Incident, level: Option<&SeverityLevel>, tz: Tz) -> (String, Value) {
    let sev = severity_label(level, &incident.severity);
    let title = escape_and_clamp(&one_line(&incident.title), MAX_TITLE_CHARS + 50);
    let channel = incident
        .channel_id
        .as_ref()
        .map(|c| format!("<#{c}>"))
        .unwrap_or_else(|| format!("#{}", incident.name.channel_name()));
    let resolved = matches!(
        incident.status,
        crate::incident::Status::Resolved | crate::incident::Status::Resolving
    );
    let (main, fallback) = if resolved {
        let lasted = incident
            .resolved_at
            .map(|at| human_duration(at - incident.declared_at))
            .unwrap_or_default();
        (
            format!(
                ":white_check_mark: *RESOLVED* · *{sev}* · {title}\nResolved after {lasted}. Follow-up in {channel}."
            ),
            format!("RESOLVED {sev} incident: {title}"),
        )
    } else {
        (
            format!(
                ":rotating_light: *{sev} incident declared* · {title}\nJoin {channel} · reported by <@{}>",
                incident.reporter
            ),
            format!("{sev} incident declared: {title}"),
        )
    };
    let blocks = vec![
        section(main),
        context(format!(
            "Declared {} · `{}`",
            slack_time(incident.declared_at, tz),
            incident.name
        )),
    ];
    (clamp(&fallback, FALLBACK_MAX), to_json(&blocks))
}

/// The thread reply under an announcement when the incident is resolved.
pub fn announcement_resolved_reply(incident: &Incident) -> String {
    let by = incident.resolved_by.as_deref().unwrap_or("someone");
    let lasted = incident
        .resolved_at
        .map(|at| human_duration(at - incident.declared_at))
        .unwrap_or_default();
    let mut text = format!("Resolved by <@{by}> after {lasted}.");
    if let Some(r) = incident
        .resolution
        .as_deref()
        .filter(|r| !r.trim().is_empty())
    {
        text.push_str(&format!(" Summary: {}", escape_and_clamp(r, SECTION_MAX)));
    }
    clamp(&text, FALLBACK_MAX)
}

// ---------------------------------------------------------------------------------------------
// Replies to people

/// Ephemeral (or DM) reply telling the reporter where the incident lives.
pub fn declared_reply(incident: &Incident) -> String {
    let channel = incident
        .channel_id
        .as_ref()
        .map(|c| format!("<#{c}>"))
        .unwrap_or_else(|| format!("#{}", incident.name.channel_name()));
    format!(
        ":rotating_light: Incident declared: *{}*. The response happens in {channel}; you have been invited.",
        escape_and_clamp(&one_line(&incident.title), MAX_TITLE_CHARS + 50)
    )
}

/// Reply when declaring failed for good.
pub fn declare_failed_reply(title: &str, reason: &str) -> String {
    format!(
        ":x: incd could not create the channel for *{}*: {reason}. Nothing was announced. Try `/incident` again; if it keeps failing, create a channel by hand and tell your team.",
        escape_and_clamp(&one_line(title), MAX_TITLE_CHARS + 50)
    )
}

/// Ack text for `/resolve-incident` outside an incident channel.
pub fn resolve_outside_incident() -> Value {
    ephemeral("`/resolve-incident` only works inside an incident channel (one named `#incd-…`). Open the incident's channel and run it there.")
}

/// Ack text for `/resolve-incident` in an incident already resolved.
pub fn resolve_already_resolved(incident: &Incident) -> Value {
    let by = incident
        .resolved_by
        .as_deref()
        .map(|u| format!(" by <@{u}>"))
        .unwrap_or_default();
    ephemeral(&format!(
        "This incident (`{}`) is already resolved{by}. Nothing was changed.",
        incident.name
    ))
}

/// Ack text for a command incd does not know.
pub fn unknown_command(command: &str) -> Value {
    ephemeral(&format!(
        "incd does not know `{}`. Use `/incident` to declare an incident and `/resolve-incident` in its channel to resolve it.",
        escape_mrkdwn(&clamp(command, 40))
    ))
}

/// Ack text for a command that arrives while incd shuts down.
pub fn restarting() -> Value {
    ephemeral("incd is restarting; please run the command again in a few seconds.")
}

/// Why a form did not open, when Slack says the trigger expired.
pub fn trigger_expired_reason() -> String {
    "Slack's 3-second window passed".to_string()
}

/// Ephemeral text when the form could not be opened.
pub fn modal_failed(reason: &str) -> String {
    format!(":warning: incd could not open the form ({reason}). Please run the command again.")
}

/// Ack text while the store is unavailable.
pub fn internal_error() -> Value {
    ephemeral("incd hit an internal error and changed nothing. Please try again in a moment.")
}

fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": text})
}

// ---------------------------------------------------------------------------------------------
// Integration notices

/// Which integration a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integration {
    PagerDuty,
    Notion,
}

impl Integration {
    pub fn name(self) -> &'static str {
        match self {
            Integration::PagerDuty => "PagerDuty",
            Integration::Notion => "Notion",
        }
    }
    fn doing(self) -> &'static str {
        match self {
            Integration::PagerDuty => "page the on-call engineer through PagerDuty",
            Integration::Notion => "create the post-mortem page in Notion",
        }
    }
}

fn retry_button(incident_id: i64, step: &str) -> SlackBlock {
    SlackActionsBlock::new(vec![SlackBlockButtonElement::new(pt("Retry now"))
        .with_action_id(RETRY_ACTION.into())
        .with_value(format!("{incident_id}:{step}"))
        .into()])
    .into()
}

/// Posted once when an integration first fails; incd keeps retrying.
pub fn integration_failing(
    which: Integration,
    reason: &str,
    minutes: u64,
    incident_id: i64,
    step: &str,
) -> (String, Value) {
    let text = format!(
        ":warning: incd could not {}: {}. The rest of the incident is set up. incd keeps trying for up to {minutes} minutes and will post here when it succeeds.",
        which.doing(),
        escape_and_clamp(reason, 500)
    );
    let blocks = vec![section(text.clone()), retry_button(incident_id, step)];
    (clamp(&text, FALLBACK_MAX), to_json(&blocks))
}

/// Posted when incd stops retrying.
pub fn integration_gave_up(
    which: Integration,
    reason: &str,
    incident_id: i64,
    step: &str,
) -> (String, Value) {
    let text = format!(
        ":x: incd gave up trying to {}: {}. {} Press *Retry now* to try again.",
        which.doing(),
        escape_and_clamp(reason, 500),
        match which {
            Integration::PagerDuty => "Page the on-call engineer another way now.",
            Integration::Notion => "Start the post-mortem document by hand if you need it now.",
        }
    );
    let blocks = vec![section(text.clone()), retry_button(incident_id, step)];
    (clamp(&text, FALLBACK_MAX), to_json(&blocks))
}

/// Posted when an integration succeeded after failing.
pub fn integration_recovered(which: Integration, url: Option<&str>) -> String {
    match (which, url) {
        (Integration::PagerDuty, Some(u)) => {
            format!(":white_check_mark: PagerDuty paged after all: <{u}|PagerDuty incident>.")
        }
        (Integration::PagerDuty, None) => ":white_check_mark: PagerDuty paged after all.".into(),
        (Integration::Notion, Some(u)) => {
            format!(":white_check_mark: Post-mortem created after all: <{u}|open it in Notion>.")
        }
        (Integration::Notion, None) => ":white_check_mark: Post-mortem created after all.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_severities;
    use crate::incident::{IncidentName, Status};

    fn incident() -> Incident {
        Incident {
            id: 7,
            name: IncidentName::from_stored("20261121-calm-otter"),
            title: "<!channel> DB & <https://evil.example|login> down".into(),
            description: "<@U999> said it broke 🔥 שלום".into(),
            severity: "sev1".into(),
            status: Status::Open,
            reporter: "U1".into(),
            commander: Some("U2".into()),
            origin_channel: Some("C0".into()),
            response_url: None,
            declared_at: DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            channel_id: Some("C123".into()),
            summary_ts: None,
            resolved_at: None,
            resolved_by: None,
            resolution: None,
            pagerduty_key: None,
            pagerduty_id: None,
            pagerduty_url: None,
            notion_page_id: None,
            notion_url: None,
        }
    }

    fn all_text(v: &Value) -> String {
        v.to_string()
    }

    #[test]
    fn user_text_never_becomes_a_mention_or_link() {
        let inc = incident();
        let levels = default_severities();
        let (text, blocks) = summary(&inc, levels.first(), Tz::UTC, true, true);
        let (atext, ablocks) = announcement(&inc, levels.first(), Tz::UTC);
        for s in [
            text,
            all_text(&blocks),
            atext,
            all_text(&ablocks),
            declared_reply(&inc),
        ] {
            assert!(!s.contains("<!channel>"), "{s}");
            assert!(!s.contains("<@U999>"), "{s}");
            assert!(!s.contains("<https://evil.example"), "{s}");
        }
        assert!(all_text(&blocks).contains("שלום") && all_text(&blocks).contains("🔥"));
    }

    #[test]
    fn announcement_links_the_channel_and_resolved_version_says_so() {
        let mut inc = incident();
        let (_, b) = announcement(&inc, None, Tz::UTC);
        assert!(all_text(&b).contains("<#C123>"));
        inc.status = Status::Resolved;
        inc.resolved_at = Some(inc.declared_at + chrono::Duration::minutes(65));
        inc.resolved_by = Some("U3".into());
        let (t, b) = announcement(&inc, None, Tz::UTC);
        assert!(t.starts_with("RESOLVED"));
        assert!(all_text(&b).contains("1h 05m"));
    }

    #[test]
    fn topic_fits_slack_limit() {
        let mut inc = incident();
        inc.title = "x".repeat(400);
        let t = topic(&inc, None, false);
        assert!(t.chars().count() <= TOPIC_MAX);
        assert!(t.ends_with('…'));
    }

    #[test]
    fn declare_modal_respects_modal_limits() {
        let v = declare_modal(&"y".repeat(500), &default_severities(), "sev3", "{}");
        assert_eq!(v["type"], "modal");
        assert!(v["title"]["text"].as_str().unwrap().chars().count() <= 24);
        let blocks = v["blocks"].as_array().unwrap();
        let title = &blocks[0]["element"];
        assert_eq!(
            title["initial_value"].as_str().unwrap().chars().count(),
            MAX_TITLE_CHARS
        );
        let sev = &blocks[2]["element"];
        assert_eq!(sev["initial_option"]["value"], "sev3");
        for o in sev["options"].as_array().unwrap() {
            assert!(o["text"]["text"].as_str().unwrap().chars().count() <= OPTION_TEXT_MAX);
        }
        assert!(v.get("submit").is_some());
    }

    #[test]
    fn form_errors_name_the_input_blocks() {
        let v = declare_form_errors(&[crate::incident::FormError::TitleEmpty]);
        assert_eq!(v["response_action"], "errors");
        assert!(v["errors"][TITLE_BLOCK].is_string());
    }

    #[test]
    fn rendered_messages_snapshot() {
        let inc = incident();
        let levels = default_severities();
        insta::assert_json_snapshot!(
            "summary_open",
            summary(&inc, levels.first(), Tz::UTC, true, true).1
        );
        insta::assert_json_snapshot!(
            "announcement_open",
            announcement(&inc, levels.first(), Tz::UTC).1
        );
        insta::assert_json_snapshot!(
            "declare_modal",
            declare_modal("DB down", &levels, "sev3", "{\"c\":\"C0\"}")
        );
    }
}
