//! The incident lifecycle in the channel: answers to `/incident` subcommands, the posts and
//! thread replies that show a status, severity or role change, the role holder's direct message
//! and the timeline as people read it.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::severity_label;
use crate::incident::command::{CommandError, UpdateStatus, USAGE};
use crate::incident::roles::{Role, RoleGuide};
use crate::incident::text::{clamp, escape_and_clamp, escape_mrkdwn, one_line};
use crate::incident::timeline::format_utc;
use crate::incident::{human_duration, Incident, SeverityLevel, Status, UserId, MAX_TITLE_CHARS};
use crate::store::{Applied, StoredEntry};

/// The nudge's buttons and the update form's ids.
pub const NUDGE_UPDATE_ACTION: &str = "incd_nudge_update";
pub const NUDGE_SNOOZE_ACTION: &str = "incd_nudge_snooze";
pub const UPDATE_CALLBACK: &str = "incd_update";
pub const UPDATE_STATUS_BLOCK: &str = "update_status_block";
pub const UPDATE_STATUS_ACTION: &str = "update_status";
pub const UPDATE_SEVERITY_BLOCK: &str = "update_severity_block";
pub const UPDATE_SEVERITY_ACTION: &str = "update_severity";
pub const UPDATE_MESSAGE_BLOCK: &str = "update_message_block";
pub const UPDATE_MESSAGE_ACTION: &str = "update_message";
/// Longest status update message the form accepts.
pub const MAX_UPDATE_CHARS: usize = 2000;

/// The commander's reminder: no status update for a while; buttons to post one or snooze.
pub fn nudge(inc: &Incident, since_update: chrono::Duration, snooze: &str) -> (String, Value) {
    let channel = inc
        .channel_id
        .as_ref()
        .map(|c| format!("<#{c}>"))
        .unwrap_or_else(|| format!("#{}", inc.channel_name()));
    let text = format!(
        ":alarm_clock: No status update in {channel} for {}. Please post one (`/incident update <status> <message>` there, or the button).",
        human_duration(since_update)
    );
    let value = inc.id.to_string();
    let blocks = json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": clamp(&text, 3000)}},
        {"type": "actions", "elements": [
            {"type": "button", "action_id": NUDGE_UPDATE_ACTION, "style": "primary",
             "text": {"type": "plain_text", "text": "Post an update"}, "value": value},
            {"type": "button", "action_id": NUDGE_SNOOZE_ACTION,
             "text": {"type": "plain_text", "text": format!("Snooze {snooze}")}, "value": value}
        ]}
    ]);
    (text, blocks)
}

/// The update form: status, severity and a message, prefilled with the current values.
pub fn update_modal(inc: &Incident, levels: &[SeverityLevel], private_metadata: &str) -> Value {
    let status_option = |s: UpdateStatus| json!({"text": {"type": "plain_text", "text": s.label()}, "value": s.as_str()});
    let level_option = |l: &SeverityLevel| json!({"text": {"type": "plain_text", "text": clamp(&format!("{} · {}", l.label, l.description), 75)}, "value": l.id});
    let mut severity = json!({"type": "static_select", "action_id": UPDATE_SEVERITY_ACTION,
        "options": levels.iter().map(level_option).collect::<Vec<_>>()});
    if let Some(l) = levels.iter().find(|l| l.id == inc.severity.as_str()) {
        severity["initial_option"] = level_option(l);
    }
    json!({
        "type": "modal",
        "callback_id": UPDATE_CALLBACK,
        "private_metadata": private_metadata,
        "title": {"type": "plain_text", "text": "Status update"},
        "submit": {"type": "plain_text", "text": "Post update"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "input", "block_id": UPDATE_STATUS_BLOCK, "label": {"type": "plain_text", "text": "Status"},
             "element": {"type": "static_select", "action_id": UPDATE_STATUS_ACTION,
                         "options": UpdateStatus::ALL.into_iter().map(status_option).collect::<Vec<_>>(),
                         "initial_option": status_option(inc.phase)}},
            {"type": "input", "block_id": UPDATE_SEVERITY_BLOCK, "label": {"type": "plain_text", "text": "Severity"},
             "element": severity},
            {"type": "input", "block_id": UPDATE_MESSAGE_BLOCK, "label": {"type": "plain_text", "text": "What changed?"},
             "element": {"type": "plain_text_input", "action_id": UPDATE_MESSAGE_ACTION, "multiline": true,
                         "max_length": MAX_UPDATE_CHARS}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("Incident `{}`", inc.name)}]}
        ]
    })
}

/// The roles form's callback id; each role's block is `role_<slug>`, its action `user`.
pub const ROLES_CALLBACK: &str = "incd_roles";
pub const ROLE_USER_ACTION: &str = "user";

/// The block id of a role's picker in the roles form.
pub fn role_block(role: Role) -> String {
    format!("role_{}", role.slug())
}

/// The roles form: one user picker per role, set to its holder.
pub fn roles_modal(
    inc: &Incident,
    guides: &crate::incident::roles::RoleGuides,
    private_metadata: &str,
) -> Value {
    let mut blocks: Vec<Value> = Role::ALL
        .into_iter()
        .map(|role| {
            let mut picker = json!({"type": "users_select", "action_id": ROLE_USER_ACTION,
                "placeholder": {"type": "plain_text", "text": "Nobody"}});
            if let Some(u) = inc.roles.holder(role) {
                picker["initial_user"] = json!(u);
            }
            json!({"type": "input", "block_id": role_block(role), "optional": true,
                   "label": {"type": "plain_text", "text": clamp(&guides.get(role).label, 2000)},
                   "element": picker})
        })
        .collect();
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": "Incident command holds every role nobody else holds. Each new holder gets their duties by DM."}]}));
    json!({
        "type": "modal",
        "callback_id": ROLES_CALLBACK,
        "private_metadata": private_metadata,
        "title": {"type": "plain_text", "text": "Roles"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks
    })
}

/// The Declare button on the Home tab.
pub const HOME_DECLARE_ACTION: &str = "incd_home_declare";
/// Slack's limit of blocks in a Home tab view.
pub const HOME_MAX_BLOCKS: usize = 100;

/// The Home tab: a Declare button and the open incidents, most severe first then oldest first,
/// within Slack's 100 blocks ("and N more").
pub fn home(
    open: &[Incident],
    now: DateTime<Utc>,
    level_rank: &dyn Fn(&str) -> usize,
    level_of: LevelOf<'_>,
) -> Value {
    let mut sorted: Vec<&Incident> = open.iter().collect();
    sorted.sort_by_key(|i| (level_rank(i.severity.as_str()), i.declared_at, i.id));
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": "Incidents"}}),
        json!({"type": "actions", "elements": [{"type": "button", "action_id": HOME_DECLARE_ACTION, "style": "danger",
            "text": {"type": "plain_text", "text": "Declare an incident"}, "value": "declare"}]}),
        json!({"type": "divider"}),
    ];
    if sorted.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": "No open incidents. :tada:"}}));
    }
    // One block per incident; the last block is kept for "and N more".
    let room = HOME_MAX_BLOCKS - blocks.len() - 1;
    let shown = sorted.len().min(room);
    for inc in &sorted[..shown] {
        let channel = inc
            .channel_id
            .as_ref()
            .map(|c| format!("<#{c}>"))
            .unwrap_or_else(|| format!("#{}", inc.channel_name()));
        let last = inc
            .last_update_at
            .map(|t| format!("{} ago", human_duration(now - t)))
            .unwrap_or_else(|| "none yet".into());
        let text = format!(
            "*{}* · {channel} · {}\n{} · commander {} · {} old · last update {last}",
            sev(level_of, inc.severity.as_str()),
            escape_and_clamp(&one_line(&inc.title), MAX_TITLE_CHARS),
            status_word(inc),
            person(inc.roles.holder(Role::Commander)),
            human_duration(now - inc.declared_at),
        );
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": clamp(&text, 3000)}}),
        );
    }
    if sorted.len() > shown {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": format!("and {} more. Use `/incident list` to see them all.", sorted.len() - shown)}]}));
    }
    json!({"type": "home", "blocks": blocks})
}

/// A captured message's text until it has been read.
pub const CAPTURE_PENDING: &str = "(marked message; its text is being read)";

/// Longest text of one ephemeral answer (Slack's message text limit is far above; long timelines
/// are cut with a note).
const EPHEMERAL_MAX: usize = 3500;

fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": clamp(text, EPHEMERAL_MAX)})
}

fn person(u: Option<&UserId>) -> String {
    u.map(|u| format!("<@{u}>"))
        .unwrap_or_else(|| "nobody".into())
}

/// The severity label of a configured level id.
pub type LevelOf<'a> = &'a dyn Fn(&str) -> Option<&'a SeverityLevel>;

fn sev(level_of: LevelOf<'_>, id: &str) -> String {
    severity_label(level_of(id), id)
}

/// A subcommand's arguments were refused: the reason, naming the valid values.
pub fn command_refused(e: &CommandError) -> Value {
    ephemeral(&format!(":warning: {e} Nothing was changed."))
}

/// A subcommand typed outside an incident channel.
pub fn outside_incident(command: &str) -> Value {
    ephemeral(&format!(
        "`/incident {command}` only works inside an incident channel. Open the incident's channel and run it there, or use `/incident list` to find it."
    ))
}

/// A subcommand that changes an incident which is not open.
pub fn not_open(command: &str, status: Status) -> Value {
    let why = match status {
        Status::Declaring => "is still being declared; try again in a moment",
        Status::Resolving | Status::Resolved => "is resolved",
        Status::Open => "is open",
        Status::Failed => "could not be declared",
        Status::Closed => "is closed",
    };
    ephemeral(&format!(
        "This incident {why}, so `/incident {command}` changed nothing."
    ))
}

/// The change would leave everything as it is.
pub fn unchanged(command: &str) -> Value {
    ephemeral(&format!(
        "`/incident {command}`: that is already the case; nothing was changed."
    ))
}

/// A subcommand this build does not run yet.
pub fn not_available(command: &str) -> Value {
    ephemeral(&format!(
        "`/incident {command}` is not available in this version of incd; nothing was changed."
    ))
}

/// `/incident note` recorded.
pub fn note_added() -> Value {
    ephemeral(":memo: Added to the timeline. See it with `/incident timeline`.")
}

/// `/incident help`, with the incident's state when typed in its channel.
pub fn help(inc: Option<&Incident>, level_of: LevelOf<'_>) -> Value {
    let mut text = String::from("*incd commands*\n");
    for line in USAGE {
        text.push_str(&format!("• `{line}`\n"));
    }
    if let Some(inc) = inc {
        text.push_str(&format!(
            "\n*This incident* `{}`: {} · {} · commander {}",
            inc.name,
            sev(level_of, inc.severity.as_str()),
            status_word(inc),
            person(inc.roles.holder(Role::Commander)),
        ));
        for (role, user) in inc.roles.iter().filter(|(r, _)| *r != Role::Commander) {
            text.push_str(&format!(" · {} <@{user}>", role.label()));
        }
    }
    ephemeral(&text)
}

fn status_word(inc: &Incident) -> &'static str {
    match inc.status {
        Status::Open => inc.phase.label(),
        Status::Declaring => "Declaring",
        Status::Resolving | Status::Resolved => "Resolved",
        Status::Failed => "Failed",
        Status::Closed => "Closed",
    }
}

/// `/incident list`: open incidents (channel, severity, status, commander, age).
pub fn list(open: &[Incident], now: DateTime<Utc>, level_of: LevelOf<'_>) -> Value {
    if open.is_empty() {
        return ephemeral("No open incidents. :tada:");
    }
    let mut text = format!("*Open incidents* ({})\n", open.len());
    for inc in open {
        let channel = inc
            .channel_id
            .as_ref()
            .map(|c| format!("<#{c}>"))
            .unwrap_or_else(|| format!("#{}", inc.channel_name()));
        text.push_str(&format!(
            "• {channel} · {} · {} · commander {} · {} old · {}\n",
            sev(level_of, inc.severity.as_str()),
            status_word(inc),
            person(inc.roles.holder(Role::Commander)),
            human_duration(now - inc.declared_at),
            escape_and_clamp(&one_line(&inc.title), MAX_TITLE_CHARS),
        ));
    }
    ephemeral(&text)
}

/// `/incident timeline`: each entry with its date and UTC time and its author.
pub fn timeline(inc: &Incident, entries: &[StoredEntry]) -> Value {
    let mut text = format!("*Timeline of `{}`* (UTC)\n", inc.name);
    for e in entries {
        let author = e
            .author
            .as_ref()
            .map(|a| format!(" · <@{a}>"))
            .unwrap_or_default();
        let link = match &e.kind {
            Some(crate::incident::timeline::EntryKind::Captured {
                permalink: Some(p), ..
            }) => format!(" (<{p}|message>)"),
            _ => String::new(),
        };
        // People's words (notes, captured messages) keep their user mentions and nothing else.
        let body = match &e.kind {
            Some(k) if !k.is_system() => escape_keeping_mentions(&one_line(&e.text)),
            _ => one_line(&e.text),
        };
        text.push_str(&format!(
            "• {}{author}: {}{link}\n",
            format_utc(e.at),
            clamp(&body, 500)
        ));
    }
    ephemeral(&text)
}

/// Escape Slack text (`&`, `<`, `>`) except user mentions (`<@U123>`, `<@U123|name>`, kept as
/// `<@U123>`), so a note can name people but not ping a channel or disguise a link.
pub fn escape_keeping_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['<', '>', '&']) {
        out.push_str(&escape_mrkdwn(&rest[..i]));
        let tail = &rest[i..];
        if let Some(end) = tail.find('>') {
            if let Some(user) = crate::incident::command::parse_mention(&tail[..=end]) {
                out.push_str(&format!("<@{user}>"));
                rest = &tail[end + 1..];
                continue;
            }
        }
        out.push_str(&escape_mrkdwn(&tail[..1]));
        rest = &tail[1..];
    }
    out.push_str(&escape_mrkdwn(rest));
    out
}

/// The timeline entry's text for a change (stored; shown by `/incident timeline`).
pub fn change_entry(applied: &Applied, level_of: LevelOf<'_>) -> String {
    match applied {
        Applied::Status {
            status, message, ..
        } => {
            let label = status
                .parse::<UpdateStatus>()
                .map(|s| s.label())
                .unwrap_or("Update");
            format!("Status: {label}. {}", escape_and_clamp(message, 1000))
        }
        Applied::Severity { from, to } => {
            format!("Severity {} → {}", sev(level_of, from), sev(level_of, to))
        }
        Applied::Role {
            role,
            previous,
            new,
            handover,
        } => role_sentence(*role, previous.as_ref(), new.as_ref(), *handover),
    }
}

fn role_sentence(
    role: Role,
    previous: Option<&UserId>,
    new: Option<&UserId>,
    handover: bool,
) -> String {
    match (new, handover) {
        (Some(n), true) if role == Role::Commander => format!(
            "{} handed incident command over to <@{n}>",
            person(previous)
        ),
        (Some(n), true) => format!("<@{n}> is now {} (was {})", role.label(), person(previous)),
        (Some(n), false) => format!("<@{n}> is now {}", role.label()),
        (None, _) => format!("{} no longer holds {}", person(previous), role.label()),
    }
}

/// The post in the incident channel that shows a change.
pub fn change_post(applied: &Applied, by: &UserId, level_of: LevelOf<'_>) -> String {
    match applied {
        Applied::Status { .. } => format!(
            ":mega: *Status update* from <@{by}>\n{}",
            change_entry(applied, level_of)
        ),
        Applied::Severity { .. } => format!(
            ":rotating_light: {} (changed by <@{by}>)",
            change_entry(applied, level_of)
        ),
        Applied::Role { .. } => format!(":bust_in_silhouette: {}", change_entry(applied, level_of)),
    }
}

/// The reply in an announcement's thread that shows a change.
pub fn change_reply(applied: &Applied, level_of: LevelOf<'_>) -> String {
    change_entry(applied, level_of)
}

/// The direct message to a new role holder: what the role does and its checklist.
pub fn role_dm(inc: &Incident, role: Role, guide: &RoleGuide, handover: bool) -> String {
    let channel = inc
        .channel_id
        .as_ref()
        .map(|c| format!("<#{c}>"))
        .unwrap_or_else(|| format!("#{}", inc.channel_name()));
    let opening = if handover && role == Role::Commander {
        format!("You now have incident command of {channel} (handed over to you).")
    } else {
        format!(
            "You are now *{}* in {channel}.",
            escape_mrkdwn(&guide.label)
        )
    };
    let mut text = format!(
        ":wave: {opening}\n*{}*: {}\n",
        escape_mrkdwn(&one_line(&inc.title)),
        escape_mrkdwn(&guide.duties)
    );
    if !guide.checklist.is_empty() {
        text.push_str("*Checklist*\n");
        for item in &guide.checklist {
            text.push_str(&format!("• {}\n", escape_mrkdwn(item)));
        }
    }
    clamp(&text, EPHEMERAL_MAX)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::incident;
    use super::*;
    use chrono::TimeZone;

    fn none(_: &str) -> Option<&'static SeverityLevel> {
        None
    }

    #[test]
    fn answers_read_well() {
        let inc = incident();
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 14, 5, 0).unwrap();
        let entries = vec![
            StoredEntry {
                at,
                author: Some("U1".into()),
                kind: None,
                text: "Incident declared by <@U1>".into(),
            },
            StoredEntry {
                at,
                author: Some("U3".into()),
                kind: Some(crate::incident::timeline::EntryKind::Captured {
                    channel: "C123".into(),
                    message_ts: "1700000000.000100".into(),
                    permalink: Some("https://x.slack.com/archives/C123/p1700000000000100".into()),
                }),
                text: "rolled back".into(),
            },
        ];
        let status = Applied::Status {
            status: "identified".into(),
            previous: "investigating".into(),
            message: "bad <!channel> deploy".into(),
        };
        let handover = Applied::Role {
            role: Role::Commander,
            previous: Some("U1".into()),
            new: Some("U2".into()),
            handover: true,
        };
        let severity = Applied::Severity {
            from: "sev2".into(),
            to: "sev1".into(),
        };
        insta::assert_json_snapshot!(
            "lifecycle",
            json!({
                "help": help(Some(&inc), &none),
                "list": list(std::slice::from_ref(&inc), at, &none),
                "timeline": timeline(&inc, &entries),
                "refused": command_refused(&CommandError::UnknownRole { given: "boss".into() }),
                "outside": outside_incident("severity"),
                "not_open": not_open("update", Status::Resolved),
                "unchanged": unchanged("severity"),
                "status_post": change_post(&status, &"U1".into(), &none),
                "severity_post": change_post(&severity, &"U1".into(), &none),
                "handover_post": change_post(&handover, &"U1".into(), &none),
                "reply": change_reply(&status, &none),
                "dm": role_dm(&inc, Role::Ops, &Role::Ops.default_guide(), false),
                "note": note_added(),
                "nudge": nudge(&inc, chrono::Duration::minutes(31), "30m"),
                "roles_modal": roles_modal(&inc, &Default::default(), "{\"i\":7}"),
                "update_modal": update_modal(&inc, &crate::config::Settings::for_tests().incidents.severities, "{\"i\":7}"),
            })
        );
    }

    #[test]
    fn the_home_tab_stays_within_100_blocks_most_severe_first() {
        let mut many = Vec::new();
        for i in 0..130 {
            let mut inc = incident();
            inc.id = crate::incident::IncidentId(i);
            inc.severity = if i == 129 { "sev1" } else { "sev3" }.into();
            inc.declared_at += chrono::Duration::minutes(i);
            many.push(inc);
        }
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 14, 5, 0).unwrap();
        let rank = |s: &str| if s == "sev1" { 0 } else { 2 };
        let v = home(&many, now, &rank, &none);
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), HOME_MAX_BLOCKS);
        assert!(blocks[3].to_string().contains("SEV1"), "most severe first");
        assert!(
            blocks[99].to_string().contains("and 34 more"),
            "{}",
            blocks[99]
        );
        insta::assert_json_snapshot!("home", home(&many[..1], now, &rank, &none));
    }

    #[test]
    fn notes_keep_user_mentions_and_nothing_else() {
        assert_eq!(
            escape_keeping_mentions("ask <@U0CAROL|carol> & <!channel> <https://e.x|y>"),
            "ask <@U0CAROL> &amp; &lt;!channel&gt; &lt;https://e.x|y&gt;"
        );
    }

    #[test]
    fn typed_text_never_becomes_a_mention() {
        let status = Applied::Status {
            status: "identified".into(),
            previous: "investigating".into(),
            message: "<!channel> <@U9>".into(),
        };
        let t = change_entry(&status, &none);
        assert!(!t.contains("<!channel>") && !t.contains("<@U9>"), "{t}");
    }
}
