//! The one harness of the black-box tests (`tests/*.rs`, through `tests/common`) and the
//! benchmarks (`benches/`): starts the fakes and the real `incd` binary, configured only through
//! its public environment interface, and drives Slack like a person would.
//!
//! The binary is `target/<profile>/incd` next to the running test or bench executable (cargo
//! builds it for both), or `INCD_BIN` when set; [`World::bin`] overrides it per world.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::slack::{
    Channel, FakeSlack, FakeSlackConfig, SlashCommand, View, BOT_USER_ID, DEFAULT_USER,
};

/// Generous bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(15);
/// Second human in the fake workspace.
pub const BOB: &str = "U0BOB";
/// Responder invited to every incident.
pub const CAROL: &str = "U0CAROL";

/// The real incd process.
pub struct Incd {
    child: Option<Child>,
    pub log: PathBuf,
    /// When the process was started.
    pub spawned_at: Instant,
    pid_at_start: u32,
}

impl Incd {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for exit; returns the exit status code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Print the log to stderr (on failure).
    pub fn dump_log(&self, why: &str) {
        eprintln!(
            "----- incd log ({}) after failure: {why} -----\n{}----- end of incd log -----",
            self.log.display(),
            self.log_text()
        );
    }

    /// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
    pub fn proc_status_bytes(&self, key: &str) -> Option<u64> {
        proc_status_bytes(self.pid(), key)
    }
}

impl Drop for Incd {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "----- incd log ({}) -----\n{}",
                self.log.display(),
                self.log_text()
            );
        }
        // With INCD_BENCH_LOG set (a RUST_LOG filter for incd), keep the log for reading.
        if std::env::var_os("INCD_BENCH_LOG").is_some() {
            let keep = std::env::temp_dir().join(format!("incd-bench-{}.log", self.pid_at_start));
            let _ = std::fs::copy(&self.log, &keep);
            eprintln!("incd log kept: {}", keep.display());
        }
    }
}

/// A `kB` field of `/proc/<pid>/status`, in bytes.
pub fn proc_status_bytes(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// The incd binary next to the running test or bench executable (`target/<profile>/deps/x` →
/// `target/<profile>/incd`), or `INCD_BIN`.
pub fn default_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("INCD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("path of the running test");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps");
    profile_dir.join(format!("incd{}", std::env::consts::EXE_SUFFIX))
}

/// One test's world: fakes, a data directory, and the environment incd is started with.
pub struct World {
    pub slack: FakeSlack,
    pub dir: tempfile::TempDir,
    pub broadcast: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The incd binary started by [`World::spawn`].
    pub bin: PathBuf,
    runs: usize,
}

impl World {
    /// Fake Slack with alice, bob and carol, `#general`, and two broadcast channels the bot is a
    /// member of.
    pub async fn new() -> World {
        World::with_config(FakeSlackConfig::default()).await
    }

    /// Like [`World::new`] with a configured fake Slack.
    pub async fn with_config(cfg: FakeSlackConfig) -> World {
        let slack = FakeSlack::start_with(cfg).await;
        slack.add_user(BOB, "bob");
        slack.add_user(CAROL, "carol");
        let b1 = slack.add_channel("incidents", &[BOT_USER_ID, DEFAULT_USER]);
        let b2 = slack.add_channel("engineering", &[BOT_USER_ID, BOB]);
        let dir = tempfile::tempdir().unwrap();
        let mut w = World {
            slack,
            dir,
            broadcast: vec![b1, b2],
            env: Vec::new(),
            bin: default_binary(),
            runs: 0,
        };
        w.env = vec![
            ("SLACK_API_URL".into(), w.slack.api_url()),
            ("SLACK_BOT_TOKEN".into(), w.slack.bot_token()),
            ("SLACK_APP_TOKEN".into(), w.slack.app_token()),
            ("INCD_BROADCAST_CHANNELS".into(), w.broadcast.join(",")),
            ("INCD_INVITE_USERS".into(), CAROL.into()),
            ("INCD_DATA_DIR".into(), w.data_dir().display().to_string()),
            ("INCD_TIMEZONE".into(), "UTC".into()),
            ("RUST_LOG".into(), "info,incd=debug".into()),
        ];
        w
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Set (or replace) an environment variable for the next start.
    pub fn set_env(&mut self, key: &str, value: impl Into<String>) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    pub fn remove_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// Start incd (no waiting).
    pub fn spawn(&mut self) -> Incd {
        self.runs += 1;
        let log = self.dir.path().join(format!("incd-{}.log", self.runs));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("INCD_CONFIG", self.dir.path().join("none.toml"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        // An absent INCD_CONFIG file is an error; point at an empty one.
        std::fs::write(self.dir.path().join("none.toml"), "").unwrap();
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.bin.display()));
        Incd {
            pid_at_start: child.id(),
            child: Some(child),
            log,
            spawned_at,
        }
    }

    /// Start incd and wait until it holds `n` Socket Mode connections (panics after [`WAIT`]).
    pub async fn start(&mut self, n: usize) -> Incd {
        match self.try_start(n, WAIT).await {
            Ok(incd) => incd,
            Err((incd, why)) => panic!("{why}\n{}", incd.log_text()),
        }
    }

    /// Start incd and wait until it holds `n` live Socket Mode connections, up to `within`.
    pub async fn try_start(&mut self, n: usize, within: Duration) -> Result<Incd, (Incd, String)> {
        let mut incd = self.spawn();
        let spawned = incd.spawned_at;
        let deadline = spawned + within;
        loop {
            let live = self
                .slack
                .live_connections()
                .iter()
                .filter(|c| c.opened_at >= spawned)
                .count();
            if live >= n {
                return Ok(incd);
            }
            if !incd.running() {
                return Err((incd, "incd exited during start-up".into()));
            }
            if Instant::now() > deadline {
                return Err((
                    incd,
                    format!("incd did not open {n} Socket Mode connection(s) within {within:?}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// `/incident <text>` typed by `user` in `channel`; returns the opened modal.
    pub async fn open_declare_form(&self, user: &str, channel: &str, text: &str) -> View {
        let d = self
            .slack
            .send_slash_command(SlashCommand::new("/incident", text, user, channel))
            .await
            .unwrap();
        let ack = self.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
        assert!(ack.violation.is_none(), "bad ack: {ack:?}");
        self.slack.wait_view_opened(WAIT).await.unwrap()
    }

    /// Full declare by a person: command, form, submit; returns the incident channel.
    pub async fn declare(&self, user: &str, title: &str, severity: &str) -> Channel {
        let before: Vec<String> = self.slack.channels().into_iter().map(|c| c.id).collect();
        let view = self
            .open_declare_form(user, crate::slack::GENERAL_CHANNEL, "")
            .await;
        let d = self
            .slack
            .submit_view_with(&view.id, user, &[("title", title), ("severity", severity)])
            .await
            .unwrap();
        let ack = self.slack.wait_ack(&d.envelope_id, WAIT).await.unwrap();
        assert!(ack.violation.is_none(), "bad ack: {ack:?}");
        self.wait_new_incident_channel(&before).await
    }

    /// Wait for an `incd-…` channel not in `before`.
    pub async fn wait_new_incident_channel(&self, before: &[String]) -> Channel {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(c) = self
                .slack
                .channels()
                .into_iter()
                .find(|c| c.name.starts_with("incd-") && !before.contains(&c.id))
            {
                return c;
            }
            assert!(Instant::now() < deadline, "no incident channel was created");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until `cond` holds, polling the fakes.
    pub async fn until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        until(what, WAIT, &mut cond).await
    }
}

pub async fn until(what: &str, within: Duration, cond: &mut dyn FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Today's date as incd names incidents (UTC).
pub fn today() -> String {
    chrono::Utc::now().format("%Y%m%d").to_string()
}

/// Whether `name` is `incd-YYYYMMDD-adjective-animal` for today with listed words.
pub fn is_incident_channel_name(name: &str) -> bool {
    let adjectives = words("adjectives.txt");
    let animals = words("animals.txt");
    let Some(rest) = name.strip_prefix("incd-") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('-').collect();
    parts.len() == 3
        && parts[0] == today()
        && adjectives.iter().any(|w| w == parts[1])
        && animals.iter().any(|w| w == parts[2])
}

fn words(file: &str) -> Vec<String> {
    // The wordlists of the incd package (this crate lives in its `tests/fakes`).
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../wordlists")
        .join(file);
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}
