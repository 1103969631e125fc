//! Seals and opens N datagrams of 1,300 plaintext bytes with mosh-proto and
//! prints the throughput in MiB/s: `seal_open_throughput [ocb|gcm] [N]`
//! (default `ocb`: mosh's AES-128-OCB; `gcm`: the native AES-256-GCM).
//! `tests/bench/crypto-vs-openssl` compares both with OpenSSL in the same
//! run.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example's report, not a program we ship"
)]

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use mosh_proto::{Base64Key, Direction, Session};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let suite = match args.peek().map(String::as_str) {
        Some("ocb" | "gcm") => args.next().unwrap_or_default(),
        _ => "ocb".to_owned(),
    };
    let rounds: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let mut session = match suite.as_str() {
        "gcm" => Session::aes256_gcm(&[7; 32]),
        _ => Session::new(&Base64Key::from_bytes([7; 16])),
    };
    let plaintext = vec![0x5Au8; 1300];
    let started = Instant::now();
    for seq in 0..rounds {
        let Ok(datagram) = session.seal(Direction::ToClient, seq, &plaintext) else {
            eprintln!("seal_open_throughput: sealing failed");
            return ExitCode::FAILURE;
        };
        if session.open(black_box(&datagram)).is_err() {
            eprintln!("seal_open_throughput: opening failed");
            return ExitCode::FAILURE;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let mebibytes = (rounds * 1300) as f64 / (1024.0 * 1024.0);
    println!("{:.1}", mebibytes / seconds);
    ExitCode::SUCCESS
}
