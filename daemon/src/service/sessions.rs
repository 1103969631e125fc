//! Starting, watching, ending and re-adopting session workers.
//!
//! A worker gets its UDP socket, its registration listener and the read end
//! of its setup pipe as descriptors 3, 4 and 5 (see [`crate::worker`]), in
//! one of two ways ([`LaunchMode`]):
//!
//! * direct: the worker is the daemon's child, the descriptors put in place
//!   between fork and exec;
//! * systemd: `systemd-run` asks the service manager to start the worker as
//!   the transient unit `mosh-session-ID.service` in `mosh.slice`, outside
//!   the daemon's sandbox. The daemon listens on `sessions/ID.handoff`
//!   (root only, one per session), accepts only a root peer whose process
//!   is in that unit's cgroup, and sends it the descriptors with
//!   `SCM_RIGHTS`. A worker that has not fetched them within
//!   [`START_TIMEOUT`] has its unit stopped, and the port is freed.
//!
//! The daemon then connects to the registration socket
//! and keeps that connection for the life of the session: every line is a
//! fresh [`SessionReport`], and the end of the connection means the worker
//! is gone, so its port returns to the pool.

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use mosh_proto::Base64Key;
use nix::sys::signal::Signal;
use nix::unistd::{Pid, User};
use tokio::io::BufReader;
use tokio::net::unix::OwnedReadHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

use super::{Allocation, Shared};
use crate::config::{Config, LaunchMode};
use crate::control::{SessionReport, Started, read_message};
use crate::request::SessionRequest;
use crate::worker::{WorkerSetup, place_descriptors, unix_seconds};

/// How long a new worker may take to fetch its descriptors (systemd mode),
/// and then to report for the first time.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a running worker may take to answer a restarted daemon.
const ADOPT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a new session waits for the firewall to open its port.
const FIREWALL_PATIENCE: Duration = Duration::from_secs(3);
/// How long a worker may take to end after SIGTERM (its shutdown handshake
/// waits at most 10 s for the client) before the daemon sends SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(15);
/// How long `systemd-run` or `systemctl` may take.
const SYSTEMD_TIMEOUT: Duration = Duration::from_secs(10);
/// The slice session units run in.
const SESSION_SLICE: &str = "mosh.slice";
/// `PATH` for `systemd-run` and `systemctl`.
const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Whether the daemon runs as a systemd service: started by the service
/// manager (`INVOCATION_ID`) on a system booted with systemd.
static UNDER_SYSTEMD: LazyLock<bool> = LazyLock::new(|| {
    std::env::var_os("INVOCATION_ID").is_some() && Path::new("/run/systemd/system").is_dir()
});

/// The transient unit a session's worker runs in, in systemd mode.
pub fn unit_name(id: &str) -> String {
    format!("mosh-session-{id}.service")
}

/// Starts a session for `user`; the error is one line for the user.
pub async fn start(
    shared: &Arc<Shared>,
    config: &Config,
    user: User,
    request: SessionRequest,
) -> Result<Started, String> {
    let id = new_id().map_err(|e| format!("choosing a session id: {e}"))?;
    let key = Base64Key::random().map_err(|e| format!("making a session key: {e}"))?;
    let uid = user.uid.as_raw();
    let notice;
    let udp = {
        let mut registry = shared.registry();
        let socket = registry
            .allocate(&Allocation {
                user: &user.name,
                uid,
                pool: config.port_range,
                wanted: request.ports,
                ip: request.bind,
                max_sessions: config.max_sessions,
                max_per_user: config.max_sessions_per_user,
            })
            .map_err(|refusal| {
                if refusal == super::Refusal::OutOfDescriptors {
                    tracing::error!("refused a session for {}: {refusal}", user.name);
                } else {
                    tracing::info!("refused a session for {}: {refusal}", user.name);
                }
                refusal.to_string()
            })?;
        let port = socket
            .local_addr()
            .map_err(|e| format!("reading the bound port: {e}"))?
            .port();
        let now = unix_seconds(SystemTime::now());
        notice = super::attach::notice(&registry.all(), uid, now, &host_name());
        registry.insert(SessionReport {
            id: id.clone(),
            user: user.name.clone(),
            uid,
            pid: 0,
            port,
            client: None,
            started: unix_seconds(SystemTime::now()),
            last_contact: None,
            client_live: None,
            state: "starting".into(),
            cipher: None,
            attaches: 0,
            rekeyed: None,
            detached_since: None,
            foreground: None,
            history: None,
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
        command: request.command.map(|command| command.into_words()),
        colors: request.colors,
        locale: request.locale.iter().map(ToString::to_string).collect(),
        ssh_connection: request
            .ssh_connection
            .map(|value| value.as_str().to_owned()),
        key: key.printable(),
        port,
        idle_timeout_secs: config.idle_timeout,
        scrollback: request.scrollback.unwrap_or(config.scrollback),
        notice: notice.clone(),
    };
    let mode = config.launch.resolve(*UNDER_SYSTEMD);
    match launch(shared, mode, &id, udp.into(), setup).await {
        Ok(pid) => {
            let unit = match mode {
                LaunchMode::Systemd => format!(" in {}", unit_name(&id)),
                _ => String::new(),
            };
            tracing::info!(
                "session {id} for {} on port {port}, worker {pid}{unit}",
                user.name
            );
            Ok(Started {
                id,
                port,
                key: key.printable(),
                pid,
                notice,
            })
        }
        Err(error) => {
            tracing::error!("session {id} for {} failed to start: {error}", user.name);
            shared.registry().remove(&id);
            let _ = std::fs::remove_file(socket_path(&shared.sessions_dir, &id));
            shared.sessions_changed();
            if super::out_of_descriptors(&error) {
                return Err(super::OUT_OF_DESCRIPTORS.into());
            }
            if matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
                return Err(format!(
                    "mosh-daemon's runtime directory {} is full; try again later",
                    shared.sessions_dir.display()
                ));
            }
            Err(format!("the session could not be started: {error}"))
        }
    }
}

/// Starts the worker and waits for its first report; returns its pid.
async fn launch(
    shared: &Arc<Shared>,
    mode: LaunchMode,
    id: &str,
    udp: OwnedFd,
    setup: WorkerSetup,
) -> std::io::Result<u32> {
    let path = socket_path(&shared.sessions_dir, id);
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let (setup_read, setup_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let descriptors = [udp, listener.into(), setup_read];
    let (pid, worker) = match mode {
        LaunchMode::Systemd => {
            let pid = start_unit(shared, id, &setup.user, descriptors).await?;
            (pid, Worker::Unit(unit_name(id)))
        }
        LaunchMode::Direct | LaunchMode::Auto => {
            let child = spawn_child(shared, descriptors)?;
            (child.id().unwrap_or_default(), Worker::Child(child))
        }
    };
    let handed_over = hand_over(shared, id, &path, setup_write, &setup).await;
    worker.settle(handed_over.is_ok()).await;
    let worker_pid = handed_over?;
    if worker_pid != pid {
        tracing::warn!("worker {pid} reported pid {worker_pid}");
    }
    Ok(pid)
}

/// A started worker, until it has reported.
enum Worker {
    /// The daemon's own child.
    Child(tokio::process::Child),
    /// A transient unit of the service manager.
    Unit(String),
}

impl Worker {
    /// Ends a worker that failed to start (`started` false), or leaves a
    /// started one running (a child is reaped when it exits).
    async fn settle(self, started: bool) {
        match self {
            Worker::Child(mut child) => {
                if !started {
                    let _ = child.start_kill();
                }
                tokio::spawn(async move {
                    let _ = child.wait().await;
                });
            }
            Worker::Unit(unit) if !started => stop_unit(&unit).await,
            Worker::Unit(_) => {}
        }
    }
}

/// Starts `mosh-daemon-worker` as the daemon's child with `descriptors` as
/// its descriptors 3, 4 and 5.
fn spawn_child(
    shared: &Shared,
    descriptors: [OwnedFd; 3],
) -> std::io::Result<tokio::process::Child> {
    let sources = descriptors.each_ref().map(AsRawFd::as_raw_fd);
    let mut command = tokio::process::Command::new(&shared.worker_program);
    command
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: the closure runs in the forked child before exec and only
    // calls fcntl and dup2, which are async-signal-safe; it allocates
    // nothing and touches no lock.
    unsafe {
        command.pre_exec(move || place_descriptors(sources));
    }
    let child = command.spawn()?;
    drop(descriptors);
    Ok(child)
}

/// Starts the worker as the transient unit of session `id` and hands it
/// `descriptors` over `sessions/ID.handoff`; returns the worker's pid. On
/// any failure the unit is stopped; the descriptors are closed either way.
async fn start_unit(
    shared: &Shared,
    id: &str,
    user: &str,
    descriptors: [OwnedFd; 3],
) -> std::io::Result<u32> {
    let path = shared.sessions_dir.join(format!("{id}.handoff"));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    let _remove = RemoveOnDrop(path.clone());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let unit = unit_name(id);
    let description = format!("mosh session {id} of {user}");
    let handoff = path.to_string_lossy();
    let worker = shared.worker_program.to_string_lossy();
    let run = [
        "--unit",
        &unit,
        "--description",
        &description,
        "--slice",
        SESSION_SLICE,
        "--collect",
        "--no-block",
        "--quiet",
        // A session's leftover processes (nohup, screen) outlive it, as
        // with stock mosh and sshd without logind's KillUserProcesses.
        "--property=KillMode=process",
        // The user's shell starts with SIGPIPE at its default action.
        "--property=IgnoreSIGPIPE=no",
        "--",
        &worker,
        "--handoff",
        &handoff,
        id,
    ];
    systemd_tool("systemd-run", &run).await?;
    let handed = tokio::time::timeout(START_TIMEOUT, hand_descriptors(&listener, id, &descriptors))
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::other(format!(
                "{unit} did not fetch its descriptors in time"
            )))
        });
    if handed.is_err() {
        stop_unit(&unit).await;
    }
    handed
}

/// Removes a file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Accepts connections on the handoff socket until one comes from root in
/// session `id`'s unit, sends it the session id and `descriptors`, and
/// returns its pid. Other peers are turned away.
async fn hand_descriptors(
    listener: &UnixListener,
    id: &str,
    descriptors: &[OwnedFd; 3],
) -> std::io::Result<u32> {
    let unit = unit_name(id);
    loop {
        let (stream, _) = listener.accept().await?;
        let credentials = stream.peer_cred()?;
        let pid = credentials
            .pid()
            .and_then(|pid| u32::try_from(pid).ok())
            .unwrap_or(0);
        if credentials.uid() != 0 || !process_in_unit(pid, &unit) {
            tracing::warn!(
                "session {id}: turned away a handoff connection from pid {pid}, uid {}",
                credentials.uid()
            );
            continue;
        }
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        stream.set_write_timeout(Some(START_TIMEOUT))?;
        let fds = descriptors.each_ref().map(AsRawFd::as_raw_fd);
        let rights = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let sent = nix::sys::socket::sendmsg::<()>(
            stream.as_raw_fd(),
            &[IoSlice::new(id.as_bytes())],
            &rights,
            nix::sys::socket::MsgFlags::empty(),
            None,
        )?;
        if sent != id.len() {
            return Err(std::io::Error::other("the handoff message was cut short"));
        }
        return Ok(pid);
    }
}

/// Whether process `pid` runs in the cgroup of `unit`, per
/// `/proc/PID/cgroup`.
fn process_in_unit(pid: u32, unit: &str) -> bool {
    pid > 1
        && std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|text| cgroups_name_unit(&text, unit))
}

/// Whether a `/proc/PID/cgroup` text puts the process in `unit`'s own
/// cgroup (cgroup v2, or the `name=systemd` hierarchy of v1).
fn cgroups_name_unit(text: &str, unit: &str) -> bool {
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .any(|path| path.rsplit('/').next() == Some(unit))
}

/// Asks the service manager to stop `unit`, without waiting for it.
async fn stop_unit(unit: &str) {
    if let Err(error) = systemd_tool("systemctl", &["stop", "--no-block", "--", unit]).await {
        tracing::warn!("stopping {unit}: {error}");
    }
}

/// Runs `systemd-run` or `systemctl` with `args`, bounded in time; the error
/// quotes its first line of complaint.
async fn systemd_tool(program: &str, args: &[&str]) -> std::io::Result<()> {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SYSTEMD_TIMEOUT, command.output())
        .await
        .map_err(|_| std::io::Error::other(format!("{program} did not finish in time")))?
        .map_err(|e| std::io::Error::other(format!("running {program}: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let why = stderr.lines().next().unwrap_or_default();
    Err(std::io::Error::other(format!(
        "{program} failed ({}): {why}",
        output.status
    )))
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

/// Asks a session's worker to shut the session down (SIGTERM), after
/// checking that the process is still one of the session's user; a worker
/// still there [`KILL_GRACE`] later (stopped or hung) gets SIGKILL. Must be
/// called within the daemon's runtime.
pub fn kill(session: &SessionReport) -> Result<(), String> {
    let pid = i32::try_from(session.pid)
        .ok()
        .filter(|&pid| pid > 1)
        .ok_or_else(|| "it is still starting".to_owned())?;
    if process_uid(session.pid) != Some(session.uid) {
        return Err(format!("process {pid} is not its worker"));
    }
    let started = process_start_time(session.pid);
    nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM).map_err(|e| e.to_string())?;
    let (id, worker) = (session.id.clone(), session.pid);
    tokio::spawn(async move {
        tokio::time::sleep(KILL_GRACE).await;
        if started.is_some() && process_start_time(worker) == started {
            tracing::warn!(
                "session {id}: worker {worker} still runs {} s after SIGTERM; sending SIGKILL",
                KILL_GRACE.as_secs()
            );
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    });
    Ok(())
}

/// When process `pid` started (clock ticks after boot, from
/// `/proc/PID/stat`), so a pid the kernel gave to a new process is told
/// apart; `None` when it is gone or has exited (a zombie).
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
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
        if path
            .extension()
            .is_some_and(|extension| extension == "handoff")
        {
            let _ = std::fs::remove_file(&path);
            continue;
        }
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

/// The registration socket of session `id` under `dir`.
pub(super) fn socket_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.sock"))
}

/// This machine's name, for the commands the notice shows.
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "HOST".into())
}

/// A random session id: 8 hex digits.
fn new_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_start_time_tells_a_live_process_from_an_ended_one() {
        let own = process_start_time(std::process::id());
        assert!(own.is_some());
        assert_eq!(own, process_start_time(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        assert_eq!(process_start_time(child.id()), None);
    }

    #[test]
    fn unit_names() {
        assert_eq!(unit_name("0a1b2c3d"), "mosh-session-0a1b2c3d.service");
    }

    #[test]
    fn a_process_is_in_a_unit_only_by_its_own_cgroup() {
        let unit = unit_name("0a1b2c3d");
        for (text, inside) in [
            ("0::/mosh.slice/mosh-session-0a1b2c3d.service\n", true),
            (
                "12:pids:/\n1:name=systemd:/mosh.slice/mosh-session-0a1b2c3d.service\n0::/\n",
                true,
            ),
            ("0::/system.slice/mosh-daemon.service\n", false),
            ("0::/mosh.slice/mosh-session-ffffffff.service\n", false),
            ("0::/mosh-session-0a1b2c3d.service/child\n", false),
            ("0::/x/mosh-session-0a1b2c3d.service.other\n", false),
            ("", false),
        ] {
            assert_eq!(cgroups_name_unit(text, &unit), inside, "{text:?}");
        }
    }
}
