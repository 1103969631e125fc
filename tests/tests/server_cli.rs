//! Our `mosh-server`'s command line and lifecycle as stock `mosh` relies on
//! them: usage errors, help and version, the `MOSH CONNECT` line, a busy
//! port range, the UTF-8 locale requirement, and shutting down on signals.

use std::net::UdpSocket;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mosh_e2e::our_program;
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::stock;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(our_program("mosh-server").unwrap())
        .args(args)
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("MOSH_SERVER_FOREGROUND", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version() {
    let help = run(&["new", "--help"], &[]);
    assert!(help.status.success());
    assert!(
        text(&help.stdout).starts_with("Usage: "),
        "{}",
        text(&help.stdout)
    );
    assert!(text(&help.stdout).contains("new [-s] [-v] [-i LOCALADDR] [-p PORT[:PORT2]]"));
    let version = run(&["--version"], &[]);
    assert!(version.status.success());
    assert!(text(&version.stdout).starts_with("mosh-server ("));
}

#[test]
fn bad_port_ranges_and_colours_are_usage_errors() {
    for (args, message) in [
        (
            &["new", "-p", "70000"][..],
            "(Low) port number 70000 outside valid range [0..65535]",
        ),
        (
            &["new", "-p", "61000:60000"][..],
            "Low port 61000 greater than high port 60000",
        ),
        (
            &["new", "-p", "0:10"][..],
            "Low port 0 incompatible with port ranges",
        ),
        (&["new", "-c", "many"][..], "Bad number of colors (many)"),
        (&["a", "b", "c"][..], "too many arguments"),
    ] {
        let output = run(args, &[]);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(stderr.contains("Usage: "), "{args:?}: {stderr}");
        assert!(!text(&output.stdout).contains("MOSH CONNECT"));
    }
}

#[test]
fn busy_port_range_is_a_clear_error() {
    let taken = UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = run(&["new", "-p", &port, "--", "true"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("Failed binding to 0.0.0.0:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("Address already in use"), "{stderr}");
}

#[test]
fn connect_line_matches_what_mosh_expects() {
    let output = Command::new(our_program("mosh-server").unwrap())
        .args(["new", "-p", "0", "--", "true"])
        .env("LANG", "C.UTF-8")
        .env("MOSH_SERVER_NETWORK_TMOUT", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.starts_with("MOSH CONNECT "))
        .expect("connect line");
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words.len(), 4, "{line}");
    assert!(words[2].parse::<u16>().is_ok(), "{line}");
    assert_eq!(words[3].len(), 22, "{line}");
    assert!(
        words[3]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'),
        "{line}"
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains("[mosh-server detached, pid = "), "{stderr}");
}

#[test]
fn a_non_utf8_locale_is_refused_unless_the_client_supplies_one() {
    let refused = run(
        &["new", "-p", "0", "--", "true"],
        &[("LANG", "C"), ("LC_ALL", "C")],
    );
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("mosh-server needs a UTF-8 native locale to run."),
        "{stderr}"
    );
    assert!(!text(&refused.stdout).contains("MOSH CONNECT"));
    let rescued = Command::new(our_program("mosh-server").unwrap())
        .args(["new", "-p", "0", "-l", "LANG=C.UTF-8", "--", "true"])
        .env("LANG", "C")
        .env("LC_ALL", "C")
        .env("MOSH_SERVER_NETWORK_TMOUT", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(rescued.status.success(), "{}", text(&rescued.stderr));
    assert!(text(&rescued.stdout).contains("MOSH CONNECT"));
}

/// Sends `signal` to a connected server and waits up to 10 s for the client
/// to exit; returns its exit status (-1 if it still runs) and whether the
/// server was still running then.
fn signal_session(signal: &str, env: &[(&str, &str)]) -> (i32, bool) {
    let server = MoshServer::start_with(
        Implementation::Ours,
        &["-p", "0"],
        &["/bin/sh", "-c", "PS1='sig$ ' exec /bin/sh -i"],
        env,
    )
    .unwrap();
    let client = stock::client_in_tmux(server.addr(), server.key(), 80, 24).unwrap();
    client.wait_for("sig$", Duration::from_secs(10)).unwrap();
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = client.wait_for_exit(Duration::from_secs(10)).unwrap_or(-1);
    let server_running = !server.wait_for_exit(Duration::from_secs(5));
    (exit, server_running)
}

#[test]
fn sigterm_and_sighup_shut_the_session_down_cleanly() {
    for signal in ["TERM", "HUP"] {
        let (client_exit, server_running) = signal_session(signal, &[]);
        assert_eq!(client_exit, 0, "client after SIG{signal}");
        assert!(!server_running, "server still running after SIG{signal}");
    }
}

#[test]
fn sigusr1_respects_the_signal_timeout() {
    let (client_exit, server_running) =
        signal_session("USR1", &[("MOSH_SERVER_SIGNAL_TMOUT", "3600")]);
    assert_eq!(
        client_exit, -1,
        "a recently active session must survive SIGUSR1"
    );
    assert!(server_running);
    let (client_exit, server_running) = signal_session("USR1", &[]);
    assert_eq!(
        client_exit, 0,
        "without a signal timeout SIGUSR1 always ends it"
    );
    assert!(!server_running);
}
