//! Credential issuer metadata (OpenID4VCI 1.0 §12.2, RFC 8414), staff approval and the
//! credential offer with its pre-authorized code and transaction code.

use rand_core::{OsRng, RngCore};
use serde_json::{json, Map, Value};

use bizcred_core::oid4vci;
use bizcred_schemas::{CredentialType, Lang};

use super::{random_id, random_token, Error, Issuer};
use crate::store::{sha256_hex, AppStatus, Offer};

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
                    "cryptographic_binding_methods_supported": ["jwk"],
                    "credential_signing_alg_values_supported": ["EdDSA"],
                    "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": ["EdDSA", "ES256"]}},
                    "credential_metadata": {"display": display, "claims": claims},
                }),
            );
        }
        json!({
            "credential_issuer": base,
            "credential_endpoint": format!("{base}/credential"),
            "nonce_endpoint": format!("{base}/nonce"),
            "display": [{"name": self.config.name_en, "locale": "en-CA"}, {"name": self.config.name_fr, "locale": "fr-CA"}],
            "credential_configurations_supported": configs,
        })
    }

    /// OAuth 2.0 authorization server metadata (RFC 8414).
    pub fn as_metadata(&self) -> Value {
        let base = &self.config.public_url;
        json!({
            "issuer": base,
            "token_endpoint": format!("{base}/token"),
            "grant_types_supported": [oid4vci::PRE_AUTHORIZED_GRANT],
            "pre-authorized_grant_anonymous_access_supported": true,
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["none"],
        })
    }

    /// Approves an application with the remaining claims and makes the credential offer.
    /// Returns `(offer URI by reference, offer URI by value, transaction code)`.
    pub fn approve(&self, app_id: &str, claims: Map<String, Value>) -> Result<Value, Error> {
        let mut app = self.store.application(app_id)?;
        if app.status != AppStatus::AwaitingApproval {
            return Err(Error::NotAwaitingApproval {
                id: app_id.to_owned(),
                status: app.status,
            });
        }
        for (k, v) in claims {
            if app.verified_claims.contains(&k) && app.claims.get(&k) != Some(&v) {
                return Err(Error::VerifiedClaimChanged { claim: k });
            }
            app.claims.insert(k, v);
        }
        let ty = CredentialType::from_slug(&app.credential_type).ok_or_else(|| {
            Error::ApplicationTypeUnknown {
                id: app.id.clone(),
                ty: app.credential_type.clone(),
            }
        })?;
        if let Err(v) = bizcred_schemas::parse_claims(ty, &Value::Object(app.claims.clone())) {
            return Err(Error::ClaimsInvalid {
                ty: ty.slug(),
                violations: v.iter().map(ToString::to_string).collect(),
            });
        }
        let now = self.now();
        let code = random_token(32);
        let tx = tx_code();
        let id = random_id();
        let offer_obj = json!({
            "credential_issuer": self.config.public_url,
            "credential_configuration_ids": [ty.slug()],
            "grants": {oid4vci::PRE_AUTHORIZED_GRANT: {
                "pre-authorized_code": code,
                "tx_code": {"input_mode": "numeric", "length": 6, "description": "The 6-digit code the agency gave you"},
            }},
        });
        let offer = Offer {
            id: id.clone(),
            application_id: app.id.clone(),
            configuration_id: ty.slug().to_owned(),
            code_hash: sha256_hex(code.as_bytes()),
            tx_hash: sha256_hex(tx.as_bytes()),
            expires: now + self.config.offer_ttl,
            attempts: 0,
            used: false,
            offer: offer_obj.clone(),
        };
        app.status = AppStatus::Offered;
        app.offer_id = Some(id.clone());
        self.store.put_offer(&offer, &app, now)?;
        let by_ref = oid4vci::offer_uri_by_reference(&format!(
            "{}/credential-offer/{id}",
            self.config.public_url
        ));
        Ok(json!({
            "application_id": app.id,
            "credential_offer_uri": by_ref,
            "credential_offer_by_value": oid4vci::offer_uri_by_value(&offer_obj),
            "tx_code": tx,
            "expires_at": bizcred_core::time::format_utc(offer.expires),
        }))
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
