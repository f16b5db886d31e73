//! The forms: declare and resolve, and the field errors they show.

use serde_json::{json, Value};
use slack_morphism::prelude::*;

use super::*;
use crate::incident::text::{clamp, escape_and_clamp, one_line};
use crate::incident::SeverityLevel;
use crate::incident::{Incident, MAX_DESCRIPTION_CHARS, MAX_SUMMARY_CHARS, MAX_TITLE_CHARS};

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
        SlackInputBlock::new(
            pt("Impact"),
            SlackBlockPlainTextInputElement::new()
                .with_action_id(IMPACT_ACTION.into())
                .with_multiline(true)
                .with_max_length(MAX_IMPACT_CHARS as u64)
                .with_placeholder(pt("Who or what was affected, how much, for how long?"))
                .into(),
        )
        .with_block_id(IMPACT_BLOCK.into())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_severities;

    use crate::slack::ui::fixtures::incident;
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
    fn forms_match_their_snapshots() {
        let levels = default_severities();
        insta::assert_json_snapshot!(
            "declare_modal",
            declare_modal("DB down", &levels, "sev3", "{\"c\":\"C0\"}")
        );
        insta::assert_json_snapshot!(
            "resolve_modal",
            resolve_modal(&incident(), "rolled back", "{\"i\":7}")
        );
        insta::assert_json_snapshot!(
            "form_errors",
            [
                declare_form_errors(&[
                    crate::incident::FormError::TitleEmpty,
                    crate::incident::FormError::UnknownSeverity
                ]),
                declare_not_saved(),
                no_unused_name(),
                resolution_not_saved(),
                resolve_form_already_resolved()
            ]
        );
    }
}
