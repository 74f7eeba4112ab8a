//! Credential issuer metadata (OpenID4VCI 1.0 §12.2, RFC 8414), staff approval and the
//! credential offer with its pre-authorized code and transaction code.

use rand_core::{OsRng, RngCore};
use serde_json::{json, Map, Value};

use bizcred_core::oid4vci;
use bizcred_schemas::Lang;

use super::credential::DpopEndpoint;
use super::lifecycle::{merge_claims, Change};
use super::staff::{Actor, Permission};
use super::{random_id, random_token, Error, Issuer};
use crate::store::{sha256_hex, AppStatus, ApplicationEvent, Offer};

/// The credential offer made by an approval: what the page shows (as a QR code and a link)
/// and the transaction code staff hand over separately. Serialized as the admin API answers
/// it (`expires_at` as a UTC timestamp). Its `Debug` hides the codes.
#[derive(Clone, PartialEq, Eq)]
pub struct Offered {
    /// The application.
    pub application_id: String,
    /// The offer's id (its by-reference URL ends with it).
    pub offer_id: String,
    /// The offer by reference (`openid-credential-offer://?credential_offer_uri=...`): the
    /// QR code and the link.
    pub credential_offer_uri: String,
    /// The offer by value (it holds the pre-authorized code).
    pub credential_offer_by_value: String,
    /// The 6-digit transaction code staff hand over separately; `None` for an application
    /// the applicant opened, who sees it through the application's capability link (staff
    /// never see it, so they cannot redeem the offer).
    pub tx_code: Option<String>,
    /// When the offer expires (Unix seconds).
    pub expires: i64,
}

impl std::fmt::Debug for Offered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offered")
            .field("application_id", &self.application_id)
            .field("offer_id", &self.offer_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl serde::Serialize for Offered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        json!({
            "application_id": self.application_id,
            "offer_id": self.offer_id,
            "credential_offer_uri": self.credential_offer_uri,
            "credential_offer_by_value": self.credential_offer_by_value,
            "tx_code": self.tx_code,
            "tx_code_delivery": if self.tx_code.is_some() { "staff" } else { "application_link" },
            "expires_at": bizcred_core::time::format_utc(self.expires),
        })
        .serialize(s)
    }
}

/// How the credentials are bound to their holder's key, as the credential endpoint's key
/// proofs may name it (OpenID4VCI 1.0 §12.2.4): a `jwk` header, or a `kid` that is a did:key
/// or did:jwk DID URL (what `oid4vci::verify_proof_jwt` resolves without a network).
pub(crate) const BINDING_METHODS: [&str; 3] = ["jwk", "did:key", "did:jwk"];

fn tx_code() -> String {
    (0..6)
        .map(|_| char::from(b'0' + (OsRng.next_u32() % 10) as u8))
        .collect()
}

impl Issuer {
    /// Credential issuer metadata (OpenID4VCI 1.0 §12.2).
    pub fn metadata(&self) -> Value {
        let base = &self.config.public_url;
        let mut configs = Map::new();
        for (ty, _) in &self.config.types {
            let meta = ty.metadata();
            let claims: Vec<Value> = meta
                .claims
                .iter()
                .map(|c| json!({"path": c.path, "display": c.display.iter().map(|d| json!({"name": d.label, "locale": d.locale})).collect::<Vec<_>>()}))
                .collect();
            let display: Vec<Value> = [Lang::En, Lang::Fr]
                .iter()
                .map(|l| {
                    let d = meta.display.iter().find(|d| d.locale == l.tag());
                    json!({"name": meta.display_name(*l), "locale": l.tag(), "description": d.and_then(|d| d.description.clone())})
                })
                .collect();
            configs.insert(
                ty.slug().to_owned(),
                json!({
                    "format": "dc+sd-jwt",
                    "scope": ty.slug(),
                    "vct": ty.vct(),
                    "cryptographic_binding_methods_supported": BINDING_METHODS,
                    "credential_signing_alg_values_supported": ["EdDSA"],
                    "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": ["EdDSA", "ES256"]}},
                    "credential_metadata": {"display": display, "claims": claims},
                }),
            );
        }
        json!({
            "credential_issuer": base,
            "credential_endpoint": self.endpoint_url(DpopEndpoint::Credential),
            "nonce_endpoint": format!("{base}/nonce"),
            "notification_endpoint": self.endpoint_url(DpopEndpoint::Notification),
            "display": [{"name": self.config.name_en, "locale": "en-CA"}, {"name": self.config.name_fr, "locale": "fr-CA"}],
            "credential_configurations_supported": configs,
        })
    }

    /// OAuth 2.0 authorization server metadata (RFC 8414), with the DPoP proof algorithms
    /// (RFC 9449 §5.1): a wallet that sends a proof gets a DPoP-bound token, one that sends
    /// none a bearer token.
    pub fn as_metadata(&self) -> Value {
        let base = &self.config.public_url;
        let dpop_algs: Vec<&str> = bizcred_core::dpop::ALGORITHMS
            .iter()
            .map(|a| a.as_str())
            .collect();
        json!({
            "issuer": base,
            "token_endpoint": self.endpoint_url(DpopEndpoint::Token),
            "dpop_signing_alg_values_supported": dpop_algs,
            "grant_types_supported": [oid4vci::PRE_AUTHORIZED_GRANT],
            "pre-authorized_grant_anonymous_access_supported": true,
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["none"],
        })
    }

    /// Approves an application awaiting approval with the remaining claims (merged as by
    /// [`Issuer::update_claims`]: verified claims cannot change, every field is checked
    /// against the schema) and makes the credential offer, in one compare-and-swap of the
    /// application: of two approvals (or an approval and a refusal) racing, exactly one wins
    /// and the other is `APPLICATION_NOT_AWAITING_APPROVAL` naming the state it left.
    /// Approvers and above.
    pub fn approve(
        &self,
        actor: &Actor,
        app_id: &str,
        claims: Map<String, Value>,
    ) -> Result<Offered, Error> {
        actor.require(Permission::Approve)?;
        let (_, offered) = self.change_application(app_id, |app, now| {
            if app.status != AppStatus::AwaitingApproval {
                return Err(Error::NotAwaitingApproval {
                    id: app.id.clone(),
                    status: app.status,
                });
            }
            let changed = merge_claims(app, claims.clone())?;
            self.check_application_claims(app)?;
            let ty = self.application_type(app)?;
            let code = random_token(32);
            let id = random_id();
            // An applicant's application shows its offer through the capability link, with a
            // code derived from it; one opened by staff gets a code staff hand over.
            let tx = match &app.capability {
                Some(cap) => super::applicant::capability_tx_code(cap, &id),
                None => tx_code(),
            };
            let offer_obj = json!({
                "credential_issuer": self.config.public_url,
                "credential_configuration_ids": [ty.slug()],
                "grants": {oid4vci::PRE_AUTHORIZED_GRANT: {
                    "pre-authorized_code": code,
                    "tx_code": {"input_mode": "numeric", "length": 6, "description": if app.capability.is_some() { "The 6-digit code shown with your application" } else { "The 6-digit code the agency gave you" }},
                }},
            });
            let offer = Offer {
                id: id.clone(),
                application_id: app.id.clone(),
                configuration_id: ty.slug().to_owned(),
                code_hash: sha256_hex(code.as_bytes()),
                tx_hash: sha256_hex(tx.as_bytes()),
                // The applicant may come back to the link days later; staff hand over theirs.
                expires: now + match app.capability {
                    Some(_) => self.config.offer_ttl.max(super::applicant::APPLICANT_OFFER_TTL),
                    None => self.config.offer_ttl,
                },
                attempts: 0,
                used: false,
                offer: offer_obj.clone(),
            };
            app.status = AppStatus::Offered;
            app.offer_id = Some(id.clone());
            app.record(ApplicationEvent {
                time: now,
                actor: actor.clone(),
                action: "approved".to_owned(),
                status: AppStatus::Offered,
                note: None,
            });
            let offered = Offered {
                application_id: app.id.clone(),
                offer_id: id.clone(),
                credential_offer_uri: oid4vci::offer_uri_by_reference(&format!(
                    "{}/credential-offer/{id}",
                    self.config.public_url
                )),
                credential_offer_by_value: oid4vci::offer_uri_by_value(&offer_obj),
                tx_code: app.capability.is_none().then(|| tx.clone()),
                expires: offer.expires,
            };
            let change = Change {
                event: "offer_created",
                details: json!({"offer_id": id, "actor": actor.audit(), "claims": changed}),
                offer: Some(offer),
            };
            Ok((offered, change))
        })?;
        Ok(offered)
    }

    /// The offer object for the by-reference URL.
    pub fn offer(&self, id: &str) -> Result<Value, Error> {
        let o = match self.store.offer(id) {
            Ok(o) => o,
            Err(crate::store::StoreError::NotFound { .. }) => return Err(Error::OfferNotFound),
            Err(e) => return Err(e.into()),
        };
        if o.used || self.now() >= o.expires {
            return Err(Error::OfferUsedOrExpired);
        }
        Ok(o.offer)
    }
}
