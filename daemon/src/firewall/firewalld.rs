//! The firewalld backend: the port pool added to the runtime configuration
//! of the default zone with `firewall-cmd` (never the permanent one, so
//! a reboot or `firewall-cmd --reload` forgets it and the next daemon start
//! adds it again).

use super::tool::{self, ToolError};
use crate::config::PortPool;

/// `LOW-HIGH/udp`, firewalld's spelling of the pool.
fn port_spec(pool: PortPool) -> String {
    format!("{}-{}/udp", pool.low, pool.high)
}

/// Whether firewalld runs.
pub fn running() -> Result<bool, ToolError> {
    match tool::run("firewall-cmd", &["--state"], None) {
        Ok(state) => Ok(state.trim() == "running"),
        Err(ToolError::Failed { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Adds the pool to the default zone (firewalld ignores a port it has).
pub fn install(pool: PortPool) -> Result<(), ToolError> {
    if !running()? {
        return Err(ToolError::Unusable {
            command: "firewall-cmd --state".into(),
            reason: "firewalld is not running".into(),
        });
    }
    let spec = format!("--add-port={}", port_spec(pool));
    tool::run("firewall-cmd", &[&spec], None).map(drop)
}

/// Whether the default zone has the pool.
pub fn in_place(pool: PortPool) -> Result<bool, ToolError> {
    let spec = format!("--query-port={}", port_spec(pool));
    match tool::run("firewall-cmd", &[&spec], None) {
        Ok(answer) => Ok(answer.trim() == "yes"),
        Err(ToolError::Failed { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Removes the pool from the default zone.
pub fn remove(pool: PortPool) -> Result<(), ToolError> {
    if !running()? {
        return Ok(());
    }
    let spec = format!("--remove-port={}", port_spec(pool));
    tool::run("firewall-cmd", &[&spec], None).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_spelled_with_a_dash() {
        assert_eq!(
            port_spec(PortPool {
                low: 60000,
                high: 61000
            }),
            "60000-61000/udp"
        );
    }
}
