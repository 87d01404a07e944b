//! An OVSDB JSON-RPC 1.0 client on tokio.
//!
//! Why not a generic JSON-RPC crate: OVSDB speaks JSON-RPC 1.0 — replies carry
//! both `result` and `error`, requests must not carry a `"jsonrpc"` member, the
//! server sends its own `echo` requests that must be answered, and monitors push
//! `update`/`update2`/`update3` notifications. One reader task matches replies to
//! requests by id, answers echoes, and forwards notifications on a channel; one
//! writer task serialises outgoing messages. On TCP an inactivity probe (our own
//! echo) detects a silent peer. When the peer goes away, every waiting call fails
//! with a clean `Disconnected` error naming the remote.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};

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

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, OvsdbError>>>>>;

/// A connection to one ovsdb-server.
pub struct Client {
    remote: String,
    outgoing: mpsc::UnboundedSender<Value>,
    pending: Pending,
    next_id: AtomicU64,
    closed: Arc<Mutex<Option<String>>>,
}

/// Options for a connection.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Idle time after which we probe the peer with an echo (TCP only).
    pub inactivity_probe: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            inactivity_probe: Some(Duration::from_secs(5)),
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
    if let Some(path) = remote.strip_prefix("unix:") {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(connect_error)?;
        let (read, write) = stream.into_split();
        Ok(start(remote, read, write, None))
    } else if let Some(address) = remote.strip_prefix("tcp:") {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(connect_error)?;
        stream.set_nodelay(true).ok();
        let (read, write) = stream.into_split();
        Ok(start(remote, read, write, options.inactivity_probe))
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

fn start<R, W>(
    remote: &str,
    read: R,
    write: W,
    probe: Option<Duration>,
) -> (Client, mpsc::UnboundedReceiver<Notification>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (outgoing, mut to_send) = mpsc::unbounded_channel::<Value>();
    let (notify, notifications) = mpsc::unbounded_channel();
    let pending: Pending = Arc::default();
    let closed: Arc<Mutex<Option<String>>> = Arc::default();

    let mut writer = FramedWrite::new(write, JsonCodec::default());
    tokio::spawn(async move {
        while let Some(message) = to_send.recv().await {
            if writer.send(message).await.is_err() {
                break;
            }
        }
    });

    let reader = Reader {
        remote: remote.to_string(),
        frames: FramedRead::new(read, JsonCodec::default()),
        outgoing: outgoing.clone(),
        pending: pending.clone(),
        closed: closed.clone(),
        notify,
        probe,
    };
    tokio::spawn(reader.run());

    let client = Client {
        remote: remote.to_string(),
        outgoing,
        pending,
        next_id: AtomicU64::new(1),
        closed,
    };
    (client, notifications)
}

struct Reader<R> {
    remote: String,
    frames: FramedRead<R, JsonCodec>,
    outgoing: mpsc::UnboundedSender<Value>,
    pending: Pending,
    closed: Arc<Mutex<Option<String>>>,
    notify: mpsc::UnboundedSender<Notification>,
    probe: Option<Duration>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    async fn run(mut self) {
        let mut probing = false;
        let reason = loop {
            let next = match self.probe {
                Some(idle) => match tokio::time::timeout(idle, self.frames.next()).await {
                    Ok(next) => next,
                    Err(_) if probing => {
                        break format!("no reply to the inactivity probe within {idle:?}")
                    }
                    Err(_) => {
                        probing = true;
                        let _ = self
                            .outgoing
                            .send(json!({"method": "echo", "params": ["probe"], "id": "probe"}));
                        continue;
                    }
                },
                None => self.frames.next().await,
            };
            probing = false;
            match next {
                None => break "the server closed the connection".to_string(),
                Some(Err(error)) => break error.to_string(),
                Some(Ok(message)) => self.dispatch(message),
            }
        };
        tracing::debug!(remote = %self.remote, %reason, "ovsdb connection closed");
        *self.closed.lock().expect("closed lock") = Some(reason.clone());
        let waiting: Vec<_> = self.pending.lock().expect("pending lock").drain().collect();
        for (_, reply) in waiting {
            let _ = reply.send(Err(OvsdbError::Disconnected {
                remote: self.remote.clone(),
                reason: reason.clone(),
            }));
        }
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
        let Some(reply) = self.pending.lock().expect("pending lock").remove(&id) else {
            return;
        };
        let error = message.get("error").cloned().unwrap_or(Value::Null);
        let result = if error.is_null() {
            Ok(message.get("result").cloned().unwrap_or(Value::Null))
        } else {
            Err(OvsdbError::Rpc {
                remote: self.remote.clone(),
                error: error.to_string(),
            })
        };
        let _ = reply.send(result);
    }
}

impl Client {
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// Send a request and wait for its reply.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, OvsdbError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, wait) = oneshot::channel();
        {
            let closed = self.closed.lock().expect("closed lock");
            if let Some(reason) = closed.as_ref() {
                return Err(self.disconnected(reason));
            }
            self.pending.lock().expect("pending lock").insert(id, reply);
        }
        let request = json!({"method": method, "params": params, "id": id});
        if self.outgoing.send(request).is_err() {
            return Err(self.disconnected("the connection is closed"));
        }
        match wait.await {
            Ok(result) => result,
            Err(_) => Err(self.disconnected("the connection is closed")),
        }
    }

    fn disconnected(&self, reason: &str) -> OvsdbError {
        OvsdbError::Disconnected {
            remote: self.remote.clone(),
            reason: reason.to_string(),
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
        super::transact::check_reply(&self.remote, &operations, &replies)?;
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

    pub async fn unlock(&self, id: &str) -> Result<(), OvsdbError> {
        self.call("unlock", json!([id])).await.map(|_| ())
    }
}
