//! Slack's documented rate limits, plus the bookkeeping of `Retry-After` promises used to detect
//! early retries:
//!
//! - tiers: at most N calls of a method in any minute (Tier 2: 20, ...), all at once if need be;
//! - `chat.postMessage`: "1 per second" per channel, "short bursts >1 allowed": a bucket of
//!   `post_message_burst` messages (default [`DEFAULT_POST_BURST`]) refilled one per second.
//!
//! Time scaling: with `time_scale = s`, every window is divided by `s` (a Tier 2 minute lasts
//! `60/s` seconds, the postMessage second lasts `1/s` seconds). `Retry-After` stays an integer
//! number of **real** seconds: `max(1, ceil(real wait))`. A client that honours it therefore waits
//! at least one real second, and any call before that second is over counts as an early retry.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::spec::Limit;

/// Messages one channel takes at once before "1 per second" applies. Slack publishes no number
/// ("short bursts >1 allowed"); incd budgets the same (`incd::slack::api::POST_BURST`).
pub const DEFAULT_POST_BURST: u32 = 10;

#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    /// `Some(scale)` when limits are enforced.
    pub scale: Option<f64>,
    /// Bucket size of chat.postMessage per channel (0 = [`DEFAULT_POST_BURST`]).
    pub post_message_burst: u32,
    windows: HashMap<String, VecDeque<Instant>>,
    /// chat.postMessage per channel: (tokens, when last refilled).
    buckets: HashMap<String, (f64, Instant)>,
    /// key → instant before which a call is an early retry.
    pub retry_not_before: HashMap<String, Instant>,
    /// When the current Retry-After of each key was given: a call already under way before then
    /// is not a retry.
    promised_at: HashMap<String, Instant>,
}

/// Rate-limit key of a call.
pub(crate) fn key(method: &str, limit: Limit, channel: Option<&str>) -> String {
    match limit {
        Limit::PerChannelPerSecond => format!("{method}:{}", channel.unwrap_or("")),
        Limit::PerMinute(_) => method.to_string(),
    }
}

pub(crate) fn retry_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

impl RateLimiter {
    /// Admit a call or return the `Retry-After` seconds. Only counts admitted calls.
    pub fn admit(&mut self, key: &str, limit: Limit, now: Instant) -> Result<(), u64> {
        let Some(scale) = self.scale else {
            return Ok(());
        };
        // A promise we made still stands: refuse again with the remaining time.
        if let Some(until) = self.retry_not_before.get(key) {
            if now < *until {
                let secs = retry_secs(*until - now);
                self.retry_not_before
                    .insert(key.to_string(), now + Duration::from_secs(secs));
                self.promised_at.insert(key.to_string(), now);
                return Err(secs);
            }
        }
        let (n, window) = match limit {
            Limit::PerMinute(n) => (n, Duration::from_secs_f64(60.0 / scale)),
            Limit::PerChannelPerSecond => {
                let capacity = match self.post_message_burst {
                    0 => DEFAULT_POST_BURST,
                    n => n,
                } as f64;
                let every = 1.0 / scale;
                let (tokens, at) = self
                    .buckets
                    .entry(key.to_string())
                    .or_insert((capacity, now));
                *tokens = (*tokens + now.duration_since(*at).as_secs_f64() / every).min(capacity);
                *at = now;
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    return Ok(());
                }
                let wait = Duration::from_secs_f64((1.0 - *tokens) * every);
                let secs = retry_secs(wait);
                self.retry_not_before
                    .insert(key.to_string(), now + Duration::from_secs(secs));
                self.promised_at.insert(key.to_string(), now);
                return Err(secs);
            }
        };
        let q = self.windows.entry(key.to_string()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if (q.len() as u32) < n {
            q.push_back(now);
            return Ok(());
        }
        let oldest = *q.front().expect("non-empty");
        let wait = (oldest + window).saturating_duration_since(now);
        let secs = retry_secs(wait);
        self.retry_not_before
            .insert(key.to_string(), now + Duration::from_secs(secs));
        self.promised_at.insert(key.to_string(), now);
        Err(secs)
    }

    /// Remember a Retry-After we gave (also for injected 429s).
    pub fn promise(&mut self, key: &str, now: Instant, secs: u64) {
        let until = now + Duration::from_secs(secs);
        let e = self
            .retry_not_before
            .entry(key.to_string())
            .or_insert(until);
        if *e < until {
            *e = until;
        }
        self.promised_at.insert(key.to_string(), now);
    }

    /// When a call with `key` arriving at `now` is early, the instant it was allowed at.
    /// `Some(allowed_at)` when a call that *arrived* at `arrived` came after a Retry-After was
    /// given for `key` and before it elapsed.
    pub fn early(&self, key: &str, arrived: Instant) -> Option<Instant> {
        let promised = self.promised_at.get(key).copied()?;
        self.retry_not_before
            .get(key)
            .copied()
            .filter(|until| arrived > promised && arrived < *until)
    }
}
