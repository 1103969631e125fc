//! The input as an authenticated peer's instruction: sealed with the session
//! key (the fuzzer cannot forge tags) and handed to a server transport, so
//! zlib, protobuf decoding and SSP state handling all see hostile bytes. The
//! first byte picks whether the input is compressed here or taken as already
//! compressed.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use mosh_proto::connection::Connection;
use mosh_proto::fragment::{self, Fragmenter};
use mosh_proto::{Base64Key, Role, State, StateError, Transport, TransportConfig};

#[derive(Clone, PartialEq, Default)]
struct Bytes(Vec<u8>);

impl State for Bytes {
    fn diff_from(&self, older: &Self) -> Vec<u8> {
        self.0[older.0.len().min(self.0.len())..].to_vec()
    }

    fn apply(&mut self, diff: &[u8]) -> Result<(), StateError> {
        if self.0.len() + diff.len() > 1 << 16 {
            return Err(StateError("too long".into()));
        }
        self.0.extend_from_slice(diff);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let key = Base64Key::from_bytes([9; 16]);
    let server_addr: SocketAddr = "127.0.0.1:60001".parse().unwrap();
    let client_addr: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let mut server: Transport<Bytes, Bytes> = Transport::new(
        TransportConfig::server().with_chaff_seed(0),
        &key,
        Bytes::default(),
        Bytes::default(),
        now,
    )
    .unwrap();
    let mut forger = Connection::new(Role::Client, &key, now, Some(server_addr));
    let compressed = if mode & 1 == 0 {
        fragment::compress(body)
    } else {
        body.to_vec()
    };
    for piece in Fragmenter::default().fragment(&compressed, 1000) {
        let datagram = forger.seal(now, &piece.to_bytes()).unwrap();
        let _ = server.handle_datagram(now, client_addr, &datagram);
    }
    while server.poll_transmit(now).is_some() {}
});
