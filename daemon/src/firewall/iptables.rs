//! The iptables backend (whichever of the nft and legacy variants the
//! system's `iptables` is): a chain `MOSH-DAEMON` in table `filter` that
//! accepts the port pool, jumped to from the top of `INPUT`, for IPv4
//! (`iptables`) and IPv6 (`ip6tables`). Every step checks before it adds,
//! so a second start adds nothing twice.

use super::tool::{self, ToolError};
use crate::config::PortPool;

/// The daemon's chain.
pub const CHAIN: &str = "MOSH-DAEMON";

/// The two programs, IPv4 then IPv6.
const PROGRAMS: [&str; 2] = ["iptables", "ip6tables"];

/// Makes `MOSH-DAEMON` accept exactly the pool and `INPUT` jump to it.
pub fn install(pool: PortPool) -> Result<(), ToolError> {
    let range = pool.to_string();
    for program in PROGRAMS {
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

/// Removes every jump to `MOSH-DAEMON` and the chain itself.
pub fn remove() -> Result<(), ToolError> {
    for program in PROGRAMS {
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

/// Whether IPv4 `INPUT` holds any rule or drops by default.
pub fn in_use() -> Result<bool, ToolError> {
    let rules = tool::run("iptables", &["-w", "-S", "INPUT"], None)?;
    Ok(rules.lines().any(|line| line.trim() != "-P INPUT ACCEPT"))
}
