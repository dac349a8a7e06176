//! Stage 1, entering: the intermediate enters the target's namespaces, the pid stage makes a
//! new pid namespace inside the target's, the creator makes the child and writes its id maps
//! and cgroup while the child waits, and the child makes its new time namespace.

use super::*;

/// Entry point of the intermediate: enter the target's namespaces, then create the pid stage
/// or the child.
pub(crate) extern "C" fn intermediate_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the caller's Plan, alive until this task is gone.
    let plan = unsafe { &*(arg as *const Plan<'_>) };
    if plan.private_memory && plan.entry.is_some() {
        // Our memory is a copy of the caller's: before taking a container's credentials,
        // make it non-dumpable, so that the container cannot read it through /proc or ptrace
        // (the child shares it until it execs). An intermediate that enters nothing stays
        // as dumpable as the caller: its child, which inherits the flag, must be while its
        // creator writes its id maps (see `setup`).
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
    // Entering a user namespace owned by another uid sets the flag to `fs.suid_dumpable`:
    // hide the caller's memory again before anything of the container can see this task.
    // SAFETY: prctl with integer arguments on this task's (the caller's) memory.
    if plan.hide_memory && unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        fail(plan, Task::Intermediate, Step::EnterNamespaces, 0, errno());
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
pub(super) fn pause(plan: &Plan<'_>) {
    if plan.pause_fd >= 0 {
        let _ = wait_readable(plan.pause_fd, plan.caller_pidfd);
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
pub(super) fn enter(plan: &Plan<'_>) -> Result<(), ns_core::EntryFailure> {
    plan.entry.as_ref().map_or(Ok(()), EntryPlan::enter_raw)
}

/// The entry and the pid namespace for children as one `setns` of their pidfd
/// (`Plan::pid_joined`); whether it was made (a pidfd's `setns` enters all or nothing).
pub(super) fn enter_joined(plan: &Plan<'_>) -> bool {
    let (Some(entry), Some(pid)) = (
        plan.entry.as_ref().and_then(|p| p.steps().first()),
        plan.pid_at_fork.as_ref().and_then(|p| p.steps().first()),
    ) else {
        return false;
    };
    // SAFETY: the target's pidfd, kept open by the spec for the spawn.
    let fd = unsafe { BorrowedFd::borrow_raw(entry.fd) };
    ns_sys::setns(fd, entry.nstype | pid.nstype).is_ok()
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

pub(super) fn kill_child(report: &Report) {
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
        // Returns at once if the word no longer holds `v`; shared, as the kernel's wake is.
        ns_sys::task::futex_wait(&report.child_word, v);
    }
}

/// Writes the id maps and the cgroup of the waiting child, then lets it go on.
pub(super) fn handshake(plan: &Plan<'_>, pid: pid_t) -> Result<(), (Step, c_int)> {
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

pub(super) fn write_maps(plan: &Plan<'_>, dir: c_int) -> Result<(), (Step, c_int)> {
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
pub(super) fn child_alive(pidfd: c_int) -> Result<(), c_int> {
    // SAFETY: the child's pidfd stays open until the caller takes it over.
    ns_sys::pidfd_send_signal(unsafe { BorrowedFd::borrow_raw(pidfd) }, 0).map_err(|e| os_errno(&e))
}

/// Opens `/proc/PID` (through the caller's `/proc`) and checks afterwards that the child is
/// still alive: a number cannot name two processes at once, so the directory is the child's.
pub(super) fn open_proc_dir(proc_fd: c_int, pid: pid_t, pidfd: c_int) -> Result<c_int, c_int> {
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
pub(super) fn write_proc(dir: c_int, name: &std::ffi::CStr, value: Buf) -> Result<(), c_int> {
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
pub(super) fn fdinfo_pid(proc_fd: c_int, fd: c_int) -> Result<pid_t, c_int> {
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

/// Waits until the creator has written the id maps (one byte on the release pipe). Ends
/// early, with an error, when the creator closed the pipe without writing or the calling
/// process died.
pub(super) fn await_release(plan: &Plan<'_>) -> Result<(), c_int> {
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

/// Creates the new time namespace and writes its offsets before anyone is in it. A child
/// with its own memory then moves itself in; one that shares its creator's memory is moved
/// by the kernel at `execve` (the kernel refuses the move before that: `EUSERS`).
pub(super) fn time_namespace(plan: &Plan<'_>) -> Result<(), c_int> {
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
