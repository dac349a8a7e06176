//! NamespaceRunner and destroy, run for real by `cargo xtask test-root`.

#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use ns_container::{destroy, Error, NamespaceRunner, NsCommand};
use ns_core::{getns, Namespace, NsId, NsType, ThreadRule};
use support::*;

fn ns_of(pid: libc::pid_t, t: NsType) -> Namespace {
    Namespace::of_pid(pid, t).unwrap()
}

/// Every task's namespaces except one thread's, as (tid, type, link).
fn other_tasks_links(except: libc::pid_t) -> Vec<(i32, String, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let tid: i32 = task.file_name().to_str().unwrap().parse().unwrap();
        if tid == except {
            continue;
        }
        for ns in ["net", "uts", "ipc", "mnt", "cgroup", "pid_for_children"] {
            if let Ok(link) = std::fs::read_link(task.path().join("ns").join(ns)) {
                out.push((tid, ns.to_owned(), link.to_string_lossy().into_owned()));
            }
        }
    }
    out
}

fn tid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn runner_enters_net_uts_and_mount_namespaces_and_skips_repeated_setns() {
    require_root();
    let helper = Helper::spawn(
        NsType::NET | NsType::UTS | NsType::MNT,
        Some("runner-target"),
    );
    let runner = NamespaceRunner::new().unwrap();
    let want_net = helper.id(NsType::NET);
    let net = ns_of(helper.pid, NsType::NET);
    let got: NsId = runner
        .run(&net, || my_id(NsType::NET))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(got, want_net);
    let after_first = runner.switches();
    // Same namespace again: no setns.
    let (got, links) = runner
        .run(&net, || (my_id(NsType::NET), interfaces()))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(got, want_net);
    assert_eq!(links, ["lo"]);
    assert_eq!(
        runner.switches(),
        after_first,
        "a repeated namespace must not setns again"
    );
    // A uts job runs in the original net namespace again, in the target's uts.
    let uts = ns_of(helper.pid, NsType::UTS);
    let (host, net_now) = runner
        .run(&uts, || (hostname(), my_id(NsType::NET)))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(host, "runner-target");
    assert_eq!(
        net_now,
        my_id(NsType::NET),
        "the net namespace must be the original again"
    );
    // Mount namespaces work too: the thread has its own fs state.
    let mnt = ns_of(helper.pid, NsType::MNT);
    let got = runner
        .run(&mnt, || my_id(NsType::MNT))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(got, helper.id(NsType::MNT));
    // By path and type.
    let got = runner
        .run_path(format!("/proc/{}/ns/net", helper.pid), NsType::NET, || {
            my_id(NsType::NET)
        })
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(got, want_net);
    assert_eq!(runner.retired(), 0);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn runner_refuses_user_and_time_namespaces_with_the_reason() {
    require_root();
    let helper = Helper::spawn(NsType::USER | NsType::TIME, None);
    let runner = NamespaceRunner::new().unwrap();
    for (t, want) in [(NsType::USER, "user"), (NsType::TIME, "time")] {
        let err = runner
            .run(&ns_of(helper.pid, t), || ())
            .unwrap()
            .wait()
            .unwrap_err();
        match &err {
            Error::Core(ns_core::Error::ThreadRule { rule, .. }) => match (t, rule) {
                (NsType::USER, ThreadRule::UserNeedsSingleThread { .. }) => {}
                (NsType::TIME, ThreadRule::TimeNeedsSingleThread { .. }) => {}
                _ => panic!("{err:?}"),
            },
            _ => panic!("{err:?}"),
        }
        assert!(err.to_string().contains(want), "{err}");
    }
    // Still working.
    assert_eq!(
        runner
            .run(&Namespace::current(NsType::NET).unwrap(), || 7)
            .unwrap()
            .wait()
            .unwrap(),
        7
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_panic_becomes_an_error_and_the_runner_keeps_working() {
    require_root();
    let helper = Helper::spawn(NsType::NET, None);
    let runner = NamespaceRunner::new().unwrap();
    let net = ns_of(helper.pid, NsType::NET);
    let err = runner
        .run(&net, || -> u32 { panic!("boom in a namespace") })
        .unwrap()
        .wait()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Panicked { message, .. } if message == "boom in a namespace"),
        "{err:?}"
    );
    assert_eq!(
        runner
            .run(&net, || my_id(NsType::NET))
            .unwrap()
            .wait()
            .unwrap(),
        helper.id(NsType::NET)
    );
    assert_eq!(runner.retired(), 0);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn concurrent_callers_each_get_their_namespace_and_other_threads_never_move() {
    require_root();
    let helpers: Vec<Helper> = (0..4)
        .map(|_| Helper::spawn(NsType::NET | NsType::UTS, None))
        .collect();
    let jobs: Vec<(libc::pid_t, NsType, NsId)> = helpers
        .iter()
        .flat_map(|h| [NsType::NET, NsType::UTS].map(|t| (h.pid, t, h.id(t))))
        .collect();
    // In a forked child, so that no other test's threads are in the picture.
    in_child(move || {
        let runner = Arc::new(NamespaceRunner::new().unwrap());
        let runner_tid = runner
            .run(&Namespace::current(NsType::NET).unwrap(), tid)
            .unwrap()
            .wait()
            .unwrap();
        let before = other_tasks_links(runner_tid);
        let jobs: Arc<Vec<(Namespace, NsId)>> =
            Arc::new(jobs.iter().map(|(p, t, id)| (ns_of(*p, *t), *id)).collect());
        let callers: Vec<_> = (0..8)
            .map(|i| {
                let runner = runner.clone();
                let jobs = jobs.clone();
                std::thread::spawn(move || {
                    for round in 0..25 {
                        let (ns, want) = &jobs[(i + round) % jobs.len()];
                        let t = ns.ns_type();
                        let got = runner.run(ns, move || my_id(t)).unwrap().wait().unwrap();
                        assert_eq!(got, *want);
                    }
                    // Meanwhile, this caller thread never moved.
                    other_tasks_links(runner_tid)
                })
            })
            .collect();
        for c in callers {
            let seen = c.join().map_err(|_| "a caller failed".to_owned())?;
            for (_, ns, link) in &seen {
                let mine = std::fs::read_link(format!("/proc/thread-self/ns/{ns}")).unwrap();
                if *link != mine.to_string_lossy() {
                    return Err(format!("a thread is in another {ns} namespace: {link}"));
                }
            }
        }
        // Every thread other than the runner's, before and after, is where it started.
        let after = other_tasks_links(runner_tid);
        for entry in after
            .iter()
            .filter(|(t, _, _)| before.iter().any(|(b, _, _)| b == t))
        {
            if !before.contains(entry) {
                return Err(format!("{entry:?} changed"));
            }
        }
        for (_, ns, link) in &after {
            let mine = std::fs::read_link(format!("/proc/thread-self/ns/{ns}")).unwrap();
            if *link != mine.to_string_lossy() {
                return Err(format!("a thread is in another {ns} namespace: {link}"));
            }
        }
        Ok(())
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_thread_left_in_an_unknown_state_is_retired_and_replaced() {
    require_root();
    let a = Helper::spawn(NsType::NET, None);
    let b = Helper::spawn(NsType::NET, None);
    let runner = NamespaceRunner::new().unwrap();
    let net_a = ns_of(a.pid, NsType::NET);
    let net_b = ns_of(b.pid, NsType::NET);
    let b_fd = net_b.try_clone().unwrap();
    // The closure moves the thread to b's net namespace and gives up the privilege to move
    // back: the runner cannot restore it.
    let first = runner
        .run(&net_a, move || {
            b_fd.enter().unwrap();
            caps::drop(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_ADMIN,
            )
            .unwrap();
            tid()
        })
        .unwrap()
        .wait()
        .unwrap();
    let (second, net) = runner
        .run(&net_a, || (tid(), my_id(NsType::NET)))
        .unwrap()
        .wait()
        .unwrap();
    assert_ne!(first, second, "the old thread must not be reused");
    assert_eq!(net, a.id(NsType::NET));
    assert_eq!(runner.retired(), 1);
    // The retired thread is gone (it exits right after handing over).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/self/task/{first}")).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the retired thread is still there"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A minimal executor: polls a future on this thread, parking until woken.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn pending_results_are_futures_without_a_runtime() {
    require_root();
    let helper = Helper::spawn(NsType::UTS, Some("as-a-future"));
    let runner = NamespaceRunner::new().unwrap();
    let pending = runner
        .run(&ns_of(helper.pid, NsType::UTS), || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            hostname()
        })
        .unwrap();
    assert_eq!(block_on(pending).unwrap(), "as-a-future");
    // Dropping the runner finishes queued work first, then joins the thread.
    let slow = runner.run(&ns_of(helper.pid, NsType::UTS), || 1).unwrap();
    drop(runner);
    assert_eq!(slow.wait().unwrap(), 1);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn destroy_kills_every_process_of_a_pid_namespace_including_grandchildren() {
    require_root();
    let mut container = NsCommand::new("sh")
        .args([
            "-c",
            "sleep 1000 & (sleep 1000 & sleep 1000 & wait) & sleep 1000",
        ])
        .unshare(NsType::PID)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pidns = Namespace::of_pid(container.pid(), NsType::PID).unwrap();
    let target = pidns.id().unwrap();
    let members = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
            .filter(|p| getns(*p, NsType::PID).ok().flatten() == Some(target))
            .count()
    };
    // sh, sleep, subshell, 2 sleeps in it, sleep: 6 processes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while members() < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "container did not start: {}",
            members()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Pin them all, to check afterwards that every one of them has exited.
    let pinned: Vec<(libc::pid_t, std::os::fd::OwnedFd)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|p| getns(*p, NsType::PID).ok().flatten() == Some(target))
        .filter_map(|p| Some((p, ns_sys::pidfd_open(p, 0).ok()?)))
        .collect();
    assert!(pinned.len() >= 6, "{} members", pinned.len());
    // How many destroy itself signals depends on how fast the kernel kills the rest once
    // the init is dead; at least the init.
    let killed = destroy(&pidns).unwrap();
    assert!(killed >= 1, "killed {killed}");
    assert_eq!(members(), 0);
    for (pid, pidfd) in &pinned {
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(pidfd),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polling one live pollfd without waiting.
        assert_eq!(
            unsafe { libc::poll(&mut pfd, 1, 0) },
            1,
            "pid {pid} is still running"
        );
    }
    // The container's init was our child: destroy reaped it, and its handle still knows how
    // it ended.
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&container.wait().unwrap()),
        Some(libc::SIGKILL)
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn destroy_refuses_its_own_the_initial_and_non_pid_namespaces() {
    require_root();
    let own = Namespace::current(NsType::PID).unwrap();
    let err = destroy(&own).unwrap_err();
    assert!(err.to_string().contains("own pid namespace"), "{err}");
    let net = Namespace::current(NsType::NET).unwrap();
    assert!(matches!(destroy(&net), Err(Error::Invalid { .. })));
    // The initial pid namespace, seen from inside a child pid namespace.
    in_child(|| {
        let initial = Namespace::current(NsType::PID).map_err(|e| e.to_string())?;
        // SAFETY: a namespace flag only.
        unsafe { ns_sys::unshare(ns_sys::CLONE_NEWPID) }.map_err(|e| e.to_string())?;
        // SAFETY: forking from a single-threaded child.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = matches!(destroy(&initial), Err(Error::Invalid { ref reason, .. }) if reason.contains("initial"));
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let status = wait(pid);
        (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0).then_some(()).ok_or("not refused".into())
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_pool_runs_closures_beside_a_slow_one_each_in_its_namespace() {
    require_root();
    let a = Helper::spawn(NsType::NET, None);
    let b = Helper::spawn(NsType::UTS, Some("pool-b"));
    let pool = NamespaceRunner::with_threads(2).unwrap();
    let net = ns_of(a.pid, NsType::NET);
    let uts = ns_of(b.pid, NsType::UTS);
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    // A closure that blocks until released, holding one worker.
    let slow = pool
        .run(&net, move || {
            release_rx.recv().unwrap();
            my_id(NsType::NET)
        })
        .unwrap();
    // Others still run, each in its own namespace, on the other worker.
    for _ in 0..20 {
        let name = pool.run(&uts, hostname).unwrap().wait().unwrap();
        assert_eq!(name, "pool-b");
        let home = pool
            .run(&uts, || my_id(NsType::NET))
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(
            home,
            my_id(NsType::NET),
            "a worker left in another net namespace"
        );
    }
    assert!(!slow.is_ready());
    release_tx.send(()).unwrap();
    assert_eq!(slow.wait().unwrap(), a.id(NsType::NET));
    assert_eq!(pool.retired(), 0);
}
