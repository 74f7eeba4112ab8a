//! The repository: intake, status refreshes, search and business pages over the store, the
//! index and the trust state.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use bizcred_core::jws::Jws;
use bizcred_core::sd_jwt::SdJwt;
use bizcred_core::status_list::Status;
use bizcred_core::time::Clock;
use bizcred_core::trust::state::TrustState;
use bizcred_schemas::{CredentialType, Lang, ReasonCode};
use bizcred_verifier::verify::{verify_record, Context, Severity, Verdict};

use crate::index::{Filters, SearchIndex, Summary};
use crate::store::{Record, Store};
use crate::trust::{TrustConfig, TrustDir};
use crate::Error;

/// Longest credential taken (bytes).
pub const MAX_CREDENTIAL_LEN: usize = 16 * 1024;
/// Most credentials one intake call takes.
pub const MAX_INTAKE_BATCH: usize = 10_000;
/// Most refusals an intake report lists one by one (every one is counted).
pub const MAX_LISTED_REFUSALS: usize = 100;
/// Longest search query (characters).
pub const MAX_QUERY_CHARS: usize = 200;
/// Most results per page.
pub const MAX_PER_PAGE: usize = 100;
/// Deepest page.
pub const MAX_PAGE: usize = 500;
/// Largest answer of an issuer's public feed read (bytes).
pub const MAX_FEED_ANSWER: usize = 32 * 1024 * 1024;

/// Corporate statuses (the search filter's values).
pub const STATUSES: [&str; 4] = ["active", "inactive", "dissolved", "amalgamated"];
/// Entity types (the search filter's values).
pub const ENTITY_TYPES: [&str; 4] = [
    "business_corporation",
    "not_for_profit_corporation",
    "professional_corporation",
    "cooperative_corporation",
];

/// Failures that are a credential's status, not a reason to refuse it: a revoked or
/// suspended credential is held and shown as such; a status not yet known is `unknown`.
const STATUS_CODES: [ReasonCode; 5] = [
    ReasonCode::Revoked,
    ReasonCode::Suspended,
    ReasonCode::StatusStale,
    ReasonCode::StatusExpired,
    ReasonCode::StatusUnavailable,
];

/// What a batch's verification found, credential by credential.
type Checked = Vec<Result<Record, Refusal>>;

/// A credential refused at intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Its position in the batch, from 0.
    pub index: usize,
    /// The reason code.
    pub code: ReasonCode,
    /// A sentence.
    pub message: String,
}

/// What an intake did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntakeReport {
    /// Credentials verified and stored.
    pub accepted: usize,
    /// Credentials held already (nothing to do).
    pub already_held: usize,
    /// Credentials refused.
    pub refused: usize,
    /// Credentials of a feed left for the next pull: issued after the trust bundle held was
    /// made, so the bundle could not yet know their issuer, key or authorization.
    #[serde(default)]
    pub waiting_for_bundle: usize,
    /// The first [`MAX_LISTED_REFUSALS`] refusals.
    pub refusals: Vec<Refusal>,
}

impl IntakeReport {
    fn add(&mut self, other: IntakeReport) {
        self.accepted += other.accepted;
        self.already_held += other.already_held;
        self.refused += other.refused;
        self.waiting_for_bundle += other.waiting_for_bundle;
        let room = MAX_LISTED_REFUSALS.saturating_sub(self.refusals.len());
        self.refusals.extend(other.refusals.into_iter().take(room));
    }
}

/// A search.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SearchQuery {
    /// Words of a name, or a business or corporation number.
    #[serde(default)]
    pub q: String,
    /// Corporate status filter.
    #[serde(default)]
    pub status: Option<String>,
    /// Municipality filter.
    #[serde(default)]
    pub municipality: Option<String>,
    /// Entity type filter.
    #[serde(default, rename = "type")]
    pub entity_type: Option<String>,
    /// Page, from 1.
    #[serde(default)]
    pub page: Option<usize>,
    /// Results per page.
    #[serde(default)]
    pub per_page: Option<usize>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchResults {
    /// Businesses matching, in all.
    pub total: usize,
    /// The page, from 1.
    pub page: usize,
    /// Results per page.
    pub per_page: usize,
    /// The businesses of the page.
    pub results: Vec<Summary>,
}

/// One credential of a business page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CredentialView {
    /// Its id (SHA-256 of its text): `/credentials/{id}` serves it.
    pub id: String,
    /// `vct`.
    pub vct: String,
    /// The type's name in English and French.
    pub type_en: String,
    /// See `type_en`.
    pub type_fr: String,
    /// The issuer's DID.
    pub issuer: String,
    /// The issuer's names from the registry.
    pub issuer_en: Option<String>,
    /// See `issuer_en`.
    pub issuer_fr: Option<String>,
    /// `iat`.
    pub issued_at: i64,
    /// The verification now, against the repository's trust bundle.
    pub verdict: Verdict,
    /// The failures' codes, if any.
    pub failures: Vec<ReasonCode>,
    /// `valid`, `revoked`, `suspended` or `unknown`.
    pub status: String,
    /// The time of the status list that says so.
    pub status_as_of: i64,
    /// Its claims.
    pub claims: Map<String, Value>,
}

/// A business page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Business {
    /// What the index shows.
    pub summary: Summary,
    /// Its legal names with the time each was first stated, oldest first.
    pub name_history: Vec<(String, i64)>,
    /// Every credential about it, newest first.
    pub credentials: Vec<CredentialView>,
    /// The time of the verification.
    pub verified_at: i64,
    /// The trust bundle's checkpoint time, if any.
    pub trust_as_of: Option<i64>,
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Synced {
    /// Entries in the registry's log now.
    pub log_size: u64,
    /// Status lists newer than the ones applied.
    pub lists_applied: usize,
    /// Credentials whose status changed.
    pub statuses_changed: usize,
}

/// The repository.
pub struct Repository {
    /// The stored credentials.
    pub store: Store,
    /// The search index.
    pub index: SearchIndex,
    trust_dir: TrustDir,
    trust: RwLock<Option<Arc<TrustState>>>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    dir: PathBuf,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The business a credential is about: its corporation number, else its business number.
fn subject_of(claims: &Map<String, Value>) -> Option<String> {
    ["corporation_number", "business_number"]
        .iter()
        .find_map(|k| claims.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

fn payload_of(text: &str) -> Option<Map<String, Value>> {
    let sd = SdJwt::parse(text).ok()?;
    Jws::decode(&sd.jwt).ok()?.claims().ok()
}

impl Repository {
    /// Creates a repository in `dir` pinned to the registry's `trust`.
    pub fn init(dir: &Path, trust: TrustConfig) -> Result<(), Error> {
        TrustDir::init(&dir.join("trust"), trust)?;
        Store::open(&dir.join("db"))?;
        SearchIndex::open(&dir.join("index"))?;
        Ok(())
    }

    /// Opens the repository in `dir`, replaying the trust bundles kept.
    pub fn open(dir: &Path, clock: Arc<dyn Clock>) -> Result<Repository, Error> {
        Repository::open_with(dir, clock, None)
    }

    /// [`Repository::open`] with its store in the PostgreSQL database at `database` when
    /// given (shared by any number of instances; each keeps its trust directory and search
    /// index in its own `dir`, and one whose index is empty rebuilds it from the database
    /// here), else the sled store in `dir`.
    pub fn open_with(
        dir: &Path,
        clock: Arc<dyn Clock>,
        database: Option<&str>,
    ) -> Result<Repository, Error> {
        let trust_dir = TrustDir::open(&dir.join("trust"))?;
        let now = clock.now();
        let trust = trust_dir.load(now)?.map(Arc::new);
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Feed {
                url: String::new(),
                cause: e.to_string(),
            })?;
        let store = match database {
            Some(url) => Store::connect(url, crate::store::pg::MAX_CONNECTIONS)?,
            None => Store::open(&dir.join("db"))?,
        };
        let repo = Repository {
            store,
            index: SearchIndex::open(&dir.join("index"))?,
            trust_dir,
            trust: RwLock::new(trust),
            clock,
            http,
            dir: dir.to_owned(),
        };
        if database.is_some() && repo.index.is_empty() && !repo.store.is_empty() {
            repo.reindex()?;
        }
        Ok(repo)
    }

    /// On a shared store, indexes the businesses whose records any instance wrote since this
    /// instance last looked (intake, status refreshes), and keeps its place in the index
    /// directory; answers how many records' writes it followed. On sled, nothing to follow.
    pub fn follow_changes(&self) -> Result<usize, Error> {
        if !self.store.is_shared() {
            return Ok(0);
        }
        let file = self.followed_file();
        let mut after = match std::fs::read_to_string(&file) {
            Ok(t) => t.trim().parse::<u64>().map_err(|e| Error::Corrupt {
                what: "followed change number",
                cause: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(crate::io(&file)(e)),
        };
        let mut followed = 0;
        loop {
            let (subjects, last) = self.store.changed_since(after, 10_000)?;
            if subjects.is_empty() {
                return Ok(followed);
            }
            followed += subjects.len();
            let subjects: BTreeSet<String> = subjects.into_iter().collect();
            self.reindex_subjects(subjects.iter().map(String::as_str))?;
            self.index.commit()?;
            self.set_followed(last)?;
            after = last;
        }
    }

    fn followed_file(&self) -> PathBuf {
        self.dir.join("index").join("changes-followed")
    }

    /// Keeps the change number the index holds everything up to (after its commit).
    fn set_followed(&self, last: u64) -> Result<(), Error> {
        let file = self.followed_file();
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, last.to_string()).map_err(crate::io(&tmp))?;
        std::fs::rename(&tmp, &file).map_err(crate::io(&file))
    }

    /// The clock's time.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The trust state held.
    pub fn trust(&self) -> Option<Arc<TrustState>> {
        self.trust
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The registry's URL.
    pub fn registry(&self) -> &str {
        &self.trust_dir.config.registry
    }

    /// Fetches the registry's newer bundle, keeps it, and applies its newer status lists to
    /// the credentials held.
    pub async fn sync(&self) -> Result<Synced, Error> {
        let held = self.trust();
        let state = self.trust_dir.sync(held.as_deref(), self.now()).await?;
        let log_size = state.size();
        *self
            .trust
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(state));
        let (lists_applied, statuses_changed) = self.refresh_statuses()?;
        Ok(Synced {
            log_size,
            lists_applied,
            statuses_changed,
        })
    }

    /// Applies every status list of the trust state newer than the one applied: the records
    /// whose status changed are rewritten and their businesses re-indexed. Answers (lists
    /// applied, statuses changed).
    pub fn refresh_statuses(&self) -> Result<(usize, usize), Error> {
        let Some(trust) = self.trust() else {
            return Ok((0, 0));
        };
        let (mut lists, mut changed) = (0, 0);
        let mut subjects = BTreeSet::new();
        for (uri, list) in &trust.verified_status {
            if self.store.list_applied(uri)?.is_some_and(|t| t >= list.iat) {
                continue;
            }
            lists += 1;
            let mut batch = Vec::new();
            for entry in self.store.in_list(uri) {
                let (idx, id) = entry?;
                let status = match list.list.get(idx) {
                    Ok(Status::Valid) => "valid",
                    Ok(Status::Invalid) => "revoked",
                    Ok(Status::Suspended) => "suspended",
                    Ok(Status::Other(_)) | Err(_) => "unknown",
                };
                let Some(mut rec) = self.store.get(&id)? else {
                    continue;
                };
                // A status already newer than this list (an issuer's event) stays.
                if rec.status_as_of > list.iat {
                    continue;
                }
                if rec.status != status || rec.status_as_of < list.iat {
                    if rec.status != status {
                        changed += 1;
                        subjects.insert(rec.subject.clone());
                    }
                    rec.status = status.to_owned();
                    rec.status_as_of = list.iat;
                    batch.push(rec);
                }
                if batch.len() >= 5_000 {
                    self.store.put(&std::mem::take(&mut batch))?;
                }
            }
            self.store.put(&batch)?;
            self.store.set_list_applied(uri, list.iat)?;
        }
        self.store.flush()?;
        if !subjects.is_empty() {
            self.reindex_subjects(subjects.iter().map(String::as_str))?;
            self.index.commit()?;
        }
        Ok((lists, changed))
    }

    /// Verifies and keeps `credentials` (public records), on every core; each refused one
    /// with its reason. Searchable once the index is committed ([`Repository::commit`]).
    pub fn intake(&self, credentials: &[String]) -> Result<IntakeReport, Error> {
        let checked = self.verify_batch(credentials)?;
        self.keep(checked)
    }

    /// [`Repository::intake`] of every batch of `batches`, the next batch verified on every
    /// core while the one before is stored and indexed on a thread of its own. Refusals are
    /// numbered across the batches. Searchable once committed ([`Repository::commit`]).
    pub fn intake_all(
        &self,
        batches: impl Iterator<Item = Vec<String>>,
    ) -> Result<IntakeReport, Error> {
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Checked>(1);
            let keeper = s.spawn(move || {
                let mut total = IntakeReport::default();
                for checked in rx {
                    total.add(self.keep(checked)?);
                }
                Ok::<IntakeReport, Error>(total)
            });
            let mut offset = 0;
            let mut sent = Ok(());
            for batch in batches {
                let mut checked = match self.verify_batch(&batch) {
                    Ok(c) => c,
                    Err(e) => {
                        sent = Err(e);
                        break;
                    }
                };
                for r in checked.iter_mut() {
                    if let Err(f) = r {
                        f.index += offset;
                    }
                }
                offset += batch.len();
                // The keeper stopped (its error is answered below).
                if tx.send(checked).is_err() {
                    break;
                }
            }
            drop(tx);
            let kept = keeper
                .join()
                .map_err(|_| Error::Index("the storing thread failed".into()))?;
            sent?;
            kept
        })
    }

    /// Verifies a batch on every core (no write).
    fn verify_batch(&self, credentials: &[String]) -> Result<Checked, Error> {
        if credentials.len() > MAX_INTAKE_BATCH {
            return Err(Error::TooLarge(format!(
                "{} credentials in one batch; the limit is {MAX_INTAKE_BATCH}",
                credentials.len()
            )));
        }
        let trust = self.trust().ok_or(Error::NoTrust)?;
        let now = self.now();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 16);
        let per = credentials.len().div_ceil(threads).max(1);
        let parts: Vec<Checked> = std::thread::scope(|s| {
            let handles: Vec<_> = credentials
                .chunks(per)
                .enumerate()
                .map(|(n, part)| {
                    let trust = &trust;
                    s.spawn(move || {
                        part.iter()
                            .enumerate()
                            .map(|(i, text)| check(n * per + i, text, trust, now))
                            .collect::<Checked>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(Refusal {
                            index: 0,
                            code: ReasonCode::PublicRecordRefused,
                            message: "a verification thread failed".into(),
                        })]
                    })
                })
                .collect()
        });
        Ok(parts.into_iter().flatten().collect())
    }

    /// Stores the verified records not held yet and indexes their businesses.
    fn keep(&self, checked: Checked) -> Result<IntakeReport, Error> {
        let mut report = IntakeReport::default();
        let mut fresh = Vec::new();
        let mut subjects = BTreeSet::new();
        for r in checked {
            match r {
                Ok(rec) => {
                    if self.store.contains(&rec.id)? {
                        report.already_held += 1;
                    } else {
                        subjects.insert(rec.subject.clone());
                        fresh.push(rec);
                    }
                }
                Err(refusal) => {
                    report.refused += 1;
                    if report.refusals.len() < MAX_LISTED_REFUSALS {
                        report.refusals.push(refusal);
                    }
                }
            }
        }
        report.accepted = fresh.len();
        self.store.put(&fresh)?;
        self.reindex_subjects(subjects.iter().map(String::as_str))?;
        Ok(report)
    }

    /// Makes what intake indexed searchable.
    pub fn commit(&self) -> Result<(), Error> {
        self.index.commit()
    }

    /// Reads an issuer's public feed (`{issuer}/public/credentials`) from the position last
    /// taken, taking in every credential, until the end; the position is kept after each
    /// page, so an interrupted pull resumes. Answers what the intake did.
    pub async fn pull(self: &Arc<Self>, issuer_url: &str) -> Result<IntakeReport, Error> {
        let feed = format!("{}/public/credentials", issuer_url.trim_end_matches('/'));
        let mut report = IntakeReport::default();
        loop {
            let after = self.store.cursor(&feed)?;
            let page = self.read_feed(&feed, after).await?;
            // A credential issued after the bundle held was made is not judged against it (its
            // issuer, key or authorization may be newer): the pull stops before it, and the
            // next one, after the next sync, takes it.
            let as_of = self
                .trust()
                .ok_or(Error::NoTrust)?
                .registry_as_of
                .ok_or(Error::NoTrust)?;
            // Only a credential the issuer could have issued by now waits: one dated ahead of
            // the clock is judged (and refused) at once, so it cannot hold the feed back.
            let now = self.now();
            let total = page.items.len();
            let newer = page.items.iter().position(|i| {
                issued_at(&i.credential)
                    .is_some_and(|iat| iat > as_of && iat <= now + FEED_CLOCK_SKEW)
            });
            let mut items = page.items;
            items.truncate(newer.unwrap_or(total));
            let next = match newer {
                Some(_) => items.last().map_or(after, |i| i.seq),
                None => page.next_after,
            };
            let credentials: Vec<String> = items.into_iter().map(|i| i.credential).collect();
            let me = self.clone();
            let mut taken = tokio::task::spawn_blocking(move || me.intake(&credentials))
                .await
                .map_err(|e| Error::Index(e.to_string()))??;
            taken.waiting_for_bundle = newer.map_or(0, |n| total - n);
            report.add(taken);
            self.commit()?;
            if next > after {
                self.store.set_cursor(&feed, next)?;
            }
            if newer.is_some() || next <= after || page.complete {
                break;
            }
        }
        Ok(report)
    }

    async fn read_feed(&self, feed: &str, after: u64) -> Result<FeedPage, Error> {
        let failed = |cause: String| Error::Feed {
            url: feed.to_owned(),
            cause,
        };
        let mut resp = self
            .http
            .get(format!("{feed}?after={after}&limit=1000"))
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(failed(format!("HTTP {}", resp.status().as_u16())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| failed(e.to_string()))? {
            if body.len() + chunk.len() > MAX_FEED_ANSWER {
                return Err(failed(format!(
                    "the answer is over {MAX_FEED_ANSWER} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| failed(format!("not a feed page: {e}")))
    }

    /// Follows an issuer's signed event feed (`{issuer}/events`) from the position last
    /// taken: each page is verified against the trust state (the issuer registered, its key at
    /// the page's time, the signature, freshness, no gap) and each suspension, revocation or
    /// reinstatement of a credential held is applied at once, as of the event's time (the next
    /// bundle's status list confirms it; an older list never undoes it). Answers the statuses
    /// changed. A refused page changes nothing and is answered as an error.
    pub async fn follow_events(&self, issuer_url: &str) -> Result<usize, Error> {
        use bizcred_issuer::issuer::subscribe::Subscription;
        use bizcred_issuer::store::EventKind;
        let feed = format!("{}/events", issuer_url.trim_end_matches('/'));
        let trust = self.trust().ok_or(Error::NoTrust)?;
        let mut changed = 0;
        loop {
            let failed = |cause: String| Error::Feed {
                url: feed.clone(),
                cause,
            };
            // The page names its issuer; the cursor is kept per feed and issuer, and the
            // page is verified as that issuer's (a page another key signed is refused).
            let after_key = |did: &str| format!("{feed}#{did}");
            let probe = self.read_events(&feed, None).await?;
            let did =
                Self::page_issuer(&probe).ok_or_else(|| failed("not an event page".into()))?;
            let cursor = self.store.cursor(&after_key(&did))?;
            let token = self.read_events(&feed, Some(cursor)).await?;
            let mut sub = Subscription::new(did.clone());
            sub.cursor = cursor;
            let events =
                sub.accept(&token, &trust, self.now())
                    .map_err(|e| Error::EventsRefused {
                        url: feed.clone(),
                        code: e.code(),
                        message: e.to_string(),
                    })?;
            if events.is_empty() {
                return Ok(changed);
            }
            let mut subjects = BTreeSet::new();
            let mut batch = Vec::new();
            for e in &events {
                let status = match e.kind {
                    EventKind::CredentialSuspended => "suspended",
                    EventKind::CredentialRevoked => "revoked",
                    EventKind::CredentialReinstated => "valid",
                    EventKind::CredentialIssued => continue,
                };
                for id in self.store.at_status(&e.status_list, e.status_idx)? {
                    let Some(mut rec) = self.store.get(&id)? else {
                        continue;
                    };
                    // Only the issuer's own credentials, and never back in time.
                    if rec.issuer != did || rec.status_as_of > e.time {
                        continue;
                    }
                    if rec.status != status {
                        changed += 1;
                        subjects.insert(rec.subject.clone());
                    }
                    rec.status = status.to_owned();
                    rec.status_as_of = e.time;
                    batch.push(rec);
                }
            }
            self.store.put(&batch)?;
            self.reindex_subjects(subjects.iter().map(String::as_str))?;
            self.index.commit()?;
            self.store.set_cursor(&after_key(&did), sub.cursor)?;
        }
    }

    fn page_issuer(token: &str) -> Option<String> {
        let jws = Jws::decode(token.trim()).ok()?;
        let v: Value = serde_json::from_slice(&jws.payload).ok()?;
        v.get("issuer").and_then(Value::as_str).map(str::to_owned)
    }

    async fn read_events(&self, feed: &str, after: Option<u64>) -> Result<String, Error> {
        let failed = |cause: String| Error::Feed {
            url: feed.to_owned(),
            cause,
        };
        let url = match after {
            Some(a) => format!("{feed}?after={a}&limit=500"),
            None => format!("{feed}?limit=1"),
        };
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(failed(format!("HTTP {}", resp.status().as_u16())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| failed(e.to_string()))? {
            if body.len() + chunk.len() > MAX_FEED_ANSWER {
                return Err(failed(format!(
                    "the answer is over {MAX_FEED_ANSWER} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| failed("the answer is not UTF-8".into()))
    }

    /// Rebuilds the index from the stored credentials; answers the businesses indexed.
    pub fn reindex(&self) -> Result<usize, Error> {
        // On a shared store, what other instances write from now on is followed afterwards.
        let mark = self.store.last_change()?;
        self.index.clear()?;
        let mut n = 0;
        let mut batch: Vec<String> = Vec::new();
        for s in self.store.subjects() {
            batch.push(s?);
            if batch.len() >= 10_000 {
                n += batch.len();
                self.reindex_subjects(batch.iter().map(String::as_str))?;
                batch.clear();
            }
        }
        n += batch.len();
        self.reindex_subjects(batch.iter().map(String::as_str))?;
        self.index.commit()?;
        if self.store.is_shared() {
            self.set_followed(mark)?;
        }
        Ok(n)
    }

    fn reindex_subjects<'s>(&self, subjects: impl Iterator<Item = &'s str>) -> Result<(), Error> {
        let mut docs = Vec::new();
        for s in subjects {
            let records = self.store.of_subject(s)?;
            if let Some(summary) = summarize(s, &records) {
                docs.push(summary);
            }
        }
        self.index.put(&docs)
    }

    /// A page of search results.
    pub fn search(&self, q: &SearchQuery) -> Result<SearchResults, Error> {
        let words = q.q.trim();
        if words.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::Query(format!(
                "the query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let pick =
            |v: &Option<String>, allowed: &[&str], what: &str| -> Result<Option<String>, Error> {
                match v.as_deref().map(str::trim) {
                    None | Some("") => Ok(None),
                    Some(x) if allowed.contains(&x) => Ok(Some(x.to_owned())),
                    Some(x) => Err(Error::Query(format!(
                        "{what} {:?} is not one of {}",
                        x.chars().take(40).collect::<String>(),
                        allowed.join(", ")
                    ))),
                }
            };
        let municipality = match q.municipality.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(m) if m.chars().count() <= 100 => Some(m.to_owned()),
            Some(_) => {
                return Err(Error::Query(
                    "the municipality is over 100 characters".into(),
                ))
            }
        };
        let filters = Filters {
            status: pick(&q.status, &STATUSES, "status")?,
            municipality,
            entity_type: pick(&q.entity_type, &ENTITY_TYPES, "type")?,
        };
        let per_page = q.per_page.unwrap_or(20).clamp(1, MAX_PER_PAGE);
        let page = q.page.unwrap_or(1);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(Error::Query(format!(
                "the page is between 1 and {MAX_PAGE}"
            )));
        }
        let (total, results) =
            self.index
                .search(words, &filters, (page - 1) * per_page, per_page)?;
        Ok(SearchResults {
            total,
            page,
            per_page,
            results,
        })
    }

    /// Every public credential about a business (its corporation number, or the business
    /// number of a business known by it only), each verified now.
    pub fn business(&self, subject: &str) -> Result<Business, Error> {
        let subject = subject.trim();
        if subject.is_empty() || subject.len() > 16 || !subject.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Error::NotFound(subject.chars().take(16).collect()));
        }
        let mut records = self.store.of_subject(subject)?;
        let summary =
            summarize(subject, &records).ok_or_else(|| Error::NotFound(subject.to_owned()))?;
        // The business number's own records (a licence naming only the BN).
        if let Some(bn) = &summary.business_number {
            if bn != subject {
                records.extend(self.store.of_subject(bn)?);
            }
        }
        let now = self.now();
        let trust = self.trust();
        let mut name_history: Vec<(String, i64)> = Vec::new();
        let mut incorporations: Vec<&Record> = records
            .iter()
            .filter(|r| r.vct == CredentialType::CertificateOfIncorporation.vct())
            .collect();
        incorporations.sort_by_key(|r| r.issued_at);
        for r in incorporations {
            if let Some(n) = r.claim("legal_name") {
                if name_history.last().is_none_or(|(last, _)| last != n) {
                    name_history.push((n.to_owned(), r.issued_at));
                }
            }
        }
        let mut credentials: Vec<CredentialView> = records
            .iter()
            .map(|r| {
                let report = verify_record(
                    &r.text,
                    &Context {
                        trust: trust.as_deref(),
                        stapled_status_lists: &[],
                        now,
                    },
                );
                let ty = CredentialType::from_vct(&r.vct);
                let issuer = trust.as_deref().and_then(|t| t.issuers.get(&r.issuer));
                let status = report
                    .credentials
                    .first()
                    .map_or_else(|| r.status.clone(), |c| c.status.clone());
                CredentialView {
                    id: r.id.clone(),
                    vct: r.vct.clone(),
                    type_en: ty.map_or_else(
                        || r.vct.clone(),
                        |t| t.metadata().display_name(Lang::En).to_owned(),
                    ),
                    type_fr: ty.map_or_else(
                        || r.vct.clone(),
                        |t| t.metadata().display_name(Lang::Fr).to_owned(),
                    ),
                    issuer: r.issuer.clone(),
                    issuer_en: issuer.map(|i| i.name_en.clone()),
                    issuer_fr: issuer.map(|i| i.name_fr.clone()),
                    issued_at: r.issued_at,
                    verdict: report.verdict,
                    failures: report.failures.iter().map(|f| f.code).collect(),
                    status,
                    status_as_of: trust
                        .as_deref()
                        .and_then(|t| t.verified_status.get(&r.status_uri))
                        .map_or(r.status_as_of, |l| l.iat),
                    claims: r.claims.clone(),
                }
            })
            .collect();
        credentials.sort_by(|a, b| b.issued_at.cmp(&a.issued_at).then(a.id.cmp(&b.id)));
        Ok(Business {
            summary,
            name_history,
            credentials,
            verified_at: now,
            trust_as_of: trust.as_deref().and_then(|t| t.registry_as_of),
        })
    }

    /// A credential's text, as issued.
    pub fn credential_text(&self, id: &str) -> Result<Option<String>, Error> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        Ok(self.store.get(id)?.map(|r| r.text))
    }
}

#[derive(Deserialize)]
struct FeedItem {
    /// Its position in the feed.
    seq: u64,
    credential: String,
}

/// How far ahead of the repository's clock a credential's `iat` may be and still wait for a
/// newer bundle (seconds); beyond it, intake judges it (`ISSUED_IN_FUTURE`).
const FEED_CLOCK_SKEW: i64 = 300;

/// The `iat` of a compact credential's payload, read without verifying (only to decide whether
/// the trust bundle held can judge it; verification reads it again).
fn issued_at(credential: &str) -> Option<i64> {
    let payload = credential.split('~').next()?.split('.').nth(1)?;
    let bytes = bizcred_core::base64url_decode(payload).ok()?;
    #[derive(Deserialize)]
    struct Iat {
        iat: i64,
    }
    serde_json::from_slice::<Iat>(&bytes).ok().map(|p| p.iat)
}

#[derive(Deserialize)]
struct FeedPage {
    items: Vec<FeedItem>,
    next_after: u64,
    complete: bool,
}

/// Verifies one credential for intake: a public record of an authorized issuer. A revoked or
/// suspended one is kept with that status; every other failure refuses it.
fn check(index: usize, text: &str, trust: &TrustState, now: i64) -> Result<Record, Refusal> {
    let refuse = |code: ReasonCode, message: String| Refusal {
        index,
        code,
        message,
    };
    let text = text.trim();
    if text.len() > MAX_CREDENTIAL_LEN {
        return Err(refuse(
            ReasonCode::PublicRecordTooLarge,
            format!("{} bytes; the limit is {MAX_CREDENTIAL_LEN}", text.len()),
        ));
    }
    let payload = payload_of(text)
        .ok_or_else(|| refuse(ReasonCode::PublicRecordRefused, "not an SD-JWT VC".into()))?;
    if payload.contains_key("cnf") {
        return Err(refuse(
            ReasonCode::PublicRecordHolderBound,
            "the credential is bound to a holder's key: a business's own credential is not published".into(),
        ));
    }
    let report = verify_record(
        text,
        &Context {
            trust: Some(trust),
            stapled_status_lists: &[],
            now,
        },
    );
    if let Some(f) = report
        .failures
        .iter()
        .find(|f| f.severity == Severity::Reject && !STATUS_CODES.contains(&f.code))
    {
        return Err(refuse(f.code, f.message.clone()));
    }
    let Some(summary) = report.credentials.first() else {
        return Err(refuse(
            ReasonCode::PublicRecordRefused,
            "the credential was not verified".into(),
        ));
    };
    let claims = summary.disclosed.clone();
    let subject = subject_of(&claims).ok_or_else(|| {
        refuse(
            ReasonCode::PublicRecordRefused,
            "the credential names no corporation or business number".into(),
        )
    })?;
    let status_ref = payload.get("status").and_then(|s| s.get("status_list"));
    let (status_uri, status_idx) = match status_ref
        .and_then(|s| Some((s.get("uri")?.as_str()?.to_owned(), s.get("idx")?.as_u64()?)))
    {
        Some(x) => x,
        None => {
            return Err(refuse(
                ReasonCode::PublicRecordRefused,
                "the credential has no status list entry".into(),
            ))
        }
    };
    let str_of = |k: &str| {
        payload
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Record {
        id: sha256_hex(text.as_bytes()),
        subject,
        vct: str_of("vct"),
        issuer: str_of("iss"),
        issued_at: payload
            .get("iat")
            .and_then(Value::as_i64)
            .unwrap_or_default(),
        status_uri: status_uri.clone(),
        status_idx,
        claims,
        status: summary.status.clone(),
        status_as_of: trust.verified_status.get(&status_uri).map_or(0, |l| l.iat),
        verified_at: now,
        text: text.to_owned(),
    })
}

/// What the index shows of a business, from its credentials (oldest first): the newest
/// certificate of incorporation not revoked (else the newest) names it.
pub fn summarize(subject: &str, records: &[Record]) -> Option<Summary> {
    let inc = CredentialType::CertificateOfIncorporation.vct();
    let mut incs: Vec<&Record> = records.iter().filter(|r| r.vct == inc).collect();
    incs.sort_by_key(|r| r.issued_at);
    let current = incs
        .iter()
        .rev()
        .find(|r| r.status != "revoked")
        .or(incs.last())
        .copied();
    let Some(cur) = current else {
        // Known by other credentials only (a licence): named by them.
        let r = records.last()?;
        let name = ["licensee_legal_name", "legal_name", "operating_name"]
            .iter()
            .find_map(|k| r.claim(k))?;
        return Some(Summary {
            subject: subject.to_owned(),
            name: name.to_owned(),
            former_names: Vec::new(),
            business_number: r.claim("business_number").map(str::to_owned),
            corporate_status: "unknown".into(),
            entity_type: String::new(),
            municipality: r
                .claims
                .get("premises_address")
                .and_then(|a| a.get("locality"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
    };
    let name = cur.claim("legal_name")?.to_owned();
    let mut former_names = Vec::new();
    for r in incs.iter().rev() {
        if let Some(n) = r.claim("legal_name") {
            if n != name && !former_names.iter().any(|f: &String| f == n) {
                former_names.push(n.to_owned());
            }
        }
    }
    Some(Summary {
        subject: subject.to_owned(),
        name,
        former_names,
        business_number: cur
            .claim("business_number")
            .or_else(|| incs.iter().rev().find_map(|r| r.claim("business_number")))
            .map(str::to_owned),
        corporate_status: cur
            .claim("corporate_status")
            .unwrap_or("unknown")
            .to_owned(),
        entity_type: cur.claim("entity_type").unwrap_or_default().to_owned(),
        municipality: cur
            .claims
            .get("registered_office_address")
            .and_then(|a| a.get("locality"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}
