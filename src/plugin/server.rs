//! The plugin's HTTP/1.1 server on a unix socket (hyper).
//!
//! The socket is `/run/docker/plugins/NAME.sock`: handed over by systemd
//! (`LISTEN_FDS`, from `contrib/systemd/ovsmesh.socket`, which owns it from
//! boot on, before dockerd starts, and keeps it across daemon restarts), or
//! bound here. Each request is bounded: headers within [`HEADER_TIME`], a body
//! of at most [`MAX_BODY`] bytes, an answer within [`ANSWER_TIME`] (Docker's own
//! plugin client gives up after 30 s).

use std::convert::Infallible;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::UnixListener;

use super::protocol::{self, Call, ProtocolError};
use super::Plugin;

/// Largest request body read (Docker's are well under a kilobyte).
pub const MAX_BODY: usize = 1 << 20;
/// Time for a request's headers to arrive.
pub const HEADER_TIME: Duration = Duration::from_secs(10);
/// Time for an answer: under Docker's 30 s.
pub const ANSWER_TIME: Duration = Duration::from_secs(25);

/// Where Docker looks for plugin `name`.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("plugin socket {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin socket {0} is already served by another process")]
    Busy(PathBuf),
}

/// The socket systemd handed over, if any (the first of `LISTEN_FDS`).
pub fn inherited() -> Option<UnixListener> {
    let fd = sd_notify::listen_fds().ok()?.next()?;
    // SAFETY: systemd passed this descriptor to this process (LISTEN_PID matched) and nothing else owns it.
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
    listener.set_nonblocking(true).ok()?;
    UnixListener::from_std(listener).ok()
}

/// Bind `path` (its directory made if need be); a stale socket file is
/// replaced, one another process answers on is not.
pub fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    let failed = |source| ServeError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError::Busy(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(failed)?;
    }
    UnixListener::bind(path).map_err(failed)
}

/// Serve the plugin on `listener` until the task is dropped.
pub async fn serve(listener: UnixListener, plugin: Arc<Plugin>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "plugin socket accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let plugin = plugin.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let plugin = plugin.clone();
                async move { Ok::<_, Infallible>(answer(&plugin, request).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIME)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "plugin connection");
            }
        });
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("Content-Type", protocol::MEDIA_TYPE)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

async fn answer(plugin: &Plugin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::POST {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            protocol::error("plugin calls are POST requests"),
        );
    }
    let path = request.uri().path().to_string();
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                protocol::error(&format!("request body: {error}")),
            )
        }
    };
    let call = match Call::parse(&path, &body) {
        Ok(call) => call,
        Err(error @ ProtocolError::Unknown(_)) => {
            return reply(StatusCode::NOT_FOUND, protocol::error(&error.to_string()))
        }
        Err(error) => return reply(StatusCode::BAD_REQUEST, protocol::error(&error.to_string())),
    };
    let name = call.name();
    match tokio::time::timeout(ANSWER_TIME, plugin.handle(call)).await {
        Ok(body) => reply(StatusCode::OK, body),
        Err(_) => {
            tracing::warn!(
                call = name,
                "plugin call took too long; answered with an error"
            );
            reply(
                StatusCode::OK,
                protocol::error(&format!("{name} did not finish within {ANSWER_TIME:?}")),
            )
        }
    }
}
