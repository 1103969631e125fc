//! Issue 18: no program of ours panics when its standard output or error is
//! closed, a closed pipe or full, at start, during a session or at exit,
//! and each ends as stock mosh 1.4 does in the same situation, run side by
//! side with Debian's `mosh-server`, `mosh-client` and `mosh`:
//!
//! * a write to a closed pipe ends stock with SIGPIPE where it has the
//!   signal's default action (`mosh-server` until it prints `MOSH CONNECT`,
//!   `mosh-client` until its session handles the signal, the `mosh` Perl
//!   script throughout), and changes nothing after that;
//! * a closed or full stream loses the output and changes nothing;
//! * a standalone session whose stdout and stderr were pipes to a parent
//!   that read `MOSH CONNECT` and went away ends, by the network timeout or
//!   by SIGUSR1 past `MOSH_SERVER_SIGNAL_TMOUT`, with status 0.
//!
//! Our daemon's programs have no stock counterpart: they end with the
//! status they have when their output is read.
//!
//! The test program is a child subreaper ([`Orphans`]); every test holds
//! its lock while it runs servers, so that under `cargo test`'s threads no
//! test adopts another's `mosh-server`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use mosh_e2e::daemon::{Connect, TestDaemon};
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::stdio::{self, BROKEN, Orphans, Sink, TerminalOut, TerminalRun, describe, panicked};
use mosh_e2e::{our_program, require_program, stock};

const QUICK: Duration = Duration::from_secs(15);

/// How a program's status must compare with stock's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The same status.
    Stock,
    /// Stock ends in Perl's `die`, whose status is the errno of the last
    /// failed call (255 when there is none, 9 or 28 after a failed write to
    /// a closed or full stderr): the same signal when stock dies of one,
    /// else a failure, with the status ours has when its output is read.
    PerlDie,
}

/// One command line run by ours and by stock.
struct Case {
    program: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    expect: Expect,
}

const fn case(program: &'static str, args: &'static [&'static str]) -> Case {
    Case {
        program,
        args,
        env: &[],
        expect: Expect::Stock,
    }
}

/// The normal and error exits that need no session: help, version, the
/// colour count, bad options and arguments, a missing key, no terminal.
const CASES: &[Case] = &[
    case("mosh-server", &["--help"]),
    case("mosh-server", &["--version"]),
    case("mosh-server", &["new", "-c", "many"]),
    case("mosh-server", &["new", "-p", "70000"]),
    case("mosh-server", &["a", "b", "c"]),
    case("mosh-client", &["--help"]),
    case("mosh-client", &["--version"]),
    case("mosh-client", &["-c"]),
    case("mosh-client", &["-z"]),
    case("mosh-client", &["127.0.0.1"]),
    case("mosh-client", &["127.0.0.1", "x"]),
    case("mosh-client", &["127.0.0.1", "60001"]),
    Case {
        env: &[("MOSH_KEY", "AAAAAAAAAAAAAAAAAAAAAA")],
        ..case("mosh-client", &["127.0.0.1", "60001"])
    },
    case("mosh", &["--help"]),
    case("mosh", &["--version"]),
    Case {
        expect: Expect::PerlDie,
        ..case("mosh", &["--zzz"])
    },
    Case {
        expect: Expect::PerlDie,
        ..case("mosh", &[])
    },
    Case {
        expect: Expect::PerlDie,
        ..case("mosh", &["--predict=bogus", "host"])
    },
];

fn ours(name: &str) -> PathBuf {
    our_program(name).unwrap()
}

fn stock_program(name: &str) -> PathBuf {
    require_program(name).unwrap()
}

fn assert_no_panic(what: &str, outcome: &Output) {
    assert!(
        !panicked(outcome.status, &[&outcome.stdout, &outcome.stderr]),
        "{what} panicked ({}): stdout {:?} stderr {:?}",
        describe(outcome.status),
        String::from_utf8_lossy(&outcome.stdout),
        String::from_utf8_lossy(&outcome.stderr)
    );
}

#[test]
fn stock_programs_end_as_stock_does_when_their_output_is_gone() {
    let _one_at_a_time = Orphans::adopt();
    for case in CASES {
        let (name, args, env) = (case.program, case.args, case.env);
        let read = stdio::run(&ours(name), args, env, Sink::Captured, Sink::Captured);
        assert_no_panic(&format!("{name} {args:?}"), &read);
        for (out, err) in BROKEN {
            let what = format!("{name} {args:?} with stdout {out:?}, stderr {err:?}");
            let ours = stdio::run(&ours(name), args, env, out, err);
            assert_no_panic(&what, &ours);
            let stock = stdio::run(&stock_program(name), args, env, out, err);
            let (ours, stock) = (ours.status, stock.status);
            match case.expect {
                Expect::Stock => assert_eq!(
                    describe(ours),
                    describe(stock),
                    "{what}: ours ended unlike stock"
                ),
                Expect::PerlDie if stock.code().is_none() => {
                    assert_eq!(describe(ours), describe(stock), "{what}")
                }
                Expect::PerlDie => {
                    assert!(!stock.success(), "{what}: stock succeeded");
                    assert_eq!(describe(ours), describe(read.status), "{what}");
                }
            }
        }
    }
}

/// Where the session tests' servers get their timeouts from.
fn session_env(end: End) -> Vec<(&'static str, &'static str)> {
    match end {
        End::NetworkTimeout => vec![("MOSH_SERVER_NETWORK_TMOUT", "2")],
        End::SignalTimeout => vec![
            ("MOSH_SERVER_SIGNAL_TMOUT", "1"),
            ("MOSH_SERVER_NETWORK_TMOUT", "60"),
        ],
    }
}

/// How a standalone session is made to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Its client is killed and `MOSH_SERVER_NETWORK_TMOUT` (2 s) passes.
    NetworkTimeout,
    /// SIGUSR1 more than `MOSH_SERVER_SIGNAL_TMOUT` (1 s) after the last
    /// contact.
    SignalTimeout,
}

/// `mosh-server new -v` (which keeps its standard streams when it
/// detaches) with stdout and stderr pipes to this test, which reads
/// `MOSH CONNECT` and the detached pid and closes both pipes; a stock
/// client then connects, works and is killed, and the session is ended as
/// `end` says. Returns the exit status of the starting process and of the
/// detached server.
fn session_whose_reader_went_away(implementation: Implementation, end: End) -> (String, String) {
    let orphans = Orphans::adopt();
    let env = session_env(end);
    let started = stdio::start(
        &implementation.program().unwrap(),
        &["new", "-v", "-p", "0", "--", "/bin/sh"],
        &env,
        Sink::ReadUntil("MOSH CONNECT "),
        Sink::ReadUntil("[mosh-server detached, pid = "),
    );
    let parent = started.finish(QUICK, QUICK);
    assert_no_panic(&format!("{implementation:?} mosh-server new"), &parent);
    let Connect { port, key, pid } = Connect::parse(&parent)
        .unwrap_or_else(|| panic!("no connect line or detached pid: {parent:?}"));
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let client = stock::client_in_tmux(server, &key, 80, 24).unwrap();
    client.wait_for("#", QUICK).unwrap();
    client.send_text("echo alive-$((6*7))").unwrap();
    client.send_keys(&["Enter"]).unwrap();
    client.wait_for("alive-42", QUICK).unwrap();
    let client_pid = client.command_pid().unwrap();
    let killed = Command::new("kill")
        .args(["-KILL", &client_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    if end == End::SignalTimeout {
        std::thread::sleep(Duration::from_millis(1500));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .unwrap();
    }
    let status = orphans
        .wait(pid, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{implementation:?} mosh-server did not end by {end:?}"));
    (describe(parent.status), describe(status))
}

#[test]
fn a_session_ends_cleanly_by_the_network_timeout_after_its_reader_went_away() {
    let stock = session_whose_reader_went_away(Implementation::Stock, End::NetworkTimeout);
    let ours = session_whose_reader_went_away(Implementation::Ours, End::NetworkTimeout);
    assert_eq!(stock, ("exit 0".to_owned(), "exit 0".to_owned()));
    assert_eq!(ours, stock);
}

#[test]
fn a_session_ends_cleanly_by_sigusr1_after_its_reader_went_away() {
    let stock = session_whose_reader_went_away(Implementation::Stock, End::SignalTimeout);
    let ours = session_whose_reader_went_away(Implementation::Ours, End::SignalTimeout);
    assert_eq!(stock, ("exit 0".to_owned(), "exit 0".to_owned()));
    assert_eq!(ours, stock);
}

/// `mosh-server new [-v]` with stdout and stderr broken from the start
/// (nobody can read `MOSH CONNECT`), ended by SIGUSR1 past
/// `MOSH_SERVER_SIGNAL_TMOUT`: the statuses of the starting process and,
/// if it forked, of the detached server.
fn session_nobody_reads(
    implementation: Implementation,
    verbose: bool,
    out: Sink,
    err: Sink,
) -> (String, Option<String>) {
    let orphans = Orphans::adopt();
    orphans.end_all("mosh-server");
    let mut args = vec!["new", "-p", "0", "--", "/bin/sh"];
    if verbose {
        args.insert(1, "-v");
    }
    let env = session_env(End::SignalTimeout);
    let parent = stdio::run(&implementation.program().unwrap(), &args, &env, out, err);
    let what = format!("{implementation:?} mosh-server {args:?}, stdout {out:?}, stderr {err:?}");
    assert_no_panic(&what, &parent);
    if !parent.status.success() {
        return (describe(parent.status), None);
    }
    let pid = orphans.the_one("mosh-server", QUICK);
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    let status = orphans
        .wait(pid, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{what}: the detached server did not end"));
    (describe(parent.status), Some(describe(status)))
}

#[test]
fn a_session_nobody_can_read_from_the_start_ends_as_stock_does() {
    for verbose in [true, false] {
        for (out, err) in [
            (Sink::ClosedPipe, Sink::Captured),
            (Sink::Captured, Sink::ClosedPipe),
            (Sink::ClosedPipe, Sink::ClosedPipe),
            (Sink::Full, Sink::Full),
        ] {
            let stock = session_nobody_reads(Implementation::Stock, verbose, out, err);
            let ours = session_nobody_reads(Implementation::Ours, verbose, out, err);
            assert_eq!(
                ours, stock,
                "-v {verbose}, stdout {out:?}, stderr {err:?}: ours (left) unlike stock"
            );
        }
    }
}

/// Runs `client 127.0.0.1 PORT` on a terminal against our standalone
/// server with the terminal's output as `stdout` says: types a command
/// that leaves a witness file and ends the shell (or, with a read stdout,
/// waits for it, closes the pipe and makes the screen change first).
/// Returns the client's status and whether the witness was written.
fn client_run(client: &Path, stdout: TerminalOut, stderr_closed_pipe: bool) -> (String, bool) {
    let server = MoshServer::start(Implementation::Ours, &["/bin/sh"]).unwrap();
    let witness = std::env::temp_dir().join(format!(
        "mosh-e2e-stdio-witness-{}-{}",
        std::process::id(),
        server.addr().port()
    ));
    let _ = std::fs::remove_file(&witness);
    let key = server.key().printable();
    let port = server.addr().port().to_string();
    let mut run = TerminalRun::start(
        client,
        &["127.0.0.1", &port],
        &[("MOSH_KEY", &key), ("TERM", "xterm")],
        stdout,
        stderr_closed_pipe,
    );
    if let TerminalOut::Broken(Sink::ReadUntil(_)) = stdout {
        run.type_text("echo read-$((2*3))\r");
        let read = run.stdout_closed(QUICK);
        assert!(read.is_some(), "the client never showed read-6");
        run.type_text("echo gone-$((3*3))\r");
    }
    run.type_text(&format!("echo ok > {}; exit\r", witness.display()));
    ended(client, &mut run, QUICK, &witness)
}

/// Waits up to `timeout` for `program` run on a terminal to exit, checks
/// that it did not panic, and returns its status and whether the session
/// left `witness` (removed).
fn ended(
    program: &Path,
    run: &mut TerminalRun,
    timeout: Duration,
    witness: &Path,
) -> (String, bool) {
    let status = run
        .wait(timeout)
        .unwrap_or_else(|| panic!("{} did not exit", program.display()));
    let shown = run.shown();
    assert!(
        !panicked(status, &[&shown]),
        "{} panicked: {}",
        program.display(),
        String::from_utf8_lossy(&shown)
    );
    let witnessed = witness.exists();
    let _ = std::fs::remove_file(witness);
    (describe(status), witnessed)
}

#[test]
fn mosh_client_ends_as_stock_does_when_its_output_is_gone() {
    let _one_at_a_time = Orphans::adopt();
    for (stdout, stderr_closed_pipe) in [
        (TerminalOut::Terminal, false),
        (TerminalOut::Broken(Sink::Closed), false),
        (TerminalOut::Broken(Sink::ClosedPipe), false),
        (TerminalOut::Broken(Sink::Full), false),
        (TerminalOut::Broken(Sink::ReadUntil("read-6")), false),
        (TerminalOut::Terminal, true),
    ] {
        let stock = client_run(&stock_program("mosh-client"), stdout, stderr_closed_pipe);
        let ours = client_run(&ours("mosh-client"), stdout, stderr_closed_pipe);
        assert_eq!(
            ours, stock,
            "stdout {stdout:?}, stderr a closed pipe: {stderr_closed_pipe}: ours (left) unlike stock"
        );
    }
}

/// `mosh --local 127.0.0.1 -- sh -c 'echo ok > WITNESS'` on a terminal,
/// with `client` and `server` (stock's by default), stdout as `stdout`
/// says: the launcher's status and whether the session ran.
fn launcher_run(mosh: &Path, programs: &[String], stdout: Sink) -> (String, bool) {
    let witness = std::env::temp_dir().join(format!(
        "mosh-e2e-stdio-launcher-{}-{}",
        std::process::id(),
        programs.len()
    ));
    let _ = std::fs::remove_file(&witness);
    let command = format!("echo ok > {}", witness.display());
    let mut args: Vec<&str> = vec!["--local"];
    args.extend(programs.iter().map(String::as_str));
    args.extend(["127.0.0.1", "--", "/bin/sh", "-c", &command]);
    let mut run = TerminalRun::start(
        mosh,
        &args,
        &[("TERM", "xterm"), ("MOSH_SERVER_NETWORK_TMOUT", "5")],
        TerminalOut::Broken(stdout),
        false,
    );
    ended(mosh, &mut run, Duration::from_secs(30), &witness)
}

#[test]
fn mosh_ends_as_stock_does_when_its_output_is_gone() {
    let orphans = Orphans::adopt();
    let programs = [
        format!("--client={}", ours("mosh-client").display()),
        format!("--server={}", ours("mosh-server").display()),
    ];
    for stdout in [Sink::Closed, Sink::ClosedPipe, Sink::Full] {
        let stock = launcher_run(&stock_program("mosh"), &[], stdout);
        orphans.end_all("mosh-server");
        let ours = launcher_run(&ours("mosh"), &programs, stdout);
        // A launcher that died of SIGPIPE leaves its server behind.
        orphans.end_all("mosh-server");
        assert_eq!(ours, stock, "stdout {stdout:?}: ours (left) unlike stock");
    }
}

/// Our daemon's programs' exits that need no daemon.
const DAEMON_CASES: &[(&str, &[&str])] = &[
    ("mosh-daemon", &["--help"]),
    ("mosh-daemon", &["--version"]),
    ("mosh-daemon", &["--zzz"]),
    ("mosh-daemon", &["--config", "/nonexistent/config.toml"]),
    ("mosh-daemon-worker", &[]),
    ("mosh-daemon-worker", &["--zzz"]),
    ("moshctl", &["--help"]),
    ("moshctl", &["--version"]),
    ("moshctl", &["--zzz"]),
    ("moshctl", &["list"]),
];

#[test]
fn our_daemon_programs_keep_their_status_when_their_output_is_gone() {
    let _one_at_a_time = Orphans::adopt();
    let env = [("MOSH_DAEMON_SOCKET", "/nonexistent/control.sock")];
    for (name, args) in DAEMON_CASES {
        let read = stdio::run(&ours(name), args, &env, Sink::Captured, Sink::Captured);
        assert_no_panic(&format!("{name} {args:?}"), &read);
        for (out, err) in BROKEN {
            let what = format!("{name} {args:?} with stdout {out:?}, stderr {err:?}");
            let broken = stdio::run(&ours(name), args, &env, out, err);
            assert_no_panic(&what, &broken);
            assert_eq!(describe(broken.status), describe(read.status), "{what}");
        }
    }
}

#[test]
fn the_daemon_serves_and_stops_cleanly_when_its_output_is_gone() {
    let _one_at_a_time = Orphans::adopt();
    for sink in [Sink::ClosedPipe, Sink::Full] {
        let ports = mosh_e2e::daemon::free_port_range(4);
        let mut daemon = TestDaemon::start_with_output(ports, "", sink).unwrap();
        let env = daemon.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let session = daemon.new_session(mosh_e2e::daemon::As::Root, &["/bin/sh"]);
        let client = stock::client_in_tmux(session.addr(), &session.key, 80, 24).unwrap();
        client.wait_for("#", QUICK).unwrap();
        for args in [
            &["list"][..],
            &["list", "--json"],
            &["status"],
            &["kill", "--idle", "0"],
        ] {
            for (out, err) in BROKEN {
                if args[0] == "kill" && out != Sink::ClosedPipe {
                    continue;
                }
                let what = format!("moshctl {args:?} with stdout {out:?}, stderr {err:?}");
                let outcome = stdio::run(&ours("moshctl"), args, &env, out, err);
                assert_no_panic(&what, &outcome);
                assert!(
                    outcome.status.success(),
                    "{what}: {}",
                    describe(outcome.status)
                );
            }
        }
        assert_eq!(
            client.wait_for_exit(QUICK).unwrap(),
            0,
            "the killed session's client"
        );
        assert_eq!(
            daemon.stop_with("TERM"),
            Some(0),
            "mosh-daemon with output {sink:?}"
        );
    }
}
