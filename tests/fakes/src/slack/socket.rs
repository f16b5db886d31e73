//! Socket Mode transport: the `/link/` WebSocket endpoint, connection tasks, envelope delivery,
//! ack recording and ack-payload validation (platform-contracts §1.4).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc::unbounded_channel;

use super::blocks;
use super::methods::{self, MAX_POST_TEXT, MAX_VIEW_STACK};
use super::model::*;
use super::state::{ConnCmd, EnvelopeRecord, State};
use super::{Shared, APP_ID};

/// `GET /link/?ticket=…&app_id=…` (WebSocket upgrade).
pub(crate) async fn link_handler(
    AxState(sh): AxState<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ticket = q.get("ticket").cloned().unwrap_or_default();
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => return r.into_response(),
    };
    let refusal = {
        let mut st = sh.lock();
        match st.tickets.get(&ticket).copied() {
            Some(false) => {
                st.tickets.insert(ticket.clone(), true);
                None
            }
            Some(true) => Some(format!(
                "websocket connect with an already used ticket `{ticket}`"
            )),
            None => Some(format!(
                "websocket connect with an unknown ticket `{ticket}`"
            )),
        }
    };
    if let Some(reason) = refusal {
        {
            let mut st = sh.lock();
            st.log(|| reason.clone());
            st.violations.push(SocketViolation {
                at: Instant::now(),
                connection: None,
                envelope_id: None,
                reason,
            });
        }
        sh.bump();
        return (StatusCode::UNAUTHORIZED, "invalid ticket").into_response();
    }
    ws.on_upgrade(move |socket| run_connection(sh, socket, ticket))
}

fn host(idx: usize) -> String {
    format!("applink-fake-{idx}")
}

pub(crate) fn disconnect_frame(reason: &str, idx: usize, num: usize) -> String {
    json!({
        "type": "disconnect",
        "reason": reason,
        "num_connections": num,
        "debug_info": {"host": host(idx)},
        "connection_info": {"app_id": APP_ID},
    })
    .to_string()
}

async fn run_connection(sh: Arc<Shared>, socket: WebSocket, ticket: String) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = unbounded_channel::<ConnCmd>();
    let (idx, first, over_cap, ping_every, close_delay) = {
        let mut st = sh.lock();
        let idx = st.conns.len();
        let live = st.live_conn_indices().len();
        let over_cap = live >= st.cfg.max_connections;
        st.conns.push(ConnectionInfo {
            idx,
            ticket,
            opened_at: Instant::now(),
            closed_at: None,
            state: if over_cap {
                ConnState::Closing
            } else {
                ConnState::Open
            },
            over_cap,
            pings_received: 0,
            pongs_received: 0,
            closed_by: None,
        });
        st.conn_tx.insert(idx, tx);
        let first = if over_cap {
            disconnect_frame("too_many_websockets", idx, live)
        } else {
            json!({
                "type": "hello",
                "num_connections": live + 1,
                "debug_info": {
                    "host": host(idx),
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": APP_ID},
            })
            .to_string()
        };
        st.frames_sent.push(Frame {
            connection: idx,
            at: Instant::now(),
            text: first.clone(),
        });
        st.log(|| format!("conn {idx} opened (over_cap={over_cap})"));
        (
            idx,
            first,
            over_cap,
            st.cfg.ping_interval,
            st.cfg.disconnect_close_delay,
        )
    };
    sh.bump();
    let mut closed_by = "server";
    let mut close_at: Option<tokio::time::Instant> = None;
    if sink.send(WsMessage::Text(first.into())).await.is_err() {
        closed_by = "client";
    } else if over_cap {
        close_at = Some(tokio::time::Instant::now() + close_delay);
    }
    let mut ping = ping_every.map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
    let mut silent = false;
    if closed_by != "client" {
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(ConnCmd::Frame(text)) => {
                        if !silent && sink.send(WsMessage::Text(text.into())).await.is_err() {
                            closed_by = "client";
                            break;
                        }
                    }
                    Some(ConnCmd::Disconnect { reason, close_after }) => {
                        if !silent {
                            let num = sh.lock().live_conn_indices().len();
                            let f = disconnect_frame(&reason, idx, num);
                            sh.lock().frames_sent.push(Frame { connection: idx, at: Instant::now(), text: f.clone() });
                            if sink.send(WsMessage::Text(f.into())).await.is_err() {
                                closed_by = "client";
                                break;
                            }
                        }
                        if let Some(d) = close_after {
                            close_at = Some(tokio::time::Instant::now() + d);
                        }
                    }
                    Some(ConnCmd::Close) => {
                        let _ = sink.send(WsMessage::Close(Some(CloseFrame { code: 1001, reason: "going away".into() }))).await;
                        break;
                    }
                    Some(ConnCmd::Drop) => {
                        closed_by = "drop";
                        break;
                    }
                    Some(ConnCmd::Silent) => silent = true,
                    None => break,
                },
                msg = stream.next(), if !silent => match msg {
                    Some(Ok(WsMessage::Text(t))) => {
                        on_client_text(&sh, idx, t.as_str());
                    }
                    Some(Ok(WsMessage::Ping(_))) => {
                        if let Some(c) = sh.lock().conn_mut(idx) { c.pings_received += 1; }
                    }
                    Some(Ok(WsMessage::Pong(_))) => {
                        if let Some(c) = sh.lock().conn_mut(idx) { c.pongs_received += 1; }
                        sh.bump();
                    }
                    Some(Ok(WsMessage::Binary(_))) => {
                        sh.lock().violations.push(SocketViolation {
                            at: Instant::now(), connection: Some(idx), envelope_id: None,
                            reason: "binary frame sent over socket mode".into(),
                        });
                        sh.bump();
                    }
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => {
                        closed_by = "client";
                        break;
                    }
                },
                _ = async { ping.as_mut().expect("guarded").tick().await }, if ping.is_some() && !silent => {
                    if sink.send(WsMessage::Ping(b"fake-slack".to_vec().into())).await.is_err() {
                        closed_by = "client";
                        break;
                    }
                }
                _ = async { tokio::time::sleep_until(close_at.expect("guarded")).await }, if close_at.is_some() => {
                    let _ = sink.send(WsMessage::Close(Some(CloseFrame { code: 1001, reason: "disconnect".into() }))).await;
                    break;
                }
            }
        }
    }
    drop(sink);
    drop(stream);
    {
        let mut st = sh.lock();
        st.conn_tx.remove(&idx);
        if let Some(c) = st.conn_mut(idx) {
            c.state = ConnState::Closed;
            c.closed_at = Some(Instant::now());
            c.closed_by = Some(closed_by.to_string());
        }
        st.log(|| format!("conn {idx} closed by {closed_by}"));
    }
    sh.bump();
}

/// What a valid ack does.
enum AckEffect {
    Nothing,
    CloseView(String),
    ViewErrors(String, Value),
    UpdateView(String, Value),
    PushView(String, Value),
    ClearStack(String),
    CommandResponse(CommandResponse),
}

fn is_bare(p: Option<&Value>) -> bool {
    match p {
        None => true,
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

fn validate_ack(
    st: &State,
    env_id: &str,
    rec: &EnvelopeRecord,
    p: Option<&Value>,
) -> Result<AckEffect, String> {
    let bare = is_bare(p);
    if !bare && !rec.accepts_response_payload {
        return Err(format!(
            "ack carries a payload but the envelope had accepts_response_payload=false ({})",
            rec.payload_type.as_deref().unwrap_or(rec.kind.as_str())
        ));
    }
    match (rec.kind, rec.payload_type.as_deref()) {
        (EnvelopeType::SlashCommands, _) => {
            if bare {
                return Ok(AckEffect::Nothing);
            }
            let o = p
                .and_then(Value::as_object)
                .ok_or("slash command response payload must be an object")?;
            for k in o.keys() {
                if !matches!(
                    k.as_str(),
                    "text" | "blocks" | "attachments" | "response_type" | "mrkdwn"
                ) {
                    return Err(format!(
                        "`{k}` is not allowed in a slash command response (text, blocks, attachments, response_type)"
                    ));
                }
            }
            let rt = match o.get("response_type") {
                None => "ephemeral".to_string(),
                Some(Value::String(s)) if s == "ephemeral" || s == "in_channel" => s.clone(),
                Some(other) => {
                    return Err(format!(
                        "response_type must be ephemeral or in_channel, got {other}"
                    ))
                }
            };
            let mut has_body = false;
            match o.get("text") {
                None => {}
                Some(Value::String(t)) => {
                    if t.chars().count() > MAX_POST_TEXT {
                        return Err("msg_too_long: response text exceeds 40000 characters".into());
                    }
                    has_body |= !t.is_empty();
                }
                Some(_) => return Err("text must be a string".into()),
            }
            if let Some(b) = o.get("blocks") {
                match blocks::check_message_blocks(b, "/blocks") {
                    Ok(()) => has_body |= b.as_array().is_some_and(|a| !a.is_empty()),
                    Err(blocks::BlocksProblem::Format(m)) => {
                        return Err(format!("invalid_blocks_format: {m}"))
                    }
                    Err(blocks::BlocksProblem::Invalid(ms)) => {
                        return Err(format!("invalid_blocks: {}", ms.join("; ")))
                    }
                }
            }
            if let Some(a) = o.get("attachments") {
                has_body |= a.as_array().is_some_and(|a| !a.is_empty());
            }
            if !has_body {
                return Err(
                    "no_text: slash command response has no text, blocks or attachments".into(),
                );
            }
            let (channel_id, user_id) = rec.command_ctx.clone().unwrap_or_default();
            Ok(AckEffect::CommandResponse(CommandResponse {
                envelope_id: env_id.to_string(),
                channel_id,
                user_id,
                response_type: rt,
                payload: p.cloned().unwrap_or(Value::Null),
            }))
        }
        (EnvelopeType::Interactive, Some("view_submission")) => {
            let view_id = rec.view_id.clone().unwrap_or_default();
            if bare {
                return Ok(AckEffect::CloseView(view_id));
            }
            let o = p
                .and_then(Value::as_object)
                .ok_or("view_submission response payload must be an object")?;
            let ra = o
                .get("response_action")
                .and_then(Value::as_str)
                .ok_or("a non-empty view_submission ack payload needs response_action")?;
            let allowed: &[&str] = match ra {
                "errors" => &["response_action", "errors"],
                "update" | "push" => &["response_action", "view"],
                "clear" => &["response_action"],
                other => {
                    return Err(format!(
                        "unknown response_action `{other}` (errors, update, push, clear)"
                    ))
                }
            };
            if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(format!("`{k}` is not allowed with response_action `{ra}`"));
            }
            match ra {
                "errors" => {
                    let errs = o
                        .get("errors")
                        .and_then(Value::as_object)
                        .filter(|m| !m.is_empty())
                        .ok_or("response_action errors needs a non-empty `errors` object")?;
                    let view = st.views.iter().find(|v| v.id == view_id);
                    let inputs = view
                        .map(|v| blocks::input_block_ids(&v.blocks))
                        .unwrap_or_default();
                    for (k, v) in errs {
                        if !inputs.contains(k) {
                            return Err(format!(
                                "errors key `{k}` is not the block_id of an input block in view {view_id} (inputs: {inputs:?})"
                            ));
                        }
                        if v.as_str().is_none_or(str::is_empty) {
                            return Err(format!(
                                "error message for `{k}` must be a non-empty string"
                            ));
                        }
                    }
                    Ok(AckEffect::ViewErrors(view_id, Value::Object(errs.clone())))
                }
                "update" | "push" => {
                    let v = o.get("view").ok_or("response_action needs a `view`")?;
                    let errs = blocks::check_modal(v, "/view");
                    if !errs.is_empty() {
                        return Err(format!("invalid view: {}", errs.join("; ")));
                    }
                    if ra == "push" {
                        let depth = st
                            .stack_of(&view_id)
                            .map(|s| st.stacks[s].len())
                            .unwrap_or(0);
                        if depth >= MAX_VIEW_STACK {
                            return Err(
                                "push_limit_reached: modal stack already holds 3 views".into()
                            );
                        }
                        Ok(AckEffect::PushView(view_id, v.clone()))
                    } else {
                        Ok(AckEffect::UpdateView(view_id, v.clone()))
                    }
                }
                _ => Ok(AckEffect::ClearStack(view_id)),
            }
        }
        (EnvelopeType::Interactive, Some("block_suggestion")) => {
            if bare {
                return Ok(AckEffect::Nothing);
            }
            let o = p
                .and_then(Value::as_object)
                .ok_or("options payload must be an object")?;
            if o.get("options").is_some_and(Value::is_array)
                || o.get("option_groups").is_some_and(Value::is_array)
            {
                Ok(AckEffect::Nothing)
            } else {
                Err("block_suggestion response needs `options` or `option_groups`".into())
            }
        }
        (kind, pt) => {
            if bare {
                Ok(AckEffect::Nothing)
            } else {
                Err(format!(
                    "{} envelopes must be acked without a payload (response_action is only for view_submission)",
                    pt.unwrap_or(kind.as_str())
                ))
            }
        }
    }
}

fn on_client_text(sh: &Arc<Shared>, idx: usize, text: &str) {
    let now = Instant::now();
    {
        let mut st = sh.lock();
        st.frames_received.push(Frame {
            connection: idx,
            at: now,
            text: text.to_string(),
        });
        st.log(|| format!("conn {idx} <- {text}"));
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                st.violations.push(SocketViolation {
                    at: now,
                    connection: Some(idx),
                    envelope_id: None,
                    reason: "non-JSON text frame".into(),
                });
                drop(st);
                sh.bump();
                return;
            }
        };
        let Some(env_id) = v
            .get("envelope_id")
            .and_then(Value::as_str)
            .map(String::from)
        else {
            st.violations.push(SocketViolation {
                at: now,
                connection: Some(idx),
                envelope_id: None,
                reason: format!("frame without envelope_id: {text}"),
            });
            drop(st);
            sh.bump();
            return;
        };
        let payload = v.get("payload").filter(|p| !p.is_null()).cloned();
        match st.envelopes.get(&env_id).cloned() {
            None => {
                st.unknown_acks.push(Ack {
                    envelope_id: env_id,
                    connection: idx,
                    payload,
                    latency: Duration::ZERO,
                    at: now,
                    raw: text.to_string(),
                    violation: None,
                    late: false,
                });
            }
            Some(rec) => {
                let latency = now.duration_since(rec.sent_at);
                let late = rec.timed_out || latency > st.cfg.ack_deadline;
                let already = rec.acked;
                let res = validate_ack(&st, &env_id, &rec, payload.as_ref());
                let violation = res.as_ref().err().cloned();
                if let Some(r) = &violation {
                    st.violations.push(SocketViolation {
                        at: now,
                        connection: Some(idx),
                        envelope_id: Some(env_id.clone()),
                        reason: r.clone(),
                    });
                }
                st.acks.push(Ack {
                    envelope_id: env_id.clone(),
                    connection: idx,
                    payload,
                    latency,
                    at: now,
                    raw: text.to_string(),
                    violation,
                    late,
                });
                if let Some(r) = st.envelopes.get_mut(&env_id) {
                    r.acked = true;
                }
                if let (Ok(effect), false, false) = (res, already, late) {
                    apply_effect(&mut st, effect);
                }
            }
        }
    }
    sh.bump();
}

fn apply_effect(st: &mut State, effect: AckEffect) {
    match effect {
        AckEffect::Nothing => {}
        AckEffect::CloseView(id) => st.pop_view(&id),
        AckEffect::ViewErrors(id, errs) => {
            if let Some(v) = st.view_mut(&id) {
                v.errors = Some(errs);
            }
        }
        AckEffect::UpdateView(id, view) => {
            methods::replace_view(st, &id, view);
        }
        AckEffect::PushView(id, view) => {
            if st.stack_of(&id).is_some() {
                methods::push_view(st, &id, view, "response_action:push");
            }
        }
        AckEffect::ClearStack(id) => {
            if let Some(si) = st.stack_of(&id) {
                st.close_stack(si);
            }
        }
        AckEffect::CommandResponse(r) => st.command_responses.push(r),
    }
}

/// Pick connections for `target`.
fn pick(st: &mut State, target: Target) -> Result<Vec<usize>, FakeError> {
    let live = st.live_conn_indices();
    if live.is_empty() {
        return Err(FakeError::NoConnection);
    }
    let next = |st: &mut State| {
        let c = live[st.rr % live.len()];
        st.rr += 1;
        c
    };
    match target {
        Target::Any => Ok(vec![next(st)]),
        Target::Connection(i) => {
            if live.contains(&i) {
                Ok(vec![i])
            } else {
                Err(FakeError::NotFound(format!("live connection {i}")))
            }
        }
        Target::TwoConnections => {
            if live.len() < 2 {
                return Err(FakeError::Invalid(
                    "TwoConnections needs at least two live connections".into(),
                ));
            }
            let a = next(st);
            let b = next(st);
            Ok(vec![a, b])
        }
        Target::TwiceOnOne => {
            let a = next(st);
            Ok(vec![a, a])
        }
    }
}

/// Extra bookkeeping for an envelope.
#[derive(Default)]
pub(crate) struct EnvelopeMeta {
    pub trigger_id: Option<String>,
    pub event_id: Option<String>,
    pub view_id: Option<String>,
    pub command_ctx: Option<(String, String)>,
    pub retry_attempt: u32,
    pub retry_reason: String,
}

/// Write an envelope to the chosen connection(s) and record it. Caller spawns the ack watch.
pub(crate) fn deliver(
    st: &mut State,
    kind: EnvelopeType,
    payload: Value,
    accepts_response_payload: bool,
    target: Target,
    meta: EnvelopeMeta,
) -> Result<Delivery, FakeError> {
    let conns = pick(st, target)?;
    let envelope_id = st.new_envelope_id();
    let mut env = json!({
        "envelope_id": envelope_id,
        "type": kind.as_str(),
        "payload": payload,
        "accepts_response_payload": accepts_response_payload,
    });
    if kind == EnvelopeType::EventsApi {
        env["retry_attempt"] = json!(meta.retry_attempt);
        env["retry_reason"] = json!(meta.retry_reason);
    }
    let text = env.to_string();
    let now = Instant::now();
    for c in &conns {
        if let Some(tx) = st.conn_tx.get(c) {
            let _ = tx.send(ConnCmd::Frame(text.clone()));
        }
        st.frames_sent.push(Frame {
            connection: *c,
            at: now,
            text: text.clone(),
        });
    }
    st.log(|| format!("-> {conns:?} {text}"));
    let payload_type = payload
        .get("type")
        .and_then(Value::as_str)
        .map(String::from);
    st.envelopes.insert(
        envelope_id.clone(),
        EnvelopeRecord {
            kind,
            payload_type,
            accepts_response_payload,
            sent_at: now,
            acked: false,
            timed_out: false,
            view_id: meta.view_id,
            retry_attempt: meta.retry_attempt,
            payload: payload.clone(),
            command_ctx: meta.command_ctx,
        },
    );
    let d = Delivery {
        envelope_id,
        kind,
        trigger_id: meta.trigger_id,
        event_id: meta.event_id,
        connections: conns,
        payload,
        retry_attempt: meta.retry_attempt,
        sent_at: now,
    };
    st.deliveries.push(d.clone());
    Ok(d)
}

/// After the ack deadline: record a timeout and, for events_api, redeliver.
pub(crate) fn spawn_ack_watch(sh: Arc<Shared>, envelope_id: String) {
    tokio::spawn(async move {
        let deadline = sh.lock().cfg.ack_deadline;
        tokio::time::sleep(deadline).await;
        let redelivered = {
            let mut st = sh.lock();
            let Some(rec) = st.envelopes.get_mut(&envelope_id) else {
                return;
            };
            if rec.acked {
                return;
            }
            rec.timed_out = true;
            let rec = rec.clone();
            let retry = rec.kind == EnvelopeType::EventsApi
                && st.cfg.redeliver_events_on_timeout
                && rec.retry_attempt < st.cfg.max_event_retries;
            let mut new_id = None;
            if retry {
                let event_id = rec
                    .payload
                    .get("event_id")
                    .and_then(Value::as_str)
                    .map(String::from);
                if let Ok(d) = deliver(
                    &mut st,
                    EnvelopeType::EventsApi,
                    rec.payload.clone(),
                    false,
                    Target::Any,
                    EnvelopeMeta {
                        event_id,
                        retry_attempt: rec.retry_attempt + 1,
                        retry_reason: "timeout".into(),
                        ..Default::default()
                    },
                ) {
                    new_id = Some(d.envelope_id);
                }
            }
            st.ack_timeouts.push(AckTimeout {
                envelope_id: envelope_id.clone(),
                kind: rec.kind,
                at: Instant::now(),
                redelivered: new_id.is_some(),
            });
            st.log(|| format!("ack timeout for {envelope_id}"));
            new_id
        };
        sh.bump();
        if let Some(id) = redelivered {
            spawn_ack_watch(sh, id);
        }
    });
}
