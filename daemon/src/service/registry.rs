//! The session registry and the UDP port pool.
//!
//! Every session holds a port from the moment it is reserved (before its
//! worker starts) until its worker is gone; a port is handed out only if it
//! is held by no session and the daemon can bind it, so a port used by
//! anyone else is skipped.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use crate::config::PortPool;
use crate::control::SessionReport;
use crate::server::bind::bind_port;

/// Why a session could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The user has as many sessions as allowed.
    #[error("too many sessions for user {user} (limit {limit})")]
    UserLimit {
        /// The user.
        user: String,
        /// The limit.
        limit: usize,
    },
    /// The daemon has as many sessions as allowed.
    #[error("too many sessions on this server (limit {0})")]
    TotalLimit(usize),
    /// No port of the pool (or of the client's range within it) is free.
    #[error("no free UDP port in {0}")]
    PoolExhausted(String),
    /// The daemon has no descriptor left for the session's socket.
    #[error("{}", super::OUT_OF_DESCRIPTORS)]
    OutOfDescriptors,
    /// The client's port range has no port in the pool.
    #[error("the requested UDP ports {low}:{high} are outside this server's pool {pool}")]
    OutsidePool {
        /// The client's first port.
        low: u16,
        /// The client's last port.
        high: u16,
        /// The pool.
        pool: PortPool,
    },
}

/// All sessions, by id: the latest report of each (a placeholder while
/// its worker starts).
#[derive(Debug, Default)]
pub struct Registry {
    sessions: HashMap<String, SessionReport>,
}

impl Registry {
    /// How many sessions there are.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// How many sessions `uid` has.
    pub fn count_for(&self, uid: u32) -> usize {
        self.sessions.values().filter(|e| e.uid == uid).count()
    }

    /// Whether some session holds `port`.
    pub fn port_taken(&self, port: u16) -> bool {
        self.sessions.values().any(|e| e.port == port)
    }

    /// The ports sessions hold.
    pub fn ports(&self) -> std::collections::BTreeSet<u16> {
        self.sessions.values().map(|e| e.port).collect()
    }

    /// How many ports of `pool` sessions hold.
    pub fn ports_used(&self, pool: PortPool) -> usize {
        self.sessions
            .values()
            .filter(|e| pool.contains(e.port))
            .count()
    }

    /// Checks the limits for `user` and binds the lowest free port of
    /// `pool` (within `wanted`, when the client asked for a range), on
    /// `ip` or else on any address. The caller inserts the session before
    /// releasing the registry, so the port stays reserved.
    pub fn allocate(&self, request: &Allocation<'_>) -> Result<UdpSocket, Refusal> {
        if self.len() >= request.max_sessions {
            return Err(Refusal::TotalLimit(request.max_sessions));
        }
        if self.count_for(request.uid) >= request.max_per_user {
            return Err(Refusal::UserLimit {
                user: request.user.to_owned(),
                limit: request.max_per_user,
            });
        }
        let pool = request.pool;
        let (low, high) = match request.wanted {
            Some((0, 0)) | None => (pool.low, pool.high),
            Some((low, high)) if high < pool.low || low > pool.high => {
                return Err(Refusal::OutsidePool { low, high, pool });
            }
            Some((low, high)) => (low.max(pool.low), high.min(pool.high)),
        };
        let ips: Vec<IpAddr> = match request.ip {
            Some(ip) if !ip.is_unspecified() => vec![ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
            _ => vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
        };
        for ip in ips {
            for port in low..=high {
                if self.port_taken(port) {
                    continue;
                }
                match bind_port(SocketAddr::new(ip, port)) {
                    Ok(socket) => return Ok(socket),
                    Err(error) if super::out_of_descriptors(&error) => {
                        return Err(Refusal::OutOfDescriptors);
                    }
                    Err(_) => {}
                }
            }
        }
        Err(Refusal::PoolExhausted(format!("{low}:{high}")))
    }

    /// Adds or replaces a session.
    pub fn insert(&mut self, report: SessionReport) {
        self.sessions.insert(report.id.clone(), report);
    }

    /// Updates what a worker reported, keeping what the daemon knows for
    /// itself (id, user, uid, port) when the session is known.
    pub fn update(&mut self, report: SessionReport) {
        match self.sessions.get_mut(&report.id) {
            Some(known) => {
                known.pid = report.pid;
                known.client = report.client;
                known.last_contact = report.last_contact;
                known.client_live = report.client_live;
                known.started = report.started;
                known.state = report.state;
                known.cipher = report.cipher;
                known.attaches = report.attaches;
                known.rekeyed = report.rekeyed;
                known.foreground = report.foreground;
                known.history = report.history;
            }
            None => self.insert(report),
        }
    }

    /// Forgets a session; returns whether it was known.
    pub fn remove(&mut self, id: &str) -> bool {
        self.sessions.remove(id).is_some()
    }

    /// Every session, oldest first.
    pub fn all(&self) -> Vec<SessionReport> {
        let mut reports: Vec<_> = self.sessions.values().cloned().collect();
        reports.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
        reports
    }
}

/// What a new session asks of the registry.
#[derive(Debug, Clone)]
pub struct Allocation<'a> {
    /// The user's name (for messages).
    pub user: &'a str,
    /// The user's uid.
    pub uid: u32,
    /// The configured pool.
    pub pool: PortPool,
    /// The client's `-p` range, if any.
    pub wanted: Option<(u16, u16)>,
    /// The client's preferred address, if any.
    pub ip: Option<IpAddr>,
    /// Most sessions in all.
    pub max_sessions: usize,
    /// Most sessions per user.
    pub max_per_user: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, uid: u32, port: u16) -> SessionReport {
        SessionReport {
            id: id.into(),
            user: format!("user{uid}"),
            uid,
            pid: 1,
            port,
            client: None,
            started: 0,
            last_contact: None,
            client_live: None,
            state: "waiting".into(),
            cipher: None,
            attaches: 0,
            rekeyed: None,
            detached_since: None,
            foreground: None,
            history: None,
        }
    }

    fn free_range(len: u16) -> PortPool {
        loop {
            let probe = UdpSocket::bind("0.0.0.0:0").unwrap();
            let low = probe.local_addr().unwrap().port();
            drop(probe);
            if low.checked_add(len).is_some() {
                return PortPool {
                    low,
                    high: low + len - 1,
                };
            }
        }
    }

    fn allocation(pool: PortPool) -> Allocation<'static> {
        Allocation {
            user: "alice",
            uid: 1000,
            pool,
            wanted: None,
            ip: None,
            max_sessions: 100,
            max_per_user: 100,
        }
    }

    #[test]
    fn ports_in_use_are_never_handed_out() {
        let pool = free_range(3);
        let mut registry = Registry::default();
        let outsider = UdpSocket::bind(("0.0.0.0", pool.low + 1)).ok();
        let first = registry.allocate(&allocation(pool)).unwrap();
        let first_port = first.local_addr().unwrap().port();
        registry.insert(report("a", 1000, first_port));
        let second = registry.allocate(&allocation(pool)).unwrap();
        let second_port = second.local_addr().unwrap().port();
        assert_ne!(first_port, second_port);
        if outsider.is_some() {
            assert_ne!(second_port, pool.low + 1);
        }
        registry.insert(report("b", 1000, second_port));
        if outsider.is_some() {
            assert!(matches!(
                registry.allocate(&allocation(pool)),
                Err(Refusal::PoolExhausted(_))
            ));
        }
        drop(first);
        assert!(registry.remove("a"));
        let again = registry.allocate(&allocation(pool)).unwrap();
        assert_eq!(again.local_addr().unwrap().port(), first_port);
    }

    #[test]
    fn limits_per_user_and_in_all() {
        let pool = free_range(4);
        let mut registry = Registry::default();
        registry.insert(report("a", 1000, 1));
        registry.insert(report("b", 1001, 2));
        let mut request = allocation(pool);
        request.max_per_user = 1;
        assert_eq!(
            registry.allocate(&request).unwrap_err(),
            Refusal::UserLimit {
                user: "alice".into(),
                limit: 1
            }
        );
        request.max_per_user = 5;
        request.max_sessions = 2;
        assert_eq!(
            registry.allocate(&request).unwrap_err(),
            Refusal::TotalLimit(2)
        );
    }

    #[test]
    fn the_clients_range_narrows_the_pool() {
        let pool = free_range(4);
        let registry = Registry::default();
        let mut request = allocation(pool);
        request.wanted = Some((pool.high, pool.high.saturating_add(10)));
        let socket = registry.allocate(&request).unwrap();
        assert_eq!(socket.local_addr().unwrap().port(), pool.high);
        request.wanted = Some((1, pool.low - 1));
        assert_eq!(
            registry.allocate(&request).unwrap_err(),
            Refusal::OutsidePool {
                low: 1,
                high: pool.low - 1,
                pool
            }
        );
        request.wanted = Some((22, 22));
        assert_eq!(
            registry.allocate(&request).unwrap_err().to_string(),
            format!("the requested UDP ports 22:22 are outside this server's pool {pool}")
        );
    }
}
