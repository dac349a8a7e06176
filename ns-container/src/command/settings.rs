//! What a command holds: the [`NsCommand`] struct and its constructor, and the value types
//! its settings take ([`Stdio`], [`Clock`], [`IdMap`], [`CgroupPlacement`]). Plain data: the
//! setters are in the files named for what they configure, the spawn in `launch.rs`.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{ChildStderr, ChildStdin, ChildStdout};

use ns_core::{EntryStrategy, Namespace, NsType, Target};

use crate::child::PreExecHooks;
use crate::error::Error;
use crate::mounts::{Mount, MountApi, Propagation, RootMode};
use crate::spawn::PrivilegeSpec;

/// A program to spawn into namespaces: a builder with the names and meanings of
/// `std::process::Command` (program, arguments, environment, working directory, stdio, uid,
/// gid, groups, `arg0`, `process_group`, the getters), plus where the child goes.
///
/// It is built from a program name, not from a `std::process::Command`: std cannot report
/// back a `Command`'s stdio, credentials, `env_clear`, `arg0`, process group or `pre_exec`
/// hooks, so a conversion would drop them without a word (a sandbox asked to run as 65534
/// would run as root).
///
/// ```no_run
/// use ns_container::{NsCommand, Stdio};
/// use ns_core::NsType;
///
/// let out = NsCommand::new("hostname")
///     .unshare(NsType::UTS)
///     .hostname("sandbox")
///     .env_clear()
///     .env("PATH", "/usr/bin:/bin")
///     .stdout(Stdio::piped())
///     .output()?;
/// assert_eq!(out.stdout, b"sandbox\n");
/// # Ok::<(), ns_container::Error>(())
/// ```
///
/// A sandbox with every finishing step (see the guide's "Finishing a container"):
///
/// ```no_run
/// use ns_container::{seccomp, Mount, NsCommand, Propagation, RootMode};
/// use ns_core::caps::{CapSet, Capability};
/// use ns_core::NsType;
///
/// let root = "/srv/rootfs"; // holds /bin, /lib, /usr, … and empty /proc, /tmp
/// let caps = [Capability::CAP_NET_BIND_SERVICE];
/// let mut sandbox = NsCommand::new("/bin/server");
/// sandbox
///     .unshare(NsType::MNT | NsType::PID | NsType::UTS | NsType::IPC | NsType::NET)
///     .hostname("sandbox")
///     .propagation(Propagation::Slave)
///     .mount(Mount::proc(format!("{root}/proc")))
///     .mount(Mount::tmpfs(format!("{root}/tmp")).options("size=64m,mode=1777"))
///     .mount(Mount::bind("/etc/resolv.conf", format!("{root}/etc/resolv.conf")).read_only())
///     .root(root)
///     .root_mode(RootMode::PivotRoot)
///     .current_dir("/")
///     .setsid(true)
///     .rlimit(libc::RLIMIT_NOFILE as i32, 1024, 1024)
///     .oom_score_adj(500)
///     .uid(1000)
///     .gid(1000)
///     .groups(&[])
///     .capabilities(CapSet::Bounding, caps)
///     .capabilities(CapSet::Permitted, caps)
///     .capabilities(CapSet::Effective, caps)
///     .capabilities(CapSet::Inheritable, caps)
///     .capabilities(CapSet::Ambient, caps)
///     .no_new_privs(true)
///     .umask(0o027)
///     .seccomp_filter(seccomp::deny(&[libc::SYS_ptrace, libc::SYS_kexec_load], libc::EPERM)?)
///     .kill_on_drop(true);
/// let mut child = sandbox.spawn()?;
/// child.wait()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The order of events in the child is fixed: enter the target's namespaces (user first or
/// last, see `ns_core::UserOrder`), create the new ones, write the id maps (from the parent
/// side), enter the new time namespace with its offsets, set the hostname, set up stdio and
/// given descriptors, close every other inherited descriptor (before any path of the
/// container is touched), write `oom_score_adj`, mount and change the root, join the process
/// group; start a session and take the terminal, set resource limits, drop from the bounding
/// set, set securebits (all still privileged); set groups, gid, uid; set the capability sets,
/// ambient capabilities, the securebits that would have stopped those, `no_new_privs`, umask;
/// change directory (refused when it is outside the root), set the parent-death signal,
/// reset signal handling, execute. A program name without a `/` is searched in the child's `PATH` inside the
/// entered mount namespace.
///
/// # Which path a spawn takes
/// | configuration | processes | cost grows with the caller's memory? |
/// |---|---|---|
/// | nothing to enter, no id maps | the child only, `clone3(CLONE_VM\|CLONE_VFORK)` like `posix_spawn` | no |
/// | new namespaces only | the child only, sharing the caller's memory | no |
/// | enter namespaces other than user/time, id maps, the cgroup fallback | + an intermediate sharing the caller's memory | no |
/// | enter a user namespace, the caller's `CAP_SYS_ADMIN` surviving `execve` (ambient, or root without `SECBIT_NOROOT`), no time namespace entered, nothing set with the container's credentials but groups (up to 64), gid, uid, the directory and the parent-death signal (x86_64; a memfd may be executed) | the intermediate and the child share the caller's memory with the caller's credentials; the child executes the user-namespace trampoline (a static executable of under a kilobyte in a memfd), which enters the user namespace in memory of its own, sets the ids, changes directory and executes the program | no |
/// | enter a user namespace otherwise | the intermediate gets its own (non-dumpable) copy of memory: a task sharing the caller's memory with the container's credentials would let the container's root write into the caller | yes, once |
/// | set a uid or gid (unless the trampoline sets them) | the intermediate, or without one the child, gets its own copy (the kernel marks the memory of a task whose ids change non-dumpable, and it would be the caller's) | yes, once |
/// | `pre_exec` hooks; `oom_score_adj` in a child that waits for id maps or a cgroup | the intermediate, or without one the child, gets its own copy (hooks may write to memory; a new OOM score reaches every process sharing the memory of a task that is no vfork child) | yes, once |
/// | enter a time namespace | the intermediate gets its own copy of memory (the kernel refuses the entry to a process sharing it: `EUSERS`) | yes, once |
/// | a new time namespace | shared on Linux 6.0 and later (the child creates it and `execve` moves the child in); before 6.0 the child gets its own copy of memory and moves itself | before 6.0, once |
/// | enter the target's pid namespace *and* create a new one | + a pid stage inside the target's pid namespace | as above |
/// | a program from a new root or an entered mount namespace (x86_64; a memfd may be executed) | the child executes the trampoline as an exec relay, which executes the program: its `/proc/self/exe` during that `execve` is a sealed image, never the caller's binary | no |
#[derive(Debug)]
pub struct NsCommand {
    pub(super) program: OsString,
    pub(super) arg0: Option<OsString>,
    pub(super) args: Vec<OsString>,
    pub(super) env_clear: bool,
    pub(super) env: BTreeMap<OsString, Option<OsString>>,
    pub(super) cwd: Option<PathBuf>,
    pub(super) cwd_first: bool,
    pub(super) stdin: Stdio,
    pub(super) stdout: Stdio,
    pub(super) stderr: Stdio,
    pub(super) uid: Option<u32>,
    pub(super) gid: Option<u32>,
    pub(super) groups: Option<Vec<u32>>,
    pub(super) pgroup: Option<libc::pid_t>,
    pub(super) privileges: PrivilegeSpec,
    pub(super) pre_exec: Hooks,
    /// See [`NsCommand::hold_before_exec`].
    pub(super) hold: Option<std::os::fd::OwnedFd>,
    /// See [`NsCommand::sysctl`]: (key, value).
    pub(super) sysctls: Vec<(String, String)>,
    /// See [`NsCommand::read_only_root`].
    pub(super) read_only_root: bool,
    /// See [`NsCommand::terminal`]: the console socket and the window size.
    pub(super) terminal: Option<(std::os::fd::OwnedFd, Option<(u16, u16)>)>,
    /// See [`NsCommand::root_propagation`].
    pub(super) root_propagation: Option<crate::mounts::Propagation>,
    pub(super) shared_mounts: bool,
    pub(super) seccomp: Option<Vec<libc::sock_filter>>,
    pub(super) target: Option<(Target, NsType)>,
    pub(super) namespaces: Vec<Namespace>,
    pub(super) strategy: EntryStrategy,
    pub(super) unshare: NsType,
    pub(super) uid_map: Vec<IdMap>,
    pub(super) gid_map: Vec<IdMap>,
    pub(super) setgroups_deny: bool,
    pub(super) time_offsets: Vec<(Clock, i64, u32)>,
    pub(super) hostname: Option<OsString>,
    pub(super) propagation: Option<Propagation>,
    pub(super) mounts: Vec<Mount>,
    pub(super) mount_api: MountApi,
    pub(super) resolve_walk: bool,
    pub(super) dumpable: bool,
    pub(super) relay_off: bool,
    /// See `NsCommand::without_pid_route_for_tests`.
    pub(super) pid_route_off: bool,
    pub(super) root: Option<(PathBuf, RootMode)>,
    pub(super) cgroup: Option<PathBuf>,
    pub(super) cgroups_v1: Vec<PathBuf>,
    pub(super) pdeathsig: Option<libc::c_int>,
    pub(super) fds: Vec<(RawFd, OwnedFd)>,
    pub(super) placement: CgroupPlacement,
    pub(super) pause: Option<(OwnedFd, bool)>,
    /// For tests: `Some(false)` always copies, `Some(true)` requires the trampoline (no
    /// fallback), `None` chooses.
    pub(super) user_route: Option<bool>,
    pub(super) kill_on_drop: bool,
    pub(super) error: Option<Error>,
}

impl NsCommand {
    /// A command for `program`, as `std::process::Command::new`: no arguments, the caller's
    /// environment, working directory and stdio, the caller's credentials. A name without a
    /// `/` is searched in `PATH` (the child's, inside the entered mount namespace).
    pub fn new(program: impl AsRef<OsStr>) -> NsCommand {
        NsCommand {
            program: program.as_ref().to_owned(),
            arg0: None,
            args: Vec::new(),
            env_clear: false,
            env: BTreeMap::new(),
            cwd: None,
            cwd_first: false,
            stdin: Stdio::inherit(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
            uid: None,
            gid: None,
            groups: None,
            pgroup: None,
            privileges: PrivilegeSpec::default(),
            pre_exec: Hooks(Vec::new()),
            hold: None,
            sysctls: Vec::new(),
            read_only_root: false,
            root_propagation: None,
            shared_mounts: false,
            terminal: None,
            seccomp: None,
            target: None,
            namespaces: Vec::new(),
            strategy: EntryStrategy::Auto,
            unshare: NsType::empty(),
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            setgroups_deny: false,
            time_offsets: Vec::new(),
            hostname: None,
            propagation: None,
            mounts: Vec::new(),
            mount_api: MountApi::Auto,
            resolve_walk: false,
            dumpable: false,
            relay_off: false,
            pid_route_off: false,
            root: None,
            cgroup: None,
            cgroups_v1: Vec::new(),
            pdeathsig: None,
            fds: Vec::new(),
            placement: CgroupPlacement::Auto,
            pause: None,
            user_route: None,
            kill_on_drop: false,
            error: None,
        }
    }
}

/// Where one of the child's standard streams goes.
#[derive(Debug)]
pub struct Stdio(pub(super) StdioKind);

#[derive(Debug)]
pub(super) enum StdioKind {
    Inherit,
    Null,
    Piped,
    Fd(OwnedFd),
}

impl Stdio {
    /// The caller's own stream (the default).
    pub fn inherit() -> Stdio {
        Stdio(StdioKind::Inherit)
    }

    /// `/dev/null`.
    pub fn null() -> Stdio {
        Stdio(StdioKind::Null)
    }

    /// A new pipe; the caller's end appears on [`Child`](crate::Child)'s `stdin`/`stdout`/`stderr`.
    pub fn piped() -> Stdio {
        Stdio(StdioKind::Piped)
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Stdio {
        Stdio(StdioKind::Fd(fd))
    }
}

impl From<File> for Stdio {
    fn from(f: File) -> Stdio {
        Stdio(StdioKind::Fd(f.into()))
    }
}

impl From<ChildStdin> for Stdio {
    fn from(s: ChildStdin) -> Stdio {
        Stdio(StdioKind::Fd(s.into()))
    }
}

impl From<ChildStdout> for Stdio {
    fn from(s: ChildStdout) -> Stdio {
        Stdio(StdioKind::Fd(s.into()))
    }
}

impl From<ChildStderr> for Stdio {
    fn from(s: ChildStderr) -> Stdio {
        Stdio(StdioKind::Fd(s.into()))
    }
}

/// A clock of a time namespace whose offset can be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Clock {
    /// `CLOCK_MONOTONIC` (and its coarse and raw variants).
    Monotonic,
    /// `CLOCK_BOOTTIME`.
    Boottime,
}

/// One line of a `uid_map` or `gid_map`: `count` ids from `inside` map to `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdMap {
    /// First id inside the new user namespace.
    pub inside: u32,
    /// First id in the parent user namespace.
    pub outside: u32,
    /// Number of ids.
    pub count: u32,
}

/// How [`NsCommand::cgroup`] puts the child in its cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CgroupPlacement {
    /// `CLONE_INTO_CGROUP` where the kernel has it (5.7), else [`CgroupPlacement::ProcsFile`].
    #[default]
    Auto,
    /// The child is created in the cgroup by `clone3(CLONE_INTO_CGROUP)` (5.7).
    CloneInto,
    /// The child waits while the parent side writes its PID to the cgroup's `cgroup.procs`;
    /// the path for older kernels, forceable so that it can be tested anywhere.
    ProcsFile,
}

/// The `pre_exec` hooks of an [`NsCommand`].
pub(super) struct Hooks(pub(super) PreExecHooks);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} pre_exec hook(s)", self.0.len())
    }
}
