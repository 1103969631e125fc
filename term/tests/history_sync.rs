//! Scrollback history synchronised by SSP: a server `Transport<Complete, _>`
//! and a client one over a simulated network that loses, duplicates,
//! reorders and delays datagrams, driven by a simulated clock. Whatever the
//! network does, the client takes every line exactly once and in order (or,
//! where the server no longer kept lines, one marker with their count).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mosh_proto::{Base64Key, Extension, ExtensionSet, Transport, TransportConfig};
use mosh_term::history::{HistoryEntry, HistoryInbox, HistoryLimits, HistoryLog};
use mosh_term::{Complete, Emulator, UserStream};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 10_000) as f64 / 10_000.0 < p
    }
}

struct Datagram {
    at: Instant,
    to_server: bool,
    from: SocketAddr,
    contents: Vec<u8>,
}

struct Network {
    rng: Rng,
    loss: f64,
    duplicate: f64,
    delay_ms: u64,
    jitter_ms: u64,
    in_flight: Vec<Datagram>,
}

impl Network {
    fn send(&mut self, now: Instant, to_server: bool, from: SocketAddr, contents: Vec<u8>) {
        if self.rng.chance(self.loss) {
            return;
        }
        let copies = if self.rng.chance(self.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.delay_ms + self.rng.next() % (self.jitter_ms + 1);
            self.in_flight.push(Datagram {
                at: now + Duration::from_millis(delay),
                to_server,
                from,
                contents: contents.clone(),
            });
        }
    }

    fn due(&mut self, now: Instant) -> Vec<Datagram> {
        let (mut due, later): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|d| d.at <= now);
        self.in_flight = later;
        due.sort_by_key(|d| d.at);
        due
    }
}

struct Run {
    taken: Vec<HistoryEntry>,
    printed: u64,
}

/// Prints `total` numbered lines in bursts of `burst` every 20 ms and runs
/// until the client holds the server's final state.
fn run(seed: u64, loss: f64, total: u64, burst: u64, limits: HistoryLimits) -> Run {
    let start = Instant::now();
    let key = Base64Key::from_bytes(seed.to_le_bytes().repeat(2).try_into().unwrap());
    let server_addr: SocketAddr = "192.0.2.1:60001".parse().unwrap();
    let client_addr: SocketAddr = "192.0.2.2:40000".parse().unwrap();
    let extensions = ExtensionSet::EMPTY.with(Extension::Scrollback);
    let log = HistoryLog::new(limits);
    let mut emulator = Emulator::new(40, 10);
    emulator.set_history(log.clone());
    let inbox = HistoryInbox::default();
    let mut server = Transport::new(
        TransportConfig::server()
            .with_chaff_seed(seed)
            .with_extensions(extensions),
        &key,
        Complete::new(40, 10).with_history_log(log.clone()),
        UserStream::default(),
        start,
    )
    .unwrap();
    let mut client = Transport::new(
        TransportConfig::client(server_addr)
            .with_chaff_seed(!seed)
            .with_extensions(extensions),
        &key,
        UserStream::default(),
        Complete::new(40, 10).with_history_inbox(inbox.clone()),
        start,
    )
    .unwrap();
    client.current_state_mut().push_resize(40, 10);
    let mut net = Network {
        rng: Rng(seed | 1),
        loss,
        duplicate: 0.1,
        delay_ms: 60,
        jitter_ms: 80,
        in_flight: Vec::new(),
    };
    let mut now = start;
    let mut printed = 0;
    let mut taken = Vec::new();
    let mut painted_end = 0;
    let mut next_burst = start;
    let deadline = start + Duration::from_secs(600);
    loop {
        for d in net.due(now) {
            if d.to_server {
                let _ = server.handle_datagram(now, d.from, &d.contents);
            } else {
                let _ = client.handle_datagram(now, server_addr, &d.contents);
            }
        }
        if now >= next_burst && printed < total {
            let upto = (printed + burst).min(total);
            let text: String = (printed..upto).map(|n| format!("{n}\r\n")).collect();
            emulator.feed(text.as_bytes());
            printed = upto;
            next_burst = now + Duration::from_millis(20);
        }
        let acked = server.acknowledged_state().history_end();
        let mut state = server.current_state().clone();
        state.set_framebuffer(emulator.framebuffer().clone());
        if server
            .peer_extensions()
            .enabled()
            .contains(Extension::Scrollback)
        {
            let _ = state.advance_history(acked, now);
        }
        server.set_current_state(state);

        let newest_end = client.latest_remote_state().history_end();
        if newest_end > painted_end {
            taken.extend(inbox.take(painted_end, newest_end));
            painted_end = newest_end;
        }
        while let Some(t) = client.poll_transmit(now) {
            net.send(now, true, client_addr, t.contents);
        }
        while let Some(t) = server.poll_transmit(now) {
            net.send(now, false, server_addr, t.contents);
        }
        let done = printed == total
            && painted_end == log.end()
            && client.latest_remote_state().history_end() == log.end()
            && client
                .latest_remote_state()
                .framebuffer()
                .same_picture(server.current_state().framebuffer());
        if done {
            break;
        }
        assert!(
            now < deadline,
            "no convergence: {painted_end} of {}",
            log.end()
        );
        let next = [
            net.in_flight.iter().map(|d| d.at).min(),
            client.poll_timeout(now),
            server.poll_timeout(now),
            Some(next_burst),
            Some(now + Duration::from_millis(10)),
        ]
        .into_iter()
        .flatten()
        .filter(|&t| t > now)
        .min()
        .unwrap_or(now + Duration::from_millis(1));
        now = next;
    }
    Run {
        taken,
        printed: log.end(),
    }
}

fn lines_of(run: &Run) -> Vec<u64> {
    run.taken
        .iter()
        .filter_map(|e| match e {
            HistoryEntry::Line(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
            HistoryEntry::Gap(_) => None,
        })
        .collect()
}

#[test]
fn every_line_arrives_once_and_in_order_through_loss_duplication_and_reordering() {
    for seed in [1u64, 7, 42] {
        let run = run(seed, 0.3, 3000, 40, HistoryLimits::lines(10_000));
        let expected: Vec<u64> = (0..run.printed).collect();
        assert_eq!(lines_of(&run), expected, "seed {seed}");
        assert!(
            run.taken.iter().all(|e| matches!(e, HistoryEntry::Line(_))),
            "no marker when everything was kept"
        );
    }
}

#[test]
fn a_client_far_behind_gets_one_marker_then_the_newest_lines() {
    let run = run(5, 0.2, 20_000, 2_000, HistoryLimits::lines(300));
    let mut accounted = 0;
    let mut last = None;
    for entry in &run.taken {
        match entry {
            HistoryEntry::Gap(n) => accounted += n,
            HistoryEntry::Line(bytes) => {
                let n: u64 = std::str::from_utf8(bytes).unwrap().parse().unwrap();
                assert_eq!(n, accounted, "lines and markers add up without overlap");
                assert!(last.is_none_or(|l| l < n));
                last = Some(n);
                accounted += 1;
            }
        }
    }
    assert_eq!(
        accounted, run.printed,
        "every line is either shown or counted"
    );
    let markers = run
        .taken
        .iter()
        .filter(|e| matches!(e, HistoryEntry::Gap(_)))
        .count();
    assert_eq!(markers, 1, "the flood outran the 300 lines kept, once");
    let lines = lines_of(&run);
    let tail: Vec<u64> = (run.printed - 300..run.printed).collect();
    assert_eq!(lines[lines.len() - 300..], tail, "the newest lines arrive");
}
