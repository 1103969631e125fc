//! The `mosh-server` command line, parsed the way mosh 1.4 parses it, so that
//! stock `mosh` (and scripts written for it) can start our server unchanged.
//!
//! ```text
//! mosh-server new [-s] [-v] [-i LOCALADDR] [-p PORT[:PORT2]] [-c COLORS]
//!                 [-l NAME=VALUE]... [-- COMMAND...]
//! mosh-server [IP [PORT]]            (legacy form)
//! ```
//!
//! `--scrollback=N` (ours; also `--scrollback N`), anywhere before `--`,
//! keeps N lines of scrollback history for our clients (0 turns it off).
//!
//! `--help`/`-h` and `--version` are honoured anywhere before `--`. Options
//! after `new` follow getopt rules (clusters such as `-vv`, attached or
//! separate arguments, non-options ignored); `-@ ARG` is accepted and ignored.
//! An unknown option only earns a usage message, as with stock mosh.

use std::ffi::OsString;
use std::fmt;

/// The usage line, with the program name filled in.
pub fn usage(program: &str) -> String {
    format!(
        "Usage: {program} new [-s] [-v] [-i LOCALADDR] [-p PORT[:PORT2]] [-c COLORS] [-l NAME=VALUE] [-- COMMAND...]"
    )
}

/// An inclusive range of UDP ports to try, lowest first. A single port 0
/// means "let the OS choose".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port tried.
    pub low: u16,
    /// Last port tried.
    pub high: u16,
}

impl PortRange {
    /// mosh's default range: 60001 to 60999.
    pub const DEFAULT: PortRange = PortRange {
        low: 60001,
        high: 60999,
    };

    /// Parses `PORT` or `LOW:HIGH` with mosh's rules and messages.
    pub fn parse(text: &str) -> Result<Self, PortRangeError> {
        let (low, rest) = c_strtol(text);
        let low = match low {
            Some(value) if rest.is_empty() || rest.starts_with(':') => value,
            _ => return Err(PortRangeError::InvalidLow(text.to_owned())),
        };
        let low = u16::try_from(low).map_err(|_| PortRangeError::LowOutOfRange(low))?;
        let Some(high_text) = rest.strip_prefix(':') else {
            return Ok(Self { low, high: low });
        };
        let high = match c_strtol(high_text) {
            (Some(value), "") => value,
            _ => return Err(PortRangeError::InvalidHigh(high_text.to_owned())),
        };
        let high = u16::try_from(high).map_err(|_| PortRangeError::HighOutOfRange(high))?;
        if low > high {
            return Err(PortRangeError::LowAboveHigh(low, high));
        }
        if low == 0 {
            return Err(PortRangeError::LowZeroInRange);
        }
        Ok(Self { low, high })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}:{}", self.low, self.high)
        }
    }
}

/// Why a `-p` value was refused (messages as stock mosh prints them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    /// The first number is not a number.
    #[error("Invalid (low) port number ({0})")]
    InvalidLow(String),
    /// The first number is out of range.
    #[error("(Low) port number {0} outside valid range [0..65535]")]
    LowOutOfRange(i64),
    /// The number after `:` is not a number.
    #[error("Invalid high port number ({0})")]
    InvalidHigh(String),
    /// The number after `:` is out of range.
    #[error("High port number {0} outside valid range [0..65535]")]
    HighOutOfRange(i64),
    /// The range is backwards.
    #[error("Low port {0} greater than high port {1}")]
    LowAboveHigh(u16, u16),
    /// Port 0 only makes sense alone.
    #[error("Low port 0 incompatible with port ranges")]
    LowZeroInRange,
}

/// Where to bind, as chosen by `-i`, `-s` or the legacy `IP` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddress {
    /// Any interface.
    Any,
    /// This address first, then any interface.
    Preferred(String),
}

/// A request to run a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Where to bind.
    pub bind: BindAddress,
    /// Which ports to try.
    pub ports: PortRange,
    /// Colours of the client's terminal (`-c`); 256 selects
    /// `TERM=xterm-256color`.
    pub colors: i32,
    /// How many times `-v` was given.
    pub verbose: u32,
    /// `NAME=VALUE` locale settings to fall back on (`-l`).
    pub locale_vars: Vec<String>,
    /// The command after `--`, or `None` for the login shell.
    pub command: Option<Vec<OsString>>,
    /// `--scrollback=N`: lines of history kept for our clients; `None`
    /// leaves the default (or the daemon's setting).
    pub scrollback: Option<usize>,
}

/// The most lines `--scrollback` may ask for.
pub const MAX_SCROLLBACK: usize = 1_000_000;

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            bind: BindAddress::Any,
            ports: PortRange::DEFAULT,
            colors: 0,
            verbose: 0,
            locale_vars: Vec::new(),
            command: None,
            scrollback: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Print usage to stdout and exit 0.
    Help,
    /// Print the version block to stdout and exit 0.
    Version,
    /// Run a server. `warnings` go to stderr first (unknown options earn a
    /// usage line; `-s` without a usable `SSH_CONNECTION` says so).
    Run {
        /// The server settings.
        options: ServerOptions,
        /// Lines for stderr.
        warnings: Vec<String>,
    },
}

/// A command line that cannot run: print the message and the usage line to
/// stderr and exit 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// `-c` was not an integer.
    #[error("Bad number of colors ({0})")]
    BadColors(String),
    /// `-p` (or the legacy port argument) was refused.
    #[error("{reason}\nBad UDP port range ({text})")]
    BadPortRange {
        /// The refused text.
        text: String,
        /// Why.
        reason: PortRangeError,
    },
    /// The legacy form had too many arguments.
    #[error("too many arguments")]
    TooManyArguments,
    /// An argument was not valid UTF-8 (commands after `--` may be any bytes).
    #[error("argument is not valid UTF-8: {0:?}")]
    NotUtf8(OsString),
    /// `--scrollback` was not a number of lines from 0 to [`MAX_SCROLLBACK`].
    #[error("Bad --scrollback ({0}): a number of lines from 0 to {MAX_SCROLLBACK}")]
    BadScrollback(String),
}

/// Parses the arguments after the program name. `ssh_connection` is the
/// value of `SSH_CONNECTION`, used by `-s`.
pub fn parse(args: &[OsString], ssh_connection: Option<&str>) -> Result<Invocation, ArgsError> {
    let (options_part, command) = match args.iter().position(|a| a == "--") {
        Some(split) => {
            let after = &args[split + 1..];
            (&args[..split], (!after.is_empty()).then(|| after.to_vec()))
        }
        None => (args, None),
    };
    let mut words = Vec::with_capacity(options_part.len());
    let mut scrollback = None;
    let mut parts = options_part.iter();
    while let Some(arg) = parts.next() {
        let word = arg
            .to_str()
            .ok_or_else(|| ArgsError::NotUtf8(arg.clone()))?;
        if word == "--help" || word == "-h" {
            return Ok(Invocation::Help);
        }
        if word == "--version" {
            return Ok(Invocation::Version);
        }
        if let Some(value) = word.strip_prefix("--scrollback=") {
            scrollback = Some(parse_scrollback(value)?);
            continue;
        }
        if word == "--scrollback" {
            let value = parts.next().and_then(|v| v.to_str()).unwrap_or("");
            scrollback = Some(parse_scrollback(value)?);
            continue;
        }
        words.push(word);
    }
    let mut options = ServerOptions {
        command,
        scrollback,
        ..ServerOptions::default()
    };
    let mut warnings = Vec::new();
    match words.as_slice() {
        ["new", rest @ ..] => parse_new(rest, ssh_connection, &mut options, &mut warnings)?,
        [] => {}
        [ip] => options.bind = BindAddress::Preferred((*ip).to_owned()),
        [ip, port] => {
            options.bind = BindAddress::Preferred((*ip).to_owned());
            options.ports = parse_ports(port)?;
        }
        _ => return Err(ArgsError::TooManyArguments),
    }
    Ok(Invocation::Run { options, warnings })
}

fn parse_scrollback(text: &str) -> Result<usize, ArgsError> {
    text.parse::<usize>()
        .ok()
        .filter(|&lines| lines <= MAX_SCROLLBACK && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ArgsError::BadScrollback(text.to_owned()))
}

fn parse_ports(text: &str) -> Result<PortRange, ArgsError> {
    PortRange::parse(text).map_err(|reason| ArgsError::BadPortRange {
        text: text.to_owned(),
        reason,
    })
}

/// getopt over `@:i:p:c:svl:`.
fn parse_new(
    words: &[&str],
    ssh_connection: Option<&str>,
    options: &mut ServerOptions,
    warnings: &mut Vec<String>,
) -> Result<(), ArgsError> {
    const TAKES_ARGUMENT: &str = "@ipcl";
    let mut index = 0;
    while index < words.len() {
        let word = words[index];
        index += 1;
        let Some(cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) else {
            continue;
        };
        for (offset, flag) in cluster.char_indices() {
            if !TAKES_ARGUMENT.contains(flag) {
                match flag {
                    's' => options.bind = ssh_bind_address(ssh_connection, warnings),
                    'v' => options.verbose += 1,
                    other => warnings.push(format!("invalid option -- '{other}'")),
                }
                continue;
            }
            let attached = &cluster[offset + flag.len_utf8()..];
            let value = if !attached.is_empty() {
                attached
            } else if let Some(next) = words.get(index) {
                index += 1;
                next
            } else {
                warnings.push(format!("option requires an argument -- '{flag}'"));
                break;
            };
            match flag {
                'i' => options.bind = BindAddress::Preferred(value.to_owned()),
                'p' => options.ports = parse_ports(value)?,
                'c' => {
                    options.colors = match c_strtol(value) {
                        (Some(n), "") => {
                            i32::try_from(n).map_err(|_| ArgsError::BadColors(value.to_owned()))?
                        }
                        _ => return Err(ArgsError::BadColors(value.to_owned())),
                    }
                }
                'l' => options.locale_vars.push(value.to_owned()),
                _ => {}
            }
            break;
        }
    }
    Ok(())
}

/// `-s`: the server-side address of the ssh connection (third field of
/// `SSH_CONNECTION`, IPv4-mapped prefix removed), or any interface.
fn ssh_bind_address(ssh_connection: Option<&str>, warnings: &mut Vec<String>) -> BindAddress {
    let Some(value) = ssh_connection else {
        warnings.push("Warning: SSH_CONNECTION not found; binding to any interface.".into());
        return BindAddress::Any;
    };
    let Some(local) = value.split_whitespace().nth(2) else {
        warnings.push("Warning: Could not parse SSH_CONNECTION; binding to any interface.".into());
        return BindAddress::Any;
    };
    const MAPPED: &str = "::ffff:";
    let local = match local.get(..MAPPED.len()) {
        Some(prefix) if local.len() > MAPPED.len() && prefix.eq_ignore_ascii_case(MAPPED) => {
            &local[MAPPED.len()..]
        }
        _ => local,
    };
    BindAddress::Preferred(local.to_owned())
}

/// C's `strtol(text, &end, 10)`: leading blanks, an optional sign, digits.
/// Returns the value (`None` on overflow) and the unparsed rest; with no
/// digits the value is 0 and the rest is the whole input.
fn c_strtol(text: &str) -> (Option<i64>, &str) {
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let digits = unsigned.len()
        - unsigned
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    if digits == 0 {
        return (Some(0), text);
    }
    let value = unsigned[..digits]
        .parse::<i64>()
        .ok()
        .map(|v| if negative { -v } else { v });
    (value, &unsigned[digits..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn run(words: &[&str]) -> (ServerOptions, Vec<String>) {
        match parse(&args(words), None).unwrap() {
            Invocation::Run { options, warnings } => (options, warnings),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn scrollback_before_or_after_new() {
        assert_eq!(run(&["new"]).0.scrollback, None);
        assert_eq!(run(&["new", "--scrollback=100"]).0.scrollback, Some(100));
        assert_eq!(run(&["--scrollback", "0", "new"]).0.scrollback, Some(0));
        for bad in ["-1", "lots", "", "1000001", "+5"] {
            let words = ["new".to_owned(), format!("--scrollback={bad}")];
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            assert_eq!(
                parse(&args(&words), None),
                Err(ArgsError::BadScrollback(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(
            parse(&args(&["new", "--scrollback"]), None),
            Err(ArgsError::BadScrollback(String::new()))
        );
    }

    #[test]
    fn what_stock_mosh_sends() {
        let (options, warnings) = run(&[
            "new",
            "-vv",
            "-@",
            "new",
            "-c",
            "256",
            "-i",
            "127.0.0.1",
            "-p",
            "60400",
            "-l",
            "LANG=C.UTF-8",
            "--",
            "sh",
            "-c",
            "echo hi",
        ]);
        assert!(warnings.is_empty());
        assert_eq!(options.verbose, 2);
        assert_eq!(options.colors, 256);
        assert_eq!(options.bind, BindAddress::Preferred("127.0.0.1".into()));
        assert_eq!(
            options.ports,
            PortRange {
                low: 60400,
                high: 60400
            }
        );
        assert_eq!(options.locale_vars, ["LANG=C.UTF-8"]);
        assert_eq!(options.command, Some(args(&["sh", "-c", "echo hi"])));
    }

    #[test]
    fn defaults_and_legacy_forms() {
        let (options, _) = run(&["new"]);
        assert_eq!(options, ServerOptions::default());
        assert_eq!(run(&[]).0, ServerOptions::default());
        let (options, _) = run(&["10.1.1.1", "60010"]);
        assert_eq!(options.bind, BindAddress::Preferred("10.1.1.1".into()));
        assert_eq!(options.ports.low, 60010);
        assert_eq!(
            parse(&args(&["a", "b", "c"]), None),
            Err(ArgsError::TooManyArguments)
        );
        assert_eq!(run(&["new", "--"]).0.command, None);
    }

    #[test]
    fn help_and_version_win_anywhere_before_the_command() {
        assert_eq!(
            parse(&args(&["new", "-v", "--help"]), None),
            Ok(Invocation::Help)
        );
        assert_eq!(parse(&args(&["-h"]), None), Ok(Invocation::Help));
        assert_eq!(
            parse(&args(&["new", "--version"]), None),
            Ok(Invocation::Version)
        );
        let (options, _) = run(&["new", "--", "prog", "--help"]);
        assert_eq!(options.command, Some(args(&["prog", "--help"])));
    }

    #[test]
    fn getopt_clusters_and_attached_arguments() {
        let (options, _) = run(&["new", "-svp60005:60010", "-c256", "stray", "-l", "LC_ALL=x"]);
        assert_eq!(options.verbose, 1);
        assert_eq!(
            options.ports,
            PortRange {
                low: 60005,
                high: 60010
            }
        );
        assert_eq!(options.colors, 256);
        assert_eq!(options.locale_vars, ["LC_ALL=x"]);
        assert_eq!(options.bind, BindAddress::Any);
    }

    #[test]
    fn unknown_options_warn_and_continue() {
        let (options, warnings) = run(&["new", "-x", "-v", "-p"]);
        assert_eq!(options.verbose, 1);
        assert_eq!(
            warnings,
            [
                "invalid option -- 'x'",
                "option requires an argument -- 'p'"
            ]
        );
    }

    #[test]
    fn ssh_connection_selects_the_server_address() {
        let parse_s = |env: Option<&str>| match parse(&args(&["new", "-s"]), env).unwrap() {
            Invocation::Run { options, warnings } => (options.bind, warnings),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            parse_s(Some("10.0.0.2 51000 10.0.0.1 22")).0,
            BindAddress::Preferred("10.0.0.1".into())
        );
        assert_eq!(
            parse_s(Some("::ffff:10.0.0.2 51000 ::FFFF:10.0.0.1 22")).0,
            BindAddress::Preferred("10.0.0.1".into())
        );
        let (bind, warnings) = parse_s(None);
        assert_eq!(bind, BindAddress::Any);
        assert!(warnings[0].contains("SSH_CONNECTION not found"));
        let (_, warnings) = parse_s(Some("garbage"));
        assert!(warnings[0].contains("Could not parse"));
        let (options, _) = run(&["new", "-s", "-i", "1.2.3.4"]);
        assert_eq!(options.bind, BindAddress::Preferred("1.2.3.4".into()));
    }

    #[test]
    fn port_ranges_are_checked_like_stock() {
        let err = |text: &str| PortRange::parse(text).unwrap_err().to_string();
        assert_eq!(
            err("70000"),
            "(Low) port number 70000 outside valid range [0..65535]"
        );
        assert_eq!(
            err("61000:60000"),
            "Low port 61000 greater than high port 60000"
        );
        assert_eq!(err("0:5"), "Low port 0 incompatible with port ranges");
        assert_eq!(err("12x"), "Invalid (low) port number (12x)");
        assert_eq!(err("1:2:3"), "Invalid high port number (2:3)");
        assert_eq!(
            err("1:99999"),
            "High port number 99999 outside valid range [0..65535]"
        );
        assert_eq!(
            err("-1"),
            "(Low) port number -1 outside valid range [0..65535]"
        );
        assert_eq!(
            PortRange::parse("0").unwrap(),
            PortRange { low: 0, high: 0 }
        );
        assert_eq!(PortRange::parse("60001:60999").unwrap(), PortRange::DEFAULT);
        let error = parse(&args(&["new", "-p", "9:1"]), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Low port 9 greater than high port 1\nBad UDP port range (9:1)"
        );
    }

    #[test]
    fn colors_must_be_an_integer() {
        assert_eq!(
            parse(&args(&["new", "-c", "lots"]), None),
            Err(ArgsError::BadColors("lots".into()))
        );
        assert_eq!(run(&["new", "-c", "8"]).0.colors, 8);
    }
}
