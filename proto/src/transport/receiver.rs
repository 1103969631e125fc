//! The receiving half of SSP: the peer's states we hold, each a possible base
//! for the peer's next diff, kept sorted by number and bounded in count.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::state::State;

/// Above this many held states, new states are refused for a while.
pub const RECEIVED_STATE_CAP: usize = 1024;
/// How long new states are refused once the cap is exceeded.
const QUENCH: Duration = Duration::from_secs(15);

struct ReceivedState<S> {
    num: u64,
    state: S,
}

/// Where a new state went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// It is the newest state.
    Newest,
    /// It arrived after a newer one and was filed in order.
    Earlier,
}

/// The peer's states we hold.
pub(crate) struct Receiver<S> {
    received: VecDeque<ReceivedState<S>>,
    quench_until: Option<Instant>,
}

impl<S: State> Receiver<S> {
    pub(crate) fn new(initial: S) -> Self {
        Self {
            received: VecDeque::from([ReceivedState {
                num: 0,
                state: initial,
            }]),
            quench_until: None,
        }
    }

    pub(crate) fn holds(&self, num: u64) -> bool {
        self.received.iter().any(|r| r.num == num)
    }

    pub(crate) fn get(&self, num: u64) -> Option<&S> {
        self.received
            .iter()
            .find(|r| r.num == num)
            .map(|r| &r.state)
    }

    /// Whether a new state may be taken now; past the cap this opens only
    /// once every [`QUENCH`].
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        if self.received.len() <= RECEIVED_STATE_CAP {
            return true;
        }
        if self.quench_until.is_some_and(|until| now < until) {
            return false;
        }
        self.quench_until = Some(now + QUENCH);
        true
    }

    /// Forgets states numbered below `num`; the newest is always kept.
    pub(crate) fn throw_away_below(&mut self, num: u64) {
        while self.received.len() > 1 && self.received.front().is_some_and(|r| r.num < num) {
            self.received.pop_front();
        }
    }

    pub(crate) fn insert(&mut self, num: u64, state: S) -> Placement {
        let entry = ReceivedState { num, state };
        match self.received.iter().position(|r| r.num > num) {
            Some(index) => {
                self.received.insert(index, entry);
                Placement::Earlier
            }
            None => {
                self.received.push_back(entry);
                Placement::Newest
            }
        }
    }

    pub(crate) fn latest(&self) -> (u64, &S) {
        let newest = self.received.back().expect("never empty");
        (newest.num, &newest.state)
    }

    /// The newest state's diff from `delivered`, after which every held
    /// state (and `delivered`) forgets what the oldest held state covers.
    pub(crate) fn take_diff(&mut self, delivered: &mut S) -> Vec<u8> {
        let newest = &self.received.back().expect("never empty").state;
        let diff = newest.diff_from(delivered);
        let oldest = self.received.front().expect("never empty").state.clone();
        for held in &mut self.received {
            held.state.subtract(&oldest);
        }
        *delivered = self.received.back().expect("never empty").state.clone();
        diff
    }

    pub(crate) fn len(&self) -> usize {
        self.received.len()
    }
}
