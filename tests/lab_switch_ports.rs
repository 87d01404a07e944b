//! A port of a userspace-datapath bridge is only a switch port: the host's IP
//! stack answers no ARP on it, so a neighbour asking for an address the host
//! has gets exactly one answer, from the bridge's own port. (Without that, the
//! host answered first on the veth host end or the underlay NIC, with their
//! MACs; the container then sent its routed traffic to the veth, where the host
//! drops it unless forwarding happens to be on — the first-run failure of the
//! demo on a machine where Docker had never set `net.ipv4.ip_forward`.)

mod common;

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use common::*;
use ovsmesh::lab::{self, Lab};
use ovsmesh::netns;
use ovsmesh::topology::{Mac, Topology};

const ROUTED: &str = r#"
[mesh]
name = "{mesh}"
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

struct Guard {
    lab: Lab,
    topology: Topology,
    mesh: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = runtime().block_on(lab::down(&self.lab));
        for key in ovsmesh::netlink::sysctl::KEYS {
            let _ = std::fs::remove_dir_all(format!("/run/ovsmesh/{key}/{}", self.mesh));
        }
    }
}

impl Guard {
    fn up() -> Self {
        let mesh = unique("sp");
        let text = ROUTED.replace("{mesh}", &mesh);
        let guard = Self {
            topology: topology(&text),
            lab: Lab::new(&unique("s")),
            mesh,
        };
        let report = runtime()
            .block_on(lab::up(&guard.lab, &guard.topology, false))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!report.failed(), "{:?}", report.outcomes);
        guard
    }

    fn ns(&self, name: &str) -> std::fs::File {
        netns::open(&format!("{}-{name}", self.lab.prefix)).unwrap()
    }

    fn sh(&self, ns: &str, script: &str) -> String {
        let out = netns::output(&self.ns(ns), "sh", &["-c", script]).unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn mac(&self, ns: &str, dev: &str) -> Mac {
        ovsmesh::netlink::in_netns(&self.ns(ns), |netlink| async move {
            Ok(netlink.link_by_name(dev).await?.and_then(|l| l.mac))
        })
        .unwrap()
        .unwrap_or_else(|| panic!("{dev} in {ns} has no MAC"))
    }

    /// The ARP replies for `target` that arrive on `dev` in namespace `ns`
    /// while `ns` pings `target` with an empty neighbour table: (sender MAC).
    fn arp_replies(&self, ns: &str, dev: &str, target: Ipv4Addr) -> Vec<Mac> {
        self.sh(ns, "ip neigh flush all");
        let socket = netns::run(&self.ns(ns), || capture(dev)).unwrap();
        let ping = format!("ping -n -c 1 -W 1 {target} >/dev/null");
        self.sh(ns, &ping);
        read_replies(&socket, target, Duration::from_millis(800))
    }
}

/// An AF_PACKET socket for ARP frames on `dev`, in the calling thread's namespace.
fn capture(dev: &str) -> OwnedFd {
    let protocol = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: a new socket, owned at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
    assert!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is new and ours.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(dev).unwrap();
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(index > 0, "no device {dev}");
    // SAFETY: a zeroed sockaddr_ll with the fields bind reads.
    let bound = unsafe {
        let mut address: libc::sockaddr_ll = std::mem::zeroed();
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = protocol;
        address.sll_ifindex = index as i32;
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
    socket
}

/// ARP replies from `sender` read from `socket` until `window` has passed.
fn read_replies(socket: &OwnedFd, sender: Ipv4Addr, window: Duration) -> Vec<Mac> {
    let deadline = Instant::now() + window;
    let mut replies = Vec::new();
    let mut frame = [0u8; 128];
    while Instant::now() < deadline {
        // SAFETY: reads into a buffer of the length given.
        let n = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                frame.as_mut_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 42 {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let arp = &frame[14..42];
        let reply = arp[6..8] == [0, 2];
        if reply && arp[14..18] == sender.octets() {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&arp[8..14]);
            replies.push(Mac(mac));
        }
    }
    replies
}

#[test]
#[ignore = "needs root + OVS"]
fn only_the_bridge_answers_arp_and_down_gives_the_nic_its_setting_back() {
    let lab = Guard::up();
    let twin = lab.lab.twin(&lab.topology);
    let want = ovsmesh::desired::desired(&twin, "host1").unwrap();
    let host_end = &want.containers["web/eth1"].host_end;

    // The veth host end is made silent, the underlay NIC's setting is claimed.
    let conf = |path: &str| lab.sh("host1", &format!("cat /proc/sys/net/{path}"));
    assert_eq!(conf(&format!("ipv4/conf/{host_end}/arp_ignore")), "8");
    assert_eq!(conf(&format!("ipv6/conf/{host_end}/disable_ipv6")), "1");
    assert_eq!(conf("ipv4/conf/eth1/arp_ignore"), "8");

    // The container asks for its gateway: one answer, from obr0 (not the veth).
    let gateway: Ipv4Addr = "172.17.1.1".parse().unwrap();
    let replies = lab.arp_replies("web", "eth1", gateway);
    assert_eq!(
        replies,
        [lab.mac("host1", "obr0")],
        "veth end is {}",
        lab.mac("host1", host_end)
    );

    // host2 asks for host1's underlay address: one answer, from br-phy (not eth1).
    let underlay: Ipv4Addr = "192.0.2.1".parse().unwrap();
    let replies = lab.arp_replies("host2", "eth1", underlay);
    assert_eq!(
        replies,
        [lab.mac("host1", "br-phy")],
        "eth1 is {}",
        lab.mac("host1", "eth1")
    );

    // And the routed traffic passes (it did not, on a host without forwarding on the veth).
    assert!(eventually(Duration::from_secs(5), || {
        netns::output(
            &lab.ns("web"),
            "ping",
            &["-n", "-c", "1", "-W", "1", "172.17.2.2"],
        )
        .is_ok_and(|o| o.status.success())
    }));

    // `down` puts the NIC's own setting back.
    let outcome = lab::apply_host(&lab.lab, &twin, "host1", None, true).unwrap();
    assert!(!outcome.failed(), "{outcome:?}");
    assert_eq!(conf("ipv4/conf/eth1/arp_ignore"), "0");
}
