//! Prometheus metrics of the daemon, served as text on a local address.
//!
//! Reconciles by result and their duration, whether one is running, drift
//! corrections by kind, stuck changes, container re-plumbs, waiting containers,
//! unhealthy tunnels, the last successful reconcile, the topology generation,
//! reload errors, failed verifies (the host still different after a reconcile),
//! for a git source the commit in force, refusals and rollbacks, and the time
//! the Docker plugin takes to answer each kind of call.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

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
    verify_failures: Counter = Counter::default(),
        "verify_failures", "Reconciles after which the host, observed again, still differed from the topology";
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

/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last in all.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (out of descriptors): the listener stays, the loop does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// The answer to one request: the metrics at `/metrics`, the daemon's report as
/// JSON at `/status` (for `fleet status`), 404 elsewhere, 405 for anything but
/// GET and HEAD.
fn respond(
    request: &Request<Incoming>,
    metrics: &Metrics,
    status: &Mutex<String>,
) -> Response<Full<Bytes>> {
    let (content_type, body) =
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return response;
        } else if request.uri().path() == "/metrics" {
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                metrics.render(),
            )
        } else if request.uri().path() == "/status" {
            ("application/json", status.lock().expect("status").clone())
        } else {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// Serve the metrics and the status over HTTP/1.1 (`hyper`) on `address` until
/// the process ends. A client that does not send its request within
/// `READ_TIMEOUT` is dropped; a failed accept is logged and the listener keeps going.
pub async fn serve(
    address: SocketAddr,
    metrics: Metrics,
    status: Arc<Mutex<String>>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(%address, "serving metrics");
    serve_on(listener, metrics, status).await
}

async fn serve_on(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    status: Arc<Mutex<String>>,
) -> std::io::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: accept failed");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let status = status.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&request, &metrics, &status);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Err(error)) => tracing::debug!(%error, "metrics connection"),
                Err(_) => tracing::debug!("metrics connection timed out"),
                Ok(Ok(())) => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn server() -> (SocketAddr, Metrics) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let metrics = Metrics::new();
        let status = Arc::new(Mutex::new(r#"{"host":"node1"}"#.to_string()));
        tokio::spawn(serve_on(listener, metrics.clone(), status));
        (address, metrics)
    }

    async fn get(address: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn metrics_are_served_and_other_paths_and_methods_are_refused() {
        let (address, metrics) = server().await;
        metrics.generation.set(7);
        let ok = get(address, "GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.0 200 OK\r\n"), "{ok}");
        assert!(ok.contains("application/openmetrics-text"), "{ok}");
        assert!(ok.contains("\novsmesh_topology_generation 7\n"), "{ok}");
        let status = get(address, "GET /status HTTP/1.0\r\n\r\n").await;
        assert!(status.starts_with("HTTP/1.0 200 OK\r\n"), "{status}");
        assert!(status.ends_with("\r\n\r\n{\"host\":\"node1\"}"), "{status}");
        let missing = get(address, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        let post = get(
            address,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{post}"
        );
        assert!(post.to_lowercase().contains("allow: get, head"), "{post}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_dropped_and_does_not_block_others() {
        let (address, _) = server().await;
        let mut silent = TcpStream::connect(address).await.unwrap();
        // Another client is served meanwhile.
        let ok = get(address, "GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.0 200 OK"), "{ok}");
        // The silent one is cut off once the read timeout passes (paused clock: no real wait).
        let mut rest = Vec::new();
        let read = tokio::time::timeout(READ_TIMEOUT * 2, silent.read_to_end(&mut rest)).await;
        assert!(
            read.is_ok(),
            "the silent connection is still open after twice the read timeout"
        );
    }
}
