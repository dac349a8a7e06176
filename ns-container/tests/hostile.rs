//! A hostile image, a hostile caller environment and careless use: what a spawn must never
//! give away (run for real by `cargo xtask test-root`).

mod common;
#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use common::{sh, stdout_of};
use ns_core::caps::{CapSet, Capability};
use ns_core::NsType;
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
