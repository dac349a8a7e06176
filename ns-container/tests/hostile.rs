//! A hostile image, a hostile caller environment and careless use: what a spawn must never
//! give away (run for real by `cargo xtask test-root`).

mod common;
#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use common::{cmd, sh, stdout_of};
use ns_container::{Child, Error, Mount, NsCommand, RootMode, Step};
use ns_core::caps::{CapSet, Capability};
use ns_core::{NsType, Target};
use support::*;

/// The value of the first line that starts with `key`.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

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

/// A root of read-only binds of the host's `/usr` and `/etc` (with the usual `bin`, `lib`
/// links), a fresh `/proc` and a `/tmp`: enough for `sh` and `sleep`. Returns its mounts.
fn rootfs(dir: &Path) -> Vec<Mount> {
    for link in ["bin", "lib", "lib64", "sbin"] {
        if let Ok(to) = std::fs::read_link(format!("/{link}")) {
            std::os::unix::fs::symlink(to, dir.join(link)).unwrap();
        }
    }
    for sub in ["usr", "etc", "proc", "tmp"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }
    vec![
        Mount::bind("/usr", dir.join("usr"))
            .recursive(false)
            .read_only(),
        Mount::bind("/etc", dir.join("etc"))
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
