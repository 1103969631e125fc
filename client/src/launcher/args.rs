//! The `mosh` command line: stock mosh's options, parsed into a
//! [`LaunchOptions`] or a clear error.
//!
//! ```text
//! mosh [options] [--] [user@]host [command...]
//! mosh --fake-proxy -- HOST PORT        (internal: ssh ProxyCommand)
//! ```

use std::ffi::OsString;

/// How the client learns the server's IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteIp {
    /// From the ssh ProxyCommand (`mosh --fake-proxy`), which prints the
    /// address it connected to.
    Proxy,
    /// Resolved locally before ssh runs.
    Local,
    /// From `SSH_CONNECTION` as the server sees it.
    Remote,
}

/// Which address families to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 only.
    Inet,
    /// IPv6 only.
    Inet6,
    /// Whichever single family the host has.
    Auto,
    /// All families, in resolver order.
    All,
    /// All families, IPv4 first (the default).
    PreferInet,
    /// All families, IPv6 first.
    PreferInet6,
}

impl Family {
    fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "inet" => Family::Inet,
            "inet6" => Family::Inet6,
            "auto" => Family::Auto,
            "all" => Family::All,
            "prefer-inet" => Family::PreferInet,
            "prefer-inet6" => Family::PreferInet6,
            _ => return None,
        })
    }

    /// The name `--family` takes.
    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
            Family::Auto => "auto",
            Family::All => "all",
            Family::PreferInet => "prefer-inet",
            Family::PreferInet6 => "prefer-inet6",
        }
    }
}

/// Where the server should bind (`--bind-server`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindServer {
    /// The address ssh arrived at (`-s`), or the host itself with `--local`.
    Ssh,
    /// Any interface.
    Any,
    /// This address.
    Ip(String),
}

/// A session to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchOptions {
    /// The local client program.
    pub client: String,
    /// The remote server command (inserted unquoted).
    pub server: String,
    /// The ssh command, split into words.
    pub ssh: Vec<String>,
    /// Whether ssh gets `-tt`.
    pub ssh_pty: bool,
    /// Prediction mode for the client; `None` leaves the environment's.
    pub predict: Option<String>,
    /// `-o`: predictions overwrite instead of inserting.
    pub predict_overwrite: bool,
    /// `--cipher`: `auto` or `ocb` for the client's `MOSH_CIPHER`; `None`
    /// leaves the environment's.
    pub cipher: Option<String>,
    /// `--no-scrollback`: the client does not take scrollback history from
    /// our server (`MOSH_NO_SCROLLBACK`).
    pub scrollback: bool,
    /// Address families.
    pub family: Family,
    /// `-p`: the server's UDP port or range, already validated.
    pub port: Option<String>,
    /// `--bind-server`.
    pub bind_server: BindServer,
    /// `--no-init`: keep the terminal's normal screen.
    pub term_init: bool,
    /// `--local`: run the server here, without ssh.
    pub local: bool,
    /// `--experimental-remote-ip`.
    pub remote_ip: RemoteIp,
    /// `[user@]host`.
    pub destination: String,
    /// The remote command, or empty for the login shell.
    pub command: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Print usage and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
    /// Act as ssh's ProxyCommand: connect to `host`:`port` and relay.
    FakeProxy {
        /// Host to connect to.
        host: String,
        /// TCP port.
        port: String,
        /// Address families.
        family: Family,
    },
    /// Start a session.
    Launch(LaunchOptions),
}

/// A command line that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// An option this program does not have.
    #[error("unknown option: {0}")]
    UnknownOption(String),
    /// An option without its value.
    #[error("option {0} requires a value")]
    MissingValue(String),
    /// A flag given a value.
    #[error("option {0} does not take a value")]
    UnexpectedValue(String),
    /// A bad `--predict` or `MOSH_PREDICTION_DISPLAY`.
    #[error("unknown prediction mode {0:?} (adaptive, always, never or experimental)")]
    BadPredict(String),
    /// A bad `--cipher`.
    #[error("unknown cipher {0:?} (auto or ocb)")]
    BadCipher(String),
    /// A bad `--family`.
    #[error("unknown address family {0:?} (inet, inet6, auto, all, prefer-inet, prefer-inet6)")]
    BadFamily(String),
    /// A bad `--experimental-remote-ip`.
    #[error("unknown remote IP method {0:?} (proxy, local or remote)")]
    BadRemoteIp(String),
    /// A bad `-p`.
    #[error("{0}")]
    BadPort(String),
    /// `--ssh` could not be split into words.
    #[error("cannot split --ssh command {0:?}: unbalanced quotes")]
    BadSsh(String),
    /// No host was given.
    #[error("no host given")]
    NoHost,
    /// `--fake-proxy` needs exactly a host and a port.
    #[error("--fake-proxy needs exactly HOST PORT")]
    BadFakeProxy,
    /// An argument was not valid UTF-8.
    #[error("argument is not valid UTF-8: {0:?}")]
    NotUtf8(OsString),
}

/// The help text, with the program name filled in.
pub fn usage(program: &str) -> String {
    format!(
        "Usage: {program} [options] [--] [user@]host [command...]
        --client=PATH        mosh client on this machine (default: mosh-client)
        --server=COMMAND     mosh server on the remote machine (default: mosh-server)

        --predict=adaptive      local echo for slower links [default]
-a      --predict=always        local echo even on fast links
-n      --predict=never         never local echo
        --predict=experimental  local echo even when it may be wrong
-o      --predict-overwrite     predictions overwrite instead of inserting

        --cipher=auto        AES-256-GCM with forward secrecy with our server,
                             AES-128-OCB with a stock one [default]
        --cipher=ocb         stock AES-128-OCB for this session
        --no-scrollback      keep lines that scroll off the server's screen out of
                             this terminal's scrollback

-4      --family=inet        IPv4 only
-6      --family=inet6       IPv6 only
        --family=auto        the host's only address family
        --family=all         all address families
        --family=prefer-inet all families, IPv4 first [default]
        --family=prefer-inet6 all families, IPv6 first
-p PORT[:PORT2]
        --port=PORT[:PORT2]  server-side UDP port or range
        --bind-server={{ssh|any|IP}}  address the server replies from (default: ssh)

        --ssh=COMMAND        ssh command to run (default: ssh), e.g. \"ssh -p 2222\"
        --no-ssh-pty         no pseudo-terminal for the ssh connection
        --no-init            do not switch the terminal to its alternate screen
        --local              run mosh-server here, without ssh
        --experimental-remote-ip=(local|remote|proxy)
                             how to find the server's IP address (default: proxy)

        --help               this message
        --version            version information
"
    )
}

const PREDICT_MODES: [&str; 4] = ["adaptive", "always", "never", "experimental"];
const CIPHERS: [&str; 2] = ["auto", "ocb"];

/// Parses the arguments after the program name.
pub fn parse(args: &[OsString]) -> Result<Invocation, ArgsError> {
    let mut words = Vec::with_capacity(args.len());
    for arg in args {
        words.push(
            arg.to_str()
                .ok_or_else(|| ArgsError::NotUtf8(arg.clone()))?
                .to_owned(),
        );
    }
    let mut options = LaunchOptions {
        client: "mosh-client".into(),
        server: "mosh-server".into(),
        ssh: vec!["ssh".into()],
        ssh_pty: true,
        predict: None,
        predict_overwrite: false,
        cipher: None,
        scrollback: true,
        family: Family::PreferInet,
        port: None,
        bind_server: BindServer::Ssh,
        term_init: true,
        local: false,
        remote_ip: RemoteIp::Proxy,
        destination: String::new(),
        command: Vec::new(),
    };
    let mut fake_proxy = false;
    let mut positional = Vec::new();
    let mut index = 0;
    while index < words.len() {
        let word = words[index].clone();
        index += 1;
        if word == "--" {
            positional.extend(words[index..].iter().cloned());
            break;
        }
        if !word.starts_with('-') || word == "-" {
            positional.push(word);
            let rest = &words[index..];
            let rest = rest.strip_prefix(&["--".to_owned()]).unwrap_or(rest);
            positional.extend(rest.iter().cloned());
            break;
        }
        let (name, inline) = match word.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (word.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, ArgsError> {
            if let Some(value) = inline.clone() {
                return Ok(value);
            }
            let value = words
                .get(index)
                .cloned()
                .ok_or_else(|| ArgsError::MissingValue(name.to_owned()))?;
            index += 1;
            Ok(value)
        };
        let flag = |on: &mut bool, set: bool| -> Result<(), ArgsError> {
            if inline.is_some() {
                return Err(ArgsError::UnexpectedValue(name.clone()));
            }
            *on = set;
            Ok(())
        };
        match name.as_str() {
            "--help" | "-h" => return Ok(Invocation::Help),
            "--version" => return Ok(Invocation::Version),
            "--client" => options.client = value(&name)?,
            "--server" => options.server = value(&name)?,
            "--ssh" => {
                let command = value(&name)?;
                options.ssh = split_words(&command).ok_or(ArgsError::BadSsh(command))?;
            }
            "--ssh-pty" => flag(&mut options.ssh_pty, true)?,
            "--no-ssh-pty" => flag(&mut options.ssh_pty, false)?,
            "--predict" => options.predict = Some(check_predict(value(&name)?)?),
            "-a" => options.predict = Some("always".into()),
            "-n" => options.predict = Some("never".into()),
            "-o" | "--predict-overwrite" => flag(&mut options.predict_overwrite, true)?,
            "--cipher" => {
                let cipher = value(&name)?;
                if !CIPHERS.contains(&cipher.as_str()) {
                    return Err(ArgsError::BadCipher(cipher));
                }
                options.cipher = Some(cipher);
            }
            "--family" => {
                let family = value(&name)?;
                options.family = Family::parse(&family).ok_or(ArgsError::BadFamily(family))?;
            }
            "-4" => options.family = Family::Inet,
            "-6" => options.family = Family::Inet6,
            "-p" | "--port" => options.port = Some(check_port(value(&name)?)?),
            "--bind-server" => {
                let bind = value(&name)?;
                options.bind_server = match bind.to_ascii_lowercase().as_str() {
                    "ssh" => BindServer::Ssh,
                    "any" => BindServer::Any,
                    _ => BindServer::Ip(bind),
                };
            }
            "--init" => flag(&mut options.term_init, true)?,
            "--no-init" => flag(&mut options.term_init, false)?,
            "--no-scrollback" => flag(&mut options.scrollback, false)?,
            "--local" => flag(&mut options.local, true)?,
            "--experimental-remote-ip" => {
                let method = value(&name)?;
                options.remote_ip = match method.as_str() {
                    "proxy" => RemoteIp::Proxy,
                    "local" => RemoteIp::Local,
                    "remote" => RemoteIp::Remote,
                    _ => return Err(ArgsError::BadRemoteIp(method)),
                };
            }
            "--fake-proxy" => flag(&mut fake_proxy, true)?,
            _ => {
                if let Some(port) = name.strip_prefix("-p").filter(|p| !p.is_empty()) {
                    options.port = Some(check_port(port.to_owned())?);
                } else {
                    return Err(ArgsError::UnknownOption(word));
                }
            }
        }
    }
    if fake_proxy {
        return match <[String; 2]>::try_from(positional) {
            Ok([host, port]) => Ok(Invocation::FakeProxy {
                host,
                port,
                family: options.family,
            }),
            Err(_) => Err(ArgsError::BadFakeProxy),
        };
    }
    let mut positional = positional.into_iter();
    options.destination = positional.next().ok_or(ArgsError::NoHost)?;
    options.command = positional.collect();
    Ok(Invocation::Launch(options))
}

/// Checks a prediction mode name.
pub fn check_predict(mode: String) -> Result<String, ArgsError> {
    if PREDICT_MODES.contains(&mode.as_str()) {
        Ok(mode)
    } else {
        Err(ArgsError::BadPredict(mode))
    }
}

/// Validates `PORT` or `LOW:HIGH` for the server's UDP port, with stock
/// mosh's messages.
fn check_port(text: String) -> Result<String, ArgsError> {
    let bad = |message: String| Err(ArgsError::BadPort(message));
    let (low, high) = match text.split_once(':') {
        Some((low, high)) => (low, Some(high)),
        None => (text.as_str(), None),
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().unwrap_or(u64::MAX))
    };
    let (Some(low_value), high_value) = (number(low), high.map(number)) else {
        return bad(format!("Server-side port or range ({text}) is not valid."));
    };
    if low_value > 65535 {
        return bad(format!(
            "Server-side (low) port ({low}) must be within valid range [0..65535]."
        ));
    }
    match high_value {
        None => Ok(text),
        Some(None) => bad(format!("Server-side port or range ({text}) is not valid.")),
        Some(Some(high_number)) => {
            if high_number == 0 || high_number > 65535 {
                bad(format!(
                    "Server-side high port ({}) must be within valid range [1..65535].",
                    high.unwrap_or_default()
                ))
            } else if low_value == 0 {
                bad(format!(
                    "Server-side port ranges may not be used with starting port 0 ({text})."
                ))
            } else if low_value > high_number {
                bad(format!(
                    "Server-side port range ({text}): low port greater than high port."
                ))
            } else {
                Ok(text)
            }
        }
    }
}

/// Splits a command line into words as a POSIX shell would for simple
/// cases: blanks separate words; single quotes, double quotes and
/// backslashes quote. `None` for unbalanced quotes.
pub fn split_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        other => current.push(other),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => {
                            let next = chars.next()?;
                            if !matches!(next, '"' | '\\' | '$' | '`') {
                                current.push('\\');
                            }
                            current.push(next);
                        }
                        other => current.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                current.push(chars.next()?);
            }
            other => {
                in_word = true;
                current.push(other);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Some(words)
}

/// Quotes words for a POSIX shell: each in single quotes, with embedded
/// single quotes written as `'\''`.
pub fn shell_quote<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|word| format!("'{}'", word.as_ref().replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(words: &[&str]) -> LaunchOptions {
        let args: Vec<OsString> = words.iter().map(OsString::from).collect();
        match parse(&args).unwrap() {
            Invocation::Launch(options) => options,
            other => panic!("{other:?}"),
        }
    }

    fn error(words: &[&str]) -> String {
        let args: Vec<OsString> = words.iter().map(OsString::from).collect();
        parse(&args).unwrap_err().to_string()
    }

    #[test]
    fn typical_command_lines() {
        let options = launch(&["--ssh=ssh -p 22000", "alice@example.org"]);
        assert_eq!(options.ssh, ["ssh", "-p", "22000"]);
        assert_eq!(options.destination, "alice@example.org");
        assert!(options.command.is_empty());
        let options = launch(&[
            "-p",
            "60005:60010",
            "--predict",
            "always",
            "host",
            "top",
            "-d",
            "1",
        ]);
        assert_eq!(options.port.as_deref(), Some("60005:60010"));
        assert_eq!(options.predict.as_deref(), Some("always"));
        assert_eq!(options.command, ["top", "-d", "1"]);
        let options = launch(&[
            "-a",
            "-4",
            "--no-init",
            "--local",
            "--bind-server=any",
            "127.0.0.1",
        ]);
        assert_eq!(options.predict.as_deref(), Some("always"));
        assert_eq!(options.family, Family::Inet);
        assert!(!options.term_init && options.local);
        assert_eq!(options.bind_server, BindServer::Any);
        assert_eq!(launch(&["host"]).cipher, None);
        assert!(launch(&["host"]).scrollback);
        assert!(!launch(&["--no-scrollback", "host"]).scrollback);
        assert_eq!(
            launch(&["--cipher=ocb", "host"]).cipher.as_deref(),
            Some("ocb")
        );
        assert_eq!(
            launch(&["--cipher", "auto", "host"]).cipher.as_deref(),
            Some("auto")
        );
        let options = launch(&["-p60001", "--", "-weird-host", "ls"]);
        assert_eq!(options.port.as_deref(), Some("60001"));
        assert_eq!(options.destination, "-weird-host");
    }

    #[test]
    fn options_after_the_host_belong_to_the_command() {
        let options = launch(&["host", "ls", "-l", "--color"]);
        assert_eq!(options.command, ["ls", "-l", "--color"]);
        let options = launch(&["host", "--", "ls", "--", "x"]);
        assert_eq!(options.command, ["ls", "--", "x"]);
    }

    #[test]
    fn fake_proxy_mode() {
        let args: Vec<OsString> = ["--family=inet", "--fake-proxy", "--", "h", "22"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(
            parse(&args).unwrap(),
            Invocation::FakeProxy {
                host: "h".into(),
                port: "22".into(),
                family: Family::Inet
            }
        );
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(
            error(&["--frobnicate", "h"]),
            "unknown option: --frobnicate"
        );
        assert_eq!(error(&["--ssh"]), "option --ssh requires a value");
        assert!(error(&["--predict=sometimes", "h"]).contains("sometimes"));
        assert!(error(&["--family=ipx", "h"]).contains("ipx"));
        assert_eq!(
            error(&["--cipher=gcm", "h"]),
            "unknown cipher \"gcm\" (auto or ocb)"
        );
        assert_eq!(error(&[]), "no host given");
        assert_eq!(
            error(&["--ssh=ssh 'p", "h"]),
            "cannot split --ssh command \"ssh 'p\": unbalanced quotes"
        );
        assert_eq!(
            error(&["-p", "70000", "h"]),
            "Server-side (low) port (70000) must be within valid range [0..65535]."
        );
        assert_eq!(
            error(&["-p", "9:1", "h"]),
            "Server-side port range (9:1): low port greater than high port."
        );
        assert_eq!(
            error(&["-p", "0:9", "h"]),
            "Server-side port ranges may not be used with starting port 0 (0:9)."
        );
        assert_eq!(
            error(&["-p", "x", "h"]),
            "Server-side port or range (x) is not valid."
        );
        assert!(error(&["--local=yes", "h"]).contains("does not take a value"));
    }

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            split_words(r#"ssh -o "ProxyJump=a b" -i 'my key' x\ y"#).unwrap(),
            ["ssh", "-o", "ProxyJump=a b", "-i", "my key", "x y"]
        );
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("a \"b"), None);
        assert_eq!(shell_quote(&["new", "it's"]), r"'new' 'it'\''s'");
    }
}
