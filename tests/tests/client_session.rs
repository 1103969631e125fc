//! Our `mosh-client` under tmux against stock mosh 1.4's `mosh-server` and
//! against ours: commands and output, window resizes, the escape key, the
//! terminal restored on exit, how sessions end, and the command line.

use std::process::Command;
use std::time::Duration;

use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::tmux::TmuxSession;
use mosh_e2e::{UTF8_LOCALE, our_program, ours};

/// Generous bound for anything that should take a moment on loopback.
const QUICK: Duration = Duration::from_secs(10);

/// A shell without rc files, with a prompt tests can wait for.
const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='mosh$ ' exec /bin/sh -i"];

const BOTH: [Implementation; 2] = [Implementation::Stock, Implementation::Ours];

fn start_session(implementation: Implementation) -> (MoshServer, TmuxSession) {
    let server = MoshServer::start(implementation, &SHELL).expect("start mosh-server");
    let client = ours::client_in_tmux(server.addr(), server.key(), 80, 24, &[])
        .expect("start our mosh-client");
    client
        .wait_for("mosh$", QUICK)
        .unwrap_or_else(|e| panic!("{implementation:?} server: {e}"));
    (server, client)
}

/// The pane and its scrollback: tmux may scroll a dead pane's last lines
/// away to show its "Pane is dead" line.
fn with_history(pane: &TmuxSession) -> String {
    pane.run(["capture-pane", "-p", "-S", "-100"]).unwrap()
}

/// Waits for the client to exit and checks it ended cleanly: status 0 and
/// the exit message on screen.
fn assert_clean_exit(client: &TmuxSession, implementation: Implementation) {
    let status = client.wait_for_exit(QUICK).unwrap();
    assert_eq!(
        status,
        0,
        "{implementation:?}: {}",
        client.capture().unwrap()
    );
    let screen = with_history(client);
    assert!(screen.contains("[mosh is exiting.]"), "{screen:?}");
}

fn type_line(client: &TmuxSession, line: &str) {
    client.send_text(line).unwrap();
    client.send_keys(&["Enter"]).unwrap();
}

#[test]
fn commands_run_and_their_output_appears() {
    for implementation in BOTH {
        let (_server, client) = start_session(implementation);
        type_line(&client, "echo answer-$((6*7))");
        let screen = client
            .wait_for("answer-42", QUICK)
            .unwrap_or_else(|e| panic!("{implementation:?} server: {e}"));
        assert!(screen.contains("mosh$ echo answer-$((6*7))"), "{screen}");
        type_line(&client, "printf '\\033]0;my title\\007'; echo titled");
        client.wait_for("\ntitled\n", QUICK).unwrap();
        let title = client
            .run(["display-message", "-p", "#{pane_title}"])
            .unwrap();
        assert_eq!(title.trim_end(), "[mosh] my title", "{implementation:?}");
    }
}

#[test]
fn window_resize_reaches_the_application() {
    for implementation in BOTH {
        let (_server, client) = start_session(implementation);
        type_line(&client, "stty size");
        client.wait_for("24 80", QUICK).unwrap();
        client
            .run(["resize-window", "-t", "0", "-x", "100", "-y", "30"])
            .unwrap();
        type_line(&client, "clear; stty size");
        client
            .wait_for("30 100", QUICK)
            .unwrap_or_else(|e| panic!("{implementation:?} server: {e}"));
        type_line(&client, "printf '%099d|\\n' 7");
        let screen = client.wait_for("7|", QUICK).unwrap();
        assert!(
            screen
                .lines()
                .any(|line| line.len() == 100 && line.ends_with("7|")),
            "the full width is drawn: {screen}"
        );
    }
}

#[test]
fn escape_dot_quits_cleanly_and_restores_the_terminal() {
    for implementation in BOTH {
        let server = MoshServer::start(implementation, &SHELL).expect("start mosh-server");
        let dir = std::env::temp_dir().join(format!(
            "mosh-e2e-client-stty-{}-{implementation:?}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("stty");
        let program = our_program("mosh-client").unwrap();
        let (ip, port) = (
            server.addr().ip().to_string(),
            server.addr().port().to_string(),
        );
        // The pause lets tmux read the pane's last output before the pty
        // closes (a pane closing at once may lose it).
        let script = r#"stty -g > "$0.before"; "$@"; status=$?; stty -g > "$0.after"; sleep 0.5; exit $status"#;
        let client = ours::client_command_in_tmux(
            &[
                "/bin/sh",
                "-c",
                script,
                base.to_str().unwrap(),
                program.to_str().unwrap(),
                &ip,
                &port,
            ],
            server.key(),
            80,
            24,
            &[],
        )
        .unwrap();
        client.wait_for("mosh$", QUICK).unwrap();
        client.send_keys(&["C-^"]).unwrap();
        client
            .wait_for(
                "mosh: Commands: Ctrl-Z suspends, \".\" quits, \"^\" gives literal Ctrl-^",
                QUICK,
            )
            .unwrap();
        client.send_text(".").unwrap();
        assert_clean_exit(&client, implementation);
        let before = std::fs::read_to_string(dir.join("stty.before")).unwrap();
        let after = std::fs::read_to_string(dir.join("stty.after")).unwrap();
        assert_eq!(
            before, after,
            "{implementation:?}: terminal settings restored"
        );
        assert!(
            server.wait_for_exit(QUICK),
            "{implementation:?} server ends after the shutdown handshake"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn escape_caret_sends_a_literal_and_other_keys_pass_through() {
    let (_server, client) = start_session(Implementation::Ours);
    type_line(&client, "od -c | head -1");
    client.send_keys(&["C-^", "^", "C-^", "x"]).unwrap();
    client.send_keys(&["Enter", "C-d"]).unwrap();
    let screen = client.wait_for("0000000", QUICK).unwrap();
    assert!(screen.contains("036 036   x  \\n"), "{screen}");
}

/// tmux continues a pane's stopped process group at once (it sends
/// SIGCONT when it sees its child stop), so the suspension is observed in
/// the normal screen the client left (`capture-pane -a` once the client is
/// back on the alternate screen), and the resumption by a full repaint and
/// a working session.
#[test]
fn escape_ctrl_z_suspends_and_sigcont_resumes() {
    let (_server, client) = start_session(Implementation::Ours);
    type_line(&client, "echo before-$((1+1))");
    client.wait_for("before-2", QUICK).unwrap();
    client.send_keys(&["C-^", "C-z"]).unwrap();
    let start = std::time::Instant::now();
    loop {
        // The message is on the normal screen: tmux shows it as the saved
        // one (-a) while the client uses the alternate screen; once the
        // client draws on the normal screen (scrollback), resuming pushes it
        // up into the pane's history.
        let normal = client.run(["capture-pane", "-p", "-a"]).unwrap_or_default();
        let pane = client
            .run(["capture-pane", "-p", "-S", "-"])
            .unwrap_or_default();
        if normal.contains("[mosh is suspended.]") || pane.contains("[mosh is suspended.]") {
            break;
        }
        assert!(
            start.elapsed() < QUICK,
            "never suspended: {normal:?} {pane:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let resumed = std::time::Instant::now();
    loop {
        let screen = client.wait_for("before-2", QUICK).unwrap();
        if !screen.contains("[mosh is suspended.]") {
            break;
        }
        assert!(resumed.elapsed() < QUICK, "never resumed: {screen}");
        std::thread::sleep(Duration::from_millis(50));
    }
    type_line(&client, "echo after-$((1+2))");
    client.wait_for("after-3", QUICK).unwrap();
}

#[test]
fn the_command_exiting_ends_the_client_cleanly() {
    for implementation in BOTH {
        let (server, client) = start_session(implementation);
        type_line(&client, "exit");
        assert_clean_exit(&client, implementation);
        assert!(server.wait_for_exit(QUICK));
    }
}

#[test]
fn no_server_shows_nothing_received_and_quits_on_request() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let key = mosh_proto::Base64Key::random().unwrap();
    let client = ours::client_in_tmux(addr, &key, 80, 24, &[]).unwrap();
    let expected = format!(
        "mosh: Nothing received from server on UDP port {}. [To quit: Ctrl-^ .]",
        addr.port()
    );
    client.wait_for(&expected, QUICK).unwrap();
    client.send_keys(&["C-^", "."]).unwrap();
    assert_eq!(client.wait_for_exit(QUICK).unwrap(), 1);
    let screen = client.wait_for("mosh did not make a successful connection", QUICK);
    assert!(screen.is_ok(), "{screen:?}");
}

/// Stock gives up 15 s after start when nothing was heard, then exits
/// (status 1) once its shutdown goes unanswered.
#[test]
fn no_server_times_out() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let key = mosh_proto::Base64Key::random().unwrap();
    let client = ours::client_in_tmux(silent.local_addr().unwrap(), &key, 80, 24, &[]).unwrap();
    let screen = client
        .wait_for("Timed out waiting for server...", Duration::from_secs(20))
        .unwrap();
    assert!(
        screen.starts_with("mosh: Timed out waiting for server..."),
        "{screen}"
    );
    assert_eq!(client.wait_for_exit(Duration::from_secs(20)).unwrap(), 1);
    let screen = with_history(&client);
    assert!(
        screen.contains("mosh did not make a successful connection to 127.0.0.1:"),
        "{screen}"
    );
}

/// The bytes written to the terminal around a session (spec §9.2): the
/// alternate screen, application cursor keys and a full first paint at
/// the start; modes off and the normal screen at the end. With
/// `MOSH_NO_TERM_INIT` the screen switches are left out.
#[test]
fn terminal_init_and_exit_sequences() {
    for no_init in [false, true] {
        mosh_e2e::require_program("script").unwrap();
        let server = MoshServer::start(Implementation::Ours, &SHELL).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "mosh-e2e-client-typescript-{}-{no_init}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let typescript = dir.join("typescript");
        let program = our_program("mosh-client").unwrap();
        // The bytes stock writes for TERM=xterm-256color (spec §9.2).
        let command = format!(
            "env TERM=xterm-256color {} {} {}",
            program.display(),
            server.addr().ip(),
            server.addr().port()
        );
        // Without scrollback, which moves the client to the normal screen
        // once our server offers history (tested in tests/scrollback.rs).
        let env: &[(&str, &str)] = if no_init {
            &[("MOSH_NO_TERM_INIT", "1"), ("MOSH_NO_SCROLLBACK", "1")]
        } else {
            &[("MOSH_NO_SCROLLBACK", "1")]
        };
        let client = ours::client_command_in_tmux(
            &["script", "-q", "-c", &command, typescript.to_str().unwrap()],
            server.key(),
            80,
            24,
            env,
        )
        .unwrap();
        client.wait_for("mosh$", QUICK).unwrap();
        client.send_keys(&["C-^", "."]).unwrap();
        assert_eq!(client.wait_for_exit(QUICK).unwrap(), 0);
        let bytes = std::fs::read(&typescript).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let init = if no_init {
            "\x1b[?1h"
        } else {
            "\x1b[?1049h\x1b[22;0;0t\x1b[?1h"
        };
        let paint = "\x1b[?5l\x1b[r\x1b[0m\x1b[H\x1b[2J\x1b[?25l\x1b[K\n";
        let start = text
            .find(init)
            .unwrap_or_else(|| panic!("no init in {text:?}"));
        assert!(text[start + init.len()..].starts_with(paint), "{text:?}");
        let exit = format!(
            "\x1b[?1l\x1b[0m\x1b[?25h\x1b[?1003l\x1b[?1002l\x1b[?1001l\x1b[?1000l\
             \x1b[?1015l\x1b[?1006l\x1b[?1005l{}[mosh is exiting.]\r\n",
            if no_init {
                ""
            } else {
                "\x1b[?1049l\x1b[23;0;0t"
            }
        );
        assert!(text.contains(&exit), "{no_init}: {text:?}");
        assert_eq!(text.contains("\x1b[?1049h"), !no_init);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn sigterm_shuts_the_session_down() {
    mosh_e2e::require_program("pkill").unwrap();
    let (server, client) = start_session(Implementation::Ours);
    let pid = client
        .run(["display-message", "-p", "#{pane_pid}"])
        .unwrap();
    let status = Command::new("pkill")
        .args(["-TERM", "-P", pid.trim(), "-x", "mosh-client"])
        .status()
        .unwrap();
    assert!(status.success(), "pkill found our client");
    assert_eq!(client.wait_for_exit(QUICK).unwrap(), 0);
    assert!(server.wait_for_exit(QUICK));
}

/// The terminal going away (SIGHUP, then end of input) shuts the session
/// down: the server ends too, and so does the client.
#[test]
fn closing_the_terminal_shuts_the_session_down() {
    let (server, client) = start_session(Implementation::Ours);
    let shell = client
        .run(["display-message", "-p", "#{pane_pid}"])
        .unwrap();
    let output = Command::new(mosh_e2e::require_program("pgrep").unwrap())
        .args(["-P", shell.trim()])
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("client pid");
    client.run(["kill-pane", "-t", "0"]).unwrap();
    assert!(server.wait_for_exit(QUICK), "server still running");
    assert!(
        mosh_e2e::process::wait_for_exit(pid, "mosh-client", QUICK),
        "client still running"
    );
}

fn run_client(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(our_program("mosh-client").unwrap())
        .args(args)
        .env_clear()
        .env("LANG", UTF8_LOCALE)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn command_line_errors_use_stock_messages() {
    let key = [("MOSH_KEY", "zs6ZmRqpU4W6cyNwF9UzTA")];
    let (status, _, stderr) = run_client(&["127.0.0.1", "60001"], &[]);
    assert_eq!(
        (status, stderr.trim_end()),
        (1, "mosh-client: MOSH_KEY environment variable not found.")
    );
    let (status, _, stderr) = run_client(&["127.0.0.1", "6x"], &key);
    assert_eq!(
        (status, stderr.trim_end()),
        (1, "mosh-client: Bad UDP port (6x)")
    );
    let with_mode = [key[0], ("MOSH_PREDICTION_DISPLAY", "sometimes")];
    let (status, _, stderr) = run_client(&["127.0.0.1", "1"], &with_mode);
    assert_eq!(
        (status, stderr.trim_end()),
        (1, "mosh-client: Unknown prediction mode sometimes.")
    );
    let (status, _, stderr) = run_client(&["127.0.0.1"], &key);
    assert_eq!(status, 1);
    assert!(stderr.starts_with("Usage: mosh-client"), "{stderr}");
    let (status, stdout, _) = run_client(&["--help"], &[]);
    assert_eq!(status, 0);
    assert!(stdout.contains("Usage: mosh-client"), "{stdout}");
    let (status, stdout, _) = run_client(&["-c"], &[("TERM", "xterm-256color")]);
    assert_eq!((status, stdout.trim_end()), (0, "256"));
    let c_locale = [key[0], ("LANG", "C")];
    let (status, _, stderr) = run_client(&["127.0.0.1", "1"], &c_locale);
    assert_eq!(status, 1);
    assert!(
        stderr.starts_with("mosh-client needs a UTF-8 native locale to run."),
        "{stderr}"
    );
}
