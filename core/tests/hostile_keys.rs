//! Forged kite keys carrying ever new `kontrolKey`s: the verifier's verdict cache stays
//! bounded and the cost of a check stays flat (issue 15, defect 4).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use base64::Engine;
use kite::auth::{AuthError, KeyPair, Verifier, KEY_NOT_TRUSTED, VERIFY_CACHE_CAPACITY};
use serde_json::json;

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `pem` with three bytes of its key (inside the modulus) replaced by `n`: a distinct key
/// that still parses.
fn variant(pem: &str, n: u32) -> String {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    der[100..103].copy_from_slice(&n.to_be_bytes()[1..]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
        lines.join("\n")
    )
}

/// A kite key claiming `kontrol_key`, with a signature that is not its key's.
fn forged(kontrol_key: &str) -> String {
    let header = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = b64url(
        json!({"iss": "kontrol", "sub": "mallory", "jti": "x", "kontrolKey": kontrol_key})
            .to_string()
            .as_bytes(),
    );
    format!("{header}.{claims}.{}", b64url(&[7u8; 256]))
}

#[test]
fn forged_kontrol_keys_leave_the_cache_bounded_and_checks_flat() {
    let trusted = KeyPair::generate().unwrap();
    let base = KeyPair::generate().unwrap();
    let v = Verifier::new("kontrol", Some(&trusted.public_pem))
        .unwrap()
        .with_verify_ttl(Some(Duration::from_secs(300)))
        .with_verify_fn(|_| Err(KEY_NOT_TRUSTED.into()));
    let keys: Vec<String> = (0..12_000)
        .map(|i| forged(&variant(&base.public_pem, i)))
        .collect();
    let batch = |range: std::ops::Range<usize>| {
        let t = Instant::now();
        for jwt in &keys[range] {
            match v.verify_kite_key(jwt) {
                Err(AuthError::InvalidSignature | AuthError::KeyNotTrusted) => {}
                other => panic!("{other:?}"),
            }
        }
        t.elapsed()
    };
    let first = batch(0..1000);
    batch(1000..11_000);
    let last = batch(11_000..12_000);
    assert!(
        v.cached_verdicts() <= VERIFY_CACHE_CAPACITY,
        "{} verdicts cached",
        v.cached_verdicts()
    );
    assert!(
        last < first * 3 + Duration::from_millis(50),
        "checks slowed from {first:?} to {last:?} per 1000"
    );
}
