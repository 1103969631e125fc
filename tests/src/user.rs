//! Local Unix users made for tests: created with a home directory and
//! `/bin/sh`, unlocked for key-based ssh logins (no password), and deleted
//! with everything they own and run when dropped.

use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use crate::require_program;

/// How often `useradd` and `userdel` are tried (100 ms apart): tests running
/// at once contend for the lock on /etc/passwd, which they report as a
/// failure.
const ATTEMPTS: u32 = 50;

/// Distinguishes the users of one test process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A local user made for one test.
#[derive(Debug)]
pub struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl TestUser {
    /// Creates a user with a unique name, a home directory and `/bin/sh`
    /// as its shell.
    pub fn create() -> io::Result<Self> {
        let useradd = require_program("useradd")?;
        let name = format!(
            "mu{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        retry(&name, || {
            Command::new(&useradd)
                .args(["-m", "-s", "/bin/sh", &name])
                .output()
        })?;
        // No password, but not locked either: sshd refuses locked accounts
        // even for key logins.
        retry(&name, || {
            Command::new("usermod").args(["-p", "*", &name]).output()
        })?;
        let id = |flag: &str| -> io::Result<u32> {
            let output = Command::new("id").args([flag, &name]).output()?;
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .map_err(|_| io::Error::other(format!("id {flag} {name}")))
        };
        let (uid, gid) = (id("-u")?, id("-g")?);
        let home = PathBuf::from(format!("/home/{name}"));
        Ok(Self {
            name,
            uid,
            gid,
            home,
        })
    }

    /// The login name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The uid.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The primary gid.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// The home directory.
    pub fn home(&self) -> &PathBuf {
        &self.home
    }
}

/// Runs a passwd-changing command until it succeeds or [`ATTEMPTS`] runs out.
fn retry(name: &str, mut run: impl FnMut() -> io::Result<std::process::Output>) -> io::Result<()> {
    let mut attempts = 0;
    loop {
        let output = run()?;
        if output.status.success() {
            return Ok(());
        }
        attempts += 1;
        if attempts == ATTEMPTS {
            return Err(io::Error::other(format!(
                "changing user {name}: {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .stderr(Stdio::null())
            .status();
        for _ in 0..ATTEMPTS {
            let deleted = Command::new("userdel")
                .args(["-r", "-f", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let gone = Command::new("id")
                .arg(&self.name)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| !status.success());
            if deleted.is_err() || gone {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}
