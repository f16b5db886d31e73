//! `incd doctor`: check a configuration against the real services and print a checklist with a
//! plain-language fix for every failure. Exit status 0 only when everything required passes.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::config::Settings;
use crate::incident::ids::ChannelId;
use crate::integrations::notion::Notion;
use crate::integrations::pagerduty::Pager;
use crate::integrations::Check;
use crate::metrics::Metrics;
use crate::net::http_client;
use crate::slack::api::SlackApi;
use crate::slack::manifest::bot_scopes;

/// How long doctor waits for the Socket Mode `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Run every check.
pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Check>> {
    let http = http_client()?;
    let slack = SlackApi::new(
        http.clone(),
        &settings.slack.api_url,
        settings.slack.bot_token.clone(),
        settings.slack.app_token.clone(),
        std::sync::Arc::new(Metrics::new()),
    );
    let mut checks = Vec::new();
    checks.extend(check_bot_token(&slack).await);
    checks.push(check_socket(&slack).await);
    for channel in &settings.slack.broadcast_channels {
        checks.push(check_broadcast(&slack, channel).await);
    }
    match &settings.pagerduty {
        Some(p) => checks.extend(Pager::new(http.clone(), p.clone()).check().await),
        None => checks.push(Check::pass("PagerDuty", "not configured (paging is off)")),
    }
    match &settings.notion {
        Some(n) => checks.extend(Notion::new(http.clone(), n.clone()).check().await),
        None => checks.push(Check::pass(
            "Notion",
            "not configured (post-mortems are off)",
        )),
    }
    Ok(checks)
}

async fn check_bot_token(slack: &SlackApi) -> Vec<Check> {
    let name = "Slack bot token (SLACK_BOT_TOKEN)";
    match slack.whoami().await {
        Ok(me) => {
            let or_unknown = |s: &str| if s.is_empty() { "?".to_string() } else { s.to_string() };
            let mut out = vec![Check::pass(
                name,
                format!(
                    "valid for team {} as {}",
                    or_unknown(&me.team),
                    or_unknown(&me.user)
                ),
            )];
            let granted: BTreeSet<String> = me
                .scopes
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let missing: Vec<&str> = bot_scopes()
                .into_iter()
                .filter(|s| !granted.contains(*s))
                .collect();
            if missing.is_empty() {
                out.push(Check::pass("Slack bot scopes", "the token has every scope incd needs"));
            } else {
                out.push(Check::fail(
                    "Slack bot scopes",
                    format!("missing: {}", missing.join(", ")),
                    "Update the app from `incd manifest` (OAuth & Permissions > Scopes), then reinstall it to the workspace and use the new bot token.",
                ));
            }
            out
        }
        Err(e) => vec![Check::fail(
            name,
            e.human(),
            match e.code() {
                Some(_) => "Copy the Bot User OAuth Token (starts with xoxb-) from OAuth & Permissions into SLACK_BOT_TOKEN; reinstall the app if it was revoked.",
                None => "Check that this machine can reach Slack (SLACK_API_URL) and try again.",
            },
        )],
    }
}

async fn check_socket(slack: &SlackApi) -> Check {
    let name = "Socket Mode (SLACK_APP_TOKEN)";
    let url = match slack.open_connection().await {
        Ok(u) => u,
        Err(e) => {
            let fix = match e.code() {
                Some("link_disabled") => "Turn Socket Mode on under Settings > Socket Mode in the app settings.",
                Some(_) => "Create an app-level token with the connections:write scope (Basic Information > App-Level Tokens) and put it (xapp-...) in SLACK_APP_TOKEN.",
                None => "Check that this machine can reach Slack and try again.",
            };
            return Check::fail(name, e.human(), fix);
        }
    };
    let connect = async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.ok()?;
        while let Some(Ok(msg)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                let kind = v["type"].as_str().map(String::from);
                let _ = ws.close(None).await;
                return kind;
            }
        }
        None
    };
    match tokio::time::timeout(HELLO_TIMEOUT, connect).await {
        Ok(Some(k)) if k == "hello" => Check::pass(name, "opened a Socket Mode connection and got hello"),
        Ok(other) => Check::fail(
            name,
            format!("the websocket did not say hello ({})", other.unwrap_or_else(|| "closed".into())),
            "Check that Socket Mode is on for the app and that outbound websockets (wss://) are allowed from this machine.",
        ),
        Err(_) => Check::fail(
            name,
            "no hello within 10 s",
            "Check that outbound websockets (wss://) are allowed from this machine.",
        ),
    }
}

async fn check_broadcast(slack: &SlackApi, channel: &str) -> Check {
    let name = format!("Broadcast channel {channel}");
    match slack.info(&ChannelId::from(channel)).await {
        Ok(info) => {
            let label = info.name.as_deref().unwrap_or(channel);
            if info.is_archived {
                Check::fail(name, format!("#{label} is archived"), "Unarchive it or remove it from INCD_BROADCAST_CHANNELS.")
            } else if info.is_member {
                Check::pass(name, format!("#{label} exists and incd is a member"))
            } else {
                Check::fail(
                    name,
                    format!("#{label} exists but incd is not a member"),
                    format!("Invite the bot: type `/invite @incd` in #{label}."),
                )
            }
        }
        Err(e) if e.is_code("channel_not_found") => Check::fail(
            name,
            "no such channel visible to incd",
            "Use the channel ID (right-click the channel > Copy link; the ID starts with C) and invite the bot; for a private channel invite it first.",
        ),
        Err(e) => Check::fail(name, e.human(), "Fix the Slack problem above and run doctor again."),
    }
}

/// Print the checklist; returns whether everything passed.
pub fn print(checks: &[Check]) -> bool {
    let mut all_ok = true;
    for c in checks {
        if c.ok {
            println!("[ ok ] {}: {}", c.name, c.detail);
        } else {
            all_ok = false;
            println!("[FAIL] {}: {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                println!("       fix: {fix}");
            }
        }
    }
    println!();
    if all_ok {
        println!("All checks passed.");
    } else {
        println!(
            "{} check(s) failed.",
            checks.iter().filter(|c| !c.ok).count()
        );
    }
    all_ok
}
