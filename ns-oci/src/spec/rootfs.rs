//! `root`, `mounts`, `linux.devices` (and the devices every container gets),
//! `linux.maskedPaths`, `linux.readonlyPaths` and `linux.rootfsPropagation`.
//!
//! Every target is a path below the root, so the library resolves it inside the root, the way
//! the container would, never outside it; a bind's source is the caller's (the bundle's).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ns_container::{Mount, NsCommand, Propagation, RootMode};
use ns_core::NsType;

use super::config::{Config, Device, MountEntry};
use super::Options;
use crate::error::{Error, Result};

/// The devices of every container (runc's `AllowedDevices` that are nodes), bound from the
/// host's.
const DEFAULT_DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

pub(super) fn apply(
    c: &mut NsCommand,
    config: &Config,
    bundle: &Path,
    created: NsType,
    options: &Options,
) -> Result<PathBuf> {
    let root = config
        .root
        .as_ref()
        .ok_or_else(|| Error::new("config.json has no root"))?;
    let rootfs = bundle.join(&root.path);
    let rootfs = rootfs
        .canonicalize()
        .map_err(|e| Error::new(format!("rootfs {}: {e}", rootfs.display())))?;
    let linux = config.linux.clone().unwrap_or_default();
    // `/` is made a slave before the mounts (what the host mounts later still appears, what
    // the container mounts does not leave it); the container's root gets the propagation
    // asked for once it is the root.
    let own_mounts = created.contains(NsType::MNT);
    if own_mounts {
        c.propagation(Propagation::Slave);
    }
    let root_propagation = match linux.rootfs_propagation.as_str() {
        "" => None,
        "private" | "rprivate" => Some(Propagation::Private),
        "slave" | "rslave" => Some(Propagation::Slave),
        "shared" | "rshared" => Some(Propagation::Shared),
        "unbindable" | "runbindable" => Some(Propagation::Unbindable),
        other => return Err(Error::new(format!("rootfsPropagation {other:?}"))),
    };
    if let Some(p) = root_propagation {
        c.root_propagation(p);
    }
    // A gid option of devpts that the container's user namespace does not map fails the
    // mount (EOVERFLOW): left out, as runc leaves it out for rootless containers.
    let unmapped_gid = |gid: u32| {
        created.contains(NsType::USER)
            && !linux
                .gid_mappings
                .iter()
                .any(|m| gid >= m.container_id && gid - m.container_id < m.size)
    };
    let mut dev_is_mounted = false;
    let mut dev_read_only = false;
    for m in &config.mounts {
        let is_dev = m.destination.trim_end_matches('/') == "/dev";
        dev_is_mounted |= is_dev;
        let mut m = m.clone();
        // A read-only /dev is mounted writable and made read-only once its devices, links
        // and mounts are in (runc's order).
        if is_dev && m.options.iter().any(|o| o == "ro") {
            m.options.retain(|o| o != "ro");
            dev_read_only = true;
        }
        if m.kind.as_deref() == Some("devpts") {
            m.options.retain(|o| {
                !o.strip_prefix("gid=")
                    .and_then(|g| g.parse().ok())
                    .is_some_and(unmapped_gid)
            });
        }
        if matches!(m.kind.as_deref(), Some("cgroup" | "cgroup2")) {
            cgroup_mounts(c, &m, &rootfs, &options.cgroups)?;
            continue;
        }
        c.mount(mount(&m, bundle, &rootfs)?);
    }
    devices(c, &linux.devices, &rootfs, dev_is_mounted, options)?;
    if dev_read_only {
        c.mount(
            Mount::remount_read_only(rootfs.join("dev"))
                .recursive(false)
                .in_place(),
        );
    }
    for p in &linux.masked_paths {
        c.mount(Mount::mask(under(&rootfs, p)));
    }
    for p in &linux.readonly_paths {
        c.mount(Mount::remount_read_only(under(&rootfs, p)).if_exists());
    }
    // pivot_root in a shared mount namespace would move the root of every process of it.
    c.root(&rootfs)
        .root_mode(if options.no_pivot || !own_mounts {
            RootMode::Chroot
        } else {
            RootMode::PivotRoot
        });
    c.read_only_root(root.readonly);
    Ok(rootfs)
}

/// A `cgroup` mount: the container's own cgroups, never the host's tree. On a v1 (or hybrid)
/// host a tmpfs with the container's directory of each hierarchy bound at the hierarchy's
/// name (`memory`, `cpu`, `systemd`, `unified`), as runc makes it; on a v2 host the
/// container's directory itself. Read-only with `ro`, as runc has it.
fn cgroup_mounts(c: &mut NsCommand, m: &MountEntry, rootfs: &Path, dirs: &[PathBuf]) -> Result<()> {
    let target = under(rootfs, &m.destination);
    let writable = !m.options.iter().any(|o| o == "ro");
    let views = crate::cgroups::views(dirs);
    let protect = |mount: Mount| {
        let mount = mount.nosuid().nodev().noexec();
        if writable {
            mount
        } else {
            mount.read_only()
        }
    };
    match views.as_slice() {
        [(source, None)] => {
            c.mount(protect(Mount::bind(source, &target).recursive(false)).create_dir());
        }
        _ => {
            c.mount(
                Mount::tmpfs(&target)
                    .options("mode=755")
                    .nosuid()
                    .nodev()
                    .noexec()
                    .create_dir(),
            );
            for (source, name) in &views {
                let Some(name) = name else { continue };
                c.mount(
                    protect(Mount::bind(source, target.join(name)).recursive(false)).create_dir(),
                );
            }
            if !writable {
                // The tmpfs itself (the hierarchies are bound read-only already), where it is.
                c.mount(
                    Mount::remount_read_only(&target)
                        .recursive(false)
                        .in_place(),
                );
            }
        }
    }
    Ok(())
}

/// A container path as a path below the root.
fn under(rootfs: &Path, path: &str) -> PathBuf {
    rootfs.join(path.trim_start_matches('/'))
}

/// Mount flags of an OCI mount's options, and what is left for the filesystem.
struct Parsed {
    bind: bool,
    recursive: bool,
    read_only: Option<bool>,
    nosuid: bool,
    nodev: bool,
    noexec: bool,
    /// `rro`, `rnosuid`, `rnodev`, `rnoexec`: the flags reach every mount of an `rbind`
    /// (else only its top one, as `mount(2)` sets them).
    flags_recursive: bool,
    data: Vec<String>,
}

fn parse(options: &[String]) -> Parsed {
    let mut p = Parsed {
        bind: false,
        recursive: false,
        read_only: None,
        nosuid: false,
        nodev: false,
        noexec: false,
        flags_recursive: false,
        data: Vec::new(),
    };
    for o in options {
        match o.as_str() {
            "bind" => p.bind = true,
            "rbind" => {
                p.bind = true;
                p.recursive = true;
            }
            "ro" => p.read_only = Some(true),
            "rw" => p.read_only = Some(false),
            "nosuid" => p.nosuid = true,
            "suid" => p.nosuid = false,
            "nodev" => p.nodev = true,
            "dev" => p.nodev = false,
            "noexec" => p.noexec = true,
            "rro" => {
                p.read_only = Some(true);
                p.flags_recursive = true;
            }
            "rnosuid" => {
                p.nosuid = true;
                p.flags_recursive = true;
            }
            "rnodev" => {
                p.nodev = true;
                p.flags_recursive = true;
            }
            "rnoexec" => {
                p.noexec = true;
                p.flags_recursive = true;
            }
            "exec" => p.noexec = false,
            // Propagation and atime flags of a single mount, and options that only say
            // what the default is: taken as the defaults.
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" | "unbindable"
            | "runbindable" | "relatime" | "norelatime" | "strictatime" | "nostrictatime"
            | "noatime" | "atime" | "nodiratime" | "diratime" | "async" | "defaults"
            | "tmpcopyup" | "rrw" | "sync" | "dirsync" | "mand" | "nomand" | "loud" | "silent" => {}
            other => p.data.push(other.to_owned()),
        }
    }
    p
}

fn mount(m: &MountEntry, bundle: &Path, rootfs: &Path) -> Result<Mount> {
    if !m.destination.starts_with('/') {
        return Err(Error::new(format!(
            "mount destination {:?} is not an absolute path",
            m.destination
        )));
    }
    let target = under(rootfs, &m.destination);
    let p = parse(&m.options);
    let kind = m.kind.as_deref().unwrap_or("");
    let source = m.source.as_deref().unwrap_or("");
    // procfs and sysfs never go where the image put a link (the library refuses it too,
    // with ELOOP): said in runc's words.
    if matches!(kind, "proc" | "sysfs")
        && std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(Error::new(format!(
            "mount destination {} must be mounted on ordinary directory",
            m.destination
        )));
    }
    let mut mount = if p.bind || kind == "bind" {
        let source = if Path::new(source).is_absolute() {
            PathBuf::from(source)
        } else {
            bundle.join(source)
        };
        let is_dir = std::fs::metadata(&source)
            .map(|m| m.is_dir())
            .unwrap_or(true);
        let b = Mount::bind(&source, &target).recursive(p.recursive);
        if is_dir {
            b.create_dir()
        } else {
            b.create_file()
        }
    } else {
        let named = !source.is_empty() && source != kind;
        let fs = match kind {
            "proc" => Mount::proc(&target),
            "sysfs" => Mount::sysfs(&target).read_write(),
            "tmpfs" | "devpts" | "mqueue" if named => Mount::filesystem(kind, source, &target),
            "tmpfs" => Mount::tmpfs(&target),
            "devpts" => Mount::devpts(&target),
            "mqueue" => Mount::mqueue(&target),
            // The host's hierarchies, bound (read-only unless asked otherwise).
            "cgroup" | "cgroup2" => Mount::bind("/sys/fs/cgroup", &target).recursive(true),
            "" => {
                return Err(Error::new(format!(
                    "mount at {} has no type",
                    m.destination
                )))
            }
            other => Mount::filesystem(
                other,
                if source.is_empty() { other } else { source },
                &target,
            ),
        };
        let fs = if p.data.is_empty() || matches!(kind, "cgroup" | "cgroup2") {
            fs
        } else {
            fs.options(p.data.join(","))
        };
        fs.create_dir()
    };
    if p.read_only == Some(true) || (matches!(kind, "cgroup" | "cgroup2") && p.read_only.is_none())
    {
        mount = mount.read_only();
    }
    if p.nosuid {
        mount = mount.nosuid();
    }
    if p.nodev {
        mount = mount.nodev();
    }
    if p.noexec {
        mount = mount.noexec();
    }
    if p.bind && p.recursive && !p.flags_recursive {
        mount = mount.flags_on_top_only();
    }
    Ok(mount)
}

/// The default devices and `linux.devices`: each node made (or found) on the host and bound
/// onto a file in the container's `/dev`.
fn devices(
    c: &mut NsCommand,
    devices: &[Device],
    rootfs: &Path,
    dev_is_mounted: bool,
    options: &Options,
) -> Result<()> {
    let listed = |name: &str| {
        devices
            .iter()
            .any(|d| d.path.trim_start_matches("/dev/") == name)
    };
    if dev_is_mounted {
        for name in DEFAULT_DEVICES {
            if !listed(name) {
                c.mount(
                    Mount::bind(format!("/dev/{name}"), rootfs.join("dev").join(name))
                        .recursive(false)
                        .create_file(),
                );
            }
        }
        // runc's default links: the container's own pseudo-terminal multiplexer, and the
        // descriptors of the process that looks.
        for (link, to) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ] {
            c.mount(Mount::symlink(rootfs.join("dev").join(link), to));
        }
    }
    for (i, d) in devices.iter().enumerate() {
        if !d.path.starts_with("/dev/") {
            return Err(Error::new(format!(
                "device path {:?} is not under /dev",
                d.path
            )));
        }
        if dev_is_mounted && d.path == "/dev/ptmx" {
            // Redundant: /dev/ptmx is the link to the container's own multiplexer, which a
            // node of the host's (5:2 opens the devpts instance next to it) would only hide.
            continue;
        }
        let node = make_node(d, &options.dev_dir, i)?;
        c.mount(
            Mount::bind(node, under(rootfs, &d.path))
                .recursive(false)
                .create_file(),
        );
    }
    Ok(())
}

/// The node of `d` in `dir` (made with `mknod`, owned and moded as asked), or the host's
/// node at the same path where `mknod` is refused (without privilege).
fn make_node(d: &Device, dir: &Path, i: usize) -> Result<PathBuf> {
    let kind = match d.kind.as_str() {
        "c" | "u" => libc::S_IFCHR,
        "b" => libc::S_IFBLK,
        "p" => libc::S_IFIFO,
        other => return Err(Error::new(format!("device type {other:?} of {}", d.path))),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::new(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("dev{i}"));
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::new("NUL in path"))?;
    let mode = d.file_mode.unwrap_or(0o666) & 0o7777;
    let dev = libc::makedev(d.major as u32, d.minor as u32);
    // SAFETY: mknod/chmod/chown on a NUL-terminated path of our state directory.
    unsafe {
        libc::unlink(c.as_ptr());
        if libc::mknod(c.as_ptr(), kind | mode, dev) != 0 {
            let host = PathBuf::from(&d.path);
            if host.exists() {
                return Ok(host);
            }
            return Err(Error::new(format!(
                "making device {}: {}",
                d.path,
                std::io::Error::last_os_error()
            )));
        }
        libc::chmod(c.as_ptr(), mode);
        libc::chown(c.as_ptr(), d.uid.unwrap_or(0), d.gid.unwrap_or(0));
    }
    Ok(path)
}
