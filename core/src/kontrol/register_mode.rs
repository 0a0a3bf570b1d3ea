//! The four ways a kite registers to Kontrol — once or forever, over dnode or over HTTP —
//! as one value, so that a binding (or a binary) has one call for all of them.

use std::fmt;
use std::str::FromStr;

use super::RegisterResult;
use crate::{Error, Kite};

/// How [`Kite::register_with`] registers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RegisterMode {
    /// Retry until Kontrol accepts (dnode: every 10 s, and again after every reconnection;
    /// HTTP: with backoff from 30 s to 5 min, and again whenever Kontrol asks). Default: false.
    pub forever: bool,
    /// Register with `POST {kontrol}/register` and HTTP heartbeats instead of over a dnode
    /// connection to Kontrol. Default: false.
    pub http: bool,
}

impl RegisterMode {
    /// Once, over dnode ([`Kite::register`]).
    pub const ONCE: RegisterMode = RegisterMode {
        forever: false,
        http: false,
    };
    /// Forever, over dnode ([`Kite::register_forever`]).
    pub const FOREVER: RegisterMode = RegisterMode {
        forever: true,
        http: false,
    };
    /// Once, over HTTP ([`Kite::register_http`]).
    pub const HTTP: RegisterMode = RegisterMode {
        forever: false,
        http: true,
    };
    /// Forever, over HTTP ([`Kite::register_http_forever`]).
    pub const HTTP_FOREVER: RegisterMode = RegisterMode {
        forever: true,
        http: true,
    };
}

impl fmt::Display for RegisterMode {
    /// `once`, `forever`, `http` or `httpForever`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.forever, self.http) {
            (false, false) => "once",
            (true, false) => "forever",
            (false, true) => "http",
            (true, true) => "httpForever",
        })
    }
}

impl FromStr for RegisterMode {
    type Err = Error;

    /// `once`, `forever`, `http` or `httpForever` (also `http_forever`).
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "once" => RegisterMode::ONCE,
            "forever" => RegisterMode::FOREVER,
            "http" => RegisterMode::HTTP,
            "httpForever" | "http_forever" => RegisterMode::HTTP_FOREVER,
            other => {
                return Err(Error::Config(format!(
                    "unknown register mode {other:?} (once, forever, http or httpForever)"
                )))
            }
        })
    }
}

impl Kite {
    /// The URL to register: `url` when given, else the kite's own
    /// ([`Kite::register_url`]); an [`Error::Config`] when neither is known yet.
    pub fn url_to_register(&self, url: Option<String>) -> Result<String, Error> {
        url.or_else(|| self.register_url()).ok_or_else(|| {
            Error::Config(
                "the kite is not listening: start the kite first, or give the URL to register"
                    .into(),
            )
        })
    }

    /// Registers to Kontrol as reachable at `url` (default: the kite's own URL, see
    /// [`Kite::url_to_register`]) the way `mode` says. A `forever` mode resolves after the
    /// first successful registration and fails only when there is no URL.
    pub async fn register_with(
        &self,
        mode: RegisterMode,
        url: Option<String>,
    ) -> Result<RegisterResult, Error> {
        let url = self.url_to_register(url)?;
        match (mode.forever, mode.http) {
            (false, false) => self.register(&url).await,
            (true, false) => Ok(self.register_forever(&url).await),
            (false, true) => self.register_http(&url).await,
            (true, true) => Ok(self.register_http_forever(&url).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in [
            RegisterMode::ONCE,
            RegisterMode::FOREVER,
            RegisterMode::HTTP,
            RegisterMode::HTTP_FOREVER,
        ] {
            assert_eq!(m.to_string().parse::<RegisterMode>().unwrap(), m);
        }
        assert!("sometimes".parse::<RegisterMode>().is_err());
    }

    #[tokio::test]
    async fn a_kite_that_does_not_listen_needs_a_url() {
        let k = Kite::new("lonely", "1.0.0").unwrap();
        for mode in [RegisterMode::ONCE, RegisterMode::HTTP_FOREVER] {
            match k.register_with(mode, None).await {
                Err(Error::Config(m)) => assert!(m.contains("start the kite first"), "{m}"),
                other => panic!("expected a configuration error, got {other:?}"),
            }
        }
        assert_eq!(
            k.url_to_register(Some("http://h:1/kite".into())).unwrap(),
            "http://h:1/kite"
        );
    }
}
