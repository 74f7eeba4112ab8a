//! Bulk issuance of public credentials from the registry's extract (`issuer/EXTRACT.md`): one
//! public certificate of incorporation per business, with no holder key (`cnf`) and no personal
//! data, so it can never stand in for the business's own key-bound credential.
//!
//! A run reads lines, validates each on its own (a bad line is reported with its line number
//! and reason code and skipped), and issues in chunks: each chunk's credentials are signed on
//! every core, then recorded in one transaction with the revocation of the credentials they
//! replace ([`crate::store::Store::record_public`]). A business whose content is unchanged is
//! not issued again; a changed one gets a new credential and its previous one is revoked in the
//! same transaction. The status lists roll over when full; they are re-signed from their
//! stored bits at the end of the run.

use std::collections::{HashMap, HashSet};

use rand_core::SeedableRng;
use serde::Serialize;
use serde_json::{Map, Value};

use bizcred_core::sd_jwt_vc::{self, Issuance, StatusReference};
use bizcred_schemas::CertificateOfIncorporation;
use bizcred_schemas::{check_claims, Completeness, CredentialType, Date, ReasonCode};

use super::{random_id, Error, Issuer};
use crate::store::{
    sha256_hex, CredentialRecord, CredentialStatus, PublicIssue, PublicRecord, StoreError,
};

/// Longest extract line accepted (bytes).
pub const MAX_EXTRACT_LINE: usize = 16 * 1024;
/// Businesses issued per transaction.
pub const BULK_CHUNK: usize = 2_000;
/// Skipped lines reported one by one (every one is counted).
pub const MAX_REPORTED_SKIPS: usize = 1_000;

/// The members a line may have.
const MEMBERS: [&str; 8] = [
    "corporation_number",
    "legal_name",
    "entity_type",
    "corporate_status",
    "incorporation_date",
    "registered_office_address",
    "business_number",
    "amalgamated_into",
];

/// One business of the extract, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Business {
    /// The corporation number.
    pub subject: String,
    /// The credential's claims (the line's members and `jurisdiction`).
    pub claims: Map<String, Value>,
    /// SHA-256 (hex) of the claims, canonical: what "unchanged" compares.
    pub content_sha256: String,
}

/// Why a line was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// The line number, from 1.
    pub line: u64,
    /// The reason code.
    pub code: ReasonCode,
    /// A sentence.
    pub message: String,
}

/// Parses and validates one extract line (`today`: no incorporation date may be later).
pub fn parse_line(text: &str, today: Date) -> Result<Business, (ReasonCode, String)> {
    if text.len() > MAX_EXTRACT_LINE {
        return Err((
            ReasonCode::ExtractLineInvalid,
            format!(
                "the line has {} bytes; the limit is {MAX_EXTRACT_LINE}",
                text.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| (ReasonCode::ExtractLineInvalid, format!("not JSON: {e}")))?;
    let Value::Object(mut line) = value else {
        return Err((
            ReasonCode::ExtractLineInvalid,
            "the line is not a JSON object".into(),
        ));
    };
    if line.contains_key("directors") {
        return Err((
            ReasonCode::ExtractPersonalData,
            "the line lists directors: public credentials carry no personal data".into(),
        ));
    }
    if let Some(k) = line.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
        return Err((
            ReasonCode::ExtractLineInvalid,
            format!(
                "unknown member {:?}",
                k.chars().take(64).collect::<String>()
            ),
        ));
    }
    let amalgamated = line.get("corporate_status").and_then(Value::as_str) == Some("amalgamated");
    if amalgamated != line.contains_key("amalgamated_into") {
        return Err((
            ReasonCode::ExtractAmalgamation,
            if amalgamated {
                "an amalgamated corporation must name amalgamated_into".into()
            } else {
                "amalgamated_into is only for an amalgamated corporation".into()
            },
        ));
    }
    line.insert("jurisdiction".into(), Value::String("CA-ON".into()));
    let root = Value::Object(line);
    if let Some(v) = check_claims(
        CredentialType::CertificateOfIncorporation,
        &root,
        Completeness::Complete,
    )
    .into_iter()
    .next()
    {
        return Err((v.code, v.to_string()));
    }
    // The typed claims: the identifier checks passed; serialized in their declared order,
    // they are the canonical content.
    let typed: CertificateOfIncorporation = serde_json::from_value(root).map_err(|e| {
        (
            ReasonCode::ExtractLineInvalid,
            format!("the claims do not read: {e}"),
        )
    })?;
    if typed.incorporation_date > today {
        return Err((
            ReasonCode::ExtractLineInvalid,
            format!(
                "incorporation_date {} is after the extract's date {today}",
                typed.incorporation_date
            ),
        ));
    }
    let canonical = serde_json::to_vec(&typed).map_err(|e| {
        (
            ReasonCode::ExtractLineInvalid,
            format!("the claims do not encode: {e}"),
        )
    })?;
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&canonical) else {
        return Err((
            ReasonCode::ExtractLineInvalid,
            "the claims do not encode as an object".into(),
        ));
    };
    Ok(Business {
        subject: typed.corporation_number.to_string(),
        content_sha256: sha256_hex(&canonical),
        claims,
    })
}

/// What a run did (so far).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BulkCounts {
    /// Lines read (blank lines not counted).
    pub lines: u64,
    /// Businesses issued a public credential for the first time.
    pub issued: u64,
    /// Businesses whose content changed: issued again, the previous credential revoked.
    pub reissued: u64,
    /// Businesses whose credential is current (nothing issued).
    pub unchanged: u64,
    /// Lines skipped (bad or repeated).
    pub skipped: u64,
}

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct BulkReport {
    /// The counts.
    #[serde(flatten)]
    pub counts: BulkCounts,
    /// The first [`MAX_REPORTED_SKIPS`] skipped lines.
    pub skipped_lines: Vec<LineError>,
    /// The public feed's position after the run (the last credential recorded).
    pub last_seq: Option<u64>,
}

/// A bulk run in progress: feed it lines ([`BulkRun::line`]), then [`BulkRun::finish`].
pub struct BulkRun<'a> {
    issuer: &'a Issuer,
    today: Date,
    seen: HashSet<String>,
    /// Lines read, not yet parsed (parsed a chunk at a time, on every core).
    raw: Vec<(u64, String)>,
    pending: Vec<Business>,
    counts: BulkCounts,
    skipped: Vec<LineError>,
    last_seq: Option<u64>,
    /// Where the next free index is looked for, per list.
    cursor: HashMap<u32, u64>,
    /// The chunk being recorded, with the recording thread.
    inflight: Option<InFlight>,
}

/// A chunk being recorded: what it issues, and the thread recording it.
type InFlight = (
    Vec<(Business, Option<PublicRecord>)>,
    std::thread::JoinHandle<Result<Vec<PublicRecord>, StoreError>>,
);

impl std::fmt::Debug for BulkRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkRun")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// Starts a bulk run of public certificates of incorporation. The issuer must issue that
    /// type.
    pub fn bulk(&self) -> Result<BulkRun<'_>, Error> {
        let slug = CredentialType::CertificateOfIncorporation.slug();
        if self.issues(slug).is_none() {
            return Err(Error::UnknownConfiguration {
                id: slug.to_owned(),
            });
        }
        let now = self.now();
        let today = bizcred_core::time::format_utc(now)[..10]
            .parse::<Date>()
            .map_err(|_| Error::BadCredentialRequest("the clock is not a calendar date"))?;
        Ok(BulkRun {
            issuer: self,
            today,
            seen: HashSet::new(),
            raw: Vec::with_capacity(BULK_CHUNK),
            pending: Vec::with_capacity(BULK_CHUNK),
            counts: BulkCounts::default(),
            skipped: Vec::new(),
            last_seq: None,
            cursor: HashMap::new(),
            inflight: None,
        })
    }
}

impl BulkRun<'_> {
    /// The counts so far.
    pub fn counts(&self) -> &BulkCounts {
        &self.counts
    }

    /// Counts line `line` as read and skipped, for a reason found before its text (not UTF-8).
    pub fn reject_line(&mut self, line: u64, code: ReasonCode, message: String) {
        self.counts.lines += 1;
        self.skip(line, code, message);
    }

    fn skip(&mut self, line: u64, code: ReasonCode, message: String) {
        self.counts.skipped += 1;
        if self.skipped.len() < MAX_REPORTED_SKIPS {
            self.skipped.push(LineError {
                line,
                code,
                message,
            });
        }
    }

    /// Takes line `number` (from 1). A bad line is counted and reported, never an error; the
    /// error is a failure to record (nothing of the chunk being recorded was written).
    pub fn line(&mut self, number: u64, text: &str) -> Result<(), Error> {
        if text.trim().is_empty() {
            return Ok(());
        }
        self.counts.lines += 1;
        self.raw.push((number, text.to_owned()));
        if self.raw.len() >= BULK_CHUNK {
            self.parse_raw();
            self.issue_pending()?;
        }
        Ok(())
    }

    /// Parses the lines read, on every core, then keeps the good ones in order (a repeated
    /// corporation number is skipped at its second line).
    fn parse_raw(&mut self) {
        let raw = std::mem::take(&mut self.raw);
        let today = self.today;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 16);
        let per = raw.len().div_ceil(threads).max(1);
        type Parsed = Vec<(u64, Result<Business, (ReasonCode, String)>)>;
        let parts: Vec<Parsed> = std::thread::scope(|s| {
            let handles: Vec<_> = raw
                .chunks(per)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|(n, text)| (*n, parse_line(text, today)))
                            .collect::<Parsed>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(raw.chunks(per))
                .map(|(h, part)| {
                    h.join().unwrap_or_else(|_| {
                        part.iter()
                            .map(|(n, _)| {
                                (
                                    *n,
                                    Err((
                                        ReasonCode::ExtractLineInvalid,
                                        "the line could not be parsed".to_owned(),
                                    )),
                                )
                            })
                            .collect()
                    })
                })
                .collect()
        });
        for (number, parsed) in parts.into_iter().flatten() {
            match parsed {
                Err((code, message)) => self.skip(number, code, message),
                Ok(b) => {
                    if self.seen.contains(&b.subject) {
                        let m = format!("corporation {} appears earlier in the extract", b.subject);
                        self.skip(number, ReasonCode::ExtractDuplicate, m);
                    } else {
                        self.seen.insert(b.subject.clone());
                        self.pending.push(b);
                    }
                }
            }
        }
    }

    /// Issues what is pending, re-signs the status lists that changed, and reports.
    pub fn finish(mut self) -> Result<BulkReport, Error> {
        self.parse_raw();
        self.issue_pending()?;
        self.settle()?;
        self.issuer.refresh_status_lists()?;
        Ok(BulkReport {
            counts: self.counts,
            skipped_lines: self.skipped,
            last_seq: self.last_seq,
        })
    }

    /// Looks up, allocates and signs what is pending, then records it on a thread of its own
    /// while the caller reads, parses and signs the next chunk (the previous chunk's recording
    /// is settled first: its outcome counted, or its error answered).
    fn issue_pending(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let subjects: Vec<String> = batch.iter().map(|b| b.subject.clone()).collect();
        let current = self.issuer.store.public_records(&subjects)?;
        let mut todo: Vec<(Business, Option<PublicRecord>)> = Vec::new();
        for b in batch {
            match current.get(&b.subject) {
                Some(r) if r.content_sha256 == b.content_sha256 => self.counts.unchanged += 1,
                r => todo.push((b, r.cloned())),
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        let now = self.issuer.now();
        let indices = self.allocate(todo.len(), now)?;
        let items = self.sign(&todo, &indices, now)?;
        self.settle()?;
        let store = self.issuer.store.clone();
        let handle = std::thread::spawn(move || store.record_public(&items, now));
        self.inflight = Some((todo, handle));
        Ok(())
    }

    /// Waits for the chunk being recorded and counts it. A chunk refused because another
    /// issuance took one of its indices meanwhile (another instance) is allocated, signed and
    /// recorded again, a few times, rather than failing the run.
    fn settle(&mut self) -> Result<(), Error> {
        let Some((todo, handle)) = self.inflight.take() else {
            return Ok(());
        };
        let mut outcome = handle
            .join()
            .unwrap_or(Err(StoreError::Poisoned("bulk recording thread")));
        for _ in 0..3 {
            match outcome {
                Ok(recorded) => {
                    for (_, r) in &todo {
                        if r.is_some() {
                            self.counts.reissued += 1;
                        } else {
                            self.counts.issued += 1;
                        }
                    }
                    if let Some(r) = recorded.last() {
                        self.last_seq = Some(r.seq);
                    }
                    return Ok(());
                }
                Err(StoreError::IndexTaken(_)) => {
                    self.cursor.clear();
                    let now = self.issuer.now();
                    let indices = self.allocate(todo.len(), now)?;
                    let items = self.sign(&todo, &indices, now)?;
                    outcome = self.issuer.store.record_public(&items, now);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(match outcome {
            Err(e) => Error::Store(e),
            Ok(_) => Error::NoFreeIndex,
        })
    }

    /// `n` free status indices, in the open list and the lists opened after it when full.
    fn allocate(&mut self, n: usize, now: i64) -> Result<Vec<(u32, u64)>, Error> {
        let store = &self.issuer.store;
        let mut out = Vec::with_capacity(n);
        // Each round takes what the open list has; a full list is followed by a new one.
        for _ in 0..n.div_ceil(1024).saturating_add(8) {
            if out.len() == n {
                return Ok(out);
            }
            let open = store.open_status_list()?;
            let start = self.cursor.get(&open.list).copied().unwrap_or(0);
            // Only at or after the cursor: indices before it may be held by the chunk being
            // recorded, not yet in the store. A list this run went through is left for the next.
            let free: Vec<u64> = if open.allocated < open.size && start < open.size {
                store
                    .free_indices(open.list, open.size, start, n - out.len())?
                    .into_iter()
                    .take_while(|i| *i >= start)
                    .collect()
            } else {
                Vec::new()
            };
            if let Some(last) = free.last() {
                self.cursor.insert(open.list, last + 1);
            }
            out.extend(free.into_iter().map(|i| (open.list, i)));
            if out.len() < n {
                let next =
                    store.open_next_status_list(open.list, self.issuer.config.list_size, now)?;
                if next.list != open.list {
                    // Signed before any credential names it.
                    self.issuer.refresh_list(next.list)?;
                }
            }
        }
        if out.len() == n {
            Ok(out)
        } else {
            Err(Error::StatusListFull)
        }
    }

    /// Signs the credentials of `todo` at `indices`, on every core.
    fn sign(
        &self,
        todo: &[(Business, Option<PublicRecord>)],
        indices: &[(u32, u64)],
        now: i64,
    ) -> Result<Vec<PublicIssue>, Error> {
        let issuer = self.issuer;
        let keys = issuer.signing_key();
        let iat = now.max(keys.valid_from);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 16);
        let per = todo.len().div_ceil(threads).max(1);
        let sign_part = |part: &[(Business, Option<PublicRecord>)],
                         idx: &[(u32, u64)]|
         -> Result<Vec<PublicIssue>, Error> {
            let mut rng =
                rand_chacha::ChaCha20Rng::from_rng(rand_core::OsRng).map_err(Error::Random)?;
            let mut out = Vec::with_capacity(part.len());
            for ((b, replaces), (list, i)) in part.iter().zip(idx) {
                let req = Issuance {
                    vct: CredentialType::CertificateOfIncorporation.vct(),
                    issuer: &issuer.did,
                    kid: Some(&keys.kid),
                    iat,
                    nbf: None,
                    // A public record has no end date: its status list says whether it holds.
                    exp: None,
                    holder_key: None,
                    status: Some(StatusReference {
                        idx: *i,
                        uri: issuer.status_uri(*list),
                    }),
                    // Public: every claim in clear, nothing to disclose selectively.
                    disclosable: Vec::new(),
                    claims: b.claims.clone(),
                    decoys: 0,
                };
                let text = sd_jwt_vc::issue(req, &keys.assertion, &mut rng)
                    .map_err(Error::Issue)?
                    .serialize();
                let id = random_id();
                let why = replaces.as_ref().map(|r| {
                    (
                        r.credential_id.clone(),
                        format!(
                            "superseded by {id}: the registry's record of the corporation changed"
                        ),
                    )
                });
                out.push(PublicIssue {
                    rec: CredentialRecord {
                        id,
                        // No application: the extract is the record (searchable on the desk
                        // as `public:` and the corporation number).
                        application_id: format!("public:{}", b.subject),
                        vct: CredentialType::CertificateOfIncorporation.vct().to_owned(),
                        status_list: *list,
                        status_idx: *i,
                        status: CredentialStatus::Valid,
                        issued_at: iat,
                        kid: keys.kid.clone(),
                        credential_sha256: sha256_hex(text.as_bytes()),
                        history: Vec::new(),
                    },
                    subject: b.subject.clone(),
                    content_sha256: b.content_sha256.clone(),
                    credential: text,
                    replaces: why,
                });
            }
            Ok(out)
        };
        let parts: Vec<Result<Vec<PublicIssue>, Error>> = std::thread::scope(|s| {
            let handles: Vec<_> = todo
                .chunks(per)
                .zip(indices.chunks(per))
                .map(|(part, idx)| s.spawn(move || sign_part(part, idx)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or(Err(Error::BadCredentialRequest("a signing thread failed")))
                })
                .collect()
        });
        let mut items = Vec::with_capacity(todo.len());
        for p in parts {
            items.extend(p?);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use zeroize::Zeroizing;

    use bizcred_core::jws::Jws;
    use bizcred_core::sd_jwt::SdJwt;

    use super::*;
    use crate::Config;

    fn now() -> i64 {
        1_790_000_000
    }

    fn issuer(dir: &std::path::Path, list_size: u64) -> Issuer {
        let cfg = format!(
            "[agency]\nname_en = \"OBR\"\nname_fr = \"REO\"\n[server]\npublic_url = \"http://localhost:18099\"\nlisten = \"127.0.0.1:18099\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = {list_size}\n[admin]\ntoken_sha256 = [\"{}\"]\n",
            dir.join("data").to_string_lossy(),
            "00".repeat(32)
        );
        let cfg = Config::parse(&cfg).expect("config");
        Issuer::create(cfg, Zeroizing::new("pw".into()), now() - 10, now)
            .expect("create")
            .0
    }

    fn line(corp: u32, name: &str, status: &str) -> String {
        let mut v = json!({
            "corporation_number": format!("{corp}"),
            "legal_name": name,
            "entity_type": "business_corporation",
            "corporate_status": status,
            "incorporation_date": "2019-03-14",
            "business_number": "123456782",
            "registered_office_address": {"street_address": "120 rue Principale", "locality": "Sudbury", "region": "ON", "postal_code": "P3E 1Z6", "country": "CA"}
        });
        if status == "amalgamated" {
            v["amalgamated_into"] = "1000001".into();
        }
        v.to_string()
    }

    fn run(i: &Issuer, lines: &[String]) -> BulkReport {
        let mut r = i.bulk().expect("bulk");
        for (n, l) in lines.iter().enumerate() {
            r.line(n as u64 + 1, l).expect("line");
        }
        r.finish().expect("finish")
    }

    fn payload(text: &str) -> serde_json::Map<String, Value> {
        let sd = SdJwt::parse(text).expect("sd-jwt");
        let jws = Jws::decode(&sd.jwt).expect("jws");
        jws.claims().expect("claims")
    }

    #[test]
    fn bad_lines_are_skipped_with_their_line_and_code_and_the_rest_is_issued() {
        let dir = tempfile::tempdir().expect("dir");
        let i = issuer(dir.path(), 1024);
        let mut with_directors: Value =
            serde_json::from_str(&line(1000003, "Directors Inc.", "active")).expect("json");
        with_directors["directors"] =
            json!([{"given_name": "Jennifer", "family_name": "Tremblay"}]);
        let mut bad_bn: Value =
            serde_json::from_str(&line(1000004, "Bad BN Inc.", "active")).expect("json");
        bad_bn["business_number"] = "123456789".into();
        let lines = vec![
            line(1000001, "Boulangerie Éloïse Inc.", "active"),
            "{not json".to_owned(),
            with_directors.to_string(),
            bad_bn.to_string(),
            line(1000001, "Again Inc.", "active"),
            String::new(),
            line(1000005, "Maple Leaf Plumbing Ltd.", "dissolved"),
            json!({"corporation_number": "1000006", "corporate_status": "active"}).to_string(),
            line(1000007, "Fusion Ltée", "amalgamated"),
            "[1, 2]".to_owned(),
        ];
        let report = run(&i, &lines);
        let c = &report.counts;
        assert_eq!((c.lines, c.issued, c.skipped), (9, 3, 6), "{report:?}");
        let skipped: Vec<(u64, ReasonCode)> = report
            .skipped_lines
            .iter()
            .map(|s| (s.line, s.code))
            .collect();
        assert_eq!(
            skipped,
            vec![
                (2, ReasonCode::ExtractLineInvalid),
                (3, ReasonCode::ExtractPersonalData),
                (4, ReasonCode::BnCheckDigit),
                (5, ReasonCode::ExtractDuplicate),
                (8, ReasonCode::SchemaRequired),
                (10, ReasonCode::ExtractLineInvalid),
            ]
        );
        // The feed holds the three, in order; each is a public record: no holder key, no
        // personal data, every claim in clear.
        let feed = i.store.public_feed(0, 100).expect("feed");
        assert_eq!(feed.len(), 3);
        assert_eq!(
            feed.iter().map(|f| f.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let p = payload(&feed[0].credential);
        assert!(!p.contains_key("cnf") && !p.contains_key("directors") && !p.contains_key("_sd"));
        assert_eq!(p["legal_name"], "Boulangerie Éloïse Inc.");
        assert_eq!(p["jurisdiction"], "CA-ON");
        assert_eq!(payload(&feed[2].credential)["amalgamated_into"], "1000001");
    }

    #[test]
    fn a_rerun_issues_nothing_and_a_change_replaces_and_revokes_in_the_same_run() {
        let dir = tempfile::tempdir().expect("dir");
        let i = issuer(dir.path(), 1024);
        let first: Vec<String> = (0..50)
            .map(|n| line(2_000_000 + n, &format!("Entreprise {n} Ltée"), "active"))
            .collect();
        let r1 = run(&i, &first);
        assert_eq!((r1.counts.issued, r1.counts.unchanged), (50, 0));
        let r2 = run(&i, &first);
        assert_eq!(
            (r2.counts.issued, r2.counts.reissued, r2.counts.unchanged),
            (0, 0, 50)
        );
        assert_eq!(i.store.public_feed(0, 1000).expect("feed").len(), 50);
        let before = i
            .store
            .public_records(&["2000007".to_owned()])
            .expect("records")["2000007"]
            .clone();
        let mut second = first.clone();
        second[7] = line(2_000_007, "Entreprise 7 Ltée", "dissolved");
        let r3 = run(&i, &second);
        assert_eq!(
            (r3.counts.issued, r3.counts.reissued, r3.counts.unchanged),
            (0, 1, 49)
        );
        let after = i
            .store
            .public_records(&["2000007".to_owned()])
            .expect("records")["2000007"]
            .clone();
        assert_ne!(after.credential_id, before.credential_id);
        let old = i.store.credential(&before.credential_id).expect("old");
        assert_eq!(old.status, CredentialStatus::Revoked);
        assert!(old.history[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains(&after.credential_id)));
        // The list's bits say revoked at the old credential's index, and the run signed them.
        let bits = i.store.status_bits(old.status_list).expect("bits");
        let byte = bits.bytes[(old.status_idx / 4) as usize];
        assert_eq!((byte >> ((old.status_idx % 4) * 2)) & 0b11, 1);
        let signed = i
            .store
            .signed_status_list(old.status_list)
            .expect("read")
            .expect("signed");
        assert!(signed.version >= bits.version);
        let newest = i.store.public_feed(50, 10).expect("feed");
        assert_eq!(newest.len(), 1);
        assert_eq!(
            payload(&newest[0].credential)["corporate_status"],
            "dissolved"
        );
    }

    #[test]
    fn status_lists_roll_over_when_full() {
        let dir = tempfile::tempdir().expect("dir");
        let i = issuer(dir.path(), 1024);
        let lines: Vec<String> = (0..2500)
            .map(|n| line(3_000_000 + n, &format!("Société {n} inc."), "active"))
            .collect();
        let r = run(&i, &lines);
        assert_eq!(r.counts.issued, 2500);
        let lists = i.store.status_lists().expect("lists");
        assert_eq!(lists.len(), 3, "{lists:?}");
        assert_eq!(lists.iter().map(|l| l.allocated).sum::<u64>(), 2500);
        // Every list is signed and served.
        for l in &lists {
            i.status_list(l.list).expect("signed");
        }
    }
}
