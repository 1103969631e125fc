//! Seals and opens N datagrams of 1,300 plaintext bytes and prints two
//! throughputs in MiB/s of CPU time, `SESSION CRATE`:
//! `seal_open_throughput [ocb|gcm] [N]` (default `ocb`: mosh's AES-128-OCB;
//! `gcm`: the native AES-256-GCM). SESSION is mosh-proto's `Session::seal`
//! and `Session::open`, the code every session runs (nonce building, the
//! datagram's allocation and copies included); CRATE is the bare RustCrypto
//! cipher sealing and opening one buffer in place, the floor our wrapper
//! adds to. Time is the thread's CPU time (`/proc/thread-self/schedstat`),
//! so other load on the machine does not count against either.
//! `tests/bench/crypto-vs-openssl` compares both with OpenSSL in the same
//! run.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example's report, not a program we ship"
)]

use std::hint::black_box;
use std::process::ExitCode;

use aes::Aes128;
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::{AeadInOut, KeyInit};
use mosh_proto::{Base64Key, Direction, Session};
use ocb3::Ocb3;

const PLAINTEXT_LEN: usize = 1300;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let suite = match args.peek().map(String::as_str) {
        Some("ocb" | "gcm") => args.next().unwrap_or_default(),
        _ => "ocb".to_owned(),
    };
    let rounds: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let gcm = suite == "gcm";
    let session = measure(rounds, |rounds| through_session(gcm, rounds));
    let bare = measure(rounds, |rounds| {
        if gcm {
            through_crate(&Aes256Gcm::new(&black_box(Array::from([7; 32]))), rounds)
        } else {
            through_crate(
                &Ocb3::<Aes128>::new(&black_box(Array::from([7; 16]))),
                rounds,
            )
        }
    });
    match (session, bare) {
        (Ok(session), Ok(bare)) => {
            println!("{session:.1} {bare:.1}");
            ExitCode::SUCCESS
        }
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("seal_open_throughput: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `work` for a tenth of `rounds` to warm up, then for `rounds`, and
/// returns MiB/s of plaintext per second of this thread's CPU time.
fn measure(rounds: u64, work: impl Fn(u64) -> Result<(), String>) -> Result<f64, String> {
    work(rounds / 10)?;
    let started = cpu_seconds()?;
    work(rounds)?;
    let seconds = cpu_seconds()? - started;
    let mebibytes = (rounds * PLAINTEXT_LEN as u64) as f64 / (1024.0 * 1024.0);
    Ok(mebibytes / seconds)
}

/// Seconds this thread has run on a CPU.
fn cpu_seconds() -> Result<f64, String> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
        .map_err(|error| format!("reading /proc/thread-self/schedstat: {error}"))?;
    let nanoseconds: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| format!("unexpected /proc/thread-self/schedstat: {stat:?}"))?;
    Ok(nanoseconds as f64 / 1e9)
}

/// Seals and opens through mosh-proto's `Session`, as a session does.
fn through_session(gcm: bool, rounds: u64) -> Result<(), String> {
    let mut session = if gcm {
        Session::aes256_gcm(&black_box([7; 32]))
    } else {
        Session::new(&Base64Key::from_bytes(black_box([7; 16])))
    };
    let plaintext = vec![0x5Au8; PLAINTEXT_LEN];
    for seq in 0..rounds {
        let datagram = session
            .seal(Direction::ToClient, seq, &plaintext)
            .map_err(|error| format!("sealing failed: {error}"))?;
        session
            .open(black_box(&datagram))
            .map_err(|error| format!("opening failed: {error}"))?;
    }
    Ok(())
}

/// Seals and opens one buffer in place with the bare RustCrypto cipher, with
/// mosh's nonce layout and no associated data. The caller hides the key from
/// the optimiser, which could otherwise fold the key schedule into the loop.
fn through_crate<C>(cipher: &C, rounds: u64) -> Result<(), String>
where
    C: AeadInOut<NonceSize = aes_gcm::aead::consts::U12>,
{
    let mut buffer = vec![0x5Au8; PLAINTEXT_LEN];
    for seq in 0..rounds {
        let mut nonce = Array::default();
        nonce[4..].copy_from_slice(&Direction::ToClient.nonce_value(seq).to_be_bytes());
        let tag = cipher
            .encrypt_inout_detached(&nonce, &[], black_box(buffer.as_mut_slice()).into())
            .map_err(|_| "sealing failed".to_owned())?;
        cipher
            .decrypt_inout_detached(&nonce, &[], black_box(buffer.as_mut_slice()).into(), &tag)
            .map_err(|_| "opening failed".to_owned())?;
    }
    Ok(())
}
