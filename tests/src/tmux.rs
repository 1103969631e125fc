//! A detached tmux session on a private socket, for running programs that
//! need a terminal (mosh-client, shells, full-screen programs) and reading
//! what they show.
//!
//! Each [`TmuxSession`] has its own tmux server, started with no
//! configuration file (`-f /dev/null`) on a socket in a private temporary
//! directory, so sessions never share state and tests may run in parallel.
//! The command runs under a small `sh` wrapper that writes its exit status
//! to a file in that directory: tmux 3.3a was seen to leave an exited
//! `mosh-client` unreaped, so tmux's own `pane_dead_status` cannot be relied
//! on. The pane stays open after the command exits (`remain-on-exit`), so
//! its last screen can still be read. Dropping the session kills its tmux
//! server and removes the directory.
//!
//! tmux may drop output that a command writes just before it exits; check
//! what a command shows while it runs, and its exit status afterwards.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::{UTF8_LOCALE, process, require_program};

/// Name of the one session on each private server.
const SESSION: &str = "e2e";

/// The tmux server's process name.
const SERVER_NAME: &str = "tmux: server";

/// How long the tmux server is given to exit after `kill-server` and then
/// after SIGTERM.
const SERVER_EXIT_GRACE: Duration = Duration::from_secs(2);

/// How often waits look at the pane.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Distinguishes the sessions of one test process.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(0);

/// Runs `"$@"` and then writes its exit status to the file named by `$0`,
/// through a temporary name so that a reader never sees half of it.
const STATUS_WRAPPER: &str = r#""$@"; status=$?; echo "$status" > "$0.new" && mv "$0.new" "$0""#;

/// A tmux session with one pane running one command.
#[derive(Debug)]
pub struct TmuxSession {
    tmux: PathBuf,
    dir: PathBuf,
    server_pid: Option<u32>,
}

/// Lines of history a pane keeps: enough for the scrollback tests' runs
/// and for the scrollback benchmark's 100,000-line flood.
const HISTORY_LIMIT: &str = "200000";

impl TmuxSession {
    /// Starts `command` (a program and its arguments; use `sh -c` for a
    /// shell command line) in a `width` × `height` pane of a new tmux
    /// server.
    ///
    /// The command runs in a UTF-8 locale, with `env` added to its
    /// environment (the variables are visible in tmux's argv: use it for
    /// test values only). tmux sets `TERM` itself (`tmux-256color`).
    pub fn start(
        width: u16,
        height: u16,
        command: &[&str],
        env: &[(&str, &str)],
    ) -> io::Result<Self> {
        if command.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "tmux session needs a command",
            ));
        }
        let tmux = require_program("tmux")?;
        let dir = std::env::temp_dir().join(format!(
            "mosh-e2e-tmux-{}-{}",
            std::process::id(),
            NEXT_SESSION.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let mut session = Self {
            tmux,
            dir,
            server_pid: None,
        };
        let status_file = session.status_file();
        let status_file = status_file.to_str().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the temporary directory's path is not UTF-8",
            )
        })?;
        let (width, height) = (width.to_string(), height.to_string());
        let mut args = vec![
            "start-server",
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "set-option",
            "-g",
            "history-limit",
            HISTORY_LIMIT,
            ";",
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            &width,
            "-y",
            &height,
        ];
        let assignments: Vec<String> = env
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        for assignment in &assignments {
            args.extend(["-e", assignment]);
        }
        args.extend(["--", "sh", "-c", STATUS_WRAPPER, status_file]);
        args.extend(command);
        session.run(args)?;
        let pid = session.run(["display-message", "-p", "#{pid}"])?;
        session.server_pid = Some(
            pid.trim()
                .parse()
                .map_err(|_| io::Error::other(format!("tmux reported server pid {pid:?}")))?,
        );
        Ok(session)
    }

    /// The pid of this session's tmux server.
    pub fn server_pid(&self) -> u32 {
        self.server_pid.expect("start records the server's pid")
    }

    /// The tmux server's socket, for `tmux -S` by hand.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("socket")
    }

    fn status_file(&self) -> PathBuf {
        self.dir.join("exit-status")
    }

    /// Runs one tmux command (with its arguments) on this session's server
    /// and returns its standard output.
    pub fn run<I, S>(&self, args: I) -> io::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let output = Command::new(&self.tmux)
            .arg("-S")
            .arg(self.socket())
            .args(["-f", "/dev/null"])
            .args(&args)
            .env_remove("TMUX")
            .env("LANG", UTF8_LOCALE)
            .env("LC_ALL", UTF8_LOCALE)
            .stdin(Stdio::null())
            .output()?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            let shown: Vec<_> = args
                .iter()
                .map(|arg| arg.as_ref().to_string_lossy())
                .collect();
            Err(io::Error::other(format!(
                "tmux {} failed ({}): {}",
                shown.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            )))
        }
    }

    /// The pid of the pane's command (the child of the small wrapper shell
    /// that records its exit status).
    pub fn command_pid(&self) -> io::Result<u32> {
        let wrapper = self.run(["display-message", "-p", "-t", SESSION, "#{pane_pid}"])?;
        let output = Command::new("pgrep")
            .args(["-P", wrapper.trim()])
            .output()?;
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .next()
            .and_then(|pid| pid.parse().ok())
            .ok_or_else(|| io::Error::other("the pane's command is not running"))
    }

    /// The text the pane shows now, one line per row, trailing blanks
    /// trimmed.
    pub fn capture(&self) -> io::Result<String> {
        self.run(["capture-pane", "-p", "-t", SESSION])
    }

    /// The pane's history (its local scrollback) and screen, oldest line
    /// first, trailing blanks trimmed.
    pub fn history_and_screen(&self) -> io::Result<Vec<String>> {
        let text = self.run(["capture-pane", "-p", "-S", "-", "-E", "-", "-t", SESSION])?;
        Ok(text
            .lines()
            .map(|line| line.trim_end().to_owned())
            .collect())
    }

    /// Types keys into the pane; each argument is a tmux key name (`Enter`,
    /// `C-c`, `Up`) or a string typed as is when it names no key.
    pub fn send_keys(&self, keys: &[&str]) -> io::Result<()> {
        let mut args = vec!["send-keys", "-t", SESSION];
        args.extend(keys);
        self.run(args).map(drop)
    }

    /// Types `text` literally, without looking up key names.
    pub fn send_text(&self, text: &str) -> io::Result<()> {
        self.run(["send-keys", "-t", SESSION, "-l", text]).map(drop)
    }

    /// Waits until the pane shows `text` and returns the pane's contents.
    /// The error after `timeout` includes what the pane showed last.
    pub fn wait_for(&self, text: &str, timeout: Duration) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.capture()?;
            if screen.contains(text) {
                return Ok(screen);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "timed out after {timeout:?} waiting for {text:?} in the tmux pane; \
                         it shows:\n{screen}"
                    ),
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The exit status of the pane's command, or `None` while it runs. A
    /// command killed by signal N has status 128 + N, as in the shell.
    pub fn exit_status(&self) -> io::Result<Option<i32>> {
        match std::fs::read_to_string(self.status_file()) {
            Ok(status) => status
                .trim_end()
                .parse()
                .map(Some)
                .map_err(|_| io::Error::other(format!("unreadable exit status {status:?}"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until the pane's command exits and returns its exit status.
    /// The error after `timeout` includes what the pane showed last.
    pub fn wait_for_exit(&self, timeout: Duration) -> io::Result<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "timed out after {timeout:?} waiting for the pane's command to exit; \
                         the pane shows:\n{}",
                        self.capture()?
                    ),
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for TmuxSession {
    fn drop(&mut self) {
        // The server may already be gone (it never started, or its last
        // session ended); either way there is nothing left to kill.
        let _ = self.run(["kill-server"]);
        if let Some(pid) = self.server_pid
            && !process::wait_for_exit(pid, SERVER_NAME, SERVER_EXIT_GRACE)
        {
            process::terminate(pid, SERVER_NAME, SERVER_EXIT_GRACE);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
