//! incd benchmark (issues 5 and 10): the real release binary against in-repo fakes of Slack,
//! PagerDuty and Notion, every external call delayed by an injected latency L, measured the way
//! users meet it: incidents back to back with no pause, people declaring at the same moment.
//!
//! ```sh
//! cargo bench --bench incd                          # full run, L = 50 ms
//! cargo bench --bench incd -- --quick               # smoke run
//! cargo bench --bench incd -- --latency-ms 100 --only declare,burst
//! ```
//!
//! Prints one table on stdout (progress goes to stderr; nothing is written outside temporary
//! directories). Exits non-zero when something did not complete; missed targets only show as MISS.
//! What each row measures and how: `docs/benchmarks.md`.

mod support;

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use incd_fakes::notion::FakeNotion;
use incd_fakes::pagerduty::{AlertStatus, Call, FakePagerDuty};
use incd_fakes::slack::{
    FakeSlack, Message, SlashCommand, View, DEFAULT_POST_BURST, DEFAULT_USER, GENERAL_CHANNEL,
};
use support::*;

/// Bound on every single wait.
const WAIT: Duration = Duration::from_secs(20);
/// How often the PagerDuty and Notion call logs are polled while waiting for an effect.
const CALL_LOG_POLL: Duration = Duration::from_micros(250);
/// How often the whole fake state is sampled during the burst under rate tiers.
const BURST_POLL: Duration = Duration::from_millis(50);
/// ... and during the simultaneous declarations (their figures are a few L).
const SIMULTANEOUS_POLL: Duration = Duration::from_millis(1);
/// Declarations submitted at the same moment with no rate tiers.
const SIMULTANEOUS: usize = 10;
/// The declare effects a person waits for (issue 10): channel, invites, summary, both
/// announcements, page, post-mortem. The topic, the pin and the post-mortem link (bookmark,
/// link in the pinned summary) follow; they make the "fully settled" figure.
const DECLARE_CORE: [&str; 7] = [
    "channel created",
    "members invited",
    "summary posted",
    "announcement, broadcast 1",
    "announcement, broadcast 2",
    "PagerDuty triggered",
    "Notion page created",
];

// -------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    latency: Duration,
    quick: bool,
    trace: bool,
    ack_rate: f64,
    ack_secs: f64,
    incidents: usize,
    burst: usize,
    burst_scale: f64,
    starts: usize,
    only: Option<HashSet<String>>,
}

const SECTIONS: [&str; 6] = [
    "startup",
    "ack",
    "declare",
    "simultaneous",
    "burst",
    "memory",
];

const HELP: &str = "incd benchmark: the real incd binary against fake Slack, PagerDuty and Notion

Usage: cargo bench --bench incd -- [OPTIONS]

  --latency-ms N      latency injected on every Slack/PagerDuty/Notion call (default 50)
  --quick             smoke run: 2 s of acks, 10 incidents, burst of 10, 3 starts
  --ack-rate N        slash commands per second in the ack run (default 200)
  --ack-secs N        length of the ack run in seconds (default 10)
  --incidents N       incidents declared and resolved back to back (default 20)
  --burst N           declarations submitted at once under Slack's tiers (default 50)
  --burst-scale X     time scale of the enforced Slack rate limits in the burst (default 10;
                      incd gets INCD_SLACK_RATE_SCALE=X so its budgets match)
  --starts N          measured start-ups (default 10)
  --only LIST         comma-separated sections: startup,ack,declare,simultaneous,burst,memory
                      (burst measures idle memory too; memory alone is only that, ~3 s)
  --trace             print to stderr the call timeline of the first declare and resolve
                      and every ack over 2 ms
  -h, --help          this text

Environment: INCD_BENCH_LOG=<RUST_LOG filter> runs incd with that filter (default warn) and keeps
each incd log in the temp directory, e.g. INCD_BENCH_LOG=warn,incd=debug to see every Web API
call sent and answered with microsecond timestamps.";

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        latency: Duration::from_millis(50),
        quick: false,
        trace: false,
        ack_rate: 200.0,
        ack_secs: 10.0,
        incidents: 20,
        burst: 50,
        burst_scale: 10.0,
        starts: 10,
        only: None,
    };
    let mut explicit: HashSet<&'static str> = HashSet::new();
    let mut args = std::env::args().skip(1);
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        v.as_deref()
            .and_then(|s| s.parse::<T>().ok())
            .ok_or_else(|| format!("{flag} needs a number"))
    }
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut val = || inline.clone().or_else(|| args.next());
        match flag.as_str() {
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "-h" | "--help" => return Err(HELP.to_string()),
            "--quick" => o.quick = true,
            "--trace" => o.trace = true,
            "--latency-ms" => o.latency = Duration::from_millis(num("--latency-ms", val())?),
            "--ack-rate" => {
                o.ack_rate = num("--ack-rate", val())?;
                explicit.insert("ack-rate");
            }
            "--ack-secs" => {
                o.ack_secs = num("--ack-secs", val())?;
                explicit.insert("ack-secs");
            }
            "--incidents" => {
                o.incidents = num("--incidents", val())?;
                explicit.insert("incidents");
            }
            "--burst" => {
                o.burst = num("--burst", val())?;
                explicit.insert("burst");
            }
            "--burst-scale" => o.burst_scale = num("--burst-scale", val())?,
            "--starts" => {
                o.starts = num("--starts", val())?;
                explicit.insert("starts");
            }
            "--only" => {
                let list = val().ok_or("--only needs a list")?;
                let set: HashSet<String> = list
                    .split(',')
                    .map(|s| s.trim().to_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some(bad) = set.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    return Err(format!("unknown section `{bad}` (use {SECTIONS:?})"));
                }
                o.only = Some(set);
            }
            other => return Err(format!("unknown option `{other}`\n\n{HELP}")),
        }
    }
    if o.quick {
        if !explicit.contains("ack-secs") {
            o.ack_secs = 2.0;
        }
        if !explicit.contains("incidents") {
            o.incidents = 10;
        }
        if !explicit.contains("burst") {
            o.burst = 10;
        }
        if !explicit.contains("starts") {
            o.starts = 3;
        }
    }
    if o.ack_rate <= 0.0 || o.burst_scale <= 0.0 || o.incidents == 0 || o.burst == 0 {
        return Err("rates, scales and counts must be positive".into());
    }
    Ok(o)
}

impl Opts {
    fn runs(&self, section: &str) -> bool {
        self.only.as_ref().is_none_or(|s| s.contains(section))
    }
}

// -------------------------------------------------------------------------------------------
// Report

struct Row {
    measure: String,
    result: String,
    target: String,
    verdict: String,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    details: Vec<String>,
    failures: Vec<String>,
}

impl Report {
    fn row(
        &mut self,
        measure: impl Into<String>,
        result: impl Into<String>,
        target: &str,
        verdict: &str,
    ) {
        self.rows.push(Row {
            measure: measure.into(),
            result: result.into(),
            target: target.into(),
            verdict: verdict.into(),
        });
    }

    fn judged(
        &mut self,
        measure: impl Into<String>,
        result: impl Into<String>,
        target: &str,
        pass: bool,
    ) {
        self.row(measure, result, target, if pass { "PASS" } else { "MISS" });
    }
}

fn progress(msg: &str) {
    eprintln!("incd-bench: {msg}");
}

/// Log the failure with incd's log and return it as the section's error.
fn fail(incd: &Incd, msg: impl Into<String>) -> String {
    let msg = msg.into();
    incd.dump_log(&msg);
    msg
}

// -------------------------------------------------------------------------------------------
// main

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return if e == HELP {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let mut report = Report::default();
    rt.block_on(async {
        if o.runs("startup") {
            progress("start-up");
            if let Err(e) = bench_startup(&o, &mut report).await {
                report.failures.push(format!("start-up: {e}"));
            }
        }
        if o.runs("ack") {
            progress("ack latency");
            if let Err(e) = bench_ack(&o, &mut report).await {
                report.failures.push(format!("ack: {e}"));
            }
        }
        if o.runs("declare") {
            progress("declare and resolve latency");
            if let Err(e) = bench_incidents(&o, &mut report).await {
                report.failures.push(format!("declare/resolve: {e}"));
            }
        }
        if o.runs("simultaneous") {
            progress("simultaneous declarations");
            if let Err(e) = bench_simultaneous(&o, &mut report).await {
                report.failures.push(format!("simultaneous: {e}"));
            }
        }
        if o.runs("memory") && !o.runs("burst") {
            progress("idle memory");
            if let Err(e) = bench_idle_memory(&o, &mut report).await {
                report.failures.push(format!("memory: {e}"));
            }
        }
        if o.runs("burst") {
            progress("burst and memory");
            if let Err(e) = bench_burst(&o, &mut report).await {
                report.failures.push(format!("burst: {e}"));
            }
        }
    });
    print_report(&o, &report, started.elapsed());
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_report(o: &Opts, r: &Report, took: Duration) {
    let (cores, mem, cpu) = machine();
    let size = std::fs::metadata(env!("CARGO_BIN_EXE_incd"))
        .map(|m| m.len())
        .unwrap_or(0);
    let mut out = String::new();
    out.push_str(&format!(
        "\nincd benchmark{} · {} · L = {} ms\n",
        if o.quick { " (--quick)" } else { "" },
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        o.latency.as_millis()
    ));
    out.push_str(&format!(
        "machine: {cores} cores ({cpu}), {:.1} GiB RAM · release binary {} ({} bytes) · run took {:.0} s\n\n",
        mem as f64 / (1024.0 * 1024.0 * 1024.0),
        mib(size),
        size,
        took.as_secs_f64()
    ));
    let w = [
        r.rows
            .iter()
            .map(|x| x.measure.chars().count())
            .max()
            .unwrap_or(0)
            .max(7),
        r.rows
            .iter()
            .map(|x| x.result.chars().count())
            .max()
            .unwrap_or(0)
            .max(6),
        r.rows
            .iter()
            .map(|x| x.target.chars().count())
            .max()
            .unwrap_or(0)
            .max(6),
        7,
    ];
    let line = |c: [&str; 4]| {
        format!(
            "| {:<w0$} | {:<w1$} | {:<w2$} | {:<w3$} |\n",
            c[0],
            c[1],
            c[2],
            c[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        )
    };
    out.push_str(&line(["Measure", "Result", "Target", "Verdict"]));
    out.push_str(&format!(
        "|{}|{}|{}|{}|\n",
        "-".repeat(w[0] + 2),
        "-".repeat(w[1] + 2),
        "-".repeat(w[2] + 2),
        "-".repeat(w[3] + 2)
    ));
    for row in &r.rows {
        out.push_str(&line([
            &row.measure,
            &row.result,
            &row.target,
            &row.verdict,
        ]));
    }
    for d in &r.details {
        out.push('\n');
        out.push_str(d);
        out.push('\n');
    }
    if !r.failures.is_empty() {
        out.push_str("\nDID NOT COMPLETE:\n");
        for f in &r.failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    print!("{out}");
}

// -------------------------------------------------------------------------------------------
// 6. Start-up

async fn bench_startup(o: &Opts, r: &mut Report) -> Result<(), String> {
    let mut lat = vec![Duration::ZERO];
    if !o.latency.is_zero() {
        lat.push(o.latency);
    }
    for l in lat {
        // One data directory for every start: the first (not counted) creates the database,
        // the measured ones open it, as a restart does.
        let data = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut times = Vec::new();
        for i in 0..=o.starts {
            let mut w = World::new(l).await;
            w.set_env("INCD_DATA_DIR", data.path().display().to_string());
            let mut incd = w.spawn();
            let conns = match w.slack.wait_for_connections(1, WAIT).await {
                Ok(c) => c,
                Err(e) => return Err(fail(&incd, format!("no Socket Mode connection: {e}"))),
            };
            let first = conns
                .iter()
                .map(|c| c.opened_at)
                .min()
                .unwrap_or_else(Instant::now);
            if i > 0 {
                times.push(first.saturating_duration_since(incd.spawned_at));
            }
            incd.kill9();
        }
        times.sort();
        let med = percentile(&times, 0.5);
        let range = format!(
            "median {} (min {}, max {}) over {} starts",
            ms(med),
            ms(times[0]),
            ms(*times.last().unwrap_or(&Duration::ZERO)),
            times.len()
        );
        if l.is_zero() {
            r.judged(
                "Start-up: spawn → first live Socket Mode connection (local fake, no latency)",
                range,
                "< 100 ms",
                med < Duration::from_millis(100),
            );
        } else {
            r.row(
                format!("Start-up with L on every call ({} ms)", l.as_millis()),
                format!("{range} = {}", times_l(med, l)),
                "—",
                "info",
            );
        }
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// 1. Ack latency

async fn bench_ack(o: &Opts, r: &mut Report) -> Result<(), String> {
    let mut w = World::new(o.latency).await;
    let other = w.slack.add_channel("random", &[DEFAULT_USER]);
    let incd = w.start(2, WAIT).await.map_err(|(i, e)| fail(&i, e))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = ((o.ack_rate * o.ack_secs).round() as usize).max(2);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / o.ack_rate));
    let mut ids = Vec::with_capacity(n);
    let mut first = None;
    let mut last = Instant::now();
    for i in 0..n {
        tick.tick().await;
        let cmd = if i % 2 == 0 {
            SlashCommand::new("/incident", "", DEFAULT_USER, GENERAL_CHANNEL)
        } else {
            SlashCommand::new("/resolve-incident", "", DEFAULT_USER, &other)
        };
        last = Instant::now();
        first.get_or_insert(last);
        let d = w
            .slack
            .send_slash_command(cmd)
            .await
            .map_err(|e| fail(&incd, format!("send: {e}")))?;
        ids.push(d.envelope_id);
    }
    let span = last.saturating_duration_since(first.unwrap_or(last));
    let achieved = (n - 1) as f64 / span.as_secs_f64().max(1e-9);
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let deadline = Instant::now() + WAIT;
    let acks = loop {
        let acks = w.slack.acks();
        let got: HashSet<&str> = acks
            .iter()
            .map(|a| a.envelope_id.as_str())
            .filter(|id| wanted.contains(id))
            .collect();
        if got.len() == wanted.len() {
            break acks;
        }
        if Instant::now() > deadline {
            return Err(fail(
                &incd,
                format!("only {} of {} commands were acked", got.len(), n),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut seen = HashSet::new();
    let mut lat = Vec::with_capacity(n);
    for a in &acks {
        if wanted.contains(a.envelope_id.as_str()) && seen.insert(a.envelope_id.clone()) {
            if let Some(v) = &a.violation {
                return Err(fail(&incd, format!("bad ack: {v}")));
            }
            lat.push(a.latency);
        }
    }
    if !w.slack.ack_timeouts().is_empty() {
        return Err(fail(&incd, "some envelopes were not acked in time"));
    }
    if o.trace {
        // Slow acks over time: (envelope index, kind, latency) of those over 2 ms.
        let index: HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut slow: Vec<(usize, Duration)> = acks
            .iter()
            .filter_map(|a| Some((*index.get(a.envelope_id.as_str())?, a.latency)))
            .filter(|(_, l)| *l > Duration::from_millis(2))
            .collect();
        slow.sort();
        eprintln!("acks over 2 ms (command index: even = /incident, odd = /resolve-incident):");
        for (i, l) in slow {
            eprintln!("  #{i:<5} at {:>7.3} s  {}", i as f64 / o.ack_rate, ms(l));
        }
    }
    lat.sort();
    let (p50, p99, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        *lat.last().unwrap_or(&Duration::ZERO),
    );
    r.judged(
        format!(
            "Ack latency: {n} slash commands in {:.0} s, achieved {achieved:.1}/s",
            o.ack_secs
        ),
        format!("p50 {} · p99 {} · max {}", ms(p50), ms(p99), ms(max)),
        "p99 < 5 ms",
        p99 < Duration::from_millis(5),
    );
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Waiting for effects

/// Wait until `f` holds in the fake Slack, re-checking on every change in it; returns the
/// instant it was first seen to hold.
async fn slack_when(
    slack: &FakeSlack,
    what: &str,
    mut f: impl FnMut(&FakeSlack) -> bool,
) -> Result<Instant, String> {
    slack
        .wait_for(WAIT, what, |s| f(s).then(Instant::now))
        .await
        .map_err(|e| e.to_string())
}

/// Wait (on a blocking thread, polling every [`CALL_LOG_POLL`]) until both call logs hold a
/// matching call; the fakes record a call after its effect and just before its answer leaves.
async fn calls_when(
    pd: &FakePagerDuty,
    notion: &FakeNotion,
    pd_pred: impl Fn(&Call) -> bool + Send + 'static,
    notion_pred: impl Fn(&Call) -> bool + Send + 'static,
) -> Result<(Instant, Instant), String> {
    let (pd, notion) = (pd.clone(), notion.clone());
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + WAIT;
        let (mut a, mut b) = (None, None);
        loop {
            if a.is_none() && pd.calls().iter().any(&pd_pred) {
                a = Some(Instant::now());
            }
            if b.is_none() && notion.calls().iter().any(&notion_pred) {
                b = Some(Instant::now());
            }
            if let (Some(a), Some(b)) = (a, b) {
                return Ok((a, b));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out waiting for {}",
                    if a.is_none() { "PagerDuty" } else { "Notion" }
                ));
            }
            std::thread::sleep(CALL_LOG_POLL);
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Lower bound from the call logs: the latest instant at which a fake applied a call (Slack:
/// `applied_at`, recorded right after the effect; PagerDuty and Notion: arrival + L, when their
/// answer left) among calls that arrived after `t0` and were applied by `done`.
fn call_log_bound(w: &World, t0: Instant, done: Instant) -> Duration {
    let l = w.latency;
    let ends = w
        .slack
        .calls()
        .into_iter()
        .filter(|c| c.at >= t0)
        .map(|c| c.applied_at)
        .chain(
            w.pd.calls()
                .into_iter()
                .chain(w.notion.calls())
                .filter(|c| c.at >= t0)
                .map(|c| c.at + l),
        )
        .filter(|end| *end <= done);
    ends.max().map(|e| e - t0).unwrap_or_default()
}

/// The call timeline of one operation (with `--trace`): arrival after `t0`, and what was called.
fn trace(w: &World, what: &str, t0: Instant) {
    let mut lines: Vec<(Duration, String)> = Vec::new();
    for c in w.slack.calls().into_iter().filter(|c| c.at >= t0) {
        let target = c
            .arg("channel")
            .or_else(|| c.arg("channel_id"))
            .or_else(|| c.arg("name"))
            .unwrap_or("")
            .to_string();
        lines.push((
            c.at - t0,
            format!("slack  {} {target} -> {}", c.method, c.status),
        ));
    }
    for (svc, calls) in [("pd    ", w.pd.calls()), ("notion", w.notion.calls())] {
        for c in calls.into_iter().filter(|c| c.at >= t0) {
            lines.push((
                c.at - t0,
                format!("{svc} {} {} -> {}", c.method, c.path, c.status),
            ));
        }
    }
    lines.sort();
    eprintln!("trace of {what} (arrival at the fake after submit; the answer leaves L later):");
    for (at, l) in lines {
        eprintln!("  {:>9}  {l}", ms(at));
    }
}

fn is_post(p: &str, c: &Call, t0: Instant, status: u16) -> bool {
    c.at >= t0 && c.method == "POST" && c.path.starts_with(p) && c.status == status
}

/// What the sequential run learns about one incident.
struct Declared {
    channel: String,
    name: String,
    /// Announcement ts per broadcast channel.
    announcements: Vec<(String, String)>,
    page_id: String,
}

type Effects = Vec<(&'static str, Instant)>;

async fn open_form(w: &World, command: &str, user: &str, channel: &str) -> Result<View, String> {
    let d = w
        .slack
        .send_slash_command(SlashCommand::new(command, "", user, channel))
        .await
        .map_err(|e| e.to_string())?;
    let ack = w
        .slack
        .wait_ack(&d.envelope_id, WAIT)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(v) = ack.violation {
        return Err(format!("bad ack of {command}: {v}"));
    }
    if let Some(p) = ack.payload {
        return Err(format!("{command} answered instead of opening a form: {p}"));
    }
    w.slack
        .wait_view_opened(WAIT)
        .await
        .map_err(|e| e.to_string())
}

/// Check the ack of a submission; returns its latency (envelope written → ack read).
async fn check_submit_ack(w: &World, envelope: &str) -> Result<Duration, String> {
    let ack = w
        .slack
        .wait_ack(envelope, WAIT)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(v) = ack.violation {
        return Err(format!("bad ack of a submission: {v}"));
    }
    if let Some(p) = ack.payload {
        return Err(format!("submission refused: {p}"));
    }
    Ok(ack.latency)
}

/// Wait for every declare effect; returns when each was first seen.
async fn wait_declared(
    w: &World,
    t0: Instant,
    reporter: &str,
) -> Result<(Declared, Effects), String> {
    let slack = &w.slack;
    // The channel first: everything else is looked for in it.
    let mut created = None;
    let t_channel = slack_when(slack, "the incident channel", |s| {
        created = s
            .calls_to("conversations.create")
            .into_iter()
            .rev()
            .find(|c| c.at >= t0 && c.is_ok())
            .and_then(|c| {
                let ch = &c.response["channel"];
                Some((
                    ch["id"].as_str()?.to_string(),
                    ch["name"].as_str()?.to_string(),
                ))
            });
        created.is_some()
    })
    .await?;
    let (channel, channel_name) = created.expect("set with the instant");
    let name = channel_name
        .strip_prefix("incd-")
        .ok_or_else(|| format!("unexpected channel name {channel_name}"))?
        .to_string();
    let ch = channel.as_str();
    let must = [reporter, BOB, CAROL];
    let members = slack_when(slack, "members invited", |s| {
        let m = s.members(ch);
        must.iter().all(|u| m.iter().any(|x| x == u))
    });
    let topic = slack_when(slack, "topic", |s| s.topic(ch).contains("Investigating"));
    let pinned = |s: &FakeSlack| -> Option<Message> {
        let c = s.channel(ch)?;
        let ts = c.pins.first()?;
        c.messages.into_iter().find(|m| &m.ts == ts)
    };
    let posted = slack_when(slack, "summary posted", |s| {
        s.channel(ch).is_some_and(|c| {
            c.messages
                .iter()
                .any(|m| marker(m).is_some_and(|(_, step)| step == "summary"))
        })
    });
    let summary = slack_when(slack, "summary pinned", |s| {
        pinned(s).is_some_and(|m| marker(&m).is_some_and(|(_, step)| step == "summary"))
    });
    let link = slack_when(slack, "post-mortem link in the pinned summary", |s| {
        pinned(s).is_some_and(|m| text_of(&m).contains("Post-mortem in Notion"))
    });
    let bookmark = slack_when(slack, "post-mortem bookmark", |s| {
        s.bookmarks(ch)
            .iter()
            .any(|b| b.title.contains("Post-mortem"))
    });
    let (b1, b2) = (w.broadcast[0].as_str(), w.broadcast[1].as_str());
    let (s1, s2) = (format!("announce:{b1}"), format!("announce:{b2}"));
    let a1 = wait_message(slack, b1, &name, &s1);
    let a2 = wait_message(slack, b2, &name, &s2);
    let ext = calls_when(
        &w.pd,
        &w.notion,
        move |c| is_post("/v2/enqueue", c, t0, 202),
        move |c| is_post("/v1/pages", c, t0, 200),
    );
    let (members, topic, posted, summary, link, bookmark, a1, a2, ext) =
        tokio::join!(members, topic, posted, summary, link, bookmark, a1, a2, ext);
    let (a1, a2, (t_pd, t_notion)) = (a1?, a2?, ext?);
    let effects = vec![
        ("channel created", t_channel),
        ("members invited", members?),
        ("topic set", topic?),
        ("summary posted", posted?),
        ("summary pinned", summary?),
        ("announcement, broadcast 1", a1.1),
        ("announcement, broadcast 2", a2.1),
        ("PagerDuty triggered", t_pd),
        ("Notion page created", t_notion),
        ("Notion bookmark", bookmark?),
        ("Notion link in pinned summary", link?),
    ];
    let page_id = w
        .notion
        .pages()
        .into_iter()
        .find(|p| p.title.contains(&name))
        .map(|p| p.id)
        .unwrap_or_default();
    Ok((
        Declared {
            channel,
            name,
            announcements: vec![(b1.to_string(), a1.0), (b2.to_string(), a2.0)],
            page_id,
        },
        effects,
    ))
}

/// Wait for a message of `(incident, step)` in `channel`; its ts and when it was seen.
async fn wait_message(
    slack: &FakeSlack,
    channel: &str,
    incident: &str,
    step: &str,
) -> Result<(String, Instant), String> {
    slack
        .wait_for_message(channel, WAIT, |m| marker(m) == Some((incident, step)))
        .await
        .map(|m| (m.ts, Instant::now()))
        .map_err(|e| e.to_string())
}

/// Everything a declare must have produced, exactly once.
fn verify_declared(w: &World, d: &Declared) -> Result<(), String> {
    let ch = w
        .slack
        .channel(&d.channel)
        .ok_or("incident channel vanished")?;
    let page = w
        .notion
        .page(&d.page_id)
        .ok_or_else(|| format!("no Notion page titled {}", d.name))?;
    let pages = w
        .notion
        .pages()
        .iter()
        .filter(|p| p.title.contains(&d.name))
        .count();
    if pages != 1 {
        return Err(format!("{pages} Notion pages for {}", d.name));
    }
    if ch.pins.len() != 1 {
        return Err(format!("{} pins in {}", ch.pins.len(), ch.name));
    }
    let summary = ch
        .messages
        .iter()
        .find(|m| m.ts == ch.pins[0])
        .ok_or("pinned message missing")?;
    if !text_of(summary).contains(&page.url) {
        return Err("the pinned summary does not link the Notion page".into());
    }
    if !ch.bookmarks.iter().any(|b| b.link == page.url) {
        return Err("no bookmark to the Notion page".into());
    }
    for bc in &w.broadcast {
        let n = w
            .slack
            .top_level_messages(bc)
            .iter()
            .filter(|m| marker(m).is_some_and(|(i, s)| i == d.name && s.starts_with("announce:")))
            .count();
        if n != 1 {
            return Err(format!("{n} announcements of {} in {bc}", d.name));
        }
    }
    match w.pd.alerts().get(&d.name) {
        Some(a) if a.status == AlertStatus::Triggered && a.opened == 1 => Ok(()),
        Some(a) => Err(format!(
            "PagerDuty alert {:?}, opened {} times",
            a.status, a.opened
        )),
        None => Err(format!("no PagerDuty alert for {}", d.name)),
    }
}

async fn wait_resolved(w: &World, t0: Instant, d: &Declared) -> Result<Effects, String> {
    let slack = &w.slack;
    let ch = d.channel.as_str();
    let renamed_to = format!("incd-{}-resolved", d.name);
    let renamed = slack_when(slack, "channel renamed", |s| {
        s.channel(ch).is_some_and(|c| c.name == renamed_to)
    });
    let topic = slack_when(slack, "topic resolved", |s| {
        s.topic(ch).contains("Resolved")
    });
    let summary = slack_when(slack, "pinned summary resolved", |s| {
        s.channel(ch).is_some_and(|c| {
            c.pins.first().is_some_and(|ts| {
                c.messages
                    .iter()
                    .any(|m| &m.ts == ts && m.text.contains("(resolved)"))
            })
        })
    });
    let post = wait_message(slack, ch, &d.name, "resolution");
    let (b1, ts1) = (&d.announcements[0].0, d.announcements[0].1.as_str());
    let (b2, ts2) = (&d.announcements[1].0, d.announcements[1].1.as_str());
    let edited = |bc: &str, ts: &str| {
        let (bc, ts) = (bc.to_string(), ts.to_string());
        async move {
            slack
                .wait_for_message(&bc, WAIT, |m| {
                    m.ts == ts && m.edited.is_some() && m.text.contains("RESOLVED")
                })
                .await
                .map(|_| Instant::now())
                .map_err(|e| e.to_string())
        }
    };
    let reply = |bc: &str, ts: &str| {
        let (bc, ts) = (bc.to_string(), ts.to_string());
        let step = format!("announce_reply:{bc}");
        let name = d.name.clone();
        async move {
            slack
                .wait_for_message(&bc, WAIT, |m| {
                    m.thread_ts.as_deref() == Some(ts.as_str())
                        && marker(m) == Some((name.as_str(), step.as_str()))
                })
                .await
                .map(|_| Instant::now())
                .map_err(|e| e.to_string())
        }
    };
    let ext = calls_when(
        &w.pd,
        &w.notion,
        move |c| is_post("/v2/enqueue", c, t0, 202),
        move |c| {
            c.at >= t0 && c.method == "PATCH" && c.path.starts_with("/v1/pages/") && c.status == 200
        },
    );
    let (renamed, topic, summary, post, e1, e2, r1, r2, ext) = tokio::join!(
        renamed,
        topic,
        summary,
        post,
        edited(b1, ts1),
        edited(b2, ts2),
        reply(b1, ts1),
        reply(b2, ts2),
        ext
    );
    let (t_pd, t_notion) = ext?;
    Ok(vec![
        ("channel renamed", renamed?),
        ("topic resolved", topic?),
        ("pinned summary updated", summary?),
        ("resolution posted", post?.1),
        ("announcement 1 edited", e1?),
        ("announcement 2 edited", e2?),
        ("thread reply 1", r1?),
        ("thread reply 2", r2?),
        ("PagerDuty resolved", t_pd),
        ("Notion page resolved", t_notion),
    ])
}

fn verify_resolved(w: &World, d: &Declared) -> Result<(), String> {
    match w.pd.alerts().get(&d.name) {
        Some(a) if a.status == AlertStatus::Resolved => {}
        other => {
            return Err(format!(
                "PagerDuty alert not resolved: {:?}",
                other.map(|a| a.status)
            ))
        }
    }
    let page = w.notion.page(&d.page_id).ok_or("Notion page vanished")?;
    if page.option("Status").as_deref() != Some("Resolved") {
        return Err(format!("Notion Status is {:?}", page.option("Status")));
    }
    let ch = w.slack.channel(&d.channel).ok_or("channel vanished")?;
    let posts = ch
        .messages
        .iter()
        .filter(|m| marker(m).is_some_and(|(_, s)| s == "resolution"))
        .count();
    if posts != 1 {
        return Err(format!("{posts} resolution messages"));
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// 2 + 3. Declare and resolve latency

struct Stats {
    polled: Vec<Duration>,
    logged: Vec<Duration>,
    /// Time to the last of the [`DECLARE_CORE`] effects (declare only).
    core: Vec<Duration>,
    per_effect: HashMap<&'static str, Vec<Duration>>,
    order: Vec<&'static str>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            polled: Vec::new(),
            logged: Vec::new(),
            core: Vec::new(),
            per_effect: HashMap::new(),
            order: Vec::new(),
        }
    }

    fn add(&mut self, w: &World, t0: Instant, effects: &Effects) {
        let done = effects.iter().map(|e| e.1).max().unwrap_or(t0);
        self.polled.push(done - t0);
        self.logged.push(call_log_bound(w, t0, done));
        let core = effects
            .iter()
            .filter(|e| DECLARE_CORE.contains(&e.0))
            .map(|e| e.1)
            .max();
        if let Some(c) = core {
            self.core.push(c - t0);
        }
        for (what, at) in effects {
            if !self.per_effect.contains_key(what) {
                self.order.push(what);
            }
            self.per_effect
                .entry(what)
                .or_default()
                .push(at.saturating_duration_since(t0));
        }
    }

    fn summary(&mut self, l: Duration) -> (Duration, Duration, String) {
        self.polled.sort();
        self.logged.sort();
        let p50 = percentile(&self.polled, 0.5);
        let p99 = percentile(&self.polled, 0.99);
        let text = format!(
            "p50 {} = {} · p99 {} = {} (call-log bound: p50 {}, p99 {})",
            ms(p50),
            times_l(p50, l),
            ms(p99),
            times_l(p99, l),
            ms(percentile(&self.logged, 0.5)),
            ms(percentile(&self.logged, 0.99)),
        );
        (p50, p99, text)
    }

    /// p50 and p99 of the [`DECLARE_CORE`] effects.
    fn core_summary(&mut self, l: Duration) -> (Duration, Duration, String) {
        self.core.sort();
        let p50 = percentile(&self.core, 0.5);
        let p99 = percentile(&self.core, 0.99);
        let text = format!(
            "p50 {} = {} · p99 {} = {} · max {}",
            ms(p50),
            times_l(p50, l),
            ms(p99),
            times_l(p99, l),
            ms(*self.core.last().unwrap_or(&Duration::ZERO)),
        );
        (p50, p99, text)
    }

    fn breakdown(&mut self, title: &str, l: Duration) -> String {
        let mut s = format!(
            "{title}: time after submit at which each effect was first seen\n  {:<32} {:>9} {:>8} {:>9} {:>8}\n",
            "effect", "median", "", "max", ""
        );
        for what in &self.order {
            let v = self.per_effect.get_mut(what).expect("recorded");
            v.sort();
            let m = percentile(v, 0.5);
            let x = *v.last().unwrap_or(&Duration::ZERO);
            s.push_str(&format!(
                "  {what:<32} {:>9} {:>8} {:>9} {:>8}\n",
                ms(m),
                times_l(m, l),
                ms(x),
                times_l(x, l)
            ));
        }
        s
    }
}

/// The floor of any declare under this measurement: the dependent calls of its critical path
/// made back to back by a bare HTTP client (reqwest, keep-alive) in this process, against the
/// same fake Slack with the same L: `conversations.create` → `chat.postMessage` (the summary:
/// what a person waits for, 2 L) → `pins.add` (the pin needs the summary's ts: 3 L, fully
/// settled). What incd adds on top is its own work plus the socket delivery of the submission.
async fn critical_path_floor(
    w: &World,
    runs: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let http = reqwest::Client::new();
    let (url, token) = (w.slack.api_url(), w.slack.bot_token());
    let call = |method: &'static str, args: serde_json::Value| {
        let req = http
            .post(format!("{url}/{method}"))
            .bearer_auth(&token)
            .json(&args);
        async move {
            let v: serde_json::Value = req
                .send()
                .await
                .map_err(|e| format!("{method}: {e}"))?
                .json()
                .await
                .map_err(|e| format!("{method}: {e}"))?;
            if v["ok"] != serde_json::Value::Bool(true) {
                return Err(format!("{method} refused: {v}"));
            }
            Ok(v)
        }
    };
    let mut out = Vec::with_capacity(runs);
    let mut two = Vec::with_capacity(runs);
    // Run 0 warms the connection pool and is not counted.
    for i in 0..=runs {
        let t0 = Instant::now();
        let ch = call(
            "conversations.create",
            serde_json::json!({"name": format!("floor-{i}")}),
        )
        .await?;
        let channel = ch["channel"]["id"].as_str().unwrap_or_default().to_string();
        let msg = call(
            "chat.postMessage",
            serde_json::json!({"channel": channel, "text": "floor"}),
        )
        .await?;
        let ts = msg["ts"].as_str().unwrap_or_default().to_string();
        if i > 0 {
            two.push(t0.elapsed());
        }
        call(
            "pins.add",
            serde_json::json!({"channel": channel, "timestamp": ts}),
        )
        .await?;
        if i > 0 {
            out.push(t0.elapsed());
        }
    }
    out.sort();
    two.sort();
    Ok((two, out))
}

async fn bench_incidents(o: &Opts, r: &mut Report) -> Result<(), String> {
    let mut w = World::new(o.latency).await;
    let (floor2, floor3) = critical_path_floor(&w, o.incidents.min(20)).await?;
    let incd = w.start(2, WAIT).await.map_err(|(i, e)| fail(&i, e))?;
    // Let the start-up work (broadcast membership check, Notion schema) finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut declare = Stats::new();
    let mut resolve = Stats::new();
    // Back to back: each operation starts as soon as the previous one's effects are all seen
    // (the form is opened in between, as a person would). No other pause.
    for i in 0..o.incidents {
        let title = format!("Checkout errors {i}");
        let view = open_form(&w, "/incident", DEFAULT_USER, GENERAL_CHANNEL)
            .await
            .map_err(|e| fail(&incd, e))?;
        let t0 = Instant::now();
        let sub = w
            .slack
            .submit_view_with(
                &view.id,
                DEFAULT_USER,
                &[("title", &title), ("severity", "sev1"), ("commander", BOB)],
            )
            .await
            .map_err(|e| fail(&incd, e.to_string()))?;
        let (d, effects) = wait_declared(&w, t0, DEFAULT_USER)
            .await
            .map_err(|e| fail(&incd, format!("declare {i}: {e}")))?;
        check_submit_ack(&w, &sub.envelope_id)
            .await
            .map_err(|e| fail(&incd, e))?;
        declare.add(&w, t0, &effects);
        if o.trace && i == 0 {
            trace(&w, "the first declare", t0);
        }
        verify_declared(&w, &d).map_err(|e| fail(&incd, format!("declare {i}: {e}")))?;

        let view = open_form(&w, "/resolve-incident", DEFAULT_USER, &d.channel)
            .await
            .map_err(|e| fail(&incd, e))?;
        let t0 = Instant::now();
        let sub = w
            .slack
            .submit_view_with(
                &view.id,
                DEFAULT_USER,
                &[("summary", "Rolled back the deploy")],
            )
            .await
            .map_err(|e| fail(&incd, e.to_string()))?;
        let effects = wait_resolved(&w, t0, &d)
            .await
            .map_err(|e| fail(&incd, format!("resolve {i}: {e}")))?;
        check_submit_ack(&w, &sub.envelope_id)
            .await
            .map_err(|e| fail(&incd, e))?;
        resolve.add(&w, t0, &effects);
        if o.trace && i == 0 {
            trace(&w, "the first resolve", t0);
        }
        verify_resolved(&w, &d).map_err(|e| fail(&incd, format!("resolve {i}: {e}")))?;
        if (i + 1) % 10 == 0 {
            progress(&format!("  {} incidents declared and resolved", i + 1));
        }
    }
    let v = w.slack.violations();
    if !v.is_empty() {
        return Err(fail(&incd, format!("fake Slack saw violations: {v:?}")));
    }
    let l = o.latency;
    let floor_text = |f: &[Duration]| {
        let (f50, f99) = (percentile(f, 0.5), percentile(f, 0.99));
        format!(
            "p50 {} = {} · p99 {} = {} over {} runs",
            ms(f50),
            times_l(f50, l),
            ms(f99),
            times_l(f99, l),
            f.len()
        )
    };
    r.row(
        "Floor: create → post by a bare HTTP client, same fake Slack and L",
        floor_text(&floor2),
        "—",
        "info",
    );
    r.row(
        "Floor: create → post → pin by a bare HTTP client",
        floor_text(&floor3),
        "—",
        "info",
    );
    let (p50, _, text) = declare.core_summary(l);
    r.row(
        format!(
            "Declare, back to back ({} incidents): submit → channel, invites, summary, both announcements, page, post-mortem",
            o.incidents
        ),
        format!(
            "{text}; above the 2-call floor: p50 +{}",
            ms(p50.saturating_sub(percentile(&floor2, 0.5)))
        ),
        "p50 ≤ 2.3 L (reference JS 5.7 L)",
        if p50 <= l.mul_f64(2.3) { "PASS" } else { "MISS" },
    );
    let (p50, _, text) = declare.summary(l);
    r.row(
        "Declare fully settled: + topic, pin, bookmark, link in the pinned summary",
        format!(
            "{text}; above the 3-call floor: p50 +{}",
            ms(p50.saturating_sub(percentile(&floor3, 0.5)))
        ),
        "— (floor 3 L: the pin needs the summary's ts)",
        "info",
    );
    let (p50, _, text) = resolve.summary(l);
    r.row(
        format!(
            "Resolve, back to back: submit → every resolve effect, same {} incidents",
            o.incidents
        ),
        text,
        "p50 ≤ 1.3 L (reference JS 3.4 L)",
        if p50 <= l.mul_f64(1.3) {
            "PASS"
        } else {
            "MISS"
        },
    );
    if let Some(v) = resolve.per_effect.get_mut("resolution posted") {
        v.sort();
        let (m, x) = (percentile(v, 0.5), *v.last().unwrap_or(&Duration::ZERO));
        r.row(
            "Resolution post in the incident channel, right after the declare",
            format!("p50 {} = {} · max {}", ms(m), times_l(m, l), ms(x)),
            "— (reference JS 12 ms without latency; incd was 1041 ms)",
            "info",
        );
    }
    r.details.push(declare.breakdown("Declare", l));
    r.details.push(resolve.breakdown("Resolve", l));
    Ok(())
}

// -------------------------------------------------------------------------------------------
// 4 + 5. Burst under Slack's rate tiers, and memory

/// Per-incident progress in the burst.
#[derive(Default, Clone)]
struct BurstItem {
    channel: Option<String>,
    /// Channel, invites, summary, both announcements, page, post-mortem ([`DECLARE_CORE`]).
    core_done: Option<Instant>,
    slack_done: Option<Instant>,
    done: Option<Instant>,
}

/// Samples the whole fake state every `poll` on a thread of its own (so the fakes' runtime is
/// never held up by it) until every burst incident is complete.
struct Sampler {
    slack: FakeSlack,
    pd: FakePagerDuty,
    notion: FakeNotion,
    broadcast: Vec<String>,
    users: Vec<String>,
    pid: u32,
    poll: Duration,
}

impl Sampler {
    fn run(&self, t0: Instant, limit: Duration) -> Result<(Vec<BurstItem>, u64), String> {
        let n = self.users.len();
        let mut items = vec![BurstItem::default(); n];
        let mut peak_rss = 0;
        loop {
            let now = Instant::now();
            if let Some(rss) = proc_status_bytes(self.pid, "VmRSS") {
                peak_rss = peak_rss.max(rss);
            }
            let chans = self.slack.channels();
            let alerts = self.pd.alerts();
            let pages: Vec<String> = self.notion.pages().into_iter().map(|p| p.title).collect();
            let bcs: Vec<HashSet<String>> = self
                .broadcast
                .iter()
                .map(|b| {
                    chans
                        .iter()
                        .find(|c| &c.id == b)
                        .map(|c| {
                            c.messages
                                .iter()
                                .filter_map(|m| marker(m).map(|(i, _)| i.to_string()))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect();
            for (k, it) in items.iter_mut().enumerate() {
                if it.done.is_some() {
                    continue;
                }
                let user = &self.users[k];
                let ch = match &it.channel {
                    Some(id) => chans.iter().find(|c| &c.id == id),
                    None => chans.iter().find(|c| {
                        c.name.starts_with("incd-") && c.members.iter().any(|m| m == user)
                    }),
                };
                let Some(ch) = ch else { continue };
                it.channel = Some(ch.id.clone());
                let name = ch.name.trim_start_matches("incd-");
                let pinned = ch
                    .pins
                    .first()
                    .and_then(|ts| ch.messages.iter().find(|m| &m.ts == ts));
                let announced = bcs.iter().all(|s| s.contains(name));
                let invited = [user.as_str(), CAROL]
                    .iter()
                    .all(|u| ch.members.iter().any(|m| m == u));
                if it.core_done.is_none()
                    && announced
                    && invited
                    && alerts.contains_key(name)
                    && pages.iter().any(|t| t.contains(name))
                    && ch
                        .messages
                        .iter()
                        .any(|m| marker(m).is_some_and(|(_, s)| s == "summary"))
                {
                    it.core_done = Some(now);
                }
                if it.slack_done.is_none() && pinned.is_some() && announced {
                    it.slack_done = Some(now);
                }
                let complete = announced
                    && pinned.is_some_and(|m| text_of(m).contains("Post-mortem in Notion"))
                    && !ch.topic.value.is_empty()
                    && invited
                    && ch.bookmarks.iter().any(|b| b.title.contains("Post-mortem"))
                    && alerts.contains_key(name);
                if complete {
                    it.done = Some(now);
                }
            }
            if items.iter().all(|i| i.done.is_some()) {
                return Ok((items, peak_rss));
            }
            if now - t0 > limit {
                let left = items.iter().filter(|i| i.done.is_none()).count();
                return Err(format!(
                    "{left} of {n} burst incidents incomplete after {limit:?}"
                ));
            }
            std::thread::sleep(self.poll);
        }
    }
}

/// `users` each open the declare form at once; then all submit at once. Returns the instant
/// just before the first submission and the envelopes.
async fn declare_at_once(
    w: &World,
    incd: &Incd,
    users: &[String],
) -> Result<(Instant, Vec<String>), String> {
    let n = users.len();
    let sends = users.iter().map(|u| {
        w.slack
            .send_slash_command(SlashCommand::new("/incident", "", u, GENERAL_CHANNEL))
    });
    for d in futures_util::future::join_all(sends).await {
        d.map_err(|e| fail(incd, e.to_string()))?;
    }
    let mut views: HashMap<String, String> = HashMap::new();
    for _ in 0..n {
        let v = w
            .slack
            .wait_view_opened(WAIT)
            .await
            .map_err(|e| fail(incd, format!("forms: {e}")))?;
        views.insert(v.user_id, v.id);
    }
    if views.len() != n {
        return Err(fail(incd, format!("{} forms for {n} people", views.len())));
    }
    w.slack.clear_calls();
    let t0 = Instant::now();
    let subs = users.iter().enumerate().map(|(i, u)| {
        let view = views[u].clone();
        let slack = w.slack.clone();
        let (u, t) = (u.clone(), format!("Incident {i} of {n} at once"));
        async move {
            slack
                .submit_view_with(&view, &u, &[("title", &t), ("severity", "sev1")])
                .await
        }
    });
    let mut envelopes = Vec::new();
    for d in futures_util::future::join_all(subs).await {
        envelopes.push(d.map_err(|e| fail(incd, e.to_string()))?.envelope_id);
    }
    Ok((t0, envelopes))
}

/// Ack latencies of the submissions: p50 · p99 · max.
async fn submit_acks(w: &World, incd: &Incd, envelopes: &[String]) -> Result<String, String> {
    let mut acks = Vec::new();
    for e in envelopes {
        acks.push(check_submit_ack(w, e).await.map_err(|e| fail(incd, e))?);
    }
    acks.sort();
    Ok(format!(
        "p50 {} · p99 {} · max {}",
        ms(percentile(&acks, 0.5)),
        ms(percentile(&acks, 0.99)),
        ms(*acks.last().unwrap_or(&Duration::ZERO))
    ))
}

fn sampler(w: &World, incd: &Incd, users: &[String], poll: Duration) -> Sampler {
    Sampler {
        slack: w.slack.clone(),
        pd: w.pd.clone(),
        notion: w.notion.clone(),
        broadcast: w.broadcast.clone(),
        users: users.to_vec(),
        pid: incd.pid(),
        poll,
    }
}

/// 10 people declare at the same moment; no rate tiers in the fake (incd keeps its own budgets).
async fn bench_simultaneous(o: &Opts, r: &mut Report) -> Result<(), String> {
    let l = o.latency;
    let mut w = World::new(l).await;
    let users: Vec<String> = (0..SIMULTANEOUS)
        .map(|i| format!("U0SIMUL{i:03}"))
        .collect();
    for (i, u) in users.iter().enumerate() {
        w.slack.add_user(u, &format!("person{i}"));
    }
    let incd = w.start(2, WAIT).await.map_err(|(i, e)| fail(&i, e))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (t0, envelopes) = declare_at_once(&w, &incd, &users).await?;
    let s = sampler(&w, &incd, &users, SIMULTANEOUS_POLL);
    let (items, _) = tokio::task::spawn_blocking(move || s.run(t0, WAIT))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| fail(&incd, e))?;
    let acks = submit_acks(&w, &incd, &envelopes).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    verify_burst(&w, SIMULTANEOUS).map_err(|e| fail(&incd, e))?;
    let mut core: Vec<Duration> = items
        .iter()
        .filter_map(|i| i.core_done)
        .map(|d| d - t0)
        .collect();
    let mut full: Vec<Duration> = items
        .iter()
        .filter_map(|i| i.done)
        .map(|d| d - t0)
        .collect();
    core.sort();
    full.sort();
    let wall = *core.last().unwrap_or(&Duration::ZERO);
    let full_wall = *full.last().unwrap_or(&Duration::ZERO);
    r.row(
        format!("{SIMULTANEOUS} declarations submitted at the same moment by {SIMULTANEOUS} people, no rate tiers"),
        format!(
            "p50 {} = {} · all {} = {} after the first submission (fully settled: p50 {}, all {} = {}); 0 duplicates",
            ms(percentile(&core, 0.5)),
            times_l(percentile(&core, 0.5), l),
            ms(wall),
            times_l(wall, l),
            ms(percentile(&full, 0.5)),
            ms(full_wall),
            times_l(full_wall, l),
        ),
        "all ≤ 6 L, no duplicate (reference JS 1.3 s / 2.1 s)",
        if wall <= l * 6 { "PASS" } else { "MISS" },
    );
    r.row(
        format!("Ack of the {SIMULTANEOUS} submissions (intent recorded before the ack)"),
        acks,
        "—",
        "info",
    );
    Ok(())
}

async fn bench_burst(o: &Opts, r: &mut Report) -> Result<(), String> {
    let n = o.burst;
    let scale = o.burst_scale;
    let l = o.latency;
    let mut w = World::new(l).await;
    w.slack.enforce_rate_limits(scale);
    // incd's budgets on the same clock as the fake's tiers.
    w.set_env("INCD_SLACK_RATE_SCALE", scale.to_string());
    let users: Vec<String> = (0..n).map(|i| format!("U0BURST{i:03}")).collect();
    for (i, u) in users.iter().enumerate() {
        w.slack.add_user(u, &format!("responder{i}"));
    }
    let incd = w.start(2, WAIT).await.map_err(|(i, e)| fail(&i, e))?;
    idle_memory(&incd, r).await?;

    let (t0, envelopes) = declare_at_once(&w, &incd, &users).await?;

    // Sample the fakes until every incident is complete.
    let t_min = burst_minimum(n, scale, l);
    let limit = (t_min * 5).max(Duration::from_secs(60));
    let s = sampler(&w, &incd, &users, BURST_POLL);
    let (items, peak_rss) = tokio::task::spawn_blocking(move || s.run(t0, limit))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| fail(&incd, e))?;
    let done = items.iter().filter_map(|i| i.done).max().unwrap_or(t0);
    let slack_done = items
        .iter()
        .filter_map(|i| i.slack_done)
        .max()
        .unwrap_or(t0);
    let acks = submit_acks(&w, &incd, &envelopes).await?;
    // Let any straggling duplicate show up before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hwm = incd
        .proc_status_bytes("VmHWM")
        .ok_or_else(|| fail(&incd, "cannot read VmHWM"))?;
    let in_flight = verify_burst(&w, n).map_err(|e| fail(&incd, e))?;
    let limited = w.slack.rate_limited();
    let total = done - t0;
    let ratio = total.as_secs_f64() / t_min.as_secs_f64();
    r.row(
        format!("Burst: {n} declarations at once, Slack tiers enforced at ×{scale}"),
        format!(
            "all complete in {} = {:.2} × minimum {} (channels + pins + announcements: {}); {} × 429 honoured; 0 duplicates; 0 early retries{}",
            ms(total),
            ratio,
            ms(t_min),
            ms(slack_done - t0),
            limited.len(),
            if in_flight > 0 {
                format!(" ({in_flight} in-flight call(s) flagged by the fake, see docs)")
            } else {
                String::new()
            }
        ),
        "≤ 1.10 × minimum, no duplicate, no early retry",
        if ratio <= 1.10 { "PASS" } else { "MISS" },
    );
    r.row(
        format!("Ack of the {n} submissions during the burst"),
        acks,
        "—",
        "info",
    );
    r.judged(
        "Memory: peak resident set (VmHWM) through the burst",
        format!("{} (highest VmRSS sampled: {})", mib(hwm), mib(peak_rss)),
        "< 40 MB",
        hwm < 40_000_000,
    );
    r.details.push(burst_formula(&w, n, scale, t0, t_min));
    Ok(())
}

/// 5a. Idle memory: the resident set of a connected incd left alone for 2 s, and where it goes.
async fn idle_memory(incd: &Incd, r: &mut Report) -> Result<(), String> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = incd
        .proc_status_bytes("VmRSS")
        .ok_or_else(|| fail(incd, "cannot read VmRSS"))?;
    r.judged(
        "Memory: resident set (VmRSS) after connecting, idle 2 s",
        mib(rss_idle),
        "< 10 MB",
        rss_idle < 10_000_000,
    );
    if let Some(b) = rss_breakdown(incd.pid()) {
        r.details.push(format!("Idle resident set by mapping: {b}"));
    }
    Ok(())
}

/// `--only memory`: idle memory alone, on a fresh incd.
async fn bench_idle_memory(o: &Opts, r: &mut Report) -> Result<(), String> {
    let mut w = World::new(o.latency).await;
    let incd = w.start(2, WAIT).await.map_err(|(i, e)| fail(&i, e))?;
    idle_memory(&incd, r).await
}

/// The least time Slack's tiers (as the fake enforces them) allow for `n` declarations, with a
/// time scale `s` and latency `l`. Tier 2 (20 per minute, window `W = 60 s/s`) admits 20 calls
/// of each of `conversations.create`, `setTopic`, `pins.add` and `bookmarks.add` per window, so
/// channel `i` can be created no earlier than `⌊i/20⌋·W`:
/// - its pin needs the channel and the summary first, and takes L itself: `⌊i/20⌋·W + 3L`;
/// - its announcement needs the channel (L), then a token of the broadcast channel's bucket
///   ([`DEFAULT_POST_BURST`] messages, refilled one per `P = 1 s/s`) when it reaches the fake
///   (L later): simulated in submission order.
fn burst_minimum(n: usize, scale: f64, l: Duration) -> Duration {
    let window = 60.0 / scale;
    let every = 1.0 / scale;
    let l = l.as_secs_f64();
    let capacity = f64::from(DEFAULT_POST_BURST);
    let (mut tokens, mut at) = (capacity, 0.0_f64);
    let (mut last_pin, mut last_post) = (0.0_f64, 0.0_f64);
    for i in 0..n {
        let created = (i / 20) as f64 * window;
        last_pin = last_pin.max(created + 3.0 * l);
        let mut t = created + 2.0 * l;
        tokens = (tokens + (t - at) / every).min(capacity);
        at = t;
        if tokens < 1.0 {
            t += (1.0 - tokens) * every;
            tokens = 1.0;
            at = t;
        }
        tokens -= 1.0;
        last_post = last_post.max(t);
    }
    Duration::from_secs_f64(last_pin.max(last_post))
}

fn burst_formula(w: &World, n: usize, scale: f64, t0: Instant, t_min: Duration) -> String {
    let l = w.latency;
    let k = n.div_ceil(20) - 1;
    let is_bc = |ch: &str| w.broadcast.iter().any(|b| b == ch);
    let mut by: Vec<(String, usize)> = Vec::new();
    let mut tier2_429s = Vec::new();
    for e in w.slack.rate_limited() {
        let what = match e.key.split_once(':') {
            Some((m, ch)) if is_bc(ch) => format!("{m} (broadcast)"),
            Some((m, _)) => format!("{m} (incident channel)"),
            None => e.method.clone(),
        };
        if e.key.split_once(':').is_none() {
            tier2_429s.push(format!(
                "{} at {} (Retry-After {} s)",
                e.method,
                ms(e.at.saturating_duration_since(t0)),
                e.retry_after_secs
            ));
        }
        match by.iter_mut().find(|(m, _)| *m == what) {
            Some(x) => x.1 += 1,
            None => by.push((what, 1)),
        }
    }
    // When the last successful call of each rate-limited step arrived (its answer left L later).
    let calls = w.slack.calls();
    let last = |what: &str, pred: &dyn Fn(&incd_fakes::slack::ApiCall) -> bool| {
        let ok: Vec<_> = calls.iter().filter(|c| c.is_ok() && pred(c)).collect();
        ok.iter().map(|c| c.at).max().map(|at| {
            format!(
                "{what} ×{}: last at {}",
                ok.len(),
                ms(at.saturating_duration_since(t0))
            )
        })
    };
    let mut lasts: Vec<String> = [
        "conversations.create",
        "conversations.setTopic",
        "conversations.invite",
        "pins.add",
        "bookmarks.add",
        "chat.update",
    ]
    .iter()
    .filter_map(|m| last(m, &|c| c.method == *m))
    .collect();
    lasts.extend(last("chat.postMessage (broadcast)", &|c| {
        c.method == "chat.postMessage" && c.arg("channel").is_some_and(is_bc)
    }));
    format!(
        "Burst minimum = max over incidents i of (⌊i/20⌋·W + 3 L, its announcements through a bucket of \
         {DEFAULT_POST_BURST} per broadcast channel refilled one per P), W = 60 s/S (Tier 2 window), \
         P = 1 s/S; the last Tier 2 window opens at {k} × {:.2} s = {:.2} s\n  \
         = {}  (N = {n}, S = {scale}, L = {})\n  \
         429s by method: {}\n  \
         Tier 2 429s: {}\n  \
         calls after the first submit: {}",
        60.0 / scale,
        k as f64 * 60.0 / scale,
        ms(t_min),
        ms(l),
        if by.is_empty() {
            "none".to_string()
        } else {
            by.iter()
                .map(|(m, c)| format!("{m} {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        if tier2_429s.is_empty() {
            "none".to_string()
        } else {
            tier2_429s.join(", ")
        },
        lasts.join("; ")
    )
}

/// Exactly one of everything per burst incident, and nothing refused or retried early.
fn verify_burst(w: &World, n: usize) -> Result<usize, String> {
    let chans: Vec<_> = w
        .slack
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("incd-"))
        .collect();
    if chans.len() != n {
        return Err(format!(
            "{} incident channels for {n} declarations",
            chans.len()
        ));
    }
    let pages = w.notion.pages();
    let alerts = w.pd.alerts();
    for c in &chans {
        let name = c.name.trim_start_matches("incd-");
        if c.pins.len() != 1 {
            return Err(format!("{} pins in {}", c.pins.len(), c.name));
        }
        let summaries = c
            .messages
            .iter()
            .filter(|m| marker(m).is_some_and(|(_, s)| s == "summary"))
            .count();
        if summaries != 1 {
            return Err(format!("{summaries} summaries in {}", c.name));
        }
        let page: Vec<_> = pages.iter().filter(|p| p.title.contains(name)).collect();
        if page.len() != 1 {
            return Err(format!("{} Notion pages for {name}", page.len()));
        }
        if !c.bookmarks.iter().any(|b| b.link == page[0].url) || c.bookmarks.len() != 1 {
            return Err(format!("bookmarks of {}: {:?}", c.name, c.bookmarks));
        }
        match alerts.get(name) {
            Some(a) if a.opened == 1 => {}
            other => {
                return Err(format!(
                    "PagerDuty for {name}: {:?}",
                    other.map(|a| a.opened)
                ))
            }
        }
    }
    for bc in &w.broadcast {
        let names: Vec<String> = w
            .slack
            .top_level_messages(bc)
            .iter()
            .filter_map(|m| marker(m).map(|(i, _)| i.to_string()))
            .collect();
        let unique: HashSet<&String> = names.iter().collect();
        if names.len() != n || unique.len() != n {
            return Err(format!(
                "{bc}: {} announcements, {} distinct, for {n} incidents",
                names.len(),
                unique.len()
            ));
        }
    }
    if pages.len() != n {
        return Err(format!("{} Notion pages for {n} incidents", pages.len()));
    }
    // The fake checks a call's *arrival* against Retry-After promises, but only after its
    // injected latency has passed, so a call that was already on its way when another call got
    // its 429 is flagged too. Only calls that arrived after the 429 was sent are early retries.
    let limited = w.slack.rate_limited();
    let (early, in_flight): (Vec<_>, Vec<_>) = w.slack.early_retries().into_iter().partition(|e| {
        limited.iter().any(|r| {
            r.key == e.key && r.at <= e.at && e.at < r.at + Duration::from_secs(r.retry_after_secs)
        })
    });
    if !early.is_empty() {
        let t0 = w
            .slack
            .calls()
            .first()
            .map(|c| c.at)
            .unwrap_or_else(Instant::now);
        let rel = |t: Instant| ms(t.saturating_duration_since(t0));
        let limited: Vec<String> = limited
            .iter()
            .map(|e| {
                format!(
                    "{} at {} (Retry-After {} s)",
                    e.key,
                    rel(e.at),
                    e.retry_after_secs
                )
            })
            .collect();
        let early: Vec<String> = early
            .iter()
            .map(|e| {
                format!(
                    "{} at {}, allowed from {}",
                    e.key,
                    rel(e.at),
                    rel(e.allowed_at)
                )
            })
            .collect();
        return Err(format!(
            "early retries (times after the first submit): {early:?}; 429s sent: {limited:?}"
        ));
    }
    let v = w.slack.violations();
    if !v.is_empty() {
        return Err(format!("fake Slack saw violations: {v:?}"));
    }
    if !w.pd.early_retries().is_empty() || !w.notion.early_retries().is_empty() {
        return Err("early retries against PagerDuty or Notion".into());
    }
    Ok(in_flight.len())
}
