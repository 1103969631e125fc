//! Running a program with its standard output or error closed, pointing at
//! a closed pipe (whose reader has gone away), or at `/dev/full`, and
//! telling whether it panicked; for the tests of issue 18.
//!
//! * [`run`]: a program run to its end under one [`Sink`] per stream.
//! * [`Orphans`]: this process as a child subreaper, so that the exit status
//!   of a `mosh-server` that detached (its parent exited) can be awaited.
//! * [`TerminalRun`]: a program whose standard input is a pseudo-terminal
//!   (a client needs one), its output streams set as above.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::pty::{Winsize, openpty};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

/// How often waits look again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Where a program's standard output or standard error goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// A pipe this test reads to its end.
    Captured,
    /// A pipe this test reads until it has read a whole line holding the
    /// text, then closes: the parent that read `MOSH CONNECT` going away.
    ReadUntil(&'static str),
    /// The descriptor is closed when the program starts (`>&-`).
    Closed,
    /// A pipe whose read end is already closed: every write gets `EPIPE`
    /// (and `SIGPIPE`).
    ClosedPipe,
    /// `/dev/full`: every write gets `ENOSPC`.
    Full,
}

/// The broken conditions every program is run under: each stream broken in
/// each way with the other one captured, then both closed and both closed
/// pipes.
pub const BROKEN: [(Sink, Sink); 8] = [
    (Sink::Closed, Sink::Captured),
    (Sink::ClosedPipe, Sink::Captured),
    (Sink::Full, Sink::Captured),
    (Sink::Captured, Sink::Closed),
    (Sink::Captured, Sink::ClosedPipe),
    (Sink::Captured, Sink::Full),
    (Sink::Closed, Sink::Closed),
    (Sink::ClosedPipe, Sink::ClosedPipe),
];

impl Sink {
    /// A [`Sink::ClosedPipe`] or [`Sink::Full`] to hand to a program
    /// started elsewhere.
    pub fn broken_stdio(self) -> io::Result<Stdio> {
        match self {
            Sink::ClosedPipe | Sink::Full => Ok(open(self)?.stdio),
            _ => Err(io::Error::other(format!("{self:?} is not a broken sink"))),
        }
    }
}

/// Whether a program panicked: Rust's panic status (101), or a panic
/// message in anything it could write (its captured streams, `shown`).
pub fn panicked(status: ExitStatus, written: &[&[u8]]) -> bool {
    status.code() == Some(101)
        || written
            .iter()
            .any(|bytes| String::from_utf8_lossy(bytes).contains("panicked"))
}

/// An exit status as `exit N` or `signal N`, to compare and show.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => format!("{status}"),
    }
}

/// An open stream's write end and, for [`Sink::Captured`], what reads it.
struct Opened {
    stdio: Stdio,
    reader: Option<mpsc::Receiver<Vec<u8>>>,
}

fn open(sink: Sink) -> io::Result<Opened> {
    Ok(match sink {
        Sink::Captured => {
            let (mut reader, writer) = io::pipe()?;
            let (sender, receiver) = mpsc::channel();
            thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = reader.read_to_end(&mut bytes);
                let _ = sender.send(bytes);
            });
            Opened {
                stdio: writer.into(),
                reader: Some(receiver),
            }
        }
        Sink::ReadUntil(marker) => {
            let (mut reader, writer) = io::pipe()?;
            let (sender, receiver) = mpsc::channel();
            thread::spawn(move || {
                let mut bytes = Vec::new();
                let mut buffer = [0u8; 4096];
                while !has_line_with(&bytes, marker) {
                    match reader.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(read) => bytes.extend_from_slice(&buffer[..read]),
                    }
                }
                drop(reader);
                let _ = sender.send(bytes);
            });
            Opened {
                stdio: writer.into(),
                reader: Some(receiver),
            }
        }
        // Closed by the `sh` wrapper of `command_with`.
        Sink::Closed => Opened {
            stdio: Stdio::null(),
            reader: None,
        },
        Sink::ClosedPipe => {
            let (reader, writer) = io::pipe()?;
            drop(reader);
            Opened {
                stdio: writer.into(),
                reader: None,
            }
        }
        Sink::Full => Opened {
            stdio: File::options().write(true).open("/dev/full")?.into(),
            reader: None,
        },
    })
}

/// Whether `bytes` hold a whole line (newline included) with `marker`.
fn has_line_with(bytes: &[u8], marker: &str) -> bool {
    String::from_utf8_lossy(bytes)
        .split_inclusive('\n')
        .any(|line| line.ends_with('\n') && line.contains(marker))
}

/// `program ARGS...` run through `sh -c 'exec ... >&-'` when a stream must
/// be closed (the shell's `exec` keeps the program's exit status), else
/// directly; in a UTF-8 locale, without `SSH_CONNECTION`, `env` added.
fn command_with(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdout: Sink,
    stderr: Sink,
) -> Command {
    let mut command = if stdout == Sink::Closed || stderr == Sink::Closed {
        let mut script = String::from(r#"exec "$0" "$@""#);
        if stdout == Sink::Closed {
            script.push_str(" >&-");
        }
        if stderr == Sink::Closed {
            script.push_str(" 2>&-");
        }
        let mut command = Command::new("sh");
        command.arg("-c").arg(script).arg(program).args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    };
    command
        .env("LANG", crate::UTF8_LOCALE)
        .env("LC_ALL", crate::UTF8_LOCALE)
        .env_remove("SSH_CONNECTION")
        .env_remove("MOSH_KEY")
        .envs(env.iter().copied());
    command
}

/// A started program and the readers of its captured streams.
pub struct Started {
    /// The program.
    pub child: Child,
    stdout: Option<mpsc::Receiver<Vec<u8>>>,
    stderr: Option<mpsc::Receiver<Vec<u8>>>,
}

impl Started {
    /// Waits up to `timeout` for the program to exit (killing it and
    /// panicking if it does not), then up to `linger` for its captured
    /// streams to close: a program that detached may keep them open. What
    /// a stream that was not captured got is empty.
    pub fn finish(mut self, timeout: Duration, linger: Duration) -> Output {
        let status = wait_or_kill(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("the program did not exit within {timeout:?}"));
        let collect = |reader: Option<mpsc::Receiver<Vec<u8>>>| {
            reader
                .and_then(|reader| reader.recv_timeout(linger).ok())
                .unwrap_or_default()
        };
        Output {
            status,
            stdout: collect(self.stdout.take()),
            stderr: collect(self.stderr.take()),
        }
    }
}

/// Starts `program ARGS...` with standard input from `/dev/null` and its
/// output streams as `stdout` and `stderr` say (see [`command_with`]).
pub fn start(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdout: Sink,
    stderr: Sink,
) -> Started {
    let (out, err) = (open(stdout).unwrap(), open(stderr).unwrap());
    let child = command_with(program, args, env, stdout, stderr)
        .stdin(Stdio::null())
        .stdout(out.stdio)
        .stderr(err.stdio)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
    Started {
        child,
        stdout: out.reader,
        stderr: err.reader,
    }
}

/// Runs `program ARGS...` (see [`start`]) to its end, within 30 s.
pub fn run(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdout: Sink,
    stderr: Sink,
) -> Output {
    start(program, args, env, stdout, stderr)
        .finish(Duration::from_secs(30), Duration::from_secs(5))
}

/// Serialises the tests of one test program that use [`Orphans`]: every
/// orphan of the process comes to it.
static ORPHANS: Mutex<()> = Mutex::new(());

/// This process as the child subreaper of the programs it starts: when one
/// forks and its parent exits (`mosh-server new` detaching), the orphan
/// becomes this process's child, so its exit status can be awaited. Held,
/// it keeps other tests of the same test program from starting orphans.
pub struct Orphans {
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Orphans {
    /// Makes this process a subreaper (for good: a test program that uses
    /// it has no other use for the attribute) and takes the lock.
    pub fn adopt() -> Orphans {
        let guard = ORPHANS.lock().unwrap_or_else(|e| e.into_inner());
        nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
        Orphans {
            _one_at_a_time: guard,
        }
    }

    /// The adopted children named `name` (their `comm`) that still run
    /// (adopted zombies, such as a stock server's shell, are left alone).
    pub fn named(&self, name: &str) -> Vec<u32> {
        let me = std::process::id();
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return found;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let mut fields = stat[close + 1..].split_whitespace();
            let (state, parent) = (fields.next(), fields.next());
            if &stat[open + 1..close] == name
                && parent == Some(&me.to_string())
                && state != Some("Z")
            {
                found.push(pid);
            }
        }
        found
    }

    /// Ends (SIGTERM, then SIGKILL) and reaps every adopted child named
    /// `name` that still runs, such as a server whose launcher died.
    pub fn end_all(&self, name: &str) {
        for pid in self.named(name) {
            let _ = nix::sys::signal::kill(
                Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            self.wait(pid, Duration::from_secs(2));
        }
    }

    /// Waits up to `timeout` for the one adopted child named `name` to
    /// appear; panics if none or several do.
    pub fn the_one(&self, name: &str, timeout: Duration) -> u32 {
        let deadline = Instant::now() + timeout;
        loop {
            match self.named(name).as_slice() {
                [pid] => return *pid,
                [] if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                found => panic!("adopted {name} processes: {found:?}"),
            }
        }
    }

    /// Waits up to `timeout` for adopted child `pid` to exit and reaps it;
    /// `None` (after SIGKILL) if it did not.
    pub fn wait(&self, pid: u32, timeout: Duration) -> Option<ExitStatus> {
        let pid = Pid::from_raw(pid as i32);
        let deadline = Instant::now() + timeout;
        loop {
            match waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return Some(ExitStatus::from_raw(code << 8)),
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    return Some(ExitStatus::from_raw(signal as i32));
                }
                Ok(_) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                Ok(_) => {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    return None;
                }
                Err(error) => panic!("waitpid {pid}: {error}"),
            }
        }
    }
}

/// A program whose standard input is a pseudo-terminal (80×24), whose
/// output the test may read from the terminal's master side.
pub struct TerminalRun {
    /// The program.
    pub child: Child,
    master: File,
    shown: mpsc::Receiver<Vec<u8>>,
    stdout: Option<mpsc::Receiver<Vec<u8>>>,
}

/// Where a program run on a terminal writes its standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalOut {
    /// The terminal.
    Terminal,
    /// Broken from the start, as [`Sink`] says ([`Sink::Captured`]: a pipe
    /// the test reads and may close with [`TerminalRun::close_stdout`]).
    Broken(Sink),
}

impl TerminalRun {
    /// Starts `program ARGS...` with `env` on a new terminal, its standard
    /// output as `stdout` says and its standard error on the terminal, or
    /// a closed pipe if `stderr_closed_pipe`.
    pub fn start(
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        stdout: TerminalOut,
        stderr_closed_pipe: bool,
    ) -> TerminalRun {
        let size = Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(&size, None).expect("openpty");
        let slave = |pty: &OwnedFd| Stdio::from(pty.try_clone().expect("dup"));
        let (out_stdio, out_reader) = match stdout {
            TerminalOut::Terminal => (slave(&pty.slave), None),
            TerminalOut::Broken(sink) => {
                let opened = open(sink).unwrap();
                (opened.stdio, opened.reader)
            }
        };
        let err_stdio = if stderr_closed_pipe {
            open(Sink::ClosedPipe).unwrap().stdio
        } else {
            slave(&pty.slave)
        };
        // Only a closed stdout needs `command_with` to know.
        let closed = if stdout == TerminalOut::Broken(Sink::Closed) {
            Sink::Closed
        } else {
            Sink::Captured
        };
        let child = command_with(program, args, env, closed, Sink::Captured)
            .stdin(slave(&pty.slave))
            .stdout(out_stdio)
            .stderr(err_stdio)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        drop(pty.slave);
        let master = File::from(pty.master);
        let mut reader = master.try_clone().expect("dup");
        let (sender, shown) = mpsc::channel();
        thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read) = reader.read(&mut buffer) {
                if read == 0 || sender.send(buffer[..read].to_vec()).is_err() {
                    break;
                }
            }
        });
        TerminalRun {
            child,
            master,
            shown,
            stdout: out_reader,
        }
    }

    /// Types `text` on the terminal.
    pub fn type_text(&self, text: &str) {
        use std::io::Write;
        (&self.master)
            .write_all(text.as_bytes())
            .expect("writing to the terminal");
    }

    /// Everything shown on the terminal so far (its output, stderr
    /// included when it goes there).
    pub fn shown(&self) -> Vec<u8> {
        self.shown.try_iter().flatten().collect()
    }

    /// Waits up to `timeout` for the reader of a
    /// [`TerminalOut::Broken`]`(`[`Sink::ReadUntil`]`)` standard output to
    /// have read its line and closed the pipe; returns what it read, `None`
    /// if it has not finished by then.
    pub fn stdout_closed(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let reader = self.stdout.as_ref().expect("a read standard output");
        reader.recv_timeout(timeout).ok()
    }

    /// Waits up to `timeout` for the program to exit; kills it and returns
    /// `None` if it does not.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_or_kill(&mut self.child, timeout)
    }
}

/// Waits up to `timeout` for `child` to exit; kills it and returns `None`
/// if it does not.
fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}
