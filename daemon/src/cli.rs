//! The command lines of `moshctl` and `mosh-daemon`, as clap definitions:
//! the programs parse with them, and the packaging generates man pages and
//! shell completions from [`moshctl_command`] and [`daemon_command`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::control::KillTarget;

/// `moshctl`: lists, ends and inspects the sessions of `mosh-daemon`, and
/// the firewall rules it manages.
#[derive(Debug, Parser)]
#[command(
    name = "moshctl",
    version,
    about = "Lists, ends and inspects the sessions of mosh-daemon",
    long_about = "Lists, ends and inspects the sessions of mosh-daemon, and the firewall \
                  rules it manages. A user sees and kills only their own sessions; root sees \
                  all of them and manages the firewall. The daemon decides, from the control \
                  socket's peer credentials (MOSH_DAEMON_SOCKET names another socket)."
)]
pub struct Moshctl {
    /// What to do.
    #[command(subcommand)]
    pub command: MoshctlCommand,
}

/// A `moshctl` subcommand.
#[derive(Debug, Subcommand)]
pub enum MoshctlCommand {
    /// List your sessions (root: everyone's).
    ///
    /// Each with its id, user, worker pid, port, state (attached,
    /// detached-SINCE, waiting or closing), client address, last contact
    /// (now for an attached client, which was heard in the last 10 s),
    /// created, how many clients attached, cipher suite (aes-128-ocb, stock
    /// mosh's, or aes-256-gcm+x25519 once our client and server switched to
    /// the native cipher) and the command in the foreground of the
    /// session's terminal. The JSON form also has the scrollback history
    /// each session holds for our clients (`history`: `lines` and `bytes`)
    /// and whether its worker calls the client live (`client_live`).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End sessions: by id, every session of a user, or the idle ones.
    ///
    /// Each session's worker gets SIGTERM: it says goodbye to its client
    /// (waiting at most 10 seconds for the answer) and exits. A worker
    /// still running 15 seconds after SIGTERM (stopped, or hung) gets
    /// SIGKILL from the daemon.
    Kill(KillArgs),
    /// Show the daemon's version, uptime, sessions and port use.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show or manage the firewall rules the daemon keeps for its ports.
    Firewall {
        /// What to do with the firewall.
        #[command(subcommand)]
        action: FirewallAction,
    },
}

/// Which sessions `moshctl kill` ends: exactly one of the three.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["ids", "user", "idle"])))]
pub struct KillArgs {
    /// Session ids, as `moshctl list` shows them.
    pub ids: Vec<String>,
    /// Every session of this user.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Every session whose client was last heard from at least this long
    /// ago: 90, 90s, 15m, 2h or 7d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle: Option<Duration>,
}

impl KillArgs {
    /// The request's target.
    pub fn target(self) -> KillTarget {
        KillTarget {
            ids: self.ids,
            user: self.user,
            idle_secs: self.idle.map(|idle| idle.as_secs()),
        }
    }
}

/// `moshctl firewall …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum FirewallAction {
    /// Show the backend, whether its rules are in place, and what is open.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put the rules in place again for every session (root only).
    Open,
    /// Remove every rule the daemon added and stop adding rules until
    /// `open` (root only).
    Close,
}

/// `90`, `90s`, `15m`, `2h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("bad duration {text:?} (examples: 90, 90s, 15m, 2h, 7d)");
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(split) => text.split_at(split),
        None => (text, "s"),
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    number
        .checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// `mosh-daemon`: the system service that owns mosh sessions and their
/// ports; runs in the foreground (systemd `Type=notify`).
#[derive(Debug, Parser)]
#[command(
    name = "mosh-daemon",
    version,
    about = "The system service that owns mosh sessions, their UDP ports and firewall rules",
    long_about = "The system service that owns mosh sessions, their UDP ports and firewall \
                  rules. It runs in the foreground under systemd (Type=notify) and logs to \
                  journald when started by systemd, else to standard error. `mosh-server new` \
                  asks it for sessions over its control socket; `moshctl` administers it. \
                  The control socket is open to every local user: every field of a request \
                  is checked before any worker starts, and the [control] settings of \
                  mosh-daemon.toml(5) bound how many connections one user may hold and how \
                  long a request line may take, with a slice only root may use. \
                  SIGHUP reloads the configuration; SIGTERM stops the daemon and removes its \
                  firewall rules, leaving sessions running for the next start to adopt."
)]
pub struct DaemonArgs {
    /// The configuration file (default /etc/mosh-daemon/config.toml, which
    /// may be missing; a file named here must exist).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The runtime directory holding the control socket and the sessions'
    /// registration sockets.
    #[arg(long, value_name = "DIR", default_value = crate::service::DEFAULT_RUNTIME_DIR)]
    pub runtime_dir: PathBuf,
    /// Log debug messages too.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `moshctl`'s clap command, for man pages and completions.
pub fn moshctl_command() -> clap::Command {
    Moshctl::command()
}

/// `mosh-daemon`'s clap command, for man pages and completions.
pub fn daemon_command() -> clap::Command {
    DaemonArgs::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definitions_are_consistent() {
        moshctl_command().debug_assert();
        daemon_command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    fn parse(args: &[&str]) -> Result<MoshctlCommand, clap::Error> {
        Moshctl::try_parse_from(std::iter::once("moshctl").chain(args.iter().copied()))
            .map(|parsed| parsed.command)
    }

    #[test]
    fn kill_needs_exactly_one_target() {
        assert!(parse(&["kill"]).is_err());
        assert!(parse(&["kill", "ab", "--user", "bob"]).is_err());
        assert!(parse(&["kill", "--idle", "1h", "--user", "bob"]).is_err());
        assert!(parse(&["kill", "--idle", "soon"]).is_err());
        let Ok(MoshctlCommand::Kill(args)) = parse(&["kill", "ab", "cd"]) else {
            panic!("kill ab cd");
        };
        assert_eq!(args.target().ids, ["ab", "cd"]);
        let Ok(MoshctlCommand::Kill(args)) = parse(&["kill", "--idle", "1h"]) else {
            panic!("kill --idle 1h");
        };
        assert_eq!(args.target().idle_secs, Some(3600));
    }

    #[test]
    fn firewall_actions() {
        assert!(matches!(
            parse(&["firewall", "status", "--json"]),
            Ok(MoshctlCommand::Firewall {
                action: FirewallAction::Status { json: true }
            })
        ));
        assert!(matches!(
            parse(&["firewall", "close"]),
            Ok(MoshctlCommand::Firewall {
                action: FirewallAction::Close
            })
        ));
        assert!(parse(&["firewall"]).is_err());
        assert!(parse(&["firewall", "flush"]).is_err());
        assert!(parse(&["list", "--jsn"]).is_err());
    }
}
