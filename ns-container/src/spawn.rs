//! The caller's side of a spawn: decide which processes are needed, prepare everything the
//! children will use, start the chain, collect the outcome and clean up on every error path.
//!
//! The chain, for a spawn that enters namespaces E of a target and creates new ones N:
//!
//! ```text
//! caller ──clone3(VFORK|FILES)──▶ intermediate: setns(E)
//!                                   └─clone3(PARENT|VFORK|FILES)──▶ pid stage   (only if pid ∈ E and pid ∈ N)
//!                                        └─clone3(PARENT|N)──▶ child: setup, then execve / closure
//! ```
//!
//! Every process is created with `CLONE_PARENT` (or by the caller itself), so all of them are
//! the caller's children: the caller reaps the intermediate and pid stage, and the child is
//! waitable like any other. Each creator is suspended (`CLONE_VFORK`) until the process it
//! created has exited or exec'd, so when the caller's `clone3` returns, everything but the
//! child is done. With nothing to enter and no id maps to write, the caller creates the child
//! itself: one `clone3(CLONE_VM|CLONE_VFORK)`, like `posix_spawn`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use libc::{c_char, c_int, c_void, pid_t};
use ns_core::{EntryPlan, KernelVersion, NsType, Subject};

use crate::child::{self, Action, Buf, Plan, Report, Task, MAX_MOVES, RECORD_FAILED, RECORD_READY};
use crate::error::{io_error, Error, Process, Result, Step};
use crate::sys::{self, SignalsBlocked, Stacks};
use ns_sys::clone3_on_stack;

/// What to run in the child.
pub(crate) enum SpecAction {
    /// `execve` one of `candidates` with `argv` and `envp`.
    Exec {
        candidates: Vec<CString>,
        argv: Vec<CString>,
        envp: Vec<CString>,
    },
    /// Call `call(data)` and exit with its result. The child is a copy of the caller's memory.
    Call {
        data: *mut c_void,
        call: unsafe fn(*mut c_void) -> c_int,
    },
}

/// A complete description of one spawn.
pub(crate) struct Spec<'a> {
    /// The program or closure, for messages.
    pub what: String,
    /// Whose namespaces are entered, for messages.
    pub subject: Subject,
    pub entry: Option<EntryPlan<'a>>,
    pub unshare: NsType,
    pub uid_map: Option<Vec<u8>>,
    pub gid_map: Option<Vec<u8>>,
    pub setgroups_deny: bool,
    pub time_offsets: Option<Vec<u8>>,
    pub hostname: Option<Vec<u8>>,
    pub cgroup: Option<PathBuf>,
    /// `Some(true)`: write `cgroup.procs`; `Some(false)`: `CLONE_INTO_CGROUP`; `None`: by kernel.
    pub cgroup_procs: Option<bool>,
    pub moves: Vec<(RawFd, RawFd)>,
    pub close_fds: bool,
    pub groups: Option<Vec<libc::gid_t>>,
    pub gid: Option<libc::gid_t>,
    pub uid: Option<libc::uid_t>,
    pub cwd: Option<CString>,
    pub pdeathsig: c_int,
    pub action: SpecAction,
    /// See `NsCommand::pause_intermediate_for_tests`.
    pub pause: Option<(RawFd, bool)>,
}

/// A started child.
pub(crate) struct Spawned {
    pub pid: pid_t,
    pub pidfd: OwnedFd,
}

/// How each process of a spawn is created; decided from the spec alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// An intermediate exists (there is something to enter, or a handshake to do).
    pub intermediate: bool,
    /// The intermediate has its own copy of memory (it enters a user or time namespace,
    /// which the kernel refuses to a process sharing its memory).
    pub intermediate_copies_memory: bool,
    /// A pid stage exists.
    pub pid_stage: bool,
    /// The child has its own copy of memory (it runs a closure, or enters a new time
    /// namespace).
    pub child_copies_memory: bool,
    /// The creator waits, suspended, until the child has exec'd or failed (`CLONE_VFORK`).
    pub child_vfork: bool,
    /// The child waits for its creator to write id maps or its cgroup.
    pub handshake: bool,
}

impl Shape {
    pub(crate) fn of(spec: &Spec<'_>) -> Shape {
        let entered = spec
            .entry
            .as_ref()
            .map(EntryPlan::types)
            .unwrap_or(NsType::empty());
        let call = matches!(spec.action, SpecAction::Call { .. });
        let handshake = spec.uid_map.is_some()
            || spec.gid_map.is_some()
            || spec.setgroups_deny
            || spec.cgroup_via_procs();
        let intermediate = !entered.is_empty() || handshake || spec.pause.is_some();
        Shape {
            intermediate,
            intermediate_copies_memory: entered.intersects(NsType::USER | NsType::TIME),
            pid_stage: entered.contains(NsType::PID) && spec.unshare.contains(NsType::PID),
            child_copies_memory: call || spec.unshare.contains(NsType::TIME),
            child_vfork: !handshake && !call,
            handshake,
        }
    }
}

impl Spec<'_> {
    fn cgroup_via_procs(&self) -> bool {
        self.cgroup.is_some() && self.cgroup_procs.unwrap_or(!into_cgroup_supported())
    }
}

fn into_cgroup_supported() -> bool {
    KernelVersion::at_least(5, 7)
}

fn clear_sighand_supported() -> bool {
    KernelVersion::at_least(5, 5)
}

fn close_range_cloexec_supported() -> bool {
    KernelVersion::at_least(5, 11)
}

/// The `MAP_SHARED` page the tasks report to.
struct ReportPage(*mut Report);

impl ReportPage {
    fn new() -> io::Result<ReportPage> {
        // SAFETY: an anonymous shared mapping, big enough for one Report.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let report = p as *mut Report;
        // SAFETY: the mapping is zero-filled and suitably aligned; only the pidfd needs -1.
        unsafe { (*report).child_pidfd.store(-1, Ordering::Relaxed) };
        Ok(ReportPage(report))
    }

    fn get(&self) -> &Report {
        // SAFETY: the page stays mapped for the lifetime of `self`.
        unsafe { &*self.0 }
    }
}

impl Drop for ReportPage {
    fn drop(&mut self) {
        // SAFETY: unmapping the page mapped in `new`; no task uses it any more.
        unsafe { libc::munmap(self.0 as *mut c_void, 4096) };
    }
}

fn io_err(what: &str, op: &'static str) -> impl FnOnce(io::Error) -> Error {
    io_error(format!("spawning {what}"), op)
}

/// Null-terminated array of pointers into `strings`.
fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Runs one spawn.
pub(crate) fn spawn(spec: &Spec<'_>) -> Result<Spawned> {
    let what = spec.what.as_str();
    let invalid = |reason: &str| Error::Invalid {
        what: format!("spawning {what}"),
        reason: reason.to_owned(),
    };
    if spec.hostname.is_some() && !spec.unshare.contains(NsType::UTS) {
        return Err(invalid(
            "a hostname needs a new uts namespace (unshare NsType::UTS)",
        ));
    }
    if spec.time_offsets.is_some() && !spec.unshare.contains(NsType::TIME) {
        return Err(invalid(
            "time offsets need a new time namespace (unshare NsType::TIME)",
        ));
    }
    if (spec.uid_map.is_some() || spec.gid_map.is_some() || spec.setgroups_deny)
        && !spec.unshare.contains(NsType::USER)
    {
        return Err(invalid(
            "id maps and setgroups need a new user namespace (unshare NsType::USER)",
        ));
    }
    if spec.moves.len() > MAX_MOVES {
        return Err(invalid(&format!(
            "at most {MAX_MOVES} descriptors can be given to the child"
        )));
    }
    let shape = Shape::of(spec);

    let report = ReportPage::new().map_err(io_err(what, "mapping the report page"))?;
    let needs_proc = spec.uid_map.is_some()
        || spec.gid_map.is_some()
        || spec.setgroups_deny
        || spec.unshare.contains(NsType::TIME)
        || (spec.close_fds && !close_range_cloexec_supported());
    let proc_fd = if needs_proc {
        Some(
            open(c"/proc", libc::O_PATH | libc::O_DIRECTORY)
                .map_err(io_err(what, "opening /proc"))?,
        )
    } else {
        None
    };
    let (cgroup_fd, cgroup_procs_fd) = match &spec.cgroup {
        None => (None, None),
        Some(dir) => {
            let cdir = CString::new(dir.as_os_str().as_encoded_bytes())
                .map_err(|_| invalid("the cgroup path contains a NUL byte"))?;
            if !spec.cgroup_via_procs() {
                (
                    Some(
                        open(&cdir, libc::O_RDONLY | libc::O_DIRECTORY)
                            .map_err(io_err(what, "opening the cgroup"))?,
                    ),
                    None,
                )
            } else {
                let procs = CString::new(
                    dir.join("cgroup.procs")
                        .into_os_string()
                        .into_encoded_bytes(),
                )
                .map_err(|_| invalid("the cgroup path contains a NUL byte"))?;
                (
                    None,
                    Some(
                        open(&procs, libc::O_WRONLY)
                            .map_err(io_err(what, "opening cgroup.procs"))?,
                    ),
                )
            }
        }
    };
    let (status_r, status_w) = if shape.child_vfork {
        (None, None)
    } else {
        let (r, w) = sys::pipe().map_err(io_err(what, "creating the status pipe"))?;
        (Some(r), Some(w))
    };
    let (release_r, release_w) = if shape.handshake {
        let (r, w) = sys::pipe().map_err(io_err(what, "creating the release pipe"))?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let child_stack = if matches!(spec.action, SpecAction::Call { .. }) {
        8 << 20
    } else {
        256 << 10
    };
    let stacks =
        Stacks::new(&[64 << 10, 64 << 10, child_stack]).map_err(io_err(what, "mapping stacks"))?;

    // Pointer arrays into the spec's strings, alive until this function returns.
    let (candidates, argv, envp) = match &spec.action {
        SpecAction::Exec {
            candidates,
            argv,
            envp,
        } => (pointers(candidates), pointers(argv), pointers(envp)),
        SpecAction::Call { .. } => (Vec::new(), Vec::new(), Vec::new()),
    };
    let action = match &spec.action {
        SpecAction::Exec { .. } => Action::Exec {
            candidates: candidates.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
        },
        SpecAction::Call { data, call } => Action::Call {
            data: *data,
            call: *call,
        },
    };

    let raw = |fd: &Option<OwnedFd>| fd.as_ref().map(AsRawFd::as_raw_fd).unwrap_or(-1);

    let mut child_flags = (spec.unshare - NsType::TIME).bits() as u64
        | libc::CLONE_PIDFD as u64
        | libc::CLONE_PARENT_SETTID as u64;
    if shape.intermediate {
        child_flags |= libc::CLONE_PARENT as u64;
    }
    if !shape.child_copies_memory {
        child_flags |= libc::CLONE_VM as u64;
    }
    if shape.child_vfork {
        child_flags |= libc::CLONE_VFORK as u64;
    }
    if cgroup_fd.is_some() {
        child_flags |= ns_sys::CLONE_INTO_CGROUP;
    }
    if clear_sighand_supported() {
        child_flags |= ns_sys::CLONE_CLEAR_SIGHAND;
    }

    let blocked = SignalsBlocked::new();
    // SAFETY: an all-zero sigset_t is a valid (empty) set, filled below.
    let mut sigmask: libc::sigset_t = unsafe { std::mem::zeroed() };
    match spec.action {
        // A program starts with no signal blocked, as std's Command does.
        // SAFETY: sigemptyset writes only to the set passed.
        SpecAction::Exec { .. } => unsafe {
            libc::sigemptyset(&mut sigmask);
        },
        // A closure continues with the caller's mask, as after fork.
        SpecAction::Call { .. } => sigmask = blocked.old,
    }

    let plan = Box::new(Plan {
        report: report.0,
        entry: spec.entry,
        pid_stage: shape.pid_stage,
        pid_stage_stack: stacks.region(1),
        pause_fd: spec.pause.map(|(fd, _)| fd).unwrap_or(-1),
        pause_after_child: spec.pause.map(|(_, after)| after).unwrap_or(false),
        child_flags,
        child_exit_signal: if shape.intermediate {
            0
        } else {
            libc::SIGCHLD as u64
        },
        child_stack: stacks.region(2),
        cgroup_fd: raw(&cgroup_fd),
        handshake: shape.handshake,
        proc_fd: raw(&proc_fd),
        uid_map: spec.uid_map.as_deref().map(Buf::of).unwrap_or(Buf::NONE),
        gid_map: spec.gid_map.as_deref().map(Buf::of).unwrap_or(Buf::NONE),
        setgroups_deny: spec.setgroups_deny,
        cgroup_procs_fd: raw(&cgroup_procs_fd),
        release_r: raw(&release_r),
        release_w: raw(&release_w),
        status_w: raw(&status_w),
        new_time: spec.unshare.contains(NsType::TIME),
        time_offsets: spec
            .time_offsets
            .as_deref()
            .map(Buf::of)
            .unwrap_or(Buf::NONE),
        hostname: spec.hostname.as_deref().map(Buf::of).unwrap_or(Buf::NONE),
        moves: spec.moves.as_ptr(),
        moves_len: spec.moves.len(),
        close_fds: spec.close_fds,
        groups: spec
            .groups
            .as_deref()
            .map(|g| g.as_ptr())
            .unwrap_or(std::ptr::null()),
        groups_len: spec.groups.as_ref().map(Vec::len).unwrap_or(0),
        set_groups: spec.groups.is_some(),
        gid: spec.gid,
        uid: spec.uid,
        cwd: spec
            .cwd
            .as_ref()
            .map(|c| c.as_ptr())
            .unwrap_or(std::ptr::null()),
        pdeathsig: spec.pdeathsig,
        reset_handlers: !clear_sighand_supported(),
        sigpipe_default: matches!(spec.action, SpecAction::Exec { .. }),
        sigmask,
        internal_fds: [
            raw(&proc_fd),
            raw(&cgroup_fd),
            raw(&cgroup_procs_fd),
            raw(&release_r),
            raw(&release_w),
            raw(&status_r),
            -1,
            -1,
        ],
        action,
    });
    let plan_ptr = &*plan as *const Plan<'_> as *mut c_void;

    // Start the chain. When this returns, every process but the child has exited.
    let started = if shape.intermediate {
        let (stack, stack_size) = stacks.region(0);
        let mut flags = (libc::CLONE_VFORK | libc::CLONE_FILES | libc::CLONE_PARENT_SETTID) as u64;
        if !shape.intermediate_copies_memory {
            flags |= libc::CLONE_VM as u64;
        }
        let mut args = ns_sys::clone_args {
            flags,
            parent_tid: report.get().intermediate_pid.as_ptr() as u64,
            exit_signal: libc::SIGCHLD as u64,
            stack,
            stack_size,
            ..Default::default()
        };
        // SAFETY: the intermediate runs `intermediate_main` on its own stack against the plan,
        // both of which outlive it (CLONE_VFORK: we wait here until it has exited).
        let ret = unsafe { clone3_on_stack(&mut args, child::intermediate_main, plan_ptr) };
        ret.map(drop).map_err(|e| Error::Step {
            what: what.to_owned(),
            process: Process::Caller,
            step: Step::CreateIntermediate,
            detail: 0,
            errno: e.raw_os_error().unwrap_or(libc::EINVAL),
        })
    } else {
        // The caller creates the child itself; failures land in the report page.
        let _ = child::create_child(&plan, Task::Caller);
        Ok(())
    };

    // The shared write end of the status pipe: closed by the creator if it got that far.
    if let Some(w) = status_w {
        if shape.intermediate && report.get().status_closed.load(Ordering::Acquire) == 1 {
            let _ = w.into_raw_fd();
        } else {
            drop(w);
        }
    }

    let outcome = started.and_then(|()| collect(spec, &shape, &report, status_r.as_ref()));
    drop(blocked);
    drop(plan);
    drop(stacks);
    outcome
}

/// Reaps the intermediate processes, waits for the child to get past its setup, and turns the
/// report into a result. On any failure the child, if it exists, is killed and reaped.
fn collect(
    spec: &Spec<'_>,
    shape: &Shape,
    page: &ReportPage,
    status_r: Option<&OwnedFd>,
) -> Result<Spawned> {
    let report = page.get();
    let what = spec.what.as_str();
    let mut died: Option<(Process, String)> = None;
    let intermediate = report.intermediate_pid.load(Ordering::Acquire);
    let pid_stage = report.pid_stage_pid.load(Ordering::Acquire);
    // Reap the intermediate processes. A wait that fails (ECHILD when the caller ignores
    // SIGCHLD and the kernel reaped them) leaves their fate to the report page.
    let reap = |pid: libc::pid_t| -> Option<String> {
        match sys::waitpid(pid) {
            Ok(status) if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 => None,
            Ok(status) => Some(describe_status(status)),
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => None,
            Err(e) => Some(format!("could not be waited for: {e}")),
        }
    };
    if intermediate > 0 {
        died = reap(intermediate).map(|s| (Process::Intermediate, s));
    }
    if pid_stage > 0 {
        if died.is_some() {
            // The intermediate died while the pid stage ran: stop it before it creates more.
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(pid_stage, libc::SIGKILL) };
        }
        let status = reap(pid_stage);
        if died.is_none() {
            died = status.map(|s| (Process::PidStage, s));
        }
    }

    // The kernel writes the pidfd's number early in clone3 and the child's PID only once the
    // child exists: a number without a PID belongs to a clone3 that failed.
    let raw_pidfd = if report.child_pid.load(Ordering::Acquire) > 0 {
        report.child_pidfd.load(Ordering::Acquire)
    } else {
        -1
    };
    // SAFETY: the kernel put this pidfd in our descriptor table for us; nobody else owns it.
    let pidfd = (raw_pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw_pidfd) });

    // A child that is not vfork'd tells us through the status pipe when it is past its setup:
    // end-of-file at exec, a ready record before its closure, a failure record otherwise.
    let mut child_failed = false;
    if let (Some(r), Some(_)) = (status_r, pidfd.as_ref()) {
        if report.failed.load(Ordering::Acquire) == 0 && died.is_none() {
            match read_record(r) {
                Ok(Some(rec)) if rec[0] == RECORD_READY => {}
                Ok(Some(rec)) if rec[0] == RECORD_FAILED => child_failed = true,
                Ok(_) => {}
                Err(e) => died = Some((Process::Child, format!("status pipe: {e}"))),
            }
        }
    }

    let failed = report.failed.load(Ordering::Acquire) == 1 || child_failed;
    let error = if failed {
        Some(report_error(spec, report))
    } else if let Some((process, status)) = died {
        Some(Error::Died {
            what: what.to_owned(),
            process,
            status,
        })
    } else if pidfd.is_none() {
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
    };

    let child_pid = |pidfd: &OwnedFd| -> io::Result<pid_t> {
        if shape.pid_stage {
            // The pid stage saw the child's PID in the target's PID namespace.
            ns_core::pidfd_pid(pidfd.as_fd())
        } else {
            Ok(report.child_pid.load(Ordering::Acquire))
        }
    };

    // The child's PID; if it cannot be read, the spawn fails like any other.
    let (error, pid) = match (error, pidfd.as_ref().map(child_pid)) {
        (None, Some(Ok(pid))) => (None, pid),
        (None, Some(Err(source))) => (Some(io_err(what, "reading the child's pid")(source)), 0),
        (error, _) => (error, 0),
    };
    match (error, pidfd) {
        (None, Some(pidfd)) => Ok(Spawned { pid, pidfd }),
        (Some(error), pidfd) => {
            if let Some(pidfd) = pidfd {
                let _ = ns_sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                sys::reap_pidfd(&pidfd);
            }
            Err(error)
        }
        (None, None) => unreachable!("handled above"),
    }
}

fn read_record(r: &OwnedFd) -> io::Result<Option<child::Record>> {
    let mut rec: child::Record = [0; 5];
    let size = std::mem::size_of::<child::Record>();
    let mut got = 0;
    while got < size {
        // SAFETY: reading into the live record buffer, past what was already read.
        let n = unsafe {
            libc::read(
                r.as_raw_fd(),
                (rec.as_mut_ptr() as *mut u8).add(got) as *mut c_void,
                size - got,
            )
        };
        if n == 0 {
            return Ok(None);
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        got += n as usize;
    }
    Ok(Some(rec))
}

fn report_error(spec: &Spec<'_>, report: &Report) -> Error {
    let process = match report.task.load(Ordering::Relaxed) {
        1 => Process::Intermediate,
        2 => Process::PidStage,
        3 => Process::Child,
        _ => Process::Caller,
    };
    let step = Step::from_u32(report.step.load(Ordering::Relaxed)).unwrap_or(Step::CreateChild);
    let detail = report.detail.load(Ordering::Relaxed);
    let errno = report.errno.load(Ordering::Relaxed);
    match step {
        Step::EnterNamespaces => Error::Enter {
            what: spec.what.clone(),
            process,
            source: ns_core::Error::entering(
                errno,
                NsType::from_bits_truncate(detail),
                spec.subject.clone(),
            ),
        },
        Step::Exec => Error::Exec {
            program: spec.what.clone(),
            errno,
        },
        step => Error::Step {
            what: spec.what.clone(),
            process,
            step,
            detail,
            errno,
        },
    }
}

fn describe_status(status: c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else {
        format!("wait status {status:#x}")
    }
}

fn open(path: &std::ffi::CStr, flags: c_int) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// Keep the atomics' layout promise visible: the kernel writes plain ints into these fields.
const _: () =
    assert!(std::mem::size_of::<AtomicI32>() == 4 && std::mem::size_of::<AtomicU32>() == 4);
