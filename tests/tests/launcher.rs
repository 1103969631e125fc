//! The `mosh` launcher end to end: over a real OpenSSH server on port 22000
//! with a created user (`mosh --ssh="ssh -p 22000 ..." USER@localhost`), and
//! with `--local`, using our `mosh-client` and `mosh-server`. The session
//! must outlive the ssh connection.

use std::process::Command;
use std::time::Duration;

use mosh_e2e::our_program;
use mosh_e2e::sshd::Sshd;
use mosh_e2e::tmux::TmuxSession;
use mosh_e2e::user::TestUser;

const QUICK: Duration = Duration::from_secs(15);

fn program(name: &str) -> String {
    our_program(name).unwrap().to_string_lossy().into_owned()
}

/// Running ssh processes logging in as `user`.
fn ssh_processes_for(user: &str) -> usize {
    let output = Command::new("pgrep")
        .args(["-a", "-x", "ssh"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(&format!("{user}@")))
        .count()
}

#[test]
fn mosh_over_real_ssh_outlives_the_ssh_connection() {
    let user = TestUser::create().unwrap();
    let sshd = Sshd::start(22000, &user).unwrap();
    let destination = format!("{}@localhost", user.name());
    let ssh = format!("--ssh={}", sshd.ssh_command());
    let server = format!("--server={}", program("mosh-server"));
    let our_client = format!("--client={}", program("mosh-client"));
    let mosh = program("mosh");
    let client = TmuxSession::start(
        80,
        24,
        &[
            &mosh,
            &ssh,
            &our_client,
            &server,
            &destination,
            "--",
            "/bin/sh",
            "-c",
            "PS1='remote$ ' exec /bin/sh -i",
        ],
        &[],
    )
    .unwrap();
    let screen = client.wait_for("remote$", QUICK);
    assert!(screen.is_ok(), "{screen:?}\nsshd log:\n{}", sshd.log());
    client.send_text("whoami; echo sum-$((20+22))").unwrap();
    client.send_keys(&["Enter"]).unwrap();
    let screen = client.wait_for("sum-42", QUICK).unwrap();
    assert!(screen.contains(user.name()), "{screen}");
    assert_eq!(
        ssh_processes_for(user.name()),
        0,
        "ssh should be gone once the session runs over UDP"
    );
    drop(sshd);
    client.send_text("echo still-$((2*3))").unwrap();
    client.send_keys(&["Enter"]).unwrap();
    client.wait_for("still-6", QUICK).unwrap();
    client.send_text("exit").unwrap();
    client.send_keys(&["Enter"]).unwrap();
    assert_eq!(client.wait_for_exit(QUICK).unwrap(), 0);
}

#[test]
fn mosh_local_runs_a_session_without_ssh() {
    let mosh = program("mosh");
    let server = format!("--server={}", program("mosh-server"));
    let our_client = format!("--client={}", program("mosh-client"));
    let client = TmuxSession::start(
        80,
        24,
        &[
            &mosh,
            "--local",
            &our_client,
            &server,
            "127.0.0.1",
            "--",
            "/bin/sh",
            "-c",
            "PS1='local$ ' exec /bin/sh -i",
        ],
        &[],
    )
    .unwrap();
    client.wait_for("local$", QUICK).unwrap();
    client.send_text("echo local-$((5*5))").unwrap();
    client.send_keys(&["Enter"]).unwrap();
    client.wait_for("local-25", QUICK).unwrap();
    client.send_text("exit").unwrap();
    client.send_keys(&["Enter"]).unwrap();
    assert_eq!(client.wait_for_exit(QUICK).unwrap(), 0);
}

#[test]
fn clear_errors_for_a_missing_server_and_a_failing_ssh() {
    let user = TestUser::create().unwrap();
    let sshd = Sshd::start(22001, &user).unwrap();
    let destination = format!("{}@localhost", user.name());
    let output = Command::new(program("mosh"))
        .arg(format!("--ssh={}", sshd.ssh_command()))
        .arg("--server=/nonexistent/mosh-server")
        .arg(&destination)
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("command not found on the remote host"),
        "{stderr}"
    );
    let output = Command::new(program("mosh"))
        .arg("--ssh=ssh -p 1 -o BatchMode=yes -o ConnectTimeout=5")
        .arg("nobody@127.0.0.1")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ssh failed"), "{stderr}");
}
