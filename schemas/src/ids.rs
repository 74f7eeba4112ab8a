//! Identifiers as types: a value of one of these types has passed its check.
//!
//! Each type parses from a string with `FromStr`/`TryFrom<String>` and serializes back to the
//! exact same string, so the JSON contract is unchanged.

use crate::reason::ReasonCode;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier did not parse. Each variant has a stable code ([`IdError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Not nine ASCII digits.
    #[error("a business number (BN9) is nine digits")]
    BnFormat,
    /// Nine digits, but the ninth is not the Luhn check digit of the first eight.
    #[error("the business number's check digit (its ninth digit) is wrong")]
    BnCheckDigit,
    /// Not BN9 + a two-letter program code + a four-digit reference.
    #[error("a program account number is a BN9, a program code (RT, RP, RC, RM, RR, RZ) and four digits, e.g. 123456782RT0001")]
    ProgramAccountFormat,
    /// Not 7 to 10 digits.
    #[error("an Ontario corporation number is 7 to 10 digits")]
    CorporationNumber,
    /// Not a Canadian postal code in the form `A1A 1A1`.
    #[error("a Canadian postal code reads A1A 1A1 (capital letters other than D, F, I, O, Q, U; no W or Z first)")]
    PostalCode,
    /// Not a real calendar date in the form `YYYY-MM-DD`.
    #[error("a date reads YYYY-MM-DD and must exist in the calendar")]
    Date,
}

impl IdError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            IdError::BnFormat => ReasonCode::BnFormat,
            IdError::BnCheckDigit => ReasonCode::BnCheckDigit,
            IdError::ProgramAccountFormat => ReasonCode::ProgramAccountFormat,
            IdError::CorporationNumber => ReasonCode::CorporationNumberFormat,
            IdError::PostalCode => ReasonCode::PostalCodeFormat,
            IdError::Date => ReasonCode::DateFormat,
        }
    }
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                s.parse()
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

/// A CRA business number (BN9): nine digits, the ninth the Luhn check digit of the first eight.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BusinessNumber(String);
string_newtype!(BusinessNumber);

impl FromStr for BusinessNumber {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.len() != 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::BnFormat);
        }
        if !luhn_valid(s) {
            return Err(IdError::BnCheckDigit);
        }
        Ok(BusinessNumber(s.to_owned()))
    }
}

/// The Luhn (mod 10) check over a string of ASCII digits, check digit last.
fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// CRA program identifiers that can follow a BN9 in a program account number.
pub const PROGRAM_CODES: [&str; 6] = ["RC", "RM", "RP", "RR", "RT", "RZ"];

/// A CRA program account number: BN9 + program code + four-digit reference (`123456782RT0001`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProgramAccountNumber(String);
string_newtype!(ProgramAccountNumber);

impl ProgramAccountNumber {
    /// The BN9 part.
    pub fn business_number(&self) -> BusinessNumber {
        BusinessNumber(self.0[..9].to_owned())
    }
    /// The program code (`RT`, `RP`, ...).
    pub fn program(&self) -> &str {
        &self.0[9..11]
    }
    /// The four-digit reference number.
    pub fn reference(&self) -> &str {
        &self.0[11..]
    }
}

impl FromStr for ProgramAccountNumber {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.len() != 15 || !s.is_ascii() {
            return Err(IdError::ProgramAccountFormat);
        }
        let (bn, rest) = s.split_at(9);
        let (program, reference) = rest.split_at(2);
        if !PROGRAM_CODES.contains(&program) || !reference.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::ProgramAccountFormat);
        }
        bn.parse::<BusinessNumber>()?;
        Ok(ProgramAccountNumber(s.to_owned()))
    }
}

/// An Ontario corporation number: 7 to 10 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CorporationNumber(String);
string_newtype!(CorporationNumber);

impl FromStr for CorporationNumber {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if (7..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(CorporationNumber(s.to_owned()))
        } else {
            Err(IdError::CorporationNumber)
        }
    }
}

/// A Canadian postal code in its canonical form `A1A 1A1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PostalCode(String);
string_newtype!(PostalCode);

impl FromStr for PostalCode {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        const NEVER: &[u8] = b"DFIOQU";
        let b = s.as_bytes();
        let letter = |c: u8| c.is_ascii_uppercase() && !NEVER.contains(&c);
        let ok = b.len() == 7
            && letter(b[0])
            && b[0] != b'W'
            && b[0] != b'Z'
            && b[1].is_ascii_digit()
            && letter(b[2])
            && b[3] == b' '
            && b[4].is_ascii_digit()
            && letter(b[5])
            && b[6].is_ascii_digit();
        if ok {
            Ok(PostalCode(s.to_owned()))
        } else {
            Err(IdError::PostalCode)
        }
    }
}

/// A calendar date `YYYY-MM-DD` (proleptic Gregorian, years 1000 to 9999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// Builds a date, checking that it exists.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Date, IdError> {
        if !(1000..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(IdError::Date);
        }
        let leap =
            (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day == 0 || day > days {
            return Err(IdError::Date);
        }
        Ok(Date { year, month, day })
    }

    /// Days since 1970-01-01 (negative before), for comparisons with a Unix time.
    pub fn days_since_epoch(&self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let (y, m, d) = (
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The Unix time of this date's first second (UTC).
    pub fn start_unix(&self) -> i64 {
        self.days_since_epoch() * 86_400
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(IdError::Date);
        }
        let num = |r: std::ops::Range<usize>| -> Result<u16, IdError> {
            let part = &s[r];
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().map_err(|_| IdError::Date)
            } else {
                Err(IdError::Date)
            }
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        Date::new(
            y,
            u8::try_from(m).map_err(|_| IdError::Date)?,
            u8::try_from(d).map_err(|_| IdError::Date)?,
        )
    }
}

impl TryFrom<String> for Date {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<Date> for String {
    fn from(d: Date) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn business_numbers() {
        assert!("812345676".parse::<BusinessNumber>().is_ok());
        assert!("123456782".parse::<BusinessNumber>().is_ok());
        assert_eq!(
            "812345677".parse::<BusinessNumber>(),
            Err(IdError::BnCheckDigit)
        );
        assert_eq!("81234567".parse::<BusinessNumber>(), Err(IdError::BnFormat));
        assert_eq!(
            "8123456a6".parse::<BusinessNumber>(),
            Err(IdError::BnFormat)
        );
        assert_eq!(
            "８12345676".parse::<BusinessNumber>(),
            Err(IdError::BnFormat)
        );
    }

    #[test]
    fn program_accounts() {
        let p: ProgramAccountNumber = "812345676RT0001".parse().expect("valid");
        assert_eq!(p.business_number().as_ref(), "812345676");
        assert_eq!(p.program(), "RT");
        assert_eq!(p.reference(), "0001");
        assert_eq!(
            "812345676XX0001".parse::<ProgramAccountNumber>(),
            Err(IdError::ProgramAccountFormat)
        );
        assert_eq!(
            "812345677RT0001".parse::<ProgramAccountNumber>(),
            Err(IdError::BnCheckDigit)
        );
        assert_eq!(
            "812345676RT001".parse::<ProgramAccountNumber>(),
            Err(IdError::ProgramAccountFormat)
        );
        assert_eq!(
            "812345676RTé01".parse::<ProgramAccountNumber>(),
            Err(IdError::ProgramAccountFormat)
        );
    }

    #[test]
    fn postal_codes_and_corporation_numbers() {
        assert!("M6J 2Y7".parse::<PostalCode>().is_ok());
        for bad in [
            "M6J2Y7", "m6j 2y7", "D6J 2Y7", "W6J 2Y7", "M6O 2Y7", "M6J 2Y", "M6J-2Y7",
        ] {
            assert_eq!(bad.parse::<PostalCode>(), Err(IdError::PostalCode), "{bad}");
        }
        assert!("5012345".parse::<CorporationNumber>().is_ok());
        assert!("1234567890".parse::<CorporationNumber>().is_ok());
        assert!("123456".parse::<CorporationNumber>().is_err());
        assert!("12345678901".parse::<CorporationNumber>().is_err());
    }

    #[test]
    fn dates() {
        assert!("2024-02-29".parse::<Date>().is_ok());
        assert_eq!("2026-02-29".parse::<Date>(), Err(IdError::Date));
        assert_eq!("2026-04-31".parse::<Date>(), Err(IdError::Date));
        assert_eq!("2026-4-01".parse::<Date>(), Err(IdError::Date));
        assert_eq!("2026-+4-01".parse::<Date>(), Err(IdError::Date));
        assert_eq!("1970-01-01".parse::<Date>().map(|d| d.start_unix()), Ok(0));
        assert_eq!(
            "2026-11-22".parse::<Date>().map(|d| d.start_unix()),
            Ok(1_795_305_600)
        );
        assert!(
            "2026-04-15".parse::<Date>().expect("d") < "2027-04-14".parse::<Date>().expect("d")
        );
    }

    proptest! {
        /// Changing any single digit of a valid BN9 breaks its check digit.
        #[test]
        fn one_digit_change_is_caught(pos in 0usize..9, delta in 1u8..10) {
            let mut b = *b"812345676";
            b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
            let s = std::str::from_utf8(&b).expect("ascii");
            prop_assert_eq!(s.parse::<BusinessNumber>(), Err(IdError::BnCheckDigit));
        }

        #[test]
        fn date_round_trips(y in 1000u16..9999, m in 1u8..13, d in 1u8..29) {
            let date = Date::new(y, m, d).expect("valid");
            prop_assert_eq!(date.to_string().parse::<Date>(), Ok(date));
        }
    }
}
