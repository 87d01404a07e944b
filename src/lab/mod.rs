//! `ovsmesh lab`: a local twin of a topology, with real Open vSwitch.
//!
//! Every topology host becomes a network namespace `PREFIX-HOST` running its
//! own ovsdb-server and ovs-vswitchd (own database, sockets, pid and log files
//! and own `OVS_RUNDIR`, or every vswitchd would bind `BRIDGE.mgmt` in one
//! shared run dir). Hosts run the userspace datapath with a lab underlay NIC
//! plugged into a switch namespace `PREFIX-sw` (a Linux bridge, which passes
//! VLAN-tagged frames, so `vlan_transport = "uplink"` works with a lab uplink
//! NIC too). Named-netns containers become `PREFIX-NAME`; with `--docker`,
//! Docker containers `PREFIX-NAME` run `--net=none` from a busybox image built
//! with `docker import` (a container referred to by its id, 12 or more hex
//! digits, is one container already: kept as it is). Then the topology is applied on every host from inside
//! that host's namespace, through the same engine as `ovsmesh apply`.
//!
//! Everything lives under `/run/ovsmesh/lab/PREFIX` and in namespaces named
//! after the prefix, so `lab down` can remove it all, also after a crash.

pub mod docker;
mod error;
pub mod namespaces;
mod pidfile;
mod render;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::engine::{self, HostTarget, Outcome};
use crate::netlink::{in_netns, LinkChange};
use crate::netns;
use crate::ovs::Session;
use crate::ovsdb::{self, transact};
use crate::runtime::Runtimes;
use crate::topology::ident::under;
use crate::topology::{Datapath, Family, Runtime, Topology, VlanTransport};
pub use error::LabError;
pub use pidfile::kill_pidfile;
pub use render::render_up;

/// Where a lab lives.
#[derive(Debug, Clone)]
pub struct Lab {
    pub prefix: String,
    pub dir: PathBuf,
}

impl Lab {
    /// # Panics
    /// If `prefix` is not one plain path component (the CLI checks `--prefix`
    /// with `ident::lab_prefix` first), rather than put the lab outside its directory.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            dir: under(Path::new("/run/ovsmesh/lab"), prefix).expect("a checked lab prefix"),
        }
    }

    pub fn host_ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    pub fn switch_ns(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    /// # Panics
    /// If `host` is not one plain path component (host keys are validated names).
    pub fn host_dir(&self, host: &str) -> PathBuf {
        under(&self.dir.join("hosts"), host).expect("a validated host name")
    }

    pub fn ovsdb_remote(&self, host: &str) -> String {
        format!("unix:{}", self.host_dir(host).join("db.sock").display())
    }

    /// The Docker socket this lab uses, if it was brought up with Docker.
    pub fn docker_socket(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("docker-socket"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// The topology as the lab runs it: netdev hosts with lab NICs, lab sockets,
    /// prefixed container names.
    pub fn twin(&self, topology: &Topology) -> Topology {
        let mut twin = topology.clone();
        for host in twin.hosts.values_mut() {
            host.datapath = Datapath::Netdev;
            let underlay = host
                .underlay_nic
                .get_or_insert_with(|| "eth1".to_string())
                .clone();
            if twin.mesh.vlan_transport == VlanTransport::Uplink {
                host.uplink_nic.get_or_insert_with(|| {
                    if underlay == "eth2" {
                        "eth3".into()
                    } else {
                        "eth2".into()
                    }
                });
            }
            host.ovsdb = Some(self.ovsdb_remote(&host.name));
        }
        for container in twin.containers.values_mut() {
            container.runtime = match &container.runtime {
                Runtime::Netns(name) => Runtime::Netns(format!("{}-{name}", self.prefix)),
                Runtime::Docker(id) if is_container_id(id) => Runtime::Docker(id.clone()),
                Runtime::Docker(name) => Runtime::Docker(format!("{}-{name}", self.prefix)),
            };
        }
        twin
    }
}

/// Whether a Docker reference is a container id or id prefix (12+ hex digits), not a name.
fn is_container_id(reference: &str) -> bool {
    reference.len() >= 12 && reference.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What `lab up` made, for printing.
#[derive(Debug)]
pub struct UpReport {
    pub outcomes: BTreeMap<String, Outcome>,
    pub seconds: f64,
}

impl UpReport {
    /// Whether any object failed on any host.
    pub fn failed(&self) -> bool {
        self.outcomes.values().any(Outcome::failed)
    }
}

fn require_ovs() -> Result<(), LabError> {
    for program in ["ovsdb-tool", "ovsdb-server", "ovs-vswitchd"] {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).exists()))
            .unwrap_or(false);
        if !found {
            return Err(LabError::MissingOvs(program.to_string()));
        }
    }
    Ok(())
}

/// Bring up the twin of `topology`.
pub async fn up(lab: &Lab, topology: &Topology, with_docker: bool) -> Result<UpReport, LabError> {
    let start = std::time::Instant::now();
    require_ovs()?;
    std::fs::create_dir_all(&lab.dir).map_err(LabError::io("state dir"))?;
    let twin = lab.twin(topology);
    build_underlay(lab, &twin).await?;
    for host in twin.hosts.keys() {
        start_ovs(lab, host).await?;
    }
    for container in twin.containers.values() {
        if let Runtime::Netns(name) = &container.runtime {
            namespaces::add(name).await?;
        }
    }
    let docker_socket = if with_docker
        && twin
            .containers
            .values()
            .any(|c| matches!(c.runtime, Runtime::Docker(_)))
    {
        let socket = docker::ensure_engine(lab)?;
        docker::run_containers(lab, &socket, &twin)?;
        Some(socket)
    } else {
        None
    };
    let mut outcomes = BTreeMap::new();
    for host in twin.hosts.keys() {
        let outcome = apply_host(lab, &twin, host, docker_socket.as_deref(), false)?;
        outcomes.insert(host.clone(), outcome);
    }
    Ok(UpReport {
        outcomes,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The switch namespace with its bridge, and each host's lab NICs plugged into it.
async fn build_underlay(lab: &Lab, twin: &Topology) -> Result<(), LabError> {
    let switch = lab.switch_ns();
    namespaces::add(&switch).await?;
    let switch_file = netns::open(&switch)?;
    in_netns(&switch_file, |netlink| async move {
        if netlink.link_by_name("br0").await?.is_none() {
            netlink.create_bridge("br0").await?;
        }
        Ok(())
    })
    .map_err(LabError::netlink("switch bridge"))?;
    for (i, host) in twin.hosts.values().enumerate() {
        let ns = lab.host_ns(&host.name);
        namespaces::add(&ns).await?;
        let host_file = netns::open(&ns)?;
        let mut nics = vec![(
            host.underlay_nic.clone().unwrap_or_default(),
            format!("s{i}u"),
        )];
        if let Some(uplink) = &host.uplink_nic {
            nics.push((uplink.clone(), format!("s{i}t")));
        }
        let mtu = host.underlay_mtu;
        let host_file_ref = &host_file;
        in_netns(&switch_file, |netlink| async move {
            let bridge = netlink
                .link_by_name("br0")
                .await?
                .map(|l| l.index)
                .unwrap_or_default();
            for (nic, switch_port) in &nics {
                if netlink.link_by_name(switch_port).await?.is_none() {
                    netlink
                        .create_veth_pair(switch_port, nic, host_file_ref)
                        .await?;
                }
                let port = netlink
                    .link_by_name(switch_port)
                    .await?
                    .map(|l| l.index)
                    .unwrap_or_default();
                netlink
                    .set_link(
                        port,
                        LinkChange {
                            up: true,
                            mtu: Some(mtu),
                            ..LinkChange::default()
                        },
                    )
                    .await?;
                netlink.set_controller(port, bridge).await?;
            }
            Ok(())
        })
        .map_err(LabError::netlink("lab NICs"))?;
        let addresses: Vec<ipnet::IpNet> = [Family::Ipv4, Family::Ipv6]
            .into_iter()
            .filter_map(|f| host.underlay(f))
            .collect();
        let nic_names: Vec<String> = std::iter::once(host.underlay_nic.clone().unwrap_or_default())
            .chain(host.uplink_nic.clone())
            .collect();
        let underlay_nic = nic_names[0].clone();
        in_netns(&host_file, |netlink| async move {
            for link in netlink.links().await? {
                if link.name == "lo" || nic_names.contains(&link.name) {
                    let mtu = (link.name != "lo").then_some(mtu);
                    netlink
                        .set_link(
                            link.index,
                            LinkChange {
                                up: true,
                                mtu,
                                ..LinkChange::default()
                            },
                        )
                        .await?;
                }
            }
            // The underlay address starts on the NIC; apply moves it to the underlay bridge.
            let on_bridge = netlink.link_by_name("br-phy").await?.is_some();
            if !on_bridge {
                if let Some(nic) = netlink.link_by_name(&underlay_nic).await? {
                    for address in addresses {
                        netlink.add_address(nic.index, address).await?;
                    }
                }
            }
            Ok(())
        })
        .map_err(LabError::netlink("lab host NICs"))?;
    }
    Ok(())
}

/// ovsdb-server and ovs-vswitchd inside the host's namespace, with their own run dir.
async fn start_ovs(lab: &Lab, host: &str) -> Result<(), LabError> {
    let dir = lab.host_dir(host);
    std::fs::create_dir_all(&dir).map_err(LabError::io("host dir"))?;
    let ns = netns::open(&lab.host_ns(host))?;
    let db = dir.join("conf.db");
    let alive = |pidfile: &str| {
        std::fs::read_to_string(dir.join(pidfile))
            .ok()
            .is_some_and(|pid| Path::new(&format!("/proc/{}", pid.trim())).exists())
    };
    if !db.exists() {
        let out = std::process::Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg("/usr/share/openvswitch/vswitch.ovsschema")
            .output()
            .map_err(LabError::spawn("ovsdb-tool"))?;
        LabError::check("ovsdb-tool create", &out)?;
    }
    let path = |name: &str| dir.join(name).display().to_string();
    if !alive("ovsdb.pid") {
        let out = netns::command(&ns, "ovsdb-server")
            .env("OVS_RUNDIR", &dir)
            .arg(&db)
            .arg(format!("--remote=punix:{}", path("db.sock")))
            .arg(format!("--pidfile={}", path("ovsdb.pid")))
            .arg(format!("--unixctl={}", path("ovsdb.ctl")))
            .arg(format!("--log-file={}", path("ovsdb.log")))
            .arg("--detach")
            .output()
            .map_err(LabError::spawn("ovsdb-server"))?;
        LabError::check("ovsdb-server", &out)?;
    }
    init_database(&lab.ovsdb_remote(host)).await?;
    if !alive("vswitchd.pid") {
        let out = netns::command(&ns, "ovs-vswitchd")
            .env("OVS_RUNDIR", &dir)
            .arg(lab.ovsdb_remote(host))
            .arg(format!("--pidfile={}", path("vswitchd.pid")))
            .arg(format!("--unixctl={}", path("vswitchd.ctl")))
            .arg(format!("--log-file={}", path("vswitchd.log")))
            .arg("--detach")
            .output()
            .map_err(LabError::spawn("ovs-vswitchd"))?;
        LabError::check("ovs-vswitchd", &out)?;
    }
    Ok(())
}

/// Create the Open_vSwitch root row if the database is new (what `ovs-vsctl init` does).
async fn init_database(remote: &str) -> Result<(), LabError> {
    let (client, _) = ovsdb::connect(remote, ovsdb::ConnectOptions::default())
        .await
        .map_err(LabError::ovsdb("ovsdb"))?;
    let rows = client
        .transact(
            ovsdb::DB,
            vec![transact::select("Open_vSwitch", json!([]), &["_uuid"])],
        )
        .await
        .map_err(LabError::ovsdb("ovsdb"))?;
    if rows[0]["rows"].as_array().is_none_or(|r| r.is_empty()) {
        client
            .transact(
                ovsdb::DB,
                vec![transact::insert("Open_vSwitch", json!({}), "root")],
            )
            .await
            .map_err(LabError::ovsdb("ovsdb init"))?;
    }
    Ok(())
}

/// Apply (or take down) the twin on one lab host, from inside its namespace.
pub fn apply_host(
    lab: &Lab,
    twin: &Topology,
    host: &str,
    docker: Option<&str>,
    down: bool,
) -> Result<Outcome, LabError> {
    let ns = netns::open(&lab.host_ns(host))?;
    let remote = lab.ovsdb_remote(host);
    let result = netns::block_on(&ns, || async {
        let runtimes = Runtimes::new(docker);
        // vswitchd takes longer the more ports it opens (userspace datapath).
        let ports = twin.containers.values().filter(|c| c.host == host).count() as u64;
        let target = HostTarget {
            topology: twin,
            host,
            runtimes: &runtimes,
            wait: Some(Duration::from_secs(30 + ports / 5)),
        };
        let mut session = Session::open(&remote, &twin.mesh.name).await?;
        if down {
            engine::down_host(&mut session, &target).await
        } else {
            engine::apply_host(&mut session, &target).await
        }
    })
    .map_err(|source| LabError::Enter {
        host: host.to_string(),
        source,
    })?;
    result.map_err(|source| LabError::Apply {
        host: host.to_string(),
        source: Box::new(source),
    })
}

/// Remove everything of the lab: daemons, containers, namespaces, state.
pub async fn down(lab: &Lab) -> Result<Vec<String>, LabError> {
    let mut removed = Vec::new();
    let hosts_dir = lab.dir.join("hosts");
    if let Ok(hosts) = std::fs::read_dir(&hosts_dir) {
        for host in hosts.flatten() {
            for (pidfile, program) in [
                ("vswitchd.pid", "ovs-vswitchd"),
                ("ovsdb.pid", "ovsdb-server"),
            ] {
                if let Some(pid) = kill_pidfile(&host.path().join(pidfile), program) {
                    removed.push(format!(
                        "{} of host {} (pid {pid})",
                        pidfile.trim_end_matches(".pid"),
                        host.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    removed.extend(docker::remove_all(lab));
    for name in namespaces::with_prefix(&format!("{}-", lab.prefix)) {
        namespaces::del(&name).await?;
        removed.push(format!("namespace {name}"));
    }
    if lab.dir.exists() {
        std::fs::remove_dir_all(&lab.dir).map_err(LabError::io("state dir"))?;
        removed.push(format!("state {}", lab.dir.display()));
    }
    Ok(removed)
}

/// What runs in a lab, for `lab status`.
pub fn status(lab: &Lab) -> Vec<String> {
    let mut lines = Vec::new();
    let alive = |path: &Path| {
        std::fs::read_to_string(path)
            .ok()
            .map(|pid| pid.trim().to_string())
            .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
    };
    if let Ok(hosts) = std::fs::read_dir(lab.dir.join("hosts")) {
        let mut hosts: Vec<_> = hosts.flatten().collect();
        hosts.sort_by_key(|h| h.file_name());
        for host in hosts {
            let name = host.file_name().to_string_lossy().to_string();
            let daemon = |file: &str| match alive(&host.path().join(file)) {
                Some(pid) => format!("running (pid {pid})"),
                None => "not running".to_string(),
            };
            lines.push(format!(
                "host {name}: namespace {}, ovsdb-server {}, ovs-vswitchd {}, OVSDB {}",
                lab.host_ns(&name),
                daemon("ovsdb.pid"),
                daemon("vswitchd.pid"),
                lab.ovsdb_remote(&name)
            ));
        }
    }
    for name in namespaces::with_prefix(&format!("{}-", lab.prefix)) {
        lines.push(format!("namespace {name}"));
    }
    lines.extend(docker::list(lab));
    lines
}
