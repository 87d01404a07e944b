//! Waiting for ovs-vswitchd to apply a write, woken by ovs-vswitchd itself.
//!
//! A write transaction bumps `Open_vSwitch:next_cfg`; ovs-vswitchd sets
//! `cur_cfg` to it once it has reconfigured (`ovs-vsctl --wait`'s contract).
//! [`super::wait_for_vswitchd`] polls `cur_cfg` every 20 ms: each answer comes up
//! to 20 ms late, and on a slow single CPU every poll takes time from the switch
//! it waits for. A [`CfgWatch`] instead follows `cur_cfg` with a monitor on a
//! connection of its own and wakes the waiter on the update that reaches it.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::ovsdb::{connect, Client, ConnectOptions, Notification, OvsdbError, DB};

/// `Open_vSwitch:cur_cfg`, followed.
pub struct CfgWatch {
    cur_cfg: watch::Receiver<i64>,
    /// Keeps the monitor's connection open.
    client: Client,
}

impl CfgWatch {
    /// Connect to `remote` and follow `cur_cfg` from now on.
    pub async fn open(remote: &str, options: ConnectOptions) -> Result<Self, OvsdbError> {
        let (client, mut notifications) = connect(remote, options).await?;
        let initial = client
            .monitor_cond(
                DB,
                json!("ovsmesh-cur-cfg"),
                json!({"Open_vSwitch": [{"columns": ["cur_cfg"]}]}),
            )
            .await?;
        let (tx, cur_cfg) = watch::channel(cur_cfg_of(&initial).unwrap_or(0));
        tokio::spawn(async move {
            // Ends when the connection closes: the watch then says so to waiters.
            while let Some(notification) = notifications.recv().await {
                if let Notification::Update { updates, .. } = notification {
                    if let Some(cfg) = cur_cfg_of(&updates) {
                        tx.send_replace(cfg);
                    }
                }
            }
        });
        Ok(Self { cur_cfg, client })
    }

    /// Wait (at most `timeout`) until ovs-vswitchd has applied `next_cfg`.
    pub async fn wait(&self, next_cfg: i64, timeout: Duration) -> Result<(), OvsdbError> {
        let mut cur_cfg = self.cur_cfg.clone();
        let reached = tokio::time::timeout(timeout, async {
            cur_cfg.wait_for(|cfg| *cfg >= next_cfg).await.map(|_| ())
        })
        .await;
        match reached {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(OvsdbError::Disconnected {
                remote: self.client.remote().to_string(),
                reason: self
                    .client
                    .closed()
                    .unwrap_or_else(|| "the cur_cfg monitor ended".into()),
            }),
            Err(_) => Err(OvsdbError::Vswitchd {
                remote: self.client.remote().to_string(),
                next_cfg,
                waited: timeout,
            }),
        }
    }
}

/// The `cur_cfg` in a monitor's initial reply or update (`update2` rows:
/// `initial`, `insert` or `modify`).
fn cur_cfg_of(updates: &Value) -> Option<i64> {
    updates
        .get("Open_vSwitch")?
        .as_object()?
        .values()
        .find_map(|row| {
            ["initial", "insert", "modify"]
                .iter()
                .find_map(|kind| row.get(kind)?.get("cur_cfg")?.as_i64())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cur_cfg_is_read_from_the_initial_reply_and_from_updates() {
        let initial = json!({"Open_vSwitch": {"5c0f": {"initial": {"cur_cfg": 7}}}});
        assert_eq!(cur_cfg_of(&initial), Some(7));
        let update = json!({"Open_vSwitch": {"5c0f": {"modify": {"cur_cfg": 8}}}});
        assert_eq!(cur_cfg_of(&update), Some(8));
        // Another table's update, or a row without the column, says nothing.
        assert_eq!(cur_cfg_of(&json!({"Bridge": {"1": {"modify": {}}}})), None);
        let other = json!({"Open_vSwitch": {"5c0f": {"modify": {"next_cfg": 9}}}});
        assert_eq!(cur_cfg_of(&other), None);
    }
}
