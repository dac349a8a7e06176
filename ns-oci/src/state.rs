//! The state directory (`--root`, one directory per container) and `state.json`: what
//! `create` leaves for the later commands, and a container's status, told from its init's pid
//! and start time (a recycled pid is never taken for the container).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What `create` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    /// The init's start time (`/proc/PID/stat` field 22): with the pid, who it is.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The container's cgroup directories, one per hierarchy.
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    /// The namespaces the container created (OCI names), to enter on `exec`.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The hooks of the later operations (startContainer, poststart, poststop), as created:
    /// a configuration changed afterwards does not change the container (runtime spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<crate::spec::config::Hooks>,
    /// The seccomp profile startContainer hooks run under (kept only when there are any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_seccomp: Option<crate::spec::config::Seccomp>,
}

/// A container's state in runc's field order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// A container's directory under the state root.
pub struct Container {
    pub dir: PathBuf,
    pub saved: Saved,
}

/// Container ids runc accepts: no path separators, nothing that is not a plain name.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(format!("invalid container id format: {id}")))
    }
}

pub fn dir_of(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// The socket `start` connects to.
pub fn exec_socket(dir: &Path) -> PathBuf {
    dir.join("exec.sock")
}

impl Container {
    /// The namespaces the container created, to enter (`exec`, `startContainer` hooks).
    pub fn namespace_types(&self) -> ns_core::NsType {
        self.saved
            .namespaces
            .iter()
            .filter_map(|n| crate::spec::ns_type(n))
            .fold(ns_core::NsType::empty(), |all, t| all | t)
    }

    pub fn load(root: &Path, id: &str) -> Result<Container> {
        check_id(id)?;
        let dir = dir_of(root, id);
        let text = std::fs::read_to_string(dir.join("state.json"))
            .map_err(|_| Error::new(format!("container {id} does not exist")))?;
        let saved = serde_json::from_str(&text)
            .map_err(|e| Error::new(format!("reading the state of {id}: {e}")))?;
        Ok(Container { dir, saved })
    }

    pub fn save(dir: &Path, saved: &Saved) -> Result<()> {
        let tmp = dir.join("state.json.tmp");
        let text = serde_json::to_string(saved).map_err(|e| Error::new(e.to_string()))?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, dir.join("state.json"))?;
        Ok(())
    }

    /// Whether the init still runs (the same process: same start time, not a zombie).
    pub fn alive(&self) -> bool {
        matches!(proc_stat(self.saved.pid), Some((state, start)) if start == self.saved.start_time && state != 'Z' && state != 'X')
    }

    pub fn status(&self) -> Status {
        if !self.alive() {
            return Status::Stopped;
        }
        if exec_socket(&self.dir).exists() {
            return Status::Created;
        }
        if crate::cgroups::frozen(&self.saved.cgroups) {
            return Status::Paused;
        }
        Status::Running
    }

    /// The OCI state (`runc state`), fields in runc's order.
    pub fn oci_state(&self) -> serde_json::Value {
        serde_json::to_value(self.report()).unwrap_or_default()
    }

    /// The state as `runc state` and `runc list --format json` print it.
    pub fn report(&self) -> Report {
        let status = self.status();
        Report {
            oci_version: self.saved.oci_version.clone(),
            id: self.saved.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.saved.pid
            },
            status: status.as_str(),
            bundle: self.saved.bundle.clone(),
            rootfs: self.saved.rootfs.clone(),
            created: self.saved.created.clone(),
            owner: self.saved.owner.clone(),
            annotations: self.saved.annotations.clone(),
        }
    }
}

/// The state letter and start time of `pid` (`/proc/PID/stat`).
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of the whole line is the 20th after the command.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Now, as RFC 3339 in UTC with nanoseconds (as runc writes `created`).
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_nanos()
    )
}
