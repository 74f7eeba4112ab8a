//! bizcred-core: keys, DIDs and SD-JWT VC for bizcred credentials.
//!
//! Implements SD-JWT (RFC 9901) and its SD-JWT VC profile (`typ: dc+sd-jwt`), compact JWS
//! (RFC 7515) with EdDSA (RFC 8037) and ES256, JWK thumbprints (RFC 7638), `did:key` and
//! `did:jwk`, and passphrase-encrypted key files.
//!
//! What it does **not** do: no file, network or clock access and no environment reads.
//! Time is a parameter (`now`), randomness is an injected RNG, keys arrive as values or
//! through the [`keys::Signer`] trait. Trust decisions (which key belongs to which issuer, was
//! it authorized, is the credential revoked) belong to `bizcred-verifier`.
//!
//! # Quick start: a liquor licence, issued, presented with three claims, verified
//!
//! ```
//! use bizcred_core::{keys::{Algorithm, SecretKey, Signer}, sd_jwt::{self, key_path, KbExpectations}, sd_jwt_vc};
//! use bizcred_schemas::CredentialType;
//! let rng = &mut rand_core::OsRng;
//! let (agco, holder) = (SecretKey::generate(Algorithm::EdDSA, rng), SecretKey::generate(Algorithm::EdDSA, rng));
//! let ty = CredentialType::LiquorSalesLicence;
//! let claims = serde_json::from_str::<serde_json::Map<_, _>>(include_str!("../../schemas/examples/valid/liquor-sales-licence.json")).unwrap();
//! let holder_key = holder.public_key();
//! let issued = sd_jwt_vc::issue(sd_jwt_vc::Issuance {
//!     vct: ty.vct(), issuer: "did:example:agco", kid: None, iat: 1_790_000_000, nbf: None, exp: None,
//!     holder_key: Some(&holder_key), status: None, disclosable: sd_jwt_vc::default_disclosable(ty, &claims),
//!     claims, decoys: 2,
//! }, &agco, rng).unwrap();
//! // The holder discloses three claims and binds the presentation to the bank's nonce.
//! let wanted = [key_path(&["licence_number"]), key_path(&["business_number"]), key_path(&["expiry_date"])];
//! let presentation = issued.select(&wanted).unwrap().bind("https://bank.example", "n-0S6_WzA2Mj", 1_790_000_100, &holder).unwrap();
//! // The bank verifies it, offline, with the AGCO's key.
//! let kb = KbExpectations { audience: "https://bank.example", nonce: "n-0S6_WzA2Mj", now: 1_790_000_160, max_age: 300, max_future_skew: 60 };
//! let opts = sd_jwt_vc::VerifyOptions { now: 1_790_000_160, clock_skew: 60, key_binding: Some(kb) };
//! let parsed = sd_jwt::SdJwt::parse(&presentation.serialize()).unwrap();
//! let verified = sd_jwt_vc::verify(&parsed, &agco.public_key(), &opts).unwrap();
//! assert_eq!(verified.business_claims().len(), 3);
//! assert_eq!(verified.claims["licence_number"], "LSL-826104");
//! assert!(!verified.claims.contains_key("premises_address"));
//! ```
#![deny(missing_docs)]

mod b64;
pub mod data_integrity;
pub mod did;
pub mod dpop;
mod json_text;
pub mod jwk;
pub mod jws;
pub mod keyfile;
pub mod keys;
pub mod oid4vci;
pub mod oid4vp;
pub mod sd_jwt;
pub mod sd_jwt_vc;
pub mod sealed;
pub mod status_list;
pub mod time;
pub mod trust;
pub mod webvh;

pub use b64::{decode as base64url_decode, encode as base64url_encode};
/// The one vocabulary of reason codes (defined beside the schemas, shared by every crate).
pub use bizcred_schemas::ReasonCode;
