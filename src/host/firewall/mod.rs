//! The host firewall, as part of the state: one read path, one write path.
//!
//! **Read**: [`read`] lists the host's firewall once per reconcile, into one
//! [`Snapshot`]: `iptables-save` (every table, as `iptables_read` types it)
//! and, where `nft` is installed, `nft -j list ruleset`. From it come this
//! mesh's rules as observed state (`HostState::firewall`), where the rules go
//! (`HostState::firewall_host`), the conflicts of another nftables table that
//! would drop the mesh's traffic anyway, the `status` line and the INPUT check.
//!
//! **Backend**, decided per host from that one read ([`choose`]):
//! - `iptables` installed and the host uses it (any rule, user chain or policy
//!   other than ACCEPT in its tables, which is where Docker and most admins
//!   are; or no native nftables table exists): the **iptables backend**, in the
//!   chains Docker and the admin use, through whichever `iptables` the host's
//!   alternatives name (`iptables-nft` on Debian 12, `iptables-legacy` where
//!   that is chosen; the variant is read from `iptables-save`'s header);
//! - the host's firewall is native nftables (firewalld, an `nftables.conf`,
//!   Docker's nftables backend: a table that is not iptables-nft's) and
//!   iptables has nothing, or `iptables` is not installed but `nft` is: the
//!   **nftables backend**, ovsmesh's own table `inet ovsmesh`;
//! - neither program: the firewall is left alone, and `status` says so.
//!
//! **Write**: [`apply`] writes all of a reconcile's firewall changes at once:
//! one `iptables-restore -w 5 --noflush` input (deletes of the lines as listed,
//! inserts at explicit positions; each table commits atomically), or one
//! `nft -j -f -` transaction. Every call is bounded (see `run`): it never
//! blocks the async runtime, and a held xtables lock fails it in seconds with
//! the lock and its holder named.
//!
//! Why programs rather than netlink: the rules must sit in the chains Docker and
//! the admin use, as iptables rules (iptables-nft's compat encoding or the
//! legacy kernel interface, whichever the host uses); `iptables-save`,
//! `iptables-restore` and `nft` speak both. They run in the network namespace
//! of the calling thread (a lab host's, a test's).

mod iptables;
mod nft;
mod run;
mod walk;

use std::collections::BTreeMap;

use serde::Serialize;

pub use self::iptables::mark;
pub use run::{lock_path, RunError, DEADLINE, LOCK_WAIT};

use crate::host::iptables_read::{self, Tables};
use crate::plan::{Change, Kind, Op, Plan};
use crate::state::{Family, FirewallHost, FirewallRule, HostState, Occupied, Place, Rule};

/// The host's firewall as one reconcile read it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The backend chosen (or why there is none).
    pub host: FirewallHost,
    /// `iptables-save`, by table; `None` without iptables.
    pub iptables: Option<Tables>,
    /// `ip6tables-save`, by table; `None` without ip6tables (or when it could
    /// not be read: then no IPv6 rule is written there).
    pub ip6tables: Option<Tables>,
    /// `nft -j list ruleset`; `None` without nft (or when it could not be read).
    pub nft: Option<nft::Listing>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            host: FirewallHost::Missing,
            iptables: None,
            ip6tables: None,
            nft: None,
        }
    }
}

/// Read the firewall of the calling thread's network namespace (bounded).
pub async fn read() -> Snapshot {
    // Side by side: a reconcile waits for the slowest, not all in turn.
    let (iptables, ip6tables, nft) = tokio::join!(
        run::run("iptables-save", &[], None),
        run::run("ip6tables-save", &[], None),
        run::run("nft", &["-j", "list", "ruleset"], None)
    );
    let ip6tables = match ip6tables {
        Ok(Some(text)) => Some(iptables_read::tables(&text)),
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%error, "ip6tables-save: IPv6 rules are left as they are");
            None
        }
    };
    let nft = match nft {
        Ok(Some(json)) => match nft::parse(&json) {
            Ok(listing) => Ok(Some(listing)),
            Err(error) => Err(error),
        },
        Ok(None) => Ok(None),
        Err(error) => Err(error.to_string()),
    };
    match iptables {
        Ok(Some(text)) => {
            let variant = variant(&text);
            let tables = iptables_read::tables(&text);
            let nft = nft.ok().flatten();
            let mut host = choose(Some((&variant, &tables)), nft.as_ref());
            if let FirewallHost::Iptables { docker_user6, .. } = &mut host {
                *docker_user6 = ip6tables.as_ref().is_some_and(has_docker_chain);
            }
            Snapshot {
                host,
                iptables: Some(tables),
                ip6tables,
                nft,
            }
        }
        Ok(None) => match nft {
            Ok(nft) => Snapshot {
                host: choose(None, nft.as_ref()),
                iptables: None,
                ip6tables: None,
                nft,
            },
            Err(error) => unreadable(error),
        },
        Err(error) => unreadable(error.to_string()),
    }
}

fn unreadable(error: String) -> Snapshot {
    Snapshot {
        host: FirewallHost::Unreadable { error },
        ..Snapshot::default()
    }
}

/// `nf_tables` or `legacy`, from `iptables-save`'s header; `None` when it
/// printed no table (nothing to tell by).
fn variant(listing: &str) -> Option<String> {
    let header = listing
        .lines()
        .find(|l| l.starts_with("# Generated by iptables-save"))?;
    Some(if header.contains("(nf_tables)") {
        "nf_tables".to_string()
    } else {
        "legacy".to_string()
    })
}

/// Whether the host's iptables holds anything: a rule, a user chain, a policy
/// other than ACCEPT.
fn iptables_in_use(tables: &Tables) -> bool {
    tables.values().any(|table| {
        table.chains.values().any(|chain| {
            !chain.rules.is_empty() || chain.policy.as_deref().is_none_or(|p| p != "ACCEPT")
        })
    })
}

/// The backend for a host, from what one read found (see the module docs).
pub fn choose(
    iptables: Option<(&Option<String>, &Tables)>,
    nft: Option<&nft::Listing>,
) -> FirewallHost {
    let native = nft.is_some_and(nft::Listing::has_native_tables);
    match iptables {
        Some((_, tables)) if native && !iptables_in_use(tables) => FirewallHost::Nftables,
        Some((variant, tables)) => FirewallHost::Iptables {
            variant: variant.clone().unwrap_or_else(|| "unknown".into()),
            docker_user: has_docker_chain(tables),
            docker_user6: false,
        },
        None if nft.is_some() => FirewallHost::Nftables,
        None => FirewallHost::Missing,
    }
}

/// Whether Docker's `DOCKER-USER` chain is in a listing's filter table.
fn has_docker_chain(tables: &Tables) -> bool {
    tables.get("filter").is_some_and(|t| {
        t.chains
            .contains_key(crate::desired::firewall::DOCKER_CHAIN)
    })
}

impl Snapshot {
    /// The iptables listing of `family`.
    fn tables(&self, family: Family) -> Option<&Tables> {
        match family {
            Family::Ipv4 => self.iptables.as_ref(),
            Family::Ipv6 => self.ip6tables.as_ref(),
        }
    }

    /// This mesh's rules as observed, and what another nftables table's base
    /// chain would drop of what `want` accepts.
    pub fn observe(
        &self,
        mesh: &str,
        want: &HostState,
    ) -> (BTreeMap<String, FirewallRule>, Vec<Occupied>) {
        let mut rules = BTreeMap::new();
        for family in [Family::Ipv4, Family::Ipv6] {
            if let Some(tables) = self.tables(family) {
                rules.extend(iptables::observe(tables, mesh, family).rules);
            }
        }
        if let Some(listing) = &self.nft {
            for (id, rule) in nft::observe(listing, mesh).rules {
                match rules.get_mut(&id) {
                    // Left in both after a change of backend: rewritten where it belongs.
                    Some(there) => there.misplaced = Some("in both iptables and nftables".into()),
                    None => {
                        rules.insert(id, rule);
                    }
                }
            }
        }
        let mut occupied = Vec::new();
        if let (Some(listing), FirewallHost::Iptables { .. } | FirewallHost::Nftables) =
            (&self.nft, &self.host)
        {
            for (id, rule) in &want.firewall {
                let Rule::Accept(accept) = &rule.rule else {
                    continue;
                };
                if let Some(dropped) = walk::dropped(listing, accept) {
                    occupied.push(Occupied {
                        kind: Kind::Firewall,
                        id: id.clone(),
                        by: dropped.explain(accept),
                        inside: false,
                    });
                }
            }
        }
        (rules, occupied)
    }

    /// The filter table (for the INPUT check).
    pub fn filter(&self) -> Option<&iptables_read::Ruleset> {
        self.iptables.as_ref()?.get("filter")
    }

    /// The filter table of `family`'s listing (the INPUT check of an IPv6 underlay reads ip6tables).
    pub fn filter_of(&self, family: Family) -> Option<&iptables_read::Ruleset> {
        self.tables(family)?.get("filter")
    }

    /// The iptables FORWARD policy, if iptables is there to tell.
    pub fn forward_policy(&self) -> Option<String> {
        self.filter()?.policy("FORWARD").map(str::to_string)
    }
}

/// Write the firewall changes of `plan` (those of [`Kind::Firewall`]) against
/// what `snapshot` listed: one batch per backend. The changes made, and the
/// failure of a batch with the changes it did not make.
pub async fn apply(
    snapshot: &Snapshot,
    mesh: &str,
    plan: &Plan,
) -> (Vec<Change>, Option<(String, usize)>) {
    let changes: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.kind == Kind::Firewall)
        .collect();
    let mut applied = Vec::new();
    let mut failure = None;
    // A rule is deleted wherever it is listed (after a change of backend it may
    // be in both), written where its place is.
    let delete: Vec<&str> = changes
        .iter()
        .filter(|c| c.before.is_some())
        .map(|c| c.id.as_str())
        .collect();
    for backend in [
        Backend::Iptables(Family::Ipv4),
        Backend::Iptables(Family::Ipv6),
        Backend::Nftables,
    ] {
        let write: Vec<&FirewallRule> = changes
            .iter()
            .filter_map(|c| c.after.as_ref().and_then(|i| i.firewall()))
            .filter(|r| backend.holds(r))
            .collect();
        let (program, args, listed, input): (&str, Vec<String>, Vec<String>, Option<String>) =
            match backend {
                Backend::Iptables(family) => {
                    let Some(tables) = snapshot.tables(family) else {
                        continue;
                    };
                    let found = iptables::observe(tables, mesh, family);
                    let wait = LOCK_WAIT.to_string();
                    let program = match family {
                        Family::Ipv4 => "iptables-restore",
                        Family::Ipv6 => "ip6tables-restore",
                    };
                    (
                        program,
                        vec!["-w".into(), wait, "--noflush".into()],
                        found.lines.keys().cloned().collect(),
                        iptables::batch(tables, &found, mesh, &delete, &write),
                    )
                }
                Backend::Nftables => {
                    let Some(listing) = &snapshot.nft else {
                        continue;
                    };
                    let found = nft::observe(listing, mesh);
                    (
                        "nft",
                        vec!["-j".into(), "-f".into(), "-".into()],
                        found.handles.keys().cloned().collect(),
                        nft::batch(listing, &found, mesh, &delete, &write),
                    )
                }
            };
        let involved: Vec<&Change> = changes
            .iter()
            .filter(|c| {
                let written = c
                    .after
                    .as_ref()
                    .and_then(|i| i.firewall())
                    .is_some_and(|r| backend.holds(r));
                written || (c.before.is_some() && listed.contains(&c.id))
            })
            .copied()
            .collect();
        let Some(input) = input else {
            continue;
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match run::run(program, &args, Some(&input)).await {
            Ok(Some(_)) => {
                for change in &involved {
                    tracing::info!(mesh, change = %format!("{:?} {}", change.op, change.id), "firewall");
                    if !applied.iter().any(|a: &Change| a.id == change.id) {
                        applied.push((*change).clone());
                    }
                }
            }
            Ok(None) => failure = Some((format!("{program} is not installed"), involved.len())),
            Err(error) => failure = Some((error.to_string(), involved.len())),
        }
    }
    (applied, failure)
}

#[derive(Clone, Copy)]
enum Backend {
    /// iptables or ip6tables.
    Iptables(Family),
    Nftables,
}

impl Backend {
    fn holds(self, rule: &FirewallRule) -> bool {
        match (self, &rule.place) {
            (Backend::Iptables(family), Place::Iptables { .. }) => rule.rule.family() == family,
            (Backend::Nftables, Place::Nftables { .. }) => true,
            _ => false,
        }
    }
}

/// What `status` reports about the firewall.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Check {
    pub managed: bool,
    /// `iptables-nft`, `iptables-legacy`, `nftables`, …
    pub backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_policy: Option<String>,
    /// Where the mesh's rules go.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub places: Vec<String>,
    /// Rules the mesh needs on this host, and how many of them the plan still changes.
    pub rules: usize,
    pub pending: usize,
    /// Why the firewall is not managed here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// The status of the firewall from what was read and the plan.
pub fn check(
    snapshot: &Snapshot,
    plan: &Plan,
    target_rules: &[&FirewallRule],
    managed: bool,
) -> Check {
    let mut places: Vec<String> = target_rules
        .iter()
        .filter(|r| !matches!(r.rule, Rule::Jump { .. }))
        .map(|r| r.place.to_string())
        .collect();
    places.sort();
    places.dedup();
    let pending = plan
        .changes
        .iter()
        .filter(|c| c.kind == Kind::Firewall && c.op != Op::Delete)
        .count();
    let (backend, unavailable) = match &snapshot.host {
        FirewallHost::Iptables { variant, .. } => (
            match variant.as_str() {
                "nf_tables" => "iptables-nft",
                "legacy" => "iptables-legacy",
                _ => "iptables",
            }
            .to_string(),
            None,
        ),
        FirewallHost::Nftables => ("nftables".to_string(), None),
        FirewallHost::Missing => (
            "none".to_string(),
            Some("neither iptables nor nft is installed".to_string()),
        ),
        FirewallHost::Unreadable { error } => ("unknown".to_string(), Some(error.clone())),
    };
    Check {
        managed,
        backend,
        forward_policy: snapshot.forward_policy(),
        places,
        rules: target_rules.len(),
        pending,
        unavailable,
    }
}

impl Check {
    /// One line for `status`.
    pub fn summary(&self) -> String {
        if let Some(why) = &self.unavailable {
            return format!("not managed ({why})");
        }
        let policy = match &self.forward_policy {
            Some(policy) => format!("FORWARD policy {policy}; "),
            None => String::new(),
        };
        if !self.managed {
            return format!("{policy}not managed (manage_firewall = false)");
        }
        if self.rules == 0 {
            return format!(
                "{policy}no routing on this host, no rules needed ({})",
                self.backend
            );
        }
        format!(
            "{policy}{} of {} rule(s) of this mesh in {} ({})",
            self.rules.saturating_sub(self.pending),
            self.rules,
            self.places.join(", "),
            self.backend
        )
    }

    /// Warnings for `status`; `routes` is whether this host routes container traffic.
    pub fn warnings(&self, routes: bool) -> Vec<String> {
        let mut warnings = Vec::new();
        let drop = self.forward_policy.as_deref() == Some("DROP");
        if self.managed && self.pending > 0 && routes {
            let effect = if drop {
                "routed container traffic is dropped (FORWARD policy DROP)"
            } else {
                "routed container traffic passes only while the firewall lets it"
            };
            warnings.push(format!(
                "firewall: {} rule(s) of this mesh missing or out of place: {effect}; `ovsmesh apply` writes them",
                self.pending
            ));
        }
        if routes && !self.managed && drop {
            warnings.push("the firewall's FORWARD policy is DROP and manage_firewall = false: routed container traffic is dropped unless your own rules accept it".into());
        }
        warnings
    }
}

#[cfg(test)]
mod tests;
