//! The Slack Web API client: one pooled HTTP client, a timeout on every call, and Slack's rate
//! limits honoured.
//!
//! - Budgets, as Slack documents them: each tiered method may make its tier's calls per minute
//!   (Tier 2: 20, Tier 3: 50, Tier 4: 100), all at once if need be; `chat.postMessage` may post
//!   about one message per second per channel sustained, with short bursts (a bucket of
//!   [`POST_BURST`] messages refilled one per [`POST_SPACING`]). A call within its budget leaves
//!   at once, beside any others. A call over budget goes alone, one at a time per key (Slack
//!   documents the budgets as minimums: "20+ per minute", "bursts allowed"), so that if Slack does
//!   refuse it nothing else of that key is already on its way.
//! - 429: the method (or, for `chat.postMessage`, the channel) is closed until `Retry-After` has
//!   passed, for every caller at once, and the call is retried; never earlier. For a while after
//!   a 429 ([`PACED_MEMORY`]) a call over budget waits for budget instead of trying alone: Slack
//!   said the sustained rate really is exceeded.
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
/// Sustained spacing of messages to one channel: one per second, plus 5 % of margin so that
/// timing jitter does not draw 429s once a channel's burst is spent.
pub const POST_SPACING: Duration = Duration::from_millis(1050);
/// Key under which a 429's `Retry-After` travels in [`SlackError::Api::response`].
const RETRY_AFTER_MS: &str = "incd_retry_after_ms";
/// Messages one channel may take at once before the sustained rate applies. Slack documents
/// "short bursts >1 allowed" without a number (its Java SDK budgets 60 per minute per channel;
/// users report 25-40 in a burst going through); 10 covers ten incidents declared at once.
pub const POST_BURST: u32 = 10;
/// A tier's minute, plus 5 % of margin against clock jitter between incd and Slack.
pub const TIER_WINDOW: Duration = Duration::from_millis(63_000);
/// After a 429, how long a key over budget waits for budget rather than trying alone (scaled
/// like the budgets).
pub const PACED_MEMORY: Duration = Duration::from_secs(60);
/// Calls per minute of the tiered methods incd uses (docs.slack.dev "Rate limits" and each
/// method's page). Methods not listed have no budget of their own: only `Retry-After` gates them.
const TIERS: &[(&str, u32)] = &[
    ("conversations.create", 20),
    ("conversations.rename", 20),
    ("conversations.setTopic", 20),
    ("conversations.setPurpose", 20),
    ("conversations.archive", 20),
    ("pins.add", 20),
    ("bookmarks.add", 20),
    ("conversations.invite", 50),
    ("conversations.join", 50),
    ("conversations.info", 50),
    ("conversations.history", 50),
    ("users.conversations", 50),
    ("chat.update", 50),
    ("views.open", 100),
    ("views.update", 100),
    ("views.push", 100),
    ("users.info", 100),
    ("chat.postEphemeral", 100),
    ("views.publish", 100),
    // Tier 3 on paper, but 1 a minute (at most 15 messages per call) for apps outside the
    // Marketplace since 2025: reads of 📌-marked messages queue behind this budget.
    ("conversations.replies", 1),
];
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

    /// For a `ratelimited` answer of `apps.connections.open`: how long Slack asked us to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SlackError::Api { code, response, .. } if code == "ratelimited" => response
                .get(RETRY_AFTER_MS)
                .and_then(Value::as_u64)
                .map(Duration::from_millis),
            _ => None,
        }
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
    /// Key (method, or `chat.postMessage:<channel>`) -> its budget and `Retry-After` gate.
    budgets: Mutex<HashMap<String, Budget>>,
    rates: Rates,
    metrics: Arc<Metrics>,
}

/// The budgets' parameters ([`POST_SPACING`], [`POST_BURST`], [`TIER_WINDOW`] unless tuned).
#[derive(Debug, Clone, Copy)]
struct Rates {
    post_spacing: Duration,
    post_burst: u32,
    tier_window: Duration,
    paced_memory: Duration,
}

/// One rate-limit key's state.
#[derive(Debug)]
struct Budget {
    kind: BudgetKind,
    /// `Retry-After`: no call of this key leaves before this instant.
    gate: Instant,
    /// Until then (after a 429), calls over budget wait for budget.
    paced_until: Option<Instant>,
    /// Held by the one call over budget that is on its way.
    alone: Arc<tokio::sync::Semaphore>,
    /// Calls of this key sent and not yet answered.
    in_flight: usize,
}

#[derive(Debug)]
enum BudgetKind {
    /// Tiered method: at most `n` sends in any `window`.
    Window {
        n: usize,
        window: Duration,
        sent: std::collections::VecDeque<Instant>,
    },
    /// `chat.postMessage` to one channel: a bucket of `capacity` refilled one per `every`.
    Bucket {
        capacity: f64,
        tokens: f64,
        every: Duration,
        at: Instant,
    },
    /// No documented budget: gated by `Retry-After` only.
    Unmetered,
}

/// What a call may do now.
enum Admission {
    /// Within budget: send (beside others).
    Go,
    /// Over budget and holding the key's permit: send alone.
    GoAlone,
    /// Over budget, holding the permit, but calls within budget are still on their way: wait for
    /// their answers (one of them may be the 429) before going alone.
    Drain,
    /// Gate closed, or paced: try again after this long.
    Wait(Duration),
    /// Over budget, or a call over budget is on its way: take the key's permit first (so that
    /// when Slack refuses that call, nothing else of the key left after it).
    Alone(Arc<tokio::sync::Semaphore>),
}

impl Budget {
    fn new(method: &str, rates: &Rates, now: Instant) -> Budget {
        let kind = if method == "chat.postMessage" {
            let capacity = f64::from(rates.post_burst.max(1));
            BudgetKind::Bucket {
                capacity,
                tokens: capacity,
                every: rates.post_spacing,
                at: now,
            }
        } else if let Some((_, n)) = TIERS.iter().find(|(m, _)| *m == method) {
            BudgetKind::Window {
                n: *n as usize,
                window: rates.tier_window,
                sent: Default::default(),
            }
        } else {
            BudgetKind::Unmetered
        };
        Budget {
            kind,
            gate: now,
            paced_until: None,
            alone: Arc::new(tokio::sync::Semaphore::new(1)),
            in_flight: 0,
        }
    }

    /// Bring the budget up to `now`; `None` when a call fits now, else how long until one does.
    fn until_room(&mut self, now: Instant) -> Option<Duration> {
        match &mut self.kind {
            BudgetKind::Unmetered => None,
            BudgetKind::Window { n, window, sent } => {
                while sent
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= *window)
                {
                    sent.pop_front();
                }
                if sent.len() < *n {
                    None
                } else {
                    Some((sent[sent.len() - *n] + *window).saturating_duration_since(now))
                }
            }
            BudgetKind::Bucket {
                capacity,
                tokens,
                every,
                at,
            } => {
                let every_s = every.as_secs_f64().max(1e-6);
                let gained = now.saturating_duration_since(*at).as_secs_f64() / every_s;
                *tokens = (*tokens + gained).min(*capacity);
                *at = now;
                if *tokens >= 1.0 {
                    None
                } else {
                    Some(Duration::from_secs_f64((1.0 - *tokens) * every_s))
                }
            }
        }
    }

    /// Count one send (it may overdraw the budget: a call over budget that goes alone).
    fn spend(&mut self, now: Instant) {
        match &mut self.kind {
            BudgetKind::Unmetered => {}
            BudgetKind::Window { sent, .. } => sent.push_back(now),
            BudgetKind::Bucket { tokens, .. } => *tokens -= 1.0,
        }
    }

    /// Slack said 429: the budget is spent, whatever incd counted.
    fn exhaust(&mut self, now: Instant) {
        if let BudgetKind::Bucket { tokens, at, .. } = &mut self.kind {
            *tokens = tokens.min(0.0);
            *at = now;
        }
    }

    fn admit(&mut self, now: Instant, holding_alone: bool) -> Admission {
        if self.gate > now {
            return Admission::Wait(self.gate - now);
        }
        // A call over budget is on its way: wait for its answer (it may be a 429).
        if !holding_alone && self.alone.available_permits() == 0 {
            return Admission::Alone(self.alone.clone());
        }
        match self.until_room(now) {
            None => {
                self.spend(now);
                self.in_flight += 1;
                Admission::Go
            }
            Some(wait) if self.paced_until.is_some_and(|p| now < p) => Admission::Wait(wait),
            Some(_) if holding_alone && self.in_flight > 0 => Admission::Drain,
            Some(_) if holding_alone => {
                self.spend(now);
                self.in_flight += 1;
                Admission::GoAlone
            }
            Some(_) => Admission::Alone(self.alone.clone()),
        }
    }
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
            budgets: Mutex::new(HashMap::new()),
            rates: Rates {
                post_spacing: POST_SPACING,
                post_burst: POST_BURST,
                tier_window: TIER_WINDOW,
                paced_memory: PACED_MEMORY,
            },
            metrics,
        }
    }

    /// Divide every budget's time by `scale` (a Tier 2 minute lasts 60 s / `scale`): for tests
    /// and benchmarks against a time-scaled fake. `Retry-After` is always honoured as given.
    pub fn with_rate_scale(mut self, scale: f64) -> SlackApi {
        if scale.is_finite() && scale > 0.0 {
            self.rates.post_spacing = POST_SPACING.div_f64(scale);
            self.rates.tier_window = TIER_WINDOW.div_f64(scale);
            self.rates.paced_memory = PACED_MEMORY.div_f64(scale);
        }
        self
    }

    /// Override the sustained spacing of messages to one channel.
    pub fn with_post_spacing(mut self, spacing: Duration) -> SlackApi {
        self.rates.post_spacing = spacing;
        self
    }

    /// Override how many messages one channel may take at once.
    pub fn with_post_burst(mut self, burst: u32) -> SlackApi {
        self.rates.post_burst = burst.max(1);
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
            // Slack's Retry-After goes with the error: the socket's reconnect loop waits it out
            // (read it back with `SlackError::retry_after`).
            let wait = resp.retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
            return Err(SlackError::Api {
                method: "apps.connections.open".into(),
                code: "ratelimited".into(),
                needed: None,
                response: serde_json::json!({
                    "ok": false,
                    "error": "ratelimited",
                    RETRY_AFTER_MS: wait.as_millis() as u64,
                }),
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
            let _alone = self.admit(gate, method).await;
            // Counted as on its way until this iteration ends, after a 429 has closed the gate.
            let _answered = Answered {
                api: self,
                key: gate,
            };
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

    /// Wait until a call of `key` may leave; holds the one-at-a-time permit when it goes over
    /// budget.
    async fn admit(&self, key: &str, method: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let mut alone: Option<tokio::sync::OwnedSemaphorePermit> = None;
        loop {
            let admission = {
                let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                budgets
                    .entry(key.to_string())
                    .or_insert_with(|| Budget::new(method, &self.rates, now))
                    .admit(now, alone.is_some())
            };
            match admission {
                // Within budget: no need to keep others waiting.
                Admission::Go => return None,
                Admission::GoAlone => return alone,
                // Keep the permit (nothing new leaves meanwhile); look again shortly.
                Admission::Drain => tokio::time::sleep(DRAIN_POLL).await,
                Admission::Wait(d) => {
                    alone = None;
                    tokio::time::sleep(d).await;
                }
                Admission::Alone(sem) => alone = sem.acquire_owned().await.ok(),
            }
        }
    }

    /// Slack said 429 for `key`: close it for `wait`, and pace it for a while.
    fn close_gate(&self, key: &str, wait: Duration) {
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let method = key.split_once(':').map_or(key, |(m, _)| m);
        let b = budgets
            .entry(key.to_string())
            .or_insert_with(|| Budget::new(method, &self.rates, now));
        b.gate = b.gate.max(now + wait);
        b.paced_until = Some(now + wait + self.rates.paced_memory);
        b.exhaust(now);
    }
}

/// How often a call waiting to go alone looks whether the calls before it were answered.
const DRAIN_POLL: Duration = Duration::from_millis(2);

/// Counts a call of `key` as answered (or abandoned) when dropped.
struct Answered<'a> {
    api: &'a SlackApi,
    key: &'a str,
}

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        let mut budgets = self.api.budgets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = budgets.get_mut(self.key) {
            b.in_flight = b.in_flight.saturating_sub(1);
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

    fn rates() -> Rates {
        Rates {
            post_spacing: POST_SPACING,
            post_burst: POST_BURST,
            tier_window: TIER_WINDOW,
            paced_memory: PACED_MEMORY,
        }
    }

    fn goes(a: &Admission) -> bool {
        matches!(a, Admission::Go)
    }

    #[test]
    fn a_tier_two_method_sends_twenty_at_once_then_only_one_at_a_time() {
        let t0 = Instant::now();
        let mut b = Budget::new("conversations.create", &rates(), t0);
        for _ in 0..20 {
            assert!(goes(&b.admit(t0, false)), "within the tier: at once");
        }
        assert!(matches!(b.admit(t0, false), Admission::Alone(_)));
        assert!(
            matches!(b.admit(t0, true), Admission::Drain),
            "not before the twenty are answered"
        );
        b.in_flight = 0;
        assert!(matches!(b.admit(t0, true), Admission::GoAlone));
        // A minute (plus margin) after the first twenty, the budget is back.
        let later = t0 + TIER_WINDOW;
        for _ in 0..19 {
            assert!(goes(&b.admit(later, false)));
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
    fn a_channel_takes_a_burst_of_messages_then_one_per_spacing() {
        let t0 = Instant::now();
        let mut b = Budget::new("chat.postMessage", &rates(), t0);
        for _ in 0..POST_BURST {
            assert!(goes(&b.admit(t0, false)));
        }
        assert!(matches!(b.admit(t0, false), Admission::Alone(_)));
        let t1 = t0 + POST_SPACING + Duration::from_millis(1);
        assert!(goes(&b.admit(t1, false)), "refilled one");
        assert!(matches!(b.admit(t1, false), Admission::Alone(_)));
    }

    #[test]
    fn after_a_429_nothing_leaves_before_retry_after_and_over_budget_calls_wait() {
        let t0 = Instant::now();
        let mut b = Budget::new("chat.postMessage", &rates(), t0);
        assert!(goes(&b.admit(t0, false)));
        // What SlackApi::close_gate does on a 429 with Retry-After: 1.
        b.gate = t0 + Duration::from_secs(1);
        b.paced_until = Some(b.gate + PACED_MEMORY);
        b.exhaust(t0);
        match b.admit(t0 + Duration::from_millis(999), true) {
            Admission::Wait(d) => assert_eq!(d, Duration::from_millis(1)),
            _ => panic!("a call inside Retry-After must wait, even alone"),
        }
        // Gate open, but Slack said the rate was exceeded: wait for a token, do not probe.
        let t1 = t0 + Duration::from_secs(1);
        match b.admit(t1, false) {
            Admission::Wait(d) => {
                let expected = POST_SPACING - Duration::from_secs(1);
                assert!(d.abs_diff(expected) < Duration::from_micros(10), "{d:?}");
            }
            _ => panic!("paced after a 429"),
        }
        assert!(goes(
            &b.admit(t0 + POST_SPACING + Duration::from_millis(1), false)
        ));
    }

    #[test]
    fn while_a_call_over_budget_is_on_its_way_no_other_call_of_its_key_leaves() {
        let t0 = Instant::now();
        let mut b = Budget::new("chat.postMessage", &rates(), t0);
        for _ in 0..POST_BURST {
            assert!(goes(&b.admit(t0, false)));
        }
        let Admission::Alone(sem) = b.admit(t0, false) else {
            panic!("over budget: alone")
        };
        let permit = sem.try_acquire_owned().expect("free");
        // The ten within budget are still on their way: one of them may draw the 429.
        assert!(matches!(b.admit(t0, true), Admission::Drain));
        b.in_flight = 0;
        assert!(matches!(b.admit(t0, true), Admission::GoAlone));
        // Budget is back, but the lone call has not been answered (it may get a 429).
        let later = t0 + POST_SPACING * 3;
        assert!(matches!(b.admit(later, false), Admission::Alone(_)));
        drop(permit);
        assert!(goes(&b.admit(later, false)));
    }

    #[test]
    fn methods_without_a_budget_are_gated_only_by_retry_after() {
        let t0 = Instant::now();
        let mut b = Budget::new("auth.test", &rates(), t0);
        for _ in 0..1000 {
            assert!(goes(&b.admit(t0, false)));
        }
    }

    #[test]
    fn jitter_never_shortens_a_wait() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(100));
            assert!(j >= Duration::from_millis(100) && j <= Duration::from_millis(126));
        }
    }
}
