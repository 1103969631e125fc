//! Two network namespaces joined by a veth pair, for firewall tests: a
//! server side (where the daemon and its firewall run) and a client side
//! (where probes and stock clients run). Nothing here touches the host's
//! own network or rules. Each side gets `/etc/netns/NAME/`, which `ip netns
//! exec` mounts over `/etc`, so that tools writing under `/etc` (ufw) keep
//! their state private to the test. Dropping the pair deletes both.
//! [`WithoutLibnftables`] runs a daemon there as if libnftables were not
//! installed.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mosh_proto::Base64Key;
use nix::sched::CloneFlags;

use crate::peer::UdpPeer;
use crate::require_program;
use crate::states::{HostLog, UserStream};

/// The server side's address on the veth link.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 1);
/// The client side's address on the veth link.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 2);

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A distribution's default-deny nftables input chain: table
/// `inet filter`, policy drop, accepting only loopback and established
/// traffic.
pub const DROP_POLICY: &str = "table inet filter {\n\
       chain input {\n\
         type filter hook input priority filter; policy drop;\n\
         ct state established,related accept\n\
         iif \"lo\" accept\n\
       }\n\
     }\n";

/// What a probe of a UDP port found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortProbe {
    /// Nothing came back: the firewall dropped the datagram.
    Silent,
    /// The kernel said no one listens (ICMP port unreachable): the
    /// firewall let the datagram through.
    Refused,
    /// The firewall refused the datagram with another ICMP error (such as
    /// firewalld's host-prohibited).
    Rejected,
}

/// A server and a client namespace, joined.
#[derive(Debug)]
pub struct NetPair {
    /// The server namespace's name.
    pub server: String,
    /// The client namespace's name.
    pub client: String,
}

impl NetPair {
    /// Creates both namespaces, the veth link between them, and loopback.
    pub fn new() -> io::Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("mdfw{}x{n}", std::process::id());
        let pair = Self {
            server: format!("{base}s"),
            client: format!("{base}c"),
        };
        for name in [&pair.server, &pair.client] {
            ip(&["netns", "add", name])?;
            std::fs::create_dir_all(etc_dir(name))?;
            ip(&["-n", name, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "-n",
            &pair.server,
            "link",
            "add",
            "veth0",
            "type",
            "veth",
            "peer",
            "name",
            "veth0",
            "netns",
            &pair.client,
        ])?;
        for (name, address) in [(&pair.server, SERVER_IP), (&pair.client, CLIENT_IP)] {
            ip(&[
                "-n",
                name,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "veth0",
            ])?;
            ip(&["-n", name, "link", "set", "veth0", "up"])?;
        }
        Ok(pair)
    }

    /// Runs `program ARGS...` in namespace `netns`.
    pub fn exec(netns: &str, program: &str, args: &[&str]) -> io::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", netns, program])
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    /// Runs `program ARGS...` in namespace `netns`; its standard output,
    /// or an error with its standard error.
    pub fn run(netns: &str, program: &str, args: &[&str]) -> io::Result<String> {
        let output = Self::exec(netns, program, args)?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "{program} {args:?} in {netns}: {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Loads [`DROP_POLICY`] into `netns`'s nftables ruleset.
    pub fn load_drop_policy(netns: &str) -> io::Result<()> {
        let file = std::env::temp_dir().join(format!("{netns}.nft"));
        std::fs::write(&file, DROP_POLICY)?;
        let loaded = Self::run(netns, "nft", &["-f", &file.to_string_lossy()]);
        let _ = std::fs::remove_file(&file);
        loaded.map(drop)
    }

    /// The directory `ip netns exec` mounts over `/etc` entries in
    /// `netns`.
    pub fn etc_dir(netns: &str) -> PathBuf {
        etc_dir(netns)
    }

    /// A UDP socket of the client namespace, on any port.
    pub fn client_socket(&self) -> io::Result<UdpSocket> {
        let path = format!("/run/netns/{}", self.client);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let namespace = std::fs::File::open(&path)?;
                    nix::sched::setns(&namespace, CloneFlags::CLONE_NEWNET)
                        .map_err(io::Error::from)?;
                    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
                })
                .join()
                .map_err(|_| io::Error::other("the namespace thread panicked"))?
        })
    }

    /// Sends a datagram from a fresh client socket to the server's `port`
    /// and tells whether the firewall dropped it.
    pub fn probe_port(&self, port: u16) -> io::Result<PortProbe> {
        let socket = self.client_socket()?;
        socket.connect((SERVER_IP, port))?;
        socket.set_read_timeout(Some(Duration::from_millis(700)))?;
        let mut buffer = [0u8; 64];
        for _ in 0..2 {
            socket.send(b"mosh-daemon firewall probe")?;
            match socket.recv(&mut buffer) {
                Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                    return Ok(PortProbe::Refused);
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::HostUnreachable
                            | io::ErrorKind::NetworkUnreachable
                            | io::ErrorKind::PermissionDenied
                    ) =>
                {
                    return Ok(PortProbe::Rejected);
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(error) => return Err(error),
                Ok(_) => return Err(io::Error::other(format!("port {port} answered a probe"))),
            }
        }
        Ok(PortProbe::Silent)
    }

    /// Whether the session on the server's `port` answers an authenticated
    /// client (a fresh socket of the client namespace) within `patience`.
    pub fn session_answers(&self, port: u16, key: &Base64Key, patience: Duration) -> bool {
        let socket = self.client_socket().expect("client socket");
        let mut client = UdpPeer::client_on(
            socket,
            SocketAddr::from((SERVER_IP, port)),
            key,
            UserStream::default(),
            HostLog::default(),
        )
        .expect("client transport");
        client
            .run_until(patience, "an answer from the session", |transport| {
                transport.last_heard().map(drop)
            })
            .is_ok()
    }
}

/// A firewalld with its own D-Bus system bus, in a private mount namespace
/// inside a network namespace: `/run/dbus` and `/run/firewalld` are fresh
/// tmpfs mounts there, so nothing of the host's is used or changed.
/// Programs join it with [`Firewalld::wrapper`]; dropping it stops both
/// daemons.
#[derive(Debug)]
pub struct Firewalld {
    firewalld: std::process::Child,
    bus_pid_file: PathBuf,
}

impl Firewalld {
    /// Starts the bus and firewalld in `netns` and waits until firewalld
    /// says it runs. Its `/etc/firewalld/services` is a fresh tmpfs holding
    /// copies of the `services` files.
    pub fn start(netns: &str, services: &[&Path]) -> io::Result<Self> {
        let bus_pid_file = std::env::temp_dir().join(format!("{netns}.dbus.pid"));
        let copies: String = services
            .iter()
            .map(|file| {
                format!(
                    "cp {} /etc/firewalld/services/; ",
                    crate::daemon::shell_quote(&file.to_string_lossy())
                )
            })
            .collect();
        let script = format!(
            "set -e; mount -t tmpfs tmpfs /run/dbus; mkdir -p /run/firewalld; \
             mount -t tmpfs tmpfs /run/firewalld; \
             mount -t tmpfs tmpfs /etc/firewalld/services; {copies}\
             dbus-daemon --system --nofork --nopidfile </dev/null >/dev/null 2>&1 & \
             echo $! > {}; exec firewalld --nofork --nopid",
            bus_pid_file.display()
        );
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("{netns}.firewalld.log")))?;
        let firewalld = Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "unshare",
                "-m",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let running = Self {
            firewalld,
            bus_pid_file,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let state = running.command("firewall-cmd", &["--state"])?;
            if String::from_utf8_lossy(&state.stdout).trim() == "running" {
                return Ok(running);
            }
            if std::time::Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "firewalld did not start: {}",
                    String::from_utf8_lossy(&state.stderr)
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The command prefix that runs a program in firewalld's namespaces.
    pub fn wrapper(&self) -> Vec<String> {
        [
            "nsenter",
            "-t",
            &self.firewalld.id().to_string(),
            "-m",
            "-n",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Runs `program ARGS...` in firewalld's namespaces.
    pub fn command(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        let wrapper = self.wrapper();
        Command::new(&wrapper[0])
            .args(&wrapper[1..])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
    }
}

impl Drop for Firewalld {
    fn drop(&mut self) {
        let _ = self.firewalld.kill();
        let _ = self.firewalld.wait();
        if let Ok(pid) = std::fs::read_to_string(&self.bus_pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_file(&self.bus_pid_file);
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for name in [&self.server, &self.client] {
            let _ = ip(&["netns", "del", name]);
            let _ = std::fs::remove_dir_all(etc_dir(name));
        }
    }
}

fn etc_dir(netns: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(netns)
}

fn ip(args: &[&str]) -> io::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Where the dynamic linker finds libnftables (`ldd` of `nft`).
fn libnftables_path() -> io::Result<PathBuf> {
    let nft = require_program("nft")?;
    let ldd = Command::new("ldd").arg(&nft).output()?;
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    let path = ldd
        .lines()
        .find_map(|line| line.trim().strip_prefix("libnftables.so.1 => "))
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| io::Error::other(format!("nft does not link libnftables.so.1:\n{ldd}")))?;
    std::fs::canonicalize(path)
}

/// A wrapper that runs the daemon in `netns` with libnftables unloadable
/// (`/dev/null` mounted over it, in a mount namespace of its own), and a
/// directory holding an `nft` that still works there (the real one, with
/// a copy of the library); deleted when dropped.
#[derive(Debug)]
pub struct WithoutLibnftables {
    wrapper: Vec<String>,
    dir: PathBuf,
}

impl WithoutLibnftables {
    /// Prepares the wrapper for namespace `netns`.
    pub fn new(netns: &str) -> io::Result<WithoutLibnftables> {
        let library = libnftables_path()?;
        let dir = std::env::temp_dir().join(format!("{netns}-no-libnftables"));
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(&library, dir.join("libnftables.so.1"))?;
        let nft = dir.join("nft");
        std::fs::write(
            &nft,
            format!(
                "#!/bin/sh\nLD_LIBRARY_PATH={} exec {} \"$@\"\n",
                dir.display(),
                require_program("nft")?.display()
            ),
        )?;
        std::fs::set_permissions(&nft, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let script = format!(
            "mount --bind /dev/null {} && exec \"$@\"",
            library.display()
        );
        let wrapper = [
            "ip",
            "netns",
            "exec",
            netns,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ]
        .map(str::to_owned)
        .to_vec();
        Ok(WithoutLibnftables { wrapper, dir })
    }

    /// The wrapper's words, for [`crate::daemon::TestDaemon::start_wrapped`].
    pub fn wrapper(&self) -> Vec<&str> {
        self.wrapper.iter().map(String::as_str).collect()
    }

    /// A `PATH` whose `nft` works without the system's libnftables.
    pub fn path(&self) -> String {
        format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", self.dir.display())
    }
}

impl Drop for WithoutLibnftables {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `nft -j list ruleset` in `netns`, parsed into its objects.
pub fn nft_ruleset(netns: &str) -> Vec<serde_json::Value> {
    let text = NetPair::run(netns, "nft", &["-j", "list", "ruleset"]).expect("nft list ruleset");
    let listing: serde_json::Value = serde_json::from_str(&text).expect("nft's JSON");
    listing["nftables"].as_array().cloned().unwrap_or_default()
}

/// The elements of mosh-daemon's port set (`table inet mosh_daemon`, set
/// `ports`) among `objects`, as listed, duplicates kept.
pub fn daemon_port_set(objects: &[serde_json::Value]) -> Vec<u64> {
    objects
        .iter()
        .filter_map(|object| object.get("set"))
        .find(|set| set["table"] == "mosh_daemon" && set["name"] == "ports")
        .and_then(|set| set["elem"].as_array())
        .map(|ports| ports.iter().filter_map(|p| p.as_u64()).collect())
        .unwrap_or_default()
}

/// Asserts that mosh-daemon's table, chain, rule and port set, and its
/// tagged rule and port set in the drop-policy chain's table
/// ([`DROP_POLICY`]), each stand once among `objects`.
pub fn assert_daemon_objects_once(objects: &[serde_json::Value]) {
    let count = |kind: &str, matches: &dyn Fn(&serde_json::Value) -> bool| {
        objects
            .iter()
            .filter_map(|object| object.get(kind))
            .filter(|value| matches(value))
            .count()
    };
    let own = |value: &serde_json::Value| value["table"] == "mosh_daemon";
    type Matcher<'a> = &'a dyn Fn(&serde_json::Value) -> bool;
    let wanted: [(&str, &str, Matcher<'_>); 6] = [
        ("table", "its table", &|t| t["name"] == "mosh_daemon"),
        ("chain", "its chain", &own),
        ("rule", "its rule", &own),
        ("set", "its port set", &|s| own(s) && s["name"] == "ports"),
        ("rule", "its tagged rule in the drop policy", &|r| {
            r["table"] == "filter" && r["comment"] == "mosh-daemon"
        }),
        ("set", "its port set beside the drop policy", &|s| {
            s["name"] == "mosh_daemon_ports"
        }),
    ];
    for (kind, what, matches) in wanted {
        assert_eq!(count(kind, matches), 1, "{what}, once: {objects:?}");
    }
}
