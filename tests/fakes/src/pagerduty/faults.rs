//! Fault injection, call log and `Retry-After` bookkeeping shared by the PagerDuty and Notion
//! fakes (re-exported from both modules).
//!
//! Every request first passes [`layer`]: injected latency, then the next scripted [`Fault`], then
//! the "down" switch, then (Notion) the rate limiter. A request that arrives before a
//! `Retry-After` this fake gave has elapsed is recorded as an [`EarlyRetry`]; it is still served
//! normally so that scripts stay deterministic.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

/// A scripted fault, consumed by the next request that arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and the service's error body.
    Status(u16),
    /// Answer 429 with `Retry-After: retry_after_secs` and the service's rate-limit body.
    RateLimited { retry_after_secs: u64 },
    /// Never answer (the client's timeout fires).
    Hang,
    /// Wait this long, then serve the request normally.
    Delay(Duration),
    /// Serve the request (its effects happen), then never answer: a timeout whose request
    /// actually succeeded, the case that makes retried creates dangerous.
    LoseResponse,
    // ---- chaos faults (see `crate::chaos`) ----
    /// Drop the connection without an answer; no effect is applied.
    Reset,
    /// Serve the request (its effects happen), then drop the connection: the response is lost.
    ApplyThenReset,
    /// Serve the request (its effects happen), then answer this status with the service's
    /// error body instead of the real answer: the response is lost.
    ApplyThenStatus(u16),
}

/// One request that reached the fake.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub method: String,
    /// Path and query, e.g. `/v1/pages` or `/incidents?incident_key=x`.
    pub path: String,
    /// Status answered (0 when the request hung before being served; for
    /// [`Fault::LoseResponse`] the status that was never delivered).
    pub status: u16,
}

/// A request that arrived before the `Retry-After` the fake had given.
#[derive(Debug, Clone)]
pub struct EarlyRetry {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// When the client was allowed to come back.
    pub allowed_at: Instant,
}

impl EarlyRetry {
    /// How much too early it came.
    pub fn early_by(&self) -> Duration {
        self.allowed_at.saturating_duration_since(self.at)
    }
}

/// A request the fake refused the way the real service would.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Service error code (`validation_error`, `invalid event`, `2001`, …).
    pub code: String,
    /// Why, in the service's words.
    pub reason: String,
}

/// Token bucket: `rate` requests per second on average, bursts up to `burst`.
#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

#[derive(Default)]
struct FaultState {
    latency: Duration,
    queue: VecDeque<Fault>,
    /// Faults for the next request with this method whose path contains this text; served
    /// before the general queue.
    targeted: VecDeque<(String, String, Fault)>,
    down: bool,
    not_before: Option<Instant>,
    early: Vec<EarlyRetry>,
    calls: Vec<Call>,
    rejected: Vec<Rejected>,
    bucket: Option<Bucket>,
    /// Random faults for requests no scripted fault answers (`crate::chaos`).
    chaos: Option<(std::sync::Arc<crate::chaos::Chaos>, crate::chaos::Service)>,
}

/// Builds the service-shaped error body for an injected status.
pub(crate) type ErrorBody = fn(status: u16, path: &str) -> Value;

/// Shared per fake: faults, logs, limiter.
pub(crate) struct Faults {
    state: Mutex<FaultState>,
    error_body: ErrorBody,
}

enum Verdict {
    Proceed,
    Respond {
        status: u16,
        retry_after: Option<u64>,
    },
    Hang,
    LoseResponse,
    Reset,
    ApplyThenReset,
    ApplyThenStatus(u16),
}

impl Faults {
    pub(crate) fn new(error_body: ErrorBody) -> Arc<Faults> {
        Arc::new(Faults {
            state: Mutex::new(FaultState::default()),
            error_body,
        })
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }
    pub(crate) fn push(&self, fault: Fault) {
        self.lock().queue.push_back(fault);
    }
    pub(crate) fn push_on(&self, method: &str, path_contains: &str, fault: Fault) {
        self.lock()
            .targeted
            .push_back((method.to_string(), path_contains.to_string(), fault));
    }
    pub(crate) fn clear(&self) {
        let mut s = self.lock();
        s.queue.clear();
        s.targeted.clear();
        s.down = false;
        s.latency = Duration::ZERO;
        s.not_before = None;
    }
    pub(crate) fn set_down(&self, down: bool) {
        self.lock().down = down;
    }
    pub(crate) fn set_rate_limit(&self, limit: Option<(f64, u32)>) {
        self.lock().bucket = limit.map(|(rate, burst)| Bucket {
            rate: rate.max(0.001),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: Instant::now(),
        });
    }
    pub(crate) fn set_chaos(
        &self,
        chaos: Option<(std::sync::Arc<crate::chaos::Chaos>, crate::chaos::Service)>,
    ) {
        self.lock().chaos = chaos;
    }
    pub(crate) fn pending(&self) -> usize {
        let s = self.lock();
        s.queue.len() + s.targeted.len()
    }
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }
    pub(crate) fn early_retries(&self) -> Vec<EarlyRetry> {
        self.lock().early.clone()
    }
    pub(crate) fn rejected(&self) -> Vec<Rejected> {
        self.lock().rejected.clone()
    }

    pub(crate) fn reject(&self, method: &str, path: &str, status: u16, code: &str, reason: &str) {
        self.lock().rejected.push(Rejected {
            at: Instant::now(),
            method: method.to_string(),
            path: path.to_string(),
            status,
            code: code.to_string(),
            reason: reason.to_string(),
        });
    }

    fn decide(&self, method: &str, path: &str) -> (Duration, Option<Duration>, Verdict) {
        let now = Instant::now();
        let mut s = self.lock();
        if let Some(allowed_at) = s.not_before {
            if now < allowed_at {
                s.early.push(EarlyRetry {
                    at: now,
                    method: method.to_string(),
                    path: path.to_string(),
                    allowed_at,
                });
            } else {
                s.not_before = None;
            }
        }
        let latency = s.latency;
        let mut delay = None;
        let targeted = s
            .targeted
            .iter()
            .position(|(m, p, _)| m.eq_ignore_ascii_case(method) && path.contains(p.as_str()))
            .and_then(|i| s.targeted.remove(i))
            .map(|(_, _, f)| f);
        let next = match targeted.or_else(|| s.queue.pop_front()) {
            Some(f) => Some(f),
            None => s
                .chaos
                .as_ref()
                .and_then(|(c, service)| c.draw_http(*service, method, path)),
        };
        let verdict = match next {
            Some(Fault::Status(code)) => Verdict::Respond {
                status: code,
                retry_after: None,
            },
            Some(Fault::RateLimited { retry_after_secs }) => Verdict::Respond {
                status: 429,
                retry_after: Some(retry_after_secs),
            },
            Some(Fault::Hang) => Verdict::Hang,
            Some(Fault::LoseResponse) => Verdict::LoseResponse,
            Some(Fault::Reset) => Verdict::Reset,
            Some(Fault::ApplyThenReset) => Verdict::ApplyThenReset,
            Some(Fault::ApplyThenStatus(code)) => Verdict::ApplyThenStatus(code),
            Some(Fault::Delay(d)) => {
                delay = Some(d);
                Verdict::Proceed
            }
            None => Verdict::Proceed,
        };
        let verdict = match verdict {
            Verdict::Proceed if s.down => Verdict::Respond {
                status: 503,
                retry_after: None,
            },
            Verdict::Proceed => match s.bucket.as_mut() {
                Some(b) => {
                    let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
                    b.tokens = (b.tokens + elapsed * b.rate).min(b.burst);
                    b.last = now;
                    if b.tokens >= 1.0 {
                        b.tokens -= 1.0;
                        Verdict::Proceed
                    } else {
                        let wait = ((1.0 - b.tokens) / b.rate).ceil().max(1.0) as u64;
                        Verdict::Respond {
                            status: 429,
                            retry_after: Some(wait),
                        }
                    }
                }
                None => Verdict::Proceed,
            },
            other => other,
        };
        if let Verdict::Respond {
            retry_after: Some(secs),
            ..
        } = verdict
        {
            s.not_before = Some(now + Duration::from_secs(secs));
        }
        (latency, delay, verdict)
    }

    fn record(&self, at: Instant, method: String, path: String, status: u16) {
        self.lock().calls.push(Call {
            at,
            method,
            path,
            status,
        });
    }
}

/// Axum middleware applying [`Faults`] to every request and logging it.
pub(crate) async fn layer(State(faults): State<Arc<Faults>>, req: Request, next: Next) -> Response {
    let at = Instant::now();
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let (latency, delay, verdict) = faults.decide(&method, &path);
    crate::sleep_exactly(latency).await;
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let response = match verdict {
        Verdict::Hang => {
            faults.record(at, method, path, 0);
            std::future::pending::<()>().await;
            unreachable!("a pending future never completes")
        }
        Verdict::Respond {
            status,
            retry_after,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = (faults.error_body)(status, &path);
            if status == 429 {
                faults.reject(&method, &path, 429, "rate_limited", "rate limited");
            }
            let mut resp = (code, Json(body)).into_response();
            if let Some(secs) = retry_after {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert("retry-after", v);
                }
            }
            resp
        }
        Verdict::LoseResponse => {
            let served = next.run(req).await;
            faults.record(at, method, path, served.status().as_u16());
            std::future::pending::<()>().await;
            unreachable!("a pending future never completes")
        }
        Verdict::Reset => {
            faults.record(at, method, path, 0);
            return dropped_connection();
        }
        Verdict::ApplyThenReset => {
            let served = next.run(req).await;
            faults.record(at, method, path, served.status().as_u16());
            return dropped_connection();
        }
        Verdict::ApplyThenStatus(status) => {
            let _served = next.run(req).await;
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (code, Json((faults.error_body)(status, &path))).into_response()
        }
        Verdict::Proceed => next.run(req).await,
    };
    faults.record(at, method, path, response.status().as_u16());
    response
}

/// A response whose connection breaks before the answer is complete: the client sees a reset
/// (no status, or a body that fails), never a usable answer.
pub(crate) fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fake: connection dropped",
        ))
    });
    let mut resp = Response::new(Body::from_stream(failing));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

/// A JSON response with a status.
pub(crate) fn json_response(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

/// Counts like JavaScript's `String.length` (Notion's limits are measured this way).
pub(crate) fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Bind 127.0.0.1 on a free port and serve `router` in the background.
pub(crate) async fn serve(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port for a fake");
    let addr = listener.local_addr().expect("local address of a fake");
    tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// The fault-injection driver methods shared by the PagerDuty and Notion fakes; expanded inside
/// an `impl` whose `self.inner.faults` is a [`Faults`].
macro_rules! fault_controls {
    () => {
        /// Every refused request with the reason.
        pub fn rejected(&self) -> Vec<$crate::pagerduty::faults::Rejected> {
            self.inner.faults.rejected()
        }
        /// Every request, with arrival time and the status answered.
        pub fn calls(&self) -> Vec<$crate::pagerduty::faults::Call> {
            self.inner.faults.calls()
        }

        /// Delay every request by this much.
        pub fn set_latency(&self, latency: std::time::Duration) {
            self.inner.faults.set_latency(latency);
        }
        /// Queue a fault for the next request not yet served by an earlier fault.
        pub fn push_fault(&self, fault: $crate::pagerduty::faults::Fault) {
            self.inner.faults.push(fault);
        }
        /// Queue a fault for the next request with this method (e.g. `PATCH`) whose path
        /// contains `path_contains`, whatever other requests come first.
        pub fn push_fault_on(
            &self,
            method: &str,
            path_contains: &str,
            fault: $crate::pagerduty::faults::Fault,
        ) {
            self.inner.faults.push_on(method, path_contains, fault);
        }
        /// Scripted faults not yet consumed.
        pub fn pending_faults(&self) -> usize {
            self.inner.faults.pending()
        }
        /// While down, every request gets 503.
        pub fn set_down(&self, down: bool) {
            self.inner.faults.set_down(down);
        }
        /// Drop queued faults, latency, the down switch and any pending `Retry-After`.
        pub fn clear_faults(&self) {
            self.inner.faults.clear();
        }
        /// Draw random faults from `chaos` for every request no scripted fault answers
        /// (`None` stops).
        pub fn set_chaos(&self, chaos: Option<std::sync::Arc<$crate::chaos::Chaos>>) {
            let service = Self::CHAOS_SERVICE;
            self.inner.faults.set_chaos(chaos.map(|c| (c, service)));
        }
        /// Requests that arrived before a `Retry-After` given by this fake had elapsed.
        pub fn early_retries(&self) -> Vec<$crate::pagerduty::faults::EarlyRetry> {
            self.inner.faults.early_retries()
        }
    };
}
pub(crate) use fault_controls;
