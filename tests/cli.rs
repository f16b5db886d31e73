//! The binary's command-line and configuration interface, from outside.

mod common;

use std::process::Command;

use common::*;
use incd_fakes::slack::DEFAULT_USER;

fn incd(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_incd"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn missing_and_invalid_settings_are_each_named_and_exit_non_zero() {
    let (code, out) = incd(
        &["run"],
        &[
            ("INCD_TIMEZONE", "Moon/Base"),
            ("SLACK_API_URL", "ftp://nope"),
            ("INCD_INVITE_USERS", "@alice"),
        ],
    );
    assert_eq!(code, 2, "{out}");
    for name in [
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "INCD_TIMEZONE",
        "SLACK_API_URL",
        "INCD_INVITE_USERS",
    ] {
        assert!(out.contains(name), "{name} not named:\n{out}");
    }
}

#[test]
fn check_config_accepts_a_valid_environment_and_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("incd.toml");
    std::fs::write(
        &file,
        "[slack]\nconnections = 3\n[incidents]\ntimezone = \"Europe/Berlin\"\n",
    )
    .unwrap();
    let (code, out) = incd(
        &["check-config", "--config", file.to_str().unwrap()],
        &[("SLACK_BOT_TOKEN", "xoxb-1"), ("SLACK_APP_TOKEN", "xapp-1")],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("configuration is valid"));
    assert!(
        !out.contains("xoxb-1") && !out.contains("xapp-1"),
        "tokens printed"
    );
}

#[test]
fn manifest_needs_no_configuration() {
    let (code, out) = incd(&["manifest"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("socket_mode_enabled: true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_names_use_the_configured_time_zone_and_tokens_never_reach_the_log() {
    let mut w = World::new().await;
    // A zone whose date differs from UTC's for most of the day.
    let tz = "Pacific/Kiritimati";
    w.set_env("INCD_TIMEZONE", tz);
    w.set_env("RUST_LOG", "trace");
    let incd = w.start(1).await;
    let ch = w.declare(DEFAULT_USER, "Zone check", "sev4").await;
    let zone: chrono_tz::Tz = tz.parse().unwrap();
    let expected = chrono::Utc::now()
        .with_timezone(&zone)
        .format("%Y%m%d")
        .to_string();
    assert!(
        ch.name.starts_with(&format!("incd-{expected}-")),
        "{} should carry {expected}",
        ch.name
    );
    let log = incd.log_text();
    assert!(!log.is_empty());
    assert!(!log.contains(&w.slack.bot_token()), "bot token in the log");
    assert!(!log.contains(&w.slack.app_token()), "app token in the log");
}
