//! Seals and opens N datagrams of 1,300 plaintext bytes with mosh-proto and
//! prints the throughput in MiB/s; `tests/bench/crypto-vs-openssl` compares
//! it with OpenSSL's AES-128-OCB in the same run.
#![allow(
    clippy::print_stdout,
    reason = "an example's report, not a program we ship"
)]

use std::hint::black_box;
use std::time::Instant;

use mosh_proto::{Base64Key, Direction, Session};

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let key = Base64Key::from_bytes([7; 16]);
    let mut session = Session::new(&key);
    let plaintext = vec![0x5Au8; 1300];
    let started = Instant::now();
    for seq in 0..rounds {
        let datagram = session
            .seal(Direction::ToClient, seq, &plaintext)
            .expect("seal");
        black_box(session.open(black_box(&datagram)).expect("open"));
    }
    let seconds = started.elapsed().as_secs_f64();
    let mebibytes = (rounds * 1300) as f64 / (1024.0 * 1024.0);
    println!("{:.1}", mebibytes / seconds);
}
