//! The ufw backend: one `allow` rule for the whole port pool, tagged with
//! the comment `mosh-daemon`, added at start and deleted at stop. Packages
//! also ship the application profile `/etc/ufw/applications.d/mosh-daemon`
//! for administrators who prefer `ufw allow mosh-daemon`.

use super::tool::{self, ToolError};
use crate::config::PortPool;

/// The comment on the daemon's rule.
const COMMENT: &str = "mosh-daemon";

/// Removes rules an earlier daemon left, then allows the pool.
pub fn install(pool: PortPool) -> Result<(), ToolError> {
    remove()?;
    let range = pool.to_string();
    tool::run(
        "ufw",
        &[
            "allow", "proto", "udp", "from", "any", "to", "any", "port", &range, "comment", COMMENT,
        ],
        None,
    )
    .map(drop)
}

/// Deletes every rule tagged `mosh-daemon`, as `ufw show added` lists them.
pub fn remove() -> Result<(), ToolError> {
    let added = tool::run("ufw", &["show", "added"], None)?;
    for rule in tagged_rules(&added) {
        let mut args = vec!["delete"];
        args.extend(rule.iter().map(String::as_str));
        tool::run("ufw", &args, None)?;
    }
    Ok(())
}

/// Whether the daemon's rule for `pool` is there.
pub fn in_place(pool: PortPool) -> Result<bool, ToolError> {
    let added = tool::run("ufw", &["show", "added"], None)?;
    let range = pool.to_string();
    Ok(tagged_rules(&added)
        .iter()
        .any(|rule| rule.iter().any(|word| word.starts_with(&range))))
}

/// Whether ufw is enabled.
pub fn active() -> Result<bool, ToolError> {
    let status = tool::run("ufw", &["status"], None)?;
    Ok(status.lines().any(|line| line.trim() == "Status: active"))
}

/// The rules of `ufw show added` that carry the daemon's comment, as the
/// words after `ufw` with the comment left out.
fn tagged_rules(added: &str) -> Vec<Vec<String>> {
    let suffix = format!(" comment '{COMMENT}'");
    added
        .lines()
        .filter_map(|line| line.trim().strip_prefix("ufw "))
        .filter_map(|rule| rule.strip_suffix(&suffix))
        .map(|rule| rule.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tagged_rules_are_taken() {
        let added = "Added user rules (see 'ufw status' for running firewall):\n\
                     ufw allow 22/tcp\n\
                     ufw allow 60000:61000/udp comment 'mosh-daemon'\n\
                     ufw allow 7000/udp comment 'mosh-daemon-old'\n";
        assert_eq!(tagged_rules(added), [["allow", "60000:61000/udp"]]);
    }
}
