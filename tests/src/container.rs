//! A throw-away Debian bookworm system booted with `systemd-nspawn`, for
//! tests that need a real systemd as PID 1 (this machine's PID 1 is not
//! systemd).
//!
//! The root file system comes from a `debootstrap` tarball cached at
//! `target/containers/bookworm.tgz` (made on first use, from
//! `deb.debian.org`, about a minute; other tests reuse it). Unpacking it
//! (`debootstrap --unpack-tarball`, which also configures the packages)
//! takes half a minute, so the result is cached too, as the plain tar
//! `target/containers/bookworm-rootfs.tar`, remade whenever the `.tgz` is
//! newer; every [`Container`] extracts that afresh (seconds) under
//! `target/containers/`. The container shares
//! the host's network, so a client on the host reaches a server inside on
//! 127.0.0.1; it keeps `CAP_NET_ADMIN` (which `systemd-nspawn` drops by
//! default) so that firewall tools work inside, and as the network is the
//! host's, a test may only read the firewall rules or change a table of
//! its own. Commands run inside through `nsenter` into the container's
//! namespaces. Dropping a [`Container`] kills it and removes its files,
//! whatever state the test left it in.
//!
//! Missing host tools (`debootstrap`, `systemd-nspawn`, `nsenter`) are
//! installed with `apt-get`; if that fails the test fails, it is never
//! skipped.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The Debian release the container runs.
const SUITE: &str = "bookworm";
/// Where `debootstrap` downloads from.
const MIRROR: &str = "http://deb.debian.org/debian";
/// Packages on top of `minbase`.
/// `ufw` and `iptables` are for the firewall tests; the cached tarball is
/// made again when this list changes (see [`debootstrap_tarball`]).
const PACKAGES: &str = "systemd,systemd-sysv,dbus,nftables,mosh,procps,iproute2,util-linux,passwd,\
                        locales,ufw,iptables";
/// How long booting may take until `systemctl is-system-running` settles.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// `PATH` for commands run inside.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The host programs needed, and the Debian package of each.
const HOST_TOOLS: [(&str, &str); 3] = [
    ("debootstrap", "debootstrap"),
    ("systemd-nspawn", "systemd-container"),
    ("nsenter", "util-linux"),
];

/// Distinguishes the containers of one test process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A booted systemd container, killed and removed on drop.
#[derive(Debug)]
pub struct Container {
    dir: PathBuf,
    root: PathBuf,
    nspawn: Child,
    init: u32,
}

impl Container {
    /// Unpacks a fresh root file system, boots it and waits until systemd
    /// reports the system running (or degraded).
    pub fn boot() -> io::Result<Self> {
        Self::boot_with(false)
    }

    /// [`Container::boot`] with a network of its own (loopback only), for
    /// tests that change firewall rules.
    pub fn boot_with_private_network() -> io::Result<Self> {
        Self::boot_with(true)
    }

    fn boot_with(private_network: bool) -> io::Result<Self> {
        install_host_tools()?;
        let tarball = rootfs_tarball()?;
        let dir = containers_dir()?.join(format!(
            "run-{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let root = dir.join("root");
        std::fs::create_dir_all(&root)?;
        let log = std::fs::File::create(dir.join("nspawn.log"));
        let mut extract = Command::new("tar");
        extract.arg("-xf").arg(&tarball).arg("-C").arg(&root);
        let unpacked = checked(extract.output(), "tar -x the root file system");
        let nspawn = match unpacked.and(log) {
            Ok(log) => Command::new("systemd-nspawn")
                .arg("-D")
                .arg(&root)
                .args(["--boot", "--keep-unit", "--register=no", "--quiet"])
                .arg("--capability=CAP_NET_ADMIN")
                .args(private_network.then_some("--private-network"))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn(),
            Err(error) => Err(error),
        };
        let nspawn = match nspawn {
            Ok(child) => child,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(error);
            }
        };
        let mut container = Self {
            dir,
            root,
            nspawn,
            init: 0,
        };
        container.init = container.find_init()?;
        container.wait_until_running()?;
        Ok(container)
    }

    /// The container's root directory, seen from the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The pid, on the host, of the container's systemd.
    pub fn init_pid(&self) -> u32 {
        self.init
    }

    /// What `systemd-nspawn` printed (the container's console).
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("nspawn.log")).unwrap_or_default()
    }

    /// Runs `script` with `sh -c` inside the container as root, in an
    /// empty environment but for `PATH`; waits for it.
    pub fn run(&self, script: &str) -> io::Result<Output> {
        Command::new("nsenter")
            .args(["-t", &self.init.to_string(), "-a", "--"])
            .args(["env", "-i", &format!("PATH={PATH}"), "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
    }

    /// [`Container::run`], failing unless `script` succeeds; returns its
    /// standard output.
    pub fn run_ok(&self, script: &str) -> io::Result<String> {
        let output = checked(self.run(script), script)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Copies the host file `source` to `inside` (an absolute path in the
    /// container) with permissions `mode`.
    pub fn install(&self, source: &Path, inside: &str, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let target = self.root.join(inside.trim_start_matches('/'));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(source, &target)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
    }

    /// Writes `text` to `inside` (an absolute path in the container).
    pub fn write(&self, inside: &str, text: &str) -> io::Result<()> {
        let target = self.root.join(inside.trim_start_matches('/'));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, text)
    }

    /// The container's systemd: the child of `systemd-nspawn`.
    fn find_init(&mut self) -> io::Result<u32> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let parent = self.nspawn.id().to_string();
        loop {
            if let Some(status) = self.nspawn.try_wait()? {
                return Err(io::Error::other(format!(
                    "systemd-nspawn exited with {status}:\n{}",
                    self.console()
                )));
            }
            let output = Command::new("pgrep").args(["-P", &parent]).output()?;
            let pid = String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .next()
                .and_then(|pid| pid.parse().ok());
            if let Some(pid) = pid {
                return Ok(pid);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("systemd-nspawn started no init"));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_until_running(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let mut state = String::new();
        while Instant::now() < deadline {
            if let Some(status) = self.nspawn.try_wait()? {
                return Err(io::Error::other(format!(
                    "systemd-nspawn exited with {status}:\n{}",
                    self.console()
                )));
            }
            if let Ok(output) = self.run("systemctl is-system-running") {
                state = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                if state == "running" || state == "degraded" {
                    return Ok(());
                }
            }
            thread::sleep(Duration::from_millis(250));
        }
        Err(io::Error::other(format!(
            "the container did not finish booting (state {state:?}):\n{}",
            self.console()
        )))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGKILL to the container's PID 1 ends every process in its pid
        // namespace; systemd-nspawn then exits.
        if self.init > 1 {
            let _ = Command::new("kill")
                .args(["-KILL", &self.init.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.nspawn.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `output` if the command ran and succeeded, else an error quoting what
/// it printed.
fn checked(output: io::Result<Output>, what: &str) -> io::Result<Output> {
    let output = output.map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
    if output.status.success() {
        return Ok(output);
    }
    Err(io::Error::other(format!(
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

/// Installs the missing host tools with `apt-get`.
fn install_host_tools() -> io::Result<()> {
    let missing: Vec<&str> = HOST_TOOLS
        .iter()
        .filter(|(program, _)| crate::require_program(program).is_err())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
    };
    if checked(install(), "apt-get install").is_err() {
        checked(
            Command::new("apt-get").args(["update", "-q"]).output(),
            "apt-get update",
        )?;
        checked(install(), &format!("apt-get install {}", missing.join(" ")))?;
    }
    for (program, _) in HOST_TOOLS {
        crate::require_program(program)?;
    }
    Ok(())
}

/// `target/containers/` of this workspace.
fn containers_dir() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or_else(|| io::Error::other(format!("unexpected test path {}", exe.display())))?;
    let dir = target.join("containers");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The cached unpacked root file system as a plain tar, made from the
/// `debootstrap` tarball first if missing or older than it.
fn rootfs_tarball() -> io::Result<PathBuf> {
    let source = debootstrap_tarball()?;
    let dir = containers_dir()?;
    let tarball = dir.join(format!("{SUITE}-rootfs.tar"));
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified());
    if let (Ok(made), Ok(from)) = (modified(&tarball), modified(&source))
        && made >= from
    {
        return Ok(tarball);
    }
    let unique = format!(
        "{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let partial = dir.join(format!("{SUITE}-rootfs.tar.{unique}.partial"));
    let work = dir.join(format!("unpack-{unique}"));
    std::fs::create_dir_all(&work)?;
    let made = checked(
        Command::new("debootstrap")
            .arg(format!("--unpack-tarball={}", source.display()))
            .arg(SUITE)
            .arg(&work)
            .output(),
        "debootstrap --unpack-tarball",
    )
    .and_then(|_| {
        checked(
            Command::new("tar")
                .arg("-cf")
                .arg(&partial)
                .arg("-C")
                .arg(&work)
                .arg(".")
                .output(),
            "tar -c the root file system",
        )
    });
    let _ = std::fs::remove_dir_all(&work);
    let renamed = made.and_then(|_| std::fs::rename(&partial, &tarball));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    renamed.map(|()| tarball)
}

/// The cached `debootstrap` tarball, made first if missing (written under
/// a temporary name and renamed, so a half-made one is never used).
fn debootstrap_tarball() -> io::Result<PathBuf> {
    let dir = containers_dir()?;
    let tarball = dir.join(format!("{SUITE}.tgz"));
    let packages = dir.join(format!("{SUITE}.tgz.packages"));
    if tarball.is_file() && std::fs::read_to_string(&packages).is_ok_and(|made| made == PACKAGES) {
        return Ok(tarball);
    }
    let unique = format!(
        "{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let partial = dir.join(format!("{SUITE}.tgz.{unique}.partial"));
    let work = dir.join(format!("debootstrap-{unique}"));
    let made = checked(
        Command::new("debootstrap")
            .args(["--variant=minbase", &format!("--include={PACKAGES}")])
            .arg(format!("--make-tarball={}", partial.display()))
            .args([SUITE])
            .arg(&work)
            .arg(MIRROR)
            .output(),
        "debootstrap --make-tarball",
    );
    let _ = std::fs::remove_dir_all(&work);
    let renamed = made
        .and_then(|_| std::fs::rename(&partial, &tarball))
        .and_then(|()| std::fs::write(&packages, PACKAGES));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    renamed.map(|()| tarball)
}
