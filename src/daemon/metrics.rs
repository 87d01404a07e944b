//! Prometheus metrics of the daemon, served as text on a local address.
//!
//! Reconciles by result and their duration, whether one is running, drift
//! corrections by kind, stuck changes, container re-plumbs, waiting containers,
//! unhealthy tunnels, the last successful reconcile, the topology generation,
//! reload errors, for a git source the commit in force, refusals and rollbacks,
//! and the time the Docker plugin takes to answer each kind of call.

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

/// The topology in force: its commit (empty for a file) and source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabel {
    pub commit: String,
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// A Docker plugin call by name (`CreateEndpoint`, `Join`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    pub call: String,
}

/// Time to answer one plugin call: 1 ms to 16 s.
pub type PluginCalls = Family<CallLabel, Histogram, fn() -> Histogram>;

fn call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Declares [`Metrics`] and registers every field under its name and help, from one table.
macro_rules! metrics {
    ($($field:ident: $ty:ty = $init:expr, $name:literal, $help:literal;)*) => {
        /// Every metric, cheap to clone (shared handles).
        #[derive(Clone)]
        pub struct Metrics {
            registry: Arc<Mutex<Registry>>,
            $(pub $field: $ty,)*
        }

        impl Metrics {
            pub fn new() -> Self {
                let mut registry = Registry::with_prefix("ovsmesh");
                $(
                    let $field: $ty = $init;
                    registry.register($name, $help, $field.clone());
                )*
                Self {
                    registry: Arc::new(Mutex::new(registry)),
                    $($field,)*
                }
            }
        }
    };
}

metrics! {
    reconciles: Family<ResultLabel, Counter> = Family::default(),
        "reconciles", "Reconciles by result";
    reconcile_seconds: Histogram = Histogram::new(exponential_buckets(0.001, 2.0, 14)),
        "reconcile_duration_seconds", "Reconcile duration";
    reconcile_in_progress: Gauge = Gauge::default(),
        "reconcile_in_progress", "1 while a reconcile runs";
    drift_corrections: Family<KindLabel, Counter> = Family::default(),
        "drift_corrections", "Objects put back after drifting, by kind";
    stuck_changes: Gauge = Gauge::default(),
        "stuck_changes", "Changes applied and undone again, over and over (the daemon backs off)";
    replumbs: Counter = Counter::default(),
        "container_replumbs", "Containers re-plumbed after a restart";
    waiting: Gauge = Gauge::default(),
        "containers_waiting", "Containers of this host not running";
    host_warnings: Gauge = Gauge::default(),
        "host_warnings", "Host settings that break the mesh (the log and `status` say which)";
    unhealthy_tunnels: Gauge = Gauge::default(),
        "tunnels_unhealthy", "Tunnel ports with an error or BFD down";
    last_success: Gauge = Gauge::default(),
        "last_success_timestamp_seconds", "Time of the last successful reconcile";
    generation: Gauge = Gauge::default(),
        "topology_generation", "Topologies loaded so far";
    reload_errors: Counter = Counter::default(),
        "reload_errors", "Topology reloads rejected as invalid";
    topology_info: Family<InfoLabel, Gauge> = Family::default(),
        "topology_info", "1 for the topology in force: its git commit and source";
    topology_refused: Counter = Counter::default(),
        "topology_refused", "Git commits refused before applying (untrusted, invalid, unreachable)";
    topology_rollbacks: Counter = Counter::default(),
        "topology_rollbacks", "Git commits rolled back after applying (peers lost or verify failed)";
    plugin_calls: PluginCalls = Family::new_with_constructor(call_histogram as fn() -> Histogram),
        "plugin_call_duration_seconds", "Docker plugin calls by name: time to answer";
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry.lock().expect("registry")).expect("metrics encode");
        text
    }
}

/// Serve `GET /metrics`, and `GET /status` (the daemon's report as JSON, for
/// `fleet status`) on `address` until the process ends.
pub async fn serve(
    address: SocketAddr,
    metrics: Metrics,
    status: Arc<Mutex<String>>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(%address, "serving metrics");
    loop {
        let (mut stream, _) = listener.accept().await?;
        let metrics = metrics.clone();
        let status = status.clone();
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
            } else if head.starts_with("GET /status") {
                let body = status.lock().expect("status").clone();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
