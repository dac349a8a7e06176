//! Stage 1b, mounts and root, in the child's new mount namespace: the propagation of `/`,
//! each prepared mount in order (mount points created where asked), then the new root
//! (`pivot_root` with the old root detached, or `chroot`).

use super::*;

/// A mount prepared by the caller: every string a `CString`, every flag computed.
#[derive(Clone, Copy)]
pub(crate) struct MountStep {
    /// `mount(2)`'s source (a path for a bind mount, the filesystem name otherwise).
    pub source: *const c_char,
    pub target: *const c_char,
    /// Filesystem type, or null for a bind mount or a remount.
    pub fstype: *const c_char,
    /// `MS_*` flags of the first `mount(2)` call.
    pub flags: libc::c_ulong,
    /// Filesystem options (`mode=755,size=64m`), or null.
    pub data: *const c_char,
    /// `MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC` to apply by a bind remount afterwards
    /// (a bind mount takes no flags of its own), or 0.
    pub remount: libc::c_ulong,
    /// Create the mount point first: 0 no, 1 a directory, 2 a file.
    pub create: u8,
}

/// How the child changes its root.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RootChange {
    None,
    /// `pivot_root` into the directory (bind-mounted on itself first), old root detached.
    Pivot,
    /// `chroot` into it: for roots `pivot_root` cannot leave, such as an initramfs.
    Chroot,
}

pub(super) fn mounts_and_root(plan: &Plan<'_>) -> Result<(), Failure> {
    if plan.propagation != 0 {
        // SAFETY: mount(2) with a static path and no data.
        let r = unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | plan.propagation,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err((Step::Propagation, 0, errno()));
        }
    }
    if !plan.mounts.is_null() {
        // SAFETY: the caller prepared `mounts_len` steps at `mounts`.
        let mounts = unsafe { std::slice::from_raw_parts(plan.mounts, plan.mounts_len) };
        for (i, m) in mounts.iter().enumerate() {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            mount_one(m).map_err(|e| (Step::Mount, index, e))?;
        }
    }
    match plan.root_change {
        RootChange::None => Ok(()),
        RootChange::Pivot => pivot(plan.root).map_err(|e| (Step::Root, 0, e)),
        RootChange::Chroot => change_root(plan.root).map_err(|e| (Step::Root, 0, e)),
    }
}

fn mount_one(m: &MountStep) -> Result<(), c_int> {
    // SAFETY: every pointer was prepared by the caller (NUL-terminated, or null where the
    // system call takes null).
    unsafe {
        match m.create {
            1 if libc::mkdir(m.target, 0o755) != 0 && errno() != libc::EEXIST => {
                return Err(errno());
            }
            2 => {
                let fd = libc::open(
                    m.target,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOCTTY,
                    0o644,
                );
                if fd < 0 {
                    return Err(errno());
                }
                libc::close(fd);
            }
            _ => {}
        }
        if libc::mount(
            m.source,
            m.target,
            m.fstype,
            m.flags,
            m.data as *const c_void,
        ) != 0
        {
            return Err(errno());
        }
        if m.remount != 0 {
            // A bind remount must keep the flags the kernel locks on the mount (nosuid,
            // nodev, ... inherited from a more privileged namespace): read them first.
            let mut st: libc::statvfs = std::mem::zeroed();
            if libc::statvfs(m.target, &mut st) != 0 {
                return Err(errno());
            }
            let keep = [
                (libc::ST_RDONLY, libc::MS_RDONLY),
                (libc::ST_NOSUID, libc::MS_NOSUID),
                (libc::ST_NODEV, libc::MS_NODEV),
                (libc::ST_NOEXEC, libc::MS_NOEXEC),
                (libc::ST_NOATIME, libc::MS_NOATIME),
                (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
                (libc::ST_RELATIME, libc::MS_RELATIME),
            ]
            .iter()
            .filter(|(st_flag, _)| st.f_flag & *st_flag != 0)
            .fold(0, |acc, (_, ms)| acc | ms);
            let flags = libc::MS_BIND | libc::MS_REMOUNT | keep | m.remount;
            if libc::mount(
                std::ptr::null(),
                m.target,
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                return Err(errno());
            }
        }
    }
    Ok(())
}

/// `pivot_root` into `root`: bind it on itself (it must be a mount point), enter it, pivot
/// with the old root on top of the new one, detach the old root, and start at `/`.
fn pivot(root: *const c_char) -> Result<(), c_int> {
    // SAFETY: system calls on the prepared, NUL-terminated path and static ones.
    unsafe {
        if libc::mount(
            root,
            root,
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ) != 0
            || libc::chdir(root) != 0
            || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
            || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
            || libc::chdir(c"/".as_ptr()) != 0
        {
            return Err(errno());
        }
    }
    Ok(())
}

/// `chroot` into `root` and start at `/`.
fn change_root(root: *const c_char) -> Result<(), c_int> {
    // SAFETY: system calls on the prepared, NUL-terminated path and static ones.
    unsafe {
        if libc::chdir(root) != 0
            || libc::chroot(c".".as_ptr()) != 0
            || libc::chdir(c"/".as_ptr()) != 0
        {
            return Err(errno());
        }
    }
    Ok(())
}
