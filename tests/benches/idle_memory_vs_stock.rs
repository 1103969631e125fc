//! The memory of one idle session's server process, ours against stock
//! mosh 1.4's, measured in the same run: stock `mosh-server`, our
//! standalone `mosh-server`, and a `mosh-daemon` worker, each in two
//! states: fresh (a second after `mosh-server new`, no client yet), and
//! attached (a stock `mosh-client`, 80×24 in tmux, has drawn the shell's
//! prompt and then gone quiet for `BENCH_IDLE_SECS`, default 5). The
//! server process alone is measured (resident and proportional set size
//! from `smaps_rollup`; the shell it runs and the daemon are not counted),
//! and what its memory is made of is printed. `BENCH_RUNS` (default 3)
//! rounds, each starting all three afresh; the ratios are of the medians.
//!
//! Run: `cargo build --release --bins && cargo bench -p mosh-e2e --bench
//! idle_memory_vs_stock` (as root, for the daemon).
#![allow(
    clippy::print_stdout,
    reason = "a benchmark's report, not a program we ship"
)]

use std::time::Duration;

use mosh_e2e::daemon::{As, TestDaemon, free_port_range};
use mosh_e2e::measure::{rss_pss_kib, smaps_breakdown, thread_count};
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::stock;

const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='idle$ ' exec /bin/sh -i"];

/// One measured server process.
#[derive(Debug, Clone)]
struct Sample {
    rss_kib: u64,
    pss_kib: u64,
    threads: usize,
    breakdown: Vec<(String, u64, u64)>,
}

fn sample(pid: u32) -> Sample {
    let (rss_kib, pss_kib) = rss_pss_kib(pid);
    Sample {
        rss_kib,
        pss_kib,
        threads: thread_count(pid),
        breakdown: smaps_breakdown(pid),
    }
}

/// Measures `pid` fresh, then connects a stock client to `addr`, waits for
/// the prompt and the idle period, and measures it again.
fn fresh_and_attached(
    addr: std::net::SocketAddr,
    key: &mosh_proto::Base64Key,
    pid: u32,
    idle: Duration,
) -> [Sample; 2] {
    std::thread::sleep(Duration::from_secs(1));
    let fresh = sample(pid);
    let client = stock::client_in_tmux(addr, key, 80, 24).expect("start client");
    client
        .wait_for("idle$", Duration::from_secs(20))
        .expect("prompt");
    std::thread::sleep(idle);
    [fresh, sample(pid)]
}

fn standalone(implementation: Implementation, idle: Duration) -> [Sample; 2] {
    let server = MoshServer::start(implementation, &SHELL).expect("start server");
    fresh_and_attached(server.addr(), server.key(), server.pid(), idle)
}

fn worker(daemon: &TestDaemon, idle: Duration) -> [Sample; 2] {
    let session = daemon.new_session(As::Root, &SHELL);
    let samples = fresh_and_attached(session.addr(), &session.key, session.pid, idle);
    let _ = daemon.moshctl(As::Root, &["kill", "--idle", "0"]);
    samples
}

fn median(samples: &[Sample], field: impl Fn(&Sample) -> u64) -> f64 {
    let mut values: Vec<u64> = samples.iter().map(field).collect();
    values.sort_unstable();
    values[values.len() / 2] as f64
}

fn main() {
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return;
    }
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let idle = Duration::from_secs(number("BENCH_IDLE_SECS", 5));
    let runs = number("BENCH_RUNS", 3).max(1) as usize;
    let daemon =
        TestDaemon::start(free_port_range(2 * runs as u16 + 4), "").expect("start mosh-daemon");
    let names = ["stock mosh-server", "our mosh-server", "daemon worker"];
    // rows[state][implementation]: the samples of every run.
    let mut rows: [[Vec<Sample>; 3]; 2] = Default::default();
    for _ in 0..runs {
        let measured = [
            standalone(Implementation::Stock, idle),
            standalone(Implementation::Ours, idle),
            worker(&daemon, idle),
        ];
        for (which, [fresh, attached]) in measured.into_iter().enumerate() {
            rows[0][which].push(fresh);
            rows[1][which].push(attached);
        }
    }
    println!("one idle session's server process, median of {runs} runs:");
    for (state, row) in ["fresh (no client yet)", "attached, then idle"]
        .iter()
        .zip(&rows)
    {
        println!(" {state}:");
        let stock_rss = median(&row[0], |s| s.rss_kib);
        let stock_pss = median(&row[0], |s| s.pss_kib);
        for (name, samples) in names.iter().zip(row) {
            let (rss, pss) = (
                median(samples, |s| s.rss_kib),
                median(samples, |s| s.pss_kib),
            );
            println!(
                "  {name:<18} RSS {rss:>6.0} KiB ({:.2}x)  PSS {pss:>6.0} KiB ({:.2}x)  threads {}",
                rss / stock_rss,
                pss / stock_pss,
                samples[0].threads
            );
        }
    }
    println!("what it is made of (last run; KiB resident/proportional):");
    for (state, row) in ["fresh", "attached"].iter().zip(&rows) {
        for (name, samples) in names.iter().zip(row) {
            let parts: Vec<String> = samples[samples.len() - 1]
                .breakdown
                .iter()
                .take(8)
                .map(|(what, rss, pss)| format!("{what} {rss}/{pss}"))
                .collect();
            println!("  {state:<8} {name:<18} {}", parts.join(", "));
        }
    }
}
