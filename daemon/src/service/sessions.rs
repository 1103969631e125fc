//! Starting, watching, ending and re-adopting session workers.
//!
//! A worker is started with its UDP socket, its registration listener and
//! the read end of its setup pipe as descriptors 3, 4 and 5 (see
//! [`crate::worker`]). The daemon then connects to the registration socket
//! and keeps that connection for the life of the session: every line is a
//! fresh [`SessionReport`], and the end of the connection means the worker
//! is gone, so its port returns to the pool.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mosh_proto::Base64Key;
use nix::sys::signal::Signal;
use nix::unistd::{Pid, User};
use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;
use tokio::task::JoinSet;

use super::{Allocation, Shared};
use crate::config::Config;
use crate::control::{NewSession, SessionReport, Started, read_message};
use crate::worker::{REGISTRATION_FD, SETUP_FD, UDP_FD, WorkerSetup, unix_seconds};

/// How long a new worker may take to report for the first time.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a running worker may take to answer a restarted daemon.
const ADOPT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a new session waits for the firewall to open its port.
const FIREWALL_PATIENCE: Duration = Duration::from_secs(3);
/// Lowest descriptor used to park descriptors while moving them into place.
const PARKING_FD: i32 = 10;

/// Starts a session for `user`; the error is one line for the user.
pub async fn start(
    shared: &Arc<Shared>,
    config: &Config,
    user: User,
    request: NewSession,
) -> Result<Started, String> {
    let id = new_id().map_err(|e| format!("choosing a session id: {e}"))?;
    let key = Base64Key::random().map_err(|e| format!("making a session key: {e}"))?;
    let uid = user.uid.as_raw();
    let udp = {
        let mut registry = shared.registry();
        let socket = registry
            .allocate(&Allocation {
                user: &user.name,
                uid,
                pool: config.port_range,
                wanted: request.ports,
                ip: request.bind.as_deref().and_then(|text| text.parse().ok()),
                max_sessions: config.max_sessions,
                max_per_user: config.max_sessions_per_user,
            })
            .map_err(|refusal| {
                tracing::info!("refused a session for {}: {refusal}", user.name);
                refusal.to_string()
            })?;
        let port = socket
            .local_addr()
            .map_err(|e| format!("reading the bound port: {e}"))?
            .port();
        registry.insert(SessionReport {
            id: id.clone(),
            user: user.name.clone(),
            uid,
            pid: 0,
            port,
            client: None,
            started: unix_seconds(SystemTime::now()),
            last_contact: None,
            state: "starting".into(),
        });
        socket
    };
    shared.sessions_changed();
    shared.firewall.settled(FIREWALL_PATIENCE).await;
    let port = udp.local_addr().map(|a| a.port()).unwrap_or_default();
    let setup = WorkerSetup {
        id: id.clone(),
        user: user.name.clone(),
        uid,
        gid: user.gid.as_raw(),
        home: user.dir.clone(),
        shell: user.shell.clone(),
        command: request.command,
        colors: request.colors,
        locale: request.locale,
        ssh_connection: request.ssh_connection,
        key: key.printable(),
        port,
        idle_timeout_secs: config.idle_timeout,
    };
    match launch(shared, &id, udp.into(), setup).await {
        Ok(pid) => {
            tracing::info!(
                "session {id} for {} on port {port}, worker {pid}",
                user.name
            );
            Ok(Started {
                id,
                port,
                key: key.printable(),
                pid,
            })
        }
        Err(error) => {
            tracing::error!("session {id} for {} failed to start: {error}", user.name);
            shared.registry().remove(&id);
            let _ = std::fs::remove_file(socket_path(&shared.sessions_dir, &id));
            shared.sessions_changed();
            Err(format!("the session could not be started: {error}"))
        }
    }
}

/// Starts the worker and waits for its first report; returns its pid.
async fn launch(
    shared: &Arc<Shared>,
    id: &str,
    udp: OwnedFd,
    setup: WorkerSetup,
) -> std::io::Result<u32> {
    let path = socket_path(&shared.sessions_dir, id);
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let (setup_read, setup_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let listener_fd: OwnedFd = listener.into();
    let sources = [
        udp.as_raw_fd(),
        listener_fd.as_raw_fd(),
        setup_read.as_raw_fd(),
    ];
    let mut command = tokio::process::Command::new(&shared.worker_program);
    command
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    // SAFETY: the closure runs in the forked child before exec and only
    // calls fcntl and dup2, which are async-signal-safe; it allocates
    // nothing and touches no lock.
    unsafe {
        command.pre_exec(move || place_descriptors(sources));
    }
    let mut child = command.spawn()?;
    drop((udp, listener_fd, setup_read));
    let pid = child.id().unwrap_or_default();
    let handed_over = hand_over(shared, id, &path, setup_write, &setup).await;
    if handed_over.is_err() {
        let _ = child.start_kill();
    }
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let worker_pid = handed_over?;
    if worker_pid != pid {
        tracing::warn!("worker {pid} reported pid {worker_pid}");
    }
    Ok(pid)
}

/// Sends the setup to a started worker, waits for its first report and
/// follows the ones after; returns the pid it reports.
async fn hand_over(
    shared: &Arc<Shared>,
    id: &str,
    path: &Path,
    setup_write: OwnedFd,
    setup: &WorkerSetup,
) -> std::io::Result<u32> {
    let text = serde_json::to_vec(setup).map_err(std::io::Error::other)?;
    tokio::task::spawn_blocking(move || {
        let mut pipe = std::fs::File::from(setup_write);
        let written = pipe.write_all(&text);
        let mut text = text;
        text.fill(0);
        written
    })
    .await
    .map_err(std::io::Error::other)??;
    let stream = UnixStream::connect(path).await?;
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let first = tokio::time::timeout(START_TIMEOUT, read_message::<_, SessionReport>(&mut reader))
        .await
        .map_err(|_| std::io::Error::other("the worker did not report in time"))?
        .map_err(|e| std::io::Error::other(format!("the worker did not report: {e}")))?;
    let worker_pid = first.pid;
    shared.registry().update(first);
    tokio::spawn(watch(shared.clone(), id.to_owned(), reader, write));
    Ok(worker_pid)
}

/// In the forked child: moves `sources` to descriptors 3, 4 and 5 (first
/// out of the way, so that no source is overwritten before it is moved),
/// leaving them open across exec.
fn place_descriptors(sources: [i32; 3]) -> std::io::Result<()> {
    let mut parked = [0; 3];
    for (slot, source) in parked.iter_mut().zip(sources) {
        // SAFETY: F_DUPFD_CLOEXEC on a valid descriptor returns a new one
        // at or above PARKING_FD; no memory is involved.
        *slot = unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, PARKING_FD) };
        if *slot < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    for (source, target) in parked.into_iter().zip([UDP_FD, REGISTRATION_FD, SETUP_FD]) {
        // SAFETY: dup2 between valid descriptors; the new descriptor has no
        // close-on-exec flag, so the worker inherits it.
        if unsafe { libc::dup2(source, target) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Follows a worker's reports until it is gone, then forgets its session.
async fn watch(
    shared: Arc<Shared>,
    id: String,
    mut reader: BufReader<OwnedReadHalf>,
    _write: tokio::net::unix::OwnedWriteHalf,
) {
    loop {
        match read_message::<_, SessionReport>(&mut reader).await {
            Ok(report) if report.id == id => shared.registry().update(report),
            Ok(report) => tracing::warn!("session {id} reported as {}", report.id),
            Err(_) => break,
        }
    }
    let _ = std::fs::remove_file(socket_path(&shared.sessions_dir, &id));
    if shared.registry().remove(&id) {
        tracing::info!("session {id} ended");
        shared.sessions_changed();
    }
}

/// Asks a session's worker to shut the session down, after checking that
/// the process is still one of the session's user.
pub fn kill(session: &SessionReport) -> Result<(), String> {
    let pid = i32::try_from(session.pid)
        .ok()
        .filter(|&pid| pid > 1)
        .ok_or_else(|| "it is still starting".to_owned())?;
    if process_uid(session.pid) != Some(session.uid) {
        return Err(format!("process {pid} is not its worker"));
    }
    nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM).map_err(|e| e.to_string())
}

/// The real uid of process `pid`, from `/proc`.
fn process_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Finds the workers of a previous daemon under `sessions/`, registers the
/// live ones (their ports stay reserved) and removes the rest. Returns how
/// many were adopted.
pub async fn adopt_all(shared: &Arc<Shared>) -> usize {
    let entries = match std::fs::read_dir(&shared.sessions_dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!("reading {}: {error}", shared.sessions_dir.display());
            return 0;
        }
    };
    let mut attempts = JoinSet::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(id) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".sock"))
            .map(str::to_owned)
        else {
            continue;
        };
        let shared = shared.clone();
        attempts.spawn(async move {
            match tokio::time::timeout(ADOPT_TIMEOUT, adopt(&shared, &id, &path)).await {
                Ok(Ok(())) => true,
                outcome => {
                    let why = match outcome {
                        Ok(Err(error)) => error.to_string(),
                        _ => "no answer".to_owned(),
                    };
                    tracing::info!("forgetting session {id}: {why}");
                    let _ = std::fs::remove_file(&path);
                    false
                }
            }
        });
    }
    let mut adopted = 0;
    while let Some(outcome) = attempts.join_next().await {
        adopted += usize::from(outcome.unwrap_or(false));
    }
    adopted
}

async fn adopt(shared: &Arc<Shared>, id: &str, path: &Path) -> std::io::Result<()> {
    let stream = UnixStream::connect(path).await?;
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let report: SessionReport = read_message(&mut reader)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if report.id != id {
        return Err(std::io::Error::other(format!(
            "it reports as session {}",
            report.id
        )));
    }
    if process_uid(report.pid) != Some(report.uid) {
        return Err(std::io::Error::other(format!(
            "its process {} does not run as uid {}",
            report.pid, report.uid
        )));
    }
    tracing::info!(
        "re-adopted session {id} of {} on port {}, worker {}",
        report.user,
        report.port,
        report.pid
    );
    shared.registry().insert(report);
    tokio::spawn(watch(shared.clone(), id.to_owned(), reader, write));
    Ok(())
}

fn socket_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.sock"))
}

/// A random session id: 8 hex digits.
fn new_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
