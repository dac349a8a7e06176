//! Where the child goes: a target's namespaces (or handles) to enter and how, new namespaces
//! to create, their id maps, time offsets and hostname, and the ids the child takes; and the
//! entry plan and map texts prepared from them.

use std::ffi::OsStr;
use std::time::Duration;

use ns_core::{EntryPlan, EntryStrategy, Namespace, NsType, Subject, Target};

use super::settings::{Clock, IdMap, NsCommand};
use crate::error::Result;

/// The entry plan, from a target and/or individual handles.
pub(crate) fn entry_plan<'a>(
    target: Option<&'a (Target, NsType)>,
    namespaces: &'a [Namespace],
    strategy: EntryStrategy,
) -> Result<Option<EntryPlan<'a>>> {
    if namespaces.is_empty() {
        return match target {
            Some((target, types)) => Ok(Some(target.plan(*types, strategy)?)),
            None => Ok(None),
        };
    }
    let mut handles: Vec<&Namespace> = namespaces.iter().collect();
    if let Some((target, types)) = target {
        for t in types.iter() {
            if let Some(ns) = target.namespace(t) {
                handles.push(ns);
            }
        }
    }
    Ok(Some(EntryPlan::from_namespaces(&handles)?))
}

pub(super) fn map_text(maps: &[IdMap]) -> Option<Vec<u8>> {
    if maps.is_empty() {
        return None;
    }
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect();
    Some(text.into_bytes())
}

pub(super) fn offsets_text(offsets: &[(Clock, i64, u32)]) -> Option<Vec<u8>> {
    if offsets.is_empty() {
        return None;
    }
    let text: String = offsets
        .iter()
        .map(|(clock, secs, nanos)| {
            let name = match clock {
                Clock::Monotonic => "monotonic",
                Clock::Boottime => "boottime",
            };
            format!("{name} {secs} {nanos}\n")
        })
        .collect();
    Some(text.into_bytes())
}

impl NsCommand {
    /// The child's user id (`setuid`), as seen from inside its user namespace.
    pub fn uid(&mut self, uid: u32) -> &mut NsCommand {
        self.uid = Some(uid);
        self
    }

    /// The child's group id (`setgid`), as seen from inside its user namespace.
    pub fn gid(&mut self, gid: u32) -> &mut NsCommand {
        self.gid = Some(gid);
        self
    }

    /// The child's supplementary groups (`setgroups`).
    pub fn groups(&mut self, groups: &[u32]) -> &mut NsCommand {
        self.groups = Some(groups.to_vec());
        self
    }

    /// Enters `types` of the namespaces of a pinned process. The target is duplicated, so the
    /// caller keeps its own.
    pub fn enter(&mut self, target: &Target, types: NsType) -> &mut NsCommand {
        if let Err(e) = ns_core::check_types(types, || {
            ns_core::Context::new(ns_core::Op::Enter, types, Subject::Pid(target.pid()))
        }) {
            self.error = Some(e.into());
            return self;
        }
        match target.try_clone() {
            Ok(t) => self.target = Some((t, types)),
            Err(e) => self.error = Some(e.into()),
        }
        self
    }

    /// Pins process `pid` ([`Target::pin`]) and enters `types` of its namespaces. A pinning
    /// error is reported by [`NsCommand::spawn`].
    pub fn enter_pid(&mut self, pid: libc::pid_t, types: NsType) -> &mut NsCommand {
        match Target::pin(pid, types) {
            Ok(t) => self.target = Some((t, types)),
            Err(e) => self.error = Some(e.into()),
        }
        self
    }

    /// Enters one namespace given by its handle (any number of types, one handle each).
    pub fn enter_namespace(&mut self, ns: Namespace) -> &mut NsCommand {
        self.namespaces.push(ns);
        self
    }

    /// How the target's namespaces are entered (see `ns_core::EntryStrategy`).
    pub fn entry_strategy(&mut self, strategy: EntryStrategy) -> &mut NsCommand {
        self.strategy = strategy;
        self
    }

    /// Creates new namespaces of these types for the child, inside the entered ones. Each
    /// type needs the kernel version that introduced it (cgroup 4.6, time 5.6; see
    /// `ns_core::NsType`); `clone3` itself needs 5.3.
    ///
    /// Bits that are no namespace type (see `NsType::unknown_bits`) make
    /// [`spawn`](NsCommand::spawn) fail with `ns_core::Error::UnknownFlags`.
    pub fn unshare(&mut self, types: NsType) -> &mut NsCommand {
        if let Err(e) = ns_core::check_types(types, || {
            ns_core::Context::new(ns_core::Op::Create, types, Subject::None)
        }) {
            self.error.get_or_insert(e.into());
        }
        self.unshare |= types;
        self
    }

    /// Adds a line to the new user namespace's `uid_map`, written by the parent side before
    /// the child goes on.
    pub fn uid_map(&mut self, inside: u32, outside: u32, count: u32) -> &mut NsCommand {
        self.uid_map.push(IdMap {
            inside,
            outside,
            count,
        });
        self
    }

    /// Adds a line to the new user namespace's `gid_map`.
    pub fn gid_map(&mut self, inside: u32, outside: u32, count: u32) -> &mut NsCommand {
        self.gid_map.push(IdMap {
            inside,
            outside,
            count,
        });
        self
    }

    /// Writes `deny` to the new user namespace's `setgroups` before its `gid_map` (needed for
    /// an unprivileged caller to write a `gid_map`).
    pub fn setgroups_deny(&mut self, deny: bool) -> &mut NsCommand {
        self.setgroups_deny = deny;
        self
    }

    /// Offsets a clock of the new time namespace by `secs` seconds (may be negative) plus
    /// `nanos` nanoseconds (below one second). Written to `timens_offsets` before anything
    /// runs in the namespace (Linux 5.6; needs [`unshare`](NsCommand::unshare) of
    /// `NsType::TIME`).
    pub fn time_offset(&mut self, clock: Clock, secs: i64, nanos: u32) -> &mut NsCommand {
        self.time_offsets.push((clock, secs, nanos));
        self
    }

    /// Offsets a clock of the new time namespace forward by `by`.
    pub fn time_offset_by(&mut self, clock: Clock, by: Duration) -> &mut NsCommand {
        self.time_offset(clock, by.as_secs() as i64, by.subsec_nanos())
    }

    /// The hostname of the new UTS namespace.
    pub fn hostname(&mut self, name: impl AsRef<OsStr>) -> &mut NsCommand {
        self.hostname = Some(name.as_ref().to_owned());
        self
    }
}
