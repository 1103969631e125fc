//! Our standalone `mosh-server` used for real work by the stock mosh 1.4
//! client, under tmux: commands and their output, Unicode and colour, window
//! resizes, output floods, an impaired network (loss, delay, blackout,
//! roaming), hostile datagrams, and how the session ends.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mosh_e2e::impair::{Impairment, ImpairmentProxy, Way};
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::stock;
use mosh_e2e::tmux::TmuxSession;

/// Generous bound for anything that should take a moment on loopback.
const QUICK: Duration = Duration::from_secs(10);

/// A shell without rc files, with a prompt tests can wait for.
const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='mosh$ ' exec /bin/sh -i"];

fn start_session(command: &[&str], width: u16, height: u16) -> (MoshServer, TmuxSession) {
    let server = MoshServer::start(Implementation::Ours, command).expect("start our mosh-server");
    let client =
        stock::client_in_tmux(server.addr(), server.key(), width, height).expect("start client");
    (server, client)
}

fn type_line(client: &TmuxSession, line: &str) {
    client.send_text(line).unwrap();
    client.send_keys(&["Enter"]).unwrap();
}

#[test]
fn commands_run_and_their_output_appears() {
    let (_server, client) = start_session(&SHELL, 80, 24);
    client.wait_for("mosh$", QUICK).unwrap();
    type_line(&client, "echo answer-$((6*7))");
    let screen = client.wait_for("answer-42", QUICK).unwrap();
    assert!(screen.contains("echo answer-$((6*7))"), "{screen}");
}

/// Captures a pane with colours and attributes as escape sequences.
fn capture_styled(pane: &TmuxSession) -> String {
    pane.run(["capture-pane", "-p", "-e", "-t", "0"]).unwrap()
}

#[test]
fn unicode_and_colours_render_as_on_a_local_terminal() {
    let script = concat!(
        "printf 'plain ASCII\\n';",
        "printf 'Gr\\303\\274\\303\\237e \\346\\274\\242\\345\\255\\227 ",
        "\\360\\237\\230\\200 e\\314\\201\\n';",
        "printf '\\033[1;31mbold red\\033[0m \\033[4;32munder green\\033[0m ",
        "\\033[7mreverse\\033[0m\\n';",
        "printf '\\033[38;5;202m256-orange\\033[0m \\033[48;2;10;120;200mtruecolor bg\\033[0m\\n';",
        "printf 'done-marker'; sleep 600",
    );
    let (_server, client) = start_session(&["/bin/sh", "-c", script], 80, 24);
    let local = TmuxSession::start(80, 24, &["/bin/sh", "-c", script], &[]).unwrap();
    client.wait_for("done-marker", QUICK).unwrap();
    local.wait_for("done-marker", QUICK).unwrap();
    let through_mosh = capture_styled(&client);
    let direct = capture_styled(&local);
    let rows = |text: &str| -> Vec<String> {
        text.lines()
            .take(5)
            .map(|line| line.trim_end().to_owned())
            .collect()
    };
    assert_eq!(rows(&through_mosh), rows(&direct));
    assert!(through_mosh.contains("漢字"), "{through_mosh}");
}

#[test]
fn window_resize_reaches_the_application() {
    let (_server, client) = start_session(&SHELL, 80, 24);
    client.wait_for("mosh$", QUICK).unwrap();
    type_line(&client, "stty size");
    client.wait_for("24 80", QUICK).unwrap();
    client
        .run(["resize-window", "-t", "0", "-x", "100", "-y", "30"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    type_line(&client, "clear; stty size");
    client.wait_for("30 100", QUICK).unwrap();
}

#[test]
fn a_flood_stays_interruptible() {
    let (_server, client) = start_session(&SHELL, 80, 24);
    client.wait_for("mosh$", QUICK).unwrap();
    type_line(&client, "seq 1 5000000");
    client.wait_for("00", QUICK).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let interrupted = Instant::now();
    client.send_keys(&["C-c"]).unwrap();
    type_line(&client, "echo after-$((2+3))");
    let screen = client.wait_for("after-5", QUICK).unwrap();
    let took = interrupted.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "prompt took {took:?} to return after Ctrl-C"
    );
    let numbers: Vec<u64> = screen
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    assert!(
        numbers.len() > 5,
        "no flood output left on screen:\n{screen}"
    );
    assert!(
        numbers.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "the flood's lines are not consecutive, so the screen is torn:\n{screen}"
    );
}

/// A session whose client talks to the server through the impairment proxy.
fn impaired_session() -> (MoshServer, ImpairmentProxy, TmuxSession) {
    let server = MoshServer::start(Implementation::Ours, &SHELL).expect("start our mosh-server");
    let proxy = ImpairmentProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        server.addr(),
        "127.0.0.1".parse().unwrap(),
        42,
    )
    .unwrap();
    let client = stock::client_in_tmux(proxy.listen_addr(), server.key(), 80, 24).unwrap();
    client.wait_for("mosh$", QUICK).unwrap();
    (server, proxy, client)
}

#[test]
fn commands_complete_through_loss_and_delay() {
    let (_server, proxy, client) = impaired_session();
    proxy.set_both(Impairment {
        delay: Duration::from_millis(200),
        jitter: Duration::from_millis(20),
        loss: 0.3,
        duplicate: 0.0,
    });
    type_line(&client, "echo lossy-$((6*7))");
    client
        .wait_for("lossy-42", Duration::from_secs(30))
        .unwrap();
    type_line(&client, "echo again-$((7*7))");
    client
        .wait_for("again-49", Duration::from_secs(30))
        .unwrap();
    assert!(proxy.stats(Way::ToServer).dropped > 0);
}

#[test]
fn session_resumes_after_a_blackout() {
    let (_server, proxy, client) = impaired_session();
    proxy.blackout(Duration::from_secs(15));
    type_line(&client, "echo through-$((1+1))");
    std::thread::sleep(Duration::from_secs(15));
    client
        .wait_for("through-2", Duration::from_secs(20))
        .unwrap();
    type_line(&client, "echo after-$((2+2))");
    client.wait_for("after-4", QUICK).unwrap();
}

#[test]
fn session_follows_a_roaming_client() {
    let (_server, proxy, client) = impaired_session();
    type_line(&client, "echo before-roam");
    client.wait_for("before-roam", QUICK).unwrap();
    proxy.roam("127.0.0.2".parse().unwrap()).unwrap();
    let replies_before = proxy.stats(Way::ToClient).received;
    type_line(&client, "echo after-$((3+4))");
    client.wait_for("after-7", QUICK).unwrap();
    assert!(
        proxy.stats(Way::ToClient).received > replies_before,
        "the server did not send to the client's new address"
    );
}

#[test]
fn hostile_datagrams_change_nothing() {
    let (server, client) = start_session(&SHELL, 80, 24);
    client.wait_for("mosh$", QUICK).unwrap();
    let witness = std::env::temp_dir().join(format!("mosh-e2e-witness-{}", std::process::id()));
    let _ = std::fs::remove_file(&witness);
    type_line(&client, &format!("echo once >> {}", witness.display()));
    client.wait_for("mosh$ ", QUICK).unwrap();
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target: SocketAddr = server.addr();
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut random = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..100_000u32 {
        let len = (random() % 1400) as usize + usize::from(i % 7 == 0);
        let datagram: Vec<u8> = (0..len).map(|_| random() as u8).collect();
        let _ = attacker.send_to(&datagram, target);
    }
    type_line(&client, &format!("wc -l < {}", witness.display()));
    let screen = client.wait_for("\n1\n", QUICK);
    let written = std::fs::read_to_string(&witness).unwrap_or_default();
    let _ = std::fs::remove_file(&witness);
    assert_eq!(written, "once\n");
    screen.unwrap();
    assert!(server.is_running());
}

#[test]
fn client_exits_cleanly_when_the_shell_exits() {
    let (server, client) = start_session(&SHELL, 80, 24);
    client.wait_for("mosh$", QUICK).unwrap();
    type_line(&client, "exit");
    assert_eq!(client.wait_for_exit(QUICK).unwrap(), 0);
    assert!(server.wait_for_exit(QUICK), "server still running");
}

#[test]
fn server_exits_after_the_network_timeout_without_a_client() {
    let server = MoshServer::start_with(
        Implementation::Ours,
        &["-p", "0"],
        &SHELL,
        &[("MOSH_SERVER_NETWORK_TMOUT", "2")],
    )
    .unwrap();
    let client = stock::client_in_tmux(server.addr(), server.key(), 80, 24).unwrap();
    client.wait_for("mosh$", QUICK).unwrap();
    let pane_pid: u32 = client
        .run(["display-message", "-p", "-t", "0", "#{pane_pid}"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let killed = std::process::Command::new("pkill")
        .args(["-KILL", "-P", &pane_pid.to_string(), "mosh-client"])
        .status()
        .unwrap();
    assert!(killed.success(), "could not kill the client");
    assert!(
        server.wait_for_exit(Duration::from_secs(15)),
        "server outlived MOSH_SERVER_NETWORK_TMOUT=2 by far"
    );
}

#[test]
fn an_idle_connected_client_outlives_the_network_timeout() {
    let server = MoshServer::start_with(
        Implementation::Ours,
        &["-p", "0"],
        &SHELL,
        &[("MOSH_SERVER_NETWORK_TMOUT", "5")],
    )
    .unwrap();
    let client = stock::client_in_tmux(server.addr(), server.key(), 80, 24).unwrap();
    client.wait_for("mosh$", QUICK).unwrap();
    // Heartbeats come every 3 s: well inside the 5 s timeout.
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        server.is_running(),
        "the heartbeats of an idle client must count as contact"
    );
    type_line(&client, "echo idle-$((3*3))");
    client.wait_for("idle-9", QUICK).unwrap();
}
