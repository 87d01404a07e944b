//! End-to-end: `docker run --network NET` through the plugin, in a lab with a
//! real dockerd per lab host. Each dockerd runs in its host's network namespace
//! (Docker moves the veth the plugin names from its own namespace) and in a
//! private mount namespace whose /run/docker/plugins is the lab host's own
//! directory, where that host's `ovsmesh daemon --docker-plugin` serves it.
//! Proven with packets: pooled and declared addresses across hosts on a VLAN
//! and on the routed network, the first packet of a fresh container, refusals
//! as Docker prints them, restarts of the container, the daemon and dockerd; and
//! an endpoint veth left over by an interrupted `CreateEndpoint` removed by the
//! daemon (`daemon::leftovers`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ovsmesh::lab::{self, Lab};

const TOPOLOGY: &str = r#"
[mesh]
name = "pl"

[hosts.a]
underlay_address = "192.0.2.1/24"
[hosts.b]
underlay_address = "192.0.2.2/24"

[networks.red]
kind = "vlan"
vlan = 200
subnet = "10.31.0.0/24"
pools = { a = "10.31.0.64/27", b = "10.31.0.96/27" }

[networks.pods]
kind = "routed"
subnets = { a = "172.20.1.0/24", b = "172.20.2.0/24" }

[containers.bzr2]
host = "b"
network = "red"
address = "10.31.0.2"
netns = "bzr2"

[containers.web]
host = "a"
network = "red"
address = "10.31.0.5"
mtu = 1400
routes = [{ to = "198.51.100.0/24", via = "10.31.0.9" }]
"#;

const IMAGE: &str = "ovsmesh-plugin-lab:latest";

/// One lab host's dockerd and ovsmesh daemon.
struct Host {
    name: String,
    dir: PathBuf,
    dockerd: Option<Child>,
    daemon: Option<Child>,
}

struct PluginLab {
    lab: Lab,
    file: PathBuf,
    hosts: Vec<Host>,
}

fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Host {
    fn socket(&self) -> String {
        format!("unix://{}", self.dir.join("docker/docker.sock").display())
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["120", "docker", "-H", &self.socket()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker")
    }

    /// `docker ARGS` that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "host {}: docker {args:?}: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start_dockerd(&mut self, netns: &str) {
        let docker = self.dir.join("docker");
        let plugins = self.dir.join("plugins");
        std::fs::create_dir_all(&docker).unwrap();
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::create_dir_all("/run/docker/plugins").unwrap(); // the mount point
        let log = std::fs::File::create(docker.join("dockerd.log")).unwrap();
        // nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroups dockerd needs.
        let script = format!(
            "mount --bind {plugins} /run/docker/plugins && exec dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs -H {socket} --data-root={d}/data --exec-root={d}/exec --pidfile={d}/docker.pid",
            plugins = plugins.display(),
            socket = self.socket(),
            d = docker.display()
        );
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .args([
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd (docker.io)");
        self.dockerd = Some(child);
        wait_until("dockerd answers", Duration::from_secs(60), || {
            self.docker(&["version"]).status.success()
        });
    }

    fn start_daemon(&mut self, file: &Path, prefix: &str) {
        let log = std::fs::File::create(self.dir.join("daemon.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
            .arg("daemon")
            .arg(file)
            .args(["--lab", prefix, "--host", &self.name, "--docker-plugin"])
            .args(["--docker", &self.socket(), "--resync", "10s"])
            .env("OVSMESH_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let plugin = self.dir.join("plugins/ovsmesh.sock");
        wait_until("plugin socket", Duration::from_secs(30), || plugin.exists());
    }

    /// A fresh container on `network` pings `target` once: its first packet.
    fn first_packet(&self, network: &str, target: &str) -> String {
        let out = self.ok(&[
            "run",
            "--rm",
            "--network",
            network,
            IMAGE,
            "ping",
            "-c1",
            "-W2",
            target,
        ]);
        assert!(out.contains("1 packets received"), "{out}");
        out
    }

    /// `docker run -d --name NAME --network NETWORK [--ip IP] [--restart=always]`, sleeping.
    fn start(&self, name: &str, network: &str, extra: &[&str]) {
        let mut args = vec!["run", "-d", "--name", name, "--network", network];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sleep", "1000000"]);
        self.ok(&args);
    }

    /// What `docker run --rm --network red --ip IP IMAGE true` printed when refused.
    fn refused(&self, ip: &str) -> String {
        let out = self.docker(&["run", "--rm", "--network", "red", "--ip", ip, IMAGE, "true"]);
        assert!(!out.status.success(), "{ip} was not refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The mesh's Docker endpoint ports in this host's OVSDB.
    fn endpoint_ports(&self, netns: &str) -> String {
        let db = format!("unix:{}", self.dir.join("db.sock").display());
        run(
            "ip",
            &[
                "netns",
                "exec",
                netns,
                "ovs-vsctl",
                "--db",
                &db,
                "--bare",
                "--columns=name",
                "find",
                "port",
                "external_ids:ovsmesh-role=endpoint",
            ],
        )
    }
}

impl Drop for PluginLab {
    fn drop(&mut self) {
        if std::env::var_os("OVSMESH_KEEP_LAB").is_some() {
            eprintln!("keeping lab {}", self.lab.prefix);
            return;
        }
        for host in &mut self.hosts {
            // One at a time, each bounded: a parallel `docker rm -f` deadlocks dockerd 20.10.
            if host.dockerd.is_some() {
                let ids = host.docker(&["ps", "-aq"]);
                for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                    let _ = host.docker(&["rm", "-f", id]);
                }
            }
            stop(&mut host.daemon);
            stop(&mut host.dockerd);
        }
        let _ = runtime().block_on(lab::down(&self.lab));
        let _ = std::fs::remove_file(&self.file);
    }
}

fn up() -> PluginLab {
    let lab = Lab::new(&unique("p"));
    let file = std::env::temp_dir().join(format!("{}.toml", lab.prefix));
    std::fs::write(&file, TOPOLOGY).unwrap();
    let mut guard = PluginLab {
        hosts: ["a", "b"]
            .iter()
            .map(|h| Host {
                name: h.to_string(),
                dir: lab.host_dir(h),
                dockerd: None,
                daemon: None,
            })
            .collect(),
        lab,
        file,
    };
    // The lab is built without the Docker container `web` (no dockerd runs yet);
    // the daemons enforce the whole file.
    let without_web = TOPOLOGY.split("[containers.web]").next().unwrap();
    let report = runtime()
        .block_on(lab::up(&guard.lab, &common::topology(without_web), false))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.outcomes.values().all(|o| !o.failed()));
    // An image from busybox-static, imported into each dockerd.
    let rootfs = guard.lab.dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static");
    for applet in ["sh", "sleep", "ping", "ip", "cat", "awk", "true"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let tar = guard.lab.dir.join("rootfs.tar");
    run(
        "tar",
        &[
            "-C",
            rootfs.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    );
    let (prefix, file) = (guard.lab.prefix.clone(), guard.file.clone());
    for host in &mut guard.hosts {
        host.start_dockerd(&format!("{prefix}-{}", host.name));
        host.ok(&["import", tar.to_str().unwrap(), IMAGE]);
        host.start_daemon(&file, &prefix);
    }
    for host in &guard.hosts {
        wait_until(
            "Docker networks made by the daemon",
            Duration::from_secs(60),
            || {
                let names = host.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
                names.contains("red ovsmesh") && names.contains("pods ovsmesh")
            },
        );
    }
    guard
}

/// MAC and IPv4 address of a running container's eth0.
fn identity(host: &Host, container: &str) -> String {
    host.ok(&[
        "exec",
        container,
        "sh",
        "-c",
        "cat /sys/class/net/eth0/address; ip -4 -o addr show eth0 | awk '{print $4}'",
    ])
}

/// A veth as the plugin makes it for endpoint `endpoint` on `red`, without its port: what a
/// daemon killed in the middle of `CreateEndpoint` leaves. Its host end's name.
fn leftover_veth(netns: &str, endpoint: &str) -> String {
    let (host_end, container_end) = ovsmesh::topology::names::endpoint_ends("pl", endpoint);
    let mark = ovsmesh::marks::EndpointMark {
        network: "red".into(),
        endpoint: endpoint.into(),
        address: "10.31.0.77/24".parse().unwrap(),
        mac: "02:00:00:00:31:77".parse().unwrap(),
    };
    let alias = ovsmesh::marks::Policy::new("pl").endpoint_alias(&mark);
    let link = |args: &[&str]| run("ip", &[&["-n", netns, "link"], args].concat());
    link(&[
        "add",
        &host_end,
        "type",
        "veth",
        "peer",
        "name",
        &container_end,
    ]);
    link(&["set", &host_end, "alias", &alias, "up"]);
    host_end
}

#[test]
#[ignore = "needs root + OVS + Docker"]
fn docker_run_network_gets_its_port_before_the_process_starts() {
    let mut lab = up();
    let (a, b) = (&lab.hosts[0], &lab.hosts[1]);
    let netns_a = format!("{}-a", lab.lab.prefix);

    // A pooled address on b: the lowest of b's pool.
    b.start("r1", "red", &[]);
    assert_eq!(identity(b, "r1").lines().nth(1), Some("10.31.0.96/24"));

    // Fresh containers on a reach r1 on b with their first packet, five times over.
    let race = "ip -4 -o addr show eth0; ping -c1 -W2 10.31.0.96";
    for _ in 0..5 {
        let out = a.ok(&["run", "--rm", "--network", "red", IMAGE, "sh", "-c", race]);
        let first = out.contains("10.31.0.64/24") && out.contains("1 packets received");
        assert!(first, "{out}");
    }
    let left = a.endpoint_ports(&netns_a);
    assert_eq!(left.trim(), "", "--rm removed veth and port");

    // Refused addresses: Docker prints why.
    let said = a.refused("10.31.0.2");
    assert!(
        said.contains("10.31.0.2 belongs to container bzr2 on host b"),
        "{said}"
    );
    let said = a.refused("10.31.0.100");
    let why = "10.31.0.100 is in host b's pool 10.31.0.96/27 of network red";
    assert!(said.contains(why), "{said}");

    // A declared address: exactly the topology's entry (MAC, MTU, routes), and
    // bzr2 (a --net=none namespace on b) answers its first packet.
    let topology = topology(TOPOLOGY);
    let declared = &topology.containers["web"].interfaces[0];
    a.start("web", "red", &["--ip", "10.31.0.5"]);
    let web = identity(a, "web");
    assert_eq!(web, format!("{}\n10.31.0.5/24\n", declared.mac), "{web}");
    let inside = a.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "cat /sys/class/net/eth0/mtu; ip route",
    ]);
    let entry = inside.starts_with("1400\n") && inside.contains("198.51.100.0/24 via 10.31.0.9");
    assert!(entry, "{inside}");
    a.ok(&["exec", "web", "ping", "-c1", "-W2", "10.31.0.2"]);
    assert!(a
        .refused("10.31.0.5")
        .contains("10.31.0.5 is already in use on host a"));
    // status: web's declared interface is Docker's, its endpoint attached; converged.
    let status = Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
        .arg("status")
        .arg(&lab.file)
        .args([
            "--lab",
            &lab.lab.prefix,
            "--host",
            "a",
            "--docker",
            &a.socket(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    let web_line = text.lines().find(|l| l.contains("interface web/eth1"));
    assert!(
        web_line.is_some_and(|l| l.ends_with("docker endpoint")),
        "{text}"
    );
    let endpoint = text
        .lines()
        .find(|l| l.contains("endpoint  red 10.31.0.5/24"));
    assert!(endpoint.is_some_and(|l| l.contains("attached")), "{text}");

    // docker restart keeps address and MAC (pooled and declared).
    let r1 = identity(b, "r1");
    b.ok(&["restart", "-t", "1", "r1"]);
    assert_eq!(identity(b, "r1"), r1);
    a.ok(&["restart", "-t", "1", "web"]);
    assert_eq!(identity(a, "web"), web);

    // The routed network: a's subnet, its gateway, across hosts.
    a.start("p1", "pods", &["--restart=always"]);
    let p1 = a.ok(&[
        "exec",
        "p1",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip route",
    ]);
    let routed = p1.contains("172.20.1.2/24") && p1.contains("default via 172.20.1.1");
    assert!(routed, "{p1}");
    b.first_packet("pods", "172.20.1.2");

    // docker rm removes the veth and the port.
    let before = a.endpoint_ports(&netns_a);
    assert_eq!(before.split_whitespace().count(), 2, "{before}");
    a.ok(&["rm", "-f", "web"]);
    let after = a.endpoint_ports(&netns_a);
    assert_eq!(after.split_whitespace().count(), 1, "{after}");
    let links = run("ip", &["-n", &netns_a, "-o", "link"]);
    assert_eq!(links.matches("ovsmesh-ep:").count(), 1, "{links}");

    // The daemon restarts: nothing is lost meanwhile, and the next docker run works.
    let (prefix, file) = (lab.lab.prefix.clone(), lab.file.clone());
    stop(&mut lab.hosts[0].daemon);
    lab.hosts[1].first_packet("pods", "172.20.1.2");
    lab.hosts[0].start_daemon(&file, &prefix);
    // Removed by a's daemon at a periodic resync (every 10 s), found so at two 10 s apart.
    let leftover = leftover_veth(&netns_a, &format!("left{}", std::process::id()));
    let made = Instant::now();
    lab.hosts[1].first_packet("pods", "172.20.1.2");
    lab.hosts[0].first_packet("red", "10.31.0.96");

    // dockerd restarts: the --restart=always container comes back networked.
    stop(&mut lab.hosts[0].dockerd);
    lab.hosts[0].start_dockerd(&netns_a);
    let a = &lab.hosts[0];
    wait_until("p1 running again", Duration::from_secs(60), || {
        a.docker(&["exec", "p1", "true"]).status.success()
    });
    let out = a.ok(&["exec", "p1", "ping", "-c1", "-W2", "172.20.2.1"]);
    assert!(out.contains("1 packets received"), "{out}");
    assert_eq!(a.endpoint_ports(&netns_a).split_whitespace().count(), 1);

    // The leftover veth is gone (no port, never joined, nobody making it); the live endpoint
    // (p1's) stays.
    let a = &lab.hosts[0];
    wait_until("leftover veth removed", Duration::from_secs(90), || {
        !run("ip", &["-n", &netns_a, "-o", "link"]).contains(&leftover)
    });
    assert!(
        made.elapsed() >= Duration::from_secs(30),
        "removed before its grace period"
    );
    assert_eq!(a.endpoint_ports(&netns_a).split_whitespace().count(), 1);
    let links = run("ip", &["-n", &netns_a, "-o", "link"]);
    assert_eq!(links.matches("ovsmesh-ep:").count(), 1, "{links}");
}
