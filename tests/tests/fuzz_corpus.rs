//! Records real inputs for the seed corpora of the cargo-fuzz targets
//! (`fuzz/corpus/TARGET/`): the request lines our `mosh-server` and
//! `moshctl` send to the control socket, the configuration files the
//! daemon reads, the setup, reports and re-key messages between a real
//! daemon and its worker, the ssh output the `mosh` launcher reads (our
//! `--fake-proxy`, our daemon's, our standalone server's and stock
//! `mosh-server`'s), and the datagrams, fragments, instructions and host
//! messages a client receives from our server and from stock's.
//!
//! With `MOSH_FUZZ_CORPUS=DIR` (`MOSH_FUZZ_CORPUS=$PWD/fuzz/corpus` to
//! regenerate the repository's) the captures are written there; otherwise
//! into a scratch directory. Either way each is checked to be what its
//! target expects, and no file exceeds [`MAX_SEED`] bytes.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mosh_daemon::control::{Request, SessionReport, WorkerReply, WorkerRequest, encode_line};
use mosh_daemon::worker::WorkerSetup;
use mosh_e2e::daemon::{As, TestDaemon, free_port_range};
use mosh_e2e::peer::UdpPeer;
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::states::{HostLog, UserStream};
use mosh_e2e::{UTF8_LOCALE, our_program, process, stock};
use mosh_proto::connection::Connection;
use mosh_proto::fragment::{self, Fragment, FragmentAssembly};
use mosh_proto::messages::Instruction;
use mosh_proto::{Base64Key, Extension, ExtensionSet, Role, TransportConfig};
use prost::Message;

/// Names the directory the captures go to.
const CORPUS_VARIABLE: &str = "MOSH_FUZZ_CORPUS";

/// Largest seed file: libFuzzer's default input length.
const MAX_SEED: usize = 4096;

/// How long a session may take to show what was typed.
const PATIENCE: Duration = Duration::from_secs(20);

/// Where the captures go.
struct Corpus(PathBuf);

impl Corpus {
    fn new(test: &str) -> Corpus {
        match std::env::var_os(CORPUS_VARIABLE) {
            Some(dir) if !dir.is_empty() => Corpus(dir.into()),
            _ => {
                let dir = std::env::temp_dir()
                    .join(format!("mosh-fuzz-corpus-{test}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                Corpus(dir)
            }
        }
    }

    /// Writes one seed of `target`.
    fn write(&self, target: &str, name: &str, bytes: &[u8]) {
        assert!(!bytes.is_empty(), "{target}/{name} is empty");
        assert!(
            bytes.len() <= MAX_SEED,
            "{target}/{name} has {} bytes",
            bytes.len()
        );
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

impl Drop for Corpus {
    fn drop(&mut self) {
        if std::env::var_os(CORPUS_VARIABLE).is_none_or(|dir| dir.is_empty()) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `program ARGS...` with the control socket at `socket`, accepting
/// its one connection there; returns the request line it sent.
fn request_line(program: &str, args: &[&str], socket: &Path) -> Vec<u8> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).unwrap();
    let program = our_program(program).unwrap();
    let mut child = Command::new(&program)
        .args(args)
        .env("MOSH_DAEMON_SOCKET", socket)
        .env("LANG", UTF8_LOCALE)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut line = Vec::new();
    BufReader::new(&stream)
        .read_until(b'\n', &mut line)
        .unwrap();
    (&stream)
        .write_all(b"{\"response\":\"error\",\"message\":\"recorded for the fuzz corpus\"}\n")
        .unwrap();
    drop(stream);
    let _ = child.wait();
    line
}

#[test]
fn control_requests_of_our_helpers() {
    let corpus = Corpus::new("control");
    let dir = std::env::temp_dir().join(format!("mosh-fuzz-control-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("control.sock");
    for (name, program, args) in [
        (
            "new",
            "mosh-server",
            &[
                "new",
                "-s",
                "-c",
                "256",
                "-l",
                "LANG=C.UTF-8",
                "--",
                "/bin/sh",
            ][..],
        ),
        (
            "new-ports-scrollback",
            "mosh-server",
            &["new", "-p", "60001:60010", "--scrollback=100", "-c", "8"],
        ),
        ("attach", "mosh-server", &["attach", "--force", "0a1b2c3d"]),
        ("list", "moshctl", &["list"]),
        ("status", "moshctl", &["status"]),
        ("kill-idle", "moshctl", &["kill", "--idle", "2h"]),
        ("kill-user", "moshctl", &["kill", "--user", "root"]),
        ("firewall-open", "moshctl", &["firewall", "open"]),
    ] {
        let line = request_line(program, args, &socket);
        let request: Request = serde_json::from_slice(&line)
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&line)));
        assert_eq!(serde_json::to_vec(&request).unwrap(), line.trim_ascii_end());
        corpus.write("control_request", name, &line);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A copy of our daemon whose worker program is a script that records
/// the setup it is handed, then runs the real worker on it.
struct RecordingDaemon {
    dir: PathBuf,
}

impl RecordingDaemon {
    fn new() -> RecordingDaemon {
        let dir = std::env::temp_dir().join(format!("mosh-fuzz-recording-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(our_program("mosh-daemon").unwrap(), dir.join("mosh-daemon")).unwrap();
        let worker = our_program("mosh-daemon-worker").unwrap();
        let script = format!(
            "#!/bin/sh\ncat <&5 >'{setup}'\nexec '{worker}' \"$@\" 5<'{setup}'\n",
            setup = dir.join("setup.json").display(),
            worker = worker.display()
        );
        let path = dir.join("mosh-daemon-worker");
        std::fs::write(&path, script).unwrap();
        Command::new("chmod")
            .arg("755")
            .arg(&path)
            .status()
            .unwrap();
        RecordingDaemon { dir }
    }

    /// The wrapper that runs this copy instead of the built daemon.
    fn wrapper(&self) -> [String; 4] {
        [
            "sh".into(),
            "-c".into(),
            format!(
                "shift; exec '{}' \"$@\"",
                self.dir.join("mosh-daemon").display()
            ),
            "sh".into(),
        ]
    }
}

impl Drop for RecordingDaemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The combined output ssh would relay from a command.
fn combined(output: &Output) -> Vec<u8> {
    let mut bytes = output.stderr.clone();
    bytes.extend_from_slice(&output.stdout);
    bytes
}

#[test]
fn worker_messages_and_config_of_a_real_daemon() {
    let corpus = Corpus::new("worker");
    let shipped = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../systemd/config.toml"
    ))
    .unwrap();
    mosh_daemon::config::Config::parse(
        Path::new("config.toml"),
        std::str::from_utf8(&shipped).unwrap(),
    )
    .expect("the shipped configuration parses");
    corpus.write("daemon_config", "shipped.toml", &shipped);

    let recording = RecordingDaemon::new();
    let wrapper = recording.wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let daemon = TestDaemon::start_wrapped(
        &wrapper,
        free_port_range(4),
        "launch = \"direct\"\nscrollback = 500",
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    corpus.write(
        "daemon_config",
        "test-daemon.toml",
        &std::fs::read(daemon.config_path()).unwrap(),
    );
    let output = daemon.mosh_server(
        As::Root,
        &["-c", "256", "-l", "LANG=C.UTF-8", "--", "/bin/sh"],
    );
    assert!(output.status.success(), "{output:?}\n{}", daemon.log());
    corpus.write("launcher_ssh_output", "daemon", &combined(&output));

    let setup = std::fs::read(recording.dir.join("setup.json")).unwrap();
    let parsed: WorkerSetup = serde_json::from_slice(&setup).expect("the setup parses");
    assert_eq!(parsed.scrollback, 500);
    corpus.write("worker_messages", "setup.json", &setup);

    let registration = daemon
        .runtime_dir()
        .join("sessions")
        .join(format!("{}.sock", parsed.id));
    let stream = UnixStream::connect(&registration).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(&stream);
    let mut report = Vec::new();
    reader.read_until(b'\n', &mut report).unwrap();
    let parsed_report: SessionReport = serde_json::from_slice(&report).expect("a report line");
    assert_eq!(parsed_report.id, parsed.id);
    corpus.write("worker_messages", "report", &report);

    let request = encode_line(&WorkerRequest::Rekey { force: true });
    (&stream).write_all(&request).unwrap();
    corpus.write("worker_messages", "rekey-request", &request);
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        assert!(
            reader.read_until(b'\n', &mut line).unwrap() > 0,
            "the worker hung up"
        );
        lines.extend_from_slice(&line);
        if serde_json::from_slice::<WorkerReply>(&line).is_ok() {
            break;
        }
    }
    corpus.write("worker_messages", "rekey-reply", &lines);
}

#[test]
fn ssh_output_of_our_launcher_and_servers() {
    let corpus = Corpus::new("ssh");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let closer = thread::spawn(move || drop(listener.accept()));
    let proxy = Command::new(our_program("mosh").unwrap())
        .args(["--fake-proxy", "--", "127.0.0.1", &port])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    closer.join().unwrap();
    let mut prefix = combined(&proxy);
    assert!(prefix.starts_with(b"MOSH IP 127.0.0.1"), "{proxy:?}");
    let printf = Command::new("sh")
        .arg("-c")
        .arg(r#"[ -n "$SSH_CONNECTION" ] && printf "\nMOSH SSH_CONNECTION %s\n" "$SSH_CONNECTION""#)
        .env("SSH_CONNECTION", "127.0.0.1 50022 127.0.0.1 22")
        .output()
        .unwrap();
    prefix.extend_from_slice(&printf.stdout);
    for (name, program) in [
        ("ours", our_program("mosh-server").unwrap()),
        ("stock", stock::server_program().unwrap()),
    ] {
        let output = Command::new(&program)
            .args([
                "new",
                "-s",
                "-c",
                "256",
                "-l",
                "LANG=C.UTF-8",
                "--",
                "/bin/true",
            ])
            .env("LANG", UTF8_LOCALE)
            .env("MOSH_DAEMON_SOCKET", "/nonexistent/control.sock")
            .env("MOSH_SERVER_NETWORK_TMOUT", "5")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let pid = String::from_utf8_lossy(&output.stderr)
            .lines()
            .find_map(|line| {
                line.strip_prefix("[mosh-server detached, pid = ")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()
            });
        if let Some(pid) = pid {
            process::terminate(pid, "mosh-server", Duration::from_secs(2));
        }
        let mut bytes = prefix.clone();
        bytes.extend_from_slice(&combined(&output));
        let mut report = mosh_client::launcher::Report::default();
        report.read(&bytes[..], |_| {}).unwrap();
        assert!(
            report.connect.is_some(),
            "{name}: {}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(report.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(report.ssh_connection_ip.as_deref(), Some("127.0.0.1"));
        corpus.write("launcher_ssh_output", name, &bytes);
    }
}

/// Relays a client's datagrams to `server` and back, keeping the first
/// ones the server sends.
struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<Vec<Vec<u8>>>>,
}

impl Relay {
    fn start(server: SocketAddr) -> Relay {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            let mut client = None;
            let mut kept = Vec::new();
            let mut buffer = [0u8; 2048];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                if from == server {
                    if kept.len() < 200 {
                        kept.push(buffer[..len].to_vec());
                    }
                    if let Some(client) = client {
                        let _ = socket.send_to(&buffer[..len], client);
                    }
                } else {
                    client = Some(from);
                    let _ = socket.send_to(&buffer[..len], server);
                }
            }
            kept
        });
        Relay {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// What the client typed: colours, a hyperlink, lines that scroll off.
const TYPED: &[u8] = b"printf '\\033[1;31mred\\033[0m \\033[4:3;58;5;196mcurl\\033[0m \\033]8;;http://example.com/\\033\\\\link\\033]8;;\\033\\\\\\n'; seq 1 30; echo fuzz-corpus-$((6*7))\r";

/// Runs a session with `implementation`'s server and returns the
/// datagrams it sent (while the client offered `offer`) and its key.
fn session_datagrams(
    implementation: Implementation,
    offer: ExtensionSet,
) -> (Vec<Vec<u8>>, Base64Key) {
    let server = MoshServer::start(implementation, &["/bin/sh"]).unwrap();
    let relay = Relay::start(server.addr());
    let mut client = UdpPeer::bind(
        TransportConfig::client(relay.addr).with_extensions(offer),
        server.key(),
        UserStream::default(),
        HostLog::default(),
    )
    .unwrap();
    client
        .transport_mut()
        .current_state_mut()
        .push_resize(80, 24);
    client
        .run_until(PATIENCE, "a prompt", |t| {
            let screen = t.latest_remote_state();
            (screen.contains("$ ") || screen.contains("# ")).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    client.transport_mut().current_state_mut().push_bytes(TYPED);
    client
        .run_until(PATIENCE, "the typed command's output", |t| {
            t.latest_remote_state()
                .contains("fuzz-corpus-42")
                .then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_millis(300);
    let _ = client.run_until(PATIENCE, "a pause", |_| {
        (Instant::now() > deadline).then_some(())
    });
    (relay.finish(), server.key().clone())
}

/// The server's instructions in a datagram stream, decrypted with `key`,
/// each newer than the last and built on one of those before, with the
/// fragments they came in.
fn instructions(datagrams: &[Vec<u8>], key: &Base64Key) -> (Vec<Vec<u8>>, Vec<Instruction>) {
    let now = Instant::now();
    let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut connection = Connection::new(Role::Client, key, now, Some(from));
    let mut assembly = FragmentAssembly::default();
    let mut payloads = Vec::new();
    let mut chain = Vec::new();
    let mut newest = 0;
    let mut seen = Vec::new();
    for datagram in datagrams {
        let Ok(opened) = connection.open(now, from, datagram) else {
            continue;
        };
        let payload = opened.payload.clone();
        payloads.push(payload.clone());
        let Ok(Some(compressed)) = assembly.add(Fragment::parse(&payload).unwrap()) else {
            continue;
        };
        let instruction =
            Instruction::decode(&fragment::decompress(&compressed).unwrap()[..]).unwrap();
        let base = instruction.old_num.unwrap_or(0);
        let new = instruction.new_num.unwrap_or(0);
        if new > newest && (base == 0 || seen.contains(&base)) {
            newest = new;
            seen.push(new);
            chain.push(instruction);
        }
    }
    (payloads, chain)
}

#[test]
fn host_messages_of_our_and_stock_servers() {
    let corpus = Corpus::new("host");
    let ours = ExtensionSet::EMPTY
        .with(Extension::Attributes)
        .with(Extension::Scrollback);
    for (name, implementation, offer) in [
        ("ours", Implementation::Ours, ours),
        ("stock", Implementation::Stock, ExtensionSet::EMPTY),
    ] {
        let (datagrams, key) = session_datagrams(implementation, offer);
        let (payloads, chain) = instructions(&datagrams, &key);
        assert!(chain.len() >= 2, "{name}: {} instructions", chain.len());
        for (n, datagram) in datagrams.iter().take(3).enumerate() {
            corpus.write("proto_packet_decode", &format!("{name}-{n}"), datagram);
        }
        let fragments: Vec<u8> = payloads
            .iter()
            .take(4)
            .flat_map(|payload| payload.iter().copied().chain([0xFF]))
            .collect();
        corpus.write(
            "proto_fragment_assembly",
            name,
            &fragments[..fragments.len().min(MAX_SEED)],
        );
        let mut client = vec![80, 24, u8::from(implementation == Implementation::Ours)];
        // The emulator target's largest screen, 32 by 8.
        let mut hostbytes = vec![0xFF];
        for (n, instruction) in chain.iter().enumerate() {
            let diff = instruction.diff.clone().unwrap_or_default();
            if n < 6 && !diff.is_empty() {
                corpus.write("term_host_message", &format!("{name}-{n}"), &diff);
                let mut plain = vec![1];
                plain.extend_from_slice(&instruction.encode_to_vec());
                if plain.len() <= MAX_SEED {
                    corpus.write("proto_instruction_decode", &format!("{name}-{n}"), &plain);
                }
            }
            let record = [&[0u8][..], &(diff.len() as u16).to_be_bytes(), &diff].concat();
            if client.len() + record.len() <= MAX_SEED {
                client.extend_from_slice(&record);
            }
            let message = mosh_proto::messages::HostMessage::decode(&diff[..]).unwrap();
            for bytes in message
                .instruction
                .iter()
                .filter_map(|i| i.hostbytes.as_ref())
            {
                let bytes = bytes.hoststring.as_deref().unwrap_or_default();
                if hostbytes.len() + bytes.len() <= MAX_SEED {
                    hostbytes.extend_from_slice(bytes);
                }
            }
        }
        let keys = [&[1u8][..], &(TYPED.len() as u16).to_be_bytes(), TYPED].concat();
        client.extend_from_slice(&keys[..keys.len().min(MAX_SEED - client.len())]);
        corpus.write("client_host_messages", name, &client);
        corpus.write("term_emulator", name, &hostbytes);
    }
}
