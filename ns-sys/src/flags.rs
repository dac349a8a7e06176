//! `CLONE_*` flags (`include/uapi/linux/sched.h`).
//!
//! The namespace flags are `c_int`, the type `setns(2)` and `unshare(2)` take. Flags that only
//! exist for `clone3(2)` do not fit in an `int` and are `u64`, the type of
//! [`clone_args::flags`](crate::clone_args::flags).

use libc::c_int;

/// New or joined mount namespace (Linux 2.4.19; namespace file since 3.8).
pub const CLONE_NEWNS: c_int = 0x0002_0000;
/// New or joined cgroup namespace (Linux 4.6).
pub const CLONE_NEWCGROUP: c_int = 0x0200_0000;
/// New or joined UTS namespace: hostname and NIS domain name (Linux 2.6.19).
pub const CLONE_NEWUTS: c_int = 0x0400_0000;
/// New or joined IPC namespace: System V IPC and POSIX message queues (Linux 2.6.19).
pub const CLONE_NEWIPC: c_int = 0x0800_0000;
/// New or joined user namespace (Linux 3.8).
pub const CLONE_NEWUSER: c_int = 0x1000_0000;
/// New or joined PID namespace (Linux 2.6.24; namespace file since 3.8).
pub const CLONE_NEWPID: c_int = 0x2000_0000;
/// New or joined network namespace (Linux 2.6.29).
pub const CLONE_NEWNET: c_int = 0x4000_0000;
/// New or joined time namespace (Linux 5.6).
///
/// Its value lies inside [`CSIGNAL`], the exit-signal byte of legacy `clone(2)`: only
/// `clone3(2)`, `unshare(2)` and `setns(2)` accept it. Passing it to legacy `clone` silently
/// creates no time namespace and changes the exit signal instead.
pub const CLONE_NEWTIME: c_int = 0x0000_0080;

/// All eight namespace flags.
pub const CLONE_NEW_ALL: c_int = CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
    | CLONE_NEWTIME;

/// Mask of the exit signal in the flags of legacy `clone(2)`.
pub const CSIGNAL: c_int = 0x0000_00ff;
/// Share the address space (the child runs in the caller's memory).
pub const CLONE_VM: c_int = 0x0000_0100;
/// Share root, current directory and umask.
pub const CLONE_FS: c_int = 0x0000_0200;
/// Share the file descriptor table.
pub const CLONE_FILES: c_int = 0x0000_0400;
/// Share signal handlers.
pub const CLONE_SIGHAND: c_int = 0x0000_0800;
/// Return a pidfd for the child (Linux 5.2).
pub const CLONE_PIDFD: c_int = 0x0000_1000;
/// Let the tracer trace the child too.
pub const CLONE_PTRACE: c_int = 0x0000_2000;
/// Suspend the calling thread until the child calls `execve` or exits.
pub const CLONE_VFORK: c_int = 0x0000_4000;
/// Give the child the caller's parent (the child becomes the caller's sibling).
pub const CLONE_PARENT: c_int = 0x0000_8000;
/// Create a thread of the caller's thread group.
pub const CLONE_THREAD: c_int = 0x0001_0000;
/// Share System V semaphore undo values.
pub const CLONE_SYSVSEM: c_int = 0x0004_0000;
/// Set the child's thread-local storage.
pub const CLONE_SETTLS: c_int = 0x0008_0000;
/// Store the child's thread id at `parent_tid` in the caller's memory.
pub const CLONE_PARENT_SETTID: c_int = 0x0010_0000;
/// Clear the child's thread id at `child_tid` when the child exits, and wake a futex there.
pub const CLONE_CHILD_CLEARTID: c_int = 0x0020_0000;
/// Store the child's thread id at `child_tid` in the child's memory.
pub const CLONE_CHILD_SETTID: c_int = 0x0100_0000;
/// Do not let a tracer force `CLONE_PTRACE` on the child.
pub const CLONE_UNTRACED: c_int = 0x0080_0000;
/// Start the child with every signal handler reset to the default (`clone3` only, Linux 5.5).
pub const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
/// Start the child in the cgroup given by [`clone_args::cgroup`](crate::clone_args::cgroup)
/// (`clone3` only, Linux 5.7).
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_flags_match_libc() {
        assert_eq!(CLONE_NEWNS, libc::CLONE_NEWNS);
        assert_eq!(CLONE_NEWCGROUP, libc::CLONE_NEWCGROUP);
        assert_eq!(CLONE_NEWUTS, libc::CLONE_NEWUTS);
        assert_eq!(CLONE_NEWIPC, libc::CLONE_NEWIPC);
        assert_eq!(CLONE_NEWUSER, libc::CLONE_NEWUSER);
        assert_eq!(CLONE_NEWPID, libc::CLONE_NEWPID);
        assert_eq!(CLONE_NEWNET, libc::CLONE_NEWNET);
        assert_eq!(CLONE_NEWTIME, libc::CLONE_NEWTIME);
        assert_eq!(CLONE_PIDFD, libc::CLONE_PIDFD);
        assert_eq!(CLONE_PARENT, libc::CLONE_PARENT);
        assert_eq!(CLONE_VM, libc::CLONE_VM);
        assert_eq!(CLONE_VFORK, libc::CLONE_VFORK);
        assert_eq!(CLONE_PARENT_SETTID, libc::CLONE_PARENT_SETTID);
    }

    #[test]
    fn namespace_flags_are_distinct_single_bits() {
        let all = [
            CLONE_NEWNS,
            CLONE_NEWCGROUP,
            CLONE_NEWUTS,
            CLONE_NEWIPC,
            CLONE_NEWUSER,
            CLONE_NEWPID,
            CLONE_NEWNET,
            CLONE_NEWTIME,
        ];
        let mut seen = 0;
        for f in all {
            assert_eq!(f.count_ones(), 1, "{f:#x}");
            assert_eq!(seen & f, 0, "{f:#x} repeated");
            seen |= f;
        }
        assert_eq!(seen, CLONE_NEW_ALL);
        // The one namespace flag that collides with legacy clone's exit-signal byte.
        assert_eq!(CLONE_NEW_ALL & CSIGNAL, CLONE_NEWTIME);
    }

    #[test]
    fn clone3_only_flags_are_above_32_bits() {
        assert_eq!(CLONE_CLEAR_SIGHAND, 1 << 32);
        assert_eq!(CLONE_INTO_CGROUP, 1 << 33);
    }
}
