//! The load generator against real servers: our standalone `mosh-server`
//! (typing, quiet, vanished, roaming and a killed server noticed), stock
//! mosh 1.4's `mosh-server` (it speaks the real protocol), and sessions
//! behind the impairment proxy (loss, delay, jitter, duplication).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use mosh_e2e::impair::{Impairment, ImpairmentProxy};
use mosh_e2e::loadgen::{Behaviour, LoadGen, Options, SessionId, SessionSpec};
use mosh_e2e::process;
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_proto::{Extension, ExtensionSet};

/// A shell without rc files and a prompt without `#`.
const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='mosh$ ' exec /bin/sh -i"];

const PATIENCE: Duration = Duration::from_secs(60);

fn typing(every_ms: u64) -> Behaviour {
    Behaviour::Typing {
        interval: Duration::from_millis(every_ms),
    }
}

fn servers(implementation: Implementation, count: usize) -> Vec<MoshServer> {
    (0..count)
        .map(|_| MoshServer::start(implementation, &SHELL).expect("start mosh-server"))
        .collect()
}

fn add_all(loadgen: &LoadGen, servers: &[MoshServer], behaviour: Behaviour) -> Vec<SessionId> {
    servers
        .iter()
        .map(|server| {
            loadgen
                .add(SessionSpec {
                    server: server.addr(),
                    key: server.key().clone(),
                    behaviour,
                })
                .unwrap()
        })
        .collect()
}

/// Waits until every session in `ids` has completed `lines` more lines
/// than `since` (indexed by id).
fn wait_lines(loadgen: &LoadGen, ids: &[SessionId], since: &[u64], lines: u64) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let statuses = loadgen.statuses().unwrap();
        if ids
            .iter()
            .all(|id| statuses[id.0].lines_done >= since[id.0] + lines)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lines not echoed in time: {statuses:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lines_done(loadgen: &LoadGen) -> Vec<u64> {
    loadgen
        .statuses()
        .unwrap()
        .iter()
        .map(|status| status.lines_done)
        .collect()
}

#[test]
fn drives_our_servers_typing_quiet_vanished_roaming_and_notices_a_dead_one() {
    let servers = servers(Implementation::Ours, 8);
    let loadgen = LoadGen::start(Options {
        sessions_per_socket: 3,
        extensions: ExtensionSet::EMPTY
            .with(Extension::Attributes)
            .with(Extension::NativeCipher),
        echo_patience: Duration::from_secs(3),
        ..Options::default()
    })
    .unwrap();
    let ids = add_all(&loadgen, &servers, typing(20));
    wait_lines(&loadgen, &ids, &[0; 8], 2);
    let statuses = loadgen.statuses().unwrap();
    let sources: Vec<_> = statuses.iter().filter_map(|s| s.source).collect();
    assert_eq!(sources[0], sources[2], "sessions share client sockets");
    assert_ne!(sources[2], sources[3]);
    let screen = loadgen.screen(ids[0]).unwrap();
    assert!(
        screen.iter().any(|row| row == "mosh$ #s0000n000001"),
        "{screen:#?}"
    );

    let roamed_from = statuses[0].source.unwrap();
    let roamed_to = loadgen.roam(ids[0]).unwrap();
    assert_ne!(roamed_from.port(), roamed_to.port());
    loadgen.set_behaviour(ids[1], Behaviour::Quiet).unwrap();
    loadgen.vanish(ids[2]).unwrap();
    let killed = servers[3].pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(killed as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(process::wait_for_exit(
        killed,
        "mosh-server",
        Duration::from_secs(5)
    ));

    let before = lines_done(&loadgen);
    let live = [ids[0], ids[4], ids[5], ids[6], ids[7]];
    wait_lines(&loadgen, &live, &before, 3);
    std::thread::sleep(Duration::from_secs(4));
    let statuses = loadgen.statuses().unwrap();
    let after = lines_done(&loadgen);
    assert!(
        after[1] <= before[1] + 1,
        "a quiet session types nothing more"
    );
    assert!(
        after[2] <= before[2] + 1,
        "a vanished session types nothing more"
    );
    assert!(statuses[2].vanished);
    assert!(
        statuses[1].last_heard.unwrap() < Duration::from_secs(4),
        "the quiet session is still heard from: {:?}",
        statuses[1]
    );
    assert!(
        statuses[3].lost > 0,
        "keys typed at a killed server are lost: {:?}",
        statuses[3]
    );
    for id in live {
        let status = &statuses[id.0];
        assert_eq!((status.lost, status.garbled_lines), (0, 0), "{status:?}");
        assert_eq!(status.datagrams_rejected, 0, "{status:?}");
    }
    let totals = loadgen.totals().unwrap();
    let (p50, p99) = (
        totals.latency.quantile(0.5).unwrap(),
        totals.latency.quantile(0.99).unwrap(),
    );
    assert!(p50 <= p99, "{p50:?} {p99:?}");
}

#[test]
fn speaks_the_real_protocol_to_stock_mosh_server() {
    let servers = servers(Implementation::Stock, 3);
    let loadgen = LoadGen::start(Options::default()).unwrap();
    let ids = add_all(&loadgen, &servers, typing(20));
    wait_lines(&loadgen, &ids, &[0; 3], 3);
    let totals = loadgen.totals().unwrap();
    assert_eq!((totals.lost, totals.garbled_lines), (0, 0));
    assert_eq!(totals.datagrams_rejected, 0);
    assert_eq!(totals.latency.count(), totals.echoed);
}

#[test]
fn keeps_every_key_in_order_through_loss_delay_jitter_and_duplication() {
    let servers = servers(Implementation::Ours, 4);
    let proxies: Vec<ImpairmentProxy> = servers
        .iter()
        .enumerate()
        .map(|(n, server)| {
            let proxy = ImpairmentProxy::start(
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                server.addr(),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                n as u64 + 11,
            )
            .unwrap();
            proxy.set_both(Impairment {
                delay: Duration::from_millis(25),
                jitter: Duration::from_millis(20),
                loss: 0.2,
                duplicate: 0.1,
            });
            proxy
        })
        .collect();
    let loadgen = LoadGen::start(Options::default()).unwrap();
    let ids: Vec<SessionId> = servers
        .iter()
        .zip(&proxies)
        .map(|(server, proxy)| {
            loadgen
                .add(SessionSpec {
                    server: proxy.listen_addr(),
                    key: server.key().clone(),
                    behaviour: typing(50),
                })
                .unwrap()
        })
        .collect();
    wait_lines(&loadgen, &ids, &[0; 4], 2);
    let totals = loadgen.totals().unwrap();
    assert_eq!((totals.lost, totals.garbled_lines), (0, 0));
    assert!(
        proxies
            .iter()
            .any(|proxy| proxy.stats(mosh_e2e::impair::Way::ToServer).dropped > 0),
        "the proxies dropped datagrams"
    );
}
