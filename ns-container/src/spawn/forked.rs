//! Collecting a spawn whose program's process the trampoline created (`Shape::image_forks`):
//! the child entered the target's pid namespace for its children and executed the
//! trampoline, which created the program's process there as the caller's child and left
//! (with a parent-death signal asked, only once that process had exec'd or died).
//!
//! What the caller trusts, and why:
//! - the trampoline's end (its pidfd, readable once it exited) says whether the program's
//!   process was created: the kernel's word, which nothing in the container can fake;
//! - the program's pid comes from the fork page, written by the kernel at creation
//!   (`CLONE_PARENT_SETTID`) into a page the program's process never had (`MADV_DONTFORK`);
//!   a process that is not the caller's child is refused, so a pid reused after someone
//!   else reaped it is never taken for the program;
//! - the program has exec'd once every write end of the status pipe is closed, as for std's
//!   `spawn`; since the container could take a write end from the program's process before
//!   its `execve` and hold it, the process's end (its pidfd) ends the wait too;
//! - a record on the status pipe is a failure of the trampoline or of the program's
//!   process before its `execve` (one the container could also write: at worst a spawn into
//!   it fails).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use libc::pid_t;

use super::collect::reap;
use super::errors::{io_err, record_error, report_error};
use super::spec::{Spawned, Spec};
use crate::child::{Report, RECORD_FAILED};
use crate::error::{Error, Process, Result};
use crate::record::read_record;
use crate::sys;

/// Waits for the trampoline (`child`, the spawn's child after its `execve`) to end, then for
/// the program's `execve` (or its end), and takes the program's process; on any failure
/// kills and reaps it.
pub(super) fn collect_forked(
    spec: &Spec<'_>,
    report: &Report,
    mut died: Option<(Process, String)>,
    child: Option<OwnedFd>,
    status_socket: Option<&OwnedFd>,
    page: Option<(&OwnedFd, usize)>,
) -> Result<Spawned> {
    let what = spec.what.as_str();
    let failed_early = report.failed.load(Ordering::Acquire) == 1;
    // The status pipe's read end, sent by the child before it executed the trampoline (its
    // creator waited for that exec, so it is queued unless the child failed or died first).
    let mut status_r = None;
    if let (false, None, Some(socket)) = (failed_early, &died, status_socket) {
        match sys::receive_fd(socket) {
            Ok(fd) => status_r = fd,
            Err(e) => died = Some((Process::Child, format!("status socket: {e}"))),
        }
    }
    // The trampoline's end: the program's process exists by then (with a parent-death
    // signal, it has also exec'd or died).
    let status = child.as_ref().and_then(reap);
    let pid = page.and_then(|(fd, offset)| page_pid(fd, offset));
    let program = pid.map(|pid| (pid, ns_sys::pidfd_open(pid, 0)));
    // Only a process that is still the caller's child is the program: one reaped by someone
    // else may have left its pid to another process.
    let ours = matches!(&program, Some((_, Ok(pidfd))) if is_our_child(pidfd));
    let mut waited = Ok(());
    if let (false, None, None, Some(r), Some((_, Ok(pidfd))), true) =
        (failed_early, &died, &status, &status_r, &program, ours)
    {
        waited = await_exec(r, pidfd);
    }
    // (The child made the pipe non-blocking.)
    let record = status_r.as_ref().and_then(|r| {
        read_record(r)
            .ok()
            .flatten()
            .filter(|rec| rec[0] == RECORD_FAILED)
    });
    let error = if report.failed.load(Ordering::Acquire) == 1 {
        Some(report_error(spec, report))
    } else if let Some(rec) = record {
        Some(record_error(spec, &rec))
    } else if let Err(e) = waited {
        Some(io_err(what, "waiting for the program's execve")(e))
    } else if let Some((process, status)) = died {
        Some(Error::Died {
            what: what.to_owned(),
            process,
            status,
        })
    } else if let Some(status) = status {
        Some(Error::Died {
            what: what.to_owned(),
            process: Process::Child,
            status,
        })
    } else if child.is_none() || pid.is_none() {
        Some(Error::Died {
            what: what.to_owned(),
            process: Process::Child,
            status: "no process was created for the program".to_owned(),
        })
    } else {
        None
    };
    match (error, program) {
        (None, Some((pid, Ok(pidfd)))) => {
            if ours {
                return Ok(Spawned { pid, pidfd });
            }
            Err(Error::Died {
                what: what.to_owned(),
                process: Process::Child,
                status: "the program's process was reaped by someone else".to_owned(),
            })
        }
        // Gone already: only reaping makes a child's pid vanish, and the caller did not.
        (None, Some((_, Err(e)))) if e.raw_os_error() == Some(libc::ESRCH) => Err(Error::Died {
            what: what.to_owned(),
            process: Process::Child,
            status: "the program's process was reaped by someone else".to_owned(),
        }),
        (None, Some((pid, Err(e)))) => {
            kill_unopened(pid);
            Err(io_err(what, "opening a pidfd of the program")(e))
        }
        (error, program) => {
            match program {
                Some((_, Ok(pidfd))) if ours => {
                    let _ = ns_sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                    let _ = ns_sys::pidfd_wait(pidfd.as_fd(), libc::WEXITED | libc::__WALL);
                }
                Some((pid, Err(_))) => kill_unopened(pid),
                _ => {}
            }
            Err(error.unwrap_or_else(|| Error::Died {
                what: what.to_owned(),
                process: Process::Child,
                status: "no process was created for the program".to_owned(),
            }))
        }
    }
}

/// Waits until the program's process has exec'd or failed (every write end of the status
/// pipe closed, or a record in it), or has ended (its pidfd readable), as std's `spawn` waits
/// on its own pipe. The end of the process is part of the wait so that a write end taken from
/// the process before its `execve` (by a container that may trace it) cannot hold the spawn
/// past the program's life.
fn await_exec(status_r: &OwnedFd, program: &OwnedFd) -> std::io::Result<()> {
    sys::wait_either(status_r.as_raw_fd(), program.as_raw_fd()).map(|_| ())
}

/// The program's process when no pidfd of it could be opened (out of descriptors): killed
/// and reaped by its pid, only while it is the caller's unreaped child (the pid came from the
/// fork page, so it named the program when the trampoline created it).
fn kill_unopened(pid: pid_t) {
    // SAFETY: an all-zero siginfo is a valid value to be filled in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let id = pid as libc::id_t;
    let probe = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL;
    // SAFETY: waitid on our own child into a live siginfo, not reaping.
    if unsafe { libc::waitid(libc::P_PID, id, &mut info, probe) } != 0 {
        return;
    }
    // SAFETY: signalling and then reaping the caller's own unreaped child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::__WALL);
    }
}

/// The pid the kernel wrote into the fork page at `offset` (the spawn's slot), if it did.
fn page_pid(page: &OwnedFd, offset: usize) -> Option<pid_t> {
    let mut pid: pid_t = 0;
    // SAFETY: reading four bytes into a live integer from a descriptor we own.
    let n = unsafe {
        libc::pread(
            page.as_raw_fd(),
            (&mut pid as *mut pid_t).cast(),
            std::mem::size_of::<pid_t>(),
            offset as libc::off_t,
        )
    };
    (n == std::mem::size_of::<pid_t>() as isize && pid > 0).then_some(pid)
}

/// Whether the process is a child of the caller's (running or not yet reaped).
fn is_our_child(pidfd: &OwnedFd) -> bool {
    ns_sys::pidfd_wait(
        pidfd.as_fd(),
        libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL,
    )
    .is_ok()
}
