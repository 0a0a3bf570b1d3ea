//! Credentials minted by the Go reference (jwt-go v3.2.0, the reference's `KiteClaims`, a key
//! pair made as its test helper makes them), verified here. The token expires in 2100.

use super::*;

const KONTROL_PEM: &str = include_str!("../testdata/golden_kontrol.pem");
const KITE_KEY: &str = include_str!("../testdata/golden_kite.key");
const TOKEN: &str = include_str!("../testdata/golden_token.jwt");

fn golden_verifier() -> Verifier {
    Verifier::new("kontrol", Some(KONTROL_PEM)).unwrap()
}

#[test]
fn go_kite_key_verifies() {
    let c = golden_verifier().verify_kite_key(KITE_KEY).unwrap();
    assert_eq!(
        (c.iss.as_str(), c.sub.as_str(), c.iat),
        ("kontrol", "carol", 1_700_000_000)
    );
    assert_eq!(c.jti, "2f6a3c52-8a0e-4f4e-9d59-5b2f1d0c7e11");
    assert_eq!(c.kontrol_url, "http://127.0.0.1:4000/kite");
    assert_eq!(c.kontrol_key, KONTROL_PEM.trim());
    assert_eq!(parse_kite_key(KITE_KEY).unwrap(), c);
    // Our own Kontrol key does not vouch for it.
    assert!(matches!(
        verifier().verify_kite_key(KITE_KEY),
        Err(AuthError::KeyNotTrusted)
    ));
}

#[test]
fn go_token_verifies() {
    let kite = Kite::from_key("/alice/prod/math/1.0.0/eu/host/id1").unwrap();
    let c = golden_verifier().verify_token(TOKEN, &kite).unwrap();
    assert_eq!(
        (c.iss.as_str(), c.sub.as_str(), c.aud.as_str()),
        ("kontrol", "carol", "/alice/prod/math")
    );
    assert_eq!(
        (c.exp, c.iat, c.nbf),
        (4_102_444_800, 1_700_000_000, 1_700_000_000)
    );
    let chat = Kite {
        name: "chat".into(),
        ..kite
    };
    assert!(matches!(
        golden_verifier().verify_token(TOKEN, &chat),
        Err(AuthError::Audience(_))
    ));
    // Signed by a key other than ours: reads as expired.
    assert!(matches!(
        verifier().verify_token(TOKEN, &local()),
        Err(AuthError::TokenSignature)
    ));
}

#[test]
fn go_payloads_reserialise_byte_for_byte() {
    for jwt in [KITE_KEY, TOKEN] {
        let mut parts = jwt.trim().split('.');
        let header = decode_segment(parts.next().unwrap()).unwrap();
        assert_eq!(header, br#"{"alg":"RS256","typ":"JWT"}"#);
        let payload = decode_segment(parts.next().unwrap()).unwrap();
        let claims: KiteClaims = serde_json::from_slice(&payload).unwrap();
        assert_eq!(serde_json::to_vec(&claims).unwrap(), payload);
    }
}

#[test]
fn go_public_key_is_what_we_generate() {
    // The Go PEM is PKIX "PUBLIC KEY", wrapped at 64 columns, the same text ours has.
    assert!(KONTROL_PEM.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let ours = &kontrol().public_pem;
    let shape = |pem: &str| pem.lines().map(str::len).collect::<Vec<_>>();
    assert_eq!(shape(KONTROL_PEM), shape(ours));
}
