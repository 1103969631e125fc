//! What scrollback costs: `seq 1 100000` through our client and our server
//! with scrollback (every line ends up in the local terminal's history),
//! through ours with scrollback off (`mosh-server new --scrollback=0`), and
//! through stock mosh 1.4 (client and server), each behind the same relay
//! in the same run. Prints bytes on the wire against the raw output (what
//! ssh would carry) and against stock, and the server's CPU time against
//! scrollback off.
//!
//! Run: `cargo build --release --bins && cargo bench -p mosh-e2e --bench
//! scrollback_vs_stock`.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark's report, not a program we ship"
)]

use std::time::{Duration, Instant};

use mosh_e2e::impair::{ImpairmentProxy, Way};
use mosh_e2e::measure::{clock_ticks_per_second, cpu_time, ratio};
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::tmux::TmuxSession;
use mosh_e2e::{ours, stock};

const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='bench$ ' exec /bin/sh -i"];
const LINES: u64 = 100_000;

/// Which pair runs the flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    OursWithScrollback,
    OursWithout,
    Stock,
}

struct Run {
    bytes: u64,
    server_cpu: Duration,
    history_lines: u64,
}

fn history_numbers(pane: &TmuxSession) -> u64 {
    pane.run(["capture-pane", "-p", "-S", "-", "-E", "-"])
        .unwrap_or_default()
        .lines()
        .filter(|l| l.trim().parse::<u64>().is_ok())
        .count() as u64
}

fn measure(setup: Setup, ticks: u64) -> Run {
    let (implementation, options): (Implementation, &[&str]) = match setup {
        Setup::OursWithScrollback => (Implementation::Ours, &["-p", "0"]),
        Setup::OursWithout => (Implementation::Ours, &["-p", "0", "--scrollback=0"]),
        Setup::Stock => (Implementation::Stock, &["-p", "0"]),
    };
    let server =
        MoshServer::start_with(implementation, options, &SHELL, &[]).expect("start the server");
    let proxy = ImpairmentProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        server.addr(),
        "127.0.0.1".parse().unwrap(),
        1,
    )
    .expect("start the relay");
    let pane = if setup == Setup::Stock {
        stock::client_in_tmux(proxy.listen_addr(), server.key(), 80, 24)
    } else {
        ours::client_in_tmux(proxy.listen_addr(), server.key(), 80, 24, &[])
    }
    .expect("start the client");
    pane.wait_for("bench$", Duration::from_secs(20))
        .expect("prompt");
    let cpu_before = cpu_time(server.pid(), ticks);
    let bytes_before = bytes(&proxy);
    pane.send_text(&format!("seq 1 {LINES}; echo flood-$((40+2))"))
        .unwrap();
    pane.send_keys(&["Enter"]).unwrap();
    pane.wait_for("flood-42\n", Duration::from_secs(300))
        .expect("flood finished");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = history_numbers(&pane);
    while setup == Setup::OursWithScrollback && seen < LINES && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        seen = history_numbers(&pane);
    }
    std::thread::sleep(Duration::from_secs(1));
    Run {
        bytes: bytes(&proxy) - bytes_before,
        server_cpu: cpu_time(server.pid(), ticks).saturating_sub(cpu_before),
        history_lines: seen,
    }
}

fn bytes(proxy: &ImpairmentProxy) -> u64 {
    proxy.stats(Way::ToServer).delivered_bytes + proxy.stats(Way::ToClient).delivered_bytes
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let ticks = clock_ticks_per_second();
    let raw: u64 = (1..=LINES).map(|n| n.to_string().len() as u64 + 1).sum();
    let with = measure(Setup::OursWithScrollback, ticks);
    let without = measure(Setup::OursWithout, ticks);
    let stock_run = measure(Setup::Stock, ticks);
    println!("scrollback_vs_stock (seq 1 {LINES}: {raw} bytes of output)");
    println!(
        "lines in the local scrollback and screen: {} with scrollback, {} without, {} stock",
        with.history_lines, without.history_lines, stock_run.history_lines
    );
    println!("{:<34} {:>12} {:>8}", "metric", "value", "ratio");
    let rows = [
        (
            "wire bytes, scrollback / raw",
            with.bytes as f64,
            raw as f64,
        ),
        (
            "wire bytes, scrollback / stock",
            with.bytes as f64,
            stock_run.bytes as f64,
        ),
        (
            "wire bytes, no scrollback / stock",
            without.bytes as f64,
            stock_run.bytes as f64,
        ),
        (
            "server CPU s, scrollback / off",
            with.server_cpu.as_secs_f64(),
            without.server_cpu.as_secs_f64(),
        ),
        (
            "server CPU s, off / stock",
            without.server_cpu.as_secs_f64(),
            stock_run.server_cpu.as_secs_f64(),
        ),
    ];
    for (name, ours, base) in rows {
        println!("{name:<34} {ours:>12.3} {:>8}", ratio(ours, base));
    }
}
