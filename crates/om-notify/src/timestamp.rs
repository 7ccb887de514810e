//! Notification timestamps in Python's `str(datetime.utcnow())` format.

use chrono::{Datelike, NaiveDateTime, Timelike, Utc};
use std::fmt::Write;

/// Formats `dt` as Python's `str(datetime)` does for a naive datetime:
/// `YYYY-MM-DD HH:MM:SS.ffffff`, with the `.ffffff` part left out when the
/// microseconds are zero. Sub-microsecond precision is truncated, as Python
/// datetimes have none.
///
/// ```
/// use chrono::NaiveDate;
/// let dt = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_micro_opt(15, 4, 5, 6).unwrap();
/// assert_eq!(om_notify::format_timestamp(dt), "2026-11-23 15:04:05.000006");
/// let whole = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap().and_hms_opt(3, 4, 5).unwrap();
/// assert_eq!(om_notify::format_timestamp(whole), "2026-01-02 03:04:05");
/// ```
pub fn format_timestamp(dt: NaiveDateTime) -> String {
    let mut out = String::with_capacity(26);
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    // chrono keeps a leap second as nanosecond >= 1e9; Python has no leap
    // seconds, so fold it into the last microsecond of the second.
    let micros = (dt.nanosecond() / 1_000).min(999_999);
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    out
}

/// The current UTC time, formatted by [`format_timestamp`].
pub fn utcnow_timestamp() -> String {
    format_timestamp(Utc::now().naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn truncates_nanoseconds_and_pads() {
        let dt = NaiveDate::from_ymd_opt(999, 3, 4)
            .and_then(|d| d.and_hms_nano_opt(0, 0, 9, 123_456_789))
            .expect("valid date");
        assert_eq!(format_timestamp(dt), "0999-03-04 00:00:09.123456");
        let dt = NaiveDate::from_ymd_opt(2024, 1, 2)
            .and_then(|d| d.and_hms_nano_opt(3, 4, 5, 999))
            .expect("valid date");
        // Under one microsecond: Python would print no fraction.
        assert_eq!(format_timestamp(dt), "2024-01-02 03:04:05");
    }

    #[test]
    fn now_has_the_right_shape() {
        let s = utcnow_timestamp();
        assert!(s.len() == 19 || s.len() == 26, "{s}");
        assert_eq!(&s[4..5], "-");
        assert_eq!(&s[10..11], " ");
    }
}
