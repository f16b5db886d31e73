//! incd: a self-hosted Slack incident manager.
//!
//! Module map (data flows top to bottom: socket -> inbound -> handlers -> ack -> runner ->
//! workflow steps -> Slack / PagerDuty / Notion -> results stored):
//! - [`config`]: settings from defaults, the TOML file and the environment; secrets masked.
//! - [`app`]: composition root: builds the context and the runner, starts everything. Only
//!   `main.rs` imports it.
//! - [`context`]: the shared context (settings, store, clients, metrics, clock): plain data.
//! - [`clock`]: the injectable time source.
//! - [`slack`]: Socket Mode transport, typed input, typed Web API calls, every message and modal,
//!   the manifest.
//! - [`handlers`]: typed input -> ack payload, and the work (modals, workflows) started after it.
//! - [`workflow`]: the durable step runner (typed step keys, retry policies, leases, resume),
//!   durable timers, and declare and resolve as resumable steps.
//! - [`incident`]: the domain (no I/O): incidents, names, severities, lifecycle, text safety.
//! - [`integrations`]: narrow PagerDuty and Notion clients shaped by the domain.
//! - [`store`]: the async store API over SQLite (a small connection pool, an intent lane) or PostgreSQL,
//!   leases and timers; all SQL lives there.
//! - [`doctor`]: `incd doctor`, the configuration checklist against the real services.
//! - [`http`]: optional `/healthz` and `/metrics` listener.
//! - [`metrics`]: counters and histograms in Prometheus text.
//! - [`net`]: the shared HTTP client builder and `Retry-After` parsing.
pub mod app;
pub mod clock;
pub mod config;
pub mod context;
pub mod doctor;
pub mod handlers;
pub mod http;
pub mod incident;
pub mod integrations;
pub mod metrics;
pub mod net;
pub mod slack;
pub mod store;
pub mod workflow;
