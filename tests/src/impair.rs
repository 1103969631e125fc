//! A userspace UDP impairment proxy (the test kernel has no netem): sits
//! between a mosh client and server on loopback and delays, jitters (and so
//! reorders), drops and duplicates datagrams, blacks out both directions for
//! a while, and can switch the source address it uses toward the server to
//! imitate a roaming client. Counts datagrams and bytes each way.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest datagram relayed; larger ones are truncated by the socket and
/// so arrive corrupt, as they would through a real path.
const MAX_DATAGRAM: usize = 65_535;
/// How often the receive loops look for shutdown and socket changes.
const POLL: Duration = Duration::from_millis(20);
/// Most datagrams held for delayed delivery; beyond this new ones are dropped.
const MAX_QUEUED: usize = 100_000;

/// How one direction of the path misbehaves.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairment {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra uniformly random delay in `0..=jitter`; reorders datagrams
    /// whose spacing is below it.
    pub jitter: Duration,
    /// Probability of dropping a datagram.
    pub loss: f64,
    /// Probability of delivering a datagram twice.
    pub duplicate: f64,
}

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Way {
    /// From the client, toward the server.
    ToServer,
    /// From the server, toward the client.
    ToClient,
}

/// Counters for one direction.
#[derive(Debug, Default)]
pub struct WayCounters {
    received: AtomicU64,
    received_bytes: AtomicU64,
    delivered: AtomicU64,
    delivered_bytes: AtomicU64,
    dropped: AtomicU64,
}

/// A snapshot of one direction's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WayStats {
    /// Datagrams that entered the proxy.
    pub received: u64,
    /// Their bytes.
    pub received_bytes: u64,
    /// Datagrams sent on (duplicates count twice).
    pub delivered: u64,
    /// Their bytes.
    pub delivered_bytes: u64,
    /// Datagrams dropped by loss, blackout or a full queue.
    pub dropped: u64,
}

impl WayCounters {
    fn snapshot(&self) -> WayStats {
        WayStats {
            received: self.received.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            delivered_bytes: self.delivered_bytes.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

struct Pending {
    due: Instant,
    order: u64,
    way: Way,
    contents: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

struct Control {
    to_server: Impairment,
    to_client: Impairment,
    blackout_until: Option<Instant>,
    rng: u64,
    order: u64,
    queue: BinaryHeap<Reverse<Pending>>,
    client: Option<SocketAddr>,
    upstream: Arc<UdpSocket>,
    upstream_generation: u64,
}

impl Control {
    fn random_unit(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Shared {
    control: Mutex<Control>,
    wake: Condvar,
    stop: AtomicBool,
    to_server: WayCounters,
    to_client: WayCounters,
    server: SocketAddr,
}

impl Shared {
    fn counters(&self, way: Way) -> &WayCounters {
        match way {
            Way::ToServer => &self.to_server,
            Way::ToClient => &self.to_client,
        }
    }

    /// Applies the impairment for `way` and queues what survives.
    fn admit(&self, way: Way, contents: Vec<u8>) {
        let counters = self.counters(way);
        counters.received.fetch_add(1, Ordering::Relaxed);
        counters
            .received_bytes
            .fetch_add(contents.len() as u64, Ordering::Relaxed);
        let now = Instant::now();
        let mut control = self.control.lock().expect("proxy lock");
        let impairment = match way {
            Way::ToServer => control.to_server,
            Way::ToClient => control.to_client,
        };
        let blacked_out = control.blackout_until.is_some_and(|until| now < until);
        if blacked_out
            || control.random_unit() < impairment.loss
            || control.queue.len() >= MAX_QUEUED
        {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let copies = if control.random_unit() < impairment.duplicate {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = impairment.jitter.mul_f64(control.random_unit());
            control.order += 1;
            let pending = Pending {
                due: now + impairment.delay + jitter,
                order: control.order,
                way,
                contents: contents.clone(),
            };
            control.queue.push(Reverse(pending));
        }
        drop(control);
        self.wake.notify_one();
    }
}

/// A running proxy. Dropping it stops its threads.
pub struct ImpairmentProxy {
    shared: Arc<Shared>,
    listen_addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl ImpairmentProxy {
    /// Starts a proxy listening on `listen` (port 0 picks one) for a client,
    /// relaying to `server` from an ephemeral port on `source_ip`.
    pub fn start(
        listen: SocketAddr,
        server: SocketAddr,
        source_ip: IpAddr,
        seed: u64,
    ) -> io::Result<Self> {
        let client_side = Arc::new(UdpSocket::bind(listen)?);
        client_side.set_read_timeout(Some(POLL))?;
        let listen_addr = client_side.local_addr()?;
        let upstream = Arc::new(bind_upstream(source_ip)?);
        let shared = Arc::new(Shared {
            control: Mutex::new(Control {
                to_server: Impairment::default(),
                to_client: Impairment::default(),
                blackout_until: None,
                rng: seed | 1,
                order: 0,
                queue: BinaryHeap::new(),
                client: None,
                upstream,
                upstream_generation: 0,
            }),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            to_server: WayCounters::default(),
            to_client: WayCounters::default(),
            server,
        });
        let threads = vec![
            spawn_client_receiver(Arc::clone(&shared), Arc::clone(&client_side))?,
            spawn_server_receiver(Arc::clone(&shared))?,
            spawn_scheduler(Arc::clone(&shared), client_side)?,
        ];
        Ok(Self {
            shared,
            listen_addr,
            threads,
        })
    }

    /// The address a client should send to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// Sets how `way` misbehaves from now on.
    pub fn set_impairment(&self, way: Way, impairment: Impairment) {
        let mut control = self.shared.control.lock().expect("proxy lock");
        match way {
            Way::ToServer => control.to_server = impairment,
            Way::ToClient => control.to_client = impairment,
        }
    }

    /// Sets both directions at once.
    pub fn set_both(&self, impairment: Impairment) {
        self.set_impairment(Way::ToServer, impairment);
        self.set_impairment(Way::ToClient, impairment);
    }

    /// Drops everything in both directions for `duration` from now.
    pub fn blackout(&self, duration: Duration) {
        self.shared
            .control
            .lock()
            .expect("proxy lock")
            .blackout_until = Some(Instant::now() + duration);
    }

    /// Switches the source toward the server to a new ephemeral port on
    /// `source_ip`, as when a client changes networks; replies to the old
    /// source are lost. Returns the new source address.
    pub fn roam(&self, source_ip: IpAddr) -> io::Result<SocketAddr> {
        let socket = Arc::new(bind_upstream(source_ip)?);
        let address = socket.local_addr()?;
        let mut control = self.shared.control.lock().expect("proxy lock");
        control.upstream = socket;
        control.upstream_generation += 1;
        Ok(address)
    }

    /// The address the server currently sees datagrams from.
    pub fn upstream_addr(&self) -> io::Result<SocketAddr> {
        self.shared
            .control
            .lock()
            .expect("proxy lock")
            .upstream
            .local_addr()
    }

    /// Counters for `way`.
    pub fn stats(&self, way: Way) -> WayStats {
        self.shared.counters(way).snapshot()
    }
}

impl Drop for ImpairmentProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn bind_upstream(source_ip: IpAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::new(source_ip, 0))?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

fn spawn_client_receiver(
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("proxy-from-client".into())
        .spawn(move || {
            let mut buffer = vec![0u8; MAX_DATAGRAM];
            while !shared.stop.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                shared.control.lock().expect("proxy lock").client = Some(from);
                shared.admit(Way::ToServer, buffer[..len].to_vec());
            }
        })
}

fn spawn_server_receiver(shared: Arc<Shared>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("proxy-from-server".into())
        .spawn(move || {
            let mut buffer = vec![0u8; MAX_DATAGRAM];
            while !shared.stop.load(Ordering::Relaxed) {
                let (socket, generation) = {
                    let control = shared.control.lock().expect("proxy lock");
                    (Arc::clone(&control.upstream), control.upstream_generation)
                };
                let Ok((len, from)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                let current = shared
                    .control
                    .lock()
                    .expect("proxy lock")
                    .upstream_generation;
                if from == shared.server && current == generation {
                    shared.admit(Way::ToClient, buffer[..len].to_vec());
                }
            }
        })
}

fn spawn_scheduler(shared: Arc<Shared>, client_side: Arc<UdpSocket>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("proxy-scheduler".into())
        .spawn(move || {
            let mut control = shared.control.lock().expect("proxy lock");
            while !shared.stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                let wait = match control.queue.peek() {
                    Some(Reverse(next)) if next.due <= now => Duration::ZERO,
                    Some(Reverse(next)) => next.due - now,
                    None => POLL,
                };
                if !wait.is_zero() {
                    control = shared
                        .wake
                        .wait_timeout(control, wait)
                        .expect("proxy lock")
                        .0;
                    continue;
                }
                let Reverse(pending) = control.queue.pop().expect("peeked");
                let sent = match pending.way {
                    Way::ToServer => control.upstream.send_to(&pending.contents, shared.server),
                    Way::ToClient => match control.client {
                        Some(client) => client_side.send_to(&pending.contents, client),
                        None => Ok(0),
                    },
                };
                let counters = shared.counters(pending.way);
                if sent.is_ok_and(|n| n == pending.contents.len()) {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    counters
                        .delivered_bytes
                        .fetch_add(pending.contents.len() as u64, Ordering::Relaxed);
                } else {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
}
