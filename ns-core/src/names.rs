//! Reading namespace types from text and checking sets of them: `FromStr for NsType`, the
//! Mesos name functions [`nstype`], [`nsname`] and [`stringify`], and [`check_types`].
//!
//! Everything here can fail with this crate's [`Error`], which is why it is not in
//! `ns_type.rs` (the errors speak of `NsType`, so `NsType` itself stays below them). No
//! system calls.

use std::str::FromStr;

use crate::error::{Context, Error, Op, Result, Subject};
use crate::ns_type::NsType;

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
            let set = NsType::all()
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .fold(NsType::empty(), |acc, (_, t)| acc | t);
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
}
