//! Starting the session's command on a new pseudo-terminal, with the
//! environment mosh gives it: `TERM` from the client's colour count,
//! `NCURSES_NO_UTF8_ACS=1`, no `STY`, the home directory as working
//! directory, IUTF8 on the terminal, and the login shell when no command is
//! given (its `argv[0]` prefixed with `-`).

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use pty_process::{OwnedReadPty, OwnedWritePty, Size};
use rustix::termios::{self, InputModes, OptionalActions};

/// What to run in the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildCommand {
    /// The command and its arguments, or `None` for the login shell.
    pub argv: Option<Vec<OsString>>,
    /// The `TERM` value for the child.
    pub term: String,
}

impl ChildCommand {
    /// `TERM=xterm-256color` for 256 colours, else `TERM=xterm`, as mosh sets.
    pub fn new(argv: Option<Vec<OsString>>, colors: i32) -> Self {
        let term = if colors == 256 {
            "xterm-256color"
        } else {
            "xterm"
        };
        Self {
            argv,
            term: term.to_owned(),
        }
    }

    /// Whether the login shell runs (and so the motd is shown).
    pub fn is_login_shell(&self) -> bool {
        self.argv.is_none()
    }
}

/// The running command and its side of the terminal.
pub struct ShellChild {
    /// Reads what the command writes.
    pub reader: OwnedReadPty,
    /// Writes the user's input; also resizes the terminal.
    pub writer: OwnedWritePty,
    /// The process (killed when dropped).
    pub child: tokio::process::Child,
    /// The terminal's master side, for its utmp record.
    pub master: std::os::fd::OwnedFd,
}

impl ShellChild {
    /// Starts `command` on a new `width`×`height` terminal.
    pub fn spawn(command: &ChildCommand, width: usize, height: usize) -> io::Result<Self> {
        let (pty, pts) = pty_process::open().map_err(to_io)?;
        pty.resize(size(width, height)).map_err(to_io)?;
        let mut modes = termios::tcgetattr(&pts)?;
        modes.input_modes |= InputModes::IUTF8;
        termios::tcsetattr(&pts, OptionalActions::Now, &modes)?;
        let home = home_directory();
        let (program, args, arg0) = match &command.argv {
            Some(argv) => (argv[0].clone(), argv[1..].to_vec(), argv[0].clone()),
            None => {
                let shell = login_shell();
                let base = shell
                    .as_os_str()
                    .as_bytes()
                    .rsplit(|&b| b == b'/')
                    .next()
                    .unwrap_or_default()
                    .to_vec();
                let mut arg0 = b"-".to_vec();
                arg0.extend_from_slice(&base);
                (shell.into_os_string(), Vec::new(), OsString::from_vec(arg0))
            }
        };
        let mut builder = pty_process::Command::new(program)
            .args(args)
            .arg0(arg0)
            .env("TERM", &command.term)
            .env("NCURSES_NO_UTF8_ACS", "1")
            .env_remove("STY")
            .kill_on_drop(true);
        if let Some(home) = home {
            builder = builder.current_dir(&home).env("PWD", &home);
        }
        let child = builder.spawn(pts).map_err(to_io)?;
        let master = std::os::fd::AsFd::as_fd(&pty).try_clone_to_owned()?;
        let (reader, writer) = pty.into_split();
        Ok(Self {
            reader,
            writer,
            child,
            master,
        })
    }

    /// Sets the terminal size (the command gets SIGWINCH).
    pub fn resize(&self, width: usize, height: usize) -> io::Result<()> {
        self.writer.resize(size(width, height)).map_err(to_io)
    }
}

fn size(width: usize, height: usize) -> Size {
    let clamp = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    Size::new(clamp(height), clamp(width))
}

fn to_io(error: pty_process::Error) -> io::Error {
    match error {
        pty_process::Error::Io(error) => error,
        other => io::Error::other(other.to_string()),
    }
}

fn passwd_entry() -> Option<nix::unistd::User> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
}

/// `$HOME`, else the passwd entry's home directory.
pub fn home_directory() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(|| passwd_entry().map(|user| user.dir))
}

/// `$SHELL`, else the passwd entry's shell, else `/bin/sh`.
fn login_shell() -> PathBuf {
    std::env::var_os("SHELL")
        .filter(|shell| !shell.is_empty())
        .map(PathBuf::from)
        .or_else(|| passwd_entry().map(|user| user.shell))
        .filter(|shell| !shell.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/bin/sh"))
}

/// The message of the day, as a login would show it, unless `~/.hushlogin`
/// exists: `/run/motd.dynamic` (or `/var/run/motd.dynamic`), then
/// `/etc/motd`. Line ends become CR LF, as the terminal would show them.
pub fn motd() -> Vec<u8> {
    if home_directory().is_some_and(|home| home.join(".hushlogin").exists()) {
        return Vec::new();
    }
    let dynamic = std::fs::read("/run/motd.dynamic")
        .or_else(|_| std::fs::read("/var/run/motd.dynamic"))
        .unwrap_or_default();
    let fixed = std::fs::read("/etc/motd").unwrap_or_default();
    let mut text = Vec::with_capacity(dynamic.len() + fixed.len());
    for byte in dynamic.into_iter().chain(fixed) {
        if byte == b'\n' {
            text.push(b'\r');
        }
        text.push(byte);
    }
    text
}
