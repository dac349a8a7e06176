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
    pub moves: *const (c_int, c_int),
    pub moves_len: usize,
    /// Lowest number for the temporary copies made while moving descriptors: above every
    /// number the child is given.
    pub move_floor: c_int,
    pub close_fds: bool,
    pub groups: *const libc::gid_t,
    pub groups_len: usize,
    pub set_groups: bool,
    /// `setpgid(0, pgroup)`, or -1 for none.
    pub pgroup: pid_t,
    pub gid: Option<libc::gid_t>,
    pub uid: Option<libc::uid_t>,
    pub cwd: *const c_char,
    pub pdeathsig: c_int,
    pub reset_handlers: bool,
    pub sigpipe_default: bool,
    pub sigmask: libc::sigset_t,
    pub internal_fds: [c_int; 10],
    pub action: Action,
}

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

/// Entry point of the intermediate: enter the target's namespaces, then create the pid stage
/// or the child.
pub(crate) extern "C" fn intermediate_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the caller's Plan, alive until this task is gone.
    let plan = unsafe { &*(arg as *const Plan<'_>) };
    if plan.private_memory {
        // Our memory is a copy of the caller's: before taking a container's credentials,
        // make it non-dumpable, so that the container cannot read it through /proc or ptrace
        // (the child shares it until it execs).
        // SAFETY: prctl with integer arguments; it affects only this task's own memory.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            fail(plan, Task::Intermediate, Step::EnterNamespaces, 0, errno());
        }
    }
    if let Err(failure) = enter(plan) {
        fail(
            plan,
            Task::Intermediate,
            Step::EnterNamespaces,
            failure.nstype,
            failure.errno,
        );
    }
    if !plan.pause_after_child {
        pause(plan);
    }
    if caller_gone(plan, 0) {
        fail(plan, Task::Intermediate, Step::CallerDied, 0, libc::ESRCH);
    }
    if plan.pid_stage {
        let (stack, stack_size) = plan.pid_stage_stack;
        let report = report(plan);
        let mut args = clone_args {
            flags: (libc::CLONE_VM
                | libc::CLONE_VFORK
                | libc::CLONE_FILES
                | libc::CLONE_PARENT
                | libc::CLONE_PIDFD
                | libc::CLONE_PARENT_SETTID) as u64,
            pidfd: report.pid_stage_pidfd.as_ptr() as u64,
            parent_tid: report.pid_stage_pid.as_ptr() as u64,
            child_tid: report.pid_stage_word.as_ptr() as u64,
            exit_signal: 0,
            stack,
            stack_size,
            ..Default::default()
        };
        if let Err(err) = clone_task(plan, &mut args, pid_stage_main, arg) {
            fail(plan, Task::Intermediate, Step::CreatePidStage, 0, err);
        }
        // CLONE_VFORK: the pid stage has finished when we get here.
        report.intermediate_done.store(1, Ordering::Release);
        return 0;
    }
    match create_child(plan, Task::Intermediate) {
        Ok(()) => {
            report(plan).intermediate_done.store(1, Ordering::Release);
            0
        }
        Err(()) => 1,
    }
}

/// The test hook: waits for a byte (or end-of-file) on the pause descriptor, or for the
/// calling process to die.
fn pause(plan: &Plan<'_>) {
    if plan.pause_fd >= 0 {
        let _ = wait_readable(plan.pause_fd, plan.caller_pidfd);
    }
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

/// Entry point of the pid stage: it lives in the target's PID namespace, so it may create a
/// new PID namespace below it.
pub(crate) extern "C" fn pid_stage_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the caller's Plan, alive until this task is gone.
    let plan = unsafe { &*(arg as *const Plan<'_>) };
    match create_child(plan, Task::PidStage) {
        Ok(()) => {
            report(plan).pid_stage_done.store(1, Ordering::Release);
            0
        }
        Err(()) => 1,
    }
}

/// Carries out the prepared `setns` steps, if any.
fn enter(plan: &Plan<'_>) -> Result<(), ns_core::EntryFailure> {
    plan.entry.as_ref().map_or(Ok(()), EntryPlan::enter_raw)
}

/// Creates the child, then does the creator's half of the handshake. Used by the caller too
/// (`Task::Caller`), when no intermediate is needed.
pub(crate) fn create_child(plan: &Plan<'_>, task: Task) -> Result<(), ()> {
    let report = report(plan);
    let (stack, stack_size) = plan.child_stack;
    let mut args = clone_args {
        flags: plan.child_flags,
        pidfd: report.child_pidfd.as_ptr() as u64,
        parent_tid: report.child_pid.as_ptr() as u64,
        child_tid: report.child_word.as_ptr() as u64,
        exit_signal: plan.child_exit_signal,
        stack,
        stack_size,
        cgroup: plan.cgroup_fd.max(0) as u64,
        ..Default::default()
    };
    let arg = plan as *const Plan<'_> as *mut c_void;
    let pid = match clone_task(plan, &mut args, child_main, arg) {
        Ok(pid) => pid,
        Err(err) => {
            record(plan, task, Step::CreateChild, 0, err);
            return Err(());
        }
    };
    if plan.pause_after_child && task != Task::Caller {
        pause(plan);
    }
    if !plan.handshake {
        return Ok(());
    }
    if caller_gone(plan, 0) {
        record(plan, task, Step::CallerDied, 0, libc::ESRCH);
        kill_child(report);
        if plan.await_child {
            await_child(report);
        }
        return Err(());
    }
    let outcome = handshake(plan, pid);
    if let Err((step, err)) = outcome {
        record(plan, task, step, 0, err);
        kill_child(report);
    }
    if plan.await_child {
        await_child(report);
    }
    outcome.map(drop).map_err(drop)
}

fn kill_child(report: &Report) {
    let pidfd = report.child_pidfd.load(Ordering::Relaxed);
    // SAFETY: the kernel put the child's pidfd in the (shared) descriptor table; it stays
    // open until the caller takes it over.
    let _ = ns_sys::pidfd_send_signal(unsafe { BorrowedFd::borrow_raw(pidfd) }, libc::SIGKILL);
}

/// Waits until the child no longer uses the memory it shares with this task: the kernel
/// clears its `CLONE_CHILD_CLEARTID` word and wakes us when it execs or exits. Used by the
/// caller too, before it frees memory a `CLONE_VM` child might still run on.
pub(crate) fn await_child(report: &Report) {
    loop {
        let v = report.child_word.load(Ordering::Acquire);
        if v == 0 {
            return;
        }
        // SAFETY: a futex wait on a live word of the shared report page; it returns at once
        // if the word no longer holds `v`. (Not FUTEX_PRIVATE: the kernel's wake is shared.)
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                report.child_word.as_ptr(),
                libc::FUTEX_WAIT,
                v,
                std::ptr::null::<libc::timespec>(),
            )
        };
    }
}

/// Writes the id maps and the cgroup of the waiting child, then lets it go on.
fn handshake(plan: &Plan<'_>, pid: pid_t) -> Result<(), (Step, c_int)> {
    let pidfd = report(plan).child_pidfd.load(Ordering::Relaxed);
    if plan.uid_map.is_some() || plan.gid_map.is_some() || plan.setgroups_deny {
        // The child's /proc directory, found by the PID the caller's /proc shows (its
        // pidfd's fdinfo), and held open: checked to be the child's while the child is
        // alive, it names the child even if the number is reused later.
        let proc_pid = fdinfo_pid(plan.proc_fd, pidfd).map_err(|e| (Step::FindChildPid, e))?;
        let dir =
            open_proc_dir(plan.proc_fd, proc_pid, pidfd).map_err(|e| (Step::FindChildPid, e))?;
        let written = write_maps(plan, dir);
        // SAFETY: closing the directory opened above.
        unsafe { libc::close(dir) };
        written?;
    }
    if plan.cgroup_procs_fd >= 0 {
        // The number is the child's only while the child exists; it cannot be pinned here.
        child_alive(pidfd).map_err(|e| (Step::CgroupAttach, e))?;
        // cgroup.procs reads the PID in the writer's PID namespace: the clone result.
        let mut digits = [0u8; 24];
        let n = format_int(pid as i64, &mut digits);
        write_all(plan.cgroup_procs_fd, digits.get(..n).unwrap_or(&[]))
            .map_err(|e| (Step::CgroupAttach, e))?;
    }
    write_all(plan.release_w, b"g").map_err(|e| (Step::Release, e))
}

fn write_maps(plan: &Plan<'_>, dir: c_int) -> Result<(), (Step, c_int)> {
    if plan.uid_map.is_some() {
        write_proc(dir, c"uid_map", plan.uid_map).map_err(|e| (Step::UidMap, e))?;
    }
    if plan.setgroups_deny {
        write_proc(dir, c"setgroups", Buf::of(b"deny")).map_err(|e| (Step::Setgroups, e))?;
    }
    if plan.gid_map.is_some() {
        write_proc(dir, c"gid_map", plan.gid_map).map_err(|e| (Step::GidMap, e))?;
    }
    Ok(())
}

/// `ESRCH` unless the process behind `pidfd` is alive.
fn child_alive(pidfd: c_int) -> Result<(), c_int> {
    // SAFETY: the child's pidfd stays open until the caller takes it over.
    ns_sys::pidfd_send_signal(unsafe { BorrowedFd::borrow_raw(pidfd) }, 0).map_err(|e| os_errno(&e))
}

/// Opens `/proc/PID` (through the caller's `/proc`) and checks afterwards that the child is
/// still alive: a number cannot name two processes at once, so the directory is the child's.
fn open_proc_dir(proc_fd: c_int, pid: pid_t, pidfd: c_int) -> Result<c_int, c_int> {
    let mut path = [0u8; 24];
    format_int(pid as i64, &mut path);
    // SAFETY: `path` is NUL-terminated: the digits are followed by zero bytes.
    let dir = unsafe {
        libc::openat(
            proc_fd,
            path.as_ptr() as *const c_char,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return Err(errno());
    }
    if let Err(e) = child_alive(pidfd) {
        // SAFETY: closing the directory opened above.
        unsafe { libc::close(dir) };
        return Err(e);
    }
    Ok(dir)
}

/// Writes `value` to the file `name` of the child's `/proc` directory.
fn write_proc(dir: c_int, name: &std::ffi::CStr, value: Buf) -> Result<(), c_int> {
    // SAFETY: `name` is NUL-terminated.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    let r = write_all(fd, value.bytes());
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    r
}

/// Reads the `Pid:` line of `/proc/self/fdinfo/FD` (through `proc_fd`).
fn fdinfo_pid(proc_fd: c_int, fd: c_int) -> Result<pid_t, c_int> {
    let prefix = b"self/fdinfo/";
    let mut path = [0u8; 40];
    for (slot, b) in path.iter_mut().zip(prefix) {
        *slot = *b;
    }
    match path.get_mut(prefix.len()..prefix.len().saturating_add(20)) {
        Some(tail) => format_int(fd as i64, tail),
        None => return Err(libc::ENAMETOOLONG),
    };
    // SAFETY: `path` is NUL-terminated: the digits are followed by zero bytes.
    let info = unsafe {
        libc::openat(
            proc_fd,
            path.as_ptr() as *const c_char,
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if info < 0 {
        return Err(errno());
    }
    let mut buf = [0u8; 1024];
    // SAFETY: reading into a live buffer of the given size.
    let got = unsafe { libc::read(info, buf.as_mut_ptr() as *mut c_void, buf.len()) };
    let err = errno();
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(info) };
    if got <= 0 {
        return Err(if got < 0 { err } else { libc::EIO });
    }
    let text = buf.get(..got as usize).unwrap_or(&[]);
    // Find "\nPid:" (fdinfo starts with "pos:", so Pid is never the first line).
    let key = b"\nPid:";
    let Some(at) = text.windows(key.len()).position(|w| w == key) else {
        return Err(libc::EIO);
    };
    let mut v: i64 = 0;
    let mut neg = false;
    let mut seen = false;
    for b in text.get(at.saturating_add(key.len())..).unwrap_or(&[]) {
        match *b {
            b' ' | b'\t' if !seen => {}
            b'-' if !seen => neg = true,
            b'0'..=b'9' => {
                seen = true;
                v = v
                    .saturating_mul(10)
                    .saturating_add(i64::from(b.saturating_sub(b'0')));
            }
            _ => break,
        }
    }
    if !seen || neg || v <= 0 || v > i64::from(pid_t::MAX) {
        return Err(libc::ESRCH);
    }
    Ok(v as pid_t)
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

/// Most descriptors the child can be given (stdio included).
pub(crate) const MAX_MOVES: usize = 64;

/// Entry point of the child.
pub(crate) extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the caller's Plan (or this task's copy of it), alive until exec/_exit.
    let plan = unsafe { &*(arg as *const Plan<'_>) };
    match setup(plan) {
        Err((step, detail, err)) => fail(plan, Task::Child, step, detail, err),
        Ok(()) => finish(plan),
    }
}

/// A failed step of the child: (step, detail, errno).
type Failure = (Step, i32, c_int);

/// The child's setup, in its documented order.
fn setup(plan: &Plan<'_>) -> Result<(), Failure> {
    if plan.handshake {
        await_release(plan).map_err(|e| (Step::AwaitRelease, 0, e))?;
    }
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
    if plan.close_fds {
        cloexec_from_3(plan.proc_fd).map_err(|e| (Step::CloseDescriptors, 0, e))?;
    }
    move_fds(plan).map_err(|(dst, e)| (Step::Descriptor, dst, e))?;
    if plan.pgroup >= 0 {
        // SAFETY: setpgid on this task with a plain integer.
        if unsafe { libc::setpgid(0, plan.pgroup) } != 0 {
            return Err((Step::ProcessGroup, plan.pgroup, errno()));
        }
    }
    credentials(plan)?;
    // SAFETY: chdir with a prepared, NUL-terminated path.
    if !plan.cwd.is_null() && unsafe { libc::chdir(plan.cwd) } != 0 {
        return Err((Step::Chdir, 0, errno()));
    }
    if plan.pdeathsig > 0 {
        parent_death_signal(plan).map_err(|e| (Step::ParentDeathSignal, plan.pdeathsig, e))?;
    }
    reset_signals(plan);
    Ok(())
}

/// Groups, gid, uid, with raw system calls: glibc's wrappers would signal "threads" this
/// task does not have, under a lock another thread of the caller may hold (see
/// `ns_sys::cred`).
fn credentials(plan: &Plan<'_>) -> Result<(), Failure> {
    if plan.set_groups {
        // SAFETY: the caller prepared `groups_len` ids at `groups`.
        let groups = unsafe { std::slice::from_raw_parts(plan.groups, plan.groups_len) };
        ns_sys::cred::setgroups(groups).map_err(|e| (Step::Groups, 0, os_errno(&e)))?;
    }
    if let Some(gid) = plan.gid {
        ns_sys::cred::setgid(gid).map_err(|e| (Step::Gid, gid as i32, os_errno(&e)))?;
    }
    if let Some(uid) = plan.uid {
        // As std does: root dropping to another user also drops supplementary groups.
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } == 0 && !plan.set_groups {
            let _ = ns_sys::cred::setgroups(&[]);
        }
        ns_sys::cred::setuid(uid).map_err(|e| (Step::Uid, uid as i32, os_errno(&e)))?;
    }
    Ok(())
}

/// Sets the parent-death signal (after setuid, which would clear it), then makes sure the
/// parent did not die before that: if the calling process is already gone, the signal would
/// never come, so the child gives up instead (`ESRCH`).
fn parent_death_signal(plan: &Plan<'_>) -> Result<(), c_int> {
    // SAFETY: prctl with a plain integer argument.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, plan.pdeathsig as libc::c_ulong) } != 0 {
        return Err(errno());
    }
    if caller_gone(plan, 0) {
        return Err(libc::ESRCH);
    }
    Ok(())
}

/// Whether the calling process has died, waiting up to `timeout_ms`.
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

/// Waits until the creator has written the id maps (one byte on the release pipe). Ends
/// early, with an error, when the creator closed the pipe without writing or the calling
/// process died.
fn await_release(plan: &Plan<'_>) -> Result<(), c_int> {
    // This task's copy of the write end would keep the pipe open forever.
    // SAFETY: closing this task's own copy of a descriptor of the spawn.
    unsafe { libc::close(plan.release_w) };
    loop {
        if wait_readable(plan.release_r, plan.caller_pidfd)? {
            return Err(libc::ESRCH);
        }
        let mut b = 0u8;
        // SAFETY: reading one byte into a live buffer.
        let got = unsafe { libc::read(plan.release_r, &mut b as *mut u8 as *mut c_void, 1) };
        match got {
            1 => return Ok(()),
            0 => return Err(libc::EPIPE),
            _ if errno() == libc::EINTR => continue,
            _ => return Err(errno()),
        }
    }
}

/// The end of the child: `execve` the program, or run the closure and `_exit`.
fn finish(plan: &Plan<'_>) -> c_int {
    match plan.action {
        Action::Exec {
            candidates,
            argv,
            envp,
        } => {
            // A program whose caller died would run with nobody holding its handle.
            if caller_gone(plan, 0) {
                fail(plan, Task::Child, Step::CallerDied, 0, libc::ESRCH);
            }
            let err = exec(candidates, argv, envp);
            fail(plan, Task::Child, Step::Exec, 0, err)
        }
        Action::Call { data, call } => {
            if caller_gone(plan, 0) {
                fail(plan, Task::Child, Step::CallerDied, 0, libc::ESRCH);
            }
            // Before the ready record: once it is written the caller returns and may reuse
            // the report page for its next spawn.
            close_internal_fds(plan);
            if plan.status_w >= 0 {
                let rec: Record = [RECORD_READY, Task::Child as u32, 0, 0, 0];
                // SAFETY: writing a small record from a live buffer, then closing this task's
                // copy of the pipe.
                unsafe {
                    libc::write(
                        plan.status_w,
                        rec.as_ptr() as *const c_void,
                        std::mem::size_of::<Record>(),
                    );
                    libc::close(plan.status_w);
                }
            }
            // SAFETY: `call` and `data` were prepared together by the caller.
            let code = unsafe { call(data) };
            // SAFETY: leaving without running destructors or the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Closes this task's copies of the spawn's own descriptors (but the status pipe) before a
/// closure runs.
fn close_internal_fds(plan: &Plan<'_>) {
    let report = report(plan);
    let kernel_made = [
        report.intermediate_pidfd.load(Ordering::Acquire),
        report.pid_stage_pidfd.load(Ordering::Acquire),
    ];
    for fd in plan.internal_fds.iter().chain(&kernel_made) {
        if *fd >= 0 {
            // SAFETY: closing this task's copies of the spawn's own descriptors.
            unsafe { libc::close(*fd) };
        }
    }
}

/// Creates the new time namespace and writes its offsets before anyone is in it. A child
/// with its own memory then moves itself in; one that shares its creator's memory is moved
/// by the kernel at `execve` (the kernel refuses the move before that: `EUSERS`).
fn time_namespace(plan: &Plan<'_>) -> Result<(), c_int> {
    // SAFETY: only CLONE_NEWTIME, which touches nothing but namespaces.
    unsafe { ns_sys::unshare(libc::CLONE_NEWTIME) }.map_err(|e| os_errno(&e))?;
    if plan.time_offsets.is_some() {
        // SAFETY: a NUL-terminated path under the prepared /proc descriptor.
        let fd = unsafe {
            libc::openat(
                plan.proc_fd,
                c"self/timens_offsets".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(errno());
        }
        let r = write_all(fd, plan.time_offsets.bytes());
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(fd) };
        r?;
    }
    if plan.time_at_exec {
        return Ok(());
    }
    // SAFETY: a NUL-terminated path under the prepared /proc descriptor.
    let ns = unsafe {
        libc::openat(
            plan.proc_fd,
            c"thread-self/ns/time_for_children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if ns < 0 {
        return Err(errno());
    }
    // SAFETY: `ns` was opened above and is closed right after.
    let r = ns_sys::setns(unsafe { BorrowedFd::borrow_raw(ns) }, libc::CLONE_NEWTIME);
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(ns) };
    r.map_err(|e| os_errno(&e))
}

/// Marks every descriptor from 3 up close-on-exec: `close_range(CLOSE_RANGE_CLOEXEC)` (5.11),
/// else a walk of `/proc/self/fd`.
fn cloexec_from_3(proc_fd: c_int) -> Result<(), c_int> {
    // SAFETY: with CLOSE_RANGE_CLOEXEC nothing is closed; the flags change only at exec.
    if unsafe { ns_sys::close_range(3, u32::MAX, ns_sys::fd::CLOSE_RANGE_CLOEXEC) }.is_ok() {
        return Ok(());
    }
    cloexec_by_listing(proc_fd)
}

/// The same for kernels before 5.11: list `/proc/self/fd` and mark each descriptor.
fn cloexec_by_listing(proc_fd: c_int) -> Result<(), c_int> {
    // SAFETY: opening a directory through the prepared /proc descriptor.
    let dir = unsafe {
        libc::openat(
            proc_fd,
            c"self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return Err(errno());
    }
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `dir` stays open until it is closed below.
        let listed = ns_sys::fd::getdents64(unsafe { BorrowedFd::borrow_raw(dir) }, &mut buf);
        let n = match listed {
            Ok(n) if n > 0 => n,
            done => {
                // SAFETY: closing the directory opened above.
                unsafe { libc::close(dir) };
                return done
                    .map(drop)
                    .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
            }
        };
        let mut records = buf.get(..n).unwrap_or(&[]);
        // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name...
        while let Some(&[lo, hi]) = records.get(16..18) {
            let reclen = usize::from(u16::from_ne_bytes([lo, hi]));
            let Some(record) = records.get(..reclen).filter(|_| reclen > 19) else {
                break;
            };
            if let Some(fd) = parse_fd(record.get(19..).unwrap_or(&[])) {
                if fd >= 3 && fd != dir {
                    // SAFETY: setting a descriptor flag; a stale number only fails with EBADF.
                    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
                }
            }
            records = records.get(reclen..).unwrap_or(&[]);
        }
    }
}

/// The descriptor number a `/proc/self/fd` entry names (`"."` and `".."` name none).
fn parse_fd(name: &[u8]) -> Option<c_int> {
    let mut fd: c_int = 0;
    let mut digits = false;
    for b in name {
        match *b {
            b'0'..=b'9' => {
                digits = true;
                fd = fd
                    .checked_mul(10)?
                    .checked_add(c_int::from(b.saturating_sub(b'0')))?;
            }
            _ => break,
        }
    }
    digits.then_some(fd)
}

/// Puts each given descriptor at its number in the child, clearing close-on-exec there. All
/// sources are first copied above every target (`move_floor`), so moves cannot overwrite
/// each other or the spawn's own descriptors, which the caller placed above it too.
fn move_fds(plan: &Plan<'_>) -> Result<(), (i32, c_int)> {
    if plan.moves.is_null() || plan.moves_len == 0 {
        return Ok(());
    }
    // SAFETY: the caller prepared `moves_len` pairs at `moves`.
    let moves = unsafe { std::slice::from_raw_parts(plan.moves, plan.moves_len) };
    let mut tmp = [-1 as c_int; MAX_MOVES];
    for ((src, dst), slot) in moves.iter().zip(tmp.iter_mut()) {
        // SAFETY: duplicating a descriptor the caller prepared.
        let t = unsafe { libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, plan.move_floor) };
        if t < 0 {
            return Err((*dst, errno()));
        }
        *slot = t;
    }
    for ((_, dst), t) in moves.iter().zip(tmp.iter()) {
        // SAFETY: dup2 onto the wanted number; this clears close-on-exec there.
        if unsafe { libc::dup2(*t, *dst) } < 0 {
            return Err((*dst, errno()));
        }
    }
    Ok(())
}

/// Default dispositions for caught signals (unless clone3 already cleared them), SIGPIPE back
/// to default for a program, and the final signal mask.
fn reset_signals(plan: &Plan<'_>) {
    // SAFETY: sigaction and sigprocmask with live, initialised structures.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        if plan.reset_handlers {
            for sig in 1..=libc::SIGRTMAX() {
                if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                    continue;
                }
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction != libc::SIG_DFL
                    && old.sa_sigaction != libc::SIG_IGN
                {
                    libc::sigaction(sig, &dfl, std::ptr::null_mut());
                }
            }
        }
        if plan.sigpipe_default {
            libc::sigaction(libc::SIGPIPE, &dfl, std::ptr::null_mut());
        }
        libc::sigprocmask(libc::SIG_SETMASK, &plan.sigmask, std::ptr::null_mut());
    }
}

/// Tries each candidate path as `execvp` would; returns the errno to report.
fn exec(
    candidates: *const *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let mut err = libc::ENOENT;
    let mut saw_eacces = false;
    let mut p = candidates;
    // SAFETY: `candidates` is a NULL-terminated array of NUL-terminated paths, `argv` and
    // `envp` NULL-terminated arrays, all prepared by the caller.
    unsafe {
        while !(*p).is_null() {
            libc::execve(*p, argv, envp);
            err = errno();
            match err {
                libc::EACCES => saw_eacces = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => return err,
            }
            p = p.add(1);
        }
    }
    if saw_eacces {
        libc::EACCES
    } else {
        err
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
mod tests {
    use super::*;

    #[test]
    fn format_int_writes_decimal_digits() {
        let mut out = [0u8; 24];
        let n = format_int(4_194_303, &mut out);
        assert_eq!(&out[..n], b"4194303");
        let n = format_int(0, &mut out);
        assert_eq!(&out[..n], b"0");
        let mut short = [0u8; 2];
        assert_eq!(format_int(12345, &mut short), 2);
    }

    #[test]
    fn fdinfo_pid_reads_a_pidfd() {
        let proc_fd = unsafe {
            libc::open(
                c"/proc".as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        assert!(proc_fd >= 0);
        let me = std::process::id() as pid_t;
        let pidfd = ns_sys::pidfd_open(me, 0).unwrap();
        assert_eq!(
            fdinfo_pid(proc_fd, std::os::fd::AsRawFd::as_raw_fd(&pidfd)),
            Ok(me)
        );
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(
            fdinfo_pid(proc_fd, std::os::fd::AsRawFd::as_raw_fd(&file)),
            Err(libc::EIO)
        );
        unsafe { libc::close(proc_fd) };
    }

    #[test]
    fn listing_fallback_marks_every_descriptor_from_3_close_on_exec() {
        // In a forked child: the walk marks every descriptor of the process.
        // SAFETY: the child only makes the calls below and _exits; nothing it touches is
        // shared with the test harness's other threads.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: plain calls on descriptors this child opens.
            let ok = unsafe {
                let proc_fd = libc::open(
                    c"/proc".as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                );
                let a = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
                let b = libc::dup2(a, 200);
                let before = libc::fcntl(a, libc::F_GETFD) & libc::FD_CLOEXEC == 0
                    && libc::fcntl(b, libc::F_GETFD) & libc::FD_CLOEXEC == 0;
                let walked = cloexec_by_listing(proc_fd).is_ok();
                let after = libc::fcntl(a, libc::F_GETFD) & libc::FD_CLOEXEC != 0
                    && libc::fcntl(b, libc::F_GETFD) & libc::FD_CLOEXEC != 0
                    && libc::fcntl(0, libc::F_GETFD) & libc::FD_CLOEXEC == 0;
                before && walked && after
            };
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status:#x}"
        );
    }

    #[test]
    fn step_numbers_round_trip() {
        for v in 1..=24 {
            assert_eq!(Step::from_u32(v).map(|s| s as u32), Some(v));
        }
        assert_eq!(Step::from_u32(0), None);
        assert_eq!(Step::from_u32(25), None);
    }
}
