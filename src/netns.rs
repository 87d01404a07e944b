//! Entering network namespaces: the one place ovsmesh calls `setns`.
//!
//! A network namespace belongs to a thread, not a process, so ovsmesh never
//! moves a thread it shares: work inside a namespace runs on a dedicated OS
//! thread that enters it and ends with the work ([`run`], and [`block_on`] with
//! its own single-threaded runtime; [`run_each`] for many namespaces, a few
//! threads each visiting several in turn) — `setns` on a tokio worker would move
//! every task sharing that thread. A program runs inside one by entering it between
//! fork and exec ([`command`]), so neither `ip netns exec` nor a move of the
//! caller is needed.
//!
//! Named namespaces are `ip netns` bind mounts under /run/netns. The file there
//! exists before its bind mount does, so [`open`] counts a name as a running
//! namespace only once the file is on nsfs.

use std::fs::File;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::topology::ident::{under, NotAComponent};

/// Where named network namespaces live.
pub const NETNS_DIR: &str = "/run/netns";

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {name} not found ({source})")]
    NotFound {
        name: String,
        source: std::io::Error,
    },
    #[error("network namespace {name} is not mounted yet")]
    NotMounted { name: String },
    #[error(transparent)]
    BadName(#[from] NotAComponent),
    #[error("enter the network namespace: {0}")]
    Enter(#[source] std::io::Error),
    #[error("start a runtime for the namespace: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("the thread in the namespace panicked")]
    Panicked,
    #[error("{program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
}

/// The path of named namespace `name`; never outside [`NETNS_DIR`].
pub fn path(name: &str) -> Result<PathBuf, NetnsError> {
    Ok(under(Path::new(NETNS_DIR), name)?)
}

/// Whether an open file is a network namespace (on nsfs).
pub fn is_netns(file: &File) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    // SAFETY: fstatfs fills a plain struct for a valid descriptor.
    unsafe {
        let mut stat: libc::statfs = std::mem::zeroed();
        libc::fstatfs(file.as_raw_fd(), &mut stat) == 0 && stat.f_type as i64 == NSFS_MAGIC
    }
}

/// Open named namespace `name`; only a mounted one counts.
pub fn open(name: &str) -> Result<File, NetnsError> {
    open_at(&path(name)?, name)
}

fn open_at(path: &Path, name: &str) -> Result<File, NetnsError> {
    match File::open(path) {
        Ok(file) if is_netns(&file) => Ok(file),
        Ok(_) => Err(NetnsError::NotMounted {
            name: name.to_string(),
        }),
        Err(source) => Err(NetnsError::NotFound {
            name: name.to_string(),
            source,
        }),
    }
}

/// Run `work` inside `netns` on a dedicated OS thread that ends with it.
/// Threads `work` starts are born in the namespace too.
pub fn run<T, F>(netns: &File, work: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let fd = netns.as_raw_fd();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: setns only changes this (dedicated, short-lived) thread's
                // namespace; `netns` outlives the scope, so `fd` stays open.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(NetnsError::Enter(std::io::Error::last_os_error()));
                }
                Ok(work())
            })
            .join()
            .unwrap_or(Err(NetnsError::Panicked))
    })
}

/// Run `work` once per item, each inside the item's namespace, on at most
/// `threads` dedicated OS threads that take items in turn and end with the
/// work. `setup` runs once on each thread *before* it enters any namespace, so
/// what it opens (a runtime, sockets) belongs to the caller's namespace — a
/// socket keeps the namespace it was opened in, wherever the thread goes next.
/// Results come back in the order of `items`.
pub fn run_each<I, S, T, Setup, Work>(
    items: Vec<(&File, I)>,
    threads: usize,
    setup: Setup,
    work: Work,
) -> Vec<Result<T, NetnsError>>
where
    I: Send,
    T: Send,
    Setup: Fn() -> S + Sync,
    Work: Fn(&mut S, I) -> T + Sync,
{
    let count = items.len();
    if count == 0 {
        return Vec::new();
    }
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let done = std::sync::Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.clamp(1, count))
            .map(|_| {
                scope.spawn(|| {
                    let mut state = None;
                    loop {
                        let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                        let Some((position, (netns, item))) = next else {
                            break;
                        };
                        let state = state.get_or_insert_with(&setup);
                        // SAFETY: setns moves only this dedicated thread, which ends
                        // with the loop; `netns` is borrowed for the whole scope.
                        let result =
                            if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
                                Ok(work(state, item))
                            } else {
                                Err(NetnsError::Enter(std::io::Error::last_os_error()))
                            };
                        if let Ok(mut done) = done.lock() {
                            done.push((position, result));
                        }
                    }
                })
            })
            .collect();
        // Joined here, so a panic in `work` is an error for its item, not the caller's panic.
        for worker in workers {
            let _ = worker.join();
        }
    });
    let done = done.into_inner().unwrap_or_default();
    // A thread that panicked lost its item: report it, keep the order.
    let mut results: Vec<Option<Result<T, NetnsError>>> = (0..count).map(|_| None).collect();
    for (position, result) in done {
        results[position] = Some(result);
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(NetnsError::Panicked)))
        .collect()
}

/// On a thread [`run_each`] moved into `away`: run `work` back in `home` (a
/// namespace file the thread opened before it left), then enter `away` again.
/// For the few things only the home namespace's `/proc/sys/net` takes: the
/// kernel resolves those files in the namespace of the thread that opens them.
pub fn visit<T>(home: &File, away: &File, work: impl FnOnce() -> T) -> Result<T, NetnsError> {
    let enter = |netns: &File| {
        // SAFETY: as in `run_each`: only this dedicated thread moves, and both
        // files outlive the call.
        if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
            Ok(())
        } else {
            Err(NetnsError::Enter(std::io::Error::last_os_error()))
        }
    };
    enter(home)?;
    let out = work();
    enter(away)?;
    Ok(out)
}

/// [`run`] with a single-threaded tokio runtime of its own: the future `work`
/// makes is polled inside `netns` only.
pub fn block_on<T, F, Fut>(netns: &File, work: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = T>,
{
    run(netns, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(NetnsError::Runtime)?;
        Ok(runtime.block_on(work()))
    })?
}

/// A command that runs `program` inside `netns` (stdin from /dev/null).
pub fn command(netns: &File, program: &str) -> Command {
    let mut command = Command::new(program);
    let fd = netns.as_raw_fd();
    // SAFETY: only setns (async-signal-safe) runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.stdin(Stdio::null());
    command
}

/// Run `program args` inside `netns` to completion; its output, or why it did not start.
pub fn output(netns: &File, program: &str, args: &[&str]) -> Result<Output, NetnsError> {
    command(netns, program)
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            program: program.to_string(),
            source,
        })
}

/// A fresh, unnamed namespace for tests (alive while the file is open; nothing
/// under /run/netns). Needs root.
#[cfg(test)]
pub(crate) fn fresh_namespace() -> File {
    std::thread::spawn(|| {
        // SAFETY: unshare moves only this short-lived thread.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
        File::open("/proc/thread-self/ns/net").unwrap()
    })
    .join()
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The namespace of the calling thread, as the kernel names it.
    fn current() -> String {
        std::fs::read_link("/proc/thread-self/ns/net")
            .unwrap()
            .display()
            .to_string()
    }

    #[test]
    fn a_plain_file_is_not_a_namespace() {
        let file = File::open("/proc/self/status").unwrap();
        assert!(!is_netns(&file));
        let ns = File::open("/proc/self/ns/net").unwrap();
        assert!(is_netns(&ns));
    }

    #[test]
    fn a_missing_name_is_not_found() {
        let error = open("ovsmesh-unit-no-such-namespace").unwrap_err();
        assert!(matches!(error, NetnsError::NotFound { .. }), "{error}");
    }

    #[test]
    fn a_file_that_is_not_mounted_yet_does_not_count() {
        let path = std::env::temp_dir().join(format!("ovsmesh-unit-netns-{}", std::process::id()));
        std::fs::write(&path, "").unwrap();
        let opened = open_at(&path, "pending");
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            opened.unwrap_err().to_string(),
            "network namespace pending is not mounted yet"
        );
    }

    #[test]
    #[ignore = "needs root (network namespaces)"]
    fn run_enters_on_its_own_thread_and_leaves_the_caller_alone() {
        let before = current();
        let caller = std::thread::current().id();
        let ns = fresh_namespace();
        let target = std::fs::read_link(format!("/proc/self/fd/{}", ns.as_raw_fd()))
            .unwrap()
            .display()
            .to_string();
        assert_ne!(target, before);
        let (seen, thread, child) = run(&ns, || {
            let child = std::thread::spawn(current).join().unwrap();
            (current(), std::thread::current().id(), child)
        })
        .unwrap();
        assert_eq!(seen, target);
        assert_eq!(child, target, "threads started inside are born inside");
        assert_ne!(thread, caller);
        assert_eq!(current(), before);
    }

    #[test]
    #[ignore = "needs root (network namespaces)"]
    fn commands_run_inside() {
        let ns = fresh_namespace();
        let out = output(&ns, "cat", &["/proc/net/dev"]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // A fresh namespace has only its loopback.
        let devices: Vec<&str> = text
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .collect();
        assert_eq!(devices.iter().map(|d| d.trim()).collect::<Vec<_>>(), ["lo"]);
    }

    #[test]
    fn entering_something_else_fails_cleanly() {
        let file = File::open("/proc/self/status").unwrap();
        assert!(matches!(run(&file, || ()), Err(NetnsError::Enter(_))));
        assert!(matches!(
            block_on(&file, || async {}),
            Err(NetnsError::Enter(_))
        ));
    }

    #[test]
    #[ignore = "needs root (network namespaces)"]
    fn a_panic_inside_is_an_error() {
        let ns = File::open("/proc/self/ns/net").unwrap();
        assert!(matches!(
            run(&ns, || panic!("inside")),
            Err(NetnsError::Panicked)
        ));
    }

    #[test]
    #[ignore = "needs root (network namespaces)"]
    fn run_each_visits_every_namespace_on_at_most_the_threads_given_in_order() {
        let before = current();
        let spaces: Vec<File> = (0..5).map(|_| fresh_namespace()).collect();
        let targets: Vec<String> = spaces
            .iter()
            .map(|ns| {
                std::fs::read_link(format!("/proc/self/fd/{}", ns.as_raw_fd()))
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        let items = spaces.iter().zip(0..).collect();
        // Setup runs before the thread enters anything: in the caller's namespace.
        let results = run_each(items, 2, current, |home: &mut String, i: usize| {
            (i, current(), home.clone(), std::thread::current().id())
        });
        let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        let threads: std::collections::BTreeSet<String> = results
            .iter()
            .map(|(_, _, _, t)| format!("{t:?}"))
            .collect();
        assert!(threads.len() <= 2, "{threads:?}");
        for (i, (item, inside, home, _)) in results.into_iter().enumerate() {
            assert_eq!(item, i);
            assert_eq!(inside, targets[i]);
            assert_eq!(home, before);
        }
        assert_eq!(current(), before);
        assert!(run_each(Vec::<(&File, ())>::new(), 4, || (), |_, _| ()).is_empty());
    }

    #[test]
    #[ignore = "needs root (network namespaces)"]
    fn visit_goes_home_and_comes_back() {
        let home = File::open("/proc/thread-self/ns/net").unwrap();
        let before = current();
        let away = fresh_namespace();
        let target = std::fs::read_link(format!("/proc/self/fd/{}", away.as_raw_fd()))
            .unwrap()
            .display()
            .to_string();
        let results = run_each(
            vec![(&away, ())],
            1,
            || (),
            |_, ()| {
                let at_home = visit(&home, &away, current).unwrap();
                (at_home, current())
            },
        );
        let (at_home, after) = results.into_iter().next().unwrap().unwrap();
        assert_eq!(at_home, before);
        assert_eq!(after, target);
    }

    #[test]
    #[ignore = "needs root (network namespaces)"]
    fn run_each_reports_a_namespace_it_cannot_enter_and_goes_on() {
        let ns = File::open("/proc/self/ns/net").unwrap();
        let not_ns = File::open("/proc/self/status").unwrap();
        let results = run_each(vec![(&not_ns, 1), (&ns, 2)], 1, || (), |_, i| i * 10);
        assert!(matches!(results[0], Err(NetnsError::Enter(_))));
        assert_eq!(results[1].as_ref().unwrap(), &20);
    }

    #[test]
    #[ignore = "needs root (network namespaces)"]
    fn block_on_polls_inside_with_a_runtime() {
        let ns = File::open("/proc/self/ns/net").unwrap();
        let value = block_on(&ns, || async {
            tokio::task::yield_now().await;
            41 + 1
        })
        .unwrap();
        assert_eq!(value, 42);
    }

    #[test]
    #[ignore = "needs root (network namespaces)"]
    fn commands_run_and_a_missing_program_is_named() {
        let ns = File::open("/proc/self/ns/net").unwrap();
        let out = output(&ns, "true", &[]).unwrap();
        assert!(out.status.success());
        let error = output(&ns, "ovsmesh-unit-no-such-program", &[]).unwrap_err();
        assert!(error
            .to_string()
            .starts_with("ovsmesh-unit-no-such-program: "));
    }
}
