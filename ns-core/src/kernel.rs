//! What the running kernel supports: [`nstypes`], [`supported`], [`KernelVersion`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Context, Error, Op, Result, Subject};
use crate::names::{check_types, nstype};
use crate::ns_type::NsType;

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
    // Cached without a lock (bit 32 marks "known"): a lock held by another thread at the
    // moment of a `fork` would stay held forever in the child.
    static TYPES: AtomicU64 = AtomicU64::new(0);
    let cached = TYPES.load(Ordering::Relaxed);
    if cached & KNOWN != 0 {
        return NsType::from_bits_truncate(cached as libc::c_int);
    }
    let types = match std::fs::read_dir("/proc/self/ns") {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| nstype(n).ok()))
            .fold(NsType::empty(), |acc, t| acc | t),
        // Not kept: out of descriptors, for instance, says nothing of the kernel.
        Err(_) => return NsType::empty(),
    };
    TYPES.store(KNOWN | u64::from(types.bits() as u32), Ordering::Relaxed);
    types
}

/// The "known" mark of the lock-free caches in this module.
const KNOWN: u64 = 1 << 63;

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
    check_types(types, || Context::new(Op::Detect, types, Subject::None))?;
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
        // Cached without a lock, as `nstypes` is: 20 bits per number (clamped), bit 62 for
        // "readable", bit 63 for "known".
        static CURRENT: AtomicU64 = AtomicU64::new(0);
        const READABLE: u64 = 1 << 62;
        const FIELD: u64 = (1 << 20) - 1;
        let unreadable = || Error::Invalid {
            context: Context::new(Op::Detect, NsType::USER, Subject::None),
            reason: "cannot read the kernel version from uname(2)".to_owned(),
        };
        let cached = CURRENT.load(Ordering::Relaxed);
        if cached & KNOWN != 0 {
            if cached & READABLE == 0 {
                return Err(unreadable());
            }
            let field = |shift: u32| ((cached >> shift) & FIELD) as u32;
            return Ok(KernelVersion::new(field(40), field(20), field(0)));
        }
        let read = || {
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
        };
        match read() {
            Some(v) => {
                let clamp = |n: u32| u64::from(n).min(FIELD);
                let packed = KNOWN
                    | READABLE
                    | (clamp(v.major) << 40)
                    | (clamp(v.minor) << 20)
                    | clamp(v.patch);
                CURRENT.store(packed, Ordering::Relaxed);
                let field = |shift: u32| ((packed >> shift) & FIELD) as u32;
                Ok(KernelVersion::new(field(40), field(20), field(0)))
            }
            None => {
                CURRENT.store(KNOWN, Ordering::Relaxed);
                Err(unreadable())
            }
        }
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
