//! Small conversions between protobuf well-known types and `chrono`/`std` types.

use prost_types::Timestamp;

/// Converts epoch milliseconds to a protobuf timestamp.
pub fn timestamp_from_millis(millis: i64) -> Timestamp {
    Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Converts a protobuf timestamp to epoch milliseconds (sub-millisecond precision is dropped).
/// Returns `None` when the timestamp is outside the range protobuf allows (years 1–9999).
pub fn millis_from_timestamp(ts: &Timestamp) -> Option<i64> {
    // Bounds of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
    const MIN_SECONDS: i64 = -62_135_596_800;
    const MAX_SECONDS: i64 = 253_402_300_799;
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds) || !(0..1_000_000_000).contains(&ts.nanos) {
        return None;
    }
    Some(ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip_including_negative() {
        for millis in [0, 1, 999, 1_700_000_000_123, -1, -1001] {
            assert_eq!(millis_from_timestamp(&timestamp_from_millis(millis)), Some(millis));
        }
    }

    #[test]
    fn out_of_range_timestamps_are_refused() {
        assert_eq!(
            millis_from_timestamp(&Timestamp {
                seconds: i64::MAX,
                nanos: 0
            }),
            None
        );
        assert_eq!(millis_from_timestamp(&Timestamp { seconds: 0, nanos: -1 }), None);
        assert_eq!(
            millis_from_timestamp(&Timestamp {
                seconds: 0,
                nanos: 1_000_000_000
            }),
            None
        );
    }
}
