//! `cargo xtask torture`: the spawning layer used the way a hostile program would use it.
//!
//! Scenarios, each ending with one summary line of figures:
//! - `load`: spawns of every shape from 8 threads while 4 threads allocate and free, with a
//!   watchdog; every exit status checked.
//! - `accounting`: descriptors, zombies and leftover processes counted before and after
//!   rounds of every failure path (missing program, dead target, target dying mid-way,
//!   killed intermediate, early kill, dropped handles, bad maps, killed closure, destroy).
//! - `bad-input`: every public entry point with bad values; each must be a typed error, no
//!   panic, and the calling thread's namespaces, root and working directory unchanged.
//! - `pid-reuse`: a `Child` and a pinned `Target` whose PIDs are recycled on purpose (in a
//!   fresh PID namespace, through `ns_last_pid`) are never confused with the new process.
//! - `fd-hygiene`: what spawned programs hold while other threads open and close
//!   descriptors (some without `O_CLOEXEC`), beside std's `Command` in the same run.
//! - `hostile-image`: containers with mounts and a new root started from a root of links
//!   (to host paths, magic links, loops, `..` chains) while another thread swaps them:
//!   nothing made or mounted outside the root, the host's mount table unchanged, no
//!   descriptor or process left.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ns_container::{clone, clone_in, destroy, CgroupPlacement, Child, Error, NsCommand, Stdio};
use ns_core::{Namespace, NsType, Target};

/// How much of each scenario to run.
#[derive(Clone, Copy)]
struct Size {
    spawns_per_thread: usize,
    accounting_rounds: usize,
    reuse_rounds: usize,
    hygiene_spawns: usize,
    hostile_spawns_per_thread: usize,
}

const FULL: Size = Size {
    spawns_per_thread: 600,
    accounting_rounds: 200,
    reuse_rounds: 100,
    hygiene_spawns: 500,
    hostile_spawns_per_thread: 500,
};

const QUICK: Size = Size {
    spawns_per_thread: 60,
    accounting_rounds: 20,
    reuse_rounds: 10,
    hygiene_spawns: 60,
    hostile_spawns_per_thread: 25,
};

/// How many scenarios `run` runs.
pub const SCENARIOS: usize = 8;

/// A scenario: its summary line, or what went wrong.
type Scenario = fn(Size) -> Result<String, String>;

/// Runs every scenario; `quick` is the short form `cargo xtask ci` runs.
pub fn run(quick: bool) -> Result<(), String> {
    let size = if quick { QUICK } else { FULL };
    let started = Instant::now();
    let mut failed = Vec::new();
    let scenarios: [(&str, Scenario); SCENARIOS] = [
        ("load", load),
        ("load-legacy-clone", load_legacy),
        ("load-rootless", load_rootless),
        ("accounting", accounting),
        ("bad-input", bad_input),
        ("pid-reuse", pid_reuse),
        ("fd-hygiene", fd_hygiene),
        ("hostile-image", hostile_image),
    ];
    for (name, scenario) in scenarios {
        let t = Instant::now();
        match scenario(size) {
            Ok(line) => println!(
                "torture {name}: {line} ({:.1} s)",
                t.elapsed().as_secs_f64()
            ),
            Err(e) => {
                println!("torture {name}: FAILED: {e}");
                failed.push(name);
            }
        }
    }
    println!(
        "torture: {} scenarios, {} failed, {:.1} s",
        scenarios.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("torture scenarios failed: {}", failed.join(", ")))
    }
}

/// Hidden subcommands the scenarios run as separate processes.
pub fn hidden(args: &[String]) -> Option<Result<(), String>> {
    match args.first().map(String::as_str) {
        Some("__list-fds") => Some(list_fds()),
        Some("__pid-reuse") => Some(pid_reuse_in_fresh_namespace(
            args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10),
        )),
        Some("__load-legacy") => Some(load_under_filter(
            args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10),
        )),
        Some("__load-rootless") => Some(load_as_uid_1000(
            args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10),
        )),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Shared helpers

fn fd_count() -> usize {
    // The library's process-wide state first (the trampoline's image and pid page).
    ns_container::prepare_spawning();
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// (live, zombie) children of this process.
fn children() -> (Vec<libc::pid_t>, Vec<libc::pid_t>) {
    let me = std::process::id() as libc::pid_t;
    let (mut live, mut zombies) = (Vec::new(), Vec::new());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (live, zombies);
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        if fields.next().and_then(|p| p.parse::<libc::pid_t>().ok()) == Some(me) {
            if state == "Z" {
                zombies.push(pid);
            } else {
                live.push(pid);
            }
        }
    }
    (live, zombies)
}

fn command(program: &str, args: &[&str]) -> NsCommand {
    let mut c = NsCommand::new(program);
    c.args(args);
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    c
}

/// A long-running process in new namespaces to enter, killed when dropped.
struct Container {
    child: Child,
    target: Target,
}

impl Container {
    fn start(types: NsType, pin: NsType) -> Result<Container, String> {
        let mut c = command("sleep", &["100000"]);
        c.unshare(types);
        if types.contains(NsType::USER) {
            c.uid_map(0, 100_000, 65_536).gid_map(0, 100_000, 65_536);
        }
        let child = c
            .spawn()
            .map_err(|e| format!("starting a container: {e}"))?;
        let target = Target::pin(child.pid(), pin).map_err(|e| format!("pinning: {e}"))?;
        Ok(Container { child, target })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Ok(ns) = Namespace::of_pid(self.child.pid(), NsType::PID) {
            let _ = destroy(&ns);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cgroup2_root() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// A cgroup v2 directory removed when dropped.
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(name: &str) -> Result<Cgroup, String> {
        let root = cgroup2_root().ok_or("no cgroup2 mount")?;
        let dir = root.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Cgroup(dir))
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A small xorshift generator: the scenarios need variety, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Threads that allocate and free memory of random sizes until dropped.
struct Churn {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Churn {
    fn start(n: usize) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
                    let mut ring: Vec<Vec<u8>> = Vec::with_capacity(64);
                    let mut ops = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let size = 16 + (rng.next() % (64 << 10)) as usize;
                        let mut v = vec![0u8; size];
                        v[size / 2] = 1;
                        if ring.len() == 64 {
                            ring.swap_remove((rng.next() % 64) as usize);
                        }
                        ring.push(v);
                        ops += 1;
                    }
                    ops
                })
            })
            .collect();
        Churn { stop, threads }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().unwrap_or(0))
            .sum()
    }
}

// ---------------------------------------------------------------------------------------
// load

/// One spawn of shape `shape`; returns the status and the status it must have.
fn spawn_shape(
    shape: usize,
    k: usize,
    root: &Target,
    user: &Target,
    cgroup: &Path,
) -> Result<(ExitStatus, i32), String> {
    let want_true = k % 2 == 0;
    let program = if want_true { "true" } else { "false" };
    let code = i32::from(!want_true);
    let closure_code = (k % 200) as i32;
    let err = |e: Error| format!("shape {shape}: {e}");
    let status = match shape {
        0 => command(program, &[]).status().map_err(err)?,
        1 => {
            // SAFETY: the closure only returns a number.
            let mut c = unsafe { clone(0, NsType::empty(), move || closure_code, NsType::empty()) }
                .map_err(err)?;
            let s = c.wait().map_err(|e| e.to_string())?;
            return Ok((s, closure_code));
        }
        2 => command(program, &[])
            .enter(
                root,
                NsType::NET | NsType::UTS | NsType::IPC | NsType::MNT | NsType::PID,
            )
            .status()
            .map_err(err)?,
        3 => command(program, &[])
            .enter(user, NsType::USER | NsType::NET | NsType::UTS | NsType::PID)
            .status()
            .map_err(err)?,
        4 => command(program, &[])
            .enter(root, NsType::PID | NsType::NET)
            .unshare(NsType::PID | NsType::MNT)
            .status()
            .map_err(err)?,
        5 => command(program, &[])
            .unshare(NsType::USER | NsType::UTS | NsType::NET)
            .uid_map(0, 100_000, 1000)
            .gid_map(0, 100_000, 1000)
            .hostname("torture")
            .status()
            .map_err(err)?,
        // CLONE_INTO_CGROUP where clone3 can be used, else cgroup.procs.
        6 => command(program, &[])
            .cgroup(cgroup)
            .cgroup_placement(CgroupPlacement::Auto)
            .status()
            .map_err(err)?,
        7 => command(program, &[])
            .cgroup(cgroup)
            .cgroup_placement(CgroupPlacement::ProcsFile)
            .status()
            .map_err(err)?,
        _ => {
            // SAFETY: the closure only returns a number.
            let mut c =
                unsafe { clone_in(Some(root), NsType::NET, move || closure_code, NsType::UTS) }
                    .map_err(err)?;
            let s = c.wait().map_err(|e| e.to_string())?;
            return Ok((s, closure_code));
        }
    };
    Ok((status, code))
}

const SHAPES: usize = 9;

fn load(size: Size) -> Result<String, String> {
    let root = Container::start(
        NsType::NET | NsType::UTS | NsType::IPC | NsType::MNT | NsType::PID,
        NsType::NET | NsType::UTS | NsType::IPC | NsType::MNT | NsType::PID,
    )?;
    let user = Container::start(
        NsType::USER | NsType::NET | NsType::UTS | NsType::IPC | NsType::MNT | NsType::PID,
        NsType::USER | NsType::NET | NsType::UTS | NsType::PID,
    )?;
    let cgroup = Cgroup::new("ns-torture")?;
    let progress = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let churn = Churn::start(4);
    let watchdog = {
        let (progress, done) = (progress.clone(), done.clone());
        std::thread::spawn(move || {
            let mut last = (0, Instant::now());
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let now = progress.load(Ordering::Relaxed);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(60) {
                    return true;
                }
            }
            false
        })
    };
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (root, user, cgroup) = (&root.target, &user.target, cgroup.0.as_path());
            let (progress, failures) = (&progress, &failures);
            s.spawn(move || {
                for i in 0..size.spawns_per_thread {
                    let shape = (t + i) % SHAPES;
                    let outcome = spawn_shape(shape, i, root, user, cgroup);
                    match outcome {
                        Ok((status, want)) if status.code() == Some(want) => {}
                        Ok((status, want)) => failures
                            .lock()
                            .unwrap()
                            .push(format!("shape {shape}: {status:?}, expected exit {want}")),
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let deadlocked = watchdog.join().unwrap_or(true);
    let allocations = churn.finish();
    let spawns = progress.load(Ordering::Relaxed);
    let failures = failures.lock().unwrap().clone();
    let line = format!(
        "{spawns} spawns ({SHAPES} shapes, 8 threads, {:.0}/s) beside {allocations} allocations \
         on 4 threads, failures {}, deadlocks {}",
        spawns as f64 / elapsed.as_secs_f64(),
        failures.len(),
        u8::from(deadlocked)
    );
    if failures.is_empty() && !deadlocked {
        Ok(line)
    } else {
        Err(format!(
            "{line}; first: {:?}",
            failures.iter().take(3).collect::<Vec<_>>()
        ))
    }
}

/// `load` and `accounting` in a separate process where a seccomp filter refuses `clone3`, so
/// that every task is created with the legacy `clone`.
fn load_legacy(size: Size) -> Result<String, String> {
    let text = run_hidden("__load-legacy", size.spawns_per_thread / 2)?;
    Ok(format!("under a filter that refuses clone3: {text}"))
}

/// Runs this program's hidden scenario `name` with `arg` in a fresh process; returns what it
/// printed, or that with its stderr and status when it failed.
fn run_hidden(name: &str, arg: usize) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args([name, &arg.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{text} {} ({:?})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))
    }
}

/// Entries into a rootless container by its owner, an ordinary uid, from several threads, in a
/// separate process that drops to uid 1000.
fn load_rootless(size: Size) -> Result<String, String> {
    let text = run_hidden("__load-rootless", size.spawns_per_thread)?;
    Ok(format!("as uid 1000: {text}"))
}

/// The body of `load_rootless`: uid 1000 starts its own container (user and the six) and
/// enters it from 4 threads (programs that succeed, fail and do not exist; with and without a
/// working directory and ids). Every status is as expected, every missing program a typed
/// error, and no descriptor or process is left.
fn load_as_uid_1000(spawns_per_thread: usize) -> Result<(), String> {
    // SAFETY: id changes of this single-threaded process (just started).
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setresgid(1000, 1000, 1000) == 0
            && libc::setresuid(1000, 1000, 1000) == 0
            && libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) == 0
    };
    if !dropped {
        return Err(format!(
            "dropping to uid 1000: {}",
            std::io::Error::last_os_error()
        ));
    }
    let all = NsType::USER
        | NsType::NET
        | NsType::UTS
        | NsType::IPC
        | NsType::MNT
        | NsType::PID
        | NsType::CGROUP;
    let mut c = command("sleep", &["100000"]);
    c.unshare(all)
        .uid_map(0, 1000, 1)
        .gid_map(0, 1000, 1)
        .setgroups_deny(true);
    let mut container = c
        .spawn()
        .map_err(|e| format!("starting a container: {e}"))?;
    let target = Target::pin(container.pid(), all).map_err(|e| format!("pinning: {e}"))?;
    let fds_before = fd_count();
    let failures = Mutex::new(Vec::<String>::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (target, failures) = (&target, &failures);
            s.spawn(move || {
                for i in 0..spawns_per_thread {
                    let k = (t + i) % 4;
                    let program = ["true", "false", "/no/such/program", "true"][k];
                    let mut c = command(program, &[]);
                    c.enter(target, all);
                    if k == 3 {
                        c.current_dir("/").uid(0).gid(0);
                    }
                    let outcome = c.status();
                    let ok = match (k, &outcome) {
                        (0 | 3, Ok(s)) => s.success(),
                        (1, Ok(s)) => s.code() == Some(1),
                        (2, Err(Error::Exec { errno, .. })) => *errno == libc::ENOENT,
                        _ => false,
                    };
                    if !ok {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{program}: {outcome:?}"));
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let _ = container.kill();
    let _ = container.wait();
    let fds_after = fd_count();
    let (live, zombies) = children();
    let failures = failures.into_inner().unwrap();
    let spawns = 4 * spawns_per_thread;
    println!(
        "{spawns} entries (4 threads, {:.0}/s), failures {}, descriptors {fds_before} -> \
         {fds_after}, children left {}",
        spawns as f64 / elapsed.as_secs_f64(),
        failures.len(),
        live.len() + zombies.len()
    );
    if !failures.is_empty() || fds_after != fds_before || !live.is_empty() || !zombies.is_empty() {
        return Err(format!(
            "first failures: {:?}; live {live:?}, zombies {zombies:?}",
            failures.iter().take(3).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

fn load_under_filter(spawns_per_thread: usize) -> Result<(), String> {
    crate::block_clone3::block_clone3();
    if ns_sys::clone3_usable() {
        return Err("clone3 is still usable under the filter".to_owned());
    }
    let size = Size {
        spawns_per_thread,
        accounting_rounds: spawns_per_thread / 3,
        ..QUICK
    };
    let load = load(size)?;
    let accounting = accounting(size)?;
    println!("{load}; {accounting}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// accounting

fn expect_err<T: std::fmt::Debug>(what: &str, r: Result<T, Error>) -> Result<(), String> {
    match r {
        Err(_) => Ok(()),
        Ok(v) => Err(format!("{what}: expected an error, got {v:?}")),
    }
}

/// Kills this process's paused intermediate: a child in poll() that is not `sleep` and is
/// still in our user namespace (the spawn's child, waiting for its maps, is in a new one).
fn kill_paused_intermediate(deadline: Instant) -> Result<(), String> {
    let own_user = std::fs::read_link("/proc/self/ns/user").ok();
    loop {
        let (live, _) = children();
        for p in live {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            let wchan = std::fs::read_to_string(format!("/proc/{p}/wchan")).unwrap_or_default();
            let user = std::fs::read_link(format!("/proc/{p}/ns/user")).ok();
            if comm.trim() != "sleep" && wchan.contains("poll") && user == own_user {
                // SAFETY: killing our own child.
                unsafe { libc::kill(p, libc::SIGKILL) };
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("no paused intermediate".to_owned());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn failure_round(round: usize) -> Result<(), String> {
    // A missing program.
    expect_err(
        "missing program",
        command("/nonexistent/program", &[]).spawn(),
    )?;
    // A dead target.
    let mut dead = Container::start(NsType::NET, NsType::NET)?;
    dead.child.kill().map_err(|e| e.to_string())?;
    dead.child.wait().map_err(|e| e.to_string())?;
    expect_err(
        "dead target",
        command("true", &[])
            .enter(&dead.target, NsType::NET)
            .spawn(),
    )?;
    drop(dead);
    // A target dying mid-way: either outcome is fine, nothing may be left.
    let dying = Container::start(NsType::NET | NsType::UTS, NsType::NET | NsType::UTS)?;
    let pidfd = dying
        .target
        .pidfd()
        .try_clone_to_owned()
        .map_err(|e| e.to_string())?;
    let delay = Duration::from_micros((round as u64 * 37) % 2000);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(delay);
        let _ = ns_sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&pidfd), libc::SIGKILL);
    });
    for _ in 0..3 {
        if let Ok(mut c) = command("true", &[])
            .enter(&dying.target, NsType::NET | NsType::UTS)
            .spawn()
        {
            let _ = c.wait();
        }
    }
    killer.join().map_err(|_| "killer thread panicked")?;
    drop(dying);
    // The same into a user namespace (the trampoline enters it after execve), and a missing
    // program there.
    let user = NsType::USER | NsType::NET | NsType::UTS;
    let dying = Container::start(user, user)?;
    expect_err(
        "missing program in a user namespace",
        command("/nonexistent/program", &[])
            .enter(&dying.target, user)
            .spawn(),
    )?;
    let pidfd = dying
        .target
        .pidfd()
        .try_clone_to_owned()
        .map_err(|e| e.to_string())?;
    let killer = std::thread::spawn(move || {
        std::thread::sleep(delay);
        let _ = ns_sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&pidfd), libc::SIGKILL);
    });
    for _ in 0..3 {
        if let Ok(mut c) = command("true", &[]).enter(&dying.target, user).spawn() {
            let _ = c.wait();
        }
    }
    killer.join().map_err(|_| "killer thread panicked")?;
    drop(dying);
    // Its intermediate killed, before and after it created the child.
    let container = Container::start(user, user)?;
    for after in [false, true] {
        let (r, w) = pipe()?;
        let mut c = command("sleep", &["30"]);
        c.enter(&container.target, user)
            .pause_intermediate_for_tests(r, after);
        let killer = std::thread::spawn(move || {
            let r = kill_paused_intermediate(Instant::now() + Duration::from_secs(10));
            drop(w);
            r
        });
        let spawned = c.spawn();
        killer.join().map_err(|_| "killer thread panicked")??;
        expect_err("killed intermediate of a user namespace entry", spawned)?;
    }
    drop(container);
    // A killed intermediate, before and after it created the child.
    for after in [false, true] {
        let (r, w) = pipe()?;
        let mut c = command("sleep", &["30"]);
        c.unshare(NsType::USER)
            .uid_map(0, 0, 1)
            .pause_intermediate_for_tests(r, after);
        let killer = std::thread::spawn(move || {
            let r = kill_paused_intermediate(Instant::now() + Duration::from_secs(10));
            drop(w);
            r
        });
        let spawned = c.spawn();
        killer.join().map_err(|_| "killer thread panicked")??;
        expect_err("killed intermediate", spawned)?;
    }
    // An early kill, a dropped handle.
    let mut c = command("sleep", &["30"])
        .spawn()
        .map_err(|e| e.to_string())?;
    c.kill().map_err(|e| e.to_string())?;
    let s = c.wait().map_err(|e| e.to_string())?;
    if s.signal() != Some(libc::SIGKILL) {
        return Err(format!("early kill: {s:?}"));
    }
    drop(
        command("sleep", &["30"])
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    // Bad maps.
    expect_err(
        "overlapping maps",
        command("true", &[])
            .unshare(NsType::USER)
            .uid_map(0, 0, 10)
            .uid_map(5, 100, 10)
            .spawn(),
    )?;
    // A closure killed while it runs.
    // SAFETY: the closure only sleeps (nanosleep is async-signal-safe).
    let mut c = unsafe {
        clone(
            0,
            NsType::empty(),
            || {
                libc::nanosleep(
                    &libc::timespec {
                        tv_sec: 30,
                        tv_nsec: 0,
                    },
                    std::ptr::null_mut(),
                );
                0
            },
            NsType::NET,
        )
    }
    .map_err(|e| e.to_string())?;
    c.kill().map_err(|e| e.to_string())?;
    c.wait().map_err(|e| e.to_string())?;
    // A container with several processes, destroyed.
    let mut c = command("sh", &["-c", "sleep 100 & sleep 100 & wait"]);
    c.unshare(NsType::PID | NsType::MNT);
    let mut child = c.spawn().map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(5));
    let ns = Namespace::of_pid(child.pid(), NsType::PID).map_err(|e| e.to_string())?;
    destroy(&ns).map_err(|e| e.to_string())?;
    child.wait().map_err(|e| e.to_string())?;
    Ok(())
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: pipe2 returned two new descriptors that nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn accounting(size: Size) -> Result<String, String> {
    let fds = fd_count();
    let (live, zombies) = children();
    let mut operations = 0;
    for round in 0..size.accounting_rounds {
        failure_round(round)?;
        operations += 17;
    }
    // Give the kernel a moment to finish reaping what the last round killed.
    std::thread::sleep(Duration::from_millis(50));
    let leaked_fds = fd_count() as i64 - fds as i64;
    let (live_after, zombies_after) = children();
    let leftover = live_after.len() as i64 - live.len() as i64;
    let zombie_count = zombies_after.len() as i64 - zombies.len() as i64;
    let line = format!(
        "{operations} operations on every failure path, descriptors leaked {leaked_fds}, \
         zombies {zombie_count}, leftover processes {leftover}"
    );
    if leaked_fds == 0 && zombie_count == 0 && leftover == 0 {
        Ok(line)
    } else {
        Err(line)
    }
}

// ---------------------------------------------------------------------------------------
// bad-input

/// What must not change when a call fails.
#[derive(PartialEq, Debug)]
struct ThreadView {
    namespaces: Vec<(String, u64)>,
    root: (u64, u64),
    cwd: (u64, u64),
}

fn thread_view() -> ThreadView {
    let names = [
        "mnt",
        "uts",
        "ipc",
        "pid",
        "net",
        "user",
        "cgroup",
        "time",
        "pid_for_children",
        "time_for_children",
    ];
    let namespaces = names
        .iter()
        .map(|n| {
            let ino = std::fs::metadata(format!("/proc/thread-self/ns/{n}"))
                .map(|m| m.ino())
                .unwrap_or(0);
            (n.to_string(), ino)
        })
        .collect();
    let key = |p: &str| {
        std::fs::metadata(p)
            .map(|m| (m.dev(), m.ino()))
            .unwrap_or((0, 0))
    };
    ThreadView {
        namespaces,
        root: key("/"),
        cwd: key("."),
    }
}

type Case = (&'static str, Box<dyn Fn() -> bool>);

/// A pid that exists as an unreaped zombie of this process, and one that is gone.
fn zombie_and_gone() -> (libc::pid_t, libc::pid_t) {
    // SAFETY: the child only _exits.
    let zombie = unsafe { libc::fork() };
    if zombie == 0 {
        // SAFETY: leaving the forked child.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: the child only _exits.
    let gone = unsafe { libc::fork() };
    if gone == 0 {
        // SAFETY: leaving the forked child.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(gone, &mut status, 0) };
    std::thread::sleep(Duration::from_millis(20));
    (zombie, gone)
}

fn cases(zombie: libc::pid_t, gone: libc::pid_t) -> Vec<Case> {
    use ns_core::Error as E;
    let files = NsType::from_bits_retain(libc::CLONE_FILES);
    let bad_pids = [0, -1, i32::MAX, gone, zombie];
    let mut cases: Vec<Case> = vec![
        (
            "nstype(unknown)",
            Box::new(|| matches!(ns_core::nstype("bogus"), Err(E::UnknownType { .. }))),
        ),
        (
            "nstype(set)",
            Box::new(|| ns_core::nstype("net,uts").is_err()),
        ),
        (
            "nsname(empty)",
            Box::new(|| matches!(ns_core::nsname(NsType::empty()), Err(E::NotOneType { .. }))),
        ),
        (
            "nsname(two)",
            Box::new(|| ns_core::nsname(NsType::NET | NsType::UTS).is_err()),
        ),
        (
            "nsname(unknown bits)",
            Box::new(move || ns_core::nsname(files).is_err()),
        ),
        (
            "supported(unknown bits)",
            Box::new(move || matches!(ns_core::supported(files), Err(E::UnknownFlags { .. }))),
        ),
        (
            "setns(non-nsfs file)",
            Box::new(|| {
                matches!(
                    ns_core::setns("/etc/hostname", NsType::NET, false),
                    Err(E::NotNamespace { .. })
                )
            }),
        ),
        (
            "setns(wrong type)",
            Box::new(|| {
                matches!(
                    ns_core::setns("/proc/self/ns/uts", NsType::NET, false),
                    Err(E::WrongType { .. })
                )
            }),
        ),
        (
            "setns(missing file)",
            Box::new(|| ns_core::setns("/nonexistent", NsType::NET, true).is_err()),
        ),
        (
            "setns(user, multithreaded)",
            Box::new(|| ns_core::setns("/proc/1/ns/user", NsType::USER, false).is_err()),
        ),
        (
            "setns_pid(self, user)",
            Box::new(|| {
                ns_core::setns_pid(std::process::id() as i32, NsType::USER, false).is_err()
            }),
        ),
        (
            "getns(empty type)",
            Box::new(|| ns_core::getns(1, NsType::empty()).is_err()),
        ),
        (
            "getns(unknown bits)",
            Box::new(move || ns_core::getns(1, files).is_err()),
        ),
        (
            "Namespace::open(non-nsfs)",
            Box::new(|| Namespace::open("/etc/hostname", NsType::NET).is_err()),
        ),
        (
            "Namespace::open(wrong type)",
            Box::new(|| Namespace::open("/proc/self/ns/ipc", NsType::NET).is_err()),
        ),
        (
            "Target::pin(unknown bits)",
            Box::new(move || {
                matches!(
                    Target::pin(1, files | NsType::NET),
                    Err(E::UnknownFlags { .. })
                )
            }),
        ),
        (
            "NsCommand: oversized hostname",
            Box::new(|| {
                command("true", &[])
                    .unshare(NsType::UTS)
                    .hostname("x".repeat(100))
                    .spawn()
                    .is_err()
            }),
        ),
        (
            "NsCommand: hostname without uts",
            Box::new(|| {
                matches!(
                    command("true", &[]).hostname("x").spawn(),
                    Err(Error::Invalid { .. })
                )
            }),
        ),
        (
            "NsCommand: missing cgroup",
            Box::new(|| {
                command("true", &[])
                    .cgroup("/nonexistent/cgroup")
                    .spawn()
                    .is_err()
            }),
        ),
        (
            "NsCommand: non-cgroup directory",
            Box::new(|| {
                command("true", &[])
                    .cgroup("/tmp")
                    .cgroup_placement(CgroupPlacement::CloneInto)
                    .spawn()
                    .is_err()
            }),
        ),
        (
            "NsCommand: out-of-range map",
            Box::new(|| {
                command("true", &[])
                    .unshare(NsType::USER)
                    .uid_map(0, u32::MAX - 5, 100)
                    .spawn()
                    .is_err()
            }),
        ),
        (
            "NsCommand: map without user ns",
            Box::new(|| {
                matches!(
                    command("true", &[]).uid_map(0, 0, 1).spawn(),
                    Err(Error::Invalid { .. })
                )
            }),
        ),
        (
            "NsCommand: huge fd",
            Box::new(|| {
                matches!(
                    command("true", &[]).fd(i32::MAX, devnull()).spawn(),
                    Err(Error::Invalid { .. })
                )
            }),
        ),
        (
            "NsCommand: fd over the limit",
            Box::new(|| {
                matches!(
                    command("true", &[]).fd(1 << 20, devnull()).spawn(),
                    Err(Error::Invalid { .. })
                )
            }),
        ),
        (
            "NsCommand: negative fd",
            Box::new(|| {
                matches!(
                    command("true", &[]).fd(-5, devnull()).spawn(),
                    Err(Error::Invalid { .. })
                )
            }),
        ),
        (
            "NsCommand: fd given twice",
            Box::new(|| {
                matches!(
                    command("true", &[])
                        .fd(9, devnull())
                        .fd(9, devnull())
                        .spawn(),
                    Err(Error::Invalid { .. })
                )
            }),
        ),
        (
            "NsCommand: unknown bits",
            Box::new(move || {
                matches!(
                    command("true", &[]).unshare(files).spawn(),
                    Err(Error::Core(E::UnknownFlags { .. }))
                )
            }),
        ),
        (
            "NsCommand: NUL in program",
            Box::new(|| matches!(command("a\0b", &[]).spawn(), Err(Error::Invalid { .. }))),
        ),
        (
            "NsCommand: time offset nanos",
            Box::new(|| {
                matches!(
                    command("true", &[])
                        .unshare(NsType::TIME)
                        .time_offset(ns_container::Clock::Monotonic, 1, 2_000_000_000)
                        .spawn(),
                    Err(Error::Invalid { .. })
                )
            }),
        ),
        // SAFETY (all clone cases): refused before any process exists.
        (
            "clone(unknown bits)",
            Box::new(move || unsafe { clone(1, NsType::empty(), || 0, files) }.is_err()),
        ),
        (
            "clone_in(unknown bits)",
            Box::new(move || unsafe { clone_in(None, files, || 0, NsType::empty()) }.is_err()),
        ),
        (
            "destroy(non-pid namespace)",
            Box::new(|| {
                Namespace::current(NsType::NET)
                    .map(|ns| destroy(&ns).is_err())
                    .unwrap_or(false)
            }),
        ),
        (
            "destroy(own pid namespace)",
            Box::new(|| {
                Namespace::current(NsType::PID)
                    .map(|ns| destroy(&ns).is_err())
                    .unwrap_or(false)
            }),
        ),
        (
            "persist(to a missing directory)",
            Box::new(|| {
                Namespace::current(NsType::NET)
                    .map(|ns| ns_core::persist(&ns, "/nonexistent/dir/net").is_err())
                    .unwrap_or(false)
            }),
        ),
    ];
    for pid in bad_pids {
        cases.push((
            "getns(bad pid)",
            Box::new(move || {
                // A zombie has no namespaces any more; a live pid is never among these.
                matches!(ns_core::getns(pid, NsType::NET), Err(_) | Ok(None))
            }),
        ));
        cases.push((
            "Target::pin(bad pid)",
            Box::new(move || Target::pin(pid, NsType::NET).is_err()),
        ));
        cases.push((
            "setns_pid(bad pid)",
            Box::new(move || ns_core::setns_pid(pid, NsType::NET, true).is_err()),
        ));
        cases.push((
            "NsCommand::enter_pid(bad pid)",
            Box::new(move || {
                command("true", &[])
                    .enter_pid(pid, NsType::NET)
                    .spawn()
                    .is_err()
            }),
        ));
        // SAFETY: the closure returns at once; the target is refused first.
        cases.push((
            "clone(bad pid)",
            Box::new(move || unsafe { clone(pid, NsType::NET, || 0, NsType::empty()) }.is_err()),
        ));
    }
    cases
}

fn devnull() -> OwnedFd {
    std::fs::File::open("/dev/null")
        .map(OwnedFd::from)
        .unwrap_or_else(|_| {
            pipe()
                .map(|(r, _)| r)
                .unwrap_or_else(|_| std::process::abort())
        })
}

fn bad_input(_: Size) -> Result<String, String> {
    let (zombie, gone) = zombie_and_gone();
    // A parked thread makes the process multithreaded for the thread-rule cases.
    let (park_tx, park_rx) = std::sync::mpsc::channel::<()>();
    let parked = std::thread::spawn(move || {
        let _ = park_rx.recv();
    });
    let fds = fd_count();
    let before = thread_view();
    let mut bad = Vec::new();
    let all = cases(zombie, gone);
    let count = all.len();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (name, case) in all {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(case)) {
            Ok(true) => {}
            Ok(false) => bad.push(format!("{name}: not the expected typed error")),
            Err(_) => bad.push(format!("{name}: panicked")),
        }
        if thread_view() != before {
            bad.push(format!(
                "{name}: changed the calling thread's namespaces, root or cwd"
            ));
        }
    }
    std::panic::set_hook(default_hook);
    drop(park_tx);
    let _ = parked.join();
    let mut status = 0;
    // SAFETY: reaping our own zombie child.
    unsafe { libc::waitpid(zombie, &mut status, 0) };
    let leaked = fd_count() as i64 - fds as i64;
    let line = format!(
        "{count} calls with bad values, typed errors {}, panics {}, state changes {}, \
         descriptors leaked {leaked}",
        count - bad.len(),
        bad.iter().filter(|b| b.ends_with("panicked")).count(),
        bad.iter().filter(|b| b.contains("changed")).count(),
    );
    if bad.is_empty() && leaked == 0 {
        Ok(line)
    } else {
        Err(format!("{line}: {bad:?}"))
    }
}

// ---------------------------------------------------------------------------------------
// pid-reuse

fn pid_reuse(size: Size) -> Result<String, String> {
    run_hidden("__pid-reuse", size.reuse_rounds)
}

/// Runs in a fresh single-threaded process: a new pid namespace whose init recycles PIDs
/// on purpose.
fn pid_reuse_in_fresh_namespace(rounds: usize) -> Result<(), String> {
    // SAFETY: namespace flags only, in a single-threaded process.
    unsafe { ns_sys::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS) }
        .map_err(|e| e.to_string())?;
    // SAFETY: the child runs the scenario in this single-threaded process and _exits.
    let init = unsafe { libc::fork() };
    if init == 0 {
        let code = match reuse_rounds(rounds) {
            Ok(line) => {
                println!("{line}");
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        };
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // SAFETY: leaving the forked child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(init, &mut status, 0) };
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(format!("pid-reuse init ended with {status:#x}"))
    }
}

/// Makes the next process created in this pid namespace get `pid`, and forks it. The
/// stranger exits with 42, or (with `own_net`) waits in a network namespace of its own
/// until killed.
fn stranger_at(pid: libc::pid_t, own_net: bool) -> Result<libc::pid_t, String> {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
        .map_err(|e| format!("ns_last_pid: {e}"))?;
    // SAFETY: the child makes async-signal-safe calls only and never returns.
    let s = unsafe { libc::fork() };
    if s == 0 {
        // SAFETY: as above.
        unsafe {
            if own_net {
                libc::unshare(libc::CLONE_NEWNET);
                libc::pause();
            }
            libc::_exit(42);
        }
    }
    if s != pid {
        return Err(format!("pid {pid} was not recycled (got {s})"));
    }
    Ok(s)
}

fn reuse_rounds(rounds: usize) -> Result<String, String> {
    // This pid namespace's own /proc, so that /proc/PID names our processes.
    // SAFETY: mount calls with NUL-terminated strings, in our own mount namespace.
    unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        if libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            0,
            std::ptr::null(),
        ) != 0
        {
            return Err(format!(
                "mounting /proc: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    let mut confused = 0;
    let mut statuses = 0;
    let mut refused = 0;
    for _ in 0..rounds {
        // A Child whose pid is recycled after the application reaped it.
        let mut child = command("sh", &["-c", "exit 7"])
            .spawn()
            .map_err(|e| e.to_string())?;
        let pid = child.pid();
        let mut raw = 0;
        // SAFETY: the application reaping its own child behind the library's back.
        if unsafe { libc::waitpid(pid, &mut raw, 0) } != pid {
            return Err("raw waitpid failed".into());
        }
        let stranger = stranger_at(pid, false)?;
        std::thread::sleep(Duration::from_millis(2));
        match child.wait() {
            Ok(s) if s.code() == Some(7) => statuses += 1,
            Err(e)
                if e.get_ref()
                    .and_then(|e| e.downcast_ref::<Error>())
                    .is_some() => {}
            Ok(_) | Err(_) => confused += 1,
        }
        let mut raw = 0;
        // SAFETY: reaping the stranger, which must still be there for us.
        if unsafe { libc::waitpid(stranger, &mut raw, 0) } != stranger
            || ExitStatus::from_raw(raw).code() != Some(42)
        {
            confused += 1;
        }

        // A pinned Target whose pid is recycled by a process in another network namespace.
        let mut c = command("sleep", &["1000"]);
        c.unshare(NsType::NET).kill_on_drop(false);
        let mut victim = c.spawn().map_err(|e| e.to_string())?;
        let old_net = ns_core::getns(victim.pid(), NsType::NET)
            .map_err(|e| e.to_string())?
            .ok_or("no net namespace")?;
        let target = Target::pin(victim.pid(), NsType::NET).map_err(|e| e.to_string())?;
        victim.kill().map_err(|e| e.to_string())?;
        let pid = victim.pid();
        let mut raw = 0;
        // SAFETY: reaping our own child behind the library's back.
        unsafe { libc::waitpid(pid, &mut raw, 0) };
        let stranger = stranger_at(pid, true)?;
        std::thread::sleep(Duration::from_millis(2));
        if target.is_alive() {
            confused += 1;
        }
        let mut probe = command("sh", &["-c", "true"]);
        probe.enter(&target, NsType::NET);
        match probe.spawn() {
            Err(_) => refused += 1,
            Ok(mut c) => {
                // Entered through the pinned files: must be the dead target's namespace.
                let net = ns_core::getns(c.pid(), NsType::NET).ok().flatten();
                if net.is_some() && net != Some(old_net) {
                    confused += 1;
                }
                let _ = c.wait();
            }
        }
        // SAFETY: killing and reaping the stranger, our own child.
        unsafe {
            libc::kill(stranger, libc::SIGKILL);
            libc::waitpid(stranger, &mut raw, 0);
        }
        drop(victim);
    }
    if confused != 0 {
        return Err(format!("{rounds} rounds: confused {confused} times"));
    }
    Ok(format!(
        "{rounds} rounds of a Child and a Target with recycled pids: confused 0, own status \
         kept {statuses}, entries into the dead target refused {refused}"
    ))
}

// ---------------------------------------------------------------------------------------
// fd-hygiene

/// `__list-fds`: prints this process's open descriptors.
fn list_fds() -> Result<(), String> {
    let listed: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| e.to_string())?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    // The directory descriptor used for listing is closed now; keep what is still open.
    let mut open: Vec<i32> = listed
        .into_iter()
        .filter(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok())
        .collect();
    open.sort();
    let text: Vec<String> = open.iter().map(|fd| fd.to_string()).collect();
    println!("{}", text.join(" "));
    Ok(())
}

fn fd_hygiene(size: Size) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    // Other threads open and close descriptors, half of them without O_CLOEXEC, as C
    // libraries do.
    let noise: Vec<_> = (0..4)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let path = CString::new("/dev/null").unwrap_or_default();
                let flags = if i % 2 == 0 {
                    libc::O_RDONLY
                } else {
                    libc::O_RDONLY | libc::O_CLOEXEC
                };
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: opening and closing our own descriptor.
                    unsafe {
                        let fd = libc::open(path.as_ptr(), flags);
                        std::thread::yield_now();
                        if fd >= 0 {
                            libc::close(fd);
                        }
                    }
                }
            })
        })
        .collect();
    // A third of ours go into a container's user namespace, through the trampoline (whose
    // own descriptors, the namespace, status pipe and caller's pidfd, must not reach the
    // program).
    let user = NsType::USER | NsType::NET;
    let container = Container::start(user, user)?;
    let run_ours = |give: bool, into_user: bool| -> Result<String, String> {
        let mut c = NsCommand::new(&exe);
        c.arg("__list-fds")
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if give {
            c.fd(7, devnull());
        }
        if into_user {
            c.enter(&container.target, user);
        }
        let out = c.output().map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let mut ours_extra = 0;
    let mut std_extra = 0;
    for i in 0..size.hygiene_spawns {
        let give = i % 2 == 1;
        let want = if give { "0 1 2 7" } else { "0 1 2" };
        if run_ours(give, i % 3 == 2)? != want {
            ours_extra += 1;
        }
        let mut out = String::new();
        let mut child = Command::new(&exe)
            .arg("__list-fds")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        let _ = child.wait();
        if out.trim() != "0 1 2" {
            std_extra += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in noise {
        let _ = t.join();
    }
    let line = format!(
        "{n} programs spawned (a third into a user namespace) while 4 threads open and close \
         descriptors: ours held anything \
         beyond 0, 1, 2 and what was given {ours_extra} times; std's Command, same run, \
         {std_extra} of {n} (it passes on descriptors opened without O_CLOEXEC); closure \
         children are not counted: they inherit the caller's descriptors, as after fork",
        n = size.hygiene_spawns
    );
    if ours_extra == 0 {
        Ok(line)
    } else {
        Err(line)
    }
}

// ---------------------------------------------------------------------------------------
// hostile-image

/// Every path below `dir`, recursively (links not followed).
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        out.push(path.clone());
        if is_dir {
            out.extend(tree(&path));
        }
    }
    out
}

/// Points the link `at` to `to`, atomically (rename over it).
fn swap_link(at: &Path, to: &Path) -> Result<(), String> {
    let tmp = at.with_extension("swap");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(to, &tmp).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, at).map_err(|e| e.to_string())
}

fn hostile_image(size: Size) -> Result<String, String> {
    let host = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    let r = root.path().to_owned();
    for link in ["bin", "lib", "lib64", "sbin"] {
        if let Ok(to) = std::fs::read_link(format!("/{link}")) {
            std::os::unix::fs::symlink(to, r.join(link)).map_err(|e| e.to_string())?;
        }
    }
    for d in ["usr", "proc", "tmp", "inside"] {
        std::fs::create_dir(r.join(d)).map_err(|e| e.to_string())?;
    }
    // A host directory the caller holds open, for magic links.
    let held = std::fs::File::open(host.path()).map_err(|e| e.to_string())?;
    let magic = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&held)
    ));
    // Links every mount below goes through, swapped all along.
    let targets: [&Path; 5] = [
        Path::new("/inside"),
        host.path(),
        &magic,
        Path::new("../../../../../.."),
        Path::new("loop"),
    ];
    swap_link(&r.join("data"), targets[0])?;
    std::fs::create_dir(r.join("inside/etc")).map_err(|e| e.to_string())?;
    swap_link(&r.join("etc"), Path::new("/inside/etc"))?;
    std::os::unix::fs::symlink("data", r.join("loop")).map_err(|e| e.to_string())?;
    let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let mountinfo = || std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts_before = mountinfo();
    let fds_before = fd_count();
    let stop = AtomicBool::new(false);
    let (made, refused, other) = (AtomicU64::new(0), AtomicU64::new(0), Mutex::new(None));
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let _ = swap_link(&r.join("data"), targets[i % targets.len()]);
                i = i.wrapping_add(1);
            }
        });
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let (r, file, made, refused, other) = (&r, file.path(), &made, &refused, &other);
                s.spawn(move || {
                    for i in 0..size.hostile_spawns_per_thread {
                        let api = if (t + i) % 2 == 0 {
                            ns_container::MountApi::New
                        } else {
                            ns_container::MountApi::Classic
                        };
                        // The tmpfs is where `data` led when it was resolved: /inside/sub, or /sub
                        // through the `..` chain (clamped at the root).
                        let check = "grep -qE ' /(inside/)?sub ' /proc/self/mountinfo";
                        let mut c = command("sh", &["-c", check]);
                        c.unshare(NsType::MNT | NsType::PID)
                            .mount_api(api)
                            .mount(
                                ns_container::Mount::bind("/usr", r.join("usr"))
                                    .recursive(false)
                                    .read_only(),
                            )
                            .mount(ns_container::Mount::proc(r.join("proc")))
                            .mount(ns_container::Mount::tmpfs(r.join("data/sub")).create_dir())
                            .mount(
                                ns_container::Mount::bind(file, r.join("etc/x/resolv.conf"))
                                    .recursive(false)
                                    .read_only()
                                    .create_file(),
                            )
                            .root(r);
                        match c.spawn() {
                            Ok(mut child) => match child.wait() {
                                Ok(st) if st.success() => {
                                    made.fetch_add(1, Ordering::Relaxed);
                                }
                                st => {
                                    *other.lock().unwrap_or_else(|e| e.into_inner()) = Some(
                                        format!("a container ran but saw no /data/sub: {st:?}"),
                                    );
                                }
                            },
                            Err(Error::Step {
                                step: ns_container::Step::Mount,
                                errno: libc::ENOENT | libc::ELOOP | libc::ENOTDIR,
                                ..
                            }) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                *other.lock().unwrap_or_else(|e| e.into_inner()) =
                                    Some(e.to_string());
                            }
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        stop.store(true, Ordering::Relaxed);
    });
    drop(held);
    let on_host = tree(host.path());
    let mounts_after = mountinfo();
    let fds_after = fd_count();
    let (live, zombies) = children();
    let n = 4 * size.hostile_spawns_per_thread;
    let line = format!(
        "{n} containers (mounts, pivot_root, both mount APIs) from a root of links swapped all along: {} started, {} refused with a typed mount error; made on the host {}, host mount table {}, descriptors leaked {}, leftover processes {}",
        made.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        on_host.len(),
        if mounts_before == mounts_after { "unchanged" } else { "CHANGED" },
        fds_after.saturating_sub(fds_before),
        live.len() + zombies.len()
    );
    let other = other.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = other {
        return Err(format!("{line}; unexpected: {e}"));
    }
    if on_host.is_empty()
        && mounts_before == mounts_after
        && fds_after <= fds_before
        && live.is_empty()
        && zombies.is_empty()
        && made.load(Ordering::Relaxed) > 0
    {
        Ok(line)
    } else {
        Err(line)
    }
}
