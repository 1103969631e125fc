//! Choosing the server's UDP port as mosh 1.4 does: every port of the range in
//! order, on the preferred address first, then on any interface. The socket
//! is marked ECN-capable (ECT(0)) like stock mosh's.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use super::args::{BindAddress, PortRange};

/// The ECN-capable transport codepoint ECT(0), set in IP_TOS.
const ECT0: u32 = 0x02;

/// No port of the range could be bound on any interface.
#[derive(Debug)]
pub struct BindError {
    /// Messages printed while trying (a failed preferred address).
    pub attempts: Vec<String>,
    /// The last port tried.
    pub last_tried: SocketAddr,
    /// Why binding it failed.
    pub source: io::Error,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for attempt in &self.attempts {
            writeln!(f, "{attempt}")?;
        }
        writeln!(f, "Failed binding to {}", self.last_tried)?;
        writeln!(f, "Error binding to any interface: bind: {}", self.source)?;
        write!(f, "Network exception: bind: {}", self.source)
    }
}

impl std::error::Error for BindError {}

/// A bound socket, with any messages about a preferred address that failed.
#[derive(Debug)]
pub struct Bound {
    /// The socket, bound and ready.
    pub socket: UdpSocket,
    /// Lines for stderr.
    pub warnings: Vec<String>,
}

/// Binds the first free port of `ports`, on `bind`'s address if it works,
/// else on any IPv4 interface.
pub fn bind(bind: &BindAddress, ports: PortRange) -> Result<Bound, BindError> {
    let mut warnings = Vec::new();
    if let BindAddress::Preferred(text) = bind {
        match text.parse::<IpAddr>() {
            Ok(ip) => match bind_range(ip, ports) {
                Ok(socket) => return Ok(Bound { socket, warnings }),
                Err((tried, error)) => {
                    warnings.push(format!("Failed binding to {tried}"));
                    warnings.push(format!("Error binding to IP {text}: bind: {error}"));
                }
            },
            Err(_) => warnings.push(format!(
                "Error binding to IP {text}: Bad IP address ({text}): Name or service not known"
            )),
        }
    }
    match bind_range(IpAddr::V4(Ipv4Addr::UNSPECIFIED), ports) {
        Ok(socket) => Ok(Bound { socket, warnings }),
        Err((last_tried, source)) => Err(BindError {
            attempts: warnings,
            last_tried,
            source,
        }),
    }
}

fn bind_range(ip: IpAddr, ports: PortRange) -> Result<UdpSocket, (SocketAddr, io::Error)> {
    let mut last = None;
    for port in ports.low..=ports.high {
        let address = SocketAddr::new(ip, port);
        match bind_port(address) {
            Ok(socket) => return Ok(socket),
            Err(error) => last = Some((address, error)),
        }
    }
    Err(last.expect("a port range is never empty"))
}

/// Binds one UDP address, ECN-capable, dual-stack for the IPv6 wildcard.
pub fn bind_port(address: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    match address.ip() {
        IpAddr::V6(ip) if ip.is_unspecified() => socket.set_only_v6(false)?,
        IpAddr::V6(_) => {}
        IpAddr::V4(_) => socket.set_tos_v4(ECT0)?,
    }
    socket.bind(&address.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn lowest_free_port_first() {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let low = taken.local_addr().unwrap().port();
        let range = PortRange {
            low,
            high: low.saturating_add(20),
        };
        let bound = bind(&BindAddress::Preferred("127.0.0.1".into()), range).unwrap();
        let port = bound.socket.local_addr().unwrap().port();
        assert!(port > low && port <= range.high, "bound {port}");
        assert_eq!(bound.socket.local_addr().unwrap().ip(), Ipv4Addr::LOCALHOST);
        assert!(bound.warnings.is_empty());
    }

    #[test]
    fn bad_preferred_address_falls_back_to_any() {
        let port = free_port();
        let bound = bind(
            &BindAddress::Preferred("not-an-ip".into()),
            PortRange {
                low: port,
                high: port,
            },
        )
        .unwrap();
        assert!(bound.socket.local_addr().unwrap().ip().is_unspecified());
        assert!(bound.warnings[0].contains("Error binding to IP not-an-ip"));
    }

    #[test]
    fn busy_range_is_a_clear_error() {
        let taken = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let error = bind(
            &BindAddress::Any,
            PortRange {
                low: port,
                high: port,
            },
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("Failed binding to 0.0.0.0:{port}")),
            "{message}"
        );
        assert!(message.contains("Address already in use"), "{message}");
    }

    #[test]
    fn port_zero_lets_the_os_choose() {
        let bound = bind(&BindAddress::Any, PortRange { low: 0, high: 0 }).unwrap();
        assert_ne!(bound.socket.local_addr().unwrap().port(), 0);
    }
}
