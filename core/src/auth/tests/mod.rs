//! Tests across the auth module: shared fixtures, claims layout, keys and malformed input;
//! token and kite key verification live in the submodules.

mod golden;
mod kite_keys;
mod tokens;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

use super::claims::decode_segment;
use super::*;
use crate::protocol::{Kite, KiteQuery};

/// The trusted Kontrol key pair.
fn kontrol() -> &'static KeyPair {
    static K: OnceLock<KeyPair> = OnceLock::new();
    K.get_or_init(|| KeyPair::generate().unwrap())
}

/// A key pair nobody trusts.
fn other() -> &'static KeyPair {
    static K: OnceLock<KeyPair> = OnceLock::new();
    K.get_or_init(|| KeyPair::generate().unwrap())
}

fn verifier() -> Verifier {
    Verifier::new("kontrol", Some(&kontrol().public_pem)).unwrap()
}

fn local() -> Kite {
    Kite::from_key("/alice/prod/math/1.0.0/eu/host/id1").unwrap()
}

/// Valid token claims for `local()`, called by bob.
fn token_claims() -> KiteClaims {
    let now = now_unix();
    KiteClaims {
        iss: "kontrol".into(),
        sub: "bob".into(),
        aud: "/alice".into(),
        exp: now + 100,
        iat: now - 10,
        nbf: now - 10,
        jti: "j".into(),
        ..KiteClaims::default()
    }
}

/// Valid kite key claims for bob, naming `signer` as the Kontrol key.
fn kite_key_claims(signer: &KeyPair) -> KiteClaims {
    KiteClaims {
        iss: "kontrol".into(),
        sub: "bob".into(),
        iat: now_unix() - 10,
        jti: "j".into(),
        kontrol_key: signer.public_pem.trim().into(),
        kontrol_url: "http://kontrol/kite".into(),
        ..KiteClaims::default()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn payload_json(jwt: &str) -> serde_json::Map<String, Value> {
    let seg = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&decode_segment(seg).unwrap()).unwrap()
}

fn keys_of(m: &serde_json::Map<String, Value>) -> BTreeSet<&str> {
    m.keys().map(String::as_str).collect()
}

#[test]
fn claims_layout_matches_the_reference() {
    // The reference serialises the standard claims in this order, then its two extras,
    // omitting empty ones.
    let full = KiteClaims {
        aud: "/a".into(),
        exp: 5,
        jti: "j".into(),
        iat: 3,
        iss: "k".into(),
        nbf: 4,
        sub: "u".into(),
        kontrol_key: "K".into(),
        kontrol_url: "U".into(),
    };
    assert_eq!(
        serde_json::to_string(&full).unwrap(),
        r#"{"aud":"/a","exp":5,"jti":"j","iat":3,"iss":"k","nbf":4,"sub":"u","kontrolKey":"K","kontrolURL":"U"}"#
    );
    assert_eq!(serde_json::to_string(&KiteClaims::default()).unwrap(), "{}");

    let token = mint_token(
        kontrol(),
        "kontrol",
        "bob",
        "/alice",
        TOKEN_TTL,
        TOKEN_LEEWAY,
    )
    .unwrap();
    let names: BTreeSet<&str> = ["aud", "exp", "jti", "iat", "iss", "nbf", "sub"].into();
    assert_eq!(keys_of(&payload_json(&token)), names);
    let key = mint_kite_key(kontrol(), "kontrol", "bob", "http://k").unwrap();
    let names: BTreeSet<&str> = ["jti", "iat", "iss", "sub", "kontrolKey", "kontrolURL"].into();
    assert_eq!(keys_of(&payload_json(&key)), names);
    let header: Value =
        serde_json::from_slice(&decode_segment(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("RS256"), Some("JWT"))
    );
}

#[test]
fn claims_read_go_payloads_with_missing_and_null_fields() {
    let c: KiteClaims = serde_json::from_str(
        r#"{"iss":"k","sub":"u","iat":7,"aud":null,"exp":null,"kontrolURL":"U","extra":1}"#,
    )
    .unwrap();
    assert_eq!(
        c,
        KiteClaims {
            iss: "k".into(),
            sub: "u".into(),
            iat: 7,
            kontrol_url: "U".into(),
            ..Default::default()
        }
    );
    assert!(
        serde_json::from_str::<KiteClaims>(r#"{"aud":["/a"]}"#).is_err(),
        "aud is a string in the reference"
    );
}

#[test]
fn malformed_jwts_are_rejected() {
    let v = verifier();
    for bad in ["", "a.b", "a.b.c.d"] {
        assert_eq!(
            v.verify_token(bad, &local()).unwrap_err().to_string(),
            "token contains an invalid number of segments"
        );
        assert!(matches!(
            v.verify_kite_key(bad),
            Err(AuthError::Malformed(_))
        ));
        assert!(parse_unverified(bad).is_err());
    }
    for bad in ["!!.e30.x", "e30.!!.x", "e30.e30.x", "bm90IGpzb24.e30.x"] {
        assert!(
            matches!(v.verify_token(bad, &local()), Err(AuthError::Malformed(_))),
            "{bad}"
        );
    }
}

#[test]
fn key_pairs_use_the_reference_pem_forms() {
    let k = kontrol();
    assert!(k.public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert!(k
        .private_pem
        .starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    assert!(uuid::Uuid::parse_str(&k.id).is_ok());
    assert_ne!(k.id, other().id);
    let again = KeyPair::from_pem(&k.private_pem)
        .unwrap()
        .with_id(k.id.clone());
    assert_eq!(&again, k);

    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let pkcs8 = rsa::PrivateKey::from_pkcs1_pem(&k.private_pem)
        .unwrap()
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
    assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
    let from8 = KeyPair::from_pem(&pkcs8).unwrap();
    assert_eq!(from8.public_pem, k.public_pem);
    let jwt = mint_kite_key(&from8, "kontrol", "bob", "u").unwrap();
    assert!(verifier().verify_kite_key(&jwt).is_ok());

    assert!(matches!(
        KeyPair::from_pem("nope"),
        Err(AuthError::InvalidKey(_))
    ));
    assert!(matches!(
        Verifier::new("kontrol", Some("nope")),
        Err(AuthError::InvalidKey(_))
    ));
    assert!(!format!("{k:?}").contains("PRIVATE"));
    assert!(!format!("{:?}", verifier()).is_empty());
}

#[test]
fn audience_for_query_matches_kontrol() {
    let q = |u: &str, e: &str, n: &str| KiteQuery {
        username: u.into(),
        environment: e.into(),
        name: n.into(),
        version: "1.0.0".into(),
        ..Default::default()
    };
    assert_eq!(audience_for_query(&q("u", "", "")), "/u");
    assert_eq!(audience_for_query(&q("u", "e", "")), "/u/e");
    assert_eq!(audience_for_query(&q("u", "e", "n")), "/u/e/n");
    assert_eq!(audience_for_query(&q("u", "", "n")), "/u//n");
    // Such a token verifies on the kite it was asked for.
    let aud = audience_for_query(&local().query());
    let jwt = mint_token(kontrol(), "kontrol", "bob", &aud, TOKEN_TTL, TOKEN_LEEWAY).unwrap();
    assert!(verifier().verify_token(&jwt, &local()).is_ok());
}

#[test]
fn verifier_is_shareable() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<Verifier>();
    assert_traits::<KeyPair>();
    fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<AuthError>();
}
