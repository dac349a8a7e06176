//! The comparison table: `cargo xtask bench` (as root).
//!
//! Every figure is a median taken round-robin with the others of its group in the same run
//! (one sample of each measure, then the next round), so that drift of this noisy machine
//! hits all of them alike. The anchors are measured in the same run: std's `Command`,
//! util-linux `nsenter` into targets made with util-linux `unshare`, a std `mpsc` round
//! trip, `stat`, and, in a group of their own (a fork write-protects the caller's memory for
//! copy-on-write, which would charge the next measure for faults), `fork` + `waitpid` beside
//! a `CLONE_VM|CLONE_VFORK` task, whose difference is what copying the caller costs. The
//! caller holds 16 MiB of touched memory, then 2 GiB. The run ends with one line per goal,
//! then a spawn into a user namespace against the root path it builds on, beside what a copy
//! of the caller would cost (docs/guide.md, section 6).

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ns_container::{Mount, NamespaceRunner, NsCommand};

mod floor;
use floor::Floor;
use ns_core::{getns, Namespace, NsType, Target};

/// The six namespaces of a container that are entered besides the user namespace.
const SIX: NsType = NsType::NET
    .union(NsType::UTS)
    .union(NsType::IPC)
    .union(NsType::PID)
    .union(NsType::MNT)
    .union(NsType::CGROUP);

struct Measure<'a> {
    name: &'static str,
    f: Box<dyn FnMut() + 'a>,
    samples: Vec<Duration>,
}

impl<'a> Measure<'a> {
    fn new(name: &'static str, f: impl FnMut() + 'a) -> Measure<'a> {
        Measure {
            name,
            f: Box::new(f),
            samples: Vec::new(),
        }
    }

    fn median(&self) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        s[s.len() / 2]
    }
}

/// Runs `rounds` rounds of one sample of each measure (after a warm-up round) and prints
/// the medians, each divided by `per` operations; returns them in order.
fn round_robin(title: &str, rounds: usize, per: u32, measures: &mut [Measure<'_>]) -> Vec<f64> {
    println!("{title} (medians of {rounds} round-robin rounds)");
    for m in measures.iter_mut() {
        (m.f)();
    }
    for _ in 0..rounds {
        for m in measures.iter_mut() {
            let start = Instant::now();
            (m.f)();
            m.samples.push(start.elapsed());
        }
    }
    measures
        .iter()
        .map(|m| {
            let us = m.median().as_secs_f64() * 1e6 / f64::from(per);
            println!("  {:<58} {:>10.2} µs", m.name, us);
            us
        })
        .collect()
}

/// A util-linux `unshare --fork` container running `sleep`; returns (the unshare process,
/// the pid of the sleep inside). The caller kills and waits for the process.
#[allow(clippy::zombie_processes)]
fn util_linux_container(user: bool) -> (std::process::Child, libc::pid_t) {
    let mut args = vec![
        "--fork",
        "--kill-child",
        "--pid",
        "--mount",
        "--net",
        "--uts",
        "--ipc",
        "--cgroup",
    ];
    if user {
        args.extend(["--user", "--map-root-user"]);
    }
    let parent = Command::new("unshare")
        .args(args)
        .args(["sleep", "100000"])
        .spawn()
        .expect("util-linux unshare");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", parent.id()))
            .unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            let pid: libc::pid_t = pid.parse().unwrap();
            if std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == "sleep")
                .unwrap_or(false)
            {
                return (parent, pid);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the unshare container did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn true_ok(c: &mut Command) {
    assert!(c.status().unwrap().success());
}

fn ns_true(target: &Target, types: NsType) {
    let mut c = NsCommand::new("/bin/true");
    c.enter(target, types);
    assert!(c.status().unwrap().success());
}

fn fork_wait() {
    // SAFETY: the child exits at once.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: leaving the forked child.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
}

/// A task that shares the caller's memory (`clone3(CLONE_VM|CLONE_VFORK)`, like
/// `posix_spawn`) and exits at once: `fork_wait` minus this is what copying the caller costs.
fn vfork_wait() {
    extern "C" fn exit_at_once(_: *mut libc::c_void) -> libc::c_int {
        0
    }
    thread_local! {
        static STACK: std::cell::RefCell<Vec<u128>> = std::cell::RefCell::new(vec![0; 4096]);
    }
    STACK.with_borrow_mut(|stack| {
        let mut args = ns_sys::clone_args {
            flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64,
            exit_signal: libc::SIGCHLD as u64,
            stack: stack.as_mut_ptr() as u64,
            stack_size: (stack.len() * std::mem::size_of::<u128>()) as u64,
            ..Default::default()
        };
        // SAFETY: a 64 KiB, 16-byte aligned stack that outlives the task (CLONE_VFORK returns
        // once it has exited); the entry touches nothing.
        let child =
            unsafe { ns_sys::clone3_on_stack(&mut args, exit_at_once, std::ptr::null_mut()) }
                .unwrap();
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
    });
}

/// Memory the caller holds, every page touched.
fn resident(bytes: usize) -> Vec<u8> {
    let mut v = vec![0u8; bytes];
    for page in v.chunks_mut(4096) {
        page[0] = 1;
    }
    v
}

struct Spawns {
    std: f64,
    root: f64,
    rootless: f64,
    nsenter_root: f64,
    nsenter_rootless: f64,
    fork: f64,
    vfork: f64,
    floor_bare: f64,
    floor_sealed: f64,
}

impl Spawns {
    /// What making a copy of the caller costs over a task that shares its memory.
    fn copy(&self) -> f64 {
        (self.fork - self.vfork).max(0.0)
    }
}

fn spawn_table(size: &str, rounds: usize, root: &Target, rootless: &Target) -> Spawns {
    let (root_pid, rootless_pid) = (root.pid().to_string(), rootless.pid().to_string());
    let mut nsenter = Command::new("nsenter");
    nsenter.args([
        "-t",
        &root_pid,
        "-n",
        "-u",
        "-i",
        "-p",
        "-m",
        "-C",
        "/bin/true",
    ]);
    let mut nsenter_u = Command::new("nsenter");
    nsenter_u.args([
        "-t",
        &rootless_pid,
        "-U",
        "-n",
        "-u",
        "-i",
        "-p",
        "-m",
        "-C",
        "/bin/true",
    ]);
    let mut std_true = Command::new("/bin/true");
    let bare = Floor::new(root.pid(), SIX, false, false);
    let sealed = Floor::new(root.pid(), SIX, false, true);
    let mut measures = vec![
        Measure::new("std Command::spawn + wait, /bin/true", || {
            true_ok(&mut std_true)
        }),
        Measure::new("NsCommand entering a root container's 6 namespaces", || {
            ns_true(root, SIX)
        }),
        Measure::new("NsCommand entering a rootless container's user + 6", || {
            ns_true(rootless, SIX | NsType::USER)
        }),
        Measure::new("util-linux nsenter -t PID -n -u -i -p -m -C", || {
            true_ok(&mut nsenter)
        }),
        Measure::new("util-linux nsenter -t PID -U -n -u -i -p -m -C", || {
            true_ok(&mut nsenter_u)
        }),
        Measure::new("raw floor, bare: vfork, setns x6, vfork + exec", || {
            bare.run()
        }),
        Measure::new(
            "raw floor, sealed: vfork, setns x6, exec image, fork + exec",
            || sealed.run(),
        ),
    ];
    let v = round_robin(
        &format!("spawn + wait, caller holding {size}"),
        rounds,
        1,
        &mut measures,
    );
    drop(measures);
    // In a group of their own: a fork write-protects every page of the caller for
    // copy-on-write, and whichever measure came next in a shared group paid the faults of the
    // pages it writes (the more it writes, the more it paid).
    let mut copying = vec![
        Measure::new("fork + _exit + waitpid (reference)", fork_wait),
        Measure::new("clone3(CLONE_VM|CLONE_VFORK) + _exit + waitpid", vfork_wait),
    ];
    let c = round_robin(
        &format!("copying the caller, holding {size}"),
        rounds,
        1,
        &mut copying,
    );
    Spawns {
        std: v[0],
        root: v[1],
        rootless: v[2],
        nsenter_root: v[3],
        nsenter_rootless: v[4],
        fork: c[0],
        vfork: c[1],
        floor_bare: v[5],
        floor_sealed: v[6],
    }
}

/// An ordinary uid (1000, no capability) entering its own rootless container (user and the
/// six), against std's `Command` and util-linux `nsenter -U` in the same process: run in a
/// forked copy of the bench that drops to that uid, with 16 MiB and then 2 GiB resident; the
/// figures come back on a pipe.
fn unprivileged_entry() {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the forked copy runs bench code in a single thread and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: id changes of this single-threaded process.
        let dropped = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(1000, 1000, 1000) == 0
                && libc::setresuid(1000, 1000, 1000) == 0
                // Dumpable again, as an ordinary program started by that uid is (the id
                // change cleared it), so that its own /proc files are its own.
                && libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) == 0
        };
        let measured = std::panic::catch_unwind(|| {
            if !dropped {
                return String::new();
            }
            let own = NsType::USER | SIX;
            let mut container = NsCommand::new("sleep");
            let mut container = container
                .arg("600")
                .unshare(own)
                .uid_map(0, 1000, 1)
                .gid_map(0, 1000, 1)
                .setgroups_deny(true)
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let target = Target::pin(container.pid(), own).unwrap();
            let mut std_true = Command::new("/bin/true");
            let bare = Floor::new(container.pid(), own, true, false);
            let sealed = Floor::new(container.pid(), own, true, true);
            let pid = container.pid().to_string();
            let mut nsenter_u = Command::new("nsenter");
            nsenter_u.args([
                "-t",
                &pid,
                "-U",
                "--preserve-credentials",
                "-n",
                "-u",
                "-i",
                "-p",
                "-m",
                "-C",
                "/bin/true",
            ]);
            let mut text = String::new();
            for (size, label, samples) in [(16usize << 20, "16 MiB", 60), (2 << 30, "2 GiB", 20)] {
                let _mem = resident(size);
                let mut measures = vec![
                    Measure::new("std Command::spawn + wait, /bin/true", || {
                        true_ok(&mut std_true)
                    }),
                    Measure::new(
                        "NsCommand entering its own container (user + the six)",
                        || ns_true(&target, own),
                    ),
                    Measure::new("util-linux nsenter -U (its own container)", || {
                        true_ok(&mut nsenter_u)
                    }),
                    Measure::new("raw floor, bare (user first)", || bare.run()),
                    Measure::new("raw floor, sealed (user first)", || sealed.run()),
                ];
                let title = format!("as uid 1000, caller holding {label}");
                let v = round_robin(&title, samples, 1, &mut measures);
                text.push_str(&format!(
                    "  {label}: ours / std {:.2}x (goal <= 1.3x: {}), ours / nsenter -U {:.2}x; \
                     floors / std: bare {:.2}x, sealed {:.2}x; ours / sealed floor {:.2}x\n",
                    v[1] / v[0],
                    if v[1] / v[0] <= 1.3 { "met" } else { "NOT MET" },
                    v[1] / v[2],
                    v[3] / v[0],
                    v[4] / v[0],
                    v[1] / v[4]
                ));
            }
            let _ = container.kill();
            let _ = container.wait();
            text
        });
        let text = match measured {
            Ok(text) if dropped => text,
            Ok(_) => "  (could not drop to uid 1000)\n".to_owned(),
            Err(_) => "  (the measurement failed)\n".to_owned(),
        };
        // SAFETY: writing the figures, then leaving the forked copy.
        unsafe {
            libc::write(fds[1], text.as_ptr().cast(), text.len());
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    // SAFETY: the read end is ours.
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(
        &mut unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) },
        &mut out,
    );
    let mut status = 0;
    // SAFETY: waiting for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    print!("{out}");
}

/// Spawns per second from `threads` threads for `secs` seconds.
fn rate(threads: usize, secs: f64, spawn: &(dyn Fn() + Sync)) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let count = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while Instant::now() < deadline {
                    spawn();
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    count.into_inner() as f64 / secs
}

fn goal(what: &str, measured: f64, limit: f64) {
    let verdict = if measured <= limit { "met" } else { "NOT MET" };
    println!("  {what:<62} {measured:>6.2}x  (goal <= {limit}x: {verdict})");
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("spawn bench: run as root (cargo xtask bench)");
        std::process::exit(1);
    }
    let (mut root_parent, root_pid) = util_linux_container(false);
    let (mut rootless_parent, rootless_pid) = util_linux_container(true);
    let root = Target::pin(root_pid, SIX).unwrap();
    let rootless = Target::pin(rootless_pid, SIX | NsType::USER).unwrap();

    let small_mem = resident(16 << 20);
    let small = spawn_table("16 MiB", 150, &root, &rootless);
    drop(small_mem);
    let big_mem = resident(2 << 30);
    let big = spawn_table("2 GiB", 25, &root, &rootless);
    drop(big_mem);

    // Thread hand-offs and identity reads, 200 operations per sample.
    let runner = NamespaceRunner::new().unwrap();
    let net = Namespace::of_pid(root_pid, NsType::NET).unwrap();
    let (job_tx, job_rx) = mpsc::channel::<mpsc::Sender<i32>>();
    let echo = std::thread::spawn(move || {
        for reply in job_rx {
            let _ = reply.send(0);
        }
    });
    let path = format!("/proc/{root_pid}/ns/net");
    let mut measures = vec![
        Measure::new(
            "NamespaceRunner::run(same namespace, || 0) round trip",
            || {
                for _ in 0..200 {
                    runner.run(&net, || 0).unwrap().wait().unwrap();
                }
            },
        ),
        Measure::new("std mpsc round trip to a thread", || {
            for _ in 0..200 {
                let (tx, rx) = mpsc::channel();
                job_tx.send(tx).unwrap();
                rx.recv().unwrap();
            }
        }),
        Measure::new("getns(pid, net)", || {
            for _ in 0..200 {
                getns(root_pid, NsType::NET).unwrap();
            }
        }),
        Measure::new("stat(/proc/PID/ns/net)", || {
            for _ in 0..200 {
                std::fs::metadata(&path).unwrap();
            }
        }),
    ];
    let micro = round_robin("per operation", 60, 200, &mut measures);
    drop(measures);
    drop(job_tx);
    echo.join().unwrap();

    // What resolving mount targets inside a new root costs: 16 tmpfs mounts under the root
    // against 16 outside it (taken as given), the same container otherwise.
    let mount_root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    for i in 0..16 {
        std::fs::create_dir(mount_root.path().join(format!("d{i}"))).unwrap();
        std::fs::create_dir(elsewhere.path().join(format!("d{i}"))).unwrap();
    }
    let with_mounts = |inside: bool| {
        let mut c = NsCommand::new("mounts");
        c.unshare(NsType::MNT | NsType::PID).root(mount_root.path());
        for i in 0..16 {
            let base = if inside {
                mount_root.path()
            } else {
                elsewhere.path()
            };
            c.mount(Mount::tmpfs(base.join(format!("d{i}"))));
        }
        // SAFETY: the closure only returns.
        let mut child = unsafe { c.spawn_fn(|| 0) }.unwrap();
        assert!(child.wait().unwrap().success());
    };
    let mut measures = vec![
        Measure::new("16 tmpfs mounts resolved inside the root", || {
            with_mounts(true)
        }),
        Measure::new("16 tmpfs mounts taken as given (outside the root)", || {
            with_mounts(false)
        }),
    ];
    let mounts = round_robin("a container with mounts", 40, 1, &mut measures);
    drop(measures);
    println!(
        "  in-root resolution: {:.1} µs per mount",
        (mounts[0] - mounts[1]) / 16.0
    );

    unprivileged_entry();

    println!("concurrent spawning, spawns per second (root container's 6 namespaces vs std)");
    let mut concurrency = Vec::new();
    for threads in [1, 2, 4] {
        let std_rate = rate(threads, 1.5, &|| true_ok(&mut Command::new("/bin/true")));
        let ours = rate(threads, 1.5, &|| ns_true(&root, SIX));
        println!(
            "  {threads} thread(s): std {std_rate:>7.0}/s, NsCommand {ours:>7.0}/s, ratio {:.2}",
            ours / std_rate
        );
        concurrency.push((threads, ours / std_rate));
    }

    println!("goals");
    goal(
        "entering a root container's 6 namespaces / std Command",
        small.root / small.std,
        1.35,
    );
    println!(
        "  its floors / std: bare {:.2}x, sealed {:.2}x; ours / sealed floor {:.2}x",
        small.floor_bare / small.std,
        small.floor_sealed / small.std,
        small.root / small.floor_sealed
    );
    goal(
        "same / util-linux nsenter on the same 6",
        small.root / small.nsenter_root,
        0.5,
    );
    goal(
        "root entering a user namespace + 6 / the root path",
        small.rootless / small.root,
        1.15,
    );
    goal(
        "same / util-linux nsenter -U on the same",
        small.rootless / small.nsenter_rootless,
        0.45,
    );
    goal(
        "same with a 2 GiB caller / with a 16 MiB caller",
        big.rootless / small.rootless,
        1.2,
    );
    goal(
        "root container's 6, 2 GiB / 16 MiB caller",
        big.root / small.root,
        1.2,
    );
    // The two sizes are measured minutes apart, and the machine drifts in between: the
    // same ratios over std's own (which never copies the caller) take the drift out.
    println!(
        "  the same two over std's own 2 GiB / 16 MiB ({:.2}x): {:.2}x and {:.2}x",
        big.std / small.std,
        (big.rootless / small.rootless) / (big.std / small.std),
        (big.root / small.root) / (big.std / small.std)
    );
    goal(
        "NamespaceRunner round trip / std mpsc round trip",
        micro[0] / micro[1],
        2.0,
    );
    goal(
        "getns(pid, net) / stat of the same /proc/PID/ns/net",
        micro[2] / micro[3],
        1.5,
    );
    for (threads, ratio) in concurrency {
        println!(
            "  concurrent spawns from {threads} thread(s), std / ours: {:.2}x",
            1.0 / ratio
        );
    }
    println!(
        "  (for scale: std Command {:.0} µs with 16 MiB, {:.0} µs with 2 GiB; fork would copy it)",
        small.std, big.std
    );
    println!(
        "a spawn into a user namespace against the root path it builds on (the trampoline \
         enters the user namespace; copying the caller instead would add fork - vfork)"
    );
    for (size, s) in [("16 MiB", &small), ("2 GiB", &big)] {
        println!(
            "  {size:>6}: {:>7.0} µs = {:.2}x the root path's {:>7.0} µs (a copy of the caller: {:>8.0} µs)",
            s.rootless,
            s.rootless / s.root,
            s.root,
            s.copy(),
        );
    }
    let _ = root_parent.kill();
    let _ = root_parent.wait();
    let _ = rootless_parent.kill();
    let _ = rootless_parent.wait();
}
