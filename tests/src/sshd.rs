//! A real OpenSSH server on loopback for launcher tests: a generated host
//! key and user key for a [`TestUser`], and `sshd` in the foreground on a
//! given port. Everything is removed again when dropped.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::require_program;
use crate::user::TestUser;

/// `sshd` listening on 127.0.0.1, accepting one user's generated key.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Sshd {
    /// Starts sshd on `port` for `user`, with a fresh host key and user key.
    pub fn start(port: u16, user: &TestUser) -> io::Result<Self> {
        let sshd = PathBuf::from("/usr/sbin/sshd");
        if !sshd.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "/usr/sbin/sshd not found: run ./tests/run, which installs openssh-server",
            ));
        }
        let keygen = require_program("ssh-keygen")?;
        let dir = std::env::temp_dir().join(format!("mosh-e2e-sshd-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        for key in ["host_key", "user_key"] {
            run(Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key)))?;
        }
        let ssh_dir = user.home().join(".ssh");
        std::fs::create_dir_all(&ssh_dir)?;
        std::fs::copy(dir.join("user_key.pub"), ssh_dir.join("authorized_keys"))?;
        run(Command::new("chown")
            .args(["-R", &format!("{0}:{0}", user.name())])
            .arg(&ssh_dir))?;
        std::fs::create_dir_all("/run/sshd")?;
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
             AuthorizedKeysFile .ssh/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin no\nStrictModes no\n\
             UsePAM no\nAllowUsers {}\n",
            dir.join("host_key").display(),
            dir.join("sshd.pid").display(),
            user.name()
        );
        std::fs::write(dir.join("sshd_config"), config)?;
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log"))?)
            .spawn()?;
        let server = Self { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "sshd did not listen on port {port}: {}",
                    server.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// An ssh command line (for `mosh --ssh=`) that logs in with the
    /// generated key and ignores host keys.
    pub fn ssh_command(&self) -> String {
        format!(
            "ssh -p {} -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            self.port,
            self.dir.join("user_key").display()
        )
    }

    /// What sshd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(command: &mut Command) -> io::Result<()> {
    let output = command.stdin(Stdio::null()).output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{:?} failed ({}): {}",
            command,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}
