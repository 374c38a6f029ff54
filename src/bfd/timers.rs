//! Timer arithmetic of RFC 5880 sections 6.8.2 to 6.8.4 and 6.8.7, as pure functions.
use std::time::Duration;

/// bfd.DesiredMinTxInterval's floor while the session is not Up (section 6.8.3): a
/// session that is down costs one packet a second.
pub const SLOW_TX_INTERVAL: Duration = Duration::from_secs(1);

/// bfd.RemoteMinRxInterval before the first packet (section 6.8.1): one microsecond, so
/// our own interval alone decides until the peer says otherwise.
pub const INITIAL_REMOTE_MIN_RX: Duration = Duration::from_micros(1);

/// The interval between our packets before jitter (section 6.8.7): no faster than we
/// want to send and than the peer wants to receive.
pub fn transmit_interval(desired_min_tx: Duration, remote_min_rx: Duration) -> Duration {
    desired_min_tx.max(remote_min_rx)
}

/// How long the session may go without a packet in asynchronous mode (section 6.8.4):
/// the peer's multiplier times the slower of what it wants to send and we want to get.
pub fn detection_time(
    remote_detect_mult: u8,
    required_min_rx: Duration,
    remote_desired_min_tx: Duration,
) -> Duration {
    required_min_rx.max(remote_desired_min_tx) * u32::from(remote_detect_mult)
}

/// Randomness for the transmit jitter. The socket task passes a PRNG; tests pass
/// constants, so every transmit interval a test sees is known.
pub trait Jitter {
    /// Uniform over the whole `u32` range.
    fn next_u32(&mut self) -> u32;
}

impl<F: FnMut() -> u32> Jitter for F {
    fn next_u32(&mut self) -> u32 {
        self()
    }
}

/// Enough randomness for jitter and discriminators (not for anything secret); seed it
/// from the clock or the process id.
#[derive(Clone, Debug)]
pub struct XorShift32(u32);

impl XorShift32 {
    /// A zero seed would stay zero forever; it is replaced.
    pub fn new(seed: u32) -> XorShift32 {
        XorShift32(if seed == 0 { 0x9e37_79b9 } else { seed })
    }
}

impl Jitter for XorShift32 {
    fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// How soon a packet armed to go after `delay` may go instead: as early as 75% of
/// `interval`, the shortest gap jitter may give (section 6.8.7), never later than
/// `delay`. Sending every open window when any timer or packet wakes the task turns
/// one wake-up per packet into one per burst (10 peers at 100 ms: ~200 wake-ups a
/// second were 1.8% of a core, most of it waking up).
pub fn earliest_transmit(delay: Duration, interval: Duration) -> Duration {
    delay.min(interval * 3 / 4)
}

/// The jittered interval (section 6.8.7): 75 to 100 percent of `interval`, or 75 to 90
/// percent with a multiplier of 1, where one late packet would already be a failure.
pub fn jittered(interval: Duration, detect_mult: u8, sample: u32) -> Duration {
    const FLOOR_PERCENT: u128 = 75;
    let span_percent: u128 = if detect_mult == 1 { 15 } else { 25 };
    let nanos = interval.as_nanos();
    let floor = nanos * FLOOR_PERCENT / 100;
    let span = nanos * span_percent / 100;
    let offset = span * u128::from(sample) / u128::from(u32::MAX);
    let total = floor + offset;
    // `total` is at most `interval`, which came from a Duration.
    Duration::new(
        u64::try_from(total / 1_000_000_000).unwrap_or(u64::MAX),
        u32::try_from(total % 1_000_000_000).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn detection_time_uses_the_slower_side() {
        // FRR's defaults on both sides: 3 x 300 ms.
        assert_eq!(detection_time(3, 300 * MS, 300 * MS), 900 * MS);
        // The peer sends no faster than once a second while it is down.
        assert_eq!(detection_time(3, 300 * MS, SLOW_TX_INTERVAL), 3000 * MS);
        // We accept no faster than 500 ms: the peer's 100 ms does not count.
        assert_eq!(detection_time(5, 500 * MS, 100 * MS), 2500 * MS);
    }

    #[test]
    fn transmit_interval_respects_the_peer() {
        assert_eq!(transmit_interval(300 * MS, INITIAL_REMOTE_MIN_RX), 300 * MS);
        assert_eq!(transmit_interval(300 * MS, 500 * MS), 500 * MS);
        assert_eq!(
            transmit_interval(SLOW_TX_INTERVAL, 300 * MS),
            SLOW_TX_INTERVAL
        );
    }

    #[test]
    fn earliest_transmit_stays_in_the_jitter_range() {
        // A normal arm: anywhere from 75% of the interval.
        assert_eq!(earliest_transmit(90 * MS, 100 * MS), 75 * MS);
        assert_eq!(earliest_transmit(75 * MS, 100 * MS), 75 * MS);
        // An arm shorter than that (the first packet, a rate change) is not moved.
        assert_eq!(earliest_transmit(10 * MS, 100 * MS), 10 * MS);
        assert_eq!(earliest_transmit(Duration::ZERO, 100 * MS), Duration::ZERO);
    }

    #[test]
    fn jitter_ends() {
        assert_eq!(jittered(1000 * MS, 3, 0), 750 * MS);
        assert_eq!(jittered(1000 * MS, 3, u32::MAX), 1000 * MS);
        assert_eq!(jittered(1000 * MS, 1, 0), 750 * MS);
        assert_eq!(jittered(1000 * MS, 1, u32::MAX), 900 * MS);
        assert_eq!(jittered(Duration::ZERO, 3, u32::MAX), Duration::ZERO);
    }

    #[test]
    fn xorshift_never_sticks_at_zero() {
        let mut rng = XorShift32::new(0);
        let first = rng.next_u32();
        assert_ne!(first, 0);
        assert_ne!(rng.next_u32(), first);
    }

    proptest! {
        #[test]
        fn jitter_bounds(micros in 0u64..=u64::from(u32::MAX), mult in 1u8..=255, sample: u32) {
            let interval = Duration::from_micros(micros);
            let got = jittered(interval, mult, sample);
            prop_assert!(got * 4 >= interval * 3, "{got:?} below 75% of {interval:?}");
            if mult == 1 {
                prop_assert!(got * 10 <= interval * 9, "{got:?} above 90% of {interval:?}");
            } else {
                prop_assert!(got <= interval, "{got:?} above {interval:?}");
            }
        }
    }
}
