//! The Web API endpoint `/api/{method}`: transport rules (verb, content type, where the token
//! may be), token type, scopes, rate limits, fault injection and the call log.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::methods::{self, ApiError, Args};
use super::model::*;
use super::ratelimit;
use super::spec::{self, TokenReq};
use super::state::State;
use super::Shared;

/// Error code for a verb the fake refuses although real Slack might take it (GET on a write
/// method, PUT, …). Deliberately not a real Slack code so a test failure points here.
pub const FAKE_VERB_REFUSED: &str = "fake_refuses_http_verb_for_this_method";

/// JSON-encoded arguments that are parsed into JSON in the call log and before dispatch.
const JSON_ARGS: &[&str] = &["view", "blocks", "attachments", "metadata"];

struct Parsed {
    args: Map<String, Value>,
    token: Option<String>,
    pre_error: Option<ApiError>,
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v.strip_prefix("Bearer ")?.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn form_pairs(s: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in form_urlencoded::parse(s.as_bytes()) {
        m.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    m
}

fn parse(
    method: &str,
    verb: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Bytes,
) -> Parsed {
    let spec = spec::lookup(method);
    let header_token = bearer(headers);
    let mut out = Parsed {
        args: Map::new(),
        token: header_token.clone(),
        pre_error: None,
    };
    // Query-string arguments are merged (body wins); a token in the query string is ignored.
    let mut query_args = query.map(form_pairs).unwrap_or_default();
    query_args.remove("token");
    if verb == Method::POST {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let mut args = Map::new();
        match ct {
            None if body.is_empty() => {}
            None => out.pre_error = Some(ApiError::new("missing_post_type")),
            Some(ct) => {
                let mut parts = ct.split(';').map(str::trim);
                let media = parts.next().unwrap_or("");
                let charset = parts.find_map(|p| p.strip_prefix("charset="));
                if let Some(cs) = charset {
                    let cs = cs.trim_matches('"');
                    if !matches!(cs, "utf-8" | "utf8" | "iso-8859-1") {
                        out.pre_error = Some(ApiError::new("invalid_charset"));
                    }
                }
                match media {
                    "application/json" => {
                        if !body.is_empty() {
                            match serde_json::from_slice::<Value>(body) {
                                Ok(Value::Object(m)) => args = m,
                                _ => out.pre_error = Some(ApiError::new("invalid_json")),
                            }
                        }
                        // JSON bodies must carry the token in the Authorization header.
                        args.remove("token");
                    }
                    "application/x-www-form-urlencoded" => match std::str::from_utf8(body) {
                        Ok(s) => {
                            args = form_pairs(s);
                            let form_token = args.remove("token").and_then(|v| match v {
                                Value::String(s) if !s.is_empty() => Some(s),
                                _ => None,
                            });
                            // apps.connections.open: "Remember to send the token in the
                            // Authorization header, not as a parameter."
                            if out.token.is_none() && method != "apps.connections.open" {
                                out.token = form_token;
                            }
                        }
                        Err(_) => out.pre_error = Some(ApiError::new("invalid_form_data")),
                    },
                    _ => out.pre_error = Some(ApiError::new("invalid_post_type")),
                }
            }
        }
        for (k, v) in args {
            query_args.insert(k, v);
        }
        out.args = query_args;
    } else {
        out.args = query_args;
        if method == "apps.connections.open" {
            out.pre_error = Some(ApiError::new("insecure_request"));
        } else if !(verb == Method::GET && spec.is_some_and(|s| s.get_ok)) {
            out.pre_error = Some(ApiError::new(FAKE_VERB_REFUSED));
        }
    }
    for k in JSON_ARGS {
        if let Some(Value::String(s)) = out.args.get(*k) {
            if let Ok(v) = serde_json::from_str::<Value>(s) {
                out.args.insert((*k).to_string(), v);
            }
        }
    }
    out
}

fn classify(st: &State, token: Option<&str>) -> TokenKind {
    match token {
        None => TokenKind::None,
        Some(t) if t == st.cfg.bot_token => TokenKind::Bot,
        Some(t) if t == st.cfg.app_token => TokenKind::App,
        Some(_) => TokenKind::Unknown,
    }
}

struct Outcome {
    status: u16,
    body: Value,
    retry_after: Option<u64>,
    scopes_header: Option<(String, String)>,
}

fn answer(body: Value) -> Outcome {
    Outcome {
        status: 200,
        body,
        retry_after: None,
        scopes_header: None,
    }
}

fn process(
    st: &mut State,
    method: &str,
    parsed: &Parsed,
    kind: TokenKind,
    rate_key: Option<&str>,
    now: Instant,
) -> Outcome {
    let Some(spec) = spec::lookup(method) else {
        return answer(
            ApiError::new("unknown_method")
                .with("req_method", json!(method))
                .body(),
        );
    };
    if let Some(err) = &parsed.pre_error {
        return answer(err.body());
    }
    let auth_err = match (spec.token, kind) {
        (_, TokenKind::None) => Some("not_authed"),
        (_, TokenKind::Unknown) => Some("invalid_auth"),
        (TokenReq::App, TokenKind::Bot) | (TokenReq::Bot, TokenKind::App) => {
            Some("not_allowed_token_type")
        }
        _ => None,
    };
    if let Some(code) = auth_err {
        return answer(ApiError::new(code).body());
    }
    let scopes_header =
        (kind == TokenKind::Bot).then(|| (st.scopes.join(","), spec.scopes.join(",")));
    if kind == TokenKind::Bot
        && !spec.scopes.is_empty()
        && !spec.scopes.iter().any(|s| st.has_scope(s))
    {
        let mut o = answer(methods::missing_scope(st, spec.scopes[0]).body());
        o.scopes_header = scopes_header;
        return o;
    }
    if let Some(key) = rate_key {
        if let Err(secs) = st.rate.admit(key, spec.limit, now) {
            st.rate_limit_events.push(RateLimitEvent {
                method: method.to_string(),
                key: key.to_string(),
                at: now,
                retry_after_secs: secs,
                injected: false,
            });
            return Outcome {
                status: 429,
                body: json!({"ok": false, "error": "ratelimited"}),
                retry_after: Some(secs),
                scopes_header,
            };
        }
    }
    let body = match methods::dispatch(st, method, &Args(&parsed.args), now) {
        Ok(v) => {
            let mut m = Map::new();
            m.insert("ok".into(), Value::Bool(true));
            if let Value::Object(o) = v {
                m.extend(o);
            }
            Value::Object(m)
        }
        Err(e) => e.body(),
    };
    Outcome {
        status: 200,
        body,
        retry_after: None,
        scopes_header,
    }
}

fn json_response(o: &Outcome) -> Response {
    let mut resp = (
        StatusCode::from_u16(o.status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        o.body.to_string(),
    )
        .into_response();
    if let Some(s) = o.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    if let Some((granted, accepted)) = &o.scopes_header {
        if let Ok(v) = HeaderValue::from_str(granted) {
            resp.headers_mut().insert("x-oauth-scopes", v);
        }
        if let Ok(v) = HeaderValue::from_str(accepted) {
            resp.headers_mut().insert("x-accepted-oauth-scopes", v);
        }
    }
    resp
}

/// `ANY /api/{method}`.
pub(crate) async fn api_handler(
    AxState(sh): AxState<Arc<Shared>>,
    Path(method): Path<String>,
    verb: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let latency = sh.lock().latency;
    crate::sleep_exactly(latency).await;
    let parsed = parse(&method, &verb, &headers, query.as_deref(), &body);
    let spec = spec::lookup(&method);
    let channel_arg = parsed
        .args
        .get("channel")
        .and_then(Value::as_str)
        .map(String::from);
    let rate_key = spec.map(|s| ratelimit::key(&method, s.limit, channel_arg.as_deref()));
    let args_json = Value::Object(parsed.args.clone());
    let (fault, kind) = {
        let mut st = sh.lock();
        let kind = classify(&st, parsed.token.as_deref());
        if let Some(key) = &rate_key {
            if let Some(allowed_at) = st.rate.early(key, arrived) {
                st.early_retries.push(EarlyRetry {
                    method: method.clone(),
                    key: key.clone(),
                    at: arrived,
                    allowed_at,
                });
            }
        }
        let fault = match st.faults.get_mut(&method).and_then(|q| q.pop_front()) {
            Some(f) => Some(f),
            None => st.chaos.as_ref().and_then(|c| c.draw_slack(&method)),
        };
        (fault, kind)
    };
    let record = |status: u16, response: Value, retry_after: Option<u64>, fault: Option<Fault>| {
        let mut st = sh.lock();
        st.log(|| format!("{method} {args_json} -> {status} {response}"));
        st.calls.push(ApiCall {
            method: method.clone(),
            http_method: verb.to_string(),
            token_kind: kind,
            args: args_json.clone(),
            at: arrived,
            applied_at: Instant::now(),
            status,
            response,
            retry_after,
            fault,
        });
        drop(st);
        sh.bump();
    };
    match &fault {
        Some(Fault::Status(code)) => {
            record(*code, Value::Null, None, fault.clone());
            let sc = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (sc, format!("fake slack: injected HTTP {code}")).into_response();
        }
        Some(Fault::RateLimited { retry_after_secs }) => {
            let secs = *retry_after_secs;
            {
                let mut st = sh.lock();
                let key = rate_key.clone().unwrap_or_else(|| method.clone());
                st.rate.promise(&key, arrived, secs);
                st.rate_limit_events.push(RateLimitEvent {
                    method: method.clone(),
                    key,
                    at: arrived,
                    retry_after_secs: secs,
                    injected: true,
                });
            }
            let o = Outcome {
                status: 429,
                body: json!({"ok": false, "error": "ratelimited"}),
                retry_after: Some(secs),
                scopes_header: None,
            };
            record(429, o.body.clone(), Some(secs), fault.clone());
            return json_response(&o);
        }
        Some(Fault::Error(code)) => {
            let o = answer(ApiError::new(code).body());
            record(200, o.body.clone(), None, fault.clone());
            return json_response(&o);
        }
        Some(Fault::Hang) => {
            record(0, Value::Null, None, fault.clone());
            return std::future::pending().await;
        }
        Some(Fault::Reset) => {
            record(0, Value::Null, None, fault.clone());
            return crate::pagerduty::faults::dropped_connection();
        }
        _ => {}
    }
    let outcome = {
        let mut st = sh.lock();
        process(
            &mut st,
            &method,
            &parsed,
            kind,
            rate_key.as_deref(),
            Instant::now(),
        )
    };
    match &fault {
        Some(Fault::ApplyThenHang) => {
            record(0, outcome.body.clone(), outcome.retry_after, fault.clone());
            return std::future::pending().await;
        }
        Some(Fault::ApplyThenReset) => {
            record(0, outcome.body.clone(), outcome.retry_after, fault.clone());
            return crate::pagerduty::faults::dropped_connection();
        }
        Some(Fault::ApplyThenStatus(code)) => {
            let code = *code;
            record(
                code,
                outcome.body.clone(),
                outcome.retry_after,
                fault.clone(),
            );
            let sc = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (sc, format!("fake slack: injected HTTP {code} after acting")).into_response();
        }
        Some(Fault::Delay(d)) => {
            record(
                outcome.status,
                outcome.body.clone(),
                outcome.retry_after,
                fault.clone(),
            );
            tokio::time::sleep(*d).await;
        }
        _ => record(
            outcome.status,
            outcome.body.clone(),
            outcome.retry_after,
            None,
        ),
    }
    json_response(&outcome)
}

/// `POST /response/{team}/{id}`: a response_url the fake handed out.
pub(crate) async fn response_url_handler(
    AxState(sh): AxState<Arc<Shared>>,
    Path((_team, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let violation = {
        let st = sh.lock();
        if !st.response_urls.contains_key(&id) {
            Some("unknown response_url".to_string())
        } else {
            match &parsed {
                Some(Value::Object(o)) => {
                    let bad_key = o.keys().find(|k| {
                        !matches!(
                            k.as_str(),
                            "text"
                                | "blocks"
                                | "attachments"
                                | "response_type"
                                | "replace_original"
                                | "delete_original"
                                | "thread_ts"
                                | "mrkdwn"
                                | "metadata"
                        )
                    });
                    if let Some(k) = bad_key {
                        Some(format!("`{k}` is not allowed in a response_url message"))
                    } else if let Some(b) = o.get("blocks") {
                        super::blocks::check_message_blocks(b, "/blocks")
                            .err()
                            .map(|p| format!("invalid_blocks: {p:?}"))
                    } else if o.get("text").is_none()
                        && o.get("attachments").is_none()
                        && o.get("delete_original") != Some(&Value::Bool(true))
                    {
                        Some("no_text".to_string())
                    } else {
                        None
                    }
                }
                _ => Some("response_url body must be a JSON object".to_string()),
            }
        }
    };
    {
        let mut st = sh.lock();
        st.response_posts.push(ResponseUrlPost {
            id,
            body: parsed.unwrap_or(Value::Null),
            at: Instant::now(),
            violation: violation.clone(),
        });
    }
    sh.bump();
    match violation {
        None => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"ok":true}"#,
        )
            .into_response(),
        Some(v) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"ok": false, "error": v}).to_string(),
        )
            .into_response(),
    }
}
