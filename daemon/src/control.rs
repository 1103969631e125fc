//! The control protocol between `mosh-server new` (the helper), `moshctl`
//! and the daemon: one JSON request line per connection on
//! `/run/mosh-daemon/control.sock`, answered by one JSON response line.
//!
//! The caller's identity is never part of a request: the daemon takes it
//! from the socket (`SO_PEERCRED`). Lines are bounded by [`MAX_LINE`]; a
//! longer one is refused without being buffered.
//!
//! The same framing carries [`SessionReport`]s from workers to the daemon,
//! and, on the root-only registration socket, the daemon's
//! [`WorkerRequest`]s and the worker's [`WorkerReply`]s.

use std::io;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use zeroize::Zeroize;

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/mosh-daemon/control.sock";

/// Environment variable naming the control socket (tests, unusual setups).
pub const SOCKET_VARIABLE: &str = "MOSH_DAEMON_SOCKET";

/// Longest request or response line, newline included.
pub const MAX_LINE: usize = 64 * 1024;

/// The control socket clients use: `$MOSH_DAEMON_SOCKET`, else the default.
pub fn socket_path() -> std::path::PathBuf {
    std::env::var_os(SOCKET_VARIABLE)
        .filter(|path| !path.is_empty())
        .map(Into::into)
        .unwrap_or_else(|| DEFAULT_SOCKET.into())
}

/// A request to the daemon, as sent: its new-session part `N` is a
/// [`NewSession`] on the wire, and a
/// [`SessionRequest`](crate::request::SessionRequest) once the daemon has
/// checked it ([`crate::request::parse_request`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request<N = NewSession> {
    /// Start a session for the caller (`mosh-server new`).
    New(N),
    /// Give one of the caller's sessions a new key for a new client
    /// (`mosh-server attach`).
    Attach(AttachSession),
    /// The caller's sessions (all of them for root).
    List {},
    /// End sessions.
    Kill(KillTarget),
    /// The daemon's state.
    Status {},
    /// Show or manage the firewall rules (`open` and `close`: root only).
    Firewall {
        /// What to do.
        action: FirewallRequest,
    },
}

/// What `moshctl firewall` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirewallRequest {
    /// Report the state.
    Status,
    /// Put the rules in place again, and keep them in step with sessions.
    Open,
    /// Remove every rule, and add none until `Open`.
    Close,
}

/// What `mosh-server new` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// The command after `--`, or `None` for the login shell.
    pub command: Option<Vec<String>>,
    /// `-c`: the client's colour count (a C `int`, as stock's).
    pub colors: i64,
    /// `-i`/`-s`: the address to bind, if not any.
    pub bind: Option<String>,
    /// `-p`: the ports the client accepts (`[0, 0]` for any).
    pub ports: Option<(u16, u16)>,
    /// The locale for the session (`NAME=VALUE`).
    pub locale: Vec<String>,
    /// The helper's `SSH_CONNECTION`.
    pub ssh_connection: Option<String>,
    /// `--scrollback=N`: lines of history to keep, or `None` for the
    /// daemon's `scrollback` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrollback: Option<usize>,
}

/// What `mosh-server attach` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachSession {
    /// The session, or `None` for the caller's most recently active
    /// detached one.
    #[serde(default)]
    pub id: Option<String>,
    /// Take the session over even if its client is still live.
    #[serde(default)]
    pub force: bool,
}

/// Which sessions to end. Exactly one of the fields is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillTarget {
    /// These sessions.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Every session of this user.
    #[serde(default)]
    pub user: Option<String>,
    /// Every session whose client was last heard from this many seconds
    /// ago or longer (never heard from: since it started).
    #[serde(default)]
    pub idle_secs: Option<u64>,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    /// A session was started.
    Started(Started),
    /// A session was given a new key (`mosh-server attach`).
    Attached {
        /// The session, its port and its new key.
        session: Started,
        /// Lines for the helper's stderr: which session was chosen among
        /// several, and how to choose another.
        notes: Vec<String>,
    },
    /// The visible sessions.
    Sessions {
        /// One report each.
        sessions: Vec<SessionReport>,
    },
    /// Sessions were told to end.
    Killed {
        /// Their ids.
        ids: Vec<String>,
    },
    /// The daemon's state.
    Status(DaemonStatus),
    /// The firewall's state.
    Firewall(FirewallStatus),
    /// `attach` found no detached session of the caller's (`mosh-server
    /// new --reattach` starts a new one instead).
    NoDetached {
        /// One line for the user.
        message: String,
    },
    /// The request was refused or failed.
    Error {
        /// One line for the user.
        message: String,
    },
}

/// A new session: what the helper prints. Its `Debug` form leaves the key
/// out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The session id.
    pub id: String,
    /// Its UDP port.
    pub port: u16,
    /// Its key, printable.
    pub key: String,
    /// The worker's pid.
    pub pid: u32,
    /// For a new session: the caller's detached sessions and how to attach
    /// to them (`mosh-server new -v` prints it), one line each.
    #[serde(default)]
    pub notice: Vec<String>,
}

impl Drop for Started {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("id", &self.id)
            .field("port", &self.port)
            .field("key", &"<secret>")
            .field("pid", &self.pid)
            .field("notice", &self.notice)
            .finish()
    }
}

/// `moshctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// The daemon's version.
    pub version: String,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// Sessions visible to the caller.
    pub sessions: usize,
    /// Ports in use.
    pub ports_used: usize,
    /// Ports in the pool.
    pub ports_total: usize,
    /// The pool, `LOW:HIGH`.
    pub port_range: String,
    /// The firewall backend and its state, e.g. `nftables (open)`.
    #[serde(default)]
    pub firewall: String,
}

/// `moshctl firewall status`: what the daemon's firewall rules open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallStatus {
    /// The backend in use: `nftables`, `ufw`, `iptables`, `firewalld` or
    /// `none`.
    pub backend: String,
    /// The backend the configuration asks for (`auto` included).
    pub configured: String,
    /// `open` (rules in place), `closed` (by `moshctl firewall close`),
    /// `error` (the backend failed; see `error`) or `disabled` (backend
    /// `none`).
    pub state: String,
    /// What went wrong last, with the command and its output.
    pub error: Option<String>,
    /// The UDP ports opened one by one (backends that open per session).
    pub ports: Vec<u16>,
    /// The UDP port range opened as a whole (`LOW:HIGH`), for backends
    /// that open the pool's range.
    pub range: Option<String>,
}

/// What a worker says about its session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReport {
    /// The session id.
    pub id: String,
    /// The user's name.
    pub user: String,
    /// The user's uid.
    pub uid: u32,
    /// The worker's pid.
    pub pid: u32,
    /// The UDP port.
    pub port: u16,
    /// The client's address, once known.
    pub client: Option<String>,
    /// When the session started (seconds since the epoch).
    pub started: u64,
    /// When the client was last heard from (seconds since the epoch). From
    /// a worker that reports `client_live`: exact once the client is
    /// silent; while it is live, when it became live (it is heard every few
    /// seconds, and the daemon counts it as heard now, [`Self::heard`]).
    pub last_contact: Option<u64>,
    /// From a worker: whether its client is live, heard from in the last
    /// [`LIVE_SECS`] seconds. The worker reports when this changes, not
    /// each time the client is heard. Absent from older workers: liveness
    /// then follows from `last_contact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_live: Option<bool>,
    /// From a worker: `waiting` (no client yet), `connected` (a client was
    /// heard from under the current key), `detached` (re-keyed, no client
    /// under the new key yet) or `closing`; whether a connected client is
    /// still live follows from `last_contact` ([`SessionReport::presence`]).
    /// In `moshctl list`: `waiting`, `attached`, `detached` or `closing`.
    pub state: String,
    /// The cipher suite sealing the server's datagrams: `aes-128-ocb`
    /// (mosh's, and always with a stock client) or `aes-256-gcm+x25519`
    /// (the native cipher, once switched). Absent until the worker reports.
    #[serde(default)]
    pub cipher: Option<String>,
    /// In `moshctl list`: since when the session has had no live client
    /// (seconds since the epoch), when `detached`.
    #[serde(default)]
    pub detached_since: Option<u64>,
    /// How many clients have attached: the first one, and one more for
    /// each client after a re-key.
    #[serde(default)]
    pub attaches: u32,
    /// When the session was last re-keyed (seconds since the epoch).
    #[serde(default)]
    pub rekeyed: Option<u64>,
    /// The command in the foreground of the session's terminal.
    #[serde(default)]
    pub foreground: Option<String>,
    /// The scrollback history the session holds for our clients; absent
    /// when scrollback is off.
    #[serde(default)]
    pub history: Option<HistoryHeld>,
}

/// How much scrollback history a session holds (bounded by its
/// `scrollback` lines and by bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryHeld {
    /// Lines kept.
    pub lines: u64,
    /// Their encoded size in bytes.
    pub bytes: u64,
}

/// A client heard from this recently is live: attaching to its session
/// needs `--force`.
pub const LIVE_SECS: u64 = 10;

/// Whether a session has a client, as `moshctl list` and `attach` see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Started, no client yet.
    Waiting,
    /// A live client (heard from in the last [`LIVE_SECS`] seconds).
    Attached,
    /// No live client, since this time (seconds since the epoch).
    Detached(u64),
    /// Ending.
    Closing,
}

impl Presence {
    /// The state's name in `moshctl list`.
    pub fn name(self) -> &'static str {
        match self {
            Presence::Waiting => "waiting",
            Presence::Attached => "attached",
            Presence::Detached(_) => "detached",
            Presence::Closing => "closing",
        }
    }
}

impl SessionReport {
    /// The report as `moshctl list` shows it at `now`: the state one of
    /// [`Presence`]'s names, with `detached_since` set.
    pub fn listed(mut self, now: u64) -> Self {
        let presence = self.presence(now);
        if self.last_contact.is_some() {
            self.last_contact = Some(self.heard(now));
        }
        self.state = presence.name().to_owned();
        self.detached_since = match presence {
            Presence::Detached(since) => Some(since),
            _ => None,
        };
        self
    }

    /// Whether the session has a live client at `now` (seconds since the
    /// epoch).
    pub fn presence(&self, now: u64) -> Presence {
        match self.state.as_str() {
            "closing" => return Presence::Closing,
            "waiting" | "starting" => return Presence::Waiting,
            _ => {}
        }
        let connected = matches!(self.state.as_str(), "connected" | "attached");
        let heard = self.last_contact.unwrap_or(self.started);
        let live = match self.client_live {
            Some(live) => live,
            // Whole seconds on both sides: a difference of LIVE_SECS may be
            // a little less in fact, and the worker would still call it live.
            None => now.saturating_sub(heard) <= LIVE_SECS,
        };
        if connected && live {
            return Presence::Attached;
        }
        Presence::Detached(heard.max(self.rekeyed.unwrap_or(0)))
    }

    /// When the client was last heard from as of `now` (seconds since the
    /// epoch): `now` while the worker calls it live, otherwise the last
    /// contact, or the session's start if there was none.
    pub fn heard(&self, now: u64) -> u64 {
        if self.presence(now) == Presence::Attached && self.client_live == Some(true) {
            return now;
        }
        self.last_contact.unwrap_or(self.started)
    }
}

/// What the daemon asks a worker over its registration socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "worker_request", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkerRequest {
    /// Make a new key and a fresh transport for a new client.
    Rekey {
        /// Even if the current client is live.
        force: bool,
    },
}

/// A worker's answer to a [`WorkerRequest`], among its report lines. Its
/// `Debug` form leaves the key out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "worker_reply", rename_all = "snake_case")]
pub enum WorkerReply {
    /// The session has a new key; the old one no longer works.
    Rekeyed {
        /// The new key, printable.
        key: String,
    },
    /// The worker did not re-key.
    Refused {
        /// One line for the user.
        message: String,
    },
}

impl Drop for WorkerReply {
    fn drop(&mut self) {
        if let WorkerReply::Rekeyed { key } = self {
            key.zeroize();
        }
    }
}

impl std::fmt::Debug for WorkerReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerReply::Rekeyed { .. } => f.write_str("Rekeyed { key: <secret> }"),
            WorkerReply::Refused { message } => {
                f.debug_struct("Refused").field("message", message).finish()
            }
        }
    }
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The peer closed the connection before a whole line.
    #[error("connection closed")]
    Closed,
    /// The line exceeds [`MAX_LINE`].
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    /// The line is not the expected JSON.
    #[error("bad request: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads one newline-terminated line of at most [`MAX_LINE`] bytes into
/// `line` (cleared first), without ever buffering more than that.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> Result<(), LineError> {
    line.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Err(LineError::Closed);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..end], true),
            None => (available, false),
        };
        if line.len() + chunk.len() >= MAX_LINE {
            return Err(LineError::TooLong);
        }
        line.extend_from_slice(chunk);
        let consumed = chunk.len() + usize::from(done);
        reader.consume(consumed);
        if done {
            return Ok(());
        }
    }
}

/// Reads one line and parses it as JSON.
pub async fn read_message<R, T>(reader: &mut R) -> Result<T, LineError>
where
    R: AsyncBufRead + Unpin,
    T: for<'de> Deserialize<'de>,
{
    let mut line = Vec::new();
    read_line(reader, &mut line).await?;
    Ok(serde_json::from_slice(&line)?)
}

/// A value as one JSON line.
pub fn encode_line<T: Serialize>(value: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).expect("protocol types always serialize");
    line.push(b'\n');
    line
}

/// Why [`call`] got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nothing listens on the socket (no daemon).
    #[error("no daemon at {path}: {source}")]
    NoDaemon {
        /// The socket.
        path: String,
        /// Why connecting failed.
        source: io::Error,
    },
    /// The daemon did not answer properly.
    #[error("the daemon did not answer: {0}")]
    NoAnswer(String),
}

/// Sends one request to the daemon at `path` and reads its answer,
/// waiting at most `timeout` for each step.
pub fn call(
    path: &std::path::Path,
    request: &Request,
    timeout: std::time::Duration,
) -> Result<Response, CallError> {
    use std::io::{BufRead, Read, Write};
    let stream =
        std::os::unix::net::UnixStream::connect(path).map_err(|source| CallError::NoDaemon {
            path: path.display().to_string(),
            source,
        })?;
    let failed = |e: io::Error| CallError::NoAnswer(e.to_string());
    stream.set_read_timeout(Some(timeout)).map_err(failed)?;
    stream.set_write_timeout(Some(timeout)).map_err(failed)?;
    (&stream).write_all(&encode_line(request)).map_err(failed)?;
    let mut line = Vec::new();
    io::BufReader::new(&stream)
        .take(MAX_LINE as u64 * 64)
        .read_until(b'\n', &mut line)
        .map_err(failed)?;
    if !line.ends_with(b"\n") {
        return Err(CallError::NoAnswer("connection closed".into()));
    }
    serde_json::from_slice(&line).map_err(|e| CallError::NoAnswer(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_keeps_the_key_secret() {
        let started = Response::Started(Started {
            id: "ab12".into(),
            port: 60001,
            key: "SpQ+QcR4Ww8kzZWK8c9hpw".into(),
            pid: 7,
            notice: Vec::new(),
        });
        let text = format!("{started:?}");
        assert!(!text.contains("SpQ+"), "{text}");
        assert!(text.contains("60001"), "{text}");
    }

    async fn read(input: &[u8]) -> Result<Request, LineError> {
        let mut reader = tokio::io::BufReader::new(input);
        read_message(&mut reader).await
    }

    #[tokio::test]
    async fn requests_round_trip() {
        for request in [
            Request::List {},
            Request::Status {},
            Request::Kill(KillTarget {
                ids: vec!["ab12".into()],
                ..KillTarget::default()
            }),
            Request::New(NewSession {
                command: Some(vec!["/bin/sh".into()]),
                colors: 256,
                locale: vec!["LANG=C.UTF-8".into()],
                ..NewSession::default()
            }),
        ] {
            let line = encode_line(&request);
            assert_eq!(read(&line).await.unwrap(), request);
        }
        assert_eq!(
            read(b"{\"request\":\"list\"}\n").await.unwrap(),
            Request::List {}
        );
    }

    #[tokio::test]
    async fn garbage_wrong_types_and_unknown_fields_are_malformed() {
        for input in [
            &b"garbage\n"[..],
            b"{\"request\":\"list\",\"uid\":0}\n",
            b"{\"request\":\"kill\",\"ids\":7}\n",
            b"{\"request\":\"new\",\"colors\":\"many\"}\n",
            b"[1,2,3]\n",
            b"\xff\xfe\n",
        ] {
            assert!(
                matches!(read(input).await, Err(LineError::Malformed(_))),
                "{input:?}"
            );
        }
    }

    #[tokio::test]
    async fn long_lines_and_early_ends_are_refused() {
        let long = vec![b'x'; MAX_LINE + 10];
        assert!(matches!(read(&long).await, Err(LineError::TooLong)));
        assert!(matches!(
            read(b"{\"request\":\"list\"}").await,
            Err(LineError::Closed)
        ));
    }
}
