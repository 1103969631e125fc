//! The sending half of SSP: the history of states sent, which of them the
//! peer is assumed to hold, and the timers that decide when the next
//! instruction (a diff, a retransmission or an empty ack) goes out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::messages::{Instruction, PROTOCOL_VERSION};
use crate::rtt::RttEstimator;
use crate::state::State;

/// Idle heartbeat: an empty ack at least this often.
pub const ACK_INTERVAL: Duration = Duration::from_millis(3000);
/// Delay of the ack for received data; also added to the RTO.
pub const ACK_DELAY: Duration = Duration::from_millis(100);
/// A server answers a client's heartbeat with its own at once when it has
/// sent nothing for this long; otherwise it puts its own off (see
/// [`HEARTBEAT_ANSWER_SLACK`]) so that the next one can be answered.
const HEARTBEAT_ANSWER_AFTER: Duration = Duration::from_millis(1000);
/// How much longer than [`ACK_INTERVAL`] a server waits for the client's
/// next heartbeat after answering or putting off its own: the client's,
/// due one interval after the last, arrives first, so both travel on one
/// wake-up of the server instead of two.
pub const HEARTBEAT_ANSWER_SLACK: Duration = Duration::from_millis(500);
/// Fast retransmission stops when the peer has been silent this long.
pub const ACTIVE_RETRY_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Shutdown gives up after this many shutdown instructions.
pub const SHUTDOWN_RETRIES: u32 = 16;
/// Most states kept in the send history; it is thinned in the middle.
const SENT_STATE_CAP: usize = 32;
/// The state number that means "shutting down".
pub const SHUTDOWN_NUM: u64 = u64::MAX;
/// Most bytes of chaff per instruction.
const MAX_CHAFF: usize = 16;

struct SentState<S> {
    num: u64,
    sent_at: Instant,
    state: S,
}

struct Shutdown {
    started: Instant,
    tries: u32,
}

/// Sender of one side's state.
pub(crate) struct Sender<S> {
    current: S,
    sent: VecDeque<SentState<S>>,
    assumed_num: u64,
    ack_num: u64,
    pending_data_ack: bool,
    next_ack_time: Instant,
    next_send_time: Option<Instant>,
    mindelay_clock: Option<Instant>,
    last_heard: Option<Instant>,
    /// A server: it answers the client's heartbeats.
    answers_heartbeats: bool,
    /// The instruction due now answers a heartbeat of the peer.
    answering_heartbeat: bool,
    send_mindelay: Duration,
    shutdown: Option<Shutdown>,
    last_ack_sent: Option<u64>,
    rationalized_through: Option<u64>,
    chaff: SplitMix64,
}

impl<S: State> Sender<S> {
    pub(crate) fn new(
        initial: S,
        now: Instant,
        send_mindelay: Duration,
        answers_heartbeats: bool,
        chaff_seed: u64,
    ) -> Self {
        Self {
            current: initial.clone(),
            sent: VecDeque::from([SentState {
                num: 0,
                sent_at: now,
                state: initial,
            }]),
            assumed_num: 0,
            ack_num: 0,
            pending_data_ack: false,
            next_ack_time: now,
            next_send_time: Some(now),
            mindelay_clock: None,
            last_heard: None,
            answers_heartbeats,
            answering_heartbeat: false,
            send_mindelay,
            shutdown: None,
            last_ack_sent: None,
            rationalized_through: None,
            chaff: SplitMix64(chaff_seed),
        }
    }

    pub(crate) fn current(&self) -> &S {
        &self.current
    }

    pub(crate) fn current_mut(&mut self) -> &mut S {
        &mut self.current
    }

    fn front(&self) -> &SentState<S> {
        self.sent.front().expect("send history is never empty")
    }

    /// The newest state the peer is known to hold (its acknowledgement).
    pub(crate) fn acknowledged(&self) -> &S {
        &self.front().state
    }

    fn back(&self) -> &SentState<S> {
        self.sent.back().expect("send history is never empty")
    }

    fn assumed_index(&self) -> usize {
        self.sent
            .iter()
            .position(|s| s.num == self.assumed_num)
            .unwrap_or(0)
    }

    /// Optimistically assume that states sent less than an RTO (plus the
    /// peer's ack delay) ago have arrived.
    fn update_assumed(&mut self, now: Instant, rto: Duration) {
        let mut assumed = 0;
        for (index, sent) in self.sent.iter().enumerate().skip(1) {
            if now.saturating_duration_since(sent.sent_at) < rto + ACK_DELAY {
                assumed = index;
            } else {
                break;
            }
        }
        self.assumed_num = self.sent[assumed].num;
    }

    /// Drops from every kept state what the acknowledged state already
    /// covers (only growing states such as the user stream do anything).
    /// Once done for an acknowledged state, repeating it changes nothing
    /// (that state is then empty), so it runs once per acknowledgement.
    fn rationalize(&mut self) {
        let front_num = self.front().num;
        if self.rationalized_through == Some(front_num) {
            return;
        }
        self.rationalized_through = Some(front_num);
        let acked = self.front().state.clone();
        self.current.subtract(&acked);
        for sent in &mut self.sent {
            sent.state.subtract(&acked);
        }
    }

    fn recently_heard(&self, now: Instant) -> bool {
        self.last_heard
            .is_some_and(|heard| now < heard + ACTIVE_RETRY_TIMEOUT)
    }

    pub(crate) fn calculate_timers(&mut self, now: Instant, rtt: &RttEstimator) {
        self.update_assumed(now, rtt.rto());
        self.rationalize();
        if self.pending_data_ack && self.next_ack_time > now + ACK_DELAY {
            self.next_ack_time = now + ACK_DELAY;
        }
        let interval = rtt.send_interval();
        let back_sent_at = self.back().sent_at;
        let assumed = &self.sent[self.assumed_index()].state;
        self.next_send_time = if self.current != self.back().state {
            let clock = *self.mindelay_clock.get_or_insert(now);
            Some((clock + self.send_mindelay).max(back_sent_at + interval))
        } else if self.current != *assumed && self.recently_heard(now) {
            let due = back_sent_at + interval;
            Some(match self.mindelay_clock {
                Some(clock) => due.max(clock + self.send_mindelay),
                None => due,
            })
        } else if self.current != self.front().state && self.recently_heard(now) {
            Some(back_sent_at + rtt.rto() + ACK_DELAY)
        } else {
            None
        };
        if self.shutdown.is_some() || self.ack_num == SHUTDOWN_NUM {
            self.next_ack_time = back_sent_at + interval;
        }
    }

    /// When the sender next wants to run, as of the last timer calculation.
    pub(crate) fn next_wakeup(&self) -> Instant {
        match self.next_send_time {
            Some(send) => send.min(self.next_ack_time),
            None => self.next_ack_time,
        }
    }

    /// Produces the instruction due at `now`, if any.
    pub(crate) fn tick(&mut self, now: Instant, rtt: &RttEstimator) -> Option<Instruction> {
        self.calculate_timers(now, rtt);
        let send_due = self.next_send_time.is_some_and(|due| now >= due);
        let ack_due = now >= self.next_ack_time;
        if !send_due && !ack_due {
            return None;
        }
        let mut assumed = self.assumed_index();
        let mut diff = self.current.diff_from(&self.sent[assumed].state);
        if assumed != 0 {
            // Diffing from the acknowledged state costs little more and also
            // repairs the loss of anything sent since.
            let from_acked = self.current.diff_from(&self.front().state);
            if from_acked.len() <= diff.len()
                || (from_acked.len() < 1000 && from_acked.len() - diff.len() < 100)
            {
                assumed = 0;
                diff = from_acked;
            }
        }
        self.assumed_num = self.sent[assumed].num;
        if diff.is_empty() {
            let mut instruction = None;
            if ack_due {
                instruction = Some(self.send_empty_ack(now));
                self.mindelay_clock = None;
            }
            if send_due {
                self.next_send_time = None;
                self.mindelay_clock = None;
            }
            instruction
        } else {
            self.mindelay_clock = None;
            Some(self.send_data(now, diff))
        }
    }

    fn send_data(&mut self, now: Instant, diff: Vec<u8>) -> Instruction {
        let back_num = self.back().num;
        let new_num = if self.shutdown.is_some() {
            SHUTDOWN_NUM
        } else if self.current == self.back().state {
            back_num
        } else {
            back_num.saturating_add(1)
        };
        let old_num = self.assumed_num;
        if new_num == back_num {
            self.sent.back_mut().expect("non-empty").sent_at = now;
        } else {
            self.push_sent(now, new_num);
        }
        self.assumed_num = new_num;
        self.next_ack_time = now + self.heartbeat_interval();
        self.next_send_time = None;
        self.instruction(old_num, new_num, diff)
    }

    fn send_empty_ack(&mut self, now: Instant) -> Instruction {
        let new_num = if self.shutdown.is_some() {
            SHUTDOWN_NUM
        } else {
            self.back().num.saturating_add(1)
        };
        let old_num = self.assumed_num;
        self.push_sent(now, new_num);
        self.next_ack_time = now + self.heartbeat_interval();
        self.next_send_time = None;
        self.instruction(old_num, new_num, Vec::new())
    }

    /// How long after this send the next heartbeat is due.
    fn heartbeat_interval(&self) -> Duration {
        if self.answering_heartbeat {
            ACK_INTERVAL + HEARTBEAT_ANSWER_SLACK
        } else {
            ACK_INTERVAL
        }
    }

    fn push_sent(&mut self, now: Instant, num: u64) {
        self.sent.push_back(SentState {
            num,
            sent_at: now,
            state: self.current.clone(),
        });
        if self.sent.len() > SENT_STATE_CAP {
            self.sent.remove(self.sent.len() - 16);
        }
    }

    fn instruction(&mut self, old_num: u64, new_num: u64, diff: Vec<u8>) -> Instruction {
        if new_num == SHUTDOWN_NUM
            && let Some(shutdown) = &mut self.shutdown
        {
            shutdown.tries += 1;
        }
        self.pending_data_ack = false;
        self.answering_heartbeat = false;
        self.last_ack_sent = Some(self.ack_num);
        let chaff_len = (self.chaff.next() % (MAX_CHAFF as u64 + 1)) as usize;
        let chaff = (0..chaff_len).map(|_| self.chaff.next() as u8).collect();
        Instruction {
            protocol_version: Some(PROTOCOL_VERSION),
            old_num: Some(old_num),
            new_num: Some(new_num),
            ack_num: Some(self.ack_num),
            throwaway_num: Some(self.front().num),
            diff: Some(diff),
            chaff: Some(chaff),
            extensions: None,
        }
    }

    /// The peer holds our state `ack_num`: forget everything older.
    pub(crate) fn process_ack(&mut self, ack_num: u64) {
        if self.sent.iter().any(|s| s.num == ack_num) {
            while self.front().num < ack_num {
                self.sent.pop_front();
            }
        }
    }

    /// We now hold the peer's state `num` in order.
    pub(crate) fn set_ack_num(&mut self, num: u64, now: Instant) {
        self.ack_num = num;
        self.last_heard = Some(now);
    }

    /// The peer's newest state came with an empty diff: a heartbeat, or the
    /// acknowledgement of our data. A server answers it at `now` if it has
    /// sent nothing for [`HEARTBEAT_ANSWER_AFTER`], and otherwise puts its own
    /// heartbeat off until just after the peer's next one is due; a client
    /// keeps its own timer.
    pub(crate) fn heard_heartbeat(&mut self, now: Instant) {
        if !self.answers_heartbeats || self.shutdown.is_some() {
            return;
        }
        if now >= self.back().sent_at + HEARTBEAT_ANSWER_AFTER {
            self.answering_heartbeat = true;
            self.next_ack_time = self.next_ack_time.min(now);
        } else {
            self.next_ack_time = self
                .next_ack_time
                .max(now + ACK_INTERVAL + HEARTBEAT_ANSWER_SLACK);
        }
    }

    /// The peer sent data: acknowledge within [`ACK_DELAY`].
    pub(crate) fn set_data_ack(&mut self) {
        self.pending_data_ack = true;
    }

    pub(crate) fn start_shutdown(&mut self, now: Instant) {
        if self.shutdown.is_none() {
            self.shutdown = Some(Shutdown {
                started: now,
                tries: 0,
            });
        }
    }

    pub(crate) fn shutdown_in_progress(&self) -> bool {
        self.shutdown.is_some()
    }

    pub(crate) fn shutdown_acknowledged(&self) -> bool {
        self.front().num == SHUTDOWN_NUM
    }

    pub(crate) fn shutdown_timed_out(&self, now: Instant) -> bool {
        self.shutdown.as_ref().is_some_and(|shutdown| {
            shutdown.tries >= SHUTDOWN_RETRIES
                || now.saturating_duration_since(shutdown.started) >= ACTIVE_RETRY_TIMEOUT
        })
    }

    pub(crate) fn counterparty_shutdown_ack_sent(&self) -> bool {
        self.last_ack_sent == Some(SHUTDOWN_NUM)
    }

    /// When the newest state the peer has acknowledged was sent.
    pub(crate) fn last_acked_send_time(&self) -> Instant {
        self.front().sent_at
    }

    /// Number of the newest state sent.
    pub(crate) fn last_sent_num(&self) -> u64 {
        self.back().num
    }
}

/// A small PRNG for chaff lengths and bytes; chaff only blurs lengths, so it
/// needs no cryptographic strength.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
