//! The daemon's firewall backends, each in a pair of network namespaces
//! whose server side drops input by default: nftables opens exactly the
//! ports of live sessions; ufw, iptables (both variants) and firewalld open
//! the pool while the daemon runs; restarts and crashes never duplicate
//! rules, and a reload moves the range rule to a new pool; stopping
//! restores the ruleset as it was before the first start; nftables needs
//! no `nft` program while libnftables loads, and falls back to it when the
//! library does not; a missing backend is reported and sessions still
//! start. Probes tell a dropped
//! datagram (silence, or firewalld's reject) from one let through (an
//! authenticated answer from the session, or ICMP port unreachable where
//! nothing listens).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mosh_e2e::daemon::{As, Connect, TestDaemon, TestUser};
use mosh_e2e::netns::{
    Firewalld, NetPair, PortProbe, SERVER_IP, WithoutLibnftables, assert_daemon_objects_once,
    daemon_port_set, nft_ruleset,
};
use mosh_e2e::tmux::TmuxSession;
use mosh_e2e::{UTF8_LOCALE, require_program, stock};

/// The daemon's pool inside the server namespace (a fresh namespace, so
/// every port is free).
const POOL: (u16, u16) = (60100, 60103);

/// What each session runs: a line the stock client must show.
const SESSION: [&str; 3] = ["sh", "-c", "echo firewall-reached-$((6*7)); exec sleep 600"];
const SESSION_OUTPUT: &str = "firewall-reached-42";

const PATIENCE: Duration = Duration::from_secs(20);

fn require_tools(tools: &[&str]) {
    for tool in tools {
        require_program(tool).unwrap_or_else(|e| panic!("{e} (tests/run installs it)"));
    }
}

fn firewall_status(daemon: &TestDaemon) -> serde_json::Value {
    let output = daemon.moshctl(As::Root, &["firewall", "status", "--json"]);
    assert!(
        output.status.success(),
        "moshctl firewall status: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("moshctl firewall status --json")
}

/// Waits until `moshctl firewall status` satisfies `wanted`.
fn wait_status(
    daemon: &TestDaemon,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = firewall_status(daemon);
        if wanted(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "firewall never {what}: {status}\nlog:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn open_ports(status: &serde_json::Value) -> Vec<u64> {
    status["ports"]
        .as_array()
        .map(|ports| ports.iter().filter_map(|p| p.as_u64()).collect())
        .unwrap_or_default()
}

/// The stock client, in the client namespace, shows the session's output.
fn stock_client_reaches(pair: &NetPair, session: &Connect) {
    let client = stock::client_program().expect("stock mosh-client");
    let (client, ip, port, key) = (
        client.to_str().expect("UTF-8 path").to_owned(),
        SERVER_IP.to_string(),
        session.port.to_string(),
        session.key.printable(),
    );
    let tmux = TmuxSession::start(
        80,
        24,
        &["ip", "netns", "exec", &pair.client, &client, &ip, &port],
        &[
            ("MOSH_KEY", &key),
            ("LANG", UTF8_LOCALE),
            ("LC_ALL", UTF8_LOCALE),
        ],
    )
    .expect("stock client in tmux");
    tmux.wait_for(SESSION_OUTPUT, Duration::from_secs(20))
        .expect("the session's output on the stock client's screen");
}

fn nft_json(netns: &str) -> String {
    NetPair::run(netns, "nft", &["-j", "list", "ruleset"]).expect("nft list ruleset")
}

/// The ports in the daemon's own nftables set.
fn daemon_set(netns: &str) -> Vec<u64> {
    daemon_port_set(&nft_ruleset(netns))
}

/// The daemon's table, chain, rule and port sets each stand once in the
/// ruleset, as does its tagged rule in the drop-policy chain
/// ([`mosh_e2e::netns::DROP_POLICY`]).
fn assert_each_daemon_object_once(netns: &str) {
    assert_daemon_objects_once(&nft_ruleset(netns));
}

/// Restarts the daemon three times; after each start, waits until its
/// firewall status satisfies `reopened`, then runs `check`.
fn restart_three_times(
    daemon: &mut TestDaemon,
    reopened: impl Fn(&serde_json::Value) -> bool,
    check: impl Fn(),
) {
    for restart in 1..=3 {
        daemon.restart(|| {}).unwrap();
        wait_status(
            daemon,
            &format!("reopened after restart {restart}"),
            &reopened,
        );
        check();
    }
}

/// With libnftables loaded, no `nft` program is needed (none is on the
/// daemon's `PATH`): each session's port opens before it is printed and
/// closes when the session ends. Where the library cannot be loaded, the
/// daemon says so and runs `nft` for each change instead.
#[test]
fn nftables_needs_no_nft_program_and_falls_back_to_it() {
    require_tools(&["ip", "nft", "ldd", "unshare"]);
    let pair = NetPair::new().unwrap();
    NetPair::load_drop_policy(&pair.server).unwrap();
    let pristine = nft_json(&pair.server);
    let without_libnftables = WithoutLibnftables::new(&pair.server).unwrap();
    let wrapper = without_libnftables.wrapper();
    let no_nft = [("PATH", "/usr/bin:/bin")];
    let fallback_path = without_libnftables.path();
    let fallback = [("PATH", fallback_path.as_str())];
    for (how, wrapper, env) in [
        (
            "through libnftables",
            &["ip", "netns", "exec", &pair.server][..],
            &no_nft,
        ),
        ("through the nft program", &wrapper[..], &fallback),
    ] {
        let mut daemon = TestDaemon::start_wrapped(
            wrapper,
            POOL,
            "[firewall]\nbackend = \"nftables\"",
            &env[..],
        )
        .unwrap();
        wait_status(&daemon, "opened", |s| s["state"] == "open");
        let session = daemon.new_session(As::Root, &SESSION);
        assert_eq!(daemon_set(&pair.server), [u64::from(session.port)], "{how}");
        assert!(
            pair.session_answers(session.port, &session.key, PATIENCE),
            "{how}"
        );
        let killed = daemon.moshctl(As::Root, &["kill", "--idle", "0"]);
        assert!(killed.status.success());
        wait_status(&daemon, "closed the ended session's port", |s| {
            open_ports(s).is_empty()
        });
        assert_eq!(daemon_set(&pair.server), Vec::<u64>::new(), "{how}");
        stop(&mut daemon);
        assert_eq!(
            nft_json(&pair.server),
            pristine,
            "{how}: the ruleset after stop"
        );
        let log = daemon.log();
        let fell_back = log.contains("libnftables.so.1 could not be loaded")
            && log.contains("running `nft` for each change instead");
        assert_eq!(fell_back, env == &fallback, "{how}:\n{log}");
    }
}

/// A file under `packaging/` in this checkout.
fn packaged(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging")
        .join(path)
}

fn stop(daemon: &mut TestDaemon) {
    assert_eq!(
        daemon.stop_with("TERM"),
        Some(0),
        "daemon log:\n{}",
        daemon.log()
    );
}

#[test]
fn nftables_opens_exactly_the_ports_of_live_sessions() {
    require_tools(&["ip", "nft", "tmux", "mosh-client"]);
    let pair = NetPair::new().unwrap();
    NetPair::load_drop_policy(&pair.server).unwrap();
    assert_eq!(pair.probe_port(POOL.0).unwrap(), PortProbe::Silent);

    let mut daemon = TestDaemon::start_in_netns(
        &pair.server,
        POOL,
        "[firewall]\nbackend = \"nftables\"\ncheck_interval = 1",
        &[],
    )
    .unwrap();
    let status = wait_status(&daemon, "opened", |s| s["state"] == "open");
    assert_eq!(status["backend"], "nftables");
    assert_eq!(open_ports(&status), Vec::<u64>::new());
    for port in POOL.0..=POOL.1 {
        assert_eq!(
            pair.probe_port(port).unwrap(),
            PortProbe::Silent,
            "port {port} is open before any session"
        );
    }

    let session = daemon.new_session(As::Root, &SESSION);
    let port = session.port;
    assert_eq!(
        open_ports(&firewall_status(&daemon)),
        [u64::from(port)],
        "the port is open by the time mosh-server new prints it"
    );
    let status = daemon.moshctl(As::Root, &["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("firewall: nftables (open)"));
    assert!(pair.session_answers(port, &session.key, PATIENCE));
    for other in (POOL.0..=POOL.1).filter(|&p| p != port) {
        assert_eq!(
            pair.probe_port(other).unwrap(),
            PortProbe::Silent,
            "port {other} (no session) is open"
        );
    }

    // An administrator reloads the firewall: the daemon's rules are gone
    // until its next check puts them back.
    // (The daemon is paused meanwhile, to take the reloaded ruleset, whose
    // handles are new, as the one to restore at stop.)
    daemon.signal("STOP");
    NetPair::run(&pair.server, "nft", &["flush", "ruleset"]).unwrap();
    NetPair::load_drop_policy(&pair.server).unwrap();
    let before = nft_json(&pair.server);
    assert!(!before.contains("mosh"));
    daemon.signal("CONT");
    let deadline = Instant::now() + PATIENCE;
    while daemon_set(&pair.server) != [u64::from(port)] {
        assert!(
            Instant::now() < deadline,
            "the rules never came back:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        daemon
            .log()
            .contains("the rules are gone; putting them back")
    );

    // A session answers only its first client until another client has
    // sent more datagrams, so each check below that expects an answer
    // uses a session no client has talked to yet.
    let closed = daemon.moshctl(As::Root, &["firewall", "close"]);
    assert!(closed.status.success());
    assert!(String::from_utf8_lossy(&closed.stdout).contains("state:    closed"));
    assert!(!nft_json(&pair.server).contains("mosh_daemon"));
    let while_closed = daemon.new_session(As::Root, &SESSION);
    assert!(!pair.session_answers(while_closed.port, &while_closed.key, Duration::from_secs(2)));
    let user = TestUser::create().unwrap();
    let refused = daemon.moshctl(As::User(&user), &["firewall", "open"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("only root"));
    assert!(
        daemon
            .moshctl(As::Root, &["firewall", "open"])
            .status
            .success()
    );
    assert!(pair.session_answers(while_closed.port, &while_closed.key, PATIENCE));
    let live = [u64::from(port), u64::from(while_closed.port)];

    restart_three_times(&mut daemon, |s| open_ports(s) == live, || {});
    // A crash leaves the rules; the next start puts them in place once.
    assert_eq!(daemon.stop_with("KILL"), None);
    assert_eq!(daemon_set(&pair.server), live);
    daemon.start_again().unwrap();
    wait_status(&daemon, "reopened after a crash", |s| open_ports(s) == live);
    assert_each_daemon_object_once(&pair.server);
    let after_restarts = daemon.new_session(As::Root, &SESSION);
    assert!(pair.session_answers(after_restarts.port, &after_restarts.key, PATIENCE));

    stock_client_reaches(&pair, &session);
    let killed = daemon.moshctl(As::Root, &["kill", "--idle", "0"]);
    assert!(killed.status.success());
    wait_status(&daemon, "closed the ended session's port", |s| {
        open_ports(s).is_empty()
    });
    assert_eq!(pair.probe_port(port).unwrap(), PortProbe::Silent);

    stop(&mut daemon);
    assert_eq!(nft_json(&pair.server), before, "the ruleset after stop");
}

/// Three restarts with a live session leave every rule in place once, and
/// stopping gives back the ruleset exactly as it was before the daemon
/// first started (`nft -j list ruleset`, handles included).
#[test]
fn nftables_restarts_never_duplicate_and_stop_restores_the_ruleset() {
    require_tools(&["ip", "nft"]);
    let pair = NetPair::new().unwrap();
    NetPair::load_drop_policy(&pair.server).unwrap();
    let pristine = nft_json(&pair.server);

    let mut daemon = TestDaemon::start_in_netns(
        &pair.server,
        POOL,
        "[firewall]\nbackend = \"nftables\"",
        &[],
    )
    .unwrap();
    let session = daemon.new_session(As::Root, &SESSION);
    assert_ne!(nft_json(&pair.server), pristine);
    restart_three_times(
        &mut daemon,
        |s| open_ports(s) == [u64::from(session.port)],
        || assert_each_daemon_object_once(&pair.server),
    );
    assert_eq!(daemon_set(&pair.server), [u64::from(session.port)]);
    assert!(pair.session_answers(session.port, &session.key, PATIENCE));

    stop(&mut daemon);
    assert_eq!(nft_json(&pair.server), pristine, "the ruleset after stop");
    assert!(
        daemon.log().contains("firewall (nftables): rules removed"),
        "{}",
        daemon.log()
    );
}

/// The session's port and another pool port are reachable while the daemon
/// runs, and silent before it starts and after it stops.
fn range_backend_reaches(pair: &NetPair, daemon: &TestDaemon, backend: &str) -> Connect {
    let status = wait_status(daemon, "opened", |s| s["state"] == "open");
    assert_eq!(status["backend"], backend);
    assert_eq!(status["configured"], "auto");
    assert_eq!(status["range"], format!("{}:{}", POOL.0, POOL.1));
    let session = daemon.new_session(As::Root, &SESSION);
    assert!(pair.session_answers(session.port, &session.key, PATIENCE));
    let other = if session.port == POOL.1 {
        POOL.0
    } else {
        POOL.1
    };
    assert_eq!(pair.probe_port(other).unwrap(), PortProbe::Refused);
    stock_client_reaches(pair, &session);
    session
}

#[test]
fn ufw_opens_the_pool_while_the_daemon_runs() {
    require_tools(&["ip", "ufw", "iptables", "tmux", "mosh-client"]);
    let pair = NetPair::new().unwrap();
    let etc = NetPair::etc_dir(&pair.server).join("ufw");
    let copied = std::process::Command::new("cp")
        .args(["-a", "/etc/ufw"])
        .arg(&etc)
        .status()
        .unwrap();
    assert!(copied.success(), "copying /etc/ufw");
    NetPair::run(&pair.server, "ufw", &["--force", "enable"]).unwrap();
    assert!(
        NetPair::run(&pair.server, "ufw", &["status"])
            .unwrap()
            .contains("Status: active")
    );
    assert_eq!(pair.probe_port(POOL.0).unwrap(), PortProbe::Silent);
    let added = || NetPair::run(&pair.server, "ufw", &["show", "added"]).unwrap();
    let ours = |text: &str| text.matches("comment 'mosh-daemon'").count();
    let before = added();

    // The application profile the packages ship is one ufw reads.
    std::fs::copy(
        packaged("ufw/mosh-daemon"),
        etc.join("applications.d/mosh-daemon"),
    )
    .unwrap();
    let info = NetPair::run(&pair.server, "ufw", &["app", "info", "mosh-daemon"]).unwrap();
    assert!(info.contains("Profile: mosh-daemon"), "{info}");
    assert!(info.contains("60000:61000/udp"), "{info}");

    let mut daemon =
        TestDaemon::start_in_netns(&pair.server, POOL, "[firewall]\nbackend = \"auto\"", &[])
            .unwrap();
    range_backend_reaches(&pair, &daemon, "ufw");
    restart_three_times(&mut daemon, |s| s["state"] == "open", || {});
    let listed = added();
    assert_eq!(ours(&listed), 1, "{listed}");
    stop(&mut daemon);
    assert_eq!(added(), before);
    assert_eq!(pair.probe_port(POOL.1).unwrap(), PortProbe::Silent);
}

#[test]
fn iptables_nft_opens_the_pool_past_a_drop_policy() {
    iptables_opens_the_pool_past_a_drop_policy("iptables-nft", "iptables");
}

#[test]
fn iptables_legacy_opens_the_pool_past_a_drop_policy() {
    iptables_opens_the_pool_past_a_drop_policy("iptables-legacy", "iptables-legacy");
}

/// Sets a drop policy with `program` (one variant of iptables) and checks
/// that the daemon finds it and opens the pool in that variant.
fn iptables_opens_the_pool_past_a_drop_policy(program: &str, backend: &str) {
    require_tools(&[
        "ip",
        "iptables",
        "ip6tables",
        program,
        "tmux",
        "mosh-client",
    ]);
    let pair = NetPair::new().unwrap();
    for rule in [
        &["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"][..],
        &[
            "-A",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ],
        &["-P", "INPUT", "DROP"],
    ] {
        NetPair::run(&pair.server, program, rule).unwrap();
    }
    let rules = || NetPair::run(&pair.server, program, &["-S"]).unwrap();
    let before = rules();
    assert_eq!(pair.probe_port(POOL.0).unwrap(), PortProbe::Silent);

    let mut daemon =
        TestDaemon::start_in_netns(&pair.server, POOL, "[firewall]\nbackend = \"auto\"", &[])
            .unwrap();
    range_backend_reaches(&pair, &daemon, backend);
    restart_three_times(&mut daemon, |s| s["state"] == "open", || {});
    assert_eq!(daemon.stop_with("KILL"), None);
    assert!(
        rules().contains("-j MOSH-DAEMON"),
        "a crash leaves the rules"
    );
    daemon.start_again().unwrap();
    wait_status(&daemon, "reopened after a crash", |s| s["state"] == "open");
    let listed = rules();
    assert_eq!(listed.matches("-j MOSH-DAEMON").count(), 1, "{listed}");
    assert_eq!(listed.matches("-A MOSH-DAEMON").count(), 1, "{listed}");

    // A reload (SIGHUP) that widens the pool moves the rule to the new
    // range, still once.
    let wider = (POOL.0, POOL.1 + 4);
    daemon
        .write_config(&format!(
            "port_range = \"{}:{}\"\n[firewall]\nbackend = \"auto\"\n",
            wider.0, wider.1
        ))
        .unwrap();
    daemon.signal("HUP");
    wait_status(&daemon, "moved to the wider pool", |s| {
        s["state"] == "open" && s["range"] == format!("{}:{}", wider.0, wider.1)
    });
    let listed = rules();
    assert_eq!(listed.matches("-A MOSH-DAEMON").count(), 1, "{listed}");
    assert!(
        listed.contains(&format!("--dport {}:{} -j ACCEPT", wider.0, wider.1)),
        "{listed}"
    );
    assert_eq!(pair.probe_port(wider.1).unwrap(), PortProbe::Refused);

    stop(&mut daemon);
    assert_eq!(rules(), before);
    assert_eq!(pair.probe_port(POOL.1).unwrap(), PortProbe::Silent);
    assert_eq!(pair.probe_port(wider.1).unwrap(), PortProbe::Silent);
}

#[test]
fn firewalld_opens_the_pool_in_the_default_zone() {
    require_tools(&[
        "ip",
        "unshare",
        "nsenter",
        "dbus-daemon",
        "firewalld",
        "firewall-cmd",
        "tmux",
        "mosh-client",
    ]);
    let pair = NetPair::new().unwrap();
    let firewalld =
        Firewalld::start(&pair.server, &[&packaged("firewalld/mosh-daemon.xml")]).unwrap();
    let ports = || {
        let output = firewalld
            .command("firewall-cmd", &["--list-ports"])
            .unwrap();
        assert!(output.status.success(), "firewall-cmd --list-ports");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(ports(), "");
    assert_eq!(pair.probe_port(POOL.0).unwrap(), PortProbe::Rejected);
    // The service file the packages ship is one firewalld reads.
    let service = firewalld
        .command("firewall-cmd", &["--info-service=mosh-daemon"])
        .unwrap();
    let service = String::from_utf8_lossy(&service.stdout);
    assert!(service.contains("ports: 60000-61000/udp"), "{service}");

    let wrapper = firewalld.wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut daemon =
        TestDaemon::start_wrapped(&wrapper, POOL, "[firewall]\nbackend = \"auto\"", &[]).unwrap();
    range_backend_reaches(&pair, &daemon, "firewalld");
    restart_three_times(&mut daemon, |s| s["state"] == "open", || {});
    assert_eq!(ports(), format!("{}-{}/udp", POOL.0, POOL.1));
    stop(&mut daemon);
    assert_eq!(ports(), "");
    assert_eq!(pair.probe_port(POOL.1).unwrap(), PortProbe::Rejected);
}

#[test]
fn a_missing_backend_is_reported_and_sessions_still_start() {
    require_tools(&["ip", "nft", "ldd", "unshare"]);
    let pair = NetPair::new().unwrap();
    // Neither libnftables nor the nft program for nftables.
    let without_libnftables = WithoutLibnftables::new(&pair.server).unwrap();
    let in_netns = ["ip", "netns", "exec", &pair.server];
    for (backend, wrapper, env, error) in [
        (
            "nftables",
            without_libnftables.wrapper(),
            Some("/usr/bin:/bin"),
            "`nft -j list ruleset`: nft is not installed",
        ),
        (
            "firewalld",
            in_netns.to_vec(),
            None,
            "`firewall-cmd --state`: firewalld is not running",
        ),
    ] {
        let config = format!("[firewall]\nbackend = \"{backend}\"");
        let env: Vec<(&str, &str)> = env.map(|path| ("PATH", path)).into_iter().collect();
        let daemon = TestDaemon::start_wrapped(&wrapper, POOL, &config, &env).unwrap();
        let status = wait_status(&daemon, "reported its error", |s| s["state"] == "error");
        assert_eq!(status["backend"], backend);
        let message = status["error"].as_str().unwrap_or_default();
        assert!(message.contains(error), "{backend}: {message}");
        let text = daemon.moshctl(As::Root, &["firewall", "status"]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("state:    error"), "{text}");
        assert!(text.contains(error), "{text}");
        assert!(daemon.log().contains(error), "{}", daemon.log());
        let session = daemon.new_session(As::Root, &SESSION);
        assert!((POOL.0..=POOL.1).contains(&session.port));
    }
}
