//! A hostile image, a hostile caller environment and careless use: what a spawn must never
//! give away (run for real by `cargo xtask test-root`).

mod common;
#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use common::{cmd, field, sh, stdout_of};
use ns_container::{Child, Error, Mount, MountApi, NsCommand, RootMode, Stdio, Step};
use ns_core::caps::{CapSet, Capability};
use ns_core::{NsType, Target};
use support::*;

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn inheritable_capabilities_of_the_caller_do_not_survive_a_drop() {
    require_root();
    // A caller whose inheritable set holds CAP_SYS_ADMIN and CAP_NET_ADMIN (a systemd unit
    // with capabilities, `capsh --inh`): for root, execve makes permitted = bounding ∪
    // inheritable, so a drop to CAP_CHOWN that leaves the inheritable set alone gives both
    // back. Per thread: this test's thread only, restored below.
    let before = caps::read(None, CapSet::Inheritable).unwrap();
    let mut inh = before.clone();
    inh.insert(Capability::CAP_SYS_ADMIN);
    inh.insert(Capability::CAP_NET_ADMIN);
    caps::set(None, CapSet::Inheritable, &inh).unwrap();
    let chown = [Capability::CAP_CHOWN];
    let spawned = std::panic::catch_unwind(|| {
        stdout_of(
            sh("cat /proc/self/status")
                .unshare(NsType::UTS)
                .capabilities(CapSet::Bounding, chown)
                .capabilities(CapSet::Permitted, chown)
                .capabilities(CapSet::Effective, chown),
        )
    });
    caps::set(None, CapSet::Inheritable, &before).unwrap();
    let text = spawned.unwrap();
    let only_chown = format!("{:016x}", 1u64 << 0);
    let none = format!("{:016x}", 0);
    assert_eq!(field(&text, "CapEff:"), only_chown, "{text}");
    assert_eq!(field(&text, "CapPrm:"), only_chown, "{text}");
    assert_eq!(field(&text, "CapInh:"), none, "{text}");
    assert_eq!(field(&text, "CapAmb:"), none, "{text}");
}

#[test]
fn output_leaves_the_commands_stdio_as_it_was() {
    // output() pipes stdout and stderr and gives /dev/null as stdin for that call only, as
    // std does: a later status() runs with the caller's stdio again (were stdout still a
    // pipe nobody reads, a chatty program would block forever).
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("fd1");
    let script = format!(
        "l=$(readlink /proc/$$/fd/1); echo \"$l\" > {}",
        seen.display()
    );
    let mut c = sh(&script);
    let out = c.output().unwrap();
    assert!(out.status.success());
    let during_output = std::fs::read_to_string(&seen).unwrap();
    assert!(during_output.starts_with("pipe:"), "{during_output}");
    assert!(c.status().unwrap().success());
    let ours = std::fs::read_link("/proc/self/fd/1").unwrap();
    let later = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(
        later.trim_end(),
        ours.to_string_lossy(),
        "status() after output()"
    );
}

/// A root of a read-only bind of the host's `/usr` (with the usual `bin`, `lib` links), a
/// fresh `/proc` and a `/tmp`: enough for `sh`, `cat`, `ls` and `sleep`. What the test made
/// in `dir` already is left as it is. Returns its mounts.
fn rootfs(dir: &Path) -> Vec<Mount> {
    let absent = |p: &Path| std::fs::symlink_metadata(p).is_err();
    for link in ["bin", "lib", "lib64", "sbin"] {
        if let Ok(to) = std::fs::read_link(format!("/{link}")) {
            if absent(&dir.join(link)) {
                std::os::unix::fs::symlink(to, dir.join(link)).unwrap();
            }
        }
    }
    for sub in ["usr", "proc", "tmp"] {
        if absent(&dir.join(sub)) {
            std::fs::create_dir(dir.join(sub)).unwrap();
        }
    }
    vec![
        Mount::bind("/usr", dir.join("usr"))
            .recursive(false)
            .read_only(),
        Mount::proc(dir.join("proc")),
        Mount::tmpfs(dir.join("tmp")).options("mode=1777,size=1m"),
    ]
}

/// A container of its own: new mount and pid namespaces, `root` as its root.
fn container<'a>(root: &Path, program: &'a mut NsCommand) -> &'a mut NsCommand {
    for m in rootfs(root) {
        program.mount(m);
    }
    program
        .unshare(NsType::MNT | NsType::PID)
        .root(root)
        .root_mode(RootMode::PivotRoot)
}

fn assert_chdir_refused(result: Result<Child, Error>, detail: i32) {
    match result {
        Err(Error::Step {
            step: Step::Chdir,
            detail: d,
            ..
        }) if d == detail => {}
        Err(e) => panic!("expected a refused chdir (detail {detail}), got {e}"),
        Ok(mut child) => {
            let status = child.wait();
            panic!("the child ran in a working directory outside its root: {status:?}")
        }
    }
}

const ESCAPE: &str = "echo escaped > escaped; ls ../../../../.. > listing";

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_working_directory_through_an_inherited_descriptor_never_reaches_the_host() {
    require_root();
    // The caller holds a directory of the host open (close-on-exec, as every descriptor
    // should be); the image's working directory is a link to /proc/self/fd/N.
    let host = tempfile::tempdir().unwrap();
    let held = std::fs::File::open(host.path()).unwrap();
    let n = held.as_raw_fd();
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(format!("/proc/self/fd/{n}"), root.path().join("work")).unwrap();
    let mut c = sh(ESCAPE);
    container(root.path(), &mut c).current_dir("/work");
    assert_chdir_refused(c.spawn(), 0);
    assert!(
        !host.path().join("escaped").exists(),
        "the child wrote on the host"
    );
    assert!(
        !host.path().join("listing").exists(),
        "the child listed the host's /"
    );
    drop(held);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_given_directory_cannot_become_a_working_directory_outside_the_root() {
    require_root();
    // A descriptor given on purpose stays open; a working directory reached through it is
    // outside the root, and refused before anything runs there.
    let host = tempfile::tempdir().unwrap();
    let given: OwnedFd = std::fs::File::open(host.path()).unwrap().into();
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/proc/self/fd/7", root.path().join("work")).unwrap();
    let mut c = sh(ESCAPE);
    container(root.path(), &mut c)
        .current_dir("/work")
        .fd(7, given);
    assert_chdir_refused(c.spawn(), 1);
    assert!(
        !host.path().join("escaped").exists(),
        "the child wrote on the host"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_directory_check_holds_when_a_filter_refuses_getcwd() {
    require_root();
    // Without no_new_privs the filter is installed before the directory changes; one that
    // refuses getcwd leaves the check to climbing `..` from the directory.
    let filter = ns_container::seccomp::deny(&[libc::SYS_getcwd], libc::EPERM).unwrap();
    let host = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/proc/self/fd/7", root.path().join("work")).unwrap();
    let given: OwnedFd = std::fs::File::open(host.path()).unwrap().into();
    let mut c = sh(ESCAPE);
    container(root.path(), &mut c)
        .current_dir("/work")
        .fd(7, given)
        .seccomp_filter(filter.clone());
    assert_chdir_refused(c.spawn(), 1);
    assert!(
        !host.path().join("escaped").exists(),
        "the child wrote on the host"
    );
    // A directory inside the root passes the same check.
    std::fs::create_dir(root.path().join("inside")).unwrap();
    std::fs::write(root.path().join("inside/marker"), "").unwrap();
    // (The shell's pwd would ask getcwd: ls reads the directory itself.)
    let mut c = sh("ls");
    container(root.path(), &mut c)
        .current_dir("/inside")
        .seccomp_filter(filter);
    assert_eq!(stdout_of(&mut c), "marker\n");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn entering_a_running_container_never_puts_the_working_directory_on_the_host() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let mut init = cmd("sleep", &["60"]);
    let mut init = container(root.path(), &mut init).spawn().unwrap();
    let target = Target::pin(init.id() as libc::pid_t, NsType::MNT | NsType::PID).unwrap();
    // The container makes the directory the exec asks for a link to /proc/self/fd/N, with
    // N a directory of the host that the caller holds.
    let host = tempfile::tempdir().unwrap();
    let held = std::fs::File::open(host.path()).unwrap();
    let link = format!("/proc/self/fd/{}", held.as_raw_fd());
    std::os::unix::fs::symlink(&link, root.path().join("work")).unwrap_or_else(|_| {
        // After pivot_root the directory is the container's root; reach it through init.
        let inside = format!("/proc/{}/root/work", init.id());
        std::os::unix::fs::symlink(&link, inside).unwrap();
    });
    let mut exec = sh(ESCAPE);
    exec.enter(&target, NsType::MNT | NsType::PID)
        .current_dir("/work");
    assert_chdir_refused(exec.spawn(), 0);
    assert!(
        !host.path().join("escaped").exists(),
        "the exec wrote on the host"
    );
    init.kill().unwrap();
    init.wait().unwrap();
    drop(held);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn an_exec_into_a_container_with_a_user_namespace_never_works_outside_its_root() {
    require_root();
    // The trampoline enters the user namespace and changes directory itself: the same
    // check holds there, and on the copy path.
    let root = tempfile::tempdir().unwrap();
    let mut init = cmd("sleep", &["60"]);
    let init = container(root.path(), &mut init)
        .unshare(NsType::USER | NsType::MNT | NsType::PID)
        .uid_map(0, 0, 1)
        .gid_map(0, 0, 1);
    let mut init = init.spawn().unwrap();
    let types = NsType::USER | NsType::MNT | NsType::PID;
    let target = Target::pin(init.pid(), types).unwrap();
    let link = root.path().join("work");
    std::os::unix::fs::symlink("/proc/self/fd/7", &link).unwrap_or_else(|_| {
        let inside = format!("/proc/{}/root/work", init.pid());
        std::os::unix::fs::symlink("/proc/self/fd/7", inside).unwrap();
    });
    let host = tempfile::tempdir().unwrap();
    for by_copy in [false, true] {
        let given: OwnedFd = std::fs::File::open(host.path()).unwrap().into();
        let mut exec = sh(ESCAPE);
        exec.enter(&target, types).current_dir("/work").fd(7, given);
        if by_copy {
            exec.user_entry_by_copy_for_tests();
        } else {
            exec.user_entry_by_trampoline_for_tests();
        }
        assert_chdir_refused(exec.spawn(), 1);
        assert!(
            !host.path().join("escaped").exists(),
            "the exec wrote on the host (by copy: {by_copy})"
        );
    }
    init.kill().unwrap();
    init.wait().unwrap();
}

/// Every way a mount can be made: both mount APIs, and (with the test hooks) both
/// resolutions, `openat2` and the walk used before Linux 5.6.
fn mount_ways() -> Vec<(&'static str, MountApi, bool)> {
    let mut ways = vec![
        ("new API, openat2", MountApi::New, false),
        ("mount(2), openat2", MountApi::Classic, false),
    ];
    if cfg!(feature = "test-hooks") {
        ways.push(("new API, walk", MountApi::New, true));
        ways.push(("mount(2), walk", MountApi::Classic, true));
    }
    ways
}

fn way(c: &mut NsCommand, api: MountApi, walk: bool) -> &mut NsCommand {
    c.mount_api(api);
    #[cfg(feature = "test-hooks")]
    if walk {
        c.resolve_by_walk_for_tests();
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = walk;
    c
}

fn assert_mount_refused(result: Result<Child, Error>, errno: i32, how: &str) {
    match result {
        Err(Error::Step {
            step: Step::Mount,
            errno: e,
            ..
        }) if e == errno => {}
        Err(e) => panic!("{how}: expected a refused mount ({errno}), got {e}"),
        Ok(mut child) => {
            let status = child.wait();
            panic!("{how}: the mount was made: {status:?}")
        }
    }
}

/// Every entry of `dir`, recursively, for "nothing was made here" checks.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.path().display().to_string());
        if e.file_type().unwrap().is_dir() {
            out.extend(listing(&e.path()));
        }
    }
    out.sort();
    out
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn links_to_host_paths_never_take_a_mount_or_a_new_file_outside_the_root() {
    require_root();
    for (how, api, walk) in mount_ways() {
        // etc -> <host dir>: the file a bind needs would be made in the host directory.
        let host = tempfile::tempdir().unwrap();
        let secret = tempfile::NamedTempFile::new().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(host.path(), root.path().join("etc")).unwrap();
        let mut c = sh("true");
        container(root.path(), &mut c).mount(
            Mount::bind(secret.path(), root.path().join("etc/resolv.conf"))
                .recursive(false)
                .read_only()
                .create_file(),
        );
        assert_mount_refused(way(&mut c, api, walk).spawn(), libc::ENOENT, how);
        assert!(listing(host.path()).is_empty(), "{how}: made on the host");

        // run -> /proc/self/fd/N, N a host directory the caller holds: a magic link.
        let held = std::fs::File::open(host.path()).unwrap();
        let root = tempfile::tempdir().unwrap();
        let link = format!("/proc/self/fd/{}", held.as_raw_fd());
        std::os::unix::fs::symlink(&link, root.path().join("run")).unwrap();
        let mut c = sh("true");
        container(root.path(), &mut c)
            .mount(Mount::tmpfs(root.path().join("run/secrets")).create_dir());
        let result = way(&mut c, api, walk).spawn();
        assert!(
            result.is_err(),
            "{how}: a mount through a magic link was made"
        );
        assert!(listing(host.path()).is_empty(), "{how}: made on the host");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn links_in_the_image_resolve_as_the_container_sees_them() {
    require_root();
    for (how, api, walk) in mount_ways() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("data/etc")).unwrap();
        // An absolute link is the container's: /etc is /data/etc inside the root.
        std::os::unix::fs::symlink("/data/etc", r.join("etc")).unwrap();
        // `..` never climbs above the root.
        std::os::unix::fs::symlink("../../../../../../..", r.join("up")).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "from the host\n").unwrap();
        let mut c = sh("cat /etc/hosts.bound; ls -d /made");
        container(r, &mut c)
            .mount(
                Mount::bind(file.path(), r.join("etc/hosts.bound"))
                    .recursive(false)
                    .read_only()
                    .create_file(),
            )
            .mount(Mount::tmpfs(r.join("up/up/made")).create_dir());
        let out = stdout_of(way(&mut c, api, walk));
        assert_eq!(out, "from the host\n/made\n", "{how}");
        assert!(r.join("data/etc/hosts.bound").is_file(), "{how}");
        assert!(r.join("made").is_dir(), "{how}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_link_loop_is_a_typed_error() {
    require_root();
    for (how, api, walk) in mount_ways() {
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("loop2", root.path().join("loop1")).unwrap();
        std::os::unix::fs::symlink("/loop1", root.path().join("loop2")).unwrap();
        let mut c = sh("true");
        container(root.path(), &mut c)
            .mount(Mount::tmpfs(root.path().join("loop1/x")).create_dir());
        assert_mount_refused(way(&mut c, api, walk).spawn(), libc::ELOOP, how);
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_link_swapped_while_containers_start_never_takes_a_mount_outside_the_root() {
    require_root();
    use std::sync::atomic::{AtomicBool, Ordering};
    for (how, api, walk) in mount_ways() {
        let host = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path().to_owned();
        std::fs::create_dir(r.join("inside")).unwrap();
        std::os::unix::fs::symlink("/inside", r.join("data")).unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                // Swap `data` between a directory of the root and one of the host.
                let tmp = r.join("data.new");
                let mut to_host = true;
                while !stop.load(Ordering::Relaxed) {
                    let target: &Path = if to_host {
                        host.path()
                    } else {
                        Path::new("/inside")
                    };
                    let _ = std::fs::remove_file(&tmp);
                    std::os::unix::fs::symlink(target, &tmp).unwrap();
                    std::fs::rename(&tmp, r.join("data")).unwrap();
                    to_host = !to_host;
                }
            });
            // Stops the swapper however this thread leaves (a failed assertion too).
            struct Stop<'a>(&'a AtomicBool);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
            let _stop = Stop(&stop);
            for _ in 0..100 {
                let mut c = sh("true");
                container(&r, &mut c).mount(Mount::tmpfs(r.join("data/sub")).create_dir());
                match way(&mut c, api, walk).spawn() {
                    Ok(mut child) => assert!(child.wait().unwrap().success(), "{how}"),
                    // The link was away (on the host, or mid-swap) at that instant.
                    Err(Error::Step {
                        step: Step::Mount,
                        errno: libc::ENOENT,
                        ..
                    }) => {}
                    Err(e) => panic!("{how}: {e}"),
                }
            }
        });
        assert!(listing(host.path()).is_empty(), "{how}: made on the host");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn waiting_for_a_killed_containers_init_never_waits_on_the_caller() {
    require_root();
    use std::os::unix::process::ExitStatusExt;
    for how in ["wait", "drop"] {
        let mut init = cmd("sleep", &["60"]);
        let mut init = init.unshare(NsType::PID).spawn().unwrap();
        let target = Target::pin(init.pid(), NsType::PID).unwrap();
        // An exec into the container: the caller's child, in the container's namespace.
        let mut exec = cmd("sleep", &["60"])
            .enter(&target, NsType::PID)
            .spawn()
            .unwrap();
        init.kill().unwrap();
        // The dying init waits until the exec is reaped; only the caller can reap it.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let status = match how {
                "wait" => Some(init.wait().unwrap()),
                _ => {
                    drop(init);
                    None
                }
            };
            let _ = done.send(status);
        });
        match finished.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(status) => {
                if let Some(status) = status {
                    assert_eq!(status.signal(), Some(libc::SIGKILL), "{how}");
                }
            }
            Err(_) => {
                // Free the init's thread before failing.
                let _ = exec.wait();
                panic!("{how}: the init's wait waited on the caller itself");
            }
        }
        // The exec's own handle still tells its status.
        let status = exec.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{how}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn closure_children_are_not_dumpable_unless_asked() {
    require_root();
    // SAFETY: the closure only makes a prctl.
    let dumpable = |c: &mut NsCommand| unsafe {
        c.spawn_fn(|| libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0))
            .unwrap()
            .wait()
            .unwrap()
            .code()
    };
    let mut plain = NsCommand::new("closure");
    plain.unshare(NsType::PID | NsType::UTS);
    assert_eq!(dumpable(&mut plain), Some(0));
    // A change of credentials resets the flag (to fs.suid_dumpable): set again after it.
    let mut as_nobody = NsCommand::new("closure");
    as_nobody.unshare(NsType::PID).uid(65534).gid(65534);
    assert_eq!(dumpable(&mut as_nobody), Some(0));
    let mut asked = NsCommand::new("closure");
    asked.unshare(NsType::PID).dumpable(true);
    assert_eq!(dumpable(&mut asked), Some(1));
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn runc_defaults_mask_and_protect_proc_and_sys() {
    require_root();
    for (how, api, walk) in mount_ways() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir(r.join("sys")).unwrap();
        let script = "stat -c '%F %t,%T' /proc/keys; ls -A /sys/firmware | wc -l; \
                      grep -E ' /(sys|proc/sys) ' /proc/self/mountinfo | cut -d' ' -f5,6; \
                      echo x > /proc/sys/kernel/hostname 2>/dev/null && echo wrote || echo refused";
        let mut c = sh(script);
        container(r, &mut c)
            .unshare(NsType::MNT | NsType::PID | NsType::UTS | NsType::NET)
            .mount(Mount::sysfs(r.join("sys")));
        for m in Mount::container_defaults(r) {
            c.mount(m);
        }
        let out = stdout_of(way(&mut c, api, walk));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0], "character special file 1,3",
            "{how}: /proc/keys: {out}"
        );
        assert_eq!(lines[1], "0", "{how}: /sys/firmware shows entries: {out}");
        assert!(
            lines.iter().any(|l| l.starts_with("/sys ro,")),
            "{how}: sysfs not read-only: {out}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("/proc/sys ro,")),
            "{how}: /proc/sys not read-only: {out}"
        );
        assert_eq!(lines.last(), Some(&"refused"), "{how}: {out}");
    }
}

/// A program of the image whose interpreter is `/proc/self/exe`: during its `execve` that is
/// whatever the executing process ran before, which must never be the caller's binary.
fn self_exe_script(root: &Path) {
    std::fs::write(root.join("evil"), "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(
        root.join("evil"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
}

/// Runs the command and tells whether the caller's binary ran as the interpreter: this test
/// binary, run with the script's path as its filter, says "running 0 tests".
fn ran_the_callers_binary(c: &mut NsCommand) -> bool {
    let out = c.stdout(Stdio::piped()).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("running 0 tests")
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_program_of_the_image_never_runs_the_callers_binary() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    self_exe_script(root.path());
    let mut c = NsCommand::new("/evil");
    container(root.path(), &mut c).kill_on_drop(true);
    assert!(
        !ran_the_callers_binary(&mut c),
        "#!/proc/self/exe ran the caller"
    );
    // The same spawn executing the program directly shows the hole closed above.
    #[cfg(feature = "test-hooks")]
    {
        let mut c = NsCommand::new("/evil");
        container(root.path(), &mut c)
            .kill_on_drop(true)
            .without_exec_relay_for_tests();
        assert!(
            ran_the_callers_binary(&mut c),
            "the control did not run the caller"
        );
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn an_exec_into_a_running_container_never_runs_the_callers_binary() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let mut init = cmd("sleep", &["60"]);
    let mut init = container(root.path(), &mut init).spawn().unwrap();
    let target = Target::pin(init.pid(), NsType::MNT | NsType::PID).unwrap();
    // The container puts the program in its own filesystem.
    let inside = PathBuf::from(format!("/proc/{}/root", init.pid()));
    self_exe_script(&inside);
    let mut exec = NsCommand::new("/evil");
    exec.enter(&target, NsType::MNT | NsType::PID)
        .kill_on_drop(true);
    let ran = ran_the_callers_binary(&mut exec);
    #[cfg(feature = "test-hooks")]
    let control = {
        let mut exec = NsCommand::new("/evil");
        exec.enter(&target, NsType::MNT | NsType::PID)
            .kill_on_drop(true)
            .without_exec_relay_for_tests();
        ran_the_callers_binary(&mut exec)
    };
    init.kill().unwrap();
    init.wait().unwrap();
    assert!(!ran, "#!/proc/self/exe in the container ran the caller");
    #[cfg(feature = "test-hooks")]
    assert!(control, "the control did not run the caller");
}

/// A word of the caller's memory that a container's root tries to overwrite.
static WORD: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// The attacker's loop, in a copy of this process inside the container: every process it
/// sees in its `/proc` whose memory it can open gets 42 written at `WORD`'s address (the
/// same in every copy). Raw calls and stack buffers only (it is a forked copy of a
/// multithreaded program); ends when `stop` (a pipe's read end) becomes readable, or with
/// 150 as soon as a process holds a descriptor of the caller's marker file ([`MARKER`]).
fn attack(stop: libc::c_int) -> libc::c_int {
    let me = std::process::id();
    let address = WORD.as_ptr() as i64;
    let mut opened = 0;
    loop {
        let mut pfd = libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polling one live pollfd without waiting.
        if unsafe { libc::poll(&mut pfd, 1, 0) } != 0 {
            return opened.min(100);
        }
        // SAFETY: raw directory reads into a stack buffer.
        let dir = unsafe {
            libc::open(
                c"/proc".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if dir < 0 {
            return 101;
        }
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: `dir` is open until it is closed below.
            let listed = ns_sys::fd::getdents64(unsafe { BorrowedFd::borrow_raw(dir) }, &mut buf);
            let n = match listed {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            let mut off = 0usize;
            while off < n {
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                let name = &buf[off + 19..off + reclen];
                let len = name.iter().position(|b| *b == 0).unwrap_or(name.len());
                let name = &name[..len];
                off += reclen;
                if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
                    continue;
                }
                let mut path = [0u8; 64];
                let parts: [&[u8]; 3] = [b"/proc/", name, b"/mem\0"];
                let mut p = 0;
                for part in parts {
                    path[p..p + part.len()].copy_from_slice(part);
                    p += part.len();
                }
                let pid: u32 = name.iter().fold(0, |a, d| a * 10 + u32::from(d - b'0'));
                if pid == me || pid == 1 {
                    continue;
                }
                if holds_marker(name) {
                    return 150;
                }
                // SAFETY: a NUL-terminated path; a plain write at an offset.
                unsafe {
                    let fd = libc::open(path.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC);
                    if fd >= 0 {
                        opened += 1;
                        let v = 42u32.to_ne_bytes();
                        libc::pwrite(fd, v.as_ptr().cast(), 4, address);
                        libc::close(fd);
                    }
                }
            }
        }
        // SAFETY: closing the directory opened above.
        unsafe { libc::close(dir) };
    }
}

/// Part of the name of a file the caller holds open during the attacks: a process of the
/// container whose descriptors name it holds one of the caller's.
const MARKER: &[u8] = b"ns-hostile-caller-marker";

/// Whether process `pid` (its decimal digits) holds a descriptor of a file whose name has
/// [`MARKER`] in it, as `/proc/PID/fd` shows it. Raw calls and stack buffers only.
fn holds_marker(pid: &[u8]) -> bool {
    let mut path = [0u8; 64];
    let parts: [&[u8]; 3] = [b"/proc/", pid, b"/fd\0"];
    let mut p = 0;
    for part in parts {
        path[p..p + part.len()].copy_from_slice(part);
        p += part.len();
    }
    // SAFETY: a NUL-terminated path.
    let dir = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return false;
    }
    let mut found = false;
    let mut buf = [0u8; 4096];
    // SAFETY: `dir` is open until it is closed below.
    while let Ok(n) = ns_sys::fd::getdents64(unsafe { BorrowedFd::borrow_raw(dir) }, &mut buf) {
        if n == 0 {
            break;
        }
        let mut off = 0usize;
        while off < n {
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let name = &buf[off + 19..off + reclen];
            off += reclen;
            if name[0] == b'.' {
                continue;
            }
            let mut target = [0u8; 512];
            // SAFETY: a NUL-terminated name in the entry, a stack buffer.
            let len = unsafe {
                libc::readlinkat(
                    dir,
                    name.as_ptr().cast(),
                    target.as_mut_ptr().cast(),
                    target.len(),
                )
            };
            if len > 0
                && target[..len as usize]
                    .windows(MARKER.len())
                    .any(|w| w == MARKER)
            {
                found = true;
            }
        }
    }
    // SAFETY: closing the directory opened above.
    unsafe { libc::close(dir) };
    found
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_container_with_cap_sys_ptrace_finds_nothing_of_the_caller_in_an_exec() {
    require_root();
    // The caller holds a file open (close-on-exec, as every library descriptor is).
    let dir = tempfile::tempdir().unwrap();
    let marker = std::fs::File::create(dir.path().join("ns-hostile-caller-marker")).unwrap();
    let mut init = cmd("sleep", &["600"]);
    let mut init = init
        .unshare(NsType::PID | NsType::MNT | NsType::NET)
        .mount(Mount::proc("/proc"))
        .spawn()
        .unwrap();
    let all = NsType::PID | NsType::MNT | NsType::NET;
    let target = Target::pin(init.pid(), all).unwrap();
    let (stop_r, stop_w) = {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both are new and ours.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    };
    // The container's root with every capability, CAP_SYS_PTRACE among them.
    let mut attacker = NsCommand::new("attacker");
    attacker.enter(&target, all).fd(3, stop_r).dumpable(true);
    // SAFETY: the closure makes raw system calls on stack buffers only.
    let mut attacker = unsafe { attacker.spawn_fn(|| attack(3)) }.unwrap();
    let mut result = Ok(());
    for i in 0..400 {
        let mut c = cmd("true", &[]);
        c.enter(&target, all);
        // Half with the container's capabilities only (no CAP_SYS_PTRACE), with a filter.
        if i % 2 == 1 {
            let caps = [Capability::CAP_CHOWN, Capability::CAP_KILL];
            for set in [CapSet::Bounding, CapSet::Permitted, CapSet::Effective] {
                c.capabilities(set, caps);
            }
            c.no_new_privs(true).seccomp_filter(
                ns_container::seccomp::deny(&[libc::SYS_ptrace], libc::EPERM).unwrap(),
            );
        }
        let status = c.status();
        if WORD.load(std::sync::atomic::Ordering::SeqCst) != 1 {
            result = Err(format!(
                "the container wrote into the caller's memory (spawn {i})"
            ));
            break;
        }
        assert!(status.unwrap().success());
    }
    drop(stop_w);
    attacker.kill().unwrap();
    let status = attacker.wait().unwrap();
    init.kill().unwrap();
    init.wait().unwrap();
    drop(marker);
    result.unwrap();
    assert_ne!(
        status.code(),
        Some(150),
        "a process of the container held a descriptor of the caller's"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_root_containers_root_cannot_write_into_the_caller_through_an_exec() {
    require_root();
    // runc's default capabilities: no CAP_SYS_PTRACE.
    let runc = [
        Capability::CAP_CHOWN,
        Capability::CAP_DAC_OVERRIDE,
        Capability::CAP_FSETID,
        Capability::CAP_FOWNER,
        Capability::CAP_MKNOD,
        Capability::CAP_NET_RAW,
        Capability::CAP_SETGID,
        Capability::CAP_SETUID,
        Capability::CAP_SETFCAP,
        Capability::CAP_SETPCAP,
        Capability::CAP_NET_BIND_SERVICE,
        Capability::CAP_SYS_CHROOT,
        Capability::CAP_KILL,
        Capability::CAP_AUDIT_WRITE,
    ];
    let mut init = cmd("sleep", &["600"]);
    let mut init = init
        .unshare(NsType::PID | NsType::MNT)
        .mount(Mount::proc("/proc"))
        .spawn()
        .unwrap();
    let all = NsType::PID | NsType::MNT;
    let target = Target::pin(init.pid(), all).unwrap();
    let (stop_r, stop_w) = {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both are new and ours.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    };
    let stop = stop_r.as_raw_fd();
    // The container's root, with runc's capabilities, in the container.
    let mut attacker = NsCommand::new("attacker");
    attacker.enter(&target, all).fd(3, stop_r).dumpable(true);
    for set in [CapSet::Bounding, CapSet::Permitted, CapSet::Effective] {
        attacker.capabilities(set, runc);
    }
    let _ = stop;
    // SAFETY: the closure makes raw system calls on stack buffers only.
    let mut attacker = unsafe { attacker.spawn_fn(|| attack(3)) }.unwrap();
    let mut result = Ok(());
    for _ in 0..300 {
        let mut c = cmd("true", &[]);
        c.enter(&target, all).no_new_privs(true);
        for set in [CapSet::Bounding, CapSet::Permitted, CapSet::Effective] {
            c.capabilities(set, runc);
        }
        let status = c.status();
        if WORD.load(std::sync::atomic::Ordering::SeqCst) != 1 {
            result = Err("the container wrote into the caller's memory");
            break;
        }
        assert!(status.unwrap().success());
    }
    // The attacker holds a copy of the pipe's write end too (a closure child keeps the
    // caller's descriptors): it is stopped by signal.
    drop(stop_w);
    attacker.kill().unwrap();
    attacker.wait().unwrap();
    init.kill().unwrap();
    init.wait().unwrap();
    result.unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_callers_memory_is_dumpable_again_after_spawns_into_a_pid_namespace() {
    require_root();
    if !alone("the_callers_memory_is_dumpable_again_after_spawns_into_a_pid_namespace") {
        return;
    }
    let dumpable = || {
        // SAFETY: a prctl query.
        unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }
    };
    assert_eq!(dumpable(), 1, "the test process starts dumpable");
    let mut init = cmd("sleep", &["60"]);
    let mut init = init.unshare(NsType::PID).spawn().unwrap();
    let target = Target::pin(init.pid(), NsType::PID).unwrap();
    // From two threads at once, overlapping windows.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..50 {
                    let status = cmd("true", &[]).enter(&target, NsType::PID).status();
                    assert!(status.unwrap().success());
                }
            });
        }
    });
    assert_eq!(dumpable(), 1, "the window was not closed");
    // A failed spawn closes it too.
    assert!(cmd("/nonexistent", &[])
        .enter(&target, NsType::PID)
        .spawn()
        .is_err());
    assert_eq!(dumpable(), 1, "a failed spawn left the window open");
    init.kill().unwrap();
    init.wait().unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn procfs_sysfs_and_masks_are_never_reached_through_a_link() {
    require_root();
    for (how, api, walk) in mount_ways() {
        // proc -> elsewhere: procfs would land where a later mask no longer looks.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("elsewhere", root.path().join("proc")).unwrap();
        let mut c = sh("true");
        container(root.path(), &mut c);
        assert_mount_refused(way(&mut c, api, walk).spawn(), libc::ELOOP, how);
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_read_only_bind_onto_a_link_of_the_image_is_made_and_read_only() {
    require_root();
    for (how, api, walk) in mount_ways() {
        // Images often make /etc/resolv.conf a link; a runtime binds its own over it.
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("run")).unwrap();
        std::fs::write(r.join("run/resolv.conf"), "the image's\n").unwrap();
        std::os::unix::fs::symlink("../run/resolv.conf", r.join("etc/resolv.conf")).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "the runtime's\n").unwrap();
        let mut c =
            sh("cat /etc/resolv.conf; echo x > /etc/resolv.conf && echo wrote || echo refused");
        container(r, &mut c).mount(
            Mount::bind(file.path(), r.join("etc/resolv.conf"))
                .recursive(false)
                .read_only(),
        );
        let out = stdout_of(way(&mut c, api, walk));
        assert_eq!(out, "the runtime's\nrefused\n", "{how}");
        assert_eq!(
            std::fs::read_to_string(file.path()).unwrap(),
            "the runtime's\n",
            "{how}"
        );
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_seccomp_profile_that_refuses_openat2_still_resolves_inside_the_root() {
    require_root();
    in_child(|| {
        // Older container profiles answer EPERM for every call they do not list.
        common::deny(libc::SYS_openat2, libc::EPERM)?;
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        let r = root.path();
        std::fs::create_dir(r.join("inside")).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink("/inside", r.join("data")).map_err(|e| e.to_string())?;
        let mut c = sh("grep -q ' /inside/sub ' /proc/self/mountinfo");
        container(r, &mut c).mount(Mount::tmpfs(r.join("data/sub")).create_dir());
        let out = c.output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("{:?}", out.status));
        }
        Ok(())
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_filter_that_refuses_execveat_still_runs_a_containers_program() {
    require_root();
    // The relay is executed with execveat; a container's seccomp profile may refuse that.
    let root = tempfile::tempdir().unwrap();
    let mut c = sh("echo ran");
    container(root.path(), &mut c)
        .no_new_privs(true)
        .seccomp_filter(ns_container::seccomp::deny(&[libc::SYS_execveat], libc::EPERM).unwrap());
    assert_eq!(stdout_of(&mut c), "ran\n");
    // A missing program under it is still a typed failure of its own exec.
    let mut c = NsCommand::new("/no/such/program");
    container(root.path(), &mut c)
        .no_new_privs(true)
        .seccomp_filter(ns_container::seccomp::deny(&[libc::SYS_execveat], libc::EPERM).unwrap());
    match c.spawn() {
        Err(Error::Exec { errno, .. }) => assert_eq!(errno, libc::ENOENT),
        other => panic!("expected the program's ENOENT, got {other:?}"),
    }
}
