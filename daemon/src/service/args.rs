//! The `mosh-daemon` command line (clap derive), also the source of its man
//! page and shell completions.

use std::path::PathBuf;

use clap::Parser;

use super::DEFAULT_RUNTIME_DIR;
use crate::config::DEFAULT_PATH;

/// The system service that owns mosh sessions, their UDP ports and the
/// session registry.
///
/// mosh-daemon runs in the foreground, normally as the systemd service
/// mosh-daemon.service (Type=notify): it reports READY=1 once its control
/// socket is bound and STATUS= with the session count. `mosh-server new`
/// asks it for sessions over /run/mosh-daemon/control.sock, and `moshctl`
/// lists and ends them. Each session runs in mosh-daemon-worker, installed
/// next to this program, as its user. SIGHUP reloads the configuration;
/// SIGTERM stops the daemon and leaves running sessions alone, to be
/// adopted again by the next start.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "mosh-daemon", version)]
pub struct DaemonArgs {
    /// Configuration file (default: /etc/mosh-daemon/config.toml; that one
    /// may be missing, a file named here must exist).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Runtime directory for the control socket and session registrations.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUNTIME_DIR)]
    pub runtime_dir: PathBuf,
    /// Log at debug level (MOSH_DAEMON_LOG takes a tracing filter instead).
    #[arg(short, long)]
    pub verbose: bool,
}

impl DaemonArgs {
    /// The configuration file to read, and whether it may be missing.
    pub fn config_file(&self) -> (PathBuf, bool) {
        match &self.config {
            Some(path) => (path.clone(), false),
            None => (PathBuf::from(DEFAULT_PATH), true),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_valid() {
        DaemonArgs::command().debug_assert();
    }

    #[test]
    fn defaults_and_every_option() {
        let args = DaemonArgs::try_parse_from(["mosh-daemon"]).unwrap();
        assert_eq!(
            args.config_file(),
            (PathBuf::from("/etc/mosh-daemon/config.toml"), true)
        );
        assert_eq!(args.runtime_dir, PathBuf::from("/run/mosh-daemon"));
        assert!(!args.verbose);
        let args = DaemonArgs::try_parse_from([
            "mosh-daemon",
            "--config",
            "/tmp/c.toml",
            "--runtime-dir=/tmp/run",
            "-v",
        ])
        .unwrap();
        assert_eq!(args.config_file(), (PathBuf::from("/tmp/c.toml"), false));
        assert_eq!(args.runtime_dir, PathBuf::from("/tmp/run"));
        assert!(args.verbose);
        assert!(DaemonArgs::try_parse_from(["mosh-daemon", "--bogus"]).is_err());
        assert!(DaemonArgs::try_parse_from(["mosh-daemon", "--config"]).is_err());
    }
}
