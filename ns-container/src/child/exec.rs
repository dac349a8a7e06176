//! The last stage: signal dispositions and mask, then `execve` along the prepared PATH
//! candidates, or the closure and `_exit`.

use super::*;

/// The end of the child: `execve` the program, or run the closure and `_exit`.
pub(super) fn finish(plan: &Plan<'_>, cwd_done: bool) -> c_int {
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
            if plan.hold_fd >= 0 {
                // (The caller may be gone once the program is let go: that is the point.)
                if let Err(err) = super::hold(plan) {
                    fail(plan, Task::Child, Step::Hold, 0, err);
                }
            }
            if let Err((step, err)) = last_steps(plan) {
                fail(plan, Task::Child, step, 0, err);
            }
            if plan.trampoline.is_used() {
                let err = exec_trampoline(&plan.trampoline, plan, envp, cwd_done);
                // A policy against executing the exec relay (a seccomp profile refusing
                // execveat, an LSM) leaves the program to be executed directly, as a spawn
                // without the relay would; the trampoline that enters a user namespace has no
                // such stand-in here (the caller retries on the copy path).
                // Nor has the one that creates the program's process in the target's pid
                // namespace: this task is not in it.
                let refused = matches!(err, libc::EPERM | libc::EACCES | libc::ENOSYS);
                let alone = plan.trampoline.enters_user() || plan.trampoline.forks();
                if alone || !refused || restore_for_exec(plan).is_err() {
                    fail(plan, Task::Child, Step::Exec, EXEC_TRAMPOLINE, err)
                }
            }
            let err = exec(candidates, argv, envp);
            fail(plan, Task::Child, Step::Exec, 0, err)
        }
        Action::Call { data, call } => {
            if caller_gone(plan, 0) {
                fail(plan, Task::Child, Step::CallerDied, 0, libc::ESRCH);
            }
            if let Err((step, err)) = last_steps(plan) {
                fail(plan, Task::Child, step, 0, err);
            }
            // Before the ready record: once it is written the caller returns and may reuse
            // the report page for its next spawn.
            close_internal_fds(plan);
            super::write_ready(plan);
            if plan.status_w >= 0 {
                // SAFETY: closing this task's copy of the pipe.
                unsafe { libc::close(plan.status_w) };
            }
            non_dumpable(plan);
            (plan.after_fork)();
            // SAFETY: `call` and `data` were prepared together by the caller.
            let code = unsafe { call(data) };
            // SAFETY: leaving without running destructors or the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Default dispositions for caught signals (unless clone3 already cleared them), SIGPIPE back
/// to default for a program, and the final signal mask.
pub(super) fn reset_signals(plan: &Plan<'_>) {
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

/// Executes the user-namespace trampoline with the descriptors it needs kept open; returns
/// the errno to report if that fails.
///
/// Its status pipe is made here, in this task's own descriptor table: the read end goes to
/// the caller over the status socket (`plan.status_w`), and the write end takes the
/// socket's number, which the trampoline's arguments name. No other process ever holds the
/// write end, so end-of-file comes exactly when the trampoline executes the program or dies.
fn exec_trampoline(
    t: &Trampoline,
    plan: &Plan<'_>,
    envp: *const *const c_char,
    cwd_done: bool,
) -> c_int {
    let argv = if cwd_done { t.argv_cwd_done } else { t.argv };
    if plan.hold_fd >= 0 {
        // Held: the caller no longer listens. The trampoline reports on the socket itself,
        // which it marks close-on-exec; nobody reads it.
        // SAFETY: clearing close-on-exec in this task's own table, then executing the image
        // with prepared arrays.
        unsafe {
            if libc::fcntl(plan.status_w, libc::F_SETFD, 0) != 0 {
                return errno();
            }
            let e = ns_sys::task::execveat(t.image, c"", argv, envp, libc::AT_EMPTY_PATH);
            return os_errno(&e);
        }
    }
    let mut pipe = [-1 as c_int; 2];
    // Non-blocking: the caller reads it only once it is readable or the writers are gone,
    // and a record (one write far below PIPE_BUF into an empty pipe) is never held up; a
    // pipe filled by whoever took a write end fails that write instead of hanging it.
    // SAFETY: pipe2 writes two descriptors into the live array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return errno();
    }
    let [read_end, write_end] = pipe;
    if let Err(err) = send_fd(plan.status_w, read_end) {
        return err;
    }
    // SAFETY: closing our copy of the read end, and putting the write end at the socket's
    // number (without close-on-exec), both in this task's own table.
    unsafe {
        libc::close(read_end);
        if libc::dup3(write_end, plan.status_w, 0) < 0 {
            return errno();
        }
        libc::close(write_end);
    }
    // A trampoline that creates the program's process does not get the caller's pidfd: that
    // process would hold it, where the container can see it.
    let caller = if t.forks() { -1 } else { plan.caller_pidfd };
    let namespaces = t.namespaces.map(|(fd, _)| fd);
    for fd in [caller, t.fork_page].iter().chain(&namespaces) {
        let fd = *fd;
        // SAFETY: clearing close-on-exec in this task's own descriptor table.
        if fd >= 0 && unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            return errno();
        }
    }
    // SAFETY: a memfd holding the trampoline, and NULL-terminated arrays of NUL-terminated
    // strings prepared by the caller.
    let e = unsafe { ns_sys::task::execveat(t.image, c"", argv, envp, libc::AT_EMPTY_PATH) };
    os_errno(&e)
}

/// After the relay was refused: what `exec_trampoline` left open across `execve` is
/// close-on-exec again (the status pipe's write end, whose end-of-file tells the caller the
/// program runs, and the caller's pidfd).
fn restore_for_exec(plan: &Plan<'_>) -> Result<(), c_int> {
    for fd in [plan.status_w, plan.caller_pidfd] {
        // SAFETY: setting close-on-exec in this task's own descriptor table.
        if fd >= 0 && unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// Sends descriptor `fd` with `SCM_RIGHTS` (and one byte) on `socket`.
pub(super) fn send_fd(socket: c_int, fd: c_int) -> Result<(), c_int> {
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: &mut byte as *mut u8 as *mut c_void,
        iov_len: 1,
    };
    // Room for one control message holding one descriptor, aligned for cmsghdr.
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is valid; the fields set below point to live buffers, and
    // the control message written through CMSG_FIRSTHDR/CMSG_DATA lies inside `control`
    // (CMSG_SPACE of one int is 24 bytes on 64-bit targets, `control` has 32).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut c_void;
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(libc::EINVAL);
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut c_int, fd);
        if libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// Tries each candidate path as `execvp` would; returns the errno to report.
pub(super) fn exec(
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

/// The caller's `pre_exec` hooks, then the seccomp filter: the last steps before `execve`
/// or the closure.
fn last_steps(plan: &Plan<'_>) -> Result<(), (Step, c_int)> {
    if !plan.pre_exec.is_null() {
        // SAFETY: the caller's hooks, in this task's own copy of its memory (a spawn with
        // hooks always copies it), called under the contract of `NsCommand::pre_exec`.
        let hooks = unsafe { &mut *plan.pre_exec };
        for hook in hooks.iter_mut() {
            if let Err(e) = hook() {
                let errno = e.raw_os_error().unwrap_or(libc::EINVAL);
                // Never run a destructor here: it could free memory.
                std::mem::forget(e);
                return Err((Step::PreExec, errno));
            }
        }
    }
    // Or the trampoline installs it, right before the program (or it was installed early).
    if !plan.trampoline.filter && !plan.seccomp_early {
        install_filter(plan)?;
    }
    Ok(())
}

/// Installs the seccomp filter, if there is one.
pub(super) fn install_filter(plan: &Plan<'_>) -> Result<(), (Step, c_int)> {
    if plan.seccomp.ptr.is_null() {
        return Ok(());
    }
    // SAFETY: the caller prepared `len` instructions at `ptr`, alive for the spawn.
    let filter = unsafe { std::slice::from_raw_parts(plan.seccomp.ptr, plan.seccomp.len) };
    ns_sys::task::seccomp_set_mode_filter(filter, 0).map_err(|e| (Step::Seccomp, os_errno(&e)))
}

/// What `sys::spawn_fd`'s task needs, prepared before it starts.
pub(crate) struct SpawnFd<'a> {
    pub image: c_int,
    pub argv: &'a [*const libc::c_char],
    pub envp: &'a [*const libc::c_char],
    pub keep: &'a [c_int],
}

/// The task of `sys::spawn_fd`: keeps `keep` open across exec and executes the image.
pub(crate) extern "C" fn spawn_fd_main(arg: *mut c_void) -> libc::c_int {
    // SAFETY: `arg` is the caller's SpawnFd, alive until this task has exec'd or exited
    // (CLONE_VFORK).
    let s = unsafe { &*(arg as *const SpawnFd<'_>) };
    for fd in s.keep {
        // SAFETY: clearing close-on-exec in this task's own descriptor table (no CLONE_FILES).
        unsafe { libc::fcntl(*fd, libc::F_SETFD, 0) };
    }
    // SAFETY: NULL-terminated arrays of NUL-terminated strings, prepared by the caller; then
    // leaving the task without running anything of the caller's.
    unsafe {
        let _ = ns_sys::task::execveat(
            s.image,
            c"",
            s.argv.as_ptr(),
            s.envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
        libc::_exit(126)
    }
}
