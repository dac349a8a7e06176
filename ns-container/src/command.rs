//! [`NsCommand`]: spawn a program into existing and new namespaces.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus, Output};
use std::time::Duration;

use ns_core::{EntryPlan, EntryStrategy, Namespace, NsType, Subject, Target, UserOrder};

use crate::child::{PreExecHooks, RootChange};
use crate::error::{io_error, Error, Result};
use crate::mounts::{Mount, MountApi, PreparedMounts, Propagation, RootMode};
use crate::process::Child;
use crate::spawn::{self, PrivilegeSpec, Spec, SpecAction};
use ns_core::caps::{CapSet, Capability};

/// Where one of the child's standard streams goes.
#[derive(Debug)]
pub struct Stdio(StdioKind);

#[derive(Debug)]
enum StdioKind {
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

    /// A new pipe; the caller's end appears on [`Child`]'s `stdin`/`stdout`/`stderr`.
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
/// side), enter the new time namespace with its offsets, set the hostname, mark inherited
/// descriptors close-on-exec, set up stdio and given descriptors, join the process group;
/// start a session and take the terminal, set resource limits and `oom_score_adj`, drop from
/// the bounding set, set securebits (all still privileged); set groups, gid, uid; set the
/// capability sets, ambient capabilities, the securebits that would have stopped those,
/// `no_new_privs`, umask; change directory, set the
/// parent-death signal, reset signal handling, execute. A program name without a `/` is searched in the child's `PATH` inside the
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
#[derive(Debug)]
pub struct NsCommand {
    program: OsString,
    arg0: Option<OsString>,
    args: Vec<OsString>,
    env_clear: bool,
    env: BTreeMap<OsString, Option<OsString>>,
    cwd: Option<PathBuf>,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<Vec<u32>>,
    pgroup: Option<libc::pid_t>,
    privileges: PrivilegeSpec,
    pre_exec: Hooks,
    seccomp: Option<Vec<libc::sock_filter>>,
    target: Option<(Target, NsType)>,
    namespaces: Vec<Namespace>,
    strategy: EntryStrategy,
    unshare: NsType,
    uid_map: Vec<IdMap>,
    gid_map: Vec<IdMap>,
    setgroups_deny: bool,
    time_offsets: Vec<(Clock, i64, u32)>,
    hostname: Option<OsString>,
    propagation: Option<Propagation>,
    mounts: Vec<Mount>,
    mount_api: MountApi,
    root: Option<(PathBuf, RootMode)>,
    cgroup: Option<PathBuf>,
    pdeathsig: Option<libc::c_int>,
    fds: Vec<(RawFd, OwnedFd)>,
    placement: CgroupPlacement,
    pause: Option<(OwnedFd, bool)>,
    /// For tests: `Some(false)` always copies, `Some(true)` requires the trampoline (no
    /// fallback), `None` chooses.
    user_route: Option<bool>,
    kill_on_drop: bool,
    error: Option<Error>,
}

/// The `pre_exec` hooks of an [`NsCommand`].
struct Hooks(PreExecHooks);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} pre_exec hook(s)", self.0.len())
    }
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
            stdin: Stdio::inherit(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
            uid: None,
            gid: None,
            groups: None,
            pgroup: None,
            privileges: PrivilegeSpec::default(),
            pre_exec: Hooks(Vec::new()),
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
            root: None,
            cgroup: None,
            pdeathsig: None,
            fds: Vec::new(),
            placement: CgroupPlacement::Auto,
            pause: None,
            user_route: None,
            kill_on_drop: false,
            error: None,
        }
    }

    /// The program, as given to [`NsCommand::new`].
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments (without the program or `arg0`).
    pub fn get_args(&self) -> impl Iterator<Item = &OsStr> {
        self.args.iter().map(OsString::as_os_str)
    }

    /// The environment changes: `(key, Some(value))` set, `(key, None)` removed, as std's
    /// `get_envs`.
    pub fn get_envs(&self) -> impl Iterator<Item = (&OsStr, Option<&OsStr>)> {
        self.env.iter().map(|(k, v)| (k.as_os_str(), v.as_deref()))
    }

    /// The working directory set with [`current_dir`](NsCommand::current_dir).
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// The child's `argv[0]`, instead of the program name (std's `CommandExt::arg0`).
    pub fn arg0(&mut self, arg0: impl AsRef<OsStr>) -> &mut NsCommand {
        self.arg0 = Some(arg0.as_ref().to_owned());
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut NsCommand
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Puts the child in process group `pgroup`, or a new group of its own with 0
    /// (`setpgid(0, pgroup)` in the child, std's `CommandExt::process_group`).
    pub fn process_group(&mut self, pgroup: libc::pid_t) -> &mut NsCommand {
        self.pgroup = Some(pgroup);
        self
    }

    /// Starts a new session for the child (`setsid`), which also makes it the leader of a new
    /// process group and detaches it from the caller's terminal. Cannot be combined with
    /// [`process_group`](NsCommand::process_group).
    pub fn setsid(&mut self, yes: bool) -> &mut NsCommand {
        self.privileges.setsid = yes;
        self
    }

    /// Makes the terminal at descriptor `child_fd` *of the child* (0, 1, 2 or a number given
    /// with [`fd`](NsCommand::fd)) its controlling terminal (`ioctl(TIOCSCTTY)`), after
    /// [`setsid`](NsCommand::setsid), which it needs.
    pub fn controlling_terminal(&mut self, child_fd: RawFd) -> &mut NsCommand {
        self.privileges.ctty = Some(child_fd);
        self
    }

    /// Sets a resource limit of the child (`prlimit`), e.g. `libc::RLIMIT_NOFILE`, before its
    /// credentials change (raising a hard limit needs privilege). `libc::RLIM_INFINITY` is
    /// "unlimited".
    pub fn rlimit(&mut self, resource: libc::c_int, soft: u64, hard: u64) -> &mut NsCommand {
        self.privileges.rlimits.push((resource, soft, hard));
        self
    }

    /// The child's `oom_score_adj`, from -1000 (never killed for lack of memory) to 1000
    /// (killed first); lowering it needs `CAP_SYS_RESOURCE`.
    pub fn oom_score_adj(&mut self, score: i32) -> &mut NsCommand {
        if !(-1000..=1000).contains(&score) {
            self.error.get_or_insert(Error::Invalid {
                what: format!("spawning {}", self.program.to_string_lossy()),
                reason: format!("oom_score_adj {score} is not between -1000 and 1000"),
            });
        }
        self.privileges.oom_score_adj = Some(score.to_string().into_bytes());
        self
    }

    /// Sets one of the child's capability sets to exactly `caps` (the others keep what the
    /// kernel gives them; see `capabilities(7)`):
    /// - `CapSet::Bounding`: every other capability is dropped from the bounding set (needs
    ///   `CAP_SETPCAP`), before the credentials change;
    /// - `Effective`, `Permitted`, `Inheritable`: set with `capset` after the credentials
    ///   change; with [`uid`](NsCommand::uid) or [`gid`](NsCommand::gid) the permitted set is
    ///   kept across the change (`PR_SET_KEEPCAPS`), so a child can run as a user with the
    ///   capabilities asked for. An effective set not given keeps what it had of the new
    ///   permitted set;
    /// - `Ambient`: raised after that (each must be permitted and inheritable), so that they
    ///   survive `execve` of an ordinary program.
    ///
    /// ```no_run
    /// use ns_container::NsCommand;
    /// use ns_core::caps::{CapSet, Capability};
    ///
    /// let net_admin = [Capability::CAP_NET_ADMIN];
    /// let status = NsCommand::new("ip")
    ///     .args(["link", "show"])
    ///     .capabilities(CapSet::Bounding, net_admin)
    ///     .capabilities(CapSet::Permitted, net_admin)
    ///     .capabilities(CapSet::Effective, net_admin)
    ///     .no_new_privs(true)
    ///     .status()?;
    /// # Ok::<(), ns_container::Error>(())
    /// ```
    pub fn capabilities(
        &mut self,
        set: CapSet,
        caps: impl IntoIterator<Item = Capability>,
    ) -> &mut NsCommand {
        let mask = caps.into_iter().fold(0u64, |m, c| m | c.bitmask());
        let slot = match set {
            CapSet::Bounding => &mut self.privileges.bounding,
            CapSet::Effective => &mut self.privileges.effective,
            CapSet::Permitted => &mut self.privileges.permitted,
            CapSet::Inheritable => &mut self.privileges.inheritable,
            CapSet::Ambient => &mut self.privileges.ambient,
        };
        *slot = Some(mask);
        self
    }

    /// Sets the child's securebits (`PR_SET_SECUREBITS`, `SECBIT_*` in `capabilities(7)`)
    /// before its credentials change, while it holds `CAP_SETPCAP` and so that
    /// `SECBIT_NO_SETUID_FIXUP` and `SECBIT_KEEP_CAPS` apply to that change. When
    /// capability sets are asked for with a uid or gid, `SECBIT_KEEP_CAPS` is added for the
    /// change (unless `SECBIT_KEEP_CAPS_LOCKED` is asked). `SECBIT_NO_CAP_AMBIENT_RAISE`
    /// (and its lock) would stop the ambient capabilities, so the bits are set again exactly
    /// as asked after those: that second call needs `CAP_SETPCAP` in the effective set the
    /// child then has.
    pub fn securebits(&mut self, bits: u32) -> &mut NsCommand {
        self.privileges.securebits = Some(bits as libc::c_int);
        self
    }

    /// Sets `no_new_privs` in the child: neither it nor anything it executes can gain
    /// privileges through set-user-ID programs or file capabilities (`PR_SET_NO_NEW_PRIVS`).
    pub fn no_new_privs(&mut self, yes: bool) -> &mut NsCommand {
        self.privileges.no_new_privs = yes;
        self
    }

    /// The child's umask.
    pub fn umask(&mut self, mask: libc::mode_t) -> &mut NsCommand {
        self.privileges.umask = Some(mask);
        self
    }

    /// Installs a classic BPF seccomp filter in the child (`seccomp(SECCOMP_SET_MODE_FILTER)`)
    /// as the very last step before `execve`, after the `pre_exec` hooks: the program
    /// `execve`s under it, so it must allow `execve`. The kernel needs `no_new_privs`
    /// ([`no_new_privs`](NsCommand::no_new_privs)) or `CAP_SYS_ADMIN` for it. Only the
    /// child's single thread gets it (no `SECCOMP_FILTER_FLAG_TSYNC`: it has no other).
    /// Build one with a library such as libseccomp, or a deny list with
    /// [`seccomp::deny`](crate::seccomp::deny).
    ///
    /// ```no_run
    /// use ns_container::{seccomp, NsCommand};
    ///
    /// // uname(2) fails with EPERM in the child, everything else works.
    /// let status = NsCommand::new("uname")
    ///     .no_new_privs(true)
    ///     .seccomp_filter(seccomp::deny(&[libc::SYS_uname], libc::EPERM)?)
    ///     .status()?;
    /// assert!(!status.success());
    /// # Ok::<(), ns_container::Error>(())
    /// ```
    pub fn seccomp_filter(&mut self, filter: impl Into<Vec<libc::sock_filter>>) -> &mut NsCommand {
        self.seccomp = Some(filter.into());
        self
    }

    /// Runs `f` in the child right before the seccomp filter and `execve`, after every other
    /// step, as std's `CommandExt::pre_exec`. Hooks run in the order they were added; an
    /// error stops the spawn with [`Step::PreExec`](crate::Step::PreExec) and its errno.
    ///
    /// # Safety
    /// As for std's `pre_exec`: `f` runs in a copy of the calling process made by `clone`,
    /// like `fork`, with only one thread. It must only do what is allowed after `fork` in a
    /// multithreaded program: async-signal-safe calls (`signal-safety(7)`) on data it
    /// captured; no allocation, no locks (other threads may have held them at the clone), no
    /// panics. With a hook, the child always has its own copy of the caller's memory.
    pub unsafe fn pre_exec<F>(&mut self, f: F) -> &mut NsCommand
    where
        F: FnMut() -> std::io::Result<()> + Send + Sync + 'static,
    {
        self.pre_exec.0.push(Box::new(f));
        self
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut NsCommand {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut NsCommand {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut NsCommand {
        self.env
            .insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// Removes an environment variable for the child.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut NsCommand {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    /// Starts the child with no inherited environment: only what [`NsCommand::env`] sets
    /// (including what was set on the `Command`).
    pub fn env_clear(&mut self) -> &mut NsCommand {
        self.env_clear = true;
        self.env.retain(|_, v| v.is_some());
        self
    }

    /// The child's working directory, resolved inside its namespaces. Without it, a child
    /// that enters a mount namespace starts at that namespace's root, as with `nsenter`.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut NsCommand {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The child's stdin.
    pub fn stdin(&mut self, s: impl Into<Stdio>) -> &mut NsCommand {
        self.stdin = s.into();
        self
    }

    /// The child's stdout.
    pub fn stdout(&mut self, s: impl Into<Stdio>) -> &mut NsCommand {
        self.stdout = s.into();
        self
    }

    /// The child's stderr.
    pub fn stderr(&mut self, s: impl Into<Stdio>) -> &mut NsCommand {
        self.stderr = s.into();
        self
    }

    /// The child's user id (`setuid`), as seen from inside its user namespace.
    pub fn uid(&mut self, uid: u32) -> &mut NsCommand {
        self.uid = Some(uid);
        self
    }

    /// The child's group id (`setgid`), as seen from inside its user namespace.
    pub fn gid(&mut self, gid: u32) -> &mut NsCommand {
        self.gid = Some(gid);
        self
    }

    /// The child's supplementary groups (`setgroups`).
    pub fn groups(&mut self, groups: &[u32]) -> &mut NsCommand {
        self.groups = Some(groups.to_vec());
        self
    }

    /// Enters `types` of the namespaces of a pinned process. The target is duplicated, so the
    /// caller keeps its own.
    pub fn enter(&mut self, target: &Target, types: NsType) -> &mut NsCommand {
        if let Err(e) = ns_core::check_types(types, || {
            ns_core::Context::new(ns_core::Op::Enter, types, Subject::Pid(target.pid()))
        }) {
            self.error = Some(e.into());
            return self;
        }
        match target.try_clone() {
            Ok(t) => self.target = Some((t, types)),
            Err(e) => self.error = Some(e.into()),
        }
        self
    }

    /// Pins process `pid` ([`Target::pin`]) and enters `types` of its namespaces. A pinning
    /// error is reported by [`NsCommand::spawn`].
    pub fn enter_pid(&mut self, pid: libc::pid_t, types: NsType) -> &mut NsCommand {
        match Target::pin(pid, types) {
            Ok(t) => self.target = Some((t, types)),
            Err(e) => self.error = Some(e.into()),
        }
        self
    }

    /// Enters one namespace given by its handle (any number of types, one handle each).
    pub fn enter_namespace(&mut self, ns: Namespace) -> &mut NsCommand {
        self.namespaces.push(ns);
        self
    }

    /// How the target's namespaces are entered (see `ns_core::EntryStrategy`).
    pub fn entry_strategy(&mut self, strategy: EntryStrategy) -> &mut NsCommand {
        self.strategy = strategy;
        self
    }

    /// Creates new namespaces of these types for the child, inside the entered ones. Each
    /// type needs the kernel version that introduced it (cgroup 4.6, time 5.6; see
    /// `ns_core::NsType`); `clone3` itself needs 5.3.
    ///
    /// Bits that are no namespace type (see `NsType::unknown_bits`) make
    /// [`spawn`](NsCommand::spawn) fail with `ns_core::Error::UnknownFlags`.
    pub fn unshare(&mut self, types: NsType) -> &mut NsCommand {
        if let Err(e) = ns_core::check_types(types, || {
            ns_core::Context::new(ns_core::Op::Create, types, Subject::None)
        }) {
            self.error.get_or_insert(e.into());
        }
        self.unshare |= types;
        self
    }

    /// Adds a line to the new user namespace's `uid_map`, written by the parent side before
    /// the child goes on.
    pub fn uid_map(&mut self, inside: u32, outside: u32, count: u32) -> &mut NsCommand {
        self.uid_map.push(IdMap {
            inside,
            outside,
            count,
        });
        self
    }

    /// Adds a line to the new user namespace's `gid_map`.
    pub fn gid_map(&mut self, inside: u32, outside: u32, count: u32) -> &mut NsCommand {
        self.gid_map.push(IdMap {
            inside,
            outside,
            count,
        });
        self
    }

    /// Writes `deny` to the new user namespace's `setgroups` before its `gid_map` (needed for
    /// an unprivileged caller to write a `gid_map`).
    pub fn setgroups_deny(&mut self, deny: bool) -> &mut NsCommand {
        self.setgroups_deny = deny;
        self
    }

    /// Offsets a clock of the new time namespace by `secs` seconds (may be negative) plus
    /// `nanos` nanoseconds (below one second). Written to `timens_offsets` before anything
    /// runs in the namespace (Linux 5.6; needs [`unshare`](NsCommand::unshare) of
    /// `NsType::TIME`).
    pub fn time_offset(&mut self, clock: Clock, secs: i64, nanos: u32) -> &mut NsCommand {
        self.time_offsets.push((clock, secs, nanos));
        self
    }

    /// Offsets a clock of the new time namespace forward by `by`.
    pub fn time_offset_by(&mut self, clock: Clock, by: Duration) -> &mut NsCommand {
        self.time_offset(clock, by.as_secs() as i64, by.subsec_nanos())
    }

    /// The hostname of the new UTS namespace.
    pub fn hostname(&mut self, name: impl AsRef<OsStr>) -> &mut NsCommand {
        self.hostname = Some(name.as_ref().to_owned());
        self
    }

    /// The propagation of `/` and everything below it in the child's new mount namespace,
    /// set before the [`mount`](NsCommand::mount)s (needs [`unshare`](NsCommand::unshare) of
    /// `NsType::MNT`). Without it, a spawn with mounts or a new root makes it
    /// [`Propagation::Private`], as util-linux `unshare` does; one without leaves it as the
    /// kernel copied it.
    pub fn propagation(&mut self, propagation: Propagation) -> &mut NsCommand {
        self.propagation = Some(propagation);
        self
    }

    /// Adds a mount, made in the child's new mount namespace (needs
    /// [`unshare`](NsCommand::unshare) of `NsType::MNT`) in the order added, before the root
    /// changes. A failure is [`Step::Mount`](crate::Step::Mount) with the mount's index.
    pub fn mount(&mut self, mount: Mount) -> &mut NsCommand {
        self.mounts.push(mount);
        self
    }

    /// Which mount system calls the child uses (see [`MountApi`]); the default asks the
    /// kernel once and takes the new mount API where it is offered.
    pub fn mount_api(&mut self, api: MountApi) -> &mut NsCommand {
        self.mount_api = api;
        self
    }

    /// Makes `dir` the child's root after the mounts, with `pivot_root` (see [`RootMode`]),
    /// which needs [`unshare`](NsCommand::unshare) of `NsType::MNT`; `RootMode::Chroot`
    /// changes only the child's own root and needs none. The child starts in `/` of the
    /// new root unless [`current_dir`](NsCommand::current_dir) says otherwise (resolved
    /// inside it). A failure is [`Step::Root`](crate::Step::Root).
    pub fn root(&mut self, dir: impl AsRef<Path>) -> &mut NsCommand {
        let mode = self.root.as_ref().map(|(_, m)| *m).unwrap_or_default();
        self.root = Some((dir.as_ref().to_owned(), mode));
        self
    }

    /// How [`root`](NsCommand::root) is changed to.
    pub fn root_mode(&mut self, mode: RootMode) -> &mut NsCommand {
        if let Some((_, m)) = &mut self.root {
            *m = mode;
        } else {
            self.error.get_or_insert(Error::Invalid {
                what: format!("spawning {}", self.program.to_string_lossy()),
                reason: "root_mode without a root".to_owned(),
            });
        }
        self
    }

    /// A cgroup v2 directory to start the child in: `CLONE_INTO_CGROUP` (Linux 5.7), else the
    /// parent side writes the child's PID to its `cgroup.procs` before the child goes on.
    pub fn cgroup(&mut self, dir: impl AsRef<Path>) -> &mut NsCommand {
        self.cgroup = Some(dir.as_ref().to_owned());
        self
    }

    /// Spawned children are killed and reaped when their [`Child`] handle is dropped before
    /// being waited for (see [`Child::kill_on_drop`]).
    pub fn kill_on_drop(&mut self, yes: bool) -> &mut NsCommand {
        self.kill_on_drop = yes;
        self
    }

    /// How the child is put in its [`cgroup`](NsCommand::cgroup).
    pub fn cgroup_placement(&mut self, placement: CgroupPlacement) -> &mut NsCommand {
        self.placement = placement;
        self
    }

    /// For tests of the error paths: the intermediate process waits for one byte on `fd`
    /// before it creates the child (or, with `after_child`, right after, before it writes the
    /// child's id maps), so that a test can kill a process of the spawn at a known point. The
    /// wait also ends when the calling process dies. Forces an intermediate even when nothing
    /// is entered. Only with the `test-hooks` feature, which is for this crate's own tests
    /// and is no part of its API.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn pause_intermediate_for_tests(
        &mut self,
        fd: OwnedFd,
        after_child: bool,
    ) -> &mut NsCommand {
        self.pause = Some((fd, after_child));
        self
    }

    /// For tests that compare the two ways of entering a target's user namespace: always
    /// give the intermediate its own copy of memory, never use the trampoline. Only with the
    /// `test-hooks` feature.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn user_entry_by_copy_for_tests(&mut self) -> &mut NsCommand {
        self.user_route = Some(false);
        self
    }

    /// For tests of the trampoline itself: the spawn must enter the target's user namespace
    /// through the trampoline, and fails (`Error::Invalid`) where it would not, or where the
    /// trampoline fails, instead of falling back to the copy path. Only with the
    /// `test-hooks` feature.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn user_entry_by_trampoline_for_tests(&mut self) -> &mut NsCommand {
        self.user_route = Some(true);
        self
    }

    /// A signal the child gets when the thread that spawned it exits
    /// (`PR_SET_PDEATHSIG`). Note that it follows the spawning *thread*, as the kernel does.
    pub fn parent_death_signal(&mut self, signal: libc::c_int) -> &mut NsCommand {
        self.pdeathsig = Some(signal);
        self
    }

    /// Gives the child `fd` as descriptor number `child_fd`. Every other descriptor above 2
    /// is closed in the child.
    ///
    /// `child_fd` must be below the open-file limit (`RLIMIT_NOFILE`, with some room left for
    /// the spawn's own descriptors) and given once (stdin, stdout and stderr count as 0, 1
    /// and 2); otherwise [`spawn`](NsCommand::spawn) fails with [`Error::Invalid`] naming the
    /// number. Any number may clash with descriptors the spawn uses internally: those are
    /// moved out of the way first.
    pub fn fd(&mut self, child_fd: RawFd, fd: OwnedFd) -> &mut NsCommand {
        self.fds.push((child_fd, fd));
        self
    }

    /// Spawns the child and returns its handle.
    ///
    /// # Errors
    /// - [`Error::Invalid`] for an inconsistent configuration (nothing is started);
    /// - [`Error::Enter`], [`Error::Step`], [`Error::Exec`] when a step fails in a child
    ///   process, with the step and the kernel's errno; [`Error::Died`] when the intermediate
    ///   or pid stage is killed half-way, or no child was created. A *child* killed before it
    ///   executes the program is not an error of the spawn: its handle is returned and
    ///   [`Child::wait`] reports the signal (as for a program killed right after it
    ///   started; the two cannot be told apart from outside);
    /// - [`Error::Core`] when pinning or opening namespaces fails.
    ///
    /// On error nothing is left behind: every process the spawn created has been reaped and
    /// every descriptor it opened closed. One exception, with the legacy `clone` only (where
    /// `clone3` is refused): a process of the spawn killed right after a `clone` returned,
    /// before the new task first ran, leaves that task's existence unprovable; the spawn then
    /// never frees or closes what such a task could use (the command's settings included:
    /// the command is left with its program and `kill_on_drop` only).
    pub fn spawn(&mut self) -> Result<Child> {
        self.launch(None, &mut false)
    }

    /// The closure ending of the builder: runs `f` in the child instead of a program, after
    /// the same setup (namespaces, id maps, hostname, cgroup, mounts and root, stdio and given
    /// descriptors, session, limits, credentials, capabilities, `pre_exec` hooks, seccomp),
    /// and exits with its return value (`_exit(f())`, low 8 bits). Program, arguments and
    /// environment are not used; the child keeps the caller's other descriptors, as after
    /// `fork` (they are not closed as for a program). [`clone`](crate::clone()) is this with
    /// a target and new namespaces only.
    ///
    /// ```no_run
    /// use ns_container::{Mount, NsCommand};
    /// use ns_core::NsType;
    ///
    /// // SAFETY: the closure only makes system calls.
    /// let mut child = unsafe {
    ///     NsCommand::new("sandboxed closure")
    ///         .unshare(NsType::MNT | NsType::PID | NsType::NET)
    ///         .mount(Mount::proc("/proc"))
    ///         .no_new_privs(true)
    ///         .spawn_fn(|| libc::getpid())
    /// }?;
    /// assert_eq!(child.wait()?.code(), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Safety
    /// As for [`clone`](crate::clone()): `f` runs in a copy of the calling process made by
    /// `clone`, like `fork`, so it may only do what is allowed after `fork` in a multithreaded
    /// program; no destructor runs in the child, not even of what `f` captured.
    ///
    /// # Errors
    /// As [`NsCommand::spawn`].
    pub unsafe fn spawn_fn<F>(&mut self, f: F) -> Result<Child>
    where
        F: FnMut() -> i32,
    {
        // On the heap, so that it can outlive this call if a task of the spawn might.
        let mut slot = Box::new(std::mem::ManuallyDrop::new(f));
        let action = SpecAction::Call {
            data: &mut **slot as *mut F as *mut libc::c_void,
            call: crate::clone::call_closure::<F>,
        };
        let mut doubt = false;
        let spawned = self.launch(Some(action), &mut doubt);
        if doubt {
            Box::leak(slot);
        } else {
            // The child has its own copy of `f` (and never drops it); ours is dropped here.
            // SAFETY: `slot` is not used again.
            unsafe { std::mem::ManuallyDrop::drop(&mut slot) };
        }
        spawned
    }

    /// Everything [`spawn`](NsCommand::spawn) and [`spawn_fn`](NsCommand::spawn_fn) share:
    /// a program (`closure` is `None`) or a closure. `doubt` is set when a task of the spawn
    /// may exist unseen (see `spawn::spawn`): then nothing it could read is ever freed, and
    /// the closure's data must not be either.
    fn launch(&mut self, closure: Option<SpecAction>, doubt: &mut bool) -> Result<Child> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let what = self.program.to_string_lossy().into_owned();
        let invalid = |reason: &str| Error::Invalid {
            what: format!("spawning {what}"),
            reason: reason.to_owned(),
        };
        if self.program.as_bytes().contains(&0) {
            return Err(invalid("the program name contains a NUL byte"));
        }
        if let Some(filter) = &self.seccomp {
            if filter.is_empty() || filter.len() > crate::seccomp::MAX_INSTRUCTIONS {
                return Err(invalid(&format!(
                    "a seccomp filter of {} instructions (the kernel takes 1 to {})",
                    filter.len(),
                    crate::seccomp::MAX_INSTRUCTIONS
                )));
            }
        }
        let cstr = |s: &OsStr| {
            CString::new(s.as_bytes()).map_err(|_| invalid("an argument contains a NUL byte"))
        };

        // Environment and PATH search, prepared here: the child cannot allocate.
        let mut env: BTreeMap<OsString, OsString> = if self.env_clear {
            BTreeMap::new()
        } else {
            std::env::vars_os().collect()
        };
        for (k, v) in &self.env {
            match v {
                Some(v) => {
                    env.insert(k.clone(), v.clone());
                }
                None => {
                    env.remove(k);
                }
            }
        }
        let envp = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone().into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).map_err(|_| invalid("an environment variable contains a NUL byte"))
            })
            .collect::<Result<Vec<_>>>()?;
        let program = self.program.as_bytes();
        let candidates = if program.contains(&b'/') {
            vec![cstr(&self.program)?]
        } else {
            let path = env
                .get(OsStr::new("PATH"))
                .map(|p| p.as_bytes().to_vec())
                .unwrap_or_else(|| b"/bin:/usr/bin".to_vec());
            path.split(|b| *b == b':')
                .map(|dir| {
                    let mut full = if dir.is_empty() {
                        b".".to_vec()
                    } else {
                        dir.to_vec()
                    };
                    full.push(b'/');
                    full.extend_from_slice(program);
                    CString::new(full).map_err(|_| invalid("the program name contains a NUL byte"))
                })
                .collect::<Result<Vec<_>>>()?
        };
        if self
            .time_offsets
            .iter()
            .any(|(_, _, nanos)| *nanos >= 1_000_000_000)
        {
            return Err(invalid("time offset nanoseconds must be below one second"));
        }
        let mut argv = vec![cstr(self.arg0.as_deref().unwrap_or(&self.program))?];
        for a in &self.args {
            argv.push(cstr(a)?);
        }

        // Stdio and given descriptors: (source, number in the child).
        let mut keep: Vec<OwnedFd> = Vec::new();
        let mut moves: Vec<(RawFd, RawFd)> = Vec::new();
        let mut parent_ends: [Option<OwnedFd>; 3] = [None, None, None];
        for (n, stdio) in [&self.stdin, &self.stdout, &self.stderr]
            .into_iter()
            .enumerate()
        {
            let child_fd = n as RawFd;
            match &stdio.0 {
                StdioKind::Inherit => {}
                StdioKind::Null => {
                    let f = File::options()
                        .read(true)
                        .write(true)
                        .open("/dev/null")
                        .map_err(io_error(format!("spawning {what}"), "opening /dev/null"))?;
                    moves.push((f.as_raw_fd(), child_fd));
                    keep.push(f.into());
                }
                StdioKind::Piped => {
                    let (r, w) = crate::sys::pipe().map_err(io_error(
                        format!("spawning {what}"),
                        "creating a stdio pipe",
                    ))?;
                    let (ours, theirs) = if n == 0 { (w, r) } else { (r, w) };
                    moves.push((theirs.as_raw_fd(), child_fd));
                    keep.push(theirs);
                    parent_ends[n] = Some(ours);
                }
                StdioKind::Fd(fd) => moves.push((fd.as_raw_fd(), child_fd)),
            }
        }
        for (child_fd, fd) in &self.fds {
            moves.push((fd.as_raw_fd(), *child_fd));
        }

        let privileges = self.privilege_spec(&moves, &invalid)?;
        let mounts = PreparedMounts::prepare(&self.mounts).map_err(|r| invalid(&r))?;
        let root = match &self.root {
            Some((dir, mode)) => Some((
                cstr(dir.as_os_str())?,
                match mode {
                    RootMode::PivotRoot => RootChange::Pivot,
                    RootMode::Chroot => RootChange::Chroot,
                },
            )),
            None => None,
        };
        let wants_mounts = !self.mounts.is_empty() || matches!(root, Some((_, RootChange::Pivot)));
        let propagation = self
            .propagation
            .or(wants_mounts.then_some(Propagation::Private))
            .map(Propagation::flag)
            .unwrap_or(0);
        let mut spec = Spec {
            what: what.clone(),
            subject: self
                .target
                .as_ref()
                .map(|(t, _)| Subject::Pid(t.pid()))
                .unwrap_or(Subject::None),
            entry: None,
            unshare: self.unshare,
            uid_map: map_text(&self.uid_map),
            gid_map: map_text(&self.gid_map),
            setgroups_deny: self.setgroups_deny,
            time_offsets: offsets_text(&self.time_offsets),
            hostname: self.hostname.as_ref().map(|h| h.as_bytes().to_vec()),
            propagation,
            mounts: &mounts.steps,
            mount_api: self.mount_api,
            root,
            cgroup: self.cgroup.clone(),
            cgroup_procs: None,
            moves,
            close_fds: closure.is_none(),
            groups: self.groups.clone(),
            pgroup: self.pgroup,
            gid: self.gid,
            uid: self.uid,
            privileges,
            cwd: self.cwd.as_ref().map(|c| cstr(c.as_os_str())).transpose()?,
            pdeathsig: self.pdeathsig.unwrap_or(0),
            pre_exec: if self.pre_exec.0.is_empty() {
                std::ptr::null_mut()
            } else {
                &mut self.pre_exec.0
            },
            seccomp: self.seccomp.as_deref(),
            action: closure.unwrap_or(SpecAction::Exec {
                candidates,
                argv,
                envp,
            }),
            pause: self
                .pause
                .as_ref()
                .map(|(fd, after)| (fd.as_raw_fd(), *after)),
            user_at_exec: None,
        };
        spec.cgroup_procs = match self.placement {
            CgroupPlacement::Auto => None,
            CgroupPlacement::CloneInto => Some(false),
            CgroupPlacement::ProcsFile => Some(true),
        };
        spec.entry = entry_plan(self.target.as_ref(), &self.namespaces, self.strategy)?;
        let enters_user = spec
            .entry
            .as_ref()
            .is_some_and(|p| p.types().contains(NsType::USER));
        if enters_user && self.user_at_exec_possible(spec.action_is_exec()) {
            let user = self.entered_user_ns().map(AsRawFd::as_raw_fd);
            if let Some(user) = user {
                spec.entry =
                    entry_plan_without_user(self.target.as_ref(), &self.namespaces, self.strategy)?;
                spec.user_at_exec = Some(user);
            }
        }
        if self.user_route == Some(true) && spec.user_at_exec.is_none() {
            return Err(invalid(
                "the user-namespace trampoline was required (a test hook) but this spawn \
                 would not use it",
            ));
        }

        let mut spawned = spawn::spawn(&spec, doubt);
        if spec.user_at_exec.is_some() && !*doubt && self.user_route.is_none() {
            if let Err(e) = &spawned {
                if trampoline_failed(e) {
                    if let Error::Step {
                        errno: libc::EACCES | libc::EPERM | libc::ENOSYS,
                        detail: crate::child::EXEC_TRAMPOLINE,
                        ..
                    } = e
                    {
                        // A policy refuses to execute it now: later spawns go straight to
                        // the copy path.
                        crate::trampoline::refused();
                    }
                    // Nothing of the spawn ran or remains (the child ended before executing
                    // anything of the caller's): the copy path may work where the trampoline
                    // did not (a policy against executing memfds since the probe, arguments
                    // that fit once but not with the trampoline's added).
                    spec.user_at_exec = None;
                    spec.entry = entry_plan(self.target.as_ref(), &self.namespaces, self.strategy)?;
                    spawned = spawn::spawn(&spec, doubt);
                }
            }
        }
        if *doubt {
            // A task of the spawn may exist unseen and still read what the spec points to,
            // or use the descriptors it was given: none of it is ever freed or closed. The
            // command's own settings go with it, and the command starts over empty.
            std::mem::forget(spec);
            std::mem::forget(mounts);
            std::mem::forget(keep);
            let kill_on_drop = self.kill_on_drop;
            let fresh = NsCommand::new(&self.program);
            std::mem::forget(std::mem::replace(self, fresh));
            self.kill_on_drop = kill_on_drop;
        } else {
            drop(keep);
        }
        let spawned = spawned?;
        let mut child = Child::new(spawned.pid, spawned.pidfd);
        child.kill_on_drop(self.kill_on_drop);
        let [stdin, stdout, stderr] = parent_ends;
        child.stdin = stdin.map(ChildStdin::from);
        child.stdout = stdout.map(ChildStdout::from);
        child.stderr = stderr.map(ChildStderr::from);
        Ok(child)
    }

    /// Spawns the child with stdout and stderr piped and stdin from `/dev/null` (each unless
    /// set otherwise) and collects its output, like `Command::output`.
    ///
    /// # Errors
    /// As [`NsCommand::spawn`], plus reading and waiting.
    pub fn output(&mut self) -> Result<Output> {
        if matches!(self.stdin.0, StdioKind::Inherit) {
            self.stdin = Stdio::null();
        }
        for slot in [&mut self.stdout, &mut self.stderr] {
            if matches!(slot.0, StdioKind::Inherit) {
                *slot = Stdio::piped();
            }
        }
        let what = self.program.to_string_lossy().into_owned();
        self.spawn()?
            .wait_with_output()
            .map_err(io_error(format!("running {what}"), "collecting output"))
    }

    /// Spawns the child and waits for it, like `Command::status`.
    ///
    /// # Errors
    /// As [`NsCommand::spawn`], plus waiting.
    pub fn status(&mut self) -> Result<ExitStatus> {
        let what = self.program.to_string_lossy().into_owned();
        self.spawn()?
            .wait()
            .map_err(io_error(format!("running {what}"), "waiting"))
    }
}

impl NsCommand {
    /// Whether the target's user namespace can be left to the user-namespace trampoline
    /// (`crate::trampoline`), so that no process of the spawn copies the caller's memory:
    /// a program (not a closure) is run; the caller may enter every other namespace itself
    /// (it has `CAP_SYS_ADMIN`, so the user namespace goes last, `UserOrder::Last`); nothing
    /// but groups (at most `trampoline::MAX_GROUPS`), gid, uid, the working directory and
    /// the parent-death signal is set with the container's credentials (no capabilities,
    /// securebits, `no_new_privs`, limits, OOM score, terminal, seccomp filter or hooks; no
    /// new namespaces, maps, mounts, root, hostname or cgroup), which the trampoline sets as
    /// the child would; no time namespace is entered; and the trampoline runs here.
    fn user_at_exec_possible(&self, exec: bool) -> bool {
        let p = &self.privileges;
        let plain_privileges = p.ctty.is_none()
            && p.rlimits.is_empty()
            && p.oom_score_adj.is_none()
            && p.bounding.is_none()
            && p.effective.is_none()
            && p.permitted.is_none()
            && p.inheritable.is_none()
            && p.ambient.is_none()
            && p.securebits.is_none()
            && !p.no_new_privs;
        let entered_time = self
            .target
            .as_ref()
            .is_some_and(|(_, types)| types.contains(NsType::TIME))
            || self.namespaces.iter().any(|n| n.ns_type() == NsType::TIME);
        exec && self.user_route != Some(false)
            && plain_privileges
            && self.pre_exec.0.is_empty()
            && self.seccomp.is_none()
            && self
                .groups
                .as_ref()
                .is_none_or(|g| g.len() <= crate::trampoline::MAX_GROUPS)
            && self.unshare.is_empty()
            && self.uid_map.is_empty()
            && self.gid_map.is_empty()
            && !self.setgroups_deny
            && self.time_offsets.is_empty()
            && self.hostname.is_none()
            && self.mounts.is_empty()
            && self.propagation.is_none()
            && self.root.is_none()
            && self.cgroup.is_none()
            && !entered_time
            && UserOrder::for_caller() == UserOrder::Last
            && sys_admin_survives_exec()
            && crate::trampoline::usable()
    }

    /// The user namespace the spawn enters: a handle given with `enter_ns`, else the
    /// target's.
    fn entered_user_ns(&self) -> Option<&Namespace> {
        self.namespaces
            .iter()
            .find(|n| n.ns_type() == NsType::USER)
            .or_else(|| match &self.target {
                Some((target, types)) if types.contains(NsType::USER) => {
                    target.namespace(NsType::USER)
                }
                _ => None,
            })
    }

    /// The privilege settings, checked against each other and the kernel.
    fn privilege_spec(
        &self,
        moves: &[(RawFd, RawFd)],
        invalid: &impl Fn(&str) -> Error,
    ) -> Result<PrivilegeSpec> {
        let p = &self.privileges;
        if p.setsid && self.pgroup.is_some() {
            return Err(invalid(
                "setsid and process_group exclude each other (a session leader leads its own group)",
            ));
        }
        if let Some(fd) = p.ctty {
            if !p.setsid {
                return Err(invalid("a controlling terminal needs setsid"));
            }
            let given = moves.iter().any(|(_, dst)| *dst == fd);
            if !(0..=2).contains(&fd) && !given {
                return Err(invalid(&format!(
                    "the controlling terminal {fd} is no descriptor of the child"
                )));
            }
        }
        let last = crate::sys::cap_last();
        for mask in [
            p.bounding,
            p.effective,
            p.permitted,
            p.inheritable,
            p.ambient,
        ]
        .into_iter()
        .flatten()
        {
            if last < 63 && mask >> (last + 1) != 0 {
                return Err(invalid(&format!(
                    "capability {} is not known to this kernel (cap_last_cap is {last})",
                    63 - mask.leading_zeros()
                )));
            }
        }
        Ok(p.clone())
    }
}

/// The entry plan, from a target and/or individual handles.
pub(crate) fn entry_plan<'a>(
    target: Option<&'a (Target, NsType)>,
    namespaces: &'a [Namespace],
    strategy: EntryStrategy,
) -> Result<Option<EntryPlan<'a>>> {
    if namespaces.is_empty() {
        return match target {
            Some((target, types)) => Ok(Some(target.plan(*types, strategy)?)),
            None => Ok(None),
        };
    }
    let mut handles: Vec<&Namespace> = namespaces.iter().collect();
    if let Some((target, types)) = target {
        for t in types.iter() {
            if let Some(ns) = target.namespace(t) {
                handles.push(ns);
            }
        }
    }
    Ok(Some(EntryPlan::from_namespaces(&handles)?))
}

/// Whether `CAP_SYS_ADMIN`, effective in the calling thread, is still effective after it
/// executes a file without capabilities (the trampoline), which needs it to enter the user
/// namespace: as an ambient capability, or by root's rule (effective uid 0 in its user
/// namespace, no `SECBIT_NOROOT`, and in the bounding or inheritable set).
fn sys_admin_survives_exec() -> bool {
    let has = |set| ns_core::caps::has_cap(None, set, Capability::CAP_SYS_ADMIN).unwrap_or(false);
    if has(CapSet::Ambient) {
        return true;
    }
    // SAFETY: geteuid and a prctl query have no preconditions.
    let (euid, securebits) = unsafe {
        (
            libc::geteuid(),
            libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0),
        )
    };
    const SECBIT_NOROOT: libc::c_int = 1;
    euid == 0
        && securebits >= 0
        && securebits & SECBIT_NOROOT == 0
        && (has(CapSet::Bounding) || has(CapSet::Inheritable))
}

/// Whether a spawn failed in the trampoline's own part, before the program was tried:
/// creating or executing the trampoline, or its entry into the user namespace.
fn trampoline_failed(e: &Error) -> bool {
    matches!(
        e,
        Error::Step {
            step: crate::Step::Exec,
            detail: crate::child::EXEC_TRAMPOLINE,
            ..
        } | Error::Enter {
            process: crate::Process::Child,
            ..
        }
    )
}

/// The entry plan without the user namespace, which the trampoline enters.
fn entry_plan_without_user<'a>(
    target: Option<&'a (Target, NsType)>,
    namespaces: &'a [Namespace],
    strategy: EntryStrategy,
) -> Result<Option<EntryPlan<'a>>> {
    let mut handles: Vec<&Namespace> = namespaces
        .iter()
        .filter(|n| n.ns_type() != NsType::USER)
        .collect();
    if handles.is_empty() {
        return match target {
            Some((target, types)) if *types != NsType::USER => {
                Ok(Some(target.plan(*types - NsType::USER, strategy)?))
            }
            _ => Ok(None),
        };
    }
    if let Some((target, types)) = target {
        for t in (*types - NsType::USER).iter() {
            if let Some(ns) = target.namespace(t) {
                handles.push(ns);
            }
        }
    }
    Ok(Some(EntryPlan::from_namespaces(&handles)?))
}

fn map_text(maps: &[IdMap]) -> Option<Vec<u8>> {
    if maps.is_empty() {
        return None;
    }
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect();
    Some(text.into_bytes())
}

fn offsets_text(offsets: &[(Clock, i64, u32)]) -> Option<Vec<u8>> {
    if offsets.is_empty() {
        return None;
    }
    let text: String = offsets
        .iter()
        .map(|(clock, secs, nanos)| {
            let name = match clock {
                Clock::Monotonic => "monotonic",
                Clock::Boottime => "boottime",
            };
            format!("{name} {secs} {nanos}\n")
        })
        .collect();
    Some(text.into_bytes())
}
