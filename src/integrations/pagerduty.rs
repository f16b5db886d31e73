//! PagerDuty client: page the on-call engineer when an incident is declared, close the page when
//! it is resolved.
//!
//! Two ways in, chosen by configuration:
//! - **Events API v2** (default): `POST {events_url}/v2/enqueue` with the integration's routing key.
//!   The incident name is the `dedup_key`, so a repeated trigger is deduplicated by PagerDuty
//!   into the same alert and a resolve closes exactly that alert.
//! - **REST API v2**: an incident on a service, `incident_key` = the incident name. A repeated create
//!   is refused by PagerDuty ("open incident with matching dedup key already exists"); we then look
//!   the existing incident up and return it, so a retried step never pages twice.
//!
//! Each method makes one attempt per HTTP call with [`CALL_TIMEOUT`]; retrying belongs to the
//! workflow runner. Request bodies are built by pure functions (tested below) and every length the
//! service limits is clamped. Tokens never appear in errors or logs.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Map, Value};

use super::{
    status_error, transport_error, Check, IncidentFacts, IntegrationError, RateGate, CALL_TIMEOUT,
};
use crate::config::{PagerDutySettings, Secret};
use crate::incident::text::{clamp, clamp_utf16, one_line};

/// Name used in errors and doctor checks.
pub const SERVICE: &str = "PagerDuty";
/// `payload.summary` limit of the Events API ("maximum permitted length … 1024 characters").
/// Clamped in UTF-16 units, which is never more than characters, so it holds however PagerDuty
/// counts.
pub const SUMMARY_MAX: usize = 1024;
/// `dedup_key` limit of the Events API.
pub const DEDUP_KEY_MAX: usize = 255;
/// Longest URL we send; longer links are left out rather than cut into a wrong address.
pub const URL_MAX: usize = 2000;
/// Longest free text (description, resolution) we put into custom details or an incident body.
/// Keeps every event far below the 512 KB event limit.
pub const DETAILS_TEXT_MAX: usize = 8000;
/// `payload.source`: what PagerDuty shows as the origin of the alert.
pub const SOURCE: &str = "incd";
/// Versioning header the REST API requires.
pub const REST_ACCEPT: &str = "application/vnd.pagerduty+json;version=2";
/// Longest error detail kept from a PagerDuty error body.
const DETAIL_MAX: usize = 300;
/// Severities the Events API accepts.
pub const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// What incd remembers about a page so it can close it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRef {
    /// Events API `dedup_key`, or the REST `incident_key`: the incident name.
    pub dedup_key: String,
    /// REST API incident id (`P…`); `None` for the Events API.
    pub incident_id: Option<String>,
    /// Link to the PagerDuty incident, when PagerDuty told us (REST API only).
    pub html_url: Option<String>,
}

/// The PagerDuty client. Cheap to clone (the reqwest client is reference counted).
#[derive(Clone)]
pub struct Pager {
    http: reqwest::Client,
    settings: PagerDutySettings,
    timeout: Duration,
    gate: RateGate,
}

impl Pager {
    pub fn new(http: reqwest::Client, settings: PagerDutySettings) -> Self {
        Pager {
            http,
            settings,
            timeout: CALL_TIMEOUT,
            gate: RateGate::default(),
        }
    }

    /// Use a different per-call timeout than [`CALL_TIMEOUT`] (tests of hung services).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Page the on-call engineer for this incident. Safe to repeat: the incident name is the
    /// dedup/incident key, so PagerDuty never opens a second alert or incident for it.
    pub async fn trigger(&self, facts: &IncidentFacts) -> Result<PageRef, IntegrationError> {
        match &self.settings {
            PagerDutySettings::Events {
                routing_key,
                events_url,
            } => {
                let body = trigger_event(routing_key.expose(), facts);
                let (_, reply) = self
                    .send(
                        self.http.post(enqueue_url(events_url)).json(&body),
                        routing_key,
                    )
                    .await?;
                let dedup_key = reply
                    .get("dedup_key")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .unwrap_or_else(|| dedup_key(facts));
                Ok(PageRef {
                    dedup_key,
                    incident_id: None,
                    html_url: None,
                })
            }
            PagerDutySettings::Rest {
                api_token,
                service_id,
                from_email,
                escalation_policy_id,
                api_url,
            } => {
                let body = create_incident_body(service_id, escalation_policy_id.as_deref(), facts);
                let req = self
                    .rest(Method::POST, api_url, "/incidents", api_token)
                    .header("From", from_email.as_str())
                    .json(&body);
                match self.send(req, api_token).await {
                    Ok((_, reply)) => incident_ref(reply.get("incident"), &dedup_key(facts))
                        .ok_or_else(|| IntegrationError::Unavailable {
                            service: SERVICE,
                            detail: "the created incident was missing from the answer".into(),
                        }),
                    Err(err) if is_duplicate_key(&err) => {
                        // A retried step: the incident from the earlier attempt is still open.
                        match self.find_incident(&dedup_key(facts)).await? {
                            Some(found) => Ok(found),
                            None => Err(IntegrationError::Unavailable {
                                service: SERVICE,
                                detail: "PagerDuty reports an open incident for this key but does not list it yet".into(),
                            }),
                        }
                    }
                    Err(err) => Err(err),
                }
            }
        }
    }

    /// [`Pager::trigger`] after an attempt whose outcome is unknown (its answer was lost, the
    /// process died mid-call): REST first looks for the incident opened for this key and adopts
    /// it, open or already resolved (the key is this incident's own name, so whatever carries it
    /// is the page this incident sent): the repeat is neither a create PagerDuty refuses as a
    /// duplicate nor a second page after a resolve. Events v2 deduplicates by key itself: the
    /// trigger is simply sent again.
    pub async fn trigger_again(&self, facts: &IncidentFacts) -> Result<PageRef, IntegrationError> {
        if let PagerDutySettings::Rest { .. } = &self.settings {
            if let Some((found, _)) = self.find_incident_status(&dedup_key(facts)).await? {
                return Ok(found);
            }
        }
        self.trigger(facts).await
    }

    /// [`Pager::resolve`] after an attempt whose outcome is unknown: REST first reads the
    /// incident's status and resolves it only while it is still open, so the repeat is not a
    /// resolve PagerDuty refuses ("Incident Already Resolved").
    pub async fn resolve_again(
        &self,
        facts: &IncidentFacts,
        page: &PageRef,
    ) -> Result<(), IntegrationError> {
        if let PagerDutySettings::Rest { .. } = &self.settings {
            let key = if page.dedup_key.is_empty() {
                dedup_key(facts)
            } else {
                page.dedup_key.clone()
            };
            return match self.find_incident_status(&key).await? {
                // Nothing was ever opened for this key, or it is resolved already.
                None | Some((_, false)) => Ok(()),
                Some((found, true)) => self.resolve(facts, &found).await,
            };
        }
        self.resolve(facts, page).await
    }

    /// Close the page. Safe to repeat: resolving an already resolved alert or incident succeeds.
    pub async fn resolve(
        &self,
        facts: &IncidentFacts,
        page: &PageRef,
    ) -> Result<(), IntegrationError> {
        let key = if page.dedup_key.is_empty() {
            dedup_key(facts)
        } else {
            page.dedup_key.clone()
        };
        match &self.settings {
            PagerDutySettings::Events {
                routing_key,
                events_url,
            } => {
                let body = resolve_event(routing_key.expose(), &key);
                self.send(
                    self.http.post(enqueue_url(events_url)).json(&body),
                    routing_key,
                )
                .await?;
                Ok(())
            }
            PagerDutySettings::Rest {
                api_token,
                from_email,
                api_url,
                ..
            } => {
                let id = match &page.incident_id {
                    Some(id) => id.clone(),
                    None => match self.find_incident(&key).await? {
                        Some(found) => found.incident_id.unwrap_or_default(),
                        // Nothing was ever opened for this key: nothing to close.
                        None => return Ok(()),
                    },
                };
                let path = format!("/incidents/{}", path_segment(&id));
                let req = self
                    .rest(Method::PUT, api_url, &path, api_token)
                    .header("From", from_email.as_str())
                    .json(&resolve_incident_body(facts));
                match self.send(req, api_token).await {
                    Ok(_) => Ok(()),
                    Err(err) if is_already_resolved(&err) => Ok(()),
                    Err(err) => Err(err),
                }
            }
        }
    }

    /// `incd doctor`: is the configuration well formed, and (REST) do the token and service work?
    /// Never pages anyone.
    pub async fn check(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        match &self.settings {
            PagerDutySettings::Events {
                routing_key,
                events_url,
            } => {
                checks.push(routing_key_check(routing_key.expose()));
                // Reachability is checked at the TCP/TLS level only: any event the Events API
                // accepts could page someone, and an invalid one is a request it must refuse.
                let name = "PagerDuty Events API reachable";
                let fix = "Check that this host can reach the Events API (proxy, firewall) and that PAGERDUTY_EVENTS_URL is https://events.pagerduty.com or unset";
                let sent = self
                    .http
                    .head(events_url.as_str())
                    .timeout(self.timeout)
                    .send()
                    .await;
                checks.push(match sent {
                    Ok(resp) if resp.status().is_server_error() => Check::fail(
                        name,
                        format!("{events_url} answered HTTP {}", resp.status().as_u16()),
                        fix,
                    ),
                    Ok(_) => Check::pass(name, format!("{events_url} answers")),
                    Err(e) => Check::fail(name, transport_error(SERVICE, &e).human(), fix),
                });
            }
            PagerDutySettings::Rest {
                api_token,
                service_id,
                from_email,
                api_url,
                ..
            } => {
                let name = "PagerDuty From email";
                checks.push(if is_email(from_email) {
                    Check::pass(name, format!("incidents are created as {from_email}"))
                } else {
                    Check::fail(
                        name,
                        format!("'{from_email}' is not an email address"),
                        "Set PAGERDUTY_FROM_EMAIL to the email of a PagerDuty user in your account; PagerDuty records incidents as created by that user",
                    )
                });
                checks.push(self.service_check(api_url, api_token, service_id).await);
            }
        }
        checks
    }

    async fn service_check(&self, api_url: &str, token: &Secret, service_id: &str) -> Check {
        let name = "PagerDuty REST token and service";
        if service_id.trim().is_empty() {
            return Check::fail(
                name,
                "PAGERDUTY_SERVICE_ID is empty",
                "Set PAGERDUTY_SERVICE_ID to the id of the service to open incidents on (the P… part of the service's URL in PagerDuty)",
            );
        }
        let path = format!("/services/{}", path_segment(service_id));
        match self.send(self.rest(Method::GET, api_url, &path, token), token).await {
            Ok((_, reply)) => {
                let service = reply.get("service");
                let label = service
                    .and_then(|s| s.get("name").or_else(|| s.get("summary")))
                    .and_then(Value::as_str)
                    .unwrap_or(service_id);
                Check::pass(name, format!("token accepted; service '{label}' ({service_id}) found"))
            }
            Err(IntegrationError::Refused { status: Some(401), .. }) => Check::fail(
                name,
                "PagerDuty refused the API token (HTTP 401)",
                "Create a REST API key in PagerDuty (Integrations → API Access Keys) and put it in PAGERDUTY_API_TOKEN",
            ),
            Err(IntegrationError::Refused { status: Some(403), .. }) => Check::fail(
                name,
                "the API token may not read this service (HTTP 403)",
                "Use a full-access (not read-only restricted) API key, or grant its user access to the service's team",
            ),
            Err(IntegrationError::Refused { status: Some(404), .. }) => Check::fail(
                name,
                format!("no service with id {service_id}"),
                "Copy the service id from the service's URL in PagerDuty (…/service-directory/PXXXXXX) into PAGERDUTY_SERVICE_ID",
            ),
            Err(err) => Check::fail(
                name,
                err.human(),
                "Check that this host can reach the PagerDuty REST API and that PAGERDUTY_API_URL is https://api.pagerduty.com or unset",
            ),
        }
    }

    /// `GET /incidents?incident_key=…`: the incident opened for this key on our service, preferring
    /// an open one.
    async fn find_incident(&self, key: &str) -> Result<Option<PageRef>, IntegrationError> {
        Ok(self.find_incident_status(key).await?.map(|(page, _)| page))
    }

    /// [`Pager::find_incident`] with whether the incident is open (triggered or acknowledged).
    async fn find_incident_status(
        &self,
        key: &str,
    ) -> Result<Option<(PageRef, bool)>, IntegrationError> {
        let PagerDutySettings::Rest {
            api_token,
            service_id,
            api_url,
            ..
        } = &self.settings
        else {
            return Ok(None);
        };
        let req = self
            .rest(Method::GET, api_url, "/incidents", api_token)
            .query(&[
                ("incident_key", key),
                ("service_ids[]", service_id.as_str()),
                ("statuses[]", "triggered"),
                ("statuses[]", "acknowledged"),
                ("statuses[]", "resolved"),
            ]);
        let (_, reply) = self.send(req, api_token).await?;
        let incidents = reply
            .get("incidents")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let open = |i: &&Value| {
            matches!(
                i.get("status").and_then(Value::as_str),
                Some("triggered" | "acknowledged")
            )
        };
        let chosen = incidents.iter().find(open).or_else(|| incidents.first());
        Ok(chosen.and_then(|i| incident_ref(Some(i), key).map(|page| (page, open(&i)))))
    }

    /// A REST request with the headers every REST call needs.
    fn rest(&self, method: Method, api_url: &str, path: &str, token: &Secret) -> RequestBuilder {
        self.http
            .request(method, format!("{api_url}{path}"))
            .header(AUTHORIZATION, format!("Token token={}", token.expose()))
            .header(ACCEPT, REST_ACCEPT)
            .header(CONTENT_TYPE, "application/json")
    }

    /// One attempt: send with the timeout, read the body, classify failures.
    async fn send(
        &self,
        req: RequestBuilder,
        secret: &Secret,
    ) -> Result<(u16, Value), IntegrationError> {
        self.gate.wait().await;
        let r = self.send_once(req, secret).await;
        self.gate.observe(&r);
        r
    }

    async fn send_once(
        &self,
        req: RequestBuilder,
        secret: &Secret,
    ) -> Result<(u16, Value), IntegrationError> {
        let resp = req
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| transport_error(SERVICE, &e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = resp
            .text()
            .await
            .map_err(|e| transport_error(SERVICE, &e))?;
        if (200..300).contains(&status) {
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Ok((status, body));
        }
        Err(status_error(
            SERVICE,
            status,
            retry_after.as_deref(),
            error_detail(&text, secret.expose()),
        ))
    }
}

fn enqueue_url(events_url: &str) -> String {
    format!("{}/v2/enqueue", events_url.trim_end_matches('/'))
}

/// Percent-encode anything that is not a plain id character, so an id can never change the path.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn is_email(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((user, domain)) => {
            !user.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

fn routing_key_check(key: &str) -> Check {
    let name = "PagerDuty routing key";
    let len = key.chars().count();
    if len == 32 && key.chars().all(|c| c.is_ascii_alphanumeric()) {
        Check::pass(name, "a 32-character Events API v2 integration key")
    } else {
        Check::fail(
            name,
            format!("the key has {len} characters; an Events API v2 integration key has 32 letters and digits"),
            "In PagerDuty open the service → Integrations → Events API V2 and copy its Integration Key into PAGERDUTY_ROUTING_KEY",
        )
    }
}

/// The Events API `dedup_key` (and REST `incident_key`) for an incident: its name.
pub fn dedup_key(facts: &IncidentFacts) -> String {
    clamp(facts.name.trim(), DEDUP_KEY_MAX)
}

/// `[SEV1] Database down`, on one line and within the summary limit.
pub fn summary(facts: &IncidentFacts) -> String {
    let text = one_line(&format!("[{}] {}", facts.severity_label, facts.title));
    clamp_utf16(&text, SUMMARY_MAX)
}

/// The configured PagerDuty severity when it is one the API accepts, else `error`.
pub fn event_severity(facts: &IncidentFacts) -> &'static str {
    let wanted = facts.pagerduty_severity.trim().to_ascii_lowercase();
    SEVERITIES
        .iter()
        .find(|s| **s == wanted)
        .copied()
        .unwrap_or("error")
}

/// A URL fit to send: http(s) and within the limit. Cutting a URL would make it wrong, so an
/// overlong one is dropped.
fn usable_url(url: &str) -> Option<&str> {
    let url = url.trim();
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.chars().count() <= URL_MAX
        && !url.contains(char::is_whitespace);
    ok.then_some(url)
}

/// `links[]` for an event: the Slack channel and the post-mortem page when known.
fn links(facts: &IncidentFacts) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(href) = usable_url(&facts.channel_url) {
        out.push(json!({
            "href": href,
            "text": clamp(&format!("Slack channel #{}", facts.channel_name), 200),
        }));
    }
    if let Some(href) = facts.notion_url.as_deref().and_then(usable_url) {
        out.push(json!({"href": href, "text": "Post-mortem (Notion)"}));
    }
    out
}

/// The Events API v2 `trigger` event for an incident.
pub fn trigger_event(routing_key: &str, facts: &IncidentFacts) -> Value {
    let mut details = Map::new();
    details.insert("incident".into(), json!(facts.name));
    details.insert(
        "title".into(),
        json!(clamp(&one_line(&facts.title), DETAILS_TEXT_MAX)),
    );
    details.insert("severity".into(), json!(facts.severity_label));
    if !facts.description.trim().is_empty() {
        details.insert(
            "description".into(),
            json!(clamp(facts.description.trim(), DETAILS_TEXT_MAX)),
        );
    }
    details.insert("reporter".into(), json!(facts.reporter));
    if let Some(c) = &facts.commander {
        details.insert("commander".into(), json!(c));
    }
    details.insert(
        "incident_channel".into(),
        json!(format!("#{}", facts.channel_name)),
    );
    if let Some(url) = usable_url(&facts.channel_url) {
        details.insert("incident_channel_url".into(), json!(url));
    }
    if let Some(url) = facts.notion_url.as_deref().and_then(usable_url) {
        details.insert("postmortem_url".into(), json!(url));
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(facts),
        "payload": {
            "summary": summary(facts),
            "source": SOURCE,
            "severity": event_severity(facts),
            "timestamp": facts.declared_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "class": "incident",
            "custom_details": Value::Object(details),
        },
        "client": "incd",
    });
    if let Some(url) = usable_url(&facts.channel_url) {
        event["client_url"] = json!(url);
    }
    let links = links(facts);
    if !links.is_empty() {
        event["links"] = Value::Array(links);
    }
    event
}

/// The Events API v2 `resolve` event for a page.
pub fn resolve_event(routing_key: &str, dedup_key: &str) -> Value {
    json!({
        "routing_key": routing_key,
        "event_action": "resolve",
        "dedup_key": clamp(dedup_key, DEDUP_KEY_MAX),
    })
}

/// Urgency for a REST incident: the two most severe PagerDuty severities page loudly.
pub fn urgency(facts: &IncidentFacts) -> &'static str {
    match event_severity(facts) {
        "critical" | "error" => "high",
        _ => "low",
    }
}

/// The REST `POST /incidents` body.
pub fn create_incident_body(
    service_id: &str,
    escalation_policy_id: Option<&str>,
    facts: &IncidentFacts,
) -> Value {
    let mut details = String::new();
    if !facts.description.trim().is_empty() {
        details.push_str(&clamp(facts.description.trim(), DETAILS_TEXT_MAX));
        details.push_str("\n\n");
    }
    details.push_str(&format!("Incident: {}\n", facts.name));
    details.push_str(&format!("Reported by (Slack): {}\n", facts.reporter));
    if let Some(c) = &facts.commander {
        details.push_str(&format!("Commander (Slack): {c}\n"));
    }
    match usable_url(&facts.channel_url) {
        Some(url) => details.push_str(&format!("Slack channel: #{} {url}\n", facts.channel_name)),
        None => details.push_str(&format!("Slack channel: #{}\n", facts.channel_name)),
    }
    if let Some(url) = facts.notion_url.as_deref().and_then(usable_url) {
        details.push_str(&format!("Post-mortem: {url}\n"));
    }
    let mut incident = json!({
        "type": "incident",
        "title": summary(facts),
        "service": {"id": service_id, "type": "service_reference"},
        "urgency": urgency(facts),
        "incident_key": dedup_key(facts),
        "body": {"type": "incident_body", "details": details.trim_end()},
    });
    if let Some(ep) = escalation_policy_id
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        incident["escalation_policy"] = json!({"id": ep, "type": "escalation_policy_reference"});
    }
    json!({ "incident": incident })
}

/// The REST `PUT /incidents/{id}` body that resolves an incident.
pub fn resolve_incident_body(facts: &IncidentFacts) -> Value {
    let mut incident = json!({"type": "incident_reference", "status": "resolved"});
    if let Some(s) = facts
        .resolution_summary
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        incident["resolution"] = json!(clamp(s, DETAILS_TEXT_MAX));
    }
    json!({ "incident": incident })
}

fn incident_ref(incident: Option<&Value>, key: &str) -> Option<PageRef> {
    let incident = incident?;
    let id = incident.get("id").and_then(Value::as_str)?;
    Some(PageRef {
        dedup_key: incident
            .get("incident_key")
            .and_then(Value::as_str)
            .unwrap_or(key)
            .to_string(),
        incident_id: Some(id.to_string()),
        html_url: incident
            .get("html_url")
            .and_then(Value::as_str)
            .map(String::from),
    })
}

/// PagerDuty's refusal of a second open incident with the same `incident_key`.
fn is_duplicate_key(err: &IntegrationError) -> bool {
    match err {
        IntegrationError::Refused {
            status: Some(400),
            detail,
            ..
        } => {
            let d = detail.to_ascii_lowercase();
            d.contains("already exists") && (d.contains("key") || d.contains("incident"))
        }
        _ => false,
    }
}

/// PagerDuty's refusal to resolve what is already resolved: the goal is reached.
fn is_already_resolved(err: &IntegrationError) -> bool {
    matches!(err, IntegrationError::Refused { status: Some(400), detail, .. }
        if detail.to_ascii_lowercase().contains("already resolved"))
}

/// A short detail from a PagerDuty error body (Events: `{status,message,errors}`, REST:
/// `{error:{code,message,errors}}`), with the secret scrubbed should it ever be echoed.
pub fn error_detail(body: &str, secret: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let detail = match parsed {
        Some(v) => {
            let obj = v.get("error").filter(|e| e.is_object()).unwrap_or(&v);
            let message = obj.get("message").and_then(Value::as_str).unwrap_or("");
            let errors: Vec<&str> = obj
                .get("errors")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match (message.is_empty(), errors.is_empty()) {
                (true, false) => errors.join("; "),
                (false, false) => format!("{message}: {}", errors.join("; ")),
                (false, true) => message.to_string(),
                (true, true) => one_line(body),
            }
        }
        None => one_line(body),
    };
    let detail = if detail.is_empty() {
        "no detail given".to_string()
    } else {
        detail
    };
    let scrubbed = if secret.len() >= 4 {
        detail.replace(secret, "***")
    } else {
        detail
    };
    clamp(&one_line(&scrubbed), DETAIL_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY12";

    fn facts() -> IncidentFacts {
        IncidentFacts {
            title: "Checkout fails\nfor EU customers".into(),
            notion_url: Some("https://www.notion.so/abc123".into()),
            pagerduty_url: None,
            ..IncidentFacts::example()
        }
    }

    fn pretty(v: &Value) -> String {
        serde_json::to_string_pretty(v).unwrap()
    }

    #[test]
    fn trigger_event_matches_snapshot() {
        insta::assert_snapshot!(pretty(&trigger_event(KEY, &facts())));
    }

    #[test]
    fn resolve_event_uses_the_same_dedup_key() {
        let f = facts();
        let t = trigger_event(KEY, &f);
        let r = resolve_event(KEY, &dedup_key(&f));
        assert_eq!(t["dedup_key"], r["dedup_key"]);
        assert_eq!(r["event_action"], "resolve");
        assert!(r.get("payload").is_none());
    }

    #[test]
    fn rest_bodies_match_snapshot() {
        let mut f = facts();
        insta::assert_snapshot!(
            "rest_create",
            pretty(&create_incident_body("PSERVICE", Some("PPOLICY"), &f))
        );
        f.resolution_summary = Some("Rolled back the deploy.".into());
        insta::assert_snapshot!("rest_resolve", pretty(&resolve_incident_body(&f)));
    }

    #[test]
    fn summary_is_one_line_and_clamped_to_1024() {
        let mut f = facts();
        assert_eq!(summary(&f), "[SEV1] Checkout fails for EU customers");
        f.title = "🔥".repeat(2000);
        let s = summary(&f);
        assert!(s.encode_utf16().count() <= SUMMARY_MAX);
        assert!(s.chars().count() <= SUMMARY_MAX);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn dedup_key_is_the_name_clamped_to_255() {
        let mut f = facts();
        assert_eq!(dedup_key(&f), "20250314-brave-otter");
        f.name = "x".repeat(400);
        assert_eq!(dedup_key(&f).chars().count(), DEDUP_KEY_MAX);
    }

    #[test]
    fn unknown_severity_falls_back_to_error_and_urgency_follows() {
        let mut f = facts();
        assert_eq!((event_severity(&f), urgency(&f)), ("critical", "high"));
        f.pagerduty_severity = "Warning ".into();
        assert_eq!((event_severity(&f), urgency(&f)), ("warning", "low"));
        f.pagerduty_severity = "sev0".into();
        assert_eq!(event_severity(&f), "error");
    }

    #[test]
    fn long_or_odd_urls_are_left_out_not_cut() {
        let mut f = facts();
        f.notion_url = Some(format!("https://www.notion.so/{}", "a".repeat(URL_MAX)));
        f.channel_url = "javascript:alert(1)".into();
        let e = trigger_event(KEY, &f);
        assert!(e.get("links").is_none());
        assert!(e.get("client_url").is_none());
        assert!(e["payload"]["custom_details"]
            .get("postmortem_url")
            .is_none());
    }

    #[test]
    fn long_description_is_clamped() {
        let mut f = facts();
        f.description = "d".repeat(DETAILS_TEXT_MAX * 3);
        let e = trigger_event(KEY, &f);
        let d = e["payload"]["custom_details"]["description"]
            .as_str()
            .unwrap();
        assert_eq!(d.chars().count(), DETAILS_TEXT_MAX);
        assert!(serde_json::to_vec(&e).unwrap().len() < 512_000);
    }

    #[test]
    fn error_details_come_from_both_body_shapes_without_secrets() {
        let events = r#"{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)"]}"#;
        assert_eq!(
            error_detail(events, KEY),
            "Event object is invalid: Length of 'routing_key' is incorrect (should be 32 characters)"
        );
        let rest = r#"{"error":{"message":"Invalid Input Provided","code":2001,"errors":["Open incident with matching dedup key already exists on this service"]}}"#;
        let d = error_detail(rest, KEY);
        assert!(d.contains("already exists"));
        let echoed = format!(r#"{{"error":{{"message":"bad token {KEY}"}}}}"#);
        assert!(!error_detail(&echoed, KEY).contains(KEY));
        assert_eq!(
            error_detail("<html>\n502\n</html>", KEY),
            "<html> 502 </html>"
        );
        assert!(error_detail(&"x".repeat(5000), KEY).chars().count() <= 300);
    }

    #[test]
    fn refusals_are_classified() {
        let dup = status_error(
            SERVICE,
            400,
            None,
            error_detail(
                r#"{"error":{"message":"Invalid Input Provided","code":2001,"errors":["Open incident with matching dedup key already exists on this service"]}}"#,
                KEY,
            ),
        );
        assert!(is_duplicate_key(&dup));
        assert!(!is_already_resolved(&dup));
        let resolved = status_error(
            SERVICE,
            400,
            None,
            "Invalid Input Provided: Incident Already Resolved".into(),
        );
        assert!(is_already_resolved(&resolved));
        assert!(!is_duplicate_key(&status_error(
            SERVICE,
            500,
            None,
            "already exists".into()
        )));
    }

    #[test]
    fn routing_key_shape_is_checked() {
        assert!(routing_key_check(KEY).ok);
        let bad = routing_key_check("short");
        assert!(!bad.ok && bad.fix.is_some());
        assert!(!bad.detail.contains("short"), "never echo the key");
    }

    #[test]
    fn ids_cannot_escape_the_path() {
        assert_eq!(path_segment("PABC123"), "PABC123");
        assert_eq!(path_segment("../x?y"), "%2E%2E%2Fx%3Fy");
    }
}
