//! Idle heartbeats: a server answers the client's heartbeat with its own, so
//! an idle session wakes the server once per heartbeat interval instead of
//! twice, and the client still hears from the server at least that often.
//! Driven over the simulated network with a simulated clock.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Impairment, Network, Stream};
use mosh_proto::transport::{ACK_INTERVAL, HEARTBEAT_ANSWER_SLACK};
use mosh_proto::{Base64Key, Transport, TransportConfig};

type Side = Transport<Stream, Stream>;

const SERVER: &str = "203.0.113.5:60001";
const CLIENT: &str = "192.0.2.10:40000";

/// What happened at each end, as instants since the start.
#[derive(Default)]
struct Timeline {
    /// Instants at which the server received or sent anything: its wake-ups.
    server_wakes: Vec<Duration>,
    /// Datagrams the server sent.
    server_sent: Vec<Duration>,
    /// Datagrams the client sent.
    client_sent: Vec<Duration>,
    /// Datagrams from the server that reached the client.
    client_heard: Vec<Duration>,
}

/// A client and a server, idle after one keystroke, for `length`; datagrams
/// from the client are lost while `client_cut` says so.
fn idle_session(
    seed: u64,
    impairment: Impairment,
    length: Duration,
    client_cut: impl Fn(Duration) -> bool,
) -> Timeline {
    let start = Instant::now();
    let key = Base64Key::from_bytes(seed.to_le_bytes().repeat(2).try_into().unwrap());
    let server_addr: SocketAddr = SERVER.parse().unwrap();
    let client_addr: SocketAddr = CLIENT.parse().unwrap();
    let new_side = |config: TransportConfig| -> Side {
        Transport::new(
            config.with_chaff_seed(seed),
            &key,
            Stream::default(),
            Stream::default(),
            start,
        )
        .unwrap()
    };
    let mut client = new_side(TransportConfig::client(server_addr));
    let mut server = new_side(TransportConfig::server());
    client.current_state_mut().push(b"x");
    let mut net = Network::new(seed, impairment);
    let mut timeline = Timeline::default();
    let mut now = start;
    while now < start + length {
        let at = now - start;
        let mut server_woke = false;
        for datagram in net.arrivals(now) {
            if datagram.to == server_addr {
                server_woke = true;
                let _ = server.handle_datagram(now, datagram.from, &datagram.contents);
            } else {
                timeline.client_heard.push(at);
                let _ = client.handle_datagram(now, server_addr, &datagram.contents);
            }
        }
        while let Some(transmit) = client.poll_transmit(now) {
            timeline.client_sent.push(at);
            if !client_cut(at) {
                net.send(now, client_addr, transmit.destination, transmit.contents);
            }
        }
        while let Some(transmit) = server.poll_transmit(now) {
            server_woke = true;
            timeline.server_sent.push(at);
            net.send(now, server_addr, transmit.destination, transmit.contents);
        }
        if server_woke {
            timeline.server_wakes.push(at);
        }
        let next = [
            net.next_arrival(),
            client.poll_timeout(now),
            server.poll_timeout(now),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(start + length);
        now = next.max(now + Duration::from_millis(1));
    }
    timeline
}

fn clean(delay_ms: u64) -> Impairment {
    Impairment {
        loss: 0.0,
        duplicate: 0.0,
        delay: Duration::from_millis(delay_ms),
        jitter: Duration::from_millis(5),
    }
}

fn within(instants: &[Duration], from: Duration, to: Duration) -> Vec<Duration> {
    instants
        .iter()
        .copied()
        .filter(|&at| at >= from && at < to)
        .collect()
}

fn longest_gap(instants: &[Duration]) -> Duration {
    instants
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or_default()
}

#[test]
fn an_idle_server_wakes_once_per_client_heartbeat() {
    for (seed, delay_ms) in [(1, 1), (2, 40), (3, 150)] {
        let timeline = idle_session(seed, clean(delay_ms), Duration::from_secs(130), |_| false);
        let (from, to) = (Duration::from_secs(10), Duration::from_secs(130));
        let client_heartbeats = within(&timeline.client_sent, from, to).len();
        let server_wakes = within(&timeline.server_wakes, from, to).len();
        assert!(
            (38..=42).contains(&client_heartbeats),
            "{delay_ms} ms: the client sent {client_heartbeats} heartbeats in 120 s"
        );
        assert!(
            server_wakes <= client_heartbeats + 1,
            "{delay_ms} ms: the server woke {server_wakes} times for {client_heartbeats} client heartbeats"
        );
        let heard = within(&timeline.client_heard, from, to);
        assert!(
            longest_gap(&heard) <= ACK_INTERVAL + Duration::from_millis(20),
            "{delay_ms} ms: the client went {:?} without hearing the server",
            longest_gap(&heard)
        );
    }
}

#[test]
fn the_server_keeps_its_own_heartbeat_when_the_client_goes_silent() {
    let cut = |at: Duration| at >= Duration::from_secs(30) && at < Duration::from_secs(60);
    let timeline = idle_session(4, clean(20), Duration::from_secs(90), cut);
    let silent = within(
        &timeline.server_sent,
        Duration::from_secs(30),
        Duration::from_secs(60),
    );
    assert!(
        silent.len() >= 8,
        "the server sent {} heartbeats in 30 s unheard",
        silent.len()
    );
    assert!(longest_gap(&timeline.server_sent) <= ACK_INTERVAL + HEARTBEAT_ANSWER_SLACK);
    let after = within(
        &timeline.server_wakes,
        Duration::from_secs(70),
        Duration::from_secs(90),
    );
    let client_after = within(
        &timeline.client_sent,
        Duration::from_secs(70),
        Duration::from_secs(90),
    );
    assert!(
        after.len() <= client_after.len() + 1,
        "after the silence the server woke {} times for {} client heartbeats",
        after.len(),
        client_after.len()
    );
}

#[test]
fn heartbeats_under_loss_never_go_quieter_than_the_slack_allows() {
    let lossy = Impairment {
        loss: 0.3,
        duplicate: 0.05,
        delay: Duration::from_millis(60),
        jitter: Duration::from_millis(40),
    };
    for seed in 10..20 {
        let timeline = idle_session(seed, lossy, Duration::from_secs(120), |_| false);
        let sent = within(
            &timeline.server_sent,
            Duration::from_secs(5),
            Duration::from_secs(120),
        );
        assert!(
            longest_gap(&sent) <= ACK_INTERVAL + HEARTBEAT_ANSWER_SLACK + Duration::from_secs(1),
            "seed {seed}: the server went {:?} without sending",
            longest_gap(&sent)
        );
        let client = within(
            &timeline.client_sent,
            Duration::from_secs(5),
            Duration::from_secs(120),
        );
        assert!(
            client.len() <= 45,
            "seed {seed}: the client sent {} datagrams in 115 idle seconds",
            client.len()
        );
    }
}
