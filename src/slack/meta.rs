//! What incd stores in Slack to read back later: a modal's `private_metadata` and a button's
//! `value`. One type per use, each with its `encode` and `decode`; decoding something incd did not
//! write is an error, never a silent default.
//!
//! The encodings are the ones incd has always written, so forms opened and buttons posted by an
//! earlier version still work: `{"c":"<channel>","r":"<response_url>"}` for the declare form,
//! `{"i":<incident id>}` for the resolve form, `<incident id>:<step>` for *Retry now*.

use serde::{Deserialize, Serialize};

use crate::incident::ids::{ChannelId, IncidentId};

/// `private_metadata` is limited to 3000 characters by Slack.
pub const PRIVATE_METADATA_MAX: usize = 3000;
/// A button's `value` is limited to 2000 characters by Slack.
pub const BUTTON_VALUE_MAX: usize = 2000;

/// Something read back from Slack that incd did not write (or that an older format cannot
/// express).
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("unreadable {what}: {detail}")]
    Unreadable { what: &'static str, detail: String },
}

fn unreadable(what: &'static str, detail: impl ToString) -> MetaError {
    MetaError::Unreadable {
        what,
        detail: detail.to_string(),
    }
}

/// The declare form remembers where the command was typed and how to answer the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclareFormMeta {
    pub origin: Option<ChannelId>,
    pub response_url: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct DeclareWire {
    c: String,
    r: String,
}

impl DeclareFormMeta {
    pub fn encode(&self) -> String {
        let wire = DeclareWire {
            c: self
                .origin
                .as_ref()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            r: self.response_url.clone().unwrap_or_default(),
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    pub fn decode(s: &str) -> Result<DeclareFormMeta, MetaError> {
        let wire: DeclareWire =
            serde_json::from_str(s).map_err(|e| unreadable("declare form metadata", e))?;
        Ok(DeclareFormMeta {
            origin: Some(wire.c).filter(|c| !c.is_empty()).map(ChannelId::from),
            response_url: Some(wire.r).filter(|r| !r.is_empty()),
        })
    }
}

/// The update form remembers its incident the same way as the resolve form (`{"i":id}`).
pub type UpdateFormMeta = ResolveFormMeta;

/// The resolve form remembers which incident it resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolveFormMeta {
    pub incident: IncidentId,
}

#[derive(Serialize, Deserialize)]
struct ResolveWire {
    i: i64,
}

impl ResolveFormMeta {
    pub fn encode(&self) -> String {
        serde_json::to_string(&ResolveWire { i: self.incident.0 }).unwrap_or_default()
    }

    pub fn decode(s: &str) -> Result<ResolveFormMeta, MetaError> {
        let wire: ResolveWire =
            serde_json::from_str(s).map_err(|e| unreadable("resolve form metadata", e))?;
        Ok(ResolveFormMeta {
            incident: IncidentId(wire.i),
        })
    }
}

/// The *Retry now* button under an integration notice: which incident, which step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryButton {
    pub incident: IncidentId,
    pub step: String,
}

impl RetryButton {
    pub fn encode(&self) -> String {
        format!("{}:{}", self.incident, self.step)
    }

    pub fn decode(s: &str) -> Result<RetryButton, MetaError> {
        let what = "retry button value";
        let (id, step) = s
            .split_once(':')
            .ok_or_else(|| unreadable(what, "no ':'"))?;
        let id = id.parse::<i64>().map_err(|e| unreadable(what, e))?;
        if step.is_empty() {
            return Err(unreadable(what, "no step"));
        }
        Ok(RetryButton {
            incident: IncidentId(id),
            step: step.to_string(),
        })
    }
}

/// The value of a follow-up's *Done* / *Won't do* button: `<incident id>:F-<n>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpButton {
    pub incident: IncidentId,
    pub follow_up: crate::incident::follow_up::FollowUpRef,
}

impl FollowUpButton {
    pub fn encode(&self) -> String {
        format!("{}:{}", self.incident, self.follow_up)
    }

    pub fn decode(s: &str) -> Result<FollowUpButton, MetaError> {
        let what = "follow-up button value";
        let (id, r) = s
            .split_once(':')
            .ok_or_else(|| unreadable(what, "no ':'"))?;
        let id = id.parse::<i64>().map_err(|e| unreadable(what, e))?;
        let follow_up = r.parse().map_err(|e| unreadable(what, e))?;
        Ok(FollowUpButton {
            incident: IncidentId(id),
            follow_up,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_up_buttons_round_trip_and_refuse_other_values() {
        let b = FollowUpButton {
            incident: IncidentId(4),
            follow_up: crate::incident::follow_up::FollowUpRef(2),
        };
        assert_eq!(b.encode(), "4:F-2");
        assert_eq!(FollowUpButton::decode("4:F-2").unwrap(), b);
        for bad in ["", "4", "x:F-2", "4:2", "4:F-0"] {
            assert!(FollowUpButton::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn declare_metadata_round_trips_and_keeps_its_wire_format() {
        let m = DeclareFormMeta {
            origin: Some("C0".into()),
            response_url: Some("https://hooks.slack.com/commands/T1/2/x".into()),
        };
        assert_eq!(
            m.encode(),
            r#"{"c":"C0","r":"https://hooks.slack.com/commands/T1/2/x"}"#
        );
        assert_eq!(DeclareFormMeta::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn declare_metadata_without_origin_or_url_encodes_empty_strings() {
        let m = DeclareFormMeta {
            origin: None,
            response_url: None,
        };
        assert_eq!(m.encode(), r#"{"c":"","r":""}"#);
        assert_eq!(DeclareFormMeta::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn resolve_metadata_round_trips_and_keeps_its_wire_format() {
        let m = ResolveFormMeta {
            incident: IncidentId(42),
        };
        assert_eq!(m.encode(), r#"{"i":42}"#);
        assert_eq!(ResolveFormMeta::decode(r#"{"i":42}"#).unwrap(), m);
    }

    #[test]
    fn retry_button_round_trips_and_keeps_its_wire_format() {
        let b = RetryButton {
            incident: IncidentId(7),
            step: "page".into(),
        };
        assert_eq!(b.encode(), "7:page");
        assert_eq!(RetryButton::decode("7:page").unwrap(), b);
        assert_eq!(
            RetryButton::decode("7:postmortem_resolve").unwrap().step,
            "postmortem_resolve"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_default() {
        for bad in ["", "null", "{}", "[1]", r#"{"c":1,"r":""}"#, "not json"] {
            assert!(DeclareFormMeta::decode(bad).is_err(), "{bad}");
        }
        for bad in ["", "{}", r#"{"i":"7"}"#, r#"{"c":"C0","r":""}"#, "7"] {
            assert!(ResolveFormMeta::decode(bad).is_err(), "{bad}");
        }
        for bad in ["", "7", "x:page", "7:", ":page", "7.5:page"] {
            assert!(RetryButton::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encodings_fit_slack_limits() {
        let m = DeclareFormMeta {
            origin: Some("C0123456789".into()),
            // A response_url is about 80 characters; leave room for a long one.
            response_url: Some(format!("https://hooks.slack.com/{}", "x".repeat(500))),
        };
        assert!(m.encode().len() <= PRIVATE_METADATA_MAX);
        let b = RetryButton {
            incident: IncidentId(i64::MAX),
            step: "postmortem_resolve".into(),
        };
        assert!(b.encode().len() <= BUTTON_VALUE_MAX);
    }
}
