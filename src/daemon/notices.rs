//! Host warnings in the daemon's log. `host::warnings` reads what the host's
//! own settings do to the mesh (a small underlay MTU, `arp_ignore`, networkd
//! removing routes) on every reconcile; `apply` prints them and `status` shows
//! them, and the daemon — which nobody watches on a terminal — logs each one
//! when it appears and when it clears, never once per reconcile.

use std::collections::BTreeSet;

/// The warnings in force at the last successful reconcile.
#[derive(Debug, Default)]
pub struct Notices {
    current: BTreeSet<String>,
}

impl Notices {
    /// Log what appeared and what cleared since the last reconcile; how many are in force.
    pub fn update(&mut self, warnings: &[String]) -> usize {
        let fresh: BTreeSet<String> = warnings.iter().cloned().collect();
        for warning in fresh.difference(&self.current) {
            tracing::warn!(%warning, "host setting breaks the mesh");
        }
        for warning in self.current.difference(&fresh) {
            tracing::info!(%warning, "host warning cleared");
        }
        self.current = fresh;
        self.current.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_in_force_and_forgets_what_cleared() {
        let mut notices = Notices::default();
        assert_eq!(notices.update(&["mtu".into(), "arp".into()]), 2);
        assert_eq!(notices.update(&["arp".into(), "arp".into()]), 1);
        assert_eq!(notices.current, BTreeSet::from(["arp".to_string()]));
        assert_eq!(notices.update(&[]), 0);
    }
}
