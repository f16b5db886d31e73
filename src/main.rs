//! The `incd` binary: parse the command line, set up logging, and hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use incd::config::Settings;

#[derive(Parser)]
#[command(
    name = "incd",
    version,
    about = "Self-hosted Slack incident manager (Socket Mode)"
)]
struct Cli {
    /// Config file (TOML). Default: $INCD_CONFIG, else config/incd.toml when it exists.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to Slack and serve until SIGINT/SIGTERM (the default).
    Run,
    /// Print the Slack app manifest (YAML).
    Manifest,
    /// Check the configuration against Slack, PagerDuty and Notion.
    Doctor,
    /// Validate the configuration and exit.
    CheckConfig,
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

fn load(cli: &Cli) -> Result<Settings, ExitCode> {
    match Settings::load(cli.config.as_deref()) {
        Ok((s, source)) => {
            tracing::debug!(?source, "configuration loaded");
            Ok(s)
        }
        Err(e) => {
            eprintln!("incd: {e}");
            eprintln!("See config/incd.example.toml and the README for every setting.");
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    memory::limit_arenas();
    let cli = Cli::parse();
    let command = cli.command.as_ref().unwrap_or(&Command::Run);
    if let Command::Manifest = command {
        print!("{}", incd::slack::manifest::manifest_yaml());
        return ExitCode::SUCCESS;
    }
    init_tracing();
    let settings = match load(&cli) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // A blocking thread (SQLite calls, name lookups) that has had no work for this long
        // exits: start-up and bursts leave no parked threads behind. The timer scheduler's poll
        // every second keeps one alive when idle.
        .thread_keep_alive(memory::BLOCKING_KEEP_ALIVE)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("incd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        Command::Manifest => unreachable!(),
        Command::CheckConfig => {
            println!(
                "configuration is valid ({})",
                settings.integrations_summary()
            );
            ExitCode::SUCCESS
        }
        Command::Doctor => runtime.block_on(async {
            match incd::doctor::run(&settings).await {
                Ok(checks) if incd::doctor::print(&checks) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("incd doctor: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }),
        Command::Run => runtime.block_on(async {
            tokio::spawn(memory::give_back_periodically());
            let (tx, rx) = watch::channel(false);
            tokio::spawn(async move {
                wait_for_signal().await;
                let _ = tx.send(true);
            });
            match incd::app::run(settings, rx).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("incd: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Keeping an idle incd small (docs/benchmarks.md, "Memory").
///
/// glibc's malloc gives each thread that allocates an arena of its own and keeps memory freed
/// inside an arena resident until the arena's top is free. Start-up frees a good deal (parsing
/// the TLS root certificates, migrations, the first connections), and so does every burst of
/// incidents; an idle process would keep all of it.
mod memory {
    use std::time::Duration;

    /// How often freed memory is handed back to the kernel. `malloc_trim` walks the arenas
    /// (well under a millisecond for incd's) and releases whole free pages.
    const TRIM_EVERY: Duration = Duration::from_secs(30);
    /// The first trim, once start-up is done and the blocking threads it used have exited.
    const FIRST_TRIM: Duration = Duration::from_millis(1600);
    /// How long an idle blocking thread waits for work before it exits (tokio's default: 10 s).
    /// Longer than the timer scheduler's one-second poll so that one thread serves it.
    pub const BLOCKING_KEEP_ALIVE: Duration = Duration::from_millis(1500);

    /// Two arenas are plenty for two async workers and the checkpoint thread.
    pub fn limit_arenas() {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes malloc's parameters; called first thing in main,
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }

    /// Give freed memory back after start-up, then every [`TRIM_EVERY`].
    pub async fn give_back_periodically() {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + FIRST_TRIM, TRIM_EVERY);
        loop {
            tick.tick().await;
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim is thread-safe (it takes each arena's lock).
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}
