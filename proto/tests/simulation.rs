//! Deterministic simulation: a client and a server `Transport` over a
//! simulated network with loss, reordering, duplication, long delay and a
//! client address change, driven by a simulated clock. Both directions must
//! converge to the sender's latest state, and shutdown must complete. The
//! native cipher's runs add an attacker on the path, who may hold the
//! `MOSH CONNECT` key, and a recorder of every datagram.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Impairment, Network, Rng, Stream};
use mosh_proto::cipher::{REKEY_AGE, REKEY_DATAGRAMS};
use mosh_proto::connection::ReceiveError;
use mosh_proto::fragment::{self, Fragment};
use mosh_proto::messages::Instruction;
use mosh_proto::packet::Packet;
use mosh_proto::transport::TransportError;
use mosh_proto::{
    Base64Key, CryptoError, Extension, ExtensionSet, Peer, Session, Suite, Transport,
    TransportConfig,
};
use proptest::prelude::*;
use prost::Message;

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
    client_suite: Suite,
    server_suite: Suite,
    client_epoch: u64,
    server_epoch: u64,
    /// Every datagram either end sent, in order, before the attacker.
    recorded: Vec<Sent>,
    key: Base64Key,
    /// Datagrams the server could open under none of its keys.
    server_unauthenticated: u64,
}

/// A datagram put on the wire.
#[derive(Debug, Clone)]
struct Sent {
    from: SocketAddr,
    to: SocketAddr,
    contents: Vec<u8>,
}

impl Sent {
    fn is_from_client(&self) -> bool {
        self.to == SERVER.parse().unwrap()
    }
}

/// An attacker on the path: sees each datagram sent (with the time since the
/// start) and says what goes on the network instead.
type Tamper = Box<dyn FnMut(Duration, Sent) -> Vec<Sent>>;

fn pass_through() -> Tamper {
    Box::new(|_, sent| vec![sent])
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
    tamper: Tamper,
    recorded: Vec<Sent>,
    key: Base64Key,
    server_unauthenticated: u64,
}

impl Sim {
    fn new(seed: u64, impairment: Impairment, ends: Extensions, tamper: Tamper) -> Self {
        let start = Instant::now();
        let key = Base64Key::from_bytes(seed.to_le_bytes().repeat(2).try_into().unwrap());
        let server_addr: SocketAddr = SERVER.parse().unwrap();
        let client = Transport::new(
            TransportConfig::client(server_addr)
                .with_chaff_seed(seed)
                .with_extensions(ends.client)
                .with_rekey_limits(ends.rekey_datagrams, ends.rekey_age),
            &key,
            Stream::default(),
            Stream::default(),
            start,
        )
        .unwrap();
        let server = Transport::new(
            TransportConfig::server()
                .with_chaff_seed(!seed)
                .with_extensions(ends.server)
                .with_rekey_limits(ends.rekey_datagrams, ends.rekey_age),
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
            tamper,
            recorded: Vec::new(),
            key,
            server_unauthenticated: 0,
        }
    }

    /// Records a datagram and hands it to the attacker, then the network.
    fn send(&mut self, sent: Sent) {
        self.recorded.push(sent.clone());
        let elapsed = self.elapsed();
        for out in (self.tamper)(elapsed, sent) {
            self.net.send(self.now, out.from, out.to, out.contents);
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
                let result =
                    self.server
                        .handle_datagram(self.now, datagram.from, &datagram.contents);
                if let Err(TransportError::Receive(ReceiveError::Crypto(CryptoError::Integrity))) =
                    result
                {
                    self.server_unauthenticated += 1;
                }
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
            self.send(Sent {
                from: self.client_addr,
                to: t.destination,
                contents: t.contents,
            });
        }
        while let Some(t) = self.server.poll_transmit(self.now) {
            assert!(t.contents.len() <= 1252, "datagram over the IPv4 MTU");
            self.send(Sent {
                from: server_addr,
                to: t.destination,
                contents: t.contents,
            });
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

/// The native extensions each end supports, and when the cipher rekeys.
#[derive(Debug, Clone, Copy)]
struct Extensions {
    client: ExtensionSet,
    server: ExtensionSet,
    rekey_datagrams: u64,
    rekey_age: Duration,
}

/// Both ends stock.
const STOCK: Extensions = Extensions {
    client: ExtensionSet::EMPTY,
    server: ExtensionSet::EMPTY,
    rekey_datagrams: REKEY_DATAGRAMS,
    rekey_age: REKEY_AGE,
};

/// Both ends ours, with every extension.
fn ours() -> Extensions {
    Extensions {
        client: ExtensionSet::all(),
        server: ExtensionSet::all(),
        rekey_datagrams: REKEY_DATAGRAMS,
        rekey_age: REKEY_AGE,
    }
}

/// Runs a session: for 10 simulated seconds the client types and the server
/// prints; half-way the client's address changes; then both stop and the run
/// goes on until both sides hold each other's latest state; then the client
/// shuts down.
fn simulate(seed: u64, impairment: Impairment) -> Outcome {
    simulate_with(seed, impairment, STOCK)
}

/// [`simulate`] with the given native extensions at each end.
fn simulate_with(seed: u64, impairment: Impairment, ends: Extensions) -> Outcome {
    simulate_attacked(seed, impairment, ends, pass_through())
}

/// [`simulate_with`] with an attacker on the path.
fn simulate_attacked(
    seed: u64,
    impairment: Impairment,
    ends: Extensions,
    tamper: Tamper,
) -> Outcome {
    let mut sim = Sim::new(seed, impairment, ends, tamper);
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
        client_suite: sim.client.cipher_suite(),
        server_suite: sim.server.cipher_suite(),
        client_epoch: sim.client.key_epoch(),
        server_epoch: sim.server.key_epoch(),
        server_unauthenticated: sim.server_unauthenticated,
        recorded: sim.recorded,
        key: sim.key,
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
    assert_both_stock(&outcome);
}

#[test]
fn our_client_finds_a_server_without_extensions_is_stock() {
    let ends = Extensions {
        server: ExtensionSet::EMPTY,
        ..ours()
    };
    let outcome = simulate_with(11, harsh(), ends);
    assert_healthy(&outcome, true);
    assert_both_stock(&outcome);
}

#[test]
fn our_server_finds_a_client_without_extensions_is_stock() {
    let ends = Extensions {
        client: ExtensionSet::EMPTY,
        ..ours()
    };
    let outcome = simulate_with(12, harsh(), ends);
    assert_healthy(&outcome, true);
    assert_both_stock(&outcome);
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
        let outcome = simulate_with(seed, Impairment {
            loss,
            duplicate,
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
        }, ours());
        assert_healthy(&outcome, loss > 0.25);
        prop_assert_eq!(outcome.client_knows, Peer::Native(ExtensionSet::all()));
        prop_assert_eq!(outcome.server_knows, Peer::Native(ExtensionSet::all()));
        assert_on_suite(&outcome, Suite::Aes256GcmX25519);
    }
}

/// Checks that each end took the other for stock mosh and both stayed on
/// stock's cipher.
fn assert_both_stock(outcome: &Outcome) {
    assert_eq!(outcome.client_knows, Peer::Stock);
    assert_eq!(outcome.server_knows, Peer::Stock);
    assert_on_suite(outcome, Suite::Aes128Ocb);
}

/// Checks that both ends seal with `suite`.
fn assert_on_suite(outcome: &Outcome, suite: Suite) {
    assert_eq!(outcome.client_suite, suite, "client's suite");
    assert_eq!(outcome.server_suite, suite, "server's suite");
}

fn harsh() -> Impairment {
    Impairment {
        loss: 0.30,
        duplicate: 0.10,
        delay: Duration::from_millis(200),
        jitter: Duration::from_millis(150),
    }
}

/// The instruction a single-fragment datagram carries, opened with the
/// bootstrap key, with its parts for re-sealing.
fn open_with_bootstrap(key: &Base64Key, datagram: &[u8]) -> Option<(Instruction, u64, Fragment)> {
    let opened = Session::new(key).open(datagram).ok()?;
    let packet = Packet::parse(&opened.plaintext).ok()?;
    let fragment = Fragment::parse(packet.payload).ok()?;
    if fragment.num != 0 || !fragment.is_final {
        return None;
    }
    let encoded = fragment::decompress(&fragment.body).ok()?;
    let instruction = Instruction::decode(encoded.as_slice()).ok()?;
    Some((instruction, opened.seq, fragment))
}

/// What an attacker holding the `MOSH CONNECT` key can do to a client
/// datagram still under OCB: remove the negotiation field and re-seal it
/// under the same sequence number.
fn strip_offer(key: &Base64Key, datagram: &[u8]) -> Option<Vec<u8>> {
    let opened = Session::new(key).open(datagram).ok()?;
    let packet = Packet::parse(&opened.plaintext).ok()?;
    let (mut instruction, seq, fragment) = open_with_bootstrap(key, datagram)?;
    instruction.extensions.take()?;
    let body = fragment::compress(&instruction.encode_to_vec());
    let stripped = Fragment { body, ..fragment };
    let plaintext = Packet {
        payload: &stripped.to_bytes(),
        ..packet
    }
    .to_bytes();
    Session::new(key)
        .seal(opened.direction, seq, &plaintext)
        .ok()
}

#[test]
fn native_cipher_switches_through_loss_duplication_reordering_and_roaming() {
    for seed in [21, 22, 23] {
        let outcome = simulate_with(seed, harsh(), ours());
        assert_healthy(&outcome, true);
        assert_eq!(outcome.client_knows, Peer::Native(ExtensionSet::all()));
        assert_eq!(outcome.server_knows, Peer::Native(ExtensionSet::all()));
        assert_on_suite(&outcome, Suite::Aes256GcmX25519);
        assert_eq!((outcome.client_epoch, outcome.server_epoch), (1, 1));
    }
}

#[test]
fn ours_without_the_cipher_stays_on_ocb() {
    let ends = Extensions {
        client: ExtensionSet::all().without(Extension::NativeCipher),
        ..ours()
    };
    let outcome = simulate_with(24, harsh(), ends);
    assert_healthy(&outcome, true);
    let expected = ExtensionSet::all().without(Extension::NativeCipher);
    assert_eq!(outcome.client_knows, Peer::Native(expected));
    assert_eq!(outcome.server_knows, Peer::Native(expected));
    assert_on_suite(&outcome, Suite::Aes128Ocb);
}

/// Forward secrecy: with every datagram recorded and only the `MOSH
/// CONNECT` key, the offer opens, and nothing after each end's switch does.
#[test]
fn the_bootstrap_key_opens_nothing_after_the_switch() {
    let impairment = Impairment {
        loss: 0.1,
        duplicate: 0.05,
        delay: Duration::from_millis(100),
        jitter: Duration::from_millis(50),
    };
    let outcome = simulate_with(31, impairment, ours());
    assert_healthy(&outcome, false);
    assert_on_suite(&outcome, Suite::Aes256GcmX25519);
    let recorded = &outcome.recorded;
    let (offer, _, _) = open_with_bootstrap(&outcome.key, &recorded[0].contents)
        .expect("the client's first datagram opens with the bootstrap key");
    let offer = offer.extensions.expect("it carries the offer");
    assert_eq!(offer.key_share.map(|share| share.len()), Some(32));
    for from_client in [true, false] {
        let opens: Vec<bool> = recorded
            .iter()
            .filter(|sent| sent.is_from_client() == from_client)
            .map(|sent| Session::new(&outcome.key).open(&sent.contents).is_ok())
            .collect();
        let switch = opens
            .iter()
            .position(|&ok| !ok)
            .expect("some datagrams do not open");
        assert!(switch > 0, "the first datagrams are OCB");
        assert!(
            opens[switch..].iter().all(|&ok| !ok),
            "after the switch nothing opens with the bootstrap key"
        );
        assert!(
            switch * 20 < opens.len(),
            "only the start of the session is OCB ({switch} of {})",
            opens.len()
        );
    }
}

/// Datagrams no one without a key could make: random bytes, bit flips of the
/// offer and an offer sealed under another key. None authenticates.
#[test]
fn forged_offers_change_nothing() {
    let mut rng = Rng::new(5);
    let other = Base64Key::from_bytes([0x42; 16]);
    let tamper: Tamper = Box::new(move |_, sent| {
        let mut out = vec![sent.clone()];
        if sent.is_from_client() {
            let mut flipped = sent.contents.clone();
            let bit = rng.below(flipped.len() as u64 * 8) as usize;
            flipped[bit / 8] ^= 1 << (bit % 8);
            let random: Vec<u8> = (0..sent.contents.len())
                .map(|_| rng.next_u64() as u8)
                .collect();
            let mut sealer = Session::new(&other);
            let resealed = sealer
                .seal(mosh_proto::Direction::ToServer, 0, &sent.contents)
                .unwrap();
            for contents in [flipped, random, resealed] {
                out.push(Sent {
                    contents,
                    ..sent.clone()
                });
            }
        }
        out
    });
    let outcome = simulate_attacked(41, harsh(), ours(), tamper);
    assert_healthy(&outcome, true);
    assert_on_suite(&outcome, Suite::Aes256GcmX25519);
    assert_eq!((outcome.client_epoch, outcome.server_epoch), (1, 1));
}

/// The client's first datagram (the offer), replayed to the server every
/// half second for the whole session: refused once the server switched,
/// ignored before.
#[test]
fn replayed_offers_change_nothing() {
    let mut first = None;
    let mut last_replay = Duration::ZERO;
    let tamper: Tamper = Box::new(move |elapsed, sent| {
        let mut out = vec![sent.clone()];
        if sent.is_from_client() {
            let offer = first.get_or_insert_with(|| sent.clone());
            if elapsed >= last_replay + Duration::from_millis(500) {
                last_replay = elapsed;
                out.push(offer.clone());
            }
        }
        out
    });
    let outcome = simulate_attacked(42, harsh(), ours(), tamper);
    assert_healthy(&outcome, true);
    assert_on_suite(&outcome, Suite::Aes256GcmX25519);
    assert_eq!((outcome.client_epoch, outcome.server_epoch), (1, 1));
    assert!(
        outcome.server_unauthenticated >= 5,
        "OCB replays after the switch are refused (refused {})",
        outcome.server_unauthenticated
    );
}

/// An attacker holding the bootstrap key strips the offer from every client
/// datagram after the first and drops the server's first replies: the
/// server has decided on the first and keeps answering until it switches,
/// so the client is not stranded.
#[test]
fn stripping_later_offers_cannot_strand_the_client() {
    let mut client_datagrams = 0;
    let key = Base64Key::from_bytes(43u64.to_le_bytes().repeat(2).try_into().unwrap());
    let tamper: Tamper = Box::new(move |elapsed, sent| {
        if !sent.is_from_client() {
            return if elapsed < Duration::from_millis(600) {
                Vec::new()
            } else {
                vec![sent]
            };
        }
        client_datagrams += 1;
        if client_datagrams == 1 {
            return vec![sent];
        }
        let contents = strip_offer(&key, &sent.contents).unwrap_or(sent.contents);
        vec![Sent { contents, ..sent }]
    });
    let impairment = Impairment {
        loss: 0.0,
        duplicate: 0.0,
        delay: Duration::from_millis(100),
        jitter: Duration::ZERO,
    };
    let outcome = simulate_attacked(43, impairment, ours(), tamper);
    assert_healthy(&outcome, false);
    assert_eq!(outcome.client_knows, Peer::Native(ExtensionSet::all()));
    assert_on_suite(&outcome, Suite::Aes256GcmX25519);
}

/// Stripping the offer from the first datagram the server sees (which the
/// bootstrap key allows) makes the server decide on a stock client: both
/// ends then agree on stock AES-128-OCB, and the session works.
#[test]
fn stripping_the_first_offer_leaves_both_ends_on_ocb() {
    let mut client_datagrams = 0;
    let key = Base64Key::from_bytes(44u64.to_le_bytes().repeat(2).try_into().unwrap());
    let tamper: Tamper = Box::new(move |_, sent| {
        if sent.is_from_client() {
            client_datagrams += 1;
            if client_datagrams == 1 {
                let contents = strip_offer(&key, &sent.contents).expect("the offer opens");
                return vec![Sent { contents, ..sent }];
            }
        }
        vec![sent]
    });
    let impairment = Impairment {
        loss: 0.0,
        duplicate: 0.0,
        delay: Duration::from_millis(100),
        jitter: Duration::ZERO,
    };
    let outcome = simulate_attacked(44, impairment, ours(), tamper);
    assert_healthy(&outcome, false);
    assert_both_stock(&outcome);
}

/// Every datagram is also bounced back to its sender: the server's answer
/// reaches the server, the client's offer the client.
#[test]
fn reflected_answers_and_offers_change_nothing() {
    let tamper: Tamper = Box::new(|_, sent| {
        let reflected = Sent {
            from: sent.to,
            to: sent.from,
            contents: sent.contents.clone(),
        };
        vec![sent, reflected]
    });
    let outcome = simulate_attacked(45, harsh(), ours(), tamper);
    assert_healthy(&outcome, true);
    assert_on_suite(&outcome, Suite::Aes256GcmX25519);
    assert_eq!((outcome.client_epoch, outcome.server_epoch), (1, 1));
}

/// With the threshold lowered to 8 datagrams the keys rotate many times
/// over a lossy, reordering network with roaming, and the streams arrive
/// whole.
#[test]
fn rekeys_repeatedly_through_loss_and_roaming() {
    let ends = Extensions {
        rekey_datagrams: 8,
        ..ours()
    };
    let outcome = simulate_with(46, harsh(), ends);
    assert_healthy(&outcome, true);
    assert_on_suite(&outcome, Suite::Aes256GcmX25519);
    assert!(
        outcome.client_epoch >= 4,
        "only {} key epochs",
        outcome.client_epoch
    );
    assert!(outcome.client_epoch.abs_diff(outcome.server_epoch) <= 1);
}

/// With the age limit lowered to two seconds, keys rotate on time alone
/// (the datagram threshold is never reached).
#[test]
fn rekeys_by_age() {
    let ends = Extensions {
        rekey_age: Duration::from_secs(2),
        ..ours()
    };
    let outcome = simulate_with(47, harsh(), ends);
    assert_healthy(&outcome, true);
    assert_on_suite(&outcome, Suite::Aes256GcmX25519);
    assert!(
        outcome.client_epoch >= 4,
        "only {} key epochs",
        outcome.client_epoch
    );
    assert!(outcome.client_epoch.abs_diff(outcome.server_epoch) <= 1);
}
