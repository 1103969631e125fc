//! What scrollback costs: `seq 1 100000` through our client and our server
//! with scrollback (every line ends up in the local terminal's history),
//! through ours with scrollback off (`mosh-server new --scrollback=0`), and
//! through stock mosh 1.4 (client and server), each behind the same relay
//! in the same run. Prints bytes on the wire against the raw output (what
//! ssh would carry) and against stock, and the server's CPU time against
//! scrollback off.
//!
//! Every setup is measured over the same window: from the command to the
//! moment the pane's scrollback and screen stop changing (the last history
//! line has arrived, or for the others the screen is final), so the server
//! CPU of each covers all the work the flood caused it, history included.
//! CPU time is read from the scheduler's nanosecond counters, since the
//! flood takes only tens of milliseconds of CPU.
//!
//! Run: `cargo build --release --bins && cargo bench -p mosh-e2e --bench
//! scrollback_vs_stock`.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark's report, not a program we ship"
)]

use std::time::{Duration, Instant};

use mosh_e2e::impair::{ImpairmentProxy, Way};
use mosh_e2e::measure::{cpu_time_ns, ratio};
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

/// How long the pane must stay the same to count as settled.
const SETTLED: Duration = Duration::from_secs(3);

struct Run {
    bytes: u64,
    server_cpu: Duration,
    lines: Seen,
}

/// What the pane's scrollback and screen hold of the flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Seen {
    /// Lines that are one of the flood's numbers.
    numbers: u64,
    /// Whether a `[mosh: N lines not kept]` marker is there.
    marker: bool,
}

fn seen(pane: &TmuxSession) -> Seen {
    let text = pane
        .run(["capture-pane", "-p", "-S", "-", "-E", "-"])
        .unwrap_or_default();
    Seen {
        numbers: text
            .lines()
            .filter(|l| l.trim().parse::<u64>().is_ok())
            .count() as u64,
        marker: text.lines().any(|l| l.starts_with("[mosh: ")),
    }
}

/// Waits until what the pane holds stays the same for [`SETTLED`].
fn settle(pane: &TmuxSession) -> Seen {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = seen(pane);
    let mut since = Instant::now();
    while since.elapsed() < SETTLED && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = seen(pane);
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    last
}

fn measure(setup: Setup) -> Run {
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
    let cpu_before = cpu_time_ns(server.pid());
    let bytes_before = bytes(&proxy);
    pane.send_text(&format!("seq 1 {LINES}; echo flood-$((40+2))"))
        .unwrap();
    pane.send_keys(&["Enter"]).unwrap();
    pane.wait_for("flood-42\n", Duration::from_secs(300))
        .expect("flood finished");
    let lines = settle(&pane);
    Run {
        bytes: bytes(&proxy) - bytes_before,
        server_cpu: cpu_time_ns(server.pid()).saturating_sub(cpu_before),
        lines,
    }
}

fn bytes(proxy: &ImpairmentProxy) -> u64 {
    proxy.stats(Way::ToServer).delivered_bytes + proxy.stats(Way::ToClient).delivered_bytes
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let raw: u64 = (1..=LINES).map(|n| n.to_string().len() as u64 + 1).sum();
    let with = measure(Setup::OursWithScrollback);
    let without = measure(Setup::OursWithout);
    let stock_run = measure(Setup::Stock);
    println!("scrollback_vs_stock (seq 1 {LINES}: {raw} bytes of output)");
    println!(
        "lines in the local scrollback and screen: {} with scrollback{}, {} without, {} stock",
        with.lines.numbers,
        if with.lines.marker {
            " (after a \"lines not kept\" marker)"
        } else {
            ""
        },
        without.lines.numbers,
        stock_run.lines.numbers
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
