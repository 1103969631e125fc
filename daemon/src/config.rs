//! The daemon's configuration, `/etc/mosh-daemon/config.toml`.
//!
//! ```toml
//! port_range = "60000:61000"    # the UDP port pool, LOW:HIGH inclusive
//! max_sessions = 1000           # in all
//! max_sessions_per_user = 50
//! idle_timeout = 0              # seconds a session may go without its client; 0 = forever
//! scrollback = 10000            # lines of history kept for our clients' scrollback; 0 = off
//! attach_burst = 10             # attach requests one user may make in a row,
//! attach_per_minute = 60        # and then each minute
//! allowed_users = []            # with allowed_groups: both empty lets everyone in
//! allowed_groups = []
//! launch = "auto"               # auto | direct | systemd: how session workers start
//!
//! [firewall]
//! backend = "auto"              # auto | nftables | ufw | iptables | firewalld | none
//! check_interval = 60           # seconds between checks that the rules are in place
//!
//! [control]
//! max_connections = 512         # control connections served at once, in all
//! max_connections_per_user = 16 # of one user other than root
//! root_reserve = 32             # of max_connections, kept for root
//! request_timeout = 2           # seconds a client has to send its request line
//! ```
//!
//! Every key is optional. Unknown keys and bad values are refused with an
//! error naming the file, the line and the key; the daemon then exits with
//! [`EX_CONFIG`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// sysexits.h `EX_CONFIG`: the exit code for a configuration error.
pub const EX_CONFIG: u8 = 78;

/// Where the configuration lives unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/mosh-daemon/config.toml";

/// An inclusive range of UDP ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortPool {
    /// First port.
    pub low: u16,
    /// Last port.
    pub high: u16,
}

impl PortPool {
    /// The default pool, 60000 to 61000.
    pub const DEFAULT: PortPool = PortPool {
        low: 60000,
        high: 61000,
    };

    /// How many ports the pool holds.
    pub fn size(&self) -> usize {
        usize::from(self.high - self.low) + 1
    }

    /// Whether `port` is in the pool.
    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
}

impl fmt::Display for PortPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.low, self.high)
    }
}

impl<'de> Deserialize<'de> for PortPool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "`{text}` is not a port range LOW:HIGH with 1 <= LOW <= HIGH <= 65535"
            ))
        };
        let (low, high) = text.split_once(':').ok_or_else(bad)?;
        let low: u16 = low.trim().parse().map_err(|_| bad())?;
        let high: u16 = high.trim().parse().map_err(|_| bad())?;
        if low == 0 || low > high {
            return Err(bad());
        }
        Ok(PortPool { low, high })
    }
}

/// Which firewall the daemon drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallBackend {
    /// Whichever is active: firewalld, ufw, iptables, nftables, else none.
    #[default]
    Auto,
    /// nftables: a set of open ports in table `inet mosh_daemon`.
    Nftables,
    /// ufw: a rule for the whole range.
    Ufw,
    /// iptables: a rule for the whole range.
    Iptables,
    /// firewalld: a rule for the whole range.
    Firewalld,
    /// Leave the firewall alone.
    None,
}

impl fmt::Display for FirewallBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FirewallBackend::Auto => "auto",
            FirewallBackend::Nftables => "nftables",
            FirewallBackend::Ufw => "ufw",
            FirewallBackend::Iptables => "iptables",
            FirewallBackend::Firewalld => "firewalld",
            FirewallBackend::None => "none",
        })
    }
}

/// The `[firewall]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallConfig {
    /// The backend.
    pub backend: FirewallBackend,
    /// Seconds between checks that the rules are still in place (someone
    /// may reload the firewall); missing rules are put back.
    #[serde(deserialize_with = "positive_u64")]
    pub check_interval: u64,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        Self {
            backend: FirewallBackend::Auto,
            check_interval: 60,
        }
    }
}

/// The `[control]` table: what one local user may ask of the control
/// socket, which every user can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Control connections served at once, in all; more are refused.
    #[serde(deserialize_with = "positive")]
    pub max_connections: usize,
    /// Control connections one user other than root may hold at once.
    #[serde(deserialize_with = "positive")]
    pub max_connections_per_user: usize,
    /// Of `max_connections`, how many only root may use, so that
    /// `moshctl` as root always gets an answer.
    pub root_reserve: usize,
    /// Seconds a client has to send its request line.
    #[serde(deserialize_with = "positive_u64")]
    pub request_timeout: u64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_user: 16,
            root_reserve: 32,
            request_timeout: 2,
        }
    }
}

impl ControlConfig {
    /// The time a client has to send its request line.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout)
    }
}

/// How the daemon starts a session's worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LaunchMode {
    /// `systemd` when the daemon itself runs as a systemd service, else
    /// `direct`.
    #[default]
    Auto,
    /// As the daemon's own child process, which inherits the daemon's
    /// service sandbox.
    Direct,
    /// As a transient service unit `mosh-session-ID.service` started by
    /// the service manager, outside the daemon's sandbox; the worker
    /// receives its descriptors over a root-only handoff socket.
    Systemd,
}

impl LaunchMode {
    /// `Direct` or `Systemd`, deciding `Auto` by `under_systemd`: whether
    /// the daemon runs as a systemd service.
    pub fn resolve(self, under_systemd: bool) -> LaunchMode {
        match self {
            LaunchMode::Auto if under_systemd => LaunchMode::Systemd,
            LaunchMode::Auto => LaunchMode::Direct,
            chosen => chosen,
        }
    }
}

impl FirewallConfig {
    /// The check interval.
    pub fn check_interval(&self) -> Duration {
        Duration::from_secs(self.check_interval)
    }
}

fn positive_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    positive(deserializer).map(|n| n as u64)
}

/// The daemon's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// UDP ports handed to sessions.
    pub port_range: PortPool,
    /// Most sessions in all.
    #[serde(deserialize_with = "positive")]
    pub max_sessions: usize,
    /// Most sessions of one user.
    #[serde(deserialize_with = "positive")]
    pub max_sessions_per_user: usize,
    /// Seconds a session may go without hearing from its client before it
    /// ends; 0 keeps it forever.
    pub idle_timeout: u64,
    /// Lines of scrollback history each session keeps for our clients
    /// (0 turns the extension off); `mosh-server new --scrollback=N`
    /// overrides it for one session.
    #[serde(deserialize_with = "scrollback_lines")]
    pub scrollback: usize,
    /// Attach requests one user may make in a row.
    #[serde(deserialize_with = "positive")]
    pub attach_burst: usize,
    /// Attach requests one user may make each minute after the burst.
    #[serde(deserialize_with = "positive")]
    pub attach_per_minute: usize,
    /// Users who may start sessions (with `allowed_groups`; both empty
    /// allows everyone).
    pub allowed_users: Vec<String>,
    /// Groups whose members may start sessions.
    pub allowed_groups: Vec<String>,
    /// How session workers are started.
    pub launch: LaunchMode,
    /// The firewall settings.
    pub firewall: FirewallConfig,
    /// The control socket's limits.
    pub control: ControlConfig,
}

fn scrollback_lines<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let value = i64::deserialize(deserializer)?;
    usize::try_from(value)
        .ok()
        .filter(|&n| n <= crate::server::args::MAX_SCROLLBACK)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{value} is not a number of lines from 0 to {}",
                crate::server::args::MAX_SCROLLBACK
            ))
        })
}

fn positive<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let value = i64::deserialize(deserializer)?;
    usize::try_from(value)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| serde::de::Error::custom(format!("{value} is not a positive number")))
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port_range: PortPool::DEFAULT,
            max_sessions: 1000,
            max_sessions_per_user: 50,
            idle_timeout: 0,
            scrollback: mosh_term::history::DEFAULT_LINES,
            attach_burst: 10,
            attach_per_minute: 60,
            allowed_users: Vec::new(),
            allowed_groups: Vec::new(),
            launch: LaunchMode::Auto,
            firewall: FirewallConfig::default(),
            control: ControlConfig::default(),
        }
    }
}

impl Config {
    /// The idle timeout, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout))
    }

    /// Parses configuration text; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|error| {
            let (line, key) = match error.span() {
                Some(span) => locate(text, span.start),
                None => (None, None),
            };
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                key,
                message: error.message().to_owned(),
            }
        })?;
        let control = config.control;
        if control.root_reserve >= control.max_connections {
            let line = text
                .lines()
                .position(|line| line.trim_start().starts_with("root_reserve"))
                .map(|index| index + 1);
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                line,
                key: Some("root_reserve".into()),
                message: format!(
                    "{} leaves no control connection of the {} for other users",
                    control.root_reserve, control.max_connections
                ),
            });
        }
        Ok(config)
    }

    /// Reads `path`. A missing file gives the defaults only when
    /// `missing_ok` (the default path); a file named explicitly must exist.
    pub fn load(path: &Path, missing_ok: bool) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(error) if missing_ok && error.kind() == std::io::ErrorKind::NotFound => {
                Ok(Self::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

/// The 1-based line of byte `offset` and the key defined on that line.
fn locate(text: &str, offset: usize) -> (Option<usize>, Option<String>) {
    let offset = offset.min(text.len());
    let line = text[..offset].matches('\n').count() + 1;
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|content| content.split_once('='))
        .map(|(key, _)| key.trim().trim_matches('"').to_owned())
        .filter(|key| !key.is_empty());
    (Some(line), key)
}

/// The configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{}{}{}: {message}", path.display(),
        line.map(|l| format!(":{l}")).unwrap_or_default(),
        key.as_ref().map(|k| format!(": key `{k}`")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line of the offending key or value.
        line: Option<usize>,
        /// The offending key.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/mosh-daemon/config.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn the_shipped_example_spells_out_the_defaults() {
        let example = include_str!("../../systemd/config.toml");
        assert_eq!(parse(example).unwrap(), Config::default());
    }

    #[test]
    fn every_key() {
        let config = parse(
            "port_range = \"61000:61004\"\nmax_sessions = 7\nmax_sessions_per_user = 2\n\
             idle_timeout = 3600\nallowed_users = [\"alice\"]\nallowed_groups = [\"mosh\"]\n\
             launch = \"systemd\"\n[firewall]\nbackend = \"nftables\"\ncheck_interval = 5\n\
             [control]\nmax_connections = 9\nmax_connections_per_user = 3\nroot_reserve = 2\n\
             request_timeout = 4\n",
        )
        .unwrap();
        assert_eq!(
            config.port_range,
            PortPool {
                low: 61000,
                high: 61004
            }
        );
        assert_eq!(config.port_range.size(), 5);
        assert_eq!(config.max_sessions, 7);
        assert_eq!(config.max_sessions_per_user, 2);
        assert_eq!(config.idle_timeout(), Some(Duration::from_secs(3600)));
        assert_eq!(config.allowed_users, ["alice"]);
        assert_eq!(config.allowed_groups, ["mosh"]);
        assert_eq!(config.firewall.backend, FirewallBackend::Nftables);
        assert_eq!(config.firewall.check_interval(), Duration::from_secs(5));
        assert_eq!(config.launch, LaunchMode::Systemd);
        assert_eq!(
            config.control,
            ControlConfig {
                max_connections: 9,
                max_connections_per_user: 3,
                root_reserve: 2,
                request_timeout: 4,
            }
        );
        assert_eq!(config.control.request_timeout(), Duration::from_secs(4));
    }

    #[test]
    fn launch_modes() {
        for (text, mode) in [
            ("", LaunchMode::Auto),
            ("launch = \"auto\"", LaunchMode::Auto),
            ("launch = \"direct\"", LaunchMode::Direct),
            ("launch = \"systemd\"", LaunchMode::Systemd),
        ] {
            assert_eq!(parse(text).unwrap().launch, mode, "{text:?}");
        }
        for under_systemd in [false, true] {
            assert_eq!(
                LaunchMode::Direct.resolve(under_systemd),
                LaunchMode::Direct
            );
            assert_eq!(
                LaunchMode::Systemd.resolve(under_systemd),
                LaunchMode::Systemd
            );
        }
        assert_eq!(LaunchMode::Auto.resolve(true), LaunchMode::Systemd);
        assert_eq!(LaunchMode::Auto.resolve(false), LaunchMode::Direct);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let error = parse("max_sessions = 3\n\nport_rnage = \"1:2\"\n").unwrap_err();
        assert!(
            error.starts_with("/etc/mosh-daemon/config.toml:3: key `port_rnage`: unknown field"),
            "{error}"
        );
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        for (text, line, key) in [
            ("port_range = \"9:2\"", 1, "port_range"),
            ("\nport_range = \"0:2\"", 2, "port_range"),
            ("max_sessions = 0", 1, "max_sessions"),
            ("max_sessions_per_user = -1", 1, "max_sessions_per_user"),
            ("idle_timeout = \"long\"", 1, "idle_timeout"),
            ("scrollback = -1", 1, "scrollback"),
            ("scrollback = 2000000", 1, "scrollback"),
            ("[firewall]\nbackend = \"pf\"", 2, "backend"),
            ("[firewall]\nbackedn = \"ufw\"", 2, "backedn"),
            ("[firewall]\ncheck_interval = 0", 2, "check_interval"),
            ("firewall = \"nftables\"", 1, "firewall"),
            ("\n\nlaunch = \"fork\"", 3, "launch"),
            ("launch = true", 1, "launch"),
            ("allowed_users = \"bob\"", 1, "allowed_users"),
            ("[control]\nmax_connections = 0", 2, "max_connections"),
            ("[control]\n\nrequest_timeout = 0", 3, "request_timeout"),
            ("[control]\nroot_reserve = -1", 2, "root_reserve"),
            (
                "[control]\nmax_connections = 8\nroot_reserve = 8",
                3,
                "root_reserve",
            ),
            ("[control]\nmax_connection = 5", 2, "max_connection"),
        ] {
            let error = parse(text).unwrap_err();
            let prefix = format!("/etc/mosh-daemon/config.toml:{line}: key `{key}`: ");
            assert!(error.starts_with(&prefix), "{text:?}: {error}");
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error = parse("max_sessions = 3\nthis is not toml\n").unwrap_err();
        assert!(
            error.starts_with("/etc/mosh-daemon/config.toml:2"),
            "{error}"
        );
    }

    #[test]
    fn missing_default_file_is_the_defaults_but_a_named_one_is_an_error() {
        let path = Path::new("/nonexistent/mosh-daemon.toml");
        assert_eq!(Config::load(path, true).unwrap(), Config::default());
        assert!(Config::load(path, false).is_err());
    }
}
