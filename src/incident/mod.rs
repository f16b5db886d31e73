//! The domain: incidents, their names, severities and lifecycle. No I/O here.

pub mod command;
pub mod follow_up;
pub mod ids;
pub mod lifecycle;
pub mod naming;
pub mod nudge;
pub mod postmortem;
pub mod review;
pub mod roles;
pub mod severity;
pub mod text;
pub mod timeline;

use chrono::{DateTime, Utc};

pub use ids::{ChannelId, IncidentId, MessageTs, UserId};
pub use naming::IncidentName;
pub use severity::{Severity, SeverityLevel};

/// Longest title accepted (the modal enforces it too; topics and summaries clamp further).
pub const MAX_TITLE_CHARS: usize = 150;
/// Longest description accepted by the modal.
pub const MAX_DESCRIPTION_CHARS: usize = 3000;
/// Longest resolution summary accepted by the modal.
pub const MAX_SUMMARY_CHARS: usize = 3000;

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Submitted; the declare workflow is creating its channel and the rest.
    Declaring,
    /// Declared and being worked on.
    Open,
    /// Someone confirmed the resolution; the resolve workflow is running.
    Resolving,
    Resolved,
    /// Declaring failed for good (the channel could not be created); nothing else was done.
    Failed,
    /// Formally closed after its review: final, except for its follow-ups.
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Declaring => "declaring",
            Status::Open => "open",
            Status::Resolving => "resolving",
            Status::Resolved => "resolved",
            Status::Failed => "failed",
            Status::Closed => "closed",
        }
    }

    /// The stored form back; `None` for anything this incd does not know (a corrupt row).
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "declaring" => Status::Declaring,
            "open" => Status::Open,
            "resolving" => Status::Resolving,
            "resolved" => Status::Resolved,
            "failed" => Status::Failed,
            "closed" => Status::Closed,
            _ => return None,
        })
    }

    /// Whether `/resolve-incident` may start a resolution from here (see [`lifecycle`]).
    pub fn can_resolve(self) -> bool {
        lifecycle::can_resolve(self)
    }
}

/// What the reporter typed into the declare form, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub commander: Option<UserId>,
}

/// Why a declare form was refused; each maps to one input block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    TitleEmpty,
    TitleTooLong,
    DescriptionTooLong,
    UnknownSeverity,
}

impl Declaration {
    /// Validate raw form values. Whitespace is trimmed; an empty title is refused.
    pub fn validate(
        title: Option<&str>,
        description: Option<&str>,
        severity: Option<&str>,
        commander: Option<&str>,
        known_severity: impl Fn(&str) -> bool,
        default_severity: &str,
    ) -> Result<Declaration, Vec<FormError>> {
        let mut errors = Vec::new();
        let title = title.map(str::trim).unwrap_or_default();
        if title.is_empty() {
            errors.push(FormError::TitleEmpty);
        } else if title.chars().count() > MAX_TITLE_CHARS {
            errors.push(FormError::TitleTooLong);
        }
        let description = description.map(str::trim).unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            errors.push(FormError::DescriptionTooLong);
        }
        let severity = severity
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(default_severity);
        if !known_severity(severity) {
            errors.push(FormError::UnknownSeverity);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Declaration {
            title: title.to_string(),
            description: description.to_string(),
            severity: Severity::from(severity),
            commander: commander
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(UserId::from),
        })
    }
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: IncidentId,
    pub name: IncidentName,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub status: Status,
    pub reporter: UserId,
    pub commander: Option<UserId>,
    /// Channel where `/incident` was typed, for the reply to the reporter.
    pub origin_channel: Option<ChannelId>,
    /// The declaring command's `response_url` (ephemeral replies to the reporter).
    pub response_url: Option<String>,
    pub declared_at: DateTime<Utc>,
    /// Set once Slack created the channel.
    pub channel_id: Option<ChannelId>,
    /// `ts` of the pinned summary message.
    pub summary_ts: Option<MessageTs>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<UserId>,
    pub resolution: Option<String>,
    pub pagerduty_key: Option<String>,
    pub pagerduty_id: Option<String>,
    pub pagerduty_url: Option<String>,
    pub notion_page_id: Option<String>,
    pub notion_url: Option<String>,
    /// Where the response stands while open (`/incident update`); investigating at first.
    pub phase: command::UpdateStatus,
    /// Who holds which role (the reporter, or whoever the declare form named, commands at first).
    pub roles: roles::Assignments,
    /// When the last status update was posted (`None`: none yet; nudges count from declare).
    pub last_update_at: Option<DateTime<Utc>>,
}

impl Incident {
    pub fn channel_name(&self) -> String {
        if matches!(self.status, Status::Resolved | Status::Closed) {
            self.name.resolved_channel_name()
        } else {
            self.name.channel_name()
        }
    }
}

/// `1h 05m`, `3m`, `2d 4h`: how long an incident lasted, for people.
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, mins) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    if days > 0 {
        format!("{days}d {hours}h {mins:02}m")
    } else if hours > 0 {
        format!("{hours}h {mins:02}m")
    } else if mins > 0 {
        format!("{mins}m")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(
        title: Option<&str>,
        severity: Option<&str>,
    ) -> Result<Declaration, Vec<FormError>> {
        Declaration::validate(
            title,
            Some("  desc "),
            severity,
            Some(""),
            |s| s.starts_with("sev"),
            "sev3",
        )
    }

    #[test]
    fn whitespace_only_title_is_refused() {
        assert_eq!(
            validate(Some("   \n\t"), None),
            Err(vec![FormError::TitleEmpty])
        );
        assert_eq!(validate(None, None), Err(vec![FormError::TitleEmpty]));
    }

    #[test]
    fn values_are_trimmed_and_defaults_applied() {
        let d = validate(Some("  DB down "), None).unwrap();
        assert_eq!(d.title, "DB down");
        assert_eq!(d.description, "desc");
        assert_eq!(d.severity.as_str(), "sev3");
        assert_eq!(d.commander, None);
    }

    #[test]
    fn unknown_severity_and_long_title_are_refused() {
        let long = "x".repeat(MAX_TITLE_CHARS + 1);
        assert_eq!(
            validate(Some(&long), Some("bogus")),
            Err(vec![FormError::TitleTooLong, FormError::UnknownSeverity])
        );
    }

    #[test]
    fn status_transitions() {
        assert!(Status::Open.can_resolve());
        assert!(!Status::Resolving.can_resolve());
        assert!(!Status::Resolved.can_resolve());
        for s in [
            Status::Declaring,
            Status::Open,
            Status::Resolving,
            Status::Resolved,
            Status::Failed,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(chrono::Duration::seconds(42)), "42s");
        assert_eq!(human_duration(chrono::Duration::seconds(185)), "3m");
        assert_eq!(human_duration(chrono::Duration::seconds(3900)), "1h 05m");
        assert_eq!(
            human_duration(chrono::Duration::seconds(86_400 * 2 + 3600 * 4)),
            "2d 4h 00m"
        );
    }
}
