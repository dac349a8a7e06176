//! `process`: the program, its environment and directory, its user, capabilities, limits,
//! `noNewPrivileges`, OOM score and umask.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::str::FromStr;

use ns_container::NsCommand;
use ns_core::caps::{CapSet, Capability};

use super::config::{Capabilities, Process};
use crate::error::{Error, Result};

pub(super) fn apply(c: &mut NsCommand, p: &Process, rootfs: &Path) -> Result<()> {
    if p.apparmor_profile.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::new(
            "apparmor profile requested but AppArmor is not enabled on this host",
        ));
    }
    if p.selinux_label.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::new(
            "selinux label requested but SELinux is not enabled on this host",
        ));
    }
    c.args(p.args.iter().skip(1));
    c.arg0(&p.args[0]);
    c.env_clear();
    let mut has_home = false;
    for kv in &p.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        has_home |= k == "HOME";
        c.env(k, v);
    }
    if !has_home {
        c.env(
            "HOME",
            home_of(rootfs, p.user.uid).unwrap_or_else(|| "/".to_owned()),
        );
    }
    let cwd = if p.cwd.is_empty() { "/" } else { &p.cwd };
    if !cwd.starts_with('/') {
        return Err(Error::new(format!(
            "process.cwd {cwd:?} is not an absolute path"
        )));
    }
    // runc's order: the directory is tried with the runtime's privileges first, then with
    // the process's own.
    c.current_dir(cwd).chdir_before_credentials(true);
    c.uid(p.user.uid).gid(p.user.gid);
    // A runtime without privilege maps its ids with setgroups denied: the kernel refuses
    // any setgroups, so no groups asked means none set (runc's rule); root sets the list,
    // empty or not.
    // SAFETY: geteuid has no preconditions.
    if !p.user.additional_gids.is_empty() || unsafe { libc::geteuid() } == 0 {
        c.groups(&p.user.additional_gids);
    }
    if let Some(mask) = p.user.umask {
        c.umask(mask as libc::mode_t);
    }
    if let Some(caps) = &p.capabilities {
        capabilities(c, caps)?;
    }
    for r in &p.rlimits {
        c.rlimit(rlimit(&r.kind)?, r.soft, r.hard);
    }
    c.no_new_privs(p.no_new_privileges);
    if let Some(score) = p.oom_score_adj {
        c.oom_score_adj(score);
    }
    Ok(())
}

/// The five sets; a set the configuration leaves out stays as the kernel leaves it, except
/// inheritable and ambient, which the library empties once any set is named.
fn capabilities(c: &mut NsCommand, caps: &Capabilities) -> Result<()> {
    // runc ignores capabilities this kernel (or its tables) do not know.
    let parse = |names: &Option<Vec<String>>| -> Option<Vec<Capability>> {
        names.as_ref().map(|n| {
            n.iter()
                .filter_map(|name| Capability::from_str(name).ok())
                .collect()
        })
    };
    let inheritable = parse(&caps.inheritable);
    let permitted = parse(&caps.permitted);
    for (set, list) in [
        (CapSet::Bounding, parse(&caps.bounding)),
        (CapSet::Effective, parse(&caps.effective)),
        (CapSet::Permitted, permitted.clone()),
        (CapSet::Inheritable, inheritable.clone()),
    ] {
        if let Some(list) = list {
            c.capabilities(set, list);
        }
    }
    // The kernel raises an ambient capability only when it is permitted and inheritable;
    // runc skips (with a warning) those that are not, and so does this.
    if let Some(ambient) = parse(&caps.ambient) {
        let raisable: Vec<Capability> = ambient
            .into_iter()
            .filter(|cap| {
                inheritable.as_ref().is_some_and(|i| i.contains(cap))
                    && permitted.as_ref().is_none_or(|p| p.contains(cap))
            })
            .collect();
        c.capabilities(CapSet::Ambient, raisable);
    }
    Ok(())
}

fn rlimit(name: &str) -> Result<libc::c_int> {
    Ok(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        other => return Err(Error::new(format!("unknown rlimit type {other:?}"))),
    } as libc::c_int)
}

/// The home directory of `uid` in the image's `/etc/passwd`, read inside the root (a link
/// in the image never reaches a file of the host).
fn home_of(rootfs: &Path, uid: u32) -> Option<String> {
    let root: OwnedFd = std::fs::File::open(rootfs).ok()?.into();
    let fd = ns_sys::path::openat2(
        root.as_fd(),
        c"etc/passwd",
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
        ns_sys::path::RESOLVE_IN_ROOT | ns_sys::path::RESOLVE_NO_MAGICLINKS,
    )
    .ok()?;
    let text = std::io::read_to_string(std::fs::File::from(fd)).ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_owned())
    })
}
