//! Forwarding through the host firewall: accept rules for the mesh's own routing interfaces.
//!
//! Docker sets the iptables FORWARD policy to DROP. A host that routes the mesh's traffic — between
//! its containers and the tunnel, both on the overlay bridge (`obr0` hairpins), or between a VLAN
//! gateway port and `obr0` — then drops all of it (measured in the VM lab: the routed overlay passed
//! nothing). ovsmesh adds narrowly scoped ACCEPT rules, and only these:
//!
//! - between every two routing interfaces of the host (the devices holding a gateway address that
//!   ovsmesh puts there: `obr0`, hosted VLAN gateway ports): `-i A -o B`;
//! - tunnel mode: `-i obr0 -o obr0` (to and from peers' subnets, packets enter and leave `obr0`);
//! - direct mode, per peer subnet P (own subnet S): `-i obr0 -s S -d P` and `-o obr0 -s P -d S`
//!   (the underlay device is not named: it may be any NIC).
//!
//! Traffic between the mesh and anything else (the underlay, the Internet) stays the admin's policy.
//! Each rule carries the comment `ovsmesh:MESH`. They go into Docker's `DOCKER-USER` chain when it
//! exists (Docker jumps there first and never flushes it), before its final `RETURN` so the admin's
//! own rules there keep precedence; otherwise into ovsmesh's chain `OVSMESH-FORWARD`, jumped to from
//! the top of FORWARD. Rules of other meshes and every foreign rule are left alone; a marked rule
//! that is not wanted (or in the wrong chain) is removed, so the set converges like everything
//! else. `down` removes this mesh's rules, and the own chain with its jump once empty.
//! `[mesh] manage_firewall = false` opts out: nothing is added, this mesh's earlier rules go.
//!
//! Why the `iptables` binary rather than netlink (the one place ovsmesh shells out on a host): the
//! rules must sit in the chains Docker and the admin use, as iptables rules (`iptables-nft` on
//! Debian 12 writes nftables in xtables-compatible form, `iptables-legacy` uses the old kernel
//! interface); talking nftables netlink ourselves would mean re-implementing that compat encoding
//! (comment match included) for both back ends. Computing the rules and parsing `iptables -S` are
//! pure and unit-tested; the commands run synchronously on the calling thread, so in the calling
//! thread's network namespace. A host without the `iptables` binary is left alone (and `status`
//! says so).

use std::collections::BTreeSet;
use std::process::Command;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::state::{AddressRole, HostState};
use crate::topology::{RoutedMode, Topology};

mod listing;
#[cfg(test)]
use crate::host::iptables_read::split_words;
use listing::ours;
pub use listing::{parse, Listed, Ruleset};

/// Docker's chain for the admin's rules, evaluated first from FORWARD.
pub const DOCKER_CHAIN: &str = "DOCKER-USER";
/// ovsmesh's own chain, when Docker's does not exist.
pub const OWN_CHAIN: &str = "OVSMESH-FORWARD";

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("iptables {args}: {message}")]
    Command { args: String, message: String },
}

/// One ACCEPT rule in the forward path.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_if: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_if: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<Ipv4Net>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<Ipv4Net>,
}

impl Rule {
    /// The match part, in the order `iptables -S` prints it.
    fn matches(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (flag, value) in [
            ("-s", self.src.map(|n| n.to_string())),
            ("-d", self.dst.map(|n| n.to_string())),
            ("-i", self.in_if.clone()),
            ("-o", self.out_if.clone()),
        ] {
            if let Some(value) = value {
                args.push(flag.to_string());
                args.push(value);
            }
        }
        args
    }

    /// The full rule specification with the mesh's mark.
    pub fn spec(&self, mesh: &str) -> Vec<String> {
        let mut args = self.matches();
        args.extend(["-m", "comment", "--comment"].map(String::from));
        args.push(mark(mesh));
        args.extend(["-j", "ACCEPT"].map(String::from));
        args
    }

    /// Short text: `-i obr0 -o obr0`.
    pub fn describe(&self) -> String {
        self.matches().join(" ")
    }
}

/// The comment marking a rule as this mesh's.
pub fn mark(mesh: &str) -> String {
    format!("ovsmesh:{mesh}")
}

/// The rules a host needs, from its desired state: pure.
pub fn wanted(topology: &Topology, desired: &HostState) -> Vec<Rule> {
    if !topology.mesh.manage_firewall {
        return Vec::new();
    }
    let overlay = &topology.mesh.overlay_bridge;
    let mut routing: Vec<&str> = Vec::new();
    let mut own_subnet = None;
    for address in desired.addresses.values() {
        match address.role {
            AddressRole::OverlayGateway => own_subnet = Some(address.address.trunc()),
            AddressRole::VlanGateway => {}
            AddressRole::Underlay => continue,
        }
        if !routing.contains(&address.dev.as_str()) {
            routing.push(&address.dev);
        }
    }
    let mut rules = Vec::new();
    for a in &routing {
        for b in routing.iter().filter(|b| *b != a) {
            rules.push(Rule {
                in_if: Some(a.to_string()),
                out_if: Some(b.to_string()),
                ..Rule::default()
            });
        }
    }
    if let (Some(routed), Some(own)) = (topology.routed(), own_subnet) {
        match routed.mode {
            RoutedMode::Tunnel => rules.push(Rule {
                in_if: Some(overlay.clone()),
                out_if: Some(overlay.clone()),
                ..Rule::default()
            }),
            RoutedMode::Direct => {
                for (peer, subnet) in &routed.subnets {
                    if *peer == desired.host {
                        continue;
                    }
                    rules.push(Rule {
                        in_if: Some(overlay.clone()),
                        src: Some(own),
                        dst: Some(*subnet),
                        ..Rule::default()
                    });
                    rules.push(Rule {
                        out_if: Some(overlay.clone()),
                        src: Some(*subnet),
                        dst: Some(own),
                        ..Rule::default()
                    });
                }
            }
        }
    }
    rules
}

/// What the firewall needs to match the wanted rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Where the mesh's rules belong.
    pub chain: String,
    pub create_chain: bool,
    /// Rules to insert, with the 1-based position to insert them at (`None`: append).
    pub add: Vec<Rule>,
    pub position: Option<usize>,
    pub add_jump: bool,
    /// This mesh's rules that are not wanted, duplicated, or in the wrong chain, as listed.
    pub delete: Vec<Listed>,
    /// The own chain is left empty: remove the jumps to it and the chain.
    pub drop_own_chain: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        !self.create_chain
            && self.add.is_empty()
            && !self.add_jump
            && self.delete.is_empty()
            && !self.drop_own_chain
    }
}

fn is_jump_to_own(listed: &Listed) -> bool {
    listed.chain == "FORWARD" && listed.args == ["-j", OWN_CHAIN]
}

/// The changes that take `set` to `wanted` for `mesh` (pure).
pub fn changes(set: &Ruleset, mesh: &str, wanted: &[Rule]) -> Changes {
    let docker = set.chains.contains(DOCKER_CHAIN);
    let chain = if docker { DOCKER_CHAIN } else { OWN_CHAIN };
    let mut present = BTreeSet::new();
    let mut delete = Vec::new();
    for listed in &set.rules {
        let Some(rule) = ours(&listed.args, mesh) else {
            continue;
        };
        match rule {
            Some(rule) if listed.chain == chain && wanted.contains(&rule) => {
                if !present.insert(rule) {
                    delete.push(listed.clone());
                }
            }
            _ => delete.push(listed.clone()),
        }
    }
    let mut add: Vec<Rule> = Vec::new();
    for rule in wanted {
        if !present.contains(rule) && !add.contains(rule) {
            add.push(rule.clone());
        }
    }
    let own_exists = set.chains.contains(OWN_CHAIN);
    let own = !docker && !wanted.is_empty();
    let position = if docker {
        // Before Docker's final unconditional RETURN, so the admin's rules come first.
        let rules: Vec<&Listed> = set.rules.iter().filter(|l| l.chain == chain).collect();
        match rules.last() {
            Some(last) if last.args == ["-j", "RETURN"] => Some(rules.len()),
            _ => None,
        }
    } else {
        None
    };
    let left_in_own = set
        .rules
        .iter()
        .filter(|l| l.chain == OWN_CHAIN && !delete.contains(l))
        .count()
        + if own { add.len() } else { 0 };
    Changes {
        chain: chain.to_string(),
        create_chain: own && !own_exists,
        position,
        add,
        add_jump: own && !set.rules.iter().any(is_jump_to_own),
        delete,
        drop_own_chain: own_exists && left_in_own == 0,
    }
}

fn iptables(args: &[&str]) -> Result<Option<String>, FirewallError> {
    let output = match Command::new("iptables").arg("-w").args(args).output() {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(FirewallError::Command {
                args: args.join(" "),
                message: error.to_string(),
            })
        }
    };
    if !output.status.success() {
        return Err(FirewallError::Command {
            args: args.join(" "),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// The filter table, or `None` when the `iptables` binary is not installed.
pub fn list() -> Result<Option<Ruleset>, FirewallError> {
    Ok(iptables(&["-S"])?.map(|text| parse(&text)))
}

/// Carry out `changes` for `mesh`; returns one line per change made.
pub fn execute(changes: &Changes, mesh: &str) -> Result<Vec<String>, FirewallError> {
    let mut done = Vec::new();
    let mut run = |args: Vec<String>, what: String| -> Result<(), FirewallError> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        iptables(&args)?;
        tracing::info!(mesh, change = %what, "firewall");
        done.push(what);
        Ok(())
    };
    let chain = &changes.chain;
    if changes.create_chain {
        run(vec!["-N".into(), chain.clone()], format!("+ chain {chain}"))?;
    }
    for rule in changes.add.iter().rev() {
        let mut args = match changes.position {
            Some(at) => vec!["-I".into(), chain.clone(), at.to_string()],
            None => vec!["-A".into(), chain.clone()],
        };
        args.extend(rule.spec(mesh));
        run(args, format!("+ {chain} {} -j ACCEPT", rule.describe()))?;
    }
    if changes.add_jump {
        let args = ["-I", "FORWARD", "1", "-j", OWN_CHAIN].map(String::from);
        run(args.to_vec(), format!("+ FORWARD -j {OWN_CHAIN}"))?;
    }
    for listed in &changes.delete {
        let mut args = vec!["-D".to_string(), listed.chain.clone()];
        args.extend(listed.args.iter().cloned());
        let what = format!("- {} {}", listed.chain, listed.args.join(" "));
        run(args, what)?;
    }
    if changes.drop_own_chain {
        // Every jump to the chain, then the (empty) chain.
        while let Ok(Some(_)) = iptables(&["-D", "FORWARD", "-j", OWN_CHAIN]) {}
        run(
            vec!["-X".into(), OWN_CHAIN.into()],
            format!("- chain {OWN_CHAIN}"),
        )?;
    }
    Ok(done)
}

/// Bring the firewall to the rules `desired` needs (apply and the daemon).
pub fn reconcile(topology: &Topology, desired: &HostState) -> Result<Vec<String>, FirewallError> {
    let want = wanted(topology, desired);
    let Some(set) = list()? else {
        if !want.is_empty() {
            tracing::warn!("iptables not found: the firewall is not managed");
        }
        return Ok(Vec::new());
    };
    execute(
        &changes(&set, &topology.mesh.name, &want),
        &topology.mesh.name,
    )
}

/// Remove every rule of `mesh` (down).
pub fn remove(mesh: &str) -> Result<Vec<String>, FirewallError> {
    match list()? {
        Some(set) => execute(&changes(&set, mesh, &[]), mesh),
        None => Ok(Vec::new()),
    }
}

/// What `status` reports about the firewall.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Check {
    pub managed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_policy: Option<String>,
    /// Where the mesh's rules belong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    pub rules: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stale: Vec<String>,
    /// Why the firewall could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// Read the firewall and compare it with what `desired` needs.
pub fn check(topology: &Topology, desired: &HostState) -> Check {
    let want = wanted(topology, desired);
    let managed = topology.mesh.manage_firewall;
    let set = match list() {
        Ok(Some(set)) => set,
        Ok(None) => {
            return Check {
                managed,
                unavailable: Some("iptables is not installed".into()),
                ..Check::default()
            }
        }
        Err(error) => {
            return Check {
                managed,
                unavailable: Some(error.to_string()),
                ..Check::default()
            }
        }
    };
    let changes = changes(&set, &topology.mesh.name, &want);
    Check {
        managed,
        forward_policy: set.policies.get("FORWARD").cloned(),
        chain: (!want.is_empty()).then(|| changes.chain.clone()),
        rules: want.len(),
        missing: changes.add.iter().map(Rule::describe).collect(),
        stale: changes
            .delete
            .iter()
            .map(|l| format!("{} {}", l.chain, l.args.join(" ")))
            .collect(),
        unavailable: None,
    }
}

impl Check {
    /// Nothing for `apply` to change in the firewall.
    pub fn converged(&self) -> bool {
        self.unavailable.is_some() || (self.missing.is_empty() && self.stale.is_empty())
    }

    /// One line for `status`.
    pub fn summary(&self) -> String {
        if let Some(why) = &self.unavailable {
            return format!("not checked ({why})");
        }
        let policy = format!(
            "FORWARD policy {}",
            self.forward_policy.as_deref().unwrap_or("unknown")
        );
        match (&self.chain, self.managed) {
            (_, false) => format!("{policy}; not managed (manage_firewall = false)"),
            (None, true) => format!("{policy}; no routing on this host, no rules needed"),
            (Some(chain), true) => format!(
                "{policy}; {} of {} accept rule(s) for the mesh's routing interfaces in {chain}",
                self.rules - self.missing.len(),
                self.rules
            ),
        }
    }

    /// Warnings for `status`; `routes` is whether this host routes container traffic.
    pub fn warnings(&self, routes: bool) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.missing.is_empty() {
            let effect = if self.forward_policy.as_deref() == Some("DROP") {
                "routed container traffic is dropped (FORWARD policy DROP)"
            } else {
                "routed container traffic passes only while the FORWARD policy stays ACCEPT"
            };
            warnings.push(format!(
                "firewall: accept rule(s) missing in {} ({}): {effect}; `ovsmesh apply` adds them",
                self.chain.as_deref().unwrap_or(OWN_CHAIN),
                self.missing.join("; ")
            ));
        }
        if !self.stale.is_empty() {
            warnings.push(format!(
                "firewall: {} rule(s) of this mesh not wanted any more; `ovsmesh apply` removes them",
                self.stale.len()
            ));
        }
        if routes && !self.managed && self.forward_policy.as_deref() == Some("DROP") {
            warnings.push("the firewall's FORWARD policy is DROP and manage_firewall = false: routed container traffic is dropped unless your own rules accept it".into());
        }
        warnings
    }
}

#[cfg(test)]
mod tests;
