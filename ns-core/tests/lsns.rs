//! The `lsns` example against util-linux `lsns`, on the same system state.
//!
//! This file holds one test so that no other test of this crate creates or reaps processes
//! while the two listings are taken (cargo runs test binaries one after another).

mod support;

use std::path::PathBuf;
use std::process::Command;

use ns_core::NsType;
use support::*;

fn example_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "ns-core", "--example", "lsns"])
        .status()
        .expect("running cargo to build the lsns example");
    assert!(status.success(), "building the lsns example failed");
    // target/<profile>/deps/<this test> -> target/<profile>/examples/lsns
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("examples").join("lsns");
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

fn rows(program: &std::path::Path, args: &[&str]) -> Vec<String> {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    rows.sort();
    rows
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn lsns_example_prints_the_same_rows_as_util_linux() {
    require_root();
    let ours = example_binary();
    let theirs = PathBuf::from("lsns");
    // Some namespaces beyond the initial ones, including nested pid and user namespaces.
    let _all = Helper::spawn(NsType::all(), Some("lsns-all"));
    let _net = Helper::spawn(NsType::NET | NsType::UTS, Some("lsns-net"));
    // (arguments, rows at least: the initial namespaces plus the helpers')
    for (args, min_rows) in [
        (&["-n", "-r", "-o", "NS,TYPE,NPROCS,PID"][..], 8 + 8 + 2),
        (&["-n", "-r", "-o", "NS,TYPE,NPROCS,PID,PNS,ONS"], 8 + 8 + 2),
        (&["-n", "-r", "-t", "net", "-o", "NS,TYPE,NPROCS,PID"], 3),
    ] {
        // Processes elsewhere on the machine may come and go between the two listings; a
        // quiet moment gives identical output.
        let mut last = None;
        for _ in 0..20 {
            let (a, b) = (rows(&ours, args), rows(&theirs, args));
            if a == b {
                assert!(a.len() >= min_rows, "{args:?}: too few rows: {a:?}");
                last = None;
                break;
            }
            last = Some((a, b));
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if let Some((a, b)) = last {
            panic!("{args:?}: rows differ\nours:   {a:#?}\nlsns:   {b:#?}");
        }
    }
}
