//! Our `mosh-server` against stock mosh 1.4's, measured in the same run with
//! the same stock client (in tmux) through the same relay: an output flood
//! (`seq 1 5000000`) and an idle period. Prints server CPU time, bytes and
//! datagrams on the wire each way, and peak RSS, with our/stock ratios.
//!
//! Run: `cargo build --release --bins && cargo bench -p mosh-e2e --bench
//! server_vs_stock`. `BENCH_IDLE_SECS` sets the idle period (default 60).
#![allow(
    clippy::print_stdout,
    reason = "a benchmark's report, not a program we ship"
)]

use std::time::{Duration, Instant};

use mosh_e2e::impair::{ImpairmentProxy, Way};
use mosh_e2e::measure::{clock_ticks_per_second, cpu_time, peak_rss_kib, ratio};
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::stock;

const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='bench$ ' exec /bin/sh -i"];

#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    cpu: Duration,
    bytes: u64,
    datagrams: u64,
}

#[derive(Debug)]
struct Run {
    flood: Sample,
    flood_wall: Duration,
    idle: Sample,
    peak_rss_kib: u64,
}

fn traffic(proxy: &ImpairmentProxy) -> (u64, u64) {
    let up = proxy.stats(Way::ToServer);
    let down = proxy.stats(Way::ToClient);
    (
        up.delivered_bytes + down.delivered_bytes,
        up.delivered + down.delivered,
    )
}

fn sample(pid: u32, ticks: u64, proxy: &ImpairmentProxy) -> Sample {
    let (bytes, datagrams) = traffic(proxy);
    Sample {
        cpu: cpu_time(pid, ticks),
        bytes,
        datagrams,
    }
}

fn delta(later: Sample, earlier: Sample) -> Sample {
    Sample {
        cpu: later.cpu.saturating_sub(earlier.cpu),
        bytes: later.bytes - earlier.bytes,
        datagrams: later.datagrams - earlier.datagrams,
    }
}

fn measure(implementation: Implementation, idle: Duration, ticks: u64) -> Run {
    let server = MoshServer::start(implementation, &SHELL).expect("start server");
    let proxy = ImpairmentProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        server.addr(),
        "127.0.0.1".parse().unwrap(),
        1,
    )
    .expect("start relay");
    let client =
        stock::client_in_tmux(proxy.listen_addr(), server.key(), 80, 24).expect("start client");
    client
        .wait_for("bench$", Duration::from_secs(20))
        .expect("prompt");
    let before = sample(server.pid(), ticks, &proxy);
    let started = Instant::now();
    client
        .send_text("seq 1 5000000; echo flood-$((40+2))")
        .unwrap();
    client.send_keys(&["Enter"]).unwrap();
    client
        .wait_for("flood-42", Duration::from_secs(300))
        .expect("flood finished");
    let flood_wall = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let after_flood = sample(server.pid(), ticks, &proxy);
    std::thread::sleep(idle);
    let after_idle = sample(server.pid(), ticks, &proxy);
    Run {
        flood: delta(after_flood, before),
        flood_wall,
        idle: delta(after_idle, after_flood),
        peak_rss_kib: peak_rss_kib(server.pid()),
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let idle = Duration::from_secs(
        std::env::var("BENCH_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let ticks = clock_ticks_per_second();
    let stock_run = measure(Implementation::Stock, idle, ticks);
    let ours = measure(Implementation::Ours, idle, ticks);
    println!("server_vs_stock (flood: seq 1 5000000; idle: {idle:?})");
    println!(
        "{:<28} {:>14} {:>14} {:>8}",
        "metric", "stock", "ours", "ratio"
    );
    let rows: [(&str, f64, f64); 8] = [
        (
            "flood server CPU (s)",
            stock_run.flood.cpu.as_secs_f64(),
            ours.flood.cpu.as_secs_f64(),
        ),
        (
            "flood wall time (s)",
            stock_run.flood_wall.as_secs_f64(),
            ours.flood_wall.as_secs_f64(),
        ),
        (
            "flood bytes on wire",
            stock_run.flood.bytes as f64,
            ours.flood.bytes as f64,
        ),
        (
            "flood datagrams",
            stock_run.flood.datagrams as f64,
            ours.flood.datagrams as f64,
        ),
        (
            "idle server CPU (s)",
            stock_run.idle.cpu.as_secs_f64(),
            ours.idle.cpu.as_secs_f64(),
        ),
        (
            "idle bytes on wire",
            stock_run.idle.bytes as f64,
            ours.idle.bytes as f64,
        ),
        (
            "idle datagrams",
            stock_run.idle.datagrams as f64,
            ours.idle.datagrams as f64,
        ),
        (
            "peak RSS (KiB)",
            stock_run.peak_rss_kib as f64,
            ours.peak_rss_kib as f64,
        ),
    ];
    for (name, stock_value, our_value) in rows {
        println!(
            "{name:<28} {stock_value:>14.3} {our_value:>14.3} {:>8}",
            ratio(our_value, stock_value)
        );
    }
}
