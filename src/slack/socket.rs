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
//! - starts the work a handler asks for ([`Handled::then`]) only once the writer has written
//!   the ack frame (or found the socket gone), so no slow or crashing work can hold back an ack;
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
use tokio::sync::{mpsc, oneshot, watch};
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

/// Work a handler wants started once its ack is out (it spawns whatever takes time).
pub type AfterAck = Box<dyn FnOnce() + Send>;

/// A handler's answer: the ack payload (`None` for a bare ack) and the work to start after it.
#[derive(Default)]
pub struct Handled {
    pub ack: Option<Value>,
    pub then: Option<AfterAck>,
}

impl Handled {
    /// Ack with `payload` (or bare), nothing to start.
    pub fn reply(payload: Option<Value>) -> Handled {
        Handled {
            ack: payload,
            then: None,
        }
    }

    /// Start `work` after the ack has been written.
    pub fn then(mut self, work: impl FnOnce() + Send + 'static) -> Handled {
        self.then = Some(Box::new(work));
        self
    }
}

impl std::fmt::Debug for Handled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handled")
            .field("ack", &self.ack)
            .field("then", &self.then.is_some())
            .finish()
    }
}

/// Boxed future returned by handlers.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Handled> + Send>>;

/// Turns an envelope into its ack payload and the work to start once the ack is written. Must
/// answer quickly: anything slow belongs in the work.
pub trait EnvelopeHandler: Send + Sync + 'static {
    fn handle(&self, envelope: Envelope) -> HandlerFuture;
}

/// A frame for the socket's writer; `written` is told once the frame is on the wire (or failed).
type Outgoing = (Message, Option<oneshot::Sender<()>>);

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
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outgoing>();
        let writer = tokio::spawn(async move {
            while let Some((msg, written)) = out_rx.recv().await {
                let closing = matches!(msg, Message::Close(_));
                let failed = sink.send(msg).await.is_err();
                if let Some(w) = written {
                    let _ = w.send(());
                }
                if failed || closing {
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
                        Message::Ping(p) => { let _ = out_tx.send((Message::Pong(p), None)); }
                        Message::Close(_) => break SocketEnd::Closed,
                        _ => {}
                    }
                }
                _ = ping.tick() => {
                    if last_inbound.elapsed() > self.keepalive.silence_limit {
                        tracing::warn!(slot, silent_ms = last_inbound.elapsed().as_millis() as u64, "Socket Mode connection went silent; replacing it");
                        break SocketEnd::Silent;
                    }
                    let _ = out_tx.send((Message::Ping(Vec::new().into()), None));
                }
                _ = shutdown.changed() => {
                    let _ = out_tx.send((Message::Close(None), None));
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
    fn on_text(&self, text: &str, out: &mpsc::UnboundedSender<Outgoing>) -> Option<String> {
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
            let _ = send_ack(out, &envelope_id, None);
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
        tokio::spawn(answer(
            self.handler.clone(),
            envelope,
            out.clone(),
            self.metrics.clone(),
            received,
        ));
        None
    }
}

/// Run the handler on one envelope, write its ack, then start the work it asked for: only once
/// the writer has written the ack frame (or the socket is gone and Slack will redeliver; the
/// handler recorded the intent before answering, so the work is still due).
async fn answer(
    handler: Arc<dyn EnvelopeHandler>,
    envelope: Envelope,
    out: mpsc::UnboundedSender<Outgoing>,
    metrics: Arc<Metrics>,
    received: Instant,
) {
    let envelope_id = envelope.envelope_id.clone();
    let accepts_payload = envelope.accepts_response_payload;
    let fut = std::panic::AssertUnwindSafe(handler.handle(envelope)).catch_unwind();
    let handled = match tokio::time::timeout(ACK_DEADLINE, fut).await {
        Ok(Ok(h)) => h,
        Ok(Err(_)) => {
            metrics.handler_panic();
            tracing::error!(%envelope_id, "handler panicked; envelope acked, service continues");
            Handled::default()
        }
        Err(_) => {
            tracing::warn!(%envelope_id, "handler missed the ack deadline; sent a bare ack");
            Handled::default()
        }
    };
    let payload = if accepts_payload { handled.ack } else { None };
    let written = send_ack(&out, &envelope_id, payload);
    metrics.ack(received.elapsed());
    if let Some(work) = handled.then {
        if let Some(written) = written {
            // Err: the writer is gone without writing it; the work is due all the same.
            let _ = written.await;
        }
        work();
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

/// Queue the ack frame; the receiver is told once the writer has written it.
fn send_ack(
    out: &mpsc::UnboundedSender<Outgoing>,
    envelope_id: &str,
    payload: Option<Value>,
) -> Option<oneshot::Receiver<()>> {
    let frame = match payload {
        Some(p) => json!({"envelope_id": envelope_id, "payload": p}),
        None => json!({"envelope_id": envelope_id}),
    };
    let (tx, rx) = oneshot::channel();
    if out
        .send((Message::Text(frame.to_string().into()), Some(tx)))
        .is_err()
    {
        tracing::warn!(%envelope_id, "socket closed before the ack could be sent; Slack will redeliver");
        return None;
    }
    Some(rx)
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

    /// Acks `text` envelopes and asks for work that notes itself in `log`.
    struct AckThenWork(Arc<Mutex<Vec<String>>>);

    impl EnvelopeHandler for AckThenWork {
        fn handle(&self, envelope: Envelope) -> HandlerFuture {
            let log = self.0.clone();
            Box::pin(async move {
                let id = envelope.envelope_id.clone();
                Handled::reply(Some(json!({"text": "ok"}))).then(move || {
                    log.lock().unwrap().push(format!("work {id}"));
                })
            })
        }
    }

    fn envelope(id: &str) -> Envelope {
        Envelope {
            envelope_id: id.into(),
            kind: "interactive".into(),
            payload: json!({"type": "view_submission"}),
            accepts_response_payload: true,
            retry_attempt: None,
        }
    }

    #[tokio::test]
    async fn the_work_starts_only_after_the_ack_frame_is_written() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outgoing>();
        let writer_log = log.clone();
        // A writer that holds the frame until the work would have had every chance to run first.
        let writer = tokio::spawn(async move {
            let (msg, written) = out_rx.recv().await.expect("an ack frame");
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            let Message::Text(t) = msg else {
                panic!("not a text frame")
            };
            writer_log.lock().unwrap().push(format!("ack {t}"));
            written.expect("the ack asks to be told").send(()).unwrap();
        });
        let metrics = Arc::new(Metrics::new());
        tokio::time::timeout(
            Duration::from_secs(5),
            answer(
                Arc::new(AckThenWork(log.clone())),
                envelope("E1"),
                out_tx,
                metrics,
                Instant::now(),
            ),
        )
        .await
        .expect("answered in time");
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .unwrap()
            .unwrap();
        let log = log.lock().unwrap().clone();
        assert_eq!(
            log,
            vec![
                r#"ack {"envelope_id":"E1","payload":{"text":"ok"}}"#.to_string(),
                "work E1".to_string()
            ]
        );
    }

    #[tokio::test]
    async fn the_work_still_starts_when_the_socket_is_gone() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (out_tx, out_rx) = mpsc::unbounded_channel::<Outgoing>();
        drop(out_rx);
        tokio::time::timeout(
            Duration::from_secs(5),
            answer(
                Arc::new(AckThenWork(log.clone())),
                envelope("E2"),
                out_tx,
                Arc::new(Metrics::new()),
                Instant::now(),
            ),
        )
        .await
        .expect("answered in time");
        assert_eq!(*log.lock().unwrap(), vec!["work E2".to_string()]);
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
