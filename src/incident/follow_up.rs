//! Follow-ups: the tracked work an incident leaves behind (`F-1`, `F-2`, … per incident).
//!
//! Owns the follow-up value, its reference (`F-3`), its three states (open, done, won't do) and the
//! only transitions between them: done and won't do are reached from open, and applying the state
//! a follow-up already has is "no change" rather than an error, so a redelivered button press or a
//! repeated command is harmless. Storage, messages and buttons live elsewhere; no I/O here.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::ids::UserId;

/// Longest follow-up title accepted (it must fit a summary line, a DM and a Notion to-do).
pub const MAX_FOLLOW_UP_TITLE_CHARS: usize = 200;

/// A follow-up's reference within its incident, shown and typed as `F-3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FollowUpRef(pub u32);

impl fmt::Display for FollowUpRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "F-{}", self.0)
    }
}

/// Why a word is not a follow-up reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not a follow-up id. Use F-<n>, for example F-3.")]
pub struct BadFollowUpRef {
    /// What was typed.
    pub given: String,
}

impl FromStr for FollowUpRef {
    type Err = BadFollowUpRef;

    /// Accepts `F-3` and `f-3`; numbers start at 1.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFollowUpRef {
            given: s.to_string(),
        };
        let digits = s
            .strip_prefix("F-")
            .or_else(|| s.strip_prefix("f-"))
            .ok_or_else(bad)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match digits.parse::<u32>() {
            Ok(n) if n > 0 => Ok(FollowUpRef(n)),
            _ => Err(bad()),
        }
    }
}

/// Where a follow-up stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpState {
    /// Still to do: keeps review reminders going.
    Open,
    /// Done.
    Done,
    /// Decided against. Exists so that review reminders can always end.
    WontDo,
}

impl FollowUpState {
    /// The stored form: `open`, `done`, `wont_do`.
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUpState::Open => "open",
            FollowUpState::Done => "done",
            FollowUpState::WontDo => "wont_do",
        }
    }

    /// Parse the stored form.
    pub fn parse(s: &str) -> Option<FollowUpState> {
        Some(match s {
            "open" => FollowUpState::Open,
            "done" => FollowUpState::Done,
            "wont_do" => FollowUpState::WontDo,
            _ => return None,
        })
    }

    /// How people read it: `Open`, `Done`, `Won't do`.
    pub fn label(self) -> &'static str {
        match self {
            FollowUpState::Open => "Open",
            FollowUpState::Done => "Done",
            FollowUpState::WontDo => "Won't do",
        }
    }
}

/// How a follow-up can be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Closure {
    /// `/incident done F-n` or the Done button.
    Done,
    /// `/incident wontdo F-n` or the Won't do button.
    WontDo,
}

impl Closure {
    /// The state this closure leads to.
    pub fn state(self) -> FollowUpState {
        match self {
            Closure::Done => FollowUpState::Done,
            Closure::WontDo => FollowUpState::WontDo,
        }
    }
}

/// What applying a closure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The follow-up moved from open to the new state.
    Changed {
        from: FollowUpState,
        to: FollowUpState,
    },
    /// It already had that state: nothing to store, post or tell anyone.
    NoChange,
}

/// Why a follow-up change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowUpError {
    /// The other closed state was asked for (done after won't do, or the reverse).
    #[error("{reference} is already marked {}.", .state.label().to_lowercase())]
    AlreadyClosed {
        reference: FollowUpRef,
        state: FollowUpState,
    },
    /// No follow-up with that number in this incident.
    #[error("No follow-up {0} in this incident.")]
    NotFound(FollowUpRef),
}

/// One follow-up of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// Sequential within the incident, from 1.
    pub number: u32,
    /// At most [`MAX_FOLLOW_UP_TITLE_CHARS`] characters, as typed.
    pub title: String,
    pub owner: Option<UserId>,
    pub due: Option<NaiveDate>,
    pub state: FollowUpState,
}

impl FollowUp {
    /// A new, open follow-up.
    pub fn new(
        number: u32,
        title: impl Into<String>,
        owner: Option<UserId>,
        due: Option<NaiveDate>,
    ) -> FollowUp {
        FollowUp {
            number,
            title: title.into(),
            owner,
            due,
            state: FollowUpState::Open,
        }
    }

    /// `F-<number>`.
    pub fn reference(&self) -> FollowUpRef {
        FollowUpRef(self.number)
    }

    /// Whether it still keeps review reminders going.
    pub fn is_open(&self) -> bool {
        self.state == FollowUpState::Open
    }

    /// Close it as done or won't do. Only an open follow-up changes; asking for the state it
    /// already has is [`Transition::NoChange`]; asking for the other closed state is refused.
    pub fn close(&mut self, closure: Closure) -> Result<Transition, FollowUpError> {
        let to = closure.state();
        match self.state {
            FollowUpState::Open => {
                let from = self.state;
                self.state = to;
                Ok(Transition::Changed { from, to })
            }
            state if state == to => Ok(Transition::NoChange),
            state => Err(FollowUpError::AlreadyClosed {
                reference: self.reference(),
                state,
            }),
        }
    }
}

/// How many follow-ups are still open.
pub fn open_count(follow_ups: &[FollowUp]) -> usize {
    follow_ups.iter().filter(|f| f.is_open()).count()
}

/// The number the next follow-up of this incident gets.
pub fn next_number(follow_ups: &[FollowUp]) -> u32 {
    follow_ups.iter().map(|f| f.number).max().unwrap_or(0) + 1
}

/// The follow-up a reference names, or the "no such follow-up" refusal.
pub fn find_mut(
    follow_ups: &mut [FollowUp],
    reference: FollowUpRef,
) -> Result<&mut FollowUp, FollowUpError> {
    follow_ups
        .iter_mut()
        .find(|f| f.number == reference.0)
        .ok_or(FollowUpError::NotFound(reference))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn open(n: u32) -> FollowUp {
        FollowUp::new(n, format!("task {n}"), None, None)
    }

    #[test]
    fn references_read_and_print_as_f_dash_number() {
        assert_eq!("F-3".parse::<FollowUpRef>(), Ok(FollowUpRef(3)));
        assert_eq!("f-12".parse::<FollowUpRef>(), Ok(FollowUpRef(12)));
        assert_eq!(FollowUpRef(7).to_string(), "F-7");
    }

    #[test]
    fn malformed_references_are_refused_with_the_expected_form() {
        for bad in [
            "F-",
            "F-0",
            "3",
            "F3",
            "F-3x",
            "F--3",
            "G-3",
            "F-+3",
            "",
            "F-99999999999",
        ] {
            let err = bad.parse::<FollowUpRef>().unwrap_err();
            assert_eq!(err.given, bad);
            assert!(err.to_string().contains("F-<n>"), "{err}");
        }
    }

    #[test]
    fn an_open_follow_up_can_be_done_or_wont_do() {
        let mut f = open(1);
        assert_eq!(
            f.close(Closure::Done),
            Ok(Transition::Changed {
                from: FollowUpState::Open,
                to: FollowUpState::Done
            })
        );
        assert_eq!(f.state, FollowUpState::Done);
        let mut g = open(2);
        assert!(matches!(
            g.close(Closure::WontDo),
            Ok(Transition::Changed { .. })
        ));
        assert_eq!(g.state, FollowUpState::WontDo);
    }

    #[test]
    fn closing_again_the_same_way_is_no_change() {
        let mut f = open(1);
        f.close(Closure::WontDo).unwrap();
        assert_eq!(f.close(Closure::WontDo), Ok(Transition::NoChange));
        assert_eq!(f.state, FollowUpState::WontDo);
    }

    #[test]
    fn switching_between_closed_states_is_refused_and_changes_nothing() {
        let mut f = open(4);
        f.close(Closure::Done).unwrap();
        let err = f.close(Closure::WontDo).unwrap_err();
        assert_eq!(err.to_string(), "F-4 is already marked done.");
        assert_eq!(f.state, FollowUpState::Done);
    }

    #[test]
    fn open_count_and_next_number_follow_the_list() {
        let mut list = vec![open(1), open(2), open(3)];
        assert_eq!(open_count(&list), 3);
        assert_eq!(next_number(&list), 4);
        find_mut(&mut list, FollowUpRef(2))
            .unwrap()
            .close(Closure::Done)
            .unwrap();
        assert_eq!(open_count(&list), 2);
        assert_eq!(next_number(&[]), 1);
    }

    #[test]
    fn a_missing_reference_is_named_in_the_refusal() {
        let mut list = vec![open(1)];
        let err = find_mut(&mut list, FollowUpRef(7)).unwrap_err();
        assert_eq!(err.to_string(), "No follow-up F-7 in this incident.");
    }

    #[test]
    fn states_round_trip_through_their_stored_form() {
        for s in [
            FollowUpState::Open,
            FollowUpState::Done,
            FollowUpState::WontDo,
        ] {
            assert_eq!(FollowUpState::parse(s.as_str()), Some(s));
        }
        assert_eq!(FollowUpState::WontDo.label(), "Won't do");
    }

    proptest! {
        #[test]
        fn every_reference_round_trips_through_its_display(n in 1u32..) {
            let r = FollowUpRef(n);
            prop_assert_eq!(r.to_string().parse::<FollowUpRef>(), Ok(r));
            prop_assert_eq!(r.to_string().to_lowercase().parse::<FollowUpRef>(), Ok(r));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in "\\PC*") {
            let _ = s.parse::<FollowUpRef>();
        }
    }
}
