//! The issuer's event feed, both sides (issue #14, "agencies told when another has done its
//! part"): an issuer publishes its event log ([`crate::store::IssuerEvent`]: credentials
//! issued, suspended, revoked, reinstated) as pages other agencies poll (`GET /events`, see
//! [`crate::events`]), each page a compact JWS signed by the issuer's current assertion key
//! ([`EVENTS_TYP`], `kid` the DID URL), so a subscriber verifies it offline with the issuer's
//! key history from the trust bundle; and a [`Subscription`], the subscriber's side, which
//! accepts a page only when it is the issuer's, signed by a key the issuer held at the page's
//! `iat`, fresh, and continues exactly from its cursor.
//!
//! Events carry the credential's id, `vct`, status list URI and index and identifiers of the
//! business (corporation number, business number, licence number); no personal data. A
//! downstream agency matches them against the status list entries of the credentials it
//! verified (an application's prerequisites, its own credentials' sources).
//!
//! The subscriber's side is pure: no I/O and no clock (`now` is a parameter); fetching pages
//! and keeping the subscription durable are the caller's.

use serde::{Deserialize, Serialize};
use serde_json::Map;

use bizcred_core::jws::{self, Jws, JwsError};
use bizcred_core::keys::Signer;
use bizcred_core::trust::state::{TrustError, TrustState};
use bizcred_schemas::ReasonCode;

use super::{Error, Issuer};
use crate::store::{ser, BusinessIds, EventKind, IssuerEvent, MAX_EVENT_PAGE};

/// The `typ` of an event page's JWS header.
pub const EVENTS_TYP: &str = "bizcred-events+jwt";

/// Longest event page a subscriber reads (bytes of the compact JWS).
pub const MAX_EVENT_PAGE_LEN: usize = 1024 * 1024;

/// How far ahead of the subscriber's clock a page's `iat` may be (the issuer's clock may run a
/// little ahead; a key never signs before its DID version, which may lead the clock a little).
pub const MAX_EVENT_CLOCK_SKEW: i64 = 60;

/// How old a page may be by default: an older page could hide newer events (a feed frozen by
/// whoever serves it).
pub const DEFAULT_MAX_PAGE_AGE: i64 = 300;

/// One event as published: the stored event with its status list's URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedEvent {
    /// Position in the issuer's event log, from 1, without gaps.
    pub seq: u64,
    /// When (Unix seconds).
    pub time: i64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The credential's id at the issuer.
    pub credential_id: String,
    /// Its `vct`.
    pub vct: String,
    /// The URI of its status list (the credential's `status.status_list.uri`).
    pub status_list: String,
    /// Its index in that list (the credential's `status.status_list.idx`).
    pub status_idx: u64,
    /// The business it is about (identifiers only).
    #[serde(default)]
    pub business: BusinessIds,
}

impl PublishedEvent {
    /// `e` with its list's URI.
    pub fn of(e: &IssuerEvent, status_list_uri: String) -> PublishedEvent {
        PublishedEvent {
            seq: e.seq,
            time: e.time,
            kind: e.kind,
            credential_id: e.credential_id.clone(),
            vct: e.vct.clone(),
            status_list: status_list_uri,
            status_idx: e.status_idx,
            business: e.business.clone(),
        }
    }
}

/// The claims of an event page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    /// The issuer's DID.
    pub issuer: String,
    /// The position the page follows (the subscriber's cursor).
    pub after: u64,
    /// The position to ask after next: the last event's, or `after` when there is none.
    pub next_after: u64,
    /// The events after `after`, in order, without gaps.
    pub events: Vec<PublishedEvent>,
    /// When the page was signed (Unix seconds).
    pub iat: i64,
}

/// Signs `page` as a compact JWS (`typ` [`EVENTS_TYP`], `kid`).
pub fn sign_page(page: &EventPage, kid: &str, signer: &impl Signer) -> Result<String, Error> {
    let mut header = Map::new();
    header.insert("typ".into(), EVENTS_TYP.into());
    header.insert("kid".into(), kid.into());
    let payload = ser(page)?;
    Ok(jws::sign(header, &payload, signer)?)
}

impl Issuer {
    /// A signed page of the event log: up to `limit` (at most [`MAX_EVENT_PAGE`]) events after
    /// position `after`, signed now by the current assertion key (never dated before the DID
    /// version that introduced it). Answers the compact JWS and its claims.
    pub fn event_page(&self, after: u64, limit: usize) -> Result<(String, EventPage), Error> {
        let events = self.store.events(after, limit.min(MAX_EVENT_PAGE))?;
        let page = |iat| EventPage {
            issuer: self.did.clone(),
            after,
            next_after: events.last().map_or(after, |e| e.seq),
            events: events
                .iter()
                .map(|e| PublishedEvent::of(e, self.status_uri(e.status_list)))
                .collect(),
            iat,
        };
        let keys = self.signing_key();
        let page = page(self.now().max(keys.valid_from));
        let token = sign_page(&page, &keys.kid, &keys.assertion)?;
        Ok((token, page))
    }
}

/// Why a subscriber refused an event page (its cursor is unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// Not an event page: too large, not a JWS of [`EVENTS_TYP`], or its claims are not an
    /// [`EventPage`].
    #[error("not an event page: {0}")]
    Malformed(&'static str),
    /// The page names, or is signed by, another issuer than the one subscribed to.
    #[error("the event page is {got}'s, not {want}'s")]
    WrongIssuer {
        /// The issuer subscribed to.
        want: String,
        /// The issuer (or the key's DID) the page names.
        got: String,
    },
    /// The issuer or its key is not in the trust state at the page's `iat` (unknown,
    /// deactivated, rotated away, compromised).
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The signature does not verify with the key the trust state gives.
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// The page is older than the subscription accepts, or dated ahead of the clock.
    #[error("the event page was signed at {iat}, outside {earliest}..={latest}")]
    Stale {
        /// The page's `iat`.
        iat: i64,
        /// The oldest `iat` accepted.
        earliest: i64,
        /// The newest `iat` accepted.
        latest: i64,
    },
    /// The page follows a position before the cursor: its events were taken already.
    #[error("the event page follows position {after}, before the cursor {cursor} (a replay)")]
    Replayed {
        /// The page's `after`.
        after: u64,
        /// The subscription's cursor.
        cursor: u64,
    },
    /// Events would be missed: the page starts after the cursor, skips a position, or its
    /// `next_after` is not its last event's.
    #[error("events would be missed: position {expected} was expected, the page has {got}")]
    Gap {
        /// The position expected.
        expected: u64,
        /// What the page has there.
        got: u64,
    },
    /// An event's position is not after the one before it.
    #[error("event {seq} comes after event {previous}: out of order")]
    OutOfOrder {
        /// The position before.
        previous: u64,
        /// The event's.
        seq: u64,
    },
}

impl SubscribeError {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            SubscribeError::Malformed(_) => ReasonCode::EventPageMalformed,
            SubscribeError::WrongIssuer { .. } => ReasonCode::EventPageWrongIssuer,
            SubscribeError::Trust(e) => e.code(),
            SubscribeError::Jws(e) => e.code(),
            SubscribeError::Stale { .. } => ReasonCode::EventPageStale,
            SubscribeError::Replayed { .. } => ReasonCode::EventPageReplayed,
            SubscribeError::Gap { .. } => ReasonCode::EventPageGap,
            SubscribeError::OutOfOrder { .. } => ReasonCode::EventOutOfOrder,
        }
    }
}

/// A subscriber's position in one issuer's event feed: the last event taken. Kept by the
/// subscriber (it serializes), moved only by [`Subscription::accept`] of a page it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The issuer's DID.
    pub issuer: String,
    /// The position of the last event taken (0 before the first): the next page asked for is
    /// `after` this.
    pub cursor: u64,
    /// How old a page may be (seconds; [`DEFAULT_MAX_PAGE_AGE`]).
    pub max_age: i64,
}

impl Subscription {
    /// A subscription to `issuer` (a DID) from its first event.
    pub fn new(issuer: impl Into<String>) -> Subscription {
        Subscription {
            issuer: issuer.into(),
            cursor: 0,
            max_age: DEFAULT_MAX_PAGE_AGE,
        }
    }

    /// Checks the event page `token` (the body of `GET /events?after={cursor}`) against
    /// `trust` at `now`, and answers its events when it is accepted, moving the cursor to its
    /// `next_after`. A page is accepted when it is an [`EVENTS_TYP`] JWS of this issuer,
    /// signed by an assertion key of its DID at the page's `iat` (not compromised), fresh
    /// (`iat` within [`Subscription::max_age`] before `now` and [`MAX_EVENT_CLOCK_SKEW`]
    /// after), follows exactly the cursor, and its events' positions run on from it without
    /// gaps, its `next_after` the last one's. A refused page changes nothing.
    pub fn accept(
        &mut self,
        token: &str,
        trust: &TrustState,
        now: i64,
    ) -> Result<Vec<PublishedEvent>, SubscribeError> {
        let page = self.check(token, trust, now)?;
        self.cursor = page.next_after;
        Ok(page.events)
    }

    /// [`Subscription::accept`] without moving the cursor: the page's claims when it would be
    /// accepted.
    pub fn check(
        &self,
        token: &str,
        trust: &TrustState,
        now: i64,
    ) -> Result<EventPage, SubscribeError> {
        if token.len() > MAX_EVENT_PAGE_LEN {
            return Err(SubscribeError::Malformed(
                "the page is larger than accepted",
            ));
        }
        let jws = Jws::decode(token.trim())?;
        if jws.header_str("typ") != Some(EVENTS_TYP) {
            return Err(SubscribeError::Malformed(
                "the JWS is not of type bizcred-events+jwt",
            ));
        }
        let kid = jws
            .header_str("kid")
            .ok_or(SubscribeError::Malformed("the JWS names no key"))?
            .to_owned();
        let page: EventPage = serde_json::from_slice(&jws.payload)
            .map_err(|_| SubscribeError::Malformed("the claims are not an event page"))?;
        if page.events.len() > MAX_EVENT_PAGE {
            return Err(SubscribeError::Malformed(
                "the page holds more events than accepted",
            ));
        }
        // The page's issuer, and the key's DID, are the one subscribed to.
        if page.issuer != self.issuer {
            return Err(SubscribeError::WrongIssuer {
                want: self.issuer.clone(),
                got: page.issuer.chars().take(256).collect(),
            });
        }
        let key_did = kid.split_once('#').map_or("", |(did, _)| did);
        if !kid.starts_with('#') && key_did != self.issuer {
            return Err(SubscribeError::WrongIssuer {
                want: self.issuer.clone(),
                got: key_did.chars().take(256).collect(),
            });
        }
        // Signed by a key the issuer held at `iat`, as the trust state knows its history.
        let key = trust.issuer_key(&self.issuer, &kid, page.iat)?;
        jws.verify(&key)?;
        let earliest = now.saturating_sub(self.max_age);
        let latest = now.saturating_add(MAX_EVENT_CLOCK_SKEW);
        if page.iat < earliest || page.iat > latest {
            return Err(SubscribeError::Stale {
                iat: page.iat,
                earliest,
                latest,
            });
        }
        // It follows the cursor exactly, and its events run on from it.
        if page.after < self.cursor {
            return Err(SubscribeError::Replayed {
                after: page.after,
                cursor: self.cursor,
            });
        }
        if page.after > self.cursor {
            return Err(SubscribeError::Gap {
                expected: self.cursor.saturating_add(1),
                got: page.after.saturating_add(1),
            });
        }
        for w in page.events.windows(2) {
            if w[1].seq <= w[0].seq {
                return Err(SubscribeError::OutOfOrder {
                    previous: w[0].seq,
                    seq: w[1].seq,
                });
            }
        }
        let mut last = page.after;
        for e in &page.events {
            if e.seq != last.saturating_add(1) {
                return Err(SubscribeError::Gap {
                    expected: last.saturating_add(1),
                    got: e.seq,
                });
            }
            last = e.seq;
        }
        if page.next_after != last {
            return Err(SubscribeError::Gap {
                expected: last,
                got: page.next_after,
            });
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bizcred_core::keys::SecretKey;
    use bizcred_schemas::CredentialType;
    use bizcred_test_support::{new_key, Agency, InMemoryRegistry};

    const NOW: i64 = 1_795_348_800;

    struct World {
        obr: Agency,
        city: Agency,
        trust: TrustState,
    }

    fn world() -> World {
        let obr = Agency::new("obr.bizcred.test", NOW - 86_400);
        let city = Agency::new("city.bizcred.test", NOW - 86_400);
        let mut r = InMemoryRegistry::new("registry.bizcred.test/log", NOW - 86_400, NOW);
        r.onboard(
            &obr,
            "OBR",
            "REO",
            &[CredentialType::CertificateOfIncorporation],
            NOW - 86_400,
        );
        r.onboard(
            &city,
            "City",
            "Ville",
            &[CredentialType::MunicipalBusinessLicence],
            NOW - 86_400,
        );
        let trust = r.verifier_state(NOW - 60, Vec::new(), NOW);
        World { obr, city, trust }
    }

    fn event(agency: &Agency, seq: u64, kind: EventKind) -> PublishedEvent {
        PublishedEvent {
            seq,
            time: NOW - 10,
            kind,
            credential_id: format!("cred-{seq}"),
            vct: CredentialType::MunicipalBusinessLicence.vct().to_owned(),
            status_list: agency.status_uri(),
            status_idx: seq * 7,
            business: BusinessIds {
                business_number: Some("812345676".into()),
                licence_number: Some("B02-4741962".into()),
                ..BusinessIds::default()
            },
        }
    }

    /// A page of `agency` after `after` holding events `seqs`, signed by `key` as `kid`.
    fn page_signed(
        agency: &Agency,
        after: u64,
        seqs: &[u64],
        iat: i64,
        key: &SecretKey,
        kid: &str,
    ) -> String {
        let events: Vec<PublishedEvent> = seqs
            .iter()
            .map(|s| event(agency, *s, EventKind::CredentialSuspended))
            .collect();
        let page = EventPage {
            issuer: agency.did.clone(),
            after,
            next_after: seqs.last().copied().unwrap_or(after),
            events,
            iat,
        };
        sign_page(&page, kid, key).expect("sign")
    }

    fn page(agency: &Agency, after: u64, seqs: &[u64]) -> String {
        page_signed(
            agency,
            after,
            seqs,
            NOW - 5,
            &agency.assertion,
            &agency.kid(),
        )
    }

    fn code<T: std::fmt::Debug>(r: Result<T, SubscribeError>) -> ReasonCode {
        r.expect_err("refused").code()
    }

    #[test]
    fn pages_are_taken_in_order_and_the_cursor_follows() {
        let w = world();
        let mut sub = Subscription::new(&w.city.did);
        let got = sub
            .accept(&page(&w.city, 0, &[1, 2, 3]), &w.trust, NOW)
            .expect("first page");
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            got[0].business.licence_number.as_deref(),
            Some("B02-4741962")
        );
        assert_eq!(sub.cursor, 3);
        // An empty page at the cursor: nothing new, the cursor stays.
        assert!(sub
            .accept(&page(&w.city, 3, &[]), &w.trust, NOW)
            .expect("empty")
            .is_empty());
        assert_eq!(sub.cursor, 3);
        sub.accept(&page(&w.city, 3, &[4]), &w.trust, NOW)
            .expect("next");
        assert_eq!(sub.cursor, 4);
    }

    #[test]
    fn a_bad_signature_is_refused_and_the_cursor_stays() {
        let w = world();
        let mut sub = Subscription::new(&w.city.did);
        let token = page(&w.city, 0, &[1]);
        // Another page's signature under this page's header and claims.
        let other = page(&w.city, 0, &[1, 2]);
        let forged = format!(
            "{}.{}",
            &token[..token.rfind('.').expect("dot")],
            &other[other.rfind('.').expect("dot") + 1..]
        );
        assert_eq!(
            code(sub.accept(&forged, &w.trust, NOW)),
            ReasonCode::BadSignature
        );
        // Signed by a key that is not the agency's, under its kid.
        let impostor = new_key();
        let token = page_signed(&w.city, 0, &[1], NOW - 5, &impostor, &w.city.kid());
        assert_eq!(
            code(sub.accept(&token, &w.trust, NOW)),
            ReasonCode::BadSignature
        );
        assert_eq!(sub.cursor, 0);
        assert_eq!(
            code(sub.accept("not.a.page", &w.trust, NOW)),
            ReasonCode::MalformedJws
        );
        assert_eq!(
            code(sub.accept(&"a".repeat(MAX_EVENT_PAGE_LEN + 1), &w.trust, NOW)),
            ReasonCode::EventPageMalformed
        );
    }

    #[test]
    fn another_issuers_page_or_key_is_refused() {
        let w = world();
        let mut sub = Subscription::new(&w.city.did);
        // The OBR's own page, well signed, on the City's subscription.
        assert_eq!(
            code(sub.accept(&page(&w.obr, 0, &[1]), &w.trust, NOW)),
            ReasonCode::EventPageWrongIssuer
        );
        // The City's claims signed by the OBR's key under the OBR's kid.
        let token = page_signed(&w.city, 0, &[1], NOW - 5, &w.obr.assertion, &w.obr.kid());
        assert_eq!(
            code(sub.accept(&token, &w.trust, NOW)),
            ReasonCode::EventPageWrongIssuer
        );
        // ... or under the City's kid: the City's key does not verify it.
        let token = page_signed(&w.city, 0, &[1], NOW - 5, &w.obr.assertion, &w.city.kid());
        assert_eq!(
            code(sub.accept(&token, &w.trust, NOW)),
            ReasonCode::BadSignature
        );
        // An issuer the registry does not know.
        let stranger = Agency::new("stranger.bizcred.test", NOW - 86_400);
        let mut sub2 = Subscription::new(&stranger.did);
        assert_eq!(
            code(sub2.accept(&page(&stranger, 0, &[1]), &w.trust, NOW)),
            ReasonCode::IssuerUnknown
        );
        assert_eq!((sub.cursor, sub2.cursor), (0, 0));
    }

    #[test]
    fn out_of_order_events_and_gaps_are_refused() {
        let w = world();
        let mut sub = Subscription::new(&w.city.did);
        for (seqs, want) in [
            (&[2, 1][..], ReasonCode::EventOutOfOrder),
            (&[1, 3, 2][..], ReasonCode::EventOutOfOrder),
            (&[1, 2, 2][..], ReasonCode::EventOutOfOrder),
            (&[2, 3][..], ReasonCode::EventPageGap),
            (&[1, 2, 4][..], ReasonCode::EventPageGap),
        ] {
            assert_eq!(
                code(sub.accept(&page(&w.city, 0, seqs), &w.trust, NOW)),
                want,
                "{seqs:?}"
            );
        }
        // A page that starts after the cursor (events 1..=5 would be missed).
        assert_eq!(
            code(sub.accept(&page(&w.city, 5, &[6]), &w.trust, NOW)),
            ReasonCode::EventPageGap
        );
        // A next_after that is not the last event's.
        let events = vec![event(&w.city, 1, EventKind::CredentialRevoked)];
        let lying = EventPage {
            issuer: w.city.did.clone(),
            after: 0,
            next_after: 9,
            events,
            iat: NOW - 5,
        };
        let token = sign_page(&lying, &w.city.kid(), &w.city.assertion).expect("sign");
        assert_eq!(
            code(sub.accept(&token, &w.trust, NOW)),
            ReasonCode::EventPageGap
        );
        assert_eq!(sub.cursor, 0, "nothing was accepted");
    }

    #[test]
    fn a_replayed_page_is_refused() {
        let w = world();
        let mut sub = Subscription::new(&w.city.did);
        let first = page(&w.city, 0, &[1, 2]);
        sub.accept(&first, &w.trust, NOW).expect("first");
        assert_eq!(
            code(sub.accept(&first, &w.trust, NOW)),
            ReasonCode::EventPageReplayed
        );
        assert_eq!(sub.cursor, 2);
        // A page signed long ago (a frozen feed) or ahead of the clock.
        let old = page_signed(
            &w.city,
            2,
            &[],
            NOW - 3_600,
            &w.city.assertion,
            &w.city.kid(),
        );
        assert_eq!(
            code(sub.accept(&old, &w.trust, NOW)),
            ReasonCode::EventPageStale
        );
        let ahead = page_signed(&w.city, 2, &[], NOW + 600, &w.city.assertion, &w.city.kid());
        assert_eq!(
            code(sub.accept(&ahead, &w.trust, NOW)),
            ReasonCode::EventPageStale
        );
        // Not an event page: a JWS of another type signed by the same key.
        let mut header = Map::new();
        header.insert("typ".into(), "statuslist+jwt".into());
        header.insert("kid".into(), w.city.kid().into());
        let other = jws::sign(header, b"{}", &w.city.assertion).expect("sign");
        assert_eq!(
            code(sub.accept(&other, &w.trust, NOW)),
            ReasonCode::EventPageMalformed
        );
        assert_eq!(sub.cursor, 2);
    }
}
