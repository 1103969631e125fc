//! `mosh --fake-proxy -- HOST PORT`: what ssh runs as its ProxyCommand. It
//! connects to the ssh server itself, prints `MOSH IP <address>` on stderr
//! (which the launcher reads through ssh's output) so the client's UDP goes
//! to the very address ssh reached, then relays bytes both ways like netcat.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};

use super::args::Family;
use super::ordered;

/// Connects and relays until both directions are closed.
pub fn run(host: &str, port: &str, family: Family) -> io::Result<()> {
    let port: u16 = port
        .parse()
        .map_err(|_| io::Error::other(format!("bad port {port:?}")))?;
    let addresses: Vec<_> = (host, port).to_socket_addrs()?.collect();
    let addresses = ordered(addresses, family).map_err(io::Error::other)?;
    let mut last_error = io::Error::other(format!("no usable address for {host}"));
    let mut connected = None;
    for address in addresses {
        match TcpStream::connect(address) {
            Ok(stream) => {
                mosh_stdio::stderrln!("MOSH IP {}", address.ip());
                connected = Some(stream);
                break;
            }
            Err(error) => last_error = error,
        }
    }
    let stream = connected
        .ok_or_else(|| io::Error::other(format!("Could not connect to {host}: {last_error}")))?;
    let mut from_server = stream.try_clone()?;
    let downstream = std::thread::spawn(move || -> io::Result<()> {
        copy_all(&mut from_server, &mut mosh_stdio::Stdout)?;
        let _ = from_server.shutdown(Shutdown::Read);
        Ok(())
    });
    let mut to_server = stream;
    copy_all(&mut io::stdin().lock(), &mut to_server)?;
    let _ = to_server.shutdown(Shutdown::Write);
    downstream
        .join()
        .map_err(|_| io::Error::other("relay thread panicked"))?
}

fn copy_all(from: &mut impl Read, to: &mut impl Write) -> io::Result<()> {
    let mut buffer = [0u8; 16384];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        to.write_all(&buffer[..read])?;
        to.flush()?;
    }
}
