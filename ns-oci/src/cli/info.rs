//! `spec` (the default configuration, as `runc spec` writes it) and `features`.

use std::path::PathBuf;

use super::{f, parse, v};
use crate::error::{Error, Result};

pub fn spec(args: &[String]) -> Result<i32> {
    let p = parse(args, &[v(&["bundle", "b"]), f(&["rootless"])])?;
    let bundle = PathBuf::from(p.value("bundle").unwrap_or("."));
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::new("File config.json exists. Remove it first."));
    }
    let mut config = default_spec();
    if p.flag("rootless") {
        to_rootless(&mut config);
    }
    let text = serde_json::to_string_pretty(&config).map_err(|e| Error::new(e.to_string()))?;
    std::fs::write(&path, text + "\n")
        .map_err(|e| Error::new(format!("writing {}: {e}", path.display())))?;
    Ok(0)
}

/// runc 1.1's default configuration.
pub fn default_spec() -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "runc",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// runc's `spec --rootless` for the caller.
fn to_rootless(config: &mut serde_json::Value) {
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    rootless(config, uid, gid);
}

/// runc's `spec --rootless` for `uid` and `gid`: a user namespace mapping them to root, no
/// network or cgroup namespace of its own to configure, `/sys` bound from the host, no
/// resources.
pub fn rootless(config: &mut serde_json::Value, uid: u32, gid: u32) {
    let linux = &mut config["linux"];
    linux["resources"] = serde_json::Value::Null;
    linux["uidMappings"] = serde_json::json!([{ "containerID": 0, "hostID": uid, "size": 1 }]);
    linux["gidMappings"] = serde_json::json!([{ "containerID": 0, "hostID": gid, "size": 1 }]);
    linux["namespaces"] = serde_json::json!([
        { "type": "pid" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" },
        { "type": "user" }
    ]);
    let mounts = config["mounts"].as_array_mut().expect("mounts");
    mounts.retain(|m| m["type"] != "cgroup");
    for m in mounts.iter_mut() {
        if m["type"] == "sysfs" {
            *m = serde_json::json!({ "destination": "/sys", "type": "none", "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] });
        }
        if m["type"] == "devpts" {
            if let Some(o) = m["options"].as_array_mut() {
                o.retain(|x| x != "gid=5");
            }
        }
    }
}

pub fn features() -> Result<i32> {
    let namespaces = [
        "cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time",
    ];
    let value = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.0.2-dev",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec"],
        "linux": {
            "namespaces": namespaces,
            "capabilities": ns_core::caps::all().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                    "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false }
        }
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&value).map_err(|e| Error::new(e.to_string()))?
    );
    Ok(0)
}
