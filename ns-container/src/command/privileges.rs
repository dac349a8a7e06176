//! The child's session, limits and privileges: process group, session and controlling
//! terminal, resource limits, OOM score, capability sets, securebits, `no_new_privs`, umask
//! and the seccomp filter; checked against each other when the command is spawned.

use std::os::fd::RawFd;

use ns_core::caps::{CapSet, Capability};

use super::settings::NsCommand;
use crate::error::{Error, Result};
use crate::spawn::PrivilegeSpec;

impl NsCommand {
    /// Puts the child in process group `pgroup`, or a new group of its own with 0
    /// (`setpgid(0, pgroup)` in the child, std's `CommandExt::process_group`).
    pub fn process_group(&mut self, pgroup: libc::pid_t) -> &mut NsCommand {
        self.pgroup = Some(pgroup);
        self
    }

    /// Starts a new session for the child (`setsid`), which also makes it the leader of a new
    /// process group and detaches it from the caller's terminal. Cannot be combined with
    /// [`process_group`](NsCommand::process_group).
    pub fn setsid(&mut self, yes: bool) -> &mut NsCommand {
        self.privileges.setsid = yes;
        self
    }

    /// Makes the terminal at descriptor `child_fd` *of the child* (0, 1, 2 or a number given
    /// with [`fd`](NsCommand::fd)) its controlling terminal (`ioctl(TIOCSCTTY)`), after
    /// [`setsid`](NsCommand::setsid), which it needs.
    pub fn controlling_terminal(&mut self, child_fd: RawFd) -> &mut NsCommand {
        self.privileges.ctty = Some(child_fd);
        self
    }

    /// Sets a resource limit of the child (`prlimit`), e.g. `libc::RLIMIT_NOFILE`, before its
    /// credentials change (raising a hard limit needs privilege). `libc::RLIM_INFINITY` is
    /// "unlimited".
    pub fn rlimit(&mut self, resource: libc::c_int, soft: u64, hard: u64) -> &mut NsCommand {
        self.privileges.rlimits.push((resource, soft, hard));
        self
    }

    /// The child's `oom_score_adj`, from -1000 (never killed for lack of memory) to 1000
    /// (killed first); lowering it needs `CAP_SYS_RESOURCE`.
    pub fn oom_score_adj(&mut self, score: i32) -> &mut NsCommand {
        if !(-1000..=1000).contains(&score) {
            self.error.get_or_insert(Error::Invalid {
                what: format!("spawning {}", self.program.to_string_lossy()),
                reason: format!("oom_score_adj {score} is not between -1000 and 1000"),
            });
        }
        self.privileges.oom_score_adj = Some(score.to_string().into_bytes());
        self
    }

    /// Sets one of the child's capability sets to exactly `caps` (the others keep what the
    /// kernel gives them; see `capabilities(7)`):
    /// - `CapSet::Bounding`: every other capability is dropped from the bounding set (needs
    ///   `CAP_SETPCAP`), before the credentials change;
    /// - `Effective`, `Permitted`, `Inheritable`: set with `capset` after the credentials
    ///   change; with [`uid`](NsCommand::uid) or [`gid`](NsCommand::gid) the permitted set is
    ///   kept across the change (`PR_SET_KEEPCAPS`), so a child can run as a user with the
    ///   capabilities asked for. An effective set not given keeps what it had of the new
    ///   permitted set;
    /// - `Ambient`: raised after that (each must be permitted and inheritable), so that they
    ///   survive `execve` of an ordinary program.
    ///
    /// Once any set is given, the inheritable and ambient sets are exactly what was given
    /// (empty when not named), never the caller's: a caller's inheritable capabilities
    /// would otherwise come back at `execve` (for root, the new permitted set is the bounding
    /// set joined with the inheritable one).
    ///
    /// ```no_run
    /// use ns_container::NsCommand;
    /// use ns_core::caps::{CapSet, Capability};
    ///
    /// let net_admin = [Capability::CAP_NET_ADMIN];
    /// let status = NsCommand::new("ip")
    ///     .args(["link", "show"])
    ///     .capabilities(CapSet::Bounding, net_admin)
    ///     .capabilities(CapSet::Permitted, net_admin)
    ///     .capabilities(CapSet::Effective, net_admin)
    ///     .no_new_privs(true)
    ///     .status()?;
    /// # Ok::<(), ns_container::Error>(())
    /// ```
    pub fn capabilities(
        &mut self,
        set: CapSet,
        caps: impl IntoIterator<Item = Capability>,
    ) -> &mut NsCommand {
        let mask = caps.into_iter().fold(0u64, |m, c| m | c.bitmask());
        let slot = match set {
            CapSet::Bounding => &mut self.privileges.bounding,
            CapSet::Effective => &mut self.privileges.effective,
            CapSet::Permitted => &mut self.privileges.permitted,
            CapSet::Inheritable => &mut self.privileges.inheritable,
            CapSet::Ambient => &mut self.privileges.ambient,
        };
        *slot = Some(mask);
        self
    }

    /// Sets the child's securebits (`PR_SET_SECUREBITS`, `SECBIT_*` in `capabilities(7)`)
    /// before its credentials change, while it holds `CAP_SETPCAP` and so that
    /// `SECBIT_NO_SETUID_FIXUP` and `SECBIT_KEEP_CAPS` apply to that change. When
    /// capability sets are asked for with a uid or gid, `SECBIT_KEEP_CAPS` is added for the
    /// change (unless `SECBIT_KEEP_CAPS_LOCKED` is asked). `SECBIT_NO_CAP_AMBIENT_RAISE`
    /// (and its lock) would stop the ambient capabilities, so the bits are set again exactly
    /// as asked after those: that second call needs `CAP_SETPCAP` in the effective set the
    /// child then has.
    pub fn securebits(&mut self, bits: u32) -> &mut NsCommand {
        self.privileges.securebits = Some(bits as libc::c_int);
        self
    }

    /// Sets `no_new_privs` in the child: neither it nor anything it executes can gain
    /// privileges through set-user-ID programs or file capabilities (`PR_SET_NO_NEW_PRIVS`).
    pub fn no_new_privs(&mut self, yes: bool) -> &mut NsCommand {
        self.privileges.no_new_privs = yes;
        self
    }

    /// The child's umask.
    pub fn umask(&mut self, mask: libc::mode_t) -> &mut NsCommand {
        self.privileges.umask = Some(mask);
        self
    }

    /// Installs a classic BPF seccomp filter in the child (`seccomp(SECCOMP_SET_MODE_FILTER)`)
    /// as the very last step before `execve`, after the `pre_exec` hooks: the program
    /// `execve`s under it, so it must allow `execve`. The kernel needs `no_new_privs`
    /// ([`no_new_privs`](NsCommand::no_new_privs)) or `CAP_SYS_ADMIN` for it: without
    /// `no_new_privs` the child installs it earlier, before its credentials and capabilities
    /// change (while it still holds `CAP_SYS_ADMIN`), as runc does, and the rest of its setup
    /// then runs under it (the filter must allow what that setup calls). Only the
    /// child's single thread gets it (no `SECCOMP_FILTER_FLAG_TSYNC`: it has no other).
    /// Build one with a library such as libseccomp, or a deny list with
    /// [`seccomp::deny`](crate::seccomp::deny).
    ///
    /// ```no_run
    /// use ns_container::{seccomp, NsCommand};
    ///
    /// // uname(2) fails with EPERM in the child, everything else works.
    /// let status = NsCommand::new("uname")
    ///     .no_new_privs(true)
    ///     .seccomp_filter(seccomp::deny(&[libc::SYS_uname], libc::EPERM)?)
    ///     .status()?;
    /// assert!(!status.success());
    /// # Ok::<(), ns_container::Error>(())
    /// ```
    pub fn seccomp_filter(&mut self, filter: impl Into<Vec<libc::sock_filter>>) -> &mut NsCommand {
        self.seccomp = Some(filter.into());
        self
    }

    /// The privilege settings, checked against each other and the kernel.
    pub(super) fn privilege_spec(
        &self,
        moves: &[(RawFd, RawFd)],
        invalid: &impl Fn(&str) -> Error,
    ) -> Result<PrivilegeSpec> {
        let p = &self.privileges;
        if p.setsid && self.pgroup.is_some() {
            return Err(invalid(
                "setsid and process_group exclude each other (a session leader leads its own group)",
            ));
        }
        if let Some(fd) = p.ctty {
            if !p.setsid {
                return Err(invalid("a controlling terminal needs setsid"));
            }
            let given = moves.iter().any(|(_, dst)| *dst == fd);
            if !(0..=2).contains(&fd) && !given {
                return Err(invalid(&format!(
                    "the controlling terminal {fd} is no descriptor of the child"
                )));
            }
        }
        let last = crate::sys::cap_last();
        for mask in [
            p.bounding,
            p.effective,
            p.permitted,
            p.inheritable,
            p.ambient,
        ]
        .into_iter()
        .flatten()
        {
            if last < 63 && mask >> (last + 1) != 0 {
                return Err(invalid(&format!(
                    "capability {} is not known to this kernel (cap_last_cap is {last})",
                    63 - mask.leading_zeros()
                )));
            }
        }
        let mut spec = p.clone();
        // Once any set is named, the inheritable and ambient sets are what was asked, empty
        // when not named: the caller's would otherwise come back at execve (for root,
        // permitted = bounding | inheritable).
        let any = [
            p.bounding,
            p.effective,
            p.permitted,
            p.inheritable,
            p.ambient,
        ]
        .iter()
        .any(Option::is_some);
        if any {
            spec.inheritable.get_or_insert(0);
            spec.ambient.get_or_insert(0);
        }
        Ok(spec)
    }
}
