//! A lossy soak: 200 sessions of `/bin/sh` through one `mosh-daemon`, each
//! behind its own impairment proxy (20% loss each way, 50 ms each way, so
//! 100 ms round trips), each typing a key every 200 ms with the load
//! generator checking every echo, for `--minutes N` (or `BENCH_MINUTES`;
//! 10 by default). Reports keys lost or garbled (reordered), the echo
//! latency, the resident memory and open descriptors of the daemon and of
//! all workers at minute 2 and at the end, and datagrams and CPU per
//! session.
//!
//! Run as root: `cargo build --release --bins && cargo bench -p mosh-e2e
//! --bench daemon_soak -- --minutes 10`. `BENCH_SESSIONS` (200) changes
//! the number of sessions.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark's report, not a program we ship"
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mosh_e2e::daemon::{As, TestDaemon, TestUser, free_port_range};
use mosh_e2e::impair::{Impairment, ImpairmentProxy, Way};
use mosh_e2e::loadgen::{Behaviour, LoadGen, Options, SessionSpec, summary};
use mosh_e2e::measure::{clock_ticks_per_second, cpu_time, open_fds, rss_kib};

fn minutes() -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == "--minutes")
        .and_then(|at| args.get(at + 1))
        .cloned()
        .or_else(|| std::env::var("BENCH_MINUTES").ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(10.0)
}

/// Resident memory (KiB) and open descriptors of the daemon and of all
/// the workers.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    daemon_rss: u64,
    daemon_fds: u64,
    workers_rss: u64,
    workers_fds: u64,
}

fn footprint(daemon: u32, workers: &[u32]) -> Footprint {
    Footprint {
        daemon_rss: rss_kib(daemon),
        daemon_fds: open_fds(daemon),
        workers_rss: workers.iter().map(|&pid| rss_kib(pid)).sum(),
        workers_fds: workers.iter().map(|&pid| open_fds(pid)).sum(),
    }
}

fn cpu(pids: &[u32], ticks: u64) -> Duration {
    pids.iter().map(|&pid| cpu_time(pid, ticks)).sum()
}

fn main() {
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return;
    }
    let minutes = minutes();
    let sessions: usize = std::env::var("BENCH_SESSIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let ticks = clock_ticks_per_second();
    let limits = format!(
        "max_sessions = {0}\nmax_sessions_per_user = {0}\n",
        sessions + 10
    );
    let daemon = TestDaemon::start(free_port_range(sessions as u16 + 10), &limits)
        .expect("start mosh-daemon");
    let user = TestUser::create().expect("a test user");
    let connects = daemon.new_sessions(As::User(&user), &["/bin/sh"], sessions);
    let workers: Vec<u32> = connects.iter().map(|c| c.pid).collect();
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let proxies: Vec<ImpairmentProxy> = connects
        .iter()
        .enumerate()
        .map(|(n, connect)| {
            let proxy = ImpairmentProxy::start(
                SocketAddr::new(loopback, 0),
                connect.addr(),
                loopback,
                n as u64 * 7 + 1,
            )
            .expect("impairment proxy");
            proxy.set_both(Impairment {
                delay: Duration::from_millis(50),
                loss: 0.2,
                ..Impairment::default()
            });
            proxy
        })
        .collect();
    let loadgen = LoadGen::start(Options {
        echo_patience: Duration::from_secs(120),
        ..Options::default()
    })
    .expect("load generator");
    for (connect, proxy) in connects.iter().zip(&proxies) {
        loadgen
            .add(SessionSpec {
                server: proxy.listen_addr(),
                key: connect.key.clone(),
                behaviour: Behaviour::Typing {
                    interval: Duration::from_millis(200),
                },
            })
            .expect("a client");
    }
    loadgen
        .wait_for(Duration::from_secs(120), "every client connected", |t| {
            t.connected == sessions
        })
        .expect("clients connected");

    let mut counted = workers.clone();
    counted.push(daemon.pid());
    let began = Instant::now();
    let cpu_before = cpu(&counted, ticks);
    let total = Duration::from_secs_f64(minutes * 60.0);
    let mut at_two = None;
    while began.elapsed() < total {
        std::thread::sleep(Duration::from_secs(1).min(total.saturating_sub(began.elapsed())));
        if at_two.is_none() && began.elapsed() >= Duration::from_secs(120) {
            at_two = Some(footprint(daemon.pid(), &workers));
        }
    }
    let elapsed = began.elapsed();
    let cpu_used = cpu(&counted, ticks).saturating_sub(cpu_before);
    let at_end = footprint(daemon.pid(), &workers);
    let totals = loadgen.totals().expect("totals");
    let delivered: u64 = proxies
        .iter()
        .map(|p| p.stats(Way::ToServer).delivered + p.stats(Way::ToClient).delivered)
        .sum();
    let offered: u64 = proxies
        .iter()
        .map(|p| p.stats(Way::ToServer).received + p.stats(Way::ToClient).received)
        .sum();

    println!(
        "soak: {sessions} sessions through mosh-daemon, 20% loss each way, 100 ms RTT, a key every 200 ms, {:.1} min",
        elapsed.as_secs_f64() / 60.0
    );
    println!("  keys: {}", summary(&totals));
    println!(
        "  echo latency p50 {:.0} ms  p99 {:.0} ms",
        totals
            .latency
            .quantile(0.5)
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3,
        totals
            .latency
            .quantile(0.99)
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3
    );
    let show = |name: &str, f: Footprint| {
        println!(
            "  {name}: daemon RSS {} KiB, {} fds; workers RSS {} KiB, {} fds",
            f.daemon_rss, f.daemon_fds, f.workers_rss, f.workers_fds
        );
    };
    match at_two {
        Some(at_two) => {
            show("minute 2", at_two);
            show("end     ", at_end);
            println!(
                "  growth end/minute 2: daemon RSS {:.3}x fds {:.3}x; workers RSS {:.3}x fds {:.3}x",
                at_end.daemon_rss as f64 / at_two.daemon_rss as f64,
                at_end.daemon_fds as f64 / at_two.daemon_fds as f64,
                at_end.workers_rss as f64 / at_two.workers_rss as f64,
                at_end.workers_fds as f64 / at_two.workers_fds as f64
            );
        }
        None => show("end (before minute 2)", at_end),
    }
    let secs = elapsed.as_secs_f64();
    println!(
        "  per session: {:.1} datagrams/s offered to the path ({:.1} delivered), client sent {:.1}/s; \
         daemon + workers CPU {:.3}% of one core",
        offered as f64 / sessions as f64 / secs,
        delivered as f64 / sessions as f64 / secs,
        totals.datagrams_sent as f64 / sessions as f64 / secs,
        cpu_used.as_secs_f64() / secs / sessions as f64 * 100.0
    );
    drop(loadgen);
}
