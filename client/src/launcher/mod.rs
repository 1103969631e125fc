//! The `mosh` launcher: starts `mosh-server` on the remote host over ssh
//! (or locally with `--local`), reads its `MOSH CONNECT` line, and replaces
//! itself with `mosh-client`, handing over the session key through the
//! environment only.
//!
//! * [`args`]: the command line.
//! * [`cli_model`]: a clap model of it for the man page and completions.
//! * [`proxy`]: `--fake-proxy`, the ssh ProxyCommand that reports which IP
//!   address ssh reached, so the client talks UDP to the same host.

pub mod args;
pub mod cli_model;
pub mod proxy;

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use mosh_proto::Base64Key;

use args::{BindServer, Family, LaunchOptions, RemoteIp, SessionChoice, shell_quote};

/// Locale variables passed to the server (`-l NAME=VALUE`) when set here.
const LOCALE_VARIABLES: [&str; 15] = [
    "LANG",
    "LANGUAGE",
    "LC_CTYPE",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_COLLATE",
    "LC_MONETARY",
    "LC_MESSAGES",
    "LC_PAPER",
    "LC_NAME",
    "LC_ADDRESS",
    "LC_TELEPHONE",
    "LC_MEASUREMENT",
    "LC_IDENTIFICATION",
    "LC_ALL",
];

/// Why a session could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A program could not be run.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// What was run.
        program: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// `MOSH_PREDICTION_DISPLAY` holds an unknown mode.
    #[error("MOSH_PREDICTION_DISPLAY: {0}")]
    Predict(#[from] args::ArgsError),
    /// The host name did not resolve to a usable address.
    #[error("could not find an address for {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// A `MOSH ...` line was malformed.
    #[error("bad {what} line from the server: {line:?}")]
    BadLine {
        /// Which line.
        what: &'static str,
        /// The line.
        line: String,
    },
    /// Two `MOSH IP` lines arrived.
    #[error("detected attempt to redefine MOSH IP")]
    RedefinedIp,
    /// ssh itself failed before the server ran.
    #[error("ssh failed (exit status {0}): check the host name, the user and the --ssh options")]
    SshFailed(i32),
    /// The remote shell did not find the server.
    #[error(
        "{server}: command not found on the remote host. Install mosh (or mosh-daemon) there, \
         or give its path with --server=PATH."
    )]
    ServerMissing {
        /// The server command used.
        server: String,
    },
    /// The server never printed its connect line.
    #[error("Did not find mosh server startup message. (Have you installed mosh on your server?)")]
    NoConnectLine,
    /// Nothing said which address to use.
    #[error("Did not find remote IP address (is SSH ProxyCommand disabled?).")]
    NoRemoteIp,
}

/// Longest line of the server side's output the launcher reads; the rest
/// of a longer line is skipped.
pub const MAX_LINE: usize = 64 * 1024;

/// What the server side reported through ssh: its `MOSH` lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// `MOSH IP ADDRESS`: the address ssh reached (from `--fake-proxy`).
    pub ip: Option<String>,
    /// `MOSH SSH_CONNECTION ...`: the server's own address from its
    /// `$SSH_CONNECTION`.
    pub ssh_connection_ip: Option<String>,
    /// `MOSH CONNECT PORT KEY`: the session's port and key.
    pub connect: Option<(u16, Base64Key)>,
    /// A line said that the server command was not found.
    pub server_missing: bool,
}

impl Report {
    /// Takes one line of ssh's output; returns whether it was a `MOSH` line
    /// (others are shown to the user).
    pub fn take(&mut self, line: &str) -> Result<bool, LaunchError> {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("MOSH IP ") {
            if self.ip.is_some() {
                return Err(LaunchError::RedefinedIp);
            }
            let ip = rest.trim();
            if ip.is_empty() || ip.contains(char::is_whitespace) {
                return Err(bad("MOSH IP", line));
            }
            self.ip = Some(ip.to_owned());
            return Ok(true);
        }
        if line.starts_with("MOSH SSH_CONNECTION ") {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() != 6 {
                return Err(bad("MOSH SSH_CONNECTION", line));
            }
            self.ssh_connection_ip = Some(words[4].to_owned());
            return Ok(true);
        }
        if let Some(rest) = line.strip_prefix("MOSH CONNECT ") {
            let mut words = rest.split(' ');
            let (Some(port), Some(key), None) = (words.next(), words.next(), words.next()) else {
                return Err(bad("MOSH CONNECT", line));
            };
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|_| port.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| bad("MOSH CONNECT", line))?;
            let key = Base64Key::parse(key).map_err(|_| bad("MOSH CONNECT", line))?;
            self.connect = Some((port, key));
            return Ok(true);
        }
        if line.contains("not found") || line.contains("No such file or directory") {
            self.server_missing = true;
        }
        Ok(false)
    }

    /// Reads ssh's output until a `MOSH CONNECT` line or its end (or a read
    /// error), taking each line as [`Report::take`] does and passing the
    /// others to `show`. Lines are cut at [`MAX_LINE`] bytes; bytes that
    /// are not UTF-8 are replaced.
    pub fn read(
        &mut self,
        mut reader: impl BufRead,
        mut show: impl FnMut(&str),
    ) -> Result<(), LaunchError> {
        let mut line = Vec::new();
        while self.connect.is_none() {
            line.clear();
            match (&mut reader)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line)
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let complete = line.ends_with(b"\n");
            if complete {
                line.pop();
            } else if line.len() == MAX_LINE {
                skip_line(&mut reader);
            }
            let text = String::from_utf8_lossy(&line);
            if !self.take(&text)? {
                show(&text);
            }
        }
        Ok(())
    }
}

/// Discards the rest of a line that was too long.
fn skip_line(reader: &mut impl BufRead) {
    loop {
        let (used, done) = match reader.fill_buf() {
            Ok([]) | Err(_) => return,
            Ok(available) => match available.iter().position(|&b| b == b'\n') {
                Some(end) => (end + 1, true),
                None => (available.len(), false),
            },
        };
        reader.consume(used);
        if done {
            return;
        }
    }
}

fn bad(what: &'static str, line: &str) -> LaunchError {
    LaunchError::BadLine {
        what,
        line: line.to_owned(),
    }
}

/// Runs a session; on success this process becomes `mosh-client` and the
/// function does not return.
pub fn launch(options: &LaunchOptions, self_program: &str, cmdline: &str) -> LaunchError {
    match prepare_and_exec(options, self_program, cmdline) {
        Ok(never) => match never {},
        Err(error) => error,
    }
}

fn prepare_and_exec(
    options: &LaunchOptions,
    self_program: &str,
    cmdline: &str,
) -> Result<std::convert::Infallible, LaunchError> {
    let predict = match &options.predict {
        Some(mode) => mode.clone(),
        None => match std::env::var("MOSH_PREDICTION_DISPLAY") {
            Ok(mode) => args::check_predict(mode)?,
            Err(_) => "adaptive".to_owned(),
        },
    };
    let colors = count_colors(&options.client)?;
    let host = options
        .destination
        .rsplit_once('@')
        .map_or(options.destination.as_str(), |(_, host)| host)
        .to_owned();
    let mut destination = options.destination.clone();
    let mut report = Report::default();
    if options.remote_ip == RemoteIp::Local && !options.local {
        let address = resolve(&host, 22, options.family)?.ip().to_string();
        destination = match options.destination.rsplit_once('@') {
            Some((user, _)) => format!("{user}@{address}"),
            None => address.clone(),
        };
        report.ip = Some(address);
    }
    let server_args = server_arguments(options, colors, &host);
    let mut command = if options.local {
        report.ip = Some(host.clone());
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("{} {}", options.server, shell_quote(&server_args)))
            .env_remove("SSH_CONNECTION");
        if let Some(home) = std::env::var_os("HOME") {
            command.current_dir(home);
        }
        command
    } else {
        ssh_command(options, self_program, &destination, &server_args)
    };
    let (reader, writer) = std::io::pipe().map_err(|source| spawn_error("a pipe", source))?;
    let writer_for_stderr = writer
        .try_clone()
        .map_err(|source| spawn_error("a pipe", source))?;
    command.stdout(writer).stderr(writer_for_stderr);
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .spawn()
        .map_err(|source| spawn_error(&program, source))?;
    drop(command);
    report.read(BufReader::new(reader), |line| {
        mosh_stdio::stdoutln!("{line}")
    })?;
    let status = child
        .wait()
        .map_err(|source| spawn_error(&program, source))?;
    let Some((port, key)) = report.connect else {
        if report.server_missing {
            return Err(LaunchError::ServerMissing {
                server: options.server.clone(),
            });
        }
        if status.code() == Some(255) && !options.local {
            return Err(LaunchError::SshFailed(255));
        }
        return Err(LaunchError::NoConnectLine);
    };
    let ip = match (report.ip, report.ssh_connection_ip) {
        (Some(ip), _) => ip,
        (None, Some(ip)) => {
            mosh_stdio::stderrln!(
                "mosh: Using remote IP address {ip} from $SSH_CONNECTION for hostname {host}"
            );
            ip
        }
        (None, None) => return Err(LaunchError::NoRemoteIp),
    };
    let mut client = Command::new(&options.client);
    client
        .arg(format!("-# {cmdline} |"))
        .arg(&ip)
        .arg(port.to_string())
        .env("MOSH_KEY", key.printable())
        .env("MOSH_PREDICTION_DISPLAY", &predict)
        .env("MOSH_CLIENT_PID", std::process::id().to_string());
    if !options.term_init {
        client.env("MOSH_NO_TERM_INIT", "1");
    }
    if options.predict_overwrite {
        client.env("MOSH_PREDICTION_OVERWRITE", "yes");
    }
    if let Some(cipher) = &options.cipher {
        client.env("MOSH_CIPHER", cipher);
    }
    if !options.scrollback {
        client.env("MOSH_NO_SCROLLBACK", "1");
    }
    let error = client.exec();
    Err(spawn_error(&options.client, error))
}

fn spawn_error(program: &str, source: std::io::Error) -> LaunchError {
    LaunchError::Spawn {
        program: program.to_owned(),
        source,
    }
}

/// `mosh-client -c`: the terminal's colour count, 0 when unknown.
fn count_colors(client: &str) -> Result<u32, LaunchError> {
    let output = Command::new(client)
        .arg("-c")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| spawn_error(client, source))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0))
}

/// `new -c COLORS [bind] [-p PORT] -l NAME=VALUE... [-- command...]`
/// (`--reattach` after `new` with `--reattach`), or `attach [ID]`.
fn server_arguments(options: &LaunchOptions, colors: u32, host: &str) -> Vec<String> {
    if let SessionChoice::Attach(id) = &options.session {
        return std::iter::once("attach".to_owned())
            .chain(id.iter().cloned())
            .collect();
    }
    let mut server = vec!["new".to_owned()];
    if options.session == SessionChoice::Reattach {
        server.push("--reattach".to_owned());
    }
    server.extend(["-c".to_owned(), colors.to_string()]);
    match &options.bind_server {
        BindServer::Ssh if options.local => server.extend(["-i".to_owned(), host.to_owned()]),
        BindServer::Ssh => server.push("-s".to_owned()),
        BindServer::Any => {}
        BindServer::Ip(ip) => server.extend(["-i".to_owned(), ip.clone()]),
    }
    if let Some(port) = &options.port {
        server.extend(["-p".to_owned(), port.clone()]);
    }
    for name in LOCALE_VARIABLES {
        if let Ok(value) = std::env::var(name) {
            server.extend(["-l".to_owned(), format!("{name}={value}")]);
        }
    }
    if !options.command.is_empty() {
        server.push("--".to_owned());
        server.extend(options.command.iter().cloned());
    }
    server
}

fn ssh_command(
    options: &LaunchOptions,
    self_program: &str,
    destination: &str,
    server_args: &[String],
) -> Command {
    let mut command = Command::new(&options.ssh[0]);
    command.args(&options.ssh[1..]).arg("-n");
    if options.ssh_pty {
        command.arg("-tt");
    }
    let mut prefix = String::new();
    match options.remote_ip {
        RemoteIp::Remote => {
            prefix = format!(
                "sh -c {} ; ",
                shell_quote(&[
                    r#"[ -n "$SSH_CONNECTION" ] && printf "\nMOSH SSH_CONNECTION %s\n" "$SSH_CONNECTION""#
                ])
            );
            match options.family {
                Family::Inet => {
                    command.arg("-4");
                }
                Family::Inet6 => {
                    command.arg("-6");
                }
                _ => {}
            }
        }
        RemoteIp::Proxy => {
            let proxy =
                shell_quote(&[self_program, &format!("--family={}", options.family.name())]);
            command
                .env("SHELL", "/bin/sh")
                .args(["-S", "none", "-o"])
                .arg(format!("ProxyCommand={proxy} --fake-proxy -- %h %p"));
        }
        RemoteIp::Local => {}
    }
    command.arg(destination).arg("--").arg(format!(
        "{prefix}{} {}",
        options.server,
        shell_quote(server_args)
    ));
    command
}

/// Resolves `host`, keeping the addresses `family` allows, in its order of
/// preference; returns the first.
pub fn resolve(host: &str, port: u16, family: Family) -> Result<SocketAddr, LaunchError> {
    let failure = |reason: String| LaunchError::Resolve {
        host: host.to_owned(),
        reason,
    };
    let addresses: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| failure(e.to_string()))?
        .collect();
    ordered(addresses, family)
        .map_err(failure)?
        .into_iter()
        .next()
        .ok_or_else(|| failure(format!("no {} address", family.name())))
}

/// Orders and filters resolved addresses by `family`.
pub fn ordered(addresses: Vec<SocketAddr>, family: Family) -> Result<Vec<SocketAddr>, String> {
    let (v4, v6): (Vec<_>, Vec<_>) = addresses.iter().partition(|a| is_ipv4(a.ip()));
    Ok(match family {
        Family::Inet => v4,
        Family::Inet6 => v6,
        Family::All => addresses,
        Family::PreferInet => v4.into_iter().chain(v6).collect(),
        Family::PreferInet6 => v6.into_iter().chain(v4).collect(),
        Family::Auto if !v4.is_empty() && !v6.is_empty() => {
            return Err("it has both IPv4 and IPv6 addresses; choose one with -4 or -6".into());
        }
        Family::Auto => addresses,
    })
}

fn is_ipv4(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mosh_lines_are_parsed_strictly() {
        let mut report = Report::default();
        assert!(!report.take("Welcome to host\r").unwrap());
        assert!(report.take("MOSH IP 10.0.0.5\r").unwrap());
        assert!(matches!(
            report.take("MOSH IP 10.0.0.6"),
            Err(LaunchError::RedefinedIp)
        ));
        assert!(
            report
                .take("MOSH SSH_CONNECTION 1.2.3.4 5 6.7.8.9\r")
                .is_err()
        );
        assert!(
            report
                .take("MOSH SSH_CONNECTION 1.2.3.4 51000 6.7.8.9 22")
                .is_ok()
        );
        assert_eq!(report.ssh_connection_ip.as_deref(), Some("6.7.8.9"));
        assert!(report.take("MOSH CONNECT 60001 short").is_err());
        assert!(
            report
                .take("MOSH CONNECT 99999 AAECAwQFBgcICQoLDA0ODw")
                .is_err()
        );
        assert!(
            report
                .take("MOSH CONNECT 6000x AAECAwQFBgcICQoLDA0ODw")
                .is_err()
        );
        assert!(
            report
                .take("MOSH CONNECT 60001 AAECAwQFBgcICQoLDA0ODw\r")
                .unwrap()
        );
        assert_eq!(report.connect.as_ref().unwrap().0, 60001);
        let mut missing = Report::default();
        missing
            .take("bash: line 1: mosh-server: command not found")
            .unwrap();
        assert!(missing.server_missing);
    }

    #[test]
    fn output_that_is_not_utf8_does_not_hide_the_connect_line() {
        let output =
            b"Bienvenue \xe0 bord\r\nMOSH IP 10.0.0.5\nMOSH CONNECT 60001 AAECAwQFBgcICQoLDA0ODw\n";
        let mut report = Report::default();
        let mut shown = Vec::new();
        report
            .read(&output[..], |line| shown.push(line.to_owned()))
            .unwrap();
        assert_eq!(report.connect.as_ref().map(|c| c.0), Some(60001));
        assert_eq!(report.ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(shown, ["Bienvenue \u{fffd} bord\r"]);
    }

    #[test]
    fn an_endless_line_is_cut_and_the_connect_line_after_it_found() {
        let mut output = vec![b'x'; 3 * MAX_LINE + 7];
        output.extend_from_slice(b"\nMOSH CONNECT 60002 AAECAwQFBgcICQoLDA0ODw\nnot read\n");
        let mut report = Report::default();
        let mut shown = Vec::new();
        report
            .read(&output[..], |line| shown.push(line.len()))
            .unwrap();
        assert_eq!(report.connect.as_ref().map(|c| c.0), Some(60002));
        assert_eq!(shown, [MAX_LINE]);
    }

    #[test]
    fn server_arguments_follow_stock() {
        let args: Vec<std::ffi::OsString> =
            ["-p", "60400", "--local", "127.0.0.1", "sh", "-c", "x"]
                .iter()
                .map(std::ffi::OsString::from)
                .collect();
        let args::Invocation::Launch(options) = args::parse(&args).unwrap() else {
            panic!("launch expected");
        };
        let server = server_arguments(&options, 256, "127.0.0.1");
        assert_eq!(
            server[..7],
            ["new", "-c", "256", "-i", "127.0.0.1", "-p", "60400"]
        );
        assert_eq!(server[server.len() - 4..], ["--", "sh", "-c", "x"]);
    }

    #[test]
    fn attach_and_reattach_reach_the_server_command() {
        let server_for = |words: &[&str]| {
            let args: Vec<std::ffi::OsString> =
                words.iter().map(std::ffi::OsString::from).collect();
            let args::Invocation::Launch(options) = args::parse(&args).unwrap() else {
                panic!("launch expected");
            };
            server_arguments(&options, 256, "host")
        };
        assert_eq!(server_for(&["--attach", "host"]), ["attach"]);
        assert_eq!(
            server_for(&["--attach=0a1b2c3d", "host"]),
            ["attach", "0a1b2c3d"]
        );
        let server = server_for(&["--reattach", "host", "top"]);
        assert_eq!(server[..4], ["new", "--reattach", "-c", "256"]);
        assert_eq!(server[server.len() - 2..], ["--", "top"]);
    }

    #[test]
    fn family_order() {
        let v4: SocketAddr = "10.0.0.1:22".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:22".parse().unwrap();
        assert_eq!(ordered(vec![v6, v4], Family::PreferInet).unwrap(), [v4, v6]);
        assert_eq!(
            ordered(vec![v4, v6], Family::PreferInet6).unwrap(),
            [v6, v4]
        );
        assert_eq!(ordered(vec![v4, v6], Family::Inet).unwrap(), [v4]);
        assert!(ordered(vec![v4, v6], Family::Auto).is_err());
        assert_eq!(ordered(vec![v6], Family::Auto).unwrap(), [v6]);
    }
}
