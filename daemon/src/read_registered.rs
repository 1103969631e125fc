//! Descriptors the reactor watches for reading only ([`watch_readable`]),
//! and the one stream built on it: the worker's end of its registration
//! connection to the daemon ([`ReadRegistered`]).
//!
//! tokio registers a socket for both directions, and a socket turns
//! writable again each time what was written leaves it (a Unix stream when
//! its peer reads, a UDP socket when the datagram is sent), so each write
//! woke the writer a second time. Writes to a descriptor watched here go
//! straight to it; only a Unix stream whose buffer is full (the daemon has
//! stopped reading) waits, retrying now and then.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, Interest, ReadBuf};
use tokio::net::UnixStream;

/// A type that owns one descriptor and always reports that one from
/// `as_raw_fd`: what [`watch_readable`] needs to register it safely.
pub trait OwnsDescriptor: AsRawFd {}

impl OwnsDescriptor for StdUnixStream {}
impl OwnsDescriptor for std::net::UdpSocket {}

/// Registers `io` with the current tokio reactor for reading only; it must
/// be called inside a tokio runtime.
pub fn watch_readable<T: OwnsDescriptor>(io: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `OwnsDescriptor` types own their descriptor, so it stays open
    // and names the same file until the `AsyncFd` drops `io`, and
    // `as_raw_fd` always returns that descriptor.
    unsafe { AsyncFd::register_with_interest(io, Interest::READABLE) }.map_err(io::Error::from)
}

/// How long a write waits before trying a full socket again.
const FULL_BUFFER_RETRY: Duration = Duration::from_millis(50);

/// A connected Unix stream; clones share it (one may read while another
/// writes).
#[derive(Debug, Clone)]
pub struct ReadRegistered(Arc<AsyncFd<StdUnixStream>>);

impl ReadRegistered {
    /// Takes `stream` over from the reactor's usual registration; it must be
    /// called inside a tokio runtime.
    pub fn new(stream: UnixStream) -> io::Result<Self> {
        Ok(Self(Arc::new(watch_readable(stream.into_std()?)?)))
    }

    /// Writes all of `bytes`.
    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            // A peer gone is an error here, never a SIGPIPE.
            match socket::send(self.0.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => bytes = &bytes[written..],
                Err(Errno::EAGAIN) => tokio::time::sleep(FULL_BUFFER_RETRY).await,
                Err(Errno::EINTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

impl AsyncRead for ReadRegistered {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut ready = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match ready.try_io(|stream| stream.get_ref().read(unfilled)) {
                Ok(Ok(read)) => {
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                Err(_would_block) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{epoll_interest, runtime};
    use tokio::io::AsyncReadExt;

    #[test]
    fn the_reactor_is_asked_about_reading_only() {
        runtime().block_on(async {
            let (ours, theirs) = UnixStream::pair().unwrap();
            let plain = theirs.as_raw_fd();
            let ours = ReadRegistered::new(ours).unwrap();
            let epollout = libc::EPOLLOUT as u32;
            let plain_interest = epoll_interest(plain);
            assert!(
                plain_interest.iter().any(|events| events & epollout != 0),
                "a tokio stream is registered for writing too: {plain_interest:x?}"
            );
            let interest = epoll_interest(ours.0.as_raw_fd());
            assert!(!interest.is_empty(), "not registered");
            assert!(
                interest.iter().all(|events| events & epollout == 0),
                "registered for writing: {interest:x?}"
            );
        });
    }

    #[test]
    fn it_carries_both_ways_and_waits_out_a_full_buffer() {
        runtime().block_on(async {
            let (ours, mut theirs) = UnixStream::pair().unwrap();
            let ours = ReadRegistered::new(ours).unwrap();

            // More than any socket buffer holds: the write must wait for
            // the peer to read, and lose nothing.
            let sent: Vec<u8> = (0..1024 * 1024u32).map(|i| i as u8).collect();
            let writer = ours.clone();
            let expected = sent.clone();
            let writing = tokio::spawn(async move { writer.write_all(&sent).await });
            let mut received = vec![0; expected.len()];
            theirs.read_exact(&mut received).await.unwrap();
            writing.await.unwrap().unwrap();
            assert!(received == expected, "the bytes arrived changed");

            tokio::io::AsyncWriteExt::write_all(&mut theirs, b"request\n")
                .await
                .unwrap();
            let mut line = [0; 8];
            let mut reader = ours.clone();
            reader.read_exact(&mut line).await.unwrap();
            assert_eq!(&line, b"request\n");

            drop(theirs);
            let mut rest = Vec::new();
            assert_eq!(reader.read_to_end(&mut rest).await.unwrap(), 0);
            assert!(
                ours.write_all(b"x").await.is_err(),
                "wrote to a closed peer"
            );
        });
    }
}
