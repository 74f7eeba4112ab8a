//! RFC 3339 / ISO 8601 UTC timestamps (`2026-11-22T21:00:00Z`) to and from Unix seconds.
//! Only UTC is accepted: `Z` or `+00:00`.

use crate::ReasonCode;
use bizcred_schemas::Date;

/// Why a timestamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a UTC timestamp of the form YYYY-MM-DDTHH:MM:SSZ")]
pub struct TimeError;

impl TimeError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        ReasonCode::TimeMalformed
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)` to Unix seconds (fraction dropped).
pub fn parse_utc(s: &str) -> Result<i64, TimeError> {
    if s.len() < 20 || s.len() > 40 || !s.is_ascii() {
        return Err(TimeError);
    }
    let (date, rest) = s.split_at(10);
    let date: Date = date.parse().map_err(|_| TimeError)?;
    let b = rest.as_bytes();
    if b[0] != b'T' && b[0] != b't' || b[3] != b':' || b[6] != b':' {
        return Err(TimeError);
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, TimeError> {
        let part = &rest[r];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().map_err(|_| TimeError)
        } else {
            Err(TimeError)
        }
    };
    let (h, m, sec) = (num(1..3)?, num(4..6)?, num(7..9)?);
    if h > 23 || m > 59 || sec > 59 {
        return Err(TimeError);
    }
    let mut tail = &rest[9..];
    if let Some(frac) = tail.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(TimeError);
        }
        tail = &frac[digits..];
    }
    if tail != "Z" && tail != "z" && tail != "+00:00" {
        return Err(TimeError);
    }
    Ok(date.start_unix() + h * 3600 + m * 60 + sec)
}

/// Where a service or library gets the time: the binaries pass a system clock (with its
/// documented test override, `bizcred_cli::clock`), tests pass a fixed or stepped one. Nothing
/// in the libraries reads the wall clock itself.
pub trait Clock: Send + Sync {
    /// Unix seconds, UTC.
    fn now(&self) -> i64;
}

/// Any function of no argument answering Unix seconds is a clock (tests pass a `fn`).
impl<F: Fn() -> i64 + Send + Sync> Clock for F {
    fn now(&self) -> i64 {
        self()
    }
}

/// A clock that always answers the same second (tests, replays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_utc("2000-01-01T00:00:00Z"), Ok(946_684_800));
        assert_eq!(parse_utc("2000-01-01T00:00:00.123+00:00"), Ok(946_684_800));
        for t in [0, 946_684_800, 1_795_378_462, 4_102_444_799] {
            assert_eq!(parse_utc(&format_utc(t)), Ok(t));
        }
        for bad in [
            "2000-01-01T00:00:00",
            "2000-01-01T00:00:00+01:00",
            "2000-01-01 00:00:00Z",
            "2000-02-30T00:00:00Z",
            "2000-01-01T24:00:00Z",
            "2000-01-01T00:00:00.Z",
        ] {
            assert_eq!(parse_utc(bad), Err(TimeError), "{bad}");
        }
    }
}
