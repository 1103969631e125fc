//! Test doubles for driving `Transport`s without sockets or clocks: an
//! append-only byte stream state, a seeded random source, and a simulated
//! network with delay, jitter, loss, duplication and a movable client address.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mosh_proto::{State, StateError};

/// An append-only byte stream, like the user input stream: diffs carry the
/// bytes after the older state's end, and `subtract` forgets an acknowledged
/// prefix so the sender's copies stay small.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    dropped: usize,
    bytes: Vec<u8>,
}

impl Stream {
    /// Appends bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Total bytes ever appended.
    pub fn total(&self) -> usize {
        self.dropped + self.bytes.len()
    }

    /// The bytes still held (all of them for a state that never subtracted).
    pub fn held(&self) -> &[u8] {
        &self.bytes
    }
}

impl PartialEq for Stream {
    fn eq(&self, other: &Self) -> bool {
        self.total() == other.total()
    }
}

impl State for Stream {
    fn diff_from(&self, older: &Self) -> Vec<u8> {
        let start = older.total() - self.dropped;
        self.bytes[start..].to_vec()
    }

    fn apply(&mut self, diff: &[u8]) -> Result<(), StateError> {
        if self.total() + diff.len() > 1 << 20 {
            return Err(StateError("stream too long".into()));
        }
        self.bytes.extend_from_slice(diff);
        Ok(())
    }

    fn subtract(&mut self, prefix: &Self) {
        let cut = prefix
            .total()
            .saturating_sub(self.dropped)
            .min(self.bytes.len());
        self.bytes.drain(..cut);
        self.dropped += cut;
    }
}

/// xorshift64*: deterministic randomness for simulations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator; any seed works.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// How the simulated network treats each datagram.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// One-way delay.
    pub delay: Duration,
    /// Extra random delay up to this much, which reorders datagrams.
    pub jitter: Duration,
}

/// A datagram in flight.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// When it arrives.
    pub at: Instant,
    /// Source address as the receiver sees it.
    pub from: SocketAddr,
    /// Destination address.
    pub to: SocketAddr,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// A network of datagrams in flight.
pub struct Network {
    pub rng: Rng,
    pub impairment: Impairment,
    pub in_flight: Vec<InFlight>,
    pub sent: u64,
    pub lost: u64,
}

impl Network {
    /// An empty network.
    pub fn new(seed: u64, impairment: Impairment) -> Self {
        Self {
            rng: Rng::new(seed),
            impairment,
            in_flight: Vec::new(),
            sent: 0,
            lost: 0,
        }
    }

    /// Sends a datagram at `now`.
    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, contents: Vec<u8>) {
        self.sent += 1;
        if self.rng.chance(self.impairment.loss) {
            self.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.impairment.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter_ms = self
                .rng
                .below(self.impairment.jitter.as_millis() as u64 + 1);
            self.in_flight.push(InFlight {
                at: now + self.impairment.delay + Duration::from_millis(jitter_ms),
                from,
                to,
                contents: contents.clone(),
            });
        }
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.iter().map(|d| d.at).min()
    }

    /// Removes and returns every datagram due by `now`, earliest first.
    pub fn arrivals(&mut self, now: Instant) -> Vec<InFlight> {
        let (mut due, later): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|d| d.at <= now);
        self.in_flight = later;
        due.sort_by_key(|d| d.at);
        due
    }
}
