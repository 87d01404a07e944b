//! Docker for the lab: an engine (the one at `DOCKER_HOST`, or a private one
//! the lab starts), a busybox image built with `docker import` (no registry is
//! needed), and the topology's Docker containers run `--net=none`, labelled with
//! the lab's prefix so `lab down` finds them.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{kill_pidfile, Lab, LabError};
use crate::topology::{Runtime, Topology};

pub const IMAGE: &str = "ovsmesh-lab-busybox:latest";
const LABEL: &str = "ovsmesh-lab";

fn docker(socket: &str, args: &[&str]) -> Result<String, LabError> {
    let out = Command::new("docker")
        .arg("-H")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Missing {
            program: "docker".into(),
            package: "docker.io",
            source,
        })?;
    LabError::check(format!("docker {}", args.join(" ")), &out)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The engine to use: `DOCKER_HOST`, else a private dockerd under the lab's dir.
pub fn ensure_engine(lab: &Lab) -> Result<String, LabError> {
    let socket = match std::env::var("DOCKER_HOST") {
        Ok(host) => host,
        Err(_) => start_private_engine(lab)?,
    };
    let file = lab.dir.join("docker-socket");
    std::fs::write(&file, &socket).map_err(LabError::io(format!("write {}", file.display())))?;
    if docker(&socket, &["image", "inspect", IMAGE]).is_err() {
        build_image(lab, &socket)?;
    }
    Ok(socket)
}

fn start_private_engine(lab: &Lab) -> Result<String, LabError> {
    let dir = lab.dir.join("docker");
    std::fs::create_dir_all(&dir).map_err(LabError::io(format!("create {}", dir.display())))?;
    let socket = format!("unix://{}", dir.join("docker.sock").display());
    let pidfile = dir.join("docker.pid");
    let running = std::fs::read_to_string(&pidfile)
        .ok()
        .is_some_and(|pid| Path::new(&format!("/proc/{}", pid.trim())).exists());
    if !running {
        let log_path = dir.join("dockerd.log");
        let log = std::fs::File::create(&log_path)
            .map_err(LabError::io(format!("create {}", log_path.display())))?;
        Command::new("dockerd")
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
                "-H",
                &socket,
            ])
            .arg(format!("--data-root={}", dir.join("data").display()))
            .arg(format!("--exec-root={}", dir.join("exec").display()))
            .arg(format!("--pidfile={}", pidfile.display()))
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(LabError::io(format!("open {}", log_path.display())))?,
            )
            .stderr(log)
            .spawn()
            .map_err(|source| LabError::Missing {
                program: "dockerd".into(),
                package: "docker.io",
                source,
            })?;
    }
    let start = Instant::now();
    while docker(&socket, &["version"]).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            return Err(LabError::DockerdTimeout {
                log: dir.join("dockerd.log"),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(socket)
}

/// An image from busybox-static: sh, sleep, ping, ip, nc and friends.
fn build_image(lab: &Lab, socket: &str) -> Result<(), LabError> {
    let rootfs = lab.dir.join("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).map_err(LabError::io(format!("create {}", bin.display())))?;
    std::fs::copy("/bin/busybox", bin.join("busybox")).map_err(|source| LabError::Missing {
        program: "/bin/busybox".into(),
        package: "busybox-static",
        source,
    })?;
    for applet in ["sh", "sleep", "ping", "ip", "cat", "nc", "ls"] {
        let link = bin.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link)
                .map_err(LabError::io(format!("link {}", link.display())))?;
        }
    }
    let tar = lab.dir.join("rootfs.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .map_err(LabError::spawn("tar"))?;
    LabError::check("tar of the busybox rootfs", &out)?;
    docker(socket, &["import", &tar.display().to_string(), IMAGE])?;
    Ok(())
}

/// Run every Docker container of the twin that is not there yet.
pub fn run_containers(lab: &Lab, socket: &str, twin: &Topology) -> Result<(), LabError> {
    for container in twin.containers.values() {
        if let Runtime::Docker(name) = &container.runtime {
            run_container(lab, socket, name)?;
        }
    }
    Ok(())
}

/// Start container `name` (created `--net=none` and labelled with the lab if new).
pub fn run_container(lab: &Lab, socket: &str, name: &str) -> Result<(), LabError> {
    if docker(socket, &["inspect", name]).is_ok() {
        docker(socket, &["start", name])?;
        return Ok(());
    }
    let label = format!("{LABEL}={}", lab.prefix);
    docker(
        socket,
        &[
            "run",
            "-d",
            "--net=none",
            "--name",
            name,
            "--label",
            &label,
            IMAGE,
            "/bin/sleep",
            "1000000000",
        ],
    )?;
    Ok(())
}

/// Remove the lab's containers and stop its private engine.
pub fn remove_all(lab: &Lab) -> Vec<String> {
    let mut removed = Vec::new();
    if let Some(socket) = lab.docker_socket() {
        let filter = format!("label={LABEL}={}", lab.prefix);
        if let Ok(ids) = docker(&socket, &["ps", "-aq", "--filter", &filter]) {
            for id in ids.split_whitespace() {
                if docker(&socket, &["rm", "-f", id]).is_ok() {
                    removed.push(format!("docker container {id}"));
                }
            }
        }
    }
    let dir = lab.dir.join("docker");
    if let Some(pid) = kill_pidfile(&dir.join("docker.pid"), "dockerd") {
        removed.push(format!("dockerd (pid {pid})"));
        let _ = Command::new("umount")
            .arg("-R")
            .arg(dir.join("exec"))
            .output();
    }
    removed
}

pub fn list(lab: &Lab) -> Vec<String> {
    let Some(socket) = lab.docker_socket() else {
        return Vec::new();
    };
    let filter = format!("label={LABEL}={}", lab.prefix);
    docker(
        &socket,
        &[
            "ps",
            "-a",
            "--filter",
            &filter,
            "--format",
            "{{.Names}} {{.Status}}",
        ],
    )
    .map(|out| {
        out.lines()
            .map(|l| format!("docker container {l}"))
            .collect()
    })
    .unwrap_or_default()
}
