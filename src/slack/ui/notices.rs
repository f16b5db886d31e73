//! Integration notices in the incident channel: failing (with *Retry now*), gave up, recovered;
//! and the words incd adds for integrations elsewhere (bookmark titles, timeline entries).

use serde_json::Value;
use slack_morphism::prelude::*;

use super::*;
use crate::incident::ids::IncidentId;
use crate::incident::text::{clamp, escape_and_clamp};
use crate::slack::meta::RetryButton;

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
        .with_value(
            RetryButton {
                incident: IncidentId(incident_id),
                step: step.to_string(),
            }
            .encode(),
        )
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

/// Title of the bookmark linking an integration's page in the incident channel.
pub fn bookmark_title(which: Integration) -> &'static str {
    match which {
        Integration::PagerDuty => "PagerDuty incident",
        Integration::Notion => "Post-mortem (Notion)",
    }
}

/// Timeline entry when the on-call engineer was paged.
pub const TIMELINE_PAGED: &str = "On-call engineer paged through PagerDuty";
/// Timeline entry when the post-mortem page was created.
pub const TIMELINE_POSTMORTEM: &str = "Post-mortem page created in Notion";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_match_their_snapshots() {
        for which in [Integration::PagerDuty, Integration::Notion] {
            let name = which.name();
            insta::assert_json_snapshot!(
                format!("failing_{name}"),
                integration_failing(which, "HTTP 503 <!channel>", 30, 7, "page")
            );
            insta::assert_json_snapshot!(
                format!("gave_up_{name}"),
                integration_gave_up(which, "refused", 7, "page")
            );
            insta::assert_json_snapshot!(
                format!("recovered_{name}"),
                [
                    integration_recovered(which, Some("https://example.com/x")),
                    integration_recovered(which, None),
                    bookmark_title(which).to_string()
                ]
            );
        }
        insta::assert_json_snapshot!("timeline", [TIMELINE_PAGED, TIMELINE_POSTMORTEM]);
    }

    #[test]
    fn the_retry_button_carries_its_incident_and_step() {
        let (_, blocks) = integration_gave_up(Integration::Notion, "x", 42, "postmortem");
        let value = blocks[1]["elements"][0]["value"].as_str().unwrap();
        let b = RetryButton::decode(value).unwrap();
        assert_eq!(
            (b.incident, b.step.as_str()),
            (IncidentId(42), "postmortem")
        );
    }
}
