//! The `nested` and `nsenter` examples, run as programs.
//!
//! In its own test binary: the examples create and destroy whole containers, and the
//! comparisons read process-wide state.

#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ns_container::NsCommand;
use ns_core::NsType;
use support::*;

/// Builds the examples and copies them where any user can run them.
fn examples() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (dir, nested, nsenter, _) = all_examples();
    (dir, nested, nsenter)
}

/// The three examples, built and copied: (dir, nested, nsenter, unshare).
fn all_examples() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "ns-container",
            "--example",
            "nested",
            "--example",
            "nsenter",
            "--example",
            "unshare",
        ])
        .status()
        .expect("running cargo to build the examples");
    assert!(status.success(), "building the examples failed");
    let exe = std::env::current_exe().unwrap();
    let built = exe.parent().unwrap().parent().unwrap().join("examples");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = |name: &str| {
        let to = dir.path().join(name);
        std::fs::copy(built.join(name), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        to
    };
    let (nested, nsenter, unshare) = (copy("nested"), copy("nsenter"), copy("unshare"));
    (dir, nested, nsenter, unshare)
}

fn show(out: &Output) -> String {
    format!(
        "{:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn nested_example_runs_as_root_and_as_an_unprivileged_user() {
    require_root();
    let (_dir, nested, _) = examples();
    let out = Command::new(&nested).output().unwrap();
    assert!(out.status.success(), "as root: {}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("all checks passed"), "{text}");
    assert!(
        text.contains("nested container") && text.contains("/ 1 (nested)"),
        "{text}"
    );
    let containers = "checks: own /proc, own root, reduced capabilities, no_new_privs: ok";
    assert!(text.contains(containers), "{text}");

    let out = Command::new(&nested)
        .uid(1000)
        .gid(1000)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(out.status.success(), "as uid 1000: {}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rootless") && text.contains("all checks passed"),
        "{text}"
    );
    assert!(text.contains(containers), "{text}");
    // Nothing is left behind: no process of ours runs sleep 600 any more.
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.trim() == "sleep 600")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A comparison target: new pid, mount (with its own /proc), uts, net, ipc and cgroup
/// namespaces.
fn target() -> ns_container::Child {
    NsCommand::new("sh")
        .args([
            "-c",
            "mount --make-rprivate / && mount -t proc proc /proc && exec sleep 1000",
        ])
        .unshare(
            NsType::PID | NsType::MNT | NsType::UTS | NsType::NET | NsType::IPC | NsType::CGROUP,
        )
        .hostname("cmp-target")
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits until the target has exec'd sleep (its /proc is mounted by then).
fn settle(pid: libc::pid_t) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        != "sleep"
    {
        assert!(std::time::Instant::now() < deadline, "target did not start");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

const SCRIPT: &str = "hostname; for ns in uts net ipc pid mnt cgroup user time; do \
    readlink /proc/self/ns/$ns; done; cat /proc/1/cmdline | tr '\\0' ' '; echo; \
    grep -c . /proc/self/uid_map; id -u; id -g; pwd; awk '{print int($1 / 86400)}' /proc/uptime";

fn compare(ours: &Path, args: &[&str]) {
    compare_with(ours, Path::new("nsenter"), args, &[]);
}

/// Runs our example and util-linux's program with the same arguments and environment, and
/// requires the same exit status and output.
fn compare_with(ours: &Path, theirs: &Path, args: &[&str], env: &[(String, String)]) {
    let run = |program: &Path| {
        Command::new(program)
            .args(args)
            .envs(env.iter().cloned())
            .output()
            .unwrap()
    };
    let a = run(ours);
    let b = run(theirs);
    assert_eq!(
        a.status.code(),
        b.status.code(),
        "{args:?}\nours: {}\nutil-linux: {}",
        show(&a),
        show(&b)
    );
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout),
        "{args:?}\nours: {}\nutil-linux: {}",
        show(&a),
        show(&b)
    );
    assert!(!a.stdout.is_empty(), "{args:?}: no output");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn nsenter_example_agrees_with_util_linux_nsenter() {
    require_root();
    let (_dir, _, nsenter) = examples();
    let mut t = target();
    settle(t.pid());
    let pid = t.pid().to_string();
    for flags in [
        &["-a"][..],
        &["-u", "-n"],
        &["-p", "-m"],
        &["-m", "-u", "-i", "-n", "-p", "-C"],
        &["-u", "-n", "-S", "1000", "-G", "1000"],
        &["-u", "-F"],
        &["-n", "-p", "-F"],
    ] {
        let mut args = vec!["-t", pid.as_str()];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["sh", "-c", SCRIPT]);
        compare(&nsenter, &args);
    }
    // Exit statuses are passed on.
    compare(&nsenter, &["-t", &pid, "-n", "sh", "-c", "echo x; exit 7"]);
    t.kill().unwrap();
    t.wait().unwrap();

    // A target with its own user namespace: -U makes the program root there, unless
    // --preserve-credentials.
    let mut u = NsCommand::new("sleep")
        .arg("1000")
        .unshare(NsType::USER | NsType::UTS | NsType::TIME)
        .time_offset(ns_container::Clock::Boottime, 86400, 0)
        .uid_map(0, 100000, 65536)
        .gid_map(0, 100000, 65536)
        .hostname("with-user")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    settle(u.pid());
    let pid = u.pid().to_string();
    for flags in [
        &["-U", "-u"][..],
        &["-U", "-u", "-S", "5", "-G", "6"],
        &["-U", "--preserve-credentials", "-u"],
        &["-T", "-u"],
        &["-a"],
    ] {
        let mut args = vec!["-t", pid.as_str()];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["sh", "-c", SCRIPT]);
        compare(&nsenter, &args);
    }
    u.kill().unwrap();
    u.wait().unwrap();
}

/// What a program sees of its namespaces and process, in a form both `unshare`s must agree
/// on: which namespaces are new (against the test's own, in `ORIG_*`), ids and maps, whether
/// it is pid 1 and whether its `/proc` is that of its own pid namespace (`/proc/$$` is the
/// shell itself), the propagation of `/`, the working directory, and the first clock of a time
/// namespace.
const UNSHARE_PROBE: &str = "for ns in uts net ipc pid mnt cgroup user time; do \
    eval orig=\\$ORIG_$ns; [ \"$(readlink /proc/self/ns/$ns)\" = \"$orig\" ] \
    && echo $ns:same || echo $ns:new; done; id -u; id -g; \
    tr -s ' ' < /proc/self/uid_map; [ $$ = 1 ] && echo pid1 || echo not-pid1; \
    [ \"$(readlink /proc/$$/ns/pid)\" = \"$(readlink /proc/self/ns/pid)\" ] \
    && echo own-proc || echo other-proc; \
    grep ' / / ' /proc/self/mountinfo | grep -o -E 'shared|master' | head -1 || echo private; \
    pwd";

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn unshare_example_agrees_with_util_linux_unshare() {
    require_root();
    let (_dir, _, _, unshare) = all_examples();
    let env: Vec<(String, String)> = ["uts", "net", "ipc", "pid", "mnt", "cgroup", "user", "time"]
        .iter()
        .map(|ns| {
            let link = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
            (format!("ORIG_{ns}"), link.to_string_lossy().into_owned())
        })
        .collect();
    for flags in [
        &["-u", "-i", "-n"][..],
        &["-f", "-p", "--mount-proc"],
        &["-f", "-p"],
        &["-f", "-p", "-m"],
        &["-r"],
        &["-U"],
        &["-m"],
        &["-m", "--propagation", "slave"],
        &["-m", "--propagation", "shared"],
        &["-m", "--propagation", "unchanged"],
        &["-f", "-T"],
        &["-C"],
        &["-f", "--root", "/", "--wd", "/tmp"],
        &["--setuid", "1000", "--setgid", "1000"],
        &["-f", "-p", "--kill-child"],
        &["-fpmuinC", "--mount-proc"],
    ] {
        let mut args = flags.to_vec();
        args.extend_from_slice(&["sh", "-c", UNSHARE_PROBE]);
        compare_with(&unshare, Path::new("unshare"), &args, &env);
    }
    // Exit statuses are passed on.
    compare_with(
        &unshare,
        Path::new("unshare"),
        &["-n", "sh", "-c", "echo x; exit 7"],
        &env,
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn every_example_answers_help_and_refuses_unknown_options() {
    require_root();
    let (_dir, nested, nsenter, unshare) = all_examples();
    for exe in [&nested, &nsenter, &unshare] {
        let help = Command::new(exe).arg("--help").output().unwrap();
        assert!(help.status.success(), "{exe:?} --help: {}", show(&help));
        assert!(
            String::from_utf8_lossy(&help.stdout).starts_with("Usage:\n"),
            "{exe:?}: {}",
            show(&help)
        );
        let bad = Command::new(exe).arg("--no-such-option").output().unwrap();
        assert_eq!(bad.status.code(), Some(1), "{exe:?}: {}", show(&bad));
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("--help"),
            "{exe:?}: {}",
            show(&bad)
        );
    }
}
