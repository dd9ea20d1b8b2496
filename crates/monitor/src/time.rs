//! Timestamps: microseconds since the Unix epoch, printed as RFC 3339 UTC (no clock is read).

/// `ts_us` as `2026-12-02T16:09:28.123456Z`.
pub fn rfc3339(ts_us: u64) -> String {
    let secs = ts_us / 1_000_000;
    let micros = ts_us % 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn epoch_and_a_known_day() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000000Z");
        // 2024-02-29 12:34:56.5 UTC = 1709210096.5
        assert_eq!(
            super::rfc3339(1_709_210_096_500_000),
            "2024-02-29T12:34:56.500000Z"
        );
    }
}
