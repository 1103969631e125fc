//! The impairment proxy itself, over real loopback sockets: delay, loss,
//! duplication, blackout and roaming do what they say, and counters add up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mosh_e2e::impair::{Impairment, ImpairmentProxy, Way};

/// A UDP echo server on loopback that reports where each datagram came from.
struct Echo {
    socket: UdpSocket,
}

impl Echo {
    fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        Self { socket }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// Echoes whatever arrives within `time`; returns the senders seen.
    fn serve(&self, time: Duration) -> Vec<SocketAddr> {
        let mut seen = Vec::new();
        let end = Instant::now() + time;
        let mut buffer = [0u8; 2048];
        while Instant::now() < end {
            if let Ok((len, from)) = self.socket.recv_from(&mut buffer) {
                seen.push(from);
                self.socket.send_to(&buffer[..len], from).unwrap();
            }
        }
        seen
    }
}

fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    socket
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn drain(socket: &UdpSocket, until: Instant) -> Vec<(Instant, Vec<u8>)> {
    let mut got = Vec::new();
    let mut buffer = [0u8; 2048];
    while Instant::now() < until {
        if let Ok(len) = socket.recv(&mut buffer) {
            got.push((Instant::now(), buffer[..len].to_vec()));
        }
    }
    got
}

#[test]
fn delays_each_way_and_counts() {
    let echo = Echo::start();
    let proxy =
        ImpairmentProxy::start("127.0.0.1:0".parse().unwrap(), echo.addr(), loopback(), 1).unwrap();
    let delay = Impairment {
        delay: Duration::from_millis(150),
        ..Impairment::default()
    };
    proxy.set_both(delay);
    let client = client();
    let sent_at = Instant::now();
    client.send_to(b"ping", proxy.listen_addr()).unwrap();
    let server = std::thread::spawn(move || echo.serve(Duration::from_millis(600)));
    let got = drain(&client, sent_at + Duration::from_millis(700));
    server.join().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"ping");
    let rtt = got[0].0 - sent_at;
    assert!(
        rtt >= Duration::from_millis(300),
        "round trip {rtt:?} shorter than two delays"
    );
    let up = proxy.stats(Way::ToServer);
    let down = proxy.stats(Way::ToClient);
    assert_eq!((up.received, up.delivered, up.delivered_bytes), (1, 1, 4));
    assert_eq!((down.received, down.delivered), (1, 1));
}

#[test]
fn loss_and_duplication_follow_their_rates() {
    let echo = Echo::start();
    let proxy =
        ImpairmentProxy::start("127.0.0.1:0".parse().unwrap(), echo.addr(), loopback(), 7).unwrap();
    proxy.set_impairment(
        Way::ToServer,
        Impairment {
            loss: 0.3,
            duplicate: 0.2,
            ..Impairment::default()
        },
    );
    let client = client();
    let server = std::thread::spawn(move || echo.serve(Duration::from_millis(1500)));
    for i in 0..1000u32 {
        client
            .send_to(&i.to_be_bytes(), proxy.listen_addr())
            .unwrap();
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let seen = server.join().unwrap();
    let up = proxy.stats(Way::ToServer);
    assert_eq!(up.received, 1000);
    assert!((230..=370).contains(&up.dropped), "dropped {}", up.dropped);
    let survivors = 1000 - up.dropped;
    let duplicates = up.delivered - survivors;
    assert!(
        (survivors / 10..=survivors * 3 / 10).contains(&duplicates),
        "{duplicates} duplicates of {survivors}"
    );
    assert_eq!(seen.len() as u64, up.delivered);
}

#[test]
fn blackout_drops_everything_then_recovers() {
    let echo = Echo::start();
    let proxy =
        ImpairmentProxy::start("127.0.0.1:0".parse().unwrap(), echo.addr(), loopback(), 3).unwrap();
    let client = client();
    let server = std::thread::spawn(move || echo.serve(Duration::from_millis(900)));
    proxy.blackout(Duration::from_millis(300));
    client.send_to(b"lost", proxy.listen_addr()).unwrap();
    assert!(drain(&client, Instant::now() + Duration::from_millis(350)).is_empty());
    client.send_to(b"back", proxy.listen_addr()).unwrap();
    let got = drain(&client, Instant::now() + Duration::from_millis(300));
    server.join().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"back");
    assert_eq!(proxy.stats(Way::ToServer).dropped, 1);
}

#[test]
fn roaming_changes_the_source_the_server_sees() {
    let echo = Echo::start();
    let proxy =
        ImpairmentProxy::start("127.0.0.1:0".parse().unwrap(), echo.addr(), loopback(), 5).unwrap();
    let client = client();
    let before = proxy.upstream_addr().unwrap();
    let server = std::thread::spawn(move || echo.serve(Duration::from_millis(800)));
    client.send_to(b"one", proxy.listen_addr()).unwrap();
    assert_eq!(
        drain(&client, Instant::now() + Duration::from_millis(200)).len(),
        1
    );
    let after = proxy.roam("127.0.0.2".parse().unwrap()).unwrap();
    client.send_to(b"two", proxy.listen_addr()).unwrap();
    let got = drain(&client, Instant::now() + Duration::from_millis(300));
    let seen = server.join().unwrap();
    assert_eq!(got.len(), 1, "reply after roaming must come back");
    assert_eq!(seen, [before, after]);
    assert_eq!(after.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
}

#[test]
fn jitter_reorders() {
    let echo = Echo::start();
    let proxy =
        ImpairmentProxy::start("127.0.0.1:0".parse().unwrap(), echo.addr(), loopback(), 9).unwrap();
    proxy.set_impairment(
        Way::ToServer,
        Impairment {
            jitter: Duration::from_millis(100),
            ..Impairment::default()
        },
    );
    let client = client();
    let server = std::thread::spawn(move || echo.serve(Duration::from_millis(700)));
    for i in 0..50u8 {
        client.send_to(&[i], proxy.listen_addr()).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let got = drain(&client, Instant::now() + Duration::from_millis(600));
    server.join().unwrap();
    let order: Vec<u8> = got.iter().map(|(_, bytes)| bytes[0]).collect();
    assert_eq!(order.len(), 50);
    assert!(
        order.windows(2).any(|w| w[0] > w[1]),
        "no reordering: {order:?}"
    );
}
