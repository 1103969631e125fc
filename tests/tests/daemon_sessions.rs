//! Sessions served by the real `mosh-daemon` (run in the foreground as
//! root): a user's `mosh-server new` through `su`, the worker's identity,
//! the stock client doing real work, where the key never shows up,
//! `moshctl` permissions and kills, and a daemon restart under a connected
//! client.

use std::time::Duration;

use mosh_e2e::daemon::{As, Connect, TestDaemon, TestUser, free_port_range};
use mosh_e2e::process;
use mosh_e2e::stock;
use mosh_e2e::tmux::TmuxSession;

/// Generous bound for anything that should take a moment on loopback.
const QUICK: Duration = Duration::from_secs(15);

/// A shell without rc files, with a prompt tests can wait for.
const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='mosh$ ' exec /bin/sh -i"];

fn type_line(client: &TmuxSession, line: &str) {
    client.send_text(line).unwrap();
    client.send_keys(&["Enter"]).unwrap();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The four ids of a `/proc/PID/status` line (`Uid:` or `Gid:`).
fn proc_ids(pid: u32, field: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

fn proc_file(pid: u32, name: &str) -> String {
    let bytes = std::fs::read(format!("/proc/{pid}/{name}")).unwrap_or_default();
    String::from_utf8_lossy(&bytes).replace('\0', " ")
}

fn connect_client(session: &Connect) -> TmuxSession {
    stock::client_in_tmux(session.addr(), &session.key, 80, 24).expect("start stock mosh-client")
}

#[test]
fn a_users_session_runs_as_that_user_and_keeps_its_key_secret() {
    let daemon = TestDaemon::start(free_port_range(10), "").unwrap();
    let user = TestUser::create().unwrap();
    let session = daemon.new_session(As::User(&user), &SHELL);

    assert_eq!(proc_ids(session.pid, "Uid:"), [user.uid(); 4]);
    assert_eq!(proc_ids(session.pid, "Gid:"), [user.gid(); 4]);
    assert_eq!(proc_ids(session.pid, "Groups:"), [user.gid()]);

    let client = connect_client(&session);
    client.wait_for("mosh$", QUICK).unwrap();
    type_line(&client, "echo I am $(whoami) in $PWD as $USER");
    client
        .wait_for(&format!("I am {0} in /home/{0} as {0}", user.name()), QUICK)
        .unwrap();

    let key = session.key.printable();
    for (who, pid) in [("daemon", daemon.pid()), ("worker", session.pid)] {
        for file in ["cmdline", "environ"] {
            assert!(
                !proc_file(pid, file).contains(&key),
                "the key is in the {who}'s {file}"
            );
        }
    }
    assert!(
        !daemon.log().contains(&key),
        "the key is in the daemon's log"
    );
}

#[test]
fn moshctl_shows_and_kills_only_what_the_caller_may() {
    let daemon = TestDaemon::start(free_port_range(10), "").unwrap();
    let owner = TestUser::create().unwrap();
    let other = TestUser::create().unwrap();
    let mine = daemon.new_session(As::User(&owner), &SHELL);
    let theirs = daemon.new_session(As::User(&other), &SHELL);
    let client = connect_client(&mine);
    client.wait_for("mosh$", QUICK).unwrap();

    let owners_view = daemon.list(As::User(&owner));
    assert_eq!(owners_view.len(), 1, "{owners_view:?}");
    assert_eq!(owners_view[0].1, owner.name());
    let id = owners_view[0].0.clone();
    let roots_view = daemon.list(As::Root);
    assert_eq!(roots_view.len(), 2, "{roots_view:?}");
    let json = text(&daemon.moshctl(As::User(&owner), &["list", "--json"]).stdout);
    assert!(
        json.contains(&format!("\"user\": \"{}\"", owner.name())),
        "{json}"
    );
    assert!(json.contains(&format!("\"port\": {}", mine.port)), "{json}");
    assert!(!json.contains(other.name()), "{json}");
    let idle_kill = daemon.moshctl(As::User(&other), &["kill", "--idle", "1h"]);
    assert!(idle_kill.status.success());
    assert_eq!(text(&idle_kill.stdout), "no sessions to kill\n");

    let refused = daemon.moshctl(As::User(&other), &["kill", &id]);
    assert_eq!(refused.status.code(), Some(1));
    let message = text(&refused.stderr);
    assert!(
        message.starts_with("moshctl: ") && message.contains("belongs to another user"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    let refused = daemon.moshctl(As::User(&other), &["kill", "--user", owner.name()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("only root"));
    assert!(process::is_running(mine.pid, "mosh-server"));

    let killed = daemon.moshctl(As::User(&owner), &["kill", &id]);
    assert!(killed.status.success(), "{}", text(&killed.stderr));
    client
        .wait_for_exit(QUICK)
        .expect("the client exits after the kill");
    assert!(process::wait_for_exit(mine.pid, "mosh-server", QUICK));
    wait_until(|| daemon.list(As::Root).len() == 1);

    let killed = daemon.moshctl(As::Root, &["kill", "--user", other.name()]);
    assert!(killed.status.success(), "{}", text(&killed.stderr));
    assert!(process::wait_for_exit(theirs.pid, "mosh-server", QUICK));
    wait_until(|| daemon.list(As::Root).is_empty());

    let status = text(&daemon.moshctl(As::Root, &["status"]).stdout);
    assert!(status.contains("0 of 10 in use"), "{status}");
    let again = daemon.new_session(As::User(&owner), &SHELL);
    assert_eq!(mine.port, daemon.ports().0);
    assert_eq!(again.port, mine.port, "the port came back to the pool");
}

fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + QUICK;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sessions_survive_a_daemon_restart() {
    let mut daemon = TestDaemon::start(free_port_range(10), "").unwrap();
    let user = TestUser::create().unwrap();
    let session = daemon.new_session(As::User(&user), &SHELL);
    let doomed = daemon.new_session(As::User(&user), &SHELL);
    let client = connect_client(&session);
    client.wait_for("mosh$", QUICK).unwrap();
    let before = daemon.list(As::Root);
    assert_eq!(before.len(), 2);

    daemon
        .restart(|| {
            type_line(&client, "echo between-$((6*7))");
            client.wait_for("between-42", QUICK).unwrap();
            let killed = std::process::Command::new("kill")
                .args(["-s", "KILL", &doomed.pid.to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
            assert!(process::wait_for_exit(doomed.pid, "mosh-server", QUICK));
        })
        .unwrap();
    type_line(&client, "echo still-$((40+2))");
    client.wait_for("still-42", QUICK).unwrap();
    let after = daemon.list(As::Root);
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(before.contains(&after[0]));
    let log = daemon.log();
    assert!(log.contains("re-adopted 1 running sessions"), "{log}");
    let registered: Vec<_> = std::fs::read_dir(daemon.runtime_dir().join("sessions"))
        .unwrap()
        .collect();
    assert_eq!(registered.len(), 1, "the dead session's socket is removed");

    let next = daemon.new_session(As::User(&user), &SHELL);
    assert_ne!(next.port, session.port, "the adopted port stays reserved");
    assert_eq!(
        next.port, doomed.port,
        "the dead session's port is free again"
    );
}

#[test]
fn the_idle_timeout_ends_sessions_whose_client_is_gone_but_not_quiet_ones() {
    let daemon = TestDaemon::start(free_port_range(5), "idle_timeout = 5").unwrap();
    let user = TestUser::create().unwrap();
    let session = daemon.new_session(As::User(&user), &SHELL);
    let client = connect_client(&session);
    client.wait_for("mosh$", QUICK).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        process::is_running(session.pid, "mosh-server"),
        "a connected client that types nothing keeps its session"
    );
    type_line(&client, "echo awake-$((1+1))");
    client.wait_for("awake-2", QUICK).unwrap();
    let wrapper = client
        .run(["list-panes", "-F", "#{pane_pid}"])
        .unwrap()
        .trim()
        .to_owned();
    let children =
        std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children")).unwrap();
    let mosh_client = children
        .split_whitespace()
        .next()
        .expect("mosh-client runs");
    let vanished = std::time::Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-s", "KILL", mosh_client])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(
        process::wait_for_exit(session.pid, "mosh-server", Duration::from_secs(30)),
        "the session outlived its idle timeout without a client"
    );
    assert!(
        vanished.elapsed() >= Duration::from_secs(4),
        "ended after {:?}, before its idle timeout",
        vanished.elapsed()
    );
    wait_until(|| daemon.list(As::Root).is_empty());
}
