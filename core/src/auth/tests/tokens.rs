//! Token minting and verification, and every way a token is rejected.

use super::*;

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
