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
        }
    }

    /// The status it leads to.
    pub fn to(self) -> Status {
        match self {
            Transition::Declared => Status::Open,
            Transition::DeclareFailed => Status::Failed,
            Transition::ResolveRequested => Status::Resolving,
            Transition::Resolved => Status::Resolved,
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

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 5] = [
        Status::Declaring,
        Status::Open,
        Status::Resolving,
        Status::Resolved,
        Status::Failed,
    ];

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
