//! Sending the check's packets from inside container namespaces.
//!
//! Pings run the system `ping` inside the source namespace (entered between
//! fork and exec, [`crate::netns::command`]); the neighbour table is dumped over
//! rtnetlink in the same namespace; TCP transfers run on two dedicated threads, one in each
//! namespace ([`crate::netns::run`]). One thread per
//! source interface keeps the whole matrix to a few seconds.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::{judge, Endpoint, Expect, Probe, ProbeResult, Report, Seen, TcpResult};
use crate::netlink::in_netns;
use crate::netns;
use crate::runtime::{Located, Runtimes};
use crate::topology::Mac;

const TCP_BYTES: usize = 1 << 20;

/// Open every endpoint's namespace (`None`: not running).
pub async fn locate(endpoints: &[Endpoint], runtimes: &Runtimes) -> Vec<Option<File>> {
    let mut found = Vec::new();
    for endpoint in endpoints {
        found.push(match runtimes.locate(&endpoint.runtime).await {
            Ok(Located::Running(file)) => Some(file),
            _ => None,
        });
    }
    found
}

/// One ping (iputils' `ping` takes either family by the address).
fn ping(netns: &File, ifname: &str, address: IpAddr, size: Option<u32>) -> bool {
    let address = address.to_string();
    let mut command = netns::command(netns, "ping");
    command.args(["-n", "-q", "-c", "1", "-W", "1", "-I", ifname]);
    if let Some(size) = size {
        command.args(["-M", "do", "-s", &size.to_string()]);
    }
    command.arg(&address);
    command.output().is_ok_and(|o| o.status.success())
}

/// The MAC the namespace's neighbour table (ARP or NDP) holds for `address`
/// on `ifname` (an rtnetlink dump inside the namespace).
fn neighbour(netns: &File, ifname: &str, address: IpAddr) -> Option<Mac> {
    let ifname = ifname.to_string();
    let found = in_netns(netns, |netlink| async move {
        let Some(link) = netlink.link_by_name(&ifname).await? else {
            return Ok(None);
        };
        let neighbours = netlink.neighbours().await?;
        Ok(neighbours
            .into_iter()
            .find(|n| n.index == link.index && n.address == address)
            .map(|n| n.mac))
    });
    found.ok().flatten()
}

fn observe(netns: &File, from: &Endpoint, to: &Endpoint, probe: &Probe) -> Seen {
    let attempts = if probe.expect == Expect::Reachable {
        3
    } else {
        1
    };
    let replied = (0..attempts).any(|_| ping(netns, &from.ifname, to.address, None));
    let (reached, other_replied) = match (replied, probe.check_mac) {
        (false, _) => (false, false),
        (true, false) => (true, false),
        (true, true) => match neighbour(netns, &from.ifname, to.address) {
            Some(mac) if mac == to.mac => (true, false),
            Some(_) => (false, true),
            None => (true, false),
        },
    };
    let mtu_ok = (probe.expect == Expect::Reachable && reached).then(|| {
        let payload = from.payload_for(from.mtu.min(to.mtu));
        (0..2).any(|_| ping(netns, &from.ifname, to.address, Some(payload)))
    });
    Seen {
        reached,
        other_replied,
        mtu_ok,
    }
}

/// Run every probe, one thread per source interface.
pub fn run(endpoints: &[Endpoint], probes: &[Probe], netns: &[Option<File>]) -> Vec<ProbeResult> {
    let mut by_source: BTreeMap<usize, Vec<&Probe>> = BTreeMap::new();
    for probe in probes {
        by_source.entry(probe.from).or_default().push(probe);
    }
    let mut results: Vec<ProbeResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = by_source
            .into_iter()
            .map(|(source, list)| {
                scope.spawn(move || {
                    list.into_iter()
                        .map(|probe| {
                            let (from, to) = (&endpoints[probe.from], &endpoints[probe.to]);
                            let (ok, problem, seen) = match &netns[source] {
                                None => (
                                    false,
                                    Some("source container is not running".to_string()),
                                    Seen {
                                        reached: false,
                                        other_replied: false,
                                        mtu_ok: None,
                                    },
                                ),
                                Some(file) => {
                                    let seen = observe(file, from, to, probe);
                                    let (ok, problem) = judge(probe.expect, &seen);
                                    (ok, problem, seen)
                                }
                            };
                            ProbeResult {
                                from: from.label(),
                                to: to.label(),
                                address: to.address,
                                expect: probe.expect,
                                seen,
                                ok,
                                problem,
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    results.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    results
}

/// One TCP transfer per network, between a pair that pinged fine (across hosts if possible).
pub fn tcp_per_network(
    endpoints: &[Endpoint],
    probes: &[Probe],
    results: &[ProbeResult],
    netns: &[Option<File>],
) -> Vec<TcpResult> {
    // One per network and family: (network, IPv6?).
    let mut chosen: BTreeMap<(&str, bool), &Probe> = BTreeMap::new();
    for probe in probes.iter().filter(|p| p.expect == Expect::Reachable) {
        let (from, to) = (&endpoints[probe.from], &endpoints[probe.to]);
        let passed = results
            .iter()
            .any(|r| r.from == from.label() && r.to == to.label() && r.ok);
        if !passed {
            continue;
        }
        let key = (from.network.as_str(), from.address.is_ipv6());
        let better = match chosen.get(&key) {
            None => true,
            Some(current) => {
                endpoints[current.from].host == endpoints[current.to].host && from.host != to.host
            }
        };
        if better {
            chosen.insert(key, probe);
        }
    }
    chosen
        .into_iter()
        .enumerate()
        .map(|(i, ((network, ipv6), probe))| {
            let (from, to) = (&endpoints[probe.from], &endpoints[probe.to]);
            let outcome = match (&netns[probe.from], &netns[probe.to]) {
                (Some(a), Some(b)) => transfer(a, b, to.address, 15201 + i as u16),
                _ => Err("a container is not running".to_string()),
            };
            TcpResult {
                network: if ipv6 {
                    format!("{network} (IPv6)")
                } else {
                    network.to_string()
                },
                from: from.label(),
                to: to.label(),
                bytes: TCP_BYTES,
                ok: outcome.is_ok(),
                detail: match outcome {
                    Ok(elapsed) => format!(
                        "{} KiB in {:.0} ms",
                        TCP_BYTES / 1024,
                        elapsed.as_secs_f64() * 1e3
                    ),
                    Err(error) => error,
                },
            }
        })
        .collect()
}

/// Send TCP_BYTES from `client_ns` to a listener in `server_ns` and get the count back.
fn transfer(
    client_ns: &File,
    server_ns: &File,
    address: IpAddr,
    port: u16,
) -> Result<Duration, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let target = SocketAddr::from((address, port));
    std::thread::scope(|scope| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let server = scope.spawn(move || {
            netns::run(server_ns, move || -> Result<usize, String> {
                let listener =
                    TcpListener::bind(target).map_err(|e| format!("listen on {target}: {e}"))?;
                listener.set_nonblocking(true).map_err(|e| e.to_string())?;
                let _ = ready_tx.send(());
                let mut stream = loop {
                    match listener.accept() {
                        Ok((stream, _)) => break stream,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(e) => return Err(format!("no connection: {e}")),
                    }
                };
                stream.set_nonblocking(false).map_err(|e| e.to_string())?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                let mut received = 0usize;
                let mut buffer = vec![0u8; 65536];
                loop {
                    match stream.read(&mut buffer) {
                        Ok(0) => break,
                        Ok(n) => received += n,
                        Err(e) => return Err(format!("stalled after {received} bytes: {e}")),
                    }
                }
                stream
                    .write_all(&(received as u64).to_be_bytes())
                    .map_err(|e| e.to_string())?;
                Ok(received)
            })
            .unwrap_or_else(|e| Err(e.to_string()))
        });
        let _ = ready_rx.recv_timeout(Duration::from_secs(5));
        let client = netns::run(client_ns, move || -> Result<Duration, String> {
            let start = Instant::now();
            let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))
                .map_err(|e| format!("connect: {e}"))?;
            stream
                .set_write_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            stream
                .write_all(&vec![0x5a; TCP_BYTES])
                .map_err(|e| format!("send stalled: {e}"))?;
            stream
                .shutdown(std::net::Shutdown::Write)
                .map_err(|e| e.to_string())?;
            let mut count = [0u8; 8];
            stream
                .read_exact(&mut count)
                .map_err(|e| format!("no acknowledgement: {e}"))?;
            if u64::from_be_bytes(count) as usize != TCP_BYTES {
                return Err(format!(
                    "{} of {TCP_BYTES} bytes arrived",
                    u64::from_be_bytes(count)
                ));
            }
            Ok(start.elapsed())
        })
        .unwrap_or_else(|e| Err(e.to_string()));
        let server = server
            .join()
            .unwrap_or_else(|_| Err("server panicked".into()));
        match (client, server) {
            (Ok(elapsed), Ok(_)) => Ok(elapsed),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    })
}

/// The whole check: probes, then TCP when `tcp` (labs).
pub fn check(
    endpoints: &[Endpoint],
    probes: &[Probe],
    netns: &[Option<File>],
    tcp: bool,
) -> Report {
    let results = run(endpoints, probes, netns);
    let tcp = if tcp {
        tcp_per_network(endpoints, probes, &results, netns)
    } else {
        Vec::new()
    };
    Report {
        probes: results,
        tcp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::fresh_namespace;

    #[test]
    #[ignore = "needs root (network namespaces) + iproute2"]
    fn the_neighbour_table_is_read_inside_the_namespace_by_interface() {
        let ns = fresh_namespace();
        for args in [
            &["link", "add", "d0", "type", "veth", "peer", "name", "d1"][..],
            &["link", "set", "d0", "up"],
            &["link", "set", "d1", "up"],
            &[
                "neigh",
                "add",
                "192.0.2.9",
                "lladdr",
                "02:00:00:00:00:09",
                "dev",
                "d0",
                "nud",
                "permanent",
            ],
            &[
                "neigh",
                "add",
                "192.0.2.7",
                "dev",
                "d1",
                "nud",
                "incomplete",
            ],
        ] {
            let out = netns::output(&ns, "ip", args).unwrap();
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let nine = IpAddr::from([192, 0, 2, 9]);
        assert_eq!(
            neighbour(&ns, "d0", nine),
            Some("02:00:00:00:00:09".parse().unwrap())
        );
        // Only on the interface asked about, only resolved entries, and only in that namespace.
        assert_eq!(neighbour(&ns, "d1", nine), None);
        assert_eq!(neighbour(&ns, "d1", IpAddr::from([192, 0, 2, 7])), None);
        assert_eq!(neighbour(&ns, "nope", nine), None);
        let here = File::open("/proc/self/ns/net").unwrap();
        assert_eq!(neighbour(&here, "d0", nine), None);
    }
}
