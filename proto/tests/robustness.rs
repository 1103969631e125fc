//! Hostile input against a server `Transport`: random bytes, truncated and
//! oversized datagrams, replays, reflected datagrams, fragment floods,
//! compression bombs and malformed instructions. Each is rejected without a
//! panic, without changing the session, and with bounded memory; the session
//! keeps working afterwards.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Rng, Stream};
use mosh_proto::connection::{Connection, ReceiveError};
use mosh_proto::fragment::{self, Fragment, FragmentError, MAX_MESSAGE_LEN, MAX_PARTIAL_MESSAGES};
use mosh_proto::messages::Instruction;
use mosh_proto::transport::TransportError;
use mosh_proto::{Base64Key, CryptoError, Delivery, Role, Transport, TransportConfig};
use proptest::prelude::*;
use prost::Message;

type Side = Transport<Stream, Stream>;

fn server_addr() -> SocketAddr {
    "127.0.0.1:60001".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

fn key() -> Base64Key {
    Base64Key::parse("AAECAwQFBgcICQoLDA0ODw").unwrap()
}

fn pair(now: Instant) -> (Side, Side) {
    let client = Transport::new(
        TransportConfig::client(server_addr()).with_chaff_seed(1),
        &key(),
        Stream::default(),
        Stream::default(),
        now,
    )
    .unwrap();
    let server = Transport::new(
        TransportConfig::server().with_chaff_seed(2),
        &key(),
        Stream::default(),
        Stream::default(),
        now,
    )
    .unwrap();
    (client, server)
}

/// Exchanges datagrams over a perfect network until both are quiet, and
/// returns every datagram the client sent.
fn exchange(client: &mut Side, server: &mut Side, now: &mut Instant) -> Vec<Vec<u8>> {
    let mut from_client = Vec::new();
    for _ in 0..200 {
        while let Some(t) = client.poll_transmit(*now) {
            from_client.push(t.contents.clone());
            let _ = server.handle_datagram(*now, client_addr(), &t.contents);
        }
        while let Some(t) = server.poll_transmit(*now) {
            let _ = client.handle_datagram(*now, server_addr(), &t.contents);
        }
        *now += Duration::from_millis(20);
    }
    from_client
}

/// An attacker who knows the key (the worst case: a peer gone bad) seals
/// arbitrary payloads and instructions as the client would.
struct Forger {
    connection: Connection,
    fragmenter: fragment::Fragmenter,
}

impl Forger {
    fn new(now: Instant) -> Self {
        Self {
            connection: Connection::new(Role::Client, &key(), now, Some(server_addr())),
            fragmenter: fragment::Fragmenter::default(),
        }
    }

    fn seal(&mut self, now: Instant, payload: &[u8]) -> Vec<u8> {
        self.connection.seal(now, payload).unwrap()
    }

    /// Compresses, fragments (under a fresh id) and seals `encoded`.
    fn message(&mut self, now: Instant, encoded: &[u8], body: usize) -> Vec<Vec<u8>> {
        let compressed = fragment::compress(encoded);
        self.fragmenter
            .fragment(&compressed, body)
            .into_iter()
            .map(|f| self.seal(now, &f.to_bytes()))
            .collect()
    }

    fn instruction(&mut self, now: Instant, instruction: &Instruction) -> Vec<u8> {
        let mut datagrams = self.message(now, &instruction.encode_to_vec(), 1200);
        assert_eq!(datagrams.len(), 1);
        datagrams.remove(0)
    }
}

#[test]
fn truncated_oversized_and_reflected_datagrams_are_rejected() {
    let mut now = Instant::now();
    let (mut client, mut server) = pair(now);
    client.current_state_mut().push(b"ls\r");
    let sent = exchange(&mut client, &mut server, &mut now);
    assert_eq!(server.latest_remote_state().held(), b"ls\r");
    let sample = &sent[0];
    for len in 0..sample.len() {
        assert!(
            server
                .handle_datagram(now, client_addr(), &sample[..len])
                .is_err(),
            "truncation to {len} bytes accepted"
        );
    }
    let mut oversized = sample.clone();
    oversized.resize(2049, 0);
    assert!(
        server
            .handle_datagram(now, client_addr(), &oversized)
            .is_err()
    );
    let reflected = server.poll_transmit(now + Duration::from_secs(3));
    let reflected = reflected.expect("server heartbeat due").contents;
    let error = server
        .handle_datagram(now, client_addr(), &reflected)
        .unwrap_err();
    assert!(error.to_string().contains("reflected"), "{error}");
    assert_eq!(server.latest_remote_state().held(), b"ls\r");
}

#[test]
fn garbage_claiming_the_servers_own_direction_is_refused_as_reflected() {
    let mut now = Instant::now();
    let (mut client, mut server) = pair(now);
    client.current_state_mut().push(b"ls\r");
    exchange(&mut client, &mut server, &mut now);
    let rogue: SocketAddr = "127.0.0.9:1234".parse().unwrap();
    let mut rng = Rng::new(11);
    for _ in 0..200 {
        let len = 24 + rng.below(1400) as usize;
        let mut garbage: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        garbage[0] |= 0x80;
        assert_eq!(
            server.handle_datagram(now, rogue, &garbage),
            Err(TransportError::Receive(ReceiveError::WrongDirection)),
            "refused on its direction bit, before any decryption"
        );
        garbage[0] &= 0x7f;
        assert_eq!(
            server.handle_datagram(now, rogue, &garbage),
            Err(TransportError::Receive(ReceiveError::Crypto(
                CryptoError::Integrity
            ))),
            "the peer's direction is decrypted and fails authentication"
        );
    }
    assert_eq!(server.stats().datagrams_rejected, 400);
    assert_eq!(server.remote_addr(), Some(client_addr()));
    client.current_state_mut().push(b"more");
    exchange(&mut client, &mut server, &mut now);
    assert_eq!(server.latest_remote_state().held(), b"ls\rmore");
}

#[test]
fn replayed_datagrams_change_nothing() {
    let mut now = Instant::now();
    let (mut client, mut server) = pair(now);
    let mut sent = Vec::new();
    for word in ["echo ", "hello", "\r"] {
        client.current_state_mut().push(word.as_bytes());
        sent.extend(exchange(&mut client, &mut server, &mut now));
    }
    assert_eq!(server.latest_remote_state().held(), b"echo hello\r");
    let num = server.latest_remote_state_num();
    let rogue: SocketAddr = "127.0.0.9:1234".parse().unwrap();
    for datagram in sent.iter().rev().chain(sent.iter()) {
        let _ = server.handle_datagram(now, rogue, datagram);
    }
    assert_eq!(server.latest_remote_state().held(), b"echo hello\r");
    assert_eq!(server.latest_remote_state_num(), num);
    assert_eq!(
        server.remote_addr(),
        Some(client_addr()),
        "a replay from another address must not steal the session"
    );
    client.current_state_mut().push(b"more");
    exchange(&mut client, &mut server, &mut now);
    assert_eq!(server.latest_remote_state().held(), b"echo hello\rmore");
}

#[test]
fn fragment_flood_is_bounded() {
    let mut now = Instant::now();
    let (mut client, mut server) = pair(now);
    exchange(&mut client, &mut server, &mut now);
    let mut forger = Forger::new(now);
    let mut rng = Rng::new(5);
    for _ in 0..5_000 {
        let fragment = Fragment {
            id: rng.next_u64() >> 1,
            num: rng.below(4000) as u16,
            is_final: rng.chance(0.1),
            body: vec![0xAA; 1200],
        };
        let datagram = forger.seal(now, &fragment.to_bytes());
        let _ = server.handle_datagram(now, client_addr(), &datagram);
        assert!(server.partial_bytes_held() <= MAX_PARTIAL_MESSAGES * MAX_MESSAGE_LEN);
    }
    assert_eq!(server.latest_remote_state().held(), b"");
}

#[test]
fn compression_bomb_and_malformed_instructions_are_refused() {
    let now = Instant::now();
    let (_, mut server) = pair(now);
    let mut forger = Forger::new(now);
    let bomb = forger.message(now, &vec![0u8; 8 << 20], 1000);
    let results: Vec<_> = bomb
        .iter()
        .map(|d| server.handle_datagram(now, client_addr(), d))
        .collect();
    assert_eq!(
        results.last().unwrap(),
        &Err(TransportError::Fragment(FragmentError::InflatesTooFar))
    );

    let garbage = forger.message(now, &[0xFF; 40], 1200);
    assert!(matches!(
        server.handle_datagram(now, client_addr(), &garbage[0]),
        Err(TransportError::Decode(_))
    ));

    let wrong_version = Instruction {
        protocol_version: Some(3),
        ..Default::default()
    };
    let datagram = forger.instruction(now, &wrong_version);
    assert_eq!(
        server.handle_datagram(now, client_addr(), &datagram),
        Err(TransportError::VersionMismatch(Some(3)))
    );

    let unknown_base = Instruction {
        protocol_version: Some(2),
        old_num: Some(77),
        new_num: Some(78),
        diff: Some(b"x".to_vec()),
        ..Default::default()
    };
    let datagram = forger.instruction(now, &unknown_base);
    assert_eq!(
        server.handle_datagram(now, client_addr(), &datagram),
        Ok(Delivery::UnknownBase)
    );

    let bad_throwaway = Instruction {
        protocol_version: Some(2),
        old_num: Some(0),
        new_num: Some(1),
        throwaway_num: Some(5),
        ..Default::default()
    };
    let datagram = forger.instruction(now, &bad_throwaway);
    assert!(matches!(
        server.handle_datagram(now, client_addr(), &datagram),
        Err(TransportError::ThrowawayBeyondBase { .. })
    ));
    assert_eq!(server.latest_remote_state_num(), 0);
    assert_eq!(server.latest_remote_state().held(), b"");
}

#[test]
fn states_held_stay_bounded_when_the_peer_never_throws_away() {
    let now = Instant::now();
    let mut server = pair(now).1;
    let mut forger = Forger::new(now);
    for num in 1..=1200u64 {
        let instruction = Instruction {
            protocol_version: Some(2),
            old_num: Some(0),
            new_num: Some(num),
            ack_num: Some(0),
            throwaway_num: Some(0),
            diff: Some(b"k".to_vec()),
            chaff: Some(Vec::new()),
            extensions: None,
        };
        let datagram = forger.instruction(now, &instruction);
        let _ = server.handle_datagram(now, client_addr(), &datagram);
    }
    assert!(server.remote_states_held() <= mosh_proto::transport::RECEIVED_STATE_CAP + 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_datagrams_change_nothing(
        datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2100), 1..200)
    ) {
        let mut now = Instant::now();
        let (mut client, mut server) = pair(now);
        client.current_state_mut().push(b"before");
        exchange(&mut client, &mut server, &mut now);
        let num = server.latest_remote_state_num();
        let rogue: SocketAddr = "127.0.0.9:1234".parse().unwrap();
        for datagram in &datagrams {
            prop_assert!(server.handle_datagram(now, rogue, datagram).is_err());
        }
        prop_assert_eq!(server.latest_remote_state_num(), num);
        prop_assert_eq!(server.remote_addr(), Some(client_addr()));
        client.current_state_mut().push(b" after");
        exchange(&mut client, &mut server, &mut now);
        prop_assert_eq!(server.latest_remote_state().held(), b"before after");
    }

    #[test]
    fn authenticated_garbage_payloads_never_panic(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..100)
    ) {
        let now = Instant::now();
        let (_, mut server) = pair(now);
        let mut forger = Forger::new(now);
        for payload in &payloads {
            let datagram = forger.seal(now, payload);
            let _ = server.handle_datagram(now, client_addr(), &datagram);
        }
        prop_assert!(server.partial_bytes_held() <= MAX_PARTIAL_MESSAGES * MAX_MESSAGE_LEN);
    }
}
