//! `moshctl`: lists, ends and inspects the sessions of `mosh-daemon`.
//!
//! ```text
//! moshctl list [--json]
//! moshctl kill ID... | --user NAME | --idle DURATION
//! moshctl status [--json]
//! ```
//!
//! A user sees and kills only their own sessions; root sees all. The daemon
//! decides, from the socket's peer credentials.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use mosh_daemon::control::{self, DaemonStatus, KillTarget, Request, Response, SessionReport};
use mosh_daemon::worker::unix_seconds;

const USAGE: &str = "Usage: moshctl list [--json]
       moshctl kill ID... | --user NAME | --idle DURATION   (DURATION: 90, 90s, 15m, 2h, 7d)
       moshctl status [--json]";

/// How long to wait for the daemon.
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("moshctl: {message}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Refused(message)) => {
            eprintln!("moshctl: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why moshctl failed.
enum Failure {
    /// The command line is wrong.
    Usage(String),
    /// The daemon refused, or could not be reached.
    Refused(String),
}

fn run(args: &[String]) -> Result<(), Failure> {
    let (command, rest) = args
        .split_first()
        .ok_or_else(|| Failure::Usage("missing command".into()))?;
    let json = rest.iter().any(|a| a == "--json");
    match command.as_str() {
        "list" => {
            no_other_args(rest, &["--json"])?;
            let sessions = match call(&Request::List {})? {
                Response::Sessions { sessions } => sessions,
                other => return Err(unexpected(other)),
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&sessions).unwrap_or_default()
                );
            } else {
                print!("{}", table(&sessions, unix_seconds(SystemTime::now())));
            }
            Ok(())
        }
        "kill" => {
            let target = kill_target(rest)?;
            match call(&Request::Kill(target))? {
                Response::Killed { ids } if ids.is_empty() => println!("no sessions to kill"),
                Response::Killed { ids } => println!("killed {}", ids.join(" ")),
                other => return Err(unexpected(other)),
            }
            Ok(())
        }
        "status" => {
            no_other_args(rest, &["--json"])?;
            let status = match call(&Request::Status {})? {
                Response::Status(status) => status,
                other => return Err(unexpected(other)),
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                );
            } else {
                print!("{}", describe(&status));
            }
            Ok(())
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(Failure::Usage(format!("unknown command {other:?}"))),
    }
}

fn no_other_args(args: &[String], allowed: &[&str]) -> Result<(), Failure> {
    match args.iter().find(|a| !allowed.contains(&a.as_str())) {
        Some(arg) => Err(Failure::Usage(format!("unexpected argument {arg:?}"))),
        None => Ok(()),
    }
}

fn kill_target(args: &[String]) -> Result<KillTarget, Failure> {
    let mut target = KillTarget::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--user" => {
                let name = args
                    .next()
                    .ok_or_else(|| Failure::Usage("--user needs a name".into()))?;
                target.user = Some(name.clone());
            }
            "--idle" => {
                let text = args
                    .next()
                    .ok_or_else(|| Failure::Usage("--idle needs a duration".into()))?;
                let duration = parse_duration(text)
                    .ok_or_else(|| Failure::Usage(format!("bad duration {text:?}")))?;
                target.idle_secs = Some(duration.as_secs());
            }
            option if option.starts_with('-') => {
                return Err(Failure::Usage(format!("unknown option {option:?}")));
            }
            id => target.ids.push(id.to_owned()),
        }
    }
    let chosen = [
        !target.ids.is_empty(),
        target.user.is_some(),
        target.idle_secs.is_some(),
    ];
    if chosen.iter().filter(|&&set| set).count() != 1 {
        return Err(Failure::Usage(
            "kill needs session ids, or --user NAME, or --idle DURATION".into(),
        ));
    }
    Ok(target)
}

/// `90`, `90s`, `15m`, `2h`, `7d`.
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(split) => text.split_at(split),
        None => (text, "s"),
    };
    let number: u64 = number.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    number.checked_mul(scale).map(Duration::from_secs)
}

fn call(request: &Request) -> Result<Response, Failure> {
    match control::call(&control::socket_path(), request, TIMEOUT) {
        Ok(Response::Error { message }) => Err(Failure::Refused(message)),
        Ok(response) => Ok(response),
        Err(error) => Err(Failure::Refused(error.to_string())),
    }
}

fn unexpected(response: Response) -> Failure {
    Failure::Refused(format!("unexpected answer from the daemon: {response:?}"))
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
            "CLIENT",
            "STARTED",
            "LAST CONTACT",
            "STATE",
        ]
        .map(String::from),
    ];
    for s in sessions {
        rows.push([
            s.id.clone(),
            s.user.clone(),
            s.pid.to_string(),
            s.port.to_string(),
            s.client.clone().unwrap_or_else(|| "-".into()),
            ago(s.started),
            s.last_contact.map(ago).unwrap_or_else(|| "never".into()),
            s.state.clone(),
        ]);
    }
    let mut widths = [0usize; 8];
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
        "mosh-daemon {}\nuptime:   {}\nsessions: {}\nports:    {} of {} in use ({})\n",
        status.version,
        human(status.uptime_secs),
        status.sessions,
        status.ports_used,
        status.ports_total,
        status.port_range
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5w"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn kill_needs_exactly_one_target() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(kill_target(&args(&[])).is_err());
        assert!(kill_target(&args(&["ab", "--user", "bob"])).is_err());
        let target = kill_target(&args(&["ab", "cd"])).ok().unwrap();
        assert_eq!(target.ids, ["ab", "cd"]);
        let target = kill_target(&args(&["--idle", "1h"])).ok().unwrap();
        assert_eq!(target.idle_secs, Some(3600));
    }

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
            state: "connected".into(),
        };
        let text = table(&[session], 2000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID        USER   PID   PORT   CLIENT"));
        assert!(lines[1].starts_with("0123abcd  alice  4242  60001  192.0.2.7:51234"));
        assert!(lines[1].contains("16m40s ago"));
        assert!(lines[1].ends_with("10s ago       connected"));
        assert_eq!(table(&[], 0).lines().last(), Some("(no sessions)"));
    }
}
