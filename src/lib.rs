//! incd: a self-hosted Slack incident manager.
//!
//! Module map (data flows top to bottom: socket -> inbound -> handlers -> ack -> workflow ->
//! Slack / PagerDuty / Notion -> results stored):
//! - [`config`]: settings from defaults, the TOML file and the environment; secrets masked.
//! - [`app`]: composition root and the shared context handed to handlers and workflows.
//! - [`slack`]: Socket Mode transport, typed input, typed Web API calls, every message and modal,
//!   the manifest.
//! - [`handlers`]: typed input -> ack payload, and the work (modals, workflows) started after it.
//! - [`workflow`]: declare and resolve as durable, resumable steps.
//! - [`incident`]: the domain (no I/O): incidents, names, severities, status, text safety.
//! - [`integrations`]: narrow PagerDuty and Notion clients shaped by the domain.
//! - [`store`]: the embedded database; all SQL lives there.
//! - [`doctor`]: `incd doctor`, the configuration checklist against the real services.
//! - [`http`]: optional `/healthz` and `/metrics` listener.
//! - [`metrics`]: counters and histograms in Prometheus text.
//! - [`net`]: the shared HTTP client builder and `Retry-After` parsing.
pub mod app;
pub mod config;
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
