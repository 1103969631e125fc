//! `mosh-daemon` as the hardened systemd service it ships as, under a real
//! systemd (a booted Debian container, see `mosh_e2e::container`): the
//! unit's exposure score, a user's session in its own transient unit
//! `mosh-session-ID.service`, the stock client on the host doing real work
//! through it, a daemon restart the session survives, `moshctl kill`
//! taking the unit away, a root process outside the session's unit turned
//! away from the handoff socket, a worker that never fetches its
//! descriptors being stopped in time, and the daemon's sandbox still
//! letting it drive nftables, iptables-legacy and ufw.
#![allow(
    clippy::print_stderr,
    reason = "a test's diagnostics, captured by the test runner"
)]

use std::process::Output;
use std::time::{Duration, Instant};

use mosh_e2e::container::Container;
use mosh_e2e::daemon::{Connect, free_port_range, shell_quote};
use mosh_e2e::our_program;
use mosh_e2e::stock;
use mosh_e2e::tmux::TmuxSession;

/// Generous bound for anything that should take a moment.
const QUICK: Duration = Duration::from_secs(20);

/// Highest `systemd-analyze security` exposure accepted for the daemon's
/// unit. systemd calls up to 4.9 "OK" and Debian's ssh.service scores 9.6
/// ("UNSAFE"); the shipped unit scores 2.2. The slack above that admits a
/// capability or address family a later feature needs (each weighs 0.1 to
/// 0.3), while dropping any of the big protections (ProtectSystem,
/// ProtectHome, the capability bounding set, the system call filter) goes
/// over it.
const MAX_EXPOSURE: f64 = 3.0;

/// Where our programs go in the container (stock mosh is in /usr/bin).
const BIN: &str = "/usr/local/bin";

/// A shell without rc files, with a prompt the test waits for.
const SHELL: &str = "PS1='mosh$ ' exec /bin/sh -i";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn step(started: Instant, what: &str) {
    eprintln!("[{:6.1}s] {what}", started.elapsed().as_secs_f64());
}

/// Runs `mosh-server new -- sh -c SHELL` as `user` inside.
fn new_session(container: &Container, user: &str) -> Output {
    let server = format!(
        "LANG=C.UTF-8 {BIN}/mosh-server new -- /bin/sh -c {}",
        shell_quote(SHELL)
    );
    container
        .run(&format!("su {user} -c {}", shell_quote(&server)))
        .expect("run mosh-server new")
}

/// Polls `script`'s output inside until `done` accepts it.
fn wait_inside(container: &Container, script: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + QUICK;
    loop {
        let output = container.run(script).expect("run inside");
        let stdout = text(&output.stdout);
        if done(&stdout) {
            return stdout;
        }
        assert!(
            Instant::now() < deadline,
            "`{script}` still prints {stdout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn type_line(client: &TmuxSession, line: &str) {
    client.send_text(line).unwrap();
    client.send_keys(&["Enter"]).unwrap();
}

/// A oneshot unit with the daemon unit's sandbox that runs `command`
/// instead of the daemon.
fn probe_unit(unit: &str, command: &str) -> String {
    let mut probe = String::new();
    for line in unit.lines() {
        let dropped = [
            "Type=",
            "ExecStart=",
            "ExecReload=",
            "NotifyAccess=",
            "WatchdogSec=",
            "Restart",
            "RuntimeDirectory",
        ];
        if !dropped.iter().any(|prefix| line.starts_with(prefix)) {
            probe.push_str(line);
            probe.push('\n');
        }
        if line == "[Service]" {
            probe.push_str(&format!("Type=oneshot\nExecStart={command}\n"));
        }
    }
    probe
}

/// The `ExecStart=` program of the unit text.
fn exec_start(unit: &str) -> &str {
    unit.lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .and_then(|command| command.split_whitespace().next())
        .expect("the unit has ExecStart=")
}

/// The shipped unit, as the tests install it.
const UNIT: &str = include_str!("../../systemd/mosh-daemon.service");

/// Installs our freshly built programs and the shipped unit (its
/// `ExecStart=` pointed at them) with `config`, and starts the service.
fn install_service(container: &Container, config: &str) {
    for name in [
        "mosh-daemon",
        "mosh-daemon-worker",
        "mosh-server",
        "moshctl",
    ] {
        let path = our_program(name).unwrap();
        container
            .install(&path, &format!("{BIN}/{name}"), 0o755)
            .unwrap();
    }
    container
        .write("/etc/systemd/system/mosh-daemon.service", UNIT)
        .unwrap();
    let daemon = format!("{BIN}/mosh-daemon");
    if exec_start(UNIT) != daemon {
        container
            .write(
                "/etc/systemd/system/mosh-daemon.service.d/test.conf",
                &format!("[Service]\nExecStart=\nExecStart={daemon}\n"),
            )
            .unwrap();
    }
    container
        .write("/etc/mosh-daemon/config.toml", config)
        .unwrap();
    container
        .run_ok("systemctl daemon-reload && systemctl start mosh-daemon.service")
        .unwrap_or_else(|e| {
            let log = container.run("journalctl -u mosh-daemon --no-pager");
            panic!("{e}\n{}", log.map(|o| text(&o.stdout)).unwrap_or_default())
        });
}

#[test]
fn hardened_service_runs_each_session_in_its_own_unit() {
    let started = Instant::now();
    let unit_text = UNIT;
    let ports = free_port_range(4);

    let container = Container::boot().unwrap();
    step(started, "container booted");
    install_service(
        &container,
        // The container shares the host's network: the daemon must leave
        // the host's firewall alone.
        &format!(
            "port_range = \"{}:{}\"\n[firewall]\nbackend = \"none\"\n",
            ports.0, ports.1
        ),
    );
    step(started, "mosh-daemon.service started");

    let security = container
        .run_ok("systemd-analyze security --no-pager mosh-daemon.service")
        .unwrap();
    let exposure: f64 = security
        .lines()
        .find_map(|line| line.strip_prefix("→ Overall exposure level for mosh-daemon.service: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    eprintln!("systemd-analyze security mosh-daemon.service: exposure {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} is above {MAX_EXPOSURE}:\n{security}"
    );

    // nft only reads here: the container shares the host's network, and so
    // its nftables ruleset.
    container
        .write(
            "/etc/systemd/system/mosh-sandbox-probe.service",
            &probe_unit(unit_text, "/usr/sbin/nft list tables"),
        )
        .unwrap();
    container
        .run_ok("systemctl daemon-reload && systemctl start mosh-sandbox-probe.service")
        .unwrap_or_else(|e| {
            let log = container.run("journalctl -u mosh-sandbox-probe --no-pager");
            panic!(
                "nft fails in the daemon's sandbox: {e}\n{}",
                log.map(|o| text(&o.stdout)).unwrap_or_default()
            )
        });
    step(started, "nft runs in the daemon's sandbox");

    container
        .run_ok("useradd -m -s /bin/sh alice")
        .expect("useradd");
    let output = new_session(&container, "alice");
    let session = Connect::parse(&output).unwrap_or_else(|| {
        panic!(
            "mosh-server new failed: {}\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    });
    assert!(
        (ports.0..=ports.1).contains(&session.port),
        "{}",
        session.port
    );
    step(started, "session started");

    // The worker is the main process of its own unit in mosh.slice, not a
    // process of the daemon's unit.
    let cgroup = container
        .run_ok(&format!("cat /proc/{}/cgroup", session.pid))
        .unwrap();
    let unit = cgroup
        .lines()
        .filter_map(|line| line.rsplit('/').next())
        .find(|name| name.starts_with("mosh-session-") && name.ends_with(".service"))
        .unwrap_or_else(|| panic!("the worker is in no session unit:\n{cgroup}"))
        .to_owned();
    assert!(cgroup.contains("/mosh.slice/"), "{cgroup}");
    let id = unit
        .strip_prefix("mosh-session-")
        .and_then(|rest| rest.strip_suffix(".service"))
        .unwrap()
        .to_owned();
    let show =
        format!("systemctl show -p MainPID -p ActiveState -p Description -p ExecStart {unit}");
    let properties = container.run_ok(&show).unwrap();
    eprintln!("{properties}");
    assert!(
        properties.contains(&format!("MainPID={}\n", session.pid)),
        "{properties}"
    );
    assert!(properties.contains("ActiveState=active"), "{properties}");
    assert!(
        properties.contains(&format!("mosh session {id} of alice")),
        "{properties}"
    );
    let key = session.key.printable();
    assert!(!properties.contains(&key), "the key is in the unit");
    let uid = container
        .run_ok(&format!(
            "awk '/^Uid:/ {{print $2}}' /proc/{}/status",
            session.pid
        ))
        .unwrap();
    let alice = container.run_ok("id -u alice").unwrap();
    assert_eq!(uid.trim(), alice.trim(), "the worker runs as alice");
    // None of the daemon's sandbox reaches the session: sudo and su work,
    // every capability can be had.
    let status = container
        .run_ok(&format!("cat /proc/{}/status", session.pid))
        .unwrap();
    assert!(status.contains("NoNewPrivs:\t0"), "{status}");
    let daemon_status = container
        .run_ok("cat /proc/$(systemctl show -p MainPID --value mosh-daemon)/status")
        .unwrap();
    let bounding = |status: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("CapBnd:\t"))
            .map(str::to_owned)
            .unwrap()
    };
    assert_ne!(bounding(&status), bounding(&daemon_status));
    assert!(daemon_status.contains("NoNewPrivs:\t1"), "{daemon_status}");

    let client = stock::client_in_tmux(session.addr(), &session.key, 80, 24)
        .expect("start stock mosh-client");
    client.wait_for("mosh$", QUICK).unwrap();
    type_line(&client, "echo answer-$((6 * 7))");
    client.wait_for("answer-42", QUICK).unwrap();
    step(started, "stock client works through the session unit");

    container
        .run_ok("systemctl restart mosh-daemon.service")
        .unwrap();
    wait_inside(&container, &format!("{BIN}/moshctl list"), |list| {
        list.contains(&id) && list.contains("alice")
    });
    let main_pid = container
        .run_ok(&format!("systemctl show -p MainPID --value {unit}"))
        .unwrap();
    assert_eq!(main_pid.trim(), session.pid.to_string());
    type_line(&client, "echo again-$((7 * 7))");
    client.wait_for("again-49", QUICK).unwrap();
    step(
        started,
        "session survived a daemon restart and was re-adopted",
    );

    let killed = container
        .run_ok(&format!("{BIN}/moshctl kill {id}"))
        .unwrap();
    assert!(killed.contains(&id), "{killed}");
    wait_inside(
        &container,
        "systemctl list-units --all --plain --no-legend 'mosh-session-*'",
        |units| !units.contains(&unit),
    );
    client.wait_for_exit(QUICK).unwrap();
    let list = container.run_ok(&format!("{BIN}/moshctl list")).unwrap();
    assert!(!list.contains(&id), "{list}");
    step(started, "moshctl kill ended the session and its unit");

    let journal = container
        .run_ok("journalctl --no-pager -u mosh-daemon -u 'mosh-session-*'")
        .unwrap();
    assert!(!journal.contains(&key), "the key is in the journal");

    // A worker that never comes for its descriptors: meanwhile a root
    // process outside the session's unit that connects to the handoff
    // socket gets nothing, and once the daemon gives up the unit is stopped
    // and the port freed.
    container
        .run_ok(&format!(
            "cp {BIN}/mosh-daemon-worker /root/impostor && \
             printf '#!/bin/sh\\nexec sleep 600\\n' > {BIN}/mosh-daemon-worker"
        ))
        .unwrap();
    let before = Instant::now();
    let (output, impostor) = std::thread::scope(|scope| {
        let session = scope.spawn(|| new_session(&container, "alice"));
        let handoff = wait_inside(&container, "ls /run/mosh-daemon/sessions", |names| {
            names.contains(".handoff")
        });
        let name = handoff
            .split_whitespace()
            .find(|name| name.ends_with(".handoff"))
            .unwrap()
            .to_owned();
        let id = name.trim_end_matches(".handoff");
        let impostor = container
            .run(&format!(
                "timeout 15 /root/impostor --handoff /run/mosh-daemon/sessions/{name} {id}"
            ))
            .unwrap();
        (session.join().unwrap(), impostor)
    });
    let waited = before.elapsed();
    assert!(!impostor.status.success(), "{}", text(&impostor.stdout));
    let complaint = text(&impostor.stderr);
    assert!(complaint.contains("handoff from"), "{complaint}");
    assert!(!output.status.success(), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("did not fetch its descriptors in time"),
        "{stderr}"
    );
    assert!(waited < QUICK, "gave up after {waited:?}");
    let journal = container
        .run_ok("journalctl --no-pager -u mosh-daemon")
        .unwrap();
    assert!(
        journal.contains("turned away a handoff connection"),
        "{journal}"
    );
    wait_inside(
        &container,
        "systemctl list-units --all --plain --no-legend 'mosh-session-*'; pgrep -x sleep || true",
        |rest| rest.trim().is_empty(),
    );
    let list = container.run_ok(&format!("{BIN}/moshctl list")).unwrap();
    assert!(list.contains("(no sessions)"), "{list}");
    step(
        started,
        "an impostor got nothing; a worker that never fetched its descriptors was stopped",
    );
}

/// The hardened service, in a container with a network of its own, drives
/// nftables (a drop policy), legacy iptables and an enabled ufw (legacy
/// first: ufw's chains would make the daemon choose the nf_tables
/// variant): each backend's rules are there for a session and gone once
/// the service stops, so the sandbox leaves the daemon what every firewall
/// tool needs.
#[test]
fn hardened_service_drives_each_firewall_backend() {
    let started = Instant::now();
    let container = Container::boot_with_private_network().unwrap();
    step(started, "container booted");
    let config = |backend: &str| {
        format!("port_range = \"60100:60103\"\n[firewall]\nbackend = \"{backend}\"\n")
    };
    install_service(&container, &config("none"));
    let cases: [(&str, &str, &str, &str); 3] = [
        (
            "nftables",
            "nft add table inet filter && \
             nft add chain inet filter input '{ type filter hook input priority 0; policy drop; }'",
            "nft list ruleset",
            "nft delete table inet filter",
        ),
        (
            "iptables",
            "iptables-legacy -P INPUT DROP",
            "iptables-legacy -S",
            "iptables-legacy -P INPUT ACCEPT",
        ),
        (
            "ufw",
            "ufw --force enable",
            "ufw show added",
            "ufw --force reset && ufw --force disable",
        ),
    ];
    for (backend, setup, listing, teardown) in cases {
        container.run_ok(setup).unwrap();
        // The tools above made their lock files; the service must cope
        // without them, as on a system where none ran since boot.
        container
            .run_ok("rm -f /run/ufw.lock /run/xtables.lock")
            .unwrap();
        let before = container.run_ok(listing).unwrap();
        container
            .write("/etc/mosh-daemon/config.toml", &config(backend))
            .unwrap();
        container
            .run_ok("systemctl restart mosh-daemon.service")
            .unwrap();
        let status = wait_inside(
            &container,
            &format!("{BIN}/moshctl firewall status --json"),
            |status| status.contains("\"state\": \"open\""),
        );
        let output = container
            .run(&format!("LANG=C.UTF-8 {BIN}/mosh-server new -- sleep 600"))
            .unwrap();
        let session = Connect::parse(&output).unwrap_or_else(|| {
            panic!(
                "{backend}: mosh-server new failed: {}\n{}",
                text(&output.stdout),
                text(&output.stderr)
            )
        });
        let rules = container.run_ok(listing).unwrap();
        let expected = match backend {
            "nftables" => format!("elements = {{ {} }}", session.port),
            "ufw" => "ufw allow 60100:60103/udp comment 'mosh-daemon'".into(),
            _ => "-A MOSH-DAEMON -p udp -m udp --dport 60100:60103 -j ACCEPT".into(),
        };
        assert!(
            rules.contains(&expected),
            "{backend}: {expected:?} is not in:\n{rules}\nstatus: {status}"
        );
        container
            .run_ok(&format!("{BIN}/moshctl kill --idle 0"))
            .unwrap();
        container
            .run_ok("systemctl stop mosh-daemon.service")
            .unwrap();
        assert_eq!(
            container.run_ok(listing).unwrap(),
            before,
            "{backend}: the rules after the service stopped"
        );
        container.run_ok(teardown).unwrap();
        step(started, &format!("{backend} rules come and go"));
    }
}
