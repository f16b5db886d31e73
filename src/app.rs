//! Composition root: builds the clients, the store and the handlers, and runs incd until shutdown.
//!
//! [`App`] is the one shared context handed to handlers and workflows (settings, store, clients,
//! metrics, per-incident locks and the tracker of in-flight work).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{watch, Notify, OwnedMutexGuard};
use tracing::Instrument;

use crate::config::Settings;
use crate::integrations::notion::Notion;
use crate::integrations::pagerduty::Pager;
use crate::metrics::Metrics;
use crate::net::http_client;
use crate::slack::api::SlackApi;
use crate::slack::socket::{KeepAlive, SocketMode};
use crate::store::Store;

/// How long shutdown waits for in-flight steps before leaving the rest to the next start.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Shared context.
pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub slack: SlackApi,
    pub pager: Option<Pager>,
    pub notion: Option<Notion>,
    pub metrics: Arc<Metrics>,
    bot_user: OnceLock<String>,
    incident_locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Pinned-summary refresh state per incident.
    pub(crate) summaries: crate::workflow::summary::Summaries,
    /// Woken whenever an incident channel is created, or declaring fails for good (integrations
    /// wait for the channel).
    pub(crate) channel_created: Notify,
    background: Mutex<HashSet<(i64, String)>>,
    inflight: AtomicUsize,
    idle: Notify,
    shutting_down: AtomicBool,
}

impl App {
    /// Build everything from settings; opens (and migrates) the store.
    pub fn new(settings: Settings) -> Result<Arc<App>> {
        let metrics = Arc::new(Metrics::new());
        let http = http_client()?;
        let store = Store::open(&settings.data_dir)?;
        let mut slack = SlackApi::new(
            http.clone(),
            &settings.slack.api_url,
            settings.slack.bot_token.clone(),
            settings.slack.app_token.clone(),
            metrics.clone(),
        );
        if let Some(spacing) = env_ms("INCD_SLACK_POST_SPACING_MS") {
            slack = slack.with_post_spacing(spacing);
        }
        let pager = settings
            .pagerduty
            .clone()
            .map(|p| Pager::new(http.clone(), p));
        let notion = settings
            .notion
            .clone()
            .map(|n| Notion::new(http.clone(), n));
        Ok(Arc::new(App {
            settings,
            store,
            slack,
            pager,
            notion,
            metrics,
            bot_user: OnceLock::new(),
            incident_locks: Mutex::new(HashMap::new()),
            summaries: Default::default(),
            channel_created: Notify::new(),
            background: Mutex::new(HashSet::new()),
            inflight: AtomicUsize::new(0),
            idle: Notify::new(),
            shutting_down: AtomicBool::new(false),
        }))
    }

    /// The bot's own user id, once `auth.test` told us.
    pub fn bot_user_id(&self) -> Option<&str> {
        self.bot_user.get().map(String::as_str)
    }

    /// Serialises workflows of one incident (declare, then resolve).
    pub async fn lock_incident(&self, id: i64) -> OwnedMutexGuard<()> {
        lock_in(&self.incident_locks, id).await
    }

    /// Claim a background step so it runs once per process.
    pub fn claim_background(&self, id: i64, step: &str) -> bool {
        self.background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((id, step.to_string()))
    }

    pub fn release_background(&self, id: i64, step: &str) {
        self.background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(id, step.to_string()));
    }

    /// Whether shutdown has begun (no new work is taken).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Spawn work that shutdown waits for (within [`SHUTDOWN_GRACE`]). A panic inside is logged.
    pub fn spawn_tracked<F>(self: &Arc<Self>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        tokio::spawn(async move {
            let inner = tokio::spawn(fut);
            if let Err(e) = inner.await {
                if e.is_panic() {
                    me.metrics.handler_panic();
                    tracing::error!("a workflow task panicked; its steps will resume on restart");
                }
            }
            if me.inflight.fetch_sub(1, Ordering::SeqCst) == 1 {
                me.idle.notify_waiters();
            }
        });
    }

    /// Start (or resume) the declare workflow of an incident.
    pub fn spawn_declare(self: &Arc<Self>, id: i64) {
        let app = self.clone();
        let span = tracing::info_span!("declare", incident_id = id);
        self.spawn_tracked(
            async move {
                if let Err(e) = crate::workflow::declare::run(app, id).await {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "declare workflow failed; it resumes on restart"
                    );
                }
            }
            .instrument(span),
        );
    }

    /// Start (or resume) the resolve workflow of an incident.
    pub fn spawn_resolve(self: &Arc<Self>, id: i64) {
        let app = self.clone();
        let span = tracing::info_span!("resolve", incident_id = id);
        self.spawn_tracked(
            async move {
                if let Err(e) = crate::workflow::resolve::run(app, id).await {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "resolve workflow failed; it resumes on restart"
                    );
                }
            }
            .instrument(span),
        );
    }

    /// Wait until no tracked work is running, or `limit` passes. True when idle.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.idle.notified();
            if self.inflight.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.inflight.load(Ordering::SeqCst) == 0;
            }
        }
    }
}

async fn lock_in(
    map: &Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    id: i64,
) -> OwnedMutexGuard<()> {
    let m = map
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(id)
        .or_default()
        .clone();
    m.lock_owned().await
}

/// Run incd until `shutdown` fires: check the bot token, resume unfinished work, serve Socket
/// Mode (and the optional health listener), then drain.
pub async fn run(settings: Settings, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    tracing::info!(
        connections = settings.slack.connections,
        broadcast_channels = settings.slack.broadcast_channels.len(),
        integrations = %settings.integrations_summary(),
        data_dir = %settings.data_dir.display(),
        "starting incd"
    );
    let app = App::new(settings)?;

    // Connect at once; the token check below runs while the socket opens.
    let (sock_tx, sock_rx) = watch::channel(false);
    let dispatcher = Arc::new(crate::handlers::Dispatcher::new(app.clone()));
    let socket = Arc::new(SocketMode::new(
        Arc::new(SlackApi::new(
            http_client()?,
            &app.settings.slack.api_url,
            app.settings.slack.bot_token.clone(),
            app.settings.slack.app_token.clone(),
            app.metrics.clone(),
        )),
        dispatcher,
        app.metrics.clone(),
        app.settings.slack.connections,
        keepalive_from_env(),
    ));
    let socket_task = tokio::spawn(socket.run(sock_rx));

    // Who are we? Validates the bot token early. Slack being unreachable is not fatal (the socket
    // keeps retrying and the id only filters ourselves from invites); a refused token is.
    match app.slack.whoami().await {
        Ok(me) => {
            if let Some(u) = me.user_id {
                let _ = app.bot_user.set(u.0);
            }
            tracing::info!(team = %me.team, bot = %me.user, "bot token accepted");
        }
        Err(e) if e.code().is_some() => {
            let _ = sock_tx.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(3), socket_task).await;
            anyhow::bail!("Slack refused SLACK_BOT_TOKEN ({e}); check the Bot User OAuth Token (xoxb-) of the app, or run `incd doctor`")
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not reach Slack to check the bot token; continuing")
        }
    }

    let a = app.clone();
    app.spawn_tracked(async move { ensure_broadcast_membership(&a).await });
    let a = app.clone();
    app.spawn_tracked(async move {
        if let Some(notion) = &a.notion {
            notion.warm_up().await;
        }
    });

    let resumed = crate::workflow::resume_all(&app)?;
    if resumed > 0 {
        tracing::info!(resumed, "resumed unfinished incidents");
    }

    let http_task = app
        .settings
        .http_addr
        .map(|addr| tokio::spawn(crate::http::serve(app.clone(), addr, shutdown.clone())));

    let _ = shutdown.wait_for(|s| *s).await;
    tracing::info!("shutting down: no new work is taken; finishing steps in flight");
    app.shutting_down.store(true, Ordering::SeqCst);
    let _ = sock_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), socket_task).await;
    if !app.wait_idle(SHUTDOWN_GRACE).await {
        tracing::warn!("some steps were still running; they resume on the next start");
    }
    if let Some(t) = http_task {
        t.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Join every public broadcast channel the bot is not a member of yet, so announcements never hit
/// `not_in_channel`. Private channels need a person to `/invite` the bot; that is logged.
async fn ensure_broadcast_membership(app: &App) {
    for channel in &app.settings.slack.broadcast_channels {
        let channel = crate::incident::ids::ChannelId::from(channel.as_str());
        let info = match app.slack.info(&channel).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(channel = %channel, error = %e, "broadcast channel not usable: check the ID and invite the bot (`incd doctor` tells more)");
                continue;
            }
        };
        if info.is_member {
            continue;
        }
        if info.is_private || info.is_archived {
            tracing::error!(channel = %channel, "incd is not a member of this private or archived broadcast channel: invite the bot with /invite @incd");
            continue;
        }
        match app.slack.join(&channel).await {
            Ok(_) => tracing::info!(channel = %channel, "joined broadcast channel"),
            Err(e) => {
                tracing::error!(channel = %channel, error = %e, "could not join broadcast channel: invite the bot with /invite @incd")
            }
        }
    }
}

/// Keep-alive timings, shortened by `INCD_SOCKET_PING_MS`, `INCD_SOCKET_SILENCE_MS` and
/// `INCD_SOCKET_CONNECT_TIMEOUT_MS` (tests).
fn env_ms(key: &str) -> Option<Duration> {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .map(Duration::from_millis)
}

fn keepalive_from_env() -> KeepAlive {
    let ms = env_ms;
    let d = KeepAlive::default();
    KeepAlive {
        ping_interval: ms("INCD_SOCKET_PING_MS").unwrap_or(d.ping_interval),
        silence_limit: ms("INCD_SOCKET_SILENCE_MS").unwrap_or(d.silence_limit),
        connect_timeout: ms("INCD_SOCKET_CONNECT_TIMEOUT_MS").unwrap_or(d.connect_timeout),
    }
}
