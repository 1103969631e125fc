//! Running a firewall tool (`nft`, `ufw`, `iptables`, `firewall-cmd`) as a
//! child process with a time limit, keeping the command line and its error
//! output for the log and `moshctl firewall status`; the errors of those
//! tools and of libnftables.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a tool may run before it is killed.
const TIME_LIMIT: Duration = Duration::from_secs(20);

/// Longest piece of a tool's error output kept in an error.
const MAX_STDERR: usize = 2000;

/// A firewall tool failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The program is not installed (or not on `PATH`).
    #[error("`{command}`: {program} is not installed")]
    Missing {
        /// The command line.
        command: String,
        /// The program.
        program: String,
    },
    /// The program could not be started for another reason.
    #[error("`{command}` could not be started: {reason}")]
    Unstartable {
        /// The command line.
        command: String,
        /// Why.
        reason: String,
    },
    /// The program exited with a failure.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on standard error (or output, when that was
        /// empty), trimmed.
        stderr: String,
    },
    /// The program ran longer than its time limit and was killed.
    #[error("`{command}` did not finish within {} s and was killed", TIME_LIMIT.as_secs())]
    TimedOut {
        /// The command line.
        command: String,
    },
    /// The tool runs, but the firewall it drives is not usable.
    #[error("`{command}`: {reason}")]
    Unusable {
        /// The command line that found out.
        command: String,
        /// Why.
        reason: String,
    },
    /// A library (libnftables) refused the commands `command` stands for.
    #[error("`{command}` failed in {library}: {error}")]
    Refused {
        /// The equivalent command line.
        command: String,
        /// The library.
        library: &'static str,
        /// Its error messages, trimmed.
        error: String,
    },
    /// The program's output could not be understood.
    #[error("`{command}` printed something unexpected: {reason}")]
    Unexpected {
        /// The command line.
        command: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// Runs `program` with `args` (and `input` on its standard input) in the C
/// locale; returns its standard output.
pub fn run(program: &str, args: &[&str], input: Option<&[u8]>) -> Result<String, ToolError> {
    let command = command_line(program, args);
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => ToolError::Missing {
                command: command.clone(),
                program: program.to_owned(),
            },
            _ => ToolError::Unstartable {
                command: command.clone(),
                reason: error.to_string(),
            },
        })?;
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        // A tool that exits before reading everything is judged by its
        // exit status below.
        let _ = stdin.write_all(input);
    }
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = match finished.recv_timeout(TIME_LIMIT) {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => {
            return Err(ToolError::Unstartable {
                command,
                reason: error.to_string(),
            });
        }
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(ToolError::TimedOut { command });
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = if stderr.trim().is_empty() {
        stdout.trim()
    } else {
        stderr.trim()
    };
    Err(ToolError::Failed {
        command,
        status: output.status.to_string(),
        stderr: shorten(said),
    })
}

/// The command line as a shell would show it.
fn command_line(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .map(|word| {
            if !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,".contains(c))
            {
                word.to_owned()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` on one line, at most [`MAX_STDERR`] characters of it.
pub(super) fn shorten(text: &str) -> String {
    let one_line = text.lines().collect::<Vec<_>>().join(" | ");
    match one_line.char_indices().nth(MAX_STDERR) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_input_pass_through() {
        assert_eq!(run("cat", &[], Some(b"ruleset")), Ok("ruleset".into()));
    }

    #[test]
    fn a_failure_names_the_command_and_its_stderr() {
        let error = run("sh", &["-c", "echo 'no such chain' >&2; exit 3"], None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`sh -c 'echo '\\''no such chain'\\'' >&2; exit 3'` failed (exit status: 3): no such chain"
        );
    }

    #[test]
    fn a_missing_program_says_so() {
        let error = run("mosh-daemon-no-such-tool", &["list"], None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`mosh-daemon-no-such-tool list`: mosh-daemon-no-such-tool is not installed"
        );
    }
}
