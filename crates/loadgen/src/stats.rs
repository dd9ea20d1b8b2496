//! Latency summary: percentiles over the recorded per-request latencies (microseconds).
//!
//! A sorted `Vec<u32>` is exact and small enough here: a few seconds at tens of thousands of
//! requests per second is a few hundred thousand samples.

/// Percentiles and mean of a set of latencies, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Summary {
    /// Median.
    pub(crate) p50: u32,
    /// 90th percentile.
    pub(crate) p90: u32,
    /// 99th percentile.
    pub(crate) p99: u32,
    /// 99.9th percentile.
    pub(crate) p999: u32,
    /// Largest.
    pub(crate) max: u32,
    /// Arithmetic mean (rounded down).
    pub(crate) mean: u32,
}

/// Sorts `samples` and summarises them; all zero when there are none.
pub(crate) fn summarize(samples: &mut [u32]) -> Summary {
    if samples.is_empty() {
        return Summary::default();
    }
    samples.sort_unstable();
    let sum: u64 = samples.iter().map(|&s| u64::from(s)).sum();
    let len = samples.len() as u64;
    Summary {
        p50: percentile(samples, 50.0),
        p90: percentile(samples, 90.0),
        p99: percentile(samples, 99.0),
        p999: percentile(samples, 99.9),
        max: samples[samples.len() - 1],
        mean: u32::try_from(sum / len).unwrap_or(u32::MAX),
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    let n = sorted.len();
    // nearest rank: ceil(p/100 * n), 1-based
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<u32> = (1..=100).rev().collect();
        let s = summarize(&mut v);
        assert_eq!((s.p50, s.p90, s.p99, s.p999, s.max), (50, 90, 99, 100, 100));
        assert_eq!(s.mean, 50);
        assert_eq!(summarize(&mut []), Summary::default());
        let mut one = [7];
        assert_eq!(summarize(&mut one).p50, 7);
        assert_eq!(summarize(&mut one).p999, 7);
    }
}
