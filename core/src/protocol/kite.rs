//! The Kite identity and the Kontrol query.

use serde::{Deserialize, Serialize};

/// Identity of a kite: `/username/environment/name/version/region/hostname/id`.
/// Every field is a string; missing fields deserialize as empty (kite.js omits some).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Kite {
    /// Owner of the kite.
    #[serde(default)]
    pub username: String,
    /// Environment, e.g. `production`.
    #[serde(default)]
    pub environment: String,
    /// Kind of kite, e.g. `math`.
    #[serde(default)]
    pub name: String,
    /// Three-part semantic version.
    #[serde(default)]
    pub version: String,
    /// Region, e.g. `europe`.
    #[serde(default)]
    pub region: String,
    /// Host name of the machine.
    #[serde(default)]
    pub hostname: String,
    /// Unique id of this kite process.
    #[serde(default)]
    pub id: String,
}

impl Kite {
    /// The fields in key order: username, environment, name, version, region, hostname, id.
    pub fn values(&self) -> [&str; 7] {
        [
            &self.username,
            &self.environment,
            &self.name,
            &self.version,
            &self.region,
            &self.hostname,
            &self.id,
        ]
    }

    /// Checks that no field is empty or contains `/` (required to register).
    pub fn validate(&self) -> Result<(), String> {
        for v in self.values() {
            if v.is_empty() {
                return Err("empty field".into());
            }
            if v.contains('/') {
                return Err("fields cannot contain \"/\"".into());
            }
        }
        Ok(())
    }

    /// Parses the `/username/…/id` form.
    pub fn from_key(s: &str) -> Result<Kite, String> {
        let rest = s.strip_prefix('/').ok_or("invalid kite string")?;
        let mut f = rest.splitn(7, '/').map(str::to_string);
        let mut next = || f.next().unwrap_or_default();
        Ok(Kite {
            username: next(),
            environment: next(),
            name: next(),
            version: next(),
            region: next(),
            hostname: next(),
            id: next(),
        })
    }

    /// The query that matches exactly this kite.
    pub fn query(&self) -> KiteQuery {
        KiteQuery {
            username: self.username.clone(),
            environment: self.environment.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            region: self.region.clone(),
            hostname: self.hostname.clone(),
            id: self.id.clone(),
        }
    }
}

impl std::fmt::Display for Kite {
    /// `/username/environment/name/version/region/hostname/id`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for v in self.values() {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A Kontrol query: fields from general to specific; `version` may be a constraint such as
/// `">= 1.0, < 1.4"`.
///
/// Required fields: `username`, and every field before the last one set — the fields are a
/// path (username, environment, name, version, region, hostname, id), so a query by `name`
/// needs `username` and `environment` too. Kontrol answers a query that skips a field with
/// an `argumentError` naming it (`Invalid query. Query option is not set: environment`), an
/// empty `username` with `argumentError` `Empty username field`; a valid query that matches
/// nothing is not an error on the wire (`{"kites": []}`), and
/// [`Kite::get_kites`](crate::Kite::get_kites) turns it into `genericError`
/// `no kites available`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KiteQuery {
    /// Required.
    #[serde(default)]
    pub username: String,
    /// Environment; required when any later field is set.
    #[serde(default)]
    pub environment: String,
    /// Name; required when any later field is set.
    #[serde(default)]
    pub name: String,
    /// Version or version constraint; required when any later field is set.
    #[serde(default)]
    pub version: String,
    /// Region; required when any later field is set.
    #[serde(default)]
    pub region: String,
    /// Host name; required when `id` is set.
    #[serde(default)]
    pub hostname: String,
    /// Kite id.
    #[serde(default)]
    pub id: String,
}

impl KiteQuery {
    /// The fields in key order.
    pub fn values(&self) -> [&str; 7] {
        [
            &self.username,
            &self.environment,
            &self.name,
            &self.version,
            &self.region,
            &self.hostname,
            &self.id,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_form_roundtrips_and_validates() {
        let k = Kite {
            username: "u".into(),
            environment: "e".into(),
            name: "n".into(),
            version: "1.0.0".into(),
            region: "r".into(),
            hostname: "h".into(),
            id: "i".into(),
        };
        assert_eq!(k.to_string(), "/u/e/n/1.0.0/r/h/i");
        assert_eq!(Kite::from_key(&k.to_string()).unwrap(), k);
        assert!(k.validate().is_ok());
        let mut bad = k.clone();
        bad.name = "a/b".into();
        assert!(bad.validate().is_err());
        bad.name = String::new();
        assert_eq!(bad.validate().unwrap_err(), "empty field");
        assert!(Kite::from_key("nope").is_err());
    }

    #[test]
    fn json_field_names() {
        let k: Kite = serde_json::from_str(r#"{"name":"x","id":"y"}"#).unwrap();
        assert_eq!(
            (k.name.as_str(), k.id.as_str(), k.username.as_str()),
            ("x", "y", "")
        );
        let v = serde_json::to_value(&k).unwrap();
        for f in [
            "username",
            "environment",
            "name",
            "version",
            "region",
            "hostname",
            "id",
        ] {
            assert!(v.get(f).is_some(), "{f}");
        }
    }
}
