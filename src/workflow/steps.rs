//! Typed step keys: every step of every workflow, how it is written in the store, and which
//! workflow owns it.
//!
//! The text form is what the `steps` table holds (`announce:C0123`, `notice:page`); it is built
//! by [`Display`](std::fmt::Display) and read back by [`FromStr`](std::str::FromStr) here and
//! nowhere else. An unknown key in the store is an error.

use std::fmt;
use std::str::FromStr;

use crate::incident::ChannelId;

/// The background steps that talk to PagerDuty and Notion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Background {
    Page,
    PostMortem,
    PageResolve,
    PostMortemResolve,
    /// At close: the post-mortem gains the review section (closing time, review notes).
    PostMortemClose,
    /// After a follow-up changed (once the post-mortem is written): its to-dos kept current.
    /// Run again, from scratch, at every change.
    PostMortemFollowUps,
}

impl Background {
    pub const ALL: [Background; 6] = [
        Background::Page,
        Background::PostMortem,
        Background::PageResolve,
        Background::PostMortemResolve,
        Background::PostMortemClose,
        Background::PostMortemFollowUps,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Background::Page => "page",
            Background::PostMortem => "postmortem",
            Background::PageResolve => "page_resolve",
            Background::PostMortemResolve => "postmortem_resolve",
            Background::PostMortemClose => "postmortem_close",
            Background::PostMortemFollowUps => "postmortem_follow_ups",
        }
    }

    fn parse(s: &str) -> Option<Background> {
        Background::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

/// A workflow: what the runner starts, resumes and leases as one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workflow {
    Declare,
    Resolve,
    /// One background integration step, running on its own.
    Background(Background),
    /// Showing one recorded change (status, severity, role) everywhere; its number.
    Change(u32),
    /// Posting a new follow-up in the channel and sending it to its owner (one workflow per
    /// follow-up, so two added at once never wait for each other).
    FollowUp(u32),
    /// After the review: say closed everywhere, then archive the channel.
    Close,
    /// A resolved incident back to investigating.
    Reopen,
    /// The review reminder for one due time (unix milliseconds).
    Review(i64),
}

/// The parts of showing a change, each its own step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChangePart {
    /// The post in the incident channel.
    Post,
    Topic,
    Summary,
    /// The announcement in a broadcast channel, edited in place.
    AnnounceEdit(ChannelId),
    /// The reply in the announcement's thread.
    AnnounceReply(ChannelId),
    /// The role holder's direct message (or its ephemeral fallback).
    Dm,
    /// Paging when a raised severity pages and nobody was paged yet.
    Page,
}

impl fmt::Display for ChangePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangePart::Post => f.write_str("post"),
            ChangePart::Topic => f.write_str("topic"),
            ChangePart::Summary => f.write_str("summary"),
            ChangePart::AnnounceEdit(c) => write!(f, "announce_edit:{c}"),
            ChangePart::AnnounceReply(c) => write!(f, "announce_reply:{c}"),
            ChangePart::Dm => f.write_str("dm"),
            ChangePart::Page => f.write_str("page"),
        }
    }
}

impl ChangePart {
    fn parse(s: &str) -> Option<ChangePart> {
        let channel = |v: &str| (!v.is_empty()).then(|| ChannelId::from(v));
        Some(match s.split_once(':') {
            Some(("announce_edit", c)) => ChangePart::AnnounceEdit(channel(c)?),
            Some(("announce_reply", c)) => ChangePart::AnnounceReply(channel(c)?),
            Some(_) => return None,
            None => match s {
                "post" => ChangePart::Post,
                "topic" => ChangePart::Topic,
                "summary" => ChangePart::Summary,
                "dm" => ChangePart::Dm,
                "page" => ChangePart::Page,
                _ => return None,
            },
        })
    }
}

impl fmt::Display for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workflow::Declare => f.write_str("declare"),
            Workflow::Resolve => f.write_str("resolve"),
            Workflow::Background(b) => f.write_str(b.as_str()),
            Workflow::Change(n) => write!(f, "change:{n}"),
            Workflow::FollowUp(n) => write!(f, "follow_up:{n}"),
            Workflow::Close => f.write_str("close"),
            Workflow::Reopen => f.write_str("reopen"),
            Workflow::Review(ms) => write!(f, "review:{ms}"),
        }
    }
}

/// One step of one workflow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StepKey {
    /// Marks a whole workflow as started / done, so that resume finds a workflow interrupted
    /// between two steps.
    Workflow(Workflow),
    // declare
    CreateChannel,
    Summary,
    Pin,
    Invite,
    Topic,
    Reply,
    Announce(ChannelId),
    // resolve
    Rename,
    ResolveTopic,
    ResolveSummary,
    Resolution,
    AnnounceUpdate(ChannelId),
    AnnounceReply(ChannelId),
    // background integrations and what they post
    Background(Background),
    Notice(Background),
    GaveUp(Background),
    Recovered(Background),
    Bookmark(Background),
    // showing a change
    Change(u32, ChangePart),
    // follow-ups: the post in the channel and the DM to the owner, per number
    FollowUpPost(u32),
    FollowUpDm(u32),
    // close and reopen
    ClosePost,
    Archive,
    ArchiveRefused,
    ReopenPost,
    // review reminders, per due time (unix ms): the channel post and each DM
    ReviewPost(i64),
    ReviewDm(i64, crate::incident::UserId),
}

impl StepKey {
    /// The workflow this step belongs to (resume re-runs it when the step is unfinished).
    pub fn workflow(&self) -> Workflow {
        match self {
            StepKey::Workflow(w) => *w,
            StepKey::CreateChannel
            | StepKey::Summary
            | StepKey::Pin
            | StepKey::Invite
            | StepKey::Topic
            | StepKey::Reply
            | StepKey::Announce(_) => Workflow::Declare,
            StepKey::Rename
            | StepKey::ResolveTopic
            | StepKey::ResolveSummary
            | StepKey::Resolution
            | StepKey::AnnounceUpdate(_)
            | StepKey::AnnounceReply(_) => Workflow::Resolve,
            StepKey::Background(b)
            | StepKey::Notice(b)
            | StepKey::GaveUp(b)
            | StepKey::Recovered(b)
            | StepKey::Bookmark(b) => Workflow::Background(*b),
            StepKey::Change(n, _) => Workflow::Change(*n),
            StepKey::FollowUpPost(n) | StepKey::FollowUpDm(n) => Workflow::FollowUp(*n),
            StepKey::ClosePost | StepKey::Archive | StepKey::ArchiveRefused => Workflow::Close,
            StepKey::ReopenPost => Workflow::Reopen,
            StepKey::ReviewPost(ms) | StepKey::ReviewDm(ms, _) => Workflow::Review(*ms),
        }
    }

    /// The marker step of a workflow.
    pub fn of(w: Workflow) -> StepKey {
        match w {
            Workflow::Background(b) => StepKey::Background(b),
            w => StepKey::Workflow(w),
        }
    }
}

impl fmt::Display for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepKey::Workflow(w) => write!(f, "workflow:{w}"),
            StepKey::CreateChannel => f.write_str("create_channel"),
            StepKey::Summary => f.write_str("summary"),
            StepKey::Pin => f.write_str("pin"),
            StepKey::Invite => f.write_str("invite"),
            StepKey::Topic => f.write_str("topic"),
            StepKey::Reply => f.write_str("reply"),
            StepKey::Announce(c) => write!(f, "announce:{c}"),
            StepKey::Rename => f.write_str("rename"),
            StepKey::ResolveTopic => f.write_str("resolve_topic"),
            StepKey::ResolveSummary => f.write_str("resolve_summary"),
            StepKey::Resolution => f.write_str("resolution"),
            StepKey::AnnounceUpdate(c) => write!(f, "announce_update:{c}"),
            StepKey::AnnounceReply(c) => write!(f, "announce_reply:{c}"),
            StepKey::Background(b) => f.write_str(b.as_str()),
            StepKey::Notice(b) => write!(f, "notice:{}", b.as_str()),
            StepKey::GaveUp(b) => write!(f, "gave_up:{}", b.as_str()),
            StepKey::Recovered(b) => write!(f, "recovered:{}", b.as_str()),
            StepKey::Bookmark(b) => write!(f, "bookmark:{}", b.as_str()),
            StepKey::Change(n, p) => write!(f, "change:{n}:{p}"),
            StepKey::FollowUpPost(n) => write!(f, "follow_up_post:{n}"),
            StepKey::FollowUpDm(n) => write!(f, "follow_up_dm:{n}"),
            StepKey::ClosePost => f.write_str("close_post"),
            StepKey::Archive => f.write_str("archive"),
            StepKey::ArchiveRefused => f.write_str("archive_refused"),
            StepKey::ReopenPost => f.write_str("reopen_post"),
            StepKey::ReviewPost(ms) => write!(f, "review_post:{ms}"),
            StepKey::ReviewDm(ms, u) => write!(f, "review_dm:{ms}:{u}"),
        }
    }
}

/// A step key this incd does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown step key {0:?}")]
pub struct UnknownStep(pub String);

impl FromStr for StepKey {
    type Err = UnknownStep;

    fn from_str(s: &str) -> Result<StepKey, UnknownStep> {
        let unknown = || UnknownStep(s.to_string());
        let bg = |v: &str| Background::parse(v).ok_or_else(unknown);
        let number = |v: &str| match v.parse::<u32>() {
            Ok(n) if n > 0 && !v.starts_with('+') => Ok(n),
            _ => Err(unknown()),
        };
        let millis = |v: &str| match v.parse::<i64>() {
            Ok(n) if n >= 0 && !v.starts_with('+') => Ok(n),
            _ => Err(unknown()),
        };
        let channel = |v: &str| {
            if v.is_empty() {
                Err(unknown())
            } else {
                Ok(ChannelId::from(v))
            }
        };
        if let Some((prefix, rest)) = s.split_once(':') {
            return Ok(match prefix {
                "workflow" => StepKey::Workflow(match rest {
                    "declare" => Workflow::Declare,
                    "resolve" => Workflow::Resolve,
                    r if r.starts_with("review:") => {
                        Workflow::Review(millis(&r["review:".len()..])?)
                    }
                    r if r.starts_with("follow_up:") => {
                        Workflow::FollowUp(number(&r["follow_up:".len()..])?)
                    }
                    "close" => Workflow::Close,
                    "reopen" => Workflow::Reopen,
                    other => match other.strip_prefix("change:").map(str::parse) {
                        Some(Ok(n)) => Workflow::Change(n),
                        _ => return Err(unknown()),
                    },
                }),
                "change" => {
                    let (n, part) = rest.split_once(':').ok_or_else(unknown)?;
                    let n: u32 = n.parse().map_err(|_| unknown())?;
                    StepKey::Change(n, ChangePart::parse(part).ok_or_else(unknown)?)
                }
                "announce" => StepKey::Announce(channel(rest)?),
                "announce_update" => StepKey::AnnounceUpdate(channel(rest)?),
                "announce_reply" => StepKey::AnnounceReply(channel(rest)?),
                "notice" => StepKey::Notice(bg(rest)?),
                "gave_up" => StepKey::GaveUp(bg(rest)?),
                "recovered" => StepKey::Recovered(bg(rest)?),
                "bookmark" => StepKey::Bookmark(bg(rest)?),
                "follow_up_post" => StepKey::FollowUpPost(number(rest)?),
                "review_post" => StepKey::ReviewPost(millis(rest)?),
                "review_dm" => {
                    let (ms, user) = rest.split_once(':').ok_or_else(unknown)?;
                    if user.is_empty() {
                        return Err(unknown());
                    }
                    StepKey::ReviewDm(millis(ms)?, crate::incident::UserId::from(user))
                }
                "follow_up_dm" => StepKey::FollowUpDm(number(rest)?),
                _ => return Err(unknown()),
            });
        }
        Ok(match s {
            "create_channel" => StepKey::CreateChannel,
            "summary" => StepKey::Summary,
            "pin" => StepKey::Pin,
            "invite" => StepKey::Invite,
            "topic" => StepKey::Topic,
            "reply" => StepKey::Reply,
            "rename" => StepKey::Rename,
            "resolve_topic" => StepKey::ResolveTopic,
            "resolve_summary" => StepKey::ResolveSummary,
            "resolution" => StepKey::Resolution,
            "close_post" => StepKey::ClosePost,
            "archive" => StepKey::Archive,
            "archive_refused" => StepKey::ArchiveRefused,
            "reopen_post" => StepKey::ReopenPost,
            other => StepKey::Background(bg(other)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads_back_as_itself() {
        let c = ChannelId::from("C0INCIDENTS");
        let mut keys = vec![
            StepKey::Workflow(Workflow::Declare),
            StepKey::Workflow(Workflow::Resolve),
            StepKey::CreateChannel,
            StepKey::Summary,
            StepKey::Pin,
            StepKey::Invite,
            StepKey::Topic,
            StepKey::Reply,
            StepKey::Announce(c.clone()),
            StepKey::Rename,
            StepKey::ResolveTopic,
            StepKey::ResolveSummary,
            StepKey::Resolution,
            StepKey::AnnounceUpdate(c.clone()),
            StepKey::AnnounceReply(c.clone()),
            StepKey::Workflow(Workflow::Change(12)),
            StepKey::Change(3, ChangePart::Post),
            StepKey::Change(3, ChangePart::Topic),
            StepKey::Change(3, ChangePart::Summary),
            StepKey::Change(3, ChangePart::AnnounceEdit(c.clone())),
            StepKey::Change(3, ChangePart::AnnounceReply(c.clone())),
            StepKey::Change(3, ChangePart::Dm),
            StepKey::Change(3, ChangePart::Page),
            StepKey::Workflow(Workflow::FollowUp(2)),
            StepKey::FollowUpPost(3),
            StepKey::FollowUpDm(12),
            StepKey::Workflow(Workflow::Close),
            StepKey::Workflow(Workflow::Reopen),
            StepKey::ClosePost,
            StepKey::Archive,
            StepKey::ArchiveRefused,
            StepKey::ReopenPost,
            StepKey::Workflow(Workflow::Review(1_796_000_000_000)),
            StepKey::ReviewPost(1_796_000_000_000),
            StepKey::ReviewDm(1_796_000_000_000, "U0BOB".into()),
        ];
        for b in Background::ALL {
            keys.extend([
                StepKey::Background(b),
                StepKey::Notice(b),
                StepKey::GaveUp(b),
                StepKey::Recovered(b),
                StepKey::Bookmark(b),
            ]);
        }
        for k in keys {
            assert_eq!(k.to_string().parse::<StepKey>(), Ok(k.clone()), "{k}");
        }
    }

    #[test]
    fn keys_keep_the_text_older_databases_hold() {
        assert_eq!(
            "announce:C1".parse::<StepKey>(),
            Ok(StepKey::Announce(ChannelId::from("C1")))
        );
        assert_eq!(
            "notice:page".parse::<StepKey>(),
            Ok(StepKey::Notice(Background::Page))
        );
        assert_eq!(
            StepKey::Background(Background::PageResolve).to_string(),
            "page_resolve"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        for bad in [
            "",
            "announce:",
            "notice:sms",
            "workflow:page",
            "paging",
            "workflow:change:x",
            "change:1",
            "change:1:wave",
            "change:1:announce_edit:",
            "follow_up_post:",
            "follow_up_post:0",
            "follow_up_dm:x",
        ] {
            assert!(bad.parse::<StepKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn each_step_belongs_to_its_workflow() {
        assert_eq!(StepKey::Pin.workflow(), Workflow::Declare);
        assert_eq!(
            StepKey::AnnounceReply(ChannelId::from("C1")).workflow(),
            Workflow::Resolve
        );
        assert_eq!(
            StepKey::Notice(Background::Page).workflow(),
            Workflow::Background(Background::Page)
        );
        assert_eq!(
            StepKey::of(Workflow::Background(Background::PostMortem)),
            StepKey::Background(Background::PostMortem)
        );
    }
}
