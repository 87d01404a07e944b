//! `ovsmesh fleet status`: every host's daemon at once — the first place an
//! operator sees a split fleet (hosts on different commits, one refusing, one
//! rolled back, one not converged).
//!
//! Each host's daemon is asked for its report (`GET /status` on its metrics
//! listener: the host's underlay address and `--port`, so the daemons must
//! listen there, e.g. `--metrics 0.0.0.0:9475`), all hosts in parallel, each
//! bounded. With `--lab`, each lab host's daemon is asked on 127.0.0.1 inside the
//! host's namespace. Exit 0 when every host answered, converged, on one commit;
//! 2 otherwise.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::load::load;
use super::{Format, EXIT_CHANGES, EXIT_FAILURE, EXIT_OK};
use crate::daemon::report::Report;
use crate::lab::Lab;
use crate::netns;
use crate::source::short;

/// One host's line.
#[derive(Debug, Serialize)]
struct Line {
    host: String,
    address: String,
    #[serde(flatten)]
    answer: Answer,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum Answer {
    Report(Box<Report>),
    Error(String),
}

pub(super) fn status(
    path: &Path,
    port: u16,
    timeout: Duration,
    lab: Option<String>,
    format: Format,
) -> i32 {
    let topology = match load(path, format) {
        Ok(topology) => topology,
        Err(code) => return code,
    };
    let lab = lab.map(|prefix| Lab::new(&prefix));
    let lines: Vec<Line> = std::thread::scope(|scope| {
        let asks: Vec<_> = topology
            .hosts
            .iter()
            .map(|(name, host)| {
                let address = match &lab {
                    Some(_) => SocketAddr::from(([127, 0, 0, 1], port)),
                    None => SocketAddr::from((host.tunnel_ip(topology.mesh.underlay), port)),
                };
                let lab = lab.as_ref();
                scope.spawn(move || {
                    let answer = match lab {
                        Some(lab) => netns::open(&lab.host_ns(name))
                            .map_err(|e| e.to_string())
                            .and_then(|ns| {
                                netns::run(&ns, || ask(address, timeout))
                                    .map_err(|e| e.to_string())?
                            }),
                        None => ask(address, timeout),
                    };
                    Line {
                        host: name.clone(),
                        address: address.to_string(),
                        answer: match answer {
                            Ok(report) => Answer::Report(Box::new(report)),
                            Err(error) => Answer::Error(error),
                        },
                    }
                })
            })
            .collect();
        asks.into_iter()
            .map(|ask| ask.join().expect("fleet status thread"))
            .collect()
    });
    let commits: std::collections::BTreeSet<Option<&str>> = lines
        .iter()
        .filter_map(|l| match &l.answer {
            Answer::Report(r) => Some(r.applied.as_ref().map(|a| a.commit.as_str())),
            Answer::Error(_) => None,
        })
        .collect();
    let healthy = lines.iter().all(|l| {
        matches!(&l.answer, Answer::Report(r) if r.converged && !r.probation && r.tunnels_up == r.tunnels)
    }) && commits.len() <= 1;
    match format {
        Format::Json => match serde_json::to_string_pretty(&lines) {
            Ok(text) => println!("{text}"),
            Err(_) => return EXIT_FAILURE,
        },
        Format::Text => print!("{}", render(&lines, commits.len())),
    }
    if healthy {
        EXIT_OK
    } else {
        EXIT_CHANGES
    }
}

fn render(lines: &[Line], commits: usize) -> String {
    let mut out = String::new();
    for line in lines {
        let _ = match &line.answer {
            Answer::Error(error) => writeln!(
                out,
                "{:<12} no answer from {}: {error}",
                line.host, line.address
            ),
            Answer::Report(r) => {
                let commit = r.applied.as_ref().map_or("-", |a| short(&a.commit));
                let state = match (r.probation, r.converged) {
                    (true, _) => "on probation",
                    (false, true) => "converged",
                    (false, false) => "not converged",
                };
                let mut extra = String::new();
                if let Some(bad) = r.bad.first() {
                    let verdict = serde_json::to_value(bad.verdict).unwrap_or_default();
                    let _ = write!(
                        extra,
                        ", {} {}",
                        verdict.as_str().unwrap_or_default(),
                        short(&bad.commit)
                    );
                }
                if let Some(error) = &r.fetch_error {
                    let _ = write!(extra, ", fetch failing: {error}");
                }
                writeln!(
                    out,
                    "{:<12} commit {commit:<12} {state}, tunnels {}/{} up, {} warning(s){extra}",
                    line.host,
                    r.tunnels_up,
                    r.tunnels,
                    r.warnings.len()
                )
            }
        };
    }
    if commits > 1 {
        let _ = writeln!(out, "split: the hosts run {commits} different commits");
    }
    out
}

/// `GET /status` of one daemon, bounded by `timeout` in every step.
fn ask(address: SocketAddr, timeout: Duration) -> Result<Report, String> {
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /status HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .take(1 << 20)
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    // The status line of HTTP/1.0 and 1.1 alike: a daemon answers a 1.0 request in 1.0.
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(status_line.to_string());
    }
    serde_json::from_str(body).map_err(|e| format!("not a daemon report: {e}"))
}
