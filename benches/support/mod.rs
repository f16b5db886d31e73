//! Bench harness: the fakes of Slack, PagerDuty and Notion with an injected latency, and the real
//! `incd` release binary configured only through its environment, exactly like
//! `tests/common/mod.rs` does.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use incd_fakes::notion::{FakeNotion, Schema};
use incd_fakes::pagerduty::FakePagerDuty;
use incd_fakes::slack::{FakeSlack, Message, BOT_USER_ID, DEFAULT_USER};

/// Second human in the fake workspace (the commander in the latency runs).
pub const BOB: &str = "U0BOB";
/// Responder invited to every incident (`INCD_INVITE_USERS`).
pub const CAROL: &str = "U0CAROL";

/// The real incd process.
pub struct Incd {
    child: Option<Child>,
    pub log: PathBuf,
    pub spawned_at: Instant,
    pid_at_start: u32,
}

impl Incd {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
    pub fn proc_status_bytes(&self, key: &str) -> Option<u64> {
        proc_status_bytes(self.pid(), key)
    }

    /// Print the log to stderr (on failure).
    pub fn dump_log(&self, why: &str) {
        eprintln!(
            "----- incd log ({}) after failure: {why} -----\n{}----- end of incd log -----",
            self.log.display(),
            self.log_text()
        );
    }
}

impl Drop for Incd {
    fn drop(&mut self) {
        self.kill9();
        // With INCD_BENCH_LOG set (a RUST_LOG filter for incd), keep the log for reading.
        if std::env::var_os("INCD_BENCH_LOG").is_some() {
            let keep = std::env::temp_dir().join(format!("incd-bench-{}.log", self.pid_at_start));
            let _ = std::fs::copy(&self.log, &keep);
            eprintln!("incd log kept: {}", keep.display());
        }
    }
}

/// One section's world: the three fakes, a data directory, and incd's environment.
pub struct World {
    pub slack: FakeSlack,
    pub pd: FakePagerDuty,
    pub notion: FakeNotion,
    pub dir: tempfile::TempDir,
    /// The two broadcast channels (the bot is a member of both).
    pub broadcast: Vec<String>,
    pub env: Vec<(String, String)>,
    pub latency: Duration,
    runs: usize,
}

impl World {
    /// Fake Slack with alice, bob and carol, `#general`, two broadcast channels the bot is a member
    /// of; fake PagerDuty; fake Notion with a database of `Schema::incident_default()`. Every
    /// external call of incd is delayed by `latency`.
    pub async fn new(latency: Duration) -> World {
        let slack = FakeSlack::start().await;
        slack.add_user(BOB, "bob");
        slack.add_user(CAROL, "carol");
        let b1 = slack.add_channel("incidents", &[BOT_USER_ID, DEFAULT_USER]);
        let b2 = slack.add_channel("engineering", &[BOT_USER_ID, BOB]);
        let pd = FakePagerDuty::start().await;
        let notion = FakeNotion::start().await;
        let db = notion.add_database("Incident", Schema::incident_default());
        slack.set_latency(latency);
        pd.set_latency(latency);
        notion.set_latency(latency);
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let env: Vec<(String, String)> = vec![
            ("SLACK_API_URL".into(), slack.api_url()),
            ("SLACK_BOT_TOKEN".into(), slack.bot_token()),
            ("SLACK_APP_TOKEN".into(), slack.app_token()),
            ("INCD_BROADCAST_CHANNELS".into(), format!("{b1},{b2}")),
            ("INCD_INVITE_USERS".into(), CAROL.into()),
            ("INCD_DATA_DIR".into(), data_dir.display().to_string()),
            ("INCD_TIMEZONE".into(), "UTC".into()),
            ("PAGERDUTY_ROUTING_KEY".into(), pd.routing_key().into()),
            ("PAGERDUTY_EVENTS_URL".into(), pd.url()),
            ("NOTION_TOKEN".into(), notion.token().into()),
            ("NOTION_DATABASE_ID".into(), db),
            ("NOTION_API_URL".into(), notion.url()),
            (
                "RUST_LOG".into(),
                std::env::var("INCD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        ];
        World {
            slack,
            pd,
            notion,
            dir,
            broadcast: vec![b1, b2],
            env,
            latency,
            runs: 0,
        }
    }

    /// Set (or replace) an environment variable for the next start.
    pub fn set_env(&mut self, key: &str, value: impl Into<String>) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Start incd (no waiting). stdout and stderr go to a log file in the temp dir.
    pub fn spawn(&mut self) -> Incd {
        self.runs += 1;
        let log = self.dir.path().join(format!("incd-{}.log", self.runs));
        let file = std::fs::File::create(&log).expect("create log file");
        // An absent INCD_CONFIG file is an error; point at an empty one.
        let config = self.dir.path().join("none.toml");
        std::fs::write(&config, "").expect("write empty config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_incd"));
        cmd.arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("INCD_CONFIG", &config)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log file"))
            .stderr(file);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let spawned_at = Instant::now();
        let child = cmd.spawn().expect("start incd");
        Incd {
            pid_at_start: child.id(),
            child: Some(child),
            log,
            spawned_at,
        }
    }

    /// Start incd and wait until it holds `n` live Socket Mode connections.
    pub async fn start(&mut self, n: usize, within: Duration) -> Result<Incd, (Incd, String)> {
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
}

/// A `kB` field of `/proc/<pid>/status`, in bytes.
pub fn proc_status_bytes(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Where a process's resident set is, from `/proc/<pid>/smaps`: the binary's own pages, the
/// brk heap, anonymous mappings (malloc arenas of other threads, thread stacks), shared
/// libraries; plus the thread count.
pub fn rss_breakdown(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let exe = exe.to_string_lossy().to_string();
    let mut by: Vec<(&'static str, u64, u64)> = Vec::new();
    let mut current = "other";
    let mut anon_regions = 0u64;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let path = line.split_whitespace().nth(5).unwrap_or("");
            let perms = line.split_whitespace().nth(1).unwrap_or("");
            current = if path == exe.as_str() || path.ends_with("/incd") {
                match perms {
                    "r-xp" => "binary code",
                    "r--p" => "binary read-only data",
                    _ => "binary writable data",
                }
            } else if path == "[heap]" {
                "brk heap (main-thread malloc)"
            } else if path == "[stack]" {
                "main stack"
            } else if path.is_empty() {
                anon_regions += 1;
                "anonymous (thread arenas, thread stacks)"
            } else if path.starts_with('/') {
                "shared libraries"
            } else {
                "other"
            };
        } else if let Some(v) = line.strip_prefix("Rss:") {
            let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            match by.iter_mut().find(|(c, _, _)| *c == current) {
                Some(e) => {
                    e.1 += kb;
                    e.2 += 1;
                }
                None => by.push((current, kb, 1)),
            }
        }
    }
    by.sort_by_key(|e| std::cmp::Reverse(e.1));
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    let parts: Vec<String> = by
        .iter()
        .filter(|(_, kb, _)| *kb > 0)
        .map(|(c, kb, n)| format!("{c} {} kB ({n} mappings)", kb))
        .collect();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    Some(format!(
        "{}; {threads} threads, {anon_regions} anonymous mappings; RssAnon {}, RssFile {}",
        parts.join(" · "),
        field("RssAnon:"),
        field("RssFile:")
    ))
}

/// `text` plus the serialised blocks of a message (what a person sees).
pub fn text_of(m: &Message) -> String {
    match &m.blocks {
        Some(b) => format!("{} {}", m.text, b),
        None => m.text.clone(),
    }
}

/// The `(incident, step)` marker incd attaches to its messages, if any.
pub fn marker(m: &Message) -> Option<(&str, &str)> {
    let p = m.metadata.as_ref()?.get("event_payload")?;
    Some((p.get("incident")?.as_str()?, p.get("step")?.as_str()?))
}

/// Nearest-rank percentile of an ascending slice (`q` in 0..=1).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Milliseconds with a precision that suits the size.
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 1000.0 {
        format!("{v:.1} ms")
    } else {
        format!("{:.2} s", v / 1000.0)
    }
}

/// `d` as a multiple of `l` (`"-"` when `l` is zero).
pub fn times_l(d: Duration, l: Duration) -> String {
    if l.is_zero() {
        "-".into()
    } else {
        format!("{:.2} L", d.as_secs_f64() / l.as_secs_f64())
    }
}

/// Bytes as MiB, and as MB (the unit of the targets).
pub fn mib(b: u64) -> String {
    format!(
        "{:.1} MiB ({:.1} MB)",
        b as f64 / (1024.0 * 1024.0),
        b as f64 / 1e6
    )
}

/// Cores, memory, CPU model of this machine.
pub fn machine() -> (usize, u64, String) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    (cores, mem, cpu)
}
