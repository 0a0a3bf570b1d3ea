//! The claims carried by kite keys and tokens, and the IO-free JWT decoding helpers shared by
//! verification and the kite.key reader.
#![deny(clippy::arithmetic_side_effects)]

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Deserializer, Serialize};

use super::AuthError;

/// Claims of a kite key or token. The JSON layout is the reference's: the standard claims
/// (`aud`, `exp`, `jti`, `iat`, `iss`, `nbf`, `sub`, in that order) followed by `kontrolKey`
/// and `kontrolURL`; empty strings and zero times are left out, and absent or null ones read
/// back as empty/zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KiteClaims {
    /// Audience: the kite path a token is valid for (`/`, `/user`, `/user/env/name`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub aud: String,
    /// Expiry, Unix seconds; 0 means none.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub exp: i64,
    /// Unique id of the JWT (a UUID); a kite uses its kite key's as its own id.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub jti: String,
    /// Issue time, Unix seconds; 0 means none.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub iat: i64,
    /// Issuer: the Kontrol's username.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub iss: String,
    /// Not-before time, Unix seconds; 0 means none.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub nbf: i64,
    /// Subject: the authenticated username.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub sub: String,
    /// The PEM public key of the Kontrol that signed a kite key.
    #[serde(
        default,
        rename = "kontrolKey",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub kontrol_key: String,
    /// The URL of the Kontrol that issued a kite key.
    #[serde(
        default,
        rename = "kontrolURL",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub kontrol_url: String,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Reads `null` as the default value, like Go's JSON decoder does.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl KiteClaims {
    /// Checks the time claims at `now` (Unix seconds) exactly as the reference's JWT library
    /// does: no skew allowance (Kontrol builds its leeway into the claims), zero means absent,
    /// and when several fail the last of exp, iat, nbf is reported.
    pub fn check_times(&self, now: i64) -> Result<(), AuthError> {
        let mut err = None;
        if self.exp != 0 && now > self.exp {
            let by = std::time::Duration::from_secs(now.abs_diff(self.exp));
            err = Some(AuthError::Expired { by });
        }
        if self.iat != 0 && now < self.iat {
            err = Some(AuthError::UsedBeforeIssued);
        }
        if self.nbf != 0 && now < self.nbf {
            err = Some(AuthError::NotValidYet);
        }
        err.map_or(Ok(()), Err)
    }
}

/// A JWT split into its parts, with header algorithm and claims decoded but nothing verified.
pub(crate) struct RawJwt<'a> {
    /// `header.payload`, the signed message.
    pub message: &'a str,
    /// The base64url signature.
    pub signature: &'a str,
    /// The `alg` header.
    pub alg: String,
    /// The decoded claims.
    pub claims: KiteClaims,
}

impl<'a> RawJwt<'a> {
    /// Splits and decodes a compact JWT.
    pub fn parse(jwt: &'a str) -> Result<Self, AuthError> {
        let parts: Vec<&str> = jwt.split('.').collect();
        let [header, payload, signature] = parts[..] else {
            return Err(AuthError::Malformed(
                "token contains an invalid number of segments".into(),
            ));
        };
        let message = &jwt[..header.len().saturating_add(1).saturating_add(payload.len())];
        // The header is read as plain JSON so that an algorithm unknown to jsonwebtoken
        // (`none`, say) is reported as a wrong signing method, not as a malformed token.
        let header: serde_json::Value = serde_json::from_slice(&decode_segment(header)?)
            .map_err(|e| AuthError::Malformed(format!("invalid header: {e}")))?;
        let alg = match header.get("alg").and_then(|a| a.as_str()) {
            Some(a) => a.to_string(),
            None => {
                return Err(AuthError::Malformed(
                    "signing method (alg) is unspecified.".into(),
                ))
            }
        };
        let claims = serde_json::from_slice(&decode_segment(payload)?)
            .map_err(|e| AuthError::Malformed(format!("invalid claims: {e}")))?;
        Ok(RawJwt {
            message,
            signature,
            alg,
            claims,
        })
    }

    /// Refuses every algorithm but RS256.
    pub fn require_rs256(&self) -> Result<(), AuthError> {
        if self.alg == "RS256" {
            Ok(())
        } else {
            Err(AuthError::InvalidSigningMethod {
                alg: self.alg.clone(),
            })
        }
    }

    /// Whether the RS256 signature checks with `key`.
    pub fn signature_ok(&self, key: &DecodingKey) -> bool {
        jsonwebtoken::crypto::verify(
            self.signature,
            self.message.as_bytes(),
            key,
            Algorithm::RS256,
        )
        .unwrap_or(false)
    }
}

/// base64url, padding optional (the reference's decoder accepts both).
const SEGMENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes one base64url JWT segment.
pub(crate) fn decode_segment(s: &str) -> Result<Vec<u8>, AuthError> {
    SEGMENT
        .decode(s)
        .map_err(|e| AuthError::Malformed(e.to_string()))
}

/// Parses a PEM public key (PKIX `PUBLIC KEY`, or PKCS#1 `RSA PUBLIC KEY`) for verification.
pub(crate) fn decoding_key(pem: &str) -> Result<DecodingKey, AuthError> {
    DecodingKey::from_rsa_pem(pem.trim().as_bytes())
        .map_err(|e| AuthError::InvalidKey(e.to_string()))
}

/// Reads the claims of a kite key or token without checking anything (a kite reads its
/// username, Kontrol URL, Kontrol user, Kontrol key and id from its own kite key this way).
pub fn parse_unverified(jwt: &str) -> Result<KiteClaims, AuthError> {
    RawJwt::parse(jwt.trim()).map(|raw| raw.claims)
}

/// Reads a kite key and checks that it is RS256-signed by the `kontrolKey` it carries and
/// that its time claims hold, as the reference does when it loads kite.key. This proves the
/// key is intact, not that its Kontrol is trusted; use [`super::Verifier`] for that.
pub fn parse_kite_key(jwt: &str) -> Result<KiteClaims, AuthError> {
    let raw = RawJwt::parse(jwt.trim())?;
    raw.require_rs256()?;
    if raw.claims.kontrol_key.is_empty() {
        return Err(AuthError::NoKontrolKey);
    }
    let key = decoding_key(&raw.claims.kontrol_key)?;
    raw.claims.check_times(super::now_unix())?;
    if !raw.signature_ok(&key) {
        return Err(AuthError::InvalidSignature);
    }
    Ok(raw.claims)
}
