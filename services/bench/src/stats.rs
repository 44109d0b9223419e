//! Latency samples and their summary.

use std::fmt;
use std::time::Duration;

/// The summary of a set of latency samples (nearest-rank percentiles).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let total: Duration = sorted.iter().sum();
        let count = sorted.len();
        Some(Self {
            count,
            p50: percentile(&sorted, 50),
            p99: percentile(&sorted, 99),
            max: sorted[count - 1],
            mean: total / u32::try_from(count).unwrap_or(u32::MAX),
        })
    }
}

/// Nearest rank: the smallest sample with at least `percent`% of the samples at or below it.
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// A duration as milliseconds with three decimals ("0.184 ms"), the unit every latency is shown in.
pub struct Ms(pub Duration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:.3} ms", self.0.as_secs_f64() * 1000.0);
        f.pad(&text)
    }
}

/// A duration as seconds with two decimals ("12.34 s"), for setup steps and end-all.
pub struct Secs(pub Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:.2} s", self.0.as_secs_f64());
        f.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&value| Duration::from_millis(value)).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples = ms(&(1..=100).rev().collect::<Vec<_>>());
        let summary = Summary::of(&samples).unwrap();
        assert_eq!(summary.p50, Duration::from_millis(50));
        assert_eq!(summary.p99, Duration::from_millis(99));
        assert_eq!(summary.max, Duration::from_millis(100));
        assert_eq!(summary.count, 100);
    }

    #[test]
    fn a_single_sample_is_every_percentile_and_none_is_no_summary() {
        let seven = Duration::from_millis(7);
        let summary = Summary::of(&[seven]).unwrap();
        assert_eq!(
            (summary.p50, summary.p99, summary.max, summary.mean),
            (seven, seven, seven, seven)
        );
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn durations_print_in_their_units() {
        assert_eq!(format!("{:>10}", Ms(Duration::from_micros(1234))), "  1.234 ms");
        assert_eq!(Secs(Duration::from_millis(12_345)).to_string(), "12.35 s");
    }
}
