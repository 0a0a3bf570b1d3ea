//! Kite key minting and verification, trust in the Kontrol key and the verify function.

use super::*;

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
