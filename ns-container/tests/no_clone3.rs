//! The main spawn cases where `clone3` is refused, as under Docker's and containerd's default
//! seccomp profiles: a filter returns `ENOSYS` for `clone3` in this whole test process (it is
//! the only test of this binary), and every spawn falls back to the legacy `clone`.

#[path = "../../ns-core/tests/support/block_clone3.rs"]
mod block_clone3;
mod common;
#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use block_clone3::block_clone3;

use std::io::Write;

use common::{assert_not_found, fd_count, sh, stdout_of};
use ns_container::{clone, CgroupPlacement, Error, NsCommand};
use ns_core::{getns, NsType, Target};
use support::*;

/// What the command printed, trimmed.
fn trimmed(c: &mut NsCommand) -> String {
    stdout_of(c).trim().to_owned()
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn main_spawn_cases_work_without_clone3() {
    require_root();
    // It compares the descriptor count of the whole process: nothing may run beside it.
    if !alone("main_spawn_cases_work_without_clone3") {
        return;
    }
    // Helpers (made with clone3) and a cgroup, before the filter.
    let helper = Helper::spawn(
        NsType::NET | NsType::UTS | NsType::IPC | NsType::MNT | NsType::PID,
        Some("legacy-target"),
    );
    let cgroup = &cgroup2_root().join(format!("ns-no-clone3-test-{}", std::process::id()));
    let _ = std::fs::remove_dir(cgroup);
    std::fs::create_dir(cgroup).unwrap();
    block_clone3();
    assert!(!ns_sys::clone3_usable());
    // SAFETY: asking for nothing; the filter answers before the kernel reads the arguments.
    let err = unsafe { ns_sys::clone3(&mut ns_sys::clone_args::default()) }.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSYS));
    let fds = fd_count();

    spawn_cases(&helper, cgroup);
    let open: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .map(|e| format!("{:?}", std::fs::read_link(e.path()).unwrap_or_default()))
        .collect();
    assert_eq!(fd_count(), fds, "descriptors leaked: {open:?}");
    std::fs::remove_dir(cgroup).unwrap();
}

fn spawn_cases(helper: &Helper, cgroup: &std::path::Path) {
    // Nothing to enter: the caller's own vfork-style child.
    assert_eq!(trimmed(&mut sh("echo plain")), "plain");

    // Entering a target's namespaces (and its pid namespace, through a fork below).
    let target = Target::pin(
        helper.pid,
        NsType::NET | NsType::UTS | NsType::IPC | NsType::MNT,
    )
    .unwrap();
    let mut c = sh("hostname; readlink /proc/self/ns/net");
    c.enter(
        &target,
        NsType::NET | NsType::UTS | NsType::IPC | NsType::MNT,
    );
    let out = trimmed(&mut c);
    let net = helper.id(NsType::NET);
    assert_eq!(
        out,
        format!("legacy-target\nnet:[{}]", net.ino()),
        "entered namespaces"
    );

    // Entering the target's pid namespace and creating a new one inside it (pid stage).
    let mut c = sh("echo $$");
    c.enter_pid(helper.pid, NsType::PID).unshare(NsType::PID);
    assert_eq!(trimmed(&mut c), "1");

    // New namespaces with a hostname, id maps (the handshake), time offsets.
    let mut c =
        sh("hostname; id -u; cat /proc/self/uid_map | tr -s ' '; cut -d' ' -f1 /proc/uptime");
    c.unshare(NsType::UTS | NsType::USER | NsType::TIME | NsType::PID)
        .hostname("legacy")
        .uid_map(0, 100_000, 1000)
        .gid_map(0, 100_000, 1000)
        .uid(0)
        .gid(0)
        .time_offset(ns_container::Clock::Boottime, 86_400 * 400, 0);
    let out = trimmed(&mut c);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["legacy", "0", " 0 100000 1000"], "{out}");
    let uptime: f64 = lines[3].parse().unwrap();
    assert!(uptime > 86_400.0 * 400.0, "{out}");

    // A cgroup: the legacy clone cannot place the child, so cgroup.procs is written.
    let mut c = sh("grep ^0:: /proc/self/cgroup");
    c.cgroup(cgroup);
    let seen = trimmed(&mut c);
    assert!(
        seen.starts_with("0::/")
            && seen.ends_with(&format!("/ns-no-clone3-test-{}", std::process::id())),
        "{seen}"
    );
    let err = sh("true")
        .cgroup(cgroup)
        .cgroup_placement(CgroupPlacement::CloneInto)
        .spawn()
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");

    // A closure in a new pid namespace; it waits for a byte so that it can be looked at.
    let (gate_r, gate_w) = pipe();
    let r = std::os::fd::AsRawFd::as_raw_fd(&gate_r);
    // SAFETY: the closure only reads from a pipe and calls getpid (raw system calls).
    let mut child = unsafe {
        clone(
            0,
            NsType::empty(),
            move || {
                let mut b = 0u8;
                libc::read(r, &mut b as *mut u8 as *mut libc::c_void, 1);
                libc::syscall(libc::SYS_getpid) as i32
            },
            NsType::PID | NsType::NET,
        )
    }
    .unwrap();
    assert_ne!(
        getns(child.pid(), NsType::NET).unwrap(),
        getns(std::process::id() as libc::pid_t, NsType::NET).unwrap()
    );
    // A byte, not end-of-file: the child holds a copy of the write end too.
    std::fs::File::from(gate_w).write_all(b"g").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1));

    // Failures are typed as with clone3.
    let err = sh("true")
        .unshare(NsType::USER)
        .uid_map(0, 0, 1)
        .uid_map(0, 5, 1)
        .spawn();
    assert!(matches!(err, Err(Error::Step { .. })), "{err:?}");
    let err = NsCommand::new("/nonexistent").spawn().unwrap_err();
    assert_not_found(&err);
}
