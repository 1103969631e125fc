//! A Unix stream the reactor watches for reading only: the worker's end of
//! its registration connection to the daemon.
//!
//! tokio registers a stream for both directions, and a Unix stream socket
//! turns writable again each time its peer reads what was written, so each
//! report a worker sent woke it a second time once the daemon had read it.
//! Here writes go straight to the socket; only when its buffer is full (the
//! daemon has stopped reading) do they wait, retrying now and then.

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
        let stream = stream.into_std()?;
        // SAFETY: the `AsyncFd` owns the stream, which owns its descriptor,
        // so the descriptor stays open and names this socket until the
        // `AsyncFd` drops it; `as_raw_fd` always returns that descriptor.
        let watched = unsafe { AsyncFd::register_with_interest(stream, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self(Arc::new(watched)))
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
    use crate::test_support::runtime;
    use tokio::io::AsyncReadExt;

    /// The events every epoll instance of this process asks about `fd`.
    fn epoll_interest(fd: i32) -> Vec<u32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let is_epoll = std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().contains("eventpoll"));
            if !is_epoll {
                continue;
            }
            let info_path = format!("/proc/self/fdinfo/{}", entry.file_name().to_string_lossy());
            let Ok(info) = std::fs::read_to_string(info_path) else {
                continue;
            };
            for line in info.lines() {
                let mut words = line.split_whitespace();
                if words.next() == Some("tfd:")
                    && words.next() == Some(&fd.to_string())
                    && words.next() == Some("events:")
                {
                    found.push(u32::from_str_radix(words.next().unwrap(), 16).unwrap());
                }
            }
        }
        found
    }

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
