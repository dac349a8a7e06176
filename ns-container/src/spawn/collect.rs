//! Collecting the outcome: reap the intermediate and the pid stage, wait for the child to
//! pass its setup (report page, status pipe or socket), and kill and reap the child on any
//! failure, so that an error leaves nothing behind.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use libc::pid_t;
use std::sync::atomic::{AtomicU32, Ordering};

use super::arena::ReportPage;
use super::errors::{io_err, record_error, report_error};
use super::shape::Shape;
use super::spec::{Spawned, Spec};
use super::start::take_task;
use crate::child::{self, Report, RECORD_FAILED};
use crate::error::{Error, Process, Result};
use crate::record::{describe_status, read_record, set_nonblocking};
use crate::sys;

/// Reaps a task of the spawn through its pidfd; `None` when it exited with status 0 (or was
/// reaped by someone else, which leaves its fate to the report page).
pub(super) fn reap(pidfd: &OwnedFd) -> Option<String> {
    match ns_sys::pidfd_wait(pidfd.as_fd(), libc::WEXITED | libc::__WALL) {
        Ok(Some(info)) => {
            let status = sys::wait_status(&info);
            (!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0))
                .then(|| describe_status(status))
        }
        Ok(None) => None,
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => None,
        Err(e) => Some(format!("could not be waited for: {e}")),
    }
}

/// Reaps the intermediate processes, waits for the child to get past its setup, and turns the
/// report into a result. On any failure the child, if it exists, is killed and reaped. The
/// second value is `doubt` (see `take_task`).
pub(super) fn collect(
    spec: &Spec<'_>,
    shape: &Shape,
    page: &ReportPage,
    intermediate: Option<OwnedFd>,
    status_r: Option<&OwnedFd>,
    fork_page: Option<(&OwnedFd, usize)>,
) -> (Result<Spawned>, bool) {
    let report = page.get();
    let mut doubt = false;
    let (mut died, child) = reap_helpers(shape, report, intermediate.as_ref(), &mut doubt);
    if shape.image_forks {
        let outcome = super::forked::collect_forked(spec, report, died, child, status_r, fork_page);
        return (outcome, doubt);
    }
    let record = child_status(shape, report, status_r, child.as_ref(), &mut died);
    let error = outcome_error(spec, shape, report, record, died, child.is_some());
    (settle_child(spec, shape, report, error, child), doubt)
}

/// A task that ended without its "done" mark did not finish, whatever its exit status said
/// (or if something else reaped it and no status is left).
fn unfinished(report: &Report, done: &AtomicU32, status: Option<String>) -> Option<String> {
    if done.load(Ordering::Acquire) == 1 || report.failed.load(Ordering::Acquire) == 1 {
        return status;
    }
    Some(status.unwrap_or_else(|| "ended before finishing (reaped by someone else)".into()))
}

/// Reaps the intermediate and the pid stage and takes the child's pidfd: the first process
/// that died unfinished (with its status), and the child if it exists.
fn reap_helpers(
    shape: &Shape,
    report: &Report,
    intermediate: Option<&OwnedFd>,
    doubt: &mut bool,
) -> (Option<(Process, String)>, Option<OwnedFd>) {
    let failed_early = || report.failed.load(Ordering::Acquire) == 1;
    let mut died: Option<(Process, String)> = None;
    if let Some(pidfd) = intermediate {
        let status = unfinished(report, &report.intermediate_done, reap(pidfd));
        died = status.map(|s| (Process::Intermediate, s));
    }
    let known = [
        report.intermediate_pid.load(Ordering::Acquire),
        report.pid_stage_pid.load(Ordering::Acquire),
    ];
    let pid_stage = take_task(
        shape,
        report.pid_stage_pidfd.load(Ordering::Acquire),
        report.pid_stage_pid.load(Ordering::Acquire),
        report.pid_stage_word.load(Ordering::Acquire),
        failed_early() || report.intermediate_done.load(Ordering::Acquire) == 1,
        &known,
        doubt,
    );
    if let Some(pidfd) = &pid_stage {
        if died.is_some() {
            // The intermediate died while the pid stage ran: stop it before it creates more.
            let _ = ns_sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        }
        let status = unfinished(report, &report.pid_stage_done, reap(pidfd));
        if died.is_none() {
            died = status.map(|s| (Process::PidStage, s));
        }
    }
    let creator_done = if shape.pid_stage {
        &report.pid_stage_done
    } else {
        &report.intermediate_done
    };
    let child = take_task(
        shape,
        report.child_pidfd.load(Ordering::Acquire),
        report.child_pid.load(Ordering::Acquire),
        report.child_word.load(Ordering::Acquire),
        !shape.intermediate || failed_early() || creator_done.load(Ordering::Acquire) == 1,
        &known,
        doubt,
    );
    (died, child)
}

/// A child with its own memory tells us on the status pipe when it is past its setup: a
/// ready record before its closure, a failure record, or end-of-file at exec. Its pidfd ends
/// the wait if it dies first, whoever else holds the pipe. The trampoline writes its
/// failures only there (it has no access to the report page); its pipe's read end was sent
/// over the status socket before the child executed it, so it is queued by now (the child's
/// creator waited for that exec), unless the child died first. Returns a failure record.
fn child_status(
    shape: &Shape,
    report: &Report,
    status_r: Option<&OwnedFd>,
    child: Option<&OwnedFd>,
    died: &mut Option<(Process, String)>,
) -> Option<child::Record> {
    let mut received = None;
    // (A held child reports on the socket itself: it sends no pipe.)
    let handed = shape.trampoline && !shape.hold;
    if let (true, Some(socket)) = (handed, status_r) {
        if report.failed.load(Ordering::Acquire) == 0 && died.is_none() {
            match sys::receive_fd(socket) {
                Ok(fd) => received = fd,
                Err(e) => *died = Some((Process::Child, format!("status socket: {e}"))),
            }
        }
    }
    let status_r = if handed { received.as_ref() } else { status_r };
    let (Some(r), Some(child)) = (status_r, child) else {
        return None;
    };
    if report.failed.load(Ordering::Acquire) != 0 || died.is_some() {
        return None;
    }
    match await_status(r, child) {
        Ok(Some(rec)) if rec[0] == RECORD_FAILED => Some(rec),
        Ok(_) => None,
        Err(e) => {
            *died = Some((Process::Child, format!("status pipe: {e}")));
            None
        }
    }
}

/// The spawn's error, if any, in order of precedence: a failure on the report page, the
/// child's failure record, a process that died unfinished, no child at all.
fn outcome_error(
    spec: &Spec<'_>,
    shape: &Shape,
    report: &Report,
    record: Option<child::Record>,
    died: Option<(Process, String)>,
    child_exists: bool,
) -> Option<Error> {
    let what = spec.what.as_str();
    if report.failed.load(Ordering::Acquire) == 1 {
        Some(report_error(spec, report))
    } else if let Some(rec) = record {
        Some(record_error(spec, &rec))
    } else if let Some((process, status)) = died {
        Some(Error::Died {
            what: what.to_owned(),
            process,
            status,
        })
    } else if !child_exists {
        Some(Error::Died {
            what: what.to_owned(),
            process: if shape.intermediate {
                Process::Intermediate
            } else {
                Process::Caller
            },
            status: "no child was created".to_owned(),
        })
    } else {
        None
    }
}

/// Hands the child back, or, on any error, kills and reaps it. A child that shares the
/// caller's memory must be off it before the caller frees the plan and the stacks: its
/// `CLONE_CHILD_CLEARTID` word says when (at once on success).
fn settle_child(
    spec: &Spec<'_>,
    shape: &Shape,
    report: &Report,
    error: Option<Error>,
    child: Option<OwnedFd>,
) -> Result<Spawned> {
    let what = spec.what.as_str();
    let child_pid = |pidfd: &OwnedFd| -> io::Result<pid_t> {
        match report.child_pid.load(Ordering::Acquire) {
            // The pid stage saw the child's PID in the target's PID namespace.
            pid if pid > 0 && !shape.pid_stage => Ok(pid),
            _ => ns_core::pidfd_pid(pidfd.as_fd()),
        }
    };
    // The child's PID; if it cannot be read, the spawn fails like any other.
    let (error, pid) = match (error, child.as_ref().map(child_pid)) {
        (None, Some(Ok(pid))) => (None, pid),
        (None, Some(Err(source))) => (Some(io_err(what, "reading the child's pid")(source)), 0),
        (error, _) => (error, 0),
    };
    let child_has_own_memory =
        shape.child_copies_memory || (shape.intermediate && shape.intermediate_copies_memory);
    let shares_memory = !child_has_own_memory;
    match (error, child) {
        (None, Some(pidfd)) => {
            if shares_memory {
                child::await_child(report);
            }
            Ok(Spawned { pid, pidfd })
        }
        (error, pidfd) => {
            if let Some(pidfd) = pidfd {
                let _ = ns_sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                if shares_memory {
                    child::await_child(report);
                }
                let _ = ns_sys::pidfd_wait(pidfd.as_fd(), libc::WEXITED | libc::__WALL);
            }
            Err(error.unwrap_or_else(|| Error::Died {
                what: what.to_owned(),
                process: Process::Child,
                status: "no child was created".to_owned(),
            }))
        }
    }
}

/// Waits for a record on the status pipe, end-of-file, or the child's death.
pub(super) fn await_status(r: &OwnedFd, child: &OwnedFd) -> io::Result<Option<child::Record>> {
    let (record, dead) = crate::sys::wait_either(r.as_raw_fd(), child.as_raw_fd())?;
    if record || !dead {
        return read_record(r);
    }
    // Dead: whatever it wrote before dying is in the pipe already.
    set_nonblocking(r)?;
    match read_record(r) {
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(None),
        other => other,
    }
}
