//! `linux.namespaces`, the id mappings, `hostname`, `domainname`, `linux.sysctl` and
//! `linux.timeOffsets`.

use ns_container::{Clock, NsCommand};
use ns_core::{Namespace, NsType};

use super::{ns_type, Config};
use crate::error::{Error, Result};

/// Refuses a kernel parameter that no namespace of the container's holds (it would be the
/// host's), as runc's validator does: ipc parameters need an ipc namespace, network ones a
/// network namespace, the names a uts namespace.
fn check_sysctl(key: &str, namespaces: NsType) -> Result<()> {
    let k = key.replace('/', ".");
    let ipc = matches!(
        k.as_str(),
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || k.starts_with("fs.mqueue.");
    let (needs, what) = if ipc {
        (NsType::IPC, "an ipc")
    } else if k.starts_with("net.") {
        (NsType::NET, "a network")
    } else if k == "kernel.hostname" || k == "kernel.domainname" {
        (NsType::UTS, "a uts")
    } else {
        return Err(Error::new(format!(
            "sysctl {key:?} is not in a separate kernel namespace"
        )));
    };
    if namespaces.contains(needs) {
        Ok(())
    } else {
        Err(Error::new(format!(
            "sysctl {key:?} is not allowed in the host's namespace: it needs {what} namespace"
        )))
    }
}

/// Sets the namespaces the container creates or joins; returns those it creates.
pub(super) fn apply(c: &mut NsCommand, config: &Config) -> Result<NsType> {
    let Some(linux) = &config.linux else {
        return Ok(NsType::empty());
    };
    let mut created = NsType::empty();
    let mut seen = NsType::empty();
    for ns in &linux.namespaces {
        let t = ns_type(&ns.kind)
            .ok_or_else(|| Error::new(format!("namespace type {:?} is not supported", ns.kind)))?;
        if seen.contains(t) {
            return Err(Error::new(format!(
                "duplicate namespace type {:?}",
                ns.kind
            )));
        }
        seen |= t;
        match ns.path.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => {
                let handle = Namespace::open(path, t).map_err(|e| {
                    Error::new(format!("joining the {} namespace at {path}: {e}", ns.kind))
                })?;
                c.enter_namespace(handle);
            }
            None => created |= t,
        }
    }
    // Without a mount namespace of its own (none named, or one joined by path) the
    // container's mounts and root are made in the one it shares, as the runtime spec asks
    // (it inherits or joins it); the root is then changed by chroot (see rootfs.rs).
    if !created.contains(NsType::MNT) {
        c.mounts_in_shared_namespace(true);
    }
    c.unshare(created);
    if created.contains(NsType::USER) {
        for m in &linux.uid_mappings {
            c.uid_map(m.container_id, m.host_id, m.size);
        }
        for m in &linux.gid_mappings {
            c.gid_map(m.container_id, m.host_id, m.size);
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // Without privilege the kernel takes a gid map only once setgroups is denied.
            c.setgroups_deny(true);
        }
    } else if !linux.uid_mappings.is_empty() || !linux.gid_mappings.is_empty() {
        return Err(Error::new(
            "uidMappings or gidMappings without a new user namespace",
        ));
    }
    // A UTS namespace of the container's, made or joined (runc sets the name in either).
    let private_uts = seen.contains(NsType::UTS);
    if let Some(h) = config.hostname.as_deref().filter(|h| !h.is_empty()) {
        if !private_uts {
            return Err(Error::new(
                "unable to set hostname without a private UTS namespace",
            ));
        }
        c.hostname(h);
    }
    if let Some(d) = config.domainname.as_deref().filter(|d| !d.is_empty()) {
        if !private_uts {
            return Err(Error::new(
                "unable to set domainname without a private UTS namespace",
            ));
        }
        c.sysctl("kernel.domainname", d);
    }
    for (key, value) in &linux.sysctl {
        check_sysctl(key, seen)?;
        c.sysctl(key, value);
    }
    for (clock, offset) in &linux.time_offsets {
        let clock = match clock.as_str() {
            "monotonic" => Clock::Monotonic,
            "boottime" => Clock::Boottime,
            other => return Err(Error::new(format!("time offset for clock {other:?}"))),
        };
        c.time_offset(clock, offset.secs, offset.nanosecs);
    }
    Ok(created)
}
