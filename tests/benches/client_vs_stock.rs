//! Our `mosh-client` against stock mosh 1.4's, measured in the same run
//! against the same stock `mosh-server` through the same relay:
//!
//! * keystroke-to-screen latency (from tmux `send-keys` returning to the
//!   character appearing in `capture-pane`), with predictions always on and
//!   off, at 100 ms and 600 ms round-trip time (median of a few keys);
//! * client CPU time (utime + stime from /proc) during an output flood
//!   (`seq 1 5000000`), and its wall time.
//!
//! Run: `cargo build --release --bins && cargo bench -p mosh-e2e --bench
//! client_vs_stock`.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark's report, not a program we ship"
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mosh_e2e::impair::{Impairment, ImpairmentProxy};
use mosh_e2e::measure::{clock_ticks_per_second, cpu_time, ratio};
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::tmux::TmuxSession;
use mosh_e2e::{our_program, ours, stock};

const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='bench$ ' exec /bin/sh -i"];
/// Keys typed per latency measurement.
const KEYS: &str = "abcdefg";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Stock,
    Ours,
}

impl Client {
    fn program(self) -> PathBuf {
        match self {
            Client::Stock => stock::client_program().expect("stock mosh-client"),
            Client::Ours => our_program("mosh-client").expect("our mosh-client"),
        }
    }
}

struct Setup {
    _server: MoshServer,
    proxy: ImpairmentProxy,
    pane: TmuxSession,
}

fn start(client: Client, rtt: Duration, prediction: &str) -> Setup {
    let server = MoshServer::start(Implementation::Stock, &SHELL).expect("start server");
    let proxy = ImpairmentProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        server.addr(),
        "127.0.0.1".parse().unwrap(),
        1,
    )
    .expect("start relay");
    proxy.set_both(Impairment {
        delay: rtt / 2,
        ..Impairment::default()
    });
    let program = client.program();
    let addr = proxy.listen_addr();
    let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
    let pane = ours::client_command_in_tmux(
        &[program.to_str().unwrap(), &ip, &port],
        server.key(),
        80,
        24,
        &[("MOSH_PREDICTION_DISPLAY", prediction)],
    )
    .expect("start client");
    pane.wait_for("bench$", Duration::from_secs(30))
        .expect("prompt");
    Setup {
        _server: server,
        proxy,
        pane,
    }
}

/// The prompt line's text.
fn prompt(pane: &TmuxSession) -> String {
    pane.capture()
        .unwrap()
        .lines()
        .rev()
        .find(|line| line.starts_with("bench$"))
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

fn wait_prompt(pane: &TmuxSession, text: &str) -> Duration {
    let start = Instant::now();
    while prompt(pane) != text {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "prompt never showed {text:?}"
        );
    }
    start.elapsed()
}

/// Median keystroke-to-screen latency.
fn latency(client: Client, rtt: Duration, prediction: &str) -> Duration {
    let setup = start(client, rtt, prediction);
    let pane = &setup.pane;
    pane.send_text("x").unwrap();
    wait_prompt(pane, "bench$ x");
    std::thread::sleep(rtt * 3 + Duration::from_millis(500));
    let mut typed = String::from("bench$ x");
    let mut samples = Vec::new();
    for key in KEYS.chars() {
        typed.push(key);
        pane.send_text(&key.to_string()).unwrap();
        samples.push(wait_prompt(pane, &typed));
        std::thread::sleep(rtt * 2 + Duration::from_millis(100));
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// Client CPU time and wall time of an output flood.
fn flood(client: Client, ticks: u64) -> (Duration, Duration, u64) {
    let setup = start(client, Duration::ZERO, "adaptive");
    let pane = &setup.pane;
    let pid = pane.command_pid().expect("client pid");
    let before = cpu_time(pid, ticks);
    let started = Instant::now();
    pane.send_text("seq 1 5000000; echo flood-$((40+2))")
        .unwrap();
    pane.send_keys(&["Enter"]).unwrap();
    pane.wait_for("flood-42", Duration::from_secs(300))
        .expect("flood finished");
    let wall = started.elapsed();
    let cpu = cpu_time(pid, ticks).saturating_sub(before);
    let bytes = setup
        .proxy
        .stats(mosh_e2e::impair::Way::ToClient)
        .delivered_bytes;
    (cpu, wall, bytes)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let ticks = clock_ticks_per_second();
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    for rtt_ms in [100, 600] {
        let rtt = Duration::from_millis(rtt_ms);
        for prediction in ["always", "never"] {
            let stock_value = latency(Client::Stock, rtt, prediction);
            let our_value = latency(Client::Ours, rtt, prediction);
            rows.push((
                format!("key→screen ms, {rtt_ms} ms RTT, {prediction}"),
                stock_value.as_secs_f64() * 1000.0,
                our_value.as_secs_f64() * 1000.0,
            ));
        }
    }
    let (stock_cpu, stock_wall, stock_bytes) = flood(Client::Stock, ticks);
    let (our_cpu, our_wall, our_bytes) = flood(Client::Ours, ticks);
    rows.push((
        "flood client CPU (s)".to_owned(),
        stock_cpu.as_secs_f64(),
        our_cpu.as_secs_f64(),
    ));
    rows.push((
        "flood wall time (s)".to_owned(),
        stock_wall.as_secs_f64(),
        our_wall.as_secs_f64(),
    ));
    rows.push((
        "flood bytes to client".to_owned(),
        stock_bytes as f64,
        our_bytes as f64,
    ));
    println!("client_vs_stock (stock mosh-server; flood: seq 1 5000000)");
    println!(
        "{:<40} {:>12} {:>12} {:>8}",
        "metric", "stock", "ours", "ratio"
    );
    for (name, stock_value, our_value) in rows {
        println!(
            "{name:<40} {stock_value:>12.3} {our_value:>12.3} {:>8}",
            ratio(our_value, stock_value)
        );
    }
}
