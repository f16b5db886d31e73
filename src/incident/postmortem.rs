//! The post-mortem document incd writes itself, as plain data.
//!
//! Owns what the post-mortem says and in which order: abstract, key facts, people by role label,
//! timeline, impact, the three headed placeholders for the issues found (what went wrong, what
//! went well, where we got lucky), follow-ups as to-do items, and once closed, the review. It is
//! built from the facts incd recorded, the timeline, the follow-ups and the blameless label map.
//! People appear by name only in the people table: everywhere else, mentions, user ids, Slack
//! handles and known names are replaced by labels. Each section has a stable id and heading, so a
//! writer can tell which sections a page already holds and append only the missing ones. Turning
//! this into Notion blocks (and Notion's limits) is the Notion client's job; no I/O here.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::follow_up::{FollowUp, FollowUpRef, FollowUpState};
use super::human_duration;
use super::ids::UserId;
use super::roles::PeopleLabels;
use super::timeline::{format_utc, TimelineEntry};

/// What each person is called: the first name is shown in the people table; every name listed
/// (display name, real name, handle) is replaced by the person's label everywhere else.
pub type Names = BTreeMap<UserId, Vec<String>>;

/// Who a system entry without a person is attributed to.
pub const SYSTEM_AUTHOR: &str = "incd";
/// Who a captured message without a known author (an integration's post) is attributed to.
pub const UNKNOWN_AUTHOR: &str = "Unattributed";
/// Shortest name replaced in free text: shorter ones would replace parts of ordinary words.
const MIN_NAME_CHARS: usize = 3;

/// The facts about the incident the document states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostMortemFacts {
    pub title: String,
    pub description: String,
    /// The severity as shown, e.g. `SEV2`.
    pub severity: String,
    /// The status as shown, e.g. `Resolved` or `Closed`.
    pub status: String,
    /// The resolution summary from the resolve form.
    pub resolution: Option<String>,
    /// The impact from the resolve form.
    pub impact: Option<String>,
    pub declared_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The date the review was held, from the close form.
    pub review_held_on: Option<NaiveDate>,
    /// The notes from the close form.
    pub review_notes: Option<String>,
    /// The incident channel's name, without `#`.
    pub channel_name: String,
    pub channel_url: Option<String>,
    pub page_url: Option<String>,
    pub pagerduty_url: Option<String>,
}

/// A section of the document. The order of [`SectionId::ALL`] is the order on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SectionId {
    Abstract,
    KeyFacts,
    People,
    Timeline,
    Impact,
    WhatWentWrong,
    WhatWentWell,
    WhereWeGotLucky,
    FollowUps,
    /// Only once the incident is closed.
    Review,
}

impl SectionId {
    /// Every section, in page order.
    pub const ALL: [SectionId; 10] = [
        SectionId::Abstract,
        SectionId::KeyFacts,
        SectionId::People,
        SectionId::Timeline,
        SectionId::Impact,
        SectionId::WhatWentWrong,
        SectionId::WhatWentWell,
        SectionId::WhereWeGotLucky,
        SectionId::FollowUps,
        SectionId::Review,
    ];

    /// A stable machine id, for a writer that records what it wrote.
    pub fn as_str(self) -> &'static str {
        match self {
            SectionId::Abstract => "abstract",
            SectionId::KeyFacts => "key-facts",
            SectionId::People => "people",
            SectionId::Timeline => "timeline",
            SectionId::Impact => "impact",
            SectionId::WhatWentWrong => "what-went-wrong",
            SectionId::WhatWentWell => "what-went-well",
            SectionId::WhereWeGotLucky => "where-we-got-lucky",
            SectionId::FollowUps => "follow-ups",
            SectionId::Review => "review",
        }
    }

    /// The section's heading on the page; also stable, so a writer reading the page back can
    /// tell which sections are there.
    pub fn heading(self) -> &'static str {
        match self {
            SectionId::Abstract => "Abstract",
            SectionId::KeyFacts => "Key facts",
            SectionId::People => "People",
            SectionId::Timeline => "Timeline",
            SectionId::Impact => "Impact",
            SectionId::WhatWentWrong => "What went wrong",
            SectionId::WhatWentWell => "What went well",
            SectionId::WhereWeGotLucky => "Where we got lucky",
            SectionId::FollowUps => "Follow-ups",
            SectionId::Review => "Review and close",
        }
    }

    /// The section a page heading stands for.
    pub fn from_heading(heading: &str) -> Option<SectionId> {
        SectionId::ALL
            .into_iter()
            .find(|s| s.heading() == heading.trim())
    }

    /// The section a machine id stands for.
    pub fn parse(id: &str) -> Option<SectionId> {
        SectionId::ALL.into_iter().find(|s| s.as_str() == id)
    }
}

/// One piece of a section's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A paragraph of plain text.
    Paragraph(String),
    /// Text that people are meant to replace (shown as such, e.g. in grey or italics).
    Placeholder(String),
    /// A labelled fact, with a link when the value is something to open.
    Fact {
        label: String,
        value: String,
        link: Option<String>,
    },
    /// A row of the people table: the only place a name appears.
    Person { label: String, name: String },
    /// A timeline entry: date and UTC time, who (a label), what, and the message link.
    TimelineItem {
        when: String,
        who: String,
        text: String,
        permalink: Option<String>,
    },
    /// A follow-up as a to-do item: checked when done, struck through when won't do.
    ToDo {
        reference: FollowUpRef,
        title: String,
        /// The owner's label.
        owner: Option<String>,
        due: Option<NaiveDate>,
        checked: bool,
        wont_do: bool,
    },
}

impl Block {
    /// The block as one line of plain text (for a writer that needs only text, and for tests).
    pub fn plain_text(&self) -> String {
        match self {
            Block::Paragraph(t) | Block::Placeholder(t) => t.clone(),
            Block::Fact { label, value, .. } => format!("{label}: {value}"),
            Block::Person { label, name } => format!("{label}: {name}"),
            Block::TimelineItem {
                when,
                who,
                text,
                permalink,
            } => match permalink {
                Some(link) => format!("{when} · {who}: {text} ({link})"),
                None => format!("{when} · {who}: {text}"),
            },
            Block::ToDo {
                reference,
                title,
                owner,
                due,
                wont_do,
                ..
            } => {
                let mut line = format!("{reference} {title}");
                if let Some(owner) = owner {
                    line.push_str(&format!(" · owner {owner}"));
                }
                if let Some(due) = due {
                    line.push_str(&format!(" · due {due}"));
                }
                if *wont_do {
                    line.push_str(" · won't do");
                }
                line
            }
        }
    }
}

/// A headed section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub id: SectionId,
    pub blocks: Vec<Block>,
}

impl Section {
    /// The section's heading.
    pub fn heading(&self) -> &'static str {
        self.id.heading()
    }
}

/// The whole document, sections in page order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostMortem {
    pub sections: Vec<Section>,
}

impl PostMortem {
    /// Build the document. `timeline` holds the entries to show (removed ones left out), in any
    /// order; `labels` must cover everyone in the timeline and every follow-up owner (build it
    /// with [`PeopleLabels::build`] from the role history and
    /// [`people_in_order`](super::timeline::people_in_order) plus the owners).
    pub fn build(
        facts: &PostMortemFacts,
        timeline: &[TimelineEntry],
        follow_ups: &[FollowUp],
        labels: &PeopleLabels,
        names: &Names,
    ) -> PostMortem {
        let blameless = Blameless::new(labels, names, timeline);
        let mut sections = vec![
            abstract_section(facts, &blameless),
            key_facts(facts),
            people(labels, names),
            timeline_section(timeline, labels, &blameless),
            impact(facts, &blameless),
            placeholder(
                SectionId::WhatWentWrong,
                "What went wrong, as many issues as you can find: technical, time, budget, \
                 people, communication. Not a single root cause.",
            ),
            placeholder(
                SectionId::WhatWentWell,
                "What went well and should be kept.",
            ),
            placeholder(
                SectionId::WhereWeGotLucky,
                "Where luck helped, and what would have happened without it.",
            ),
            follow_up_section(follow_ups, labels, &blameless),
        ];
        if facts.closed_at.is_some() {
            sections.push(review(facts, &blameless));
        }
        PostMortem { sections }
    }

    /// The section with this id, if the document has it.
    pub fn section(&self, id: SectionId) -> Option<&Section> {
        self.sections.iter().find(|s| s.id == id)
    }

    /// The sections a page does not hold yet, in page order: what an idempotent writer appends.
    pub fn missing(&self, present: impl IntoIterator<Item = SectionId>) -> Vec<&Section> {
        let present: Vec<SectionId> = present.into_iter().collect();
        self.sections
            .iter()
            .filter(|s| !present.contains(&s.id))
            .collect()
    }
}

fn abstract_section(facts: &PostMortemFacts, b: &Blameless) -> Section {
    let mut blocks = vec![Block::Paragraph(b.text(&facts.title))];
    if !facts.description.trim().is_empty() {
        blocks.push(Block::Paragraph(b.text(&facts.description)));
    }
    blocks.push(match &facts.resolution {
        Some(r) if !r.trim().is_empty() => Block::Paragraph(b.text(r)),
        _ => Block::Placeholder(
            "The resolution summary is added when the incident is resolved.".into(),
        ),
    });
    let duration = match facts.resolved_at {
        Some(resolved) => human_duration(resolved - facts.declared_at),
        None => "ongoing".into(),
    };
    blocks.push(Block::Paragraph(format!(
        "Severity {} · Duration {} · Status {}",
        facts.severity, duration, facts.status
    )));
    Section {
        id: SectionId::Abstract,
        blocks,
    }
}

fn key_facts(facts: &PostMortemFacts) -> Section {
    let fact = |label: &str, value: String, link: Option<&String>| Block::Fact {
        label: label.into(),
        value,
        link: link.cloned(),
    };
    let mut blocks = vec![fact("Declared", format_utc(facts.declared_at), None)];
    if let Some(at) = facts.resolved_at {
        blocks.push(fact("Resolved", format_utc(at), None));
    }
    if let Some(at) = facts.closed_at {
        blocks.push(fact("Closed", format_utc(at), None));
    }
    if let Some(day) = facts.review_held_on {
        blocks.push(fact("Review held on", day.to_string(), None));
    }
    blocks.push(fact(
        "Channel",
        format!("#{}", facts.channel_name),
        facts.channel_url.as_ref(),
    ));
    if let Some(url) = &facts.page_url {
        blocks.push(fact("Post-mortem", url.clone(), Some(url)));
    }
    if let Some(url) = &facts.pagerduty_url {
        blocks.push(fact("PagerDuty incident", url.clone(), Some(url)));
    }
    Section {
        id: SectionId::KeyFacts,
        blocks,
    }
}

fn people(labels: &PeopleLabels, names: &Names) -> Section {
    let mut blocks: Vec<Block> = labels
        .rows()
        .iter()
        .map(|row| Block::Person {
            label: row.label.clone(),
            name: names
                .get(&row.user)
                .and_then(|n| n.first())
                .cloned()
                .unwrap_or_else(|| row.user.to_string()),
        })
        .collect();
    if blocks.is_empty() {
        blocks.push(Block::Placeholder("Nobody recorded yet.".into()));
    }
    Section {
        id: SectionId::People,
        blocks,
    }
}

fn timeline_section(entries: &[TimelineEntry], labels: &PeopleLabels, b: &Blameless) -> Section {
    let mut ordered: Vec<&TimelineEntry> = entries.iter().collect();
    ordered.sort_by_key(|e| e.at);
    let mut blocks: Vec<Block> = ordered
        .into_iter()
        .map(|e| Block::TimelineItem {
            when: format_utc(e.at),
            who: match &e.author {
                Some(user) => labels.label_of(user).unwrap_or(UNKNOWN_AUTHOR).to_string(),
                None if e.kind.is_system() => SYSTEM_AUTHOR.into(),
                None => UNKNOWN_AUTHOR.into(),
            },
            text: b.text(&e.text),
            permalink: e.permalink().map(String::from),
        })
        .collect();
    if blocks.is_empty() {
        blocks.push(Block::Placeholder("Nothing recorded yet.".into()));
    }
    Section {
        id: SectionId::Timeline,
        blocks,
    }
}

fn impact(facts: &PostMortemFacts, b: &Blameless) -> Section {
    let block = match &facts.impact {
        Some(i) if !i.trim().is_empty() => Block::Paragraph(b.text(i)),
        _ => Block::Placeholder(
            "How the incident affected users and other stakeholders: who, how many, for how long."
                .into(),
        ),
    };
    Section {
        id: SectionId::Impact,
        blocks: vec![block],
    }
}

fn placeholder(id: SectionId, text: &str) -> Section {
    Section {
        id,
        blocks: vec![Block::Placeholder(text.into())],
    }
}

fn follow_up_section(follow_ups: &[FollowUp], labels: &PeopleLabels, b: &Blameless) -> Section {
    let mut ordered: Vec<&FollowUp> = follow_ups.iter().collect();
    ordered.sort_by_key(|f| f.number);
    let mut blocks: Vec<Block> = ordered
        .into_iter()
        .map(|f| Block::ToDo {
            reference: f.reference(),
            title: b.text(&f.title),
            owner: f
                .owner
                .as_ref()
                .map(|o| labels.label_of(o).unwrap_or(UNKNOWN_AUTHOR).to_string()),
            due: f.due,
            checked: f.state == FollowUpState::Done,
            wont_do: f.state == FollowUpState::WontDo,
        })
        .collect();
    if blocks.is_empty() {
        blocks.push(Block::Placeholder(
            "No follow-ups yet. Add them with /incident follow-up.".into(),
        ));
    }
    Section {
        id: SectionId::FollowUps,
        blocks,
    }
}

fn review(facts: &PostMortemFacts, b: &Blameless) -> Section {
    let mut blocks = Vec::new();
    if let Some(at) = facts.closed_at {
        blocks.push(Block::Fact {
            label: "Closed".into(),
            value: format_utc(at),
            link: None,
        });
    }
    if let Some(day) = facts.review_held_on {
        blocks.push(Block::Fact {
            label: "Review held on".into(),
            value: day.to_string(),
            link: None,
        });
    }
    if let Some(notes) = facts.review_notes.as_ref().filter(|n| !n.trim().is_empty()) {
        blocks.push(Block::Paragraph(b.text(notes)));
    }
    Section {
        id: SectionId::Review,
        blocks,
    }
}

/// Rewrites Slack text so that people appear only by label.
struct Blameless<'a> {
    labels: &'a PeopleLabels,
    /// Words to replace (names, handles, user ids) with their label, longest first.
    words: Vec<(String, String)>,
}

impl<'a> Blameless<'a> {
    fn new(labels: &'a PeopleLabels, names: &Names, timeline: &[TimelineEntry]) -> Blameless<'a> {
        let mut words: BTreeMap<String, String> = BTreeMap::new();
        let mut add = |word: &str, user: &UserId| {
            if let Some(label) = labels.label_of(user) {
                if word.chars().count() >= MIN_NAME_CHARS {
                    words.insert(word.to_string(), label.to_string());
                }
            }
        };
        for row in labels.rows() {
            add(row.user.as_str(), &row.user);
        }
        for (user, list) in names {
            for name in list {
                add(name.trim(), user);
            }
        }
        // Handles carried by escaped mentions (`<@U1|jane>`) are names too.
        for e in timeline {
            for (user, handle) in mention_handles(&e.text) {
                add(handle, &user);
            }
        }
        let mut words: Vec<(String, String)> = words.into_iter().collect();
        words.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Blameless { labels, words }
    }

    /// Slack text as plain text with people by label: mentions become labels, channel and
    /// special mentions and links become readable text, entities are unescaped, and known names,
    /// handles and user ids in the remaining text become labels.
    fn text(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            match after.find(['<', '>']) {
                Some(end) if after.as_bytes()[end] == b'>' => {
                    out.push_str(&self.plain(&rest[..open]));
                    out.push_str(&self.markup(&after[..end]));
                    rest = &after[end + 1..];
                }
                // Another `<` before any `>`: this one is a literal character, not markup.
                Some(end) => {
                    out.push_str(&self.plain(&rest[..open + 1 + end]));
                    rest = &after[end..];
                }
                None => break,
            }
        }
        out.push_str(&self.plain(rest));
        out
    }

    /// One `<…>` group.
    fn markup(&self, inner: &str) -> String {
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) => (t, Some(l)),
            None => (inner, None),
        };
        if let Some(user) = target.strip_prefix('@') {
            return self
                .labels
                .label_of(&UserId::new(user))
                .unwrap_or("someone")
                .to_string();
        }
        if let Some(channel) = target.strip_prefix('#') {
            return format!("#{}", label.unwrap_or(channel));
        }
        if let Some(special) = target.strip_prefix('!') {
            return match label {
                Some(l) => self.plain(l),
                None => format!("@{}", special.split('^').next().unwrap_or(special)),
            };
        }
        match label {
            Some(l) => format!("{} ({})", self.plain(l), unescape(target)),
            None => unescape(target),
        }
    }

    /// Text outside markup: unescape, then replace known words at word boundaries.
    fn plain(&self, text: &str) -> String {
        let text = unescape(text);
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        let mut prev: Option<char> = None;
        'scan: while i < text.len() {
            if !prev.is_some_and(char::is_alphanumeric) {
                for (word, label) in &self.words {
                    if text[i..].starts_with(word.as_str())
                        && !text[i + word.len()..]
                            .chars()
                            .next()
                            .is_some_and(char::is_alphanumeric)
                    {
                        out.push_str(label);
                        i += word.len();
                        prev = word.chars().last();
                        continue 'scan;
                    }
                }
            }
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            prev = Some(c);
            i += c.len_utf8();
        }
        out
    }
}

/// The `(user, handle)` pairs of escaped mentions (`<@U1|jane>`).
fn mention_handles(text: &str) -> Vec<(UserId, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("<@") {
        let Some(close) = rest[open..].find('>').map(|c| open + c) else {
            break;
        };
        if let Some((user, handle)) = rest[open + 2..close].split_once('|') {
            out.push((UserId::new(user), handle.trim()));
        }
        rest = &rest[close + 1..];
    }
    out
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::follow_up::Closure;
    use crate::incident::roles::{Role, RoleHolding};
    use crate::incident::timeline::{people_in_order, EntryKind, MessageKey};
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn u(s: &str) -> UserId {
        UserId::new(s)
    }

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 14, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    fn facts() -> PostMortemFacts {
        PostMortemFacts {
            title: "Checkout down".into(),
            description: "EU checkout returns 500".into(),
            severity: "SEV2".into(),
            status: "Resolved".into(),
            resolution: Some("Rolled back the deploy <@U2|bob> shipped".into()),
            impact: Some("EU customers could not pay for 65 minutes".into()),
            declared_at: t(0),
            resolved_at: Some(t(65)),
            closed_at: None,
            review_held_on: None,
            review_notes: None,
            channel_name: "incd-20261202-brave-otter".into(),
            channel_url: Some("https://slack.example/archives/C1".into()),
            page_url: Some("https://notion.example/page".into()),
            pagerduty_url: None,
        }
    }

    fn entry(min: i64, author: Option<&str>, kind: EntryKind, text: &str) -> TimelineEntry {
        TimelineEntry {
            at: t(min),
            author: author.map(u),
            kind,
            text: text.into(),
        }
    }

    fn timeline() -> Vec<TimelineEntry> {
        let captured = TimelineEntry::captured(
            &MessageKey::new("C1", format!("{}.000100", t(20).timestamp())),
            Some(u("U3")),
            "Jane Doe: I think it's the deploy, <@U2|bob> can you check? &lt;not a tag&gt;",
            Some("https://slack.example/archives/C1/p1".into()),
        )
        .unwrap();
        vec![
            entry(30, Some("U2"), EntryKind::Note, "rolled back, Bob here"),
            entry(0, Some("U1"), EntryKind::Declared, "Declared by <@U1>"),
            captured,
            entry(
                5,
                Some("U1"),
                EntryKind::RoleChanged {
                    role: Role::Ops,
                    handover: false,
                },
                "<@U2|bob> is now Operations",
            ),
            entry(65, None, EntryKind::Resolved, "Resolved"),
        ]
    }

    fn names() -> Names {
        [
            (u("U1"), vec!["Jane Doe".to_string(), "jane".to_string()]),
            (u("U2"), vec!["Bob Stone".to_string(), "Bob".to_string()]),
            (u("U3"), vec!["Carol Reyes".to_string()]),
            (u("U4"), vec!["Dan Wu".to_string()]),
        ]
        .into_iter()
        .collect()
    }

    fn follow_ups() -> Vec<FollowUp> {
        let mut done = FollowUp::new(2, "Alert on 5xx rate", Some(u("U2")), None);
        done.close(Closure::Done).unwrap();
        let mut dropped = FollowUp::new(3, "Rewrite checkout", None, None);
        dropped.close(Closure::WontDo).unwrap();
        vec![
            dropped,
            FollowUp::new(
                1,
                "Canary deploys, ask <@U1|jane>",
                Some(u("U4")),
                NaiveDate::from_ymd_opt(2027, 1, 15),
            ),
            done,
        ]
    }

    fn build(facts: &PostMortemFacts) -> (PostMortem, PeopleLabels) {
        let tl = timeline();
        let history = [
            RoleHolding {
                role: Role::Commander,
                user: u("U1"),
            },
            RoleHolding {
                role: Role::Ops,
                user: u("U2"),
            },
        ];
        let mut participants = people_in_order(&tl);
        participants.extend(follow_ups().iter().filter_map(|f| f.owner.clone()));
        let labels = PeopleLabels::build(&history, &participants);
        let pm = PostMortem::build(facts, &tl, &follow_ups(), &labels, &names());
        (pm, labels)
    }

    fn lines(pm: &PostMortem, id: SectionId) -> Vec<String> {
        pm.section(id)
            .unwrap()
            .blocks
            .iter()
            .map(Block::plain_text)
            .collect()
    }

    #[test]
    fn sections_come_in_page_order_with_stable_headings() {
        let (pm, _) = build(&facts());
        let ids: Vec<SectionId> = pm.sections.iter().map(|s| s.id).collect();
        assert_eq!(ids, &SectionId::ALL[..9], "no review section before close");
        for id in SectionId::ALL {
            assert_eq!(SectionId::from_heading(id.heading()), Some(id));
            assert_eq!(SectionId::parse(id.as_str()), Some(id));
        }
        assert_eq!(SectionId::from_heading("Lessons"), None);
    }

    #[test]
    fn the_abstract_gives_the_resolution_severity_and_duration() {
        let (pm, _) = build(&facts());
        let abs = lines(&pm, SectionId::Abstract);
        assert_eq!(abs[0], "Checkout down");
        assert_eq!(abs[2], "Rolled back the deploy Operations A shipped");
        assert_eq!(abs[3], "Severity SEV2 · Duration 1h 05m · Status Resolved");
    }

    #[test]
    fn key_facts_give_utc_times_and_links() {
        let (pm, _) = build(&facts());
        assert_eq!(
            lines(&pm, SectionId::KeyFacts),
            [
                "Declared: 2026-12-02 14:00 UTC",
                "Resolved: 2026-12-02 15:05 UTC",
                "Channel: #incd-20261202-brave-otter",
                "Post-mortem: https://notion.example/page",
            ]
        );
        let channel = &pm.section(SectionId::KeyFacts).unwrap().blocks[2];
        assert!(matches!(channel, Block::Fact { link: Some(l), .. } if l.ends_with("/C1")));
    }

    #[test]
    fn the_people_table_maps_labels_to_names() {
        let (pm, _) = build(&facts());
        assert_eq!(
            lines(&pm, SectionId::People),
            [
                "Incident command: Jane Doe",
                "Operations A: Bob Stone",
                "Responder A: Carol Reyes",
                "Responder B: Dan Wu",
            ]
        );
    }

    #[test]
    fn the_timeline_lists_every_entry_in_order_by_label_with_links() {
        let (pm, _) = build(&facts());
        assert_eq!(
            lines(&pm, SectionId::Timeline),
            [
                "2026-12-02 14:00 UTC · Incident command: Declared by Incident command",
                "2026-12-02 14:05 UTC · Incident command: Operations A is now Operations",
                "2026-12-02 14:20 UTC · Responder A: Incident command: I think it's the deploy, \
                 Operations A can you check? <not a tag> (https://slack.example/archives/C1/p1)",
                "2026-12-02 14:30 UTC · Operations A: rolled back, Operations A here",
                "2026-12-02 15:05 UTC · incd: Resolved",
            ]
        );
    }

    #[test]
    fn no_name_or_user_id_appears_outside_the_people_table() {
        let mut f = facts();
        f.closed_at = Some(t(60 * 24 * 30));
        f.review_notes = Some("Thanks Carol Reyes and <@U4|dan>".into());
        let (pm, _) = build(&f);
        let forbidden = [
            "Jane", "jane", "Bob", "bob", "Carol", "Reyes", "Dan", "dan", "U1", "U2", "U3", "U4",
        ];
        for section in pm.sections.iter().filter(|s| s.id != SectionId::People) {
            for block in &section.blocks {
                let text = format!("{block:?}");
                for word in forbidden {
                    assert!(
                        !text.contains(word),
                        "{word:?} leaks in {}: {text}",
                        section.heading()
                    );
                }
            }
        }
    }

    #[test]
    fn follow_ups_are_to_dos_with_state_owner_label_and_due_date() {
        let (pm, _) = build(&facts());
        let blocks = &pm.section(SectionId::FollowUps).unwrap().blocks;
        assert_eq!(
            blocks.iter().map(Block::plain_text).collect::<Vec<_>>(),
            [
                "F-1 Canary deploys, ask Incident command · owner Responder B · due 2027-01-15",
                "F-2 Alert on 5xx rate · owner Operations A",
                "F-3 Rewrite checkout · won't do",
            ]
        );
        let states: Vec<(bool, bool)> = blocks
            .iter()
            .map(|b| match b {
                Block::ToDo {
                    checked, wont_do, ..
                } => (*checked, *wont_do),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(states, [(false, false), (true, false), (false, true)]);
    }

    #[test]
    fn impact_and_issue_sections_are_placeholders_until_filled() {
        let mut f = facts();
        f.impact = None;
        let (pm, _) = build(&f);
        for id in [
            SectionId::Impact,
            SectionId::WhatWentWrong,
            SectionId::WhatWentWell,
            SectionId::WhereWeGotLucky,
        ] {
            let s = pm.section(id).unwrap();
            assert!(matches!(s.blocks[..], [Block::Placeholder(_)]), "{id:?}");
        }
        let (filled, _) = build(&facts());
        assert_eq!(
            lines(&filled, SectionId::Impact),
            ["EU customers could not pay for 65 minutes"]
        );
    }

    #[test]
    fn closing_adds_the_review_section_and_the_closing_facts() {
        let mut f = facts();
        f.status = "Closed".into();
        f.closed_at = Some(t(60 * 24 * 30));
        f.review_held_on = NaiveDate::from_ymd_opt(2027, 1, 1);
        f.review_notes = Some("All follow-ups tracked.".into());
        let (pm, _) = build(&f);
        assert_eq!(pm.sections.last().unwrap().id, SectionId::Review);
        assert_eq!(
            lines(&pm, SectionId::Review),
            [
                "Closed: 2027-01-01 14:00 UTC",
                "Review held on: 2027-01-01",
                "All follow-ups tracked."
            ]
        );
        assert!(lines(&pm, SectionId::KeyFacts).contains(&"Closed: 2027-01-01 14:00 UTC".into()));
    }

    #[test]
    fn a_writer_appends_only_the_missing_sections_in_order() {
        let (pm, _) = build(&facts());
        let missing: Vec<SectionId> = pm
            .missing([SectionId::Abstract, SectionId::KeyFacts, SectionId::Impact])
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(
            missing,
            [
                SectionId::People,
                SectionId::Timeline,
                SectionId::WhatWentWrong,
                SectionId::WhatWentWell,
                SectionId::WhereWeGotLucky,
                SectionId::FollowUps,
            ]
        );
        assert!(pm.missing(SectionId::ALL).is_empty());
        // Building twice from the same facts gives the same document.
        assert_eq!(build(&facts()).0, pm);
    }

    #[test]
    fn an_empty_incident_still_has_every_section() {
        let mut f = facts();
        f.resolved_at = None;
        f.resolution = None;
        let pm = PostMortem::build(&f, &[], &[], &PeopleLabels::default(), &Names::new());
        assert_eq!(pm.sections.len(), 9);
        assert!(lines(&pm, SectionId::Abstract)
            .last()
            .unwrap()
            .contains("Duration ongoing"));
        for id in [SectionId::People, SectionId::Timeline, SectionId::FollowUps] {
            assert!(matches!(
                pm.section(id).unwrap().blocks[..],
                [Block::Placeholder(_)]
            ));
        }
    }

    #[test]
    fn slack_markup_becomes_readable_text() {
        let labels = PeopleLabels::build(&[], &[u("U1")]);
        let b = Blameless::new(&labels, &Names::new(), &[]);
        assert_eq!(
            b.text("<@U1> see <#C9|general>, <https://x.io/a|the graph> and <https://y.io> <!here> <!subteam^S1|@oncall> a &amp; b <@U7>"),
            "Responder A see #general, the graph (https://x.io/a) and https://y.io @here @oncall a & b someone"
        );
        // Names are replaced only as whole words.
        let names: Names = [(u("U1"), vec!["Max".to_string()])].into_iter().collect();
        let b = Blameless::new(&labels, &names, &[]);
        assert_eq!(
            b.text("Max saw Maximum load"),
            "Responder A saw Maximum load"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics_and_never_shows_a_known_name(
            text in "\\PC{0,200}",
            before in "[ ,.]{0,2}",
        ) {
            let labels = PeopleLabels::build(&[], &[u("U1")]);
            let names: Names = [(u("U1"), vec!["Zorblax".to_string()])].into_iter().collect();
            let b = Blameless::new(&labels, &names, &[]);
            let _ = b.text(&text);
            let out = b.text(&format!("{text}{before} Zorblax <@U1|zorb>"));
            prop_assert!(!out.contains("zorb"));
            prop_assert!(out.ends_with("Responder A Responder A"), "{}", out);
        }
    }
}
