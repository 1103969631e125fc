//! Killed and stopped processes under load: sessions of a `mosh-daemon`
//! driven by the load generator ([`mosh_e2e::loadgen`]), each typing and
//! checking its echo, while the daemon is SIGKILLed (the workers keep
//! every session; a new daemon adopts them, with its nftables rules in
//! place once), one worker is SIGKILLed (its port, rule and listing go at
//! once, the others are untouched) and one worker is SIGSTOPped (the
//! daemon still answers, and `moshctl kill` ends it with SIGKILL after its
//! grace period).
#![allow(
    clippy::print_stderr,
    reason = "a test's measurements, captured by the test runner"
)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mosh_e2e::daemon::{As, Connect, TestDaemon, TestUser, free_port_range};
use mosh_e2e::loadgen::{Behaviour, LoadGen, Options, SessionId, SessionSpec, summary};
use mosh_e2e::netns::{
    NetPair, SERVER_IP, assert_daemon_objects_once, daemon_port_set, nft_ruleset,
};
use mosh_e2e::{process, require_program};

/// Longest any awaited change may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);
fn typing() -> Behaviour {
    Behaviour::Typing {
        interval: Duration::from_millis(100),
    }
}

fn require_tools(tools: &[&str]) {
    for tool in tools {
        require_program(tool).unwrap_or_else(|e| panic!("{e} (tests/run installs it)"));
    }
}

/// A load generator (in network namespace `netns`, if given) typing in
/// every session, reached at `ip`.
fn drive(sessions: &[Connect], ip: [u8; 4], netns: Option<&str>) -> (LoadGen, Vec<SessionId>) {
    let loadgen = LoadGen::start(Options {
        netns: netns.map(|name| PathBuf::from(format!("/run/netns/{name}"))),
        sessions_per_socket: 8,
        ..Options::default()
    })
    .unwrap();
    let ids = sessions
        .iter()
        .map(|session| {
            loadgen
                .add(SessionSpec {
                    server: SocketAddr::from((ip, session.port)),
                    key: session.key.clone(),
                    behaviour: typing(),
                })
                .unwrap()
        })
        .collect();
    (loadgen, ids)
}

fn lines_done(loadgen: &LoadGen) -> Vec<u64> {
    let statuses = loadgen.statuses().unwrap();
    statuses.iter().map(|status| status.lines_done).collect()
}

/// Waits until each session of `ids` has echoed `lines` more complete
/// lines than it had in `since`, with no key lost or garbled.
fn wait_lines(loadgen: &LoadGen, ids: &[SessionId], since: &[u64], lines: u64, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let statuses = loadgen.statuses().unwrap();
        for &id in ids {
            let status = &statuses[id.0];
            assert_eq!(
                (status.lost, status.garbled_lines),
                (0, 0),
                "{what}: session {id:?} lost keys: {status:?}"
            );
        }
        if ids
            .iter()
            .all(|id| statuses[id.0].lines_done >= since[id.0] + lines)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not every session echoed {lines} more lines in {PATIENCE:?}: {}",
            summary(&loadgen.totals().unwrap())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

/// The elements of the daemon's port set, as listed, duplicates kept.
fn nft_ports(netns: &str) -> Vec<u64> {
    daemon_port_set(&nft_ruleset(netns))
}

/// The daemon's table, chain, rule and sets, and its tagged rule in the
/// drop-policy chain, each stand once in the ruleset; both port sets hold
/// exactly `ports`.
fn assert_rules_once(netns: &str, ports: &BTreeSet<u64>) {
    let objects = nft_ruleset(netns);
    assert_daemon_objects_once(&objects);
    let sets: Vec<Vec<u64>> = objects
        .iter()
        .filter_map(|object| object.get("set"))
        .filter(|set| set["name"] == "ports" || set["name"] == "mosh_daemon_ports")
        .map(|set| {
            let elements = set["elem"].as_array().cloned().unwrap_or_default();
            elements.iter().filter_map(|p| p.as_u64()).collect()
        })
        .collect();
    for set in sets {
        assert_eq!(set.len(), ports.len(), "a port listed twice: {set:?}");
        assert_eq!(&set.into_iter().collect::<BTreeSet<_>>(), ports);
    }
}

fn listed_ids(daemon: &TestDaemon) -> BTreeSet<String> {
    daemon
        .list(As::Root)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

fn ports_in_use(daemon: &TestDaemon) -> u64 {
    let output = daemon.moshctl(As::Root, &["status", "--json"]);
    assert!(output.status.success());
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    status["ports_used"].as_u64().unwrap()
}

#[test]
fn sigkill_of_the_daemon_keeps_fifty_typing_sessions_and_a_new_daemon_adopts_them_once() {
    require_tools(&["ip", "nft"]);
    const SESSIONS: usize = 50;
    let pair = NetPair::new().unwrap();
    NetPair::load_drop_policy(&pair.server).unwrap();
    let mut daemon = TestDaemon::start_in_netns(
        &pair.server,
        (60100, 60199),
        "max_sessions_per_user = 100\n[firewall]\nbackend = \"nftables\"",
        &[],
    )
    .unwrap();
    let user = TestUser::create().unwrap();
    let sessions = daemon.new_sessions(As::User(&user), &["/bin/sh"], SESSIONS);
    let ports: BTreeSet<u64> = sessions.iter().map(|s| u64::from(s.port)).collect();
    assert_eq!(ports.len(), SESSIONS);
    let (loadgen, ids) = drive(&sessions, SERVER_IP.octets(), Some(&pair.client));
    wait_lines(&loadgen, &ids, &[0; SESSIONS], 1, "through the firewall");
    let before = listed_ids(&daemon);
    assert_eq!(before.len(), SESSIONS);

    assert_eq!(daemon.stop_with("KILL"), None, "the daemon died of SIGKILL");
    let killed = lines_done(&loadgen);
    wait_lines(&loadgen, &ids, &killed, 2, "without a daemon");
    for session in &sessions {
        assert!(process::is_running(session.pid, "mosh-server"));
    }

    daemon.start_again().unwrap();
    assert_eq!(listed_ids(&daemon), before, "the new daemon lists them all");
    assert!(
        daemon
            .log()
            .contains(&format!("re-adopted {SESSIONS} running sessions")),
        "{}",
        daemon.log()
    );
    let deadline = Instant::now() + PATIENCE;
    while nft_ports(&pair.server).into_iter().collect::<BTreeSet<_>>() != ports {
        assert!(Instant::now() < deadline, "the rules never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_rules_once(&pair.server, &ports);
    let adopted = lines_done(&loadgen);
    wait_lines(
        &loadgen,
        &ids,
        &adopted,
        1,
        "after the new daemon adopted them",
    );
    let totals = loadgen.totals().unwrap();
    assert_eq!(totals.typed, totals.echoed + totals.pending, "{totals:?}");
    eprintln!(
        "{SESSIONS} sessions through a daemon SIGKILL and restart: {}",
        summary(&totals)
    );
}

#[test]
fn sigkill_of_one_worker_frees_its_port_rule_and_listing_and_leaves_the_others_typing() {
    require_tools(&["ip", "nft"]);
    const SESSIONS: usize = 10;
    let pool = (60100, 60100 + SESSIONS as u16 - 1);
    let pair = NetPair::new().unwrap();
    NetPair::load_drop_policy(&pair.server).unwrap();
    let daemon = TestDaemon::start_in_netns(
        &pair.server,
        pool,
        "[firewall]\nbackend = \"nftables\"",
        &[],
    )
    .unwrap();
    let user = TestUser::create().unwrap();
    let sessions = daemon.new_sessions(As::User(&user), &["/bin/sh"], SESSIONS);
    let (loadgen, ids) = drive(&sessions, SERVER_IP.octets(), Some(&pair.client));
    wait_lines(&loadgen, &ids, &[0; SESSIONS], 1, "before the kill");
    let victim = 3;
    let victim_port = u64::from(sessions[victim].port);
    let victim_id = daemon
        .list(As::Root)
        .into_iter()
        .map(|(id, _)| id)
        .find(|id| {
            let listed = daemon.moshctl(As::Root, &["list", "--json"]);
            let sessions: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
            sessions
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["id"] == id.as_str() && s["port"].as_u64() == Some(victim_port))
        })
        .expect("the victim is listed");
    let before = lines_done(&loadgen);

    let killed = Instant::now();
    signal(sessions[victim].pid, nix::sys::signal::Signal::SIGKILL);
    let (mut unlisted, mut unruled, mut freed) = (None, None, None);
    while unlisted.is_none() || unruled.is_none() || freed.is_none() {
        assert!(
            killed.elapsed() < PATIENCE,
            "the killed worker's session lingers: listed {unlisted:?}, rule {unruled:?}, port {freed:?}\n{}",
            daemon.log()
        );
        if unlisted.is_none() && !listed_ids(&daemon).contains(&victim_id) {
            unlisted = Some(killed.elapsed());
        }
        if unruled.is_none() && !nft_ports(&pair.server).contains(&victim_port) {
            unruled = Some(killed.elapsed());
        }
        if freed.is_none() && ports_in_use(&daemon) == SESSIONS as u64 - 1 {
            freed = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "after SIGKILL of a worker: gone from moshctl list in {unlisted:?}, its port free in {freed:?}, \
         its nftables element gone in {unruled:?}"
    );
    loadgen.vanish(ids[victim]).unwrap();
    let again = daemon.new_session(As::User(&user), &["/bin/sh"]);
    assert_eq!(
        u64::from(again.port),
        victim_port,
        "the only free port is the killed session's"
    );
    let others: Vec<SessionId> = ids.iter().copied().filter(|id| id.0 != victim).collect();
    wait_lines(&loadgen, &others, &before, 2, "the other sessions");
}

#[test]
fn a_stopped_worker_leaves_the_daemon_responsive_and_moshctl_kill_ends_it_with_sigkill() {
    const SESSIONS: usize = 3;
    let daemon = TestDaemon::start(free_port_range(SESSIONS as u16 + 2), "").unwrap();
    let user = TestUser::create().unwrap();
    let sessions = daemon.new_sessions(As::User(&user), &["/bin/sh"], SESSIONS);
    let (loadgen, ids) = drive(&sessions, [127, 0, 0, 1], None);
    wait_lines(&loadgen, &ids, &[0; SESSIONS], 1, "before the stop");
    let victim = &sessions[1];
    let victim_id = {
        let listed = daemon.moshctl(As::Root, &["list", "--json"]);
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        let found = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["port"].as_u64() == Some(u64::from(victim.port)));
        found.unwrap()["id"].as_str().unwrap().to_owned()
    };
    let before = lines_done(&loadgen);
    signal(victim.pid, nix::sys::signal::Signal::SIGSTOP);

    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let asked = Instant::now();
        let status = daemon.moshctl(As::Root, &["status"]);
        slowest = slowest.max(asked.elapsed());
        assert!(status.status.success());
        assert!(
            String::from_utf8_lossy(&status.stdout).contains(&format!("sessions: {SESSIONS}")),
            "{}",
            String::from_utf8_lossy(&status.stdout)
        );
    }
    eprintln!("moshctl status with a stopped worker: slowest of 5 in {slowest:?}");
    assert!(listed_ids(&daemon).contains(&victim_id));

    let asked = Instant::now();
    let killed = daemon.moshctl(As::User(&user), &["kill", &victim_id]);
    assert!(
        killed.status.success(),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    assert!(
        process::wait_for_exit(victim.pid, "mosh-server", PATIENCE),
        "the stopped worker outlived moshctl kill; log:\n{}",
        daemon.log()
    );
    eprintln!(
        "moshctl kill of a stopped worker: gone {:?} after the request",
        asked.elapsed()
    );
    assert!(
        daemon.log().contains("after SIGTERM; sending SIGKILL"),
        "{}",
        daemon.log()
    );
    let deadline = Instant::now() + PATIENCE;
    while listed_ids(&daemon).contains(&victim_id) {
        assert!(
            Instant::now() < deadline,
            "the killed session is still listed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    loadgen.vanish(ids[1]).unwrap();
    let others = [ids[0], ids[2]];
    wait_lines(&loadgen, &others, &before, 2, "the other sessions");
}
