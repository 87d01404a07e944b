//! The OVSDB client against a fake server that answers at random — properly,
//! with errors, junk, notifications, silence, garbage bytes or a hang-up: the
//! client's tasks never panic, every call ends (a result or a typed error)
//! within its deadline, and dropping the client ends its reader.

mod common;
mod fuzz;

use fuzz::*;
use ovsmesh::ovsdb::codec::JsonCodec;
use serde_json::{json, Value};

/// A fake ovsdb-server answering each request (and our probes) at random:
/// properly, with an error, with junk, with notifications, not at all, with
/// garbage bytes, or by hanging up.
async fn fake_server(stream: tokio::io::DuplexStream, mut rng: Rng) {
    use futures::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;
    let (read, write) = tokio::io::split(stream);
    let mut requests = tokio_util::codec::FramedRead::new(read, JsonCodec::default());
    let mut replies = tokio_util::codec::FramedWrite::new(write, JsonCodec::default());
    while let Some(Ok(request)) = requests.next().await {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let message = match rng.below(9) {
            0 | 1 => json!({"id": id, "result": json_value(&mut rng, 3), "error": null}),
            2 => json!({"id": id, "result": null, "error": json_value(&mut rng, 2)}),
            3 => json_value(&mut rng, 3),
            4 => {
                let method = *rng.pick(&[
                    "update", "update2", "update3", "locked", "stolen", "echo", "other",
                ]);
                json!({"method": method, "params": json_value(&mut rng, 3), "id": json_value(&mut rng, 1)})
            }
            5 => json!({"id": json_value(&mut rng, 1), "result": [], "error": null}),
            6 => continue,
            7 => {
                let garbage: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                let _ = replies.get_mut().write_all(&garbage).await;
                continue;
            }
            _ => return,
        };
        if replies.send(message).await.is_err() {
            return;
        }
    }
}

#[test]
fn a_fake_server_sending_random_messages_never_panics_the_client() {
    use ovsmesh::ovsdb::{client, ConnectOptions};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    // Panics in the client's tasks are caught by tokio: record them by thread.
    let panics: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = panics.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current()
            .name()
            .unwrap_or_default()
            .to_string();
        seen.lock().unwrap().push(format!("{thread}: {info}"));
        default_hook(info);
    }));
    let me = std::thread::current()
        .name()
        .unwrap_or_default()
        .to_string();
    let options = ConnectOptions {
        inactivity_probe: Some(Duration::from_millis(25)),
        timeout: Duration::from_millis(60),
    };
    let mut rng = Rng(8);
    common::runtime().block_on(async {
        for case in 0..150 {
            let (near, far) = tokio::io::duplex(1 << 16);
            let (read, write) = tokio::io::split(near);
            let (client, mut notifications) = client::start("fake:", read, write, &options);
            let server = tokio::spawn(fake_server(far, Rng(1000 + case)));
            for _ in 0..rng.below(6) + 1 {
                let method = *rng.pick(&[
                    "echo",
                    "transact",
                    "lock",
                    "steal",
                    "monitor_cond",
                    "list_dbs",
                ]);
                let params = json_value(&mut rng, 2);
                let call =
                    tokio::time::timeout(Duration::from_secs(2), client.call(method, params));
                let ended = call.await;
                assert!(ended.is_ok(), "case {case}: {method} outlived its deadline");
            }
            drop(client);
            let drained = tokio::time::timeout(Duration::from_secs(2), async {
                while notifications.recv().await.is_some() {}
            });
            assert!(
                drained.await.is_ok(),
                "case {case}: the reader outlived its client"
            );
            server.abort();
        }
    });
    let panics = panics.lock().unwrap();
    let ours: Vec<&String> = panics.iter().filter(|p| p.starts_with(&me)).collect();
    assert!(ours.is_empty(), "{ours:?}");
}

#[test]
fn an_endless_message_closes_the_connection_at_the_frame_limit() {
    use ovsmesh::ovsdb::{client, ConnectOptions, OvsdbError};
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    common::runtime().block_on(async {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let (read, write) = tokio::io::split(near);
        let options = ConnectOptions {
            inactivity_probe: None,
            timeout: Duration::from_secs(60),
        };
        let (client, _) = client::start("fake:", read, write, &options);
        // The server starts a reply and never ends it.
        tokio::spawn(async move {
            let chunk = vec![b'x'; 1 << 16];
            let _ = far.write_all(br#"{"id":1,"result":""#).await;
            while far.write_all(&chunk).await.is_ok() {}
        });
        let error = client.echo().await.unwrap_err();
        let OvsdbError::Disconnected { reason, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(
            reason.contains(&format!("larger than {}", ovsmesh::ovsdb::codec::MAX_FRAME)),
            "{reason}"
        );
    });
}
