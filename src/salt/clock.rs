//! Time as Salt writes it: job ids (`%Y%m%d%H%M%S%f`, UTC), event stamps, calendar dates
//! from days since the epoch. (A number of seconds becomes a `Duration` through
//! `settings::seconds`, the one bound every layer uses.)

/// A job id as Salt makes them: UTC `%Y%m%d%H%M%S%f` (20 digits).
pub(crate) fn new_jid() -> String {
    let t = UtcNow::read();
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{:06}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.micros
    )
}

/// The current UTC time as Python's `datetime.utcnow().isoformat()` writes it (an
/// event's `_stamp`).
pub(crate) fn utc_stamp() -> String {
    let t = UtcNow::read();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.micros
    )
}

/// The current UTC time in calendar parts.
struct UtcNow {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    micros: u32,
}

impl UtcNow {
    fn read() -> UtcNow {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs() as i64;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        UtcNow {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: (rem % 3600) / 60,
            second: rem % 60,
            micros: now.subsec_micros(),
        }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jid_shape_and_calendar() {
        let jid = new_jid();
        assert_eq!(jid.len(), 20);
        assert!(jid.starts_with("20"));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
