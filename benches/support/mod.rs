//! Bench support: the shared harness (`incd_fakes::harness`, also used by the tests) with the
//! fakes of PagerDuty and Notion added and an injected latency on all three, plus the
//! measurement helpers only the benchmark needs.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use incd_fakes::harness::World as Harness;
pub use incd_fakes::harness::{proc_status_bytes, Incd, BOB, CAROL};
use incd_fakes::notion::{FakeNotion, Schema};
use incd_fakes::pagerduty::FakePagerDuty;
use incd_fakes::slack::Message;

/// One section's world: the harness's (fake Slack, data directory, incd's environment, two
/// broadcast channels the bot is a member of), fake PagerDuty and fake Notion, every external
/// call delayed by `latency`. Derefs to the harness world.
pub struct World {
    inner: Harness,
    pub pd: FakePagerDuty,
    pub notion: FakeNotion,
    pub latency: Duration,
}

impl Deref for World {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.inner
    }
}

impl DerefMut for World {
    fn deref_mut(&mut self) -> &mut Harness {
        &mut self.inner
    }
}

impl World {
    /// The harness world plus fake PagerDuty and fake Notion with a database of
    /// `Schema::incident_default()`; the release binary this bench was built with.
    pub async fn new(latency: Duration) -> World {
        let mut inner = Harness::new().await;
        inner.bin = env!("CARGO_BIN_EXE_incd").into();
        let pd = FakePagerDuty::start().await;
        let notion = FakeNotion::start().await;
        let db = notion.add_database("Incident", Schema::incident_default());
        inner.slack.set_latency(latency);
        pd.set_latency(latency);
        notion.set_latency(latency);
        for (k, v) in [
            ("PAGERDUTY_ROUTING_KEY", pd.routing_key().to_string()),
            ("PAGERDUTY_EVENTS_URL", pd.url()),
            ("NOTION_TOKEN", notion.token().to_string()),
            ("NOTION_DATABASE_ID", db),
            ("NOTION_API_URL", notion.url()),
            (
                "RUST_LOG",
                std::env::var("INCD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        ] {
            inner.set_env(k, v);
        }
        World {
            inner,
            pd,
            notion,
            latency,
        }
    }

    /// Start incd and wait until it holds `n` live Socket Mode connections, up to `within`.
    pub async fn start(&mut self, n: usize, within: Duration) -> Result<Incd, (Incd, String)> {
        self.inner.try_start(n, within).await
    }
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
