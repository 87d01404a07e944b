//! The routed overlay's kernel settings, proven with packets in a lab (two
//! hosts, real OVS, userspace datapath; the IPv4 stack and its sysctls are the
//! kernel's in each host namespace): obr0 hairpins peers' traffic, so ICMP
//! redirects must be off; strict `rp_filter` and `arp_filter` do no harm, while
//! `arp_ignore=2` silences ARP for the peers' gateways (and `status` says so);
//! VXLAN on its own `dst_port` carries the overlay; a switch port (veth host
//! end, underlay NIC) answers no ARP, so only the bridge's own port does.

mod arp;
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use ovsmesh::lab::{self, Lab};
use ovsmesh::plan::Kind;
use ovsmesh::topology::Topology;

const ROUTED: &str = r#"
[mesh]
name = "{mesh}"
encap = "ENCAP"
[hosts.host1]
underlay_address = "192.0.2.1/24"
[hosts.host2]
underlay_address = "192.0.2.2/24"
[networks.pods]
kind = "routed"
subnets = { host1 = "172.17.1.0/24", host2 = "172.17.2.0/24" }
[containers.web]
host = "host1"
network = "pods"
address = "172.17.1.2"
netns = "web"
[containers.db]
host = "host2"
network = "pods"
address = "172.17.2.2"
netns = "db"
"#;

/// A lab of [`ROUTED`], torn down on drop with the mesh's memory under /run.
struct RoutedLab {
    lab: Lab,
    topology: Topology,
    file: PathBuf,
    mesh: String,
}

impl RoutedLab {
    fn up(encap: &str) -> Self {
        let mesh = unique("khl");
        let text = ROUTED.replace("{mesh}", &mesh).replace("\"ENCAP\"", encap);
        let lab = Lab::new(&unique("q"));
        let file = std::env::temp_dir().join(format!("ovsmesh-{}.toml", lab.prefix));
        std::fs::write(&file, &text).unwrap();
        let this = Self {
            topology: topology(&text),
            lab,
            file,
            mesh,
        };
        let report = runtime()
            .block_on(lab::up(&this.lab, &this.topology, false))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!report.failed(), "{:?}", report.outcomes);
        this
    }

    fn sh(&self, ns: &str, script: &str) -> String {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &format!("{}-{ns}", self.lab.prefix),
                "sh",
                "-c",
                script,
            ],
        )
    }

    fn sysctl(&self, host: &str, dev: &str, key: &str) -> String {
        self.sh(host, &format!("cat /proc/sys/net/ipv4/conf/{dev}/{key}"))
            .trim()
            .to_string()
    }

    /// Set `key` on `all` and obr0 of both hosts; forget every neighbour.
    fn set_everywhere(&self, key: &str, value: u32) {
        for host in ["host1", "host2"] {
            self.sh(
                host,
                &format!(
                    "echo {value} > /proc/sys/net/ipv4/conf/all/{key}; echo {value} > /proc/sys/net/ipv4/conf/obr0/{key}"
                ),
            );
        }
        self.flush_neighbours();
    }

    fn flush_neighbours(&self) {
        for host in ["host1", "host2"] {
            self.sh(host, "ip neigh flush dev obr0");
        }
        for container in ["web", "db"] {
            self.sh(container, "ip neigh flush dev eth1");
        }
    }

    /// Three pings from web to db came back.
    fn ping_once(&self) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &format!("{}-web", self.lab.prefix)])
            .args([
                "ping",
                "-n",
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "2",
                "172.17.2.2",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// web reaches db (a few tries: a loaded machine's userspace datapath is slow to learn).
    fn pings(&self) -> bool {
        eventually(Duration::from_secs(10), || self.ping_once())
    }

    /// The host's ICMP OutRedirects counter.
    fn redirects_sent(&self, host: &str) -> u64 {
        let snmp = self.sh(host, "cat /proc/net/snmp");
        let icmp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Icmp:")).collect();
        let names = icmp[0].split_whitespace();
        let values = icmp[1].split_whitespace();
        names
            .zip(values)
            .find(|(name, _)| *name == "OutRedirects")
            .map(|(_, value)| value.parse().unwrap())
            .unwrap()
    }

    fn mac(&self, ns: &str, dev: &str) -> ovsmesh::topology::Mac {
        let netns = ovsmesh::netns::open(&format!("{}-{ns}", self.lab.prefix)).unwrap();
        ovsmesh::netlink::in_netns(&netns, |netlink| async move {
            Ok(netlink.link_by_name(dev).await?.and_then(|l| l.mac))
        })
        .unwrap()
        .unwrap_or_else(|| panic!("{dev} in {ns} has no MAC"))
    }

    /// The senders of the ARP replies for `target` that arrive on `dev` in
    /// namespace `ns` while it pings `target` with an empty neighbour table.
    fn arp_replies(&self, ns: &str, dev: &str, target: &str) -> Vec<ovsmesh::topology::Mac> {
        self.sh(ns, "ip neigh flush all");
        let netns = ovsmesh::netns::open(&format!("{}-{ns}", self.lab.prefix)).unwrap();
        let socket = ovsmesh::netns::run(&netns, || arp::capture(dev)).unwrap();
        self.sh(ns, &format!("ping -n -c 1 -W 1 {target} >/dev/null; true"));
        arp::replies(&socket, target.parse().unwrap(), Duration::from_millis(800))
    }

    fn status(&self, host: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
            .args(["status", "--lab", &self.lab.prefix, "--host", host])
            .arg(&self.file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RoutedLab {
    fn drop(&mut self) {
        let _ = runtime().block_on(lab::down(&self.lab));
        let _ = std::fs::remove_file(&self.file);
        for key in ovsmesh::netlink::sysctl::KEYS {
            let _ = std::fs::remove_dir_all(format!("/run/ovsmesh/{key}/{}", self.mesh));
        }
    }
}

#[test]
#[ignore = "needs root + OVS"]
fn the_routed_overlay_sends_no_icmp_redirects() {
    let lab = RoutedLab::up("\"gre\"");
    for host in ["host1", "host2"] {
        assert_eq!(lab.sysctl(host, "all", "send_redirects"), "0", "{host}");
        assert_eq!(lab.sysctl(host, "obr0", "send_redirects"), "0", "{host}");
    }
    let before = [lab.redirects_sent("host1"), lab.redirects_sent("host2")];
    assert!(lab.pings());
    assert_eq!(
        [lab.redirects_sent("host1"), lab.redirects_sent("host2")],
        before,
        "a host sent ICMP redirects"
    );

    // Control: with the kernel's defaults back, host2 does redirect its
    // container's replies (they enter and leave obr0).
    lab.sh(
        "host2",
        "echo 1 > /proc/sys/net/ipv4/conf/all/send_redirects; echo 1 > /proc/sys/net/ipv4/conf/obr0/send_redirects",
    );
    let before = lab.redirects_sent("host2");
    assert!(lab.pings());
    assert!(
        lab.redirects_sent("host2") > before,
        "no redirects even with the defaults"
    );

    // apply sees the drift and turns them off again.
    let twin = lab.lab.twin(&lab.topology);
    let outcome = lab::apply_host(&lab.lab, &twin, "host2", None, false).unwrap();
    let fixed: Vec<&str> = outcome
        .plan
        .changes
        .iter()
        .filter(|c| c.kind == Kind::Sysctl)
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(
        fixed,
        [
            "net.ipv4.conf.all.send_redirects",
            "net.ipv4.conf.obr0.send_redirects"
        ]
    );
    let before = lab.redirects_sent("host2");
    assert!(lab.pings());
    assert_eq!(lab.redirects_sent("host2"), before);
}

#[test]
#[ignore = "needs root + OVS"]
fn strict_rp_filter_and_arp_filter_keep_the_overlay_but_arp_ignore_2_breaks_it_and_status_says_so()
{
    let lab = RoutedLab::up("\"gre\"");
    assert!(lab.pings());
    lab.set_everywhere("rp_filter", 1);
    lab.set_everywhere("arp_filter", 1);
    lab.set_everywhere("arp_ignore", 1);
    assert!(
        lab.pings(),
        "strict rp_filter / arp_filter / arp_ignore=1 broke the overlay"
    );
    let warning = "warning: arp_ignore is 2 on obr0";
    assert!(!lab.status("host2").contains(warning));

    // arp_ignore 2 answers only senders in the gateway's own subnet: host1 asks
    // for host2's gateway from 172.17.1.1 and gets no answer.
    lab.sh("host2", "echo 2 > /proc/sys/net/ipv4/conf/all/arp_ignore");
    lab.flush_neighbours();
    assert!(
        !lab.ping_once(),
        "arp_ignore=2 was expected to break the overlay"
    );
    let status = lab.status("host2");
    assert!(status.contains(warning), "{status}");
    assert!(
        status.contains("ARP requests for the gateway 172.17.2.1 go unanswered"),
        "{status}"
    );

    lab.sh("host2", "echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore");
    lab.flush_neighbours();
    assert!(lab.pings());
    assert!(!lab.status("host2").contains(warning));
}

#[test]
#[ignore = "needs root + OVS"]
fn vxlan_on_its_own_dst_port_carries_the_routed_overlay() {
    let lab = RoutedLab::up("\"vxlan\"\ndst_port = 4790");
    assert!(lab.pings());
    let host_dir = lab.lab.host_dir("host1");
    let ports = run(
        "ovs-appctl",
        &[
            "-t",
            host_dir.join("vswitchd.ctl").to_str().unwrap(),
            "tnl/ports/show",
        ],
    );
    assert!(ports.contains("vxlan_sys_4790"), "{ports}");
    assert!(!ports.contains("vxlan_sys_4789"), "{ports}");
    let db = format!("--db={}", lab.lab.ovsdb_remote("host1"));
    let options = run(
        "ovs-vsctl",
        &[&db, "--columns=options", "find", "Interface", "type=vxlan"],
    );
    assert!(options.contains("dst_port=\"4790\""), "{options}");
}

#[test]
#[ignore = "needs root + OVS"]
fn only_the_bridge_answers_arp_and_down_gives_the_nic_its_setting_back() {
    // Without this, the host answered first on the veth host end and the NIC,
    // with their MACs: the container sent routed traffic to the veth, dropped
    // where forwarding is off there (a machine Docker never set ip_forward on).
    let lab = RoutedLab::up("\"gre\"");
    let twin = lab.lab.twin(&lab.topology);
    let want = ovsmesh::desired::desired(&twin, "host1").unwrap();
    let host_end = &want.containers["web/eth1"].host_end;

    // The veth host end is made silent, the underlay NIC's setting is claimed.
    assert_eq!(lab.sysctl("host1", host_end, "arp_ignore"), "8");
    let ipv6 = format!("cat /proc/sys/net/ipv6/conf/{host_end}/disable_ipv6");
    assert_eq!(lab.sh("host1", &ipv6).trim(), "1");
    assert_eq!(lab.sysctl("host1", "eth1", "arp_ignore"), "8");

    // The container asks for its gateway: one answer, from obr0 (not the veth).
    let replies = lab.arp_replies("web", "eth1", "172.17.1.1");
    let veth = lab.mac("host1", host_end);
    assert_eq!(replies, [lab.mac("host1", "obr0")], "the veth is {veth}");
    // host2 asks for host1's underlay address: one answer, from br-phy (not eth1).
    let replies = lab.arp_replies("host2", "eth1", "192.0.2.1");
    let nic = lab.mac("host1", "eth1");
    assert_eq!(replies, [lab.mac("host1", "br-phy")], "eth1 is {nic}");
    assert!(lab.pings());

    // `down` puts the NIC's own setting back.
    let outcome = lab::apply_host(&lab.lab, &twin, "host1", None, true).unwrap();
    assert!(!outcome.failed(), "{outcome:?}");
    assert_eq!(lab.sysctl("host1", "eth1", "arp_ignore"), "0");
}
