//! An OCI runtime with runc's command line, built on `ns-container`: the library that the
//! `ns-oci` binary drives, usable without it.
//!
//! | room | holds |
//! |---|---|
//! | `container.rs` | the lifecycle: create (held before the program), start, kill, delete |
//! | `spec/` | `config.json` and its translation into an `NsCommand` |
//! | `state.rs` | the state directory, `state.json`, a container's status |
//! | `cgroups.rs` | `cgroupsPath` and `resources`, v1 and v2; freezing |
//! | `seccomp/` | the OCI seccomp profile compiler |
//! | `hooks.rs` | running hooks with the state on their stdin |
//! | `cli/` | runc's command line, one file per command |
//! | `timing.rs` | where a command's time goes (`NS_OCI_TIMING`) |

pub mod cgroups;
pub mod cli;
pub mod container;
pub mod error;
pub mod hooks;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod timing;

pub use error::{Error, Result};
