//! Everything that runs between `clone3` (or `clone`) and `execve`/`_exit`.
//!
//! The tasks of one spawn are the *intermediate* (enters the target's namespaces), the *pid
//! stage* (only when a target's PID namespace is entered *and* a new one is created inside it)
//! and the *child* (sets itself up and runs the program or closure). They run code from this
//! module only, against a [`Plan`] that the caller prepared completely before the first clone:
//! every path is a `CString`, every buffer and descriptor exists. The code here makes system
//! calls from the short async-signal-safe list of `signal-safety(7)` (setns, unshare, clone3,
//! clone, openat, read, write, close, poll, dup2, fcntl, close_range, sethostname, chdir,
//! prctl, sigaction, sigprocmask, futex, execve, _exit), makes setgroups/setgid/setuid as raw
//! system calls (glibc's wrappers take a lock and signal every thread of the creator: see
//! `ns_sys::cred`), and never allocates, locks, formats or panics: no `unwrap`, no indexing
//! or arithmetic that can fail, no `String`. The lints below make the compiler hold it to
//! that.
//!
//! Waiting points, and what ends each when the process it waits for dies:
//! - a creator suspended by `CLONE_VFORK`: the kernel wakes it when the task exits or execs;
//! - a creator that wrote the child's id maps waits on the child's `CLONE_CHILD_CLEARTID`
//!   word, which the kernel clears (and wakes) when the child execs or exits, so the caller's
//!   memory is never freed while the child still runs on it;
//! - the child waiting for its maps polls the release pipe (its own copy of the write end is
//!   closed first) *and* a pidfd of the calling process, so it ends when its creator gives up
//!   or the caller dies, whoever else holds the pipe.
//!
//! Failures are reported as plain integers (task, step, detail, errno) in the shared
//! [`Report`] page and, for a child that has its own memory, on the status pipe; then the
//! task `_exit`s.
//!
//! The stages, one file each, in the order they run; [`setup`] is the child's whole order:
//! - `entry.rs`: intermediate, pid stage, creating the child and the handshake; in the
//!   child, waiting for the maps and making the time namespace;
//! - `fds.rs`: the given descriptors moved into place, every other inherited one closed
//!   (before any path of the container is touched), the OOM score written and the spawn's
//!   `/proc` descriptor closed;
//! - `mounts.rs`: propagation of `/`, the mounts, the new root;
//! - `privileges.rs` (before credentials): session, terminal, rlimits, bounding set,
//!   keeping capabilities across the uid change;
//! - `credentials.rs`: groups, gid, uid, parent-death signal;
//! - `privileges.rs` (after credentials): capability sets, ambient, securebits,
//!   `no_new_privs`, umask;
//! - `exec.rs`: signal dispositions and mask, the caller's `pre_exec` hooks, the seccomp
//!   filter, then `execve`; or the closure.
//!
//! This module holds the plan, the report page, failure recording, the `clone3`/`clone`
//! choice and the child's entry point.
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo
)]

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use std::os::fd::BorrowedFd;

use libc::{c_char, c_int, c_void, pid_t};
use ns_core::EntryPlan;
use ns_sys::{clone3_on_stack, clone_args, clone_on_stack};

use crate::error::Step;

mod credentials;
mod entry;
mod exec;
mod fds;
mod mounts;
mod paths;
mod privileges;

use credentials::{credentials, parent_death_signal};
pub(crate) use entry::{await_child, create_child, intermediate_main};
use entry::{await_release, time_namespace};
use exec::{finish, reset_signals};
pub(crate) use exec::{spawn_fd_main, SpawnFd};
pub(crate) use fds::MAX_MOVES;
use fds::{cloexec_from_3, close_inherited, close_internal_fds, close_proc, move_fds};
pub(crate) use mounts::{MountStep, RootChange};
pub(crate) use privileges::Privileges;

/// The task a failure happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Task {
    /// The caller itself, creating the child directly.
    Caller = 0,
    /// The intermediate process that enters the target's namespaces.
    Intermediate = 1,
    /// The process that lives in the target's PID namespace and creates a new one below it.
    PidStage = 2,
    /// The final child.
    Child = 3,
}

/// Record kinds on the status pipe.
pub(crate) const RECORD_FAILED: u32 = 1;

/// The child finished its setup and is about to call the closure.
pub(crate) const RECORD_READY: u32 = 2;

/// One record on the status pipe: kind, task, step, detail, errno.
pub(crate) type Record = [u32; 5];

/// What the tasks of one spawn tell the caller: a `MAP_SHARED` page, so that tasks with
/// their own copy of memory write to the same place. The kernel fills the PID and pidfd
/// fields itself (`CLONE_PARENT_SETTID`, `CLONE_PIDFD`) at the moment each task is created,
/// so the caller learns about every task even if its creator is killed right after. (The
/// legacy `clone` cannot do both at once; there the creator stores the PID itself.)
#[repr(C)]
pub(crate) struct Report {
    pub intermediate_pid: AtomicI32,
    pub intermediate_pidfd: AtomicI32,
    pub pid_stage_pid: AtomicI32,
    pub pid_stage_pidfd: AtomicI32,
    /// The child's PID as seen from its creator's PID namespace.
    pub child_pid: AtomicI32,
    /// The child's pidfd, in the caller's descriptor table.
    pub child_pidfd: AtomicI32,
    /// The child's `child_tid` word: [`NOT_STARTED`] until the child first runs (the legacy
    /// `clone` stores its thread id there, `CLONE_CHILD_SETTID`), 0 once it stops using the
    /// memory it shares with its creator (`CLONE_CHILD_CLEARTID`: the kernel clears it at
    /// exec or exit and wakes futex waiters).
    pub child_word: AtomicU32,
    /// The pid stage's `CLONE_CHILD_SETTID` word (legacy `clone` only): proof that it exists.
    pub pid_stage_word: AtomicU32,
    /// Set by the intermediate and the pid stage as their very last act, after everything
    /// they created has exec'd or exited: a task that ends without it did not finish.
    pub intermediate_done: AtomicU32,
    pub pid_stage_done: AtomicU32,
    pub failed: AtomicU32,
    pub task: AtomicU32,
    pub step: AtomicU32,
    pub detail: AtomicI32,
    pub errno: AtomicI32,
}

/// Hooks run in the child right before `execve` (`NsCommand::pre_exec`).
pub(crate) type PreExecHooks = Vec<Box<dyn FnMut() -> std::io::Result<()> + Send + Sync>>;

/// A seccomp filter program prepared by the caller; a null `ptr` means none.
#[derive(Clone, Copy)]
pub(crate) struct Filter {
    pub ptr: *const libc::sock_filter,
    pub len: usize,
}

/// The initial value of the `child_tid` words: no task has written there yet.
pub(crate) const NOT_STARTED: u32 = u32::MAX;

/// A byte string prepared by the caller; a null `ptr` means "none".
#[derive(Clone, Copy)]
pub(crate) struct Buf {
    pub ptr: *const u8,
    pub len: usize,
}

impl Buf {
    pub(crate) const NONE: Buf = Buf {
        ptr: std::ptr::null(),
        len: 0,
    };

    pub(crate) fn of(bytes: &[u8]) -> Buf {
        Buf {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    fn is_some(&self) -> bool {
        !self.ptr.is_null()
    }

    fn bytes(&self) -> &[u8] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: the caller keeps `len` bytes at `ptr` alive for the whole spawn.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// What the child finally does.
pub(crate) enum Action {
    /// Try `execve` on each candidate path in turn (a PATH search prepared in advance).
    Exec {
        candidates: *const *const c_char,
        argv: *const *const c_char,
        envp: *const *const c_char,
    },
    /// Call a closure and exit with its result.
    Call {
        data: *mut c_void,
        call: unsafe fn(*mut c_void) -> c_int,
    },
}

/// Everything the tasks of one spawn need, prepared before the first clone.
pub(crate) struct Plan<'a> {
    pub report: *const Report,
    /// `clone3` works here; else every task is created with the legacy `clone`.
    pub use_clone3: bool,
    // The intermediate.
    pub entry: Option<EntryPlan<'a>>,
    pub pid_stage: bool,
    pub pid_stage_stack: (u64, u64),
    /// The intermediate has its own copy of the caller's memory.
    pub private_memory: bool,
    /// The target's pid namespace, entered by the child for its children before anything
    /// else (while it still holds the privilege): the trampoline then creates the program's
    /// process there (`Trampoline::fork_page`), and no task of the spawn that shares (or
    /// copies) the caller's memory ever lives in that namespace.
    pub pid_at_fork: Option<EntryPlan<'a>>,
    /// The child makes `entry` itself (there is no intermediate), before `pid_at_fork`.
    pub child_enters: bool,
    /// Both are one `setns` of the same pidfd: the child makes them as one call.
    pub pid_joined: bool,
    /// The caller's memory is hidden (non-dumpable) for this spawn: set again after entering
    /// a user namespace, which may reset it (`fs.suid_dumpable`).
    pub hide_memory: bool,
    /// For tests: the intermediate waits for one byte on this descriptor before creating the
    /// child, or (`pause_after_child`) right after creating it, before the handshake, so that
    /// a test can kill a process of the spawn at a known point.
    pub pause_fd: c_int,
    pub pause_after_child: bool,
    // Creating the child.
    pub child_flags: u64,
    pub child_exit_signal: u64,
    pub child_stack: (u64, u64),
    pub cgroup_fd: c_int,
    /// After the handshake the creator waits until the child has left the memory they share.
    pub await_child: bool,
    // The creator's side of the handshake.
    pub handshake: bool,
    pub proc_fd: c_int,
    pub uid_map: Buf,
    pub gid_map: Buf,
    pub setgroups_deny: bool,
    pub cgroup_procs_fd: c_int,
    // The child's own setup, first: joining its cgroup v1 hierarchies (the `tasks` files),
    // then making its cgroup namespace, rooted there.
    pub cgroup_tasks: *const c_int,
    pub cgroup_tasks_len: usize,
    pub late_cgroupns: bool,
    pub release_r: c_int,
    pub release_w: c_int,
    /// A pidfd of the calling process: readable once it has died.
    pub caller_pidfd: c_int,
    pub status_w: c_int,
    // The child's own setup.
    pub new_time: bool,
    /// The child shares its creator's memory, so the kernel moves it into the new time
    /// namespace at `execve` (Linux 6.0); it must not try to move itself.
    pub time_at_exec: bool,
    pub time_offsets: Buf,
    pub hostname: Buf,
    /// `MS_PRIVATE`, `MS_SLAVE` or `MS_SHARED` for `/`, recursively, or 0.
    pub propagation: libc::c_ulong,
    pub mounts: *const MountStep,
    pub mounts_len: usize,
    /// Mount with the new mount API (else the classic `mount(2)`).
    pub new_mount_api: bool,
    /// Run in a closure child before the closure: drops the caller-side state that other
    /// threads may have held at the fork (async-signal-safe; prepared by the spawn).
    pub after_fork: fn(),
    /// Make the child non-dumpable (a closure child, unless asked otherwise): at its start,
    /// after its credentials change (which may reset it) and before the closure runs.
    pub non_dumpable: bool,
    /// Make the closure child dumpable (`NsCommand::dumpable(true)`), at the same points.
    pub dumpable: bool,
    /// Resolve in-root targets by the walk used before Linux 5.6, even where `openat2` works
    /// (a test hook).
    pub resolve_walk: bool,
    pub root_change: RootChange,
    /// The child made a user namespace with id maps: it takes that namespace's root ids
    /// (where mapped) before its setup.
    pub become_ns_root: bool,
    /// After the root change, make the new root's own mount read-only.
    pub read_only_root: bool,
    /// After the root change, `MS_PRIVATE`/`MS_SLAVE`/`MS_SHARED`/`MS_UNBINDABLE` for the
    /// new root and everything below it, or 0.
    pub root_propagation: libc::c_ulong,
    pub root: *const c_char,
    /// The child makes a mount namespace of its own (a `chroot` then moves the root onto `/`).
    pub new_mount_ns: bool,
    /// Mount points to detach (or cover) before a `chroot`: `outside_root_len` paths.
    pub outside_root: *const *const c_char,
    pub outside_root_len: usize,
    pub moves: *const (c_int, c_int),
    pub moves_len: usize,
    /// Lowest number for the temporary copies made while moving descriptors: above every
    /// number the child is given.
    pub move_floor: c_int,
    pub close_fds: bool,
    pub groups: *const libc::gid_t,
    pub groups_len: usize,
    pub set_groups: bool,
    /// A uid is set, no groups are, and the caller is root: drop the supplementary groups
    /// before the uid change (ignoring a refusal), as std does.
    pub drop_groups: bool,
    /// `setpgid(0, pgroup)`, or -1 for none.
    pub pgroup: pid_t,
    pub gid: Option<libc::gid_t>,
    pub uid: Option<libc::uid_t>,
    pub privileges: Privileges,
    pub cwd: *const c_char,
    /// The directory is tried before the credentials change too.
    pub cwd_first: bool,
    pub pdeathsig: c_int,
    /// The caller's `pre_exec` hooks, or null.
    pub pre_exec: *mut PreExecHooks,
    /// A listening socket the child accepts one connection on before executing the program
    /// (`NsCommand::hold_before_exec`), or -1.
    pub hold_fd: c_int,
    /// A connected socket to send the pseudo-terminal's master to (`NsCommand::terminal`),
    /// or -1; and the window size (rows, columns; 0 for none).
    pub console_fd: c_int,
    pub winsize: (u16, u16),
    /// Kernel parameters to write: (path under the child's `/proc/sys`, value).
    pub sysctls: *const (*const c_char, Buf),
    pub sysctls_len: usize,
    /// A classic BPF program for `seccomp(SECCOMP_SET_MODE_FILTER)`, installed last.
    pub seccomp: Filter,
    /// The filter is installed before the credentials and capabilities change (there is no
    /// `no_new_privs`), not last.
    pub seccomp_early: bool,
    pub reset_handlers: bool,
    pub sigpipe_default: bool,
    pub sigmask: libc::sigset_t,
    pub internal_fds: [c_int; 10],
    pub action: Action,
    /// Executing the program through the user-namespace trampoline (`crate::trampoline`).
    pub trampoline: Trampoline,
}

/// The user-namespace trampoline of a spawn: the child executes it instead of the program,
/// and it enters the user namespace, changes directory and executes the program.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trampoline {
    /// The executable (a memfd), or -1 when the spawn does not use the trampoline.
    pub image: c_int,
    /// The namespaces it enters, in order (descriptor, `nstype`; -1 after the last), the
    /// target's user namespace among them; kept open across the exec of the trampoline, as
    /// are the status pipe and (unless it creates the program's process) the caller's pidfd.
    pub namespaces: [(c_int, c_int); 8],
    /// The trampoline's argv (its arguments, the PATH candidates, the program's argv).
    pub argv: *const *const c_char,
    /// The same with no working directory (the child changed it already).
    pub argv_cwd_done: *const *const c_char,
    /// The page the trampoline maps shared to learn the pid of the program's process, which
    /// it creates (a memfd kept open across the exec), or -1 when it executes the program
    /// itself.
    pub fork_page: c_int,
    /// The trampoline sets the bounding, capability and ambient sets (after entering the
    /// user namespace): the child leaves them.
    pub caps: bool,
    /// The program's process (created by the trampoline) starts the session and takes the
    /// terminal: the child leaves them.
    pub session: bool,
    /// The trampoline installs the seccomp filter: the child leaves it.
    pub filter: bool,
}

impl Trampoline {
    pub(crate) const NONE: Trampoline = Trampoline {
        image: -1,
        namespaces: [(-1, 0); 8],
        argv: std::ptr::null(),
        argv_cwd_done: std::ptr::null(),
        fork_page: -1,
        caps: false,
        session: false,
        filter: false,
    };

    pub(crate) fn is_used(&self) -> bool {
        self.image >= 0
    }

    /// The trampoline enters a user namespace (else it is the exec relay only).
    pub(crate) fn enters_user(&self) -> bool {
        self.is_used() && self.namespaces[0].0 >= 0
    }

    /// The trampoline creates the program's process (and installs the seccomp filter).
    pub(crate) fn forks(&self) -> bool {
        self.is_used() && self.fork_page >= 0
    }
}

/// The detail of a [`Step::Exec`] failure of executing the trampoline itself (0: the
/// program).
pub(crate) const EXEC_TRAMPOLINE: i32 = 1;

/// The detail of a [`Step::CreateChild`] failure in the trampoline, which creates the
/// program's process in the target's pid namespace (`clone3`, or `clone`).
pub(crate) const CREATE_BY_IMAGE: i32 = 2;

/// The detail of a [`Step::CreateChild`] failure in the trampoline while mapping the page
/// the kernel writes the program's pid to.
pub(crate) const CREATE_BY_IMAGE_PAGE: i32 = 3;

fn errno() -> c_int {
    // SAFETY: __errno_location always returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn os_errno(e: &std::io::Error) -> c_int {
    e.raw_os_error().unwrap_or(libc::EINVAL)
}

fn report<'p>(plan: &'p Plan<'_>) -> &'p Report {
    // SAFETY: the report page stays mapped until every task of the spawn is gone.
    unsafe { &*plan.report }
}

/// Records a failure in the report page (and on the status pipe, for the child).
fn record(plan: &Plan<'_>, task: Task, step: Step, detail: i32, err: c_int) {
    let report = report(plan);
    report.task.store(task as u32, Ordering::Relaxed);
    report.step.store(step as u32, Ordering::Relaxed);
    report.detail.store(detail, Ordering::Relaxed);
    report.errno.store(err, Ordering::Relaxed);
    report.failed.store(1, Ordering::Release);
    if task == Task::Child && plan.status_w >= 0 {
        let rec: Record = [
            RECORD_FAILED,
            task as u32,
            step as u32,
            detail as u32,
            err as u32,
        ];
        // SAFETY: writing a small record (atomic below PIPE_BUF) from a live buffer.
        unsafe {
            libc::write(
                plan.status_w,
                rec.as_ptr() as *const c_void,
                std::mem::size_of::<Record>(),
            )
        };
    }
}

fn fail(plan: &Plan<'_>, task: Task, step: Step, detail: i32, err: c_int) -> ! {
    record(plan, task, step, detail, err);
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(if task == Task::Child { 127 } else { 1 }) }
}

/// Creates a task that starts by calling `entry(arg)` on the stack in `args`: `clone3`, or
/// the legacy `clone` where `clone3` is refused. The legacy call cannot report the PID and
/// the pidfd at once; there the creator stores the PID itself once the call returns.
pub(crate) fn clone_task(
    plan: &Plan<'_>,
    args: &mut clone_args,
    entry: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> Result<pid_t, c_int> {
    if plan.use_clone3 {
        // SAFETY: the caller prepared a stack that stays mapped while the task runs on it,
        // and every address in `args` points into the report page.
        return unsafe { clone3_on_stack(args, entry, arg) }.map_err(|e| os_errno(&e));
    }
    let pid_slot = args.parent_tid;
    let pidfd = args.flags & libc::CLONE_PIDFD as u64 != 0;
    if pidfd {
        // The kernel stores the pidfd number early, even for a clone that then fails, and the
        // creator may be killed before it stores the PID: the task's own CLONE_CHILD_SETTID
        // store (its `child_tid` word, which the plan always provides here) is the proof
        // that it exists.
        args.flags &= !(libc::CLONE_PARENT_SETTID as u64);
        args.parent_tid = 0;
        if args.child_tid != 0 {
            args.flags |= libc::CLONE_CHILD_SETTID as u64;
        }
    }
    // Only clone3 has these; the plan never relies on them without clone3.
    args.flags &= !(ns_sys::CLONE_CLEAR_SIGHAND | ns_sys::CLONE_INTO_CGROUP);
    args.cgroup = 0;
    // SAFETY: as above.
    let pid = unsafe { clone_on_stack(args, entry, arg) }.map_err(|e| os_errno(&e))?;
    if pidfd && pid_slot != 0 {
        // SAFETY: `pid_slot` is the address of an AtomicI32 in the report page.
        unsafe { &*(pid_slot as *const AtomicI32) }.store(pid, Ordering::Release);
    }
    Ok(pid)
}

/// Waits until `fd` or the calling process's pidfd is readable; returns whether the caller
/// died. Interrupted waits are resumed.
fn wait_readable(fd: c_int, caller_pidfd: c_int) -> Result<bool, c_int> {
    loop {
        let mut fds = [fd, caller_pidfd].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: polling two live pollfd structures (a negative fd is ignored).
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            match errno() {
                libc::EINTR => continue,
                e => return Err(e),
            }
        }
        let [_, caller] = fds;
        return Ok(caller.revents != 0);
    }
}

/// Writes decimal digits of `v` (>= 0) at the start of `out`; returns how many.
fn format_int(v: i64, out: &mut [u8]) -> usize {
    let mut tmp = [0u8; 20];
    let mut n = 0usize;
    let mut v = v.max(0) as u64;
    for slot in tmp.iter_mut() {
        *slot = b'0'.saturating_add(v.checked_rem(10).unwrap_or(0) as u8);
        n = n.saturating_add(1);
        v = v.checked_div(10).unwrap_or(0);
        if v == 0 {
            break;
        }
    }
    let digits = tmp.get(..n).unwrap_or(&[]);
    let mut written = 0usize;
    for (slot, d) in out.iter_mut().zip(digits.iter().rev()) {
        *slot = *d;
        written = written.saturating_add(1);
    }
    written
}

fn write_all(fd: c_int, mut bytes: &[u8]) -> Result<(), c_int> {
    while !bytes.is_empty() {
        // SAFETY: writing from a live buffer of the given length.
        let n = unsafe { libc::write(fd, bytes.as_ptr() as *const c_void, bytes.len()) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        bytes = bytes.get(n as usize..).unwrap_or(&[]);
    }
    Ok(())
}

/// Entry point of the child.
pub(crate) extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the caller's Plan (or this task's copy of it), alive until exec/_exit.
    let plan = unsafe { &*(arg as *const Plan<'_>) };
    match setup(plan) {
        Err((step, detail, err)) => fail(plan, Task::Child, step, detail, err),
        Ok(cwd_done) => finish(plan, cwd_done),
    }
}

/// A failed step of the child: (step, detail, errno).
type Failure = (Step, i32, c_int);

/// Joins the cgroup v1 hierarchies (a single-threaded task moving itself: no global lock),
/// then makes the new cgroup namespace, whose root is the cgroup the child is in now.
fn cgroups(plan: &Plan<'_>) -> Result<(), Failure> {
    for i in 0..plan.cgroup_tasks_len {
        // SAFETY: the plan's array holds `cgroup_tasks_len` descriptors, alive until the
        // spawn returns.
        let fd = unsafe { *plan.cgroup_tasks.add(i) };
        let written = write_all(fd, b"0");
        // SAFETY: closing this task's copy of the spawn's descriptor: nothing of the
        // container may hold a cgroup file of the host's.
        unsafe { libc::close(fd) };
        written.map_err(|e| (Step::CgroupAttach, (i as i32).saturating_add(1), e))?;
    }
    if plan.late_cgroupns {
        // SAFETY: only CLONE_NEWCGROUP, which touches nothing but this task's namespaces.
        unsafe { ns_sys::unshare(libc::CLONE_NEWCGROUP) }
            .map_err(|e| (Step::CgroupNamespace, 0, os_errno(&e)))?;
    }
    Ok(())
}

/// The child's setup, in its documented order. Returns whether the working directory is
/// changed already (tried before the credentials change, where the trampoline would change
/// it after).
fn setup(plan: &Plan<'_>) -> Result<bool, Failure> {
    // A child whose id maps its creator writes stays dumpable (as its creator left it)
    // until they are written: the /proc files of a non-dumpable task belong to the root of
    // its user namespace, which has no id yet, so a creator without privilege could not
    // open them (EACCES). Until then the child is in a user namespace of the creator's own,
    // shares nothing with a container and enters nothing; only the creator's own uid could
    // look at it, which can look at the caller.
    let maps_pending =
        plan.handshake && (plan.uid_map.is_some() || plan.gid_map.is_some() || plan.setgroups_deny);
    if !maps_pending {
        non_dumpable(plan);
    }
    // One call where both are one pidfd's; it enters all or nothing, so after a failure the
    // two calls are made as before, for the error that names the step that fails.
    if !(plan.pid_joined && entry::enter_joined(plan)) {
        if plan.child_enters {
            entry::enter(plan).map_err(|f| (Step::EnterNamespaces, f.nstype, f.errno))?;
        }
        if let Some(pid) = &plan.pid_at_fork {
            // For the children only: this task stays where the container cannot see it.
            pid.enter_raw()
                .map_err(|f| (Step::EnterNamespaces, f.nstype, f.errno))?;
        }
    }
    if plan.handshake {
        await_release(plan).map_err(|e| (Step::AwaitRelease, 0, e))?;
    }
    if maps_pending {
        non_dumpable(plan);
    }
    cgroups(plan)?;
    if plan.new_time {
        time_namespace(plan).map_err(|e| (Step::TimeNamespace, 0, e))?;
    }
    if plan.hostname.is_some() {
        // SAFETY: the hostname buffer is prepared and alive.
        if unsafe { libc::sethostname(plan.hostname.ptr as *const c_char, plan.hostname.len) } != 0
        {
            return Err((Step::Hostname, 0, errno()));
        }
    }
    // Descriptors first: nothing inherited may stay open while the container's paths are
    // touched (mounts, root, directory, the program's lookup).
    move_fds(plan).map_err(|(dst, e)| (Step::Descriptor, dst, e))?;
    if plan.close_fds && plan.pre_exec.is_null() {
        close_inherited(plan).map_err(|e| (Step::CloseDescriptors, 0, e))?;
    } else if plan.close_fds {
        // `pre_exec` hooks may use the caller's descriptors (std's contract): they stay
        // open until execve; the working-directory check below still holds.
        cloexec_from_3(plan.proc_fd).map_err(|e| (Step::CloseDescriptors, 0, e))?;
    }
    mounts::propagation(plan)?;
    let mut trees = [-1; mounts::MAX_TREES];
    if plan.become_ns_root {
        // The bind sources first, with the creator's ids (see `open_bind_sources`).
        mounts::open_bind_sources(plan, &mut trees);
        // In the new user namespace the child still has the creator's ids, which it may not
        // map: files it makes (mount points, links) would have no owner there (EOVERFLOW).
        // Its root, where mapped, owns them instead, with every capability kept.
        let _ = ns_sys::cred::setgid(0);
        let _ = ns_sys::cred::setuid(0);
        non_dumpable(plan);
    }
    privileges::oom_score_adj(plan)?;
    if plan.close_fds {
        // A closure child keeps it until `close_internal_fds`, which closes it with the
        // spawn's other descriptors: closed twice, its number could by then name a file of
        // a `pre_exec` hook's.
        close_proc(plan);
    }
    // Kernel parameters before the mounts, through the /proc the child sees now: what
    // /proc/sys shows of the net, ipc and uts parameters belongs to the writer's namespaces,
    // and the container's own read-only paths (a read-only /proc/sys) are not made yet.
    sysctls(plan)?;
    mounts::mounts_and_root(plan, &mut trees)?;
    if plan.console_fd >= 0 {
        terminal(plan).map_err(|(detail, e)| (Step::Terminal, detail, e))?;
    }
    if plan.pgroup >= 0 {
        // SAFETY: setpgid on this task with a plain integer.
        if unsafe { libc::setpgid(0, plan.pgroup) } != 0 {
            return Err((Step::ProcessGroup, plan.pgroup, errno()));
        }
    }
    let cwd_in_image = plan.trampoline.enters_user() || plan.trampoline.forks();
    let mut cwd_done = false;
    // Tried here before the credentials change unless the trampoline sets them (it tries
    // then itself). A path this task cannot resolve as the program would (through
    // /proc/self, in a pid namespace this task is not in) fails here and is tried again.
    // SAFETY: chdir with a prepared, NUL-terminated path.
    if plan.cwd_first
        && !plan.cwd.is_null()
        && !plan.trampoline.enters_user()
        && unsafe { libc::chdir(plan.cwd) } == 0
    {
        if !cwd_under_root() {
            return Err((Step::Chdir, CWD_OUTSIDE_ROOT, libc::EXDEV));
        }
        cwd_done = true;
    }
    if plan.seccomp_early {
        // Without no_new_privs the kernel takes a filter only from a task holding
        // CAP_SYS_ADMIN: installed now, before the capabilities are dropped (runc's order).
        exec::install_filter(plan).map_err(|(step, e)| (step, 0, e))?;
    }
    privileges::before_credentials(plan)?;
    // With the trampoline, groups, gid and uid are set after entering the user namespace.
    if !plan.trampoline.enters_user() {
        credentials(plan)?;
        // A change of credentials resets the flag to `fs.suid_dumpable`.
        non_dumpable(plan);
    }
    privileges::after_credentials(plan)?;
    // With the trampoline, the directory is changed after entering the user namespace, with
    // the container's credentials, as on every other path, or in the program's process the
    // trampoline creates in the target's pid namespace (where a path through /proc/self
    // names that process).
    if !plan.cwd.is_null() && !cwd_in_image && !cwd_done {
        // SAFETY: chdir with a prepared, NUL-terminated path.
        if unsafe { libc::chdir(plan.cwd) } != 0 {
            return Err((Step::Chdir, 0, errno()));
        }
        if !cwd_under_root() {
            return Err((Step::Chdir, CWD_OUTSIDE_ROOT, libc::EXDEV));
        }
    }
    if plan.pdeathsig > 0 {
        parent_death_signal(plan).map_err(|e| (Step::ParentDeathSignal, plan.pdeathsig, e))?;
    }
    reset_signals(plan);
    Ok(cwd_done)
}

/// Makes this task (with memory of its own) non-dumpable where the plan asks: nothing of the
/// container (`/proc/PID/mem`, ptrace) may reach a copy of the caller.
fn non_dumpable(plan: &Plan<'_>) {
    if plan.non_dumpable {
        // SAFETY: prctl with integer arguments on this task.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    } else if plan.dumpable {
        // Asked for: not the flag of the moment this copy was made (another thread's spawn
        // may have the caller's memory hidden then).
        // SAFETY: prctl with integer arguments on this task.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    }
}

/// The detail of a `Step::Chdir` failure whose directory resolved outside the root.
pub(crate) const CWD_OUTSIDE_ROOT: i32 = 1;

/// Whether the working directory is reachable from the root: the kernel's `getcwd` starts
/// the path with `(unreachable)` when it is not (a link through a descriptor of another
/// mount namespace or root).
fn cwd_under_root() -> bool {
    let mut buf = [0u8; 4096];
    // A directory the kernel cannot name in a page (ERANGE, ENAMETOOLONG) counts as outside:
    // the check fails closed.
    match ns_sys::task::getcwd(&mut buf) {
        Ok(n) => n > 0 && buf.first() == Some(&b'/'),
        // A seccomp filter installed early (without no_new_privs) may refuse getcwd: then
        // climb from the directory instead.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::EACCES | libc::ENOSYS)
            ) =>
        {
            climbs_to_root()
        }
        Err(_) => false,
    }
}

/// Whether climbing `..` from the working directory reaches the root (`/`); reaching a
/// top that is not it (a directory whose `..` is itself) means the directory is outside.
fn climbs_to_root() -> bool {
    let ident = |fd: c_int| -> Option<(u64, u64)> {
        // SAFETY: fstat into zeroed storage on a descriptor this function holds.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
    };
    let open = |dir: c_int, name: &std::ffi::CStr| -> c_int {
        // SAFETY: a NUL-terminated name relative to a live descriptor (or the directory).
        unsafe {
            libc::openat(
                dir,
                name.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        }
    };
    let root = paths::Held(open(libc::AT_FDCWD, c"/"));
    let Some(root_id) = ident(root.0) else {
        return false;
    };
    let mut here = paths::Held(open(libc::AT_FDCWD, c"."));
    for _ in 0..4096 {
        let Some(id) = ident(here.0) else {
            return false;
        };
        if id == root_id {
            return true;
        }
        let up = paths::Held(open(here.0, c".."));
        if ident(up.0) == Some(id) || up.0 < 0 {
            return false;
        }
        here = up;
    }
    false
}

/// Whether the calling process has died, waiting up to `timeout_ms`.
/// The container's own pseudo-terminal: its peer becomes stdin, stdout and stderr (the
/// session and controlling terminal follow with the privileges), its master goes to the
/// console socket.
fn terminal(plan: &Plan<'_>) -> Result<(), (i32, c_int)> {
    // SAFETY: open, ioctl, dup2 and close on descriptors this task owns, with live buffers.
    unsafe {
        let master = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err((0, errno()));
        }
        let unlock: c_int = 0;
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) != 0 {
            return Err((0, errno()));
        }
        let peer = libc::ioctl(
            master,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if peer < 0 {
            return Err((0, errno()));
        }
        // The terminal belongs to the program's user (its group stays the one devpts gives
        // it, tty's), as a login's terminal does.
        if let Some(uid) = plan.uid {
            if libc::fchown(peer, uid, libc::gid_t::MAX) != 0 {
                return Err((0, errno()));
            }
        }
        let (rows, cols) = plan.winsize;
        if rows > 0 || cols > 0 {
            let ws = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            libc::ioctl(peer, libc::TIOCSWINSZ, &ws);
        }
        for target in 0..3 {
            if libc::dup2(peer, target) < 0 {
                return Err((0, errno()));
            }
        }
        if peer > 2 {
            libc::close(peer);
        }
        exec::send_fd(plan.console_fd, master).map_err(|e| (1, e))?;
        libc::close(master);
        libc::close(plan.console_fd);
    }
    Ok(())
}

/// Writes the kernel parameters of the child's namespaces, before its mounts.
fn sysctls(plan: &Plan<'_>) -> Result<(), Failure> {
    if plan.sysctls.is_null() {
        return Ok(());
    }
    // SAFETY: the caller prepared `sysctls_len` entries at `sysctls`.
    let all = unsafe { std::slice::from_raw_parts(plan.sysctls, plan.sysctls_len) };
    for (i, (path, value)) in all.iter().enumerate() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        // SAFETY: a prepared NUL-terminated path; no link is followed at its end.
        let fd = unsafe { libc::open(*path, libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW) };
        if fd < 0 {
            return Err((Step::Sysctl, index, errno()));
        }
        let written = write_all(fd, value.bytes());
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(fd) };
        written.map_err(|e| (Step::Sysctl, index, e))?;
    }
    Ok(())
}

/// Tells the caller the child's setup is done: one ready record on the status channel.
pub(super) fn write_ready(plan: &Plan<'_>) {
    if plan.status_w >= 0 {
        let rec: Record = [RECORD_READY, Task::Child as u32, 0, 0, 0];
        // SAFETY: writing a small record from a live buffer.
        unsafe {
            libc::write(
                plan.status_w,
                rec.as_ptr() as *const c_void,
                std::mem::size_of::<Record>(),
            )
        };
    }
}

/// Waits for one connection on the hold socket, after telling the caller the setup is done
/// (it returns from `spawn` then): the program starts when a later process connects.
fn hold(plan: &Plan<'_>) -> Result<(), c_int> {
    write_ready(plan);
    loop {
        // SAFETY: accept4 on the prepared listening socket, without an address.
        let conn = unsafe {
            libc::accept4(
                plan.hold_fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if conn >= 0 {
            // SAFETY: closing the connection and this task's listening socket.
            unsafe {
                libc::close(conn);
                libc::close(plan.hold_fd);
            }
            return Ok(());
        }
        let err = errno();
        if err != libc::EINTR && err != libc::ECONNABORTED {
            return Err(err);
        }
    }
}

fn caller_gone(plan: &Plan<'_>, timeout_ms: c_int) -> bool {
    if plan.caller_pidfd < 0 {
        return false;
    }
    let mut pfd = libc::pollfd {
        fd: plan.caller_pidfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polling one live pollfd.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) > 0 }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
mod tests;
