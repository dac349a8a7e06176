//! `config.json` → [`NsCommand`]: plain translation of the configuration into the library's
//! options, one file per part of the configuration, no system call beyond reading files.
//!
//! | file | config.json fields |
//! |---|---|
//! | `config.rs` | the whole document, as data |
//! | `process.rs` | `process`: args, env, cwd, user, capabilities, rlimits, `noNewPrivileges`, `oomScoreAdj`, umask |
//! | `namespaces.rs` | `linux.namespaces`, `uidMappings`/`gidMappings`, `hostname`, `domainname`, `linux.sysctl`, `linux.timeOffsets` |
//! | `rootfs.rs` | `root`, `mounts`, `linux.devices` and the default devices, `maskedPaths`, `readonlyPaths`, `rootfsPropagation` |

pub mod config;
mod namespaces;
mod process;
mod rootfs;

use std::path::{Path, PathBuf};

use ns_container::NsCommand;
use ns_core::NsType;

pub use config::Config;

use crate::error::{Error, Result};

/// Reads `config.json` of `bundle`.
pub fn load(bundle: &Path) -> Result<Config> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::new(format!("reading {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::new(format!("parsing {}: {e}", path.display())))
}

/// `ociVersion` must be a semantic version of the 1.x spec (`1.0.2-dev`, `1.1.0`): a
/// configuration of another version, or none, is refused rather than half understood.
pub fn check_version(config: &Config) -> Result<()> {
    let v = config.oci_version.as_str();
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(numeric) {
        return Err(Error::new(format!(
            "invalid configuration: ociVersion {v:?} is not a semantic version"
        )));
    }
    if parts[0] != "1" {
        return Err(Error::new(format!(
            "unsupported configuration: ociVersion {v:?} (this runtime knows the 1.x spec)"
        )));
    }
    Ok(())
}

/// What the runtime needs besides the command: the root and what the container creates.
pub struct Prepared {
    pub command: NsCommand,
    pub rootfs: PathBuf,
    /// The namespaces the container creates (the rest it shares or enters).
    pub created: NsType,
}

/// How a container is set up beyond its configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--no-pivot`: `chroot` instead of `pivot_root`.
    pub no_pivot: bool,
    /// Where device nodes are made before they are bound into the container.
    pub dev_dir: PathBuf,
    /// The container's cgroup directories (what its `cgroup` mounts show).
    pub cgroups: Vec<PathBuf>,
}

/// The command that starts the container's process.
pub fn command(config: &Config, bundle: &Path, options: &Options) -> Result<Prepared> {
    let process = config
        .process
        .as_ref()
        .ok_or_else(|| Error::new("config.json has no process"))?;
    let program = process
        .args
        .first()
        .ok_or_else(|| Error::new("process.args is empty"))?;
    let mut c = NsCommand::new(program);
    let created = namespaces::apply(&mut c, config)?;
    let rootfs = rootfs::apply(&mut c, config, bundle, created, options)?;
    process::apply(&mut c, process, &rootfs)?;
    Ok(Prepared {
        command: c,
        rootfs,
        created,
    })
}

/// Applies `process` to a command (for `exec`, whose process is not the configuration's).
pub fn apply_process(c: &mut NsCommand, process: &config::Process, rootfs: &Path) -> Result<()> {
    process::apply(c, process, rootfs)
}

/// The namespace type of an OCI name.
pub fn ns_type(name: &str) -> Option<NsType> {
    Some(match name {
        "pid" => NsType::PID,
        "network" => NsType::NET,
        "mount" => NsType::MNT,
        "ipc" => NsType::IPC,
        "uts" => NsType::UTS,
        "user" => NsType::USER,
        "cgroup" => NsType::CGROUP,
        "time" => NsType::TIME,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_versions_of_the_1x_spec_are_taken_and_others_refused() {
        let with = |v: &str| Config {
            oci_version: v.to_owned(),
            ..Config::default()
        };
        for good in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.1+git"] {
            assert!(check_version(&with(good)).is_ok(), "{good}");
        }
        for bad in ["invalid", "", "1.0", "2.0.0", "1.x.0", "v1.0.0"] {
            assert!(check_version(&with(bad)).is_err(), "{bad}");
        }
    }
}
