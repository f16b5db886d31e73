//! The incident lifecycle: which status changes are allowed, decided in one place.
//!
//! The store applies a [`Transition`] atomically (a conditional update on the current status it
//! takes from [`Transition::from`]), and callers get back the [`Change`] that happened, or
//! nothing when the incident was not in a state the transition applies to. Handlers and
//! workflows never compare statuses themselves to decide whether something may happen.

use super::Status;

/// A change of status someone or something asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The declare workflow finished: the channel and everything in it exist.
    Declared,
    /// Declaring failed for good: no channel could be created.
    DeclareFailed,
    /// A person confirmed the resolution.
    ResolveRequested,
    /// The resolve workflow finished.
    Resolved,
    /// A person submitted the close form after the review: final.
    Close,
    /// A person reopened a resolved (not closed) incident: back to investigating.
    Reopen,
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub from: Status,
    pub to: Status,
}

impl Transition {
    /// The statuses this transition may start from.
    pub fn from(self) -> &'static [Status] {
        match self {
            Transition::Declared | Transition::DeclareFailed => &[Status::Declaring],
            Transition::ResolveRequested => &[Status::Declaring, Status::Open],
            Transition::Resolved => &[Status::Resolving],
            Transition::Close | Transition::Reopen => &[Status::Resolved],
        }
    }

    /// The status it leads to.
    pub fn to(self) -> Status {
        match self {
            Transition::Declared => Status::Open,
            Transition::DeclareFailed => Status::Failed,
            Transition::ResolveRequested => Status::Resolving,
            Transition::Resolved => Status::Resolved,
            Transition::Close => Status::Closed,
            Transition::Reopen => Status::Open,
        }
    }

    /// Apply to `current`: the change, or `None` when this transition does not apply (a
    /// resolution already under way is never undone by a late `Declared`).
    pub fn apply(self, current: Status) -> Option<Change> {
        self.from().contains(&current).then_some(Change {
            from: current,
            to: self.to(),
        })
    }
}

/// Whether a person may start resolving an incident in this status.
pub fn can_resolve(status: Status) -> bool {
    Transition::ResolveRequested.apply(status).is_some()
}

/// Whether a resolved incident may be closed now.
pub fn can_close(status: Status) -> bool {
    Transition::Close.apply(status).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 6] = [
        Status::Declaring,
        Status::Open,
        Status::Resolving,
        Status::Resolved,
        Status::Failed,
        Status::Closed,
    ];

    #[test]
    fn only_a_resolved_incident_can_be_closed_or_reopened() {
        for t in [Transition::Close, Transition::Reopen] {
            let from: Vec<Status> = ALL.into_iter().filter(|s| t.apply(*s).is_some()).collect();
            assert_eq!(from, vec![Status::Resolved], "{t:?}");
        }
        assert_eq!(Transition::Reopen.to(), Status::Open);
        assert!(can_close(Status::Resolved) && !can_close(Status::Open));
    }

    #[test]
    fn a_closed_incident_changes_no_more() {
        for t in [
            Transition::Declared,
            Transition::DeclareFailed,
            Transition::ResolveRequested,
            Transition::Resolved,
            Transition::Close,
            Transition::Reopen,
        ] {
            assert_eq!(t.apply(Status::Closed), None, "{t:?}");
        }
    }

    #[test]
    fn a_late_declared_never_undoes_a_resolution_under_way() {
        assert_eq!(Transition::Declared.apply(Status::Resolving), None);
        assert_eq!(
            Transition::Declared.apply(Status::Declaring),
            Some(Change {
                from: Status::Declaring,
                to: Status::Open
            })
        );
    }

    #[test]
    fn only_declaring_or_open_incidents_can_be_resolved() {
        let allowed: Vec<Status> = ALL.into_iter().filter(|s| can_resolve(*s)).collect();
        assert_eq!(allowed, vec![Status::Declaring, Status::Open]);
    }

    #[test]
    fn resolved_and_failed_are_final() {
        for t in [
            Transition::Declared,
            Transition::DeclareFailed,
            Transition::ResolveRequested,
            Transition::Resolved,
        ] {
            assert_eq!(t.apply(Status::Resolved), None, "{t:?}");
            assert_eq!(t.apply(Status::Failed), None, "{t:?}");
        }
    }
}
