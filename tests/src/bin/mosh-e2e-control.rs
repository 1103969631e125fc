//! `mosh-e2e-control`: a raw client of the daemon's control socket for
//! tests, run as whichever user the test chooses (the daemon knows its
//! peers by their uid).
//!
//! * `send SOCKET`: sends standard input as it is, then prints the answer.
//! * `flood SOCKET HOLD SECONDS`: opens HOLD connections that each send one
//!   byte and stay open, prints `holding`, then for SECONDS opens
//!   connections that send a line of garbage, from two threads, and
//!   finally prints one JSON object: how the held connections were
//!   answered (`refused`: the daemon's per-user refusal; `timed_out`: its
//!   request deadline; `other`), the first refusal line, and how many
//!   flood connections were made and answered.

use std::io::{self, BufRead, Read, Write};

use mosh_stdio::{stderrln, stdout, stdoutln};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long any one read may wait.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["send", socket] => send(Path::new(socket)),
        ["flood", socket, hold, seconds] => match (hold.parse(), seconds.parse()) {
            (Ok(hold), Ok(seconds)) => flood(Path::new(socket), hold, seconds),
            _ => Err(io::Error::other("HOLD and SECONDS are numbers")),
        },
        _ => Err(io::Error::other(
            "usage: mosh-e2e-control send SOCKET | flood SOCKET HOLD SECONDS",
        )),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            stderrln!("mosh-e2e-control: {error}");
            ExitCode::FAILURE
        }
    }
}

fn send(socket: &Path) -> io::Result<()> {
    let mut request = Vec::new();
    io::stdin().read_to_end(&mut request)?;
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.write_all(&request)?;
    let answer = read_answer(&mut stream);
    stdout!("{answer}");
    Ok(())
}

/// Everything the daemon says before it closes (or goes quiet).
fn read_answer(stream: &mut UnixStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn flood(socket: &Path, hold: usize, seconds: u64) -> io::Result<()> {
    let mut held = Vec::with_capacity(hold);
    for _ in 0..hold {
        let mut stream = UnixStream::connect(socket)?;
        let _ = stream.write_all(b"{");
        held.push(stream);
    }
    stdoutln!("holding");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let socket = socket.to_owned();
            std::thread::spawn(move || {
                let (mut made, mut answered) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let Ok(mut stream) = UnixStream::connect(&socket) else {
                        continue;
                    };
                    made += 1;
                    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
                    let _ = stream.write_all(b"\x00\xffgarbage, not a request\n");
                    if !read_answer(&mut stream).is_empty() {
                        answered += 1;
                    }
                }
                (made, answered)
            })
        })
        .collect();
    let (mut made, mut answered) = (0, 0);
    for flooder in flooders {
        let (m, a) = flooder
            .join()
            .map_err(|_| io::Error::other("a flood thread panicked"))?;
        made += m;
        answered += a;
    }
    let (mut refused, mut timed_out, mut other) = (0, 0, 0);
    let mut refusal = String::new();
    for mut stream in held {
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        let mut line = String::new();
        let _ = io::BufReader::new(&mut stream).read_line(&mut line);
        if line.contains("too many control connections") {
            refused += 1;
            if refusal.is_empty() {
                refusal = line.trim_end().to_owned();
            }
        } else if line.contains("no request received in time") {
            timed_out += 1;
        } else {
            other += 1;
        }
    }
    stdoutln!(
        "{}",
        serde_json::json!({
            "refused": refused,
            "timed_out": timed_out,
            "other": other,
            "refusal": refusal,
            "flood_connections": made,
            "flood_answered": answered,
        })
    );
    Ok(())
}
