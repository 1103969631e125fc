//! Session setup through `mosh-daemon` against stock mosh 1.4's
//! `mosh-server new`, measured in the same run: the wall time of each
//! `mosh-server new` (p50/p99 over `BENCH_RUNS`, default 200), then the
//! memory of all those sessions idling without a client (proportional set
//! size of each session's whole process tree: a stock server and the shell
//! process it forks at once; our worker (which starts the shell on first
//! contact) plus the daemon's growth, per session). A third row runs the
//! daemon in a network namespace whose nftables input policy is drop, with
//! the nftables backend opening each session's port before it is printed
//! through libnftables; a fourth the same with libnftables unloadable, so
//! that every change runs the `nft` program.
//!
//! Run as root: `cargo build --release --bins && cargo bench -p mosh-e2e
//! --bench daemon_vs_stock`.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark's report, not a program we ship"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mosh_e2e::daemon::{As, Connect, TestDaemon, free_port_range};
use mosh_e2e::measure::{pss_kib, tree_pss_kib};
use mosh_e2e::netns::{NetPair, WithoutLibnftables};
use mosh_e2e::{UTF8_LOCALE, our_program, process, stock};

/// The idle session's command (never started: no client comes).
const COMMAND: [&str; 2] = ["/bin/sleep", "600"];

#[derive(Debug)]
struct Measured {
    p50: Duration,
    p99: Duration,
    pss_kib_per_session: f64,
}

fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

fn stock_run(runs: usize) -> Measured {
    let program = stock::server_program().expect("stock mosh-server");
    let mut times = Vec::with_capacity(runs);
    let mut pids = Vec::with_capacity(runs);
    for _ in 0..runs {
        let began = Instant::now();
        let output = Command::new(&program)
            .args(["new", "-p", "0", "--"])
            .args(COMMAND)
            .env("LANG", UTF8_LOCALE)
            .env("LC_ALL", UTF8_LOCALE)
            .stdin(Stdio::null())
            .output()
            .expect("stock mosh-server");
        times.push(began.elapsed());
        pids.push(Connect::parse(&output).expect("stock connect line").pid);
    }
    std::thread::sleep(Duration::from_secs(1));
    let total: u64 = pids.iter().map(|&pid| tree_pss_kib(pid)).sum();
    for pid in pids {
        process::terminate(pid, "mosh-server", Duration::from_secs(2));
    }
    let (p50, p99) = percentiles(times);
    Measured {
        p50,
        p99,
        pss_kib_per_session: total as f64 / runs as f64,
    }
}

/// The daemon's configuration for `runs` sessions of one user.
fn limits(runs: usize) -> String {
    format!("max_sessions_per_user = {runs}\nmax_sessions = {runs}\n")
}

fn daemon_run(daemon: &TestDaemon, runs: usize) -> Measured {
    let program = our_program("mosh-server").expect("our mosh-server");
    let socket = daemon.socket();
    std::thread::sleep(Duration::from_millis(500));
    let daemon_before = pss_kib(daemon.pid());
    let mut times = Vec::with_capacity(runs);
    let mut pids = Vec::with_capacity(runs);
    for _ in 0..runs {
        let began = Instant::now();
        let output = Command::new(&program)
            .arg("new")
            .arg("--")
            .args(COMMAND)
            .env("MOSH_DAEMON_SOCKET", &socket)
            .env("LANG", UTF8_LOCALE)
            .env("LC_ALL", UTF8_LOCALE)
            .stdin(Stdio::null())
            .output()
            .expect("our mosh-server");
        times.push(began.elapsed());
        pids.push(Connect::parse(&output).expect("our connect line").pid);
    }
    std::thread::sleep(Duration::from_secs(1));
    let workers: u64 = pids.iter().map(|&pid| tree_pss_kib(pid)).sum();
    let growth = pss_kib(daemon.pid()).saturating_sub(daemon_before);
    let _ = daemon.moshctl(As::Root, &["kill", "--idle", "0"]);
    let (p50, p99) = percentiles(times);
    Measured {
        p50,
        p99,
        pss_kib_per_session: (workers + growth) as f64 / runs as f64,
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return;
    }
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200usize);
    let stock = stock_run(runs);
    let ours = {
        let daemon = TestDaemon::start(free_port_range(runs as u16 + 5), &limits(runs))
            .expect("start mosh-daemon");
        daemon_run(&daemon, runs)
    };
    // The same in a namespace whose input policy is drop, the nftables
    // backend opening each session's port before `mosh-server new` prints it:
    // through libnftables, then through the `nft` program.
    let pair = NetPair::new().expect("network namespaces");
    NetPair::load_drop_policy(&pair.server).expect("drop policy");
    let firewalled = |wrapper: &[&str], env: &[(&str, &str)]| {
        let daemon = TestDaemon::start_wrapped(
            wrapper,
            (60000, 60000 + runs as u16 + 5),
            &format!("{}[firewall]\nbackend = \"nftables\"", limits(runs)),
            env,
        )
        .expect("start mosh-daemon in a namespace");
        daemon_run(&daemon, runs)
    };
    let with_nftables = firewalled(&["ip", "netns", "exec", &pair.server], &[]);
    let without_libnftables =
        WithoutLibnftables::new(&pair.server).expect("nft without the library");
    let with_nft_program = firewalled(
        &without_libnftables.wrapper(),
        &[("PATH", &without_libnftables.path())],
    );
    println!("session setup over {runs} runs, and memory per idle session (PSS):");
    for (name, m) in [
        ("stock mosh-server", &stock),
        ("mosh-daemon", &ours),
        ("mosh-daemon + nft", &with_nftables),
        ("  nft program", &with_nft_program),
    ] {
        println!(
            "  {name:<18} p50 {:>7.2} ms  p99 {:>7.2} ms  {:>7.0} KiB/session",
            m.p50.as_secs_f64() * 1e3,
            m.p99.as_secs_f64() * 1e3,
            m.pss_kib_per_session
        );
    }
    for (name, m) in [
        ("ours", &ours),
        ("ours + nft", &with_nftables),
        ("ours + nft program", &with_nft_program),
    ] {
        println!(
            "  ratios ({name}/stock): p50 {:.2}  p99 {:.2}  memory {:.2}",
            m.p50.as_secs_f64() / stock.p50.as_secs_f64(),
            m.p99.as_secs_f64() / stock.p99.as_secs_f64(),
            m.pss_kib_per_session / stock.pss_kib_per_session
        );
    }
}
