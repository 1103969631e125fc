//! The one way the programs of this workspace write to standard output and
//! standard error.
//!
//! A write to stdio is best effort: it never panics and never fails. A
//! closed descriptor (the Rust runtime points it at `/dev/null` at start-up),
//! a full one (`/dev/full`: `ENOSPC`) or any other error loses the bytes and
//! nothing else, so what a program does (a session, its end, its exit
//! status) never depends on whether anyone still reads its output. The
//! `print!` family panics instead ("failed printing to stdout"), which is
//! why the workspace denies `clippy::print_stdout` and
//! `clippy::print_stderr` and disallows `std::io::stdout`/`stderr`
//! (`clippy.toml`): use [`stdout!`], [`stdoutln!`], [`stderr!`],
//! [`stderrln!`], or the [`Stdout`] and [`Stderr`] writers.
//!
//! A write to a closed pipe (`EPIPE`) is the one case that may end the
//! program, as it ends stock mosh: [`on_broken_pipe`] says which. The
//! process itself keeps ignoring `SIGPIPE` (Rust's default), so sockets and
//! pipes to children still just report `EPIPE`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;

/// What a write to a closed pipe on standard output or standard error does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenPipe {
    /// The bytes are dropped and the program goes on (the default): stock
    /// mosh once it ignores or handles `SIGPIPE`.
    Ignore,
    /// The program dies of `SIGPIPE`, as a C program with the signal's
    /// default action does: stock `mosh-server` until it prints
    /// `MOSH CONNECT`, stock `mosh-client` until its session handles the
    /// signal, and the stock `mosh` script throughout.
    Die,
}

/// Whether [`BrokenPipe::Die`] is in force.
static DIE_ON_BROKEN_PIPE: AtomicBool = AtomicBool::new(false);

/// Sets what a write to a closed pipe on stdio does from now on, for the
/// whole process.
pub fn on_broken_pipe(policy: BrokenPipe) {
    DIE_ON_BROKEN_PIPE.store(policy == BrokenPipe::Die, Ordering::Relaxed);
}

/// Standard output, as a writer that never fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stdout;

/// Standard error, as a writer that never fails (also a `MakeWriter` for
/// tracing-subscriber: `.with_writer(|| Stderr)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl AsFd for Stdout {
    #[allow(clippy::disallowed_methods, reason = "the one place stdout is named")]
    fn as_fd(&self) -> BorrowedFd<'_> {
        rustix::stdio::stdout()
    }
}

impl AsFd for Stderr {
    #[allow(clippy::disallowed_methods, reason = "the one place stderr is named")]
    fn as_fd(&self) -> BorrowedFd<'_> {
        rustix::stdio::stderr()
    }
}

impl Stdout {
    /// Whether standard output is a terminal.
    pub fn is_terminal(&self) -> bool {
        rustix::termios::isatty(self)
    }
}

impl Stderr {
    /// Whether standard error is a terminal.
    pub fn is_terminal(&self) -> bool {
        rustix::termios::isatty(self)
    }
}

impl io::Write for Stdout {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        write_stdout(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Write for Stderr {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        write_stderr(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `bytes` to standard output, best effort.
pub fn write_stdout(bytes: &[u8]) {
    write_best_effort(Stdout.as_fd(), bytes);
}

/// Writes `bytes` to standard error, best effort.
pub fn write_stderr(bytes: &[u8]) {
    write_best_effort(Stderr.as_fd(), bytes);
}

/// Writes all of `bytes` to `fd` in as few writes as it takes: retries
/// interrupted and partial writes, waits while a non-blocking descriptor is
/// full, and gives up silently on any error ([`BrokenPipe`] says what a
/// closed pipe does).
fn write_best_effort(fd: BorrowedFd<'_>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return,
            Ok(written) => bytes = &bytes[written..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let mut wanted = [PollFd::new(&fd, PollFlags::OUT)];
                match poll(&mut wanted, None) {
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(_) => return,
                }
            }
            Err(Errno::PIPE) if DIE_ON_BROKEN_PIPE.load(Ordering::Relaxed) => die_of_sigpipe(),
            Err(_) => return,
        }
    }
}

/// Ends the process as `SIGPIPE` with its default action would.
fn die_of_sigpipe() -> ! {
    // SAFETY: restoring a signal's default action and unblocking it run no
    // code in signal context; the sigset is initialised by sigemptyset
    // before use, and raise only sends the signal to this thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(libc::SIGPIPE);
    }
    // Not reached: the shell's status for a death by SIGPIPE otherwise.
    std::process::exit(128 + libc::SIGPIPE)
}

/// Like `print!`, through [`write_stdout`]: never panics.
#[macro_export]
macro_rules! stdout {
    ($($arg:tt)*) => {
        $crate::write_stdout(::std::format!($($arg)*).as_bytes())
    };
}

/// Like `println!`, through [`write_stdout`] (one write for the line):
/// never panics.
#[macro_export]
macro_rules! stdoutln {
    () => {
        $crate::write_stdout(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(
            ::std::format!("{}\n", ::std::format_args!($($arg)*)).as_bytes(),
        )
    };
}

/// Like `eprint!`, through [`write_stderr`]: never panics.
#[macro_export]
macro_rules! stderr {
    ($($arg:tt)*) => {
        $crate::write_stderr(::std::format!($($arg)*).as_bytes())
    };
}

/// Like `eprintln!`, through [`write_stderr`] (one write for the line):
/// never panics.
#[macro_export]
macro_rules! stderrln {
    () => {
        $crate::write_stderr(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::write_stderr(
            ::std::format!("{}\n", ::std::format_args!($($arg)*)).as_bytes(),
        )
    };
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn the_writers_never_fail() {
        // Under the test harness stdout and stderr are whatever the runner
        // gave; whatever they are, a write reports success.
        assert_eq!(Stdout.write(b"").unwrap(), 0);
        assert!(Stderr.write_all(b"").is_ok());
        assert!(Stderr.flush().is_ok());
    }

    #[test]
    fn a_full_descriptor_loses_the_bytes_and_nothing_else() {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        write_best_effort(full.as_fd(), b"lost\n");
        let (reader, writer) = io::pipe().unwrap();
        drop(reader);
        on_broken_pipe(BrokenPipe::Ignore);
        write_best_effort(writer.as_fd(), b"lost too\n");
    }
}
