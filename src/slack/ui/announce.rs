//! The broadcast channels: the announcement and its thread reply when resolved.

use chrono_tz::Tz;
use serde_json::Value;

use super::*;
use crate::incident::text::{clamp, escape_and_clamp, one_line};
use crate::incident::SeverityLevel;
use crate::incident::{human_duration, Incident, MAX_TITLE_CHARS};

/// The announcement in a broadcast channel; `resolved` renders the edited version.
pub fn announcement(incident: &Incident, level: Option<&SeverityLevel>, tz: Tz) -> (String, Value) {
    let sev = severity_label(level, incident.severity.as_str());
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
    let closed = incident.status == crate::incident::Status::Closed;
    let (main, fallback) = if closed {
        let lasted = incident
            .resolved_at
            .map(|at| human_duration(at - incident.declared_at))
            .unwrap_or_default();
        (
            format!(
                ":lock: *CLOSED* · *{sev}* · {title}\nResolved after {lasted}; reviewed and closed. The record stays in {channel}."
            ),
            format!("CLOSED {sev} incident: {title}"),
        )
    } else if resolved {
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
                ":rotating_light: *{sev} incident declared* · {title}\nJoin {channel} · reported by <@{}> · *{}*{}",
                incident.reporter,
                incident.phase.label(),
                incident
                    .roles
                    .holder(crate::incident::roles::Role::Commander)
                    .map(|c| format!(" · commander <@{c}>"))
                    .unwrap_or_default()
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
    let by = incident
        .resolved_by
        .as_ref()
        .map(|u| u.as_str())
        .unwrap_or("someone");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_severities;
    use crate::incident::Status;
    use crate::slack::ui::fixtures::{all_text, incident};
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
    fn announcements_match_their_snapshots() {
        let mut inc = incident();
        let levels = default_severities();
        insta::assert_json_snapshot!(
            "announcement_open",
            announcement(&inc, levels.first(), Tz::UTC).1
        );
        inc.status = Status::Resolved;
        inc.resolved_at = Some(inc.declared_at + chrono::Duration::minutes(65));
        inc.resolved_by = Some("U3".into());
        inc.resolution = Some("Rolled back".into());
        insta::assert_snapshot!(
            "announcement_resolved_reply",
            announcement_resolved_reply(&inc)
        );
    }
}
