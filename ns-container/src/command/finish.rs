//! Finishing the container's filesystem and lifetime: mounts and their propagation, the new
//! root, the cgroup and how the child is placed in it, the parent-death signal and
//! `kill_on_drop`.

use std::path::Path;

use super::settings::{CgroupPlacement, NsCommand};
use crate::error::Error;
use crate::mounts::{Mount, MountApi, Propagation, RootMode};

/// Receives the master of the terminal that [`NsCommand::terminal`] sends, waiting for it on
/// the other end of the console socket. The descriptor is close-on-exec.
///
/// # Errors
/// The socket's error, `ENODATA` when a message came without a descriptor, `EMFILE` when the
/// descriptor table had no room for it.
pub fn receive_terminal(socket: impl std::os::fd::AsFd) -> std::io::Result<std::os::fd::OwnedFd> {
    crate::sys::receive_fd_on(socket.as_fd(), true)?
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENODATA))
}

impl NsCommand {
    /// The propagation of `/` and everything below it in the child's new mount namespace,
    /// set before the [`mount`](NsCommand::mount)s (needs [`unshare`](NsCommand::unshare) of
    /// `NsType::MNT`). Without it, a new mount namespace is made [`Propagation::Private`],
    /// as util-linux `unshare` makes it: nothing mounted in the child reaches the caller's
    /// namespace, and the other way round.
    pub fn propagation(&mut self, propagation: Propagation) -> &mut NsCommand {
        self.propagation = Some(propagation);
        self
    }

    /// Holds the program back until another process lets it go: after every step of its
    /// setup, right before its seccomp filter, `pre_exec` hooks and `execve`, the child waits
    /// for a connection on `listener` (a listening `AF_UNIX` socket, for instance bound in an
    /// OCI runtime's state directory), and executes the program once one arrives. The split
    /// of an OCI runtime's `create` and `start`: [`spawn`](NsCommand::spawn) returns once the
    /// child waits, the caller may exit meanwhile (the child is then reparented and keeps
    /// waiting: do not set a [`parent_death_signal`](NsCommand::parent_death_signal)), and a
    /// later process's `connect` starts the program. The child has memory of its own for
    /// this (a copy of the caller's, made non-dumpable as a closure child's is).
    /// A failure to accept is [`Step::Hold`](crate::Step::Hold), reported only while the
    /// caller still waits in `spawn`.
    pub fn hold_before_exec(&mut self, listener: std::os::fd::OwnedFd) -> &mut NsCommand {
        self.hold = Some(listener);
        self
    }

    /// Gives the program a pseudo-terminal of the container's own: after its mounts and new
    /// root, the child opens `/dev/ptmx` as the container sees it (its own `devpts`, mounted
    /// with `newinstance`), makes the terminal's peer its standard input, output and error
    /// and its controlling terminal (in a new session), sets the window size (`rows`,
    /// `cols`) when given, and sends the master over `console` (a connected `AF_UNIX`
    /// socket, with `SCM_RIGHTS` and the bytes `/dev/ptmx`): what an OCI runtime's
    /// `process.terminal` with `--console-socket` does. A failure is
    /// [`Step::Terminal`](crate::Step::Terminal).
    pub fn terminal(
        &mut self,
        console: std::os::fd::OwnedFd,
        size: Option<(u16, u16)>,
    ) -> &mut NsCommand {
        self.terminal = Some((console, size));
        self.privileges.setsid = true;
        self.privileges.ctty = Some(0);
        self
    }

    /// Writes `value` to the kernel parameter `key` (`net.ipv4.ip_forward`, or as a path,
    /// `net/ipv4/ip_forward`) under `/proc/sys` as the child sees it before its mounts (the
    /// caller's `/proc`), once it is in its namespaces and while it is still privileged: the
    /// net, ipc and uts parameters there are those of the namespaces it created or entered
    /// (OCI's `linux.sysctl`; a parameter no namespace holds would be the host's: give only
    /// namespaced ones). Written before the mounts, a read-only `/proc/sys` among the
    /// container's read-only paths does not refuse them (runc's order). The key
    /// may not climb out of `/proc/sys` (`..` is refused by `spawn`). A failure is
    /// [`Step::Sysctl`](crate::Step::Sysctl) with the parameter's index.
    pub fn sysctl(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut NsCommand {
        self.sysctls.push((key.into(), value.into()));
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

    /// Mounts, propagation and the root change are made in the mount namespace the child
    /// has without making one (the caller's, or one it enters), as an OCI configuration
    /// without a mount namespace, or joining one by path, asks. They stay there after the
    /// child is gone and every process of that namespace sees them; `pivot_root` there moves
    /// the root of every process of it whose root was the namespace's, so use
    /// [`RootMode::Chroot`](crate::RootMode::Chroot) unless that namespace is the container's.
    /// Off by default: without it, mounts need a new mount namespace.
    pub fn mounts_in_shared_namespace(&mut self, yes: bool) -> &mut NsCommand {
        self.shared_mounts = yes;
        self
    }

    /// Makes the new root's own mount read-only once the root has changed (OCI's
    /// `root.readonly`); the mounts below it keep their own flags. A failure is
    /// [`Step::Root`](crate::Step::Root) with detail 1.
    pub fn read_only_root(&mut self, yes: bool) -> &mut NsCommand {
        self.read_only_root = yes;
        self
    }

    /// The propagation of the new root and everything below it, set once the root has
    /// changed (OCI's `rootfsPropagation`): [`propagation`](NsCommand::propagation) is the
    /// propagation of `/` before the mounts, which `pivot_root` needs to be private or slave;
    /// this may be anything, shared included. A failure is
    /// [`Step::Propagation`](crate::Step::Propagation) with detail 1.
    pub fn root_propagation(&mut self, propagation: Propagation) -> &mut NsCommand {
        self.root_propagation = Some(propagation);
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
    /// With a new cgroup namespace, the child makes it once it is there, rooted in this
    /// cgroup (see [`cgroup_v1`](NsCommand::cgroup_v1)).
    pub fn cgroup(&mut self, dir: impl AsRef<Path>) -> &mut NsCommand {
        self.cgroup = Some(dir.as_ref().to_owned());
        self
    }

    /// A directory of a cgroup v1 hierarchy the child joins, once per hierarchy (hybrid and
    /// v1 hosts keep their controllers there; [`cgroup`](NsCommand::cgroup) is the v2 one).
    ///
    /// The child moves itself, first thing after it is created, by writing `0` to the
    /// directory's `tasks` file (opened by the caller before the spawn). A single-threaded
    /// task moving itself is the one migration the kernel makes without its global
    /// thread-group lock: a PID written to `cgroup.procs` takes that lock for writing and
    /// waits for an RCU grace period, 5 to 15 ms on an idle machine, once per container.
    ///
    /// With a new cgroup namespace ([`NsType::CGROUP`](ns_core::NsType::CGROUP)) and any
    /// cgroup given, the child makes that namespace itself once it is in its cgroups, so
    /// that the namespace's root is the container's cgroup (`/proc/self/cgroup` shows `/`),
    /// as the OCI runtime spec asks.
    pub fn cgroup_v1(&mut self, dir: impl AsRef<Path>) -> &mut NsCommand {
        self.cgroups_v1.push(dir.as_ref().to_owned());
        self
    }

    /// Spawned children are killed and reaped when their [`Child`](crate::Child) handle is dropped before
    /// being waited for (see [`Child::kill_on_drop`](crate::Child::kill_on_drop)).
    pub fn kill_on_drop(&mut self, yes: bool) -> &mut NsCommand {
        self.kill_on_drop = yes;
        self
    }

    /// How the child is put in its [`cgroup`](NsCommand::cgroup).
    pub fn cgroup_placement(&mut self, placement: CgroupPlacement) -> &mut NsCommand {
        self.placement = placement;
        self
    }

    /// A signal the child gets when the thread that spawned it exits
    /// (`PR_SET_PDEATHSIG`). Note that it follows the spawning *thread*, as the kernel does.
    pub fn parent_death_signal(&mut self, signal: libc::c_int) -> &mut NsCommand {
        self.pdeathsig = Some(signal);
        self
    }
}
