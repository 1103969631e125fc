//! Arbitrary bytes as a received datagram: size checks, authentication,
//! direction and timestamp parsing must never panic.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use mosh_proto::connection::Connection;
use mosh_proto::packet::Packet;
use mosh_proto::{Base64Key, Role};

fuzz_target!(|data: &[u8]| {
    let key = Base64Key::from_bytes([7; 16]);
    let mut server = Connection::new(Role::Server, &key, Instant::now(), None);
    let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let _ = server.open(Instant::now(), from, data);
    let _ = Packet::parse(data);
});
