//! The firewall rules that let clients reach the sessions' UDP ports.
//!
//! One thread owns the backend and runs its tools one at a time, so rules
//! are changed in the order things happened and a slow tool never stalls
//! the daemon's event loop. The rest of the daemon talks to it through
//! [`Firewall`]: the set of session ports (only the latest set matters, so
//! updates coalesce), a configuration change, `moshctl firewall open` and
//! `close`, and stop. Its state is published after every step, so
//! `moshctl firewall status` never waits behind a tool.
//!
//! Backends: [`nftables`] opens each session's port while the session
//! lives (through [`libnftables`] in this process where it can); ufw, iptables and firewalld open the whole pool while the daemon
//! runs. Each one removes what an earlier daemon left before adding its
//! rules, so a crash or a restart never duplicates them, and stopping
//! removes everything. A failing backend is logged with the command and
//! its error output, shown by `moshctl firewall status`, and never stops a
//! session from starting.

mod firewalld;
mod iptables;
pub mod libnftables;
pub mod nftables;
mod tool;
mod ufw;

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use self::nftables::{Nft, NftablesBackend};
pub use self::tool::ToolError;
use crate::config::{FirewallBackend, FirewallConfig, PortPool};
use crate::control::{FirewallRequest, FirewallStatus};

/// Most `moshctl firewall open`/`close` requests waiting at once.
const MAX_WAITING_REQUESTS: usize = 16;

/// The backend in use, `auto` resolved.
#[derive(Debug)]
enum Backend {
    Nftables(NftablesBackend),
    Ufw,
    Iptables(iptables::Variant),
    Firewalld,
    None,
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Nftables(_) => "nftables",
            Backend::Ufw => "ufw",
            Backend::Iptables(variant) => variant.name(),
            Backend::Firewalld => "firewalld",
            Backend::None => "none",
        }
    }

    /// The backend `choice` names; for `auto`, the firewall that is active
    /// here: firewalld if it runs, else ufw if it is enabled, else
    /// iptables or nftables if their ruleset filters input, else none.
    fn choose(choice: FirewallBackend) -> Result<Backend, ToolError> {
        Ok(match choice {
            FirewallBackend::Nftables => Backend::Nftables(NftablesBackend::new(Nft::open())),
            FirewallBackend::Ufw => Backend::Ufw,
            FirewallBackend::Iptables => Backend::Iptables(iptables::Variant::detect()),
            FirewallBackend::Firewalld => Backend::Firewalld,
            FirewallBackend::None => Backend::None,
            FirewallBackend::Auto => detect()?,
        })
    }

    fn install(&mut self, pool: PortPool) -> Result<(), ToolError> {
        match self {
            Backend::Nftables(nft) => nft.install(),
            Backend::Ufw => ufw::install(pool),
            Backend::Iptables(variant) => iptables::install(*variant, pool),
            Backend::Firewalld => firewalld::install(pool),
            Backend::None => Ok(()),
        }
    }

    fn set_ports(&mut self, ports: &BTreeSet<u16>) -> Result<(), ToolError> {
        match self {
            Backend::Nftables(nft) => nft.set_ports(ports),
            _ => Ok(()),
        }
    }

    /// Whether the rules are in place as installed.
    fn in_place(&mut self, pool: PortPool) -> Result<bool, ToolError> {
        match self {
            Backend::Nftables(nft) => nft.in_place(),
            Backend::Ufw => ufw::in_place(pool),
            Backend::Iptables(variant) => iptables::in_place(*variant),
            Backend::Firewalld => firewalld::in_place(pool),
            Backend::None => Ok(true),
        }
    }

    fn remove(&mut self, pool: PortPool) -> Result<(), ToolError> {
        match self {
            Backend::Nftables(nft) => nft.remove(),
            Backend::Ufw => ufw::remove(),
            Backend::Iptables(variant) => iptables::remove(*variant),
            Backend::Firewalld => firewalld::remove(pool),
            Backend::None => Ok(()),
        }
    }
}

/// Which firewall is active here. A tool that is missing counts as a
/// firewall that is not there.
fn detect() -> Result<Backend, ToolError> {
    let absent = |result: Result<bool, ToolError>| match result {
        Err(ToolError::Missing { .. }) => Ok(false),
        other => other,
    };
    if absent(firewalld::running())? {
        return Ok(Backend::Firewalld);
    }
    if absent(ufw::active())? {
        return Ok(Backend::Ufw);
    }
    let mut nft = Nft::open();
    match nftables::detect(&mut nft) {
        Ok(Some(true)) => return Ok(Backend::Iptables(iptables::Variant::detect())),
        Ok(Some(false)) => return Ok(Backend::Nftables(NftablesBackend::new(nft))),
        Ok(None) | Err(ToolError::Missing { .. }) => {}
        Err(error) => return Err(error),
    }
    if absent(iptables::in_use())? {
        return Ok(Backend::Iptables(iptables::Variant::detect()));
    }
    Ok(Backend::None)
}

/// What the firewall thread has yet to do.
#[derive(Debug, Default)]
struct Pending {
    ports: Option<BTreeSet<u16>>,
    config: Option<(FirewallConfig, PortPool)>,
    requests: VecDeque<(FirewallRequest, oneshot::Sender<FirewallStatus>)>,
    settled: Vec<oneshot::Sender<()>>,
    stop: Option<oneshot::Sender<()>>,
}

#[derive(Debug, Default)]
struct Mailbox {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Mailbox {
    fn post(&self, change: impl FnOnce(&mut Pending)) {
        change(&mut self.pending.lock().expect("firewall mailbox"));
        self.wake.notify_one();
    }
}

/// The daemon's handle on the firewall thread.
#[derive(Debug)]
pub struct Firewall {
    mailbox: Arc<Mailbox>,
    status: Arc<Mutex<FirewallStatus>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Firewall {
    /// Starts the firewall thread, which removes what an earlier daemon
    /// left and puts the backend's rules in place (no session port is
    /// open until [`Firewall::set_ports`]).
    pub fn start(config: FirewallConfig, pool: PortPool) -> Firewall {
        let choice = config.backend;
        let status = Arc::new(Mutex::new(FirewallStatus {
            backend: "none".into(),
            configured: choice.to_string(),
            state: "starting".into(),
            error: None,
            ports: Vec::new(),
            range: None,
        }));
        let mailbox = Arc::new(Mailbox::default());
        mailbox.post(|pending| pending.config = Some((config, pool)));
        let worker = Worker {
            mailbox: mailbox.clone(),
            status: status.clone(),
            choice,
            check_interval: config.check_interval(),
            pool,
            configured: false,
            backend: Backend::None,
            installed: false,
            closed: false,
            ports: BTreeSet::new(),
            error: None,
        };
        let thread = std::thread::Builder::new()
            .name("firewall".into())
            .spawn(move || worker.run())
            .ok();
        if thread.is_none() {
            tracing::error!("firewall: could not start its thread; no rules will be managed");
        }
        Firewall {
            mailbox,
            status,
            thread: Mutex::new(thread),
        }
    }

    /// The session ports now; the firewall opens exactly these (backends
    /// that open the whole pool ignore them).
    pub fn set_ports(&self, ports: BTreeSet<u16>) {
        self.mailbox.post(|pending| pending.ports = Some(ports));
    }

    /// A new configuration: if the backend or the pool changed, the old
    /// rules are removed and the new ones put in place.
    pub fn reconfigure(&self, config: FirewallConfig, pool: PortPool) {
        self.mailbox
            .post(|pending| pending.config = Some((config, pool)));
    }

    /// Waits (at most `patience`) until every change posted so far has
    /// been carried out, so that a new session's port is open before its
    /// client is told about it.
    pub async fn settled(&self, patience: std::time::Duration) {
        let (done, finished) = oneshot::channel();
        self.mailbox.post(|pending| {
            if pending.settled.len() < MAX_WAITING_REQUESTS * 64 {
                pending.settled.push(done);
            }
        });
        let _ = tokio::time::timeout(patience, finished).await;
    }

    /// The state as last published.
    pub fn status(&self) -> FirewallStatus {
        self.status.lock().expect("firewall status").clone()
    }

    /// Carries out `moshctl firewall …` and answers with the state after it.
    pub async fn request(&self, request: FirewallRequest) -> Result<FirewallStatus, String> {
        if request == FirewallRequest::Status {
            return Ok(self.status());
        }
        let (reply, answer) = oneshot::channel();
        let mut queued = false;
        self.mailbox.post(|pending| {
            if pending.requests.len() < MAX_WAITING_REQUESTS {
                pending.requests.push_back((request, reply));
                queued = true;
            }
        });
        if !queued {
            return Err("too many firewall requests at once; try again".into());
        }
        answer
            .await
            .map_err(|_| "the firewall thread is gone".to_owned())
    }

    /// Removes every rule the daemon added and ends the thread.
    pub async fn stop(&self) {
        let (done, finished) = oneshot::channel();
        self.mailbox.post(|pending| pending.stop = Some(done));
        let _ = finished.await;
        let thread = self.thread.lock().expect("firewall thread").take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// The firewall thread's state.
struct Worker {
    mailbox: Arc<Mailbox>,
    status: Arc<Mutex<FirewallStatus>>,
    choice: FirewallBackend,
    pool: PortPool,
    /// How often to check that the rules are still in place.
    check_interval: std::time::Duration,
    /// Whether a configuration was applied yet.
    configured: bool,
    backend: Backend,
    /// Whether the backend's rules are in place.
    installed: bool,
    /// Whether `moshctl firewall close` turned the rules off.
    closed: bool,
    /// The session ports.
    ports: BTreeSet<u16>,
    /// The last failure, until a step succeeds.
    error: Option<String>,
}

impl Worker {
    fn run(mut self) {
        let mut last_check = std::time::Instant::now();
        loop {
            let pending = {
                let mut pending = self.mailbox.pending.lock().expect("firewall mailbox");
                while pending.ports.is_none()
                    && pending.config.is_none()
                    && pending.requests.is_empty()
                    && pending.settled.is_empty()
                    && pending.stop.is_none()
                {
                    let next_check = last_check + self.check_interval;
                    let wait = next_check.saturating_duration_since(std::time::Instant::now());
                    if wait.is_zero() {
                        break;
                    }
                    pending = self
                        .mailbox
                        .wake
                        .wait_timeout(pending, wait)
                        .expect("firewall mailbox")
                        .0;
                }
                std::mem::take(&mut *pending)
            };
            if let Some((config, pool)) = pending.config {
                self.check_interval = config.check_interval();
                self.configure(config.backend, pool);
                last_check = std::time::Instant::now();
            } else if last_check.elapsed() >= self.check_interval {
                self.check();
                last_check = std::time::Instant::now();
            }
            for (request, reply) in pending.requests {
                match request {
                    FirewallRequest::Open => self.open(),
                    FirewallRequest::Close => self.close(),
                    FirewallRequest::Status => {}
                }
                let _ = reply.send(self.publish());
            }
            if let Some(ports) = pending.ports {
                self.ports = ports;
                self.sync();
            }
            self.publish();
            for waiter in pending.settled {
                let _ = waiter.send(());
            }
            if let Some(done) = pending.stop {
                self.uninstall();
                self.publish();
                let _ = done.send(());
                return;
            }
        }
    }

    /// Records the outcome of one step.
    fn outcome(&mut self, what: &str, result: Result<(), ToolError>) -> bool {
        match result {
            Ok(()) => {
                self.error = None;
                true
            }
            Err(error) => {
                tracing::error!("firewall ({}): {what}: {error}", self.backend.name());
                self.error = Some(format!("{what}: {error}"));
                false
            }
        }
    }

    fn configure(&mut self, choice: FirewallBackend, pool: PortPool) {
        if self.configured && (choice, pool) == (self.choice, self.pool) {
            return;
        }
        self.uninstall();
        (self.choice, self.pool, self.configured) = (choice, pool, true);
        self.choose_and_install();
    }

    fn choose_and_install(&mut self) {
        match Backend::choose(self.choice) {
            Ok(backend) => {
                tracing::info!(
                    "firewall: backend {} (configured: {})",
                    backend.name(),
                    self.choice
                );
                self.backend = backend;
                self.error = None;
            }
            Err(error) => {
                self.backend = Backend::None;
                let _ = self.outcome("detecting the firewall", Err(error));
                return;
            }
        }
        if !self.closed {
            self.install();
        }
    }

    fn install(&mut self) {
        let pool = self.pool;
        let result = self.backend.install(pool);
        self.installed = self.outcome("adding the rules", result);
        if self.installed {
            self.sync();
        }
    }

    fn uninstall(&mut self) {
        if self.installed {
            self.remove();
        }
    }

    /// Removes the backend's rules, and says so in the log.
    fn remove(&mut self) {
        let pool = self.pool;
        let result = self.backend.remove(pool);
        if self.outcome("removing the rules", result) && !matches!(self.backend, Backend::None) {
            tracing::info!("firewall ({}): rules removed", self.backend.name());
        }
        self.installed = false;
    }

    /// Puts the rules back if they are gone (someone reloaded the
    /// firewall, say).
    fn check(&mut self) {
        if !self.installed {
            return;
        }
        let pool = self.pool;
        match self.backend.in_place(pool) {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    "firewall ({}): the rules are gone; putting them back",
                    self.backend.name()
                );
                self.install();
            }
            Err(error) => {
                let _ = self.outcome("checking the rules", Err(error));
            }
        }
    }

    /// Opens exactly the session ports; when that fails (someone flushed
    /// the ruleset, say), puts the rules in place again once.
    fn sync(&mut self) {
        if !self.installed {
            return;
        }
        let ports = self.ports.clone();
        if self.backend.set_ports(&ports).is_ok() {
            self.error = None;
            return;
        }
        let pool = self.pool;
        let result = self
            .backend
            .install(pool)
            .and_then(|()| self.backend.set_ports(&ports));
        self.installed = self.outcome("opening the session ports", result);
    }

    /// Puts the rules in place again; with nothing chosen yet (`auto`
    /// found no firewall, or detection failed), looks again first.
    fn open(&mut self) {
        self.closed = false;
        if matches!(self.backend, Backend::None) {
            self.choose_and_install();
        } else {
            self.install();
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.remove();
    }

    /// Publishes the state and returns it.
    fn publish(&self) -> FirewallStatus {
        let state = if self.error.is_some() {
            "error"
        } else if matches!(self.backend, Backend::None) {
            "disabled"
        } else if self.closed {
            "closed"
        } else {
            "open"
        };
        let open = state == "open";
        let status = FirewallStatus {
            backend: self.backend.name().into(),
            configured: self.choice.to_string(),
            state: state.into(),
            error: self.error.clone(),
            ports: match &self.backend {
                Backend::Nftables(nft) if open => nft.open_ports().iter().copied().collect(),
                _ => Vec::new(),
            },
            range: match self.backend {
                Backend::Ufw | Backend::Iptables(_) | Backend::Firewalld if open => {
                    Some(self.pool.to_string())
                }
                _ => None,
            },
        };
        *self.status.lock().expect("firewall status") = status.clone();
        status
    }
}
