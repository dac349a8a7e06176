//! Keeping a namespace alive at a path: [`persist`] and [`unpersist`].
//!
//! This is what `ip netns add NAME` (a bind mount on `/run/netns/NAME`) and
//! `unshare --net=FILE` do: a bind mount of the namespace file holds a reference to the
//! namespace, so it outlives every process in it, and anyone can later open the path to get a
//! handle to the same namespace.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Context, Error, Op, Result, Subject};
use crate::namespace::Namespace;
use crate::ns_type::NsType;
use crate::sys;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// The magic number of the filesystem `path` is on (`statfs`, which opens nothing).
fn fs_magic(path: &Path) -> io::Result<i64> {
    let c = cpath(path)?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `c` is a valid path and `st` writable storage for one statfs structure.
    if unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs succeeded and filled the structure.
    Ok(sys::statfs_magic(&unsafe { st.assume_init() }))
}

/// Whether `path` is itself a namespace file (a persisted namespace or a `/proc` link).
fn is_nsfs(path: &Path) -> io::Result<bool> {
    Ok(fs_magic(path)? == ns_sys::nsfs::NSFS_MAGIC)
}

/// Persists `ns` by bind-mounting its file onto `path`, creating `path` (mode 0444) if it does
/// not exist. Opening `path` later gives a handle with the same [`NsId`](crate::NsId).
///
/// A mount namespace can only be persisted in a mount namespace older than itself (the kernel
/// refuses loops with `EINVAL`), and the bind mount propagates to peers of the mount that
/// holds `path`; keep such files under a private mount, as `unshare(1)` asks.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // Skipped without privilege, except under `cargo xtask test-root` (NS_TEST_ROOT).
/// # if std::env::var_os("NS_TEST_ROOT").is_none() && !ns_core::caps::has_cap(None,
/// #     ns_core::caps::CapSet::Effective, ns_core::caps::Capability::CAP_SYS_ADMIN)
/// #     .unwrap_or(false) { return Ok(()); }
/// use ns_core::{persist, unpersist, Namespace, NsType};
///
/// let ns = Namespace::create(NsType::UTS)?;
/// let path = std::env::temp_dir().join(format!("ns-doc-persist-{}", std::process::id()));
/// persist(&ns, &path)?;
/// drop(ns); // the bind mount keeps it alive
/// assert_eq!(Namespace::open(&path, NsType::UTS)?.ns_type(), NsType::UTS);
/// unpersist(&path)?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// - [`Error::Invalid`] when `path` already holds a persisted namespace.
/// - [`Error::Os`] when the file cannot be created or the mount fails (`EPERM` without
///   `CAP_SYS_ADMIN`; `EINVAL` for a mount-namespace loop). Nothing is left behind: a file this
///   function created is removed again.
pub fn persist(ns: &Namespace, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let context = || Context::new(Op::Persist, ns.ns_type(), Subject::Path(path.to_owned()));
    let c = cpath(path).map_err(|e| Error::os(context(), e))?;
    match is_nsfs(path) {
        Ok(true) => {
            return Err(Error::Invalid {
                context: context(),
                reason: "the path already holds a namespace; unpersist it first".to_owned(),
            })
        }
        Ok(false) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(Error::os(context(), e)),
    }
    // SAFETY: `c` is a valid path; the returned descriptor is closed right away.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o444 as libc::c_uint,
        )
    };
    let created = fd >= 0;
    if created {
        // SAFETY: closing the descriptor open just returned.
        unsafe { libc::close(fd) };
    } else {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(Error::os(context(), e));
        }
    }
    let source = cpath(Path::new(&format!("/proc/self/fd/{}", ns.as_raw_fd())))
        .map_err(|e| Error::os(context(), e))?;
    if let Err(e) = sys::mount(Some(&source), &c, libc::MS_BIND) {
        if created {
            let _ = std::fs::remove_file(path);
        }
        if e.raw_os_error() == Some(libc::EINVAL) && ns.ns_type() == NsType::MNT {
            return Err(Error::Invalid {
                context: context(),
                reason: "a mount namespace can only be persisted from an older mount namespace \
                         (the kernel refuses mount-namespace loops with EINVAL)"
                    .to_owned(),
            });
        }
        return Err(Error::os(context(), e));
    }
    Ok(())
}

/// Undoes [`persist`]: detaches the bind mount at `path` (`umount2(MNT_DETACH |
/// UMOUNT_NOFOLLOW)`, as `ip netns delete` does; a symbolic link at `path` is refused, never
/// followed) and removes the file. The namespace lives on while processes or
/// handles still refer to it.
///
/// # Errors
/// [`Error::NotNamespace`] when `path` does not hold a namespace (nothing is changed);
/// [`Error::Os`] when unmounting or removing fails.
pub fn unpersist(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let context = || {
        Context::new(
            Op::Unpersist,
            NsType::empty(),
            Subject::Path(path.to_owned()),
        )
    };
    let c = cpath(path).map_err(|e| Error::os(context(), e))?;
    match is_nsfs(path) {
        Ok(true) => {}
        Ok(false) => {
            // statfs, not open: the path may be a FIFO or a device.
            return Err(Error::NotNamespace {
                context: context(),
                fs_type: fs_magic(path).unwrap_or(0),
            });
        }
        Err(e) => return Err(Error::os(context(), e)),
    }
    // Never through a link (UMOUNT_NOFOLLOW): a link there would detach whatever it leads to.
    // SAFETY: `c` is a valid path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) } != 0 {
        return Err(Error::os(context(), io::Error::last_os_error()));
    }
    std::fs::remove_file(path).map_err(|e| Error::os(context(), e))
}

impl Namespace {
    /// Persists this namespace at `path`; see [`persist`].
    ///
    /// # Errors
    /// As [`persist`].
    pub fn persist(&self, path: impl AsRef<Path>) -> Result<()> {
        persist(self, path)
    }
}
