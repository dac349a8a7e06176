//! `cargo xtask <task>`: the workspace's project tasks, in plain Rust.
//!
//! - `test-root`: every test of the workspace, the privileged ones included, as root.
//! - `ci`: formatting, clippy, rustdoc (all with warnings as errors), then `test-root`.
//! - `bench`: the benchmarks (`cargo bench`), which print their own figures.
//! - `torture`: spawning used adversarially (see `torture.rs`); `ci` runs its short form.
//! - `two-copies`: two major versions of `ns-sys` linked into one program (`ci` runs it).

#[path = "../../ns-core/tests/support/block_clone3.rs"]
mod block_clone3;
mod oci;
mod podman;
mod torture;
mod two_copies;

use std::collections::BTreeSet;
use std::env;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some(hidden) if hidden.starts_with("__") => {
            torture::hidden(&args).unwrap_or_else(|| Err(format!("unknown task {hidden}")))
        }
        Some("torture") => torture_task(args.iter().any(|a| a == "--quick")),
        Some("test-root") => test_root(&args[1..]).map(drop),
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("two-copies") => two_copies::two_copies(),
        Some("podman") => podman_task(),
        Some("oci") => oci::oci_task(),
        Some("oci-bench") => oci::startup(),
        Some("msrv") => msrv(),
        Some("package") => package(),
        _ => Err(
            "usage: cargo xtask <task>\n\n  test-root [FILTER]  run every test, privileged ones included (as root)\n  ci                  fmt --check, clippy -D warnings, check, rustdoc -D warnings, benches build, two-copies, msrv, package, test-root, torture --quick\n  bench [ARGS]        run the benchmarks\n  two-copies          link two major versions of ns-sys into one program and run both\n  msrv                check the libraries with the minimum supported Rust (rust-version)\n  package             cargo publish --dry-run of the three libraries, in dependency order\n  torture [--quick]   spawning under load, failure paths, bad input, pid reuse, fd hygiene, hostile image (as root)\n  podman              podman drives ns-oci: run, exec, logs, ps, pause, stop, rm, run -t (as root)\n  oci                 the OCI conformance suites against ns-oci: runtime-tools validation, runc's integration tests (as root)\n  oci-bench           ns-oci's start-up against runc and crun, root and rootless (part of bench; as root)"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.current_dir(workspace_root());
    cmd
}

fn run(what: &str, cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: {what}");
    let status = cmd.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn ci() -> Result<(), String> {
    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run(
        "cargo clippy -D warnings",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run(
        "cargo check (default features)",
        cargo().args(["check", "--workspace", "--lib"]),
    )?;
    run(
        "cargo doc -D warnings",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    run(
        "cargo bench --no-run (the benchmarks link, optimised)",
        cargo().args(["bench", "--workspace", "--no-run"]),
    )?;
    two_copies::two_copies()?;
    msrv()?;
    package()?;
    let tests = test_root(&[])?;
    eprintln!("xtask: torture --quick");
    let torture = torture_task(true);
    let scenarios = torture::SCENARIOS;
    eprintln!("xtask: podman drives ns-oci");
    let podman = podman_task();
    if let Err(e) = &podman {
        eprintln!("xtask: podman: {e}");
    }
    eprintln!("xtask: the OCI conformance suites against ns-oci");
    let suites = oci::suites();
    let runtime = oci::build();
    let (validation, integration) = match (&suites, &runtime) {
        (Ok(s), Ok(r)) => (oci::validation(r, s), oci::runc_integration(r, s)),
        (Err(e), _) | (_, Err(e)) => (Err(e.clone()), Err(e.clone())),
    };
    for result in [&validation, &integration] {
        match result {
            Ok(s) => eprintln!("xtask: {s}"),
            Err(e) => eprintln!("xtask: FAILED {e}"),
        }
    }
    let checks = [
        torture.as_ref().map(|()| scenarios),
        podman.as_ref().map(|()| 1),
        validation.as_ref().map(|_| 1),
        integration.as_ref().map(|_| 1),
    ];
    let passed = tests + checks.iter().filter_map(|c| c.as_ref().ok()).sum::<usize>();
    let failed = checks.iter().filter(|c| c.is_err()).count();
    // One closing line for the whole run: tests, torture scenarios, the podman check and the
    // two conformance suites.
    println!("\nci: {passed} passed, {failed} failed, 0 skipped");
    torture
        .and(podman)
        .and(validation.map(drop))
        .and(integration.map(drop))
}

/// podman drives ns-oci (see `podman.rs`): the runtime built, then checked as root.
fn podman_task() -> Result<(), String> {
    run(
        "cargo build -p ns-oci",
        cargo().args(["build", "-p", "ns-oci"]),
    )?;
    podman::podman_check(&target_dir().join("debug/ns-oci"))
}

/// Cargo's target directory.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The minimum supported Rust of the libraries (the workspace's `rust-version`). Tests,
/// examples, benchmarks and the `tokio` feature need 1.85: their dependencies (tempfile's
/// getrandom, tokio) require it.
const MSRV: &str = "1.82";

/// Checks the three libraries, default features, with the MSRV toolchain, installed with
/// rustup if it is missing. Where it cannot be installed (no rustup, no network) this says so
/// and checks with the current toolchain instead: the build still has to pass, and the
/// `rust-version` field keeps users on older compilers from a confusing failure.
fn msrv() -> Result<(), String> {
    let toolchain = format!("+{MSRV}");
    let have = Command::new("rustup")
        .args(["run", MSRV, "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        || Command::new("timeout")
            .args([
                "180",
                "rustup",
                "toolchain",
                "install",
                MSRV,
                "--profile",
                "minimal",
            ])
            .status()
            .is_ok_and(|s| s.success());
    let libs = [
        "-p",
        "ns-sys",
        "-p",
        "ns-core",
        "-p",
        "ns-container",
        "--lib",
    ];
    let target = workspace_root().join("target/msrv");
    if have {
        let mut cmd = Command::new("cargo");
        cmd.current_dir(workspace_root())
            .arg(&toolchain)
            .arg("check")
            .args(libs)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .env_remove("RUSTC");
        run(
            &format!("cargo {toolchain} check (the libraries, Rust {MSRV})"),
            &mut cmd,
        )
    } else {
        eprintln!(
            "xtask: Rust {MSRV} cannot be installed here; checking with the current toolchain"
        );
        run(
            "cargo check (the libraries)",
            cargo().arg("check").args(libs),
        )
    }
}

/// Packages and verifies the three libraries as crates.io would take them (the workspace
/// form: each is built against the packaged versions of the ones before it).
fn package() -> Result<(), String> {
    // Cargo verifies each crate against the ones before it through a temporary local
    // registry: it unpacks them under $CARGO_HOME/registry/src, and takes a registry crate
    // of the same version as unchanged, so an earlier run's unpacked copies and builds would
    // be reused as they were. Start from neither: the copies are removed, and the builds go
    // to a target directory of their own, emptied first.
    let target = workspace_root().join("target/publish-check");
    let _ = std::fs::remove_dir_all(&target);
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    if let Some(src) = cargo_home.map(|h| h.join("registry/src")) {
        for registry in std::fs::read_dir(&src).into_iter().flatten().flatten() {
            for krate in ["ns-sys", "ns-core", "ns-container"] {
                let unpacked = registry
                    .path()
                    .join(format!("{krate}-{}", env!("CARGO_PKG_VERSION")));
                let _ = std::fs::remove_dir_all(unpacked);
            }
        }
    }
    run(
        "cargo publish --dry-run (ns-sys, ns-core, ns-container)",
        cargo()
            .args([
                "publish",
                "--dry-run",
                "--workspace",
                "--exclude",
                "xtask",
                "--allow-dirty",
            ])
            .env("CARGO_TARGET_DIR", &target),
    )
}

fn torture_task(quick: bool) -> Result<(), String> {
    if euid() != Some(0) {
        return Err("the torture suite creates and enters namespaces: run it as root".to_owned());
    }
    torture::run(quick)
}

fn bench(args: &[String]) -> Result<(), String> {
    if euid() != Some(0) {
        return Err("the benchmarks enter and create namespaces: run them as root".to_owned());
    }
    run(
        "cargo bench",
        cargo()
            .args(["bench", "--workspace", "--benches"])
            .args(args),
    )?;
    // ns-oci's start-up against runc and crun, where they are installed.
    oci::startup()
}

/// A test executable built by cargo, and the package directory it runs in.
struct TestBinary {
    name: String,
    executable: PathBuf,
    package_dir: PathBuf,
}

/// Pulls the string value of `"key":"..."` out of one line of cargo's JSON messages.
fn build_tests() -> Result<Vec<TestBinary>, String> {
    eprintln!("xtask: building the tests");
    let out = cargo()
        .args([
            "test",
            "--workspace",
            "--all-features",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo test --no-run: {e}"))?;
    if !out.status.success() {
        return Err("building the tests failed".to_owned());
    }
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
            continue;
        }
        let (Some(exe), Some(manifest), Some(name)) = (
            message["executable"].as_str(),
            message["manifest_path"].as_str(),
            message["target"]["name"].as_str(),
        ) else {
            continue;
        };
        bins.push(TestBinary {
            name: name.to_owned(),
            executable: PathBuf::from(exe),
            package_dir: Path::new(manifest)
                .parent()
                .unwrap_or(Path::new("."))
                .to_owned(),
        });
    }
    if bins.is_empty() {
        return Err("cargo built no test executables".to_owned());
    }
    Ok(bins)
}

/// Outcome of one test, from libtest's `test NAME ... RESULT` lines.
#[derive(Default)]
struct Tally {
    passed: Vec<String>,
    failed: Vec<String>,
    ignored: Vec<String>,
}

impl Tally {
    fn read_line(&mut self, scope: &str, line: &str) {
        let Some(rest) = line.strip_prefix("test ") else {
            return;
        };
        let Some((name, result)) = rest.rsplit_once(" ... ") else {
            return;
        };
        let id = format!("{scope}::{name}");
        match result.trim() {
            "ok" => self.passed.push(id),
            r if r.starts_with("ignored") => self.ignored.push(id),
            r if r.starts_with("FAILED") => self.failed.push(id),
            _ => {}
        }
    }
}

/// Runs a command, echoes its output and tallies its test lines.
///
/// A process that a test started and left running keeps a copy of the output pipe, so the
/// output never ends: once the test binary has exited, give remaining output a few seconds and
/// then count the binary as failed instead of waiting forever.
fn run_tests(scope: &str, cmd: &mut Command, tally: &mut Tally) -> Result<bool, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{scope}: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut exited: Option<(std::process::ExitStatus, Instant)> = None;
    let mut leftovers = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(line)) => {
                println!("{line}");
                tally.read_line(scope, &line);
            }
            Ok(Err(e)) => return Err(format!("{scope}: reading output: {e}")),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                if exited.is_none() {
                    if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                        exited = Some((status, Instant::now()));
                    }
                }
                if let Some((_, at)) = exited {
                    if at.elapsed() > Duration::from_secs(5) {
                        eprintln!(
                            "xtask: {scope} has exited, but a process it started still holds its \
                             output: a test left a process behind"
                        );
                        leftovers = true;
                        break;
                    }
                }
            }
        }
    }
    let status = match exited {
        Some((status, _)) => status,
        None => child.wait().map_err(|e| e.to_string())?,
    };
    Ok(status.success() && !leftovers)
}

/// Runs every test; returns how many passed (all of them, or an error).
fn test_root(args: &[String]) -> Result<usize, String> {
    if euid() != Some(0) {
        return Err(
            "test-root runs the privileged tests for real and needs root with every namespace \
             type available; run it as root (for example `sudo -E cargo xtask test-root`)"
                .to_owned(),
        );
    }
    let filter: Vec<&str> = args.iter().map(String::as_str).collect();
    let bins = build_tests()?;
    let mut privileged = BTreeSet::new();
    let mut tally = Tally::default();
    let mut ok = true;
    for bin in &bins {
        let scope = format!(
            "{}:{}",
            bin.package_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("?"),
            bin.name
        );
        // The privileged tests are the ones plain `cargo test` skips.
        let list = Command::new(&bin.executable)
            .args(["--list", "--ignored"])
            .args(&filter)
            .current_dir(&bin.package_dir)
            .output()
            .map_err(|e| format!("{scope}: {e}"))?;
        for line in String::from_utf8_lossy(&list.stdout).lines() {
            if let Some(name) = line.strip_suffix(": test") {
                privileged.insert(format!("{scope}::{name}"));
            }
        }
        println!("\nxtask: running {scope}");
        ok &= run_tests(
            &scope,
            Command::new(&bin.executable)
                .arg("--include-ignored")
                .args(&filter)
                .current_dir(&bin.package_dir)
                .env("NS_TEST_ROOT", "1"),
            &mut tally,
        )?;
    }
    println!("\nxtask: running doc tests");
    ok &= run_tests(
        "doc",
        cargo()
            .args(["test", "--workspace", "--all-features", "--doc", "--"])
            .args(&filter)
            .env("NS_TEST_ROOT", "1"),
        &mut tally,
    )?;

    let ran = tally.passed.len() + tally.failed.len();
    let privileged_passed = tally
        .passed
        .iter()
        .filter(|t| privileged.contains(*t))
        .count();
    let missing: Vec<&String> = privileged
        .iter()
        .filter(|t| !tally.passed.contains(t) && !tally.failed.contains(t))
        .collect();
    println!();
    println!(
        "xtask: {ran} tests ran ({} privileged), {} passed, {} failed, {} skipped",
        privileged.len(),
        tally.passed.len(),
        tally.failed.len(),
        tally.ignored.len() + missing.len(),
    );
    for t in &tally.failed {
        println!("xtask: FAILED {t}");
    }
    for t in tally.ignored.iter().chain(missing.iter().copied()) {
        println!("xtask: SKIPPED {t}");
    }
    if !ok || !tally.failed.is_empty() {
        return Err("tests failed".to_owned());
    }
    if !tally.ignored.is_empty() || !missing.is_empty() {
        return Err("some tests did not run; under test-root every test must run".to_owned());
    }
    if privileged_passed != privileged.len() {
        return Err("not every privileged test passed".to_owned());
    }
    Ok(tally.passed.len())
}
