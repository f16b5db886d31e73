//! Fake Notion API (version 2022-06-28, the `database_id` era): databases, pages and blocks, refusing
//! what the real service refuses (platform-contracts §5 and §8).
//!
//! Driver API:
//! - [`FakeNotion::start`]`().await` binds `127.0.0.1:0`; [`FakeNotion::url`] is the base for
//!   `NOTION_API_URL` (endpoints are `{url}/v1/...`); [`FakeNotion::token`] is the integration
//!   secret it accepts.
//! - Content: [`FakeNotion::add_database`]`(title_property_name, `[`Schema`]`)` and
//!   [`FakeNotion::add_page`]`(title)` return ids (dashed UUIDs; ids are accepted with or without
//!   dashes). [`Schema::incident_default`] has Severity (select SEV1–SEV4), Status (status:
//!   Investigating, Monitoring, Resolved), Declared and Resolved (date), Slack channel (url); build
//!   others with [`Schema::new`] and `.select()`, `.status()`, `.date()`, `.url()`, `.rich_text()`,
//!   `.number()`, `.people()`, `.formula()`, `.created_time()`, `.property()`.
//!   [`FakeNotion::set_shared`] removes or restores the integration's access (404 when unshared).
//! - State: [`FakeNotion::pages`] (pages created through the API, with properties and the full
//!   block tree), [`FakeNotion::page`], [`FakeNotion::database`] (current schema JSON),
//!   [`FakeNotion::rejected`], [`FakeNotion::calls`].
//! - Faults: [`FakeNotion::set_latency`], [`FakeNotion::push_fault`] (FIFO of [`Fault`], one
//!   consumed per request: status, 429 with `Retry-After`, hang, delay, lose the response),
//!   [`FakeNotion::set_down`], [`FakeNotion::clear_faults`], [`FakeNotion::early_retries`], and
//!   [`FakeNotion::set_rate_limit`] (about 3 requests per second on average, bursts of 5) →
//!   429 `rate_limited` with `Retry-After`.
//!
//! Endpoints: `GET /v1/databases/{id}`, `POST /v1/databases/{id}/query` (property filters on
//! title/rich_text/url/select/status with equals, does_not_equal, contains, starts_with, ends_with,
//! is_empty, is_not_empty; `and`/`or`; pagination), `POST /v1/pages`, `GET|PATCH /v1/pages/{id}`,
//! `PATCH /v1/blocks/{id}` (a text block's content: its type must match; `children` refused),
//! `GET|PATCH /v1/blocks/{id}/children` (pagination; `after`).
//!
//! Refusals, all as `{object:"error",status,code,message,request_id}`:
//! - 401 `unauthorized` without `Authorization: Bearer <token>`; 400 `missing_version` without
//!   `Notion-Version` (`validation_error` when it is not a date).
//! - 400 `invalid_json` for a body that is not JSON; 400 `validation_error` for: a body over
//!   500 KB; more than 1000 blocks in a request; more than 100 children in one array; nesting
//!   deeper than 2 levels; unknown block types or a block without its content; `text.content`
//!   over 2000 UTF-16 units; `text.link.url` over 2000 or not a URL; `equation.expression` over
//!   1000; rich-text arrays over 100 items; unknown colours; properties that do not exist in the
//!   database or have the wrong type; read-only properties (formula, rollup, created/edited
//!   time/by, unique_id); status options that do not exist (select options are created, as in
//!   Notion, unless they hold a comma); malformed dates; URLs over 2000, emails/phones over 200;
//!   more than 100 multi-select options, people or relations; a page parent with properties other
//!   than `title`; ids that are not UUIDs; `after` naming a block that is not a child.
//! - 404 `object_not_found` for unknown or unshared databases, pages and blocks.

pub use crate::pagerduty::faults::{Call, EarlyRetry, Fault, Rejected};

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::pagerduty::faults::{self, json_response, utf16_len, Faults};

/// The integration secret the fake accepts.
pub const TOKEN: &str = "ntn_fakeintegrationsecret0000000000000000000001";
/// Largest request body (Notion: 500 KB).
pub const MAX_BODY_BYTES: usize = 500_000;
/// Most block elements in one request.
pub const MAX_BLOCKS_PER_REQUEST: usize = 1000;
/// Most items in any children, rich-text, multi-select, people or relation array.
pub const MAX_ARRAY: usize = 100;
/// Longest `text.content`, in UTF-16 units.
pub const MAX_TEXT: usize = 2000;
/// Average requests per second in rate-limit mode, and the burst allowed.
pub const RATE_LIMIT: (f64, u32) = (3.0, 5);

const CREATED_TIME: &str = "2025-01-01T00:00:00.000Z";
const COLORS: [&str; 19] = [
    "default",
    "gray",
    "brown",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "red",
    "gray_background",
    "brown_background",
    "orange_background",
    "yellow_background",
    "green_background",
    "blue_background",
    "purple_background",
    "pink_background",
    "red_background",
];
const TEXT_BLOCKS: [&str; 10] = [
    "paragraph",
    "heading_1",
    "heading_2",
    "heading_3",
    "bulleted_list_item",
    "numbered_list_item",
    "to_do",
    "toggle",
    "quote",
    "callout",
];
const OTHER_BLOCKS: [&str; 5] = [
    "divider",
    "code",
    "table_of_contents",
    "bookmark",
    "equation",
];
const READ_ONLY: [&str; 8] = [
    "formula",
    "rollup",
    "created_by",
    "created_time",
    "last_edited_by",
    "last_edited_time",
    "unique_id",
    "button",
];

/// A database schema to create with [`FakeNotion::add_database`]; the title property is added
/// separately under the name given there.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    props: Vec<(String, String, Value)>,
}

impl Schema {
    pub fn new() -> Schema {
        Schema::default()
    }

    /// Severity (select SEV1–SEV4), Status (status: Investigating, Monitoring, Resolved),
    /// Declared and Resolved (date), Slack channel (url).
    pub fn incident_default() -> Schema {
        Schema::new()
            .select("Severity", &["SEV1", "SEV2", "SEV3", "SEV4"])
            .status("Status", &["Investigating", "Monitoring", "Resolved"])
            .date("Declared")
            .date("Resolved")
            .url("Slack channel")
    }

    /// Any property type with its configuration object.
    pub fn property(mut self, name: &str, ty: &str, config: Value) -> Schema {
        self.props.push((name.into(), ty.into(), config));
        self
    }
    pub fn select(self, name: &str, options: &[&str]) -> Schema {
        self.property(name, "select", json!({ "options": options_json(options) }))
    }
    pub fn status(self, name: &str, options: &[&str]) -> Schema {
        self.property(
            name,
            "status",
            json!({ "options": options_json(options), "groups": [] }),
        )
    }
    pub fn date(self, name: &str) -> Schema {
        self.property(name, "date", json!({}))
    }
    pub fn url(self, name: &str) -> Schema {
        self.property(name, "url", json!({}))
    }
    pub fn rich_text(self, name: &str) -> Schema {
        self.property(name, "rich_text", json!({}))
    }
    pub fn number(self, name: &str) -> Schema {
        self.property(name, "number", json!({ "format": "number" }))
    }
    pub fn people(self, name: &str) -> Schema {
        self.property(name, "people", json!({}))
    }
    pub fn formula(self, name: &str) -> Schema {
        self.property(name, "formula", json!({ "expression": "1" }))
    }
    pub fn created_time(self, name: &str) -> Schema {
        self.property(name, "created_time", json!({}))
    }
}

fn options_json(options: &[&str]) -> Vec<Value> {
    options
        .iter()
        .enumerate()
        .map(|(i, o)| json!({ "id": format!("opt{i}"), "name": o, "color": "default" }))
        .collect()
}

/// Where a page lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeParent {
    Database(String),
    Page(String),
    Workspace,
}

/// A block as stored, with its children.
#[derive(Debug, Clone)]
pub struct FakeBlock {
    pub id: String,
    /// Block type, e.g. `heading_2`.
    pub kind: String,
    /// Plain text of its rich text (or the title of a `child_page`).
    pub text: String,
    /// The type's content object as sent (without `children`).
    pub value: Value,
    pub children: Vec<FakeBlock>,
}

/// A page as stored.
#[derive(Debug, Clone)]
pub struct FakePage {
    pub id: String,
    pub parent: FakeParent,
    /// Plain text of the title property.
    pub title: String,
    /// Property values by name, as Notion returns them (`{id, type, <type>: …}`).
    pub properties: Map<String, Value>,
    pub blocks: Vec<FakeBlock>,
    pub archived: bool,
    pub url: String,
}

impl FakePage {
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.properties.get(name)
    }
    /// Option name of a select or status property.
    pub fn option(&self, name: &str) -> Option<String> {
        let p = self.properties.get(name)?;
        let ty = p.get("type")?.as_str()?;
        p.get(ty)?.get("name")?.as_str().map(String::from)
    }
    /// `start` (and `end`) of a date property.
    pub fn date(&self, name: &str) -> Option<(String, Option<String>)> {
        let d = self.properties.get(name)?.get("date")?;
        let start = d.get("start")?.as_str()?.to_string();
        Some((
            start,
            d.get("end").and_then(Value::as_str).map(String::from),
        ))
    }
    /// Value of a url property.
    pub fn url_property(&self, name: &str) -> Option<String> {
        self.properties
            .get(name)?
            .get("url")?
            .as_str()
            .map(String::from)
    }
    /// Plain text of a title or rich_text property.
    pub fn text_property(&self, name: &str) -> Option<String> {
        let p = self.properties.get(name)?;
        let ty = p.get("type")?.as_str()?;
        Some(plain_text(p.get(ty)?))
    }
    /// Texts of all `heading_*` blocks, depth first.
    pub fn headings(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.blocks, &mut |b| {
            if b.kind.starts_with("heading_") {
                out.push(b.text.clone());
            }
        });
        out
    }
    /// All block text, one block per line, depth first.
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        walk(&self.blocks, &mut |b| out.push(b.text.clone()));
        out.join("\n")
    }
    /// Number of blocks at all depths.
    pub fn block_count(&self) -> usize {
        let mut n = 0;
        walk(&self.blocks, &mut |_| n += 1);
        n
    }
    /// Blocks of one type, depth first.
    pub fn blocks_of(&self, kind: &str) -> Vec<FakeBlock> {
        let mut out = Vec::new();
        walk(&self.blocks, &mut |b| {
            if b.kind == kind {
                out.push(b.clone());
            }
        });
        out
    }
}

fn walk(blocks: &[FakeBlock], f: &mut dyn FnMut(&FakeBlock)) {
    for b in blocks {
        f(b);
        walk(&b.children, f);
    }
}

struct Db {
    title: String,
    /// name → `{id, name, type, <type>: config}`
    properties: BTreeMap<String, Value>,
    shared: bool,
}

struct Page {
    parent: FakeParent,
    properties: Map<String, Value>,
    children: Vec<String>,
    archived: bool,
    shared: bool,
    icon: Value,
    /// Created through `POST /v1/pages` (listed by `pages()`).
    via_api: bool,
}

struct Block {
    parent: String,
    parent_is_page: bool,
    kind: String,
    content: Value,
    children: Vec<String>,
}

#[derive(Default)]
struct NState {
    dbs: BTreeMap<String, Db>,
    pages: BTreeMap<String, Page>,
    page_order: Vec<String>,
    blocks: HashMap<String, Block>,
    next: u64,
    next_request: u64,
}

impl NState {
    fn new_id(&mut self, kind: u16) -> String {
        self.next += 1;
        format!("{:08x}-{kind:04x}-4000-8000-{:012x}", self.next, self.next)
    }

    fn children_of(&self, id: &str) -> Option<&Vec<String>> {
        match self.pages.get(id) {
            Some(p) => Some(&p.children),
            None => self.blocks.get(id).map(|b| &b.children),
        }
    }

    fn children_of_mut(&mut self, id: &str) -> Option<&mut Vec<String>> {
        match self.pages.get_mut(id) {
            Some(p) => Some(&mut p.children),
            None => self.blocks.get_mut(id).map(|b| &mut b.children),
        }
    }

    /// Is the page reachable by the integration (shared itself or below a shared parent)?
    fn page_visible(&self, id: &str) -> bool {
        let mut cur = id.to_string();
        for _ in 0..64 {
            let Some(p) = self.pages.get(&cur) else {
                return false;
            };
            if p.shared {
                return true;
            }
            match &p.parent {
                FakeParent::Page(parent) => cur = parent.clone(),
                FakeParent::Database(db) => return self.dbs.get(db).is_some_and(|d| d.shared),
                FakeParent::Workspace => return false,
            }
        }
        false
    }

    fn block_tree(&self, ids: &[String]) -> Vec<FakeBlock> {
        ids.iter()
            .filter_map(|id| {
                let b = self.blocks.get(id)?;
                Some(FakeBlock {
                    id: id.clone(),
                    kind: b.kind.clone(),
                    text: block_text(&b.kind, &b.content),
                    value: b.content.clone(),
                    children: self.block_tree(&b.children),
                })
            })
            .collect()
    }

    fn fake_page(&self, id: &str) -> Option<FakePage> {
        let p = self.pages.get(id)?;
        Some(FakePage {
            id: id.to_string(),
            parent: p.parent.clone(),
            title: page_title(&p.properties),
            properties: p.properties.clone(),
            blocks: self.block_tree(&p.children),
            archived: p.archived,
            url: page_url(id),
        })
    }

    fn page_json(&self, id: &str) -> Value {
        let p = &self.pages[id];
        let parent = match &p.parent {
            FakeParent::Database(d) => json!({ "type": "database_id", "database_id": d }),
            FakeParent::Page(pid) => json!({ "type": "page_id", "page_id": pid }),
            FakeParent::Workspace => json!({ "type": "workspace", "workspace": true }),
        };
        json!({
            "object": "page",
            "id": id,
            "created_time": CREATED_TIME,
            "last_edited_time": CREATED_TIME,
            "created_by": { "object": "user", "id": "00000000-0000-4000-8000-000000000bot" },
            "archived": p.archived,
            "in_trash": p.archived,
            "icon": p.icon,
            "cover": null,
            "parent": parent,
            "url": page_url(id),
            "public_url": null,
            "properties": p.properties,
        })
    }

    fn block_json(&self, id: &str) -> Value {
        let b = &self.blocks[id];
        let parent = if b.parent_is_page {
            json!({ "type": "page_id", "page_id": b.parent })
        } else {
            json!({ "type": "block_id", "block_id": b.parent })
        };
        json!({
            "object": "block",
            "id": id,
            "parent": parent,
            "created_time": CREATED_TIME,
            "last_edited_time": CREATED_TIME,
            "has_children": !b.children.is_empty(),
            "archived": false,
            "in_trash": false,
            "type": b.kind,
            b.kind.clone(): b.content,
        })
    }

    fn database_json(&self, id: &str) -> Value {
        let d = &self.dbs[id];
        json!({
            "object": "database",
            "id": id,
            "created_time": CREATED_TIME,
            "last_edited_time": CREATED_TIME,
            "title": [rich_item_out(&json!({ "type": "text", "text": { "content": d.title } }))],
            "description": [],
            "is_inline": false,
            "archived": false,
            "in_trash": false,
            "parent": { "type": "workspace", "workspace": true },
            "url": page_url(id),
            "properties": d.properties,
        })
    }
}

fn page_url(id: &str) -> String {
    format!("https://www.notion.so/{}", id.replace('-', ""))
}

fn plain_text(rich: &Value) -> String {
    rich.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    i.get("plain_text")
                        .and_then(Value::as_str)
                        .or_else(|| i.pointer("/text/content").and_then(Value::as_str))
                        .or_else(|| i.pointer("/equation/expression").and_then(Value::as_str))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn block_text(kind: &str, content: &Value) -> String {
    if kind == "child_page" {
        return content
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
    }
    content.get("rich_text").map(plain_text).unwrap_or_default()
}

fn page_title(props: &Map<String, Value>) -> String {
    props
        .values()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("title"))
        .and_then(|p| p.get("title"))
        .map(plain_text)
        .unwrap_or_default()
}

/// A rich-text item as Notion returns it: with `plain_text`, `href` and full annotations.
fn rich_item_out(item: &Value) -> Value {
    let mut out = item.clone();
    let ty = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(if item.get("text").is_some() {
            "text"
        } else if item.get("equation").is_some() {
            "equation"
        } else {
            "mention"
        });
    out["type"] = json!(ty);
    if ty == "text" && out["text"].get("link").is_none() {
        out["text"]["link"] = Value::Null;
    }
    let mut annotations = json!({
        "bold": false, "italic": false, "strikethrough": false,
        "underline": false, "code": false, "color": "default",
    });
    if let Some(a) = item.get("annotations").and_then(Value::as_object) {
        for (k, v) in a {
            annotations[k] = v.clone();
        }
    }
    out["annotations"] = annotations;
    let plain = item
        .pointer("/text/content")
        .or_else(|| item.pointer("/equation/expression"))
        .and_then(Value::as_str)
        .unwrap_or("");
    out["plain_text"] = json!(plain);
    out["href"] = item
        .pointer("/text/link/url")
        .cloned()
        .unwrap_or(Value::Null);
    out
}

fn rich_out(items: &Value) -> Value {
    Value::Array(
        items
            .as_array()
            .map(|a| a.iter().map(rich_item_out).collect())
            .unwrap_or_default(),
    )
}

/// Canonical dashed form of a UUID given with or without dashes.
fn canonical_id(raw: &str) -> Option<String> {
    let hex: String = raw.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

struct Inner {
    state: Mutex<NState>,
    faults: Arc<Faults>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, NState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A refusal: status, code, message.
struct NotionError {
    status: u16,
    code: &'static str,
    message: String,
}

impl NotionError {
    fn validation(message: impl Into<String>) -> NotionError {
        NotionError {
            status: 400,
            code: "validation_error",
            message: message.into(),
        }
    }
    fn not_found(what: &str, id: &str) -> NotionError {
        NotionError {
            status: 404,
            code: "object_not_found",
            message: format!(
                "Could not find {what} with ID: {id}. Make sure the relevant pages and databases are shared with your integration."
            ),
        }
    }
}

type Outcome = Result<Response, NotionError>;

fn error_json(status: u16, code: &str, message: &str, request_id: u64) -> Value {
    json!({
        "object": "error",
        "status": status,
        "code": code,
        "message": message,
        "request_id": format!("00000000-0000-4000-8000-{request_id:012x}"),
    })
}

fn finish(inner: &Inner, method: &Method, uri: &Uri, outcome: Outcome) -> Response {
    match outcome {
        Ok(r) => r,
        Err(e) => refuse(
            inner,
            method.as_str(),
            &uri.to_string(),
            e.status,
            e.code,
            &e.message,
        ),
    }
}

fn refuse(
    inner: &Inner,
    method: &str,
    path: &str,
    status: u16,
    code: &str,
    message: &str,
) -> Response {
    inner.faults.reject(method, path, status, code, message);
    let rid = {
        let mut s = inner.lock();
        s.next_request += 1;
        s.next_request
    };
    json_response(status, error_json(status, code, message, rid))
}

fn fault_body(status: u16, _path: &str) -> Value {
    let (code, message) = match status {
        400 => ("validation_error", "Request body failed validation."),
        401 => ("unauthorized", "API token is invalid."),
        403 => (
            "restricted_resource",
            "API token does not have access to this resource.",
        ),
        404 => ("object_not_found", "Could not find the object."),
        409 => (
            "conflict_error",
            "Conflict occurred while saving. Please try again.",
        ),
        429 => (
            "rate_limited",
            "You have been rate limited. Please try again in a few minutes.",
        ),
        500 => ("internal_server_error", "Unexpected error occurred."),
        502 => ("bad_gateway", "Bad gateway."),
        503 => (
            "service_unavailable",
            "Notion is unavailable, please try again later.",
        ),
        504 => (
            "gateway_timeout",
            "Notion timed out while handling the request.",
        ),
        529 => (
            "service_overload",
            "Notion is overloaded, please try again later.",
        ),
        _ => ("internal_server_error", "Unexpected error occurred."),
    };
    error_json(status, code, message, 0)
}

/// The fake. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct FakeNotion {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl FakeNotion {
    /// Start on a free local port.
    pub async fn start() -> FakeNotion {
        let faults = Faults::new(fault_body);
        let inner = Arc::new(Inner {
            state: Mutex::new(NState::default()),
            faults: faults.clone(),
        });
        let router = Router::new()
            .route("/v1/databases/{id}", get(get_database))
            .route("/v1/databases/{id}/query", post(query_database))
            .route("/v1/pages", post(create_page))
            .route("/v1/pages/{id}", get(get_page).patch(update_page))
            .route("/v1/blocks/{id}", axum::routing::patch(update_block))
            .route(
                "/v1/blocks/{id}/children",
                get(list_children).patch(append_children),
            )
            .fallback(fallback)
            .layer(axum::middleware::from_fn_with_state(
                inner.clone(),
                auth_layer,
            ))
            .with_state(inner.clone())
            .layer(axum::middleware::from_fn_with_state(faults, faults::layer))
            .layer(DefaultBodyLimit::max(8 * 1024 * 1024));
        let addr = faults::serve(router).await;
        FakeNotion { inner, addr }
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn token(&self) -> &'static str {
        TOKEN
    }

    /// A database titled "Post-mortems", shared with the integration, whose title property is
    /// called `title_property`. Returns its id.
    pub fn add_database(&self, title_property: &str, schema: Schema) -> String {
        let mut s = self.inner.lock();
        let id = s.new_id(0xdb);
        let mut properties = BTreeMap::new();
        properties.insert(
            title_property.to_string(),
            json!({ "id": "title", "name": title_property, "type": "title", "title": {} }),
        );
        for (i, (name, ty, config)) in schema.props.into_iter().enumerate() {
            properties.insert(
                name.clone(),
                json!({ "id": format!("p{i:03}"), "name": name, "type": ty, ty.clone(): config }),
            );
        }
        s.dbs.insert(
            id.clone(),
            Db {
                title: "Post-mortems".into(),
                properties,
                shared: true,
            },
        );
        id
    }

    /// A top-level page shared with the integration (a parent for post-mortems). Returns its id.
    pub fn add_page(&self, title: &str) -> String {
        let mut s = self.inner.lock();
        let id = s.new_id(0xa9);
        let mut properties = Map::new();
        properties.insert(
            "title".into(),
            json!({ "id": "title", "type": "title", "title": [rich_item_out(&json!({ "type": "text", "text": { "content": title } }))] }),
        );
        s.pages.insert(
            id.clone(),
            Page {
                parent: FakeParent::Workspace,
                properties,
                children: Vec::new(),
                archived: false,
                shared: true,
                icon: Value::Null,
                via_api: false,
            },
        );
        id
    }

    /// Share (or stop sharing) a database or an added page with the integration.
    pub fn set_shared(&self, id: &str, shared: bool) {
        let Some(id) = canonical_id(id) else { return };
        let mut s = self.inner.lock();
        if let Some(d) = s.dbs.get_mut(&id) {
            d.shared = shared;
        }
        if let Some(p) = s.pages.get_mut(&id) {
            p.shared = shared;
        }
    }

    /// Pages created through `POST /v1/pages`, in creation order.
    pub fn pages(&self) -> Vec<FakePage> {
        let s = self.inner.lock();
        s.page_order
            .iter()
            .filter(|id| s.pages.get(*id).is_some_and(|p| p.via_api))
            .filter_map(|id| s.fake_page(id))
            .collect()
    }
    /// Any page by id (with or without dashes).
    pub fn page(&self, id: &str) -> Option<FakePage> {
        let id = canonical_id(id)?;
        self.inner.lock().fake_page(&id)
    }
    /// A database object as `GET /v1/databases/{id}` returns it (options created by pages
    /// included).
    pub fn database(&self, id: &str) -> Option<Value> {
        let id = canonical_id(id)?;
        let s = self.inner.lock();
        s.dbs.contains_key(&id).then(|| s.database_json(&id))
    }
    /// Which fault mix [`crate::chaos::Chaos`] draws from for this fake.
    const CHAOS_SERVICE: crate::chaos::Service = crate::chaos::Service::Notion;
    crate::pagerduty::faults::fault_controls!();
    /// Notion's average rate limit ([`RATE_LIMIT`]) on or off.
    pub fn set_rate_limit(&self, on: bool) {
        self.inner.faults.set_rate_limit(on.then_some(RATE_LIMIT));
    }
    /// A custom rate limit: average requests per second and burst.
    pub fn set_rate_limit_with(&self, per_second: f64, burst: u32) {
        self.inner.faults.set_rate_limit(Some((per_second, burst)));
    }
}

/// `Authorization: Bearer` and `Notion-Version` on every request.
async fn auth_layer(State(inner): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().to_string();
    let headers = req.headers();
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth.and_then(|a| a.strip_prefix("Bearer ")) != Some(TOKEN) {
        return refuse(
            &inner,
            &method,
            &path,
            401,
            "unauthorized",
            "API token is invalid.",
        );
    }
    match headers.get("notion-version").and_then(|v| v.to_str().ok()) {
        None => {
            return refuse(
                &inner,
                &method,
                &path,
                400,
                "missing_version",
                "Notion-Version header failed validation: Notion-Version header should be defined, instead was `undefined`.",
            )
        }
        Some(v) => {
            let b = v.trim().as_bytes();
            let date_like = b.len() == 10
                && b[4] == b'-'
                && b[7] == b'-'
                && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
            if !date_like {
                return refuse(
                    &inner,
                    &method,
                    &path,
                    400,
                    "validation_error",
                    &format!("Notion-Version header failed validation: `{v}` is not a valid version."),
                );
            }
        }
    }
    next.run(req).await
}

async fn fallback(State(inner): State<Arc<Inner>>, method: Method, uri: Uri) -> Response {
    refuse(
        &inner,
        method.as_str(),
        &uri.to_string(),
        400,
        "invalid_request_url",
        "Invalid request URL.",
    )
}

fn path_id(raw: &str, name: &str) -> Result<String, NotionError> {
    canonical_id(raw).ok_or_else(|| {
        NotionError::validation(format!(
            "path failed validation: path.{name} should be a valid uuid, instead was `\"{raw}\"`."
        ))
    })
}

fn parse_body(body: &Bytes, allow_empty: bool) -> Result<Value, NotionError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(NotionError::validation(format!(
            "Request body too large: {} bytes; the limit is {MAX_BODY_BYTES}.",
            body.len()
        )));
    }
    if allow_empty && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(NotionError {
            status: 400,
            code: "invalid_json",
            message: "Error parsing JSON body.".into(),
        }),
    }
}

async fn get_database(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    Path(raw): Path<String>,
) -> Response {
    let outcome = (|| -> Outcome {
        let id = path_id(&raw, "database_id")?;
        let s = inner.lock();
        match s.dbs.get(&id) {
            Some(d) if d.shared => Ok(json_response(200, s.database_json(&id))),
            Some(_) => Err(NotionError::not_found("database", &id)),
            None if s.pages.contains_key(&id) && s.page_visible(&id) => Err(NotionError::validation(format!(
                "Provided ID {id} is a page, not a database. Use the retrieve page API instead, or pass the ID of a database."
            ))),
            None => Err(NotionError::not_found("database", &id)),
        }
    })();
    finish(&inner, &method, &uri, outcome)
}

/// One property filter applied to a page's property value.
fn filter_matches(
    filter: &Value,
    props: &Map<String, Value>,
    db: &Db,
) -> Result<bool, NotionError> {
    if let Some(all) = filter.get("and").and_then(Value::as_array) {
        for f in all {
            if !filter_matches(f, props, db)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(any) = filter.get("or").and_then(Value::as_array) {
        let mut hit = false;
        for f in any {
            hit |= filter_matches(f, props, db)?;
        }
        return Ok(hit);
    }
    let name = filter
        .get("property")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            NotionError::validation(
                "body failed validation: body.filter.property should be defined.",
            )
        })?;
    let (pname, schema) = find_property(db, name).ok_or_else(|| {
        NotionError::validation(format!("Could not find property with name or id: {name}"))
    })?;
    let ty = schema["type"].as_str().unwrap_or("");
    let supported = [
        "title",
        "rich_text",
        "url",
        "select",
        "status",
        "email",
        "phone_number",
    ];
    let Some((fty, cond)) = filter.as_object().and_then(|o| {
        o.iter()
            .find(|(k, _)| k.as_str() != "property" && k.as_str() != "type")
    }) else {
        return Err(NotionError::validation(
            "body failed validation: body.filter should have a condition.",
        ));
    };
    if fty != ty || !supported.contains(&fty.as_str()) {
        return Err(NotionError::validation(format!(
            "body failed validation: the filter for property `{name}` of type {ty} cannot use `{fty}`."
        )));
    }
    let value = props.get(&pname).cloned().unwrap_or(Value::Null);
    let actual = match ty {
        "title" | "rich_text" => plain_text(&value[ty]),
        "select" | "status" => value[ty]["name"].as_str().unwrap_or("").to_string(),
        _ => value[ty].as_str().unwrap_or("").to_string(),
    };
    let Some((op, arg)) = cond.as_object().and_then(|c| c.iter().next()) else {
        return Err(NotionError::validation(
            "body failed validation: empty filter condition.",
        ));
    };
    let arg_s = arg.as_str().unwrap_or("");
    Ok(match op.as_str() {
        "equals" => actual == arg_s,
        "does_not_equal" => actual != arg_s,
        "contains" => actual.contains(arg_s),
        "does_not_contain" => !actual.contains(arg_s),
        "starts_with" => actual.starts_with(arg_s),
        "ends_with" => actual.ends_with(arg_s),
        "is_empty" => actual.is_empty(),
        "is_not_empty" => !actual.is_empty(),
        other => {
            return Err(NotionError::validation(format!(
                "body failed validation: unknown filter condition `{other}`."
            )))
        }
    })
}

fn find_property<'a>(db: &'a Db, key: &str) -> Option<(String, &'a Value)> {
    db.properties
        .get_key_value(key)
        .map(|(k, v)| (k.clone(), v))
        .or_else(|| {
            db.properties
                .iter()
                .find(|(_, v)| v["id"].as_str() == Some(key))
                .map(|(k, v)| (k.clone(), v))
        })
}

fn page_size(v: Option<&Value>) -> Result<usize, NotionError> {
    match v {
        None | Some(Value::Null) => Ok(100),
        Some(n) => match n.as_u64() {
            Some(n) if (1..=100).contains(&n) => Ok(n as usize),
            _ => Err(NotionError::validation(
                "body failed validation: body.page_size should be a number between 1 and 100.",
            )),
        },
    }
}

async fn query_database(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let outcome = (|| -> Outcome {
        let id = path_id(&raw, "database_id")?;
        let body = parse_body(&body, true)?;
        let size = page_size(body.get("page_size"))?;
        let s = inner.lock();
        let db = match s.dbs.get(&id) {
            Some(d) if d.shared => d,
            _ => return Err(NotionError::not_found("database", &id)),
        };
        let mut hits = Vec::new();
        for pid in &s.page_order {
            let p = &s.pages[pid];
            if p.archived || p.parent != FakeParent::Database(id.clone()) {
                continue;
            }
            let keep = match body.get("filter").filter(|f| !f.is_null()) {
                Some(f) => filter_matches(f, &p.properties, db)?,
                None => true,
            };
            if keep {
                hits.push(pid.clone());
            }
        }
        let start = match body.get("start_cursor").and_then(Value::as_str) {
            Some(c) => hits
                .iter()
                .position(|h| Some(h.as_str()) == canonical_id(c).as_deref())
                .ok_or_else(|| {
                    NotionError::validation("body failed validation: start_cursor is not valid.")
                })?,
            None => 0,
        };
        let page: Vec<Value> = hits
            .iter()
            .skip(start)
            .take(size)
            .map(|h| s.page_json(h))
            .collect();
        let next = hits.get(start + size).cloned();
        Ok(json_response(
            200,
            json!({
                "object": "list",
                "results": page,
                "next_cursor": next,
                "has_more": next.is_some(),
                "type": "page_or_database",
                "page_or_database": {},
            }),
        ))
    })();
    finish(&inner, &method, &uri, outcome)
}

/// Validate a rich-text array at `path`.
fn check_rich_text(v: &Value, path: &str) -> Result<(), NotionError> {
    let Some(items) = v.as_array() else {
        return Err(NotionError::validation(format!(
            "body failed validation: {path} should be an array."
        )));
    };
    if items.len() > MAX_ARRAY {
        return Err(NotionError::validation(format!(
            "body failed validation: {path}.length should be ≤ `{MAX_ARRAY}`, instead was `{}`.",
            items.len()
        )));
    }
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if let Some(t) = item.get("text") {
            let Some(content) = t.get("content").and_then(Value::as_str) else {
                return Err(NotionError::validation(format!(
                    "body failed validation: {at}.text.content should be defined."
                )));
            };
            let n = utf16_len(content);
            if n > MAX_TEXT {
                return Err(NotionError::validation(format!(
                    "body failed validation: {at}.text.content.length should be ≤ `{MAX_TEXT}`, instead was `{n}`."
                )));
            }
            match t.get("link") {
                None | Some(Value::Null) => {}
                Some(link) => {
                    let url = link.get("url").and_then(Value::as_str).unwrap_or("");
                    let n = utf16_len(url);
                    if n > 2000 {
                        return Err(NotionError::validation(format!(
                            "body failed validation: {at}.text.link.url.length should be ≤ `2000`, instead was `{n}`."
                        )));
                    }
                    if !looks_like_url(url) {
                        return Err(NotionError::validation(format!(
                            "Invalid URL for link: {at}.text.link.url"
                        )));
                    }
                }
            }
        } else if let Some(eq) = item.get("equation") {
            let expr = eq.get("expression").and_then(Value::as_str).unwrap_or("");
            if utf16_len(expr) > 1000 {
                return Err(NotionError::validation(format!(
                    "body failed validation: {at}.equation.expression.length should be ≤ `1000`."
                )));
            }
        } else if item.get("mention").is_none() {
            return Err(NotionError::validation(format!(
                "body failed validation: {at} should have one of text, mention, equation."
            )));
        }
        if let Some(color) = item.pointer("/annotations/color") {
            check_color(color, &format!("{at}.annotations.color"))?;
        }
    }
    Ok(())
}

fn looks_like_url(url: &str) -> bool {
    match url.split_once(':') {
        Some((scheme, rest)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
                && !rest.is_empty()
                && !url.contains(char::is_whitespace)
        }
        None => url.starts_with('/'),
    }
}

fn check_color(v: &Value, path: &str) -> Result<(), NotionError> {
    match v.as_str() {
        Some(c) if COLORS.contains(&c) => Ok(()),
        _ => Err(NotionError::validation(format!(
            "body failed validation: {path} should be a valid color."
        ))),
    }
}

/// Validate an array of blocks at `path`; `depth` 1 is the request's own `children`.
fn check_blocks(v: &Value, path: &str, depth: usize, count: &mut usize) -> Result<(), NotionError> {
    let Some(blocks) = v.as_array() else {
        return Err(NotionError::validation(format!(
            "body failed validation: {path} should be an array."
        )));
    };
    if blocks.is_empty() {
        return Ok(());
    }
    if depth > 2 {
        return Err(NotionError::validation(format!(
            "body failed validation: {path} is nested too deeply; a request may nest children at most two levels."
        )));
    }
    if blocks.len() > MAX_ARRAY {
        return Err(NotionError::validation(format!(
            "body failed validation: {path}.length should be ≤ `{MAX_ARRAY}`, instead was `{}`.",
            blocks.len()
        )));
    }
    for (i, b) in blocks.iter().enumerate() {
        *count += 1;
        if *count > MAX_BLOCKS_PER_REQUEST {
            return Err(NotionError::validation(format!(
                "body failed validation: the request has more than {MAX_BLOCKS_PER_REQUEST} block elements."
            )));
        }
        let at = format!("{path}[{i}]");
        let (kind, content) = block_kind(b, &at)?;
        if TEXT_BLOCKS.contains(&kind.as_str()) {
            let rt = content.get("rich_text").ok_or_else(|| {
                NotionError::validation(format!(
                    "body failed validation: {at}.{kind}.rich_text should be defined."
                ))
            })?;
            check_rich_text(rt, &format!("{at}.{kind}.rich_text"))?;
            if let Some(c) = content.get("color") {
                check_color(c, &format!("{at}.{kind}.color"))?;
            }
            if kind == "to_do" {
                if let Some(c) = content.get("checked") {
                    if !c.is_boolean() {
                        return Err(NotionError::validation(format!(
                            "body failed validation: {at}.to_do.checked should be a boolean."
                        )));
                    }
                }
            }
            if let Some(children) = content.get("children") {
                if kind.starts_with("heading_")
                    && content.get("is_toggleable") != Some(&Value::Bool(true))
                {
                    return Err(NotionError::validation(format!(
                        "body failed validation: {at}.{kind}.children is only allowed when is_toggleable is true."
                    )));
                }
                check_blocks(children, &format!("{at}.{kind}.children"), depth + 1, count)?;
            }
        } else {
            match kind.as_str() {
                "code" => {
                    check_rich_text(
                        content.get("rich_text").unwrap_or(&Value::Null),
                        &format!("{at}.code.rich_text"),
                    )?;
                    if content.get("language").and_then(Value::as_str).is_none() {
                        return Err(NotionError::validation(format!(
                            "body failed validation: {at}.code.language should be defined."
                        )));
                    }
                }
                "bookmark" => {
                    let url = content.get("url").and_then(Value::as_str).unwrap_or("");
                    if !looks_like_url(url) || utf16_len(url) > 2000 {
                        return Err(NotionError::validation(format!(
                            "body failed validation: {at}.bookmark.url should be a valid URL."
                        )));
                    }
                }
                "equation" => {
                    let e = content
                        .get("expression")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if utf16_len(e) > 1000 {
                        return Err(NotionError::validation(format!(
                            "body failed validation: {at}.equation.expression is too long."
                        )));
                    }
                }
                _ => {}
            }
            if content.get("children").is_some() {
                return Err(NotionError::validation(format!(
                    "body failed validation: {at}.{kind} cannot have children."
                )));
            }
        }
    }
    Ok(())
}

/// The block's type and content object.
fn block_kind<'a>(b: &'a Value, at: &str) -> Result<(String, &'a Value), NotionError> {
    let known = |k: &str| TEXT_BLOCKS.contains(&k) || OTHER_BLOCKS.contains(&k);
    let kind = match b.get("type").and_then(Value::as_str) {
        Some(t) => t.to_string(),
        None => b
            .as_object()
            .and_then(|o| o.keys().find(|k| known(k)).cloned())
            .ok_or_else(|| {
                NotionError::validation(format!(
                    "body failed validation: {at}.type should be defined."
                ))
            })?,
    };
    if !known(&kind) {
        return Err(NotionError::validation(format!(
            "body failed validation: {at}.type should be one of {}, instead was `{kind}`.",
            [TEXT_BLOCKS.as_slice(), OTHER_BLOCKS.as_slice()]
                .concat()
                .join(", ")
        )));
    }
    let content = b.get(&kind).filter(|c| c.is_object()).ok_or_else(|| {
        NotionError::validation(format!(
            "body failed validation: {at}.{kind} should be defined."
        ))
    })?;
    Ok((kind, content))
}

/// Store validated blocks under `parent`, returning the new first-level ids.
fn store_blocks(
    s: &mut NState,
    parent: &str,
    parent_is_page: bool,
    blocks: &[Value],
) -> Vec<String> {
    let mut ids = Vec::new();
    for b in blocks {
        let Ok((kind, content)) = block_kind(b, "") else {
            continue;
        };
        let id = s.new_id(0xb1);
        let mut stored = content.clone();
        let children = stored
            .as_object_mut()
            .and_then(|o| o.remove("children"))
            .and_then(|c| c.as_array().cloned())
            .unwrap_or_default();
        if let Some(rt) = stored.get("rich_text").cloned() {
            stored["rich_text"] = rich_out(&rt);
        }
        if TEXT_BLOCKS.contains(&kind.as_str()) && stored.get("color").is_none() {
            stored["color"] = json!("default");
        }
        s.blocks.insert(
            id.clone(),
            Block {
                parent: parent.to_string(),
                parent_is_page,
                kind,
                content: stored,
                children: Vec::new(),
            },
        );
        let child_ids = store_blocks(s, &id, false, &children);
        if let Some(b) = s.blocks.get_mut(&id) {
            b.children = child_ids;
        }
        ids.push(id);
    }
    ids
}

fn check_date_string(v: &Value, at: &str) -> Result<(), NotionError> {
    let ok = v.as_str().is_some_and(|d| {
        let b = d.as_bytes();
        b.len() >= 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b[..4].iter().all(u8::is_ascii_digit)
            && (b.len() == 10 || b[10] == b'T')
    });
    if ok {
        Ok(())
    } else {
        Err(NotionError::validation(format!(
            "body failed validation: {at} should be a valid ISO 8601 date string."
        )))
    }
}

/// Validate one property value against its schema; returns the value as Notion stores it, and
/// any new select option to add to the schema.
fn check_property(
    name: &str,
    schema: &Value,
    value: &Value,
) -> Result<(Value, Option<String>), NotionError> {
    let ty = schema["type"].as_str().unwrap_or("");
    let pid = schema["id"].clone();
    if READ_ONLY.contains(&ty) {
        return Err(NotionError::validation(format!(
            "{name} is a {ty} property, which cannot be set through the API."
        )));
    }
    let Some(obj) = value.as_object() else {
        return Err(NotionError::validation(format!(
            "body failed validation: body.properties.{name} should be an object."
        )));
    };
    if let Some(t) = obj.get("type").and_then(Value::as_str) {
        if t != ty {
            return Err(NotionError::validation(format!(
                "{name} is expected to be {ty}."
            )));
        }
    }
    let Some(inner) = obj.get(ty) else {
        return Err(NotionError::validation(format!(
            "{name} is expected to be {ty}."
        )));
    };
    let at = format!("body.properties.{name}.{ty}");
    let mut new_option = None;
    let stored = match ty {
        "title" | "rich_text" => {
            check_rich_text(inner, &at)?;
            rich_out(inner)
        }
        "select" | "status" => {
            if inner.is_null() {
                if ty == "status" {
                    return Err(NotionError::validation(format!(
                        "{name}: a status cannot be empty."
                    )));
                }
                Value::Null
            } else {
                let options: Vec<&Value> = schema[ty]["options"]
                    .as_array()
                    .map(|a| a.iter().collect())
                    .unwrap_or_default();
                let by_name = inner.get("name").and_then(Value::as_str);
                let by_id = inner.get("id").and_then(Value::as_str);
                let found = options.iter().find(|o| {
                    (by_name.is_some() && o["name"].as_str() == by_name)
                        || (by_id.is_some() && o["id"].as_str() == by_id)
                });
                match (found, by_name) {
                    (Some(o), _) => {
                        json!({ "id": o["id"], "name": o["name"], "color": o["color"] })
                    }
                    (None, Some(n)) if ty == "select" => {
                        if n.contains(',') {
                            return Err(NotionError::validation(format!(
                                "{name}: select option names cannot contain commas."
                            )));
                        }
                        if n.trim().is_empty() || utf16_len(n) > 100 {
                            return Err(NotionError::validation(format!(
                                "{name}: select option names must have 1 to 100 characters."
                            )));
                        }
                        new_option = Some(n.to_string());
                        json!({ "id": format!("opt{}", options.len()), "name": n, "color": "default" })
                    }
                    (None, Some(n)) if ty == "status" => {
                        return Err(NotionError::validation(format!(
                            "Invalid status option. Status option \"{n}\" does not exist\"."
                        )))
                    }
                    _ => {
                        return Err(NotionError::validation(format!(
                            "{name}: option not found."
                        )))
                    }
                }
            }
        }
        "multi_select" | "people" | "relation" => {
            let arr = inner.as_array().ok_or_else(|| {
                NotionError::validation(format!("body failed validation: {at} should be an array."))
            })?;
            if arr.len() > MAX_ARRAY {
                return Err(NotionError::validation(format!(
                    "body failed validation: {at}.length should be ≤ `{MAX_ARRAY}`, instead was `{}`.",
                    arr.len()
                )));
            }
            inner.clone()
        }
        "date" => {
            if !inner.is_null() {
                check_date_string(
                    inner.get("start").unwrap_or(&Value::Null),
                    &format!("{at}.start"),
                )?;
                if let Some(end) = inner.get("end").filter(|e| !e.is_null()) {
                    check_date_string(end, &format!("{at}.end"))?;
                }
            }
            inner.clone()
        }
        "url" | "email" | "phone_number" => {
            let max = if ty == "url" { 2000 } else { 200 };
            match inner {
                Value::Null => {}
                Value::String(s) if utf16_len(s) <= max => {}
                Value::String(s) => {
                    return Err(NotionError::validation(format!(
                    "body failed validation: {at}.length should be ≤ `{max}`, instead was `{}`.",
                    utf16_len(s)
                )))
                }
                _ => {
                    return Err(NotionError::validation(format!(
                        "body failed validation: {at} should be a string."
                    )))
                }
            }
            inner.clone()
        }
        "number" => {
            if !(inner.is_number() || inner.is_null()) {
                return Err(NotionError::validation(format!(
                    "body failed validation: {at} should be a number."
                )));
            }
            inner.clone()
        }
        "checkbox" => {
            if !inner.is_boolean() {
                return Err(NotionError::validation(format!(
                    "body failed validation: {at} should be a boolean."
                )));
            }
            inner.clone()
        }
        _ => inner.clone(),
    };
    Ok((json!({ "id": pid, "type": ty, ty: stored }), new_option))
}

/// Stored property values, and select options to add to the schema (property name, option).
type CheckedProperties = (Map<String, Value>, Vec<(String, String)>);

/// Validate `properties` for a page in `db` (or under a page when `db` is `None`); returns the
/// stored values and new select options (property name, option).
fn check_properties(db: Option<&Db>, props: &Value) -> Result<CheckedProperties, NotionError> {
    let Some(map) = props.as_object() else {
        return Err(NotionError::validation(
            "body failed validation: body.properties should be an object.",
        ));
    };
    let mut out = Map::new();
    let mut options = Vec::new();
    match db {
        None => {
            for (k, v) in map {
                if k != "title" {
                    return Err(NotionError::validation(format!(
                        "Invalid property `{k}` for a page whose parent is a page: the only valid property is title."
                    )));
                }
                let schema = json!({ "id": "title", "type": "title" });
                let (stored, _) = check_property("title", &schema, v)?;
                out.insert("title".into(), stored);
            }
        }
        Some(db) => {
            for (k, v) in map {
                let Some((name, schema)) = find_property(db, k) else {
                    return Err(NotionError::validation(format!(
                        "{k} is not a property that exists."
                    )));
                };
                let (stored, new) = check_property(&name, schema, v)?;
                if let Some(o) = new {
                    options.push((name.clone(), o));
                }
                out.insert(name, stored);
            }
        }
    }
    Ok((out, options))
}

fn add_options(db: &mut Db, options: Vec<(String, String)>) {
    for (prop, option) in options {
        if let Some(schema) = db.properties.get_mut(&prop) {
            if let Some(list) = schema["select"]["options"].as_array_mut() {
                if !list.iter().any(|o| o["name"] == json!(option)) {
                    let id = format!("opt{}", list.len());
                    list.push(json!({ "id": id, "name": option, "color": "default" }));
                }
            }
        }
    }
}

fn check_icon(icon: Option<&Value>) -> Result<Value, NotionError> {
    match icon {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(i) => match i.get("type").and_then(Value::as_str) {
            Some("emoji") if i.get("emoji").and_then(Value::as_str).is_some() => Ok(i.clone()),
            Some("external")
                if i.pointer("/external/url")
                    .and_then(Value::as_str)
                    .is_some_and(looks_like_url) =>
            {
                Ok(i.clone())
            }
            _ => Err(NotionError::validation(
                "body failed validation: body.icon should be an emoji or an external file.",
            )),
        },
    }
}

async fn create_page(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let outcome = (|| -> Outcome {
        let body = parse_body(&body, false)?;
        let parent = body
            .get("parent")
            .filter(|p| p.is_object())
            .ok_or_else(|| NotionError::validation("body failed validation: body.parent should be defined, instead was `undefined`."))?;
        let props = body
            .get("properties")
            .ok_or_else(|| NotionError::validation("body failed validation: body.properties should be defined, instead was `undefined`."))?;
        let icon = check_icon(body.get("icon"))?;
        let children = body.get("children").cloned().unwrap_or(json!([]));
        let mut count = 0;
        check_blocks(&children, "body.children", 1, &mut count)?;

        let mut s = inner.lock();
        let (parent_kind, defaults) = if let Some(raw) =
            parent.get("database_id").and_then(Value::as_str)
        {
            let id = canonical_id(raw).ok_or_else(|| {
                NotionError::validation(format!("body failed validation: body.parent.database_id should be a valid uuid, instead was `\"{raw}\"`."))
            })?;
            let db = match s.dbs.get(&id) {
                Some(d) if d.shared => d,
                _ => return Err(NotionError::not_found("database", &id)),
            };
            let defaults: Map<String, Value> = db
                .properties
                .iter()
                .map(|(name, p)| {
                    let ty = p["type"].as_str().unwrap_or("");
                    let empty = match ty {
                        "title" | "rich_text" | "multi_select" | "people" | "relation"
                        | "files" => json!([]),
                        "checkbox" => json!(false),
                        _ => Value::Null,
                    };
                    (
                        name.clone(),
                        json!({ "id": p["id"], "type": ty, ty: empty }),
                    )
                })
                .collect();
            (FakeParent::Database(id), defaults)
        } else if let Some(raw) = parent.get("page_id").and_then(Value::as_str) {
            let id = canonical_id(raw).ok_or_else(|| {
                NotionError::validation(format!("body failed validation: body.parent.page_id should be a valid uuid, instead was `\"{raw}\"`."))
            })?;
            if !s.page_visible(&id) {
                return Err(NotionError::not_found("page", &id));
            }
            let mut defaults = Map::new();
            defaults.insert(
                "title".into(),
                json!({ "id": "title", "type": "title", "title": [] }),
            );
            (FakeParent::Page(id), defaults)
        } else {
            return Err(NotionError::validation(
                "body failed validation: body.parent should have database_id or page_id.",
            ));
        };
        let (values, options) = match &parent_kind {
            FakeParent::Database(id) => check_properties(s.dbs.get(id), props)?,
            _ => check_properties(None, props)?,
        };
        if let FakeParent::Database(id) = &parent_kind {
            if let Some(db) = s.dbs.get_mut(id) {
                add_options(db, options);
            }
        }
        let mut properties = defaults;
        properties.extend(values);
        let page_id = s.new_id(0xa9);
        s.pages.insert(
            page_id.clone(),
            Page {
                parent: parent_kind.clone(),
                properties,
                children: Vec::new(),
                archived: false,
                shared: false,
                icon,
                via_api: true,
            },
        );
        s.page_order.push(page_id.clone());
        let ids = store_blocks(
            &mut s,
            &page_id,
            true,
            children.as_array().map(Vec::as_slice).unwrap_or(&[]),
        );
        if let Some(p) = s.pages.get_mut(&page_id) {
            p.children = ids;
        }
        if let FakeParent::Page(parent_id) = &parent_kind {
            // The new page appears among the parent's children as a child_page block.
            let title = page_title(&s.pages[&page_id].properties);
            s.blocks.insert(
                page_id.clone(),
                Block {
                    parent: parent_id.clone(),
                    parent_is_page: true,
                    kind: "child_page".into(),
                    content: json!({ "title": title }),
                    children: Vec::new(),
                },
            );
            if let Some(p) = s.pages.get_mut(parent_id) {
                p.children.push(page_id.clone());
            }
        }
        Ok(json_response(200, s.page_json(&page_id)))
    })();
    finish(&inner, &method, &uri, outcome)
}

async fn get_page(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    Path(raw): Path<String>,
) -> Response {
    let outcome = (|| -> Outcome {
        let id = path_id(&raw, "page_id")?;
        let s = inner.lock();
        if !s.page_visible(&id) {
            return Err(NotionError::not_found("page", &id));
        }
        Ok(json_response(200, s.page_json(&id)))
    })();
    finish(&inner, &method, &uri, outcome)
}

async fn update_page(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let outcome = (|| -> Outcome {
        let id = path_id(&raw, "page_id")?;
        let body = parse_body(&body, false)?;
        let mut s = inner.lock();
        if !s.page_visible(&id) {
            return Err(NotionError::not_found("page", &id));
        }
        let parent = s.pages[&id].parent.clone();
        let icon = match body.get("icon") {
            Some(i) => Some(check_icon(Some(i))?),
            None => None,
        };
        let archived = match (body.get("archived"), body.get("in_trash")) {
            (Some(v), _) | (None, Some(v)) => Some(v.as_bool().ok_or_else(|| {
                NotionError::validation(
                    "body failed validation: body.archived should be a boolean.",
                )
            })?),
            _ => None,
        };
        let (values, options) = match body.get("properties") {
            None => (Map::new(), Vec::new()),
            Some(props) => match &parent {
                FakeParent::Database(db) => check_properties(s.dbs.get(db), props)?,
                _ => check_properties(None, props)?,
            },
        };
        if let FakeParent::Database(db) = &parent {
            if let Some(db) = s.dbs.get_mut(db) {
                add_options(db, options);
            }
        }
        let new_title = values.contains_key("title").then(|| page_title(&values));
        let page = s.pages.get_mut(&id).expect("checked above");
        page.properties.extend(values);
        if let Some(i) = icon {
            page.icon = i;
        }
        if let Some(a) = archived {
            page.archived = a;
        }
        if let (Some(t), Some(b)) = (new_title, s.blocks.get_mut(&id)) {
            b.content = json!({ "title": t });
        }
        Ok(json_response(200, s.page_json(&id)))
    })();
    finish(&inner, &method, &uri, outcome)
}

/// The target of a children call: a visible page, or a block on one.
fn resolve_target(s: &NState, id: &str) -> Result<bool, NotionError> {
    if s.pages.contains_key(id) {
        return if s.page_visible(id) {
            Ok(true)
        } else {
            Err(NotionError::not_found("block", id))
        };
    }
    let mut cur = id.to_string();
    for _ in 0..64 {
        let Some(b) = s.blocks.get(&cur) else {
            return Err(NotionError::not_found("block", id));
        };
        if b.parent_is_page {
            return if s.page_visible(&b.parent) {
                Ok(false)
            } else {
                Err(NotionError::not_found("block", id))
            };
        }
        cur = b.parent.clone();
    }
    Err(NotionError::not_found("block", id))
}

async fn list_children(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let outcome = (|| -> Outcome {
        let id = path_id(&raw, "block_id")?;
        let mut size = 100;
        let mut cursor = None;
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "page_size" => {
                    size = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| NotionError::validation("query failed validation: page_size should be a number between 1 and 100."))?
                }
                "start_cursor" => cursor = Some(v.into_owned()),
                _ => {}
            }
        }
        let s = inner.lock();
        resolve_target(&s, &id)?;
        let children: Vec<&String> = s
            .children_of(&id)
            .map(|c| {
                c.iter()
                    .filter(|c| !s.pages.get(*c).is_some_and(|p| p.archived))
                    .collect()
            })
            .unwrap_or_default();
        let start = match cursor {
            Some(c) => {
                let c = canonical_id(&c);
                children
                    .iter()
                    .position(|b| Some(b.as_str()) == c.as_deref())
                    .ok_or_else(|| {
                        NotionError::validation(
                            "query failed validation: start_cursor is not valid.",
                        )
                    })?
            }
            None => 0,
        };
        let results: Vec<Value> = children
            .iter()
            .skip(start)
            .take(size)
            .map(|b| s.block_json(b))
            .collect();
        let next = children.get(start + size).map(|b| (*b).clone());
        Ok(json_response(
            200,
            json!({
                "object": "list",
                "results": results,
                "next_cursor": next,
                "has_more": next.is_some(),
                "type": "block",
                "block": {},
            }),
        ))
    })();
    finish(&inner, &method, &uri, outcome)
}

async fn append_children(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let outcome = (|| -> Outcome {
        let id = path_id(&raw, "block_id")?;
        let body = parse_body(&body, false)?;
        let children = body.get("children").ok_or_else(|| {
            NotionError::validation(
                "body failed validation: body.children should be defined, instead was `undefined`.",
            )
        })?;
        let mut count = 0;
        check_blocks(children, "body.children", 1, &mut count)?;
        let mut s = inner.lock();
        let is_page = resolve_target(&s, &id)?;
        if !is_page {
            let kind = s.blocks[&id].kind.clone();
            if !TEXT_BLOCKS.contains(&kind.as_str()) {
                return Err(NotionError::validation(format!(
                    "Block type {kind} does not support children."
                )));
            }
        }
        let after = match body.get("after").filter(|a| !a.is_null()) {
            Some(a) => {
                let a = a.as_str().and_then(canonical_id);
                let pos = a.as_ref().and_then(|a| {
                    s.children_of(&id)
                        .and_then(|c| c.iter().position(|x| x == a))
                });
                Some(pos.ok_or_else(|| {
                    NotionError::validation(
                        "body failed validation: body.after should be the id of a child block.",
                    )
                })?)
            }
            None => None,
        };
        let ids = store_blocks(
            &mut s,
            &id,
            is_page,
            children.as_array().map(Vec::as_slice).unwrap_or(&[]),
        );
        if let Some(list) = s.children_of_mut(&id) {
            match after {
                Some(pos) => {
                    for (i, new) in ids.iter().enumerate() {
                        list.insert(pos + 1 + i, new.clone());
                    }
                }
                None => list.extend(ids.iter().cloned()),
            }
        }
        let results: Vec<Value> = ids.iter().map(|b| s.block_json(b)).collect();
        Ok(json_response(
            200,
            json!({ "object": "list", "results": results, "next_cursor": null, "has_more": false, "type": "block", "block": {} }),
        ))
    })();
    finish(&inner, &method, &uri, outcome)
}

async fn update_block(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let outcome = (|| -> Outcome {
        let id = path_id(&raw, "block_id")?;
        let body = parse_body(&body, false)?;
        let mut s = inner.lock();
        if s.pages.contains_key(&id) || !s.blocks.contains_key(&id) {
            return Err(NotionError::not_found("block", &id));
        }
        resolve_target(&s, &id)?;
        let kind = s.blocks[&id].kind.clone();
        let Some(content) = body.get(kind.as_str()) else {
            return Err(NotionError::validation(format!(
                "body failed validation: body.{kind} should be defined, instead was `undefined`."
            )));
        };
        if !TEXT_BLOCKS.contains(&kind.as_str()) || content.get("children").is_some() {
            return Err(NotionError::validation(format!(
                "body failed validation: a {kind} block cannot be updated this way."
            )));
        }
        // Validate as the block would be created, with the fields it already has.
        let mut merged = s.blocks[&id].content.clone();
        if let (Some(m), Some(new)) = (merged.as_object_mut(), content.as_object()) {
            for (k, v) in new {
                m.insert(k.clone(), v.clone());
            }
        }
        if let Some(rt) = content.get("rich_text") {
            merged["rich_text"] = rt.clone();
        }
        let check = json!([{ "object": "block", "type": kind, kind.clone(): merged }]);
        check_blocks(&check, "body", 1, &mut 0)?;
        if let Some(rt) = merged.get("rich_text").cloned() {
            merged["rich_text"] = rich_out(&rt);
        }
        if let Some(b) = s.blocks.get_mut(&id) {
            b.content = merged;
        }
        Ok(json_response(200, s.block_json(&id)))
    })();
    finish(&inner, &method, &uri, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_accepted_with_or_without_dashes() {
        let a = canonical_id("BC1211CAE3F14939AE345260B16F627C").unwrap();
        assert_eq!(a, "bc1211ca-e3f1-4939-ae34-5260b16f627c");
        assert_eq!(canonical_id(&a), Some(a.clone()));
        assert_eq!(canonical_id("nope"), None);
    }

    #[test]
    fn text_is_measured_in_utf16_units() {
        let ok = json!([{ "type": "text", "text": { "content": "😀".repeat(1000) } }]);
        assert!(check_rich_text(&ok, "x").is_ok());
        let long =
            json!([{ "type": "text", "text": { "content": format!("{}a", "😀".repeat(1000)) } }]);
        let err = check_rich_text(&long, "x").unwrap_err();
        assert!(
            err.message.contains("instead was `2001`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn nesting_beyond_two_levels_is_refused() {
        let leaf = json!({ "type": "paragraph", "paragraph": { "rich_text": [] } });
        let two = json!([{ "type": "toggle", "toggle": { "rich_text": [], "children": [leaf.clone()] } }]);
        assert!(check_blocks(&two, "body.children", 1, &mut 0).is_ok());
        let three = json!([{ "type": "toggle", "toggle": { "rich_text": [], "children": [
            { "type": "toggle", "toggle": { "rich_text": [], "children": [leaf] } }
        ] } }]);
        assert!(check_blocks(&three, "body.children", 1, &mut 0).is_err());
    }
}
