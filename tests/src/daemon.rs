//! A `mosh-daemon` run in the foreground for a test, as root, in a private
//! runtime directory with its own configuration and port range, its
//! systemd notifications caught on a test socket; and throw-away local
//! users to run `mosh-server new` and `moshctl` as.
//!
//! Workers outlive their daemon by design, so dropping a [`TestDaemon`]
//! first kills every session (`moshctl kill --idle 0` as root), then stops
//! the daemon, then removes its directory.

use std::io::{self, Read};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mosh_proto::Base64Key;

use crate::stdio::Sink;
pub use crate::user::TestUser;
use crate::{UTF8_LOCALE, our_program, process};

/// How long the daemon may take to start or stop.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Distinguishes the daemons of one test process.
static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A range of `count` consecutive UDP ports that are free right now, below
/// the kernel's ephemeral range, so that other tests rarely collide.
pub fn free_port_range(count: u16) -> (u16, u16) {
    let seed = u64::from(std::process::id()) * 7919
        + NEXT.fetch_add(1, Ordering::Relaxed) * 104_729
        + u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos(),
        );
    let span = 30000 - 20000 - u64::from(count);
    for attempt in 0..2000u64 {
        let low = 20000 + ((seed + attempt * 613) % span) as u16;
        let probes: Vec<_> = (low..low + count)
            .map(|port| UdpSocket::bind(("0.0.0.0", port)))
            .collect();
        if probes.iter().all(Result::is_ok) {
            return (low, low + count - 1);
        }
    }
    panic!("no {count} consecutive free UDP ports between 20000 and 30000");
}

/// Who runs a command: root (the test itself) or a test user via `su`.
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    /// The test process (root).
    Root,
    /// A test user.
    User(&'a TestUser),
}

/// Quotes `word` for `sh`.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Runs `program ARGS...` with `env`, as `who`; waits for it.
pub fn run_as(who: As<'_>, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = match who {
        As::Root => {
            let mut command = Command::new(program);
            command.args(args).envs(env.iter().copied());
            command
        }
        As::User(user) => {
            let mut line = String::from("exec env");
            for (name, value) in env {
                line.push(' ');
                line.push_str(&shell_quote(&format!("{name}={value}")));
            }
            line.push(' ');
            line.push_str(&shell_quote(&program.to_string_lossy()));
            for arg in args {
                line.push(' ');
                line.push_str(&shell_quote(arg));
            }
            let mut command = Command::new("su");
            command.args([user.name(), "-c", &line]);
            command
        }
    };
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

/// The parts of a `mosh-server new` run through the daemon.
#[derive(Debug, Clone)]
pub struct Connect {
    /// The UDP port.
    pub port: u16,
    /// The session key.
    pub key: Base64Key,
    /// The worker's pid, from `[mosh-server detached, pid = N]`.
    pub pid: u32,
}

impl Connect {
    /// 127.0.0.1 and the port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Parses a successful `mosh-server new`'s output.
    pub fn parse(output: &Output) -> Option<Self> {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let (port, key) = stdout
            .lines()
            .find_map(|line| line.strip_prefix("MOSH CONNECT "))?
            .split_once(' ')?;
        let pid = stderr.lines().find_map(|line| {
            line.strip_prefix("[mosh-server detached, pid = ")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })?;
        Some(Self {
            port: port.parse().ok()?,
            key: Base64Key::parse(key.trim_end()).ok()?,
            pid,
        })
    }
}

/// What [`TestDaemon::start_on`] does to the runtime directory first.
pub type Prepare<'a> = dyn Fn(&Path) -> io::Result<()> + 'a;

/// A foreground `mosh-daemon` for one test.
#[derive(Debug)]
pub struct TestDaemon {
    dir: PathBuf,
    child: Option<Child>,
    notify: UnixDatagram,
    ports: (u16, u16),
    env: Vec<(String, String)>,
    /// A command (and its arguments) the daemon is run under, such as
    /// `ip netns exec NAME`.
    wrapper: Vec<String>,
    /// Where the daemon's stdout and stderr go instead of its log file.
    output: Option<Sink>,
}

/// The configuration's `[firewall]` table unless `extra_config` has one:
/// test daemons leave the host's firewall alone.
const NO_FIREWALL: &str = "[firewall]\nbackend = \"none\"\n";

impl TestDaemon {
    /// Starts a daemon whose pool is `ports`, with `extra_config` lines
    /// added to its configuration, and waits for `READY=1`.
    pub fn start(ports: (u16, u16), extra_config: &str) -> io::Result<Self> {
        Self::start_with_env(ports, extra_config, &[])
    }

    /// [`TestDaemon::start`] with `env` added to the daemon's environment.
    pub fn start_with_env(
        ports: (u16, u16),
        extra_config: &str,
        env: &[(&str, &str)],
    ) -> io::Result<Self> {
        Self::start_full(ports, extra_config, env, &[], None, None)
    }

    /// [`TestDaemon::start`] after `prepare` has been given the runtime
    /// directory, which does not exist yet (to mount a filesystem there).
    pub fn start_on(
        ports: (u16, u16),
        extra_config: &str,
        prepare: &Prepare<'_>,
    ) -> io::Result<Self> {
        Self::start_full(ports, extra_config, &[], &[], None, Some(prepare))
    }

    /// [`TestDaemon::start`] with the daemon's stdout and stderr (and so
    /// its workers' stderr) a closed pipe or `/dev/full` instead of its log
    /// file: [`TestDaemon::log`] is then empty.
    pub fn start_with_output(
        ports: (u16, u16),
        extra_config: &str,
        output: Sink,
    ) -> io::Result<Self> {
        Self::start_full(ports, extra_config, &[], &[], Some(output), None)
    }

    /// [`TestDaemon::start_with_env`] inside network namespace `netns`
    /// (with `ip netns exec`, so `/etc/netns/NETNS/*` is mounted over
    /// `/etc`).
    pub fn start_in_netns(
        netns: &str,
        ports: (u16, u16),
        extra_config: &str,
        env: &[(&str, &str)],
    ) -> io::Result<Self> {
        Self::start_wrapped(&["ip", "netns", "exec", netns], ports, extra_config, env)
    }

    /// [`TestDaemon::start_with_env`] run under `wrapper` (a program and
    /// its arguments that ends by running the daemon's command line, such
    /// as `nsenter -t PID -m -n`).
    pub fn start_wrapped(
        wrapper: &[&str],
        ports: (u16, u16),
        extra_config: &str,
        env: &[(&str, &str)],
    ) -> io::Result<Self> {
        Self::start_full(ports, extra_config, env, wrapper, None, None)
    }

    fn start_full(
        ports: (u16, u16),
        extra_config: &str,
        env: &[(&str, &str)],
        wrapper: &[&str],
        output: Option<Sink>,
        prepare: Option<&Prepare<'_>>,
    ) -> io::Result<Self> {
        let dir = std::env::temp_dir().join(unique("mosh-e2e-daemon-"));
        std::fs::create_dir_all(&dir)?;
        let firewall = if extra_config.contains("[firewall]") {
            ""
        } else {
            NO_FIREWALL
        };
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "port_range = \"{}:{}\"\n{extra_config}\n{firewall}",
                ports.0, ports.1
            ),
        )?;
        let notify = UnixDatagram::bind(dir.join("notify.sock"))?;
        notify.set_read_timeout(Some(START_TIMEOUT))?;
        let mut daemon = Self {
            dir,
            child: None,
            notify,
            ports,
            env: env
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            wrapper: wrapper.iter().map(|word| word.to_string()).collect(),
            output,
        };
        if let Some(prepare) = prepare {
            prepare(&daemon.runtime_dir())?;
        }
        daemon.launch()?;
        let ready = daemon.wait_notification("READY=1", START_TIMEOUT)?;
        if !ready {
            return Err(io::Error::other(format!(
                "mosh-daemon did not send READY=1; log:\n{}",
                daemon.log()
            )));
        }
        Ok(daemon)
    }

    fn launch(&mut self) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))?;
        let program = our_program("mosh-daemon")?;
        let mut command = match self.wrapper.split_first() {
            Some((wrapper, args)) => {
                let mut command = Command::new(wrapper);
                command.args(args).arg(program);
                command
            }
            None => Command::new(program),
        };
        let (stdout, stderr) = match self.output {
            Some(sink) => (sink.broken_stdio()?, sink.broken_stdio()?),
            None => (log.try_clone()?.into(), log.into()),
        };
        let child = command
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .arg("--runtime-dir")
            .arg(self.runtime_dir())
            .env("NOTIFY_SOCKET", self.dir.join("notify.sock"))
            .env_remove("JOURNAL_STREAM")
            .envs(self.env.iter().map(|(n, v)| (n, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// The runtime directory (`/run/mosh-daemon` in production).
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.runtime_dir().join("control.sock")
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// The port pool.
    pub fn ports(&self) -> (u16, u16) {
        self.ports
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.dir.join("daemon.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Waits up to `timeout` for a notification containing `wanted`;
    /// returns whether one came. Notifications before it are consumed.
    pub fn wait_notification(&self, wanted: &str, timeout: Duration) -> io::Result<bool> {
        Ok(self.notifications_until(wanted, timeout)?.is_some())
    }

    /// Reads notifications until one contains `wanted` (returned with all
    /// read before it), or `timeout` passes (`None`).
    pub fn notifications_until(
        &self,
        wanted: &str,
        timeout: Duration,
    ) -> io::Result<Option<Vec<String>>> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.notify.set_read_timeout(Some(left))?;
            match self.notify.recv(&mut buffer) {
                Ok(len) => {
                    let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
                    let found = text.contains(wanted);
                    seen.push(text);
                    if found {
                        return Ok(Some(seen));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The environment that points our programs at this daemon.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "MOSH_DAEMON_SOCKET",
                self.socket().to_string_lossy().into_owned(),
            ),
            ("LANG", UTF8_LOCALE.to_owned()),
        ]
    }

    fn run(&self, who: As<'_>, program: &str, args: &[&str]) -> Output {
        let program = our_program(program).expect("built program");
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (*n, v.as_str())).collect();
        run_as(who, &program, args, &env)
    }

    /// Runs `mosh-server new ARGS...` as `who`.
    pub fn mosh_server(&self, who: As<'_>, args: &[&str]) -> Output {
        let mut all = vec!["new"];
        all.extend_from_slice(args);
        self.run(who, "mosh-server", &all)
    }

    /// Runs `mosh-server new -- COMMAND...` as `who` and parses its
    /// connect line, panicking with its output if it failed.
    pub fn new_session(&self, who: As<'_>, command: &[&str]) -> Connect {
        let mut args = vec!["--"];
        args.extend_from_slice(command);
        let output = self.mosh_server(who, &args);
        Connect::parse(&output).unwrap_or_else(|| {
            panic!(
                "mosh-server new failed ({}): stdout {:?} stderr {:?}\ndaemon log:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                self.log()
            )
        })
    }

    /// Starts `count` sessions of `command` as `who`, eight requests at a
    /// time (within the daemon's per-user limit of control connections).
    pub fn new_sessions(&self, who: As<'_>, command: &[&str], count: usize) -> Vec<Connect> {
        const STARTERS: usize = 8;
        thread::scope(|scope| {
            let starters: Vec<_> = (0..STARTERS)
                .map(|starter| {
                    scope.spawn(move || {
                        (starter..count)
                            .step_by(STARTERS)
                            .map(|_| self.new_session(who, command))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            starters
                .into_iter()
                .flat_map(|starter| starter.join().expect("starting sessions"))
                .collect()
        })
    }

    /// Runs `mosh-server attach ARGS...` as `who`.
    pub fn attach(&self, who: As<'_>, args: &[&str]) -> Output {
        let mut all = vec!["attach"];
        all.extend_from_slice(args);
        self.run(who, "mosh-server", &all)
    }

    /// Runs `moshctl ARGS...` as `who`.
    pub fn moshctl(&self, who: As<'_>, args: &[&str]) -> Output {
        self.run(who, "moshctl", args)
    }

    /// The session ids `moshctl list` shows to `who`, with their users.
    pub fn list(&self, who: As<'_>) -> Vec<(String, String)> {
        let output = self.moshctl(who, &["list"]);
        assert!(
            output.status.success(),
            "moshctl list: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .skip(1)
            .filter(|line| !line.starts_with('('))
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                Some((words.next()?.to_owned(), words.next()?.to_owned()))
            })
            .collect()
    }

    /// Replaces the configuration file (the pool line is not added).
    pub fn write_config(&self, text: &str) -> io::Result<()> {
        std::fs::write(self.config_path(), text)
    }

    /// Sends `signal` (`HUP`, `TERM`...) to the daemon.
    pub fn signal(&self, signal: &str) {
        if self.child.is_none() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status();
    }

    /// Sends `signal` to the daemon and waits for it to exit; returns its
    /// exit code.
    pub fn stop_with(&mut self, signal: &str) -> Option<i32> {
        self.signal(signal);
        let mut child = self.child.take()?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the daemon with SIGTERM (sessions keep running), runs
    /// `meanwhile`, and starts a new daemon on the same directory; waits for
    /// it to be ready.
    pub fn restart(&mut self, meanwhile: impl FnOnce()) -> io::Result<()> {
        if self.stop_with("TERM") != Some(0) {
            return Err(io::Error::other(format!(
                "mosh-daemon did not stop cleanly on SIGTERM; log:\n{}",
                self.log()
            )));
        }
        meanwhile();
        self.start_again()
    }

    /// Starts the daemon again (after [`TestDaemon::stop_with`]) with the
    /// same configuration, and waits for `READY=1`.
    pub fn start_again(&mut self) -> io::Result<()> {
        self.launch()?;
        if self.wait_notification("READY=1", START_TIMEOUT)? {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "restarted mosh-daemon not ready; log:\n{}",
                self.log()
            )))
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let listed = self.moshctl(As::Root, &["list"]);
            let pids: Vec<u32> = String::from_utf8_lossy(&listed.stdout)
                .lines()
                .skip(1)
                .filter_map(|line| line.split_whitespace().nth(2)?.parse().ok())
                .collect();
            let _ = self.moshctl(As::Root, &["kill", "--idle", "0"]);
            for pid in pids {
                process::terminate(pid, "mosh-server", Duration::from_secs(2));
            }
            self.stop_with("TERM");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
