//! Which tunnel peers this host reaches: one bounded `ping` of each peer's
//! underlay address, all at once, from the daemon's own network namespace (the
//! host's). The rollback check of `follow` compares it before and after a change.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

/// Bound on one peer's probe (three pings 200 ms apart, a second for the last reply).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The peers (by name) that answered.
pub async fn reachable(peers: &BTreeMap<String, IpAddr>) -> BTreeSet<String> {
    let probes = peers.iter().map(|(name, address)| async move {
        let mut command = tokio::process::Command::new("ping");
        command
            .args(["-n", "-q", "-c", "3", "-i", "0.2", "-W", "1"])
            .arg(address.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let answered = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, command.status()).await,
            Ok(Ok(status)) if status.success()
        );
        answered.then(|| name.clone())
    });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect()
}
