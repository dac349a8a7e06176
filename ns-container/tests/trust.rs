//! Spawning used adversarially: clashing descriptor numbers, processes killed while they
//! wait, children reaped behind the library's back, recycled PIDs, bad type bits, closures
//! that change their runner thread. Each test pins a defect that once existed.

mod common;
#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;
#[cfg(feature = "test-hooks")]
use std::time::Instant;

use common::{cmd, descriptor_holder, fd_count};
use ns_container::{clone, clone_in, Error, NamespaceRunner, NsCommand, Stdio, Step};
use ns_core::{Namespace, NsType, Target};
use support::*;

fn devnull() -> OwnedFd {
    std::fs::File::open("/dev/null").unwrap().into()
}

/// A new user namespace with a map: the spawn shape in which the child waits for its
/// creator's handshake while sharing the caller's memory.
fn handshake(c: &mut NsCommand) -> &mut NsCommand {
    c.unshare(NsType::USER).uid_map(0, 0, 1).gid_map(0, 0, 1)
}

/// Children of `pid` (from /proc).
#[cfg(feature = "test-hooks")]
fn children_of(pid: libc::pid_t) -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid: Option<libc::pid_t> = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// The `n` lowest descriptor numbers not in use: where the next descriptors opened land.
fn lowest_free_fds(n: usize) -> Vec<i32> {
    let open: std::collections::BTreeSet<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    (3..).filter(|fd| !open.contains(fd)).take(n).collect()
}

#[cfg(feature = "test-hooks")]
fn alive(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
        .unwrap_or(false)
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn given_descriptors_never_clobber_the_spawns_own() {
    require_root();
    in_child(|| {
        // Every low number is taken by a given descriptor, so each internal descriptor of
        // the spawn would be overwritten if it were not moved above them first.
        // A failure late in the child's setup (chdir, after the descriptors are moved) must
        // come back as that failure, and nothing of the spawn's own may reach the
        // descriptors given to the child.
        // Shape 2 enters a pid namespace: the status socket, the trampoline's image and the
        // fork page are the spawn's own then.
        let mut helper = Helper::spawn(NsType::PID, None);
        let target = Target::pin(helper.pid, NsType::PID).map_err(|e| e.to_string())?;
        for round in 0..30 {
            let shape = round % 3;
            let mut c = cmd("true", &[]);
            c.current_dir("/nonexistent/dir");
            if shape == 1 {
                handshake(&mut c);
            } else if shape == 2 {
                c.enter(&target, NsType::PID);
            }
            // The spawn's own descriptors take the lowest free numbers: give the child
            // descriptors at exactly those numbers.
            let mut readers = Vec::new();
            let mut writers = Vec::new();
            for _ in 0..16 {
                let (r, w) = pipe();
                // SAFETY: making our own read end non-blocking.
                unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
                readers.push(std::fs::File::from(r));
                writers.push(w);
            }
            let targets = lowest_free_fds(writers.len());
            for (n, w) in targets.iter().zip(writers) {
                c.fd(*n, w);
            }
            let result = c.spawn();
            drop(c);
            match result {
                Err(Error::Step {
                    step: Step::Chdir,
                    errno: libc::ENOENT,
                    ..
                }) => {}
                other => return Err(format!("round {round}, shape {shape}: {other:?}")),
            }
            for (i, mut r) in readers.into_iter().enumerate() {
                let mut leaked = Vec::new();
                let _ = r.read_to_end(&mut leaked);
                if !leaked.is_empty() {
                    return Err(format!(
                        "shape {shape}: {} bytes of the spawn's own records reached fd {}",
                        leaked.len(),
                        targets[i]
                    ));
                }
            }
        }
        // And a program that runs sees every descriptor where it was asked for, and nothing
        // else (`ls` holds one more descriptor for the directory it reads).
        for enter in [false, true] {
            let mut c = cmd("sh", &["-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"]);
            if enter {
                c.enter(&target, NsType::PID);
            } else {
                handshake(&mut c);
            }
            c.stdout(Stdio::piped());
            for n in 3..40 {
                c.fd(n, devnull());
            }
            let out = c.output().map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let want: String = (0..41).map(|n| format!("{n} ")).collect();
            if !out.status.success() || text != want {
                return Err(format!("enter {enter}: {:?}: {text}", out.status));
            }
        }
        helper.kill();
        Ok(())
    })
    .unwrap();
}

#[test]
fn bad_descriptor_numbers_are_refused_before_anything_starts() {
    for n in [i32::MAX, 100_000, -1] {
        let err = cmd("true", &[]).fd(n, devnull()).spawn().unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { reason, .. } if reason.contains(&n.to_string())),
            "{n}: {err:?}"
        );
    }
    let err = cmd("true", &[])
        .fd(5, devnull())
        .fd(5, devnull())
        .spawn()
        .unwrap_err();
    assert!(matches!(&err, Error::Invalid { reason, .. } if reason.contains("twice")));
    let err = cmd("true", &[])
        .stdout(Stdio::null())
        .fd(1, devnull())
        .spawn()
        .unwrap_err();
    assert!(matches!(&err, Error::Invalid { .. }), "{err:?}");
    let err = cmd("tr\0ue", &[]).spawn().unwrap_err();
    assert!(matches!(&err, Error::Invalid { reason, .. } if reason.contains("NUL")));
}

#[cfg(feature = "test-hooks")] // pause_intermediate_for_tests
#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_killed_caller_leaves_no_waiting_process_behind() {
    require_root();
    // The caller (a forked process) is killed while its spawn's child waits for the id maps.
    let (report_r, report_w) = pipe();
    // SAFETY: the child runs test code, then is killed or _exits.
    let caller = unsafe { libc::fork() };
    if caller == 0 {
        let (pause_r, _pause_w) = pipe();
        let me = std::process::id() as libc::pid_t;
        std::thread::spawn(move || {
            // Wait until the intermediate has created the child and paused, report both, die.
            let mut report_w = Some(report_w);
            loop {
                let kids = children_of(me);
                if kids.len() >= 2 {
                    let Some(w) = report_w.take() else { continue };
                    let mut w = std::fs::File::from(w);
                    let text: Vec<String> = kids.iter().map(|k| k.to_string()).collect();
                    let _ = w.write_all(text.join(" ").as_bytes());
                    drop(w);
                    std::thread::sleep(Duration::from_millis(50));
                    // SAFETY: killing this (forked) process.
                    unsafe { libc::kill(me, libc::SIGKILL) };
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let mut c = cmd("sleep", &["30"]);
        handshake(&mut c).pause_intermediate_for_tests(pause_r, true);
        let _ = c.spawn();
        // SAFETY: not reached unless the spawn returned before being killed.
        unsafe { libc::_exit(3) };
    }
    drop(report_w);
    let mut text = String::new();
    std::fs::File::from(report_r)
        .read_to_string(&mut text)
        .unwrap();
    let status = wait(caller);
    assert!(libc::WIFSIGNALED(status), "{status:#x}");
    let left: Vec<libc::pid_t> = text.split(' ').filter_map(|p| p.parse().ok()).collect();
    assert_eq!(left.len(), 2, "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while left.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "processes of the dead caller's spawn still alive: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(feature = "test-hooks")] // children_of
#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_caller_killed_while_its_program_is_made_in_a_pid_namespace_takes_it_along_when_asked() {
    require_root();
    let mut helper = Helper::spawn(NsType::PID, None);
    // A long PATH (under the kernel's 128 KiB for one string): the program's process
    // searches it for milliseconds before its execve, with a parent-death signal asked
    // (without one, the program runs on, as a std child would).
    let path = (0..14000)
        .map(|i| format!("/n/{i}"))
        .chain(["/bin".to_owned(), "/usr/bin".to_owned()])
        .collect::<Vec<_>>()
        .join(":");
    let target = Target::pin(helper.pid, NsType::PID).unwrap();
    // SAFETY: the child runs test code, then is killed or _exits.
    let caller = unsafe { libc::fork() };
    if caller == 0 {
        let me = std::process::id() as libc::pid_t;
        std::thread::spawn(move || loop {
            // Once the spawn has made a process, give it the time to reach the program's
            // search, then die.
            if !children_of(me).is_empty() {
                std::thread::sleep(Duration::from_millis(4));
                // SAFETY: killing this (forked) process.
                unsafe { libc::kill(me, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_micros(200));
        });
        let _ = cmd("sleep", &["3141"])
            .env("PATH", &path)
            .enter(&target, NsType::PID)
            .parent_death_signal(libc::SIGKILL)
            .spawn();
        // SAFETY: not reached unless the spawn returned before being killed.
        unsafe { libc::_exit(3) };
    }
    let status = wait(caller);
    assert!(libc::WIFSIGNALED(status), "{status:#x}");
    // The program never runs for the dead caller, now or once the search would have ended.
    let running = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x003141\x00")
        })
    };
    let until = Instant::now() + Duration::from_secs(3);
    let mut seen = false;
    while Instant::now() < until && !seen {
        seen = running();
        std::thread::sleep(Duration::from_millis(20));
    }
    if seen {
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", "^sleep 3141$"])
            .status();
    }
    helper.kill();
    assert!(
        !seen,
        "the program ran on for a caller that died during its spawn"
    );
}

#[cfg(feature = "test-hooks")] // pause_intermediate_for_tests
#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_spawn_never_waits_for_an_unrelated_process_holding_its_descriptors() {
    require_root();
    {
        let (pause_r, pause_w) = pipe();
        let spawner = std::thread::spawn(move || {
            let mut c = cmd("true", &[]);
            handshake(&mut c).pause_intermediate_for_tests(pause_r, false);
            c.spawn().unwrap().wait().unwrap()
        });
        // Meanwhile a closure child copies the whole descriptor table, the spawn's pipes
        // included, and keeps it for 5 seconds.
        std::thread::sleep(Duration::from_millis(50));
        let mut holder = descriptor_holder(5);
        // A byte, not end-of-file: the holder has a copy of this end too.
        std::fs::File::from(pause_w).write_all(b"g").unwrap();
        let status = spawner.join().unwrap();
        assert!(status.success());
        assert_eq!(
            holder.try_wait().unwrap(),
            None,
            "the spawn waited for the unrelated child"
        );
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn wait_never_returns_a_strangers_status_after_pid_reuse() {
    require_root();
    in_child(|| {
        // A fresh pid namespace, so that PIDs can be recycled on purpose (ns_last_pid).
        // SAFETY: a namespace flag only.
        unsafe { ns_sys::unshare(libc::CLONE_NEWPID) }.map_err(|e| e.to_string())?;
        // SAFETY: the forked child runs test code and _exits.
        let init = unsafe { libc::fork() };
        if init == 0 {
            let code = match reuse_scenario() {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            };
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(code) };
        }
        let status = wait(init);
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else {
            Err(format!("scenario failed: {status:#x}"))
        }
    })
    .unwrap();
}

/// Runs as init of a fresh pid namespace.
fn reuse_scenario() -> Result<(), String> {
    let mut child = cmd("sh", &["-c", "exit 7"])
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.pid();
    // The application reaps it behind the library's back.
    let mut raw = 0;
    // SAFETY: waiting for our own child.
    if unsafe { libc::waitpid(pid, &mut raw, 0) } != pid {
        return Err("raw waitpid failed".into());
    }
    // A stranger takes the same PID and exits with 42.
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
        .map_err(|e| e.to_string())?;
    // SAFETY: the forked child only _exits.
    let stranger = unsafe { libc::fork() };
    if stranger == 0 {
        // SAFETY: leaving the forked child.
        unsafe { libc::_exit(42) };
    }
    if stranger != pid {
        return Err(format!("pid {pid} was not recycled (got {stranger})"));
    }
    std::thread::sleep(Duration::from_millis(50));
    match child.wait() {
        // PIDFD_INFO_EXIT (6.15) still knows the child's own status.
        Ok(status) if status.code() == Some(7) => {}
        Err(e)
            if matches!(
                e.get_ref().and_then(|e| e.downcast_ref::<Error>()),
                Some(Error::ReapedElsewhere { .. })
            ) => {}
        other => return Err(format!("wait gave {other:?}, not the child's own status")),
    }
    // The stranger's status is still its parent's to take.
    let mut raw = 0;
    // SAFETY: waiting for our own child.
    if unsafe { libc::waitpid(stranger, &mut raw, 0) } != stranger
        || std::process::ExitStatus::from_raw(raw).code() != Some(42)
    {
        return Err("the stranger's status was stolen".into());
    }
    Ok(())
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn clone_never_drops_the_closures_captures_in_the_child() {
    require_root();
    struct Noisy(OwnedFd);
    impl Drop for Noisy {
        fn drop(&mut self) {
            // SAFETY: getpid as a raw system call; writing a small buffer.
            let pid = unsafe { libc::syscall(libc::SYS_getpid) } as i32;
            let _ = std::fs::File::from(self.0.try_clone().unwrap()).write_all(&pid.to_ne_bytes());
        }
    }
    let (r, w) = pipe();
    let noisy = Noisy(w);
    // SAFETY: the closure only reads its capture and returns.
    let mut child = unsafe {
        clone(
            0,
            NsType::empty(),
            move || noisy.0.as_raw_fd() - noisy.0.as_raw_fd(),
            NsType::PID,
        )
    }
    .unwrap();
    let child_pid = child.pid();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut buf = Vec::new();
    std::fs::File::from(r).read_to_end(&mut buf).unwrap();
    let droppers: Vec<i32> = buf
        .chunks(4)
        .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        droppers,
        vec![std::process::id() as i32],
        "child {child_pid}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn output_gives_the_child_an_empty_stdin() {
    require_root();
    in_child(|| {
        // Our stdin is a pipe nobody ever writes to or closes.
        let (r, _w) = pipe();
        // SAFETY: replacing this (forked) process's stdin; alarm ends a hang.
        unsafe {
            libc::dup2(r.as_raw_fd(), 0);
            libc::alarm(20);
        }
        let out = cmd("cat", &[]).output().map_err(|e| e.to_string())?;
        if !out.status.success() || !out.stdout.is_empty() {
            return Err(format!("{out:?}"));
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn bits_that_are_no_namespace_type_are_refused_everywhere() {
    // It compares the descriptor count of the whole process: nothing may run beside it.
    if !alone("bits_that_are_no_namespace_type_are_refused_everywhere") {
        return;
    }
    let files = NsType::from_bits_retain(libc::CLONE_FILES);
    let before = fd_count();
    let err = cmd("true", &[])
        .unshare(files)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_err();
    assert!(
        matches!(err, Error::Core(ns_core::Error::UnknownFlags { bits, .. }) if bits == libc::CLONE_FILES),
        "{err:?}"
    );
    // SAFETY: refused before any clone.
    let err = unsafe { clone_in(None, NsType::empty(), || 0, files) }.unwrap_err();
    assert!(
        matches!(err, Error::Core(ns_core::Error::UnknownFlags { .. })),
        "{err:?}"
    );
    // SAFETY: refused before any clone.
    let err = unsafe { clone(1, files | NsType::NET, || 0, NsType::empty()) }.unwrap_err();
    assert!(
        matches!(err, Error::Core(ns_core::Error::UnknownFlags { .. })),
        "{err:?}"
    );
    let vm = NsType::from_bits_retain(libc::CLONE_VM) | NsType::NET;
    let err = Target::pin(std::process::id() as i32, vm).unwrap_err();
    assert!(
        matches!(err, ns_core::Error::UnknownFlags { .. }),
        "{err:?}"
    );
    assert!(matches!(
        ns_core::supported(files),
        Err(ns_core::Error::UnknownFlags { .. })
    ));
    assert!(!files.is_single());
    assert_eq!(fd_count(), before, "the caller's descriptors changed");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn runner_restores_root_and_working_directory() {
    require_root();
    let helper = Helper::spawn(NsType::MNT, None);
    let runner = NamespaceRunner::new().unwrap();
    let home_net = Namespace::current(NsType::NET).unwrap();
    let mnt = Namespace::of_pid(helper.pid, NsType::MNT).unwrap();
    let cwd = std::env::current_dir().unwrap();
    let relative = std::fs::read_dir(".")
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let check = {
        let relative = relative.clone();
        move || {
            (
                std::env::current_dir().unwrap(),
                std::fs::metadata(&relative).is_ok(),
            )
        }
    };
    // A closure in another mount namespace, then one at home: the cwd is back.
    runner.run(&mnt, || 0).unwrap().wait().unwrap();
    let (dir, found) = runner
        .run(&home_net, check.clone())
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!((dir, found), (cwd.clone(), true));
    // A closure that changes directory: undone for the next one.
    runner
        .run(&home_net, || std::env::set_current_dir("/").unwrap())
        .unwrap()
        .wait()
        .unwrap();
    let (dir, found) = runner.run(&home_net, check).unwrap().wait().unwrap();
    assert_eq!((dir, found), (cwd, true));
    assert_eq!(runner.retired(), 0);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn runner_retires_a_thread_whose_credentials_a_closure_changed() {
    require_root();
    let helper = Helper::spawn(NsType::NET, None);
    let net = Namespace::of_pid(helper.pid, NsType::NET).unwrap();
    let runner = NamespaceRunner::new().unwrap();
    runner
        .run(&net, || {
            // SAFETY: raw setresuid changes only this (runner) thread.
            unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) }
        })
        .unwrap()
        .wait()
        .unwrap();
    // The next closures run on a fresh thread, with root's privileges, in the namespace.
    for _ in 0..3 {
        let euid = runner
            // SAFETY: geteuid has no preconditions.
            .run(&net, || unsafe { libc::geteuid() })
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(euid, 0);
    }
    assert_eq!(runner.retired(), 1);
}

#[cfg(feature = "test-hooks")] // pause_intermediate_for_tests
#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn an_intermediate_killed_and_reaped_by_someone_else_is_a_failure() {
    require_root();
    in_child(|| {
        // The application reaps every child it can, as a reaper thread or PID 1 does.
        std::thread::spawn(|| loop {
            let mut status = 0;
            // SAFETY: reaping any child of this (forked) process.
            if unsafe { libc::waitpid(-1, &mut status, libc::__WALL) } < 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let me = std::process::id() as libc::pid_t;
        for after_child in [false, true] {
            let (pause_r, pause_w) = pipe();
            let mut c = cmd("sleep", &["30"]);
            handshake(&mut c).pause_intermediate_for_tests(pause_r, after_child);
            let killer = std::thread::spawn(move || {
                // The paused intermediate is the child still in our user namespace.
                let own = std::fs::read_link("/proc/self/ns/user").ok();
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    for p in children_of(me) {
                        let user = std::fs::read_link(format!("/proc/{p}/ns/user")).ok();
                        let wchan =
                            std::fs::read_to_string(format!("/proc/{p}/wchan")).unwrap_or_default();
                        if user == own && wchan.contains("poll") {
                            // SAFETY: killing our own child.
                            unsafe { libc::kill(p, libc::SIGKILL) };
                            drop(pause_w);
                            return true;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                false
            });
            let result = c.spawn();
            if !killer.join().unwrap() {
                return Err("no paused intermediate".into());
            }
            match result {
                Err(Error::Died { .. }) => {}
                other => return Err(format!("after_child {after_child}: {other:?}")),
            }
        }
        Ok(())
    })
    .unwrap();
}

#[cfg(feature = "test-hooks")] // pause_intermediate_for_tests
#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn nothing_starts_for_a_caller_killed_before_its_child_exists() {
    require_root();
    // One spawn first, so that the kernel probes (one of which starts a short-lived task)
    // are answered before the fork: the only child the caller then makes is the intermediate.
    cmd("true", &[]).unshare(NsType::UTS).status().unwrap();
    let (report_r, report_w) = pipe();
    // SAFETY: the child runs test code, then is killed.
    let caller = unsafe { libc::fork() };
    if caller == 0 {
        let (pause_r, pause_w) = pipe();
        let me = std::process::id() as libc::pid_t;
        std::thread::spawn(move || {
            // The intermediate is paused before it creates the child: report it, die, and
            // only then let the pause end (the intermediate sees the caller gone).
            let mut report_w = Some(report_w);
            loop {
                // The writer is taken only once the intermediate is there: dropped
                // earlier, it would end the report empty.
                let children = children_of(me);
                if let ([p], true) = (&children[..], report_w.is_some()) {
                    let w = report_w.take().expect("checked");
                    let _ = std::fs::File::from(w).write_all(p.to_string().as_bytes());
                    std::thread::sleep(Duration::from_millis(20));
                    // SAFETY: killing this (forked) process; the pause pipe dies with it.
                    unsafe { libc::kill(me, libc::SIGKILL) };
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let mut c = cmd("sleep", &["30"]);
        c.unshare(NsType::UTS)
            .pause_intermediate_for_tests(pause_r, false);
        let _keep = pause_w;
        let _ = c.spawn();
        // SAFETY: not reached unless the spawn returned before being killed.
        unsafe { libc::_exit(3) };
    }
    drop(report_w);
    let mut text = String::new();
    std::fs::File::from(report_r)
        .read_to_string(&mut text)
        .unwrap();
    wait(caller);
    let intermediate: libc::pid_t = text.trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(intermediate) {
        assert!(Instant::now() < deadline, "the intermediate went on");
        std::thread::sleep(Duration::from_millis(10));
    }
    // It ended without creating the program: nothing whose parent was the caller is left.
    assert!(children_of(caller).is_empty());
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn runner_undoes_a_chroot_and_retires_a_thread_a_closure_confined() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let runner = NamespaceRunner::new().unwrap();
    let net = Namespace::current(NsType::NET).unwrap();
    let path = dir.path().to_owned();
    // chroot into a directory without /proc: restored, not retired.
    runner
        .run(&net, move || std::os::unix::fs::chroot(&path).unwrap())
        .unwrap()
        .wait()
        .unwrap();
    let seen = runner
        .run(&net, || std::path::Path::new("/proc/self").exists())
        .unwrap()
        .wait()
        .unwrap();
    assert!(seen);
    assert_eq!(runner.retired(), 0);
    // Dropping a capability from the bounding set, or no_new_privs: retired.
    runner
        .run(&net, || {
            // SAFETY: prctl on this (runner) thread only.
            unsafe {
                libc::prctl(libc::PR_CAPBSET_DROP, 22 /* CAP_SYS_BOOT */, 0, 0, 0)
            }
        })
        .unwrap()
        .wait()
        .unwrap();
    runner
        .run(&net, || {
            // SAFETY: prctl on this (runner) thread only.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }
        })
        .unwrap()
        .wait()
        .unwrap();
    let nnp = runner
        // SAFETY: a prctl query.
        .run(&net, || unsafe {
            libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
        })
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(nnp, 0);
    assert_eq!(runner.retired(), 2);
}

/// The paused intermediate of the spawn running on another thread: the caller's child that
/// is blocked in poll() and is not the program.
#[cfg(feature = "test-hooks")]
fn paused_intermediate(program: &str) -> libc::pid_t {
    let me = std::process::id() as libc::pid_t;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for p in children_of(me) {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            let wchan = std::fs::read_to_string(format!("/proc/{p}/wchan")).unwrap_or_default();
            if comm.trim() != program && wchan.contains("poll") {
                return p;
            }
        }
        assert!(Instant::now() < deadline, "no paused intermediate");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(feature = "test-hooks")] // pause_intermediate_for_tests
#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn tasks_with_a_containers_credentials_never_share_the_callers_memory() {
    require_root();
    in_child(|| {
        // Another test of this process may have made it non-dumpable (a runner closure that
        // changed its thread's uid does): start from a dumpable process.
        // SAFETY: prctl on this (forked) process.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
        let helper = Helper::spawn(NsType::USER | NsType::NET | NsType::TIME, None);
        // A net-only entry shares the caller's memory. So does the intermediate of a user
        // namespace entry that the trampoline finishes: it never holds the container's
        // credentials (it stays in the caller's user namespace), and the trampoline that
        // enters it runs in memory of its own. Entering the user namespace in the
        // intermediate (the copy path), or the time namespace, gives it its own copy, which
        // is not dumpable.
        let my_user_ns = std::fs::read_link("/proc/self/ns/user").map_err(|e| e.to_string())?;
        for (types, by_copy, shared) in [
            (NsType::NET, false, true),
            (NsType::USER | NsType::NET, false, true),
            (NsType::USER | NsType::NET, true, false),
            (NsType::TIME | NsType::NET, false, false),
        ] {
            let target = Target::pin(helper.pid, types).map_err(|e| e.to_string())?;
            let (pause_r, pause_w) = pipe();
            let spawner = std::thread::spawn(move || {
                let mut c = cmd("true", &[]);
                c.enter(&target, types)
                    .pause_intermediate_for_tests(pause_r, false);
                if by_copy {
                    c.user_entry_by_copy_for_tests();
                }
                c.status().map(|s| s.success())
            });
            let intermediate = paused_intermediate("true");
            let same = ns_sys::ns::kcmp(
                std::process::id() as libc::pid_t,
                intermediate,
                ns_sys::ns::KCMP_VM,
                0,
                0,
            )
            .map_err(|e| e.to_string())?;
            let user_ns = std::fs::read_link(format!("/proc/{intermediate}/ns/user"));
            drop(pause_w);
            let ok = spawner.join().unwrap().map_err(|e| e.to_string())?;
            if !ok || (same == 0) != shared {
                return Err(format!(
                    "{types} (by copy: {by_copy}): kcmp(VM) {same}, expected shared {shared}"
                ));
            }
            if shared && user_ns.as_ref().ok() != Some(&my_user_ns) {
                return Err(format!(
                    "{types}: an intermediate sharing our memory is in user namespace \
                     {user_ns:?}, not ours ({my_user_ns:?})"
                ));
            }
            // The caller stays dumpable; an intermediate with its own copy is not.
            // SAFETY: a prctl query.
            if unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) } != 1 {
                return Err(format!("{types}: the caller lost its dumpable flag"));
            }
        }
        // A child that changes its uid and gid has its own memory, so the caller stays
        // dumpable (the kernel marks the memory of such a task non-dumpable).
        let out = cmd("id", &["-u"])
            .uid(1000)
            .gid(1000)
            .stdout(Stdio::piped())
            .output()
            .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&out.stdout).trim() != "1000" {
            return Err(format!("{out:?}"));
        }
        let mut c = cmd("true", &[]);
        c.unshare(NsType::USER)
            .uid_map(0, 0, 1)
            .gid_map(0, 0, 1)
            .uid(0)
            .gid(0);
        if !c.status().map_err(|e| e.to_string())?.success() {
            return Err("uid 0 in a new user namespace".into());
        }
        // SAFETY: a prctl query.
        if unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) } != 1 {
            return Err("a uid change made the caller non-dumpable".into());
        }
        Ok(())
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn wait_and_kill_on_drop_work_through_a_pidfd_made_non_blocking() {
    // AsFd hands out the pidfd's open file: an async runtime may set O_NONBLOCK on it, and a
    // blocking waitid(P_PIDFD) then answers EAGAIN.
    require_root();
    let set_nonblocking = |child: &ns_container::Child| {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(child));
        // SAFETY: changing the status flags of a descriptor the child handle keeps open.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK), 0);
        }
    };
    let mut child = cmd("sh", &["-c", "sleep 0.2; exit 4"]).spawn().unwrap();
    set_nonblocking(&child);
    assert_eq!(child.wait().unwrap().code(), Some(4));
    let child = cmd("sleep", &["30"]).spawn().unwrap();
    set_nonblocking(&child);
    let pid = child.pid();
    drop(child); // kill_on_drop: killed and reaped, not left a zombie
    assert!(
        std::fs::metadata(format!("/proc/{pid}")).is_err(),
        "process {pid} is still there"
    );
}

/// The descriptors of this process that name a memfd called `name`.
fn memfds_named(name: &str) -> Vec<i32> {
    let link = format!("memfd:{name}");
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().contains(&link)))
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect()
}

/// The descriptors of this process that name the trampoline's kept image.
fn kept_images() -> Vec<i32> {
    memfds_named("ns-enter-user")
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_kept_image_closed_or_replaced_behind_the_librarys_back_is_never_executed() {
    require_root();
    // It replaces a descriptor of the whole process by number: nothing may run beside it.
    if !alone("the_kept_image_closed_or_replaced_behind_the_librarys_back_is_never_executed") {
        return;
    }
    // An exec into a mount namespace runs the program through the trampoline.
    let me = Target::pin(std::process::id() as i32, NsType::MNT).unwrap();
    let run = || {
        cmd("true", &[])
            .enter(&me, NsType::MNT)
            .status()
            .unwrap()
            .code()
    };
    let before = fd_count();
    let kept = kept_images();
    assert_eq!(kept.len(), 1, "one kept image after prepare_spawning");
    let n = kept[0];

    // A program that knows nothing of it puts another executable at its number: a memfd
    // holding a script that exits 7, which the next spawn must not execute as the image.
    // SAFETY: a new memfd of this process.
    let impostor = unsafe { libc::memfd_create(c"impostor".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(impostor >= 0);
    // SAFETY: writing a script into the memfd made above.
    let script = b"#!/bin/sh\nexit 7\n";
    assert_eq!(
        unsafe { libc::write(impostor, script.as_ptr().cast(), script.len()) },
        script.len() as isize
    );
    // SAFETY: replacing the kept number by the impostor, as a careless program would.
    assert_eq!(unsafe { libc::dup3(impostor, n, libc::O_CLOEXEC) }, n);
    // SAFETY: closing the memfd's first number; `n` holds it now.
    unsafe { libc::close(impostor) };
    for _ in 0..3 {
        assert_eq!(run(), Some(0), "the impostor ran as the trampoline");
    }
    // The number is the program's now: left alone, still the impostor.
    let link = std::fs::read_link(format!("/proc/self/fd/{n}")).unwrap();
    assert!(link.to_string_lossy().contains("impostor"), "{link:?}");
    // SAFETY: the program closes what it put there.
    unsafe { libc::close(n) };
    let replaced = kept_images();
    assert_eq!(replaced.len(), 1, "{replaced:?}");

    // Closed outright: the next spawn makes and keeps another.
    // SAFETY: closing the library's descriptor behind its back, as a daemon closing every
    // descriptor would.
    unsafe { libc::close(replaced[0]) };
    assert_eq!(run(), Some(0));
    assert_eq!(kept_images().len(), 1);
    assert_eq!(fd_count(), before, "descriptors leaked or lost");
    for _ in 0..3 {
        assert_eq!(run(), Some(0));
    }
    assert_eq!(
        fd_count(),
        before,
        "a spawn leaves its duplicate of the image behind"
    );
}

/// Spawns `rounds` programs into the pid namespace of `target` on each of `threads` threads
/// at once; the pid each spawn reports must be the process that runs its program (whose
/// innermost pid is what the program prints). Returns the first mismatch or failure.
fn programs_have_their_own_pids(
    target: &Target,
    threads: usize,
    rounds: usize,
) -> Result<(), String> {
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<(), String> {
                    for _ in 0..rounds {
                        let mut child = cmd("sh", &["-c", "echo $$; read x; exit 0"])
                            .enter(target, NsType::PID)
                            .stdin(Stdio::piped())
                            .stdout(Stdio::piped())
                            .spawn()
                            .map_err(|e| e.to_string())?;
                        let mut line = String::new();
                        let mut out = child.stdout.take().unwrap();
                        let mut byte = [0u8; 1];
                        while out.read(&mut byte).map_err(|e| e.to_string())? == 1
                            && byte[0] != b'\n'
                        {
                            line.push(byte[0] as char);
                        }
                        let status =
                            std::fs::read_to_string(format!("/proc/{}/status", child.pid()))
                                .map_err(|e| e.to_string())?;
                        let inner = status
                            .lines()
                            .find_map(|l| l.strip_prefix("NSpid:"))
                            .and_then(|p| p.split_whitespace().last())
                            .unwrap_or_default()
                            .to_owned();
                        // Checked before any wait: a handle of another spawn's process
                        // would wait for that one (the handle's drop kills it instead).
                        if inner != line.trim() {
                            return Err(format!(
                                "pid {} runs {inner:?}, the program said {line:?}",
                                child.pid()
                            ));
                        }
                        drop(child.stdin.take());
                        let waited = child.wait().map_err(|e| e.to_string())?;
                        if !waited.success() {
                            return Err(format!("pid {}: {waited:?}", child.pid()));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().unwrap())
    })
}

/// Runs `f` (in a process of its own: `alone`) against a pid namespace whose init is a
/// helper; afterwards, whatever `f` did, kills that namespace and reaps every child of the
/// process, so that a program whose handle was lost to a defect cannot keep the dying init,
/// and the test, waiting.
fn with_a_pid_namespace(name: &str, f: impl FnOnce(&Target) -> Result<(), String>) {
    if !alone(name) {
        return;
    }
    let helper = Helper::spawn(NsType::PID, None);
    let target = Target::pin(helper.pid, NsType::PID).unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&target)));
    drop(target);
    // SAFETY: killing the helper (the namespace's init, and with it every process there),
    // then reaping every child of this process, which runs nothing else.
    unsafe {
        libc::kill(helper.pid, libc::SIGKILL);
        while libc::waitpid(-1, std::ptr::null_mut(), libc::__WALL) > 0 {}
    }
    // Reaped above.
    std::mem::forget(helper);
    match outcome {
        Ok(result) => result.unwrap(),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn concurrent_spawns_into_a_pid_namespace_each_get_their_programs_pid() {
    require_root();
    with_a_pid_namespace(
        "concurrent_spawns_into_a_pid_namespace_each_get_their_programs_pid",
        |target| programs_have_their_own_pids(target, 8, 25),
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_forked_copy_of_the_caller_and_the_caller_spawn_into_pid_namespaces_at_once() {
    require_root();
    with_a_pid_namespace(
        "a_forked_copy_of_the_caller_and_the_caller_spawn_into_pid_namespaces_at_once",
        |target| {
            // The pid page the library keeps exists before the fork, so that the copy shares
            // it; the copy spawns while the caller's threads do.
            programs_have_their_own_pids(target, 1, 1)?;
            // SAFETY: the forked copy spawns on its one thread and leaves with _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let ok = programs_have_their_own_pids(target, 1, 60).is_ok();
                // SAFETY: leaving the forked copy.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            let caller = programs_have_their_own_pids(target, 2, 60);
            let mut status = 0;
            // SAFETY: waiting for the copy forked above.
            if unsafe { libc::waitpid(pid, &mut status, 0) } != pid
                || !libc::WIFEXITED(status)
                || libc::WEXITSTATUS(status) != 0
            {
                return Err(format!("the forked copy's spawns failed: {status:#x}"));
            }
            caller
        },
    );
}

/// The descriptors of this process that name the page the kernel writes spawned pids into.
fn kept_pid_pages() -> Vec<i32> {
    memfds_named("ns-fork-page")
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_kept_pid_page_closed_or_replaced_behind_the_librarys_back_is_never_used() {
    require_root();
    with_a_pid_namespace(
        "the_kept_pid_page_closed_or_replaced_behind_the_librarys_back_is_never_used",
        |target| {
            let before = fd_count();
            let kept = kept_pid_pages();
            if kept.len() != 1 {
                return Err(format!("kept pid pages after prepare_spawning: {kept:?}"));
            }
            let n = kept[0];
            // A program puts /dev/null at its number: mapping it would fail the spawn.
            let null = devnull();
            // SAFETY: replacing the kept number, as a careless program would.
            if unsafe { libc::dup3(null.as_raw_fd(), n, libc::O_CLOEXEC) } != n {
                return Err("dup3".to_owned());
            }
            drop(null);
            programs_have_their_own_pids(target, 1, 3)?;
            let link = std::fs::read_link(format!("/proc/self/fd/{n}")).unwrap();
            if link != std::path::Path::new("/dev/null") {
                return Err(format!("the program's descriptor {n} became {link:?}"));
            }
            // SAFETY: the program closes what it put there.
            unsafe { libc::close(n) };
            let replaced = kept_pid_pages();
            if replaced.len() != 1 {
                return Err(format!(
                    "kept pid pages after the replacement: {replaced:?}"
                ));
            }
            // Closed outright: the next spawn makes and keeps another.
            // SAFETY: closing the library's descriptor behind its back.
            unsafe { libc::close(replaced[0]) };
            programs_have_their_own_pids(target, 1, 3)?;
            let count = fd_count();
            if kept_pid_pages().len() != 1 || count != before {
                return Err(format!("descriptors {before} -> {count}"));
            }
            Ok(())
        },
    );
}

/// Runs `f` in a copy of this process (a raw `clone3`, as a program's own fork would be:
/// none of the library's hooks run) that is pid 1 of a new pid namespace, with a /proc of
/// its own; whether `f` returned true there.
fn in_copy_as_pid_1(f: impl FnOnce() -> bool) -> bool {
    let mut args = ns_sys::clone_args {
        flags: (libc::CLONE_NEWPID | libc::CLONE_NEWNS) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    // SAFETY: a fork-like copy, which runs `f` on its one thread and leaves with _exit.
    let pid = unsafe { ns_sys::clone3(&mut args) }.unwrap();
    if pid == 0 {
        let ok = private_mounts(true).is_ok()
            && std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(false);
        // SAFETY: leaving the copy.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for the copy made above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_copy_with_the_callers_pid_number_never_uses_the_callers_pid_page() {
    require_root();
    // It copies the process: nothing may run beside it.
    if !alone("a_copy_with_the_callers_pid_number_never_uses_the_callers_pid_page") {
        return;
    }
    // A caller that is pid 1 (a container's entrypoint) whose copy is pid 1 of another pid
    // namespace: both spawn into pid namespaces of their own at once, each with its slots.
    let both = in_copy_as_pid_1(|| {
        let spawn_into_own = |threads: usize, rounds: usize| {
            let helper = Helper::spawn(NsType::PID, None);
            let target = Target::pin(helper.pid, NsType::PID).unwrap();
            let ok = programs_have_their_own_pids(&target, threads, rounds).is_ok();
            // SAFETY: killing the helper, and with it whatever a failure left in its
            // namespace, then reaping every child (this copy runs nothing else).
            unsafe {
                libc::kill(helper.pid, libc::SIGKILL);
                while libc::waitpid(-1, std::ptr::null_mut(), libc::__WALL) > 0 {}
            }
            std::mem::forget(helper);
            ok
        };
        // The caller's page exists before its copy is made.
        if !spawn_into_own(1, 1) {
            return false;
        }
        let copy = std::thread::scope(|s| {
            // The copy is made first (from this one thread), then both spawn.
            let copy = s.spawn(|| in_copy_as_pid_1(|| spawn_into_own(1, 100)));
            let caller = spawn_into_own(2, 100);
            copy.join().unwrap() && caller
        });
        copy
    });
    assert!(both, "a spawn read a pid its program does not have");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_refused_pid_namespace_in_a_joined_entry_is_named_as_the_step_that_failed() {
    require_root();
    // It copies the process: nothing may run beside it.
    if !alone("a_refused_pid_namespace_in_a_joined_entry_is_named_as_the_step_that_failed") {
        return;
    }
    let helper = Helper::spawn(NsType::PID | NsType::NET, None);
    let target = Target::pin(helper.pid, NsType::PID | NsType::NET).unwrap();
    // From a copy that is pid 1 of a namespace of its own, the helper's pid namespace is a
    // sibling: the kernel refuses it (EINVAL), and not the net namespace. The child enters
    // both with one setns of the pidfd, which fails as a whole; the error must still name
    // the pid namespace alone, as two calls would.
    let named = in_copy_as_pid_1(|| {
        let err = cmd("true", &[])
            .enter(&target, NsType::NET | NsType::PID)
            .status()
            .unwrap_err();
        matches!(
            &err,
            Error::Enter { cause: ns_core::Error::Invalid { context, .. }, .. }
                if context.ns == NsType::PID
        )
    });
    assert!(named, "the refusal did not name the pid namespace alone");
}
