//! The `mosh-daemon` service itself, run in the foreground as root:
//! systemd notifications, configuration errors, refusals, a hostile control
//! socket, the standalone fallback of `mosh-server new`, and the systemd
//! unit.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use mosh_e2e::daemon::{As, Connect, TestDaemon, TestUser, free_port_range};
use mosh_e2e::{UTF8_LOCALE, our_program, process, require_program};

const QUICK: Duration = Duration::from_secs(15);

/// A command that keeps a session open without a client.
const IDLE: [&str; 2] = ["/bin/sleep", "60"];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn notifies_ready_status_and_stopping() {
    let mut daemon = TestDaemon::start(free_port_range(5), "").unwrap();
    assert!(
        daemon
            .wait_notification("STATUS=0 sessions", QUICK)
            .unwrap()
    );
    let user = TestUser::create().unwrap();
    daemon.new_session(As::User(&user), &IDLE);
    assert!(daemon.wait_notification("STATUS=1 session", QUICK).unwrap());
    daemon.moshctl(As::Root, &["kill", "--idle", "0"]);
    assert!(
        daemon
            .wait_notification("STATUS=0 sessions", QUICK)
            .unwrap()
    );
    assert_eq!(daemon.stop_with("TERM"), Some(0));
    assert!(daemon.wait_notification("STOPPING=1", QUICK).unwrap());
}

#[test]
fn bad_configuration_exits_78_naming_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("mosh-e2e-badconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (config, expected) in [
        (
            "max_sessions = 3\nport_rnage = \"1:2\"\n",
            ":2: key `port_rnage`",
        ),
        ("port_range = \"70000:1\"\n", ":1: key `port_range`"),
        (
            "\n\nmax_sessions_per_user = \"many\"\n",
            ":3: key `max_sessions_per_user`",
        ),
    ] {
        let path = dir.join("config.toml");
        std::fs::write(&path, config).unwrap();
        let output = Command::new(our_program("mosh-daemon").unwrap())
            .arg("--config")
            .arg(&path)
            .arg("--runtime-dir")
            .arg(dir.join("run"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(78), "{config:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(&format!("{}{expected}", path.display())),
            "{config:?}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refusals_are_one_clear_line_and_exit_1() {
    let allowed = TestUser::create().unwrap();
    let stranger = TestUser::create().unwrap();
    let daemon = TestDaemon::start(
        free_port_range(5),
        &format!(
            "allowed_users = [\"{}\"]\nmax_sessions_per_user = 1",
            allowed.name()
        ),
    )
    .unwrap();
    let refused = daemon.mosh_server(As::User(&stranger), &["--", "/bin/true"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr),
        format!(
            "mosh-server: user {} is not allowed to start sessions here\n",
            stranger.name()
        )
    );
    assert!(!text(&refused.stdout).contains("MOSH CONNECT"));

    daemon.new_session(As::User(&allowed), &IDLE);
    let refused = daemon.mosh_server(As::User(&allowed), &["--", "/bin/true"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr),
        format!(
            "mosh-server: too many sessions for user {} (limit 1)\n",
            allowed.name()
        )
    );
}

#[test]
fn pool_exhaustion_is_a_clear_error_and_the_daemon_stays_responsive() {
    let ports = free_port_range(5);
    let daemon = TestDaemon::start(ports, "").unwrap();
    let user = TestUser::create().unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(daemon.new_session(As::User(&user), &IDLE).port);
    }
    seen.sort_unstable();
    assert_eq!(seen, (ports.0..=ports.1).collect::<Vec<_>>());
    let refused = daemon.mosh_server(As::User(&user), &["--", "/bin/true"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr),
        format!("mosh-server: no free UDP port in {}:{}\n", ports.0, ports.1)
    );
    let status = daemon.moshctl(As::Root, &["status"]);
    assert!(status.status.success());
    assert!(text(&status.stdout).contains("5 of 5 in use"));
}

#[test]
fn a_port_in_use_elsewhere_is_skipped() {
    let ports = free_port_range(3);
    let daemon = TestDaemon::start(ports, "").unwrap();
    let outsider = std::net::UdpSocket::bind(("0.0.0.0", ports.0)).unwrap();
    let user = TestUser::create().unwrap();
    let session = daemon.new_session(As::User(&user), &IDLE);
    assert_eq!(session.port, ports.0 + 1);
    drop(outsider);
}

/// Sends `bytes` on a fresh control connection and returns the answer.
fn exchange(daemon: &TestDaemon, bytes: &[u8]) -> String {
    let mut stream = UnixStream::connect(daemon.socket()).unwrap();
    stream.set_read_timeout(Some(QUICK)).unwrap();
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    text(&answer)
}

#[test]
fn the_control_socket_survives_garbage() {
    let daemon = TestDaemon::start(free_port_range(5), "").unwrap();
    let user = TestUser::create().unwrap();
    let session = daemon.new_session(As::User(&user), &IDLE);

    let garbage = exchange(&daemon, b"\x00\xffnot json at all\n");
    assert!(garbage.contains("\"response\":\"error\""), "{garbage}");
    let wrong = exchange(&daemon, b"{\"request\":\"kill\",\"ids\":42}\n");
    assert!(wrong.contains("bad request"), "{wrong}");
    let smuggled = exchange(&daemon, b"{\"request\":\"list\",\"uid\":0}\n");
    assert!(smuggled.contains("\"response\":\"error\""), "{smuggled}");
    let unknown = exchange(&daemon, b"{\"request\":\"format_disk\"}\n");
    assert!(unknown.contains("\"response\":\"error\""), "{unknown}");

    let huge = vec![b'x'; 10 << 20];
    let long = exchange(&daemon, &huge);
    assert!(long.is_empty() || long.contains("longer than"), "{long}");

    for _ in 0..20 {
        let mut stream = UnixStream::connect(daemon.socket()).unwrap();
        let _ = stream.write_all(b"{\"request\":\"li");
    }
    let idle = UnixStream::connect(daemon.socket()).unwrap();

    let listed = daemon.list(As::Root);
    assert_eq!(listed.len(), 1);
    assert!(process::is_running(session.pid, "mosh-server"));
    let another = daemon.new_session(As::User(&user), &IDLE);
    assert_ne!(another.port, session.port);
    drop(idle);
}

/// Runs `mosh-server new ARGS... -- /bin/true` with no daemon listening.
/// Output goes to files: a verbose detached server keeps its stdio.
fn standalone(args: &[&str]) -> (Option<Connect>, String) {
    let dir = std::env::temp_dir().join(format!(
        "mosh-e2e-standalone-{}-{}",
        std::process::id(),
        args.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let stdout = std::fs::File::create(dir.join("out")).unwrap();
    let stderr = std::fs::File::create(dir.join("err")).unwrap();
    let status = Command::new(our_program("mosh-server").unwrap())
        .arg("new")
        .args(args)
        .args(["-p", "0", "--", "/bin/true"])
        .env(
            "MOSH_DAEMON_SOCKET",
            "/nonexistent/mosh-daemon/control.sock",
        )
        .env("LANG", UTF8_LOCALE)
        .env("LC_ALL", UTF8_LOCALE)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .unwrap();
    let output = std::process::Output {
        status,
        stdout: std::fs::read(dir.join("out")).unwrap(),
        stderr: std::fs::read(dir.join("err")).unwrap(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{}", text(&output.stderr));
    (Connect::parse(&output), text(&output.stderr))
}

#[test]
fn without_a_daemon_mosh_server_runs_standalone() {
    let (connect, stderr) = standalone(&["-v"]);
    let connect = connect.expect("a connect line and a detached pid");
    assert!(
        stderr.contains("running standalone"),
        "-v says why: {stderr}"
    );
    assert!(process::terminate(
        connect.pid,
        "mosh-server",
        Duration::from_secs(2)
    ));
    let (connect, stderr) = standalone(&[]);
    let connect = connect.expect("a connect line and a detached pid");
    assert!(!stderr.contains("standalone"), "{stderr}");
    assert!(process::terminate(
        connect.pid,
        "mosh-server",
        Duration::from_secs(2)
    ));
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let analyze = require_program("systemd-analyze").unwrap();
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/mosh-daemon.service"),
    )
    .unwrap();
    for line in [
        "Type=notify",
        "KillMode=process",
        "RuntimeDirectory=mosh-daemon",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
    let dir = std::env::temp_dir().join(format!("mosh-e2e-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let daemon = our_program("mosh-daemon").unwrap();
    let local = unit.replace("/usr/sbin/mosh-daemon", &daemon.to_string_lossy());
    let path = dir.join("mosh-daemon.service");
    std::fs::write(&path, local).unwrap();
    // The unit's Documentation= names man pages that exist once the package
    // is installed, not here; packaging/test verifies them in an installed root.
    let output = Command::new(analyze)
        .arg("verify")
        .arg("--man=no")
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let complaints: Vec<String> = text(&output.stderr)
        .lines()
        .chain(text(&output.stdout).lines())
        .filter(|line| line.contains("mosh-daemon.service"))
        .map(str::to_owned)
        .collect();
    assert!(
        output.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {}\n{complaints:#?}",
        output.status
    );
}

#[test]
fn the_watchdog_is_fed_when_systemd_asks() {
    let daemon =
        TestDaemon::start_with_env(free_port_range(2), "", &[("WATCHDOG_USEC", "300000")]).unwrap();
    for _ in 0..3 {
        assert!(daemon.wait_notification("WATCHDOG=1", QUICK).unwrap());
    }
}

#[test]
fn sighup_reloads_the_configuration_and_keeps_it_when_the_new_one_is_bad() {
    let first = free_port_range(3);
    let daemon = TestDaemon::start(first, "").unwrap();
    let user = TestUser::create().unwrap();
    assert_eq!(daemon.new_session(As::User(&user), &IDLE).port, first.0);

    let second = free_port_range(3);
    daemon
        .write_config(&format!(
            "port_range = \"{}:{}\"\n[firewall]\nbackend = \"none\"\n",
            second.0, second.1
        ))
        .unwrap();
    daemon.signal("HUP");
    assert!(daemon.wait_notification("RELOADING=1", QUICK).unwrap());
    assert!(daemon.wait_notification("READY=1", QUICK).unwrap());
    assert_eq!(daemon.new_session(As::User(&user), &IDLE).port, second.0);

    daemon.write_config("port_range = \"nonsense\"\n").unwrap();
    daemon.signal("HUP");
    assert!(daemon.wait_notification("READY=1", QUICK).unwrap());
    assert!(daemon.log().contains("keeping the old configuration"));
    assert!(daemon.log().contains("key `port_range`"));
    assert_eq!(
        daemon.new_session(As::User(&user), &IDLE).port,
        second.0 + 1
    );
    assert_eq!(daemon.list(As::Root).len(), 3);
}
