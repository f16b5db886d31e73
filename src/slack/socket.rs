//! Socket Mode transport, written on tokio-tungstenite.
//!
//! slack-morphism's listener acks only after the callback returns, serialises envelopes per
//! connection, goes deaf after a panic and has no timeouts or backoff (docs/design.md). This
//! transport instead:
//!
//! - keeps `connections` slots, each owning one live socket at a time;
//! - reads frames in a loop that never waits on handlers: every envelope is handed to a spawned
//!   task whose answer (the ack, with an optional payload) goes back through the socket's writer
//!   task; a handler that is slow or panics still gets a bare ack within [`ACK_DEADLINE`];
//! - drops repeated `envelope_id`s (acked, not handled twice);
//! - on `disconnect` (`warning`, `refresh_requested`, `too_many_websockets`) opens the replacement
//!   first and lets the old socket drain until Slack closes it;
//! - reconnects at once after an abrupt drop, with exponential backoff and jitter when
//!   `apps.connections.open` or the websocket handshake fail or hang;
//! - pings every [`PING_INTERVAL`] and replaces a socket that has been silent for
//!   [`SILENCE_LIMIT`].
//!
//! It knows nothing of incidents: it hands [`Envelope`]s to an [`EnvelopeHandler`].

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::metrics::Metrics;
use crate::slack::api::{jitter, SlackApi, SlackError};

/// The ack must reach Slack within 3 s; a handler that has not produced its answer by this
/// deadline gets a bare ack instead.
pub const ACK_DEADLINE: Duration = Duration::from_millis(2000);
/// Timeout for `apps.connections.open` plus the websocket handshake plus `hello`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First reconnect backoff; doubles per consecutive failure up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Backoff after `link_disabled`: Socket Mode is off in the app settings, so retrying fast is
/// pointless, but a person may turn it back on.
pub const LINK_DISABLED_BACKOFF: Duration = Duration::from_secs(60);
/// Wait after `too_many_websockets` before this slot tries again.
pub const CROWDED_BACKOFF: Duration = Duration::from_secs(30);
/// How long a socket replaced after `disconnect` may keep draining before we close it.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(15);
/// Envelope ids remembered for de-duplication.
const SEEN_CAPACITY: usize = 4096;

/// Keep-alive timings. Defaults suit production; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct KeepAlive {
    /// We ping this often.
    pub ping_interval: Duration,
    /// A socket with no inbound frame (data, ping or pong) for this long is replaced.
    pub silence_limit: Duration,
    /// Bound on `apps.connections.open` + handshake + `hello`.
    pub connect_timeout: Duration,
}

/// Client ping interval.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// Silence that marks a socket dead.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(20);

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive {
            ping_interval: PING_INTERVAL,
            silence_limit: SILENCE_LIMIT,
            connect_timeout: CONNECT_TIMEOUT,
        }
    }
}

/// One Socket Mode envelope.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub envelope_id: String,
    /// `slash_commands`, `interactive`, `events_api`, ...
    pub kind: String,
    pub payload: Value,
    pub accepts_response_payload: bool,
    pub retry_attempt: Option<u64>,
}

/// Boxed future returned by handlers.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Option<Value>> + Send>>;

/// Turns an envelope into its ack payload (`None` for a bare ack). Must answer quickly: anything
/// slow belongs in a task it spawns.
pub trait EnvelopeHandler: Send + Sync + 'static {
    fn handle(&self, envelope: Envelope) -> HandlerFuture;
}

/// The Socket Mode client.
pub struct SocketMode {
    api: Arc<SlackApi>,
    handler: Arc<dyn EnvelopeHandler>,
    metrics: Arc<Metrics>,
    connections: usize,
    keepalive: KeepAlive,
    seen: Arc<Mutex<Seen>>,
    /// No slot calls `apps.connections.open` before this: the end of the last `Retry-After`
    /// Slack gave for it (the limit is per app, so it holds for every slot).
    open_not_before: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// True when `id` is new.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= SEEN_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }
}

/// What ended a socket.
#[derive(Debug)]
enum SocketEnd {
    Closed,
    Silent,
    Shutdown,
}

/// Events a socket reports to its slot while it runs.
#[derive(Debug)]
enum SocketEvent {
    Disconnect { generation: u64, reason: String },
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl SocketMode {
    pub fn new(
        api: Arc<SlackApi>,
        handler: Arc<dyn EnvelopeHandler>,
        metrics: Arc<Metrics>,
        connections: usize,
        keepalive: KeepAlive,
    ) -> SocketMode {
        SocketMode {
            api,
            handler,
            metrics,
            connections: connections.max(1),
            keepalive,
            seen: Arc::new(Mutex::new(Seen::default())),
            open_not_before: Mutex::new(None),
        }
    }

    /// Run every slot until `shutdown` turns true; then close the sockets.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let mut slots = Vec::new();
        for slot in 0..self.connections {
            let me = self.clone();
            let sd = shutdown.clone();
            slots.push(tokio::spawn(async move { me.run_slot(slot, sd).await }));
        }
        for s in slots {
            let _ = s.await;
        }
    }

    async fn run_slot(self: Arc<Self>, slot: usize, mut shutdown: watch::Receiver<bool>) {
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<SocketEvent>();
        let mut failures: u32 = 0;
        let mut generation: u64 = 0;
        'reconnect: loop {
            if *shutdown.borrow() {
                return;
            }
            let ws = match self.connect(slot).await {
                Ok(ws) => {
                    failures = 0;
                    ws
                }
                Err(e) => {
                    failures += 1;
                    let delay = backoff_for(&e, failures);
                    tracing::warn!(slot, error = %e, retry_in_ms = delay.as_millis() as u64, "Socket Mode connection failed");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue 'reconnect,
                        _ = shutdown.changed() => return,
                    }
                }
            };
            generation += 1;
            let mut current = tokio::spawn(self.clone().serve(
                ws,
                slot,
                generation,
                events_tx.clone(),
                shutdown.clone(),
            ));
            loop {
                tokio::select! {
                    end = &mut current => {
                        match end {
                            Ok(SocketEnd::Shutdown) => return,
                            Ok(end) => tracing::warn!(slot, ?end, "Socket Mode connection ended; reconnecting"),
                            Err(e) => tracing::error!(slot, error = %e, "Socket Mode connection task failed; reconnecting"),
                        }
                        continue 'reconnect;
                    }
                    Some(SocketEvent::Disconnect { generation: g, reason }) = events_rx.recv() => {
                        if g != generation {
                            continue; // from a socket that is already draining
                        }
                        if reason == "too_many_websockets" {
                            // A replacement would be refused too: this slot steps back and retries later.
                            tracing::warn!(slot, "Slack refused this connection: the app already has 10 Socket Mode connections (is another incd running with the same app token?)");
                            let _ = (&mut current).await;
                            let delay = jitter(CROWDED_BACKOFF);
                            tokio::select! {
                                _ = tokio::time::sleep(delay) => continue 'reconnect,
                                _ = shutdown.changed() => return,
                            }
                        }
                        if reason == "link_disabled" {
                            tracing::error!(slot, "Slack disabled Socket Mode for this app (link_disabled): turn Socket Mode on in the app settings; incd will keep checking every minute");
                            let _ = (&mut current).await;
                            tokio::select! {
                                _ = tokio::time::sleep(jitter(LINK_DISABLED_BACKOFF)) => continue 'reconnect,
                                _ = shutdown.changed() => return,
                            }
                        }
                        tracing::info!(slot, %reason, "Slack asked us to reconnect; opening the replacement first");
                        // Open the replacement while the old socket keeps serving.
                        let mut attempt = 0;
                        let ws = loop {
                            match self.connect(slot).await {
                                Ok(ws) => break Some(ws),
                                Err(e) => {
                                    attempt += 1;
                                    let delay = backoff_for(&e, attempt);
                                    tracing::warn!(slot, error = %e, "opening replacement connection failed");
                                    if current.is_finished() {
                                        break None;
                                    }
                                    tokio::select! {
                                        _ = tokio::time::sleep(delay) => {}
                                        _ = shutdown.changed() => return,
                                    }
                                }
                            }
                        };
                        let Some(ws) = ws else { continue 'reconnect };
                        // The old socket drains: it keeps acking until Slack closes it.
                        let old = std::mem::replace(&mut current, {
                            generation += 1;
                            tokio::spawn(self.clone().serve(ws, slot, generation, events_tx.clone(), shutdown.clone()))
                        });
                        tokio::spawn(async move {
                            let abort = old.abort_handle();
                            if tokio::time::timeout(DRAIN_LIMIT, old).await.is_err() {
                                tracing::debug!("old socket did not close in time; closing it");
                                abort.abort();
                            }
                        });
                    }
                    _ = shutdown.changed() => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), &mut current).await;
                        return;
                    }
                }
            }
        }
    }

    /// `apps.connections.open`, then the websocket handshake, then `hello`, within
    /// [`KeepAlive::connect_timeout`].
    async fn connect(&self, slot: usize) -> Result<Ws, ConnectError> {
        // Never inside a Retry-After window, whichever path (backoff, replacement after a
        // `disconnect`, another slot) brought us here.
        let not_before = *self
            .open_not_before
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(at) = not_before {
            tokio::time::sleep_until(at).await;
        }
        let fut = async {
            let url = self.api.open_connection().await.map_err(|e| {
                if let Some(wait) = e.retry_after() {
                    tracing::warn!(
                        slot,
                        retry_after_ms = wait.as_millis() as u64,
                        "apps.connections.open rate limited; waiting out Retry-After"
                    );
                    let until = Instant::now() + wait;
                    let mut gate = self
                        .open_not_before
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if gate.is_none_or(|g| g < until) {
                        *gate = Some(until);
                    }
                }
                ConnectError::Open(e)
            })?;
            // disable_nagle: an ack must leave at once, not wait for the next outgoing frame.
            let (mut ws, _) =
                tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
                    .await
                    .map_err(|e| ConnectError::Handshake(e.to_string()))?;
            // The first frame is `hello`.
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        match v.get("type").and_then(Value::as_str) {
                            Some("hello") => {
                                let num_connections =
                                    v.get("num_connections").and_then(Value::as_u64);
                                tracing::info!(slot, ?num_connections, "Socket Mode connected");
                                return Ok(ws);
                            }
                            Some("disconnect") => {
                                let reason =
                                    v.get("reason").and_then(Value::as_str).unwrap_or("unknown");
                                return Err(ConnectError::Refused(reason.to_string()));
                            }
                            _ => continue,
                        }
                    }
                    Some(Ok(Message::Ping(p))) => {
                        let _ = ws.send(Message::Pong(p)).await;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(ConnectError::Handshake(e.to_string())),
                    None => return Err(ConnectError::Handshake("closed before hello".into())),
                }
            }
        };
        match tokio::time::timeout(self.keepalive.connect_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Timeout),
        }
    }

    /// Serve one socket until it closes, goes silent, or shutdown.
    async fn serve(
        self: Arc<Self>,
        ws: Ws,
        slot: usize,
        generation: u64,
        events: mpsc::UnboundedSender<SocketEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) -> SocketEnd {
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                let closing = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() || closing {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let live = LiveGuard::new(&self.metrics);
        let mut last_inbound = Instant::now();
        let mut ping = tokio::time::interval(self.keepalive.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining = false;
        let end = loop {
            tokio::select! {
                frame = stream.next() => {
                    let Some(frame) = frame else { break SocketEnd::Closed };
                    let frame = match frame {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(slot, error = %e, "Socket Mode read error");
                            break SocketEnd::Closed;
                        }
                    };
                    last_inbound = Instant::now();
                    match frame {
                        Message::Text(text) => {
                            if let Some(reason) = self.on_text(text.as_str(), &out_tx) {
                                if !draining {
                                    draining = true;
                                    let _ = events.send(SocketEvent::Disconnect { generation, reason });
                                }
                            }
                        }
                        Message::Ping(p) => { let _ = out_tx.send(Message::Pong(p)); }
                        Message::Close(_) => break SocketEnd::Closed,
                        _ => {}
                    }
                }
                _ = ping.tick() => {
                    if last_inbound.elapsed() > self.keepalive.silence_limit {
                        tracing::warn!(slot, silent_ms = last_inbound.elapsed().as_millis() as u64, "Socket Mode connection went silent; replacing it");
                        break SocketEnd::Silent;
                    }
                    let _ = out_tx.send(Message::Ping(Vec::new().into()));
                }
                _ = shutdown.changed() => {
                    let _ = out_tx.send(Message::Close(None));
                    break SocketEnd::Shutdown;
                }
            }
        };
        drop(live);
        // Let acks already queued go out, then close.
        drop(out_tx);
        let _ = tokio::time::timeout(Duration::from_secs(3), writer).await;
        end
    }

    /// Handle one text frame. Returns a disconnect reason when Slack asked us to go.
    fn on_text(&self, text: &str, out: &mpsc::UnboundedSender<Message>) -> Option<String> {
        let received = Instant::now();
        tracing::debug!(len = text.len(), "socket frame received");
        let mut v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                tracing::warn!(len = text.len(), "ignoring a malformed Socket Mode frame");
                return None;
            }
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if kind == "disconnect" {
            let reason = v.get("reason").and_then(Value::as_str).unwrap_or("unknown");
            return Some(reason.to_string());
        }
        if kind == "hello" {
            return None;
        }
        let Some(envelope_id) = v.get("envelope_id").and_then(Value::as_str) else {
            tracing::warn!(%kind, "ignoring a Socket Mode frame without envelope_id");
            return None;
        };
        self.metrics.envelope(&kind);
        let envelope_id = envelope_id.to_string();
        let fresh = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(&envelope_id);
        if !fresh {
            self.metrics.duplicate_envelope();
            tracing::info!(%envelope_id, "duplicate envelope acked and ignored");
            send_ack(out, &envelope_id, None);
            self.metrics.ack(received.elapsed());
            return None;
        }
        let envelope = Envelope {
            envelope_id: envelope_id.clone(),
            kind,
            accepts_response_payload: v
                .get("accepts_response_payload")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            retry_attempt: v.get("retry_attempt").and_then(Value::as_u64),
            payload: v.get_mut("payload").map(Value::take).unwrap_or(Value::Null),
        };
        let accepts_payload = envelope.accepts_response_payload;
        let handler = self.handler.clone();
        let metrics = self.metrics.clone();
        let out = out.clone();
        tokio::spawn(async move {
            let fut = std::panic::AssertUnwindSafe(handler.handle(envelope)).catch_unwind();
            let payload = match tokio::time::timeout(ACK_DEADLINE, fut).await {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => {
                    metrics.handler_panic();
                    tracing::error!(%envelope_id, "handler panicked; envelope acked, service continues");
                    None
                }
                Err(_) => {
                    tracing::warn!(%envelope_id, "handler missed the ack deadline; sent a bare ack");
                    None
                }
            };
            let payload = if accepts_payload { payload } else { None };
            send_ack(&out, &envelope_id, payload);
            metrics.ack(received.elapsed());
        });
        None
    }
}

/// Counts a live socket for as long as it lives, even if its task is aborted.
struct LiveGuard(Arc<Metrics>);

impl LiveGuard {
    fn new(metrics: &Arc<Metrics>) -> LiveGuard {
        metrics.live_connections.fetch_add(1, Ordering::SeqCst);
        metrics.connection_opens.fetch_add(1, Ordering::Relaxed);
        LiveGuard(metrics.clone())
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live_connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn send_ack(out: &mpsc::UnboundedSender<Message>, envelope_id: &str, payload: Option<Value>) {
    let frame = match payload {
        Some(p) => json!({"envelope_id": envelope_id, "payload": p}),
        None => json!({"envelope_id": envelope_id}),
    };
    if out.send(Message::Text(frame.to_string().into())).is_err() {
        tracing::warn!(%envelope_id, "socket closed before the ack could be sent; Slack will redeliver");
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("apps.connections.open: {0}")]
    Open(SlackError),
    #[error("websocket handshake: {0}")]
    Handshake(String),
    #[error("Slack refused the connection: {0}")]
    Refused(String),
    #[error("timed out")]
    Timeout,
}

/// Exponential backoff with jitter and a cap; longer for `link_disabled`; never shorter than
/// the `Retry-After` of a rate-limited `apps.connections.open`.
fn backoff_for(e: &ConnectError, failures: u32) -> Duration {
    let exp = exponential_backoff(e, failures);
    match e {
        ConnectError::Open(se) => match se.retry_after() {
            Some(wait) => exp.max(jitter(wait)),
            None => exp,
        },
        _ => exp,
    }
}

fn exponential_backoff(e: &ConnectError, failures: u32) -> Duration {
    let link_disabled = match e {
        ConnectError::Open(se) => se.is_code("link_disabled"),
        ConnectError::Refused(r) => r == "link_disabled",
        _ => false,
    };
    if link_disabled {
        tracing::error!("Slack answered link_disabled: Socket Mode is turned off for this app; turn it on under Settings > Socket Mode");
        return jitter(LINK_DISABLED_BACKOFF);
    }
    let auth_problem = matches!(e, ConnectError::Open(se) if matches!(se.code(), Some("invalid_auth" | "not_authed" | "not_allowed_token_type" | "token_revoked" | "account_inactive")));
    if auth_problem {
        tracing::error!("Slack refused SLACK_APP_TOKEN: it must be an app-level token (xapp-) with connections:write");
    }
    let exp =
        INITIAL_BACKOFF.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(10)));
    jitter(exp.min(MAX_BACKOFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_envelopes_are_bounded_and_deduplicated() {
        let mut s = Seen::default();
        assert!(s.insert("a"));
        assert!(!s.insert("a"));
        for i in 0..SEEN_CAPACITY {
            s.insert(&i.to_string());
        }
        assert!(s.set.len() <= SEEN_CAPACITY);
        assert!(s.insert("a"), "oldest ids are forgotten");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let e = || ConnectError::Timeout;
        assert!(backoff_for(&e(), 1) < Duration::from_secs(1));
        assert!(backoff_for(&e(), 3) >= Duration::from_secs(2));
        assert!(backoff_for(&e(), 30) <= MAX_BACKOFF + MAX_BACKOFF / 4 + Duration::from_millis(1));
        let ld = ConnectError::Refused("link_disabled".into());
        assert!(backoff_for(&ld, 1) >= LINK_DISABLED_BACKOFF);
    }
}
