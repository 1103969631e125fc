//! The per-session worker process.
//!
//! The daemon (root) binds the session's UDP socket and a registration
//! socket under `sessions/`, then starts `mosh-daemon-worker` with them as
//! descriptors [`UDP_FD`] and [`REGISTRATION_FD`], and writes a
//! [`WorkerSetup`] (user, command, key) into a pipe at [`SETUP_FD`]: the key
//! never appears in an argument list, an environment or a file.
//!
//! The worker reads the setup, leaves the daemon's session (so it outlives
//! the daemon), drops to the user (initgroups, setgid, setuid, checked)
//! before it reads a single network byte, sets up the user's environment
//! and home directory, and runs the session. Whoever connects to the
//! registration socket (only root can) gets a [`SessionReport`] line now and
//! whenever the session's state changes, and may send [`WorkerRequest`]
//! lines: a re-key is answered by a [`WorkerReply`] line carrying the new
//! key, which travels only over that root-only socket.

use std::ffi::CString;
use std::io::{self, IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mosh_proto::Base64Key;
use nix::unistd::{Gid, Uid};
use serde::{Deserialize, Serialize};
use tokio::io::BufReader;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use zeroize::{Zeroize, Zeroizing};

use crate::alarm::Alarm;
use crate::control::{
    HistoryHeld, SessionReport, WorkerReply, WorkerRequest, encode_line, read_message,
};
use crate::pty::{ChildCommand, motd};
use crate::read_registered::ReadRegistered;
use crate::session::{self, Rekey, SessionConfig, SessionStatus};

/// The session's UDP socket, bound by the daemon.
pub const UDP_FD: i32 = 3;
/// The listening registration socket.
pub const REGISTRATION_FD: i32 = 4;
/// The read end of the pipe carrying the [`WorkerSetup`].
pub const SETUP_FD: i32 = 5;

/// Lowest descriptor used to park descriptors while moving them into place.
const PARKING_FD: i32 = 10;
/// How long a worker started by systemd waits for its descriptors.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest session id carried by a handoff message.
const MAX_HANDOFF_ID: usize = 64;

/// Largest setup message read from the pipe.
const MAX_SETUP: u64 = 256 * 1024;
/// Allocations at least this large are mapped on their own (glibc's
/// default, fixed), so they go back to the system when freed.
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
/// Reports are sent at most this often.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// `PATH` for user sessions.
const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/games";
/// `PATH` for root's sessions.
const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything a worker needs, sent by the daemon over the setup pipe. Its
/// `Debug` form leaves the key out.
#[derive(Clone, Serialize, Deserialize)]
pub struct WorkerSetup {
    /// The session id.
    pub id: String,
    /// The user's name.
    pub user: String,
    /// The user's uid.
    pub uid: u32,
    /// The user's primary gid.
    pub gid: u32,
    /// The user's home directory.
    pub home: PathBuf,
    /// The user's login shell.
    pub shell: PathBuf,
    /// The command, or `None` for the login shell.
    pub command: Option<Vec<String>>,
    /// The client's colour count.
    pub colors: i32,
    /// Locale settings, `NAME=VALUE`.
    pub locale: Vec<String>,
    /// The helper's `SSH_CONNECTION`.
    pub ssh_connection: Option<String>,
    /// The session key, printable.
    pub key: String,
    /// The UDP port (for reports).
    pub port: u16,
    /// End the session after this many seconds without its client (0: never).
    pub idle_timeout_secs: u64,
    /// Lines of scrollback history kept for our clients (0: none).
    #[serde(default = "default_scrollback")]
    pub scrollback: usize,
    /// Lines to show on the new screen: the user's detached sessions.
    #[serde(default)]
    pub notice: Vec<String>,
}

fn default_scrollback() -> usize {
    mosh_term::history::DEFAULT_LINES
}

impl Drop for WorkerSetup {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for WorkerSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerSetup")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("home", &self.home)
            .field("shell", &self.shell)
            .field("command", &self.command)
            .field("colors", &self.colors)
            .field("locale", &self.locale)
            .field("ssh_connection", &self.ssh_connection)
            .field("key", &"<secret>")
            .field("port", &self.port)
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("scrollback", &self.scrollback)
            .field("notice", &self.notice)
            .finish()
    }
}

/// The worker could not start its session.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The setup message was unreadable.
    #[error("reading the setup: {0}")]
    Setup(String),
    /// Dropping privileges failed.
    #[error("dropping privileges to {user}: {reason}")]
    Privileges {
        /// The user.
        user: String,
        /// What failed.
        reason: String,
    },
    /// Receiving the descriptors from the daemon's handoff socket failed.
    #[error("handoff from {path}: {reason}")]
    Handoff {
        /// The handoff socket.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The runtime or a socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The session failed.
    #[error("session: {0}")]
    Session(#[from] session::SessionError),
}

/// Runs a worker: the whole life of `mosh-daemon-worker`. Must be called
/// before any other thread exists.
pub fn run() -> Result<(), WorkerError> {
    // SAFETY: close_range only closes descriptors; those above SETUP_FD are
    // strays inherited by accident, which this process does not use.
    unsafe { libc::close_range(SETUP_FD as u32 + 1, u32::MAX, 0) };
    for fd in [UDP_FD, REGISTRATION_FD, SETUP_FD] {
        // SAFETY: F_SETFD on a descriptor number only changes its flags; an
        // unused number fails harmlessly. The session's command must not
        // inherit these.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // glibc raises its mmap threshold to the size of the largest mapped
    // block freed; the setup buffer below is one, and would make every
    // later large, short-lived allocation stay in the heap for good.
    // SAFETY: mallopt only changes the allocator's tunables, before any
    // other thread exists.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    // SAFETY: the daemon passes the setup pipe's read end as this
    // descriptor; nothing else in this process owns it.
    let mut pipe = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(SETUP_FD) });
    // Room for the largest setup at once: growing would leave copies of
    // the key in freed memory.
    // Wiped and freed as soon as it is parsed (or on failure): the session
    // must not keep a quarter megabyte for the rest of its life.
    let mut text = Zeroizing::new(Vec::with_capacity(MAX_SETUP as usize + 1));
    pipe.by_ref()
        .take(MAX_SETUP)
        .read_to_end(&mut text)
        .map_err(|e| WorkerError::Setup(e.to_string()))?;
    drop(pipe);
    let setup: WorkerSetup = serde_json::from_slice(&text).map_err(|e| {
        WorkerError::Setup(format!(
            "malformed at line {} column {} (contents not shown: they hold the key)",
            e.line(),
            e.column()
        ))
    })?;
    drop(text);
    let _ = nix::unistd::setsid();
    name_process(c"mosh-server");
    drop_privileges(&setup)?;
    prepare_environment(&setup);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(setup))
}

/// Runs a worker started by the service manager: receives the session's
/// descriptors for session `id` from the daemon's handoff socket at `path`,
/// puts them at [`UDP_FD`], [`REGISTRATION_FD`] and [`SETUP_FD`], then goes
/// on as [`run`]. Must be called before any other thread exists.
pub fn run_from_handoff(path: &Path, id: &str) -> Result<(), WorkerError> {
    let fail = |reason: String| WorkerError::Handoff {
        path: path.to_owned(),
        reason,
    };
    let received = receive_descriptors(path, id).map_err(fail)?;
    place_descriptors(received.map(IntoRawFd::into_raw_fd))?;
    // The received descriptors that were not overwritten, and the parked
    // copies, are above SETUP_FD: `run` closes them first thing.
    run()
}

/// Connects to the handoff socket, checks that root owns the other end, and
/// receives exactly three descriptors and the session id `id`.
fn receive_descriptors(path: &Path, id: &str) -> Result<[OwnedFd; 3], String> {
    let stream = StdUnixStream::connect(path).map_err(|e| format!("connecting: {e}"))?;
    stream
        .set_read_timeout(Some(HANDOFF_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let peer = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("SO_PEERCRED: {e}"))?;
    if peer.uid() != 0 {
        return Err(format!(
            "the other end runs as uid {}, not root",
            peer.uid()
        ));
    }
    let mut body = [0u8; MAX_HANDOFF_ID];
    let mut space = nix::cmsg_space!([RawFd; 3]);
    let mut iov = [IoSliceMut::new(&mut body)];
    let message = nix::sys::socket::recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receiving: {e}"))?;
    let mut received = Vec::new();
    for control in message.cmsgs().map_err(|e| e.to_string())? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = control {
            // SAFETY: the kernel just installed these descriptors in this
            // process for this message; nothing else owns them.
            received.extend(
                fds.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let truncated = message
        .flags
        .intersects(nix::sys::socket::MsgFlags::MSG_CTRUNC | nix::sys::socket::MsgFlags::MSG_TRUNC);
    let length = message.bytes;
    if truncated {
        return Err("the message was truncated".into());
    }
    if &body[..length] != id.as_bytes() {
        return Err(format!(
            "it is for session {:?}, not {id}",
            String::from_utf8_lossy(&body[..length])
        ));
    }
    let count = received.len();
    <[OwnedFd; 3]>::try_from(received).map_err(|_| format!("{count} descriptors instead of 3"))
}

/// Moves `sources` to [`UDP_FD`], [`REGISTRATION_FD`] and [`SETUP_FD`]
/// (first out of the way, to descriptors at or above 10, so that no source
/// is overwritten before it is moved), leaving them open across exec. The
/// parked copies are close-on-exec and stay open otherwise. Only
/// async-signal-safe calls: fit for a forked child before exec.
pub fn place_descriptors(sources: [RawFd; 3]) -> io::Result<()> {
    let mut parked = [0; 3];
    for (slot, source) in parked.iter_mut().zip(sources) {
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor number returns a new one
        // at or above PARKING_FD or fails; no memory is involved.
        *slot = unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, PARKING_FD) };
        if *slot < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    for (source, target) in parked.into_iter().zip([UDP_FD, REGISTRATION_FD, SETUP_FD]) {
        // SAFETY: dup2 between valid descriptors; the new descriptor has no
        // close-on-exec flag, so an exec'd worker inherits it.
        if unsafe { libc::dup2(source, target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets the name `ps` and `/proc/PID/comm` show.
fn name_process(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes
    // from a valid pointer; `name` is one.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// Becomes the user: supplementary groups, then gid, then uid (real,
/// effective and saved), and checks that root cannot be regained.
fn drop_privileges(setup: &WorkerSetup) -> Result<(), WorkerError> {
    let fail = |reason: String| WorkerError::Privileges {
        user: setup.user.clone(),
        reason,
    };
    let (uid, gid) = (Uid::from_raw(setup.uid), Gid::from_raw(setup.gid));
    let name = CString::new(setup.user.as_str()).map_err(|e| fail(e.to_string()))?;
    if nix::unistd::geteuid().is_root() {
        nix::unistd::initgroups(&name, gid).map_err(|e| fail(format!("initgroups: {e}")))?;
    }
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| fail(format!("setgid: {e}")))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| fail(format!("setuid: {e}")))?;
    let ids = nix::unistd::getresuid().map_err(|e| fail(e.to_string()))?;
    let gids = nix::unistd::getresgid().map_err(|e| fail(e.to_string()))?;
    if [ids.real, ids.effective, ids.saved] != [uid; 3]
        || [gids.real, gids.effective, gids.saved] != [gid; 3]
    {
        return Err(fail("ids did not change".into()));
    }
    if !uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(fail("root could be regained".into()));
    }
    Ok(())
}

/// The user's environment, and their home as working directory.
fn prepare_environment(setup: &WorkerSetup) {
    let path = if setup.uid == 0 { ROOT_PATH } else { USER_PATH };
    let mut variables: Vec<(String, String)> = vec![
        ("USER".into(), setup.user.clone()),
        ("LOGNAME".into(), setup.user.clone()),
        ("HOME".into(), setup.home.to_string_lossy().into_owned()),
        ("SHELL".into(), setup.shell.to_string_lossy().into_owned()),
        ("PATH".into(), path.into()),
    ];
    for setting in &setup.locale {
        if let Some((name, value)) = setting.split_once('=')
            && is_locale_variable(name)
        {
            variables.push((name.into(), value.into()));
        }
    }
    if let Some(connection) = &setup.ssh_connection {
        variables.push(("SSH_CONNECTION".into(), connection.clone()));
    }
    let inherited: Vec<_> = std::env::vars_os().map(|(name, _)| name).collect();
    for name in inherited {
        // SAFETY: called from `run`, before the runtime or any other thread
        // exists, so nothing reads the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    for (name, value) in variables {
        // SAFETY: as above, single-threaded start-up.
        unsafe { std::env::set_var(name, value) };
    }
    if std::env::set_current_dir(&setup.home).is_err() {
        let _ = std::env::set_current_dir("/");
    }
}

/// Whether `name` is a locale variable a client may set.
pub fn is_locale_variable(name: &str) -> bool {
    name == "LANG"
        || name == "LANGUAGE"
        || name
            .strip_prefix("LC_")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_uppercase()))
}

async fn serve(setup: WorkerSetup) -> Result<(), WorkerError> {
    let key = boxed_key(&setup.key).ok_or_else(|| WorkerError::Setup("bad session key".into()))?;
    session::wipe_stack();
    // SAFETY: the daemon passes the session's bound UDP socket as this
    // descriptor; nothing else in this process owns it.
    let socket = std::net::UdpSocket::from(unsafe { OwnedFd::from_raw_fd(UDP_FD) });
    // SAFETY: as above, for the listening registration socket.
    let registration =
        std::os::unix::net::UnixListener::from(unsafe { OwnedFd::from_raw_fd(REGISTRATION_FD) });
    registration.set_nonblocking(true)?;
    let registration = UnixListener::from_std(registration)?;
    let (status_tx, status_rx) = watch::channel(SessionStatus::default());
    let (rekey_tx, rekey_rx) = mpsc::channel(1);
    let identity = Identity {
        id: setup.id.clone(),
        user: setup.user.clone(),
        uid: setup.uid,
        pid: std::process::id(),
        port: setup.port,
        started: unix_seconds(SystemTime::now()),
    };
    tokio::spawn(accept_registrations(
        registration,
        identity,
        status_rx,
        rekey_tx,
    ));
    let command = ChildCommand::new(
        setup
            .command
            .clone()
            .map(|argv| argv.into_iter().map(Into::into).collect()),
        setup.colors,
    );
    let idle_timeout_secs = setup.idle_timeout_secs;
    let scrollback = setup.scrollback;
    let mut banner = if command.is_login_shell() {
        motd()
    } else {
        Vec::new()
    };
    for line in &setup.notice {
        banner.extend_from_slice(line.as_bytes());
        banner.extend_from_slice(b"\r\n");
    }
    drop(setup);
    let config = SessionConfig {
        banner,
        command,
        verbose: 0,
        network_timeout: (idle_timeout_secs > 0).then(|| Duration::from_secs(idle_timeout_secs)),
        signal_timeout: None,
        status: Some(status_tx),
        scrollback,
        rekeys: Some(rekey_rx),
    };
    session::run(socket, key, config).await?;
    Ok(())
}

/// The session key, parsed into the heap in a frame of its own, whose
/// leftovers [`session::wipe_stack`] can then overwrite.
#[inline(never)]
fn boxed_key(text: &str) -> Option<Box<Base64Key>> {
    Base64Key::parse(text).ok().map(Box::new)
}

/// The fixed part of every report.
#[derive(Debug, Clone)]
struct Identity {
    id: String,
    user: String,
    uid: u32,
    pid: u32,
    port: u16,
    started: u64,
}

impl Identity {
    fn report(&self, status: &SessionStatus) -> SessionReport {
        let state = if status.closing {
            "closing"
        } else if status.client.is_some() {
            "connected"
        } else if status.attaches > 0 || status.rekeyed.is_some() {
            "detached"
        } else {
            "waiting"
        };
        SessionReport {
            id: self.id.clone(),
            user: self.user.clone(),
            uid: self.uid,
            pid: self.pid,
            port: self.port,
            client: status.client.map(|addr| addr.to_string()),
            started: self.started,
            last_contact: status.last_contact.map(unix_seconds),
            client_live: Some(status.client_live),
            state: state.into(),
            cipher: status.cipher.map(|suite| suite.name().to_owned()),
            attaches: status.attaches,
            rekeyed: status.rekeyed.map(unix_seconds),
            detached_since: None,
            foreground: status.foreground.clone(),
            history: status.history.map(|(lines, bytes)| HistoryHeld {
                lines: lines as u64,
                bytes: bytes as u64,
            }),
        }
    }
}

async fn accept_registrations(
    listener: UnixListener,
    identity: Identity,
    status: watch::Receiver<SessionStatus>,
    rekeys: mpsc::Sender<Rekey>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve_registration(
            stream,
            identity.clone(),
            status.clone(),
            rekeys.clone(),
        ));
    }
}

/// Sends a report now and after every change (at most once per
/// [`REPORT_INTERVAL`]), and answers requests, until the daemon hangs up.
/// A quiet live client changes nothing: the session publishes when its
/// client turns live or silent, not each time it is heard.
async fn serve_registration(
    stream: UnixStream,
    identity: Identity,
    mut status: watch::Receiver<SessionStatus>,
    rekeys: mpsc::Sender<Rekey>,
) {
    let Ok(stream) = ReadRegistered::new(stream) else {
        return;
    };
    let (request_tx, mut requests) = mpsc::channel(1);
    let read = stream.clone();
    let reading = tokio::spawn(async move {
        let mut reader = BufReader::new(read);
        while let Ok(request) = read_message::<_, WorkerRequest>(&mut reader).await {
            if request_tx.send(request).await.is_err() {
                break;
            }
        }
    });
    let _stop_reading = AbortOnDrop(reading);
    let mut report_due = Some(tokio::time::Instant::now());
    let mut sent: Option<Sent> = None;
    // Out of descriptors, the runtime's timer does (waking twice for a
    // report seconds away, see `crate::alarm`).
    let mut alarm = Alarm::new().ok();
    loop {
        let send_report = async {
            let Some(at) = report_due else {
                return std::future::pending().await;
            };
            let rang = match alarm.as_mut() {
                Some(alarm) => alarm.until(at).await.is_ok(),
                None => false,
            };
            if !rang {
                tokio::time::sleep_until(at).await;
            }
        };
        tokio::select! {
            () = send_report => {
                let current = status.borrow_and_update().clone();
                if stream.write_all(&encode_line(&identity.report(&current))).await.is_err() {
                    return;
                }
                sent = Some(Sent {
                    status: current,
                    at: tokio::time::Instant::now(),
                });
                report_due = None;
            }
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let due = match &sent {
                    Some(sent) => sent.next_report(&status.borrow_and_update()),
                    None => Some(tokio::time::Instant::now()),
                };
                report_due = report_due.into_iter().chain(due).min();
            }
            request = requests.recv() => {
                let Some(request) = request else { return };
                let reply = answer(request, &rekeys).await;
                let mut line = encode_line(&reply);
                let written = stream.write_all(&line).await;
                line.zeroize();
                if written.is_err() {
                    return;
                }
            }
        }
    }
}

/// The last report sent to the daemon.
#[derive(Debug, Clone)]
struct Sent {
    status: SessionStatus,
    /// When it was sent.
    at: tokio::time::Instant,
}

impl Sent {
    /// When `current` should be reported: [`REPORT_INTERVAL`] after this
    /// report if it changed, never if not.
    fn next_report(&self, current: &SessionStatus) -> Option<tokio::time::Instant> {
        (*current != self.status).then_some(self.at + REPORT_INTERVAL)
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Carries out one request of the daemon.
async fn answer(request: WorkerRequest, rekeys: &mpsc::Sender<Rekey>) -> WorkerReply {
    match request {
        WorkerRequest::Rekey { force } => {
            let (reply, outcome) = oneshot::channel();
            if rekeys.send(Rekey { force, reply }).await.is_err() {
                return WorkerReply::Refused {
                    message: "it is ending".into(),
                };
            }
            match outcome.await {
                Ok(Ok(key)) => WorkerReply::Rekeyed {
                    key: key.as_str().to_owned(),
                },
                Ok(Err(refusal)) => WorkerReply::Refused {
                    message: refusal.to_string(),
                },
                Err(_) => WorkerReply::Refused {
                    message: "it is ending".into(),
                },
            }
        }
    }
}

/// Seconds since the epoch.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_reported_a_second_after_the_last_report_and_nothing_else_is() {
        let at = tokio::time::Instant::now();
        let live = SessionStatus {
            client_live: true,
            last_contact: Some(SystemTime::now()),
            ..SessionStatus::default()
        };
        let sent = Sent {
            status: live.clone(),
            at,
        };
        assert_eq!(sent.next_report(&live), None);
        let silent = SessionStatus {
            client_live: false,
            ..live.clone()
        };
        assert_eq!(sent.next_report(&silent), Some(at + REPORT_INTERVAL));
        let closing = SessionStatus {
            closing: true,
            ..live
        };
        assert_eq!(sent.next_report(&closing), Some(at + REPORT_INTERVAL));
    }

    #[test]
    fn debug_output_keeps_the_key_secret() {
        let setup = WorkerSetup {
            id: "ab12".into(),
            user: "alice".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/alice".into(),
            shell: "/bin/sh".into(),
            command: None,
            colors: 256,
            locale: vec!["LANG=C.UTF-8".into()],
            ssh_connection: None,
            key: "SpQ+QcR4Ww8kzZWK8c9hpw".into(),
            port: 60001,
            idle_timeout_secs: 0,
            scrollback: 0,
            notice: Vec::new(),
        };
        let text = format!("{setup:?}");
        assert!(!text.contains("SpQ+"), "{text}");
        assert!(text.contains("alice"), "{text}");
    }

    /// Serves one handoff connection on a fresh socket: sends `id` and
    /// three descriptors (the ends of a pipe and /dev/null).
    fn handoff_server(id: &'static str) -> (tempdir::Dir, std::thread::JoinHandle<()>) {
        let dir = tempdir::Dir::new();
        let listener = std::os::unix::net::UnixListener::bind(dir.path().join("h.sock")).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let (read, write) = nix::unistd::pipe().unwrap();
            let null = std::fs::File::open("/dev/null").unwrap();
            let fds = [read.as_raw_fd(), write.as_raw_fd(), null.as_raw_fd()];
            nix::sys::socket::sendmsg::<()>(
                stream.as_raw_fd(),
                &[io::IoSlice::new(id.as_bytes())],
                &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
                nix::sys::socket::MsgFlags::empty(),
                None,
            )
            .unwrap();
        });
        (dir, server)
    }

    #[test]
    fn handoff_brings_three_descriptors_for_the_right_session_from_root() {
        let (dir, server) = handoff_server("ab12");
        let received = receive_descriptors(&dir.path().join("h.sock"), "ab12");
        server.join().unwrap();
        if nix::unistd::geteuid().is_root() {
            let [read, write, _null] = received.unwrap();
            let mut write = std::fs::File::from(write);
            io::Write::write_all(&mut write, b"x").unwrap();
            let mut byte = [0u8];
            std::fs::File::from(read).read_exact(&mut byte).unwrap();
            assert_eq!(&byte, b"x");
        } else {
            let error = received.err().unwrap();
            assert!(error.contains("not root"), "{error}");
        }
    }

    #[test]
    fn handoff_for_another_session_is_refused() {
        let (dir, server) = handoff_server("ab12");
        let received = receive_descriptors(&dir.path().join("h.sock"), "cd34");
        server.join().unwrap();
        let error = received.err().unwrap();
        assert!(
            error.contains("not cd34") || error.contains("not root"),
            "{error}"
        );
    }

    /// A directory removed on drop.
    mod tempdir {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicU32, Ordering};

        static NEXT: AtomicU32 = AtomicU32::new(0);

        pub struct Dir(PathBuf);

        impl Dir {
            pub fn new() -> Self {
                let path = std::env::temp_dir().join(format!(
                    "mosh-worker-test-{}x{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Self(path)
            }

            pub fn path(&self) -> &Path {
                &self.0
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn locale_variables() {
        for name in ["LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE"] {
            assert!(is_locale_variable(name), "{name}");
        }
        for name in ["LD_PRELOAD", "LC_", "LC_all", "PATH", "LC_X=Y"] {
            assert!(!is_locale_variable(name), "{name}");
        }
    }
}
