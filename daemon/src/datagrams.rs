//! A session's UDP socket ([`SessionSocket`]) and batched receiving on it:
//! one `recvmmsg(2)` takes up to [`BATCH`] queued datagrams into buffers
//! kept for the session's life, so a flood of datagrams costs one system
//! call per batch and no allocation per datagram.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::read_registered::watch_readable;

/// A session's UDP socket, which the reactor watches for reading only: a
/// send never waits, so each one costs no second wake-up when the socket
/// turns writable again. Like stock mosh, a datagram the socket cannot
/// take now is dropped with an error; SSP sends the state again.
#[derive(Debug)]
pub struct SessionSocket(AsyncFd<UdpSocket>);

impl SessionSocket {
    /// Takes `socket` over; it must be called inside a tokio runtime.
    pub fn new(socket: UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(Self(watch_readable(socket)?))
    }

    /// Sends `datagram` to `destination` now, or fails (`WouldBlock` when
    /// the socket's buffer is full).
    pub fn send_to(&self, datagram: &[u8], destination: SocketAddr) -> io::Result<usize> {
        self.0.get_ref().send_to(datagram, destination)
    }
}

/// Most datagrams one system call takes. Under a flood a session takes
/// about two per call (it keeps pace with the sender), so more slots would
/// save few calls; each slot is [`SLOT`] bytes a session keeps resident.
pub const BATCH: usize = 8;
/// Bytes kept per datagram: one more than the largest datagram the
/// protocol accepts, so that a larger one shows as oversize (the kernel
/// cuts it to this length).
pub const SLOT: usize = mosh_proto::crypto::RECEIVE_MTU + 1;

/// Buffers for one batch of received datagrams, and what the last receive
/// put in them.
pub struct ReceiveBatch {
    buffers: Box<[u8]>,
    headers: MultiHeaders<SockaddrStorage>,
    /// Slot, length and sender of each datagram of the last batch, in
    /// order.
    received: Vec<(usize, usize, SocketAddr)>,
}

impl Default for ReceiveBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl ReceiveBatch {
    /// Empty buffers for [`BATCH`] datagrams.
    pub fn new() -> Self {
        Self {
            buffers: vec![0; BATCH * SLOT].into_boxed_slice(),
            headers: MultiHeaders::preallocate(BATCH, None),
            received: Vec::with_capacity(BATCH),
        }
    }

    /// Waits until `socket` has datagrams queued and takes up to [`BATCH`]
    /// of them; returns how many the system call took (all of them shown by
    /// [`ReceiveBatch::datagrams`] but any without an IP sender).
    /// Cancel-safe: nothing is taken unless the call completes.
    pub async fn recv(&mut self, socket: &SessionSocket) -> io::Result<usize> {
        socket
            .0
            .async_io(Interest::READABLE, |socket| self.take(socket))
            .await
    }

    /// Takes up to [`BATCH`] datagrams already queued on `socket`, without
    /// waiting; returns how many (0 when none was queued).
    pub fn try_recv(&mut self, socket: &SessionSocket) -> io::Result<usize> {
        match socket
            .0
            .try_io(Interest::READABLE, |socket| self.take(socket))
        {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                self.received.clear();
                Ok(0)
            }
            other => other,
        }
    }

    /// The datagrams of the last receive, with their senders.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.received
            .iter()
            .map(|&(slot, len, from)| (from, &self.buffers[slot * SLOT..][..len]))
    }

    /// One non-blocking `recvmmsg` into the buffers; returns how many
    /// datagrams it took. Those whose sender is not an IP address (which a
    /// UDP socket never reports) are left out of the batch.
    fn take(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.received.clear();
        let mut slots = self.buffers.chunks_exact_mut(SLOT);
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
            [IoSliceMut::new(
                slots.next().expect("the buffers hold BATCH slots"),
            )]
        });
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        let mut taken = 0;
        for (slot, message) in results.enumerate() {
            taken += 1;
            if let Some(from) = message.address.as_ref().and_then(socket_addr) {
                self.received.push((slot, message.bytes.min(SLOT), from));
            }
        }
        Ok(taken)
    }
}

/// A socket address as the standard library spells it, if it is IPv4 or
/// IPv6.
fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::epoll_interest;

    async fn pair() -> (SessionSocket, UdpSocket) {
        let receiver = SessionSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender
            .connect(receiver.0.get_ref().local_addr().unwrap())
            .unwrap();
        (receiver, sender)
    }

    #[tokio::test]
    async fn queued_datagrams_come_in_batches_in_order_with_their_sender() {
        let (receiver, sender) = pair().await;
        let count = BATCH + BATCH / 2;
        for n in 0..count {
            sender.send(format!("datagram {n}").as_bytes()).unwrap();
        }
        let from = sender.local_addr().unwrap();
        let mut batch = ReceiveBatch::new();
        let mut seen = Vec::new();
        assert_eq!(batch.recv(&receiver).await.unwrap(), BATCH);
        seen.extend(
            batch
                .datagrams()
                .map(|(addr, bytes)| (addr, bytes.to_vec())),
        );
        assert_eq!(batch.try_recv(&receiver).unwrap(), count - BATCH);
        seen.extend(
            batch
                .datagrams()
                .map(|(addr, bytes)| (addr, bytes.to_vec())),
        );
        let expected: Vec<_> = (0..count)
            .map(|n| (from, format!("datagram {n}").into_bytes()))
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(batch.try_recv(&receiver).unwrap(), 0);
        assert_eq!(batch.datagrams().count(), 0, "nothing left over");
    }

    #[tokio::test]
    async fn the_socket_is_watched_for_reading_only_and_sends_at_once() {
        let (ours, theirs) = pair().await;
        let interest = epoll_interest(ours.0.as_raw_fd());
        assert!(!interest.is_empty(), "not registered");
        assert!(
            interest
                .iter()
                .all(|events| events & libc::EPOLLOUT as u32 == 0),
            "registered for writing: {interest:x?}"
        );
        let sent = ours.send_to(b"heartbeat", theirs.local_addr().unwrap());
        assert_eq!(sent.unwrap(), 9);
        let mut received = [0; 16];
        let (len, from) = theirs.recv_from(&mut received).unwrap();
        assert_eq!(&received[..len], b"heartbeat");
        assert_eq!(from, ours.0.get_ref().local_addr().unwrap());
    }

    #[tokio::test]
    async fn an_oversize_datagram_is_cut_to_one_byte_more_than_accepted() {
        let (receiver, sender) = pair().await;
        sender.send(&[7; 3000]).unwrap();
        sender.send(b"next").unwrap();
        let mut batch = ReceiveBatch::new();
        assert_eq!(batch.recv(&receiver).await.unwrap(), 2);
        let lens: Vec<usize> = batch.datagrams().map(|(_, bytes)| bytes.len()).collect();
        assert_eq!(lens, [SLOT, 4]);
        const { assert!(SLOT > mosh_proto::crypto::RECEIVE_MTU) };
    }
}
