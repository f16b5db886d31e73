//! Severity: the id an incident carries, and the configured level it names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of a configured severity level (`sev1`), as stored with an incident.
///
/// An id that is no longer configured (the configuration changed after the incident was
/// declared) is still a valid `Severity`: it renders as its upper-cased id and pages by default.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Severity(String);

impl Severity {
    pub fn new(id: impl Into<String>) -> Severity {
        Severity(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The label shown to people: the level's when configured, else the id upper-cased.
    pub fn label(&self, level: Option<&SeverityLevel>) -> String {
        level
            .map(|l| l.label.clone())
            .unwrap_or_else(|| self.0.to_uppercase())
    }

    /// Whether declaring at this severity pages the on-call (unconfigured ids page).
    pub fn pages(&self, level: Option<&SeverityLevel>) -> bool {
        level.is_none_or(|l| l.page)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Severity {
    fn from(v: &str) -> Self {
        Severity(v.to_string())
    }
}

impl From<String> for Severity {
    fn from(v: String) -> Self {
        Severity(v)
    }
}

/// One severity level as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SeverityLevel {
    /// Stable id stored with incidents and used as the select option value, e.g. `sev1`.
    pub id: String,
    /// Short label shown to people, e.g. `SEV1`.
    pub label: String,
    /// One line saying what this level means.
    pub description: String,
    /// PagerDuty Events v2 severity: critical, error, warning or info.
    #[serde(default = "default_pd_severity")]
    pub pagerduty_severity: String,
    /// Whether declaring at this level pages the on-call engineer.
    #[serde(default = "default_true")]
    pub page: bool,
}

fn default_pd_severity() -> String {
    "error".into()
}
fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconfigured_severity_reads_as_its_id_and_pages() {
        let s = Severity::from("sev9");
        assert_eq!(s.label(None), "SEV9");
        assert!(s.pages(None));
        let quiet = SeverityLevel {
            id: "sev4".into(),
            label: "Low".into(),
            description: String::new(),
            pagerduty_severity: "info".into(),
            page: false,
        };
        assert_eq!(Severity::from("sev4").label(Some(&quiet)), "Low");
        assert!(!Severity::from("sev4").pages(Some(&quiet)));
    }
}
