//! The error type of `ns-container`.

use std::fmt;
use std::io;

use ns_core::describe_errno;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One of the processes a spawn may involve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Process {
    /// The calling process itself.
    Caller,
    /// The intermediate process that enters the target's namespaces.
    Intermediate,
    /// The process that lives in the target's PID namespace and creates a new one below it.
    PidStage,
    /// The spawned process itself, before it runs the program or closure.
    Child,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Process::Caller => "calling process",
            Process::Intermediate => "intermediate process",
            Process::PidStage => "pid-namespace stage process",
            Process::Child => "child",
        })
    }
}

/// A step of a spawn that runs in a child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum Step {
    /// Entering the target's namespaces (`setns`).
    EnterNamespaces = 1,
    /// Creating the pid-namespace stage process (`clone3`).
    CreatePidStage = 2,
    /// Creating the child (`clone3`).
    CreateChild = 3,
    /// Finding the child's PID for its `/proc` files.
    FindChildPid = 4,
    /// Writing the child's `uid_map`.
    UidMap = 5,
    /// Writing `deny` to the child's `setgroups`.
    Setgroups = 6,
    /// Writing the child's `gid_map`.
    GidMap = 7,
    /// Moving the child into its cgroup: detail 0, its PID written to `cgroup.procs` (the
    /// fallback for `CLONE_INTO_CGROUP`); detail i + 1, the child joining the i-th
    /// [`cgroup_v1`](crate::NsCommand::cgroup_v1) directory.
    CgroupAttach = 8,
    /// Letting the waiting child go on.
    Release = 9,
    /// Waiting (in the child) until the id maps are written.
    AwaitRelease = 10,
    /// Creating the time namespace and writing its offsets.
    TimeNamespace = 11,
    /// Setting the hostname (`sethostname`).
    Hostname = 12,
    /// Marking inherited descriptors close-on-exec.
    CloseDescriptors = 13,
    /// Putting a descriptor at its number in the child.
    Descriptor = 14,
    /// Setting supplementary groups (`setgroups`).
    Groups = 15,
    /// Setting the group id (`setgid`).
    Gid = 16,
    /// Setting the user id (`setuid`).
    Uid = 17,
    /// Changing the working directory (`chdir`); detail 1 (`EXDEV`): the directory it
    /// reached is outside the child's root, refused before anything runs there.
    Chdir = 18,
    /// Setting the parent-death signal (`prctl`).
    ParentDeathSignal = 19,
    /// Resetting signal handling.
    Signals = 20,
    /// Executing the program (`execve`); detail 1: executing the user-namespace trampoline
    /// (a memfd) that enters the target's user namespace and then the program (see
    /// `NsCommand`'s path table).
    Exec = 21,
    /// Creating the intermediate process (`clone3`).
    CreateIntermediate = 22,
    /// The calling process died half-way: the spawn's processes end instead of going on.
    CallerDied = 23,
    /// Joining the process group (`setpgid`).
    ProcessGroup = 24,
    /// Starting a session (`setsid`) or taking the controlling terminal (`TIOCSCTTY`; the
    /// detail is the descriptor).
    Session = 25,
    /// Setting a resource limit (`prlimit`; the detail is the resource).
    Rlimit = 26,
    /// Writing `oom_score_adj`.
    OomScoreAdj = 27,
    /// Setting capabilities (bounding set, `capset`, ambient; the detail is the capability
    /// number where one is concerned).
    Capabilities = 28,
    /// Setting securebits.
    Securebits = 29,
    /// Setting `no_new_privs`.
    NoNewPrivs = 30,
    /// Installing the seccomp filter (`seccomp(SECCOMP_SET_MODE_FILTER)`): `EACCES` without
    /// `no_new_privs` or `CAP_SYS_ADMIN`, `EINVAL` for a malformed program.
    Seccomp = 31,
    /// A `pre_exec` hook returned an error.
    PreExec = 32,
    /// Setting the propagation of `/`.
    Propagation = 33,
    /// A mount (the detail is its index, in the order the mounts were added).
    Mount = 34,
    /// Changing the root (`pivot_root`, or `chroot`).
    Root = 35,
    /// Waiting, right before executing the program, for the process that lets it go
    /// (`NsCommand::hold_before_exec`: `accept` on the given socket).
    Hold = 36,
    /// Writing a kernel parameter of the new namespaces (`NsCommand::sysctl`; the detail is
    /// its index, in the order added).
    Sysctl = 37,
    /// Making the pseudo-terminal (`NsCommand::terminal`): opening `/dev/ptmx`, unlocking it,
    /// opening its peer, or sending its master (detail 1).
    Terminal = 38,
    /// Making the new cgroup namespace in the child, once it is in its cgroups
    /// (`unshare(CLONE_NEWCGROUP)`).
    CgroupNamespace = 39,
}

impl Step {
    pub(crate) fn from_u32(v: u32) -> Option<Step> {
        use Step::*;
        [
            EnterNamespaces,
            CreatePidStage,
            CreateChild,
            FindChildPid,
            UidMap,
            Setgroups,
            GidMap,
            CgroupAttach,
            Release,
            AwaitRelease,
            TimeNamespace,
            Hostname,
            CloseDescriptors,
            Descriptor,
            Groups,
            Gid,
            Uid,
            Chdir,
            ParentDeathSignal,
            Signals,
            Exec,
            CreateIntermediate,
            CallerDied,
            ProcessGroup,
            Session,
            Rlimit,
            OomScoreAdj,
            Capabilities,
            Securebits,
            NoNewPrivs,
            Seccomp,
            PreExec,
            Propagation,
            Mount,
            Root,
            Hold,
            Sysctl,
            Terminal,
            CgroupNamespace,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::EnterNamespaces => "entering the target's namespaces",
            Step::CreatePidStage => "creating the process that makes the new pid namespace",
            Step::CreateChild => "creating the child (clone3)",
            Step::FindChildPid => "finding the child's pid",
            Step::UidMap => "writing the child's uid_map",
            Step::Setgroups => "writing the child's setgroups",
            Step::GidMap => "writing the child's gid_map",
            Step::CgroupAttach => "moving the child into its cgroup",
            Step::Release => "letting the child go on",
            Step::AwaitRelease => "waiting for the id maps",
            Step::TimeNamespace => "creating the time namespace with its offsets",
            Step::Hostname => "setting the hostname",
            Step::CloseDescriptors => "closing inherited descriptors",
            Step::Descriptor => "setting up a descriptor",
            Step::Groups => "setting supplementary groups",
            Step::Gid => "setting the gid",
            Step::Uid => "setting the uid",
            Step::Chdir => "changing the working directory",
            Step::ParentDeathSignal => "setting the parent-death signal",
            Step::Signals => "resetting signal handling",
            Step::Exec => "executing the program",
            Step::CreateIntermediate => "creating the intermediate process (clone3)",
            Step::CallerDied => "checking that the calling process is alive",
            Step::ProcessGroup => "joining the process group (setpgid)",
            Step::Session => "starting a session or taking the controlling terminal",
            Step::Rlimit => "setting a resource limit",
            Step::OomScoreAdj => "writing oom_score_adj",
            Step::Capabilities => "setting capabilities",
            Step::Securebits => "setting securebits",
            Step::NoNewPrivs => "setting no_new_privs",
            Step::Seccomp => "installing the seccomp filter",
            Step::PreExec => "running a pre_exec hook",
            Step::Propagation => "setting the mount propagation of /",
            Step::Mount => "mounting",
            Step::Root => "changing the root",
            Step::Hold => "waiting to be let go before executing the program",
            Step::Sysctl => "writing a kernel parameter (sysctl)",
            Step::Terminal => "making the pseudo-terminal",
            Step::CgroupNamespace => "making the cgroup namespace in the child's cgroup",
        })
    }
}

/// Every error of `ns-container`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the layer below: pinning the target, opening a namespace, …
    #[error(transparent)]
    Core(#[from] ns_core::Error),

    /// Entering the target's namespaces failed in a child process (the message includes the
    /// cause, so it is not also `source()`).
    #[error("spawning {what}: {cause} (in the {process})")]
    Enter {
        /// The program or closure being spawned.
        what: String,
        /// The process that tried.
        process: Process,
        /// The failure, with the namespace and target it concerns.
        cause: ns_core::Error,
    },

    /// A step of the spawn failed in one of its processes.
    #[error("spawning {what}: {} in the {process}: {}", step_text(*step, *detail), describe_errno(*errno))]
    Step {
        /// The program or closure being spawned.
        what: String,
        /// The process the step ran in.
        process: Process,
        /// The step.
        step: Step,
        /// More about the step (the descriptor number, the id), or 0.
        detail: i32,
        /// The kernel's `errno`.
        errno: i32,
    },

    /// The program could not be executed.
    #[error("spawning {program}: cannot execute it: {}", describe_errno(*errno))]
    Exec {
        /// The program as given.
        program: String,
        /// `execve`'s `errno` (for a PATH search: `EACCES` if any candidate said so, else
        /// the last error).
        errno: i32,
    },

    /// A process of the spawn died before finishing its part (for example, it was killed).
    #[error("spawning {what}: the {process} died before finishing its part ({status})")]
    Died {
        /// The program or closure being spawned.
        what: String,
        /// Which process died.
        process: Process,
        /// How it ended, e.g. `killed by signal 9`.
        status: String,
    },

    /// A system call in the calling process failed (the message ends with the kernel's
    /// error, so it is not also `source()`).
    #[error("{what}: {op}: {cause}")]
    Io {
        /// What was being done (`spawning sleep`, `running in net namespace`, …).
        what: String,
        /// The failing operation.
        op: &'static str,
        /// The kernel's error.
        cause: io::Error,
    },

    /// The request makes no sense; nothing was started.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was being done.
        what: String,
        /// Why it was refused.
        reason: String,
    },

    /// The kernel, or a seccomp filter in front of it, lacks what the request needs; nothing
    /// was started.
    #[error("{what}: not supported here ({needs})")]
    Unsupported {
        /// What was being done.
        what: String,
        /// What it needs, e.g. `CgroupPlacement::CloneInto needs clone3`.
        needs: String,
    },

    /// Waiting for a child failed because something else in the program already reaped it
    /// (a `waitpid(-1)` loop, a `SIGCHLD` handler, `SIGCHLD` set to `SIG_IGN`) and the kernel
    /// keeps no exit status for it (`PIDFD_INFO_EXIT`, Linux 6.15, has it when the real parent
    /// reaped it). The status is lost; no other process was waited for.
    #[error(
        "waiting for pid {pid}: it was reaped by someone else, so its exit status is lost (ECHILD)"
    )]
    ReapedElsewhere {
        /// The child's PID as it was.
        pid: libc::pid_t,
    },

    /// A closure run by a [`NamespaceRunner`](crate::NamespaceRunner) panicked.
    #[error("running a closure in {ns}: it panicked: {message}")]
    Panicked {
        /// The namespace it ran in.
        ns: String,
        /// The panic message, when it was a string.
        message: String,
    },

    /// The runner's thread is gone, so the closure never ran.
    #[error("running a closure in {ns}: the runner's thread is gone")]
    RunnerGone {
        /// The namespace it was meant to run in.
        ns: String,
    },
}

fn step_text(step: Step, detail: i32) -> String {
    match (step, detail) {
        (Step::Exec, 1) => "executing the user-namespace trampoline".to_owned(),
        (Step::Chdir, 1) => "changing the working directory: it is outside the root (a link \
                             through a descriptor or mount of another root)"
            .to_owned(),
        (step, detail) if detail > 0 => format!("{step} ({detail})"),
        (step, _) => step.to_string(),
    }
}

/// Turns an `io::Error` of operation `op`, while doing `what`, into [`Error::Io`].
pub(crate) fn io_error(
    what: impl Into<String>,
    op: &'static str,
) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |cause| Error::Io { what, op, cause }
}

impl Error {
    /// The `errno` behind the error, if a system call failed.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Core(e) | Error::Enter { cause: e, .. } => e.raw_os_error(),
            Error::Step { errno, .. } | Error::Exec { errno, .. } => Some(*errno),
            Error::Io { cause, .. } => cause.raw_os_error(),
            Error::ReapedElsewhere { .. } => Some(libc::ECHILD),
            _ => None,
        }
    }
}

/// As an `io::Error`: an error with an `errno` becomes it (`from_raw_os_error`: `kind()` and
/// `raw_os_error()` kept, the message is the system's), any other keeps its message and gets
/// the matching kind.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        if let Some(code) = e.raw_os_error() {
            return io::Error::from_raw_os_error(code);
        }
        let kind = match &e {
            Error::Core(ns_core::Error::ProcessGone { .. }) => io::ErrorKind::NotFound,
            Error::Core(ns_core::Error::Unsupported { .. }) | Error::Unsupported { .. } => {
                io::ErrorKind::Unsupported
            }
            Error::Core(_) | Error::Invalid { .. } => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
