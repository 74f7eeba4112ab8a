//! Moving a sled deployment into PostgreSQL (`bizcred-issuer migrate --from <sled dir>`).
//!
//! Every record is copied in one PostgreSQL transaction: applications, offers (their codes
//! are their `code_hash`), access tokens, nonces, credential records (their status indices are
//! the records' own, checked unique), the status lists (size, allocation, bits and their
//! version, the newest signed token, which list is open), the metadata (the DID, its log, key
//! numbers), the public records and feed, the event log and the audit log. Before the commit,
//! what the transaction holds is read back and compared with the sled store kind by kind (a
//! digest of every key and value, in key order), and the audit chain read back is verified and
//! must end at the sled store's head; any difference rolls everything back
//! ([`StoreError::MoveVerify`]). The sled store is then marked moved
//! ([`super::sled::MOVED_MARKER`]), so it is never served again.
//!
//! A target holding anything is refused untouched ([`StoreError::NotEmpty`]), unless it holds
//! exactly this store's records (an earlier move whose marking did not happen): then nothing is
//! written and the move is reported as `already` done.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use sha2::{Digest, Sha256};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::pg::{self, Migrated, PgStore, Tx, MOVE_LOCK};
use super::sled::{
    SledStore, AUDIT_HEAD, AUDIT_SEQ, EVENT_SEQ, PUBLIC_SEQ, STATUS_BITS_KEPT, STATUS_OPEN_LIST,
};
use super::{
    be8, de, ser, AccessToken, Application, AuditVerifier, CredentialRecord, FeedItem, IssuerEvent,
    ListInfo, Offer, PublicRecord, SignedList, StoreError,
};

/// Metadata keys of the sled store that PostgreSQL keeps elsewhere (the audit head is the last
/// entry; the open list is a table) or does not need.
const SLED_ONLY_META: [&str; 7] = [
    PUBLIC_SEQ,
    EVENT_SEQ,
    AUDIT_SEQ,
    AUDIT_HEAD,
    STATUS_OPEN_LIST,
    STATUS_BITS_KEPT,
    "pending_indexed",
];

/// Rows copied per statement.
const CHUNK: usize = 1000;

/// What [`move_to_postgres`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The database already held exactly these records: nothing was written.
    pub already: bool,
    /// How many of each kind (in the order of [`KINDS`]).
    pub counts: Vec<(&'static str, u64)>,
    /// The audit chain's length and head, verified in the database.
    pub audit_entries: u64,
    /// The hash of the last audit entry.
    pub audit_head: String,
}

/// The kinds of records moved, in the order they are copied.
pub const KINDS: [&str; 14] = [
    "status lists",
    "status list bits",
    "signed status lists",
    "open status list",
    "metadata",
    "applications",
    "offers",
    "access tokens",
    "nonces",
    "credentials",
    "public records",
    "public feed",
    "events",
    "audit entries",
];

/// A count and a digest of a kind's keys and values in key order.
#[derive(Clone)]
struct Tally {
    n: u64,
    hash: Sha256,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            n: 0,
            hash: Sha256::new(),
        }
    }

    fn add(&mut self, key: &[u8], value: &[u8]) {
        self.n += 1;
        self.hash.update((key.len() as u64).to_be_bytes());
        self.hash.update(key);
        self.hash.update((value.len() as u64).to_be_bytes());
        self.hash.update(value);
    }

    fn done(self) -> (u64, [u8; 32]) {
        (self.n, self.hash.finalize().into())
    }
}

/// One row to insert (the columns of its kind, as text, numbers and bytes).
#[derive(Debug, Clone)]
enum Row_ {
    Text(String),
    Int(i64),
    Bool(bool),
    OptText(Option<String>),
    Bytes(Vec<u8>),
}

fn utf8(what: &'static str, b: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(b.to_vec()).map_err(|e| StoreError::Corrupt {
        what,
        cause: Arc::new(e),
    })
}

fn int(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|e| StoreError::Encode {
        what: "a number beyond the database's range",
        cause: Arc::new(e),
    })
}

fn list_key(list: u32) -> [u8; 4] {
    list.to_be_bytes()
}

/// The sled side of one kind: its rows to insert and its tally.
struct Kind {
    name: &'static str,
    insert: &'static str,
    rows: Vec<Vec<Row_>>,
    tally: Tally,
}

/// Reads every record of `sled`, kind by kind, into rows for PostgreSQL and tallies.
/// `copy` false: only the tallies (the rows are dropped as they are counted).
fn read_sled(
    sled: &SledStore,
    copy: bool,
    mut each: impl FnMut(Kind) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let kind = |name: &'static str, insert: &'static str| Kind {
        name,
        insert,
        rows: Vec::new(),
        tally: Tally::new(),
    };
    // Status lists.
    let mut k = kind(
        KINDS[0],
        "INSERT INTO status_lists (list, size, allocated) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[])",
    );
    for kv in sled.status_alloc.iter() {
        let (key, v) = kv?;
        let list =
            u32::from_be_bytes(key.as_ref().try_into().map_err(|e| StoreError::Corrupt {
                what: "status list number",
                cause: Arc::new(e),
            })?);
        let info = ListInfo::decode(list, &v)?;
        k.tally.add(&list_key(list), &info.encode());
        if copy {
            k.rows.push(vec![
                Row_::Int(i64::from(list)),
                Row_::Int(int(info.size)?),
                Row_::Int(int(info.allocated)?),
            ]);
        }
    }
    each(k)?;
    // Their bits: the version, then the packed entries (as sled keeps them).
    let mut k = kind(
        KINDS[1],
        "INSERT INTO status_bits (list, version, bits) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[])",
    );
    for kv in sled.status_bits.iter() {
        let (key, v) = kv?;
        let list =
            u32::from_be_bytes(key.as_ref().try_into().map_err(|e| StoreError::Corrupt {
                what: "status list number",
                cause: Arc::new(e),
            })?);
        if v.len() < 8 {
            return Err(super::corrupt_list("a list's bits have no version"));
        }
        k.tally.add(&list_key(list), &v);
        if copy {
            k.rows.push(vec![
                Row_::Int(i64::from(list)),
                Row_::Int(int(u64::from_be_bytes(be8(
                    "status list version",
                    &v[..8],
                )?))?),
                Row_::Bytes(v[8..].to_vec()),
            ]);
        }
    }
    each(k)?;
    let mut k = kind(
        KINDS[2],
        "INSERT INTO status_signed (list, iat, version, kid, token) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[])",
    );
    for kv in sled.status_signed.iter() {
        let (key, v) = kv?;
        let list =
            u32::from_be_bytes(key.as_ref().try_into().map_err(|e| StoreError::Corrupt {
                what: "status list number",
                cause: Arc::new(e),
            })?);
        let s: SignedList = de(&v)?;
        k.tally.add(&list_key(list), &ser(&s)?);
        if copy {
            k.rows.push(vec![
                Row_::Int(i64::from(list)),
                Row_::Int(s.iat),
                Row_::Int(int(s.version)?),
                Row_::Text(s.kid),
                Row_::Text(s.token),
            ]);
        }
    }
    each(k)?;
    let mut k = kind(
        KINDS[3],
        "INSERT INTO status_open (one, list) SELECT TRUE, l FROM UNNEST($1::bigint[]) AS l",
    );
    if let Some(v) = sled.meta.get(STATUS_OPEN_LIST)? {
        let list = u32::from_be_bytes(v.as_ref().try_into().map_err(|e| StoreError::Corrupt {
            what: "open status list",
            cause: Arc::new(e),
        })?);
        k.tally.add(b"open", &list_key(list));
        if copy {
            k.rows.push(vec![Row_::Int(i64::from(list))]);
        }
    }
    each(k)?;
    let mut k = kind(
        KINDS[4],
        "INSERT INTO meta (key, value) SELECT * FROM UNNEST($1::text[], $2::bytea[])",
    );
    for kv in sled.meta.iter() {
        let (key, v) = kv?;
        let key = utf8("metadata key", &key)?;
        if SLED_ONLY_META.contains(&key.as_str()) {
            continue;
        }
        k.tally.add(key.as_bytes(), &v);
        if copy {
            k.rows.push(vec![Row_::Text(key), Row_::Bytes(v.to_vec())]);
        }
    }
    each(k)?;
    let mut k = kind(
        KINDS[5],
        "INSERT INTO applications (id, status, created, version, body) \
         SELECT i, s, c, 1, b FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bytea[]) \
         AS u(i, s, c, b)",
    );
    for kv in sled.apps.iter() {
        let (key, v) = kv?;
        let app: Application = de(&v)?;
        k.tally.add(&key, &v);
        if copy {
            k.rows.push(vec![
                Row_::Text(utf8("application id", &key)?),
                Row_::Text(app.status.as_str().to_owned()),
                Row_::Int(app.created),
                Row_::Bytes(v.to_vec()),
            ]);
        }
        if k.rows.len() >= CHUNK {
            each(Kind {
                rows: std::mem::take(&mut k.rows),
                tally: Tally::new(),
                ..k
            })?;
        }
    }
    each(k)?;
    let mut k = kind(
        KINDS[6],
        "INSERT INTO offers (id, application_id, configuration_id, code_hash, tx_hash, expires, \
         attempts, used, offer) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], \
         $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::boolean[], $9::bytea[])",
    );
    for kv in sled.offers.iter() {
        let (key, v) = kv?;
        let o: Offer = de(&v)?;
        k.tally.add(&key, &ser(&o)?);
        if copy {
            k.rows.push(vec![
                Row_::Text(o.id),
                Row_::Text(o.application_id),
                Row_::Text(o.configuration_id),
                Row_::Text(o.code_hash),
                Row_::Text(o.tx_hash),
                Row_::Int(o.expires),
                Row_::Int(i64::from(o.attempts)),
                Row_::Bool(o.used),
                Row_::Bytes(ser(&o.offer)?),
            ]);
        }
        if k.rows.len() >= CHUNK {
            each(Kind {
                rows: std::mem::take(&mut k.rows),
                tally: Tally::new(),
                ..k
            })?;
        }
    }
    each(k)?;
    let mut k = kind(
        KINDS[7],
        "INSERT INTO access_tokens (hash, application_id, configuration_id, expires, used, \
         credential_id, reissues) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], \
         $4::bigint[], $5::boolean[], $6::text[], $7::bigint[])",
    );
    for kv in sled.tokens.iter() {
        let (key, v) = kv?;
        let t: AccessToken = de(&v)?;
        k.tally.add(&key, &ser(&t)?);
        if copy {
            k.rows.push(vec![
                Row_::Text(utf8("access token hash", &key)?),
                Row_::Text(t.application_id),
                Row_::Text(t.configuration_id),
                Row_::Int(t.expires),
                Row_::Bool(t.used),
                Row_::OptText(t.credential_id),
                Row_::Int(i64::from(t.reissues)),
            ]);
        }
        if k.rows.len() >= CHUNK {
            each(Kind {
                rows: std::mem::take(&mut k.rows),
                tally: Tally::new(),
                ..k
            })?;
        }
    }
    each(k)?;
    let mut k = kind(
        KINDS[8],
        "INSERT INTO nonces (nonce, expires) SELECT * FROM UNNEST($1::text[], $2::bigint[])",
    );
    for kv in sled.nonces.iter() {
        let (key, v) = kv?;
        let expires = i64::from_be_bytes(be8("c_nonce expiry", &v)?);
        k.tally.add(&key, &expires.to_be_bytes());
        if copy {
            k.rows
                .push(vec![Row_::Text(utf8("c_nonce", &key)?), Row_::Int(expires)]);
        }
        if k.rows.len() >= CHUNK {
            each(Kind {
                rows: std::mem::take(&mut k.rows),
                tally: Tally::new(),
                ..k
            })?;
        }
    }
    each(k)?;
    let mut k = kind(
        KINDS[9],
        "INSERT INTO credentials (id, application_id, status_list, status_idx, status, body) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], \
         $6::bytea[]) ON CONFLICT (status_list, status_idx) DO NOTHING",
    );
    // Every allocated index names its credential, and no other credential holds it.
    let mut indices = 0u64;
    for kv in sled.status_idx.iter() {
        let (key, id) = kv?;
        if key.len() != 12 {
            return Err(super::corrupt_list(
                "a status index key is not (list, index): run the issuer once before moving",
            ));
        }
        let rec = sled
            .creds
            .get(&id)?
            .map(|v| de::<CredentialRecord>(&v))
            .transpose()?;
        let held = rec.is_some_and(|r| {
            key[..4] == list_key(r.status_list) && key[4..] == r.status_idx.to_be_bytes()
        });
        if !held {
            return Err(StoreError::MoveVerify(format!(
                "status index {} of list {} names credential {} that does not hold it",
                u64::from_be_bytes(be8("status index", &key[4..])?),
                u32::from_be_bytes(key[..4].try_into().unwrap_or_default()),
                String::from_utf8_lossy(&id)
            )));
        }
        indices += 1;
    }
    for kv in sled.creds.iter() {
        let (key, v) = kv?;
        let rec: CredentialRecord = de(&v)?;
        k.tally.add(&key, &v);
        if copy {
            k.rows.push(vec![
                Row_::Text(utf8("credential id", &key)?),
                Row_::Text(rec.application_id),
                Row_::Int(i64::from(rec.status_list)),
                Row_::Int(int(rec.status_idx)?),
                Row_::Text(rec.status.as_str().to_owned()),
                Row_::Bytes(v.to_vec()),
            ]);
        }
        if k.rows.len() >= CHUNK {
            each(Kind {
                rows: std::mem::take(&mut k.rows),
                tally: Tally::new(),
                ..k
            })?;
        }
    }
    if indices != k.tally.n {
        return Err(StoreError::MoveVerify(format!(
            "{} credentials but {indices} allocated status indices",
            k.tally.n
        )));
    }
    each(k)?;
    // Public records (after the credentials they name), then the public feed.
    let mut k = kind(
        KINDS[10],
        "INSERT INTO public_records (subject, credential_id, content_sha256, seq, issued_at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])",
    );
    for kv in sled.public.iter() {
        let (key, v) = kv?;
        let r: PublicRecord = de(&v)?;
        k.tally.add(&key, &ser(&r)?);
        if copy {
            k.rows.push(vec![
                Row_::Text(r.subject),
                Row_::Text(r.credential_id),
                Row_::Text(r.content_sha256),
                Row_::Int(int(r.seq)?),
                Row_::Int(r.issued_at),
            ]);
        }
        if k.rows.len() >= CHUNK {
            each(Kind {
                rows: std::mem::take(&mut k.rows),
                tally: Tally::new(),
                ..k
            })?;
        }
    }
    each(k)?;
    let mut k = kind(
        KINDS[11],
        "INSERT INTO public_feed (seq, credential_id, subject, credential) \
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[])",
    );
    for kv in sled.feed.iter() {
        let (key, v) = kv?;
        let f: FeedItem = de(&v)?;
        k.tally.add(&key, &ser(&f)?);
        if copy {
            k.rows.push(vec![
                Row_::Int(int(f.seq)?),
                Row_::Text(f.credential_id),
                Row_::Text(f.subject),
                Row_::Text(f.credential),
            ]);
        }
        if k.rows.len() >= CHUNK {
            each(Kind {
                rows: std::mem::take(&mut k.rows),
                tally: Tally::new(),
                ..k
            })?;
        }
    }
    each(k)?;
    // The event log (after the credentials its events name).
    let mut k = kind(
        KINDS[12],
        "INSERT INTO events (seq, credential_id, kind, body) \
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bytea[])",
    );
    for kv in sled.events.iter() {
        let (key, v) = kv?;
        let e: IssuerEvent = de(&v)?;
        if key.as_ref() != e.seq.to_be_bytes() {
            return Err(StoreError::MoveVerify(format!(
                "event {} is stored under another position",
                e.seq
            )));
        }
        k.tally.add(&key, &v);
        if copy {
            k.rows.push(vec![
                Row_::Int(int(e.seq)?),
                Row_::Text(e.credential_id),
                Row_::Text(e.kind.as_str().to_owned()),
                Row_::Bytes(v.to_vec()),
            ]);
        }
        if k.rows.len() >= CHUNK {
            each(Kind {
                rows: std::mem::take(&mut k.rows),
                tally: Tally::new(),
                ..k
            })?;
        }
    }
    each(k)?;
    let mut k = kind(
        KINDS[13],
        "INSERT INTO audit (seq, hash, entry) \
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bytea[])",
    );
    for kv in sled.audit.iter() {
        let (key, v) = kv?;
        let entry: serde_json::Value = de(&v)?;
        let seq = u64::from_be_bytes(be8("audit sequence number", &key)?);
        k.tally.add(&seq.to_be_bytes(), &v);
        if copy {
            let hash = entry
                .get("hash")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned();
            k.rows.push(vec![
                Row_::Int(int(seq)?),
                Row_::Text(hash),
                Row_::Bytes(v.to_vec()),
            ]);
        }
        if k.rows.len() >= CHUNK {
            each(Kind {
                rows: std::mem::take(&mut k.rows),
                tally: Tally::new(),
                ..k
            })?;
        }
    }
    each(k)
}

/// Inserts `rows` (one kind's, columns in order) with the kind's `UNNEST` statement; answers
/// how many rows it inserted.
async fn insert(tx: &mut Tx, sql: &'static str, rows: Vec<Vec<Row_>>) -> Result<u64, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(0);
    };
    let mut q = sqlx::query(sql);
    for (col, kind) in first.iter().enumerate() {
        let column = rows.iter().map(|r| r.get(col).cloned());
        macro_rules! array {
            ($variant:ident, $t:ty) => {{
                let mut v: Vec<$t> = Vec::with_capacity(rows.len());
                for c in column {
                    match c {
                        Some(Row_::$variant(x)) => v.push(x),
                        _ => return Err(StoreError::MoveVerify("a row of mixed columns".into())),
                    }
                }
                q = q.bind(v);
            }};
        }
        match kind {
            Row_::Text(_) => array!(Text, String),
            Row_::Int(_) => array!(Int, i64),
            Row_::Bool(_) => array!(Bool, bool),
            Row_::OptText(_) => array!(OptText, Option<String>),
            Row_::Bytes(_) => array!(Bytes, Vec<u8>),
        }
    }
    Ok(q.execute(&mut **tx).await?.rows_affected())
}

/// The tallies of what `tx` sees in the database, kind by kind (the order of [`KINDS`]), and
/// the audit chain verified as it is read: (tallies, entries, head).
async fn read_pg(tx: &mut Tx) -> Result<(Vec<(u64, [u8; 32])>, u64, String), StoreError> {
    type Pick = fn(&PgRow) -> Result<(Vec<u8>, Vec<u8>), StoreError>;
    fn list_of(row: &PgRow) -> Result<u32, StoreError> {
        u32::try_from(row.try_get::<i64, _>("list")?).map_err(|e| StoreError::Corrupt {
            what: "status list number",
            cause: Arc::new(e),
        })
    }
    fn unsigned(row: &PgRow, col: &str) -> Result<u64, StoreError> {
        u64::try_from(row.try_get::<i64, _>(col)?).map_err(|e| StoreError::Corrupt {
            what: "a negative number",
            cause: Arc::new(e),
        })
    }
    let queries: [(&str, Pick); 14] = [
        (
            "SELECT list, size, allocated FROM status_lists ORDER BY list",
            |r| {
                let l = list_of(r)?;
                let info = ListInfo {
                    list: l,
                    size: unsigned(r, "size")?,
                    allocated: unsigned(r, "allocated")?,
                };
                Ok((list_key(l).to_vec(), info.encode().to_vec()))
            },
        ),
        (
            "SELECT list, version, bits FROM status_bits ORDER BY list",
            |r| {
                let mut v = unsigned(r, "version")?.to_be_bytes().to_vec();
                v.extend(r.try_get::<Vec<u8>, _>("bits")?);
                Ok((list_key(list_of(r)?).to_vec(), v))
            },
        ),
        (
            "SELECT list, iat, version, kid, token FROM status_signed ORDER BY list",
            |r| {
                let s = SignedList {
                    iat: r.try_get("iat")?,
                    version: unsigned(r, "version")?,
                    kid: r.try_get("kid")?,
                    token: r.try_get("token")?,
                };
                Ok((list_key(list_of(r)?).to_vec(), ser(&s)?))
            },
        ),
        ("SELECT list FROM status_open", |r| {
            Ok((b"open".to_vec(), list_key(list_of(r)?).to_vec()))
        }),
        ("SELECT key, value FROM meta ORDER BY key", |r| {
            Ok((
                r.try_get::<String, _>("key")?.into_bytes(),
                r.try_get("value")?,
            ))
        }),
        ("SELECT id, body FROM applications ORDER BY id", |r| {
            Ok((
                r.try_get::<String, _>("id")?.into_bytes(),
                r.try_get("body")?,
            ))
        }),
        (
            "SELECT id, application_id, configuration_id, code_hash, tx_hash, expires, \
             attempts, used, offer FROM offers ORDER BY id",
            |r| {
                let offer: Vec<u8> = r.try_get("offer")?;
                let o = Offer {
                    id: r.try_get("id")?,
                    application_id: r.try_get("application_id")?,
                    configuration_id: r.try_get("configuration_id")?,
                    code_hash: r.try_get("code_hash")?,
                    tx_hash: r.try_get("tx_hash")?,
                    expires: r.try_get("expires")?,
                    attempts: u32::try_from(unsigned(r, "attempts")?).unwrap_or(u32::MAX),
                    used: r.try_get("used")?,
                    offer: de(&offer)?,
                };
                Ok((o.id.clone().into_bytes(), ser(&o)?))
            },
        ),
        (
            "SELECT hash, application_id, configuration_id, expires, used, credential_id, \
             reissues FROM access_tokens ORDER BY hash",
            |r| {
                let t = AccessToken {
                    application_id: r.try_get("application_id")?,
                    configuration_id: r.try_get("configuration_id")?,
                    expires: r.try_get("expires")?,
                    used: r.try_get("used")?,
                    credential_id: r.try_get("credential_id")?,
                    reissues: u32::try_from(unsigned(r, "reissues")?).unwrap_or(u32::MAX),
                };
                Ok((r.try_get::<String, _>("hash")?.into_bytes(), ser(&t)?))
            },
        ),
        ("SELECT nonce, expires FROM nonces ORDER BY nonce", |r| {
            Ok((
                r.try_get::<String, _>("nonce")?.into_bytes(),
                r.try_get::<i64, _>("expires")?.to_be_bytes().to_vec(),
            ))
        }),
        ("SELECT id, body FROM credentials ORDER BY id", |r| {
            Ok((
                r.try_get::<String, _>("id")?.into_bytes(),
                r.try_get("body")?,
            ))
        }),
        (
            "SELECT subject, credential_id, content_sha256, seq, issued_at FROM public_records \
             ORDER BY subject",
            |r| {
                let p = PublicRecord {
                    subject: r.try_get("subject")?,
                    credential_id: r.try_get("credential_id")?,
                    content_sha256: r.try_get("content_sha256")?,
                    seq: unsigned(r, "seq")?,
                    issued_at: r.try_get("issued_at")?,
                };
                Ok((p.subject.clone().into_bytes(), ser(&p)?))
            },
        ),
        (
            "SELECT seq, credential_id, subject, credential FROM public_feed ORDER BY seq",
            |r| {
                let f = FeedItem {
                    seq: unsigned(r, "seq")?,
                    credential_id: r.try_get("credential_id")?,
                    subject: r.try_get("subject")?,
                    credential: r.try_get("credential")?,
                };
                Ok((f.seq.to_be_bytes().to_vec(), ser(&f)?))
            },
        ),
        ("SELECT seq, body FROM events ORDER BY seq", |r| {
            Ok((
                unsigned(r, "seq")?.to_be_bytes().to_vec(),
                r.try_get("body")?,
            ))
        }),
        ("SELECT seq, entry FROM audit ORDER BY seq", |r| {
            Ok((
                unsigned(r, "seq")?.to_be_bytes().to_vec(),
                r.try_get("entry")?,
            ))
        }),
    ];
    let mut tallies = Vec::with_capacity(queries.len());
    let mut chain = AuditVerifier::default();
    for (i, (select, pick)) in queries.iter().enumerate() {
        let audit = i == KINDS.len() - 1;
        // A cursor of its own per kind: a statement's columns are cached by its text.
        sqlx::query(&format!(
            "DECLARE bizcred_move_{i} NO SCROLL CURSOR FOR {select}"
        ))
        .execute(&mut **tx)
        .await?;
        let mut tally = Tally::new();
        loop {
            let rows = sqlx::query(&format!("FETCH {CHUNK} FROM bizcred_move_{i}"))
                .persistent(false)
                .fetch_all(&mut **tx)
                .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let (k, v) = pick(r)?;
                if audit {
                    chain.push(&de(&v)?).map_err(|(seq, why)| {
                        StoreError::MoveVerify(format!("audit entry {seq}: {why}"))
                    })?;
                }
                tally.add(&k, &v);
            }
        }
        sqlx::query(&format!("CLOSE bizcred_move_{i}"))
            .execute(&mut **tx)
            .await?;
        tallies.push(tally.done());
    }
    Ok((tallies, chain.entries() as u64, chain.head().to_owned()))
}

/// Moves the sled store at `sled_path` (the issuer's `<storage>/db`, not served meanwhile:
/// sled allows one process) into the migrated PostgreSQL database at `url`; `list_size` is
/// the configuration's (a store written before the lists' bits were kept gets them first).
/// See the module documentation. `describe` names the target in messages (never the URL's
/// password).
pub fn move_to_postgres(
    sled_path: &Path,
    url: &str,
    describe: &str,
    list_size: u64,
    cache_mb: u64,
    now: i64,
) -> Result<Moved, StoreError> {
    if !sled_path.is_dir() {
        return Err(StoreError::NotFound {
            what: "sled store",
            id: sled_path.display().to_string(),
        });
    }
    let sled = SledStore::open_moved(sled_path, cache_mb)?;
    move_open_store(&sled, sled_path, url, describe, list_size, now)
}

/// [`move_to_postgres`] of a sled store already open (by this process, which must not write
/// it meanwhile) at `sled_path`.
pub fn move_open_store(
    sled: &SledStore,
    sled_path: &Path,
    url: &str,
    describe: &str,
    list_size: u64,
    now: i64,
) -> Result<Moved, StoreError> {
    sled.prepare_status_lists(list_size)?;
    let sled_head = sled
        .meta
        .get(AUDIT_HEAD)?
        .map(|h| String::from_utf8_lossy(&h).into_owned())
        .unwrap_or_else(|| "0".repeat(64));
    let pg = PgStore::connect(url, 2)?;
    let mut tx = pg.begin()?;
    let held = tx.step(|mut tx| async move {
        // One move at a time; an instance serving meanwhile would show as a non-empty target.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MOVE_LOCK)
            .execute(&mut *tx)
            .await?;
        let held: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM meta) OR EXISTS (SELECT 1 FROM applications) \
             OR EXISTS (SELECT 1 FROM offers) OR EXISTS (SELECT 1 FROM access_tokens) \
             OR EXISTS (SELECT 1 FROM nonces) OR EXISTS (SELECT 1 FROM credentials) \
             OR EXISTS (SELECT 1 FROM status_lists) OR EXISTS (SELECT 1 FROM audit)",
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok((tx, held))
    })?;
    // Copy (into an empty target) kind by kind, a chunk of rows at a time, tallying sled.
    let copy = !held;
    let mut tallies: Vec<(&'static str, Tally)> = Vec::new();
    read_sled(sled, copy, |k| {
        match tallies.last_mut() {
            // A later chunk of the same kind: the full tally comes with the last chunk.
            Some((name, t)) if *name == k.name => {
                if k.tally.n > 0 {
                    *t = k.tally.clone();
                }
            }
            _ => tallies.push((k.name, k.tally.clone())),
        }
        if copy && !k.rows.is_empty() {
            let want = k.rows.len() as u64;
            let got = tx.step(|mut t| async move {
                let got = insert(&mut t, k.insert, k.rows).await?;
                Ok((t, got))
            })?;
            if got != want {
                return Err(StoreError::MoveVerify(format!(
                    "{}: {got} of {want} rows written (two credentials hold one status index?)",
                    k.name
                )));
            }
        }
        Ok(())
    })?;
    let sled_done: Vec<(&'static str, (u64, [u8; 32]))> =
        tallies.into_iter().map(|(n, t)| (n, t.done())).collect();
    // Read back what the transaction holds (or the target held) and compare.
    let (pg_tallies, entries, head) = tx.step(|mut t| async move {
        let read = read_pg(&mut t).await?;
        Ok((t, read))
    })?;
    let differs: Vec<&str> = sled_done
        .iter()
        .zip(&pg_tallies)
        .filter(|((_, s), p)| s != *p)
        .map(|((name, _), _)| *name)
        .collect();
    if !differs.is_empty() || sled_done.len() != pg_tallies.len() {
        // Dropping the transaction rolls the copy back.
        return Err(if held {
            StoreError::NotEmpty(describe.to_owned())
        } else {
            StoreError::MoveVerify(format!("read back differently: {}", differs.join(", ")))
        });
    }
    if head != sled_head {
        return Err(StoreError::MoveVerify(format!(
            "the audit chain read back ends at {head}, the sled store's at {sled_head}"
        )));
    }
    if copy {
        tx.commit()?;
    }
    SledStore::mark_moved(
        sled_path,
        &format!(
            "moved to {describe} at {} ({} credentials, {entries} audit entries, head {head})",
            bizcred_core::time::format_utc(now),
            sled_done.get(9).map_or(0, |(_, (n, _))| *n),
        ),
    )?;
    Ok(Moved {
        already: held,
        counts: sled_done.iter().map(|(n, (c, _))| (*n, *c)).collect(),
        audit_entries: entries,
        audit_head: head,
    })
}

/// What `bizcred-issuer migrate` did ([`migrate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The database, without its password.
    pub database: String,
    /// The migrations applied.
    pub migrated: Migrated,
    /// The sled store moved (its directory), with what was moved.
    pub moved: Option<(PathBuf, Moved)>,
}

impl Migration {
    /// What was done, for a person.
    pub fn sentence(&self) -> String {
        let m = &self.migrated;
        let mut out = if m.applied.is_empty() {
            format!("{} is current (migrations {:?})", self.database, m.versions)
        } else {
            format!("{}: applied migrations {:?}", self.database, m.applied)
        };
        if let Some((from, moved)) = &self.moved {
            let counts: Vec<String> = moved
                .counts
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            out.push_str(&format!(
                "\n{} {} to {}: {}; verified: every record read back the same, the audit chain \
                 ({} entries) intact and ending at {}; the sled store is marked moved\nserve it \
                 with: bizcred-issuer serve --config <agency.toml> (with [storage] database set, \
                 or --database)",
                if moved.already {
                    "already moved:"
                } else {
                    "moved"
                },
                from.display(),
                self.database,
                counts.join(", "),
                moved.audit_entries,
                moved.audit_head,
            ));
        }
        out
    }

    /// What was done, as JSON.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "database": self.database,
            "applied": self.migrated.applied,
            "versions": self.migrated.versions,
        });
        if let Some((from, moved)) = &self.moved {
            let counts: serde_json::Map<String, Value> = moved
                .counts
                .iter()
                .map(|(k, n)| ((*k).to_owned(), json!(n)))
                .collect();
            v["moved"] = json!({
                "from": from,
                "already": moved.already,
                "counts": counts,
                "audit_entries": moved.audit_entries,
                "audit_head": moved.audit_head,
                "verified": true,
            });
        }
        v
    }
}

/// `bizcred-issuer migrate`: applies this binary's migrations to the database `cfg` names
/// (see [`pg::migrate`]) and, with `from` (the issuer's storage directory or its `db/`),
/// moves that sled store into it ([`move_to_postgres`]).
pub fn migrate(
    cfg: &crate::Config,
    from: Option<&Path>,
    now: i64,
) -> Result<Migration, StoreError> {
    let url = cfg.database.as_ref().ok_or(StoreError::NoDatabase)?;
    let database = format!("PostgreSQL {}", url.redacted());
    let migrated = pg::migrate(url.expose())?;
    let moved = match from {
        None => None,
        Some(dir) => {
            // The storage directory holds the sled store in db/.
            let sled_path = if dir.join("db").is_dir() {
                dir.join("db")
            } else {
                dir.to_owned()
            };
            let moved = move_to_postgres(
                &sled_path,
                url.expose(),
                &database,
                cfg.list_size,
                cfg.cache_mb,
                now,
            )?;
            Some((sled_path, moved))
        }
    };
    Ok(Migration {
        database,
        migrated,
        moved,
    })
}
