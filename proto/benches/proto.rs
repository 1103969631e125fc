//! Benchmarks of the wire protocol: sealing and opening full-size datagrams
//! under AES-128-OCB and the native AES-256-GCM (through `Session`, and as
//! the bare RustCrypto cipher in place, the floor of our wrapper's cost), the
//! native cipher's key exchange, and one SSP round trip between two
//! transports (keystroke out, echo back, acks).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aes::Aes128;
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mosh_proto::cipher::KeyShare;
use mosh_proto::{
    Base64Key, Direction, Role, Session, State, StateError, Transport, TransportConfig,
};
use ocb3::Ocb3;

/// Bytes of the datagram plaintext the issue asks to measure.
const DATAGRAM: usize = 1300;

fn seal_open(c: &mut Criterion) {
    let key = Base64Key::random().unwrap();
    let mut session = Session::new(&key);
    let plaintext = vec![0x5Au8; DATAGRAM];
    let mut group = c.benchmark_group("crypto");
    group.throughput(Throughput::Bytes(DATAGRAM as u64));
    let mut seq = 0u64;
    group.bench_function("seal+open 1300 B", |b| {
        b.iter(|| {
            seq += 1;
            let datagram = session.seal(Direction::ToClient, seq, &plaintext).unwrap();
            black_box(session.open(black_box(&datagram)).unwrap());
        })
    });
    let mut gcm = Session::aes256_gcm(&[7; 32]);
    let mut seq = 0u64;
    group.bench_function("aes-256-gcm seal+open 1300 B", |b| {
        b.iter(|| {
            seq += 1;
            let datagram = gcm.seal(Direction::ToClient, seq, &plaintext).unwrap();
            black_box(gcm.open(black_box(&datagram)).unwrap());
        })
    });
    bare_seal_open(
        &mut group,
        "bare ocb3 crate seal+open 1300 B",
        &Ocb3::<Aes128>::new(&Array::from([7; 16])),
    );
    bare_seal_open(
        &mut group,
        "bare aes-gcm crate seal+open 1300 B",
        &Aes256Gcm::new(&Array::from([7; 32])),
    );
    group.finish();
}

/// Seals and opens one 1,300-byte buffer in place with `cipher` itself,
/// mosh's nonce layout, no associated data.
fn bare_seal_open<C: AeadInOut<NonceSize = U12>>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    cipher: &C,
) {
    let mut buffer = vec![0x5Au8; DATAGRAM];
    let mut seq = 0u64;
    group.bench_function(name, |b| {
        b.iter(|| {
            seq += 1;
            let mut nonce = Array::default();
            nonce[4..].copy_from_slice(&Direction::ToClient.nonce_value(seq).to_be_bytes());
            let tag = cipher
                .encrypt_inout_detached(&nonce, &[], black_box(buffer.as_mut_slice()).into())
                .unwrap();
            cipher
                .decrypt_inout_detached(&nonce, &[], black_box(buffer.as_mut_slice()).into(), &tag)
                .unwrap();
        })
    });
}

/// One whole X25519 + HKDF exchange, both ends: two key pairs from the OS
/// random source, two agreements, two derivations (each end's CPU is half).
fn handshake(c: &mut Criterion) {
    let bootstrap = Base64Key::from_bytes([7; 16]);
    c.bench_function("native cipher key exchange (both ends)", |b| {
        b.iter(|| {
            let client = KeyShare::random().unwrap();
            let server = KeyShare::random().unwrap();
            let (client_public, server_public) = (*client.public(), *server.public());
            let ours = client
                .agree(Some(&server_public), Role::Client, 1, &bootstrap)
                .unwrap();
            let theirs = server
                .agree(Some(&client_public), Role::Server, 1, &bootstrap)
                .unwrap();
            black_box((ours, theirs));
        })
    });
}

/// A growing byte log, the shape of the user stream.
#[derive(Clone, Default)]
struct Log(Vec<u8>);

impl PartialEq for Log {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
    }
}

impl State for Log {
    fn diff_from(&self, older: &Self) -> Vec<u8> {
        self.0[older.0.len()..].to_vec()
    }

    fn apply(&mut self, diff: &[u8]) -> Result<(), StateError> {
        self.0.extend_from_slice(diff);
        Ok(())
    }
}

fn round_trip(c: &mut Criterion) {
    let key = Base64Key::random().unwrap();
    let server_addr: SocketAddr = "127.0.0.1:60001".parse().unwrap();
    let client_addr: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let start = Instant::now();
    let new_pair = || {
        let client: Transport<Log, Log> = Transport::new(
            TransportConfig::client(server_addr),
            &key,
            Log::default(),
            Log::default(),
            start,
        )
        .unwrap();
        let server: Transport<Log, Log> = Transport::new(
            TransportConfig::server(),
            &key,
            Log::default(),
            Log::default(),
            start,
        )
        .unwrap();
        (client, server)
    };
    let (mut client, mut server) = new_pair();
    let mut now = start;
    let mut turns = 0u64;
    c.bench_function("transport round trip (keystroke, echo, acks)", |b| {
        b.iter(|| {
            turns += 1;
            if turns.is_multiple_of(10_000) {
                (client, server) = new_pair();
                now = start;
            }
            now += Duration::from_millis(300);
            client.current_state_mut().0.push(b'x');
            while let Some(t) = client.poll_transmit(now) {
                server
                    .handle_datagram(now, client_addr, &t.contents)
                    .unwrap();
            }
            server.current_state_mut().0.push(b'x');
            now += Duration::from_millis(10);
            while let Some(t) = server.poll_transmit(now) {
                client
                    .handle_datagram(now, server_addr, &t.contents)
                    .unwrap();
            }
            now += Duration::from_millis(100);
            while let Some(t) = client.poll_transmit(now) {
                server
                    .handle_datagram(now, client_addr, &t.contents)
                    .unwrap();
            }
            black_box(server.latest_remote_state_num());
        })
    });
}

criterion_group!(benches, seal_open, handshake, round_trip);
criterion_main!(benches);
