//! The `mosh-daemon` system service: the control socket, the session
//! registry and port pool, one worker process per session, and systemd
//! integration.
//!
//! Layout of the runtime directory (`/run/mosh-daemon` by default):
//!
//! * `control.sock`: the control socket, open to every local user; one
//!   JSON request per connection, identity from `SO_PEERCRED`.
//! * `sessions/ID.sock`: one registration socket per worker (root only).
//!   The daemon keeps a connection to each and learns the session's state
//!   from it; a restarted daemon finds its sessions there again.
//! * `sessions/ID.handoff`: while a session unit starts (systemd launch
//!   mode), where its worker fetches its descriptors (root only).

mod attach;
mod notify;
mod registry;
mod requests;
mod sessions;
mod slots;

pub use attach::{AttachError, AttachLimiter};
pub use registry::{Allocation, Refusal, Registry};
pub use slots::{Slot, SlotRefusal, Slots};

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;

use crate::config::{Config, ConfigError};
use crate::firewall::Firewall;
use notify::{Notice, notify};

/// How long the accept loop rests after running out of descriptors.
const DESCRIPTOR_PAUSE: Duration = Duration::from_millis(100);

/// How often running out of descriptors is logged at most.
const DESCRIPTOR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The default runtime directory.
pub const DEFAULT_RUNTIME_DIR: &str = "/run/mosh-daemon";

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration file.
    pub config_path: PathBuf,
    /// Whether the configuration file may be missing (the default path).
    pub config_optional: bool,
    /// The runtime directory.
    pub runtime_dir: PathBuf,
    /// The session worker program (`mosh-daemon-worker`).
    pub worker_program: PathBuf,
}

/// The daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Setting up the runtime directory or a socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ServiceError {
    let what = what.into();
    move |source| ServiceError::Io { what, source }
}

/// State shared by every task of the daemon.
#[derive(Debug)]
pub struct Shared {
    /// The current configuration (replaced on SIGHUP).
    pub config: RwLock<Config>,
    /// The sessions.
    pub registry: Mutex<Registry>,
    /// When the daemon started.
    pub started: Instant,
    /// Where `sessions/` lives.
    pub sessions_dir: PathBuf,
    /// The worker program.
    pub worker_program: PathBuf,
    /// The firewall rules for the sessions' ports.
    pub firewall: Firewall,
    /// How often each user may ask to attach.
    pub attach_limits: Mutex<AttachLimiter>,
}

impl Shared {
    /// A copy of the configuration.
    pub fn config(&self) -> Config {
        self.config.read().expect("config lock").clone()
    }

    /// The registry, locked.
    pub fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().expect("registry lock")
    }

    /// The attach rate limits, locked.
    pub fn attach_limiter(&self) -> std::sync::MutexGuard<'_, AttachLimiter> {
        self.attach_limits.lock().expect("attach limiter lock")
    }

    /// Opens the sessions' ports (and only those) in the firewall, and
    /// tells the service manager how many sessions there are.
    pub fn sessions_changed(&self) {
        let (count, ports) = {
            let registry = self.registry();
            (registry.len(), registry.ports())
        };
        self.firewall.set_ports(ports);
        let noun = if count == 1 { "session" } else { "sessions" };
        notify(Notice::Status(format!("{count} {noun}")));
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when set, not
/// zero and meant for this process (`$WATCHDOG_PID`).
fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|timeout| !timeout.is_zero())
        .map(|timeout| timeout / 2)
}

/// Runs the daemon until SIGTERM or SIGINT. Sessions outlive it.
pub async fn run(options: Options) -> Result<(), ServiceError> {
    let config = Config::load(&options.config_path, options.config_optional)?;
    let sessions_dir = prepare_runtime_dir(&options.runtime_dir)?;
    let firewall = Firewall::start(config.firewall, config.port_range);
    let shared = Arc::new(Shared {
        config: RwLock::new(config),
        registry: Mutex::new(Registry::default()),
        started: Instant::now(),
        sessions_dir,
        worker_program: options.worker_program.clone(),
        firewall,
        attach_limits: Mutex::new(AttachLimiter::default()),
    });
    let adopted = sessions::adopt_all(&shared).await;
    tracing::info!("re-adopted {adopted} running sessions");
    let socket_path = options.runtime_dir.join("control.sock");
    let listener = bind_control_socket(&socket_path)?;
    tracing::info!("listening on {}", socket_path.display());
    notify(Notice::Ready);
    shared.sessions_changed();

    let mut terminate = signal(SignalKind::terminate()).map_err(io_error("signals"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(io_error("signals"))?;
    let mut hangup = signal(SignalKind::hangup()).map_err(io_error("signals"))?;
    let mut watchdog = watchdog_interval().map(tokio::time::interval);
    let mut connections = JoinSet::new();
    let mut acceptor = Acceptor::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if let Some((stream, peer, slot)) = acceptor.admit(&shared, stream) {
                        connections.spawn(requests::serve_connection(
                            shared.clone(),
                            stream,
                            peer,
                            slot,
                        ));
                    }
                }
                Err(error) => acceptor.failed(&listener, error).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = tick(&mut watchdog) => notify(Notice::Watchdog),
            _ = hangup.recv() => reload(&shared, &options),
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("stopping; sessions keep running");
    notify(Notice::Stopping);
    let _ = std::fs::remove_file(&socket_path);
    connections.shutdown().await;
    shared.firewall.stop().await;
    Ok(())
}

/// What the accept loop keeps: the connection slots, and one descriptor in
/// reserve for turning a connection away when the daemon has run out.
struct Acceptor {
    slots: Arc<Mutex<Slots>>,
    /// Held only to be closed when the daemon runs out of descriptors.
    reserve: Option<std::fs::File>,
    last_logged: Option<Instant>,
}

impl Acceptor {
    fn new() -> Self {
        Self {
            slots: Arc::new(Mutex::new(Slots::default())),
            reserve: std::fs::File::open("/dev/null").ok(),
            last_logged: None,
        }
    }

    /// Takes a slot for a new connection's peer, or turns it away with one
    /// error line.
    fn admit(
        &mut self,
        shared: &Shared,
        stream: UnixStream,
    ) -> Option<(UnixStream, requests::Peer, Slot)> {
        let uid = match stream.peer_cred() {
            Ok(cred) => cred.uid(),
            Err(error) => {
                tracing::warn!("control connection without credentials: {error}");
                return None;
            }
        };
        let limits = shared.config().control;
        match Slot::take(&self.slots, uid, &limits) {
            Ok(slot) => Some((stream, requests::Peer::new(uid), slot)),
            Err(refusal) => {
                tracing::debug!("uid {uid}: refused a control connection: {refusal}");
                refuse(&stream, refusal.to_string());
                None
            }
        }
    }

    /// After a failed accept: out of descriptors, turns the waiting
    /// connection away with the descriptor kept in reserve, and rests a
    /// moment instead of trying again at once.
    async fn failed(&mut self, listener: &UnixListener, error: io::Error) {
        if !out_of_descriptors(&error) {
            tracing::warn!("accepting a control connection: {error}");
            return;
        }
        if self
            .last_logged
            .is_none_or(|logged| logged.elapsed() >= DESCRIPTOR_LOG_INTERVAL)
        {
            self.last_logged = Some(Instant::now());
            tracing::error!(
                "out of file descriptors ({error}); refusing control connections until some are free"
            );
        }
        self.reserve = None;
        if let Ok(Ok((stream, _))) = tokio::time::timeout(DESCRIPTOR_PAUSE, listener.accept()).await
        {
            refuse(&stream, OUT_OF_DESCRIPTORS.into());
        }
        tokio::time::sleep(DESCRIPTOR_PAUSE).await;
        self.reserve = std::fs::File::open("/dev/null").ok();
    }
}

/// Whether `error` says the process or system has run out of descriptors
/// (or the memory for one).
pub(crate) fn out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// What a client hears when the daemon has run out of descriptors.
pub(crate) const OUT_OF_DESCRIPTORS: &str =
    "mosh-daemon has run out of file descriptors; try again later";

/// Sends `message` as an error answer without waiting (a new connection's
/// buffer has room for it), and closes the connection.
fn refuse(stream: &UnixStream, message: String) {
    let line = crate::control::encode_line(&crate::control::Response::Error { message });
    let _ = stream.try_write(&line);
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Reads the configuration again; a bad one is logged and the old one kept.
fn reload(shared: &Shared, options: &Options) {
    notify(Notice::Reloading);
    match Config::load(&options.config_path, options.config_optional) {
        Ok(config) => {
            shared
                .firewall
                .reconfigure(config.firewall, config.port_range);
            *shared.config.write().expect("config lock") = config;
            tracing::info!("configuration reloaded");
        }
        Err(error) => tracing::error!("keeping the old configuration: {error}"),
    }
    notify(Notice::Ready);
}

/// Creates the runtime directory (world-searchable, for the control
/// socket) and its root-only `sessions/`.
fn prepare_runtime_dir(dir: &Path) -> Result<PathBuf, ServiceError> {
    std::fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io_error(format!("chmod {}", dir.display())))?;
    let sessions = dir.join("sessions");
    std::fs::create_dir_all(&sessions)
        .map_err(io_error(format!("creating {}", sessions.display())))?;
    std::fs::set_permissions(&sessions, std::fs::Permissions::from_mode(0o700))
        .map_err(io_error(format!("chmod {}", sessions.display())))?;
    Ok(sessions)
}

/// Binds the control socket, replacing a stale one, open to every user.
fn bind_control_socket(path: &Path) -> Result<UnixListener, ServiceError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error(format!("removing {}", path.display()))(error)),
    }
    let listener =
        UnixListener::bind(path).map_err(io_error(format!("binding {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(io_error(format!("chmod {}", path.display())))?;
    Ok(listener)
}
