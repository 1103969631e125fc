//! The whole pool: a `mosh-daemon` with its default range (60000:61000)
//! gives out all 1,001 sessions, each running `/bin/sh` for one user, each
//! with a live client of the load generator ([`mosh_e2e::loadgen`]), in a
//! network namespace of its own (so no other program holds a pool port).
//! Reports the setup time of each `mosh-server new` (p50/p99), memory per
//! session (PSS of the daemon's share, the worker and its shell), the CPU
//! of the daemon and all workers while the clients idle, keystroke-to-echo
//! latency with every session typing a key a second (each at its own point
//! of the second), `moshctl list` and `moshctl status` at 1,001 sessions,
//! and the 1,002nd request's refusal.
//! Side by side in the same run: stock mosh 1.4's `mosh-server` at 500
//! sessions with the same clients, for memory and idle CPU per session.
//!
//! Run as root: `cargo build --release --bins && cargo bench -p mosh-e2e
//! --bench daemon_full_pool`. `BENCH_SESSIONS` (1001), `BENCH_STOCK` (500),
//! `BENCH_IDLE_SECS` (60) and `BENCH_TYPING_SECS` (30) change the sizes.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark's report, not a program we ship"
)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mosh_e2e::daemon::{As, Connect, TestDaemon, TestUser};
use mosh_e2e::loadgen::{Behaviour, LoadGen, Options, SessionSpec, summary};
use mosh_e2e::measure::{Scheduled, pss_kib, ratio, scheduled, tree_pss_kib};
use mosh_e2e::netns::NetPair;
use mosh_e2e::{UTF8_LOCALE, our_program, process, require_program, stock};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn percentile(times: &mut [Duration], q: f64) -> Duration {
    times.sort_unstable();
    times[((times.len() - 1) as f64 * q).round() as usize]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Runs `program ARGS...` as `user` with `env`: in network namespace
/// `netns` through `nsenter` and `setpriv` when given, else with the uid
/// and gid set directly (no `su`, whose own cost would swamp a setup).
fn run_as(
    netns: Option<&str>,
    user: &TestUser,
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut command = match netns {
        Some(netns) => {
            let mut command = Command::new("nsenter");
            command
                .arg(format!("--net=/run/netns/{netns}"))
                .arg("--")
                .arg("setpriv")
                .arg(format!("--reuid={}", user.uid()))
                .arg(format!("--regid={}", user.gid()))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            command
        }
        None => {
            let mut command = Command::new(program);
            command.uid(user.uid()).gid(user.gid());
            command
        }
    };
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", user.home())
        .env("USER", user.name())
        .env("LANG", UTF8_LOCALE)
        .env("LC_ALL", UTF8_LOCALE)
        .envs(env.iter().copied())
        .current_dir(user.home())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

/// CPU time of `pids` (those still running), summed, in nanoseconds (a
/// thousand processes each using less than a clock tick a minute would
/// make tick counts mostly rounding).
fn total(pids: &[u32]) -> Scheduled {
    pids.iter().map(|&pid| scheduled(pid)).sum()
}

/// Waits until every client has its first screen.
fn wait_connected(loadgen: &LoadGen, sessions: usize) {
    loadgen
        .wait_for(
            Duration::from_secs(300),
            "every client connected",
            |totals| totals.connected == sessions,
        )
        .expect("clients connected");
}

/// What the scheduler counted for each group of `groups` over `seconds`
/// of idle clients, and how long that was.
fn idle(groups: &[&[u32]], seconds: u64) -> (Vec<Scheduled>, Duration) {
    let before: Vec<Scheduled> = groups.iter().map(|pids| total(pids)).collect();
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let after = groups.iter().map(|pids| total(pids));
    let used = after.zip(before).map(|(a, b)| a.since(b)).collect();
    (used, began.elapsed())
}

/// `on_cpu` over `elapsed` as a share of one core.
fn share(on_cpu: Duration, elapsed: Duration) -> f64 {
    on_cpu.as_secs_f64() / elapsed.as_secs_f64()
}

/// Times `used` was put on a CPU, per second of `elapsed` and per session.
fn runs_per_session_second(used: Scheduled, elapsed: Duration, sessions: usize) -> f64 {
    used.runs as f64 / elapsed.as_secs_f64() / sessions as f64
}

/// Times `moshctl ARGS...` as root, 5 runs: the median and the slowest.
fn moshctl_latency(daemon: &TestDaemon, args: &[&str]) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let began = Instant::now();
            let output = daemon.moshctl(As::Root, args);
            assert!(output.status.success(), "moshctl {args:?}");
            began.elapsed()
        })
        .collect();
    (percentile(&mut times, 0.5), percentile(&mut times, 1.0))
}

struct Side {
    sessions: usize,
    pss_kib_per_session: f64,
    idle_cpu_per_session: f64,
}

fn main() {
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return;
    }
    let sessions = env_number("BENCH_SESSIONS", 1001) as usize;
    let stock_sessions = env_number("BENCH_STOCK", 500) as usize;
    let idle_secs = env_number("BENCH_IDLE_SECS", 60);
    let typing_secs = env_number("BENCH_TYPING_SECS", 30);
    for tool in ["nsenter", "setpriv"] {
        require_program(tool).unwrap_or_else(|e| panic!("{e}"));
    }
    let pair = NetPair::new().expect("network namespaces");
    // The clients' own ports, chosen by the kernel, must stay out of the
    // pool (the default ephemeral range ends at 60999).
    let sysctl = Command::new("ip")
        .args(["netns", "exec", &pair.server, "sysctl", "-q"])
        .arg("net.ipv4.ip_local_port_range=32768 59999")
        .status()
        .expect("ip netns exec sysctl");
    assert!(sysctl.success(), "setting the client port range");
    let netns = PathBuf::from(format!("/run/netns/{}", pair.server));
    let user = TestUser::create().expect("a test user");
    let server = our_program("mosh-server").expect("our mosh-server");

    let loadgen = LoadGen::start(Options {
        netns: Some(netns.clone()),
        ..Options::default()
    })
    .expect("load generator");
    let daemon = TestDaemon::start_in_netns(
        &pair.server,
        (60000, 61000),
        "max_sessions = 4000\nmax_sessions_per_user = 4000\n",
        &[],
    )
    .expect("start mosh-daemon");
    let socket = daemon.socket();
    let socket = socket.to_string_lossy();
    let daemon_env = [("MOSH_DAEMON_SOCKET", &*socket)];
    let mut setups = Vec::with_capacity(sessions);
    let mut workers = Vec::with_capacity(sessions);
    for n in 0..sessions {
        let began = Instant::now();
        let output = run_as(None, &user, &server, &["new", "--", "/bin/sh"], &daemon_env);
        setups.push(began.elapsed());
        let connect = Connect::parse(&output).unwrap_or_else(|| {
            panic!(
                "session {n}: mosh-server new failed: {}\n{}",
                String::from_utf8_lossy(&output.stderr),
                daemon.log()
            )
        });
        workers.push(connect.pid);
        loadgen
            .add(SessionSpec {
                server: connect.addr(),
                key: connect.key,
                behaviour: Behaviour::Quiet,
            })
            .expect("a client");
    }
    let refused = run_as(None, &user, &server, &["new", "--", "/bin/sh"], &daemon_env);
    let refusal = String::from_utf8_lossy(&refused.stderr).trim().to_owned();
    let mut setup_times = setups.clone();
    let (setup_p50, setup_p99) = (
        percentile(&mut setup_times, 0.5),
        percentile(&mut setup_times, 0.99),
    );
    println!(
        "full pool: {sessions} sessions of /bin/sh through mosh-daemon, each with a live client"
    );
    println!(
        "  setup (mosh-server new)  p50 {:.2} ms  p99 {:.2} ms",
        ms(setup_p50),
        ms(setup_p99)
    );
    println!(
        "  request {}: exit {:?}, {refusal:?}",
        sessions + 1,
        refused.status.code()
    );
    wait_connected(&loadgen, sessions);
    let (list_p50, list_max) = moshctl_latency(&daemon, &["list"]);
    let (status_p50, status_max) = moshctl_latency(&daemon, &["status"]);
    println!(
        "  moshctl list   p50 {:.1} ms  slowest {:.1} ms",
        ms(list_p50),
        ms(list_max)
    );
    println!(
        "  moshctl status p50 {:.1} ms  slowest {:.1} ms",
        ms(status_p50),
        ms(status_max)
    );
    std::thread::sleep(Duration::from_secs(2));
    let daemon_pss = pss_kib(daemon.pid());
    let worker_pss: u64 = workers.iter().map(|&pid| tree_pss_kib(pid)).sum();
    let (used, elapsed) = idle(&[&[daemon.pid()], &workers], idle_secs);
    let (daemon_idle, workers_idle) = (used[0], used[1]);
    let (daemon_share, workers_share) = (
        share(daemon_idle.on_cpu, elapsed),
        share(workers_idle.on_cpu, elapsed),
    );
    let cpu = daemon_share + workers_share;
    let ours = Side {
        sessions,
        pss_kib_per_session: (daemon_pss + worker_pss) as f64 / sessions as f64,
        idle_cpu_per_session: cpu / sessions as f64,
    };
    println!(
        "  memory per session (PSS) {:.0} KiB (daemon {} KiB in all, workers + shells {} KiB)",
        ours.pss_kib_per_session, daemon_pss, worker_pss
    );
    println!(
        "  idle CPU, daemon + all workers over {idle_secs} s: {:.2}% of one core \
         (daemon {:.2}%, workers {:.2}%); runs per session per second: \
         workers {:.2}, daemon {:.2}",
        cpu * 100.0,
        daemon_share * 100.0,
        workers_share * 100.0,
        runs_per_session_second(workers_idle, elapsed, sessions),
        runs_per_session_second(daemon_idle, elapsed, sessions),
    );

    // Each session starts at its own point of the second, as independent
    // users would; in step, 1,001 keys would land in one burst each second.
    let interval = Duration::from_secs(1);
    loadgen
        .set_behaviour_all(Behaviour::Typing { interval }, interval)
        .expect("typing");
    std::thread::sleep(Duration::from_secs(5));
    loadgen.reset_latencies().expect("reset");
    let before: Vec<Scheduled> = workers.iter().map(|&pid| scheduled(pid)).collect();
    let daemon_before = scheduled(daemon.pid());
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs(typing_secs));
    let typing_elapsed = began.elapsed();
    let typed_by: Vec<Scheduled> = workers
        .iter()
        .zip(before)
        .map(|(&pid, before)| scheduled(pid).since(before))
        .collect();
    let busiest = typed_by
        .iter()
        .map(|used| used.on_cpu)
        .max()
        .unwrap_or_default();
    let workers_typing: Scheduled = typed_by.into_iter().sum();
    let typing_cpu = workers_typing.on_cpu + scheduled(daemon.pid()).since(daemon_before).on_cpu;
    let typed = loadgen.totals().expect("totals");
    let (echo_p50, echo_p99) = (
        typed.latency.quantile(0.5).unwrap_or_default(),
        typed.latency.quantile(0.99).unwrap_or_default(),
    );
    println!(
        "  typing a key a second in every session, out of step, for {typing_secs} s: echo p50 {:.2} ms  p99 {:.2} ms; \
         CPU {:.1}% of one core; {}",
        ms(echo_p50),
        ms(echo_p99),
        typing_cpu.as_secs_f64() / typing_secs as f64 * 100.0,
        summary(&typed)
    );
    println!(
        "  while typing: worker runs per session per second {:.2}; busiest worker {:.2}% of one core",
        runs_per_session_second(workers_typing, typing_elapsed, sessions),
        share(busiest, typing_elapsed) * 100.0
    );
    let _ = daemon.moshctl(As::Root, &["kill", "--idle", "0"]);
    drop(daemon);
    drop(loadgen);

    let stock = stock_side(&pair.server, &netns, &user, stock_sessions, idle_secs);

    println!(
        "stock mosh-server, {} sessions with the same clients: {:.0} KiB/session, idle CPU {:.4}% of one core per session",
        stock.sessions,
        stock.pss_kib_per_session,
        stock.idle_cpu_per_session * 100.0
    );
    println!(
        "ours: {:.0} KiB/session, idle CPU {:.4}% of one core per session",
        ours.pss_kib_per_session,
        ours.idle_cpu_per_session * 100.0
    );
    println!(
        "ratios (ours/stock): memory per session {}  idle CPU per session {}",
        ratio(ours.pss_kib_per_session, stock.pss_kib_per_session),
        ratio(ours.idle_cpu_per_session, stock.idle_cpu_per_session)
    );
}

/// Stock `mosh-server new` sessions of `/bin/sh` with quiet clients:
/// memory and idle CPU per session.
fn stock_side(
    netns_name: &str,
    netns: &Path,
    user: &TestUser,
    sessions: usize,
    idle_secs: u64,
) -> Side {
    let program = stock::server_program().expect("stock mosh-server");
    let loadgen = LoadGen::start(Options {
        netns: Some(netns.to_path_buf()),
        ..Options::default()
    })
    .expect("load generator");
    let mut servers = Vec::with_capacity(sessions);
    for n in 0..sessions {
        let output = run_as(
            Some(netns_name),
            user,
            &program,
            &["new", "-p", "62000:63999", "--", "/bin/sh"],
            &[],
        );
        let connect = Connect::parse(&output).unwrap_or_else(|| {
            panic!(
                "stock session {n}: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        servers.push(connect.pid);
        loadgen
            .add(SessionSpec {
                server: connect.addr(),
                key: connect.key,
                behaviour: Behaviour::Quiet,
            })
            .expect("a client");
    }
    wait_connected(&loadgen, sessions);
    std::thread::sleep(Duration::from_secs(2));
    let pss: u64 = servers.iter().map(|&pid| tree_pss_kib(pid)).sum();
    let (used, elapsed) = idle(&[&servers], idle_secs);
    let cpu = share(used[0].on_cpu, elapsed);
    println!(
        "  stock idle: runs per session per second {:.2}",
        runs_per_session_second(used[0], elapsed, sessions)
    );
    for pid in servers {
        process::terminate(pid, "mosh-server", Duration::from_secs(2));
    }
    Side {
        sessions,
        pss_kib_per_session: pss as f64 / sessions as f64,
        idle_cpu_per_session: cpu / sessions as f64,
    }
}
