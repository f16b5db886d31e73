//! Settings: built-in defaults, then the TOML file, then environment overrides.
//!
//! Owns every knob incd has and the validation that runs before anything connects. Secrets (tokens,
//! routing keys) come from the environment only and are wrapped in [`Secret`], whose `Debug` and
//! `Display` never show the value. This module does no network I/O.

pub use crate::incident::SeverityLevel;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::incident::naming::{Wordlist, BUILTIN_ADJECTIVES, BUILTIN_ANIMALS};

/// Default Slack Web API base.
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";
/// Default PagerDuty Events API v2 base (`/v2/enqueue` is appended).
pub const DEFAULT_PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com";
/// Default PagerDuty REST API base.
pub const DEFAULT_PAGERDUTY_API_URL: &str = "https://api.pagerduty.com";
/// Default Notion API base.
pub const DEFAULT_NOTION_API_URL: &str = "https://api.notion.com";
/// Default config file, used only when it exists.
pub const DEFAULT_CONFIG_PATH: &str = "config/incd.toml";
/// Socket Mode connections kept open by default. Slack allows up to 10; two means a refresh or a
/// drop on one never leaves us deaf.
pub const DEFAULT_CONNECTIONS: usize = 2;
/// Slack's own cap on concurrent Socket Mode connections per app.
pub const MAX_CONNECTIONS: usize = 10;

/// A secret value. `Debug`/`Display` print a fixed mask so it can never reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The raw value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything incd needs to run, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub slack: SlackSettings,
    pub incidents: IncidentSettings,
    pub data_dir: PathBuf,
    /// This process's name as a lease owner in the store (`INCD_INSTANCE`, default `incd`).
    /// Replicas sharing one database need distinct names; a restart under the same name takes
    /// its own unfinished work back at once.
    pub instance: String,
    pub pagerduty: Option<PagerDutySettings>,
    pub notion: Option<NotionSettings>,
    /// Local listener for `/healthz` and `/metrics`; off when `None`.
    pub http_addr: Option<SocketAddr>,
    pub retry: RetrySettings,
    /// What each role's holder is told (`[roles.<commander|ops|comms|planning>]`).
    pub roles: crate::incident::roles::RoleGuides,
    /// The reaction that puts a message on the timeline, without colons (`[timeline] emoji`,
    /// default `pushpin`, 📌).
    pub timeline_emoji: String,
    /// How long an open incident may go without a status update before its commander is
    /// nudged, per severity (`[nudges]`), or for all (`INCD_NUDGE_AFTER`).
    pub nudges: crate::incident::nudge::NudgePolicy,
    /// Review reminders after resolve (`INCD_REVIEW_AFTER`, `INCD_REVIEW_EVERY`; 30d each).
    pub review: crate::incident::review::ReviewSchedule,
}

#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub bot_token: Secret,
    pub app_token: Secret,
    /// Web API base without a trailing slash; methods go to `{api_url}/{method}`.
    pub api_url: String,
    /// Socket Mode connections to keep open (1..=10).
    pub connections: usize,
    /// Channel IDs that get an announcement for every incident.
    pub broadcast_channels: Vec<String>,
    /// User IDs invited to every incident channel.
    pub invite_users: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct IncidentSettings {
    /// Zone for the date in incident names and for times shown to people.
    pub timezone: Tz,
    /// Severity levels, most severe first.
    pub severities: Vec<SeverityLevel>,
    /// Id of the level preselected in the declare form.
    pub default_severity: String,
    pub adjectives: Wordlist,
    pub animals: Wordlist,
}

impl IncidentSettings {
    pub fn severity(&self, id: &str) -> Option<&SeverityLevel> {
        self.severities.iter().find(|s| s.id == id)
    }
}

/// The four default levels.
pub fn default_severities() -> Vec<SeverityLevel> {
    let level = |n: u8, desc: &str, pd: &str| SeverityLevel {
        id: format!("sev{n}"),
        label: format!("SEV{n}"),
        description: desc.into(),
        pagerduty_severity: pd.into(),
        page: true,
    };
    vec![
        level(1, "Critical: customers cannot use the product", "critical"),
        level(
            2,
            "Major: a core feature is broken or degraded for many",
            "error",
        ),
        level(3, "Minor: partial degradation with a workaround", "warning"),
        level(4, "Low: little customer impact, needs follow-up", "info"),
    ]
}

/// How PagerDuty is reached.
#[derive(Debug, Clone)]
pub enum PagerDutySettings {
    /// Events API v2: `POST {events_url}/v2/enqueue` with a 32-character routing key.
    Events {
        routing_key: Secret,
        events_url: String,
    },
    /// REST API v2: an incident on a service.
    Rest {
        api_token: Secret,
        service_id: String,
        from_email: String,
        escalation_policy_id: Option<String>,
        api_url: String,
    },
}

/// Where post-mortem pages are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotionParent {
    Database(String),
    Page(String),
}

#[derive(Debug, Clone)]
pub struct NotionSettings {
    pub token: Secret,
    pub parent: NotionParent,
    /// Base without trailing slash; endpoints are `{api_url}/v1/...`.
    pub api_url: String,
}

/// Bounds for retrying integrations in the background.
#[derive(Debug, Clone)]
pub struct RetrySettings {
    /// Give up on an integration step after this long and tell the channel.
    pub give_up_after: Duration,
    /// First backoff delay; doubles up to `max_delay`.
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            give_up_after: Duration::from_secs(15 * 60),
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// File format

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    slack: FileSlack,
    #[serde(default)]
    incidents: FileIncidents,
    #[serde(default)]
    store: FileStore,
    #[serde(default)]
    pagerduty: FilePagerDuty,
    #[serde(default)]
    notion: FileNotion,
    #[serde(default)]
    http: FileHttp,
    #[serde(default)]
    retry: FileRetry,
    #[serde(default)]
    review: FileReview,
    #[serde(default)]
    severity: Vec<SeverityLevel>,
    #[serde(default)]
    roles: crate::incident::roles::RoleGuides,
    #[serde(default)]
    timeline: FileTimeline,
    /// `sev1 = "15m"`, … (`off` never nudges).
    #[serde(default)]
    nudges: std::collections::BTreeMap<String, crate::incident::nudge::Interval>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTimeline {
    emoji: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSlack {
    api_url: Option<String>,
    connections: Option<usize>,
    broadcast_channels: Option<Vec<String>>,
    invite_users: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIncidents {
    timezone: Option<String>,
    default_severity: Option<String>,
    adjectives_file: Option<PathBuf>,
    animals_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStore {
    data_dir: Option<PathBuf>,
    instance: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileReview {
    /// Humantime, e.g. `30d`.
    after: Option<String>,
    every: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePagerDuty {
    events_url: Option<String>,
    api_url: Option<String>,
    service_id: Option<String>,
    from_email: Option<String>,
    escalation_policy_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNotion {
    api_url: Option<String>,
    database_id: Option<String>,
    parent_page_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    addr: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRetry {
    give_up_after_secs: Option<u64>,
    initial_delay_ms: Option<u64>,
    max_delay_secs: Option<u64>,
}

/// Every problem found while loading, so the operator can fix them all in one go.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Where the file came from, for the startup log.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    Defaults,
}

impl Settings {
    /// Load from an explicit path (or `INCD_CONFIG`, or `config/incd.toml` when present) and the
    /// process environment.
    pub fn load(path: Option<&Path>) -> Result<(Settings, ConfigSource), ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(path, &env)
    }

    /// The defaults with placeholder tokens and no integrations: unit tests build a context from
    /// it (nothing is read from the environment or the disk).
    #[doc(hidden)]
    pub fn for_tests() -> Settings {
        let env: HashMap<String, String> = [
            ("SLACK_BOT_TOKEN", "xoxb-1-2-3"),
            ("SLACK_APP_TOKEN", "xapp-1-2-3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        match build(FileConfig::default(), &env, Path::new("")) {
            Ok(s) => s,
            Err(e) => panic!("the built-in defaults are invalid: {e}"),
        }
    }

    /// Like [`Settings::load`] with an explicit environment, for tests.
    pub fn load_from(
        path: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<(Settings, ConfigSource), ConfigError> {
        let explicit = path
            .map(Path::to_path_buf)
            .or_else(|| non_empty(env, "INCD_CONFIG").map(PathBuf::from));
        let (text, source) = match explicit {
            Some(p) => match std::fs::read_to_string(&p) {
                Ok(t) => (t, ConfigSource::File(p)),
                Err(e) => {
                    return Err(ConfigError {
                        problems: vec![format!("config file {}: {e}", p.display())],
                    })
                }
            },
            None => {
                let p = PathBuf::from(DEFAULT_CONFIG_PATH);
                match std::fs::read_to_string(&p) {
                    Ok(t) => (t, ConfigSource::File(p)),
                    Err(_) => (String::new(), ConfigSource::Defaults),
                }
            }
        };
        let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError {
            problems: vec![format!("config file: {e}")],
        })?;
        let base_dir = match &source {
            ConfigSource::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            ConfigSource::Defaults => PathBuf::new(),
        };
        build(file, env, &base_dir).map(|s| (s, source))
    }

    /// Which integrations are on, for the startup log.
    pub fn integrations_summary(&self) -> String {
        let pd = match &self.pagerduty {
            None => "off",
            Some(PagerDutySettings::Events { .. }) => "on (Events API v2)",
            Some(PagerDutySettings::Rest { .. }) => "on (REST API v2)",
        };
        let notion = match &self.notion {
            None => "off",
            Some(NotionSettings {
                parent: NotionParent::Database(_),
                ..
            }) => "on (database)",
            Some(_) => "on (parent page)",
        };
        format!("pagerduty={pd} notion={notion}")
    }
}

fn non_empty<'a>(env: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    env.get(key).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn csv(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn trim_base(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

fn check_base_url(problems: &mut Vec<String>, name: &str, url: &str) {
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        _ => problems.push(format!("{name}: '{url}' is not an http:// or https:// URL")),
    }
}

fn is_slack_id(id: &str, prefixes: &[char]) -> bool {
    id.len() >= 2
        && id.len() <= 32
        && prefixes.iter().any(|p| id.starts_with(*p))
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn build(
    file: FileConfig,
    env: &HashMap<String, String>,
    base_dir: &Path,
) -> Result<Settings, ConfigError> {
    let mut problems = Vec::new();

    // Slack
    let bot_token = non_empty(env, "SLACK_BOT_TOKEN")
        .unwrap_or_default()
        .to_string();
    if bot_token.is_empty() {
        problems.push(
            "SLACK_BOT_TOKEN is missing: set it to the app's Bot User OAuth Token (xoxb-...)"
                .into(),
        );
    } else if !bot_token.starts_with("xoxb-") {
        problems.push("SLACK_BOT_TOKEN must be a bot token starting with xoxb-".into());
    }
    let app_token = non_empty(env, "SLACK_APP_TOKEN")
        .unwrap_or_default()
        .to_string();
    if app_token.is_empty() {
        problems.push("SLACK_APP_TOKEN is missing: set it to an app-level token (xapp-...) with connections:write".into());
    } else if !app_token.starts_with("xapp-") {
        problems.push("SLACK_APP_TOKEN must be an app-level token starting with xapp-".into());
    }
    let api_url = trim_base(
        non_empty(env, "SLACK_API_URL")
            .map(String::from)
            .or(file.slack.api_url)
            .as_deref()
            .unwrap_or(DEFAULT_SLACK_API_URL),
    );
    check_base_url(&mut problems, "SLACK_API_URL", &api_url);

    let connections = match non_empty(env, "INCD_SOCKET_CONNECTIONS") {
        Some(v) => v.parse::<usize>().unwrap_or(0),
        None => file.slack.connections.unwrap_or(DEFAULT_CONNECTIONS),
    };
    if !(1..=MAX_CONNECTIONS).contains(&connections) {
        problems.push(format!(
            "INCD_SOCKET_CONNECTIONS / slack.connections must be between 1 and {MAX_CONNECTIONS}"
        ));
    }

    let broadcast_channels = match non_empty(env, "INCD_BROADCAST_CHANNELS") {
        Some(v) => csv(v),
        None => file.slack.broadcast_channels.unwrap_or_default(),
    };
    for c in &broadcast_channels {
        if !is_slack_id(c, &['C', 'G']) {
            problems.push(format!(
                "INCD_BROADCAST_CHANNELS: '{c}' is not a channel ID (like C0123ABCD); use IDs, not #names"
            ));
        }
    }
    let mut invite_users = match non_empty(env, "INCD_INVITE_USERS") {
        Some(v) => csv(v),
        None => file.slack.invite_users.unwrap_or_default(),
    };
    invite_users.dedup();
    for u in &invite_users {
        if !is_slack_id(u, &['U', 'W']) {
            problems.push(format!(
                "INCD_INVITE_USERS: '{u}' is not a user ID (like U0123ABCD); use IDs, not @names"
            ));
        }
    }

    // Incidents
    let tz_name = non_empty(env, "INCD_TIMEZONE")
        .map(String::from)
        .or(file.incidents.timezone)
        .unwrap_or_else(|| "UTC".into());
    let timezone = match tz_name.parse::<Tz>() {
        Ok(tz) => tz,
        Err(_) => {
            problems.push(format!(
                "INCD_TIMEZONE: '{tz_name}' is not an IANA time zone (like UTC or Europe/Berlin)"
            ));
            Tz::UTC
        }
    };
    let severities = if file.severity.is_empty() {
        default_severities()
    } else {
        file.severity
    };
    validate_severities(&severities, &mut problems);
    let default_severity = file.incidents.default_severity.unwrap_or_else(|| {
        severities
            .get(2)
            .or(severities.last())
            .map(|s| s.id.clone())
            .unwrap_or_default()
    });
    if !severities.iter().any(|s| s.id == default_severity) {
        problems.push(format!(
            "incidents.default_severity: '{default_severity}' is not one of the [[severity]] ids"
        ));
    }
    let adjectives = load_wordlist(
        file.incidents.adjectives_file.map(|p| base_dir.join(p)),
        BUILTIN_ADJECTIVES,
        "incidents.adjectives_file",
        &mut problems,
    );
    let animals = load_wordlist(
        file.incidents.animals_file.map(|p| base_dir.join(p)),
        BUILTIN_ANIMALS,
        "incidents.animals_file",
        &mut problems,
    );

    // Store
    let data_dir = non_empty(env, "INCD_DATA_DIR")
        .map(PathBuf::from)
        .or(file.store.data_dir)
        .unwrap_or_else(|| PathBuf::from("./data"));
    let instance = non_empty(env, "INCD_INSTANCE")
        .map(str::to_string)
        .or(file.store.instance)
        .unwrap_or_else(|| "incd".to_string());
    if instance.is_empty()
        || instance.len() > 64
        || !instance
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        problems.push(format!(
            "INCD_INSTANCE / store.instance '{instance}': use 1-64 letters, digits, '-', '_' or '.'"
        ));
    }

    // Review reminders
    let review_after = non_empty(env, "INCD_REVIEW_AFTER")
        .map(str::to_string)
        .or(file.review.after)
        .unwrap_or_else(|| "30d".to_string());
    let review_every = non_empty(env, "INCD_REVIEW_EVERY")
        .map(str::to_string)
        .or(file.review.every)
        .unwrap_or_else(|| "30d".to_string());
    let review = match crate::incident::review::ReviewSchedule::parse(&review_after, &review_every)
    {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("INCD_REVIEW_AFTER / INCD_REVIEW_EVERY: {e}"));
            Default::default()
        }
    };

    // PagerDuty
    let pagerduty = build_pagerduty(file.pagerduty, env, &mut problems);
    let notion = build_notion(file.notion, env, &mut problems);

    // HTTP listener
    let http_addr = match non_empty(env, "INCD_HTTP_ADDR")
        .map(String::from)
        .or(file.http.addr)
    {
        None => None,
        Some(a) => match a.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                problems.push(format!(
                    "INCD_HTTP_ADDR: '{a}' is not an address like 127.0.0.1:9090"
                ));
                None
            }
        },
    };

    let mut retry = RetrySettings::default();
    if let Some(s) = file.retry.give_up_after_secs {
        retry.give_up_after = Duration::from_secs(s);
    }
    if let Some(ms) = file.retry.initial_delay_ms {
        retry.initial_delay = Duration::from_millis(ms.max(1));
    }
    if let Some(s) = file.retry.max_delay_secs {
        retry.max_delay = Duration::from_secs(s.max(1));
    }
    if let Some(v) = non_empty(env, "INCD_RETRY_GIVE_UP_SECS") {
        match v.parse::<u64>() {
            Ok(s) => retry.give_up_after = Duration::from_secs(s),
            Err(_) => {
                problems.push("INCD_RETRY_GIVE_UP_SECS must be a whole number of seconds".into())
            }
        }
    }

    let timeline_emoji = file
        .timeline
        .emoji
        .map(|e| e.trim().trim_matches(':').to_string())
        .unwrap_or_else(|| "pushpin".into());
    if timeline_emoji.is_empty()
        || !timeline_emoji
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-+'".contains(c))
    {
        problems.push(format!(
            "timeline.emoji: '{timeline_emoji}' is not an emoji name (like pushpin)"
        ));
    }
    let ids: Vec<&str> = severities.iter().map(|l| l.id.as_str()).collect();
    for level in file.nudges.keys() {
        if !ids.iter().any(|i| i.eq_ignore_ascii_case(level)) {
            problems.push(format!(
                "nudges.{level}: not a configured severity (use one of: {})",
                ids.join(", ")
            ));
        }
    }
    let mut intervals: std::collections::BTreeMap<String, crate::incident::nudge::Interval> = ids
        .iter()
        .map(|i| {
            (
                i.to_string(),
                crate::incident::nudge::NudgePolicy::defaults_for(&ids).interval(i),
            )
        })
        .collect();
    for (level, every) in &file.nudges {
        intervals.insert(level.to_lowercase(), *every);
    }
    let nudge_override = match non_empty(env, "INCD_NUDGE_AFTER") {
        None => None,
        Some(v) => match v.parse::<crate::incident::nudge::Interval>() {
            Ok(i) => Some(i),
            Err(e) => {
                problems.push(format!("INCD_NUDGE_AFTER: {e}"));
                None
            }
        },
    };
    let nudges = crate::incident::nudge::NudgePolicy::new(intervals).with_override(nudge_override);
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    Ok(Settings {
        slack: SlackSettings {
            bot_token: Secret::new(bot_token),
            app_token: Secret::new(app_token),
            api_url,
            connections,
            broadcast_channels,
            invite_users,
        },
        incidents: IncidentSettings {
            timezone,
            severities,
            default_severity,
            adjectives,
            animals,
        },
        data_dir,
        instance,
        pagerduty,
        notion,
        http_addr,
        retry,
        roles: file.roles,
        timeline_emoji,
        nudges,
        review,
    })
}

const PD_SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

fn validate_severities(levels: &[SeverityLevel], problems: &mut Vec<String>) {
    if levels.is_empty() || levels.len() > 10 {
        problems.push("[[severity]]: configure between 1 and 10 levels".into());
    }
    let mut seen = std::collections::HashSet::new();
    for l in levels {
        let id_ok = !l.id.is_empty()
            && l.id.len() <= 32
            && l.id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !id_ok {
            problems.push(format!(
                "[[severity]] id '{}': use 1-32 letters, digits, '-' or '_'",
                l.id
            ));
        }
        if !seen.insert(l.id.clone()) {
            problems.push(format!("[[severity]] id '{}' is used twice", l.id));
        }
        if l.label.trim().is_empty() || l.label.chars().count() > 20 {
            problems.push(format!(
                "[[severity]] '{}': label must be 1-20 characters",
                l.id
            ));
        }
        if l.description.chars().count() > 60 {
            problems.push(format!(
                "[[severity]] '{}': description must be at most 60 characters (it is shown in a menu)",
                l.id
            ));
        }
        if !PD_SEVERITIES.contains(&l.pagerduty_severity.as_str()) {
            problems.push(format!(
                "[[severity]] '{}': pagerduty_severity must be one of critical, error, warning, info",
                l.id
            ));
        }
    }
}

fn load_wordlist(
    path: Option<PathBuf>,
    builtin: &str,
    key: &str,
    problems: &mut Vec<String>,
) -> Wordlist {
    let (text, origin) = match &path {
        None => (builtin.to_string(), "built-in list".to_string()),
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => (t, p.display().to_string()),
            Err(e) => {
                problems.push(format!("{key}: cannot read {}: {e}", p.display()));
                return Wordlist::parse(builtin).unwrap_or_else(|_| Wordlist::empty());
            }
        },
    };
    match Wordlist::parse(&text) {
        Ok(w) => w,
        Err(e) => {
            problems.push(format!("{key}: {origin}: {e}"));
            Wordlist::empty()
        }
    }
}

fn build_pagerduty(
    file: FilePagerDuty,
    env: &HashMap<String, String>,
    problems: &mut Vec<String>,
) -> Option<PagerDutySettings> {
    let routing_key = non_empty(env, "PAGERDUTY_ROUTING_KEY");
    let api_token = non_empty(env, "PAGERDUTY_API_TOKEN");
    match (routing_key, api_token) {
        (Some(_), Some(_)) => {
            problems.push(
                "PAGERDUTY_ROUTING_KEY and PAGERDUTY_API_TOKEN are both set: choose Events API v2 (routing key) or REST API (token)".into(),
            );
            None
        }
        (Some(key), None) => {
            if key.len() != 32 || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
                problems.push(
                    "PAGERDUTY_ROUTING_KEY must be the 32-character integration key of an Events API v2 integration".into(),
                );
            }
            let events_url = trim_base(
                non_empty(env, "PAGERDUTY_EVENTS_URL")
                    .map(String::from)
                    .or(file.events_url)
                    .as_deref()
                    .unwrap_or(DEFAULT_PAGERDUTY_EVENTS_URL),
            );
            check_base_url(problems, "PAGERDUTY_EVENTS_URL", &events_url);
            Some(PagerDutySettings::Events {
                routing_key: Secret::new(key),
                events_url,
            })
        }
        (None, Some(token)) => {
            let service_id = non_empty(env, "PAGERDUTY_SERVICE_ID")
                .map(String::from)
                .or(file.service_id);
            let from_email = non_empty(env, "PAGERDUTY_FROM_EMAIL")
                .map(String::from)
                .or(file.from_email);
            if service_id.is_none() {
                problems.push("PAGERDUTY_SERVICE_ID is missing: the REST API needs the service to open incidents on".into());
            }
            match &from_email {
                None => problems.push("PAGERDUTY_FROM_EMAIL is missing: the REST API needs the email of a PagerDuty user".into()),
                Some(e) if !e.contains('@') => problems.push(format!("PAGERDUTY_FROM_EMAIL: '{e}' is not an email address")),
                _ => {}
            }
            let api_url = trim_base(
                non_empty(env, "PAGERDUTY_API_URL")
                    .map(String::from)
                    .or(file.api_url)
                    .as_deref()
                    .unwrap_or(DEFAULT_PAGERDUTY_API_URL),
            );
            check_base_url(problems, "PAGERDUTY_API_URL", &api_url);
            Some(PagerDutySettings::Rest {
                api_token: Secret::new(token),
                service_id: service_id.unwrap_or_default(),
                from_email: from_email.unwrap_or_default(),
                escalation_policy_id: non_empty(env, "PAGERDUTY_ESCALATION_POLICY_ID")
                    .map(String::from)
                    .or(file.escalation_policy_id),
                api_url,
            })
        }
        (None, None) => None,
    }
}

fn build_notion(
    file: FileNotion,
    env: &HashMap<String, String>,
    problems: &mut Vec<String>,
) -> Option<NotionSettings> {
    let token = non_empty(env, "NOTION_TOKEN")?;
    let database = non_empty(env, "NOTION_DATABASE_ID")
        .map(String::from)
        .or(file.database_id);
    let page = non_empty(env, "NOTION_PARENT_PAGE_ID")
        .map(String::from)
        .or(file.parent_page_id);
    let parent = match (database, page) {
        (Some(db), None) => NotionParent::Database(db),
        (None, Some(p)) => NotionParent::Page(p),
        (Some(_), Some(_)) => {
            problems.push(
                "NOTION_DATABASE_ID and NOTION_PARENT_PAGE_ID are both set: choose one".into(),
            );
            return None;
        }
        (None, None) => {
            problems.push(
                "NOTION_TOKEN is set but neither NOTION_DATABASE_ID nor NOTION_PARENT_PAGE_ID is"
                    .into(),
            );
            return None;
        }
    };
    let api_url = trim_base(
        non_empty(env, "NOTION_API_URL")
            .map(String::from)
            .or(file.api_url)
            .as_deref()
            .unwrap_or(DEFAULT_NOTION_API_URL),
    );
    check_base_url(problems, "NOTION_API_URL", &api_url);
    Some(NotionSettings {
        token: Secret::new(token),
        parent,
        api_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            ("SLACK_BOT_TOKEN", "xoxb-1-2-3"),
            ("SLACK_APP_TOKEN", "xapp-1-2-3"),
            ("INCD_CONFIG", "/nonexistent/none.toml"),
        ]
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let e = env(pairs);
        let text = "";
        let file: FileConfig = toml::from_str(text).unwrap();
        build(file, &e, Path::new(""))
    }

    #[test]
    fn defaults_apply_with_only_the_two_tokens() {
        let s = load(&minimal()).unwrap();
        assert_eq!(s.slack.api_url, DEFAULT_SLACK_API_URL);
        assert_eq!(s.slack.connections, 2);
        assert_eq!(s.incidents.timezone, Tz::UTC);
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.incidents.severities.len(), 4);
        assert!(s.pagerduty.is_none() && s.notion.is_none() && s.http_addr.is_none());
    }

    #[test]
    fn the_instance_name_defaults_and_refuses_what_cannot_be_a_lease_owner() {
        assert_eq!(load(&minimal()).unwrap().instance, "incd");
        let mut named = minimal();
        named.push(("INCD_INSTANCE", "incd-2.eu"));
        assert_eq!(load(&named).unwrap().instance, "incd-2.eu");
        let mut bad = minimal();
        bad.push(("INCD_INSTANCE", "two words"));
        let e = load(&bad).unwrap_err();
        assert!(e.to_string().contains("INCD_INSTANCE"), "{e}");
    }

    #[test]
    fn every_missing_or_invalid_setting_is_named() {
        let err = load(&[
            ("SLACK_BOT_TOKEN", "xapp-wrong"),
            ("INCD_TIMEZONE", "Mars/Olympus"),
            ("INCD_BROADCAST_CHANNELS", "#general"),
            ("PAGERDUTY_ROUTING_KEY", "short"),
        ])
        .unwrap_err();
        let all = err.to_string();
        for needle in [
            "SLACK_BOT_TOKEN",
            "SLACK_APP_TOKEN",
            "INCD_TIMEZONE",
            "INCD_BROADCAST_CHANNELS",
            "PAGERDUTY_ROUTING_KEY",
        ] {
            assert!(all.contains(needle), "{needle} not named in: {all}");
        }
    }

    #[test]
    fn env_lists_are_comma_separated_and_trimmed() {
        let mut e = minimal();
        e.push(("INCD_BROADCAST_CHANNELS", " C111, C222 ,,"));
        e.push(("INCD_INVITE_USERS", "U1,W2"));
        e.push(("SLACK_API_URL", "http://127.0.0.1:9/api/"));
        let s = load(&e).unwrap();
        assert_eq!(s.slack.broadcast_channels, vec!["C111", "C222"]);
        assert_eq!(s.slack.invite_users, vec!["U1", "W2"]);
        assert_eq!(s.slack.api_url, "http://127.0.0.1:9/api");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let mut e = minimal();
        e.push(("PAGERDUTY_ROUTING_KEY", "abcdefabcdefabcdefabcdefabcdef12"));
        e.push(("NOTION_TOKEN", "ntn_supersecret"));
        e.push(("NOTION_DATABASE_ID", "db1"));
        let s = load(&e).unwrap();
        let dbg = format!("{s:?}");
        for secret in [
            "xoxb-1-2-3",
            "xapp-1-2-3",
            "abcdefabcdefabcdefabcdefabcdef12",
            "ntn_supersecret",
        ] {
            assert!(!dbg.contains(secret), "secret leaked in Debug");
        }
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let r: Result<FileConfig, _> = toml::from_str("[slack]\nbot_token = \"xoxb-x\"\n");
        assert!(r.is_err(), "tokens must not be accepted from the file");
    }

    #[test]
    fn example_config_parses_and_validates() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/incd.example.toml"
        ))
        .unwrap();
        let file: FileConfig = toml::from_str(&text).unwrap();
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config"));
        build(file, &env(&minimal()), &dir).unwrap();
    }

    #[test]
    fn nudge_intervals_come_from_the_file_and_incd_nudge_after_overrides_them() {
        use crate::incident::nudge::Interval;
        use std::time::Duration as D;
        let file: FileConfig =
            toml::from_str("[nudges]\nsev2 = \"5m\"\n[timeline]\nemoji = \":round_pushpin:\"\n")
                .unwrap();
        let s = build(file, &env(&minimal()), Path::new("")).unwrap();
        assert_eq!(
            s.nudges.interval("sev1"),
            Interval::Every(D::from_secs(900))
        );
        assert_eq!(
            s.nudges.interval("sev2"),
            Interval::Every(D::from_secs(300))
        );
        assert_eq!(s.nudges.interval("sev4"), Interval::Off);
        assert_eq!(s.timeline_emoji, "round_pushpin");

        let mut e = minimal();
        e.push(("INCD_NUDGE_AFTER", "2s"));
        let s = build(FileConfig::default(), &env(&e), Path::new("")).unwrap();
        assert_eq!(s.nudges.interval("sev4"), Interval::Every(D::from_secs(2)));
        let mut e = minimal();
        e.push(("INCD_NUDGE_AFTER", "off"));
        let s = build(FileConfig::default(), &env(&e), Path::new("")).unwrap();
        assert_eq!(s.nudges.interval("sev1"), Interval::Off);

        let mut e = minimal();
        e.push(("INCD_NUDGE_AFTER", "soon"));
        let err = build(FileConfig::default(), &env(&e), Path::new("")).unwrap_err();
        assert!(err.to_string().contains("INCD_NUDGE_AFTER"), "{err}");
        let file: FileConfig = toml::from_str("[nudges]\nsev9 = \"5m\"\n").unwrap();
        assert!(build(file, &env(&minimal()), Path::new("")).is_err());
    }
}
