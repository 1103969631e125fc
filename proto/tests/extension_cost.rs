//! What offering native extensions costs on the wire with a peer that has
//! none (a stock peer, as far as the negotiation goes): the same session,
//! same seeds, same network, with and without the offer. Only the first
//! datagrams, up to the server's first acknowledgement, carry the offer.
#![allow(
    clippy::print_stdout,
    reason = "a test's measurements, captured by the test runner"
)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Impairment, Network, Stream};
use mosh_proto::{Base64Key, ExtensionSet, Peer, Transport, TransportConfig};

/// Total bytes both ways, and what the client decided, for a session where
/// the client types a line a second and the server answers, for 60 s.
fn session(client_extensions: ExtensionSet) -> (u64, Peer) {
    let start = Instant::now();
    let key = Base64Key::from_bytes([7; 16]);
    let server_addr: SocketAddr = "192.0.2.1:60001".parse().unwrap();
    let client_addr: SocketAddr = "192.0.2.2:40000".parse().unwrap();
    let mut client: Transport<Stream, Stream> = Transport::new(
        TransportConfig::client(server_addr)
            .with_chaff_seed(1)
            .with_extensions(client_extensions),
        &key,
        Stream::default(),
        Stream::default(),
        start,
    )
    .unwrap();
    let mut server: Transport<Stream, Stream> = Transport::new(
        TransportConfig::server().with_chaff_seed(2),
        &key,
        Stream::default(),
        Stream::default(),
        start,
    )
    .unwrap();
    let mut net = Network::new(
        3,
        Impairment {
            loss: 0.05,
            duplicate: 0.0,
            delay: Duration::from_millis(40),
            jitter: Duration::from_millis(10),
        },
    );
    let mut now = start;
    let mut next_key = start;
    while now < start + Duration::from_secs(60) {
        for datagram in net.arrivals(now) {
            if datagram.to == server_addr {
                let _ = server.handle_datagram(now, datagram.from, &datagram.contents);
            } else {
                let _ = client.handle_datagram(now, server_addr, &datagram.contents);
            }
        }
        if now >= next_key {
            client.current_state_mut().push(b"ls -l\r");
            server.current_state_mut().push(&[b'x'; 300]);
            next_key = now + Duration::from_secs(1);
        }
        while let Some(t) = client.poll_transmit(now) {
            net.send(now, client_addr, t.destination, t.contents);
        }
        while let Some(t) = server.poll_transmit(now) {
            net.send(now, server_addr, t.destination, t.contents);
        }
        let next = [
            net.next_arrival(),
            client.poll_timeout(now),
            server.poll_timeout(now),
            Some(next_key),
        ]
        .into_iter()
        .flatten()
        .filter(|&t| t > now)
        .min()
        .unwrap_or(now + Duration::from_millis(1));
        now = next;
    }
    let bytes = client.stats().bytes_sent + server.stats().bytes_sent;
    (bytes, client.peer_extensions())
}

#[test]
fn offering_to_a_peer_without_extensions_costs_only_the_first_datagrams() {
    let (plain, plain_peer) = session(ExtensionSet::EMPTY);
    let (offering, offering_peer) = session(ExtensionSet::all());
    assert_eq!(plain_peer, Peer::Stock);
    assert_eq!(offering_peer, Peer::Stock);
    let extra = offering.saturating_sub(plain);
    println!("60 s session: {plain} bytes without the offer, {offering} with it (+{extra})");
    assert!(offering >= plain, "the offer is never free");
    assert!(
        extra < 200,
        "only the datagrams before the first acknowledgement carry the offer: +{extra} bytes"
    );
    assert!((offering as f64) < plain as f64 * 1.05);
}
