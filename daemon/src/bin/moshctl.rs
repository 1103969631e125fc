//! `moshctl`: lists, ends and inspects the sessions of `mosh-daemon`, and
//! shows or manages its firewall rules. The command line is
//! [`mosh_daemon::cli::Moshctl`].
//!
//! A user sees and kills only their own sessions; root sees all and
//! manages the firewall. The daemon decides, from the socket's peer
//! credentials.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;
use mosh_daemon::cli::{FirewallAction, Moshctl, MoshctlCommand};
use mosh_daemon::control::{
    self, DaemonStatus, FirewallRequest, FirewallStatus, Request, Response, SessionReport,
};
use mosh_daemon::worker::unix_seconds;
use mosh_stdio::{stderrln, stdout, stdoutln};

/// How long to wait for the daemon.
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let Moshctl { command } = Moshctl::parse();
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            stderrln!("moshctl: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; the error is the daemon's refusal or why it could
/// not be reached.
fn run(command: MoshctlCommand) -> Result<(), String> {
    match command {
        MoshctlCommand::List { json } => {
            let sessions = match call(&Request::List {})? {
                Response::Sessions { sessions } => sessions,
                other => return Err(unexpected(other)),
            };
            if json {
                print_json(&sessions);
            } else {
                stdout!("{}", table(&sessions, unix_seconds(SystemTime::now())));
            }
        }
        MoshctlCommand::Kill(args) => match call(&Request::Kill(args.target()))? {
            Response::Killed { ids } if ids.is_empty() => stdoutln!("no sessions to kill"),
            Response::Killed { ids } => stdoutln!("killed {}", ids.join(" ")),
            other => return Err(unexpected(other)),
        },
        MoshctlCommand::Status { json } => {
            let status = match call(&Request::Status {})? {
                Response::Status(status) => status,
                other => return Err(unexpected(other)),
            };
            if json {
                print_json(&status);
            } else {
                stdout!("{}", describe(&status));
            }
        }
        MoshctlCommand::Firewall { action } => {
            let (request, json) = match action {
                FirewallAction::Status { json } => (FirewallRequest::Status, json),
                FirewallAction::Open => (FirewallRequest::Open, false),
                FirewallAction::Close => (FirewallRequest::Close, false),
            };
            let status = match call(&Request::Firewall { action: request })? {
                Response::Firewall(status) => status,
                other => return Err(unexpected(other)),
            };
            if json {
                print_json(&status);
            } else {
                stdout!("{}", describe_firewall(&status));
            }
            if status.state == "error" && request != FirewallRequest::Status {
                return Err("the firewall backend failed (see above)".into());
            }
        }
    }
    Ok(())
}

fn print_json<T: serde::Serialize>(value: &T) {
    stdoutln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn call(request: &Request) -> Result<Response, String> {
    match control::call(&control::socket_path(), request, TIMEOUT) {
        Ok(Response::Error { message }) => Err(message),
        Ok(response) => Ok(response),
        Err(error) => Err(error.to_string()),
    }
}

fn unexpected(response: Response) -> String {
    format!("unexpected answer from the daemon: {response:?}")
}

/// A duration as `3d4h`, `2h5m`, `5m10s` or `42s`.
fn human(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

fn table(sessions: &[SessionReport], now: u64) -> String {
    let ago = |t: u64| format!("{} ago", human(now.saturating_sub(t)));
    let mut rows = vec![
        [
            "ID",
            "USER",
            "PID",
            "PORT",
            "STATE",
            "CLIENT",
            "LAST CONTACT",
            "CREATED",
            "ATTACHES",
            "CIPHER",
            "COMMAND",
        ]
        .map(String::from),
    ];
    for s in sessions {
        let state = match s.detached_since {
            Some(since) if s.state == "detached" => {
                format!("detached-{}", human(now.saturating_sub(since)))
            }
            _ => s.state.clone(),
        };
        rows.push([
            s.id.clone(),
            s.user.clone(),
            s.pid.to_string(),
            s.port.to_string(),
            state,
            s.client.clone().unwrap_or_else(|| "-".into()),
            s.last_contact.map(ago).unwrap_or_else(|| "never".into()),
            ago(s.started),
            s.attaches.to_string(),
            s.cipher.clone().unwrap_or_else(|| "-".into()),
            s.foreground.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut widths = [0usize; 11];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    if sessions.is_empty() {
        text.push_str("(no sessions)\n");
    }
    text
}

fn describe(status: &DaemonStatus) -> String {
    format!(
        "mosh-daemon {}\nuptime:   {}\nsessions: {}\nports:    {} of {} in use ({})\nfirewall: {}\n",
        status.version,
        human(status.uptime_secs),
        status.sessions,
        status.ports_used,
        status.ports_total,
        status.port_range,
        status.firewall
    )
}

fn describe_firewall(status: &FirewallStatus) -> String {
    let mut text = format!(
        "backend:  {} (configured: {})\n",
        status.backend, status.configured
    );
    text.push_str(&format!("state:    {}\n", status.state));
    if let Some(range) = &status.range {
        text.push_str(&format!("open:     udp {range} (the whole range)\n"));
    } else if status.state == "open" {
        let ports: Vec<String> = status.ports.iter().map(u16::to_string).collect();
        let list = if ports.is_empty() {
            "none".to_owned()
        } else {
            ports.join(" ")
        };
        text.push_str(&format!("open:     udp {list}\n"));
    }
    if let Some(error) = &status.error {
        text.push_str(&format!("error:    {error}\n"));
    }
    if status.state == "disabled" {
        let why = if status.configured == "auto" {
            "auto found no active firewall (firewalld, ufw, iptables or nftables)"
        } else {
            "[firewall] backend is \"none\""
        };
        text.push_str(&format!(
            "note:     the daemon manages no firewall rules: {why}; clients need the \
             session ports open (set [firewall] backend in /etc/mosh-daemon/config.toml)\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lines_up() {
        let session = SessionReport {
            id: "0123abcd".into(),
            user: "alice".into(),
            uid: 1000,
            pid: 4242,
            port: 60001,
            client: Some("192.0.2.7:51234".into()),
            started: 1000,
            last_contact: Some(1990),
            client_live: None,
            state: "attached".into(),
            cipher: Some("aes-256-gcm+x25519".into()),
            attaches: 1,
            rekeyed: None,
            detached_since: None,
            foreground: Some("vim notes.txt".into()),
            history: None,
        };
        let detached = SessionReport {
            id: "4567cdef".into(),
            state: "detached".into(),
            detached_since: Some(1700),
            attaches: 3,
            foreground: None,
            ..session.clone()
        };
        let text = table(&[session, detached], 2000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("ID        USER   PID   PORT   STATE"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("0123abcd  alice  4242  60001  attached        192.0.2.7:51234"),
            "{text}"
        );
        assert!(lines[1].contains("10s ago       16m40s ago"), "{text}");
        assert!(
            lines[1].ends_with(" 1         aes-256-gcm+x25519  vim notes.txt"),
            "{text}"
        );
        assert!(lines[2].contains("detached-5m00s"), "{text}");
        assert!(
            lines[2].ends_with(" 3         aes-256-gcm+x25519  -"),
            "{text}"
        );
        assert_eq!(table(&[], 0).lines().last(), Some("(no sessions)"));
    }

    #[test]
    fn a_disabled_firewall_says_why() {
        let status = |configured: &str| FirewallStatus {
            backend: "none".into(),
            configured: configured.into(),
            state: "disabled".into(),
            error: None,
            ports: Vec::new(),
            range: None,
        };
        let auto = describe_firewall(&status("auto"));
        assert!(auto.contains("auto found no active firewall"), "{auto}");
        let none = describe_firewall(&status("none"));
        assert!(none.contains("backend is \"none\""), "{none}");
        let open = describe_firewall(&FirewallStatus {
            backend: "nftables".into(),
            state: "open".into(),
            ports: vec![60001],
            ..status("nftables")
        });
        assert!(open.contains("open:     udp 60001"), "{open}");
        assert!(!open.contains("note:"), "{open}");
    }
}
