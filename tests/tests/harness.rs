//! The tmux harness itself: a pane gets the size and environment asked for,
//! shows what its command prints, takes typed keys, reports the exit status,
//! and its server is gone after drop.

use std::time::Duration;

use mosh_e2e::process;
use mosh_e2e::tmux::TmuxSession;

const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn tmux_session_runs_types_reports_exit_and_cleans_up() {
    let tmux = TmuxSession::start(
        40,
        10,
        &[
            "sh",
            "-c",
            "echo \"greeting=$GREETING\"; stty size; read line; echo \"got <$line>\"; read _; exit 7",
        ],
        &[("GREETING", "hello-env")],
    )
    .expect("start tmux");
    tmux.wait_for("greeting=hello-env", TIMEOUT).unwrap();
    tmux.wait_for("10 40", TIMEOUT).unwrap();
    assert_eq!(tmux.exit_status().unwrap(), None, "the command still runs");

    tmux.send_text("Enter C-c").unwrap();
    tmux.send_keys(&["Enter"]).unwrap();
    tmux.wait_for("got <Enter C-c>", TIMEOUT).unwrap();
    tmux.send_keys(&["Enter"]).unwrap();
    assert_eq!(tmux.wait_for_exit(TIMEOUT).unwrap(), 7);

    let timeout = tmux
        .wait_for("never shown", Duration::from_millis(200))
        .unwrap_err();
    assert!(timeout.to_string().contains("got <Enter C-c>"), "{timeout}");

    let server_pid = tmux.server_pid();
    assert!(process::is_running(server_pid, "tmux: server"));
    let socket = tmux.socket();
    assert!(socket.exists());
    drop(tmux);
    assert!(
        !process::is_running(server_pid, "tmux: server"),
        "drop ends the tmux server"
    );
    assert!(!socket.exists(), "drop removes the tmux server's socket");
}
