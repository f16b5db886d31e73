//! The incident timeline: what happened, when (UTC) and who did it.
//!
//! Owns the timeline entry (system entries for declare, status, severity, role, follow-up,
//! resolve, close and reopen; notes; messages captured from the channel), the rules that decide
//! when a channel message is on the timeline (a message is one entry however many 📌 reactions
//! and pins hold it; it leaves when the last holder goes; incd's own pins and reactions never
//! count), reading a Slack message timestamp as the message's original time, and the one way
//! times are shown (`2026-12-02 14:05 UTC`). No I/O here: fetching messages and storing entries
//! are done by the caller.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::command::parse_mention;
use super::follow_up::FollowUpRef;
use super::ids::{ChannelId, MessageTs, UserId};
use super::roles::Role;

/// What kind of moment an entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryKind {
    /// The incident was declared.
    Declared,
    /// A status update.
    StatusChanged,
    /// Severity went up or down.
    SeverityChanged,
    /// A role was given, handed over or cleared.
    RoleChanged { role: Role, handover: bool },
    /// `/incident note`.
    Note,
    /// A channel message marked with 📌 or pinned.
    Captured {
        channel: ChannelId,
        message_ts: MessageTs,
        permalink: Option<String>,
    },
    /// `/resolve-incident`.
    Resolved,
    /// Closed after the review.
    Closed,
    /// Back to investigating after a resolve.
    Reopened,
    /// A follow-up was added.
    FollowUpAdded { follow_up: FollowUpRef },
    /// A follow-up was done.
    FollowUpDone { follow_up: FollowUpRef },
    /// A follow-up was marked won't do.
    FollowUpWontDo { follow_up: FollowUpRef },
}

impl EntryKind {
    /// Whether incd generated the entry (as opposed to a person's note or message).
    pub fn is_system(&self) -> bool {
        !matches!(self, EntryKind::Note | EntryKind::Captured { .. })
    }
}

/// One moment on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When it happened: for a captured message its original posting time, not when it was
    /// marked.
    pub at: DateTime<Utc>,
    /// Who did it or wrote it, when known.
    pub author: Option<UserId>,
    pub kind: EntryKind,
    /// What happened, as Slack text (it may hold mentions such as `<@U123>`).
    pub text: String,
}

impl TimelineEntry {
    /// The entry for a captured channel message, stamped with the message's own time. `None`
    /// when the timestamp is not a Slack message timestamp.
    pub fn captured(
        message: &MessageKey,
        author: Option<UserId>,
        text: impl Into<String>,
        permalink: Option<String>,
    ) -> Option<TimelineEntry> {
        Some(TimelineEntry {
            at: message_time(&message.ts)?,
            author,
            kind: EntryKind::Captured {
                channel: message.channel.clone(),
                message_ts: message.ts.clone(),
                permalink,
            },
            text: text.into(),
        })
    }

    /// The link to the captured message, if any.
    pub fn permalink(&self) -> Option<&str> {
        match &self.kind {
            EntryKind::Captured { permalink, .. } => permalink.as_deref(),
            _ => None,
        }
    }
}

/// Sort entries by time, keeping the recorded order of entries with the same time.
pub fn sort_chronologically(entries: &mut [TimelineEntry]) {
    entries.sort_by_key(|e| e.at);
}

/// Everybody who appears in the entries (authors, then the people each entry mentions), in order
/// of first appearance, entries taken in the order given.
pub fn people_in_order(entries: &[TimelineEntry]) -> Vec<UserId> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for e in entries {
        for user in e.author.iter().cloned().chain(mentioned_users(&e.text)) {
            if seen.insert(user.clone()) {
                out.push(user);
            }
        }
    }
    out
}

/// The users mentioned in Slack text (`<@U123>` or `<@U123|name>`), in order, repeats kept.
pub fn mentioned_users(text: &str) -> Vec<UserId> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        let after = &rest[start..];
        match after.find('>') {
            Some(end) => {
                if let Some(u) = parse_mention(&after[..=end]) {
                    out.push(u);
                }
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// The time a Slack message timestamp (`1700000000.000100`: seconds and microseconds since the
/// epoch) stands for. `None` when it is not one.
pub fn message_time(ts: &MessageTs) -> Option<DateTime<Utc>> {
    let (secs, frac) = ts.as_str().split_once('.').unwrap_or((ts.as_str(), ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || !(frac.is_empty() || digits(frac)) || frac.len() > 6 {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let micros: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    DateTime::from_timestamp(secs, micros * 1000)
}

/// How a time is shown to people everywhere: date, minutes and the zone, `2026-12-02 14:05 UTC`.
pub fn format_utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A channel message: the unit of capture.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageKey {
    pub channel: ChannelId,
    pub ts: MessageTs,
}

impl MessageKey {
    pub fn new(channel: impl Into<ChannelId>, ts: impl Into<MessageTs>) -> MessageKey {
        MessageKey {
            channel: channel.into(),
            ts: ts.into(),
        }
    }

    /// The key a store can make unique per incident: `msg:<channel>:<ts>`.
    pub fn source_key(&self) -> String {
        format!("msg:{}:{}", self.channel, self.ts)
    }
}

/// A way a person marks a message for the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    /// The timeline reaction (📌 `pushpin` unless configured), by the person reacting.
    Reaction,
    /// A Slack pin. A message has at most one pin, whoever unpins it.
    Pin,
}

/// Something holding a message on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Holder {
    /// One person's timeline reaction.
    Reaction(UserId),
    /// The message's pin.
    Pin,
}

impl fmt::Display for Holder {
    /// The stored form: `reaction:<user>` or `pin`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Reaction(u) => write!(f, "reaction:{u}"),
            Holder::Pin => f.write_str("pin"),
        }
    }
}

/// A stored holder that does not read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a timeline holder: `{0}`")]
pub struct BadHolder(pub String);

impl FromStr for Holder {
    type Err = BadHolder;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "pin" => Ok(Holder::Pin),
            Some(("reaction", user)) if !user.is_empty() => Ok(Holder::Reaction(user.into())),
            _ => Err(BadHolder(s.to_string())),
        }
    }
}

/// What a mark (or unmark) did to a message's place on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureChange {
    /// Its first holder: the message becomes an entry.
    Added,
    /// Another holder for a message already on the timeline: record the holder, no new entry.
    HolderAdded,
    /// A holder left but others remain: the entry stays.
    HolderRemoved,
    /// The last holder left: the entry goes.
    Removed,
    /// The same event again, or removing a holder that was never there: nothing to do.
    Unchanged,
    /// incd's own pin or reaction: never counts.
    Ignored,
}

/// What holds one message on the timeline. Empty: the message is not on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders(BTreeSet<Holder>);

impl Holders {
    /// Rebuild from stored holders.
    pub fn from_holders(holders: impl IntoIterator<Item = Holder>) -> Holders {
        Holders(holders.into_iter().collect())
    }

    /// Whether the message is on the timeline.
    pub fn is_captured(&self) -> bool {
        !self.0.is_empty()
    }

    /// The holders, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = &Holder> {
        self.0.iter()
    }

    /// `actor` marked the message. `own_user` is incd's bot user, whose marks never count.
    pub fn add(&mut self, mark: Mark, actor: &UserId, own_user: &UserId) -> CaptureChange {
        if actor == own_user {
            return CaptureChange::Ignored;
        }
        let was_captured = self.is_captured();
        if !self.0.insert(holder(mark, actor)) {
            CaptureChange::Unchanged
        } else if was_captured {
            CaptureChange::HolderAdded
        } else {
            CaptureChange::Added
        }
    }

    /// `actor` removed their reaction, or someone unpinned the message.
    pub fn remove(&mut self, mark: Mark, actor: &UserId) -> CaptureChange {
        if !self.0.remove(&holder(mark, actor)) {
            CaptureChange::Unchanged
        } else if self.is_captured() {
            CaptureChange::HolderRemoved
        } else {
            CaptureChange::Removed
        }
    }
}

fn holder(mark: Mark, actor: &UserId) -> Holder {
    match mark {
        Mark::Reaction => Holder::Reaction(actor.clone()),
        Mark::Pin => Holder::Pin,
    }
}

/// The captured messages of one incident and what holds each, for callers that keep them in
/// memory; a store can keep [`Holders`] per message instead and apply the same rules.
#[derive(Debug, Clone)]
pub struct CaptureSet {
    own_user: UserId,
    messages: BTreeMap<MessageKey, Holders>,
}

impl CaptureSet {
    /// An empty set; `own_user` is incd's bot user, whose pins and reactions never count.
    pub fn new(own_user: UserId) -> CaptureSet {
        CaptureSet {
            own_user,
            messages: BTreeMap::new(),
        }
    }

    /// `actor` marked `message`.
    pub fn add(&mut self, message: &MessageKey, mark: Mark, actor: &UserId) -> CaptureChange {
        let own = self.own_user.clone();
        if actor == &own {
            return CaptureChange::Ignored;
        }
        self.messages
            .entry(message.clone())
            .or_default()
            .add(mark, actor, &own)
    }

    /// `actor` unmarked `message`.
    pub fn remove(&mut self, message: &MessageKey, mark: Mark, actor: &UserId) -> CaptureChange {
        let Some(holders) = self.messages.get_mut(message) else {
            return CaptureChange::Unchanged;
        };
        let change = holders.remove(mark, actor);
        if !holders.is_captured() {
            self.messages.remove(message);
        }
        change
    }

    /// Whether the message is on the timeline.
    pub fn is_captured(&self, message: &MessageKey) -> bool {
        self.messages.get(message).is_some_and(Holders::is_captured)
    }

    /// What holds the message, if it is on the timeline.
    pub fn holders(&self, message: &MessageKey) -> Option<&Holders> {
        self.messages.get(message)
    }

    /// The messages on the timeline.
    pub fn captured(&self) -> impl Iterator<Item = &MessageKey> {
        self.messages.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn u(s: &str) -> UserId {
        UserId::new(s)
    }

    fn key() -> MessageKey {
        MessageKey::new("C1", "1764684300.000200")
    }

    const BOT: &str = "UBOT";

    #[test]
    fn three_reactions_and_a_pin_make_one_entry_until_the_last_is_removed() {
        let mut set = CaptureSet::new(u(BOT));
        let m = key();
        assert_eq!(set.add(&m, Mark::Reaction, &u("U1")), CaptureChange::Added);
        assert_eq!(
            set.add(&m, Mark::Reaction, &u("U2")),
            CaptureChange::HolderAdded
        );
        assert_eq!(
            set.add(&m, Mark::Reaction, &u("U3")),
            CaptureChange::HolderAdded
        );
        assert_eq!(set.add(&m, Mark::Pin, &u("U1")), CaptureChange::HolderAdded);
        assert_eq!(set.captured().count(), 1);
        assert_eq!(set.holders(&m).unwrap().iter().count(), 4);

        assert_eq!(
            set.remove(&m, Mark::Reaction, &u("U2")),
            CaptureChange::HolderRemoved
        );
        // Whoever unpins, the pin is gone.
        assert_eq!(
            set.remove(&m, Mark::Pin, &u("U9")),
            CaptureChange::HolderRemoved
        );
        assert_eq!(
            set.remove(&m, Mark::Reaction, &u("U1")),
            CaptureChange::HolderRemoved
        );
        assert!(set.is_captured(&m));
        assert_eq!(
            set.remove(&m, Mark::Reaction, &u("U3")),
            CaptureChange::Removed
        );
        assert!(!set.is_captured(&m));
        assert_eq!(set.captured().count(), 0);
    }

    #[test]
    fn a_redelivered_mark_or_a_stray_removal_changes_nothing() {
        let mut set = CaptureSet::new(u(BOT));
        let m = key();
        assert_eq!(
            set.remove(&m, Mark::Reaction, &u("U1")),
            CaptureChange::Unchanged
        );
        set.add(&m, Mark::Reaction, &u("U1"));
        assert_eq!(
            set.add(&m, Mark::Reaction, &u("U1")),
            CaptureChange::Unchanged
        );
        assert_eq!(
            set.remove(&m, Mark::Reaction, &u("U2")),
            CaptureChange::Unchanged
        );
        assert!(set.is_captured(&m));
    }

    #[test]
    fn incds_own_pins_and_reactions_never_count() {
        let mut set = CaptureSet::new(u(BOT));
        let m = key();
        assert_eq!(set.add(&m, Mark::Pin, &u(BOT)), CaptureChange::Ignored);
        assert_eq!(set.add(&m, Mark::Reaction, &u(BOT)), CaptureChange::Ignored);
        assert!(!set.is_captured(&m));
        // Unpinning incd's own pin of its summary is not a removal of anything.
        assert_eq!(set.remove(&m, Mark::Pin, &u(BOT)), CaptureChange::Unchanged);
    }

    #[test]
    fn a_message_can_come_back_after_it_was_removed() {
        let mut set = CaptureSet::new(u(BOT));
        let m = key();
        set.add(&m, Mark::Pin, &u("U1"));
        assert_eq!(set.remove(&m, Mark::Pin, &u("U1")), CaptureChange::Removed);
        assert_eq!(set.add(&m, Mark::Reaction, &u("U2")), CaptureChange::Added);
    }

    #[test]
    fn holders_round_trip_through_their_stored_form() {
        for h in [Holder::Pin, Holder::Reaction(u("U1"))] {
            assert_eq!(h.to_string().parse::<Holder>(), Ok(h.clone()));
        }
        assert_eq!(Holder::Reaction(u("U1")).to_string(), "reaction:U1");
        for bad in ["", "pins", "reaction:", "shortcut:U1"] {
            assert!(bad.parse::<Holder>().is_err(), "{bad}");
        }
        let stored = Holders::from_holders([Holder::Pin]);
        assert!(stored.is_captured());
    }

    #[test]
    fn a_message_timestamp_is_read_as_its_original_time() {
        let at = message_time(&MessageTs::from("1764684300.000200")).unwrap();
        assert_eq!(at.timestamp(), 1_764_684_300);
        assert_eq!(at.timestamp_subsec_micros(), 200);
        assert_eq!(
            message_time(&MessageTs::from("1764684300"))
                .unwrap()
                .timestamp(),
            1_764_684_300
        );
        assert_eq!(
            message_time(&MessageTs::from("1764684300.5"))
                .unwrap()
                .timestamp_subsec_micros(),
            500_000
        );
        for bad in ["", ".", "abc", "1.2.3", "-1.0", "1.1234567", "1. 2"] {
            assert_eq!(message_time(&MessageTs::from(bad)), None, "{bad}");
        }
    }

    #[test]
    fn a_captured_entry_carries_the_message_time_link_and_author() {
        let e = TimelineEntry::captured(
            &key(),
            Some(u("U1")),
            "rolled back",
            Some("https://x.slack.com/archives/C1/p1764684300000200".into()),
        )
        .unwrap();
        assert_eq!(format_utc(e.at), "2025-12-02 14:05 UTC");
        assert_eq!(
            e.permalink(),
            Some("https://x.slack.com/archives/C1/p1764684300000200")
        );
        assert!(!e.kind.is_system());
        assert_eq!(key().source_key(), "msg:C1:1764684300.000200");
    }

    #[test]
    fn times_show_date_minutes_and_utc() {
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 14, 5, 59).unwrap();
        assert_eq!(format_utc(at), "2026-12-02 14:05 UTC");
    }

    #[test]
    fn entry_kinds_serialise_with_a_tag() {
        let kind = EntryKind::FollowUpAdded {
            follow_up: FollowUpRef(2),
        };
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, r#"{"kind":"follow_up_added","follow_up":2}"#);
        assert_eq!(serde_json::from_str::<EntryKind>(&json).unwrap(), kind);
        let role = EntryKind::RoleChanged {
            role: Role::Ops,
            handover: true,
        };
        assert_eq!(
            serde_json::from_str::<EntryKind>(&serde_json::to_string(&role).unwrap()).unwrap(),
            role
        );
        assert!(EntryKind::Declared.is_system());
    }

    #[test]
    fn people_appear_in_order_of_first_appearance_with_mentions() {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let entry = |author: Option<&str>, text: &str| TimelineEntry {
            at,
            author: author.map(u),
            kind: EntryKind::Note,
            text: text.into(),
        };
        let entries = [
            entry(None, "declared by <@U3|carol>"),
            entry(Some("U1"), "asking <@U2> and <@U3>"),
            entry(Some("U2"), "<@U1|ann> done"),
        ];
        assert_eq!(people_in_order(&entries), [u("U3"), u("U1"), u("U2")]);
        assert_eq!(
            mentioned_users("a <@U1> <#C1|x> <@W2|b c> <@bad> <@U3"),
            [u("U1"), u("W2")]
        );
    }

    #[test]
    fn sorting_keeps_the_recorded_order_of_simultaneous_entries() {
        let t = |m| Utc.with_ymd_and_hms(2026, 1, 1, 0, m, 0).unwrap();
        let entry = |m, text: &str| TimelineEntry {
            at: t(m),
            author: None,
            kind: EntryKind::Note,
            text: text.into(),
        };
        let mut entries = vec![entry(5, "b"), entry(1, "a"), entry(5, "c")];
        sort_chronologically(&mut entries);
        let texts: Vec<_> = entries.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c"]);
    }

    proptest! {
        #[test]
        fn a_message_is_captured_exactly_while_someone_holds_it(
            ops in proptest::collection::vec((any::<bool>(), 0u8..4, any::<bool>()), 0..40)
        ) {
            // (add?, who (0 = incd), pin?) applied in order against a model of live holders.
            let mut set = CaptureSet::new(u("U0"));
            let m = key();
            let mut model: BTreeSet<String> = BTreeSet::new();
            for (add, who, pin) in ops {
                let actor = u(&format!("U{who}"));
                let mark = if pin { Mark::Pin } else { Mark::Reaction };
                let name = if pin { "pin".to_string() } else { format!("r{who}") };
                let before = !model.is_empty();
                let change = if add {
                    if who != 0 { model.insert(name); }
                    set.add(&m, mark, &actor)
                } else {
                    model.remove(&name);
                    set.remove(&m, mark, &actor)
                };
                let after = !model.is_empty();
                prop_assert_eq!(set.is_captured(&m), after);
                match (before, after) {
                    (false, true) => prop_assert_eq!(change, CaptureChange::Added),
                    (true, false) => prop_assert_eq!(change, CaptureChange::Removed),
                    _ => prop_assert!(!matches!(change, CaptureChange::Added | CaptureChange::Removed)),
                }
            }
        }

        #[test]
        fn reading_arbitrary_text_never_panics(text in "\\PC*") {
            let _ = mentioned_users(&text);
            let _ = message_time(&MessageTs::new(text.clone()));
            let _ = text.parse::<Holder>();
        }
    }
}
