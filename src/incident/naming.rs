//! Incident names: `YYYYMMDD-adjective-animal`, and the Slack channel names derived from them.
//!
//! Pure: the caller supplies the date, the random source and the set of names already used.

use std::collections::HashSet;
use std::fmt;

use chrono::NaiveDate;
use rand::seq::IndexedRandom;
use rand::Rng;

/// Built-in word lists, embedded in the binary.
pub const BUILTIN_ADJECTIVES: &str = include_str!("../../wordlists/adjectives.txt");
pub const BUILTIN_ANIMALS: &str = include_str!("../../wordlists/animals.txt");

/// Prefix of every incident channel.
pub const CHANNEL_PREFIX: &str = "incd-";
/// Suffix appended to the channel name on resolve.
pub const RESOLVED_SUFFIX: &str = "-resolved";
/// Slack's limit on channel names.
pub const MAX_CHANNEL_NAME: usize = 80;
/// Longest word accepted in a word list: `incd-` + date + two words + `-resolved` must fit in 80.
pub const MAX_WORD_LEN: usize = 24;
/// Fewest words a list may hold; fewer makes collisions likely on busy days.
pub const MIN_WORDS: usize = 20;

/// A validated list of lowercase ASCII words.
#[derive(Clone, PartialEq, Eq)]
pub struct Wordlist(Vec<String>);

impl fmt::Debug for Wordlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Wordlist({} words)", self.0.len())
    }
}

impl Wordlist {
    /// One word per line; blank lines and `#` comments are skipped. Every word must be lowercase
    /// ASCII letters, at most [`MAX_WORD_LEN`] long, and the list must hold at least [`MIN_WORDS`]
    /// distinct words.
    pub fn parse(text: &str) -> Result<Wordlist, String> {
        let mut seen = HashSet::new();
        let mut words = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let w = line.trim();
            if w.is_empty() || w.starts_with('#') {
                continue;
            }
            if !w.bytes().all(|b| b.is_ascii_lowercase()) || w.len() > MAX_WORD_LEN {
                return Err(format!(
                    "line {}: '{w}' must be 1-{MAX_WORD_LEN} lowercase ASCII letters",
                    n + 1
                ));
            }
            if seen.insert(w.to_string()) {
                words.push(w.to_string());
            }
        }
        if words.len() < MIN_WORDS {
            return Err(format!(
                "needs at least {MIN_WORDS} distinct words, found {}",
                words.len()
            ));
        }
        Ok(Wordlist(words))
    }

    pub fn empty() -> Wordlist {
        Wordlist(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn words(&self) -> &[String] {
        &self.0
    }

    fn choose<R: Rng + ?Sized>(&self, rng: &mut R) -> &str {
        self.0.choose(rng).map(String::as_str).unwrap_or("quiet")
    }
}

/// `YYYYMMDD-adjective-animal`. Always a valid Slack channel-name fragment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentName(String);

impl IncidentName {
    /// Wrap a stored name. Trusts the caller (the store only holds names this module made).
    pub fn from_stored(s: impl Into<String>) -> Self {
        IncidentName(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `incd-<name>`.
    pub fn channel_name(&self) -> String {
        format!("{CHANNEL_PREFIX}{}", self.0)
    }

    /// `incd-<name>-resolved`.
    pub fn resolved_channel_name(&self) -> String {
        format!("{CHANNEL_PREFIX}{}{RESOLVED_SUFFIX}", self.0)
    }
}

impl fmt::Display for IncidentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Draw a name for `date` that `is_used` does not know. Tries `attempts` draws; `None` when every
/// draw collided (the caller reports it).
pub fn draw_name<R: Rng + ?Sized>(
    date: NaiveDate,
    adjectives: &Wordlist,
    animals: &Wordlist,
    rng: &mut R,
    attempts: usize,
    mut is_used: impl FnMut(&IncidentName) -> bool,
) -> Option<IncidentName> {
    let day = date.format("%Y%m%d");
    for _ in 0..attempts {
        let name = IncidentName(format!(
            "{day}-{}-{}",
            adjectives.choose(rng),
            animals.choose(rng)
        ));
        if !is_used(&name) {
            return Some(name);
        }
    }
    None
}

/// Whether Slack accepts `name` as a channel name (ASCII baseline: `^[a-z0-9_-]{1,80}$`).
pub fn is_valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn lists() -> (Wordlist, Wordlist) {
        (
            Wordlist::parse(BUILTIN_ADJECTIVES).unwrap(),
            Wordlist::parse(BUILTIN_ANIMALS).unwrap(),
        )
    }

    #[test]
    fn builtin_lists_are_large_enough() {
        let (adj, ani) = lists();
        assert!(adj.len() >= 500, "only {} adjectives", adj.len());
        assert!(ani.len() >= 200, "only {} animals", ani.len());
    }

    #[test]
    fn every_possible_resolved_channel_name_fits_slack_rules() {
        let (adj, ani) = lists();
        let longest_adj = adj.words().iter().max_by_key(|w| w.len()).unwrap();
        let longest_ani = ani.words().iter().max_by_key(|w| w.len()).unwrap();
        let name = IncidentName(format!("20261121-{longest_adj}-{longest_ani}"));
        assert!(is_valid_channel_name(&name.resolved_channel_name()));
    }

    #[test]
    fn names_have_the_date_and_two_listed_words() {
        let (adj, ani) = lists();
        let mut rng = StdRng::seed_from_u64(7);
        let date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let name = draw_name(date, &adj, &ani, &mut rng, 1, |_| false).unwrap();
        let parts: Vec<&str> = name.as_str().split('-').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "20261121");
        assert!(adj.words().iter().any(|w| w == parts[1]));
        assert!(ani.words().iter().any(|w| w == parts[2]));
        assert_eq!(name.channel_name(), format!("incd-{name}"));
        assert!(name.resolved_channel_name().ends_with("-resolved"));
        assert!(is_valid_channel_name(&name.channel_name()));
    }

    #[test]
    fn used_names_are_never_returned() {
        let adj = Wordlist::parse(
            &(0..20)
                .map(|i| format!("a{}\n", "x".repeat(i + 1)))
                .collect::<String>()
                .replace('x', "b"),
        )
        .unwrap();
        let ani = Wordlist::parse(
            &(0..20)
                .map(|i| format!("c{}\n", "d".repeat(i + 1)))
                .collect::<String>(),
        )
        .unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let date = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        let mut used = HashSet::new();
        for _ in 0..100 {
            let n = draw_name(date, &adj, &ani, &mut rng, 1000, |n| used.contains(n)).unwrap();
            assert!(used.insert(n));
        }
        // When every draw collides the caller gets None, not a reused name.
        assert!(draw_name(date, &adj, &ani, &mut rng, 5, |_| true).is_none());
    }

    #[test]
    fn wordlists_refuse_bad_words() {
        assert!(Wordlist::parse("Hello\n").is_err());
        assert!(Wordlist::parse("two words\n").is_err());
        assert!(Wordlist::parse("caf\u{e9}\n").is_err());
        assert!(Wordlist::parse("a\nb\n").is_err(), "too few words");
    }

    #[test]
    fn channel_name_rules() {
        assert!(is_valid_channel_name("incd-20261121-calm-otter"));
        assert!(!is_valid_channel_name("Incd"));
        assert!(!is_valid_channel_name(""));
        assert!(!is_valid_channel_name(&"a".repeat(81)));
        assert!(!is_valid_channel_name("a b"));
    }
}
