//! Fake PagerDuty: Events API v2 and the slice of REST API v2 incd uses, refusing what the real
//! service refuses (platform-contracts §4 and §8).
//!
//! Driver API:
//! - [`FakePagerDuty::start`]`().await` binds `127.0.0.1:0`; [`FakePagerDuty::url`] is the base for
//!   both `PAGERDUTY_EVENTS_URL` and `PAGERDUTY_API_URL` (e.g. `http://127.0.0.1:PORT`).
//! - Credentials it accepts: [`FakePagerDuty::routing_key`] (any other 32-character key is accepted
//!   too and recorded in the event), [`FakePagerDuty::api_token`], [`FakePagerDuty::service_id`],
//!   [`FakePagerDuty::from_email`], [`FakePagerDuty::escalation_policy_id`]; more with
//!   [`FakePagerDuty::add_user`] / [`FakePagerDuty::add_service`].
//! - State: [`FakePagerDuty::events`] (every accepted event body), [`FakePagerDuty::alerts`]
//!   (dedup_key → [`Alert`]: status, trigger count, times opened), [`FakePagerDuty::incidents`]
//!   (REST), [`FakePagerDuty::rejected`] (every refusal with its reason), [`FakePagerDuty::calls`]
//!   (every request with time and status).
//! - Faults: [`FakePagerDuty::set_latency`], [`FakePagerDuty::push_fault`] (FIFO of [`Fault`],
//!   one consumed per request: status, 429 with `Retry-After`, hang, delay, lose the response,
//!   reset, performed-then-reset, performed-then-5xx), [`FakePagerDuty::set_chaos`] (a seeded
//!   random schedule, [`crate::chaos`]),
//!   [`FakePagerDuty::set_down`] (every request 503), [`FakePagerDuty::clear_faults`],
//!   [`FakePagerDuty::early_retries`] (requests that came back before a `Retry-After` this fake
//!   gave had elapsed).
//!
//! Events API (`POST /v2/enqueue`): 400 `{"status":"invalid event","message":"Event object is
//! invalid","errors":[…]}` for a body over 512 KB or not JSON, `routing_key` ≠ 32 characters,
//! missing/invalid `event_action`, `dedup_key` > 255, ack/resolve without `dedup_key`, trigger
//! without `payload`/`summary`/`source`/`severity`, severity outside the enum, summary > 1024,
//! links without `href`, images without an https `src`. Otherwise 202 with the `dedup_key`
//! (generated when absent). A trigger on an open key is deduplicated into the same alert; resolve
//! closes it; a trigger after resolve opens a new one.
//!
//! REST API: every call needs `Authorization: Token token=<token>` (401 otherwise) and `Accept:
//! application/vnd.pagerduty+json;version=2`; writes need `Content-Type: application/json` and a
//! `From` header naming a known user. `POST /incidents` checks `incident.type`, `title`,
//! `service{id,type:"service_reference"}`, `urgency` (high|low), references `{id,type}`, `body.type`,
//! assignments together with an escalation policy, and refuses a second open incident with the same
//! `incident_key` on a service (400, "Open incident with matching dedup key already exists on this
//! service"). `GET /incidents` filters by `incident_key`, `service_ids[]`, `statuses[]`;
//! `PUT /incidents/{id}` changes status (resolving a resolved incident: 400 "Incident Already
//! Resolved"); `GET /incidents/{id}`, `GET /services/{id}`. Errors use `{"error":{"message",
//! "code","errors"}}`.

pub mod faults;

pub use faults::{Call, EarlyRetry, Fault, Rejected};

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use faults::{json_response, Faults};

/// The routing key the fake hands out (32 characters).
pub const ROUTING_KEY: &str = "R0UT1NGKEYF4KEPAGERDUTY000000001";
/// REST API token it accepts.
pub const API_TOKEN: &str = "u+FAKEpagerdutyTOKEN";
/// Service on which REST incidents may be opened.
pub const SERVICE_ID: &str = "PFAKESV";
/// User email accepted in the `From` header.
pub const FROM_EMAIL: &str = "oncall@example.com";
/// Escalation policy it knows.
pub const ESCALATION_POLICY_ID: &str = "PFAKEEP";
/// Largest event accepted (PagerDuty: 512 KB).
pub const MAX_EVENT_BYTES: usize = 512_000;
/// Required `Accept` header of the REST API.
pub const REST_ACCEPT: &str = "application/vnd.pagerduty+json;version=2";

const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];
const CREATED_AT: &str = "2025-01-01T00:00:00Z";

/// State of an Events API alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Triggered,
    Acknowledged,
    Resolved,
}

/// One alert, keyed by `dedup_key`.
#[derive(Debug, Clone)]
pub struct Alert {
    pub dedup_key: String,
    pub status: AlertStatus,
    /// Trigger events received for this key (including deduplicated ones).
    pub trigger_count: u32,
    /// Times an alert was opened (each one pages someone): 1 for a deduplicated retry.
    pub opened: u32,
    pub routing_key: String,
    pub summary: String,
    pub severity: String,
    pub source: String,
    pub custom_details: Value,
    pub links: Vec<Value>,
}

/// One REST incident.
#[derive(Debug, Clone)]
pub struct Incident {
    pub id: String,
    pub number: u64,
    pub title: String,
    pub service_id: String,
    pub incident_key: Option<String>,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    pub urgency: String,
    pub details: Option<String>,
    pub escalation_policy_id: Option<String>,
    /// `From` of the create.
    pub created_by: String,
    /// `From` of the update that resolved it.
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
    pub html_url: String,
}

impl Incident {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "type": "incident",
            "summary": format!("[#{}] {}", self.number, self.title),
            "self": format!("https://api.pagerduty.com/incidents/{}", self.id),
            "html_url": self.html_url,
            "incident_number": self.number,
            "title": self.title,
            "created_at": CREATED_AT,
            "updated_at": CREATED_AT,
            "status": self.status,
            "incident_key": self.incident_key,
            "service": {
                "id": self.service_id,
                "type": "service_reference",
                "self": format!("https://api.pagerduty.com/services/{}", self.service_id),
            },
            "assignments": [],
            "urgency": self.urgency,
        });
        if let Some(ep) = &self.escalation_policy_id {
            v["escalation_policy"] = json!({"id": ep, "type": "escalation_policy_reference"});
        }
        v
    }

    fn is_open(&self) -> bool {
        self.status != "resolved"
    }
}

#[derive(Default)]
struct PdState {
    events: Vec<Value>,
    alerts: BTreeMap<String, Alert>,
    incidents: Vec<Incident>,
    services: BTreeMap<String, String>,
    users: BTreeSet<String>,
    next_key: u64,
}

struct Inner {
    state: Mutex<PdState>,
    faults: Arc<Faults>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, PdState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The fake. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct FakePagerDuty {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl FakePagerDuty {
    /// Start on a free local port.
    pub async fn start() -> FakePagerDuty {
        let faults = Faults::new(fault_body);
        let mut state = PdState::default();
        state
            .services
            .insert(SERVICE_ID.into(), "incd test service".into());
        state.users.insert(FROM_EMAIL.into());
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            faults: faults.clone(),
        });
        let router = Router::new()
            .route("/v2/enqueue", post(enqueue))
            .route("/incidents", post(create_incident).get(list_incidents))
            .route("/incidents/{id}", get(show_incident).put(update_incident))
            .route("/services/{id}", get(show_service))
            .fallback(not_found)
            .with_state(inner.clone())
            .layer(axum::middleware::from_fn_with_state(faults, faults::layer))
            .layer(DefaultBodyLimit::max(8 * 1024 * 1024));
        let addr = faults::serve(router).await;
        FakePagerDuty { inner, addr }
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn routing_key(&self) -> &'static str {
        ROUTING_KEY
    }
    pub fn api_token(&self) -> &'static str {
        API_TOKEN
    }
    pub fn service_id(&self) -> &'static str {
        SERVICE_ID
    }
    pub fn from_email(&self) -> &'static str {
        FROM_EMAIL
    }
    pub fn escalation_policy_id(&self) -> &'static str {
        ESCALATION_POLICY_ID
    }
    /// Allow another `From` email.
    pub fn add_user(&self, email: &str) {
        self.inner.lock().users.insert(email.to_ascii_lowercase());
    }
    /// Add another service incidents may be opened on.
    pub fn add_service(&self, id: &str, name: &str) {
        self.inner.lock().services.insert(id.into(), name.into());
    }

    /// Every accepted event, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.inner.lock().events.clone()
    }
    /// Alerts by dedup key.
    pub fn alerts(&self) -> BTreeMap<String, Alert> {
        self.inner.lock().alerts.clone()
    }
    /// REST incidents, in creation order.
    pub fn incidents(&self) -> Vec<Incident> {
        self.inner.lock().incidents.clone()
    }
    /// Which fault mix [`crate::chaos::Chaos`] draws from for this fake.
    const CHAOS_SERVICE: crate::chaos::Service = crate::chaos::Service::PagerDuty;
    crate::pagerduty::faults::fault_controls!();
}

/// Error body for injected statuses, in the shape of the API the path belongs to.
fn fault_body(status: u16, path: &str) -> Value {
    if path.starts_with("/v2/") {
        if status == 429 {
            json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly.  Please retry later."})
        } else {
            json!({"status": "error", "message": reason_phrase(status)})
        }
    } else if status == 429 {
        json!({"error": {"message": "Rate Limit Exceeded", "code": 2020}})
    } else {
        json!({"error": {"message": reason_phrase(status), "code": 2000 + u32::from(status % 100)}})
    }
}

fn reason_phrase(status: u16) -> String {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
        .to_string()
}

fn invalid_event(inner: &Inner, path: &str, errors: Vec<String>) -> Response {
    inner
        .faults
        .reject("POST", path, 400, "invalid event", &errors.join("; "));
    json_response(
        400,
        json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}),
    )
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// Validate an Events API v2 event; every problem found.
fn event_errors(event: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(obj) = event.as_object() else {
        return vec!["Event object must be a JSON object".into()];
    };
    match obj.get("routing_key") {
        None | Some(Value::Null) => errors.push("'routing_key' is missing or blank".into()),
        Some(Value::String(k)) if k.chars().count() == 32 => {}
        Some(Value::String(k)) if k.trim().is_empty() => {
            errors.push("'routing_key' is missing or blank".into())
        }
        Some(_) => {
            errors.push("Length of 'routing_key' is incorrect (should be 32 characters)".into())
        }
    }
    let action = match obj.get("event_action") {
        None | Some(Value::Null) => {
            errors.push("'event_action' is missing or blank".into());
            None
        }
        Some(Value::String(a)) if ["trigger", "acknowledge", "resolve"].contains(&a.as_str()) => {
            Some(a.as_str())
        }
        Some(Value::String(a)) if a.trim().is_empty() => {
            errors.push("'event_action' is missing or blank".into());
            None
        }
        Some(_) => {
            errors.push(
                "'event_action' is invalid (must be one of trigger, acknowledge, resolve)".into(),
            );
            None
        }
    };
    match obj.get("dedup_key") {
        None | Some(Value::Null) => {
            if matches!(action, Some("acknowledge" | "resolve")) {
                errors.push("'dedup_key' is missing or blank".into());
            }
        }
        Some(Value::String(k)) => {
            if k.chars().count() > 255 {
                errors.push("Length of 'dedup_key' is too long (maximum is 255 characters)".into());
            } else if k.is_empty() && matches!(action, Some("acknowledge" | "resolve")) {
                errors.push("'dedup_key' is missing or blank".into());
            }
        }
        Some(_) => errors.push("'dedup_key' must be a string".into()),
    }
    if action == Some("trigger") {
        match obj.get("payload") {
            Some(Value::Object(p)) => {
                let payload = Value::Object(p.clone());
                match p.get("summary") {
                    Some(Value::String(s)) if !s.trim().is_empty() => {
                        if s.chars().count() > 1024 {
                            errors.push("Length of 'payload.summary' is too long (maximum is 1024 characters)".into());
                        }
                    }
                    _ => errors.push("'payload.summary' is missing or blank".into()),
                }
                if str_field(&payload, "source").is_none() {
                    errors.push("'payload.source' is missing or blank".into());
                }
                match p.get("severity") {
                    Some(Value::String(s)) if SEVERITIES.contains(&s.as_str()) => {}
                    Some(Value::String(s)) if !s.trim().is_empty() => errors.push(
                        "'payload.severity' is invalid (must be one of critical, error, warning, info)".into(),
                    ),
                    _ => errors.push("'payload.severity' is missing or blank".into()),
                }
                if let Some(ts) = p.get("timestamp") {
                    let ok = ts.as_str().is_some_and(|t| {
                        let b = t.as_bytes();
                        b.len() >= 10 && b[4] == b'-' && b[7] == b'-'
                    });
                    if !ok {
                        errors.push("'payload.timestamp' is not a valid ISO 8601 date-time".into());
                    }
                }
                if let Some(cd) = p.get("custom_details") {
                    if !(cd.is_object() || cd.is_string() || cd.is_null()) {
                        errors.push("'payload.custom_details' must be an object".into());
                    }
                }
            }
            Some(_) => errors.push("'payload' must be an object".into()),
            None => errors.push("'payload' is missing or blank".into()),
        }
    }
    match obj.get("links") {
        None | Some(Value::Null) => {}
        Some(Value::Array(links)) => {
            for (i, l) in links.iter().enumerate() {
                if str_field(l, "href").is_none() {
                    errors.push(format!("'links[{i}].href' is missing or blank"));
                }
            }
        }
        Some(_) => errors.push("'links' must be an array".into()),
    }
    match obj.get("images") {
        None | Some(Value::Null) => {}
        Some(Value::Array(images)) => {
            for (i, img) in images.iter().enumerate() {
                match str_field(img, "src") {
                    Some(src) if src.starts_with("https://") => {}
                    Some(_) => errors.push(format!("'images[{i}].src' must be an https URL")),
                    None => errors.push(format!("'images[{i}].src' is missing or blank")),
                }
            }
        }
        Some(_) => errors.push("'images' must be an array".into()),
    }
    errors
}

async fn enqueue(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let path = "/v2/enqueue";
    if body.len() > MAX_EVENT_BYTES {
        return invalid_event(
            &inner,
            path,
            vec![format!(
                "Event object is too large ({} bytes; the limit is {MAX_EVENT_BYTES})",
                body.len()
            )],
        );
    }
    let event: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return invalid_event(
                &inner,
                path,
                vec!["Malformed JSON: body is not valid JSON".into()],
            )
        }
    };
    let errors = event_errors(&event);
    if !errors.is_empty() {
        return invalid_event(&inner, path, errors);
    }
    let action = event["event_action"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut s = inner.lock();
    let key = match str_field(&event, "dedup_key") {
        Some(k) => k.to_string(),
        None => {
            s.next_key += 1;
            format!("{:032x}", s.next_key)
        }
    };
    let routing_key = event["routing_key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match action.as_str() {
        "trigger" => {
            let p = &event["payload"];
            let alert = s.alerts.entry(key.clone()).or_insert_with(|| Alert {
                dedup_key: key.clone(),
                status: AlertStatus::Resolved,
                trigger_count: 0,
                opened: 0,
                routing_key: routing_key.clone(),
                summary: String::new(),
                severity: String::new(),
                source: String::new(),
                custom_details: Value::Null,
                links: Vec::new(),
            });
            alert.trigger_count += 1;
            if alert.status == AlertStatus::Resolved {
                // A new alert: this pages someone.
                alert.opened += 1;
                alert.status = AlertStatus::Triggered;
                alert.routing_key = routing_key;
                alert.summary = p["summary"].as_str().unwrap_or_default().to_string();
                alert.severity = p["severity"].as_str().unwrap_or_default().to_string();
                alert.source = p["source"].as_str().unwrap_or_default().to_string();
                alert.custom_details = p.get("custom_details").cloned().unwrap_or(Value::Null);
                alert.links = event
                    .get("links")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
            }
        }
        "acknowledge" => {
            if let Some(a) = s.alerts.get_mut(&key) {
                if a.status == AlertStatus::Triggered {
                    a.status = AlertStatus::Acknowledged;
                }
            }
        }
        _ => {
            if let Some(a) = s.alerts.get_mut(&key) {
                a.status = AlertStatus::Resolved;
            }
        }
    }
    s.events.push(event);
    json_response(
        202,
        json!({"status": "success", "message": "Event processed", "dedup_key": key}),
    )
}

/// A REST refusal in PagerDuty's shape, recorded.
fn rest_error(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    status: u16,
    code: u32,
    message: &str,
    errors: &[&str],
) -> Response {
    let reason = if errors.is_empty() {
        message.to_string()
    } else {
        format!("{message}: {}", errors.join("; "))
    };
    inner.faults.reject(
        method.as_str(),
        &uri.to_string(),
        status,
        &code.to_string(),
        &reason,
    );
    let mut err = json!({"message": message, "code": code});
    if !errors.is_empty() {
        err["errors"] = json!(errors);
    }
    json_response(status, json!({ "error": err }))
}

fn invalid_input(inner: &Inner, method: &Method, uri: &Uri, errors: &[&str]) -> Response {
    rest_error(
        inner,
        method,
        uri,
        400,
        2001,
        "Invalid Input Provided",
        errors,
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Authorization and versioning for every REST call; `From` and JSON for writes.
/// Returns the `From` email for writes.
fn rest_preflight(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    write: bool,
) -> Result<Option<String>, Box<Response>> {
    let expected = format!("Token token={API_TOKEN}");
    if header(headers, "authorization") != Some(expected.as_str()) {
        return Err(Box::new(rest_error(
            inner,
            method,
            uri,
            401,
            2006,
            "Authentication failed",
            &[],
        )));
    }
    let accept_ok = header(headers, "accept")
        .map(|a| a.replace(' ', "").contains(REST_ACCEPT))
        .unwrap_or(false);
    if !accept_ok {
        return Err(Box::new(invalid_input(
            inner,
            method,
            uri,
            &["The Accept header must be application/vnd.pagerduty+json;version=2"],
        )));
    }
    if !write {
        return Ok(None);
    }
    let json_ok = header(headers, "content-type")
        .map(|c| c.to_ascii_lowercase().starts_with("application/json"))
        .unwrap_or(false);
    if !json_ok {
        return Err(Box::new(invalid_input(
            inner,
            method,
            uri,
            &["Content-Type must be application/json"],
        )));
    }
    let Some(from) = header(headers, "from").filter(|f| !f.is_empty()) else {
        return Err(Box::new(rest_error(
            inner,
            method,
            uri,
            400,
            2011,
            "The action requires a 'from' header",
            &[],
        )));
    };
    if !inner.lock().users.contains(&from.to_ascii_lowercase()) {
        return Err(Box::new(invalid_input(
            inner,
            method,
            uri,
            &["Requester User Not Found"],
        )));
    }
    Ok(Some(from.to_string()))
}

fn reference_ok(v: &Value, ty: &str) -> bool {
    str_field(v, "id").is_some() && v.get("type").and_then(Value::as_str) == Some(ty)
}

async fn create_incident(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let from = match rest_preflight(&inner, &method, &uri, &headers, true) {
        Ok(f) => f.unwrap_or_default(),
        Err(r) => return *r,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return invalid_input(&inner, &method, &uri, &["Malformed JSON"]);
    };
    let Some(inc) = body.get("incident").filter(|i| i.is_object()) else {
        return invalid_input(&inner, &method, &uri, &["Incident is required"]);
    };
    let mut errors: Vec<String> = Vec::new();
    if inc.get("type").and_then(Value::as_str) != Some("incident") {
        errors.push("Incident type must be 'incident'".into());
    }
    let title = str_field(inc, "title").unwrap_or_default().to_string();
    if title.is_empty() {
        errors.push("Incident title is required".into());
    }
    let service = inc.get("service").cloned().unwrap_or(Value::Null);
    if !reference_ok(&service, "service_reference") {
        errors.push("Service must be a service_reference with an id".into());
    }
    let urgency = match inc.get("urgency") {
        None | Some(Value::Null) => "high".to_string(),
        Some(Value::String(u)) if u == "high" || u == "low" => u.clone(),
        Some(_) => {
            errors.push("Urgency must be one of high, low".into());
            String::new()
        }
    };
    if let Some(p) = inc.get("priority").filter(|p| !p.is_null()) {
        if !reference_ok(p, "priority_reference") {
            errors.push("Priority must be a priority_reference with an id".into());
        }
    }
    let ep = inc.get("escalation_policy").filter(|p| !p.is_null());
    if let Some(p) = ep {
        if !reference_ok(p, "escalation_policy_reference") {
            errors
                .push("Escalation policy must be an escalation_policy_reference with an id".into());
        } else if p["id"] != ESCALATION_POLICY_ID {
            errors.push("Escalation Policy Not Found".into());
        }
    }
    if ep.is_some() && inc.get("assignments").is_some_and(|a| !a.is_null()) {
        errors.push("Assignments cannot be specified if an escalation policy is given".into());
    }
    let details = match inc.get("body") {
        None | Some(Value::Null) => None,
        Some(b) => {
            if b.get("type").and_then(Value::as_str) != Some("incident_body") {
                errors.push("Incident body type must be 'incident_body'".into());
            }
            b.get("details").map(|d| match d {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        }
    };
    let key = match inc.get("incident_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if k.chars().count() <= 255 => Some(k.clone()),
        Some(_) => {
            errors.push("Incident key must be a string of at most 255 characters".into());
            None
        }
    };
    if !errors.is_empty() {
        let refs: Vec<&str> = errors.iter().map(String::as_str).collect();
        return invalid_input(&inner, &method, &uri, &refs);
    }
    let service_id = service["id"].as_str().unwrap_or_default().to_string();
    let mut s = inner.lock();
    if !s.services.contains_key(&service_id) {
        drop(s);
        return rest_error(
            &inner,
            &method,
            &uri,
            404,
            2100,
            "Not Found",
            &["Service Not Found"],
        );
    }
    if let Some(k) = &key {
        let dup = s.incidents.iter().any(|i| {
            i.is_open() && i.service_id == service_id && i.incident_key.as_deref() == Some(k)
        });
        if dup {
            drop(s);
            return invalid_input(
                &inner,
                &method,
                &uri,
                &["Open incident with matching dedup key already exists on this service"],
            );
        }
    }
    let number = s.incidents.len() as u64 + 1;
    let id = format!("PI{number:05}");
    let incident = Incident {
        html_url: format!("https://incd-fake.pagerduty.com/incidents/{id}"),
        id,
        number,
        title,
        service_id,
        incident_key: key,
        status: "triggered".into(),
        urgency,
        details,
        escalation_policy_id: ep.and_then(|p| p["id"].as_str()).map(String::from),
        created_by: from,
        resolved_by: None,
        resolution: None,
    };
    let out = json!({ "incident": incident.to_json() });
    s.incidents.push(incident);
    json_response(201, out)
}

async fn list_incidents(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(r) = rest_preflight(&inner, &method, &uri, &headers, false) {
        return *r;
    }
    let mut key = None;
    let mut services = Vec::new();
    let mut statuses = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "incident_key" => key = Some(v.into_owned()),
            "service_ids[]" => services.push(v.into_owned()),
            "statuses[]" => {
                if !["triggered", "acknowledged", "resolved"].contains(&v.as_ref()) {
                    return invalid_input(&inner, &method, &uri, &["Invalid status"]);
                }
                statuses.push(v.into_owned())
            }
            _ => {}
        }
    }
    let s = inner.lock();
    let found: Vec<Value> = s
        .incidents
        .iter()
        .filter(|i| key.is_none() || i.incident_key == key)
        .filter(|i| services.is_empty() || services.contains(&i.service_id))
        .filter(|i| statuses.is_empty() || statuses.contains(&i.status))
        .map(Incident::to_json)
        .collect();
    json_response(
        200,
        json!({"incidents": found, "limit": 25, "offset": 0, "more": false, "total": null}),
    )
}

async fn show_incident(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = rest_preflight(&inner, &method, &uri, &headers, false) {
        return *r;
    }
    let found = inner
        .lock()
        .incidents
        .iter()
        .find(|i| i.id == id)
        .map(Incident::to_json);
    match found {
        Some(i) => json_response(200, json!({ "incident": i })),
        None => rest_error(&inner, &method, &uri, 404, 2100, "Not Found", &[]),
    }
}

async fn update_incident(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let from = match rest_preflight(&inner, &method, &uri, &headers, true) {
        Ok(f) => f.unwrap_or_default(),
        Err(r) => return *r,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return invalid_input(&inner, &method, &uri, &["Malformed JSON"]);
    };
    let Some(inc) = body.get("incident").filter(|i| i.is_object()) else {
        return invalid_input(&inner, &method, &uri, &["Incident is required"]);
    };
    if !matches!(
        inc.get("type").and_then(Value::as_str),
        Some("incident" | "incident_reference")
    ) {
        return invalid_input(
            &inner,
            &method,
            &uri,
            &["Incident type must be 'incident' or 'incident_reference'"],
        );
    }
    let status = match inc.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(st))
            if ["resolved", "acknowledged", "triggered"].contains(&st.as_str()) =>
        {
            Some(st.clone())
        }
        Some(_) => {
            return invalid_input(
                &inner,
                &method,
                &uri,
                &["Status must be one of resolved, acknowledged, triggered"],
            )
        }
    };
    let mut s = inner.lock();
    let Some(incident) = s.incidents.iter_mut().find(|i| i.id == id) else {
        drop(s);
        return rest_error(&inner, &method, &uri, 404, 2100, "Not Found", &[]);
    };
    if let Some(st) = status {
        if st == "resolved" && incident.status == "resolved" {
            drop(s);
            return invalid_input(&inner, &method, &uri, &["Incident Already Resolved"]);
        }
        if st == "resolved" {
            incident.resolved_by = Some(from);
            incident.resolution = inc
                .get("resolution")
                .and_then(Value::as_str)
                .map(String::from);
        }
        incident.status = st;
    }
    if let Some(t) = str_field(inc, "title") {
        incident.title = t.to_string();
    }
    let out = json!({ "incident": incident.to_json() });
    json_response(200, out)
}

async fn show_service(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = rest_preflight(&inner, &method, &uri, &headers, false) {
        return *r;
    }
    let name = inner.lock().services.get(&id).cloned();
    match name {
        Some(name) => json_response(
            200,
            json!({"service": {
                "id": id, "type": "service", "name": name, "summary": name, "status": "active",
                "self": format!("https://api.pagerduty.com/services/{id}"),
                "html_url": format!("https://incd-fake.pagerduty.com/service-directory/{id}"),
            }}),
        ),
        None => rest_error(&inner, &method, &uri, 404, 2100, "Not Found", &[]),
    }
}

async fn not_found(State(inner): State<Arc<Inner>>, method: Method, uri: Uri) -> Response {
    rest_error(&inner, &method, &uri, 404, 2100, "Not Found", &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routing_key_has_32_characters() {
        assert_eq!(ROUTING_KEY.len(), 32);
    }

    #[test]
    fn every_problem_of_an_event_is_listed() {
        let errs = event_errors(&json!({
            "routing_key": "short",
            "event_action": "trigger",
            "dedup_key": "k".repeat(256),
            "payload": {"summary": "s".repeat(1025), "severity": "fatal"},
            "links": [{"text": "no href"}],
        }));
        assert_eq!(errs.len(), 6, "{errs:?}");
        assert!(errs[0].contains("routing_key"));
        assert!(errs.iter().any(|e| e.contains("payload.source")));
    }

    #[test]
    fn resolve_needs_a_dedup_key_but_not_a_payload() {
        let ok = json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "x"});
        assert!(event_errors(&ok).is_empty());
        let bad = json!({"routing_key": ROUTING_KEY, "event_action": "resolve"});
        assert_eq!(event_errors(&bad), vec!["'dedup_key' is missing or blank"]);
    }
}
