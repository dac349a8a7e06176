//! Entering a target's user namespace: the trampoline path (the child shares the caller's
//! memory with the caller's credentials and executes a small trampoline that enters the user
//! namespace in memory of its own) against the copy path (the intermediate has its own copy
//! of the caller's memory). Run for real by `cargo xtask test-root`.
#![cfg(feature = "test-hooks")]

mod common;
#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{cmd, deny, descriptor_holder, dies_with_parent, fd_count};
use ns_container::{Error, NsCommand, Process, Stdio, Step};
use ns_core::caps::{CapSet, Capability};
use ns_core::{NsType, Target};
use support::*;

const ENTERED: NsType = NsType::USER
    .union(NsType::NET)
    .union(NsType::UTS)
    .union(NsType::IPC)
    .union(NsType::MNT)
    .union(NsType::PID);

/// What a program sees of itself: namespaces, ids, capabilities, directory, descriptors.
const SELF_VIEW: &str = "readlink /proc/self/ns/user /proc/self/ns/net /proc/self/ns/uts \
    /proc/self/ns/ipc /proc/self/ns/mnt /proc/self/ns/pid; \
    grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' \
    /proc/self/status; pwd; ls /proc/self/fd; echo \"$FOO\"";

/// Ids a test sets: (groups, gid, uid).
type Ids = (Option<&'static [u32]>, Option<u32>, Option<u32>);

fn view(target: &Target, by_copy: bool, cwd: Option<&str>, ids: Ids) -> String {
    let mut c = cmd("sh", &["-c", SELF_VIEW]);
    c.enter(target, ENTERED).env("FOO", "bar");
    if let Some(dir) = cwd {
        c.current_dir(dir);
    }
    let (groups, gid, uid) = ids;
    if let Some(g) = groups {
        c.groups(g);
    }
    if let Some(g) = gid {
        c.gid(g);
    }
    if let Some(u) = uid {
        c.uid(u);
    }
    output_by(c, by_copy)
}

/// Runs `c` through the trampoline or the copy path; its output (it must succeed).
fn output_by(mut c: NsCommand, by_copy: bool) -> String {
    if by_copy {
        c.user_entry_by_copy_for_tests();
    } else {
        c.user_entry_by_trampoline_for_tests();
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_trampoline_gives_the_program_what_the_copy_path_gives() {
    require_root();
    let helper = Helper::spawn(ENTERED, Some("userns-host"));
    let target = Target::pin(helper.pid, ENTERED).unwrap();
    let all_ids: [Ids; 5] = [
        (None, None, None),
        (Some(&[10, 20]), Some(1000), Some(1000)),
        (None, None, Some(1000)),
        (Some(&[]), Some(7), None),
        (None, None, Some(0)),
    ];
    for (cwd, ids) in [None, Some("/tmp")]
        .into_iter()
        .flat_map(|cwd| all_ids.iter().map(move |ids| (cwd, *ids)))
    {
        let trampoline = view(&target, false, cwd, ids);
        let copy = view(&target, true, cwd, ids);
        assert_eq!(trampoline, copy, "cwd {cwd:?}, ids {ids:?}");
        let user = std::fs::read_link(format!("/proc/{}/ns/user", helper.pid)).unwrap();
        assert!(
            trampoline.starts_with(&format!("{}\n", user.display())),
            "{trampoline}"
        );
        assert!(trampoline.contains("bar\n"), "{trampoline}");
        // Only stdio and ls's own directory: nothing of the spawn is left open.
        assert!(trampoline.contains("\n0\n1\n2\n3\nbar"), "{trampoline}");
    }
}

/// A named setting of a command.
type Setting = (&'static str, fn(&mut NsCommand));

/// Settings the trampoline takes over from the child: capability sets, ambient, the filter,
/// a session.
fn privilege_settings() -> Vec<Setting> {
    fn drop_caps(c: &mut NsCommand) {
        for set in [CapSet::Bounding, CapSet::Permitted, CapSet::Effective] {
            c.capabilities(set, [Capability::CAP_CHOWN, Capability::CAP_KILL]);
        }
    }
    vec![
        ("a capability drop", drop_caps),
        ("a drop kept across a uid change, with ambient", |c| {
            drop_caps(c);
            c.capabilities(CapSet::Inheritable, [Capability::CAP_CHOWN])
                .capabilities(CapSet::Ambient, [Capability::CAP_CHOWN])
                .uid(1000)
                .gid(1000);
        }),
        ("the effective set alone", |c| {
            c.capabilities(CapSet::Effective, [Capability::CAP_CHOWN]);
        }),
        ("no_new_privs, a filter and a umask", |c| {
            c.no_new_privs(true).umask(0o077).seccomp_filter(
                ns_container::seccomp::deny(&[libc::SYS_getpriority], libc::EPERM).unwrap(),
            );
        }),
        ("a session", |c| {
            c.setsid(true);
        }),
    ]
}

/// What a program sees of itself (and whether it leads its session), entered with `set`.
fn view_with(target: &Target, types: NsType, by_copy: bool, set: fn(&mut NsCommand)) -> String {
    let script = format!(
        "{SELF_VIEW}; umask; awk '{{ print ($6 == $4) ? \"leader\" : \"member\" }}' /proc/self/stat"
    );
    let mut c = cmd("sh", &["-c", &script]);
    c.enter(target, types).env("FOO", "bar");
    set(&mut c);
    output_by(c, by_copy)
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn privileges_set_by_the_trampoline_are_what_the_copy_path_sets() {
    require_root();
    // Root entering a user namespace of another uid (the trampoline enters it last).
    let helper = Helper::spawn(ENTERED, Some("userns-caps"));
    let target = Target::pin(helper.pid, ENTERED).unwrap();
    for (name, set) in privilege_settings() {
        let trampoline = view_with(&target, ENTERED, false, set);
        assert_eq!(trampoline, view_with(&target, ENTERED, true, set), "{name}");
    }
    // An ordinary uid entering its own container (the trampoline makes the whole entry).
    in_child(|| {
        // SAFETY: id changes of this single-threaded (forked) process.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(1000, 1000, 1000) != 0
                || libc::setresuid(1000, 1000, 1000) != 0
            {
                return Err("dropping to uid 1000".to_owned());
            }
            // Dumpable again, as a program started by that uid is (its maps need it).
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        }
        let mut container = cmd("sleep", &["600"]);
        let mut container = container
            .unshare(ENTERED)
            .uid_map(0, 1000, 1)
            .gid_map(0, 1000, 1)
            .setgroups_deny(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        let target = Target::pin(container.pid(), ENTERED).map_err(|e| e.to_string())?;
        let mut result = Ok(());
        for (name, set) in privilege_settings() {
            if name.contains("uid change") {
                // Only uid 0 is mapped in this container.
                continue;
            }
            let trampoline = view_with(&target, ENTERED, false, set);
            let copy = view_with(&target, ENTERED, true, set);
            if trampoline != copy {
                result = Err(format!("{name}: {trampoline} != {copy}"));
                break;
            }
        }
        let _ = container.kill();
        let _ = container.wait();
        result
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn failures_after_entering_are_typed_and_leave_nothing() {
    require_root();
    // It compares the descriptor count of the whole process: nothing may run beside it.
    if !alone("failures_after_entering_are_typed_and_leave_nothing") {
        return;
    }
    in_child(|| {
        let helper = Helper::spawn(NsType::USER | NsType::NET, None);
        let target =
            Target::pin(helper.pid, NsType::USER | NsType::NET).map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, [0u8, 1, 2, 3]).map_err(|e| e.to_string())?;
        std::fs::set_permissions(
            &garbage,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| e.to_string())?;
        let before = fd_count();
        let garbage = garbage.to_str().unwrap().to_owned();
        type Expected = Box<dyn Fn(&Error) -> bool>;
        let cases: [(&str, Option<&str>, Expected); 6] = [
            (
                "true",
                Some(""),
                Box::new(|e| {
                    matches!(e, Error::Step { process: Process::Child, step: Step::Chdir,
                        errno, .. } if *errno == libc::ENOENT)
                }),
            ),
            (
                "/nonexistent/program",
                None,
                Box::new(|e| matches!(e, Error::Exec { errno, .. } if *errno == libc::ENOENT)),
            ),
            (
                "no-such-program-anywhere",
                None,
                Box::new(|e| matches!(e, Error::Exec { errno, .. } if *errno == libc::ENOENT)),
            ),
            (
                "/etc/passwd",
                None,
                Box::new(|e| matches!(e, Error::Exec { errno, .. } if *errno == libc::EACCES)),
            ),
            (
                &garbage,
                None,
                Box::new(|e| matches!(e, Error::Exec { errno, .. } if *errno == libc::ENOEXEC)),
            ),
            (
                "true",
                Some("/nonexistent/dir"),
                Box::new(|e| {
                    matches!(e, Error::Step { process: Process::Child, step: Step::Chdir,
                        errno, .. } if *errno == libc::ENOENT)
                }),
            ),
        ];
        for (program, cwd, expected) in &cases {
            let mut c = cmd(program, &[]);
            c.enter(&target, NsType::USER | NsType::NET)
                .user_entry_by_trampoline_for_tests();
            if let Some(dir) = cwd {
                c.current_dir(dir);
            }
            match c.spawn() {
                Ok(_) => return Err(format!("{program} in {cwd:?}: spawned")),
                Err(e) if expected(&e) => {}
                Err(e) => return Err(format!("{program} in {cwd:?}: {e:?}")),
            }
        }
        if fd_count() != before {
            return Err(format!(
                "descriptors: {before} before, {} after",
                fd_count()
            ));
        }
        // SAFETY: a non-blocking waitpid for any child.
        let zombie = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if zombie > 0 {
            return Err(format!("a process of a failed spawn was left: {zombie}"));
        }
        Ok(())
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn given_descriptors_at_clashing_numbers_survive_the_trampoline() {
    require_root();
    let helper = Helper::spawn(NsType::USER | NsType::NET, None);
    let target = Target::pin(helper.pid, NsType::USER | NsType::NET).unwrap();
    // The target's own descriptors (its pidfd and namespace files) sit at low numbers: give
    // the child descriptors at each of those numbers, and at a high one.
    let mut numbers: Vec<i32> = (3..12).collect();
    numbers.push(1000);
    let mut c = cmd(
        "sh",
        &["-c", "for f in /proc/self/fd/*; do readlink $f; done"],
    );
    c.enter(&target, NsType::USER | NsType::NET)
        .user_entry_by_trampoline_for_tests()
        .stdout(Stdio::piped());
    let dir = tempfile::tempdir().unwrap();
    for n in &numbers {
        let path = dir.path().join(format!("file{n}"));
        std::fs::write(&path, b"").unwrap();
        c.fd(*n, OwnedFd::from(std::fs::File::open(&path).unwrap()));
    }
    let out = c.output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for n in &numbers {
        assert!(text.contains(&format!("file{n}\n")), "{n}: {text}");
    }
    // stdin, stdout, stderr and the given ones: nothing else.
    assert_eq!(text.lines().count(), 3 + numbers.len(), "{text}");
}

/// A process that `unshare --user --map-root-user` started as uid 1000: a user namespace
/// owned by another uid than ours, whose entry changes our credentials enough for the
/// kernel to clear the parent-death signal.
struct ForeignUserNs {
    unshare: std::process::Child,
    pid: libc::pid_t,
}

impl ForeignUserNs {
    #[allow(clippy::zombie_processes)] // waited for in Drop, or killed and waited for below
    fn start() -> ForeignUserNs {
        let mut unshare = Command::new("setpriv")
            .args(["--reuid=1000", "--regid=1000", "--clear-groups"])
            .args([
                "unshare",
                "--user",
                "--map-root-user",
                "--fork",
                "--kill-child",
            ])
            .args(["sleep", "100000"])
            .spawn()
            .expect("setpriv and unshare (util-linux)");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", unshare.id()))
                    .unwrap_or_default();
            if let Some(pid) = children.split_whitespace().next() {
                let pid: libc::pid_t = pid.parse().unwrap();
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "sleep" {
                    return ForeignUserNs { unshare, pid };
                }
            }
            if Instant::now() > deadline {
                let _ = unshare.kill();
                let _ = unshare.wait();
                panic!("unshare did not start");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ForeignUserNs {
    fn drop(&mut self) {
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_parent_death_signal_survives_entering_a_user_namespace_of_another_uid() {
    require_root();
    let foreign = ForeignUserNs::start();
    // Entering the namespace clears the signal, and so does a change of uid after it.
    for (by_copy, uid) in [
        (false, None),
        (true, None),
        (false, Some(0)),
        (true, Some(0)),
    ] {
        let target = Target::pin(foreign.pid, NsType::USER).unwrap();
        let (pid, pidfd) = std::thread::spawn(move || {
            let mut c = cmd("sleep", &["30"]);
            c.enter(&target, NsType::USER)
                .kill_on_drop(false)
                .parent_death_signal(libc::SIGKILL);
            if let Some(uid) = uid {
                c.uid(uid);
            }
            if by_copy {
                c.user_entry_by_copy_for_tests();
            } else {
                c.user_entry_by_trampoline_for_tests();
            }
            let child = c.spawn().unwrap();
            (child.pid(), child.pidfd().try_clone_to_owned().unwrap())
        })
        .join()
        .unwrap();
        // The spawning thread has exited: the child gets SIGKILL.
        let ended = dies_with_parent(pid, pidfd.as_fd());
        assert_eq!(wait(pid) & 0x7f, libc::SIGKILL, "by copy: {by_copy}");
        assert!(ended, "by copy: {by_copy}: the child outlived its parent");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn id_failures_after_entering_are_typed_on_both_paths() {
    require_root();
    // Only uid and gid 0 are mapped there (to 1000), and setgroups is denied.
    let foreign = ForeignUserNs::start();
    let target = Target::pin(foreign.pid, NsType::USER).unwrap();
    for by_copy in [false, true] {
        let cases: [(Ids, Step, i32, i32); 3] = [
            ((None, None, Some(5)), Step::Uid, 5, libc::EINVAL),
            ((None, Some(5), None), Step::Gid, 5, libc::EINVAL),
            ((Some(&[0]), None, None), Step::Groups, 0, libc::EPERM),
        ];
        for ((groups, gid, uid), step, detail, errno) in cases {
            let mut c = cmd("true", &[]);
            c.enter(&target, NsType::USER);
            if let Some(g) = groups {
                c.groups(g);
            }
            if let Some(g) = gid {
                c.gid(g);
            }
            if let Some(u) = uid {
                c.uid(u);
            }
            if by_copy {
                c.user_entry_by_copy_for_tests();
            } else {
                c.user_entry_by_trampoline_for_tests();
            }
            match c.spawn() {
                Err(Error::Step {
                    process: Process::Child,
                    step: s,
                    detail: d,
                    errno: e,
                    ..
                }) if s == step && d == detail && e == errno => {}
                other => panic!("by copy {by_copy}, {step:?}: {other:?}"),
            }
        }
        // Uid 0 there is 1000 here: a program run as it works.
        let mut c = cmd("id", &["-u"]);
        c.enter(&target, NsType::USER).uid(0).gid(0);
        if by_copy {
            c.user_entry_by_copy_for_tests();
        } else {
            c.user_entry_by_trampoline_for_tests();
        }
        let out = c.output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{out:?}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_caller_whose_privilege_would_not_survive_exec_still_enters() {
    require_root();
    // The trampoline needs CAP_SYS_ADMIN after its execve. These callers have it now but
    // would not keep it across an exec: the spawn must still work (on the copy path).
    let foreign = ForeignUserNs::start();
    let pid = foreign.pid;
    for (what, setup) in [
        (
            "no CAP_SYS_ADMIN (21) in the bounding set",
            (|| {
                // SAFETY: prctl on this single-threaded (forked) process.
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, 21, 0, 0, 0) }
            }) as fn() -> libc::c_int,
        ),
        ("SECBIT_NOROOT", || {
            // SAFETY: as above.
            unsafe { libc::prctl(libc::PR_SET_SECUREBITS, 1, 0, 0, 0) }
        }),
    ] {
        in_child(move || {
            if setup() != 0 {
                return Err(format!("{what}: {}", std::io::Error::last_os_error()));
            }
            let target = Target::pin(pid, NsType::USER).map_err(|e| e.to_string())?;
            let mut c = cmd("true", &[]);
            c.enter(&target, NsType::USER);
            match c.status() {
                Ok(s) if s.success() => Ok(()),
                other => Err(format!("{what}: {other:?}")),
            }
        })
        .unwrap();
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_spawn_never_waits_for_an_unrelated_process_holding_its_descriptors() {
    require_root();
    let helper = Helper::spawn(NsType::USER | NsType::NET, None);
    let target = Target::pin(helper.pid, NsType::USER | NsType::NET).unwrap();
    let (pause_r, pause_w) = pipe();
    // A program that outlives the holder below: the spawn must return once it runs, not when
    // it or the holder ends.
    let spawner = std::thread::spawn(move || {
        let mut c = cmd("sleep", &["10"]);
        c.enter(&target, NsType::USER | NsType::NET)
            .user_entry_by_trampoline_for_tests()
            .pause_intermediate_for_tests(pause_r, false);
        c.spawn().map(|child| child.pid())
    });
    // Meanwhile a closure child copies the whole descriptor table, the spawn's included,
    // and keeps it for 5 seconds.
    std::thread::sleep(Duration::from_millis(50));
    let mut holder = descriptor_holder(5);
    // A byte, not end-of-file: the holder has a copy of this end too.
    std::io::Write::write_all(&mut std::fs::File::from(pause_w), b"g").unwrap();
    spawner.join().unwrap().unwrap();
    assert_eq!(
        holder.try_wait().unwrap(),
        None,
        "the spawn waited for the unrelated child"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_trampoline_refused_after_the_probe_falls_back_to_the_copy() {
    require_root();
    in_child(|| {
        let helper = Helper::spawn(NsType::USER | NsType::NET, None);
        let types = NsType::USER | NsType::NET;
        let target = Target::pin(helper.pid, types).map_err(|e| e.to_string())?;
        let run = || {
            let mut c = cmd("true", &[]);
            c.enter(&target, types);
            c.status().map_err(|e| e.to_string())
        };
        // The first spawn finds the trampoline usable; then a policy refuses to execute it.
        if !run()?.success() {
            return Err("first spawn".into());
        }
        deny(libc::SYS_execveat, libc::EPERM)?;
        match run()? {
            s if s.success() => Ok(()),
            s => Err(format!("after the filter: {s:?}")),
        }
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn arguments_that_fit_the_program_fit_through_the_trampoline() {
    require_root();
    let helper = Helper::spawn(NsType::USER | NsType::NET, None);
    let types = NsType::USER | NsType::NET;
    let target = Target::pin(helper.pid, types).unwrap();
    // The largest argument the copy path can pass, found by bisection.
    let spawn = |len: usize, by_copy: bool| {
        let mut c = cmd("true", &[]);
        c.enter(&target, types).env_clear();
        // Strings of at most 128 KiB each (MAX_ARG_STRLEN), `len` bytes in all.
        let mut left = len;
        while left > 0 {
            let n = left.min(100_000);
            c.arg("x".repeat(n));
            left -= n;
        }
        if by_copy {
            c.user_entry_by_copy_for_tests();
        }
        c.status()
    };
    let (mut fits, mut too_big) = (0usize, 8 << 20);
    while too_big - fits > 1 {
        let mid = (fits + too_big) / 2;
        match spawn(mid, true) {
            Ok(s) if s.success() => fits = mid,
            Err(Error::Exec { errno, .. }) if errno == libc::E2BIG => too_big = mid,
            other => panic!("{mid} bytes: {other:?}"),
        }
    }
    assert!(fits > 100_000, "{fits}");
    // The trampoline adds its own arguments; a spawn that fits the copy path must work.
    for len in [fits, fits - 100] {
        let status = spawn(len, false).unwrap();
        assert!(status.success(), "{len} bytes: {status:?}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn root_setting_a_uid_drops_its_groups_in_a_user_namespace_that_maps_root_elsewhere() {
    require_root();
    in_child(|| {
        // A container whose root is uid 100000 here: our uid 0 is unmapped in it, so "is
        // the caller root" must be asked before entering, as std asks it before the uid
        // change.
        let mut container = cmd("sleep", &["100"]);
        container
            .unshare(NsType::USER)
            .uid_map(0, 100_000, 65_536)
            .gid_map(0, 100_000, 65_536);
        let sleeper = container.spawn().map_err(|e| e.to_string())?;
        let target = Target::pin(sleeper.pid(), NsType::USER).map_err(|e| e.to_string())?;
        // SAFETY: setgroups on this single-threaded (forked) process.
        if unsafe { libc::setgroups(3, [0, 4, 27].as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        for by_copy in [false, true] {
            let mut c = cmd("grep", &["^Groups:", "/proc/self/status"]);
            c.enter(&target, NsType::USER).uid(1000).gid(1000);
            if by_copy {
                c.user_entry_by_copy_for_tests();
            } else {
                c.user_entry_by_trampoline_for_tests();
            }
            let out = c.output().map_err(|e| e.to_string())?;
            let groups = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if groups != "Groups:" {
                return Err(format!("by copy {by_copy}: {groups:?} ({out:?})"));
            }
        }
        Ok(())
    })
    .unwrap();
}

/// A word of the caller's memory that the container's root tries to overwrite.
static WORD: AtomicU32 = AtomicU32::new(1);

/// The attacker, forked from this (single-threaded) process: it enters `user_ns` as the
/// container's root (all capabilities there) and writes 42 at the word's address into every
/// child of `caller` whose memory it can open (but `spare`), until `stop` is readable; then
/// reports "opened wrote" on `report` and exits. `others` are the caller's ends of the two
/// pipes, which the attacker closes.
fn attacker(
    user_ns: &std::fs::File,
    caller: libc::pid_t,
    spare: libc::pid_t,
    (stop, report): (OwnedFd, OwnedFd),
    others: [&OwnedFd; 2],
) -> libc::pid_t {
    let address = WORD.as_ptr() as u64;
    // SAFETY: the forked attacker runs plain system calls and std file reads, then _exits.
    let attacker = unsafe { libc::fork() };
    if attacker != 0 {
        return attacker;
    }
    for fd in others {
        // SAFETY: closing this forked copy's duplicates of the caller's pipe ends.
        unsafe { libc::close(fd.as_raw_fd()) };
    }
    let me = std::process::id().to_string();
    let spare = spare.to_string();
    let (mut opened, mut wrote) = (0u32, 0u32);
    // SAFETY: setns on this single-threaded process.
    if unsafe { libc::setns(user_ns.as_raw_fd(), libc::CLONE_NEWUSER) } == 0 {
        let mut pfd = [libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: polling a live pollfd without waiting.
        while unsafe { libc::poll(pfd.as_mut_ptr(), 1, 0) } == 0 {
            let tasks = std::fs::read_dir(format!("/proc/{caller}/task"))
                .into_iter()
                .flatten()
                .flatten();
            for task in tasks {
                let children =
                    std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                for pid in children.split_whitespace() {
                    // The container's own process, and the attacker itself.
                    if pid == spare || pid == me {
                        continue;
                    }
                    let Ok(mem) = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(format!("/proc/{pid}/mem"))
                    else {
                        continue;
                    };
                    opened += 1;
                    let v = 42u32.to_ne_bytes();
                    // 0 bytes: the process has exited since it was opened.
                    let n = std::os::unix::fs::FileExt::write_at(&mem, &v, address);
                    if n.is_ok_and(|n| n == v.len()) {
                        wrote += 1;
                    }
                }
            }
        }
    }
    let msg = format!("{opened} {wrote}");
    // SAFETY: writing a short message, then leaving the forked attacker.
    unsafe {
        libc::write(report.as_raw_fd(), msg.as_ptr().cast(), msg.len());
        libc::_exit(0)
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_containers_root_cannot_write_into_the_caller_through_a_spawn() {
    require_root();
    in_child(|| {
        // SAFETY: prctl on this (forked) process: start dumpable, as an ordinary program is.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
        let helper = Helper::spawn(NsType::USER | NsType::NET, None);
        let caller = std::process::id() as libc::pid_t;
        let user_ns = std::fs::File::open(format!("/proc/{}/ns/user", helper.pid))
            .map_err(|e| e.to_string())?;
        let (stop_r, stop_w) = pipe();
        let (report_r, report_w) = pipe();
        let attacker = attacker(
            &user_ns,
            caller,
            helper.pid,
            (stop_r, report_w),
            [&stop_w, &report_r],
        );
        let target =
            Target::pin(helper.pid, NsType::USER | NsType::NET).map_err(|e| e.to_string())?;
        let mut result = Ok(());
        // 300 through the trampoline, 150 through the copy path (forced), then 150 that take
        // it by themselves (a pre_exec hook keeps the trampoline out).
        for i in 0..600 {
            let mut c = cmd("true", &[]);
            c.enter(&target, NsType::USER | NsType::NET);
            if i >= 450 {
                // SAFETY: the hook does nothing.
                unsafe { c.pre_exec(|| Ok(())) };
            } else if i >= 300 {
                c.user_entry_by_copy_for_tests();
            } else {
                c.user_entry_by_trampoline_for_tests();
            }
            let status = c.status();
            if WORD.load(Ordering::SeqCst) != 1 {
                result = Err(format!(
                    "the container wrote into the caller's memory (spawn {i})"
                ));
                break;
            }
            match status {
                Ok(s) if s.success() => {}
                other => {
                    result = Err(format!("spawn: {other:?}"));
                    break;
                }
            }
        }
        drop(stop_w);
        let mut report = String::new();
        let _ = std::fs::File::from(report_r).read_to_string(&mut report);
        wait(attacker);
        eprintln!("attacker: opened, wrote: {report}");
        result
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_rootless_containers_root_cannot_write_into_its_owners_spawns() {
    require_root();
    in_child(|| {
        // An ordinary user: no capability in the host's user namespace.
        // SAFETY: id changes of this single-threaded (forked) process.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(1000, 1000, 1000) != 0
                || libc::setresuid(1000, 1000, 1000) != 0
            {
                return Err("dropping to uid 1000".to_owned());
            }
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        }
        // Its own container: a user namespace mapping it to root, and network, pid and mount
        // namespaces.
        let own = NsType::USER | NsType::NET | NsType::PID | NsType::MNT;
        let mut container = cmd("sleep", &["600"]);
        let mut container = container
            .unshare(own)
            .uid_map(0, 1000, 1)
            .gid_map(0, 1000, 1)
            .setgroups_deny(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        let pid = container.pid();
        let user_ns =
            std::fs::File::open(format!("/proc/{pid}/ns/user")).map_err(|e| e.to_string())?;
        let (stop_r, stop_w) = pipe();
        let (report_r, report_w) = pipe();
        let caller = std::process::id() as libc::pid_t;
        let attacker = attacker(
            &user_ns,
            caller,
            pid,
            (stop_r, report_w),
            [&stop_w, &report_r],
        );
        let target = Target::pin(pid, own).map_err(|e| e.to_string())?;
        let mut result = Ok(());
        for i in 0..300 {
            let mut c = cmd("true", &[]);
            c.enter(&target, own);
            if i % 3 == 1 {
                // The copy path (a hook, which the trampoline does not run).
                // SAFETY: the hook does nothing.
                unsafe { c.pre_exec(|| Ok(())) };
            } else if i % 3 == 2 {
                c.current_dir("/").uid(0).gid(0).no_new_privs(true);
                for set in [CapSet::Bounding, CapSet::Permitted, CapSet::Effective] {
                    c.capabilities(set, [Capability::CAP_CHOWN, Capability::CAP_KILL]);
                }
            }
            let status = c.status();
            if WORD.load(Ordering::SeqCst) != 1 {
                result = Err("the container wrote into its owner's memory".to_owned());
                break;
            }
            if !status.as_ref().is_ok_and(|s| s.success()) {
                result = Err(format!("spawn: {status:?}"));
                break;
            }
        }
        drop(stop_w);
        let mut report = String::new();
        let _ = std::fs::File::from(report_r).read_to_string(&mut report);
        wait(attacker);
        let _ = container.kill();
        let _ = container.wait();
        eprintln!("attacker: opened, wrote: {report}");
        result
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_directory_is_tried_before_the_credentials_on_both_paths_when_asked() {
    require_root();
    use std::os::unix::fs::PermissionsExt;
    let helper = Helper::spawn(ENTERED, None);
    let target = Target::pin(helper.pid, ENTERED).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&locked, Some(42), Some(42)).unwrap();
    for by_copy in [false, true] {
        let run = |first: bool| {
            let mut c = cmd("pwd", &[]);
            c.enter(&target, ENTERED)
                .uid(1000)
                .gid(1000)
                .current_dir(&locked)
                .chdir_before_credentials(first);
            if by_copy {
                c.user_entry_by_copy_for_tests();
            } else {
                c.user_entry_by_trampoline_for_tests();
            }
            c.output()
        };
        match run(false) {
            Err(Error::Step {
                step: Step::Chdir,
                errno: libc::EACCES,
                ..
            }) => {}
            other => panic!("by copy {by_copy}: {other:?}"),
        }
        let out = run(true).unwrap_or_else(|e| panic!("by copy {by_copy}: {e:?}"));
        assert!(out.status.success(), "by copy {by_copy}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            locked.to_str().unwrap(),
            "by copy {by_copy}"
        );
    }
}
