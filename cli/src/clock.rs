//! The wall clock of the binaries, with one documented override for tests.
//!
//! `BIZCRED_CLOCK_OFFSET_SECONDS` (a signed integer, default 0) is added to the system time by
//! every bizcred binary. End-to-end tests use it to let time pass (a request expiring, a
//! licence reaching its expiry date, a status list going stale) without sleeping. An unparsable
//! value is an error at startup, never silently zero.

use anyhow::{anyhow, Context, Result};
use bizcred_core::time::Clock;

/// The environment variable that shifts every binary's clock (tests only).
pub const OFFSET_VAR: &str = "BIZCRED_CLOCK_OFFSET_SECONDS";

/// The system clock, shifted by [`OFFSET_VAR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemClock {
    offset: i64,
}

impl SystemClock {
    /// Reads [`OFFSET_VAR`] once; an unparsable value is an error.
    pub fn from_env() -> Result<SystemClock> {
        let offset = match std::env::var(OFFSET_VAR) {
            Ok(v) => v
                .trim()
                .parse::<i64>()
                .with_context(|| format!("{OFFSET_VAR}={v:?} is not a whole number of seconds"))?,
            Err(std::env::VarError::NotPresent) => 0,
            Err(e) => return Err(anyhow!("{OFFSET_VAR}: {e}")),
        };
        Ok(SystemClock { offset })
    }

    /// The offset this clock adds to the system time.
    pub fn offset(&self) -> i64 {
        self.offset
    }
}

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        // A system clock before 1970 is a broken machine: report time 0 rather than panic;
        // every freshness check then fails closed (everything looks stale or not yet valid).
        let sys = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        sys.saturating_add(self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_shifts_the_clock() {
        let plain = SystemClock { offset: 0 };
        let later = SystemClock { offset: 3600 };
        let d = later.now() - plain.now();
        assert!((3599..=3601).contains(&d), "{d}");
    }
}
