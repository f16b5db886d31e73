//! Incident roles: who holds what, what each role is for, and how people are named by role.
//!
//! Owns the four roles of the process (incident command, operations, communications, planning),
//! their names and aliases as typed in `/incident role`, the duties and checklist each holder is
//! sent (defaults in the process's own words, overridable from TOML), the current assignments
//! with hand-over semantics, and the blameless labels ("Incident command", "Operations A",
//! "Responder A") the post-mortem uses instead of names. No I/O here.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ids::UserId;

/// A role in an incident. One holder at a time; a person may hold several roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Owns the channel and the incident; holds every role nobody else holds.
    Commander,
    /// Investigates and fixes.
    Ops,
    /// Keeps the service owner, customers and internal teams informed.
    Comms,
    /// Turns what the post-mortem found into tracked work.
    Planning,
}

impl Role {
    /// Every role, in the order they are listed to people.
    pub const ALL: [Role; 4] = [Role::Commander, Role::Ops, Role::Comms, Role::Planning];

    /// The word typed in `/incident role <role>` and stored: `commander`, `ops`, `comms`,
    /// `planning`.
    pub fn slug(self) -> &'static str {
        match self {
            Role::Commander => "commander",
            Role::Ops => "ops",
            Role::Comms => "comms",
            Role::Planning => "planning",
        }
    }

    /// The default name shown to people (also the start of the blameless label).
    pub fn label(self) -> &'static str {
        match self {
            Role::Commander => "Incident command",
            Role::Ops => "Operations",
            Role::Comms => "Communications",
            Role::Planning => "Planning",
        }
    }

    /// Other words accepted for this role, besides its slug.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Role::Commander => &["ic", "lead"],
            Role::Ops => &["operations"],
            Role::Comms => &["communications"],
            Role::Planning => &[],
        }
    }

    /// Whether the process expects several people in this role over one incident (there may be
    /// several on operations), so that its label is always lettered: "Operations A".
    pub fn expects_several(self) -> bool {
        self == Role::Ops
    }

    /// The duties and checklist sent to a new holder unless configured otherwise, written from
    /// the incident process.
    pub fn default_guide(self) -> RoleGuide {
        let (duties, checklist): (&str, &[&str]) = match self {
            Role::Commander => (
                "You hold incident command: you own the incident channel and the incident. Assign \
                 the other roles, summarise the issue in the channel, and decide when service is \
                 reliably restored. Do not investigate or talk to customers yourself: those are \
                 other roles. Until someone else holds a role, you hold it. After the incident, \
                 prepare the post-mortem for review and make sure the review meeting happens. \
                 If you hand over command, say so explicitly (\"you now have command\").",
                &[
                    "Assign operations and communications",
                    "Summarise the issue in the channel",
                    "Post a status update whenever something changes",
                    "Hand over command explicitly if you step away",
                    "Resolve the incident when service is reliably restored",
                    "Prepare the post-mortem for review",
                    "Make sure the review meeting happens, then close the incident",
                ],
            ),
            Role::Ops => (
                "You are on operations: you investigate and fix. Coordinate every change with \
                 incident command before you make it, and record each action you take in the \
                 incident channel, so that the channel is the record of who did what, when.",
                &[
                    "Tell incident command what you are about to change before you change it",
                    "Record each action you take in the channel",
                    "Mark key moments with a pin or a 📌 so they reach the timeline",
                ],
            ),
            Role::Comms => (
                "You are on communications: tell the service owner the incident is declared, tell \
                 customers there is a known issue being worked on, warn internal teams they may be \
                 needed, and keep every party updated until the incident is resolved.",
                &[
                    "Tell the service owner the incident is declared",
                    "Tell customers there is a known issue being worked on",
                    "Warn internal teams that may be needed",
                    "Keep every party updated until the incident is resolved",
                ],
            ),
            Role::Planning => (
                "You are on planning: after the incident, turn the issues found in the post-mortem \
                 into tracked work with owners, and keep them from being buried until they are \
                 done.",
                &[
                    "Turn each issue found in the post-mortem into a follow-up with an owner",
                    "Link each follow-up to where it is tracked",
                    "Check the follow-ups at every review until they are done",
                ],
            ),
        };
        RoleGuide {
            label: self.label().to_string(),
            duties: duties.to_string(),
            checklist: checklist.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl fmt::Display for Role {
    /// The slug, so that `Display` and `FromStr` round-trip.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// A word that names no role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unknown role `{given}`. Use one of: commander, ops, comms, planning.")]
pub struct UnknownRole {
    /// What was typed.
    pub given: String,
}

impl FromStr for Role {
    type Err = UnknownRole;

    /// A slug or an alias, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = s.to_lowercase();
        Role::ALL
            .into_iter()
            .find(|r| r.slug() == word || r.aliases().contains(&word.as_str()))
            .ok_or_else(|| UnknownRole {
                given: s.to_string(),
            })
    }
}

/// What a role holder is told privately when they get the role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGuide {
    /// The role's name as shown to people.
    pub label: String,
    /// What the role does, as a paragraph.
    pub duties: String,
    /// Things to do, one per line.
    #[serde(default)]
    pub checklist: Vec<String>,
}

/// A TOML `[roles.<slug>]` table: every key optional, replacing the default it names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleGuidePatch {
    label: Option<String>,
    duties: Option<String>,
    checklist: Option<Vec<String>>,
}

/// The guide of every role: the defaults, with whatever the configuration overrides.
///
/// Deserialises from a `[roles]` table whose `commander`, `ops`, `comms` and `planning` tables
/// each may set `label`, `duties` and `checklist`; anything unset keeps its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleGuides {
    pub commander: RoleGuide,
    pub ops: RoleGuide,
    pub comms: RoleGuide,
    pub planning: RoleGuide,
}

impl Default for RoleGuides {
    fn default() -> Self {
        RoleGuides {
            commander: Role::Commander.default_guide(),
            ops: Role::Ops.default_guide(),
            comms: Role::Comms.default_guide(),
            planning: Role::Planning.default_guide(),
        }
    }
}

impl RoleGuides {
    /// The guide for one role.
    pub fn get(&self, role: Role) -> &RoleGuide {
        match role {
            Role::Commander => &self.commander,
            Role::Ops => &self.ops,
            Role::Comms => &self.comms,
            Role::Planning => &self.planning,
        }
    }
}

impl<'de> Deserialize<'de> for RoleGuides {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Patches {
            #[serde(default)]
            commander: RoleGuidePatch,
            #[serde(default)]
            ops: RoleGuidePatch,
            #[serde(default)]
            comms: RoleGuidePatch,
            #[serde(default)]
            planning: RoleGuidePatch,
        }
        fn apply(role: Role, p: RoleGuidePatch) -> RoleGuide {
            let base = role.default_guide();
            RoleGuide {
                label: p.label.unwrap_or(base.label),
                duties: p.duties.unwrap_or(base.duties),
                checklist: p.checklist.unwrap_or(base.checklist),
            }
        }
        let p = Patches::deserialize(d)?;
        Ok(RoleGuides {
            commander: apply(Role::Commander, p.commander),
            ops: apply(Role::Ops, p.ops),
            comms: apply(Role::Comms, p.comms),
            planning: apply(Role::Planning, p.planning),
        })
    }
}

/// What one assignment changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    pub role: Role,
    /// Who held the role before.
    pub previous: Option<UserId>,
    /// Who holds it now (`None`: cleared).
    pub new: Option<UserId>,
    /// One person handed the role to another (for command: "you now have command").
    pub is_handover: bool,
}

impl RoleChange {
    /// Nothing changed (the same person assigned again, or an empty role cleared): nothing to
    /// post, record or send.
    pub fn is_noop(&self) -> bool {
        self.previous == self.new
    }
}

/// Who holds which role in one incident right now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Assignments {
    holders: BTreeMap<Role, UserId>,
}

impl Assignments {
    /// Nobody holds anything.
    pub fn new() -> Assignments {
        Assignments::default()
    }

    /// The reporter (or whoever the declare form named) holds incident command.
    pub fn with_commander(commander: UserId) -> Assignments {
        let mut a = Assignments::new();
        a.assign(Role::Commander, Some(commander));
        a
    }

    /// Who was assigned the role, if anyone.
    pub fn holder(&self, role: Role) -> Option<&UserId> {
        self.holders.get(&role)
    }

    /// Who is answerable for the role: its holder, or else incident command, which holds every
    /// role nobody else holds.
    pub fn effective_holder(&self, role: Role) -> Option<&UserId> {
        self.holder(role).or_else(|| self.holder(Role::Commander))
    }

    /// The roles a person was assigned, in [`Role::ALL`] order.
    pub fn roles_of(&self, user: &UserId) -> Vec<Role> {
        Role::ALL
            .into_iter()
            .filter(|r| self.holder(*r) == Some(user))
            .collect()
    }

    /// Every assigned role and its holder, in [`Role::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Role, &UserId)> {
        self.holders.iter().map(|(r, u)| (*r, u))
    }

    /// Give the role to someone (`Some`) or clear it (`None`), saying what changed.
    pub fn assign(&mut self, role: Role, user: Option<UserId>) -> RoleChange {
        let previous = match &user {
            Some(u) => self.holders.insert(role, u.clone()),
            None => self.holders.remove(&role),
        };
        let is_handover = matches!((&previous, &user), (Some(p), Some(n)) if p != n);
        RoleChange {
            role,
            previous,
            new: user,
            is_handover,
        }
    }
}

/// A role given to someone at some point of the incident, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleHolding {
    pub role: Role,
    pub user: UserId,
}

/// One row of the post-mortem's people table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledPerson {
    /// "Incident command", "Operations A", "Responder B", …
    pub label: String,
    pub user: UserId,
}

/// The blameless names of everyone involved in an incident.
///
/// Each role holder gets a row per role held, labelled by the role; a role that had several
/// holders (or that the process expects several of, like operations) is lettered in order of
/// first assignment: "Operations A", "Operations B". Everybody else who appears gets
/// "Responder A", "Responder B", … in order of first appearance. A person's label in the body of
/// the post-mortem is the label of the first role they held in [`Role::ALL`] order, else their
/// responder label. The same inputs in the same order always give the same labels, so the
/// post-mortem can be rebuilt at any time and says the same thing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeopleLabels {
    rows: Vec<LabelledPerson>,
    by_user: BTreeMap<UserId, String>,
}

impl PeopleLabels {
    /// Label the people of an incident from the role history (every assignment, in order) and
    /// everybody else who appears (timeline authors, mentioned people, follow-up owners), in
    /// order of first appearance.
    pub fn build<'a>(
        role_history: &[RoleHolding],
        participants: impl IntoIterator<Item = &'a UserId>,
    ) -> PeopleLabels {
        let mut rows = Vec::new();
        let mut by_user: BTreeMap<UserId, String> = BTreeMap::new();
        for role in Role::ALL {
            let mut holders: Vec<&UserId> = Vec::new();
            for h in role_history.iter().filter(|h| h.role == role) {
                if !holders.contains(&&h.user) {
                    holders.push(&h.user);
                }
            }
            let lettered = holders.len() > 1 || (role.expects_several() && !holders.is_empty());
            for (i, user) in holders.into_iter().enumerate() {
                let label = if lettered {
                    format!("{} {}", role.label(), letters(i))
                } else {
                    role.label().to_string()
                };
                by_user.entry(user.clone()).or_insert_with(|| label.clone());
                rows.push(LabelledPerson {
                    label,
                    user: user.clone(),
                });
            }
        }
        let mut seen: HashSet<&UserId> = HashSet::new();
        let mut responders = 0;
        for user in participants {
            if by_user.contains_key(user) || !seen.insert(user) {
                continue;
            }
            let label = format!("Responder {}", letters(responders));
            responders += 1;
            by_user.insert(user.clone(), label.clone());
            rows.push(LabelledPerson {
                label,
                user: user.clone(),
            });
        }
        PeopleLabels { rows, by_user }
    }

    /// The label a person goes by in the body of the post-mortem.
    pub fn label_of(&self, user: &UserId) -> Option<&str> {
        self.by_user.get(user).map(String::as_str)
    }

    /// Every label and its person, roles first (in [`Role::ALL`] order), then responders.
    pub fn rows(&self) -> &[LabelledPerson] {
        &self.rows
    }
}

/// `A`, `B`, … `Z`, `AA`, `AB`, …: the i-th (from 0) letter label.
fn letters(mut i: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII letters")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(s: &str) -> UserId {
        UserId::new(s)
    }

    fn held(role: Role, user: &str) -> RoleHolding {
        RoleHolding {
            role,
            user: u(user),
        }
    }

    #[test]
    fn slugs_aliases_and_any_case_name_the_roles() {
        for (word, role) in [
            ("commander", Role::Commander),
            ("IC", Role::Commander),
            ("Lead", Role::Commander),
            ("ops", Role::Ops),
            ("OPERATIONS", Role::Ops),
            ("comms", Role::Comms),
            ("Communications", Role::Comms),
            ("planning", Role::Planning),
        ] {
            assert_eq!(word.parse::<Role>(), Ok(role), "{word}");
        }
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
        }
    }

    #[test]
    fn an_unknown_role_is_refused_naming_the_valid_ones() {
        let err = "scribe".parse::<Role>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unknown role `scribe`. Use one of: commander, ops, comms, planning."
        );
    }

    #[test]
    fn labels_are_the_process_names() {
        let labels: Vec<_> = Role::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(
            labels,
            [
                "Incident command",
                "Operations",
                "Communications",
                "Planning"
            ]
        );
    }

    #[test]
    fn default_guides_carry_duties_and_a_checklist_for_every_role() {
        for role in Role::ALL {
            let g = role.default_guide();
            assert_eq!(g.label, role.label());
            assert!(g.duties.len() > 80, "{role}: {}", g.duties);
            assert!(g.checklist.len() >= 3, "{role}");
            assert!(g.checklist.iter().all(|c| !c.trim().is_empty()));
        }
        let ic = Role::Commander.default_guide();
        assert!(ic
            .duties
            .contains("Do not investigate or talk to customers"));
        assert!(ic.duties.contains("every role") || ic.duties.contains("you hold it"));
    }

    #[test]
    fn toml_overrides_only_the_keys_it_sets() {
        let guides: RoleGuides = toml::from_str(
            r#"
            [ops]
            label = "Operations lead"
            checklist = ["Roll back first"]
            [planning]
            duties = "File the bugs."
            "#,
        )
        .unwrap();
        assert_eq!(guides.get(Role::Ops).label, "Operations lead");
        assert_eq!(guides.get(Role::Ops).checklist, ["Roll back first"]);
        assert_eq!(
            guides.get(Role::Ops).duties,
            Role::Ops.default_guide().duties
        );
        assert_eq!(guides.get(Role::Planning).duties, "File the bugs.");
        assert_eq!(guides.get(Role::Planning).label, "Planning");
        assert_eq!(guides.commander, Role::Commander.default_guide());
        let empty: RoleGuides = toml::from_str("").unwrap();
        assert_eq!(empty, RoleGuides::default());
    }

    #[test]
    fn toml_with_an_unknown_role_or_key_is_refused() {
        assert!(toml::from_str::<RoleGuides>("[scribe]\nlabel = \"x\"").is_err());
        assert!(toml::from_str::<RoleGuides>("[ops]\nlable = \"x\"").is_err());
    }

    #[test]
    fn assigning_a_new_role_is_not_a_handover() {
        let mut a = Assignments::new();
        let c = a.assign(Role::Ops, Some(u("U1")));
        assert_eq!(c.previous, None);
        assert_eq!(c.new, Some(u("U1")));
        assert!(!c.is_handover);
        assert!(!c.is_noop());
        assert_eq!(a.holder(Role::Ops), Some(&u("U1")));
    }

    #[test]
    fn giving_command_to_someone_else_is_a_handover() {
        let mut a = Assignments::with_commander(u("U1"));
        let c = a.assign(Role::Commander, Some(u("U2")));
        assert_eq!(c.previous, Some(u("U1")));
        assert_eq!(c.new, Some(u("U2")));
        assert!(c.is_handover);
        assert_eq!(a.holder(Role::Commander), Some(&u("U2")));
    }

    #[test]
    fn reassigning_the_same_person_changes_nothing() {
        let mut a = Assignments::with_commander(u("U1"));
        let c = a.assign(Role::Commander, Some(u("U1")));
        assert!(c.is_noop());
        assert!(!c.is_handover);
    }

    #[test]
    fn clearing_a_role_leaves_it_to_incident_command() {
        let mut a = Assignments::with_commander(u("U1"));
        a.assign(Role::Comms, Some(u("U2")));
        assert_eq!(a.effective_holder(Role::Comms), Some(&u("U2")));
        let c = a.assign(Role::Comms, None);
        assert_eq!(c.previous, Some(u("U2")));
        assert_eq!(c.new, None);
        assert!(!c.is_handover);
        assert_eq!(a.holder(Role::Comms), None);
        assert_eq!(a.effective_holder(Role::Comms), Some(&u("U1")));
        assert!(a.assign(Role::Comms, None).is_noop());
    }

    #[test]
    fn one_person_may_hold_several_roles() {
        let mut a = Assignments::with_commander(u("U1"));
        a.assign(Role::Planning, Some(u("U1")));
        assert_eq!(a.roles_of(&u("U1")), [Role::Commander, Role::Planning]);
        let roles: Vec<_> = a.iter().map(|(r, _)| r).collect();
        assert_eq!(roles, [Role::Commander, Role::Planning]);
    }

    #[test]
    fn assignments_round_trip_through_json() {
        let mut a = Assignments::with_commander(u("U1"));
        a.assign(Role::Ops, Some(u("U2")));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"commander":"U1","ops":"U2"}"#);
        assert_eq!(serde_json::from_str::<Assignments>(&json).unwrap(), a);
    }

    #[test]
    fn people_are_labelled_by_role_then_as_responders() {
        let history = [
            held(Role::Commander, "U1"),
            held(Role::Ops, "U2"),
            held(Role::Ops, "U3"),
            held(Role::Comms, "U4"),
        ];
        let authors = [u("U9"), u("U2"), u("U8"), u("U9"), u("U1")];
        let labels = PeopleLabels::build(&history, &authors);
        let rows: Vec<_> = labels
            .rows()
            .iter()
            .map(|r| (r.label.as_str(), r.user.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("Incident command", "U1"),
                ("Operations A", "U2"),
                ("Operations B", "U3"),
                ("Communications", "U4"),
                ("Responder A", "U9"),
                ("Responder B", "U8"),
            ]
        );
        assert_eq!(labels.label_of(&u("U2")), Some("Operations A"));
        assert_eq!(labels.label_of(&u("U8")), Some("Responder B"));
        assert_eq!(labels.label_of(&u("U7")), None);
    }

    #[test]
    fn a_handover_of_command_letters_both_commanders() {
        let history = [
            held(Role::Commander, "U1"),
            held(Role::Commander, "U2"),
            held(Role::Commander, "U1"),
        ];
        let labels = PeopleLabels::build(&history, []);
        assert_eq!(labels.label_of(&u("U1")), Some("Incident command A"));
        assert_eq!(labels.label_of(&u("U2")), Some("Incident command B"));
        assert_eq!(labels.rows().len(), 2);
    }

    #[test]
    fn a_person_with_several_roles_goes_by_the_first_in_role_order() {
        let history = [held(Role::Comms, "U1"), held(Role::Commander, "U1")];
        let labels = PeopleLabels::build(&history, []);
        assert_eq!(labels.label_of(&u("U1")), Some("Incident command"));
        assert_eq!(labels.rows().len(), 2, "one row per role held");
    }

    #[test]
    fn letters_continue_past_z() {
        assert_eq!(letters(0), "A");
        assert_eq!(letters(25), "Z");
        assert_eq!(letters(26), "AA");
        assert_eq!(letters(27), "AB");
        assert_eq!(letters(26 + 26 * 26), "AAA");
    }

    proptest! {
        #[test]
        fn everybody_gets_exactly_one_distinct_body_label(
            history in proptest::collection::vec((0usize..4, 0u8..6), 0..12),
            people in proptest::collection::vec(0u8..40, 0..60),
        ) {
            let history: Vec<RoleHolding> = history
                .into_iter()
                .map(|(r, n)| RoleHolding { role: Role::ALL[r], user: u(&format!("U{n}")) })
                .collect();
            let people: Vec<UserId> = people.into_iter().map(|n| u(&format!("U{n}"))).collect();
            let labels = PeopleLabels::build(&history, &people);
            let mut everyone: Vec<&UserId> = history.iter().map(|h| &h.user).chain(&people).collect();
            everyone.sort();
            everyone.dedup();
            let body: Vec<&str> = everyone.iter().map(|p| labels.label_of(p).expect("labelled")).collect();
            let mut distinct = body.clone();
            distinct.sort();
            distinct.dedup();
            prop_assert_eq!(distinct.len(), body.len(), "labels collide: {:?}", body);
            // Labelling again gives the same answer.
            prop_assert_eq!(PeopleLabels::build(&history, &people), labels);
        }
    }
}
