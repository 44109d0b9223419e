//! Numbers and durations as people write them, for the anomaly explanations: "8,920 km",
//! "13,400 km/h", "40 min", "2 h 5 min".

/// `value` rounded to three significant figures (to whole units below 100), with thousands
/// separators: 8918.4 → "8,920", 13377 → "13,400", 42.4 → "42". Negative and non-finite values
/// read as 0; the explanations only ever show distances and speeds.
pub fn number(value: f64) -> String {
    if !value.is_finite() || value <= 0.0 {
        return "0".to_owned();
    }
    let rounded = if value < 100.0 {
        value.round()
    } else {
        let scale = 10_f64.powi(value.log10().floor() as i32 - 2);
        (value / scale).round() * scale
    };
    with_separators(rounded.min(u64::MAX as f64) as u64)
}

fn with_separators(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A duration of `millis` in its two largest units: "30 s", "40 min", "2 h 5 min", "3 d 4 h".
pub fn duration(millis: i64) -> String {
    let seconds = millis.max(0) / 1000;
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    let pair = |large: i64, large_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{large} {large_unit}")
        } else {
            format!("{large} {large_unit} {small} {small_unit}")
        }
    };
    match () {
        () if minutes == 0 => format!("{seconds} s"),
        () if hours == 0 => format!("{minutes} min"),
        () if days == 0 => pair(hours, "h", minutes % 60, "min"),
        () => pair(days, "d", hours % 24, "h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_three_significant_figures_and_separators() {
        assert_eq!(number(8918.4), "8,920");
        assert_eq!(number(13_377.0), "13,400");
        assert_eq!(number(1_040.0), "1,040");
        assert_eq!(number(999.6), "1,000");
        assert_eq!(number(1_234_567.0), "1,230,000");
        assert_eq!(number(455.0), "455");
        assert_eq!(number(42.4), "42");
        assert_eq!(number(0.3), "0");
        assert_eq!(number(-5.0), "0");
        assert_eq!(number(f64::INFINITY), "0");
    }

    #[test]
    fn durations_use_their_two_largest_units() {
        assert_eq!(duration(30_000), "30 s");
        assert_eq!(duration(-5), "0 s");
        assert_eq!(duration(40 * 60_000), "40 min");
        assert_eq!(duration(2 * 3_600_000), "2 h");
        assert_eq!(duration(2 * 3_600_000 + 5 * 60_000 + 59_000), "2 h 5 min");
        assert_eq!(duration(3 * 86_400_000 + 4 * 3_600_000), "3 d 4 h");
    }
}
