//! One control connection: read one bounded request line, answer it for
//! the peer whose identity the kernel reports, close.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nix::unistd::{Group, Uid, User};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use zeroize::Zeroize;

use super::{Shared, Slot, attach, sessions};
use crate::control::{
    DaemonStatus, FirewallRequest, KillTarget, LineError, Request, Response, SessionReport,
    encode_line, read_line,
};
use crate::request::{CheckedRequest, SessionRequest, parse_request};
use crate::worker::unix_seconds;

/// A client must take the answer within this time.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is asking, as the kernel says.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    uid: u32,
}

impl Peer {
    /// The peer whose uid `SO_PEERCRED` gave.
    pub fn new(uid: u32) -> Self {
        Self { uid }
    }

    fn is_root(self) -> bool {
        self.uid == 0
    }

    fn sees(self, report: &SessionReport) -> bool {
        self.is_root() || report.uid == self.uid
    }
}

/// Serves one control connection of `peer`, holding its `slot` until done.
pub async fn serve_connection(shared: Arc<Shared>, stream: UnixStream, peer: Peer, slot: Slot) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    let request_timeout = shared.config().control.request_timeout();
    let request = tokio::time::timeout(request_timeout, read_line(&mut reader, &mut line));
    let response = match request.await {
        Ok(Ok(())) => match parse_request(&line) {
            Ok(request) => answer(&shared, peer, request).await,
            Err(error) => {
                tracing::info!("uid {}: refused a request: {error}", peer.uid);
                error_response(error.to_string())
            }
        },
        Ok(Err(LineError::Closed)) => return,
        Ok(Err(error)) => {
            tracing::debug!("uid {}: refused request: {error}", peer.uid);
            error_response(error.to_string())
        }
        Err(_) => error_response("no request received in time".into()),
    };
    line.zeroize();
    // A started or attached session's answer holds its key: wiped once sent.
    let mut line = encode_line(&response);
    drop(response);
    let reply = async {
        write.write_all(&line).await?;
        write.shutdown().await
    };
    let _ = tokio::time::timeout(REPLY_TIMEOUT, reply).await;
    line.zeroize();
    drop(slot);
}

fn error_response(message: String) -> Response {
    Response::Error { message }
}

async fn answer(shared: &Arc<Shared>, peer: Peer, request: CheckedRequest) -> Response {
    match request {
        Request::New(new) => new_session(shared, peer, new).await,
        Request::Attach(request) => match attach::attach(shared, peer.uid, request).await {
            Ok((session, notes)) => Response::Attached { session, notes },
            Err(
                error @ (attach::AttachError::NoneDetached | attach::AttachError::OnlyLive { .. }),
            ) => Response::NoDetached {
                message: error.to_string(),
            },
            Err(error) => {
                tracing::info!("uid {}: not attached: {error}", peer.uid);
                error_response(error.to_string())
            }
        },
        Request::List {} => Response::Sessions {
            sessions: visible(shared, peer),
        },
        Request::Kill(target) => kill(shared, peer, target),
        Request::Status {} => status(shared, peer),
        Request::Firewall { action } => firewall(shared, peer, action).await,
    }
}

/// `moshctl firewall`: anyone may look; only root may open or close.
async fn firewall(shared: &Shared, peer: Peer, action: FirewallRequest) -> Response {
    if action != FirewallRequest::Status && !peer.is_root() {
        return error_response("only root may open or close the firewall".into());
    }
    match shared.firewall.request(action).await {
        Ok(status) => Response::Firewall(status),
        Err(message) => error_response(message),
    }
}

fn visible(shared: &Shared, peer: Peer) -> Vec<SessionReport> {
    let now = unix_seconds(SystemTime::now());
    let mut sessions = shared.registry().all();
    sessions.retain(|report| peer.sees(report));
    sessions
        .into_iter()
        .map(|report| report.listed(now))
        .collect()
}

async fn new_session(shared: &Arc<Shared>, peer: Peer, request: SessionRequest) -> Response {
    let user = match User::from_uid(Uid::from_raw(peer.uid)) {
        Ok(Some(user)) => user,
        Ok(None) => return error_response(format!("uid {} has no passwd entry", peer.uid)),
        Err(errno) if super::out_of_descriptors(&std::io::Error::from(errno)) => {
            return error_response(super::OUT_OF_DESCRIPTORS.into());
        }
        Err(errno) => {
            tracing::warn!("looking up uid {}: {errno}", peer.uid);
            return error_response(format!("could not look up uid {}: {errno}", peer.uid));
        }
    };
    let config = shared.config();
    if !allowed(&config.allowed_users, &config.allowed_groups, &user) {
        tracing::info!("refused a session for {}: not allowed", user.name);
        return error_response(format!(
            "user {} is not allowed to start sessions here",
            user.name
        ));
    }
    match sessions::start(shared, &config, user, request).await {
        Ok(started) => Response::Started(started),
        Err(message) => error_response(message),
    }
}

/// Whether `user` may start sessions: everyone when no list is set.
fn allowed(users: &[String], groups: &[String], user: &User) -> bool {
    if users.is_empty() && groups.is_empty() {
        return true;
    }
    if users.contains(&user.name) {
        return true;
    }
    let Ok(name) = std::ffi::CString::new(user.name.as_str()) else {
        return false;
    };
    let member_of = nix::unistd::getgrouplist(&name, user.gid).unwrap_or_default();
    groups.iter().any(|group| {
        Group::from_name(group)
            .ok()
            .flatten()
            .is_some_and(|g| g.gid == user.gid || member_of.contains(&g.gid))
    })
}

fn kill(shared: &Shared, peer: Peer, target: KillTarget) -> Response {
    let chosen = [
        !target.ids.is_empty(),
        target.user.is_some(),
        target.idle_secs.is_some(),
    ];
    if chosen.iter().filter(|&&set| set).count() != 1 {
        return error_response("kill needs session ids, a user, or an idle time".into());
    }
    let sessions = shared.registry().all();
    let victims: Vec<SessionReport> = if !target.ids.is_empty() {
        let mut victims = Vec::new();
        for id in &target.ids {
            match sessions.iter().find(|s| s.id == *id) {
                None => return error_response(format!("no session {id}")),
                Some(session) if !peer.sees(session) => {
                    return error_response(format!(
                        "session {id} belongs to another user; only root or its owner can kill it"
                    ));
                }
                Some(session) => victims.push(session.clone()),
            }
        }
        victims
    } else if let Some(name) = &target.user {
        let uid = match User::from_name(name) {
            Ok(Some(user)) => user.uid.as_raw(),
            _ => return error_response(format!("no user {name}")),
        };
        if !peer.is_root() && uid != peer.uid {
            return error_response(format!(
                "only root can kill the sessions of another user ({name})"
            ));
        }
        sessions.into_iter().filter(|s| s.uid == uid).collect()
    } else {
        let idle = target.idle_secs.unwrap_or(0);
        let now = unix_seconds(SystemTime::now());
        sessions
            .into_iter()
            .filter(|s| peer.sees(s))
            .filter(|s| now.saturating_sub(s.heard(now)) >= idle)
            .collect()
    };
    let mut ids = Vec::with_capacity(victims.len());
    for victim in victims {
        match sessions::kill(&victim) {
            Ok(()) => {
                tracing::info!(
                    "uid {} killed session {} of {}",
                    peer.uid,
                    victim.id,
                    victim.user
                );
                ids.push(victim.id);
            }
            Err(error) => return error_response(format!("killing session {}: {error}", victim.id)),
        }
    }
    Response::Killed { ids }
}

fn status(shared: &Shared, peer: Peer) -> Response {
    let pool = shared.config().port_range;
    let registry = shared.registry();
    let sessions = if peer.is_root() {
        registry.len()
    } else {
        registry.count_for(peer.uid)
    };
    Response::Status(DaemonStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: shared.started.elapsed().as_secs(),
        sessions,
        ports_used: registry.ports_used(pool),
        ports_total: pool.size(),
        port_range: pool.to_string(),
        firewall: {
            let firewall = shared.firewall.status();
            format!("{} ({})", firewall.backend, firewall.state)
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::Gid;

    fn root_user() -> User {
        User::from_uid(Uid::from_raw(0)).unwrap().unwrap()
    }

    #[test]
    fn allow_lists() {
        let root = root_user();
        let root_group = Group::from_gid(Gid::from_raw(0)).unwrap().unwrap().name;
        assert!(allowed(&[], &[], &root));
        assert!(allowed(&["root".into()], &[], &root));
        assert!(!allowed(&["alice".into()], &[], &root));
        assert!(allowed(&["alice".into()], &[root_group], &root));
        assert!(!allowed(&[], &["no-such-group-here".into()], &root));
    }
}
