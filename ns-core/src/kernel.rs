//! What the running kernel supports: [`nstypes`], [`supported`], [`KernelVersion`].

use std::fmt;
use std::sync::OnceLock;

use crate::error::{Context, Error, Op, Result, Subject};
use crate::NsType;

/// Mesos `ns::nstypes`: every namespace type this kernel supports.
///
/// Read once from the entries of `/proc/self/ns` (the `*_for_children` entries are views of
/// the PID and time types, not types of their own) and cached, so later calls cost an atomic
/// load. A kernel without `/proc/self/ns` (before 3.0) or an unmounted `/proc` gives the
/// empty set.
///
/// ```
/// use ns_core::{nstypes, NsType};
///
/// let types = nstypes();
/// assert!(types.contains(NsType::MNT)); // every kernel with /proc/self/ns has it
/// ```
pub fn nstypes() -> NsType {
    static TYPES: OnceLock<NsType> = OnceLock::new();
    *TYPES.get_or_init(|| {
        let Ok(entries) = std::fs::read_dir("/proc/self/ns") else {
            return NsType::empty();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| crate::nstype(n).ok()))
            .fold(NsType::empty(), |acc, t| acc | t)
    })
}

/// Checks that `ns_type` is exactly one type this kernel supports, and returns its name.
pub(crate) fn single_supported(
    ns_type: NsType,
    context: impl Fn() -> Context,
) -> Result<&'static str> {
    let Some(name) = ns_type.name() else {
        return Err(Error::NotOneType {
            context: context(),
            types: ns_type,
        });
    };
    if !nstypes().contains(ns_type) {
        return Err(Error::Unsupported {
            context: context(),
            needs: format!("no {name} entry in /proc/self/ns"),
        });
    }
    Ok(name)
}

/// Mesos `ns::supported`: whether the kernel supports *all* of `types`.
///
/// As in Mesos, user namespaces also need Linux 3.12 or later: before that, too many
/// filesystems could not be used from one.
///
/// ```
/// use ns_core::{supported, NsType};
///
/// if supported(NsType::TIME)? {
///     println!("time namespaces are available (Linux 5.6)");
/// }
/// assert!(supported(NsType::empty())?);
/// # Ok::<(), ns_core::Error>(())
/// ```
///
/// # Errors
/// [`Error::Invalid`] when `types` contains user and the kernel version cannot be read;
/// [`Error::UnknownFlags`] when `types` holds bits that are no namespace type.
pub fn supported(types: NsType) -> Result<bool> {
    crate::check_types(types, || {
        crate::Context::new(crate::Op::Detect, types, crate::Subject::None)
    })?;
    if types.contains(NsType::USER) {
        let version = KernelVersion::current()?;
        if version < KernelVersion::new(3, 12, 0) {
            return Ok(false);
        }
    }
    Ok(nstypes().contains(types))
}

/// A Linux kernel version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    /// Major number (6 in 6.18.2).
    pub major: u32,
    /// Minor number (18 in 6.18.2).
    pub minor: u32,
    /// Patch level (2 in 6.18.2).
    pub patch: u32,
}

impl KernelVersion {
    /// Builds a version.
    pub const fn new(major: u32, minor: u32, patch: u32) -> KernelVersion {
        KernelVersion {
            major,
            minor,
            patch,
        }
    }

    /// The running kernel's version, from `uname(2)`; read once and cached.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the release string does not start with `N.N`.
    pub fn current() -> Result<KernelVersion> {
        static CURRENT: OnceLock<Option<KernelVersion>> = OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let mut uts = std::mem::MaybeUninit::<libc::utsname>::zeroed();
                // SAFETY: `uts` is writable storage for one utsname structure.
                if unsafe { libc::uname(uts.as_mut_ptr()) } != 0 {
                    return None;
                }
                // SAFETY: uname succeeded and filled the structure.
                let uts = unsafe { uts.assume_init() };
                // SAFETY: `release` is NUL-terminated by the kernel.
                let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
                KernelVersion::parse(&release.to_string_lossy())
            })
            .ok_or_else(|| Error::Invalid {
                context: Context::new(Op::Detect, NsType::USER, Subject::None),
                reason: "cannot read the kernel version from uname(2)".to_owned(),
            })
    }

    /// Parses a release string such as `6.18.44-fc-v669` or `5.8`.
    pub fn parse(release: &str) -> Option<KernelVersion> {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(KernelVersion::new(major, minor, patch))
    }

    /// Whether the running kernel is at least `major.minor`; `false` when unknown.
    pub fn at_least(major: u32, minor: u32) -> bool {
        KernelVersion::current()
            .map(|v| v >= KernelVersion::new(major, minor, 0))
            .unwrap_or(false)
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nstypes_on_this_kernel_is_all_eight() {
        assert_eq!(nstypes(), NsType::all());
    }

    #[test]
    fn supported_needs_every_requested_type() {
        assert!(supported(NsType::all()).unwrap());
        assert!(supported(NsType::NET | NsType::USER).unwrap());
        assert!(supported(NsType::empty()).unwrap());
    }

    #[test]
    fn kernel_versions_parse_and_order() {
        assert_eq!(
            KernelVersion::parse("6.18.44-fc-v669"),
            Some(KernelVersion::new(6, 18, 44))
        );
        assert_eq!(
            KernelVersion::parse("5.8"),
            Some(KernelVersion::new(5, 8, 0))
        );
        assert_eq!(
            KernelVersion::parse("4.19.0-rc1"),
            Some(KernelVersion::new(4, 19, 0))
        );
        assert_eq!(KernelVersion::parse("garbage"), None);
        assert!(KernelVersion::new(3, 12, 0) > KernelVersion::new(3, 8, 13));
        assert!(KernelVersion::current().unwrap() >= KernelVersion::new(3, 12, 0));
    }
}
