//! The new mount API (`fsopen`, `fsconfig`, `fsmount`, `move_mount`, `open_tree`,
//! `mount_setattr`; Linux 5.2, `mount_setattr` 5.12): its constants and `struct mount_attr`
//! (`include/uapi/linux/mount.h`). The system calls themselves take raw pointers and are
//! made with `libc::syscall` by the code that needs them (a forked child), so only the
//! probe is wrapped here.

/// `fsopen` flag: the context descriptor is close-on-exec.
pub const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
/// `fsconfig` command: set a flag option (`ro`, `newinstance`, …).
pub const FSCONFIG_SET_FLAG: libc::c_uint = 0;
/// `fsconfig` command: set a string option (`mode=755`).
pub const FSCONFIG_SET_STRING: libc::c_uint = 1;
/// `fsconfig` command: create the superblock.
pub const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
/// `fsmount` flag: the mount descriptor is close-on-exec.
pub const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
/// `move_mount` flag: the source is the descriptor itself (empty path).
pub const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
/// `open_tree` flag: clone the tree into a new detached mount (a bind mount).
pub const OPEN_TREE_CLONE: libc::c_uint = 0x1;
/// `open_tree` flag: close-on-exec.
pub const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
/// `open_tree`/`mount_setattr` flag: the whole tree below.
pub const AT_RECURSIVE: libc::c_uint = 0x8000;
/// Mount attribute: read-only.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// Mount attribute: no set-user-ID.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// Mount attribute: no device files.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
/// Mount attribute: no execution.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `struct mount_attr` for `mount_setattr(2)` (size 32, `MOUNT_ATTR_SIZE_VER0`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct mount_attr {
    /// `MOUNT_ATTR_*` to set.
    pub attr_set: u64,
    /// `MOUNT_ATTR_*` to clear.
    pub attr_clr: u64,
    /// `MS_PRIVATE`, `MS_SLAVE`, `MS_SHARED` or `MS_UNBINDABLE`, or 0.
    pub propagation: u64,
    /// With `MOUNT_ATTR_IDMAP`: a user namespace descriptor.
    pub userns_fd: u64,
}

/// Whether this kernel (and any seccomp filter in front of it) offers the new mount API:
/// `fsopen` and `mount_setattr` are asked with arguments they refuse before doing anything
/// (`EFAULT`/`EINVAL` where they exist, `ENOSYS` where not).
pub fn new_mount_api_usable() -> bool {
    let refused = |ret: libc::c_long| {
        ret == -1 && std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
    };
    // SAFETY: a null name makes fsopen fail before it reads or creates anything; a null path
    // with size 0 makes mount_setattr fail before it reads anything.
    unsafe {
        refused(libc::syscall(
            libc::SYS_fsopen,
            std::ptr::null::<libc::c_char>(),
            0,
        )) && refused(libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            std::ptr::null::<libc::c_char>(),
            0,
            std::ptr::null::<mount_attr>(),
            0usize,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_attr_matches_the_uapi_layout() {
        assert_eq!(std::mem::size_of::<mount_attr>(), 32);
    }

    #[test]
    fn the_new_mount_api_is_there_on_a_current_kernel() {
        // Linux 5.12 and later have both calls; this machine's kernel is newer.
        assert!(new_mount_api_usable());
    }
}
