//! `cargo xtask podman`: podman drives `ns-oci` as its OCI runtime (run, run -d, exec, logs,
//! ps, pause, unpause, kill, stop, rm, run -t) on a busybox root, as root. `ci` runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn podman(runtime: &Path) -> Command {
    let mut c = Command::new("podman");
    c.arg("--runtime").arg(runtime);
    c
}

/// podman's options for a container of `rootfs`: no network, limits root may set here.
fn run_opts(rootfs: &Path) -> Vec<String> {
    vec![
        "--network".into(),
        "none".into(),
        "--ulimit".into(),
        "nofile=1024:1024".into(),
        "--ulimit".into(),
        "nproc=1024:1024".into(),
        "--rootfs".into(),
        rootfs.display().to_string(),
    ]
}

fn output(what: &str, c: &mut Command) -> Result<String, String> {
    let out = c.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {:?}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A root of busybox-static and its applets.
pub(crate) fn busybox_root(dir: &Path) -> Result<PathBuf, String> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("busybox is not installed (apt-get install busybox-static)")?;
    let root = dir.join("rootfs");
    for sub in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).map_err(|e| e.to_string())?;
    }
    std::fs::copy(busybox, root.join("bin/busybox")).map_err(|e| e.to_string())?;
    // Each applet a relative link to busybox (its --install links to the host's path).
    let applets = output(
        "listing busybox's applets",
        Command::new(root.join("bin/busybox")).arg("--list"),
    )?;
    for applet in applets.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let link = root.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link).map_err(|e| e.to_string())?;
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
        .map_err(|e| e.to_string())?;
    std::fs::write(root.join("etc/group"), "root:x:0:\n").map_err(|e| e.to_string())?;
    Ok(root)
}

pub fn podman_check(runtime: &Path) -> Result<(), String> {
    if Command::new("podman").arg("--version").output().is_err() {
        return Err("podman is not installed (apt-get install podman)".to_owned());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let rootfs = busybox_root(dir.path())?;
    let opts = run_opts(&rootfs);
    let name = format!("ns-oci-ci-{}", std::process::id());
    let text = output(
        "podman run --rm",
        podman(runtime).args(["run", "--rm"]).args(&opts).args([
            "/bin/sh",
            "-c",
            "echo hi from ns-oci",
        ]),
    )?;
    if text.trim() != "hi from ns-oci" {
        return Err(format!("podman run --rm printed {text:?}"));
    }
    output(
        "podman run -d",
        podman(runtime)
            .args(["run", "-d", "--name", &name])
            .args(&opts)
            .args([
                "/bin/sh",
                "-c",
                "echo started; trap 'exit 0' TERM; while :; do sleep 0.1; done",
            ]),
    )?;
    let result = (|| -> Result<(), String> {
        let ps = output(
            "podman ps",
            podman(runtime).args(["ps", "--format", "{{.Names}}"]),
        )?;
        if !ps.lines().any(|l| l == name) {
            return Err(format!("podman ps does not list the container: {ps:?}"));
        }
        let exec = output(
            "podman exec",
            podman(runtime).args(["exec", &name, "/bin/sh", "-c", "echo in exec; id -u"]),
        )?;
        if exec != "in exec\n0\n" {
            return Err(format!("podman exec printed {exec:?}"));
        }
        let logs = output("podman logs", podman(runtime).args(["logs", &name]))?;
        if !logs.contains("started") {
            return Err(format!("podman logs printed {logs:?}"));
        }
        output("podman pause", podman(runtime).args(["pause", &name]))?;
        output("podman unpause", podman(runtime).args(["unpause", &name]))?;
        output(
            "podman kill -s CONT",
            podman(runtime).args(["kill", "-s", "CONT", &name]),
        )
        .ok();
        output(
            "podman stop",
            podman(runtime).args(["stop", "-t", "5", &name]),
        )?;
        Ok(())
    })();
    let removed = output("podman rm -f", podman(runtime).args(["rm", "-f", &name]));
    result?;
    removed?;
    let tty = output(
        "podman run -t",
        podman(runtime)
            .args(["run", "--rm", "-t"])
            .args(&opts)
            .args(["/bin/sh", "-c", "tty"]),
    )?;
    if !tty.trim().starts_with("/dev/pts/") {
        return Err(format!("podman run -t printed {tty:?}"));
    }
    println!(
        "podman: run --rm, run -d, ps, exec, logs, pause, unpause, kill, stop, rm, run -t: ok"
    );
    Ok(())
}
