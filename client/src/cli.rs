//! The command line and environment of `mosh-client` (spec §9.2):
//! `MOSH_KEY=KEY mosh-client [-v] [-# 'ARGS'] IP PORT`, `mosh-client -c`,
//! `--help`, `--version`.

use std::ffi::CStr;
use std::net::{IpAddr, SocketAddr};

use mosh_proto::Base64Key;

use crate::escape::EscapeFilter;
use crate::predict::DisplayMode;
use crate::session::SessionConfig;
use crate::terminal;
use crate::terminfo::Terminfo;

/// The usage text.
pub const USAGE: &str = "Usage: mosh-client [-# 'ARGS'] IP PORT\n       mosh-client -c\n";

/// The version text.
pub fn version_text() -> String {
    format!(
        "mosh-client (mosh-daemon {}), speaking the mosh 1.4 protocol\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Run a session.
    Run(Box<SessionConfig>),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
    /// `-c`: print the number of colours of `$TERM`.
    Colors,
}

/// A command line or environment the client cannot run with; the message
/// is stock's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// Wrong arguments.
    #[error("{USAGE}")]
    Usage,
    /// The port is not a number in range.
    #[error("Bad UDP port ({0})")]
    BadPort(String),
    /// The address is not a numeric IP address.
    #[error("Bad IP address ({0})")]
    BadAddress(String),
    /// `MOSH_KEY` is unset.
    #[error("MOSH_KEY environment variable not found.")]
    NoKey,
    /// `MOSH_KEY` is not a key.
    #[error("Bad MOSH_KEY: {0}")]
    BadKey(String),
    /// `MOSH_PREDICTION_DISPLAY` has an unknown value.
    #[error("Unknown prediction mode {0}.")]
    PredictionMode(String),
    /// `MOSH_CIPHER` has an unknown value.
    #[error("Unknown cipher {0} (MOSH_CIPHER is auto or ocb).")]
    Cipher(String),
}

/// Parses the arguments (without the program name); `env` looks up the
/// environment.
pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Command, CliError> {
    match args.first().map(String::as_str) {
        Some("--help") => return Ok(Command::Help),
        Some("--version") => return Ok(Command::Version),
        _ => {}
    }
    let mut verbose = false;
    let mut colors = false;
    let mut positional = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            positional.extend(iter.by_ref().cloned());
            break;
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            positional.push(arg.clone());
            continue;
        };
        for (at, flag) in flags.char_indices() {
            match flag {
                'v' => verbose = true,
                'c' => colors = true,
                '#' => {
                    if at + 1 == flags.len() {
                        iter.next().ok_or(CliError::Usage)?;
                    }
                    break;
                }
                _ => return Err(CliError::Usage),
            }
        }
    }
    if colors {
        return Ok(Command::Colors);
    }
    let [ip, port] = positional.as_slice() else {
        return Err(CliError::Usage);
    };
    let port_number = (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .then(|| port.parse::<u16>().ok())
        .flatten()
        .ok_or_else(|| CliError::BadPort(port.clone()))?;
    let address: IpAddr = ip.parse().map_err(|_| CliError::BadAddress(ip.clone()))?;
    let key_text = env("MOSH_KEY").ok_or(CliError::NoKey)?;
    let key = Base64Key::parse(&key_text).map_err(|e| CliError::BadKey(e.to_string()))?;
    let prediction = match env("MOSH_PREDICTION_DISPLAY") {
        None => DisplayMode::Adaptive,
        Some(value) => DisplayMode::parse(&value).ok_or(CliError::PredictionMode(value))?,
    };
    let native_cipher = match env("MOSH_CIPHER").as_deref() {
        None | Some("auto") => true,
        Some("ocb") => false,
        Some(other) => return Err(CliError::Cipher(other.to_owned())),
    };
    let term = env("TERM").unwrap_or_default();
    let info = Terminfo::load(&term);
    Ok(Command::Run(Box::new(SessionConfig {
        server: SocketAddr::new(address, port_number),
        key,
        verbose,
        native_cipher,
        prediction,
        overwrite: env("MOSH_PREDICTION_OVERWRITE").as_deref() == Some("yes"),
        escape: EscapeFilter::from_env(env("MOSH_ESCAPE_KEY").as_deref()),
        title_prefix: env("MOSH_TITLE_NOPREFIX").is_none(),
        display: terminal::display_for(&term, info.as_ref()),
        scrollback: env("MOSH_NO_SCROLLBACK").is_none(),
    })))
}

/// The number of colours terminfo gives `term` (0 without an entry or the
/// capability).
pub fn colors(term: &str) -> i32 {
    Terminfo::load(term)
        .and_then(|info| info.colors)
        .unwrap_or(0)
}

/// Loads the locale the environment names and returns its character set
/// if it is not UTF-8.
pub fn non_utf8_locale() -> Option<String> {
    // SAFETY: setlocale is given a valid NUL-terminated string; it is not
    // thread-safe, and this runs during single-threaded start-up.
    unsafe { libc::setlocale(libc::LC_ALL, c"".as_ptr()) };
    // SAFETY: nl_langinfo with a valid item returns a pointer to a
    // NUL-terminated string owned by the C library, valid until the next
    // setlocale call; it is copied out at once.
    let codeset = unsafe { libc::nl_langinfo(libc::CODESET) };
    let charset = if codeset.is_null() {
        String::new()
    } else {
        // SAFETY: non-null and NUL-terminated, per nl_langinfo's contract.
        unsafe { CStr::from_ptr(codeset) }
            .to_string_lossy()
            .into_owned()
    };
    let utf8 = charset.eq_ignore_ascii_case("UTF-8") || charset.eq_ignore_ascii_case("utf8");
    (!utf8).then_some(charset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "zs6ZmRqpU4W6cyNwF9UzTA";

    fn run(args: &[&str], vars: &[(&str, &str)]) -> Result<Command, CliError> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        parse(&args, |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn a_session() {
        let Ok(Command::Run(config)) = run(
            &["-#", "mosh host |", "-v", "127.0.0.1", "60001"],
            &[("MOSH_KEY", KEY), ("MOSH_PREDICTION_DISPLAY", "always")],
        ) else {
            panic!("not a session");
        };
        assert_eq!(config.server, "127.0.0.1:60001".parse().unwrap());
        assert!(config.verbose && config.title_prefix && !config.overwrite);
        assert_eq!(config.prediction, DisplayMode::Always);
        assert!(matches!(
            run(&["-#x", "::1", "1"], &[("MOSH_KEY", KEY)]),
            Ok(Command::Run(_))
        ));
    }

    #[test]
    fn mosh_cipher_chooses_the_suite_offered() {
        let native = |vars: &[(&str, &str)]| match run(&["127.0.0.1", "60001"], vars) {
            Ok(Command::Run(config)) => Ok(config.native_cipher),
            Ok(_) => panic!("not a session"),
            Err(error) => Err(error),
        };
        assert_eq!(native(&[("MOSH_KEY", KEY)]), Ok(true));
        assert_eq!(
            native(&[("MOSH_KEY", KEY), ("MOSH_CIPHER", "auto")]),
            Ok(true)
        );
        assert_eq!(
            native(&[("MOSH_KEY", KEY), ("MOSH_CIPHER", "ocb")]),
            Ok(false)
        );
        assert_eq!(
            native(&[("MOSH_KEY", KEY), ("MOSH_CIPHER", "gcm")]),
            Err(CliError::Cipher("gcm".into()))
        );
    }

    #[test]
    fn errors_use_stock_wording() {
        let key = [("MOSH_KEY", KEY)];
        assert_eq!(run(&["1.2.3.4"], &key).unwrap_err(), CliError::Usage);
        assert_eq!(
            run(&["1.2.3.4", "6x"], &key).unwrap_err().to_string(),
            "Bad UDP port (6x)"
        );
        assert_eq!(
            run(&["1.2.3.4", "1"], &[]).unwrap_err().to_string(),
            "MOSH_KEY environment variable not found."
        );
        assert_eq!(
            run(
                &["1.2.3.4", "1"],
                &[("MOSH_KEY", KEY), ("MOSH_PREDICTION_DISPLAY", "x")]
            )
            .unwrap_err()
            .to_string(),
            "Unknown prediction mode x."
        );
        assert!(matches!(
            run(&["host.example", "1"], &key),
            Err(CliError::BadAddress(_))
        ));
    }

    #[test]
    fn other_commands() {
        assert!(matches!(run(&["--help"], &[]), Ok(Command::Help)));
        assert!(matches!(run(&["--version"], &[]), Ok(Command::Version)));
        assert!(matches!(run(&["-c"], &[]), Ok(Command::Colors)));
    }
}
