//! A realistic synthetic Ontario Business Registry extract, in the format of
//! `issuer/EXTRACT.md` (one JSON object per line), deterministic for a seed.
//!
//! The population of `count` corporations is a pure function of `(seed, count)`: corporation
//! `i` is drawn from its own ChaCha8 stream, so any line can be computed on its own
//! ([`business`]) and the whole extract is written streaming ([`write_jsonl`]) without holding
//! it in memory.
//!
//! What it holds: unique corporation numbers (seven digits for corporations incorporated before
//! the Ontario Business Registry opened on 2021-10-19, ten digits `10…` after), unique business
//! numbers with a valid Luhn check digit (for about nine in ten), English and French names with
//! their accents and legal-form suffixes (Inc., Ltd., Limited, Corp., Ltée, Limitée,
//! Incorporée…), numbered companies (`1234567 Ontario Inc.`), the four entity types (mostly
//! business corporations), incorporation dates from 1950 to the extract's date (more of them
//! recent), statuses (mostly active; amalgamated ones name the corporation they amalgamated
//! into, a corporation present in the same extract), and registered offices in 50 Ontario
//! municipalities with their real postal-code prefixes and French street names where French
//! is spoken.
//!
//! **Generations.** Generation 1 is the population as drawn. Generation `g + 1` is generation
//! `g` a day later: each live (active or inactive) corporation draws a change with probability
//! [`CHANGE_PER_MILLION`] / 1,000,000 (1 %) — a name change (35 % of changes), a move of its
//! registered office (35 %), a dissolution (20 %) or an amalgamation (10 %). An amalgamation
//! joins the corporation with its neighbour (lines `2k` and `2k + 1` form a pair): both get
//! status `amalgamated` and `amalgamated_into` the new amalgamated corporation, which is
//! appended after the `count` original lines (ordered by generation, then pair), incorporated
//! on that generation's extract date, and keeps the first one's name (six times in ten) or a
//! new one. New corporations change later like the others but do not amalgamate again. Every
//! line that did not change is byte for byte the line of the previous generation: with about
//! 83 % of the corporations live, about 0.9 % of the lines differ from one generation to the
//! next (a drawn amalgamation changes both corporations of a pair), and about 0.07 % new lines
//! follow them. [`ExtractLine::change`] says what changed at the generation asked for.

use std::fmt::Write as _;
use std::io::{self, Write};

use bizcred_schemas::{Date, ReasonCode};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{json, Value};

/// The largest population [`generate`] accepts.
pub const MAX_COUNT: usize = 5_000_000;

/// The last generation [`generate`] accepts.
pub const MAX_GENERATION: u32 = 20;

/// At each generation after the first, how many live corporations in a million draw a change
/// (10,000: 1 %).
pub const CHANGE_PER_MILLION: u32 = 10_000;

/// The day the Ontario Business Registry opened: corporations incorporated from then on have
/// ten-digit numbers.
const OBR_OPENED: (u16, u8, u8) = (2021, 10, 19);

/// Generation 1's extract date; generation `g`'s is `g - 1` days later.
const FIRST_EXTRACT: (u16, u8, u8) = (2026, 10, 31);

/// Why a generator call was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExtractError {
    /// More corporations than [`MAX_COUNT`].
    TooMany(usize),
    /// A generation outside 1 to [`MAX_GENERATION`].
    Generation(u32),
    /// The extract could not be written.
    Io(io::Error),
}

impl std::fmt::Display for ExtractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtractError::TooMany(n) => write!(
                f,
                "at most {MAX_COUNT} corporations can be generated (asked for {n})"
            ),
            ExtractError::Generation(g) => {
                write!(f, "the generation is 1 to {MAX_GENERATION} (asked for {g})")
            }
            ExtractError::Io(e) => write!(f, "writing the extract: {e}"),
        }
    }
}

impl std::error::Error for ExtractError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExtractError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ExtractError {
    fn from(e: io::Error) -> ExtractError {
        ExtractError::Io(e)
    }
}

impl ExtractError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            ExtractError::TooMany(_) | ExtractError::Generation(_) => ReasonCode::ConfigInvalid,
            ExtractError::Io(_) => ReasonCode::IoError,
        }
    }
}

/// `entity_type` of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityType {
    /// `business_corporation`
    BusinessCorporation,
    /// `not_for_profit_corporation`
    NotForProfit,
    /// `professional_corporation`
    Professional,
    /// `cooperative_corporation`
    Cooperative,
}

impl EntityType {
    /// Every entity type, in the order of [`Summary::by_entity_type`].
    pub const ALL: [EntityType; 4] = [
        EntityType::BusinessCorporation,
        EntityType::NotForProfit,
        EntityType::Professional,
        EntityType::Cooperative,
    ];

    /// The value written in the extract.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::BusinessCorporation => "business_corporation",
            EntityType::NotForProfit => "not_for_profit_corporation",
            EntityType::Professional => "professional_corporation",
            EntityType::Cooperative => "cooperative_corporation",
        }
    }
}

/// `corporate_status` of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CorporateStatus {
    /// `active`
    Active,
    /// `inactive`
    Inactive,
    /// `dissolved`
    Dissolved,
    /// `amalgamated` (the line has `amalgamated_into`)
    Amalgamated,
}

impl CorporateStatus {
    /// Every status, in the order of [`Summary::by_status`].
    pub const ALL: [CorporateStatus; 4] = [
        CorporateStatus::Active,
        CorporateStatus::Inactive,
        CorporateStatus::Dissolved,
        CorporateStatus::Amalgamated,
    ];

    /// The value written in the extract.
    pub fn as_str(self) -> &'static str {
        match self {
            CorporateStatus::Active => "active",
            CorporateStatus::Inactive => "inactive",
            CorporateStatus::Dissolved => "dissolved",
            CorporateStatus::Amalgamated => "amalgamated",
        }
    }

    /// Whether the corporation still exists (active or inactive) and can change.
    pub fn is_live(self) -> bool {
        matches!(self, CorporateStatus::Active | CorporateStatus::Inactive)
    }
}

/// What changed on a line at the generation it was generated for (not written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// A new legal name.
    Name,
    /// A new registered office.
    Address,
    /// Dissolved.
    Dissolved,
    /// Amalgamated into a new corporation.
    Amalgamated,
    /// A new line: the corporation born of an amalgamation.
    New,
}

impl Change {
    /// Every change, in the order of [`Summary::changes`].
    pub const ALL: [Change; 5] = [
        Change::Name,
        Change::Address,
        Change::Dissolved,
        Change::Amalgamated,
        Change::New,
    ];

    /// A name for summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Name => "name",
            Change::Address => "address",
            Change::Dissolved => "dissolved",
            Change::Amalgamated => "amalgamated",
            Change::New => "new",
        }
    }
}

/// `registered_office_address` of a line (`region` is always `ON`, `country` always `CA`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeAddress {
    /// Number and street, sometimes with a unit.
    pub street_address: String,
    /// The municipality.
    pub locality: &'static str,
    /// `A1A 1A1`.
    pub postal_code: String,
}

/// One line of the extract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractLine {
    /// 7 or 10 digits, unique in the extract.
    pub corporation_number: String,
    /// English or French, with its legal-form suffix.
    pub legal_name: String,
    /// The entity type.
    pub entity_type: EntityType,
    /// The status.
    pub corporate_status: CorporateStatus,
    /// Not after the extract's date.
    pub incorporation_date: Date,
    /// BN9, unique in the extract, when the corporation has one.
    pub business_number: Option<String>,
    /// The registered office.
    pub registered_office_address: OfficeAddress,
    /// With status `amalgamated`: the corporation number it amalgamated into.
    pub amalgamated_into: Option<String>,
    /// Whether the name is French (not written).
    pub french: bool,
    /// What changed at this generation (not written; `None` in generation 1).
    pub change: Option<Change>,
    /// Index into [`MUNICIPALITIES`].
    municipality: usize,
    /// Whether the name is the numbered-company name of its corporation number.
    numbered: bool,
}

impl ExtractLine {
    /// Appends the line's JSON object (without the line end) to `out`.
    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"corporation_number\":");
        push_json_str(out, &self.corporation_number);
        out.push_str(",\"legal_name\":");
        push_json_str(out, &self.legal_name);
        out.push_str(",\"entity_type\":\"");
        out.push_str(self.entity_type.as_str());
        out.push_str("\",\"corporate_status\":\"");
        out.push_str(self.corporate_status.as_str());
        // A Date always displays as YYYY-MM-DD; writing to a String cannot fail.
        let _ = write!(
            out,
            "\",\"incorporation_date\":\"{}\"",
            self.incorporation_date
        );
        if let Some(bn) = &self.business_number {
            out.push_str(",\"business_number\":");
            push_json_str(out, bn);
        }
        let a = &self.registered_office_address;
        out.push_str(",\"registered_office_address\":{\"street_address\":");
        push_json_str(out, &a.street_address);
        out.push_str(",\"locality\":");
        push_json_str(out, a.locality);
        out.push_str(",\"region\":\"ON\",\"postal_code\":");
        push_json_str(out, &a.postal_code);
        out.push_str(",\"country\":\"CA\"}");
        if let Some(into) = &self.amalgamated_into {
            out.push_str(",\"amalgamated_into\":");
            push_json_str(out, into);
        }
        out.push('}');
    }

    /// The line's JSON text (without the line end).
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(320);
        self.write_json(&mut s);
        s
    }

    /// The line as a JSON value, members in the written order.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.to_json()).unwrap_or(Value::Null)
    }
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Counts over a written extract.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines written.
    pub lines: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Per status, in the order of [`CorporateStatus::ALL`].
    pub by_status: [u64; 4],
    /// Per entity type, in the order of [`EntityType::ALL`].
    pub by_entity_type: [u64; 4],
    /// Lines with a business number.
    pub with_business_number: u64,
    /// Lines with a French name.
    pub french_names: u64,
    /// Lines whose name has a letter outside ASCII (an accent).
    pub accented_names: u64,
    /// Lines changed at this generation, per change in the order of [`Change::ALL`].
    pub changes: [u64; 5],
}

impl Summary {
    /// Counts one line of `bytes` bytes.
    pub fn add(&mut self, line: &ExtractLine, bytes: usize) {
        self.lines += 1;
        self.bytes += bytes as u64;
        self.by_status[line.corporate_status as usize] += 1;
        self.by_entity_type[line.entity_type as usize] += 1;
        self.with_business_number += u64::from(line.business_number.is_some());
        self.french_names += u64::from(line.french);
        self.accented_names += u64::from(!line.legal_name.is_ascii());
        if let Some(c) = line.change {
            self.changes[c as usize] += 1;
        }
    }

    /// The counts as JSON (`by_status`, `by_entity_type` and `changes` keyed by name).
    pub fn to_json(&self) -> Value {
        let by_status: serde_json::Map<String, Value> = CorporateStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), json!(self.by_status[*s as usize])))
            .collect();
        let by_entity_type: serde_json::Map<String, Value> = EntityType::ALL
            .iter()
            .map(|t| {
                (
                    t.as_str().to_owned(),
                    json!(self.by_entity_type[*t as usize]),
                )
            })
            .collect();
        let changes: serde_json::Map<String, Value> = Change::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), json!(self.changes[*c as usize])))
            .collect();
        json!({
            "lines": self.lines,
            "bytes": self.bytes,
            "by_status": by_status,
            "by_entity_type": by_entity_type,
            "with_business_number": self.with_business_number,
            "french_names": self.french_names,
            "accented_names": self.accented_names,
            "changes": changes,
        })
    }
}

/// The extract date of a generation (generation 1: 2026-10-31, then one day per generation).
pub fn extract_date(generation: u32) -> Date {
    let (y, m, d) = FIRST_EXTRACT;
    let first = date(y, m, d).days_since_epoch();
    date_from_days(first + i64::from(generation.max(1)) - 1)
}

fn check(count: usize, generation: u32) -> Result<(), ExtractError> {
    if count > MAX_COUNT {
        return Err(ExtractError::TooMany(count));
    }
    if !(1..=MAX_GENERATION).contains(&generation) {
        return Err(ExtractError::Generation(generation));
    }
    Ok(())
}

/// The lines of generation `generation` of the population `(seed, count)`: the `count`
/// corporations in order, then the corporations born of amalgamations. Streaming: it holds
/// two lines at a time.
pub fn generate(seed: u64, count: usize, generation: u32) -> Result<Lines, ExtractError> {
    check(count, generation)?;
    Ok(Lines {
        gen: Gen::new(seed, count),
        generation,
        pairs: count.div_ceil(2),
        next_pair: 0,
        pending: None,
        born_step: 2,
        born_pair: 0,
    })
}

/// Writes generation `generation` of `(seed, count)` to `out` as JSON Lines (`\n` line ends),
/// buffered, and returns its counts.
pub fn write_jsonl<W: Write>(
    seed: u64,
    count: usize,
    generation: u32,
    out: W,
) -> Result<Summary, ExtractError> {
    let lines = generate(seed, count, generation)?;
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut summary = Summary::default();
    let mut buf = String::with_capacity(512);
    for line in lines {
        buf.clear();
        line.write_json(&mut buf);
        buf.push('\n');
        out.write_all(buf.as_bytes())?;
        summary.add(&line, buf.len());
    }
    out.flush()?;
    Ok(summary)
}

/// Line `index` of generation `generation` (`None` past the last line). The first `count`
/// lines are computed on their own; a line after them (a corporation born of an amalgamation)
/// needs a pass over the population's change draws.
pub fn business(
    seed: u64,
    count: usize,
    generation: u32,
    index: usize,
) -> Result<Option<ExtractLine>, ExtractError> {
    check(count, generation)?;
    let gen = Gen::new(seed, count);
    if index < count {
        let (a, b) = gen.pair(index / 2, generation);
        return Ok(if index.is_multiple_of(2) { Some(a) } else { b });
    }
    let mut lines = generate(seed, count, generation)?;
    lines.next_pair = lines.pairs;
    Ok(lines.nth(index - count))
}

/// A business for search tests: the index and line of the first of the `count` corporations
/// that, at this generation, is active, has a business number and a French name with an
/// accent that is not a numbered company's and that no other line of the extract has.
/// `None` when there is none (a very small `count`). Reads the extract once per candidate.
pub fn french_business(
    seed: u64,
    count: usize,
    generation: u32,
) -> Result<Option<(usize, ExtractLine)>, ExtractError> {
    check(count, generation)?;
    let gen = Gen::new(seed, count);
    for index in 0..count {
        let (a, b) = gen.pair(index / 2, generation);
        let Some(line) = (if index.is_multiple_of(2) { Some(a) } else { b }) else {
            continue;
        };
        let fits = line.french
            && !line.numbered
            && !line.legal_name.is_ascii()
            && line.corporate_status == CorporateStatus::Active
            && line.business_number.is_some();
        if fits
            && generate(seed, count, generation)?
                .filter(|l| l.legal_name == line.legal_name)
                .count()
                == 1
        {
            return Ok(Some((index, line)));
        }
    }
    Ok(None)
}

/// The iterator of [`generate`].
#[derive(Debug)]
pub struct Lines {
    gen: Gen,
    generation: u32,
    pairs: usize,
    next_pair: usize,
    pending: Option<ExtractLine>,
    born_step: u32,
    born_pair: usize,
}

impl Iterator for Lines {
    type Item = ExtractLine;

    fn next(&mut self) -> Option<ExtractLine> {
        if let Some(line) = self.pending.take() {
            return Some(line);
        }
        if self.next_pair < self.pairs {
            let (a, b) = self.gen.pair(self.next_pair, self.generation);
            self.next_pair += 1;
            self.pending = b;
            return Some(a);
        }
        while self.born_step <= self.generation {
            while self.born_pair < self.pairs {
                let k = self.born_pair;
                self.born_pair += 1;
                if let Some(line) = self.gen.born(k, self.born_step, self.generation) {
                    return Some(line);
                }
            }
            self.born_step += 1;
            self.born_pair = 0;
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The population.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Name,
    Address,
    Dissolve,
    Amalgamate,
}

/// What is drawn first from a corporation's stream: enough to choose an amalgamation target
/// without drawing the whole line.
#[derive(Debug, Clone, Copy)]
struct Core {
    municipality: usize,
    french: bool,
    entity: EntityType,
    date: Date,
    status: CorporateStatus,
    has_bn: bool,
}

#[derive(Debug)]
struct Gen {
    key: [u8; 32],
    salt: u64,
    count: usize,
    /// Cumulative municipality weights.
    cumulative: Vec<u32>,
    first_day: i64,
    last_day: i64,
    obr_opened: Date,
}

fn date(y: u16, m: u8, d: u8) -> Date {
    Date::new(y, m, d).unwrap_or_else(|_| unreachable!("a constant date"))
}

/// Howard Hinnant's civil_from_days.
fn date_from_days(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // Days between 1950 and 2100 give years 1950 to 2100, months 1 to 12, days 1 to 31.
    date(y as u16, m as u8, d as u8)
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A permutation of `0..domain` (`domain <= 4^half_bits`): a four-round Feistel network over
/// `2 * half_bits` bits, walked until it lands in the domain.
fn permute(x: u64, domain: u64, half_bits: u32, tweak: u64) -> u64 {
    let mask = (1u64 << half_bits) - 1;
    let mut v = x;
    loop {
        let (mut l, mut r) = (v >> half_bits, v & mask);
        for round in 0..4u64 {
            let f = mix(tweak ^ (round << 60) ^ r) & mask;
            (l, r) = (r, l ^ f);
        }
        v = (l << half_bits) | r;
        if v < domain {
            return v;
        }
    }
}

fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    ((u64::from(rng.next_u32()) * n as u64) >> 32) as usize
}

/// True with probability `per_mille` / 1000.
fn chance(rng: &mut ChaCha8Rng, per_mille: usize) -> bool {
    below(rng, 1000) < per_mille
}

fn pick<'a>(rng: &mut ChaCha8Rng, list: &[&'a str]) -> &'a str {
    list[below(rng, list.len())]
}

const STREAM_SLOTS: u64 = 64;
const PAIR_BORN_KEY_STRIDE: u64 = (MAX_COUNT / 2) as u64;

/// The key (stream and number source) of the corporation born of pair `k` at step `t`.
fn born_key(t: u32, k: usize) -> u64 {
    MAX_COUNT as u64 + u64::from(t - 2) * PAIR_BORN_KEY_STRIDE + k as u64
}

impl Gen {
    fn new(seed: u64, count: usize) -> Gen {
        let key = ChaCha8Rng::seed_from_u64(seed).get_seed();
        let mut cumulative = Vec::with_capacity(MUNICIPALITIES.len());
        let mut total = 0;
        for m in MUNICIPALITIES {
            total += m.weight;
            cumulative.push(total);
        }
        let (y, m, d) = OBR_OPENED;
        Gen {
            key,
            salt: mix(seed ^ 0x6269_7a63_7265_6421),
            count,
            cumulative,
            first_day: date(1950, 1, 1).days_since_epoch(),
            last_day: extract_date(1).days_since_epoch(),
            obr_opened: date(y, m, d),
        }
    }

    /// Corporation `key`'s stream for `slot` (0: generation 1; 1: a born corporation's own
    /// draws; `t`: the change at step `t`).
    fn rng(&self, key: u64, slot: u64) -> ChaCha8Rng {
        let mut r = ChaCha8Rng::from_seed(self.key);
        r.set_stream(key * STREAM_SLOTS + slot);
        r
    }

    fn municipality(&self, rng: &mut ChaCha8Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let x = below(rng, total as usize) as u32;
        self.cumulative.partition_point(|&c| c <= x)
    }

    fn corporation_number(&self, key: u64, incorporated: Date) -> String {
        if incorporated < self.obr_opened && key < 9_000_000 {
            (1_000_000 + permute(key, 9_000_000, 12, self.salt ^ 1)).to_string()
        } else {
            (1_000_000_000 + permute(key, 90_000_000, 14, self.salt ^ 2)).to_string()
        }
    }

    fn business_number(&self, key: u64) -> String {
        let body = 10_000_000 + permute(key, 90_000_000, 14, self.salt ^ 3);
        let mut s = body.to_string();
        s.push(char::from(b'0' + luhn_check_digit(&s)));
        s
    }

    fn core_from(&self, rng: &mut ChaCha8Rng) -> Core {
        let municipality = self.municipality(rng);
        let french = below(rng, 1000) < MUNICIPALITIES[municipality].french_per_mille as usize;
        let entity = match below(rng, 1000) {
            0..885 => EntityType::BusinessCorporation,
            885..965 => EntityType::NotForProfit,
            965..993 => EntityType::Professional,
            _ => EntityType::Cooperative,
        };
        // Density rising linearly with time: more of the registered corporations are recent.
        let span = (self.last_day - self.first_day) as f64;
        let u = f64::from(rng.next_u32()) / 4_294_967_296.0;
        let day = self.first_day + (span * u.sqrt()) as i64;
        let date = date_from_days(day.min(self.last_day));
        let old = date < Date::new(1995, 1, 1).unwrap_or(date);
        let s = below(rng, 1000);
        let status = if old {
            match s {
                0..620 => CorporateStatus::Active,
                620..680 => CorporateStatus::Inactive,
                680..920 => CorporateStatus::Dissolved,
                _ => CorporateStatus::Amalgamated,
            }
        } else {
            match s {
                0..860 => CorporateStatus::Active,
                860..910 => CorporateStatus::Inactive,
                910..980 => CorporateStatus::Dissolved,
                _ => CorporateStatus::Amalgamated,
            }
        };
        let has_bn = if status == CorporateStatus::Dissolved && old {
            chance(rng, 400)
        } else {
            chance(rng, 930)
        };
        Core {
            municipality,
            french,
            entity,
            date,
            status,
            has_bn,
        }
    }

    fn core(&self, i: usize) -> Core {
        self.core_from(&mut self.rng(i as u64, 0))
    }

    /// Corporation `i` in generation 1.
    fn base(&self, i: usize) -> ExtractLine {
        let key = i as u64;
        let mut rng = self.rng(key, 0);
        let core = self.core_from(&mut rng);
        let corporation_number = self.corporation_number(key, core.date);
        let (legal_name, numbered) = legal_name(
            &mut rng,
            core.entity,
            core.french,
            core.municipality,
            &corporation_number,
            true,
        );
        let address = office(&mut rng, core.municipality, core.french);
        let mut status = core.status;
        let mut amalgamated_into = None;
        if status == CorporateStatus::Amalgamated {
            // Into an active corporation of the same type incorporated on or after it.
            for _ in 0..24 {
                let j = below(&mut rng, self.count);
                if j == i {
                    continue;
                }
                let c = self.core(j);
                if c.status == CorporateStatus::Active
                    && c.entity == core.entity
                    && c.date >= core.date
                {
                    amalgamated_into = Some(self.corporation_number(j as u64, c.date));
                    break;
                }
            }
            if amalgamated_into.is_none() {
                status = CorporateStatus::Dissolved;
            }
        }
        ExtractLine {
            corporation_number,
            legal_name,
            entity_type: core.entity,
            corporate_status: status,
            incorporation_date: core.date,
            business_number: core.has_bn.then(|| self.business_number(key)),
            registered_office_address: address,
            amalgamated_into,
            french: core.french,
            change: None,
            municipality: core.municipality,
            numbered,
        }
    }

    /// The change corporation `key` draws at step `t`, if any.
    fn event(&self, key: u64, t: u32) -> Option<Event> {
        let h = mix(self.salt ^ key.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ (u64::from(t) << 56));
        if (h % 1_000_000) as u32 >= CHANGE_PER_MILLION {
            return None;
        }
        Some(match (h >> 40) % 100 {
            0..35 => Event::Name,
            35..70 => Event::Address,
            70..90 => Event::Dissolve,
            _ => Event::Amalgamate,
        })
    }

    /// Applies a change other than an amalgamation.
    fn apply(&self, line: &mut ExtractLine, key: u64, t: u32, event: Event) {
        let mut rng = self.rng(key, u64::from(t));
        match event {
            Event::Name => {
                for _ in 0..8 {
                    let (name, _) = legal_name(
                        &mut rng,
                        line.entity_type,
                        line.french,
                        line.municipality,
                        &line.corporation_number,
                        false,
                    );
                    if name != line.legal_name {
                        line.legal_name = name;
                        line.numbered = false;
                        line.change = Some(Change::Name);
                        return;
                    }
                }
            }
            Event::Address => {
                let municipality = if chance(&mut rng, 750) {
                    line.municipality
                } else {
                    self.municipality(&mut rng)
                };
                let street_french =
                    below(&mut rng, 1000) < MUNICIPALITIES[municipality].french_per_mille as usize;
                for _ in 0..8 {
                    let address = office(&mut rng, municipality, street_french);
                    if address != line.registered_office_address {
                        line.registered_office_address = address;
                        line.municipality = municipality;
                        line.change = Some(Change::Address);
                        return;
                    }
                }
            }
            Event::Dissolve => {
                line.corporate_status = CorporateStatus::Dissolved;
                line.change = Some(Change::Dissolved);
            }
            Event::Amalgamate => {}
        }
    }

    /// Step `t` for pair `k` (lines `2k` and `2k + 1`); returns whether the pair amalgamated.
    fn step_pair(
        &self,
        k: usize,
        t: u32,
        a: &mut ExtractLine,
        mut b: Option<&mut ExtractLine>,
    ) -> bool {
        let (ka, kb) = (2 * k as u64, 2 * k as u64 + 1);
        a.change = None;
        if let Some(b) = b.as_deref_mut() {
            b.change = None;
        }
        let ea = a
            .corporate_status
            .is_live()
            .then(|| self.event(ka, t))
            .flatten();
        let eb = b
            .as_deref()
            .filter(|b| b.corporate_status.is_live())
            .and_then(|_| self.event(kb, t));
        if let Some(b) = b.as_deref_mut() {
            if (ea == Some(Event::Amalgamate) || eb == Some(Event::Amalgamate))
                && a.corporate_status.is_live()
                && b.corporate_status.is_live()
            {
                let key = born_key(t, k);
                let into = self.corporation_number(key, extract_date(t));
                for line in [&mut *a, b] {
                    line.corporate_status = CorporateStatus::Amalgamated;
                    line.amalgamated_into = Some(into.clone());
                    line.change = Some(Change::Amalgamated);
                }
                return true;
            }
        }
        if let Some(e) = ea {
            self.apply(a, ka, t, e);
        }
        if let (Some(e), Some(b)) = (eb, b) {
            self.apply(b, kb, t, e);
        }
        false
    }

    /// Pair `k` at generation `generation`.
    fn pair(&self, k: usize, generation: u32) -> (ExtractLine, Option<ExtractLine>) {
        let mut a = self.base(2 * k);
        let mut b = (2 * k + 1 < self.count).then(|| self.base(2 * k + 1));
        for t in 2..=generation {
            self.step_pair(k, t, &mut a, b.as_mut());
        }
        (a, b)
    }

    /// The corporation born of pair `k` at step `t`, at generation `generation`, if the pair
    /// amalgamated at step `t`.
    fn born(&self, k: usize, t: u32, generation: u32) -> Option<ExtractLine> {
        if 2 * k + 1 >= self.count {
            return None;
        }
        let drawn = [2 * k as u64, 2 * k as u64 + 1]
            .iter()
            .any(|&key| self.event(key, t) == Some(Event::Amalgamate));
        if !drawn {
            return None;
        }
        let (mut a, mut b) = self.pair(k, t - 1);
        let leader = a.clone();
        if !self.step_pair(k, t, &mut a, b.as_mut()) {
            return None;
        }
        let key = born_key(t, k);
        let mut rng = self.rng(key, 1);
        let incorporated = extract_date(t);
        let corporation_number = self.corporation_number(key, incorporated);
        let (legal_name, numbered) = if leader.numbered {
            (
                numbered_name(&mut rng, leader.french, &corporation_number),
                true,
            )
        } else if chance(&mut rng, 600) {
            (leader.legal_name.clone(), false)
        } else {
            legal_name(
                &mut rng,
                leader.entity_type,
                leader.french,
                leader.municipality,
                &corporation_number,
                false,
            )
        };
        let mut line = ExtractLine {
            corporation_number,
            legal_name,
            entity_type: leader.entity_type,
            corporate_status: CorporateStatus::Active,
            incorporation_date: incorporated,
            business_number: chance(&mut rng, 900).then(|| self.business_number(key)),
            registered_office_address: leader.registered_office_address.clone(),
            amalgamated_into: None,
            french: leader.french,
            change: Some(Change::New),
            municipality: leader.municipality,
            numbered,
        };
        for s in t + 1..=generation {
            line.change = None;
            if line.corporate_status.is_live() {
                if let Some(e) = self.event(key, s) {
                    self.apply(&mut line, key, s, e);
                }
            }
        }
        Some(line)
    }
}

/// The Luhn check digit of a string of ASCII digits.
fn luhn_check_digit(digits: &str) -> u8 {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i.is_multiple_of(2) {
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
    ((10 - sum % 10) % 10) as u8
}

// ---------------------------------------------------------------------------------------------
// Names and addresses.

fn en_suffix(rng: &mut ChaCha8Rng) -> &'static str {
    match below(rng, 100) {
        0..45 => "Inc.",
        45..65 => "Ltd.",
        65..80 => "Limited",
        80..90 => "Corp.",
        90..95 => "Corporation",
        _ => "Incorporated",
    }
}

fn fr_suffix(rng: &mut ChaCha8Rng) -> &'static str {
    match below(rng, 100) {
        0..40 => "Inc.",
        40..75 => "Ltée",
        75..88 => "Limitée",
        _ => "Incorporée",
    }
}

/// `de Sudbury`, `d'Ottawa`.
fn de(city: &str) -> String {
    if city.starts_with(['A', 'E', 'I', 'O', 'U', 'É']) {
        format!("d'{city}")
    } else {
        format!("de {city}")
    }
}

fn numbered_name(rng: &mut ChaCha8Rng, french: bool, corporation_number: &str) -> String {
    let suffix = if french {
        pick(rng, &["Inc.", "Ltée", "Limitée"])
    } else {
        pick(rng, &["Inc.", "Inc.", "Inc.", "Limited", "Ltd.", "Corp."])
    };
    format!("{corporation_number} Ontario {suffix}")
}

fn surname(rng: &mut ChaCha8Rng, french: bool) -> &'static str {
    if french || chance(rng, 80) {
        pick(rng, FR_SURNAMES)
    } else {
        pick(rng, EN_SURNAMES)
    }
}

/// A legal name and whether it is a numbered company's.
fn legal_name(
    rng: &mut ChaCha8Rng,
    entity: EntityType,
    french: bool,
    municipality: usize,
    corporation_number: &str,
    numbered_allowed: bool,
) -> (String, bool) {
    let city = MUNICIPALITIES[municipality].name;
    let roll = below(rng, 100);
    let name = match (entity, french) {
        (EntityType::BusinessCorporation, false) => match roll {
            0..16 if numbered_allowed => {
                return (numbered_name(rng, false, corporation_number), true)
            }
            0..42 => format!(
                "{} {} {}",
                pick(rng, EN_PLACES),
                pick(rng, EN_INDUSTRIES),
                en_suffix(rng)
            ),
            42..62 => format!(
                "{} {} {}",
                surname(rng, false),
                pick(rng, EN_INDUSTRIES),
                en_suffix(rng)
            ),
            62..69 => format!(
                "{} & Sons {} {}",
                surname(rng, false),
                pick(rng, EN_INDUSTRIES),
                en_suffix(rng)
            ),
            69..76 => format!(
                "{} & {} {} {}",
                surname(rng, false),
                surname(rng, false),
                pick(rng, EN_INDUSTRIES),
                en_suffix(rng)
            ),
            76..86 => format!("{city} {} {}", pick(rng, EN_INDUSTRIES), en_suffix(rng)),
            86..93 => format!(
                "{}'s {} {}",
                pick(rng, EN_FIRST_NAMES),
                pick(rng, EN_SHOPS),
                en_suffix(rng)
            ),
            _ => format!(
                "{} {} Group {}",
                pick(rng, EN_PLACES),
                pick(rng, EN_INDUSTRIES),
                en_suffix(rng)
            ),
        },
        (EntityType::BusinessCorporation, true) => match roll {
            0..10 if numbered_allowed => {
                return (numbered_name(rng, true, corporation_number), true)
            }
            0..30 => format!(
                "{} {} {}",
                pick(rng, FR_INDUSTRIES),
                pick(rng, FR_FIRST_NAMES),
                fr_suffix(rng)
            ),
            30..50 => format!(
                "{} {} {}",
                pick(rng, FR_INDUSTRIES),
                surname(rng, true),
                fr_suffix(rng)
            ),
            50..62 => format!("Les Entreprises {} {}", surname(rng, true), fr_suffix(rng)),
            62..70 => format!(
                "{} {} et Fils {}",
                pick(rng, FR_INDUSTRIES),
                surname(rng, true),
                fr_suffix(rng)
            ),
            70..78 => format!(
                "Gestion {} {} {}",
                pick(rng, FR_FIRST_NAMES),
                surname(rng, true),
                fr_suffix(rng)
            ),
            78..90 => format!(
                "{} {} {}",
                pick(rng, FR_INDUSTRIES),
                pick(rng, FR_PLACES),
                fr_suffix(rng)
            ),
            90..95 => format!("Groupe {} {}", surname(rng, true), fr_suffix(rng)),
            _ => format!(
                "{} {} {}",
                pick(rng, FR_INDUSTRIES),
                de(city),
                fr_suffix(rng)
            ),
        },
        (EntityType::NotForProfit, false) => {
            let inc = if chance(rng, 300) { " Inc." } else { "" };
            match roll {
                0..20 => format!("{city} {}{inc}", pick(rng, EN_ASSOCIATIONS)),
                20..35 => format!(
                    "{} {}{inc}",
                    pick(rng, EN_PLACES),
                    pick(rng, EN_ASSOCIATIONS)
                ),
                35..50 => format!("Friends of {} Park{inc}", pick(rng, EN_PLACES)),
                50..65 => format!("The {} Family Foundation", surname(rng, false)),
                65..80 => format!(
                    "{} {} Society of {city}{inc}",
                    pick(rng, EN_PLACES),
                    pick(rng, EN_CAUSES)
                ),
                _ => format!("{city} {} Club{inc}", pick(rng, EN_SPORTS)),
            }
        }
        (EntityType::NotForProfit, true) => match roll {
            0..20 => format!("{} {}", pick(rng, FR_ASSOCIATIONS), de(city)),
            20..40 => format!(
                "Fondation {} {}",
                pick(rng, FR_FIRST_NAMES),
                surname(rng, true)
            ),
            40..55 => format!(
                "Centre culturel {}-{}",
                pick(rng, FR_FIRST_NAMES),
                surname(rng, true)
            ),
            55..70 => format!("Club Richelieu {}", de(city)),
            70..85 => format!("Les Amis {}", pick(rng, FR_PLACES)),
            _ => format!("Garderie {} Inc.", pick(rng, FR_PLACES)),
        },
        (EntityType::Professional, false) => match roll {
            0..40 => format!(
                "Dr. {} {} Medicine Professional Corporation",
                pick(rng, EN_FIRST_NAMES),
                surname(rng, false)
            ),
            40..60 => format!("{} Dentistry Professional Corporation", surname(rng, false)),
            60..80 => format!("{} Law Professional Corporation", surname(rng, false)),
            80..93 => format!("{} CPA Professional Corporation", surname(rng, false)),
            _ => format!(
                "{} Veterinary Professional Corporation",
                surname(rng, false)
            ),
        },
        (EntityType::Professional, true) => match roll {
            0..45 => format!(
                "Société professionnelle de médecine {} {}",
                pick(rng, FR_FIRST_NAMES),
                surname(rng, true)
            ),
            45..65 => format!(
                "Cabinet dentaire {}, société professionnelle",
                surname(rng, true)
            ),
            65..85 => format!("{} Avocats, société professionnelle", surname(rng, true)),
            _ => format!("{} CPA, société professionnelle", surname(rng, true)),
        },
        (EntityType::Cooperative, false) => match roll {
            0..35 => format!("{city} Housing Co-operative Inc."),
            35..60 => format!("{} Co-operative Homes Inc.", pick(rng, EN_PLACES)),
            60..80 => format!("{city} Farmers' Co-operative Inc."),
            _ => format!("{} Food Co-op Inc.", pick(rng, EN_PLACES)),
        },
        (EntityType::Cooperative, true) => match roll {
            0..30 => format!("Coopérative agricole {} Inc.", de(city)),
            30..60 => format!("Coopérative d'habitation {} Inc.", pick(rng, FR_PLACES)),
            60..80 => format!("Coopérative funéraire {}", de(city)),
            _ => format!("La Coop {}", pick(rng, FR_PLACES)),
        },
    };
    (name, false)
}

fn street_number(rng: &mut ChaCha8Rng) -> usize {
    match below(rng, 10) {
        0..3 => 1 + below(rng, 99),
        3..8 => 1 + below(rng, 999),
        _ => 1 + below(rng, 9999),
    }
}

fn office(rng: &mut ChaCha8Rng, municipality: usize, french: bool) -> OfficeAddress {
    let m = &MUNICIPALITIES[municipality];
    let number = street_number(rng);
    let unit =
        chance(rng, 150).then(|| 1 + below(rng, 40) * if chance(rng, 500) { 100 } else { 1 });
    let street_address = if french {
        let street = format!("{} {}", pick(rng, FR_STREET_TYPES), pick(rng, FR_STREETS));
        match unit {
            Some(u) => format!("{number} {street}, bureau {u}"),
            None => format!("{number} {street}"),
        }
    } else {
        let direction = match below(rng, 20) {
            0 => " East",
            1 => " West",
            2 => " North",
            3 => " South",
            _ => "",
        };
        let street = format!(
            "{} {}{direction}",
            pick(rng, EN_STREETS),
            pick(rng, EN_STREET_TYPES)
        );
        match unit {
            Some(u) => format!("{u}-{number} {street}"),
            None => format!("{number} {street}"),
        }
    };
    let prefix = pick(rng, m.postal);
    let postal_code = if prefix.len() == 7 {
        prefix.to_owned()
    } else {
        let letter = POSTAL_LETTERS[below(rng, POSTAL_LETTERS.len())];
        format!(
            "{prefix} {}{}{}",
            1 + below(rng, 9),
            char::from(letter),
            below(rng, 10)
        )
    };
    OfficeAddress {
        street_address,
        locality: m.name,
        postal_code,
    }
}

/// Letters a postal code uses (no D, F, I, O, Q, U).
const POSTAL_LETTERS: &[u8] = b"ABCEGHJKLMNPRSTVWXYZ";

/// An Ontario municipality: its name, its weight among registered offices (roughly its
/// population in thousands), how many businesses in a thousand there have French names, and
/// its postal-code prefixes (forward sortation areas; a rural town's full code).
#[derive(Debug)]
pub struct Municipality {
    /// `locality` as written.
    pub name: &'static str,
    weight: u32,
    french_per_mille: u32,
    postal: &'static [&'static str],
}

macro_rules! municipalities {
    ($(($name:expr, $w:expr, $fr:expr, [$($p:expr),+ $(,)?])),+ $(,)?) => {
        /// The municipalities of registered offices.
        pub const MUNICIPALITIES: &[Municipality] = &[
            $(Municipality { name: $name, weight: $w, french_per_mille: $fr, postal: &[$($p),+] }),+
        ];
    };
}

/// The word lists and municipalities, laid out by hand.
#[rustfmt::skip]
mod data {
    use super::Municipality;

    municipalities![
        ("Toronto", 2800, 35, [
            "M1B", "M1C", "M1E", "M1H", "M1K", "M1L", "M1M", "M1P", "M1R", "M1S", "M1T", "M1V",
            "M1W", "M2H", "M2J", "M2K", "M2M", "M2N", "M2P", "M2R", "M3A", "M3B", "M3C", "M3H",
            "M3J", "M3K", "M3M", "M3N", "M4A", "M4B", "M4C", "M4E", "M4G", "M4H", "M4J", "M4K",
            "M4L", "M4M", "M4N", "M4P", "M4R", "M4S", "M4T", "M4V", "M4W", "M4X", "M4Y", "M5A",
            "M5B", "M5C", "M5E", "M5G", "M5H", "M5J", "M5M", "M5N", "M5P", "M5R", "M5S", "M5T",
            "M5V", "M6A", "M6B", "M6C", "M6E", "M6G", "M6H", "M6J", "M6K", "M6L", "M6M", "M6N",
            "M6P", "M6R", "M6S", "M8V", "M8W", "M8X", "M8Y", "M8Z", "M9A", "M9B", "M9C", "M9L",
            "M9M", "M9N", "M9P", "M9R", "M9V", "M9W",
        ]),
        ("Ottawa", 1000, 180, [
            "K1B", "K1C", "K1E", "K1G", "K1H", "K1J", "K1K", "K1L", "K1M", "K1N", "K1P", "K1R",
            "K1S", "K1T", "K1V", "K1W", "K1X", "K1Y", "K1Z", "K2A", "K2B", "K2C", "K2E", "K2G",
            "K2H", "K2J", "K2K", "K2L", "K2M", "K2P", "K2R", "K2S", "K2T", "K2V", "K2W", "K4A",
        ]),
        ("Mississauga", 720, 10, [
            "L4T", "L4V", "L4W", "L4X", "L4Y", "L4Z", "L5A", "L5B", "L5C", "L5E", "L5G", "L5H",
            "L5J", "L5K", "L5L", "L5M", "L5N", "L5R", "L5T", "L5V", "L5W",
        ]),
        ("Brampton", 650, 5, [
            "L6P", "L6R", "L6S", "L6T", "L6V", "L6W", "L6X", "L6Y", "L6Z", "L7A",
        ]),
        ("Hamilton", 570, 10, [
            "L8E", "L8G", "L8H", "L8J", "L8K", "L8L", "L8M", "L8N", "L8P", "L8R", "L8S", "L8T",
            "L8V", "L8W", "L9A", "L9B", "L9C", "L9G", "L9H", "L9K",
        ]),
        ("London", 420, 10, [
            "N5V", "N5W", "N5X", "N5Y", "N5Z", "N6A", "N6B", "N6C", "N6E", "N6G", "N6H", "N6J",
            "N6K", "N6M", "N6P",
        ]),
        ("Markham", 340, 5, ["L3P", "L3R", "L3S", "L3T", "L6B", "L6C", "L6E", "L6G"]),
        ("Vaughan", 320, 5, ["L4H", "L4J", "L4K", "L4L", "L6A"]),
        ("Kitchener", 260, 5, [
            "N2A", "N2B", "N2C", "N2E", "N2G", "N2H", "N2M", "N2N", "N2P", "N2R",
        ]),
        ("Windsor", 230, 15, [
            "N8N", "N8P", "N8R", "N8S", "N8T", "N8W", "N8X", "N8Y", "N9A", "N9B", "N9C", "N9E",
            "N9G",
        ]),
        ("Oakville", 210, 5, ["L6H", "L6J", "L6K", "L6L", "L6M"]),
        ("Richmond Hill", 200, 5, ["L4B", "L4C", "L4E", "L4S"]),
        ("Burlington", 190, 5, ["L7L", "L7M", "L7N", "L7P", "L7R", "L7S", "L7T"]),
        ("Oshawa", 170, 10, ["L1G", "L1H", "L1J", "L1K", "L1L"]),
        ("Sudbury", 165, 260, ["P3A", "P3B", "P3C", "P3E", "P3G", "P3L", "P3N", "P3P", "P3Y"]),
        ("Barrie", 150, 10, ["L4M", "L4N", "L9J"]),
        ("Cambridge", 140, 5, ["N1R", "N1S", "N1T", "N3C", "N3E", "N3H"]),
        ("Guelph", 140, 5, ["N1E", "N1G", "N1H", "N1K", "N1L"]),
        ("St. Catharines", 135, 10, ["L2M", "L2N", "L2P", "L2R", "L2S", "L2T", "L2W"]),
        ("Kingston", 130, 20, ["K7K", "K7L", "K7M", "K7N", "K7P"]),
        ("Waterloo", 120, 5, ["N2J", "N2K", "N2L", "N2T", "N2V"]),
        ("Thunder Bay", 110, 20, ["P7A", "P7B", "P7C", "P7E", "P7G", "P7J", "P7K"]),
        ("Brantford", 100, 5, ["N3P", "N3R", "N3S", "N3T", "N3V"]),
        ("Niagara Falls", 90, 10, ["L2E", "L2G", "L2H", "L2J"]),
        ("Peterborough", 85, 10, ["K9H", "K9J", "K9K", "K9L"]),
        ("Sault Ste. Marie", 72, 40, ["P6A", "P6B", "P6C"]),
        ("Sarnia", 72, 20, ["N7S", "N7T", "N7V", "N7W", "N7X"]),
        ("Welland", 55, 120, ["L3B", "L3C"]),
        ("Belleville", 55, 15, ["K8N", "K8P", "K8R"]),
        ("North Bay", 52, 150, ["P1A", "P1B", "P1C"]),
        ("Cornwall", 47, 250, ["K6H", "K6J", "K6K"]),
        ("Timmins", 41, 380, ["P4N", "P4P", "P4R"]),
        ("Orillia", 33, 10, ["L3V"]),
        ("Rockland", 26, 600, ["K4K"]),
        ("Sturgeon Falls", 14, 600, ["P2B"]),
        ("Elliot Lake", 11, 150, ["P5A"]),
        ("Hawkesbury", 10, 750, ["K6A"]),
        ("Penetanguishene", 9, 200, ["L9M"]),
        ("Kirkland Lake", 8, 100, ["P2N"]),
        ("Kapuskasing", 8, 650, ["P5N"]),
        ("Hearst", 5, 850, ["P0L 1N0"]),
        ("Cochrane", 5, 400, ["P0L 1C0"]),
        ("Embrun", 5, 700, ["K0A 1W0"]),
        ("Casselman", 4, 800, ["K0A 1M0"]),
        ("Iroquois Falls", 4, 300, ["P0K 1E0"]),
        ("Alexandria", 3, 300, ["K0C 1A0"]),
        ("Chapleau", 2, 400, ["P0M 1K0"]),
        ("Smooth Rock Falls", 1, 600, ["P0L 2B0"]),
        ("Moonbeam", 1, 700, ["P0L 1V0"]),
        ("Verner", 1, 700, ["P0H 2M0"]),
    ];

    pub(super) const EN_PLACES: &[&str] = &[
        "Maple Leaf", "Northern Lights", "Great Lakes", "Lakeshore", "Bluewater",
        "Golden Horseshoe", "Trillium", "Algonquin", "Canadian Shield", "Red Oak", "Silver Birch",
        "Timberline", "Riverside", "Harbourfront", "Northstar", "True North", "Evergreen", "Summit",
        "Pinnacle", "Keystone", "Heritage", "Cornerstone", "Beacon", "Frontier", "Pioneer", "Crown",
        "Royal", "Dominion", "Georgian Bay", "Muskoka", "Niagara", "Ottawa Valley", "Huron",
        "Superior", "Kawartha", "Ironwood", "Cedar Ridge", "Stonebridge", "Willow Creek",
        "Blue Heron", "Loon Lake", "Beaver Creek", "Eastgate", "Westway", "Northgate", "Southshore",
        "Highland", "Oak Ridge", "Pine Valley", "Spruce Grove", "Rideau", "Thousand Islands",
        "Credit River", "Don Valley", "Humber", "Lake Simcoe", "Temagami", "Grand River",
        "Bruce Peninsula", "Polaris", "Aurora", "Sterling", "Meridian", "Apex", "Vantage",
        "Granite", "Limestone", "Tamarack", "Birchwood", "Fox Hollow", "Eagle Rock",
        "Moose Factory", "Caribou", "Wolf Lake", "Sunrise", "Harvest Moon", "Lighthouse", "Portage",
        "Voyageur", "Cobalt", "Nickel Belt",
    ];

    pub(super) const EN_INDUSTRIES: &[&str] = &[
        "Plumbing", "Electric", "Roofing", "Landscaping", "Construction", "Consulting", "Logistics",
        "Trucking", "Holdings", "Investments", "Capital", "Realty", "Developments", "Software",
        "Technologies", "Solutions", "Systems", "Dental Supply", "Pharmacy", "Bakery", "Catering",
        "Restaurants", "Foods", "Farms", "Auto Body", "Motors", "Marine", "Cleaning Services",
        "Design", "Media", "Printing", "Tool & Die", "Machining", "Steel Fabricators", "Lumber",
        "Renovations", "Heating & Cooling", "Mechanical", "Financial Services", "Insurance Brokers",
        "Travel", "Fitness", "Pet Supplies", "Hardware", "Brewing Company", "Distillery",
        "Coffee Roasters", "Accounting", "Property Management", "Paving", "Excavating", "Welding",
        "Towing", "Florists", "Optical", "Home Care", "Staffing", "Security", "Signs", "Glass",
        "Flooring", "Kitchens", "Pools", "Greenhouses", "Orchards", "Maple Products", "Outfitters",
        "Snow Removal", "Environmental", "Engineering", "Geomatics", "Aviation", "Mining Supply",
        "Forest Products", "Seafood", "Imports", "Wholesale", "Trading", "Cabinetry", "Masonry",
        "Drywall", "Painting", "Appliance Repair", "Car Wash", "Dry Cleaning", "Tutoring",
    ];

    pub(super) const EN_SHOPS: &[&str] = &[
        "Kitchen", "Pizza", "Bakery", "Barbershop", "Café", "Auto Repair", "Bistro", "Deli",
        "Diner", "Grocery", "Hair Studio", "Nail Salon", "Convenience", "Tailoring", "Catering",
        "Shawarma", "Noodle House", "Sushi", "Roti Shop", "Pho", "Bagels", "Fish & Chips",
        "Ice Cream",
    ];

    pub(super) const EN_FIRST_NAMES: &[&str] = &[
        "Sarah", "Michael", "Priya", "Wei", "Daniel", "Emily", "Mohammed", "Olivia", "Raj",
        "Jennifer", "David", "Aisha", "James", "Maria", "Tony", "Linda", "Kevin", "Fatima", "Steve",
        "Grace", "Arjun", "Mei", "Omar", "Hannah", "Carlos", "Anna", "Paul", "Nadia", "Ravi",
        "Julie", "Chris", "Amir", "Sofia", "Marco", "Joanne", "Vikram", "Lucy", "Hassan", "Karen",
        "Ming",
    ];

    pub(super) const EN_SURNAMES: &[&str] = &[
        "Smith", "Brown", "Tremblay", "Martin", "Roy", "Wilson", "MacDonald", "Gagnon", "Johnson",
        "Taylor", "Campbell", "Anderson", "Leblanc", "Lee", "Jones", "White", "Williams",
        "Thompson", "Morin", "Singh", "Patel", "Chen", "Wong", "Li", "Wang", "Zhang", "Liu",
        "Nguyen", "Tran", "Kim", "Park", "Khan", "Ali", "Ahmed", "Sharma", "Gill", "Sidhu",
        "Grewal", "Dhillon", "Rossi", "Russo", "Esposito", "Romano", "Colombo", "De Luca",
        "Ferreira", "Silva", "Santos", "Costa", "Pereira", "Kowalski", "Nowak", "Kovalenko",
        "Shevchenko", "Schmidt", "Wagner", "Fischer", "Van Dyk", "De Vries", "O'Brien", "O'Connor",
        "Murphy", "Kelly", "Sullivan", "Walsh", "McCarthy", "Fraser", "Stewart", "Robertson",
        "Reid", "Graham", "Hamilton", "Murray", "Hughes", "Clarke", "Mitchell", "Bell", "Gordon",
        "Cooper", "Baker", "Wright", "Walker", "Hall", "Young", "King", "Scott", "Green", "Hill",
        "Ross", "Papadopoulos", "Georgiou", "Haddad", "Khoury", "Mensah", "Okafor", "Abdi",
        "Yilmaz", "Kaur", "Hosseini", "Rahman", "Fernandes", "Gomes", "Bianchi", "Ricci", "Moreau",
        "Sinclair", "McLeod", "Cameron",
    ];

    pub(super) const FR_SURNAMES: &[&str] = &[
        "Gagné", "Bélanger", "Côté", "Lévesque", "Thériault", "Bouchard", "Gauthier", "Lavoie",
        "Fortin", "Pelletier", "Bérubé", "Séguin", "Lalonde", "Charbonneau", "Proulx", "Desjardins",
        "Bégin", "Ménard", "Lefebvre", "Brûlé", "Giroux", "Poirier", "Cloutier", "Ouellet",
        "Thibodeau", "Hébert", "Mercier", "Bisson", "Lacroix", "Larocque", "Chénier", "Léger",
        "Dufresne", "Paré", "Boisvert", "Rhéaume", "Gélinas", "Lapointe", "Dubé", "Bédard",
        "Leclerc", "Beaulieu", "Lemieux", "Grégoire", "Guérin", "Aubé", "Fréchette", "Allard",
        "Paquette", "Dionne", "Bourgeois", "Labelle", "Tremblay", "Gagnon", "Roy", "Morin",
        "Leblanc", "Gravel", "Sénécal", "Légaré", "Landry", "Chartrand", "Lafrenière", "Bérard",
        "Gosselin", "Théberge",
    ];

    pub(super) const EN_ASSOCIATIONS: &[&str] = &[
        "Minor Hockey Association", "Food Bank", "Community Health Centre", "Chamber of Commerce",
        "Humane Society", "Arts Council", "Historical Society", "Seniors' Club", "Curling Club",
        "Rowing Club", "Youth Soccer League", "Community Foundation", "Hospice", "Literacy Council",
        "Theatre Guild", "Business Improvement Area", "Residents' Association", "Music Festival",
    ];

    pub(super) const EN_CAUSES: &[&str] = &[
        "Heritage", "Literacy", "Wildlife", "Music", "Refugee Support", "Mental Health",
        "Watershed", "Family Services",
    ];

    pub(super) const EN_SPORTS: &[&str] = &[
        "Curling", "Soccer", "Rowing", "Lawn Bowling", "Ski", "Tennis", "Cricket", "Snowmobile",
        "Figure Skating", "Lacrosse",
    ];

    pub(super) const FR_FIRST_NAMES: &[&str] = &[
        "Éloïse", "Amélie", "Chloé", "Hélène", "Josée", "Geneviève", "Mélanie", "Noémie", "Zoé",
        "Léa", "André", "Benoît", "François", "Gérard", "Jérôme", "Stéphane", "Rémi", "Réjean",
        "Aurélie", "Ginette", "Gaëtan", "Noël", "Loïc", "Anaïs", "Céline", "Hervé", "Sylvie",
        "Marc", "Luc", "Julie", "Denis", "Nathalie", "Michel", "Pierre", "Claude", "Mathieu",
        "Émilie", "Frédéric", "Gisèle", "Rosaire", "Thérèse", "Ghislain", "Lucien", "Annick",
        "Réal",
    ];

    pub(super) const FR_INDUSTRIES: &[&str] = &[
        "Boulangerie", "Pâtisserie", "Épicerie", "Quincaillerie", "Librairie", "Pharmacie",
        "Fromagerie", "Traiteur", "Construction", "Transport", "Plomberie", "Électricité",
        "Rénovations", "Menuiserie", "Services forestiers", "Garage", "Excavation", "Toitures",
        "Déneigement", "Imprimerie", "Services comptables", "Café", "Restaurant", "Ferme",
        "Érablière", "Pourvoirie", "Salon de coiffure", "Boucherie", "Fleuriste",
        "Agence de voyages", "Meubles", "Vitrerie", "Pavage", "Camionnage", "Distribution",
        "Informatique", "Aménagement paysager", "Chauffage", "Mécanique", "Débosselage",
        "Assurances", "Immeubles", "Entretien ménager",
    ];

    pub(super) const FR_PLACES: &[&str] = &[
        "du Nord", "de la Rivière", "des Érables", "du Vieux-Moulin", "de l'Outaouais",
        "du Nouvel-Ontario", "de la Baie", "du Lac", "des Pins", "du Boréal", "de la Vallée",
        "du Village", "des Pionniers", "du Marché", "de la Colline", "des Quatre-Saisons",
        "du Vieux-Port", "de l'Île", "des Bouleaux", "de la Forêt", "du Ruisseau", "des Cèdres",
    ];

    pub(super) const FR_ASSOCIATIONS: &[&str] = &[
        "Association des gens d'affaires", "Chambre de commerce", "Société Saint-Jean-Baptiste",
        "Conseil des arts", "Centre de santé communautaire", "Banque alimentaire",
        "Club de l'âge d'or", "Chorale", "Association du hockey mineur", "Centre culturel",
    ];

    pub(super) const EN_STREETS: &[&str] = &[
        "King", "Queen", "Yonge", "Bay", "Dundas", "Bloor", "College", "Main", "Church",
        "Wellington", "Victoria", "Elgin", "Rideau", "Bank", "Richmond", "Talbot", "Ouellette",
        "Barton", "Hurontario", "Lakeshore", "Front", "Water", "Mill", "Bridge", "Park", "Maple",
        "Oak", "Elm", "Cedar", "Birch", "Pine", "Spruce", "Willow", "Highland", "Riverside",
        "Hillcrest", "Sunset", "Brock", "Simcoe", "Colborne", "Dufferin", "Spadina", "Jarvis",
        "Sherbourne", "Parliament", "Eglinton", "Lawrence", "Sheppard", "Finch", "Steeles",
        "Danforth", "Kennedy", "Warden", "Carling", "Merivale", "Montreal", "St. Laurent", "Innes",
        "Hunt Club", "Regent", "Lorne", "Paris", "Algonquin", "Cumberland", "Red River", "Memorial",
        "Upper James", "Wyandotte", "Commissioners", "Wonderland", "Fanshawe", "Princess",
        "Division", "Gardiners", "Cartier", "Laurier", "Huron", "Ontario", "Erie", "Pembroke",
    ];

    pub(super) const EN_STREET_TYPES: &[&str] = &[
        "Street", "Street", "Street", "Street", "Street", "Street", "Avenue", "Avenue", "Avenue",
        "Avenue", "Road", "Road", "Road", "Drive", "Drive", "Crescent", "Boulevard", "Court",
        "Lane", "Way", "Place", "Parkway", "Trail", "Line",
    ];

    pub(super) const FR_STREET_TYPES: &[&str] = &[
        "rue", "rue", "rue", "rue", "rue", "rue", "avenue", "boulevard", "chemin", "chemin",
        "promenade", "place",
    ];

    pub(super) const FR_STREETS: &[&str] = &[
        "Principale", "Notre-Dame", "Saint-Jean-Baptiste", "Champlain", "Laurier", "de l'Église",
        "des Érables", "du Lac", "de la Gare", "Sainte-Anne", "Lévesque", "des Pionniers",
        "du Moulin", "Cartier", "Brébeuf", "Frontenac", "Montcalm", "de la Rivière", "Saint-Joseph",
        "Dollard", "Sainte-Thérèse", "des Bouleaux", "du Collège", "Lafontaine", "Papineau",
        "de l'Hôpital", "Jolliet", "Élisabeth", "Saint-Laurent", "des Épinettes", "Georges",
        "Front", "King", "Queen", "Victoria", "Saint-Pierre", "Marguerite-Bourgeoys",
    ];
}

pub use data::MUNICIPALITIES;
use data::*;

#[cfg(test)]
mod tests {
    use super::*;
    use bizcred_schemas::{
        check_claims, Address, BusinessNumber, CertificateOfIncorporation, Completeness,
        CorporationNumber, CredentialType, PostalCode,
    };
    use std::collections::{HashMap, HashSet};

    fn bytes(seed: u64, count: usize, generation: u32) -> Vec<u8> {
        let mut out = Vec::new();
        write_jsonl(seed, count, generation, &mut out).expect("written");
        out
    }

    fn text_lines(b: &[u8]) -> Vec<&str> {
        std::str::from_utf8(b).expect("UTF-8").lines().collect()
    }

    /// Checks one line against EXTRACT.md with the schemas' own types; returns its
    /// corporation number and `amalgamated_into`.
    fn check_line(line: &str, last: Date) -> (String, Option<String>) {
        let v: Value = serde_json::from_str(line).expect("JSON");
        let o = v.as_object().expect("an object");
        let allowed = [
            "corporation_number",
            "legal_name",
            "entity_type",
            "corporate_status",
            "incorporation_date",
            "business_number",
            "registered_office_address",
            "amalgamated_into",
        ];
        for k in o.keys() {
            assert!(
                allowed.contains(&k.as_str()),
                "unknown member {k} in {line}"
            );
        }
        let cn: CorporationNumber =
            serde_json::from_value(v["corporation_number"].clone()).expect("corporation number");
        let name = v["legal_name"].as_str().expect("legal_name");
        assert!(
            (1..=512).contains(&name.chars().count()) && name.trim() == name,
            "{line}"
        );
        assert!(
            EntityType::ALL
                .iter()
                .any(|t| t.as_str() == v["entity_type"].as_str().expect("entity_type")),
            "{line}"
        );
        let status = v["corporate_status"].as_str().expect("status");
        assert!(
            CorporateStatus::ALL.iter().any(|s| s.as_str() == status),
            "{line}"
        );
        let d: Date =
            serde_json::from_value(v["incorporation_date"].clone()).expect("incorporation date");
        assert!(d >= date(1950, 1, 1) && d <= last, "{line}");
        if let Some(bn) = o.get("business_number") {
            let _: BusinessNumber = serde_json::from_value(bn.clone()).expect("BN9");
        }
        let a: Address = serde_json::from_value(v["registered_office_address"].clone())
            .expect("address with exactly the five members");
        let _: PostalCode = a.postal_code.as_ref().parse().expect("postal code");
        assert_eq!((a.region.as_str(), a.country.as_str()), ("ON", "CA"));
        let into = o.get("amalgamated_into").map(|x| {
            let n: CorporationNumber = serde_json::from_value(x.clone()).expect("into");
            n.to_string()
        });
        assert_eq!(into.is_some(), status == "amalgamated", "{line}");
        // With the jurisdiction the issuer adds, the line is a complete certificate of
        // incorporation by the schema.
        let mut claims = v.clone();
        claims["jurisdiction"] = json!("CA-ON");
        let violations = check_claims(
            CredentialType::CertificateOfIncorporation,
            &claims,
            Completeness::Complete,
        );
        assert!(violations.is_empty(), "{violations:?} in {line}");
        let typed: CertificateOfIncorporation =
            serde_json::from_value(claims).expect("typed claims");
        assert_eq!(typed.corporation_number, cn);
        (cn.to_string(), into)
    }

    fn check_extract(b: &[u8], generation: u32) {
        let mut numbers = HashSet::new();
        let mut bns = HashSet::new();
        let mut intos = Vec::new();
        for line in text_lines(b) {
            let (cn, into) = check_line(line, extract_date(generation));
            assert!(
                numbers.insert(cn.clone()),
                "corporation number {cn} repeated"
            );
            let v: Value = serde_json::from_str(line).expect("JSON");
            if let Some(bn) = v["business_number"].as_str() {
                assert!(bns.insert(bn.to_owned()), "business number {bn} repeated");
            }
            if let Some(into) = into {
                assert_ne!(into, cn);
                intos.push(into);
            }
        }
        assert!(!intos.is_empty());
        for into in intos {
            assert!(numbers.contains(&into), "amalgamated into absent {into}");
        }
    }

    #[test]
    fn extract_is_deterministic_for_a_seed() {
        let a = bytes(7, 3000, 1);
        assert_eq!(a, bytes(7, 3000, 1));
        assert_ne!(a, bytes(8, 3000, 1));
        assert_eq!(text_lines(&a).len(), 3000);
        // A line is computed alone, as written.
        for i in [0, 1, 2, 999, 1500, 2999] {
            let line = business(7, 3000, 1, i).expect("ok").expect("present");
            assert_eq!(line.to_json(), text_lines(&a)[i]);
        }
        assert_eq!(business(7, 3000, 1, 3000).expect("ok"), None);
        let g3 = bytes(7, 3000, 3);
        let lines = text_lines(&g3);
        let last = business(7, 3000, 3, lines.len() - 1)
            .expect("ok")
            .expect("last");
        assert_eq!(last.to_json(), *lines.last().expect("a line"));
    }

    #[test]
    fn every_line_of_the_extract_is_valid() {
        for g in [1, 2, 3] {
            check_extract(&bytes(11, 20_000, g), g);
        }
        // One corporation has nothing to amalgamate into.
        let one = bytes(5, 1, 1);
        let line = text_lines(&one)[0];
        let (_, into) = check_line(line, extract_date(1));
        assert_eq!(into, None);
    }

    #[test]
    fn the_population_looks_like_ontario() {
        let mut out = Vec::new();
        let s = write_jsonl(3, 50_000, 1, &mut out).expect("written");
        assert_eq!(s.lines, 50_000);
        assert_eq!(s.bytes, out.len() as u64);
        let share = |n: u64| n as f64 / s.lines as f64;
        assert!(share(s.by_status[0]) > 0.7, "{:?}", s.by_status);
        assert!(s.by_status.iter().all(|&n| n > 0), "{:?}", s.by_status);
        assert!(share(s.by_entity_type[0]) > 0.8, "{:?}", s.by_entity_type);
        assert!(
            s.by_entity_type.iter().all(|&n| n > 0),
            "{:?}",
            s.by_entity_type
        );
        assert!((0.8..0.95).contains(&share(s.with_business_number)));
        assert!(share(s.french_names) > 0.03, "{}", s.french_names);
        assert!(share(s.accented_names) > 0.05, "{}", s.accented_names);
        let text = String::from_utf8(out).expect("UTF-8");
        for needle in [
            " Ontario Inc.\"",
            " Ltée\"",
            " Incorporée\"",
            " Limited\"",
            " Corp.\"",
            "\"Les Entreprises ",
            "Professional Corporation\"",
            "\"locality\":\"Hearst\"",
            "\"postal_code\":\"P0L 1N0\"",
            " rue ",
            " Street",
        ] {
            assert!(text.contains(needle), "no {needle}");
        }
        let mut by_city: HashMap<&str, HashSet<char>> = HashMap::new();
        let mut seven = 0;
        let mut ten = 0;
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("JSON");
            let a = &v["registered_office_address"];
            let city = MUNICIPALITIES
                .iter()
                .find(|m| m.name == a["locality"].as_str().expect("locality"))
                .expect("a municipality");
            let pc = a["postal_code"].as_str().expect("postal code");
            assert!(
                city.postal.iter().any(|p| pc.starts_with(p)),
                "{pc} in {}",
                city.name
            );
            by_city
                .entry(city.name)
                .or_default()
                .insert(pc.chars().next().expect("a letter"));
            match v["corporation_number"].as_str().expect("number").len() {
                7 => seven += 1,
                10 => ten += 1,
                n => panic!("{n} digits"),
            }
            if v["corporation_number"].as_str().map(str::len) == Some(10) {
                assert!(v["incorporation_date"].as_str().expect("date") >= "2021-10-19");
            }
        }
        assert!(seven > 3 * ten && ten > 1000, "{seven} {ten}");
        assert_eq!(by_city["Toronto"], HashSet::from(['M']));
        assert_eq!(by_city["Ottawa"], HashSet::from(['K']));
        assert_eq!(by_city["Sudbury"], HashSet::from(['P']));
        assert_eq!(by_city["London"], HashSet::from(['N']));
    }

    #[test]
    fn every_municipality_postal_prefix_is_valid() {
        for m in MUNICIPALITIES {
            for p in m.postal {
                let full = if p.len() == 7 {
                    (*p).to_owned()
                } else {
                    format!("{p} 1A1")
                };
                assert!(full.parse::<PostalCode>().is_ok(), "{full}");
            }
        }
    }

    #[test]
    fn generation_two_changes_about_one_percent_and_keeps_the_rest() {
        let count = 40_000;
        let g1 = bytes(7, count, 1);
        let g2 = bytes(7, count, 2);
        let (l1, l2) = (text_lines(&g1), text_lines(&g2));
        assert!(
            l2.len() > count,
            "new amalgamated corporations are appended"
        );
        let mut changed = 0;
        let mut statuses = HashMap::new();
        let mut names = 0;
        let mut moves = 0;
        let g2_lines: Vec<ExtractLine> = generate(7, count, 2).expect("ok").collect();
        for i in 0..count {
            let line = &g2_lines[i];
            assert_eq!(line.to_json(), l2[i]);
            if l1[i] == l2[i] {
                assert_eq!(line.change, None, "{}", l2[i]);
                continue;
            }
            changed += 1;
            let (a, b): (Value, Value) = (
                serde_json::from_str(l1[i]).expect("JSON"),
                serde_json::from_str(l2[i]).expect("JSON"),
            );
            assert_eq!(a["corporation_number"], b["corporation_number"]);
            assert_eq!(a["incorporation_date"], b["incorporation_date"]);
            assert!(
                CorporateStatus::ALL[..2]
                    .iter()
                    .any(|s| a["corporate_status"] == s.as_str()),
                "only live corporations change: {}",
                l1[i]
            );
            match line.change.expect("a change") {
                Change::Name => {
                    names += 1;
                    assert_ne!(a["legal_name"], b["legal_name"]);
                    assert_eq!(
                        a["registered_office_address"],
                        b["registered_office_address"]
                    );
                }
                Change::Address => {
                    moves += 1;
                    assert_ne!(
                        a["registered_office_address"],
                        b["registered_office_address"]
                    );
                    assert_eq!(a["legal_name"], b["legal_name"]);
                }
                Change::Dissolved => assert_eq!(b["corporate_status"], "dissolved"),
                Change::Amalgamated => {
                    assert_eq!(b["corporate_status"], "amalgamated");
                    let into = b["amalgamated_into"].as_str().expect("into");
                    let born = l2[count..]
                        .iter()
                        .find(|l| l.contains(&format!("\"corporation_number\":\"{into}\"")))
                        .expect("the new corporation is a new line");
                    assert!(born.contains("\"corporate_status\":\"active\""));
                    // Its pair mate amalgamated into the same corporation.
                    let mate = if i.is_multiple_of(2) { i + 1 } else { i - 1 };
                    assert_eq!(g2_lines[mate].amalgamated_into.as_deref(), Some(into));
                }
                Change::New => panic!("an original line is not new"),
            }
            *statuses
                .entry(b["corporate_status"].as_str().expect("status").to_owned())
                .or_insert(0) += 1;
        }
        let fraction = f64::from(changed) / count as f64;
        assert!((0.007..0.016).contains(&fraction), "{fraction}");
        assert!(names > 0 && moves > 0, "{names} {moves}");
        assert!(statuses.contains_key("dissolved") && statuses.contains_key("amalgamated"));
        for line in &g2_lines[count..] {
            assert_eq!(line.change, Some(Change::New));
            assert_eq!(line.incorporation_date, extract_date(2));
            assert_eq!(line.corporation_number.len(), 10);
        }
        // Generation 3 keeps generation 2's new lines (changed or not) and adds its own.
        let g3: Vec<ExtractLine> = generate(7, count, 3).expect("ok").collect();
        let born2 = g2_lines.len() - count;
        assert!(g3.len() > g2_lines.len());
        for (x, y) in g2_lines[count..].iter().zip(&g3[count..count + born2]) {
            assert_eq!(x.corporation_number, y.corporation_number);
        }
    }

    #[test]
    fn names_are_english_and_french_with_accents() {
        let lines: Vec<ExtractLine> = generate(1, 20_000, 1).expect("ok").collect();
        let accented: Vec<&ExtractLine> = lines
            .iter()
            .filter(|l| l.french && !l.legal_name.is_ascii())
            .collect();
        assert!(accented.len() > 200, "{}", accented.len());
        assert!(lines
            .iter()
            .any(|l| !l.french && l.legal_name.ends_with(" Ltd.")));
        let (i, line) = french_business(1, 2_000, 1).expect("ok").expect("one");
        assert_eq!(business(1, 2_000, 1, i).expect("ok"), Some(line.clone()));
        assert!(line.french && !line.legal_name.is_ascii());
        assert_eq!(line.corporate_status, CorporateStatus::Active);
        assert!(line.business_number.is_some());
        assert_eq!(
            line.to_value()["legal_name"].as_str(),
            Some(line.legal_name.as_str())
        );
    }

    #[test]
    fn business_numbers_carry_a_luhn_check_digit() {
        assert_eq!(luhn_check_digit("12345678"), 2);
        assert_eq!(luhn_check_digit("81234567"), 6);
        let g = Gen::new(1, 10);
        for key in 0..10_000 {
            let bn = g.business_number(key);
            assert!(bn.parse::<BusinessNumber>().is_ok(), "{bn}");
        }
    }

    #[test]
    fn bounds_are_refused_with_a_reason() {
        let e = generate(1, MAX_COUNT + 1, 1).expect_err("too many");
        assert_eq!(e.code(), ReasonCode::ConfigInvalid);
        for g in [0, MAX_GENERATION + 1] {
            let e = write_jsonl(1, 10, g, Vec::new()).expect_err("generation");
            assert_eq!(e.code(), ReasonCode::ConfigInvalid);
        }
        assert_eq!(generate(1, 0, 1).expect("empty").count(), 0);
        assert_eq!(extract_date(1).to_string(), "2026-10-31");
        assert_eq!(extract_date(2).to_string(), "2026-11-01");
        assert_eq!(extract_date(MAX_GENERATION).to_string(), "2026-11-19");
    }
}
