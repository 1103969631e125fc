//! The iptables backend: a chain `MOSH-DAEMON` in table `filter` that
//! accepts the port pool, jumped to from the top of `INPUT`, for IPv4 and
//! IPv6. Every step checks before it adds, so a second start adds nothing
//! twice.
//!
//! Two variants share the kernel: nf_tables (what `iptables` is on current
//! distributions) and the legacy x_tables. The daemon uses the system's
//! `iptables`, unless only the legacy tables filter input, in which case it
//! uses `iptables-legacy`: a rule in the variant nobody uses would be
//! overruled by the other's drop.

use super::tool::{self, ToolError};
use crate::config::PortPool;

/// The daemon's chain.
pub const CHAIN: &str = "MOSH-DAEMON";

/// Which iptables programs the daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `iptables` and `ip6tables`, whichever variant the system chose.
    System,
    /// `iptables-legacy` and `ip6tables-legacy`.
    Legacy,
}

impl Variant {
    /// The variant whose rules filter input here.
    pub fn detect() -> Variant {
        let legacy_filters = matches!(filters_input("iptables-legacy"), Ok(true));
        if legacy_filters && !matches!(filters_input("iptables"), Ok(true)) {
            Variant::Legacy
        } else {
            Variant::System
        }
    }

    /// The backend's name in `moshctl firewall status`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::System => "iptables",
            Variant::Legacy => "iptables-legacy",
        }
    }

    /// The programs, IPv4 then IPv6.
    fn programs(self) -> [&'static str; 2] {
        match self {
            Variant::System => ["iptables", "ip6tables"],
            Variant::Legacy => ["iptables-legacy", "ip6tables-legacy"],
        }
    }
}

/// Makes `MOSH-DAEMON` accept exactly the pool and `INPUT` jump to it.
pub fn install(variant: Variant, pool: PortPool) -> Result<(), ToolError> {
    let range = pool.to_string();
    for program in variant.programs() {
        if tool::run(program, &["-w", "-S", CHAIN], None).is_err() {
            tool::run(program, &["-w", "-N", CHAIN], None)?;
        }
        tool::run(program, &["-w", "-F", CHAIN], None)?;
        tool::run(
            program,
            &[
                "-w", "-A", CHAIN, "-p", "udp", "--dport", &range, "-j", "ACCEPT",
            ],
            None,
        )?;
        if tool::run(program, &["-w", "-C", "INPUT", "-j", CHAIN], None).is_err() {
            tool::run(program, &["-w", "-I", "INPUT", "1", "-j", CHAIN], None)?;
        }
    }
    Ok(())
}

/// Whether `INPUT` still jumps to `MOSH-DAEMON`, for IPv4 and IPv6.
pub fn in_place(variant: Variant) -> Result<bool, ToolError> {
    for program in variant.programs() {
        if tool::run(program, &["-w", "-C", "INPUT", "-j", CHAIN], None).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes every jump to `MOSH-DAEMON` and the chain itself.
pub fn remove(variant: Variant) -> Result<(), ToolError> {
    for program in variant.programs() {
        if tool::run(program, &["-w", "-S", CHAIN], None).is_err() {
            continue;
        }
        while tool::run(program, &["-w", "-C", "INPUT", "-j", CHAIN], None).is_ok() {
            tool::run(program, &["-w", "-D", "INPUT", "-j", CHAIN], None)?;
        }
        tool::run(program, &["-w", "-F", CHAIN], None)?;
        tool::run(program, &["-w", "-X", CHAIN], None)?;
    }
    Ok(())
}

/// Whether either variant's IPv4 `INPUT` holds a rule or drops by
/// default.
pub fn in_use() -> Result<bool, ToolError> {
    match filters_input("iptables-legacy") {
        Ok(true) => Ok(true),
        _ => filters_input("iptables"),
    }
}

/// Whether `program`'s IPv4 `INPUT` holds a rule or drops by default.
fn filters_input(program: &str) -> Result<bool, ToolError> {
    let rules = tool::run(program, &["-w", "-S", "INPUT"], None)?;
    Ok(rules
        .lines()
        .any(|line| !line.starts_with('#') && line.trim() != "-P INPUT ACCEPT"))
}
