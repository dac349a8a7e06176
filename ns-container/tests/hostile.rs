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
