//! Prometheus metrics of the daemon, served as text on a local address.
//!
//! Reconciles by result and their duration, drift corrections by kind,
//! container re-plumbs, waiting containers, unhealthy tunnels, the last
//! successful reconcile, the topology generation and reload errors.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Every metric, cheap to clone (shared handles).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pub reconciles: Family<ResultLabel, Counter>,
    pub reconcile_seconds: Histogram,
    pub drift_corrections: Family<KindLabel, Counter>,
    pub replumbs: Counter,
    pub waiting: Gauge,
    pub unhealthy_tunnels: Gauge,
    pub last_success: Gauge,
    pub generation: Gauge,
    pub reload_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ovsmesh");
        let metrics = Self {
            registry: Arc::default(),
            reconciles: Family::default(),
            reconcile_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            drift_corrections: Family::default(),
            replumbs: Counter::default(),
            waiting: Gauge::default(),
            unhealthy_tunnels: Gauge::default(),
            last_success: Gauge::default(),
            generation: Gauge::default(),
            reload_errors: Counter::default(),
        };
        registry.register(
            "reconciles",
            "Reconciles by result",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            metrics.reconcile_seconds.clone(),
        );
        registry.register(
            "drift_corrections",
            "Objects put back after drifting, by kind",
            metrics.drift_corrections.clone(),
        );
        registry.register(
            "container_replumbs",
            "Containers re-plumbed after a restart",
            metrics.replumbs.clone(),
        );
        registry.register(
            "containers_waiting",
            "Containers of this host not running",
            metrics.waiting.clone(),
        );
        registry.register(
            "tunnels_unhealthy",
            "Tunnel ports with an error or BFD down",
            metrics.unhealthy_tunnels.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Time of the last successful reconcile",
            metrics.last_success.clone(),
        );
        registry.register(
            "topology_generation",
            "Topologies loaded so far",
            metrics.generation.clone(),
        );
        registry.register(
            "reload_errors",
            "Topology reloads rejected as invalid",
            metrics.reload_errors.clone(),
        );
        *metrics.registry.lock().expect("registry") = registry;
        metrics
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry.lock().expect("registry")).expect("metrics encode");
        text
    }
}

/// Serve `GET /metrics` on `address` until the process ends.
pub async fn serve(address: SocketAddr, metrics: Metrics) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(%address, "serving metrics");
    loop {
        let (mut stream, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let n = stream.read(&mut request).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..n]);
            let response = if head.starts_with("GET /metrics") {
                let body = metrics.render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
