//! [`NamespaceRunner`]: run closures on a dedicated thread inside a namespace.

use std::any::Any;
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use ns_core::{Namespace, NsType, ThreadRule};

use crate::error::{io_error, Error, Result};

const STARTING: &str = "starting a namespace runner";

/// The types a runner thread can move between. User and time namespaces cannot be entered by
/// one thread of a multithreaded process.
const RUNNABLE: [NsType; 6] = [
    NsType::NET,
    NsType::UTS,
    NsType::IPC,
    NsType::CGROUP,
    NsType::MNT,
    NsType::PID,
];

/// Runs closures on a dedicated thread (or a pool of them, [`NamespaceRunner::with_threads`]),
/// each inside a namespace you name: Mesos's `NamespaceRunner`, without its limits.
///
/// - Works for net, uts, ipc, cgroup and pid (the thread's future children) namespaces, and
///   for mount namespaces: the thread stops sharing its filesystem state with the rest of the
///   process when it starts (`unshare(CLONE_FS)`), as the kernel requires.
/// - Refuses user and time namespaces with [`ns_core::Error::ThreadRule`]: the kernel never
///   lets one thread of a multithreaded process enter them.
/// - Only this thread ever changes namespace; every other thread of the process stays where
///   it is.
/// - Before each closure the thread is in its original namespaces except the one named; a
///   closure for the namespace the thread is already in skips the `setns`.
/// - After each closure the thread's root and working directory are restored if they changed
///   (a closure's `chdir`/`chroot` is undone; moving back into the original mount namespace,
///   which resets both, restores them too), its namespaces are checked, then its credentials
///   and confinement (user and group ids, supplementary groups, all five capability sets,
///   securebits, `no_new_privs`, seccomp filters) and that it still shares the process's
///   descriptor table; its signal mask, alternate signal stack and umask are put back.
///   Not checked: LSM labels and Landlock domains, scheduling policy, CPU affinity,
///   personality; a closure that changes those must undo them itself. If the thread
///   cannot be brought back (it cannot leave a namespace, or a closure changed its
///   credentials, which cannot be undone once privilege is dropped), it is retired (it exits,
///   taking its state with it) and a fresh thread serves the next closures: a thread in an
///   unknown state is never reused.
/// - A panic in a closure becomes [`Error::Panicked`]; the runner keeps working.
/// - Dropping the runner lets queued closures finish, then joins its thread.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ns_container::NamespaceRunner;
/// use ns_core::{Namespace, NsType};
///
/// let runner = NamespaceRunner::new()?;
/// let net = Namespace::open("/run/netns/blue", NsType::NET)?;
/// let links = runner.run(&net, || std::fs::read_to_string("/proc/thread-self/net/dev"))?.wait()??;
/// # Ok(()) }
/// ```
pub struct NamespaceRunner {
    tx: Mutex<Sender<Message>>,
    control: Mutex<Sender<Control>>,
    supervisor: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
    /// Worker threads serving the queue (retired ones are replaced).
    threads: usize,
}

/// Messages to the supervisor, a thread that never runs closures or changes namespace and
/// starts every worker thread, so that each worker begins in the runner's original
/// namespaces with the original credentials (a thread inherits both from its creator).
enum Control {
    /// A worker retired: start a replacement.
    Retired,
    /// The runner is being dropped.
    Shutdown,
}

/// What the runner's threads have done, for monitoring and tests.
#[derive(Debug, Default)]
struct Stats {
    /// `setns` calls made to enter or leave a namespace.
    switches: AtomicU64,
    /// Threads retired because they could not be brought back to a known state.
    retired: AtomicU64,
}

enum Message {
    Job(Job),
    Stop,
}

struct Job {
    ns: Namespace,
    label: Label,
    /// Runs the closure (or reports why it cannot run) and completes the pending result.
    task: Box<dyn FnOnce(Option<Error>) + Send>,
}

impl NamespaceRunner {
    /// Starts the runner with one worker thread, as Mesos's `NamespaceRunner` has: closures
    /// run one at a time, in the order they were given.
    ///
    /// # Errors
    /// [`Error::Io`] when the thread cannot be spawned.
    pub fn new() -> Result<NamespaceRunner> {
        NamespaceRunner::with_threads(1)
    }

    /// Starts the runner with `threads` worker threads (at least one) that take closures from
    /// one queue, so that a slow closure does not hold up the others. Every guarantee holds
    /// per thread: each closure starts in exactly the namespace asked for (and the thread's
    /// original ones for the other types), and a thread that cannot be brought back is
    /// retired and replaced. Closures may then run concurrently and out of order.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use ns_container::NamespaceRunner;
    /// use ns_core::{Namespace, NsType};
    ///
    /// let pool = NamespaceRunner::with_threads(4)?;
    /// let net = Namespace::open("/run/netns/blue", NsType::NET)?;
    /// let pending: Vec<_> = (0..8)
    ///     .map(|_| pool.run(&net, || std::fs::read_to_string("/proc/thread-self/net/dev")))
    ///     .collect::<Result<_, _>>()?;
    /// for p in pending {
    ///     p.wait()??;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] when a thread cannot be spawned.
    pub fn with_threads(threads: usize) -> Result<NamespaceRunner> {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel();
        let (control_tx, control_rx) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let jobs = Arc::new(Mutex::new(rx));
        let (started_tx, started_rx) = mpsc::channel();
        let supervisor = {
            let stats = stats.clone();
            let control_tx = control_tx.clone();
            std::thread::Builder::new()
                .name("ns-runner-supervisor".to_owned())
                .spawn(move || supervise(jobs, control_rx, control_tx, stats, started_tx, threads))
                .map_err(io_error(STARTING, "spawning its supervisor thread"))?
        };
        // The first worker must exist before `new` returns.
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Error::Invalid {
                    what: "starting a namespace runner".to_owned(),
                    reason: "its supervisor thread ended".to_owned(),
                })
            }
        }
        Ok(NamespaceRunner {
            tx: Mutex::new(tx),
            control: Mutex::new(control_tx),
            supervisor: Some(supervisor),
            stats,
            threads,
        })
    }

    /// How many `setns` calls the runner has made so far (entering a namespace, or moving
    /// back to an original one). Consecutive closures for the same namespace add none.
    pub fn switches(&self) -> u64 {
        self.stats.switches.load(Ordering::Relaxed)
    }

    /// How many threads the runner has retired because a closure left them in namespaces
    /// they could not leave.
    pub fn retired(&self) -> u64 {
        self.stats.retired.load(Ordering::Relaxed)
    }

    /// Runs `f` on the runner's thread inside `ns` (the handle is duplicated). Returns at once;
    /// the result arrives through the [`Pending`], which is both a `Future` and has a blocking
    /// [`Pending::wait`].
    ///
    /// # Errors
    /// [`Error::Core`] when the handle cannot be duplicated. Errors of entering the namespace,
    /// and panics, arrive through the `Pending`.
    pub fn run<T, F>(&self, ns: &Namespace, f: F) -> Result<Pending<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let ns = ns.try_clone()?;
        Ok(self.submit(ns, f))
    }

    /// Runs `f` inside the namespace file at `path`, which must be of type `ns_type`.
    ///
    /// # Errors
    /// Those of [`Namespace::open`].
    pub fn run_path<T, F>(
        &self,
        path: impl AsRef<Path>,
        ns_type: NsType,
        f: F,
    ) -> Result<Pending<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let ns = Namespace::open(path, ns_type)?;
        Ok(self.submit(ns, f))
    }

    fn submit<T, F>(&self, ns: Namespace, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let shared = Arc::new(Shared::<T> {
            state: Mutex::new((None, None)),
            ready: Condvar::new(),
            done: std::sync::atomic::AtomicBool::new(false),
        });
        let label = Label::of(&ns);
        let completer = Completer {
            shared: Some(shared.clone()),
            label,
        };
        let task = Box::new(move |setup: Option<Error>| {
            let mut completer = completer;
            match setup {
                Some(e) => completer.complete(Err(e)),
                None => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                    Ok(v) => completer.complete(Ok(v)),
                    Err(p) => completer.complete(Err(Error::Panicked {
                        ns: label.to_string(),
                        message: panic_message(&p),
                    })),
                },
            }
        });
        let job = Job { ns, label, task };
        let sent = self.tx.lock().map(|tx| tx.send(Message::Job(job)));
        // If the thread is gone the job was dropped, and its completer reported RunnerGone.
        let _ = sent;
        Pending { shared }
    }
}

impl Drop for NamespaceRunner {
    fn drop(&mut self) {
        // Queued closures run first; then each worker sees a Stop and the supervisor joins
        // them.
        if let Ok(tx) = self.tx.lock() {
            for _ in 0..self.threads {
                let _ = tx.send(Message::Stop);
            }
        }
        if let Ok(control) = self.control.lock() {
            let _ = control.send(Control::Shutdown);
        }
        if let Some(s) = self.supervisor.take() {
            let _ = s.join();
        }
    }
}

fn supervise(
    jobs: Arc<Mutex<Receiver<Message>>>,
    control: Receiver<Control>,
    control_tx: Sender<Control>,
    stats: Arc<Stats>,
    started: Sender<Result<()>>,
    threads: usize,
) {
    // SAFETY: gettid has no preconditions.
    let supervisor = unsafe { libc::gettid() };
    let start = |workers: &mut Vec<JoinHandle<()>>| -> Result<()> {
        let (jobs, control_tx, stats) = (jobs.clone(), control_tx.clone(), stats.clone());
        let handle = std::thread::Builder::new()
            .name("ns-runner".to_owned())
            .spawn(move || worker(jobs, control_tx, stats, supervisor))
            .map_err(io_error(STARTING, "spawning its thread"))?;
        workers.push(handle);
        Ok(())
    };
    let mut workers = Vec::new();
    let first = (0..threads).try_for_each(|_| start(&mut workers));
    let failed = first.is_err();
    let _ = started.send(first);
    if failed {
        // Stop the workers that did start.
        drop(jobs);
        for w in workers {
            let _ = w.join();
        }
        return;
    }
    while let Ok(Control::Retired) = control.recv() {
        stats.retired.fetch_add(1, Ordering::Relaxed);
        if start(&mut workers).is_err() {
            break;
        }
    }
    for w in workers {
        let _ = w.join();
    }
}

/// `peer`: a thread that shares the process's descriptor table (the supervisor).
fn worker(
    jobs: Arc<Mutex<Receiver<Message>>>,
    control: Sender<Control>,
    stats: Arc<Stats>,
    peer: libc::pid_t,
) {
    let mut state = ThreadState::new(stats, peer);
    loop {
        let message = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let job = match message {
            Ok(Message::Job(job)) => job,
            Ok(Message::Stop) | Err(_) => return,
        };
        let setup = match &mut state {
            Ok(state) => state.prepare(&job.ns).err(),
            Err(e) => Some(Error::Invalid {
                what: format!("running a closure in {}", job.label),
                reason: format!("the runner thread could not record its own namespaces: {e}"),
            }),
        };
        (job.task)(setup);
        let healthy = match &mut state {
            Ok(state) => state.settle(),
            Err(_) => true,
        };
        if !healthy {
            // Retire: this thread's namespaces are unknown. It exits, and the supervisor
            // starts a fresh thread that takes over the queue.
            let _ = control.send(Control::Retired);
            return;
        }
    }
}

/// The runner thread's own namespaces and where it is now.
struct ThreadState {
    /// (type, handle to the thread's original namespace, its (dev, ino)).
    home: Vec<(NsType, Namespace, (u64, u64))>,
    /// The namespace the thread is in now instead of its original one, if any.
    entered: Option<(Namespace, (u64, u64))>,
    /// The thread's root and working directory at home.
    home_fs: FsState,
    /// Root and working directory inside an entered mount namespace (its root, as `setns`
    /// leaves them).
    entered_fs: Option<FsState>,
    /// The thread's credentials when it started; a closure that changed them cannot be
    /// undone (privilege, once dropped, is gone), so the thread is retired.
    creds: Credentials,
    /// The `/proc` the thread started with, and its own namespace directory there.
    proc: OwnedFd,
    ns_dir: OwnedFd,
    /// The signal mask, alternate signal stack and umask the thread started with, put back
    /// after each closure.
    sigmask: libc::sigset_t,
    altstack: libc::stack_t,
    umask: libc::mode_t,
    /// A thread known to share the process's descriptor table, to compare with (`kcmp`);
    /// `None` where `kcmp` cannot tell (no `CONFIG_KCMP`, or a seccomp profile that refuses
    /// it without `CAP_SYS_PTRACE`, as Docker's does).
    files_peer: Option<libc::pid_t>,
    stats: Arc<Stats>,
}

/// A thread's root directory and working directory, held open so they can be restored.
struct FsState {
    root: OwnedFd,
    cwd: OwnedFd,
    key: FsKey,
}

/// `(mount id, dev, ino)` of the root and of the working directory: the mount id tells a
/// bind mount from the directory it shows.
type FsKey = [(u64, u64, u64); 2];

impl FsState {
    fn capture() -> std::io::Result<FsState> {
        Ok(FsState {
            root: open_dir(c"/")?,
            cwd: open_dir(c".")?,
            key: fs_key()?,
        })
    }

    /// Puts the calling thread's root and working directory back (`fchdir` to the root,
    /// `chroot(".")`, `fchdir` to the working directory), if they changed.
    fn restore(&self) -> bool {
        if fs_key().ok() == Some(self.key) {
            return true;
        }
        // SAFETY: fchdir/chroot on descriptors this state owns; they affect only this
        // thread, which does not share its filesystem state (unshare(CLONE_FS)).
        unsafe {
            if libc::fchdir(self.root.as_raw_fd()) != 0
                || libc::chroot(c".".as_ptr()) != 0
                || libc::fchdir(self.cwd.as_raw_fd()) != 0
            {
                return false;
            }
        }
        fs_key().ok() == Some(self.key)
    }
}

fn fs_key() -> std::io::Result<FsKey> {
    Ok([statx_key(c"/")?, statx_key(c".")?])
}

fn statx_key(path: &std::ffi::CStr) -> std::io::Result<(u64, u64, u64)> {
    // SAFETY: an all-zero statx is valid storage for the kernel to fill.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a live, writable statx.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            0,
            libc::STATX_INO | libc::STATX_MNT_ID,
            &mut st,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let dev = libc::makedev(st.stx_dev_major, st.stx_dev_minor);
    Ok((st.stx_mnt_id, dev, st.stx_ino))
}

/// What a closure could change about the thread's identity, privilege and confinement, read
/// with a few cheap system calls: ids, groups, the effective, permitted, inheritable,
/// bounding and ambient capability sets, securebits, `no_new_privs`, the seccomp mode (and
/// the filter count, from `/proc`, only when the thread already had filters).
#[derive(Debug, PartialEq, Eq)]
struct Credentials {
    uids: [libc::uid_t; 3],
    gids: [libc::gid_t; 3],
    groups: Vec<libc::gid_t>,
    /// capget's two `{effective, permitted, inheritable}` triples (capabilities 0-31, 32-63).
    caps: [u32; 6],
    bounding: u64,
    ambient: u64,
    securebits: libc::c_int,
    no_new_privs: libc::c_int,
    seccomp_mode: libc::c_int,
    seccomp_filters: Option<String>,
}

use crate::sys::cap_last;

impl Credentials {
    /// The calling thread's credentials (the kernel keeps them per thread). `proc` is the
    /// `/proc` the thread started with, read only when the thread has seccomp filters.
    fn current(proc: &OwnedFd) -> std::io::Result<Credentials> {
        let (mut uids, mut gids) = ([0; 3], [0; 3]);
        // SAFETY: each call writes only into the live buffers passed.
        let ok = unsafe {
            libc::getresuid(&mut uids[0], &mut uids[1], &mut uids[2]) == 0
                && libc::getresgid(&mut gids[0], &mut gids[1], &mut gids[2]) == 0
        };
        if !ok {
            return Err(std::io::Error::last_os_error());
        }
        let caps = ns_sys::cred::capget()?;
        let mut buf = [0 as libc::gid_t; 64];
        // SAFETY: getgroups writes at most `buf.len()` ids.
        let n = unsafe { libc::getgroups(buf.len() as libc::c_int, buf.as_mut_ptr()) };
        let groups = if n >= 0 {
            buf[..n as usize].to_vec()
        } else {
            // More than fit: ask for the count, then read them all.
            // SAFETY: with size 0 getgroups only returns the count.
            let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) }.max(0) as usize;
            let mut all = vec![0; count];
            // SAFETY: `all` has room for `count` ids.
            let n = unsafe { libc::getgroups(count as libc::c_int, all.as_mut_ptr()) };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            all.truncate(n as usize);
            all
        };
        let prctl = |op: libc::c_int, arg: libc::c_ulong| {
            // SAFETY: prctl queries with integer arguments only.
            unsafe { libc::prctl(op, arg, 0, 0, 0) }
        };
        let mut bounding = 0u64;
        for cap in 0..=cap_last() {
            if prctl(libc::PR_CAPBSET_READ, cap.into()) == 1 {
                bounding |= 1 << cap;
            }
        }
        // Ambient capabilities are always within permitted and inheritable: ask only there.
        // capget's version-3 layout: {effective, permitted, inheritable} for capabilities
        // 0-31, then the same for 32-63.
        let perm = u64::from(caps[1]) | (u64::from(caps[4]) << 32);
        let inh = u64::from(caps[2]) | (u64::from(caps[5]) << 32);
        let mut ambient = 0u64;
        for cap in 0..=cap_last() {
            // SAFETY: a prctl query with integer arguments only.
            let set = || unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong,
                    libc::c_ulong::from(cap),
                    0,
                    0,
                )
            };
            if ((perm & inh) >> cap) & 1 == 1 && set() == 1 {
                ambient |= 1 << cap;
            }
        }
        let seccomp_mode = prctl(libc::PR_GET_SECCOMP, 0);
        let seccomp_filters = if seccomp_mode == 2 {
            Some(seccomp_filters(proc)?)
        } else {
            None
        };
        Ok(Credentials {
            uids,
            gids,
            groups,
            caps,
            bounding,
            ambient,
            securebits: prctl(libc::PR_GET_SECUREBITS, 0),
            no_new_privs: prctl(libc::PR_GET_NO_NEW_PRIVS, 0),
            seccomp_mode,
            seccomp_filters,
        })
    }
}

/// The `Seccomp_filters:` line of the thread's status: how many filters it has (5.9).
fn seccomp_filters(proc: &OwnedFd) -> std::io::Result<String> {
    // SAFETY: a NUL-terminated path relative to a live directory descriptor.
    let fd = unsafe {
        libc::openat(
            proc.as_raw_fd(),
            c"thread-self/status".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nobody else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text)?;
    Ok(text
        .lines()
        .find(|l| l.starts_with("Seccomp_filters:"))
        .unwrap_or("")
        .to_owned())
}

impl ThreadState {
    fn new(stats: Arc<Stats>, peer: libc::pid_t) -> Result<ThreadState> {
        // A private fs state, so that mount namespaces can be entered by this thread alone.
        // SAFETY: CLONE_FS splits only root, cwd and umask, which this thread owns from now on.
        unsafe { ns_sys::unshare(ns_sys::CLONE_FS) }
            .map_err(io_error(STARTING, "unshare(CLONE_FS)"))?;
        let proc = open_dir(c"/proc").map_err(io_error(STARTING, "opening /proc"))?;
        let ns_dir = open_dir(c"/proc/thread-self/ns")
            .map_err(io_error(STARTING, "opening its /proc namespace directory"))?;
        // SAFETY: all-zero structures are valid storage for the queries below, which write
        // only into them.
        let (sigmask, altstack, umask) = unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            let mut stack: libc::stack_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut mask);
            libc::sigaltstack(std::ptr::null(), &mut stack);
            // umask sets and returns: the old value goes straight back (no closure runs yet).
            let umask = libc::umask(0o022);
            libc::umask(umask);
            (mask, stack, umask)
        };
        let files_peer = shares_files(peer).then_some(peer);
        let mut home = Vec::new();
        for t in RUNNABLE {
            let ns = if t == NsType::PID {
                Namespace::for_children(t)?
            } else {
                Namespace::current(t)?
            };
            let key = key_of(&ns)?;
            home.push((t, ns, key));
        }
        Ok(ThreadState {
            home,
            entered: None,
            home_fs: FsState::capture().map_err(io_error(
                STARTING,
                "recording its root and working directory",
            ))?,
            entered_fs: None,
            creds: Credentials::current(&proc)
                .map_err(io_error(STARTING, "recording its credentials"))?,
            proc,
            ns_dir,
            sigmask,
            altstack,
            umask,
            files_peer,
            stats,
        })
    }

    /// Puts the thread in its original namespaces except `ns`, which it enters.
    fn prepare(&mut self, ns: &Namespace) -> Result<()> {
        let t = ns.ns_type();
        if matches!(t, NsType::USER | NsType::TIME) {
            let threads = ns_core::thread_count().unwrap_or(0);
            let rule = if t == NsType::USER {
                ThreadRule::UserNeedsSingleThread { threads }
            } else {
                ThreadRule::TimeNeedsSingleThread { threads }
            };
            return Err(Error::Core(ns_core::Error::ThreadRule {
                context: ns_core::Context::new(ns_core::Op::Enter, t, ns.origin().clone()),
                rule,
            }));
        }
        let want = key_of(ns)?;
        if let Some((current, key)) = &self.entered {
            if current.ns_type() == t && *key == want {
                return Ok(());
            }
            let back = current.ns_type();
            self.go_home(back)?;
        }
        if self.home_key(t) == Some(want) {
            return Ok(());
        }
        self.stats.switches.fetch_add(1, Ordering::Relaxed);
        ns.enter()?;
        self.entered = Some((ns.try_clone()?, want));
        if t == NsType::MNT {
            // setns left root and working directory at the namespace's root.
            self.entered_fs = Some(FsState::capture().map_err(io_error(
                "running a closure in a mount namespace",
                "recording its root",
            ))?);
        }
        Ok(())
    }

    fn home_key(&self, t: NsType) -> Option<(u64, u64)> {
        self.home
            .iter()
            .find(|(ht, _, _)| *ht == t)
            .map(|(_, _, k)| *k)
    }

    fn go_home(&mut self, t: NsType) -> Result<()> {
        if let Some((_, ns, _)) = self.home.iter().find(|(ht, _, _)| *ht == t) {
            self.stats.switches.fetch_add(1, Ordering::Relaxed);
            ns.enter()?;
        }
        self.entered = None;
        self.entered_fs = None;
        // Moving back into the original mount namespace resets root and working directory.
        if t == NsType::MNT && !self.home_fs.restore() {
            return Err(Error::Invalid {
                what: "moving a runner thread back to its mount namespace".to_owned(),
                reason: "its root and working directory could not be restored".to_owned(),
            });
        }
        Ok(())
    }

    /// After a closure: checks every namespace of the thread against where it should be and
    /// moves it back where needed, then its root and working directory, then its
    /// credentials. Returns false when the thread cannot be brought back.
    fn settle(&mut self) -> bool {
        // Root and working directory first (from held descriptors, no /proc needed), so that
        // the namespace check below reads the real /proc; again after it, since moving back
        // into a mount namespace resets both.
        let restored = |state: &ThreadState| {
            state
                .entered_fs
                .as_ref()
                .unwrap_or(&state.home_fs)
                .restore()
        };
        if !restored(self) || !self.settle_namespaces() || !restored(self) {
            return false;
        }
        // SAFETY: restoring this thread's own signal mask, alternate stack and umask (its
        // fs state is its own since unshare(CLONE_FS)) as they were.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.sigmask, std::ptr::null_mut());
            libc::sigaltstack(&self.altstack, std::ptr::null_mut());
            libc::umask(self.umask);
        }
        // A thread that unshared its descriptor table would make later closures' descriptors
        // mean other files in the rest of the process.
        if let Some(peer) = self.files_peer {
            if !shares_files(peer) {
                return false;
            }
        }
        Credentials::current(&self.proc).ok().as_ref() == Some(&self.creds)
    }

    fn settle_namespaces(&mut self) -> bool {
        for (t, home_ns, home_key) in &self.home {
            let expected = match &self.entered {
                Some((ns, key)) if ns.ns_type() == *t => (ns, *key),
                _ => (home_ns, *home_key),
            };
            match current_key(&self.ns_dir, *t) {
                Ok(k) if k == expected.1 => continue,
                _ => {
                    self.stats.switches.fetch_add(1, Ordering::Relaxed);
                    if expected.0.enter().is_err()
                        || current_key(&self.ns_dir, *t).ok() != Some(expected.1)
                    {
                        return false;
                    }
                    if *t == NsType::MNT && self.entered.is_none() && !self.home_fs.restore() {
                        return false;
                    }
                }
            }
        }
        true
    }
}

/// Whether the calling thread shares its descriptor table with thread `peer` (`kcmp`).
fn shares_files(peer: libc::pid_t) -> bool {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    matches!(
        ns_sys::ns::kcmp(peer, tid, ns_sys::ns::KCMP_FILES, 0, 0),
        Ok(0)
    )
}

/// `(dev, ino)` of a namespace handle: its identity for as long as it is held open (one
/// `fstat`; the never-reused `NS_GET_ID` is not needed while the handle pins it).
fn key_of(ns: &Namespace) -> Result<(u64, u64)> {
    // SAFETY: an all-zero stat is valid storage for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat of a live descriptor into a live, writable stat.
    if unsafe { libc::fstat(std::os::fd::AsFd::as_fd(ns).as_raw_fd(), &mut st) } != 0 {
        return Err(Error::Core(ns_core::Error::os(
            ns_core::Context::new(ns_core::Op::Identify, ns.ns_type(), ns.origin().clone()),
            std::io::Error::last_os_error(),
        )));
    }
    Ok((st.st_dev, st.st_ino))
}

/// What a job's namespace is called in messages, built only when a message is needed.
#[derive(Clone, Copy)]
struct Label {
    ns_type: NsType,
    ino: Option<u64>,
}

impl Label {
    fn of(ns: &Namespace) -> Label {
        Label {
            ns_type: ns.ns_type(),
            ino: key_of(ns).ok().map(|(_, ino)| ino),
        }
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.ns_type.name().unwrap_or("?");
        match self.ino {
            Some(ino) => write!(f, "{name} namespace {name}:[{ino}]"),
            None => f.write_str("a namespace"),
        }
    }
}

/// `(dev, ino)` of the calling thread's namespace of type `t` (pid: for its children), read
/// through the thread's own `/proc/thread-self/ns` directory, opened when it started: the
/// mount namespace a closure runs in may have no `/proc`, or one of another pid namespace.
fn current_key(ns_dir: &OwnedFd, t: NsType) -> std::io::Result<(u64, u64)> {
    let name = match t {
        NsType::PID => c"pid_for_children",
        NsType::NET => c"net",
        NsType::UTS => c"uts",
        NsType::IPC => c"ipc",
        NsType::CGROUP => c"cgroup",
        _ => c"mnt",
    };
    // SAFETY: an all-zero stat is valid storage for fstatat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated name relative to a live directory descriptor.
    if unsafe { libc::fstatat(ns_dir.as_raw_fd(), name.as_ptr(), &mut st, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}

/// Opens a directory as a handle (`O_PATH`).
fn open_dir(path: &std::ffi::CStr) -> std::io::Result<OwnedFd> {
    crate::sys::open_cloexec(path, libc::O_PATH | libc::O_DIRECTORY)
}

fn panic_message(p: &Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

struct Shared<T> {
    state: Mutex<(Option<Result<T>>, Option<Waker>)>,
    ready: Condvar,
    /// Set once the result is stored, so that a waiter can spin briefly before it sleeps.
    done: std::sync::atomic::AtomicBool,
}

/// Completes a [`Pending`] exactly once; if dropped first (the job never ran), completes it
/// with [`Error::RunnerGone`].
struct Completer<T> {
    shared: Option<Arc<Shared<T>>>,
    label: Label,
}

impl<T> Completer<T> {
    fn complete(&mut self, result: Result<T>) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let waker = match shared.state.lock() {
            Ok(mut state) => {
                state.0 = Some(result);
                state.1.take()
            }
            Err(_) => None,
        };
        shared.done.store(true, Ordering::Release);
        shared.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if self.shared.is_some() {
            let ns = self.label.to_string();
            self.complete(Err(Error::RunnerGone { ns }));
        }
    }
}

/// The result of a closure handed to a [`NamespaceRunner`]: a `Future` usable from any async
/// runtime (no runtime is needed), or a value to [`wait`](Pending::wait) for.
pub struct Pending<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Pending<T> {
    /// Blocks until the closure has run (or could not run) and returns its result.
    ///
    /// # Errors
    /// Entering the namespace failed ([`Error::Core`]), the closure panicked
    /// ([`Error::Panicked`]) or the runner went away first ([`Error::RunnerGone`]).
    pub fn wait(self) -> Result<T> {
        // Most closures are short: watch for the result for a few microseconds before
        // sleeping on the condition variable (as std's channels do before they park).
        let start = std::time::Instant::now();
        while !self.shared.done.load(Ordering::Acquire)
            && start.elapsed() < std::time::Duration::from_micros(50)
        {
            std::hint::spin_loop();
        }
        let mut state = match self.shared.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        loop {
            if let Some(result) = state.0.take() {
                return result;
            }
            state = match self.shared.ready.wait(state) {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
        }
    }

    /// Whether the result is there, so that [`Pending::wait`] would not block.
    pub fn is_ready(&self) -> bool {
        self.shared
            .state
            .lock()
            .map(|s| s.0.is_some())
            .unwrap_or(true)
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut state = match self.shared.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        match state.0.take() {
            Some(result) => Poll::Ready(result),
            None => {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl std::fmt::Debug for NamespaceRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceRunner").finish_non_exhaustive()
    }
}
