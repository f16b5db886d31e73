//! The Slack Web API client: one pooled HTTP client, a timeout on every call, and Slack's rate
//! limits honoured.
//!
//! - 429: the method (or, for `chat.postMessage`, the channel) is closed until `Retry-After` has
//!   passed, for every caller at once, and the call is retried; never earlier.
//! - `chat.postMessage` is paced to one message per second per channel before sending.
//! - Connection failures before anything was sent are retried with backoff. Timeouts and 5xx are
//!   returned as [`SlackError::Transport`]: whether Slack acted is unknown, so the workflow step
//!   decides how to retry safely.
//!
//! Writes go as JSON with the bot token in `Authorization`; reads go as form posts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::config::Secret;
use crate::metrics::Metrics;

/// Timeout for one Web API request.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Retry-After assumed when a 429 carries no header.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest a call keeps waiting out 429s before giving up.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(600);
/// Spacing between messages to one channel. Slack allows about one per second; 5 % of margin
/// keeps timing jitter from drawing 429s (each costs a whole second of Retry-After).
pub const POST_SPACING: Duration = Duration::from_millis(1050);
/// Tier 2 methods incd calls: always one request at a time.
const SERIAL_METHODS: &[&str] = &[
    // Tier 3 on paper, but 1 a minute for apps not in the Marketplace: reads of marked messages
    // queue here, each waiting out the Retry-After of the one before.
    "conversations.replies",
    "conversations.create",
    "conversations.rename",
    "conversations.setTopic",
    "pins.add",
    "bookmarks.add",
];
/// How long a key stays in one-request-at-a-time mode after a 429.
const THROTTLE_MEMORY: Duration = Duration::from_secs(60);
/// Attempts for calls that failed before reaching Slack (connection refused and the like).
const CONNECT_ATTEMPTS: u32 = 4;

/// Why a Web API call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SlackError {
    /// Slack answered `ok: false`.
    #[error("Slack {method} refused: {code}")]
    Api {
        method: String,
        code: String,
        /// For `missing_scope`: the scope Slack needs.
        needed: Option<String>,
        /// The full response, for per-item errors (`conversations.invite`).
        response: Value,
    },
    /// No usable answer: timeout, 5xx, connection failure, or rate limited for too long.
    #[error("Slack {method} failed: {detail}")]
    Transport { method: String, detail: String },
}

impl SlackError {
    /// The Slack error code, when Slack answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            SlackError::Api { code, .. } => Some(code),
            SlackError::Transport { .. } => None,
        }
    }

    pub fn is_code(&self, c: &str) -> bool {
        self.code() == Some(c)
    }

    /// Whether trying again later may succeed: the one place that classifies Slack failures.
    ///
    /// Transient: no usable answer (timeouts, connection failures or resets, HTTP 5xx and 408,
    /// 429 after its `Retry-After`) and Slack's own "try again" codes (`internal_error`,
    /// `fatal_error`, `service_unavailable`, `request_timeout`, `ratelimited`). Everything else
    /// (a refusal such as `name_taken`, `missing_scope`, `channel_not_found`, or a request incd
    /// itself got wrong) is permanent: repeating it gives the same answer.
    pub fn is_transient(&self) -> bool {
        match self {
            SlackError::Api { code, .. } => TRANSIENT_CODES.contains(&code.as_str()),
            SlackError::Transport { detail, .. } => transient_detail(detail),
        }
    }

    /// A line a person can act on.
    pub fn human(&self) -> String {
        match self {
            SlackError::Api {
                code,
                needed: Some(n),
                ..
            } if code == "missing_scope" => {
                format!(
                    "the Slack app is missing the `{n}` scope (reinstall it from `incd manifest`)"
                )
            }
            SlackError::Api { method, code, .. } => format!("Slack refused {method} ({code})"),
            SlackError::Transport { method, detail } => {
                format!("Slack did not answer {method} ({detail})")
            }
        }
    }
}

/// Slack error codes that mean "not now" rather than "no".
const TRANSIENT_CODES: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
];

/// Classify a [`SlackError::Transport`] detail, as written by this module: an HTTP status is
/// transient when it is 408, 429 or 5xx; everything that is not a status (timeouts, connection
/// failures and resets, rate limited for too long) is transient, except a `response_url` that is
/// not a URL and an answer without the field it must have.
fn transient_detail(detail: &str) -> bool {
    if let Some(code) = detail.strip_prefix("HTTP ") {
        return match code.trim().parse::<u16>() {
            Ok(status) => status == 408 || status == 429 || status >= 500,
            Err(_) => false,
        };
    }
    !matches!(detail, NOT_A_URL | NO_URL_IN_RESPONSE)
}

const NOT_A_URL: &str = "not an http(s) URL";
const NO_URL_IN_RESPONSE: &str = "response had no url";

/// Which token a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Bot,
    App,
}

/// The client. Share it behind an `Arc`.
pub struct SlackApi {
    http: reqwest::Client,
    base: String,
    bot_token: Secret,
    app_token: Secret,
    /// Key (method, or `chat.postMessage:<channel>`) -> earliest time the next call may go out.
    gates: Mutex<HashMap<String, Instant>>,
    /// Keys that got a 429 recently (when, and the one-at-a-time permit used meanwhile).
    throttled: Mutex<HashMap<String, (Instant, Arc<tokio::sync::Semaphore>)>>,
    /// Spacing of `chat.postMessage` per channel ([`POST_SPACING`] unless tuned).
    post_spacing: Duration,
    metrics: Arc<Metrics>,
}

impl SlackApi {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        bot_token: Secret,
        app_token: Secret,
        metrics: Arc<Metrics>,
    ) -> SlackApi {
        SlackApi {
            http,
            base: base.trim_end_matches('/').to_string(),
            bot_token,
            app_token,
            gates: Mutex::new(HashMap::new()),
            throttled: Mutex::new(HashMap::new()),
            post_spacing: POST_SPACING,
            metrics,
        }
    }

    /// Override the per-channel message spacing (benchmarks against a time-scaled fake).
    pub fn with_post_spacing(mut self, spacing: Duration) -> SlackApi {
        self.post_spacing = spacing;
        self
    }

    /// Call a write method with a JSON body and the bot token.
    pub async fn call(&self, method: &str, args: Value) -> Result<Value, SlackError> {
        let gate = gate_key(method, &args);
        self.send(method, TokenKind::Bot, Body::Json(&args), &gate)
            .await
    }

    /// Call a read method with form arguments and the bot token.
    pub async fn call_form(
        &self,
        method: &str,
        args: &[(&str, &str)],
    ) -> Result<Value, SlackError> {
        self.send(method, TokenKind::Bot, Body::Form(args), method)
            .await
    }

    /// `auth.test`, returning the body and the `x-oauth-scopes` header Slack sends back.
    pub async fn auth_test(&self) -> Result<(Value, Option<String>), SlackError> {
        let resp = self
            .raw("auth.test", TokenKind::Bot, &Body::Form(&[]))
            .await
            .map_err(|e| e.into_slack("auth.test"))?;
        Ok((resp.body, resp.scopes))
    }

    /// `apps.connections.open` with the app token: one attempt, with a timeout. The socket
    /// manager owns backoff.
    pub async fn open_connection(&self) -> Result<String, SlackError> {
        let resp = self
            .raw("apps.connections.open", TokenKind::App, &Body::Form(&[]))
            .await
            .map_err(|e| e.into_slack("apps.connections.open"))?;
        if resp.status == 429 {
            return Err(SlackError::Api {
                method: "apps.connections.open".into(),
                code: "ratelimited".into(),
                needed: None,
                response: resp.body,
            });
        }
        let body = check_ok("apps.connections.open", resp.body)?;
        body.get("url")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| SlackError::Transport {
                method: "apps.connections.open".into(),
                detail: NO_URL_IN_RESPONSE.into(),
            })
    }

    /// Post an ephemeral reply to a slash command's `response_url` (valid 30 minutes, 5 uses;
    /// needs no token or scope, and works in channels the bot is not a member of).
    pub async fn respond(&self, response_url: &str, text: &str) -> Result<(), SlackError> {
        let method = "response_url";
        if !(response_url.starts_with("https://") || response_url.starts_with("http://")) {
            return Err(SlackError::Transport {
                method: method.into(),
                detail: NOT_A_URL.into(),
            });
        }
        let t0 = std::time::Instant::now();
        let r = self
            .http
            .post(response_url)
            .timeout(CALL_TIMEOUT)
            .json(&serde_json::json!({"response_type": "ephemeral", "text": text, "replace_original": false}))
            .send()
            .await;
        let ok = matches!(&r, Ok(resp) if resp.status().is_success());
        self.metrics
            .external_call("slack", method, t0.elapsed(), ok);
        match r {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(SlackError::Transport {
                method: method.into(),
                detail: format!("HTTP {}", resp.status().as_u16()),
            }),
            Err(e) => Err(SlackError::Transport {
                method: method.into(),
                detail: if e.is_timeout() {
                    "timed out".into()
                } else {
                    "network error".into()
                },
            }),
        }
    }

    async fn send(
        &self,
        method: &str,
        token: TokenKind,
        body: Body<'_>,
        gate: &str,
    ) -> Result<Value, SlackError> {
        let started = Instant::now();
        let mut connect_failures = 0;
        loop {
            // After a recent 429 on this key, one request at a time, so nothing is in flight
            // when Slack says to wait and no request lands inside a Retry-After window.
            let _permit = self.throttle_permit(gate).await;
            self.wait_gate(gate, method).await;
            let result = self.raw(method, token, &body).await;
            match result {
                Ok(resp) if resp.status == 429 => {
                    let wait = resp.retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
                    self.metrics.retry("slack", "rate_limited");
                    tracing::warn!(
                        method,
                        retry_after_ms = wait.as_millis() as u64,
                        "Slack rate limited; waiting"
                    );
                    self.close_gate(gate, wait);
                    if started.elapsed() + wait > MAX_RATE_LIMIT_WAIT {
                        return Err(SlackError::Transport {
                            method: method.into(),
                            detail: "rate limited for too long".into(),
                        });
                    }
                }
                Ok(resp) if resp.status >= 500 => {
                    return Err(SlackError::Transport {
                        method: method.into(),
                        detail: format!("HTTP {}", resp.status),
                    })
                }
                Ok(resp) => return check_ok(method, resp.body),
                Err(SendError::NotSent(detail)) if connect_failures + 1 < CONNECT_ATTEMPTS => {
                    connect_failures += 1;
                    self.metrics.retry("slack", "connect");
                    let backoff = Duration::from_millis(200 * 2u64.pow(connect_failures));
                    tracing::warn!(method, %detail, "Slack unreachable; retrying");
                    tokio::time::sleep(jitter(backoff)).await;
                }
                Err(SendError::NotSent(detail)) | Err(SendError::Unknown(detail)) => {
                    return Err(SlackError::Transport {
                        method: method.into(),
                        detail,
                    })
                }
            }
        }
    }

    async fn raw(
        &self,
        method: &str,
        token: TokenKind,
        body: &Body<'_>,
    ) -> Result<RawResponse, SendError> {
        let url = format!("{}/{}", self.base, method);
        let token = match token {
            TokenKind::Bot => self.bot_token.expose(),
            TokenKind::App => self.app_token.expose(),
        };
        let req = self
            .http
            .post(&url)
            .bearer_auth(token)
            .timeout(CALL_TIMEOUT);
        let req = match body {
            Body::Json(v) => req
                .header("content-type", "application/json; charset=utf-8")
                .body(serde_json::to_vec(v).unwrap_or_default()),
            Body::Form(args) => req.form(args),
        };
        let t0 = std::time::Instant::now();
        tracing::debug!(method, "Slack call sent");
        let result = req.send().await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                self.metrics
                    .external_call("slack", method, t0.elapsed(), false);
                return Err(if e.is_connect() {
                    SendError::NotSent("connection failed".into())
                } else if e.is_timeout() {
                    SendError::Unknown("timed out".into())
                } else {
                    SendError::Unknown("network error".into())
                });
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::net::parse_retry_after);
        let scopes = resp
            .headers()
            .get("x-oauth-scopes")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let bytes = resp.bytes().await.map_err(|e| {
            SendError::Unknown(if e.is_timeout() {
                "timed out reading the response".into()
            } else {
                "connection lost reading the response".into()
            })
        })?;
        let ok = status < 400;
        self.metrics
            .external_call("slack", method, t0.elapsed(), ok);
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        tracing::debug!(method, status, "Slack call answered");
        Ok(RawResponse {
            status,
            retry_after,
            scopes,
            body,
        })
    }

    async fn wait_gate(&self, key: &str, method: &str) {
        loop {
            let wait = {
                let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let open_at = gates.get(key).copied().unwrap_or(now);
                if open_at > now {
                    open_at - now
                } else {
                    if method == "chat.postMessage" {
                        // Reserve this channel's next slot before sending.
                        gates.insert(key.to_string(), now + self.post_spacing);
                    }
                    return;
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn throttle_permit(&self, key: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let sem = {
            let mut t = self.throttled.lock().unwrap_or_else(|p| p.into_inner());
            if SERIAL_METHODS.contains(&key) {
                // Tier 2 allows ~20 calls a minute: one at a time costs nothing and means a 429
                // never finds other calls already on their way.
                let far_past = Instant::now() - THROTTLE_MEMORY;
                t.entry(key.to_string())
                    .or_insert_with(|| (far_past, Arc::new(tokio::sync::Semaphore::new(1))))
                    .1
                    .clone()
            } else {
                match t.get(key) {
                    Some((last, sem)) if last.elapsed() < THROTTLE_MEMORY => sem.clone(),
                    _ => return None,
                }
            }
        };
        sem.acquire_owned().await.ok()
    }

    fn close_gate(&self, key: &str, wait: Duration) {
        {
            let mut t = self.throttled.lock().unwrap_or_else(|p| p.into_inner());
            let entry = t
                .entry(key.to_string())
                .or_insert_with(|| (Instant::now(), Arc::new(tokio::sync::Semaphore::new(1))));
            entry.0 = Instant::now();
        }
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + wait;
        let e = gates.entry(key.to_string()).or_insert(until);
        if *e < until {
            *e = until;
        }
    }
}

enum Body<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, &'a str)]),
}

struct RawResponse {
    status: u16,
    retry_after: Option<Duration>,
    scopes: Option<String>,
    body: Value,
}

enum SendError {
    /// Nothing reached Slack: safe to retry.
    NotSent(String),
    /// The request may have reached Slack.
    Unknown(String),
}

impl SendError {
    fn into_slack(self, method: &str) -> SlackError {
        let (SendError::NotSent(detail) | SendError::Unknown(detail)) = self;
        SlackError::Transport {
            method: method.into(),
            detail,
        }
    }
}

/// Rate-limit key: per method, and per channel for `chat.postMessage`.
fn gate_key(method: &str, args: &Value) -> String {
    if method == "chat.postMessage" {
        let ch = args.get("channel").and_then(Value::as_str).unwrap_or("");
        format!("{method}:{ch}")
    } else {
        method.to_string()
    }
}

fn check_ok(method: &str, body: Value) -> Result<Value, SlackError> {
    if body.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(body);
    }
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("invalid_response")
        .to_string();
    let needed = body.get("needed").and_then(Value::as_str).map(String::from);
    Err(SlackError::Api {
        method: method.to_string(),
        code,
        needed,
        response: body,
    })
}

/// Add up to 25% random jitter so retries from many tasks spread out.
pub fn jitter(d: Duration) -> Duration {
    use rand::Rng;
    let ms = d.as_millis() as u64;
    let extra = rand::rng().random_range(0..=ms / 4 + 1);
    Duration::from_millis(ms + extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn post_message_is_limited_per_channel_and_others_per_method() {
        assert_eq!(
            gate_key("chat.postMessage", &json!({"channel": "C1"})),
            "chat.postMessage:C1"
        );
        assert_eq!(
            gate_key("conversations.create", &json!({"name": "x"})),
            "conversations.create"
        );
    }

    #[test]
    fn ok_false_becomes_a_typed_error() {
        let e = check_ok(
            "conversations.create",
            json!({"ok": false, "error": "name_taken"}),
        )
        .unwrap_err();
        assert!(e.is_code("name_taken"));
        let e = check_ok(
            "pins.add",
            json!({"ok": false, "error": "missing_scope", "needed": "pins:write"}),
        )
        .unwrap_err();
        assert!(e.human().contains("pins:write"));
        assert!(check_ok("x", json!({"ok": true})).is_ok());
    }

    fn api(code: &str) -> SlackError {
        SlackError::Api {
            method: "chat.postMessage".into(),
            code: code.into(),
            needed: None,
            response: json!({"ok": false, "error": code}),
        }
    }

    fn transport(detail: &str) -> SlackError {
        SlackError::Transport {
            method: "chat.postMessage".into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn server_errors_and_request_timeouts_are_transient() {
        for status in [500, 502, 503, 504, 408] {
            assert!(
                transport(&format!("HTTP {status}")).is_transient(),
                "{status}"
            );
        }
        for status in [400, 403, 404, 410] {
            assert!(
                !transport(&format!("HTTP {status}")).is_transient(),
                "{status}"
            );
        }
    }

    #[test]
    fn timeouts_and_lost_connections_are_transient() {
        for detail in [
            "timed out",
            "connection failed",
            "network error",
            "timed out reading the response",
            "connection lost reading the response",
        ] {
            assert!(transport(detail).is_transient(), "{detail}");
        }
    }

    #[test]
    fn rate_limits_are_transient() {
        assert!(transport("HTTP 429").is_transient());
        assert!(transport("rate limited for too long").is_transient());
        assert!(api("ratelimited").is_transient());
    }

    #[test]
    fn slack_try_again_codes_are_transient() {
        for code in [
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
        ] {
            assert!(api(code).is_transient(), "{code}");
        }
    }

    #[test]
    fn refusals_and_malformed_requests_are_permanent() {
        for code in [
            "name_taken",
            "missing_scope",
            "channel_not_found",
            "not_in_channel",
            "invalid_auth",
            "expired_trigger_id",
            "invalid_arguments",
            "invalid_response",
        ] {
            assert!(!api(code).is_transient(), "{code}");
        }
        assert!(!transport(NOT_A_URL).is_transient());
        assert!(!transport(NO_URL_IN_RESPONSE).is_transient());
    }

    #[test]
    fn jitter_never_shortens_a_wait() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(100));
            assert!(j >= Duration::from_millis(100) && j <= Duration::from_millis(126));
        }
    }
}
