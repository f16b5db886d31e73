//! Optional local HTTP listener (`INCD_HTTP_ADDR`): `/healthz` and `/metrics`.
//!
//! `/healthz` is healthy (200) only while at least one Socket Mode connection is live and the
//! store accepts writes; otherwise 503 with the reason. `/metrics` is Prometheus text.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::store::Store;

/// What the listener reads: the metrics (socket state included) and the store.
#[derive(Clone)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    pub store: Store,
}

/// Serve until shutdown. Logs and returns if the address cannot be bound.
pub async fn serve(health: Health, addr: SocketAddr, mut shutdown: watch::Receiver<bool>) {
    let router = axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(health);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen for /healthz and /metrics (INCD_HTTP_ADDR)");
            return;
        }
    };
    tracing::info!(%addr, "serving /healthz and /metrics");
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            // A dropped sender means shutdown too.
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the /healthz listener stopped");
    }
}

async fn healthz(State(h): State<Health>) -> impl IntoResponse {
    let live = h.metrics.live_connections.load(Ordering::SeqCst);
    let writable = h.store.is_writable().await;
    let body = format!(
        "{{\"socket_connections\":{live},\"store\":\"{}\",\"store_writable\":{writable},\"status\":\"{}\"}}\n",
        h.store.backend_name(),
        if live > 0 && writable {
            "ok"
        } else {
            "unhealthy"
        }
    );
    let status = if live > 0 && writable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        h.metrics.render(),
    )
}
