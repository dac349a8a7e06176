//! Helpers shared by ns-container's integration tests (beside ns-core's `support`).
#![allow(dead_code)]

use ns_container::{Child, NsCommand};
use ns_core::NsType;

/// Number of open file descriptors of this process, counted once the library's own
/// process-wide state exists (`prepare_spawning`: the trampoline's image and pid page), so
/// that only what a spawn leaves behind changes it. Compare counts only in a test that runs
/// alone.
pub fn fd_count() -> usize {
    ns_container::prepare_spawning();
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The spawn failed because its program does not exist: `execve` said `ENOENT`.
pub fn assert_not_found(err: &ns_container::Error) {
    assert!(
        matches!(
            err,
            ns_container::Error::Exec {
                errno: libc::ENOENT,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A command whose child dies with its handle, so a failing test leaves nothing running.
pub fn cmd(program: &str, args: &[&str]) -> NsCommand {
    let mut c = NsCommand::new(program);
    c.args(args).kill_on_drop(true);
    c
}

/// `sh -c script`, as [`cmd`].
pub fn sh(script: &str) -> NsCommand {
    cmd("sh", &["-c", script])
}

/// What the command printed; it must succeed (its stderr is shown otherwise).
pub fn stdout_of(c: &mut NsCommand) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Installs, in this single-threaded (forked) process, `no_new_privs` and a seccomp filter
/// that fails system call `nr` with `errno`.
pub fn deny(nr: libc::c_long, errno: i32) -> Result<(), String> {
    let filter = ns_container::seccomp::deny(&[nr], errno).map_err(|e| e.to_string())?;
    // SAFETY: a prctl on this process.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    ns_sys::task::seccomp_set_mode_filter(&filter, 0).map_err(|e| e.to_string())
}

/// A closure child that copies this process's whole descriptor table (like any fork) and
/// keeps it for `secs` seconds; killed when the handle is dropped.
pub fn descriptor_holder(secs: libc::time_t) -> Child {
    // SAFETY: the closure only sleeps (nanosleep is async-signal-safe) and returns.
    let mut holder = unsafe {
        ns_container::clone(
            0,
            NsType::empty(),
            move || {
                libc::nanosleep(
                    &libc::timespec {
                        tv_sec: secs,
                        tv_nsec: 0,
                    },
                    std::ptr::null_mut(),
                );
                0
            },
            NsType::empty(),
        )
    }
    .unwrap();
    holder.kill_on_drop(true);
    holder
}

/// The value of the first line of `text` that starts with `key` (a `/proc/PID/status` field).
pub fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// Whether the process behind `pidfd` ends within `ms` milliseconds (its pidfd readable).
pub fn ends_within(pidfd: std::os::fd::BorrowedFd<'_>, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&pidfd),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polling one live pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) == 1 }
}

/// [`ends_within`] 10 s for a process that should die with its parent; kills it (so that a
/// failing test leaves nothing) when it does not.
pub fn dies_with_parent(pid: libc::pid_t, pidfd: std::os::fd::BorrowedFd<'_>) -> bool {
    let ended = ends_within(pidfd, 10_000);
    if !ended {
        // SAFETY: killing our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    ended
}
