//! The OCI oracles for `ns-oci` (`cargo xtask oci`, run by `ci`), and its start-up cost
//! against runc and crun (`cargo xtask bench`).
//!
//! The conformance suites and their runners live outside the repository, in the project's
//! shared folder (`../shared/oci` beside the workspace, or `NS_OCI_SUITES`): the
//! runtime-tools validation programs and runc 1.1.5's integration tests, with what runc
//! and crun score on this kind of machine. The goals checked here:
//! - validation: every test that passes for runc or crun passes for `ns-oci`;
//! - runc's integration tests: at least [`RUNC_GOAL`] pass, and every failure is one of
//!   [`EXPECTED_FAILURES`], each with its reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Validation programs `ns-oci` may fail on purpose (none).
const DELIBERATE: &[&str] = &[];

/// The integration goal of the issue.
const RUNC_GOAL: usize = 130;

/// runc integration tests that fail for a reason that is not the runtime's behaviour.
const EXPECTED_FAILURES: &[(&str, &str)] = &[
    ("global --debug", "runc's own debug messages (nsexec, init)"),
    ("global --debug to --log", "runc's own debug messages"),
    ("global --debug to --log --log-format 'text'", "runc's own debug messages"),
    ("global --debug to --log --log-format 'json'", "runc's own debug messages"),
    ("runc --debug exec", "runc's own debug messages"),
    ("runc --debug --log exec", "runc's own debug messages"),
    ("runc -h", "help text naming runc"),
    ("runc command -h", "help text naming runc"),
    ("runc version", "version text naming runc and its commit"),
    ("spec validator", "builds runc's Go sources (not in the suite's copy); fails for runc too"),
    ("runc run (hooks library tests)", "needs a Debian image the offline suite lacks; fails for runc too"),
    ("mask paths [prohibit symlink /proc]", "the suite's busybox has a /proc directory, so its link lands inside it; fails for runc too"),
    ("mask paths [prohibit symlink /sys]", "as above, /sys; fails for runc too"),
    ("update devices [minimal transition rules]", "fails for runc too on this host"),
];

/// Where the suites are: `NS_OCI_SUITES`, else `shared/oci` beside the workspace.
pub fn suites() -> Result<PathBuf, String> {
    let candidates = std::env::var_os("NS_OCI_SUITES")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            super::workspace_root()
                .parent()
                .map(|p| p.join("shared/oci")),
        )
        .chain(std::iter::once(PathBuf::from("/work/shared/oci")));
    for dir in candidates {
        if dir.join("run-validation.sh").exists() {
            return Ok(dir);
        }
    }
    Err(
        "the OCI suites are not found: set NS_OCI_SUITES to the folder holding \
         run-validation.sh and run-runc-integration.sh"
            .to_owned(),
    )
}

/// Builds the runtime as it is deployed: optimised and static (glibc's static-pie, as
/// runc's releases are static), which starts about 0.5 ms sooner than a dynamically
/// linked one, once per command; its path. `--target` keeps the flag off the build
/// scripts and proc-macros, which must stay dynamic.
pub fn build() -> Result<PathBuf, String> {
    let host = host_triple()?;
    super::run(
        "cargo build --release -p ns-oci (static)",
        super::cargo()
            .args(["build", "--release", "-p", "ns-oci", "--target", &host])
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    )?;
    Ok(super::target_dir().join(host).join("release/ns-oci"))
}

/// The host's target triple (`rustc -vV`).
fn host_triple() -> Result<String, String> {
    let out = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV names no host".to_owned())
}

/// The tests a validation results file passes, per program, by description (their numbers
/// shift with what the runtime mounts: `runtimetest` checks each mount it finds).
fn validation_oks(tap: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut program = String::new();
    for line in tap.lines() {
        if let Some(p) = line.strip_prefix("### validation/") {
            program = p.trim_end_matches(".t").to_owned();
        } else if let Some(rest) = line.strip_prefix("ok ") {
            let test = rest.split(" # ").next().unwrap_or(rest);
            let test = test.split_once(" - ").map(|(_, d)| d).unwrap_or(test);
            let test = test.trim().to_owned();
            out.entry(program.clone()).or_default().insert(test);
        }
    }
    out
}

/// The runtime-tools validation suite; `Ok` with its summary when the goal is met.
pub fn validation(runtime: &Path, suites: &Path) -> Result<String, String> {
    let work = super::target_dir().join("oci-validation");
    let out = Command::new("bash")
        .arg(suites.join("run-validation.sh"))
        .arg(runtime)
        .arg(&work)
        .output()
        .map_err(|e| format!("run-validation.sh: {e}"))?;
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    let ours = validation_oks(
        &std::fs::read_to_string(work.join("results.tap")).map_err(|e| e.to_string())?,
    );
    let mut missing = Vec::new();
    for reference in ["validation-runc-1.1.5.tap", "validation-crun-1.8.1.tap"] {
        let text = std::fs::read_to_string(suites.join("reference").join(reference))
            .map_err(|e| format!("{reference}: {e}"))?;
        for (program, oks) in validation_oks(&text) {
            if DELIBERATE.contains(&program.as_str()) {
                continue;
            }
            for test in oks {
                if !ours.get(&program).is_some_and(|o| o.contains(&test)) {
                    missing.push(format!("{program}: {test} (ok for {reference})"));
                }
            }
        }
    }
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        Ok(format!(
            "validation: {last}; every test runc or crun passes passes"
        ))
    } else {
        Err(format!(
            "validation: {last}; {} tests pass for runc or crun and not for ns-oci:\n  {}",
            missing.len(),
            missing.join("\n  ")
        ))
    }
}

/// runc's integration tests; `Ok` with the summary when the goal is met.
pub fn runc_integration(runtime: &Path, suites: &Path) -> Result<String, String> {
    let work = super::target_dir().join("oci-runc-integration");
    let out = Command::new("bash")
        .arg(suites.join("run-runc-integration.sh"))
        .arg(runtime)
        .arg(&work)
        .output()
        .map_err(|e| format!("run-runc-integration.sh: {e}"))?;
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    let tap = std::fs::read_to_string(work.join("results.tap")).map_err(|e| e.to_string())?;
    let passed = tap.lines().filter(|l| l.starts_with("ok ")).count();
    let failed: Vec<String> = tap
        .lines()
        .filter_map(|l| l.strip_prefix("not ok "))
        .map(|rest| {
            rest.split_once(' ')
                .map(|(_, name)| name)
                .unwrap_or(rest)
                .trim()
                .to_owned()
        })
        .collect();
    let unexpected: Vec<&String> = failed
        .iter()
        .filter(|name| !EXPECTED_FAILURES.iter().any(|(n, _)| n == name))
        .collect();
    if passed >= RUNC_GOAL && unexpected.is_empty() {
        Ok(format!(
            "runc integration: {last}; the failures are the {} expected ones (runc's own texts, \
             tests that fail for runc too)",
            failed.len()
        ))
    } else {
        Err(format!(
            "runc integration: {last} (goal: {RUNC_GOAL}, every failure expected); \
             unexpected failures: {unexpected:?}"
        ))
    }
}

/// `cargo xtask oci`: both suites.
pub fn oci_task() -> Result<(), String> {
    let suites = suites()?;
    let runtime = build()?;
    let v = validation(&runtime, &suites);
    let r = runc_integration(&runtime, &suites);
    for result in [&v, &r] {
        match result {
            Ok(s) => eprintln!("xtask: {s}"),
            Err(e) => eprintln!("xtask: FAILED {e}"),
        }
    }
    v.and(r).map(drop)
}

// ---- Start-up cost ---------------------------------------------------------------------

/// The user the rootless figures are taken as.
const ROOTLESS_UID: u32 = 1000;

/// One runtime under measurement: its command and a state root of its own.
struct Runtime {
    name: &'static str,
    program: PathBuf,
    state: PathBuf,
}

impl Runtime {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.arg("--root").arg(&self.state).args(args);
        c.stdout(std::process::Stdio::null());
        c
    }
}

fn timed(c: &mut Command) -> Result<Duration, String> {
    let t = Instant::now();
    let status = c.status().map_err(|e| format!("{c:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{c:?}: {status}"));
    }
    Ok(t.elapsed())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A bundle of `/bin/true` on busybox, with `spec` (`--rootless`) of the runtime itself.
fn bundle(dir: &Path, rootless: bool) -> Result<PathBuf, String> {
    let bundle = dir.join(if rootless { "rootless" } else { "root" });
    std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
    super::podman::busybox_root(&bundle)?;
    if rootless {
        // The user's own files, as a rootless engine's image is.
        super::run(
            "chown the rootless bundle",
            Command::new("chown")
                .arg("-R")
                .arg(format!("{ROOTLESS_UID}:{ROOTLESS_UID}"))
                .arg(&bundle),
        )?;
    }
    let mut spec = Command::new("runc");
    spec.arg("spec").current_dir(&bundle);
    if rootless {
        spec.arg("--rootless");
    }
    super::run("runc spec", &mut spec)?;
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let mut config: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if rootless {
        // `spec --rootless` maps the uid that ran it (root here): the user's instead.
        for key in ["uidMappings", "gidMappings"] {
            if let Some(maps) = config["linux"][key].as_array_mut() {
                for m in maps {
                    m["hostID"] = serde_json::json!(ROOTLESS_UID);
                }
            }
        }
    }
    config["process"]["args"] = serde_json::json!(["/bin/true"]);
    config["process"]["terminal"] = serde_json::json!(false);
    std::fs::write(&path, config.to_string()).map_err(|e| e.to_string())?;
    Ok(bundle)
}

/// Medians of `run` and of `create` + `start` + wait + `delete`, round-robin.
fn measure(
    runtimes: &[Runtime],
    bundle: &Path,
    rounds: usize,
    as_user: Option<u32>,
) -> Result<Vec<(Duration, Duration)>, String> {
    let b = bundle.to_str().ok_or("bundle path")?;
    let mut runs = vec![Vec::new(); runtimes.len()];
    let mut cycles = vec![Vec::new(); runtimes.len()];
    let with_user = |mut c: Command| {
        if let Some(uid) = as_user {
            std::os::unix::process::CommandExt::uid(&mut c, uid);
            std::os::unix::process::CommandExt::gid(&mut c, uid);
            c.env("XDG_RUNTIME_DIR", format!("/tmp/ns-oci-bench-xdg-{uid}"));
        }
        c
    };
    for round in 0..rounds {
        for (i, rt) in runtimes.iter().enumerate() {
            let id = format!("b{}-{round}", std::process::id());
            runs[i].push(timed(&mut with_user(
                rt.command(&["run", "--bundle", b, &id]),
            ))?);
            let id = format!("c{}-{round}", std::process::id());
            let t = Instant::now();
            timed(&mut with_user(rt.command(&["create", "--bundle", b, &id])))?;
            timed(&mut with_user(rt.command(&["start", &id])))?;
            loop {
                let out = with_user(rt.command(&["state", &id]))
                    .stdout(std::process::Stdio::piped())
                    .output()
                    .map_err(|e| e.to_string())?;
                if String::from_utf8_lossy(&out.stdout).contains("\"stopped\"") {
                    break;
                }
            }
            timed(&mut with_user(rt.command(&["delete", &id])))?;
            cycles[i].push(t.elapsed());
        }
    }
    Ok(runs
        .iter_mut()
        .zip(cycles.iter_mut())
        .map(|(r, c)| (median(r), median(c)))
        .collect())
}

/// Where `ns-oci run`'s time goes (`NS_OCI_TIMING`): each step's median.
fn breakdown(ns_oci: &Runtime, bundle: &Path, rounds: usize) -> Result<String, String> {
    let b = bundle.to_str().ok_or("bundle path")?;
    let mut steps: Vec<(String, Vec<u64>)> = Vec::new();
    for round in 0..rounds {
        let id = format!("t{}-{round}", std::process::id());
        let out = ns_oci
            .command(&["run", "--bundle", b, &id])
            .env("NS_OCI_TIMING", "1")
            .output()
            .map_err(|e| e.to_string())?;
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            let mut f = line.split_whitespace();
            if let (Some("ns-oci-timing"), Some(step), Some(us)) = (f.next(), f.next(), f.next()) {
                let us: u64 = us.parse().unwrap_or(0);
                match steps.iter_mut().find(|(s, _)| s == step) {
                    Some((_, v)) => v.push(us),
                    None => steps.push((step.to_owned(), vec![us])),
                }
            }
        }
    }
    Ok(steps
        .into_iter()
        .map(|(step, mut v)| {
            v.sort_unstable();
            format!("{step} {:.2} ms", v[v.len() / 2] as f64 / 1000.0)
        })
        .collect::<Vec<_>>()
        .join(", "))
}

/// `cargo xtask bench`'s start-up table: `ns-oci`, crun and runc side by side, root and
/// rootless (uid 1000), in a private mount namespace without the hybrid host's v2 mount (as
/// the references were taken: crun refuses this host's hybrid cgroups otherwise).
pub fn startup() -> Result<(), String> {
    for tool in ["runc", "crun"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Err(format!(
                "{tool} is not installed (apt-get install runc crun)"
            ));
        }
    }
    let runtime = build()?;
    // Everything below runs in a mount namespace of this process's own.
    // SAFETY: unshare of the mount namespace in this single-purpose process; xtask's other
    // threads (none here) would not be affected in their files.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!("unshare: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: mount(2) with static strings: our namespace's mounts stop propagating.
    unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        libc::umount2(c"/sys/fs/cgroup/unified".as_ptr(), libc::MNT_DETACH);
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(|e| e.to_string())?;
    // The state roots on a tmpfs, as runtimes keep them (/run/runc, /run/crun): on this
    // disk a directory made or renamed sometimes waits a millisecond for the journal.
    let states = dir.path().join("states");
    std::fs::create_dir(&states).map_err(|e| e.to_string())?;
    let states_c =
        std::ffi::CString::new(states.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: mount(2) with NUL-terminated strings, in this process's own mount namespace.
    if unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            states_c.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"mode=755".as_ptr().cast(),
        )
    } != 0
    {
        return Err(format!(
            "mounting a tmpfs: {}",
            std::io::Error::last_os_error()
        ));
    }
    let rounds = 30;
    for rootless in [false, true] {
        let bundle = bundle(dir.path(), rootless)?;
        let user = rootless.then_some(ROOTLESS_UID);
        let state = |name: &str| -> Result<PathBuf, String> {
            let p = states.join(format!("{name}-{rootless}"));
            std::fs::create_dir_all(&p).map_err(|e| e.to_string())?;
            if let Some(uid) = user {
                std::os::unix::fs::chown(&p, Some(uid), Some(uid)).map_err(|e| e.to_string())?;
                let xdg = PathBuf::from(format!("/tmp/ns-oci-bench-xdg-{uid}"));
                std::fs::create_dir_all(&xdg).map_err(|e| e.to_string())?;
                std::os::unix::fs::chown(&xdg, Some(uid), Some(uid)).map_err(|e| e.to_string())?;
            }
            Ok(p)
        };
        let runtimes = [
            Runtime {
                name: "ns-oci",
                program: runtime.clone(),
                state: state("ns-oci")?,
            },
            Runtime {
                name: "crun",
                program: "crun".into(),
                state: state("crun")?,
            },
            Runtime {
                name: "runc",
                program: "runc".into(),
                state: state("runc")?,
            },
        ];
        let figures = measure(&runtimes, &bundle, rounds, user)?;
        let who = if rootless {
            "rootless (uid 1000)"
        } else {
            "root"
        };
        println!("\nOCI start-up, {who}: medians of {rounds} round-robin runs of /bin/true");
        let crun = figures[1];
        for (rt, (run, cycle)) in runtimes.iter().zip(&figures) {
            println!(
                "  {:7} run {:6.2} ms ({:.2}x crun)   create+start+delete {:6.2} ms ({:.2}x crun)",
                rt.name,
                ms(*run),
                run.as_secs_f64() / crun.0.as_secs_f64(),
                ms(*cycle),
                cycle.as_secs_f64() / crun.1.as_secs_f64(),
            );
        }
        if !rootless {
            println!(
                "  ns-oci run, per step: {}",
                breakdown(&runtimes[0], &bundle, 10)?
            );
        }
    }
    Ok(())
}
