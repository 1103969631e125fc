//! Reattaching against starting afresh, measured in the same run: the wall
//! time from running `mosh-server attach --force ID` (through `mosh-daemon`)
//! until a new stock `mosh-client` shows the session's whole screen, against
//! the time from running stock mosh 1.4's `mosh-server new` until a stock
//! client shows the same screen of a new session; p50 and p99 over
//! `BENCH_RUNS` runs each (default 50), interleaved. Both screens are drawn
//! by the same command, whose last row is a marker; each client runs in a
//! fresh 80x24 tmux pane, polled every 5 ms.
//!
//! Run as root: `cargo build --release --bins && cargo bench -p mosh-e2e
//! --bench attach_vs_stock`.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark's report, not a program we ship"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mosh_e2e::daemon::{As, Connect, TestDaemon, free_port_range};
use mosh_e2e::tmux::TmuxSession;
use mosh_e2e::{UTF8_LOCALE, process, stock};

/// Fills the screen: 23 numbered rows, then the marker on the last one.
const COMMAND: [&str; 3] = [
    "/bin/sh",
    "-c",
    "i=1; while [ $i -le 23 ]; do echo row-$i; i=$((i+1)); done; printf END-OF-SCREEN; exec sleep 600",
];
/// What the last row shows once the whole screen is there.
const MARKER: &str = "END-OF-SCREEN";
/// How long one run may take.
const TIMEOUT: Duration = Duration::from_secs(20);

fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

/// Starts a stock client for `session` and waits until it shows the whole
/// screen; returns the client (to be dropped by the caller).
fn show(session: &Connect) -> TmuxSession {
    let client = stock::client_in_tmux(session.addr(), &session.key, 80, 24)
        .expect("start stock mosh-client");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let screen = client.capture().unwrap_or_default();
        if screen.contains(MARKER) && screen.contains("row-1\n") {
            return client;
        }
        assert!(Instant::now() < deadline, "no full screen:\n{screen}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Ends a client without its shutdown handshake (a killed app), which
/// would end the session too.
fn vanish(client: TmuxSession) {
    if let Ok(pid) = client.command_pid() {
        let _ = Command::new("kill")
            .args(["-s", "KILL", &pid.to_string()])
            .status();
        let _ = client.wait_for_exit(TIMEOUT);
    }
}

fn stock_once() -> Duration {
    let program = stock::server_program().expect("stock mosh-server");
    let began = Instant::now();
    let output = Command::new(&program)
        .args(["new", "-p", "0", "--"])
        .args(COMMAND)
        .env("LANG", UTF8_LOCALE)
        .env("LC_ALL", UTF8_LOCALE)
        .stdin(Stdio::null())
        .output()
        .expect("stock mosh-server");
    let session = Connect::parse(&output).expect("stock connect line");
    let client = show(&session);
    let elapsed = began.elapsed();
    vanish(client);
    process::terminate(session.pid, "mosh-server", Duration::from_secs(2));
    elapsed
}

fn attach_once(daemon: &TestDaemon, id: &str) -> Duration {
    let began = Instant::now();
    let output = daemon.attach(As::Root, &["--force", id]);
    let session = Connect::parse(&output).unwrap_or_else(|| {
        panic!(
            "mosh-server attach: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let client = show(&session);
    let elapsed = began.elapsed();
    vanish(client);
    elapsed
}

fn main() {
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return;
    }
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50usize);
    let daemon =
        TestDaemon::start(free_port_range(5), "attach_burst = 100000").expect("start mosh-daemon");
    let session = daemon.new_session(As::Root, &COMMAND);
    vanish(show(&session));
    let id = daemon.list(As::Root)[0].0.clone();
    let mut stock_times = Vec::with_capacity(runs);
    let mut attach_times = Vec::with_capacity(runs);
    for _ in 0..runs {
        stock_times.push(stock_once());
        attach_times.push(attach_once(&daemon, &id));
    }
    let (stock_p50, stock_p99) = percentiles(stock_times);
    let (attach_p50, attach_p99) = percentiles(attach_times);
    println!("to the full screen on a new stock mosh-client, over {runs} runs:");
    for (name, p50, p99) in [
        ("stock mosh-server new", stock_p50, stock_p99),
        ("mosh-server attach", attach_p50, attach_p99),
    ] {
        println!(
            "  {name:<22} p50 {:>7.2} ms  p99 {:>7.2} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    println!(
        "  ratios (attach/stock new): p50 {:.2}  p99 {:.2}",
        attach_p50.as_secs_f64() / stock_p50.as_secs_f64(),
        attach_p99.as_secs_f64() / stock_p99.as_secs_f64()
    );
}
