//! Namespace identity: [`NsId`] and Mesos's [`getns`].

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use crate::error::{Context, Error, Op, Result, Subject};
use crate::{Namespace, NsType};

/// The identity of one namespace.
///
/// Two handles, paths or processes refer to the same namespace exactly when their `NsId`s are
/// equal. The identity is `(st_dev, st_ino)` of the namespace's nsfs file (from `fstat`, so
/// a bind mount of the file has the same identity as the `/proc` link), plus, on Linux 6.18
/// and later, the 64-bit id from `NS_GET_ID`, which is never reused. Inode numbers alone *are*
/// reused once a namespace dies, so compare ids of namespaces you hold open, or use
/// [`NsId::unique_id`] on kernels that have it.
///
/// `Display` writes the form of the `/proc/PID/ns` links, `net:[4026531833]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsId {
    ns_type: NsType,
    dev: u64,
    ino: u64,
    unique: Option<u64>,
}

impl NsId {
    /// Reads the identity of the namespace file behind `fd`, of type `ns_type`.
    pub(crate) fn of_fd(fd: BorrowedFd<'_>, ns_type: NsType) -> std::io::Result<NsId> {
        let (dev, ino) = crate::sys::dev_ino(fd)?;
        let unique = ns_sys::nsfs::ns_get_id(fd).ok();
        Ok(NsId {
            ns_type,
            dev,
            ino,
            unique,
        })
    }

    /// The namespace's type.
    pub fn ns_type(&self) -> NsType {
        self.ns_type
    }

    /// The inode number: what Mesos's `getns` returned and what `lsns` shows in its NS column.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The device number of the nsfs filesystem.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// The 64-bit id that is never reused (`NS_GET_ID`, Linux 6.18); `None` on older kernels.
    pub fn unique_id(&self) -> Option<u64> {
        self.unique
    }
}

impl fmt::Display for NsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:[{}]", self.ns_type.name().unwrap_or("?"), self.ino)
    }
}

/// Mesos `ns::getns`: the identity of the `ns_type` namespace of process `pid`.
///
/// Returns `Ok(None)` when the process does not exist or has exited (a zombie has no
/// namespaces any more), as Mesos does for a missing process.
///
/// # Errors
/// [`Error::NotOneType`] unless `ns_type` is exactly one type; [`Error::Unsupported`] when the
/// kernel lacks the type; [`Error::Os`] when the file cannot be read (`EACCES` for a process
/// the caller may not inspect, which needs `CAP_SYS_PTRACE` or the same user).
pub fn getns(pid: libc::pid_t, ns_type: NsType) -> Result<Option<NsId>> {
    let context = || Context::new(Op::Identify, ns_type, Subject::Pid(pid));
    let name = crate::kernel::single_supported(ns_type, context)?;
    let path = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
    match crate::sys::open_cloexec(&path) {
        Ok(fd) => NsId::of_fd(fd.as_fd(), ns_type)
            .map(Some)
            .map_err(|e| Error::os(context(), e)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => Ok(None),
        Err(e) => Err(Error::os(context(), e)),
    }
}

impl Namespace {
    /// The identity of this namespace.
    ///
    /// # Errors
    /// [`Error::Os`] if `fstat` fails, which does not happen for a valid handle.
    pub fn id(&self) -> Result<NsId> {
        NsId::of_fd(self.as_fd(), self.ns_type())
            .map_err(|e| Error::os(self.context(Op::Identify), e))
    }
}
