//! Narrow clients for the services beside Slack: PagerDuty ([`pagerduty`]) and Notion ([`notion`]).
//!
//! They are shaped by the domain (page the on-call for this incident, create its post-mortem), take
//! an [`IncidentFacts`] snapshot, and make exactly one attempt per call with a timeout. Retrying,
//! backoff and telling the channel belong to the workflow runner, which uses
//! [`IntegrationError::retry_after`] and [`IntegrationError::is_retryable`] to decide.

pub mod notion;
pub mod pagerduty;

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Timeout for one call to PagerDuty or Notion. Generous enough for a slow service, short enough
/// that a hung one is noticed and retried.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the integrations need to know about an incident, detached from storage and Slack types.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentFacts {
    /// `YYYYMMDD-adjective-animal`; also the PagerDuty dedup key / incident key.
    pub name: String,
    pub title: String,
    pub description: String,
    /// Configured severity id, e.g. `sev1`.
    pub severity_id: String,
    /// Label shown to people, e.g. `SEV1`.
    pub severity_label: String,
    /// PagerDuty Events v2 severity for this level: critical, error, warning or info.
    pub pagerduty_severity: String,
    pub resolved: bool,
    /// Slack user ids.
    pub reporter: String,
    pub commander: Option<String>,
    /// Incident channel id (`C…`) and name (`incd-…`).
    pub channel_id: String,
    pub channel_name: String,
    /// `https://slack.com/app_redirect?channel=<id>`.
    pub channel_url: String,
    pub declared_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolution_summary: Option<String>,
    /// Timeline entries incd knows, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Links to the other integration when known (PagerDuty links to Notion and back).
    pub notion_url: Option<String>,
    pub pagerduty_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub text: String,
}

impl IncidentFacts {
    /// Whole minutes from declaration to resolution (or now).
    pub fn duration(&self) -> chrono::Duration {
        self.resolved_at.unwrap_or_else(Utc::now) - self.declared_at
    }
}

/// Why one call to an integration failed, classified for the retry loop.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IntegrationError {
    /// 429: wait at least `retry_after` (when the service said) before the next call.
    #[error("{service} is rate limiting us (HTTP 429)")]
    RateLimited {
        service: &'static str,
        retry_after: Option<Duration>,
    },
    /// Timeout, connection failure, 5xx: worth retrying with backoff.
    #[error("{service} is unavailable: {detail}")]
    Unavailable {
        service: &'static str,
        detail: String,
    },
    /// A refusal retrying cannot fix (bad key, bad request, not shared with the integration).
    #[error("{service} refused the request: {detail}")]
    Refused {
        service: &'static str,
        /// HTTP status, when there was a response.
        status: Option<u16>,
        detail: String,
    },
}

impl IntegrationError {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            IntegrationError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn is_retryable(&self) -> bool {
        !matches!(self, IntegrationError::Refused { .. })
    }

    /// One line a person in the incident channel can act on.
    pub fn human(&self) -> String {
        match self {
            IntegrationError::RateLimited { service, .. } => {
                format!("{service} is rate limiting incd")
            }
            IntegrationError::Unavailable { service, detail } => {
                format!("{service} did not answer ({detail})")
            }
            IntegrationError::Refused {
                service,
                status,
                detail,
            } => match status {
                Some(s) => format!("{service} refused the request (HTTP {s}: {detail})"),
                None => format!("{service} refused the request ({detail})"),
            },
        }
    }
}

/// Shared "not before" gate for one service: after a 429 every caller waits out `Retry-After`,
/// so no request reaches the service before it said it may.
#[derive(Debug, Default, Clone)]
pub(crate) struct RateGate(std::sync::Arc<std::sync::Mutex<Option<tokio::time::Instant>>>);

impl RateGate {
    /// Sleep until the gate is open.
    pub(crate) async fn wait(&self) {
        // Read again after every sleep: a 429 answered to another request meanwhile moves the
        // gate, and a waiter that went at the old time would land inside the new window.
        loop {
            let until = *self.0.lock().unwrap_or_else(|p| p.into_inner());
            match until {
                Some(t) if t > tokio::time::Instant::now() => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }

    /// Remember the service's answer: close the gate for `retry_after` when it was a 429.
    pub(crate) fn observe<T>(&self, result: &Result<T, IntegrationError>) {
        if let Err(IntegrationError::RateLimited { retry_after, .. }) = result {
            let wait = retry_after.unwrap_or(Duration::from_secs(1));
            let until = tokio::time::Instant::now() + wait;
            let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if g.is_none_or(|t| t < until) {
                *g = Some(until);
            }
        }
    }
}

/// Classify a transport-level reqwest failure.
pub(crate) fn transport_error(service: &'static str, err: &reqwest::Error) -> IntegrationError {
    let detail = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "connection failed".to_string()
    } else {
        "network error".to_string()
    };
    IntegrationError::Unavailable { service, detail }
}

/// Classify a non-success HTTP status, given the `Retry-After` header and a short detail.
pub(crate) fn status_error(
    service: &'static str,
    status: u16,
    retry_after: Option<&str>,
    detail: String,
) -> IntegrationError {
    match status {
        429 => IntegrationError::RateLimited {
            service,
            retry_after: retry_after.and_then(crate::net::parse_retry_after),
        },
        500..=599 => IntegrationError::Unavailable {
            service,
            detail: format!("HTTP {status}"),
        },
        _ => IntegrationError::Refused {
            service,
            status: Some(status),
            detail,
        },
    }
}

impl IncidentFacts {
    /// A declared SEV1 incident with a commander and one timeline entry: the fixture of the
    /// clients' unit tests and of `tests/integrations.rs`.
    #[doc(hidden)]
    pub fn example() -> IncidentFacts {
        use chrono::TimeZone;
        let declared = Utc
            .with_ymd_and_hms(2025, 3, 14, 9, 26, 53)
            .single()
            .unwrap_or_default();
        IncidentFacts {
            name: "20250314-brave-otter".into(),
            title: "Checkout fails for EU customers".into(),
            description: "Payments time out after 30 s.".into(),
            severity_id: "sev1".into(),
            severity_label: "SEV1".into(),
            pagerduty_severity: "critical".into(),
            resolved: false,
            reporter: "U0REPORTER".into(),
            commander: Some("U0COMMANDR".into()),
            channel_id: "C0INCIDENT".into(),
            channel_name: "incd-20250314-brave-otter".into(),
            channel_url: "https://slack.com/app_redirect?channel=C0INCIDENT".into(),
            declared_at: declared,
            resolved_at: None,
            resolved_by: None,
            resolution_summary: None,
            timeline: vec![TimelineEntry {
                at: declared,
                text: "Declared by U0REPORTER".into(),
            }],
            notion_url: None,
            pagerduty_url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_are_final() {
        let r = status_error("PagerDuty", 400, None, "bad".into());
        assert!(!r.is_retryable());
        assert!(status_error("Notion", 503, None, String::new()).is_retryable());
        let rl = status_error("Notion", 429, Some("3"), String::new());
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(3)));
    }

    #[tokio::test]
    async fn a_request_waiting_at_the_gate_honours_a_429_that_came_while_it_waited() {
        let gate = RateGate::default();
        let limited = |ms| -> Result<(), IntegrationError> {
            Err(IntegrationError::RateLimited {
                service: "Notion",
                retry_after: Some(Duration::from_millis(ms)),
            })
        };
        gate.observe(&limited(50));
        let started = tokio::time::Instant::now();
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.wait().await }
        });
        // Another request gets a longer Retry-After while the first one waits.
        tokio::time::sleep(Duration::from_millis(10)).await;
        gate.observe(&limited(200));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the gate opens")
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "went after {:?}, inside the second Retry-After",
            started.elapsed()
        );
    }
}

/// One line of `incd doctor`'s checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. "Notion database reachable".
    pub name: String,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// Plain-language fix when `ok` is false.
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}
