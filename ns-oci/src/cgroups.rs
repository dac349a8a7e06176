//! `linux.cgroupsPath` and `linux.resources`: the container's cgroup in every mounted
//! hierarchy (cgroup v1 controllers and the v2 unified tree, as hybrid hosts have both),
//! its limits, placing its init, freezing, and removing it.

use std::path::{Path, PathBuf};

use ns_container::NsCommand;

use crate::error::{Error, Result};
use crate::spec::config::Resources;

/// A mounted hierarchy: its mount point, and its controllers (empty for cgroup v2, whose
/// controllers are listed in `cgroup.controllers`).
#[derive(Debug, Clone)]
struct Hierarchy {
    mount: PathBuf,
    controllers: Vec<String>,
    v2: bool,
}

fn hierarchies() -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for m in ns_container::mount_table().unwrap_or_default() {
        match m.fstype.as_str() {
            "cgroup" => {
                let controllers: Vec<String> = m
                    .super_options
                    .split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro" | "nosuid" | "nodev" | "noexec" | "relatime")
                            && !o.starts_with("release_agent")
                            && *o != "clone_children"
                            && *o != "noprefix"
                            && *o != "xattr"
                    })
                    .map(str::to_owned)
                    .collect();
                out.push(Hierarchy {
                    mount: m.mount_point,
                    controllers,
                    v2: false,
                });
            }
            "cgroup2" => out.push(Hierarchy {
                mount: m.mount_point,
                controllers: Vec::new(),
                v2: true,
            }),
            _ => {}
        }
    }
    // One directory per hierarchy (a hierarchy mounted twice is used once).
    out.dedup_by(|a, b| a.controllers == b.controllers && a.v2 == b.v2);
    out
}

/// What a container's `cgroup` mount shows: its directories, each with the name it gets
/// under the mount (none for a v2 hierarchy mounted at the cgroup root, a pure v2 host).
pub fn views(dirs: &[PathBuf]) -> Vec<(PathBuf, Option<String>)> {
    let hs = hierarchies();
    let only_v2 = hs.iter().all(|h| h.v2);
    dirs.iter()
        .filter_map(|dir| {
            let h = hs.iter().find(|h| dir.starts_with(&h.mount))?;
            let name = h
                .mount
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|_| !only_v2);
            Some((dir.clone(), name))
        })
        .collect()
}

/// The container's relative path: `cgroupsPath` as given (absolute, or taken from the root
/// of every hierarchy), or the container's id.
pub fn relative(path: Option<&str>, id: &str) -> Result<PathBuf> {
    let p = path.filter(|p| !p.is_empty()).unwrap_or(id);
    if p.contains(':') {
        return Err(Error::new(format!(
            "cgroupsPath {p:?} is a systemd slice: --systemd-cgroup is not supported"
        )));
    }
    let rel = PathBuf::from(p.trim_start_matches('/'));
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(Error::new(format!(
            "cgroupsPath {p:?} climbs out of the hierarchy"
        )));
    }
    Ok(rel)
}

/// Makes the container's directory in every hierarchy and writes its limits; returns the
/// directories.
pub fn create(rel: &Path, resources: Option<&Resources>) -> Result<Vec<PathBuf>> {
    let hs = hierarchies();
    // `unified` names cgroup v2 files, which mean nothing where the controllers are v1.
    if resources.is_some_and(|r| !r.unified.is_empty()) && hs.iter().any(|h| !h.v2) {
        return Err(Error::new(
            "invalid configuration: linux.resources.unified needs cgroup v2 (this host's \
             controllers are cgroup v1)",
        ));
    }
    // A frozen cgroup would hold the container's init before it could report anything:
    // refused before anything is made (the directory is someone else's).
    for h in &hs {
        let dir = h.mount.join(rel);
        if frozen(std::slice::from_ref(&dir)) {
            return Err(Error::new(format!(
                "container's cgroup unexpectedly frozen: {}",
                dir.display()
            )));
        }
    }
    let mut dirs = Vec::new();
    // The directories this call makes, removed again if a later one fails.
    let mut made = Vec::new();
    let mut make = || -> Result<()> {
        for h in &hs {
            let dir = h.mount.join(rel);
            let existed = dir.exists();
            if let Err(e) = std::fs::create_dir_all(&dir) {
                // A hierarchy this process may not write to (rootless) is left alone.
                if e.kind() == std::io::ErrorKind::PermissionDenied
                    || e.raw_os_error() == Some(libc::EROFS)
                {
                    continue;
                }
                return Err(Error::new(format!(
                    "creating cgroup {}: {e}",
                    dir.display()
                )));
            }
            if !existed {
                made.push(dir.clone());
            }
            if h.controllers.iter().any(|c| c == "cpuset") {
                inherit_cpuset(&h.mount, rel)?;
            }
            if let Some(r) = resources {
                write_resources(h, &dir, r)?;
            }
            dirs.push(dir);
        }
        Ok(())
    };
    if let Err(e) = make() {
        remove(&made);
        return Err(e);
    }
    let others = dirs
        .iter()
        .map(|d| std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default())
        .find(|procs| !procs.trim().is_empty())
        .map_or(0, |procs| procs.lines().count());
    if others > 0 {
        // Allowed (runc warns too): the processes already there share its limits.
        eprintln!("warning: container's cgroup is not empty: {others} process(es) found");
    }
    Ok(dirs)
}

/// A new v1 cpuset starts with no cpus and no memory nodes: each level takes its parent's.
fn inherit_cpuset(mount: &Path, rel: &Path) -> Result<()> {
    let mut dir = mount.to_path_buf();
    for part in rel.components() {
        let parent = dir.clone();
        dir.push(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let current = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            if current.trim().is_empty() {
                let from = std::fs::read_to_string(parent.join(file)).unwrap_or_default();
                write(&dir, file, from.trim())?;
            }
        }
    }
    Ok(())
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    std::fs::write(dir.join(file), value).map_err(|e| {
        Error::new(format!(
            "writing {} to {}: {e}",
            value,
            dir.join(file).display()
        ))
    })
}

fn has(h: &Hierarchy, controller: &str) -> bool {
    h.controllers.iter().any(|c| c == controller)
}

fn write_resources(h: &Hierarchy, dir: &Path, r: &Resources) -> Result<()> {
    if h.v2 {
        let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let v2 = |c: &str| available.split_whitespace().any(|a| a == c);
        if v2("hugetlb") {
            for l in &r.hugepage_limits {
                write(
                    dir,
                    &format!("hugetlb.{}.max", l.page_size),
                    &l.limit.to_string(),
                )?;
            }
        }
        if v2("memory") {
            if let Some(m) = &r.memory {
                if let Some(l) = m.limit {
                    write(dir, "memory.max", &max_or(l))?;
                }
            }
        }
        if v2("pids") {
            if let Some(p) = &r.pids {
                write(dir, "pids.max", &max_or(p.limit))?;
            }
        }
        for (k, v) in &r.unified {
            write(dir, k, v)?;
        }
        return Ok(());
    }
    if has(h, "memory") {
        if let Some(m) = &r.memory {
            // No memory limit means no memory+swap limit either (runc's rule): a limited
            // memsw would refuse an unlimited memory.
            let swap = match (m.limit, m.swap) {
                (Some(-1), None) if dir.join("memory.memsw.limit_in_bytes").exists() => Some(-1),
                (_, s) => s,
            };
            match (m.limit, swap) {
                // Memory and memory+swap: the kernel keeps limit <= memsw at every step, so
                // the order depends on which way they move.
                (Some(l), Some(s)) => {
                    let first = write(dir, "memory.limit_in_bytes", &l.to_string());
                    write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
                    if first.is_err() {
                        write(dir, "memory.limit_in_bytes", &l.to_string())?;
                    }
                }
                (Some(l), None) => write(dir, "memory.limit_in_bytes", &l.to_string())?,
                (None, Some(s)) => write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?,
                (None, None) => {}
            }
            if let Some(v) = m.reservation {
                write(dir, "memory.soft_limit_in_bytes", &v.to_string())?;
            }
            if let Some(v) = m.kernel {
                // Deprecated, and refused by newer kernels: best effort, as runc does.
                let _ = write(dir, "memory.kmem.limit_in_bytes", &v.to_string());
            }
            if let Some(v) = m.kernel_tcp {
                let _ = write(dir, "memory.kmem.tcp.limit_in_bytes", &v.to_string());
            }
            if let Some(v) = m.swappiness {
                write(dir, "memory.swappiness", &v.to_string())?;
            }
            if m.disable_oom_killer == Some(true) {
                write(dir, "memory.oom_control", "1")?;
            }
        }
    }
    if let Some(c) = &r.cpu {
        if has(h, "cpu") {
            if let Some(v) = c.shares {
                write(dir, "cpu.shares", &v.to_string())?;
            }
            // A period shorter than the current one may be refused (EINVAL) while the old
            // quota over it would exceed the parent's limit: written again after the quota.
            let mut period_again = None;
            if let Some(v) = c.period {
                if let Err(e) = write(dir, "cpu.cfs_period_us", &v.to_string()) {
                    if c.quota.is_none() {
                        return Err(e);
                    }
                    period_again = Some(v);
                }
            }
            if let Some(v) = c.quota {
                write(dir, "cpu.cfs_quota_us", &v.to_string())?;
            }
            if let Some(v) = period_again {
                write(dir, "cpu.cfs_period_us", &v.to_string())?;
            }
            if let Some(v) = c.realtime_period {
                write(dir, "cpu.rt_period_us", &v.to_string())?;
            }
            if let Some(v) = c.realtime_runtime {
                write(dir, "cpu.rt_runtime_us", &v.to_string())?;
            }
        }
        if has(h, "cpuset") {
            if let Some(v) = c.cpus.as_deref().filter(|v| !v.is_empty()) {
                write(dir, "cpuset.cpus", v)?;
            }
            if let Some(v) = c.mems.as_deref().filter(|v| !v.is_empty()) {
                write(dir, "cpuset.mems", v)?;
            }
        }
    }
    if has(h, "pids") {
        if let Some(p) = &r.pids {
            write(dir, "pids.max", &max_or(p.limit))?;
        }
    }
    if has(h, "hugetlb") {
        for l in &r.hugepage_limits {
            write(
                dir,
                &format!("hugetlb.{}.limit_in_bytes", l.page_size),
                &l.limit.to_string(),
            )?;
        }
    }
    if has(h, "devices") {
        // One rule per write, each file opened once.
        let mut files: [Option<std::fs::File>; 2] = [None, None];
        let mut rule_write = |allow: bool, line: &str| -> Result<()> {
            use std::io::Write;
            let name = if allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            let slot = &mut files[usize::from(allow)];
            let fail = |e: std::io::Error| {
                Error::new(format!(
                    "writing {line} to {}: {e}",
                    dir.join(name).display()
                ))
            };
            if slot.is_none() {
                *slot = Some(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(dir.join(name))
                        .map_err(fail)?,
                );
            }
            match slot {
                Some(f) => f.write_all(line.as_bytes()).map_err(fail),
                None => Ok(()),
            }
        };
        for rule in &r.devices {
            let kind = rule.kind.as_deref().unwrap_or("a");
            let num = |n: Option<i64>| {
                n.filter(|n| *n >= 0)
                    .map(|n| n.to_string())
                    .unwrap_or("*".into())
            };
            let access = rule.access.as_deref().unwrap_or("rwm");
            let line = if kind == "a" {
                "a".to_owned()
            } else {
                format!("{kind} {}:{} {access}", num(rule.major), num(rule.minor))
            };
            rule_write(rule.allow, &line)?;
        }
        // The devices every container gets (runc's list), whatever the rules deny.
        if !r.devices.is_empty() {
            for line in DEFAULT_ALLOWED {
                rule_write(true, line)?;
            }
        }
    }
    if has(h, "blkio") {
        if let Some(b) = &r.block_io {
            if let Some(w) = b.get("weight").and_then(|w| w.as_u64()) {
                write(dir, "blkio.weight", &w.to_string())?;
            }
            if let Some(w) = b.get("leafWeight").and_then(|w| w.as_u64()) {
                write(dir, "blkio.leaf_weight", &w.to_string())?;
            }
            for (key, file) in [
                ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                (
                    "throttleWriteIOPSDevice",
                    "blkio.throttle.write_iops_device",
                ),
            ] {
                for d in b.get(key).and_then(|v| v.as_array()).into_iter().flatten() {
                    let (maj, min, rate) = (
                        d.get("major").and_then(|v| v.as_i64()).unwrap_or(0),
                        d.get("minor").and_then(|v| v.as_i64()).unwrap_or(0),
                        d.get("rate").and_then(|v| v.as_u64()).unwrap_or(0),
                    );
                    write(dir, file, &format!("{maj}:{min} {rate}"))?;
                }
            }
            for d in b
                .get("weightDevice")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                let (maj, min) = (
                    d.get("major").and_then(|v| v.as_i64()).unwrap_or(0),
                    d.get("minor").and_then(|v| v.as_i64()).unwrap_or(0),
                );
                if let Some(w) = d.get("weight").and_then(|v| v.as_u64()) {
                    write(dir, "blkio.weight_device", &format!("{maj}:{min} {w}"))?;
                }
                if let Some(w) = d.get("leafWeight").and_then(|v| v.as_u64()) {
                    write(dir, "blkio.leaf_weight_device", &format!("{maj}:{min} {w}"))?;
                }
            }
        }
    }
    if let Some(n) = &r.network {
        if has(h, "net_cls") {
            if let Some(id) = n.get("classID").and_then(|v| v.as_u64()) {
                write(dir, "net_cls.classid", &id.to_string())?;
            }
        }
        if has(h, "net_prio") {
            for p in n
                .get("priorities")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                let (name, prio) = (
                    p.get("name").and_then(|v| v.as_str()).unwrap_or(""),
                    p.get("priority").and_then(|v| v.as_u64()).unwrap_or(0),
                );
                write(dir, "net_prio.ifpriomap", &format!("{name} {prio}"))?;
            }
        }
    }
    Ok(())
}

/// runc's `AllowedDevices`: mknod of anything, the null, zero, full, tty, random and urandom
/// nodes, the container's pseudo-terminals and `/dev/ptmx`, and `/dev/net/tun`.
const DEFAULT_ALLOWED: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 136:* rwm",
    "c 5:2 rwm",
    "c 10:200 rwm",
];

fn max_or(v: i64) -> String {
    if v <= 0 {
        "max".to_owned()
    } else {
        v.to_string()
    }
}

/// New limits for the container's directories (`update`).
pub fn update(dirs: &[PathBuf], r: &Resources) -> Result<()> {
    let hs = hierarchies();
    for dir in dirs {
        if let Some(h) = hs.iter().find(|h| dir.starts_with(&h.mount)) {
            write_resources(h, dir, r)?;
        }
    }
    Ok(())
}

/// Starts the command's process in every directory: created in the v2 one
/// (`CLONE_INTO_CGROUP`), joining the v1 ones itself, before its cgroup namespace is made
/// (rooted there). Neither takes the kernel's global lock that a PID written to
/// `cgroup.procs` takes, and waits an RCU grace period for (5 to 15 ms a container).
pub fn place(command: &mut NsCommand, dirs: &[PathBuf]) {
    let hs = hierarchies();
    for dir in dirs {
        match hs.iter().find(|h| dir.starts_with(&h.mount)) {
            Some(h) if h.v2 => command.cgroup(dir),
            _ => command.cgroup_v1(dir),
        };
    }
}

/// `exec --cgroup [CONTROLLER[,CONTROLLER]:]PATH`: the container's directories with a
/// sub-cgroup of theirs in place of some (every one when no controller is named).
pub fn sub_cgroups(dirs: &[PathBuf], specs: &[String]) -> Result<Vec<PathBuf>> {
    let hs = hierarchies();
    let mut out = dirs.to_vec();
    for spec in specs {
        let (controllers, path) = match spec.split_once(':') {
            Some((c, p)) => (c.split(',').map(str::to_owned).collect::<Vec<_>>(), p),
            None => (Vec::new(), spec.as_str()),
        };
        let rel = Path::new(path.trim_start_matches('/'));
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::new(format!(
                "invalid --cgroup argument: {path} is not a sub cgroup path"
            )));
        }
        let mut matched = false;
        for (i, dir) in dirs.iter().enumerate() {
            let h = hs.iter().find(|h| dir.starts_with(&h.mount));
            let named = controllers.is_empty()
                || h.is_some_and(|h| controllers.iter().any(|c| h.controllers.contains(c)));
            if named {
                matched = true;
                let sub = dir.join(rel);
                if !sub.is_dir() {
                    return Err(Error::new(format!(
                        "exec: adding pid to cgroup {}: no such file or directory",
                        sub.join("cgroup.procs").display()
                    )));
                }
                out[i] = sub;
            }
        }
        if !matched {
            return Err(Error::new(format!(
                "invalid --cgroup argument: unknown controller {}",
                controllers.join(",")
            )));
        }
    }
    Ok(out)
}

/// Every process in the container's cgroup and its sub-cgroups (the first hierarchy that
/// lists any).
pub fn pids(dirs: &[PathBuf]) -> Vec<i32> {
    for dir in dirs {
        let mut pids = Vec::new();
        subtree_pids(dir, &mut pids);
        if !pids.is_empty() {
            return pids;
        }
    }
    Vec::new()
}

/// The processes of `dir` and of the sub-cgroups below it.
fn subtree_pids(dir: &Path, out: &mut Vec<i32>) {
    let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                subtree_pids(&e.path(), out);
            }
        }
    }
}

fn freezer(dirs: &[PathBuf]) -> Option<(PathBuf, bool)> {
    dirs.iter().find_map(|d| {
        if d.join("freezer.state").exists() {
            Some((d.join("freezer.state"), false))
        } else if d.join("cgroup.freeze").exists() {
            Some((d.join("cgroup.freeze"), true))
        } else {
            None
        }
    })
}

/// Freezes or thaws the container.
pub fn freeze(dirs: &[PathBuf], frozen: bool) -> Result<()> {
    let (file, v2) =
        freezer(dirs).ok_or_else(|| Error::new("the container has no freezer cgroup"))?;
    let value = match (v2, frozen) {
        (true, true) => "1",
        (true, false) => "0",
        (false, true) => "FROZEN",
        (false, false) => "THAWED",
    };
    std::fs::write(&file, value).map_err(|e| Error::new(format!("{}: {e}", file.display())))?;
    if frozen && !v2 {
        // v1 freezes asynchronously: wait until the state says so.
        for _ in 0..1000 {
            if std::fs::read_to_string(&file).unwrap_or_default().trim() == "FROZEN" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    Ok(())
}

/// Whether the container is frozen.
pub fn frozen(dirs: &[PathBuf]) -> bool {
    match freezer(dirs) {
        Some((file, false)) => std::fs::read_to_string(file)
            .map(|s| s.trim() == "FROZEN")
            .unwrap_or(false),
        Some((file, true)) => std::fs::read_to_string(file)
            .map(|s| s.trim() == "1")
            .unwrap_or(false),
        None => false,
    }
}

/// Removes the directories (once empty), the sub-cgroups a container made first.
pub fn remove(dirs: &[PathBuf]) {
    for dir in dirs {
        let subs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        remove(&subs);
        // A cgroup whose last task just exited is busy for a moment.
        for _ in 0..2500 {
            if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
}
