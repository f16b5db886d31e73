//! Every word incd says in Slack, one file per surface: the forms ([`modals`]), the incident
//! channel ([`summary`]: pinned summary, topic, resolution), the broadcast channels
//! ([`announce`]), replies to one person ([`replies`]) and integration notices ([`notices`]).
//!
//! Pure functions from domain values to Block Kit JSON (built with slack-morphism's models). All
//! user-typed text is escaped and clamped here ([`crate::incident::text`]), so nothing a person
//! types can become a mention or a disguised link, and no field exceeds Slack's limits. Each
//! surface is snapshot-tested.

pub mod announce;
pub mod close;
pub mod follow_ups;
pub mod lifecycle;
pub mod modals;
pub mod notices;
pub mod replies;
pub mod summary;

pub use announce::*;
pub use close::*;
pub use follow_ups::*;
pub use modals::*;
pub use notices::*;
pub use replies::*;
pub use summary::*;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use slack_morphism::prelude::*;

use crate::incident::text::clamp;
use crate::incident::SeverityLevel;

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
/// The resolve form's optional impact (issue 12): it goes into the post-mortem.
pub const IMPACT_BLOCK: &str = "impact_block";
pub const IMPACT_ACTION: &str = "impact";
/// Longest impact accepted (one Notion rich text holds 2000 characters).
pub const MAX_IMPACT_CHARS: usize = 2000;
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

pub(crate) fn pt(text: impl Into<String>) -> SlackBlockPlainTextOnly {
    SlackBlockPlainText::new(text.into()).into()
}

pub(crate) fn md(text: impl Into<String>) -> SlackBlockText {
    SlackBlockText::MarkDown(SlackBlockMarkDownText::new(text.into()))
}

pub(crate) fn section(text: impl Into<String>) -> SlackBlock {
    SlackSectionBlock::new()
        .with_text(md(clamp(&text.into(), SECTION_MAX)))
        .into()
}

pub(crate) fn context(text: impl Into<String>) -> SlackBlock {
    SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
        SlackBlockMarkDownText::new(clamp(&text.into(), SECTION_MAX)),
    )])
    .into()
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Value {
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

pub(crate) fn severity_label(level: Option<&SeverityLevel>, id: &str) -> String {
    level
        .map(|l| l.label.clone())
        .unwrap_or_else(|| id.to_uppercase())
}

pub(crate) fn severity_option(
    level: &SeverityLevel,
) -> SlackBlockChoiceItem<SlackBlockPlainTextOnly> {
    let text = clamp(
        &format!("{} · {}", level.label, level.description),
        OPTION_TEXT_MAX,
    );
    SlackBlockChoiceItem::new(pt(text), level.id.clone())
}

#[cfg(test)]
pub(crate) mod fixtures {
    use chrono::{DateTime, Utc};

    use crate::incident::{Incident, IncidentName, Status};

    /// An incident whose every text tries to mention, link or overflow.
    pub fn incident() -> Incident {
        Incident {
            id: crate::incident::IncidentId(7),
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
            phase: crate::incident::command::UpdateStatus::Investigating,
            roles: crate::incident::roles::Assignments::with_commander("U2".into()),
            last_update_at: None,
        }
    }

    pub fn all_text(v: &serde_json::Value) -> String {
        v.to_string()
    }
}
