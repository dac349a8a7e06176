//! Privileged behaviour of clone and NsCommand, run for real by `cargo xtask test-root`.

mod common;
#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;

use common::{assert_not_found, cmd, dies_with_parent, fd_count, sh, stdout_of};
use ns_container::{
    clone, clone_in, CgroupPlacement, Clock, Error, NsCommand, Process, Stdio, Step,
};
use ns_core::{getns, EntryStrategy, Namespace, NsType, Target};
use support::*;

/// PIDs whose parent is this process (zombies included).
fn children() -> Vec<libc::pid_t> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
        if ppid == me {
            out.push(pid);
        }
    }
    out
}

/// Runs `f` in a forked child and checks that it leaves no descriptor and no child behind.
fn leaves_nothing_behind(f: impl FnOnce() + Send) {
    in_child(move || {
        let fds = fd_count();
        f();
        let after = fd_count();
        if after != fds {
            return Err(format!("descriptors: {fds} before, {after} after"));
        }
        let kids = children();
        if !kids.is_empty() {
            return Err(format!("processes left behind: {kids:?}"));
        }
        Ok(())
    })
    .unwrap();
}

fn nspid(pid: libc::pid_t) -> Vec<libc::pid_t> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// A pipe the child blocks on until the parent writes or closes it.
struct Gate {
    r: OwnedFd,
    w: Option<OwnedFd>,
}

impl Gate {
    fn new() -> Gate {
        let (r, w) = pipe();
        Gate { r, w: Some(w) }
    }
    /// For the child: blocks until released.
    fn wait_raw(fd: i32) {
        let mut b = 0u8;
        // SAFETY: reading one byte into a live buffer.
        unsafe { libc::read(fd, &mut b as *mut u8 as *mut _, 1) };
    }
    fn release(&mut self) {
        if let Some(w) = self.w.take() {
            let _ = std::fs::File::from(w).write_all(b"x");
        }
    }
}

// ---- Mesos's scenarios -------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn child_in_new_namespaces_can_setns_back_to_the_originals() {
    require_root();
    let types = [NsType::NET, NsType::UTS, NsType::IPC, NsType::CGROUP];
    let originals: Vec<(NsType, Namespace, u64)> = types
        .iter()
        .map(|t| {
            let ns = Namespace::current(*t).unwrap();
            let ino = ns.id().unwrap().ino();
            (*t, ns, ino)
        })
        .collect();
    let raw: Vec<(i32, i32, u64, &'static str)> = originals
        .iter()
        .map(|(t, ns, ino)| (ns.as_raw_fd(), t.bits(), *ino, t.name().unwrap()))
        .collect();
    let setns_back = move || {
        for (fd, nstype, ino, name) in &raw {
            let mut path = *b"/proc/self/ns/\0\0\0\0\0\0\0\0";
            path[14..14 + name.len()].copy_from_slice(name.as_bytes());
            let inode = || {
                // SAFETY: stat into a zeroed structure, on a NUL-terminated path.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                let r = unsafe { libc::stat(path.as_ptr() as *const _, &mut st) };
                (r == 0).then_some(st.st_ino)
            };
            // In a new namespace first...
            if inode() == Some(*ino) {
                return 1;
            }
            // ...then back in the original one.
            // SAFETY: setns on a descriptor the caller keeps open.
            if unsafe { libc::setns(*fd, *nstype) } != 0 {
                return 2;
            }
            if inode() != Some(*ino) {
                return 3;
            }
        }
        0
    };
    // SAFETY: the closure makes only async-signal-safe calls (setns, stat) on captured data.
    let mut child = unsafe {
        clone(
            0,
            NsType::empty(),
            setns_back,
            NsType::NET | NsType::UTS | NsType::IPC | NsType::CGROUP,
        )
    }
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn getns_differs_for_a_clone_in_new_namespaces() {
    require_root();
    let gate = Gate::new();
    let r = gate.r.as_raw_fd();
    let flags = NsType::NET
        | NsType::UTS
        | NsType::IPC
        | NsType::PID
        | NsType::MNT
        | NsType::CGROUP
        | NsType::USER;
    // SAFETY: the closure only blocks on a read.
    let mut child = unsafe {
        clone(
            0,
            NsType::empty(),
            move || {
                Gate::wait_raw(r);
                0
            },
            flags,
        )
    }
    .unwrap();
    let me = std::process::id() as libc::pid_t;
    for t in flags.iter() {
        assert_ne!(getns(child.pid(), t).unwrap(), getns(me, t).unwrap(), "{t}");
    }
    assert_eq!(
        getns(child.pid(), NsType::TIME).unwrap(),
        getns(me, NsType::TIME).unwrap()
    );
    let mut gate = gate;
    gate.release();
    assert!(child.wait().unwrap().success());
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn clone_pid_is_right_in_the_callers_pid_namespace_and_in_the_targets_namespaces() {
    require_root();
    let helper = Helper::spawn(
        NsType::PID | NsType::NET | NsType::UTS | NsType::MNT,
        Some("clone-target"),
    );
    for (flags, levels) in [(NsType::empty(), 2), (NsType::PID | NsType::UTS, 3)] {
        let mut gate = Gate::new();
        let r = gate.r.as_raw_fd();
        // SAFETY: the closure only blocks on a read.
        let mut child = unsafe {
            clone(
                helper.pid,
                NsType::PID | NsType::NET | NsType::UTS | NsType::MNT,
                move || {
                    Gate::wait_raw(r);
                    5
                },
                flags,
            )
        }
        .unwrap();
        let pids = nspid(child.pid());
        assert_eq!(pids[0], child.pid(), "NSpid {pids:?}");
        assert_eq!(pids.len(), levels, "NSpid {pids:?}");
        assert_eq!(
            getns(child.pid(), NsType::NET).unwrap(),
            Some(helper.id(NsType::NET))
        );
        assert_eq!(
            getns(child.pid(), NsType::MNT).unwrap(),
            Some(helper.id(NsType::MNT))
        );
        if flags.is_empty() {
            assert_eq!(
                getns(child.pid(), NsType::PID).unwrap(),
                Some(helper.id(NsType::PID))
            );
            assert_eq!(
                getns(child.pid(), NsType::UTS).unwrap(),
                Some(helper.id(NsType::UTS))
            );
        } else {
            // A new pid namespace nested in the target's.
            let pidns = Namespace::of_pid(child.pid(), NsType::PID).unwrap();
            assert_eq!(
                pidns.parent().unwrap().unwrap().id().unwrap(),
                helper.id(NsType::PID)
            );
            assert_eq!(*pids.last().unwrap(), 1);
            assert_ne!(
                getns(child.pid(), NsType::UTS).unwrap(),
                Some(helper.id(NsType::UTS))
            );
        }
        gate.release();
        assert_eq!(child.wait().unwrap().code(), Some(5));
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn closure_return_value_is_the_exit_status_and_a_panic_is_101() {
    require_root();
    let helper = Helper::spawn(NsType::NET, None);
    let target = Target::pin(helper.pid, NsType::NET).unwrap();
    // SAFETY: the closures return at once.
    let mut a = unsafe { clone_in(Some(&target), NsType::NET, || 42, NsType::empty()) }.unwrap();
    assert_eq!(a.wait().unwrap().code(), Some(42));
    // A panic allocates and takes locks, which another thread of the harness may hold at the
    // moment of the clone (`clone`'s contract): the caller is a single-threaded fork.
    in_child(|| {
        // SAFETY: as above; the panic is caught in the child.
        let mut b = unsafe {
            clone_in(
                None,
                NsType::empty(),
                || panic!("in the child"),
                NsType::UTS,
            )
        }
        .map_err(|e| e.to_string())?;
        match b.wait().map_err(|e| e.to_string())?.code() {
            Some(101) => Ok(()),
            other => Err(format!("exit status {other:?}, not 101")),
        }
    })
    .unwrap();
}

// ---- User namespaces, maps, time, cgroups ------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn unprivileged_caller_enters_its_rootless_container() {
    require_root();
    in_child(|| {
        // SAFETY: dropping to an unprivileged user in a single-threaded child. Changing uid
        // makes the process non-dumpable (its /proc files root's); an ordinary unprivileged
        // program is dumpable, so make this one so again.
        if unsafe { libc::setgid(1000) } != 0
            || unsafe { libc::setuid(1000) } != 0
            || unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) } != 0
        {
            return Err("setuid".into());
        }
        let types =
            NsType::USER | NsType::UTS | NsType::NET | NsType::MNT | NsType::PID | NsType::IPC;
        let mut container = cmd("sleep", &["100"])
            .unshare(types)
            .uid_map(0, 1000, 1)
            .gid_map(0, 1000, 1)
            .setgroups_deny(true)
            .hostname("rootless")
            .spawn()
            .map_err(|e| e.to_string())?;
        let target = Target::pin(container.pid(), types).map_err(|e| e.to_string())?;
        let out = sh("hostname; id -u; id -g; cat /proc/self/uid_map")
            .enter(&target, types)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let words: Vec<&str> = text.split_whitespace().collect();
        let ok = out.status.success() && words == ["rootless", "0", "0", "0", "1000", "1"];
        // The closure form too: a rootless clone into the container. Its memory is a copy
        // of ours and not dumpable (so the container cannot read it): it checks its own user
        // namespace and says so in its exit status.
        let want = getns(container.pid(), NsType::USER)
            .ok()
            .flatten()
            .map(|id| id.ino())
            .unwrap_or(0);
        // SAFETY: the closure only makes a stat system call on a static path.
        let mut child = unsafe {
            clone_in(
                Some(&target),
                types,
                move || {
                    let mut st: libc::stat = std::mem::zeroed();
                    let found = libc::stat(c"/proc/self/ns/user".as_ptr(), &mut st) == 0;
                    i32::from(!(found && st.st_ino == want))
                },
                NsType::empty(),
            )
        }
        .map_err(|e| e.to_string())?;
        let in_user = child.wait().map(|s| s.success()).unwrap_or(false);
        let _ = container.kill();
        let _ = container.wait();
        if !ok {
            return Err(format!("inside the container: {text:?} {:?}", out.status));
        }
        in_user
            .then_some(())
            .ok_or_else(|| "clone did not enter the user namespace".to_owned())
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn id_maps_and_setgroups_are_visible_in_the_child() {
    require_root();
    let text = stdout_of(
        sh("cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -u")
            .unshare(NsType::USER)
            .uid_map(0, 100000, 65536)
            .uid_map(65536, 0, 1)
            .gid_map(0, 200000, 1000)
            .setgroups_deny(true)
            .uid(0)
            .gid(0),
    );
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "100000", "65536", "65536", "0", "1", "0", "200000", "1000", "deny", "0"],
        "{text}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn time_offsets_are_visible_in_the_child() {
    require_root();
    let host_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let text = stdout_of(
        sh("cat /proc/self/timens_offsets; cat /proc/uptime")
            .unshare(NsType::TIME)
            .time_offset(Clock::Monotonic, 86400, 0)
            .time_offset(Clock::Boottime, 172800, 500_000_000),
    );
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        &words[..6],
        ["monotonic", "86400", "0", "boottime", "172800", "500000000"],
        "{text}"
    );
    let uptime: f64 = words[6].parse().unwrap();
    assert!(
        uptime >= host_uptime + 172800.0 && uptime < host_uptime + 172800.0 + 60.0,
        "{uptime} vs {host_uptime}"
    );
    // Without offsets the child is in a new time namespace that reads like the host's.
    let me = std::process::id() as libc::pid_t;
    let mut gate = Gate::new();
    let r = gate.r.as_raw_fd();
    // SAFETY: the closure only blocks on a read.
    let mut child = unsafe {
        clone(
            0,
            NsType::empty(),
            move || {
                Gate::wait_raw(r);
                0
            },
            NsType::TIME,
        )
    }
    .unwrap();
    assert_ne!(
        getns(child.pid(), NsType::TIME).unwrap(),
        getns(me, NsType::TIME).unwrap()
    );
    gate.release();
    child.wait().unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn child_starts_in_the_requested_cgroup_both_ways() {
    require_root();
    let root = cgroup2_root();
    // The cgroup path as the child will see it relative to its cgroup namespace root (ours).
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_owned();
    for placement in [CgroupPlacement::CloneInto, CgroupPlacement::ProcsFile] {
        let name = format!("ns-test-{}-{:?}", std::process::id(), placement);
        let dir = root.join(own.trim_start_matches('/')).join(&name);
        std::fs::create_dir(&dir).unwrap();
        let text = stdout_of(
            cmd("cat", &["/proc/self/cgroup"])
                .cgroup(&dir)
                .cgroup_placement(placement),
        );
        std::fs::remove_dir(&dir).unwrap();
        let line = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        assert!(line.ends_with(&format!("/{name}")), "{placement:?}: {text}");
    }
}

/// A cgroup v1 hierarchy: the `pids` controller's where it is mounted (hybrid and v1
/// hosts), else a named one of ours (no controllers: mountable next to anything; the kernel
/// keeps a hierarchy once made, so its name is fixed and a second mount reuses it).
struct V1Hierarchy {
    /// Where our own cgroup of the hierarchy is.
    own: std::path::PathBuf,
    /// Its name in `/proc/PID/cgroup`.
    key: String,
    _mount: Option<tempfile::TempDir>,
}

impl V1Hierarchy {
    fn new() -> V1Hierarchy {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let pids = info.lines().find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let opts = right.strip_prefix("cgroup ")?.split(' ').nth(1)?;
            opts.split(',')
                .any(|o| o == "pids")
                .then(|| left.split(' ').nth(4).unwrap().to_owned())
        });
        let (mount, key, guard) = match pids {
            Some(m) => (std::path::PathBuf::from(m), "pids".to_owned(), None),
            None => {
                let dir = tempfile::tempdir().unwrap();
                let target =
                    std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: NUL-terminated strings alive across the call.
                let r = unsafe {
                    libc::mount(
                        c"cgroup".as_ptr(),
                        target.as_ptr(),
                        c"cgroup".as_ptr(),
                        0,
                        c"none,name=ns-test".as_ptr().cast(),
                    )
                };
                assert_eq!(
                    r,
                    0,
                    "mounting a named cgroup v1 hierarchy: {}",
                    std::io::Error::last_os_error()
                );
                (dir.path().to_owned(), "name=ns-test".to_owned(), Some(dir))
            }
        };
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let prefix = format!(":{key}:");
        let path = own
            .lines()
            .find_map(|l| l.split_once(prefix.as_str()).map(|(_, p)| p.to_owned()))
            .unwrap();
        V1Hierarchy {
            own: mount.join(path.trim_start_matches('/')),
            key,
            _mount: guard,
        }
    }
}

impl Drop for V1Hierarchy {
    fn drop(&mut self) {
        if let Some(dir) = &self._mount {
            let target = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn child_joins_v1_hierarchies_and_its_cgroup_namespace_is_rooted_there() {
    require_root();
    let v1 = V1Hierarchy::new();
    let v2_root = cgroup2_root();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own_v2 = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_owned();
    let name = format!("ns-test-v1-{}", std::process::id());
    let dir1 = v1.own.join(&name);
    let dir2 = v2_root.join(own_v2.trim_start_matches('/')).join(&name);
    std::fs::create_dir(&dir1).unwrap();
    std::fs::create_dir(&dir2).unwrap();
    let v1_line = |text: &str| {
        let key = format!(":{}:", v1.key);
        text.lines()
            .find_map(|l| l.split_once(key.as_str()).map(|(_, p)| p.to_owned()))
            .unwrap_or_else(|| panic!("no line for the v1 hierarchy in {text}"))
    };
    // Without a cgroup namespace: in both cgroups, seen from our namespace.
    let text = stdout_of(
        cmd("cat", &["/proc/self/cgroup"])
            .cgroup_v1(&dir1)
            .cgroup(&dir2),
    );
    assert_eq!(v1_line(&text), format!("/{name}"), "{text}");
    let v2 = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    assert!(v2.ends_with(&format!("/{name}")), "{text}");
    // With one, both ways into the v2 cgroup: the namespace's root is the child's cgroup in
    // every hierarchy.
    for placement in [CgroupPlacement::CloneInto, CgroupPlacement::ProcsFile] {
        let text = stdout_of(
            cmd("cat", &["/proc/self/cgroup"])
                .unshare(NsType::CGROUP)
                .cgroup_v1(&dir1)
                .cgroup(&dir2)
                .cgroup_placement(placement),
        );
        assert_eq!(v1_line(&text), "/", "{placement:?}: {text}");
        assert!(text.lines().any(|l| l == "0::/"), "{placement:?}: {text}");
    }
    // The v1 hierarchy alone roots the namespace too.
    let text = stdout_of(
        cmd("cat", &["/proc/self/cgroup"])
            .unshare(NsType::CGROUP)
            .cgroup_v1(&dir1),
    );
    assert_eq!(v1_line(&text), "/", "{text}");
    // We stayed where we were; the cgroups are empty again.
    assert_eq!(std::fs::read_to_string("/proc/self/cgroup").unwrap(), own);
    assert_eq!(std::fs::read_to_string(dir1.join("tasks")).unwrap(), "");
    // A directory that is no v1 cgroup: a typed error naming it, nothing started or left
    // open (counted in a single-threaded fork, where no other test opens or spawns).
    in_child(|| {
        let fds = fd_count();
        let err = cmd("true", &[]).cgroup_v1(&dir2).spawn().unwrap_err();
        let text = err.to_string();
        if !matches!(err, Error::Io { .. }) || !text.contains(&name) || !text.contains("tasks") {
            return Err(format!("{err:?}: {text}"));
        }
        if fd_count() != fds || !children().is_empty() {
            return Err(format!(
                "left behind: {} fds, children {:?}",
                fd_count(),
                children()
            ));
        }
        Ok(())
    })
    .unwrap();
    std::fs::remove_dir(&dir1).unwrap();
    std::fs::remove_dir(&dir2).unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn chdir_before_credentials_reaches_a_directory_the_program_could_not() {
    require_root();
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&locked, Some(42), Some(42)).unwrap();
    let helper = Helper::spawn(NsType::PID, None);
    let target = Target::pin(helper.pid, NsType::PID).unwrap();
    // The child's own path, and the trampoline's (a program's process created in an entered
    // pid namespace).
    for enter in [false, true] {
        let run = |first: bool| {
            let mut c = cmd("pwd", &[]);
            c.uid(1000)
                .gid(1000)
                .current_dir(&locked)
                .chdir_before_credentials(first);
            if enter {
                c.enter(&target, NsType::PID);
            }
            c.output()
        };
        // With the program's credentials only: refused, as std's Command refuses it.
        match run(false) {
            Err(Error::Step {
                step: Step::Chdir,
                errno: libc::EACCES,
                ..
            }) => {}
            other => panic!("enter {enter}: {other:?}"),
        }
        // Tried first with the spawn's privileges: the program starts there.
        let out = run(true).unwrap_or_else(|e| panic!("enter {enter}: {e:?}"));
        assert!(out.status.success(), "enter {enter}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            locked.to_str().unwrap(),
            "enter {enter}"
        );
    }
    // A directory the spawn's privileges cannot reach either still fails, with the
    // program's error.
    let err = cmd("pwd", &[])
        .uid(1000)
        .current_dir(dir.path().join("missing"))
        .chdir_before_credentials(true)
        .output()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Step {
                step: Step::Chdir,
                errno: libc::ENOENT,
                ..
            }
        ),
        "{err:?}"
    );
}

// ---- Command plumbing ----------------------------------------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn stdio_pipes_through_a_spawned_command() {
    require_root();
    let helper = Helper::spawn(NsType::NET | NsType::UTS, Some("piped"));
    let target = Target::pin(helper.pid, NsType::NET | NsType::UTS).unwrap();
    let mut child = sh("hostname; cat; echo oops >&2; exit 3")
        .enter(&target, NsType::NET | NsType::UTS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through the pipe\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "piped\nthrough the pipe\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    // Null and a file.
    let file = tempfile::tempfile().unwrap();
    let mut reader = file.try_clone().unwrap();
    let status = sh("echo to-file; cat")
        .stdin(Stdio::null())
        .stdout(file)
        .status()
        .unwrap();
    assert!(status.success());
    let mut text = String::new();
    std::io::Seek::rewind(&mut reader).unwrap();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text, "to-file\n");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn environment_directory_and_credentials_are_applied() {
    require_root();
    let text = stdout_of(
        NsCommand::new("sh")
            .args(["-c", "echo $FOO:$BAR:$HOME; pwd; id -u; id -g; id -G"])
            .env("FOO", "from-command")
            .current_dir("/tmp")
            .kill_on_drop(true)
            .env("BAR", "from-builder")
            .env_remove("HOME")
            .uid(1000)
            .gid(1000)
            .groups(&[1000, 4]),
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "from-command:from-builder:",
            "/tmp",
            "1000",
            "1000",
            "1000 4"
        ],
        "{text}"
    );
    // env_clear keeps what was set before it, as std does; arg0 and a process group of its
    // own are applied.
    let text = stdout_of(
        NsCommand::new("/usr/bin/env")
            .env("ONLY", "1")
            .env_clear()
            .env("AFTER", "2"),
    );
    assert_eq!(text, "AFTER=2\nONLY=1\n");
    let text = stdout_of(
        NsCommand::new("sh")
            .arg0("renamed")
            .args(["-c", "echo $0; ps -o pgid= -p $$; echo $$"])
            .process_group(0),
    );
    let lines: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(lines[0], "renamed", "{text}");
    assert_eq!(lines[1], lines[2], "not a group leader: {text}");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn exec_failure_is_a_typed_error_with_the_errno() {
    require_root();
    let err = cmd("/nonexistent/program", &[]).spawn().unwrap_err();
    assert_not_found(&err);
    assert!(
        err.to_string()
            .contains("no such file or directory (ENOENT)"),
        "{err}"
    );
    let err = cmd("no-such-program-anywhere", &[]).spawn().unwrap_err();
    assert_not_found(&err);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let err = NsCommand::new(&script).spawn().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Exec {
                errno: libc::EACCES,
                ..
            }
        ),
        "{err:?}"
    );
    // The same through an intermediate (entering a namespace) and the pid stage.
    let helper = Helper::spawn(NsType::PID | NsType::NET, None);
    let target = Target::pin(helper.pid, NsType::PID | NsType::NET).unwrap();
    let err = cmd("/nonexistent/program", &[])
        .enter(&target, NsType::PID | NsType::NET)
        .unshare(NsType::PID)
        .spawn()
        .unwrap_err();
    assert_not_found(&err);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn spawned_child_holds_only_stdio_and_the_descriptors_it_was_given() {
    require_root();
    // A descriptor without O_CLOEXEC in the parent must not reach the child.
    // SAFETY: opening a file; the descriptor is wrapped right away.
    let leaky = unsafe { OwnedFd::from_raw_fd(libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY)) };
    let given = std::fs::File::open("/etc/hostname").unwrap();
    let helper = Helper::spawn(NsType::NET, None);
    let target = Target::pin(helper.pid, NsType::NET).unwrap();
    for enter in [false, true] {
        let mut c = cmd("sleep", &["30"]);
        c.fd(7, given.try_clone().unwrap().into());
        if enter {
            c.enter(&target, NsType::NET);
        }
        let mut child = c.spawn().unwrap();
        // The spawner resumes when the child's exec releases its memory, a moment before the
        // kernel closes the close-on-exec descriptors: look until they are gone.
        let list = |pid: libc::pid_t| -> Vec<i32> {
            let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
                .collect();
            fds.sort();
            fds
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut fds = list(child.pid());
        while fds != [0, 1, 2, 7] && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
            fds = list(child.pid());
        }
        assert_eq!(fds, [0, 1, 2, 7], "enter={enter}");
        let link = std::fs::read_link(format!("/proc/{}/fd/7", child.pid())).unwrap();
        assert_eq!(link, std::path::Path::new("/etc/hostname"));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    drop(leaky);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn hostname_and_new_namespaces_with_a_nested_pid_namespace() {
    require_root();
    let helper = Helper::spawn(
        NsType::PID | NsType::UTS | NsType::NET | NsType::MNT | NsType::IPC,
        Some("outer"),
    );
    let types = NsType::PID | NsType::UTS | NsType::NET | NsType::MNT | NsType::IPC;
    let target = Target::pin(helper.pid, types).unwrap();
    for strategy in [EntryStrategy::Pidfd, EntryStrategy::PerNamespace] {
        let mut child = cmd("sleep", &["30"])
            .enter(&target, types)
            .entry_strategy(strategy)
            .unshare(NsType::PID | NsType::UTS)
            .hostname("inner")
            .spawn()
            .unwrap();
        let pids = nspid(child.pid());
        assert_eq!(pids.len(), 3);
        assert_eq!(pids[2], 1);
        assert_eq!(
            getns(child.pid(), NsType::NET).unwrap(),
            Some(helper.id(NsType::NET))
        );
        assert_ne!(
            getns(child.pid(), NsType::UTS).unwrap(),
            Some(helper.id(NsType::UTS))
        );
        let host = stdout_of(
            cmd("hostname", &[])
                .enter(&Target::pin(child.pid(), NsType::UTS).unwrap(), NsType::UTS),
        );
        assert_eq!(host, "inner\n");
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_child_enters_every_namespace_type_of_its_target() {
    require_root();
    let helper = Helper::spawn(NsType::all(), Some("all-eight"));
    // The helper's mount namespace is a copy of ours, with the same /proc, in which the
    // child (in the helper's pid namespace, below ours) is visible: /proc/self works.
    let script = "hostname; for ns in mnt uts ipc pid net user cgroup time; do readlink /proc/self/ns/$ns; done";
    let want: String = std::iter::once("all-eight".to_owned())
        .chain(NsType::all().iter().map(|t| helper.id(t).to_string()))
        .map(|l| l + "\n")
        .collect();
    for strategy in [EntryStrategy::Pidfd, EntryStrategy::PerNamespace] {
        let text = stdout_of(
            sh(script)
                .enter_pid(helper.pid, NsType::all())
                .entry_strategy(strategy),
        );
        assert_eq!(text, want, "{strategy:?}");
    }
    // try_wait on a live child, then on a dead one.
    let mut child = cmd("sleep", &["30"])
        .enter_pid(helper.pid, NsType::all())
        .spawn()
        .unwrap();
    assert!(child.try_wait().unwrap().is_none());
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert_eq!(
        child.try_wait().unwrap().map(|s| s.signal()),
        Some(Some(libc::SIGKILL))
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn individual_namespace_handles_can_be_entered() {
    require_root();
    let a = Helper::spawn(NsType::UTS, Some("from-handle"));
    let b = Helper::spawn(NsType::NET | NsType::IPC, None);
    let text = stdout_of(
        sh("hostname; readlink /proc/self/ns/net /proc/self/ns/ipc")
            .enter_namespace(Namespace::of_pid(a.pid, NsType::UTS).unwrap())
            .enter_namespace(Namespace::of_pid(b.pid, NsType::NET).unwrap())
            .enter_namespace(
                Namespace::open(format!("/proc/{}/ns/ipc", b.pid), NsType::IPC).unwrap(),
            ),
    );
    let want = format!(
        "from-handle\n{}\n{}\n",
        b.id(NsType::NET),
        b.id(NsType::IPC)
    );
    assert_eq!(text, want);
    // Two handles of one type are refused before anything starts.
    let err = cmd("true", &[])
        .enter_namespace(Namespace::of_pid(a.pid, NsType::UTS).unwrap())
        .enter_namespace(Namespace::current(NsType::UTS).unwrap())
        .spawn()
        .unwrap_err();
    assert!(
        matches!(err, Error::Core(ns_core::Error::Invalid { .. })),
        "{err:?}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn spawning_works_when_the_caller_ignores_sigchld() {
    require_root();
    let helper = Helper::spawn(NsType::NET, None);
    let pid = helper.pid;
    leaves_nothing_behind(move || {
        // With SIGCHLD ignored the kernel reaps children itself: waits see ECHILD.
        // SAFETY: changing a signal disposition in a single-threaded child.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        let mut child = sh("exit 9").enter_pid(pid, NsType::NET).spawn().unwrap();
        // The exit status still arrives, through the pidfd (PIDFD_INFO_EXIT, 6.15).
        assert_eq!(child.wait().unwrap().code(), Some(9));
        let err = cmd("/nonexistent", &[])
            .enter_pid(pid, NsType::NET)
            .spawn()
            .unwrap_err();
        assert_not_found(&err);
    });
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn kill_on_drop_kills_and_reaps_the_child() {
    require_root();
    let child = cmd("sleep", &["30"]).unshare(NsType::UTS).spawn().unwrap();
    let pid = child.pid();
    let pidfd = child.pidfd().try_clone_to_owned().unwrap();
    drop(child);
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polling one live pollfd without waiting: the drop already waited.
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 0) },
        1,
        "child still running"
    );
    // Already reaped by the drop.
    let mut status = 0;
    // SAFETY: asking about a pid that was our child.
    assert_eq!(
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) },
        -1
    );
    // Without the option the child outlives its handle, as with std.
    let mut plain = NsCommand::new("sleep");
    plain.arg("30");
    let child = plain.spawn().unwrap();
    let pid = child.pid();
    drop(child);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // SAFETY: cleaning up our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait(pid);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn parent_death_signal_follows_the_spawning_thread() {
    require_root();
    let (pid, pidfd) = std::thread::spawn(|| {
        let child = cmd("sleep", &["30"])
            .kill_on_drop(false)
            .parent_death_signal(libc::SIGKILL)
            .spawn()
            .unwrap();
        let pidfd = child.pidfd().try_clone_to_owned().unwrap();
        (child.pid(), pidfd)
    })
    .join()
    .unwrap();
    // The spawning thread has exited: the child gets SIGKILL.
    let ended = dies_with_parent(pid, pidfd.as_fd());
    assert_eq!(wait(pid) & 0x7f, libc::SIGKILL);
    assert!(ended, "child still alive");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn entering_a_pid_namespace_keeps_the_parent_death_signal_and_spawn_returns_while_the_program_runs()
{
    require_root();
    let mut helper = Helper::spawn(NsType::PID, None);
    let target = Target::pin(helper.pid, NsType::PID).unwrap();
    // With a parent-death signal the trampoline waits for the program's execve and checks
    // the caller; the program dies with the spawning thread.
    let shared = target.try_clone().unwrap();
    let (pid, pidfd) = std::thread::spawn(move || {
        let child = cmd("sleep", &["30"])
            .enter(&shared, NsType::PID)
            .kill_on_drop(false)
            .parent_death_signal(libc::SIGKILL)
            .spawn()
            .unwrap();
        let pidfd = child.pidfd().try_clone_to_owned().unwrap();
        (child.pid(), pidfd)
    })
    .join()
    .unwrap();
    let ended = dies_with_parent(pid, pidfd.as_fd());
    assert_eq!(wait(pid) & 0x7f, libc::SIGKILL);
    assert!(ended, "the program outlived the spawning thread");
    // Without one the trampoline leaves at once: spawn still reports a program that cannot
    // run (found so only after a long PATH search, well after the trampoline left), returns
    // for one that runs on, and the program outlives the spawning thread.
    let long_path = (0..3000)
        .map(|i| format!("/nonexistent/{i}"))
        .collect::<Vec<_>>()
        .join(":");
    let err = cmd("no-such-program", &[])
        .env("PATH", long_path)
        .enter(&target, NsType::PID)
        .spawn()
        .unwrap_err();
    assert_not_found(&err);
    let shared = target.try_clone().unwrap();
    let mut child = std::thread::spawn(move || {
        cmd("sh", &["-c", "while :; do :; done"])
            .enter(&shared, NsType::PID)
            .spawn()
            .unwrap()
    })
    .join()
    .unwrap();
    // SAFETY: a signal-0 probe of our own child.
    assert_eq!(unsafe { libc::kill(child.pid(), 0) }, 0, "it runs on");
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    helper.kill();
}

// ---- Error paths: typed errors, nothing left behind ----------------------------------------

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn target_dying_half_way_is_a_typed_error_and_leaves_nothing() {
    require_root();
    leaves_nothing_behind(|| {
        let mut helper = Helper::spawn(NsType::NET, None);
        let target = Target::pin(helper.pid, NsType::NET).unwrap();
        helper.kill();
        let err = cmd("true", &[])
            .enter(&target, NsType::NET)
            .entry_strategy(EntryStrategy::Pidfd)
            .spawn()
            .unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Enter {
                    process: Process::Intermediate,
                    cause: ns_core::Error::ProcessGone { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        // SAFETY: as above.
        let err =
            unsafe { clone_in(Some(&target), NsType::NET, || 0, NsType::empty()) }.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Enter { .. } | Error::Core(ns_core::Error::ProcessGone { .. })
            ),
            "{err:?}"
        );
        drop(helper);
    });
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn failed_setns_is_a_typed_error_naming_the_missing_capability() {
    require_root();
    let helper = Helper::spawn(NsType::NET | NsType::UTS, None);
    let pid = helper.pid;
    leaves_nothing_behind(move || {
        let target = Target::pin(pid, NsType::NET | NsType::UTS).unwrap();
        caps::drop(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_ADMIN,
        )
        .unwrap();
        let err = cmd("true", &[])
            .enter(&target, NsType::NET | NsType::UTS)
            .spawn()
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("missing CAP_SYS_ADMIN"), "{text}");
        assert!(text.contains(&format!("of pid {pid}")), "{text}");
        assert!(text.contains("(in the intermediate process)"), "{text}");
    });
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn failed_clone_and_failed_child_setup_leave_nothing() {
    require_root();
    leaves_nothing_behind(|| {
        // clone3 refuses CLONE_INTO_CGROUP with a directory that is no cgroup v2 one.
        let err = cmd("true", &[])
            .cgroup("/tmp")
            .cgroup_placement(CgroupPlacement::CloneInto)
            .spawn()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Step {
                    step: Step::CreateChild,
                    ..
                }
            ),
            "{err:?}"
        );
        // sethostname refuses a name that is too long.
        let err = cmd("true", &[])
            .unshare(NsType::UTS)
            .hostname("x".repeat(100))
            .spawn()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Step {
                    step: Step::Hostname,
                    process: Process::Child,
                    errno: libc::EINVAL,
                    ..
                }
            ),
            "{err:?}"
        );
        // The kernel refuses overlapping uid_map lines: the child is killed and reaped.
        let err = cmd("true", &[])
            .unshare(NsType::USER)
            .uid_map(0, 0, 10)
            .uid_map(5, 100, 10)
            .spawn()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Step {
                    step: Step::UidMap,
                    process: Process::Intermediate,
                    ..
                }
            ),
            "{err:?}"
        );
        // Inconsistent requests are refused before anything starts.
        let err = cmd("true", &[]).hostname("no-uts").spawn().unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        // And the closure form.
        // SAFETY: the closure returns at once.
        let err = unsafe { clone(i32::MAX, NsType::NET, || 0, NsType::empty()) }.unwrap_err();
        assert!(
            matches!(err, Error::Core(ns_core::Error::ProcessGone { .. })),
            "{err:?}"
        );
    });
}

#[cfg(feature = "test-hooks")] // pause_intermediate_for_tests
#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn killed_intermediate_leaves_no_child_zombie_or_descriptor() {
    require_root();
    for after_child in [false, true] {
        leaves_nothing_behind(move || {
            let (pause_r, pause_w) = pipe();
            let mut c = cmd("sleep", &["30"]);
            c.unshare(NsType::UTS)
                .pause_intermediate_for_tests(pause_r, after_child);
            let killer = std::thread::spawn(move || {
                // Wait for the paused intermediate (our only child), then kill it.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                loop {
                    let kids = children();
                    let paused: Vec<_> = kids
                        .iter()
                        .filter(|p| {
                            let comm = std::fs::read_to_string(format!("/proc/{p}/comm"))
                                .unwrap_or_default();
                            comm.trim() != "sleep"
                        })
                        .collect();
                    if let Some(p) = paused.first() {
                        // The intermediate blocks in poll() on the pause pipe.
                        let wchan =
                            std::fs::read_to_string(format!("/proc/{p}/wchan")).unwrap_or_default();
                        if wchan.contains("pipe") || wchan.contains("poll") {
                            // SAFETY: killing our own child.
                            unsafe { libc::kill(**p, libc::SIGKILL) };
                            break;
                        }
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no paused intermediate"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                drop(pause_w);
            });
            let err = c.spawn().unwrap_err();
            killer.join().unwrap();
            assert!(
                matches!(&err, Error::Died { process: Process::Intermediate, status, .. } if status.contains("signal 9")),
                "{err:?}"
            );
        });
    }
}
