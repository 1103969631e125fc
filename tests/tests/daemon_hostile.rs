//! Hostile input to a real `mosh-daemon` (run in the foreground as root)
//! from real unprivileged users: a flood of connections to the control
//! socket, hand-made requests with every field wrong, the daemon at its
//! descriptor limit, a broken configuration on SIGHUP while sessions run,
//! and a full runtime filesystem.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mosh_e2e::daemon::{As, Connect, TestDaemon, TestUser, free_port_range};
use mosh_e2e::tmux::TmuxSession;
use mosh_e2e::{UTF8_LOCALE, our_program, process, require_program, stock};
use mosh_stdio::stderrln;

/// Generous bound for anything that should take a moment.
const QUICK: Duration = Duration::from_secs(15);

/// A command that keeps a session open without a client.
const IDLE: [&str; 2] = ["/bin/sleep", "60"];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `program ARGS...` run directly as `user` (no `su`, whose own start-up
/// would dwarf what is measured), pointed at `daemon`.
fn as_user(daemon: &TestDaemon, user: &TestUser, program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(our_program(program).unwrap());
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", user.home())
        .env("LANG", UTF8_LOCALE)
        .env("MOSH_DAEMON_SOCKET", daemon.socket())
        .uid(user.uid())
        .gid(user.gid())
        .stdin(Stdio::null());
    command
}

/// Sends `request` as `user` over a fresh control connection; returns
/// the daemon's answer.
fn send_raw(daemon: &TestDaemon, user: &TestUser, request: &[u8]) -> String {
    let socket = daemon.socket();
    let mut child = as_user(
        daemon,
        user,
        "mosh-e2e-control",
        &["send", &socket.to_string_lossy()],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(request).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
}

/// Runs `command` and says how long it took.
fn timed(command: &mut Command) -> (Output, Duration) {
    let start = Instant::now();
    let output = command.output().unwrap();
    (output, start.elapsed())
}

#[test]
fn one_user_flooding_the_control_socket_keeps_neither_others_nor_root_out() {
    let ports = free_port_range(10);
    let daemon = TestDaemon::start(ports, "").unwrap();
    let offender = TestUser::create().unwrap();
    let user = TestUser::create().unwrap();
    let socket = daemon.socket();
    let mut flood = as_user(
        &daemon,
        &offender,
        "mosh-e2e-control",
        &["flood", &socket.to_string_lossy(), "1000", "8"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(flood.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "holding");

    let mut sessions = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..3 {
        let (output, took) = timed(&mut as_user(
            &daemon,
            &user,
            "mosh-server",
            &["new", "--", IDLE[0], IDLE[1]],
        ));
        let session = Connect::parse(&output).unwrap_or_else(|| {
            panic!(
                "mosh-server new during the flood: {}\n{}",
                text(&output.stderr),
                daemon.log()
            )
        });
        assert!(
            (ports.0..=ports.1).contains(&session.port),
            "a session of the daemon, not a standalone one: {}",
            text(&output.stderr)
        );
        latencies.push(("mosh-server new", took));
        sessions.push(session);
        let moshctl = our_program("moshctl").unwrap();
        let (status, took) = timed(
            Command::new(moshctl)
                .arg("status")
                .env("MOSH_DAEMON_SOCKET", &socket),
        );
        assert!(
            status.status.success(),
            "moshctl status as root during the flood: {}",
            text(&status.stderr)
        );
        assert!(text(&status.stdout).contains("sessions"));
        latencies.push(("moshctl status", took));
    }
    for (what, took) in &latencies {
        stderrln!("during the flood: {what} answered in {took:?}");
        assert!(*took < QUICK, "{what} took {took:?}");
    }
    let summary = lines.next().unwrap().unwrap();
    assert!(flood.wait().unwrap().success());
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    stderrln!("the flood: {summary}");
    let refused = summary["refused"].as_u64().unwrap();
    assert!(refused >= 1000 - 16, "{summary}");
    assert_eq!(
        summary["refusal"],
        format!(
            "{{\"response\":\"error\",\"message\":\"too many control connections from uid {} at \
             once (limit 16); try again later\"}}",
            offender.uid()
        ),
        "{summary}"
    );
    assert!(summary["flood_answered"].as_u64().unwrap() > 0, "{summary}");
    let listed = daemon.list(As::Root);
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().all(|(_, name)| name == user.name()));
}

/// `daemon` started no session for `user`: it logged none, has no child
/// (a worker), and lists none.
fn assert_no_session_started(daemon: &TestDaemon, user: &TestUser) {
    let log = daemon.log();
    assert!(
        !log.contains(&format!(" for {} on port", user.name())),
        "{log}"
    );
    let children = Command::new("pgrep")
        .args(["-P", &daemon.pid().to_string()])
        .output()
        .unwrap();
    assert!(
        children.stdout.is_empty(),
        "the daemon has children: {}",
        text(&children.stdout)
    );
    assert!(daemon.list(As::Root).is_empty());
}

#[test]
fn every_field_of_a_new_session_request_is_checked_before_any_worker_starts() {
    let ports = free_port_range(5);
    let daemon = TestDaemon::start(ports, "").unwrap();
    let user = TestUser::create().unwrap();
    let long = "1".repeat(60_000);
    let outside = format!("[{0},{0}]", ports.1 + 100);
    let cases: [(&str, &str, String); 12] = [
        (
            "bind",
            "\"8.8.8.8\"",
            "bind address 8.8.8.8 is not an address of this host".into(),
        ),
        (
            "bind",
            "\"my-laptop\"",
            "bind address \\\"my-laptop\\\" is not an IP address".into(),
        ),
        (
            "command",
            "[\"/bin/sh\",\"-c\",\"a\\u0000b\"]",
            "word 2 of the command contains a NUL byte".into(),
        ),
        (
            "command",
            "[]",
            "the command is empty (leave it out for the login shell)".into(),
        ),
        (
            "locale",
            "[\"LANG=C.UTF-8\\nLD_PRELOAD=/tmp/evil.so\"]",
            "the value of locale variable LANG has a control character or is longer than 256 bytes"
                .into(),
        ),
        (
            "locale",
            "[\"LD_PRELOAD=/tmp/evil.so\"]",
            "\\\"LD_PRELOAD\\\" is not a locale variable (LANG, LANGUAGE or LC_*)".into(),
        ),
        (
            "colors",
            "4294967296",
            "colour count 4294967296 is not a number from -2147483648 to 2147483647".into(),
        ),
        (
            "colors",
            "2.5",
            "bad request: invalid type: floating point `2.5`, expected i64".into(),
        ),
        (
            "ssh_connection",
            &format!("\"{long}\""),
            "SSH_CONNECTION is 60000 bytes long (at most 256)".into(),
        ),
        (
            "ports",
            "[60850,22]",
            "port range 60850:22 is not LOW:HIGH with 1 <= LOW <= HIGH (or 0 for any)".into(),
        ),
        (
            "ports",
            &outside,
            format!(
                "the requested UDP ports {0}:{0} are outside this server's pool {1}:{2}",
                ports.1 + 100,
                ports.0,
                ports.1
            ),
        ),
        (
            "scrollback",
            "1000000000000",
            "scrollback of 1000000000000 lines (at most 1000000)".into(),
        ),
    ];
    for (field, value, message) in cases {
        let mut request = serde_json::json!({
            "request": "new", "command": ["/bin/sleep", "60"], "colors": 256,
            "bind": null, "ports": null, "locale": ["LANG=C.UTF-8"],
            "ssh_connection": "127.0.0.1 40000 127.0.0.1 22",
        });
        request[field] = serde_json::from_str(value).unwrap();
        let mut line = serde_json::to_vec(&request).unwrap();
        line.push(b'\n');
        let answer = send_raw(&daemon, &user, &line);
        assert!(
            answer.starts_with(&format!("{{\"response\":\"error\",\"message\":\"{message}")),
            "{field} = {value:.60}: {answer:.300}"
        );
        assert_no_session_started(&daemon, &user);
    }
    let accepted = send_raw(
        &daemon,
        &user,
        b"{\"request\":\"new\",\"command\":[\"/bin/sleep\",\"60\"],\"colors\":256,\"bind\":\"127.0.0.1\",\
          \"ports\":null,\"locale\":[\"LANG=C.UTF-8\"],\"ssh_connection\":\"127.0.0.1 40000 127.0.0.1 22\"}\n",
    );
    assert!(
        accepted.starts_with("{\"response\":\"started\""),
        "{accepted}"
    );
    assert_eq!(daemon.list(As::Root).len(), 1);
}

#[test]
fn through_mosh_server_new_a_bind_address_not_of_this_host_falls_back_to_any() {
    let ports = free_port_range(3);
    let daemon = TestDaemon::start(ports, "").unwrap();
    let user = TestUser::create().unwrap();
    let output = daemon.mosh_server(As::User(&user), &["-i", "8.8.8.8", "--", IDLE[0], IDLE[1]]);
    let session = Connect::parse(&output).unwrap_or_else(|| panic!("{}", text(&output.stderr)));
    assert!((ports.0..=ports.1).contains(&session.port));
    assert!(
        text(&output.stderr).contains(
            "mosh-server: bind address 8.8.8.8 is not an address of this host; binding to any \
             interface"
        ),
        "{}",
        text(&output.stderr)
    );
}

/// A shell without rc files, with a prompt tests can wait for.
const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='mosh$ ' exec /bin/sh -i"];

/// A stock client in tmux on `session`, at its prompt.
fn live_client(session: &Connect) -> TmuxSession {
    let client = stock::client_in_tmux(session.addr(), &session.key, 80, 24).unwrap();
    client.wait_for("mosh$", QUICK).unwrap();
    client
}

/// Types a command computing `N`, and waits for its answer: the session
/// still echoes and runs commands.
fn assert_echoes(client: &TmuxSession, marker: &str) {
    client
        .send_text(&format!("echo {marker}-$((6*7))"))
        .unwrap();
    client.send_keys(&["Enter"]).unwrap();
    client.wait_for(&format!("{marker}-42"), QUICK).unwrap();
}

/// The soft and hard RLIMIT_NOFILE of process `pid`.
fn nofile(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[3].to_owned(), words[4].to_owned())
}

/// Sets the soft RLIMIT_NOFILE of process `pid` with `prlimit`.
fn set_soft_nofile(pid: u32, soft: &str) {
    let prlimit = require_program("prlimit").unwrap();
    let (_, hard) = nofile(pid);
    let status = Command::new(prlimit)
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={soft}:{hard}"),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(nofile(pid).0, soft);
}

/// The descriptors process `pid` has open.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// User and system CPU time of process `pid` (all threads), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn at_its_descriptor_limit_the_daemon_refuses_new_sessions_clearly_and_keeps_the_old_ones() {
    let ports = free_port_range(5);
    let daemon = TestDaemon::start(ports, "").unwrap();
    let user = TestUser::create().unwrap();
    let session = daemon.new_session(As::User(&user), &SHELL);
    let client = live_client(&session);
    let pid = daemon.pid();
    let (soft, _) = nofile(pid);
    let refusal = "mosh-server: mosh-daemon has run out of file descriptors; try again later\n";

    // No descriptor left to accept with, then one left: too few for a
    // session's sockets.
    for spare in [0, 1] {
        let limit = (open_descriptors(pid) + spare).to_string();
        set_soft_nofile(pid, &limit);
        let refused = daemon.mosh_server(As::User(&user), &["--", IDLE[0], IDLE[1]]);
        assert_eq!(
            (refused.status.code(), text(&refused.stderr).as_str()),
            (Some(1), refusal),
            "with {spare} spare descriptors; log:\n{}",
            daemon.log()
        );
        assert_echoes(&client, &format!("limited{spare}"));
    }

    // Connections waiting at the limit are turned away at a walk, not by
    // an accept loop spinning on EMFILE.
    set_soft_nofile(pid, &open_descriptors(pid).to_string());
    let logged_before = daemon.log().matches("file descriptors").count();
    let started = Instant::now();
    let ticks_before = cpu_ticks(pid);
    let waiting: Vec<_> = (0..10)
        .map(|_| std::os::unix::net::UnixStream::connect(daemon.socket()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let ticks = cpu_ticks(pid) - ticks_before;
    let wall = started.elapsed();
    drop(waiting);
    let per_second = 100; // USER_HZ
    let share = ticks as f64 / (wall.as_secs_f64() * per_second as f64);
    stderrln!("daemon CPU at its descriptor limit: {share:.3} of a core over {wall:?}");
    assert!(share < 0.5, "the daemon spins: {share:.2} of a core");
    let logged = daemon.log().matches("file descriptors").count() - logged_before;
    assert!(
        logged <= 2,
        "logged {logged} times in 2 s:\n{}",
        daemon.log()
    );
    assert!(
        daemon
            .log()
            .contains("out of file descriptors (Too many open files (os error 24))"),
        "{}",
        daemon.log()
    );

    set_soft_nofile(pid, &soft);
    let again = daemon.new_session(As::User(&user), &IDLE);
    assert!((ports.0..=ports.1).contains(&again.port));
    assert_echoes(&client, "restored");
    assert_eq!(daemon.list(As::Root).len(), 2);
}

#[test]
fn a_broken_configuration_on_sighup_under_load_is_refused_and_disturbs_no_session() {
    let ports = free_port_range(20);
    let daemon = TestDaemon::start(ports, "max_sessions_per_user = 12").unwrap();
    let user = TestUser::create().unwrap();
    let session = daemon.new_session(As::User(&user), &SHELL);
    let client = live_client(&session);
    let broken = [
        (
            "max_sessions_per_user = 1\n\n[control]\nmax_connections = \"lots\"\n",
            ":4: key `max_connections`",
        ),
        (
            "max_sessions_per_user = 1\nport_range = \"1:2\"\nscrollback = 1\nmax_sesions = 2\n",
            ":4: key `max_sesions`",
        ),
        ("max_sessions_per_user = 1\n[firewall\n", ":2"),
    ];
    std::thread::scope(|scope| {
        let starting: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    (0..2)
                        .map(|_| daemon.new_session(As::User(&user), &IDLE).port)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (config, located) in broken {
            daemon.write_config(config).unwrap();
            daemon.signal("HUP");
            assert!(daemon.wait_notification("RELOADING=1", QUICK).unwrap());
            assert!(daemon.wait_notification("READY=1", QUICK).unwrap());
            let expected = format!(
                "keeping the old configuration: {}{located}",
                daemon.config_path().display()
            );
            assert!(
                daemon.log().contains(&expected),
                "{expected}\n{}",
                daemon.log()
            );
            assert_echoes(&client, "reloaded");
        }
        for thread in starting {
            for port in thread.join().unwrap() {
                assert!((ports.0..=ports.1).contains(&port), "the old pool is kept");
            }
        }
    });
    // The old limit of 12 per user holds, not the broken files' 1.
    let more: Vec<_> = (0..3)
        .map(|_| daemon.new_session(As::User(&user), &IDLE))
        .collect();
    assert_eq!(daemon.list(As::Root).len(), 12);
    let refused = daemon.mosh_server(As::User(&user), &["--", IDLE[0], IDLE[1]]);
    assert_eq!(
        text(&refused.stderr),
        format!(
            "mosh-server: too many sessions for user {} (limit 12)\n",
            user.name()
        )
    );
    assert!(process::is_running(session.pid, "mosh-server"));
    assert!(
        more.iter()
            .all(|s| process::is_running(s.pid, "mosh-server"))
    );
    assert_echoes(&client, "after");
}

/// A tmpfs mounted for a test, unmounted (and its parent removed) when
/// dropped, after the daemon using it.
struct Mounted(std::cell::RefCell<Option<std::path::PathBuf>>);

impl Mounted {
    /// Mounts a tmpfs with room for `inodes` files and directories (its
    /// root included) at `path`, which is created.
    fn mount(&self, path: &std::path::Path, inodes: u32) -> std::io::Result<()> {
        std::fs::create_dir_all(path)?;
        let mount = require_program("mount")?;
        let output = Command::new(mount)
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size=256k,nr_inodes={inodes},mode=0755"))
            .arg("tmpfs")
            .arg(path)
            .output()?;
        if !output.status.success() {
            return Err(std::io::Error::other(format!(
                "mount -t tmpfs: {}",
                text(&output.stderr)
            )));
        }
        *self.0.borrow_mut() = Some(path.to_owned());
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(path) = self.0.borrow_mut().take() {
            let _ = Command::new("umount").arg("-l").arg(&path).status();
            if let Some(parent) = path.parent() {
                let _ = std::fs::remove_dir_all(parent);
            }
        }
    }
}

#[test]
fn a_full_runtime_filesystem_refuses_new_sessions_clearly_and_loses_none() {
    let mounted = Mounted(std::cell::RefCell::new(None));
    let ports = free_port_range(5);
    // The directory itself, sessions/, control.sock and two sessions'
    // sockets.
    let mut daemon = TestDaemon::start_on(ports, "", &|runtime| mounted.mount(runtime, 5)).unwrap();
    let user = TestUser::create().unwrap();
    let kept = daemon.new_session(As::User(&user), &SHELL);
    let doomed = daemon.new_session(As::User(&user), &IDLE);
    let client = live_client(&kept);
    let sessions_dir = daemon.runtime_dir().join("sessions");
    let refused = daemon.mosh_server(As::User(&user), &["--", IDLE[0], IDLE[1]]);
    assert_eq!(
        (refused.status.code(), text(&refused.stderr)),
        (
            Some(1),
            format!(
                "mosh-server: mosh-daemon's runtime directory {} is full; try again later\n",
                sessions_dir.display()
            )
        ),
        "{}",
        daemon.log()
    );
    assert_echoes(&client, "full");
    assert_eq!(daemon.list(As::Root).len(), 2);
    assert_eq!(std::fs::read_dir(&sessions_dir).unwrap().count(), 2);

    // Stopped, the daemon frees control.sock; a session dies meanwhile and
    // a stray, truncated file takes the freed room.
    assert_eq!(daemon.stop_with("TERM"), Some(0));
    let killed = Command::new("kill")
        .args(["-s", "KILL", &doomed.pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(process::wait_for_exit(doomed.pid, "mosh-server", QUICK));
    std::fs::write(
        sessions_dir.join("0badc0de.sock"),
        b"{\"id\":\"0badc0de\",\"po",
    )
    .unwrap();
    assert!(
        std::fs::write(sessions_dir.join("more"), b"x").is_err(),
        "the filesystem is full"
    );
    daemon.start_again().unwrap();
    let log = daemon.log();
    assert!(log.contains("forgetting session 0badc0de"), "{log}");
    assert!(log.contains("re-adopted 1 running sessions"), "{log}");
    let listed = daemon.list(As::Root);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_echoes(&client, "restarted");
    let next = daemon.new_session(As::User(&user), &IDLE);
    assert_eq!(
        next.port, doomed.port,
        "the dead session's port is free again"
    );
    assert_eq!(daemon.list(As::Root).len(), 2);
}
