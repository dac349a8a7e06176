//! [`NsType`], the set of namespace types: its flags, its names and how it prints.
//!
//! The vocabulary every other file of this crate speaks, so it sits at the bottom: it uses no
//! other file of the crate and makes no system call. Reading types from text and refusing
//! foreign bits, which produce errors, live in `names.rs`.

use std::fmt;

bitflags::bitflags! {
    /// A set of namespace types, one bit per `CLONE_NEW*` flag.
    ///
    /// Iteration ([`NsType::iter`]) and [`Display`](fmt::Display) follow one fixed order, the
    /// order of the constants below: mnt, uts, ipc, pid, net, user, cgroup, time (the order of
    /// Mesos's `stringify`, then the two later types in the order Linux added them). That order
    /// is only for listing; the order in which namespaces are *entered* is the table
    /// [`ENTRY_ORDER`](crate::ENTRY_ORDER).
    ///
    /// `Display` prints the Mesos `stringify` form, `CLONE_NEWNS | CLONE_NEWNET`; [`FromStr`]
    /// reads that form back, and also the names of `/proc/PID/ns` (`mnt`, `net`, …), separated
    /// by `|` or `,`. An empty set prints as the empty string and parses back from it.
    ///
    /// [`FromStr`]: std::str::FromStr
    ///
    /// ```
    /// use ns_core::NsType;
    /// let t: NsType = "net, uts".parse().unwrap();
    /// assert_eq!(t, NsType::NET | NsType::UTS);
    /// assert_eq!(t.to_string(), "CLONE_NEWUTS | CLONE_NEWNET");
    /// assert_eq!(t.to_string().parse::<NsType>().unwrap(), t);
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct NsType: libc::c_int {
        /// Mount namespace, `mnt`, `CLONE_NEWNS` (Linux 2.4.19; namespace file 3.8).
        const MNT = ns_sys::CLONE_NEWNS;
        /// UTS namespace (hostname, domain name), `uts`, `CLONE_NEWUTS` (2.6.19).
        const UTS = ns_sys::CLONE_NEWUTS;
        /// IPC namespace (System V IPC, POSIX queues), `ipc`, `CLONE_NEWIPC` (2.6.19).
        const IPC = ns_sys::CLONE_NEWIPC;
        /// PID namespace, `pid`, `CLONE_NEWPID` (2.6.24; namespace file 3.8).
        const PID = ns_sys::CLONE_NEWPID;
        /// Network namespace, `net`, `CLONE_NEWNET` (2.6.29).
        const NET = ns_sys::CLONE_NEWNET;
        /// User namespace, `user`, `CLONE_NEWUSER` (3.8; usable everywhere since 3.12).
        const USER = ns_sys::CLONE_NEWUSER;
        /// Cgroup namespace, `cgroup`, `CLONE_NEWCGROUP` (4.6).
        const CGROUP = ns_sys::CLONE_NEWCGROUP;
        /// Time namespace (monotonic and boot-time clocks), `time`, `CLONE_NEWTIME` (5.6).
        const TIME = ns_sys::CLONE_NEWTIME;
    }
}

/// One row per type: the flag, its `/proc/PID/ns` name and its `CLONE_NEW*` name.
const NAMES: [(NsType, &str, &str); 8] = [
    (NsType::MNT, "mnt", "CLONE_NEWNS"),
    (NsType::UTS, "uts", "CLONE_NEWUTS"),
    (NsType::IPC, "ipc", "CLONE_NEWIPC"),
    (NsType::PID, "pid", "CLONE_NEWPID"),
    (NsType::NET, "net", "CLONE_NEWNET"),
    (NsType::USER, "user", "CLONE_NEWUSER"),
    (NsType::CGROUP, "cgroup", "CLONE_NEWCGROUP"),
    (NsType::TIME, "time", "CLONE_NEWTIME"),
];

impl NsType {
    /// The `/proc/PID/ns` name of a single type (`"net"`), or `None` for a set that is empty
    /// or holds more than one type.
    pub fn name(self) -> Option<&'static str> {
        NAMES
            .iter()
            .find(|(t, _, _)| *t == self)
            .map(|(_, n, _)| *n)
    }

    /// The `CLONE_NEW*` name of a single type (`"CLONE_NEWNET"`), or `None` for a set that is
    /// empty or holds more than one type.
    pub fn flag_name(self) -> Option<&'static str> {
        NAMES
            .iter()
            .find(|(t, _, _)| *t == self)
            .map(|(_, _, f)| *f)
    }

    /// Whether the set holds exactly one namespace type.
    pub fn is_single(self) -> bool {
        self.bits().count_ones() == 1 && self.unknown_bits() == 0
    }

    /// The bits of the set that are no namespace type: anything other than the eight
    /// `CLONE_NEW*` flags, e.g. a `CLONE_FILES` brought in through
    /// [`from_bits_retain`](NsType::from_bits_retain). Every operation of this workspace that
    /// takes an `NsType` refuses a set with such bits ([`check_types`](crate::check_types)).
    pub fn unknown_bits(self) -> libc::c_int {
        self.bits() & !NsType::all().bits()
    }

    /// Parses one type from its `/proc/PID/ns` name or its `CLONE_NEW*` name.
    pub(crate) fn parse_one(word: &str) -> Option<NsType> {
        NAMES
            .iter()
            .find(|(_, n, f)| *n == word || *f == word)
            .map(|(t, _, _)| *t)
    }

    /// Describes the set for messages: `net namespace`, `mnt, net namespaces`, `namespace`.
    pub(crate) fn describe(self) -> String {
        let names: Vec<&str> = self.iter().filter_map(NsType::name).collect();
        match names.len() {
            0 => "namespace".to_owned(),
            1 => format!("{} namespace", names[0]),
            _ => format!("{} namespaces", names.join(", ")),
        }
    }
}

impl fmt::Display for NsType {
    /// Writes the Mesos `stringify` form: `CLONE_NEWNS | CLONE_NEWNET`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in self.iter() {
            if !first {
                f.write_str(" | ")?;
            }
            first = false;
            // `iter` yields only declared single flags, each of which has a name.
            f.write_str(t.flag_name().unwrap_or("?"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_names_match_the_kernel_files() {
        let names: Vec<_> = NsType::all().iter().map(|t| t.name().unwrap()).collect();
        assert_eq!(
            names,
            ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time"]
        );
    }

    #[test]
    fn flag_values_are_the_kernel_ones() {
        assert_eq!(NsType::MNT.bits(), 0x0002_0000);
        assert_eq!(NsType::CGROUP.bits(), 0x0200_0000);
        assert_eq!(NsType::UTS.bits(), 0x0400_0000);
        assert_eq!(NsType::IPC.bits(), 0x0800_0000);
        assert_eq!(NsType::USER.bits(), 0x1000_0000);
        assert_eq!(NsType::PID.bits(), 0x2000_0000);
        assert_eq!(NsType::NET.bits(), 0x4000_0000);
        assert_eq!(NsType::TIME.bits(), 0x0000_0080);
    }

    #[test]
    fn describe_names_one_or_many() {
        assert_eq!(NsType::NET.describe(), "net namespace");
        assert_eq!(
            (NsType::NET | NsType::MNT).describe(),
            "mnt, net namespaces"
        );
        assert_eq!(NsType::empty().describe(), "namespace");
    }
}
