//! The Slack app manifest, generated from the code so that commands and scopes cannot drift.
//!
//! [`METHODS`] lists every Web API method incd calls with the bot token and the scope that
//! covers it; the manifest requests exactly those scopes plus `commands` for the slash commands.
//! A test checks the table against Slack's method documentation and against the source.

use std::collections::BTreeSet;

/// Slash commands incd answers (the manifest registers exactly these).
pub const DECLARE_COMMAND: &str = "/incident";
pub const RESOLVE_COMMAND: &str = "/resolve-incident";

/// `(method, bot scope incd relies on)`; `None` when the method needs no scope.
pub const METHODS: &[(&str, Option<&str>)] = &[
    ("auth.test", None),
    ("views.open", None),
    ("views.publish", None),
    ("conversations.create", Some("channels:manage")),
    ("conversations.invite", Some("channels:manage")),
    ("conversations.setTopic", Some("channels:manage")),
    ("conversations.rename", Some("channels:manage")),
    ("conversations.archive", Some("channels:manage")),
    ("conversations.join", Some("channels:join")),
    ("conversations.info", Some("channels:read")),
    ("users.conversations", Some("channels:read")),
    ("conversations.history", Some("channels:history")),
    ("conversations.replies", Some("channels:history")),
    ("chat.getPermalink", None),
    ("conversations.members", Some("channels:read")),
    ("chat.postMessage", Some("chat:write")),
    ("chat.update", Some("chat:write")),
    ("chat.postEphemeral", Some("chat:write")),
    ("pins.add", Some("pins:write")),
    ("bookmarks.add", Some("bookmarks:write")),
];

/// `(bot event, scope it needs)`: the Events API subscriptions, delivered over Socket Mode.
pub const EVENTS: &[(&str, Option<&str>)] = &[
    ("reaction_added", Some("reactions:read")),
    ("reaction_removed", Some("reactions:read")),
    ("pin_added", Some("pins:read")),
    ("pin_removed", Some("pins:read")),
    ("app_home_opened", None),
];

/// Scope needed for slash commands.
pub const COMMANDS_SCOPE: &str = "commands";

/// The bot scopes the manifest requests, sorted.
pub fn bot_scopes() -> Vec<&'static str> {
    let mut set: BTreeSet<&'static str> = METHODS
        .iter()
        .chain(EVENTS)
        .filter_map(|(_, s)| *s)
        .collect();
    set.insert(COMMANDS_SCOPE);
    set.into_iter().collect()
}

/// The manifest as YAML.
pub fn manifest_yaml() -> String {
    let events: String = EVENTS
        .iter()
        .map(|(e, _)| format!("      - {e}\n"))
        .collect();
    let scopes: String = bot_scopes()
        .iter()
        .map(|s| format!("      - {s}\n"))
        .collect();
    format!(
        r##"# Slack app manifest for incd. Create the app at https://api.slack.com/apps
# ("Create New App" > "From an app manifest"), then create an app-level token with
# connections:write (SLACK_APP_TOKEN) and install the app to get the bot token (SLACK_BOT_TOKEN).
display_information:
  name: incd
  description: Declare, run and resolve incidents from Slack.
  background_color: "#8b1e1e"
features:
  app_home:
    home_tab_enabled: true
    messages_tab_enabled: true
    messages_tab_read_only_enabled: false
  bot_user:
    display_name: incd
    always_online: true
  slash_commands:
    - command: {DECLARE_COMMAND}
      description: Declare an incident, or run it (help, update, severity, role, note, timeline)
      usage_hint: "[what is broken] | help"
      should_escape: true
    - command: {RESOLVE_COMMAND}
      description: Resolve the incident of this channel
      usage_hint: "[resolution summary]"
      should_escape: false
oauth_config:
  scopes:
    bot:
{scopes}settings:
  event_subscriptions:
    bot_events:
{events}  interactivity:
    is_enabled: true
  org_deploy_enabled: false
  socket_mode_enabled: true
  token_rotation_enabled: false
"##
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_sorted_unique_and_include_commands() {
        let s = bot_scopes();
        assert!(s.contains(&"commands"));
        let mut sorted = s.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(s, sorted);
    }

    #[test]
    fn manifest_turns_socket_mode_on_and_registers_both_commands() {
        let y = manifest_yaml();
        assert!(y.contains("socket_mode_enabled: true"));
        assert!(y.contains("command: /incident\n"));
        assert!(y.contains("command: /resolve-incident\n"));
    }
}
