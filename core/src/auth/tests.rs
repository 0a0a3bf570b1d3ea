//! Tests across the auth module: minting, verification and every rejection.

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
fn kite_key_round_trip() {
    let jwt = mint_kite_key(kontrol(), "kontrol", "bob", "http://kontrol/kite").unwrap();
    let c = verifier().verify_kite_key(&jwt).unwrap();
    assert_eq!(
        (c.iss.as_str(), c.sub.as_str(), c.kontrol_url.as_str()),
        ("kontrol", "bob", "http://kontrol/kite")
    );
    assert_eq!(c.kontrol_key, kontrol().public_pem.trim());
    assert!(uuid::Uuid::parse_str(&c.jti).is_ok());
    let lag = now_unix() - c.iat;
    assert!(
        (300..=302).contains(&lag),
        "iat is back-dated by the leeway: {lag}"
    );
    assert_eq!((c.exp, c.nbf, c.aud.as_str()), (0, 0, ""));
    assert_eq!(parse_unverified(&format!("{jwt}\n")).unwrap(), c);
    assert_eq!(parse_kite_key(&jwt).unwrap(), c);
}

#[test]
fn token_round_trip() {
    let jwt = mint_token(
        kontrol(),
        "kontrol",
        "bob",
        "/alice/prod",
        TOKEN_TTL,
        TOKEN_LEEWAY,
    )
    .unwrap();
    let c = verifier().verify_token(&jwt, &local()).unwrap();
    assert_eq!(
        (c.iss.as_str(), c.sub.as_str(), c.aud.as_str()),
        ("kontrol", "bob", "/alice/prod")
    );
    assert_eq!(c.exp - c.iat, 48 * 3600 + 2 * 300);
    assert_eq!(c.nbf, c.iat);
    assert!(uuid::Uuid::parse_str(&c.jti).is_ok());
    assert!(c.kontrol_key.is_empty() && c.kontrol_url.is_empty());
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
fn expired_tokens_and_keys_are_rejected() {
    let mut c = token_claims();
    c.exp = now_unix() - 120;
    let err = verifier()
        .verify_token(&sign(kontrol(), &c).unwrap(), &local())
        .unwrap_err();
    assert!(matches!(err, AuthError::Expired { .. }));
    assert!(
        err.to_string().starts_with("token is expired by 2m"),
        "{err}"
    );

    let mut k = kite_key_claims(kontrol());
    k.exp = now_unix() - 5;
    let err = verifier()
        .verify_kite_key(&sign(kontrol(), &k).unwrap())
        .unwrap_err();
    assert!(matches!(err, AuthError::Expired { .. }), "{err}");
}

#[test]
fn time_claims_follow_the_reference_rules() {
    let now = 1_000;
    let c = |exp, iat, nbf| KiteClaims {
        exp,
        iat,
        nbf,
        ..Default::default()
    };
    assert!(
        c(now, now, now).check_times(now).is_ok(),
        "boundaries are inclusive"
    );
    assert!(c(0, 0, 0).check_times(now).is_ok(), "zero means absent");
    assert!(
        matches!(c(now - 1, 0, 0).check_times(now), Err(AuthError::Expired { by }) if by.as_secs() == 1)
    );
    assert!(matches!(
        c(0, now + 1, 0).check_times(now),
        Err(AuthError::UsedBeforeIssued)
    ));
    assert!(matches!(
        c(0, 0, now + 1).check_times(now),
        Err(AuthError::NotValidYet)
    ));
    // The last failing check wins, as in the reference.
    assert!(matches!(
        c(now - 1, now + 1, now + 1).check_times(now),
        Err(AuthError::NotValidYet)
    ));
}

#[test]
fn not_yet_valid_tokens_are_rejected() {
    let mut c = token_claims();
    c.nbf = now_unix() + 60;
    let err = verifier()
        .verify_token(&sign(kontrol(), &c).unwrap(), &local())
        .unwrap_err();
    assert_eq!(err.to_string(), "token is not valid yet");
    let mut c = token_claims();
    c.iat = now_unix() + 60;
    let err = verifier()
        .verify_token(&sign(kontrol(), &c).unwrap(), &local())
        .unwrap_err();
    assert_eq!(err.to_string(), "Token used before issued");
}

#[test]
fn wrong_issuer_is_rejected() {
    let mut c = token_claims();
    c.iss = "evil".into();
    let err = verifier()
        .verify_token(&sign(kontrol(), &c).unwrap(), &local())
        .unwrap_err();
    assert_eq!(err.to_string(), "issuer is not trusted: evil");
}

#[test]
fn audiences_are_checked_against_the_local_kite() {
    let v = verifier();
    let with_aud = |aud: &str| {
        let mut c = token_claims();
        c.aud = aud.into();
        sign(kontrol(), &c).unwrap()
    };
    for ok in [
        "/",
        "/alice",
        "/alice/prod",
        "/alice//math",
        "/alice/prod/math",
    ] {
        assert!(v.verify_token(&with_aud(ok), &local()).is_ok(), "{ok}");
    }
    let cases = [
        ("/bob", r#"audience: username "bob" not allowed (/bob)"#),
        (
            "/alice/dev",
            r#"audience: environment "dev" not allowed (/alice/dev)"#,
        ),
        (
            "/alice/prod/chat",
            r#"audience: kite "chat" not allowed (/alice/prod/chat)"#,
        ),
        ("alice", "invalid audience: invalid kite string (alice)"),
    ];
    for (aud, msg) in cases {
        let err = v.verify_token(&with_aud(aud), &local()).unwrap_err();
        assert!(matches!(err, AuthError::Audience(_)));
        assert_eq!(err.to_string(), msg);
    }
    // The rule is replaceable.
    let open = v.clone().with_audience_fn(|_, _| Ok(()));
    assert!(open.verify_token(&with_aud("/bob"), &local()).is_ok());
    let closed = v.with_audience_fn(|kite, aud| Err(format!("{} refuses {aud}", kite.name)));
    assert_eq!(
        closed
            .verify_token(&with_aud("/"), &local())
            .unwrap_err()
            .to_string(),
        "math refuses /"
    );
}

#[test]
fn tokens_need_audience_and_subject() {
    let mut c = token_claims();
    c.aud.clear();
    let err = verifier()
        .verify_token(&sign(kontrol(), &c).unwrap(), &local())
        .unwrap_err();
    assert_eq!(err.to_string(), "token has no audience");
    let mut c = token_claims();
    c.sub.clear();
    let err = verifier()
        .verify_token(&sign(kontrol(), &c).unwrap(), &local())
        .unwrap_err();
    assert_eq!(err.to_string(), "token has no username");
}

#[test]
fn bad_token_signatures_read_as_expired() {
    let v = verifier();
    // Payload of one token under the signature of another.
    let good = sign(kontrol(), &token_claims()).unwrap();
    let mut c = token_claims();
    c.sub = "mallory".into();
    let forged_payload = sign(other(), &c).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        forged_payload.split('.').nth(1).unwrap(),
        parts[2]
    );
    let err = v.verify_token(&tampered, &local()).unwrap_err();
    assert!(matches!(err, AuthError::TokenSignature));
    assert_eq!(err.to_string(), "token is expired");
    // Signed by another key (a rotated Kontrol key), even when also out of date.
    assert_eq!(
        v.verify_token(&forged_payload, &local())
            .unwrap_err()
            .to_string(),
        "token is expired"
    );
    c.exp = now_unix() - 1000;
    assert_eq!(
        v.verify_token(&sign(other(), &c).unwrap(), &local())
            .unwrap_err()
            .to_string(),
        "token is expired"
    );
}

#[test]
fn only_rs256_is_accepted() {
    let v = verifier();
    let claims_t = token_claims();
    let claims_k = kite_key_claims(kontrol());
    let pem = kontrol().public_pem.as_bytes();
    let encode = |alg, claims: &KiteClaims, key: &EncodingKey| {
        jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
    };
    let rsa_key = EncodingKey::from_rsa_pem(kontrol().private_pem.as_bytes()).unwrap();
    let hmac_key = EncodingKey::from_secret(pem).unwrap();
    let none = |claims: &KiteClaims| {
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(&serde_json::to_vec(claims).unwrap())
        )
    };
    let tokens = [
        ("none", none(&claims_t), none(&claims_k)),
        (
            "HS256",
            encode(Algorithm::HS256, &claims_t, &hmac_key),
            encode(Algorithm::HS256, &claims_k, &hmac_key),
        ),
        (
            "RS512",
            encode(Algorithm::RS512, &claims_t, &rsa_key),
            encode(Algorithm::RS512, &claims_k, &rsa_key),
        ),
        (
            "PS256",
            encode(Algorithm::PS256, &claims_t, &rsa_key),
            encode(Algorithm::PS256, &claims_k, &rsa_key),
        ),
    ];
    for (alg, token, kite_key) in tokens {
        for err in [
            v.verify_token(&token, &local()).unwrap_err(),
            v.verify_kite_key(&kite_key).unwrap_err(),
        ] {
            assert!(
                matches!(&err, AuthError::InvalidSigningMethod { alg: a } if a == alg),
                "{alg}: {err:?}"
            );
            assert_eq!(err.to_string(), "invalid signing method");
        }
        assert!(parse_kite_key(&kite_key).is_err(), "{alg}");
    }
    // Sanity: the same claims signed RS256 pass.
    assert!(v
        .verify_token(&sign(kontrol(), &claims_t).unwrap(), &local())
        .is_ok());
    assert!(v
        .verify_kite_key(&sign(kontrol(), &claims_k).unwrap())
        .is_ok());
}

#[test]
fn untrusted_kontrol_key_is_rejected_then_cached() {
    let jwt = mint_kite_key(other(), "kontrol", "bob", "http://k").unwrap();
    let v = verifier();
    assert_eq!(
        v.verify_kite_key(&jwt).unwrap_err().to_string(),
        "kontrol key is not trusted"
    );
    // Clones share the cache.
    assert_eq!(
        v.clone().verify_kite_key(&jwt).unwrap_err().to_string(),
        "invalid kontrol key found"
    );
    let uncached = verifier().with_verify_ttl(None);
    for _ in 0..2 {
        assert!(matches!(
            uncached.verify_kite_key(&jwt),
            Err(AuthError::KeyNotTrusted)
        ));
    }
    // Nobody trusts anything without a key or a verify function.
    let bare = Verifier::new("kontrol", None).unwrap();
    assert!(matches!(
        bare.verify_kite_key(&jwt),
        Err(AuthError::KeyNotTrusted)
    ));
    assert!(matches!(
        bare.verify_token("a.b.c", &local()),
        Err(AuthError::Malformed(_))
    ));
    let token = mint_token(other(), "kontrol", "bob", "/", TOKEN_TTL, TOKEN_LEEWAY).unwrap();
    assert_eq!(
        bare.verify_token(&token, &local()).unwrap_err().to_string(),
        "kontrol key is not set in config"
    );
}

#[test]
fn kite_key_signature_must_match_its_kontrol_key() {
    // Names the trusted key but is signed by another one.
    let jwt = sign(other(), &kite_key_claims(kontrol())).unwrap();
    let err = verifier().verify_kite_key(&jwt).unwrap_err();
    assert!(matches!(err, AuthError::InvalidSignature), "{err:?}");
    assert!(matches!(
        parse_kite_key(&jwt),
        Err(AuthError::InvalidSignature)
    ));
}

#[test]
fn kite_key_claims_are_required() {
    let v = verifier();
    let mut c = kite_key_claims(kontrol());
    c.sub.clear();
    assert_eq!(
        v.verify_kite_key(&sign(kontrol(), &c).unwrap())
            .unwrap_err()
            .to_string(),
        "token has no username"
    );
    let mut c = kite_key_claims(kontrol());
    c.kontrol_key.clear();
    assert_eq!(
        v.verify_kite_key(&sign(kontrol(), &c).unwrap())
            .unwrap_err()
            .to_string(),
        "no kontrol key found"
    );
    let mut c = kite_key_claims(kontrol());
    c.kontrol_key = "not a pem".into();
    assert!(matches!(
        v.verify_kite_key(&sign(kontrol(), &c).unwrap()),
        Err(AuthError::InvalidKey(_))
    ));
    // Whitespace around the key does not matter.
    let mut c = kite_key_claims(kontrol());
    c.kontrol_key = format!("\n{}\n\n", c.kontrol_key);
    assert!(v.verify_kite_key(&sign(kontrol(), &c).unwrap()).is_ok());
}

#[test]
fn verify_function_accepts_and_its_verdicts_are_cached() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counting = |verdict: fn(&str) -> Result<(), String>| {
        let calls = calls.clone();
        move |pem: &str| {
            calls.fetch_add(1, Ordering::SeqCst);
            verdict(pem)
        }
    };
    let other_key = mint_kite_key(other(), "kontrol", "bob", "http://k").unwrap();
    let own_key = mint_kite_key(kontrol(), "kontrol", "bob", "http://k").unwrap();

    // Accepted once, then served from the cache; the configured key never asks.
    let v = verifier().with_verify_fn(counting(|pem| {
        if pem == other().public_pem.trim() {
            Ok(())
        } else {
            Err(KEY_NOT_TRUSTED.into())
        }
    }));
    for _ in 0..3 {
        assert_eq!(v.verify_kite_key(&other_key).unwrap().sub, "bob");
        v.verify_kite_key(&own_key).unwrap();
    }
    assert_eq!(calls.swap(0, Ordering::SeqCst), 1);

    // Without a cache, every check asks.
    let v = v.with_verify_ttl(None);
    v.verify_kite_key(&other_key).unwrap();
    v.verify_kite_key(&other_key).unwrap();
    assert_eq!(calls.swap(0, Ordering::SeqCst), 2);

    // A rejection is cached too.
    let v = verifier().with_verify_fn(counting(|_| Err(KEY_NOT_TRUSTED.into())));
    assert!(matches!(
        v.verify_kite_key(&other_key),
        Err(AuthError::KeyNotTrusted)
    ));
    assert!(matches!(
        v.verify_kite_key(&other_key),
        Err(AuthError::CachedUntrusted)
    ));
    assert_eq!(calls.swap(0, Ordering::SeqCst), 1);

    // Other failures are passed on and not cached.
    let v = verifier().with_verify_fn(counting(|_| Err("storage is down".into())));
    for _ in 0..2 {
        assert_eq!(
            v.verify_kite_key(&other_key).unwrap_err().to_string(),
            "storage is down"
        );
    }
    assert_eq!(calls.swap(0, Ordering::SeqCst), 2);

    // A zero TTL keeps nothing.
    let v = verifier()
        .with_verify_ttl(Some(std::time::Duration::ZERO))
        .with_verify_fn(counting(|_| Ok(())));
    v.verify_kite_key(&other_key).unwrap();
    v.verify_kite_key(&other_key).unwrap();
    assert_eq!(calls.swap(0, Ordering::SeqCst), 2);

    // A verifier with no Kontrol key of its own can still trust kite keys this way.
    let v = Verifier::new("kontrol", None)
        .unwrap()
        .with_verify_fn(|_| Ok(()));
    assert!(v.verify_kite_key(&other_key).is_ok());
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

// TEMPORARY cross-check with the Go reference (removed before hand-off).
#[test]
fn xcheck_write() {
    let Ok(dir) = std::env::var("XCHECK_DIR") else {
        return;
    };
    let d = std::path::Path::new(&dir);
    let w = |n: &str, s: &str| std::fs::write(d.join(n), s).unwrap();
    let k = KeyPair::generate().unwrap();
    let o = KeyPair::generate().unwrap();
    w("pub.pem", &k.public_pem);
    w("priv.pem", &k.private_pem);
    w("other_pub.pem", &o.public_pem);
    w(
        "kitekey",
        &mint_kite_key(&k, "kontrol", "bob", "http://kontrol/kite").unwrap(),
    );
    w(
        "kitekey_other",
        &mint_kite_key(&o, "kontrol", "bob", "http://kontrol/kite").unwrap(),
    );
    w(
        "token",
        &mint_token(&k, "kontrol", "bob", "/alice/prod", TOKEN_TTL, TOKEN_LEEWAY).unwrap(),
    );
    w(
        "token_other",
        &mint_token(&o, "kontrol", "bob", "/alice/prod", TOKEN_TTL, TOKEN_LEEWAY).unwrap(),
    );
    let mut c = token_claims();
    c.exp = now_unix() - 125;
    w("token_expired", &sign(&k, &c).unwrap());
    w(
        "token_badaud",
        &mint_token(&k, "kontrol", "bob", "/alice/dev", TOKEN_TTL, TOKEN_LEEWAY).unwrap(),
    );
}

#[test]
fn xcheck_read() {
    let Ok(dir) = std::env::var("XCHECK_DIR") else {
        return;
    };
    let d = std::path::Path::new(&dir);
    let r = |n: &str| std::fs::read_to_string(d.join(n)).unwrap();
    if !d.join("go_token").exists() {
        return;
    }
    let v = Verifier::new("kontrol", Some(&r("pub.pem"))).unwrap();
    let c = v.verify_token(&r("go_token"), &local()).unwrap();
    eprintln!("go token ok: {c:?}");
    let c = v.verify_kite_key(&r("go_kitekey")).unwrap();
    eprintln!("go kite key ok: {c:?}");
    eprintln!(
        "go payloads: {:?} / {:?}",
        payload_json(&r("go_token")),
        payload_json(&r("go_kitekey")).keys().collect::<Vec<_>>()
    );
    eprintln!(
        "go rs512 token: {:?}",
        v.verify_token(&r("go_token_rs512"), &local())
    );
    let parsed = KeyPair::from_pem(&r("go_priv_pkcs1.pem")).unwrap();
    eprintln!(
        "go key pair parses, pub equal to go pub: {}",
        parsed.public_pem.trim() == r("go_pub.pem").trim()
    );
}
