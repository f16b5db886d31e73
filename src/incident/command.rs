//! The `/incident` grammar: from the text typed after the command to a typed [`IncidentCommand`].
//!
//! The first word decides. When it is a subcommand keyword (in any case) the rest is its
//! arguments; any other first word, or no text at all, is a declaration with the whole text as
//! the form's prefill. Mentions arrive escaped (`<@U123|name>`, the manifest sets
//! `should_escape: true`); `<@U123>` is accepted too. Bad arguments are a [`CommandError`] whose
//! message names the valid values, so the reply can be sent as is and nothing changes. Whether the
//! command may run here (inside an incident channel or not) is decided by the caller with
//! [`IncidentCommand::allowed_outside_incident_channel`]. No I/O here.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;

use super::follow_up::{FollowUpRef, MAX_FOLLOW_UP_TITLE_CHARS};
use super::ids::UserId;
use super::roles::Role;

/// A status a person may set with `/incident update` (resolving has its own command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateStatus {
    Investigating,
    Identified,
    Monitoring,
}

impl UpdateStatus {
    /// Every status `update` accepts, in lifecycle order.
    pub const ALL: [UpdateStatus; 3] = [
        UpdateStatus::Investigating,
        UpdateStatus::Identified,
        UpdateStatus::Monitoring,
    ];

    /// The word typed and stored: `investigating`, `identified`, `monitoring`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::Investigating => "investigating",
            UpdateStatus::Identified => "identified",
            UpdateStatus::Monitoring => "monitoring",
        }
    }

    /// How people read it: `Investigating`, `Identified`, `Monitoring`.
    pub fn label(self) -> &'static str {
        match self {
            UpdateStatus::Investigating => "Investigating",
            UpdateStatus::Identified => "Identified",
            UpdateStatus::Monitoring => "Monitoring",
        }
    }
}

impl fmt::Display for UpdateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UpdateStatus {
    type Err = CommandError;

    /// The status word, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UpdateStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| CommandError::UnknownStatus {
                given: s.to_string(),
            })
    }
}

/// Who `/incident role <role> <target>` gives the role to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleTarget {
    /// A mentioned person.
    User(UserId),
    /// The person who typed the command.
    Me,
    /// Nobody: clear the role.
    Nobody,
}

/// One `/incident` invocation, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentCommand {
    /// Open the declare form, prefilled with the text typed (empty when none).
    Declare { prefill: String },
    /// Ephemeral help: the grammar (and inside an incident channel, its state).
    Help,
    /// Ephemeral list of open incidents.
    List,
    /// A status update with its message.
    Update {
        status: UpdateStatus,
        message: String,
    },
    /// `update` with no arguments: open the update form.
    UpdateForm,
    /// Change severity to this configured level (its configured id, e.g. `sev1`).
    Severity(String),
    /// Assign or clear a role.
    Role { role: Role, target: RoleTarget },
    /// Open the form with one user picker per role.
    RolesForm,
    /// Add a timeline entry stamped now.
    Note(String),
    /// Ephemeral: the timeline so far.
    Timeline,
    /// Add a follow-up.
    FollowUp {
        title: String,
        owner: Option<UserId>,
        due: Option<NaiveDate>,
    },
    /// Ephemeral list of follow-ups.
    FollowUps,
    /// Mark a follow-up done.
    Done(FollowUpRef),
    /// Mark a follow-up won't do.
    WontDo(FollowUpRef),
    /// Open the close form (only in a resolved incident).
    Close,
    /// Back to investigating (only in a resolved, not closed incident).
    Reopen,
}

/// What `/incident help` lists: the subcommand grammar, one line each.
pub const USAGE: &[&str] = &[
    "/incident [title]  (declare an incident)",
    "/incident help",
    "/incident list",
    "/incident update [investigating|identified|monitoring <message>]",
    "/incident severity <level>",
    "/incident role <commander|ops|comms|planning> <@user|me|none>",
    "/incident roles",
    "/incident note <text>",
    "/incident timeline",
    "/incident follow-up <title> [owner @user] [due YYYY-MM-DD]",
    "/incident follow-ups",
    "/incident done F-<n>",
    "/incident wontdo F-<n>",
    "/incident close",
    "/incident reopen",
];

/// Why a subcommand's arguments were refused. Each message is the ephemeral answer, naming what
/// would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("Unknown status `{given}`. Use one of: investigating, identified, monitoring.")]
    UnknownStatus { given: String },
    #[error(
        "A status update needs a message: `/incident update {status} <what changed>`. \
         Or type `/incident update` alone to open the form."
    )]
    MissingMessage { status: UpdateStatus },
    #[error("Which severity? Use one of: {}.", .valid.join(", "))]
    MissingSeverity { valid: Vec<String> },
    #[error("Unknown severity `{given}`. Use one of: {}.", .valid.join(", "))]
    UnknownSeverity { given: String, valid: Vec<String> },
    #[error("Which role? Use `/incident role <commander|ops|comms|planning> <@user|me|none>`.")]
    MissingRole,
    #[error("Unknown role `{given}`. Use one of: commander, ops, comms, planning.")]
    UnknownRole { given: String },
    #[error("Who? Use `/incident role {role} <@user|me|none>`.")]
    MissingUser { role: Role },
    #[error("I couldn't read a user in `{given}`. Mention them like @name, or use me or none.")]
    UnreadableUser { given: String },
    #[error("I couldn't read a user in `{given}`. Mention them like @name.")]
    UnreadableOwner { given: String },
    #[error("`{given}` is not a date. Use YYYY-MM-DD, for example 2026-06-01.")]
    BadDate { given: String },
    #[error("`{clause}` is given twice. Use `/incident follow-up <title> [owner @user] [due YYYY-MM-DD]`.")]
    RepeatedClause { clause: &'static str },
    #[error("A note needs text: `/incident note <text>`.")]
    MissingNote,
    #[error(
        "A follow-up needs a title: `/incident follow-up <title> [owner @user] [due YYYY-MM-DD]`."
    )]
    MissingTitle,
    #[error("A follow-up title can be at most {max} characters; this one has {len}.")]
    TitleTooLong { len: usize, max: usize },
    #[error("Which follow-up? Use `/incident {verb} F-<n>`, for example F-3.")]
    MissingFollowUpRef { verb: &'static str },
    #[error("`{given}` is not a follow-up id. Use F-<n>, for example F-3.")]
    BadFollowUpRef { given: String },
    #[error("`/incident {command}` takes no arguments (got `{extra}`).")]
    UnexpectedArguments {
        command: &'static str,
        extra: String,
    },
}

impl IncidentCommand {
    /// Parse the text typed after `/incident`. `severity_levels` are the configured level ids
    /// (most severe first, e.g. `sev1`…`sev4`); a typed level matches one in any case and the
    /// configured spelling is returned.
    pub fn parse(
        text: &str,
        severity_levels: &[impl AsRef<str>],
    ) -> Result<IncidentCommand, CommandError> {
        let text = text.trim();
        let (first, rest) = match text.split_once(char::is_whitespace) {
            Some((first, rest)) => (first, rest.trim()),
            None => (text, ""),
        };
        let keyword = first.to_lowercase();
        let no_args = |command: &'static str, parsed: IncidentCommand| {
            if rest.is_empty() {
                Ok(parsed)
            } else {
                Err(CommandError::UnexpectedArguments {
                    command,
                    extra: rest.to_string(),
                })
            }
        };
        match keyword.as_str() {
            // Help always helps, whatever follows it.
            "help" => Ok(IncidentCommand::Help),
            "list" => no_args("list", IncidentCommand::List),
            "update" => parse_update(rest),
            "severity" => parse_severity(rest, severity_levels),
            "role" => parse_role(rest),
            "roles" => no_args("roles", IncidentCommand::RolesForm),
            "note" if rest.is_empty() => Err(CommandError::MissingNote),
            "note" => Ok(IncidentCommand::Note(rest.to_string())),
            "timeline" => no_args("timeline", IncidentCommand::Timeline),
            "follow-up" | "followup" => parse_follow_up(rest),
            "follow-ups" | "followups" => no_args("follow-ups", IncidentCommand::FollowUps),
            "done" => parse_ref("done", rest).map(IncidentCommand::Done),
            "wontdo" | "wont-do" => parse_ref("wontdo", rest).map(IncidentCommand::WontDo),
            "close" => no_args("close", IncidentCommand::Close),
            "reopen" => no_args("reopen", IncidentCommand::Reopen),
            _ => Ok(IncidentCommand::Declare {
                prefill: text.to_string(),
            }),
        }
    }

    /// Whether the command may be used outside an incident channel: only help, list and
    /// declaring are; every other subcommand acts on the incident whose channel it is typed in.
    pub fn allowed_outside_incident_channel(&self) -> bool {
        matches!(
            self,
            IncidentCommand::Declare { .. } | IncidentCommand::Help | IncidentCommand::List
        )
    }

    /// Whether a closed incident refuses the command: everything that changes the incident or
    /// opens a form to change it. Reading (help, list, timeline, follow-ups) and follow-up
    /// changes stay allowed after close.
    pub fn refused_when_closed(&self) -> bool {
        matches!(
            self,
            IncidentCommand::Update { .. }
                | IncidentCommand::UpdateForm
                | IncidentCommand::Severity(_)
                | IncidentCommand::Role { .. }
                | IncidentCommand::RolesForm
                | IncidentCommand::Note(_)
                | IncidentCommand::Close
                | IncidentCommand::Reopen
        )
    }

    /// The subcommand word as documented (`update`, `follow-up`, …; `declare` for a declaration),
    /// for answers such as "`/incident note` works only inside an incident channel".
    pub fn name(&self) -> &'static str {
        match self {
            IncidentCommand::Declare { .. } => "declare",
            IncidentCommand::Help => "help",
            IncidentCommand::List => "list",
            IncidentCommand::Update { .. } | IncidentCommand::UpdateForm => "update",
            IncidentCommand::Severity(_) => "severity",
            IncidentCommand::Role { .. } => "role",
            IncidentCommand::RolesForm => "roles",
            IncidentCommand::Note(_) => "note",
            IncidentCommand::Timeline => "timeline",
            IncidentCommand::FollowUp { .. } => "follow-up",
            IncidentCommand::FollowUps => "follow-ups",
            IncidentCommand::Done(_) => "done",
            IncidentCommand::WontDo(_) => "wontdo",
            IncidentCommand::Close => "close",
            IncidentCommand::Reopen => "reopen",
        }
    }
}

fn parse_update(rest: &str) -> Result<IncidentCommand, CommandError> {
    if rest.is_empty() {
        return Ok(IncidentCommand::UpdateForm);
    }
    let (word, message) = match rest.split_once(char::is_whitespace) {
        Some((w, m)) => (w, m.trim()),
        None => (rest, ""),
    };
    let status: UpdateStatus = word.parse()?;
    if message.is_empty() {
        return Err(CommandError::MissingMessage { status });
    }
    Ok(IncidentCommand::Update {
        status,
        message: message.to_string(),
    })
}

fn parse_severity(rest: &str, levels: &[impl AsRef<str>]) -> Result<IncidentCommand, CommandError> {
    let valid = || levels.iter().map(|l| l.as_ref().to_string()).collect();
    let mut words = rest.split_whitespace();
    let (Some(word), None) = (words.next(), words.next()) else {
        return Err(if rest.is_empty() {
            CommandError::MissingSeverity { valid: valid() }
        } else {
            CommandError::UnknownSeverity {
                given: rest.to_string(),
                valid: valid(),
            }
        });
    };
    levels
        .iter()
        .map(AsRef::as_ref)
        .find(|l| l.eq_ignore_ascii_case(word))
        .map(|l| IncidentCommand::Severity(l.to_string()))
        .ok_or_else(|| CommandError::UnknownSeverity {
            given: word.to_string(),
            valid: valid(),
        })
}

fn parse_role(rest: &str) -> Result<IncidentCommand, CommandError> {
    let tokens = tokens(rest);
    let Some(role_word) = tokens.first() else {
        return Err(CommandError::MissingRole);
    };
    let role: Role = role_word
        .text
        .parse()
        .map_err(|_| CommandError::UnknownRole {
            given: role_word.text.to_string(),
        })?;
    let target = match &tokens[1..] {
        [] => return Err(CommandError::MissingUser { role }),
        [one] => parse_target(one.text)?,
        [first, ..] => {
            return Err(CommandError::UnreadableUser {
                given: rest[first.start..].to_string(),
            })
        }
    };
    Ok(IncidentCommand::Role { role, target })
}

fn parse_target(word: &str) -> Result<RoleTarget, CommandError> {
    if word.eq_ignore_ascii_case("me") {
        Ok(RoleTarget::Me)
    } else if word.eq_ignore_ascii_case("none") {
        Ok(RoleTarget::Nobody)
    } else {
        parse_mention(word)
            .map(RoleTarget::User)
            .ok_or_else(|| CommandError::UnreadableUser {
                given: word.to_string(),
            })
    }
}

/// A user mention as Slack sends it in an escaped command: `<@U123|name>` or `<@U123>`.
pub fn parse_mention(word: &str) -> Option<UserId> {
    let inner = word.strip_prefix("<@")?.strip_suffix('>')?;
    let id = inner.split_once('|').map_or(inner, |(id, _)| id);
    let valid = id.len() >= 2
        && matches!(id.as_bytes()[0], b'U' | b'W')
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    valid.then(|| UserId::new(id))
}

fn parse_follow_up(rest: &str) -> Result<IncidentCommand, CommandError> {
    let tokens = tokens(rest);
    let mut end = tokens.len();
    let mut owner = None;
    let mut due = None;
    // Trailing `owner <user>` and `due <date>` clauses, in either order, each at most once. Once
    // a clause is taken, the same word further left is title text unless it reads as a second
    // clause, which is refused rather than silently kept in the title.
    while end >= 2 {
        let (keyword, value) = (&tokens[end - 2], &tokens[end - 1]);
        if keyword.text.eq_ignore_ascii_case("owner") {
            match (&owner, parse_mention(value.text)) {
                (None, Some(user)) => owner = Some(user),
                (None, None) => {
                    return Err(CommandError::UnreadableOwner {
                        given: value.text.to_string(),
                    })
                }
                (Some(_), Some(_)) => return Err(CommandError::RepeatedClause { clause: "owner" }),
                (Some(_), None) => break,
            }
        } else if keyword.text.eq_ignore_ascii_case("due") {
            match (&due, parse_date(value.text)) {
                (None, Ok(date)) => due = Some(date),
                (None, Err(e)) => return Err(e),
                (Some(_), Ok(_)) => return Err(CommandError::RepeatedClause { clause: "due" }),
                (Some(_), Err(_)) => break,
            }
        } else {
            break;
        }
        end -= 2;
    }
    let title = match end {
        0 => "",
        _ => rest[..tokens[end - 1].end].trim(),
    };
    if title.is_empty() {
        return Err(CommandError::MissingTitle);
    }
    let len = title.chars().count();
    if len > MAX_FOLLOW_UP_TITLE_CHARS {
        return Err(CommandError::TitleTooLong {
            len,
            max: MAX_FOLLOW_UP_TITLE_CHARS,
        });
    }
    Ok(IncidentCommand::FollowUp {
        title: title.to_string(),
        owner,
        due,
    })
}

/// `YYYY-MM-DD` exactly (four-digit year, two-digit month and day).
fn parse_date(word: &str) -> Result<NaiveDate, CommandError> {
    let b = word.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    shaped
        .then(|| NaiveDate::parse_from_str(word, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| CommandError::BadDate {
            given: word.to_string(),
        })
}

fn parse_ref(verb: &'static str, rest: &str) -> Result<FollowUpRef, CommandError> {
    if rest.is_empty() {
        return Err(CommandError::MissingFollowUpRef { verb });
    }
    rest.parse().map_err(|_| CommandError::BadFollowUpRef {
        given: rest.to_string(),
    })
}

/// A word of the arguments and where it sits in them.
struct Token<'a> {
    text: &'a str,
    start: usize,
    end: usize,
}

/// Split on whitespace, keeping a `<…>` group (a mention, whose name may contain spaces) whole.
fn tokens(s: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut in_angle = false;
    for (i, c) in s.char_indices() {
        match (start, c) {
            (None, c) if c.is_whitespace() => {}
            (None, c) => {
                start = Some(i);
                in_angle = c == '<';
            }
            (Some(_), '>') if in_angle => in_angle = false,
            (Some(st), c) if c.is_whitespace() && !in_angle => {
                out.push(Token {
                    text: &s[st..i],
                    start: st,
                    end: i,
                });
                start = None;
            }
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push(Token {
            text: &s[st..],
            start: st,
            end: s.len(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LEVELS: [&str; 4] = ["sev1", "sev2", "sev3", "sev4"];

    fn parse(text: &str) -> Result<IncidentCommand, CommandError> {
        IncidentCommand::parse(text, &LEVELS)
    }

    fn ok(text: &str) -> IncidentCommand {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Err(e) => e.to_string(),
            Ok(c) => panic!("{text:?} parsed as {c:?}"),
        }
    }

    fn u(s: &str) -> UserId {
        UserId::new(s)
    }

    #[test]
    fn no_text_or_free_text_declares_with_the_whole_text() {
        assert_eq!(
            ok(""),
            IncidentCommand::Declare {
                prefill: String::new()
            }
        );
        assert_eq!(
            ok("   "),
            IncidentCommand::Declare {
                prefill: String::new()
            }
        );
        assert_eq!(
            ok("  Checkout is down for EU users "),
            IncidentCommand::Declare {
                prefill: "Checkout is down for EU users".into()
            }
        );
        // A keyword that is not the first word does not make a subcommand.
        assert_eq!(
            ok("the update failed"),
            IncidentCommand::Declare {
                prefill: "the update failed".into()
            }
        );
        // Nor does a word that merely starts like one.
        assert_eq!(
            ok("helpdesk is down"),
            IncidentCommand::Declare {
                prefill: "helpdesk is down".into()
            }
        );
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(ok("HELP"), IncidentCommand::Help);
        assert_eq!(ok("List"), IncidentCommand::List);
        assert_eq!(ok("TimeLine"), IncidentCommand::Timeline);
        assert_eq!(ok("Roles"), IncidentCommand::RolesForm);
        assert_eq!(ok("FOLLOW-UPS"), IncidentCommand::FollowUps);
        assert_eq!(ok("Close"), IncidentCommand::Close);
        assert_eq!(ok("REOPEN"), IncidentCommand::Reopen);
        assert_eq!(ok("Update"), IncidentCommand::UpdateForm);
    }

    #[test]
    fn update_takes_a_status_and_keeps_the_message_verbatim() {
        assert_eq!(
            ok("update Identified  Rolled back <@U1|jane>'s deploy\nwatching"),
            IncidentCommand::Update {
                status: UpdateStatus::Identified,
                message: "Rolled back <@U1|jane>'s deploy\nwatching".into()
            }
        );
        assert_eq!(
            ok("update monitoring ok"),
            IncidentCommand::Update {
                status: UpdateStatus::Monitoring,
                message: "ok".into()
            }
        );
    }

    #[test]
    fn update_with_an_unknown_status_names_the_valid_ones() {
        assert_eq!(
            err("update resolved all good"),
            "Unknown status `resolved`. Use one of: investigating, identified, monitoring."
        );
    }

    #[test]
    fn update_without_a_message_is_refused() {
        let e = err("update investigating");
        assert!(e.contains("needs a message"), "{e}");
        assert!(e.contains("/incident update investigating"), "{e}");
    }

    #[test]
    fn severity_matches_the_configured_levels_in_any_case() {
        assert_eq!(
            ok("severity SEV1"),
            IncidentCommand::Severity("sev1".into())
        );
        assert_eq!(
            ok("severity sev2"),
            IncidentCommand::Severity("sev2".into())
        );
        let custom = ["P1", "P2"];
        assert_eq!(
            IncidentCommand::parse("severity p2", &custom),
            Ok(IncidentCommand::Severity("P2".into()))
        );
    }

    #[test]
    fn a_bad_severity_names_the_configured_levels() {
        assert_eq!(
            err("severity sev9"),
            "Unknown severity `sev9`. Use one of: sev1, sev2, sev3, sev4."
        );
        assert_eq!(
            err("severity"),
            "Which severity? Use one of: sev1, sev2, sev3, sev4."
        );
        assert_eq!(
            err("severity sev1 now"),
            "Unknown severity `sev1 now`. Use one of: sev1, sev2, sev3, sev4."
        );
        assert_eq!(
            IncidentCommand::parse("severity high", &["P1", "P2"])
                .unwrap_err()
                .to_string(),
            "Unknown severity `high`. Use one of: P1, P2."
        );
    }

    #[test]
    fn role_accepts_escaped_and_plain_mentions_me_and_none() {
        assert_eq!(
            ok("role ops <@U02ABC|jane.doe>"),
            IncidentCommand::Role {
                role: Role::Ops,
                target: RoleTarget::User(u("U02ABC"))
            }
        );
        assert_eq!(
            ok("role comms <@W123>"),
            IncidentCommand::Role {
                role: Role::Comms,
                target: RoleTarget::User(u("W123"))
            }
        );
        assert_eq!(
            ok("role IC me"),
            IncidentCommand::Role {
                role: Role::Commander,
                target: RoleTarget::Me
            }
        );
        assert_eq!(
            ok("ROLE planning NONE"),
            IncidentCommand::Role {
                role: Role::Planning,
                target: RoleTarget::Nobody
            }
        );
        // A display name with spaces inside the mention stays one argument.
        assert_eq!(
            ok("role lead <@U9|Jane Doe>"),
            IncidentCommand::Role {
                role: Role::Commander,
                target: RoleTarget::User(u("U9"))
            }
        );
    }

    #[test]
    fn role_aliases_name_their_roles() {
        for (word, role) in [
            ("ic", Role::Commander),
            ("lead", Role::Commander),
            ("commander", Role::Commander),
            ("operations", Role::Ops),
            ("communications", Role::Comms),
        ] {
            assert_eq!(
                ok(&format!("role {word} me")),
                IncidentCommand::Role {
                    role,
                    target: RoleTarget::Me
                }
            );
        }
    }

    #[test]
    fn bad_role_arguments_are_refused_naming_what_is_valid() {
        assert_eq!(
            err("role scribe me"),
            "Unknown role `scribe`. Use one of: commander, ops, comms, planning."
        );
        assert!(err("role").contains("commander|ops|comms|planning"));
        assert_eq!(
            err("role ops"),
            "Who? Use `/incident role ops <@user|me|none>`."
        );
        assert_eq!(
            err("role ops @jane"),
            "I couldn't read a user in `@jane`. Mention them like @name, or use me or none."
        );
        assert!(err("role ops <@U1|a> <@U2|b>").contains("<@U1|a> <@U2|b>"));
        assert!(err("role ops <#C1|general>").contains("couldn't read a user"));
        assert!(err("role ops <@u1>").contains("couldn't read a user"));
    }

    #[test]
    fn note_keeps_its_text_and_needs_some() {
        assert_eq!(
            ok("note  Rolled back to v41 <@U1|jane>"),
            IncidentCommand::Note("Rolled back to v41 <@U1|jane>".into())
        );
        assert_eq!(err("note"), "A note needs text: `/incident note <text>`.");
        assert_eq!(
            err("NOTE   "),
            "A note needs text: `/incident note <text>`."
        );
    }

    #[test]
    fn follow_up_with_only_a_title() {
        assert_eq!(
            ok("follow-up Add an alert on queue depth"),
            IncidentCommand::FollowUp {
                title: "Add an alert on queue depth".into(),
                owner: None,
                due: None
            }
        );
    }

    #[test]
    fn follow_up_trailing_clauses_come_in_either_order() {
        let expected = IncidentCommand::FollowUp {
            title: "Add an alert".into(),
            owner: Some(u("U7")),
            due: NaiveDate::from_ymd_opt(2026, 6, 1),
        };
        assert_eq!(
            ok("follow-up Add an alert owner <@U7|bob> due 2026-06-01"),
            expected
        );
        assert_eq!(
            ok("Follow-Up Add an alert DUE 2026-06-01 OWNER <@U7>"),
            expected
        );
        assert_eq!(
            ok("follow-up Add an alert due 2026-06-01"),
            IncidentCommand::FollowUp {
                title: "Add an alert".into(),
                owner: None,
                due: NaiveDate::from_ymd_opt(2026, 6, 1),
            }
        );
    }

    #[test]
    fn follow_up_titles_may_contain_the_clause_words() {
        assert_eq!(
            ok("follow-up Make the due date and owner visible owner <@U1>"),
            IncidentCommand::FollowUp {
                title: "Make the due date and owner visible".into(),
                owner: Some(u("U1")),
                due: None
            }
        );
    }

    #[test]
    fn bad_follow_up_arguments_are_refused() {
        assert!(err("follow-up").contains("needs a title"));
        assert!(err("follow-up owner <@U1>").contains("needs a title"));
        assert_eq!(
            err("follow-up Fix it due tomorrow"),
            "`tomorrow` is not a date. Use YYYY-MM-DD, for example 2026-06-01."
        );
        assert!(err("follow-up Fix it due 2026-02-30").contains("not a date"));
        assert!(err("follow-up Fix it due 2026-6-1").contains("not a date"));
        assert_eq!(
            err("follow-up Fix it owner @bob"),
            "I couldn't read a user in `@bob`. Mention them like @name."
        );
        assert!(err("follow-up Fix owner <@U1> owner <@U2>").contains("`owner` is given twice"));
        assert!(err("follow-up Fix due 2026-01-01 due 2026-01-02").contains("`due` is given twice"));
        let long = "x".repeat(MAX_FOLLOW_UP_TITLE_CHARS + 1);
        assert!(err(&format!("follow-up {long}")).contains("at most 200"));
    }

    #[test]
    fn done_and_wontdo_take_a_follow_up_reference() {
        assert_eq!(ok("done F-3"), IncidentCommand::Done(FollowUpRef(3)));
        assert_eq!(ok("DONE f-3"), IncidentCommand::Done(FollowUpRef(3)));
        assert_eq!(ok("wontdo F-12"), IncidentCommand::WontDo(FollowUpRef(12)));
        assert_eq!(
            err("done"),
            "Which follow-up? Use `/incident done F-<n>`, for example F-3."
        );
        assert_eq!(
            err("wontdo 3"),
            "`3` is not a follow-up id. Use F-<n>, for example F-3."
        );
    }

    #[test]
    fn argument_free_subcommands_refuse_arguments_but_help_always_helps() {
        assert_eq!(
            err("close now please"),
            "`/incident close` takes no arguments (got `now please`)."
        );
        assert!(err("timeline all").contains("takes no arguments"));
        assert_eq!(ok("help me please"), IncidentCommand::Help);
    }

    #[test]
    fn only_help_list_and_declare_work_outside_an_incident_channel() {
        let outside: Vec<&str> = [
            "",
            "help",
            "list",
            "update",
            "severity sev1",
            "role ops me",
            "roles",
            "note x",
            "timeline",
            "follow-up x",
            "follow-ups",
            "done F-1",
            "wontdo F-1",
            "close",
            "reopen",
            "Database down",
        ]
        .into_iter()
        .filter(|t| ok(t).allowed_outside_incident_channel())
        .collect();
        assert_eq!(outside, ["", "help", "list", "Database down"]);
    }

    #[test]
    fn names_are_the_documented_subcommand_words() {
        assert_eq!(ok("update identified x").name(), "update");
        assert_eq!(ok("followup x").name(), "follow-up");
        assert_eq!(ok("wont-do F-1").name(), "wontdo");
        assert_eq!(ok("declare this").name(), "declare");
    }

    #[test]
    fn a_closed_incident_refuses_changes_but_not_follow_ups_or_reading() {
        let refused: Vec<&str> = [
            "help",
            "list",
            "update",
            "update identified x",
            "severity sev1",
            "role ops me",
            "roles",
            "note x",
            "timeline",
            "follow-up x",
            "follow-ups",
            "done F-1",
            "wontdo F-1",
            "close",
            "reopen",
        ]
        .into_iter()
        .filter(|t| ok(t).refused_when_closed())
        .collect();
        assert_eq!(
            refused,
            [
                "update",
                "update identified x",
                "severity sev1",
                "role ops me",
                "roles",
                "note x",
                "close",
                "reopen"
            ]
        );
    }

    #[test]
    fn mentions_are_read_only_in_slack_form() {
        assert_eq!(parse_mention("<@U1|a b>"), Some(u("U1")));
        assert_eq!(parse_mention("<@W0AB>"), Some(u("W0AB")));
        for bad in [
            "<@>", "<@U>", "<@C123>", "@U123", "<@U1", "U1>", "<@U 1>", "<!here>",
        ] {
            assert_eq!(parse_mention(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in "\\PC*") {
            let _ = parse(&text);
        }

        #[test]
        fn any_text_not_starting_with_a_keyword_declares_with_that_text(
            text in "[a-zA-Z0-9 .,!?<>@|-]{0,80}"
        ) {
            let first = text.split_whitespace().next().unwrap_or("").to_lowercase();
            let keywords = [
                "help", "list", "update", "severity", "role", "roles", "note", "timeline",
                "follow-up", "followup", "follow-ups", "followups", "done", "wontdo", "wont-do",
                "close", "reopen",
            ];
            prop_assume!(!keywords.contains(&first.as_str()));
            prop_assert_eq!(
                parse(&text),
                Ok(IncidentCommand::Declare { prefill: text.trim().to_string() })
            );
        }

        #[test]
        fn a_note_keeps_any_text_verbatim(text in "\\PC*") {
            let trimmed = text.trim();
            prop_assume!(!trimmed.is_empty());
            prop_assert_eq!(
                parse(&format!("note {text}")),
                Ok(IncidentCommand::Note(trimmed.to_string()))
            );
        }

        #[test]
        fn follow_up_clauses_round_trip(
            title in "[a-z][a-z ]{0,40}[a-z]",
            owner in proptest::option::of("U[A-Z0-9]{1,10}"),
            due in proptest::option::of((2000i32..2100, 1u32..13, 1u32..29)),
            owner_first in any::<bool>(),
        ) {
            let words: Vec<&str> = title.split_whitespace().collect();
            // A title ending in "owner x" or "due x" would read as a clause.
            prop_assume!(words.len() < 2 || !["owner", "due"].contains(&words[words.len() - 2]));
            let mut text = format!("follow-up {title}");
            let owner_clause = owner.as_ref().map(|o| format!(" owner <@{o}|name>"));
            let due_clause = due.map(|(y, m, d)| format!(" due {y:04}-{m:02}-{d:02}"));
            let clauses = if owner_first { [owner_clause, due_clause] } else { [due_clause, owner_clause] };
            for c in clauses.into_iter().flatten() {
                text.push_str(&c);
            }
            prop_assert_eq!(
                parse(&text),
                Ok(IncidentCommand::FollowUp {
                    title: title.clone(),
                    owner: owner.map(UserId::new),
                    due: due.map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap()),
                })
            );
        }
    }
}
