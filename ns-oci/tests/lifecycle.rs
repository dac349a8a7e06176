//! The runtime's lifecycle through its command line, on a bundle whose root borrows the
//! host's `/usr` (run for real by `cargo xtask test-root`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root: cargo xtask test-root"
    );
}

/// A bundle: `runc spec`'s default configuration without a terminal, running `script`,
/// with a root of links to the host's `/usr` (bound read-only).
fn bundle(dir: &Path, script: &str) -> PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    for sub in ["usr", "proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    for link in ["bin", "lib", "lib64", "sbin"] {
        if let Ok(to) = std::fs::read_link(format!("/{link}")) {
            std::os::unix::fs::symlink(to, rootfs.join(link)).unwrap();
        }
    }
    let mut config = ns_oci::cli::default_spec();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    config["root"]["readonly"] = false.into();
    config["mounts"].as_array_mut().unwrap().push(
        serde_json::json!({ "destination": "/usr", "type": "bind", "source": "/usr",
            "options": ["rbind", "ro"] }),
    );
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir.to_owned()
}

fn ns_oci(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ns-oci"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn state(root: &Path, id: &str) -> serde_json::Value {
    let out = ns_oci(root, &["state", id]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn run_gives_the_programs_output_and_exit_status() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let state_root = dir.path().join("state");
    let b = bundle(&dir.path().join("b"), "hostname; echo $$; exit 3");
    let out = Command::new(env!("CARGO_BIN_EXE_ns-oci"))
        .arg("--root")
        .arg(&state_root)
        .args(["run", "--bundle"])
        .arg(&b)
        .arg("c1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "runc\n1\n");
    // Deleted after the run: its state is gone.
    assert!(!ns_oci(&state_root, &["state", "c1"]).status.success());
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn create_start_kill_delete_follow_the_lifecycle() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let b = bundle(
        &dir.path().join("b"),
        "trap 'exit 7' TERM; while :; do sleep 0.05; done",
    );
    let bundle_arg = b.to_str().unwrap();
    // The container keeps the runtime's stdio: not pipes this test would wait on.
    let created = Command::new(env!("CARGO_BIN_EXE_ns-oci"))
        .arg("--root")
        .arg(&root)
        .args(["create", "--bundle", bundle_arg, "c2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(created.success());
    let st = state(&root, "c2");
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    // Created again: refused.
    let out = ns_oci(&root, &["create", "--bundle", bundle_arg, "c2"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists"),
        "{out:?}"
    );
    assert!(ns_oci(&root, &["start", "c2"]).status.success());
    assert_eq!(state(&root, "c2")["status"], "running");
    // A running container is not deleted without --force.
    assert!(!ns_oci(&root, &["delete", "c2"]).status.success());
    let list = ns_oci(&root, &["list", "-q"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout), "c2\n");
    assert!(ns_oci(&root, &["kill", "c2", "TERM"]).status.success());
    for _ in 0..400 {
        if state(&root, "c2")["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(state(&root, "c2")["status"], "stopped");
    assert!(!ns_oci(&root, &["kill", "c2", "KILL"]).status.success());
    assert!(ns_oci(&root, &["delete", "c2"]).status.success());
    assert!(!root.join("c2").exists());
}

#[test]
fn bad_ids_and_missing_containers_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for args in [
        &["state", "../x"][..],
        &["state", "nope"][..],
        &["start"][..],
        &["kill", "nope"][..],
        &["delete", "nope"][..],
    ] {
        let out = ns_oci(root, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    // --force on a container that is not there is no error (runc's behaviour).
    assert!(ns_oci(root, &["delete", "--force", "nope"])
        .status
        .success());
}

#[test]
fn kernel_parameters_outside_the_containers_namespaces_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let b = bundle(&dir.path().join("b"), "true");
    let config_path = b.join("config.json");
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    for (sysctl, without) in [
        ("vm.overcommit_memory", None),
        ("kernel.core_pattern", None),
        ("net.ipv4.ip_forward", Some("network")),
        ("kernel.shmmax", Some("ipc")),
    ] {
        let mut config = base.clone();
        config["linux"]["sysctl"] = serde_json::json!({ sysctl: "1" });
        if let Some(ns) = without {
            config["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != ns);
        }
        std::fs::write(&config_path, config.to_string()).unwrap();
        let out = ns_oci(&root, &["create", "--bundle", b.to_str().unwrap(), "s1"]);
        assert_eq!(out.status.code(), Some(1), "{sysctl}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("sysctl"),
            "{sysctl}: {out:?}"
        );
        // Nothing was left of the refused container.
        assert!(!root.join("s1").exists(), "{sysctl}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn an_ordinary_user_runs_a_rootless_bundle() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(
        &dir.path().join("b"),
        "id -u; cat /proc/self/uid_map; echo $$; exit 4",
    );
    // `spec --rootless` for uid 1000: that uid mapped to root, no network namespace, no
    // cgroups.
    let text = std::fs::read_to_string(b.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    ns_oci::cli::rootless(&mut config, 1000, 1000);
    std::fs::write(b.join("config.json"), config.to_string()).unwrap();
    for p in [dir.path(), &b, &b.join("rootfs")] {
        std::os::unix::fs::chown(p, Some(1000), Some(1000)).unwrap();
    }
    let state_root = dir.path().join("state");
    let run = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ns-oci"));
        c.arg("--root").arg(&state_root).args(args);
        std::os::unix::process::CommandExt::uid(&mut c, 1000);
        std::os::unix::process::CommandExt::gid(&mut c, 1000);
        c.env("XDG_RUNTIME_DIR", dir.path()).stdin(Stdio::null());
        c.output().unwrap()
    };
    let out = run(&["run", "--bundle", b.to_str().unwrap(), "rl1"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words, ["0", "0", "1000", "1", "1"], "{text}");
    assert!(!run(&["state", "rl1"]).status.success());
}
