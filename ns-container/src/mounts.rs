//! [`Mount`], [`Propagation`] and [`RootMode`]: the filesystem a container's child sees,
//! set up in its new mount namespace before anything else of its own
//! ([`NsCommand::mount`](crate::NsCommand::mount)).

use std::ffi::CString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::child::MountStep;

/// The mount propagation given to `/` and everything below it in the child's new mount
/// namespace (`mount_namespaces(7)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Propagation {
    /// Nothing propagates in or out (`MS_PRIVATE`): util-linux `unshare`'s default.
    Private,
    /// Mounts made outside appear inside, not the reverse (`MS_SLAVE`).
    Slave,
    /// Mounts propagate both ways (`MS_SHARED`): the child's mounts appear in the mount
    /// namespaces it was copied from. `pivot_root` refuses a shared root, so it does not go
    /// with [`RootMode::PivotRoot`].
    Shared,
    /// Nothing propagates, and nothing can be bound from it (`MS_UNBINDABLE`); for
    /// [`NsCommand::root_propagation`](crate::NsCommand::root_propagation).
    Unbindable,
}

impl Propagation {
    pub(crate) fn flag(self) -> libc::c_ulong {
        match self {
            Propagation::Private => libc::MS_PRIVATE,
            Propagation::Slave => libc::MS_SLAVE,
            Propagation::Shared => libc::MS_SHARED,
            Propagation::Unbindable => libc::MS_UNBINDABLE,
        }
    }
}

/// How the child changes its root to [`NsCommand::root`](crate::NsCommand::root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RootMode {
    /// `pivot_root(2)`: the directory (bind-mounted on itself, so it is a mount point)
    /// becomes `/` and the old root is detached (`umount2(MNT_DETACH)`), so nothing of the
    /// host's filesystem stays reachable.
    #[default]
    PivotRoot,
    /// `chroot(2)`: for roots `pivot_root` cannot leave (an initramfs). The old root stays
    /// mounted in the namespace and reachable to a process with `CAP_SYS_CHROOT`.
    ///
    /// In a new mount namespace the directory is first moved onto `/` (`MS_MOVE`, as runc's
    /// `--no-pivot` does; a plain `chroot` where a shared mount refuses the move), so that the
    /// program's root is its namespace's and it may make a user namespace. Every full procfs
    /// and sysfs mount of the old root is detached before (covered by an empty tmpfs where it
    /// may not be): while one stays anywhere in the namespace, the kernel lets a user
    /// namespace inside the container mount an unmasked `/proc`.
    Chroot,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Bind(PathBuf),
    Filesystem(&'static str),
    /// Any other filesystem: its type and `mount(2)`'s source.
    Other {
        fstype: String,
        source: String,
    },
    /// Not a mount: a symbolic link holding this text.
    Symlink(PathBuf),
    ReadOnly,
    /// `/dev/null` over a file, an empty read-only tmpfs over a directory.
    Mask,
}

/// One mount in the child's new mount namespace, made in the order added, after the
/// propagation of `/` is set and before the root changes (so targets are paths as the child
/// sees them before [`root`](crate::NsCommand::root), e.g. `/tmp/rootfs/proc`).
///
/// A target under the new root (the root's path, then more) is the container's path below
/// it, and it is resolved the way the container would resolve it, never outside the root:
/// the child opens the root in its own mount namespace and resolves the rest from there
/// (`openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`, Linux 5.6; before that one
/// component at a time with `O_NOFOLLOW`, every link's text resolved in its place and `..`
/// stopped at the root), so an image's links (`etc -> /etc`, `run -> /proc/self/fd/3`,
/// `../../..`) lead to places inside the root, a link loop is `ELOOP` and a missing
/// component `ENOENT`, each a [`Step::Mount`](crate::Step::Mount) error naming the mount.
/// The mount is attached to the place as resolved (by descriptor: `move_mount` with the new
/// API, `mount(2)` on `/proc/self/fd/N` otherwise, which needs the host's `/proc` in the
/// child's view), so a link swapped after the resolution changes nothing. Bind *sources*
/// are the caller's paths, resolved as given. A target elsewhere is taken as given, links
/// followed: it is the caller's own path.
///
/// ```no_run
/// use ns_container::{Mount, NsCommand};
/// use ns_core::NsType;
///
/// let status = NsCommand::new("ls")
///     .arg("/proc")
///     .unshare(NsType::MNT | NsType::PID)
///     .mount(Mount::proc("/proc"))
///     .mount(Mount::tmpfs("/tmp").options("size=16m,mode=1777"))
///     .mount(Mount::bind("/etc", "/etc").read_only())
///     .status()?;
/// # Ok::<(), ns_container::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    kind: Kind,
    target: PathBuf,
    flags: libc::c_ulong,
    recursive: bool,
    flags_top_only: bool,
    in_place: bool,
    options: Option<String>,
    create: u8,
    if_exists: bool,
}

/// One mount of the caller's mount namespace, as a line of `/proc/self/mountinfo` gives it
/// (proc(5)), its paths unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted, as the caller's root sees it.
    pub mount_point: PathBuf,
    /// The directory of its filesystem mounted there (`/` for the whole filesystem).
    pub root: PathBuf,
    /// The filesystem's type (`proc`, `cgroup2`, ...).
    pub fstype: String,
    /// The filesystem's own options (for cgroup v1, its controllers among them).
    pub super_options: String,
}

/// The mounts of the caller's mount namespace, in `/proc/self/mountinfo` order (a mount
/// before the mounts on top of it).
///
/// # Errors
/// The error of reading `/proc/self/mountinfo`.
pub fn mount_table() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse_mountinfo(&std::fs::read("/proc/self/mountinfo")?))
}

/// The lines of a mountinfo text that have every field.
fn parse_mountinfo(info: &[u8]) -> Vec<MountEntry> {
    let path = |f: &[u8]| PathBuf::from(std::ffi::OsString::from_vec(unescape_mountinfo(f)));
    let text = |f: &[u8]| String::from_utf8_lossy(&unescape_mountinfo(f)).into_owned();
    let mut out = Vec::new();
    for line in info.split(|b| *b == b'\n') {
        // The optional fields end with a lone "-"; the filesystem's fields follow it.
        let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        let (Some(root), Some(point), Some(fstype), Some(options)) = (
            fields.get(3),
            fields.get(4),
            fields.get(dash + 1),
            fields.get(dash + 3),
        ) else {
            continue;
        };
        out.push(MountEntry {
            mount_point: path(point),
            root: path(root),
            fstype: text(fstype),
            super_options: text(options),
        });
    }
    out
}

/// The mount points of the caller's full procfs and sysfs mounts (the filesystem's root
/// mounted) that lie outside `root`: what a `chroot` into `root` would leave reachable in
/// the mount namespace, in `/proc/self/mountinfo` order (a mount before those on it).
pub(crate) fn full_pseudo_mounts_outside(root: &Path) -> Vec<CString> {
    mount_table()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.root == Path::new("/") && matches!(m.fstype.as_str(), "proc" | "sysfs"))
        .filter(|m| !m.mount_point.starts_with(root))
        .filter_map(|m| CString::new(m.mount_point.into_os_string().into_vec()).ok())
        .collect()
}

/// A mountinfo field: the kernel writes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while let Some(&c) = field.get(i) {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (c, octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// runc's default masked paths (a container's paths): hidden with [`Mount::mask`].
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// runc's default read-only paths (a container's paths): [`Mount::remount_read_only`]
/// where they exist.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

impl Mount {
    fn new(kind: Kind, target: impl AsRef<Path>) -> Mount {
        Mount {
            kind,
            target: target.as_ref().to_owned(),
            flags: 0,
            recursive: true,
            flags_top_only: false,
            in_place: false,
            options: None,
            create: 0,
            if_exists: false,
        }
    }

    /// Binds `source` (a directory or file) at `target`, with everything mounted below it
    /// (`MS_BIND | MS_REC`; see [`recursive`](Mount::recursive)).
    pub fn bind(source: impl AsRef<Path>, target: impl AsRef<Path>) -> Mount {
        Mount::new(Kind::Bind(source.as_ref().to_owned()), target)
    }

    /// A `tmpfs` at `target` (options such as `size=64m,mode=755` with
    /// [`options`](Mount::options)).
    pub fn tmpfs(target: impl AsRef<Path>) -> Mount {
        Mount::new(Kind::Filesystem("tmpfs"), target)
    }

    /// A new filesystem of any type at `target` (`cgroup`, `cgroup2`, `overlay`,
    /// `hugetlbfs`, ...), with `source` as `mount(2)`'s source (the filesystem's name when it
    /// has none) and its options given with [`options`](Mount::options): what an OCI
    /// runtime's `mounts` entries of other types become.
    pub fn filesystem(
        fstype: impl Into<String>,
        source: impl Into<String>,
        target: impl AsRef<Path>,
    ) -> Mount {
        Mount::new(
            Kind::Other {
                fstype: fstype.into(),
                source: source.into(),
            },
            target,
        )
    }

    /// Not a mount but a step of the same stage: a symbolic link at `link` holding
    /// `points_to`, made in the order added (after the mounts before it, so in a `/dev` tmpfs
    /// mounted earlier). A link under the new root is made in its parent as resolved inside
    /// the root (missing parents made as [`create_dir`](Mount::create_dir) does); a name
    /// already there is left as it is. What an OCI runtime's `/dev/fd`, `/dev/stdin`, ...
    /// and `/dev/ptmx` become.
    pub fn symlink(link: impl AsRef<Path>, points_to: impl AsRef<Path>) -> Mount {
        Mount::new(Kind::Symlink(points_to.as_ref().to_owned()), link)
    }

    /// A new `proc` at `target`: it shows the processes of the child's pid namespace, so with
    /// a new pid namespace the child sees only its own.
    pub fn proc(target: impl AsRef<Path>) -> Mount {
        Mount::kernel_fs("proc", target)
    }

    /// A read-only `sysfs` at `target`, as runc mounts it for a container
    /// ([`read_write`](Mount::read_write) for a writable one; the kernel refuses sysfs in a
    /// user namespace that does not own the child's network namespace).
    pub fn sysfs(target: impl AsRef<Path>) -> Mount {
        Mount::kernel_fs("sysfs", target).read_only()
    }

    /// An `mqueue` (POSIX message queues of the child's ipc namespace) at `target`.
    pub fn mqueue(target: impl AsRef<Path>) -> Mount {
        Mount::kernel_fs("mqueue", target)
    }

    /// A kernel filesystem that holds no programs or devices: `nosuid`, `nodev`, `noexec`.
    fn kernel_fs(fs: &'static str, target: impl AsRef<Path>) -> Mount {
        Mount::new(Kind::Filesystem(fs), target)
            .nosuid()
            .nodev()
            .noexec()
    }

    /// A new `devpts` instance at `target` (options such as `newinstance,ptmxmode=0666`).
    pub fn devpts(target: impl AsRef<Path>) -> Mount {
        Mount::new(Kind::Filesystem("devpts"), target)
            .nosuid()
            .noexec()
    }

    /// A container's own `devpts` at `target` with runc's options: `newinstance`,
    /// `ptmxmode=0666`, `mode=0620`, `gid=5` (the `tty` group), `nosuid`, `noexec`.
    pub fn devpts_for_container(target: impl AsRef<Path>) -> Mount {
        Mount::devpts(target).options("newinstance,ptmxmode=0666,mode=0620,gid=5")
    }

    /// Hides what is at `target` (a container's masked path): a file or device is covered
    /// by a bind of `/dev/null`, a directory by an empty read-only `tmpfs`; decided by what
    /// the child finds there. Skipped when nothing is there.
    pub fn mask(target: impl AsRef<Path>) -> Mount {
        Mount::new(Kind::Mask, target).if_exists()
    }

    /// runc's defaults for a container whose root is `root`: every [`MASKED_PATHS`] entry
    /// masked and every [`READONLY_PATHS`] entry made read-only, each below `root` (so
    /// resolved inside it) and skipped where absent. Add them after the container's `/proc`
    /// and `/sys` mounts.
    pub fn container_defaults(root: impl AsRef<Path>) -> Vec<Mount> {
        let root = root.as_ref();
        let inside = |p: &str| root.join(p.trim_start_matches('/'));
        MASKED_PATHS
            .iter()
            .map(|p| Mount::mask(inside(p)))
            .chain(READONLY_PATHS.iter().map(|p| {
                Mount::remount_read_only(inside(p))
                    .recursive(false)
                    .nosuid()
                    .nodev()
                    .noexec()
                    .if_exists()
            }))
            .collect()
    }

    /// Makes `target`, already there, read-only: bound on itself, then remounted read-only,
    /// with every mount below it unless [`recursive(false)`](Mount::recursive).
    /// Under the new root no link of the image may lie on the way (`ELOOP`), as for
    /// [`proc`](Mount::proc), [`sysfs`](Mount::sysfs) and [`mask`](Mount::mask).
    pub fn remount_read_only(target: impl AsRef<Path>) -> Mount {
        Mount::new(Kind::ReadOnly, target).read_only()
    }

    /// For [`remount_read_only`](Mount::remount_read_only) of a mount point: the mount there
    /// is made read-only where it is, instead of a read-only bind of it on top (which leaves
    /// the writable mount listed below it, and hides what is mounted on it unless
    /// recursive). The target must be a mount's root (`EINVAL` otherwise); with
    /// [`recursive`](Mount::recursive) (the default) the mounts below it too, through the
    /// new mount API.
    pub fn in_place(mut self) -> Mount {
        self.in_place = true;
        self
    }

    /// Read-only (`MS_RDONLY`).
    pub fn read_only(mut self) -> Mount {
        self.flags |= libc::MS_RDONLY;
        self
    }

    /// Writable: drops `MS_RDONLY` (for a [`sysfs`](Mount::sysfs) a container may write).
    pub fn read_write(mut self) -> Mount {
        self.flags &= !libc::MS_RDONLY;
        self
    }

    /// Skips the mount when its target does not exist (instead of failing the spawn with
    /// `ENOENT`); what exists is mounted as usual.
    pub fn if_exists(mut self) -> Mount {
        self.if_exists = true;
        self
    }

    /// No set-user-ID or file capabilities (`MS_NOSUID`).
    pub fn nosuid(mut self) -> Mount {
        self.flags |= libc::MS_NOSUID;
        self
    }

    /// No device files (`MS_NODEV`).
    pub fn nodev(mut self) -> Mount {
        self.flags |= libc::MS_NODEV;
        self
    }

    /// No execution (`MS_NOEXEC`).
    pub fn noexec(mut self) -> Mount {
        self.flags |= libc::MS_NOEXEC;
        self
    }

    /// For a bind mount: with the mounts below the source (the default) or only the source's
    /// own mount.
    ///
    /// Flags ([`read_only`](Mount::read_only), [`nosuid`](Mount::nosuid), ...) reach every
    /// mount of a recursive bind only through the new mount API (`mount_setattr` with
    /// `AT_RECURSIVE`, Linux 5.12); `mount(2)` would set them on the top mount alone and leave
    /// the mounts below writable, so a spawn that would use it
    /// ([`MountApi::Classic`], or [`MountApi::Auto`] on an older kernel) refuses a recursive
    /// bind with flags as [`Error::Unsupported`](crate::Error::Unsupported).
    pub fn recursive(mut self, yes: bool) -> Mount {
        self.recursive = yes;
        self
    }

    /// For a recursive bind: the flags ([`read_only`](Mount::read_only), ...) on its top mount
    /// only, the mounts below it keep theirs (OCI's `ro` on an `rbind`, where `rro` asks for
    /// every mount). Any mount API does this.
    pub fn flags_on_top_only(mut self) -> Mount {
        self.flags_top_only = true;
        self
    }

    /// Filesystem options, as `mount -o` takes them (not for bind mounts).
    pub fn options(mut self, options: impl Into<String>) -> Mount {
        self.options = Some(options.into());
        self
    }

    /// Creates the target directory first if it does not exist: for a target under the new
    /// root with every missing directory above it, inside the root (`mkdir -p`); elsewhere
    /// its parent must exist.
    pub fn create_dir(mut self) -> Mount {
        self.create = 1;
        self
    }

    /// Creates the target as an empty file first if it does not exist (to bind a file); under
    /// the new root the missing directories above it too, inside the root.
    pub fn create_file(mut self) -> Mount {
        self.create = 2;
        self
    }

    /// The target, as given.
    pub fn target(&self) -> &Path {
        &self.target
    }
}

/// The mounts of a spawn, as the child's stage takes them: the strings they point to live
/// here.
#[derive(Default)]
pub(crate) struct PreparedMounts {
    strings: Vec<CString>,
    option_lists: Vec<Box<[(*const libc::c_char, *const libc::c_char)]>>,
    /// Targets as paths inside the new root.
    in_root: Vec<Box<[u8]>>,
    pub steps: Vec<MountStep>,
}

/// Which mount system calls the child uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MountApi {
    /// The new mount API where the kernel (and any seccomp filter) offers it (Linux 5.12:
    /// `fsopen`, `fsmount`, `open_tree`, `move_mount`, `mount_setattr`), else `mount(2)`;
    /// asked once per process.
    #[default]
    Auto,
    /// The new mount API: a mount is made whole while detached, then moved into place.
    New,
    /// The classic `mount(2)` (a bind mount, then a remount for its flags).
    Classic,
}

impl MountApi {
    pub(crate) fn use_new(self) -> bool {
        static USABLE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
        match self {
            MountApi::Auto => crate::probes::probed(&USABLE, ns_sys::mount::new_mount_api_usable),
            MountApi::New => true,
            MountApi::Classic => false,
        }
    }
}

/// `MS_*` flags as `MOUNT_ATTR_*` bits.
fn attr_of(flags: libc::c_ulong) -> u64 {
    use ns_sys::mount::{
        MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
    };
    [
        (libc::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
    ]
    .iter()
    .filter(|(ms, _)| flags & ms != 0)
    .fold(0, |acc, (_, attr)| acc | attr)
}

fn cstring(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", path.display()))
}

impl PreparedMounts {
    /// Prepares `mounts`; a target under `root` (the new root, when there is one) is also
    /// given as a path inside it, which the child resolves there.
    pub(crate) fn prepare(mounts: &[Mount], root: Option<&Path>) -> Result<PreparedMounts, String> {
        let mut prepared = PreparedMounts::default();
        for m in mounts {
            let target = cstring(&m.target)?;
            let step = match &m.kind {
                Kind::Bind(source) => {
                    if m.options.is_some() {
                        return Err(format!(
                            "bind mount at {}: options are not taken",
                            m.target.display()
                        ));
                    }
                    prepared.bind_step(m, cstring(source)?, target)
                }
                Kind::ReadOnly => MountStep {
                    source_is_target: true,
                    in_place: m.in_place,
                    ..prepared.bind_step(m, target.clone(), target)
                },
                Kind::Mask => MountStep {
                    mask: true,
                    ..prepared.bind_step(m, c"/dev/null".to_owned(), target)
                },
                Kind::Filesystem(fs) => prepared.filesystem_step(m, fs, fs, target)?,
                Kind::Other { fstype, source } => {
                    prepared.filesystem_step(m, fstype, source, target)?
                }
                Kind::Symlink(text) => MountStep {
                    symlink: true,
                    ..prepared.plain_step(m, cstring(text)?, target)
                },
            };
            // The root itself is no path inside it (a mount there is made as given).
            let inside = root
                .and_then(|r| m.target.strip_prefix(r).ok())
                .filter(|rest| !rest.as_os_str().is_empty());
            // Procfs and sysfs, and what masks or protects paths in them, are never reached
            // through a link of the image (runc's CVE-2019-19921 and CVE-2023-27561 class).
            let special = matches!(
                m.kind,
                Kind::Filesystem("proc" | "sysfs") | Kind::Mask | Kind::ReadOnly
            );
            let step = MountStep {
                if_exists: m.if_exists,
                no_links: special,
                ..step
            };
            let step = match inside {
                Some(inside) => {
                    let inside = inside.as_os_str().as_bytes().to_vec().into_boxed_slice();
                    let step = MountStep {
                        in_root: inside.as_ptr(),
                        in_root_len: inside.len(),
                        ..step
                    };
                    prepared.in_root.push(inside);
                    step
                }
                None => step,
            };
            prepared.steps.push(step);
        }
        Ok(prepared)
    }

    /// Keeps `s` alive with the steps and returns a pointer to it.
    fn keep(&mut self, s: CString) -> *const libc::c_char {
        let ptr = s.as_ptr();
        self.strings.push(s);
        ptr
    }

    /// A step from `source` to `target` with nothing else set: no type, flags, data,
    /// options or remount; not in the root (`prepare` fills that in).
    fn plain_step(&mut self, m: &Mount, source: CString, target: CString) -> MountStep {
        MountStep {
            source: self.keep(source),
            target: self.keep(target),
            fstype: std::ptr::null(),
            flags: 0,
            data: std::ptr::null(),
            remount: 0,
            create: m.create,
            options: std::ptr::null(),
            options_len: 0,
            attr: attr_of(m.flags),
            recursive: false,
            attr_recursive: false,
            in_place: false,
            in_root: std::ptr::null(),
            in_root_len: 0,
            source_is_target: false,
            mask: false,
            if_exists: false,
            no_links: false,
            symlink: false,
        }
    }

    /// A bind mount of `source` (for `Kind::ReadOnly`, the target itself) at `target`.
    fn bind_step(&mut self, m: &Mount, source: CString, target: CString) -> MountStep {
        let mut flags = libc::MS_BIND;
        if m.recursive {
            flags |= libc::MS_REC;
        }
        MountStep {
            flags,
            remount: m.flags,
            recursive: m.recursive,
            attr_recursive: m.recursive && !m.flags_top_only,
            ..self.plain_step(m, source, target)
        }
    }

    /// A new filesystem of type `fs`: its options both as one `mount(2)` data string and as
    /// (key, value) pairs for `fsconfig`.
    fn filesystem_step(
        &mut self,
        m: &Mount,
        fs: &str,
        source: &str,
        target: CString,
    ) -> Result<MountStep, String> {
        let name = CString::new(fs).map_err(|e| e.to_string())?;
        let source = CString::new(source).map_err(|e| e.to_string())?;
        let data = match &m.options {
            Some(o) => self.keep(
                CString::new(o.as_bytes())
                    .map_err(|_| format!("options {o:?} contain a NUL byte"))?,
            ),
            None => std::ptr::null(),
        };
        let fstype = self.keep(name.clone());
        // "a=b,c" as (a, b), (c, null) for fsconfig, after the source (which mount(2) takes
        // as an argument, and the mount table shows).
        let mut pairs = vec![(self.keep(c"source".to_owned()), self.keep(source.clone()))];
        for option in m.options.as_deref().unwrap_or("").split(',') {
            if option.is_empty() {
                continue;
            }
            let (key, value) = match option.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (option, None),
            };
            let c =
                |t: &str| CString::new(t).map_err(|_| format!("option {t:?} contains a NUL byte"));
            let key = self.keep(c(key)?);
            let value = match value {
                Some(v) => self.keep(c(v)?),
                None => std::ptr::null(),
            };
            pairs.push((key, value));
        }
        let pairs = pairs.into_boxed_slice();
        let (options, options_len) = (pairs.as_ptr(), pairs.len());
        self.option_lists.push(pairs);
        Ok(MountStep {
            fstype,
            flags: m.flags,
            data,
            options,
            options_len,
            ..self.plain_step(m, source, target)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod mountinfo_tests {
    use super::*;

    #[test]
    fn mountinfo_lines_give_their_fields_unescaped_whatever_the_optional_fields() {
        let info = b"22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n\
36 25 0:31 / /sys/fs/cgroup/cpu,cpuacct rw master:2 shared:9 - cgroup cgroup rw,cpu,cpuacct\n\
40 22 0:5 /sub /mnt/a\\040b\\134c rw - tmpfs none rw,size=4k\n\
truncated line\n";
        let t = parse_mountinfo(info);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].mount_point, Path::new("/proc"));
        assert_eq!(
            (t[0].fstype.as_str(), t[0].root.as_path()),
            ("proc", Path::new("/"))
        );
        assert_eq!(t[1].super_options, "rw,cpu,cpuacct");
        assert_eq!(t[1].fstype, "cgroup");
        assert_eq!(t[2].mount_point, Path::new("/mnt/a b\\c"));
        assert_eq!(t[2].root, Path::new("/sub"));
    }

    #[test]
    fn the_callers_mount_table_holds_its_root() {
        let t = mount_table().unwrap();
        assert!(t.iter().any(|m| m.mount_point == Path::new("/")));
    }
}
