//! Telling the service manager how the daemon is doing (systemd's readiness
//! protocol, through the `sd-notify` crate), without ever making the daemon
//! wait for it.
//!
//! The crate sends each message with a blocking write to `$NOTIFY_SOCKET`,
//! which stalls for as long as nobody reads the socket (a busy or broken
//! supervisor, a test that only listens for some messages). So the messages
//! go to one thread of their own through a bounded queue: a full queue drops
//! the message (a newer `STATUS=` follows soon), and only `STOPPING=1` waits,
//! briefly, until it has been handed over.

use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use sd_notify::NotifyState;

/// Messages waiting for the notifier thread at most.
const QUEUE: usize = 64;
/// How long `STOPPING=1` may wait to be handed over.
const STOPPING_WAIT: Duration = Duration::from_millis(500);

/// One message for the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `READY=1`.
    Ready,
    /// `RELOADING=1`.
    Reloading,
    /// `STOPPING=1`.
    Stopping,
    /// `WATCHDOG=1`.
    Watchdog,
    /// `STATUS=…`.
    Status(String),
}

type Message = (Notice, Option<SyncSender<()>>);

fn queue() -> Option<&'static SyncSender<Message>> {
    static QUEUE_SENDER: OnceLock<Option<SyncSender<Message>>> = OnceLock::new();
    QUEUE_SENDER
        .get_or_init(|| {
            let (sender, receiver) = mpsc::sync_channel(QUEUE);
            std::thread::Builder::new()
                .name("sd-notify".into())
                .spawn(move || deliver(receiver))
                .ok()
                .map(|_| sender)
        })
        .as_ref()
}

fn deliver(receiver: Receiver<Message>) {
    for (notice, done) in receiver {
        let status;
        let state = match &notice {
            Notice::Ready => NotifyState::Ready,
            Notice::Reloading => NotifyState::Reloading,
            Notice::Stopping => NotifyState::Stopping,
            Notice::Watchdog => NotifyState::Watchdog,
            Notice::Status(text) => {
                status = text.clone();
                NotifyState::Status(&status)
            }
        };
        if let Err(error) = sd_notify::notify(std::slice::from_ref(&state)) {
            tracing::warn!("sd_notify {state}: {error}");
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
}

/// Queues `notice` for the service manager (nothing happens without
/// `$NOTIFY_SOCKET`); never blocks, except `STOPPING=1`, for at most half a
/// second.
pub fn notify(notice: Notice) {
    let Some(queue) = queue() else {
        return;
    };
    let stopping = notice == Notice::Stopping;
    let (done, handed_over) = if stopping {
        let (done, handed_over) = mpsc::sync_channel(1);
        (Some(done), Some(handed_over))
    } else {
        (None, None)
    };
    match queue.try_send((notice, done)) {
        Ok(()) => {
            if let Some(handed_over) = handed_over {
                let _ = handed_over.recv_timeout(STOPPING_WAIT);
            }
        }
        Err(TrySendError::Full((notice, _))) => {
            tracing::debug!("service manager not reading; dropped {notice:?}");
        }
        Err(TrySendError::Disconnected(_)) => {}
    }
}
