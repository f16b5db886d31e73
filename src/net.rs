//! Plumbing shared by every outbound HTTP client (Slack, PagerDuty, Notion, doctor): the pooled
//! client builder and the `Retry-After` parser. Knows nothing of any one service.

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

/// Pooled connections kept per host.
const POOL_IDLE: usize = 16;

/// The HTTP client shared by every outbound service: pooled, with a connect timeout.
pub fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(POOL_IDLE)
        .tcp_nodelay(true)
        .user_agent(concat!("incd/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

/// Parse a `Retry-After` header: integer or decimal seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
        return None;
    }
    let when = DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&Utc) - Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_decimals() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn retry_after_accepts_an_http_date_in_the_past_as_zero() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
    }
}
