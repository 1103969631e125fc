//! Deterministic simulation: a client and a server `Transport` over a
//! simulated network with loss, reordering, duplication, long delay and a
//! client address change, driven by a simulated clock. Both directions must
//! converge to the sender's latest state, and shutdown must complete.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Impairment, Network, Rng, Stream};
use mosh_proto::{Base64Key, ExtensionSet, Peer, Transport, TransportConfig};
use proptest::prelude::*;

type Side = Transport<Stream, Stream>;

const SERVER: &str = "203.0.113.5:60001";
const CLIENT_FIRST: &str = "192.0.2.10:40000";
const CLIENT_ROAMED: &str = "198.51.100.7:41000";

/// What one simulated run did.
#[derive(Debug)]
struct Outcome {
    converged_at: Option<Duration>,
    shutdown_at: Option<Duration>,
    shutdown_gave_up: bool,
    server_followed_roam: bool,
    client_sent: Vec<u8>,
    server_sent: Vec<u8>,
    server_saw: Vec<u8>,
    server_took: Vec<u8>,
    client_saw: Vec<u8>,
    max_states_held: usize,
    client_knows: Peer,
    server_knows: Peer,
}

struct Sim {
    start: Instant,
    now: Instant,
    client: Side,
    server: Side,
    client_addr: SocketAddr,
    net: Network,
    max_states_held: usize,
    server_took: Vec<u8>,
}

impl Sim {
    fn new(seed: u64, impairment: Impairment, ends: Extensions) -> Self {
        let start = Instant::now();
        let key = Base64Key::from_bytes(seed.to_le_bytes().repeat(2).try_into().unwrap());
        let server_addr: SocketAddr = SERVER.parse().unwrap();
        let client = Transport::new(
            TransportConfig::client(server_addr)
                .with_chaff_seed(seed)
                .with_extensions(ends.client),
            &key,
            Stream::default(),
            Stream::default(),
            start,
        )
        .unwrap();
        let server = Transport::new(
            TransportConfig::server()
                .with_chaff_seed(!seed)
                .with_extensions(ends.server),
            &key,
            Stream::default(),
            Stream::default(),
            start,
        )
        .unwrap();
        Self {
            start,
            now: start,
            client,
            server,
            client_addr: CLIENT_FIRST.parse().unwrap(),
            net: Network::new(seed, impairment),
            max_states_held: 0,
            server_took: Vec::new(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves every due datagram and lets both sides send; then advances the
    /// clock to the next event, but not past `limit`.
    fn step(&mut self, limit: Instant) {
        let server_addr: SocketAddr = SERVER.parse().unwrap();
        for datagram in self.net.arrivals(self.now) {
            if datagram.to == server_addr {
                let _ = self
                    .server
                    .handle_datagram(self.now, datagram.from, &datagram.contents);
            } else if datagram.to == self.client_addr {
                let _ = self
                    .client
                    .handle_datagram(self.now, server_addr, &datagram.contents);
            }
        }
        let new_input = self.server.take_remote_diff();
        self.server_took.extend_from_slice(&new_input);
        while let Some(t) = self.client.poll_transmit(self.now) {
            assert_eq!(t.destination, server_addr);
            assert!(t.contents.len() <= 1252, "datagram over the IPv4 MTU");
            self.net
                .send(self.now, self.client_addr, t.destination, t.contents);
        }
        while let Some(t) = self.server.poll_transmit(self.now) {
            assert!(t.contents.len() <= 1252, "datagram over the IPv4 MTU");
            self.net
                .send(self.now, server_addr, t.destination, t.contents);
        }
        self.max_states_held = self
            .max_states_held
            .max(self.client.remote_states_held())
            .max(self.server.remote_states_held());
        let next = [
            self.net.next_arrival(),
            self.client.poll_timeout(self.now),
            self.server.poll_timeout(self.now),
            Some(limit),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap();
        self.now = if next <= self.now {
            self.now + Duration::from_millis(1)
        } else {
            next.min(limit)
        };
    }

    fn run_until(&mut self, at: Duration) {
        let limit = self.start + at;
        while self.now < limit {
            self.step(limit);
        }
    }

    fn converged(&self) -> bool {
        self.server.latest_remote_state() == self.client.current_state()
            && self.client.latest_remote_state() == self.server.current_state()
    }
}

/// The native extensions each end supports.
#[derive(Debug, Clone, Copy)]
struct Extensions {
    client: ExtensionSet,
    server: ExtensionSet,
}

/// Both ends stock.
const STOCK: Extensions = Extensions {
    client: ExtensionSet::EMPTY,
    server: ExtensionSet::EMPTY,
};

/// Runs a session: for 10 simulated seconds the client types and the server
/// prints; half-way the client's address changes; then both stop and the run
/// goes on until both sides hold each other's latest state; then the client
/// shuts down.
fn simulate(seed: u64, impairment: Impairment) -> Outcome {
    simulate_with(seed, impairment, STOCK)
}

/// [`simulate`] with the given native extensions at each end.
fn simulate_with(seed: u64, impairment: Impairment, ends: Extensions) -> Outcome {
    let mut sim = Sim::new(seed, impairment, ends);
    let mut rng = Rng::new(seed ^ 0xABCD);
    let mut client_sent = Vec::new();
    let mut server_sent = Vec::new();
    let mut server_followed_roam = false;
    for tick in 1..=100u32 {
        sim.run_until(Duration::from_millis(u64::from(tick) * 100));
        let typed = [b'a' + (rng.below(26) as u8)];
        sim.client.current_state_mut().push(&typed);
        client_sent.extend_from_slice(&typed);
        if rng.chance(0.5) {
            let line = format!("line {tick} {}\n", "x".repeat(rng.below(3000) as usize));
            sim.server.current_state_mut().push(line.as_bytes());
            server_sent.extend_from_slice(line.as_bytes());
        }
        if tick == 50 {
            sim.client_addr = CLIENT_ROAMED.parse().unwrap();
        }
    }
    let mut converged_at = None;
    let give_up = sim.elapsed() + Duration::from_secs(120);
    while sim.elapsed() < give_up {
        let target = sim.elapsed() + Duration::from_millis(50);
        sim.run_until(target);
        if sim.converged() {
            converged_at = Some(sim.elapsed());
            break;
        }
    }
    if sim.server.remote_addr() == Some(CLIENT_ROAMED.parse().unwrap()) {
        server_followed_roam = true;
    }
    let mut shutdown_at = None;
    let mut shutdown_gave_up = false;
    if converged_at.is_some() {
        sim.client.start_shutdown(sim.now);
        let started = sim.elapsed();
        while sim.elapsed() < started + Duration::from_secs(20) {
            let target = sim.elapsed() + Duration::from_millis(10);
            sim.run_until(target);
            if sim.client.shutdown_acknowledged() && sim.server.counterparty_shutdown_ack_sent() {
                shutdown_at = Some(sim.elapsed() - started);
                break;
            }
            if sim.client.shutdown_timed_out(sim.now) {
                shutdown_gave_up = true;
                break;
            }
        }
    }
    Outcome {
        converged_at,
        shutdown_at,
        shutdown_gave_up,
        server_followed_roam,
        server_saw: sim.server.latest_remote_state().held().to_vec(),
        server_took: sim.server_took,
        client_saw: sim.client.latest_remote_state().held().to_vec(),
        client_sent,
        server_sent,
        max_states_held: sim.max_states_held,
        client_knows: sim.client.peer_extensions(),
        server_knows: sim.server.peer_extensions(),
    }
}

/// Checks a run. With `lossy_shutdown`, the shutdown handshake may also end
/// by giving up after its 16 tries, as mosh's does when the peer's
/// acknowledgements keep getting lost; it must end either way.
fn assert_healthy(outcome: &Outcome, lossy_shutdown: bool) {
    assert!(
        outcome.converged_at.is_some(),
        "did not converge within 120 s of the last change"
    );
    assert_eq!(
        outcome.server_took, outcome.client_sent,
        "client→server stream"
    );
    assert!(
        outcome.server_saw.len() < outcome.client_sent.len(),
        "the server's held user streams were never trimmed"
    );
    assert_eq!(
        outcome.client_saw, outcome.server_sent,
        "server→client stream"
    );
    assert!(
        outcome.server_followed_roam,
        "server did not follow the client's new address"
    );
    if lossy_shutdown {
        assert!(
            outcome.shutdown_at.is_some() || outcome.shutdown_gave_up,
            "shutdown neither completed nor gave up"
        );
    } else {
        assert!(outcome.shutdown_at.is_some(), "shutdown did not complete");
    }
    assert!(outcome.max_states_held <= mosh_proto::transport::RECEIVED_STATE_CAP + 1);
}

#[test]
fn converges_through_loss_reordering_duplication_and_roaming() {
    let impairment = Impairment {
        loss: 0.30,
        duplicate: 0.10,
        delay: Duration::from_millis(250),
        jitter: Duration::from_millis(120),
    };
    let outcome = simulate(7, impairment);
    assert_healthy(&outcome, false);
    let converged = outcome.converged_at.unwrap();
    assert!(
        converged < Duration::from_secs(40),
        "took {converged:?} to converge"
    );
}

#[test]
fn clean_network_converges_within_a_few_round_trips() {
    let impairment = Impairment {
        loss: 0.0,
        duplicate: 0.0,
        delay: Duration::from_millis(250),
        jitter: Duration::ZERO,
    };
    let outcome = simulate(1, impairment);
    assert_healthy(&outcome, false);
    assert!(outcome.converged_at.unwrap() < Duration::from_millis(11_500));
    assert!(outcome.shutdown_at.unwrap() < Duration::from_secs(2));
}

#[test]
fn identical_seeds_give_identical_runs() {
    let impairment = Impairment {
        loss: 0.2,
        duplicate: 0.05,
        delay: Duration::from_millis(100),
        jitter: Duration::from_millis(50),
    };
    let a = simulate(99, impairment);
    let b = simulate(99, impairment);
    assert_eq!(a.converged_at, b.converged_at);
    assert_eq!(a.shutdown_at, b.shutdown_at);
}

#[test]
fn stock_ends_negotiate_nothing() {
    let outcome = simulate(
        3,
        Impairment {
            loss: 0.1,
            duplicate: 0.1,
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(50),
        },
    );
    assert_healthy(&outcome, false);
    assert_eq!(outcome.client_knows, Peer::Stock);
    assert_eq!(outcome.server_knows, Peer::Stock);
}

#[test]
fn our_client_finds_a_server_without_extensions_is_stock() {
    let ends = Extensions {
        client: ExtensionSet::all(),
        server: ExtensionSet::EMPTY,
    };
    let outcome = simulate_with(
        11,
        Impairment {
            loss: 0.3,
            duplicate: 0.1,
            delay: Duration::from_millis(200),
            jitter: Duration::from_millis(150),
        },
        ends,
    );
    assert_healthy(&outcome, true);
    assert_eq!(outcome.client_knows, Peer::Stock);
    assert_eq!(outcome.server_knows, Peer::Stock);
}

#[test]
fn our_server_finds_a_client_without_extensions_is_stock() {
    let ends = Extensions {
        client: ExtensionSet::EMPTY,
        server: ExtensionSet::all(),
    };
    let outcome = simulate_with(
        12,
        Impairment {
            loss: 0.3,
            duplicate: 0.1,
            delay: Duration::from_millis(200),
            jitter: Duration::from_millis(150),
        },
        ends,
    );
    assert_healthy(&outcome, true);
    assert_eq!(outcome.client_knows, Peer::Stock);
    assert_eq!(outcome.server_knows, Peer::Stock);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_loss_patterns_converge(
        seed in any::<u64>(),
        loss in 0.0f64..0.45,
        duplicate in 0.0f64..0.3,
        delay_ms in 0u64..400,
        jitter_ms in 0u64..300,
    ) {
        let outcome = simulate(seed, Impairment {
            loss,
            duplicate,
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
        });
        assert_healthy(&outcome, loss > 0.25);
    }

    #[test]
    fn our_two_ends_agree_whatever_the_network_does(
        seed in any::<u64>(),
        loss in 0.0f64..0.5,
        duplicate in 0.0f64..0.3,
        delay_ms in 0u64..400,
        jitter_ms in 0u64..400,
    ) {
        let ends = Extensions { client: ExtensionSet::all(), server: ExtensionSet::all() };
        let outcome = simulate_with(seed, Impairment {
            loss,
            duplicate,
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
        }, ends);
        assert_healthy(&outcome, loss > 0.25);
        prop_assert_eq!(outcome.client_knows, Peer::Native(ExtensionSet::all()));
        prop_assert_eq!(outcome.server_knows, Peer::Native(ExtensionSet::all()));
    }
}
