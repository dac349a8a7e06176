//! Namespaces kept under a name in a directory, the way iproute2 keeps network namespaces
//! in `/run/netns`: [`NamedNamespaces`], and [`netns`] for iproute2's own directory.
//!
//! Each name is a file in the directory with the namespace bind-mounted on it
//! ([`persist`]), so it lives on without any process in it. The directory is
//! set up as `ip netns add` sets it up: made a mount point (bound on itself) and marked
//! shared, so that a later delete in one mount namespace reaches copies of the mount made
//! by mount namespaces created since. The two work on the same files both ways: a
//! namespace added here shows in `ip netns list` and `ip netns exec NAME` enters it, and
//! one made by `ip netns add` opens here.
//!
//! ```
//! # fn main() -> ns_core::Result<()> {
//! # // Skipped without privilege, except under `cargo xtask test-root` (NS_TEST_ROOT).
//! # if std::env::var_os("NS_TEST_ROOT").is_none() && !ns_core::caps::has_cap(None,
//! #     ns_core::caps::CapSet::Effective, ns_core::caps::Capability::CAP_SYS_ADMIN)
//! #     .unwrap_or(false) { return Ok(()); }
//! use ns_core::named;
//!
//! let netns = named::netns();
//! let blue = netns.create("doc-blue")?; // `ip netns add doc-blue`
//! assert!(netns.list()?.iter().any(|n| n == "doc-blue"));
//! assert_eq!(netns.open("doc-blue")?.id()?, blue.id()?);
//! netns.delete("doc-blue")?; // `ip netns delete doc-blue`
//! # Ok(())
//! # }
//! ```

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Op, Result, Subject};
use crate::namespace::Namespace;
use crate::ns_type::NsType;
use crate::persist::{persist, unpersist};
use crate::sys;

/// iproute2's directory of named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The named network namespaces of iproute2 (`/run/netns`).
pub fn netns() -> NamedNamespaces {
    NamedNamespaces::new(NETNS_RUN_DIR, NsType::NET)
}

/// Namespaces of one type kept under names in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedNamespaces {
    dir: PathBuf,
    ns_type: NsType,
}

impl NamedNamespaces {
    /// Names in `dir` for namespaces of `ns_type` (one type). [`netns`] is
    /// `NamedNamespaces::new("/run/netns", NsType::NET)`.
    pub fn new(dir: impl AsRef<Path>, ns_type: NsType) -> NamedNamespaces {
        NamedNamespaces {
            dir: dir.as_ref().to_owned(),
            ns_type,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or would hold) `name`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a name iproute2 would not take: empty, `.` or `..`, with a
    /// `/` or a NUL byte, or longer than 255 bytes.
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        let bad = name.is_empty()
            || name == "."
            || name == ".."
            || name.contains(['/', '\0'])
            || name.len() > 255;
        if bad {
            return Err(Error::Invalid {
                context: Context::new(Op::Open, self.ns_type, Subject::Path(self.dir.clone())),
                reason: format!(
                    "{name:?} is not a namespace name (no /, not . or .., 1 to 255 bytes)"
                ),
            });
        }
        Ok(self.dir.join(name))
    }

    /// Creates a new namespace ([`Namespace::create`]) and keeps it as `name`, like
    /// `ip netns add NAME`; returns a handle to it.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name; [`Error::Os`] with `EEXIST` when the name is taken
    /// (a namespace or a stale file), or when the directory cannot be set up or the kernel
    /// refuses. Nothing is left behind on error.
    pub fn create(&self, name: &str) -> Result<Namespace> {
        let ns = Namespace::create(self.ns_type)?;
        self.add(name, &ns)?;
        Ok(ns)
    }

    /// Keeps an existing namespace as `name`, like `ip netns attach NAME PID` does with a
    /// process's.
    ///
    /// # Errors
    /// As [`create`](NamedNamespaces::create), and [`Error::WrongType`] for a namespace of
    /// another type.
    pub fn add(&self, name: &str, ns: &Namespace) -> Result<()> {
        let path = self.path(name)?;
        let context = || Context::new(Op::Persist, self.ns_type, Subject::Path(path.clone()));
        if ns.ns_type() != self.ns_type {
            return Err(Error::WrongType {
                context: context(),
                found: ns.ns_type(),
            });
        }
        self.prepare_dir().map_err(|e| Error::os(context(), e))?;
        // Claim the name first: of two creators, exactly one gets it.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&path)
            .map_err(|e| Error::os(context(), e))?;
        persist(ns, &path).inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })
    }

    /// Opens the namespace kept as `name`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name; [`Error::Os`] with `ENOENT` for an unknown one;
    /// [`Error::NotNamespace`] for a file that holds no namespace (a stale name);
    /// [`Error::WrongType`] for one of another type.
    pub fn open(&self, name: &str) -> Result<Namespace> {
        Namespace::open(self.path(name)?, self.ns_type)
    }

    /// The names kept in the directory that hold a namespace of this type, sorted; an absent
    /// directory has none. Files left without a namespace (by a creator that died half-way)
    /// are not listed; [`delete`](NamedNamespaces::delete) removes them. Nothing in the
    /// directory is opened for reading unless it is a namespace file.
    ///
    /// # Errors
    /// [`Error::Os`] when the directory cannot be read.
    pub fn list(&self) -> Result<Vec<String>> {
        let context = || Context::new(Op::Open, self.ns_type, Subject::Path(self.dir.clone()));
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::os(context(), e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::os(context(), e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if holds_namespace(&entry.path(), self.ns_type) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Deletes the name `name`, like `ip netns delete NAME`: the bind mount is detached and
    /// the file removed ([`unpersist`]). The namespace itself lives on while a process or a
    /// handle still refers to it. A plain file left without a namespace (a creator that died
    /// between claiming the name and mounting) is removed, as iproute2 removes it.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name; [`Error::Os`] with `ENOENT` for an unknown one;
    /// [`Error::NotNamespace`] for something other than a namespace or a plain file.
    pub fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name)?;
        match unpersist(&path) {
            Err(Error::NotNamespace { context, .. })
                if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) =>
            {
                std::fs::remove_file(&path).map_err(|e| Error::os(context, e))
            }
            r => r,
        }
    }

    /// Makes the directory (mode 0755) and turns it into a shared mount point, as iproute2
    /// does before its first `ip netns add`.
    fn prepare_dir(&self) -> io::Result<()> {
        match std::fs::DirBuilder::new().mode(0o755).create(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let dir = CString::new(self.dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let make_shared = || sys::mount(None, &dir, libc::MS_SHARED | libc::MS_REC);
        match make_shared() {
            // EINVAL: not a mount point yet; bind it on itself, then share it.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                sys::mount(Some(&dir), &dir, libc::MS_BIND | libc::MS_REC)?;
                make_shared()
            }
            r => r,
        }
    }
}

/// Whether `path` itself (not a symbolic link's target) has a namespace of `ns_type`
/// bind-mounted on it. Looked at through an `O_PATH` descriptor, so that a FIFO or a device
/// in the directory is never opened.
fn holds_namespace(path: &Path, ns_type: NsType) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid path; O_PATH opens nothing but a reference to the file.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: a new descriptor nobody else owns.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let nsfs = sys::fs_type(std::os::fd::AsFd::as_fd(&fd))
        .is_ok_and(|magic| magic == ns_sys::nsfs::NSFS_MAGIC);
    // A namespace file: reopened for reading through the descriptor to learn its type.
    nsfs && Namespace::open_any(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .is_ok_and(|ns| ns.ns_type() == ns_type)
}
