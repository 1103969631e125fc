//! Hostile datagrams at a live session: while a load-generator client
//! types into a standalone `mosh-server` (through a relay that keeps
//! copies of the real datagrams), another socket sends it 10⁶ datagrams
//! (`BENCH_DATAGRAMS`), in turn random bytes, real client datagrams cut
//! short, real client datagrams with one bit flipped, real client
//! datagrams replayed, and the server's own datagrams reflected back.
//! Reports the server's CPU per hostile datagram it received (its CPU
//! during the flood less its CPU at the same typing without one, over the
//! datagrams the kernel did not drop), and whether the typed stream kept
//! every key in order, with echo latency before and during the flood; for
//! our server and stock mosh 1.4's in the same run.
//!
//! Run: `cargo build --release --bins && cargo bench -p mosh-e2e --bench
//! hostile_load`.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark's report, not a program we ship"
)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mosh_e2e::loadgen::{Behaviour, LoadGen, Options, SessionId, SessionSpec, Totals, summary};
use mosh_e2e::measure::{clock_ticks_per_second, cpu_time, ratio};
use mosh_e2e::server::{Implementation, MoshServer};

/// A shell without rc files and a prompt without `#`.
const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='mosh$ ' exec /bin/sh -i"];
/// Real datagrams kept by the relay, each way.
const KEPT: usize = 64;
/// The typing without a flood, measured for the CPU baseline.
const BASELINE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Captured {
    to_server: VecDeque<Vec<u8>>,
    to_client: VecDeque<Vec<u8>>,
}

fn keep(queue: &mut VecDeque<Vec<u8>>, datagram: &[u8]) {
    if queue.len() == KEPT {
        queue.pop_front();
    }
    queue.push_back(datagram.to_vec());
}

/// A plain UDP relay between one client and a server that keeps copies of
/// the newest datagrams each way.
struct Relay {
    listen: SocketAddr,
    captured: Arc<Mutex<Captured>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    fn start(server: SocketAddr) -> Self {
        let front = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("relay socket"));
        let back = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("relay socket"));
        for socket in [&front, &back] {
            socket
                .set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
        }
        let listen = front.local_addr().expect("address");
        let captured = Arc::new(Mutex::new(Captured::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let client = Arc::new(Mutex::new(None::<SocketAddr>));
        let upstream = {
            let (front, back, captured, stop, client) = (
                front.clone(),
                back.clone(),
                captured.clone(),
                stop.clone(),
                client.clone(),
            );
            std::thread::spawn(move || {
                let mut buffer = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((len, from)) = front.recv_from(&mut buffer) {
                        *client.lock().expect("lock") = Some(from);
                        keep(
                            &mut captured.lock().expect("lock").to_server,
                            &buffer[..len],
                        );
                        let _ = back.send_to(&buffer[..len], server);
                    }
                }
            })
        };
        let downstream = {
            let (captured, stop) = (captured.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buffer = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((len, _)) = back.recv_from(&mut buffer) {
                        keep(
                            &mut captured.lock().expect("lock").to_client,
                            &buffer[..len],
                        );
                        if let Some(client) = *client.lock().expect("lock") {
                            let _ = front.send_to(&buffer[..len], client);
                        }
                    }
                }
            })
        };
        Self {
            listen,
            captured,
            stop,
            threads: vec![upstream, downstream],
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// xorshift64: the flood's bytes need no better randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The flood's datagrams, built before it starts so that the sender does
/// little but send: `count` of them, cycling through the five kinds.
fn hostile_datagrams(count: usize, captured: &Captured) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let client: Vec<&Vec<u8>> = captured.to_server.iter().collect();
    let server: Vec<&Vec<u8>> = captured.to_client.iter().collect();
    (0..count)
        .map(|n| match n % 5 {
            0 => {
                let len = 1 + rng.below(1400);
                (0..len).map(|_| rng.next() as u8).collect()
            }
            1 => {
                let real = client[rng.below(client.len())];
                real[..rng.below(real.len())].to_vec()
            }
            2 => {
                let mut real = client[rng.below(client.len())].clone();
                let bit = rng.below(real.len() * 8);
                real[bit / 8] ^= 1 << (bit % 8);
                real
            }
            3 => client[rng.below(client.len())].clone(),
            _ => server[rng.below(server.len())].clone(),
        })
        .collect()
}

/// The kernel's drop count for the UDP socket bound to `port`, from
/// `/proc/net/udp`.
fn kernel_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
            (local_port == port).then(|| fields.last()?.parse::<u64>().ok())?
        })
        .sum()
}

struct Outcome {
    received: u64,
    sent: u64,
    flood: Duration,
    cpu_per_datagram: Duration,
    before: Totals,
    during: Totals,
    after: Totals,
}

fn lines_done(loadgen: &LoadGen, id: SessionId) -> u64 {
    loadgen.statuses().expect("statuses")[id.0].lines_done
}

fn attack(implementation: Implementation, count: usize, ticks: u64) -> Outcome {
    let server = MoshServer::start(implementation, &SHELL).expect("mosh-server");
    let relay = Relay::start(server.addr());
    let loadgen = LoadGen::start(Options::default()).expect("load generator");
    let id = loadgen
        .add(SessionSpec {
            server: relay.listen,
            key: server.key().clone(),
            behaviour: Behaviour::Typing {
                interval: Duration::from_millis(20),
            },
        })
        .expect("a client");
    loadgen
        .wait_for(Duration::from_secs(30), "two lines echoed", |t| {
            t.echoed >= 28
        })
        .expect("typing");
    let captured = std::mem::take(&mut *relay.captured.lock().expect("lock"));
    let datagrams = hostile_datagrams(count, &captured);

    loadgen.reset_latencies().expect("reset");
    let baseline_cpu = cpu_time(server.pid(), ticks);
    let baseline_began = Instant::now();
    std::thread::sleep(BASELINE);
    let baseline_rate = cpu_time(server.pid(), ticks)
        .saturating_sub(baseline_cpu)
        .as_secs_f64()
        / baseline_began.elapsed().as_secs_f64();
    let before = loadgen.totals().expect("totals");

    loadgen.reset_latencies().expect("reset");
    let attacker = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("attacker socket");
    attacker.connect(server.addr()).expect("connect");
    let drops_before = kernel_drops(server.addr().port());
    let cpu_before = cpu_time(server.pid(), ticks);
    let began = Instant::now();
    let mut sent = 0u64;
    for datagram in &datagrams {
        if attacker.send(datagram).is_ok() {
            sent += 1;
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let flood = began.elapsed();
    let cpu_used = cpu_time(server.pid(), ticks)
        .saturating_sub(cpu_before)
        .as_secs_f64()
        - baseline_rate * flood.as_secs_f64();
    let dropped = kernel_drops(server.addr().port()).saturating_sub(drops_before);
    let during = loadgen.totals().expect("totals");

    let done = lines_done(&loadgen, id);
    loadgen
        .wait_for(
            Duration::from_secs(30),
            "two more lines after the flood",
            |_| lines_done(&loadgen, id) >= done + 2,
        )
        .expect("typing after the flood");
    let after = loadgen.totals().expect("totals");
    let received = sent.saturating_sub(dropped);
    Outcome {
        received,
        sent,
        flood,
        cpu_per_datagram: Duration::from_secs_f64(cpu_used.max(0.0) / received.max(1) as f64),
        before,
        during,
        after,
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return;
    }
    let count = std::env::var("BENCH_DATAGRAMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000usize);
    let ticks = clock_ticks_per_second();
    let ours = attack(Implementation::Ours, count, ticks);
    let stock = attack(Implementation::Stock, count, ticks);
    println!(
        "hostile load: {count} datagrams (random, truncated, bit-flipped, replayed, reflected) at a live session"
    );
    for (name, outcome) in [("ours ", &ours), ("stock", &stock)] {
        let ms =
            |totals: &Totals, q| totals.latency.quantile(q).unwrap_or_default().as_secs_f64() * 1e3;
        println!(
            "  {name}: {} sent in {:.2} s, {} reached the server; CPU {:.3} µs per hostile datagram",
            outcome.sent,
            outcome.flood.as_secs_f64(),
            outcome.received,
            outcome.cpu_per_datagram.as_secs_f64() * 1e6
        );
        println!(
            "         echo p50/p99 before {:.2}/{:.2} ms, during the flood {:.2}/{:.2} ms",
            ms(&outcome.before, 0.5),
            ms(&outcome.before, 0.99),
            ms(&outcome.during, 0.5),
            ms(&outcome.during, 0.99)
        );
        println!(
            "         typed stream after the flood: {}",
            summary(&outcome.after)
        );
    }
    println!(
        "  ratio (ours/stock): CPU per hostile datagram {}",
        ratio(
            ours.cpu_per_datagram.as_secs_f64(),
            stock.cpu_per_datagram.as_secs_f64()
        )
    );
}
