//! Notion client: create an incident's post-mortem page when it is declared, and record the
//! resolution on it.
//!
//! Pages go into a database (`NOTION_DATABASE_ID`) or under a parent page (`NOTION_PARENT_PAGE_ID`),
//! with `Notion-Version: 2022-06-28` (the `database_id` era). In a database, the page title goes
//! into the database's own title property, whatever people named it; further properties are filled
//! only where the database has a matching one with the right type (see [`DatabaseSchema::mapping`]).
//! The schema is read once and cached.
//!
//! Idempotence: the page title is the incident name, so a retried create first looks for a page
//! with that title (database query, or the parent page's `child_page` blocks) and completes it
//! instead of creating a second one. Recording the resolution appends a marked section once.
//!
//! Limits respected: rich text split at 2000 UTF-16 units per item, at most 100 items per array,
//! at most 100 blocks per request (the rest appended in chunks), no nesting, URLs ≤2000.
//! Each HTTP call is one attempt with [`CALL_TIMEOUT`]; the workflow runner retries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::RETRY_AFTER;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{
    status_error, transport_error, Check, IncidentFacts, IntegrationError, RateGate, CALL_TIMEOUT,
};
use crate::config::{NotionParent, NotionSettings};
use crate::incident::human_duration;
use crate::incident::postmortem as pm;
use crate::incident::text::{clamp, clamp_utf16, one_line, split_utf16};

/// Name used in errors and doctor checks.
pub const SERVICE: &str = "Notion";
/// Pinned API version: the `database_id` parent era, whose query endpoint we use.
pub const NOTION_VERSION: &str = "2022-06-28";
/// Longest `text.content` of one rich-text item, in UTF-16 units.
pub const TEXT_MAX: usize = 2000;
/// Most items in one rich-text array.
pub const RICH_TEXT_ITEMS_MAX: usize = 100;
/// Most blocks in one create or append request.
pub const BLOCKS_PER_REQUEST: usize = 100;
/// Longest URL Notion accepts; longer links are left out rather than cut into a wrong address.
pub const URL_MAX: usize = 2000;
/// Longest piece of user text (description, summary, a timeline entry) put on the page, in
/// UTF-16 units. Generous, and keeps every block far below the 500 KB request limit.
pub const LONG_TEXT_MAX: usize = 20_000;
/// Serialized size budget for the blocks of one request (Notion's limit is 500 KB).
pub const REQUEST_BYTES_MAX: usize = 400_000;
/// Timeline entries written to a page at most; the rest are summarised in one line.
pub const TIMELINE_MAX: usize = 500;
/// Heading (in [`MARKER_COLOR`]) that opens the resolution section; finding it means the
/// resolution was recorded before.
pub const RESOLUTION_HEADING: &str = "Resolution";
/// Colour of the resolution heading, so a heading people type themselves is not mistaken for it.
pub const MARKER_COLOR: &str = "green";
/// Pages of children read at most when looking through a page (100 blocks each).
const LIST_PAGES_MAX: usize = 50;
/// Longest error detail kept from a Notion error body.
const DETAIL_MAX: usize = 300;

/// The post-mortem page of an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostMortem {
    pub page_id: String,
    pub url: String,
}

/// A database property's type, with the option names where they matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyKind {
    Title,
    RichText,
    Select(Vec<String>),
    Status(Vec<String>),
    Date,
    Url,
    Number,
    /// Any other type (people, formula, relation, …): never written.
    Other(String),
}

/// What incd needs to know about the post-mortem database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSchema {
    /// The database's own title, for doctor.
    pub title: String,
    /// Name of the one `title` property, e.g. `Name` or `Incident`.
    pub title_property: String,
    pub properties: BTreeMap<String, PropertyKind>,
}

/// Which database property receives which fact; `None` where the database has no fitting one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyMap {
    /// A `status` or `select` property for the incident status.
    pub status: Option<String>,
    /// A `select` property for the severity label.
    pub severity: Option<String>,
    /// A `date` property for the declaration time (a range ending at resolution when there is no
    /// separate resolution date).
    pub declared: Option<String>,
    /// A `date` property for the resolution time.
    pub resolved: Option<String>,
    /// A `url` property for the Slack channel.
    pub channel_url: Option<String>,
    /// A `url` property for the PagerDuty incident.
    pub pagerduty_url: Option<String>,
    /// A `rich_text` or `number` (minutes) property for the duration.
    pub duration: Option<String>,
    /// A `rich_text` property for the incident title (the page title is the incident name).
    pub summary: Option<String>,
}

/// Status option names tried, in order, while an incident is open.
const OPEN_STATUS_NAMES: &[&str] = &[
    "investigating",
    "active",
    "open",
    "ongoing",
    "in progress",
    "identified",
    "declared",
    "triggered",
    "not started",
    "draft",
];
/// Status option names tried, in order, once it is resolved.
const RESOLVED_STATUS_NAMES: &[&str] = &[
    "resolved",
    "closed",
    "done",
    "complete",
    "completed",
    "mitigated",
    "fixed",
];

/// Lowercase letters and digits only: `Slack channel` and `slack_channel` compare equal.
fn norm(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

impl DatabaseSchema {
    /// Read a database object (`GET /v1/databases/{id}`). `None` when it has no title property.
    pub fn from_json(db: &Value) -> Option<DatabaseSchema> {
        let props = db.get("properties")?.as_object()?;
        let mut properties = BTreeMap::new();
        let mut title_property = None;
        for (key, p) in props {
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(key)
                .to_string();
            let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
            let options = |ty: &str| -> Vec<String> {
                p.get(ty)
                    .and_then(|t| t.get("options"))
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|o| o.get("name").and_then(Value::as_str))
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let kind = match ty {
                "title" => {
                    title_property.get_or_insert_with(|| name.clone());
                    PropertyKind::Title
                }
                "rich_text" => PropertyKind::RichText,
                "select" => PropertyKind::Select(options("select")),
                "status" => PropertyKind::Status(options("status")),
                "date" => PropertyKind::Date,
                "url" => PropertyKind::Url,
                "number" => PropertyKind::Number,
                other => PropertyKind::Other(other.to_string()),
            };
            properties.insert(name, kind);
        }
        let title = db
            .get("title")
            .and_then(Value::as_array)
            .map(|a| plain_text(a))
            .unwrap_or_default();
        Some(DatabaseSchema {
            title,
            title_property: title_property?,
            properties,
        })
    }

    /// Decide which property receives which fact, by type and by (normalised) name.
    pub fn mapping(&self) -> PropertyMap {
        let named = |pred: &dyn Fn(&PropertyKind, &str) -> bool| -> Option<String> {
            self.properties
                .iter()
                .find(|(name, kind)| pred(kind, &norm(name)))
                .map(|(name, _)| name.clone())
        };
        let is_select = |k: &PropertyKind| matches!(k, PropertyKind::Select(_));
        let is_choice =
            |k: &PropertyKind| matches!(k, PropertyKind::Select(_) | PropertyKind::Status(_));

        let severity = named(&|k, n| is_select(k) && n == "severity")
            .or_else(|| named(&|k, n| is_select(k) && (n.contains("severity") || n == "sev")));
        let status = named(&|k, n| matches!(k, PropertyKind::Status(_)) && n == "status")
            .or_else(|| named(&|k, n| is_choice(k) && n == "status"))
            .or_else(|| {
                named(&|k, n| matches!(k, PropertyKind::Status(_)) && !n.contains("severity"))
            })
            .or_else(|| named(&|k, n| is_choice(k) && (n.contains("status") || n == "state")))
            .filter(|s| Some(s) != severity.as_ref());

        let is_date = |k: &PropertyKind| *k == PropertyKind::Date;
        let resolvedish = |n: &str| {
            n.contains("resolv")
                || n.contains("end")
                || n.contains("closed")
                || n.contains("finish")
        };
        let resolved = named(&|k, n| is_date(k) && resolvedish(n));
        let declared = named(&|k, n| is_date(k) && n.contains("declar"))
            .or_else(|| {
                named(&|k, n| {
                    is_date(k)
                        && !resolvedish(n)
                        && ["start", "open", "began", "begin", "detect", "report"]
                            .iter()
                            .any(|w| n.contains(w))
                })
            })
            .or_else(|| named(&|k, n| is_date(k) && !resolvedish(n)));

        let is_url = |k: &PropertyKind| *k == PropertyKind::Url;
        let pagerish = |n: &str| n.contains("pagerduty") || n.contains("pager");
        let pagerduty_url = named(&|k, n| is_url(k) && pagerish(n));
        let channel_url =
            named(&|k, n| is_url(k) && (n.contains("slack") || n.contains("channel"))).or_else(
                || {
                    let others: Vec<&String> = self
                        .properties
                        .iter()
                        .filter(|(name, kind)| is_url(kind) && !pagerish(&norm(name)))
                        .map(|(name, _)| name)
                        .collect();
                    (others.len() == 1).then(|| others[0].clone())
                },
            );

        let duration = named(&|k, n| {
            matches!(k, PropertyKind::RichText | PropertyKind::Number)
                && (n.contains("duration") || n == "timetoresolve" || n == "ttr")
        });
        let summary = named(&|k, n| {
            *k == PropertyKind::RichText
                && ["summary", "title", "incidenttitle", "headline"].contains(&n)
        });

        PropertyMap {
            status,
            severity,
            declared,
            resolved,
            channel_url,
            pagerduty_url,
            duration,
            summary,
        }
    }

    fn options(&self, property: &str) -> &[String] {
        match self.properties.get(property) {
            Some(PropertyKind::Select(o) | PropertyKind::Status(o)) => o,
            _ => &[],
        }
    }
}

/// The first candidate that exists among `options` (case-insensitive), spelled as the schema
/// spells it.
fn pick_option(options: &[String], candidates: &[&str]) -> Option<String> {
    candidates.iter().find_map(|c| {
        options
            .iter()
            .find(|o| o.trim().to_lowercase() == *c)
            .cloned()
    })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Shown to people: `2025-03-14 09:26 UTC`.
fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A URL fit for Notion: http(s), no spaces, within the limit.
fn usable_url(url: &str) -> Option<&str> {
    let url = url.trim();
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.encode_utf16().count() <= URL_MAX
        && !url.contains(char::is_whitespace);
    ok.then_some(url)
}

/// The page title: the incident name (what the idempotency lookup searches for).
pub fn page_title(facts: &IncidentFacts) -> String {
    clamp_utf16(&one_line(&facts.name), TEXT_MAX)
}

/// Rich-text items for `text`, split at [`TEXT_MAX`] UTF-16 units.
fn items(text: &str, link: Option<&str>, annotations: Option<&Value>) -> Vec<Value> {
    split_utf16(text, TEXT_MAX)
        .into_iter()
        .map(|piece| {
            let mut t = json!({ "content": piece });
            if let Some(url) = link.and_then(usable_url) {
                t["link"] = json!({ "url": url });
            }
            let mut item = json!({ "type": "text", "text": t });
            if let Some(a) = annotations {
                item["annotations"] = a.clone();
            }
            item
        })
        .collect()
}

fn plain(text: &str) -> Vec<Value> {
    items(text, None, None)
}

fn bold(text: &str) -> Vec<Value> {
    items(text, None, Some(&json!({ "bold": true })))
}

fn hint_items(text: &str) -> Vec<Value> {
    items(
        text,
        None,
        Some(&json!({ "italic": true, "color": "gray" })),
    )
}

/// A rich-text array for a property value: at most [`RICH_TEXT_ITEMS_MAX`] items.
fn property_text(text: &str) -> Vec<Value> {
    let mut v = plain(&clamp_utf16(text, LONG_TEXT_MAX));
    v.truncate(RICH_TEXT_ITEMS_MAX);
    v
}

/// Blocks of one kind holding `rich_text`; more than [`RICH_TEXT_ITEMS_MAX`] items continue in
/// further blocks of the same kind.
fn text_blocks(kind: &str, rich_text: Vec<Value>, extra: &Value) -> Vec<Value> {
    if rich_text.is_empty() {
        return vec![text_block(kind, Vec::new(), extra)];
    }
    rich_text
        .chunks(RICH_TEXT_ITEMS_MAX)
        .map(|c| text_block(kind, c.to_vec(), extra))
        .collect()
}

fn text_block(kind: &str, rich_text: Vec<Value>, extra: &Value) -> Value {
    let mut inner = json!({ "rich_text": rich_text });
    if let Some(map) = extra.as_object() {
        for (k, v) in map {
            inner[k] = v.clone();
        }
    }
    json!({ "object": "block", "type": kind, kind: inner })
}

fn heading(level: u8, text: &str) -> Value {
    text_block(&format!("heading_{level}"), plain(text), &Value::Null)
}

fn paragraph(rich_text: Vec<Value>) -> Vec<Value> {
    text_blocks("paragraph", rich_text, &Value::Null)
}

fn hint(text: &str) -> Vec<Value> {
    paragraph(hint_items(text))
}

fn timeline_items(facts: &IncidentFacts) -> Vec<Value> {
    let mut entries: Vec<(DateTime<Utc>, String)> = facts
        .timeline
        .iter()
        .map(|e| (e.at, e.text.clone()))
        .collect();
    if entries.is_empty() {
        entries.push((
            facts.declared_at,
            format!("Incident declared by {} (Slack user)", facts.reporter),
        ));
    }
    let extra = entries.len().saturating_sub(TIMELINE_MAX);
    let mut blocks: Vec<Value> = entries
        .iter()
        .take(TIMELINE_MAX)
        .flat_map(|(at, text)| {
            let mut rt = bold(&when(*at));
            rt.extend(plain(&format!(
                " — {}",
                clamp_utf16(text.trim(), LONG_TEXT_MAX)
            )));
            text_blocks("bulleted_list_item", rt, &Value::Null)
        })
        .collect();
    if extra > 0 {
        blocks.extend(text_blocks(
            "bulleted_list_item",
            hint_items(&format!("… {extra} more entries in the Slack channel")),
            &Value::Null,
        ));
    }
    blocks
}

/// The post-mortem skeleton: facts at the top, then the sections a team fills in.
pub fn postmortem_blocks(facts: &IncidentFacts) -> Vec<Value> {
    let mut b = Vec::new();
    let mut head = bold(&clamp_utf16(
        &one_line(&format!("[{}] {}", facts.severity_label, facts.title)),
        LONG_TEXT_MAX,
    ));
    head.extend(plain(&format!(
        "\nIncident {}, declared {}.",
        facts.name,
        when(facts.declared_at)
    )));
    b.extend(text_blocks(
        "callout",
        head,
        &json!({ "icon": { "type": "emoji", "emoji": "🚨" }, "color": "gray_background" }),
    ));

    b.push(heading(2, "Description"));
    let description = facts.description.trim();
    if description.is_empty() {
        b.extend(hint(
            "No description was given when the incident was declared.",
        ));
    } else {
        b.extend(paragraph(plain(&clamp_utf16(description, LONG_TEXT_MAX))));
    }
    let mut channel = plain("Slack channel: ");
    channel.extend(items(
        &format!("#{}", facts.channel_name),
        Some(&facts.channel_url),
        None,
    ));
    b.extend(paragraph(channel));
    let mut people = plain(&format!(
        "Severity: {} · Reporter (Slack user): {}",
        facts.severity_label, facts.reporter
    ));
    if let Some(c) = &facts.commander {
        people.extend(plain(&format!(" · Commander (Slack user): {c}")));
    }
    b.extend(paragraph(people));
    if let Some(url) = facts.pagerduty_url.as_deref().and_then(usable_url) {
        let mut pd = plain("PagerDuty: ");
        pd.extend(items("incident", Some(url), None));
        b.extend(paragraph(pd));
    }

    b.push(heading(2, "Impact"));
    b.extend(hint(
        "Who and what was affected, how badly, and for how long? Include numbers where you have them.",
    ));
    b.push(heading(2, "Timeline"));
    b.extend(timeline_items(facts));
    b.push(heading(2, "Root cause analysis"));
    b.extend(hint(
        "What caused the incident? Keep asking why until you reach causes you can act on.",
    ));
    b.push(heading(2, "Mitigation"));
    b.extend(hint("What stopped the impact, who did it, and when?"));
    b.push(heading(2, "Follow-up tasks"));
    for task in [
        "Schedule the post-mortem review",
        "Add follow-up tasks here, each with an owner and a due date",
    ] {
        b.extend(text_blocks(
            "to_do",
            plain(task),
            &json!({ "checked": false }),
        ));
    }
    b.push(heading(2, "Lessons learned"));
    b.extend(hint(
        "What went well? What went badly? Where did we get lucky?",
    ));
    b
}

/// The section appended when the incident is resolved. Its first block is the marker heading.
pub fn resolution_blocks(facts: &IncidentFacts) -> Vec<Value> {
    let mut b = vec![text_block(
        "heading_2",
        plain(RESOLUTION_HEADING),
        &json!({ "color": MARKER_COLOR }),
    )];
    let mut line = plain("Resolved ");
    if let Some(at) = facts.resolved_at {
        line.extend(bold(&when(at)));
    }
    if let Some(by) = &facts.resolved_by {
        line.extend(plain(&format!(" by {by} (Slack user)")));
    }
    line.extend(plain(" after "));
    line.extend(bold(&human_duration(facts.duration())));
    line.extend(plain("."));
    b.extend(paragraph(line));
    match facts
        .resolution_summary
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => b.extend(paragraph(plain(&clamp_utf16(s, LONG_TEXT_MAX)))),
        None => b.extend(hint("No resolution summary was given.")),
    }
    b.push(heading(3, "Timeline recorded in Slack"));
    b.extend(timeline_items(facts));
    b
}

/// Colour of the post-mortem's section headings, so the skeleton's own headings ("Impact",
/// "Timeline") and headings people type are not mistaken for a section incd wrote.
pub const SECTION_COLOR: &str = "blue";

/// One post-mortem section as Notion blocks: its marked heading first, then its content. People
/// are listed as "Label: Name" bullets (no tables: a table's rows must be sent inside the table
/// block, which keeps the section appendable in plain chunks).
pub fn section_blocks(section: &pm::Section) -> Vec<Value> {
    let mut b = vec![text_block(
        "heading_2",
        plain(section.heading()),
        &json!({ "color": SECTION_COLOR }),
    )];
    for block in &section.blocks {
        b.extend(pm_block(block));
    }
    b
}

fn long(text: &str) -> String {
    clamp_utf16(text, LONG_TEXT_MAX)
}

/// The rich text of a follow-up's to-do: struck through and marked when it won't be done.
fn to_do_text(block: &pm::Block) -> Vec<Value> {
    let line = long(&block.plain_text());
    match block {
        pm::Block::ToDo { wont_do: true, .. } => {
            let line = line.trim_end_matches(" · won't do");
            let mut rt = items(line, None, Some(&json!({ "strikethrough": true })));
            rt.extend(hint_items(" (won't do)"));
            rt
        }
        _ => plain(&line),
    }
}

fn pm_block(block: &pm::Block) -> Vec<Value> {
    match block {
        pm::Block::Paragraph(t) => paragraph(plain(&long(t))),
        pm::Block::Placeholder(t) => hint(&long(t)),
        pm::Block::Fact { label, value, link } => {
            let mut rt = bold(&format!("{label}: "));
            rt.extend(items(&long(value), link.as_deref(), None));
            paragraph(rt)
        }
        pm::Block::Person { label, name } => {
            let mut rt = bold(&format!("{label}: "));
            rt.extend(plain(&long(name)));
            text_blocks("bulleted_list_item", rt, &Value::Null)
        }
        pm::Block::TimelineItem {
            when,
            who,
            text,
            permalink,
        } => {
            let mut rt = bold(when);
            rt.extend(plain(&format!(" · {who}: ")));
            rt.extend(plain(&long(text)));
            if let Some(url) = permalink.as_deref().and_then(usable_url) {
                rt.extend(plain(" "));
                rt.extend(items("(message)", Some(url), None));
            }
            text_blocks("bulleted_list_item", rt, &Value::Null)
        }
        pm::Block::ToDo { checked, .. } => {
            text_blocks("to_do", to_do_text(block), &json!({ "checked": checked }))
        }
    }
}

/// The section a top-level block opens, if it is one of incd's marked section headings.
fn section_of(block: &Value) -> Option<pm::SectionId> {
    if block.get("type").and_then(Value::as_str) != Some("heading_2")
        || block.pointer("/heading_2/color").and_then(Value::as_str) != Some(SECTION_COLOR)
    {
        return None;
    }
    let text = block
        .pointer("/heading_2/rich_text")
        .and_then(Value::as_array)
        .map(|a| plain_text(a))?;
    pm::SectionId::from_heading(&text)
}

/// What to append so the page holds every section of `doc` exactly once, given the page's
/// top-level blocks. Sections are appended in order, one request after the other, so only the
/// last section on the page can be incomplete (an attempt cut between two chunks): its missing
/// tail comes first, then every section the page does not hold yet.
pub fn missing_blocks(existing: &[Value], doc: &pm::PostMortem) -> Vec<Value> {
    let mut present = Vec::new();
    let mut last: Option<(pm::SectionId, usize)> = None;
    for (i, b) in existing.iter().enumerate() {
        if let Some(id) = section_of(b) {
            present.push(id);
            last = Some((id, i));
        }
    }
    let mut out = Vec::new();
    if let Some((id, at)) = last {
        if let Some(section) = doc.section(id) {
            let planned = section_blocks(section);
            let done = existing.len() - at;
            if done < planned.len() {
                out.extend(planned[done..].iter().cloned());
            }
        }
    }
    for section in doc.missing(present) {
        out.extend(section_blocks(section));
    }
    out
}

/// How to bring the page's follow-ups section up to date with `doc`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FollowUpChanges {
    /// `(block id, PATCH body)` for to-dos whose text or checked state changed.
    pub updates: Vec<(String, Value)>,
    /// To-dos of follow-ups the page does not list yet.
    pub append: Vec<Value>,
    /// The block the new to-dos go after: the section's last block.
    pub after: Option<String>,
}

/// Compare the follow-ups section on the page (top-level blocks) with `doc`'s. Nothing when the
/// page has no follow-ups section yet: writing the missing sections adds it whole. To-dos are
/// matched by their `F-<n>` reference, the first word of their text.
pub fn follow_up_changes(existing: &[Value], doc: &pm::PostMortem) -> FollowUpChanges {
    let mut changes = FollowUpChanges::default();
    let Some(start) = existing
        .iter()
        .position(|b| section_of(b) == Some(pm::SectionId::FollowUps))
    else {
        return changes;
    };
    let Some(section) = doc.section(pm::SectionId::FollowUps) else {
        return changes;
    };
    let end = existing[start + 1..]
        .iter()
        .position(|b| section_of(b).is_some())
        .map(|i| start + 1 + i)
        .unwrap_or(existing.len());
    let on_page: Vec<(String, String, bool)> = existing[start + 1..end]
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("to_do"))
        .filter_map(|b| {
            let id = b.get("id").and_then(Value::as_str)?.to_string();
            let text = b
                .pointer("/to_do/rich_text")
                .and_then(Value::as_array)
                .map(|a| plain_text(a))
                .unwrap_or_default();
            let checked = b.pointer("/to_do/checked").and_then(Value::as_bool) == Some(true);
            Some((id, text, checked))
        })
        .collect();
    changes.after = existing[end - 1]
        .get("id")
        .and_then(Value::as_str)
        .map(String::from);
    for block in &section.blocks {
        let pm::Block::ToDo {
            reference, checked, ..
        } = block
        else {
            continue;
        };
        let rich_text = to_do_text(block);
        let text = plain_text(&rich_text);
        let prefix = format!("{reference} ");
        match on_page.iter().find(|(_, t, _)| t.starts_with(&prefix)) {
            Some((id, t, c)) if *t != text || c != checked => changes.updates.push((
                id.clone(),
                json!({ "to_do": { "rich_text": rich_text, "checked": checked } }),
            )),
            Some(_) => {}
            None => changes.append.extend(pm_block(block)),
        }
    }
    changes
}

/// Split blocks into requests of at most [`BLOCKS_PER_REQUEST`] blocks and about
/// [`REQUEST_BYTES_MAX`] bytes each.
pub fn chunk_blocks(blocks: &[Value]) -> Vec<Vec<Value>> {
    let mut chunks = Vec::new();
    let mut cur: Vec<Value> = Vec::new();
    let mut bytes = 0;
    for block in blocks {
        let size = serde_json::to_vec(block).map(|v| v.len()).unwrap_or(0);
        if !cur.is_empty() && (cur.len() == BLOCKS_PER_REQUEST || bytes + size > REQUEST_BYTES_MAX)
        {
            chunks.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += size;
        cur.push(block.clone());
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}

fn title_value(text: &str) -> Value {
    json!({ "title": plain(&clamp_utf16(text, TEXT_MAX)) })
}

/// Properties for a new page under a parent page: only `title` is allowed there.
pub fn page_parent_properties(facts: &IncidentFacts) -> Value {
    json!({ "title": title_value(&page_title(facts)) })
}

/// Properties for a new page in the database: the title plus whatever the schema has room for.
pub fn declare_properties(schema: &DatabaseSchema, facts: &IncidentFacts) -> Value {
    let map = schema.mapping();
    let mut props = Map::new();
    props.insert(
        schema.title_property.clone(),
        title_value(&page_title(facts)),
    );
    if let Some(p) = &map.summary {
        props.insert(
            p.clone(),
            json!({ "rich_text": property_text(&one_line(&facts.title)) }),
        );
    }
    if let Some(p) = &map.channel_url {
        if let Some(url) = usable_url(&facts.channel_url) {
            props.insert(p.clone(), json!({ "url": url }));
        }
    }
    shared_properties(schema, &map, facts, &mut props);
    Value::Object(props)
}

/// Properties updated when the incident is resolved.
pub fn resolve_properties(schema: &DatabaseSchema, facts: &IncidentFacts) -> Value {
    let map = schema.mapping();
    let mut props = Map::new();
    shared_properties(schema, &map, facts, &mut props);
    if let Some(p) = &map.duration {
        let value = match schema.properties.get(p) {
            Some(PropertyKind::Number) => {
                json!({ "number": facts.duration().num_minutes().max(0) })
            }
            _ => json!({ "rich_text": property_text(&human_duration(facts.duration())) }),
        };
        props.insert(p.clone(), value);
    }
    Value::Object(props)
}

/// Status, severity, dates and the PagerDuty link: set on create and again on resolve.
fn shared_properties(
    schema: &DatabaseSchema,
    map: &PropertyMap,
    facts: &IncidentFacts,
    props: &mut Map<String, Value>,
) {
    if let Some(p) = &map.status {
        let names = if facts.resolved {
            RESOLVED_STATUS_NAMES
        } else {
            OPEN_STATUS_NAMES
        };
        if let Some(option) = pick_option(schema.options(p), names) {
            let ty = match schema.properties.get(p) {
                Some(PropertyKind::Status(_)) => "status",
                _ => "select",
            };
            props.insert(p.clone(), json!({ ty: { "name": option } }));
        }
    }
    if let Some(p) = &map.severity {
        // Select options are created on first use, so an unknown label is fine; commas are not
        // allowed in option names.
        let option = pick_option(
            schema.options(p),
            &[
                facts.severity_label.to_lowercase().trim(),
                facts.severity_id.to_lowercase().trim(),
            ],
        )
        .unwrap_or_else(|| clamp(&facts.severity_label.replace(',', " "), 100));
        if !option.trim().is_empty() {
            props.insert(p.clone(), json!({ "select": { "name": option } }));
        }
    }
    let resolved_at = facts.resolved_at.filter(|_| facts.resolved);
    if let Some(p) = &map.declared {
        let mut date = json!({ "start": rfc3339(facts.declared_at) });
        if let (None, Some(end)) = (&map.resolved, resolved_at) {
            if end >= facts.declared_at {
                date["end"] = json!(rfc3339(end));
            }
        }
        props.insert(p.clone(), json!({ "date": date }));
    }
    if let (Some(p), Some(at)) = (&map.resolved, resolved_at) {
        props.insert(p.clone(), json!({ "date": { "start": rfc3339(at) } }));
    }
    if let (Some(p), Some(url)) = (
        &map.pagerduty_url,
        facts.pagerduty_url.as_deref().and_then(usable_url),
    ) {
        props.insert(p.clone(), json!({ "url": url }));
    }
}

/// Concatenated `plain_text` (or `text.content`) of a rich-text array.
fn plain_text(items: &[Value]) -> String {
    items
        .iter()
        .filter_map(|i| {
            i.get("plain_text")
                .and_then(Value::as_str)
                .or_else(|| i.pointer("/text/content").and_then(Value::as_str))
        })
        .collect()
}

/// Accept an id with or without dashes, or a pasted Notion URL ending in the id.
pub fn normalize_id(raw: &str) -> String {
    let trimmed = raw.trim();
    let before_query = trimmed.split(['?', '#']).next().unwrap_or(trimmed);
    let compact: String = before_query.chars().filter(|c| *c != '-').collect();
    let tail: String = compact
        .chars()
        .rev()
        .take(32)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.len() == 32 && tail.chars().all(|c| c.is_ascii_hexdigit()) {
        let t = tail.to_ascii_lowercase();
        format!(
            "{}-{}-{}-{}-{}",
            &t[0..8],
            &t[8..12],
            &t[12..16],
            &t[16..20],
            &t[20..32]
        )
    } else {
        trimmed.to_string()
    }
}

/// Percent-encode anything that is not a plain id character, so an id can never change the path.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A short detail from a Notion error body (`{object:"error",status,code,message}`), with the
/// token scrubbed should it ever be echoed.
pub fn error_detail(body: &str, secret: &str) -> String {
    let detail = match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let code = v.get("code").and_then(Value::as_str).unwrap_or("");
            let message = v.get("message").and_then(Value::as_str).unwrap_or("");
            match (code.is_empty(), message.is_empty()) {
                (false, false) => format!("{code}: {message}"),
                (false, true) => code.to_string(),
                (true, false) => message.to_string(),
                (true, true) => one_line(body),
            }
        }
        Err(_) => one_line(body),
    };
    let detail = if detail.is_empty() {
        "no detail given".to_string()
    } else {
        detail
    };
    let scrubbed = if secret.len() >= 4 {
        detail.replace(secret, "***")
    } else {
        detail
    };
    clamp(&one_line(&scrubbed), DETAIL_MAX)
}

fn page_ref(page: &Value) -> Option<PostMortem> {
    let id = page.get("id").and_then(Value::as_str)?.to_string();
    let url = page
        .get("url")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| format!("https://www.notion.so/{}", id.replace('-', "")));
    Some(PostMortem { page_id: id, url })
}

fn is_trashed(v: &Value) -> bool {
    v.get("archived").and_then(Value::as_bool).unwrap_or(false)
        || v.get("in_trash").and_then(Value::as_bool).unwrap_or(false)
}

/// Is this block the heading that opens the resolution section?
fn is_resolution_marker(block: &Value) -> bool {
    block.get("type").and_then(Value::as_str) == Some("heading_2")
        && block.pointer("/heading_2/color").and_then(Value::as_str) == Some(MARKER_COLOR)
        && block
            .pointer("/heading_2/rich_text")
            .and_then(Value::as_array)
            .map(|a| plain_text(a).trim() == RESOLUTION_HEADING)
            .unwrap_or(false)
}

/// The Notion client. Holds the cached database schema; share it behind an `Arc`.
pub struct Notion {
    http: reqwest::Client,
    settings: NotionSettings,
    timeout: Duration,
    schema: Mutex<Option<Arc<DatabaseSchema>>>,
    /// Held while the schema is read: one read in flight, the others wait for its result
    /// (the start-up warm-up and the first declare would otherwise read it twice at once).
    schema_read: tokio::sync::Mutex<()>,
    gate: RateGate,
}

impl Notion {
    pub fn new(http: reqwest::Client, settings: NotionSettings) -> Self {
        Notion {
            http,
            settings,
            timeout: CALL_TIMEOUT,
            schema: Mutex::new(None),
            schema_read: tokio::sync::Mutex::new(()),
            gate: RateGate::default(),
        }
    }

    /// Use a different per-call timeout than [`CALL_TIMEOUT`] (tests of hung services).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Create the incident's post-mortem page, or return the one an earlier attempt created.
    pub async fn create_postmortem(
        &self,
        facts: &IncidentFacts,
    ) -> Result<PostMortem, IntegrationError> {
        self.create(facts, true).await
    }

    /// Like [`Notion::create_postmortem`] for a first attempt, when no earlier attempt can have
    /// created the page: skips the lookup, saving a round trip on the declare path.
    pub async fn create_postmortem_first(
        &self,
        facts: &IncidentFacts,
    ) -> Result<PostMortem, IntegrationError> {
        self.create(facts, false).await
    }

    /// Read the database schema now so the first declare does not wait for it.
    pub async fn warm_up(&self) {
        if let NotionParent::Database(raw) = &self.settings.parent {
            if let Err(e) = self.schema(&normalize_id(raw)).await {
                tracing::warn!(error = %e, "could not read the Notion database yet; will retry on first use");
            }
        }
    }

    async fn create(
        &self,
        facts: &IncidentFacts,
        maybe_exists: bool,
    ) -> Result<PostMortem, IntegrationError> {
        let title = page_title(facts);
        let blocks = postmortem_blocks(facts);
        match &self.settings.parent {
            NotionParent::Database(raw) => {
                let db = normalize_id(raw);
                let schema = self.schema(&db).await?;
                if maybe_exists {
                    if let Some(found) = self.find_in_database(&db, &schema, &title).await? {
                        self.complete_children(&found.page_id, &blocks).await?;
                        return Ok(found);
                    }
                }
                let result = self
                    .create_page(
                        json!({ "database_id": db }),
                        declare_properties(&schema, facts),
                        &blocks,
                    )
                    .await;
                if let Err(IntegrationError::Refused {
                    status: Some(400), ..
                }) = &result
                {
                    // The database may have changed under us: read it again next time.
                    self.forget_schema();
                }
                result
            }
            NotionParent::Page(raw) => {
                let parent = normalize_id(raw);
                if maybe_exists {
                    if let Some(found) = self.find_child_page(&parent, &title).await? {
                        self.complete_children(&found.page_id, &blocks).await?;
                        return Ok(found);
                    }
                }
                self.create_page(
                    json!({ "page_id": parent }),
                    page_parent_properties(facts),
                    &blocks,
                )
                .await
            }
        }
    }

    /// Mark the page resolved (status, resolution time, duration where the database has such
    /// properties) and append the resolution section with the timeline. Safe to repeat.
    pub async fn record_resolution(
        &self,
        page: &PostMortem,
        facts: &IncidentFacts,
    ) -> Result<(), IntegrationError> {
        self.resolve(page, facts, true).await
    }

    /// Like [`Notion::record_resolution`] for a first attempt: appends without first reading what
    /// an earlier attempt may have appended.
    pub async fn record_resolution_first(
        &self,
        page: &PostMortem,
        facts: &IncidentFacts,
    ) -> Result<(), IntegrationError> {
        self.resolve(page, facts, false).await
    }

    async fn resolve(
        &self,
        page: &PostMortem,
        facts: &IncidentFacts,
        maybe_applied: bool,
    ) -> Result<(), IntegrationError> {
        // Properties and the appended section are independent: send both at once.
        let (props, blocks) = tokio::join!(
            self.resolve_properties(page, facts),
            self.append_resolution(page, facts, maybe_applied)
        );
        props.and(blocks)
    }

    async fn append_resolution(
        &self,
        page: &PostMortem,
        facts: &IncidentFacts,
        maybe_applied: bool,
    ) -> Result<(), IntegrationError> {
        let planned = resolution_blocks(facts);
        if !maybe_applied {
            return self.append(&page.page_id, &planned).await;
        }
        let existing = self.list_children(&page.page_id, |_| false).await?.0;
        let done = existing
            .iter()
            .position(is_resolution_marker)
            .map(|i| existing.len() - i)
            .unwrap_or(0);
        if done < planned.len() {
            self.append(&page.page_id, &planned[done..]).await?;
        }
        Ok(())
    }

    /// Write the post-mortem sections the page does not hold yet (see [`missing_blocks`]), in
    /// chunks of at most [`BLOCKS_PER_REQUEST`]. Reads the page first, so a retry after a lost
    /// answer or a crash never repeats a section. Safe to repeat.
    pub async fn write_postmortem(
        &self,
        page: &PostMortem,
        doc: &pm::PostMortem,
    ) -> Result<(), IntegrationError> {
        let existing = self.list_children(&page.page_id, |_| false).await?.0;
        let blocks = missing_blocks(&existing, doc);
        if !blocks.is_empty() {
            self.append(&page.page_id, &blocks).await?;
        }
        Ok(())
    }

    /// Bring the follow-ups section up to date: check, strike or rewrite the to-dos that
    /// changed and add the new ones after the section's last block. Reads the page first, so
    /// it is safe to repeat.
    pub async fn sync_follow_ups(
        &self,
        page: &PostMortem,
        doc: &pm::PostMortem,
    ) -> Result<(), IntegrationError> {
        let existing = self.list_children(&page.page_id, |_| false).await?.0;
        let changes = follow_up_changes(&existing, doc);
        for (block, body) in &changes.updates {
            self.call(
                Method::PATCH,
                &format!("blocks/{}", path_segment(block)),
                Some(body),
            )
            .await?;
        }
        let mut after = changes.after;
        for chunk in chunk_blocks(&changes.append) {
            let mut body = json!({ "children": chunk });
            if let Some(a) = &after {
                body["after"] = json!(a);
            }
            let v = self
                .call(
                    Method::PATCH,
                    &format!("blocks/{}/children", path_segment(&page.page_id)),
                    Some(&body),
                )
                .await?;
            after = v
                .get("results")
                .and_then(Value::as_array)
                .and_then(|r| r.last())
                .and_then(|b| b.get("id"))
                .and_then(Value::as_str)
                .map(String::from)
                .or(after);
        }
        Ok(())
    }

    async fn resolve_properties(
        &self,
        page: &PostMortem,
        facts: &IncidentFacts,
    ) -> Result<(), IntegrationError> {
        let page_path = path_segment(&page.page_id);
        if let NotionParent::Database(raw) = &self.settings.parent {
            let schema = self.schema(&normalize_id(raw)).await?;
            let props = resolve_properties(&schema, facts);
            if props.as_object().is_some_and(|m| !m.is_empty()) {
                let result = self
                    .call(
                        Method::PATCH,
                        &format!("pages/{page_path}"),
                        Some(&json!({ "properties": props })),
                    )
                    .await;
                if let Err(err) = result {
                    if matches!(
                        err,
                        IntegrationError::Refused {
                            status: Some(400),
                            ..
                        }
                    ) {
                        self.forget_schema();
                    }
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// `incd doctor`: the token reaches the database (or parent page) and the database has a title
    /// property.
    pub async fn check(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        match &self.settings.parent {
            NotionParent::Database(raw) => {
                let db = normalize_id(raw);
                let name = "Notion database reachable";
                match self
                    .call(
                        Method::GET,
                        &format!("databases/{}", path_segment(&db)),
                        None,
                    )
                    .await
                {
                    Ok(v) => {
                        let schema = DatabaseSchema::from_json(&v);
                        let title = schema.as_ref().map(|s| s.title.clone()).unwrap_or_default();
                        checks.push(Check::pass(
                            name,
                            format!("the integration can open the database '{title}'"),
                        ));
                        checks.push(title_check(schema.as_ref()));
                        if let Some(s) = schema {
                            *self.schema.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(Arc::new(s));
                        }
                    }
                    Err(err) => checks.push(failed_check(name, &err, true)),
                }
            }
            NotionParent::Page(raw) => {
                let page = normalize_id(raw);
                let name = "Notion parent page reachable";
                match self.call(Method::GET, &format!("pages/{}", path_segment(&page)), None).await {
                    Ok(v) if is_trashed(&v) => checks.push(Check::fail(
                        name,
                        "the parent page is in the trash",
                        "Restore the page in Notion, or set NOTION_PARENT_PAGE_ID to another page shared with the integration",
                    )),
                    Ok(_) => checks.push(Check::pass(name, "the integration can open the parent page")),
                    Err(err) => checks.push(failed_check(name, &err, false)),
                }
            }
        }
        checks
    }

    fn cached_schema(&self) -> Option<Arc<DatabaseSchema>> {
        self.schema
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The database schema, read once (single-flight) and cached.
    async fn schema(&self, db: &str) -> Result<Arc<DatabaseSchema>, IntegrationError> {
        if let Some(s) = self.cached_schema() {
            return Ok(s);
        }
        let _reading = self.schema_read.lock().await;
        // Read by the caller that held the lock before us?
        if let Some(s) = self.cached_schema() {
            return Ok(s);
        }
        let v = self
            .call(
                Method::GET,
                &format!("databases/{}", path_segment(db)),
                None,
            )
            .await?;
        let schema = Arc::new(
            DatabaseSchema::from_json(&v).ok_or(IntegrationError::Refused {
                service: SERVICE,
                status: None,
                detail: "the database has no title property".into(),
            })?,
        );
        *self.schema.lock().unwrap_or_else(|p| p.into_inner()) = Some(schema.clone());
        Ok(schema)
    }

    fn forget_schema(&self) {
        *self.schema.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// `POST /v1/databases/{id}/query` with `title equals`.
    async fn find_in_database(
        &self,
        db: &str,
        schema: &DatabaseSchema,
        title: &str,
    ) -> Result<Option<PostMortem>, IntegrationError> {
        let body = json!({
            "filter": { "property": schema.title_property, "title": { "equals": title } },
            "page_size": 10,
        });
        let v = self
            .call(
                Method::POST,
                &format!("databases/{}/query", path_segment(db)),
                Some(&body),
            )
            .await?;
        Ok(v.get("results")
            .and_then(Value::as_array)
            .and_then(|r| r.iter().find(|p| !is_trashed(p)))
            .and_then(page_ref))
    }

    /// The parent page's `child_page` block titled `title`, if any.
    async fn find_child_page(
        &self,
        parent: &str,
        title: &str,
    ) -> Result<Option<PostMortem>, IntegrationError> {
        let matches = |b: &Value| {
            b.get("type").and_then(Value::as_str) == Some("child_page")
                && b.pointer("/child_page/title").and_then(Value::as_str) == Some(title)
                && !is_trashed(b)
        };
        let (_, found) = self.list_children(parent, matches).await?;
        let Some(block) = found else { return Ok(None) };
        let Some(id) = block.get("id").and_then(Value::as_str) else {
            return Ok(None);
        };
        let page = self
            .call(Method::GET, &format!("pages/{}", path_segment(id)), None)
            .await?;
        Ok(page_ref(&page))
    }

    /// All top-level children of a block, following pagination, stopping early at the first block
    /// for which `stop` holds (returned separately).
    async fn list_children(
        &self,
        block_id: &str,
        stop: impl Fn(&Value) -> bool,
    ) -> Result<(Vec<Value>, Option<Value>), IntegrationError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..LIST_PAGES_MAX {
            let mut path = format!("blocks/{}/children?page_size=100", path_segment(block_id));
            if let Some(c) = &cursor {
                path.push_str(&format!("&start_cursor={}", path_segment(c)));
            }
            let v = self.call(Method::GET, &path, None).await?;
            for b in v
                .get("results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if stop(b) {
                    return Ok((all, Some(b.clone())));
                }
                all.push(b.clone());
            }
            let more = v.get("has_more").and_then(Value::as_bool).unwrap_or(false);
            cursor = v
                .get("next_cursor")
                .and_then(Value::as_str)
                .map(String::from);
            if !more || cursor.is_none() {
                break;
            }
        }
        Ok((all, None))
    }

    /// `POST /v1/pages` with the first chunk of blocks, then append the rest.
    async fn create_page(
        &self,
        parent: Value,
        properties: Value,
        blocks: &[Value],
    ) -> Result<PostMortem, IntegrationError> {
        let chunks = chunk_blocks(blocks);
        let first = chunks.first().cloned().unwrap_or_default();
        let body = json!({
            "parent": parent,
            "icon": { "type": "emoji", "emoji": "📝" },
            "properties": properties,
            "children": first,
        });
        let v = self.call(Method::POST, "pages", Some(&body)).await?;
        let page = page_ref(&v).ok_or(IntegrationError::Unavailable {
            service: SERVICE,
            detail: "the created page was missing from the answer".into(),
        })?;
        for chunk in chunks.iter().skip(1) {
            self.append_chunk(&page.page_id, chunk).await?;
        }
        Ok(page)
    }

    /// After finding a page an earlier attempt created, append the blocks it did not get to.
    async fn complete_children(
        &self,
        page_id: &str,
        planned: &[Value],
    ) -> Result<(), IntegrationError> {
        let (existing, _) = self.list_children(page_id, |_| false).await?;
        if existing.len() < planned.len() {
            self.append(page_id, &planned[existing.len()..]).await?;
        }
        Ok(())
    }

    async fn append(&self, block_id: &str, blocks: &[Value]) -> Result<(), IntegrationError> {
        for chunk in chunk_blocks(blocks) {
            self.append_chunk(block_id, &chunk).await?;
        }
        Ok(())
    }

    async fn append_chunk(&self, block_id: &str, chunk: &[Value]) -> Result<(), IntegrationError> {
        self.call(
            Method::PATCH,
            &format!("blocks/{}/children", path_segment(block_id)),
            Some(&json!({ "children": chunk })),
        )
        .await
        .map(|_| ())
    }

    /// One attempt: `{api_url}/v1/{path}` with auth, version and timeout; failures classified.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, IntegrationError> {
        self.gate.wait().await;
        let r = self.call_once(method, path, body).await;
        self.gate.observe(&r);
        r
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, IntegrationError> {
        let url = format!("{}/v1/{path}", self.settings.api_url.trim_end_matches('/'));
        let mut req = self
            .http
            .request(method, url)
            .timeout(self.timeout)
            .bearer_auth(self.settings.token.expose())
            .header("Notion-Version", NOTION_VERSION);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| transport_error(SERVICE, &e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = resp
            .text()
            .await
            .map_err(|e| transport_error(SERVICE, &e))?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|_| IntegrationError::Unavailable {
                service: SERVICE,
                detail: "unreadable answer".into(),
            });
        }
        let detail = error_detail(&text, self.settings.token.expose());
        if status == 409 {
            // conflict_error: Notion asks to try again.
            return Err(IntegrationError::Unavailable {
                service: SERVICE,
                detail,
            });
        }
        Err(status_error(
            SERVICE,
            status,
            retry_after.as_deref(),
            detail,
        ))
    }
}

fn title_check(schema: Option<&DatabaseSchema>) -> Check {
    let name = "Notion database title property";
    let Some(schema) = schema else {
        return Check::fail(
            name,
            "the database has no title property",
            "Point NOTION_DATABASE_ID at a full-page database (every Notion database has one title column); a linked view or a page will not do",
        );
    };
    let m = schema.mapping();
    let mut also = Vec::new();
    let mut add = |label: &str, prop: &Option<String>| {
        if let Some(p) = prop {
            also.push(format!("{label} → '{p}'"));
        }
    };
    add("status", &m.status);
    add("severity", &m.severity);
    add("declared", &m.declared);
    add("resolved", &m.resolved);
    add("Slack channel", &m.channel_url);
    add("PagerDuty", &m.pagerduty_url);
    add("duration", &m.duration);
    add("title", &m.summary);
    let mut detail = format!("'{}' will hold the incident name", schema.title_property);
    if !also.is_empty() {
        detail.push_str(&format!("; also filled: {}", also.join(", ")));
    }
    if let Some(p) = &m.status {
        if pick_option(schema.options(p), RESOLVED_STATUS_NAMES).is_none() {
            detail.push_str(&format!(
                "; '{p}' has no Resolved option, so it is left alone on resolve"
            ));
        }
    }
    Check::pass(name, detail)
}

fn failed_check(name: &str, err: &IntegrationError, database: bool) -> Check {
    let (what, var) = if database {
        ("database", "NOTION_DATABASE_ID")
    } else {
        ("page", "NOTION_PARENT_PAGE_ID")
    };
    match err {
        IntegrationError::Refused { status: Some(401), .. } => Check::fail(
            name,
            "Notion refused the token (HTTP 401)",
            "Create an internal integration at https://www.notion.so/my-integrations and put its secret in NOTION_TOKEN",
        ),
        IntegrationError::Refused { status: Some(403), .. } => Check::fail(
            name,
            format!("the integration may not read this {what} (HTTP 403)"),
            "Give the integration the Read content and Insert content capabilities in its settings",
        ),
        IntegrationError::Refused { status: Some(404), .. } => Check::fail(
            name,
            format!("the {what} was not found or is not shared with the integration"),
            format!("Open the {what} in Notion, choose ••• → Connections and add the integration; check that {var} is the id from its URL"),
        ),
        IntegrationError::Refused { status: Some(400), detail, .. } => Check::fail(
            name,
            format!("Notion refused the id: {detail}"),
            format!("Set {var} to the 32-character id at the end of the {what}'s URL"),
        ),
        other => Check::fail(
            name,
            other.human(),
            "Check that this host can reach https://api.notion.com (proxy, firewall) and that NOTION_API_URL is unset or correct",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::TimelineEntry;

    fn facts() -> IncidentFacts {
        IncidentFacts {
            pagerduty_url: Some("https://acme.pagerduty.com/incidents/PT4KHLK".into()),
            ..IncidentFacts::example()
        }
    }

    fn resolved_facts() -> IncidentFacts {
        let mut f = facts();
        f.resolved = true;
        f.resolved_at = Some(f.declared_at + chrono::Duration::minutes(65));
        f.resolved_by = Some("U0COMMANDR".into());
        f.resolution_summary = Some("Rolled back the payment gateway deploy.".into());
        f.timeline.push(TimelineEntry {
            at: f.declared_at + chrono::Duration::minutes(20),
            text: "Severity changed to SEV2".into(),
        });
        f
    }

    fn database() -> Value {
        json!({
            "object": "database",
            "id": "bc1211ca-e3f1-4939-ae34-5260b16f627c",
            "title": [{ "type": "text", "text": { "content": "Post-mortems" }, "plain_text": "Post-mortems" }],
            "properties": {
                "Incident": { "id": "title", "name": "Incident", "type": "title", "title": {} },
                "Severity": { "id": "a", "name": "Severity", "type": "select",
                    "select": { "options": [{ "name": "SEV1" }, { "name": "SEV2" }] } },
                "Status": { "id": "b", "name": "Status", "type": "status",
                    "status": { "options": [{ "name": "Investigating" }, { "name": "Resolved" }] } },
                "Declared": { "id": "c", "name": "Declared", "type": "date", "date": {} },
                "Resolved at": { "id": "d", "name": "Resolved at", "type": "date", "date": {} },
                "Slack channel": { "id": "e", "name": "Slack channel", "type": "url", "url": {} },
                "PagerDuty": { "id": "f", "name": "PagerDuty", "type": "url", "url": {} },
                "Duration": { "id": "g", "name": "Duration", "type": "rich_text", "rich_text": {} },
                "Owner": { "id": "h", "name": "Owner", "type": "people", "people": {} },
                "Created": { "id": "i", "name": "Created", "type": "created_time", "created_time": {} }
            }
        })
    }

    fn schema() -> DatabaseSchema {
        DatabaseSchema::from_json(&database()).unwrap()
    }

    fn pretty(v: &Value) -> String {
        serde_json::to_string_pretty(v).unwrap()
    }

    fn all_rich_text(v: &Value, out: &mut Vec<Vec<Value>>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if (k == "rich_text" || k == "title") && x.is_array() {
                        out.push(x.as_array().unwrap().clone());
                    } else {
                        all_rich_text(x, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| all_rich_text(x, out)),
            _ => {}
        }
    }

    fn assert_within_limits(v: &Value) {
        let mut arrays = Vec::new();
        all_rich_text(v, &mut arrays);
        for a in arrays {
            assert!(a.len() <= RICH_TEXT_ITEMS_MAX, "{} items", a.len());
            for i in a {
                let c = i.pointer("/text/content").and_then(Value::as_str).unwrap();
                assert!(c.encode_utf16().count() <= TEXT_MAX);
                if let Some(u) = i.pointer("/text/link/url").and_then(Value::as_str) {
                    assert!(u.encode_utf16().count() <= URL_MAX);
                }
            }
        }
    }

    #[test]
    fn schema_finds_the_title_property_whatever_its_name() {
        let s = schema();
        assert_eq!(s.title_property, "Incident");
        assert_eq!(s.title, "Post-mortems");
        assert_eq!(
            s.properties.get("Status"),
            Some(&PropertyKind::Status(vec![
                "Investigating".into(),
                "Resolved".into()
            ]))
        );
        assert!(DatabaseSchema::from_json(&json!({ "properties": {} })).is_none());
    }

    #[test]
    fn properties_are_mapped_by_type_and_name() {
        let m = schema().mapping();
        assert_eq!(
            m,
            PropertyMap {
                status: Some("Status".into()),
                severity: Some("Severity".into()),
                declared: Some("Declared".into()),
                resolved: Some("Resolved at".into()),
                channel_url: Some("Slack channel".into()),
                pagerduty_url: Some("PagerDuty".into()),
                duration: Some("Duration".into()),
                summary: None,
            }
        );
    }

    #[test]
    fn a_property_with_the_wrong_type_is_not_used() {
        let mut db = database();
        db["properties"]["Severity"] =
            json!({ "name": "Severity", "type": "people", "people": {} });
        db["properties"]["Slack channel"] =
            json!({ "name": "Slack channel", "type": "rich_text", "rich_text": {} });
        let s = DatabaseSchema::from_json(&db).unwrap();
        let m = s.mapping();
        assert_eq!(m.severity, None);
        // The only remaining URL property is PagerDuty's: the channel link is left out.
        assert_eq!(m.channel_url, None);
        let props = declare_properties(&s, &facts());
        assert!(props.get("Severity").is_none() && props.get("Slack channel").is_none());
    }

    #[test]
    fn declare_properties_match_snapshot() {
        insta::assert_snapshot!(pretty(&declare_properties(&schema(), &facts())));
    }

    #[test]
    fn resolve_properties_match_snapshot() {
        insta::assert_snapshot!(pretty(&resolve_properties(&schema(), &resolved_facts())));
    }

    #[test]
    fn status_uses_only_options_that_exist() {
        let mut db = database();
        db["properties"]["Status"]["status"]["options"] =
            json!([{ "name": "Draft" }, { "name": "In review" }]);
        let s = DatabaseSchema::from_json(&db).unwrap();
        // Open: "Draft" is a known open-ish name, spelled as the schema spells it.
        assert_eq!(
            declare_properties(&s, &facts())["Status"],
            json!({ "status": { "name": "Draft" } })
        );
        // Resolved: no fitting option, so the status is left alone.
        assert!(resolve_properties(&s, &resolved_facts())
            .get("Status")
            .is_none());
    }

    #[test]
    fn a_select_status_is_written_as_select() {
        let mut db = database();
        db["properties"]["Status"] = json!({ "name": "Status", "type": "select",
            "select": { "options": [{ "name": "open" }, { "name": "CLOSED" }] } });
        let s = DatabaseSchema::from_json(&db).unwrap();
        assert_eq!(
            declare_properties(&s, &facts())["Status"],
            json!({ "select": { "name": "open" } })
        );
        assert_eq!(
            resolve_properties(&s, &resolved_facts())["Status"],
            json!({ "select": { "name": "CLOSED" } })
        );
    }

    #[test]
    fn severity_prefers_an_existing_option_and_otherwise_creates_one() {
        let mut f = facts();
        f.severity_label = "sev2".into();
        assert_eq!(
            declare_properties(&schema(), &f)["Severity"],
            json!({ "select": { "name": "SEV2" } })
        );
        f.severity_label = "P0, urgent".into();
        f.severity_id = "p0".into();
        assert_eq!(
            declare_properties(&schema(), &f)["Severity"],
            json!({ "select": { "name": "P0  urgent" } })
        );
    }

    #[test]
    fn a_single_date_becomes_a_range_on_resolve() {
        let mut db = database();
        db["properties"]
            .as_object_mut()
            .unwrap()
            .remove("Resolved at");
        let s = DatabaseSchema::from_json(&db).unwrap();
        let p = resolve_properties(&s, &resolved_facts());
        assert_eq!(
            p["Declared"],
            json!({ "date": { "start": "2025-03-14T09:26:53Z", "end": "2025-03-14T10:31:53Z" } })
        );
    }

    #[test]
    fn page_parent_gets_only_a_title() {
        let p = page_parent_properties(&facts());
        assert_eq!(p.as_object().unwrap().len(), 1);
        assert_eq!(
            p["title"]["title"][0]["text"]["content"],
            "20250314-brave-otter"
        );
    }

    #[test]
    fn postmortem_blocks_match_snapshot() {
        insta::assert_snapshot!(pretty(&Value::Array(postmortem_blocks(&facts()))));
    }

    #[test]
    fn resolution_blocks_match_snapshot() {
        insta::assert_snapshot!(pretty(&Value::Array(resolution_blocks(&resolved_facts()))));
    }

    #[test]
    fn skeleton_has_every_section() {
        let blocks = postmortem_blocks(&facts());
        let headings: Vec<String> = blocks
            .iter()
            .filter(|b| b["type"] == "heading_2")
            .map(|b| plain_text(b["heading_2"]["rich_text"].as_array().unwrap()))
            .collect();
        assert_eq!(
            headings,
            [
                "Description",
                "Impact",
                "Timeline",
                "Root cause analysis",
                "Mitigation",
                "Follow-up tasks",
                "Lessons learned"
            ]
        );
        assert!(blocks.iter().any(|b| b["type"] == "to_do"));
        let text = pretty(&Value::Array(blocks));
        assert!(text.contains("https://slack.com/app_redirect?channel=C0INCIDENT"));
        assert!(text.contains("Declared by U0REPORTER"));
    }

    #[test]
    fn long_text_is_split_at_2000_utf16_units_and_100_items() {
        let mut f = facts();
        // 3 UTF-16 units per repetition ("a" + a surrogate pair).
        f.description = "a😀".repeat(100_000);
        f.title = "t".repeat(5000);
        f.timeline = (0..(TIMELINE_MAX + 20))
            .map(|i| TimelineEntry {
                at: f.declared_at,
                text: format!("entry {i} {}", "🔥".repeat(1500)),
            })
            .collect();
        let blocks = postmortem_blocks(&f);
        let v = Value::Array(blocks.clone());
        assert_within_limits(&v);
        // The description was clamped to LONG_TEXT_MAX and split across 2000-unit items.
        let desc = blocks
            .iter()
            .position(|b| b["type"] == "heading_2")
            .unwrap()
            + 1;
        let items = blocks[desc]["paragraph"]["rich_text"].as_array().unwrap();
        assert!((10..=11).contains(&items.len()), "{} items", items.len());
        assert!(pretty(&v).contains("20 more entries in the Slack channel"));
        assert_within_limits(&declare_properties(&schema(), &f));
        // Chunks respect both the block count and the byte budget.
        let chunks = chunk_blocks(&blocks);
        assert!(chunks.len() >= 6);
        for c in &chunks {
            assert!(c.len() <= BLOCKS_PER_REQUEST);
            assert!(serde_json::to_vec(c).unwrap().len() <= REQUEST_BYTES_MAX + 100_000);
        }
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), blocks.len());
    }

    #[test]
    fn many_short_items_continue_in_a_second_block() {
        let rt: Vec<Value> = (0..250).map(|i| plain(&format!("{i}")).remove(0)).collect();
        let blocks = text_blocks("paragraph", rt, &Value::Null);
        assert_eq!(blocks.len(), 3);
        assert_eq!(
            blocks[2]["paragraph"]["rich_text"]
                .as_array()
                .unwrap()
                .len(),
            50
        );
    }

    #[test]
    fn chunking_keeps_order_and_splits_at_100() {
        let blocks: Vec<Value> = (0..250).map(|i| heading(3, &i.to_string())).collect();
        let chunks = chunk_blocks(&blocks);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        assert_eq!(chunks[2][0], blocks[200]);
        assert!(chunk_blocks(&[]).is_empty());
    }

    #[test]
    fn bad_links_are_left_out() {
        let mut f = facts();
        f.channel_url = format!("https://slack.com/{}", "x".repeat(URL_MAX));
        f.pagerduty_url = Some("not a url".into());
        let v = Value::Array(postmortem_blocks(&f));
        assert!(!pretty(&v).contains("\"link\""));
        let p = declare_properties(&schema(), &f);
        assert!(p.get("Slack channel").is_none() && p.get("PagerDuty").is_none());
    }

    #[test]
    fn the_resolution_marker_is_recognised_from_notion_output() {
        let mut b = resolution_blocks(&resolved_facts()).remove(0);
        assert!(is_resolution_marker(&b));
        // What Notion returns carries plain_text too.
        b["heading_2"]["rich_text"][0]["plain_text"] = json!("Resolution");
        assert!(is_resolution_marker(&b));
        assert!(
            !is_resolution_marker(&heading(2, "Resolution")),
            "a plain heading people typed"
        );
    }

    fn pm_doc(long_note: bool) -> pm::PostMortem {
        use crate::incident::follow_up::{Closure, FollowUp};
        use crate::incident::ids::UserId;
        use crate::incident::roles::{PeopleLabels, Role, RoleHolding};
        use crate::incident::timeline::{EntryKind, TimelineEntry as Entry};
        let f = facts();
        let at = f.declared_at;
        let facts = pm::PostMortemFacts {
            title: "Checkout down".into(),
            description: "EU checkout returns 500".into(),
            severity: "SEV2".into(),
            status: "Resolved".into(),
            resolution: Some("Rolled back the deploy".into()),
            impact: Some("EU customers could not pay".into()),
            declared_at: at,
            resolved_at: Some(at + chrono::Duration::minutes(65)),
            closed_at: None,
            review_held_on: None,
            review_notes: None,
            channel_name: "inc-20250314-brave-otter".into(),
            channel_url: Some("https://slack.com/app_redirect?channel=C0INCIDENT".into()),
            page_url: Some("https://www.notion.so/page".into()),
            pagerduty_url: None,
        };
        let u = |s: &str| UserId::new(s);
        let text = if long_note {
            "x".repeat(4500)
        } else {
            "<@U2> rolled back".to_string()
        };
        let timeline = vec![
            Entry {
                at,
                author: Some(u("U1")),
                kind: EntryKind::Declared,
                text: "Declared by <@U1>".into(),
            },
            Entry {
                at: at + chrono::Duration::minutes(30),
                author: Some(u("U2")),
                kind: EntryKind::Note,
                text,
            },
        ];
        let mut done = FollowUp::new(2, "Alert on 5xx", Some(u("U2")), None);
        done.close(Closure::Done).unwrap();
        let mut dropped = FollowUp::new(3, "Rewrite checkout", None, None);
        dropped.close(Closure::WontDo).unwrap();
        let follow_ups = vec![
            FollowUp::new(
                1,
                "Canary deploys",
                Some(u("U1")),
                chrono::NaiveDate::from_ymd_opt(2025, 4, 1),
            ),
            done,
            dropped,
        ];
        let history = [RoleHolding {
            role: Role::Commander,
            user: u("U1"),
        }];
        let labels = PeopleLabels::build(&history, &[u("U1"), u("U2")]);
        let names: pm::Names = [
            (u("U1"), vec!["Jane Doe".to_string()]),
            (u("U2"), vec!["Bob Stone".to_string()]),
        ]
        .into_iter()
        .collect();
        pm::PostMortem::build(&facts, &timeline, &follow_ups, &labels, &names)
    }

    fn all_pm_blocks(doc: &pm::PostMortem) -> Vec<Value> {
        doc.sections.iter().flat_map(section_blocks).collect()
    }

    #[test]
    fn post_mortem_sections_match_snapshot() {
        insta::assert_snapshot!(pretty(&Value::Array(all_pm_blocks(&pm_doc(false)))));
    }

    #[test]
    fn post_mortem_text_is_split_within_notions_limits() {
        let blocks = all_pm_blocks(&pm_doc(true));
        assert_within_limits(&Value::Array(blocks.clone()));
        let text = pretty(&Value::Array(blocks));
        assert_eq!(text.matches(&"x".repeat(2000)).count(), 2);
    }

    #[test]
    fn an_empty_page_gets_every_section_once_and_a_full_one_gets_nothing() {
        let doc = pm_doc(false);
        let all = missing_blocks(&[], &doc);
        assert_eq!(all, all_pm_blocks(&doc));
        // The skeleton's own unmarked "Impact" and "Timeline" headings do not count.
        let mut page = vec![heading(2, "Impact"), heading(2, "Timeline")];
        page.extend(all.clone());
        assert!(missing_blocks(&page, &doc).is_empty());
    }

    #[test]
    fn a_page_cut_between_two_chunks_gets_only_the_rest() {
        let doc = pm_doc(false);
        let all = all_pm_blocks(&doc);
        for cut in 1..all.len() {
            let rest = missing_blocks(&all[..cut], &doc);
            assert_eq!(rest, all[cut..].to_vec(), "cut after {cut} blocks");
        }
    }

    #[test]
    fn closing_appends_only_the_review_section() {
        let doc = pm_doc(false);
        let page = all_pm_blocks(&doc);
        let mut closed = doc.clone();
        closed.sections.push(pm::Section {
            id: pm::SectionId::Review,
            blocks: vec![pm::Block::Paragraph("Notes".into())],
        });
        let added = missing_blocks(&page, &closed);
        assert_eq!(section_of(&added[0]), Some(pm::SectionId::Review));
        assert_eq!(added.len(), 2);
    }

    /// The page as Notion would list it: ids on every block.
    fn with_ids(blocks: Vec<Value>) -> Vec<Value> {
        blocks
            .into_iter()
            .enumerate()
            .map(|(i, mut b)| {
                b["id"] = json!(format!("b{i}"));
                b
            })
            .collect()
    }

    #[test]
    fn follow_up_changes_update_what_changed_and_add_what_is_new() {
        let doc = pm_doc(false);
        let page = with_ids(all_pm_blocks(&doc));
        assert_eq!(
            follow_up_changes(&page, &doc),
            FollowUpChanges {
                after: Some(format!("b{}", page.len() - 1)),
                ..FollowUpChanges::default()
            }
        );
        // F-1 done, F-4 added.
        let mut later = doc.clone();
        let fu = later
            .sections
            .iter_mut()
            .find(|s| s.id == pm::SectionId::FollowUps)
            .unwrap();
        if let pm::Block::ToDo { checked, .. } = &mut fu.blocks[0] {
            *checked = true;
        }
        fu.blocks.push(pm::Block::ToDo {
            reference: "F-4".parse().unwrap(),
            title: "Runbook".into(),
            owner: None,
            due: None,
            checked: false,
            wont_do: false,
        });
        let c = follow_up_changes(&page, &later);
        let f1 = page
            .iter()
            .find(|b| {
                plain_text(b["to_do"]["rich_text"].as_array().unwrap_or(&vec![]))
                    .starts_with("F-1 ")
            })
            .unwrap();
        assert_eq!(c.updates.len(), 1);
        assert_eq!(c.updates[0].0, f1["id"].as_str().unwrap());
        assert_eq!(c.updates[0].1["to_do"]["checked"], true);
        assert_eq!(c.append.len(), 1);
        assert!(
            plain_text(c.append[0]["to_do"]["rich_text"].as_array().unwrap())
                .starts_with("F-4 Runbook")
        );
        // Without the section on the page there is nothing to sync.
        assert_eq!(
            follow_up_changes(&page[..3], &later),
            FollowUpChanges::default()
        );
    }

    #[test]
    fn ids_are_normalised() {
        let id = "bc1211cae3f14939ae345260b16f627c";
        let dashed = "bc1211ca-e3f1-4939-ae34-5260b16f627c";
        assert_eq!(normalize_id(id), dashed);
        assert_eq!(normalize_id(dashed), dashed);
        assert_eq!(
            normalize_id(&format!(
                "https://www.notion.so/acme/Post-mortems-{id}?v=123"
            )),
            dashed
        );
        assert_eq!(normalize_id(" not-an-id "), "not-an-id");
        assert_eq!(path_segment("a/../b"), "a%2F%2E%2E%2Fb");
    }

    #[test]
    fn error_details_are_short_and_never_hold_the_token() {
        let body = r#"{"object":"error","status":400,"code":"validation_error","message":"body failed validation: body.children[0].paragraph.rich_text[0].text.content.length should be ≤ `2000`, instead was `2001`."}"#;
        assert!(error_detail(body, "secret_abc")
            .starts_with("validation_error: body failed validation"));
        let echoed = r#"{"code":"unauthorized","message":"API token secret_abc is invalid."}"#;
        assert_eq!(
            error_detail(echoed, "secret_abc"),
            "unauthorized: API token *** is invalid."
        );
        assert!(
            error_detail(&"y".repeat(4000), "secret_abc")
                .chars()
                .count()
                <= 300
        );
    }

    #[test]
    fn doctor_title_check_lists_what_is_filled() {
        let c = title_check(Some(&schema()));
        assert!(c.ok);
        assert!(
            c.detail.contains("'Incident' will hold the incident name"),
            "{}",
            c.detail
        );
        assert!(c.detail.contains("severity → 'Severity'"));
        assert!(!title_check(None).ok);
    }
}
