//! Helpers for the privileged tests: processes in new namespaces, and forked children for
//! operations the kernel only allows in a single-threaded process.
#![allow(dead_code)]

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use ns_core::{NsId, NsType};

/// Fails loudly when a privileged test cannot run for real.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root and every namespace type: run it with `cargo xtask test-root`"
    );
}

/// A pipe whose ends are close-on-exec.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two new descriptors that nobody else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Waits for a child and returns its raw wait status.
pub fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r == pid {
            return status;
        }
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINTR)
        );
    }
}

/// A process created directly in new namespaces (clone3 with `flags`), which waits until it
/// is dropped or killed. With a new user namespace, uid and gid 0 map to 0 (the whole range).
pub struct Helper {
    pub pid: libc::pid_t,
    release: Option<OwnedFd>,
    reaped: bool,
}

impl Helper {
    pub fn spawn(flags: NsType, hostname: Option<&str>) -> Helper {
        let host = hostname.map(|h| CString::new(h).unwrap());
        let (ready_r, ready_w) = pipe();
        let (release_r, release_w) = pipe();
        let mut args = ns_sys::clone_args {
            flags: flags.bits() as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        // SAFETY: fork-like clone; the child only makes async-signal-safe calls on data
        // prepared before the clone, then _exits.
        let pid = unsafe { ns_sys::clone3(&mut args) }.expect("clone3 for a helper");
        if pid == 0 {
            // SAFETY: async-signal-safe calls on prepared buffers; the child never returns.
            unsafe {
                let mut ok = 1u8;
                if let Some(h) = &host {
                    if libc::sethostname(h.as_ptr(), h.as_bytes().len()) != 0 {
                        ok = 0;
                    }
                }
                libc::write(ready_w.as_raw_fd(), &ok as *const u8 as *const _, 1);
                let mut b = 0u8;
                libc::read(release_r.as_raw_fd(), &mut b as *mut u8 as *mut _, 1);
                libc::_exit(0);
            }
        }
        drop(ready_w);
        drop(release_r);
        if flags.contains(NsType::USER) {
            std::fs::write(format!("/proc/{pid}/uid_map"), "0 0 4294967295").unwrap();
            std::fs::write(format!("/proc/{pid}/gid_map"), "0 0 4294967295").unwrap();
        }
        let mut ready = [0u8; 1];
        std::fs::File::from(ready_r).read_exact(&mut ready).unwrap();
        assert_eq!(ready[0], 1, "helper could not set its hostname");
        Helper {
            pid,
            release: Some(release_w),
            reaped: false,
        }
    }

    pub fn id(&self, t: NsType) -> NsId {
        ns_core::getns(self.pid, t).unwrap().unwrap()
    }

    /// Kills and reaps the helper now.
    pub fn kill(&mut self) {
        if !self.reaped {
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            wait(self.pid);
            self.reaped = true;
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Some(w) = self.release.take() {
            let _ = std::fs::File::from(w).write_all(b"x");
        }
        if !self.reaped {
            wait(self.pid);
        }
    }
}

/// Runs `f` in a forked child, which is single-threaded, and returns what it returned.
/// Panics in the child come back as `Err`.
pub fn in_child(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (r, w) = pipe();
    // SAFETY: the child runs test code only, reports through the pipe and _exits; glibc keeps
    // malloc usable after fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        drop(r);
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
                Err(p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".to_owned()))
            });
        let (code, msg) = match result {
            Ok(()) => (0, String::new()),
            Err(m) => (1, m),
        };
        let _ = std::fs::File::from(w).write_all(msg.as_bytes());
        // SAFETY: leave the child without running the parent's destructors or atexit hooks.
        unsafe { libc::_exit(code) };
    }
    drop(w);
    // Wait first: a child forked meanwhile by another test may hold a copy of `w`, so the
    // pipe's end-of-file cannot be trusted. The message fits in the pipe buffer.
    let status = wait(pid);
    // SAFETY: setting O_NONBLOCK on a descriptor we own.
    unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut msg = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut msg);
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(format!("child failed (status {status:#x}): {msg}"))
    }
}

/// Identity of one of the calling thread's namespaces.
pub fn my_id(t: NsType) -> NsId {
    ns_core::Namespace::current(t).unwrap().id().unwrap()
}

/// Identity of the calling thread's namespace for children (pid_for_children).
pub fn my_child_id(t: NsType) -> NsId {
    ns_core::Namespace::for_children(t).unwrap().id().unwrap()
}

/// The calling thread's hostname (per UTS namespace).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its whole length.
    assert_eq!(
        unsafe { libc::gethostname(buf.as_mut_ptr() as *mut _, buf.len()) },
        0
    );
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Network interfaces visible to the calling thread.
pub fn interfaces() -> Vec<String> {
    // SAFETY: if_nameindex returns a list we free below.
    let list = unsafe { libc::if_nameindex() };
    assert!(!list.is_null());
    let mut names = Vec::new();
    let mut p = list;
    // SAFETY: the list ends with an entry whose index is 0.
    unsafe {
        while (*p).if_index != 0 {
            names.push(
                std::ffi::CStr::from_ptr((*p).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            p = p.add(1);
        }
        libc::if_freenameindex(list);
    }
    names
}

/// Whether the calling test runs in a process of its own, where nothing else changes the
/// process-wide state it measures (the descriptor table, the mount table of its mount
/// namespace). The first call, in the test binary where other tests run on other threads,
/// runs the test `name` again in a new process of the same binary with nothing else
/// (`--exact --test-threads=1`, marked by `NS_TEST_ALONE`), asserts that it ran there and
/// passed, and returns `false`: the caller then returns. In that process it returns `true`
/// and the test measures.
///
/// ```ignore
/// if !alone("leaves_no_descriptor") {
///     return;
/// }
/// let before = fd_count();
/// ```
pub fn alone(name: &str) -> bool {
    if std::env::var_os("NS_TEST_ALONE").is_some_and(|v| v == name) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--include-ignored", "--test-threads=1"])
        .env("NS_TEST_ALONE", name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name}, run alone: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// In a process with a mount namespace of its own: stops its mounts from propagating
/// (`MS_REC | MS_PRIVATE` on `/`) and, when `proc` is true, mounts a `/proc` of its pid
/// namespace. `Err` with the failing call's error.
pub fn private_mounts(proc: bool) -> Result<(), String> {
    // SAFETY: mount(2) with NUL-terminated static strings, in the caller's own namespace.
    let failed = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
            || (proc
                && libc::mount(
                    c"proc".as_ptr(),
                    c"/proc".as_ptr(),
                    c"proc".as_ptr(),
                    0,
                    std::ptr::null(),
                ) != 0)
    };
    if failed {
        return Err(format!("mounts: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Number of open file descriptors of this process. Other tests open and close descriptors
/// on other threads: compare counts only in a test that runs [`alone`].
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Where the cgroup v2 hierarchy is mounted.
pub fn cgroup2_root() -> std::path::PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in info.lines() {
        let (left, right) = line.split_once(" - ").unwrap();
        if right.starts_with("cgroup2 ") {
            return left.split_whitespace().nth(4).unwrap().into();
        }
    }
    panic!("no cgroup2 mount: the cgroup tests need a cgroup v2 hierarchy");
}
