//! Composition root: builds the context (clients, store, clock), the workflow runner and the
//! handlers' dispatcher, starts the socket, the runner's resume and timers, and the health listener, and runs
//! incd until shutdown. Nothing but `main.rs` imports this module.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use crate::clock::SystemClock;
use crate::config::Settings;
use crate::context::{Ctx, Parts};
use crate::incident::ChannelId;
use crate::integrations::notion::Notion;
use crate::integrations::pagerduty::Pager;
use crate::metrics::Metrics;
use crate::net::http_client;
use crate::slack::api::SlackApi;
use crate::slack::socket::{KeepAlive, SocketMode};
use crate::store::Store;
use crate::workflow::runner::Runner;

/// How long shutdown waits for in-flight steps before leaving the rest to the next start.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Build the shared context from settings; opens (and migrates) the store.
async fn build_ctx(settings: Settings) -> Result<Ctx> {
    let metrics = Arc::new(Metrics::new());
    let http = http_client()?;
    let store = Store::from_settings(&settings).await?;
    let mut slack = SlackApi::new(
        http.clone(),
        &settings.slack.api_url,
        settings.slack.bot_token.clone(),
        settings.slack.app_token.clone(),
        metrics.clone(),
    );
    if let Some(scale) = std::env::var("INCD_SLACK_RATE_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        slack = slack.with_rate_scale(scale);
    }
    if let Some(burst) = std::env::var("INCD_SLACK_POST_BURST")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        slack = slack.with_post_burst(burst);
    }
    // Replicas share Slack's per-channel budget: each takes its share.
    let spacing = env_ms("INCD_SLACK_POST_SPACING_MS").unwrap_or(crate::slack::api::POST_SPACING);
    slack = slack.with_post_spacing(spacing * settings.replicas);
    let pager = settings
        .pagerduty
        .clone()
        .map(|p| Pager::new(http.clone(), p));
    let notion = settings
        .notion
        .clone()
        .map(|n| Notion::new(http.clone(), n));
    Ok(Ctx::new(Parts {
        settings,
        store,
        slack,
        pager,
        notion,
        metrics,
        clock: Arc::new(SystemClock),
    }))
}

/// Run incd until `shutdown` fires: check the bot token, resume unfinished work, fire timers,
/// serve Socket Mode (and the optional health listener), then drain.
pub async fn run(settings: Settings, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    tracing::info!(
        connections = settings.slack.connections,
        broadcast_channels = settings.slack.broadcast_channels.len(),
        integrations = %settings.integrations_summary(),
        data_dir = %settings.data_dir.display(),
        store = if settings.database_url.is_some() { "postgres" } else { "sqlite" },
        instance = %settings.instance,
        "starting incd"
    );
    let ctx = Arc::new(build_ctx(settings).await?);
    let runner = Runner::new(ctx.clone(), ctx.settings.instance.clone());
    // Before the socket opens: a submission handled meanwhile claims leases under the same
    // owner name, which must not be taken for the previous run's. A database that fails here
    // leaves them to expire; the once-a-minute rescan then resumes their work.
    if let Err(e) = runner.free_previous_leases().await {
        tracing::error!(
            error = format!("{e:#}"),
            "could not free the previous run's leases; their work resumes once they expire"
        );
    }

    // Connect at once; the token check below runs while the socket opens. The socket has its
    // own Slack client (its own pool and rate gates): `apps.connections.open` uses the app
    // token and must never wait behind a burst of bot-token calls.
    let (sock_tx, sock_rx) = watch::channel(false);
    let dispatcher = Arc::new(crate::handlers::Dispatcher::new(runner.clone()));
    let socket = Arc::new(SocketMode::new(
        Arc::new(SlackApi::new(
            http_client()?,
            &ctx.settings.slack.api_url,
            ctx.settings.slack.bot_token.clone(),
            ctx.settings.slack.app_token.clone(),
            ctx.metrics.clone(),
        )),
        dispatcher,
        ctx.metrics.clone(),
        ctx.settings.slack.connections,
        keepalive_from_env(),
    ));
    let socket_task = tokio::spawn(socket.run(sock_rx));
    let stop_socket = |tx: &watch::Sender<bool>| {
        if tx.send(true).is_err() {
            tracing::debug!("the socket had already stopped");
        }
    };

    // Who are we? Validates the bot token early. Slack being unreachable is not fatal (the socket
    // keeps retrying and the id only filters ourselves from invites); a refused token is.
    match ctx.slack.whoami().await {
        Ok(me) => {
            if let Some(u) = me.user_id {
                ctx.set_bot_user_id(u);
            }
            tracing::info!(team = %me.team, bot = %me.user, "bot token accepted");
        }
        Err(e) if e.code().is_some() => {
            stop_socket(&sock_tx);
            if tokio::time::timeout(Duration::from_secs(3), socket_task)
                .await
                .is_err()
            {
                tracing::warn!("the socket did not stop in time");
            }
            anyhow::bail!("Slack refused SLACK_BOT_TOKEN ({e}); check the Bot User OAuth Token (xoxb-) of the app, or run `incd doctor`")
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not reach Slack to check the bot token; continuing")
        }
    }

    let c = ctx.clone();
    runner.spawn_tracked(async move { ensure_broadcast_membership(&c).await });
    let c = ctx.clone();
    runner.spawn_tracked(async move {
        if let Some(notion) = &c.notion {
            notion.warm_up().await;
        }
    });

    // The database can fail right after it opened (PostgreSQL cut off): keep serving (acks,
    // "try again in a minute") and let the scheduler's once-a-minute rescan resume the work.
    match runner.resume_all().await {
        Ok(0) => {}
        Ok(resumed) => tracing::info!(resumed, "resumed unfinished incidents"),
        Err(e) => tracing::error!(
            error = format!("{e:#}"),
            "could not resume unfinished work yet; the rescan tries again every minute"
        ),
    }
    let timers = tokio::spawn(crate::workflow::timers::run_scheduler(
        runner.clone(),
        shutdown.clone(),
    ));

    let http_task = ctx.settings.http_addr.map(|addr| {
        let health = crate::http::Health {
            metrics: ctx.metrics.clone(),
            store: ctx.store.clone(),
        };
        tokio::spawn(crate::http::serve(health, addr, shutdown.clone()))
    });

    // An error means the sender is gone, which is shutdown too.
    let _ = shutdown.wait_for(|s| *s).await;
    tracing::info!("shutting down: no new work is taken; finishing steps in flight");
    runner.begin_shutdown();
    stop_socket(&sock_tx);
    if tokio::time::timeout(Duration::from_secs(3), socket_task)
        .await
        .is_err()
    {
        tracing::warn!("the socket did not stop in time");
    }
    if !runner.wait_idle(SHUTDOWN_GRACE).await {
        tracing::warn!("some steps were still running; they resume on the next start");
    }
    timers.abort();
    if let Some(t) = http_task {
        t.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Join every public broadcast channel the bot is not a member of yet, so announcements never hit
/// `not_in_channel`. Private channels need a person to `/invite` the bot; that is logged.
async fn ensure_broadcast_membership(ctx: &Ctx) {
    for channel in &ctx.settings.slack.broadcast_channels {
        let channel = ChannelId::from(channel.as_str());
        let info = match ctx.slack.info(&channel).await {
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
        match ctx.slack.join(&channel).await {
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
