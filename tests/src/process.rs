//! Processes that are not our children, such as daemons that detached
//! (`mosh-server`, the tmux server): checking, awaiting and ending them by
//! pid. Every call also checks the process name, so that a pid the kernel
//! has since given to another process is left alone.

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often waits look at the process again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Whether process `pid` exists, is named `name` (its `comm`, as `ps`
/// shows it, which the kernel cuts to 15 bytes) and has not exited. An exited process that nobody has reaped
/// yet (a zombie) counts as exited.
pub fn is_running(pid: u32, name: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((head, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let state = rest.trim_start().chars().next();
    head.strip_prefix(&format!("{pid} ("))
        .is_some_and(|comm| comm == name)
        && !matches!(state, Some('Z' | 'X'))
}

/// Waits up to `timeout` for process `pid` named `name` to exit; returns
/// whether it did.
pub fn wait_for_exit(pid: u32, name: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_running(pid, name) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL_INTERVAL);
    }
    true
}

/// Ends process `pid` named `name` if it runs: SIGTERM, then SIGKILL if it
/// is still there after `grace`. Returns whether it is gone.
pub fn terminate(pid: u32, name: &str, grace: Duration) -> bool {
    if !is_running(pid, name) {
        return true;
    }
    signal(pid, "TERM");
    if wait_for_exit(pid, name, grace) {
        return true;
    }
    signal(pid, "KILL");
    wait_for_exit(pid, name, grace)
}

fn signal(pid: u32, signal: &str) {
    // The process may exit between the check and the signal; a failed kill
    // then changes nothing, so its status is not interesting. The shell's
    // built-in kill is used because every system has it.
    let _ = Command::new("sh")
        .args([
            "-c",
            "kill -s \"$1\" \"$2\"",
            "sh",
            signal,
            &pid.to_string(),
        ])
        .stderr(Stdio::null())
        .status();
}
