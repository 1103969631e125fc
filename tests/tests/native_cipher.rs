//! The native cipher end to end: our `mosh-client` and our server (through
//! the real daemon) switch to AES-256-GCM under loss, delay and roaming, and
//! `moshctl list` says so; a stock peer on either side stays on AES-128-OCB;
//! `mosh --cipher=ocb` forces the stock suite; and with the rekey threshold
//! lowered to 1,000 datagrams a `seq` flood crosses several rekeys with the
//! screen right and no stall longer than the measured RTO.
#![allow(
    clippy::print_stderr,
    reason = "a test's diagnostics, captured by the test runner"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mosh_e2e::daemon::{As, TestDaemon, TestUser, free_port_range};
use mosh_e2e::impair::{Impairment, ImpairmentProxy};
use mosh_e2e::peer::UdpPeer;
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::tmux::TmuxSession;
use mosh_e2e::{our_program, ours, stock};
use mosh_proto::{Extension, ExtensionSet, Suite, TransportConfig};
use mosh_term::{Complete, UserStream};

/// Bound for a step over the impaired path.
const SLOW: Duration = Duration::from_secs(60);
/// Bound for a step on loopback.
const QUICK: Duration = Duration::from_secs(15);

/// A shell without rc files, with a prompt tests can wait for.
const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='mosh$ ' exec /bin/sh -i"];

const GCM: &str = "aes-256-gcm+x25519";
const OCB: &str = "aes-128-ocb";

fn type_line(client: &TmuxSession, line: &str) {
    client.send_text(line).unwrap();
    client.send_keys(&["Enter"]).unwrap();
}

fn program(name: &str) -> String {
    our_program(name).unwrap().to_string_lossy().into_owned()
}

/// A file for a client's `-v` log, removed when dropped.
struct Log(PathBuf);

impl Log {
    fn new(name: &str) -> Log {
        let path =
            std::env::temp_dir().join(format!("mosh-e2e-cipher-{name}-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Log(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Our `mosh-client -v` in tmux, its stderr going to `log`.
fn verbose_client(
    server: std::net::SocketAddr,
    key: &mosh_proto::Base64Key,
    log: &Log,
) -> TmuxSession {
    let client = program("mosh-client");
    let (ip, port) = (server.ip().to_string(), server.port().to_string());
    let log = log.path().to_string_lossy().into_owned();
    ours::client_command_in_tmux(
        &[
            "/bin/sh",
            "-c",
            "exec \"$0\" -v \"$1\" \"$2\" 2>>\"$3\"",
            &client,
            &ip,
            &port,
            &log,
        ],
        key,
        80,
        24,
        &[],
    )
    .unwrap()
}

/// Polls `moshctl list --json` as `who` until its one session reports a
/// cipher, and returns it.
fn listed_cipher(daemon: &TestDaemon, who: As<'_>) -> String {
    let deadline = Instant::now() + QUICK;
    loop {
        let output = daemon.moshctl(who, &["list", "--json"]);
        assert!(output.status.success());
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let sessions = json.as_array().expect("a JSON array of sessions");
        assert_eq!(sessions.len(), 1, "{json}");
        if let Some(cipher) = sessions[0]["cipher"].as_str()
            && sessions[0]["state"] == "attached"
        {
            return cipher.to_owned();
        }
        assert!(Instant::now() < deadline, "no cipher reported: {json}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `moshctl list --json` until the session's cipher is `wanted`.
fn wait_listed_cipher(daemon: &TestDaemon, who: As<'_>, wanted: &str) {
    let deadline = Instant::now() + SLOW;
    loop {
        let cipher = listed_cipher(daemon, who);
        if cipher == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "moshctl list says {cipher}, not {wanted}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ours_to_ours_switches_to_gcm_through_loss_delay_and_roaming() {
    let daemon = TestDaemon::start(free_port_range(10), "").unwrap();
    let user = TestUser::create().unwrap();
    let session = daemon.new_session(As::User(&user), &SHELL);
    let proxy = ImpairmentProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        session.addr(),
        "127.0.0.1".parse().unwrap(),
        15,
    )
    .unwrap();
    proxy.set_both(Impairment {
        delay: Duration::from_millis(200),
        jitter: Duration::from_millis(20),
        loss: 0.3,
        duplicate: 0.0,
    });
    let log = Log::new("ours");
    let client = verbose_client(proxy.listen_addr(), &session.key, &log);
    client.wait_for("mosh$", SLOW).unwrap();
    type_line(&client, "echo lossy-$((6*7))");
    client.wait_for("lossy-42", SLOW).unwrap();
    proxy.roam("127.0.0.2".parse().unwrap()).unwrap();
    type_line(&client, "echo roamed-$((7*7))");
    client.wait_for("roamed-49", SLOW).unwrap();

    wait_listed_cipher(&daemon, As::User(&user), GCM);
    let table = String::from_utf8_lossy(&daemon.moshctl(As::Root, &["list"]).stdout).into_owned();
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("  CIPHER  "), "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap_or_default()
            .contains(&format!(" {GCM} ")),
        "{table}"
    );
    let log = log.text();
    assert!(
        log.contains(&format!("mosh-client: cipher {OCB}, offering {GCM}")),
        "{log}"
    );
    assert!(
        log.contains(&format!("mosh-client: cipher {GCM} (key epoch 1)")),
        "{log}"
    );
}

#[test]
fn a_stock_client_on_our_daemon_stays_on_ocb() {
    let daemon = TestDaemon::start(free_port_range(10), "").unwrap();
    let user = TestUser::create().unwrap();
    let session = daemon.new_session(As::User(&user), &SHELL);
    let client = stock::client_in_tmux(session.addr(), &session.key, 80, 24).unwrap();
    client.wait_for("mosh$", QUICK).unwrap();
    type_line(&client, "echo stock-$((6*7))");
    client.wait_for("stock-42", QUICK).unwrap();
    assert_eq!(listed_cipher(&daemon, As::User(&user)), OCB);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(listed_cipher(&daemon, As::User(&user)), OCB);
}

#[test]
fn our_client_on_a_stock_server_stays_on_ocb() {
    let server = MoshServer::start(Implementation::Stock, &SHELL).unwrap();
    let log = Log::new("stock-server");
    let client = verbose_client(server.addr(), server.key(), &log);
    client.wait_for("mosh$", QUICK).unwrap();
    type_line(&client, "echo offered-$((6*7))");
    client.wait_for("offered-42", QUICK).unwrap();
    let log = log.text();
    assert!(
        log.contains(&format!("cipher {OCB}, offering {GCM}")),
        "{log}"
    );
    assert!(!log.contains(&format!("cipher {GCM}")), "{log}");
}

/// `mosh --local` with a `--client` wrapper that runs our client with `-v`
/// into `log`; returns the log once a command ran.
fn launch_local(cipher: Option<&str>, log: &Log) -> String {
    let wrapper = std::env::temp_dir().join(format!(
        "mosh-e2e-cipher-client-{}-{}",
        cipher.unwrap_or("default"),
        std::process::id()
    ));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} -v \"$@\" 2>>{}\n",
            program("mosh-client"),
            log.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mosh = program("mosh");
    let server = format!("--server={}", program("mosh-server"));
    let client_option = format!("--client={}", wrapper.display());
    let mut command = vec![mosh.as_str(), "--local", &client_option, &server];
    let cipher_option = cipher.map(|c| format!("--cipher={c}"));
    if let Some(option) = &cipher_option {
        command.push(option);
    }
    command.extend(["127.0.0.1", "--"]);
    command.extend(SHELL);
    let client = TmuxSession::start(80, 24, &command, &[]).unwrap();
    client.wait_for("mosh$", QUICK).unwrap();
    type_line(&client, "echo local-$((5*5))");
    client.wait_for("local-25", QUICK).unwrap();
    let deadline = Instant::now() + QUICK;
    while cipher.is_none() && !log.text().contains(&format!("cipher {GCM}")) {
        assert!(Instant::now() < deadline, "never switched: {}", log.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    type_line(&client, "exit");
    assert_eq!(client.wait_for_exit(QUICK).unwrap(), 0);
    let _ = std::fs::remove_file(&wrapper);
    log.text()
}

#[test]
fn mosh_cipher_ocb_forces_the_stock_suite() {
    let forced = Log::new("forced");
    let text = launch_local(Some("ocb"), &forced);
    assert!(
        text.contains(&format!("mosh-client: cipher {OCB}\r\n")),
        "{text:?}"
    );
    assert!(!text.contains(GCM), "{text}");
    let default = Log::new("default");
    let text = launch_local(None, &default);
    assert!(
        text.contains(&format!("mosh-client: cipher {GCM} (key epoch 1)")),
        "{text}"
    );
}

/// The text of the framebuffer's rows, trailing blanks trimmed.
fn screen_rows(screen: &Complete) -> Vec<String> {
    screen
        .framebuffer()
        .rows()
        .iter()
        .map(|row| {
            let text: String = row
                .cells()
                .iter()
                .map(|cell| match cell.contents() {
                    "" => " ",
                    text => text,
                })
                .collect();
            text.trim_end().to_owned()
        })
        .collect()
}

/// A harness client (our `Transport`, rekeying every 1,000 datagrams) on our
/// standalone server through a 100 ms round trip; a `seq` loop floods a
/// wide screen until three rekeys happened, then Ctrl-C ends it. Around each
/// switch no gap between new screen states exceeds the RTO measured then,
/// and the final screen shows consecutive lines of the flood.
#[test]
fn a_flood_crosses_several_rekeys_without_a_stall() {
    const WIDTH: u16 = 250;
    const HEIGHT: u16 = 100;
    const REKEYS: usize = 3;
    let server = MoshServer::start(Implementation::Ours, &SHELL).unwrap();
    let proxy = ImpairmentProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        server.addr(),
        "127.0.0.1".parse().unwrap(),
        16,
    )
    .unwrap();
    proxy.set_both(Impairment {
        delay: Duration::from_millis(50),
        ..Impairment::default()
    });
    let config = TransportConfig::client(proxy.listen_addr())
        .with_extensions(ExtensionSet::EMPTY.with(Extension::NativeCipher))
        .with_rekey_limits(1000, Duration::from_secs(86_400));
    let mut client = UdpPeer::bind(
        config,
        server.key(),
        UserStream::new(),
        Complete::new(usize::from(WIDTH), usize::from(HEIGHT)),
    )
    .unwrap();
    let input = |client: &mut UdpPeer<UserStream, Complete>, bytes: &[u8]| {
        client.transport_mut().current_state_mut().push_bytes(bytes);
    };
    client
        .transport_mut()
        .current_state_mut()
        .push_resize(i32::from(WIDTH), i32::from(HEIGHT));
    let has = |text: &'static str| {
        move |t: &mut mosh_proto::Transport<UserStream, Complete>| {
            screen_rows(t.latest_remote_state())
                .iter()
                .any(|row| row.contains(text))
                .then_some(())
        }
    };
    client.run_until(QUICK, "the prompt", has("mosh$")).unwrap();
    assert_eq!(client.transport().cipher_suite(), Suite::Aes256GcmX25519);
    let columns = vec!["-"; 30].join(" ");
    let flood = format!(
        "i=0; while :; do seq $((i*3000+1)) $((i*3000+3000)) | paste -d' ' {columns}; \
         i=$((i+1)); sleep 0.05; done\r"
    );
    input(&mut client, flood.as_bytes());

    let mut last_state = (client.transport().latest_remote_state_num(), Instant::now());
    let mut gaps: Vec<(Instant, Duration)> = Vec::new();
    let mut switches: Vec<(Instant, Duration)> = Vec::new();
    let mut epoch = client.transport().key_epoch();
    client
        .run_until(Duration::from_secs(180), "three rekeys", |t| {
            let now = Instant::now();
            let num = t.latest_remote_state_num();
            if num != last_state.0 {
                gaps.push((now, now - last_state.1));
                last_state = (num, now);
            }
            if t.key_epoch() != epoch {
                epoch = t.key_epoch();
                switches.push((now, t.rto()));
            }
            (switches.len() >= REKEYS).then_some(())
        })
        .unwrap();
    input(&mut client, b"\x03");
    input(&mut client, b"echo flood-$((40+2))\r");
    // The flood's rekeys are judged by the gaps above; this only shows the
    // session lives on. A debug-built server draining a 250x100 flood
    // through a 100 ms round trip needed more than QUICK twice while the
    // machine also ran a release build, so it gets a minute.
    client
        .run_until(Duration::from_secs(60), "the end of the flood", |t| {
            screen_rows(t.latest_remote_state())
                .iter()
                .any(|row| row.contains("flood-42"))
                .then_some(())
        })
        .unwrap_or_else(|e| {
            panic!(
                "{}; the screen:\n{}",
                e.what,
                screen_rows(client.transport().latest_remote_state()).join("\n")
            )
        });
    assert!(client.transport().key_epoch() > REKEYS as u64);
    let mut report = Vec::new();
    for &(at, rto) in &switches {
        let near = gaps
            .iter()
            .filter(|&&(when, _)| {
                when.max(at).duration_since(when.min(at)) <= Duration::from_secs(1)
            })
            .map(|&(_, gap)| gap)
            .max()
            .unwrap_or_default();
        assert!(
            near <= rto,
            "a {near:?} gap between screen states near a rekey, RTO {rto:?}"
        );
        report.push(format!("longest gap {near:?} against RTO {rto:?}"));
    }
    eprintln!(
        "{} rekeys, {} screen states: {}",
        switches.len(),
        gaps.len(),
        report.join("; ")
    );
    let rows = screen_rows(client.transport().latest_remote_state());
    let numbers: Vec<Vec<u64>> = rows
        .iter()
        .filter(|row| !row.is_empty() && row.split(' ').all(|n| n.parse::<u64>().is_ok()))
        .map(|row| row.split(' ').map(|n| n.parse().unwrap()).collect())
        .collect();
    assert!(
        numbers.len() > usize::from(HEIGHT) / 2,
        "the flood is not on the screen:\n{}",
        rows.join("\n")
    );
    let flat: Vec<u64> = numbers.iter().flatten().copied().collect();
    assert!(
        numbers.iter().all(|row| row.len() == 30)
            && flat.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "the flood's lines are not whole and consecutive:\n{}",
        rows.join("\n")
    );
}
