//! The session loop's alarm: one `timerfd(2)` per session, armed for the
//! loop's next wake and awaited through the reactor.
//!
//! A tokio sleep a second or more away sits in a coarse level of tokio's
//! timer wheel, and the runtime wakes once when that level's slot comes up
//! and again at the deadline. An idle session sleeps about three seconds
//! between heartbeats, so half of its wake-ups did nothing; among a
//! thousand sessions each wake-up finds a cold cache. The kernel wakes a
//! timerfd once, at its deadline.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::read_registered::{OwnsDescriptor, watch_readable};

/// The timer, as the reactor registers it: it owns the timerfd (an
/// `OwnedFd` inside `TimerFd`) and its field is never replaced.
#[derive(Debug)]
struct Timer(TimerFd);

impl OwnsDescriptor for Timer {}

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A one-shot alarm on the monotonic clock (the clock of [`Instant`]).
#[derive(Debug)]
pub struct Alarm {
    timer: AsyncFd<Timer>,
    /// The deadline the timer is set for, while it is.
    armed: Option<Instant>,
}

impl Alarm {
    /// A disarmed alarm; it must be made inside a tokio runtime.
    pub fn new() -> io::Result<Self> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        let timer = watch_readable(Timer(timer))?;
        Ok(Self { timer, armed: None })
    }

    /// Returns once `deadline` has passed. Dropping the future early keeps
    /// the alarm set; asking again for the same deadline then waits on, and
    /// for another one re-arms it (a deadline already past disarms it, so
    /// the old one wakes nobody).
    pub async fn until(&mut self, deadline: Instant) -> io::Result<()> {
        if self.armed != Some(deadline) {
            let now = Instant::now();
            if deadline <= now {
                if self.armed.take().is_some() {
                    self.timer.get_ref().0.unset().map_err(io::Error::from)?;
                }
                // Like a tokio sleep that is due, this counts against the
                // task's budget, so a loop whose wake is always due still
                // lets the reactor run (and its sockets be read) now and
                // then.
                tokio::task::consume_budget().await;
                return Ok(());
            }
            // A zero expiration would disarm the timer; a deadline after
            // `now` is at least a nanosecond away.
            let wait = (deadline - now).max(Duration::from_nanos(1));
            self.timer
                .get_ref()
                .0
                .set(
                    Expiration::OneShot(TimeSpec::from_duration(wait)),
                    TimerSetTimeFlags::empty(),
                )
                .map_err(io::Error::from)?;
            self.armed = Some(deadline);
        }
        loop {
            let mut ready = self.timer.readable().await?;
            // Setting the timer cleared any expiry it had counted, so a
            // readiness left from an earlier deadline reads as not yet.
            match ready.get_inner().0.wait() {
                Ok(()) => {
                    self.armed = None;
                    return Ok(());
                }
                Err(Errno::EAGAIN) => ready.clear_ready(),
                Err(error) => return Err(error.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::runtime;

    #[test]
    fn it_rings_at_its_deadline_not_before() {
        runtime().block_on(async {
            let mut alarm = Alarm::new().unwrap();
            let began = Instant::now();
            alarm
                .until(began + Duration::from_millis(30))
                .await
                .unwrap();
            assert!(began.elapsed() >= Duration::from_millis(30));
            let past = Instant::now() - Duration::from_millis(1);
            alarm.until(past).await.unwrap();
        });
    }

    #[test]
    fn a_loop_whose_deadline_is_always_past_still_lets_other_tasks_run() {
        runtime().block_on(async {
            let mut alarm = Alarm::new().unwrap();
            let (ran, mut other_ran) = tokio::sync::oneshot::channel();
            tokio::spawn(async move { ran.send(()) });
            let past = Instant::now();
            let mut turns = 0;
            while other_ran.try_recv().is_err() {
                alarm.until(past).await.unwrap();
                turns += 1;
                assert!(turns < 10_000, "the alarm never yielded");
            }
        });
    }

    #[test]
    fn a_dropped_wait_keeps_its_deadline_and_a_new_deadline_replaces_it() {
        runtime().block_on(async {
            let mut alarm = Alarm::new().unwrap();
            let began = Instant::now();
            let first = began + Duration::from_millis(20);
            let cut_short = tokio::time::timeout(Duration::from_millis(5), alarm.until(first));
            assert!(cut_short.await.is_err(), "rang before its deadline");
            alarm.until(first).await.unwrap();
            assert!(began.elapsed() >= Duration::from_millis(20));

            // Expired while nobody waited, then moved later: the old expiry
            // must not ring the new deadline early.
            let soon = Instant::now() + Duration::from_millis(5);
            let cut_short = tokio::time::timeout(Duration::from_millis(1), alarm.until(soon));
            assert!(cut_short.await.is_err());
            std::thread::sleep(Duration::from_millis(10));
            let later = Instant::now() + Duration::from_millis(40);
            alarm.until(later).await.unwrap();
            assert!(Instant::now() >= later);
        });
    }

    #[test]
    fn a_deadline_already_past_disarms_the_one_set_before() {
        runtime().block_on(async {
            let mut alarm = Alarm::new().unwrap();
            let set = Instant::now() + Duration::from_millis(20);
            let cut_short = tokio::time::timeout(Duration::from_millis(1), alarm.until(set));
            assert!(cut_short.await.is_err());
            alarm
                .until(Instant::now() - Duration::from_millis(1))
                .await
                .unwrap();
            std::thread::sleep(Duration::from_millis(40));
            assert_eq!(
                alarm.timer.get_ref().0.wait(),
                Err(Errno::EAGAIN),
                "the timer set for the earlier deadline still expired"
            );
        });
    }
}
