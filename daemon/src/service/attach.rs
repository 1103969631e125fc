//! `mosh-server attach`: choosing which of the caller's sessions to attach
//! to, limiting how often a user may ask, and asking the session's worker
//! for a new key over its root-only registration socket.
//!
//! Only the session's owner may attach (root may list and kill other users'
//! sessions, not attach to them). The new key is made by the worker, comes
//! back over the registration socket and goes to the helper in the control
//! response; it is never logged.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use zeroize::Zeroize;

use super::Shared;
use crate::control::{
    AttachSession, Presence, SessionReport, Started, WorkerReply, WorkerRequest, encode_line,
    read_line,
};
use crate::worker::unix_seconds;

/// How long a worker may take to re-key.
const REKEY_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-user token buckets for attach requests.
#[derive(Debug, Default)]
pub struct AttachLimiter {
    buckets: HashMap<u32, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    refilled: Instant,
}

/// How many attach requests a user may make: `burst` in a row, then one
/// per `refill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachRate {
    /// Requests in a row.
    pub burst: u32,
    /// Time that earns one more.
    pub refill: Duration,
}

impl AttachRate {
    /// The rate the configuration sets.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            burst: u32::try_from(config.attach_burst).unwrap_or(u32::MAX),
            refill: Duration::from_secs(60)
                / u32::try_from(config.attach_per_minute).unwrap_or(u32::MAX),
        }
    }
}

impl AttachLimiter {
    /// Takes one request of `uid`'s allowance at `now`, at `rate`; `Err`
    /// says how long until the next one is allowed.
    pub fn take(&mut self, uid: u32, now: Instant, rate: AttachRate) -> Result<(), Duration> {
        let AttachRate { burst, refill } = rate;
        let bucket = self.buckets.entry(uid).or_insert(Bucket {
            tokens: burst,
            refilled: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled);
        let earned = (elapsed.as_millis() / refill.as_millis()) as u32;
        if earned > 0 {
            bucket.tokens = bucket.tokens.saturating_add(earned).min(burst);
            bucket.refilled += refill * earned;
            if bucket.tokens == burst {
                bucket.refilled = now;
            }
        }
        if bucket.tokens == 0 {
            return Err(refill.saturating_sub(now.saturating_duration_since(bucket.refilled)));
        }
        bucket.tokens -= 1;
        Ok(())
    }
}

/// Why no session was attached: one line for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// The caller has no session that could be attached.
    #[error("no detached session to attach to (start one with: mosh-server new)")]
    NoneDetached,
    /// Every session of the caller has a live client.
    #[error(
        "no detached session; session {id} has a live client (heard from {ago} s ago): \
         take it over with: mosh-server attach --force {id}"
    )]
    OnlyLive {
        /// The most recently active live session.
        id: String,
        /// Seconds since its client was heard from.
        ago: u64,
    },
    /// No such session.
    #[error("no session {0} (moshctl list shows your sessions)")]
    Unknown(String),
    /// The session belongs to someone else.
    #[error("session {0} belongs to another user; only its owner can attach to it")]
    NotOwner(String),
    /// Root asked for another user's session.
    #[error(
        "session {id} belongs to {user}; root may list and kill it but not attach to it \
         (attach as {user})"
    )]
    RootNotOwner {
        /// The session.
        id: String,
        /// Its owner.
        user: String,
    },
    /// The chosen session has a live client and `force` was not given.
    #[error(
        "session {id} has a live client (heard from {ago} s ago); take it over with: \
         mosh-server attach --force {id}"
    )]
    Live {
        /// The session.
        id: String,
        /// Seconds since its client was heard from.
        ago: u64,
    },
    /// The session is ending.
    #[error("session {0} is ending")]
    Closing(String),
    /// The user asked too often.
    #[error("too many attach requests; try again in {0} s")]
    RateLimited(u64),
    /// The worker did not re-key.
    #[error("session {id} could not be attached: {why}")]
    Worker {
        /// The session.
        id: String,
        /// What went wrong.
        why: String,
    },
}

/// The session `request` names for `uid`, or the best candidate, with
/// notes for the helper's stderr when there were several.
pub fn choose(
    sessions: &[SessionReport],
    uid: u32,
    request: &AttachSession,
    now: u64,
) -> Result<(SessionReport, Vec<String>), AttachError> {
    if let Some(id) = &request.id {
        let session = sessions
            .iter()
            .find(|s| s.id == *id)
            .ok_or_else(|| AttachError::Unknown(id.clone()))?;
        if session.uid != uid {
            return Err(if uid == 0 {
                AttachError::RootNotOwner {
                    id: id.clone(),
                    user: session.user.clone(),
                }
            } else {
                AttachError::NotOwner(id.clone())
            });
        }
        return match session.presence(now) {
            Presence::Closing => Err(AttachError::Closing(id.clone())),
            Presence::Attached if !request.force => Err(AttachError::Live {
                id: id.clone(),
                ago: now.saturating_sub(session.heard(now)),
            }),
            _ => Ok((session.clone(), Vec::new())),
        };
    }
    let mut detached = detached_sessions(sessions, uid, now);
    detached.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.started.cmp(&a.1.started)));
    if let Some(&(since, chosen)) = detached.first() {
        let mut notes = Vec::new();
        if detached.len() > 1 {
            let others: Vec<&str> = detached[1..].iter().map(|(_, s)| s.id.as_str()).collect();
            notes.push(format!(
                "mosh-server: attaching to session {} (detached {} ago, the most recently \
                 active of {}); the others: {}; choose one with: mosh-server attach ID",
                chosen.id,
                human(now.saturating_sub(since)),
                detached.len(),
                others.join(" ")
            ));
        }
        return Ok((chosen.clone(), notes));
    }
    let mut live: Vec<&SessionReport> = sessions
        .iter()
        .filter(|s| {
            s.uid == uid && matches!(s.presence(now), Presence::Attached | Presence::Waiting)
        })
        .collect();
    live.sort_by_key(|s| std::cmp::Reverse(s.heard(now)));
    match live.first() {
        Some(session) if request.force => Ok((
            (*session).clone(),
            vec![format!(
                "mosh-server: no detached session; taking over session {}",
                session.id
            )],
        )),
        Some(session) if session.presence(now) == Presence::Waiting => {
            Err(AttachError::NoneDetached)
        }
        Some(session) => Err(AttachError::OnlyLive {
            id: session.id.clone(),
            ago: now.saturating_sub(session.heard(now)),
        }),
        None => Err(AttachError::NoneDetached),
    }
}

/// Attaches the caller (`uid`) to a session: checks the rate limit,
/// chooses the session and has its worker re-key.
pub async fn attach(
    shared: &Arc<Shared>,
    uid: u32,
    request: AttachSession,
) -> Result<(Started, Vec<String>), AttachError> {
    let rate = AttachRate::from_config(&shared.config());
    shared
        .attach_limiter()
        .take(uid, Instant::now(), rate)
        .map_err(|wait| AttachError::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u64))?;
    let now = unix_seconds(SystemTime::now());
    let sessions = shared.registry().all();
    let (session, notes) = choose(&sessions, uid, &request, now)?;
    let path = super::sessions::socket_path(&shared.sessions_dir, &session.id);
    let outcome = tokio::time::timeout(REKEY_TIMEOUT, rekey(&path, request.force)).await;
    let key = match outcome {
        Ok(Ok(key)) => key,
        Ok(Err(why)) => {
            return Err(AttachError::Worker {
                id: session.id,
                why,
            });
        }
        Err(_) => {
            return Err(AttachError::Worker {
                id: session.id,
                why: "its worker did not answer in time (a worker started before an upgrade \
                      to a daemon that attaches cannot be re-keyed)"
                    .into(),
            });
        }
    };
    tracing::info!(
        "uid {uid} attached to session {} of {} on port {}",
        session.id,
        session.user,
        session.port
    );
    Ok((
        Started {
            id: session.id.clone(),
            port: session.port,
            key,
            pid: session.pid,
            notice: Vec::new(),
        },
        notes,
    ))
}

/// Asks the worker listening at `path` for a new key; returns it printable.
async fn rekey(path: &Path, force: bool) -> Result<String, String> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|e| format!("its worker is gone ({e})"))?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(&encode_line(&WorkerRequest::Rekey { force }))
        .await
        .map_err(|e| format!("asking its worker: {e}"))?;
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        if let Err(error) = read_line(&mut reader, &mut line).await {
            line.zeroize();
            return Err(format!(
                "its worker did not answer ({error}); a worker started before an upgrade \
                 cannot be re-keyed"
            ));
        }
        let reply = serde_json::from_slice::<WorkerReply>(&line);
        line.zeroize();
        match &reply {
            Ok(WorkerReply::Rekeyed { key }) => return Ok(key.clone()),
            Ok(WorkerReply::Refused { message }) => return Err(message.clone()),
            Err(_) => continue,
        }
    }
}

/// The sessions of `uid` without a live client at `now`, each with since
/// when (seconds since the epoch).
fn detached_sessions(sessions: &[SessionReport], uid: u32, now: u64) -> Vec<(u64, &SessionReport)> {
    sessions
        .iter()
        .filter(|s| s.uid == uid)
        .filter_map(|s| match s.presence(now) {
            Presence::Detached(since) => Some((since, s)),
            _ => None,
        })
        .collect()
}

/// What a new session of `uid` tells about the user's detached sessions
/// (none: nothing), one line each: how many, each one's id, how long it has
/// been detached and its foreground command, and the commands to attach to
/// one (on `host`) or end it.
pub fn notice(sessions: &[SessionReport], uid: u32, now: u64, host: &str) -> Vec<String> {
    let mut detached = detached_sessions(sessions, uid, now);
    if detached.is_empty() {
        return Vec::new();
    }
    detached.sort_by_key(|&(since, _)| std::cmp::Reverse(since));
    let count = detached.len();
    let noun = if count == 1 { "session" } else { "sessions" };
    let mut lines = vec![format!(
        "mosh-daemon: you have {count} detached {noun} on this server:"
    )];
    for (since, session) in &detached {
        lines.push(format!(
            "  {}  detached {} ago  {}",
            session.id,
            human(now.saturating_sub(*since)),
            session.foreground.as_deref().unwrap_or("-")
        ));
    }
    let id = &detached[0].1.id;
    lines.push(format!("Attach to one: mosh --attach={id} {host}"));
    lines.push(format!("   or, on this server: mosh-server attach {id}"));
    lines.push(format!("End one: moshctl kill {id}"));
    lines
}

/// A duration in seconds as `42s`, `5m`, `3h` or `2d`.
pub fn human(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, uid: u32, state: &str, last_contact: Option<u64>) -> SessionReport {
        SessionReport {
            id: id.into(),
            user: format!("user{uid}"),
            uid,
            pid: 10,
            port: 60001,
            client: last_contact.map(|_| "192.0.2.1:4000".into()),
            started: 100,
            last_contact,
            client_live: None,
            state: state.into(),
            cipher: None,
            attaches: 1,
            rekeyed: None,
            detached_since: None,
            foreground: None,
            history: None,
        }
    }

    const NOW: u64 = 10_000;

    fn ask(id: Option<&str>, force: bool) -> AttachSession {
        AttachSession {
            id: id.map(Into::into),
            force,
        }
    }

    #[test]
    fn without_an_id_the_most_recently_active_detached_session_is_chosen() {
        let sessions = [
            report("old", 1000, "connected", Some(NOW - 3000)),
            report("new", 1000, "connected", Some(NOW - 300)),
            report("live", 1000, "connected", Some(NOW - 2)),
            report("theirs", 1001, "connected", Some(NOW - 100)),
            report("fresh", 1000, "waiting", None),
        ];
        let (chosen, notes) = choose(&sessions, 1000, &ask(None, false), NOW).unwrap();
        assert_eq!(chosen.id, "new");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("the others: old;"), "{notes:?}");
        assert!(notes[0].contains("mosh-server attach ID"), "{notes:?}");
        let (chosen, notes) = choose(&sessions[1..], 1000, &ask(None, false), NOW).unwrap();
        assert_eq!(chosen.id, "new");
        assert!(notes.is_empty());
    }

    #[test]
    fn live_clients_need_force() {
        let sessions = [report("live", 1000, "connected", Some(NOW - 2))];
        assert_eq!(
            choose(&sessions, 1000, &ask(None, false), NOW).unwrap_err(),
            AttachError::OnlyLive {
                id: "live".into(),
                ago: 2
            }
        );
        assert_eq!(
            choose(&sessions, 1000, &ask(Some("live"), false), NOW).unwrap_err(),
            AttachError::Live {
                id: "live".into(),
                ago: 2
            }
        );
        assert_eq!(
            choose(&sessions, 1000, &ask(Some("live"), true), NOW)
                .unwrap()
                .0
                .id,
            "live"
        );
        assert_eq!(
            choose(&sessions, 1000, &ask(None, true), NOW).unwrap().0.id,
            "live"
        );
    }

    #[test]
    fn only_the_owner_may_attach() {
        let sessions = [report("s1", 1000, "connected", Some(NOW - 300))];
        assert_eq!(
            choose(&sessions, 1001, &ask(Some("s1"), true), NOW).unwrap_err(),
            AttachError::NotOwner("s1".into())
        );
        assert!(matches!(
            choose(&sessions, 0, &ask(Some("s1"), true), NOW).unwrap_err(),
            AttachError::RootNotOwner { .. }
        ));
        assert_eq!(
            choose(&sessions, 0, &ask(None, true), NOW).unwrap_err(),
            AttachError::NoneDetached
        );
        assert_eq!(
            choose(&sessions, 1000, &ask(Some("nope"), false), NOW).unwrap_err(),
            AttachError::Unknown("nope".into())
        );
    }

    #[test]
    fn a_worker_that_reports_liveness_is_believed_whatever_the_last_contact_says() {
        let mut live = report("l", 1000, "connected", Some(NOW - 300));
        live.client_live = Some(true);
        assert_eq!(live.presence(NOW), Presence::Attached);
        assert_eq!(live.heard(NOW), NOW, "a live client counts as heard now");
        assert_eq!(live.clone().listed(NOW).last_contact, Some(NOW));
        assert_eq!(
            choose(
                std::slice::from_ref(&live),
                1000,
                &ask(Some("l"), false),
                NOW
            )
            .unwrap_err(),
            AttachError::Live {
                id: "l".into(),
                ago: 0
            }
        );
        let mut silent = report("s", 1000, "connected", Some(NOW - 2));
        silent.client_live = Some(false);
        assert_eq!(silent.presence(NOW), Presence::Detached(NOW - 2));
        assert_eq!(silent.heard(NOW), NOW - 2);
        assert_eq!(
            choose(&[live, silent], 1000, &ask(None, false), NOW)
                .unwrap()
                .0
                .id,
            "s"
        );
        let older_worker = report("o", 1000, "connected", Some(NOW - 300));
        assert_eq!(older_worker.presence(NOW), Presence::Detached(NOW - 300));
    }

    #[test]
    fn re_keyed_sessions_without_a_client_are_detached_and_closing_ones_are_not() {
        let mut rekeyed = report("r", 1000, "detached", Some(NOW - 1));
        rekeyed.rekeyed = Some(NOW - 1);
        assert_eq!(rekeyed.presence(NOW), Presence::Detached(NOW - 1));
        let closing = report("c", 1000, "closing", Some(NOW - 100));
        assert_eq!(closing.presence(NOW), Presence::Closing);
        assert_eq!(
            choose(&[closing], 1000, &ask(Some("c"), true), NOW).unwrap_err(),
            AttachError::Closing("c".into())
        );
        assert_eq!(
            choose(&[rekeyed], 1000, &ask(None, false), NOW)
                .unwrap()
                .0
                .id,
            "r"
        );
    }

    #[test]
    fn the_notice_lists_the_detached_sessions_and_the_commands() {
        let mut vim = report("aaaa1111", 1000, "connected", Some(NOW - 300));
        vim.foreground = Some("vim notes.txt".into());
        let sessions = [
            vim,
            report("bbbb2222", 1000, "connected", Some(NOW - 7200)),
            report("cccc3333", 1000, "connected", Some(NOW - 1)),
            report("dddd4444", 1001, "connected", Some(NOW - 300)),
        ];
        let lines = notice(&sessions, 1000, NOW, "example.org");
        assert_eq!(
            lines,
            [
                "mosh-daemon: you have 2 detached sessions on this server:",
                "  aaaa1111  detached 5m ago  vim notes.txt",
                "  bbbb2222  detached 2h ago  -",
                "Attach to one: mosh --attach=aaaa1111 example.org",
                "   or, on this server: mosh-server attach aaaa1111",
                "End one: moshctl kill aaaa1111",
            ]
        );
        assert!(notice(&sessions[2..], 1000, NOW, "example.org").is_empty());
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_one_a_second() {
        let rate = AttachRate::from_config(&crate::config::Config::default());
        assert_eq!(
            rate,
            AttachRate {
                burst: 10,
                refill: Duration::from_secs(1)
            }
        );
        let mut limiter = AttachLimiter::default();
        let start = Instant::now();
        for _ in 0..rate.burst {
            assert!(limiter.take(1000, start, rate).is_ok());
        }
        assert!(limiter.take(1000, start, rate).is_err());
        assert!(
            limiter.take(1001, start, rate).is_ok(),
            "limits are per user"
        );
        assert!(limiter.take(1000, start + rate.refill, rate).is_ok());
        assert!(limiter.take(1000, start + rate.refill, rate).is_err());
        assert!(limiter.take(1000, start + rate.refill * 100, rate).is_ok());
    }
}
