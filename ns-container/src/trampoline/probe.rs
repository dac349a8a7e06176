//! The probe: runs the trampoline once, as its own process sharing nothing of the caller's
//! but the descriptors it is given, to learn whether this kernel and its policies let it
//! work (a descriptor that is no namespace must be reported as exactly that).

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use libc::c_void;

use super::args::{Args, Ids};
use crate::child::{self, Record, RECORD_FAILED};
use crate::error::Step;
use crate::probes::clone3_usable;
use crate::record::{read_record, set_nonblocking};
use crate::sys::{self, SignalsBlocked, Stacks};

/// A failure that says nothing of what the kernel allows.
pub(super) fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN | libc::EINTR)
    )
}

/// Runs the trampoline once with a descriptor that is no namespace: it must report exactly
/// that failure of entering the user namespace on the status pipe.
pub(super) fn works(image: &OwnedFd) -> Option<bool> {
    let known = |e: std::io::Error| if transient(&e) { None } else { Some(false) };
    let (r, w) = match sys::pipe() {
        Ok(pair) => pair,
        Err(e) => return known(e).map(|_| false),
    };
    let args = Args::new(
        &[(i32::MAX, libc::CLONE_NEWUSER)],
        w.as_raw_fd(),
        i32::MAX,
        0,
        None,
        Ids::default(),
        0,
    );
    let argv = args.argv(&[std::ptr::null()], &[std::ptr::null()]);
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let started = spawn_fd(image.as_raw_fd(), &argv, &envp, &[w.as_raw_fd()]);
    drop(w);
    let pidfd = match started {
        Ok(pidfd) => pidfd,
        Err(e) => return known(e),
    };
    // Wait for the task to end (the trampoline writes its record and exits at once), not
    // for end-of-file: another thread's fork may hold a copy of the write end.
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polling one live pollfd.
    while unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    let _ = ns_sys::pidfd_wait(pidfd.as_fd(), libc::WEXITED | libc::__WALL);
    // The record, written before the task ended, is in the pipe whole (writes below
    // PIPE_BUF are atomic) or not at all.
    let rec = set_nonblocking(&r).and_then(|()| read_record(&r));
    let expected: Record = [
        RECORD_FAILED,
        child::Task::Child as u32,
        Step::EnterNamespaces as u32,
        libc::CLONE_NEWUSER as u32,
        libc::EBADF as u32,
    ];
    Some(matches!(rec, Ok(Some(rec)) if rec == expected))
}

/// Executes the program in the file `image` (`execveat` with `AT_EMPTY_PATH`) in a new
/// process, like `posix_spawn` (it shares our memory until it has exec'd), with `keep` left
/// open in it; returns its pidfd. `argv` and `envp` must end with a NULL.
fn spawn_fd(
    image: RawFd,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    keep: &[RawFd],
) -> io::Result<OwnedFd> {
    if argv.last().is_some_and(|p| !p.is_null()) || envp.last().is_some_and(|p| !p.is_null()) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let stacks = Stacks::new(&[64 << 10])?;
    let (stack, stack_size) = stacks.region(0);
    let spec = child::SpawnFd {
        image,
        argv,
        envp,
        keep,
    };
    let mut pidfd: libc::c_int = -1;
    let mut args = ns_sys::clone_args {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack,
        stack_size,
        ..Default::default()
    };
    let arg = &spec as *const child::SpawnFd<'_> as *mut c_void;
    // No handler of ours may run in a task that shares our memory.
    let blocked = SignalsBlocked::new();
    // SAFETY: the task runs `spawn_fd_main` on its own stack, which outlives it
    // (CLONE_VFORK: this returns once it has exec'd or exited); it makes only
    // async-signal-safe calls on prepared data.
    let r = unsafe {
        if clone3_usable() {
            ns_sys::clone3_on_stack(&mut args, child::spawn_fd_main, arg)
        } else {
            ns_sys::clone_on_stack(&mut args, child::spawn_fd_main, arg)
        }
    };
    drop(blocked);
    r?;
    // SAFETY: the clone succeeded, so the kernel installed this pidfd in our table for us.
    Ok(unsafe { OwnedFd::from_raw_fd(pidfd) })
}
