//! [`NsType`], the set of namespace types, and the Mesos name-mapping functions.

use std::fmt;
use std::str::FromStr;

use crate::error::{Context, Error, Op, Result, Subject};

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
    /// takes an `NsType` refuses a set with such bits ([`check_types`]).
    pub fn unknown_bits(self) -> libc::c_int {
        self.bits() & !NsType::all().bits()
    }

    /// Parses one type from its `/proc/PID/ns` name or its `CLONE_NEW*` name.
    fn parse_one(word: &str) -> Option<NsType> {
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

impl FromStr for NsType {
    type Err = Error;

    /// Parses `/proc` names and `CLONE_NEW*` names separated by `|` or `,`, with any spaces
    /// around them. The empty string is the empty set.
    fn from_str(s: &str) -> Result<NsType> {
        let mut set = NsType::empty();
        if s.trim().is_empty() {
            return Ok(set);
        }
        for word in s.split(['|', ',']) {
            let word = word.trim();
            match NsType::parse_one(word) {
                Some(t) => set |= t,
                None => {
                    return Err(Error::UnknownType {
                        input: word.to_owned(),
                    })
                }
            }
        }
        Ok(set)
    }
}

/// Refuses a set that holds bits other than the eight namespace types, with
/// [`Error::UnknownFlags`] naming the operation `context` describes; returns the set
/// unchanged otherwise.
///
/// Such bits would reach `clone3`, `unshare` or `setns` as other `CLONE_*` flags
/// (`CLONE_FILES`, `CLONE_VM`, …) and change the caller's own process.
///
/// ```
/// use ns_core::{check_types, Context, Error, NsType, Op, Subject};
/// let context = || Context::new(Op::Enter, NsType::empty(), Subject::None);
/// assert!(check_types(NsType::NET | NsType::UTS, context).is_ok());
/// let bad = NsType::from_bits_retain(libc::CLONE_FILES);
/// assert!(matches!(check_types(bad, context), Err(Error::UnknownFlags { .. })));
/// ```
///
/// # Errors
/// [`Error::UnknownFlags`] when [`NsType::unknown_bits`] is not zero.
pub fn check_types(types: NsType, context: impl FnOnce() -> Context) -> Result<NsType> {
    match types.unknown_bits() {
        0 => Ok(types),
        bits => Err(Error::UnknownFlags {
            context: context(),
            bits,
        }),
    }
}

/// Mesos `ns::nstype`: the type named `name`, a `/proc/PID/ns` name such as `"net"` (or its
/// `CLONE_NEW*` name).
///
/// ```
/// use ns_core::{nstype, NsType};
///
/// assert_eq!(nstype("net")?, NsType::NET);
/// assert_eq!(nstype("CLONE_NEWUTS")?, NsType::UTS);
/// assert!(nstype("bogus").is_err());
/// # Ok::<(), ns_core::Error>(())
/// ```
///
/// # Errors
/// [`Error::UnknownType`] for any other string, including sets such as `"net,uts"`.
pub fn nstype(name: &str) -> Result<NsType> {
    NsType::parse_one(name.trim()).ok_or_else(|| Error::UnknownType {
        input: name.to_owned(),
    })
}

/// Mesos `ns::nsname`: the `/proc/PID/ns` name of a single type.
///
/// ```
/// use ns_core::{nsname, NsType};
///
/// assert_eq!(nsname(NsType::MNT)?, "mnt");
/// assert!(nsname(NsType::MNT | NsType::NET).is_err());
/// # Ok::<(), ns_core::Error>(())
/// ```
///
/// # Errors
/// [`Error::NotOneType`] when `ns_type` is empty or holds several types.
pub fn nsname(ns_type: NsType) -> Result<&'static str> {
    ns_type.name().ok_or_else(|| Error::NotOneType {
        context: Context::new(Op::Name, ns_type, Subject::None),
        types: ns_type,
    })
}

/// Mesos `ns::stringify`: `CLONE_NEWNS | CLONE_NEWNET`. The same as `ns_type.to_string()`.
///
/// ```
/// use ns_core::{stringify, NsType};
///
/// let text = stringify(NsType::NET | NsType::UTS);
/// assert!(text.contains("CLONE_NEWNET") && text.contains("CLONE_NEWUTS"), "{text}");
/// ```
pub fn stringify(ns_type: NsType) -> String {
    ns_type.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_through_nstype_and_nsname() {
        for t in NsType::all().iter() {
            let name = nsname(t).unwrap();
            assert_eq!(nstype(name).unwrap(), t);
            assert_eq!(nstype(t.flag_name().unwrap()).unwrap(), t);
        }
        assert_eq!(NsType::all().iter().count(), 8);
    }

    #[test]
    fn proc_names_match_the_kernel_files() {
        let names: Vec<_> = NsType::all().iter().map(|t| t.name().unwrap()).collect();
        assert_eq!(
            names,
            ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time"]
        );
    }

    #[test]
    fn unknown_names_are_typed_errors() {
        for bad in [
            "",
            "network",
            "NET",
            "pid_for_children",
            "net,uts",
            "CLONE_NEWFOO",
        ] {
            match nstype(bad) {
                Err(Error::UnknownType { input }) => assert_eq!(input, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let err = "net|bogus".parse::<NsType>().unwrap_err();
        assert!(err.to_string().contains("\"bogus\""), "{err}");
    }

    #[test]
    fn nsname_needs_exactly_one_type() {
        assert!(matches!(
            nsname(NsType::empty()),
            Err(Error::NotOneType { .. })
        ));
        let err = nsname(NsType::NET | NsType::UTS).unwrap_err();
        assert!(
            matches!(err, Error::NotOneType { types, .. } if types == NsType::NET | NsType::UTS)
        );
        assert!(
            err.to_string().contains("CLONE_NEWUTS | CLONE_NEWNET"),
            "{err}"
        );
    }

    #[test]
    fn stringify_uses_the_mesos_form_in_fixed_order() {
        assert_eq!(
            stringify(NsType::NET | NsType::MNT),
            "CLONE_NEWNS | CLONE_NEWNET"
        );
        assert_eq!(stringify(NsType::NET), "CLONE_NEWNET");
        assert_eq!(stringify(NsType::empty()), "");
        assert_eq!(
            stringify(NsType::all()),
            "CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET | \
             CLONE_NEWUSER | CLONE_NEWCGROUP | CLONE_NEWTIME"
        );
    }

    #[test]
    fn display_and_from_str_round_trip_for_every_set() {
        for bits in 0..=0xffu32 {
            let set = NAMES
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .fold(NsType::empty(), |acc, (_, (t, _, _))| acc | *t);
            assert_eq!(set.to_string().parse::<NsType>().unwrap(), set, "{set:?}");
        }
    }

    #[test]
    fn from_str_accepts_proc_names_flag_names_and_both_separators() {
        let want = NsType::MNT | NsType::NET | NsType::TIME;
        for s in [
            "mnt,net,time",
            "mnt | net | time",
            "CLONE_NEWNS|net , CLONE_NEWTIME",
        ] {
            assert_eq!(s.parse::<NsType>().unwrap(), want, "{s}");
        }
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
