//! Round-trip time estimation from echoed timestamps (RFC 6298 smoothing with
//! mosh's bounds), and the frame interval and retransmission timeout that
//! follow from it.

use std::time::Duration;

/// Samples at or above this many milliseconds are discarded as absurd.
const MAX_SAMPLE_MS: f64 = 5000.0;
/// Lower clamp of the retransmission timeout.
pub const MIN_RTO: Duration = Duration::from_millis(50);
/// Upper clamp of the retransmission timeout.
pub const MAX_RTO: Duration = Duration::from_millis(1000);
/// Fastest frame interval.
pub const SEND_INTERVAL_MIN: Duration = Duration::from_millis(20);
/// Slowest frame interval.
pub const SEND_INTERVAL_MAX: Duration = Duration::from_millis(250);

/// Smoothed RTT and its variance, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RttEstimator {
    srtt: f64,
    rttvar: f64,
    sampled: bool,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self {
            srtt: 1000.0,
            rttvar: 500.0,
            sampled: false,
        }
    }
}

impl RttEstimator {
    /// Folds in one sample of `millis`; absurd samples are ignored.
    pub fn sample(&mut self, millis: u16) {
        let r = f64::from(millis);
        if r >= MAX_SAMPLE_MS {
            return;
        }
        if self.sampled {
            self.rttvar = 0.75 * self.rttvar + 0.25 * (self.srtt - r).abs();
            self.srtt = 0.875 * self.srtt + 0.125 * r;
        } else {
            self.srtt = r;
            self.rttvar = r / 2.0;
            self.sampled = true;
        }
    }

    /// Smoothed round-trip time.
    pub fn srtt(&self) -> Duration {
        Duration::from_secs_f64(self.srtt / 1000.0)
    }

    /// Retransmission timeout: `ceil(SRTT + 4·RTTVAR)` clamped to 50..=1000 ms.
    pub fn rto(&self) -> Duration {
        let millis = (self.srtt + 4.0 * self.rttvar).ceil() as u64;
        Duration::from_millis(millis).clamp(MIN_RTO, MAX_RTO)
    }

    /// Frame interval: `ceil(SRTT / 2)` clamped to 20..=250 ms, about two
    /// frames per round trip.
    pub fn send_interval(&self) -> Duration {
        let millis = (self.srtt / 2.0).ceil() as u64;
        Duration::from_millis(millis).clamp(SEND_INTERVAL_MIN, SEND_INTERVAL_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_conservative() {
        let rtt = RttEstimator::default();
        assert_eq!(rtt.rto(), MAX_RTO);
        assert_eq!(rtt.send_interval(), SEND_INTERVAL_MAX);
    }

    #[test]
    fn first_sample_sets_srtt_then_smooths() {
        let mut rtt = RttEstimator::default();
        rtt.sample(100);
        assert_eq!(rtt.srtt(), Duration::from_millis(100));
        assert_eq!(rtt.rto(), Duration::from_millis(300));
        assert_eq!(rtt.send_interval(), Duration::from_millis(50));
        rtt.sample(200);
        assert_eq!(rtt.srtt(), Duration::from_secs_f64(0.1125));
    }

    #[test]
    fn bounds_and_absurd_samples() {
        let mut rtt = RttEstimator::default();
        rtt.sample(6000);
        assert_eq!(rtt.srtt(), Duration::from_secs(1));
        rtt.sample(1);
        assert_eq!(rtt.rto(), MIN_RTO);
        assert_eq!(rtt.send_interval(), SEND_INTERVAL_MIN);
    }
}
