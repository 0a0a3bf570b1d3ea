//! Kontrol's options as the bindings take them: a JSON object (Python keyword arguments, a
//! Node options object) of the storage spec and the [`KontrolConfig`] settings, with the
//! same spellings and time units as [`crate::server::Options`].

use serde::Deserialize;
use serde_json::Value;

use super::storage::StorageSpec;
use super::{allow_all_machines, KontrolConfig};
use crate::server::options::from_json_object;
use crate::server::TimeUnit;
use crate::Error;

/// Options of a Kontrol; every field left out keeps the reference's default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct KontrolOptions {
    /// Where kites and key pairs are kept (see [`StorageSpec`]). Default: `memory`.
    pub storage: Option<String>,
    /// Interval kites are asked to send heartbeats at. Default: 10 s.
    #[serde(alias = "heartbeat_interval")]
    pub heartbeat_interval: Option<f64>,
    /// Extra time after a missed heartbeat before a kite is dropped. Default: 20 s.
    #[serde(alias = "heartbeat_delay")]
    pub heartbeat_delay: Option<f64>,
    /// Rows not refreshed for this long are removed. Default: 90 s.
    #[serde(alias = "expire_after")]
    pub expire_after: Option<f64>,
    /// The URL Kontrol registers itself with in its own registry. Default: none.
    #[serde(alias = "register_url")]
    pub register_url: Option<String>,
    /// Accept every `registerMachine` call ([`allow_all_machines`]). Default: false.
    #[serde(alias = "allow_machines")]
    pub allow_machines: Option<bool>,
    /// Serve the read-only live view at `/ui` (see [`KontrolConfig::ui`]). Default: false.
    pub ui: Option<bool>,
    /// The token the `/ui` page needs; without one it is served to loopback clients only.
    #[serde(alias = "ui_token")]
    pub ui_token: Option<String>,
    /// The unit of the time options. Default: milliseconds.
    #[serde(skip)]
    pub time_unit: TimeUnit,
}

impl KontrolOptions {
    /// The options of a JSON object (`null` values are left out), times in `unit`; an
    /// unknown name or a value of the wrong type is an [`Error::Config`] naming the option.
    pub fn from_json(value: Value, unit: TimeUnit) -> Result<KontrolOptions, Error> {
        let mut options: KontrolOptions = from_json_object(value)?;
        options.time_unit = unit;
        Ok(options)
    }

    /// The storage spec, parsed (without connecting): a bad spec, or a backend not compiled
    /// in, fails now.
    pub fn storage(&self) -> Result<StorageSpec, Error> {
        StorageSpec::parse(self.storage.as_deref().unwrap_or("memory"))
    }

    /// The configuration: the defaults with the given options; a negative time fails.
    pub fn config(&self) -> Result<KontrolConfig, Error> {
        let mut c = KontrolConfig::default();
        let unit = self.time_unit;
        let times = [
            (
                &mut c.heartbeat_interval,
                self.heartbeat_interval,
                "heartbeatInterval",
            ),
            (
                &mut c.heartbeat_delay,
                self.heartbeat_delay,
                "heartbeatDelay",
            ),
            (&mut c.expire_after, self.expire_after, "expireAfter"),
        ];
        for (field, v, name) in times {
            if let Some(n) = v {
                *field = unit.duration(name, n)?;
            }
        }
        c.register_url = self.register_url.clone();
        c.ui = self.ui == Some(true);
        c.ui_token = self.ui_token.clone();
        if self.allow_machines == Some(true) {
            c.machine_check = Some(allow_all_machines());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn both_spellings_units_and_defaults() {
        let py = json!({"heartbeat_interval": 1.5, "expire_after": 30, "allow_machines": true});
        let py = KontrolOptions::from_json(py, TimeUnit::Seconds).unwrap();
        let node = json!({"heartbeatInterval": 1500, "expireAfter": 30000, "allowMachines": true});
        let node = KontrolOptions::from_json(node, TimeUnit::Milliseconds).unwrap();
        for o in [&py, &node] {
            let c = o.config().unwrap();
            assert_eq!(c.heartbeat_interval, Duration::from_millis(1500));
            assert_eq!(c.expire_after, Duration::from_secs(30));
            assert_eq!(c.heartbeat_delay, KontrolConfig::default().heartbeat_delay);
            assert!(c.machine_check.is_some());
            assert_eq!(o.storage().unwrap().to_string(), "memory");
        }
    }

    #[test]
    fn live_view() {
        let py = json!({"ui": true, "ui_token": "t"});
        let node = json!({"ui": true, "uiToken": "t"});
        for (v, unit) in [(py, TimeUnit::Seconds), (node, TimeUnit::Milliseconds)] {
            let c = KontrolOptions::from_json(v, unit)
                .unwrap()
                .config()
                .unwrap();
            assert!(c.ui);
            assert_eq!(c.ui_token.as_deref(), Some("t"));
        }
        let c = KontrolOptions::from_json(json!({}), TimeUnit::Seconds)
            .unwrap()
            .config()
            .unwrap();
        assert!(!c.ui && c.ui_token.is_none());
    }

    #[test]
    fn bad_options_are_named() {
        let config_error = |r: Result<KontrolOptions, Error>| match r {
            Err(Error::Config(m)) => m,
            other => panic!("expected a configuration error, got {other:?}"),
        };
        let m = config_error(KontrolOptions::from_json(
            json!({"colour": 1}),
            TimeUnit::Seconds,
        ));
        assert!(m.contains("\"colour\""), "{m}");
        let m = config_error(KontrolOptions::from_json(
            json!({"storage": 5}),
            TimeUnit::Seconds,
        ));
        assert!(m.contains("storage"), "{m}");
        let o = KontrolOptions::from_json(json!({"expireAfter": -1}), TimeUnit::Seconds).unwrap();
        assert!(matches!(o.config(), Err(Error::Config(m)) if m.contains("expireAfter")));
        let o = KontrolOptions::from_json(json!({"storage": "floppy"}), TimeUnit::Seconds);
        assert!(o.unwrap().storage().is_err());
    }
}
