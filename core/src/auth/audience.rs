//! The default audience rule for tokens.

use crate::protocol::Kite;

/// The reference's default audience check: `/` matches every kite; otherwise the audience is
/// a kite path `/username/environment/name/…` whose username must equal the local kite's and
/// whose environment and name must match unless empty (a wildcard). Further fields are
/// ignored. The messages are the reference's.
pub fn verify_audience(kite: &Kite, audience: &str) -> Result<(), String> {
    match audience {
        "/" => return Ok(()),
        "" => return Err("invalid empty audience".into()),
        _ => {}
    }
    let aud =
        Kite::from_key(audience).map_err(|e| format!("invalid audience: {e} ({audience})"))?;
    if kite.username != aud.username {
        return Err(format!(
            "audience: username {:?} not allowed ({audience})",
            aud.username
        ));
    }
    if !aud.environment.is_empty() && kite.environment != aud.environment {
        return Err(format!(
            "audience: environment {:?} not allowed ({audience})",
            aud.environment
        ));
    }
    if !aud.name.is_empty() && kite.name != aud.name {
        return Err(format!(
            "audience: kite {:?} not allowed ({audience})",
            aud.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Kite {
        Kite::from_key("/alice/prod/math/1.0.0/eu/host/id1").unwrap()
    }

    #[test]
    fn root_and_matching_audiences_pass() {
        for aud in [
            "/",
            "/alice",
            "/alice/",
            "/alice/prod",
            "/alice//math",
            "/alice/prod/math",
            "/alice/prod/math/9.9.9/other-region/other-host/other-id",
        ] {
            assert_eq!(verify_audience(&local(), aud), Ok(()), "{aud}");
        }
    }

    #[test]
    fn mismatches_are_rejected_with_reference_messages() {
        let k = local();
        assert_eq!(
            verify_audience(&k, "").unwrap_err(),
            "invalid empty audience"
        );
        assert_eq!(
            verify_audience(&k, "alice").unwrap_err(),
            "invalid audience: invalid kite string (alice)"
        );
        assert_eq!(
            verify_audience(&k, "/bob").unwrap_err(),
            r#"audience: username "bob" not allowed (/bob)"#
        );
        assert_eq!(
            verify_audience(&k, "//prod/math").unwrap_err(),
            r#"audience: username "" not allowed (//prod/math)"#
        );
        assert_eq!(
            verify_audience(&k, "/alice/dev").unwrap_err(),
            r#"audience: environment "dev" not allowed (/alice/dev)"#
        );
        assert_eq!(
            verify_audience(&k, "/alice/prod/chat").unwrap_err(),
            r#"audience: kite "chat" not allowed (/alice/prod/chat)"#
        );
    }
}
