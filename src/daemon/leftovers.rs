//! Docker endpoint veths left over by an interrupted `CreateEndpoint`.
//!
//! The plugin makes an endpoint's veth, then its OVS port. A daemon killed in
//! between (the plugin runs inside it) leaves a veth that nothing removes:
//! Docker saw the call fail and forgets the endpoint, and the reconcile keeps
//! an endpoint's port only once its container has the veth's other end. So at
//! each periodic resync the daemon looks for this mesh's endpoint veths with
//! no port whose container end is still on the host (never joined) and that
//! no `CreateEndpoint` of the plugin is making right now; one found so at two
//! resyncs at least [`GRACE`] apart is deleted (a veth whose call ended between
//! the reads of one sweep has its port at the next).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::engine;
use crate::host;
use crate::marks::Policy;
use crate::netlink::Netlink;
use crate::ovs::{self, Session};
use crate::state::PortId;
use crate::topology::{names, Topology};

/// How long a veth must have been a leftover before it is deleted.
pub const GRACE: Duration = Duration::from_secs(10);

/// When each leftover was first found.
#[derive(Debug, Default)]
pub struct Leftovers {
    first_found: BTreeMap<String, Instant>,
}

impl Leftovers {
    /// Of the endpoints found to be leftovers `now`, those found so for at
    /// least [`GRACE`]; the ones no longer found are forgotten.
    pub fn due(&mut self, found: &BTreeSet<String>, now: Instant) -> Vec<String> {
        self.first_found
            .retain(|endpoint, _| found.contains(endpoint));
        found
            .iter()
            .filter(|endpoint| {
                let first = *self.first_found.entry(endpoint.to_string()).or_insert(now);
                now.duration_since(first) >= GRACE
            })
            .cloned()
            .collect()
    }

    /// Look for leftovers and delete those due. `making`: the endpoints the
    /// plugin's `CreateEndpoint` calls are making now.
    pub async fn sweep(
        &mut self,
        session: &Session,
        topology: &Topology,
        host: &str,
        making: &BTreeSet<String>,
    ) {
        let mesh = &topology.mesh.name;
        let policy = Policy::new(mesh);
        let found = async {
            let netlink = Netlink::open()?;
            let links = netlink.links().await?;
            let names: BTreeSet<&str> = links.iter().map(|l| l.name.as_str()).collect();
            let bridges = engine::managed_bridges(topology);
            let ports = ovs::observe(&session.client, host, mesh, &bridges)
                .await?
                .state
                .ports;
            let found: BTreeMap<String, String> = links
                .iter()
                .filter_map(|l| Some((policy.endpoint_identity(l.alias.as_deref())?, l)))
                .filter(|(mark, _)| {
                    let (_, container_end) = names::endpoint_ends(mesh, &mark.endpoint);
                    let key = PortId::Endpoint {
                        endpoint: mark.endpoint.clone(),
                    }
                    .key();
                    names.contains(container_end.as_str())
                        && !ports.contains_key(&key)
                        && !making.contains(&mark.endpoint)
                })
                .map(|(mark, l)| (mark.endpoint, l.name.clone()))
                .collect();
            Ok::<_, Box<dyn std::error::Error>>((netlink, found))
        };
        let (netlink, found) = match found.await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "could not look for leftover Docker endpoint veths");
                return;
            }
        };
        let endpoints: BTreeSet<String> = found.keys().cloned().collect();
        for endpoint in self.due(&endpoints, Instant::now()) {
            let host_end = &found[&endpoint];
            match host::endpoint::remove(&netlink, &policy, host_end, &endpoint).await {
                Ok(()) => tracing::info!(%endpoint, veth = %host_end,
                    "leftover Docker endpoint veth removed (no port, never joined)"),
                Err(error) => tracing::warn!(%endpoint, %error, "leftover Docker endpoint veth"),
            }
            self.first_found.remove(&endpoint);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leftover_is_due_once_found_for_the_grace_period() {
        let mut leftovers = Leftovers::default();
        let start = Instant::now();
        let both: BTreeSet<String> = ["e1".to_string(), "e2".to_string()].into();
        assert!(leftovers.due(&both, start).is_empty());
        // e2 was being made after all (it got its port): forgotten.
        let one: BTreeSet<String> = ["e1".to_string()].into();
        assert!(leftovers.due(&one, start + GRACE / 2).is_empty());
        assert_eq!(leftovers.due(&both, start + GRACE), vec!["e1".to_string()]);
        // e2 found again: its grace starts over.
        assert!(leftovers.due(&both, start + GRACE + GRACE / 2) == vec!["e1".to_string()]);
        assert_eq!(
            leftovers.due(&both, start + GRACE * 2),
            both.into_iter().collect::<Vec<_>>()
        );
    }
}
