//! Which URLs a kite may register under: something another kite can dial.
#![deny(clippy::arithmetic_side_effects)]

/// Checks a register URL: `http`, `https`, `ws` or `wss`, with a host. Anything else
/// (`javascript:alert(1)`, `file:///…`, a bare path) is refused with the reason.
pub(crate) fn check_register_url(u: &str) -> Result<(), String> {
    if u.is_empty() {
        return Err("empty url".into());
    }
    let parsed = url::Url::parse(u).map_err(|e| format!("invalid register URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https" | "ws" | "wss") {
        return Err(format!(
            "invalid register URL: scheme {:?} is not http, https, ws or wss",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("invalid register URL: no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dialable_urls() {
        for ok in [
            "http://127.0.0.1:3636/kite",
            "https://example.com/kite",
            "ws://[::1]:80/kite",
            "wss://k.example/kite",
        ] {
            assert_eq!(check_register_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "data:text/html,x",
            "http://",
            "/kite",
            "ftp://host/kite",
            "mailto:a@b",
        ] {
            assert!(check_register_url(bad).is_err(), "{bad}");
        }
    }
}
