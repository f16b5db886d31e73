//! Replies to one person: ephemeral acks of commands, the reply to the reporter (ephemeral or a
//! DM) and why a form did not open.

use serde_json::{json, Value};

use crate::incident::text::{clamp, escape_and_clamp, escape_mrkdwn, one_line};
use crate::incident::{Incident, MAX_TITLE_CHARS};

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

/// Why declaring failed: every name tried was taken in Slack.
pub fn names_taken_reason(names_tried: usize) -> String {
    format!("Slack said every name incd tried was taken ({names_tried} names)")
}

/// Why declaring failed: no unused name left in the word lists.
pub fn no_name_left_reason() -> String {
    "no unused name left for today".to_string()
}

/// Why declaring failed: the store refused the channel id.
pub fn channel_not_saved_reason(error: &impl std::fmt::Display) -> String {
    format!("store error: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::slack::ui::fixtures::{all_text, incident};

    #[test]
    fn replies_match_their_snapshots() {
        let mut inc = incident();
        let replies = vec![
            declared_reply(&inc),
            declare_failed_reply(&inc.title, &names_taken_reason(5)),
            declare_failed_reply(&inc.title, &no_name_left_reason()),
            declare_failed_reply(&inc.title, &channel_not_saved_reason(&"disk full")),
            modal_failed(&trigger_expired_reason()),
        ];
        insta::assert_json_snapshot!("replies", replies);
        inc.resolved_by = Some("U3".into());
        insta::assert_json_snapshot!(
            "command_acks",
            [
                resolve_outside_incident(),
                resolve_already_resolved(&inc),
                unknown_command("/incidnet <!channel>"),
                internal_error(),
                restarting()
            ]
        );
        assert!(!all_text(&unknown_command("<!channel>")).contains("<!channel>"));
    }
}
