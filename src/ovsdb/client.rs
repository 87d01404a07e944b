//! An OVSDB JSON-RPC 1.0 client on tokio.
//!
//! Why not a generic JSON-RPC crate: OVSDB speaks JSON-RPC 1.0 — replies carry
//! both `result` and `error`, requests must not carry a `"jsonrpc"` member, the
//! server sends its own `echo` requests that must be answered, and monitors push
//! `update`/`update2`/`update3` notifications. One reader task matches replies to
//! requests by id, answers echoes, and forwards notifications on a channel; one
//! writer task serialises outgoing messages.
//!
//! Nothing waits forever: connecting and every request have a deadline, and a
//! request that misses it closes the connection (a server that stopped
//! answering is not trusted with the next one). On every connection an
//! inactivity probe (our own echo) detects a silent peer. When the peer goes
//! away, every waiting call fails with a clean `Disconnected` error naming the
//! remote. Dropping the [`Client`] ends both tasks, which closes the socket
//! (at the runtime's next turn, or when the runtime shuts down).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::codec::JsonCodec;
use super::OvsdbError;

/// A server-pushed message.
#[derive(Debug, Clone)]
pub enum Notification {
    /// `update`, `update2` or `update3`: the monitor id and the table updates.
    Update {
        method: String,
        monitor: Value,
        updates: Value,
    },
    /// Our lock request was granted later.
    Locked(String),
    /// Another client stole our lock.
    Stolen(String),
}

/// Deadline of connecting and of every request unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle time before probing the peer (as ovsdb-server's own default).
pub const DEFAULT_PROBE: Duration = Duration::from_secs(5);

type Reply = oneshot::Sender<Result<Value, OvsdbError>>;

/// What the client and its two tasks share.
struct Shared {
    remote: String,
    pending: Mutex<HashMap<u64, Reply>>,
    /// Why the connection closed, once it has.
    closed: Mutex<Option<String>>,
    /// Cancelled when the connection closes: both tasks end, the socket goes.
    stop: CancellationToken,
}

impl Shared {
    fn disconnected(&self, reason: &str) -> OvsdbError {
        OvsdbError::Disconnected {
            remote: self.remote.clone(),
            reason: reason.to_string(),
        }
    }

    /// Close the connection (once): stop both tasks and fail every waiting call.
    fn close(&self, reason: &str) {
        {
            let mut closed = self.closed.lock().expect("closed lock");
            if closed.is_some() {
                return;
            }
            *closed = Some(reason.to_string());
        }
        tracing::debug!(remote = %self.remote, %reason, "ovsdb connection closed");
        self.stop.cancel();
        let waiting: Vec<_> = self.pending.lock().expect("pending lock").drain().collect();
        for (_, reply) in waiting {
            let _ = reply.send(Err(self.disconnected(reason)));
        }
    }
}

/// A connection to one ovsdb-server. Dropping it closes the connection.
pub struct Client {
    shared: Arc<Shared>,
    outgoing: mpsc::UnboundedSender<Value>,
    next_id: AtomicU64,
    timeout: Duration,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.close("the client was dropped");
    }
}

/// Options for a connection.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Idle time after which we probe the peer with an echo; unanswered for as
    /// long again, the connection is dropped. `None` disables our probe.
    pub inactivity_probe: Option<Duration>,
    /// Deadline of connecting and of every request.
    pub timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            inactivity_probe: Some(DEFAULT_PROBE),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl ConnectOptions {
    /// The defaults with another request deadline.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            ..Self::default()
        }
    }
}

/// Connect to `unix:PATH` or `tcp:HOST:PORT`.
pub async fn connect(
    remote: &str,
    options: ConnectOptions,
) -> Result<(Client, mpsc::UnboundedReceiver<Notification>), OvsdbError> {
    let connect_error = |source: std::io::Error| OvsdbError::Connect {
        remote: remote.to_string(),
        source,
    };
    let deadline = |_| OvsdbError::Deadline {
        remote: remote.to_string(),
        request: "connect".into(),
        after: options.timeout,
    };
    if let Some(path) = remote.strip_prefix("unix:") {
        let stream = tokio::time::timeout(options.timeout, tokio::net::UnixStream::connect(path))
            .await
            .map_err(deadline)?
            .map_err(connect_error)?;
        let (read, write) = stream.into_split();
        Ok(start(remote, read, write, &options))
    } else if let Some(address) = remote.strip_prefix("tcp:") {
        let stream = tokio::time::timeout(options.timeout, tokio::net::TcpStream::connect(address))
            .await
            .map_err(deadline)?
            .map_err(connect_error)?;
        stream.set_nodelay(true).ok();
        let (read, write) = stream.into_split();
        Ok(start(remote, read, write, &options))
    } else if remote.starts_with("ssl:") {
        Err(OvsdbError::BadRemote(format!(
            "{remote}: ssl: remotes are not supported yet; use unix: or tcp: (e.g. through a local socket)"
        )))
    } else {
        Err(OvsdbError::BadRemote(format!(
            "{remote}: expected unix:PATH or tcp:HOST:PORT"
        )))
    }
}

/// Run the client over any byte stream (a socket, or a test's fake server).
pub fn start<R, W>(
    remote: &str,
    read: R,
    write: W,
    options: &ConnectOptions,
) -> (Client, mpsc::UnboundedReceiver<Notification>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (outgoing, to_send) = mpsc::unbounded_channel::<Value>();
    let (notify, notifications) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        remote: remote.to_string(),
        pending: Mutex::default(),
        closed: Mutex::default(),
        stop: CancellationToken::new(),
    });
    tokio::spawn(write_all(
        shared.clone(),
        FramedWrite::new(write, JsonCodec::default()),
        to_send,
    ));
    let reader = Reader {
        shared: shared.clone(),
        frames: FramedRead::new(read, JsonCodec::default()),
        outgoing: outgoing.clone(),
        notify,
        probe: options.inactivity_probe,
    };
    tokio::spawn(reader.run());
    let client = Client {
        shared,
        outgoing,
        next_id: AtomicU64::new(1),
        timeout: options.timeout,
    };
    (client, notifications)
}

async fn write_all<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut writer: FramedWrite<W, JsonCodec>,
    mut to_send: mpsc::UnboundedReceiver<Value>,
) {
    loop {
        let message = tokio::select! {
            _ = shared.stop.cancelled() => return,
            message = to_send.recv() => message,
        };
        let Some(message) = message else { return };
        let sent = tokio::select! {
            _ = shared.stop.cancelled() => return,
            sent = writer.send(message) => sent,
        };
        if let Err(error) = sent {
            shared.close(&format!("cannot send: {error}"));
            return;
        }
    }
}

struct Reader<R> {
    shared: Arc<Shared>,
    frames: FramedRead<R, JsonCodec>,
    outgoing: mpsc::UnboundedSender<Value>,
    notify: mpsc::UnboundedSender<Notification>,
    probe: Option<Duration>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    async fn run(mut self) {
        let mut probing = false;
        let stop = self.shared.stop.clone();
        let reason = loop {
            let idle = self.probe.unwrap_or(Duration::MAX);
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = self.frames.next() => next,
                _ = tokio::time::sleep(idle), if self.probe.is_some() => {
                    if probing {
                        break format!("no reply to the inactivity probe within {idle:?}");
                    }
                    probing = true;
                    let _ = self
                        .outgoing
                        .send(json!({"method": "echo", "params": ["probe"], "id": "probe"}));
                    continue;
                }
            };
            probing = false;
            match next {
                None => break "the server closed the connection".to_string(),
                Some(Err(error)) => break error.to_string(),
                Some(Ok(message)) => self.dispatch(message),
            }
        };
        self.shared.close(&reason);
    }

    fn dispatch(&mut self, message: Value) {
        if let Some(method) = message.get("method").and_then(Value::as_str) {
            let params = message.get("params").cloned().unwrap_or(Value::Null);
            match method {
                "echo" => {
                    let id = message.get("id").cloned().unwrap_or(Value::Null);
                    let _ = self
                        .outgoing
                        .send(json!({"id": id, "result": params, "error": null}));
                }
                "update" | "update2" | "update3" => {
                    let _ = self.notify.send(Notification::Update {
                        method: method.to_string(),
                        monitor: params.get(0).cloned().unwrap_or(Value::Null),
                        updates: params
                            .get(if method == "update3" { 2 } else { 1 })
                            .cloned()
                            .unwrap_or(Value::Null),
                    });
                }
                "locked" | "stolen" => {
                    let id = params
                        .get(0)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let _ = self.notify.send(if method == "locked" {
                        Notification::Locked(id)
                    } else {
                        Notification::Stolen(id)
                    });
                }
                other => tracing::debug!(method = other, "ignoring unknown OVSDB notification"),
            }
            return;
        }
        let Some(id) = message.get("id").and_then(Value::as_u64) else {
            return; // replies to our probe carry the id "probe"
        };
        let Some(reply) = self
            .shared
            .pending
            .lock()
            .expect("pending lock")
            .remove(&id)
        else {
            return;
        };
        let error = message.get("error").cloned().unwrap_or(Value::Null);
        let result = if error.is_null() {
            Ok(message.get("result").cloned().unwrap_or(Value::Null))
        } else {
            Err(OvsdbError::Rpc {
                remote: self.shared.remote.clone(),
                error: error.to_string(),
            })
        };
        let _ = reply.send(result);
    }
}

/// Forgets a request's reply slot when its caller stops waiting (deadline or cancel).
struct Waiting<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared
            .pending
            .lock()
            .expect("pending lock")
            .remove(&self.id);
    }
}

impl Client {
    pub fn remote(&self) -> &str {
        &self.shared.remote
    }

    /// The deadline of each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Why the connection closed, if it has.
    pub fn closed(&self) -> Option<String> {
        self.shared.closed.lock().expect("closed lock").clone()
    }

    /// Send a request and wait for its reply, at most the deadline. A missed
    /// deadline closes the connection: the server is hung or overloaded.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, OvsdbError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, wait) = oneshot::channel();
        {
            let closed = self.shared.closed.lock().expect("closed lock");
            if let Some(reason) = closed.as_ref() {
                return Err(self.shared.disconnected(reason));
            }
            let mut pending = self.shared.pending.lock().expect("pending lock");
            pending.insert(id, reply);
        }
        let _waiting = Waiting {
            shared: &self.shared,
            id,
        };
        let request = json!({"method": method, "params": params, "id": id});
        if self.outgoing.send(request).is_err() {
            return Err(self.shared.disconnected("the connection is closed"));
        }
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.shared.disconnected("the connection is closed")),
            Err(_) => {
                let after = self.timeout;
                self.shared
                    .close(&format!("no reply to {method} within {after:?}"));
                Err(OvsdbError::Deadline {
                    remote: self.shared.remote.clone(),
                    request: method.to_string(),
                    after,
                })
            }
        }
    }

    pub async fn list_dbs(&self) -> Result<Vec<String>, OvsdbError> {
        let result = self.call("list_dbs", json!([])).await?;
        Ok(result
            .as_array()
            .map(|dbs| {
                dbs.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn get_schema(&self, db: &str) -> Result<Value, OvsdbError> {
        self.call("get_schema", json!([db])).await
    }

    pub async fn echo(&self) -> Result<Value, OvsdbError> {
        self.call("echo", json!(["ovsmesh"])).await
    }

    /// Run a transaction and check every element of the reply: an operation's
    /// error names that operation; a reply longer than the operations carries
    /// the commit's own error.
    pub async fn transact(
        &self,
        db: &str,
        operations: Vec<Value>,
    ) -> Result<Vec<Value>, OvsdbError> {
        let mut params = vec![json!(db)];
        params.extend(operations.iter().cloned());
        let result = self.call("transact", Value::Array(params)).await?;
        let replies = result.as_array().cloned().ok_or_else(|| {
            OvsdbError::Protocol(format!("transact reply is not an array: {result}"))
        })?;
        super::transact::check_reply(self.remote(), &operations, &replies)?;
        Ok(replies)
    }

    pub async fn monitor(&self, db: &str, id: Value, requests: Value) -> Result<Value, OvsdbError> {
        self.call("monitor", json!([db, id, requests])).await
    }

    /// `monitor_cond` (update2 notifications).
    pub async fn monitor_cond(
        &self,
        db: &str,
        id: Value,
        requests: Value,
    ) -> Result<Value, OvsdbError> {
        self.call("monitor_cond", json!([db, id, requests])).await
    }

    pub async fn monitor_cancel(&self, id: Value) -> Result<(), OvsdbError> {
        self.call("monitor_cancel", json!([id])).await.map(|_| ())
    }

    /// Ask for a lock; true when granted at once (else a `Locked` notification follows).
    pub async fn lock(&self, id: &str) -> Result<bool, OvsdbError> {
        let result = self.call("lock", json!([id])).await?;
        Ok(result
            .get("locked")
            .and_then(Value::as_bool)
            .unwrap_or(false))
    }

    /// Take a lock from whoever holds it (RFC 7047 §4.1.10); the holder gets `stolen`.
    pub async fn steal(&self, id: &str) -> Result<(), OvsdbError> {
        self.call("steal", json!([id])).await.map(|_| ())
    }

    pub async fn unlock(&self, id: &str) -> Result<(), OvsdbError> {
        self.call("unlock", json!([id])).await.map(|_| ())
    }
}
