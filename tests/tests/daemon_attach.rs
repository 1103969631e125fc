//! Reattaching: `mosh-server attach` re-keys a running session of the
//! daemon for a brand-new client (stock mosh 1.4's `mosh-client` here),
//! which gets the whole current screen, while the old key stops working;
//! `--force` takes over a session whose client is live; the refusals
//! (another user, root, no detached session, an unknown id, no daemon, too
//! many requests); the launchers over real ssh; the notice on a new
//! session's screen and `moshctl list`; a daemon restart; the old key gone
//! from the worker's memory; and the terminal's utmp record through it all.
#![allow(
    clippy::print_stderr,
    reason = "a test's diagnostics, captured by the test runner"
)]

use std::time::{Duration, Instant};

use mosh_e2e::daemon::{As, Connect, TestDaemon, TestUser, free_port_range, run_as};
use mosh_e2e::peer::UdpPeer;
use mosh_e2e::states::{HostLog, UserStream};
use mosh_e2e::tmux::TmuxSession;
use mosh_e2e::{UTF8_LOCALE, our_program, ours, stock};

/// Generous bound for anything that should take a moment on loopback.
const QUICK: Duration = Duration::from_secs(15);

/// A shell without rc files, with a prompt tests can wait for.
const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='mosh$ ' exec /bin/sh -i"];

/// A background job that writes `C=<time>` at the top right of the screen
/// five times a second, leaving the cursor where it was (the prompt, moved
/// two rows down by the line after it).
const COUNTER: &str = "tick() { while :; do printf '\\0337\\033[1;50HC=%s\\033[K\\0338' \
                       \"$(date +%s.%N)\"; sleep .2; done; }; clear; echo; echo; tick &";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn type_line(client: &TmuxSession, line: &str) {
    client.send_text(line).unwrap();
    client.send_keys(&["Enter"]).unwrap();
}

/// A daemon with `config` added (five ports), a new user, and a session of
/// theirs running [`SHELL`] with no client yet.
fn daemon_with_a_session(config: &str) -> (TestDaemon, TestUser, Connect) {
    let daemon = TestDaemon::start(free_port_range(5), config).unwrap();
    let user = TestUser::create().unwrap();
    let session = daemon.new_session(As::User(&user), &SHELL);
    (daemon, user, session)
}

fn connect_client(session: &Connect) -> TmuxSession {
    stock::client_in_tmux(session.addr(), &session.key, 80, 24).expect("start stock mosh-client")
}

/// The counter's value on the screen.
fn counter(client: &TmuxSession) -> Option<f64> {
    let screen = client.capture().ok()?;
    let value = screen.lines().next()?.split("C=").nth(1)?;
    value.split_whitespace().next()?.parse().ok()
}

/// Waits until the counter shows a value above `than`; returns it.
fn counter_above(client: &TmuxSession, than: f64) -> f64 {
    let deadline = Instant::now() + QUICK;
    loop {
        if let Some(value) = counter(client).filter(|&value| value > than) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "the counter did not pass {than}; the screen:\n{}",
            client.capture().unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill_client(client: &TmuxSession) {
    let pid = client.command_pid().expect("mosh-client runs");
    let killed = std::process::Command::new("kill")
        .args(["-s", "KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    client.wait_for_exit(QUICK).expect("mosh-client is gone");
}

/// Waits until `moshctl list --json` shows the session as `state`.
fn wait_for_state(daemon: &TestDaemon, who: As<'_>, state: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let listed = text(&daemon.moshctl(who, &["list", "--json"]).stdout);
        if listed.contains(&format!("\"state\": \"{state}\"")) {
            return;
        }
        assert!(Instant::now() < deadline, "never {state}: {listed}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn attached(daemon: &TestDaemon, output: &std::process::Output) -> Connect {
    Connect::parse(output).unwrap_or_else(|| {
        panic!(
            "mosh-server attach failed ({}): stdout {:?} stderr {:?}\ndaemon log:\n{}",
            output.status,
            text(&output.stdout),
            text(&output.stderr),
            daemon.log()
        )
    })
}

/// A bare client of `session` under `key` (no terminal), not yet started.
fn client_peer(session: &Connect, key: &mosh_proto::Base64Key) -> UdpPeer<UserStream, HostLog> {
    UdpPeer::client(
        session.addr(),
        key,
        UserStream::default(),
        HostLog::default(),
    )
    .unwrap()
}

/// Sends keystrokes under `key` to the session for a while; returns how
/// many datagrams came back (authenticated or not).
fn datagrams_answering(session: &Connect, key: &mosh_proto::Base64Key, keys: &[u8]) -> usize {
    let mut peer = client_peer(session, key);
    peer.transport_mut().current_state_mut().push_bytes(keys);
    let _ = peer.run_until(Duration::from_secs(3), "nothing", |_| None::<()>);
    peer.deliveries().len() + peer.errors().len()
}

#[test]
fn a_new_stock_client_takes_over_a_detached_session_with_its_screen_and_the_old_key_dies() {
    let (daemon, user, session) = daemon_with_a_session("");
    let first = connect_client(&session);
    first.wait_for("mosh$", QUICK).unwrap();
    type_line(&first, COUNTER);
    let before = counter_above(&first, 0.0);
    first.send_text("echo half-$((6*").unwrap();
    first.wait_for("mosh$ echo half-$((6*", QUICK).unwrap();
    kill_client(&first);
    wait_for_state(
        &daemon,
        As::User(&user),
        "detached",
        Duration::from_secs(30),
    );

    let output = daemon.attach(As::User(&user), &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let again = attached(&daemon, &output);
    assert_eq!(again.port, session.port, "same port");
    assert_eq!(again.pid, session.pid, "same worker");
    assert_ne!(again.key, session.key, "a new key");
    for (who, pid) in [("daemon", daemon.pid()), ("worker", session.pid)] {
        for file in ["cmdline", "environ"] {
            let bytes = std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default();
            assert!(
                !text(&bytes).contains(&again.key.printable()),
                "the new key is in the {who}'s {file}"
            );
        }
    }
    assert!(!daemon.log().contains(&again.key.printable()));

    let second = connect_client(&again);
    second.wait_for("mosh$ echo half-$((6*", QUICK).unwrap();
    let shown = counter_above(&second, before);
    counter_above(&second, shown);

    assert_eq!(
        datagrams_answering(&session, &session.key, b"echo PWNED-$((2+2))\r"),
        0,
        "the old key still gets answers"
    );
    second.send_text("7))").unwrap();
    second.send_keys(&["Enter"]).unwrap();
    second.wait_for("half-42", QUICK).unwrap();
    type_line(&second, "echo after-$((40+2))");
    second.wait_for("after-42", QUICK).unwrap();
    let screen = second.capture().unwrap();
    assert!(!screen.contains("PWNED-4"), "{screen}");
}

/// Where `needle` occurs in the writable memory of process `pid` (heap,
/// stacks, anonymous and data mappings), as `start-end name` of each
/// mapping that holds it. Needs root.
fn memory_holding(pid: u32, needle: &[u8]) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut memory = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut found = Vec::new();
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(range), Some(perms)) = (fields.first(), fields.get(1)) else {
            continue;
        };
        if !perms.starts_with("rw") || fields.get(5) == Some(&"[vvar]") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut bytes = vec![0u8; (end - start) as usize];
        if memory.seek(SeekFrom::Start(start)).is_err() || memory.read_exact(&mut bytes).is_err() {
            continue;
        }
        for (offset, _) in bytes
            .windows(needle.len())
            .enumerate()
            .filter(|(_, window)| *window == needle)
        {
            let from = offset.saturating_sub(96) & !7;
            let to = (offset + needle.len() + 96).min(bytes.len());
            let context: Vec<String> = bytes[from..to]
                .chunks(8)
                .map(|word| word.iter().rev().map(|b| format!("{b:02x}")).collect())
                .collect();
            found.push(format!(
                "{range} {} at {:#x}: {}",
                fields.get(5).unwrap_or(&""),
                start + offset as u64,
                context.join(" ")
            ));
        }
    }
    found
}

#[test]
fn the_old_key_is_wiped_from_the_workers_memory() {
    let (daemon, user, session) = daemon_with_a_session("");
    let first = connect_client(&session);
    first.wait_for("mosh$", QUICK).unwrap();
    let old = session.key.clone();
    let printable = old.printable();
    assert!(
        !memory_holding(session.pid, old.bytes()).is_empty(),
        "the scan finds the key in use"
    );
    let again = attached(&daemon, &daemon.attach(As::User(&user), &["--force"]));
    let second = connect_client(&again);
    second.wait_for("mosh$", QUICK).unwrap();
    type_line(&second, "echo fine-$((3*3))");
    second.wait_for("fine-9", QUICK).unwrap();
    assert_eq!(
        memory_holding(session.pid, old.bytes()),
        Vec::<String>::new()
    );
    assert_eq!(
        memory_holding(session.pid, printable.as_bytes()),
        Vec::<String>::new()
    );
    assert!(
        !memory_holding(session.pid, again.key.bytes()).is_empty(),
        "the scan finds the new key"
    );

    let third = attached(&daemon, &daemon.attach(As::User(&user), &["--force"]));
    let client = connect_client(&third);
    client.wait_for("fine-9", QUICK).unwrap();
    for key in [&old, &again.key] {
        assert_eq!(
            memory_holding(session.pid, key.bytes()),
            Vec::<String>::new()
        );
        let printable = key.printable();
        assert_eq!(
            memory_holding(session.pid, printable.as_bytes()),
            Vec::<String>::new()
        );
    }
}

#[test]
fn force_takes_over_a_live_session_and_the_old_client_hears_nothing_more() {
    let (daemon, user, session) = daemon_with_a_session("");
    let first = connect_client(&session);
    first.wait_for("mosh$", QUICK).unwrap();
    wait_for_state(&daemon, As::User(&user), "attached", QUICK);

    let refused = daemon.attach(As::User(&user), &[]);
    assert_eq!(refused.status.code(), Some(1));
    let message = text(&refused.stderr);
    assert!(
        message.contains("live") && message.contains("mosh-server attach --force"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    type_line(&first, "echo still-mine-$((1+1))");
    first.wait_for("still-mine-2", QUICK).unwrap();

    let output = daemon.attach(As::User(&user), &["--force"]);
    let again = attached(&daemon, &output);
    let second =
        stock::client_in_tmux(again.addr(), &again.key, 100, 30).expect("start stock mosh-client");
    second.wait_for("still-mine-2", QUICK).unwrap();
    type_line(&second, "stty size");
    second.wait_for("30 100", QUICK).unwrap();
    type_line(&second, "echo taken-over-$((2+3))");
    second.wait_for("taken-over-5", QUICK).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let old_screen = first.capture().unwrap();
    assert!(!old_screen.contains("taken-over"), "{old_screen}");
    type_line(&first, "echo from-the-old-one");
    std::thread::sleep(Duration::from_secs(2));
    let screen = second.capture().unwrap();
    assert!(!screen.contains("from-the-old-one"), "{screen}");
}

#[test]
fn only_the_owner_attaches_and_every_refusal_is_one_line_with_status_1() {
    let daemon = TestDaemon::start(free_port_range(5), "").unwrap();
    let owner = TestUser::create().unwrap();
    let other = TestUser::create().unwrap();
    let session = daemon.new_session(As::User(&owner), &SHELL);
    let id = daemon.list(As::Root)[0].0.clone();

    let refusal = |output: std::process::Output, wanted: &str| {
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        assert!(output.stdout.is_empty(), "{output:?}");
        let message = text(&output.stderr);
        assert!(
            message.starts_with("mosh-server: ") && message.contains(wanted),
            "{message}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
    };
    refusal(
        daemon.attach(As::User(&other), &[&id]),
        "belongs to another user",
    );
    refusal(daemon.attach(As::User(&other), &[]), "no detached session");
    refusal(
        daemon.attach(As::Root, &["--force", &id]),
        "root may list and kill it but not attach",
    );
    refusal(
        daemon.attach(As::User(&owner), &["0badc0de"]),
        "no session 0badc0de",
    );
    let mosh_server = our_program("mosh-server").unwrap();
    refusal(
        run_as(
            As::User(&owner),
            &mosh_server,
            &["attach"],
            &[
                ("MOSH_DAEMON_SOCKET", "/nonexistent/control.sock"),
                ("LANG", UTF8_LOCALE),
            ],
        ),
        "attaching needs mosh-daemon",
    );

    // The session never had a client: by id it can be attached, and the
    // key that `new` printed is then useless.
    let attached = daemon.attach(As::User(&owner), &[&id]);
    let again = Connect::parse(&attached).expect("attached by id");
    assert_ne!(again.key, session.key);
    assert_eq!(datagrams_answering(&session, &session.key, b"x"), 0);

    let output = daemon.mosh_server(As::User(&owner), &["--reattach", "--", "/bin/true"]);
    let reattached = Connect::parse(&output).expect("new --reattach attached");
    assert_eq!(reattached.port, session.port);
    let said = text(&output.stderr);
    assert!(
        said.contains(&format!(
            "--reattach: attached to detached session {id} instead of running \"/bin/true\""
        )),
        "{said}"
    );
    let standalone = run_as(
        As::User(&other),
        &mosh_server,
        &["new", "--reattach", "--", "/bin/true"],
        &[
            ("MOSH_DAEMON_SOCKET", "/nonexistent/control.sock"),
            ("LANG", UTF8_LOCALE),
        ],
    );
    let alone = Connect::parse(&standalone).expect("new --reattach without a daemon starts one");
    assert!(mosh_e2e::process::terminate(
        alone.pid,
        "mosh-server",
        Duration::from_secs(2)
    ));

    let mut refused = None;
    for _ in 0..20 {
        let output = daemon.attach(As::User(&owner), &[&id]);
        if !output.status.success() {
            refused = Some(output);
            break;
        }
    }
    refusal(
        refused.expect("20 attach requests in a row are limited"),
        "too many attach requests",
    );
    refusal(daemon.attach(As::User(&other), &[]), "no detached session");
}

#[test]
fn our_launcher_attaches_and_the_stock_launcher_reattaches_over_real_ssh() {
    use mosh_e2e::sshd::Sshd;
    let daemon = TestDaemon::start(free_port_range(5), "").unwrap();
    let user = TestUser::create().unwrap();
    let sshd = Sshd::start(22010, &user).unwrap();
    let session = daemon.new_session(As::User(&user), &SHELL);
    let first = connect_client(&session);
    first.wait_for("mosh$", QUICK).unwrap();
    type_line(&first, "echo marker-$((9*9))");
    first.wait_for("marker-81", QUICK).unwrap();
    kill_client(&first);
    wait_for_state(
        &daemon,
        As::User(&user),
        "detached",
        Duration::from_secs(30),
    );

    let destination = format!("{}@localhost", user.name());
    let ssh = format!("--ssh={}", sshd.ssh_command());
    let server = |extra: &str| {
        format!(
            "--server=MOSH_DAEMON_SOCKET={} {}{extra}",
            daemon.socket().display(),
            our_program("mosh-server").unwrap().display()
        )
    };
    let ours = TmuxSession::start(
        80,
        24,
        &[
            &our_program("mosh").unwrap().to_string_lossy(),
            &ssh,
            &format!("--client={}", our_program("mosh-client").unwrap().display()),
            &server(""),
            "--attach",
            &destination,
        ],
        &[("LANG", UTF8_LOCALE)],
    )
    .unwrap();
    let shown = ours.wait_for("marker-81", QUICK);
    assert!(shown.is_ok(), "{shown:?}\nsshd log:\n{}", sshd.log());
    type_line(&ours, "echo ours-$((5+5))");
    ours.wait_for("ours-10", QUICK).unwrap();
    wait_for_state(&daemon, As::User(&user), "attached", QUICK);
    kill_client(&ours);
    wait_for_state(
        &daemon,
        As::User(&user),
        "detached",
        Duration::from_secs(30),
    );

    let stock_launcher = |name: &str| {
        TmuxSession::start(
            80,
            24,
            &[
                "/usr/bin/mosh",
                &ssh,
                &server(" --reattach"),
                &destination,
                "--",
                "/bin/sh",
                "-c",
                &format!("PS1='{name}$ ' exec /bin/sh -i"),
            ],
            &[("LANG", UTF8_LOCALE)],
        )
        .unwrap()
    };
    let perl = stock_launcher("fresh");
    let shown = perl.wait_for("ours-10", QUICK);
    assert!(shown.is_ok(), "{shown:?}\ndaemon log:\n{}", daemon.log());
    type_line(&perl, "echo stock-$((6+6))");
    perl.wait_for("stock-12", QUICK).unwrap();
    assert_eq!(daemon.list(As::Root).len(), 1, "the same session");

    let second = stock_launcher("fresh");
    second.wait_for("fresh$", QUICK).unwrap();
    assert_eq!(
        daemon.list(As::Root).len(),
        2,
        "no detached session: a new one"
    );
}

#[test]
fn a_new_session_lists_the_detached_ones_with_the_commands_that_attach_to_them() {
    let daemon = TestDaemon::start(free_port_range(5), "").unwrap();
    let user = TestUser::create().unwrap();
    let busy = daemon.new_session(As::User(&user), &SHELL);
    let idle = daemon.new_session(As::User(&user), &SHELL);
    let clients = [connect_client(&busy), connect_client(&idle)];
    for client in &clients {
        client.wait_for("mosh$", QUICK).unwrap();
    }
    type_line(&clients[0], "sleep 321");
    wait_for_state(&daemon, As::User(&user), "attached", QUICK);
    let deadline = Instant::now() + QUICK;
    while !text(&daemon.moshctl(As::User(&user), &["list", "--json"]).stdout)
        .contains("\"foreground\": \"sleep 321\"")
    {
        assert!(
            Instant::now() < deadline,
            "the foreground command never shows"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for client in &clients {
        kill_client(client);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let listed: serde_json::Value =
            serde_json::from_slice(&daemon.moshctl(As::User(&user), &["list", "--json"]).stdout)
                .unwrap();
        let sessions = listed.as_array().unwrap().clone();
        if sessions.iter().all(|s| s["state"] == "detached") {
            break sessions;
        }
        assert!(Instant::now() < deadline, "never both detached: {listed}");
        std::thread::sleep(Duration::from_millis(250));
    };
    let ids: Vec<String> = listed
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    for session in &listed {
        assert_eq!(session["user"], user.name(), "{session}");
        assert_eq!(session["attaches"], 1, "{session}");
        assert!(session["detached_since"].as_u64().is_some(), "{session}");
        assert!(session["last_contact"].as_u64().is_some(), "{session}");
        assert!(session["started"].as_u64().is_some(), "{session}");
        assert!(
            session["client"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"),
            "{session}"
        );
    }
    assert!(
        listed
            .iter()
            .any(|s| s["foreground"] == "sleep 321" && s["port"] == busy.port),
        "{listed:?}"
    );
    let table = text(&daemon.moshctl(As::User(&user), &["list"]).stdout);
    assert!(
        table.lines().next().unwrap().contains("STATE") && table.contains("detached-"),
        "{table}"
    );

    let verbose = daemon.mosh_server(As::User(&user), &["-v", "--", "/bin/true"]);
    let said = text(&verbose.stderr);
    for wanted in [
        "you have 2 detached sessions",
        &ids[0],
        &ids[1],
        "mosh-server attach",
        "moshctl kill",
    ] {
        assert!(said.contains(wanted), "{wanted:?} not in {said}");
    }

    let third = daemon.new_session(As::User(&user), &SHELL);
    let client = connect_client(&third);
    let screen = client.wait_for("mosh$", QUICK).unwrap();
    for wanted in [
        "you have 2 detached sessions",
        &ids[0],
        &ids[1],
        "sleep 321",
        "mosh --attach=",
        "moshctl kill",
    ] {
        assert!(screen.contains(wanted), "{wanted:?} not in\n{screen}");
    }
    let printed = screen
        .split("mosh-server attach ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_hexdigit()).next())
        .expect("the screen shows mosh-server attach ID")
        .to_owned();
    let output = daemon.attach(As::User(&user), &[&printed]);
    let again = attached(&daemon, &output);
    assert!([busy.port, idle.port].contains(&again.port));
    let back = connect_client(&again);
    back.wait_for("mosh$", QUICK).unwrap();
}

#[test]
fn a_session_re_adopted_after_a_daemon_restart_can_be_attached() {
    let (mut daemon, user, session) = daemon_with_a_session("");
    let first = connect_client(&session);
    first.wait_for("mosh$", QUICK).unwrap();
    type_line(&first, "echo before-$((3+4))");
    first.wait_for("before-7", QUICK).unwrap();
    daemon.restart(|| kill_client(&first)).unwrap();
    assert!(daemon.log().contains("re-adopted 1 running sessions"));
    wait_for_state(
        &daemon,
        As::User(&user),
        "detached",
        Duration::from_secs(30),
    );
    let again = attached(&daemon, &daemon.attach(As::User(&user), &[]));
    assert_eq!(again.pid, session.pid);
    let second = connect_client(&again);
    second.wait_for("before-7", QUICK).unwrap();
    type_line(&second, "echo after-$((4+4))");
    second.wait_for("after-8", QUICK).unwrap();
}

/// `who`'s lines for `user`, making the utmp file first if this host has
/// none (a container booted without systemd-update-utmp): libutempter's
/// helper only writes to an existing one.
fn who(user: &TestUser) -> Vec<String> {
    who_file_exists();
    let output = std::process::Command::new(mosh_e2e::require_program("who").unwrap())
        .output()
        .unwrap();
    text(&output.stdout)
        .lines()
        .filter(|line| line.split_whitespace().next() == Some(user.name()))
        .map(str::to_owned)
        .collect()
}

fn wait_for_who(user: &TestUser, done: impl Fn(&[String]) -> bool, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let lines = who(user);
        if done(&lines) {
            return;
        }
        if Instant::now() >= deadline {
            let dump = std::process::Command::new("utmpdump")
                .arg("/var/run/utmp")
                .output()
                .unwrap();
            panic!("who shows {lines:?}; utmp: {}", text(&dump.stdout));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn who_shows_the_session_with_its_client_then_detached_then_attached_then_gone() {
    let (daemon, user, session) = daemon_with_a_session("");
    let attached_host = format!("(127.0.0.1 via mosh [{}])", session.pid);
    let detached_host = format!("(mosh [{}])", session.pid);
    let first = connect_client(&session);
    first.wait_for("mosh$", QUICK).unwrap();
    let pts = std::fs::read_link(format!("/proc/{}/fd/0", first.command_pid().unwrap()));
    assert!(pts.is_ok());
    wait_for_who(
        &user,
        |lines| lines.len() == 1 && lines[0].contains(&attached_host) && lines[0].contains("pts/"),
        QUICK,
    );
    kill_client(&first);
    wait_for_who(
        &user,
        |lines| lines.len() == 1 && lines[0].contains(&detached_host),
        Duration::from_secs(30),
    );
    wait_for_state(&daemon, As::User(&user), "detached", QUICK);
    let again = attached(&daemon, &daemon.attach(As::User(&user), &[]));
    let second = connect_client(&again);
    second.wait_for("mosh$", QUICK).unwrap();
    wait_for_who(
        &user,
        |lines| lines.len() == 1 && lines[0].contains(&attached_host),
        QUICK,
    );
    let id = daemon.list(As::User(&user))[0].0.clone();
    let killed = daemon.moshctl(As::User(&user), &["kill", &id]);
    assert!(killed.status.success());
    wait_for_who(&user, |lines| lines.is_empty(), QUICK);
}

/// A write lock on the utmp file, as glibc takes it for every change: the
/// libutempter helper waits while it is held; closing the file releases
/// it.
struct UtmpLock {
    _file: std::fs::File,
}

impl UtmpLock {
    fn hold() -> Self {
        who_file_exists();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/var/run/utmp")
            .unwrap();
        let whole_file = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETLKW(&whole_file)).unwrap();
        Self { _file: file }
    }
}

#[test]
fn a_session_answers_while_the_utmp_file_is_locked_and_is_recorded_once_it_is_free() {
    // Held briefly: every process that records a terminal (tmux's panes
    // too) waits for it, without a timeout.
    let lock = UtmpLock::hold();
    let (_daemon, user, session) = daemon_with_a_session("");
    let mut peer = connected_peer(&session, &session.key);
    peer.transport_mut()
        .current_state_mut()
        .push_bytes(b"echo locked-$((6*7))\r");
    wait_for_screen(&mut peer, "locked-42");
    let recorded = utmp_records_of(&user);
    drop(lock);
    assert!(recorded.is_empty(), "recorded under the lock: {recorded:?}");
    let attached_host = format!("(127.0.0.1 via mosh [{}])", session.pid);
    wait_for_who(
        &user,
        |lines| lines.len() == 1 && lines[0].contains(&attached_host),
        QUICK,
    );
    drop(peer);
}

/// The live (`USER_PROCESS`) utmp records of `user`, read from the file
/// without taking its lock (`utmpdump` reads it as it is).
fn utmp_records_of(user: &TestUser) -> Vec<String> {
    let dump = std::process::Command::new(mosh_e2e::require_program("utmpdump").unwrap())
        .arg("/var/run/utmp")
        .output()
        .unwrap();
    text(&dump.stdout)
        .lines()
        .filter(|line| line.starts_with("[7]") && line.contains(&format!("[{:<8}]", user.name())))
        .map(str::to_owned)
        .collect()
}

/// Creates the utmp file as the system would, where nothing has yet.
fn who_file_exists() {
    let utmp = std::path::Path::new("/var/run/utmp");
    if !utmp.exists() {
        std::fs::write(utmp, b"").unwrap();
        let owned = std::process::Command::new("chown")
            .args(["root:utmp", "/var/run/utmp"])
            .status()
            .unwrap();
        assert!(owned.success());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(utmp, std::fs::Permissions::from_mode(0o664)).unwrap();
    }
}

/// The worker's resident memory (kB) and open descriptors, once the
/// daemon's connection of the last attach has had time to close.
fn rss_and_fds(pid: u32) -> (u64, usize) {
    std::thread::sleep(Duration::from_millis(500));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

/// Runs `peer` until the session's screen shows `text`.
fn wait_for_screen(peer: &mut UdpPeer<UserStream, HostLog>, text: &str) {
    peer.run_until(QUICK, text, |transport| {
        transport.latest_remote_state().contains(text).then_some(())
    })
    .unwrap();
}

/// A client that connects with `key` and waits until it has the prompt.
fn connected_peer(session: &Connect, key: &mosh_proto::Base64Key) -> UdpPeer<UserStream, HostLog> {
    let mut peer = client_peer(session, key);
    peer.transport_mut().current_state_mut().push_resize(80, 24);
    wait_for_screen(&mut peer, "mosh$");
    peer
}

#[test]
fn a_hundred_detach_attach_cycles_leave_the_worker_as_it_was_and_the_session_answering() {
    let (daemon, user, session) = daemon_with_a_session("attach_burst = 1000");
    drop(connected_peer(&session, &session.key));
    let id = daemon.list(As::User(&user))[0].0.clone();
    let mut baseline = None;
    let mut last = None;
    for cycle in 1..=100 {
        let again = attached(&daemon, &daemon.attach(As::User(&user), &["--force", &id]));
        assert_eq!(again.pid, session.pid);
        let peer = connected_peer(&session, &again.key);
        if cycle == 10 {
            baseline = Some(rss_and_fds(session.pid));
        }
        last = Some((peer, again));
    }
    let (rss, fds) = rss_and_fds(session.pid);
    let (base_rss, base_fds) = baseline.unwrap();
    eprintln!(
        "worker after 10 cycles: {base_rss} kB, {base_fds} fds; after 100: {rss} kB, {fds} fds"
    );
    assert!(fds <= base_fds, "descriptors leak: {base_fds} then {fds}");
    assert!(
        rss * 100 <= base_rss * 105 && rss * 100 >= base_rss * 95,
        "RSS went from {base_rss} kB to {rss} kB"
    );
    let (mut peer, _) = last.unwrap();
    peer.transport_mut()
        .current_state_mut()
        .push_bytes(b"echo alive-$((50+50))\r");
    wait_for_screen(&mut peer, "alive-100");
}

/// The `history` object `moshctl list --json` shows for session `id`.
fn listed_history(daemon: &TestDaemon, id: &str) -> serde_json::Value {
    let listed = daemon.moshctl(As::Root, &["list", "--json"]);
    let sessions: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let session = sessions
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("{id} not listed: {sessions}"));
    session["history"].clone()
}

#[test]
fn a_client_of_ours_that_attaches_first_gets_the_kept_history_and_moshctl_shows_its_size() {
    let (daemon, user, session) = daemon_with_a_session("scrollback = 300\n");
    let first = connect_client(&session);
    first.wait_for("mosh$", QUICK).unwrap();
    type_line(&first, "seq 1 2000; echo done-$((6*7))");
    first.wait_for("done-42", QUICK).unwrap();
    kill_client(&first);

    let id = text(&daemon.moshctl(As::Root, &["list", "--json"]).stdout);
    let id = serde_json::from_str::<serde_json::Value>(&id).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + QUICK;
    let held = loop {
        let held = listed_history(&daemon, &id);
        if held["lines"] == 300 || Instant::now() > deadline {
            break held;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(held["lines"], 300, "the limit's worth of lines: {held}");
    let bytes = held["bytes"].as_u64().unwrap();
    assert!(
        (300..=300 * 16).contains(&bytes),
        "300 short lines take a few bytes each: {held}"
    );

    let again = attached(&daemon, &daemon.attach(As::User(&user), &["--force"]));
    let ours = ours::client_in_tmux(again.addr(), &again.key, 80, 24, &[]).unwrap();
    ours.wait_for("done-42", QUICK).unwrap();
    let deadline = Instant::now() + QUICK;
    let (marker, numbers) = loop {
        let lines = ours.history_and_screen().unwrap();
        let marker = lines.iter().position(|l| l.contains("lines not kept]"));
        let numbers: Vec<u64> = lines.iter().filter_map(|l| l.parse().ok()).collect();
        if numbers.len() >= 300 || Instant::now() > deadline {
            break (marker, numbers);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(marker.is_some(), "the older lines are marked as not kept");
    assert_eq!(numbers.last(), Some(&2000));
    assert!(
        numbers.len() >= 300,
        "the kept history and the screen: {} numbers",
        numbers.len()
    );
    assert!(
        numbers.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "each line once, in order: {numbers:?}"
    );
}

/// The state `moshctl list --json` shows for the only session.
fn listed_state(daemon: &TestDaemon, who: As<'_>) -> String {
    let listed = text(&daemon.moshctl(who, &["list", "--json"]).stdout);
    let sessions: serde_json::Value = serde_json::from_str(&listed).unwrap();
    sessions[0]["state"].as_str().unwrap_or("none").to_owned()
}

#[test]
fn a_quiet_client_stays_attached_and_a_vanished_one_is_detached_once_silent_for_the_window() {
    let live = Duration::from_secs(mosh_daemon::control::LIVE_SECS);
    let (daemon, user, session) = daemon_with_a_session("");
    let client = connect_client(&session);
    wait_for_state(&daemon, As::User(&user), "attached", QUICK);
    // Only heartbeats cross now, for longer than the liveness window: the
    // worker reports when its client turns silent, not each heartbeat, and
    // the daemon must not take the lack of news for silence.
    let quiet_until = Instant::now() + live + Duration::from_secs(8);
    while Instant::now() < quiet_until {
        let state = listed_state(&daemon, As::User(&user));
        assert_eq!(state, "attached", "a quiet, live client shown {state}");
        std::thread::sleep(Duration::from_millis(500));
    }
    kill_client(&client);
    let killed = Instant::now();
    wait_for_state(
        &daemon,
        As::User(&user),
        "detached",
        live + Duration::from_secs(5),
    );
    assert!(
        killed.elapsed() + Duration::from_secs(4) >= live,
        "detached {:?} after the client vanished, before its window ran out",
        killed.elapsed()
    );
}
