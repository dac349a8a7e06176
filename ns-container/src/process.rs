//! [`Child`]: a handle to a spawned process, with the feel of `std::process::Child`.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::pidns::{self, InitHandle, NsKey, Reapable};
use std::os::unix::process::ExitStatusExt;
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus, Output};

/// A process started by [`clone`](crate::clone()) or [`NsCommand::spawn`](crate::NsCommand::spawn).
///
/// It is the caller's child (whatever namespaces it lives in), so its exit status is never
/// lost: [`Child::wait`] reaps it. Signals go through its pidfd, so they can never reach
/// another process that reused the PID. As with `std::process::Child`, dropping the handle
/// neither kills nor reaps the process (wait for it, or it stays a zombie until the caller
/// exits), unless [`Child::kill_on_drop`] asks for that.
///
/// ```
/// use ns_container::{NsCommand, Stdio};
///
/// let mut child = NsCommand::new("sh")
///     .args(["-c", "echo hi; exit 3"])
///     .stdout(Stdio::piped())
///     .spawn()?;
/// let mut out = String::new();
/// std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out)?;
/// assert_eq!(out, "hi\n");
/// assert_eq!(child.wait()?.code(), Some(3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    process: Arc<Reapable>,
    /// The pid namespace this process is the init of, when the spawn made one.
    init_of: Option<NsKey>,
    /// Counted while it exists, when the spawn made a pid namespace (see `crate::pidns`).
    _init_handle: Option<InitHandle>,
    status: Option<ExitStatus>,
    kill_on_drop: bool,
    /// The child's stdin, if it was [`Stdio::piped`](crate::Stdio::piped).
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if it was [`Stdio::piped`](crate::Stdio::piped).
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if it was [`Stdio::piped`](crate::Stdio::piped).
    pub stderr: Option<ChildStderr>,
}

impl Child {
    pub(crate) fn new(pid: libc::pid_t, pidfd: OwnedFd) -> Child {
        Child::with(pid, Reapable::new(pidfd, Vec::new()), None)
    }

    /// A handle of a process spawned into a pid namespace other than the caller's (`init`:
    /// one the spawn created, whose init it is, counted from before the spawn): kept for
    /// waits on that namespace's init (see `crate::pidns`), while any such wait can happen.
    /// `entered`: the pid namespace the process was spawned into, when the spawn holds a
    /// handle of it (else `/proc/PID/ns/pid` is read).
    pub(crate) fn in_pid_namespace(
        pid: libc::pid_t,
        pidfd: OwnedFd,
        init: Option<InitHandle>,
        entered: Option<&ns_core::Namespace>,
    ) -> Child {
        if init.is_none() && !pidns::any_init_handle() {
            return Child::new(pid, pidfd);
        }
        let chain = match entered {
            Some(ns) if init.is_none() => pidns::chain_from(ns),
            _ => pidns::chain_of(pid, &pidfd),
        };
        let process = Reapable::new(pidfd, chain);
        pidns::register(&process);
        let init_of = if init.is_some() {
            process.own_namespace()
        } else {
            None
        };
        let mut child = Child::with(pid, process, init_of);
        child._init_handle = init;
        child
    }

    fn with(pid: libc::pid_t, process: Arc<Reapable>, init_of: Option<NsKey>) -> Child {
        Child {
            pid,
            process,
            init_of,
            _init_handle: None,
            status: None,
            kill_on_drop: false,
            stdin: None,
            stdout: None,
            stderr: None,
        }
    }

    /// The process's PID as seen from the caller's PID namespace, like
    /// `std::process::Child::id`.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// The process's PID as seen from the caller's PID namespace.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// The process's pidfd (`O_CLOEXEC`), valid for the handle's lifetime.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.process.pidfd.as_fd()
    }

    /// When `yes`, dropping the handle before the process has been waited for kills it
    /// (`SIGKILL` through the pidfd) and reaps it, so that nothing outlives its owner, even
    /// on a panic.
    pub fn kill_on_drop(&mut self, yes: bool) -> &mut Child {
        self.kill_on_drop = yes;
        self
    }

    /// Sends `signal` through the pidfd (`pidfd_send_signal`, Linux 5.1).
    ///
    /// # Errors
    /// `ESRCH` once the process has exited and been reaped.
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        ns_sys::pidfd_send_signal(self.process.pidfd.as_fd(), signal)
    }

    /// Kills the process with `SIGKILL`. Like std, succeeds if it has already exited.
    ///
    /// # Errors
    /// Those of `pidfd_send_signal` other than `ESRCH`.
    pub fn kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        match self.signal(libc::SIGKILL) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }

    /// Waits for the process to exit and reaps it, through its pidfd (`waitid(P_PIDFD)`,
    /// Linux 5.4), so it can never reap another process that reused the PID. Closes the
    /// child's stdin first, as std does, so a child reading it sees end-of-file.
    ///
    /// # Errors
    /// Those of `waitid`. When something else in the program reaped the child first (a
    /// `waitpid(-1)` loop, [`destroy`](crate::destroy)), the status still comes back from the
    /// pidfd where the kernel keeps it (`PIDFD_INFO_EXIT`, Linux 6.15); otherwise the error
    /// wraps [`Error::ReapedElsewhere`](crate::Error::ReapedElsewhere) (`ECHILD`).
    ///
    /// The init of a pid namespace the spawn created cannot exit before every process of its
    /// namespace is reaped, and those spawned into it later (an exec) are the caller's
    /// children: waiting for such an init reaps, without blocking, those of them that have
    /// exited (their handles still report their statuses), so a wait or drop never waits on
    /// the caller itself.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(status) = self.status {
            return Ok(status);
        }
        let Some(ns) = self.init_of else {
            return self
                .reap(libc::WEXITED | libc::__WALL)
                .map(|status| status.unwrap_or_else(|| ExitStatus::from_raw(0)));
        };
        loop {
            if let Some(status) = self.reap(libc::WEXITED | libc::WNOHANG | libc::__WALL)? {
                return Ok(status);
            }
            pidns::release(ns, &self.process);
            let mut pfd = libc::pollfd {
                fd: self.process.pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: polling one live pollfd; readable once the process has exited. The
            // timeout brings the loop back to release what died in the namespace meanwhile.
            unsafe { libc::poll(&mut pfd, 1, RELEASE_INTERVAL_MS) };
        }
    }

    /// Reaps the process if it has exited, without blocking.
    ///
    /// # Errors
    /// As [`Child::wait`].
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        self.reap(libc::WEXITED | libc::WNOHANG | libc::__WALL)
    }

    /// Waits for the process to exit without holding up a thread, under a tokio runtime
    /// (feature `tokio`): the pidfd is registered with the runtime's reactor and becomes
    /// readable when the process exits (`poll` on a pidfd, Linux 5.3); then it is reaped as
    /// [`Child::wait`] reaps it. Cancel-safe: dropping the future leaves the child to be
    /// waited for again (its stdin, closed at the first poll as [`Child::wait`] closes it,
    /// stays closed).
    ///
    /// ```no_run
    /// # async fn run() -> std::io::Result<()> {
    /// use ns_container::NsCommand;
    /// use ns_core::NsType;
    ///
    /// let mut child = NsCommand::new("sleep").arg("1").unshare(NsType::NET).spawn()?;
    /// let status = child.wait_async().await?;
    /// assert!(status.success());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Child::wait`], and registering the pidfd with the reactor.
    ///
    /// # Panics
    /// Outside a tokio runtime with I/O enabled (`enable_io`), as tokio's `AsyncFd` does;
    /// for the init of a pid namespace the spawn created, also without timers
    /// (`enable_time`): it reaps what exited in its namespace at intervals, as
    /// [`Child::wait`] does.
    #[cfg(feature = "tokio")]
    pub async fn wait_async(&mut self) -> io::Result<ExitStatus> {
        /// The pidfd's number: `AsyncFd` only needs to see it while this future lives, and
        /// the `Child` (borrowed by the future) keeps it open that long.
        struct Pidfd(std::os::fd::RawFd);
        impl AsRawFd for Pidfd {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.0
            }
        }
        drop(self.stdin.take());
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        // SAFETY: the number is the pidfd, which `self` (borrowed by this future) keeps open
        // and unchanged for as long as `registered` lives.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                Pidfd(self.process.pidfd.as_raw_fd()),
                tokio::io::Interest::READABLE,
            )
        }
        .map_err(|e| e.into_parts().1)?;
        loop {
            let Some(ns) = self.init_of else {
                let mut ready = registered.readable().await?;
                if let Some(status) = self.try_wait()? {
                    return Ok(status);
                }
                ready.clear_ready();
                continue;
            };
            // The init of a pid namespace: reap what exited in it meanwhile, as `wait` does.
            pidns::release(ns, &self.process);
            let interval = std::time::Duration::from_millis(RELEASE_INTERVAL_MS as u64);
            if let Ok(ready) = tokio::time::timeout(interval, registered.readable()).await {
                ready?.clear_ready();
            }
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
        }
    }

    fn reap(&mut self, options: libc::c_int) -> io::Result<Option<ExitStatus>> {
        let raw = match self.process.taken() {
            Some(raw) => raw,
            None => match self.reap_pidfd(options)? {
                Some(raw) => raw,
                None => return Ok(None),
            },
        };
        let status = ExitStatus::from_raw(raw);
        self.status = Some(status);
        Ok(Some(status))
    }

    /// The wait status through the pidfd (`None`: still running, with `WNOHANG`).
    fn reap_pidfd(&mut self, options: libc::c_int) -> io::Result<Option<libc::c_int>> {
        Ok(Some(
            match ns_sys::pidfd_wait(self.process.pidfd.as_fd(), options) {
                Ok(None) => return Ok(None),
                Ok(Some(info)) => crate::sys::wait_status(&info),
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                    match self.process.taken().or_else(|| self.reaped_elsewhere()) {
                        Some(raw) => raw,
                        None => {
                            return Err(io::Error::other(crate::error::Error::ReapedElsewhere {
                                pid: self.pid,
                            }))
                        }
                    }
                }
                Err(e) => return Err(e),
            },
        ))
    }

    /// The wait status of a child that something else reaped (for example
    /// [`destroy`](crate::destroy)), from its pidfd: `PIDFD_INFO_EXIT`, Linux 6.15. The
    /// kernel records it only when the child's real parent reaped it, so it is the child's
    /// own status, never another process's.
    fn reaped_elsewhere(&self) -> Option<libc::c_int> {
        let mut info = ns_sys::pidfd_info {
            mask: ns_sys::pidfd::PIDFD_INFO_EXIT,
            ..Default::default()
        };
        ns_sys::pidfd::pidfd_get_info(self.process.pidfd.as_fd(), &mut info).ok()?;
        (info.mask & ns_sys::pidfd::PIDFD_INFO_EXIT != 0).then_some(info.exit_code)
    }

    /// Waits for the process and collects all of its stdout and stderr (those that were
    /// piped), like `std::process::Child::wait_with_output`.
    ///
    /// # Errors
    /// Those of reading the pipes and of `waitpid`.
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (stdout, stderr) = match (self.stdout.take(), self.stderr.take()) {
            (None, None) => (Vec::new(), Vec::new()),
            (Some(mut out), None) => {
                let mut buf = Vec::new();
                out.read_to_end(&mut buf)?;
                (buf, Vec::new())
            }
            (None, Some(mut err)) => {
                let mut buf = Vec::new();
                err.read_to_end(&mut buf)?;
                (Vec::new(), buf)
            }
            (Some(out), Some(err)) => read2(out.into(), err.into())?,
        };
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// The process's pidfd, as [`Child::pidfd`]: poll it for the exit, or pass it to
/// `pidfd_send_signal`, `waitid(P_PIDFD)` or `setns`.
impl AsFd for Child {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.process.pidfd.as_fd()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.kill_on_drop && self.status.is_none() {
            let _ = self.kill();
            let _ = self.wait();
        }
    }
}

/// How often a wait for the init of a pid namespace reaps what exited in it meanwhile.
const RELEASE_INTERVAL_MS: libc::c_int = 50;

/// Reads two pipes to their ends at once, so neither can fill up and block the child.
fn read2(a: OwnedFd, b: OwnedFd) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut fds = [
        libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: b.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let mut out = [Vec::new(), Vec::new()];
    let mut open = [true, true];
    let mut chunk = [0u8; 8192];
    while open[0] || open[1] {
        for (i, fd) in fds.iter_mut().enumerate() {
            if !open[i] {
                fd.fd = -1;
            }
        }
        // SAFETY: polling two live pollfd structures.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        for i in 0..2 {
            if !open[i] || fds[i].revents == 0 {
                continue;
            }
            // SAFETY: reading into a live buffer from a descriptor we own.
            let n = unsafe {
                libc::read(
                    fds[i].fd,
                    chunk.as_mut_ptr() as *mut libc::c_void,
                    chunk.len(),
                )
            };
            match n {
                0 => open[i] = false,
                n if n > 0 => out[i].extend_from_slice(&chunk[..n as usize]),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EINTR)
                        && e.raw_os_error() != Some(libc::EAGAIN)
                    {
                        return Err(e);
                    }
                }
            }
        }
    }
    let [o, e] = out;
    Ok((o, e))
}
