//! Identifier newtypes: an incident's row id and the Slack ids incd handles.
//!
//! Each wraps the raw value so that a channel id can never be passed where a user id is expected.
//! They are plain data (no validation beyond what Slack itself guarantees): Slack ids are opaque
//! strings, and incd only ever compares and forwards them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The store's id of an incident (its row id; stable for the incident's life).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentId(pub i64);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(v: impl Into<String>) -> Self {
                Self(v.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(v: &str) -> Self {
                Self(v.to_string())
            }
        }

        impl From<String> for $name {
            fn from(v: String) -> Self {
                Self(v)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A Slack conversation id (`C…` public, `G…` private, `D…` direct message).
    ChannelId
);
string_id!(
    /// A Slack user id (`U…` or `W…`).
    UserId
);
string_id!(
    /// A Slack message timestamp (`1700000000.000100`): a message's id within its channel.
    MessageTs
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialise_as_their_raw_value() {
        assert_eq!(serde_json::to_string(&IncidentId(7)).unwrap(), "7");
        assert_eq!(
            serde_json::to_string(&ChannelId::new("C1")).unwrap(),
            "\"C1\""
        );
        let u: UserId = serde_json::from_str("\"U9\"").unwrap();
        assert_eq!(u.as_str(), "U9");
        assert_eq!(MessageTs::from("1.2").to_string(), "1.2");
    }
}
